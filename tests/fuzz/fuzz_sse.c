/*
 * libFuzzer target for the SSE parser. The first input byte picks the chunk
 * sizes, the event cap and when the callback stops; the rest is the stream.
 * Invariant: the events (and the final result) are the same whether the
 * stream arrives in those chunks or in one piece.
 */
#include <stdint.h>
#include <stdlib.h>

#include "skyio/sse.h"
#include "skyio/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one parse saw, folded into a hash so runs can be compared cheaply. */
typedef struct fz_trace {
    uint64_t hash;
    uint64_t events;
    uint64_t stop_after; /* 0: never stop */
} fz_trace;

static void fz_mix(fz_trace *t, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        t->hash = (t->hash ^ b[i]) * UINT64_C(1099511628211); /* FNV-1a */
}

static void fz_mix_span(fz_trace *t, sky_span s)
{
    fz_mix(t, &s.len, sizeof s.len);
    fz_mix(t, s.ptr, s.len);
}

static void fz_check_event(const sky_sse_event *ev)
{
    if (ev->data.ptr == NULL || ev->event.ptr == NULL || ev->id.ptr == NULL)
        abort();
    /* Line ends never survive into a field, and ids never hold a NUL. */
    if (memchr(ev->data.ptr, '\r', ev->data.len) || memchr(ev->event.ptr, '\r', ev->event.len) ||
        memchr(ev->event.ptr, '\n', ev->event.len) || memchr(ev->id.ptr, '\n', ev->id.len) ||
        memchr(ev->id.ptr, '\r', ev->id.len) || memchr(ev->id.ptr, '\0', ev->id.len))
        abort();
    if (ev->retry_ms < -1)
        abort();
    if ((ev->is_done != 0) != sky_span_eq_cstr(ev->data, "[DONE]"))
        abort();
}

static int fz_on_event(void *user_data, const sky_sse_event *ev)
{
    fz_trace *t = user_data;
    fz_check_event(ev);
    fz_mix_span(t, ev->event);
    fz_mix_span(t, ev->data);
    fz_mix_span(t, ev->id);
    fz_mix(t, &ev->retry_ms, sizeof ev->retry_ms);
    t->events++;
    return t->stop_after && t->events >= t->stop_after;
}

/* Feed in chunks whose sizes come from a small generator seeded by @p seed. */
static int fz_parse(const char *s, size_t n, size_t max_chunk, unsigned seed, size_t cap,
                    fz_trace *t)
{
    sky_sse_parser p;
    sky_sse_parser_init(&p, cap, fz_on_event, t);
    uint32_t x = seed * 2654435761u + 1u;
    int rc = 0;
    size_t off = 0;
    while (rc == 0 && off < n) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t k = max_chunk ? x % (max_chunk + 1) : n - off; /* 0-byte feeds too */
        if (k > n - off)
            k = n - off;
        rc = sky_sse_parser_feed(&p, s + off, k);
        off += k;
    }
    if (rc == 0)
        rc = sky_sse_parser_finish(&p);
    else if (sky_sse_parser_feed(&p, "\n\n", 2) != rc)
        abort(); /* a failed parser stays failed */
    if (p.events != t->events)
        abort();
    sky_sse_parser_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned cfg = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    size_t max_chunk = (cfg & 0x0F) + 1;
    size_t cap = (cfg & 0x30) ? (size_t)16 << ((cfg >> 4) & 3) : 0; /* 0 = default */
    uint64_t stop_after = cfg >> 6;
    fz_trace split = {UINT64_C(14695981039346656037), 0, stop_after};
    fz_trace whole = split;
    int rc_split = fz_parse(s, n, max_chunk, cfg, cap, &split);
    int rc_whole = fz_parse(s, n, 0, cfg, cap, &whole);
    if (rc_split != rc_whole || split.hash != whole.hash || split.events != whole.events)
        abort();
    if (rc_split != 0 && rc_split != SKY_ETOOBIG && rc_split != SKY_ECANCELED)
        abort();
    return 0;
}
