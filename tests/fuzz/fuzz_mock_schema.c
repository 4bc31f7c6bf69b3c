/*
 * libFuzzer target for the mock's schema-driven generator: what `skyio mock` answers under
 * response_format json_schema and in tool call arguments (src/mock/schema.c), and the
 * strings it writes for a "pattern" (src/mock/pattern.c). Both read what a client sent.
 *
 * The input's first line is a pattern; the rest is a JSON Schema.
 *
 * Invariants: a pattern string is refused (SKY_EINVAL, the buffer as it was) or written
 * within 4096 bytes; a pattern of plain letters and digits gives itself; a pattern that
 * POSIX extended regular expressions read the same way as ECMAScript (no backslash, no
 * '(?', no bracket expressions of POSIX, no "{,", no "[]" or "[^]", ASCII only) gives a string that
 * glibc's regexec matches whole. A schema gives a value (never NULL), the same one for the same
 * seed, which jansson can write; a schema of one plain "type" gives a value of that type.
 */
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mock/internal.h"
#include "skyio/json.h"

/* Nonzero when ERE and ECMAScript read @p p alike, as far as this target relies on. */
static int fz_portable(const char *p)
{
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c >= 0x80 || *c < 0x20 || *c == '\\')
            return 0;
    return strstr(p, "(?") == NULL && strstr(p, "[:") == NULL && strstr(p, "[.") == NULL &&
           strstr(p, "[=") == NULL && strstr(p, "{,") == NULL && strstr(p, "[]") == NULL &&
           strstr(p, "[^]") == NULL;
}

static void fz_regex_check(const char *pattern, const char *s)
{
    size_t n = strlen(pattern);
    char *anchored = malloc(n + 5);
    if (anchored == NULL)
        return;
    snprintf(anchored, n + 5, "^(%s)$", pattern);
    regex_t re;
    if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB) == 0) {
        FZ_CHECK(regexec(&re, s, 0, NULL, 0) == 0);
        regfree(&re);
    }
    free(anchored);
}

static void fz_pattern(const char *pattern, uint64_t seed)
{
    sky_buf b;
    sky_buf_init(&b, 1u << 20);
    FZ_CHECK(sky_buf_append(&b, "x", 1) == 0);
    uint64_t rng = seed;
    int rc = sky__mock_pattern_string(pattern, &rng, &b);
    FZ_CHECK(rc == 0 || rc == SKY_EINVAL || rc == SKY_ENOMEM);
    if (rc != 0) {
        FZ_CHECK(b.len == 1);
        sky_buf_free(&b);
        return;
    }
    FZ_CHECK(b.len - 1 <= 4096);
    FZ_CHECK(sky_buf_append(&b, "", 1) == 0); /* NUL-terminated for the checks */
    const char *out = b.data + 1;
    size_t plain =
        strspn(pattern, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    if (pattern[plain] == '\0')
        FZ_CHECK(strcmp(out, pattern) == 0);
    if (fz_portable(pattern))
        fz_regex_check(pattern, out);
    sky_buf_free(&b);
}

/* A schema of only {"type": T} (T a plain type name): the value has that type. */
static void fz_type_check(const json_t *schema, const json_t *v)
{
    const char *t = sky_json_str(schema, "type", NULL);
    if (t == NULL || json_object_size(schema) != 1)
        return;
    if (strcmp(t, "object") == 0)
        FZ_CHECK(json_is_object(v));
    else if (strcmp(t, "array") == 0)
        FZ_CHECK(json_is_array(v));
    else if (strcmp(t, "string") == 0)
        FZ_CHECK(json_is_string(v));
    else if (strcmp(t, "integer") == 0)
        FZ_CHECK(json_is_integer(v));
    else if (strcmp(t, "number") == 0)
        FZ_CHECK(json_is_number(v));
    else if (strcmp(t, "boolean") == 0)
        FZ_CHECK(json_is_boolean(v));
    else if (strcmp(t, "null") == 0)
        FZ_CHECK(json_is_null(v));
}

static void fz_schema(const char *text, size_t len, uint64_t seed)
{
    json_t *schema = NULL;
    if (sky_json_parse(sky_span_make(text, len), &schema, NULL) != 0)
        return;
    json_t *a = sky__mock_from_schema(schema, seed);
    json_t *b = sky__mock_from_schema(schema, seed);
    FZ_CHECK(a != NULL && b != NULL);
    FZ_CHECK(json_equal(a, b));
    size_t n = 0;
    char *dumped = sky_json_dump(a, &n);
    FZ_CHECK(dumped != NULL);
    free(dumped);
    fz_type_check(schema, a);
    json_decref(a);
    json_decref(b);
    json_decref(schema);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    uint64_t seed = sky__mock_hash(data, size, 0);
    const char *fields[2];
    fz_split_fields(copy, size, fields, 2);
    fz_pattern(fields[0], seed);
    if (fields[1])
        fz_schema(fields[1], size - (size_t)(fields[1] - copy), seed);
    free(copy);
    return 0;
}
