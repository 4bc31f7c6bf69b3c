/*
 * The HTTP client: libcurl's multi-socket interface driven by libuv, in the
 * shape of curl's multi-uv example. curl tells us which sockets to watch and
 * when to wake it (socket and timer callbacks); libuv tells curl when a socket
 * is ready or the timer fired; finished transfers are reported once each.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "skyio/buf.h"
#include "skyio/clock.h"
#include "skyio/http.h"
#include "skyio/log.h"

#include "h1.h"

/* idle connections a client keeps open for reuse, when max_total_connections sets none */
#define IDLE_KEEP 1024
/* what libcurl 7.x's HTTP/2 layer reads from a connection at once (its H2_BUFSIZE) */
#define H2_CONN_READ 32768L

#define SKY_DEFAULT_MAX_RESPONSE (64u * 1024u * 1024u)
#define SKY_USER_AGENT "skyio/0.1.0"

typedef struct shard shard;

/*
 * A socket curl asked us to watch. Freed in uv_close's callback.
 * A connection's socket is "kept": its watch outlives curl's CURL_POLL_REMOVE,
 * which curl sends every time the connection goes back to its cache, and ends
 * only when curl closes the socket through on_close_socket.
 */
typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    shard *shard;
    int events; /* UV_READABLE / UV_WRITABLE being polled; 0 when stopped */
    int kept;   /* a connection opened through on_open_socket */
    int idle;   /* kept, and curl has no transfer on it */
    struct sock_ctx *prev, *next;
} sock_ctx;

/*
 * One curl multi handle with its timer and sockets. libcurl 7.88 looks through
 * every connection to a host when it starts a transfer, so one multi handle
 * holding 10,000 connections spends most of its time searching; several
 * shards, each with a share of the transfers, keep those searches short.
 */
struct shard {
    sky_http_client *client;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout */
    sock_ctx *socks;  /* sockets being watched */
    size_t n_active;
};

struct sky_http_request {
    int kind; /* SKY__HTTP_KIND_CURL; first, as in h1.c's requests */
    sky_http_client *client;
    shard *shard;
    CURL *easy;
    struct curl_slist *slist;
    char *body_copy;
    sky_headers *resp_headers;
    sky_buf resp_body;
    int stop;      /* STOP_*: why one of our callbacks stopped the transfer */
    int stop_code; /* ... with this SKY_E code, where it has one */
    sky_http_headers_cb on_headers;
    sky_http_body_cb on_body;
    sky_http_done_cb on_done;
    sky_http_read_cb body_reader;
    void *user_data;
    uint64_t started_ns;
    long upload_buffer_size; /* curl's, for this transfer: see on_progress */
    int headers_reported;
    int canceled;
    int paused;                    /* CURLPAUSE_RECV / CURLPAUSE_SEND bits now held */
    int no_recycle;                /* paused once, or buffers of its own: curl keeps such state */
    sky_http_request *prev, *next; /* in client->active or client->canceled */
    char errbuf[CURL_ERROR_SIZE];
};

struct sky_http_client {
    uv_loop_t *loop;
    shard *shards;
    int n_shards;
    uv_timer_t reaper; /* reports cancelled requests from the loop */
    sky_http_client_options opts;
    CURLSH *share; /* TLS sessions, for every transfer */
    char *ca_file;
    char *user_agent;
    sky_http_request *active;   /* transfers in curl's hands */
    sky_http_request *canceled; /* removed from curl, callback pending */
    size_t n_active;
    CURL **spare; /* easy handles kept for reuse */
    size_t n_spare, cap_spare;
    int no_proxy_env; /* no proxy variable set: spare curl its getenv calls */
    /* HTTP_PROXY when http_proxy is unset: libcurl reads only the lower-case name for
     * http:// URLs (a guard for CGI programs), Python and the SDKs read both */
    char *http_proxy_upper;
    int h2c_one_use;      /* h2c on a libcurl that cannot reuse such a connection */
    int h2_pauses_at_end; /* libcurl before 8.0: see recv_buffer_size */
    int in_callback;
    int free_requested;
    int closing;
    int pending_closes;
    sock_ctx **kept; /* kept sockets by descriptor */
    size_t n_kept;
    sky__h1 *h1; /* the h2o transport, with SKY_HTTP_TRANSPORT_H2O */
};

/* Why one of our callbacks stopped a transfer. The error itself is built only when the
 * request ends: most never fail, and a sky_error is a third of a KiB. */
enum {
    STOP_NONE,
    STOP_HEADERS_OOM,
    STOP_SOCKET_OOM,
    STOP_MULTI_OOM,
    STOP_BODY_CB,
    STOP_BODY_CAP,
    STOP_READER
};

static void check_multi_info(shard *s);
static void client_finish_free(sky_http_client *c);
static void on_sock_closed(uv_handle_t *h);
static void on_poll(uv_poll_t *p, int status, int events);
static void shard_out_of_memory(shard *s);
static void on_reap(uv_timer_t *t);

/* ---- lists ---- */

static void list_push(sky_http_request **head, sky_http_request *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head)
        (*head)->prev = r;
    *head = r;
}

static void list_remove(sky_http_request **head, sky_http_request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* ---- options ---- */

void sky_http_client_options_init(sky_http_client_options *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 300000;
    o->max_response_bytes = SKY_DEFAULT_MAX_RESPONSE;
    o->verify_peer = 1;
    o->http2 = 1;
    o->upload_buffer_size = 16384;
    o->shards = 1;
}

void sky_http_request_options_init(sky_http_request_options *o)
{
    memset(o, 0, sizeof(*o));
    o->body_length = -1;
}

/* ---- error mapping ---- */

int sky_http_map_curl_code(int curl_code, int *out_retryable)
{
    int retry = 1, code;
    switch ((CURLcode)curl_code) {
    case CURLE_OK:
        code = SKY_OK;
        retry = 0;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        code = SKY_ETIMEDOUT;
        break;
    case CURLE_COULDNT_CONNECT:
        code = SKY_ECONNECT;
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        code = SKY_ERESOLVE;
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        code = SKY_ECONNRESET;
        break;
    case CURLE_PARTIAL_FILE:
        code = SKY_EPARTIAL;
        break;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        code = SKY_EPROTO;
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        code = SKY_ETLS;
        retry = 0;
        break;
    case CURLE_OUT_OF_MEMORY:
        code = SKY_ENOMEM;
        retry = 0;
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        code = SKY_ECANCELED;
        retry = 0;
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        code = SKY_EINVAL;
        retry = 0;
        break;
    default:
        code = SKY_ETRANSPORT;
        break;
    }
    if (out_retryable)
        *out_retryable = retry;
    return code;
}

/* ---- curl <-> libuv ---- */

static void sock_unwatch(shard *s, sock_ctx *sc)
{
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        s->socks = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    if (sc->kept && (size_t)sc->fd < s->client->n_kept)
        s->client->kept[sc->fd] = NULL;
    uv_poll_stop(&sc->poll);
    if (s->multi)
        curl_multi_assign(s->multi, sc->fd, NULL);
    uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_ctx *sc = h->data;
    sky_http_client *c = sc->shard->client;
    free(sc);
    if (--c->pending_closes == 0 && c->closing)
        client_finish_free(c);
}

/*
 * Poll for @p events, only when they change: libuv 1.44's uv_poll_start takes the
 * descriptor out of epoll and puts it back each time, two system calls.
 */
static void sock_watch(sock_ctx *sc, int events)
{
    if (events == sc->events)
        return;
    if (events)
        uv_poll_start(&sc->poll, events, on_poll);
    else
        uv_poll_stop(&sc->poll);
    sc->events = events;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *sc = p->data;
    shard *s = sc->shard;
    int flags = 0, running;
    if (sc->idle) {
        /* The peer closed or wrote to a connection at rest. Stop polling it, or a
         * level-triggered wake would repeat; curl finds out when it next uses it. */
        sock_watch(sc, 0);
        return;
    }
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    CURLMcode mc = curl_multi_socket_action(s->multi, sc->fd, flags, &running);
    check_multi_info(s);
    if (mc == CURLM_OUT_OF_MEMORY)
        shard_out_of_memory(s);
}

static sock_ctx *sock_new(shard *s, curl_socket_t fd)
{
    sock_ctx *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    if (uv_poll_init_socket(s->client->loop, &sc->poll, fd) != 0) {
        free(sc);
        return NULL;
    }
    sc->fd = fd;
    sc->shard = s;
    sc->poll.data = sc;
    sc->next = s->socks;
    if (s->socks)
        s->socks->prev = sc;
    s->socks = sc;
    s->client->pending_closes++;
    return sc;
}

static sock_ctx *kept_sock(const sky_http_client *c, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < c->n_kept ? c->kept[fd] : NULL;
}

static int kept_reserve(sky_http_client *c, curl_socket_t fd)
{
    if ((size_t)fd < c->n_kept)
        return 0;
    size_t n = c->n_kept ? c->n_kept : 64;
    while (n <= (size_t)fd)
        n *= 2;
    sock_ctx **v = realloc(c->kept, n * sizeof(*v));
    if (v == NULL)
        return SKY_ENOMEM;
    memset(v + c->n_kept, 0, (n - c->n_kept) * sizeof(*v));
    c->kept = v;
    c->n_kept = n;
    return 0;
}

/*
 * curl opens each connection's socket here, so that its watch can be kept for as long as
 * the connection lives: between two transfers on a connection, stopping and starting the
 * watch again cost four system calls of the eleven a request made.
 */
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
    sky_http_request *r = userp;
    sky_http_client *c = r->client;
    int type = a->socktype;
#ifdef SOCK_CLOEXEC
    type |= SOCK_CLOEXEC; /* a child skyio spawns (az for a token) must not hold it */
#endif
    curl_socket_t fd = socket(a->family, type, a->protocol);
    if (fd < 0 || purpose != CURLSOCKTYPE_IPCXN)
        return fd;
    sock_ctx *sc = kept_sock(c, fd);
    if (sc) /* closed without on_close_socket: the descriptor number is a new socket's now */
        sock_unwatch(sc->shard, sc);
    sc = NULL;
    if (kept_reserve(c, fd) < 0 || (sc = sock_new(r->shard, fd)) == NULL) {
        close(fd);
        r->stop = STOP_SOCKET_OOM; /* curl will say "could not connect": the cause is ours */
        return CURL_SOCKET_BAD;
    }
    sc->kept = 1;
    sc->idle = 1; /* until curl asks for events on it */
    c->kept[fd] = sc;
    return fd;
}

/* curl closes every socket it opened through on_open_socket here. */
static int on_close_socket(void *userp, curl_socket_t fd)
{
    sky_http_client *c = userp;
    sock_ctx *sc = kept_sock(c, fd);
    if (sc)
        sock_unwatch(sc->shard, sc); /* before the descriptor can be reused */
    return close(fd);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    shard *s = userp;
    sock_ctx *sc = socketp ? socketp : kept_sock(s->client, fd);
    if (action == CURL_POLL_REMOVE) {
        if (sc && sc->kept) {
            /* Back in curl's cache: keep reading, so a peer's close is seen, never writing,
             * and let the loop end while only such connections remain. */
            sc->idle = 1;
            sock_watch(sc, sc->events & UV_READABLE);
            uv_unref((uv_handle_t *)&sc->poll);
        } else if (sc) {
            sock_unwatch(s, sc);
        }
        return 0;
    }
    if (sc == NULL && (sc = sock_new(s, fd)) == NULL) {
        /* curl fails the transfer (every one of this multi handle) as aborted by a
         * callback: say why for the one that asked, rather than let it read as canceled */
        sky_http_request *r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        if (r != NULL && r->stop == STOP_NONE)
            r->stop = STOP_SOCKET_OOM;
        return -1;
    }
    if (socketp == NULL)
        curl_multi_assign(s->multi, fd, sc);
    sc->idle = 0;
    uv_ref((uv_handle_t *)&sc->poll);
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    sock_watch(sc, events);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    shard *s = t->data;
    int running;
    CURLMcode mc = curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(s);
    if (mc == CURLM_OUT_OF_MEMORY)
        shard_out_of_memory(s);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    shard *s = userp;
    (void)multi;
    if (timeout_ms < 0) {
        uv_timer_stop(&s->timer);
        return 0;
    }
    /* 0 means "now", but acting from inside curl's callback is not allowed:
     * let the loop call back at once instead. */
    uv_timer_start(&s->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- per-transfer callbacks ---- */

static void report_headers(sky_http_request *r)
{
    long status = 0;
    if (r->headers_reported)
        return;
    r->headers_reported = 1;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (r->on_headers) {
        r->client->in_callback++;
        r->on_headers(r, (int)status, r->resp_headers, r->user_data);
        r->client->in_callback--;
    }
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    sky_http_request *r = userp;
    size_t len = size * n;
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        /* Interim replies (100 Continue, 103) have headers of their own. */
        if (status >= 200)
            report_headers(r);
        return len;
    }
    if (sky_headers_parse_line(r->resp_headers, data, len) == SKY_ENOMEM) {
        r->stop = STOP_HEADERS_OOM;
        return 0;
    }
    return len;
}

static size_t on_write(char *data, size_t size, size_t n, void *userp)
{
    sky_http_request *r = userp;
    size_t len = size * n;
    report_headers(r);
    if (r->canceled)
        return 0;
    if (r->on_body) {
        r->client->in_callback++;
        int stop = r->on_body(r, data, len, r->user_data);
        r->client->in_callback--;
        if (stop == SKY_HTTP_PAUSE && !r->canceled) {
            r->paused |= CURLPAUSE_RECV;
            r->no_recycle = 1;
            return CURL_WRITEFUNC_PAUSE;
        }
        if (stop) {
            r->stop = STOP_BODY_CB;
            return 0;
        }
        return len;
    }
    int rc = sky_buf_append(&r->resp_body, data, len);
    if (rc < 0) {
        r->stop = STOP_BODY_CAP;
        r->stop_code = rc;
        return 0;
    }
    return len;
}

static size_t on_read(char *out, size_t size, size_t n, void *userp)
{
    sky_http_request *r = userp;
    long got = r->body_reader(out, size * n, r->user_data);
    if (got == SKY_HTTP_PAUSE) {
        r->paused |= CURLPAUSE_SEND;
        r->no_recycle = 1;
        return CURL_READFUNC_PAUSE;
    }
    if (got < 0) {
        r->stop = STOP_READER;
        r->stop_code = (int)got;
        return CURL_READFUNC_ABORT;
    }
    return (size_t)got;
}

/*
 * curl 7.88 keeps a transfer's upload buffer (16 KiB at the least) from its first body byte
 * until the transfer ends, and over HTTP/2 every body goes through it. An in-memory body is
 * all sent at once, so while thousands of requests wait for their replies these buffers,
 * mostly untouched yet a page or two resident each, were a third of the client's memory.
 * Setting the size again makes curl 7.88 free the buffer (and allocate a new one should it
 * ever need one, for a retry; a curl without the buffer just stores the size). Doing it
 * from here, as soon as the last byte has gone, lets the next transfer reuse the same
 * block. curl counts a byte as sent once the connection has taken it, so the buffer holds
 * nothing by then.
 */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    sky_http_request *r = userp;
    (void)dltotal;
    (void)dlnow;
    if (ultotal > 0 && ulnow >= ultotal) {
        curl_easy_setopt(r->easy, CURLOPT_UPLOAD_BUFFERSIZE, r->upload_buffer_size);
        curl_easy_setopt(r->easy, CURLOPT_NOPROGRESS, 1L);
    }
    return 0;
}

/* ---- completion ---- */

static void request_free(sky_http_request *r)
{
    sky_http_client *c = r->client;
    if (r->easy) {
        if (c->n_spare < c->cap_spare && !c->closing && !r->no_recycle) {
            curl_easy_reset(r->easy);
            c->spare[c->n_spare++] = r->easy;
        } else {
            curl_easy_cleanup(r->easy);
        }
    }
    free(r->slist); /* one block: see request_build_headers */
    free(r->body_copy);
    sky_headers_free(r->resp_headers);
    sky_buf_free(&r->resp_body);
    free(r);
}

static void fill_response(sky_http_request *r, sky_http_response *res)
{
    long status = 0, version = 0, connects = 0;
    memset(res, 0, sizeof(*res));
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &version);
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
    res->status = (int)status;
    res->headers = r->resp_headers;
    res->body = sky_buf_span(&r->resp_body);
    res->http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : version ? 1 : 0;
    res->reused_connection = status != 0 && connects == 0;
    res->total_us = (sky_clock_real_ns() - r->started_ns) / 1000u;
}

/* Turn curl's result into our error, keeping curl's own words (redacted:
 * they can quote a URL, and a URL can carry a SAS signature). */
static void record_curl_error(const sky_http_request *r, CURLcode cc, sky_error *e)
{
    int retryable;
    int code = sky_http_map_curl_code(cc, &retryable);
    if (e->code == 0) {
        sky_buf msg;
        sky_buf_init(&msg, SKY_ERROR_MESSAGE_MAX);
        const char *text = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);
        if (sky_redact(sky_span_cstr(text), &msg) < 0)
            sky_buf_reset(&msg);
        sky_error_set(e, code, "%s", msg.len ? msg.data : curl_easy_strerror(cc));
        sky_buf_free(&msg);
        e->retryable = retryable;
    }
    e->curl_code = (int)cc;
}

/* What our own callback stopped the transfer for: the first cause, before curl's. */
static void stop_error(const sky_http_request *r, sky_error *e)
{
    switch (r->stop) {
    case STOP_HEADERS_OOM:
        sky_error_set(e, SKY_ENOMEM, "out of memory storing response headers");
        break;
    case STOP_SOCKET_OOM:
        sky_error_set(e, SKY_ENOMEM, "out of memory watching a connection's socket");
        break;
    case STOP_MULTI_OOM:
        sky_error_set(e, SKY_ENOMEM, "out of memory in curl's bookkeeping of the transfers");
        break;
    case STOP_BODY_CB:
        sky_error_set(e, SKY_ECANCELED, "canceled by the body callback");
        break;
    case STOP_BODY_CAP:
        sky_error_set(e, r->stop_code, "response body larger than the %zu-byte limit",
                      r->resp_body.cap);
        break;
    case STOP_READER:
        sky_error_set(e, r->stop_code, "request body reader failed");
        break;
    default:
        break;
    }
}

static void request_complete(sky_http_request *r, CURLcode cc)
{
    sky_http_client *c = r->client;
    sky_http_response res;
    sky_error e;
    sky_error_clear(&e);
    if (r->canceled) {
        sky_error_set(&e, SKY_ECANCELED, "request canceled");
    } else {
        stop_error(r, &e);
        if (cc != CURLE_OK)
            record_curl_error(r, cc, &e);
    }
    fill_response(r, &res);
    e.http_status = res.status;
    c->in_callback++;
    r->on_done(r, &res, e.code ? &e : NULL, r->user_data);
    c->in_callback--;
    request_free(r);
}

/* Out of curl's hands: the request is now only in the client's lists. */
static void request_detach(sky_http_request *r)
{
    sky_http_client *c = r->client;
    curl_multi_remove_handle(r->shard->multi, r->easy);
    list_remove(&c->active, r);
    c->n_active--;
    r->shard->n_active--;
}

static void check_multi_info(shard *s)
{
    sky_http_client *c = s->client;
    CURLMsg *msg;
    int pending;
    /* a done callback may free the client: then the multi handle is gone */
    while (!c->closing && (msg = curl_multi_info_read(s->multi, &pending)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        sky_http_request *r = NULL;
        CURLcode cc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        request_detach(r);
        request_complete(r, cc);
    }
    if (c->free_requested && c->in_callback == 0)
        sky_http_client_free(c);
}

/*
 * curl_multi_socket_action ran out of memory in its own books (a socket it could not
 * hash, say): a transfer may now wait on a socket nobody watches, with no timer to end
 * it, and the loop may even stop with it pending. End the shard's transfers instead:
 * the reaper reports each with SKY_ENOMEM, from the loop.
 */
static void shard_out_of_memory(shard *s)
{
    sky_http_client *c = s->client;
    if (c->closing)
        return;
    for (sky_http_request *r = c->active, *next; r != NULL; r = next) {
        next = r->next;
        if (r->shard != s || r->canceled)
            continue;
        if (r->stop == STOP_NONE)
            r->stop = STOP_MULTI_OOM;
        request_detach(r);
        list_push(&c->canceled, r);
    }
    uv_timer_start(&c->reaper, on_reap, 0, 0);
}

static void on_reap(uv_timer_t *t)
{
    sky_http_client *c = t->data;
    sky_http_request *r = c->active, *next;
    for (; r != NULL; r = next) {
        next = r->next;
        if (!r->canceled)
            continue;
        request_detach(r);
        list_push(&c->canceled, r);
    }
    while (c->canceled) {
        r = c->canceled;
        list_remove(&c->canceled, r);
        request_complete(r, CURLE_ABORTED_BY_CALLBACK);
    }
    if (c->free_requested && c->in_callback == 0)
        sky_http_client_free(c);
}

/* ---- client ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* curl reads these on every transfer; with none set, telling curl "no
 * proxy" up front saves a scan of the environment per request. */
static int proxy_env_set(void)
{
    static const char *const names[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                        "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(names); i++) {
        const char *v = getenv(names[i]);
        if (v && v[0])
            return 1;
    }
    return 0;
}

static int client_copy_options(sky_http_client *c, const sky_http_client_options *o)
{
    if (o)
        c->opts = *o;
    else
        sky_http_client_options_init(&c->opts);
    const char *ca = c->opts.ca_file;
    if (ca == NULL || ca[0] == '\0')
        ca = getenv("SSL_CERT_FILE");
    if (ca && ca[0]) {
        c->ca_file = strdup(ca);
        if (c->ca_file == NULL)
            return SKY_ENOMEM;
    }
    c->user_agent = dup_or_null(c->opts.user_agent ? c->opts.user_agent : SKY_USER_AGENT);
    if (c->user_agent == NULL)
        return SKY_ENOMEM;
    if (c->opts.max_response_bytes == 0)
        c->opts.max_response_bytes = SKY_DEFAULT_MAX_RESPONSE;
    /* curl's own bounds for its upload buffer */
    if (c->opts.upload_buffer_size < 16384)
        c->opts.upload_buffer_size = 16384;
    if (c->opts.upload_buffer_size > 2 * 1024 * 1024)
        c->opts.upload_buffer_size = 2 * 1024 * 1024;
    c->no_proxy_env = !proxy_env_set();
    const char *upper = getenv("HTTP_PROXY"), *lower = getenv("http_proxy");
    if (upper && upper[0] && !(lower && lower[0]) && !(c->http_proxy_upper = strdup(upper)))
        return SKY_ENOMEM;
    /* libcurl before 8.0 fails every transfer after the first on an h2c connection with
     * "Error in the HTTP2 framing layer" (it stacks a second HTTP/2 layer on reuse; curl
     * pull request 10643). There, each h2c request gets a connection of its own. */
    c->h2c_one_use =
        c->opts.http2_prior_knowledge && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000;
    c->h2_pauses_at_end = curl_version_info(CURLVERSION_NOW)->version_num < 0x080000;
    c->opts.ca_file = c->ca_file;
    c->opts.user_agent = c->user_agent;
    return 0;
}

static int shard_setup(sky_http_client *c, shard *s)
{
    s->client = c;
    s->multi = curl_multi_init();
    if (s->multi == NULL)
        return SKY_ENOMEM;
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* the limits are the client's: each shard takes its share */
    long n = c->n_shards;
    /* curl keeps 4 idle connections per transfer running at the moment: when the count dips
     * between waves (a batch adding work as results are written) it closes connections the
     * next wave opens again. Keep them: an idle connection costs a socket, a reconnect a
     * handshake on both sides. */
    long keep = c->opts.max_total_connections > 0 ? c->opts.max_total_connections : IDLE_KEEP;
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (keep + n - 1) / n);
    if (c->opts.max_host_connections > 0)
        curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                          (c->opts.max_host_connections + n - 1) / n);
    if (c->opts.max_total_connections > 0)
        curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                          (c->opts.max_total_connections + n - 1) / n);
    return 0;
}

/*
 * Without a share, curl 7.88 gives every easy handle a TLS session cache of its own when
 * its first transfer starts, whatever the scheme: five entries, most of a KiB for each
 * request in flight. One cache for the client costs that once, and lets a new connection
 * resume a session another one made.
 */
static int client_setup_share(sky_http_client *c)
{
    c->share = curl_share_init();
    if (c->share == NULL)
        return SKY_ENOMEM;
    CURLSHcode sc = curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (sc != CURLSHE_OK) /* curl makes the session cache here */
        return sc == CURLSHE_NOMEM ? SKY_ENOMEM : SKY_EINTERNAL;
    return 0;
}

static int client_setup_shards(sky_http_client *c)
{
    c->n_shards = c->opts.shards < 1 ? 1 : c->opts.shards > 64 ? 64 : c->opts.shards;
    c->shards = calloc((size_t)c->n_shards, sizeof(*c->shards));
    if (c->shards == NULL)
        return SKY_ENOMEM;
    for (int i = 0; i < c->n_shards; i++) {
        int rc = shard_setup(c, &c->shards[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void client_release(sky_http_client *c)
{
    for (int i = 0; c->shards && i < c->n_shards; i++)
        if (c->shards[i].multi)
            curl_multi_cleanup(c->shards[i].multi);
    free(c->shards);
    for (size_t i = 0; i < c->n_spare; i++)
        curl_easy_cleanup(c->spare[i]);
    free(c->spare);
    if (c->share)
        curl_share_cleanup(c->share); /* after every easy handle that used it */
    free(c->kept);
    free(c->ca_file);
    free(c->user_agent);
    free(c->http_proxy_upper);
    free(c);
}

int sky_http_client_new(uv_loop_t *loop, const sky_http_client_options *options,
                        sky_http_client **out_client)
{
    static int global_done;
    if (loop == NULL || out_client == NULL)
        return SKY_EINVAL;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return SKY_EINTERNAL;
        global_done = 1;
    }
    sky_http_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SKY_ENOMEM;
    c->loop = loop;
    c->cap_spare = 256;
    c->spare = calloc(c->cap_spare, sizeof(*c->spare));
    int rc = c->spare ? client_copy_options(c, options) : SKY_ENOMEM;
    if (rc == 0)
        rc = client_setup_share(c);
    if (rc == 0)
        rc = client_setup_shards(c);
    if (rc < 0) {
        client_release(c);
        return rc;
    }
    for (int i = 0; i < c->n_shards; i++) {
        uv_timer_init(loop, &c->shards[i].timer);
        c->shards[i].timer.data = &c->shards[i];
    }
    uv_timer_init(loop, &c->reaper);
    c->reaper.data = c;
    /* with a proxy variable set, every request goes through curl, which honours it */
    if (c->opts.transport == SKY_HTTP_TRANSPORT_H2O && c->no_proxy_env &&
        sky__h1_new(c, loop, &c->opts, &c->h1) < 0) {
        sky_http_client_free(c);
        return SKY_ENOMEM;
    }
    *out_client = c;
    return 0;
}

size_t sky_http_client_active(const sky_http_client *c)
{
    return c->n_active + sky__h1_active(c->h1);
}

void sky__http_enter(sky_http_client *c)
{
    c->in_callback++;
}

int sky__http_leave(sky_http_client *c)
{
    c->in_callback--;
    return c->free_requested && c->in_callback == 0;
}

void sky__http_maybe_free(sky_http_client *c)
{
    if (c->free_requested && c->in_callback == 0)
        sky_http_client_free(c);
}

static void on_client_handle_closed(uv_handle_t *h)
{
    sky_http_client *c = h->data;
    if (--c->pending_closes == 0)
        client_finish_free(c);
}

static void on_shard_timer_closed(uv_handle_t *h)
{
    shard *s = h->data;
    if (--s->client->pending_closes == 0)
        client_finish_free(s->client);
}

static void client_finish_free(sky_http_client *c)
{
    client_release(c);
}

void sky_http_client_free(sky_http_client *c)
{
    if (c == NULL || c->closing)
        return;
    if (c->in_callback > 0) {
        c->free_requested = 1;
        return;
    }
    /* From here on sends fail and a callback freeing again is a no-op. */
    c->closing = 1;
    c->free_requested = 0;
    c->in_callback++;
    sky__h1_free(c->h1);
    c->h1 = NULL;
    while (c->active) {
        sky_http_request *r = c->active;
        request_detach(r);
        r->canceled = 1;
        request_complete(r, CURLE_ABORTED_BY_CALLBACK);
    }
    while (c->canceled) {
        sky_http_request *r = c->canceled;
        list_remove(&c->canceled, r);
        request_complete(r, CURLE_ABORTED_BY_CALLBACK);
    }
    c->in_callback--;
    /* Stop watching curl's sockets before curl closes them, then let curl
     * close its connections; the client goes when the last handle has. */
    c->pending_closes += c->n_shards + 1;
    for (int i = 0; i < c->n_shards; i++) {
        shard *s = &c->shards[i];
        while (s->socks)
            sock_unwatch(s, s->socks);
        curl_multi_cleanup(s->multi);
        s->multi = NULL;
        uv_close((uv_handle_t *)&s->timer, on_shard_timer_closed);
    }
    uv_close((uv_handle_t *)&c->reaper, on_client_handle_closed);
}

/* ---- requests ---- */

/* One line of the list: "Name: value", or "Name;" (curl's way to send an empty value). */
static size_t header_line(char *out, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    memcpy(out, name, nl);
    if (vl == 0) {
        memcpy(out + nl, ";", 2);
        return nl + 2;
    }
    memcpy(out + nl, ": ", 2);
    memcpy(out + nl + 2, value, vl + 1);
    return nl + vl + 3;
}

/* A POST, or any method with a body: what curl sends as HTTPREQ_POST. */
static int sends_body(const sky_http_request_options *o)
{
    const char *m = o->method ? o->method : "GET";
    return strcmp(m, "HEAD") != 0 &&
           (o->body_reader != NULL || o->body.len > 0 || strcmp(m, "POST") == 0);
}

/*
 * The request's headers as curl's list, nodes and text in one allocation (curl only
 * reads the list, and it lives until the request is freed): one malloc where
 * curl_slist_append makes two a line, for every request in flight.
 *
 * Two lines turn curl's own headers off: "Expect:" (curl would otherwise wait for
 * 100 Continue) and, for a body the caller gave no type, "Content-Type:". curl would
 * label it application/x-www-form-urlencoded, which is never what we send: OpenAI
 * refuses a JSON body so labelled, and servers built on FastAPI do not parse it.
 */
static int request_build_headers(sky_http_request *r, const sky_http_request_options *o)
{
    static const char expect[] = "Expect:";
    static const char no_type[] = "Content-Type:";
    size_t n = o->headers ? sky_headers_count(o->headers) : 0, text = sizeof(expect);
    int untyped = sends_body(o) && (n == 0 || sky_headers_get(o->headers, "Content-Type") == NULL);
    size_t extra = untyped ? 2 : 1;
    const char *name, *value;
    for (size_t i = 0; i < n; i++) {
        (void)sky_headers_at(o->headers, i, &name, &value);
        text += strlen(name) + strlen(value) + 3;
    }
    if (untyped)
        text += sizeof(no_type);
    struct curl_slist *l = malloc((n + extra) * sizeof(*l) + text);
    if (l == NULL)
        return SKY_ENOMEM;
    char *p = (char *)(l + n + extra);
    for (size_t i = 0; i < n; i++) {
        (void)sky_headers_at(o->headers, i, &name, &value);
        l[i].data = p;
        l[i].next = &l[i + 1];
        p += header_line(p, name, value);
    }
    memcpy(p, expect, sizeof(expect));
    l[n].data = p;
    l[n].next = NULL;
    if (untyped) {
        p += sizeof(expect);
        memcpy(p, no_type, sizeof(no_type));
        l[n].next = &l[n + 1];
        l[n + 1].data = p;
        l[n + 1].next = NULL;
    }
    r->slist = l;
    return 0;
}

/* Whether this request may share a connection as an HTTP/2 stream. */
static int may_multiplex(const sky_http_client *c, const char *url)
{
    if (c->opts.http2_prior_knowledge)
        return !c->h2c_one_use;
    return c->opts.http2 && strncasecmp(url, "https:", 6) == 0;
}

/*
 * curl's receive buffer for a transfer. HTTP/1.1 reads the socket into it. HTTP/2 reads the
 * socket into the connection's buffer and copies each stream's share here, so there a
 * small one costs calls, not system calls, and saves memory for every stream in flight:
 * except that libcurl before 8.0, when one read of the connection holds more for a stream
 * than this buffer can take, pauses nghttp2 inside that DATA frame and later hands out
 * the rest of the frame without giving nghttp2 another turn, so the frame's END_STREAM
 * waits for the peer's next bytes. A streamed answer then ended only at the server's idle
 * timeout (h2o's GOAWAY, 10 s later). A buffer as large as that read (curl's 32 KiB) is
 * never overrun by one read, so there HTTP/2 gets at least that much.
 */
static long recv_buffer_size(const sky_http_client *c, const sky_http_request_options *o)
{
    int multiplex = may_multiplex(c, o->url);
    long n = o->recv_buffer_size > 0        ? o->recv_buffer_size
             : c->opts.recv_buffer_size > 0 ? c->opts.recv_buffer_size
             : multiplex                    ? 1024L
                                            : 2048L;
    int h2 =
        c->opts.http2_prior_knowledge || (c->opts.http2 && strncasecmp(o->url, "https:", 6) == 0);
    if (h2 && c->h2_pauses_at_end && n < H2_CONN_READ)
        n = H2_CONN_READ;
    return n;
}

/*
 * Keep the first failure. curl copies string options, so out of memory can fail
 * one, and the request must not go without it: no URL, GET for a DELETE, the
 * system's CA bundle for the caller's, no proxy where one was set.
 */
static void keep_first(CURLcode *first, CURLcode cc)
{
    if (*first == CURLE_OK)
        *first = cc;
}

static CURLcode request_set_method(sky_http_request *r, const sky_http_request_options *o)
{
    CURL *e = r->easy;
    const char *m = o->method ? o->method : "GET";
    int has_body = o->body_reader != NULL || o->body.len > 0 || r->body_copy != NULL;
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return CURLE_OK;
    }
    if (o->body_reader) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, r);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_length);
    } else if (has_body || strcmp(m, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body_copy ? r->body_copy : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body.len);
        /* Over HTTP/1.1 a small body goes out with the request's headers, in no upload
         * buffer, and the progress calls would cost CPU for nothing. */
        if (r->body_copy && may_multiplex(r->client, o->url)) {
            curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
            curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        }
    }
    if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0)
        return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    return CURLE_OK;
}

static CURLcode request_set_transport(sky_http_request *r, const sky_http_request_options *o)
{
    sky_http_client *c = r->client;
    CURL *e = r->easy;
    CURLcode first = curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, c->share);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->slist);
    keep_first(&first, curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent));
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 0L);
    /* Waiting for a connection that may multiplex only pays where HTTP/2
     * can be had; on plain HTTP/1.1 it would hold the first wave of
     * requests until the first reply arrives. */
    int multiplex = may_multiplex(c, o->url);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, multiplex ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (c->no_proxy_env)
        keep_first(&first, curl_easy_setopt(e, CURLOPT_PROXY, ""));
    else if (c->http_proxy_upper) /* NULL: curl's own choice from the environment */
        keep_first(&first, curl_easy_setopt(
                               e, CURLOPT_PROXY,
                               strncasecmp(o->url, "http:", 5) == 0 ? c->http_proxy_upper : NULL));
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, recv_buffer_size(c, o));
    /* By default curl's smallest upload buffer: bodies here are small, and with
     * thousands of transfers in flight its 64 KiB default adds up. */
    long ubuf = o->upload_buffer_size > 0 ? o->upload_buffer_size : c->opts.upload_buffer_size;
    r->upload_buffer_size = ubuf;
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, ubuf);
    long ver = CURL_HTTP_VERSION_1_1;
    if (c->opts.http2_prior_knowledge)
        ver = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    else if (c->opts.http2)
        ver = CURL_HTTP_VERSION_2TLS;
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, ver);
    if (c->h2c_one_use) { /* a client's spare handles stay with it: no need to clear */
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->opts.verify_peer ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->opts.verify_peer ? 2L : 0L);
    if (c->ca_file)
        keep_first(&first, curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file));
    return first;
}

static sky_http_request *request_alloc(sky_http_client *c, const sky_http_request_options *o)
{
    sky_http_request *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->client = c;
    /* curl sizes its receive buffer once per easy handle: other sizes need a new one,
     * and it is not kept for reuse. */
    r->no_recycle = o->recv_buffer_size > 0 || o->upload_buffer_size > 0;
    r->easy = c->n_spare && !r->no_recycle ? c->spare[--c->n_spare] : curl_easy_init();
    r->resp_headers = sky_headers_new();
    sky_buf_init(&r->resp_body,
                 o->max_response_bytes ? o->max_response_bytes : c->opts.max_response_bytes);
    if (o->body.len > 0 && o->body_reader == NULL) {
        r->body_copy = malloc(o->body.len);
        if (r->body_copy)
            memcpy(r->body_copy, o->body.ptr, o->body.len);
    }
    if (r->easy == NULL || r->resp_headers == NULL ||
        (o->body.len > 0 && o->body_reader == NULL && r->body_copy == NULL)) {
        request_free(r);
        return NULL;
    }
    return r;
}

/* The shard with the fewest transfers: connections spread evenly, and with one
 * shard (the default) nothing changes. */
static shard *pick_shard(sky_http_client *c)
{
    shard *best = &c->shards[0];
    for (int i = 1; i < c->n_shards; i++)
        if (c->shards[i].n_active < best->n_active)
            best = &c->shards[i];
    return best;
}

int sky_http_request_send(sky_http_client *c, const sky_http_request_options *o,
                          sky_http_request **out_req, sky_error *err)
{
    if (c == NULL || o == NULL || o->url == NULL || o->on_done == NULL)
        return sky_error_set(err, SKY_EINVAL, "request needs a client, a url and on_done");
    if (c->closing || c->free_requested)
        return sky_error_set(err, SKY_ESTATE, "the client is being freed");
    if (c->h1 && sky__h1_takes(c->h1, o))
        return sky__h1_send(c->h1, o, out_req, err);
    sky_http_request *r = request_alloc(c, o);
    if (r == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory starting a request");
    r->on_headers = o->on_headers;
    r->on_body = o->on_body;
    r->on_done = o->on_done;
    r->body_reader = o->body_reader;
    r->user_data = o->user_data;
    if (request_build_headers(r, o) < 0) {
        request_free(r);
        return sky_error_set(err, SKY_ENOMEM, "out of memory building request headers");
    }
    CURLcode cc = request_set_transport(r, o);
    keep_first(&cc, request_set_method(r, o));
    if (cc != CURLE_OK) {
        request_free(r);
        return sky_error_set(err, sky_http_map_curl_code(cc, NULL), "setting up the request: %s",
                             curl_easy_strerror(cc));
    }
    r->started_ns = sky_clock_real_ns();
    r->shard = pick_shard(c);
    CURLMcode mc = curl_multi_add_handle(r->shard->multi, r->easy);
    if (mc != CURLM_OK) {
        request_free(r);
        return sky_error_set(err, mc == CURLM_OUT_OF_MEMORY ? SKY_ENOMEM : SKY_EINTERNAL,
                             "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    list_push(&c->active, r);
    c->n_active++;
    r->shard->n_active++;
    if (out_req)
        *out_req = r;
    return 0;
}

void sky_http_request_resume(sky_http_request *r)
{
    if (r == NULL || r->kind == SKY__HTTP_KIND_H1 || r->canceled || r->paused == 0)
        return;
    sky_http_client *c = r->client;
    r->paused = 0;
    /* curl may hand the held chunk to the body callback from inside the call:
     * a cancel or a free from there must wait for the loop, as in any callback. */
    c->in_callback++;
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
    c->in_callback--;
    if (c->free_requested && c->in_callback == 0)
        sky_http_client_free(c);
}

void sky_http_request_cancel(sky_http_request *r)
{
    sky_http_client *c;
    if (r && r->kind == SKY__HTTP_KIND_H1) {
        sky__h1_cancel(r);
        return;
    }
    if (r == NULL || r->canceled)
        return;
    c = r->client;
    r->canceled = 1;
    if (c->in_callback > 0) {
        /* curl forbids removing a transfer from inside its own callbacks:
         * the reaper does it from the loop. */
        uv_timer_start(&c->reaper, on_reap, 0, 0);
        return;
    }
    request_detach(r);
    list_push(&c->canceled, r);
    uv_timer_start(&c->reaper, on_reap, 0, 0);
}
