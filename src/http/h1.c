/*
 * The h2o transport of the HTTP client (see h1.h). h2o's client does the HTTP: it writes
 * the request we format (request line and header lines, as curl would send them) and
 * parses the reply; the socket pool keeps the connections for the next request.
 *
 * What it does not do, and curl still does for such requests: TLS, HTTP/2, name resolution
 * (an origin must be an IP literal or localhost), streamed or chunked uploads, pausing a
 * reply (a body callback returning SKY_HTTP_PAUSE fails the request). The client's
 * connect_timeout_ms bounds the wait for a connection, as with curl; the request's
 * timeout_ms covers the whole request, connect included.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <h2o.h>
#include <h2o/http1client.h>

#include "h1.h"
#include "skyio/buf.h"
#include "skyio/clock.h"
#include "skyio/headers.h"

#define H1_POOL_CAPACITY 4096 /* connections an origin's pool may hold */
/* An idle pooled connection is closed after this: under the keep-alive of the usual
 * upstreams (uvicorn and Node 5 s, h2o 10 s), so that a pooled connection is ours to close
 * rather than found closed by the upstream (h2o 2.2.5's pool warns on stderr then). */
#define H1_IDLE_MS 4000
#define H1_IO_TIMEOUT_MS 86400000 /* h2o's per-read/write timeout: the request's timer rules */

typedef struct origin {
    struct origin *next;
    char *prefix; /* "http://127.0.0.1:8080": a URL it serves starts with this */
    size_t prefix_len;
    char *authority; /* "127.0.0.1:8080", for Host */
    h2o_socketpool_t pool;
} origin;

typedef struct h1req h1req;
struct h1req {
    int kind; /* SKY__HTTP_KIND_H1; first, as in struct sky_http_request */
    sky__h1 *h;
    h2o_http1client_t *client; /* NULL once h2o is done with it */
    uv_timer_t timer;          /* the request's timeout; the request is freed when it closes */
    sky_buf out;               /* request line, headers and body */
    h2o_iovec_t iov;
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
    h2o_timeout_t io_timeout;
    h2o_http1client_ctx_t ctx;
    origin *origins;
    h1req *active; /* in h2o's hands */
    h1req *ended;  /* over, done callback pending (from the reaper) */
    size_t n_active;
    uv_timer_t reaper;
    uv_check_t check; /* reports whole replies once h2o has pooled their sockets */
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

/* ---- completion ---- */

static void on_req_closed(uv_handle_t *t)
{
    h1req *r = t->data;
    sky_buf_free(&r->out);
    sky_buf_free(&r->resp_body);
    sky_headers_free(r->resp_headers);
    free(r);
}

static void on_reap(uv_timer_t *t);
static void on_check(uv_check_t *t);

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
    res.total_us = (sky_clock_real_ns() - r->started_ns) / 1000u;
    if (r->canceled && r->err_code == 0)
        sky_error_set(&e, SKY_ECANCELED, "request canceled");
    else if (r->err_code)
        sky_error_set(&e, r->err_code, "%s", r->err_msg);
    e.retryable = e.code != SKY_ECANCELED && r->retryable;
    e.http_status = res.status;
    sky__http_enter(c);
    r->on_done((sky_http_request *)r, &res, e.code ? &e : NULL, r->user_data);
    uv_close((uv_handle_t *)&r->timer, on_req_closed);
    return sky__http_leave(c);
}

enum { DEFER_NONE, DEFER_TIMER, DEFER_CHECK };

/* Out of h2o's hands: report now (from a callback of h2o's or the loop's), from the
 * reaper (a 0 ms timer) when inside sky_http_request_send or a cancel, or from the check
 * handle (see whole). */
static void end(h1req *r, int defer)
{
    sky__h1 *h = r->h;
    r->ended = 1;
    uv_timer_stop(&r->timer);
    list_remove(&h->active, r);
    h->n_active--;
    if (defer) {
        list_push(&h->ended, r);
        if (defer == DEFER_CHECK)
            uv_check_start(&h->check, on_check);
        else
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

/*
 * A whole reply: reported after this turn's I/O callbacks, once h2o has put the socket
 * back in the pool, so a request the done callback sends (the next call a concurrency
 * limit let through, say) reuses the connection instead of opening one beside it.
 */
static void whole(h1req *r)
{
    end(r, DEFER_CHECK);
}

static void report_ended(sky__h1 *h)
{
    sky_http_client *c = h->client;
    while (h->ended) {
        h1req *r = h->ended;
        list_remove(&h->ended, r);
        report(r);
    }
    sky__http_maybe_free(c);
}

static void on_reap(uv_timer_t *t)
{
    report_ended(t->data);
}

static void on_check(uv_check_t *t)
{
    uv_check_stop(t);
    report_ended(t->data);
}

static void on_timeout(uv_timer_t *t)
{
    h1req *r = t->data;
    if (r->client)
        h2o_http1client_cancel(r->client);
    r->client = NULL;
    /* the code curl gives its own connect timeout, so callers treat both alike */
    fail(r, SKY_ETIMEDOUT, r->connecting ? "connect timed out" : "request timed out", 1);
}

/* The first wait: the connect timeout, or the request's timeout when that comes first. */
static void start_timer(h1req *r)
{
    long ct = r->h->connect_timeout_ms, t = r->timeout_ms;
    r->connecting = ct > 0 && (t <= 0 || ct < t);
    long first = r->connecting ? ct : t;
    if (first > 0)
        uv_timer_start(&r->timer, on_timeout, (uint64_t)first, 0);
}

/* Connected: what is left of the request's timeout, if it has one, from here on. */
static void connected(h1req *r)
{
    if (!r->connecting)
        return;
    r->connecting = 0;
    uv_timer_stop(&r->timer);
    if (r->timeout_ms <= 0)
        return;
    uint64_t spent = (sky_clock_real_ns() - r->started_ns) / 1000000u;
    uint64_t left = spent < (uint64_t)r->timeout_ms ? (uint64_t)r->timeout_ms - spent : 1;
    uv_timer_start(&r->timer, on_timeout, left, 0);
}

/* ---- h2o's callbacks ---- */

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

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    h1req *r = client->data;
    int stop = r->canceled;
    if (!stop && client->sock && client->sock->input->size > 0)
        stop = take_body(r, client->sock->input->bytes, client->sock->input->size) != 0;
    if (client->sock)
        h2o_buffer_consume(&client->sock->input, client->sock->input->size);
    if (!stop && errstr == NULL)
        return 0;
    r->client = NULL; /* h2o closes it (or pools its socket) once this returns */
    if (stop)
        end(r, 0);
    else if (errstr == h2o_http1client_error_is_eos)
        whole(r);
    else
        fail(r, SKY_EPARTIAL, errstr, 1);
    return -1;
}

static int copy_headers(h1req *r, const h2o_header_t *headers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sky_span name = sky_span_make(headers[i].name->base, headers[i].name->len);
        sky_span value = sky_span_make(headers[i].value.base, headers[i].value.len);
        if (sky_headers_add(r->resp_headers, name, value) < 0)
            return -1;
    }
    return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor,
                                       int status, h2o_iovec_t msg, h2o_header_t *headers,
                                       size_t num_headers, int rlen)
{
    h1req *r = client->data;
    (void)minor, (void)msg, (void)rlen;
    if (r->canceled || (errstr != NULL && errstr != h2o_http1client_error_is_eos)) {
        r->client = NULL;
        if (r->canceled)
            end(r, 0);
        else
            fail(r, SKY_ECONNRESET, errstr, 1);
        return NULL;
    }
    r->status = status;
    if (copy_headers(r, headers, num_headers) < 0) {
        r->client = NULL;
        fail(r, SKY_ENOMEM, "out of memory storing response headers", 0);
        return NULL;
    }
    if (r->on_headers) {
        r->in_cb = 1;
        sky__http_enter(r->h->client);
        r->on_headers((sky_http_request *)r, status, r->resp_headers, r->user_data);
        if (user_cb_done(r)) {
            r->client = NULL;
            end(r, 0);
            return NULL;
        }
    }
    if (errstr == h2o_http1client_error_is_eos) {
        r->client = NULL;
        whole(r);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    h1req *r = client->data;
    if (errstr != NULL || r->canceled) {
        r->client = NULL;
        if (r->canceled)
            end(r, r->sending);
        else
            fail(r, SKY_ECONNECT, errstr, 1);
        return NULL;
    }
    connected(r);
    *reqbufs = &r->iov;
    *reqbufcnt = 1;
    *method_is_head = r->is_head;
    return on_head;
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
static int literal_address(const char *host, long port, struct sockaddr_storage *ss, socklen_t *len)
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
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    return -1;
}

/* curl's URL parser reads the host and port; the prefix is the URL up to its path. */
static int origin_address(const char *url, struct sockaddr_storage *ss, socklen_t *len)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        rc = literal_address(host, strtol(port, NULL, 10), ss, len);
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
    socklen_t sl;
    if (alen == 0 || memchr(auth, '@', alen) || origin_address(url, &ss, &sl) < 0)
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
    h2o_socketpool_init_by_address(&o->pool, (struct sockaddr *)&ss, sl, 0, H1_POOL_CAPACITY);
    h2o_socketpool_set_timeout(&o->pool, h->loop, H1_IDLE_MS);
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
    if (h->user_agent == NULL) {
        free(h);
        return SKY_ENOMEM;
    }
    h2o_timeout_init(loop, &h->io_timeout, H1_IO_TIMEOUT_MS);
    h->ctx.loop = loop;
    h->ctx.io_timeout = &h->io_timeout;
    uv_timer_init(loop, &h->reaper);
    h->reaper.data = h;
    uv_check_init(loop, &h->check);
    h->check.data = h;
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

static int unsafe(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Headers curl would also leave to itself, or that this transport writes. */
static int own_header(const char *name)
{
    return strcasecmp(name, "host") == 0 || strcasecmp(name, "content-length") == 0 ||
           strcasecmp(name, "expect") == 0 || strcasecmp(name, "transfer-encoding") == 0;
}

static int build_request(h1req *r, const sky_http_request_options *o, const origin *org)
{
    const char *m = o->method ? o->method : "GET";
    const char *path = o->url + org->prefix_len;
    int body = strcmp(m, "HEAD") != 0 && (o->body.len > 0 || strcmp(m, "POST") == 0);
    int ua = 0, rc = sky_buf_printf(&r->out, "%s %s%s HTTP/1.1\r\nHost: %s\r\n", m,
                                    path[0] == '/' ? "" : "/", path, org->authority);
    size_t n = o->headers ? sky_headers_count(o->headers) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name, *value;
        if (sky_headers_at(o->headers, i, &name, &value) < 0 || own_header(name))
            continue;
        if (unsafe(name) || unsafe(value))
            return SKY_EINVAL;
        ua |= strcasecmp(name, "user-agent") == 0;
        rc = sky_buf_printf(&r->out, "%s: %s\r\n", name, value);
    }
    if (rc == 0 && !ua)
        rc = sky_buf_printf(&r->out, "User-Agent: %s\r\n", r->h->user_agent);
    if (rc == 0 && body)
        rc = sky_buf_printf(&r->out, "Content-Length: %zu\r\n", o->body.len);
    if (rc == 0)
        rc = sky_buf_append(&r->out, "\r\n", 2);
    if (rc == 0 && body && o->body.len)
        rc = sky_buf_append(&r->out, o->body.ptr, o->body.len);
    r->is_head = strcmp(m, "HEAD") == 0;
    r->iov = h2o_iovec_init(r->out.data, r->out.len);
    return rc < 0 ? SKY_ENOMEM : 0;
}

int sky__h1_send(sky__h1 *h, const sky_http_request_options *o, sky_http_request **out_req,
                 sky_error *err)
{
    origin *org = find_origin(h, o->url);
    h1req *r = org ? calloc(1, sizeof(*r)) : NULL;
    if (r == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory starting a request");
    r->kind = SKY__HTTP_KIND_H1;
    r->h = h;
    sky_buf_init(&r->out, SIZE_MAX);
    sky_buf_init(&r->resp_body,
                 o->max_response_bytes ? o->max_response_bytes : h->max_response_bytes);
    r->resp_headers = sky_headers_new();
    int rc = r->resp_headers ? build_request(r, o, org) : SKY_ENOMEM;
    if (rc < 0) {
        sky_buf_free(&r->out);
        sky_headers_free(r->resp_headers);
        free(r);
        return sky_error_set(err, rc,
                             rc == SKY_EINVAL ? "a header holds a line break" : "out of memory");
    }
    r->on_headers = o->on_headers;
    r->on_body = o->on_body;
    r->on_done = o->on_done;
    r->user_data = o->user_data;
    r->started_ns = sky_clock_real_ns();
    uv_timer_init(h->loop, &r->timer);
    r->timer.data = r;
    r->timeout_ms = o->timeout_ms;
    start_timer(r);
    list_push(&h->active, r);
    h->n_active++;
    r->sending = 1;
    h2o_http1client_connect_with_pool(&r->client, r, &h->ctx, &org->pool, on_connect);
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
    if (r->client)
        h2o_http1client_cancel(r->client);
    r->client = NULL;
    end(r, DEFER_TIMER);
}

static void on_h1_closed(uv_handle_t *t)
{
    sky__h1 *h = t->data;
    while (h->origins) {
        origin *o = h->origins;
        h->origins = o->next;
        free(o->prefix);
        free(o->authority);
        free(o);
    }
    free(h->user_agent);
    free(h);
}

void sky__h1_free(sky__h1 *h)
{
    if (h == NULL)
        return;
    while (h->active) {
        h1req *r = h->active;
        if (r->client)
            h2o_http1client_cancel(r->client);
        r->client = NULL;
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
    /* libuv finishes closes in the reverse order of the uv_close calls: the reaper, closed
     * first, goes last, after the pools' and the timeout's timers (inside this memory). */
    uv_close((uv_handle_t *)&h->reaper, on_h1_closed);
    uv_close((uv_handle_t *)&h->check, NULL);
    for (origin *o = h->origins; o; o = o->next)
        h2o_socketpool_dispose(&o->pool);
    h2o_timeout_dispose(h->loop, &h->io_timeout);
}
