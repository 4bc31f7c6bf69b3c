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

#endif
