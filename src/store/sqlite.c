/*
 * The SQLite store: one writer thread owns the connection. The loop hands it jobs through a
 * queue; the thread takes everything queued at once and runs it as one transaction (each
 * write in its own savepoint, so one failing write does not undo the others), then hands
 * the finished jobs back through a uv_async. Jobs run in the order they were given.
 */
#include <stdlib.h>

#include "sqlite_internal.h"

sky__sqlite_job *sky__sqlite_job_new(sky__store *s, sky__sqlite_run_fn run,
                                     sky__sqlite_deliver_fn deliver, void *ud)
{
    sky__sqlite_job *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    job->run = run;
    job->deliver = deliver;
    job->ud = ud;
    job->store = s;
    return job;
}

void sky__sqlite_job_free(sky__sqlite_job *job)
{
    free(job->s1);
    free(job->s2);
    free(job->s3);
    free(job->blob);
    free(job->out);
    free(job->rows);
    free(job);
}

int sky__sqlite_fail(sky__sqlite *q, sky_error *err, int rc, const char *what)
{
    int primary = rc & 0xff;
    const char *detail = q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc);
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
        sky_error_set(err, SKY_EBUSY, "%s: %s: locked by another process (%s)", q->path, what,
                      detail);
    else if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
        sky_error_set(err, SKY_EIO, "%s: %s: not a SQLite database, or corrupt (%s)", q->path, what,
                      detail);
    else
        sky_error_set(err, SKY_EIO, "%s: %s: %s", q->path, what, detail);
    return rc;
}

static sqlite3_stmt *stmt(sky__sqlite *q, sky__sqlite_q id, int clear, sky_error *err)
{
    sqlite3_stmt *st = q->stmts[id];
    if (st) {
        sqlite3_reset(st);
        if (clear)
            sqlite3_clear_bindings(st);
        return st;
    }
    int rc = sqlite3_prepare_v3(q->db, sky__sqlite_sql(id), -1, SQLITE_PREPARE_PERSISTENT,
                                &q->stmts[id], NULL);
    if (rc != SQLITE_OK) {
        sky__sqlite_fail(q, err, rc, "preparing a statement");
        return NULL;
    }
    return q->stmts[id];
}

sqlite3_stmt *sky__sqlite_stmt(sky__sqlite *q, sky__sqlite_q id, sky_error *err)
{
    return stmt(q, id, 1, err);
}

sqlite3_stmt *sky__sqlite_stmt_rebind(sky__sqlite *q, sky__sqlite_q id, sky_error *err)
{
    return stmt(q, id, 0, err);
}

static int step_simple(sky__sqlite *q, sky__sqlite_q id, sky_error *err)
{
    sqlite3_stmt *st = sky__sqlite_stmt(q, id, err);
    if (!st)
        return SQLITE_ERROR;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : sky__sqlite_fail(q, err, rc, "savepoint");
}

static int run_open(sky__sqlite *q, sky__sqlite_job *job);

/* Keep the loop alive while jobs are out or the thread is stopping. */
static void update_ref(sky__sqlite *q)
{
    if (q->pending > 0 || q->closing)
        uv_ref((uv_handle_t *)&q->async);
    else
        uv_unref((uv_handle_t *)&q->async);
}

/* One job; a write runs in a savepoint that is rolled back when it fails. */
static void run_job(sky__sqlite *q, sky__sqlite_job *job)
{
    if (!q->db && job->run != run_open) {
        sky_error_set(&job->err, SKY_ESTATE, "%s: not open", q->path);
        return;
    }
    if (job->writes && step_simple(q, Q_SAVEPOINT, &job->err) != SQLITE_OK)
        return;
    int rc = job->run(q, job);
    if (!job->writes)
        return;
    sky_error ignored;
    sky_error_clear(&ignored);
    if (rc != SQLITE_OK)
        step_simple(q, Q_ROLLBACK_TO, &ignored);
    step_simple(q, Q_RELEASE, &ignored);
}

/* A failed commit undoes every job of the batch: each is told so. */
static void fail_batch(sky__sqlite_job *list, const sky_error *why)
{
    for (sky__sqlite_job *j = list; j; j = j->next) {
        if (j->err.code)
            continue;
        j->err = *why; /* deliver gives no rows on error, and frees them */
        free(j->out);
        j->out = NULL;
        j->out_len = 0;
    }
}

static void run_batch(sky__sqlite *q, sky__sqlite_job *list)
{
    if (!q->db) { /* the open job comes alone, first */
        for (sky__sqlite_job *j = list; j; j = j->next)
            run_job(q, j);
        return;
    }
    /* A batch of reads only (cache lookups) takes no write lock. */
    int writes = 0;
    for (sky__sqlite_job *j = list; j; j = j->next)
        writes |= j->writes;
    sky_error why;
    sky_error_clear(&why);
    int rc = sqlite3_exec(q->db, writes ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sky__sqlite_fail(q, &why, rc, "starting a transaction");
        fail_batch(list, &why);
        return;
    }
    for (sky__sqlite_job *j = list; j; j = j->next)
        run_job(q, j);
    rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sky__sqlite_fail(q, &why, rc, "committing");
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        fail_batch(list, &why);
    }
}

static void close_db(sky__sqlite *q)
{
    for (int i = 0; i < Q__COUNT; i++) {
        sqlite3_finalize(q->stmts[i]);
        q->stmts[i] = NULL;
    }
    if (q->db)
        sqlite3_close(q->db);
    q->db = NULL;
}

static void thread_main(void *arg)
{
    sky__sqlite *q = arg;
    for (;;) {
        uv_mutex_lock(&q->mu);
        while (!q->in_head && !q->stop)
            uv_cond_wait(&q->cv, &q->mu);
        sky__sqlite_job *batch = q->in_head;
        q->in_head = q->in_tail = NULL;
        int last = q->stop && !batch;
        uv_mutex_unlock(&q->mu);
        if (last)
            break;
        run_batch(q, batch);
        uv_mutex_lock(&q->mu);
        for (sky__sqlite_job *j = batch; j;) {
            sky__sqlite_job *next = j->next;
            j->next = NULL;
            if (q->out_tail)
                q->out_tail->next = j;
            else
                q->out_head = j;
            q->out_tail = j;
            j = next;
        }
        uv_mutex_unlock(&q->mu);
        uv_async_send(&q->async);
    }
    close_db(q);
    uv_mutex_lock(&q->mu);
    q->stopped = 1;
    uv_mutex_unlock(&q->mu);
    uv_async_send(&q->async);
}

static void on_async_closed(uv_handle_t *h)
{
    sky__sqlite *q = h->data;
    sky__store *s = q->store;
    uv_cond_destroy(&q->cv);
    uv_mutex_destroy(&q->mu);
    free(q);
    s->impl = NULL;
    sky__store_backend_closed(s);
}

static void on_async(uv_async_t *a)
{
    sky__sqlite *q = a->data;
    uv_mutex_lock(&q->mu);
    sky__sqlite_job *done = q->out_head;
    q->out_head = q->out_tail = NULL;
    int stopped = q->stopped;
    uv_mutex_unlock(&q->mu);
    while (done) {
        sky__sqlite_job *next = done->next;
        q->pending--;
        update_ref(q);
        done->deliver(done);
        sky__sqlite_job_free(done);
        done = next;
    }
    if (stopped && !uv_is_closing((uv_handle_t *)a)) {
        if (q->has_thread)
            uv_thread_join(&q->thread);
        uv_close((uv_handle_t *)a, on_async_closed);
    }
}

void sky__sqlite_submit(sky__store *s, sky__sqlite_job *job)
{
    sky__sqlite *q = s->impl;
    q->pending++;
    update_ref(q);
    uv_mutex_lock(&q->mu);
    if (q->in_tail)
        q->in_tail->next = job;
    else
        q->in_head = job;
    q->in_tail = job;
    uv_cond_signal(&q->cv);
    uv_mutex_unlock(&q->mu);
}

void sky__sqlite_deliver_done(sky__sqlite_job *job)
{
    if (job->cb.done)
        job->cb.done(&job->err, job->ud);
}

static int run_open(sky__sqlite *q, sky__sqlite_job *job)
{
    return sky__sqlite_open_db(q, &job->err);
}

static void deliver_open(sky__sqlite_job *job)
{
    sky__store_opened(job->store, &job->err);
}

static int sqlite_open(sky__store *s, sky_error *err)
{
    sky__sqlite *q = calloc(1, sizeof(*q));
    sky__sqlite_job *job = sky__sqlite_job_new(s, run_open, deliver_open, NULL);
    if (!q || !job) {
        free(q);
        free(job);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    q->store = s;
    q->path = sky__store_sqlite_path(s->url);
    q->cache_max = s->opts.cache_max_bytes;
    uv_mutex_init(&q->mu);
    uv_cond_init(&q->cv);
    uv_async_init(s->loop, &q->async, on_async);
    q->async.data = q;
    uv_unref((uv_handle_t *)&q->async);
    s->impl = q;
    if (uv_thread_create(&q->thread, thread_main, q) != 0) {
        /* No thread: report the failure through the open callback. */
        sky_error_set(&job->err, SKY_EINTERNAL, "%s: could not start the writer thread", q->path);
        q->stopped = 1;
        q->out_head = q->out_tail = job;
        q->pending = 1;
        update_ref(q);
        uv_async_send(&q->async);
        return 0;
    }
    q->has_thread = 1;
    sky__sqlite_submit(s, job);
    return 0;
}

static void sqlite_close(sky__store *s)
{
    sky__sqlite *q = s->impl;
    uv_mutex_lock(&q->mu);
    q->stop = 1;
    uv_cond_signal(&q->cv);
    uv_mutex_unlock(&q->mu);
    q->closing = 1; /* keep the loop until the thread is joined */
    update_ref(q);
}

const sky__store_vt sky__store_sqlite_vt = {
    .name = "sqlite",
    .caps = SKY__STORE_CACHE | SKY__STORE_USAGE | SKY__STORE_CONV | SKY__STORE_KEYS |
            SKY__STORE_COUNTERS,
    .open = sqlite_open,
    .cache_get = sky__sqlite_cache_get,
    .cache_put = sky__sqlite_cache_put,
    .usage_write = sky__sqlite_usage_write,
    .usage_totals = sky__sqlite_usage_totals,
    .doc_put = sky__sqlite_doc_put,
    .doc_get = sky__sqlite_doc_get,
    .doc_delete = sky__sqlite_doc_delete,
    .key_put = sky__sqlite_key_put,
    .key_list = sky__sqlite_key_list,
    .key_revoke = sky__sqlite_key_revoke,
    .counter_add = sky__sqlite_counter_add,
    .close = sqlite_close,
};
