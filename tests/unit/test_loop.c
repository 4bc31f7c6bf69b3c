/* Tests for the event loop wrapper: running, stopping, signals, and freeing with open handles. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>

#include "skyio/error.h"
#include "skyio/loop.h"

typedef struct signal_seen {
    int calls;
    int signum;
    sky_loop *loop;
    uv_timer_t *guard;
} signal_seen;

/* A ref'd timer keeps the loop polling (the signal watchers alone do not); firing fails the test.
 */
static void guard_fired(uv_timer_t *t)
{
    (void)t;
    fail_msg("signal was not delivered within the guard time");
}

static void on_signal(sky_loop *loop, int signum, void *user_data)
{
    signal_seen *seen = user_data;
    seen->calls++;
    seen->signum = signum;
    seen->loop = loop;
    uv_timer_stop(seen->guard);
}

static void closed_free(uv_handle_t *h)
{
    free(h);
}

/* Install the watcher, raise @p signum, run: the callback must see it. */
static void deliver(int signum)
{
    sky_loop *loop = sky_loop_new();
    assert_non_null(loop);
    uv_timer_t *guard = malloc(sizeof(*guard));
    assert_non_null(guard);
    signal_seen seen = {0, 0, NULL, guard};
    assert_int_equal(sky_loop_on_signal(loop, on_signal, &seen), 0);
    assert_int_equal(uv_timer_init(sky_loop_uv(loop), guard), 0);
    assert_int_equal(uv_timer_start(guard, guard_fired, 5000, 0), 0);
    assert_int_equal(raise(signum), 0);
    sky_loop_run(loop);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.signum, signum);
    assert_ptr_equal(seen.loop, loop);
    uv_close((uv_handle_t *)guard, closed_free);
    sky_loop_free(loop);
}

static void test_sigterm_delivered(void **state)
{
    (void)state;
    deliver(SIGTERM);
}

static void test_sigint_delivered(void **state)
{
    (void)state;
    signal(SIGINT, SIG_DFL); /* whatever the runner left: an ignored one is the next test */
    deliver(SIGINT);
}

static void count_signal(sky_loop *loop, int signum, void *user_data);
static void stop_after_tick(uv_timer_t *t);

/* A SIGINT ignored before the watchers start stays ignored; SIGTERM still arrives. */
static void test_ignored_sigint_stays_ignored(void **state)
{
    (void)state;
    struct sigaction sa;
    int seen = 0;
    uv_timer_t tick;
    signal(SIGINT, SIG_IGN);
    sky_loop *loop = sky_loop_new();
    assert_non_null(loop);
    assert_int_equal(sky_loop_on_signal(loop, count_signal, &seen), 0);
    assert_int_equal(sigaction(SIGINT, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    assert_int_equal(uv_timer_init(sky_loop_uv(loop), &tick), 0);
    assert_int_equal(uv_timer_start(&tick, stop_after_tick, 200, 0), 0);
    assert_int_equal(raise(SIGINT), 0);
    sky_loop_run(loop);
    assert_int_equal(seen, 0);
    /* calling again (replacing the callback) does not start watching it either */
    assert_int_equal(sky_loop_on_signal(loop, count_signal, &seen), 0);
    assert_int_equal(sigaction(SIGINT, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    sky_loop_free(loop);
    signal(SIGINT, SIG_DFL);
    deliver(SIGTERM);
}

static void test_watchers_do_not_keep_loop_alive(void **state)
{
    (void)state;
    sky_loop *loop = sky_loop_new();
    signal_seen seen = {0, 0, NULL, NULL};
    assert_int_equal(sky_loop_on_signal(loop, on_signal, &seen), 0);
    /* nothing else is active, so this returns at once instead of waiting for a signal */
    assert_int_equal(sky_loop_run(loop), 0);
    assert_int_equal(seen.calls, 0);
    sky_loop_free(loop);
}

static void count_signal(sky_loop *loop, int signum, void *user_data)
{
    (void)loop;
    (void)signum;
    ++*(int *)user_data;
}

static void stop_after_tick(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
}

/* Run @p loop until a short timer ends, after raising SIGTERM. */
static void raise_and_run(sky_loop *loop)
{
    uv_timer_t tick;
    assert_int_equal(uv_timer_init(sky_loop_uv(loop), &tick), 0);
    assert_int_equal(uv_timer_start(&tick, stop_after_tick, 200, 0), 0);
    assert_int_equal(raise(SIGTERM), 0);
    sky_loop_run(loop);
}

static void test_replace_callback(void **state)
{
    (void)state;
    sky_loop *loop = sky_loop_new();
    int first = 0, second = 0;
    assert_int_equal(sky_loop_on_signal(loop, count_signal, &first), 0);
    assert_int_equal(sky_loop_on_signal(loop, count_signal, &second), 0);
    raise_and_run(loop);
    assert_int_equal(first, 0);
    assert_int_equal(second, 1);
    sky_loop_free(loop);
}

static void own_watcher(uv_signal_t *h, int signum)
{
    (void)signum;
    ++*(int *)h->data;
}

static void test_remove_callback(void **state)
{
    (void)state;
    sky_loop *loop = sky_loop_new();
    int ours = 0, other = 0;
    assert_int_equal(sky_loop_on_signal(loop, count_signal, &ours), 0);
    /* a watcher of the test's own keeps SIGTERM from killing the process */
    uv_signal_t *mine = malloc(sizeof(*mine));
    assert_non_null(mine);
    assert_int_equal(uv_signal_init(sky_loop_uv(loop), mine), 0);
    mine->data = &other;
    uv_unref((uv_handle_t *)mine);
    assert_int_equal(uv_signal_start(mine, own_watcher, SIGTERM), 0);
    assert_int_equal(sky_loop_on_signal(loop, NULL, NULL), 0);
    raise_and_run(loop);
    assert_int_equal(ours, 0);
    assert_int_equal(other, 1);
    /* and it can be turned on again */
    assert_int_equal(sky_loop_on_signal(loop, count_signal, &ours), 0);
    raise_and_run(loop);
    assert_int_equal(ours, 1);
    assert_int_equal(other, 2);
    uv_close((uv_handle_t *)mine, closed_free);
    sky_loop_free(loop);
}

static void on_stop_timer(uv_timer_t *t)
{
    sky_loop_stop(t->data);
}

static void test_stop_returns_from_run(void **state)
{
    (void)state;
    sky_loop *loop = sky_loop_new();
    uv_timer_t t;
    assert_int_equal(uv_timer_init(sky_loop_uv(loop), &t), 0);
    t.data = loop;
    /* a repeating timer would keep the loop alive forever without the stop */
    assert_int_equal(uv_timer_start(&t, on_stop_timer, 1, 1), 0);
    assert_int_not_equal(sky_loop_run(loop), 0);
    sky_loop_free(loop); /* also closes the still-active timer */
}

static int closes_seen;

static void count_close(uv_handle_t *h)
{
    (void)h;
    closes_seen++;
}

static void test_free_with_open_handles(void **state)
{
    (void)state;
    sky_loop *loop = sky_loop_new();
    uv_loop_t *uv = sky_loop_uv(loop);
    /* heap handles so ASan sees any use after sky_loop_free returns */
    uv_timer_t *active = malloc(sizeof(*active));
    uv_idle_t *idle = malloc(sizeof(*idle));
    uv_async_t *async = malloc(sizeof(*async));
    uv_timer_t *closing = malloc(sizeof(*closing));
    assert_non_null(active);
    assert_non_null(idle);
    assert_non_null(async);
    assert_non_null(closing);
    assert_int_equal(uv_timer_init(uv, active), 0);
    assert_int_equal(uv_timer_start(active, on_stop_timer, 100000, 0), 0);
    assert_int_equal(uv_idle_init(uv, idle), 0);
    assert_int_equal(uv_async_init(uv, async, NULL), 0);
    assert_int_equal(uv_timer_init(uv, closing), 0);
    assert_int_equal(sky_loop_on_signal(loop, count_signal, &closes_seen), 0);
    closes_seen = 0;
    /* already closing: its own close callback must still run */
    uv_close((uv_handle_t *)closing, count_close);
    sky_loop_free(loop);
    assert_int_equal(closes_seen, 1);
    free(active);
    free(idle);
    free(async);
    free(closing);
}

static void test_free_null_and_fresh(void **state)
{
    (void)state;
    sky_loop_free(NULL);
    sky_loop *loop = sky_loop_new();
    assert_non_null(sky_loop_uv(loop));
    assert_ptr_equal(sky_loop_uv(loop)->data, loop);
    sky_loop_free(loop);
    assert_int_equal(sky_loop_on_signal(NULL, NULL, NULL), SKY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_delivered),
        cmocka_unit_test(test_sigint_delivered),
        cmocka_unit_test(test_ignored_sigint_stays_ignored),
        cmocka_unit_test(test_watchers_do_not_keep_loop_alive),
        cmocka_unit_test(test_replace_callback),
        cmocka_unit_test(test_remove_callback),
        cmocka_unit_test(test_stop_returns_from_run),
        cmocka_unit_test(test_free_with_open_handles),
        cmocka_unit_test(test_free_null_and_fresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
