/*
 * bench_h1client MODE PORT N C: what one keep-alive HTTP/1.1 POST costs the client side,
 * through h2o's own HTTP/1 client (MODE h2o: h2o_http1client_connect_with_pool over an
 * h2o_socketpool_t, on libuv) or through skyio's client (MODE curl: sky_http on curl multi).
 * Sends N non-streamed chat completions (the body bench/wrk-chat.lua sends) to a `skyio mock`
 * on 127.0.0.1:PORT, C in flight, each with the headers the gateway sends upstream; each
 * reply's headers are copied into a sky_headers and its body buffered, as the gateway's
 * pipeline needs them. The first 10% are a warm-up (connections opened); under
 *   valgrind --tool=callgrind --collect-atstart=no bench_h1client ...
 * only the other 90% are counted (CALLGRIND_TOGGLE_COLLECT), so the totals divided by the
 * requests counted are instructions per request. Prints: mode, requests, errors, statuses
 * other than 200, requests counted, sockets the pool holds at the end, the last reply's body bytes
 * and header count in the first slot.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>
#include <h2o/http1client.h>
#include <uv.h>

#include "skyio/headers.h"
#include "skyio/http.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_TOGGLE_COLLECT
#endif

static const char BODY[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
    "\"hello\"}],\"max_tokens\":5}";

typedef struct bench bench;

typedef struct slot {
    bench *b;
    h2o_http1client_t *client;
    char head[512];
    h2o_iovec_t bufs[2];
    sky_headers *reply_headers;
    char *body;
    size_t body_len, body_cap;
    int status;
    struct slot *next_ready; /* h2o mode: finished, to start again after the pool has the socket */
} slot;

struct bench {
    uv_loop_t loop;
    int port;
    size_t n, c, started, finished, errors, not_ok, warmup;
    int collecting;
    char url[128];
    /* h2o */
    h2o_socketpool_t pool;
    h2o_timeout_t io_timeout;
    h2o_http1client_ctx_t ctx;
    uv_check_t check;
    slot *ready;
    /* curl */
    sky_http_client *http;
    sky_headers *req_headers;
};

static void count_done(bench *b, int ok, int status)
{
    b->finished++;
    b->errors += !ok;
    b->not_ok += ok && status != 200;
    if (!b->collecting && b->finished == b->warmup) {
        CALLGRIND_TOGGLE_COLLECT;
        b->collecting = 1;
    }
    if (b->collecting && b->finished == b->n) {
        CALLGRIND_TOGGLE_COLLECT;
        b->collecting = 0;
    }
}

static int body_append(slot *s, const char *p, size_t len)
{
    if (s->body_len + len > s->body_cap) {
        size_t cap = (s->body_len + len) * 2;
        char *nb = realloc(s->body, cap);
        if (!nb)
            return -1;
        s->body = nb;
        s->body_cap = cap;
    }
    memcpy(s->body + s->body_len, p, len);
    s->body_len += len;
    return 0;
}

/* ---- h2o's HTTP/1 client ---- */

static void h2o_start(slot *s);

static void h2o_finish(slot *s, int ok)
{
    count_done(s->b, ok, s->status);
    s->client = NULL;
    s->next_ready = s->b->ready;
    s->b->ready = s;
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    slot *s = client->data;
    h2o_buffer_t *in = client->sock->input;
    if (body_append(s, in->bytes, in->size) != 0)
        errstr = "out of memory";
    h2o_buffer_consume(&client->sock->input, in->size);
    if (errstr == h2o_http1client_error_is_eos)
        h2o_finish(s, 1);
    else if (errstr != NULL)
        h2o_finish(s, 0);
    return errstr != NULL && errstr != h2o_http1client_error_is_eos ? -1 : 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor,
                                       int status, h2o_iovec_t msg, h2o_header_t *headers,
                                       size_t num_headers, int rlen)
{
    (void)minor, (void)msg, (void)rlen;
    slot *s = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        h2o_finish(s, 0);
        return NULL;
    }
    s->status = status;
    sky_headers_clear(s->reply_headers);
    for (size_t i = 0; i < num_headers; i++) {
        sky_span name = sky_span_make(headers[i].name->base, headers[i].name->len);
        sky_span value = sky_span_make(headers[i].value.base, headers[i].value.len);
        if (sky_headers_add(s->reply_headers, name, value) != 0) {
            h2o_finish(s, 0);
            return NULL;
        }
    }
    if (errstr == h2o_http1client_error_is_eos) {
        h2o_finish(s, 1);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    slot *s = client->data;
    if (errstr != NULL) {
        h2o_finish(s, 0);
        return NULL;
    }
    *reqbufs = s->bufs;
    *reqbufcnt = 2;
    *method_is_head = 0;
    return on_head;
}

static void h2o_start(slot *s)
{
    bench *b = s->b;
    int n = snprintf(s->head, sizeof(s->head),
                     "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
                     "content-type: application/json\r\ncontent-length: %zu\r\n"
                     "authorization: Bearer sk-bench-not-a-key\r\nx-request-id: req-%zu\r\n"
                     "user-agent: skyio-bench\r\naccept: application/json\r\n\r\n",
                     b->port, sizeof(BODY) - 1, b->started);
    s->bufs[0] = h2o_iovec_init(s->head, (size_t)n);
    s->bufs[1] = h2o_iovec_init(BODY, sizeof(BODY) - 1);
    s->body_len = 0;
    s->status = 0;
    b->started++;
    h2o_http1client_connect_with_pool(&s->client, s, &b->ctx, &b->pool, on_connect);
}

/* after the loop's I/O: the finished requests' sockets are back in the pool by now */
static void on_check(uv_check_t *h)
{
    bench *b = h->data;
    while (b->ready) {
        slot *s = b->ready;
        b->ready = s->next_ready;
        if (b->started < b->n)
            h2o_start(s);
    }
}

static void run_h2o(bench *b, slot *slots)
{
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", b->port, &sin);
    h2o_socketpool_init_by_address(&b->pool, (struct sockaddr *)&sin, sizeof(sin), 0, b->c);
    h2o_socketpool_set_timeout(&b->pool, &b->loop, 10000); /* idle sockets closed after 10 s */
    h2o_timeout_init(&b->loop, &b->io_timeout, 30000);
    b->ctx.loop = &b->loop;
    b->ctx.io_timeout = &b->io_timeout;
    uv_check_init(&b->loop, &b->check);
    b->check.data = b;
    uv_check_start(&b->check, on_check);
    for (size_t i = 0; i < b->c && b->started < b->n; i++)
        h2o_start(&slots[i]);
    while (b->finished < b->n)
        uv_run(&b->loop, UV_RUN_ONCE);
    printf(" pool_sockets=%zu", b->pool._shared.count);
    uv_check_stop(&b->check);
    uv_close((uv_handle_t *)&b->check, NULL);
    h2o_socketpool_dispose(&b->pool);
    uv_run(&b->loop, UV_RUN_NOWAIT);
}

/* ---- skyio's client on curl ---- */

static void curl_start(slot *s);

static int curl_on_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    (void)req;
    return body_append(ud, data, len);
}

static void curl_on_headers(sky_http_request *req, int status, const sky_headers *h, void *ud)
{
    (void)req;
    slot *s = ud;
    s->status = status;
    sky_headers_clear(s->reply_headers);
    if (sky_headers_add_all(s->reply_headers, h) != 0)
        s->status = -1;
}

static void curl_on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                         void *ud)
{
    (void)req, (void)res;
    slot *s = ud;
    count_done(s->b, err == NULL && s->status > 0, s->status);
    if (s->b->started < s->b->n)
        curl_start(s);
}

static void curl_start(slot *s)
{
    bench *b = s->b;
    char id[32];
    snprintf(id, sizeof(id), "req-%zu", b->started);
    sky_headers_clear(b->req_headers);
    int rc = sky_headers_add(b->req_headers, SKY_SPAN_LIT("content-type"),
                             SKY_SPAN_LIT("application/json"));
    rc |= sky_headers_add(b->req_headers, SKY_SPAN_LIT("authorization"),
                          SKY_SPAN_LIT("Bearer sk-bench-not-a-key"));
    rc |= sky_headers_add(b->req_headers, SKY_SPAN_LIT("x-request-id"), sky_span_cstr(id));
    rc |= sky_headers_add(b->req_headers, SKY_SPAN_LIT("user-agent"), SKY_SPAN_LIT("skyio-bench"));
    rc |= sky_headers_add(b->req_headers, SKY_SPAN_LIT("accept"), SKY_SPAN_LIT("application/json"));
    sky_http_request_options o;
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = b->url;
    o.headers = b->req_headers;
    o.body = sky_span_make(BODY, sizeof(BODY) - 1);
    o.on_headers = curl_on_headers;
    o.on_body = curl_on_body;
    o.on_done = curl_on_done;
    o.user_data = s;
    s->body_len = 0;
    s->status = 0;
    b->started++;
    if (rc != 0 || sky_http_request_send(b->http, &o, NULL, NULL) != 0) {
        count_done(b, 0, 0);
        b->n--; /* not sent: one request fewer to wait for */
    }
}

static int run_curl(bench *b, slot *slots)
{
    sky_http_client_options co;
    sky_http_client_options_init(&co);
    snprintf(b->url, sizeof(b->url), "http://127.0.0.1:%d/v1/chat/completions", b->port);
    b->req_headers = sky_headers_new();
    if (!b->req_headers || sky_http_client_new(&b->loop, &co, &b->http) != 0)
        return -1;
    for (size_t i = 0; i < b->c && b->started < b->n; i++)
        curl_start(&slots[i]);
    while (b->finished < b->n)
        uv_run(&b->loop, UV_RUN_ONCE);
    sky_http_client_free(b->http);
    uv_run(&b->loop, UV_RUN_NOWAIT);
    sky_headers_free(b->req_headers);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "h2o") != 0 && strcmp(argv[1], "curl") != 0)) {
        fprintf(stderr, "usage: bench_h1client h2o|curl PORT N C\n");
        return 2;
    }
    static bench b;
    b.port = atoi(argv[2]);
    b.n = strtoul(argv[3], NULL, 10);
    b.c = strtoul(argv[4], NULL, 10);
    b.warmup = b.n / 10;
    if (b.port <= 0 || b.n < 10 || b.c == 0 || uv_loop_init(&b.loop) != 0)
        return 2;
    slot *slots = calloc(b.c, sizeof(*slots));
    for (size_t i = 0; slots && i < b.c; i++) {
        slots[i].b = &b;
        if (!(slots[i].reply_headers = sky_headers_new()))
            return 1;
    }
    if (!slots)
        return 1;
    printf("%s", argv[1]);
    int rc = strcmp(argv[1], "h2o") == 0 ? (run_h2o(&b, slots), 0) : run_curl(&b, slots);
    printf(" requests=%zu errors=%zu not_200=%zu counted=%zu body_bytes=%zu headers=%zu\n",
           b.finished, b.errors, b.not_ok, b.n - b.warmup, slots[0].body_len,
           sky_headers_count(slots[0].reply_headers));
    for (size_t i = 0; i < b.c; i++) {
        sky_headers_free(slots[i].reply_headers);
        free(slots[i].body);
    }
    free(slots);
    return rc != 0 || b.errors != 0;
}
