/* Tests for the live page's history (time given as an argument): calls land in their
 * 5-second slot, a model adds up its deployments, old slots age out, latency quantiles,
 * the loops' worst lag per slot. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "gateway/internal.h"

#define T0 (UINT64_C(1000) * GW_HISTORY_SLOT_MS) /* the start of a slot */

static void count(gw_history *h, const char *model, const char *dep, int status, double ms,
                  uint64_t now_ms)
{
    gw_record r = {.model = model, .deployment = dep, .status = status};
    r.total_ns = (uint64_t)(ms * 1e6);
    sky__gw_history_count(h, &r, now_ms);
}

static void test_calls_land_in_their_slot(void **state)
{
    (void)state;
    gw_history *h = sky__gw_history_new();
    gw_history_slot s[GW_HISTORY_SLOTS];
    assert_non_null(h);
    count(h, "m", "m#0", 200, 3, T0);
    count(h, "m", "m#0", 429, 3, T0 + 4999);
    count(h, "m", "m#1", 503, 3, T0 + GW_HISTORY_SLOT_MS);
    count(h, "m", NULL, 502, 3, T0 + GW_HISTORY_SLOT_MS); /* reached no deployment */
    count(h, NULL, NULL, 404, 3, T0);                     /* no model: not counted */
    sky__gw_history_collect(h, "m", "m#0", T0 + GW_HISTORY_SLOT_MS, s);
    assert_int_equal(s[GW_HISTORY_SLOTS - 2].requests, 2);
    assert_int_equal(s[GW_HISTORY_SLOTS - 2].throttled, 1);
    assert_int_equal(s[GW_HISTORY_SLOTS - 2].errors, 0);
    assert_int_equal(s[GW_HISTORY_SLOTS - 1].requests, 0);
    sky__gw_history_collect(h, "m", NULL, T0 + GW_HISTORY_SLOT_MS, s);
    assert_int_equal(s[GW_HISTORY_SLOTS - 2].requests, 2);
    assert_int_equal(s[GW_HISTORY_SLOTS - 1].requests, 2);
    assert_int_equal(s[GW_HISTORY_SLOTS - 1].errors, 2);
    sky__gw_history_collect(h, "other", NULL, T0, s);
    for (int i = 0; i < GW_HISTORY_SLOTS; i++)
        assert_int_equal(s[i].requests, 0);
    sky__gw_history_free(h);
}

static void test_old_slots_age_out(void **state)
{
    (void)state;
    gw_history *h = sky__gw_history_new();
    gw_history_slot s[GW_HISTORY_SLOTS];
    const uint64_t span = (uint64_t)GW_HISTORY_SLOTS * GW_HISTORY_SLOT_MS;
    count(h, "m", "m#0", 200, 3, T0);
    sky__gw_history_collect(h, "m", NULL, T0 + span - 1, s);
    assert_int_equal(s[0].requests, 1); /* the oldest slot shown */
    sky__gw_history_collect(h, "m", NULL, T0 + span, s);
    for (int i = 0; i < GW_HISTORY_SLOTS; i++)
        assert_int_equal(s[i].requests, 0);
    /* the same place in the ring, a new slot: it starts from nothing */
    count(h, "m", "m#0", 200, 3, T0 + span);
    sky__gw_history_collect(h, "m", NULL, T0 + span, s);
    assert_int_equal(s[GW_HISTORY_SLOTS - 1].requests, 1);
    sky__gw_history_free(h);
}

static void test_latency_quantiles(void **state)
{
    (void)state;
    gw_history *h = sky__gw_history_new();
    gw_history_slot s[GW_HISTORY_SLOTS];
    for (int i = 0; i < 9; i++)
        count(h, "m", "m#0", 200, 3, T0); /* bucket (2, 4] ms */
    count(h, "m", "m#0", 200, 100, T0);   /* bucket (64, 128] ms */
    sky__gw_history_collect(h, "m", NULL, T0, s);
    const gw_history_slot *last = &s[GW_HISTORY_SLOTS - 1];
    double p50 = sky__gw_history_quantile(last, 0.5), p99 = sky__gw_history_quantile(last, 0.99);
    assert_true(p50 > 2 && p50 <= 4);
    assert_true(p99 > 64 && p99 <= 128);
    assert_true(sky__gw_history_quantile(&s[0], 0.5) < 0); /* no calls: none */
    sky__gw_history_free(h);
}

static void test_loop_lag_worst_per_slot(void **state)
{
    (void)state;
    gw_history *h = sky__gw_history_new();
    double v[GW_HISTORY_SLOTS];
    sky__gw_history_lag(h, 0.002, T0);
    sky__gw_history_lag(h, 0.010, T0 + 100);
    sky__gw_history_lag(h, 0.001, T0 + 200);
    sky__gw_history_lag(h, 0.003, T0 + GW_HISTORY_SLOT_MS);
    sky__gw_history_lag_collect(h, T0 + GW_HISTORY_SLOT_MS, v);
    assert_true(v[GW_HISTORY_SLOTS - 2] > 9.99 && v[GW_HISTORY_SLOTS - 2] < 10.01);
    assert_true(v[GW_HISTORY_SLOTS - 1] > 2.99 && v[GW_HISTORY_SLOTS - 1] < 3.01);
    assert_true(v[0] < 0); /* no tick then */
    sky__gw_history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_land_in_their_slot),
        cmocka_unit_test(test_old_slots_age_out),
        cmocka_unit_test(test_latency_quantiles),
        cmocka_unit_test(test_loop_lag_worst_per_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
