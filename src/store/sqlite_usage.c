/*
 * The SQLite store's usage records. A batch is written in one savepoint: its records into
 * `usage` with one statement that reads them from the table skyio_usage_rows
 * (sqlite_usage_rows.c; `usage` has no index but its rowid, so a record costs one B-tree
 * append), and its sums by day, key and model added to `usage_daily`, which the totals
 * read. A batch from a few keys and models is a handful of upserts there; a batch is
 * all written or none of it, so the sums always match the rows.
 */
#include <stdlib.h>

#include "sqlite_internal.h"

/* One day, key and model of a batch: its records' sums. */
typedef struct usage_sum {
    char day[11];
    const char *key_name, *model; /* the batch's, borrowed */
    uint32_t hash;
    int64_t requests, errors, tokens_in, tokens_out;
    double cost;
} usage_sum;

/* A batch grouped: every record's day (its group's), and the groups found through an
 * open-addressed table of (index + 1), 0 empty. */
typedef struct usage_groups {
    usage_sum *sums;
    size_t n;
    const char **days; /* the day of each record, in its group */
    uint32_t *slots;
    size_t mask;
} usage_groups;

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return (h ^ 0xffu) * 16777619u; /* the end of a string counts: ("ab","c") != ("a","bc") */
}

static int same(const usage_sum *g, uint32_t h, const char *day, const sky__store_usage *r)
{
    return g->hash == h && strcmp(g->key_name, r->key_name) == 0 &&
           strcmp(g->model, r->model) == 0 && memcmp(g->day, day, 10) == 0;
}

/* The group of @p r on @p day, made when new. */
static uint32_t group_of(usage_groups *gs, const char *day, const sky__store_usage *r)
{
    uint32_t h = fnv(fnv(fnv(2166136261u, day), r->key_name), r->model);
    size_t i = h & gs->mask;
    while (gs->slots[i] && !same(&gs->sums[gs->slots[i] - 1], h, day, r))
        i = (i + 1) & gs->mask;
    if (gs->slots[i])
        return gs->slots[i] - 1;
    usage_sum *g = &gs->sums[gs->n];
    memset(g, 0, sizeof(*g));
    memcpy(g->day, day, sizeof(g->day));
    g->key_name = r->key_name;
    g->model = r->model;
    g->hash = h;
    gs->slots[i] = (uint32_t)++gs->n;
    return (uint32_t)(gs->n - 1);
}

static void groups_free(usage_groups *gs)
{
    free(gs->sums);
    free(gs->days);
    free(gs->slots);
}

/* Group @p n records (0), or SQLITE_NOMEM. */
static int group_batch(usage_groups *gs, const sky__store_usage *recs, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    memset(gs, 0, sizeof(*gs));
    gs->sums = malloc(n * sizeof(*gs->sums));
    gs->days = malloc(n * sizeof(*gs->days));
    gs->slots = calloc(cap, sizeof(*gs->slots));
    gs->mask = cap - 1;
    if (!gs->sums || !gs->days || !gs->slots)
        return SQLITE_NOMEM;
    sky__store_day_cache days = {0};
    usage_sum *g = NULL;
    for (size_t i = 0; i < n; i++) {
        const sky__store_usage *r = &recs[i];
        const char *day = sky__store_day_of(&days, r->time_ms);
        /* Most records are of the previous one's group: no hash then. */
        if (!g || strcmp(g->key_name, r->key_name) != 0 || strcmp(g->model, r->model) != 0 ||
            memcmp(g->day, day, 10) != 0)
            g = &gs->sums[group_of(gs, day, r)];
        gs->days[i] = g->day;
        g->requests++;
        g->errors += r->status >= 400;
        g->tokens_in += r->tokens_in;
        g->tokens_out += r->tokens_out;
        g->cost += r->cost;
    }
    return SQLITE_OK;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* The batch's records, all in one statement: no binds, one start and end. */
static int insert_rows(sky__sqlite *q, sky__sqlite_job *job, const usage_groups *gs)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_USAGE_INSERT, &job->err);
    if (!st)
        return SQLITE_ERROR;
    sky__sqlite_rows rows = {.recs = job->recs, .days = gs->days, .n = job->nrecs};
    q->rows = &rows;
    int rc = sky__sqlite_step_done(q, st, &job->err, "writing usage");
    q->rows = NULL;
    return rc;
}

static int add_sums(sky__sqlite *q, sky__sqlite_job *job, const usage_sum *g)
{
    sqlite3_stmt *st = sky__sqlite_stmt_rebind(q, Q_USAGE_ADD, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, g->day);
    bind_text(st, 2, g->key_name);
    bind_text(st, 3, g->model);
    sqlite3_bind_int64(st, 4, g->requests);
    sqlite3_bind_int64(st, 5, g->errors);
    sqlite3_bind_int64(st, 6, g->tokens_in);
    sqlite3_bind_int64(st, 7, g->tokens_out);
    sqlite3_bind_double(st, 8, g->cost);
    return sky__sqlite_step_done(q, st, &job->err, "writing usage totals");
}

/* The records, then the sums. */
static int write_grouped(sky__sqlite *q, sky__sqlite_job *job, const usage_groups *gs)
{
    int rc = insert_rows(q, job, gs);
    for (size_t k = 0; rc == SQLITE_OK && k < gs->n; k++)
        rc = add_sums(q, job, &gs->sums[k]);
    return rc;
}

static int run_usage_write(sky__sqlite *q, sky__sqlite_job *job)
{
    usage_groups gs;
    int rc = group_batch(&gs, job->recs, job->nrecs);
    if (rc == SQLITE_OK)
        rc = write_grouped(q, job, &gs);
    else
        sky_error_set(&job->err, SKY_ENOMEM, "out of memory");
    groups_free(&gs);
    return rc;
}

static sky_error oom_error(void)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ENOMEM, "out of memory");
    return e;
}

void sky__sqlite_usage_write(sky__store *s, const sky__store_usage *recs, size_t n,
                             sky__store_done_cb cb, void *ud)
{
    sky__sqlite_job *job = sky__sqlite_job_new(s, run_usage_write, sky__sqlite_deliver_done, ud);
    if (!job) {
        sky_error e = oom_error();
        sky__store_fail_done(s, cb, ud, &e);
        return;
    }
    job->writes = 1;
    job->cb.done = cb;
    job->recs = recs;
    job->nrecs = n;
    sky__sqlite_submit(s, job);
}

/* ---- totals, from usage_daily */

/* Row @p t from the statement's current row; its three strings in one block, freed through
 * t->day. SQLITE_OK or SQLITE_NOMEM. */
static int copy_total(sqlite3_stmt *st, sky__store_usage_total *t)
{
    const char **dst[3] = {&t->day, &t->key_name, &t->model};
    if (sky__sqlite_column_strings(st, dst) != SQLITE_OK)
        return SQLITE_NOMEM;
    t->requests = sqlite3_column_int64(st, 3);
    t->errors = sqlite3_column_int64(st, 4);
    t->tokens_in = sqlite3_column_int64(st, 5);
    t->tokens_out = sqlite3_column_int64(st, 6);
    t->cost = sqlite3_column_double(st, 7);
    return SQLITE_OK;
}

/* One more row in job->rows, or NULL. */
static sky__store_usage_total *grow_rows(sky__sqlite_job *job, size_t *cap)
{
    if (job->nrows == *cap) {
        size_t want = *cap ? *cap * 2 : 16;
        void *grown = realloc(job->rows, want * sizeof(sky__store_usage_total));
        if (!grown)
            return NULL;
        job->rows = grown;
        *cap = want;
    }
    return (sky__store_usage_total *)job->rows + job->nrows;
}

static int run_usage_totals(sky__sqlite *q, sky__sqlite_job *job)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_USAGE_TOTALS, &job->err);
    if (!st)
        return SQLITE_ERROR;
    if (job->s1)
        bind_text(st, 1, job->s1);
    if (job->s2)
        bind_text(st, 2, job->s2);
    int rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sky__store_usage_total *t = grow_rows(job, &cap);
        if (!t || copy_total(st, t) != SQLITE_OK) {
            sqlite3_reset(st);
            sky_error_set(&job->err, SKY_ENOMEM, "out of memory");
            return SQLITE_NOMEM;
        }
        job->nrows++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : sky__sqlite_fail(q, &job->err, rc, "reading usage");
}

static void deliver_totals(sky__sqlite_job *job)
{
    sky__store_usage_total *rows = job->rows;
    job->cb.totals(&job->err, job->err.code ? NULL : rows, job->err.code ? 0 : job->nrows, job->ud);
    for (size_t i = 0; i < job->nrows; i++)
        free((void *)(uintptr_t)rows[i].day);
}

void sky__sqlite_usage_totals(sky__store *s, const char *key_name, const char *since_day,
                              sky__store_totals_cb cb, void *ud)
{
    sky__sqlite_job *job = sky__sqlite_job_new(s, run_usage_totals, deliver_totals, ud);
    if (job) {
        job->s1 = key_name ? strdup(key_name) : NULL;
        job->s2 = since_day ? strdup(since_day) : NULL;
    }
    if (!job || (key_name && !job->s1) || (since_day && !job->s2)) {
        if (job)
            sky__sqlite_job_free(job);
        sky_error e = oom_error();
        sky__store_fail_totals(s, cb, ud, &e);
        return;
    }
    job->cb.totals = cb;
    sky__sqlite_submit(s, job);
}
