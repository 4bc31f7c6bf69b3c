/*
 * `skyio serve` once bytes have gone to the client (issue 17, "Routing"): a streamed chat
 * whose upstream fails half-way is not moved to another deployment or to the fallback
 * model; the client gets the chunks sent so far and then what the provider sent (its error
 * chunk, or the stream's end without data: [DONE]). Before the first byte, the same
 * fallback takes the request (the control that shows the fallback is there to take).
 * Real processes on loopback: four `skyio mock` (one sends an error chunk half-way through
 * every stream, one cuts every stream short, one refuses every call with 503, one healthy)
 * and one `skyio serve`.
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
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

static struct {
    sky_test_mock erring, cutting, refusing, good;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static int setup(void **state)
{
    (void)state;
    static const char *const erring[] = {"--fault-stream-error", "1", "--per-token-ms", "2", NULL};
    static const char *const cutting[] = {"--fault-stream-cut", "1", "--per-token-ms", "2", NULL};
    static const char *const refusing[] = {"--fault-503", "1", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.erring, erring);
    sky_test_mock_start(&env.cutting, cutting);
    sky_test_mock_start(&env.refusing, refusing);
    sky_test_mock_start(&env.good, NULL);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    char config[512];
    /* each failing model has one deployment and falls back to "good" */
    sky_test_gateway_config(config, sizeof(config), env.dir,
                            "{\"models\": {"
                            " \"erring\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}],"
                            " \"cutting\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}],"
                            " \"refusing\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}],"
                            " \"good\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]},"
                            " \"fallbacks\": {\"erring\": [\"good\"], \"cutting\": [\"good\"],"
                            " \"refusing\": [\"good\"]}}\n",
                            env.erring.base_url, env.cutting.base_url, env.refusing.base_url,
                            env.good.base_url);
    const char *const args[] = {"--config", config, "--grace-ms", "500", NULL};
    sky_test_serve_start(&env.serve, env.dir, args, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.erring, &env.cutting, &env.refusing, &env.good, NULL};
    sky_test_serve_teardown(&env.serve, env.loop, env.client, mocks, env.dir);
    return 0;
}

/* A streamed chat of @p model through the gateway, whole, into @p r. */
static void stream_chat(const char *model, sky_test_result *r)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"stream\":true,\"max_tokens\":12,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
             model);
    sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/chat/completions", body,
                        NULL, NULL, r);
    assert_int_equal(r->err_code, 0);
}

/* The number of "data: " events in @p text holding @p needle. */
static int events_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *at = strstr(text, "data: "); at; at = strstr(at + 6, "data: ")) {
        const char *end = strstr(at, "\n\n");
        size_t len = end ? (size_t)(end - at) : strlen(at);
        const char *hit = strstr(at, needle);
        n += hit != NULL && hit < at + len;
    }
    return n;
}

static void test_error_chunk_after_first_byte_is_passed_on(void **state)
{
    (void)state;
    sky_test_result r;
    stream_chat("erring", &r);
    assert_int_equal(r.status, 200);
    /* what the upstream sent before its error came through, from the upstream's model... */
    assert_true(events_with(r.body, "chat.completion.chunk") >= 1);
    assert_true(events_with(r.body, "\"model\":\"erring\"") >= 1);
    /* ...then its error chunk, as it sent it, and nothing after: no [DONE], no fallback */
    const char *err = strstr(r.body, "data: {\"error\":");
    assert_non_null(err);
    assert_non_null(strstr(err, "\"type\":\"server_error\""));
    assert_null(strstr(err + 1, "data: "));
    assert_null(strstr(r.body, "\"model\":\"good\""));
    sky_test_result_free(&r);
    assert_int_equal(sky_test_mock_stat(&env.erring, "faults.stream_error"), 1);
    assert_int_equal(sky_test_mock_stat(&env.erring, "endpoints.chat"), 1);
    assert_int_equal(sky_test_mock_stat(&env.good, "endpoints.chat"), 0);
}

static void test_cut_stream_after_first_byte_is_not_moved(void **state)
{
    (void)state;
    sky_test_result r;
    stream_chat("cutting", &r);
    assert_int_equal(r.status, 200);
    assert_true(events_with(r.body, "\"model\":\"cutting\"") >= 1);
    /* the upstream ended before data: [DONE]: so does the client's stream */
    assert_null(strstr(r.body, "[DONE]"));
    assert_null(strstr(r.body, "\"model\":\"good\""));
    sky_test_result_free(&r);
    assert_int_equal(sky_test_mock_stat(&env.cutting, "faults.stream_cut"), 1);
    assert_int_equal(sky_test_mock_stat(&env.cutting, "endpoints.chat"), 1);
    assert_int_equal(sky_test_mock_stat(&env.good, "endpoints.chat"), 0);
}

/* The control: a 503 before any byte goes to the same fallback, which answers the stream */
static void test_refusal_before_first_byte_falls_back(void **state)
{
    (void)state;
    sky_test_result r;
    stream_chat("refusing", &r);
    assert_int_equal(r.status, 200);
    assert_true(events_with(r.body, "\"model\":\"good\"") >= 1);
    assert_non_null(strstr(r.body, "data: [DONE]"));
    assert_null(strstr(r.body, "\"error\""));
    sky_test_result_free(&r);
    assert_true(sky_test_mock_stat(&env.refusing, "responses.503") >= 1);
    assert_int_equal(sky_test_mock_stat(&env.good, "endpoints.chat"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_chunk_after_first_byte_is_passed_on),
        cmocka_unit_test(test_cut_stream_after_first_byte_is_not_moved),
        cmocka_unit_test(test_refusal_before_first_byte_falls_back),
    };
    return sky_test_run_group(tests, setup, teardown);
}
