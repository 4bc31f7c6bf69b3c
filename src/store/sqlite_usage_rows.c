/*
 * The usage batch being written, as a table of the writer's connection: skyio_usage_rows, an
 * eponymous virtual table (SQLite's documented module interface) whose rows are the batch's
 * records, read straight from the queue's copies. The batch goes in with one
 * `INSERT INTO usage ... SELECT ... FROM skyio_usage_rows`: no parameter is bound, and the
 * statement starts and ends once a batch instead of once every 32 records (binding ten
 * values a record cost more than a quarter of writing it).
 *
 * The table shows q->rows, which the writer thread sets only while it steps that statement;
 * at any other time it is empty. It cannot be used from triggers or views (DIRECTONLY).
 */
#include <stdlib.h>

#include "sqlite_internal.h"

typedef struct rows_vtab {
    sqlite3_vtab base; /* first: SQLite's part */
    sky__sqlite *q;
} rows_vtab;

typedef struct rows_cursor {
    sqlite3_vtab_cursor base; /* first: SQLite's part */
    const sky__sqlite_rows *rows;
    size_t i;
} rows_cursor;

enum { C_TIME, C_DAY, C_KEY, C_MODEL, C_DEPLOYMENT, C_STATUS, C_IN, C_OUT, C_LATENCY, C_COST };

static int rows_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                        sqlite3_vtab **out, char **err)
{
    (void)argc;
    (void)argv;
    (void)err;
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(time_ms INTEGER, day TEXT, key_name TEXT,"
                                      " model TEXT, deployment TEXT, status INTEGER,"
                                      " tokens_in INTEGER, tokens_out INTEGER,"
                                      " latency_us INTEGER, cost REAL)");
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    rows_vtab *vt = sqlite3_malloc(sizeof(*vt));
    if (!vt)
        return SQLITE_NOMEM;
    memset(vt, 0, sizeof(*vt));
    vt->q = aux;
    *out = &vt->base;
    return SQLITE_OK;
}

static int rows_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

/* One way to read it: every row, in the batch's order. */
static int rows_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    (void)vt;
    info->estimatedCost = 1.0;
    info->estimatedRows = 512;
    return SQLITE_OK;
}

static int rows_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    rows_cursor *c = sqlite3_malloc(sizeof(*c));
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    *out = &c->base;
    return SQLITE_OK;
}

static int rows_close(sqlite3_vtab_cursor *c)
{
    sqlite3_free(c);
    return SQLITE_OK;
}

static int rows_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
                       sqlite3_value **argv)
{
    (void)idx_num;
    (void)idx_str;
    (void)argc;
    (void)argv;
    rows_cursor *c = (rows_cursor *)cur;
    c->rows = ((rows_vtab *)cur->pVtab)->q->rows;
    c->i = 0;
    return SQLITE_OK;
}

static int rows_next(sqlite3_vtab_cursor *cur)
{
    ((rows_cursor *)cur)->i++;
    return SQLITE_OK;
}

static int rows_eof(sqlite3_vtab_cursor *cur)
{
    const rows_cursor *c = (const rows_cursor *)cur;
    return c->rows == NULL || c->i >= c->rows->n;
}

/* With its length: SQLite would count it a byte at a time. */
static void result_text(sqlite3_context *ctx, const char *v)
{
    sqlite3_result_text(ctx, v, (int)strlen(v), SQLITE_STATIC);
}

static int rows_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    const rows_cursor *c = (const rows_cursor *)cur;
    const sky__store_usage *r = &c->rows->recs[c->i];
    switch (col) {
    case C_TIME:
        sqlite3_result_int64(ctx, r->time_ms);
        break;
    case C_DAY:
        result_text(ctx, c->rows->days[c->i]);
        break;
    case C_KEY:
        result_text(ctx, r->key_name);
        break;
    case C_MODEL:
        result_text(ctx, r->model);
        break;
    case C_DEPLOYMENT:
        result_text(ctx, r->deployment);
        break;
    case C_STATUS:
        sqlite3_result_int(ctx, r->status);
        break;
    case C_IN:
        sqlite3_result_int64(ctx, r->tokens_in);
        break;
    case C_OUT:
        sqlite3_result_int64(ctx, r->tokens_out);
        break;
    case C_LATENCY:
        sqlite3_result_int64(ctx, r->latency_us);
        break;
    default:
        sqlite3_result_double(ctx, r->cost);
        break;
    }
    return SQLITE_OK;
}

static int rows_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *out)
{
    *out = (sqlite3_int64)((const rows_cursor *)cur)->i;
    return SQLITE_OK;
}

/* No xCreate: eponymous only (it exists in every schema without CREATE VIRTUAL TABLE);
 * read-only (no xUpdate). */
static const sqlite3_module rows_module = {
    .iVersion = 0,
    .xConnect = rows_connect,
    .xBestIndex = rows_best_index,
    .xDisconnect = rows_disconnect,
    .xOpen = rows_open,
    .xClose = rows_close,
    .xFilter = rows_filter,
    .xNext = rows_next,
    .xEof = rows_eof,
    .xColumn = rows_column,
    .xRowid = rows_rowid,
};

int sky__sqlite_rows_register(sky__sqlite *q)
{
    return sqlite3_create_module_v2(q->db, "skyio_usage_rows", &rows_module, q, NULL);
}
