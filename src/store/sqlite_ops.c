/*
 * The SQLite store's operations. Each is a pair: a `run_` half on the writer thread that
 * binds the values and steps the statement, and a `deliver_` half on the loop that calls
 * the callback with what the run found. The loop-side entry points copy their arguments
 * into a job first.
 */
#include <stdlib.h>

#include "sqlite_internal.h"

/* ---- loop side: make a job, or fail the call */

static char *dup_or_empty(const char *s, int *oom)
{
    char *d = strdup(s ? s : "");
    if (!d)
        *oom = 1;
    return d;
}

/* A job with up to three strings and a blob copied; NULL when out of memory. */
static sky__sqlite_job *make_job(sky__store *s, sky__sqlite_run_fn run,
                                 sky__sqlite_deliver_fn deliver, void *ud, const char *s1,
                                 const char *s2, const char *s3, sky_span blob)
{
    sky__sqlite_job *job = sky__sqlite_job_new(s, run, deliver, ud);
    if (!job)
        return NULL;
    int oom = 0;
    job->s1 = s1 ? dup_or_empty(s1, &oom) : NULL;
    job->s2 = s2 ? dup_or_empty(s2, &oom) : NULL;
    job->s3 = s3 ? dup_or_empty(s3, &oom) : NULL;
    if (blob.len) {
        job->blob = malloc(blob.len);
        if (job->blob)
            memcpy(job->blob, blob.ptr, blob.len);
        else
            oom = 1;
        job->blob_len = blob.len;
    }
    if (oom) {
        sky__sqlite_job_free(job);
        return NULL;
    }
    return job;
}

static sky_error oom_error(void)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ENOMEM, "out of memory");
    return e;
}

/* A write whose end is told to @p cb: the job, or NULL once @p cb has had the out-of-memory
 * error. */
static sky__sqlite_job *write_job(sky__store *s, sky__sqlite_run_fn run, sky__store_done_cb cb,
                                  void *ud, const char *s1, const char *s2, const char *s3,
                                  sky_span blob)
{
    sky__sqlite_job *job = make_job(s, run, sky__sqlite_deliver_done, ud, s1, s2, s3, blob);
    if (!job) {
        sky_error e = oom_error();
        sky__store_fail_done(s, cb, ud, &e);
        return NULL;
    }
    job->writes = 1;
    job->cb.done = cb;
    return job;
}

static const sky_span no_blob = {NULL, 0};

/* ---- thread side helpers */

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Step a statement that returns no rows. */
int sky__sqlite_step_done(sky__sqlite *q, sqlite3_stmt *st, sky_error *err, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    else
        sky__sqlite_fail(q, err, rc, what);
    sqlite3_reset(st);
    return rc;
}

/* Copy column 0 of the first row into job->out, or SKY_ENOTFOUND. */
static int step_blob(sky__sqlite *q, sqlite3_stmt *st, sky__sqlite_job *job, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        sky_error_set(&job->err, SKY_ENOTFOUND, "no such entry");
        return SQLITE_OK;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return sky__sqlite_fail(q, &job->err, rc, what);
    }
    const void *p = sqlite3_column_blob(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    job->out = malloc(n ? n : 1);
    if (!job->out) {
        sqlite3_reset(st);
        sky_error_set(&job->err, SKY_ENOMEM, "out of memory");
        return SQLITE_NOMEM;
    }
    if (n)
        memcpy(job->out, p, n);
    job->out_len = n;
    sqlite3_reset(st);
    return SQLITE_OK;
}

/* Sum the "RETURNING size" rows of a DELETE into *out. */
static int step_sizes(sky__sqlite *q, sqlite3_stmt *st, int64_t *out, sky_error *err)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        *out += sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : sky__sqlite_fail(q, err, rc, "evicting");
}

static void deliver_value(sky__sqlite_job *job)
{
    job->cb.value(&job->err, sky_span_make(job->out, job->out_len), job->ud);
}

/* ---- (a) cache */

static int run_cache_get(sky__sqlite *q, sky__sqlite_job *job)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_CACHE_GET, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    sqlite3_bind_int64(st, 2, sky__store_now_ms());
    return step_blob(q, st, job, "reading the cache");
}

void sky__sqlite_cache_get(sky__store *s, const char *key, sky__store_value_cb cb, void *ud)
{
    sky__sqlite_job *job = make_job(s, run_cache_get, deliver_value, ud, key, NULL, NULL, no_blob);
    if (!job) {
        sky_error e = oom_error();
        sky__store_fail_value(s, cb, ud, &e);
        return;
    }
    job->cb.value = cb;
    sky__sqlite_submit(s, job);
}

static int evict(sky__sqlite *q, int64_t now, sky_error *err)
{
    int64_t freed = 0;
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_CACHE_EXPIRE, err);
    if (!st)
        return SQLITE_ERROR;
    sqlite3_bind_int64(st, 1, now);
    int rc = step_sizes(q, st, &freed, err);
    while (rc == SQLITE_OK && q->cache_bytes - freed > (int64_t)q->cache_max) {
        int64_t before = freed;
        if (!(st = sky__sqlite_stmt(q, Q_CACHE_EVICT, err)))
            return SQLITE_ERROR;
        rc = step_sizes(q, st, &freed, err);
        if (freed == before)
            break; /* empty */
    }
    q->cache_bytes -= freed;
    return rc;
}

static int old_size(sky__sqlite *q, const char *key, int64_t *out, sky_error *err)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_CACHE_OLD_SIZE, err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, key);
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK
                                                 : sky__sqlite_fail(q, err, rc, "caching");
}

static int run_cache_put(sky__sqlite *q, sky__sqlite_job *job)
{
    int64_t now = sky__store_now_ms(), old = 0;
    if (job->blob_len > q->cache_max) {
        sky_error_set(&job->err, SKY_ETOOBIG, "value larger than the cache");
        return SQLITE_TOOBIG;
    }
    int rc = old_size(q, job->s1, &old, &job->err);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_CACHE_PUT, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    sqlite3_bind_blob(st, 2, job->blob ? job->blob : "", (int)job->blob_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)job->blob_len);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, job->i1 ? now + job->i1 : 0);
    if ((rc = sky__sqlite_step_done(q, st, &job->err, "caching")) != SQLITE_OK)
        return rc;
    q->cache_bytes += (int64_t)job->blob_len - old;
    return evict(q, now, &job->err);
}

void sky__sqlite_cache_put(sky__store *s, const char *key, sky_span value, uint64_t ttl_ms,
                           sky__store_done_cb cb, void *ud)
{
    sky__sqlite_job *job = write_job(s, run_cache_put, cb, ud, key, NULL, NULL, value);
    if (job) {
        job->i1 = (int64_t)ttl_ms;
        sky__sqlite_submit(s, job);
    }
}

/* ---- (c) documents */

static int run_doc_put(sky__sqlite *q, sky__sqlite_job *job)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_DOC_PUT, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    bind_text(st, 2, job->s2);
    sqlite3_bind_blob(st, 3, job->blob ? job->blob : "", (int)job->blob_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, sky__store_now_ms());
    return sky__sqlite_step_done(q, st, &job->err, "storing a document");
}

void sky__sqlite_doc_put(sky__store *s, const char *scope, const char *id, sky_span doc,
                         sky__store_done_cb cb, void *ud)
{
    sky__sqlite_job *job = write_job(s, run_doc_put, cb, ud, scope, id, NULL, doc);
    if (job)
        sky__sqlite_submit(s, job);
}

static int run_doc_get(sky__sqlite *q, sky__sqlite_job *job)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_DOC_GET, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    bind_text(st, 2, job->s2);
    return step_blob(q, st, job, "reading a document");
}

void sky__sqlite_doc_get(sky__store *s, const char *scope, const char *id, sky__store_value_cb cb,
                         void *ud)
{
    sky__sqlite_job *job = make_job(s, run_doc_get, deliver_value, ud, scope, id, NULL, no_blob);
    if (!job) {
        sky_error e = oom_error();
        sky__store_fail_value(s, cb, ud, &e);
        return;
    }
    job->cb.value = cb;
    sky__sqlite_submit(s, job);
}

/* A write that must change a row: SKY_ENOTFOUND when it changed none. */
static int step_changed(sky__sqlite *q, sqlite3_stmt *st, sky__sqlite_job *job, const char *what)
{
    int rc = sky__sqlite_step_done(q, st, &job->err, what);
    if (rc == SQLITE_OK && sqlite3_changes(q->db) == 0)
        sky_error_set(&job->err, SKY_ENOTFOUND, "no such entry");
    return rc;
}

static int run_doc_delete(sky__sqlite *q, sky__sqlite_job *job)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_DOC_DELETE, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    bind_text(st, 2, job->s2);
    return step_changed(q, st, job, "deleting a document");
}

void sky__sqlite_doc_delete(sky__store *s, const char *scope, const char *id, sky__store_done_cb cb,
                            void *ud)
{
    sky__sqlite_job *job = write_job(s, run_doc_delete, cb, ud, scope, id, NULL, no_blob);
    if (job)
        sky__sqlite_submit(s, job);
}

/* ---- (d) keys */

static int run_key_put(sky__sqlite *q, sky__sqlite_job *job)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_KEY_PUT, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    bind_text(st, 2, job->s2);
    bind_text(st, 3, job->s3);
    sqlite3_bind_int64(st, 4, job->i1);
    return sky__sqlite_step_done(q, st, &job->err, "storing a key");
}

void sky__sqlite_key_put(sky__store *s, const sky__store_key *key, sky__store_done_cb cb, void *ud)
{
    sky__sqlite_job *job = write_job(s, run_key_put, cb, ud, key->name, key->hash,
                                     key->config ? key->config : "{}", no_blob);
    if (job) {
        job->i1 = key->created_ms;
        sky__sqlite_submit(s, job);
    }
}

/* Columns 0-2 of the statement's current row copied into one allocation (freed through
 * *dst[0]); a NULL column reads as "". SQLITE_OK or SQLITE_NOMEM. */
int sky__sqlite_column_strings(sqlite3_stmt *st, const char **dst[3])
{
    size_t lens[3];
    for (int c = 0; c < 3; c++)
        lens[c] = (size_t)sqlite3_column_bytes(st, c) + 1;
    char *p = malloc(lens[0] + lens[1] + lens[2]);
    if (!p)
        return SQLITE_NOMEM;
    for (int c = 0; c < 3; c++) {
        const unsigned char *v = sqlite3_column_text(st, c);
        memcpy(p, v ? (const char *)v : "", lens[c] - 1);
        p[lens[c] - 1] = '\0';
        *dst[c] = p;
        p += lens[c];
    }
    return SQLITE_OK;
}

/* One row of the key list, its strings in one allocation (freed through .name). */
static int key_row(sqlite3_stmt *st, sky__store_key *k)
{
    const char **dst[3] = {&k->name, &k->hash, &k->config};
    if (sky__sqlite_column_strings(st, dst) != SQLITE_OK)
        return SQLITE_NOMEM;
    k->created_ms = sqlite3_column_int64(st, 3);
    k->revoked = sqlite3_column_int(st, 4);
    return SQLITE_OK;
}

static int run_key_list(sky__sqlite *q, sky__sqlite_job *job)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_KEY_LIST, &job->err);
    if (!st)
        return SQLITE_ERROR;
    int rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (job->nrows == cap) {
            cap = cap ? cap * 2 : 16;
            void *grown = realloc(job->rows, cap * sizeof(sky__store_key));
            if (!grown)
                break;
            job->rows = grown;
        }
        if (key_row(st, (sky__store_key *)job->rows + job->nrows) != SQLITE_OK)
            break;
        job->nrows++;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        sky_error_set(&job->err, SKY_ENOMEM, "out of memory");
        return SQLITE_NOMEM;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : sky__sqlite_fail(q, &job->err, rc, "listing keys");
}

static void deliver_keys(sky__sqlite_job *job)
{
    sky__store_key *rows = job->rows;
    job->cb.keys(&job->err, job->err.code ? NULL : rows, job->err.code ? 0 : job->nrows, job->ud);
    for (size_t i = 0; i < job->nrows; i++)
        free((void *)(uintptr_t)rows[i].name);
}

void sky__sqlite_key_list(sky__store *s, sky__store_keys_cb cb, void *ud)
{
    sky__sqlite_job *job = make_job(s, run_key_list, deliver_keys, ud, NULL, NULL, NULL, no_blob);
    if (!job) {
        sky_error e = oom_error();
        sky__store_fail_keys(s, cb, ud, &e);
        return;
    }
    job->cb.keys = cb;
    sky__sqlite_submit(s, job);
}

static int run_key_revoke(sky__sqlite *q, sky__sqlite_job *job)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_KEY_REVOKE, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    return step_changed(q, st, job, "revoking a key");
}

void sky__sqlite_key_revoke(sky__store *s, const char *name, sky__store_done_cb cb, void *ud)
{
    sky__sqlite_job *job = write_job(s, run_key_revoke, cb, ud, name, NULL, NULL, no_blob);
    if (job)
        sky__sqlite_submit(s, job);
}

/* ---- counters */

static int run_counter_add(sky__sqlite *q, sky__sqlite_job *job)
{
    int64_t now = sky__store_now_ms();
    sqlite3_stmt *st = sky__sqlite_stmt(q, Q_COUNTER_EXPIRE, &job->err);
    if (!st)
        return SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    sqlite3_bind_int64(st, 2, now);
    int rc = sky__sqlite_step_done(q, st, &job->err, "counting");
    if (rc != SQLITE_OK || !(st = sky__sqlite_stmt(q, Q_COUNTER_ADD, &job->err)))
        return rc != SQLITE_OK ? rc : SQLITE_ERROR;
    bind_text(st, 1, job->s1);
    sqlite3_bind_int64(st, 2, job->i1);
    sqlite3_bind_int64(st, 3, job->i2 ? now + job->i2 : 0);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        job->out_i = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : sky__sqlite_fail(q, &job->err, rc, "counting");
}

static void deliver_count(sky__sqlite_job *job)
{
    job->cb.count(&job->err, job->out_i, job->ud);
}

void sky__sqlite_counter_add(sky__store *s, const char *name, int64_t delta, uint64_t ttl_ms,
                             sky__store_count_cb cb, void *ud)
{
    sky__sqlite_job *job =
        make_job(s, run_counter_add, deliver_count, ud, name, NULL, NULL, no_blob);
    if (!job) {
        sky_error e = oom_error();
        sky__store_fail_count(s, cb, ud, &e);
        return;
    }
    job->writes = 1;
    job->i1 = delta;
    job->i2 = (int64_t)ttl_ms;
    job->cb.count = cb;
    sky__sqlite_submit(s, job);
}
