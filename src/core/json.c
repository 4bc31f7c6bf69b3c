/* Small helpers over jansson: parse with a located error, typed lookups, paths, dumps. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "skyio/buf.h"
#include "skyio/json.h"

int sky_json_parse(sky_span text, json_t **out_json, sky_error *err)
{
    if (out_json == NULL)
        return sky_error_set(err, SKY_EINVAL, "no place for the parsed JSON");
    *out_json = NULL;
    json_error_t jerr;
    /* Any value may stand alone ("42", "\"x\""): callers parse fragments too. */
    json_t *value =
        json_loadb(text.ptr ? text.ptr : "", text.ptr ? text.len : 0, JSON_DECODE_ANY, &jerr);
    /* jansson reports a failed allocation by leaving the text empty (2.14 never sets
     * json_error_out_of_memory while parsing): that is no fault of the text. */
    if (value == NULL &&
        (jerr.text[0] == '\0' || json_error_code(&jerr) == json_error_out_of_memory))
        return sky_error_set(err, SKY_ENOMEM, "out of memory parsing JSON");
    if (value == NULL)
        return sky_error_set(err, SKY_EJSON, "line %d column %d: %s", jerr.line, jerr.column,
                             jerr.text);
    *out_json = value;
    return 0;
}

static json_t *member(const json_t *obj, const char *key)
{
    if (obj == NULL || key == NULL || !json_is_object(obj))
        return NULL;
    return json_object_get(obj, key);
}

const char *sky_json_str(const json_t *obj, const char *key, const char *dflt)
{
    json_t *v = member(obj, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

int64_t sky_json_int(const json_t *obj, const char *key, int64_t dflt)
{
    json_t *v = member(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

double sky_json_num(const json_t *obj, const char *key, double dflt)
{
    json_t *v = member(obj, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

int sky_json_bool(const json_t *obj, const char *key, int dflt)
{
    json_t *v = member(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A path step as an array index: decimal digits only, no sign, no overflow. */
static int parse_index(const char *s, size_t len, size_t *out)
{
    if (len == 0)
        return -1;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        size_t d = (size_t)(s[i] - '0');
        if (v > (SIZE_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* One step: a key in an object, an index in an array. */
static json_t *path_step(const json_t *cur, const char *seg, size_t len)
{
    if (json_is_object(cur))
        return json_object_getn(cur, seg, len);
    size_t idx;
    if (json_is_array(cur) && parse_index(seg, len, &idx) == 0)
        return json_array_get(cur, idx);
    return NULL;
}

json_t *sky_json_path(const json_t *root, const char *path)
{
    if (root == NULL || path == NULL)
        return NULL;
    /* The API hands out mutable borrowed references, as jansson's getters do. */
    json_t *cur = (json_t *)(uintptr_t)root;
    if (*path == '\0')
        return cur;
    const char *seg = path;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        cur = path_step(cur, seg, len);
        if (cur == NULL || dot == NULL)
            return cur;
        seg = dot + 1;
    }
}

/* The fewest significant digits, 15 to 17, that give @p v back exactly. */
static int real_digits(double v)
{
    char text[40];
    for (int p = 15; p < 17; p++) {
        snprintf(text, sizeof(text), "%.*g", p, v);
        if (strtod(text, NULL) == v)
            return p;
    }
    return 17;
}

/* The digits every real in @p v needs to come back exactly; 0 when it holds none. */
static int digits_needed(const json_t *v, int depth)
{
    int most = 0, d;
    size_t i;
    const char *key;
    json_t *item;
    if (json_is_real(v))
        return real_digits(json_real_value(v));
    if (depth > 64) /* deeper than any request body: jansson's default then */
        return 17;
    if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if ((d = digits_needed(item, depth + 1)) > most)
                most = d;
            if (most == 17) /* no more to learn: an embedding is not walked to its end */
                return most;
        }
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)(uintptr_t)v, key, item)
        {
            if ((d = digits_needed(item, depth + 1)) > most)
                most = d;
            if (most == 17)
                return most;
        }
    }
    return most;
}

/* Where sky_json_dump prints: the text so far and the first failure. */
typedef struct dump_to_buf {
    sky_buf buf;
    int rc;
} dump_to_buf;

/*
 * jansson goes on printing after an object key failed to print (dump.c ignores
 * dump_string's result for keys) and then reports success, so json_dumps can hand
 * back a text with a key missing. Printing through this callback keeps the first
 * failure and refuses every later chunk.
 */
static int dump_chunk(const char *p, size_t n, void *data)
{
    dump_to_buf *d = data;
    if (d->rc == 0)
        d->rc = sky_buf_append(&d->buf, p, n);
    return d->rc < 0 ? -1 : 0;
}

char *sky_json_dump(const json_t *value, size_t *out_len)
{
    if (value == NULL)
        return NULL;
    /* jansson prints every real with 17 digits (0.2 as 0.20000000000000001); print as few
     * as give the same number back, so a body passed through keeps the user's numbers. */
    int digits = digits_needed(value, 0);
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER;
    if (digits > 0)
        flags |= JSON_REAL_PRECISION(digits);
    dump_to_buf d;
    sky_buf_init(&d.buf, SIZE_MAX / 2);
    d.rc = 0;
    if (json_dump_callback(value, dump_chunk, &d, flags) != 0 || d.rc < 0) {
        sky_buf_free(&d.buf);
        return NULL;
    }
    return sky_buf_detach(&d.buf, out_len);
}

int sky_json_deeper_than(const json_t *value, int limit)
{
    size_t i;
    const char *key;
    json_t *v;
    if (!json_is_object(value) && !json_is_array(value))
        return 0;
    if (limit <= 0)
        return 1;
    if (json_is_array(value)) {
        json_array_foreach(value, i, v)
        {
            if (sky_json_deeper_than(v, limit - 1))
                return 1;
        }
        return 0;
    }
    json_object_foreach((json_t *)(uintptr_t)value, key, v)
    {
        if (sky_json_deeper_than(v, limit - 1))
            return 1;
    }
    return 0;
}
