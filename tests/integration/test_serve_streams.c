/*
 * `skyio serve`'s streams through the fleet of harness_serve_fleet.h: chat, Responses and
 * legacy completions passed through chunk by chunk as they come, and a client that leaves
 * mid-stream cancels its upstream call (the mock's stats show it).
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness_serve_fleet.h"
#include "skyio/buf.h"
#include "skyio/headers.h"
#include "skyio/json.h"
#include "harness_group.h"

/* ---- streams ---- */

typedef struct stream_rec {
    int done, status, err_code, chunks, cancel_after;
    sky_buf body;
    sky_http_request *req;
    char content_type[64], cache[32], accel[16];
} stream_rec;

static void on_stream_headers(sky_http_request *req, int status, const sky_headers *h, void *ud)
{
    stream_rec *s = ud;
    (void)req;
    s->status = status;
    snprintf(s->content_type, sizeof(s->content_type), "%s",
             sky_headers_get(h, "content-type") ? sky_headers_get(h, "content-type") : "");
    snprintf(s->cache, sizeof(s->cache), "%s",
             sky_headers_get(h, "cache-control") ? sky_headers_get(h, "cache-control") : "");
    snprintf(s->accel, sizeof(s->accel), "%s",
             sky_headers_get(h, "x-accel-buffering") ? sky_headers_get(h, "x-accel-buffering")
                                                     : "");
}

static int on_stream_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    stream_rec *s = ud;
    (void)req;
    assert_int_equal(sky_buf_append(&s->body, data, len), 0);
    if (++s->chunks == s->cancel_after)
        sky_http_request_cancel(s->req);
    return 0;
}

static void on_stream_done(sky_http_request *req, const sky_http_response *res,
                           const sky_error *err, void *ud)
{
    stream_rec *s = ud;
    (void)req;
    (void)res;
    s->done++;
    s->err_code = err ? err->code : 0;
}

static void stream_to(const char *path, const char *body, int cancel_after, stream_rec *s)
{
    char url[256];
    sky_http_request_options o;
    sky_headers *h = sky_test_bearer_json_headers(SKY_FLEET_CLIENT_KEY);
    memset(s, 0, sizeof(*s));
    sky_buf_init(&s->body, 1 << 20);
    s->cancel_after = cancel_after;
    snprintf(url, sizeof(url), "%s%s", sky_fleet.serve.base, path);
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = url;
    o.headers = h;
    o.body = sky_span_cstr(body);
    o.timeout_ms = 20000;
    o.on_headers = on_stream_headers;
    o.on_body = on_stream_body;
    o.on_done = on_stream_done;
    o.user_data = s;
    assert_int_equal(sky_http_request_send(sky_fleet.client, &o, &s->req, NULL), 0);
    sky_headers_free(h);
    sky_test_run_until(sky_fleet.loop, &s->done, 25000);
    assert_int_equal(s->done, 1);
    assert_null(strstr(s->body.data ? s->body.data : "", SKY_FLEET_UPSTREAM_KEY));
}

static void stream(const char *body, int cancel_after, stream_rec *s)
{
    stream_to("/v1/chat/completions", body, cancel_after, s);
}

static void test_stream_chat(void **state)
{
    (void)state;
    stream_rec s;
    stream("{\"model\":\"slow\",\"stream\":true,\"max_tokens\":12,"
           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
           0, &s);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.status, 200);
    assert_string_equal(s.content_type, "text/event-stream");
    assert_string_equal(s.cache, "no-cache");
    assert_string_equal(s.accel, "no");
    /* tokens 20 ms apart arrive as they come, not in one piece at the end */
    assert_true(s.chunks >= 5);
    const char *end = "data: [DONE]\n\n";
    assert_true(s.body.len > strlen(end));
    assert_string_equal(s.body.data + s.body.len - strlen(end), end);
    assert_non_null(strstr(s.body.data, "chat.completion.chunk"));
    sky_buf_free(&s.body);
}

/* The Responses API's typed events, through the Azure deployment, as they come */
static void test_stream_responses(void **state)
{
    (void)state;
    stream_rec s;
    stream_to("/v1/responses",
              "{\"model\":\"slow\",\"stream\":true,\"max_output_tokens\":8,\"input\":\"hi\"}", 0,
              &s);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.status, 200);
    assert_string_equal(s.content_type, "text/event-stream");
    assert_true(s.chunks >= 5);
    assert_non_null(strstr(s.body.data, "event: response.output_text.delta"));
    assert_non_null(strstr(s.body.data, "event: response.output_text.done"));
    assert_null(strstr(s.body.data, "[DONE]"));
    sky_buf_free(&s.body);
    /* and a streamed legacy completion */
    stream_to("/v1/completions",
              "{\"model\":\"slow\",\"stream\":true,\"max_tokens\":6,\"prompt\":\"hi\"}", 0, &s);
    assert_int_equal(s.err_code, 0);
    assert_true(s.chunks >= 3);
    assert_non_null(strstr(s.body.data, "text_completion"));
    assert_non_null(strstr(s.body.data, "data: [DONE]"));
    sky_buf_free(&s.body);
}

static void test_disconnect_cancels_upstream(void **state)
{
    (void)state;
    stream_rec s;
    json_t *before = sky_test_mock_stats(&sky_fleet.slow);
    int64_t streams0 = json_integer_value(json_object_get(before, "streams"));
    int64_t tokens0 = json_integer_value(sky_json_path(before, "tokens.completion"));
    json_decref(before);
    /* 200 tokens 20 ms apart: 4 s of stream; the client leaves after 3 chunks */
    stream("{\"model\":\"slow\",\"stream\":true,\"max_tokens\":200,"
           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
           3, &s);
    assert_int_equal(s.err_code, SKY_ECANCELED);
    sky_buf_free(&s.body);
    /* the mock's request ends well before the stream would have: in_flight back to 0
     * (the stats request itself is not counted) */
    uint64_t t0 = uv_hrtime();
    int64_t in_flight = 1;
    while (in_flight > 0 && uv_hrtime() - t0 < UINT64_C(1500) * 1000000) {
        json_t *st = sky_test_mock_stats(&sky_fleet.slow);
        in_flight = json_integer_value(json_object_get(st, "in_flight"));
        json_decref(st);
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    assert_int_equal(in_flight, 0);
    json_t *after = sky_test_mock_stats(&sky_fleet.slow);
    assert_int_equal(json_integer_value(json_object_get(after, "streams")), streams0 + 1);
    /* a stream counts its tokens when it completes: this one never did */
    assert_int_equal(json_integer_value(sky_json_path(after, "tokens.completion")), tokens0);
    json_decref(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_chat),
        cmocka_unit_test(test_stream_responses),
        cmocka_unit_test(test_disconnect_cancels_upstream),
    };
    return sky_test_run_group(tests, sky_fleet_setup, sky_fleet_teardown);
}
