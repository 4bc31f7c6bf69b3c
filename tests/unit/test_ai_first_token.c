/* The AI client's first token (asked before any request) and its unreachable-endpoint rule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "skyio/ai.h"
#include "skyio/credential.h"
#include "skyio/http.h"

#define NOWHERE "http://127.0.0.1:9" /* discard: nothing listens, and nothing is sent */

typedef struct fixture {
    uv_loop_t loop;
    sky_http_client *http;
    sky_credential *cred;
    sky_ai_client *ai;
    int calls;     /* first-token callbacks */
    int last_code; /* their error's code; 0 for a token */
    char last_message[256];
} fixture;

/* An Azure OpenAI client without a key on @p f's loop; @p cred may be NULL. */
static void open_client(fixture *f, sky_credential *cred)
{
    sky_ai_endpoint ep;
    sky_ai_client_options o;
    sky_error err;
    memset(&ep, 0, sizeof(ep));
    sky_error_clear(&err);
    assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_AZURE, NOWHERE, NULL, NULL), 0);
    ep.use_entra_id = cred != NULL;
    sky_ai_client_options_init(&o);
    o.endpoint = &ep;
    o.pipeline.credential = cred;
    assert_int_equal(sky_ai_client_new(&f->loop, f->http, &o, &f->ai, &err), 0);
    sky_ai_endpoint_free(&ep);
}

static void setup(fixture *f, int64_t expires_on)
{
    sky_error err;
    sky_error_clear(&err);
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(sky_http_client_new(&f->loop, NULL, &f->http), 0);
    if (expires_on >= 0)
        assert_int_equal(sky_credential_static_new(&f->loop, "t0ken", expires_on, &f->cred, &err),
                         0);
    open_client(f, f->cred);
}

static void teardown(fixture *f)
{
    sky_ai_client_free(f->ai);
    sky_credential_free(f->cred);
    sky_http_client_free(f->http);
    while (uv_run(&f->loop, UV_RUN_NOWAIT))
        ;
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void on_token(sky_ai_client *c, const sky_error *err, void *ud)
{
    fixture *f = ud;
    assert_ptr_equal(c, f->ai);
    f->calls++;
    f->last_code = err ? err->code : 0;
    snprintf(f->last_message, sizeof(f->last_message), "%s", err ? err->message : "");
}

static void run_until_called(fixture *f)
{
    while (f->calls == 0 && uv_run(&f->loop, UV_RUN_ONCE))
        ;
}

static void test_token_comes_first(void **state)
{
    fixture f;
    sky_error err;
    (void)state;
    setup(&f, 0); /* a token that never expires */
    sky_error_clear(&err);
    assert_int_equal(sky_ai_client_first_token(f.ai, on_token, &f, &err), 0);
    assert_int_equal(f.calls, 0); /* never from inside the call */
    assert_int_equal(sky_ai_client_first_token(f.ai, on_token, &f, &err), SKY_ESTATE);
    run_until_called(&f);
    assert_int_equal(f.calls, 1);
    assert_int_equal(f.last_code, 0);
    teardown(&f);
    assert_int_equal(f.calls, 1);
}

/* A credential that gives no token: its own error, once, before anything is sent. */
static void test_no_token_is_said_once(void **state)
{
    fixture f;
    sky_error err;
    (void)state;
    setup(&f, 1); /* expired in 1970 */
    sky_error_clear(&err);
    assert_int_equal(sky_ai_client_first_token(f.ai, on_token, &f, &err), 0);
    run_until_called(&f);
    assert_int_equal(f.calls, 1);
    assert_int_equal(f.last_code, SKY_EAUTH);
    assert_non_null(strstr(f.last_message, "expired"));
    assert_null(strstr(f.last_message, "t0ken")); /* never the secret */
    sky_pipeline_health h;
    sky_pipeline_get_health(sky_ai_client_pipeline(f.ai), &h);
    assert_int_equal(h.answered, 0);
    teardown(&f);
}

static void test_no_credential_and_free_while_asking(void **state)
{
    fixture f;
    sky_error err;
    (void)state;
    setup(&f, -1); /* no credential: nothing to ask */
    sky_error_clear(&err);
    assert_int_equal(sky_ai_client_first_token(f.ai, on_token, &f, &err), SKY_EINVAL);
    assert_int_equal(sky_ai_client_first_token(NULL, on_token, &f, NULL), SKY_EINVAL);
    teardown(&f);
    assert_int_equal(f.calls, 0);

    setup(&f, 0); /* freed before the token came: canceled, once */
    assert_int_equal(sky_ai_client_first_token(f.ai, on_token, &f, NULL), 0);
    sky_ai_client_free(f.ai);
    assert_int_equal(f.calls, 1);
    assert_int_equal(f.last_code, SKY_ECANCELED);
    f.ai = NULL;
    teardown(&f);
    assert_int_equal(f.calls, 1);
}

/* Unreachable: a connect, name or TLS failure while nothing of the endpoint ever answered. */
static void test_unreachable(void **state)
{
    fixture f;
    sky_error err;
    (void)state;
    setup(&f, -1);
    const int never[] = {SKY_ECONNECT, SKY_ERESOLVE, SKY_ETLS};
    const int other[] = {SKY_EHTTP, SKY_ETIMEDOUT, SKY_EAUTH, SKY_EPARTIAL};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        sky_error_clear(&err);
        sky_error_set(&err, never[i], "no");
        assert_true(sky_ai_client_unreachable(f.ai, &err));
    }
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        sky_error_clear(&err);
        sky_error_set(&err, other[i], "no");
        assert_false(sky_ai_client_unreachable(f.ai, &err));
    }
    assert_false(sky_ai_client_unreachable(f.ai, NULL));
    assert_false(sky_ai_client_unreachable(NULL, &err));
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_comes_first),
        cmocka_unit_test(test_no_token_is_said_once),
        cmocka_unit_test(test_no_credential_and_free_while_asking),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
