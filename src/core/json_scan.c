/*
 * A JSON walk without a tree, on yajl's streaming parser. jansson stays the judge: the
 * scan says yes only to texts jansson reads too, and leaves anything it cannot promise
 * (escapes yajl decodes differently, numbers out of range, deep nesting) to jansson.
 */

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "skyio/json.h"
#include "skyio/utf8.h"

/* A number longer than this is left to jansson: no real number needs it. */
#define NUMBER_TEXT_MAX 64

typedef struct scan {
    yajl_handle yajl;
    const sky_json_visitor *v;
    void *ud;
    int depth; /* containers open around the next value */
    int max_depth;
    int result; /* why a callback stopped the parse: a caller's value or SKY_EJSON */
    sky_span text;
    int quiet;       /* values this deep are not reported (a key asked to skip one) */
    int finishing;   /* in yajl_complete_parse: offsets no longer point into the text */
    int root_done;   /* the root value has ended ... */
    size_t root_end; /* ... here */
} scan;

/* ---- what yajl and jansson read alike ---------------------------------------------- */

/* The value of the four hex digits at @p p, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/*
 * The length of the escape at @p p (a backslash) when both parsers decode it alike, or 0:
 * yajl turns \u0000 and a lone surrogate into other bytes than jansson, which refuses them.
 * A surrogate pair is one character to both.
 */
static size_t escape_len(const char *p, size_t n)
{
    if (n < 2 || p[1] != 'u')
        return 2;
    long cp = n >= 6 ? hex4(p + 2) : -1;
    if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
        return cp < 0 ? 2 : 0; /* bad hex: both refuse it */
    if (cp < 0xD800 || cp > 0xDBFF)
        return 6;
    long low = n >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
    return low >= 0xDC00 && low <= 0xDFFF ? 12 : 0;
}

/*
 * The bytes of @p text that the two parsers take differently: UTF-8 that yajl lets by and
 * jansson refuses, \v and \f (whitespace to yajl, not to JSON), and the escapes above.
 */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Whether a byte of @p w is @p c (the classic test for a zero byte in w ^ c's). */
static int has_byte(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (ONES * c);
    return ((x - ONES) & ~x & HIGHS) != 0;
}

/* Whether the 8 bytes at @p p are plain ASCII that needs no look, word at a time: most
 * of a text is, and a byte at a time costs more than yajl's own pass. */
static int plain8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return (w & HIGHS) == 0 && !has_byte(w, '\\') && !has_byte(w, '\v') && !has_byte(w, '\f');
}

#if defined(__SSE2__)
/* plain8 for 16 bytes with SSE2 (every x86-64 has it): the pass costs a third as much. */
static int plain16(const char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i bad = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')),
                               _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\v')),
                                            _mm_cmpeq_epi8(v, _mm_set1_epi8('\f'))));
    /* a byte's top bit: set in a marked byte, and in every byte of UTF-8 past ASCII */
    return _mm_movemask_epi8(_mm_or_si128(bad, v)) == 0;
}
#else
static int plain16(const char *p)
{
    return plain8(p) && plain8(p + 8);
}
#endif

static int text_differs(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (i + 16 <= n && plain16(p + i))
            i += 16;
        while (i + 8 <= n && plain8(p + i))
            i += 8;
        if (i >= n)
            break;
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x80) {
            size_t k = sky_utf8_seq_len((const unsigned char *)p + i, n - i);
            if (k == 0)
                return 1;
            i += k - 1;
        } else if (c == '\v' || c == '\f') {
            return 1;
        } else if (c == '\\') {
            size_t k = escape_len(p + i, n - i);
            if (k == 0)
                return 1;
            i += k - 1; /* past the escape */
        }
    }
    return 0;
}

/* jansson refuses an integer past int64 and a real that overflows a double. */
static int number_in_range(const char *p, size_t n, sky_json_kind kind)
{
    char buf[NUMBER_TEXT_MAX + 1];
    if (n > NUMBER_TEXT_MAX)
        return 0;
    if (kind == SKY_JSON_INTEGER && n < 18)
        return 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    if (kind == SKY_JSON_INTEGER) {
        (void)strtoll(buf, NULL, 10);
        return errno != ERANGE;
    }
    double d = strtod(buf, NULL);
    return !(errno == ERANGE && isinf(d));
}

/* ---- yajl's callbacks ---------------------------------------------------------------- */

static int stop(scan *s, int rc)
{
    s->result = rc;
    return 0; /* yajl: cancel */
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Where the root value ends. yajl takes a partial token after a complete value for
 * "more to come" and then lets the text end there ({} "abc passes), so the scan itself
 * checks that only whitespace follows the root. A root number is only known to end at the
 * end of the text (yajl reports it from its final flush): the text less its whitespace
 * must be that number.
 */
static int note_root_end(scan *s, sky_span number)
{
    if (!s->finishing) {
        s->root_end = yajl_get_bytes_consumed(s->yajl);
    } else {
        size_t a = 0, b = s->text.len;
        while (a < b && is_json_space(s->text.ptr[a]))
            a++;
        while (b > a && is_json_space(s->text.ptr[b - 1]))
            b--;
        if (b - a != number.len || memcmp(s->text.ptr + a, number.ptr, number.len) != 0)
            return 0;
        s->root_end = b;
    }
    s->root_done = 1;
    return 1;
}

/* Whether the value now at s->depth is one a key asked to skip, or inside one; @p ends is
 * whether the value ends here too, so that the values after it are reported again. */
static int quiet(scan *s, int ends)
{
    if (s->depth < s->quiet)
        return 0;
    if (ends && s->depth == s->quiet)
        s->quiet = INT_MAX;
    return 1;
}

static int emit_scalar(scan *s, sky_json_kind kind, const char *p, size_t n)
{
    if (s->depth == 0 && !note_root_end(s, sky_span_make(p, n)))
        return stop(s, SKY_EJSON);
    if (quiet(s, 1))
        return 1;
    int rc = s->v->scalar ? s->v->scalar(s->ud, s->depth, kind, sky_span_make(p, n)) : 0;
    return rc ? stop(s, rc) : 1;
}

static int on_null(void *ctx)
{
    return emit_scalar(ctx, SKY_JSON_NULL, "null", 4);
}

static int on_boolean(void *ctx, int value)
{
    return value ? emit_scalar(ctx, SKY_JSON_TRUE, "true", 4)
                 : emit_scalar(ctx, SKY_JSON_FALSE, "false", 5);
}

/* A number's text is a few bytes: one pass over them, not a library call per mark. */
static sky_json_kind number_kind(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '.' || p[i] == 'e' || p[i] == 'E')
            return SKY_JSON_REAL;
    return SKY_JSON_INTEGER;
}

static int on_number(void *ctx, const char *p, size_t n)
{
    scan *s = ctx;
    sky_json_kind kind = number_kind(p, n);
    if (!number_in_range(p, n, kind))
        return stop(s, SKY_EJSON);
    return emit_scalar(s, kind, p, n);
}

static int on_string(void *ctx, const unsigned char *p, size_t n)
{
    return emit_scalar(ctx, SKY_JSON_STRING, (const char *)p, n);
}

static int on_key(void *ctx, const unsigned char *p, size_t n)
{
    scan *s = ctx;
    if (quiet(s, 0))
        return 1;
    int rc = s->v->key ? s->v->key(s->ud, s->depth, sky_span_make((const char *)p, n)) : 0;
    if (rc == SKY_JSON_SKIP)
        s->quiet = s->depth; /* the member's value */
    return rc && rc != SKY_JSON_SKIP ? stop(s, rc) : 1;
}

static int open_container(scan *s, sky_json_kind kind)
{
    if (s->depth >= s->max_depth)
        return stop(s, SKY_EJSON);
    /* yajl has just consumed the '{' or '[' */
    size_t at = yajl_get_bytes_consumed(s->yajl) - 1;
    int rc = s->v->open && !quiet(s, 0) ? s->v->open(s->ud, s->depth, kind, at) : 0;
    if (rc)
        return stop(s, rc);
    s->depth++;
    return 1;
}

static int close_container(scan *s, sky_json_kind kind)
{
    s->depth--;
    size_t end = yajl_get_bytes_consumed(s->yajl);
    if (s->depth == 0)
        (void)note_root_end(s, sky_span_make(NULL, 0)); /* never while finishing */
    if (quiet(s, 1))
        return 1;
    int rc = s->v->close ? s->v->close(s->ud, s->depth, kind, end) : 0;
    return rc ? stop(s, rc) : 1;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, SKY_JSON_OBJECT);
}

static int on_end_map(void *ctx)
{
    return close_container(ctx, SKY_JSON_OBJECT);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, SKY_JSON_ARRAY);
}

static int on_end_array(void *ctx)
{
    return close_container(ctx, SKY_JSON_ARRAY);
}

static const yajl_callbacks k_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

/* ---- yajl's memory -------------------------------------------------------------------- */

/*
 * yajl allocates its handle, lexer and stacks anew for every text. A scan's arena on the
 * stack takes them, so a scan of a reply costs no malloc; what does not fit goes to the
 * heap. A block keeps its size just before it, for realloc.
 */
#define ARENA_BYTES 4096
#define ARENA_ALIGN 16

typedef struct arena {
    _Alignas(ARENA_ALIGN) unsigned char mem[ARENA_BYTES];
    size_t used;
} arena;

static int in_arena(const arena *a, const void *p)
{
    const unsigned char *b = p;
    return b >= a->mem && b < a->mem + ARENA_BYTES;
}

static void *arena_malloc(void *ctx, size_t n)
{
    arena *a = ctx;
    size_t need = ARENA_ALIGN + ((n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1));
    if (n > ARENA_BYTES || need > ARENA_BYTES - a->used)
        return malloc(n);
    unsigned char *p = a->mem + a->used + ARENA_ALIGN;
    memcpy(p - sizeof n, &n, sizeof n);
    a->used += need;
    return p;
}

static void arena_free(void *ctx, void *p)
{
    if (p != NULL && !in_arena(ctx, p))
        free(p);
}

static void *arena_realloc(void *ctx, void *p, size_t n)
{
    if (p == NULL)
        return arena_malloc(ctx, n);
    if (!in_arena(ctx, p))
        return realloc(p, n);
    size_t old;
    memcpy(&old, (unsigned char *)p - sizeof old, sizeof old);
    void *q = arena_malloc(ctx, n);
    if (q != NULL)
        memcpy(q, p, old < n ? old : n);
    return q;
}

/* ---- the scan ------------------------------------------------------------------------ */

/* Only whitespace may follow the root value. */
static int ends_clean(const scan *s)
{
    if (!s->root_done)
        return 0;
    for (size_t i = s->root_end; i < s->text.len; i++)
        if (!is_json_space(s->text.ptr[i]))
            return 0;
    return 1;
}

static int verdict(scan *s, yajl_status st)
{
    if (st == yajl_status_ok)
        return ends_clean(s) ? 0 : SKY_EJSON;
    if (st == yajl_status_client_canceled)
        return s->result;
    return SKY_EJSON;
}

int sky_json_scan(sky_span text, int max_depth, const sky_json_visitor *visitor, void *user_data)
{
    static const sky_json_visitor none = {0};
    if (text.ptr == NULL || text.len == 0)
        return SKY_EJSON;
    if (text_differs(text.ptr, text.len))
        return SKY_EJSON;
    scan s = {NULL, visitor ? visitor : &none, user_data, 0, max_depth, 0, text, INT_MAX, 0, 0, 0};
    if (s.max_depth <= 0 || s.max_depth > SKY_JSON_MAX_DEPTH)
        s.max_depth = SKY_JSON_MAX_DEPTH;
    arena mem;
    mem.used = 0;
    yajl_alloc_funcs funcs = {arena_malloc, arena_realloc, arena_free, &mem};
    s.yajl = yajl_alloc(&k_callbacks, &funcs, &s);
    if (s.yajl == NULL)
        return SKY_ENOMEM;
    /* text_differs has checked the UTF-8, by jansson's stricter rules */
    yajl_config(s.yajl, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(s.yajl, (const unsigned char *)text.ptr, text.len);
    if (st == yajl_status_ok) {
        s.finishing = 1;
        st = yajl_complete_parse(s.yajl);
    }
    int rc = verdict(&s, st);
    yajl_free(s.yajl);
    return rc;
}

int64_t sky_json_scan_int(sky_span text)
{
    size_t i = text.len > 0 && text.ptr[0] == '-' ? 1 : 0;
    if (text.len - i > 18)
        return 0;
    int64_t v = 0;
    for (; i < text.len; i++) {
        unsigned d = (unsigned char)text.ptr[i] - (unsigned)'0';
        if (d > 9)
            return 0;
        v = v * 10 + (int64_t)d;
    }
    return text.len > 0 && text.ptr[0] == '-' ? -v : v;
}
