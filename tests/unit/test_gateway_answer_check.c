/* Tests for the gateway's one read of a held answer (sky__gw_tokens_check): whether it is
 * JSON as jansson reads it, and the usage it names, in one pass. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "gateway/internal.h"

static void test_chat_answer_read_once(void **state)
{
    (void)state;
    gw_tokens t = {7, 7, 7, 7};
    const char *chat = "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"usage\"}}],"
                       "\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":5,"
                       "\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":0}}}";
    assert_int_equal(sky__gw_tokens_check(sky_span_cstr(chat), &t), 0);
    assert_int_equal(t.prompt, 6);
    assert_int_equal(t.completion, 5);
    assert_int_equal(t.total, 11);
    assert_int_equal(t.cached, 0);
}

static void test_answer_without_usage(void **state)
{
    (void)state;
    gw_tokens t = {7, 7, 7, 7};
    assert_int_equal(sky__gw_tokens_check(sky_span_cstr("{\"data\":[1,2]}"), &t), 0);
    assert_int_equal(t.prompt, -1);
    assert_int_equal(t.total, -1);
    /* no total: prompt and completion make it */
    assert_int_equal(sky__gw_tokens_check(
                         sky_span_cstr("{\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}"), &t),
                     0);
    assert_int_equal(t.total, 7);
}

static void test_garbled_answer_refused(void **state)
{
    (void)state;
    gw_tokens t = {7, 7, 7, 7};
    const char *bad[] = {"{\"usage\":{\"total_tokens\":11}", "{\"a\":1}}", "", "not json",
                         "{\"usage\":{\"total_tokens\":11},}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sky__gw_tokens_check(sky_span_cstr(bad[i]), &t), SKY_EJSON);
        assert_int_equal(t.total, -1); /* says nothing */
    }
}

/* What the scan leaves to jansson (a surrogate pair escape) is judged by jansson, and still
 * read; a \u0000, which jansson refuses too, is no JSON here either. */
static void test_scan_declines_jansson_decides(void **state)
{
    (void)state;
    gw_tokens t = {7, 7, 7, 7};
    const char *odd = "{\"text\":\"a\\ud83d\\ude00b\",\"usage\":{\"prompt_tokens\":2,"
                      "\"completion_tokens\":3,\"total_tokens\":5}}";
    assert_int_equal(sky__gw_tokens_check(sky_span_cstr(odd), &t), 0);
    assert_int_equal(t.total, 5);
    assert_int_equal(t.prompt, 2);
    assert_int_equal(t.cached, -1);
    /* the Responses API's last event keeps usage inside "response" */
    const char *resp = "{\"type\":\"response.completed\",\"x\":\"\\ud83d\\ude00\","
                       "\"response\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":2,"
                       "\"total_tokens\":3,\"input_tokens_details\":{\"cached_tokens\":1}}}}";
    assert_int_equal(sky__gw_tokens_check(sky_span_cstr(resp), &t), 0);
    assert_int_equal(t.total, 3);
    assert_int_equal(t.completion, 2);
    assert_int_equal(t.cached, 1);
    assert_int_equal(sky__gw_tokens_check(sky_span_cstr("{\"x\":\"\\u0000\"}"), &t), SKY_EJSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_answer_read_once),
        cmocka_unit_test(test_answer_without_usage),
        cmocka_unit_test(test_garbled_answer_refused),
        cmocka_unit_test(test_scan_declines_jansson_decides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
