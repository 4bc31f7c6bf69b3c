/* The pipeline's admitter hook (a rate limit shared with other processes) against `skyio mock`:
 * asked before every attempt, retries included; waits and wakes; told of every reply. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "skyio/pipeline.h"

static const char chat_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5}";

/* A test admitter: a count of tokens (-1: unlimited), refilled by one per reply when asked. */
typedef struct admit {
    sky_pipeline *p;
    long tokens;
    int refill_on_reply;
    int asked, granted, replies, replies_429, replies_5xx, replies_ok, freed;
    int in_flight, max_in_flight;
    double last_rpm;
} admit;

static int64_t on_acquire(void *ud, sky_pipeline *p, int64_t est_tokens)
{
    admit *a = ud;
    assert_ptr_equal(p, a->p);
    assert_int_equal(est_tokens, 11);
    a->asked++;
    if (a->tokens == 0)
        return 60000; /* longer than any test waits: only a wake lets it go */
    if (a->tokens > 0)
        a->tokens--;
    a->granted++;
    if (++a->in_flight > a->max_in_flight)
        a->max_in_flight = a->in_flight;
    return 0;
}

static void on_reply(void *ud, sky_pipeline *p, int status, const sky_headers *h, double rpm)
{
    admit *a = ud;
    assert_ptr_equal(p, a->p);
    assert_true(status == 0 || h != NULL);
    a->replies++;
    a->in_flight--;
    a->replies_429 += status == 429;
    a->replies_5xx += status >= 500;
    a->replies_ok += status == 200;
    a->last_rpm = rpm;
    if (a->refill_on_reply) {
        a->tokens++;
        sky_pipeline_admitter_wake(p);
    }
}

static void on_free(void *ud, sky_pipeline *p)
{
    admit *a = ud;
    assert_ptr_equal(p, a->p);
    a->freed++;
    a->p = NULL;
}

typedef struct run {
    sky_test_mock mock;
    uv_loop_t *loop;
    sky_http_client *client;
    sky_pipeline_options po;
    sky_rate_admitter hook;
    admit a;
    char url[256];
    int n, finished, failed, all;
    uint64_t waited_ms;
} run;

static void on_done(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    run *r = ud;
    (void)call;
    r->failed += err != NULL;
    r->waited_ms += res->waited_ms;
    r->all = ++r->finished == r->n;
}

static void run_open(run *r, const char *const *mock_args)
{
    memset(r, 0, sizeof(*r));
    sky_test_mock_start(&r->mock, mock_args);
    sky_test_client_open(&r->loop, &r->client);
    sky_pipeline_options_init(&r->po);
    r->po.retry.base_ms = 20;
    r->po.retry.cap_ms = 200;
    r->po.attempt_timeout_ms = 10000;
    r->po.use_breaker = 0;
    r->po.rate.rpm = 60000;
    r->hook.acquire = on_acquire;
    r->hook.on_reply = on_reply;
    r->hook.on_free = on_free;
    r->hook.user_data = &r->a;
    r->po.admitter = &r->hook;
    r->a.tokens = -1;
    snprintf(r->url, sizeof(r->url), "%s/v1/chat/completions", r->mock.base_url);
}

static void run_calls(run *r, int n)
{
    sky_call_options o;
    assert_int_equal(sky_pipeline_new(r->loop, r->client, &r->po, &r->a.p), 0);
    sky_test_call_options(&o, r->url, chat_body, on_done, r);
    o.est_tokens = 11;
    r->n = n;
    for (int i = 0; i < n; i++)
        assert_int_equal(sky_call_start(r->a.p, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(r->loop, &r->all, 30000));
}

static int64_t mock_stat(const run *r, const char *path)
{
    return sky_test_mock_stat_or(&r->mock, path, -1);
}

static void run_close(run *r)
{
    sky_pipeline *p = r->a.p;
    sky_pipeline_free(p);
    assert_int_equal(r->a.freed, 1); /* told once, before it went */
    assert_null(r->a.p);
    sky_test_client_close(r->loop, r->client);
    assert_int_equal(sky_test_mock_stop(&r->mock), 0);
}

/* Retries ask too: the admitter lets through exactly the attempts the mock saw, and hears
 * how each ended, with the pipeline's own rate. */
static void test_every_attempt_asks(void **state)
{
    static const char *const args[] = {"--fault-503", "0.3", "--fault-500", "0.2",
                                       "--seed",      "5",   NULL};
    run r;
    (void)state;
    run_open(&r, args);
    run_calls(&r, 30);
    assert_int_equal(r.failed, 0);
    int64_t faults = mock_stat(&r, "faults.http_503") + mock_stat(&r, "faults.http_500");
    assert_true(faults > 0);
    assert_int_equal(r.a.granted, mock_stat(&r, "endpoints.chat"));
    assert_int_equal(r.a.granted, 30 + faults);
    assert_int_equal(r.a.asked, r.a.granted);
    assert_int_equal(r.a.replies, r.a.granted);
    assert_int_equal(r.a.replies_ok, 30);
    assert_int_equal(r.a.replies_5xx, faults);
    assert_true(r.a.last_rpm == 60000.0);
    run_close(&r);
}

/* An admitter out of tokens holds attempts until it wakes the pipeline: two at a time here,
 * each reply giving one token back. Without the wake they would wait a minute. */
static void test_wait_and_wake(void **state)
{
    static const char *const args[] = {"--ttft-ms", "20", NULL};
    run r;
    (void)state;
    run_open(&r, args);
    r.a.tokens = 2;
    r.a.refill_on_reply = 1;
    run_calls(&r, 12);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.a.granted, 12);
    assert_int_equal(r.a.max_in_flight, 2);
    assert_true(r.a.asked > r.a.granted); /* some were told to wait, and asked again */
    assert_true(r.waited_ms > 0);         /* and the wait shows in their results */
    assert_int_equal(mock_stat(&r, "endpoints.chat"), 12);
    run_close(&r);
}

/* 429s reach the admitter as they reach the pipeline's limiter: one report per refusal. */
static void test_refusals_reported(void **state)
{
    static const char *const args[] = {"--rpm", "600", NULL};
    run r;
    (void)state;
    run_open(&r, args);
    r.po.use_rate_limit = 0;
    r.po.use_concurrency = 0;
    run_calls(&r, 25);
    assert_int_equal(r.failed, 0);
    assert_true(r.a.replies_429 >= 5);
    assert_int_equal(r.a.replies_429, mock_stat(&r, "rate_limited"));
    assert_int_equal(r.a.replies, r.a.granted);
    assert_true(r.a.last_rpm == 0.0); /* no limiter of its own */
    run_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_attempt_asks),
        cmocka_unit_test(test_wait_and_wake),
        cmocka_unit_test(test_refusals_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
