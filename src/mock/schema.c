/*
 * A JSON value that validates against a JSON Schema, drawn from a seed: what a model
 * answers under response_format json_schema, and the arguments of the tool calls it
 * makes. It follows the keywords Structured Outputs allows (type, properties, required,
 * items, enum, const, anyOf, $ref to $defs or definitions) and the bounds a generator can
 * meet without search (minimum/maximum, minItems/maxItems, minLength/maxLength, format),
 * and "pattern" in the shapes pattern.c knows; another pattern gets words, which may not
 * match it (a documented gap), and a pattern wins over the length bounds.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "skyio/json.h"
#include "internal.h"

#define MAX_DEPTH 12
#define MAX_STRING 4096 /* minLength beyond this is not met */
#define MAX_VALUES                                                                                 \
    4096 /* values in one answer; past them, nulls (a schema asking more is hostile) */

typedef struct gen {
    const json_t *root; /* for $ref */
    uint64_t rng;
    int values; /* written so far */
} gen;

static json_t *value_of(gen *g, const json_t *schema, int depth);

/* "#/$defs/name" or "#/definitions/name" inside the root schema; NULL otherwise. */
static const json_t *resolve(const gen *g, const json_t *schema)
{
    const char *ref = sky_json_str(schema, "$ref", NULL);
    if (ref == NULL || strncmp(ref, "#/", 2) != 0)
        return NULL;
    char path[256];
    snprintf(path, sizeof(path), "%s", ref + 2);
    const json_t *at = g->root;
    char *save = NULL;
    for (char *seg = strtok_r(path, "/", &save); at && seg; seg = strtok_r(NULL, "/", &save))
        at = json_object_get(at, seg);
    return at;
}

/* The schema's type: the first of a list that is not "null", else "null"; by its keywords
 * when it names none. */
static const char *type_of(const json_t *schema)
{
    const json_t *t = json_object_get(schema, "type");
    if (json_is_string(t))
        return json_string_value(t);
    size_t i;
    json_t *v;
    json_array_foreach(t, i,
                       v) if (json_is_string(v) &&
                              strcmp(json_string_value(v), "null")) return json_string_value(v);
    if (json_is_array(t))
        return "null";
    if (json_object_get(schema, "properties"))
        return "object";
    if (json_object_get(schema, "items"))
        return "array";
    return "string";
}

static json_t *object_of(gen *g, const json_t *schema, int depth)
{
    json_t *out = json_object();
    const char *key;
    json_t *prop;
    /* every property: strict schemas require them all, and others allow them */
    json_object_foreach(json_object_get(schema, "properties"), key, prop)
    {
        json_t *v = value_of(g, prop, depth + 1);
        if (out == NULL || v == NULL || json_object_set_new(out, key, v) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *array_of(gen *g, const json_t *schema, int depth)
{
    int64_t lo = sky_json_int(schema, "minItems", 1), hi = sky_json_int(schema, "maxItems", 3);
    int64_t n = lo > 2 ? lo : (hi < 2 ? hi : 2);
    json_t *out = json_array();
    for (int64_t i = 0; out && i < n && i < 64; i++) {
        json_t *v = value_of(g, json_object_get(schema, "items"), depth + 1);
        if (v == NULL || json_array_append_new(out, v) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *string_of(gen *g, const json_t *schema)
{
    static const char *const formats[][2] = {{"date-time", "2024-01-01T00:00:00Z"},
                                             {"date", "2024-01-01"},
                                             {"time", "00:00:00Z"},
                                             {"email", "mock@example.com"},
                                             {"uri", "https://example.com/"},
                                             {"uuid", "00000000-0000-4000-8000-000000000000"}};
    const char *format = sky_json_str(schema, "format", "");
    for (size_t i = 0; i < SKY_ARRAY_LEN(formats); i++)
        if (strcmp(format, formats[i][0]) == 0)
            return json_string(formats[i][1]);
    int64_t lo = sky_json_int(schema, "minLength", 0), hi = sky_json_int(schema, "maxLength", 64);
    lo = lo < 0 ? 0 : lo > MAX_STRING ? MAX_STRING : lo;
    sky_buf b;
    sky_buf_init(&b, 1u << 20);
    const char *pattern = sky_json_str(schema, "pattern", NULL);
    if (pattern) {
        int prc = sky__mock_pattern_string(pattern, &g->rng, &b);
        json_t *fit = prc == 0 ? json_stringn(b.data ? b.data : "", b.len) : NULL;
        sky_buf_free(&b);
        if (fit || prc == SKY_ENOMEM)
            return fit;
    }
    int rc = sky__mock_words(&b, sky__mock_rand(&g->rng), 3);
    while (rc == 0 && (int64_t)b.len < lo)
        rc = sky_buf_append(&b, " mock", 5);
    size_t len = rc == 0 ? b.len : 0;
    if ((int64_t)len > hi)
        len = (size_t)(hi > lo ? hi : lo);
    json_t *out = rc == 0 ? json_stringn(b.data ? b.data : "", len) : NULL;
    sky_buf_free(&b);
    return out;
}

/* Bounds are met within +-2^53, where every integer is a double too; a range with no
 * integer in it gets its lower end. */
static json_t *number_of(gen *g, const json_t *schema, int integer)
{
    const double limit = 9007199254740992.0;
    const json_t *lo = json_object_get(schema, "minimum"), *hi = json_object_get(schema, "maximum");
    double a = json_is_number(lo) ? json_number_value(lo) : 0;
    a = a < -limit ? -limit : a > limit ? limit : a;
    double b = json_is_number(hi) ? json_number_value(hi) : a + 100;
    b = b < a ? a : b > limit ? limit : b;
    double u = sky__mock_rand01(&g->rng);
    if (integer) {
        double first = ceil(a), last = floor(b);
        double i = last < first ? first : first + floor((last - first + 1) * u);
        return json_integer((json_int_t)(i > last && last >= first ? last : i));
    }
    return json_real(a + (b - a) * u);
}

static json_t *choice_of(gen *g, const json_t *options)
{
    size_t n = json_array_size(options);
    return json_deep_copy(json_array_get(options, sky__mock_rand(&g->rng) % n));
}

/* The first option of an anyOf / oneOf that is not the null type. */
static const json_t *first_option(const json_t *options)
{
    size_t i;
    json_t *v;
    json_array_foreach(options, i, v) if (strcmp(sky_json_str(v, "type", ""), "null")) return v;
    return json_array_get(options, 0);
}

static json_t *value_of(gen *g, const json_t *schema, int depth)
{
    const json_t *target = resolve(g, schema);
    if (depth > MAX_DEPTH || !json_is_object(schema) || ++g->values > MAX_VALUES)
        return json_null();
    if (target)
        return value_of(g, target, depth + 1);
    if (json_object_get(schema, "const"))
        return json_deep_copy(json_object_get(schema, "const"));
    if (json_array_size(json_object_get(schema, "enum")) > 0)
        return choice_of(g, json_object_get(schema, "enum"));
    const json_t *any = json_object_get(schema, "anyOf");
    if (json_array_size(any) == 0)
        any = json_object_get(schema, "oneOf");
    if (json_array_size(any) > 0)
        return value_of(g, first_option(any), depth + 1);
    const char *type = type_of(schema);
    if (strcmp(type, "object") == 0)
        return object_of(g, schema, depth);
    if (strcmp(type, "array") == 0)
        return array_of(g, schema, depth);
    if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0)
        return number_of(g, schema, type[0] == 'i');
    if (strcmp(type, "boolean") == 0)
        return json_boolean(sky__mock_rand(&g->rng) & 1);
    if (strcmp(type, "null") == 0)
        return json_null();
    return string_of(g, schema);
}

json_t *sky__mock_from_schema(const json_t *schema, uint64_t seed)
{
    gen g = {.root = schema, .rng = seed};
    return value_of(&g, schema, 0);
}
