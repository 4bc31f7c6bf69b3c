/*
 * bench_store_cache URL [N]: what a cache hit costs in the store itself, and how fast usage
 * records are written. URL is a SQLite file or redis://HOST:PORT/DB (a server you started).
 * Puts 1,000 values of 1 KiB, then times N gets one after another (each a whole round trip
 * through the store: the writer thread for SQLite, the loopback socket for Redis) and prints
 * their p50 / p99 in microseconds; then appends N usage records (SQLite) and times their
 * writing. A store that keeps no usage skips that part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

typedef struct bench {
    uv_loop_t *loop;
    sky__store *s;
    int done;
    int failed;
} bench;

static void on_done(const sky_error *err, void *ud)
{
    bench *b = ud;
    b->failed |= err->code != 0;
    b->done = 1;
}

static void on_value(const sky_error *err, sky_span v, void *ud)
{
    (void)v;
    on_done(err, ud);
}

static void wait_done(bench *b)
{
    while (!b->done)
        uv_run(b->loop, UV_RUN_ONCE);
    b->done = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void time_gets(bench *b, size_t n)
{
    uint64_t *ns = calloc(n, sizeof(*ns));
    char key[32];
    for (size_t i = 0; ns && i < n; i++) {
        snprintf(key, sizeof(key), "k%zu", i % 1000);
        uint64_t t0 = uv_hrtime();
        sky__store_cache_get(b->s, key, on_value, b);
        wait_done(b);
        ns[i] = uv_hrtime() - t0;
    }
    if (!ns)
        return;
    qsort(ns, n, sizeof(*ns), cmp_u64);
    printf("cache_get  n=%zu  p50=%.1f us  p99=%.1f us%s\n", n, (double)ns[n / 2] / 1e3,
           (double)ns[n * 99 / 100] / 1e3, b->failed ? "  (some failed)" : "");
    free(ns);
}

static void time_usage(bench *b, size_t n)
{
    if (!(sky__store_caps(b->s) & SKY__STORE_USAGE))
        return;
    uint64_t t0 = uv_hrtime();
    for (size_t i = 0; i < n; i++) {
        sky__store_usage u = {sky__store_now_ms(), "bench", "gpt-4o", "dep", 200, 10, 20, 500, 0};
        if (sky__store_usage_append(b->s, &u) != 0)
            break;
    }
    uint64_t t1 = uv_hrtime();
    sky__store_usage_flush(b->s, on_done, b);
    wait_done(b);
    uint64_t t2 = uv_hrtime();
    printf("usage      n=%zu  append %.2f us each (the request path)  written in %.1f ms "
           "(%.0f records/s)\n",
           n, (double)(t1 - t0) / 1e3 / (double)n, (double)(t2 - t0) / 1e6,
           (double)n / ((double)(t2 - t0) / 1e9));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_store_cache URL [N]\n");
        return 2;
    }
    size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 20000;
    bench b = {uv_default_loop(), NULL, 0, 0};
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = argv[1];
    sky_error err;
    sky_error_clear(&err);
    if (n == 0 || sky__store_open_sync(b.loop, &o, &b.s, &err) != 0) {
        fprintf(stderr, "bench_store_cache: %s\n", err.code ? err.message : "N must be > 0");
        return 3;
    }
    char value[1024];
    memset(value, 'v', sizeof(value));
    char key[32];
    int cache = (sky__store_caps(b.s) & SKY__STORE_CACHE) != 0;
    for (int i = 0; cache && i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        sky__store_cache_put(b.s, key, sky_span_make(value, sizeof(value)), 0, on_done, &b);
        wait_done(&b);
    }
    printf("%s store\n", sky__store_backend(b.s));
    if (cache)
        time_gets(&b, n);
    time_usage(&b, n);
    sky__store_close_sync(b.loop, b.s);
    uv_loop_close(b.loop);
    return b.failed ? 1 : 0;
}
