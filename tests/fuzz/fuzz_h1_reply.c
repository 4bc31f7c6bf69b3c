/*
 * libFuzzer target for the framing of HTTP/1.1 replies (src/http/h1_reply.c), driven as
 * the h2o transport drives it: a head gathered until picohttpparser takes it (1xx heads
 * skipped), then the body framed read by read, then the end of the input as the upstream's
 * close. The first input byte picks the read size and whether the request was HEAD; the
 * rest is what the upstream sent. Invariants: a read's body never exceeds it, and the
 * outcome (status, body bytes, how it ended) is the same read by read as in one read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD_MAX 65536

typedef struct outcome {
    int status, ended; /* ended: 1 complete, -1 malformed, 0 more was wanted */
    uint64_t body_len, hash, heads;
} outcome;

typedef struct feeder {
    sky__h1_reply p;
    char head[HEAD_MAX];
    size_t head_len;
    outcome o;
} feeder;

static void take(feeder *f, const char *p, size_t n)
{
    f->o.body_len += n;
    for (size_t i = 0; i < n; i++)
        f->o.hash = (f->o.hash ^ (unsigned char)p[i]) * UINT64_C(1099511628211);
}

static void body(feeder *f, char *p, size_t n)
{
    size_t b, used;
    if (f->p.state == SKY__H1_DONE) {
        f->o.ended = 1;
        return;
    }
    int rc = sky__h1_reply_body(&f->p, p, n, &b, &used);
    if (b > n || used > n)
        abort();
    take(f, p, rc < 0 ? 0 : b);
    f->o.ended = rc == 1 ? 1 : rc < 0 ? -1 : 0;
}

/* One read of @p n bytes (copied: chunked bodies are decoded in place). */
static void feed(feeder *f, const uint8_t *in, size_t n)
{
    char buf[HEAD_MAX];
    if (f->o.ended || n == 0)
        return;
    if (f->p.state != SKY__H1_HEAD) {
        memcpy(buf, in, n);
        body(f, buf, n);
        return;
    }
    if (f->head_len + n > HEAD_MAX) {
        f->o.ended = -1;
        return;
    }
    memcpy(f->head + f->head_len, in, n);
    f->head_len += n;
    for (;;) {
        sky__phr_header h[SKY__H1_MAX_HEADERS];
        size_t nh = SKY__H1_MAX_HEADERS;
        int used = sky__h1_reply_head(&f->p, f->head, f->head_len, h, &nh);
        if (used <= 0) {
            f->o.ended = used < 0 ? -1 : 0;
            return;
        }
        f->o.heads++;
        f->o.status = f->p.status;
        memmove(f->head, f->head + used, f->head_len - (size_t)used);
        f->head_len -= (size_t)used;
        if (!f->p.interim)
            break;
    }
    size_t rest = f->head_len;
    f->head_len = 0;
    memcpy(buf, f->head, rest);
    if (rest || f->p.state == SKY__H1_DONE)
        body(f, buf, rest);
}

static void run(feeder *f, const uint8_t *data, size_t size, size_t step, int is_head)
{
    memset(&f->o, 0, sizeof(f->o));
    f->head_len = 0;
    sky__h1_reply_init(&f->p, is_head);
    for (size_t at = 0; at < size && f->o.ended == 0; at += step)
        feed(f, data + at, size - at < step ? size - at : step);
    if (f->o.ended == 0 && f->p.state != SKY__H1_HEAD && sky__h1_reply_eof(&f->p))
        f->o.ended = 1; /* the close ends a body read until close */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static feeder whole, pieces;
    if (size < 1 || size > HEAD_MAX)
        return 0;
    size_t step = (size_t)(data[0] & 0x3f) + 1;
    int is_head = data[0] >> 7;
    run(&whole, data + 1, size - 1, size, is_head);
    run(&pieces, data + 1, size - 1, step, is_head);
    if (whole.o.ended != pieces.o.ended || whole.o.status != pieces.o.status)
        abort();
    if (whole.o.ended >= 0 &&
        (whole.o.body_len != pieces.o.body_len || whole.o.hash != pieces.o.hash))
        abort();
    if (whole.o.body_len > size)
        abort();
    return 0;
}
