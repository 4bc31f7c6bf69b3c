/* Tests for what the gateway makes of a call's usage: its cost at the model's price (cached
 * prompt tokens apart), and a key's daily caps (time given as an argument). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"

#define DAY 86400000LL
#define NOON (20000 * DAY + DAY / 2) /* a day's noon, UTC */

static void test_cost_at_the_models_price(void **state)
{
    (void)state;
    gw_model models[2];
    memset(models, 0, sizeof(models));
    models[0].name = "gpt-4o";
    models[1].name = "llama";
    gw_table t;
    memset(&t, 0, sizeof(t));
    t.models = models;
    t.n_models = 2;
    sky_gateway_price prices[] = {{"gpt-4o", 2.5, 10, 1.25}, {"not-served", 1, 1, -1}};
    sky_error err;
    assert_int_equal(sky__gw_prices_set(&t, prices, 2, &err), 0);
    int priced = -1;
    gw_tokens used = {1000000, 100000, 1100000, -1};
    assert_float_equal(sky__gw_cost(&t, &models[0], &used, &priced), 2.5 + 1.0, 1e-9);
    assert_int_equal(priced, 1);
    /* half the prompt from the upstream's cache: priced at the cached rate */
    used.cached = 500000;
    assert_float_equal(sky__gw_cost(&t, &models[0], &used, &priced), 1.25 + 0.625 + 1.0, 1e-9);
    /* no price: 0, and said */
    assert_float_equal(sky__gw_cost(&t, &models[1], &used, &priced), 0, 0);
    assert_int_equal(priced, 0);
    assert_float_equal(sky__gw_cost(&t, NULL, &used, &priced), 0, 0);
    /* unknown tokens cost nothing */
    used = (gw_tokens){-1, -1, -1, -1};
    assert_float_equal(sky__gw_cost(&t, &models[0], &used, &priced), 0, 0);
    free(t.prices);
}

static void test_cached_tokens_of_replies(void **state)
{
    (void)state;
    gw_tokens t = {-1, -1, -1, -1};
    sky__gw_tokens_read(sky_span_cstr("{\"usage\":{\"prompt_tokens\":2006,\"completion_tokens\":"
                                      "300,\"total_tokens\":2306,\"prompt_tokens_details\":{"
                                      "\"cached_tokens\":1920}}}"),
                        &t);
    assert_int_equal(t.prompt, 2006);
    assert_int_equal(t.cached, 1920);
    t = (gw_tokens){-1, -1, -1, -1};
    sky__gw_tokens_read(sky_span_cstr("{\"response\":{\"usage\":{\"input_tokens\":50,"
                                      "\"input_tokens_details\":{\"cached_tokens\":40},"
                                      "\"output_tokens\":5}}}"),
                        &t);
    assert_int_equal(t.cached, 40);
    assert_int_equal(t.completion, 5);
    /* a cached_tokens outside a usage's details is not one */
    t = (gw_tokens){-1, -1, -1, -1};
    sky__gw_tokens_read(sky_span_cstr("{\"cached_tokens\":7,\"prompt_tokens_details\":{"
                                      "\"cached_tokens\":8},\"usage\":{\"prompt_tokens\":1}}"),
                        &t);
    assert_int_equal(t.cached, -1);
}

static void test_daily_tokens_cap_until_midnight(void **state)
{
    (void)state;
    gw_budget b;
    memset(&b, 0, sizeof(b));
    gw_key k;
    memset(&k, 0, sizeof(k));
    char name[] = "ci";
    k.name = name;
    k.daily_tokens = 100;
    gw_daily_view v;
    assert_int_equal(sky__gw_daily_check(&b, &k, NOON, &v), 0);
    sky__gw_daily_add(&b, NOON, 60, 0);
    assert_int_equal(sky__gw_daily_check(&b, &k, NOON + 1, &v), 0); /* under: let through */
    sky__gw_daily_add(&b, NOON + 1, 60, 0);
    assert_int_equal(sky__gw_daily_check(&b, &k, NOON + 2, &v), -1);
    assert_int_equal(v.refused, GW_DAILY_TOKENS);
    assert_float_equal(v.limit, 100, 0);
    assert_float_equal(v.used, 120, 0);
    assert_int_equal(v.reset_ms, DAY / 2 - 2); /* to midnight UTC */
    /* a new day starts from nothing */
    assert_int_equal(sky__gw_daily_check(&b, &k, NOON + DAY / 2, &v), 0);
    assert_int_equal(b.day_tokens, 0);
}

static void test_daily_cost_cap_and_shared_counts(void **state)
{
    (void)state;
    gw_budget b;
    memset(&b, 0, sizeof(b));
    gw_key k;
    memset(&k, 0, sizeof(k));
    char name[] = "team";
    k.name = name;
    k.daily_cost = 1.5;
    gw_daily_view v;
    sky__gw_daily_add(&b, NOON, 1000, 1.0);
    assert_int_equal(sky__gw_daily_check(&b, &k, NOON, &v), 0);
    /* another gateway's use, counted in the shared counter: the larger sum holds */
    sky__gw_daily_seen(&b, NOON / DAY, -1, 1.6);
    assert_int_equal(sky__gw_daily_check(&b, &k, NOON, &v), -1);
    assert_int_equal(v.refused, GW_DAILY_COST);
    sky__gw_daily_seen(&b, NOON / DAY, 10, 0.5); /* less than known: kept as it was */
    assert_int_equal(b.day_tokens, 1000);
    assert_float_equal(b.day_cost, 1.6, 1e-9);
    sky__gw_daily_seen(&b, NOON / DAY - 1, 1 << 20, 99); /* yesterday's: ignored */
    assert_int_equal(b.day_tokens, 1000);
    /* a key without caps is never refused */
    k.daily_cost = 0;
    assert_int_equal(sky__gw_daily_check(&b, &k, NOON, &v), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_at_the_models_price),
        cmocka_unit_test(test_cached_tokens_of_replies),
        cmocka_unit_test(test_daily_tokens_cap_until_midnight),
        cmocka_unit_test(test_daily_cost_cap_and_shared_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
