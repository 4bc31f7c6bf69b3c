/* Distributed batch on Redis Streams: a real redis-server, real skyio processes, skyio mock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "harness.h"
#include "harness_redis.h"

/* The harness itself: AOF survives a stop, a wiped restart is empty, a password is asked. */
static void test_redis_harness(void **state)
{
    (void)state;
    sky_test_redis r;
    sky_test_redis_options o;
    sky_test_redis_options_init(&o);
    o.appendonly = 1;
    o.requirepass = "s3cret-pw";
    sky_test_redis_start(&r, &o);
    assert_int_equal(sky_test_redis_int(&r, "INCR k"), 1);
    sky_test_redis_stop(&r);
    assert_null(sky_test_redis_command(&r, "PING"));
    sky_test_redis_restart(&r, 0);
    assert_int_equal(sky_test_redis_int(&r, "INCR k"), 2);
    sky_test_redis_kill(&r);
    sky_test_redis_restart(&r, 1);
    assert_int_equal(sky_test_redis_int(&r, "DBSIZE"), 0);
    sky_test_redis_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_harness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
