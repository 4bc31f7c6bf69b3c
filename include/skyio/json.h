/* skyio — small helpers over jansson. */
#ifndef SKYIO_JSON_H
#define SKYIO_JSON_H

#include <jansson.h>

#include "common.h"
#include "error.h"

/**
 * Parse @p text as one JSON value. On success *out_json holds a new reference
 * (json_decref it). On failure returns SKY_EJSON and, when @p err is given,
 * records "line L column C: <jansson's text>"; or SKY_ENOMEM when out of memory.
 */
SKY_EXTERN int sky_json_parse(sky_span text, json_t **out_json, sky_error *err) SKY_NODISCARD;

/** The string at obj[key], or @p dflt when absent or not a string. Borrowed from @p obj. */
SKY_EXTERN const char *sky_json_str(const json_t *obj, const char *key, const char *dflt);
/** The integer at obj[key], or @p dflt when absent or not an integer. */
SKY_EXTERN int64_t sky_json_int(const json_t *obj, const char *key, int64_t dflt);
/** The number (integer or real) at obj[key], or @p dflt. */
SKY_EXTERN double sky_json_num(const json_t *obj, const char *key, double dflt);
/** The boolean at obj[key] (true/false), or @p dflt. */
SKY_EXTERN int sky_json_bool(const json_t *obj, const char *key, int dflt);
/**
 * Follow a dotted path with array indexes ("choices.0.message.content").
 * Returns a borrowed reference, or NULL when any step is missing.
 */
SKY_EXTERN json_t *sky_json_path(const json_t *root, const char *path);
/**
 * Serialize compactly (no spaces, keys in insertion order) into a new
 * malloc'd string (free it). NULL on out of memory.
 */
SKY_EXTERN char *sky_json_dump(const json_t *value, size_t *out_len);

/** Depth of jansson's parser, beyond which it refuses a text (JSON_PARSER_MAX_DEPTH). */
#define SKY_JSON_MAX_DEPTH 2048

/** 1 when @p value nests objects and arrays more than @p limit deep ({} is 1 deep), else 0.
 *  Stops looking as soon as it knows. */
SKY_EXTERN int sky_json_deeper_than(const json_t *value, int limit);

/* ---- scanning without a tree ---------------------------------------------------------- */

/** The kinds of value sky_json_scan reports. */
typedef enum sky_json_kind {
    SKY_JSON_NULL,
    SKY_JSON_FALSE,
    SKY_JSON_TRUE,
    SKY_JSON_INTEGER, /**< a number with no fraction or exponent, as jansson reads one */
    SKY_JSON_REAL,
    SKY_JSON_STRING,
    SKY_JSON_OBJECT,
    SKY_JSON_ARRAY
} sky_json_kind;

/**
 * What a key callback returns to pass over the member's value: the scan still checks it,
 * but reports none of it (no scalar, open, close or key inside it) and goes on after it.
 */
#define SKY_JSON_SKIP (-1)

/**
 * What a scan tells its caller, in document order. A value's depth counts the objects and
 * arrays around it: the root value is 0 deep, a member of the root object 1. Each callback
 * may be NULL; one that returns nonzero stops the scan, and sky_json_scan returns that
 * value (use positive ones), except SKY_JSON_SKIP from @p key. Spans are borrowed until
 * the callback returns.
 */
typedef struct sky_json_visitor {
    /** An object member's key; the member's value, @p depth deep, comes next. */
    int (*key)(void *user_data, int depth, sky_span key);
    /** A scalar: strings unescaped, numbers as written. */
    int (*scalar)(void *user_data, int depth, sky_json_kind kind, sky_span value);
    /** An object or array opens; @p at is the offset of its '{' or '[' in the text. */
    int (*open)(void *user_data, int depth, sky_json_kind kind, size_t at);
    /** It closes; @p end is the offset just past its '}' or ']'. */
    int (*close)(void *user_data, int depth, sky_json_kind kind, size_t end);
} sky_json_visitor;

/**
 * Walk @p text, one JSON value, with a streaming parser (yajl): no tree is built and nothing
 * is printed again, so a caller can pick out a few members and hand on the bytes of the
 * rest. Returns 0 when jansson would read the text too (json_loadb with JSON_DECODE_ANY |
 * JSON_ALLOW_NUL), so what passes here can be written where jansson reads it back.
 * SKY_EJSON when the text is not JSON, or when the scan cannot promise that: a \u0000 or
 * surrogate escape, a number out of jansson's range, nesting deeper than @p max_depth (at
 * most SKY_JSON_MAX_DEPTH). Parse with jansson then, for the verdict and its message; the
 * visitor may have seen part of the text. SKY_ENOMEM; or what a callback returned.
 */
SKY_EXTERN int sky_json_scan(sky_span text, int max_depth, const sky_json_visitor *visitor,
                             void *user_data) SKY_NODISCARD;

/**
 * The value of an integer as a scan hands it to a visitor (SKY_JSON_INTEGER: an optional
 * minus, then digits), read without a library call: 0 for more than 18 digits (check the
 * length first) or for a text that is not such an integer.
 */
SKY_EXTERN int64_t sky_json_scan_int(sky_span text);

#endif
