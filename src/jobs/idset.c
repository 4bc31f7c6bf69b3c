/* A string set for custom_ids: open addressing over small slots, strings in one arena. */

#include <stdlib.h>
#include <string.h>

#include "skyio/error.h"
#include "skyio/idset.h"

/*
 * Each arena entry is a 4-byte length and the bytes, starting on an 8-byte
 * boundary, so a 32-bit slot reference addresses 32 GiB of arena. A slot
 * holds the entry's hash (so growing never rereads the strings) and its
 * reference plus one (0 marks an empty slot).
 */
#define ALIGN 8u
#define MIN_SLOTS 64u

typedef struct slot {
    uint32_t hash;
    uint32_t ref;
} slot;

/*
 * The ids skyio makes for refused input lines ("skyio-input-line-N",
 * "skyio-duplicate-line-N") number the lines of the file, so a file of a
 * million bad lines would fill the arena with them. They are kept as one
 * bit per line number instead: memory follows the file's line count at an
 * eighth of a byte a line.
 */
#define LINE_KINDS 2
/* Beyond this, the string path. The bitmap is sized by the largest number in it, so the
 * cap bounds what one id can cost (32 MiB a kind): any custom_id in an input or output file
 * may look like a line id, and one of 2^36 would have asked for 8 GiB. */
#define LINE_MAX_NUMBER (1ull << 28)
static const char *const line_prefix[LINE_KINDS] = {"skyio-input-line-", "skyio-duplicate-line-"};

typedef struct line_bits {
    uint64_t *words;
    size_t n_words;
} line_bits;

struct sky_idset {
    slot *slots;
    size_t mask; /* slot count - 1; the count is a power of two */
    size_t count;
    char *arena;
    size_t arena_len;
    size_t arena_alloc;
    line_bits lines[LINE_KINDS];
};

/* FNV-1a, then a murmur-style finalizer so the low bits index well. */
static uint32_t hash_id(sky_span id)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < id.len; i++) {
        h ^= (unsigned char)id.ptr[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

static size_t slots_for(size_t expected)
{
    size_t n = MIN_SLOTS;
    while (n / 4 * 3 < expected && n < SIZE_MAX / 2)
        n *= 2;
    return n;
}

sky_idset *sky_idset_new(size_t expected)
{
    sky_idset *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return NULL;
    size_t n = slots_for(expected);
    set->slots = calloc(n, sizeof(slot));
    if (set->slots == NULL) {
        free(set);
        return NULL;
    }
    set->mask = n - 1;
    return set;
}

void sky_idset_free(sky_idset *set)
{
    if (set == NULL)
        return;
    free(set->slots);
    free(set->arena);
    for (int k = 0; k < LINE_KINDS; k++)
        free(set->lines[k].words);
    free(set);
}

/* Which line-id kind @p id is, with its number in *out_n; -1 when it is not one. The
 * number must be written the one way ("7", not "07"), so the set stays exact. */
static int line_id(sky_span id, uint64_t *out_n)
{
    for (int k = 0; k < LINE_KINDS; k++) {
        size_t plen = strlen(line_prefix[k]);
        if (id.len <= plen || id.len > plen + 11 || memcmp(id.ptr, line_prefix[k], plen) != 0 ||
            id.ptr[plen] == '0')
            continue;
        uint64_t n = 0;
        for (size_t i = plen; i < id.len; i++) {
            if (id.ptr[i] < '0' || id.ptr[i] > '9')
                return -1;
            n = n * 10 + (uint64_t)(id.ptr[i] - '0');
        }
        if (n >= LINE_MAX_NUMBER)
            return -1;
        *out_n = n;
        return k;
    }
    return -1;
}

static int line_has(const line_bits *b, uint64_t n)
{
    size_t w = (size_t)(n / 64);
    return w < b->n_words && (b->words[w] >> (n % 64) & 1u);
}

/* Set bit @p n; 1 when it was clear, 0 when set already, or SKY_ENOMEM. */
static int line_add(line_bits *b, uint64_t n)
{
    size_t w = (size_t)(n / 64);
    if (w >= b->n_words) {
        size_t want = b->n_words ? b->n_words : 64;
        while (want <= w)
            want *= 2;
        uint64_t *p = realloc(b->words, want * sizeof(*p));
        if (p == NULL)
            return SKY_ENOMEM;
        memset(p + b->n_words, 0, (want - b->n_words) * sizeof(*p));
        b->words = p;
        b->n_words = want;
    }
    if (b->words[w] >> (n % 64) & 1u)
        return 0;
    b->words[w] |= (uint64_t)1 << (n % 64);
    return 1;
}

static int entry_equals(const sky_idset *set, uint32_t ref, sky_span id)
{
    const char *e = set->arena + (size_t)(ref - 1) * ALIGN;
    uint32_t len;
    memcpy(&len, e, sizeof(len));
    return len == id.len && (id.len == 0 || memcmp(e + sizeof(len), id.ptr, id.len) == 0);
}

/* The slot holding @p id, or the empty slot where it would go. */
static size_t find_slot(const sky_idset *set, sky_span id, uint32_t h)
{
    size_t i = h & set->mask;
    for (;;) {
        const slot *s = &set->slots[i];
        if (s->ref == 0 || (s->hash == h && entry_equals(set, s->ref, id)))
            return i;
        i = (i + 1) & set->mask;
    }
}

static int grow_slots(sky_idset *set)
{
    size_t n = (set->mask + 1) * 2;
    if (n > SIZE_MAX / sizeof(slot))
        return SKY_ENOMEM;
    slot *fresh = calloc(n, sizeof(slot));
    if (fresh == NULL)
        return SKY_ENOMEM;
    for (size_t i = 0; i <= set->mask; i++) {
        slot s = set->slots[i];
        if (s.ref == 0)
            continue;
        size_t k = s.hash & (n - 1);
        while (fresh[k].ref != 0)
            k = (k + 1) & (n - 1);
        fresh[k] = s;
    }
    free(set->slots);
    set->slots = fresh;
    set->mask = n - 1;
    return 0;
}

static int reserve_arena(sky_idset *set, size_t need)
{
    if (set->arena_alloc - set->arena_len >= need)
        return 0;
    size_t want = set->arena_alloc ? set->arena_alloc : 4096;
    while (want - set->arena_len < need) {
        if (want > SIZE_MAX / 2)
            return SKY_ENOMEM;
        want *= 2;
    }
    char *p = realloc(set->arena, want);
    if (p == NULL)
        return SKY_ENOMEM;
    set->arena = p;
    set->arena_alloc = want;
    return 0;
}

/* Copy @p id into the arena; *out_ref is its reference plus one. */
static int store_id(sky_idset *set, sky_span id, uint32_t *out_ref)
{
    if (id.len > UINT32_MAX - ALIGN)
        return SKY_ETOOBIG;
    size_t need = (sizeof(uint32_t) + id.len + ALIGN - 1) / ALIGN * ALIGN;
    size_t ref = set->arena_len / ALIGN + 1;
    if (ref + need / ALIGN > UINT32_MAX)
        return SKY_ETOOBIG;
    int rc = reserve_arena(set, need);
    if (rc < 0)
        return rc;
    uint32_t len = (uint32_t)id.len;
    memcpy(set->arena + set->arena_len, &len, sizeof(len));
    if (id.len)
        memcpy(set->arena + set->arena_len + sizeof(len), id.ptr, id.len);
    set->arena_len += need;
    *out_ref = (uint32_t)ref;
    return 0;
}

int sky_idset_add(sky_idset *set, sky_span id)
{
    if (set == NULL || (id.ptr == NULL && id.len))
        return SKY_EINVAL;
    uint64_t line;
    int kind = line_id(id, &line);
    if (kind >= 0) {
        int added = line_add(&set->lines[kind], line);
        set->count += added == 1;
        return added;
    }
    uint32_t h = hash_id(id);
    if (set->slots[find_slot(set, id, h)].ref != 0)
        return 0;
    /* Keep the load at or under 3/4 so probes stay short. */
    if ((set->count + 1) > (set->mask + 1) / 4 * 3) {
        int rc = grow_slots(set);
        if (rc < 0)
            return rc;
    }
    uint32_t ref;
    int rc = store_id(set, id, &ref);
    if (rc < 0)
        return rc;
    size_t i = find_slot(set, id, h);
    set->slots[i].hash = h;
    set->slots[i].ref = ref;
    set->count++;
    return 1;
}

int sky_idset_contains(const sky_idset *set, sky_span id)
{
    if (set == NULL || (id.ptr == NULL && id.len))
        return 0;
    uint64_t line;
    int kind = line_id(id, &line);
    if (kind >= 0)
        return line_has(&set->lines[kind], line);
    uint32_t h = hash_id(id);
    return set->slots[find_slot(set, id, h)].ref != 0;
}

size_t sky_idset_count(const sky_idset *set)
{
    return set ? set->count : 0;
}

size_t sky_idset_memory(const sky_idset *set)
{
    if (set == NULL)
        return 0;
    size_t n = sizeof(*set) + (set->mask + 1) * sizeof(slot) + set->arena_alloc;
    for (int k = 0; k < LINE_KINDS; k++)
        n += set->lines[k].n_words * sizeof(uint64_t);
    return n;
}
