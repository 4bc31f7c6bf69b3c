/*
 * The SQLite store's usage totals, kept in usage_daily beside the records (schema 2):
 * - a file of schema 1 (the records and their index, no totals table) with thousands of
 *   records over several days, keys and models opens with the current skyio, its totals
 *   the same as its records' sums, the records kept, and records written after add to
 *   them; two stores opening such a file at once both open, one of them migrating it;
 * - after many batches of every size (full ones, odd-sized flushes, one at a time, several
 *   days and keys in one batch, names too long for a reused queue node among them), `skyio usage
 * --json` prints the totals the test counted itself, and they are the sums of the rows in `usage`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "harness.h"
#include "harness_store.h"
#include "sqlite_schema_v1.h"
#include "store/store.h"

#define DAY_MS 86400000LL
#define T0 1796428800000LL /* 2026-12-05T00:00:00Z */

#define LONG_NAME                                                                                  \
    "a-key-name-longer-than-what-the-queue-keeps-room-for-in-a-reused-node-"                       \
    "so-its-record-takes-a-node-of-its-own-and-frees-it-after-its-batch-0123456789"
static const char *const keys[] = {"team-a", "team-b", "", "k'; DROP TABLE usage; --", LONG_NAME};
static const char *const models[] = {"gpt-4o", "gpt-4o-mini", "o3"};

/* ---- one group's sums, by day, key and model */

typedef struct sums {
    char day[11];
    char key[200];
    char model[32];
    int64_t requests, errors, tokens_in, tokens_out;
    double cost;
} sums;

typedef struct table {
    sums rows[256];
    size_t n;
} table;

static sums *find(table *t, const char *day, const char *key, const char *model)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->rows[i].day, day) && !strcmp(t->rows[i].key, key) &&
            !strcmp(t->rows[i].model, model))
            return &t->rows[i];
    assert_true(t->n < SKY_ARRAY_LEN(t->rows));
    sums *s = &t->rows[t->n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->day, sizeof(s->day), "%s", day);
    snprintf(s->key, sizeof(s->key), "%s", key);
    snprintf(s->model, sizeof(s->model), "%s", model);
    return s;
}

static void add(table *t, const char *day, const char *key, const char *model, int status,
                int64_t in, int64_t out, double cost)
{
    sums *s = find(t, day, key, model);
    s->requests++;
    s->errors += status >= 400;
    s->tokens_in += in;
    s->tokens_out += out;
    s->cost += cost;
}

static void assert_same(const table *want, const table *got)
{
    assert_int_equal(got->n, want->n);
    for (size_t i = 0; i < want->n; i++) {
        const sums *w = &want->rows[i];
        const sums *g = NULL;
        for (size_t j = 0; j < got->n && !g; j++)
            if (!strcmp(got->rows[j].day, w->day) && !strcmp(got->rows[j].key, w->key) &&
                !strcmp(got->rows[j].model, w->model))
                g = &got->rows[j];
        if (!g)
            fail_msg("no totals for %s / '%s' / %s", w->day, w->key, w->model);
        assert_int_equal(g->requests, w->requests);
        assert_int_equal(g->errors, w->errors);
        assert_int_equal(g->tokens_in, w->tokens_in);
        assert_int_equal(g->tokens_out, w->tokens_out);
        if (g->cost < w->cost - 1e-6 || g->cost > w->cost + 1e-6)
            fail_msg("cost of %s / '%s' / %s: %.9f, want %.9f", w->day, w->key, w->model, g->cost,
                     w->cost);
    }
}

/* ---- the file, read directly */

static sqlite3 *open_file(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static int64_t query_int(const char *path, const char *sql)
{
    sqlite3 *db = open_file(path);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The sums of the rows in `usage`, grouped as the totals are. */
static void sums_of_rows(const char *path, table *out)
{
    sqlite3 *db = open_file(path);
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT day, key_name, model, status, tokens_in, tokens_out, cost FROM usage";
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    memset(out, 0, sizeof(*out));
    while (sqlite3_step(st) == SQLITE_ROW)
        add(out, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2), sqlite3_column_int(st, 3),
            sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5), sqlite3_column_double(st, 6));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- the store */

typedef struct waiter {
    int done;
    sky_error err;
    table *totals;
} waiter;

static void on_done(const sky_error *err, void *ud)
{
    waiter *w = ud;
    w->err = *err;
    w->done = 1;
}

static void on_totals(const sky_error *err, const sky__store_usage_total *rows, size_t n, void *ud)
{
    waiter *w = ud;
    w->err = *err;
    w->done = 1;
    memset(w->totals, 0, sizeof(*w->totals));
    for (size_t i = 0; i < n; i++) {
        sums *s = find(w->totals, rows[i].day, rows[i].key_name, rows[i].model);
        s->requests = rows[i].requests;
        s->errors = rows[i].errors;
        s->tokens_in = rows[i].tokens_in;
        s->tokens_out = rows[i].tokens_out;
        s->cost = rows[i].cost;
    }
}

static void flush(uv_loop_t *loop, sky__store *s)
{
    waiter w = {0};
    sky__store_usage_flush(s, on_done, &w);
    assert_true(sky_test_run_until(loop, &w.done, 20000));
    assert_int_equal(w.err.code, 0);
}

static void read_totals(uv_loop_t *loop, sky__store *s, table *out)
{
    waiter w = {.totals = out};
    sky__store_usage_totals(s, NULL, on_totals, &w);
    assert_true(sky_test_run_until(loop, &w.done, 20000));
    assert_int_equal(w.err.code, 0);
}

/* Record @p i of a made-up stream: spread over 3 days, 4 keys, 3 models, 1 in 7 an error. */
static sky__store_usage record(int i)
{
    sky__store_usage u = {.time_ms = T0 + (int64_t)(i % 3) * DAY_MS + i,
                          .key_name = keys[(i / 3) % SKY_ARRAY_LEN(keys)],
                          .model = models[(i / 5) % SKY_ARRAY_LEN(models)],
                          .deployment = "east",
                          .status = i % 7 == 0 ? 429 : 200,
                          .tokens_in = 10 + i % 13,
                          .tokens_out = i % 11,
                          .latency_us = 900,
                          .cost = (double)(i % 9) / 1000.0};
    return u;
}

static void append(sky__store *s, table *want, int i)
{
    sky__store_usage u = record(i);
    assert_int_equal(sky__store_usage_append(s, &u), 0);
    char day[11];
    sky__store_day(u.time_ms, day);
    add(want, day, u.key_name, u.model, u.status, u.tokens_in, u.tokens_out, u.cost);
}

/* ---- schema 1, as skyio wrote it (frozen: it stands for the files users have) */

static const char schema_v1[] = "PRAGMA journal_mode = WAL;"
                                "BEGIN;" SKY_TEST_SQLITE_SCHEMA_V1_TABLES "PRAGMA user_version = 1;"
                                "COMMIT;";

/* @p n records of the made-up stream into a schema 1 file, as schema 1's skyio wrote them. */
static void write_v1_records(const char *path, int n, table *want)
{
    sqlite3 *db = open_file(path);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "INSERT INTO usage(time_ms, day, key_name, model, deployment, status,"
                           " tokens_in, tokens_out, latency_us, cost)"
                           " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           -1, &st, NULL),
        SQLITE_OK);
    for (int i = 0; i < n; i++) {
        sky__store_usage u = record(i);
        char day[11];
        sky__store_day(u.time_ms, day);
        sqlite3_bind_int64(st, 1, u.time_ms);
        sqlite3_bind_text(st, 2, day, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, u.key_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, u.model, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, u.deployment, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, u.status);
        sqlite3_bind_int64(st, 7, u.tokens_in);
        sqlite3_bind_int64(st, 8, u.tokens_out);
        sqlite3_bind_int64(st, 9, u.latency_us);
        sqlite3_bind_double(st, 10, u.cost);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
        add(want, day, u.key_name, u.model, u.status, u.tokens_in, u.tokens_out, u.cost);
    }
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* A schema 1 file, v1.db in a new temp folder @p dir (its path in @p path), holding @p n
 * records whose sums go to @p want. */
static void v1_file(char *dir, size_t dir_len, char *path, size_t path_len, int n, table *want)
{
    sky_test_tmpdir(dir, dir_len);
    snprintf(path, path_len, "%s/v1.db", dir);
    sky_test_sqlite_exec(path, schema_v1);
    memset(want, 0, sizeof(*want));
    write_v1_records(path, n, want);
}

static void schema_1_file_keeps_its_totals(void **state)
{
    (void)state;
    char dir[256], path[300];
    static table want, got;
    v1_file(dir, sizeof(dir), path, sizeof(path), 5000, &want);

    uv_loop_t *loop = sky_test_loop_new();
    sky__store *s = sky_test_store_open(loop, path);
    read_totals(loop, s, &got);
    assert_same(&want, &got);
    for (int i = 5000; i < 6100; i++) /* and later records add to them */
        append(s, &want, i);
    flush(loop, s);
    read_totals(loop, s, &got);
    assert_same(&want, &got);
    sky__store_close_sync(loop, s);
    sky_test_loop_free(loop);

    assert_int_equal(query_int(path, "PRAGMA user_version"), 2);
    assert_int_equal(query_int(path, "SELECT COUNT(*) FROM usage"), 6100);
    assert_int_equal(query_int(path, "SELECT COUNT(*) FROM sqlite_master WHERE name = "
                                     "'usage_by_day'"),
                     0);
    sums_of_rows(path, &got);
    assert_same(&want, &got);
    sky_test_rmdir(dir);
}

/* Two gateways starting on one schema 1 file at once: one migrates, the other finds the file
 * migrated once it has the write lock, and both open. */
typedef struct opening {
    int done;
    sky__store *store;
    sky_error err;
} opening;

static void on_open(sky__store *store, const sky_error *err, void *ud)
{
    opening *o = ud;
    o->store = store;
    o->err = *err;
    o->done = 1;
}

static void two_stores_migrate_one_file(void **state)
{
    (void)state;
    char dir[256], path[300];
    static table want, got;
    v1_file(dir, sizeof(dir), path, sizeof(path), 20000, &want);
    uv_loop_t *loop = sky_test_loop_new();
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = path;
    opening a = {0}, b = {0};
    assert_int_equal(sky__store_open(loop, &o, on_open, &a), 0);
    assert_int_equal(sky__store_open(loop, &o, on_open, &b), 0);
    assert_true(sky_test_run_until(loop, &a.done, 20000));
    assert_true(sky_test_run_until(loop, &b.done, 20000));
    if (!a.store || !b.store)
        fail_msg("opening: %s / %s", a.err.message, b.err.message);
    read_totals(loop, a.store, &got);
    assert_same(&want, &got);
    read_totals(loop, b.store, &got);
    assert_same(&want, &got);
    sky__store_close_sync(loop, a.store);
    sky__store_close_sync(loop, b.store);
    sky_test_loop_free(loop);
    assert_int_equal(query_int(path, "PRAGMA user_version"), 2);
    sky_test_rmdir(dir);
}

/* ---- many batches, read by `skyio usage` */

/* `skyio usage ARGS`'s stdout (malloc'd) and exit status. */
static int run_usage_cli(const char *args, char **out)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s usage %s 2>/dev/null", SKY_TEST_BIN, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20;
    *out = calloc(1, cap);
    assert_non_null(*out);
    size_t n = fread(*out, 1, cap - 1, p);
    (*out)[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void cli_totals(const char *path, table *out)
{
    char args[512], *text = NULL;
    snprintf(args, sizeof(args), "--state %s --json", path);
    assert_int_equal(run_usage_cli(args, &text), 0);
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("skyio usage --json: %s: %s", jerr.text, text);
    json_t *rows = json_object_get(doc, "totals");
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *r = json_array_get(rows, i);
        sums *s = find(out, json_string_value(json_object_get(r, "day")),
                       json_string_value(json_object_get(r, "key")),
                       json_string_value(json_object_get(r, "model")));
        s->requests = json_integer_value(json_object_get(r, "requests"));
        s->errors = json_integer_value(json_object_get(r, "errors"));
        s->tokens_in = json_integer_value(json_object_get(r, "tokens_in"));
        s->tokens_out = json_integer_value(json_object_get(r, "tokens_out"));
        s->cost = json_number_value(json_object_get(r, "cost"));
    }
    json_decref(doc);
    free(text);
}

static void many_batches_add_up(void **state)
{
    (void)state;
    char dir[256], path[300];
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/gw.db", dir);
    static table want, got;
    memset(&want, 0, sizeof(want));
    uv_loop_t *loop = sky_test_loop_new();
    sky__store *s = sky_test_store_open(loop, path);
    int i = 0;
    for (; i < 10240; i++) /* full batches of 512, written as the queue fills */
        append(s, &want, i);
    flush(loop, s);
    static const int sizes[] = {1, 31, 32, 33, 63, 64, 65, 511, 513, 7, 1000};
    for (size_t k = 0; k < SKY_ARRAY_LEN(sizes); k++) {
        for (int j = 0; j < sizes[k]; j++, i++)
            append(s, &want, i);
        flush(loop, s);
    }
    sky__store_close_sync(loop, s); /* reopened: the totals are on the file */
    s = sky_test_store_open(loop, path);
    for (int j = 0; j < 100; j++, i++) /* queued at close: close writes them */
        append(s, &want, i);
    sky__store_close_sync(loop, s);
    sky_test_loop_free(loop);

    cli_totals(path, &got);
    assert_same(&want, &got);
    assert_int_equal(query_int(path, "SELECT COUNT(*) FROM usage"), i);
    /* every row is its record (record()), in the order appended: the batch table keeps it */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM usage WHERE time_ms != %lld + ((id - 1) %% 3) * %lld + id - 1"
             " OR tokens_in != 10 + (id - 1) %% 13",
             (long long)T0, (long long)DAY_MS);
    assert_int_equal(query_int(path, sql), 0);
    sums_of_rows(path, &got);
    assert_same(&want, &got);
    /* the batch table lives in the store's connection only: the file knows nothing of it */
    sqlite3 *db = open_file(path);
    sqlite3_stmt *st = NULL;
    assert_int_not_equal(sqlite3_prepare_v2(db, "SELECT * FROM skyio_usage_rows", -1, &st, NULL),
                         SQLITE_OK);
    sqlite3_close(db);
    sky_test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schema_1_file_keeps_its_totals),
        cmocka_unit_test(two_stores_migrate_one_file),
        cmocka_unit_test(many_batches_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
