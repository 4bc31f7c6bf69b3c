/*
 * The gateway's stores against real backends: the same contract cases run on SQLite (a file
 * in a temp dir), Redis (redis-server on a free loopback port) and PostgreSQL (initdb +
 * pg_ctl in a temp dir), each case checking only what the backend keeps and SKY_ESTATE for
 * the rest; then the faults: a corrupt or locked SQLite file, Redis killed mid-run,
 * PostgreSQL down at start and restarted mid-run with usage intact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "harness.h"
#include "harness_postgres.h"
#include "harness_redis.h"
#include "skyio/log.h"
#include "store/store.h"
#include "harness_group.h"

/* ---- one running backend */

typedef struct backend {
    const char *name;
    unsigned caps;                   /* what its store must keep */
    int (*start)(struct backend *b); /* 0, or 1 to skip (binaries missing) */
    void (*stop)(struct backend *b);
    char dir[256];
    char url[512];
    int started, skipped;
    void *server;
} backend;

/* ---- waiting for callbacks */

typedef struct result {
    int done;
    int calls;
    sky_error err;
    char *value;
    size_t len;
    int64_t count;
    size_t n;
    sky__store_usage_total totals[16];
    char strs[16][3][64];
    sky__store_key keys[8];
    char kstrs[8][3][128];
    sky__store *store;
    sky__store_lease_answer lease;
} result;

static void reset(result *r)
{
    free(r->value);
    memset(r, 0, sizeof(*r));
}

static void on_done(const sky_error *err, void *ud)
{
    result *r = ud;
    r->err = *err;
    r->calls++;
    r->done = 1;
}

static void on_value(const sky_error *err, sky_span v, void *ud)
{
    result *r = ud;
    r->err = *err;
    r->calls++;
    r->done = 1;
    if (!err->code) {
        r->value = malloc(v.len + 1);
        memcpy(r->value, v.len ? v.ptr : "", v.len);
        r->value[v.len] = '\0';
        r->len = v.len;
    }
}

static void on_count(const sky_error *err, int64_t v, void *ud)
{
    result *r = ud;
    r->err = *err;
    r->calls++;
    r->done = 1;
    r->count = v;
}

static void on_lease(const sky_error *err, const sky__store_lease_answer *a, void *ud)
{
    result *r = ud;
    r->err = *err;
    r->calls++;
    r->done = 1;
    r->lease = *a;
}

static void copy_str(char *dst, size_t cap, const char *src, const char **out)
{
    snprintf(dst, cap, "%s", src ? src : "");
    *out = dst;
}

static void on_totals(const sky_error *err, const sky__store_usage_total *rows, size_t n, void *ud)
{
    result *r = ud;
    r->err = *err;
    r->calls++;
    r->done = 1;
    r->n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        r->totals[i] = rows[i];
        copy_str(r->strs[i][0], 64, rows[i].day, &r->totals[i].day);
        copy_str(r->strs[i][1], 64, rows[i].key_name, &r->totals[i].key_name);
        copy_str(r->strs[i][2], 64, rows[i].model, &r->totals[i].model);
    }
}

static void on_keys(const sky_error *err, const sky__store_key *keys, size_t n, void *ud)
{
    result *r = ud;
    r->err = *err;
    r->calls++;
    r->done = 1;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        r->keys[i] = keys[i];
        copy_str(r->kstrs[i][0], 128, keys[i].name, &r->keys[i].name);
        copy_str(r->kstrs[i][1], 128, keys[i].hash, &r->keys[i].hash);
        copy_str(r->kstrs[i][2], 128, keys[i].config, &r->keys[i].config);
    }
}

static void on_open(sky__store *s, const sky_error *err, void *ud)
{
    result *r = ud;
    r->err = *err;
    r->calls++;
    r->done = 1;
    r->store = s;
}

/* Run the loop until the call reported; it must report exactly once. */
static void wait_for(uv_loop_t *loop, result *r)
{
    assert_int_equal(r->done, 0); /* never from inside the call */
    sky_test_run_until(loop, &r->done, 30000);
    assert_int_equal(r->done, 1);
    assert_int_equal(r->calls, 1);
}

static void sleep_ms(uv_loop_t *loop, uint64_t ms)
{
    int never = 0;
    sky_test_run_until(loop, &never, ms);
}

/* ---- one test's fixture: a loop and a store open on the backend */

typedef struct fixture {
    backend *b;
    uv_loop_t *loop;
    sky__store *store;
} fixture;

static sky__store *open_store_opts(uv_loop_t *loop, const sky__store_options *o, sky_error *err)
{
    result r = {0};
    assert_int_equal(sky__store_open(loop, o, on_open, &r), 0);
    wait_for(loop, &r);
    *err = r.err;
    return r.store;
}

static sky__store *open_store(uv_loop_t *loop, const char *url)
{
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = url;
    o.cache_max_bytes = 4096;
    o.usage_flush_ms = 20;
    sky_error err;
    sky__store *s = open_store_opts(loop, &o, &err);
    if (!s)
        fail_msg("open %s: %s", url, err.message);
    return s;
}

static void close_store(uv_loop_t *loop, sky__store *s)
{
    result r = {0};
    sky__store_close(s, on_done, &r);
    sky_test_run_until(loop, &r.done, 30000);
    assert_int_equal(r.calls, 1);
}

static int fixture_setup(void **state)
{
    backend *b = *state;
    if (!b->started && !b->skipped) {
        if (b->start(b) != 0)
            b->skipped = 1;
        else
            b->started = 1;
    }
    if (b->skipped) {
        print_message("%s: the server's binaries are not installed; skipped\n", b->name);
        skip();
    }
    fixture *f = calloc(1, sizeof(*f));
    f->b = b;
    f->loop = sky_test_loop_new();
    f->store = open_store(f->loop, b->url);
    assert_string_equal(sky__store_backend(f->store), b->name);
    assert_int_equal(sky__store_caps(f->store), b->caps);
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    if (!f || f == (void *)f->b)
        return 0;
    backend *b = f->b;
    close_store(f->loop, f->store);
    sky_test_loop_free(f->loop);
    free(f);
    *state = b;
    return 0;
}

/* ---- store calls, waited for */

static void cache_put(fixture *f, const char *key, const char *v, uint64_t ttl, result *r)
{
    reset(r);
    sky__store_cache_put(f->store, key, sky_span_cstr(v), ttl, on_done, r);
    wait_for(f->loop, r);
}

static void cache_get(fixture *f, const char *key, result *r)
{
    reset(r);
    sky__store_cache_get(f->store, key, on_value, r);
    wait_for(f->loop, r);
}

static void flush_usage(fixture *f, result *r)
{
    reset(r);
    sky__store_usage_flush(f->store, on_done, r);
    wait_for(f->loop, r);
}

static void totals(fixture *f, const char *key, result *r)
{
    reset(r);
    sky__store_usage_totals(f->store, key, on_totals, r);
    wait_for(f->loop, r);
}

static void doc_put(fixture *f, const char *scope, const char *id, const char *doc, result *r)
{
    reset(r);
    sky__store_doc_put(f->store, scope, id, sky_span_cstr(doc), on_done, r);
    wait_for(f->loop, r);
}

static void doc_get(fixture *f, const char *scope, const char *id, result *r)
{
    reset(r);
    sky__store_doc_get(f->store, scope, id, on_value, r);
    wait_for(f->loop, r);
}

static void doc_delete(fixture *f, const char *scope, const char *id, result *r)
{
    reset(r);
    sky__store_doc_delete(f->store, scope, id, on_done, r);
    wait_for(f->loop, r);
}

static void key_put(fixture *f, const char *name, const char *hash, result *r)
{
    sky__store_key k = {name, hash, "{\"models\":[\"gpt-4o\"]}", 1700000000000, 0};
    reset(r);
    sky__store_key_put(f->store, &k, on_done, r);
    wait_for(f->loop, r);
}

static void key_list(fixture *f, result *r)
{
    reset(r);
    sky__store_key_list(f->store, on_keys, r);
    wait_for(f->loop, r);
}

static void key_revoke(fixture *f, const char *name, result *r)
{
    reset(r);
    sky__store_key_revoke(f->store, name, on_done, r);
    wait_for(f->loop, r);
}

static void counter_add(fixture *f, const char *name, int64_t d, uint64_t ttl, result *r)
{
    reset(r);
    sky__store_counter_add(f->store, name, d, ttl, on_count, r);
    wait_for(f->loop, r);
}

static void lease(fixture *f, double rpm, double tpm, int64_t reqs, int64_t toks, int64_t give,
                  result *r)
{
    sky__store_lease_ask ask = {rpm, tpm, reqs, toks, give};
    reset(r);
    sky__store_bucket_lease(f->store, "key:a", &ask, on_lease, r);
    wait_for(f->loop, r);
}

/* A case for something the backend does not keep: it must say so, through the callback. */
static int refused(fixture *f, unsigned cap, result *r)
{
    if (f->b->caps & cap)
        return 0;
    assert_int_equal(r->err.code, SKY_ESTATE);
    return 1;
}

/* ---- the contract */

static void contract_cache(void **state)
{
    fixture *f = *state;
    result r = {0};
    cache_put(f, "k1", "{\"answer\":42}", 0, &r);
    if (refused(f, SKY__STORE_CACHE, &r))
        return;
    assert_int_equal(r.err.code, 0);
    cache_get(f, "k1", &r);
    assert_int_equal(r.err.code, 0);
    assert_string_equal(r.value, "{\"answer\":42}");
    cache_get(f, "absent", &r);
    assert_int_equal(r.err.code, SKY_ENOTFOUND);
    cache_put(f, "k1", "replaced", 0, &r);
    cache_get(f, "k1", &r);
    assert_string_equal(r.value, "replaced");
    /* A TTL: gone once it has passed. */
    cache_put(f, "short", "v", 1, &r);
    assert_int_equal(r.err.code, 0);
    sleep_ms(f->loop, 20);
    cache_get(f, "short", &r);
    assert_int_equal(r.err.code, SKY_ENOTFOUND);
    /* Bounded: 4 KiB holds three of these, so the oldest go and the newest stay. */
    char big[1201];
    memset(big, 'x', 1200);
    big[1200] = '\0';
    char key[32];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "big%d", i);
        cache_put(f, key, big, 0, &r);
        assert_int_equal(r.err.code, 0);
    }
    cache_get(f, "big0", &r);
    assert_int_equal(r.err.code, SKY_ENOTFOUND);
    cache_get(f, "big7", &r);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.len, 1200);
    reset(&r);
}

static const char *const days_ms[] = {"2026-12-05", "2026-12-06"};

static void append_usage(fixture *f, const char *key, const char *model, int64_t ms, int status)
{
    sky__store_usage u = {ms, key, model, "dep-a", status, 10, 5, 1234, 0.25};
    assert_int_equal(sky__store_usage_append(f->store, &u), 0);
}

static void contract_usage(void **state)
{
    fixture *f = *state;
    result r = {0};
    if (!(f->b->caps & SKY__STORE_USAGE)) {
        sky__store_usage u = {0};
        assert_int_equal(sky__store_usage_append(f->store, &u), SKY_ESTATE);
        totals(f, NULL, &r);
        assert_int_equal(r.err.code, SKY_ESTATE);
        return;
    }
    const int64_t day1 = 1796428800000; /* 2026-12-05T00:00:00Z */
    const int64_t day2 = day1 + 86400000;
    for (int i = 0; i < 3; i++)
        append_usage(f, "team-a", "gpt-4o", day1 + i * 1000, 200);
    append_usage(f, "team-a", "gpt-4o", day1 + 5000, 429);
    append_usage(f, "team-a", "gpt-4o-mini", day2 + 10, 200);
    append_usage(f, "team-b", "gpt-4o", day2 + 20, 200);
    flush_usage(f, &r);
    assert_int_equal(r.err.code, 0);
    totals(f, NULL, &r);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.totals[0].day, days_ms[0]);
    assert_string_equal(r.totals[0].key_name, "team-a");
    assert_string_equal(r.totals[0].model, "gpt-4o");
    assert_int_equal(r.totals[0].requests, 4);
    assert_int_equal(r.totals[0].errors, 1);
    assert_int_equal(r.totals[0].tokens_in, 40);
    assert_int_equal(r.totals[0].tokens_out, 20);
    assert_true(r.totals[0].cost > 0.99 && r.totals[0].cost < 1.01);
    assert_string_equal(r.totals[1].day, days_ms[1]);
    assert_string_equal(r.totals[1].model, "gpt-4o-mini");
    assert_string_equal(r.totals[2].key_name, "team-b");
    totals(f, "team-b", &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.totals[0].requests, 1);
    sky__store_stats st;
    sky__store_get_stats(f->store, &st);
    assert_int_equal(st.usage_written, 6);
    assert_int_equal(st.usage_lost, 0);
}

/* Names with what a store's quoting must keep (PostgreSQL's array literals: quotes,
 * backslashes, commas, braces, the word NULL, an empty name), a cost that needs all 17
 * digits, a token count past 32 bits, zeros, and more records than one batch holds. */
static const char *const odd_names[] = {"q\"uote", "back\\slash",     "a,b}{c", "NULL",
                                        "",        "\xc3\xa9 \\\"'\t"};

static void contract_usage_strings(void **state)
{
    fixture *f = *state;
    result r = {0};
    if (!(f->b->caps & SKY__STORE_USAGE))
        return;
    const int64_t t = 1577836800000; /* 2020-01-01T00:00:00Z */
    const double cost = 0.1 + 0.2;   /* 0.30000000000000004 */
    for (size_t i = 0; i < SKY_ARRAY_LEN(odd_names); i++) {
        sky__store_usage u = {t, odd_names[i], odd_names[i], "d\"{,}", 200, 3, 4, 5, cost};
        assert_int_equal(sky__store_usage_append(f->store, &u), 0);
    }
    sky__store_usage big = {t, "big", "m", "d", 0, 9000000000000, 0, -1, 0};
    assert_int_equal(sky__store_usage_append(f->store, &big), 0);
    for (int i = 0; i < 1300; i++) /* batches of 512 */
        append_usage(f, "bulk", "gpt-4o", t + i, 200);
    flush_usage(f, &r);
    assert_int_equal(r.err.code, 0);
    for (size_t i = 0; i < SKY_ARRAY_LEN(odd_names); i++) {
        totals(f, odd_names[i], &r);
        assert_int_equal(r.err.code, 0);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.totals[0].day, "2020-01-01");
        assert_string_equal(r.totals[0].key_name, odd_names[i]);
        assert_string_equal(r.totals[0].model, odd_names[i]);
        assert_int_equal(r.totals[0].requests, 1);
        assert_int_equal(r.totals[0].tokens_in, 3);
        assert_true(r.totals[0].cost == cost);
    }
    totals(f, "big", &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.totals[0].tokens_in, 9000000000000);
    assert_int_equal(r.totals[0].tokens_out, 0);
    assert_true(r.totals[0].cost == 0);
    totals(f, "bulk", &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.totals[0].requests, 1300);
    assert_int_equal(r.totals[0].tokens_out, 1300 * 5);
}

static void contract_docs(void **state)
{
    fixture *f = *state;
    result r = {0};
    doc_put(f, "key-a", "resp_1", "{\"turn\":1}", &r);
    if (refused(f, SKY__STORE_CONV, &r))
        return;
    assert_int_equal(r.err.code, 0);
    doc_get(f, "key-a", "resp_1", &r);
    assert_int_equal(r.err.code, 0);
    assert_string_equal(r.value, "{\"turn\":1}");
    /* One key never reads another's. */
    doc_get(f, "key-b", "resp_1", &r);
    assert_int_equal(r.err.code, SKY_ENOTFOUND);
    doc_delete(f, "key-b", "resp_1", &r);
    assert_int_equal(r.err.code, SKY_ENOTFOUND);
    doc_put(f, "key-a", "resp_1", "{\"turn\":2}", &r);
    doc_get(f, "key-a", "resp_1", &r);
    assert_string_equal(r.value, "{\"turn\":2}");
    doc_delete(f, "key-a", "resp_1", &r);
    assert_int_equal(r.err.code, 0);
    doc_get(f, "key-a", "resp_1", &r);
    assert_int_equal(r.err.code, SKY_ENOTFOUND);
    reset(&r);
}

static void contract_keys(void **state)
{
    fixture *f = *state;
    result r = {0};
    key_put(f, "alpha", "aa11", &r);
    if (refused(f, SKY__STORE_KEYS, &r)) {
        key_list(f, &r);
        assert_int_equal(r.err.code, SKY_ESTATE);
        return;
    }
    assert_int_equal(r.err.code, 0);
    key_put(f, "beta", "bb22", &r);
    key_list(f, &r);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.keys[0].name, "alpha");
    assert_string_equal(r.keys[0].hash, "aa11");
    assert_string_equal(r.keys[0].config, "{\"models\":[\"gpt-4o\"]}");
    assert_int_equal(r.keys[0].created_ms, 1700000000000);
    assert_int_equal(r.keys[0].revoked, 0);
    key_revoke(f, "alpha", &r);
    assert_int_equal(r.err.code, 0);
    key_revoke(f, "nobody", &r);
    assert_int_equal(r.err.code, SKY_ENOTFOUND);
    key_list(f, &r);
    assert_int_equal(r.keys[0].revoked, 1);
    assert_int_equal(r.keys[1].revoked, 0);
    /* Put again: a new key of that name, not revoked. */
    key_put(f, "alpha", "cc33", &r);
    key_list(f, &r);
    assert_int_equal(r.keys[0].revoked, 0);
    assert_string_equal(r.keys[0].hash, "cc33");
}

static void contract_counters(void **state)
{
    fixture *f = *state;
    result r = {0};
    counter_add(f, "budget:a", 5, 0, &r);
    if (refused(f, SKY__STORE_COUNTERS, &r))
        return;
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.count, 5);
    counter_add(f, "budget:a", 3, 0, &r);
    assert_int_equal(r.count, 8);
    counter_add(f, "budget:day", 7, 1, &r);
    assert_int_equal(r.count, 7);
    sleep_ms(f->loop, 20);
    counter_add(f, "budget:day", 1, 1, &r);
    assert_int_equal(r.count, 1);
}

/* A key's shared minute bucket: leases up to what it holds, the wait for the rest, tokens
 * given back; new rates start it over full. */
static void contract_buckets(void **state)
{
    fixture *f = *state;
    result r = {0};
    lease(f, 20, 1000, 15, 900, 0, &r);
    if (refused(f, SKY__STORE_BUCKETS, &r))
        return;
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.lease.reqs, 15);
    assert_int_equal(r.lease.toks, 900);
    assert_int_equal(r.lease.level_reqs, 5);
    assert_int_equal(r.lease.level_toks, 100);
    assert_int_equal(r.lease.wait_ms, 0);
    /* more than is left: what is there, and the wait for the rest (3 s a request) */
    lease(f, 20, 1000, 8, 0, 0, &r);
    assert_int_equal(r.lease.reqs, 5);
    assert_int_equal(r.lease.level_reqs, 0);
    assert_true(r.lease.wait_ms > 8000 && r.lease.wait_ms <= 9000);
    /* tokens given back are there for the next lease, up to the minute's budget */
    lease(f, 20, 1000, 0, 0, 300, &r);
    assert_true(r.lease.level_toks >= 400 && r.lease.level_toks <= 402);
    lease(f, 20, 1000, 0, 0, 5000, &r);
    assert_int_equal(r.lease.level_toks, 1000);
    /* the key's limits changed: full on the new ones */
    lease(f, 60, 0, 1, 0, 0, &r);
    assert_int_equal(r.lease.reqs, 1);
    assert_int_equal(r.lease.level_reqs, 59);
    assert_int_equal(r.lease.toks, 0);
}

/* ---- SQLite */

static int sqlite_start(backend *b)
{
    sky_test_tmpdir(b->dir, sizeof(b->dir));
    snprintf(b->url, sizeof(b->url), "%s/state.db", b->dir);
    return 0;
}

static void sqlite_stop(backend *b)
{
    sky_test_rmdir(b->dir);
}

static backend sqlite_backend = {
    .name = "sqlite",
    .caps = SKY__STORE_CACHE | SKY__STORE_USAGE | SKY__STORE_CONV | SKY__STORE_KEYS |
            SKY__STORE_COUNTERS,
    .start = sqlite_start,
    .stop = sqlite_stop,
};

/* Closed and opened again: what was kept is there, and the schema is not migrated twice. */
static void sqlite_reopen_keeps_state(void **state)
{
    fixture *f = *state;
    result r = {0};
    key_put(f, "persist", "dd44", &r);
    doc_put(f, "key-a", "conv_1", "{}", &r);
    close_store(f->loop, f->store);
    f->store = open_store(f->loop, f->b->url);
    key_list(f, &r);
    int found = 0;
    for (size_t i = 0; i < r.n; i++)
        found += strcmp(r.keys[i].name, "persist") == 0;
    assert_int_equal(found, 1);
    doc_get(f, "key-a", "conv_1", &r);
    assert_int_equal(r.err.code, 0);
    reset(&r);
}

static void expect_open_error(uv_loop_t *loop, const char *url, int code, const char *words)
{
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = url;
    sky_error err;
    sky__store *s = open_store_opts(loop, &o, &err);
    assert_null(s);
    assert_int_equal(err.code, code);
    if (!strstr(err.message, words))
        fail_msg("error \"%s\" lacks \"%s\"", err.message, words);
}

static void sqlite_corrupt_file_is_named(void **state)
{
    (void)state;
    char dir[256], path[300];
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/broken.db", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", fp);
    fclose(fp);
    uv_loop_t *loop = sky_test_loop_new();
    expect_open_error(loop, path, SKY_EIO, path);
    expect_open_error(loop, path, SKY_EIO, "not a SQLite database, or corrupt");
    sky_test_loop_free(loop);
    sky_test_rmdir(dir);
}

static void sqlite_locked_file_is_named(void **state)
{
    (void)state;
    char dir[256], path[300];
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/locked.db", dir);
    sqlite3 *holder = NULL;
    assert_int_equal(sqlite3_open(path, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder,
                                  "PRAGMA locking_mode = EXCLUSIVE; CREATE TABLE t(x);"
                                  " BEGIN EXCLUSIVE; INSERT INTO t VALUES(1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    uv_loop_t *loop = sky_test_loop_new();
    expect_open_error(loop, path, SKY_EBUSY, "locked by another process");
    expect_open_error(loop, path, SKY_EBUSY, path);
    sky_test_loop_free(loop);
    sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(holder);
    sky_test_rmdir(dir);
}

static void url_scrub_hides_passwords(void **state)
{
    (void)state;
    char out[256];
    sky__store_url_scrub("postgresql://skyio:s3cret@127.0.0.1:5432/db", out, sizeof(out));
    assert_string_equal(out, "postgresql://skyio:***@127.0.0.1:5432/db");
    sky__store_url_scrub("redis://:pw@127.0.0.1:6379/0", out, sizeof(out));
    assert_string_equal(out, "redis://:***@127.0.0.1:6379/0");
    sky__store_url_scrub("postgresql:///db?host=/tmp&password=hush&user=x", out, sizeof(out));
    assert_string_equal(out, "postgresql:///db?host=/tmp&password=***&user=x");
    sky__store_url_scrub("host=/tmp password=hush user=x", out, sizeof(out));
    assert_string_equal(out, "host=/tmp password=*** user=x");
}

/* ---- Redis */

static sky_test_redis redis_server;

static int redis_start(backend *b)
{
    if (access(getenv("SKY_TEST_REDIS_SERVER") ? getenv("SKY_TEST_REDIS_SERVER")
                                               : "/usr/bin/redis-server",
               X_OK) != 0)
        return 1;
    sky_test_redis_options o;
    sky_test_redis_options_init(&o);
    o.requirepass = "redis-canary-pw"; /* AUTH on each connection; never in a message */
    sky_test_redis_start(&redis_server, &o);
    snprintf(b->url, sizeof(b->url), "%s", redis_server.url);
    return 0;
}

static void redis_stop(backend *b)
{
    (void)b;
    sky_test_redis_free(&redis_server);
}

static backend redis_backend = {
    .name = "redis",
    .caps = SKY__STORE_CACHE | SKY__STORE_COUNTERS | SKY__STORE_BUCKETS,
    .start = redis_start,
    .stop = redis_stop,
};

/* What the store logs, kept to check for warnings and secrets. */
static char log_text[8192];

static void log_sink(void *ud, sky_log_level level, const char *line, size_t len)
{
    (void)ud;
    (void)level;
    size_t have = strlen(log_text);
    if (have + len + 2 < sizeof(log_text)) {
        memcpy(log_text + have, line, len);
        log_text[have + len] = '\n';
        log_text[have + len + 1] = '\0';
    }
}

/* Redis killed mid-run: calls fail at once (the cache is bypassed) with one warning, and
 * the cache is used again once Redis is back. */
static void redis_killed_mid_run(void **state)
{
    fixture *f = *state;
    result r = {0};
    log_text[0] = '\0';
    sky_log_set_sink(log_sink, NULL);
    cache_put(f, "before", "v1", 0, &r);
    assert_int_equal(r.err.code, 0);
    sky_test_redis_kill(&redis_server);
    for (int i = 0; i < 3; i++) {
        cache_get(f, "before", &r);
        assert_int_equal(r.err.code, SKY_ECONNECT);
        cache_put(f, "during", "v2", 0, &r);
        assert_int_equal(r.err.code, SKY_ECONNECT);
    }
    assert_non_null(strstr(log_text, "unreachable"));
    assert_non_null(strstr(log_text, "the cache is bypassed"));
    assert_null(strstr(log_text, "redis-canary-pw"));
    assert_null(strstr(r.err.message, "redis-canary-pw"));
    sky_test_redis_restart(&redis_server, 1);
    /* Back: a call after the reconnect interval starts a connection (and is bypassed while
     * it is made); once connected, the cache is used again. */
    for (int i = 0; i < 100; i++) {
        cache_put(f, "after", "v3", 0, &r);
        if (r.err.code == 0)
            break;
        assert_int_equal(r.err.code, SKY_ECONNECT);
        sleep_ms(f->loop, 100);
    }
    assert_int_equal(r.err.code, 0);
    cache_get(f, "after", &r);
    assert_int_equal(r.err.code, 0);
    assert_string_equal(r.value, "v3");
    reset(&r);
    sky_log_set_sink(NULL, NULL);
}

/* Unreachable at start: the store opens all the same (requests are served without it). */
static void redis_down_at_start_opens(void **state)
{
    (void)state;
    uv_loop_t *loop = sky_test_loop_new();
    sky__store *s = open_store(loop, "redis://127.0.0.1:1/0");
    result r = {0};
    sky__store_cache_get(s, "k", on_value, &r);
    wait_for(loop, &r);
    assert_int_equal(r.err.code, SKY_ECONNECT);
    close_store(loop, s);
    sky_test_loop_free(loop);
}

/* ---- PostgreSQL */

static sky_test_pg pg_server;

static int pg_start(backend *b)
{
    if (!sky_test_pg_available())
        return 1;
    sky_test_pg_start(&pg_server);
    snprintf(b->url, sizeof(b->url), "%s", pg_server.url);
    return 0;
}

static void pg_stop(backend *b)
{
    (void)b;
    sky_test_pg_free(&pg_server);
}

static backend pg_backend = {
    .name = "postgres",
    .caps = SKY__STORE_USAGE | SKY__STORE_CONV | SKY__STORE_KEYS | SKY__STORE_COUNTERS,
    .start = pg_start,
    .stop = pg_stop,
};

/* Down at start: the open fails (the gateway exits 3) naming the server, not its password. */
static void pg_down_at_start_fails(void **state)
{
    (void)state;
    uv_loop_t *loop = sky_test_loop_new();
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = "postgresql://skyio:pg-canary-pw@127.0.0.1:1/postgres?connect_timeout=5";
    sky_error err;
    assert_null(open_store_opts(loop, &o, &err));
    assert_int_equal(err.code, SKY_ECONNECT);
    assert_non_null(strstr(err.message, "postgresql://skyio:***@127.0.0.1:1/postgres"));
    assert_null(strstr(err.message, "pg-canary-pw"));
    sky_test_loop_free(loop);
}

/* A server that takes the connection and never answers: the open gives up (connect timed
 * out) instead of waiting for ever. */
static void pg_silent_server_times_out(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0); /* never accepted, never answered */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char url[128];
    snprintf(url, sizeof(url), "postgresql://skyio@127.0.0.1:%d/postgres", ntohs(a.sin_port));
    uv_loop_t *loop = sky_test_loop_new();
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = url;
    sky_error err;
    assert_null(open_store_opts(loop, &o, &err));
    assert_int_equal(err.code, SKY_ECONNECT);
    assert_non_null(strstr(err.message, "connect timed out"));
    sky_test_loop_free(loop);
    close(fd);
}

static int64_t stats_written(fixture *f)
{
    sky__store_stats st;
    sky__store_get_stats(f->store, &st);
    return (int64_t)st.usage_written;
}

/* Restarted mid-run: records appended while it is down wait in the queue and are written
 * when it is back; nothing is lost and the totals hold every record. */
static void pg_restarted_mid_run(void **state)
{
    fixture *f = *state;
    result r = {0};
    const int64_t t0 = 1796428800000 + 3600000;
    for (int i = 0; i < 5; i++)
        append_usage(f, "restart", "gpt-4o", t0 + i, 200);
    flush_usage(f, &r);
    assert_int_equal(r.err.code, 0);
    sky_test_pg_stop(&pg_server);
    for (int i = 0; i < 7; i++)
        append_usage(f, "restart", "gpt-4o", t0 + 100 + i, 200);
    flush_usage(f, &r); /* the server is away: the flush fails, the records stay */
    assert_int_equal(r.err.code, SKY_ECONNECT);
    sky__store_stats st;
    sky__store_get_stats(f->store, &st);
    assert_int_equal(st.usage_queued, 7);
    assert_int_equal(st.usage_lost, 0);
    doc_get(f, "key-a", "x", &r);
    assert_int_equal(r.err.code, SKY_ECONNECT);
    sky_test_pg_restart(&pg_server);
    for (int i = 0; i < 500 && stats_written(f) < 12; i++)
        sleep_ms(f->loop, 20);
    sky__store_get_stats(f->store, &st);
    assert_int_equal(st.usage_written, 12);
    assert_int_equal(st.usage_queued, 0);
    assert_int_equal(st.usage_lost, 0);
    assert_true(st.write_errors >= 1);
    totals(f, "restart", &r);
    assert_int_equal(r.err.code, 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.totals[0].requests, 12);
}

/* Past the bound, records are refused and counted, not queued without end. */
static void pg_queue_bound_counts_loss(void **state)
{
    (void)state;
    backend *b = &pg_backend;
    uv_loop_t *loop = sky_test_loop_new();
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = b->url;
    o.usage_queue_max = 4;
    o.usage_flush_ms = 60000; /* nothing written meanwhile */
    sky_error err;
    fixture f = {b, loop, open_store_opts(loop, &o, &err)};
    assert_non_null(f.store);
    for (int i = 0; i < 4; i++)
        append_usage(&f, "bound", "m", 1796428800000 + i, 200);
    sky__store_usage u = {1796428800000, "bound", "m", "", 200, 1, 1, 1, 0};
    assert_int_equal(sky__store_usage_append(f.store, &u), SKY_EBUSY);
    assert_int_equal(sky__store_usage_append(f.store, &u), SKY_EBUSY);
    sky__store_stats st;
    sky__store_get_stats(f.store, &st);
    assert_int_equal(st.usage_lost, 2);
    assert_int_equal(st.usage_queued, 4);
    close_store(loop, f.store); /* close writes what is queued */
    f.store = open_store(loop, b->url);
    result r = {0};
    totals(&f, "bound", &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.totals[0].requests, 4);
    close_store(loop, f.store);
    sky_test_loop_free(loop);
}

/* ---- skyio usage */

/* Run `skyio usage ARGS`; its stdout in @p out (malloc'd); returns the exit status. */
static int run_usage_cli(const char *args, char **out)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s usage %s 2>/dev/null", SKY_TEST_BIN, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 65536, n = 0;
    *out = calloc(1, cap);
    n = fread(*out, 1, cap - 1, p);
    (*out)[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void usage_cli_reads_sqlite(void **state)
{
    (void)state;
    char dir[256], path[300], args[512];
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/gw.db", dir);
    fixture f = {&sqlite_backend, sky_test_loop_new(), NULL};
    f.store = open_store(f.loop, path);
    append_usage(&f, "cli-key", "gpt-4o", 1796428800000, 200);
    append_usage(&f, "cli-key", "gpt-4o", 1796428800000 + 5, 500);
    append_usage(&f, "other", "gpt-4o-mini", 1796428800000 + 9, 200);
    close_store(f.loop, f.store); /* close writes the queue */
    sky_test_loop_free(f.loop);

    char *text = NULL;
    snprintf(args, sizeof(args), "--state %s --json", path);
    assert_int_equal(run_usage_cli(args, &text), 0);
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    assert_non_null(doc);
    json_t *rows = json_object_get(doc, "totals");
    assert_int_equal(json_array_size(rows), 2);
    json_t *first = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_object_get(first, "day")), "2026-12-05");
    assert_string_equal(json_string_value(json_object_get(first, "key")), "cli-key");
    assert_int_equal(json_integer_value(json_object_get(first, "requests")), 2);
    assert_int_equal(json_integer_value(json_object_get(first, "errors")), 1);
    assert_int_equal(json_integer_value(json_object_get(first, "tokens_in")), 20);
    json_decref(doc);
    free(text);

    snprintf(args, sizeof(args), "--state %s --key other", path);
    assert_int_equal(run_usage_cli(args, &text), 0);
    assert_non_null(strstr(text, "gpt-4o-mini"));
    assert_null(strstr(text, "cli-key"));
    free(text);

    snprintf(args, sizeof(args), "--state %s/absent.db", dir);
    assert_int_equal(run_usage_cli(args, &text), 2);
    free(text);
    sky_test_rmdir(dir);
}

static void usage_cli_reads_postgres(void **state)
{
    backend *b = *state;
    if (!b->started) {
        print_message("postgres: not running; skipped\n");
        skip();
    }
    char args[600], *text = NULL;
    snprintf(args, sizeof(args), "--postgres %s --key restart --json", b->url);
    assert_int_equal(run_usage_cli(args, &text), 0);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    json_t *first = json_array_get(json_object_get(doc, "totals"), 0);
    assert_int_equal(json_integer_value(json_object_get(first, "requests")), 12);
    json_decref(doc);
    free(text);
    /* Down: exit 3. */
    assert_int_equal(run_usage_cli("--postgres postgresql://skyio@127.0.0.1:1/postgres", &text), 3);
    free(text);
}

static int group_teardown(void **state)
{
    (void)state;
    backend *all[] = {&sqlite_backend, &redis_backend, &pg_backend};
    for (size_t i = 0; i < SKY_ARRAY_LEN(all); i++)
        if (all[i]->started)
            all[i]->stop(all[i]);
    return 0;
}

#define CONTRACT(b)                                                                                \
    cmocka_unit_test_prestate_setup_teardown(contract_cache, fixture_setup, fixture_teardown, &b), \
        cmocka_unit_test_prestate_setup_teardown(contract_usage, fixture_setup, fixture_teardown,  \
                                                 &b),                                              \
        cmocka_unit_test_prestate_setup_teardown(contract_usage_strings, fixture_setup,            \
                                                 fixture_teardown, &b),                            \
        cmocka_unit_test_prestate_setup_teardown(contract_docs, fixture_setup, fixture_teardown,   \
                                                 &b),                                              \
        cmocka_unit_test_prestate_setup_teardown(contract_keys, fixture_setup, fixture_teardown,   \
                                                 &b),                                              \
        cmocka_unit_test_prestate_setup_teardown(contract_counters, fixture_setup,                 \
                                                 fixture_teardown, &b),                            \
        cmocka_unit_test_prestate_setup_teardown(contract_buckets, fixture_setup,                  \
                                                 fixture_teardown, &b)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_scrub_hides_passwords),
        CONTRACT(sqlite_backend),
        cmocka_unit_test_prestate_setup_teardown(sqlite_reopen_keeps_state, fixture_setup,
                                                 fixture_teardown, &sqlite_backend),
        CONTRACT(redis_backend),
        cmocka_unit_test_prestate_setup_teardown(redis_killed_mid_run, fixture_setup,
                                                 fixture_teardown, &redis_backend),
        cmocka_unit_test(redis_down_at_start_opens),
        CONTRACT(pg_backend),
        cmocka_unit_test_prestate_setup_teardown(pg_restarted_mid_run, fixture_setup,
                                                 fixture_teardown, &pg_backend),
        cmocka_unit_test_prestate(pg_queue_bound_counts_loss, &pg_backend),
        cmocka_unit_test(pg_down_at_start_fails),
        cmocka_unit_test(pg_silent_server_times_out),
        cmocka_unit_test(usage_cli_reads_sqlite),
        cmocka_unit_test_prestate(usage_cli_reads_postgres, &pg_backend),
        cmocka_unit_test(sqlite_corrupt_file_is_named),
        cmocka_unit_test(sqlite_locked_file_is_named),
    };
    return sky_test_run_group(tests, NULL, group_teardown);
}
