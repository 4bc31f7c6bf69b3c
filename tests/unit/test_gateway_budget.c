/* Tests for the gateway's key budgets (time given as an argument) and its reading of the
 * tokens a reply says it used. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "gateway/internal.h"
#include "skyio/headers.h"

static void test_requests_refill_by_the_minute(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__gw_budget_init(&b, 60, 0, 1000);
    for (int i = 0; i < 60; i++)
        assert_int_equal(sky__gw_budget_take(&b, 1000, 10, &v), 0);
    assert_int_equal(v.reqs_left, 0);
    assert_int_equal(v.reqs_reset_ms, 60000);
    assert_int_equal(sky__gw_budget_take(&b, 1000, 10, &v), -1);
    assert_int_equal(v.refused, GW_BUDGET_REQUESTS);
    assert_int_equal(v.retry_ms, 1000); /* one a second comes back */
    assert_int_equal(sky__gw_budget_take(&b, 1999, 10, &v), -1);
    assert_int_equal(v.retry_ms, 1);
    assert_int_equal(sky__gw_budget_take(&b, 2000, 10, &v), 0);
    /* a quiet minute fills the bucket, and no more */
    assert_int_equal(sky__gw_budget_take(&b, 1000000, 10, &v), 0);
    assert_int_equal(v.reqs_left, 59);
    /* time going back is no time */
    assert_int_equal(sky__gw_budget_take(&b, 500, 10, &v), 0);
    assert_int_equal(v.reqs_left, 58);
}

static void test_tokens_charged_up_front_and_settled(void **state)
{
    (void)state;
    gw_budget b;
    gw_budget_view v;
    sky__gw_budget_init(&b, 0, 1000, 0);
    assert_int_equal(sky__gw_budget_take(&b, 0, 600, &v), 0);
    assert_int_equal(v.charged, 600);
    assert_int_equal(v.toks_left, 400);
    assert_int_equal(v.rpm, 0); /* no request limit: no request headers */
    assert_int_equal(sky__gw_budget_take(&b, 0, 600, &v), -1);
    assert_int_equal(v.refused, GW_BUDGET_TOKENS);
    assert_int_equal(v.retry_ms, 12000); /* 200 tokens at 1000 a minute */
    /* the reply used 100 of the 600: 500 come back */
    sky__gw_budget_settle(&b, 600, 100);
    assert_int_equal(sky__gw_budget_take(&b, 0, 600, &v), 0);
    assert_int_equal(v.toks_left, 300);
    /* unknown usage: the charge stands */
    sky__gw_budget_settle(&b, 600, -1);
    assert_int_equal(sky__gw_budget_take(&b, 0, 300, &v), 0);
    assert_int_equal(v.toks_left, 0);
    /* more than a minute's worth waits for a full bucket, then goes */
    assert_int_equal(sky__gw_budget_take(&b, 0, 5000, &v), -1);
    assert_int_equal(v.retry_ms, 60000);
    assert_int_equal(sky__gw_budget_take(&b, 60000, 5000, &v), 0);
    assert_int_equal(v.charged, 1000);
}

static void test_durations_read_back(void **state)
{
    (void)state;
    static const uint64_t cases[] = {0, 20, 999, 1000, 1500, 59999, 60000, 360000, 3723000};
    static const char *const texts[] = {"0ms",     "20ms", "999ms", "1s",    "1.500s",
                                        "59.999s", "1m0s", "6m0s",  "1h2m3s"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[48];
        int64_t back = -1;
        sky__gw_format_duration(cases[i], text, sizeof(text));
        assert_string_equal(text, texts[i]);
        assert_int_equal(sky_parse_duration_ms(sky_span_cstr(text), &back), 0);
        assert_int_equal(back, (int64_t)cases[i]);
    }
}

static void test_tokens_of_replies(void **state)
{
    (void)state;
    gw_tokens t = {-1, -1, -1, -1};
    sky__gw_tokens_read(sky_span_cstr("{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":"
                                      "\"hi\"},\"usage\":{\"total_tokens\":999}}],"
                                      "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,"
                                      "\"total_tokens\":10}}"),
                        &t);
    assert_int_equal(t.prompt, 7);
    assert_int_equal(t.completion, 3);
    assert_int_equal(t.total, 10);
    /* the Responses API's names, one level in; no total: the sum */
    t = (gw_tokens){-1, -1, -1, -1};
    sky__gw_tokens_read(sky_span_cstr("{\"type\":\"response.completed\",\"response\":{"
                                      "\"usage\":{\"input_tokens\":5,\"output_tokens\":4}}}"),
                        &t);
    assert_int_equal(t.total, 9);
    /* a key named usage that is no object, a total outside any usage: nothing */
    t = (gw_tokens){-1, -1, -1, -1};
    sky__gw_tokens_read(
        sky_span_cstr("{\"usage\":3,\"total_tokens\":4,\"a\":[{\"total_tokens\":5}]}"), &t);
    assert_int_equal(t.total, -1);
    sky__gw_tokens_read(sky_span_cstr("not json"), &t);
    assert_int_equal(t.total, -1);
}

static void test_tokens_of_stream_chunks(void **state)
{
    (void)state;
    gw_tokens t = {-1, -1, -1, -1};
    sky__gw_tokens_from_chunk(sky_span_cstr("data: {\"choices\":[{\"delta\":{}}]}\n\n"), &t);
    assert_int_equal(t.total, -1);
    sky__gw_tokens_from_chunk(
        sky_span_cstr("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,"
                      "\"completion_tokens\":6,\"total_tokens\":8}}\n\ndata: [DONE]\n\n"),
        &t);
    assert_int_equal(t.total, 8);
    assert_int_equal(t.completion, 6);
    /* an event cut by the chunk's end is left alone */
    sky__gw_tokens_from_chunk(sky_span_cstr("data: {\"usage\":{\"total_tokens\":9"), &t);
    assert_int_equal(t.total, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_refill_by_the_minute),
        cmocka_unit_test(test_tokens_charged_up_front_and_settled),
        cmocka_unit_test(test_durations_read_back),
        cmocka_unit_test(test_tokens_of_replies),
        cmocka_unit_test(test_tokens_of_stream_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
