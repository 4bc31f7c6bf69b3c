/*
 * The PostgreSQL store's schema and usage batches against a real server (initdb + pg_ctl in
 * a temp dir, skipped when not installed):
 * - databases written by schema versions 1, 2 and 3 (their DDL frozen here as those versions
 *   wrote it: 1, the records indexed by day, key and model, no sums; 2, no index, the sums
 *   in skyio_usage_daily kept by a statement trigger, each row an id and its day; 3, nine
 *   columns a row, the sums added by the gateway) open with the current skyio, are migrated
 *   to version 4 (the records packed, a row per group, read one a row through the view
 *   skyio_usage) with every record read back as written, one by one, and their totals what
 *   they were; records written afterwards add to them; a version 3 gateway's COPY, into the
 *   view now, still lands;
 * - packed rows (several a group, several COPYs of them, several deployments) come back
 *   through the view record by record, each value with its own record;
 * - a database from a newer skyio is refused with the version in the message;
 * - names with what COPY's formats give a meaning to (a tab, a newline, a carriage return,
 *   a backslash, "\." and "\N") come back as written;
 * - a batch of several COPYs (more rows than one takes) writes every row and the exact sums;
 * - two stores' batches over the same sums at once both add to them;
 * - a batch the server refuses fails its flush, whole (the rows of its earlier COPYs and
 *   its sums too), and the connection goes on serving;
 * - batches of many groups (60) give each group its exact sums, the same as the rows' own
 *   (through the connection's skyio_sums: version 3's view dropped), and a batch with a
 *   group whose names are too long for skyio_sums goes through the view, as does a batch
 *   of up to three groups, or one from a role that may not make temporary tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "harness.h"
#include "harness_postgres.h"
#include "harness_store.h"
#include "store/store.h"

/* Version 1's schema and its marker, as version 1 created them. */
static const char v1_schema[] =
    "CREATE TABLE skyio_schema(version integer NOT NULL);"
    "INSERT INTO skyio_schema VALUES (1);"
    "CREATE TABLE skyio_usage(id bigserial PRIMARY KEY, time_ms bigint NOT NULL,"
    " day text NOT NULL, key_name text NOT NULL, model text NOT NULL,"
    " deployment text NOT NULL, status integer NOT NULL, tokens_in bigint NOT NULL,"
    " tokens_out bigint NOT NULL, latency_us bigint NOT NULL,"
    " cost double precision NOT NULL);"
    "CREATE INDEX skyio_usage_by_day ON skyio_usage(day, key_name, model);"
    "CREATE TABLE skyio_docs(scope text NOT NULL, id text NOT NULL, doc text NOT NULL,"
    " updated_ms bigint NOT NULL, PRIMARY KEY(scope, id));"
    "CREATE TABLE skyio_keys(name text PRIMARY KEY, hash text NOT NULL,"
    " config text NOT NULL, created_ms bigint NOT NULL,"
    " revoked boolean NOT NULL DEFAULT false);"
    "CREATE TABLE skyio_counters(name text PRIMARY KEY, value bigint NOT NULL,"
    " expires_ms bigint NOT NULL);"
    /* 2026-12-01: team-a on gpt-4o twice (one failed), team-b once; 2026-12-02: team-a */
    "INSERT INTO skyio_usage(time_ms, day, key_name, model, deployment, status, tokens_in,"
    " tokens_out, latency_us, cost) VALUES"
    " (1796083200000, '2026-12-01', 'team-a', 'gpt-4o', 'd1', 200, 10, 20, 900, 0.25),"
    " (1796083201000, '2026-12-01', 'team-a', 'gpt-4o', 'd1', 502, 3, 0, 800, 0),"
    " (1796083202000, '2026-12-01', 'team-b', 'gpt-4o', 'd2', 200, 7, 8, 700, 0.5),"
    " (1796169600000, '2026-12-02', 'team-a', 'gpt-4o', 'd1', 200, 100, 200, 600, 1.5);"
    "INSERT INTO skyio_docs VALUES ('team-a', 'resp_1', '{\"kept\":true}', 1796083200000);";

/* What version 2's migration did to a version 1 database (its marker set to 2). */
static const char v2_step[] =
    "CREATE TABLE skyio_usage_daily(day text NOT NULL, key_name text NOT NULL,"
    " model text NOT NULL, requests bigint NOT NULL, errors bigint NOT NULL,"
    " tokens_in bigint NOT NULL, tokens_out bigint NOT NULL,"
    " cost double precision NOT NULL, PRIMARY KEY(day, key_name, model));"
    "INSERT INTO skyio_usage_daily SELECT day, key_name, model, count(*),"
    " count(*) FILTER (WHERE status >= 400), sum(tokens_in), sum(tokens_out), sum(cost)"
    " FROM skyio_usage GROUP BY day, key_name, model;"
    "CREATE FUNCTION skyio_usage_roll() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    " INSERT INTO skyio_usage_daily AS d SELECT day, key_name, model, count(*),"
    "  count(*) FILTER (WHERE status >= 400), sum(tokens_in), sum(tokens_out), sum(cost)"
    "  FROM skyio_new_usage GROUP BY day, key_name, model ORDER BY day, key_name, model"
    " ON CONFLICT (day, key_name, model) DO UPDATE SET"
    "  requests = d.requests + EXCLUDED.requests, errors = d.errors + EXCLUDED.errors,"
    "  tokens_in = d.tokens_in + EXCLUDED.tokens_in,"
    "  tokens_out = d.tokens_out + EXCLUDED.tokens_out, cost = d.cost + EXCLUDED.cost;"
    " RETURN NULL; END $f$;"
    "CREATE TRIGGER skyio_usage_roll AFTER INSERT ON skyio_usage"
    " REFERENCING NEW TABLE AS skyio_new_usage FOR EACH STATEMENT"
    " EXECUTE FUNCTION skyio_usage_roll();"
    "DROP INDEX skyio_usage_by_day;"
    "ALTER TABLE skyio_usage DROP CONSTRAINT skyio_usage_pkey;"
    "ALTER SEQUENCE skyio_usage_id_seq CACHE 1024;"
    "UPDATE skyio_schema SET version = 2;"
    /* written by version 2: 2026-12-02, team-b on gpt-4o, one failed; summed by its trigger */
    "INSERT INTO skyio_usage(time_ms, day, key_name, model, deployment, status, tokens_in,"
    " tokens_out, latency_us, cost) VALUES"
    " (1796169601000, '2026-12-02', 'team-b', 'gpt-4o', 'd2', 200, 5, 6, 500, 0.75),"
    " (1796169602000, '2026-12-02', 'team-b', 'gpt-4o', 'd2', 500, 1, 0, 400, 0);";

/* What version 3's migration did to a version 2 database (its marker set to 3), and two
 * records version 3 wrote (2026-12-02, team-c: one failed) with their sums. */
static const char v3_step[] =
    "DROP TRIGGER skyio_usage_roll ON skyio_usage;"
    "DROP FUNCTION skyio_usage_roll();"
    "ALTER TABLE skyio_usage DROP COLUMN id, DROP COLUMN day;"
    "CREATE VIEW skyio_usage_daily_add AS SELECT * FROM skyio_usage_daily WHERE false;"
    "CREATE FUNCTION skyio_usage_add() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    " INSERT INTO skyio_usage_daily AS d VALUES (NEW.day, NEW.key_name, NEW.model,"
    "  NEW.requests, NEW.errors, NEW.tokens_in, NEW.tokens_out, NEW.cost)"
    " ON CONFLICT (day, key_name, model) DO UPDATE SET"
    "  requests = d.requests + EXCLUDED.requests, errors = d.errors + EXCLUDED.errors,"
    "  tokens_in = d.tokens_in + EXCLUDED.tokens_in,"
    "  tokens_out = d.tokens_out + EXCLUDED.tokens_out, cost = d.cost + EXCLUDED.cost;"
    " RETURN NULL; END $f$;"
    "CREATE TRIGGER skyio_usage_add INSTEAD OF INSERT ON skyio_usage_daily_add"
    " FOR EACH ROW EXECUTE FUNCTION skyio_usage_add();"
    "UPDATE skyio_schema SET version = 3;"
    "INSERT INTO skyio_usage VALUES"
    " (1796169603000, 'team-c', 'gpt-4o', 'd3', 200, 4, 5, 300, 0.125),"
    " (1796169604000, 'team-c', 'gpt-4o', 'd3', 404, 2, 0, 200, 0);"
    "INSERT INTO skyio_usage_daily_add VALUES ('2026-12-02', 'team-c', 'gpt-4o', 2, 1, 6, 5,"
    " 0.125);";

/* Every record of the migration tests as the view gives it back, in time order: version
 * 1's four, version 2's two and version 3's two (each only from a database that version
 * wrote), and the two written after the migration (marked "new"). */
static const struct {
    int version; /* 0: written after the migration */
    const char *row;
} migrated_rows[] = {
    {1, "1796083200000,team-a,gpt-4o,d1,200,10,20,900,0.25"},
    {1, "1796083201000,team-a,gpt-4o,d1,502,3,0,800,0"},
    {1, "1796083202000,team-b,gpt-4o,d2,200,7,8,700,0.5"},
    {0, "1796083203000,team-a,gpt-4o,d1,429,1,2,3,0.25"},
    {1, "1796169600000,team-a,gpt-4o,d1,200,100,200,600,1.5"},
    {2, "1796169601000,team-b,gpt-4o,d2,200,5,6,500,0.75"},
    {2, "1796169602000,team-b,gpt-4o,d2,500,1,0,400,0"},
    {3, "1796169603000,team-c,gpt-4o,d3,200,4,5,300,0.125"},
    {3, "1796169604000,team-c,gpt-4o,d3,404,2,0,200,0"},
    {0, "1796256000000,team-a,gpt-4o,d1,200,1,2,3,0.25"},
};

/* The records through the view, one a line, in time order. */
static const char all_rows_sql[] =
    "SELECT string_agg(concat_ws(',', time_ms, key_name, model, deployment, status, tokens_in,"
    " tokens_out, latency_us, cost), E'\\n' ORDER BY time_ms, tokens_in) FROM skyio_usage";

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

/* Run @p sql on its own connection; the first row's first value (or "") into @p out. */
static void sql(const char *text, char *out, size_t len)
{
    PGconn *c = PQconnectdb(pg.url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connecting: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, text);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", text, PQerrorMessage(c));
    if (out)
        snprintf(out, len, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
}

/* ---- the store, one callback at a time */

typedef struct waiter {
    int done;
    sky_error err;
    size_t n;
    sky__store_usage_total rows[8];
    char strings[8][3][64]; /* each row's day, key, model */
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
    w->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        w->rows[i] = rows[i];
        snprintf(w->strings[i][0], 64, "%s", rows[i].day);
        snprintf(w->strings[i][1], 64, "%s", rows[i].key_name);
        snprintf(w->strings[i][2], 64, "%s", rows[i].model);
        w->rows[i].day = w->strings[i][0];
        w->rows[i].key_name = w->strings[i][1];
        w->rows[i].model = w->strings[i][2];
    }
}

/* The store at the test's server, or NULL and why in @p err (a refused open). */
static sky__store *open_pg(uv_loop_t *loop, sky_error *err)
{
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = pg.url;
    sky__store *s = NULL;
    sky_error_clear(err);
    return sky__store_open_sync(loop, &o, &s, err) == 0 ? s : NULL;
}

static void totals(uv_loop_t *loop, sky__store *s, const char *key, waiter *w)
{
    memset(w, 0, sizeof(*w));
    sky__store_usage_totals(s, key, on_totals, w);
    assert_true(sky_test_run_until(loop, &w->done, 20000));
    assert_int_equal(w->err.code, 0);
}

static void flush(uv_loop_t *loop, sky__store *s)
{
    waiter w = {0};
    sky__store_usage_flush(s, on_done, &w);
    assert_true(sky_test_run_until(loop, &w.done, 20000));
    assert_int_equal(w.err.code, 0);
}

/* A flush the server refuses: its error's code (and message in @p w). */
static int flush_refused(uv_loop_t *loop, sky__store *s, waiter *w)
{
    memset(w, 0, sizeof(*w));
    sky__store_usage_flush(s, on_done, w);
    assert_true(sky_test_run_until(loop, &w->done, 20000));
    return w->err.code;
}

/* A test's loop and the store on the test's server. */
static sky__store *open_fixture(uv_loop_t **loop)
{
    *loop = sky_test_loop_new();
    return sky_test_store_open(*loop, pg.url);
}

static void close_fixture(uv_loop_t *loop, sky__store *s)
{
    sky__store_close_sync(loop, s);
    sky_test_loop_free(loop);
}

static void assert_row(const sky__store_usage_total *r, const char *day, const char *key,
                       int64_t requests, int64_t errors, int64_t in, int64_t out, double cost)
{
    assert_string_equal(r->day, day);
    assert_string_equal(r->key_name, key);
    assert_string_equal(r->model, "gpt-4o");
    assert_int_equal(r->requests, requests);
    assert_int_equal(r->errors, errors);
    assert_int_equal(r->tokens_in, in);
    assert_int_equal(r->tokens_out, out);
    assert_true(r->cost == cost);
}

#define SKIP_WITHOUT_PG()                                                                          \
    do {                                                                                           \
        if (!pg.dir[0]) {                                                                          \
            print_message("PostgreSQL is not installed (scripts/install-deps); skipped\n");        \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The current schema: version 4, the records packed (no index) and read through a view of
 * nine columns; version 3's table of rows kept under its new name, no index either. */
static void assert_version4(void)
{
    char v[64];
    sql("SELECT version FROM skyio_schema", v, sizeof(v));
    assert_string_equal(v, "4");
    sql("SELECT relkind FROM pg_class WHERE relname = 'skyio_usage'", v, sizeof(v));
    assert_string_equal(v, "v");
    sql("SELECT count(*) FROM pg_indexes"
        " WHERE tablename IN ('skyio_usage_rows', 'skyio_usage_packed')",
        v, sizeof(v));
    assert_string_equal(v, "0");
    sql("SELECT count(*) FROM pg_attribute WHERE attrelid = 'skyio_usage'::regclass"
        " AND attnum > 0 AND NOT attisdropped",
        v, sizeof(v));
    assert_string_equal(v, "9");
    sql("SELECT count(*) FROM pg_trigger WHERE tgname = 'skyio_usage_roll'", v, sizeof(v));
    assert_string_equal(v, "0");
}

/* Every record written by @p version or earlier (and those written after the migration when
 * @p after) is a row of the view, as it was written, and no other. */
static void assert_rows(int version, int after)
{
    char got[2048], want[2048] = "";
    for (size_t i = 0; i < SKY_ARRAY_LEN(migrated_rows); i++) {
        int v = migrated_rows[i].version;
        if (v ? v <= version : after)
            snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", want[0] ? "\n" : "",
                     migrated_rows[i].row);
    }
    sql(all_rows_sql, got, sizeof(got));
    assert_string_equal(got, want);
}

/* Open a database version @p version wrote (1, 2 or 3: the records of migrated_rows up to
 * it): migrated, every record as it was, the same totals, records written afterwards
 * added, and reopened without a second migration. */
static void assert_migrated(int version)
{
    uv_loop_t *loop = sky_test_loop_new();
    sky__store *s = sky_test_store_open(loop, pg.url);
    assert_version4();
    assert_rows(version, 0);

    waiter w;
    totals(loop, s, NULL, &w); /* ordered by day, key, model */
    assert_int_equal(w.n, (size_t)(version == 1 ? 3 : version == 2 ? 4 : 5));
    assert_row(&w.rows[0], "2026-12-01", "team-a", 2, 1, 13, 20, 0.25);
    assert_row(&w.rows[1], "2026-12-01", "team-b", 1, 0, 7, 8, 0.5);
    assert_row(&w.rows[2], "2026-12-02", "team-a", 1, 0, 100, 200, 1.5);
    if (version >= 2)
        assert_row(&w.rows[3], "2026-12-02", "team-b", 2, 1, 6, 6, 0.75);
    if (version >= 3)
        assert_row(&w.rows[4], "2026-12-02", "team-c", 2, 1, 6, 5, 0.125);

    /* new records add to the migrated sums, and to a new day's */
    sky__store_usage u = {1796083203000, "team-a", "gpt-4o", "d1", 429, 1, 2, 3, 0.25};
    assert_int_equal(sky__store_usage_append(s, &u), 0);
    u.time_ms = 1796256000000; /* 2026-12-03 */
    u.status = 200;
    assert_int_equal(sky__store_usage_append(s, &u), 0);
    flush(loop, s);
    totals(loop, s, "team-a", &w);
    assert_int_equal(w.n, 3);
    assert_row(&w.rows[0], "2026-12-01", "team-a", 3, 2, 14, 22, 0.5);
    assert_row(&w.rows[1], "2026-12-02", "team-a", 1, 0, 100, 200, 1.5);
    assert_row(&w.rows[2], "2026-12-03", "team-a", 1, 0, 1, 2, 0.25);
    assert_rows(version, 1); /* every record is still a row, and the new ones too */
    char v[64];
    sql("SELECT sum(tokens_in) FROM skyio_usage WHERE key_name = 'team-a'", v, sizeof(v));
    assert_string_equal(v, "115");
    sky__store_close_sync(loop, s);

    /* opened again: nothing migrated twice */
    s = sky_test_store_open(loop, pg.url);
    totals(loop, s, "team-b", &w);
    assert_int_equal(w.n, version >= 2 ? 2 : 1);
    assert_row(&w.rows[0], "2026-12-01", "team-b", 1, 0, 7, 8, 0.5);
    sky__store_close_sync(loop, s);
    assert_rows(version, 1);
    sql("SELECT doc FROM skyio_docs WHERE id = 'resp_1'", v, sizeof(v));
    assert_string_equal(v, "{\"kept\":true}");
    sky_test_loop_free(loop);
}

static void version1_database_is_migrated(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    sql(v1_schema, NULL, 0);
    assert_migrated(1);
}

static void version2_database_is_migrated(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    sql(v1_schema, NULL, 0);
    sql(v2_step, NULL, 0);
    char v[64];
    sql("SELECT requests FROM skyio_usage_daily WHERE day = '2026-12-02' AND key_name = 'team-b'",
        v, sizeof(v));
    assert_string_equal(v, "2"); /* version 2's trigger summed them */
    assert_migrated(2);
}

static void version3_database_is_migrated(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    sql(v1_schema, NULL, 0);
    sql(v2_step, NULL, 0);
    sql(v3_step, NULL, 0);
    assert_migrated(3);
    /* a version 3 gateway still running: its COPY goes to the view now, and its rows land
     * in version 3's table, read through the view as before */
    PGconn *c = PQconnectdb(pg.url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "COPY skyio_usage(time_ms, key_name, model, deployment, status,"
                            " tokens_in, tokens_out, latency_us, cost) FROM STDIN");
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    static const char row[] = "1796342400000\tteam-d\tm\td4\t200\t1\t2\t3\t0\n";
    assert_int_equal(PQputCopyData(c, row, (int)strlen(row)), 1);
    assert_int_equal(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    char v[64];
    sql("SELECT count(*) FROM skyio_usage_rows WHERE key_name = 'team-d'", v, sizeof(v));
    assert_string_equal(v, "1");
    sql("SELECT latency_us FROM skyio_usage WHERE key_name = 'team-d'", v, sizeof(v));
    assert_string_equal(v, "3");
}

static void newer_database_is_refused(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    sql("CREATE TABLE skyio_schema(version integer NOT NULL);"
        "INSERT INTO skyio_schema VALUES (5);",
        NULL, 0);
    uv_loop_t *loop = sky_test_loop_new();
    sky_error err;
    sky__store *s = open_pg(loop, &err);
    assert_null(s);
    assert_non_null(strstr(err.message, "schema version 5 is newer"));
    sky_test_loop_free(loop);
}

/* What COPY's text format would give a meaning to, in names. */
static const char *const copy_names[] = {"tab\there", "new\nline", "cr\rhere", "back\\slash",
                                         "\\.",       "\\N",       "\\t",      "end\\"};

static void copy_escapes_come_back(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    uv_loop_t *loop;
    sky__store *s = open_fixture(&loop);
    const int64_t t = 1796083200000;
    for (size_t i = 0; i < SKY_ARRAY_LEN(copy_names); i++) {
        sky__store_usage u = {t, copy_names[i], copy_names[i], copy_names[i], 200, 1, 2, 3, 0};
        assert_int_equal(sky__store_usage_append(s, &u), 0);
    }
    flush(loop, s);
    waiter w;
    for (size_t i = 0; i < SKY_ARRAY_LEN(copy_names); i++) {
        totals(loop, s, copy_names[i], &w);
        assert_int_equal(w.n, 1);
        assert_string_equal(w.rows[0].key_name, copy_names[i]);
        assert_string_equal(w.rows[0].model, copy_names[i]);
        assert_int_equal(w.rows[0].requests, 1);
    }
    char v[64];
    sql("SELECT count(*) FROM skyio_usage WHERE deployment = key_name", v, sizeof(v));
    assert_string_equal(v, "8");
    close_fixture(loop, s);
}

/* Two gateways' batches at once, over the same groups (two keys, two days): no deadlock
 * (each batch adds its sums in the same order), and every record is in the sums. */
static void two_stores_add_to_the_same_sums(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    uv_loop_t *loop = sky_test_loop_new();
    sky__store *s[2] = {sky_test_store_open(loop, pg.url), sky_test_store_open(loop, pg.url)};
    for (int round = 0; round < 3; round++) {
        waiter w[2] = {{0}, {0}};
        for (int k = 0; k < 2; k++) {
            for (int i = 0; i < 400; i++) { /* a store's batch: the other order of keys */
                sky__store_usage u = {1796083200000 + (i % 2) * 86400000,
                                      (i / 2 + k) % 2 ? "b" : "a",
                                      "m",
                                      "d",
                                      200,
                                      1,
                                      0,
                                      0,
                                      0};
                assert_int_equal(sky__store_usage_append(s[k], &u), 0);
            }
            sky__store_usage_flush(s[k], on_done, &w[k]);
        }
        assert_true(sky_test_run_until(loop, &w[0].done, 20000));
        assert_true(sky_test_run_until(loop, &w[1].done, 20000));
        assert_int_equal(w[0].err.code, 0);
        assert_int_equal(w[1].err.code, 0);
    }
    waiter w;
    totals(loop, s[0], NULL, &w);
    assert_int_equal(w.n, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(w.rows[i].requests, 600); /* 3 rounds x 2 stores x 100 */
    sky__store_close_sync(loop, s[0]);
    sky__store_close_sync(loop, s[1]);
    sky_test_loop_free(loop);
}

/* A batch the server refuses (a name that is not UTF-8) fails its flush without hanging; the
 * connection goes on serving, the record stays queued, a later good record waits behind it,
 * and closing ends, counting both lost. */
static void refused_batch_keeps_the_connection(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    uv_loop_t *loop;
    sky__store *s = open_fixture(&loop);
    sky__store_usage bad = {1796083200000, "bad\xff", "m", "d", 200, 1, 1, 1, 0};
    assert_int_equal(sky__store_usage_append(s, &bad), 0);
    waiter w;
    assert_int_equal(flush_refused(loop, s, &w), SKY_EIO);
    assert_non_null(strstr(w.err.message, "UTF8"));
    totals(loop, s, NULL, &w); /* the same pool, still serving */
    assert_int_equal(w.n, 0);
    sky__store_usage good = {1796083200000, "good", "m", "d", 200, 1, 1, 1, 0};
    assert_int_equal(sky__store_usage_append(s, &good), 0);
    sky__store_stats st;
    sky__store_get_stats(s, &st);
    assert_int_equal(st.usage_queued + st.usage_written, 2);
    sky__store_close_sync(loop, s);
    char v[64];
    sql("SELECT count(*) FROM skyio_usage", v, sizeof(v));
    assert_string_equal(v, "0"); /* a batch is all or nothing */
    sql("SELECT count(*) FROM skyio_usage_daily", v, sizeof(v));
    assert_string_equal(v, "0");
    sky_test_loop_free(loop);
}

/* More records than a COPY takes (a batch is several): every row is written and the sums
 * are exact; one bad record in the batch's last COPY undoes its earlier COPYs too. */
static void batch_of_several_copies(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    uv_loop_t *loop;
    sky__store *s = open_fixture(&loop);
    for (int i = 0; i < 300; i++) { /* one batch: the queue writes 512 at once */
        sky__store_usage u = {1796083200000 + i,
                              i % 3 ? "team-a" : "team-b",
                              "gpt-4o",
                              "d1",
                              i % 10 ? 200 : 503,
                              i,
                              2,
                              3,
                              0.5};
        assert_int_equal(sky__store_usage_append(s, &u), 0);
    }
    flush(loop, s);
    waiter w;
    totals(loop, s, NULL, &w);
    assert_int_equal(w.n, 2); /* 0..299: 100 of team-b (i % 3 == 0), 10 of those failed */
    assert_row(&w.rows[0], "2026-12-01", "team-a", 200, 20, 44850 - 14850, 400, 100);
    assert_row(&w.rows[1], "2026-12-01", "team-b", 100, 10, 14850, 200, 50);
    char v[64];
    sql("SELECT count(*) FROM skyio_usage", v, sizeof(v));
    assert_string_equal(v, "300");

    for (int i = 0; i < 300; i++) {
        sky__store_usage u = {
            1796083300000 + i, i == 290 ? "bad\xff" : "team-c", "gpt-4o", "d1", 200, 1, 1, 1, 0};
        assert_int_equal(sky__store_usage_append(s, &u), 0);
    }
    assert_int_equal(flush_refused(loop, s, &w), SKY_EIO);
    sky__store_close_sync(loop, s);
    sql("SELECT count(*) FROM skyio_usage", v, sizeof(v));
    assert_string_equal(v, "300"); /* none of the refused batch's */
    sql("SELECT count(*) FROM skyio_usage_daily", v, sizeof(v));
    assert_string_equal(v, "2");
    sky_test_loop_free(loop);
}

/* The rows' own sums by day, key and model, and the totals table, hold the same groups. */
static void assert_sums_match_rows(void)
{
    char v[64];
    static const char rows_sums[] =
        "SELECT to_char(to_timestamp(time_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD'),"
        " key_name, model, count(*), count(*) FILTER (WHERE status >= 400), sum(tokens_in),"
        " sum(tokens_out), sum(cost) FROM skyio_usage GROUP BY 1, 2, 3";
    static const char daily[] = "SELECT day, key_name, model, requests, errors, tokens_in,"
                                " tokens_out, cost FROM skyio_usage_daily";
    char q[1024];
    snprintf(q, sizeof(q), "SELECT count(*) FROM ((%s EXCEPT %s) UNION ALL (%s EXCEPT %s)) x",
             rows_sums, daily, daily, rows_sums);
    sql(q, v, sizeof(v));
    assert_string_equal(v, "0");
}

/* Record @p i of packed_rows_come_back_one_by_one's batches: its deployment is "big" for
 * the first 200 (one group, three packed rows), else one of 150; every number derives from
 * i (the time's offset), so that the view's rows can be checked each against itself. */
static sky__store_usage packed_record(int i, char dep[16])
{
    snprintf(dep, 16, i < 200 ? "big" : "d-%03d", i % 150);
    sky__store_usage u = {
        1796083200000 + i, "k", "m", dep, i % 10 ? 200 : 503, i, 2 * i, 3 * i, 0.5 * i};
    return u;
}

/* 512 records in 151 groups (a group of 200: rows of at most 80), so 153 packed rows in
 * three COPYs: through the view each record comes back once, each value with its own
 * record; a batch whose last packed row the server refuses leaves nothing of its own. */
static void packed_rows_come_back_one_by_one(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    uv_loop_t *loop;
    sky__store *s = open_fixture(&loop);
    for (int i = 0; i < 512; i++) {
        char dep[16];
        sky__store_usage u = packed_record(i, dep);
        assert_int_equal(sky__store_usage_append(s, &u), 0);
    }
    flush(loop, s);
    char v[64];
    sql("SELECT count(*) || ' ' || count(DISTINCT time_ms) FROM skyio_usage", v, sizeof(v));
    assert_string_equal(v, "512 512");
    sql("SELECT count(*) FROM skyio_usage WHERE key_name = 'k' AND model = 'm'"
        " AND tokens_in = time_ms - 1796083200000 AND tokens_out = 2 * tokens_in"
        " AND latency_us = 3 * tokens_in AND cost = 0.5 * tokens_in"
        " AND (status = 503) = (tokens_in % 10 = 0) AND deployment = CASE WHEN tokens_in < 200"
        " THEN 'big' ELSE 'd-' || lpad((tokens_in % 150)::text, 3, '0') END",
        v, sizeof(v));
    assert_string_equal(v, "512");
    sql("SELECT count(*) || ' ' || max(cardinality(time_ms)) FROM skyio_usage_packed", v,
        sizeof(v));
    assert_string_equal(v, "153 80");
    /* kept as they are: no array compressed, nothing moved to the TOAST table (either costs
     * the server several times what writing the row does) */
    sql("SELECT count(*) FROM skyio_usage_packed WHERE pg_column_compression(time_ms) IS NOT NULL"
        " OR pg_column_compression(cost) IS NOT NULL",
        v, sizeof(v));
    assert_string_equal(v, "0");
    sql("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'skyio_usage_packed'",
        v, sizeof(v));
    assert_string_equal(v, "0");
    assert_sums_match_rows();

    for (int i = 0; i < 512; i++) { /* the last group's row (in the bytes' order) refused */
        char dep[16];
        sky__store_usage u = packed_record(i, dep);
        u.deployment = i == 511 ? "zz\xff" : u.deployment;
        assert_int_equal(sky__store_usage_append(s, &u), 0);
    }
    waiter w;
    assert_int_equal(flush_refused(loop, s, &w), SKY_EIO);
    sky__store_close_sync(loop, s);
    sql("SELECT count(*) FROM skyio_usage", v, sizeof(v));
    assert_string_equal(v, "512");
    sql("SELECT sum(requests) FROM skyio_usage_daily", v, sizeof(v));
    assert_string_equal(v, "512");
    sky_test_loop_free(loop);
}

/* ---- many groups a batch: the sums COPYd to the connection's skyio_sums and added by one
 * statement, and groups with names too long for it through version 3's view */

#define GROUPS 60 /* 2 days x 10 keys x 3 models */

typedef struct group_sums {
    int done;
    sky_error err;
    size_t n;
    int64_t requests[GROUPS], errors[GROUPS], in[GROUPS], out[GROUPS];
    double cost[GROUPS];
} group_sums;

/* Group @p i of the batch: its index in (day, key, model) order and its names. */
static int group_of(int i, char key[16], char model[16])
{
    int day = i % 2, k = (i / 2) % 10, m = (i / 20) % 3;
    snprintf(key, 16, "key-%02d", k);
    snprintf(model, 16, "model-%d", m);
    return day * 30 + k * 3 + m;
}

static void on_group_totals(const sky_error *err, const sky__store_usage_total *rows, size_t n,
                            void *ud)
{
    group_sums *t = ud;
    t->err = *err;
    t->done = 1;
    t->n = n;
    for (size_t i = 0; i < n && i < GROUPS; i++) {
        t->requests[i] = rows[i].requests;
        t->errors[i] = rows[i].errors;
        t->in[i] = rows[i].tokens_in;
        t->out[i] = rows[i].tokens_out;
        t->cost[i] = rows[i].cost;
    }
}

static void many_groups_a_batch_sum_exactly(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    uv_loop_t *loop;
    sky__store *s = open_fixture(&loop);
    /* short names never go through version 3's view: without it, the batches still work */
    sql("DROP VIEW skyio_usage_daily_add", NULL, 0);
    group_sums want = {0};
    for (int batch = 0; batch < 3; batch++) {
        for (int i = 0; i < 512; i++) {
            char key[16], model[16];
            int g = group_of(i + batch, key, model), status = i % 7 ? 200 : 429;
            sky__store_usage u = {1796083200000 + (g >= 30) * 86400000 + i,
                                  key,
                                  model,
                                  "d1",
                                  status,
                                  i,
                                  batch + 1,
                                  7,
                                  0.25 * (i % 4)};
            assert_int_equal(sky__store_usage_append(s, &u), 0);
            want.requests[g]++;
            want.errors[g] += status >= 400;
            want.in[g] += i;
            want.out[g] += batch + 1;
            want.cost[g] += 0.25 * (i % 4);
        }
        flush(loop, s); /* one batch each: the second and third add to the first's sums */
    }
    group_sums got = {0};
    sky__store_usage_totals(s, NULL, on_group_totals, &got);
    assert_true(sky_test_run_until(loop, &got.done, 20000));
    assert_int_equal(got.err.code, 0);
    assert_int_equal(got.n, GROUPS);
    for (int g = 0; g < GROUPS; g++) {
        assert_int_equal(got.requests[g], want.requests[g]);
        assert_int_equal(got.errors[g], want.errors[g]);
        assert_int_equal(got.in[g], want.in[g]);
        assert_int_equal(got.out[g], want.out[g]);
        assert_true(got.cost[g] == want.cost[g]);
    }
    assert_sums_match_rows();
    char v[64];
    sql("SELECT sum(requests) FROM skyio_usage_daily", v, sizeof(v));
    assert_string_equal(v, "1536");
    close_fixture(loop, s);
}

static void long_names_sum_through_the_view(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    uv_loop_t *loop;
    sky__store *s = open_fixture(&loop);
    char *long_key = malloc(9001);
    assert_non_null(long_key);
    memset(long_key, 'k', 9000);
    long_key[9000] = '\0';
    for (int batch = 0; batch < 2; batch++) {
        for (int i = 0; i < 60; i++) { /* a long key's group beside three short ones */
            const char *key = i % 4 == 0 ? long_key : i % 4 == 1 ? "short" : i % 4 == 2 ? "b" : "c";
            sky__store_usage u = {1796083200000 + i, key, "m", "d", 200, 1, 2, 3, 0.5};
            assert_int_equal(sky__store_usage_append(s, &u), 0);
        }
        flush(loop, s);
        sky__store_usage u = {1796083200000, "short", "m", "d", 500, 1, 2, 3, 0.5};
        assert_int_equal(sky__store_usage_append(s, &u), 0);
        flush(loop, s); /* a short batch after it, on the same connection */
    }
    waiter w;
    totals(loop, s, NULL, &w);
    assert_int_equal(w.n, 4);
    totals(loop, s, "short", &w);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.rows[0].requests, 32);
    assert_int_equal(w.rows[0].errors, 2);
    char v[64];
    sql("SELECT requests FROM skyio_usage_daily WHERE length(key_name) = 9000", v, sizeof(v));
    assert_string_equal(v, "30");
    assert_sums_match_rows();
    sky__store_close_sync(loop, s);
    free(long_key);
    sky_test_loop_free(loop);
}

/* A role without the TEMPORARY privilege (the connection's skyio_sums refused): its batches
 * of many groups add their sums through version 3's view, exactly. */
static void role_without_temporary_tables(void **state)
{
    (void)state;
    SKIP_WITHOUT_PG();
    sql("CREATE ROLE plain LOGIN; GRANT CREATE ON SCHEMA public TO plain;"
        "REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC;",
        NULL, 0);
    char url[400];
    snprintf(url, sizeof(url), "postgresql://plain@127.0.0.1:%d/postgres", pg.port);
    uv_loop_t *loop = sky_test_loop_new();
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = url;
    sky__store *s = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky__store_open_sync(loop, &o, &s, &err), 0);
    for (int batch = 0; batch < 2; batch++) {
        for (int i = 0; i < 512; i++) {
            char key[16], model[16];
            int g = group_of(i, key, model);
            sky__store_usage u = {
                1796083200000 + (g >= 30) * 86400000 + i, key, model, "d1", 200, 1, 2, 3, 0.5};
            assert_int_equal(sky__store_usage_append(s, &u), 0);
        }
        flush(loop, s);
    }
    char v[64];
    sql("SELECT count(*) || ' ' || sum(requests) FROM skyio_usage_daily", v, sizeof(v));
    assert_string_equal(v, "60 1024");
    assert_sums_match_rows();
    close_fixture(loop, s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(version1_database_is_migrated, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(version2_database_is_migrated, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(version3_database_is_migrated, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(newer_database_is_refused, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(copy_escapes_come_back, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(batch_of_several_copies, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(packed_rows_come_back_one_by_one, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(two_stores_add_to_the_same_sums, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(refused_batch_keeps_the_connection, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(many_groups_a_batch_sum_exactly, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(long_names_sum_through_the_view, pg_setup, pg_teardown),
        cmocka_unit_test_setup_teardown(role_without_temporary_tables, pg_setup, pg_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
