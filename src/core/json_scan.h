/*
 * sky_json_scan's two paths and what they share (src/core/json_scan.c, json_tokens.c).
 * jsmn's tokens take nearly every text; yajl's streaming parser takes what they cannot
 * (a root number, more tokens than the token path holds) and stays there for the fuzz
 * target to hold the two against each other.
 */
#ifndef SKY_CORE_JSON_SCAN_H
#define SKY_CORE_JSON_SCAN_H

#include <stddef.h>

#include "skyio/json.h"

/* What the look over the whole text found, for the token path's checks of its strings. */
enum {
    SKY__JSON_TEXT_SPACE = 1,  /* a tab, newline or carriage return somewhere */
    SKY__JSON_TEXT_ESCAPE = 2, /* a backslash somewhere */
};

/*
 * Whether the bytes of @p p differ in a way the two parsers and jansson take differently
 * (UTF-8 jansson refuses, \v, \f, other control bytes, escapes yajl decodes otherwise): 1,
 * or 0 with *out_flags telling what the text holds.
 */
int sky__json_text_differs(const char *p, size_t n, unsigned *out_flags);

/* The value of the four hex digits at @p p, or -1. */
long sky__json_hex4(const char *p);

/* Whether jansson reads the number @p p (@p n bytes of JSON's grammar) in range. */
int sky__json_number_in_range(const char *p, size_t n, sky_json_kind kind);

/* INTEGER or REAL by the number's text (JSON's grammar checked already). */
sky_json_kind sky__json_number_kind(const char *p, size_t n);

/*
 * The yajl path, on a text sky__json_text_differs has passed: sky_json_scan's results. The
 * fuzz target calls it to hold the token path to it.
 */
int sky__json_scan_yajl(sky_span text, int max_depth, const sky_json_visitor *visitor,
                        void *user_data);

/*
 * The token path, on a text sky__json_text_differs has passed with @p flags. Sets *out_done
 * to 0, and returns 0, when jsmn cannot take the text: nothing was reported then, and the
 * yajl path decides. Otherwise *out_done is 1 and the result is sky_json_scan's.
 */
int sky__json_scan_tokens(sky_span text, int max_depth, unsigned flags,
                          const sky_json_visitor *visitor, void *user_data, int *out_done);

#endif
