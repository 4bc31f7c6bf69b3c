/*
 * Managed identity. On App Service and Container Apps the platform sets
 * IDENTITY_ENDPOINT and IDENTITY_HEADER (api-version 2019-08-01, header
 * X-IDENTITY-HEADER); elsewhere the VM's Instance Metadata Service answers
 * at {endpoint}/metadata/identity/oauth2/token (api-version 2018-02-01,
 * header `Metadata: true`). The IMDS base URL is http://169.254.169.254
 * unless the option imds_endpoint or $AZURE_POD_IDENTITY_AUTHORITY_HOST
 * names another (tests point it at `skyio mock`). The requests go through the
 * credential's pipeline (credential_http.c), whose retry takes IMDS's list:
 * 404 and 410 (an identity being assigned, IMDS being upgraded), 429 and 5xx.
 * In a chain, the first request is a quick probe with no retry: off Azure
 * nobody answers at 169.254.169.254. Once IMDS has answered, even with an
 * error worth retrying, it is asked again on the pipeline with retries.
 */
#include <stdio.h>
#include <stdlib.h>

#include "credential_internal.h"
#include "skyio/log.h"

typedef struct msi_fetch {
    sky__cred_fetch *f;
    sky_call *call;
    int probing; /* this call is the chain's quick probe */
} msi_fetch;

static int app_service(const sky_credential *c)
{
    return c->cfg.identity_endpoint && c->cfg.identity_header;
}

/* IMDS's list beyond the pipeline's: 404 and 410 while it gets ready, every 5xx (App
 * Service's endpoint is asked by the same rules). */
static int imds_also_retry(int status)
{
    return status == 404 || status == 410 || (status >= 500 && status < 600);
}

static void msi_end(msi_fetch *x, const char *token, int64_t expires_on, int64_t refresh_in,
                    const sky_error *err)
{
    sky__cred_fetch *f = x->f;
    free(x);
    f->impl = NULL;
    sky__cred_fetch_done(f, token, expires_on, refresh_in, NULL, err);
}

static int build_url(const sky_credential *c, const char *scope, sky_buf *url)
{
    char resource[2048];
    sky_buf q;
    int rc = sky_credential_scope_to_resource(scope, resource, sizeof(resource));
    sky_buf_init(&q, 8192);
    rc =
        rc ? rc : sky__form_append(&q, "api-version", app_service(c) ? "2019-08-01" : "2018-02-01");
    rc = rc ? rc : sky__form_append(&q, "resource", resource);
    if (rc == 0 && c->cfg.client_id)
        rc = sky__form_append(&q, "client_id", c->cfg.client_id);
    if (rc == 0 && app_service(c))
        rc = sky_buf_printf(url, "%s%c%s", c->cfg.identity_endpoint,
                            strchr(c->cfg.identity_endpoint, '?') ? '&' : '?', q.data);
    else if (rc == 0)
        rc = sky_buf_printf(url, "%s/metadata/identity/oauth2/token?%s", c->cfg.imds_endpoint,
                            q.data);
    sky_buf_free(&q);
    return rc;
}

static void send_msi(msi_fetch *x);

/* The probe found IMDS there, answering with an error worth retrying: ask again, this time
 * on the pipeline that retries. */
static int probe_answered(msi_fetch *x, const sky_call_result *res, const sky_error *err)
{
    if (!x->probing || x->f->aborted || err == NULL || err->code != SKY_EHTTP ||
        !(sky_retry_is_retryable(res->status, NULL) || imds_also_retry(res->status)))
        return 0;
    SKY_INFO("auth", "managed identity: IMDS answered the probe with %d; asking with retries",
             res->status);
    x->probing = 0;
    send_msi(x);
    return 1;
}

static void on_msi_reply(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    msi_fetch *x = ud;
    sky_credential *c = x->f->c;
    sky_error e;
    char *token = NULL;
    int64_t expires_on = 0, refresh_in = 0;
    (void)call;
    x->call = NULL;
    if (probe_answered(x, res, err))
        return;
    if (res->attempts > 1)
        SKY_INFO("auth", "managed identity: %d attempts, the last %d", res->attempts, res->status);
    sky__cred_read_reply(c, res, err,
                         app_service(c) ? "identity endpoint unreachable" : "IMDS unreachable",
                         c->cfg.identity_header, &token, &expires_on, &refresh_in, &e);
    msi_end(x, token, expires_on, refresh_in, e.code ? &e : NULL);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
}

/* The chain's probe goes on a pipeline of one quick attempt, built when first needed
 * (the chain sets the probe's timeout after the link is built). */
static sky_pipeline *probe_pipeline(sky_credential *c, sky_error *err)
{
    sky__token_policy tp = {0, 0, c->cfg.imds_probe_timeout_ms, imds_also_retry};
    if (c->probe_pipe == NULL && sky__cred_pipeline_new(c, &tp, &c->probe_pipe, err) < 0)
        return NULL;
    return c->probe_pipe;
}

static void send_msi(msi_fetch *x)
{
    sky_credential *c = x->f->c;
    sky_buf url;
    sky_error err;
    sky_headers *h = sky_headers_new();
    sky_buf_init(&url, 16384);
    sky_error_clear(&err);
    sky_pipeline *p = x->probing ? probe_pipeline(c, &err) : c->pipe;
    int rc = h && p ? build_url(c, x->f->scope, &url) : SKY_ENOMEM;
    if (rc == 0 && app_service(c))
        rc = sky_headers_add(h, SKY_SPAN_LIT("X-IDENTITY-HEADER"),
                             sky_span_cstr(c->cfg.identity_header));
    else if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Metadata"), SKY_SPAN_LIT("true"));
    if (rc == 0)
        rc = sky__cred_call(p, url.data, h, sky_span_cstr(""), on_msi_reply, x, &x->call, &err);
    sky_buf_free(&url);
    sky_headers_free(h);
    if (rc < 0) {
        x->call = NULL;
        if (err.code == 0)
            sky_error_set(&err, rc, "cannot start the managed identity request");
        msi_end(x, NULL, 0, 0, &err);
    }
}

static void msi_start(sky__cred_fetch *f)
{
    sky_credential *c = f->c;
    msi_fetch *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        sky_error e;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        sky__cred_fetch_done(f, NULL, 0, 0, NULL, &e);
        return;
    }
    x->f = f;
    x->probing = !app_service(c) && !c->succeeded && c->cfg.imds_probe_timeout_ms > 0;
    f->impl = x;
    send_msi(x);
}

/* The pipeline ends the call, waiting between retries or not, with SKY_ECANCELED. */
static void msi_abort(sky__cred_fetch *f)
{
    msi_fetch *x = f->impl;
    if (x && x->call)
        sky_call_cancel(x->call);
}

const sky__cred_ops sky__cred_managed_ops = {"managed_identity", msi_start, msi_abort, NULL, NULL};

int sky_credential_managed_identity_new(uv_loop_t *loop, sky_http_client *client,
                                        const sky_credential_options *o, sky_credential **out,
                                        sky_error *err)
{
    sky_credential *c = NULL;
    int rc = sky__cred_new(loop, client, o, &sky__cred_managed_ops, &c, err);
    if (rc < 0)
        return rc;
    sky__token_policy tp = {c->cfg.imds_max_retries, c->cfg.imds_retry_base_ms,
                            c->cfg.request_timeout_ms, imds_also_retry};
    return sky__cred_finish_new_http(c, client ? NULL : "no HTTP client given", &tp, out, err);
}
