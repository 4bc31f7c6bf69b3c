/*
 * libFuzzer target for sky_json_scan, held against jansson. The first input byte picks the
 * depth limit; the rest is the text. Invariants: what the scan accepts, jansson reads too;
 * what jansson reads and the scan can vouch for (no \u0000 or lone surrogate escape, small
 * numbers, shallow) the scan accepts; the scan's events balance, their offsets frame the
 * text's own brackets, and the members it counts match jansson's tree. Keys that skip their
 * values change none of the verdict and report no more than the scan without skipping.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "skyio/json.h"

typedef struct fz_scan {
    sky_span text;
    int open;        /* containers open now */
    uint64_t values; /* scalars and containers seen */
    uint64_t keys;
    int skip; /* whether keys of a length divisible by 3 skip their values */
} fz_scan;

static int fz_key(void *ud, int depth, sky_span key)
{
    fz_scan *s = ud;
    FZ_CHECK(depth == s->open);
    FZ_CHECK(key.len == 0 || key.ptr != NULL);
    s->keys++;
    return s->skip && key.len % 3 == 0 ? SKY_JSON_SKIP : 0;
}

static int fz_scalar(void *ud, int depth, sky_json_kind kind, sky_span v)
{
    fz_scan *s = ud;
    FZ_CHECK(depth == s->open && kind <= SKY_JSON_STRING);
    FZ_CHECK(v.len == 0 || v.ptr != NULL);
    s->values++;
    return 0;
}

static int fz_open(void *ud, int depth, sky_json_kind kind, size_t at)
{
    fz_scan *s = ud;
    FZ_CHECK(depth == s->open && at < s->text.len);
    FZ_CHECK(s->text.ptr[at] == (kind == SKY_JSON_OBJECT ? '{' : '['));
    s->open++;
    s->values++;
    return 0;
}

static int fz_close(void *ud, int depth, sky_json_kind kind, size_t end)
{
    fz_scan *s = ud;
    s->open--;
    FZ_CHECK(depth == s->open && end >= 1 && end <= s->text.len);
    FZ_CHECK(s->text.ptr[end - 1] == (kind == SKY_JSON_OBJECT ? '}' : ']'));
    return 0;
}

static const sky_json_visitor fz_visitor = {fz_key, fz_scalar, fz_open, fz_close};

/* Values and keys in jansson's tree, counted as the scan counts them (duplicates aside). */
static void fz_count(const json_t *v, uint64_t *values, uint64_t *keys)
{
    (*values)++;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            fz_count(json_array_get(v, i), values, keys);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)(uintptr_t)v, k, m)
        {
            (*keys)++;
            fz_count(m, values, keys);
        }
    }
}

/* Whether the text holds a \u escape the scan leaves to jansson, or a long number run. */
static int fz_scan_may_refuse(const char *p, size_t n)
{
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        digits = (p[i] >= '0' && p[i] <= '9') ? digits + 1 : 0;
        if (digits >= 15 || p[i] == '\\' || p[i] == 'e' || p[i] == 'E')
            return 1;
    }
    return 0;
}

/* The same scan with keys of a length divisible by 3 skipping their values. */
static void fz_skip_agrees(sky_span text, int depth, int rc_full, const fz_scan *full)
{
    fz_scan q = {text, 0, 0, 0, 1};
    int rc = sky_json_scan(text, depth, &fz_visitor, &q);
    FZ_CHECK(rc == rc_full || rc == SKY_ENOMEM || rc_full == SKY_ENOMEM);
    FZ_CHECK(rc != 0 || (q.open == 0 && q.values <= full->values && q.keys <= full->keys));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int depth = 1 + data[0] % 64;
    sky_span text = sky_span_make((const char *)data + 1, size - 1);
    fz_scan s = {text, 0, 0, 0, 0};
    int rc = sky_json_scan(text, depth, &fz_visitor, &s);
    FZ_CHECK(rc == 0 || rc == SKY_EJSON || rc == SKY_ENOMEM);
    fz_skip_agrees(text, depth, rc, &s);
    json_error_t jerr;
    json_t *j = json_loadb(text.ptr, text.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (rc == 0) {
        FZ_CHECK(j != NULL && s.open == 0);
        if (!json_is_object(j) || json_object_size(j) == s.keys) {
            uint64_t values = 0, keys = 0;
            fz_count(j, &values, &keys);
            FZ_CHECK(keys != s.keys || values == s.values);
        }
    } else if (rc == SKY_EJSON && j != NULL && !sky_json_deeper_than(j, depth) &&
               !fz_scan_may_refuse(text.ptr, text.len)) {
        /* plain JSON that jansson reads: the scan must not send it to the slow path */
        const unsigned char *b = (const unsigned char *)text.ptr;
        int ascii = 1;
        for (size_t i = 0; i < text.len; i++)
            ascii &= b[i] >= 0x20 && b[i] < 0x7F
                         ? 1
                         : (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r');
        FZ_CHECK(!ascii);
    }
    json_decref(j);
    return 0;
}
