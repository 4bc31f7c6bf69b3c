/* Tests for the retry policy: status and error lists, backoff, server waits, limits, the log. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/retry.h"

/* Wed, 21 Oct 2015 07:28:00 GMT, in ms since the epoch. */
#define DATE_MS INT64_C(1445412480000)
#define DATE_TEXT "Wed, 21 Oct 2015 07:28:00 GMT"

/* A generator that plays back a script, then repeats its last value. */
typedef struct script_rng {
    const uint64_t *values;
    size_t len;
    size_t calls;
} script_rng;

static uint64_t script_next(void *ud)
{
    script_rng *r = ud;
    size_t i = r->calls < r->len ? r->calls : r->len - 1;
    r->calls++;
    return r->values[i];
}

/* Everything a test needs, fresh for each test. */
typedef struct fixture {
    sky_retry_options opts;
    sky_retry_state state;
    sky_headers *headers;
    sky_fake_clock clock;
    sky_retry_decision d;
    uint64_t seed; /* splitmix64 state for tests that want many draws */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    f->headers = sky_headers_new();
    if (f->headers == NULL) {
        free(f);
        return -1;
    }
    sky_retry_options_init(&f->opts);
    sky_retry_state_init(&f->state);
    sky_fake_clock_init(&f->clock, 1000, DATE_MS);
    f->seed = 42;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sky_headers_free(f->headers);
    free(f);
    return 0;
}

static void add(fixture *f, const char *name, const char *value)
{
    assert_int_equal(sky_headers_add(f->headers, sky_span_cstr(name), sky_span_cstr(value)), 0);
}

/* Decide on a response with the fixture's headers, no deadline, splitmix jitter. */
static sky_retry_action on_status(fixture *f, int status)
{
    assert_int_equal(sky_retry_decide(&f->opts, &f->state, status, NULL, f->headers,
                                      &f->clock.clock, 0, sky_retry_splitmix64, &f->seed, &f->d),
                     0);
    return f->d.action;
}

/* Decide on a transport error (with @p status alongside, often 0). */
static sky_retry_action on_error(fixture *f, int status, int code, int retryable)
{
    sky_error err;
    sky_error_clear(&err);
    sky_error_set(&err, code, "test");
    err.retryable = retryable;
    assert_int_equal(sky_retry_decide(&f->opts, &f->state, status, &err, f->headers,
                                      &f->clock.clock, 0, sky_retry_splitmix64, &f->seed, &f->d),
                     0);
    return f->d.action;
}

/* Decide on @p status with a deadline and a scripted generator. */
static sky_retry_action on_status_at(fixture *f, int status, uint64_t deadline, script_rng *rng)
{
    assert_int_equal(sky_retry_decide(&f->opts, &f->state, status, NULL, f->headers,
                                      &f->clock.clock, deadline, script_next, rng, &f->d),
                     0);
    return f->d.action;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_options_defaults(void **state)
{
    (void)state;
    sky_retry_options o;
    memset(&o, 0xAB, sizeof(o));
    sky_retry_options_init(&o);
    assert_int_equal(o.max_retries, 10);
    assert_int_equal(o.base_ms, 800);
    assert_int_equal(o.cap_ms, 60000);
    assert_int_equal(o.max_server_wait_ms, 0);
    assert_int_equal(o.honour_server_wait, 1);
    assert_int_equal(o.openai_statuses, 0);
    assert_null(o.also_retry);
}

static void test_state_init_starts_empty(void **state)
{
    (void)state;
    sky_retry_state a, b;
    memset(&a, 0xAB, sizeof(a));
    sky_retry_state_init(&a);
    sky_retry_state_init(&b);
    assert_int_equal(a.attempts, 0);
    assert_int_equal(a.retries, 0);
    assert_int_equal(a.auth_refreshed, 0);
    assert_int_equal(sky_retry_log_count(&a), 0);
    assert_null(sky_retry_log_at(&a, 0));
    /* seeded from sky_rand_u64: two operations do not jitter in step */
    assert_true(a.rng != b.rng);
}

static void test_splitmix64_known_values(void **state)
{
    (void)state;
    uint64_t s = 0;
    assert_true(sky_retry_splitmix64(&s) == UINT64_C(0xE220A8397B1DCDAF));
    assert_true(sky_retry_splitmix64(&s) == UINT64_C(0x6E789E6AA1B965F4));
    assert_true(s == UINT64_C(0x9E3779B97F4A7C15) * 2);
}

static void test_retryable_statuses(void **state)
{
    fixture *f = *state;
    static const int codes[] = {408, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < SKY_ARRAY_LEN(codes); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%d backoff=", codes[i]);
        assert_int_equal(sky_retry_is_retryable(codes[i], NULL), 1);
        assert_int_equal(on_status(f, codes[i]), SKY_RETRY_YES);
        assert_true(starts_with(f->d.reason, want));
        assert_int_equal(f->d.limit, SKY_RETRY_LIMIT_NONE);
    }
}

/* OpenAI's SDKs also retry 409 and every 5xx; the 4xx that mean the request is wrong stay
 * final either way. */
static void test_openai_statuses(void **state)
{
    fixture *f = *state;
    static const int retried[] = {409, 501, 505, 520, 522, 524, 529, 599};
    static const int final[] = {400, 401, 403, 404, 405, 413, 422};
    f->opts.openai_statuses = 1;
    for (size_t i = 0; i < SKY_ARRAY_LEN(retried); i++) {
        sky_retry_state_init(&f->state);
        assert_int_equal(on_status(f, retried[i]), SKY_RETRY_YES);
        assert_int_equal(sky_retry_is_retryable(retried[i], NULL), 0); /* azure-core's list */
    }
    for (size_t i = 0; i < SKY_ARRAY_LEN(final); i++) {
        sky_retry_state_init(&f->state);
        assert_int_not_equal(on_status(f, final[i]), SKY_RETRY_YES);
    }
}

static int imds_also(int status)
{
    return status == 404 || status == 410;
}

/* A service's own additions (IMDS's 404 and 410) are retried; the rest of the lists stand. */
static void test_also_retry(void **state)
{
    fixture *f = *state;
    f->opts.also_retry = imds_also;
    assert_int_equal(on_status(f, 410), SKY_RETRY_YES);
    assert_int_equal(on_status(f, 404), SKY_RETRY_YES);
    assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
    assert_int_equal(on_status(f, 400), SKY_RETRY_NO);
    assert_int_equal(on_status(f, 200), SKY_RETRY_NO);
    assert_int_equal(f->state.retries, 3);
}

static void test_never_retried_statuses(void **state)
{
    fixture *f = *state;
    /* the list, and statuses outside azure-core's retry list */
    static const int codes[] = {400, 403, 404, 422, 405, 409, 413, 501, 505};
    for (size_t i = 0; i < SKY_ARRAY_LEN(codes); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%d not retryable", codes[i]);
        assert_int_equal(sky_retry_is_retryable(codes[i], NULL), 0);
        assert_int_equal(on_status(f, codes[i]), SKY_RETRY_NO);
        assert_string_equal(f->d.reason, want);
        assert_int_equal(f->d.delay_ms, 0);
    }
    assert_int_equal(f->state.retries, 0);
}

static void test_success_statuses_are_done(void **state)
{
    fixture *f = *state;
    static const int codes[] = {200, 201, 204, 304};
    add(f, "x-should-retry", "true"); /* only consulted for failures */
    add(f, "retry-after-ms", "5");
    for (size_t i = 0; i < SKY_ARRAY_LEN(codes); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%d done", codes[i]);
        assert_int_equal(on_status(f, codes[i]), SKY_RETRY_NO);
        assert_string_equal(f->d.reason, want);
    }
}

static void test_no_response_without_error_is_final(void **state)
{
    fixture *f = *state;
    assert_int_equal(on_status(f, 0), SKY_RETRY_NO);
    assert_string_equal(f->d.reason, "no-response not retryable");
}

static void test_401_is_not_a_plain_retry(void **state)
{
    (void)state;
    assert_int_equal(sky_retry_is_retryable(401, NULL), 0);
}

static void test_retryable_errors(void **state)
{
    fixture *f = *state;
    static const int codes[] = {SKY_ECONNECT, SKY_ECONNRESET, SKY_ETIMEDOUT, SKY_EPARTIAL,
                                SKY_EPROTO};
    for (size_t i = 0; i < SKY_ARRAY_LEN(codes); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%s backoff=", sky_err_name(codes[i]));
        sky_error err;
        sky_error_clear(&err);
        err.code = codes[i];
        assert_int_equal(sky_retry_is_retryable(0, &err), 1);
        /* a body cut short under a 200 is still a failure */
        assert_int_equal(sky_retry_is_retryable(200, &err), 1);
        assert_int_equal(on_error(f, 0, codes[i], 0), SKY_RETRY_YES);
        assert_true(starts_with(f->d.reason, want));
    }
}

static void test_never_retried_errors(void **state)
{
    fixture *f = *state;
    static const int codes[] = {SKY_ECANCELED, SKY_ETLS, SKY_EINVAL};
    for (size_t i = 0; i < SKY_ARRAY_LEN(codes); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%s not retryable", sky_err_name(codes[i]));
        sky_error err;
        sky_error_clear(&err);
        err.code = codes[i];
        err.retryable = 1; /* the lists win over the flag */
        assert_int_equal(sky_retry_is_retryable(503, &err), 0);
        assert_int_equal(on_error(f, 503, codes[i], 1), SKY_RETRY_NO);
        assert_string_equal(f->d.reason, want);
    }
}

static void test_other_errors_follow_their_flag(void **state)
{
    fixture *f = *state;
    assert_int_equal(on_error(f, 0, SKY_ERESOLVE, 0), SKY_RETRY_NO);
    assert_string_equal(f->d.reason, "ERESOLVE not retryable");
    assert_int_equal(on_error(f, 0, SKY_ERESOLVE, 1), SKY_RETRY_YES);
    assert_int_equal(on_error(f, 0, SKY_ETRANSPORT, 1), SKY_RETRY_YES);
    assert_int_equal(on_error(f, 0, SKY_ENOMEM, 0), SKY_RETRY_NO);
}

static void test_ehttp_error_is_judged_by_status(void **state)
{
    fixture *f = *state;
    sky_error err;
    sky_error_clear(&err);
    err.code = SKY_EHTTP;
    err.http_status = 503;
    assert_int_equal(sky_retry_is_retryable(0, &err), 1);
    assert_int_equal(sky_retry_decide(&f->opts, &f->state, 0, &err, NULL, &f->clock.clock, 0,
                                      sky_retry_splitmix64, &f->seed, &f->d),
                     0);
    assert_int_equal(f->d.action, SKY_RETRY_YES);
    assert_true(starts_with(f->d.reason, "503 backoff="));
    /* the caller's status wins over the one inside the error */
    assert_int_equal(sky_retry_is_retryable(404, &err), 0);
}

static void test_should_retry_true_overrides(void **state)
{
    fixture *f = *state;
    add(f, "x-should-retry", "true");
    assert_int_equal(on_status(f, 400), SKY_RETRY_YES);
    assert_true(starts_with(f->d.reason, "400 x-should-retry=true backoff="));
    assert_int_equal(on_status(f, 409), SKY_RETRY_YES);
}

static void test_should_retry_false_overrides(void **state)
{
    fixture *f = *state;
    add(f, "X-Should-Retry", "FALSE");
    add(f, "retry-after-ms", "100");
    assert_int_equal(on_status(f, 429), SKY_RETRY_NO);
    assert_string_equal(f->d.reason, "429 x-should-retry=false not retryable");
    assert_int_equal(on_status(f, 503), SKY_RETRY_NO);
    assert_int_equal(on_status(f, 401), SKY_RETRY_NO);
    assert_int_equal(f->state.auth_refreshed, 0);
}

static void test_should_retry_other_values_ignored(void **state)
{
    fixture *f = *state;
    add(f, "x-should-retry", "maybe");
    assert_int_equal(on_status(f, 400), SKY_RETRY_NO);
    assert_string_equal(f->d.reason, "400 not retryable");
    assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
}

static void test_should_retry_ignored_for_transport_errors(void **state)
{
    fixture *f = *state;
    add(f, "x-should-retry", "false");
    assert_int_equal(on_error(f, 200, SKY_EPARTIAL, 0), SKY_RETRY_YES);
    sky_headers_clear(f->headers);
    add(f, "x-should-retry", "true");
    assert_int_equal(on_error(f, 0, SKY_ECANCELED, 0), SKY_RETRY_NO);
}

static void test_should_retry_true_on_401_refreshes_first(void **state)
{
    fixture *f = *state;
    add(f, "x-should-retry", "true");
    assert_int_equal(on_status(f, 401), SKY_RETRY_REFRESH_AUTH);
    assert_int_equal(on_status(f, 401), SKY_RETRY_YES);
}

static void test_401_refresh_once_then_no(void **state)
{
    fixture *f = *state;
    assert_int_equal(on_status(f, 401), SKY_RETRY_REFRESH_AUTH);
    assert_int_equal(f->d.delay_ms, 0);
    assert_string_equal(f->d.reason, "401 refresh-auth");
    assert_int_equal(f->state.auth_refreshed, 1);
    assert_int_equal(f->state.retries, 0);
    assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
    assert_int_equal(on_status(f, 401), SKY_RETRY_NO);
    assert_string_equal(f->d.reason, "401 after refresh-auth");
}

static void test_401_refresh_not_counted_against_max_retries(void **state)
{
    fixture *f = *state;
    f->opts.max_retries = 0;
    assert_int_equal(on_status(f, 401), SKY_RETRY_REFRESH_AUTH);
    assert_int_equal(on_status(f, 503), SKY_RETRY_GIVE_UP);
}

static void test_401_refresh_refused_past_deadline(void **state)
{
    fixture *f = *state;
    script_rng rng = {(const uint64_t[]){0}, 1, 0};
    assert_int_equal(on_status_at(f, 401, 1000, &rng), SKY_RETRY_GIVE_UP);
    assert_int_equal(f->d.limit, SKY_RETRY_LIMIT_DEADLINE);
    assert_string_equal(f->d.reason, "deadline: 401 refresh-auth");
    assert_int_equal(f->state.auth_refreshed, 0);
    assert_int_equal(on_status_at(f, 401, 1001, &rng), SKY_RETRY_REFRESH_AUTH);
}

/* Many draws from a seeded generator stay in [0, min(cap, base * 2^n)] and fill the range. */
static void test_full_jitter_bounds(void **state)
{
    fixture *f = *state;
    f->opts.max_retries = 12;
    for (int n = 0; n <= 10; n++) {
        uint64_t ceiling = 800u << n < 60000u ? 800u << n : 60000u;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int draw = 0; draw < 400; draw++) {
            sky_retry_state_init(&f->state);
            for (int k = 0; k < n; k++)
                assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
            assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
            assert_true(f->d.delay_ms <= ceiling);
            lo = f->d.delay_ms < lo ? f->d.delay_ms : lo;
            hi = f->d.delay_ms > hi ? f->d.delay_ms : hi;
        }
        /* full jitter reaches near both ends, unlike "equal jitter" or none */
        assert_true(lo < ceiling / 10);
        assert_true(hi > ceiling - ceiling / 10);
    }
}

static void test_default_generator_within_bounds(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 200; i++) {
        sky_retry_state_init(&f->state);
        assert_int_equal(sky_retry_decide(&f->opts, &f->state, 429, NULL, NULL, &f->clock.clock, 0,
                                          NULL, NULL, &f->d),
                         0);
        assert_int_equal(f->d.action, SKY_RETRY_YES);
        assert_true(f->d.delay_ms <= 800);
    }
}

static void test_exact_schedule_with_scripted_rng(void **state)
{
    fixture *f = *state;
    static const uint64_t script[] = {50, 1000, 12345, UINT64_MAX, 7, 999};
    script_rng rng = {script, SKY_ARRAY_LEN(script), 0};
    f->opts.base_ms = 100;
    f->opts.cap_ms = 1000;
    /* ceilings 100, 200, 400, 800, 1000, 1000; delay = draw % (ceiling + 1) */
    static const uint64_t want[] = {50, 196, 315, 600, 7, 999};
    for (size_t i = 0; i < SKY_ARRAY_LEN(want); i++) {
        assert_int_equal(on_status_at(f, 503, 0, &rng), SKY_RETRY_YES);
        assert_int_equal(f->d.delay_ms, want[i]);
    }
    assert_int_equal(rng.calls, 6);
    assert_string_equal(f->d.reason, "503 backoff=999ms");
}

static void test_backoff_reaches_cap(void **state)
{
    fixture *f = *state;
    static const uint64_t script[] = {60000};
    script_rng rng = {script, 1, 0};
    f->opts.max_retries = 100;
    /* 800 * 2^6 = 51200 < cap: the draw wraps; from 2^7 on the ceiling is the cap */
    for (int n = 0; n < 6; n++)
        assert_int_equal(on_status_at(f, 503, 0, &rng), SKY_RETRY_YES);
    assert_int_equal(on_status_at(f, 503, 0, &rng), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 60000 % 51201);
    for (int n = 7; n < 90; n++) {
        assert_int_equal(on_status_at(f, 503, 0, &rng), SKY_RETRY_YES);
        assert_int_equal(f->d.delay_ms, 60000); /* no overflow long after 2^63 */
    }
}

static void test_zero_base_means_no_wait(void **state)
{
    fixture *f = *state;
    f->opts.base_ms = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
        assert_int_equal(f->d.delay_ms, 0);
    }
}

static void test_server_wait_ms_used_instead_of_backoff(void **state)
{
    fixture *f = *state;
    script_rng rng = {(const uint64_t[]){5}, 1, 0};
    add(f, "retry-after-ms", "1200");
    assert_int_equal(on_status_at(f, 429, 0, &rng), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 1200);
    assert_string_equal(f->d.reason, "429 retry-after-ms=1200ms");
    assert_int_equal(rng.calls, 0); /* no jitter drawn */
}

static void test_server_wait_precedence(void **state)
{
    fixture *f = *state;
    add(f, "Retry-After", "30");
    assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 30000);
    assert_string_equal(f->d.reason, "503 retry-after=30000ms");
    add(f, "x-ms-retry-after-ms", "2500");
    assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 2500);
    assert_string_equal(f->d.reason, "503 x-ms-retry-after-ms=2500ms");
    add(f, "retry-after-ms", "12.5");
    assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 13); /* rounded up */
    assert_string_equal(f->d.reason, "503 retry-after-ms=13ms");
}

static void test_server_wait_http_date(void **state)
{
    fixture *f = *state;
    add(f, "Retry-After", DATE_TEXT);
    f->clock.wall_ms = DATE_MS - 10000;
    assert_int_equal(on_status(f, 429), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 10000);
    assert_string_equal(f->d.reason, "429 retry-after=10000ms");
    f->clock.wall_ms = DATE_MS + 5000; /* a date in the past: go now */
    assert_int_equal(on_status(f, 429), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 0);
}

static void test_garbled_ms_header_falls_to_retry_after(void **state)
{
    fixture *f = *state;
    add(f, "retry-after-ms", "soon");
    add(f, "Retry-After", "2");
    assert_int_equal(on_status(f, 429), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 2000);
    assert_string_equal(f->d.reason, "429 retry-after=2000ms");
}

static void test_unreadable_server_wait_falls_to_backoff(void **state)
{
    fixture *f = *state;
    add(f, "retry-after-ms", "soon");
    add(f, "Retry-After", "whenever");
    assert_int_equal(on_status(f, 429), SKY_RETRY_YES);
    assert_true(f->d.delay_ms <= 800);
    assert_true(starts_with(f->d.reason, "429 backoff="));
}

static void test_server_wait_ignored_when_not_honoured(void **state)
{
    fixture *f = *state;
    f->opts.honour_server_wait = 0;
    add(f, "retry-after-ms", "5000");
    assert_int_equal(on_status(f, 429), SKY_RETRY_YES);
    assert_true(f->d.delay_ms <= 800);
    assert_true(starts_with(f->d.reason, "429 backoff="));
}

static void test_server_wait_capped(void **state)
{
    fixture *f = *state;
    f->opts.max_server_wait_ms = 60000;
    add(f, "Retry-After", "3600");
    assert_int_equal(on_status(f, 429), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 60000);
    assert_string_equal(f->d.reason, "429 retry-after=3600000ms capped=60000ms");
    sky_headers_clear(f->headers);
    add(f, "retry-after-ms", "59999"); /* under the cap: untouched */
    assert_int_equal(on_status(f, 429), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 59999);
    assert_string_equal(f->d.reason, "429 retry-after-ms=59999ms");
}

static void test_server_wait_uncapped_by_default(void **state)
{
    fixture *f = *state;
    add(f, "Retry-After", "3600");
    assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 3600000);
}

static void test_deadline_refuses_long_wait(void **state)
{
    fixture *f = *state;
    script_rng rng = {(const uint64_t[]){0}, 1, 0};
    add(f, "retry-after-ms", "1500");
    /* now is 1000: a wait of 1500 would end at 2500 */
    assert_int_equal(on_status_at(f, 429, 2000, &rng), SKY_RETRY_GIVE_UP);
    assert_int_equal(f->d.limit, SKY_RETRY_LIMIT_DEADLINE);
    assert_int_equal(f->d.delay_ms, 0);
    assert_string_equal(f->d.reason, "deadline: 429 retry-after-ms=1500ms");
    assert_int_equal(f->state.retries, 0);
    /* ending exactly at the deadline leaves the attempt no time either */
    assert_int_equal(on_status_at(f, 429, 2500, &rng), SKY_RETRY_GIVE_UP);
    assert_int_equal(on_status_at(f, 429, 2501, &rng), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 1500);
}

static void test_deadline_applies_to_backoff(void **state)
{
    fixture *f = *state;
    static const uint64_t script[] = {700};
    script_rng rng = {script, 1, 0};
    assert_int_equal(on_status_at(f, 503, 1500, &rng), SKY_RETRY_GIVE_UP);
    assert_string_equal(f->d.reason, "deadline: 503 backoff=700ms");
    assert_int_equal(on_status_at(f, 503, 1701, &rng), SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 700);
}

static void test_deadline_already_passed(void **state)
{
    fixture *f = *state;
    script_rng rng = {(const uint64_t[]){0}, 1, 0};
    sky_fake_clock_advance(&f->clock, 5000);
    assert_int_equal(on_status_at(f, 503, 3000, &rng), SKY_RETRY_GIVE_UP);
    assert_int_equal(f->d.limit, SKY_RETRY_LIMIT_DEADLINE);
    /* 0 is "no deadline", not "the epoch" */
    assert_int_equal(on_status_at(f, 503, 0, &rng), SKY_RETRY_YES);
}

static void test_max_retries_exhausted(void **state)
{
    fixture *f = *state;
    f->opts.max_retries = 3;
    for (int i = 0; i < 3; i++)
        assert_int_equal(on_error(f, 0, SKY_ECONNRESET, 0), SKY_RETRY_YES);
    assert_int_equal(on_error(f, 0, SKY_ECONNRESET, 0), SKY_RETRY_GIVE_UP);
    assert_int_equal(f->d.limit, SKY_RETRY_LIMIT_MAX_RETRIES);
    assert_string_equal(f->d.reason, "max-retries=3: ECONNRESET");
    assert_int_equal(f->state.retries, 3);
    assert_int_equal(f->state.attempts, 4);
}

static void test_max_retries_zero_and_negative(void **state)
{
    fixture *f = *state;
    f->opts.max_retries = 0;
    assert_int_equal(on_status(f, 429), SKY_RETRY_GIVE_UP);
    assert_string_equal(f->d.reason, "max-retries=0: 429");
    f->opts.max_retries = -5;
    assert_int_equal(on_status(f, 429), SKY_RETRY_GIVE_UP);
    assert_int_equal(f->d.limit, SKY_RETRY_LIMIT_MAX_RETRIES);
}

static void test_default_allows_ten_retries(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 10; i++)
        assert_int_equal(on_status(f, 500), SKY_RETRY_YES);
    assert_int_equal(on_status(f, 500), SKY_RETRY_GIVE_UP);
}

static void test_log_contents(void **state)
{
    fixture *f = *state;
    static const uint64_t script[] = {523};
    script_rng rng = {script, 1, 0};
    add(f, "retry-after-ms", "1200");
    assert_int_equal(on_status_at(f, 429, 0, &rng), SKY_RETRY_YES);
    sky_headers_clear(f->headers);
    sky_error err;
    sky_error_clear(&err);
    err.code = SKY_ECONNRESET;
    assert_int_equal(sky_retry_decide(&f->opts, &f->state, 0, &err, NULL, &f->clock.clock, 0,
                                      script_next, &rng, &f->d),
                     0);
    assert_int_equal(on_status_at(f, 200, 0, &rng), SKY_RETRY_NO);

    assert_int_equal(sky_retry_log_count(&f->state), 3);
    const sky_retry_log_entry *e = sky_retry_log_at(&f->state, 0);
    assert_int_equal(e->attempt, 1);
    assert_int_equal(e->status, 429);
    assert_int_equal(e->error_code, 0);
    assert_int_equal(e->delay_ms, 1200);
    assert_int_equal(e->action, SKY_RETRY_YES);
    assert_string_equal(e->reason, "429 retry-after-ms=1200ms");
    e = sky_retry_log_at(&f->state, 1);
    assert_int_equal(e->attempt, 2);
    assert_int_equal(e->status, 0);
    assert_int_equal(e->error_code, SKY_ECONNRESET);
    assert_int_equal(e->delay_ms, 523 % 1601); /* second retry: ceiling 1600 */
    assert_string_equal(e->reason, "ECONNRESET backoff=523ms");
    e = sky_retry_log_at(&f->state, 2);
    assert_int_equal(e->attempt, 3);
    assert_int_equal(e->action, SKY_RETRY_NO);
    assert_string_equal(e->reason, "200 done");
    assert_null(sky_retry_log_at(&f->state, 3));

    char line[256];
    assert_string_equal(sky_retry_log_format(&f->state, line, sizeof(line)),
                        "#1 429 retry-after-ms=1200ms; #2 ECONNRESET backoff=523ms; #3 200 done");
}

/* Every 429 is counted, also those the log has forgotten. */
static void test_counts_every_429(void **state)
{
    fixture *f = *state;
    f->opts.max_retries = 100;
    int sent_429 = 0;
    for (int i = 0; i < SKY_RETRY_LOG_MAX + 3; i++) {
        sent_429 += i % 3 != 0;
        assert_int_equal(on_status(f, i % 3 ? 429 : 503), SKY_RETRY_YES);
    }
    assert_int_equal(on_status(f, 200), SKY_RETRY_NO);
    assert_true(sent_429 > SKY_RETRY_LOG_MAX / 2);
    assert_int_equal(f->state.responses_429, sent_429);
}

static void test_log_keeps_the_last_entries(void **state)
{
    fixture *f = *state;
    f->opts.max_retries = 100;
    for (int i = 0; i < SKY_RETRY_LOG_MAX + 4; i++)
        assert_int_equal(on_status(f, 500 + (i % 2) * 3), SKY_RETRY_YES);
    assert_int_equal(f->state.attempts, SKY_RETRY_LOG_MAX + 4);
    assert_int_equal(sky_retry_log_count(&f->state), SKY_RETRY_LOG_MAX);
    assert_int_equal(sky_retry_log_at(&f->state, 0)->attempt, 5);
    assert_int_equal(sky_retry_log_at(&f->state, 0)->status, 500);
    assert_int_equal(sky_retry_log_at(&f->state, 1)->status, 503);
    for (size_t i = 1; i < SKY_RETRY_LOG_MAX; i++)
        assert_int_equal(sky_retry_log_at(&f->state, i)->attempt,
                         sky_retry_log_at(&f->state, i - 1)->attempt + 1);
    assert_int_equal(sky_retry_log_at(&f->state, SKY_RETRY_LOG_MAX - 1)->attempt,
                     SKY_RETRY_LOG_MAX + 4);
    assert_null(sky_retry_log_at(&f->state, SKY_RETRY_LOG_MAX));

    char line[2048];
    sky_retry_log_format(&f->state, line, sizeof(line));
    assert_true(starts_with(line, "(4 earlier) #5 500 backoff="));
    char last[32];
    snprintf(last, sizeof(last), "; #%d 503 backoff=", SKY_RETRY_LOG_MAX + 4);
    assert_non_null(strstr(line, last));
    assert_null(strstr(line, "#4 "));
}

static void test_log_format_truncates_safely(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 5; i++)
        assert_int_equal(on_status(f, 503), SKY_RETRY_YES);
    char full[1024];
    sky_retry_log_format(&f->state, full, sizeof(full));
    for (size_t len = 1; len < 40; len++) {
        char small[40];
        memset(small, 'x', sizeof(small));
        assert_ptr_equal(sky_retry_log_format(&f->state, small, len), small);
        assert_int_equal(strlen(small), len - 1);
        assert_memory_equal(small, full, len - 1);
        assert_int_equal(small[len], 'x'); /* nothing written past the end */
    }
    char empty[1] = {'x'};
    sky_retry_log_format(&f->state, empty, 0);
    assert_int_equal(empty[0], 'x');
}

static void test_log_format_empty(void **state)
{
    fixture *f = *state;
    char line[16];
    memset(line, 'x', sizeof(line));
    assert_string_equal(sky_retry_log_format(&f->state, line, sizeof(line)), "");
}

static void test_invalid_arguments(void **state)
{
    fixture *f = *state;
    assert_int_equal(sky_retry_decide(NULL, &f->state, 503, NULL, NULL, NULL, 0, NULL, NULL, &f->d),
                     SKY_EINVAL);
    assert_int_equal(sky_retry_decide(&f->opts, NULL, 503, NULL, NULL, NULL, 0, NULL, NULL, &f->d),
                     SKY_EINVAL);
    assert_int_equal(
        sky_retry_decide(&f->opts, &f->state, 503, NULL, NULL, NULL, 0, NULL, NULL, NULL),
        SKY_EINVAL);
    assert_int_equal(f->state.attempts, 0);
}

static void test_null_clock_uses_real_clock(void **state)
{
    fixture *f = *state;
    uint64_t far = sky_clock_now_ms(NULL) + 3600000;
    assert_int_equal(
        sky_retry_decide(&f->opts, &f->state, 503, NULL, NULL, NULL, far, NULL, NULL, &f->d), 0);
    assert_int_equal(f->d.action, SKY_RETRY_YES);
    assert_int_equal(
        sky_retry_decide(&f->opts, &f->state, 503, NULL, NULL, NULL, 1, NULL, NULL, &f->d), 0);
    assert_int_equal(f->d.action, SKY_RETRY_GIVE_UP);
}

/* A verdict the lists cannot make (a 429 out of credit): counted and logged as final. */
static void test_record_final(void **state)
{
    fixture *f = *state;
    sky_retry_record_final(&f->state, 429, "insufficient_quota");
    assert_int_equal(f->state.attempts, 1);
    assert_int_equal(f->state.retries, 0);
    assert_int_equal(f->state.responses_429, 1);
    assert_int_equal(sky_retry_log_count(&f->state), 1);
    const sky_retry_log_entry *e = sky_retry_log_at(&f->state, 0);
    assert_int_equal(e->attempt, 1);
    assert_int_equal(e->status, 429);
    assert_int_equal(e->action, SKY_RETRY_NO);
    assert_int_equal(e->delay_ms, 0);
    assert_string_equal(e->reason, "429 insufficient_quota");
}

/* Retries held back unsent count against max_retries, each waiting at most its backoff
 * ceiling or the hold's end, whichever is sooner; attempts count only what was sent. */
static void test_held_retries_count(void **state)
{
    fixture *f = *state;
    f->opts.max_retries = 3;
    f->opts.base_ms = 800;
    assert_int_equal(on_status(f, 500), SKY_RETRY_YES); /* retry 1 of 3 */
    assert_int_equal(sky_retry_decide_held(&f->opts, &f->state, "circuit-open", 60000,
                                           &f->clock.clock, 0, &f->d),
                     0);
    assert_int_equal(f->d.action, SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 1600); /* retry 2's ceiling, not the breaker's minute */
    assert_string_equal(f->d.reason, "circuit-open wait=1600ms");
    assert_int_equal(
        sky_retry_decide_held(&f->opts, &f->state, "circuit-open", 500, &f->clock.clock, 0, &f->d),
        0);
    assert_int_equal(f->d.action, SKY_RETRY_YES);
    assert_int_equal(f->d.delay_ms, 500); /* the hold ends sooner */
    assert_int_equal(sky_retry_decide_held(&f->opts, &f->state, "circuit-open", 60000,
                                           &f->clock.clock, 0, &f->d),
                     0);
    assert_int_equal(f->d.action, SKY_RETRY_GIVE_UP);
    assert_int_equal(f->d.limit, SKY_RETRY_LIMIT_MAX_RETRIES);
    assert_string_equal(f->d.reason, "max-retries=3: circuit-open");
    assert_int_equal(f->state.retries, 3);
    assert_int_equal(f->state.held, 2);
    assert_int_equal(f->state.attempts, 1);
}

static void test_held_retry_meets_deadline(void **state)
{
    fixture *f = *state;
    uint64_t now = sky_clock_now_ms(&f->clock.clock);
    assert_int_equal(sky_retry_decide_held(&f->opts, &f->state, "circuit-open", 5000,
                                           &f->clock.clock, now + 100, &f->d),
                     0);
    assert_int_equal(f->d.action, SKY_RETRY_GIVE_UP);
    assert_int_equal(f->d.limit, SKY_RETRY_LIMIT_DEADLINE);
    assert_int_equal(f->state.retries, 0);
    assert_int_equal(sky_retry_decide_held(NULL, &f->state, "x", 1, NULL, 0, &f->d), SKY_EINVAL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_defaults),
        cmocka_unit_test(test_state_init_starts_empty),
        cmocka_unit_test(test_splitmix64_known_values),
        cmocka_unit_test(test_401_is_not_a_plain_retry),
        T(test_retryable_statuses),
        T(test_record_final),
        T(test_openai_statuses),
        T(test_also_retry),
        T(test_never_retried_statuses),
        T(test_success_statuses_are_done),
        T(test_no_response_without_error_is_final),
        T(test_retryable_errors),
        T(test_never_retried_errors),
        T(test_other_errors_follow_their_flag),
        T(test_ehttp_error_is_judged_by_status),
        T(test_should_retry_true_overrides),
        T(test_should_retry_false_overrides),
        T(test_should_retry_other_values_ignored),
        T(test_should_retry_ignored_for_transport_errors),
        T(test_should_retry_true_on_401_refreshes_first),
        T(test_401_refresh_once_then_no),
        T(test_401_refresh_not_counted_against_max_retries),
        T(test_401_refresh_refused_past_deadline),
        T(test_full_jitter_bounds),
        T(test_default_generator_within_bounds),
        T(test_exact_schedule_with_scripted_rng),
        T(test_backoff_reaches_cap),
        T(test_zero_base_means_no_wait),
        T(test_server_wait_ms_used_instead_of_backoff),
        T(test_server_wait_precedence),
        T(test_server_wait_http_date),
        T(test_garbled_ms_header_falls_to_retry_after),
        T(test_unreadable_server_wait_falls_to_backoff),
        T(test_server_wait_ignored_when_not_honoured),
        T(test_server_wait_capped),
        T(test_server_wait_uncapped_by_default),
        T(test_deadline_refuses_long_wait),
        T(test_deadline_applies_to_backoff),
        T(test_deadline_already_passed),
        T(test_max_retries_exhausted),
        T(test_max_retries_zero_and_negative),
        T(test_held_retries_count),
        T(test_held_retry_meets_deadline),
        T(test_default_allows_ten_retries),
        T(test_log_contents),
        T(test_counts_every_429),
        T(test_log_keeps_the_last_entries),
        T(test_log_format_truncates_safely),
        T(test_log_format_empty),
        T(test_invalid_arguments),
        T(test_null_clock_uses_real_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
