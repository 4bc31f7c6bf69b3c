/*
 * Usage records past the memory bound, kept on a local SQLite file while the store cannot
 * write them (PostgreSQL away): nothing is lost below the spill's bound, and the file keeps
 * them across a restart. Once the memory queue is empty again (the server is back), the
 * oldest rows come back into it a batch at a time and are written as any record is.
 *
 * While anything is spilled, new records go to the spill too, so the records reach the
 * store in the order they came. Every statement runs on libuv's thread pool, one job at a
 * time (the connection is never shared between two threads at once); only the last save at
 * close runs on the loop, when nothing else is left to do.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

struct sky__usage_spill {
    sqlite3 *db;
    char path[512];
    uint64_t rows; /* on the file */
    sky__usage_node *pend_head, *pend_tail;
    size_t pend_n; /* waiting to be written to the file */
    int busy;      /* a job is on the thread pool */
    size_t job_n;  /* records of a write job under way */
};

typedef struct spill_job {
    uv_work_t req;
    sky__store *s;
    int reading;
    sky__usage_node *head; /* write: the records to save; read: the records read back */
    size_t n, want;
    int rc;
} spill_job;

static const char schema[] =
    "PRAGMA journal_mode = WAL;"
    "CREATE TABLE IF NOT EXISTS spilled_usage (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "time_ms INTEGER NOT NULL, key_name TEXT NOT NULL, model TEXT NOT NULL, "
    "deployment TEXT NOT NULL, status INTEGER NOT NULL, tokens_in INTEGER NOT NULL, "
    "tokens_out INTEGER NOT NULL, latency_us INTEGER NOT NULL, cost REAL NOT NULL);";

static void update_stats(sky__store *s)
{
    sky__usage_spill *sp = s->spill;
    s->stats.usage_spilled = sp->rows + sp->pend_n + sp->job_n;
}

static int count_rows(sqlite3 *db, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM spilled_usage", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

int sky__spill_open(sky__store *s, sky_error *err)
{
    sky__usage_spill *sp = calloc(1, sizeof(*sp));
    if (sp == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    snprintf(sp->path, sizeof(sp->path), "%s", s->opts.usage_spill_path);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(sp->path, &sp->db, flags, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(sp->db, 2000);
        rc = sqlite3_exec(sp->db, schema, NULL, NULL, NULL);
    }
    rc = rc == SQLITE_OK ? count_rows(sp->db, &sp->rows) : rc;
    if (rc != SQLITE_OK) {
        sky_error_set(err, SKY_EIO, "usage spill file %s: %s", sp->path,
                      sp->db ? sqlite3_errmsg(sp->db) : sqlite3_errstr(rc));
        sqlite3_close(sp->db);
        free(sp);
        return SKY_EIO;
    }
    s->spill = sp;
    update_stats(s);
    return 0;
}

int sky__spill_active(const sky__store *s)
{
    const sky__usage_spill *sp = s->spill;
    return sp && (sp->rows || sp->pend_n || sp->job_n);
}

int sky__spill_busy(const sky__store *s)
{
    return s->spill && s->spill->busy;
}

/* ---- on the thread pool ---- */

/* Open a write transaction and prepare @p sql in it (*st NULL when either failed). */
static int txn_begin(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    *st = NULL;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    return rc == SQLITE_OK ? sqlite3_prepare_v2(db, sql, -1, st, NULL) : rc;
}

/* Commit when @p rc is SQLITE_OK, else roll back; the first failure. */
static int txn_end(sqlite3 *db, int rc)
{
    int end = sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return rc == SQLITE_OK ? end : rc;
}

static int insert_all(sqlite3 *db, sky__usage_node *head)
{
    sqlite3_stmt *st;
    int rc = txn_begin(db,
                       "INSERT INTO spilled_usage (time_ms, key_name, model, deployment, status, "
                       "tokens_in, tokens_out, latency_us, cost) VALUES (?,?,?,?,?,?,?,?,?)",
                       &st);
    for (sky__usage_node *n = head; rc == SQLITE_OK && n; n = n->next) {
        const sky__store_usage *u = &n->rec;
        sqlite3_bind_int64(st, 1, u->time_ms);
        sqlite3_bind_text(st, 2, u->key_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, u->model, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, u->deployment, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, u->status);
        sqlite3_bind_int64(st, 6, u->tokens_in);
        sqlite3_bind_int64(st, 7, u->tokens_out);
        sqlite3_bind_int64(st, 8, u->latency_us);
        sqlite3_bind_double(st, 9, u->cost);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return txn_end(db, rc);
}

static sky__usage_node *row_node(sqlite3_stmt *st)
{
    sky__store_usage u = {
        .time_ms = sqlite3_column_int64(st, 1),
        .key_name = (const char *)sqlite3_column_text(st, 2),
        .model = (const char *)sqlite3_column_text(st, 3),
        .deployment = (const char *)sqlite3_column_text(st, 4),
        .status = sqlite3_column_int(st, 5),
        .tokens_in = sqlite3_column_int64(st, 6),
        .tokens_out = sqlite3_column_int64(st, 7),
        .latency_us = sqlite3_column_int64(st, 8),
        .cost = sqlite3_column_double(st, 9),
    };
    return sky__usage_node_new(&u);
}

static void free_list(sky__usage_node *n)
{
    while (n) {
        sky__usage_node *next = n->next;
        free(n);
        n = next;
    }
}

/* The oldest @p j->want rows, taken off the file in one transaction. */
static int take_rows(sqlite3 *db, spill_job *j)
{
    sqlite3_stmt *st, *del = NULL;
    sky__usage_node **tail = &j->head;
    int64_t last = 0;
    int rc = txn_begin(db,
                       "SELECT id, time_ms, key_name, model, deployment, status, tokens_in, "
                       "tokens_out, latency_us, cost FROM spilled_usage ORDER BY id LIMIT ?",
                       &st);
    if (rc == SQLITE_OK)
        sqlite3_bind_int64(st, 1, (sqlite3_int64)j->want);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        if ((*tail = row_node(st)) == NULL)
            rc = SQLITE_NOMEM;
        else {
            tail = &(*tail)->next;
            last = sqlite3_column_int64(st, 0);
            j->n++;
        }
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "DELETE FROM spilled_usage WHERE id <= ?", -1, &del, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(del, 1, last);
        rc = sqlite3_step(del) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(del);
    rc = txn_end(db, rc);
    if (rc != SQLITE_OK) {
        free_list(j->head);
        j->head = NULL;
        j->n = 0;
    }
    return rc;
}

static void run_job(uv_work_t *req)
{
    spill_job *j = req->data;
    sqlite3 *db = j->s->spill->db;
    j->rc = j->reading ? take_rows(db, j) : insert_all(db, j->head);
}

/* ---- on the loop ---- */

static void after_job(uv_work_t *req, int status)
{
    spill_job *j = req->data;
    sky__store *s = j->s;
    sky__usage_spill *sp = s->spill;
    sp->busy = 0;
    if (j->reading) {
        sp->rows -= j->n;
        if (j->n)
            sky__store_usage_take(s, j->head, j->n);
    } else {
        sp->job_n = 0;
        if (j->rc == SQLITE_OK && status == 0)
            sp->rows += j->n;
        else
            s->stats.usage_lost += j->n; /* the disk refused them */
        free_list(j->head);
    }
    update_stats(s);
    free(j);
    if (s->closing)
        sky__store_usage_close_step(s);
    else
        sky__spill_tick(s);
}

static void start_job(sky__store *s, int reading)
{
    sky__usage_spill *sp = s->spill;
    spill_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return; /* tried again on the next tick */
    j->s = s;
    j->reading = reading;
    j->req.data = j;
    if (reading) {
        j->want = s->opts.usage_batch_max;
    } else {
        j->head = sp->pend_head;
        j->n = sp->job_n = sp->pend_n;
        sp->pend_head = sp->pend_tail = NULL;
        sp->pend_n = 0;
    }
    sp->busy = 1;
    if (uv_queue_work(s->loop, &j->req, run_job, after_job) != 0) {
        sp->busy = 0;
        if (!reading) { /* back where they were */
            sp->pend_head = j->head;
            sp->pend_tail = j->head;
            while (sp->pend_tail && sp->pend_tail->next)
                sp->pend_tail = sp->pend_tail->next;
            sp->pend_n = j->n;
            sp->job_n = 0;
        }
        free(j);
    }
}

int sky__spill_add(sky__store *s, sky__usage_node *n)
{
    sky__usage_spill *sp = s->spill;
    if (s->stats.usage_spilled >= s->opts.usage_spill_max)
        return -1;
    n->next = NULL;
    if (sp->pend_tail)
        sp->pend_tail->next = n;
    else
        sp->pend_head = n;
    sp->pend_tail = n;
    sp->pend_n++;
    update_stats(s);
    if (sp->pend_n >= s->opts.usage_batch_max && !sp->busy)
        start_job(s, 0);
    return 0;
}

void sky__spill_tick(sky__store *s)
{
    sky__usage_spill *sp = s->spill;
    if (sp == NULL || sp->busy || s->closing || s->open_cb)
        return;
    if (sp->pend_n)
        start_job(s, 0);
    else if (sp->rows && s->q_head == NULL && !s->writing) /* the store keeps up again */
        start_job(s, 1);
}

void sky__spill_close(sky__store *s)
{
    sky__usage_spill *sp = s->spill;
    if (sp == NULL)
        return;
    /* what memory still holds goes to the file first: it is older than what is there */
    sky__usage_node *mem = s->q_head;
    size_t n = s->stats.usage_queued + sp->pend_n;
    if (mem) {
        s->q_tail->next = sp->pend_head;
        sp->pend_head = mem;
    }
    s->q_head = s->q_tail = NULL;
    s->stats.usage_queued = 0;
    if (sp->pend_head && insert_all(sp->db, sp->pend_head) != SQLITE_OK)
        s->stats.usage_lost += n;
    free_list(sp->pend_head);
    sqlite3_close(sp->db);
    free(sp);
    s->spill = NULL;
}
