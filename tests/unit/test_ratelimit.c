/* Tests for the rate limiter: pacing, token budgets, learning from headers and from 429s. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "skyio/error.h"
#include "skyio/concurrency.h"
#include "skyio/ratelimit.h"

/* A limiter on a fake clock at t = 0, built from options. */
typedef struct fixture {
    sky_fake_clock clock;
    sky_ratelimit *rl;
} fixture;

static void fixture_open(fixture *f, const sky_ratelimit_options *o)
{
    sky_fake_clock_init(&f->clock, 0, INT64_C(1767225600000));
    assert_int_equal(sky_ratelimit_new(o, &f->clock.clock, &f->rl), 0);
    assert_non_null(f->rl);
}

static void fixture_close(fixture *f)
{
    sky_ratelimit_free(f->rl);
}

static sky_ratelimit_options opts_fixed(double rpm, double tpm, int learn)
{
    sky_ratelimit_options o;
    sky_ratelimit_options_init(&o);
    o.rpm = rpm;
    o.tpm = tpm;
    o.learn = learn;
    return o;
}

/* Headers from "name", "value" pairs, ended by NULL. */
static sky_headers *headers_of(const char *first, ...)
{
    sky_headers *h = sky_headers_new();
    assert_non_null(h);
    va_list ap;
    va_start(ap, first);
    for (const char *n = first; n != NULL; n = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        assert_int_equal(sky_headers_add(h, sky_span_cstr(n), sky_span_cstr(v)), 0);
    }
    va_end(ap);
    return h;
}

static sky_ratelimit_stats stats_of(const fixture *f)
{
    sky_ratelimit_stats st;
    sky_ratelimit_get_stats(f->rl, &st);
    return st;
}

/* Acquire greedily until @p until_ms, advancing the clock by each wait. Returns grants. */
static int drain_until(fixture *f, uint64_t until_ms, int64_t est_tokens)
{
    int grants = 0;
    while (f->clock.mono_ms < until_ms) {
        int64_t w = sky_ratelimit_acquire(f->rl, est_tokens);
        if (w == 0)
            grants++;
        else
            sky_fake_clock_advance(&f->clock, (uint64_t)w);
    }
    return grants;
}

static void test_options_defaults(void **state)
{
    (void)state;
    sky_ratelimit_options o;
    memset(&o, 0x5a, sizeof(o));
    sky_ratelimit_options_init(&o);
    assert_true(o.rpm == 0 && o.tpm == 0);
    assert_true(o.burst_seconds == 1.0);
    assert_int_equal(o.learn, 1);
    assert_true(o.initial_rpm == 60.0);
    assert_true(o.decrease_factor == 0.5);
    assert_int_equal(o.decrease_cooldown_ms, 2000);
    assert_int_equal(o.increase_interval_ms, 5000);
    assert_true(o.increase_fraction == 0.05);
    assert_true(o.low_remaining_fraction == 0.1);
    assert_true(o.min_rpm == 1.0 && o.min_tpm == 100.0);
}

static void test_new_rejects_bad_options(void **state)
{
    (void)state;
    sky_fake_clock c;
    sky_fake_clock_init(&c, 0, 0);
    sky_ratelimit *rl = (sky_ratelimit *)&c; /* must be reset to NULL on failure */
    sky_ratelimit_options o = opts_fixed(-1, 0, 1);
    assert_int_equal(sky_ratelimit_new(&o, &c.clock, &rl), SKY_EINVAL);
    assert_null(rl);
    o = opts_fixed(60, 0, 1);
    o.burst_seconds = 0;
    assert_int_equal(sky_ratelimit_new(&o, &c.clock, &rl), SKY_EINVAL);
    o = opts_fixed(60, 0, 1);
    o.decrease_factor = 1.0;
    assert_int_equal(sky_ratelimit_new(&o, &c.clock, &rl), SKY_EINVAL);
    o = opts_fixed(60, 0, 1);
    o.tpm = NAN;
    assert_int_equal(sky_ratelimit_new(&o, &c.clock, &rl), SKY_EINVAL);
    assert_int_equal(sky_ratelimit_new(&o, &c.clock, NULL), SKY_EINVAL);
}

static void test_null_options_and_real_clock(void **state)
{
    (void)state;
    sky_ratelimit *rl = NULL;
    assert_int_equal(sky_ratelimit_new(NULL, NULL, &rl), 0);
    assert_true(sky_ratelimit_acquire(rl, 10) == 0);
    sky_ratelimit_stats st;
    sky_ratelimit_get_stats(rl, &st);
    assert_true(st.rpm == 60.0); /* the initial guess while learning */
    assert_true(st.tpm == 0.0);
    assert_int_equal(st.granted, 1);
    sky_ratelimit_free(rl);
    sky_ratelimit_free(NULL);
}

static void test_unlimited_without_limits_or_learning(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 0, 0);
    fixture_open(&f, &o);
    for (int i = 0; i < 10000; i++)
        assert_true(sky_ratelimit_acquire(f.rl, 100000) == 0);
    assert_true(stats_of(&f).rpm == 0 && stats_of(&f).wait_ms == 0);
    fixture_close(&f);
}

/*
 * Greedy acquiring for 10 s at 600 RPM: 10 per second, plus one bucket
 * (10) saved at the start. No 1-second window holds more than rate + burst,
 * and after the first second no window holds more than the rate (+1 for
 * a grant on the window's edge).
 */
static void test_pacing_600rpm(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 0);
    fixture_open(&f, &o);
    uint64_t times[256];
    int n = 0;
    while (f.clock.mono_ms < 10000) {
        int64_t w = sky_ratelimit_acquire(f.rl, 0);
        if (w == 0) {
            assert_true(n < 256);
            times[n++] = f.clock.mono_ms;
        } else {
            assert_true(w > 0 && w <= 100);
            sky_fake_clock_advance(&f.clock, (uint64_t)w);
        }
    }
    assert_in_range(n, 100, 111);
    for (uint64_t start = 0; start + 1000 <= 10000; start += 10) {
        int in = 0;
        for (int i = 0; i < n; i++)
            in += times[i] >= start && times[i] < start + 1000;
        assert_true(in <= 20);
        if (start >= 1000)
            assert_true(in <= 11);
    }
    /* steady state: exactly one grant every 100 ms */
    for (int i = 20; i < n; i++)
        assert_int_equal(times[i] - times[i - 1], 100);
    fixture_close(&f);
}

static void test_small_burst_option(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 0);
    o.burst_seconds = 0.2;
    fixture_open(&f, &o);
    int first = 0;
    while (sky_ratelimit_acquire(f.rl, 0) == 0)
        first++;
    assert_int_equal(first, 2); /* 600/60 * 0.2 */
    fixture_close(&f);
}

/*
 * 60000 TPM (1000 per second, bucket 1000) with requests charged 4000 up
 * front: the first passes on a full bucket and leaves debt, then one every
 * four seconds. Over a minute: tpm plus the one request's debt, no more.
 */
static void test_tpm_limits_big_max_tokens(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 60000, 0);
    fixture_open(&f, &o);
    int64_t est = sky_ratelimit_estimate_tokens(0, 4000);
    assert_true(sky_ratelimit_acquire(f.rl, est) == 0);
    int64_t w = sky_ratelimit_acquire(f.rl, est);
    assert_true(w == 4000); /* 3000 debt + 1000 to refill the bucket */
    int grants = 1 + drain_until(&f, 60000, est);
    assert_in_range(grants, 15, 16);
    assert_true((int64_t)grants * est <= 60000 + est);
    sky_ratelimit_stats st = stats_of(&f);
    assert_true(st.tpm == 60000 && st.rpm == 0);
    assert_int_equal(st.granted, grants);
    fixture_close(&f);
}

static void test_tpm_small_requests_pass_while_budget_lasts(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 6000, 0); /* bucket of 100 tokens */
    fixture_open(&f, &o);
    for (int i = 0; i < 4; i++)
        assert_true(sky_ratelimit_acquire(f.rl, 25) == 0);
    assert_true(sky_ratelimit_acquire(f.rl, 25) == 250); /* 25 tokens at 100/s */
    fixture_close(&f);
}

static void test_usage_correction_refunds(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 6000, 0); /* 100 tokens per second */
    fixture_open(&f, &o);
    assert_true(sky_ratelimit_acquire(f.rl, 100) == 0);
    assert_true(sky_ratelimit_acquire(f.rl, 100) == 1000);
    sky_ratelimit_on_response(f.rl, 200, NULL, 100, 20); /* 80 given back */
    assert_true(sky_ratelimit_acquire(f.rl, 100) == 200);
    assert_true(stats_of(&f).tokens_corrected == -80);
    /* a refused request handed back whole */
    sky_fake_clock_advance(&f.clock, 200);
    assert_true(sky_ratelimit_acquire(f.rl, 100) == 0);
    sky_ratelimit_on_response(f.rl, 429, NULL, 100, 0);
    assert_true(sky_ratelimit_acquire(f.rl, 100) == 0);
    fixture_close(&f);
}

static void test_usage_correction_charges(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 6000, 0);
    fixture_open(&f, &o);
    assert_true(sky_ratelimit_acquire(f.rl, 50) == 0);
    sky_ratelimit_on_response(f.rl, 200, NULL, 50, 350); /* 300 more than charged */
    /* level 100 - 350 = -250: 350 tokens short of a full bucket, 3.5 s */
    assert_true(sky_ratelimit_acquire(f.rl, 100) == 3500);
    assert_true(stats_of(&f).tokens_corrected == 300);
    /* unknown usage changes nothing */
    sky_ratelimit_on_response(f.rl, 200, NULL, 50, -1);
    assert_true(sky_ratelimit_acquire(f.rl, 100) == 3500);
    fixture_close(&f);
}

static void test_estimate_tokens(void **state)
{
    (void)state;
    assert_true(sky_ratelimit_estimate_tokens(400, 100) == 200);
    assert_true(sky_ratelimit_estimate_tokens(401, 0) == 101); /* partial tokens round up */
    assert_true(sky_ratelimit_estimate_tokens(0, -5) == 0);
    assert_true(sky_ratelimit_estimate_tokens(3, 0) == 1);
    assert_true(sky_ratelimit_estimate_tokens(SIZE_MAX, 0) > 0);
}

static void test_header_limit_adopted(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 0, 1);
    fixture_open(&f, &o);
    assert_true(stats_of(&f).rpm == 60);
    sky_headers *h =
        headers_of("X-RateLimit-Limit-Requests", "600", "x-ratelimit-limit-tokens", "150000", NULL);
    assert_true(sky_ratelimit_acquire(f.rl, 10) == 0);
    sky_ratelimit_on_response(f.rl, 200, h, 10, 10);
    sky_ratelimit_stats st = stats_of(&f);
    assert_true(st.rpm == 600 && st.rpm_ceiling == 600);
    assert_true(st.tpm == 150000 && st.tpm_ceiling == 150000);
    /* a tenth of a second later the request bucket has refilled one; the new token bucket is full
     */
    sky_fake_clock_advance(&f.clock, 100);
    assert_true(sky_ratelimit_acquire(f.rl, 2500) == 0);
    assert_true(sky_ratelimit_acquire(f.rl, 2500) > 0);
    sky_headers_free(h);
    fixture_close(&f);
}

static void test_header_limit_never_raises_user_limit(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(100, 0, 1);
    fixture_open(&f, &o);
    sky_headers *h = headers_of("x-ratelimit-limit-requests", "600", NULL);
    sky_ratelimit_on_response(f.rl, 200, h, 0, -1);
    assert_true(stats_of(&f).rpm == 100);
    sky_headers_free(h);
    h = headers_of("x-ratelimit-limit-requests", "30", NULL);
    sky_ratelimit_on_response(f.rl, 200, h, 0, -1);
    assert_true(stats_of(&f).rpm == 30 && stats_of(&f).rpm_ceiling == 30);
    sky_headers_free(h);
    fixture_close(&f);
}

static void test_headers_ignored_without_learning(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 0);
    fixture_open(&f, &o);
    sky_headers *h =
        headers_of("x-ratelimit-limit-requests", "60", "x-ratelimit-remaining-requests", "0",
                   "x-ratelimit-reset-requests", "30s", NULL);
    sky_ratelimit_on_response(f.rl, 200, h, 0, -1);
    assert_true(stats_of(&f).rpm == 600);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
    sky_headers_free(h);
    fixture_close(&f);
}

/* 10 requests left of 600 for six minutes: one every 36 s until the reset. */
static void test_low_remaining_slows_until_reset(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 0, 1);
    fixture_open(&f, &o);
    sky_headers *h =
        headers_of("x-ratelimit-limit-requests", "600", "x-ratelimit-remaining-requests", "10",
                   "x-ratelimit-reset-requests", "6m0s", NULL);
    sky_ratelimit_on_response(f.rl, 200, h, 0, -1);
    sky_ratelimit_stats st = stats_of(&f);
    assert_true(st.rpm > 1.66 && st.rpm < 1.67);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 36000);
    sky_fake_clock_advance(&f.clock, 360000);
    assert_true(stats_of(&f).rpm == 600);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
    sky_headers_free(h);
    fixture_close(&f);
}

static void test_healthy_remaining_lifts_the_slowdown(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 0, 1);
    fixture_open(&f, &o);
    sky_headers *low =
        headers_of("x-ratelimit-limit-tokens", "100000", "x-ratelimit-remaining-tokens", "5000",
                   "x-ratelimit-reset-tokens", "1m0s", NULL);
    sky_headers *ok =
        headers_of("x-ratelimit-limit-tokens", "100000", "x-ratelimit-remaining-tokens", "90000",
                   "x-ratelimit-reset-tokens", "6s", NULL);
    sky_ratelimit_on_response(f.rl, 200, low, 0, -1);
    assert_true(stats_of(&f).tpm == 5000);
    sky_ratelimit_on_response(f.rl, 200, ok, 0, -1);
    assert_true(stats_of(&f).tpm == 100000);
    sky_headers_free(low);
    sky_headers_free(ok);
    fixture_close(&f);
}

static void test_nothing_remaining_pauses_until_reset(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 1);
    fixture_open(&f, &o);
    sky_headers *h =
        headers_of("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "1s", NULL);
    sky_ratelimit_on_response(f.rl, 200, h, 0, -1);
    assert_true(stats_of(&f).paused_ms == 1000);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 1000);
    sky_fake_clock_advance(&f.clock, 1000);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
    sky_headers_free(h);
    /* milliseconds as OpenAI writes them */
    h = headers_of("x-ratelimit-remaining-tokens", "0", "x-ratelimit-reset-tokens", "20ms", NULL);
    sky_ratelimit_on_response(f.rl, 200, h, 0, -1);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 20);
    sky_headers_free(h);
    fixture_close(&f);
}

static void test_unreadable_reset_is_ignored(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 1);
    fixture_open(&f, &o);
    sky_headers *h = headers_of("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests",
                                "soon", NULL);
    sky_ratelimit_on_response(f.rl, 200, h, 0, -1);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
    sky_headers_free(h);
    fixture_close(&f);
}

static void test_429_halves_once_per_burst(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 1);
    fixture_open(&f, &o);
    for (int i = 0; i < 5; i++) {
        sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
        sky_fake_clock_advance(&f.clock, 100);
    }
    sky_ratelimit_stats st = stats_of(&f);
    assert_true(st.rpm == 300);
    assert_int_equal(st.responses_429, 5);
    assert_int_equal(st.decreases, 1);
    sky_fake_clock_advance(&f.clock, 2000); /* past the cooldown: a new overload */
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    st = stats_of(&f);
    assert_true(st.rpm == 150);
    assert_int_equal(st.decreases, 2);
    fixture_close(&f);
}

static void test_429_forfeits_saved_burst(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 1);
    fixture_open(&f, &o);
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 200); /* one interval at 300 RPM */
    fixture_close(&f);
}

static void test_429_decreases_tokens_too(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 10000, 1);
    fixture_open(&f, &o);
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    sky_ratelimit_stats st = stats_of(&f);
    assert_true(st.tpm == 5000);
    assert_true(st.rpm == 30); /* the initial guess halved too */
    fixture_close(&f);
}

static void test_retry_after_pauses(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 1);
    fixture_open(&f, &o);
    sky_headers *h = headers_of("Retry-After", "3", NULL);
    sky_ratelimit_on_response(f.rl, 429, h, 0, -1);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 3000);
    sky_fake_clock_advance(&f.clock, 2500);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 500);
    sky_fake_clock_advance(&f.clock, 500);
    /* the bucket did not refill during the pause: pace at the new rate */
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 200);
    sky_fake_clock_advance(&f.clock, 200);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
    assert_true(stats_of(&f).wait_ms == 3200);
    sky_headers_free(h);
    /* retry-after-ms wins over Retry-After, and a later shorter pause does not cut it */
    h = headers_of("retry-after-ms", "1500", "Retry-After", "9", NULL);
    sky_ratelimit_on_response(f.rl, 429, h, 0, -1);
    sky_headers_free(h);
    h = headers_of("retry-after-ms", "10", NULL);
    sky_ratelimit_on_response(f.rl, 429, h, 0, -1);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 1500);
    sky_headers_free(h);
    fixture_close(&f);
}

static void test_retry_after_honoured_without_learning(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 0);
    fixture_open(&f, &o);
    sky_headers *h = headers_of("retry-after-ms", "750", NULL);
    sky_ratelimit_on_response(f.rl, 429, h, 0, -1);
    sky_ratelimit_stats st = stats_of(&f);
    assert_true(st.rpm == 600);
    assert_int_equal(st.decreases, 0);
    assert_int_equal(st.responses_429, 1);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 750);
    sky_headers_free(h);
    fixture_close(&f);
}

/* After a 429 and quiet intervals under demand, the rate climbs back to the ceiling. */
static void test_recovery_after_quiet_time(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 1);
    fixture_open(&f, &o);
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    assert_true(stats_of(&f).rpm == 300);
    drain_until(&f, 4999, 0);
    assert_true(stats_of(&f).rpm == 300); /* not before a whole quiet interval */
    drain_until(&f, 5200, 0);
    double after_one = stats_of(&f).rpm;
    assert_true(after_one > 300 && after_one < 600);
    drain_until(&f, 60000, 0);
    assert_true(stats_of(&f).rpm == 600); /* never past the given ceiling */
    fixture_close(&f);
}

static void test_no_increase_without_demand(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(600, 0, 1);
    fixture_open(&f, &o);
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    for (int i = 0; i < 60; i++) {
        sky_fake_clock_advance(&f.clock, 1000);
        assert_true(sky_ratelimit_acquire(f.rl, 0) == 0); /* one a second: never held back */
    }
    assert_true(stats_of(&f).rpm == 300);
    fixture_close(&f);
}

/* With nothing known, the guess doubles each interval under demand. */
static void test_slow_start_from_guess(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(0, 0, 1);
    fixture_open(&f, &o);
    drain_until(&f, 5000, 0);
    drain_until(&f, 5100, 0);
    assert_true(stats_of(&f).rpm == 120);
    drain_until(&f, 19999, 0);
    assert_true(stats_of(&f).rpm == 480);
    fixture_close(&f);
}

/* The batch job's tuning (cmd_batch.c). */
static sky_ratelimit_options batch_options(void)
{
    sky_ratelimit_options o = opts_fixed(0, 0, 1);
    o.initial_rpm = 600;
    o.increase_interval_ms = 1000;
    o.decrease_factor = 0.8;
    return o;
}

/*
 * The first 429 in slow start comes just after a doubling: back off at least
 * to the rate before it, which drew no 429, rather than by decrease_factor
 * from a rate that may be twice the limit. Later 429s use the factor alone.
 */
static void test_slow_start_429_backs_off_to_clean_rate(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = batch_options();
    fixture_open(&f, &o);
    drain_until(&f, 3100, 0);
    assert_true(stats_of(&f).rpm == 4800); /* doubled at 1, 2 and 3 s */
    drain_until(&f, 3500, 0);
    /* sent in the last second: about 2,400 then 4,800 RPM; 0.8 of that is still above 2,400 */
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    assert_true(stats_of(&f).rpm == 2400);
    /* the next overload is not slow start: the factor of the measured rate, 0.8 x 2,400 */
    drain_until(&f, 7000, 0);
    double before = stats_of(&f).rpm;
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    double after = stats_of(&f).rpm;
    assert_true(after < before && after >= 0.8 * 0.9 * before);
    fixture_close(&f);
}

/* The rate at a 429 is measured over the last second, not over a longer past. */
static void test_429_measures_the_last_second(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(6000, 0, 1);
    fixture_open(&f, &o);
    for (int i = 0; i < 5; i++) { /* 5 s at 60 RPM, then 1 s at 600 RPM */
        assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
        sky_fake_clock_advance(&f.clock, 1000);
    }
    for (int i = 0; i < 10; i++) {
        assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
        sky_fake_clock_advance(&f.clock, 100);
    }
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    /* half of about 600 RPM (10 or 11 grants over 1.0 s); a 3 s average would say 240 */
    double rpm = stats_of(&f).rpm;
    assert_true(rpm >= 280 && rpm <= 340);
    fixture_close(&f);
}

static void test_wait_time_accounted(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_fixed(60, 0, 0); /* bucket of one */
    fixture_open(&f, &o);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 1000);
    sky_fake_clock_advance(&f.clock, 400);
    assert_true(stats_of(&f).wait_ms == 400);           /* an ongoing wait counts */
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 600); /* asking again does not count twice */
    sky_fake_clock_advance(&f.clock, 600);
    assert_true(sky_ratelimit_acquire(f.rl, 0) == 0);
    sky_fake_clock_advance(&f.clock, 5000); /* idle time is not waiting */
    sky_ratelimit_stats st = stats_of(&f);
    assert_true(st.wait_ms == 1000);
    assert_int_equal(st.granted, 2);
    fixture_close(&f);
}

/*
 * A provider with a hidden 300 RPM limit, judged like Azure over fixed
 * one-second windows (5 per second), sending no rate headers, only
 * retry-after-ms to the window's end on a 429. Replies are instant.
 */
typedef struct hidden_provider {
    uint64_t window;
    int used;
    int per_window;
} hidden_provider;

static int provider_call(hidden_provider *p, uint64_t now, int64_t *out_retry_ms)
{
    if (now / 1000 != p->window) {
        p->window = now / 1000;
        p->used = 0;
    }
    if (p->used < p->per_window) {
        p->used++;
        return 200;
    }
    *out_retry_ms = (int64_t)(1000 - now % 1000);
    return 429;
}

/*
 * Drive a limiter that knows nothing against the provider for five simulated
 * minutes; returns the accepted RPM over the last three and counts 429s.
 */
static double simulate(const sky_ratelimit_options *o, int per_window, long *out_429,
                       sky_ratelimit_stats *out_st)
{
    fixture f;
    fixture_open(&f, o);
    hidden_provider p = {0, 0, per_window};
    long ok_late = 0;
    uint64_t last_sec = UINT64_MAX;
    const uint64_t end = 300000, late = 120000;
    *out_429 = 0;
    while (f.clock.mono_ms < end) {
        int64_t w = sky_ratelimit_acquire(f.rl, 0);
        if (w > 0) {
            sky_fake_clock_advance(&f.clock, (uint64_t)w);
            continue;
        }
        int64_t retry = 0;
        if (getenv("SKY_RL_TRACE") && f.clock.mono_ms / 1000 != last_sec) {
            sky_ratelimit_stats ts;
            last_sec = f.clock.mono_ms / 1000;
            sky_ratelimit_get_stats(f.rl, &ts);
            printf("t=%llu rate %.0f 429s %ld\n", (unsigned long long)last_sec, ts.rpm, *out_429);
        }
        if (provider_call(&p, f.clock.mono_ms, &retry) == 429) {
            char v[32];
            snprintf(v, sizeof(v), "%lld", (long long)retry);
            sky_headers *h = headers_of("retry-after-ms", v, NULL);
            sky_ratelimit_on_response(f.rl, 429, h, 0, -1);
            sky_headers_free(h);
            (*out_429)++;
        } else {
            sky_ratelimit_on_response(f.rl, 200, NULL, 0, -1);
            ok_late += f.clock.mono_ms >= late;
        }
    }
    sky_ratelimit_get_stats(f.rl, out_st);
    fixture_close(&f);
    return (double)ok_late * 60000.0 / (double)(end - late);
}

static double check_convergence_with(const sky_ratelimit_options *o, int per_window, long max_429)
{
    long n429;
    sky_ratelimit_stats st;
    double limit = per_window * 60.0;
    double rpm = simulate(o, per_window, &n429, &st);
    if (getenv("SKY_RL_VERBOSE"))
        printf("hidden %.0f RPM: accepted %.1f RPM (%.0f%%) over minutes 2-5, %ld 429s, "
               "%llu decreases, %.1f RPM at the end, waited %lld ms\n",
               limit, rpm, 100 * rpm / limit, n429, (unsigned long long)st.decreases, st.rpm,
               (long long)st.wait_ms);
    assert_true(rpm >= 0.7 * limit && rpm <= 1.1 * limit);
    assert_true(n429 <= max_429);
    return rpm / limit;
}

static void check_convergence(int per_window, long max_429)
{
    sky_ratelimit_options o = opts_fixed(0, 0, 1);
    check_convergence_with(&o, per_window, max_429);
}

/* The batch job's tuning: a fixed limit once found is held close. */
static void test_batch_tuning_holds_95_percent(void **state)
{
    (void)state;
    sky_ratelimit_options o = batch_options();
    /* over minutes 2-5 of a hidden 3,000 RPM: at least 95% of it, 429s under 2% */
    double share = check_convergence_with(&o, 50, (long)(0.02 * 3000 * 3));
    assert_true(share >= 0.95);
    /* at 5 requests a one-second window every 429 is a fifth of a window: more of them */
    share = check_convergence_with(&o, 5, (long)(0.04 * 300 * 5));
    assert_true(share >= 0.93);
}

/*
 * Closer to bench/rate-efficiency: replies come after @p latency_ms, a 429
 * carries no Retry-After, the provider's one-second windows start at
 * @p phase_ms on our clock, and there is always more work. Returns the share
 * of the limit answered 200 from 10 s to 60 s and the share of requests
 * answered 429 over the whole minute.
 */
typedef struct sim_reply {
    uint64_t at;
    int status;
} sim_reply;

static double simulate_latency(const sky_ratelimit_options *o, int per_window, uint64_t latency_ms,
                               uint64_t phase_ms, double *out_429_share)
{
    enum { MAX_SENT = 20000 };
    const uint64_t from = 10000, end = 60000;
    sim_reply *q = calloc(MAX_SENT, sizeof(*q));
    assert_non_null(q);
    size_t head = 0, tail = 0;
    long ok = 0, n429 = 0;
    hidden_provider p = {UINT64_MAX, 0, per_window};
    fixture f;
    fixture_open(&f, o);
    while (f.clock.mono_ms < end) {
        uint64_t now = f.clock.mono_ms;
        for (; head < tail && q[head].at <= now; head++) {
            sky_ratelimit_on_response(f.rl, q[head].status, NULL, 0, -1);
            ok += q[head].status == 200 && q[head].at >= from;
        }
        int64_t w = sky_ratelimit_acquire(f.rl, 0);
        if (w == 0) {
            int64_t retry;
            assert_true(tail < MAX_SENT);
            q[tail].status = provider_call(&p, now + phase_ms + latency_ms / 2, &retry);
            q[tail++].at = now + latency_ms;
            n429 += q[tail - 1].status == 429;
            continue;
        }
        uint64_t next = now + (uint64_t)w;
        if (head < tail && q[head].at < next)
            next = q[head].at;
        sky_fake_clock_advance(&f.clock, next > now ? next - now : 1);
    }
    fixture_close(&f);
    *out_429_share = tail ? (double)n429 / (double)tail : 0;
    free(q);
    return (double)ok * 60000.0 / (double)(end - from) / (per_window * 60.0);
}

/*
 * bench/rate-efficiency's target, in simulation: at a hidden 3,000 RPM with
 * 100 ms replies, the batch tuning must find the limit within the first 10 s
 * (slow start, then one back-off to the last clean rate) and hold it, whatever
 * the windows' phase: at least 96% of it from 10 s to 60 s, at most 2% 429s.
 */
static void test_batch_tuning_finds_limit_within_10s(void **state)
{
    (void)state;
    sky_ratelimit_options o = batch_options();
    double sum = 0;
    for (uint64_t phase = 0; phase < 1000; phase += 50) {
        double share429;
        double share = simulate_latency(&o, 50, 100, phase, &share429);
        if (getenv("SKY_RL_VERBOSE"))
            printf("phase %3llu ms: %.1f%% of the limit from 10 s, %.2f%% 429s\n",
                   (unsigned long long)phase, 100 * share, 100 * share429);
        assert_true(share >= 0.96 && share <= 1.0);
        assert_true(share429 <= 0.02);
        sum += share;
    }
    assert_true(sum / 20 >= 0.97);
    /* a slower provider and a lower limit, as in bench/strategies */
    double share429;
    assert_true(simulate_latency(&o, 20, 160, 300, &share429) >= 0.96);
    assert_true(share429 <= 0.03);
}

/*
 * As bench/rate-efficiency runs the batch: nothing paced until the first 429
 * (unpaced_start), and what is sent is held by the batch's concurrency limiter (slow
 * start from 16; a slot first, then the rate, as the pipeline admits). Replies take @p latency_ms,
 * a 429 comes back at once with no Retry-After, the provider's one-second windows start at @p
 * phase_ms, the first request goes @p start_ms after the limiter is made. Returns the share of the
 * limit answered 200 from 10 s to 60 s; *out_429 is the share of requests answered 429, and
 * *out_late_429 that share among the requests sent from 2 s after the first on, after the first
 * overload (what the unpaced start had in flight, and what was paced into the rest of
 * the window it emptied, is refused whatever the rate does next).
 */
static double simulate_unpaced(const sky_ratelimit_options *o, int per_window, uint64_t latency_ms,
                               uint64_t phase_ms, uint64_t start_ms, double *out_429,
                               double *out_late_429)
{
    enum { SLOTS = 1024 };
    const uint64_t from = 10000, end = 60000, late = start_ms + 2000;
    sim_reply fl[SLOTS];
    uint64_t sent_at[SLOTS];
    int n = 0, parked = 0;
    long ok = 0, n429 = 0, sent = 0, late429 = 0, late_sent = 0;
    hidden_provider p = {UINT64_MAX, 0, per_window};
    fixture f;
    fixture_open(&f, o);
    sky_limiter_options lo;
    sky_limiter_options_init(&lo);
    lo.initial = 16;
    lo.max = SLOTS;
    lo.slow_start = 1;
    lo.window_min_ms = 250;
    sky_limiter *lim = NULL;
    assert_int_equal(sky_limiter_new(&lo, &f.clock.clock, &lim), 0);
    sky_fake_clock_advance(&f.clock, start_ms);
    while (f.clock.mono_ms < end) {
        uint64_t now = f.clock.mono_ms, next = UINT64_MAX;
        for (int i = 0; i < n;) {
            if (fl[i].at > now) {
                next = fl[i].at < next ? fl[i].at : next;
                i++;
                continue;
            }
            sky_ratelimit_on_response(f.rl, fl[i].status, NULL, 0, -1);
            ok += fl[i].status == 200 && fl[i].at >= from;
            /* as the pipeline tells it: a 429 is the rate limiter's business */
            sky_limiter_release(lim, fl[i].status == 200 ? SKY_LIMIT_SUCCESS : SKY_LIMIT_IGNORE,
                                (fl[i].at - sent_at[i]) * 1000u);
            fl[i] = fl[--n];
            sent_at[i] = sent_at[n];
        }
        /* a slot first, then the rate; a slot waiting for the rate is parked */
        while (parked > 0 || (n < SLOTS && sky_limiter_try_acquire(lim))) {
            if (parked == 0) {
                sky_limiter_park(lim);
                parked = 1;
            }
            int64_t w = sky_ratelimit_acquire(f.rl, 0), retry;
            if (w > 0) {
                next = now + (uint64_t)w < next ? now + (uint64_t)w : next;
                break;
            }
            sky_limiter_unpark(lim);
            parked = 0;
            fl[n].status = provider_call(&p, now + phase_ms, &retry);
            fl[n].at = now + (fl[n].status == 200 ? latency_ms : 2);
            sent_at[n] = now;
            n429 += fl[n].status == 429;
            sent++;
            late429 += now >= late && fl[n].status == 429;
            late_sent += now >= late;
            next = fl[n].at < next ? fl[n].at : next;
            n++;
        }
        sky_fake_clock_advance(&f.clock, next > now && next != UINT64_MAX ? next - now : 1);
    }
    sky_limiter_free(lim);
    fixture_close(&f);
    *out_429 = sent ? (double)n429 / (double)sent : 0;
    *out_late_429 = late_sent ? (double)late429 / (double)late_sent : 0;
    return (double)ok * 60000.0 / (double)(end - from) / (per_window * 60.0);
}

/*
 * bench/rate-efficiency's target from an unpaced start (the batch's own tuning),
 * whatever the windows' phase and however soon the run meets the limit. Before: the first
 * 429 within a second of the start doubled past the rate just accepted, and 429s that
 * kept coming after a cut neither stopped the increases nor were told from a quota met
 * twice (a cut of a tenth every 2 s); at the worst phases 30% of all requests were
 * refused (20 to 30 s of a slow descent: the bench's second mode), 3 to 8% at many
 * others. Now under 4% at every phase, most of them in the first second.
 */
static void test_unpaced_start_finds_limit_any_phase(void **state)
{
    (void)state;
    sky_ratelimit_options o = batch_options();
    o.unpaced_start = 1;
    double worst = 1, worst429 = 0, worst_late = 0;
    for (uint64_t run = 0; run < 40; run++) {
        uint64_t phase = run % 20 * 50, start = run / 20 * 1200;
        double share429, late429;
        double share = simulate_unpaced(&o, 50, 90, phase, start, &share429, &late429);
        if (getenv("SKY_RL_VERBOSE"))
            printf("unpaced, phase %3llu ms, start %llu ms: %.1f%% of the limit from 10 s, "
                   "%.2f%% 429s (%.2f%% from 2 s on)\n",
                   (unsigned long long)phase, (unsigned long long)start, 100 * share,
                   100 * share429, 100 * late429);
        worst = share < worst ? share : worst;
        worst429 = share429 > worst429 ? share429 : worst429;
        worst_late = late429 > worst_late ? late429 : worst_late;
    }
    print_message(
        "unpaced start, 20 phases, 2 starts: worst %.1f%% of the limit, %.2f%% 429s, %.2f%% of "
        "those sent from 2 s\n",
        100 * worst, 100 * worst429, 100 * worst_late);
    assert_true(worst >= 0.96);
    assert_true(worst429 <= 0.04);
    assert_true(worst_late <= 0.015);
}

static void test_converges_to_hidden_300rpm(void **state)
{
    (void)state;
    check_convergence(5, 40);
}

/* Fifty times the initial guess: slow start must find it within the first two minutes. */
static void test_converges_to_hidden_3000rpm(void **state)
{
    (void)state;
    check_convergence(50, 60);
}

/* ---- an unpaced start: no limit until one shows ---- */

static sky_ratelimit_options opts_unpaced(void)
{
    sky_ratelimit_options o;
    sky_ratelimit_options_init(&o);
    o.unpaced_start = 1;
    o.initial_rpm = 600;
    return o;
}

/* A server with no limit is never slowed: 100,000 requests in the same millisecond. */
static void test_unpaced_start_never_waits(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_unpaced();
    fixture_open(&f, &o);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(sky_ratelimit_acquire(f.rl, 10), 0);
    for (int i = 0; i < 1000; i++)
        sky_ratelimit_on_response(f.rl, 200, NULL, 10, 12);
    assert_true(stats_of(&f).rpm == 0); /* unlimited, still */
    assert_int_equal(stats_of(&f).granted, 100000);
    fixture_close(&f);
}

/* A provider that announces its limit is paced from its first reply, as a paced start is. */
static void test_unpaced_start_paced_by_headers(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_unpaced();
    fixture_open(&f, &o);
    sky_headers *h = headers_of("x-ratelimit-limit-requests", "1200", NULL);
    sky_ratelimit_on_response(f.rl, 200, h, 0, -1);
    sky_headers_free(h);
    assert_true(stats_of(&f).rpm == 1200);
    assert_true(stats_of(&f).rpm_ceiling == 1200);
    int grants = drain_until(&f, 10000, 0);
    /* 20 a second for 10 s, and the first second's bucket */
    assert_true(grants >= 200 && grants <= 221);
    fixture_close(&f);
}

/* The first 429 starts pacing at the rate the provider just took: 50 a second here. */
static void test_unpaced_start_first_429_paces_at_accepted_rate(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_unpaced();
    fixture_open(&f, &o);
    /* 200 sent at once; over the next second 50 are taken, then the rest refused */
    for (int i = 0; i < 200; i++)
        assert_int_equal(sky_ratelimit_acquire(f.rl, 0), 0);
    for (int i = 0; i < 200; i++) {
        sky_fake_clock_advance(&f.clock, 5);
        sky_ratelimit_on_response(f.rl, i < 50 ? 200 : 429, NULL, 0, -1);
    }
    sky_ratelimit_stats st = stats_of(&f);
    assert_true(fabs(st.rpm - 3000) < 1);
    assert_int_equal(st.decreases, 1); /* the 149 after the first belong to the same overload */
    /* paced now: once the saved second is spent, 50 a second, not 200 */
    drain_until(&f, f.clock.mono_ms + 1000, 0);
    int grants = drain_until(&f, f.clock.mono_ms + 2000, 0);
    assert_true(grants >= 98 && grants <= 102);
    fixture_close(&f);
}

/* A 429 before anything was accepted: pace from initial_rpm, doubling as a paced start. */
static void test_unpaced_start_429_first_reply(void **state)
{
    (void)state;
    fixture f;
    sky_ratelimit_options o = opts_unpaced();
    fixture_open(&f, &o);
    for (int i = 0; i < 32; i++)
        assert_int_equal(sky_ratelimit_acquire(f.rl, 0), 0);
    sky_ratelimit_on_response(f.rl, 429, NULL, 0, -1);
    assert_true(stats_of(&f).rpm == 600);
    int grants = drain_until(&f, 1000, 0);
    assert_true(grants >= 9 && grants <= 11);
    /* held back for a whole interval and no 429: it doubles, as slow start does */
    drain_until(&f, 6500, 0);
    assert_true(stats_of(&f).rpm >= 1200);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unpaced_start_never_waits),
        cmocka_unit_test(test_unpaced_start_paced_by_headers),
        cmocka_unit_test(test_unpaced_start_first_429_paces_at_accepted_rate),
        cmocka_unit_test(test_unpaced_start_429_first_reply),
        cmocka_unit_test(test_unpaced_start_finds_limit_any_phase),
        cmocka_unit_test(test_options_defaults),
        cmocka_unit_test(test_new_rejects_bad_options),
        cmocka_unit_test(test_null_options_and_real_clock),
        cmocka_unit_test(test_unlimited_without_limits_or_learning),
        cmocka_unit_test(test_pacing_600rpm),
        cmocka_unit_test(test_small_burst_option),
        cmocka_unit_test(test_tpm_limits_big_max_tokens),
        cmocka_unit_test(test_tpm_small_requests_pass_while_budget_lasts),
        cmocka_unit_test(test_usage_correction_refunds),
        cmocka_unit_test(test_usage_correction_charges),
        cmocka_unit_test(test_estimate_tokens),
        cmocka_unit_test(test_header_limit_adopted),
        cmocka_unit_test(test_header_limit_never_raises_user_limit),
        cmocka_unit_test(test_headers_ignored_without_learning),
        cmocka_unit_test(test_low_remaining_slows_until_reset),
        cmocka_unit_test(test_healthy_remaining_lifts_the_slowdown),
        cmocka_unit_test(test_nothing_remaining_pauses_until_reset),
        cmocka_unit_test(test_unreadable_reset_is_ignored),
        cmocka_unit_test(test_429_halves_once_per_burst),
        cmocka_unit_test(test_429_forfeits_saved_burst),
        cmocka_unit_test(test_429_decreases_tokens_too),
        cmocka_unit_test(test_retry_after_pauses),
        cmocka_unit_test(test_retry_after_honoured_without_learning),
        cmocka_unit_test(test_recovery_after_quiet_time),
        cmocka_unit_test(test_no_increase_without_demand),
        cmocka_unit_test(test_slow_start_from_guess),
        cmocka_unit_test(test_slow_start_429_backs_off_to_clean_rate),
        cmocka_unit_test(test_429_measures_the_last_second),
        cmocka_unit_test(test_wait_time_accounted),
        cmocka_unit_test(test_converges_to_hidden_300rpm),
        cmocka_unit_test(test_converges_to_hidden_3000rpm),
        cmocka_unit_test(test_batch_tuning_holds_95_percent),
        cmocka_unit_test(test_batch_tuning_finds_limit_within_10s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
