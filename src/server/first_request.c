/*
 * The first request of a plain-HTTP connection, read and checked before h2o sees it.
 *
 * Why: h2o 2.2's HTTP/1 reader answers a head it cannot take (more than 100 headers, a head
 * over about 400 KiB, a malformed line) with a fixed text "400 Bad Request" written straight
 * to the socket, and closes a connection too slow to send its request without a word; it
 * has no hook for either. It does take what is already in a socket's input buffer when it
 * accepts the socket. So the first request of each plain connection is read here; one that
 * passes goes to h2o whole, one that does not gets OpenAI's error JSON with its status.
 * Later requests on a keep-alive connection are h2o's alone (its text answers stay for
 * those), and TLS connections go to h2o at once (their bytes are encrypted here).
 */
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "first_request.h"

/* picohttpparser, which libh2o carries and exports (its header is not installed). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

/* After an error answer: read and drop what the client still sends, for at most this long,
 * so that closing does not reset the connection before the client has read the answer. */
#define LINGER_MS 2000
#define READ_ROOM 16384

enum { READING, ANSWERING, LINGERING, DONE };

struct sky__first {
    uv_tcp_t *tcp;
    uv_timer_t timer;
    uv_write_t write;
    uv_shutdown_t shut;
    int refs; /* the timer, a write, a shutdown: freed when none is left */
    int state;
    sky__first_cb cb;
    void *ud;
    size_t max_body;
    char *buf;
    size_t len, cap;
    size_t need; /* 0 while the head is read; then the request's length */
    char answer[768];
};

static void release(sky__first *f)
{
    if (--f->refs == 0)
        free(f);
}

static void on_timer_closed(uv_handle_t *h)
{
    release(h->data);
}

static void finish(sky__first *f, int refused)
{
    if (f->state == DONE)
        return;
    f->state = DONE;
    uv_read_stop((uv_stream_t *)f->tcp);
    uv_timer_stop(&f->timer);
    f->cb(f->ud, refused ? NULL : f->buf, refused ? 0 : f->len, refused);
    free(f->buf);
    f->buf = NULL;
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

void sky__first_cancel(sky__first *f)
{
    finish(f, 1);
}

/* ---- an error answer, then a lingering close ---- */

static void on_shut(uv_shutdown_t *s, int status)
{
    (void)status;
    release(s->data);
}

static void on_written(uv_write_t *w, int status)
{
    sky__first *f = w->data;
    if (f->state == DONE || status < 0) {
        finish(f, 1);
        release(f);
        return;
    }
    f->state = LINGERING;
    f->shut.data = f;
    /* the write's hold on f passes to the shutdown */
    if (uv_shutdown(&f->shut, (uv_stream_t *)f->tcp, on_shut) != 0) {
        finish(f, 1);
        release(f);
    }
}

static void on_timer(uv_timer_t *t);

static void refuse(sky__first *f, int status, const char *reason, const char *code,
                   const char *message)
{
    char body[384];
    int blen = snprintf(body, sizeof(body),
                        "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
                        "\"param\":null,\"code\":\"%s\"}}",
                        message, code);
    int n = snprintf(f->answer, sizeof(f->answer),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason, blen, body);
    uv_buf_t b = uv_buf_init(f->answer, (unsigned)n);
    f->state = ANSWERING;
    f->write.data = f;
    f->refs++;
    if (uv_write(&f->write, (uv_stream_t *)f->tcp, &b, 1, on_written) != 0) {
        f->refs--;
        finish(f, 1);
        return;
    }
    uv_timer_start(&f->timer, on_timer, LINGER_MS, 0);
}

/* ---- reading ---- */

static void on_timer(uv_timer_t *t)
{
    sky__first *f = t->data;
    if (f->state == READING && f->len > 0)
        refuse(f, 408, "Request Timeout", "request_timeout", "the request did not arrive in time");
    else
        finish(f, 1); /* nothing asked, or the answer's lingering is over */
}

/* Whether the head names @p name (lower case). */
static int is_header(const struct phr_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* The head is read: go on for the body it announces, or hand over now. */
static void head_read(sky__first *f, size_t head_len, const struct phr_header *h, size_t n)
{
    const struct phr_header *length = NULL;
    for (size_t i = 0; i < n; i++) {
        if (is_header(&h[i], "transfer-encoding") || is_header(&h[i], "expect")) {
            finish(f, 0); /* a chunked body, or one sent after 100 Continue: h2o reads it */
            return;
        }
        if (length == NULL && is_header(&h[i], "content-length"))
            length = &h[i];
    }
    if (length == NULL) {
        finish(f, 0);
        return;
    }
    size_t body = h2o_strtosize(length->value, length->value_len);
    if (body == SIZE_MAX) {
        refuse(f, 400, "Bad Request", "invalid_request",
               "the Content-Length header is not a number");
        return;
    }
    if (body > f->max_body) {
        refuse(f, 413, "Payload Too Large", "request_too_large",
               "the request body is over the size limit");
        return;
    }
    f->need = head_len + body;
    if (f->len >= f->need)
        finish(f, 0);
}

static size_t count_lines(const char *p, size_t len)
{
    size_t n = 0;
    for (const char *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        n++;
    return n;
}

static void examine(sky__first *f)
{
    if (f->need) {
        if (f->len >= f->need)
            finish(f, 0);
        return;
    }
    if (f->len >= 12 && memcmp(f->buf, "PRI * HTTP/2", 12) == 0) {
        finish(f, 0); /* HTTP/2 with prior knowledge: h2o's */
        return;
    }
    size_t scan = f->len < SKY_FIRST_MAX_LINE ? f->len : SKY_FIRST_MAX_LINE;
    if (memchr(f->buf, '\n', scan) == NULL) {
        if (f->len >= SKY_FIRST_MAX_LINE)
            refuse(f, 414, "URI Too Long", "uri_too_long", "the request line is too long");
        return;
    }
    struct phr_header h[SKY_FIRST_MAX_HEADERS];
    size_t n = SKY_FIRST_MAX_HEADERS, method_len, path_len;
    const char *method, *path;
    int minor;
    scan = f->len < SKY_FIRST_MAX_HEAD ? f->len : SKY_FIRST_MAX_HEAD;
    int rc =
        phr_parse_request(f->buf, scan, &method, &method_len, &path, &path_len, &minor, h, &n, 0);
    if (rc > 0)
        head_read(f, (size_t)rc, h, n);
    else if (rc == -2 && f->len >= SKY_FIRST_MAX_HEAD)
        refuse(f, 431, "Request Header Fields Too Large", "headers_too_large",
               "the request headers are too large");
    else if (rc == -1 && count_lines(f->buf, scan) > SKY_FIRST_MAX_HEADERS)
        refuse(f, 431, "Request Header Fields Too Large", "headers_too_large",
               "the request has too many headers");
    else if (rc == -1)
        refuse(f, 400, "Bad Request", "invalid_request", "the request is not valid HTTP");
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    sky__first *f = h->data;
    (void)hint;
    if (f->state != READING)
        f->len = 0; /* after an answer: what comes is dropped */
    if (f->cap - f->len < 4096) {
        size_t want = f->len + READ_ROOM;
        if (f->need + READ_ROOM > want)
            want = f->need + READ_ROOM; /* the announced body in one go */
        if (want < f->cap * 2)
            want = f->cap * 2;
        char *nb = realloc(f->buf, want);
        if (nb == NULL) {
            *out = uv_buf_init(NULL, 0); /* UV_ENOBUFS: the read ends the connection */
            return;
        }
        f->buf = nb;
        f->cap = want;
    }
    *out = uv_buf_init(f->buf + f->len, (unsigned)(f->cap - f->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    sky__first *f = s->data;
    (void)b;
    if (n < 0) {
        finish(f, 1); /* gone, or done sending before its request was whole */
        return;
    }
    if (n == 0 || f->state != READING)
        return;
    f->len += (size_t)n;
    examine(f);
}

sky__first *sky__first_start(uv_tcp_t *tcp, size_t max_body, uint64_t timeout_ms, sky__first_cb cb,
                             void *user_data)
{
    sky__first *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->tcp = tcp;
    f->cb = cb;
    f->ud = user_data;
    f->max_body = max_body;
    f->refs = 1;
    uv_timer_init(tcp->loop, &f->timer);
    f->timer.data = f;
    tcp->data = f;
    if (uv_read_start((uv_stream_t *)tcp, on_alloc, on_read) != 0) {
        uv_close((uv_handle_t *)&f->timer, on_timer_closed);
        return NULL;
    }
    uv_timer_start(&f->timer, on_timer, timeout_ms, 0);
    return f;
}
