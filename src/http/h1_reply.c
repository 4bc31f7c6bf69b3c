/* The framing of an HTTP/1.1 reply on picohttpparser's results (see h1_reply.h). */
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "h1_reply.h"

int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status,
                       const char **msg, size_t *msg_len, sky__phr_header *headers,
                       size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(sky__phr_chunked *decoder, char *buf, size_t *bufsz);

void sky__h1_reply_init(sky__h1_reply *p, int is_head)
{
    memset(p, 0, sizeof(*p));
    p->is_head = is_head;
    p->chunked.consume_trailer = 1; /* through the last CRLF, so the connection is clean */
}

static int name_is(const sky__phr_header *h, const char *name)
{
    return h->name && h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Whether the comma-separated list @p v (as in Connection or Transfer-Encoding) holds the
 * token @p tok; @p last: only as its last element. */
static int has_token(const char *v, size_t len, const char *tok, int last)
{
    size_t tl = strlen(tok), i = 0;
    int found = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e > s)
            found = e - s == tl && strncasecmp(v + s, tok, tl) == 0 ? 1 : (last ? 0 : found);
    }
    return found;
}

/* A Content-Length value: digits only; -1 otherwise. */
static int parse_length(const char *v, size_t len, uint64_t *out)
{
    uint64_t n = 0;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return 0;
}

/* The framing a final head gives the body; -1 for a Content-Length that cannot be. */
static int frame(sky__h1_reply *p, int minor, const sky__phr_header *h, size_t n)
{
    int chunked = 0, te = 0, cl = 0, close = minor == 0;
    uint64_t length = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        if (name_is(&h[i], "transfer-encoding")) {
            te = 1;
            chunked = has_token(h[i].value, h[i].value_len, "chunked", 1);
        } else if (name_is(&h[i], "content-length")) {
            if (parse_length(h[i].value, h[i].value_len, &v) < 0 || (cl && v != length))
                return -1;
            cl = 1;
            length = v;
        } else if (name_is(&h[i], "connection")) {
            if (has_token(h[i].value, h[i].value_len, "close", 0))
                close = 1;
            else if (has_token(h[i].value, h[i].value_len, "keep-alive", 0))
                close = 0;
        }
    }
    p->keep_alive = !close;
    if (p->is_head || p->status == 204 || p->status == 304)
        p->state = SKY__H1_DONE;
    else if (te)
        p->state = chunked ? SKY__H1_CHUNKED : SKY__H1_CLOSE;
    else if (cl)
        p->state = length ? SKY__H1_LENGTH : SKY__H1_DONE;
    else
        p->state = SKY__H1_CLOSE;
    p->left = length;
    if (p->state == SKY__H1_CLOSE)
        p->keep_alive = 0;
    return 0;
}

int sky__h1_reply_head(sky__h1_reply *p, const char *buf, size_t len, sky__phr_header *hdrs,
                       size_t *n)
{
    int minor, status;
    const char *msg;
    size_t msg_len;
    int rc = phr_parse_response(buf, len, &minor, &status, &msg, &msg_len, hdrs, n, 0);
    if (rc == -2)
        return 0;
    if (rc < 0 || status < 100 || status == 101)
        return -1;
    p->status = status;
    p->interim = status < 200;
    if (!p->interim && frame(p, minor, hdrs, *n) < 0)
        return -1;
    return rc;
}

static int body_chunked(sky__h1_reply *p, char *buf, size_t len, size_t *body, size_t *used)
{
    size_t size = len;
    ssize_t rest = phr_decode_chunked(&p->chunked, buf, &size);
    if (rest == -1)
        return -1;
    *body = size;
    if (rest == -2) {
        *used = len;
        return 0;
    }
    *used = len - (size_t)rest;
    p->state = SKY__H1_DONE;
    return 1;
}

int sky__h1_reply_body(sky__h1_reply *p, char *buf, size_t len, size_t *body, size_t *used)
{
    *body = *used = 0;
    switch (p->state) {
    case SKY__H1_CHUNKED:
        return body_chunked(p, buf, len, body, used);
    case SKY__H1_LENGTH:
        *body = *used = len < p->left ? len : (size_t)p->left;
        p->left -= *body;
        if (p->left)
            return 0;
        p->state = SKY__H1_DONE;
        return 1;
    case SKY__H1_CLOSE:
        *body = *used = len;
        return 0;
    case SKY__H1_DONE:
        return 1;
    default:
        return -1;
    }
}

int sky__h1_reply_eof(const sky__h1_reply *p)
{
    return p->state == SKY__H1_CLOSE;
}
