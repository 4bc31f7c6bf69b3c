/* skyio — shared definitions: visibility, attributes and the byte span. */
#ifndef SKYIO_COMMON_H
#define SKYIO_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define SKY_NODISCARD __attribute__((warn_unused_result))
#define SKY_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SKY_EXTERN __attribute__((visibility("default")))
#else
#define SKY_NODISCARD
#define SKY_PRINTF(f, a)
#define SKY_EXTERN
#endif

#define SKY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/**
 * A borrowed run of bytes: pointer and length, not NUL-terminated.
 * The span never owns its bytes; whoever made it says how long they live.
 */
typedef struct sky_span {
    const char *ptr;
    size_t len;
} sky_span;

/** A span over a NUL-terminated string (NULL gives the empty span). */
static inline sky_span sky_span_cstr(const char *s)
{
    sky_span sp = {s, s ? strlen(s) : 0};
    return sp;
}

/** A span over @p len bytes at @p p. */
static inline sky_span sky_span_make(const char *p, size_t len)
{
    sky_span sp = {p, len};
    return sp;
}

/** Nonzero when both spans hold the same bytes. */
static inline int sky_span_eq(sky_span a, sky_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/** Nonzero when @p a equals the NUL-terminated @p s. */
static inline int sky_span_eq_cstr(sky_span a, const char *s)
{
    return sky_span_eq(a, sky_span_cstr(s));
}

#define SKY_SPAN_LIT(s) sky_span_make("" s, sizeof(s) - 1)

#endif
