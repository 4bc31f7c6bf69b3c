/* Tests for the custom_id string set. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/error.h"
#include "skyio/idset.h"

static sky_span id_of(char *buf, size_t size, const char *prefix, unsigned i)
{
    int n = snprintf(buf, size, "%s%u", prefix, i);
    return sky_span_make(buf, (size_t)n);
}

static void test_add_and_contains(void **state)
{
    (void)state;
    sky_idset *s = sky_idset_new(0);
    assert_non_null(s);
    assert_int_equal(sky_idset_count(s), 0);
    assert_false(sky_idset_contains(s, SKY_SPAN_LIT("req-1")));
    assert_int_equal(sky_idset_add(s, SKY_SPAN_LIT("req-1")), 1);
    assert_int_equal(sky_idset_add(s, SKY_SPAN_LIT("req-2")), 1);
    assert_true(sky_idset_contains(s, SKY_SPAN_LIT("req-1")));
    assert_true(sky_idset_contains(s, SKY_SPAN_LIT("req-2")));
    assert_false(sky_idset_contains(s, SKY_SPAN_LIT("req-3")));
    assert_false(sky_idset_contains(s, SKY_SPAN_LIT("req-")));
    assert_false(sky_idset_contains(s, SKY_SPAN_LIT("req-10")));
    assert_int_equal(sky_idset_count(s), 2);
    sky_idset_free(s);
}

static void test_duplicates_detected(void **state)
{
    (void)state;
    sky_idset *s = sky_idset_new(4);
    assert_int_equal(sky_idset_add(s, SKY_SPAN_LIT("a")), 1);
    assert_int_equal(sky_idset_add(s, SKY_SPAN_LIT("a")), 0);
    char copy[] = "a";
    assert_int_equal(sky_idset_add(s, sky_span_make(copy, 1)), 0);
    assert_int_equal(sky_idset_count(s), 1);
    sky_idset_free(s);
}

static void test_strings_are_copied(void **state)
{
    (void)state;
    sky_idset *s = sky_idset_new(0);
    char buf[16];
    strcpy(buf, "temporary");
    assert_int_equal(sky_idset_add(s, sky_span_cstr(buf)), 1);
    memset(buf, 'x', sizeof(buf) - 1);
    assert_true(sky_idset_contains(s, SKY_SPAN_LIT("temporary")));
    sky_idset_free(s);
}

static void test_empty_and_binary_ids(void **state)
{
    (void)state;
    sky_idset *s = sky_idset_new(0);
    assert_int_equal(sky_idset_add(s, sky_span_make("", 0)), 1);
    assert_int_equal(sky_idset_add(s, sky_span_make(NULL, 0)), 0);
    assert_int_equal(sky_idset_add(s, sky_span_make("a\0b", 3)), 1);
    assert_int_equal(sky_idset_add(s, sky_span_make("a\0c", 3)), 1);
    assert_true(sky_idset_contains(s, sky_span_make("a\0b", 3)));
    assert_false(sky_idset_contains(s, sky_span_make("a", 1)));
    assert_int_equal(sky_idset_count(s), 3);
    assert_int_equal(sky_idset_add(s, sky_span_make(NULL, 3)), SKY_EINVAL);
    assert_false(sky_idset_contains(NULL, SKY_SPAN_LIT("a")));
    sky_idset_free(NULL);
    sky_idset_free(s);
}

static void test_grow_to_a_million(void **state)
{
    (void)state;
    const unsigned n = 1000000;
    sky_idset *s = sky_idset_new(0);
    char buf[32];
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(sky_idset_add(s, id_of(buf, sizeof(buf), "request-", i)), 1);
    assert_int_equal(sky_idset_count(s), n);
    for (unsigned i = 0; i < n; i += 7)
        assert_true(sky_idset_contains(s, id_of(buf, sizeof(buf), "request-", i)));
    for (unsigned i = 0; i < n; i += 101)
        assert_int_equal(sky_idset_add(s, id_of(buf, sizeof(buf), "request-", i)), 0);
    for (unsigned i = n; i < n + 1000; i++)
        assert_false(sky_idset_contains(s, id_of(buf, sizeof(buf), "request-", i)));
    assert_false(sky_idset_contains(s, id_of(buf, sizeof(buf), "other-", 5)));
    assert_int_equal(sky_idset_count(s), n);
    /* 8-byte slots at most 3/4 full, ids packed in the arena: well under 100 bytes an id. */
    assert_true(sky_idset_memory(s) < (size_t)n * 100);
    sky_idset_free(s);
}

static void test_presized(void **state)
{
    (void)state;
    sky_idset *s = sky_idset_new(100000);
    size_t before = sky_idset_memory(s);
    char buf[32];
    for (unsigned i = 0; i < 70000; i++)
        assert_int_equal(sky_idset_add(s, id_of(buf, sizeof(buf), "x", i)), 1);
    /* No slot growth was needed: only the arena grew. */
    assert_true(sky_idset_memory(s) - before < 70000 * 32);
    sky_idset_free(s);
}

/* The line ids of refused input lines take a bit each, and stay an exact set of strings. */
static void test_line_ids_are_compact(void **state)
{
    (void)state;
    char id[64];
    sky_idset *set = sky_idset_new(0);
    assert_non_null(set);
    for (int i = 1; i <= 1000000; i++) {
        snprintf(id, sizeof(id), "skyio-%s-line-%d", i % 2 ? "input" : "duplicate", i);
        assert_int_equal(sky_idset_add(set, sky_span_cstr(id)), 1);
    }
    assert_int_equal(sky_idset_add(set, sky_span_cstr("skyio-input-line-999999")), 0);
    assert_int_equal(sky_idset_count(set), 1000000);
    assert_true(sky_idset_memory(set) < 400 * 1024); /* not ~50 MB of strings */
    assert_true(sky_idset_contains(set, sky_span_cstr("skyio-duplicate-line-2")));
    assert_false(sky_idset_contains(set, sky_span_cstr("skyio-duplicate-line-1")));
    assert_false(sky_idset_contains(set, sky_span_cstr("skyio-input-line-1000001")));
    /* other spellings are other strings */
    assert_false(sky_idset_contains(set, sky_span_cstr("skyio-input-line-01")));
    assert_int_equal(sky_idset_add(set, sky_span_cstr("skyio-input-line-01")), 1);
    assert_true(sky_idset_contains(set, sky_span_cstr("skyio-input-line-01")));
    assert_false(sky_idset_contains(set, sky_span_cstr("skyio-input-line-")));
    assert_int_equal(sky_idset_add(set, sky_span_cstr("skyio-input-line-")), 1);
    assert_int_equal(sky_idset_add(set, sky_span_cstr("skyio-input-line-12x")), 1);
    assert_false(sky_idset_contains(set, sky_span_cstr("skyio-input-line-12"))); /* even: dup */
    assert_int_equal(sky_idset_add(set, sky_span_cstr("skyio-input-line-99999999999")), 1);
    assert_true(sky_idset_contains(set, sky_span_cstr("skyio-input-line-99999999999")));
    assert_int_equal(sky_idset_count(set), 1000004);
    sky_idset_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_contains),     cmocka_unit_test(test_duplicates_detected),
        cmocka_unit_test(test_strings_are_copied),   cmocka_unit_test(test_empty_and_binary_ids),
        cmocka_unit_test(test_grow_to_a_million),    cmocka_unit_test(test_presized),
        cmocka_unit_test(test_line_ids_are_compact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
