/*
 * The usage queue's spill file against a real PostgreSQL (initdb + pg_ctl in a temp
 * folder), restarted mid-run: records past the memory bound wait on a local SQLite file and
 * are written when the server is back; nothing is lost below the spill's bound, and what
 * is past it is counted. Records still waiting at close stay on the file and are written by
 * the next store that opens it. A spill file that cannot be used fails the open, named.
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
#include "store/store.h"
#include "harness_group.h"

static struct {
    sky_test_pg pg;
    char dir[256];
    char spill[320];
    uv_loop_t *loop;
} env;

typedef struct waited {
    int done;
    sky_error err;
    int64_t requests;
} waited;

static int setup(void **state)
{
    (void)state;
    if (!sky_test_pg_available()) {
        print_message("postgres: initdb and pg_ctl not installed; skipped\n");
        return 0;
    }
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    snprintf(env.spill, sizeof(env.spill), "%s/spill.db", env.dir);
    sky_test_pg_start(&env.pg);
    env.loop = sky_test_loop_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (env.loop == NULL)
        return 0;
    sky_test_pg_free(&env.pg); /* first: the loop's check may fail the teardown */
    sky_test_rmdir(env.dir);
    sky_test_loop_free(env.loop);
    return 0;
}

static void skip_without_pg(void)
{
    if (env.loop == NULL)
        skip();
}

/* A store on the test server with a memory bound of @p queue_max and the spill file. */
static sky__store *open_spilling(uint32_t queue_max, uint64_t spill_max)
{
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = env.pg.url;
    o.usage_queue_max = queue_max;
    o.usage_batch_max = 4;
    o.usage_flush_ms = 20;
    o.usage_spill_path = env.spill;
    o.usage_spill_max = spill_max;
    sky__store *s = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky__store_open_sync(env.loop, &o, &s, &err), 0);
    return s;
}

static void append(sky__store *s, const char *key, int n)
{
    for (int i = 0; i < n; i++) {
        sky__store_usage u = {
            sky__store_now_ms(), key, "gpt-4o", "gpt-4o#0", 200, 10, 2, 1000, 0.5};
        sky__store_usage_append(s, &u);
    }
}

static void on_slept(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run the loop for @p ms (a timer of its own keeps it alive: the store's are unref'd). */
static void sleep_ms(uint64_t ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(env.loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_slept, ms, 0);
    while (!fired)
        uv_run(env.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(env.loop, UV_RUN_NOWAIT);
}

static sky__store_stats stats(const sky__store *s)
{
    sky__store_stats st;
    sky__store_get_stats(s, &st);
    return st;
}

/* Run the loop until @p s has written @p n records (10 s at most). */
static void wait_written(sky__store *s, uint64_t n)
{
    for (int i = 0; i < 1000 && stats(s).usage_written < n; i++)
        sleep_ms(10);
    sky__store_stats st = stats(s);
    if (st.usage_written != n)
        print_message("written %llu queued %llu spilled %llu lost %llu errors %llu\n",
                      (unsigned long long)st.usage_written, (unsigned long long)st.usage_queued,
                      (unsigned long long)st.usage_spilled, (unsigned long long)st.usage_lost,
                      (unsigned long long)st.write_errors);
    assert_int_equal(st.usage_written, n);
}

static void on_totals(const sky_error *err, const sky__store_usage_total *rows, size_t n, void *ud)
{
    waited *w = ud;
    w->done = 1;
    w->err = *err;
    for (size_t i = 0; i < n; i++)
        w->requests += rows[i].requests;
}

static int64_t requests_of(sky__store *s, const char *key)
{
    waited w = {0};
    sky__store_usage_totals(s, key, on_totals, &w);
    while (!w.done)
        uv_run(env.loop, UV_RUN_ONCE);
    assert_int_equal(w.err.code, 0);
    return w.requests;
}

static int64_t rows_on_file(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    assert_int_equal(sqlite3_open(env.spill, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM spilled_usage", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void spill_while_postgres_is_away(void **state)
{
    (void)state;
    skip_without_pg();
    sky__store *s = open_spilling(8, 100);
    append(s, "spill-a", 5);
    wait_written(s, 5);
    sky_test_pg_stop(&env.pg);
    append(s, "spill-a", 120); /* 8 in memory, 100 on the file, 12 past its bound */
    sky__store_stats st = stats(s);
    assert_int_equal(st.usage_spilled, 100);
    assert_int_equal(st.usage_lost, 12);
    assert_int_equal(st.usage_appended, 5 + 108);
    sleep_ms(300); /* the batches fail meanwhile and stay; the spill reaches the file */
    st = stats(s);
    assert_int_equal(st.usage_written, 5);
    assert_int_equal(st.usage_spilled, 100);
    assert_int_equal(rows_on_file(), 100);
    assert_true(st.write_errors >= 1);

    sky_test_pg_restart(&env.pg);
    wait_written(s, 5 + 108);
    st = stats(s);
    assert_int_equal(st.usage_spilled, 0);
    assert_int_equal(st.usage_queued, 0);
    assert_int_equal(st.usage_lost, 12);
    assert_int_equal(rows_on_file(), 0);
    assert_int_equal(requests_of(s, "spill-a"), 113);
    sky__store_close_sync(env.loop, s);
}

static void spill_outlives_a_restart(void **state)
{
    (void)state;
    skip_without_pg();
    sky__store *s = open_spilling(4, 1000);
    sky_test_pg_stop(&env.pg);
    append(s, "spill-b", 20); /* 4 in memory, 16 on the file */
    assert_int_equal(stats(s).usage_spilled, 16);
    sky__store_close_sync(env.loop, s); /* the server is away: memory's 4 go to the file */
    assert_int_equal(rows_on_file(), 20);

    sky_test_pg_restart(&env.pg);
    s = open_spilling(4, 1000);
    wait_written(s, 20);
    assert_int_equal(stats(s).usage_spilled, 0);
    assert_int_equal(stats(s).usage_lost, 0);
    assert_int_equal(rows_on_file(), 0);
    assert_int_equal(requests_of(s, "spill-b"), 20);
    sky__store_close_sync(env.loop, s);
}

static void unusable_spill_file_is_named(void **state)
{
    (void)state;
    skip_without_pg();
    char bad[400];
    snprintf(bad, sizeof(bad), "%s/bad.db", env.dir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("this is not a SQLite database, not at all, and it is long enough to tell\n", f);
    fclose(f);
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = env.pg.url;
    o.usage_spill_path = bad;
    sky__store *s = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_not_equal(sky__store_open_sync(env.loop, &o, &s, &err), 0);
    assert_null(s);
    assert_non_null(strstr(err.message, bad));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spill_while_postgres_is_away),
        cmocka_unit_test(spill_outlives_a_restart),
        cmocka_unit_test(unusable_spill_file_is_named),
    };
    return sky_test_run_group(tests, setup, teardown);
}
