/*
 * Queue operations: each is one call of the client's pipeline, its URL with the SAS, its
 * reply read by kind (a listing, messages, a new pop receipt, the queue's properties) and a
 * failure in Storage's words with what to do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "internal.h"
#include "../op_list.h"

/* A listing or 32 messages of 64 KiB each fit with room to spare. */
#define MAX_REPLY (8u * 1024 * 1024)

static void op_free(sky_queue_op *op)
{
    free(op->what);
    free(op->id);
    free(op);
}

static void op_unlink(sky_queue_op *op)
{
    sky_queue_client *c = op->c;
    if (c == NULL)
        return;
    SKY__OP_LIST_REMOVE(c->ops, op);
}

void sky_queue_op_cancel(sky_queue_op *op)
{
    if (op && op->call)
        sky_call_cancel(op->call);
}

/* ---- a failure's words ---- */

/* What to do about the Storage codes a user can mend. */
static const char *hint_of(const char *code)
{
    if (strcmp(code, "PopReceiptMismatch") == 0 || strcmp(code, "MessageNotFound") == 0)
        return " (stale pop receipt: get the message again and use its new receipt)";
    if (strcmp(code, "QueueNotFound") == 0)
        return " (make it first: skyio queue mk NAME)";
    if (strcmp(code, "QueueBeingDeleted") == 0)
        return " (a deleted queue's name is free again after about 30 s)";
    return "";
}

static void describe(const sky_queue_op *op, const sky_error *err, sky_error *out)
{
    const char *msg = err->message;
    const char *colon = strncmp(msg, "HTTP ", 5) == 0 ? strstr(msg, ": ") : NULL;
    if (colon) /* the classifier's "HTTP n: ", which the code says already */
        msg = colon + 2;
    sky_error_set(out, err->code, "%s: %s%s", op->what, msg, hint_of(err->service_code));
    out->http_status = err->http_status;
    out->curl_code = err->curl_code;
    out->retryable = err->retryable;
    if (err->service_code[0])
        sky_error_set_service(out, err->service_code);
}

/* ---- reading a reply ---- */

/* x-ms-meta-* of @p h without the prefix, into a new map. */
static sky_headers *metadata_of(const sky_headers *h)
{
    sky_headers *m = sky_headers_new();
    const char *name, *value;
    for (size_t i = 0; m && h && sky_headers_at(h, i, &name, &value) == 0; i++)
        if (strncasecmp(name, "x-ms-meta-", 10) == 0 && name[10] &&
            sky_headers_add(m, sky_span_cstr(name + 10), sky_span_cstr(value)) != 0) {
            sky_headers_free(m);
            return NULL;
        }
    return m;
}

typedef struct reading {
    sky__queue_parsed parsed;
    sky_queue_message one;
    sky_headers *meta;
} reading;

static int read_headers(sky_queue_op *op, const sky_call_result *res, sky_queue_reply *rep,
                        reading *rd)
{
    if (op->kind == SKY__QUEUE_UPDATE) {
        rd->one.id = op->id;
        rd->one.pop_receipt = sky_headers_get(res->headers, "x-ms-popreceipt");
        rd->one.next_visible = sky_headers_get(res->headers, "x-ms-time-next-visible");
        rd->one.dequeue_count = -1;
        rep->messages = &rd->one;
        rep->count = 1;
        return 0;
    }
    int64_t n = -1;
    if (sky_headers_get_int64(res->headers, "x-ms-approximate-messages-count", &n) != 0)
        n = -1;
    rep->approximate_count = n;
    rd->meta = metadata_of(res->headers);
    rep->metadata = rd->meta;
    return rd->meta ? 0 : SKY_ENOMEM;
}

static int read_reply(sky_queue_op *op, const sky_call_result *res, sky_queue_reply *rep,
                      reading *rd)
{
    if (op->kind == SKY__QUEUE_PLAIN)
        return 0;
    if (op->kind == SKY__QUEUE_UPDATE || op->kind == SKY__QUEUE_PROPS)
        return read_headers(op, res, rep, rd);
    int rc = sky__queue_parse(res->body, &rd->parsed);
    if (rc == 0 && op->kind == SKY__QUEUE_MESSAGES)
        rc = sky__queue_decode_texts(&rd->parsed, op->c->o.raw);
    rep->messages = rd->parsed.messages;
    rep->count = rd->parsed.count;
    rep->queues = (const char *const *)rd->parsed.queues;
    rep->nqueues = rd->parsed.nqueues;
    rep->next_marker = rd->parsed.next_marker;
    return rc;
}

static void on_call_done(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    sky_queue_op *op = ud;
    (void)call;
    op->call = NULL;
    if (op->c == NULL) { /* reported when the client was freed */
        op_free(op);
        return;
    }
    sky_queue_reply rep;
    reading rd;
    sky_error e;
    memset(&rep, 0, sizeof(rep));
    memset(&rd, 0, sizeof(rd));
    sky_error_clear(&e);
    rep.status = res->status;
    rep.headers = res->headers;
    rep.approximate_count = -1;
    if (err)
        describe(op, err, &e);
    else if (read_reply(op, res, &rep, &rd) != 0)
        sky_error_set(&e, SKY_EPROTO, "%s: the reply could not be read", op->what);
    op_unlink(op);
    op->cb(op, &rep, e.code ? &e : NULL, op->user_data);
    sky__queue_parsed_free(&rd.parsed);
    sky_headers_free(rd.meta);
    op_free(op);
}

/* ---- starting one ---- */

static int build_url(const sky_queue_client *c, const sky__queue_req *q, sky_buf *url)
{
    int rc = sky_buf_printf(url, "%s/%s%s", c->s.endpoint, q->queue ? q->queue : "",
                            q->path_rest ? q->path_rest : "");
    if (rc == 0 && q->query && q->query[0])
        rc = sky_buf_printf(url, "?%s", q->query);
    if (rc == 0 && c->s.sas)
        rc = sky_buf_printf(url, "%s%s", q->query && q->query[0] ? "&" : "?", c->s.sas);
    return rc;
}

static int req_headers(const sky__queue_req *q, sky_headers *h)
{
    char len[32];
    int rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-version"), SKY_SPAN_LIT(SKY_STORAGE_VERSION));
    if (rc == 0)
        rc = sky_headers_add_all(h, q->headers);
    if (rc == 0 && (strcmp(q->method, "PUT") == 0 || strcmp(q->method, "POST") == 0)) {
        snprintf(len, sizeof(len), "%zu", q->body.len);
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-Length"), sky_span_cstr(len));
    }
    if (rc == 0 && q->body.len)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-Type"),
                             SKY_SPAN_LIT("application/xml; charset=utf-8"));
    return rc;
}

static sky_queue_op *op_new(sky_queue_client *c, const sky__queue_req *q, sky_queue_done_cb cb,
                            void *user_data)
{
    sky_queue_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    size_t n = strlen(q->method) + (q->queue ? strlen(q->queue) : 0) +
               (q->path_rest ? strlen(q->path_rest) : 0) + 8;
    op->what = malloc(n);
    op->id = q->id ? strdup(q->id) : NULL;
    if (op->what == NULL || (q->id && op->id == NULL)) {
        op_free(op);
        return NULL;
    }
    /* A message path names the message by its id (not a secret); a receipt is in the query. */
    snprintf(op->what, n, "%s /%s%s", q->method, q->queue ? q->queue : "",
             q->path_rest ? q->path_rest : "");
    op->c = c;
    op->kind = q->kind;
    op->cb = cb;
    op->user_data = user_data;
    return op;
}

static void op_link(sky_queue_client *c, sky_queue_op *op)
{
    SKY__OP_LIST_PUSH(c->ops, op);
}

int sky__queue_start(sky_queue_client *c, const sky__queue_req *q, sky_queue_done_cb cb,
                     void *user_data, sky_queue_op **out_op, sky_error *err)
{
    if (c == NULL || cb == NULL)
        return sky_error_set(err, SKY_EINVAL, "queue: a client and a callback are required");
    sky_buf url;
    sky_buf_init(&url, 64 * 1024);
    sky_headers *h = sky_headers_new();
    sky_queue_op *op = op_new(c, q, cb, user_data);
    int rc = h && op ? req_headers(q, h) : SKY_ENOMEM;
    if (rc == 0)
        rc = build_url(c, q, &url);
    if (rc != 0) {
        sky_error_set(err, SKY_ENOMEM, "out of memory");
    } else {
        sky_call_options co;
        sky_call_options_init(&co);
        co.method = q->method;
        co.url = url.data;
        co.headers = h;
        co.body = q->body;
        co.max_response_bytes = MAX_REPLY;
        co.on_done = on_call_done;
        co.user_data = op;
        rc = sky_call_start(c->pipe, &co, &op->call, err); /* copies URL, headers, body */
    }
    if (url.data)
        OPENSSL_cleanse(url.data, url.len); /* the SAS */
    sky_buf_free(&url);
    sky_headers_free(h);
    if (rc != 0) {
        if (op)
            op_free(op);
        return rc;
    }
    op_link(c, op);
    if (out_op)
        *out_op = op;
    return 0;
}
