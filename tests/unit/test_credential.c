/* Tests for credentials: the per-scope cache, single flight, expiry math, the chain's error text,
 * form encoding and the scrubbing of secrets. Fetches are driven by hand through a fake kind. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/auth/credential_internal.h"
#include "skyio/credential.h"
#include "skyio/log.h"

#define T0_S INT64_C(1700000000)
#define SCOPE "https://management.azure.com/.default"

/* ---- a kind whose fetches the test completes by hand ---- */

typedef struct fake_kind {
    int starts, aborts;
    int last_forced;
    sky__cred_fetch *pending[64];
    int n_pending;
} fake_kind;

static fake_kind g_fake;

static void fake_start(sky__cred_fetch *f)
{
    g_fake.starts++;
    g_fake.last_forced = f->forced;
    g_fake.pending[g_fake.n_pending++] = f;
}

static void fake_abort(sky__cred_fetch *f)
{
    sky_error e;
    g_fake.aborts++;
    for (int i = 0; i < g_fake.n_pending; i++)
        if (g_fake.pending[i] == f)
            g_fake.pending[i] = g_fake.pending[--g_fake.n_pending];
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECANCELED, "credential freed");
    sky__cred_fetch_done(f, NULL, 0, 0, NULL, &e);
}

static const sky__cred_ops fake_ops = {"environment", fake_start, fake_abort, NULL, NULL};

/* Complete the oldest pending fetch with a token or an error message. */
static void fake_complete(const char *token, int64_t expires_on, const char *fail)
{
    sky_error e;
    assert_true(g_fake.n_pending > 0);
    sky__cred_fetch *f = g_fake.pending[0];
    memmove(&g_fake.pending[0], &g_fake.pending[1],
            (size_t)(--g_fake.n_pending) * sizeof(g_fake.pending[0]));
    sky_error_clear(&e);
    if (fail) {
        sky_error_set(&e, SKY_EAUTH, "%s", fail);
        sky__cred_fetch_done(f, NULL, 0, 0, NULL, &e);
    } else {
        sky__cred_fetch_done(f, token, expires_on, 0, NULL, NULL);
    }
}

/* ---- what callbacks saw ---- */

typedef struct got {
    int calls;
    int code;
    int64_t expires_on;
    char token[64];
    char source[32];
    char msg[SKY_ERROR_MESSAGE_MAX];
} got;

static void on_tok(sky_token_request *req, const sky_access_token *tok, const sky_error *err,
                   void *ud)
{
    got *g = ud;
    (void)req;
    g->calls++;
    if (tok) {
        assert_null(err);
        g->code = 0;
        snprintf(g->token, sizeof(g->token), "%s", tok->token);
        snprintf(g->source, sizeof(g->source), "%s", tok->source);
        g->expires_on = tok->expires_on;
    } else {
        assert_non_null(err);
        g->code = err->code;
        snprintf(g->msg, sizeof(g->msg), "%s", err->message);
    }
}

typedef struct fixture {
    uv_loop_t loop;
    sky_fake_clock clock;
    sky_credential *cred;
} fixture;

static void spin(fixture *f)
{
    for (int i = 0; i < 4; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    sky_credential_options o;
    sky_error err;
    if (f == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    memset(&g_fake, 0, sizeof(g_fake));
    sky_fake_clock_init(&f->clock, 1000, T0_S * 1000);
    sky_credential_options_init(&o);
    o.clock = &f->clock.clock;
    sky_error_clear(&err);
    if (sky__cred_new(&f->loop, NULL, &o, &fake_ops, &f->cred, &err) < 0 ||
        sky__cred_finish_new(f->cred, NULL, &f->cred, &err) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sky_credential_free(f->cred);
    spin(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void get(fixture *f, got *g)
{
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_get_token(f->cred, SCOPE, on_tok, g, NULL, &err), 0);
}

/* ---- the cache ---- */

static void test_first_get_fetches_then_caches(void **state)
{
    fixture *f = *state;
    got a = {0}, b = {0};
    sky_access_token peek;
    get(f, &a);
    assert_int_equal(a.calls, 0); /* never from inside the call */
    assert_int_equal(g_fake.starts, 1);
    fake_complete("tok-1", T0_S + 3600, NULL);
    assert_int_equal(a.calls, 0); /* delivered from the loop */
    spin(f);
    assert_int_equal(a.calls, 1);
    assert_string_equal(a.token, "tok-1");
    assert_string_equal(a.source, "environment");
    assert_int_equal(a.expires_on, T0_S + 3600);
    get(f, &b);
    spin(f);
    assert_int_equal(b.calls, 1);
    assert_string_equal(b.token, "tok-1");
    assert_int_equal(g_fake.starts, 1);
    assert_int_equal(sky_credential_peek_token(f->cred, SCOPE, &peek), 1);
    assert_string_equal(peek.token, "tok-1");
    assert_int_equal(sky_credential_peek_token(f->cred, "other/.default", &peek), 0);
}

static void test_refresh_ahead_of_expiry(void **state)
{
    fixture *f = *state;
    got a = {0}, b = {0}, c = {0}, d = {0};
    sky_access_token peek;
    get(f, &a);
    fake_complete("tok-1", T0_S + 3600, NULL);
    spin(f);
    /* 4 min 59 s before the refresh point: still served from the cache */
    sky_fake_clock_advance(&f->clock, (3600 - 300 - 1) * 1000);
    get(f, &b);
    spin(f);
    assert_int_equal(g_fake.starts, 1);
    assert_string_equal(b.token, "tok-1");
    /* 5 minutes before expiry: the cached token still answers, and one
     * background refresh starts */
    sky_fake_clock_advance(&f->clock, 2000);
    assert_int_equal(sky_credential_peek_token(f->cred, SCOPE, &peek), 0);
    get(f, &c);
    get(f, &c);
    spin(f);
    assert_int_equal(c.calls, 2);
    assert_string_equal(c.token, "tok-1");
    assert_int_equal(g_fake.starts, 2);
    fake_complete("tok-2", T0_S + 7200, NULL);
    get(f, &d);
    spin(f);
    assert_string_equal(d.token, "tok-2");
    assert_int_equal(g_fake.starts, 2);
}

static void test_short_lived_token_refreshes_at_half_life(void **state)
{
    fixture *f = *state;
    got a = {0}, b = {0}, c = {0};
    get(f, &a);
    fake_complete("short-1", T0_S + 120, NULL); /* 2 minutes: under twice the margin */
    spin(f);
    sky_fake_clock_advance(&f->clock, 59 * 1000);
    get(f, &b);
    spin(f);
    assert_int_equal(g_fake.starts, 1);
    sky_fake_clock_advance(&f->clock, 2 * 1000); /* 61 s: past half */
    get(f, &c);
    spin(f);
    assert_int_equal(g_fake.starts, 2);
    assert_string_equal(c.token, "short-1");
}

static void test_expired_token_waits_for_new_one(void **state)
{
    fixture *f = *state;
    got a = {0}, b = {0};
    get(f, &a);
    fake_complete("old", T0_S + 3600, NULL);
    spin(f);
    sky_fake_clock_advance(&f->clock, 3600 * 1000);
    get(f, &b);
    spin(f);
    assert_int_equal(b.calls, 0);
    assert_int_equal(g_fake.starts, 2);
    fake_complete("new", T0_S + 7200, NULL);
    spin(f);
    assert_int_equal(b.calls, 1);
    assert_string_equal(b.token, "new");
}

static void test_concurrent_callers_share_one_fetch(void **state)
{
    fixture *f = *state;
    got g[50];
    memset(g, 0, sizeof(g));
    for (int i = 0; i < 50; i++)
        get(f, &g[i]);
    assert_int_equal(g_fake.starts, 1);
    fake_complete("shared", T0_S + 3600, NULL);
    spin(f);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_string_equal(g[i].token, "shared");
    }
    assert_int_equal(g_fake.starts, 1);
}

static void test_forced_refresh_skips_cache_once(void **state)
{
    fixture *f = *state;
    got a = {0}, b = {0}, c = {0};
    sky_error err;
    get(f, &a);
    fake_complete("tok-1", T0_S + 3600, NULL);
    spin(f);
    sky_error_clear(&err);
    assert_int_equal(sky_credential_refresh_token(f->cred, SCOPE, on_tok, &b, NULL, &err), 0);
    assert_int_equal(sky_credential_refresh_token(f->cred, SCOPE, on_tok, &b, NULL, &err), 0);
    get(f, &c); /* a plain get meanwhile takes the cached token */
    spin(f);
    assert_int_equal(g_fake.starts, 2);
    assert_int_equal(g_fake.last_forced, 1);
    assert_int_equal(c.calls, 1);
    assert_string_equal(c.token, "tok-1");
    fake_complete("tok-2", T0_S + 3600, NULL);
    spin(f);
    assert_int_equal(b.calls, 2);
    assert_string_equal(b.token, "tok-2");
}

static void test_failure_reaches_every_waiter(void **state)
{
    fixture *f = *state;
    got a = {0}, b = {0};
    get(f, &a);
    get(f, &b);
    fake_complete(NULL, 0, "HTTP 401 invalid_client");
    spin(f);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.code, SKY_EAUTH);
    assert_string_equal(b.msg, "HTTP 401 invalid_client");
}

static void test_cancel_calls_back_once(void **state)
{
    fixture *f = *state;
    got a = {0}, b = {0};
    sky_token_request *req = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_get_token(f->cred, SCOPE, on_tok, &a, &req, &err), 0);
    get(f, &b);
    sky_token_request_cancel(req);
    spin(f);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.code, SKY_ECANCELED);
    fake_complete("late", T0_S + 3600, NULL); /* the shared fetch goes on for the other */
    spin(f);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_string_equal(b.token, "late");
}

static void test_free_cancels_pending(void **state)
{
    fixture *f = *state;
    got a = {0};
    get(f, &a);
    sky_credential_free(f->cred);
    f->cred = NULL;
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.code, SKY_ECANCELED);
    assert_int_equal(g_fake.aborts, 1);
}

static void free_in_callback(sky_token_request *req, const sky_access_token *tok,
                             const sky_error *err, void *ud)
{
    fixture *f = ud;
    (void)req;
    (void)tok;
    (void)err;
    sky_credential_free(f->cred);
    f->cred = NULL;
}

static void test_free_inside_callback(void **state)
{
    fixture *f = *state;
    got b = {0};
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_get_token(f->cred, SCOPE, free_in_callback, f, NULL, &err), 0);
    get(f, &b);
    fake_complete("tok", T0_S + 3600, NULL);
    spin(f);
    assert_null(f->cred);
    assert_int_equal(b.calls, 1); /* delivered (as a token or canceled), exactly once */
}

static void test_bad_arguments(void **state)
{
    fixture *f = *state;
    got a = {0};
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_get_token(f->cred, "", on_tok, &a, NULL, &err), SKY_EINVAL);
    assert_int_equal(sky_credential_get_token(f->cred, SCOPE, NULL, &a, NULL, &err), SKY_EINVAL);
    spin(f);
    assert_int_equal(a.calls, 0);
}

/* ---- static ---- */

static void test_static_token(void **state)
{
    fixture *f = *state;
    sky_credential *s = NULL;
    sky_error err;
    got a = {0}, b = {0};
    sky_error_clear(&err);
    assert_int_equal(sky_credential_static_new(&f->loop, "key-123", 0, &s, &err), 0);
    assert_string_equal(sky_credential_kind(s), "static");
    assert_int_equal(sky_credential_get_token(s, SCOPE, on_tok, &a, NULL, &err), 0);
    spin(f);
    assert_string_equal(a.token, "key-123");
    assert_string_equal(a.source, "static");
    sky_credential_free(s);
    assert_int_equal(sky_credential_static_new(&f->loop, "old", 1, &s, &err), 0); /* 1970 */
    assert_int_equal(sky_credential_get_token(s, SCOPE, on_tok, &b, NULL, &err), 0);
    spin(f);
    assert_int_equal(b.code, SKY_EAUTH);
    sky_credential_free(s);
}

/* ---- the chain ---- */

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

static void test_chain_error_names_every_link(void **state)
{
    fixture *f = *state;
    sky_credential_options o;
    sky_credential *chain = NULL;
    sky_http_client *client = NULL;
    sky_error err;
    got a = {0};
    clear_env();
    setenv("AZURE_CLIENT_SECRET", "hunter2-very-secret", 1);
    sky_credential_options_init(&o);
    o.exclude_managed_identity = 1;
    o.az_path = "/nonexistent/skyio-test/az";
    sky_error_clear(&err);
    assert_int_equal(sky_http_client_new(&f->loop, NULL, &client), 0);
    assert_int_equal(sky_credential_default_new(&f->loop, client, &o, &chain, &err), 0);
    assert_string_equal(sky_credential_kind(chain), "default");
    assert_int_equal(sky_credential_get_token(chain, SCOPE, on_tok, &a, NULL, &err), 0);
    for (int i = 0; i < 200 && a.calls == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.code, SKY_EAUTH);
    assert_non_null(strstr(a.msg, "no credential worked: "));
    assert_non_null(strstr(a.msg, "environment: not configured"));
    assert_non_null(strstr(a.msg, "workload_identity: not configured"));
    assert_non_null(strstr(a.msg, "azure_cli: Azure CLI not found"));
    assert_null(strstr(a.msg, "managed_identity")); /* excluded: not tried */
    assert_null(strstr(a.msg, "hunter2"));
    sky_credential_free(chain);
    sky_http_client_free(client);
    spin(f);
    clear_env();
}

static void test_chain_everything_excluded(void **state)
{
    fixture *f = *state;
    sky_credential_options o;
    sky_credential *chain = NULL;
    sky_error err;
    got a = {0};
    sky_credential_options_init(&o);
    o.exclude_environment = o.exclude_workload_identity = 1;
    o.exclude_managed_identity = o.exclude_azure_cli = 1;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_default_new(&f->loop, NULL, &o, &chain, &err), 0);
    assert_int_equal(sky_credential_get_token(chain, SCOPE, on_tok, &a, NULL, &err), 0);
    spin(f);
    spin(f);
    assert_int_equal(a.calls, 1);
    assert_non_null(strstr(a.msg, "every credential is excluded"));
    sky_credential_free(chain);
}

/* ---- pure helpers ---- */

static void test_refresh_math(void **state)
{
    (void)state;
    /* an hour: 5 minutes before expiry */
    assert_int_equal(sky__cred_refresh_at_ms(T0_S, T0_S + 3600, 300, 0), (T0_S + 3300) * 1000);
    /* 8 minutes (under twice the margin): at half the lifetime */
    assert_int_equal(sky__cred_refresh_at_ms(T0_S, T0_S + 480, 300, 0), (T0_S + 240) * 1000);
    /* the service's refresh_in, when earlier, wins */
    assert_int_equal(sky__cred_refresh_at_ms(T0_S, T0_S + 86400, 300, 1800), (T0_S + 1800) * 1000);
    /* already expired: now */
    assert_int_equal(sky__cred_refresh_at_ms(T0_S, T0_S - 10, 300, 0), T0_S * 1000);
}

static void test_form_encoding(void **state)
{
    sky_buf b;
    (void)state;
    sky_buf_init(&b, 4096);
    assert_int_equal(sky__form_append(&b, "grant_type", "client_credentials"), 0);
    assert_int_equal(sky__form_append(&b, "scope", "https://x.y/.default"), 0);
    assert_int_equal(sky__form_append(&b, "client_secret", "a b&c=d+e%f~_.-\xc3\xa9"), 0);
    assert_string_equal(b.data, "grant_type=client_credentials"
                                "&scope=https%3A%2F%2Fx.y%2F.default"
                                "&client_secret=a%20b%26c%3Dd%2Be%25f~_.-%C3%A9");
    sky_buf_free(&b);
}

static void test_scrub_masks_secret(void **state)
{
    char text[200];
    (void)state;
    snprintf(text, sizeof(text),
             "bad secret s3cr3t-value given; access_token=abc.def and Bearer "
             "eyJhbGciOi");
    sky__cred_scrub(text, "s3cr3t-value");
    assert_null(strstr(text, "s3cr3t-value"));
    assert_null(strstr(text, "abc.def"));
    assert_null(strstr(text, "eyJhbGciOi"));
    assert_non_null(strstr(text, "bad secret"));
}

static void test_parse_token_json(void **state)
{
    fixture *f = *state;
    char *tok = NULL;
    int64_t exp = 0, ref = 0;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(
        sky__cred_parse_token_json(
            f->cred,
            SKY_SPAN_LIT("{\"access_token\":\"A\",\"expires_in\":3599,\"refresh_in\":1800}"), &tok,
            &exp, &ref, &err),
        0);
    assert_string_equal(tok, "A");
    assert_int_equal(exp, T0_S + 3599);
    assert_int_equal(ref, 1800);
    free(tok);
    assert_int_equal(sky__cred_parse_token_json(
                         f->cred,
                         SKY_SPAN_LIT("{\"access_token\":\"B\",\"expires_on\":\"1700009999\","
                                      "\"expires_in\":\"3599\"}"),
                         &tok, &exp, &ref, &err),
                     0);
    assert_int_equal(exp, 1700009999);
    free(tok);
    assert_int_equal(sky__cred_parse_token_json(f->cred, SKY_SPAN_LIT("{\"expires_in\":5}"), &tok,
                                                &exp, &ref, &err),
                     SKY_EAUTH);
    sky_error_clear(&err);
    assert_int_equal(
        sky__cred_parse_token_json(f->cred, SKY_SPAN_LIT("<html>"), &tok, &exp, &ref, &err),
        SKY_EJSON);
}

static void test_scope_to_resource(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(sky_credential_scope_to_resource(SCOPE, out, sizeof(out)), 0);
    assert_string_equal(out, "https://management.azure.com");
    assert_int_equal(sky_credential_scope_to_resource("api://x", out, sizeof(out)), 0);
    assert_string_equal(out, "api://x");
    assert_int_equal(sky_credential_scope_to_resource(SCOPE, out, 8), SKY_ETOOBIG);
}

static void test_constructors_say_what_is_missing(void **state)
{
    fixture *f = *state;
    sky_credential_options o;
    sky_credential *c = (sky_credential *)1;
    sky_http_client *client = NULL;
    sky_error err;
    clear_env();
    sky_credential_options_init(&o);
    o.tenant_id = "tenant";
    o.client_id = "client";
    assert_int_equal(sky_http_client_new(&f->loop, NULL, &client), 0);
    sky_error_clear(&err);
    assert_int_equal(sky_credential_client_secret_new(&f->loop, client, &o, &c, &err), SKY_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err.message, "AZURE_CLIENT_SECRET"));
    o.client_secret = "x";
    o.tenant_id = "evil/../path";
    sky_error_clear(&err);
    assert_int_equal(sky_credential_client_secret_new(&f->loop, client, &o, &c, &err), SKY_EINVAL);
    o.tenant_id = "tenant";
    sky_error_clear(&err);
    assert_int_equal(sky_credential_client_secret_new(&f->loop, client, &o, &c, &err), 0);
    assert_string_equal(sky_credential_kind(c), "environment");
    sky_credential_free(c);
    sky_error_clear(&err);
    assert_int_equal(sky_credential_workload_identity_new(&f->loop, client, &o, &c, &err),
                     SKY_EINVAL);
    assert_non_null(strstr(err.message, "AZURE_FEDERATED_TOKEN_FILE"));
    sky_http_client_free(client);
    spin(f);
}

/* Credentials by name, as `skyio token --credential` and `--exclude` take them. */
static void test_named_credentials(void **state)
{
    fixture *f = *state;
    sky_credential_options o;
    sky_credential *c = NULL;
    sky_error err;
    clear_env();
    sky_credential_options_init(&o);
    assert_int_equal(sky_credential_options_exclude(&o, "managed_identity"), 0);
    assert_true(o.exclude_managed_identity);
    assert_int_equal(sky_credential_options_exclude(&o, "workload_identity"), 0);
    assert_true(o.exclude_workload_identity);
    assert_int_equal(sky_credential_options_exclude(&o, "default"), SKY_EINVAL);
    assert_int_equal(sky_credential_options_exclude(&o, "nope"), SKY_EINVAL);
    o.az_path = "/nonexistent/az";
    sky_error_clear(&err);
    assert_int_equal(sky_credential_new_named(&f->loop, NULL, "azure_cli", &o, &c, &err), 0);
    assert_string_equal(sky_credential_kind(c), "azure_cli");
    sky_credential_free(c);
    assert_int_equal(sky_credential_new_named(&f->loop, NULL, NULL, &o, &c, &err), 0);
    assert_string_equal(sky_credential_kind(c), "default");
    sky_credential_free(c);
    c = (sky_credential *)1;
    assert_int_equal(sky_credential_new_named(&f->loop, NULL, "nope", &o, &c, &err), SKY_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err.message, "unknown credential 'nope'"));
    spin(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_get_fetches_then_caches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_ahead_of_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_lived_token_refreshes_at_half_life, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_expired_token_waits_for_new_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_callers_share_one_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced_refresh_skips_cache_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_reaches_every_waiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_calls_back_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_cancels_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_error_names_every_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_everything_excluded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_token_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constructors_say_what_is_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_credentials, setup, teardown),
        cmocka_unit_test(test_refresh_math),
        cmocka_unit_test(test_form_encoding),
        cmocka_unit_test(test_scrub_masks_secret),
        cmocka_unit_test(test_scope_to_resource),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
