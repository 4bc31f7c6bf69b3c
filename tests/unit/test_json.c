/* Tests for the jansson helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/json.h"

static json_t *parse_ok(const char *text)
{
    json_t *j = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_json_parse(sky_span_cstr(text), &j, &err), 0);
    assert_non_null(j);
    assert_int_equal(err.code, 0);
    return j;
}

static void test_parse_object(void **state)
{
    (void)state;
    json_t *j = parse_ok("{\"a\": 1, \"b\": [true, null]}");
    assert_true(json_is_object(j));
    assert_int_equal(json_object_size(j), 2);
    json_decref(j);
}

static void test_parse_any_value(void **state)
{
    (void)state;
    json_t *j = parse_ok("42");
    assert_int_equal(json_integer_value(j), 42);
    json_decref(j);
    j = parse_ok("\"hi\"");
    assert_string_equal(json_string_value(j), "hi");
    json_decref(j);
}

static void test_parse_span_not_terminated(void **state)
{
    (void)state;
    /* only the span's bytes count, not what follows them */
    const char text[] = "[1,2]garbage";
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_make(text, 5), &j, NULL), 0);
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
}

static void test_parse_error_has_location(void **state)
{
    (void)state;
    json_t *j = (json_t *)(uintptr_t)1; /* must be reset to NULL */
    sky_error err;
    sky_error_clear(&err);
    int rc = sky_json_parse(sky_span_cstr("{\n  \"a\": 1,\n  \"b\": }"), &j, &err);
    assert_int_equal(rc, SKY_EJSON);
    assert_null(j);
    assert_int_equal(err.code, SKY_EJSON);
    assert_string_equal(err.message, "line 3 column 8: unexpected token near '}'");
}

static void test_parse_error_without_err(void **state)
{
    (void)state;
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_cstr("[1,"), &j, NULL), SKY_EJSON);
    assert_null(j);
    assert_int_equal(sky_json_parse(sky_span_make(NULL, 0), &j, NULL), SKY_EJSON);
    assert_int_equal(sky_json_parse(sky_span_cstr("1"), NULL, NULL), SKY_EINVAL);
}

static void test_parse_error_first_wins(void **state)
{
    (void)state;
    sky_error err;
    sky_error_clear(&err);
    sky_error_set(&err, SKY_ETIMEDOUT, "earlier");
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_cstr("nope"), &j, &err), SKY_EJSON);
    assert_int_equal(err.code, SKY_ETIMEDOUT);
    assert_string_equal(err.message, "earlier");
}

static void test_typed_getters(void **state)
{
    (void)state;
    json_t *j = parse_ok("{\"s\":\"x\",\"i\":-7,\"big\":9007199254740993,\"r\":2.5,"
                         "\"t\":true,\"f\":false,\"n\":null}");
    assert_string_equal(sky_json_str(j, "s", "d"), "x");
    assert_string_equal(sky_json_str(j, "i", "d"), "d");
    assert_string_equal(sky_json_str(j, "missing", "d"), "d");
    assert_null(sky_json_str(j, "n", NULL));
    assert_int_equal(sky_json_int(j, "i", 0), -7);
    assert_true(sky_json_int(j, "big", 0) == INT64_C(9007199254740993));
    assert_int_equal(sky_json_int(j, "r", 5), 5);
    assert_int_equal(sky_json_int(j, "s", 5), 5);
    assert_true(sky_json_num(j, "r", 0) == 2.5);
    assert_true(sky_json_num(j, "i", 0) == -7.0);
    assert_true(sky_json_num(j, "t", 1.5) == 1.5);
    assert_int_equal(sky_json_bool(j, "t", 0), 1);
    assert_int_equal(sky_json_bool(j, "f", 1), 0);
    assert_int_equal(sky_json_bool(j, "n", 7), 7);
    json_decref(j);
}

static void test_getters_on_non_objects(void **state)
{
    (void)state;
    json_t *arr = parse_ok("[1]");
    assert_string_equal(sky_json_str(arr, "a", "d"), "d");
    assert_int_equal(sky_json_int(NULL, "a", 3), 3);
    assert_true(sky_json_num(arr, "a", 4.0) == 4.0);
    assert_int_equal(sky_json_bool(NULL, "a", 1), 1);
    json_decref(arr);
}

static void test_path(void **state)
{
    (void)state;
    json_t *j = parse_ok("{\"choices\":[{\"message\":{\"content\":\"hi\"}},{\"n\":2}],"
                         "\"7\":{\"x\":1}}");
    assert_string_equal(json_string_value(sky_json_path(j, "choices.0.message.content")), "hi");
    assert_int_equal(json_integer_value(sky_json_path(j, "choices.1.n")), 2);
    /* a digit key in an object is a key, not an index */
    assert_int_equal(json_integer_value(sky_json_path(j, "7.x")), 1);
    assert_ptr_equal(sky_json_path(j, ""), j);
    assert_null(sky_json_path(j, "choices.2"));
    assert_null(sky_json_path(j, "choices.-1"));
    assert_null(sky_json_path(j, "choices.x"));
    assert_null(sky_json_path(j, "choices.0.message.content.more"));
    assert_null(sky_json_path(j, "choices.99999999999999999999999"));
    assert_null(sky_json_path(j, "nope"));
    assert_null(sky_json_path(j, "choices."));
    assert_null(sky_json_path(NULL, "a"));
    json_decref(j);
}

static void test_dump_compact_ordered(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:i, s:s, s:[b,n]}", "z", 1, "a", "q\"\n", "m", 1);
    assert_non_null(j);
    size_t len = 0;
    char *text = sky_json_dump(j, &len);
    assert_non_null(text);
    assert_string_equal(text, "{\"z\":1,\"a\":\"q\\\"\\n\",\"m\":[true,null]}");
    assert_int_equal(len, strlen(text));
    free(text);
    json_decref(j);
}

static void test_dump_scalar_and_null(void **state)
{
    (void)state;
    json_t *j = json_integer(5);
    char *text = sky_json_dump(j, NULL);
    assert_string_equal(text, "5");
    free(text);
    json_decref(j);
    assert_null(sky_json_dump(NULL, NULL));
}

static void test_deeper_than(void **state)
{
    static const struct {
        const char *text;
        int depth;
    } cases[] = {{"1", 0}, {"{}", 1}, {"[1,{}]", 2}, {"{\"a\":[[{\"b\":[]}]]}", 5}};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v;
        assert_int_equal(sky_json_parse(sky_span_cstr(cases[i].text), &v, NULL), 0);
        assert_int_equal(sky_json_deeper_than(v, cases[i].depth), 0);
        assert_int_equal(sky_json_deeper_than(v, cases[i].depth - 1), cases[i].depth > 0);
        json_decref(v);
    }
}

/* ---- sky_json_scan_int ---- */

static void test_scan_int(void **state)
{
    (void)state;
    assert_int_equal(sky_json_scan_int(sky_span_cstr("0")), 0);
    assert_int_equal(sky_json_scan_int(sky_span_cstr("42")), 42);
    assert_int_equal(sky_json_scan_int(sky_span_cstr("-7")), -7);
    assert_int_equal(sky_json_scan_int(sky_span_cstr("-0")), 0);
    assert_true(sky_json_scan_int(sky_span_cstr("999999999999999999")) ==
                INT64_C(999999999999999999));
    assert_true(sky_json_scan_int(sky_span_cstr("-999999999999999999")) ==
                -INT64_C(999999999999999999));
    assert_int_equal(sky_json_scan_int(sky_span_cstr("1000000000000000000")), 0); /* 19 digits */
    assert_int_equal(sky_json_scan_int(sky_span_cstr("")), 0);
    assert_int_equal(sky_json_scan_int(sky_span_cstr("-")), 0);
    assert_int_equal(sky_json_scan_int(sky_span_cstr("1.5")), 0);
    assert_int_equal(sky_json_scan_int(sky_span_make("12,", 2)), 12); /* only its own bytes */
}

/* ---- sky_json_scan ---- */

/* Writes what the scan reports as one line of events, to compare with the expected. */
typedef struct trace {
    char text[512];
    size_t len;
} trace;

static void trace_add(trace *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->text + t->len, sizeof t->text - t->len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof t->text - t->len);
    t->len += (size_t)n;
}

static int tr_key(void *ud, int depth, sky_span key)
{
    trace_add(ud, "k%d:%.*s ", depth, (int)key.len, key.ptr);
    return 0;
}

static int tr_scalar(void *ud, int depth, sky_json_kind kind, sky_span v)
{
    static const char *const names[] = {"null", "false", "true", "int", "real", "str"};
    trace_add(ud, "%s%d:%.*s ", names[kind], depth, (int)v.len, v.ptr);
    return 0;
}

static int tr_open(void *ud, int depth, sky_json_kind kind, size_t at)
{
    trace_add(ud, "%c%d@%zu ", kind == SKY_JSON_OBJECT ? '{' : '[', depth, at);
    return 0;
}

static int tr_close(void *ud, int depth, sky_json_kind kind, size_t end)
{
    trace_add(ud, "%c%d@%zu ", kind == SKY_JSON_OBJECT ? '}' : ']', depth, end);
    return 0;
}

static const sky_json_visitor k_trace = {tr_key, tr_scalar, tr_open, tr_close};

static void test_scan_reports_in_order(void **state)
{
    (void)state;
    trace t = {{0}, 0};
    const char *text = " {\"a\" : [1, -2.5e3, \"x\\u00e9\\n\", true, null, {}], \"b\":false} ";
    assert_int_equal(sky_json_scan(sky_span_cstr(text), 0, &k_trace, &t), 0);
    assert_string_equal(t.text, "{0@1 k1:a [1@8 int2:1 real2:-2.5e3 str2:x\xC3\xA9\n true2:true "
                                "null2:null {2@45 }2@47 ]1@48 k1:b false1:false }0@60 ");
    /* the offsets frame the members' own bytes */
    assert_memory_equal(text + 8, "[1,", 3);
    assert_int_equal(text[59], '}');
}

static void test_scan_stops_when_asked(void **state)
{
    (void)state;
    trace t = {{0}, 0};
    sky_json_visitor v = k_trace;
    v.scalar = NULL;
    assert_int_equal(sky_json_scan(sky_span_cstr("[1,[2]]"), 0, &v, &t), 0);
    assert_string_equal(t.text, "[0@0 [1@3 ]1@6 ]0@7 ");
    assert_int_equal(sky_json_scan(sky_span_cstr("42"), 0, NULL, NULL), 0);
}

static int stop_at_b(void *ud, int depth, sky_span key)
{
    (void)ud;
    (void)depth;
    return sky_span_eq_cstr(key, "b") ? 7 : 0;
}

static void test_scan_callback_result(void **state)
{
    (void)state;
    sky_json_visitor v = {stop_at_b, NULL, NULL, NULL};
    assert_int_equal(sky_json_scan(sky_span_cstr("{\"a\":1,\"b\":2}"), 0, &v, NULL), 7);
}

/* Every text the scan takes, jansson takes; the ones it leaves are left whole. */
static void test_scan_leaves_to_jansson(void **state)
{
    static const char *const leave[] = {
        "",
        "{",
        "{} x",
        "{} \"abc",
        "null\"]w[[[pY]",
        "[1] tru",
        "1 2",
        "\"a\" \"b",
        "{}]",
        "[1]\"",
        "[1,]",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "1e999",
        "-1e999",
        "99999999999999999999",
        "-9223372036854775809",
        "\"\xC0\x80\"",
        "\"\xED\xA0\x80\"",
        "[1]\v",
        "\"a\x01b\"",
        "\"tab\there\"",
        "\"\x7F\xFF\"",
        "\f[1]",
        "\"\xF4\x90\x80\x80\"",
        "01",
        "[1.]",
    };
    static const char *const take[] = {
        "\"\\ud83d\\ude00\"",
        "1e-999",
        "9223372036854775807",
        "-9223372036854775808",
        "\"\\\\u0000\"",
        "\"\xF4\x8F\xBF\xBF\"",
        " [ ] ",
        "0.5",
        " 12 ",
        "\n-0.5\r\n",
        "\"x\" ",
        "true",
        " null\t",
    };
    (void)state;
    for (size_t i = 0; i < sizeof leave / sizeof leave[0]; i++) {
        if (sky_json_scan(sky_span_cstr(leave[i]), 0, NULL, NULL) != SKY_EJSON)
            fail_msg("scan took %s", leave[i]);
    }
    for (size_t i = 0; i < sizeof take / sizeof take[0]; i++) {
        json_error_t jerr;
        json_t *j = json_loads(take[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (j == NULL || sky_json_scan(sky_span_cstr(take[i]), 0, NULL, NULL) != 0)
            fail_msg("%s: jansson %s, scan refused or not", take[i], j ? "took it" : jerr.text);
        json_decref(j);
    }
}

/* Texts whose parse outgrows the scan's arena: a long escaped string, deep nesting. */
static void test_scan_outgrows_its_arena(void **state)
{
    (void)state;
    size_t n = 20000;
    char *text = malloc(n * 2 + 3);
    assert_non_null(text);
    text[0] = '"';
    for (size_t i = 0; i < n; i++)
        memcpy(text + 1 + 2 * i, "\\n", 2);
    memcpy(text + 1 + 2 * n, "\"", 2);
    trace t = {{0}, 0};
    sky_json_visitor v = {NULL, NULL, tr_open, NULL};
    assert_int_equal(sky_json_scan(sky_span_cstr(text), 0, &v, &t), 0);
    for (size_t i = 0; i < 1500; i++)
        text[i] = '[';
    for (size_t i = 0; i < 1500; i++)
        text[1500 + i] = ']';
    text[3000] = '\0';
    assert_int_equal(sky_json_scan(sky_span_cstr(text), 0, NULL, NULL), 0);
    assert_int_equal(sky_json_scan(sky_span_cstr(text), 1499, NULL, NULL), SKY_EJSON);
    free(text);
}

static void test_scan_depth(void **state)
{
    (void)state;
    assert_int_equal(sky_json_scan(sky_span_cstr("[[[1]]]"), 3, NULL, NULL), 0);
    assert_int_equal(sky_json_scan(sky_span_cstr("[[[[1]]]]"), 3, NULL, NULL), SKY_EJSON);
}

static int skip_a_and_ccc(void *ud, int depth, sky_span key)
{
    (void)tr_key(ud, depth, key);
    return sky_span_eq_cstr(key, "a") || sky_span_eq_cstr(key, "ccc") ? SKY_JSON_SKIP : 0;
}

/* A key that asks to skip its value hears nothing of it. */
static void test_scan_skips_values(void **state)
{
    static const char text[] =
        "{\"a\":[1,{\"b\":2}],\"bb\":3,\"ccc\":{\"a\":4,\"d\":[]},\"e\":{\"a\":5,"
        "\"f\":6},\"a\":\"x\"}";
    static const char want[] = "{0@0 k1:a k1:bb int1:3 k1:ccc k1:e {1@49 k2:a k2:f int2:6 }1@62 "
                               "k1:a }0@71 ";
    sky_json_visitor v = k_trace;
    v.key = skip_a_and_ccc;
    (void)state;
    trace a = {{0}, 0};
    assert_int_equal(sky_json_scan(sky_span_cstr(text), 0, &v, &a), 0);
    assert_string_equal(a.text, want);
}

/* Texts a lenient tokenizer would let by: the scan refuses them, as jansson does. */
static void test_scan_token_checks(void **state)
{
    static const char *const bad[] = {
        "[1 2]",
        "[1,,2]",
        "[,1]",
        "[1,]",
        "[1:2]",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{\"a\":1 \"b\":2}",
        "{\"a\"}",
        "{\"a\":}",
        "{1:2}",
        "{\"a\"::1}",
        "{,\"a\":1}",
        "[tru]",
        "[nulls]",
        "[1.]",
        "[01]",
        "[-]",
        "[1e]",
        "[.5]",
        "[\"a\tb\"]",
        "[\"a\nb\"]",
        "{\"k\r\":1}",
        "[1]]",
        "[[1]",
        "{\"a\":[}]",
        "[1] [2]",
        "{} {}",
        "[\"a\" \"b\"]",
        "[true false]",
        "{\"a\":1}:",
        "[1,\n]",
        "[{}{}]",
        "[[][]]",
        "{\"a\":1,\"b\"}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_error_t jerr;
        json_t *j = json_loads(bad[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (j != NULL || sky_json_scan(sky_span_cstr(bad[i]), 0, NULL, NULL) != SKY_EJSON)
            fail_msg("%s: jansson %s, the scan took it or not", bad[i], j ? "took it" : "refused");
        json_decref(j);
    }
    /* a NUL byte is no JSON, inside a string or after the root */
    assert_int_equal(sky_json_scan(sky_span_make("[1]\0 ", 5), 0, NULL, NULL), SKY_EJSON);
    assert_int_equal(sky_json_scan(sky_span_make("[\"a\0\"]", 6), 0, NULL, NULL), SKY_EJSON);
}

static int count_scalar(void *ud, int depth, sky_json_kind kind, sky_span v)
{
    (void)depth;
    (void)v;
    *(size_t *)ud += kind == SKY_JSON_INTEGER;
    return 0;
}

/* Long flat arrays: every value is reported, whatever the count. */
static void test_scan_many_tokens(void **state)
{
    static const size_t counts[] = {255, 256, 1000, 70000};
    (void)state;
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        size_t n = counts[c], len = 0, seen = 0;
        char *text = malloc(n * 2 + 2);
        assert_non_null(text);
        text[len++] = '[';
        for (size_t i = 0; i < n; i++) {
            text[len++] = '7';
            text[len++] = ',';
        }
        text[len - 1] = ']';
        sky_json_visitor v = {NULL, count_scalar, NULL, NULL};
        assert_int_equal(sky_json_scan(sky_span_make(text, len), 0, &v, &seen), 0);
        assert_int_equal(seen, n);
        free(text);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *in = "{\"id\":\"r1\",\"body\":{\"n\":[1,2.5,\"\\u00e9\"]}}";
    json_t *j = parse_ok(in);
    char *out = sky_json_dump(j, NULL);
    json_t *again = parse_ok(out);
    assert_true(json_equal(j, again));
    free(out);
    json_decref(j);
    json_decref(again);
}

/* Reals keep the digits they were written with, and still come back exactly. */
static void test_dump_reals_shortest(void **state)
{
    (void)state;
    json_t *j = NULL;
    assert_int_equal(
        sky_json_parse(SKY_SPAN_LIT("{\"t\":0.2,\"p\":[1e-7,3.14159],\"n\":5}"), &j, NULL), 0);
    char *text = sky_json_dump(j, NULL);
    assert_string_equal(text, "{\"t\":0.2,\"p\":[1e-7,3.14159],\"n\":5}");
    free(text);
    json_decref(j);
    /* a number that needs all 17 digits keeps them */
    j = json_pack("{s:f}", "x", 0.1 + 0.2);
    text = sky_json_dump(j, NULL);
    json_t *back = NULL;
    assert_int_equal(sky_json_parse(sky_span_cstr(text), &back, NULL), 0);
    assert_true(json_real_value(json_object_get(back, "x")) == 0.1 + 0.2);
    assert_string_equal(text, "{\"x\":0.30000000000000004}");
    free(text);
    json_decref(back);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_int),
        cmocka_unit_test(test_parse_object),
        cmocka_unit_test(test_parse_any_value),
        cmocka_unit_test(test_parse_span_not_terminated),
        cmocka_unit_test(test_parse_error_has_location),
        cmocka_unit_test(test_parse_error_without_err),
        cmocka_unit_test(test_parse_error_first_wins),
        cmocka_unit_test(test_typed_getters),
        cmocka_unit_test(test_getters_on_non_objects),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_dump_compact_ordered),
        cmocka_unit_test(test_dump_scalar_and_null),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_dump_reals_shortest),
        cmocka_unit_test(test_deeper_than),
        cmocka_unit_test(test_scan_reports_in_order),
        cmocka_unit_test(test_scan_stops_when_asked),
        cmocka_unit_test(test_scan_callback_result),
        cmocka_unit_test(test_scan_leaves_to_jansson),
        cmocka_unit_test(test_scan_depth),
        cmocka_unit_test(test_scan_outgrows_its_arena),
        cmocka_unit_test(test_scan_token_checks),
        cmocka_unit_test(test_scan_skips_values),
        cmocka_unit_test(test_scan_many_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
