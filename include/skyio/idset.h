/* skyio — a set of strings (custom_ids) that scales to millions, in one arena. */
#ifndef SKYIO_IDSET_H
#define SKYIO_IDSET_H

#include "common.h"

/**
 * A set of byte strings. Open addressing with linear probing over 8-byte
 * slots (32-bit hash, arena reference); the strings are copied into one
 * growing arena, so there is no allocation per entry. Entries cannot be
 * removed. Ids up to 4 GiB each, 32 GiB of ids in all.
 */
typedef struct sky_idset sky_idset;

/**
 * A new empty set sized for about @p expected entries (0 is fine: it grows).
 * NULL on out of memory. Free with sky_idset_free.
 */
SKY_EXTERN sky_idset *sky_idset_new(size_t expected);
/** Free the set and every string in it. NULL is allowed. */
SKY_EXTERN void sky_idset_free(sky_idset *set);
/**
 * Add a copy of @p id. Returns 1 when added, 0 when it was already there,
 * SKY_ENOMEM or SKY_ETOOBIG (the set is unchanged on error).
 */
SKY_EXTERN int sky_idset_add(sky_idset *set, sky_span id) SKY_NODISCARD;
/** Nonzero when @p id is in the set. */
SKY_EXTERN int sky_idset_contains(const sky_idset *set, sky_span id);
/** Number of entries. */
SKY_EXTERN size_t sky_idset_count(const sky_idset *set);
/** Bytes held by the set (slots and arena), for memory reports. */
SKY_EXTERN size_t sky_idset_memory(const sky_idset *set);

#endif
