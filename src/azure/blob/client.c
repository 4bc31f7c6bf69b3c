/* The Blob client: options, its pipeline and auth per attempt, operations' lifetime, URLs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"
#include "../op_list.h"
#include "skyio/log.h"

#define DEFAULT_BLOCK (4u * 1024 * 1024)
#define MAX_BLOCK ((size_t)4000 * 1024 * 1024)

void sky_blob_client_options_init(sky_blob_client_options *o)
{
    memset(o, 0, sizeof(*o));
    sky_retry_options_init(&o->retry);
    o->attempt_timeout_ms = 300000;
    o->block_size = DEFAULT_BLOCK;
    o->concurrency = 4;
    sky_blob_pipeline_options_init(&o->pipeline);
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

static void client_release(sky_blob_client *c)
{
    sky_pipeline_free(c->pipe); /* no call is left: every op has reported and gone */
    sky__storage_conn_release(&c->s);
    free(c);
}

static sky__storage_auth auth_of(const sky_blob_client_options *o)
{
    sky__storage_auth a = {o->endpoint, o->account_name, o->account_key, o->sas, o->scope};
    return a;
}

static int check_options(const sky_blob_client_options *o, sky_error *err)
{
    if (o == NULL)
        return sky_error_set(err, SKY_EINVAL, "blob: an http(s) endpoint is required");
    sky__storage_auth a = auth_of(o);
    if (sky__storage_auth_check("blob", &a, err) != 0)
        return SKY_EINVAL;
    if (o->block_size > MAX_BLOCK || o->concurrency < 0)
        return sky_error_set(err, SKY_EINVAL, "blob: block size at most 4000 MiB");
    return 0;
}

/* ---- auth per attempt, through the pipeline ---- */

/* Bearer auth from the caller's token source; a 401 asks it for a fresh token. */
static int token_auth(void *ud, sky_headers *h, int refresh)
{
    sky_blob_client *c = ud;
    sky_buf tok;
    sky_buf_init(&tok, 64 * 1024);
    int rc = sky_buf_append_str(&tok, "Bearer ");
    if (rc == 0)
        rc = c->o.token_cb(c->o.token_user_data, refresh, &tok);
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_buf_span(&tok));
    if (rc != 0)
        SKY_WARN("blob", "the token source failed (%s)", sky_err_name(rc));
    if (tok.data)
        OPENSSL_cleanse(tok.data, tok.len);
    sky_buf_free(&tok);
    return rc;
}

/*
 * The client's pipeline: the caller's policies, with the retries, timeout and clock of
 * the client's options, and the client's auth. A key signs each attempt (Shared Key);
 * without one, a credential or a token source gives a bearer token, refreshed after a 401.
 */
static int client_pipeline(sky_blob_client *c)
{
    sky__storage_pipe_options spo = {c->o.pipeline, c->o.retry,           c->o.attempt_timeout_ms,
                                     c->o.clock,    c->o.retry_unreached, c->o.credential};
    sky_pipeline_options po;
    sky__storage_pipeline_options(&po, &spo, &c->s);
    if (c->s.account_key == NULL && po.credential == NULL && c->o.token_cb) {
        po.auth = token_auth;
        po.auth_user_data = c;
        po.auth_refreshes = 1;
    }
    return sky_pipeline_new(c->loop, c->http, &po, &c->pipe);
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
    sky__storage_auth a = auth_of(o);
    if (sky__storage_conn_copy(&c->s, "blob", &a) != 0) {
        client_release(c);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    if (c->o.block_size == 0)
        c->o.block_size = DEFAULT_BLOCK;
    if (c->o.single_put_max == 0)
        c->o.single_put_max = c->o.block_size;
    if (c->o.concurrency <= 0)
        c->o.concurrency = 4;
    rc = client_pipeline(c);
    if (rc != 0) {
        client_release(c);
        return sky_error_set(err, rc, "blob: cannot make the client's pipeline (%s)",
                             sky_err_name(rc));
    }
    *out = c;
    return 0;
}

uint64_t sky_blob_client_answered(const sky_blob_client *c)
{
    sky_pipeline_health h;
    if (c == NULL)
        return 0;
    sky_pipeline_get_health(c->pipe, &h);
    return h.answered;
}

sky_pipeline *sky_blob_client_pipeline(sky_blob_client *c)
{
    return c ? c->pipe : NULL;
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
    SKY__OP_LIST_PUSH(c->ops, op);
    c->nops++;
    return op;
}

void sky__blob_op_unref(sky_blob_op *op)
{
    if (--op->refs > 0)
        return;
    sky_blob_client *c = op->c;
    SKY__OP_LIST_REMOVE(c->ops, op);
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

void sky__blob_op_fail(sky_blob_op *op, const sky_error *err)
{
    if (op->err.code == 0 && err)
        op->err = *err;
    sky__blob_req_cancel_all(op);
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
    int rc = sky_buf_append_str(out, c->s.endpoint);
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
