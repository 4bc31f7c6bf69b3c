/* Tests for the circuit breaker, on a fake clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "skyio/breaker.h"
#include "skyio/error.h"

static void setup(sky_breaker *b, sky_fake_clock *fc, int threshold, uint64_t reset_ms,
                  uint64_t max_reset_ms, int probes)
{
    sky_fake_clock_init(fc, 5000, 0);
    sky_breaker_options o;
    sky_breaker_options_init(&o);
    o.failure_threshold = threshold;
    o.reset_ms = reset_ms;
    o.max_reset_ms = max_reset_ms;
    o.half_open_probes = probes;
    assert_int_equal(sky_breaker_init(b, &o, &fc->clock), 0);
}

/* Allow and fail @p n requests; every one must be allowed. */
static void fail_n(sky_breaker *b, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(sky_breaker_allow(b, NULL), 1);
        sky_breaker_record(b, 0);
    }
}

static void open_breaker(sky_breaker *b)
{
    fail_n(b, b->opts.failure_threshold);
    assert_int_equal(sky_breaker_get_state(b), SKY_BREAKER_OPEN);
}

/* Open a breaker of threshold 3, reset 30 s, one probe, and let the 30 s pass: half-open. */
static void setup_half_open(sky_breaker *b, sky_fake_clock *fc)
{
    setup(b, fc, 3, 30000, 0, 1);
    open_breaker(b);
    sky_fake_clock_advance(fc, 30000);
}

static void test_defaults_and_invalid_options(void **state)
{
    (void)state;
    sky_breaker_options o;
    sky_breaker_options_init(&o);
    assert_int_equal(o.failure_threshold, 5);
    assert_int_equal(o.reset_ms, 30000);
    assert_int_equal(o.max_reset_ms, 0);
    assert_int_equal(o.half_open_probes, 1);

    sky_breaker b;
    assert_int_equal(sky_breaker_init(&b, NULL, NULL), 0);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    assert_int_equal(b.opts.failure_threshold, 5);

    o.failure_threshold = 0;
    assert_int_equal(sky_breaker_init(&b, &o, NULL), SKY_EINVAL);
    sky_breaker_options_init(&o);
    o.half_open_probes = 0;
    assert_int_equal(sky_breaker_init(&b, &o, NULL), SKY_EINVAL);
    sky_breaker_options_init(&o);
    o.max_reset_ms = 1000; /* below reset_ms */
    assert_int_equal(sky_breaker_init(&b, &o, NULL), SKY_EINVAL);
}

static void test_opens_after_threshold(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup(&b, &fc, 5, 30000, 0, 1);
    fail_n(&b, 4);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    uint64_t wait = 123;
    assert_int_equal(sky_breaker_allow(&b, &wait), 1);
    assert_int_equal(wait, 0);
    sky_breaker_record(&b, 0);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_OPEN);
    assert_int_equal(sky_breaker_allow(&b, &wait), 0);
    assert_int_equal(wait, 30000);
    sky_breaker_counters c;
    sky_breaker_get_counters(&b, &c);
    assert_int_equal(c.opened, 1);
    assert_int_equal(c.failures, 5);
    assert_int_equal(c.allowed, 5);
    assert_int_equal(c.refused, 1);
}

static void test_success_resets_count(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup(&b, &fc, 5, 30000, 0, 1);
    for (int round = 0; round < 10; round++) {
        fail_n(&b, 4);
        assert_int_equal(sky_breaker_allow(&b, NULL), 1);
        sky_breaker_record(&b, 1);
    }
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    fail_n(&b, 5);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_OPEN);
}

static void test_wait_counts_down(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup(&b, &fc, 3, 30000, 0, 1);
    open_breaker(&b);
    uint64_t wait = 0;
    sky_fake_clock_advance(&fc, 10000);
    assert_int_equal(sky_breaker_wait_ms(&b), 20000);
    assert_int_equal(sky_breaker_allow(&b, &wait), 0);
    assert_int_equal(wait, 20000);
    sky_fake_clock_advance(&fc, 19999);
    assert_int_equal(sky_breaker_allow(&b, &wait), 0);
    assert_int_equal(wait, 1);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_OPEN);
    sky_fake_clock_advance(&fc, 1);
    assert_int_equal(sky_breaker_wait_ms(&b), 0);
    /* Time is up: it reads HALF_OPEN even before anyone asks to send. */
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_HALF_OPEN);
}

static void test_half_open_allows_only_the_probe(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup_half_open(&b, &fc);
    uint64_t wait = 0;
    assert_int_equal(sky_breaker_allow(&b, &wait), 1);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_HALF_OPEN);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sky_breaker_allow(&b, &wait), 0);
        assert_int_equal(wait, 30000); /* the wait should the probe fail */
        sky_fake_clock_advance(&fc, 1000);
    }
    sky_breaker_counters c;
    sky_breaker_get_counters(&b, &c);
    assert_int_equal(c.half_opened, 1);
    assert_int_equal(c.refused, 5);
}

static void test_probe_success_closes(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup_half_open(&b, &fc);
    assert_int_equal(sky_breaker_allow(&b, NULL), 1);
    sky_breaker_record(&b, 1);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sky_breaker_allow(&b, NULL), 1);
    /* Counters were reset: it takes a full threshold again to open. */
    sky_breaker_record(&b, 0);
    sky_breaker_record(&b, 0);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    sky_breaker_record(&b, 0);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_OPEN);
    sky_breaker_counters c;
    sky_breaker_get_counters(&b, &c);
    assert_int_equal(c.opened, 2);
    assert_int_equal(c.closed, 1);
}

static void test_probe_failure_reopens(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup_half_open(&b, &fc);
    assert_int_equal(sky_breaker_allow(&b, NULL), 1);
    sky_fake_clock_advance(&fc, 2500); /* the probe took a while */
    sky_breaker_record(&b, 0);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_OPEN);
    uint64_t wait = 0;
    assert_int_equal(sky_breaker_allow(&b, &wait), 0);
    assert_int_equal(wait, 30000); /* timer restarted at the failure */
    sky_fake_clock_advance(&fc, 30000);
    assert_int_equal(sky_breaker_allow(&b, NULL), 1);
    sky_breaker_counters c;
    sky_breaker_get_counters(&b, &c);
    assert_int_equal(c.opened, 1);
    assert_int_equal(c.reopened, 1);
    assert_int_equal(c.half_opened, 2);
}

static void test_backoff_doubles_to_cap(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup(&b, &fc, 2, 1000, 5000, 1);
    open_breaker(&b);
    static const uint64_t expect[] = {1000, 2000, 4000, 5000, 5000};
    uint64_t wait = 0;
    for (size_t i = 0; i < SKY_ARRAY_LEN(expect); i++) {
        assert_int_equal(sky_breaker_allow(&b, &wait), 0);
        assert_int_equal(wait, expect[i]);
        sky_fake_clock_advance(&fc, expect[i] - 1);
        assert_int_equal(sky_breaker_allow(&b, NULL), 0);
        sky_fake_clock_advance(&fc, 1);
        assert_int_equal(sky_breaker_allow(&b, NULL), 1);
        sky_breaker_record(&b, 0);
    }
    /* A success closes and resets the open time. */
    sky_fake_clock_advance(&fc, 5000);
    assert_int_equal(sky_breaker_allow(&b, NULL), 1);
    sky_breaker_record(&b, 1);
    open_breaker(&b);
    assert_int_equal(sky_breaker_wait_ms(&b), 1000);
}

static void test_several_probes_and_cancel(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup(&b, &fc, 1, 100, 0, 3);
    open_breaker(&b);
    sky_fake_clock_advance(&fc, 100);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sky_breaker_allow(&b, NULL), 1);
    assert_int_equal(sky_breaker_allow(&b, NULL), 0);
    sky_breaker_cancel(&b); /* a probe was canceled: its slot is free again */
    assert_int_equal(sky_breaker_wait_ms(&b), 0);
    assert_int_equal(sky_breaker_allow(&b, NULL), 1);
    assert_int_equal(sky_breaker_allow(&b, NULL), 0);
    sky_breaker_record(&b, 1); /* the first success closes */
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    /* The other probes' late results are ordinary CLOSED results now. */
    sky_breaker_record(&b, 1);
    sky_breaker_cancel(&b);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
}

static void test_results_while_open_are_ignored(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    setup(&b, &fc, 2, 1000, 0, 1);
    open_breaker(&b);
    sky_fake_clock_advance(&fc, 400);
    /* Requests sent before it opened finish now: the timer stands. */
    sky_breaker_record(&b, 0);
    sky_breaker_record(&b, 1);
    sky_breaker_cancel(&b);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_OPEN);
    assert_int_equal(sky_breaker_wait_ms(&b), 600);
    sky_breaker_counters c;
    sky_breaker_get_counters(&b, &c);
    assert_int_equal(c.successes, 1);
    assert_int_equal(c.failures, 3);
}

/*
 * With quiet_ms, failures among successes (a limiter's refusals of a burst, a request
 * the server cannot handle) do not open it; failures with no success for that long do.
 */
static void test_quiet_window(void **state)
{
    (void)state;
    sky_fake_clock fc;
    sky_breaker b;
    sky_fake_clock_init(&fc, 5000, 0);
    sky_breaker_options o;
    sky_breaker_options_init(&o);
    o.quiet_ms = 2000;
    assert_int_equal(sky_breaker_init(&b, &o, &fc.clock), 0);
    /* a burst refused at the start, then the endpoint answers: still closed */
    fail_n(&b, 10);
    sky_fake_clock_advance(&fc, 50);
    assert_int_equal(sky_breaker_allow(&b, NULL), 1);
    sky_breaker_record(&b, 1);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    /* failures with a success every so often, for a minute: still closed */
    for (int i = 0; i < 600; i++) {
        sky_fake_clock_advance(&fc, 100);
        fail_n(&b, 1);
        if (i % 15 == 14) {
            assert_int_equal(sky_breaker_allow(&b, NULL), 1);
            sky_breaker_record(&b, 1);
        }
    }
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    /* nothing but failures: open once they have gone on for 2 s */
    for (int i = 0; i < 19; i++) {
        fail_n(&b, 1);
        sky_fake_clock_advance(&fc, 100);
    }
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_CLOSED);
    sky_fake_clock_advance(&fc, 100);
    fail_n(&b, 1);
    assert_int_equal(sky_breaker_get_state(&b), SKY_BREAKER_OPEN);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(sky_breaker_state_name(SKY_BREAKER_CLOSED), "closed");
    assert_string_equal(sky_breaker_state_name(SKY_BREAKER_OPEN), "open");
    assert_string_equal(sky_breaker_state_name(SKY_BREAKER_HALF_OPEN), "half-open");
    assert_string_equal(sky_breaker_state_name(-1), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_window),
        cmocka_unit_test(test_defaults_and_invalid_options),
        cmocka_unit_test(test_opens_after_threshold),
        cmocka_unit_test(test_success_resets_count),
        cmocka_unit_test(test_wait_counts_down),
        cmocka_unit_test(test_half_open_allows_only_the_probe),
        cmocka_unit_test(test_probe_success_closes),
        cmocka_unit_test(test_probe_failure_reopens),
        cmocka_unit_test(test_backoff_doubles_to_cap),
        cmocka_unit_test(test_several_probes_and_cancel),
        cmocka_unit_test(test_results_while_open_are_ignored),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
