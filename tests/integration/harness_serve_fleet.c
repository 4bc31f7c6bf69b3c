/* Integration-test harness: the fleet of test_serve_*.c. See harness_serve_fleet.h. */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness_serve_fleet.h"
#include "skyio/gateway.h"
#include "skyio/json.h"

sky_test_fleet sky_fleet;

/* ---- starting serve ---- */

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

static void write_config(const char *path, int closed_port)
{
    unsigned char h[SKY_GATEWAY_SHA256_LEN];
    char hx[2 * SKY_GATEWAY_SHA256_LEN + 1];
    assert_int_equal(sky_gateway_key_hash(sky_span_cstr(SKY_FLEET_CLIENT_KEY), h), 0);
    hex(h, sizeof(h), hx);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(
        f,
        "{\"models\": {"
        " \"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\"},"
        "              {\"kind\": \"openai\", \"base_url\": \"%s/v1\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"text-embedding-3-small\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", "
        "\"key_env\": \"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"slow\": [{\"kind\": \"azure\", \"base_url\": \"%s\", \"deployment\": \"slow-dep\", "
        "\"key_env\": \"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"flaky\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\", \"weight\": 10},"
        "             {\"kind\": \"compatible\", \"base_url\": \"http://127.0.0.1:%d\", "
        "\"weight\": 10},"
        "             {\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\", \"deployment\": \"gpt-4o-mini\", \"weight\": 1}],"
        " \"fallen\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"wordy\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"weight\": 10},"
        "            {\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\", \"weight\": 1}],"
        " \"busy\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"weight\": 10},"
        "           {\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\", \"weight\": 1}]},"
        " \"fallbacks\": {\"fallen\": [\"gpt-4o\"]},"
        " \"keys\": [{\"name\": \"full\", \"key_sha256\": \"%s\"},"
        "          {\"name\": \"limited\", \"key_env\": \"SKY_TEST_LIMITED_KEY\", "
        "\"models\": [\"text-embedding-3-small\"]},"
        "          {\"name\": \"metered\", \"key_env\": \"SKY_TEST_METERED_KEY\", \"rpm\": 3},"
        "          {\"name\": \"tokens\", \"key_env\": \"SKY_TEST_TOKENS_KEY\", \"tpm\": 100}]}\n",
        sky_fleet.fast.base_url, sky_fleet.fast2.base_url, sky_fleet.fast.base_url,
        sky_fleet.slow.base_url, sky_fleet.broken.base_url, closed_port, sky_fleet.fast2.base_url,
        sky_fleet.broken.base_url, sky_fleet.wordy.base_url, sky_fleet.fast.base_url,
        sky_fleet.throttled.base_url, sky_fleet.fast.base_url, hx);
    fclose(f);
}

static void serve_child_env(void)
{
    setenv("SKY_TEST_UPSTREAM_KEY", SKY_FLEET_UPSTREAM_KEY, 1);
    setenv("SKY_TEST_LIMITED_KEY", SKY_FLEET_LIMITED_KEY, 1);
    setenv("SKY_TEST_METERED_KEY", SKY_FLEET_METERED_KEY, 1);
    setenv("SKY_TEST_TOKENS_KEY", SKY_FLEET_TOKENS_KEY, 1);
    setenv("SKYIO_LOG", "debug", 1); /* every log line the gateway has, for the canary */
}

static void start_serve(void)
{
    char config[512], access[512], max_body[32];
    snprintf(config, sizeof(config), "%s/gateway.json", sky_fleet.dir);
    snprintf(access, sizeof(access), "%s/access.log", sky_fleet.dir);
    snprintf(max_body, sizeof(max_body), "%d", SKY_FLEET_MAX_BODY);
    write_config(config, sky_test_closed_port());
    const char *const args[] = {"--config", config,         "--max-body", max_body, "--grace-ms",
                                "2000",     "--access-log", access,       NULL};
    sky_test_serve_start(&sky_fleet.serve, sky_fleet.dir, args, serve_child_env);
}

int sky_fleet_setup(void **state)
{
    (void)state;
    static const char *const healthy[] = {"--key", SKY_FLEET_UPSTREAM_KEY, NULL};
    static const char *const broken[] = {"--key", SKY_FLEET_UPSTREAM_KEY, "--fault-503", "1.0",
                                         NULL};
    static const char *const slow[] = {"--key", SKY_FLEET_UPSTREAM_KEY, "--per-token-ms", "20",
                                       NULL};
    /* one request a second, 429 with retry-after over it */
    static const char *const throttled[] = {"--rpm", "60", NULL};
    /* 100 tokens a second */
    static const char *const wordy[] = {"--tpm", "6000", NULL};
    memset(&sky_fleet, 0, sizeof(sky_fleet));
    sky_test_mock_start(&sky_fleet.fast, healthy);
    sky_test_mock_start(&sky_fleet.fast2, healthy);
    sky_test_mock_start(&sky_fleet.broken, broken);
    sky_test_mock_start(&sky_fleet.slow, slow);
    sky_test_mock_start(&sky_fleet.throttled, throttled);
    sky_test_mock_start(&sky_fleet.wordy, wordy);
    sky_test_tmpdir(sky_fleet.dir, sizeof(sky_fleet.dir));
    start_serve();
    sky_fleet.loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(sky_fleet.loop, NULL, &sky_fleet.client), 0);
    return 0;
}

int sky_fleet_log_holds(const char *name, const char *needle)
{
    return sky_test_file_holds(sky_fleet.dir, name, needle);
}

int sky_fleet_teardown(void **state)
{
    (void)state;
    sky_http_client_free(sky_fleet.client);
    sky_test_loop_free(sky_fleet.loop);
    int status = sky_test_stop_child(sky_fleet.serve.pid);
    /* the secrets canary, over everything serve wrote, its shutdown included */
    int leaked = sky_fleet_log_holds("stderr.log", SKY_FLEET_UPSTREAM_KEY) ||
                 sky_fleet_log_holds("stdout.log", SKY_FLEET_UPSTREAM_KEY) ||
                 sky_fleet_log_holds("access.log", SKY_FLEET_UPSTREAM_KEY);
    /* every theme makes model calls: each has its access log line */
    int logged = sky_fleet_log_holds("access.log", "\"request_id\"");
    sky_test_mock_stop(&sky_fleet.fast);
    sky_test_mock_stop(&sky_fleet.fast2);
    sky_test_mock_stop(&sky_fleet.broken);
    sky_test_mock_stop(&sky_fleet.slow);
    sky_test_mock_stop(&sky_fleet.throttled);
    sky_test_mock_stop(&sky_fleet.wordy);
    sky_test_rmdir(sky_fleet.dir);
    assert_false(leaked);
    assert_true(logged); /* the canary looked at a log that says something */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}

/* ---- requests ---- */

void sky_fleet_call_with(const char *method, const char *path, const char *body, const char *header,
                         sky_test_result *out)
{
    sky_test_serve_call(&sky_fleet.serve, sky_fleet.loop, sky_fleet.client, method, path, body,
                        NULL, header, out);
    assert_int_equal(out->err_code, 0);
    assert_null(strstr(out->body, SKY_FLEET_UPSTREAM_KEY));
}

void sky_fleet_call(const char *method, const char *path, const char *body, const char *key,
                    sky_test_result *out)
{
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key ? key : "");
    sky_fleet_call_with(method, path, body, key ? auth : NULL, out);
}

json_t *sky_fleet_json(const sky_test_result *r)
{
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_make(r->body, r->body_len), &j, NULL), 0);
    return j;
}

void sky_fleet_expect_error(const sky_test_result *r, int status, const char *type,
                            const char *code)
{
    assert_int_equal(r->status, status);
    json_t *j = sky_fleet_json(r);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_object(e));
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_string_equal(sky_json_str(e, "type", ""), type);
    assert_non_null(json_object_get(e, "param"));
    if (code)
        assert_string_equal(sky_json_str(e, "code", ""), code);
    else
        assert_true(json_is_null(json_object_get(e, "code")));
    json_decref(j);
}

const char sky_fleet_chat_body[] =
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
