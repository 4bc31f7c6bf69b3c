/* The HTTP client against real `skyio mock` processes on loopback, over HTTP/1.1 and TLS + HTTP/2.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "harness.h"
#include "skyio/json.h"
#include "skyio/sse.h"

static const char chat_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5}";
static const char stream_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":8,\"stream\":true}";

typedef struct fixture {
    sky_test_mock mock;
    uv_loop_t *loop;
    sky_http_client *client;
    char url[256];
} fixture;

static void fixture_open(fixture *f, int tls, const char *const *args, const char *path)
{
    memset(f, 0, sizeof(*f));
    f->mock.tls = tls;
    sky_test_mock_start(&f->mock, args);
    f->loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(f->loop, NULL, &f->client), 0);
    snprintf(f->url, sizeof(f->url), "%s%s", f->mock.base_url, path);
}

static void fixture_close(fixture *f)
{
    sky_http_client_free(f->client);
    sky_test_loop_free(f->loop);
    assert_int_equal(sky_test_mock_stop(&f->mock), 0);
}

static int64_t stat_int(json_t *stats, const char *path)
{
    json_t *v = sky_json_path(stats, path);
    assert_non_null(v);
    return json_integer_value(v);
}

/* A GET of @p url that must end with @p err_code and @p status. */
static void expect_get(fixture *f, const char *url, int err_code, int status)
{
    sky_test_result r;
    sky_test_request(f->loop, f->client, "GET", url, NULL, NULL, 10000, &r);
    assert_int_equal(r.err_code, err_code);
    assert_int_equal(r.status, status);
    sky_test_result_free(&r);
}

/* @p n GETs of @p url, one after the other: each 200, all but the first on a reused
 * connection. */
static void get_on_one_connection(fixture *f, const char *url, int n)
{
    sky_test_result r;
    for (int i = 0; i < n; i++) {
        sky_test_request(f->loop, f->client, "GET", url, NULL, NULL, 10000, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.reused, i > 0);
        sky_test_result_free(&r);
    }
}

/* ---- plain requests, keep-alive ---- */

static void test_post_and_headers(void **state)
{
    fixture f;
    sky_test_result r;
    json_t *body = NULL;
    static const char *const hdrs[] = {"Content-Type: application/json",
                                       "X-Ms-Client-Request-Id: abc-123", NULL};
    (void)state;
    fixture_open(&f, 0, NULL, "/v1/chat/completions");
    sky_test_request(f.loop, f.client, "POST", f.url, chat_body, hdrs, 10000, &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.http_version, 1);
    assert_int_equal(sky_json_parse(sky_span_make(r.body, r.body_len), &body, NULL), 0);
    assert_string_equal(sky_json_str(body, "object", ""), "chat.completion");
    assert_int_equal(json_integer_value(sky_json_path(body, "usage.completion_tokens")), 5);
    /* the response header map, read back through the test's lower-cased copy */
    assert_string_equal(json_string_value(json_object_get(r.headers, "x-ms-client-request-id")),
                        "abc-123");
    assert_non_null(json_object_get(r.headers, "x-request-id"));
    json_decref(body);
    sky_test_result_free(&r);
    fixture_close(&f);
}

/* A body given no type goes without one, not as curl's form data (the mock says which). */
static void test_untyped_body(void **state)
{
    fixture f;
    sky_test_result r;
    sky_http_request_options o;
    json_t *body = NULL;
    (void)state;
    fixture_open(&f, 0, NULL, "/v1/chat/completions");
    memset(&r, 0, sizeof(r));
    sky_test_post_options(&o, f.url, chat_body, sky_test_on_done, &r);
    o.headers = NULL;
    assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &r.done, 10000));
    assert_int_equal(r.status, 400);
    assert_int_equal(sky_json_parse(sky_span_make(r.body, r.body_len), &body, NULL), 0);
    assert_string_equal(json_string_value(sky_json_path(body, "error.code")),
                        "unsupported_content_type");
    assert_non_null(
        strstr(json_string_value(sky_json_path(body, "error.message")), "No Content-Type header"));
    json_decref(body);
    sky_test_result_free(&r);
    fixture_close(&f);
}

static void test_keepalive_reuse(void **state)
{
    fixture f;
    (void)state;
    fixture_open(&f, 0, NULL, "/v1/models");
    get_on_one_connection(&f, f.url, 20);
    json_t *stats = sky_test_mock_stats(&f.mock);
    /* 20 requests over one connection, plus the stats request's own. */
    assert_int_equal(stat_int(stats, "connections"), 2);
    assert_int_equal(stat_int(stats, "endpoints.models"), 20);
    json_decref(stats);
    fixture_close(&f);
}

/*
 * A connection at rest in curl's cache stays watched, so that its socket is not taken out
 * of epoll and put back for every request. It must not keep the loop running, and when
 * its server goes away the client must notice, drop it and connect afresh.
 */
static void test_idle_connection_watch(void **state)
{
    fixture f;
    sky_test_mock other;
    sky_test_result r;
    char other_url[256];
    (void)state;
    fixture_open(&f, 0, NULL, "/v1/models");
    sky_test_request(f.loop, f.client, "GET", f.url, NULL, NULL, 10000, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    /* only the idle connection is left: the loop ends long before the server's
     * 10 s keep-alive would close it */
    uint64_t t0 = uv_hrtime();
    uv_run(f.loop, UV_RUN_DEFAULT);
    assert_true(uv_hrtime() - t0 < UINT64_C(5000000000));
    /* the server goes; while a request to another server runs, the idle socket reads
     * the close */
    assert_int_equal(sky_test_mock_stop(&f.mock), 0);
    memset(&other, 0, sizeof(other));
    sky_test_mock_start(&other, NULL);
    snprintf(other_url, sizeof(other_url), "%s/v1/models", other.base_url);
    get_on_one_connection(&f, other_url, 3);
    /* the dead connection is not reused: a fresh connect, which nobody answers */
    sky_test_request(f.loop, f.client, "GET", f.url, NULL, NULL, 10000, &r);
    assert_int_equal(r.err_code, SKY_ECONNECT);
    assert_int_equal(r.reused, 0);
    sky_test_result_free(&r);
    sky_http_client_free(f.client);
    sky_test_loop_free(f.loop);
    assert_int_equal(sky_test_mock_stop(&other), 0);
}

/* ---- many at once ---- */

typedef struct many {
    int done, ok, other;
    int expected;
    int all_done;
} many;

static void on_many_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                         void *ud)
{
    many *m = ud;
    (void)req;
    m->done++;
    if (err == NULL && res->status == 200)
        m->ok++;
    else
        m->other++;
    m->all_done = m->done == m->expected;
}

static void test_1500_concurrent(void **state)
{
    static const char *const args[] = {"--ttft-ms", "300", "--jitter", "0", NULL};
    fixture f;
    many m = {0, 0, 0, 1500, 0};
    sky_http_request_options o;
    (void)state;
    fixture_open(&f, 0, args, "/v1/chat/completions");
    sky_test_post_options(&o, f.url, chat_body, on_many_done, &m);
    o.timeout_ms = 60000;
    for (int i = 0; i < m.expected; i++)
        assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_int_equal(sky_http_client_active(f.client), 1500);
    assert_true(sky_test_run_until(f.loop, &m.all_done, 120000));
    assert_int_equal(m.ok, 1500);
    assert_int_equal(m.other, 0);
    json_t *stats = sky_test_mock_stats(&f.mock);
    assert_int_equal(stat_int(stats, "endpoints.chat"), 1500);
    assert_int_equal(stat_int(stats, "responses.200"), 1500);
    json_decref(stats);
    fixture_close(&f);
}

/* ---- streaming ---- */

typedef struct stream_state {
    sky_sse_parser parser;
    int chunks, events, saw_done, done, err_code, status;
    sky_http_request *req;
    int cancel_after_events;
} stream_state;

static int on_event(void *ud, const sky_sse_event *ev)
{
    stream_state *s = ud;
    if (ev->is_done) {
        s->saw_done = 1;
        return 0;
    }
    json_t *chunk = NULL;
    assert_int_equal(sky_json_parse(ev->data, &chunk, NULL), 0);
    assert_string_equal(sky_json_str(chunk, "object", ""), "chat.completion.chunk");
    json_decref(chunk);
    s->events++;
    if (s->cancel_after_events && s->events == s->cancel_after_events)
        sky_http_request_cancel(s->req);
    return 0;
}

static int on_stream_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    stream_state *s = ud;
    (void)req;
    s->chunks++;
    return sky_sse_parser_feed(&s->parser, data, len) < 0;
}

static void on_stream_done(sky_http_request *req, const sky_http_response *res,
                           const sky_error *err, void *ud)
{
    stream_state *s = ud;
    (void)req;
    s->done++;
    s->status = res->status;
    s->err_code = err ? err->code : 0;
}

static void start_stream(fixture *f, stream_state *s)
{
    sky_http_request_options o;
    sky_sse_parser_init(&s->parser, 0, on_event, s);
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = f->url;
    o.headers = sky_test_json_headers();
    o.body = sky_span_cstr(stream_body);
    o.on_body = on_stream_body;
    o.on_done = on_stream_done;
    o.user_data = s;
    o.timeout_ms = 20000;
    assert_int_equal(sky_http_request_send(f->client, &o, &s->req, NULL), 0);
}

/* Open @p f with the mock's @p args, stream one chat completion (cancelled after
 * @p cancel_after_events events unless 0) and run until it is done. */
static void run_stream(fixture *f, stream_state *s, const char *const *args,
                       int cancel_after_events)
{
    memset(s, 0, sizeof(*s));
    s->cancel_after_events = cancel_after_events;
    fixture_open(f, 0, args, "/v1/chat/completions");
    start_stream(f, s);
    assert_true(sky_test_run_until(f->loop, &s->done, 20000));
}

static void test_streaming_arrives_in_pieces(void **state)
{
    static const char *const args[] = {"--ttft-ms", "20", "--per-token-ms", "40", NULL};
    fixture f;
    stream_state s;
    (void)state;
    run_stream(&f, &s, args, 0);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.status, 200);
    /* role chunk + 8 tokens + finish chunk, then [DONE] */
    assert_int_equal(s.events, 10);
    assert_true(s.saw_done);
    /* tokens 40 ms apart arrive in several reads, not one at the end; the bound leaves
     * room for a loaded machine that merges a few of them */
    assert_true(s.chunks >= 4);
    sky_sse_parser_free(&s.parser);
    fixture_close(&f);
}

static void test_cancel_mid_stream(void **state)
{
    static const char *const args[] = {"--per-token-ms", "50", NULL};
    fixture f;
    stream_state s;
    (void)state;
    run_stream(&f, &s, args, 3);
    /* let anything late show itself: the callback must not run again */
    int never = 0;
    sky_test_run_until(f.loop, &never, 300);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.err_code, SKY_ECANCELED);
    assert_false(s.saw_done);
    sky_sse_parser_free(&s.parser);
    fixture_close(&f);
}

/* ---- timeouts and cancel ---- */

static void test_timeout_on_hang(void **state)
{
    static const char *const args[] = {"--fault-hang", "1", NULL};
    fixture f;
    sky_test_result r;
    (void)state;
    fixture_open(&f, 0, args, "/v1/chat/completions");
    /* a second: room to connect and send on a loaded machine, so the mock counts the hang */
    sky_test_request(f.loop, f.client, "POST", f.url, chat_body, NULL, 1000, &r);
    assert_int_equal(r.err_code, SKY_ETIMEDOUT);
    assert_int_equal(r.status, 0);
    sky_test_result_free(&r);
    /* a request sent just before the client gave up may be read by the mock just after */
    assert_int_equal(sky_test_wait_stat(NULL, &f.mock, "faults.hang", 1, 10000), 1);
    fixture_close(&f);
}

static void test_cancel_one(void **state)
{
    static const char *const args[] = {"--fault-hang", "1", NULL};
    fixture f;
    sky_test_result r;
    sky_http_request_options o;
    sky_http_request *req = NULL;
    (void)state;
    memset(&r, 0, sizeof(r));
    fixture_open(&f, 0, args, "/v1/chat/completions");
    sky_test_post_options(&o, f.url, chat_body, sky_test_on_done, &r);
    assert_int_equal(sky_http_request_send(f.client, &o, &req, NULL), 0);
    /* cancelled while the mock holds it, not at a guessed moment that may come first */
    assert_int_equal(sky_test_wait_stat(f.loop, &f.mock, "faults.hang", 1, 10000), 1);
    assert_int_equal(r.done, 0);
    sky_http_request_cancel(req);
    assert_true(sky_test_run_until(f.loop, &r.done, 10000));
    int never = 0;
    sky_test_run_until(f.loop, &never, 200);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.err_code, SKY_ECANCELED);
    assert_int_equal(sky_http_client_active(f.client), 0);
    sky_test_result_free(&r);
    fixture_close(&f);
}

static void test_free_cancels_all(void **state)
{
    static const char *const args[] = {"--fault-hang", "1", NULL};
    fixture f;
    sky_test_result r[50];
    sky_http_request_options o;
    (void)state;
    memset(r, 0, sizeof(r));
    fixture_open(&f, 0, args, "/v1/chat/completions");
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = f.url;
    o.headers = sky_test_json_headers();
    o.body = sky_span_cstr(chat_body);
    o.on_done = sky_test_on_done;
    for (int i = 0; i < 50; i++) {
        o.user_data = &r[i];
        assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    }
    /* all connected and waiting: the mock holds every one */
    assert_int_equal(sky_test_wait_stat(f.loop, &f.mock, "faults.hang", 50, 10000), 50);
    for (int i = 0; i < 50; i++)
        assert_int_equal(r[i].done, 0);
    sky_http_client_free(f.client);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].err_code, SKY_ECANCELED);
        sky_test_result_free(&r[i]);
    }
    f.client = NULL;
    fixture_close(&f);
}

/* Freeing the client from inside a callback is allowed: it happens when the
 * callback returns, and every other request still ends exactly once. */
typedef struct reentrant {
    sky_http_client *client;
    sky_test_result r[10];
    int freed, finished, all;
} reentrant;

static void on_done_then_free(sky_http_request *req, const sky_http_response *res,
                              const sky_error *err, void *ud)
{
    reentrant *re = ud;
    int i = 0;
    while (re->r[i].done)
        i++;
    sky_test_on_done(req, res, err, &re->r[i]);
    re->all = ++re->finished == 10;
    if (!re->freed) {
        re->freed = 1;
        sky_http_client_free(re->client);
        /* a send after the free was asked for is refused */
        sky_http_request_options o;
        sky_http_request_options_init(&o);
        o.url = "http://127.0.0.1:1/";
        o.on_done = on_done_then_free;
        assert_int_equal(sky_http_request_send(re->client, &o, NULL, NULL), SKY_ESTATE);
    }
}

static void test_free_from_callback(void **state)
{
    static const char *const args[] = {"--ttft-ms", "1", "--fault-hang", "0.7", "--seed",
                                       "3",         NULL};
    fixture f;
    reentrant re;
    sky_http_request_options o;
    (void)state;
    memset(&re, 0, sizeof(re));
    fixture_open(&f, 0, args, "/v1/chat/completions");
    re.client = f.client;
    sky_test_post_options(&o, f.url, chat_body, on_done_then_free, &re);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    sky_test_run_until(f.loop, &re.all, 10000);
    int ok = 0, canceled = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(re.r[i].done, 1);
        ok += re.r[i].status == 200 && re.r[i].err_code == 0;
        canceled += re.r[i].err_code == SKY_ECANCELED;
        sky_test_result_free(&re.r[i]);
    }
    assert_true(ok >= 1);
    assert_int_equal(ok + canceled, 10);
    f.client = NULL;
    fixture_close(&f);
}

/* ---- each injected fault surfaces as the right outcome ---- */

static void fault_case(const char *flag, int expect_err, int expect_status, const char *stat)
{
    const char *const args[] = {flag, "1", NULL};
    fixture f;
    sky_test_result r;
    char path[64];
    fixture_open(&f, 0, args, "/v1/chat/completions");
    sky_test_request(f.loop, f.client, "POST", f.url, chat_body, NULL, 5000, &r);
    assert_int_equal(r.err_code, expect_err);
    if (expect_status)
        assert_int_equal(r.status, expect_status);
    if (expect_status == 200) {
        json_t *j = NULL;
        assert_int_not_equal(sky_json_parse(sky_span_make(r.body, r.body_len), &j, NULL), 0);
    }
    sky_test_result_free(&r);
    json_t *stats = sky_test_mock_stats(&f.mock);
    snprintf(path, sizeof(path), "faults.%s", stat);
    assert_int_equal(stat_int(stats, path), 1);
    json_decref(stats);
    fixture_close(&f);
}

static void test_fault_http_errors(void **state)
{
    (void)state;
    fault_case("--fault-500", 0, 500, "http_500");
    fault_case("--fault-502", 0, 502, "http_502");
    fault_case("--fault-503", 0, 503, "http_503");
}

static void test_fault_reset(void **state)
{
    (void)state;
    fault_case("--fault-reset", SKY_ECONNRESET, 0, "reset");
}

static void test_fault_cut(void **state)
{
    (void)state;
    fault_case("--fault-cut", SKY_EPARTIAL, 0, "cut");
}

static void test_fault_malformed(void **state)
{
    (void)state;
    fault_case("--fault-malformed", 0, 200, "malformed");
}

static void test_fault_stream_cut(void **state)
{
    static const char *const args[] = {"--fault-stream-cut", "1", NULL};
    fixture f;
    stream_state s;
    (void)state;
    run_stream(&f, &s, args, 0);
    /* the HTTP exchange itself ended well; the stream is short of [DONE] */
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.status, 200);
    assert_false(s.saw_done);
    assert_true(s.events > 0 && s.events < 10);
    sky_sse_parser_free(&s.parser);
    fixture_close(&f);
}

/* ---- limits ---- */

static void test_response_cap(void **state)
{
    fixture f;
    sky_test_result r;
    sky_http_request_options o;
    (void)state;
    fixture_open(&f, 0, NULL, "/v1/models");
    memset(&r, 0, sizeof(r));
    sky_http_request_options_init(&o);
    o.url = f.url;
    o.max_response_bytes = 100;
    o.on_done = sky_test_on_done;
    o.user_data = &r;
    assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &r.done, 10000));
    assert_int_equal(r.err_code, SKY_ETOOBIG);
    sky_test_result_free(&r);
    fixture_close(&f);
}

typedef struct reader {
    const char *data;
    size_t len, off;
} reader;

static long read_some(char *out, size_t cap, void *ud)
{
    reader *rd = ud;
    size_t n = rd->len - rd->off;
    if (n > cap)
        n = cap;
    if (n > 7)
        n = 7; /* small pieces, to prove the body really streams */
    memcpy(out, rd->data + rd->off, n);
    rd->off += n;
    return (long)n;
}

typedef struct streamed_up {
    reader rd;
    sky_test_result r;
} streamed_up;

static long streamed_reader(char *out, size_t cap, void *ud)
{
    return read_some(out, cap, &((streamed_up *)ud)->rd);
}

static void streamed_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                          void *ud)
{
    sky_test_on_done(req, res, err, &((streamed_up *)ud)->r);
}

/* A POST whose body of @p len bytes comes from @p rd. */
static void streamed_post_options(sky_http_request_options *o, const char *url, sky_http_read_cb rd,
                                  size_t len, sky_http_done_cb done, void *ud)
{
    sky_http_request_options_init(o);
    o->method = "POST";
    o->url = url;
    o->headers = sky_test_json_headers();
    o->body_reader = rd;
    o->body_length = (int64_t)len;
    o->on_done = done;
    o->user_data = ud;
}

static void test_streamed_request_body(void **state)
{
    fixture f;
    streamed_up u;
    sky_http_request_options o;
    (void)state;
    memset(&u, 0, sizeof(u));
    u.rd.data = chat_body;
    u.rd.len = strlen(chat_body);
    fixture_open(&f, 0, NULL, "/v1/chat/completions");
    streamed_post_options(&o, f.url, streamed_reader, u.rd.len, streamed_done, &u);
    assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &u.r.done, 10000));
    assert_int_equal(u.r.err_code, 0);
    assert_int_equal(u.r.status, 200);
    assert_non_null(strstr(u.r.body, "chat.completion"));
    sky_test_result_free(&u.r);
    fixture_close(&f);
}

/*
 * Back-pressure both ways: the reader says "nothing yet" every other call and a timer
 * resumes it; the body callback holds every third chunk and a timer resumes it, and the
 * held chunk must come again, byte for byte. The whole body arrives, in order, once.
 */
typedef struct paused {
    reader rd;
    uv_timer_t timer;
    sky_http_request *req;
    int reader_calls, read_pauses, body_calls, body_pauses, redelivered, mismatched;
    char held[64];
    size_t held_len;
    int holding;
    sky_buf body;
    sky_test_result r;
} paused;

static void paused_wake(uv_timer_t *t)
{
    paused *p = t->data;
    sky_http_request_resume(p->req);
}

static long paused_reader(char *out, size_t cap, void *ud)
{
    paused *p = ud;
    if (p->reader_calls++ % 2 == 0 && p->rd.off < p->rd.len) {
        p->read_pauses++;
        uv_timer_start(&p->timer, paused_wake, 1, 0);
        return SKY_HTTP_PAUSE;
    }
    return read_some(out, cap, &p->rd);
}

static int paused_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    paused *p = ud;
    (void)req;
    if (p->holding) {
        p->holding = 0;
        p->redelivered++;
        size_t n = len < sizeof(p->held) ? len : sizeof(p->held);
        p->mismatched += n != p->held_len || memcmp(p->held, data, n) != 0;
    } else if (++p->body_calls % 3 == 0) {
        p->holding = 1;
        p->body_pauses++;
        p->held_len = len < sizeof(p->held) ? len : sizeof(p->held);
        memcpy(p->held, data, p->held_len);
        uv_timer_start(&p->timer, paused_wake, 2, 0);
        return SKY_HTTP_PAUSE;
    }
    return sky_buf_append(&p->body, data, len) != 0;
}

static void paused_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                        void *ud)
{
    paused *p = ud;
    uv_timer_stop(&p->timer);
    sky_test_on_done(req, res, err, &p->r);
}

static void test_pause_and_resume(void **state)
{
    static const char emb[] =
        "{\"model\":\"text-embedding-3-large\",\"input\":\"pause me\",\"dimensions\":3072}";
    fixture f;
    paused p;
    sky_http_request_options o;
    json_error_t je;
    (void)state;
    memset(&p, 0, sizeof(p));
    p.rd.data = emb;
    p.rd.len = strlen(emb);
    sky_buf_init(&p.body, 1u << 20);
    fixture_open(&f, 0, NULL, "/v1/embeddings");
    uv_timer_init(f.loop, &p.timer);
    p.timer.data = &p;
    streamed_post_options(&o, f.url, paused_reader, p.rd.len, paused_done, &p);
    o.on_body = paused_body;
    assert_int_equal(sky_http_request_send(f.client, &o, &p.req, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &p.r.done, 20000));
    assert_int_equal(p.r.done, 1);
    assert_int_equal(p.r.err_code, 0);
    assert_int_equal(p.r.status, 200);
    /* the request went in pieces of 7 with a pause before each */
    assert_true(p.read_pauses >= (int)(p.rd.len / 7));
    /* the reply (3072 numbers) came in many chunks, a third of them held once */
    assert_true(p.body_pauses >= 3);
    assert_int_equal(p.redelivered, p.body_pauses);
    assert_int_equal(p.mismatched, 0);
    json_t *j = json_loadb(p.body.data, p.body.len, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_array_size(sky_json_path(j, "data.0.embedding")), 3072);
    json_decref(j);
    uv_close((uv_handle_t *)&p.timer, NULL);
    sky_buf_free(&p.body);
    sky_test_result_free(&p.r);
    fixture_close(&f);
}

/* ---- TLS and HTTP/2 ---- */

static void tls_client(fixture *f, const char *ca)
{
    sky_http_client_options co;
    sky_http_client_free(f->client);
    sky_http_client_options_init(&co);
    co.ca_file = ca;
    assert_int_equal(sky_http_client_new(f->loop, &co, &f->client), 0);
}

/* @p f with a TLS mock at @p path, and a client that trusts the mock's CA. */
static void tls_fixture_open(fixture *f, const char *path)
{
    char ca[512];
    fixture_open(f, 1, NULL, path);
    snprintf(ca, sizeof(ca), "%s/ca.pem", f->mock.dir);
    tls_client(f, ca);
}

/* One chat POST that must come back 200 over HTTP/2. */
static void post_expect_http2(fixture *f)
{
    sky_test_result r;
    sky_test_request(f->loop, f->client, "POST", f->url, chat_body, NULL, 10000, &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.http_version, 2);
    sky_test_result_free(&r);
}

/* m->expected chat POSTs at once; every one must come back 200 within @p ms. */
static void post_many(fixture *f, many *m, uint64_t ms)
{
    sky_http_request_options o;
    sky_test_post_options(&o, f->url, chat_body, on_many_done, m);
    for (int i = 0; i < m->expected; i++)
        assert_int_equal(sky_http_request_send(f->client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f->loop, &m->all_done, ms));
    assert_int_equal(m->ok, m->expected);
}

static void test_tls_http2_multiplex(void **state)
{
    fixture f;
    /* h2o allows 100 concurrent streams a connection; curl opens another
     * connection past that, so 100 at once must share the first one. */
    many m = {0, 0, 0, 100, 0};
    (void)state;
    tls_fixture_open(&f, "/v1/chat/completions");
    post_expect_http2(&f);
    post_many(&f, &m, 60000);
    /* all 101 requests shared one connection; the stats request is the second */
    assert_int_equal(sky_test_mock_stat(&f.mock, "connections"), 2);
    fixture_close(&f);
}

/* HTTP/2 over cleartext (prior knowledge): every request must get its answer, sequential
 * and concurrent alike. libcurl 7.88 fails each one after the first on a reused h2c
 * connection; the client gives each its own connection there, so the mock must have seen
 * one connection a request (21 and the stats call) on such a libcurl, fewer on a newer one. */
static void test_h2c_many_requests(void **state)
{
    fixture f;
    many m = {0, 0, 0, 16, 0};
    sky_http_client_options co;
    (void)state;
    fixture_open(&f, 0, NULL, "/v1/chat/completions");
    sky_http_client_free(f.client);
    sky_http_client_options_init(&co);
    co.http2_prior_knowledge = 1;
    assert_int_equal(sky_http_client_new(f.loop, &co, &f.client), 0);
    for (int i = 0; i < 5; i++)
        post_expect_http2(&f);
    post_many(&f, &m, 30000);
    json_t *stats = sky_test_mock_stats(&f.mock);
    assert_int_equal(stat_int(stats, "endpoints.chat"), 21);
    int64_t conns = stat_int(stats, "connections");
    if (curl_version_info(CURLVERSION_NOW)->version_num < 0x080000)
        assert_int_equal(conns, 22);
    else
        assert_in_range(conns, 2, 22);
    json_decref(stats);
    fixture_close(&f);
}

/*
 * In-memory bodies several times curl's upload buffer, a few at once over one HTTP/2
 * connection, so that each goes out in many pieces between the others': each must arrive
 * whole, though the client releases a transfer's upload buffer once its body has gone (the
 * mock's prompt_tokens counts the characters it read). Each has a length of its own, so
 * one body's bytes in another's place would show.
 */
#define BIG_BODIES 6

static char *big_chat_body(size_t content_len, char fill)
{
    static const char head[] = "{\"model\":\"gpt-4o-mini\",\"max_tokens\":1,"
                               "\"messages\":[{\"role\":\"user\",\"content\":\"";
    static const char tail[] = "\"}]}";
    char *b = malloc(sizeof(head) + content_len + sizeof(tail));
    assert_non_null(b);
    memcpy(b, head, sizeof(head) - 1);
    memset(b + sizeof(head) - 1, fill, content_len);
    memcpy(b + sizeof(head) - 1 + content_len, tail, sizeof(tail));
    return b;
}

static void test_tls_http2_large_bodies(void **state)
{
    fixture f;
    char *bodies[BIG_BODIES];
    size_t content_len[BIG_BODIES];
    sky_test_result r[BIG_BODIES];
    sky_http_request_options o;
    (void)state;
    tls_fixture_open(&f, "/v1/chat/completions");
    memset(r, 0, sizeof(r));
    for (int i = 0; i < BIG_BODIES; i++) {
        content_len[i] = 100000 + (size_t)i * 7919;
        bodies[i] = big_chat_body(content_len[i], (char)('a' + i));
        sky_test_post_options(&o, f.url, bodies[i], sky_test_on_done, &r[i]);
        o.timeout_ms = 30000;
        assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    }
    for (int i = 0; i < BIG_BODIES; i++) {
        assert_true(sky_test_run_until(f.loop, &r[i].done, 30000));
        assert_int_equal(r[i].err_code, 0);
        assert_int_equal(r[i].status, 200);
        assert_int_equal(r[i].http_version, 2);
        json_t *body = NULL;
        assert_int_equal(sky_json_parse(sky_span_make(r[i].body, r[i].body_len), &body, NULL), 0);
        /* the mock's estimate: a token for every 4 characters, and 4 for the message */
        assert_int_equal(json_integer_value(sky_json_path(body, "usage.prompt_tokens")),
                         (json_int_t)((content_len[i] + 3) / 4 + 4));
        json_decref(body);
        sky_test_result_free(&r[i]);
        free(bodies[i]);
    }
    /* one connection for all of them; the stats request is the second */
    assert_int_equal(sky_test_mock_stat(&f.mock, "connections"), 2);
    fixture_close(&f);
}

static void test_tls_refuses_unknown_ca(void **state)
{
    fixture f;
    (void)state;
    fixture_open(&f, 1, NULL, "/v1/models");
    /* the system CAs (or $SSL_CERT_FILE's) do not know the throwaway CA */
    expect_get(&f, f.url, SKY_ETLS, 0);
    fixture_close(&f);
}

static void test_tls_ssl_cert_file(void **state)
{
    fixture f;
    char ca[512];
    (void)state;
    fixture_open(&f, 1, NULL, "/v1/models");
    snprintf(ca, sizeof(ca), "%s/ca.pem", f.mock.dir);
    const char *had = getenv("SSL_CERT_FILE");
    char *old = had ? strdup(had) : NULL;
    setenv("SSL_CERT_FILE", ca, 1);
    tls_client(&f, NULL);
    if (old)
        setenv("SSL_CERT_FILE", old, 1);
    else
        unsetenv("SSL_CERT_FILE");
    free(old);
    expect_get(&f, f.url, 0, 200);
    fixture_close(&f);
}

/* HTTP_PROXY is honoured (libcurl reads it): the mock, on loopback, stands
 * in as the proxy and answers the absolute-form request for a host that
 * does not exist, so nothing leaves the machine. */
static void test_http_proxy_env(void **state)
{
    fixture f;
    sky_test_result r;
    char proxy[128];
    (void)state;
    fixture_open(&f, 0, NULL, "/v1/models");
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", f.mock.port);
    setenv("http_proxy", proxy, 1);
    tls_client(&f, NULL); /* a new client looks at the environment */
    sky_test_request(f.loop, f.client, "GET", "http://models.skyio.invalid/v1/models", NULL, NULL,
                     10000, &r);
    unsetenv("http_proxy");
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "gpt-4o-mini"));
    sky_test_result_free(&r);
    /* HTTP_PROXY too, which libcurl alone ignores for http:// URLs; NO_PROXY still wins */
    setenv("HTTP_PROXY", proxy, 1);
    tls_client(&f, NULL);
    expect_get(&f, "http://models.skyio.invalid/v1/models", 0, 200);
    /* a proxy nobody listens on, which NO_PROXY keeps out of the way */
    char direct[128];
    snprintf(direct, sizeof(direct), "http://localhost:%d/v1/models", f.mock.port);
    setenv("HTTP_PROXY", "http://127.0.0.1:1", 1);
    setenv("NO_PROXY", "localhost", 1);
    tls_client(&f, NULL);
    sky_test_request(f.loop, f.client, "GET", direct, NULL, NULL, 10000, &r);
    unsetenv("HTTP_PROXY");
    unsetenv("NO_PROXY");
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    fixture_close(&f);
}

static void test_connect_refused(void **state)
{
    uv_loop_t *loop = sky_test_loop_new();
    sky_http_client *c;
    sky_test_result r;
    (void)state;
    assert_int_equal(sky_http_client_new(loop, NULL, &c), 0);
    /* port 1 on loopback: nobody listens there */
    sky_test_request(loop, c, "GET", "http://127.0.0.1:1/", NULL, NULL, 5000, &r);
    assert_int_equal(r.err_code, SKY_ECONNECT);
    sky_test_result_free(&r);
    sky_http_client_free(c);
    sky_test_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_and_headers),
        cmocka_unit_test(test_untyped_body),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_idle_connection_watch),
        cmocka_unit_test(test_1500_concurrent),
        cmocka_unit_test(test_streaming_arrives_in_pieces),
        cmocka_unit_test(test_cancel_mid_stream),
        cmocka_unit_test(test_timeout_on_hang),
        cmocka_unit_test(test_cancel_one),
        cmocka_unit_test(test_free_cancels_all),
        cmocka_unit_test(test_free_from_callback),
        cmocka_unit_test(test_fault_http_errors),
        cmocka_unit_test(test_fault_reset),
        cmocka_unit_test(test_fault_cut),
        cmocka_unit_test(test_fault_malformed),
        cmocka_unit_test(test_fault_stream_cut),
        cmocka_unit_test(test_response_cap),
        cmocka_unit_test(test_streamed_request_body),
        cmocka_unit_test(test_pause_and_resume),
        cmocka_unit_test(test_tls_http2_multiplex),
        cmocka_unit_test(test_tls_http2_large_bodies),
        cmocka_unit_test(test_h2c_many_requests),
        cmocka_unit_test(test_tls_refuses_unknown_ca),
        cmocka_unit_test(test_tls_ssl_cert_file),
        cmocka_unit_test(test_http_proxy_env),
        cmocka_unit_test(test_connect_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
