/*
 * libFuzzer target for the id set (the done custom_ids of a batch). The input
 * is a list of operations, cross-checked against a plain list searched from
 * end to end:
 *
 *   byte 0            the size hint for sky_idset_new (times 16)
 *   then, repeated    an op byte: bit 0 add (1) or contains (0); bits 1..7, a length
 *                     of up to 127 bytes of id that follow (cut at the input's end)
 *
 * Ids are any bytes, NUL included; skyio's line ids ("skyio-input-line-N") take the
 * set's bitmap path, anything else its hash table, and both must answer alike.
 * Invariants: add returns 1 exactly when the id is new, contains agrees with the
 * reference after every step, count is the number of distinct ids, and every id
 * added is found at the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "skyio/error.h"
#include "skyio/idset.h"

/* The reference: the distinct ids seen, as spans into the input. */
typedef struct fz_ref {
    sky_span *ids;
    size_t n;
    size_t alloc;
} fz_ref;

static int fz_ref_has(const fz_ref *r, sky_span id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ids[i].len == id.len && (id.len == 0 || memcmp(r->ids[i].ptr, id.ptr, id.len) == 0))
            return 1;
    return 0;
}

static int fz_ref_add(fz_ref *r, sky_span id)
{
    if (r->n == r->alloc) {
        size_t n = r->alloc ? r->alloc * 2 : 16;
        sky_span *p = realloc(r->ids, n * sizeof(*p));
        if (p == NULL)
            return -1;
        r->ids = p;
        r->alloc = n;
    }
    r->ids[r->n++] = id;
    return 0;
}

/* One operation; -1 ends the run (out of memory on either side). */
static int fz_step(sky_idset *set, fz_ref *ref, int add, sky_span id)
{
    int had = fz_ref_has(ref, id);
    FZ_CHECK(!!sky_idset_contains(set, id) == had);
    if (!add)
        return 0;
    int rc = sky_idset_add(set, id);
    if (rc == SKY_ENOMEM)
        return -1;
    FZ_CHECK(rc == (had ? 0 : 1));
    if (!had && fz_ref_add(ref, id) < 0)
        return -1;
    FZ_CHECK(sky_idset_contains(set, id));
    FZ_CHECK(sky_idset_count(set) == ref->n);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *p = (const char *)data;
    const char *end = p + size;
    sky_idset *set = sky_idset_new((size_t)(unsigned char)*p++ * 16);
    if (set == NULL)
        return 0;
    fz_ref ref;
    memset(&ref, 0, sizeof(ref));
    while (p < end) {
        unsigned op = (unsigned char)*p++;
        size_t len = op >> 1;
        if (len > (size_t)(end - p))
            len = (size_t)(end - p);
        sky_span id = sky_span_make(len ? p : NULL, len);
        p += len;
        if (fz_step(set, &ref, (int)(op & 1u), id) < 0)
            break;
    }
    for (size_t i = 0; i < ref.n; i++)
        FZ_CHECK(sky_idset_contains(set, ref.ids[i]));
    FZ_CHECK(sky_idset_count(set) == ref.n);
    FZ_CHECK(sky_idset_memory(set) > 0);
    free(ref.ids);
    sky_idset_free(set);
    return 0;
}
