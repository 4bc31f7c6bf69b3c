/* skyio — HTTP header map (case-insensitive, ordered, repeated names kept) and parsers. */
#ifndef SKYIO_HEADERS_H
#define SKYIO_HEADERS_H

#include "common.h"
#include "clock.h"

typedef struct sky_headers sky_headers;

/** A new empty map. NULL on out of memory. */
SKY_EXTERN sky_headers *sky_headers_new(void);
SKY_EXTERN void sky_headers_free(sky_headers *h);
/** Remove every entry; keep the storage. */
SKY_EXTERN void sky_headers_clear(sky_headers *h);
/**
 * Add a header; names and values are copied, values trimmed of surrounding
 * spaces and tabs. Returns 0, SKY_EINVAL for an empty or invalid name
 * (not an RFC 9110 token), SKY_ENOMEM.
 */
SKY_EXTERN int sky_headers_add(sky_headers *h, sky_span name, sky_span value) SKY_NODISCARD;
/**
 * Parse one raw header line as libcurl's header callback delivers it
 * ("Name: value\r\n"). The status line ("HTTP/1.1 200 OK", "HTTP/2 200")
 * clears the map, so after redirects or 1xx replies only the final
 * response's headers remain; the blank line ends the block and is ignored.
 * Returns 0, or SKY_EPROTO for a line that is neither.
 */
SKY_EXTERN int sky_headers_parse_line(sky_headers *h, const char *line, size_t len) SKY_NODISCARD;
/**
 * Forget every entry from the @p n-th on (the first @p n stay; nothing when there are no
 * more). Their bytes are wiped, so a credential added for one request does not linger.
 */
SKY_EXTERN void sky_headers_truncate(sky_headers *h, size_t n);
/**
 * Add every entry of @p src to @p dst, in order (@p src may be NULL).
 * Returns 0, or the first error of sky_headers_add (entries before it stay).
 */
SKY_EXTERN int sky_headers_add_all(sky_headers *dst, const sky_headers *src) SKY_NODISCARD;
/** The first value for @p name (any case), NUL-terminated; NULL when absent. Borrowed. */
SKY_EXTERN const char *sky_headers_get(const sky_headers *h, const char *name);
/** Number of entries (repeats counted). */
SKY_EXTERN size_t sky_headers_count(const sky_headers *h);
/** Entry @p i in arrival order (borrowed). Returns 0 or SKY_EINVAL past the end. */
SKY_EXTERN int sky_headers_at(const sky_headers *h, size_t i, const char **out_name,
                              const char **out_value);
/** The first value as a base-10 integer; SKY_ENOTFOUND when absent, SKY_EINVAL when not a number.
 */
SKY_EXTERN int sky_headers_get_int64(const sky_headers *h, const char *name,
                                     int64_t *out) SKY_NODISCARD;

/**
 * Parse a duration the way OpenAI's x-ratelimit-reset-* headers write them:
 * "1s", "6m0s", "20ms", "1h2m3.5s", "0.5s", and a bare number meaning seconds.
 * Rounds to whole milliseconds. Returns 0 or SKY_EINVAL.
 */
SKY_EXTERN int sky_parse_duration_ms(sky_span text, int64_t *out_ms) SKY_NODISCARD;

/**
 * How long the server asked us to wait, from (first found wins)
 * `retry-after-ms`, `x-ms-retry-after-ms` (milliseconds, may be fractional),
 * then `Retry-After` (delta seconds, or an HTTP date measured against the
 * wall time of @p clock; a date in the past gives 0).
 * Returns 0 with *out_ms set, SKY_ENOTFOUND when no header is present,
 * SKY_EINVAL when present but unreadable.
 */
SKY_EXTERN int sky_parse_retry_after_ms(const sky_headers *h, const sky_clock *clock,
                                        int64_t *out_ms) SKY_NODISCARD;

#endif
