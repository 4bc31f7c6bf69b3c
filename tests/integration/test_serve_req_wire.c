/*
 * What `skyio serve` puts on the wire to each kind of deployment (issue 17, "Routing": kind,
 * base URL, where its key comes from, api-version), read by an upstream that keeps what it
 * got (skyio's server layer in this process, on the test's loop):
 * - azure: the deployment's name in the path, the config's api_version in the query, the
 *   key from its variable in `api-key`, no Authorization;
 * - openai: the path under the base URL, `Authorization: Bearer` with the key, the body's
 *   model rewritten to the deployment's upstream name;
 * - compatible without key_env: no key at all.
 * The client's own key never goes upstream.
 * Real processes on loopback: one `skyio serve` (its upstream is this process).
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
#include "skyio/server.h"
#include "harness_group.h"

#define UPSTREAM_KEY "sk-upstream-wire-2c7d"
#define CLIENT_KEY "sk-client-wire-9e41"

/* What the last upstream call carried. */
typedef struct seen {
    int calls;
    char path[256], query[256], api_key[128], auth[160], model[64];
} seen;

static struct {
    sky_server *upstream;
    seen last;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static void copy_span(char *out, size_t len, sky_span s)
{
    snprintf(out, len, "%.*s", (int)s.len, s.ptr ? s.ptr : "");
}

static void copy_header(sky_server_req *r, const char *name, char *out, size_t len)
{
    sky_span v = {0};
    out[0] = '\0';
    if (sky_server_req_header(r, name, &v))
        copy_span(out, len, v);
}

static void on_upstream(sky_server_req *r, void *ud)
{
    seen *s = &env.last;
    json_t *body = NULL;
    (void)ud;
    memset(s, 0, sizeof(*s));
    s->calls = 1;
    copy_span(s->path, sizeof(s->path), sky_server_req_path(r));
    copy_span(s->query, sizeof(s->query), sky_server_req_query(r));
    copy_header(r, "api-key", s->api_key, sizeof(s->api_key));
    copy_header(r, "authorization", s->auth, sizeof(s->auth));
    sky_span b = sky_server_req_body(r);
    if (sky_json_parse(b, &body, NULL) == 0)
        snprintf(s->model, sizeof(s->model), "%s", sky_json_str(body, "model", ""));
    json_decref(body);
    sky_server_respond(r, 200, "application/json",
                       SKY_SPAN_LIT("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
                                    "\"created\":1,\"model\":\"x\",\"choices\":[{\"index\":0,"
                                    "\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},"
                                    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":"
                                    "2,\"completion_tokens\":1,\"total_tokens\":3}}"));
}

static void serve_env(void)
{
    setenv("SKY_TEST_UPSTREAM_KEY", UPSTREAM_KEY, 1);
    setenv("SKY_TEST_CLIENT_KEY", CLIENT_KEY, 1);
}

static int setup(void **state)
{
    (void)state;
    sky_server_options o;
    sky_error err;
    memset(&env, 0, sizeof(env));
    sky_test_client_open(&env.loop, &env.client);
    sky_server_options_init(&o);
    sky_error_clear(&err);
    assert_int_equal(sky_server_new(env.loop, &o, &env.upstream, &err), 0);
    assert_int_equal(sky_server_route(env.upstream, "POST", "/", 1, on_upstream, NULL), 0);
    assert_int_equal(sky_server_listen(env.upstream, &err), 0);
    int port = sky_server_port(env.upstream);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    char config[512];
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {"
        " \"az\": [{\"kind\": \"azure\", \"base_url\": \"http://127.0.0.1:%d\", \"deployment\": "
        "\"east-gpt4o\", \"api_version\": \"2024-10-21\", \"key_env\": \"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"oa\": [{\"kind\": \"openai\", \"base_url\": \"http://127.0.0.1:%d/v1\", "
        "\"deployment\": "
        "\"gpt-4o-2024-08-06\", \"key_env\": \"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"local\": [{\"kind\": \"compatible\", \"base_url\": \"http://127.0.0.1:%d/v1\"}]},"
        " \"keys\": [{\"name\": \"c\", \"key_env\": \"SKY_TEST_CLIENT_KEY\"}]}\n",
        port, port, port);
    const char *const args[] = {"--config", config, NULL};
    sky_test_serve_start(&env.serve, env.dir, args, serve_env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = sky_test_stop_child(env.serve.pid);
    sky_server_free(env.upstream);
    sky_test_serve_teardown(NULL, env.loop, env.client, NULL, env.dir);
    assert_true(sky_test_exited_ok(status));
    return 0;
}

/* A chat of @p model through the gateway with the client's key: 200, one upstream call. */
static const seen *chat(const char *model)
{
    char body[200];
    sky_test_result r;
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", model);
    memset(&env.last, 0, sizeof(env.last));
    sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/chat/completions", body,
                        CLIENT_KEY, NULL, &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    assert_int_equal(env.last.calls, 1);
    /* the client's key is the gateway's, never the upstream's */
    assert_null(strstr(env.last.api_key, CLIENT_KEY));
    assert_null(strstr(env.last.auth, CLIENT_KEY));
    return &env.last;
}

static void test_azure_deployment(void **state)
{
    (void)state;
    const seen *s = chat("az");
    assert_string_equal(s->path, "/openai/deployments/east-gpt4o/chat/completions");
    assert_non_null(strstr(s->query, "api-version=2024-10-21"));
    assert_string_equal(s->api_key, UPSTREAM_KEY);
    assert_string_equal(s->auth, "");
}

static void test_openai_deployment(void **state)
{
    (void)state;
    const seen *s = chat("oa");
    assert_string_equal(s->path, "/v1/chat/completions");
    assert_string_equal(s->auth, "Bearer " UPSTREAM_KEY);
    assert_string_equal(s->api_key, "");
    assert_string_equal(s->model, "gpt-4o-2024-08-06");
}

static void test_compatible_without_a_key(void **state)
{
    (void)state;
    const seen *s = chat("local");
    assert_string_equal(s->path, "/v1/chat/completions");
    assert_string_equal(s->auth, "");
    assert_string_equal(s->api_key, "");
    assert_string_equal(s->model, "local");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_azure_deployment),
        cmocka_unit_test(test_openai_deployment),
        cmocka_unit_test(test_compatible_without_a_key),
    };
    return sky_test_run_group(tests, setup, teardown);
}
