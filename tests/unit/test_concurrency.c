/* Tests for the concurrency limiters (fixed, AIMD, latency gradient), on a fake clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/concurrency.h"
#include "skyio/error.h"

static sky_limiter *make(sky_fake_clock *fc, sky_limiter_kind kind, int initial, int min, int max)
{
    sky_limiter_options o;
    sky_limiter_options_init(&o);
    o.kind = kind;
    o.initial = initial;
    o.min = min;
    o.max = max;
    sky_limiter *lim = NULL;
    assert_int_equal(sky_limiter_new(&o, &fc->clock, &lim), 0);
    assert_non_null(lim);
    return lim;
}

/* Take every slot the limiter offers; returns how many. */
static int fill(sky_limiter *lim)
{
    int n = 0;
    while (sky_limiter_try_acquire(lim))
        n++;
    return n;
}

static void release_n(sky_limiter *lim, int n, int outcome, uint64_t rtt_us)
{
    for (int i = 0; i < n; i++)
        sky_limiter_release(lim, outcome, rtt_us);
}

static void test_options_defaults(void **state)
{
    (void)state;
    sky_limiter_options o;
    sky_limiter_options_init(&o);
    assert_int_equal(o.kind, SKY_LIMITER_GRADIENT);
    assert_int_equal(o.initial, 20);
    assert_int_equal(o.min, 1);
    assert_int_equal(o.max, 1000);
    assert_true(o.backoff_ratio == 0.5);
    assert_true(o.smoothing == 0.2);
    assert_int_equal(o.window_min_samples, 10);
    assert_int_equal(o.window_min_ms, 1000);
    assert_int_equal(o.probe_interval_ms, 120000);

    sky_limiter *lim = NULL;
    assert_int_equal(sky_limiter_new(NULL, NULL, &lim), 0);
    sky_limiter_stats st;
    sky_limiter_get_stats(lim, &st);
    assert_int_equal(st.kind, SKY_LIMITER_GRADIENT);
    assert_int_equal(st.estimate, 20);
    sky_limiter_free(lim);
    sky_limiter_free(NULL);
}

static void test_invalid_options(void **state)
{
    (void)state;
    sky_limiter_options o;
    sky_limiter *lim = (sky_limiter *)(uintptr_t)1; /* must be reset to NULL on failure */
    sky_limiter_options_init(&o);
    o.min = 0;
    assert_int_equal(sky_limiter_new(&o, NULL, &lim), SKY_EINVAL);
    assert_null(lim);
    sky_limiter_options_init(&o);
    o.max = 10;
    o.initial = 11;
    assert_int_equal(sky_limiter_new(&o, NULL, &lim), SKY_EINVAL);
    sky_limiter_options_init(&o);
    o.backoff_ratio = 0.0;
    assert_int_equal(sky_limiter_new(&o, NULL, &lim), SKY_EINVAL);
    sky_limiter_options_init(&o);
    o.smoothing = 1.5;
    assert_int_equal(sky_limiter_new(&o, NULL, &lim), SKY_EINVAL);
    sky_limiter_options_init(&o);
    o.window_min_samples = 0;
    assert_int_equal(sky_limiter_new(&o, NULL, &lim), SKY_EINVAL);
    sky_limiter_options_init(&o);
    o.kind = (sky_limiter_kind)7;
    assert_int_equal(sky_limiter_new(&o, NULL, &lim), SKY_EINVAL);
    sky_limiter_options_init(&o);
    o.kind = SKY_LIMITER_FIXED;
    o.initial = 0;
    assert_int_equal(sky_limiter_new(&o, NULL, &lim), SKY_EINVAL);
    /* FIXED ignores min/max: a semaphore of 5000 is fine. */
    o.initial = 5000;
    assert_int_equal(sky_limiter_new(&o, NULL, &lim), 0);
    assert_int_equal(sky_limiter_limit(lim), 5000);
    sky_limiter_free(lim);
}

static void test_fixed_never_exceeds_n(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_FIXED, 5, 1, 1000);
    assert_int_equal(fill(lim), 5);
    assert_int_equal(sky_limiter_in_flight(lim), 5);
    assert_int_equal(sky_limiter_try_acquire(lim), 0);

    /* Churn with every outcome: the limit never moves, in flight never passes 5. */
    static const int outcomes[] = {SKY_LIMIT_SUCCESS, SKY_LIMIT_DROPPED, SKY_LIMIT_IGNORE};
    for (int i = 0; i < 300; i++) {
        sky_fake_clock_advance(&fc, 7);
        release_n(lim, 1 + i % 3, outcomes[i % 3], 7000);
        fill(lim);
        assert_int_equal(sky_limiter_in_flight(lim), 5);
        assert_int_equal(sky_limiter_limit(lim), 5);
    }
    sky_limiter_stats st;
    sky_limiter_get_stats(lim, &st);
    assert_int_equal(st.decreases, 0);
    assert_int_equal(st.drops, 200);
    assert_true(st.rejected >= 300);
    sky_limiter_free(lim);
}

static void test_release_without_acquire_is_ignored(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_FIXED, 3, 1, 1000);
    sky_limiter_release(lim, SKY_LIMIT_SUCCESS, 100);
    assert_int_equal(sky_limiter_in_flight(lim), 0);
    assert_int_equal(fill(lim), 3);
    release_n(lim, 5, SKY_LIMIT_SUCCESS, 100); /* two too many */
    assert_int_equal(sky_limiter_in_flight(lim), 0);
    assert_int_equal(fill(lim), 3); /* the extra releases opened no extra slots */
    sky_limiter_stats st;
    sky_limiter_get_stats(lim, &st);
    assert_int_equal(st.unmatched_releases, 3);
    sky_limiter_free(lim);
}

static void test_aimd_grows_one_per_window(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_AIMD, 4, 1, 100);
    for (int expect = 4; expect < 10; expect++) {
        assert_int_equal(fill(lim), expect);
        sky_fake_clock_advance(&fc, 10);
        release_n(lim, expect - 1, SKY_LIMIT_SUCCESS, 10000);
        assert_int_equal(sky_limiter_limit(lim), expect); /* window not yet complete */
        sky_limiter_release(lim, SKY_LIMIT_SUCCESS, 10000);
        assert_int_equal(sky_limiter_limit(lim), expect + 1);
    }
    sky_limiter_free(lim);
}

static void test_aimd_ignore_outcome_counts_nothing(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_AIMD, 4, 1, 100);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(fill(lim), 4);
        release_n(lim, 4, SKY_LIMIT_IGNORE, 10000);
    }
    assert_int_equal(sky_limiter_limit(lim), 4);
    sky_limiter_free(lim);
}

static void test_aimd_app_limited_does_not_grow(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_AIMD, 10, 1, 100);
    /* One request at a time never shows whether 10 is too few. */
    for (int i = 0; i < 200; i++) {
        assert_int_equal(sky_limiter_try_acquire(lim), 1);
        sky_fake_clock_advance(&fc, 5);
        sky_limiter_release(lim, SKY_LIMIT_SUCCESS, 5000);
    }
    assert_int_equal(sky_limiter_limit(lim), 10);
    sky_limiter_free(lim);
}

static void test_aimd_halves_on_drop_and_respects_min(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_AIMD, 16, 3, 100);
    static const int expect[] = {8, 4, 3, 3};
    for (size_t i = 0; i < SKY_ARRAY_LEN(expect); i++) {
        assert_int_equal(sky_limiter_try_acquire(lim), 1);
        sky_fake_clock_advance(&fc, 20);
        /* Sent after the previous cut: a new overload, so it counts. */
        sky_limiter_release(lim, SKY_LIMIT_DROPPED, 20000);
        assert_int_equal(sky_limiter_limit(lim), expect[i]);
    }
    sky_limiter_free(lim);
}

static void test_aimd_respects_max(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_AIMD, 5, 1, 6);
    for (int i = 0; i < 5; i++) {
        fill(lim);
        sky_fake_clock_advance(&fc, 10);
        release_n(lim, sky_limiter_in_flight(lim), SKY_LIMIT_SUCCESS, 10000);
    }
    assert_int_equal(sky_limiter_limit(lim), 6);
    sky_limiter_free(lim);
}

static void test_aimd_burst_of_drops_cuts_once(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_AIMD, 16, 1, 100);
    assert_int_equal(fill(lim), 16);
    sky_fake_clock_advance(&fc, 50);
    release_n(lim, 16, SKY_LIMIT_DROPPED, 50000); /* all sent together: one overload */
    assert_int_equal(sky_limiter_limit(lim), 8);
    sky_limiter_stats st;
    sky_limiter_get_stats(lim, &st);
    assert_int_equal(st.drops, 16);
    assert_int_equal(st.decreases, 1);

    /* A request sent after the cut that is dropped too: overload persists, cut again. */
    assert_int_equal(sky_limiter_try_acquire(lim), 1);
    sky_fake_clock_advance(&fc, 50);
    sky_limiter_release(lim, SKY_LIMIT_DROPPED, 50000);
    assert_int_equal(sky_limiter_limit(lim), 4);
    sky_limiter_free(lim);
}

static void test_gradient_probes_first(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_GRADIENT, 100, 1, 1000);
    sky_limiter_stats st;
    sky_limiter_get_stats(lim, &st);
    assert_true(st.probing);
    assert_int_equal(st.limit, 10); /* sqrt(100) */
    assert_int_equal(st.estimate, 100);
    assert_int_equal(fill(lim), 10);
    sky_fake_clock_advance(&fc, 40);
    release_n(lim, 9, SKY_LIMIT_SUCCESS, 40000);
    sky_fake_clock_advance(&fc, 20);
    sky_limiter_release(lim, SKY_LIMIT_SUCCESS, 60000);
    sky_limiter_get_stats(lim, &st);
    assert_false(st.probing);
    assert_int_equal(st.limit, 100);
    assert_int_equal(st.long_rtt_us, 42000); /* mean of the probe's samples */
    sky_limiter_free(lim);
}

static void test_gradient_drop_cuts(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter *lim = make(&fc, SKY_LIMITER_GRADIENT, 64, 1, 1000);
    assert_int_equal(sky_limiter_try_acquire(lim), 1);
    sky_fake_clock_advance(&fc, 30);
    sky_limiter_release(lim, SKY_LIMIT_DROPPED, 30000);
    sky_limiter_stats st;
    sky_limiter_get_stats(lim, &st);
    assert_int_equal(st.estimate, 32);
    assert_true(st.limit <= 8); /* still probing, at most sqrt(64) */
    sky_limiter_free(lim);
}

/*
 * A simulated server: latency is flat up to `capacity` requests in flight
 * and grows linearly beyond it (requests queue), with +-10% jitter so
 * completions do not fall in lockstep. Discrete events on the fake clock:
 * send whatever the limiter allows, jump to the next completion, release it.
 */
#define SIM_SLOTS 2048

typedef struct sim {
    sky_fake_clock fc;
    sky_limiter *lim;
    int capacity;
    uint64_t base_ms;
    uint64_t sent_ms[SIM_SLOTS];
    uint64_t done_ms[SIM_SLOTS];
    int n;
    uint32_t rng;
} sim;

static uint64_t sim_latency_ms(sim *s, int in_flight)
{
    s->rng = s->rng * 1103515245u + 12345u;
    double jitter = 0.9 + 0.2 * ((s->rng >> 16) & 0x7fff) / 32767.0;
    double load = in_flight <= s->capacity ? 1.0 : (double)in_flight / s->capacity;
    return (uint64_t)(s->base_ms * load * jitter) + 1;
}

static void sim_send(sim *s)
{
    while (s->n < SIM_SLOTS && sky_limiter_try_acquire(s->lim)) {
        uint64_t now = s->fc.mono_ms;
        s->sent_ms[s->n] = now;
        s->done_ms[s->n] = now + sim_latency_ms(s, sky_limiter_in_flight(s->lim));
        s->n++;
    }
}

static void sim_complete_next(sim *s)
{
    int k = 0;
    for (int i = 1; i < s->n; i++)
        if (s->done_ms[i] < s->done_ms[k])
            k = i;
    if (s->done_ms[k] > s->fc.mono_ms)
        sky_fake_clock_advance(&s->fc, s->done_ms[k] - s->fc.mono_ms);
    uint64_t rtt_us = (s->done_ms[k] - s->sent_ms[k]) * 1000u;
    s->n--;
    s->sent_ms[k] = s->sent_ms[s->n];
    s->done_ms[k] = s->done_ms[s->n];
    sky_limiter_release(s->lim, SKY_LIMIT_SUCCESS, rtt_us);
}

typedef struct sim_result {
    int lo, hi;      /* limit range over the second half, probes excluded */
    double mean;     /* mean limit over the second half, probes excluded */
    double mean_abs; /* mean |limit - mean| over the second half */
    int probes;      /* probes started during the run */
} sim_result;

static sim_result sim_run(int capacity, int initial, uint64_t run_ms)
{
    sim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    sky_fake_clock_init(&s->fc, 1000, 0);
    s->capacity = capacity;
    s->base_ms = 100;
    s->rng = 42;
    s->lim = make(&s->fc, SKY_LIMITER_GRADIENT, initial, 1, 1000);

    int *samples = calloc(4000000, sizeof(int));
    assert_non_null(samples);
    size_t ns = 0;
    sim_result r = {1 << 30, 0, 0.0, 0.0, 0};
    int was_probing = 1;
    uint64_t end = s->fc.mono_ms + run_ms, half = s->fc.mono_ms + run_ms / 2;
    while (s->fc.mono_ms < end && ns < 4000000) {
        sim_send(s);
        sim_complete_next(s);
        sky_limiter_stats st;
        sky_limiter_get_stats(s->lim, &st);
        if (st.probing && !was_probing)
            r.probes++;
        was_probing = st.probing;
        if (s->fc.mono_ms < half || st.probing)
            continue;
        samples[ns++] = st.limit;
        r.lo = st.limit < r.lo ? st.limit : r.lo;
        r.hi = st.limit > r.hi ? st.limit : r.hi;
    }
    assert_true(ns > 0);
    for (size_t i = 0; i < ns; i++)
        r.mean += samples[i];
    r.mean /= (double)ns;
    for (size_t i = 0; i < ns; i++)
        r.mean_abs += samples[i] > r.mean ? samples[i] - r.mean : r.mean - samples[i];
    r.mean_abs /= (double)ns;
    print_message("capacity %d, initial %d: limit %d..%d, mean %.1f, mean deviation %.1f, "
                  "%d probes\n",
                  capacity, initial, r.lo, r.hi, r.mean, r.mean_abs, r.probes);
    free(samples);
    sky_limiter_free(s->lim);
    free(s);
    return r;
}

static void assert_settled(sim_result r, int capacity)
{
    assert_true(r.lo >= 0.6 * capacity);
    assert_true(r.hi <= 1.6 * capacity);
    assert_true(r.mean_abs <= 0.15 * capacity);
}

static void test_gradient_converges_from_below(void **state)
{
    (void)state;
    sim_result r = sim_run(40, 10, 600000);
    assert_settled(r, 40);
    assert_true(r.probes >= 3); /* re-measured every two minutes */
}

static void test_gradient_comes_down_from_above(void **state)
{
    (void)state;
    assert_settled(sim_run(40, 500, 600000), 40);
}

static void test_gradient_other_capacities(void **state)
{
    (void)state;
    assert_settled(sim_run(200, 20, 600000), 200);
    assert_settled(sim_run(10, 100, 600000), 10);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(sky_limiter_kind_name(SKY_LIMITER_GRADIENT), "gradient");
    assert_string_equal(sky_limiter_kind_name(SKY_LIMITER_AIMD), "aimd");
    assert_string_equal(sky_limiter_kind_name(SKY_LIMITER_FIXED), "fixed");
    assert_string_equal(sky_limiter_kind_name(99), "unknown");
}

/* ---- slow start against simulated servers ---- */

/*
 * A server that serves @c capacity requests at once (0: all of them), each in
 * @c service_ms (plus its share of spread_ms), first come first served; the rest
 * wait in its queue. Requests end in the order of their completion times, which
 * with varied service times is not the order they were sent. The client keeps
 * every slot the limiter gives busy.
 */
#define FSIM_MAX 4096

typedef struct fsim {
    sky_fake_clock fc;
    sky_limiter *lim;
    int capacity;
    uint64_t service_ms;
    uint64_t slot_free[FSIM_MAX];               /* when each of the server's slots is next free */
    uint64_t sent[FSIM_MAX], done_at[FSIM_MAX]; /* the requests in flight, unordered */
    size_t n;
    uint64_t completed, latency_sum_ms, window_completed, window_latency_ms;
    int peak_limit;
    /* Replies of varied length: each request's service time is service_ms plus up to
     * spread_ms more, most short and a few long (an LLM's reply lengths). */
    uint64_t spread_ms, rng;
} fsim;

static uint64_t fsim_service(fsim *s)
{
    if (s->spread_ms == 0)
        return s->service_ms;
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = (double)(s->rng >> 11) / 9007199254740992.0;
    return s->service_ms + (uint64_t)(u * u * (double)s->spread_ms);
}

static void fsim_open(fsim *s, int capacity, uint64_t service_ms, int initial, int max)
{
    memset(s, 0, sizeof(*s));
    sky_fake_clock_init(&s->fc, 1000, 0);
    s->capacity = capacity;
    s->service_ms = service_ms;
    sky_limiter_options o;
    sky_limiter_options_init(&o);
    o.initial = initial;
    o.max = max;
    o.window_min_ms = 250;
    o.slow_start = 1;
    assert_int_equal(sky_limiter_new(&o, &s->fc.clock, &s->lim), 0);
}

static void fsim_send(fsim *s)
{
    uint64_t now = s->fc.mono_ms, start = now, service = fsim_service(s);
    if (s->capacity > 0) {
        int best = 0;
        for (int i = 1; i < s->capacity; i++)
            if (s->slot_free[i] < s->slot_free[best])
                best = i;
        if (s->slot_free[best] > start)
            start = s->slot_free[best];
        s->slot_free[best] = start + service;
    }
    s->sent[s->n] = now;
    s->done_at[s->n] = start + service;
    s->n++;
}

/* The request in flight that completes first. */
static size_t fsim_next(const fsim *s)
{
    size_t best = 0;
    for (size_t i = 1; i < s->n; i++)
        if (s->done_at[i] < s->done_at[best])
            best = i;
    return best;
}

/* Run until @p until_ms; count what completes after @p from_ms apart. */
static void fsim_run(fsim *s, uint64_t until_ms, uint64_t from_ms)
{
    s->window_completed = s->window_latency_ms = 0;
    while (s->fc.mono_ms < until_ms) {
        while (s->n < FSIM_MAX && sky_limiter_try_acquire(s->lim))
            fsim_send(s);
        assert_true(s->n > 0);
        size_t i = fsim_next(s);
        if (s->done_at[i] > s->fc.mono_ms)
            sky_fake_clock_advance(&s->fc, s->done_at[i] - s->fc.mono_ms);
        uint64_t rtt = s->done_at[i] - s->sent[i];
        s->n--;
        s->sent[i] = s->sent[s->n];
        s->done_at[i] = s->done_at[s->n];
        sky_limiter_release(s->lim, SKY_LIMIT_SUCCESS, rtt * 1000u);
        s->completed++;
        s->latency_sum_ms += rtt;
        if (s->fc.mono_ms >= from_ms) {
            s->window_completed++;
            s->window_latency_ms += rtt;
        }
        if (sky_limiter_limit(s->lim) > s->peak_limit)
            s->peak_limit = sky_limiter_limit(s->lim);
    }
}

/* No queue behind the server (latency flat): the limit doubles each round trip to the cap. */
static void test_slow_start_grows_to_cap(void **state)
{
    (void)state;
    fsim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    fsim_open(s, 0, 200, 16, 1024);
    sky_limiter_stats st;
    sky_limiter_get_stats(s->lim, &st);
    assert_int_equal(st.slow_start, 1);
    /* 16 -> 1024 is six doublings: about 1.2 s of 200 ms round trips, and some slack */
    fsim_run(s, 1000 + 1800, 0);
    assert_int_equal(sky_limiter_limit(s->lim), 1024);
    sky_limiter_get_stats(s->lim, &st);
    assert_int_equal(st.slow_start, 0);
    /* and it stays there: latency never rose */
    fsim_run(s, 1000 + 20000, 0);
    assert_true(sky_limiter_limit(s->lim) >= 1000);
    sky_limiter_free(s->lim);
    free(s);
}

/*
 * Latency that varies with each reply's length (200 ms plus up to 1.2 s, most replies
 * short), and no queue behind the server: the variation is not a queue, so the limit still
 * grows to the cap and stays near it.
 */
static void test_slow_start_ignores_reply_lengths(void **state)
{
    (void)state;
    fsim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    fsim_open(s, 0, 200, 16, 1024);
    s->spread_ms = 1200;
    fsim_run(s, 1000 + 30000, 1000 + 10000);
    double throughput = (double)s->window_completed / 20.0;
    print_message("varied lengths: limit %d, %.0f req/s (mean latency %.0f ms)\n",
                  sky_limiter_limit(s->lim), throughput,
                  (double)s->window_latency_ms / (double)s->window_completed);
    assert_true(sky_limiter_limit(s->lim) >= 700);
    sky_limiter_free(s->lim);
    free(s);
}

/* The knee of a server that serves 64 at once is found through the same variation. */
static void test_slow_start_finds_the_knee_through_noise(void **state)
{
    (void)state;
    fsim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    fsim_open(s, 64, 100, 16, 1024);
    s->spread_ms = 300;
    fsim_run(s, 1000 + 30000, 1000 + 10000);
    double throughput = (double)s->window_completed / 20.0;
    double mean_ms = (double)s->window_latency_ms / (double)s->window_completed;
    /* mean service 200 ms (100 + 300/3): at most 320 req/s */
    print_message("noisy knee: limit %d, %.0f req/s (best 320), mean latency %.0f ms (200)\n",
                  sky_limiter_limit(s->lim), throughput, mean_ms);
    assert_true(throughput >= 0.85 * 320);
    assert_true(mean_ms <= 1.6 * 200);
    sky_limiter_free(s->lim);
    free(s);
}

/*
 * A server that serves 64 at once, 100 ms each, and queues the rest: the limit settles
 * near the knee, where throughput is the server's best and latency not far above no load.
 */
static void test_slow_start_finds_the_knee(void **state)
{
    (void)state;
    fsim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    fsim_open(s, 64, 100, 16, 1024);
    fsim_run(s, 1000 + 3000, 0);
    sky_limiter_stats st;
    sky_limiter_get_stats(s->lim, &st);
    assert_int_equal(st.slow_start, 0);
    /* it left slow start within a round trip or two of the knee: the rate must stall for a
     * whole round trip too, not only the latency rise (see slow_on_success) */
    assert_true(s->peak_limit < 700);
    /* seconds 10 to 30: the steady state */
    fsim_run(s, 1000 + 30000, 1000 + 10000);
    double secs = 20.0;
    double throughput = (double)s->window_completed / secs;
    double mean_ms = (double)s->window_latency_ms / (double)s->window_completed;
    print_message("knee: limit %d, %.0f req/s (best 640), mean latency %.0f ms (unloaded 100)\n",
                  sky_limiter_limit(s->lim), throughput, mean_ms);
    assert_true(throughput >= 0.9 * 640);
    /* Every reply the same length, admitted in bursts, is where the lower quartile
     * (window_short_rtt) sees the least of the queue: the price of not being fooled by
     * replies of varied length (the tests above and below). */
    assert_true(mean_ms <= 175);
    sky_limiter_free(s->lim);
    free(s);
}

/*
 * A rate limiter binds before the concurrency limit does: a client that paces its
 * requests at @c rate a second (a bucket of @c burst tokens), taking each request's slot
 * first and parking it while the request waits for a token, against a server that
 * answers in @c latency_ms whatever the load. What is on the wire is the rate times the
 * latency; the limit must not climb far above it (the parked slots are no evidence that
 * more would help).
 */
typedef struct rsim {
    sky_fake_clock fc;
    sky_limiter *lim;
    double rate, burst, tokens;
    uint64_t refilled_ms, latency_ms;
    uint64_t spread_ms, rng; /* replies of varied length, as fsim's */
    uint64_t sent[FSIM_MAX], done_at[FSIM_MAX];
    size_t n;
    int parked, peak_limit;
    uint64_t completed;
} rsim;

static void rsim_refill(rsim *s)
{
    s->tokens += (double)(s->fc.mono_ms - s->refilled_ms) * s->rate / 1000.0;
    if (s->tokens > s->burst)
        s->tokens = s->burst;
    s->refilled_ms = s->fc.mono_ms;
}

/* Slots first, then a token each: a slot without a token is parked until one comes. */
static void rsim_admit(rsim *s)
{
    while (s->n + (size_t)s->parked < FSIM_MAX && sky_limiter_try_acquire(s->lim)) {
        sky_limiter_park(s->lim);
        s->parked++;
    }
    rsim_refill(s);
    while (s->parked > 0 && s->tokens >= 1.0) {
        s->tokens -= 1.0;
        sky_limiter_unpark(s->lim);
        s->parked--;
        uint64_t extra = 0;
        if (s->spread_ms) {
            s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(s->rng >> 11) / 9007199254740992.0;
            extra = (uint64_t)(u * u * (double)s->spread_ms);
        }
        s->sent[s->n] = s->fc.mono_ms;
        s->done_at[s->n] = s->fc.mono_ms + s->latency_ms + extra;
        s->n++;
    }
}

static void rsim_run(rsim *s, uint64_t until_ms)
{
    while (s->fc.mono_ms < until_ms) {
        rsim_admit(s);
        /* the next event: a completion, or the next token for a parked slot */
        uint64_t next = until_ms;
        if (s->parked > 0)
            next = s->fc.mono_ms + (uint64_t)((1.0 - s->tokens) * 1000.0 / s->rate) + 1;
        size_t k = 0;
        for (size_t i = 1; i < s->n; i++)
            if (s->done_at[i] < s->done_at[k])
                k = i;
        int completes = s->n > 0 && s->done_at[k] <= next;
        if (completes)
            next = s->done_at[k];
        if (next > s->fc.mono_ms)
            sky_fake_clock_advance(&s->fc, next - s->fc.mono_ms);
        if (completes) {
            uint64_t rtt = s->done_at[k] - s->sent[k];
            s->n--;
            s->sent[k] = s->sent[s->n];
            s->done_at[k] = s->done_at[s->n];
            sky_limiter_release(s->lim, SKY_LIMIT_SUCCESS, rtt * 1000u);
            s->completed++;
        }
        if (sky_limiter_limit(s->lim) > s->peak_limit)
            s->peak_limit = sky_limiter_limit(s->lim);
    }
}

static void rate_bound_run(uint64_t spread_ms)
{
    rsim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    sky_fake_clock_init(&s->fc, 1000, 0);
    s->refilled_ms = s->fc.mono_ms;
    s->rate = 100.0; /* a second, 200 ms each (and a third of the spread): 20 on the wire */
    s->burst = s->tokens = 10.0;
    s->latency_ms = 200;
    s->spread_ms = spread_ms;
    sky_limiter_options o;
    sky_limiter_options_init(&o);
    o.initial = 16;
    o.max = 1024;
    o.slow_start = 1;
    assert_int_equal(sky_limiter_new(&o, &s->fc.clock, &s->lim), 0);
    rsim_run(s, 1000 + 60000);
    print_message("rate-bound: peak limit %d, limit %d, %.1f req/s (rate 100)\n", s->peak_limit,
                  sky_limiter_limit(s->lim), (double)s->completed / 60.0);
    assert_true(s->peak_limit <= 40 + (int)spread_ms / 10);
    assert_true(s->completed >= 0.95 * 100 * 60); /* the limit never held the rate back */
    /* the rate rises (the rate limiter learned more room): the limit follows it up */
    s->rate = 400.0; /* 80 on the wire */
    uint64_t before = s->completed;
    rsim_run(s, 1000 + 120000);
    print_message("rate 400: peak limit %d, limit %d, %.1f req/s\n", s->peak_limit,
                  sky_limiter_limit(s->lim), (double)(s->completed - before) / 60.0);
    assert_true(sky_limiter_limit(s->lim) >= 80);
    assert_true(s->peak_limit <= 160 + (int)spread_ms / 5);
    assert_true(s->completed - before >= 0.9 * 400 * 60);
    sky_limiter_free(s->lim);
    free(s);
}

static void test_limit_stays_near_rate_times_latency(void **state)
{
    (void)state;
    rate_bound_run(0);
}

/*
 * The same with replies of varied length (200 ms plus up to 300 more, most short): rounds
 * whose mean RTT rises with no queue, while the rate holds the delivery rate flat, are not
 * the knee. Ending the slow start there set the limit to the rate times the RTT, and it
 * grew back by the gradient's small steps once the rate rose (a quarter of the new rate
 * lost for most of a minute).
 */
static void test_rate_bound_does_not_end_slow_start(void **state)
{
    (void)state;
    rate_bound_run(300);
}

/* A drop ends the slow start at once, and halves the limit as it always does. */
static void test_slow_start_ends_on_drop(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 1000, 0);
    sky_limiter_options o;
    sky_limiter_options_init(&o);
    o.initial = 32;
    o.slow_start = 1;
    sky_limiter *lim = NULL;
    assert_int_equal(sky_limiter_new(&o, &fc.clock, &lim), 0);
    assert_int_equal(fill(lim), 32);
    sky_fake_clock_advance(&fc, 50);
    release_n(lim, 8, SKY_LIMIT_SUCCESS, 50000); /* +8: 40 */
    assert_int_equal(sky_limiter_limit(lim), 40);
    sky_limiter_release(lim, SKY_LIMIT_DROPPED, 50000);
    sky_limiter_stats st;
    sky_limiter_get_stats(lim, &st);
    assert_int_equal(st.slow_start, 0);
    assert_int_equal(st.estimate, 20);
    sky_limiter_free(lim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_start_grows_to_cap),
        cmocka_unit_test(test_slow_start_finds_the_knee),
        cmocka_unit_test(test_slow_start_ignores_reply_lengths),
        cmocka_unit_test(test_slow_start_finds_the_knee_through_noise),
        cmocka_unit_test(test_slow_start_ends_on_drop),
        cmocka_unit_test(test_limit_stays_near_rate_times_latency),
        cmocka_unit_test(test_rate_bound_does_not_end_slow_start),
        cmocka_unit_test(test_options_defaults),
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_fixed_never_exceeds_n),
        cmocka_unit_test(test_release_without_acquire_is_ignored),
        cmocka_unit_test(test_aimd_grows_one_per_window),
        cmocka_unit_test(test_aimd_ignore_outcome_counts_nothing),
        cmocka_unit_test(test_aimd_app_limited_does_not_grow),
        cmocka_unit_test(test_aimd_halves_on_drop_and_respects_min),
        cmocka_unit_test(test_aimd_respects_max),
        cmocka_unit_test(test_aimd_burst_of_drops_cuts_once),
        cmocka_unit_test(test_gradient_probes_first),
        cmocka_unit_test(test_gradient_drop_cuts),
        cmocka_unit_test(test_gradient_converges_from_below),
        cmocka_unit_test(test_gradient_comes_down_from_above),
        cmocka_unit_test(test_gradient_other_capacities),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
