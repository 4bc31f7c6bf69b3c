/* Tests for the routing module (skyio/route.h): models and fallbacks, the failover rule,
 * and the pick by headroom over real pipelines (nothing is sent). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "skyio/clock.h"
#include "skyio/route.h"

static void test_models_grouped_in_order(void **state)
{
    (void)state;
    const char *names[] = {"a", "b", "a", "c"};
    const char *to_b[] = {"b", "c"};
    sky_route_fallback fb = {"a", to_b, 2};
    sky_route_models m;
    assert_int_equal(sky_route_models_new(names, 4, &fb, 1, &m, NULL), 0);
    assert_int_equal(m.n_models, 3);
    const sky_route_model *a = sky_route_model_find(&m, sky_span_cstr("a"));
    assert_non_null(a);
    assert_int_equal(a->n_deps, 2);
    assert_int_equal(a->deps[0], 0);
    assert_int_equal(a->deps[1], 2);
    assert_int_equal(a->n_fallbacks, 2);
    assert_string_equal(m.models[a->fallbacks[0]].name, "b");
    assert_string_equal(m.models[a->fallbacks[1]].name, "c");
    assert_null(sky_route_model_find(&m, sky_span_cstr("d")));
    sky_route_models_free(&m);
}

static void refused(const sky_route_fallback *fb, const char *why)
{
    const char *names[] = {"a", "b"};
    sky_route_models m;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_route_models_new(names, 2, fb, 1, &m, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, why));
    sky_route_models_free(&m);
}

static void test_bad_fallbacks_refused(void **state)
{
    (void)state;
    const char *self[] = {"a"}, *unknown[] = {"z"};
    refused(&(sky_route_fallback){"a", self, 1}, "not another model");
    refused(&(sky_route_fallback){"a", unknown, 1}, "not another model");
    refused(&(sky_route_fallback){"z", self, 1}, "no model z");
}

static void test_failover_rule(void **state)
{
    (void)state;
    sky_error e;
    int yes[] = {401, 403, 408, 409, 429, 500, 502, 503, 504, 529};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        sky_error_clear(&e);
        sky_error_set(&e, SKY_EHTTP, "HTTP %d", yes[i]);
        assert_true(sky_route_worth_another(yes[i], &e));
    }
    int no[] = {400, 404, 413, 422};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        sky_error_clear(&e);
        sky_error_set(&e, SKY_EHTTP, "HTTP %d", no[i]);
        assert_false(sky_route_worth_another(no[i], &e));
    }
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECONNECT, "refused");
    assert_true(sky_route_worth_another(0, &e));
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ETIMEDOUT, "slow");
    assert_true(sky_route_worth_another(0, &e));
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECANCELED, "canceled");
    assert_false(sky_route_worth_another(0, &e));
}

/* ---- the pick, over pipelines that never send ---- */

typedef struct fixture {
    uv_loop_t loop;
    sky_http_client *http;
    sky_pipeline *pipe[3];
    sky_route_target t[3];
    sky_route_target *targets[3];
} fixture;

/* Pipeline @p i with a known rate of @p rpm (0: none) and a fixed concurrency of @p slots. */
static void add_target(fixture *f, int i, double rpm, int slots, double weight)
{
    sky_pipeline_options po;
    sky_pipeline_options_init(&po);
    po.rate.rpm = rpm;
    po.rate.learn = 0;
    po.concurrency.kind = SKY_LIMITER_FIXED;
    po.concurrency.initial = po.concurrency.max = slots;
    assert_int_equal(sky_pipeline_new(&f->loop, f->http, &po, &f->pipe[i]), 0);
    memset(&f->t[i], 0, sizeof(f->t[i]));
    f->t[i].pipe = f->pipe[i];
    f->t[i].weight = weight;
    f->targets[i] = &f->t[i];
}

static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(sky_http_client_new(&f->loop, NULL, &f->http), 0);
}

static void fixture_free(fixture *f)
{
    for (int i = 0; i < 3; i++)
        sky_pipeline_free(f->pipe[i]);
    sky_http_client_free(f->http);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void test_pick_goes_where_the_rate_has_room(void **state)
{
    (void)state;
    fixture f;
    uint64_t rng = 7, now = 1000;
    fixture_init(&f);
    add_target(&f, 0, 60, 100, 1);   /* one request a second */
    add_target(&f, 1, 6000, 100, 1); /* a hundred */
    /* a's one-second bucket is spent by its first call: every later pick is b's */
    int first = sky_route_pick(f.targets, 2, 0, 0, now, &rng);
    sky_route_charge(&f.t[first], 0);
    if (first == 1) {
        while (sky_route_pick(f.targets, 2, 0, 0, now, &rng) == 1)
            sky_route_charge(&f.t[1], 0);
        sky_route_charge(&f.t[0], 0);
    }
    for (int i = 0; i < 50; i++) {
        int at = sky_route_pick(f.targets, 2, 0, 0, now, &rng);
        assert_int_equal(at, 1);
        sky_route_charge(&f.t[at], 0);
    }
    /* a second later a has room again */
    int seen_a = 0;
    for (int i = 0; i < 200 && !seen_a; i++)
        seen_a = sky_route_pick(f.targets, 2, 0, 0, now + 1000, &rng) == 0;
    assert_true(seen_a);
    fixture_free(&f);
}

static void test_pick_goes_where_a_slot_is_free(void **state)
{
    (void)state;
    fixture f;
    uint64_t rng = 11;
    fixture_init(&f);
    add_target(&f, 0, 0, 1, 1);
    add_target(&f, 1, 0, 1, 1);
    assert_true(sky_limiter_try_acquire(sky_pipeline_limiter(f.pipe[0])));
    for (int i = 0; i < 50; i++)
        assert_int_equal(sky_route_pick(f.targets, 2, 0, 0, 1000, &rng), 1);
    /* both full: drawn by weight among the full ones */
    assert_true(sky_limiter_try_acquire(sky_pipeline_limiter(f.pipe[1])));
    int at = sky_route_pick(f.targets, 2, 0, 0, 1000, &rng);
    assert_true(at == 0 || at == 1);
    sky_limiter_release(sky_pipeline_limiter(f.pipe[0]), SKY_LIMIT_IGNORE, 0);
    sky_limiter_release(sky_pipeline_limiter(f.pipe[1]), SKY_LIMIT_IGNORE, 0);
    fixture_free(&f);
}

static void test_pick_skips_tried_and_keeps_standby(void **state)
{
    (void)state;
    fixture f;
    uint64_t rng = 3;
    fixture_init(&f);
    add_target(&f, 0, 0, 10, 1);
    add_target(&f, 1, 0, 10, 0); /* a standby */
    add_target(&f, 2, 0, 10, 1);
    for (int i = 0; i < 50; i++)
        assert_int_not_equal(sky_route_pick(f.targets, 3, 0, 0, 1000, &rng), 1);
    assert_int_equal(sky_route_pick(f.targets, 3, 1u << 0 | 1u << 2, 0, 1000, &rng), 1);
    assert_int_equal(sky_route_pick(f.targets, 3, 7, 0, 1000, &rng), -1);
    /* a closed deployment is never picked */
    f.t[0].pipe = NULL;
    assert_false(sky_route_usable(&f.t[0]));
    assert_int_equal(sky_route_pick(f.targets, 3, 1u << 1 | 1u << 2, 0, 1000, &rng), -1);
    fixture_free(&f);
}

/* The router reads a limiter without charging it: peek says what acquire would. */
static void test_peek_says_what_acquire_would(void **state)
{
    (void)state;
    sky_fake_clock clk;
    sky_ratelimit *rl;
    sky_ratelimit_options o;
    sky_fake_clock_init(&clk, 0, INT64_C(1767225600000));
    sky_ratelimit_options_init(&o);
    o.rpm = 60;
    o.learn = 0;
    assert_int_equal(sky_ratelimit_new(&o, &clk.clock, &rl), 0);
    assert_int_equal(sky_ratelimit_peek(rl, 0), 0);
    assert_int_equal(sky_ratelimit_peek(rl, 0), 0); /* peeking charged nothing */
    assert_int_equal(sky_ratelimit_acquire(rl, 0), 0);
    int64_t w = sky_ratelimit_peek(rl, 0);
    assert_true(w > 0 && w <= 1000);
    assert_int_equal(sky_ratelimit_acquire(rl, 0), w);
    sky_fake_clock_advance(&clk, (uint64_t)w);
    assert_int_equal(sky_ratelimit_peek(rl, 0), 0);
    sky_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_grouped_in_order),
        cmocka_unit_test(test_bad_fallbacks_refused),
        cmocka_unit_test(test_failover_rule),
        cmocka_unit_test(test_pick_goes_where_the_rate_has_room),
        cmocka_unit_test(test_pick_goes_where_a_slot_is_free),
        cmocka_unit_test(test_pick_skips_tried_and_keeps_standby),
        cmocka_unit_test(test_peek_says_what_acquire_would),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
