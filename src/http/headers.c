/*
 * HTTP header map and the parsers for the headers that steer retries and
 * rate limits. Responses carry a few dozen headers at most, so the map is a
 * plain array searched linearly, in arrival order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "skyio/headers.h"
#include "skyio/error.h"

/* One header; name and value lie side by side in the map's pool, with their lengths: a
 * lookup passes over names of another length, a copy is two memcpys. */
typedef struct hdr_entry {
    char *name;
    char *value;
    size_t nlen, vlen;
} hdr_entry;

/*
 * A map holds its first entries and their bytes inside itself, so a typical request's or
 * reply's headers cost one allocation, not one per header. Past that, blocks are chained,
 * never moved: a name or value handed out stays where it is until the map is cleared.
 */
#define INLINE_ENTRIES 12
#define INLINE_BYTES 512
#define BLOCK_BYTES 1024

typedef struct pool_block {
    struct pool_block *next;
    size_t used, size;
    char mem[];
} pool_block;

struct sky_headers {
    hdr_entry *v;
    size_t n;
    size_t alloc;
    pool_block *blocks; /* the newest first */
    size_t used;        /* of inline_bytes */
    hdr_entry inline_v[INLINE_ENTRIES];
    char inline_bytes[INLINE_BYTES];
};

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

sky_headers *sky_headers_new(void)
{
    sky_headers *h = malloc(sizeof(sky_headers));
    if (h == NULL)
        return NULL;
    h->v = h->inline_v;
    h->n = 0;
    h->alloc = INLINE_ENTRIES;
    h->blocks = NULL;
    h->used = 0;
    return h;
}

void sky_headers_clear(sky_headers *h)
{
    if (h == NULL)
        return;
    while (h->blocks) {
        pool_block *b = h->blocks;
        h->blocks = b->next;
        free(b);
    }
    h->used = 0;
    h->n = 0;
}

void sky_headers_free(sky_headers *h)
{
    if (h == NULL)
        return;
    sky_headers_clear(h);
    if (h->v != h->inline_v)
        free(h->v);
    free(h);
}

/* @p n bytes from the map's pool, or NULL when memory is out. */
static char *pool_take(sky_headers *h, size_t n)
{
    if (n <= INLINE_BYTES - h->used) {
        char *p = h->inline_bytes + h->used;
        h->used += n;
        return p;
    }
    pool_block *b = h->blocks;
    if (b == NULL || n > b->size - b->used) {
        size_t size = n > BLOCK_BYTES ? n : BLOCK_BYTES;
        if (size > SIZE_MAX - sizeof(pool_block))
            return NULL;
        b = malloc(sizeof(pool_block) + size);
        if (b == NULL)
            return NULL;
        b->next = h->blocks;
        b->used = 0;
        b->size = size;
        h->blocks = b;
    }
    char *p = b->mem + b->used;
    b->used += n;
    return p;
}

/* RFC 9110 tchar, as a table (no ctype, so the locale cannot change the answer): every
 * header of every request and reply passes here, and a '-' looked up by strchr cost more
 * than the rest of the name. */
#define T1(c) [c] = 1
static const unsigned char k_tchar[256] = {
    T1('!'), T1('#'), T1('$'), T1('%'), T1('&'), T1('\''), T1('*'), T1('+'), T1('-'), T1('.'),
    T1('^'), T1('_'), T1('`'), T1('|'), T1('~'), T1('0'),  T1('1'), T1('2'), T1('3'), T1('4'),
    T1('5'), T1('6'), T1('7'), T1('8'), T1('9'), T1('A'),  T1('B'), T1('C'), T1('D'), T1('E'),
    T1('F'), T1('G'), T1('H'), T1('I'), T1('J'), T1('K'),  T1('L'), T1('M'), T1('N'), T1('O'),
    T1('P'), T1('Q'), T1('R'), T1('S'), T1('T'), T1('U'),  T1('V'), T1('W'), T1('X'), T1('Y'),
    T1('Z'), T1('a'), T1('b'), T1('c'), T1('d'), T1('e'),  T1('f'), T1('g'), T1('h'), T1('i'),
    T1('j'), T1('k'), T1('l'), T1('m'), T1('n'), T1('o'),  T1('p'), T1('q'), T1('r'), T1('s'),
    T1('t'), T1('u'), T1('v'), T1('w'), T1('x'), T1('y'),  T1('z'),
};
#undef T1

static int is_token(sky_span s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        if (!k_tchar[(unsigned char)s.ptr[i]])
            return 0;
    }
    return 1;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* CR, LF and NUL become SP in a stored value (see copy_value), so they trim like SP. */
static int is_value_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0';
}

static sky_span trim_value(sky_span s)
{
    while (s.len > 0 && is_value_space(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && is_value_space(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Two names of @p n bytes alike but for ASCII case. */
static int name_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return 0;
    return 1;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Whether one of the 8 bytes at @p p is CR, LF or NUL (the test for a zero byte in a word,
 * on the word and on its XORs with CR's and LF's). */
static int ctl8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    uint64_t cr = w ^ (ONES * '\r'), lf = w ^ (ONES * '\n');
    return (((w - ONES) & ~w) | ((cr - ONES) & ~cr) | ((lf - ONES) & ~lf)) & HIGHS;
}

/*
 * RFC 9110 section 5.5: a recipient must reject, or replace with SP, any CR,
 * LF or NUL inside a field value. Replacing keeps the value usable as a C
 * string and keeps one stray byte from failing a whole response.
 */
static void copy_value(char *dst, sky_span v)
{
    if (v.len)
        memcpy(dst, v.ptr, v.len);
    dst[v.len] = '\0';
    size_t i = 0;
    while (i + 8 <= v.len && !ctl8(dst + i))
        i += 8; /* a word at a time: such bytes are rare */
    for (; i < v.len; i++)
        if (dst[i] == '\r' || dst[i] == '\n' || dst[i] == '\0')
            dst[i] = ' ';
}

static int grow(sky_headers *h)
{
    if (h->n < h->alloc)
        return 0;
    size_t n = h->alloc * 2;
    if (n > SIZE_MAX / sizeof(hdr_entry))
        return SKY_ENOMEM;
    int first = h->v == h->inline_v;
    hdr_entry *v = realloc(first ? NULL : h->v, n * sizeof(hdr_entry));
    if (v == NULL)
        return SKY_ENOMEM;
    if (first)
        memcpy(v, h->inline_v, h->n * sizeof(hdr_entry));
    h->v = v;
    h->alloc = n;
    return 0;
}

int sky_headers_add(sky_headers *h, sky_span name, sky_span value)
{
    if (h == NULL || !is_token(name))
        return SKY_EINVAL;
    value = trim_value(value);
    if (grow(h) < 0 || value.len > SIZE_MAX - name.len - 2)
        return SKY_ENOMEM;
    char *p = pool_take(h, name.len + value.len + 2);
    if (p == NULL)
        return SKY_ENOMEM;
    memcpy(p, name.ptr, name.len);
    p[name.len] = '\0';
    copy_value(p + name.len + 1, value);
    h->v[h->n] = (hdr_entry){p, p + name.len + 1, name.len, value.len};
    h->n++;
    return 0;
}

/*
 * Obsolete line folding (RFC 9112 section 5.2): a user agent must replace
 * the fold with SP, so the continuation joins the previous value after one
 * space. A fold with no header before it is an error.
 */
static int unfold(sky_headers *h, sky_span cont)
{
    if (h->n == 0)
        return SKY_EPROTO;
    cont = trim_value(cont);
    if (cont.len == 0)
        return 0;
    hdr_entry *e = &h->v[h->n - 1];
    size_t nlen = e->nlen;
    size_t vlen = e->vlen;
    size_t sep = vlen ? 1 : 0;
    if (cont.len > SIZE_MAX - nlen - vlen - 3)
        return SKY_ENOMEM;
    /* the joined header is written anew; the old bytes stay in the pool until a clear */
    char *p = pool_take(h, nlen + 1 + vlen + sep + cont.len + 1);
    if (p == NULL)
        return SKY_ENOMEM;
    memcpy(p, e->name, nlen + 1 + vlen + 1);
    e->name = p;
    e->value = p + nlen + 1;
    if (sep)
        e->value[vlen] = ' ';
    copy_value(e->value + vlen + sep, cont);
    e->vlen = vlen + sep + cont.len;
    return 0;
}

int sky_headers_parse_line(sky_headers *h, const char *line, size_t len)
{
    if (h == NULL || (line == NULL && len > 0))
        return SKY_EINVAL;
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return 0; /* the blank line that ends the block */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        sky_headers_clear(h); /* a new response: drop a 1xx's or a redirect's headers */
        return 0;
    }
    if (is_ows(line[0]))
        return unfold(h, sky_span_make(line, len));
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return SKY_EPROTO;
    size_t nlen = (size_t)(colon - line);
    sky_span value = sky_span_make(colon + 1, len - nlen - 1);
    int rc = sky_headers_add(h, sky_span_make(line, nlen), value);
    return rc == SKY_EINVAL ? SKY_EPROTO : rc;
}

const char *sky_headers_get(const sky_headers *h, const char *name)
{
    if (h == NULL || name == NULL)
        return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i < h->n; i++) {
        if (h->v[i].nlen == n && name_eq(h->v[i].name, name, n))
            return h->v[i].value;
    }
    return NULL;
}

size_t sky_headers_count(const sky_headers *h)
{
    return h ? h->n : 0;
}

int sky_headers_at(const sky_headers *h, size_t i, const char **out_name, const char **out_value)
{
    if (h == NULL || i >= h->n)
        return SKY_EINVAL;
    if (out_name)
        *out_name = h->v[i].name;
    if (out_value)
        *out_value = h->v[i].value;
    return 0;
}

/* Decimal digits of @p s as a non-negative int64; SKY_EINVAL when empty, not digits or too big. */
static int parse_digits(sky_span s, uint64_t limit, uint64_t *out)
{
    if (s.len == 0)
        return SKY_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned char)s.ptr[i] - (unsigned)'0';
        if (d > 9 || v > (limit - d) / 10)
            return SKY_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int sky_headers_get_int64(const sky_headers *h, const char *name, int64_t *out)
{
    const char *v = sky_headers_get(h, name);
    if (v == NULL)
        return SKY_ENOTFOUND;
    sky_span s = sky_span_cstr(v);
    int neg = s.len > 0 && s.ptr[0] == '-';
    if (s.len > 0 && (s.ptr[0] == '-' || s.ptr[0] == '+')) {
        s.ptr++;
        s.len--;
    }
    uint64_t mag;
    if (parse_digits(s, (uint64_t)INT64_MAX + (neg ? 1u : 0u), &mag) < 0)
        return SKY_EINVAL;
    if (!neg || mag == 0)
        *out = (int64_t)mag;
    else
        *out = -(int64_t)(mag - 1) - 1; /* reaches INT64_MIN without overflow */
    return 0;
}

/* A decimal number "12", "12.5", ".5" or "12.": whole part and fraction/scale. */
typedef struct dec_num {
    uint64_t whole;
    uint64_t frac;
    uint64_t scale; /* 10^digits of frac kept */
} dec_num;

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads a decimal number at *s; fraction digits past 18 are dropped (below 1 ns). */
static int parse_decimal(const char **s, const char *end, dec_num *out)
{
    const char *p = *s;
    const char *start = p;
    out->whole = 0;
    out->frac = 0;
    out->scale = 1;
    for (; p < end && is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (out->whole > ((uint64_t)INT64_MAX - d) / 10)
            return SKY_EINVAL;
        out->whole = out->whole * 10 + d;
    }
    int digits = p > start;
    if (p < end && *p == '.') {
        for (p++; p < end && is_digit(*p); p++) {
            digits = 1;
            if (out->scale < UINT64_C(1000000000000000000)) {
                out->frac = out->frac * 10 + (unsigned)(*p - '0');
                out->scale *= 10;
            }
        }
    }
    if (!digits)
        return SKY_EINVAL;
    *s = p;
    return 0;
}

typedef struct dur_unit {
    const char *name;
    int64_t ns;
} dur_unit;

/* Go's time.ParseDuration units, both spellings of the micro sign included. */
static const dur_unit dur_units[] = {
    {"ns", 1},         {"us", 1000},    {"\xC2\xB5s", 1000},  {"\xCE\xBCs", 1000},
    {"ms", NS_PER_MS}, {"s", NS_PER_S}, {"m", 60 * NS_PER_S}, {"h", 3600 * NS_PER_S},
};

/* The unit at *s (everything up to the next digit or '.'), as nanoseconds. */
static int parse_unit(const char **s, const char *end, int64_t *out_ns)
{
    const char *p = *s;
    while (p < end && !is_digit(*p) && *p != '.')
        p++;
    sky_span u = sky_span_make(*s, (size_t)(p - *s));
    for (size_t i = 0; i < SKY_ARRAY_LEN(dur_units); i++) {
        if (sky_span_eq_cstr(u, dur_units[i].name)) {
            *out_ns = dur_units[i].ns;
            *s = p;
            return 0;
        }
    }
    return SKY_EINVAL;
}

/* *total += num * unit, all in nanoseconds; SKY_EINVAL past INT64_MAX. */
static int add_scaled(int64_t *total, const dec_num *num, int64_t unit)
{
    if (num->whole > (uint64_t)(INT64_MAX / unit))
        return SKY_EINVAL;
    int64_t v = (int64_t)num->whole * unit;
    /* Below one unit, so a double is exact enough; Go does the same. */
    v += (int64_t)((double)num->frac * ((double)unit / (double)num->scale));
    if (v < 0 || v > INT64_MAX - *total)
        return SKY_EINVAL;
    *total += v;
    return 0;
}

int sky_parse_duration_ms(sky_span text, int64_t *out_ms)
{
    const char *s = text.ptr;
    const char *end = text.ptr + text.len;
    int64_t total = 0;
    if (text.len == 0 || out_ms == NULL)
        return SKY_EINVAL;
    while (s < end) {
        dec_num num;
        int64_t unit = NS_PER_S;
        int first = s == text.ptr;
        if (parse_decimal(&s, end, &num) < 0)
            return SKY_EINVAL;
        /* A bare number ("2") means seconds; "1m2" is missing a unit. */
        if (!(first && s == end) && parse_unit(&s, end, &unit) < 0)
            return SKY_EINVAL;
        if (add_scaled(&total, &num, unit) < 0)
            return SKY_EINVAL;
    }
    *out_ms = total / NS_PER_MS + (total % NS_PER_MS >= NS_PER_MS / 2);
    return 0;
}

/*
 * Milliseconds, possibly fractional ("123.5"). Rounded up: the server asked
 * for at least this long, and calling back early only earns another 429.
 */
static int parse_ms(const char *v, int64_t *out)
{
    sky_span t = sky_span_cstr(v);
    const char *s = t.ptr;
    dec_num num;
    if (parse_decimal(&s, t.ptr + t.len, &num) < 0 || s != t.ptr + t.len)
        return SKY_EINVAL;
    if (num.frac > 0 && num.whole == (uint64_t)INT64_MAX)
        return SKY_EINVAL;
    *out = (int64_t)num.whole + (num.frac > 0);
    return 0;
}

/* wait = date - now, each in ms, without overflow; a date in the past gives 0. */
static int wait_until(int64_t date_ms, int64_t now_ms, int64_t *out)
{
    if (date_ms <= now_ms) {
        *out = 0;
        return 0;
    }
    if (now_ms < 0 && date_ms > INT64_MAX + now_ms)
        return SKY_EINVAL;
    *out = date_ms - now_ms;
    return 0;
}

/*
 * Seconds, possibly fractional ("1.5": not in RFC 9110, but some servers send it and
 * OpenAI's SDKs read it so). Rounded up to the millisecond, as parse_ms does.
 */
static int parse_seconds(sky_span t, int64_t *out)
{
    const char *s = t.ptr;
    dec_num num;
    if (t.len == 0 || !is_digit(t.ptr[0]) || parse_decimal(&s, t.ptr + t.len, &num) < 0 ||
        s != t.ptr + t.len || num.whole >= (uint64_t)(INT64_MAX / 1000))
        return SKY_EINVAL;
    double frac_ms = num.frac > 0 ? ceil((double)num.frac * 1000.0 / (double)num.scale) : 0;
    *out = (int64_t)num.whole * 1000 + (int64_t)frac_ms;
    return 0;
}

/* Retry-After: delta-seconds, or an HTTP-date (RFC 9110 section 10.2.3). */
static int parse_retry_after(const char *v, const sky_clock *clock, int64_t *out)
{
    if (parse_seconds(sky_span_cstr(v), out) == 0)
        return 0;
    /* libcurl's date parser reads all three HTTP-date forms (and is well fuzzed). */
    time_t date = curl_getdate(v, NULL);
    if (date == (time_t)-1 || (int64_t)date > INT64_MAX / 1000 || (int64_t)date < INT64_MIN / 1000)
        return SKY_EINVAL;
    return wait_until((int64_t)date * 1000, sky_clock_wall_ms(clock), out);
}

/*
 * The first header that is present and readable wins. A garbled
 * retry-after-ms does not hide a good Retry-After behind it; SKY_EINVAL
 * only when every header present is unreadable.
 */
int sky_parse_retry_after_ms(const sky_headers *h, const sky_clock *clock, int64_t *out_ms)
{
    static const char *const ms_names[] = {"retry-after-ms", "x-ms-retry-after-ms"};
    int rc = SKY_ENOTFOUND;
    if (out_ms == NULL)
        return SKY_EINVAL;
    for (size_t i = 0; i < SKY_ARRAY_LEN(ms_names); i++) {
        const char *v = sky_headers_get(h, ms_names[i]);
        if (v == NULL)
            continue;
        if (parse_ms(v, out_ms) == 0)
            return 0;
        rc = SKY_EINVAL;
    }
    const char *v = sky_headers_get(h, "retry-after");
    if (v == NULL)
        return rc;
    return parse_retry_after(v, clock, out_ms);
}

/* An entry's bytes back to the pool when they are the last it gave, so a map that takes
 * and drops a header per request (sky_headers_truncate) does not grow. */
static void pool_give_back(sky_headers *h, char *p, size_t n)
{
    if (p >= h->inline_bytes && p < h->inline_bytes + INLINE_BYTES) {
        if (p + n == h->inline_bytes + h->used)
            h->used -= n;
    } else if (h->blocks && p + n == h->blocks->mem + h->blocks->used) {
        h->blocks->used -= n;
    }
}

void sky_headers_truncate(sky_headers *h, size_t n)
{
    while (h && h->n > n) {
        hdr_entry *e = &h->v[--h->n];
        /* a credential added for one attempt does not linger in the pool */
        memset(e->name, 0, e->nlen);
        memset(e->value, 0, e->vlen);
        if (e->value == e->name + e->nlen + 1)
            pool_give_back(h, e->name, e->nlen + e->vlen + 2);
    }
}

/* An entry of another map as it is: its name was checked and its value cleaned when it was
 * added there, so the copy is two memcpys (a request's headers are copied once a call). */
static int add_entry(sky_headers *h, hdr_entry e)
{
    if (grow(h) < 0)
        return SKY_ENOMEM;
    char *p = pool_take(h, e.nlen + e.vlen + 2);
    if (p == NULL)
        return SKY_ENOMEM;
    memcpy(p, e.name, e.nlen + 1);
    memcpy(p + e.nlen + 1, e.value, e.vlen + 1);
    h->v[h->n] = (hdr_entry){p, p + e.nlen + 1, e.nlen, e.vlen};
    h->n++;
    return 0;
}

int sky_headers_add_all(sky_headers *dst, const sky_headers *src)
{
    size_t n = src ? src->n : 0; /* dst may be src: its own entries once */
    if (dst == NULL && n > 0)
        return SKY_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = add_entry(dst, src->v[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
