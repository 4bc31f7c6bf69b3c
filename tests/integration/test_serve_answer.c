/*
 * `skyio serve` reads a held (non-streamed) answer once: the same pass checks it is JSON
 * and takes its usage. A 200 whose body is not JSON is worth another deployment; what the
 * good answers used is in /metrics and the access log.
 * Real processes on loopback: two `skyio mock` (one answers every chat with a garbled
 * body), one `skyio serve`.
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

#define CALLS 12

typedef struct answer_env {
    sky_test_mock garbled, good;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} answer_env;

static answer_env env;

static int setup(void **state)
{
    (void)state;
    static const char *const garbled[] = {"--fault-malformed", "1", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.garbled, garbled);
    sky_test_mock_start(&env.good, NULL);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    char config[512], access[512];
    snprintf(access, sizeof(access), "%s/access.log", env.dir);
    /* the garbled deployment weighs most: the picks start there nearly always */
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"m\": ["
        "{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"weight\": 50},"
        "{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"weight\": 1}]}}\n",
        env.garbled.base_url, env.good.base_url);
    const char *const args[] = {"--config", config, "--access-log", access, NULL};
    sky_test_serve_start(&env.serve, env.dir, args, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.garbled, &env.good, NULL};
    sky_test_serve_teardown(&env.serve, env.loop, env.client, mocks, env.dir);
    return 0;
}

/* A chat through the gateway: its answer's prompt tokens (it must be a 200 of JSON). */
static int64_t chat(void)
{
    sky_test_result r;
    sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/chat/completions",
                        "{\"model\":\"m\",\"max_tokens\":5,"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}",
                        NULL, NULL, &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_make(r.body, r.body_len), &j, NULL), 0);
    int64_t prompt = sky_json_int(sky_json_path(j, "usage"), "prompt_tokens", -1);
    json_decref(j);
    sky_test_result_free(&r);
    assert_true(prompt > 0);
    return prompt;
}

static void test_garbled_answer_goes_elsewhere_usage_counted(void **state)
{
    (void)state;
    int64_t prompt = 0;
    for (int i = 0; i < CALLS; i++)
        prompt += chat();
    /* the garbled deployment was tried (twice a call: once more, then final), and each
     * call was answered by the good one */
    assert_true(sky_test_mock_stat(&env.garbled, "faults.malformed") >= 2);
    assert_int_equal(sky_test_mock_stat(&env.good, "endpoints.chat"), CALLS);
    sky_test_result r;
    sky_test_serve_metrics(&env.serve, env.loop, env.client, &r);
    /* the one read of each answer gave its usage to the metrics */
    assert_int_equal(
        (int64_t)sky_test_sample(r.body, "skyio_gateway_tokens_total{model=\"m\",kind=\"prompt\"}"),
        prompt);
    assert_true(sky_test_sample(r.body, "skyio_gateway_requests_total{route=\"/v1/chat/"
                                        "completions\",model=\"m\",deployment=\"m#1\","
                                        "status=\"200\"}") == CALLS);
    sky_test_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_garbled_answer_goes_elsewhere_usage_counted, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
