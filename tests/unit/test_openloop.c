/* Tests for the open-loop schedule and recorder: when each request is due, and latency
 * counted from that moment, driven by a fake clock (no sleeping, no network). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "skyio/clock.h"
#include "http/openloop.h"

#define MS UINT64_C(1000000) /* nanoseconds */

static sky_openloop_options opts(double rate, uint64_t duration_ms, uint64_t max_requests)
{
    sky_openloop_options o;
    sky__openloop_options_init(&o);
    o.rate = rate;
    o.duration_ms = duration_ms;
    o.max_requests = max_requests;
    return o;
}

static uint64_t now_ns(const sky_fake_clock *c)
{
    return sky_clock_now_ms(&c->clock) * MS;
}

static void test_count(void **state)
{
    (void)state;
    sky_openloop_options o = opts(5000, 10000, 0);
    assert_int_equal(sky__openloop_count(&o), 50000);
    o = opts(5000, 10000, 1234);
    assert_int_equal(sky__openloop_count(&o), 1234);
    o = opts(5000, 0, 1234);
    assert_int_equal(sky__openloop_count(&o), 1234);
    o = opts(0.5, 1000, 0); /* half a request in the window: still one */
    assert_int_equal(sky__openloop_count(&o), 1);
    o = opts(2.5, 2000, 0);
    assert_int_equal(sky__openloop_count(&o), 5);
    o = opts(0, 1000, 10); /* no rate, or neither bound: no schedule */
    assert_int_equal(sky__openloop_count(&o), 0);
    o = opts(100, 0, 0);
    assert_int_equal(sky__openloop_count(&o), 0);
}

static void test_intended_times(void **state)
{
    (void)state;
    sky_openloop_schedule s;
    sky_openloop_options o = opts(1000, 0, 10);
    sky__openloop_schedule_init(&s, &o, 7 * MS);
    assert_int_equal(sky__openloop_intended_ns(&s, 0), 7 * MS);
    assert_int_equal(sky__openloop_intended_ns(&s, 3), 10 * MS);
    o = opts(3, 0, 10); /* no drift from rounding: request 3 at exactly one second */
    sky__openloop_schedule_init(&s, &o, 0);
    assert_int_equal(sky__openloop_intended_ns(&s, 1), 333333333);
    assert_int_equal(sky__openloop_intended_ns(&s, 3), 1000 * MS);
    assert_int_equal(sky__openloop_intended_ns(&s, 300), 100000 * MS);
}

static void test_next_waits_then_catches_up(void **state)
{
    (void)state;
    sky_fake_clock clk;
    sky_openloop_schedule s;
    uint64_t at;
    sky_fake_clock_init(&clk, 100, 0);
    sky_openloop_options o = opts(1000, 20, 0); /* 20 requests, one a millisecond */
    sky__openloop_schedule_init(&s, &o, now_ns(&clk));
    assert_int_equal(sky__openloop_schedule_next(&s, now_ns(&clk), &at), 1);
    assert_int_equal(at, 100 * MS);
    /* the next is not due yet: told when it will be */
    assert_int_equal(sky__openloop_schedule_next(&s, now_ns(&clk), &at), 0);
    assert_int_equal(at, 101 * MS);
    assert_int_equal(s.next, 1);
    /* the sender wakes 10 ms late: the 10 it missed are all due, each at its own time */
    sky_fake_clock_advance(&clk, 10);
    for (uint64_t i = 1; i <= 10; i++) {
        assert_int_equal(sky__openloop_schedule_next(&s, now_ns(&clk), &at), 1);
        assert_int_equal(at, (100 + i) * MS);
    }
    assert_int_equal(sky__openloop_schedule_next(&s, now_ns(&clk), &at), 0);
    sky_fake_clock_advance(&clk, 1000);
    for (int i = 0; i < 9; i++)
        assert_int_equal(sky__openloop_schedule_next(&s, now_ns(&clk), &at), 1);
    assert_int_equal(at, 119 * MS);
    assert_int_equal(sky__openloop_schedule_next(&s, now_ns(&clk), &at), -1);
    assert_int_equal(sky__openloop_schedule_next(&s, now_ns(&clk), &at), -1);
}

/*
 * A sender capped at one request in flight against a server that answers each request
 * in service_ms, except the first, which takes stall_ms: every request is sent once it
 * is due and the one before it has been answered, as the driver does.
 */
static void simulate(sky_openloop_stats *st, double rate, uint64_t count, uint64_t service_ms,
                     uint64_t stall_ms)
{
    sky_fake_clock clk;
    sky_openloop_schedule s;
    uint64_t at;
    sky_fake_clock_init(&clk, 1000, 0);
    sky_openloop_options o = opts(rate, 0, count);
    o.max_in_flight = 1;
    sky__openloop_schedule_init(&s, &o, now_ns(&clk));
    sky__openloop_stats_init(st, now_ns(&clk));
    for (int rc; (rc = sky__openloop_schedule_next(&s, now_ns(&clk), &at)) >= 0;) {
        if (rc == 0) {
            sky_fake_clock_advance(&clk, (at - now_ns(&clk) + MS - 1) / MS);
            continue;
        }
        uint64_t sent = now_ns(&clk);
        sky__openloop_record_send(st, at, sent);
        sky_fake_clock_advance(&clk, st->sent == 1 ? stall_ms : service_ms);
        sky__openloop_record_done(st, at, sent, now_ns(&clk));
    }
}

static void test_steady_server(void **state)
{
    (void)state;
    sky_openloop_stats st;
    simulate(&st, 100, 200, 2, 2); /* 2 ms answers, one every 10 ms: never held back */
    assert_int_equal(st.sent, 200);
    assert_int_equal(st.done, 200);
    assert_int_equal(st.late, 0);
    assert_int_equal(st.max_lag_us, 0);
    assert_int_equal(st.latency_us.min, 2000);
    assert_int_equal(st.latency_us.max, 2000);
    assert_int_equal(st.service_us.max, 2000);
    /* 200 requests over 199 intervals of 10 ms plus the last answer's 2 ms */
    double rate = sky__openloop_achieved_rate(&st);
    assert_true(rate > 200.0 / 1.992 - 0.01 && rate < 200.0 / 1.992 + 0.01);
}

/*
 * The first answer takes a second. A closed loop would see one slow request among fast
 * ones; here the ~100 requests due during the stall count the time they waited.
 */
static void test_stall_is_not_omitted(void **state)
{
    (void)state;
    sky_openloop_stats st;
    simulate(&st, 100, 200, 1, 1000);
    assert_int_equal(st.done, 200);
    /* what the server took: 1 ms but once */
    assert_true(sky_histogram_percentile(&st.service_us, 50) <= 1100);
    assert_int_equal(st.service_us.max, 1000000);
    /* what a user waited: request k (due at 10k ms) went at 1000 + (k - 1) ms, and waited
     * 1000 - 9k ms; they catch up at k = 111, so the median is near k = 100's 100 ms */
    uint64_t p50 = sky_histogram_percentile(&st.latency_us, 50);
    assert_true(p50 > 85000 && p50 < 105000);
    assert_true(sky_histogram_percentile(&st.latency_us, 99) > 900000);
    assert_int_equal(st.latency_us.max, 1000000);
    assert_true(st.late >= 100 && st.late <= 111);
    assert_int_equal(st.max_lag_us, 990000); /* request 1: due at 10 ms, sent at 1000 ms */
}

static void test_recorder_edges(void **state)
{
    (void)state;
    sky_openloop_stats st;
    sky__openloop_stats_init(&st, 50 * MS);
    assert_true(sky__openloop_achieved_rate(&st) == 0);
    sky__openloop_record_send(&st, 60 * MS, 61 * MS); /* exactly 1 ms: not late */
    assert_int_equal(st.late, 0);
    assert_int_equal(st.max_lag_us, 1000);
    sky__openloop_record_send(&st, 60 * MS, 61 * MS + 1);
    assert_int_equal(st.late, 1);
    /* a clock that reads a completion before the due time counts 0, not a huge wrap */
    sky__openloop_record_done(&st, 60 * MS, 61 * MS, 59 * MS);
    assert_int_equal(st.latency_us.max, 0);
    sky__openloop_record_done(&st, 60 * MS, 61 * MS, 1050 * MS);
    assert_true(sky__openloop_achieved_rate(&st) == 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_intended_times),
        cmocka_unit_test(test_next_waits_then_catches_up),
        cmocka_unit_test(test_steady_server),
        cmocka_unit_test(test_stall_is_not_omitted),
        cmocka_unit_test(test_recorder_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
