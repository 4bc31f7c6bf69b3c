/*
 * `skyio serve`'s routes, a real process in front of real `skyio mock` processes on loopback
 * (the fleet of harness_serve_fleet.h): plain chat, embeddings, models, responses and
 * completions, Azure's paths, every bad-input answer, a body over the limit, and the
 * official OpenAI Node SDK as the client; no upstream key in any reply or log.
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
#include "skyio/json.h"
#include "harness_group.h"

static void test_plain_chat(void **state)
{
    (void)state;
    sky_test_result r;
    sky_fleet_call("POST", "/v1/chat/completions", sky_fleet_chat_body, SKY_FLEET_CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    json_t *j = sky_fleet_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "chat.completion");
    assert_true(json_is_string(sky_json_path(j, "choices.0.message.content")));
    json_decref(j);
    sky_test_result_free(&r);
}

static void test_embeddings(void **state)
{
    (void)state;
    sky_test_result r;
    sky_fleet_call(
        "POST", "/v1/embeddings",
        "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\"],\"dimensions\":8}",
        SKY_FLEET_LIMITED_KEY, &r);
    assert_int_equal(r.status, 200);
    json_t *j = sky_fleet_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    assert_int_equal(json_array_size(sky_json_path(j, "data.0.embedding")), 8);
    json_decref(j);
    sky_test_result_free(&r);
}

static void test_models(void **state)
{
    (void)state;
    sky_test_result r;
    sky_fleet_call("GET", "/v1/models", NULL, SKY_FLEET_CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    json_t *j = sky_fleet_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "list");
    assert_int_equal(json_array_size(json_object_get(j, "data")), 7);
    assert_string_equal(sky_json_str(sky_json_path(j, "data.0"), "id", ""), "gpt-4o");
    json_decref(j);
    sky_test_result_free(&r);
    /* a key limited to some models sees only those */
    sky_fleet_call("GET", "/v1/models", NULL, SKY_FLEET_LIMITED_KEY, &r);
    j = sky_fleet_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    sky_test_result_free(&r);
    sky_fleet_call("GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    /* one model, as the SDKs' models.retrieve asks */
    sky_fleet_call("GET", "/v1/models/gpt-4o", NULL, SKY_FLEET_CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    j = sky_fleet_json(&r);
    assert_string_equal(sky_json_str(j, "id", ""), "gpt-4o");
    assert_string_equal(sky_json_str(j, "object", ""), "model");
    json_decref(j);
    sky_test_result_free(&r);
    sky_fleet_call("GET", "/v1/models/gpt-4o", NULL, SKY_FLEET_LIMITED_KEY, &r);
    sky_fleet_expect_error(&r, 404, "invalid_request_error", "model_not_found");
    sky_test_result_free(&r);
    sky_fleet_call("GET", "/openai/models/gpt-4o?api-version=2024-10-21", NULL,
                   SKY_FLEET_CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    sky_fleet_call("GET", "/openai/v1/models/no-such", NULL, SKY_FLEET_CLIENT_KEY, &r);
    sky_fleet_expect_error(&r, 404, "invalid_request_error", "model_not_found");
    sky_test_result_free(&r);
}

static void test_responses_and_completions(void **state)
{
    (void)state;
    sky_test_result r;
    sky_fleet_call("POST", "/v1/responses", "{\"model\":\"gpt-4o\",\"input\":\"hi\"}",
                   SKY_FLEET_CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    json_t *j = sky_fleet_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "response");
    assert_true(json_is_array(json_object_get(j, "output")));
    json_decref(j);
    sky_test_result_free(&r);
    /* to an Azure deployment: its v1 Responses path, the deployment's name in the body */
    sky_fleet_call("POST", "/v1/responses",
                   "{\"model\":\"slow\",\"input\":\"hi\",\"max_output_tokens\":3}",
                   SKY_FLEET_CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    j = sky_fleet_json(&r);
    assert_string_equal(sky_json_str(j, "model", ""), "slow-dep");
    json_decref(j);
    sky_test_result_free(&r);
    sky_fleet_call("POST", "/v1/completions", "{\"model\":\"gpt-4o\",\"prompt\":\"once upon\"}",
                   SKY_FLEET_CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    j = sky_fleet_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "text_completion");
    assert_true(json_is_string(sky_json_path(j, "choices.0.text")));
    json_decref(j);
    sky_test_result_free(&r);
}

/* Azure's paths, with Azure's api-key header: the path names the model, the body need not */
static void test_azure_routes(void **state)
{
    (void)state;
    sky_test_result r;
    const char *key = "api-key: " SKY_FLEET_CLIENT_KEY;
    sky_fleet_call_with("POST",
                        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", key, &r);
    assert_int_equal(r.status, 200);
    json_t *j = sky_fleet_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "chat.completion");
    /* an OpenAI-kind upstream needs the model in the body: the gateway put it there */
    assert_string_equal(sky_json_str(j, "model", ""), "gpt-4o");
    json_decref(j);
    sky_test_result_free(&r);
    sky_fleet_call_with(
        "POST", "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21",
        "{\"input\":\"a\",\"dimensions\":4}", key, &r);
    assert_int_equal(r.status, 200);
    j = sky_fleet_json(&r);
    assert_int_equal(json_array_size(sky_json_path(j, "data.0.embedding")), 4);
    json_decref(j);
    sky_test_result_free(&r);
    sky_fleet_call_with("POST", "/openai/deployments/slow/completions?api-version=2024-10-21",
                        "{\"prompt\":\"x\",\"max_tokens\":2}", key, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    sky_fleet_call_with("POST", "/openai/responses?api-version=2025-04-01-preview",
                        "{\"model\":\"gpt-4o\",\"input\":\"hi\"}", key, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    sky_fleet_call_with("POST", "/openai/deployments/nope/chat/completions?api-version=2024-10-21",
                        "{\"messages\":[]}", key, &r);
    sky_fleet_expect_error(&r, 404, "invalid_request_error", "model_not_found");
    sky_test_result_free(&r);
    sky_fleet_call_with("POST",
                        "/openai/deployments/gpt-4o/images/generations?api-version=2024-10-21",
                        "{}", key, &r);
    assert_int_equal(r.status, 404);
    sky_test_result_free(&r);
    sky_fleet_call_with("POST",
                        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
                        "{\"messages\":[]}", "api-key: sk-wrong", &r);
    sky_fleet_expect_error(&r, 401, "invalid_request_error", "invalid_api_key");
    sky_test_result_free(&r);
}

/* ---- bad input ---- */

static void test_bad_input(void **state)
{
    (void)state;
    sky_test_result r;
    sky_fleet_call("POST", "/v1/chat/completions", sky_fleet_chat_body, NULL, &r);
    sky_fleet_expect_error(&r, 401, "invalid_request_error", "invalid_api_key");
    sky_test_result_free(&r);
    sky_fleet_call("POST", "/v1/chat/completions", sky_fleet_chat_body, "sk-wrong", &r);
    sky_fleet_expect_error(&r, 401, "invalid_request_error", "invalid_api_key");
    assert_null(strstr(r.body, "sk-wrong"));
    sky_test_result_free(&r);
    sky_fleet_call("GET", "/v1/models", NULL, "sk-wrong", &r);
    sky_fleet_expect_error(&r, 401, "invalid_request_error", "invalid_api_key");
    sky_test_result_free(&r);
    sky_fleet_call("POST", "/v1/chat/completions", "{\"model\":\"gpt-4o\",", SKY_FLEET_CLIENT_KEY,
                   &r);
    sky_fleet_expect_error(&r, 400, "invalid_request_error", NULL);
    sky_test_result_free(&r);
    sky_fleet_call("POST", "/v1/chat/completions", "[1,2]", SKY_FLEET_CLIENT_KEY, &r);
    sky_fleet_expect_error(&r, 400, "invalid_request_error", NULL);
    sky_test_result_free(&r);
    sky_fleet_call("POST", "/v1/chat/completions", "{\"messages\":[]}", SKY_FLEET_CLIENT_KEY, &r);
    sky_fleet_expect_error(&r, 400, "invalid_request_error", NULL);
    sky_test_result_free(&r);
    sky_fleet_call("POST", "/v1/chat/completions",
                   "{\"model\":\"gpt-5-imaginary\",\"messages\":[]}", SKY_FLEET_CLIENT_KEY, &r);
    sky_fleet_expect_error(&r, 404, "invalid_request_error", "model_not_found");
    sky_test_result_free(&r);
    sky_fleet_call("POST", "/v1/chat/completions", sky_fleet_chat_body, SKY_FLEET_LIMITED_KEY, &r);
    sky_fleet_expect_error(&r, 403, "invalid_request_error", "model_not_allowed");
    sky_test_result_free(&r);
    /* the canary in the metrics and the readiness too: sky_fleet_call() looks at every reply */
    sky_fleet_call("GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, SKY_FLEET_CLIENT_KEY));
    sky_test_result_free(&r);
    sky_fleet_call("GET", "/readyz", NULL, NULL, &r);
    sky_test_result_free(&r);
}

static void test_body_too_large(void **state)
{
    (void)state;
    size_t n = SKY_FLEET_MAX_BODY + 1000;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int at = sprintf(big, "{\"model\":\"gpt-4o\",\"messages\":[],\"pad\":\"");
    memset(big + at, 'x', n - (size_t)at);
    strcpy(big + n, "\"}");
    sky_test_result r;
    sky_fleet_call("POST", "/v1/chat/completions", big, SKY_FLEET_CLIENT_KEY, &r);
    sky_fleet_expect_error(&r, 413, "invalid_request_error", "request_too_large");
    sky_test_result_free(&r);
    free(big);
}

/* ---- the official OpenAI Node SDK as the client ---- */

static void test_openai_node_sdk(void **state)
{
    (void)state;
    char cmd[2048];
    const char *sdk = SKY_TEST_SRCDIR "/.deps/compat-node";
    snprintf(cmd, sizeof(cmd), "%s/node_modules/openai/package.json", sdk);
    if (access(cmd, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: node or the openai package (scripts/install-deps) missing\n");
        skip();
    }
    snprintf(cmd, sizeof(cmd),
             "node '%s/tests/integration/serve_openai_sdk.mjs' '%s' '%s' '%s' > '%s/sdk.log' 2>&1",
             SKY_TEST_SRCDIR, sdk, sky_fleet.serve.base, SKY_FLEET_CLIENT_KEY, sky_fleet.dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s/sdk.log' >&2", sky_fleet.dir);
        (void)system(cmd);
    }
    assert_int_equal(rc, 0);
    assert_false(sky_fleet_log_holds("sdk.log", SKY_FLEET_UPSTREAM_KEY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_chat),     cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_models),         cmocka_unit_test(test_responses_and_completions),
        cmocka_unit_test(test_azure_routes),   cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_body_too_large), cmocka_unit_test(test_openai_node_sdk),
    };
    return sky_test_run_group(tests, sky_fleet_setup, sky_fleet_teardown);
}
