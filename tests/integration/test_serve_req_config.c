/*
 * `skyio serve`'s config and defaults as issue 17 states them, where no other test looks:
 * - a key written in the config file (a deployment's "api_key", a client key's "key") is
 *   refused at start (exit 2), the message naming what to use instead and not the key;
 * - the default --max-body is 16 MiB: a 12 MiB body is read and judged (malformed JSON:
 *   400), a body over 16 MiB gets 413 request_too_large in OpenAI's JSON;
 * - the --state file it makes is in WAL mode with a schema version (PRAGMA user_version),
 *   and the usage record of a call is in it;
 * - a key made through the admin API is kept hashed: its SHA-256 in the file, the key
 *   itself nowhere in the file or its WAL (issue 18, "returned once, stored hashed").
 * Real processes on loopback: one `skyio mock`, `skyio serve`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "harness.h"
#include "harness_cli.h"
#include "harness_serve.h"
#include "skyio/gateway.h"
#include "skyio/json.h"
#include "harness_group.h"

static struct {
    sky_test_mock mock;
    char dir[256];
} env;

static int setup(void **state)
{
    (void)state;
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.mock, NULL);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.mock, NULL};
    sky_test_serve_teardown(NULL, NULL, NULL, mocks, env.dir);
    return 0;
}

/* `skyio serve` on a config of @p text: refused with exit 2, naming @p hint, never @p secret */
static void refused(const char *text, const char *hint, const char *secret)
{
    char path[512];
    sky_test_cli_out out;
    sky_test_gateway_config(path, sizeof(path), env.dir, "%s", text);
    sky_test_run_skyio(&out, "serve", "--config %s --port 0", path);
    assert_int_equal(out.code, 2);
    assert_non_null(strstr(out.err, hint));
    assert_null(strstr(out.err, secret));
    assert_null(strstr(out.out, secret));
}

static void test_keys_in_the_file_are_refused(void **state)
{
    (void)state;
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\","
             " \"api_key\": \"sk-upstream-in-file-3b9e\"}]}}\n",
             env.mock.base_url);
    refused(text, "key_env", "sk-upstream-in-file-3b9e");
    snprintf(text, sizeof(text),
             "{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]},"
             " \"keys\": [{\"name\": \"a\", \"key\": \"sk-client-in-file-71c0\"}]}\n",
             env.mock.base_url);
    refused(text, "key_sha256", "sk-client-in-file-71c0");
}

/* A POST of @p len bytes (all 'x' after an opening brace: never JSON) to the chat route. */
static void post_big(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client, size_t len,
                     sky_test_result *r)
{
    char *big = malloc(len + 1);
    assert_non_null(big);
    memset(big, 'x', len);
    big[0] = '{';
    big[len] = '\0';
    sky_test_serve_call(s, loop, client, "POST", "/v1/chat/completions", big, NULL, NULL, r);
    free(big);
    assert_int_equal(r->err_code, 0);
}

static void test_default_max_body_is_16_mib(void **state)
{
    (void)state;
    char path[512];
    uv_loop_t *loop;
    sky_http_client *client;
    sky_test_serve s;
    sky_test_result r;
    sky_test_gateway_config(
        path, sizeof(path), env.dir,
        "{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
        env.mock.base_url);
    const char *const args[] = {"--config", path, NULL};
    sky_test_serve_start(&s, env.dir, args, NULL);
    sky_test_client_open(&loop, &client);
    /* under the default: read whole and judged as the body it is */
    post_big(&s, loop, client, (size_t)12 << 20, &r);
    assert_int_equal(r.status, 400);
    assert_null(strstr(r.body, "request_too_large"));
    assert_non_null(strstr(r.body, "\"invalid_request_error\""));
    sky_test_result_free(&r);
    /* over it: 413 in OpenAI's shape */
    post_big(&s, loop, client, ((size_t)16 << 20) + 1, &r);
    assert_int_equal(r.status, 413);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")), "request_too_large");
    assert_string_equal(json_string_value(sky_json_path(j, "error.type")), "invalid_request_error");
    json_decref(j);
    sky_test_result_free(&r);
    sky_test_client_close(loop, client);
    sky_test_serve_stop_ok(&s);
    assert_int_equal(sky_test_mock_stat_or(&env.mock, "endpoints.chat", 0), 0);
}

/* One integer PRAGMA or query of the file @p path. */
static sqlite3_int64 query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_state_file_is_wal_and_versioned(void **state)
{
    (void)state;
    char path[512], db[512];
    uv_loop_t *loop;
    sky_http_client *client;
    sky_test_serve s;
    sky_test_result r;
    snprintf(db, sizeof(db), "%s/state.db", env.dir);
    sky_test_gateway_config(
        path, sizeof(path), env.dir,
        "{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
        env.mock.base_url);
    const char *const args[] = {"--config", path, "--state", db, NULL};
    sky_test_serve_start_named(&s, env.dir, "state", args, NULL);
    sky_test_client_open(&loop, &client);
    sky_test_serve_call(&s, loop, client, "POST", "/v1/chat/completions",
                        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                        NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    sky_test_client_close(loop, client);
    sky_test_serve_stop_ok(&s);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_true(query_int(h, "PRAGMA user_version") >= 1);
    assert_int_equal(query_int(h, "SELECT count(*) FROM usage WHERE model = 'm' AND status = 200"),
                     1);
    sqlite3_close(h);
}

/* Whether the file @p path holds the @p len bytes at @p needle. */
static int file_holds_bytes(const char *path, const char *needle, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t cap = 64u << 20, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
    n = fread(buf, 1, cap, f);
    fclose(f);
    int found = 0;
    for (size_t i = 0; !found && i + len <= n; i++)
        found = buf[i] == needle[0] && memcmp(buf + i, needle, len) == 0;
    free(buf);
    return found;
}

static void master_env(void)
{
    setenv("SKY_TEST_MASTER", "sk-master-config-test-5a1e", 1);
}

static void test_admin_key_kept_hashed(void **state)
{
    (void)state;
    char path[512], db[512], wal[600], key[128], hx[2 * SKY_GATEWAY_SHA256_LEN + 1];
    unsigned char h[SKY_GATEWAY_SHA256_LEN];
    uv_loop_t *loop;
    sky_http_client *client;
    sky_test_serve s;
    sky_test_result r;
    snprintf(db, sizeof(db), "%s/admin.db", env.dir);
    snprintf(wal, sizeof(wal), "%s-wal", db);
    sky_test_gateway_config(
        path, sizeof(path), env.dir,
        "{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
        env.mock.base_url);
    const char *const args[] = {"--config",        path, "--state", db, "--admin-key-env",
                                "SKY_TEST_MASTER", NULL};
    sky_test_serve_start_named(&s, env.dir, "admin", args, master_env);
    sky_test_client_open(&loop, &client);
    json_t *j = sky_test_serve_json(&s, loop, client, "POST", "/admin/keys", "{\"name\":\"team\"}",
                                    "sk-master-config-test-5a1e", 201);
    snprintf(key, sizeof(key), "%s", sky_json_str(j, "key", ""));
    json_decref(j);
    assert_true(strlen(key) > 16);
    /* the key works, then the files are read while serve still runs (the WAL not folded in)
     * and after it stopped */
    sky_test_serve_call(&s, loop, client, "GET", "/v1/models", NULL, key, NULL, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    assert_int_equal(sky_gateway_key_hash(sky_span_cstr(key), h), 0);
    for (size_t i = 0; i < sizeof(h); i++)
        sprintf(hx + 2 * i, "%02x", h[i]);
    assert_false(file_holds_bytes(db, key, strlen(key)));
    assert_false(file_holds_bytes(wal, key, strlen(key)));
    assert_true(file_holds_bytes(db, hx, strlen(hx)) || file_holds_bytes(wal, hx, strlen(hx)));
    sky_test_client_close(loop, client);
    sky_test_serve_stop_ok(&s);
    assert_false(file_holds_bytes(db, key, strlen(key)));
    assert_false(file_holds_bytes(wal, key, strlen(key)));
    assert_true(file_holds_bytes(db, hx, strlen(hx)) || file_holds_bytes(wal, hx, strlen(hx)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_in_the_file_are_refused),
        cmocka_unit_test(test_default_max_body_is_16_mib),
        cmocka_unit_test(test_state_file_is_wal_and_versioned),
        cmocka_unit_test(test_admin_key_kept_hashed),
    };
    return sky_test_run_group(tests, setup, teardown);
}
