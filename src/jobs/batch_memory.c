/*
 * The batch's memory source and memory store: lines given by the caller, records kept in
 * memory. For tests, and for a program that has its requests in hand and wants the results
 * back without files.
 */
#include <stdlib.h>
#include <string.h>

#include "skyio/batch.h"
#include "skyio/idset.h"

typedef struct mem_line {
    char *text;
    size_t len;
} mem_line;

typedef struct mem_source {
    sky_batch_source base;
    mem_line *lines;
    size_t n, cap, next;
    int ended, waiting;
} mem_source;

/* Grow @p *arr of @p *cap items of @p size to hold @p want. 0 or SKY_ENOMEM. */
static int grow(void **arr, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, n * size);
    if (p == NULL)
        return SKY_ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

static char *copy_bytes(sky_span s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

/* ---- the source ---- */

static int ms_next(sky_batch_source *src, sky_batch_source_line *out, sky_error *err)
{
    mem_source *s = (mem_source *)src;
    (void)err;
    if (s->next < s->n) {
        out->text = sky_span_make(s->lines[s->next].text, s->lines[s->next].len);
        out->number = ++s->next;
        out->too_long = 0;
        return 0;
    }
    if (s->ended)
        return SKY_BATCH_SOURCE_END;
    s->waiting = 1;
    return SKY_BATCH_SOURCE_WAIT;
}

static void ms_close(sky_batch_source *src)
{
    (void)src; /* sky_batch_memory_source_free frees it */
}

static void wake(mem_source *s)
{
    if (s->waiting) {
        s->waiting = 0;
        sky_batch_source_ready(&s->base);
    }
}

sky_batch_source *sky_batch_memory_source_new(void)
{
    mem_source *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base.next = ms_next;
    s->base.close = ms_close;
    return &s->base;
}

int sky_batch_memory_source_add(sky_batch_source *src, sky_span line)
{
    mem_source *s = (mem_source *)src;
    if (s->ended)
        return SKY_ESTATE;
    if (grow((void **)&s->lines, &s->cap, s->n + 1, sizeof(*s->lines)) < 0)
        return SKY_ENOMEM;
    mem_line *l = &s->lines[s->n];
    if ((l->text = copy_bytes(line)) == NULL)
        return SKY_ENOMEM;
    l->len = line.len;
    s->n++;
    wake(s);
    return 0;
}

void sky_batch_memory_source_end(sky_batch_source *src)
{
    mem_source *s = (mem_source *)src;
    s->ended = 1;
    wake(s);
}

void sky_batch_memory_source_free(sky_batch_source *src)
{
    mem_source *s = (mem_source *)src;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->lines[i].text);
    free(s->lines);
    free(s);
}

/* ---- the store ---- */

typedef struct mem_record {
    char *id;
    char *line;
    size_t len;
    int failed;
} mem_record;

typedef struct mem_store {
    sky_batch_store base;
    sky_idset *done;
    mem_record *recs;
    size_t n, cap;
} mem_store;

static int mst_is_done(const sky_batch_store *st, const char *custom_id)
{
    const mem_store *s = (const mem_store *)st;
    return sky_idset_contains(s->done, sky_span_cstr(custom_id));
}

static int mst_append(sky_batch_store *st, const sky_batch_record *rec)
{
    mem_store *s = (mem_store *)st;
    if (grow((void **)&s->recs, &s->cap, s->n + 1, sizeof(*s->recs)) < 0)
        return SKY_ENOMEM;
    int added = sky_idset_add(s->done, sky_span_cstr(rec->custom_id));
    if (added <= 0)
        return added == 0 ? SKY_BATCH_STORE_DUP : added;
    mem_record *r = &s->recs[s->n];
    r->id = copy_bytes(sky_span_cstr(rec->custom_id));
    r->line = copy_bytes(rec->line);
    if (r->id == NULL || r->line == NULL) {
        free(r->id);
        free(r->line);
        return SKY_ENOMEM; /* the id stays done: this store is for tests and small jobs */
    }
    r->len = rec->line.len;
    r->failed = rec->failed;
    s->n++;
    return 0;
}

static void mst_close(sky_batch_store *st, sky_batch_store_closed_cb cb, void *ud)
{
    /* nothing to flush; sky_batch_memory_store_free frees it */
    if (cb)
        cb(st, NULL, 0, ud);
}

sky_batch_store *sky_batch_memory_store_new(void)
{
    mem_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->done = sky_idset_new(0)) == NULL) {
        free(s);
        return NULL;
    }
    s->base.is_done = mst_is_done;
    s->base.append = mst_append;
    s->base.close = mst_close;
    return &s->base;
}

int sky_batch_memory_store_mark_done(sky_batch_store *st, const char *custom_id)
{
    mem_store *s = (mem_store *)st;
    int rc = sky_idset_add(s->done, sky_span_cstr(custom_id));
    return rc < 0 ? rc : 0;
}

size_t sky_batch_memory_store_count(const sky_batch_store *st)
{
    return ((const mem_store *)st)->n;
}

int sky_batch_memory_store_get(const sky_batch_store *st, size_t i, sky_batch_record *out)
{
    const mem_store *s = (const mem_store *)st;
    if (i >= s->n)
        return SKY_EINVAL;
    out->custom_id = s->recs[i].id;
    out->line = sky_span_make(s->recs[i].line, s->recs[i].len);
    out->failed = s->recs[i].failed;
    return 0;
}

void sky_batch_memory_store_free(sky_batch_store *st)
{
    mem_store *s = (mem_store *)st;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->recs[i].id);
        free(s->recs[i].line);
    }
    free(s->recs);
    sky_idset_free(s->done);
    free(s);
}
