/* Capped growable buffers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "skyio/buf.h"
#include "skyio/error.h"

void sky_buf_init(sky_buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void sky_buf_free(sky_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}

void sky_buf_reset(sky_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Make room for @p extra more bytes plus the trailing NUL. */
static int buf_reserve(sky_buf *b, size_t extra)
{
    if (extra > b->cap || b->len > b->cap - extra || b->len + extra == SIZE_MAX)
        return SKY_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    /* Never allocate past the cap (and its NUL); cap + 1 cannot wrap here
     * because need <= cap + 1 was checked above. */
    if (n - 1 > b->cap)
        n = b->cap + 1;
    char *p = realloc(b->data, n);
    if (p == NULL)
        return SKY_ENOMEM;
    b->data = p;
    b->alloc = n;
    return 0;
}

int sky_buf_reserve(sky_buf *b, size_t extra)
{
    return buf_reserve(b, extra);
}

int sky_buf_append(sky_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sky_buf_append_str(sky_buf *b, const char *s)
{
    return sky_buf_append(b, s, strlen(s));
}

/* Bytes at the end of @p b that a vsnprintf may write (its NUL among them), within what is
 * allocated and the cap; first grown to a line's worth when there is less. */
#define PRINTF_ROOM 128

static size_t room_for_printf(sky_buf *b)
{
    size_t left = b->cap - b->len; /* len never passes cap */
    if (b->alloc - b->len < PRINTF_ROOM && left > 0)
        (void)buf_reserve(b, left < PRINTF_ROOM ? left : PRINTF_ROOM); /* else the slow way */
    if (b->data == NULL)
        return 0;
    size_t room = b->alloc - b->len; /* the NUL's byte included */
    return left < room - 1 ? left + 1 : room;
}

/*
 * One formatting pass when the text fits in what is allocated (nearly always, once a buffer
 * has grown), two when it must grow: a pass to measure, then one to write. Each pass is a
 * vsnprintf, the cost of a header line.
 */
int sky_buf_printf(sky_buf *b, const char *fmt, ...)
{
    va_list ap;
    size_t room = room_for_printf(b);
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < room) {
        b->len += (size_t)n;
        return 0;
    }
    if (room)
        b->data[b->len] = '\0'; /* a cut attempt leaves nothing behind */
    if (n < 0)
        return SKY_EINVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void sky_buf_consume(sky_buf *b, size_t n)
{
    if (n >= b->len) {
        sky_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

sky_span sky_buf_span(const sky_buf *b)
{
    return sky_span_make(b->data ? b->data : "", b->len);
}

char *sky_buf_detach(sky_buf *b, size_t *out_len)
{
    char *p = b->data;
    if (p == NULL) {
        p = malloc(1);
        if (p == NULL)
            return NULL;
        p[0] = '\0';
    }
    if (out_len)
        *out_len = b->len;
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}
