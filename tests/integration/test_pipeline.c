/* The request pipeline against real `skyio mock` processes: retries, limits, deadlines, breaker. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "skyio/ai.h"
#include "skyio/json.h"
#include "skyio/pipeline.h"
#include "skyio/server.h"

static const char chat_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5}";

typedef struct outcome {
    int done;
    int status;
    int err_code;
    int http_status;
    int attempts;
    int retryable;
    uint64_t waited_ms;
    uint64_t total_ms;
    uint64_t attempt_ms;
    char service_code[64];
    char message[256];
    char request_id[40];
    char echoed_id[64];
    char log[512];
} outcome;

typedef struct run {
    sky_test_mock mock;
    uv_loop_t *loop;
    sky_http_client *client;
    sky_pipeline *pipe;
    sky_pipeline_options po;
    char url[256];
    outcome out[64];
    int n, finished, all;
} run;

static void on_done(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    run *r = ud;
    (void)call;
    outcome *o = &r->out[r->finished < 64 ? r->finished : 63];
    o->done++;
    o->status = res->status;
    o->err_code = err ? err->code : 0;
    o->http_status = err ? err->http_status : res->status;
    o->attempts = res->attempts;
    o->waited_ms = res->waited_ms;
    o->retryable = err ? err->retryable : 0;
    o->total_ms = res->total_ms;
    o->attempt_ms = res->attempt_ms;
    snprintf(o->service_code, sizeof(o->service_code), "%s", err ? err->service_code : "");
    snprintf(o->message, sizeof(o->message), "%s", err ? err->message : "");
    snprintf(o->request_id, sizeof(o->request_id), "%s", res->request_id);
    const char *echo =
        res->headers ? sky_headers_get(res->headers, "x-ms-client-request-id") : NULL;
    snprintf(o->echoed_id, sizeof(o->echoed_id), "%s", echo ? echo : "");
    sky_retry_log_format(res->retry, o->log, sizeof(o->log));
    r->finished++;
    r->all = r->finished == r->n;
}

/* Retries fast enough for tests. */
static void default_options(sky_pipeline_options *po)
{
    sky_pipeline_options_init(po);
    po->retry.base_ms = 20;
    po->retry.cap_ms = 200;
    po->attempt_timeout_ms = 10000;
    /* The limiter's cautious 60 RPM start (for a provider that announces
     * nothing) would make these tests slow; they start it higher. */
    po->rate.initial_rpm = 6000;
}

static void run_open(run *r, const char *const *mock_args, const sky_pipeline_options *po)
{
    memset(r, 0, sizeof(*r));
    sky_test_mock_start(&r->mock, mock_args);
    sky_test_client_open(&r->loop, &r->client);
    r->po = *po;
    assert_int_equal(sky_pipeline_new(r->loop, r->client, &r->po, &r->pipe), 0);
    snprintf(r->url, sizeof(r->url), "%s/v1/chat/completions", r->mock.base_url);
}

static void run_close(run *r)
{
    sky_pipeline_free(r->pipe);
    sky_test_client_close(r->loop, r->client);
    assert_int_equal(sky_test_mock_stop(&r->mock), 0);
}

static void start_calls(run *r, int n, const char *body)
{
    sky_call_options o;
    sky_test_call_options(&o, r->url, body, on_done, r);
    o.est_tokens = 11;
    r->n += n;
    r->all = 0;
    for (int i = 0; i < n; i++)
        assert_int_equal(sky_call_start(r->pipe, &o, NULL, NULL), 0);
}

static void wait_all(run *r, uint64_t ms)
{
    assert_true(sky_test_run_until(r->loop, &r->all, ms));
    int never = 0;
    sky_test_run_until(r->loop, &never, 50); /* nothing reports twice */
    for (int i = 0; i < r->n && i < 64; i++)
        assert_int_equal(r->out[i].done, 1);
}

/* start_calls() and wait_all(): @p n calls of @p body, all done within @p ms. */
static void run_calls(run *r, int n, const char *body, uint64_t ms)
{
    start_calls(r, n, body);
    wait_all(r, ms);
}

static int64_t mock_stat(const run *r, const char *path)
{
    return sky_test_mock_stat_or(&r->mock, path, -1);
}

static void test_retries_5xx_to_success(void **state)
{
    static const char *const args[] = {"--fault-503", "0.3", "--fault-500", "0.2",
                                       "--seed",      "5",   NULL};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.use_breaker = 0;
    run_open(&r, args, &po);
    run_calls(&r, 40, chat_body, 60000);
    int retried = 0;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(r.out[i].err_code, 0);
        assert_int_equal(r.out[i].status, 200);
        retried += r.out[i].attempts > 1;
    }
    assert_true(retried > 0);
    /* every injected fault was answered by one more attempt */
    int64_t faults = mock_stat(&r, "faults.http_503") + mock_stat(&r, "faults.http_500");
    assert_int_equal(mock_stat(&r, "endpoints.chat"), 40 + faults);
    run_close(&r);
}

/* Without the pipeline's own pacing, the mock's 429s and their retry-after
 * carry every call through. */
static void test_429_retry_after_honoured(void **state)
{
    static const char *const args[] = {"--rpm", "600", NULL};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.use_rate_limit = 0;
    po.use_concurrency = 0;
    run_open(&r, args, &po);
    run_calls(&r, 25, chat_body, 30000);
    int waited_for_server = 0;
    for (int i = 0; i < 25; i++) {
        assert_int_equal(r.out[i].err_code, 0);
        waited_for_server += strstr(r.out[i].log, "retry-after") != NULL;
    }
    assert_true(mock_stat(&r, "rate_limited") >= 5);
    assert_true(waited_for_server >= 5);
    run_close(&r);
}

/* With pacing at the provider's limit, few requests meet a 429. */
static void test_rate_limit_paces(void **state)
{
    static const char *const args[] = {"--rpm", "600", NULL};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.rate.rpm = 600;
    po.rate.burst_seconds = 0.2;
    run_open(&r, args, &po);
    run_calls(&r, 30, chat_body, 30000);
    for (int i = 0; i < 30; i++)
        assert_int_equal(r.out[i].err_code, 0);
    /* unpaced, 20 of the 30 would meet a 429 */
    assert_true(mock_stat(&r, "rate_limited") <= 10);
    run_close(&r);
}

/*
 * Calls waiting for the rate limiter hold their concurrency slots, parked (no evidence for
 * a higher limit); canceled there, they give them back.
 */
static void test_rate_wait_parks_and_cancel_frees_slot(void **state)
{
    sky_pipeline_options po;
    sky_limiter_stats st;
    run r;
    (void)state;
    default_options(&po);
    po.rate.rpm = 60; /* one a second, a bucket of one */
    run_open(&r, NULL, &po);
    start_calls(&r, 4, chat_body);
    r.n = 1; /* until the first, unpaced by the full bucket, is done */
    assert_true(sky_test_run_until(r.loop, &r.all, 10000));
    sky_limiter_get_stats(sky_pipeline_limiter(r.pipe), &st);
    assert_int_equal(st.in_flight, 3);
    assert_int_equal(st.parked, 3);
    assert_int_equal(sky_pipeline_on_wire(r.pipe), 0);
    r.n = 4;
    r.all = 0;
    assert_int_equal(sky_pipeline_cancel_waiting(r.pipe), 3);
    wait_all(&r, 10000);
    for (int i = 1; i < 4; i++)
        assert_int_equal(r.out[i].err_code, SKY_ECANCELED);
    sky_limiter_get_stats(sky_pipeline_limiter(r.pipe), &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.parked, 0);
    run_close(&r);
}

static void test_deadline(void **state)
{
    static const char *const args[] = {"--fault-hang", "1", NULL};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.attempt_timeout_ms = 150;
    po.operation_timeout_ms = 700;
    po.use_breaker = 0;
    run_open(&r, args, &po);
    run_calls(&r, 1, chat_body, 10000);
    assert_int_equal(r.out[0].err_code, SKY_ETIMEDOUT);
    assert_true(r.out[0].attempts >= 2);
    /* the last attempt was cut by its own or the operation's time left */
    assert_true(r.out[0].attempt_ms > 0 && r.out[0].attempt_ms < r.out[0].total_ms);
    assert_true(r.out[0].total_ms < 3000);
    run_close(&r);
}

static void test_not_retryable_and_request_id(void **state)
{
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    run_open(&r, NULL, &po);
    start_calls(&r, 1, "{not json");
    run_calls(&r, 1, chat_body, 10000);
    for (int i = 0; i < 2; i++) {
        const outcome *o = &r.out[i];
        assert_int_equal(o->attempts, 1);
        assert_int_equal(strlen(o->request_id), 36);
        assert_string_equal(o->echoed_id, o->request_id);
        if (o->status == 400) {
            assert_int_equal(o->err_code, SKY_EHTTP);
            assert_int_equal(o->http_status, 400);
            assert_string_equal(o->service_code, "invalid_json");
        } else {
            assert_int_equal(o->status, 200);
            assert_int_equal(o->err_code, 0);
        }
    }
    assert_string_not_equal(r.out[0].request_id, r.out[1].request_id);
    run_close(&r);
}

/* send_request_id 0: the call still has its id, and no attempt carries it. */
static void test_request_id_not_sent(void **state)
{
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.send_request_id = 0;
    run_open(&r, NULL, &po);
    run_calls(&r, 1, chat_body, 10000);
    assert_int_equal(r.out[0].status, 200);
    assert_int_equal(strlen(r.out[0].request_id), 36);
    assert_string_equal(r.out[0].echoed_id, ""); /* the mock echoes the header when it comes */
    run_close(&r);
}

/* A 429 insufficient_quota is an account out of credit, not a rate: no wait mends it,
 * so it is final at once, with the provider's code, while a plain 429 is retried. */
static void test_quota_exhausted_final(void **state)
{
    static const char *const margs[] = {"--refuse-status", "429", NULL};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    run_open(&r, margs, &po);
    run_calls(&r, 1, chat_body, 10000);
    assert_int_equal(r.out[0].err_code, SKY_EHTTP);
    assert_int_equal(r.out[0].http_status, 429);
    assert_int_equal(r.out[0].attempts, 1);
    assert_string_equal(r.out[0].service_code, "insufficient_quota");
    assert_int_equal(mock_stat(&r, "requests"), 1);
    run_close(&r);
    /* said as the error's type, with no code, it is the same */
    assert_true(sky_pipeline_quota_exhausted(
        429, SKY_SPAN_LIT("{\"error\":{\"type\":\"insufficient_quota\",\"code\":null}}")));
    assert_false(sky_pipeline_quota_exhausted(
        429, SKY_SPAN_LIT("{\"error\":{\"code\":\"rate_limit_exceeded\"}}")));
    assert_false(sky_pipeline_quota_exhausted(
        403, SKY_SPAN_LIT("{\"error\":{\"code\":\"insufficient_quota\"}}")));
}

/* A service's rules reach the pipeline only through its classifier. */
static int refuse_503(void *ud, const sky_reply *reply, sky_error *err)
{
    int *calls = ud;
    ++*calls;
    sky_error_set(err, SKY_EHTTP, "HTTP %d: in the service's words", reply->status);
    sky_error_set_service(err, "service_says_final");
    return reply->status == 503;
}

static void test_classifier_hook(void **state)
{
    static const char *const down[] = {"--fault-503", "1", NULL};
    static const char *const quota[] = {"--refuse-status", "429", NULL};
    int calls = 0;
    sky_reply_classifier k = {NULL, refuse_503, &calls};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.classifier = &k;
    run_open(&r, down, &po);
    run_calls(&r, 1, chat_body, 10000);
    assert_int_equal(r.out[0].attempts, 1);
    assert_int_equal(calls, 1);
    assert_string_equal(r.out[0].service_code, "service_says_final");
    assert_false(r.out[0].retryable);
    assert_non_null(strstr(r.out[0].log, "service_says_final"));
    run_close(&r);
    /* no classifier: no service's rules, so even OpenAI's out-of-credit 429 is retried */
    default_options(&po);
    po.classifier = NULL;
    po.retry.max_retries = 1;
    po.use_rate_limit = 0; /* its 429 pause would only slow the test */
    run_open(&r, quota, &po);
    run_calls(&r, 1, chat_body, 10000);
    assert_int_equal(r.out[0].attempts, 2);
    assert_int_equal(r.out[0].http_status, 429);
    assert_string_equal(r.out[0].service_code, "");
    run_close(&r);
    /* the AI caller's one line gets OpenAI's rules back */
    sky_ai_pipeline_options_init(&po);
    assert_ptr_equal(po.classifier, sky_ai_classifier());
    assert_int_equal(po.retry.openai_statuses, 1);
}

/* A final 409 says it could be retried when the policy's lists had it (OpenAI's), not when
 * they did not (azure-core's). */
static void test_retryable_follows_the_lists(void **state)
{
    static const char *const margs[] = {"--refuse-status", "409", NULL};
    for (int openai = 0; openai <= 1; openai++) {
        sky_pipeline_options po;
        run r;
        (void)state;
        default_options(&po);
        po.retry.max_retries = 0;
        po.retry.openai_statuses = openai;
        run_open(&r, margs, &po);
        run_calls(&r, 1, chat_body, 10000);
        assert_int_equal(r.out[0].http_status, 409);
        assert_int_equal(r.out[0].retryable, openai);
        run_close(&r);
    }
}

static void test_breaker_fails_fast(void **state)
{
    static const char *const args[] = {"--fault-500", "1", NULL};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.retry.max_retries = 0;
    po.breaker.failure_threshold = 3;
    po.use_concurrency = 0;
    run_open(&r, args, &po);
    for (int i = 0; i < 5; i++) {
        run_calls(&r, 1, chat_body, 10000);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(r.out[i].http_status, 500);
    assert_int_equal(r.out[3].err_code, SKY_EBUSY);
    assert_int_equal(r.out[4].err_code, SKY_EBUSY);
    assert_int_equal(mock_stat(&r, "endpoints.chat"), 3);
    run_close(&r);
}

/* Calls queued for a concurrency slot meet the breaker when their turn
 * comes, not when they were started. */
static void test_breaker_checked_after_queue(void **state)
{
    static const char *const args[] = {"--fault-500", "1", NULL};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.retry.max_retries = 0;
    po.breaker.failure_threshold = 3;
    po.concurrency.kind = SKY_LIMITER_FIXED;
    po.concurrency.initial = po.concurrency.max = 2;
    po.concurrency.min = 1;
    run_open(&r, args, &po);
    run_calls(&r, 12, chat_body, 10000);
    int busy = 0;
    for (int i = 0; i < 12; i++)
        busy += r.out[i].err_code == SKY_EBUSY;
    /* at most the threshold plus what was in flight when it opened */
    int64_t sent = mock_stat(&r, "endpoints.chat");
    assert_true(sent >= 3 && sent <= 4);
    assert_int_equal(busy, 12 - sent);
    run_close(&r);
}

/*
 * Behind a breaker that stays open a minute, retries held back count as retries: each call
 * ends within its own retry schedule with the failure it met, not when the breaker lets it
 * go. A call never tried waits for the endpoint.
 */
static void test_breaker_holds_retries_within_their_schedule(void **state)
{
    static const char *const args[] = {"--fault-500", "1", NULL};
    sky_pipeline_options po;
    run r;
    (void)state;
    default_options(&po);
    po.retry.max_retries = 3;
    po.breaker_fail_fast = 0;
    po.breaker.failure_threshold = 3;
    po.breaker.reset_ms = po.breaker.max_reset_ms = 60000;
    po.use_concurrency = 0;
    run_open(&r, args, &po);
    run_calls(&r, 6, chat_body, 20000); /* a third of the breaker's open time */
    int held = 0;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r.out[i].err_code, SKY_EHTTP);
        assert_int_equal(r.out[i].http_status, 500);
        assert_true(r.out[i].attempts >= 1 && r.out[i].attempts <= 4);
        held += strstr(r.out[i].message, "held back by the open circuit") != NULL;
    }
    assert_true(held >= 3); /* those failed after the third failure opened it, at least */
    int64_t sent = mock_stat(&r, "endpoints.chat");
    assert_true(sent >= 6 && sent < 6 * 4);
    /* a new call waits for the endpoint to come back, until the pipeline goes */
    int never = 0;
    start_calls(&r, 1, chat_body);
    sky_test_run_until(r.loop, &never, 300);
    assert_int_equal(r.out[6].done, 0);
    assert_int_equal(mock_stat(&r, "endpoints.chat"), sent);
    sky_pipeline_free(r.pipe);
    assert_int_equal(r.out[6].done, 1);
    assert_int_equal(r.out[6].err_code, SKY_ECANCELED);
    r.pipe = NULL;
    run_close(&r);
}

/* 401, then one retry with a refreshed credential. */
typedef struct cred {
    int calls, refreshes;
} cred;

static int auth_cb(void *ud, sky_headers *h, int refresh)
{
    cred *c = ud;
    c->calls++;
    c->refreshes += refresh;
    return sky_headers_add(h, SKY_SPAN_LIT("api-key"),
                           refresh ? SKY_SPAN_LIT("good") : SKY_SPAN_LIT("stale"));
}

/* One call against a mock that wants key "good", with auth_cb; @p refreshes as the option. */
static void call_with_auth_cb(run *r, cred *c, int refreshes)
{
    static const char *const args[] = {"--key", "good", NULL};
    sky_pipeline_options po;
    default_options(&po);
    po.auth = auth_cb; /* "stale" until asked to refresh */
    po.auth_user_data = c;
    po.auth_refreshes = refreshes;
    run_open(r, args, &po);
    run_calls(r, 1, chat_body, 10000);
}

/*
 * The two ways a 401 goes: with refreshes allowed, one retry with a refreshed credential;
 * a fixed key (no refresh) gets no new credential, so its 401 is final, not sent again.
 */
typedef struct auth_case {
    int refreshes;    /* the option, and the refreshes auth_cb sees */
    int attempts;     /* attempts the call makes; auth_cb is asked once for each */
    int final_status; /* 0: the call succeeds; else it fails with this status */
} auth_case;

static auth_case auth_refresh_once = {1, 2, 0};
static auth_case auth_fixed_key_401_final = {0, 1, 401};

static void test_auth_case(void **state)
{
    const auth_case *k = *state;
    cred c = {0, 0};
    run r;
    call_with_auth_cb(&r, &c, k->refreshes);
    if (k->final_status) {
        assert_int_not_equal(r.out[0].err_code, 0);
        assert_int_equal(r.out[0].status, k->final_status);
    } else {
        assert_int_equal(r.out[0].err_code, 0);
    }
    assert_int_equal(r.out[0].attempts, k->attempts);
    assert_int_equal(c.calls, k->attempts);
    assert_int_equal(c.refreshes, k->refreshes);
    assert_int_equal(mock_stat(&r, "auth_failures"), 1);
    run_close(&r);
}

static void test_cancel_and_free(void **state)
{
    static const char *const args[] = {"--fault-hang", "1", NULL};
    sky_pipeline_options po;
    sky_call_options o;
    sky_call *call = NULL;
    run r;
    (void)state;
    default_options(&po);
    run_open(&r, args, &po);
    sky_call_options_init(&o);
    o.headers = sky_test_json_headers();
    o.url = r.url;
    o.body = sky_span_cstr(chat_body);
    o.on_done = on_done;
    o.user_data = &r;
    r.n = 1;
    assert_int_equal(sky_call_start(r.pipe, &o, &call, NULL), 0);
    /* cancelled while the mock holds it, not at a guessed moment that may come first */
    assert_int_equal(sky_test_wait_stat(r.loop, &r.mock, "faults.hang", 1, 10000), 1);
    assert_int_equal(r.finished, 0);
    sky_call_cancel(call);
    wait_all(&r, 10000);
    assert_int_equal(r.out[0].err_code, SKY_ECANCELED);
    /* more calls in flight when the pipeline goes: each reports once, canceled */
    r.n = 1 + 3;
    r.all = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(sky_call_start(r.pipe, &o, NULL, NULL), 0);
    /* all three sent and held by the mock (the first one's hang counted too) */
    assert_int_equal(sky_test_wait_stat(r.loop, &r.mock, "faults.hang", 4, 10000), 4);
    assert_int_equal(r.finished, 1);
    sky_pipeline_free(r.pipe);
    r.pipe = NULL;
    assert_int_equal(r.finished, 4);
    for (int i = 1; i < 4; i++)
        assert_int_equal(r.out[i].err_code, SKY_ECANCELED);
    sky_http_client_free(r.client);
    r.client = NULL;
    int never = 0;
    sky_test_run_until(r.loop, &never, 50);
    run_close(&r);
}

/* ---- streaming ---- */

static const char stream_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":6,\"stream\":true}";

/* One streamed call: what reached the caller, and when. */
typedef struct stream {
    run *r;
    size_t bytes;
    char got[8192]; /* the bytes streamed, NUL-terminated */
    int headers, saw_done;
    int *live; /* calls between their headers and their end, and the most at once */
    const char *body;
    size_t body_at; /* the reader's position in body */
    int rewinds;
    int restarts;
} stream;

static void stream_on_headers(sky_call *call, int status, const sky_headers *h, void *ud)
{
    stream *s = ud;
    (void)call;
    (void)h;
    assert_int_equal(status, 200);
    s->headers++;
    if (s->live && ++s->live[0] > s->live[1])
        s->live[1] = s->live[0];
}

static int stream_on_body(sky_call *call, const char *data, size_t len, void *ud)
{
    stream *s = ud;
    (void)call;
    size_t room = sizeof(s->got) - 1 - s->bytes;
    memcpy(s->got + s->bytes, data, len < room ? len : room);
    s->bytes += len < room ? len : room;
    s->saw_done = strstr(s->got, "data: [DONE]") != NULL;
    return 0;
}

static void stream_on_done(sky_call *call, const sky_call_result *res, const sky_error *err,
                           void *ud)
{
    stream *s = ud;
    if (s->live && s->headers)
        s->live[0]--;
    on_done(call, res, err, s->r);
}

/* A request body in pieces of 7 bytes, as a file read block by block would give it. */
static long stream_read(sky_call *call, char *out, size_t cap, void *ud)
{
    stream *s = ud;
    (void)call;
    size_t left = strlen(s->body) - s->body_at;
    size_t n = left < 7 ? left : 7;
    n = n < cap ? n : cap;
    memcpy(out, s->body + s->body_at, n);
    s->body_at += n;
    return (long)n;
}

static int stream_rewind(sky_call *call, void *ud)
{
    stream *s = ud;
    (void)call;
    s->body_at = 0;
    s->rewinds++;
    return 0;
}

static void start_streams(run *r, stream *s, int n, int with_headers)
{
    sky_call_options o;
    sky_call_options_init(&o);
    o.headers = sky_test_json_headers();
    o.url = r->url;
    o.body = sky_span_cstr(stream_body);
    o.est_tokens = 11;
    o.on_done = stream_on_done;
    o.on_body = stream_on_body;
    o.on_headers = with_headers ? stream_on_headers : NULL;
    r->n += n;
    r->all = 0;
    for (int i = 0; i < n; i++) {
        s[i].r = r;
        o.user_data = &s[i];
        assert_int_equal(sky_call_start(r->pipe, &o, NULL, NULL), 0);
    }
}

/* start_streams() and wait_all(): @p n streams, all done within @p ms. */
static void run_streams(run *r, stream *s, int n, int with_headers, uint64_t ms)
{
    start_streams(r, s, n, with_headers);
    wait_all(r, ms);
}

/* The first @p n streams all ended well, to [DONE]: the time they waited to be sent. */
static uint64_t streams_done_waited(const run *r, const stream *s, int n)
{
    uint64_t waited = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(r->out[i].err_code, 0);
        assert_true(s[i].saw_done);
        waited += r->out[i].waited_ms;
    }
    return waited;
}

/*
 * A stream that fails before its first byte is sent again, then streams: a 503, whose
 * headers are not a 2xx's and never reach on_headers; a reset, which the mock may send
 * after a 200's headers (taken back by the retry while no body byte was handed over, and
 * with no on_headers to have shown them).
 */
static void test_stream_retried_before_first_byte(void **state)
{
    static const char *const e503[] = {"--fault-503", "0.5", "--seed", "4", NULL};
    static const char *const reset[] = {"--fault-reset", "0.5", "--seed", "4", NULL};
    sky_pipeline_options po;
    stream s[20];
    run r;
    (void)state;
    default_options(&po);
    po.use_breaker = 0;
    for (int pass = 0; pass < 2; pass++) {
        memset(s, 0, sizeof(s));
        run_open(&r, pass == 0 ? e503 : reset, &po);
        run_streams(&r, s, 20, pass == 0, 60000);
        int retried = 0;
        for (int i = 0; i < 20; i++) {
            assert_int_equal(r.out[i].err_code, 0);
            assert_int_equal(r.out[i].status, 200);
            assert_int_equal(s[i].headers, pass == 0); /* only the reply that streamed */
            assert_true(s[i].saw_done);
            retried += r.out[i].attempts > 1;
        }
        assert_true(retried > 0);
        int64_t faults = mock_stat(&r, pass == 0 ? "faults.http_503" : "faults.reset");
        assert_int_equal(mock_stat(&r, "endpoints.chat"), 20 + faults);
        run_close(&r);
    }
}

/* Cut half-way, after its first bytes reached the caller: the call ends with the error. */
static void test_stream_cut_after_first_byte_not_retried(void **state)
{
    static const char *const args[] = {"--fault-cut", "1", NULL};
    sky_pipeline_options po;
    stream s[1];
    run r;
    (void)state;
    memset(s, 0, sizeof(s));
    default_options(&po);
    run_open(&r, args, &po);
    run_streams(&r, s, 1, 0, 10000);
    assert_int_not_equal(r.out[0].err_code, 0);
    assert_int_equal(r.out[0].status, 200);
    assert_int_equal(r.out[0].attempts, 1);
    assert_true(s[0].bytes > 0);
    assert_false(s[0].saw_done);
    assert_non_null(strstr(r.out[0].log, "after the first byte"));
    assert_int_equal(mock_stat(&r, "endpoints.chat"), 1);
    run_close(&r);
}

/* Streamed calls are paced by the rate limiter like any other: few meet the mock's 429. */
static void test_streams_paced_by_rate_limit(void **state)
{
    static const char *const args[] = {"--rpm", "600", NULL};
    sky_pipeline_options po;
    stream s[30];
    run r;
    (void)state;
    memset(s, 0, sizeof(s));
    default_options(&po);
    po.rate.rpm = 600;
    po.rate.burst_seconds = 0.2;
    run_open(&r, args, &po);
    run_streams(&r, s, 30, 0, 30000);
    uint64_t waited = streams_done_waited(&r, s, 30);
    assert_true(waited > 0); /* held back by the limiter, not sent to meet a 429 */
    /* unpaced, 20 of the 30 would meet a 429 */
    assert_true(mock_stat(&r, "rate_limited") <= 10);
    run_close(&r);
}

/* Streamed calls take a concurrency slot for as long as they stream. */
static void test_streams_admitted_by_concurrency_limit(void **state)
{
    static const char *const args[] = {"--per-token-ms", "15", NULL};
    sky_pipeline_options po;
    stream s[6];
    int live[2] = {0, 0};
    run r;
    (void)state;
    memset(s, 0, sizeof(s));
    default_options(&po);
    po.concurrency.kind = SKY_LIMITER_FIXED;
    po.concurrency.initial = po.concurrency.max = 2;
    po.concurrency.min = 1;
    run_open(&r, args, &po);
    for (int i = 0; i < 6; i++)
        s[i].live = live;
    run_streams(&r, s, 6, 1, 30000);
    uint64_t waited = streams_done_waited(&r, s, 6);
    assert_int_equal(live[0], 0);
    assert_int_equal(live[1], 2); /* never more streams at once than slots */
    assert_true(waited > 0);      /* the others waited for one */
    run_close(&r);
}

/* A request body from a reader is read again from its start for each attempt; without a
 * way to start it again, the call makes one attempt. */
static void test_body_from_reader(void **state)
{
    static const char *const args[] = {"--fault-503", "0.5", "--seed", "2", NULL};
    static const char *const down[] = {"--fault-503", "1", NULL};
    sky_pipeline_options po;
    sky_call_options o;
    stream s[8];
    run r;
    (void)state;
    memset(s, 0, sizeof(s));
    default_options(&po);
    po.use_breaker = 0;
    for (int pass = 0; pass < 2; pass++) {
        run_open(&r, pass == 0 ? args : down, &po);
        sky_call_options_init(&o);
        o.headers = sky_test_json_headers();
        o.url = r.url;
        o.body_reader = stream_read;
        o.body_rewind = pass == 0 ? stream_rewind : NULL;
        o.on_done = stream_on_done;
        r.n = pass == 0 ? 8 : 1;
        for (int i = 0; i < r.n; i++) {
            memset(&s[i], 0, sizeof(s[i]));
            s[i].r = &r;
            s[i].body = chat_body;
            o.user_data = &s[i];
            assert_int_equal(sky_call_start(r.pipe, &o, NULL, NULL), 0);
        }
        wait_all(&r, 30000);
        for (int i = 0; pass == 0 && i < 8; i++) {
            assert_int_equal(r.out[i].err_code, 0);
            assert_int_equal(r.out[i].status, 200);
        }
        int rewinds = 0, retries = 0;
        for (int i = 0; pass == 0 && i < 8; i++) {
            rewinds += s[i].rewinds;
            retries += r.out[i].attempts - 1;
        }
        assert_int_equal(rewinds, retries);
        if (pass == 0) {
            assert_true(retries > 0);
        } else {
            assert_int_equal(r.out[0].http_status, 503);
            assert_int_equal(r.out[0].attempts, 1);
            assert_non_null(strstr(r.out[0].log, "body read once"));
        }
        run_close(&r);
    }
}

/* body_restart: the reply starts again, and what reached the caller before is forgotten. */
static int stream_restart(sky_call *call, void *ud)
{
    stream *s = ud;
    (void)call;
    s->bytes = 0;
    s->got[0] = '\0';
    s->saw_done = 0;
    s->restarts++;
    return 0;
}

/*
 * With body_restart, a stream cut after its first bytes reached the caller is sent again
 * (after a call of body_restart) rather than ended: each caller ends with one whole
 * stream. The per-call receive buffer goes with every attempt.
 */
static void test_stream_restarted_after_first_byte(void **state)
{
    static const char *const args[] = {"--fault-cut", "0.5", "--seed", "3", NULL};
    sky_pipeline_options po;
    sky_call_options o;
    stream s[10];
    run r;
    (void)state;
    memset(s, 0, sizeof(s));
    default_options(&po);
    po.use_breaker = 0;
    run_open(&r, args, &po);
    sky_call_options_init(&o);
    o.headers = sky_test_json_headers();
    o.url = r.url;
    o.body = sky_span_cstr(stream_body);
    o.on_done = stream_on_done;
    o.on_body = stream_on_body;
    o.body_restart = stream_restart;
    o.recv_buffer_size = 64 * 1024;
    r.n = 10;
    for (int i = 0; i < 10; i++) {
        s[i].r = &r;
        o.user_data = &s[i];
        assert_int_equal(sky_call_start(r.pipe, &o, NULL, NULL), 0);
    }
    wait_all(&r, 60000);
    int restarts = 0, retries = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r.out[i].err_code, 0);
        assert_int_equal(r.out[i].status, 200);
        assert_true(s[i].saw_done);
        assert_int_equal(strncmp(s[i].got, "data: ", 6), 0); /* one stream, from its start */
        const char *done = strstr(s[i].got, "data: [DONE]");
        assert_null(strstr(done + 1, "data: [DONE]"));
        restarts += s[i].restarts;
        retries += r.out[i].attempts - 1;
    }
    assert_true(restarts > 0);
    assert_true(restarts <= retries); /* a cut before any byte reached the caller needs none */
    int64_t cut = mock_stat(&r, "faults.cut");
    assert_int_equal(retries, cut);
    assert_int_equal(mock_stat(&r, "endpoints.chat"), 10 + cut);
    run_close(&r);
}

/* ---- per-attempt signing ---- */

/* A server that takes a request only when "Sig <method>|<url>|<request id>|<x-ms-date>" signs
 * it, and answers the first `busy` good ones 503. */
typedef struct signed_server {
    int busy, good, bad;
    char dates[8][32];
} signed_server;

static int header_is(const sky_server_req *req, const char *name, sky_span *v)
{
    return sky_server_req_header(req, name, v) && v->len > 0;
}

static void signed_handler(sky_server_req *req, void *ud)
{
    signed_server *ss = ud;
    sky_span id, date, auth, m = sky_server_req_method(req), path = sky_server_req_path(req);
    sky_span host = sky_server_req_authority(req), q = sky_server_req_query(req);
    char want[512] = "", got[512] = "";
    if (header_is(req, "x-ms-client-request-id", &id) && header_is(req, "x-ms-date", &date) &&
        header_is(req, "authorization", &auth)) {
        snprintf(want, sizeof(want), "Sig %.*s|http://%.*s%.*s%s%.*s|%.*s|%.*s", (int)m.len, m.ptr,
                 (int)host.len, host.ptr, (int)path.len, path.ptr, q.len ? "?" : "", (int)q.len,
                 q.ptr, (int)id.len, id.ptr, (int)date.len, date.ptr);
        snprintf(got, sizeof(got), "%.*s", (int)auth.len, auth.ptr);
    }
    if (want[0] == '\0' || strcmp(want, got) != 0) {
        ss->bad++;
        sky_server_respond(req, 403, "text/plain", SKY_SPAN_LIT("bad signature"));
        return;
    }
    if (ss->good < 8)
        snprintf(ss->dates[ss->good], sizeof(ss->dates[0]), "%.*s", (int)date.len, date.ptr);
    if (ss->good++ < ss->busy) {
        sky_server_respond(req, 503, "text/plain", SKY_SPAN_LIT("busy"));
        return;
    }
    sky_server_respond(req, 201, "text/plain", SKY_SPAN_LIT(""));
}

typedef struct signer {
    int calls, saw_auth, fail;
} signer;

/* Adds a fresh x-ms-date, then signs over the method, the URL and the final headers. */
static int sign_cb(void *ud, const char *method, const char *url, sky_headers *h, sky_error *err)
{
    signer *sg = ud;
    char date[32], sig[512];
    if (sg->fail)
        return sky_error_set(err, SKY_EAUTH, "signing refused");
    snprintf(date, sizeof(date), "date-%d", ++sg->calls);
    sg->saw_auth += sky_headers_get(h, "api-key") != NULL; /* auth ran first */
    const char *id = sky_headers_get(h, "x-ms-client-request-id");
    assert_non_null(id);
    snprintf(sig, sizeof(sig), "Sig %s|%s|%s|%s", method, url, id, date);
    int rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-date"), sky_span_cstr(date));
    return rc ? rc : sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_span_cstr(sig));
}

static int fixed_key(void *ud, sky_headers *h, int refresh)
{
    (void)ud, (void)refresh;
    return sky_headers_add(h, SKY_SPAN_LIT("api-key"), SKY_SPAN_LIT("k"));
}

static void on_server_down(sky_server *s, void *ud)
{
    (void)s;
    *(int *)ud = 1;
}

/*
 * The sign callback signs every attempt over what that attempt carries: the pipeline's
 * request id, the auth callback's header and a date of its own, fresh each time; a
 * refusal to sign ends the call with its error and sends nothing.
 */
static void test_sign_each_attempt(void **state)
{
    signed_server ss = {.busy = 2};
    signer sg = {0, 0, 0};
    sky_pipeline_options po;
    sky_server_options so;
    sky_server *server = NULL;
    run r;
    (void)state;
    memset(&r, 0, sizeof(r));
    r.loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(r.loop, NULL, &r.client), 0);
    sky_server_options_init(&so);
    assert_int_equal(sky_server_new(r.loop, &so, &server, NULL), 0);
    assert_int_equal(sky_server_route(server, NULL, "/", 1, signed_handler, &ss), 0);
    assert_int_equal(sky_server_listen(server, NULL), 0);
    default_options(&po);
    po.auth = fixed_key;
    po.sign = sign_cb;
    po.sign_user_data = &sg;
    assert_int_equal(sky_pipeline_new(r.loop, r.client, &po, &r.pipe), 0);
    snprintf(r.url, sizeof(r.url), "http://127.0.0.1:%d/acct/c?restype=container",
             sky_server_port(server));
    sky_call_options o;
    sky_call_options_init(&o);
    o.method = "PUT";
    o.url = r.url;
    o.on_done = on_done;
    o.user_data = &r;
    for (int pass = 0; pass < 2; pass++) {
        r.n = pass + 1;
        r.all = 0;
        assert_int_equal(sky_call_start(r.pipe, &o, NULL, NULL), 0);
        assert_true(sky_test_run_until(r.loop, &r.all, 10000));
    }
    assert_int_equal(r.out[0].err_code, 0);
    assert_int_equal(r.out[0].status, 201);
    assert_int_equal(r.out[0].attempts, 3);
    assert_int_equal(sg.calls, 4); /* once per attempt, for both calls */
    assert_int_equal(sg.saw_auth, 4);
    assert_int_equal(ss.good, 4); /* the first call's three, the second's one */
    assert_int_equal(ss.bad, 0);
    assert_string_not_equal(ss.dates[0], ss.dates[1]);
    assert_string_not_equal(ss.dates[1], ss.dates[2]);
    assert_int_equal(r.out[1].err_code, 0);
    /* a signer that refuses: the call ends with its words, nothing sent */
    sg.fail = 1;
    r.n = 3;
    r.all = 0;
    assert_int_equal(sky_call_start(r.pipe, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(r.loop, &r.all, 10000));
    assert_int_equal(r.out[2].err_code, SKY_EAUTH);
    assert_int_equal(r.out[2].attempts, 0);
    assert_int_equal(ss.good + ss.bad, 4);
    sky_pipeline_free(r.pipe);
    sky_http_client_free(r.client);
    int down = 0;
    sky_server_shutdown(server, 0, on_server_down, &down);
    assert_true(sky_test_run_until(r.loop, &down, 5000));
    sky_server_free(server);
    sky_test_loop_free(r.loop);
}

/* A cmocka test of test_auth_case on the case @p k, named for it. */
#define AUTH_CASE(k)                                                                               \
    {                                                                                              \
        "test_" #k, test_auth_case, NULL, NULL, &k                                                 \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retries_5xx_to_success),
        cmocka_unit_test(test_429_retry_after_honoured),
        cmocka_unit_test(test_rate_limit_paces),
        cmocka_unit_test(test_rate_wait_parks_and_cancel_frees_slot),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_not_retryable_and_request_id),
        cmocka_unit_test(test_request_id_not_sent),
        cmocka_unit_test(test_quota_exhausted_final),
        cmocka_unit_test(test_retryable_follows_the_lists),
        cmocka_unit_test(test_classifier_hook),
        cmocka_unit_test(test_breaker_fails_fast),
        cmocka_unit_test(test_breaker_checked_after_queue),
        cmocka_unit_test(test_breaker_holds_retries_within_their_schedule),
        AUTH_CASE(auth_refresh_once),
        AUTH_CASE(auth_fixed_key_401_final),
        cmocka_unit_test(test_cancel_and_free),
        cmocka_unit_test(test_stream_retried_before_first_byte),
        cmocka_unit_test(test_stream_cut_after_first_byte_not_retried),
        cmocka_unit_test(test_streams_paced_by_rate_limit),
        cmocka_unit_test(test_streams_admitted_by_concurrency_limit),
        cmocka_unit_test(test_body_from_reader),
        cmocka_unit_test(test_stream_restarted_after_first_byte),
        cmocka_unit_test(test_sign_each_attempt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
