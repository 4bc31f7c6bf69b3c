/* Tests for capped growable buffers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "skyio/buf.h"
#include "skyio/error.h"

static void test_init_is_empty(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 100);
    sky_span sp = sky_buf_span(&b);
    assert_non_null(sp.ptr);
    assert_int_equal(sp.len, 0);
    sky_buf_free(&b);
}

static void test_append_grows_and_terminates(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 1 << 20);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sky_buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3000);
    assert_int_equal(b.data[3000], '\0');
    assert_memory_equal(b.data + 2997, "abc", 3);
    assert_int_equal(sky_buf_append_str(&b, "!"), 0);
    assert_int_equal(b.len, 3001);
    assert_int_equal(sky_buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 3001);
    sky_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_reserve_allocates_once(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 100);
    assert_int_equal(sky_buf_reserve(&b, 90), 0);
    size_t alloc = b.alloc;
    char *data = b.data;
    assert_true(alloc >= 91);
    for (int i = 0; i < 9; i++)
        assert_int_equal(sky_buf_append(&b, "0123456789", 10), 0);
    assert_ptr_equal(b.data, data); /* no reallocation on the way */
    assert_int_equal(b.alloc, alloc);
    assert_int_equal(sky_buf_reserve(&b, 11), SKY_ETOOBIG); /* 101 > the cap */
    assert_int_equal(sky_buf_reserve(&b, 10), 0);
    sky_buf_free(&b);
}

static void test_binary_content(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 64);
    assert_int_equal(sky_buf_append(&b, "a\0b", 3), 0);
    sky_span sp = sky_buf_span(&b);
    assert_int_equal(sp.len, 3);
    assert_memory_equal(sp.ptr, "a\0b", 3);
    sky_buf_free(&b);
}

static void test_cap_exact_fits(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 8);
    assert_int_equal(sky_buf_append(&b, "12345678", 8), 0);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(sky_buf_append(&b, "", 0), 0);
    sky_buf_free(&b);
}

static void test_cap_enforced_content_intact(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 8);
    assert_int_equal(sky_buf_append(&b, "abcd", 4), 0);
    assert_int_equal(sky_buf_append(&b, "efghi", 5), SKY_ETOOBIG);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "abcd");
    assert_int_equal(sky_buf_append_str(&b, "123456789"), SKY_ETOOBIG);
    assert_int_equal(sky_buf_printf(&b, "%s", "hello"), SKY_ETOOBIG);
    assert_string_equal(b.data, "abcd");
    /* a huge length must not wrap the size check */
    assert_int_equal(sky_buf_append(&b, "x", SIZE_MAX), SKY_ETOOBIG);
    assert_int_equal(sky_buf_append(&b, "efgh", 4), 0);
    assert_string_equal(b.data, "abcdefgh");
    sky_buf_free(&b);
}

static void test_zero_cap(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 0);
    assert_int_equal(sky_buf_append(&b, "a", 1), SKY_ETOOBIG);
    assert_int_equal(sky_buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 0);
    sky_buf_free(&b);
}

static void test_printf(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 256);
    assert_int_equal(sky_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_int_equal(sky_buf_printf(&b, "|%05.1f|", 3.14159), 0);
    assert_string_equal(b.data, "42-x|003.1|");
    assert_int_equal(b.len, strlen("42-x|003.1|"));
    assert_int_equal(sky_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, strlen("42-x|003.1|"));
    sky_buf_free(&b);
}

static void test_printf_large(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 10000);
    char big[5000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(sky_buf_printf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, sizeof(big) + 1);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[b.len - 1], '>');
    sky_buf_free(&b);
}

/* A text that does not fit what is allocated grows the buffer and is written whole; one
 * that fits the cap exactly is taken; one past it leaves the buffer as it was. */
static void test_printf_fits_grows_and_caps(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 300);
    assert_int_equal(sky_buf_printf(&b, "%s", "head:"), 0);
    char line[200];
    memset(line, 'q', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    assert_int_equal(sky_buf_printf(&b, "%s", line), 0); /* past the first allocation */
    assert_int_equal(b.len, 5 + sizeof(line) - 1);
    assert_memory_equal(b.data, "head:qqq", 8);
    assert_int_equal(b.data[b.len], '\0');
    size_t left = 300 - b.len;
    memset(line, 'r', left);
    line[left] = '\0';
    line[left - 1] = 'z';
    assert_int_equal(sky_buf_printf(&b, "%s!", line), SKY_ETOOBIG); /* one byte past the cap */
    assert_int_equal(b.len, 300 - left);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(sky_buf_printf(&b, "%s", line), 0); /* exactly to the cap */
    assert_int_equal(b.len, 300);
    assert_int_equal(b.data[299], 'z');
    assert_int_equal(b.data[300], '\0');
    assert_int_equal(sky_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(sky_buf_printf(&b, "%c", 'x'), SKY_ETOOBIG);
    assert_int_equal(b.len, 300);
    sky_buf_free(&b);
}

static void test_consume(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 64);
    assert_int_equal(sky_buf_append_str(&b, "hello world"), 0);
    sky_buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "world");
    sky_buf_consume(&b, 0);
    assert_string_equal(b.data, "world");
    sky_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    /* the cap counts current content, so consuming makes room again */
    assert_int_equal(sky_buf_append(&b, "0123456789012345678901234567890123456789", 40), 0);
    sky_buf_consume(&b, 30);
    assert_int_equal(sky_buf_append(&b, "0123456789012345678901234567890123456789", 40), 0);
    assert_int_equal(b.len, 50);
    sky_buf_free(&b);
}

static void test_reset_keeps_storage(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 64);
    assert_int_equal(sky_buf_append_str(&b, "abc"), 0);
    char *storage = b.data;
    sky_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, storage);
    assert_string_equal(b.data, "");
    sky_buf_reset(&b);
    sky_buf_free(&b);
    sky_buf_reset(&b); /* on a freed buffer too */
}

static void test_detach(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 64);
    assert_int_equal(sky_buf_append_str(&b, "owned"), 0);
    size_t len = 0;
    char *s = sky_buf_detach(&b, &len);
    assert_string_equal(s, "owned");
    assert_int_equal(len, 5);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 64);
    free(s);
    /* still usable after */
    assert_int_equal(sky_buf_append_str(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    sky_buf_free(&b);
}

static void test_detach_empty(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 64);
    size_t len = 99;
    char *s = sky_buf_detach(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    s = sky_buf_detach(&b, NULL);
    assert_non_null(s);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_append_grows_and_terminates),
        cmocka_unit_test(test_reserve_allocates_once),
        cmocka_unit_test(test_binary_content),
        cmocka_unit_test(test_cap_exact_fits),
        cmocka_unit_test(test_cap_enforced_content_intact),
        cmocka_unit_test(test_zero_cap),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_large),
        cmocka_unit_test(test_printf_fits_grows_and_caps),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_reset_keeps_storage),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_detach_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
