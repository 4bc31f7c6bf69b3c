/* Tests for histograms, counters, gauges and the metrics registry. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/metrics.h"

/* A histogram is 5 KiB; keep it off the test's stack. */
static sky_histogram *hist_new(void)
{
    sky_histogram *h = malloc(sizeof(*h));
    assert_non_null(h);
    sky_histogram_init(h);
    return h;
}

/* @p got is within 1/SKY_HIST_SUB of @p want. */
static void assert_close(uint64_t got, uint64_t want)
{
    double err = fabs((double)got - (double)want) / (double)want;
    if (err > 1.0 / SKY_HIST_SUB)
        fail_msg("got %llu, want %llu (+-%.1f%%)", (unsigned long long)got,
                 (unsigned long long)want, 100.0 / SKY_HIST_SUB);
}

static void test_empty_histogram(void **state)
{
    (void)state;
    sky_histogram *h = hist_new();
    assert_int_equal(h->count, 0);
    assert_int_equal(sky_histogram_percentile(h, 50), 0);
    assert_int_equal(sky_histogram_percentile(h, 100), 0);
    assert_true(sky_histogram_mean(h) == 0.0);
    free(h);
}

static void test_small_values_are_exact(void **state)
{
    (void)state;
    sky_histogram *h = hist_new();
    for (uint64_t v = 0; v < SKY_HIST_SUB * 2; v++)
        sky_histogram_record(h, v);
    /* below 2 * SKY_HIST_SUB every bucket holds one value */
    for (uint64_t v = 0; v < SKY_HIST_SUB * 2; v++) {
        double p = 100.0 * (double)(v + 1) / (double)(SKY_HIST_SUB * 2);
        assert_int_equal(sky_histogram_percentile(h, p), v);
    }
    free(h);
}

static void test_uniform_percentiles(void **state)
{
    (void)state;
    sky_histogram *h = hist_new();
    for (uint64_t v = 1; v <= 100000; v++)
        sky_histogram_record(h, v);
    assert_int_equal(h->count, 100000);
    assert_int_equal(h->min, 1);
    assert_int_equal(h->max, 100000);
    assert_close(sky_histogram_percentile(h, 50), 50000);
    assert_close(sky_histogram_percentile(h, 90), 90000);
    assert_close(sky_histogram_percentile(h, 99), 99000);
    assert_close(sky_histogram_percentile(h, 99.9), 99900);
    assert_close(sky_histogram_percentile(h, 1), 1000);
    assert_int_equal(sky_histogram_percentile(h, 0), 1);
    assert_int_equal(sky_histogram_percentile(h, 100), 100000);
    assert_true(fabs(sky_histogram_mean(h) - 50000.5) < 1e-6);
    free(h);
}

/* The percentile is an upper bound: at least p% of values are at or below it. */
static void test_percentile_is_upper_bound(void **state)
{
    (void)state;
    sky_histogram *h = hist_new();
    for (uint64_t v = 1000; v < 1000000; v += 997)
        sky_histogram_record(h, v);
    for (double p = 1; p < 100; p += 7) {
        uint64_t q = sky_histogram_percentile(h, p);
        uint64_t below = 0;
        for (uint64_t v = 1000; v < 1000000; v += 997)
            below += v <= q;
        assert_true((double)below >= p / 100.0 * (double)h->count);
    }
    free(h);
}

static void test_bimodal(void **state)
{
    (void)state;
    sky_histogram *h = hist_new();
    for (int i = 0; i < 900; i++)
        sky_histogram_record(h, 2000);
    for (int i = 0; i < 100; i++)
        sky_histogram_record(h, 300000);
    assert_close(sky_histogram_percentile(h, 50), 2000);
    assert_close(sky_histogram_percentile(h, 90), 2000);
    assert_close(sky_histogram_percentile(h, 91), 300000);
    assert_close(sky_histogram_percentile(h, 99), 300000);
    free(h);
}

static void test_single_value_clamped(void **state)
{
    (void)state;
    sky_histogram *h = hist_new();
    sky_histogram_record(h, 123457);
    /* the bucket's bound is clamped to [min, max], so one value comes back exactly */
    assert_int_equal(sky_histogram_percentile(h, 50), 123457);
    assert_int_equal(sky_histogram_percentile(h, 99), 123457);
    assert_true(sky_histogram_mean(h) == 123457.0);
    free(h);
}

static void test_huge_values(void **state)
{
    (void)state;
    sky_histogram *h = hist_new();
    sky_histogram_record(h, 10);
    sky_histogram_record(h, (uint64_t)1 << 40);
    sky_histogram_record(h, UINT64_MAX);
    sky_histogram_record(h, UINT64_MAX);
    assert_int_equal(h->max, UINT64_MAX);
    assert_int_equal(h->min, 10);
    assert_int_equal(sky_histogram_percentile(h, 25), 10);
    assert_close(sky_histogram_percentile(h, 50), (uint64_t)1 << 40);
    assert_true(sky_histogram_percentile(h, 99) == UINT64_MAX);
    /* the sum saturates instead of wrapping to a small number */
    assert_true(h->sum == UINT64_MAX);
    assert_true(sky_histogram_mean(h) > 1e18);
    free(h);
}

static void test_merge(void **state)
{
    (void)state;
    sky_histogram *a = hist_new();
    sky_histogram *b = hist_new();
    sky_histogram *all = hist_new();
    for (uint64_t v = 1; v <= 50000; v++) {
        sky_histogram_record(a, v);
        sky_histogram_record(all, v);
    }
    for (uint64_t v = 50001; v <= 100000; v++) {
        sky_histogram_record(b, v);
        sky_histogram_record(all, v);
    }
    sky_histogram_merge(a, b);
    assert_int_equal(a->count, 100000);
    assert_int_equal(a->min, 1);
    assert_int_equal(a->max, 100000);
    assert_true(a->sum == all->sum);
    assert_memory_equal(a->buckets, all->buckets, sizeof(a->buckets));
    assert_close(sky_histogram_percentile(a, 50), 50000);
    free(a);
    free(b);
    free(all);
}

static void test_merge_with_empty(void **state)
{
    (void)state;
    sky_histogram *a = hist_new();
    sky_histogram *empty = hist_new();
    sky_histogram_record(a, 500);
    sky_histogram_merge(a, empty);
    assert_int_equal(a->count, 1);
    assert_int_equal(a->min, 500);
    sky_histogram_merge(empty, a);
    assert_int_equal(empty->count, 1);
    assert_int_equal(empty->min, 500);
    assert_int_equal(empty->max, 500);
    free(a);
    free(empty);
}

static void test_counter_and_gauge(void **state)
{
    (void)state;
    sky_counter c = {0};
    sky_counter_add(&c, 3);
    sky_counter_add(&c, 4);
    assert_int_equal(c.value, 7);
    sky_gauge g = {0};
    sky_gauge_set(&g, 10);
    sky_gauge_add(&g, -15);
    assert_int_equal(g.value, -5);
}

static void test_registry_stable_pointers(void **state)
{
    (void)state;
    sky_metrics *m = sky_metrics_new();
    assert_non_null(m);
    sky_counter *c = sky_metrics_counter(m, "requests");
    assert_non_null(c);
    sky_counter_add(c, 2);
    /* many more entries must not move the first one */
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        assert_non_null(sky_metrics_histogram(m, name));
    }
    assert_ptr_equal(sky_metrics_counter(m, "requests"), c);
    assert_int_equal(c->value, 2);
    sky_metrics_free(m);
}

static void test_registry_kind_conflict(void **state)
{
    (void)state;
    sky_metrics *m = sky_metrics_new();
    assert_non_null(sky_metrics_gauge(m, "x"));
    assert_null(sky_metrics_counter(m, "x"));
    assert_null(sky_metrics_histogram(m, "x"));
    assert_non_null(sky_metrics_gauge(m, "x"));
    assert_null(sky_metrics_counter(m, NULL));
    assert_null(sky_metrics_counter(NULL, "y"));
    sky_metrics_free(m);
    sky_metrics_free(NULL);
}

static void test_registry_json(void **state)
{
    (void)state;
    sky_metrics *m = sky_metrics_new();
    sky_counter_add(sky_metrics_counter(m, "requests"), 42);
    sky_gauge_set(sky_metrics_gauge(m, "in_flight"), -3);
    sky_histogram *h = sky_metrics_histogram(m, "latency_us");
    for (uint64_t v = 1; v <= 1000; v++)
        sky_histogram_record(h, v);
    sky_metrics_histogram(m, "idle");

    json_t *j = sky_metrics_to_json(m);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "requests")), 42);
    assert_int_equal(json_integer_value(json_object_get(j, "in_flight")), -3);
    json_t *lat = json_object_get(j, "latency_us");
    assert_true(json_is_object(lat));
    assert_int_equal(json_integer_value(json_object_get(lat, "count")), 1000);
    assert_int_equal(json_integer_value(json_object_get(lat, "min")), 1);
    assert_int_equal(json_integer_value(json_object_get(lat, "max")), 1000);
    assert_true(fabs(json_number_value(json_object_get(lat, "mean")) - 500.5) < 1e-9);
    assert_close((uint64_t)json_integer_value(json_object_get(lat, "p50")), 500);
    assert_close((uint64_t)json_integer_value(json_object_get(lat, "p90")), 900);
    assert_close((uint64_t)json_integer_value(json_object_get(lat, "p99")), 990);
    json_t *idle = json_object_get(j, "idle");
    assert_int_equal(json_integer_value(json_object_get(idle, "count")), 0);
    assert_int_equal(json_integer_value(json_object_get(idle, "p99")), 0);
    /* creation order is kept */
    const char *first = json_object_iter_key(json_object_iter(j));
    assert_string_equal(first, "requests");
    json_decref(j);
    sky_metrics_free(m);
}

static void test_registry_json_huge_counter(void **state)
{
    (void)state;
    sky_metrics *m = sky_metrics_new();
    sky_counter_add(sky_metrics_counter(m, "c"), UINT64_MAX);
    json_t *j = sky_metrics_to_json(m);
    assert_true(json_integer_value(json_object_get(j, "c")) == INT64_MAX);
    json_decref(j);
    sky_metrics_free(m);
}

static void test_registry_json_empty(void **state)
{
    (void)state;
    sky_metrics *m = sky_metrics_new();
    json_t *j = sky_metrics_to_json(m);
    assert_true(json_is_object(j));
    assert_int_equal(json_object_size(j), 0);
    json_decref(j);
    sky_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_histogram),
        cmocka_unit_test(test_small_values_are_exact),
        cmocka_unit_test(test_uniform_percentiles),
        cmocka_unit_test(test_percentile_is_upper_bound),
        cmocka_unit_test(test_bimodal),
        cmocka_unit_test(test_single_value_clamped),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_with_empty),
        cmocka_unit_test(test_counter_and_gauge),
        cmocka_unit_test(test_registry_stable_pointers),
        cmocka_unit_test(test_registry_kind_conflict),
        cmocka_unit_test(test_registry_json),
        cmocka_unit_test(test_registry_json_huge_counter),
        cmocka_unit_test(test_registry_json_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
