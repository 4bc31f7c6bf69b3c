/*
 * The server layer: libh2o (built on libuv) does HTTP/1.1, HTTP/2 and TLS;
 * this file adds listening on host:port, a route table, per-request state
 * that learns when the client leaves, buffered streaming for SSE, and a
 * graceful shutdown.
 */
#include <h2o.h>
#include <h2o/http2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "skyio/buf.h"
#include "skyio/json.h"
#include "skyio/log.h"
#include "skyio/server.h"
#include "first_request.h"
#include "held_watch.h"

#define SKY_STREAM_CAP (64u * 1024u * 1024u)
/* How many idle socket input buffers each loop thread keeps for reuse. */
#define SKY_RECYCLED_INPUT_BUFFERS 1024

typedef struct route {
    char *method;
    char *path;
    size_t path_len;
    int prefix;
    sky_server_handler_cb cb;
    void *user_data;
} route;

/* One accepted connection; freed when libuv has closed its socket. */
typedef struct conn {
    uv_tcp_t tcp; /* first: the close callback gets this pointer */
    sky_server *srv;
    h2o_socket_t *sock;
    sky__first *first; /* its first request, read before h2o has the socket (plain HTTP) */
    struct conn *prev, *next;
} conn;

typedef struct req_timer {
    uv_timer_t timer;
    sky_server_req *owner; /* NULL once the request is gone */
    void (*cb)(sky_server_req *r, void *data);
} req_timer;

typedef struct handler {
    h2o_handler_t super;
    sky_server *srv;
} handler;

struct sky_server {
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    SSL_CTX *ssl_ctx;
    uv_tcp_t *listener; /* its own allocation: freed by its close callback */
    int port;
    char *host;
    sky_server_options opts;
    route *routes;
    size_t n_routes;
    conn *conns;
    /* Written by this server's loop only; read from any thread, so relaxed
     * atomics (skyio mock --threads reads every worker's). */
    uint64_t accepted, open_conns, in_flight;
    /* shutdown */
    uv_timer_t *shutdown_timer;
    uint64_t shutdown_deadline;
    int shutdown_closing; /* requests are over; waiting for connections to close */
    sky_server_req *reqs; /* requests in flight */
    sky__held *held;      /* the sweep for HTTP/1.1 requests held unanswered; NULL once freed */
    sky_server_shutdown_cb shutdown_cb;
    void *shutdown_ud;
    int freed; /* sky_server_free was called with connections open */
};

struct sky_server_req {
    h2o_req_t *req;
    sky_server *srv;
    void *data;
    void (*on_gone)(void *data);
    req_timer *timer;
    h2o_generator_t gen;
    sky_buf inflight; /* bytes h2o holds until it calls proceed */
    sky_buf pending;  /* bytes queued behind them */
    unsigned char started, sending, final_queued, ended, abort_pending, responded;
    unsigned char held;          /* HELD_*: how the sweep of held_watch.c saw it */
    sky__held_watch *watch;      /* its client's connection watched (held_watch.h), or NULL */
    sky_server_req *prev, *next; /* in srv->reqs */
};

/* sky_server_req.held: not seen by a sweep yet; seen once unanswered; watched, or not to be
 * (no fd left) */
enum { HELD_NEW, HELD_SEEN, HELD_DONE };

static void server_release(sky_server *s);

/* ---- options ---- */

void sky_server_options_init(sky_server_options *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->max_request_body = 8u * 1024u * 1024u;
    o->backlog = 4096;
    o->request_timeout_ms = 10000;
}

/* ---- request state ---- */

static void on_req_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_req_dispose(void *p)
{
    sky_server_req *r = p;
    if (r->watch)
        sky__held_watch_stop(r->watch);
    if (r->on_gone)
        r->on_gone(r->data);
    if (r->timer) {
        r->timer->owner = NULL;
        uv_close((uv_handle_t *)&r->timer->timer, on_req_timer_closed);
    }
    sky_buf_free(&r->inflight);
    sky_buf_free(&r->pending);
    if (r->prev)
        r->prev->next = r->next;
    else
        r->srv->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    __atomic_fetch_sub(&r->srv->in_flight, 1, __ATOMIC_RELAXED);
}

static const route *find_route(const sky_server *s, h2o_iovec_t method, sky_span path)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const route *rt = &s->routes[i];
        if (rt->method && !h2o_memis(method.base, method.len, rt->method, strlen(rt->method)))
            continue;
        if (rt->prefix ? path.len >= rt->path_len && memcmp(path.ptr, rt->path, rt->path_len) == 0
                       : sky_span_eq(path, sky_span_make(rt->path, rt->path_len)))
            return rt;
    }
    return NULL;
}

/* The path of the request target without its query. An absolute-form
 * target ("http://host/path", what a client sends to a proxy) counts by its
 * path, as RFC 9112 asks servers to accept it. */
static sky_span target_path(const h2o_req_t *req)
{
    size_t end = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *p = req->path.base;
    if (end > 0 && p[0] != '/') {
        const char *sep = end > 3 ? memchr(p, ':', end) : NULL;
        if (sep && (size_t)(sep - p) + 3 <= end && sep[1] == '/' && sep[2] == '/') {
            const char *host = sep + 3;
            const char *slash = memchr(host, '/', end - (size_t)(host - p));
            if (slash == NULL)
                return sky_span_make("/", 1);
            return sky_span_make(slash, end - (size_t)(slash - p));
        }
    }
    return sky_span_make(p, end);
}

static int on_h2o_req(h2o_handler_t *self, h2o_req_t *req)
{
    sky_server *s = ((handler *)self)->srv;
    const route *rt = find_route(s, req->method, target_path(req));
    sky_server_req *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_req_dispose);
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->srv = s;
    sky_buf_init(&r->inflight, SKY_STREAM_CAP);
    sky_buf_init(&r->pending, SKY_STREAM_CAP);
    r->next = s->reqs;
    if (s->reqs)
        s->reqs->prev = r;
    s->reqs = r;
    __atomic_fetch_add(&s->in_flight, 1, __ATOMIC_RELAXED);
    if (req->version < 0x200 && s->held)
        sky__held_note(s->held);
    if (rt == NULL) {
        static const char body[] =
            "{\"error\":{\"message\":\"no such route\",\"type\":\"invalid_request_error\","
            "\"param\":null,\"code\":\"not_found\"}}";
        sky_server_respond(r, 404, "application/json", sky_span_make(body, sizeof(body) - 1));
        return 0;
    }
    rt->cb(r, rt->user_data);
    return 0;
}

/* ---- accessors ---- */

sky_span sky_server_req_method(const sky_server_req *r)
{
    return sky_span_make(r->req->method.base, r->req->method.len);
}

sky_span sky_server_req_path(const sky_server_req *r)
{
    return target_path(r->req);
}

sky_span sky_server_req_query(const sky_server_req *r)
{
    const h2o_req_t *q = r->req;
    if (q->query_at == SIZE_MAX)
        return sky_span_make("", 0);
    return sky_span_make(q->path.base + q->query_at + 1, q->path.len - q->query_at - 1);
}

int sky_server_req_query_param(const sky_server_req *r, const char *name, sky_span *out_value)
{
    sky_span q = sky_server_req_query(r);
    size_t nlen = strlen(name), i = 0;
    while (i < q.len) {
        const char *amp = memchr(q.ptr + i, '&', q.len - i);
        size_t end = amp ? (size_t)(amp - q.ptr) : q.len;
        if (end - i > nlen && memcmp(q.ptr + i, name, nlen) == 0 && q.ptr[i + nlen] == '=') {
            *out_value = sky_span_make(q.ptr + i + nlen + 1, end - i - nlen - 1);
            return 1;
        }
        i = end + 1;
    }
    return 0;
}

sky_span sky_server_req_body(const sky_server_req *r)
{
    if (r->req->entity.base == NULL)
        return sky_span_make("", 0);
    return sky_span_make(r->req->entity.base, r->req->entity.len);
}

int sky_server_req_header(const sky_server_req *r, const char *name, sky_span *out_value)
{
    const h2o_headers_t *h = &r->req->headers;
    size_t nlen = strlen(name);
    for (size_t i = 0; i < h->size; i++) {
        const h2o_iovec_t *n = h->entries[i].name;
        /* h2o_lcstris wants its second name in lower case; ours may be in any */
        if (n->len == nlen && strncasecmp(n->base, name, nlen) == 0) {
            *out_value = sky_span_make(h->entries[i].value.base, h->entries[i].value.len);
            return 1;
        }
    }
    return 0;
}

sky_span sky_server_req_authority(const sky_server_req *r)
{
    return sky_span_make(r->req->input.authority.base, r->req->input.authority.len);
}

int sky_server_req_http_version(const sky_server_req *r)
{
    return r->req->version >= 0x200 ? 2 : 1;
}

sky_server *sky_server_req_server(const sky_server_req *r)
{
    return r->srv;
}

void sky_server_req_set_data(sky_server_req *r, void *data, void (*on_gone)(void *data))
{
    r->data = data;
    r->on_gone = on_gone;
}

void *sky_server_req_data(const sky_server_req *r)
{
    return r->data;
}

/* ---- timers ---- */

static void on_req_timer(uv_timer_t *t)
{
    req_timer *rt = t->data;
    if (rt->owner)
        rt->cb(rt->owner, rt->owner->data);
}

int sky_server_req_after(sky_server_req *r, uint64_t ms, void (*cb)(sky_server_req *, void *))
{
    if (r->timer == NULL) {
        r->timer = calloc(1, sizeof(*r->timer));
        if (r->timer == NULL)
            return SKY_ENOMEM;
        uv_timer_init(r->srv->loop, &r->timer->timer);
        r->timer->timer.data = r->timer;
        r->timer->owner = r;
    }
    r->timer->cb = cb;
    uv_timer_start(&r->timer->timer, on_req_timer, ms, 0);
    return 0;
}

/* ---- answering ---- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

void sky_server_add_header(sky_server_req *r, const char *name, sky_span value)
{
    h2o_req_t *q = r->req;
    size_t len = strlen(name);
    char *lower = h2o_mem_alloc_pool(&q->pool, len + 1);
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)h2o_tolower((unsigned char)name[i]);
    h2o_iovec_t v = h2o_strdup(&q->pool, value.ptr, value.len);
    /* A known name needs no copy in h2o's list: its token stands for it. */
    const h2o_token_t *token = h2o_lookup_token(lower, len);
    if (token)
        h2o_add_header(&q->pool, &q->res.headers, token, NULL, v.base, v.len);
    else
        h2o_add_header_by_str(&q->pool, &q->res.headers, lower, len, 0, NULL, v.base, v.len);
}

static void set_status(sky_server_req *r, int status, const char *content_type)
{
    h2o_req_t *q = r->req;
    q->res.status = status;
    q->res.reason = reason_phrase(status);
    if (content_type) {
        h2o_iovec_t v = h2o_strdup(&q->pool, content_type, strlen(content_type));
        h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, v.base, v.len);
    }
}

void sky_server_respond(sky_server_req *r, int status, const char *content_type, sky_span body)
{
    if (r->responded)
        return;
    r->responded = 1;
    set_status(r, status, content_type);
    /* Announce the length: HTTP/1.1 replies go out whole, not chunked. */
    r->req->res.content_length = body.len;
    h2o_send_inline(r->req, body.ptr, body.len);
}

void sky_server_respond_json(sky_server_req *r, int status, const json_t *body)
{
    size_t len = 0;
    char *text = sky_json_dump(body, &len);
    if (text == NULL) {
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{\"error\":{}}"));
        return;
    }
    sky_server_respond(r, status, "application/json", sky_span_make(text, len));
    free(text);
}

/* ---- streaming ---- */

static void stream_flush(sky_server_req *r)
{
    if (r->sending || r->ended)
        return;
    if (r->abort_pending) {
        r->ended = 1;
        h2o_send(r->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    if (r->pending.len == 0 && !r->final_queued)
        return;
    sky_buf tmp = r->inflight;
    r->inflight = r->pending;
    r->pending = tmp;
    sky_buf_reset(&r->pending);
    h2o_iovec_t iov = h2o_iovec_init(r->inflight.data ? r->inflight.data : "", r->inflight.len);
    int final = r->final_queued;
    if (final)
        r->ended = 1;
    else
        r->sending = 1;
    h2o_send(r->req, &iov, 1, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    sky_server_req *r = H2O_STRUCT_FROM_MEMBER(sky_server_req, gen, gen);
    (void)req;
    r->sending = 0;
    sky_buf_reset(&r->inflight);
    stream_flush(r);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    sky_server_req *r = H2O_STRUCT_FROM_MEMBER(sky_server_req, gen, gen);
    (void)req;
    r->ended = 1;
}

void sky_server_stream_start(sky_server_req *r, int status, const char *content_type,
                             int64_t content_length)
{
    if (r->responded)
        return;
    r->responded = 1;
    r->started = 1;
    set_status(r, status, content_type);
    if (content_length >= 0)
        r->req->res.content_length = (size_t)content_length;
    r->gen.proceed = on_proceed;
    r->gen.stop = on_stop;
    h2o_start_response(r->req, &r->gen);
}

int sky_server_stream_write(sky_server_req *r, sky_span data, int final)
{
    if (!r->started || r->ended || r->final_queued)
        return SKY_ESTATE;
    int rc = sky_buf_append(&r->pending, data.ptr, data.len);
    if (rc < 0)
        return rc;
    if (final)
        r->final_queued = 1;
    stream_flush(r);
    return 0;
}

/* Where the line starting at @p at ends, and where the next one starts (past its CR LF,
 * CR or LF, the three line ends of SSE); *out_next is past the end when none follows. */
static size_t line_end(sky_span data, size_t at, size_t *out_next)
{
    size_t i = at;
    while (i < data.len && data.ptr[i] != '\n' && data.ptr[i] != '\r')
        i++;
    if (i == data.len)
        *out_next = data.len + 1;
    else
        *out_next =
            i + (data.ptr[i] == '\r' && i + 1 < data.len && data.ptr[i + 1] == '\n' ? 2 : 1);
    return i;
}

/* "data: <line>\n" for each line of @p data, so a line break cannot end the event early
 * or hide the rest of the data. */
static int append_data_lines(sky_buf *out, sky_span data)
{
    size_t at = 0;
    int rc = 0;
    if (data.ptr == NULL)
        data = sky_span_make("", 0);
    while (rc == 0 && at <= data.len) {
        size_t next, end = line_end(data, at, &next);
        rc = sky_buf_append(out, "data: ", 6);
        rc = rc ? rc : sky_buf_append(out, data.ptr + at, end - at);
        rc = rc ? rc : sky_buf_append(out, "\n", 1);
        at = next;
    }
    return rc;
}

int sky_server_sse_send_event(sky_server_req *r, const char *event, sky_span data)
{
    if (!r->started || r->ended || r->final_queued)
        return SKY_ESTATE;
    if (event && (strchr(event, '\n') || strchr(event, '\r')))
        return SKY_EINVAL;
    size_t mark = r->pending.len;
    int rc = 0;
    if (event) {
        rc = sky_buf_append(&r->pending, "event: ", 7);
        rc = rc ? rc : sky_buf_append(&r->pending, event, strlen(event));
        rc = rc ? rc : sky_buf_append(&r->pending, "\n", 1);
    }
    rc = rc ? rc : append_data_lines(&r->pending, data);
    rc = rc ? rc : sky_buf_append(&r->pending, "\n", 1);
    if (rc < 0) {
        r->pending.len = mark; /* no half event on the wire */
        return rc;
    }
    stream_flush(r);
    return 0;
}

int sky_server_sse_send(sky_server_req *r, sky_span data)
{
    return sky_server_sse_send_event(r, NULL, data);
}

void sky_server_abort(sky_server_req *r)
{
    if (!r->started) {
        r->responded = 1;
        r->started = 1;
        set_status(r, 200, NULL);
        r->gen.proceed = on_proceed;
        r->gen.stop = on_stop;
        h2o_start_response(r->req, &r->gen);
    }
    if (r->ended)
        return;
    r->abort_pending = 1;
    stream_flush(r);
}

static conn *find_conn(sky_server *s, h2o_socket_t *sock)
{
    for (conn *c = s->conns; c; c = c->next)
        if (c->sock == sock)
            return c;
    return NULL;
}

void sky_server_reset(sky_server_req *r)
{
    h2o_conn_t *hc = r->req->conn;
    h2o_socket_t *sock = hc->callbacks->get_socket ? hc->callbacks->get_socket(hc) : NULL;
    conn *c = (sock && r->req->version < 0x200) ? find_conn(r->srv, sock) : NULL;
    uv_os_fd_t fd;
    /* Linger 0 makes close() send RST instead of FIN; h2o closes the
     * socket once the aborted response ends the connection. */
    if (c && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        shutdown(fd, SHUT_RD);
    }
    sky_server_abort(r);
}

/* ---- held HTTP/1.1 requests (held_watch.c) ---- */

/* The client closed its connection while its request waited (or while a stream begun
 * since runs): end it as a failed write ends a stream, so the handler's on_gone runs now. A
 * whole answer on its way finds the close itself. */
static void on_held_client_closed(void *ud)
{
    sky_server_req *r = ud;
    r->watch = NULL;
    if (!r->responded || (r->started && !r->ended && !r->abort_pending))
        sky_server_reset(r);
}

/* An HTTP/1.1 request still unanswered at two sweeps in a row gets its connection watched.
 * Nonzero while one is left to look at again. */
static int sweep_held(void *ud)
{
    sky_server *s = ud;
    int left = 0;
    for (sky_server_req *r = s->reqs; r; r = r->next) {
        if (r->req->version >= 0x200 || r->responded || r->held == HELD_DONE)
            continue;
        if (r->held == HELD_NEW) {
            r->held = HELD_SEEN;
            left = 1;
            continue;
        }
        r->held = HELD_DONE;
        r->watch = sky__held_watch_start(s->loop, r->req->conn, on_held_client_closed, r);
    }
    return left;
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = (conn *)h;
    sky_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    __atomic_fetch_sub(&s->open_conns, 1, __ATOMIC_RELAXED);
    free(c);
    if (s->freed && s->open_conns == 0)
        server_release(s);
}

/*
 * h2o gives each connection an input buffer while a request is read and
 * answered, and recycles at most 16 of them per thread. The answers' writes
 * complete on the next loop turn, so a busy turn holds one buffer per ready
 * connection: past 16 they went back to malloc, and glibc, seeing hundreds
 * of kilobytes free at the top of its heap, gave them to the kernel only to
 * fault them in again on the next turn. Keeping as many buffers as a busy
 * turn uses (the peak stays allocated, 8 KiB each) ends that churn.
 * The recycler is per thread: set it on the thread that runs this loop.
 */
static void keep_input_buffers(void)
{
    if (h2o_socket_buffer_prototype.allocator.max < SKY_RECYCLED_INPUT_BUFFERS)
        h2o_socket_buffer_prototype.allocator.max = SKY_RECYCLED_INPUT_BUFFERS;
}

/* The connection to h2o, with what was read of it already (@p data, @p len). */
static void to_h2o(conn *c, const char *data, size_t len)
{
    c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    if (len > 0) {
        h2o_iovec_t room = h2o_buffer_reserve(&c->sock->input, len);
        if (room.base == NULL) {
            h2o_socket_close(c->sock);
            return;
        }
        memcpy(room.base, data, len);
        c->sock->input->size += len;
    }
    h2o_accept(&c->srv->accept_ctx, c->sock);
}

static void on_first_request(void *ud, const char *data, size_t len, int refused)
{
    conn *c = ud;
    c->first = NULL;
    if (refused)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    else
        to_h2o(c, data, len);
}

static void on_accept(uv_stream_t *listener, int status)
{
    sky_server *s = listener->data;
    if (status != 0)
        return;
    keep_input_buffers();
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    uv_tcp_init(s->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->srv = s;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    __atomic_fetch_add(&s->accepted, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->open_conns, 1, __ATOMIC_RELAXED);
    if (s->ssl_ctx == NULL &&
        (c->first = sky__first_start(&c->tcp, s->opts.max_request_body, s->opts.request_timeout_ms,
                                     on_first_request, c)) != NULL)
        return;
    to_h2o(c, NULL, 0);
}

/* ---- set-up ---- */

static int setup_tls(sky_server *s, const sky_server_options *o, sky_error *err)
{
    s->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (s->ssl_ctx == NULL)
        return sky_error_set(err, SKY_ENOMEM, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(s->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(s->ssl_ctx, SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_use_certificate_chain_file(s->ssl_ctx, o->tls_cert_file) != 1)
        return sky_error_set(err, SKY_ETLS, "cannot load certificate chain from %s",
                             o->tls_cert_file);
    if (SSL_CTX_use_PrivateKey_file(s->ssl_ctx, o->tls_key_file, SSL_FILETYPE_PEM) != 1)
        return sky_error_set(err, SKY_ETLS, "cannot load private key from %s", o->tls_key_file);
    if (SSL_CTX_check_private_key(s->ssl_ctx) != 1)
        return sky_error_set(err, SKY_ETLS, "the private key does not match the certificate");
    h2o_ssl_register_alpn_protocols(s->ssl_ctx, h2o_http2_alpn_protocols);
    s->accept_ctx.ssl_ctx = s->ssl_ctx;
    return 0;
}

static void setup_h2o(sky_server *s)
{
    h2o_config_init(&s->config);
    s->config.max_request_entity_size = s->opts.max_request_body;
    s->config.http1.req_timeout = s->opts.request_timeout_ms;
    /* No "server: h2o/x.y.z" header: it tells clients nothing they use, and
     * h2o formats it with sprintf for every response. */
    s->config.server_name = h2o_iovec_init(H2O_STRLIT(""));
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    handler *h = (handler *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_h2o_req;
    h->srv = s;
    h2o_context_init(&s->ctx, s->loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
}

int sky_server_new(uv_loop_t *loop, const sky_server_options *o, sky_server **out_server,
                   sky_error *err)
{
    sky_server_options defaults;
    if (o == NULL) {
        sky_server_options_init(&defaults);
        o = &defaults;
    }
    if ((o->tls_cert_file == NULL) != (o->tls_key_file == NULL))
        return sky_error_set(err, SKY_EINVAL, "TLS needs both a certificate and a key");
    sky_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    s->loop = loop;
    s->opts = *o;
    s->host = strdup(o->host ? o->host : "127.0.0.1");
    if (s->host == NULL) {
        free(s);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    if (s->opts.max_request_body == 0)
        s->opts.max_request_body = 8u * 1024u * 1024u;
    if (s->opts.request_timeout_ms == 0)
        s->opts.request_timeout_ms = 10000;
    if (o->tls_cert_file) {
        int rc = setup_tls(s, o, err);
        if (rc < 0) {
            if (s->ssl_ctx)
                SSL_CTX_free(s->ssl_ctx);
            free(s->host);
            free(s);
            return rc;
        }
    }
    setup_h2o(s);
    s->held = sky__held_new(loop, sweep_held, s); /* NULL (no memory): nothing watched */
    *out_server = s;
    return 0;
}

int sky_server_route(sky_server *s, const char *method, const char *path, int prefix,
                     sky_server_handler_cb cb, void *user_data)
{
    route *n = realloc(s->routes, (s->n_routes + 1) * sizeof(*n));
    if (n == NULL)
        return SKY_ENOMEM;
    s->routes = n;
    route *rt = &n[s->n_routes];
    rt->method = method ? strdup(method) : NULL;
    rt->path = strdup(path);
    if ((method && rt->method == NULL) || rt->path == NULL) {
        free(rt->method);
        free(rt->path);
        return SKY_ENOMEM;
    }
    rt->path_len = strlen(path);
    rt->prefix = prefix;
    rt->cb = cb;
    rt->user_data = user_data;
    s->n_routes++;
    return 0;
}

static int resolve_bind(const char *host, int port, struct sockaddr_storage *ss)
{
    if (strchr(host, ':'))
        return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

/* libuv 1.44 has no SO_REUSEPORT flag: make the socket by hand and give
 * it to libuv. The kernel then spreads connections over the listeners. */
static int bind_reuse_port(uv_tcp_t *t, const struct sockaddr_storage *ss)
{
    int one = 1;
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (const struct sockaddr *)ss, len) != 0) {
        int e = errno;
        close(fd);
        return uv_translate_sys_error(e);
    }
    int rc = uv_tcp_open(t, fd);
    if (rc != 0)
        close(fd);
    return rc;
}

int sky_server_listen(sky_server *s, sky_error *err)
{
    struct sockaddr_storage ss;
    int namelen = sizeof(ss);
    int rc = resolve_bind(s->host, s->opts.port, &ss);
    if (rc != 0)
        return sky_error_set(err, SKY_EINVAL, "cannot listen on '%s': not an IP address", s->host);
    if (s->listener)
        return sky_error_set(err, SKY_ESTATE, "already listening");
    s->listener = malloc(sizeof(*s->listener));
    if (s->listener == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    uv_tcp_init(s->loop, s->listener);
    s->listener->data = s;
    rc = s->opts.reuse_port ? bind_reuse_port(s->listener, &ss)
                            : uv_tcp_bind(s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)s->listener, s->opts.backlog, on_accept);
    if (rc != 0)
        return sky_error_set(err, SKY_EIO, "cannot listen on %s:%d: %s", s->host, s->opts.port,
                             uv_strerror(rc));
    uv_tcp_getsockname(s->listener, (struct sockaddr *)&ss, &namelen);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int sky_server_port(const sky_server *s)
{
    return s->port;
}

uint64_t sky_server_connections(const sky_server *s)
{
    return __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
}

uint64_t sky_server_open_connections(const sky_server *s)
{
    return __atomic_load_n(&s->open_conns, __ATOMIC_RELAXED);
}

uint64_t sky_server_requests_in_flight(const sky_server *s)
{
    return __atomic_load_n(&s->in_flight, __ATOMIC_RELAXED);
}

/* ---- shutdown ---- */

static void on_listener_closed(uv_handle_t *h)
{
    free(h);
}

static void stop_listening(sky_server *s)
{
    if (s->listener) {
        uv_close((uv_handle_t *)s->listener, on_listener_closed);
        s->listener = NULL;
    }
}

/* End what is still in flight: a request not yet answered gets 503, a
 * started answer is cut. Either can dispose requests at once, so start over
 * from the head after each one. */
static void end_all_requests(sky_server *s)
{
    static const char body[] = "{\"error\":{\"message\":\"the server is shutting down\","
                               "\"type\":\"server_error\",\"param\":null,"
                               "\"code\":\"shutting_down\"}}";
    sky_server_req *r = s->reqs;
    while (r) {
        if (!r->responded) {
            sky_server_respond(r, 503, "application/json", sky_span_make(body, sizeof(body) - 1));
            r = s->reqs;
        } else if (!r->ended && !r->abort_pending) {
            sky_server_abort(r);
            r = s->reqs;
        } else {
            r = r->next;
        }
    }
}

/* An end-of-stream on every connection: h2o, reading, sees it and closes
 * the connection its own way (idle HTTP/1 keep-alive ones included). */
static void close_all_connections(sky_server *s)
{
    uv_os_fd_t fd;
    for (conn *c = s->conns; c; c = c->next)
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, SHUT_RDWR);
}

static void on_shutdown_tick(uv_timer_t *t)
{
    sky_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    if (!s->shutdown_closing) {
        if (s->in_flight > 0 && now < s->shutdown_deadline)
            return;
        end_all_requests(s);
        close_all_connections(s);
        s->shutdown_closing = 1;
        s->shutdown_deadline = now + 1000;
    }
    if (s->open_conns > 0 && now < s->shutdown_deadline)
        return;
    uv_timer_stop(t);
    sky_server_shutdown_cb cb = s->shutdown_cb;
    s->shutdown_cb = NULL;
    if (cb)
        cb(s, s->shutdown_ud);
}

void sky_server_shutdown(sky_server *s, uint64_t grace_ms, sky_server_shutdown_cb cb,
                         void *user_data)
{
    stop_listening(s);
    h2o_context_request_shutdown(&s->ctx);
    s->shutdown_cb = cb;
    s->shutdown_ud = user_data;
    s->shutdown_closing = 0;
    s->shutdown_deadline = uv_now(s->loop) + grace_ms;
    if (s->shutdown_timer == NULL) {
        s->shutdown_timer = calloc(1, sizeof(*s->shutdown_timer));
        if (s->shutdown_timer == NULL) {
            if (cb)
                cb(s, user_data);
            return;
        }
        uv_timer_init(s->loop, s->shutdown_timer);
        s->shutdown_timer->data = s;
    }
    uv_timer_start(s->shutdown_timer, on_shutdown_tick, 0, 20);
}

static void free_routes(sky_server *s)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
    s->routes = NULL;
    s->n_routes = 0;
}

/*
 * h2o's context holds libuv timers inside this struct. h2o_context_dispose
 * closes them and runs the loop once itself, so their close has finished
 * when it returns, and the struct can go. (The listener and the shutdown
 * timer are allocations of their own, freed by their close callbacks.)
 */
static void server_release(sky_server *s)
{
    /* request_shutdown arms this entry; dispose insists on no armed entry. */
    if (h2o_timeout_is_linked(&s->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    free_routes(s);
    free(s->host);
    free(s);
}

void sky_server_free(sky_server *s)
{
    if (s == NULL)
        return;
    stop_listening(s);
    sky__held_free(s->held);
    s->held = NULL;
    if (s->shutdown_timer) {
        uv_close((uv_handle_t *)s->shutdown_timer, (uv_close_cb)free);
        s->shutdown_timer = NULL;
    }
    /* The owners of the routes' user data may go right after this call:
     * from now on every request gets 404. */
    free_routes(s);
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->first)
            sky__first_cancel(c->first); /* no request yet: closed now */
    }
    if (s->open_conns > 0) {
        /* h2o still serves these connections from s->ctx: keep it alive
         * until the last one closes. */
        h2o_context_request_shutdown(&s->ctx);
        s->freed = 1;
        return;
    }
    server_release(s);
}
