/* Tests for the real and the fake clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <time.h>

#include "skyio/clock.h"

static void test_fake_clock_starts_where_told(void **state)
{
    (void)state;
    sky_fake_clock f;
    sky_fake_clock_init(&f, 1000, INT64_C(1767225600000));
    assert_int_equal(sky_clock_now_ms(&f.clock), 1000);
    assert_true(sky_clock_wall_ms(&f.clock) == INT64_C(1767225600000));
}

static void test_fake_clock_moves_only_when_told(void **state)
{
    (void)state;
    sky_fake_clock f;
    sky_fake_clock_init(&f, 0, 5000);
    assert_int_equal(sky_clock_now_ms(&f.clock), 0);
    assert_int_equal(sky_clock_now_ms(&f.clock), 0);
    sky_fake_clock_advance(&f, 250);
    assert_int_equal(sky_clock_now_ms(&f.clock), 250);
    assert_true(sky_clock_wall_ms(&f.clock) == 5250);
    sky_fake_clock_advance(&f, 0);
    assert_int_equal(sky_clock_now_ms(&f.clock), 250);
}

static void test_fake_clocks_are_independent(void **state)
{
    (void)state;
    sky_fake_clock a, b;
    sky_fake_clock_init(&a, 10, 0);
    sky_fake_clock_init(&b, 20, 0);
    sky_fake_clock_advance(&a, 5);
    assert_int_equal(sky_clock_now_ms(&a.clock), 15);
    assert_int_equal(sky_clock_now_ms(&b.clock), 20);
}

static void test_fake_fields_can_be_set(void **state)
{
    (void)state;
    /* a test may jump the wall clock alone (an NTP step) */
    sky_fake_clock f;
    sky_fake_clock_init(&f, 7, 100);
    f.wall_ms = -5;
    assert_true(sky_clock_wall_ms(&f.clock) == -5);
    assert_int_equal(sky_clock_now_ms(&f.clock), 7);
}

static void test_real_clock_is_monotonic(void **state)
{
    (void)state;
    uint64_t prev = sky_clock_real_ns();
    for (int i = 0; i < 1000; i++) {
        uint64_t now = sky_clock_real_ns();
        assert_true(now >= prev);
        prev = now;
    }
    uint64_t a = sky_clock_now_ms(sky_clock_real());
    uint64_t b = sky_clock_now_ms(NULL);
    assert_true(b >= a);
    assert_true(b - a < 1000);
}

static void test_real_wall_clock_matches_time(void **state)
{
    (void)state;
    /* time() reads Linux's coarse clock, which can trail CLOCK_REALTIME
     * by a tick, so bracket with the C11 calendar clock instead. */
    struct timespec ts;
    assert_int_equal(timespec_get(&ts, TIME_UTC), TIME_UTC);
    int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t wall = sky_clock_wall_ms(NULL);
    assert_int_equal(timespec_get(&ts, TIME_UTC), TIME_UTC);
    int64_t after = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    assert_true(wall >= before);
    assert_true(wall <= after);
    assert_true(sky_clock_wall_ms(sky_clock_real()) >= wall);
}

static void test_real_clock_is_shared(void **state)
{
    (void)state;
    assert_ptr_equal(sky_clock_real(), sky_clock_real());
    assert_non_null(sky_clock_real()->now_ms);
    assert_non_null(sky_clock_real()->wall_ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fake_clock_starts_where_told),
        cmocka_unit_test(test_fake_clock_moves_only_when_told),
        cmocka_unit_test(test_fake_clocks_are_independent),
        cmocka_unit_test(test_fake_fields_can_be_set),
        cmocka_unit_test(test_real_clock_is_monotonic),
        cmocka_unit_test(test_real_wall_clock_matches_time),
        cmocka_unit_test(test_real_clock_is_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
