/* The SQLite store's insides: the writer thread, its jobs and its statements. */
#ifndef SKY_STORE_SQLITE_INTERNAL_H
#define SKY_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "internal.h"

typedef struct sky__sqlite sky__sqlite;
typedef struct sky__sqlite_job sky__sqlite_job;

/* The usage batch the table skyio_usage_rows shows (sqlite_usage_rows.c): record i, on the
 * day days[i]; all borrowed. */
typedef struct sky__sqlite_rows {
    const sky__store_usage *recs;
    const char *const *days;
    size_t n;
} sky__sqlite_rows;

/* The statements, prepared once on the writer thread when first used. */
typedef enum {
    Q_SAVEPOINT,
    Q_RELEASE,
    Q_ROLLBACK_TO,
    Q_CACHE_GET,
    Q_CACHE_EXPIRE,
    Q_CACHE_OLD_SIZE,
    Q_CACHE_PUT,
    Q_CACHE_EVICT,
    Q_USAGE_INSERT, /* a batch's records, from skyio_usage_rows */
    Q_USAGE_ADD,    /* a batch's sums into usage_daily */
    Q_USAGE_TOTALS,
    Q_DOC_PUT,
    Q_DOC_GET,
    Q_DOC_DELETE,
    Q_KEY_PUT,
    Q_KEY_LIST,
    Q_KEY_REVOKE,
    Q_COUNTER_EXPIRE,
    Q_COUNTER_ADD,
    Q__COUNT
} sky__sqlite_q;

/* Runs on the writer thread: SQLITE_OK or the failing result code (job->err set). */
typedef int (*sky__sqlite_run_fn)(sky__sqlite *q, sky__sqlite_job *job);
/* Runs on the loop: calls the job's callback. */
typedef void (*sky__sqlite_deliver_fn)(sky__sqlite_job *job);

struct sky__sqlite_job {
    sky__sqlite_job *next;
    sky__sqlite_run_fn run;
    sky__sqlite_deliver_fn deliver;
    int writes; /* runs inside a savepoint */
    char *s1, *s2, *s3;
    char *blob;
    size_t blob_len;
    int64_t i1, i2;
    const sky__store_usage *recs; /* borrowed until the callback */
    size_t nrecs;
    union {
        sky__store_done_cb done;
        sky__store_value_cb value;
        sky__store_count_cb count;
        sky__store_totals_cb totals;
        sky__store_keys_cb keys;
    } cb;
    void *ud;
    sky__store *store;
    sky_error err;
    /* results */
    char *out;
    size_t out_len;
    int64_t out_i;
    void *rows;
    size_t nrows;
};

struct sky__sqlite {
    sky__store *store;
    const char *path;
    sqlite3 *db;                   /* writer thread only */
    sqlite3_stmt *stmts[Q__COUNT]; /* writer thread only */
    int64_t cache_bytes;           /* writer thread only */
    const sky__sqlite_rows *rows;  /* writer thread only: set while Q_USAGE_INSERT steps */
    uint64_t cache_max;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    sky__sqlite_job *in_head, *in_tail;   /* under mu */
    sky__sqlite_job *out_head, *out_tail; /* under mu */
    int stop, stopped;                    /* under mu */
    uv_async_t async;
    size_t pending; /* loop thread: jobs given to the thread, not yet delivered */
    int closing;    /* loop thread */
    int has_thread;
};

/* sqlite.c */
sky__sqlite_job *sky__sqlite_job_new(sky__store *s, sky__sqlite_run_fn run,
                                     sky__sqlite_deliver_fn deliver, void *ud);
void sky__sqlite_job_free(sky__sqlite_job *job);
/* Give @p job to the writer thread (0), or fail it later through its deliver (nonzero). */
void sky__sqlite_submit(sky__store *s, sky__sqlite_job *job);
/* Record SQLite's failure @p rc in @p err, naming the file; returns rc. */
int sky__sqlite_fail(sky__sqlite *q, sky_error *err, int rc, const char *what);
/* The statement @p id, reset and unbound, or NULL (job->err set). */
sqlite3_stmt *sky__sqlite_stmt(sky__sqlite *q, sky__sqlite_q id, sky_error *err);
/* The same, its old values left bound: for a caller that binds every parameter (a usage
 * batch: clearing 320 parameters a statement costs as much as a bind). */
sqlite3_stmt *sky__sqlite_stmt_rebind(sky__sqlite *q, sky__sqlite_q id, sky_error *err);

/* sqlite_schema.c: open the file, WAL, migrate. SQLITE_OK or the failure (err set). */
int sky__sqlite_open_db(sky__sqlite *q, sky_error *err);
/* Steps a statement that returns no rows and resets it; SQLITE_OK, or the failure in @p err. */
int sky__sqlite_step_done(sky__sqlite *q, sqlite3_stmt *st, sky_error *err, const char *what);
/* Columns 0-2 of @p st's current row into one allocation, freed through *dst[0]. */
int sky__sqlite_column_strings(sqlite3_stmt *st, const char **dst[3]);
const char *sky__sqlite_sql(sky__sqlite_q id);

/* sqlite_usage_rows.c: the table skyio_usage_rows on q->db, showing q->rows. */
int sky__sqlite_rows_register(sky__sqlite *q);

/* sqlite_ops.c: the backend's operations. */
void sky__sqlite_cache_get(sky__store *s, const char *key, sky__store_value_cb cb, void *ud);
void sky__sqlite_cache_put(sky__store *s, const char *key, sky_span value, uint64_t ttl_ms,
                           sky__store_done_cb cb, void *ud);
void sky__sqlite_usage_write(sky__store *s, const sky__store_usage *recs, size_t n,
                             sky__store_done_cb cb, void *ud);
void sky__sqlite_usage_totals(sky__store *s, const char *key_name, const char *since_day,
                              sky__store_totals_cb cb, void *ud);
void sky__sqlite_doc_put(sky__store *s, const char *scope, const char *id, sky_span doc,
                         sky__store_done_cb cb, void *ud);
void sky__sqlite_doc_get(sky__store *s, const char *scope, const char *id, sky__store_value_cb cb,
                         void *ud);
void sky__sqlite_doc_delete(sky__store *s, const char *scope, const char *id, sky__store_done_cb cb,
                            void *ud);
void sky__sqlite_key_put(sky__store *s, const sky__store_key *key, sky__store_done_cb cb, void *ud);
void sky__sqlite_key_list(sky__store *s, sky__store_keys_cb cb, void *ud);
void sky__sqlite_key_revoke(sky__store *s, const char *name, sky__store_done_cb cb, void *ud);
void sky__sqlite_counter_add(sky__store *s, const char *name, int64_t delta, uint64_t ttl_ms,
                             sky__store_count_cb cb, void *ud);

/* Delivery helpers shared by the operations. */
void sky__sqlite_deliver_done(sky__sqlite_job *job);

#endif
