/*
 * The h2o transport of the HTTP client (see h1.h), on libuv directly: it writes the
 * request we format (request line and header lines, as curl would send them), frames the
 * reply with picohttpparser (h1_reply.c) and keeps its connections itself, LIVE: an idle
 * connection stays a uv_tcp_t in its origin's pool with reading started, so an upstream
 * that closes it is seen as EOF and the connection dropped, and a reused connection costs
 * no system call beyond the write of the request and the reads of the reply. (h2o 2.2.5's
 * own client and socket pool, used before, exported each idle socket: a dup, a close and
 * an epoll removal to pool it, an ioctl, an epoll add and a peeking recv to take it.)
 *
 * What it does not do, and curl still does for such requests: TLS, HTTP/2, name resolution
 * (an origin must be an IP literal or localhost), streamed or chunked uploads, pausing a
 * reply (a body callback returning SKY_HTTP_PAUSE fails the request). The client's
 * connect_timeout_ms bounds the wait for a connection, as with curl; the request's
 * timeout_ms covers the whole request, connect included. A request on a pooled connection
 * that the upstream had closed meanwhile is sent once more on a new connection when
 * nothing of it was answered (as curl does).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "h1.h"
#include "h1_reply.h"
#include "skyio/buf.h"
#include "skyio/clock.h"
#include "skyio/headers.h"

#define H1_POOL_CAPACITY 4096 /* idle connections an origin's pool may hold */
/* An idle pooled connection is closed after this: under the keep-alive of the usual
 * upstreams (uvicorn and Node 5 s, h2o 10 s), so that a pooled connection is ours to close
 * rather than found closed by the upstream. */
#define H1_IDLE_MS 4000
#define H1_SWEEP_MS 250          /* how often the pools are swept of idle connections */
#define H1_READ_ROOM 65536       /* the transport's one read buffer */
#define H1_MAX_HEAD (128 * 1024) /* a reply head longer than this fails the request */
/* Requests' memory kept for the next ones (none in sanitizer builds: CMakeLists.txt): at
 * most this many, with buffers at most this big (what a gateway's calls use); the rest goes
 * back to malloc. */
#define H1_SPARE_REQUESTS 64
#define H1_SPARE_OUT (16 * 1024)
#define H1_SPARE_BODY (64 * 1024)

typedef struct h1req h1req;
typedef struct h1conn h1conn;
typedef struct origin origin;

struct origin {
    origin *next;
    char *prefix; /* "http://127.0.0.1:8080": a URL it serves starts with this */
    size_t prefix_len;
    char *authority; /* "127.0.0.1:8080", for Host */
    struct sockaddr_storage addr;
    h1conn *idle, *idle_tail; /* the pool: the most recently used first */
    size_t n_idle;
};

struct h1conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    sky__h1 *h;
    origin *org;
    h1req *req;          /* the request it carries; NULL while pooled or closing */
    h1conn *prev, *next; /* in its origin's pool */
    uint64_t idle_since; /* loop time (ms) it was pooled */
    int served;          /* replies read whole on it */
    int writing, closing;
    char *head; /* a reply head split over reads */
    size_t head_len, head_cap;
    sky__h1_reply reply;
};

struct h1req {
    int kind; /* SKY__HTTP_KIND_H1; first, as in struct sky_http_request */
    sky__h1 *h;
    origin *org;
    h1conn *conn;         /* NULL before a connection and after the reply */
    uint64_t deadline;    /* loop time (ms) its wait ends; 0: none (see "timeouts") */
    h1req *tprev, *tnext; /* in the transport's deadline list */
    sky_buf out;          /* request line, headers and body */
    int is_head;
    int status;
    sky_headers *resp_headers;
    sky_buf resp_body;
    sky_http_headers_cb on_headers;
    sky_http_body_cb on_body;
    sky_http_done_cb on_done;
    void *user_data;
    uint64_t started_ns;
    long timeout_ms; /* the request's own; 0: none */
    int connecting;  /* the timer runs the connect timeout */
    int canceled, in_cb, sending, ended;
    int answered, retried, reused;
    int err_code, retryable;
    char err_msg[96];
    h1req *prev, *next;
};

struct sky__h1 {
    sky_http_client *client;
    uv_loop_t *loop;
    size_t max_response_bytes;
    long connect_timeout_ms; /* 0: none */
    char *user_agent;
    origin *origins;
    h1req *active; /* waiting for a connection or a reply */
    h1req *ended;  /* over, done callback pending (from the reaper) */
    h1req *spare;  /* ended requests' memory, for the next (linked by next) */
    size_t n_active, n_idle, n_spare;
    h1req *timed, *timed_tail; /* requests with a deadline, the first due first */
    uint64_t armed_for;        /* the deadline the timer below is set for; 0: none */
    uv_timer_t deadlines;      /* ends the requests whose time is up */
    uv_timer_t reaper;
    uv_timer_t sweeper; /* closes idle connections, running while any is pooled */
    size_t handles;     /* the three timers and the connections not yet closed */
    int freeing;
    char *rbuf; /* every read lands here: the reply's bytes are used before the next */
};

/* ---- lists ---- */

static void list_push(h1req **head, h1req *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head)
        (*head)->prev = r;
    *head = r;
}

static void list_remove(h1req **head, h1req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* ---- the transport's memory: freed once every handle of it has closed ---- */

static void free_origins(sky__h1 *h)
{
    while (h->origins) {
        origin *o = h->origins;
        h->origins = o->next;
        free(o->prefix);
        free(o->authority);
        free(o);
    }
}

static void handle_closed(sky__h1 *h)
{
    if (--h->handles > 0 || !h->freeing)
        return;
    free_origins(h);
    free(h->rbuf);
    free(h->user_agent);
    free(h);
}

static void on_timer_closed(uv_handle_t *t)
{
    handle_closed(t->data);
}

/* ---- connections and pools ---- */

static void on_conn_closed(uv_handle_t *t)
{
    h1conn *c = t->data;
    sky__h1 *h = c->h;
    free(c->head);
    free(c);
    handle_closed(h);
}

static void pool_remove(h1conn *c)
{
    origin *o = c->org;
    if (c->prev)
        c->prev->next = c->next;
    else
        o->idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        o->idle_tail = c->prev;
    c->prev = c->next = NULL;
    o->n_idle--;
    c->h->n_idle--;
}

static void conn_close(h1conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->req == NULL && c->idle_since)
        pool_remove(c);
    c->req = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_sweep(uv_timer_t *t)
{
    sky__h1 *h = t->data;
    uint64_t now = uv_now(h->loop);
    for (origin *o = h->origins; o; o = o->next)
        while (o->idle_tail && now - o->idle_tail->idle_since >= H1_IDLE_MS)
            conn_close(o->idle_tail);
    if (h->n_idle == 0)
        uv_timer_stop(t);
}

/* A reply read whole on a connection that may carry another: into its origin's pool. */
static void pool_put(h1conn *c)
{
    origin *o = c->org;
    sky__h1 *h = c->h;
    if (o->n_idle >= H1_POOL_CAPACITY || h->freeing) {
        conn_close(c);
        return;
    }
    c->req = NULL;
    c->idle_since = uv_now(h->loop);
    if (c->idle_since == 0)
        c->idle_since = 1; /* 0 marks a connection that was never pooled */
    c->prev = NULL;
    c->next = o->idle;
    if (o->idle)
        o->idle->prev = c;
    else
        o->idle_tail = c;
    o->idle = c;
    o->n_idle++;
    if (h->n_idle++ == 0)
        uv_timer_start(&h->sweeper, on_sweep, H1_SWEEP_MS, H1_SWEEP_MS);
}

static h1conn *pool_take(origin *o)
{
    h1conn *c = o->idle;
    if (c)
        pool_remove(c);
    return c;
}

/* ---- timeouts ----
 *
 * Requests with a timeout are kept in the order their deadlines come, and the transport's
 * one timer is set for the first. It is left alone when that request ends: it fires, ends
 * what is due, and is set again for the first left. Most requests end long before their
 * timeout, so a request's wait costs a place in a list, not a timer's start and stop (two
 * of each a request, before). */

static void on_deadline(uv_timer_t *t);

static void arm(sky__h1 *h)
{
    h1req *first = h->timed;
    if (first == NULL || (h->armed_for && h->armed_for <= first->deadline))
        return;
    uint64_t now = uv_now(h->loop);
    h->armed_for = first->deadline;
    uv_timer_start(&h->deadlines, on_deadline, first->deadline > now ? first->deadline - now : 0,
                   0);
}

static void deadline_clear(h1req *r)
{
    sky__h1 *h = r->h;
    if (r->deadline == 0)
        return;
    if (r->tprev)
        r->tprev->tnext = r->tnext;
    else
        h->timed = r->tnext;
    if (r->tnext)
        r->tnext->tprev = r->tprev;
    else
        h->timed_tail = r->tprev;
    r->tprev = r->tnext = NULL;
    r->deadline = 0;
}

/* The request's wait ends @p ms from now. Placed from the end of the list: the requests'
 * timeouts are mostly alike, so a new deadline is mostly the last. */
static void deadline_set(h1req *r, uint64_t ms)
{
    sky__h1 *h = r->h;
    deadline_clear(r);
    r->deadline = uv_now(h->loop) + (ms ? ms : 1);
    h1req *at = h->timed_tail;
    while (at && at->deadline > r->deadline)
        at = at->tprev;
    r->tprev = at;
    r->tnext = at ? at->tnext : h->timed;
    if (r->tnext)
        r->tnext->tprev = r;
    else
        h->timed_tail = r;
    if (at)
        at->tnext = r;
    else
        h->timed = r;
    arm(h);
}

/* ---- completion ---- */

static void req_free_memory(h1req *r)
{
    sky_buf_free(&r->out);
    sky_buf_free(&r->resp_body);
    sky_headers_free(r->resp_headers);
    free(r);
}

/*
 * A request's memory, its buffers and header map with it, is kept for the next request
 * (four allocations and four frees a request, before). The request's bytes are wiped first:
 * they may hold a credential.
 */
static void req_free(h1req *r)
{
    sky__h1 *h = r->h;
    if (!SKY_KEEP_SPARES || h->freeing || h->n_spare >= H1_SPARE_REQUESTS ||
        r->out.alloc > H1_SPARE_OUT || r->resp_body.alloc > H1_SPARE_BODY) {
        req_free_memory(r);
        return;
    }
    if (r->out.data)
        memset(r->out.data, 0, r->out.len);
    sky_buf_reset(&r->out);
    sky_buf_reset(&r->resp_body);
    sky_headers_clear(r->resp_headers);
    r->next = h->spare;
    h->spare = r;
    h->n_spare++;
}

/* A request as new: a spare one, or a fresh one; NULL when memory is out. */
static h1req *req_new(sky__h1 *h)
{
    h1req *r = h->spare;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            return NULL;
        sky_buf_init(&r->out, SIZE_MAX);
        sky_buf_init(&r->resp_body, 0);
        r->resp_headers = sky_headers_new();
        if (r->resp_headers == NULL) {
            free(r);
            return NULL;
        }
    } else {
        h->spare = r->next;
        h->n_spare--;
        h1req kept = *r;
        memset(r, 0, sizeof(*r));
        r->out = kept.out;
        r->resp_body = kept.resp_body;
        r->resp_headers = kept.resp_headers;
    }
    r->h = h;
    return r;
}

static void on_reap(uv_timer_t *t);

/* The done callback; returns nonzero when the client asked to be freed from it. */
static int report(h1req *r)
{
    sky_http_client *c = r->h->client;
    sky_http_response res;
    sky_error e;
    memset(&res, 0, sizeof(res));
    sky_error_clear(&e);
    res.status = r->status;
    res.headers = r->resp_headers;
    res.body = sky_buf_span(&r->resp_body);
    res.http_version = r->status ? 1 : 0;
    res.reused_connection = r->reused;
    res.total_us = (sky_clock_real_ns() - r->started_ns) / 1000u;
    if (r->canceled && r->err_code == 0)
        sky_error_set(&e, SKY_ECANCELED, "request canceled");
    else if (r->err_code)
        sky_error_set(&e, r->err_code, "%s", r->err_msg);
    e.retryable = e.code != SKY_ECANCELED && r->retryable;
    e.http_status = res.status;
    deadline_clear(r);
    sky__http_enter(c);
    r->on_done((sky_http_request *)r, &res, e.code ? &e : NULL, r->user_data);
    req_free(r);
    return sky__http_leave(c);
}

/* Lets go of the request's connection, closing it: a reply not read whole cannot be. */
static void drop_conn(h1req *r)
{
    h1conn *c = r->conn;
    r->conn = NULL;
    if (c)
        conn_close(c);
}

/* Over: report now (from a callback of the loop's), or from the reaper (a 0 ms timer)
 * when inside sky_http_request_send or a cancel. */
static void end(h1req *r, int defer)
{
    sky__h1 *h = r->h;
    drop_conn(r);
    r->ended = 1;
    deadline_clear(r);
    list_remove(&h->active, r);
    h->n_active--;
    if (defer) {
        list_push(&h->ended, r);
        uv_timer_start(&h->reaper, on_reap, 0, 0);
    } else if (report(r)) {
        uv_timer_start(&h->reaper, on_reap, 0, 0); /* the client's free, from the loop */
    }
}

static void fail(h1req *r, int code, const char *what, int retryable)
{
    if (r->err_code == 0) {
        r->err_code = code;
        r->retryable = retryable;
        snprintf(r->err_msg, sizeof(r->err_msg), "%s", what);
    }
    end(r, r->sending);
}

/* The reply read whole: its connection goes back to the pool before the done callback,
 * so that a request sent from there (the next call a concurrency limit let through, say)
 * reuses it instead of opening one beside it. */
static void complete(h1req *r, int extra_bytes)
{
    h1conn *c = r->conn;
    r->conn = NULL;
    c->served++;
    c->head_len = 0;
    if (c->reply.keep_alive && !extra_bytes && !c->writing)
        pool_put(c);
    else
        conn_close(c);
    end(r, 0);
}

static void on_reap(uv_timer_t *t)
{
    sky__h1 *h = t->data;
    sky_http_client *c = h->client;
    while (h->ended) {
        h1req *r = h->ended;
        list_remove(&h->ended, r);
        report(r);
    }
    sky__http_maybe_free(c);
}

static void on_timeout(h1req *r)
{
    /* the code curl gives its own connect timeout, so callers treat both alike */
    fail(r, SKY_ETIMEDOUT, r->connecting ? "connect timed out" : "request timed out", 1);
}

/* Every request whose time is up ends (each may end or start others), then the timer is set
 * for the first left. */
static void on_deadline(uv_timer_t *t)
{
    sky__h1 *h = t->data;
    uint64_t now = uv_now(h->loop);
    h->armed_for = 0;
    while (h->timed && h->timed->deadline <= now) {
        h1req *r = h->timed;
        deadline_clear(r);
        on_timeout(r);
    }
    arm(h);
}

/* The first wait: the connect timeout, or the request's timeout when that comes first. */
static void start_timer(h1req *r)
{
    long ct = r->h->connect_timeout_ms, t = r->timeout_ms;
    r->connecting = ct > 0 && (t <= 0 || ct < t);
    long first = r->connecting ? ct : t;
    if (first > 0)
        deadline_set(r, (uint64_t)first);
}

/* Connected: what is left of the request's timeout, if it has one, from here on. */
static void connected(h1req *r)
{
    if (!r->connecting)
        return;
    r->connecting = 0;
    deadline_clear(r);
    if (r->timeout_ms <= 0)
        return;
    uint64_t spent = (sky_clock_real_ns() - r->started_ns) / 1000000u;
    uint64_t left = spent < (uint64_t)r->timeout_ms ? (uint64_t)r->timeout_ms - spent : 1;
    deadline_set(r, left);
}

/* ---- the reply ---- */

/* A user callback: nonzero when the request must stop (it was canceled from there). */
static int user_cb_done(h1req *r)
{
    r->in_cb = 0;
    if (sky__http_leave(r->h->client))
        uv_timer_start(&r->h->reaper, on_reap, 0, 0);
    return r->canceled;
}

static int take_body(h1req *r, const char *p, size_t len)
{
    if (r->on_body == NULL) {
        int rc = sky_buf_append(&r->resp_body, p, len);
        if (rc < 0)
            snprintf(r->err_msg, sizeof(r->err_msg), "response body larger than the limit");
        return rc < 0 ? (r->err_code = rc) : 0;
    }
    r->in_cb = 1;
    sky__http_enter(r->h->client);
    int rc = r->on_body((sky_http_request *)r, p, len, r->user_data);
    if (user_cb_done(r))
        return -1;
    if (rc == SKY_HTTP_PAUSE) {
        r->err_code = SKY_EINVAL;
        snprintf(r->err_msg, sizeof(r->err_msg), "the h2o transport cannot pause a reply");
    } else if (rc != 0) {
        r->err_code = SKY_ECANCELED;
        snprintf(r->err_msg, sizeof(r->err_msg), "canceled by the body callback");
    }
    return rc != 0 ? -1 : 0;
}

#define ONES8 0x0101010101010101ull

/* The eight bytes of @p w with A-Z in lower case, the others as they are: a byte's high bit
 * says, after the two additions, whether it is at least 'A' and whether it is past 'Z'. */
static uint64_t lower8(uint64_t w)
{
    uint64_t low7 = w & (ONES8 * 0x7f);
    uint64_t from_a = low7 + ONES8 * (0x80 - 'A'), past_z = low7 + ONES8 * (0x80 - 'Z' - 1);
    uint64_t upper = from_a & ~past_z & ~w & (ONES8 * 0x80);
    return w | (upper >> 2);
}

/* @p len bytes of @p src into @p dst in lower case, a word at a time (a byte at a time, it
 * was a tenth of the transport's instructions). */
static void lower_copy(char *dst, const char *src, size_t len)
{
    size_t k = 0;
    for (; k + 8 <= len; k += 8) {
        uint64_t w;
        memcpy(&w, src + k, 8);
        w = lower8(w);
        memcpy(dst + k, &w, 8);
    }
    for (; k < len; k++)
        dst[k] = src[k] >= 'A' && src[k] <= 'Z' ? (char)(src[k] + 32) : src[k];
}

/* Header names as h2o gave them (lower case), so both transports hand out the same. */
static int copy_headers(h1req *r, const sky__phr_header *hdrs, size_t n)
{
    char name[256];
    for (size_t i = 0; i < n; i++) {
        if (hdrs[i].name == NULL || hdrs[i].name_len >= sizeof(name))
            continue; /* a folded line's continuation; a name no one sends */
        lower_copy(name, hdrs[i].name, hdrs[i].name_len);
        sky_span value = sky_span_make(hdrs[i].value, hdrs[i].value_len);
        int rc = sky_headers_add(r->resp_headers, sky_span_make(name, hdrs[i].name_len), value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The final head: nonzero when the request is over (failed or canceled). */
static int got_head(h1req *r, const sky__phr_header *hdrs, size_t n)
{
    r->status = r->conn->reply.status;
    int rc = copy_headers(r, hdrs, n);
    if (rc < 0) {
        fail(r, rc, "could not store the response headers", 0);
        return 1;
    }
    if (r->on_headers == NULL)
        return 0;
    r->in_cb = 1;
    sky__http_enter(r->h->client);
    r->on_headers((sky_http_request *)r, r->status, r->resp_headers, r->user_data);
    if (user_cb_done(r)) {
        end(r, 0);
        return 1;
    }
    return 0;
}

/* Body bytes at @p p: framed, handed on; the reply completed when they end it. */
static void read_body(h1req *r, char *p, size_t n)
{
    size_t body, used;
    int rc = sky__h1_reply_body(&r->conn->reply, p, n, &body, &used);
    if (rc < 0) {
        fail(r, SKY_EPROTO, "malformed chunked response body", 1);
        return;
    }
    if (body && take_body(r, p, body) < 0) {
        end(r, 0);
        return;
    }
    if (rc == 1)
        complete(r, used < n);
}

/* Room for @p need bytes of head in the connection's head buffer; -1 (failed) when not. */
static int head_room(h1req *r, size_t need)
{
    h1conn *c = r->conn;
    if (need > H1_MAX_HEAD) {
        fail(r, SKY_EPROTO, "response head too large", 0);
        return -1;
    }
    if (need <= c->head_cap)
        return 0;
    size_t cap = need < 4096 ? 4096 : need * 2 < H1_MAX_HEAD ? need * 2 : H1_MAX_HEAD;
    char *p = realloc(c->head, cap);
    if (p == NULL) {
        fail(r, SKY_ENOMEM, "out of memory reading a response head", 0);
        return -1;
    }
    c->head = p;
    c->head_cap = cap;
    return 0;
}

/* Keeps a head that is not whole yet at the start of the connection's head buffer. */
static void keep_head(h1req *r, const char *p, size_t n)
{
    h1conn *c = r->conn;
    c->head_len = 0;
    if (n == 0 || head_room(r, n) < 0)
        return; /* nothing yet of the head after a 1xx: the next read starts it */
    memmove(c->head, p, n);
    c->head_len = n;
}

/* Head bytes (and what follows them) at @p p; the heads of 1xx replies skipped. */
static void read_head(h1req *r, char *p, size_t n)
{
    h1conn *c = r->conn;
    sky__phr_header hdrs[SKY__H1_MAX_HEADERS];
    for (;;) {
        size_t nh = SKY__H1_MAX_HEADERS;
        int used = sky__h1_reply_head(&c->reply, p, n, hdrs, &nh);
        if (used == 0) {
            keep_head(r, p, n);
            return;
        }
        if (used < 0) {
            fail(r, SKY_EPROTO, "malformed response head", 0);
            return;
        }
        p += used;
        n -= (size_t)used;
        if (c->reply.interim)
            continue;
        c->head_len = 0; /* what is left of it is body, used from there before the next read */
        if (got_head(r, hdrs, nh))
            return;
        if (c->reply.state == SKY__H1_DONE)
            complete(r, n > 0);
        else if (n > 0)
            read_body(r, p, n);
        return;
    }
}

static void read_reply(h1req *r, char *p, size_t n)
{
    h1conn *c = r->conn;
    r->answered = 1;
    if (c->reply.state != SKY__H1_HEAD) {
        read_body(r, p, n);
        return;
    }
    if (c->head_len == 0) {
        read_head(r, p, n);
        return;
    }
    if (head_room(r, c->head_len + n) < 0)
        return;
    memcpy(c->head + c->head_len, p, n);
    c->head_len += n;
    read_head(r, c->head, c->head_len);
}

static void send_on_new_conn(h1req *r);

/* The upstream closed the connection (or it failed) while the request was on it. */
static void conn_lost(h1req *r, ssize_t status)
{
    h1conn *c = r->conn;
    if (status == UV_EOF && sky__h1_reply_eof(&c->reply)) {
        complete(r, 0);
    } else if (!r->answered && c->served > 0 && !r->retried) {
        r->retried = 1; /* a pooled connection closed before it got our request */
        drop_conn(r);
        send_on_new_conn(r);
    } else if (c->reply.state == SKY__H1_HEAD) {
        fail(r, SKY_ECONNRESET,
             status == UV_EOF ? "connection closed before the response" : uv_strerror((int)status),
             1);
    } else {
        fail(r, SKY_EPARTIAL, "connection closed before the end of the response", 1);
    }
}

static void on_alloc(uv_handle_t *t, size_t hint, uv_buf_t *buf)
{
    h1conn *c = t->data;
    (void)hint;
    *buf = uv_buf_init(c->h->rbuf, H1_READ_ROOM);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h1conn *c = s->data;
    if (nread == 0 || c->closing)
        return;
    if (c->req == NULL)
        conn_close(c); /* pooled: the upstream closed it, or sent what no one asked for */
    else if (nread < 0)
        conn_lost(c->req, nread);
    else
        read_reply(c->req, buf->base, (size_t)nread);
}

/* ---- the request ---- */

static void on_written(uv_write_t *w, int status)
{
    h1conn *c = w->data;
    c->writing = 0;
    if (status < 0 && !c->closing && c->req)
        conn_lost(c->req, status);
}

/* The request's bytes: at once, and what the socket did not take from the loop. */
static void write_request(h1req *r)
{
    h1conn *c = r->conn;
    uv_buf_t b = uv_buf_init(r->out.data, (unsigned)r->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS)
        n = 0;
    if (n >= 0 && (size_t)n < b.len) {
        b.base += n;
        b.len -= (unsigned)n;
        n = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written);
        c->writing = n == 0;
    }
    if (n < 0)
        conn_lost(r, n);
}

static void attach(h1req *r, h1conn *c)
{
    r->conn = c;
    c->req = r;
    c->idle_since = 0;
    sky__h1_reply_init(&c->reply, r->is_head);
}

static void on_connect(uv_connect_t *cr, int status)
{
    h1conn *c = cr->data;
    h1req *r = c->req;
    if (c->closing || r == NULL)
        return;
    if (status < 0) {
        fail(r, SKY_ECONNECT, uv_strerror(status), 1);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    connected(r);
    write_request(r);
}

static void send_on_new_conn(h1req *r)
{
    sky__h1 *h = r->h;
    h1conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        fail(r, SKY_ENOMEM, "out of memory opening a connection", 0);
        return;
    }
    c->h = h;
    c->org = r->org;
    uv_tcp_init(h->loop, &c->tcp);
    h->handles++;
    c->tcp.data = c->connect.data = c->write.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    attach(r, c);
    r->reused = 0;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&r->org->addr, on_connect);
    if (rc < 0)
        fail(r, SKY_ECONNECT, uv_strerror(rc), 1);
}

/* On a pooled connection the request's own timeout is the only wait; on a new one, the
 * connect timeout first (start_timer). */
static void dispatch(h1req *r)
{
    h1conn *c = pool_take(r->org);
    if (c == NULL) {
        start_timer(r);
        send_on_new_conn(r);
        return;
    }
    if (r->timeout_ms > 0)
        deadline_set(r, (uint64_t)r->timeout_ms);
    attach(r, c);
    r->reused = 1;
    write_request(r);
}

/* ---- origins ---- */

static origin *find_origin(sky__h1 *h, const char *url)
{
    for (origin *o = h->origins; o; o = o->next) {
        char next = url[o->prefix_len];
        if (strncmp(url, o->prefix, o->prefix_len) == 0 && (next == '/' || next == '?' || !next))
            return o;
    }
    return NULL;
}

/* The address of a literal host (or localhost); -1 for a name curl has to resolve. */
static int literal_address(const char *host, long port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    if (strcasecmp(host, "localhost") == 0)
        host = "127.0.0.1";
    char bare[64];
    size_t hl = strlen(host);
    if (hl >= 2 && hl < sizeof(bare) && host[0] == '[' && host[hl - 1] == ']') {
        memcpy(bare, host + 1, hl - 2);
        bare[hl - 2] = '\0';
        host = bare;
    }
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -1;
}

/* curl's URL parser reads the host and port; the prefix is the URL up to its path. */
static int origin_address(const char *url, struct sockaddr_storage *ss)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        rc = literal_address(host, strtol(port, NULL, 10), ss);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static origin *add_origin(sky__h1 *h, const char *url)
{
    const char *auth = url + 7; /* after "http://" */
    size_t alen = strcspn(auth, "/?#");
    struct sockaddr_storage ss;
    if (alen == 0 || memchr(auth, '@', alen) || origin_address(url, &ss) < 0)
        return NULL;
    origin *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->prefix = strndup(url, 7 + alen)) == NULL ||
        (o->authority = strndup(auth, alen)) == NULL) {
        if (o)
            free(o->prefix);
        free(o);
        return NULL;
    }
    o->prefix_len = 7 + alen;
    o->addr = ss;
    o->next = h->origins;
    h->origins = o;
    return o;
}

/* ---- the transport ---- */

int sky__h1_new(sky_http_client *c, uv_loop_t *loop, const sky_http_client_options *o,
                sky__h1 **out)
{
    sky__h1 *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return SKY_ENOMEM;
    h->client = c;
    h->loop = loop;
    h->max_response_bytes = o->max_response_bytes;
    h->connect_timeout_ms = o->connect_timeout_ms;
    h->user_agent = strdup(o->user_agent ? o->user_agent : "skyio");
    h->rbuf = malloc(H1_READ_ROOM);
    if (h->user_agent == NULL || h->rbuf == NULL) {
        free(h->user_agent);
        free(h->rbuf);
        free(h);
        return SKY_ENOMEM;
    }
    uv_timer_init(loop, &h->deadlines);
    h->deadlines.data = h;
    uv_timer_init(loop, &h->reaper);
    h->reaper.data = h;
    uv_timer_init(loop, &h->sweeper);
    h->sweeper.data = h;
    h->handles = 3;
    *out = h;
    return 0;
}

size_t sky__h1_active(const sky__h1 *h)
{
    return h ? h->n_active : 0;
}

int sky__h1_takes(sky__h1 *h, const sky_http_request_options *o)
{
    const char *u = o->url;
    if (strncmp(u, "http://", 7) != 0 || o->body_reader || o->recv_buffer_size ||
        o->upload_buffer_size || strpbrk(u, "# \r\n\t"))
        return 0;
    return find_origin(h, u) != NULL || add_origin(h, u) != NULL;
}

/* Whether @p name, of @p len bytes, is @p lit but for ASCII case: by its length first, since
 * every header of every request is asked about five names. */
static int name_is(const char *name, size_t len, const char *lit, size_t lit_len)
{
    return len == lit_len && strncasecmp(name, lit, len) == 0;
}

/* Headers curl would also leave to itself, or that this transport writes. */
static int own_header(const char *name, size_t len)
{
    return name_is(name, len, "host", 4) || name_is(name, len, "content-length", 14) ||
           name_is(name, len, "expect", 6) || name_is(name, len, "transfer-encoding", 17);
}

/* One "Name: value\r\n" line, appended piece by piece: a request's head is on the hot path of
 * every gateway call, and formatting it with printf cost several thousand instructions. */
static int append_line(sky_buf *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (sky_buf_reserve(b, nlen + vlen + 4) < 0)
        return -1;
    char *p = b->data + b->len;
    memcpy(p, name, nlen);
    p += nlen;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vlen);
    p += vlen;
    *p++ = '\r';
    *p++ = '\n';
    *p = '\0';
    b->len = (size_t)(p - b->data);
    return 0;
}

static int append_header(sky_buf *b, const char *name, const char *value)
{
    return append_line(b, name, strlen(name), value, strlen(value));
}

static int append_request_line(sky_buf *b, const char *m, const char *path, const origin *org)
{
    if (sky_buf_append_str(b, m) < 0 || sky_buf_append(b, " ", 1) < 0 ||
        (path[0] != '/' && sky_buf_append(b, "/", 1) < 0) || sky_buf_append_str(b, path) < 0 ||
        sky_buf_append(b, " HTTP/1.1\r\n", 11) < 0)
        return -1;
    return append_header(b, "Host", org->authority);
}

static int append_content_length(sky_buf *b, size_t len)
{
    char digits[24];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + len % 10);
        len /= 10;
    } while (len > 0);
    return append_line(b, "Content-Length", 14, digits + i, sizeof(digits) - i);
}

/* Room for a request's head (its usual size and then some) and its body at once: grown from
 * nothing, the buffer took four allocations a request. */
#define HEAD_ROOM 1024

static int build_request(h1req *r, const sky_http_request_options *o, const origin *org)
{
    const char *m = o->method ? o->method : "GET";
    const char *path = o->url + org->prefix_len;
    int body = strcmp(m, "HEAD") != 0 && (o->body.len > 0 || strcmp(m, "POST") == 0);
    int ua = 0, rc = o->body.len < SIZE_MAX - HEAD_ROOM
                         ? sky_buf_reserve(&r->out, HEAD_ROOM + o->body.len)
                         : SKY_ENOMEM;
    rc = rc ? rc : append_request_line(&r->out, m, path, org);
    size_t n = o->headers ? sky_headers_count(o->headers) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name, *value;
        if (sky_headers_at(o->headers, i, &name, &value) < 0)
            continue;
        size_t len = strlen(name);
        /* no line to forge: a map's names are tokens, and headers.c turns CR and LF in its
         * values into spaces */
        if (own_header(name, len))
            continue;
        ua |= name_is(name, len, "user-agent", 10);
        rc = append_line(&r->out, name, len, value, strlen(value));
    }
    if (rc == 0 && !ua)
        rc = append_header(&r->out, "User-Agent", r->h->user_agent);
    if (rc == 0 && body)
        rc = append_content_length(&r->out, o->body.len);
    if (rc == 0)
        rc = sky_buf_append(&r->out, "\r\n", 2);
    if (rc == 0 && body && o->body.len)
        rc = sky_buf_append(&r->out, o->body.ptr, o->body.len);
    r->is_head = strcmp(m, "HEAD") == 0;
    return rc < 0 ? SKY_ENOMEM : 0;
}

int sky__h1_send(sky__h1 *h, const sky_http_request_options *o, sky_http_request **out_req,
                 sky_error *err)
{
    origin *org = find_origin(h, o->url);
    h1req *r = org ? req_new(h) : NULL;
    if (r == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory starting a request");
    r->kind = SKY__HTTP_KIND_H1;
    r->org = org;
    r->resp_body.cap = o->max_response_bytes ? o->max_response_bytes : h->max_response_bytes;
    int rc = build_request(r, o, org);
    if (rc < 0) {
        req_free(r);
        return sky_error_set(err, rc, "out of memory");
    }
    r->on_headers = o->on_headers;
    r->on_body = o->on_body;
    r->on_done = o->on_done;
    r->user_data = o->user_data;
    r->started_ns = sky_clock_real_ns();
    r->timeout_ms = o->timeout_ms;
    list_push(&h->active, r);
    h->n_active++;
    r->sending = 1;
    dispatch(r);
    r->sending = 0;
    if (out_req)
        *out_req = (sky_http_request *)r;
    return 0;
}

void sky__h1_cancel(sky_http_request *req)
{
    h1req *r = (h1req *)req;
    if (r->canceled || r->ended)
        return;
    r->canceled = 1;
    if (r->in_cb)
        return; /* stopped when the callback returns to us */
    end(r, 1);
}

void sky__h1_free(sky__h1 *h)
{
    if (h == NULL)
        return;
    h->freeing = 1;
    while (h->active) {
        h1req *r = h->active;
        drop_conn(r);
        r->canceled = 1;
        list_remove(&h->active, r);
        h->n_active--;
        r->ended = 1;
        report(r);
    }
    while (h->ended) {
        h1req *r = h->ended;
        list_remove(&h->ended, r);
        report(r);
    }
    for (origin *o = h->origins; o; o = o->next)
        while (o->idle)
            conn_close(o->idle);
    while (h->spare) {
        h1req *r = h->spare;
        h->spare = r->next;
        req_free_memory(r);
    }
    uv_close((uv_handle_t *)&h->deadlines, on_timer_closed);
    uv_close((uv_handle_t *)&h->reaper, on_timer_closed);
    uv_close((uv_handle_t *)&h->sweeper, on_timer_closed);
}
