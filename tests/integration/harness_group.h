/*
 * cmocka 1.1 runs a group's teardown but leaves its failure out of the exit status: an
 * assertion there (a secrets canary over the logs, a server's exit status) would fail
 * nothing. sky_test_run_group runs the group as cmocka_run_group_tests does, with the
 * teardown wrapped: one that does not come back (an assertion jumped out of it) or
 * returns non-zero makes the result non-zero. Include it in the file that holds main().
 */
#ifndef SKY_TEST_HARNESS_GROUP_H
#define SKY_TEST_HARNESS_GROUP_H

static int (*sky__group_teardown)(void **state);
static int sky__group_teardown_failed;

static inline int sky__group_teardown_wrap(void **state)
{
    if (sky__group_teardown == NULL)
        return 0;
    sky__group_teardown_failed = 1; /* stays so if an assertion jumps out */
    int rc = sky__group_teardown(state);
    sky__group_teardown_failed = rc != 0;
    return rc;
}

static inline int sky__group_result(int failed)
{
    return failed ? failed : sky__group_teardown_failed;
}

#define sky_test_run_group(tests, setup, teardown)                                                 \
    (sky__group_teardown = (teardown),                                                             \
     sky__group_result(cmocka_run_group_tests(tests, setup, sky__group_teardown_wrap)))

#endif
