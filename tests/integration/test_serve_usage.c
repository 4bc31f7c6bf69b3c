/*
 * Usage in `skyio serve` end to end, in front of `skyio mock`: each call's cost from the
 * config's price table (`skyio usage` prints it; a model without a price costs 0 and is
 * counted), and the keys' daily caps: a key past its daily tokens gets 429 with the seconds
 * to midnight UTC, counted in /metrics, still after a restart on the same state file; and
 * two gateways side by side on one Redis share a key's use, so what one let through counts
 * on the other. On PostgreSQL, restarted mid-run: the records past the memory bound wait
 * on the spill file and are all written once it is back, with their cost, and the
 * gateways beside each other share the key's use through it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "harness_postgres.h"
#include "harness_redis.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define CAPPED_KEY "sk-capped-7f3a"
#define FREE_KEY "sk-free-19c2"
#define DAILY_TOKENS 60

typedef sky_test_serve serve;

static struct {
    sky_test_mock mock;
    sky_test_redis redis;
    sky_test_pg pg;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static void keys_in_env(void)
{
    setenv("SKY_TEST_CAPPED_KEY", CAPPED_KEY, 1);
    setenv("SKY_TEST_FREE_KEY", FREE_KEY, 1);
}

static int setup(void **state)
{
    (void)state;
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    char config[512];
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}],"
        " \"gpt-4o-mini\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]},"
        " \"keys\": [{\"name\": \"capped\", \"key_env\": \"SKY_TEST_CAPPED_KEY\","
        "             \"daily_tokens\": %d},"
        "            {\"name\": \"free\", \"key_env\": \"SKY_TEST_FREE_KEY\"}],"
        " \"prices\": {\"gpt-4o\": {\"input_per_1m\": 2500, \"output_per_1m\": 10000},"
        "              \"absent-model\": {\"input_per_1m\": 1}}}\n",
        env.mock.base_url, env.mock.base_url, DAILY_TOKENS);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (env.redis.pid)
        sky_test_redis_free(&env.redis);
    if (env.pg.running)
        sky_test_pg_free(&env.pg);
    sky_test_client_close(env.loop, env.client);
    sky_test_mock_stop(&env.mock);
    sky_test_rmdir(env.dir);
    return 0;
}

/* Start serve with @p extra (NULL-terminated flags and values after the config), its
 * logs in the folder @p name. */
static void start_serve_args(serve *s, const char *name, const char *const *extra)
{
    char config[512];
    snprintf(config, sizeof(config), "%s/gateway.json", env.dir);
    const char *args[16] = {"--config", config};
    for (size_t i = 0; extra[i] && i < 13; i++)
        args[i + 2] = extra[i];
    sky_test_serve_start_in(s, env.dir, name, args, keys_in_env);
}

/* The same with one store flag @p a and its value @p b. */
static void start_serve(serve *s, const char *name, const char *a, const char *b)
{
    const char *extra[] = {a, b, NULL};
    start_serve_args(s, name, extra);
}

/* A chat to @p model with @p key; the answer in @p out (free it). */
static void chat(const serve *s, const char *key, const char *model, sky_test_result *out)
{
    char body[160];
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", model);
    sky_test_serve_call(s, env.loop, env.client, "POST", "/v1/chat/completions", body, key, NULL,
                        out);
    assert_int_equal(out->err_code, 0);
}

static int chat_status(const serve *s, const char *key, const char *model)
{
    sky_test_result r;
    chat(s, key, model, &r);
    int st = r.status;
    sky_test_result_free(&r);
    return st;
}

/* A metrics sample of @p s; -1: none. */
static double metric(const serve *s, const char *series)
{
    return sky_test_serve_sample(s, env.loop, env.client, series);
}

/* Chats of the capped key until it is refused: how many went through (fails past 50). */
static int use_up(const serve *s)
{
    for (int n = 0; n < 50; n++) {
        sky_test_result r;
        chat(s, CAPPED_KEY, "gpt-4o", &r);
        int st = r.status;
        sky_test_result_free(&r);
        if (st == 429)
            return n;
        assert_int_equal(st, 200);
    }
    fail_msg("the capped key was never refused");
    return -1;
}

/* The refusal: OpenAI's shape, the cap named, retry-after the seconds to midnight UTC. */
static void assert_refused_until_midnight(const serve *s)
{
    sky_test_result r;
    chat(s, CAPPED_KEY, "gpt-4o", &r);
    assert_int_equal(r.status, 429);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    const char *msg = json_string_value(sky_json_path(j, "error.message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "Daily token budget reached for key 'capped'"));
    assert_non_null(strstr(msg, "midnight UTC"));
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")), "daily_budget_exceeded");
    json_decref(j);
    const char *ra = json_string_value(json_object_get(r.headers, "retry-after"));
    assert_non_null(ra);
    long long to_midnight = 86400 - (long long)(time(NULL) % 86400);
    long long secs = atoll(ra);
    assert_true(secs >= 1 && secs <= 86400);
    assert_true(llabs(secs - to_midnight) <= 120); /* the same midnight, not a minute's wait */
    sky_test_result_free(&r);
}

/* `skyio usage @p args`: its exit status, its stdout in @p out (@p len bytes at most). */
static int run_usage(const char *args, char *out, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s usage %s 2>/dev/null", SKY_TEST_BIN, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `skyio usage --state FILE --json`'s rows (new reference); @p flag: "--state" or
 * "--postgres"; @p more: further flags ("" for none). */
static json_t *usage_rows_more(const char *flag, const char *store, const char *more)
{
    char args[1024];
    static char out[65536];
    snprintf(args, sizeof(args), "%s %s %s --json", flag, store, more);
    assert_int_equal(run_usage(args, out, sizeof(out)), 0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    json_t *rows = json_incref(json_object_get(doc, "totals"));
    json_decref(doc);
    return rows;
}

static json_t *usage_rows_of(const char *flag, const char *store)
{
    return usage_rows_more(flag, store, "");
}

static json_t *usage_rows(const char *db)
{
    return usage_rows_of("--state", db);
}

static const json_t *row_of(const json_t *rows, const char *key, const char *model)
{
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *r = json_array_get(rows, i);
        if (!strcmp(json_string_value(json_object_get(r, "key")), key) &&
            !strcmp(json_string_value(json_object_get(r, "model")), model))
            return r;
    }
    return NULL;
}

static void cost_and_daily_cap_on_sqlite(void **state)
{
    (void)state;
    char db[512];
    snprintf(db, sizeof(db), "%s/state.db", env.dir);
    serve s;
    start_serve(&s, "first", "--state", db);
    assert_int_equal(chat_status(&s, FREE_KEY, "gpt-4o"), 200);
    assert_int_equal(chat_status(&s, FREE_KEY, "gpt-4o-mini"), 200); /* no price */
    assert_true(metric(&s, "skyio_gateway_usage_unpriced_total") >= 1);
    int through = use_up(&s);
    assert_true(through >= 1);
    assert_refused_until_midnight(&s);
    assert_true(metric(&s, "skyio_gateway_key_daily_refused_total{cap=\"tokens\"}") >= 2);
    assert_int_equal(metric(&s, "skyio_gateway_key_daily_refused_total{cap=\"cost\"}"), 0);
    assert_int_equal(chat_status(&s, FREE_KEY, "gpt-4o"), 200); /* another key: not capped */
    sky_test_serve_stop_ok(&s);

    /* the cost at the model's price; none for the unpriced model */
    json_t *rows = usage_rows(db);
    const json_t *priced = row_of(rows, "free", "gpt-4o");
    const json_t *unpriced = row_of(rows, "free", "gpt-4o-mini");
    assert_non_null(priced);
    assert_non_null(unpriced);
    double in = (double)json_integer_value(json_object_get(priced, "tokens_in"));
    double out = (double)json_integer_value(json_object_get(priced, "tokens_out"));
    assert_true(in > 0 && out > 0);
    assert_float_equal(json_number_value(json_object_get(priced, "cost")),
                       (in * 2500 + out * 10000) / 1e6, 1e-9);
    assert_float_equal(json_number_value(json_object_get(unpriced, "cost")), 0, 0);
    const json_t *capped = row_of(rows, "capped", "gpt-4o");
    assert_non_null(capped);
    assert_true(json_integer_value(json_object_get(capped, "tokens_in")) +
                    json_integer_value(json_object_get(capped, "tokens_out")) >=
                DAILY_TOKENS);
    json_decref(rows);

    /* --since: the days from that one on; a day that is no day is refused (exit 2) */
    char day[16], since[32], text[4096], args[700];
    time_t now = time(NULL) + 86400;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    snprintf(since, sizeof(since), "--since %s", day);
    rows = usage_rows_more("--state", db, since);
    assert_int_equal(json_array_size(rows), 0); /* nothing from tomorrow on */
    json_decref(rows);
    now -= 86400;
    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    snprintf(since, sizeof(since), "--since %s", day);
    rows = usage_rows_more("--state", db, since);
    assert_non_null(row_of(rows, "free", "gpt-4o"));
    json_decref(rows);
    snprintf(args, sizeof(args), "--state %s --since 12/06/2026", db);
    assert_int_equal(run_usage(args, text, sizeof(text)), 2);

    /* a restart on the same state: the day's use is read back, the key stays refused */
    start_serve(&s, "second", "--state", db);
    assert_refused_until_midnight(&s);
    assert_int_equal(chat_status(&s, FREE_KEY, "gpt-4o"), 200);
    sky_test_serve_stop_ok(&s);
}

static void daily_cap_shared_through_redis(void **state)
{
    (void)state;
    sky_test_redis_start(&env.redis, NULL);
    serve a, b;
    start_serve(&a, "side-a", "--cache", env.redis.url);
    start_serve(&b, "side-b", "--cache", env.redis.url);
    int through = use_up(&a);
    assert_true(through >= 1);
    /* b let nothing through itself: the use a counted refuses the key on b too, once b has
     * heard of it (its first call asks; no more than a few go through meanwhile) */
    int refused = 0;
    for (int i = 0; i < 20 && !refused; i++) {
        refused = chat_status(&b, CAPPED_KEY, "gpt-4o") == 429;
        if (!refused)
            usleep(100000);
    }
    assert_true(refused);
    assert_refused_until_midnight(&b);
    /* the shared counter of the key's day holds the use of both */
    char day[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    long long counted =
        sky_test_redis_int(&env.redis, "INCRBY skyio:counter:daily:%s:tokens:capped 0", day);
    assert_true(counted >= DAILY_TOKENS);
    assert_true(sky_test_redis_int(&env.redis, "TTL skyio:counter:daily:%s:tokens:capped", day) >
                0);
    sky_test_serve_stop_ok(&a);
    sky_test_serve_stop_ok(&b);
}

/* Poll @p s's metrics until @p series is @p want (10 s at most); its last value. */
static double wait_metric(const serve *s, const char *series, double want)
{
    double v = -1;
    for (int i = 0; i < 200 && (v = metric(s, series)) != want; i++)
        usleep(50000);
    return v;
}

static void spill_and_shared_caps_on_postgres(void **state)
{
    (void)state;
    if (!sky_test_pg_available()) {
        print_message("postgres: initdb and pg_ctl not installed; skipped\n");
        skip();
    }
    sky_test_pg_start(&env.pg);
    char spill[512];
    snprintf(spill, sizeof(spill), "%s/spill.db", env.dir);
    const char *args[] = {"--postgres", env.pg.url, "--usage-queue-max", "2", "--usage-spill",
                          spill,        NULL};
    serve s, side;
    start_serve_args(&s, "pg", args);
    assert_int_equal(chat_status(&s, FREE_KEY, "gpt-4o"), 200);
    assert_int_equal(wait_metric(&s, "skyio_gateway_usage_records_total{state=\"written\"}", 1), 1);
    sky_test_pg_stop(&env.pg);
    for (int i = 0; i < 8; i++) /* served while PostgreSQL is away */
        assert_int_equal(chat_status(&s, FREE_KEY, "gpt-4o"), 200);
    assert_true(metric(&s, "skyio_gateway_usage_records_spilled") >= 6);
    assert_int_equal(metric(&s, "skyio_gateway_usage_records_total{state=\"lost\"}"), 0);
    sky_test_pg_restart(&env.pg);
    assert_int_equal(wait_metric(&s, "skyio_gateway_usage_records_total{state=\"written\"}", 9), 9);
    assert_int_equal(metric(&s, "skyio_gateway_usage_records_spilled"), 0);
    assert_int_equal(metric(&s, "skyio_gateway_usage_records_total{state=\"lost\"}"), 0);

    /* a second gateway on the same PostgreSQL: the key's use is shared through it */
    const char *side_args[] = {"--postgres", env.pg.url, NULL};
    start_serve_args(&side, "pg-side", side_args);
    assert_true(use_up(&s) >= 1);
    int refused = 0;
    for (int i = 0; i < 20 && !refused; i++) {
        refused = chat_status(&side, CAPPED_KEY, "gpt-4o") == 429;
        if (!refused)
            usleep(100000);
    }
    assert_true(refused);
    sky_test_serve_stop_ok(&s);
    sky_test_serve_stop_ok(&side);

    /* every record is there, with its cost */
    json_t *rows = usage_rows_of("--postgres", env.pg.url);
    const json_t *r = row_of(rows, "free", "gpt-4o");
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "requests")), 9);
    double in = (double)json_integer_value(json_object_get(r, "tokens_in"));
    double out = (double)json_integer_value(json_object_get(r, "tokens_out"));
    assert_float_equal(json_number_value(json_object_get(r, "cost")),
                       (in * 2500 + out * 10000) / 1e6, 1e-6);
    json_decref(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cost_and_daily_cap_on_sqlite),
        cmocka_unit_test(daily_cap_shared_through_redis),
        cmocka_unit_test(spill_and_shared_caps_on_postgres),
    };
    return sky_test_run_group(tests, setup, teardown);
}
