/*
 * A streamed answer over HTTP/2 (TLS and h2c) must end when the server ends it. With
 * libcurl 7.88 and a receive buffer smaller than what one read of the connection holds
 * for a stream, curl pauses nghttp2 in the last DATA frame and never takes in its
 * END_STREAM until more bytes come: the request ended only at h2o's 10 s idle GOAWAY.
 * Each request here has a 5 s timeout, so a stall fails it instead of passing slowly.
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

#define STALL_GUARD_MS 5000L /* h2o's idle timeout, what a stall waits for, is 10 s */

/* A streamed chat of @p tokens tokens. */
static void stream_body(char *out, size_t len, int tokens)
{
    snprintf(out, len,
             "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
             "\"max_tokens\":%d,\"stream\":true}",
             tokens);
}

/* One streamed chat through @p client: it must end in time, whole, over HTTP/2. */
static void stream_once(uv_loop_t *loop, sky_http_client *client, const char *url, int tokens)
{
    char body[256];
    sky_test_result r;
    stream_body(body, sizeof(body), tokens);
    sky_test_request(loop, client, "POST", url, body, NULL, STALL_GUARD_MS, &r);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.err_code, 0); /* a stall ends in a timeout error */
    assert_int_equal(r.status, 200);
    assert_int_equal(r.http_version, 2);
    assert_non_null(r.body);
    assert_non_null(strstr(r.body, "data: [DONE]"));
    sky_test_result_free(&r);
}

/* Short and long streams on both APIs (Azure's chunks are larger: they carry content
 * filter results), each written at once by the mock, so the end comes in the read that
 * brings the last data. */
static void stream_sizes(const sky_test_mock *m, const sky_http_client_options *co)
{
    static const char *const paths[] = {
        "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-06-01",
        "/v1/chat/completions"};
    static const int tokens[] = {1, 8, 40, 400};
    char url[256];
    uv_loop_t *loop = sky_test_loop_new();
    sky_http_client *client = NULL;
    assert_int_equal(sky_http_client_new(loop, co, &client), 0);
    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
        snprintf(url, sizeof(url), "%s%s", m->base_url, paths[p]);
        for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
            stream_once(loop, client, url, tokens[i]);
    }
    sky_http_client_free(client);
    sky_test_loop_free(loop);
}

static void test_tls_h2_stream_ends(void **state)
{
    sky_test_mock m;
    sky_http_client_options co;
    char ca[512];
    (void)state;
    memset(&m, 0, sizeof(m));
    m.tls = 1;
    sky_test_mock_start(&m, NULL);
    snprintf(ca, sizeof(ca), "%s/ca.pem", m.dir);
    sky_http_client_options_init(&co);
    co.ca_file = ca;
    stream_sizes(&m, &co);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_h2c_stream_ends(void **state)
{
    sky_test_mock m;
    sky_http_client_options co;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    sky_http_client_options_init(&co);
    co.http2_prior_knowledge = 1;
    stream_sizes(&m, &co);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_h2_stream_ends),
        cmocka_unit_test(test_h2c_stream_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
