/*
 * OAuth2 client credentials against Entra ID's v2.0 token endpoint
 * ({authority}/{tenant}/oauth2/v2.0/token), with a client secret
 * (EnvironmentCredential) or a federated assertion read from a file on
 * every refresh (WorkloadIdentityCredential; the file is rotated by the
 * platform). The file is read with uv_fs calls, never blocking the loop. The
 * request goes through the credential's pipeline (credential_http.c), which
 * retries 429, 5xx and transport failures.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "credential_internal.h"
#include "skyio/log.h"

#define ASSERTION_MAX (64u * 1024u)

typedef struct entra_fetch {
    sky__cred_fetch *f;
    sky_call *call;
    uv_fs_t fs;
    uv_file fd;
    sky_buf assertion;
    char chunk[4096];
    sky_error fs_err;
} entra_fetch;

static void entra_end(entra_fetch *x, const char *token, int64_t expires_on, int64_t refresh_in,
                      const sky_error *err)
{
    sky__cred_fetch *f = x->f;
    if (x->assertion.data)
        memset(x->assertion.data, 0, x->assertion.len);
    sky_buf_free(&x->assertion);
    free(x);
    f->impl = NULL;
    sky__cred_fetch_done(f, token, expires_on, refresh_in, NULL, err);
}

static void entra_fail(entra_fetch *x, int code, const char *msg)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, code, "%s", msg);
    entra_end(x, NULL, 0, 0, &e);
}

/* Entra's list beyond the pipeline's: every 5xx. */
static int any_5xx(int status)
{
    return status >= 500 && status < 600;
}

static void on_token_reply(sky_call *call, const sky_call_result *res, const sky_error *err,
                           void *ud)
{
    entra_fetch *x = ud;
    sky_credential *c = x->f->c;
    sky_error e;
    char *token = NULL;
    int64_t expires_on = 0, refresh_in = 0;
    const char *secret = x->assertion.len ? x->assertion.data : c->cfg.client_secret;
    (void)call;
    x->call = NULL;
    if (res->attempts > 1)
        SKY_INFO("auth", "token request: %d attempts, the last %d", res->attempts, res->status);
    sky__cred_read_reply(c, res, err, "token request failed", secret, &token, &expires_on,
                         &refresh_in, &e);
    entra_end(x, token, expires_on, refresh_in, e.code ? &e : NULL);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
}

static int token_body(entra_fetch *x, sky_buf *body)
{
    const sky__cred_config *k = &x->f->c->cfg;
    int rc = sky__form_append(body, "grant_type", "client_credentials");
    rc = rc ? rc : sky__form_append(body, "client_id", k->client_id);
    rc = rc ? rc : sky__form_append(body, "scope", x->f->scope);
    if (x->assertion.len) {
        rc = rc ? rc
                : sky__form_append(body, "client_assertion_type",
                                   "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        rc = rc ? rc : sky__form_append(body, "client_assertion", x->assertion.data);
    } else {
        rc = rc ? rc : sky__form_append(body, "client_secret", k->client_secret);
    }
    return rc;
}

static void post_token_request(entra_fetch *x)
{
    sky_credential *c = x->f->c;
    sky_buf url, body;
    sky_error err;
    sky_headers *h = sky_headers_new();
    sky_buf_init(&url, 4096);
    sky_buf_init(&body, ASSERTION_MAX * 3 + 4096);
    sky_error_clear(&err);
    int rc = h ? 0 : SKY_ENOMEM;
    rc = rc ? rc
            : sky_buf_printf(&url, "%s/%s/oauth2/v2.0/token", c->cfg.authority_host,
                             c->cfg.tenant_id);
    rc = rc ? rc : token_body(x, &body);
    rc = rc ? rc
            : sky_headers_add(h, SKY_SPAN_LIT("Content-Type"),
                              SKY_SPAN_LIT("application/x-www-form-urlencoded"));
    rc = rc ? rc : sky_headers_add(h, SKY_SPAN_LIT("Accept"), SKY_SPAN_LIT("application/json"));
    if (rc == 0)
        rc = sky__cred_call(c->pipe, url.data, h, sky_buf_span(&body), on_token_reply, x, &x->call,
                            &err);
    if (body.data)
        memset(body.data, 0, body.len);
    sky_buf_free(&body);
    sky_buf_free(&url);
    sky_headers_free(h);
    if (rc < 0) {
        x->call = NULL;
        if (err.code == 0)
            sky_error_set(&err, rc, "cannot start the token request");
        entra_end(x, NULL, 0, 0, &err);
    }
}

/* ---- the federated token file, through uv_fs ---- */

static void on_file_read(uv_fs_t *fs);

static void on_file_closed(uv_fs_t *fs)
{
    entra_fetch *x = fs->data;
    uv_fs_req_cleanup(fs);
    if (x->fs_err.code) {
        entra_end(x, NULL, 0, 0, &x->fs_err);
        return;
    }
    if (x->f->aborted) {
        entra_fail(x, SKY_ECANCELED, "credential freed");
        return;
    }
    /* the assertion is one line; trailing newlines are the editor's */
    while (x->assertion.len && (unsigned char)x->assertion.data[x->assertion.len - 1] <= ' ')
        x->assertion.data[--x->assertion.len] = '\0';
    if (x->assertion.len == 0) {
        entra_fail(x, SKY_EAUTH, "the federated token file is empty");
        return;
    }
    post_token_request(x);
}

static void close_file(entra_fetch *x)
{
    uv_fs_close(x->f->c->loop, &x->fs, x->fd, on_file_closed);
}

static void read_more(entra_fetch *x)
{
    uv_buf_t b = uv_buf_init(x->chunk, sizeof(x->chunk));
    if (uv_fs_read(x->f->c->loop, &x->fs, x->fd, &b, 1, -1, on_file_read) < 0) {
        sky_error_set(&x->fs_err, SKY_EIO, "cannot read the federated token file");
        close_file(x);
    }
}

static void on_file_read(uv_fs_t *fs)
{
    entra_fetch *x = fs->data;
    ssize_t n = fs->result;
    uv_fs_req_cleanup(fs);
    if (n < 0)
        sky_error_set(&x->fs_err, SKY_EIO, "cannot read the federated token file: %s",
                      uv_strerror((int)n));
    else if (n > 0 && sky_buf_append(&x->assertion, x->chunk, (size_t)n) < 0)
        sky_error_set(&x->fs_err, SKY_ETOOBIG, "the federated token file is over %u bytes",
                      ASSERTION_MAX);
    memset(x->chunk, 0, sizeof(x->chunk));
    if (n > 0 && x->fs_err.code == 0 && !x->f->aborted)
        read_more(x);
    else
        close_file(x);
}

static void on_file_open(uv_fs_t *fs)
{
    entra_fetch *x = fs->data;
    ssize_t r = fs->result;
    uv_fs_req_cleanup(fs);
    if (r < 0) {
        char msg[SKY_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "cannot open the federated token file: %s", uv_strerror((int)r));
        entra_fail(x, SKY_EAUTH, msg);
        return;
    }
    x->fd = (uv_file)r;
    read_more(x);
}

/* ---- the kind ---- */

static void entra_start(sky__cred_fetch *f)
{
    sky_credential *c = f->c;
    entra_fetch *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        sky_error e;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        sky__cred_fetch_done(f, NULL, 0, 0, NULL, &e);
        return;
    }
    x->f = f;
    f->impl = x;
    x->fs.data = x;
    sky_buf_init(&x->assertion, ASSERTION_MAX);
    sky_error_clear(&x->fs_err);
    if (c->ops != &sky__cred_workload_ops) {
        post_token_request(x);
        return;
    }
    int rc = uv_fs_open(c->loop, &x->fs, c->cfg.token_file, O_RDONLY, 0, on_file_open);
    if (rc < 0) {
        uv_fs_req_cleanup(&x->fs);
        entra_fail(x, SKY_EAUTH, "cannot open the federated token file");
    }
}

static void entra_abort(sky__cred_fetch *f)
{
    entra_fetch *x = f->impl;
    if (x && x->call)
        sky_call_cancel(x->call);
}

const sky__cred_ops sky__cred_client_secret_ops = {"environment", entra_start, entra_abort, NULL,
                                                   NULL};
const sky__cred_ops sky__cred_workload_ops = {"workload_identity", entra_start, entra_abort, NULL,
                                              NULL};

/* A tenant goes into the URL's path: letters, digits, '.', '-' only. */
static int tenant_ok(const char *t)
{
    if (t == NULL || *t == '\0')
        return 0;
    for (; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') ||
              *t == '.' || *t == '-'))
            return 0;
    return 1;
}

/* What is not configured, or NULL. Names only the variables missing. */
static const char *entra_missing(const sky_credential *c, int workload, char *buf, size_t len)
{
    const sky__cred_config *k = &c->cfg;
    const char *names[3] = {k->tenant_id ? NULL : "AZURE_TENANT_ID",
                            k->client_id ? NULL : "AZURE_CLIENT_ID", NULL};
    if (c->http == NULL)
        return "no HTTP client given";
    if (workload && !k->token_file)
        names[2] = "AZURE_FEDERATED_TOKEN_FILE";
    if (!workload && !k->client_secret)
        names[2] = "AZURE_CLIENT_SECRET";
    if (names[0] && names[1] && names[2])
        return "not configured";
    if (names[0] || names[1] || names[2]) {
        size_t n = (size_t)snprintf(buf, len, "not configured:");
        for (int i = 0; i < 3 && n < len; i++)
            if (names[i])
                n += (size_t)snprintf(buf + n, len - n, " %s", names[i]);
        if (n < len)
            snprintf(buf + n, len - n, " unset");
        return buf;
    }
    if (!tenant_ok(k->tenant_id))
        return "the tenant id may hold only letters, digits, '.' and '-'";
    return NULL;
}

static int entra_finish_new(sky_credential *c, const char *missing, sky_credential **out,
                            sky_error *err)
{
    sky__token_policy tp = {c->cfg.entra_max_retries, c->cfg.entra_retry_base_ms,
                            c->cfg.request_timeout_ms, any_5xx};
    return sky__cred_finish_new_http(c, missing, &tp, out, err);
}

int sky_credential_client_secret_new(uv_loop_t *loop, sky_http_client *client,
                                     const sky_credential_options *o, sky_credential **out,
                                     sky_error *err)
{
    sky_credential *c = NULL;
    char why[SKY_ERROR_MESSAGE_MAX];
    int rc = sky__cred_new(loop, client, o, &sky__cred_client_secret_ops, &c, err);
    return rc < 0 ? rc : entra_finish_new(c, entra_missing(c, 0, why, sizeof(why)), out, err);
}

int sky_credential_workload_identity_new(uv_loop_t *loop, sky_http_client *client,
                                         const sky_credential_options *o, sky_credential **out,
                                         sky_error *err)
{
    sky_credential *c = NULL;
    char why[SKY_ERROR_MESSAGE_MAX];
    int rc = sky__cred_new(loop, client, o, &sky__cred_workload_ops, &c, err);
    return rc < 0 ? rc : entra_finish_new(c, entra_missing(c, 1, why, sizeof(why)), out, err);
}
