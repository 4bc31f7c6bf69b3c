/*
 * The gateway's response cache end to end: `skyio serve --cache` (a SQLite
 * file, then Redis) in front of `skyio mock`. A request that asks for the cache
 * is answered upstream once, then from the cache (the mock counts one call),
 * whatever the order of its JSON keys; `refresh` goes upstream again; no
 * header, no cache. With Redis killed mid-run the requests are still served,
 * upstream.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "harness_postgres.h"
#include "harness_redis.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

typedef sky_test_serve serve;

static struct {
    sky_test_mock mock;
    sky_test_redis redis;
    int have_redis;
    char dir[256];
    serve on_sqlite, on_redis;
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static void serve_keys_env(void)
{
    setenv("SKY_TEST_KEY_A", "sk-test-alice", 1);
    setenv("SKY_TEST_KEY_B", "sk-test-bob", 1);
}

/* Start `skyio serve` with the config and @p args (NULL-terminated). */
static void start_serve_args(serve *s, const char *name, const char *const *args)
{
    char config[512];
    snprintf(config, sizeof(config), "%s/gateway.json", env.dir);
    const char *all[32] = {"--config", config, "--grace-ms", "1000"};
    size_t n = 4;
    for (size_t i = 0; args[i] && n < SKY_ARRAY_LEN(all) - 1; i++)
        all[n++] = args[i];
    sky_test_serve_start_named(s, env.dir, name, all, serve_keys_env);
}

static void start_serve(serve *s, const char *name, const char *cache)
{
    const char *args[] = {"--cache", cache, NULL};
    start_serve_args(s, name, args);
}

static int setup(void **state)
{
    (void)state;
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    char config[512], db[512];
    sky_test_gateway_config(config, sizeof(config), env.dir,
                            "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": "
                            "\"%s/v1\"}],"
                            " \"text-embedding-3-small\": [{\"kind\": \"compatible\", "
                            "\"base_url\": \"%s/v1\"}]}}\n",
                            env.mock.base_url, env.mock.base_url);
    snprintf(db, sizeof(db), "%s/cache.db", env.dir);
    start_serve(&env.on_sqlite, "sqlite", db);
    env.have_redis = access("/usr/bin/redis-server", X_OK) == 0;
    if (env.have_redis) {
        sky_test_redis_start(&env.redis, NULL);
        start_serve(&env.on_redis, "redis", env.redis.url);
    }
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_client_close(env.loop, env.client);
    sky_test_stop_child(env.on_sqlite.pid);
    if (env.have_redis) {
        sky_test_stop_child(env.on_redis.pid);
        sky_test_redis_free(&env.redis);
    }
    sky_test_mock_stop(&env.mock);
    sky_test_rmdir(env.dir);
    return 0;
}

/* Answers the mock gave so far. */
static int64_t upstream_calls(void)
{
    json_t *st = sky_test_mock_stats(&env.mock);
    int64_t n = json_integer_value(sky_json_path(st, "responses.200"));
    json_decref(st);
    return n;
}

static void post(const serve *s, const char *path, const char *body, const char *cache,
                 sky_test_result *out)
{
    char header[64];
    snprintf(header, sizeof(header), "x-skyio-cache: %s", cache ? cache : "");
    sky_test_serve_call(s, env.loop, env.client, "POST", path, body, NULL, cache ? header : NULL,
                        out);
    assert_int_equal(out->err_code, 0);
    assert_int_equal(out->status, 200);
}

static const char *cache_status(const sky_test_result *r)
{
    return json_string_value(json_object_get(r->headers, "x-skyio-cache-status"));
}

static void cache_contract(const serve *s, const char *topic)
{
    char a[256], b[256];
    snprintf(a, sizeof(a),
             "{\"model\":\"gpt-4o\",\"temperature\":0,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             topic);
    /* The same request, its keys in another order and spaced out. */
    snprintf(b, sizeof(b),
             "{ \"messages\": [ {\"content\": \"%s\", \"role\": \"user\"} ],"
             "  \"temperature\": 0, \"model\": \"gpt-4o\" }",
             topic);
    sky_test_result first, again, plain, fresh;
    int64_t calls0 = upstream_calls();
    post(s, "/v1/chat/completions", a, "on", &first);
    assert_string_equal(cache_status(&first), "miss");
    assert_int_equal(upstream_calls(), calls0 + 1);

    post(s, "/v1/chat/completions", b, "on", &again);
    assert_string_equal(cache_status(&again), "hit");
    assert_int_equal(again.body_len, first.body_len);
    assert_memory_equal(again.body, first.body, first.body_len);
    assert_int_equal(upstream_calls(), calls0 + 1); /* nothing went upstream */

    /* Streamed, it hits too: the kept answer replayed as chunks, then [DONE]. */
    char streamed[300];
    snprintf(streamed, sizeof(streamed),
             "{\"model\":\"gpt-4o\",\"stream\":true,\"temperature\":0,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             topic);
    sky_test_result replay;
    post(s, "/v1/chat/completions", streamed, "on", &replay);
    assert_string_equal(cache_status(&replay), "hit");
    assert_non_null(strstr(json_string_value(json_object_get(replay.headers, "content-type")),
                           "text/event-stream"));
    assert_non_null(strstr(replay.body, "\"object\":\"chat.completion.chunk\""));
    assert_non_null(strstr(replay.body, "data: [DONE]\n\n"));
    json_t *whole = json_loadb(first.body, first.body_len, 0, NULL);
    const char *content = json_string_value(
        sky_json_path(json_array_get(json_object_get(whole, "choices"), 0), "message.content"));
    assert_non_null(content);
    assert_non_null(strstr(replay.body, content));
    json_decref(whole);
    sky_test_result_free(&replay);
    assert_int_equal(upstream_calls(), calls0 + 1);

    post(s, "/v1/chat/completions", a, "off", &plain); /* off: no cache */
    assert_null(cache_status(&plain));
    assert_int_equal(upstream_calls(), calls0 + 2);
    sky_test_result_free(&plain);
    post(s, "/v1/chat/completions", a, NULL, &plain); /* no header at temperature 0: cached */
    assert_string_equal(cache_status(&plain), "hit");
    assert_int_equal(upstream_calls(), calls0 + 2);

    post(s, "/v1/chat/completions", a, "refresh", &fresh);
    assert_string_equal(cache_status(&fresh), "refresh");
    assert_int_equal(upstream_calls(), calls0 + 3);
    sky_test_result_free(&first);
    sky_test_result_free(&again);
    sky_test_result_free(&plain);
    sky_test_result_free(&fresh);
}

static void cache_on_sqlite(void **state)
{
    (void)state;
    cache_contract(&env.on_sqlite, "sqlite: the capital of France?");
}

static void cache_on_redis(void **state)
{
    (void)state;
    if (!env.have_redis) {
        print_message("redis-server is not installed; skipped\n");
        skip();
    }
    cache_contract(&env.on_redis, "redis: the capital of Spain?");
}

static json_t *embedding_of(const sky_test_result *r, size_t i)
{
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    assert_non_null(doc);
    json_t *item = json_array_get(json_object_get(doc, "data"), i);
    assert_non_null(item);
    assert_int_equal(json_integer_value(json_object_get(item, "index")), (json_int_t)i);
    json_t *v = json_incref(json_object_get(item, "embedding"));
    json_decref(doc);
    assert_non_null(v);
    return v;
}

/* Embeddings cached per input: a list sharing inputs with an earlier one sends only the new
 * inputs upstream, and the answer puts each in its place; a list of known inputs sends none. */
static void embeddings_per_input(void **state)
{
    (void)state;
    const serve *s = &env.on_sqlite;
    sky_test_result one, two, again;
    int64_t calls0 = upstream_calls();
    post(s, "/v1/embeddings", "{\"model\":\"text-embedding-3-small\",\"input\":[\"alpha\"]}", "on",
         &one);
    assert_string_equal(cache_status(&one), "miss");
    post(s, "/v1/embeddings",
         "{\"model\":\"text-embedding-3-small\",\"input\":[\"beta\",\"alpha\"]}", "on", &two);
    assert_string_equal(cache_status(&two), "partial");
    assert_int_equal(upstream_calls(), calls0 + 2);
    json_t *alpha1 = embedding_of(&one, 0), *alpha2 = embedding_of(&two, 1);
    assert_true(json_equal(alpha1, alpha2)); /* alpha from the cache, in its place */
    json_t *beta = embedding_of(&two, 0);
    assert_false(json_equal(alpha1, beta));
    post(s, "/v1/embeddings",
         "{\"model\":\"text-embedding-3-small\",\"input\":[\"alpha\",\"beta\"]}", "on", &again);
    assert_string_equal(cache_status(&again), "hit");
    assert_int_equal(upstream_calls(), calls0 + 2); /* nothing went upstream */
    json_t *a3 = embedding_of(&again, 0), *b3 = embedding_of(&again, 1);
    assert_true(json_equal(a3, alpha1));
    assert_true(json_equal(b3, beta));
    json_decref(alpha1);
    json_decref(alpha2);
    json_decref(beta);
    json_decref(a3);
    json_decref(b3);
    sky_test_result_free(&one);
    sky_test_result_free(&two);
    sky_test_result_free(&again);
}

/* @p method @p path on @p s with key @p key (and @p body when not NULL). */
static void keyed(const serve *s, const char *method, const char *path, const char *key,
                  const char *body, sky_test_result *out)
{
    sky_test_serve_call(s, env.loop, env.client, method, path, body, key, NULL, out);
    assert_int_equal(out->err_code, 0);
}

/* The Responses API's state kept by the gateway (serve --state): GET and DELETE
 * /v1/responses/{id} of a kept answer, for its key only. */
static void stored_responses(void **state)
{
    (void)state;
    char config[512], db[512];
    snprintf(config, sizeof(config), "%s/keys.json", env.dir);
    snprintf(db, sizeof(db), "%s/responses.db", env.dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]},"
            " \"keys\": [{\"name\": \"alice\", \"key_env\": \"SKY_TEST_KEY_A\"},"
            "           {\"name\": \"bob\", \"key_env\": \"SKY_TEST_KEY_B\"}]}\n",
            env.mock.base_url);
    fclose(f);
    serve s = {0};
    const char *flags[] = {"--config", config, "--state", db, NULL};
    start_serve_args(&s, "responses", flags);

    sky_test_result made, got, other, del;
    keyed(&s, "POST", "/v1/responses", "sk-test-alice", "{\"model\":\"gpt-4o\",\"input\":\"hi\"}",
          &made);
    assert_int_equal(made.status, 200);
    json_t *doc = json_loadb(made.body, made.body_len, 0, NULL);
    char id[128], path[200];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(doc, "id")));
    json_decref(doc);
    assert_true(id[0] != '\0');
    snprintf(path, sizeof(path), "/v1/responses/%s", id);
    sky_test_result_free(&made);

    keyed(&s, "GET", path, "sk-test-alice", NULL, &got);
    assert_int_equal(got.status, 200);
    doc = json_loadb(got.body, got.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), id);
    json_decref(doc);
    sky_test_result_free(&got);

    keyed(&s, "GET", path, "sk-test-bob", NULL, &other); /* another key: not there */
    assert_int_equal(other.status, 404);
    sky_test_result_free(&other);
    keyed(&s, "DELETE", path, "sk-test-bob", NULL, &del);
    assert_int_equal(del.status, 404);
    sky_test_result_free(&del);

    keyed(&s, "DELETE", path, "sk-test-alice", NULL, &del);
    assert_int_equal(del.status, 200);
    assert_non_null(strstr(del.body, "\"deleted\":true"));
    sky_test_result_free(&del);
    keyed(&s, "GET", path, "sk-test-alice", NULL, &got);
    assert_int_equal(got.status, 404);
    sky_test_result_free(&got);
    sky_test_serve_stop_ok(&s);
}

/* The value of the metric line starting with @p series in @p s's /metrics, or -1. */
static long long metric(const serve *s, const char *series)
{
    sky_test_result r;
    sky_test_serve_metrics(s, env.loop, env.client, &r);
    const char *at = strstr(r.body, series);
    long long v = at ? strtoll(at + strlen(series), NULL, 10) : -1;
    sky_test_result_free(&r);
    return v;
}

/* Redis killed mid-run: requests that ask for the cache are still served
 * (upstream). */
static void redis_killed_requests_served(void **state)
{
    (void)state;
    if (!env.have_redis) {
        print_message("redis-server is not installed; skipped\n");
        skip();
    }
    const char *body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
                       "\"content\":\"k\"}]}";
    sky_test_result r;
    post(&env.on_redis, "/v1/chat/completions", body, "on", &r);
    sky_test_result_free(&r);
    sky_test_redis_kill(&env.redis);
    int64_t calls0 = upstream_calls();
    for (int i = 0; i < 3; i++) {
        post(&env.on_redis, "/v1/chat/completions", body, "on", &r);
        assert_string_equal(cache_status(&r), "miss");
        sky_test_result_free(&r);
    }
    assert_int_equal(upstream_calls(), calls0 + 3);
    /* the bypass is counted in the metrics */
    assert_true(metric(&env.on_redis, "skyio_gateway_cache_lookups_total{result=\"bypassed\"} ") >=
                3);
    sky_test_redis_restart(&env.redis, 1);
}

/* Run `skyio usage ARGS --json`; the totals' first row of model gpt-4o, or NULL. */
static json_t *usage_row(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s usage %s --json", SKY_TEST_BIN, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_t *doc = json_loadf(p, 0, NULL);
    assert_int_equal(pclose(p), 0);
    assert_non_null(doc);
    json_t *row = NULL, *r;
    size_t i;
    json_array_foreach(json_object_get(doc, "totals"), i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "model")), "gpt-4o") == 0)
            row = json_incref(r);
    }
    json_decref(doc);
    return row;
}

static const char chat_body[] =
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"usage\"}]}";

/* serve --state FILE: one usage record per call, written off the request path, totalled
 * by `skyio usage`; the state file keeps the cache too. */
static void usage_through_serve_state(void **state)
{
    (void)state;
    char db[512], args[600];
    snprintf(db, sizeof(db), "%s/state.db", env.dir);
    serve s = {0};
    const char *flags[] = {"--state", db, NULL};
    start_serve_args(&s, "state", flags);
    sky_test_result r;
    for (int i = 0; i < 3; i++) {
        post(&s, "/v1/chat/completions", chat_body, i ? "on" : NULL, &r);
        sky_test_result_free(&r);
    }
    post(&s, "/v1/chat/completions", chat_body, "on", &r);
    assert_string_equal(cache_status(&r), "hit");
    sky_test_result_free(&r);
    assert_int_equal(metric(&s, "skyio_gateway_cache_lookups_total{result=\"miss\"} "), 1);
    assert_int_equal(metric(&s, "skyio_gateway_cache_lookups_total{result=\"hit\"} "), 2);
    assert_int_equal(metric(&s, "skyio_gateway_usage_records_total{state=\"lost\"} "), 0);
    sky_test_serve_stop_ok(&s); /* SIGTERM: the queue is written on the way out */
    snprintf(args, sizeof(args), "--state %s", db);
    json_t *row = usage_row(args);
    assert_non_null(row);
    assert_int_equal(json_integer_value(json_object_get(row, "requests")), 4);
    assert_int_equal(json_integer_value(json_object_get(row, "errors")), 0);
    assert_true(json_integer_value(json_object_get(row, "tokens_in")) > 0);
    json_decref(row);
}

/* serve --postgres: down at start, exit 3; up, usage lands there, and a password given in
 * the URL is not left in the process's command line. */
static void usage_through_serve_postgres(void **state)
{
    (void)state;
    if (!sky_test_pg_available()) {
        print_message("PostgreSQL is not installed; skipped\n");
        skip();
    }
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s serve --config %s/gateway.json --port 0 --postgres "
             "postgresql://skyio@127.0.0.1:1/postgres >/dev/null 2>&1",
             SKY_TEST_BIN, env.dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);

    sky_test_pg pg;
    sky_test_pg_start(&pg);
    char url[512];
    snprintf(url, sizeof(url), "postgresql://skyio:pg-canary-pw@127.0.0.1:%d/postgres", pg.port);
    serve s = {0};
    const char *flags[] = {"--postgres", url, NULL};
    start_serve_args(&s, "postgres", flags);
    char path[64], line[1024] = {0};
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)s.pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        line[i] = line[i] ? line[i] : ' ';
    assert_null(strstr(line, "pg-canary-pw"));
    sky_test_result r;
    for (int i = 0; i < 2; i++) {
        post(&s, "/v1/chat/completions", chat_body, NULL, &r);
        sky_test_result_free(&r);
    }
    sky_test_serve_stop_ok(&s);
    char args[600];
    snprintf(args, sizeof(args), "--postgres %s", pg.url);
    json_t *row = usage_row(args);
    assert_non_null(row);
    assert_int_equal(json_integer_value(json_object_get(row, "requests")), 2);
    json_decref(row);
    sky_test_pg_free(&pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cache_on_sqlite),
        cmocka_unit_test(cache_on_redis),
        cmocka_unit_test(redis_killed_requests_served),
        cmocka_unit_test(embeddings_per_input),
        cmocka_unit_test(stored_responses),
        cmocka_unit_test(usage_through_serve_state),
        cmocka_unit_test(usage_through_serve_postgres),
    };
    return sky_test_run_group(tests, setup, teardown);
}
