/* skyio — UTF-8 as jansson judges it: the rules every JSON text skyio writes must meet. */
#ifndef SKYIO_UTF8_H
#define SKYIO_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/**
 * Length (1-4) of the well-formed UTF-8 sequence at the start of @p s (@p n bytes), or 0
 * when there is none: no overlong forms, no surrogates, nothing past U+10FFFF.
 */
SKY_EXTERN size_t sky_utf8_seq_len(const unsigned char *s, size_t n);
/** Offset of the first byte of @p p that is not well-formed UTF-8, or @p n when all are. */
SKY_EXTERN size_t sky_utf8_invalid_at(const char *p, size_t n);
/** Characters (code points) in @p n bytes of well-formed UTF-8. */
SKY_EXTERN uint64_t sky_utf8_chars(const char *p, size_t n);

#endif
