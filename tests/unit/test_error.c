/* Tests for error codes, names, the first-cause-wins recorder and formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "skyio/error.h"

static void test_codes_are_negative_and_distinct(void **state)
{
    (void)state;
    static const int codes[] = {
#define XX(name, text) SKY_##name,
        SKY_ERRNO_MAP(XX)
#undef XX
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(codes); i++) {
        assert_true(codes[i] < 0);
        for (size_t j = i + 1; j < SKY_ARRAY_LEN(codes); j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

static void test_names_and_texts(void **state)
{
    (void)state;
    assert_string_equal(sky_err_name(SKY_ECANCELED), "ECANCELED");
    assert_string_equal(sky_strerror(SKY_ECANCELED), "operation canceled");
    assert_string_equal(sky_err_name(SKY_ETOOBIG), "ETOOBIG");
    assert_string_equal(sky_strerror(SKY_ENOMEM), "out of memory");
    assert_string_equal(sky_err_name(SKY_OK), "OK");
    assert_string_equal(sky_strerror(SKY_OK), "success");
#define XX(name, text)                                                                             \
    assert_string_equal(sky_err_name(SKY_##name), #name);                                          \
    assert_string_equal(sky_strerror(SKY_##name), text);
    SKY_ERRNO_MAP(XX)
#undef XX
}

static void test_unknown_code(void **state)
{
    (void)state;
    assert_string_equal(sky_err_name(12345), "UNKNOWN");
    assert_string_equal(sky_strerror(-1), "unknown error");
    assert_non_null(sky_strerror(SKY__ERR_END));
}

static void test_set_records_and_returns_code(void **state)
{
    (void)state;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(err.code, 0);
    assert_int_equal(sky_error_set(&err, SKY_ETIMEDOUT, "after %d ms", 1500), SKY_ETIMEDOUT);
    assert_int_equal(err.code, SKY_ETIMEDOUT);
    assert_string_equal(err.message, "after 1500 ms");
}

static void test_first_error_wins(void **state)
{
    (void)state;
    sky_error err;
    sky_error_clear(&err);
    sky_error_set(&err, SKY_ECONNRESET, "peer reset");
    assert_int_equal(sky_error_set(&err, SKY_EIO, "cleanup failed"), SKY_EIO);
    assert_int_equal(err.code, SKY_ECONNRESET);
    assert_string_equal(err.message, "peer reset");
    sky_error_clear(&err);
    sky_error_set(&err, SKY_EIO, NULL);
    assert_int_equal(err.code, SKY_EIO);
    assert_string_equal(err.message, "");
}

static void test_set_null_error(void **state)
{
    (void)state;
    assert_int_equal(sky_error_set(NULL, SKY_EINVAL, "x"), SKY_EINVAL);
    sky_error_set_service(NULL, "x");
}

static void test_message_truncated(void **state)
{
    (void)state;
    char big[SKY_ERROR_MESSAGE_MAX * 2];
    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sky_error err;
    sky_error_clear(&err);
    sky_error_set(&err, SKY_EPROTO, "%s", big);
    assert_int_equal(strlen(err.message), SKY_ERROR_MESSAGE_MAX - 1);
}

static void test_service_code_first_wins(void **state)
{
    (void)state;
    sky_error err;
    sky_error_clear(&err);
    sky_error_set_service(&err, "rate_limit_exceeded");
    sky_error_set_service(&err, "other");
    assert_string_equal(err.service_code, "rate_limit_exceeded");
}

static void test_format_full(void **state)
{
    (void)state;
    sky_error err;
    sky_error_clear(&err);
    sky_error_set(&err, SKY_ETIMEDOUT, "gateway gave up");
    err.http_status = 504;
    err.curl_code = 28;
    char out[256];
    assert_ptr_equal(sky_error_format(&err, out, sizeof(out)), out);
    assert_string_equal(out, "ETIMEDOUT: operation timed out (HTTP 504, curl 28): gateway gave up");
    sky_error_set_service(&err, "Timeout");
    sky_error_format(&err, out, sizeof(out));
    assert_string_equal(
        out, "ETIMEDOUT: operation timed out (HTTP 504, Timeout, curl 28): gateway gave up");
}

static void test_format_plain(void **state)
{
    (void)state;
    sky_error err;
    sky_error_clear(&err);
    char out[128];
    sky_error_format(&err, out, sizeof(out));
    assert_string_equal(out, "OK: success");
    sky_error_set(&err, SKY_ENOMEM, NULL);
    sky_error_format(&err, out, sizeof(out));
    assert_string_equal(out, "ENOMEM: out of memory");
    err.curl_code = 7;
    sky_error_format(&err, out, sizeof(out));
    assert_string_equal(out, "ENOMEM: out of memory (curl 7)");
}

static void test_format_small_buffer(void **state)
{
    (void)state;
    sky_error err;
    sky_error_clear(&err);
    sky_error_set(&err, SKY_EHTTP, "a long message that will not fit");
    err.http_status = 429;
    char out[12];
    memset(out, 'X', sizeof(out));
    sky_error_format(&err, out, sizeof(out));
    assert_string_equal(out, "EHTTP: HTTP");
    const char *full = "EHTTP: HTTP error status (HTTP 429): a long message that will not fit";
    size_t full_len = strlen(full);
    for (size_t n = 1; n < 80; n++) {
        char tiny[81];
        memset(tiny, 'X', sizeof(tiny));
        sky_error_format(&err, tiny, n);
        /* cut at the buffer, always terminated, and a prefix of the whole line */
        assert_int_equal(strlen(tiny), n - 1 < full_len ? n - 1 : full_len);
        assert_memory_equal(tiny, full, strlen(tiny));
        assert_int_equal(tiny[n], 'X'); /* nothing written past the buffer */
    }
    char untouched = 'U';
    sky_error_format(&err, &untouched, 0);
    assert_int_equal(untouched, 'U');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_are_negative_and_distinct),
        cmocka_unit_test(test_names_and_texts),
        cmocka_unit_test(test_unknown_code),
        cmocka_unit_test(test_set_records_and_returns_code),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_set_null_error),
        cmocka_unit_test(test_message_truncated),
        cmocka_unit_test(test_service_code_first_wins),
        cmocka_unit_test(test_format_full),
        cmocka_unit_test(test_format_plain),
        cmocka_unit_test(test_format_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
