/*
 * Allocation-failure tests of one whole HTTP request against a real `skyio
 * mock` on loopback: with the HTTP client alone, and through the pipeline
 * (sky_call_start). Each run makes the client (and the pipeline), sends,
 * waits, frees and lets the loop close everything. Whatever allocation fails,
 * the request's callback runs exactly once (or the send fails and it never
 * runs), with the reference's result or an error, and nothing is left open
 * or allocated.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "skyio/http.h"
#include "skyio/json.h"
#include "skyio/pipeline.h"
#include "skyio/sse.h"

#include "torture.h"
#include "harness_group.h"

static const char chat_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5}";
static const char stream_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5,\"stream\":true}";

#define BODY_MAX 65536

/* What a callback saw, copied into fixed storage: the callback allocates nothing. */
typedef struct seen {
    int done;    /* done callbacks */
    int headers; /* headers callbacks */
    int status;
    int err_code;
    int curl_code;
    int attempts;
    int http_version;
    char content_type[128];
    char body[BODY_MAX];
    size_t body_len;
    int has_json; /* sky_call_result.json was given */
} seen;

typedef struct http_ctx {
    uv_loop_t loop;
    char url[256];
    sky_headers *headers; /* the test's, made before each run */
    sky_http_client *client;
    sky_pipeline *pipe;
    int send_rc; /* of sky_http_request_send or sky_call_start */
    sky_error send_err;
    int sent; /* the send worked: its callback must run */
    seen s;
    /* how the client is set up and what it asks */
    const char *ca_file; /* the TLS mock's CA */
    int stream;          /* a streamed chat, read as SSE from the body callback */
    sky_sse_parser sse;
    int sse_rc;    /* the parser's failure, which stopped the request */
    int finish_rc; /* sky_sse_parser_finish's, after a whole stream */
    int events, done_marker, chunks;
} http_ctx;

static http_ctx ctx;
static sky_test_mock mock, tls_mock;

static void copy_reply(seen *s, int status, const sky_headers *h, sky_span body)
{
    const char *type = h ? sky_headers_get(h, "Content-Type") : NULL;
    s->status = status;
    snprintf(s->content_type, sizeof(s->content_type), "%s", type ? type : "");
    s->body_len = body.len < sizeof(s->body) ? body.len : sizeof(s->body) - 1;
    if (s->body_len)
        memcpy(s->body, body.ptr, s->body_len);
    s->body[s->body_len] = '\0';
}

/* One streamed event: the test reads its JSON without counting (or failing) that. */
static int on_event(void *user_data, const sky_sse_event *ev)
{
    http_ctx *c = user_data;
    c->events++;
    c->done_marker += ev->is_done;
    if (ev->is_done)
        return 0;
    torture_pause();
    json_t *j = NULL;
    if (sky_json_parse(ev->data, &j, NULL) == 0 &&
        strcmp(sky_json_str(j, "object", ""), "chat.completion.chunk") == 0)
        c->chunks++;
    json_decref(j);
    torture_resume();
    return 0;
}

static void http_setup(void *p)
{
    http_ctx *c = p;
    torture_assert(uv_loop_init(&c->loop) == 0);
    c->headers = sky_headers_new();
    torture_assert(c->headers != NULL);
    torture_assert(sky_headers_add(c->headers, SKY_SPAN_LIT("Content-Type"),
                                   SKY_SPAN_LIT("application/json")) == 0);
    torture_assert(sky_headers_add(c->headers, SKY_SPAN_LIT("Authorization"),
                                   SKY_SPAN_LIT("Bearer test-key")) == 0);
    c->client = NULL;
    c->pipe = NULL;
    c->send_rc = 0;
    c->sent = 0;
    sky_error_clear(&c->send_err);
    memset(&c->s, 0, sizeof(c->s));
    c->sse_rc = c->finish_rc = c->events = c->done_marker = c->chunks = 0;
    sky_sse_parser_init(&c->sse, 0, on_event, c);
}

/* Run the loop until the callback ran (or a minute passed: a callback that never runs). */
static void wait_done(http_ctx *c)
{
    for (int i = 0; i < 60000 && c->s.done == 0; i++)
        uv_run(&c->loop, UV_RUN_ONCE);
}

/* Free what the run made and let the loop close every handle of it. */
static void close_all(http_ctx *c)
{
    sky_pipeline_free(c->pipe);
    sky_http_client_free(c->client);
    c->pipe = NULL;
    c->client = NULL;
    uv_run(&c->loop, UV_RUN_DEFAULT);
}

static void walk_open(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        ++*(int *)arg;
}

static void http_report(void *p, int rc, sky_buf *d)
{
    http_ctx *c = p;
    int open_handles = 0;
    uv_walk(&c->loop, walk_open, &open_handles);
    torture_assert_int(open_handles, 0);
    torture_assert_int(uv_loop_close(&c->loop), 0);
    sky_headers_free(c->headers);
    c->headers = NULL;
    sky_sse_parser_free(&c->sse);
    seen *s = &c->s;
    /* a send that fails (or never happens) calls nothing back; one that works, once */
    torture_assert_int(s->done, c->sent);
    torture_assert(s->headers <= 1);
    if (!c->sent) {
        torture_assert(rc != 0);
        if (c->send_rc != 0)
            torture_assert_int(c->send_err.code, c->send_rc);
        torture_digest(d, "rc=%s (not sent)", sky_err_name(rc));
        return;
    }
    /* a streamed reply's code is the parser's when the parser stopped it */
    int want = s->err_code;
    if (c->stream && want == SKY_ECANCELED && c->sse_rc < 0)
        want = c->sse_rc;
    else if (c->stream && want == 0)
        want = c->finish_rc;
    torture_assert_int(rc, want);
    json_t *j = NULL;
    int parsed = s->body_len ? sky_json_parse(sky_span_make(s->body, s->body_len), &j, NULL) : -1;
    torture_digest(d, "rc=%s status=%d http/%d type=%s json=%d object=%s choices=%zu",
                   sky_err_name(rc), s->status, s->http_version, s->content_type, parsed == 0,
                   sky_json_str(j, "object", "-"), json_array_size(json_object_get(j, "choices")));
    if (c->stream)
        torture_digest(d, " events=%d done=%d chunks=%d", c->events, c->done_marker, c->chunks);
    json_decref(j);
    /*
     * Detail, not result: the pipeline takes a 2xx reply it could not parse for want of
     * memory for a malformed one and sends the request again (pipeline.c, parse_reply and
     * check_json), so such a run succeeds on its second attempt. That is a paid request
     * sent twice; reported, not ours to change here.
     */
    if (rc == 0)
        torture_digest(d, TORTURE_DETAIL " attempts=%d has_json=%d", s->attempts, s->has_json);
}

/* ---- the HTTP client alone ---- */

static void on_headers(sky_http_request *req, int status, const sky_headers *headers,
                       void *user_data)
{
    http_ctx *c = user_data;
    (void)req;
    (void)status;
    (void)headers;
    c->s.headers++;
}

static void on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                    void *user_data)
{
    http_ctx *c = user_data;
    (void)req;
    c->s.done++;
    c->s.err_code = err ? err->code : 0;
    c->s.curl_code = err ? err->curl_code : 0;
    c->s.http_version = res->http_version;
    if (err && getenv("TORTURE_VERBOSE"))
        fprintf(stderr, "torture: request failed: %s (curl %d): %s\n", sky_err_name(err->code),
                err->curl_code, err->message);
    copy_reply(&c->s, res->status, res->headers, res->body);
}

/* A streamed body goes through the SSE parser; its failure stops the request. */
static int on_body(sky_http_request *req, const char *data, size_t len, void *user_data)
{
    http_ctx *c = user_data;
    (void)req;
    int rc = sky_sse_parser_feed(&c->sse, data, len);
    if (rc < 0)
        c->sse_rc = rc;
    return rc < 0;
}

static int client_run(void *p)
{
    http_ctx *c = p;
    sky_http_client_options co;
    sky_http_client_options_init(&co);
    co.ca_file = c->ca_file;
    int rc = sky_http_client_new(&c->loop, &co, &c->client);
    if (rc != 0)
        return rc;
    sky_http_request_options o;
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = c->url;
    o.headers = c->headers;
    o.body = c->stream ? sky_span_make(stream_body, sizeof(stream_body) - 1)
                       : sky_span_make(chat_body, sizeof(chat_body) - 1);
    o.timeout_ms = 30000;
    o.on_headers = on_headers;
    o.on_body = c->stream ? on_body : NULL;
    o.on_done = on_done;
    o.user_data = c;
    c->send_rc = sky_http_request_send(c->client, &o, NULL, &c->send_err);
    c->sent = c->send_rc == 0;
    if (c->sent)
        wait_done(c);
    close_all(c);
    rc = c->send_rc ? c->send_rc : c->s.err_code;
    if (c->stream && c->sent && rc == SKY_ECANCELED && c->sse_rc < 0)
        return c->sse_rc; /* our body callback stopped it, for the parser's reason */
    if (c->stream && rc == 0)
        return c->finish_rc = sky_sse_parser_finish(&c->sse);
    return rc;
}

static void test_http_client(void **state)
{
    (void)state;
    snprintf(ctx.url, sizeof(ctx.url), "%s/v1/chat/completions", mock.base_url);
    ctx.stream = 0;
    ctx.ca_file = NULL;
    const torture_case tc = {.name = "http: one request, client alone",
                             .setup = http_setup,
                             .run = client_run,
                             .report = http_report,
                             .ctx = &ctx};
    torture_run_case(&tc);
}

/* ---- through the pipeline ---- */

static void on_call_done(sky_call *call, const sky_call_result *res, const sky_error *err,
                         void *user_data)
{
    http_ctx *c = user_data;
    (void)call;
    c->s.done++;
    c->s.err_code = err ? err->code : 0;
    c->s.curl_code = err ? err->curl_code : 0;
    c->s.attempts = res->attempts;
    c->s.has_json = res->json != NULL;
    copy_reply(&c->s, res->status, res->headers, res->body);
}

static int pipeline_run(void *p)
{
    http_ctx *c = p;
    int rc = sky_http_client_new(&c->loop, NULL, &c->client);
    if (rc != 0)
        return rc;
    sky_pipeline_options po;
    sky_pipeline_options_init(&po);
    /* retries in milliseconds, not seconds: a run may fail an attempt */
    po.retry.base_ms = 1;
    po.retry.cap_ms = 5;
    po.retry.max_retries = 2;
    po.attempt_timeout_ms = 30000;
    po.rate.initial_rpm = 60000;
    rc = sky_pipeline_new(&c->loop, c->client, &po, &c->pipe);
    if (rc != 0) {
        close_all(c);
        return rc;
    }
    sky_call_options o;
    sky_call_options_init(&o);
    o.method = "POST";
    o.url = c->url;
    o.headers = c->headers;
    o.body = sky_span_make(chat_body, sizeof(chat_body) - 1);
    o.est_tokens = 20;
    o.require_json = 1;
    o.on_done = on_call_done;
    o.user_data = c;
    c->send_rc = sky_call_start(c->pipe, &o, NULL, &c->send_err);
    c->sent = c->send_rc == 0;
    if (c->sent)
        wait_done(c);
    close_all(c);
    return c->send_rc ? c->send_rc : c->s.err_code;
}

static void test_pipeline_call(void **state)
{
    (void)state;
    snprintf(ctx.url, sizeof(ctx.url), "%s/v1/chat/completions", mock.base_url);
    ctx.stream = 0;
    ctx.ca_file = NULL;
    const torture_case tc = {.name = "http: one call through the pipeline",
                             .setup = http_setup,
                             .run = pipeline_run,
                             .report = http_report,
                             .ctx = &ctx};
    torture_run_case(&tc);
}

/* The same request with curl's own allocations failing too, from connection to reply. */
static int client_run_with_curl(void *p)
{
    torture_count_curl(1);
    int rc = client_run(p);
    torture_count_curl(0);
    return rc;
}

static void test_streamed_chat(void **state)
{
    (void)state;
    snprintf(ctx.url, sizeof(ctx.url), "%s/v1/chat/completions", mock.base_url);
    ctx.stream = 1;
    ctx.ca_file = NULL;
    const torture_case tc = {.name = "http: a streamed chat read as SSE",
                             .setup = http_setup,
                             .run = client_run,
                             .report = http_report,
                             .ctx = &ctx};
    torture_run_case(&tc);
    ctx.stream = 0;
}

static void test_tls_http2(void **state)
{
    (void)state;
    char ca[512];
    snprintf(ctx.url, sizeof(ctx.url), "%s/v1/chat/completions", tls_mock.base_url);
    snprintf(ca, sizeof(ca), "%s/ca.pem", tls_mock.dir);
    ctx.stream = 0;
    ctx.ca_file = ca;
    const torture_case tc = {.name = "http: one request over TLS and HTTP/2",
                             .setup = http_setup,
                             .run = client_run,
                             .report = http_report,
                             .ctx = &ctx};
    torture_run_case(&tc);
    ctx.ca_file = NULL;
}

static void test_http_client_and_curl(void **state)
{
    (void)state;
    snprintf(ctx.url, sizeof(ctx.url), "%s/v1/chat/completions", mock.base_url);
    ctx.stream = 0;
    ctx.ca_file = NULL;
    /* curl reports some of its own failed allocations as other errors: a host name it
     * could not copy "could not be resolved" */
    static const int also[] = {SKY_ERESOLVE, 0};
    const torture_case tc = {.name = "http: one request, curl's allocations too",
                             .setup = http_setup,
                             .run = client_run_with_curl,
                             .report = http_report,
                             .ctx = &ctx,
                             .also = also};
    torture_run_case(&tc);
}

static int start_mock(void **state)
{
    (void)state;
    sky_test_mock_start(&mock, NULL);
    tls_mock.tls = 1;
    sky_test_mock_start(&tls_mock, NULL);
    return 0;
}

static int stop_mock(void **state)
{
    (void)state;
    json_t *stats = sky_test_mock_stats(&mock);
    char *text = json_dumps(stats, JSON_COMPACT);
    printf("torture: the mock's stats: %.300s\n", text ? text : "?");
    free(text);
    json_decref(stats);
    sky_test_mock_stop(&mock);
    sky_test_mock_stop(&tls_mock);
    torture_summary();
    return 0;
}

int main(void)
{
    torture_alloc_init();
    if (torture_alloc_init_curl() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_client),          cmocka_unit_test(test_pipeline_call),
        cmocka_unit_test(test_streamed_chat),        cmocka_unit_test(test_tls_http2),
        cmocka_unit_test(test_http_client_and_curl),
    };
    return sky_test_run_group(tests, start_mock, stop_mock);
}
