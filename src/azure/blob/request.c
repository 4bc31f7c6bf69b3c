/*
 * One Blob request, as a call of the client's pipeline: its URL with the SAS, Storage's
 * headers, a body from memory or a reader, a reply held or streamed to a sink, and a
 * failure in Storage's words. The pipeline retries it, paces it and signs each attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

/* curl's buffers for blocks and ranges; small requests keep the client's small ones,
 * since a buffer this size is an mmap of its own for every request. */
#define LARGE_IO_BUFFER (128 * 1024)
/* A held reply (a listing, a block list) is at most this, unless the request says. */
#define DEFAULT_MAX_BODY (16u * 1024 * 1024)

struct sky__blob_req {
    sky_blob_op *op;
    sky__blob_req *prev, *next; /* in op->reqs */
    char *method;               /* for a failure's words */
    char *url;                  /* without the SAS */
    const char *body;
    size_t body_len, body_off;
    sky_http_read_cb reader;
    int (*sink)(void *user_data, const char *data, size_t len);
    void (*on_attempt)(void *user_data);
    int not_found_ok;
    sky_call *call; /* until its callback */
    sky__blob_req_cb cb;
    void *user_data;
};

static void req_free(sky__blob_req *r)
{
    free(r->method);
    free(r->url);
    free(r);
}

static void req_link(sky_blob_op *op, sky__blob_req *r)
{
    op->refs++;
    r->next = op->reqs;
    if (op->reqs)
        op->reqs->prev = r;
    op->reqs = r;
}

static void req_unlink(sky__blob_req *r)
{
    sky_blob_op *op = r->op;
    if (r->prev)
        r->prev->next = r->next;
    else
        op->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

/* ---- the body out, the reply in ---- */

static long req_read(sky_call *call, char *out, size_t cap, void *ud)
{
    sky__blob_req *r = ud;
    (void)call;
    if (r->reader)
        return r->reader(out, cap, r->user_data);
    size_t n = r->body_len - r->body_off;
    if (n > cap)
        n = cap;
    memcpy(out, r->body + r->body_off, n);
    r->body_off += n;
    return (long)n;
}

/* Another attempt: the body from its first byte, and a reader or sink starts over. */
static int req_again(sky_call *call, void *ud)
{
    sky__blob_req *r = ud;
    (void)call;
    r->body_off = 0;
    if (r->on_attempt)
        r->on_attempt(r->user_data);
    return 0;
}

static int req_sink(sky_call *call, const char *data, size_t len, void *ud)
{
    sky__blob_req *r = ud;
    (void)call;
    return r->sink(r->user_data, data, len);
}

/* ---- the end ---- */

/* What the request ends with: the op's first error, else the call's in Storage's words. */
static const sky_error *req_outcome(const sky__blob_req *r, const sky_call_result *res,
                                    const sky_error *err, sky_error *out)
{
    if (r->op->err.code != 0)
        return &r->op->err;
    if (err == NULL || err->code != SKY_EHTTP || res->status <= 0)
        return err;
    if (res->status == 404 && r->not_found_ok)
        return NULL;
    sky__blob_describe_error(r->method, r->url, res->status, res->headers, res->body, out);
    out->retryable = err->retryable;
    return out;
}

static void req_done(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    sky__blob_req *r = ud;
    sky_blob_op *op = r->op;
    sky_error e;
    (void)call;
    r->call = NULL;
    op->stats.requests += (uint32_t)res->attempts;
    if (res->attempts > 1)
        op->stats.retries += (uint32_t)(res->attempts - 1);
    sky_error_clear(&e);
    err = req_outcome(r, res, err, &e);
    req_unlink(r);
    r->cb(r, res->status, res->headers, res->body, err, r->user_data);
    req_free(r);
    sky__blob_op_unref(op);
}

/* ---- the start ---- */

/* Storage's headers of every attempt; x-ms-date is the signer's, fresh for each one. */
static int req_headers(const sky__blob_req_options *o, sky_headers *h)
{
    char len[32];
    int rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-version"), SKY_SPAN_LIT(SKY_STORAGE_VERSION));
    if (rc == 0)
        rc = sky_headers_add_all(h, o->headers);
    if (rc == 0 && (strcmp(o->method, "PUT") == 0 || strcmp(o->method, "POST") == 0)) {
        snprintf(len, sizeof(len), "%zu", o->body_len);
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-Length"), sky_span_cstr(len));
    }
    return rc;
}

/* The URL as sent: with the SAS, a secret, wiped by the caller. */
static int sent_url(const sky_blob_client *c, const char *url, sky_buf *out)
{
    int rc = sky_buf_append_str(out, url);
    if (rc == 0 && c->s.sas)
        rc = sky_buf_printf(out, "%s%s", strchr(url, '?') ? "&" : "?", c->s.sas);
    return rc;
}

static void call_options(sky__blob_req *r, const sky__blob_req_options *o, const char *url,
                         const sky_headers *h, sky_call_options *co)
{
    sky_call_options_init(co);
    co->method = o->method;
    co->url = url;
    co->headers = h;
    if (o->body_len > 0) {
        co->body_reader = req_read;
        co->body_length = (int64_t)o->body_len;
        co->body_rewind = req_again;
    }
    if (o->sink) {
        /* ranges land at fixed offsets: one cut short is fetched again whole */
        co->on_body = req_sink;
        co->body_restart = req_again;
    } else {
        co->max_response_bytes = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
    }
    if (o->large)
        co->recv_buffer_size = co->upload_buffer_size = LARGE_IO_BUFFER;
    co->on_done = req_done;
    co->user_data = r;
}

static sky__blob_req *req_new(sky_blob_op *op, const sky__blob_req_options *o)
{
    sky__blob_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->op = op;
    r->method = strdup(o->method);
    r->url = strdup(o->url);
    if (r->method == NULL || r->url == NULL) {
        req_free(r);
        return NULL;
    }
    r->body = o->body;
    r->body_len = o->body_len;
    r->reader = o->reader;
    r->sink = o->sink;
    r->on_attempt = o->on_attempt;
    r->not_found_ok = o->not_found_ok;
    r->cb = o->cb;
    r->user_data = o->user_data;
    return r;
}

int sky__blob_req_start(sky_blob_op *op, const sky__blob_req_options *o, sky__blob_req **out_req,
                        sky_error *err)
{
    sky_call_options co;
    sky_buf url;
    sky__blob_req *r = req_new(op, o);
    sky_headers *h = sky_headers_new();
    sky_buf_init(&url, 64 * 1024);
    int rc = r && h ? req_headers(o, h) : SKY_ENOMEM;
    if (rc == 0)
        rc = sent_url(op->c, o->url, &url);
    if (rc != 0) {
        sky_error_set(err, SKY_ENOMEM, "out of memory");
    } else {
        call_options(r, o, url.data, h, &co);
        rc = sky_call_start(op->c->pipe, &co, &r->call, err); /* copies the URL and headers */
    }
    if (url.data)
        OPENSSL_cleanse(url.data, url.len);
    sky_buf_free(&url);
    sky_headers_free(h);
    if (rc != 0) {
        if (r)
            req_free(r);
        return rc; /* the callback never runs */
    }
    req_link(op, r);
    if (out_req)
        *out_req = r;
    if (r->on_attempt)
        r->on_attempt(r->user_data); /* the call is admitted from the loop, after this */
    return 0;
}

void sky__blob_req_resume(sky__blob_req *r)
{
    if (r && r->call)
        sky_call_resume(r->call);
}

void sky__blob_req_cancel_all(sky_blob_op *op)
{
    for (sky__blob_req *r = op->reqs; r; r = r->next)
        if (r->call)
            sky_call_cancel(r->call);
}
