/* What the Blob and Queue clients share: their copied endpoint and auth, checks, signing. */
#include "storage_client.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "skyio/storage.h"

#define DEFAULT_SCOPE "https://storage.azure.com/.default"

int sky__storage_auth_check(const char *what, const sky__storage_auth *a, sky_error *err)
{
    if (a->endpoint == NULL ||
        (strncmp(a->endpoint, "http://", 7) != 0 && strncmp(a->endpoint, "https://", 8) != 0))
        return sky_error_set(err, SKY_EINVAL, "%s: an http(s) endpoint is required", what);
    if (a->account_key && (a->account_name == NULL || a->account_name[0] == '\0'))
        return sky_error_set(err, SKY_EINVAL, "%s: an account key needs the account name", what);
    if (a->account_name && sky_storage_account_name_check(a->account_name, err) != 0)
        return SKY_EINVAL;
    return 0;
}

static char *dup_or_null(const char *s, int *bad)
{
    char *p = s ? strdup(s) : NULL;
    *bad |= s != NULL && p == NULL;
    return p;
}

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

int sky__storage_conn_copy(sky__storage_conn *s, const char *what, const sky__storage_auth *a)
{
    int bad = 0;
    size_t elen = strlen(a->endpoint);
    while (elen > 0 && a->endpoint[elen - 1] == '/')
        elen--;
    s->what = what;
    s->endpoint = strndup(a->endpoint, elen);
    bad |= s->endpoint == NULL;
    s->account_name = dup_or_null(a->account_name, &bad);
    s->account_key = dup_or_null(a->account_key, &bad);
    s->sas = dup_or_null(a->sas && a->sas[0] == '?' ? a->sas + 1 : a->sas, &bad);
    s->scope = dup_or_null(a->scope ? a->scope : DEFAULT_SCOPE, &bad);
    return bad ? SKY_ENOMEM : 0;
}

void sky__storage_conn_release(sky__storage_conn *s)
{
    free(s->endpoint);
    free(s->account_name);
    wipe_free(s->account_key);
    wipe_free(s->sas);
    free(s->scope);
    memset(s, 0, sizeof(*s));
}

int sky__storage_sign_attempt(void *ud, const char *method, const char *url, sky_headers *h,
                              sky_error *err)
{
    const sky__storage_conn *s = ud;
    char date[64];
    sky_storage_date_now(date, sizeof(date));
    int rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-date"), sky_span_cstr(date));
    if (rc != 0)
        return sky_error_set(err, rc, "%s: cannot build the request headers", s->what);
    if (s->account_key == NULL)
        return 0;
    return sky_storage_authorize(s->account_name, s->account_key, method, url, h, err);
}

void sky__storage_pipeline_options(sky_pipeline_options *po, const sky__storage_pipe_options *o,
                                   sky__storage_conn *s)
{
    *po = o->pipeline;
    po->retry = o->retry;
    po->attempt_timeout_ms = o->attempt_timeout_ms;
    po->clock = o->clock;
    po->fail_unreached = !o->retry_unreached;
    po->auth = NULL;
    po->auth_refreshes = 0;
    po->credential = s->account_key == NULL ? o->credential : NULL;
    po->scope = po->credential ? s->scope : NULL;
    po->sign = sky__storage_sign_attempt;
    po->sign_user_data = s;
}
