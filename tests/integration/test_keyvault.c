/*
 * Key Vault secrets against `skyio mock` over TLS: the challenge, versions, paging,
 * soft-delete, 429s; `skyio secret`; keyvault:// references read at start (exit 3 when
 * they cannot be); a canary that no secret value reaches a log, an error, or `ps`; and a
 * cross-check of the mock with the official SDK (@azure/keyvault-secrets).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "azure/keyvault/internal.h"
#include "harness.h"
#include "harness_cli.h"
#include "skyio/keyvault.h"
#include "harness_group.h"

/* The value no log, error or process listing may ever show. */
#define CANARY "CANARY-5b1e0c-value-Zq9"

static sky_test_mock g_mock;
static char g_vault[128]; /* https://127.0.0.1:PORT */
static char g_host[64];   /* 127.0.0.1:PORT */
static char g_ca[300];

static int group_setup(void **state)
{
    (void)state;
    const char *const args[] = {
        "--port", "0", "--key", CANARY, "--identity-client-secret", "kv-client-secret", NULL};
    g_mock.tls = 1;
    sky_test_mock_start(&g_mock, args);
    snprintf(g_vault, sizeof(g_vault), "https://127.0.0.1:%d", g_mock.port);
    snprintf(g_host, sizeof(g_host), "127.0.0.1:%d", g_mock.port);
    snprintf(g_ca, sizeof(g_ca), "%s/ca.pem", g_mock.dir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sky_test_mock_stop(&g_mock);
    return 0;
}

/* ---- the library ---- */

typedef struct fixture {
    uv_loop_t *loop;
    sky_http_client *http;
    sky_credential *cred;
    sky_keyvault_client *kv;
} fixture;

typedef struct outcome {
    int done;
    int err_code;
    int http_status;
    char service_code[SKY_ERROR_SERVICE_CODE_MAX];
    char message[SKY_ERROR_MESSAGE_MAX];
    char value[256];
    char version[80];
    char recovery_id[256];
    int64_t purge_date;
    size_t count;
    char next_link[512];
} outcome;

static void on_done(sky_keyvault_op *op, const sky_keyvault_reply *rep, const sky_error *err,
                    void *ud)
{
    outcome *o = ud;
    (void)op;
    memset(o, 0, sizeof(*o));
    o->done = 1;
    if (err) {
        o->err_code = err->code;
        o->http_status = err->http_status;
        snprintf(o->service_code, sizeof(o->service_code), "%s", err->service_code);
        snprintf(o->message, sizeof(o->message), "%s", err->message);
        return;
    }
    if (rep->secret) {
        const sky_keyvault_secret *s = rep->secret;
        snprintf(o->value, sizeof(o->value), "%.*s", (int)s->value.len, s->value.ptr);
        snprintf(o->version, sizeof(o->version), "%s", s->version ? s->version : "");
        snprintf(o->recovery_id, sizeof(o->recovery_id), "%s",
                 s->recovery_id ? s->recovery_id : "");
        o->purge_date = s->scheduled_purge_date;
    }
    o->count = rep->count;
    snprintf(o->next_link, sizeof(o->next_link), "%s", rep->next_link ? rep->next_link : "");
}

static void client_new(fixture *f, int max_retries)
{
    sky_keyvault_client_options o;
    sky_error err;
    sky_error_clear(&err);
    sky_keyvault_client_options_init(&o);
    o.vault_url = g_vault;
    o.credential = f->cred;
    o.retry.max_retries = max_retries;
    assert_int_equal(sky_keyvault_client_new(f->loop, f->http, &o, &f->kv, &err), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sky_http_client_options ho;
    sky_error err;
    sky_error_clear(&err);
    f->loop = sky_test_loop_new();
    sky_http_client_options_init(&ho);
    ho.ca_file = g_ca;
    assert_int_equal(sky_http_client_new(f->loop, &ho, &f->http), 0);
    assert_int_equal(sky_credential_static_new(f->loop, "static-kv-token", 0, &f->cred, &err), 0);
    client_new(f, 3);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sky_keyvault_client_free(f->kv);
    sky_credential_free(f->cred);
    sky_http_client_free(f->http);
    sky_test_loop_free(f->loop);
    free(f);
    return 0;
}

#define START(call) SKY_TEST_START(f->loop, o, call)

static sky_span text(const char *s)
{
    return sky_span_cstr(s);
}

static void test_versions_and_challenge(void **state)
{
    fixture *f = *state;
    outcome o;
    /* the first request goes without a token, is challenged, and goes again with one */
    START(sky_keyvault_set(f->kv, "db-password", text("one"), NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    char v1[80];
    snprintf(v1, sizeof(v1), "%s", o.version);
    assert_true(v1[0] != '\0');
    assert_non_null(f->kv->scope);
    assert_string_equal(f->kv->scope, "https://vault.azure.net/.default");
    START(
        sky_keyvault_set(f->kv, "db-password", text("two"), "text/plain", on_done, &o, NULL, err));
    assert_string_not_equal(o.version, v1);
    START(sky_keyvault_get(f->kv, "db-password", NULL, on_done, &o, NULL, err));
    assert_string_equal(o.value, "two");
    START(sky_keyvault_get(f->kv, "db-password", v1, on_done, &o, NULL, err));
    assert_string_equal(o.value, "one");
    START(sky_keyvault_get(f->kv, "no-such-secret", NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_int_equal(o.http_status, 404);
    assert_string_equal(o.service_code, "SecretNotFound");
}

static void test_list_pages(void **state)
{
    fixture *f = *state;
    outcome o;
    char name[32], link[512];
    for (int i = 0; i < 27; i++) {
        snprintf(name, sizeof(name), "page-%02d", i);
        START(sky_keyvault_set(f->kv, name, text("v"), NULL, on_done, &o, NULL, err));
        assert_int_equal(o.err_code, 0);
    }
    size_t total = 0;
    link[0] = '\0';
    int pages = 0;
    do {
        START(sky_keyvault_list(f->kv, link[0] ? link : NULL, on_done, &o, NULL, err));
        assert_int_equal(o.err_code, 0);
        total += o.count;
        snprintf(link, sizeof(link), "%s", o.next_link);
        pages++;
    } while (link[0] && pages < 10);
    assert_true(pages >= 2);
    assert_true(total >= 27);
    /* a next link elsewhere is never followed (the token would go with it) */
    sky_error e;
    sky_error_clear(&e);
    assert_int_equal(
        sky_keyvault_list(f->kv, "https://elsewhere.example/secrets?x=1", on_done, &o, NULL, &e),
        SKY_EINVAL);
}

static void test_soft_delete(void **state)
{
    fixture *f = *state;
    outcome o;
    START(sky_keyvault_set(f->kv, "to-delete", text("bye"), NULL, on_done, &o, NULL, err));
    START(sky_keyvault_delete(f->kv, "to-delete", on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    assert_non_null(strstr(o.recovery_id, "/deletedsecrets/to-delete"));
    assert_true(o.purge_date > 0);
    START(sky_keyvault_get(f->kv, "to-delete", NULL, on_done, &o, NULL, err));
    assert_int_equal(o.http_status, 404);
    START(sky_keyvault_set(f->kv, "to-delete", text("again"), NULL, on_done, &o, NULL, err));
    assert_int_equal(o.http_status, 409);
    assert_string_equal(o.service_code, "Conflict");
    assert_null(strstr(o.message, "again"));
}

static void test_throttling_is_honoured(void **state)
{
    fixture *f = *state;
    outcome o;
    /* the mock answers every other request about throttle-* with 429 and Retry-After: 1 */
    START(sky_keyvault_set(f->kv, "throttle-a", text("x"), NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_keyvault_get(f->kv, "throttle-a", NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    assert_string_equal(o.value, "x");
    sky_keyvault_client_free(f->kv);
    client_new(f, 0); /* without retries the 429 shows, on one of two requests */
    int throttled = 0;
    for (int i = 0; i < 2; i++) {
        START(sky_keyvault_get(f->kv, "throttle-a", NULL, on_done, &o, NULL, err));
        throttled += o.http_status == 429 && strcmp(o.service_code, "Throttled") == 0;
    }
    assert_int_equal(throttled, 1);
}

static void test_refused_before_any_request(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_error e;
    memset(&o, 0, sizeof(o));
    const char *bad[] = {"", "under_score", "dot.name", "sp ace"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sky_error_clear(&e);
        assert_int_equal(sky_keyvault_get(f->kv, bad[i], NULL, on_done, &o, NULL, &e), SKY_EINVAL);
        assert_non_null(strstr(e.message, "letters, digits and hyphens"));
    }
    char long_name[130];
    memset(long_name, 'a', 128);
    long_name[128] = '\0';
    sky_error_clear(&e);
    assert_int_equal(sky_keyvault_name_check(long_name, &e), SKY_EINVAL);
    assert_int_equal(o.done, 0);
    /* vaults are https only */
    sky_keyvault_client_options ko;
    sky_keyvault_client *kv = NULL;
    sky_keyvault_client_options_init(&ko);
    ko.vault_url = "http://127.0.0.1:1";
    ko.credential = f->cred;
    sky_error_clear(&e);
    assert_int_equal(sky_keyvault_client_new(f->loop, f->http, &ko, &kv, &e), SKY_EINVAL);
}

/* The challenge's resource must be the vault's domain, or no token goes. */
static void test_challenge_rules(void **state)
{
    sky_keyvault_client c;
    sky_error e;
    char *scope = NULL;
    (void)state;
    memset(&c, 0, sizeof(c));
    sky_keyvault_client_options_init(&c.o);
    char url1[] = "https://myvault.vault.azure.net";
    c.vault_url = url1;
    const char *ok = "Bearer authorization=\"https://login.microsoftonline.com/t\", "
                     "resource=\"https://vault.azure.net\"";
    sky_error_clear(&e);
    assert_int_equal(sky__kv_challenge_scope(&c, ok, &scope, &e), 0);
    assert_string_equal(scope, "https://vault.azure.net/.default");
    free(scope);
    const char *scoped = "Bearer authorization=\"https://login.microsoftonline.com/t\", "
                         "scope=\"https://vault.azure.net/.default\"";
    assert_int_equal(sky__kv_challenge_scope(&c, scoped, &scope, &e), 0);
    assert_string_equal(scope, "https://vault.azure.net/.default");
    free(scope);
    const char *evil = "Bearer authorization=\"https://login.microsoftonline.com/t\", "
                       "resource=\"https://storage.azure.com\"";
    sky_error_clear(&e);
    assert_int_equal(sky__kv_challenge_scope(&c, evil, &scope, &e), SKY_EAUTH);
    assert_null(scope);
    char url2[] = "https://vault.azure.net.evil.example";
    c.vault_url = url2;
    sky_error_clear(&e);
    assert_int_equal(sky__kv_challenge_scope(&c, ok, &scope, &e), SKY_EAUTH);
    c.o.verify_challenge_resource = 0;
    assert_int_equal(sky__kv_challenge_scope(&c, ok, &scope, &e), 0);
    free(scope);
    sky_error_clear(&e);
    assert_int_equal(sky__kv_challenge_scope(&c, "Basic realm=x", &scope, &e), SKY_EAUTH);
}

static void test_references(void **state)
{
    sky_keyvault_ref r;
    sky_error e;
    (void)state;
    sky_error_clear(&e);
    assert_int_equal(sky_keyvault_ref_parse("keyvault://myvault/api-key", &r, &e), 0);
    assert_string_equal(r.vault_url, "https://myvault.vault.azure.net");
    assert_string_equal(r.name, "api-key");
    assert_null(r.version);
    sky_keyvault_ref_free(&r);
    assert_int_equal(sky_keyvault_ref_parse("keyvault://127.0.0.1:8443/k/abc123", &r, &e), 0);
    assert_string_equal(r.vault_url, "https://127.0.0.1:8443");
    assert_string_equal(r.version, "abc123");
    sky_keyvault_ref_free(&r);
    const char *bad[] = {"keyvault://",           "keyvault://vault",   "keyvault://vault/",
                         "keyvault://v/bad_name", "keyvault://v/n/v/x", "vault://v/n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sky_error_clear(&e);
        assert_int_equal(sky_keyvault_ref_parse(bad[i], &r, &e), SKY_EINVAL);
    }
}

static void test_free_client_cancels(void **state)
{
    fixture *f = *state;
    outcome a;
    sky_error e;
    sky_error_clear(&e);
    memset(&a, 0, sizeof(a));
    assert_int_equal(sky_keyvault_get(f->kv, "anything", NULL, on_done, &a, NULL, &e), 0);
    sky_keyvault_client_free(f->kv);
    f->kv = NULL;
    assert_int_equal(a.done, 1);
    assert_int_equal(a.err_code, SKY_ECANCELED);
    client_new(f, 3);
}

/* ---- the command, references and the canary ---- */

/* The environment of every command: the credential chain's client secret, against the
 * mock's Entra ID, trusting its CA; every log line on. */
static void child_env(void)
{
    char authority[128];
    snprintf(authority, sizeof(authority), "https://127.0.0.1:%d", g_mock.port);
    setenv("SSL_CERT_FILE", g_ca, 1);
    setenv("AZURE_AUTHORITY_HOST", authority, 1);
    setenv("AZURE_TENANT_ID", "kv-tenant", 1);
    setenv("AZURE_CLIENT_ID", "kv-client", 1);
    setenv("AZURE_CLIENT_SECRET", "kv-client-secret", 1);
    setenv("SKYIO_LOG", "trace", 1);
    unsetenv("AZURE_STORAGE_CONNECTION_STRING");
}

#define SECRET(input, ...)                                                                         \
    do {                                                                                           \
        const char *const argv_[] = {SKY_TEST_BIN, "secret", __VA_ARGS__, NULL};                   \
        sky_test_run_cli(argv_, input, child_env, 60, &r);                                         \
    } while (0)

static void test_cli(void **state)
{
    sky_test_cli_out r;
    (void)state;
    SECRET("first-value\n", "set", g_host, "cli-secret");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "/secrets/cli-secret/"));
    SECRET(NULL, "get", g_host, "cli-secret");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "first-value\n");
    assert_null(strstr(r.err, "first-value")); /* the trace log has no value */
    SECRET(NULL, "get", g_vault, "cli-secret", "--json");
    json_t *j = json_loads(r.out, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "value")), "first-value");
    json_decref(j);
    SECRET(NULL, "ls", g_host);
    assert_non_null(strstr(r.out, "cli-secret\n"));
    assert_null(strstr(r.out, "first-value"));
    SECRET(NULL, "rm", g_host, "cli-secret");
    assert_int_equal(r.code, 0);
    SECRET(NULL, "get", g_host, "cli-secret");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "SecretNotFound"));
    SECRET(NULL, "get", g_host, "bad_name");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "letters, digits and hyphens"));
    SECRET(NULL, "set", g_host, "x", "--value", "on-the-command-line");
    assert_int_equal(r.code, 2); /* values never come from argv */
}

/* `skyio chat` with OPENAI_API_KEY=keyvault://...: the mock takes only the canary as key. */
static void test_reference_resolved_and_canary(void **state)
{
    sky_test_cli_out r;
    char ref[256], base[160], dir[256], path[1200], text[8192];
    (void)state;
    SECRET(CANARY, "set", g_host, "openai-key");
    assert_int_equal(r.code, 0);
    assert_null(strstr(r.err, CANARY));
    assert_null(strstr(r.out, CANARY));
    snprintf(ref, sizeof(ref), "keyvault://%s/openai-key", g_host);
    snprintf(base, sizeof(base), "%s/v1", g_vault);
    setenv("OPENAI_API_KEY", ref, 1);
    setenv("OPENAI_BASE_URL", base, 1);
    /* the prompt from stdin: the command waits there, its key already read */
    const char *const argv[] = {SKY_TEST_BIN, "chat", "--model", "gpt-4o-mini", NULL};
    sky_test_tmpdir(dir, sizeof(dir));
    int in;
    pid_t pid = sky_test_cli_spawn(argv, dir, child_env, 60, &in);
    sleep(2);
    /* ps and /proc show the command's reference, never the value (only its own line: the
     * mock of this test takes the value as its --key) */
    snprintf(path, sizeof(path),
             "ps -ww -o args e -p %d > %s/ps.txt 2>&1; cat /proc/%d/cmdline "
             "/proc/%d/environ >> %s/ps.txt 2>/dev/null",
             (int)pid, dir, (int)pid, (int)pid, dir);
    assert_int_equal(system(path), 0);
    snprintf(path, sizeof(path), "%s/ps.txt", dir);
    sky_test_slurp(path, text, sizeof(text));
    assert_non_null(strstr(text, "keyvault://")); /* it saw the command's environment */
    assert_null(strstr(text, CANARY));
    assert_int_equal(write(in, "hello", 5), 5);
    close(in);
    sky_test_cli_finish(pid, dir, &r);
    sky_test_rmdir(dir);
    assert_int_equal(r.code, 0); /* the mock took the key: it was the secret's value */
    assert_true(strlen(r.out) > 0);
    assert_null(strstr(r.out, CANARY));
    assert_null(strstr(r.err, CANARY));
    /* a reference that cannot be read: exit 3, the reference and the cause named */
    snprintf(ref, sizeof(ref), "keyvault://%s/missing-key", g_host);
    setenv("OPENAI_API_KEY", ref, 1);
    const char *const argv2[] = {SKY_TEST_BIN, "chat", "--model", "gpt-4o-mini", "hi", NULL};
    sky_test_run_cli(argv2, NULL, child_env, 60, &r);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, ref));
    assert_non_null(strstr(r.err, "SecretNotFound"));
    unsetenv("OPENAI_API_KEY");
    unsetenv("OPENAI_BASE_URL");
    /* blob --account-key keyvault://...: read before anything else, named when it fails */
    const char *const argv3[] = {
        SKY_TEST_BIN,    "blob", "ls",         "--account-name",       "devstoreaccount1",
        "--account-key", ref,    "--endpoint", "http://127.0.0.1:9/a", NULL};
    sky_test_run_cli(argv3, NULL, child_env, 60, &r);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "--account-key"));
    assert_non_null(strstr(r.err, ref));
    /* a resolved account key never shows in what the command says */
    snprintf(ref, sizeof(ref), "keyvault://%s/openai-key", g_host);
    const char *const argv4[] = {
        SKY_TEST_BIN,    "queue", "ls",         "--account-name",       "devstoreaccount1",
        "--account-key", ref,     "--endpoint", "http://127.0.0.1:9/a", NULL};
    sky_test_run_cli(argv4, NULL, child_env, 60, &r);
    assert_int_not_equal(r.code, 0);
    assert_null(strstr(r.err, CANARY));
    assert_null(strstr(r.out, CANARY));
}

/* skyio serve: the upstream key named by a gateway config's key_env is a reference. */
static void test_serve_key_env_reference(void **state)
{
    char dir[256], cfg[300], port_file[300], ref[256], body[512], url[128];
    sky_test_cli_out r;
    int in;
    (void)state;
    SECRET(CANARY, "set", g_host, "upstream-key");
    assert_int_equal(r.code, 0);
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(cfg, sizeof(cfg), "%s/gateway.json", dir);
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    snprintf(body, sizeof(body),
             "{\"models\": {\"gpt-4o-mini\": [{\"kind\": \"compatible\", \"base_url\": "
             "\"%s/v1\", \"key_env\": \"UPSTREAM_KEY\"}]}}",
             g_vault);
    FILE *f = fopen(cfg, "w");
    fputs(body, f);
    fclose(f);
    snprintf(ref, sizeof(ref), "keyvault://%s/upstream-key", g_host);
    setenv("UPSTREAM_KEY", ref, 1);
    const char *const serve[] = {SKY_TEST_BIN, "serve",       "--config", cfg, "--port",
                                 "0",          "--port-file", port_file,  NULL};
    pid_t pid = sky_test_cli_spawn(serve, dir, child_env, 60, &in);
    int port = 0;
    for (int i = 0; i < 1000 && port == 0; i++) {
        usleep(10000);
        port = sky_test_read_port(port_file);
    }
    unsetenv("UPSTREAM_KEY");
    assert_true(port > 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", port);
    const char *const chat[] = {SKY_TEST_BIN, "chat",        "--base-url", url,
                                "--model",    "gpt-4o-mini", "hello",      NULL};
    sky_test_run_cli(chat, NULL, child_env, 60, &r);
    assert_int_equal(r.code, 0); /* the upstream took the key: it was the secret's value */
    assert_null(strstr(r.out, CANARY));
    close(in);
    kill(pid, SIGTERM);
    sky_test_cli_out s;
    sky_test_cli_finish(pid, dir, &s);
    assert_null(strstr(s.out, CANARY));
    assert_null(strstr(s.err, CANARY)); /* the gateway's trace log too */
    sky_test_rmdir(dir);
}

/* ---- the official SDK against the mock ---- */

static void test_sdk_cross_check(void **state)
{
    sky_test_cli_out r;
    char modules[512], rundir[600], script[700], cmd[1600];
    (void)state;
    snprintf(modules, sizeof(modules), "%s/.deps/compat-node/node_modules/@azure/keyvault-secrets",
             SKY_TEST_SRCDIR);
    if (access(modules, R_OK) != 0 || system("command -v node >/dev/null 2>&1") != 0) {
        print_message("the SDKs are not installed (scripts/install-deps): skipped\n");
        skip();
    }
    SECRET("made-by-skyio", "set", g_host, "from-skyio");
    assert_int_equal(r.code, 0);
    snprintf(rundir, sizeof(rundir), "%s/.deps/compat-node/run.keyvault.%d", SKY_TEST_SRCDIR,
             (int)getpid());
    snprintf(script, sizeof(script), "%s/keyvault.mjs", rundir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/tests/compat/keyvault.mjs' '%s'", rundir,
             SKY_TEST_SRCDIR, script);
    assert_int_equal(system(cmd), 0);
    setenv("NODE_EXTRA_CA_CERTS", g_ca, 1);
    const char *const argv[] = {"/usr/bin/env", "node", script, g_vault, NULL};
    sky_test_run_cli(argv, NULL, child_env, 60, &r);
    unsetenv("NODE_EXTRA_CA_CERTS");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rundir);
    assert_int_equal(system(cmd), 0);
    if (r.code != 0)
        fail_msg("keyvault.mjs: %s %s", r.out, r.err);
    assert_non_null(strstr(r.out, "ok"));
    SECRET(NULL, "get", g_host, "from-sdk");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "made-by-the-sdk\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions_and_challenge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_soft_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttling_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_before_any_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_client_cancels, setup, teardown),
        cmocka_unit_test(test_challenge_rules),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_reference_resolved_and_canary),
        cmocka_unit_test(test_serve_key_env_reference),
        cmocka_unit_test(test_sdk_cross_check),
    };
    return sky_test_run_group(tests, group_setup, group_teardown);
}
