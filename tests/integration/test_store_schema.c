/*
 * The stores' schema and their SQL, against real files and servers:
 * - a SQLite file written by the first schema (version 1, its DDL frozen here as that
 *   version wrote it) opens with the current skyio, is migrated to the current version
 *   (the one a new file gets) and keeps what it held;
 * - a file from a newer skyio is refused with an error naming the file;
 * - values that read as SQL stay values (every statement binds its parameters), on SQLite
 *   and on PostgreSQL (initdb + pg_ctl in a temp dir, skipped when not installed);
 * - a PostgreSQL URL naming two hosts, the first refusing, opens on the second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"
#include "harness_postgres.h"
#include "harness_store.h"
#include "sqlite_schema_v1.h"
#include "store/store.h"

/* ---- waiting for one callback */

typedef struct waiter {
    int done;
    sky_error err;
    char value[256];
    size_t n;           /* rows or keys */
    char key_name[128]; /* the first row's or key's name */
    int64_t requests;   /* the first row's */
    int64_t tokens_in;  /* the first row's */
} waiter;

static void wait_for(uv_loop_t *loop, waiter *w)
{
    assert_true(sky_test_run_until(loop, &w->done, 20000));
}

static void on_done(const sky_error *err, void *ud)
{
    waiter *w = ud;
    w->err = *err;
    w->done = 1;
}

static void on_value(const sky_error *err, sky_span v, void *ud)
{
    waiter *w = ud;
    w->err = *err;
    w->done = 1;
    if (!err->code)
        snprintf(w->value, sizeof(w->value), "%.*s", (int)v.len, v.len ? v.ptr : "");
}

static void on_totals(const sky_error *err, const sky__store_usage_total *rows, size_t n, void *ud)
{
    waiter *w = ud;
    w->err = *err;
    w->done = 1;
    w->n = n;
    if (n > 0) {
        snprintf(w->key_name, sizeof(w->key_name), "%s", rows[0].key_name);
        snprintf(w->value, sizeof(w->value), "%s", rows[0].day);
        w->requests = rows[0].requests;
        w->tokens_in = rows[0].tokens_in;
    }
}

static void on_keys(const sky_error *err, const sky__store_key *keys, size_t n, void *ud)
{
    waiter *w = ud;
    w->err = *err;
    w->done = 1;
    w->n = n;
    if (n > 0)
        snprintf(w->key_name, sizeof(w->key_name), "%s", keys[0].name);
}

static int file_version(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- an earlier schema's file */

/* Schema version 1 as skyio first wrote it, with a row in each table. Never edit: it stands
 * for the files users have. */
static const char schema_v1_file[] =
    "PRAGMA journal_mode = WAL;"
    "BEGIN;" SKY_TEST_SQLITE_SCHEMA_V1_TABLES
    "INSERT INTO cache VALUES('req-hash', 'an answer', 9, 1767312000000, 0);"
    "INSERT INTO usage(time_ms, day, key_name, model, deployment, status, tokens_in,"
    " tokens_out, latency_us, cost)"
    " VALUES(1767312000000, '2026-01-02', 'team-old', 'gpt-4o', 'east', 200, 11, 7, 900, 0.5);"
    "INSERT INTO docs VALUES('team-old', 'resp_old', '{\"id\":\"resp_old\"}', 1767312000000);"
    "INSERT INTO keys VALUES('team-old', 'ab12', '{}', 1767312000000, 0);"
    "PRAGMA user_version = 1;"
    "COMMIT;";

static void sqlite_first_schema_file_opens(void **state)
{
    (void)state;
    char dir[256], old[300], fresh[300];
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(old, sizeof(old), "%s/old.db", dir);
    snprintf(fresh, sizeof(fresh), "%s/fresh.db", dir);
    sky_test_sqlite_exec(old, schema_v1_file);
    uv_loop_t *loop = sky_test_loop_new();
    sky__store_close_sync(loop, sky_test_store_open(loop, fresh)); /* the current version */
    sky__store *s = sky_test_store_open(loop, old);
    waiter w = {0};
    sky__store_doc_get(s, "team-old", "resp_old", on_value, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    assert_string_equal(w.value, "{\"id\":\"resp_old\"}");
    memset(&w, 0, sizeof(w));
    sky__store_cache_get(s, "req-hash", on_value, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    assert_string_equal(w.value, "an answer");
    memset(&w, 0, sizeof(w));
    sky__store_usage_totals(s, NULL, on_totals, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.value, "2026-01-02");
    assert_int_equal(w.tokens_in, 11);
    memset(&w, 0, sizeof(w));
    sky__store_key_list(s, on_keys, &w);
    wait_for(loop, &w);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.key_name, "team-old");
    sky__store_close_sync(loop, s);
    sky_test_loop_free(loop);
    assert_true(file_version(fresh) >= 1);
    assert_int_equal(file_version(old), file_version(fresh));
    sky_test_rmdir(dir);
}

/* A file from a newer skyio (a schema this one does not know) is refused, not changed. */
static void sqlite_newer_file_is_refused(void **state)
{
    (void)state;
    char dir[256], path[300];
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/newer.db", dir);
    sky_test_sqlite_exec(path, "CREATE TABLE t(x); PRAGMA user_version = 9999;");
    uv_loop_t *loop = sky_test_loop_new();
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = path;
    sky__store *s = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_not_equal(sky__store_open_sync(loop, &o, &s, &err), 0);
    assert_null(s);
    if (!strstr(err.message, path) || !strstr(err.message, "newer"))
        fail_msg("error \"%s\" does not name the file and the newer schema", err.message);
    sky_test_loop_free(loop);
    assert_int_equal(file_version(path), 9999);
    sky_test_rmdir(dir);
}

/* ---- values that read as SQL */

static const char evil_scope[] = "team'); DROP TABLE docs; --";
static const char evil_id[] = "resp_1' OR '1'='1";
static const char evil_key[] = "k\"; DELETE FROM usage; --";

static void evil_docs(uv_loop_t *loop, sky__store *s)
{
    waiter w = {0};
    sky__store_doc_put(s, evil_scope, evil_id, sky_span_cstr("{\"a\":\"'\"}"), on_done, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    memset(&w, 0, sizeof(w));
    sky__store_doc_get(s, evil_scope, evil_id, on_value, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    assert_string_equal(w.value, "{\"a\":\"'\"}");
    memset(&w, 0, sizeof(w));
    sky__store_doc_get(s, "team", "resp_1", on_value, &w); /* the injection matched nothing */
    wait_for(loop, &w);
    assert_int_equal(w.err.code, SKY_ENOTFOUND);
}

static void evil_usage(uv_loop_t *loop, sky__store *s)
{
    sky__store_usage rec = {.time_ms = sky__store_now_ms(),
                            .key_name = evil_key,
                            .model = "gpt-'4o'",
                            .deployment = "d'; --",
                            .status = 200,
                            .tokens_in = 5,
                            .tokens_out = 3};
    assert_int_equal(sky__store_usage_append(s, &rec), 0);
    rec.key_name = "other";
    assert_int_equal(sky__store_usage_append(s, &rec), 0);
    waiter w = {0};
    sky__store_usage_flush(s, on_done, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    memset(&w, 0, sizeof(w));
    sky__store_usage_totals(s, evil_key, on_totals, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.key_name, evil_key);
    assert_int_equal(w.requests, 1);
    memset(&w, 0, sizeof(w));
    sky__store_usage_totals(s, "x' OR '1'='1", on_totals, &w); /* no row, not every row */
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    assert_int_equal(w.n, 0);
}

static void evil_keys(uv_loop_t *loop, sky__store *s)
{
    sky__store_key k = {.name = evil_key, .hash = "ab'cd", .config = "{}", .created_ms = 1};
    waiter w = {0};
    sky__store_key_put(s, &k, on_done, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    memset(&w, 0, sizeof(w));
    sky__store_key_revoke(s, "' OR '1'='1", on_done, &w); /* names no key */
    wait_for(loop, &w);
    assert_int_equal(w.err.code, SKY_ENOTFOUND);
    memset(&w, 0, sizeof(w));
    sky__store_key_list(s, on_keys, &w);
    wait_for(loop, &w);
    assert_int_equal(w.n, 1);
    assert_string_equal(w.key_name, evil_key);
}

static void values_stay_values(const char *url)
{
    uv_loop_t *loop = sky_test_loop_new();
    sky__store *s = sky_test_store_open(loop, url);
    evil_docs(loop, s);
    evil_usage(loop, s);
    evil_keys(loop, s);
    sky__store_close_sync(loop, s);
    s = sky_test_store_open(loop, url); /* the tables are all still there */
    waiter w = {0};
    sky__store_doc_get(s, evil_scope, evil_id, on_value, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    memset(&w, 0, sizeof(w));
    sky__store_usage_totals(s, NULL, on_totals, &w);
    wait_for(loop, &w);
    assert_int_equal(w.n, 2);
    sky__store_close_sync(loop, s);
    sky_test_loop_free(loop);
}

static void sqlite_values_stay_values(void **state)
{
    (void)state;
    char dir[256], path[300];
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/state.db", dir);
    values_stay_values(path);
    sky_test_rmdir(dir);
}

/* libpq tries the next host when the first refuses (the refusal must not end the open). */
static void postgres_next_host(int port)
{
    char url[256];
    snprintf(url, sizeof(url), "postgresql://skyio@127.0.0.1:%d,127.0.0.1:%d/postgres",
             sky_test_closed_port(), port);
    uv_loop_t *loop = sky_test_loop_new();
    sky__store *s = sky_test_store_open(loop, url);
    waiter w = {0};
    sky__store_doc_get(s, evil_scope, evil_id, on_value, &w);
    wait_for(loop, &w);
    assert_int_equal(w.err.code, 0);
    sky__store_close_sync(loop, s);
    sky_test_loop_free(loop);
}

/* The cluster is stopped in the teardown, so a failed case leaves no server behind. */
static sky_test_pg pg;

static int pg_setup(void **state)
{
    (void)state;
    if (sky_test_pg_available())
        sky_test_pg_start(&pg);
    return 0;
}

static int pg_teardown(void **state)
{
    (void)state;
    if (pg.dir[0])
        sky_test_pg_free(&pg);
    memset(&pg, 0, sizeof(pg));
    return 0;
}

static void postgres_values_stay_values(void **state)
{
    (void)state;
    if (!pg.dir[0]) {
        print_message("PostgreSQL is not installed (scripts/install-deps); skipped\n");
        skip();
    }
    values_stay_values(pg.url);
    postgres_next_host(pg.port);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sqlite_first_schema_file_opens),
        cmocka_unit_test(sqlite_newer_file_is_refused),
        cmocka_unit_test(sqlite_values_stay_values),
        cmocka_unit_test_setup_teardown(postgres_values_stay_values, pg_setup, pg_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
