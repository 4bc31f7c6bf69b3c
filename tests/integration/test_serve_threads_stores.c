/*
 * `skyio serve --threads 2` with its stores: SQLite (--state), Redis for the cache beside it
 * (--redis), and PostgreSQL (--postgres). Each loop has connections of its own; whichever
 * loop a connection lands on (the access log's "loop" says which), an admin key made on one
 * works on all and, once revoked, on none; a cached answer is a hit; a response kept on one
 * connection is read and continued (previous_response_id) from others; and after SIGTERM
 * every model call has its usage record, those of the last moment included. On SQLite too:
 * a SIGHUP's cache rule reaches every loop, and a key's daily cap reached through some
 * loops refuses on all.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>

#include "harness.h"
#include "harness_cli.h"
#include "harness_postgres.h"
#include "harness_redis.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define UPSTREAM_KEY "sk-upstream-canary-tstores-4b7e"
#define MASTER_KEY "sk-master-canary-tstores-9a02"
#define FRESH 16 /* fresh connections per check: all on one loop 1 time in 2^15 */

static struct {
    sky_test_mock mock;
    sky_test_serve serve;
    char dir[256], config[512], log[512], db[512];
    uv_loop_t *loop;
    int calls;       /* model calls sent: each one a usage record and an access log line */
    int with_reload; /* check_reload and check_daily_cap too */
    int hits;        /* answers that said x-skyio-cache-status: hit */
    sky_test_redis redis;
    sky_test_pg pg;
    int redis_on, pg_on; /* started by the test under way (cleanup stops them) */
    int next_id;
} env;

static void serve_env(void)
{
    sky_test_serve_lsan_threads();
    setenv("UPK", UPSTREAM_KEY, 1);
    setenv("SKY_TEST_MASTER", MASTER_KEY, 1);
}

static int setup(void **state)
{
    (void)state;
    static const char *const args[] = {"--key", UPSTREAM_KEY, NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.mock, args);
    env.loop = sky_test_loop_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_loop_free(env.loop);
    sky_test_mock_stop(&env.mock);
    return 0;
}

/* serve --threads 2 with @p store_args (NULL-terminated) in a new folder */
static void start_serve(const char *const *store_args)
{
    const char *args[24] = {"--config",     env.config, "--threads",       "2",
                            "--access-log", env.log,    "--admin-key-env", "SKY_TEST_MASTER",
                            "--grace-ms",   "2000"};
    size_t n = 10;
    for (size_t i = 0; store_args[i] && n < 23; i++)
        args[n++] = store_args[i];
    args[n] = NULL;
    sky_test_serve_start(&env.serve, env.dir, args, serve_env);
}

/* The config, with @p cache_models as its "cache"'s "models" ("": no "cache") */
static void write_config(const char *cache_models)
{
    char cache[256] = "";
    if (cache_models[0])
        snprintf(cache, sizeof(cache), ", \"cache\": {\"models\": %s}", cache_models);
    sky_test_gateway_config(env.config, sizeof(env.config), env.dir,
                            "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": "
                            "\"%s\", \"key_env\": \"UPK\"}]}%s}",
                            env.mock.base_url, cache);
}

static void make_dir(void)
{
    env.calls = env.hits = 0;
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    snprintf(env.log, sizeof(env.log), "%s/access.log", env.dir);
    snprintf(env.db, sizeof(env.db), "%s/state.db", env.dir);
    write_config("");
}

/*
 * One request on a connection of its own (so the kernel picks a loop for each), with
 * x-request-id "@p tag-N" (its id into @p id) and @p header (NULL: none).
 */
static void call_fresh(const char *method, const char *path, const char *body, const char *key,
                       const char *header, const char *tag, char id[64], sky_test_result *out)
{
    char url[256], auth[160], rid[96];
    const char *headers[] = {auth, rid, header, NULL};
    sky_http_client *client;
    snprintf(id, 64, "%s-%d", tag, env.next_id++);
    snprintf(url, sizeof(url), "%s%s", env.serve.base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    snprintf(rid, sizeof(rid), "x-request-id: %s", id);
    assert_int_equal(sky_http_client_new(env.loop, NULL, &client), 0);
    sky_test_request(env.loop, client, method, url, body, headers, 20000, out);
    sky_http_client_free(client);
    if (out->err_code)
        fprintf(stderr, "%s %s (%s): %s\n", method, path, id, sky_err_name(out->err_code));
    assert_int_equal(out->err_code, 0);
    assert_null(strstr(out->body, UPSTREAM_KEY));
}

static const char chat_body[] =
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* A model call that must answer @p want (a usage record either way). */
static void chat(const char *key, const char *header, const char *tag, int want,
                 const char *cache_status)
{
    char id[64];
    sky_test_result r;
    call_fresh("POST", "/v1/chat/completions", chat_body, key, header, tag, id, &r);
    env.calls++;
    assert_int_equal(r.status, want);
    if (cache_status)
        assert_string_equal(sky_json_str(r.headers, "x-skyio-cache-status", ""), cache_status);
    env.hits += strcmp(sky_json_str(r.headers, "x-skyio-cache-status", ""), "hit") == 0;
    sky_test_result_free(&r);
}

/* The loops that served the lines of the access log whose request id begins @p tag-, as
 * bits (loop 0: 1, loop 1: 2); and the count of its lines in *@p lines. */
static unsigned loops_of(const char *tag, int *lines)
{
    static char text[1 << 20];
    char prefix[64];
    unsigned seen = 0;
    snprintf(prefix, sizeof(prefix), "%s-", tag);
    sky_test_slurp(env.log, text, sizeof(text));
    *lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        const char *rid = sky_json_str(o, "request_id", "");
        json_int_t loop = json_integer_value(json_object_get(o, "loop"));
        (*lines)++;
        if (strncmp(rid, prefix, strlen(prefix)) == 0)
            seen |= 1u << loop;
        json_decref(o);
    }
    return seen;
}

/* A key made with the master key on one loop, its JSON @p body: its secret into @p out. */
static void make_key_as(const char *body, char out[128])
{
    char id[64];
    sky_test_result r;
    call_fresh("POST", "/admin/keys", body, MASTER_KEY, NULL, "admin", id, &r);
    assert_int_equal(r.status, 201);
    json_t *o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    snprintf(out, 128, "%s", sky_json_str(o, "key", ""));
    assert_int_equal(strncmp(out, "sk-skyio-", 9), 0);
    json_decref(o);
    sky_test_result_free(&r);
}

static void make_key(char out[128])
{
    make_key_as("{\"name\":\"team\",\"models\":[\"gpt-4o\"]}", out);
}

static void revoke_key(void)
{
    char id[64];
    sky_test_result r;
    call_fresh("DELETE", "/admin/keys/team", NULL, MASTER_KEY, NULL, "admin", id, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
}

/* The first call keeps the answer (a miss), a moment later it is a hit on every loop */
static void check_cache(const char *key)
{
    const char *on = "x-skyio-cache: on";
    char id[64];
    int hit = 0;
    for (int i = 0; i < 200 && !hit; i++) {
        sky_test_result r;
        call_fresh("POST", "/v1/chat/completions", chat_body, key, on, "warm", id, &r);
        env.calls++;
        assert_int_equal(r.status, 200);
        hit = strcmp(sky_json_str(r.headers, "x-skyio-cache-status", ""), "hit") == 0;
        env.hits += hit;
        sky_test_result_free(&r);
        if (!hit)
            nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    assert_true(hit);
    for (int i = 0; i < FRESH; i++)
        chat(key, on, "hit", 200, "hit");
}

/* A response kept on one connection: read back and continued from fresh ones. */
static void check_responses(const char *key)
{
    char id[64], body[256], path[160], resp_id[96];
    sky_test_result r;
    call_fresh("POST", "/v1/responses", "{\"model\":\"gpt-4o\",\"input\":\"remember 7\"}", key,
               NULL, "turn", id, &r);
    env.calls++;
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    snprintf(resp_id, sizeof(resp_id), "%s", sky_json_str(o, "id", ""));
    json_decref(o);
    sky_test_result_free(&r);
    assert_int_equal(strncmp(resp_id, "resp_", 5), 0);
    snprintf(body, sizeof(body),
             "{\"model\":\"gpt-4o\",\"input\":\"and now?\",\"store\":false,"
             "\"previous_response_id\":\"%s\"}",
             resp_id);
    snprintf(path, sizeof(path), "/v1/responses/%s", resp_id);
    for (int i = 0; i < FRESH; i++) {
        call_fresh("POST", "/v1/responses", body, key, NULL, "next", id, &r);
        env.calls++;
        assert_int_equal(r.status, 200);
        sky_test_result_free(&r);
        call_fresh("GET", path, NULL, key, NULL, "get", id, &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, resp_id));
        sky_test_result_free(&r);
    }
}

/* SIGHUP with a config whose cache takes gpt-4o: soon FRESH fresh connections in a row
 * (both loops) answer from the cache without asking for it. */
static void check_reload(const char *key)
{
    write_config("{\"gpt-4o\": true}");
    assert_int_equal(kill(env.serve.pid, SIGHUP), 0);
    int streak = 0;
    for (int i = 0; i < 400 && streak < FRESH; i++) {
        char id[64];
        sky_test_result r;
        call_fresh("POST", "/v1/chat/completions", chat_body, key, NULL, streak ? "rule" : "before",
                   id, &r);
        env.calls++;
        assert_int_equal(r.status, 200);
        int hit = strcmp(sky_json_str(r.headers, "x-skyio-cache-status", ""), "hit") == 0;
        env.hits += hit;
        streak = hit ? streak + 1 : 0;
        sky_test_result_free(&r);
    }
    assert_int_equal(streak, FRESH);
}

/* A key of 30 tokens a day (a chat uses 21): once refused, refused on every loop. */
static void check_daily_cap(void)
{
    const char *off = "x-skyio-cache: off";
    char key[128], id[64];
    make_key_as("{\"name\":\"capped\",\"daily_tokens\":30}", key);
    int refused = 0;
    for (int i = 0; i < 10 && !refused; i++) {
        sky_test_result r;
        call_fresh("POST", "/v1/chat/completions", chat_body, key, off, "spend", id, &r);
        env.calls++;
        assert_true(r.status == 200 || r.status == 429);
        refused = r.status == 429;
        assert_true(i >= 1 || !refused);
        sky_test_result_free(&r);
    }
    assert_true(refused);
    for (int i = 0; i < FRESH; i++)
        chat(key, off, "capped", 429, NULL);
}

/* @p n items added to one conversation at once, each on a connection of its own (both
 * loops): every one is kept, none lost to another's write. */
#define ADDS 24
static void check_concurrent_adds(const char *key)
{
    char id[64], conv[96], url[256], body[ADDS][96];
    sky_test_result r, res[ADDS];
    sky_http_client *clients[ADDS];
    call_fresh("POST", "/v1/conversations", "{}", key, NULL, "conv", id, &r);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    snprintf(conv, sizeof(conv), "%s", sky_json_str(o, "id", ""));
    json_decref(o);
    sky_test_result_free(&r);
    snprintf(url, sizeof(url), "%s/v1/conversations/%s/items", env.serve.base, conv);
    sky_headers *h = sky_test_bearer_json_headers(key);
    memset(res, 0, sizeof(res));
    for (int i = 0; i < ADDS; i++) {
        sky_http_request_options ro;
        snprintf(body[i], sizeof(body[i]), "{\"items\":[{\"role\":\"user\",\"content\":\"n%d\"}]}",
                 i);
        assert_int_equal(sky_http_client_new(env.loop, NULL, &clients[i]), 0);
        sky_http_request_options_init(&ro);
        ro.method = "POST";
        ro.url = url;
        ro.headers = h;
        ro.body = sky_span_cstr(body[i]);
        ro.timeout_ms = 20000;
        ro.on_done = sky_test_on_done;
        ro.user_data = &res[i];
        assert_int_equal(sky_http_request_send(clients[i], &ro, NULL, NULL), 0);
    }
    int done = 0, never = 0;
    for (int turn = 0; turn < 800 && done < ADDS; turn++) {
        (void)sky_test_run_until(env.loop, &never, 25);
        done = 0;
        for (int i = 0; i < ADDS; i++)
            done += res[i].done;
    }
    for (int i = 0; i < ADDS; i++) {
        assert_int_equal(res[i].status, 200);
        sky_test_result_free(&res[i]);
        sky_http_client_free(clients[i]);
    }
    sky_headers_free(h);
    char path[160];
    snprintf(path, sizeof(path), "/v1/conversations/%s/items?limit=100", conv);
    call_fresh("GET", path, NULL, key, NULL, "items", id, &r);
    assert_int_equal(r.status, 200);
    o = json_loads(r.body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(o, "data")), ADDS);
    json_decref(o);
    sky_test_result_free(&r);
}

/* /metrics adds the loops' stores up (each loop's as of its last 100 ms tick): soon every
 * hit and every usage record of either loop is there. */
static void check_metrics(void)
{
    double hits = -1, written = -1;
    for (int i = 0; i < 100 && (hits != env.hits || written != env.calls); i++) {
        char id[64];
        sky_test_result r;
        call_fresh("GET", "/metrics", NULL, MASTER_KEY, NULL, "metrics", id, &r);
        assert_int_equal(r.status, 200);
        hits = sky_test_sample(r.body, "skyio_gateway_cache_lookups_total{result=\"hit\"}");
        written = sky_test_sample(r.body, "skyio_gateway_usage_records_total{state=\"written\"}");
        sky_test_result_free(&r);
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    assert_true(hits == env.hits);
    assert_true(written == env.calls);
}

/* The exit of a serve told to stop (10 s at most, then sky_test_stop_child). */
static int stop_serve(void)
{
    int status = -1;
    assert_int_equal(kill(env.serve.pid, SIGTERM), 0);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(env.serve.pid, &status, WNOHANG) == env.serve.pid) {
            env.serve.pid = 0;
            return status;
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    status = sky_test_stop_child(env.serve.pid);
    env.serve.pid = 0;
    return status;
}

static void show_stderr(void)
{
    static char text[1 << 16];
    char path[512];
    snprintf(path, sizeof(path), "%s/stderr.log", env.dir);
    sky_test_slurp(path, text, sizeof(text));
    fprintf(stderr, "skyio serve's stderr:\n%s\n", text);
}

/* The usage records' count, by `skyio usage @p store_flag @p where --json`. */
static long long usage_requests(const char *store_flag, const char *where)
{
    sky_test_cli_out out;
    sky_test_run_skyio(&out, "usage", "%s %s --json", store_flag, where);
    assert_int_equal(out.code, 0);
    json_t *doc = sky_test_cli_json(&out);
    json_t *rows = json_object_get(doc, "totals");
    long long n = 0;
    for (size_t i = 0; i < json_array_size(rows); i++)
        n += json_integer_value(json_object_get(json_array_get(rows, i), "requests"));
    json_decref(doc);
    return n;
}

/* Everything, against the serve started with @p store_args; usage read back from
 * @p usage_flag @p usage_where once it has stopped. */
static void run_all(const char *const *store_args, const char *usage_flag, const char *usage_where)
{
    char key[128];
    start_serve(store_args);
    make_key(key);
    for (int i = 0; i < FRESH; i++)
        chat(key, NULL, "key", 200, NULL);
    check_cache(key);
    check_responses(key);
    check_concurrent_adds(key);
    if (env.with_reload) {
        check_reload(key);
        check_daily_cap();
    }
    check_metrics();
    revoke_key();
    for (int i = 0; i < FRESH; i++) /* the last calls, just before SIGTERM */
        chat(key, NULL, "revoked", 401, NULL);
    int status = stop_serve();
    if (!sky_test_exited_ok(status))
        show_stderr();
    assert_true(sky_test_exited_ok(status));
    int lines;
    const char *tags[] = {"key", "hit", "next", "revoked", "rule", "capped"};
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]) - 2 * !env.with_reload; i++)
        assert_int_equal(loops_of(tags[i], &lines), 3); /* both loops, each check */
    assert_int_equal(lines, env.calls);
    assert_int_equal(usage_requests(usage_flag, usage_where), env.calls);
    int leaked = sky_test_file_holds(env.dir, "stderr.log", UPSTREAM_KEY) ||
                 sky_test_file_holds(env.dir, "stderr.log", MASTER_KEY) ||
                 sky_test_file_holds(env.dir, "access.log", MASTER_KEY);
    assert_false(leaked);
}

/* After each test, passed or not: what it started is stopped, its folder removed. */
static int cleanup(void **state)
{
    (void)state;
    if (env.serve.pid)
        (void)sky_test_stop_child(env.serve.pid);
    env.serve.pid = 0;
    if (env.redis_on)
        sky_test_redis_free(&env.redis);
    if (env.pg_on)
        sky_test_pg_free(&env.pg);
    env.redis_on = env.pg_on = env.with_reload = 0;
    if (env.dir[0])
        sky_test_rmdir(env.dir);
    env.dir[0] = '\0';
    return 0;
}

static void test_sqlite_state(void **state)
{
    (void)state;
    make_dir();
    const char *const args[] = {"--state", env.db, NULL};
    env.with_reload = 1;
    run_all(args, "--state", env.db);
}

/* the cache on Redis (a connection per loop), the rest on the state file */
static void test_redis_cache(void **state)
{
    (void)state;
    sky_test_redis_start(&env.redis, NULL);
    env.redis_on = 1;
    make_dir();
    const char *const args[] = {"--state", env.db, "--redis", env.redis.url, NULL};
    run_all(args, "--state", env.db);
    assert_true(sky_test_redis_int(&env.redis, "DBSIZE") >= 1); /* the kept answer */
}

/* usage, answers and keys on PostgreSQL (a connection of the pool per loop); the cache on
 * the state file is not there: --redis keeps it */
static void test_postgres(void **state)
{
    (void)state;
    if (!sky_test_pg_available()) {
        fprintf(stderr, "PostgreSQL (initdb, pg_ctl) is not installed: skipped\n");
        skip();
    }
    sky_test_pg_start(&env.pg);
    env.pg_on = 1;
    sky_test_redis_start(&env.redis, NULL);
    env.redis_on = 1;
    make_dir();
    const char *const args[] = {"--postgres", env.pg.url, "--redis", env.redis.url, NULL};
    run_all(args, "--postgres", env.pg.url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sqlite_state, cleanup),
        cmocka_unit_test_teardown(test_redis_cache, cleanup),
        cmocka_unit_test_teardown(test_postgres, cleanup),
    };
    return sky_test_run_group(tests, setup, teardown);
}
