/*
 * Managed identity. On App Service and Container Apps the platform sets
 * IDENTITY_ENDPOINT and IDENTITY_HEADER (api-version 2019-08-01, header
 * X-IDENTITY-HEADER); elsewhere the VM's Instance Metadata Service answers
 * at {endpoint}/metadata/identity/oauth2/token (api-version 2018-02-01,
 * header `Metadata: true`). The IMDS base URL is http://169.254.169.254
 * unless the option imds_endpoint or $AZURE_POD_IDENTITY_AUTHORITY_HOST
 * names another (tests point it at `skyio mock`). Throttling (429), 410 and
 * 5xx replies are retried with exponential backoff.
 */
#include <stdio.h>
#include <stdlib.h>

#include "credential_internal.h"
#include "skyio/log.h"

typedef struct msi_fetch {
    sky__cred_fetch *f;
    sky_http_request *req;
    uv_timer_t *timer; /* own allocation, freed by its close callback */
    int attempt;
} msi_fetch;

static int app_service(const sky_credential *c)
{
    return c->cfg.identity_endpoint && c->cfg.identity_header;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void msi_end(msi_fetch *x, const char *token, int64_t expires_on, int64_t refresh_in,
                    const sky_error *err)
{
    sky__cred_fetch *f = x->f;
    if (x->timer)
        uv_close((uv_handle_t *)x->timer, on_timer_closed);
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

static void on_retry_timer(uv_timer_t *t)
{
    send_msi(t->data);
}

/* 429, 410 and 5xx are worth another try; so is a transport error, unless
 * this is the chain's first quick probe of IMDS (then IMDS is not there). */
static int retry_later(msi_fetch *x, const sky_http_response *res, const sky_error *err)
{
    sky_credential *c = x->f->c;
    int64_t wait = 0;
    if (x->f->aborted || x->attempt > c->cfg.imds_max_retries)
        return 0;
    if (err ? (c->cfg.imds_probe_timeout_ms > 0 && !c->succeeded)
            : !(res->status == 429 || res->status == 410 || res->status >= 500))
        return 0;
    if (x->timer == NULL) {
        x->timer = malloc(sizeof(*x->timer));
        if (x->timer == NULL)
            return 0;
        uv_timer_init(c->loop, x->timer);
        x->timer->data = x;
    }
    wait = c->cfg.imds_retry_base_ms << (x->attempt - 1 < 10 ? x->attempt - 1 : 10);
    int64_t server_wait = 0;
    if (!err && sky_parse_retry_after_ms(res->headers, c->clock, &server_wait) == 0 &&
        server_wait > wait)
        wait = server_wait > 60000 ? 60000 : server_wait;
    SKY_INFO("auth", "managed identity: attempt %d got %d, retrying in %lld ms", x->attempt,
             err ? 0 : res->status, (long long)wait);
    uv_timer_start(x->timer, on_retry_timer, (uint64_t)wait, 0);
    return 1;
}

static void on_msi_reply(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                         void *ud)
{
    msi_fetch *x = ud;
    sky_credential *c = x->f->c;
    sky_error e;
    char *token = NULL;
    int64_t expires_on = 0, refresh_in = 0;
    (void)req;
    x->req = NULL;
    if (retry_later(x, res, err))
        return;
    sky_error_clear(&e);
    if (err)
        sky__cred_transport_error(
            err, app_service(c) ? "identity endpoint unreachable" : "IMDS unreachable", &e);
    else if (res->status != 200)
        sky__cred_reply_error(res, c->cfg.identity_header, &e);
    else
        sky__cred_parse_token_json(c, res->body, &token, &expires_on, &refresh_in, &e);
    msi_end(x, token, expires_on, refresh_in, e.code ? &e : NULL);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
}

static void send_msi(msi_fetch *x)
{
    sky_credential *c = x->f->c;
    sky_http_request_options ro;
    sky_buf url;
    sky_error err;
    sky_headers *h = sky_headers_new();
    sky_buf_init(&url, 16384);
    sky_error_clear(&err);
    x->attempt++;
    int rc = h ? build_url(c, x->f->scope, &url) : SKY_ENOMEM;
    if (rc == 0 && app_service(c))
        rc = sky_headers_add(h, SKY_SPAN_LIT("X-IDENTITY-HEADER"),
                             sky_span_cstr(c->cfg.identity_header));
    else if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Metadata"), SKY_SPAN_LIT("true"));
    if (rc == 0) {
        sky_http_request_options_init(&ro);
        ro.url = url.data;
        ro.headers = h;
        ro.timeout_ms = c->cfg.request_timeout_ms;
        if (!app_service(c) && !c->succeeded && c->cfg.imds_probe_timeout_ms > 0)
            ro.timeout_ms = c->cfg.imds_probe_timeout_ms;
        ro.max_response_bytes = 1u << 20;
        ro.on_done = on_msi_reply;
        ro.user_data = x;
        rc = sky_http_request_send(c->http, &ro, &x->req, &err);
    }
    sky_buf_free(&url);
    sky_headers_free(h);
    if (rc < 0) {
        x->req = NULL;
        if (err.code == 0)
            sky_error_set(&err, rc, "cannot start the managed identity request");
        msi_end(x, NULL, 0, 0, &err);
    }
}

static void msi_start(sky__cred_fetch *f)
{
    msi_fetch *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        sky_error e;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        sky__cred_fetch_done(f, NULL, 0, 0, NULL, &e);
        return;
    }
    x->f = f;
    f->impl = x;
    send_msi(x);
}

static void msi_abort(sky__cred_fetch *f)
{
    msi_fetch *x = f->impl;
    sky_error e;
    if (x == NULL)
        return;
    if (x->req) {
        sky_http_request_cancel(x->req);
        return;
    }
    /* waiting between retries: end now */
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECANCELED, "credential freed");
    msi_end(x, NULL, 0, 0, &e);
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
    return sky__cred_finish_new(c, client ? NULL : "no HTTP client given", out, err);
}
