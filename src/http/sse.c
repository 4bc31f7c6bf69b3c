/*
 * Incremental text/event-stream parser, following the WHATWG HTML rules for
 * interpreting an event stream. It sits on the path of every streamed token,
 * so lines are found with memchr and processed straight from the caller's
 * chunk whenever a whole line is inside it; only a line split across chunks
 * is copied into the line buffer.
 */
#include "skyio/sse.h"
#include "skyio/error.h"

#define SSE_DEFAULT_MAX ((size_t)1 << 20)
/* Keeps cap + 1 (the data buffer's cap) and the buffers' own cap + 1 from wrapping. */
#define SSE_MAX_CAP (SIZE_MAX / 4)

enum {
    SSE_CR_PENDING = 1 << 0, /* the last chunk ended in CR: a leading LF ends nothing */
    SSE_BOM_DONE = 1 << 1,   /* the stream's first bytes were checked for a BOM */
    SSE_STOPPED = 1 << 2,    /* the callback asked to stop */
    SSE_TOOBIG = 1 << 3,     /* a cap was passed; bytes were lost, so the stream is dead */
    SSE_NOMEM = 1 << 4       /* an allocation failed; same reason */
};

static const char bom_bytes[3] = {'\xEF', '\xBB', '\xBF'};

void sky_sse_parser_init(sky_sse_parser *p, size_t max_event_bytes, sky_sse_event_cb cb,
                         void *user_data)
{
    size_t cap = max_event_bytes ? max_event_bytes : SSE_DEFAULT_MAX;
    if (cap > SSE_MAX_CAP)
        cap = SSE_MAX_CAP;
    sky_buf_init(&p->line, cap);
    /* One more byte: the data buffer also holds the "\n" that dispatch strips. */
    sky_buf_init(&p->data, cap + 1);
    sky_buf_init(&p->event, cap);
    sky_buf_init(&p->id, cap);
    p->retry_ms = -1;
    p->state = 0;
    p->max_event = cap;
    p->cb = cb;
    p->user_data = user_data;
    p->events = 0;
}

void sky_sse_parser_free(sky_sse_parser *p)
{
    sky_buf_free(&p->line);
    sky_buf_free(&p->data);
    sky_buf_free(&p->event);
    sky_buf_free(&p->id);
}

/* The sticky result of an earlier failure, or 0 while the parser is usable. */
static int sse_dead(const sky_sse_parser *p)
{
    if (p->state & SSE_STOPPED)
        return SKY_ECANCELED;
    if (p->state & SSE_TOOBIG)
        return SKY_ETOOBIG;
    if (p->state & SSE_NOMEM)
        return SKY_ENOMEM;
    return 0;
}

/* Record a failure so that every later call reports it too. */
static int sse_fail(sky_sse_parser *p, int rc)
{
    if (rc == SKY_ECANCELED)
        p->state |= SSE_STOPPED;
    else if (rc == SKY_ETOOBIG)
        p->state |= SSE_TOOBIG;
    else
        p->state |= SSE_NOMEM;
    return rc;
}

/* The block is over: forget what it built. The last event id persists. */
static void sse_reset_block(sky_sse_parser *p)
{
    sky_buf_reset(&p->data);
    sky_buf_reset(&p->event);
    p->retry_ms = -1;
}

static int sse_dispatch(sky_sse_parser *p)
{
    if (p->data.len == 0) {
        sse_reset_block(p);
        return 0;
    }
    sky_sse_event ev;
    ev.data = sky_span_make(p->data.data, p->data.len - 1); /* strip the last "\n" */
    ev.event = sky_buf_span(&p->event);
    ev.id = sky_buf_span(&p->id);
    ev.retry_ms = p->retry_ms;
    ev.is_done = sky_span_eq_cstr(ev.data, "[DONE]");
    p->events++;
    int stop = p->cb ? p->cb(p->user_data, &ev) : 0;
    sse_reset_block(p);
    return stop ? SKY_ECANCELED : 0;
}

static int sse_set(sky_buf *b, const char *v, size_t n)
{
    sky_buf_reset(b);
    return sky_buf_append(b, v, n);
}

/* The specification ignores a retry value unless it is all ASCII digits. */
static void sse_retry(sky_sse_parser *p, const char *v, size_t n)
{
    if (n == 0)
        return;
    int64_t ms = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - (unsigned)'0';
        if (d > 9 || ms > (INT64_MAX - (int64_t)d) / 10)
            return; /* not a number, or too large to mean anything */
        ms = ms * 10 + (int64_t)d;
    }
    p->retry_ms = ms;
}

static int sse_field(sky_sse_parser *p, const char *name, size_t nlen, const char *v, size_t n)
{
    int rc = 0;
    if (nlen == 4 && memcmp(name, "data", 4) == 0) {
        rc = sky_buf_append(&p->data, v, n);
        if (rc == 0)
            rc = sky_buf_append(&p->data, "\n", 1);
    } else if (nlen == 5 && memcmp(name, "event", 5) == 0) {
        rc = sse_set(&p->event, v, n);
    } else if (nlen == 2 && memcmp(name, "id", 2) == 0) {
        if (n == 0 || memchr(v, '\0', n) == NULL)
            rc = sse_set(&p->id, v, n);
    } else if (nlen == 5 && memcmp(name, "retry", 5) == 0) {
        sse_retry(p, v, n);
    }
    return rc;
}

/* One complete line, without its line end. */
static int sse_line(sky_sse_parser *p, const char *s, size_t n)
{
    if (n == 0)
        return sse_dispatch(p);
    if (s[0] == ':')
        return 0;
    const char *colon = memchr(s, ':', n);
    if (colon == NULL)
        return sse_field(p, s, n, "", 0);
    size_t nlen = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    if (vlen > 0 && v[0] == ' ') {
        v++;
        vlen--;
    }
    return sse_field(p, s, nlen, v, vlen);
}

/*
 * Hold back the first bytes of the stream until they are known to be or not
 * to be a BOM; the bytes held sit in the line buffer, where they are the
 * start of the first line if they turn out not to be one. Sets *taken to
 * the number of bytes of @p s used; returns 0 or the buffer's error.
 */
static int sse_skip_bom(sky_sse_parser *p, const char *s, size_t n, size_t *taken)
{
    size_t held = p->line.len;
    size_t i = 0;
    while (held + i < sizeof bom_bytes && i < n && s[i] == bom_bytes[held + i])
        i++;
    *taken = i;
    if (held + i == sizeof bom_bytes) {
        sky_buf_reset(&p->line);
        p->state |= SSE_BOM_DONE;
        return 0;
    }
    if (i < n)
        p->state |= SSE_BOM_DONE; /* a mismatch: what is held is ordinary text */
    return sky_buf_append(&p->line, s, i);
}

/* Next CR or LF in [s, end): two cached memchr results, so each byte is scanned once. */
static const char *sse_next_eol(const char *s, const char *end, const char **cr, const char **lf)
{
    if (*cr && *cr < s)
        *cr = memchr(s, '\r', (size_t)(end - s));
    if (*lf && *lf < s)
        *lf = memchr(s, '\n', (size_t)(end - s));
    if (*cr == NULL)
        return *lf;
    if (*lf == NULL)
        return *cr;
    return *cr < *lf ? *cr : *lf;
}

/* A line ends at @p eol; its start is either in the line buffer or at @p s. */
static int sse_end_line(sky_sse_parser *p, const char *s, const char *eol)
{
    size_t n = (size_t)(eol - s);
    if (p->line.len == 0) {
        if (n > p->max_event)
            return SKY_ETOOBIG;
        return sse_line(p, s, n);
    }
    int rc = sky_buf_append(&p->line, s, n);
    if (rc == 0)
        rc = sse_line(p, p->line.data, p->line.len);
    sky_buf_reset(&p->line);
    return rc;
}

static int sse_feed_lines(sky_sse_parser *p, const char *s, const char *end)
{
    const char *cr = memchr(s, '\r', (size_t)(end - s));
    const char *lf = memchr(s, '\n', (size_t)(end - s));
    while (s < end) {
        const char *eol = sse_next_eol(s, end, &cr, &lf);
        if (eol == NULL)
            return sky_buf_append(&p->line, s, (size_t)(end - s));
        int rc = sse_end_line(p, s, eol);
        if (rc < 0)
            return rc;
        s = eol + 1;
        if (*eol == '\r') {
            if (s == end)
                p->state |= SSE_CR_PENDING;
            else if (*s == '\n')
                s++;
        }
    }
    return 0;
}

int sky_sse_parser_feed(sky_sse_parser *p, const char *bytes, size_t len)
{
    int rc = sse_dead(p);
    if (rc < 0)
        return rc;
    if (len == 0)
        return 0;
    const char *s = bytes;
    const char *end = bytes + len;
    if (!(p->state & SSE_BOM_DONE)) {
        size_t taken;
        rc = sse_skip_bom(p, s, len, &taken);
        if (rc < 0)
            return sse_fail(p, rc);
        s += taken;
    }
    if ((p->state & SSE_CR_PENDING) && s < end) {
        p->state &= ~SSE_CR_PENDING;
        if (*s == '\n')
            s++;
    }
    rc = sse_feed_lines(p, s, end);
    return rc < 0 ? sse_fail(p, rc) : 0;
}

int sky_sse_parser_finish(sky_sse_parser *p)
{
    int rc = sse_dead(p);
    if (rc < 0)
        return rc;
    if (p->line.len > 0) {
        rc = sse_line(p, p->line.data, p->line.len);
        sky_buf_reset(&p->line);
        if (rc < 0)
            return sse_fail(p, rc);
    }
    /* An event not closed by a blank line is never dispatched. */
    sse_reset_block(p);
    p->state &= ~SSE_CR_PENDING;
    return 0;
}
