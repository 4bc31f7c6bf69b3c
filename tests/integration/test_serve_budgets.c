/*
 * `skyio serve`'s client keys' budgets through the fleet of harness_serve_fleet.h: requests
 * and tokens a minute, refused with 429 and the x-ratelimit-* and retry-after headers
 * shaped as OpenAI's.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness_serve_fleet.h"
#include "skyio/common.h"
#include "skyio/json.h"
#include "harness_group.h"

/* ---- clients' budgets ---- */

static const char *header(const sky_test_result *r, const char *name)
{
    const char *v = json_string_value(json_object_get(r->headers, name));
    assert_non_null(v);
    return v;
}

/* 3 requests a minute: the fourth is refused as OpenAI refuses, headers and all */
static void test_key_request_budget(void **state)
{
    (void)state;
    sky_test_result r;
    for (int i = 0; i < 3; i++) {
        sky_fleet_call("POST", "/v1/chat/completions", sky_fleet_chat_body, SKY_FLEET_METERED_KEY,
                       &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "x-ratelimit-limit-requests"), "3");
        assert_int_equal(atoi(header(&r, "x-ratelimit-remaining-requests")), 2 - i);
        assert_non_null(header(&r, "x-ratelimit-reset-requests"));
        sky_test_result_free(&r);
    }
    sky_fleet_call("POST", "/v1/chat/completions", sky_fleet_chat_body, SKY_FLEET_METERED_KEY, &r);
    sky_fleet_expect_error(&r, 429, "requests", "rate_limit_exceeded");
    /* one request comes back in 20 s (3 a minute): retry-after says so, in seconds */
    int after = atoi(header(&r, "retry-after"));
    assert_true(after >= 19 && after <= 20);
    assert_true(atoi(header(&r, "retry-after-ms")) > 19000);
    assert_string_equal(header(&r, "x-ratelimit-remaining-requests"), "0");
    int64_t reset = 0;
    assert_int_equal(
        sky_parse_duration_ms(sky_span_cstr(header(&r, "x-ratelimit-reset-requests")), &reset), 0);
    assert_true(reset > 50000 && reset <= 60000);
    assert_null(strstr(r.body, SKY_FLEET_METERED_KEY));
    sky_test_result_free(&r);
    /* another key's budget is its own */
    sky_fleet_call("POST", "/v1/chat/completions", sky_fleet_chat_body, SKY_FLEET_CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    assert_null(json_object_get(r.headers, "x-ratelimit-limit-requests"));
    sky_test_result_free(&r);
}

/* 100 tokens a minute, charged up front (max_tokens counts) and settled by the usage */
static void test_key_token_budget(void **state)
{
    (void)state;
    const char *big = "{\"model\":\"gpt-4o\",\"max_tokens\":5000,"
                      "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    sky_test_result r;
    sky_fleet_call("POST", "/v1/chat/completions", big, SKY_FLEET_TOKENS_KEY, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-ratelimit-limit-tokens"), "100");
    /* the whole minute was charged up front: the estimate is over the limit */
    assert_string_equal(header(&r, "x-ratelimit-remaining-tokens"), "0");
    json_t *j = sky_fleet_json(&r);
    int64_t used = json_integer_value(sky_json_path(j, "usage.total_tokens"));
    json_decref(j);
    assert_true(used > 0 && used < 100);
    sky_test_result_free(&r);
    /* the reply said it used fewer: those came back, but not the 100 a request asks */
    sky_fleet_call("POST", "/v1/chat/completions", big, SKY_FLEET_TOKENS_KEY, &r);
    sky_fleet_expect_error(&r, 429, "tokens", "rate_limit_exceeded");
    int64_t left = atoll(header(&r, "x-ratelimit-remaining-tokens"));
    assert_true(left >= 100 - used && left < 100);
    assert_true(atoi(header(&r, "retry-after")) >= 1);
    sky_test_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_request_budget),
        cmocka_unit_test(test_key_token_budget),
    };
    return sky_test_run_group(tests, sky_fleet_setup, sky_fleet_teardown);
}
