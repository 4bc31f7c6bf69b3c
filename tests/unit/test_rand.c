/* Tests for the fast generator: known splitmix64 values, UUID form, threads and fork. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "skyio/rand.h"

static void test_splitmix64_known_values(void **state)
{
    (void)state;
    uint64_t s = 0;
    assert_true(sky_rand_splitmix64(&s) == UINT64_C(0xE220A8397B1DCDAF));
    assert_true(sky_rand_splitmix64(&s) == UINT64_C(0x6E789E6AA1B965F4));
}

static void assert_uuid_form(const char *u)
{
    assert_int_equal(strlen(u), SKY_UUID_LEN);
    for (size_t i = 0; i < SKY_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(u[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", u[i]));
    }
    assert_int_equal(u[14], '4');           /* version 4 */
    assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
}

static void test_uuid_form_and_distinct(void **state)
{
    (void)state;
    char seen[64][SKY_UUID_LEN + 1];
    int digits[256] = {0}, distinct = 0;
    for (size_t i = 0; i < 64; i++) {
        sky_rand_uuid(seen[i]);
        assert_uuid_form(seen[i]);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
        for (size_t k = 0; k < SKY_UUID_LEN; k++)
            distinct += seen[i][k] != '-' && digits[(unsigned char)seen[i][k]]++ == 0;
    }
    assert_int_equal(distinct, 16); /* every hex digit, over 64 ids (1,920 digits) */
}

static void *draw_in_thread(void *arg)
{
    *(uint64_t *)arg = sky_rand_u64();
    return NULL;
}

/* Each thread seeds its own generator: two threads do not draw the same value. */
static void test_threads_differ(void **state)
{
    (void)state;
    uint64_t a = 0, b = 0;
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, draw_in_thread, &a), 0);
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_create(&tb, NULL, draw_in_thread, &b), 0);
    assert_int_equal(pthread_join(tb, NULL), 0);
    assert_true(a != b);
}

/* A forked child must not repeat its parent's next values (its request ids would collide). */
static void test_fork_reseeds(void **state)
{
    (void)state;
    (void)sky_rand_u64(); /* the parent's generator is seeded before the fork */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint64_t v[4];
        for (size_t i = 0; i < 4; i++)
            v[i] = sky_rand_u64();
        ssize_t n = write(fds[1], v, sizeof(v));
        _exit(n == (ssize_t)sizeof(v) ? 0 : 1);
    }
    close(fds[1]);
    uint64_t parent[4], child[4];
    for (size_t i = 0; i < 4; i++)
        parent[i] = sky_rand_u64();
    assert_int_equal(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_memory_not_equal(parent, child, sizeof(parent));
    for (size_t i = 0; i < 4; i++)
        assert_true(parent[i] != child[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splitmix64_known_values),
        cmocka_unit_test(test_uuid_form_and_distinct),
        cmocka_unit_test(test_threads_differ),
        cmocka_unit_test(test_fork_reseeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
