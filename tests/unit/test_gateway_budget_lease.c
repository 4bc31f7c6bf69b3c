/* Tests for a key's minute budget leased from the bucket shared by gateways (Redis): the
 * lease's arithmetic with time given as an argument, the store's answers given by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "gateway/internal.h"
#include "store/store.h"

static sky__store_lease_answer answer(int64_t reqs, int64_t toks, int64_t lr, int64_t lt,
                                      int64_t wait)
{
    sky__store_lease_answer a = {reqs, toks, lr, lt, wait};
    return a;
}

/* A budget of @p rpm / @p tpm whose first lease is asked at @p asked and answered with @p a at
 * @p answered. */
static void lease_once(gw_budget *b, double rpm, double tpm, sky__store_lease_ask *ask,
                       uint64_t asked, sky__store_lease_answer a, uint64_t answered)
{
    sky__gw_budget_init(b, rpm, tpm, 0);
    assert_int_equal(sky__gw_lease_due(b, asked, ask), 1);
    sky__gw_lease_answered(b, answered, ask, &a);
}

static void test_first_call_goes_ahead_of_the_first_lease(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__store_lease_ask ask;
    sky__gw_budget_init(&b, 20, 0, 0);
    /* nothing heard yet: one chunk (2% of 20, at least 1) may be owed */
    assert_int_equal(sky__gw_lease_take(&b, 10, 0, &v), 0);
    assert_int_equal(v.reqs_left, 19);
    assert_int_equal(sky__gw_lease_take(&b, 10, 0, &v), -1);
    assert_int_equal(v.refused, GW_BUDGET_REQUESTS);
    assert_true(v.retry_ms >= 1);
    /* the lease asks for a chunk and the debt, one at a time */
    assert_int_equal(sky__gw_lease_due(&b, 10, &ask), 1);
    assert_int_equal(ask.want_reqs, 2);
    assert_true(ask.rpm == 20 && ask.tpm == 0);
    assert_int_equal(sky__gw_lease_due(&b, 10, &ask), 0);
    sky__store_lease_answer a = answer(2, 0, 17, 0, 0);
    sky__gw_lease_answered(&b, 12, &ask, &a);
    assert_int_equal(sky__gw_lease_take(&b, 13, 0, &v), 0);
    assert_int_equal(v.reqs_left, 17); /* the shared bucket's level, the lease spent */
    assert_int_equal(sky__gw_lease_due(&b, 13, &ask), 1);
    assert_int_equal(ask.want_reqs, 1);
}

static void test_empty_shared_bucket_refuses_until_its_wait(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__store_lease_ask ask;
    lease_once(&b, 20, 0, &ask, 0, answer(0, 0, 0, 0, 3000), 100); /* the others took it all */
    assert_int_equal(sky__gw_lease_take(&b, 600, 0, &v), -1);
    assert_int_equal(v.refused, GW_BUDGET_REQUESTS);
    assert_int_equal(v.retry_ms, 2500);
    assert_int_equal(v.reqs_left, 0);
    assert_int_equal(v.reqs_reset_ms, 60000 - 500);
    /* asked again after the wait, but at least every second */
    assert_int_equal(sky__gw_lease_due(&b, 1099, &ask), 0);
    assert_int_equal(sky__gw_lease_due(&b, 1100, &ask), 1);
    sky__store_lease_answer a = answer(1, 0, 0, 0, 0);
    sky__gw_lease_answered(&b, 1101, &ask, &a);
    assert_int_equal(sky__gw_lease_take(&b, 1102, 0, &v), 0);
    assert_int_equal(sky__gw_lease_take(&b, 1102, 0, &v), -1);
}

static void test_tokens_leased_and_settlements_go_back(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__store_lease_ask ask;
    sky__gw_budget_init(&b, 0, 1000, 0); /* a chunk: 20 tokens */
    assert_int_equal(sky__gw_lease_take(&b, 1, 100, &v), 0);
    assert_int_equal(v.charged, 100);
    assert_int_equal(sky__gw_lease_due(&b, 1, &ask), 1);
    assert_int_equal(ask.want_toks, 120);
    assert_int_equal(ask.want_reqs, 0);
    sky__store_lease_answer a = answer(0, 120, 0, 780, 0);
    sky__gw_lease_answered(&b, 2, &ask, &a);
    /* the reply used 30 of the 100 charged: 70 go back with the next lease */
    sky__gw_budget_settle(&b, 100, 30);
    assert_int_equal(sky__gw_lease_due(&b, 3, &ask), 1);
    assert_int_equal(ask.give_toks, 70);
    assert_int_equal(ask.want_toks, 0);
    a = answer(0, 0, 0, 850, 0);
    sky__gw_lease_answered(&b, 4, &ask, &a);
    /* a charge larger than the lease and the bucket's last level: refused, and asked for */
    assert_int_equal(sky__gw_lease_take(&b, 5, 900, &v), -1);
    assert_int_equal(v.refused, GW_BUDGET_TOKENS);
    assert_int_equal(sky__gw_lease_due(&b, 5, &ask), 1);
    assert_int_equal(ask.want_toks, 880);
}

static void test_redis_away_falls_back_to_the_local_bucket(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__store_lease_ask ask;
    sky__gw_budget_init(&b, 60, 0, 0); /* a chunk: 2 */
    assert_int_equal(sky__gw_lease_due(&b, 0, &ask), 1);
    assert_int_equal(ask.want_reqs, 2);
    sky__store_lease_answer a = answer(2, 0, 10, 0, 0);
    sky__gw_lease_answered(&b, 1, &ask, &a);
    assert_int_equal(sky__gw_lease_take(&b, 2, 0, &v), 0);
    assert_int_equal(sky__gw_lease_due(&b, 2, &ask), 0); /* half a chunk left */
    assert_int_equal(sky__gw_lease_take(&b, 2, 0, &v), 0);
    assert_int_equal(sky__gw_lease_due(&b, 2, &ask), 1);
    sky__gw_lease_failed(&b, 3, &ask);
    assert_int_equal(b.lease.state, GW_LEASE_LOCAL);
    /* the local bucket goes on from what this gateway knew the shared one had */
    for (int i = 0; i < 10; i++)
        assert_int_equal(sky__gw_budget_take(&b, 3, 0, &v), 0);
    assert_int_equal(sky__gw_budget_take(&b, 3, 0, &v), -1);
    /* asked again a second later; its answer starts the lease over */
    assert_int_equal(sky__gw_lease_due(&b, 1002, &ask), 0);
    assert_int_equal(sky__gw_lease_due(&b, 1003, &ask), 1);
    assert_int_equal(ask.want_reqs, 2);
    a = answer(2, 0, 30, 0, 0);
    sky__gw_lease_answered(&b, 1004, &ask, &a);
    assert_int_equal(b.lease.state, GW_LEASE_SHARED);
    assert_int_equal(sky__gw_lease_take(&b, 1005, 0, &v), 0);
    assert_int_equal(v.reqs_left, 31);
}

static void test_answer_for_old_limits_is_dropped(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__store_lease_ask ask;
    sky__gw_budget_init(&b, 60, 0, 0);
    assert_int_equal(sky__gw_lease_due(&b, 0, &ask), 1);
    sky__gw_budget_init(&b, 120, 0, 0); /* the key's limits changed meanwhile */
    sky__store_lease_answer a = answer(2, 0, 58, 0, 0);
    sky__gw_lease_answered(&b, 1, &ask, &a);
    assert_int_equal(b.lease.state, GW_LEASE_NEW);
    assert_int_equal(sky__gw_lease_take(&b, 1, 0, &v), 0);
    assert_int_equal(v.reqs_left, 119);
}

static void test_refused_for_the_debt_waits_for_the_lease(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__store_lease_ask ask;
    sky__gw_budget_init(&b, 20, 1000, 0);
    assert_int_equal(sky__gw_lease_take(&b, 1, 10, &v), 0); /* ahead of the first lease */
    assert_int_equal(sky__gw_lease_take(&b, 1, 10, &v), -1);
    assert_int_equal(sky__gw_lease_awaited(&b, 10), 0); /* no lease on its way: it stands */
    assert_int_equal(sky__gw_lease_due(&b, 1, &ask), 1);
    assert_int_equal(sky__gw_lease_take(&b, 2, 10, &v), -1);
    assert_int_equal(sky__gw_lease_awaited(&b, 10), 1); /* the debt's bound only: it waits */
    sky__store_lease_answer a = answer(2, 40, 17, 950, 0);
    sky__gw_lease_answered(&b, 5, &ask, &a);
    assert_int_equal(sky__gw_lease_take(&b, 5, 10, &v), 0); /* decided again: let through */
    /* a bucket without room at its last answer: refused, lease on its way or not */
    lease_once(&b, 20, 0, &ask, 0, answer(0, 0, 0, 0, 3000), 1);
    assert_int_equal(sky__gw_lease_due(&b, 1001, &ask), 1);
    assert_int_equal(sky__gw_lease_take(&b, 1001, 0, &v), -1);
    assert_int_equal(sky__gw_lease_awaited(&b, 0), 0);
    /* Redis away: the local bucket decides alone, nothing to wait for */
    sky__gw_lease_failed(&b, 1002, &ask);
    b.lease.leasing = 1;
    assert_int_equal(sky__gw_lease_awaited(&b, 0), 0);
}

static void test_near_the_bottom_nothing_is_leased_ahead(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__store_lease_ask ask;
    lease_once(&b, 20, 0, &ask, 0, answer(1, 0, 3, 0, 0), 1); /* a chunk: 1; ahead only above 4 */
    assert_int_equal(sky__gw_lease_take(&b, 2, 0, &v), 0);
    assert_int_equal(sky__gw_lease_due(&b, 2, &ask), 0);   /* not held idle: the others' */
    assert_int_equal(sky__gw_lease_take(&b, 3, 0, &v), 0); /* ahead of its own lease */
    assert_int_equal(sky__gw_lease_due(&b, 3, &ask), 1);
    assert_int_equal(ask.want_reqs, 1); /* what is owed, no more */
    sky__store_lease_answer a = answer(1, 0, 1, 0, 0);
    sky__gw_lease_answered(&b, 4, &ask, &a);
    assert_int_equal(sky__gw_lease_due(&b, 4, &ask), 0);
    /* the bucket seen empty: asked again to see it refill */
    assert_int_equal(sky__gw_lease_take(&b, 5, 0, &v), 0);
    assert_int_equal(sky__gw_lease_due(&b, 5, &ask), 1);
    a = answer(1, 0, 0, 0, 2000);
    sky__gw_lease_answered(&b, 6, &ask, &a);
    assert_int_equal(sky__gw_lease_due(&b, 1005, &ask), 0);
    assert_int_equal(sky__gw_lease_due(&b, 1006, &ask), 1);
    assert_int_equal(ask.want_reqs, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_call_goes_ahead_of_the_first_lease),
        cmocka_unit_test(test_empty_shared_bucket_refuses_until_its_wait),
        cmocka_unit_test(test_tokens_leased_and_settlements_go_back),
        cmocka_unit_test(test_redis_away_falls_back_to_the_local_bucket),
        cmocka_unit_test(test_answer_for_old_limits_is_dropped),
        cmocka_unit_test(test_refused_for_the_debt_waits_for_the_lease),
        cmocka_unit_test(test_near_the_bottom_nothing_is_leased_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
