/* skyio — growable byte buffers with a size cap (curl's dynbuf idea). */
#ifndef SKYIO_BUF_H
#define SKYIO_BUF_H

#include "common.h"

/**
 * A growable buffer that refuses to grow past @c cap bytes, so a hostile
 * peer cannot make us allocate without bound. The bytes are always followed
 * by a NUL (not counted in len), so `data` can be used as a C string when
 * the content has no NUL of its own.
 */
typedef struct sky_buf {
    char *data; /**< NULL until the first append */
    size_t len;
    size_t alloc;
    size_t cap; /**< maximum len; appends past it fail with SKY_ETOOBIG */
} sky_buf;

/** Set up an empty buffer that will hold at most @p cap bytes. No allocation. */
SKY_EXTERN void sky_buf_init(sky_buf *b, size_t cap);
/** Free the storage; the buffer is empty and reusable afterwards. */
SKY_EXTERN void sky_buf_free(sky_buf *b);
/** Forget the content, keep the storage. */
SKY_EXTERN void sky_buf_reset(sky_buf *b);
/** Make room for @p extra more bytes in one allocation, for a writer that knows its size
 *  ahead. Returns 0, SKY_ETOOBIG past the cap, or SKY_ENOMEM. */
SKY_EXTERN int sky_buf_reserve(sky_buf *b, size_t extra) SKY_NODISCARD;
/** Append bytes. Returns 0, SKY_ETOOBIG past the cap, or SKY_ENOMEM. */
SKY_EXTERN int sky_buf_append(sky_buf *b, const void *p, size_t n) SKY_NODISCARD;
/** Append a NUL-terminated string. */
SKY_EXTERN int sky_buf_append_str(sky_buf *b, const char *s) SKY_NODISCARD;
/** Append printf-style text. */
SKY_EXTERN int sky_buf_printf(sky_buf *b, const char *fmt, ...) SKY_PRINTF(2, 3) SKY_NODISCARD;
/** Drop the first @p n bytes (n is clamped to len). */
SKY_EXTERN void sky_buf_consume(sky_buf *b, size_t n);
/** A span over the current content (borrowed until the next change). */
SKY_EXTERN sky_span sky_buf_span(const sky_buf *b);
/**
 * Hand the storage to the caller (free() it), leaving the buffer empty.
 * Returns a NUL-terminated string ("" content gives a fresh ""), NULL only
 * when out of memory.
 */
SKY_EXTERN char *sky_buf_detach(sky_buf *b, size_t *out_len);

#endif
