/* Credentials against a real `skyio mock`: each kind, the chain, shared refreshes, short-lived
 * tokens, failures without leaks, a fake `az`, `skyio token`, and the pipeline's bearer auth. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "skyio/credential.h"
#include "skyio/json.h"
#include "skyio/log.h"
#include "skyio/pipeline.h"

#define MGMT "https://management.azure.com/.default"
#define SECRET "s3cret-Value-That-Must-Not-Leak"

typedef struct got {
    int calls;
    int code;
    int http_status;
    int64_t expires_on;
    char token[64];
    char source[32];
    char service_code[64];
    char msg[SKY_ERROR_MESSAGE_MAX];
} got;

typedef struct env {
    sky_test_mock mock;
    uv_loop_t *loop;
    sky_http_client *client;
    sky_credential *cred;
    sky_credential_options o;
    char tmp[256];
    char url[256];
} env;

static void on_tok(sky_token_request *req, const sky_access_token *tok, const sky_error *err,
                   void *ud)
{
    got *g = ud;
    (void)req;
    g->calls++;
    if (tok) {
        snprintf(g->token, sizeof(g->token), "%s", tok->token);
        snprintf(g->source, sizeof(g->source), "%s", tok->source);
        g->expires_on = tok->expires_on;
        g->code = 0;
    } else {
        g->code = err->code;
        g->http_status = err->http_status;
        snprintf(g->service_code, sizeof(g->service_code), "%s", err->service_code);
        snprintf(g->msg, sizeof(g->msg), "%s", err->message);
    }
}

static void clear_env(void)
{
    static const char *const vars[] = {"AZURE_TENANT_ID",
                                       "AZURE_CLIENT_ID",
                                       "AZURE_CLIENT_SECRET",
                                       "AZURE_FEDERATED_TOKEN_FILE",
                                       "IDENTITY_ENDPOINT",
                                       "IDENTITY_HEADER",
                                       "SKYIO_AZ_PATH",
                                       "AZURE_AUTHORITY_HOST",
                                       "AZURE_POD_IDENTITY_AUTHORITY_HOST"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
}

static void env_open(env *e, const char *const *mock_args)
{
    memset(e, 0, sizeof(*e));
    clear_env();
    sky_test_mock_start(&e->mock, mock_args);
    e->loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(e->loop, NULL, &e->client), 0);
    sky_test_tmpdir(e->tmp, sizeof(e->tmp));
    sky_credential_options_init(&e->o);
    e->o.authority_host = e->mock.base_url;
    e->o.imds_endpoint = e->mock.base_url;
    e->o.tenant_id = "contoso";
    e->o.client_id = "app-1";
    e->o.imds_retry_base_ms = 10;
    e->o.request_timeout_ms = 5000;
    e->o.az_path = "/nonexistent/skyio-test/az";
    snprintf(e->url, sizeof(e->url), "%s/msi/token", e->mock.base_url);
}

static void env_close(env *e)
{
    sky_credential_free(e->cred);
    sky_http_client_free(e->client);
    sky_test_loop_free(e->loop);
    sky_test_rmdir(e->tmp);
    assert_int_equal(sky_test_mock_stop(&e->mock), 0);
    clear_env();
}

static void wait_for(env *e, got *g, int calls)
{
    int done = 0;
    for (int i = 0; i < 1000 && g->calls < calls; i++)
        sky_test_run_until(e->loop, &done, 10);
    assert_int_equal(g->calls, calls);
}

static void get(env *e, got *g)
{
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_get_token(e->cred, MGMT, on_tok, g, NULL, &err), 0);
}

static void refresh(env *e, got *g)
{
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_refresh_token(e->cred, MGMT, on_tok, g, NULL, &err), 0);
}

/* get() and wait for its one callback. */
static void fetch(env *e, got *g)
{
    get(e, g);
    wait_for(e, g, 1);
}

/* refresh() and wait for its one callback. */
static void refetch(env *e, got *g)
{
    refresh(e, g);
    wait_for(e, g, 1);
}

typedef int (*cred_new_fn)(uv_loop_t *loop, sky_http_client *client,
                           const sky_credential_options *o, sky_credential **out, sky_error *err);

/* e->cred from @p fn on e's loop, client and options; it must succeed. */
static void make_cred(env *e, cred_new_fn fn)
{
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(fn(e->loop, e->client, &e->o, &e->cred, &err), 0);
}

/* Drop e->cred and start the mock again with @p args; the options point at the new one. */
static void restart_mock(env *e, const char *const *args)
{
    sky_credential_free(e->cred);
    e->cred = NULL;
    assert_int_equal(sky_test_mock_stop(&e->mock), 0);
    sky_test_mock_start(&e->mock, args);
    e->o.authority_host = e->mock.base_url;
    e->o.imds_endpoint = e->mock.base_url;
}

static json_int_t identity_stat(env *e, const char *key)
{
    json_t *st = sky_test_mock_stats(&e->mock);
    json_int_t n = json_integer_value(json_object_get(json_object_get(st, "identity"), key));
    json_decref(st);
    return n;
}

static void write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, (mode_t)mode), 0);
}

/* ---- client secret ---- */

typedef struct log_capture {
    char text[65536];
    size_t len;
} log_capture;

static void capture_line(void *ud, sky_log_level level, const char *line, size_t len)
{
    log_capture *c = ud;
    (void)level;
    if (c->len + len + 2 < sizeof(c->text)) {
        memcpy(c->text + c->len, line, len);
        c->len += len;
        c->text[c->len++] = '\n';
        c->text[c->len] = '\0';
    }
}

static void capture_start(log_capture *cap)
{
    memset(cap, 0, sizeof(*cap));
    sky_log_set_sink(capture_line, cap);
    sky_log_set_level(SKY_LOG_TRACE);
}

static void capture_stop(void)
{
    sky_log_set_level(SKY_LOG_WARN);
    sky_log_set_sink(NULL, NULL);
}

static void test_client_secret(void **state)
{
    env e;
    got a = {0}, b = {0};
    static log_capture cap;
    (void)state;
    const char *args[] = {"--identity-client-id", "app-1", "--identity-client-secret", SECRET,
                          NULL};
    env_open(&e, args);
    capture_start(&cap);
    e.o.client_secret = SECRET;
    make_cred(&e, sky_credential_client_secret_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_string_equal(a.token, "mock-token-1");
    assert_string_equal(a.source, "environment");
    assert_true(a.expires_on > (int64_t)time(NULL) + 3500);
    fetch(&e, &b);
    assert_string_equal(b.token, "mock-token-1");
    assert_int_equal(identity_stat(&e, "entra"), 1);
    capture_stop();
    /* traced in full, yet neither the secret nor the token is in any line */
    assert_non_null(strstr(cap.text, "token for " MGMT));
    assert_null(strstr(cap.text, SECRET));
    assert_null(strstr(cap.text, "mock-token-1"));
    env_close(&e);
}

static void test_wrong_secret_fails_without_leaking(void **state)
{
    env e;
    got a = {0};
    static log_capture cap;
    (void)state;
    const char *args[] = {"--identity-client-secret", "the-right-one", NULL};
    env_open(&e, args);
    capture_start(&cap);
    e.o.client_secret = SECRET;
    make_cred(&e, sky_credential_client_secret_new);
    fetch(&e, &a);
    capture_stop();
    assert_int_equal(a.code, SKY_EAUTH);
    assert_int_equal(a.http_status, 401);
    assert_string_equal(a.service_code, "invalid_client");
    assert_non_null(strstr(a.msg, "AADSTS7000215"));
    assert_null(strstr(a.msg, SECRET));
    assert_true(cap.len > 0);              /* the failure was logged... */
    assert_null(strstr(cap.text, SECRET)); /* ...without the secret */
    assert_null(strstr(cap.text, "s3cret"));
    env_close(&e);
}

static void test_concurrent_callers_one_request(void **state)
{
    env e;
    got g[20];
    (void)state;
    const char *args[] = {"--identity-delay-ms", "150", NULL};
    env_open(&e, args);
    memset(g, 0, sizeof(g));
    e.o.client_secret = SECRET;
    make_cred(&e, sky_credential_client_secret_new);
    for (int i = 0; i < 20; i++)
        get(&e, &g[i]);
    for (int i = 0; i < 20; i++) {
        wait_for(&e, &g[i], 1);
        assert_string_equal(g[i].token, "mock-token-1");
    }
    assert_int_equal(identity_stat(&e, "token_requests"), 1);
    env_close(&e);
}

static void test_short_lived_tokens_refresh(void **state)
{
    env e;
    got a = {0}, b = {0}, c = {0};
    sky_fake_clock clock;
    (void)state;
    const char *args[] = {"--identity-expires-in", "120", NULL};
    env_open(&e, args);
    sky_fake_clock_init(&clock, 0, sky_clock_wall_ms(NULL));
    e.o.clock = &clock.clock;
    e.o.client_secret = SECRET;
    make_cred(&e, sky_credential_client_secret_new);
    fetch(&e, &a);
    assert_string_equal(a.token, "mock-token-1");
    sky_fake_clock_advance(&clock, 61 * 1000); /* past half of 120 s */
    fetch(&e, &b);
    assert_string_equal(b.token, "mock-token-1"); /* still valid: served while refreshing */
    for (int i = 0; i < 100 && identity_stat(&e, "issued") < 2; i++) {
        int never = 0;
        sky_test_run_until(e.loop, &never, 20);
    }
    /* the refreshed token is served once its reply is in, however slow the machine */
    for (int i = 0; i < 100; i++) {
        int never = 0;
        memset(&c, 0, sizeof(c));
        fetch(&e, &c);
        if (strcmp(c.token, "mock-token-2") == 0)
            break;
        assert_string_equal(c.token, "mock-token-1");
        sky_test_run_until(e.loop, &never, 50);
    }
    assert_string_equal(c.token, "mock-token-2");
    assert_int_equal(identity_stat(&e, "token_requests"), 2);
    env_close(&e);
}

/* Entra's token requests ride the pipeline's retry: a 503 once is retried, one always
 * failing ends with its status after the retries allowed, and so does a timeout. */
static void test_token_endpoint_failure_and_timeout(void **state)
{
    env e;
    got a = {0}, b = {0}, c = {0};
    sky_error err;
    sky_credential *slow = NULL;
    (void)state;
    const char *args[] = {"--identity-fail-status", "503", "--identity-fail-count", "1", NULL};
    env_open(&e, args);
    e.o.client_secret = SECRET;
    e.o.entra_retry_base_ms = 10;
    make_cred(&e, sky_credential_client_secret_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_int_equal(identity_stat(&e, "entra"), 2);
    const char *args2[] = {"--identity-fail-status", "503", "--identity-delay-ms", "400", NULL};
    restart_mock(&e, args2);
    e.o.entra_max_retries = 1;
    make_cred(&e, sky_credential_client_secret_new);
    fetch(&e, &b);
    assert_int_equal(b.code, SKY_EAUTH);
    assert_int_equal(b.http_status, 503);
    assert_int_equal(identity_stat(&e, "entra"), 2);
    e.o.request_timeout_ms = 100;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_client_secret_new(e.loop, e.client, &e.o, &slow, &err), 0);
    assert_int_equal(sky_credential_get_token(slow, MGMT, on_tok, &c, NULL, &err), 0);
    wait_for(&e, &c, 1);
    assert_int_equal(c.code, SKY_ETIMEDOUT);
    assert_non_null(strstr(c.msg, "token request failed"));
    sky_credential_free(slow);
    env_close(&e);
}

/* ---- workload identity ---- */

static void test_workload_identity_rereads_file(void **state)
{
    env e;
    got a = {0}, b = {0}, c = {0};
    char path[512];
    (void)state;
    env_open(&e, NULL);
    snprintf(path, sizeof(path), "%s/token", e.tmp);
    write_file(path, "eyJhbGciOiJSUzI1NiJ9.assertion-one.sig\n", 0600);
    e.o.federated_token_file = path;
    make_cred(&e, sky_credential_workload_identity_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_string_equal(a.source, "workload_identity");
    unlink(path); /* a refresh reads the file again: now it is gone */
    refetch(&e, &b);
    assert_int_equal(b.code, SKY_EAUTH);
    assert_non_null(strstr(b.msg, "federated token file"));
    write_file(path, "eyJhbGciOiJSUzI1NiJ9.assertion-two.sig", 0600);
    refetch(&e, &c);
    assert_int_equal(c.code, 0);
    assert_string_equal(c.token, "mock-token-2");
    assert_int_equal(identity_stat(&e, "entra"), 2);
    env_close(&e);
}

/* ---- managed identity ---- */

static void test_imds(void **state)
{
    env e;
    got a = {0};
    (void)state;
    env_open(&e, NULL);
    make_cred(&e, sky_credential_managed_identity_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_string_equal(a.source, "managed_identity");
    assert_string_equal(a.token, "mock-token-1");
    assert_int_equal(identity_stat(&e, "imds"), 1);
    env_close(&e);
}

static void test_imds_retries_throttling(void **state)
{
    env e;
    got a = {0}, b = {0};
    (void)state;
    const char *args[] = {"--identity-fail-status", "429", "--identity-fail-count", "2", NULL};
    env_open(&e, args);
    make_cred(&e, sky_credential_managed_identity_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_int_equal(identity_stat(&e, "imds"), 3);
    /* always 500, one retry allowed: two requests, then the error */
    const char *args2[] = {"--identity-fail-status", "500", NULL};
    restart_mock(&e, args2);
    e.o.imds_max_retries = 1;
    make_cred(&e, sky_credential_managed_identity_new);
    fetch(&e, &b);
    assert_int_equal(b.code, SKY_EAUTH);
    assert_int_equal(b.http_status, 500);
    assert_int_equal(identity_stat(&e, "imds"), 2);
    env_close(&e);
}

/* IMDS's token requests ride the pipeline's retry with IMDS's own list: 410 (IMDS being
 * upgraded) is retried, each decision the pipeline's. In a chain the quick probe, answered
 * 404 (an identity being assigned), is followed by a request that retries. */
static void test_imds_retried_by_pipeline(void **state)
{
    env e;
    got a = {0}, b = {0};
    static log_capture cap;
    (void)state;
    const char *args[] = {"--identity-fail-status", "410", "--identity-fail-count", "2", NULL};
    env_open(&e, args);
    capture_start(&cap);
    make_cred(&e, sky_credential_managed_identity_new);
    fetch(&e, &a);
    capture_stop();
    assert_int_equal(a.code, 0);
    assert_string_equal(a.token, "mock-token-1");
    assert_int_equal(identity_stat(&e, "imds"), 3);
    assert_non_null(strstr(cap.text, "410 backoff="));
    assert_non_null(strstr(cap.text, "attempt 3"));
    const char *args2[] = {"--identity-fail-status", "404", "--identity-fail-count", "1", NULL};
    restart_mock(&e, args2);
    make_cred(&e, sky_credential_default_new);
    fetch(&e, &b);
    assert_int_equal(b.code, 0);
    assert_string_equal(b.source, "managed_identity");
    assert_int_equal(identity_stat(&e, "imds"), 2);
    env_close(&e);
}

static void test_app_service(void **state)
{
    env e;
    got a = {0}, b = {0};
    sky_error err;
    sky_credential *wrong = NULL;
    (void)state;
    const char *args[] = {"--identity-header", "hdr-secret-42", NULL};
    env_open(&e, args);
    e.o.identity_endpoint = e.url;
    e.o.identity_header = "hdr-secret-42";
    make_cred(&e, sky_credential_managed_identity_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_string_equal(a.source, "managed_identity");
    assert_int_equal(identity_stat(&e, "app_service"), 1);
    e.o.identity_header = "not-the-header";
    sky_error_clear(&err);
    assert_int_equal(sky_credential_managed_identity_new(e.loop, e.client, &e.o, &wrong, &err), 0);
    assert_int_equal(sky_credential_get_token(wrong, MGMT, on_tok, &b, NULL, &err), 0);
    wait_for(&e, &b, 1);
    assert_int_equal(b.code, SKY_EAUTH);
    assert_int_equal(b.http_status, 401);
    assert_null(strstr(b.msg, "not-the-header"));
    sky_credential_free(wrong);
    env_close(&e);
}

static void test_mock_identity_config_file(void **state)
{
    env e;
    got a = {0};
    char dir[256], path[512], flag[600];
    (void)state;
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/mock.json", dir);
    write_file(path, "{\"identity\": {\"expires_in\": 90, \"identity_header\": \"from-file\"}}",
               0600);
    snprintf(flag, sizeof(flag), "%s", path);
    const char *args[] = {"--config", flag, NULL};
    env_open(&e, args);
    e.o.identity_endpoint = e.url;
    e.o.identity_header = "from-file";
    make_cred(&e, sky_credential_managed_identity_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_true(a.expires_on <= (int64_t)time(NULL) + 91);
    env_close(&e);
    sky_test_rmdir(dir);
}

/* ---- Azure CLI ---- */

static void write_az(env *e, const char *name, const char *body, char *path, size_t len)
{
    char script[2048];
    snprintf(path, len, "%s/%s", e->tmp, name);
    snprintf(script, sizeof(script), "#!/bin/sh\n%s\n", body);
    write_file(path, script, 0700);
}

static void test_azure_cli(void **state)
{
    env e;
    got a = {0}, b = {0}, c = {0};
    char ok[512], bad[512], hang[512], body[1024];
    sky_error err;
    sky_credential *fails = NULL, *hangs = NULL;
    (void)state;
    env_open(&e, NULL);
    snprintf(body, sizeof(body),
             "[ \"$1 $2 $3 $4 $5 $6\" = \"account get-access-token --output json --resource "
             "https://management.azure.com\" ] || { echo \"ERROR: bad args: $*\" >&2; exit 2; }\n"
             "echo '{\"accessToken\": \"cli-token\", \"expiresOn\": \"2099-01-01 00:00:00.000000\","
             " \"expires_on\": %lld, \"tokenType\": \"Bearer\"}'",
             (long long)time(NULL) + 3600);
    write_az(&e, "az-ok", body, ok, sizeof(ok));
    write_az(&e, "az-bad", "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
             bad, sizeof(bad));
    write_az(&e, "az-hang", "exec sleep 30", hang, sizeof(hang));
    e.o.az_path = ok;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_azure_cli_new(e.loop, NULL, &e.o, &e.cred, &err), 0);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_string_equal(a.token, "cli-token");
    assert_string_equal(a.source, "azure_cli");
    e.o.az_path = bad;
    assert_int_equal(sky_credential_azure_cli_new(e.loop, NULL, &e.o, &fails, &err), 0);
    assert_int_equal(sky_credential_get_token(fails, MGMT, on_tok, &b, NULL, &err), 0);
    wait_for(&e, &b, 1);
    assert_int_equal(b.code, SKY_EAUTH);
    assert_non_null(strstr(b.msg, "az exited with status 1: ERROR: Please run 'az login'"));
    e.o.az_path = hang;
    e.o.az_timeout_ms = 300;
    assert_int_equal(sky_credential_azure_cli_new(e.loop, NULL, &e.o, &hangs, &err), 0);
    assert_int_equal(sky_credential_get_token(hangs, MGMT, on_tok, &c, NULL, &err), 0);
    wait_for(&e, &c, 1);
    assert_int_equal(c.code, SKY_ETIMEDOUT);
    sky_credential_free(fails);
    sky_credential_free(hangs);
    env_close(&e);
}

/* ---- the chain ---- */

static void test_chain_falls_through_to_managed_identity(void **state)
{
    env e;
    got a = {0}, b = {0};
    (void)state;
    env_open(&e, NULL);
    /* no secret and no token file: environment and workload identity are skipped */
    make_cred(&e, sky_credential_default_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_string_equal(a.source, "managed_identity");
    fetch(&e, &b);
    assert_string_equal(b.token, a.token);
    assert_int_equal(identity_stat(&e, "token_requests"), 1);
    env_close(&e);
}

static void test_chain_falls_through_to_cli_and_remembers(void **state)
{
    env e;
    got a = {0}, b = {0};
    char az[512], body[512];
    (void)state;
    const char *args[] = {"--identity-fail-status", "400", NULL};
    env_open(&e, args);
    snprintf(body, sizeof(body),
             "echo x >> \"$(dirname \"$0\")/calls\"\n"
             "echo '{\"accessToken\": \"cli-token\", \"expires_on\": %lld}'",
             (long long)time(NULL) + 3600);
    write_az(&e, "az", body, az, sizeof(az));
    e.o.client_secret = SECRET; /* environment is tried: the mock says 400 */
    e.o.az_path = az;
    make_cred(&e, sky_credential_default_new);
    fetch(&e, &a);
    assert_int_equal(a.code, 0);
    assert_string_equal(a.source, "azure_cli");
    assert_int_equal(identity_stat(&e, "entra"), 1);
    assert_int_equal(identity_stat(&e, "imds"), 1);
    /* a forced refresh asks only the link that worked */
    refetch(&e, &b);
    assert_string_equal(b.source, "azure_cli");
    assert_int_equal(identity_stat(&e, "token_requests"), 2);
    env_close(&e);
}

static void test_chain_all_fail_one_error(void **state)
{
    env e;
    got a = {0};
    (void)state;
    const char *args[] = {"--identity-fail-status", "400", NULL};
    env_open(&e, args);
    e.o.client_secret = SECRET;
    make_cred(&e, sky_credential_default_new);
    fetch(&e, &a);
    assert_int_equal(a.code, SKY_EAUTH);
    assert_non_null(strstr(a.msg, "environment: HTTP 400"));
    assert_non_null(strstr(a.msg, "workload_identity: not configured"));
    assert_non_null(strstr(a.msg, "managed_identity: HTTP 400"));
    assert_non_null(strstr(a.msg, "azure_cli: Azure CLI not found"));
    assert_null(strstr(a.msg, SECRET));
    env_close(&e);
}

/* ---- skyio token ---- */

static int run_token(env *e, const char *extra_env, const char *args, char *out, size_t len)
{
    char cmd[2048];
    snprintf(
        cmd, sizeof(cmd),
        "env -i PATH=/usr/bin:/bin AZURE_AUTHORITY_HOST=%s AZURE_POD_IDENTITY_AUTHORITY_HOST=%s "
        "SKYIO_AZ_PATH=/nonexistent/az %s %s token %s 2>&1",
        e->mock.base_url, e->mock.base_url, extra_env, SKY_TEST_BIN, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_skyio_token_command(void **state)
{
    env e;
    char out[4096];
    json_t *j = NULL;
    (void)state;
    const char *args[] = {"--identity-client-secret", SECRET, NULL};
    env_open(&e, args);
    assert_int_equal(run_token(&e,
                               "AZURE_TENANT_ID=contoso AZURE_CLIENT_ID=app-1 "
                               "AZURE_CLIENT_SECRET=" SECRET,
                               "--scope " MGMT, out, sizeof(out)),
                     0);
    assert_int_equal(sky_json_parse(sky_span_cstr(out), &j, NULL), 0);
    assert_string_equal(sky_json_str(j, "accessToken", ""), "mock-token-1");
    assert_string_equal(sky_json_str(j, "tokenType", ""), "Bearer");
    assert_string_equal(sky_json_str(j, "credential", ""), "environment");
    assert_true(sky_json_int(j, "expires_on", 0) > (int64_t)time(NULL));
    assert_non_null(json_object_get(j, "expiresOn"));
    json_decref(j);
    /* a wrong secret, and IMDS failing too: exit 3, every reason, no secret */
    assert_int_equal(run_token(&e,
                               "AZURE_TENANT_ID=contoso AZURE_CLIENT_ID=app-1 "
                               "AZURE_CLIENT_SECRET=wrong-" SECRET,
                               "--resource https://management.azure.com --exclude "
                               "managed_identity",
                               out, sizeof(out)),
                     3);
    assert_non_null(strstr(out, "no credential worked"));
    assert_non_null(strstr(out, "environment: HTTP 401 invalid_client"));
    assert_non_null(strstr(out, "azure_cli: Azure CLI not found"));
    assert_null(strstr(out, SECRET));
    assert_int_equal(run_token(&e, "", "--credential nope --scope x", out, sizeof(out)), 2);
    assert_int_equal(run_token(&e, "", "--help", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "DefaultAzureCredential"));
    env_close(&e);
}

static void test_chat_with_entra_id(void **state)
{
    env e;
    char cmd[2048], out[4096];
    (void)state;
    /* the chat endpoint accepts only the token the mock's IMDS issues first */
    const char *args[] = {"--key", "mock-token-1", NULL};
    env_open(&e, args);
    /* 0.0.0.0 reaches the loopback mock without looking like loopback, where
     * a keyless Azure endpoint would be taken as a local server needing no auth */
    snprintf(cmd, sizeof(cmd),
             "echo hi | env -i PATH=/usr/bin:/bin AZURE_OPENAI_ENDPOINT=http://0.0.0.0:%d "
             "AZURE_POD_IDENTITY_AUTHORITY_HOST=%s SKYIO_AZ_PATH=/nonexistent/az %s chat -m d1 "
             "2>&1",
             e.mock.port, e.mock.base_url, SKY_TEST_BIN);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(identity_stat(&e, "imds"), 1);
    json_t *stats = sky_test_mock_stats(&e.mock);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(stats, "endpoints"), "chat")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "auth_failures")), 0);
    json_decref(stats);
    env_close(&e);
}

/* ---- the pipeline: bearer tokens, and a 401 refreshes once ---- */

typedef struct call_out {
    int done, status, err_code, attempts;
} call_out;

static void on_call(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    call_out *o = ud;
    (void)call;
    o->done++;
    o->status = res->status;
    o->err_code = err ? err->code : 0;
    o->attempts = res->attempts;
}

static void start_chat(env *e, sky_pipeline *p, call_out *o)
{
    static const char body[] =
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"max_tokens\":3}";
    char url[256];
    sky_call_options co;
    snprintf(url, sizeof(url), "%s/v1/chat/completions", e->mock.base_url);
    sky_call_options_init(&co);
    co.headers = sky_test_json_headers();
    co.url = url;
    co.body = sky_span_cstr(body);
    co.on_done = on_call;
    co.user_data = o;
    assert_int_equal(sky_call_start(p, &co, NULL, NULL), 0);
}

static void test_pipeline_bearer_and_401_refresh(void **state)
{
    env e;
    sky_pipeline_options po;
    sky_pipeline *p = NULL;
    call_out a[8], b[8];
    (void)state;
    /* The chat endpoint takes only the second token the mock issues: the
     * first calls' 401s must refresh the token (once for all) and retry once. */
    const char *args[] = {"--key", "mock-token-2", NULL};
    env_open(&e, args);
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    e.o.client_secret = SECRET;
    make_cred(&e, sky_credential_client_secret_new);
    sky_pipeline_options_init(&po);
    po.retry.base_ms = 10;
    po.rate.initial_rpm = 6000;
    po.credential = e.cred;
    po.scope = "https://cognitiveservices.azure.com/.default";
    assert_int_equal(sky_pipeline_new(e.loop, e.client, &po, &p), 0);
    for (int i = 0; i < 8; i++)
        start_chat(&e, p, &a[i]);
    for (int i = 0; i < 8; i++) {
        assert_true(sky_test_run_until(e.loop, &a[i].done, 10000));
        assert_int_equal(a[i].err_code, 0);
        assert_int_equal(a[i].status, 200);
        assert_int_equal(a[i].attempts, 2);
    }
    assert_int_equal(identity_stat(&e, "entra"), 2);
    /* the refreshed token is cached: many calls, no new token request */
    for (int i = 0; i < 8; i++)
        start_chat(&e, p, &b[i]);
    for (int i = 0; i < 8; i++) {
        assert_true(sky_test_run_until(e.loop, &b[i].done, 10000));
        assert_int_equal(b[i].status, 200);
        assert_int_equal(b[i].attempts, 1);
    }
    assert_int_equal(identity_stat(&e, "entra"), 2);
    sky_pipeline_free(p);
    env_close(&e);
}

static void test_pipeline_credential_failure_ends_call(void **state)
{
    env e;
    sky_pipeline_options po;
    sky_pipeline *p = NULL;
    call_out a = {0};
    (void)state;
    const char *args[] = {"--identity-fail-status", "400", NULL};
    env_open(&e, args);
    e.o.client_secret = SECRET;
    make_cred(&e, sky_credential_client_secret_new);
    sky_pipeline_options_init(&po);
    po.credential = e.cred;
    po.scope = MGMT;
    assert_int_equal(sky_pipeline_new(e.loop, e.client, &po, &p), 0);
    start_chat(&e, p, &a);
    assert_true(sky_test_run_until(e.loop, &a.done, 10000));
    assert_int_equal(a.err_code, SKY_EAUTH);
    assert_int_equal(a.attempts, 0);
    json_t *st = sky_test_mock_stats(&e.mock);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "endpoints"), "chat")),
                     0);
    json_decref(st);
    sky_pipeline_free(p);
    env_close(&e);
}

static void test_cancel_and_free_while_fetching(void **state)
{
    env e;
    sky_pipeline_options po;
    sky_pipeline *p = NULL;
    call_out a = {0}, b = {0};
    got g = {0}, h = {0};
    char hang[512];
    sky_credential *cli = NULL;
    sky_call *call = NULL;
    sky_call_options co;
    sky_error err;
    char url[256];
    (void)state;
    const char *args[] = {"--identity-delay-ms", "300", NULL};
    env_open(&e, args);
    e.o.client_secret = SECRET;
    make_cred(&e, sky_credential_client_secret_new);
    sky_pipeline_options_init(&po);
    po.credential = e.cred;
    po.scope = MGMT;
    assert_int_equal(sky_pipeline_new(e.loop, e.client, &po, &p), 0);
    /* a call canceled while its token is on the way */
    snprintf(url, sizeof(url), "%s/v1/models", e.mock.base_url);
    sky_call_options_init(&co);
    co.headers = sky_test_json_headers();
    co.url = url;
    co.on_done = on_call;
    co.user_data = &a;
    assert_int_equal(sky_call_start(p, &co, &call, NULL), 0);
    int never = 0;
    sky_test_run_until(e.loop, &never, 50);
    sky_call_cancel(call);
    assert_true(sky_test_run_until(e.loop, &a.done, 5000));
    assert_int_equal(a.err_code, SKY_ECANCELED);
    /* the pipeline freed while a call waits for its token */
    co.user_data = &b;
    assert_int_equal(sky_call_start(p, &co, NULL, NULL), 0);
    sky_test_run_until(e.loop, &never, 20);
    sky_pipeline_free(p);
    assert_int_equal(b.done, 1);
    assert_int_equal(b.err_code, SKY_ECANCELED);
    /* the credential freed while a token request is in flight */
    refresh(&e, &g);
    sky_test_run_until(e.loop, &never, 20);
    sky_credential_free(e.cred);
    e.cred = NULL;
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.code, SKY_ECANCELED);
    /* and while az runs */
    write_az(&e, "az-hang", "exec sleep 30", hang, sizeof(hang));
    e.o.az_path = hang;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_azure_cli_new(e.loop, NULL, &e.o, &cli, &err), 0);
    assert_int_equal(sky_credential_get_token(cli, MGMT, on_tok, &h, NULL, &err), 0);
    sky_test_run_until(e.loop, &never, 50);
    sky_credential_free(cli);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.code, SKY_ECANCELED);
    sky_test_run_until(e.loop, &never, 200); /* the fetches wind down */
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_secret),
        cmocka_unit_test(test_wrong_secret_fails_without_leaking),
        cmocka_unit_test(test_concurrent_callers_one_request),
        cmocka_unit_test(test_short_lived_tokens_refresh),
        cmocka_unit_test(test_token_endpoint_failure_and_timeout),
        cmocka_unit_test(test_workload_identity_rereads_file),
        cmocka_unit_test(test_imds),
        cmocka_unit_test(test_imds_retries_throttling),
        cmocka_unit_test(test_imds_retried_by_pipeline),
        cmocka_unit_test(test_app_service),
        cmocka_unit_test(test_mock_identity_config_file),
        cmocka_unit_test(test_azure_cli),
        cmocka_unit_test(test_chain_falls_through_to_managed_identity),
        cmocka_unit_test(test_chain_falls_through_to_cli_and_remembers),
        cmocka_unit_test(test_chain_all_fail_one_error),
        cmocka_unit_test(test_skyio_token_command),
        cmocka_unit_test(test_chat_with_entra_id),
        cmocka_unit_test(test_pipeline_bearer_and_401_refresh),
        cmocka_unit_test(test_pipeline_credential_failure_ends_call),
        cmocka_unit_test(test_cancel_and_free_while_fetching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
