/* Blob operations of one request each: containers, listings, put, get, delete, properties. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

typedef enum simple_kind { K_PLAIN, K_EXISTS, K_LIST, K_GET, K_PROPS } simple_kind;

typedef struct simple_state {
    simple_kind kind;
    char *body; /* a PUT body we own */
    size_t body_len;
    /* A large put waits for its hash in the thread pool: the request to send after it. */
    char *url;
    sky_headers *headers;
    sky_blob_op *op; /* for the work's callback */
    char md5[32];
    uv_work_t work;
} simple_state;

/* Above this a put's MD5 is computed in the thread pool, not on the loop (rule 1). */
#define PUT_INLINE_MD5_MAX (64u * 1024)

static void simple_free(void *p)
{
    simple_state *s = p;
    if (s) {
        free(s->body);
        free(s->url);
        sky_headers_free(s->headers);
        free(s);
    }
}

static int name_ok(const char *s, const char *what, sky_error *err)
{
    if (s == NULL || s[0] == '\0')
        return sky_error_set(err, SKY_EINVAL, "blob: %s name is required", what);
    return strcmp(what, "blob") == 0 ? sky_blob_name_check(s, err) : 0;
}

static void reply_list(sky_blob_op *op, int status, const sky_headers *h, sky_span body)
{
    sky__blob_list l;
    sky_error e;
    sky_error_clear(&e);
    int rc = sky__blob_parse_list(body, &l);
    if (rc != 0) {
        sky_error_set(&e, rc, "blob: listing reply is not valid XML (%s)", sky_err_name(rc));
        sky__blob_op_report(op, NULL, &e);
        return;
    }
    sky_blob_list_page page = {l.items, l.count, l.next_marker};
    sky_blob_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.status = status;
    rep.headers = h;
    rep.list = &page;
    sky__blob_op_report(op, &rep, NULL);
    sky__blob_list_free(&l);
}

static int add_meta_from(sky_headers *meta, const sky_headers *h)
{
    for (size_t i = 0; h && i < sky_headers_count(h); i++) {
        const char *n, *v;
        (void)sky_headers_at(h, i, &n, &v);
        if (strncasecmp(n, "x-ms-meta-", 10) == 0 &&
            sky_headers_add(meta, sky_span_cstr(n + 10), sky_span_cstr(v)) != 0)
            return SKY_ENOMEM;
    }
    return 0;
}

static void reply_props(sky_blob_op *op, int status, const sky_headers *h)
{
    sky_blob_properties p;
    memset(&p, 0, sizeof(p));
    sky_headers *meta = sky_headers_new();
    if (meta == NULL || add_meta_from(meta, h) != 0) {
        sky_error e;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        sky_headers_free(meta);
        sky__blob_op_report(op, NULL, &e);
        return;
    }
    if (sky_headers_get_int64(h, "Content-Length", &p.size) != 0)
        p.size = -1;
    p.etag = sky_headers_get(h, "ETag");
    p.content_md5 = sky_headers_get(h, "Content-MD5");
    p.content_type = sky_headers_get(h, "Content-Type");
    p.last_modified = sky_headers_get(h, "Last-Modified");
    p.metadata = meta;
    sky_blob_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.status = status;
    rep.headers = h;
    rep.props = &p;
    sky__blob_op_report(op, &rep, NULL);
    sky_headers_free(meta);
}

static void simple_done(sky__blob_req *r, int status, const sky_headers *h, sky_span body,
                        const sky_error *err, void *ud)
{
    sky_blob_op *op = ud;
    simple_state *s = op->state;
    (void)r;
    if (err) {
        sky__blob_op_report(op, NULL, err);
        return;
    }
    if (s->kind == K_LIST) {
        reply_list(op, status, h, body);
        return;
    }
    if (s->kind == K_PROPS) {
        reply_props(op, status, h);
        return;
    }
    sky_blob_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.status = status;
    rep.headers = h;
    rep.exists = status >= 200 && status < 300;
    if (s->kind == K_GET)
        rep.body = body;
    sky__blob_op_report(op, &rep, NULL);
}

/* Make an op of @p kind owning @p body_owned (freed on failure too); NULL on out of memory. */
static sky_blob_op *simple_op_new(sky_blob_client *c, simple_kind kind, char *body_owned,
                                  size_t body_len, sky_blob_done_cb cb, void *ud)
{
    sky_blob_op *op = NULL;
    simple_state *s = calloc(1, sizeof(*s));
    if (s)
        op = sky__blob_op_new(c, cb, ud);
    if (op == NULL) {
        free(s);
        free(body_owned);
        return NULL;
    }
    s->kind = kind;
    s->body = body_owned;
    s->body_len = body_len;
    op->state = s;
    op->state_free = simple_free;
    return op;
}

/* Start the op's one request; the op keeps the body, url and headers are copied. */
static int simple_send(sky_blob_op *op, const char *method, const char *url, const sky_headers *h,
                       sky_error *err)
{
    simple_state *s = op->state;
    sky__blob_req_options o;
    memset(&o, 0, sizeof(o));
    o.method = method;
    o.url = url;
    o.headers = h;
    o.body = s->body;
    o.body_len = s->body_len;
    o.not_found_ok = s->kind == K_EXISTS;
    o.max_body = s->kind == K_GET ? 64u * 1024 * 1024 : 0;
    o.cb = simple_done;
    o.user_data = op;
    return sky__blob_req_start(op, &o, NULL, err);
}

/* Make the op and start its one request; the op owns @p body_owned (freed on failure too). */
static int simple_start(sky_blob_client *c, simple_kind kind, const char *method, sky_buf *url,
                        const sky_headers *h, char *body_owned, size_t body_len,
                        sky_blob_done_cb cb, void *ud, sky_blob_op **out_op, sky_error *err)
{
    sky_blob_op *op = simple_op_new(c, kind, body_owned, body_len, cb, ud);
    if (op == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = simple_send(op, method, url->data, h, err);
    if (rc != 0) {
        op->reported = 1; /* the callback must never run */
        sky__blob_op_unref(op);
        return rc;
    }
    if (out_op)
        *out_op = op;
    return 0;
}

static int start_on(sky_blob_client *c, simple_kind kind, const char *method, const char *container,
                    const char *blob, const char *query, sky_blob_done_cb cb, void *ud,
                    sky_blob_op **out_op, sky_error *err)
{
    if (c == NULL || cb == NULL || c->freeing)
        return sky_error_set(err, c && c->freeing ? SKY_ESTATE : SKY_EINVAL,
                             "blob: a live client and a callback are required");
    sky_buf url;
    sky_buf_init(&url, 64 * 1024);
    int rc = sky__blob_url(c, container, blob, query, &url);
    if (rc == 0)
        rc = simple_start(c, kind, method, &url, NULL, NULL, 0, cb, ud, out_op, err);
    else
        sky_error_set(err, rc, "blob: URL too long");
    sky_buf_free(&url);
    return rc;
}

int sky_blob_container_create(sky_blob_client *c, const char *container, sky_blob_done_cb cb,
                              void *ud, sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    return rc ? rc
              : start_on(c, K_PLAIN, "PUT", container, NULL, "restype=container", cb, ud, out_op,
                         err);
}

int sky_blob_container_delete(sky_blob_client *c, const char *container, sky_blob_done_cb cb,
                              void *ud, sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    return rc ? rc
              : start_on(c, K_PLAIN, "DELETE", container, NULL, "restype=container", cb, ud, out_op,
                         err);
}

int sky_blob_container_exists(sky_blob_client *c, const char *container, sky_blob_done_cb cb,
                              void *ud, sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    return rc ? rc
              : start_on(c, K_EXISTS, "GET", container, NULL, "restype=container", cb, ud, out_op,
                         err);
}

static int list_query(const char *base, const sky_blob_list_options *lo, sky_buf *q)
{
    int rc = sky_buf_append_str(q, base);
    const char *names[] = {"prefix", "delimiter", "marker"};
    const char *vals[] = {lo ? lo->prefix : NULL, lo ? lo->delimiter : NULL,
                          lo ? lo->marker : NULL};
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        if (vals[i] == NULL || vals[i][0] == '\0')
            continue;
        rc = sky_buf_printf(q, "&%s=", names[i]);
        if (rc == 0)
            rc = sky_storage_url_encode(sky_span_cstr(vals[i]), 0, q);
    }
    if (rc == 0 && lo && lo->max_results > 0)
        rc = sky_buf_printf(q, "&maxresults=%d", lo->max_results);
    return rc;
}

int sky_blob_container_list(sky_blob_client *c, const sky_blob_list_options *lo,
                            sky_blob_done_cb cb, void *ud, sky_blob_op **out_op, sky_error *err)
{
    sky_buf q;
    sky_buf_init(&q, 64 * 1024);
    int rc = list_query("comp=list", lo, &q);
    rc = rc ? sky_error_set(err, rc, "blob: listing query too long")
            : start_on(c, K_LIST, "GET", NULL, NULL, q.data, cb, ud, out_op, err);
    sky_buf_free(&q);
    return rc;
}

int sky_blob_list(sky_blob_client *c, const char *container, const sky_blob_list_options *lo,
                  sky_blob_done_cb cb, void *ud, sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    if (rc != 0)
        return rc;
    sky_buf q;
    sky_buf_init(&q, 64 * 1024);
    rc = list_query("restype=container&comp=list", lo, &q);
    rc = rc ? sky_error_set(err, rc, "blob: listing query too long")
            : start_on(c, K_LIST, "GET", container, NULL, q.data, cb, ud, out_op, err);
    sky_buf_free(&q);
    return rc;
}

int sky_blob_get(sky_blob_client *c, const char *container, const char *blob, sky_blob_done_cb cb,
                 void *ud, sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    rc = rc ? rc : name_ok(blob, "blob", err);
    return rc ? rc : start_on(c, K_GET, "GET", container, blob, NULL, cb, ud, out_op, err);
}

int sky_blob_delete(sky_blob_client *c, const char *container, const char *blob,
                    sky_blob_done_cb cb, void *ud, sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    rc = rc ? rc : name_ok(blob, "blob", err);
    return rc ? rc : start_on(c, K_PLAIN, "DELETE", container, blob, NULL, cb, ud, out_op, err);
}

int sky_blob_properties_get(sky_blob_client *c, const char *container, const char *blob,
                            sky_blob_done_cb cb, void *ud, sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    rc = rc ? rc : name_ok(blob, "blob", err);
    return rc ? rc : start_on(c, K_PROPS, "HEAD", container, blob, NULL, cb, ud, out_op, err);
}

static int add_meta_to(sky_headers *h, const sky_headers *meta)
{
    char name[256];
    for (size_t i = 0; meta && i < sky_headers_count(meta); i++) {
        const char *n, *v;
        (void)sky_headers_at(meta, i, &n, &v);
        if ((size_t)snprintf(name, sizeof(name), "x-ms-meta-%s", n) >= sizeof(name))
            return SKY_EINVAL;
        int rc = sky_headers_add(h, sky_span_cstr(name), sky_span_cstr(v));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int put_headers(sky_headers *h, const char *ctype, const sky_headers *meta)
{
    int rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-blob-type"), SKY_SPAN_LIT("BlockBlob"));
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-Type"),
                             sky_span_cstr(ctype ? ctype : "application/octet-stream"));
    if (rc == 0)
        rc = add_meta_to(h, meta);
    return rc;
}

static void put_md5_work(uv_work_t *w)
{
    simple_state *s = w->data;
    sky__blob_md5_mem(s->body, s->body_len, s->md5);
}

/* Back on the loop: send the put, or report the cancel that came while hashing. */
static void put_md5_after(uv_work_t *w, int status)
{
    sky_blob_op *op = ((simple_state *)w->data)->op;
    simple_state *s = op->state;
    sky_error e;
    sky_error_clear(&e);
    if (op->err.code != 0) {
        sky__blob_op_report(op, NULL, &op->err);
    } else if (status != 0) {
        sky_error_set(&e, SKY_EINTERNAL, "blob put: the hash did not run");
        sky__blob_op_report(op, NULL, &e);
    } else if (sky_headers_add(s->headers, SKY_SPAN_LIT("Content-MD5"), sky_span_cstr(s->md5)) !=
                   0 ||
               simple_send(op, "PUT", s->url, s->headers, &e) != 0) {
        if (e.code == 0)
            sky_error_set(&e, SKY_ENOMEM, "out of memory");
        sky__blob_op_report(op, NULL, &e);
    }
    sky__blob_op_unref(op);
}

/* A large put: the op waits for the hash in the thread pool, then sends. Takes @p h. */
static int put_after_hash(sky_blob_op *op, sky_buf *url, sky_headers *h, sky_error *err)
{
    simple_state *s = op->state;
    s->headers = h;
    s->url = strdup(url->data);
    s->op = op;
    s->work.data = s;
    op->refs++;
    if (s->url == NULL || uv_queue_work(op->c->loop, &s->work, put_md5_work, put_md5_after) != 0) {
        op->refs--;
        op->reported = 1; /* the callback must never run */
        sky__blob_op_unref(op);
        return sky_error_set(err, SKY_ENOMEM, "blob put: cannot queue the hash");
    }
    return 0;
}

int sky_blob_put(sky_blob_client *c, const char *container, const char *blob, sky_span data,
                 const char *content_type, const sky_headers *metadata, sky_blob_done_cb cb,
                 void *ud, sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    rc = rc ? rc : name_ok(blob, "blob", err);
    if (rc != 0)
        return rc;
    if (c == NULL || cb == NULL || c->freeing)
        return sky_error_set(err, SKY_EINVAL, "blob: a live client and a callback are required");
    sky_buf url;
    sky_buf_init(&url, 64 * 1024);
    sky_headers *h = sky_headers_new();
    char *copy = malloc(data.len ? data.len : 1);
    rc = h && copy ? sky__blob_url(c, container, blob, NULL, &url) : SKY_ENOMEM;
    if (rc == 0)
        rc = put_headers(h, content_type, metadata);
    if (rc == 0 && data.len > PUT_INLINE_MD5_MAX) {
        memcpy(copy, data.ptr, data.len);
        sky_blob_op *op = simple_op_new(c, K_PLAIN, copy, data.len, cb, ud);
        copy = NULL; /* the op owns it, or freed it */
        if (op == NULL) {
            rc = sky_error_set(err, SKY_ENOMEM, "out of memory");
        } else {
            rc = put_after_hash(op, &url, h, err);
            h = NULL; /* the op took it, or freed it with itself */
        }
        if (rc == 0 && out_op)
            *out_op = op;
    } else if (rc == 0) {
        char md5[32];
        sky__blob_md5_mem(data.ptr, data.len, md5);
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-MD5"), sky_span_cstr(md5));
        if (rc == 0 && data.len)
            memcpy(copy, data.ptr, data.len);
        if (rc == 0) {
            rc = simple_start(c, K_PLAIN, "PUT", &url, h, copy, data.len, cb, ud, out_op, err);
            copy = NULL;
        } else {
            sky_error_set(err, rc, "blob: cannot build the request");
        }
    } else {
        sky_error_set(err, rc, "blob: cannot build the request");
    }
    free(copy);
    sky_headers_free(h);
    sky_buf_free(&url);
    return rc;
}

int sky_blob_metadata_set(sky_blob_client *c, const char *container, const char *blob,
                          const sky_headers *metadata, sky_blob_done_cb cb, void *ud,
                          sky_blob_op **out_op, sky_error *err)
{
    int rc = name_ok(container, "container", err);
    rc = rc ? rc : name_ok(blob, "blob", err);
    if (rc != 0)
        return rc;
    if (c == NULL || cb == NULL || c->freeing)
        return sky_error_set(err, SKY_EINVAL, "blob: a live client and a callback are required");
    sky_buf url;
    sky_buf_init(&url, 64 * 1024);
    sky_headers *h = sky_headers_new();
    rc = h ? sky__blob_url(c, container, blob, "comp=metadata", &url) : SKY_ENOMEM;
    if (rc == 0)
        rc = add_meta_to(h, metadata);
    if (rc == 0)
        rc = simple_start(c, K_PLAIN, "PUT", &url, h, NULL, 0, cb, ud, out_op, err);
    else
        sky_error_set(err, rc, "blob: cannot build the request");
    sky_headers_free(h);
    sky_buf_free(&url);
    return rc;
}
