/*
 * The shared rate limit's start (src/jobs/redis_scripts.c, the rate script), run directly
 * against a real redis-server: while no limit is known the workers together get one
 * process's start (32 attempts unreported), growing with the successes reported, until a
 * first 429 sets a rate or a second has passed; then unpaced as before.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "harness_redis.h"
#include "jobs/redis_internal.h"

typedef struct answer {
    long long granted, wait_ms;
    double rpm;
} answer;

static answer lease(const sky_test_redis *r, const char *dep, const char *want, const char *ok,
                    const char *refused)
{
    answer a = {-1, -1, -99};
    redisReply *x =
        sky_test_redis_command(r, "EVAL %s 1 %s %s %s %s %s %s", sky__redis_scripts[SKY__RS_RATE],
                               "{skyio:t}:rate", dep, "lease", want, ok, refused);
    assert_non_null(x);
    assert_int_equal(x->type, REDIS_REPLY_ARRAY);
    assert_int_equal(x->elements, 3);
    a.granted = x->element[0]->integer;
    a.wait_ms = x->element[1]->integer;
    a.rpm = strtod(x->element[2]->str, NULL);
    freeReplyObject(x);
    return a;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Three workers leasing 8 at a time share one window of 32; successes reported open it. */
static void test_start_shared_window(void **state)
{
    sky_test_redis *r = *state;
    answer a;
    for (int i = 0; i < 4; i++) {
        a = lease(r, "w", "8", "0", "0");
        assert_int_equal(a.granted, 8);
        assert_true(a.rpm < 0); /* the shared start: count these */
    }
    a = lease(r, "w", "8", "0", "0");
    assert_int_equal(a.granted, 0);
    assert_true(a.wait_ms > 0 && a.wait_ms <= 100);
    assert_true(a.rpm < 0);
    a = lease(r, "w", "8", "3", "0"); /* 3 replies: 29 out, the window 35 */
    assert_int_equal(a.granted, 6);
    a = lease(r, "w", "8", "0", "0");
    assert_int_equal(a.granted, 0);
}

/* A first 429 ends the start: the bucket's own slow start (600 RPM) takes over. */
static void test_start_ends_at_429(void **state)
{
    sky_test_redis *r = *state;
    answer a = lease(r, "x", "8", "0", "0");
    assert_int_equal(a.granted, 8);
    a = lease(r, "x", "8", "1", "1");
    assert_true(a.rpm == 600.0);
}

/* 128 successes with no 429: no limit near; unpaced from then on. */
static void test_start_ends_at_128_ok(void **state)
{
    sky_test_redis *r = *state;
    answer a = lease(r, "v", "32", "0", "0");
    assert_int_equal(a.granted, 32);
    a = lease(r, "v", "32", "32", "0");
    assert_true(a.rpm < 0);
    a = lease(r, "v", "32", "96", "0");
    assert_true(a.rpm < 0);
    a = lease(r, "v", "32", "0", "0");
    assert_true(a.rpm == 0.0);
    assert_int_equal(a.granted, 32);
}

/* No limit met within a second: unpaced (rpm 0, all granted) as before. */
static void test_start_ends_after_a_second(void **state)
{
    sky_test_redis *r = *state;
    answer a = lease(r, "y", "8", "0", "0");
    assert_true(a.rpm < 0);
    sleep_ms(1100);
    a = lease(r, "y", "8", "0", "0");
    assert_true(a.rpm == 0.0);
    assert_int_equal(a.granted, 8);
}

/* A ceiling given (--rpm) skips the start: the bucket paces from the first lease. */
static void test_start_skipped_with_ceiling(void **state)
{
    sky_test_redis *r = *state;
    redisReply *x =
        sky_test_redis_command(r, "EVAL %s 1 %s %s %s %s", sky__redis_scripts[SKY__RS_RATE],
                               "{skyio:t}:rate", "z", "set", "3000");
    assert_non_null(x);
    freeReplyObject(x);
    answer a = lease(r, "z", "8", "0", "0");
    assert_true(a.rpm == 3000.0);
}

static int setup(void **state)
{
    static sky_test_redis r;
    sky_test_redis_start(&r, NULL);
    *state = &r;
    return 0;
}

static int teardown(void **state)
{
    sky_test_redis_free(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_shared_window),
        cmocka_unit_test(test_start_ends_at_429),
        cmocka_unit_test(test_start_ends_at_128_ok),
        cmocka_unit_test(test_start_ends_after_a_second),
        cmocka_unit_test(test_start_skipped_with_ceiling),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
