/* The Blob client: options, operations' lifetime, and one request with auth and retries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"
#include "skyio/log.h"

#define DEFAULT_BLOCK (4u * 1024 * 1024)
#define MAX_BLOCK ((size_t)4000 * 1024 * 1024)
/* curl's buffers for blocks and ranges; small requests keep the client's small ones,
 * since a buffer this size is an mmap of its own for every request. */
#define LARGE_IO_BUFFER (128 * 1024)

struct sky__blob_req {
    sky_blob_op *op;
    sky__blob_req *prev, *next; /* in op->reqs */
    char *method;
    char *url;
    sky_headers *extra;
    const char *body;
    size_t body_len, body_off;
    sky_http_read_cb reader;
    int (*sink)(void *user_data, const char *data, size_t len);
    void (*on_attempt)(void *user_data);
    int status; /* this attempt's, once its headers are in */
    int large;
    sky_buf resp;
    int not_found_ok;
    sky_retry_state rs;
    uv_timer_t timer; /* the wait before a retry; closed when the request ends */
    sky_http_request *http;
    sky_token_request *treq; /* waiting for a token from the credential */
    int waiting;             /* the timer is armed for a retry */
    int ended;               /* the callback ran */
    sky__blob_req_cb cb;
    void *user_data;
};

void sky_blob_client_options_init(sky_blob_client_options *o)
{
    memset(o, 0, sizeof(*o));
    sky_retry_options_init(&o->retry);
    o->attempt_timeout_ms = 300000;
    o->block_size = DEFAULT_BLOCK;
    o->concurrency = 4;
}

void sky_blob_client_options_from_account(sky_blob_client_options *o, const sky_storage_account *a)
{
    o->endpoint = a->blob_endpoint;
    o->account_name = a->account_name;
    o->account_key = a->account_key;
    o->sas = a->sas;
}

void sky_blob_transfer_options_init(sky_blob_transfer_options *o)
{
    memset(o, 0, sizeof(*o));
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

static void client_release(sky_blob_client *c)
{
    free(c->endpoint);
    free(c->account_name);
    wipe_free(c->account_key);
    wipe_free(c->sas);
    free(c->scope);
    free(c);
}

static int check_options(const sky_blob_client_options *o, sky_error *err)
{
    if (o == NULL || o->endpoint == NULL ||
        (strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0))
        return sky_error_set(err, SKY_EINVAL, "blob: an http(s) endpoint is required");
    if (o->account_key && (o->account_name == NULL || o->account_name[0] == '\0'))
        return sky_error_set(err, SKY_EINVAL, "blob: an account key needs the account name");
    if (o->account_name && sky_storage_account_name_check(o->account_name, err) != 0)
        return SKY_EINVAL;
    if (o->block_size > MAX_BLOCK || o->concurrency < 0)
        return sky_error_set(err, SKY_EINVAL, "blob: block size at most 4000 MiB");
    return 0;
}

int sky_blob_client_new(uv_loop_t *loop, sky_http_client *http, const sky_blob_client_options *o,
                        sky_blob_client **out, sky_error *err)
{
    *out = NULL;
    if (loop == NULL || http == NULL)
        return sky_error_set(err, SKY_EINVAL, "blob: a loop and an HTTP client are required");
    int rc = check_options(o, err);
    if (rc != 0)
        return rc;
    sky_blob_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    c->loop = loop;
    c->http = http;
    c->o = *o;
    int bad = 0;
    size_t elen = strlen(o->endpoint);
    while (elen > 0 && o->endpoint[elen - 1] == '/')
        elen--;
    c->endpoint = strndup(o->endpoint, elen);
    bad |= c->endpoint == NULL;
    c->account_name = dup_or_null(o->account_name, &bad);
    c->account_key = dup_or_null(o->account_key, &bad);
    c->sas = dup_or_null(o->sas && o->sas[0] == '?' ? o->sas + 1 : o->sas, &bad);
    c->scope = dup_or_null(o->scope ? o->scope : "https://storage.azure.com/.default", &bad);
    if (bad) {
        client_release(c);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    if (c->o.block_size == 0)
        c->o.block_size = DEFAULT_BLOCK;
    if (c->o.single_put_max == 0)
        c->o.single_put_max = c->o.block_size;
    if (c->o.concurrency <= 0)
        c->o.concurrency = 4;
    *out = c;
    return 0;
}

uint64_t sky_blob_client_answered(const sky_blob_client *c)
{
    return c ? c->answered : 0;
}

void sky_blob_client_free(sky_blob_client *c)
{
    if (c == NULL || c->freeing)
        return;
    c->freeing = 1;
    for (sky_blob_op *op = c->ops; op; op = op->next)
        if (!op->reported)
            sky_blob_op_cancel(op);
    if (c->nops == 0)
        client_release(c);
}

/* ---- operations ---- */

sky_blob_op *sky__blob_op_new(sky_blob_client *c, sky_blob_done_cb cb, void *user_data)
{
    sky_blob_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->c = c;
    op->cb = cb;
    op->user_data = user_data;
    op->refs = 1;
    op->next = c->ops;
    if (c->ops)
        c->ops->prev = op;
    c->ops = op;
    c->nops++;
    return op;
}

void sky__blob_op_unref(sky_blob_op *op)
{
    if (--op->refs > 0)
        return;
    sky_blob_client *c = op->c;
    if (op->prev)
        op->prev->next = op->next;
    else
        c->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    c->nops--;
    if (op->state_free)
        op->state_free(op->state);
    free(op);
    if (c->freeing && c->nops == 0)
        client_release(c);
}

void sky__blob_op_report(sky_blob_op *op, const sky_blob_reply *reply, const sky_error *err)
{
    if (op->reported)
        return;
    op->reported = 1;
    sky_blob_reply empty;
    memset(&empty, 0, sizeof(empty));
    if (err == NULL && op->err.code != 0)
        err = &op->err;
    op->cb(op, reply ? reply : &empty, err && err->code ? err : NULL, op->user_data);
    sky__blob_op_unref(op);
}

static void req_wake(sky__blob_req *r);

void sky__blob_op_fail(sky_blob_op *op, const sky_error *err)
{
    if (op->err.code == 0 && err)
        op->err = *err;
    for (sky__blob_req *r = op->reqs; r; r = r->next) {
        if (r->http)
            sky_http_request_cancel(r->http);
        else if (r->treq)
            sky_token_request_cancel(r->treq);
        else if (r->waiting)
            req_wake(r);
    }
}

void sky_blob_op_cancel(sky_blob_op *op)
{
    if (op == NULL || op->reported || op->canceled)
        return;
    op->canceled = 1;
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECANCELED, "blob operation canceled");
    sky__blob_op_fail(op, &e);
    if (op->on_cancel)
        op->on_cancel(op);
}

/* ---- URLs ---- */

/*
 * A blob name for the URL path: '/' kept, the rest percent-encoded, and the
 * dots of a "." or ".." segment encoded too, or libcurl would resolve them
 * away and address another blob.
 */
static int encode_blob_name(const char *blob, sky_buf *out)
{
    int rc = 0;
    for (const char *p = blob; rc == 0;) {
        size_t n = strcspn(p, "/");
        int dots = n > 0 && n <= 2 && strspn(p, ".") == n;
        rc = dots ? sky_buf_append(out, "%2E%2E", 3 * n)
                  : sky_storage_url_encode(sky_span_make(p, n), 0, out);
        if (rc != 0 || p[n] == '\0')
            break;
        rc = sky_buf_append(out, "/", 1);
        p += n + 1;
    }
    return rc;
}

int sky__blob_url(const sky_blob_client *c, const char *container, const char *blob,
                  const char *query, sky_buf *out)
{
    int rc = sky_buf_append_str(out, c->endpoint);
    if (rc == 0 && container) {
        rc = sky_buf_append(out, "/", 1);
        if (rc == 0)
            rc = sky_storage_url_encode(sky_span_cstr(container), 0, out);
    }
    if (rc == 0 && blob) {
        rc = sky_buf_append(out, "/", 1);
        if (rc == 0)
            rc = encode_blob_name(blob, out);
    }
    if (rc == 0 && container == NULL)
        rc = sky_buf_append(out, "/", 1);
    if (rc == 0 && query && query[0])
        rc = sky_buf_printf(out, "?%s", query);
    return rc;
}

/* ---- one request ---- */

static void req_closed(uv_handle_t *h)
{
    sky__blob_req *r = h->data;
    sky_blob_op *op = r->op;
    free(r->method);
    free(r->url);
    sky_headers_free(r->extra);
    sky_buf_free(&r->resp);
    free(r);
    sky__blob_op_unref(op);
}

/* Report once, unlink from the op, and free once the timer is closed. */
static void req_end(sky__blob_req *r, int status, const sky_headers *h, const sky_error *err)
{
    sky_blob_op *op = r->op;
    if (r->prev)
        r->prev->next = r->next;
    else
        op->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->ended = 1;
    r->cb(r, status, h, &r->resp, err, r->user_data);
    uv_close((uv_handle_t *)&r->timer, req_closed);
}

static long req_read(char *out, size_t cap, void *ud)
{
    sky__blob_req *r = ud;
    size_t n = r->body_len - r->body_off;
    if (n > cap)
        n = cap;
    memcpy(out, r->body + r->body_off, n);
    r->body_off += n;
    return (long)n;
}

static long req_stream(char *out, size_t cap, void *ud)
{
    sky__blob_req *r = ud;
    return r->reader(out, cap, r->user_data);
}

static void req_on_headers(sky_http_request *h, int status, const sky_headers *hs, void *ud)
{
    sky__blob_req *r = ud;
    (void)h, (void)hs;
    r->status = status;
}

static int req_body(sky_http_request *h, const char *data, size_t len, void *ud)
{
    sky__blob_req *r = ud;
    (void)h;
    if (r->sink && r->status >= 200 && r->status < 300)
        return r->sink(r->user_data, data, len);
    return sky_buf_append(&r->resp, data, len) != 0;
}

void sky__blob_req_resume(sky__blob_req *r)
{
    if (r && r->http)
        sky_http_request_resume(r->http);
}

static int add_auth(sky__blob_req *r, const char *url, sky_headers *h, int refresh,
                    const char *bearer, sky_error *err)
{
    sky_blob_client *c = r->op->c;
    if (c->account_key)
        return sky_storage_authorize(c->account_name, c->account_key, r->method, url, h, err);
    if (c->o.token_cb == NULL && bearer == NULL)
        return 0;
    sky_buf tok;
    sky_buf_init(&tok, 64 * 1024);
    int rc = sky_buf_append_str(&tok, "Bearer ");
    if (rc == 0)
        rc = bearer ? sky_buf_append_str(&tok, bearer)
                    : c->o.token_cb(c->o.token_user_data, refresh, &tok);
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_buf_span(&tok));
    if (tok.data)
        OPENSSL_cleanse(tok.data, tok.len);
    sky_buf_free(&tok);
    return rc ? sky_error_set(err, SKY_EAUTH, "blob: the token source failed (%s)",
                              sky_err_name(rc))
              : 0;
}

static int req_headers(sky__blob_req *r, const char *url, int refresh, const char *bearer,
                       sky_headers *h, sky_error *err)
{
    char date[64], len[32];
    sky_storage_date_now(date, sizeof(date));
    int rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-date"), sky_span_cstr(date));
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-version"), SKY_SPAN_LIT(SKY_STORAGE_VERSION));
    if (rc == 0)
        rc = sky_headers_add_all(h, r->extra);
    if (rc == 0 && (strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0)) {
        snprintf(len, sizeof(len), "%zu", r->body_len);
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-Length"), sky_span_cstr(len));
    }
    if (rc != 0)
        return sky_error_set(err, rc, "blob: cannot build the request headers");
    return add_auth(r, url, h, refresh, bearer, err);
}

static void req_on_done(sky_http_request *h, const sky_http_response *res, const sky_error *err,
                        void *ud);

static int req_send(sky__blob_req *r, int refresh, const char *bearer, sky_error *err)
{
    sky_blob_client *c = r->op->c;
    sky_buf url;
    sky_buf_init(&url, 64 * 1024);
    int rc = sky_buf_append_str(&url, r->url);
    if (rc == 0 && c->sas)
        rc = sky_buf_printf(&url, "%s%s", strchr(r->url, '?') ? "&" : "?", c->sas);
    sky_headers *h = sky_headers_new();
    if (rc != 0 || h == NULL) {
        sky_buf_free(&url);
        sky_headers_free(h);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    rc = req_headers(r, url.data, refresh, bearer, h, err);
    if (rc == 0) {
        sky_http_request_options o;
        sky_http_request_options_init(&o);
        o.method = r->method;
        o.url = url.data;
        o.headers = h;
        if (r->body_len > 0) {
            r->body_off = 0;
            o.body_reader = r->reader ? req_stream : req_read;
            o.body_length = (int64_t)r->body_len;
        }
        o.timeout_ms = c->o.attempt_timeout_ms;
        if (r->large)
            o.recv_buffer_size = o.upload_buffer_size = LARGE_IO_BUFFER;
        o.on_headers = req_on_headers;
        o.on_body = req_body;
        o.on_done = req_on_done;
        o.user_data = r;
        sky_buf_reset(&r->resp);
        r->status = 0;
        if (r->on_attempt)
            r->on_attempt(r->user_data);
        rc = sky_http_request_send(c->http, &o, &r->http, err);
        if (rc == 0)
            r->op->stats.requests++;
        /* sky_log redacts the SAS signature (sig=) of the URL. */
        SKY_TRACE("blob", "%s %s", r->method, url.data);
    }
    if (url.data)
        OPENSSL_cleanse(url.data, url.len);
    sky_buf_free(&url);
    sky_headers_free(h);
    return rc;
}

static void req_fill_error(sky__blob_req *r, int status, const sky_headers *h, sky_error *e)
{
    char code[SKY_ERROR_SERVICE_CODE_MAX], msg[200];
    sky__blob_parse_error(sky_buf_span(&r->resp), code, sizeof(code), msg, sizeof(msg));
    const char *hcode = h ? sky_headers_get(h, "x-ms-error-code") : NULL;
    if (hcode && hcode[0])
        snprintf(code, sizeof(code), "%s", hcode);
    /* The path names what failed; the query (and never a SAS: r->url has none) is left out. */
    const char *path = strstr(r->url, "://");
    path = path ? path + 3 + strcspn(path + 3, "/") : r->url;
    sky_error_set(e, SKY_EHTTP, "%s %.*s: %s", r->method, (int)strcspn(path, "?"), path,
                  msg[0]    ? msg
                  : code[0] ? code
                            : "no error message");
    e->http_status = status;
    e->retryable = sky_retry_is_retryable(status, NULL);
    if (code[0])
        sky_error_set_service(e, code);
}

static void req_on_token(sky_token_request *tr, const sky_access_token *tok, const sky_error *err,
                         void *ud)
{
    sky__blob_req *r = ud;
    (void)tr;
    r->treq = NULL;
    sky_error e;
    sky_error_clear(&e);
    if (r->op->err.code != 0) {
        req_end(r, 0, NULL, &r->op->err);
    } else if (err != NULL) {
        e = *err;
        req_end(r, 0, NULL, &e);
    } else if (req_send(r, 0, tok->token, &e) != 0) {
        req_end(r, 0, NULL, &e);
    }
}

/* An attempt: with a credential, get its token first (from the cache when fresh). */
static int req_begin(sky__blob_req *r, int refresh, sky_error *err)
{
    sky_blob_client *c = r->op->c;
    if (c->o.credential == NULL || c->account_key)
        return req_send(r, refresh, NULL, err);
    sky_access_token t;
    if (!refresh && sky_credential_peek_token(c->o.credential, c->scope, &t))
        return req_send(r, 0, t.token, err);
    return refresh ? sky_credential_refresh_token(c->o.credential, c->scope, req_on_token, r,
                                                  &r->treq, err)
                   : sky_credential_get_token(c->o.credential, c->scope, req_on_token, r, &r->treq,
                                              err);
}

static void req_retry_timer(uv_timer_t *t);

/*
 * A failure to connect, resolve or shake hands with an endpoint that has never answered
 * says the URL, the host or the certificates are wrong: no wait mends that.
 */
static int never_reached(const sky_blob_client *c, const sky_error *terr)
{
    if (terr == NULL || c->answered > 0 || c->o.retry_unreached)
        return 0;
    return terr->code == SKY_ECONNECT || terr->code == SKY_ERESOLVE || terr->code == SKY_ETLS;
}

/* Decide after a failed attempt; nonzero when a retry was scheduled. */
static int req_maybe_retry(sky__blob_req *r, int status, const sky_headers *h,
                           const sky_error *terr)
{
    sky_blob_client *c = r->op->c;
    sky_retry_decision d;
    if (never_reached(c, terr)) {
        SKY_INFO("blob", "%s not retried: the endpoint has never answered (%s)", r->method,
                 sky_err_name(terr->code));
        return 0;
    }
    if (r->op->err.code != 0 ||
        sky_retry_decide(&c->o.retry, &r->rs, status, terr, h, c->o.clock, 0, NULL, NULL, &d) != 0)
        return 0;
    int refresh =
        d.action == SKY_RETRY_REFRESH_AUTH && (c->o.token_cb || c->o.credential) && !c->account_key;
    if (d.action != SKY_RETRY_YES && !refresh)
        return 0;
    SKY_INFO("blob", "%s retry after %s", r->method, d.reason);
    r->waiting = refresh ? 2 : 1;
    r->op->stats.retries++;
    uv_timer_start(&r->timer, req_retry_timer, d.delay_ms, 0);
    return 1;
}

static void req_on_done(sky_http_request *h, const sky_http_response *res, const sky_error *err,
                        void *ud)
{
    sky__blob_req *r = ud;
    (void)h;
    r->http = NULL;
    int status = res ? res->status : 0;
    const sky_headers *hs = res ? res->headers : NULL;
    if (status > 0)
        r->op->c->answered++;
    if (r->op->err.code != 0) {
        req_end(r, status, hs, &r->op->err);
        return;
    }
    if (err == NULL && ((status >= 200 && status < 300) || (status == 404 && r->not_found_ok))) {
        req_end(r, status, hs, NULL);
        return;
    }
    if (req_maybe_retry(r, status, hs, err))
        return;
    sky_error e;
    if (err) {
        e = *err;
    } else {
        sky_error_clear(&e);
        req_fill_error(r, status, hs, &e);
    }
    req_end(r, status, hs, &e);
}

static void req_retry_timer(uv_timer_t *t)
{
    sky__blob_req *r = t->data;
    int refresh = r->waiting == 2;
    r->waiting = 0;
    if (r->op->err.code != 0) {
        req_end(r, 0, NULL, &r->op->err);
        return;
    }
    sky_error e;
    sky_error_clear(&e);
    if (req_begin(r, refresh, &e) != 0)
        req_end(r, 0, NULL, &e);
}

/* Fire a waiting retry now, so a cancel is seen from the loop. */
static void req_wake(sky__blob_req *r)
{
    uv_timer_start(&r->timer, req_retry_timer, 0, 0);
}

int sky__blob_req_start(sky_blob_op *op, const sky__blob_req_options *o, sky__blob_req **out_req,
                        sky_error *err)
{
    sky__blob_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    r->op = op;
    r->method = strdup(o->method);
    r->url = strdup(o->url);
    r->extra = sky_headers_new();
    sky_buf_init(&r->resp, o->max_body ? o->max_body : 16u * 1024 * 1024);
    if (r->method == NULL || r->url == NULL || r->extra == NULL ||
        sky_headers_add_all(r->extra, o->headers) != 0) {
        free(r->method);
        free(r->url);
        sky_headers_free(r->extra);
        free(r);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    r->body = o->body;
    r->body_len = o->body_len;
    r->reader = o->reader;
    r->sink = o->sink;
    r->on_attempt = o->on_attempt;
    r->large = o->large;
    r->not_found_ok = o->not_found_ok;
    r->cb = o->cb;
    r->user_data = o->user_data;
    sky_retry_state_init(&r->rs);
    uv_timer_init(op->c->loop, &r->timer);
    r->timer.data = r;
    op->refs++;
    r->next = op->reqs;
    if (op->reqs)
        op->reqs->prev = r;
    op->reqs = r;
    int rc = req_begin(r, 0, err);
    if (rc != 0) {
        /* The callback must not run: unlink quietly and close. */
        op->reqs = r->next;
        if (r->next)
            r->next->prev = NULL;
        r->ended = 1;
        uv_close((uv_handle_t *)&r->timer, req_closed);
    } else if (out_req) {
        *out_req = r;
    }
    return rc;
}
