/* Tests for the header map and the retry / rate-limit header parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "skyio/headers.h"
#include "skyio/error.h"

/* Wed, 21 Oct 2015 07:28:00 GMT, in ms since the epoch. */
#define DATE_MS INT64_C(1445412480000)
#define DATE_TEXT "Wed, 21 Oct 2015 07:28:00 GMT"

static int setup(void **state)
{
    *state = sky_headers_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    sky_headers_free(*state);
    return 0;
}

static int add(sky_headers *h, const char *name, const char *value)
{
    return sky_headers_add(h, sky_span_cstr(name), sky_span_cstr(value));
}

static int line(sky_headers *h, const char *text)
{
    return sky_headers_parse_line(h, text, strlen(text));
}

static void test_get_is_case_insensitive(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(add(h, "Content-Type", "application/json"), 0);
    assert_string_equal(sky_headers_get(h, "content-type"), "application/json");
    assert_string_equal(sky_headers_get(h, "CONTENT-TYPE"), "application/json");
    assert_null(sky_headers_get(h, "content-typ"));
    assert_null(sky_headers_get(h, "content-type-x"));
    assert_null(sky_headers_get(h, "x-missing"));
}

static void test_repeats_kept_in_order(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(add(h, "Set-Cookie", "a=1"), 0);
    assert_int_equal(add(h, "X-Other", "o"), 0);
    assert_int_equal(add(h, "set-cookie", "b=2"), 0);
    assert_int_equal(sky_headers_count(h), 3);
    assert_string_equal(sky_headers_get(h, "set-cookie"), "a=1"); /* the first wins */
    const char *name;
    const char *value;
    assert_int_equal(sky_headers_at(h, 2, &name, &value), 0);
    assert_string_equal(name, "set-cookie");
    assert_string_equal(value, "b=2");
    assert_int_equal(sky_headers_at(h, 1, &name, &value), 0);
    assert_string_equal(name, "X-Other");
    assert_int_equal(sky_headers_at(h, 3, &name, &value), SKY_EINVAL);
}

static void test_values_trimmed_and_copied(void **state)
{
    sky_headers *h = *state;
    char name[] = "X-Trim";
    char value[] = " \t padded value \t ";
    assert_int_equal(sky_headers_add(h, sky_span_cstr(name), sky_span_cstr(value)), 0);
    memset(name, 'z', sizeof name - 1);
    memset(value, 'z', sizeof value - 1);
    assert_string_equal(sky_headers_get(h, "x-trim"), "padded value");
    assert_int_equal(add(h, "X-Empty", "   "), 0);
    assert_string_equal(sky_headers_get(h, "x-empty"), "");
}

static void test_invalid_names(void **state)
{
    sky_headers *h = *state;
    const char *bad[] = {"",        "Bad Name",    "Bad:Name", "Bad\tName", "(paren)",
                         "quote\"", "caf\xC3\xA9", "a/b",      "x@y"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(bad); i++)
        assert_int_equal(add(h, bad[i], "v"), SKY_EINVAL);
    assert_int_equal(sky_headers_add(h, sky_span_make("A\0B", 3), SKY_SPAN_LIT("v")), SKY_EINVAL);
    assert_int_equal(add(h, "!#$%&'*+-.^_`|~09azAZ", "v"), 0); /* every tchar kind */
    assert_int_equal(sky_headers_count(h), 1);
}

/* RFC 9110: CR, LF and NUL inside a value are replaced with SP. */
static void test_value_control_bytes_replaced(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(sky_headers_add(h, SKY_SPAN_LIT("X-A"), sky_span_make("a\0b\rc\nd", 7)), 0);
    assert_string_equal(sky_headers_get(h, "x-a"), "a b c d");
    /* At the ends they are trimmed like the spaces they become (found by fuzzing). */
    assert_int_equal(sky_headers_add(h, SKY_SPAN_LIT("X-B"), sky_span_make("\0 a\r\0", 5)), 0);
    assert_string_equal(sky_headers_get(h, "x-b"), "a");
    assert_int_equal(line(h, "X-C: \r\r\n"), 0);
    assert_string_equal(sky_headers_get(h, "x-c"), "");
}

static void test_parse_lines(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(line(h, "HTTP/1.1 200 OK\r\n"), 0);
    assert_int_equal(line(h, "Content-Type: text/event-stream\r\n"), 0);
    assert_int_equal(line(h, "x-request-id:abc\n"), 0);
    assert_int_equal(line(h, "X-Colon: a: b\r\n"), 0);
    assert_int_equal(line(h, "X-Empty:\r\n"), 0);
    assert_int_equal(line(h, "\r\n"), 0);
    assert_int_equal(line(h, "\n"), 0);
    assert_int_equal(sky_headers_count(h), 4);
    assert_string_equal(sky_headers_get(h, "content-type"), "text/event-stream");
    assert_string_equal(sky_headers_get(h, "X-Request-Id"), "abc");
    assert_string_equal(sky_headers_get(h, "x-colon"), "a: b");
    assert_string_equal(sky_headers_get(h, "x-empty"), "");
}

/* After a redirect or a 1xx, only the final response's headers remain. */
static void test_status_line_resets(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(line(h, "HTTP/1.1 100 Continue\r\n"), 0);
    assert_int_equal(line(h, "X-First: 1\r\n"), 0);
    assert_int_equal(line(h, "\r\n"), 0);
    assert_int_equal(line(h, "HTTP/1.1 302 Found\r\n"), 0);
    assert_int_equal(line(h, "Location: /next\r\n"), 0);
    assert_int_equal(line(h, "\r\n"), 0);
    assert_int_equal(line(h, "HTTP/2 429\r\n"), 0);
    assert_int_equal(line(h, "retry-after: 3\r\n"), 0);
    assert_int_equal(sky_headers_count(h), 1);
    assert_null(sky_headers_get(h, "x-first"));
    assert_null(sky_headers_get(h, "location"));
    assert_string_equal(sky_headers_get(h, "retry-after"), "3");
}

static void test_bad_lines(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(line(h, "no colon here\r\n"), SKY_EPROTO);
    assert_int_equal(line(h, "Bad Name: v\r\n"), SKY_EPROTO);
    assert_int_equal(line(h, "Name : v\r\n"), SKY_EPROTO); /* no space before the colon */
    assert_int_equal(line(h, ": no name\r\n"), SKY_EPROTO);
    assert_int_equal(line(h, " folded first\r\n"), SKY_EPROTO); /* nothing to fold into */
    assert_int_equal(line(h, "http/1.1 200 OK\r\n"), SKY_EPROTO);
    assert_int_equal(sky_headers_count(h), 0);
}

/* Obsolete line folding joins the previous value with one space (RFC 9112 5.2). */
static void test_obs_fold_appends(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(line(h, "X-Long: first\r\n"), 0);
    assert_int_equal(line(h, " second \r\n"), 0);
    assert_int_equal(line(h, "\t\tthird\r\n"), 0);
    assert_int_equal(line(h, "   \r\n"), 0);
    assert_string_equal(sky_headers_get(h, "x-long"), "first second third");
    assert_int_equal(line(h, "X-Blank:\r\n"), 0);
    assert_int_equal(line(h, " later\r\n"), 0);
    assert_string_equal(sky_headers_get(h, "x-blank"), "later");
    assert_string_equal(sky_headers_get(h, "x-long"), "first second third");
}

static void test_clear_keeps_map_usable(void **state)
{
    sky_headers *h = *state;
    for (int i = 0; i < 100; i++)
        assert_int_equal(add(h, "X-Many", "v"), 0);
    assert_int_equal(sky_headers_count(h), 100);
    sky_headers_clear(h);
    assert_int_equal(sky_headers_count(h), 0);
    assert_null(sky_headers_get(h, "x-many"));
    assert_int_equal(add(h, "X-After", "1"), 0);
    assert_string_equal(sky_headers_get(h, "x-after"), "1");
}

/* A copy holds the same entries in order, past the map's inline room, folded values too;
 * a map copied into itself doubles once. */
static void test_add_all_copies(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(line(h, "X-Long: first\r\n"), 0);
    assert_int_equal(line(h, " second\r\n"), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(add(h, "X-Many", i % 2 ? "odd" : ""), 0);
    sky_headers *c = sky_headers_new();
    assert_non_null(c);
    assert_int_equal(add(c, "Before", "1"), 0);
    assert_int_equal(sky_headers_add_all(c, h), 0);
    assert_int_equal(sky_headers_add_all(c, NULL), 0);
    assert_int_equal(sky_headers_count(c), 22);
    const char *n, *v;
    assert_int_equal(sky_headers_at(c, 1, &n, &v), 0);
    assert_string_equal(n, "X-Long");
    assert_string_equal(v, "first second");
    assert_int_equal(sky_headers_at(c, 21, &n, &v), 0);
    assert_string_equal(n, "X-Many");
    assert_string_equal(v, "odd");
    assert_int_equal(sky_headers_add_all(c, c), 0);
    assert_int_equal(sky_headers_count(c), 44);
    assert_int_equal(sky_headers_at(c, 22, &n, &v), 0);
    assert_string_equal(n, "Before");
    assert_int_equal(sky_headers_add_all(NULL, c), SKY_EINVAL);
    sky_headers_free(c);
}

/* Truncating drops the last entries and wipes their bytes; the map takes more after it. */
static void test_truncate(void **state)
{
    sky_headers *h = *state;
    assert_int_equal(add(h, "Content-Type", "application/json"), 0);
    assert_int_equal(add(h, "Authorization", "Bearer secret"), 0);
    const char *v = sky_headers_get(h, "authorization");
    assert_non_null(v);
    sky_headers_truncate(h, 5); /* nothing past the count */
    assert_int_equal(sky_headers_count(h), 2);
    sky_headers_truncate(h, 1);
    assert_int_equal(sky_headers_count(h), 1);
    assert_null(sky_headers_get(h, "authorization"));
    assert_int_equal(v[0], '\0'); /* the pool keeps the bytes, wiped */
    assert_string_equal(sky_headers_get(h, "content-type"), "application/json");
    assert_int_equal(add(h, "api-key", "k"), 0);
    assert_string_equal(sky_headers_get(h, "api-key"), "k");
    sky_headers_truncate(h, 0);
    assert_int_equal(sky_headers_count(h), 0);
    sky_headers_truncate(NULL, 0);
}

/* A header taken and dropped request after request reuses the same bytes: the map does not
 * grow, inline or past it. */
static void test_truncate_gives_bytes_back(void **state)
{
    sky_headers *h = *state;
    for (int round = 0; round < 2; round++) {
        size_t base = sky_headers_count(h);
        assert_int_equal(add(h, "x-request-id", "first"), 0);
        const char *first = sky_headers_get(h, "x-request-id");
        sky_headers_truncate(h, base);
        for (int i = 0; i < 1000; i++) {
            assert_int_equal(add(h, "x-request-id", "0123456789abcdef"), 0);
            assert_ptr_equal(sky_headers_get(h, "x-request-id"), first);
            sky_headers_truncate(h, base);
        }
        char big[700]; /* past the inline bytes: the next round works in a block */
        memset(big, 'v', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(add(h, "X-Big", big), 0);
    }
}

static void test_get_int64(void **state)
{
    sky_headers *h = *state;
    int64_t v = 42;
    assert_int_equal(sky_headers_get_int64(h, "x-ratelimit-remaining-requests", &v), SKY_ENOTFOUND);
    assert_int_equal(line(h, "x-ratelimit-remaining-requests: 4999\r\n"), 0);
    assert_int_equal(sky_headers_get_int64(h, "X-RateLimit-Remaining-Requests", &v), 0);
    assert_int_equal(v, 4999);
    const struct {
        const char *text;
        int rc;
        int64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"-12", 0, -12},
        {"+7", 0, 7},
        {"9223372036854775807", 0, INT64_MAX},
        {"-9223372036854775808", 0, INT64_MIN},
        {"9223372036854775808", SKY_EINVAL, 0},
        {"-9223372036854775809", SKY_EINVAL, 0},
        {"", SKY_EINVAL, 0},
        {"-", SKY_EINVAL, 0},
        {"12a", SKY_EINVAL, 0},
        {"1.5", SKY_EINVAL, 0},
        {"1 2", SKY_EINVAL, 0},
        {"0x10", SKY_EINVAL, 0},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++) {
        sky_headers_clear(h);
        assert_int_equal(add(h, "X-N", cases[i].text), 0);
        v = 42;
        assert_int_equal(sky_headers_get_int64(h, "x-n", &v), cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(v, cases[i].want);
    }
}

static void test_durations(void **state)
{
    (void)state;
    const struct {
        const char *text;
        int rc;
        int64_t ms;
    } cases[] = {
        {"1s", 0, 1000},
        {"6m0s", 0, 360000},
        {"20ms", 0, 20},
        {"1h2m3.5s", 0, 3723500},
        {"0.5s", 0, 500},
        {".5s", 0, 500},
        {"1.s", 0, 1000},
        {"150us", 0, 0},
        {"1500us", 0, 2}, /* 1.5 ms rounds to nearest, half up */
        {"1499us", 0, 1},
        {"2500\xC2\xB5s", 0, 3},
        {"2500\xCE\xBCs", 0, 3},
        {"999999ns", 0, 1},
        {"2", 0, 2000},
        {"0", 0, 0},
        {"0.25", 0, 250},
        {"1m30s", 0, 90000},
        {"2562047h", 0, INT64_C(2562047) * 3600000},
        {"", SKY_EINVAL, 0},
        {"-1s", SKY_EINVAL, 0},
        {"+1s", SKY_EINVAL, 0},
        {"s", SKY_EINVAL, 0},
        {".s", SKY_EINVAL, 0},
        {"1x", SKY_EINVAL, 0},
        {"1m2", SKY_EINVAL, 0}, /* a unit is only optional on a lone number */
        {"1 s", SKY_EINVAL, 0},
        {" 1s", SKY_EINVAL, 0},
        {"1s ", SKY_EINVAL, 0},
        {"abc", SKY_EINVAL, 0},
        {"1.2.3s", SKY_EINVAL, 0},
        {"2562048h", SKY_EINVAL, 0}, /* past 2^63 ns */
        {"99999999999999999999s", SKY_EINVAL, 0},
        {"9223372036854775807ns9223372036854775807ns", SKY_EINVAL, 0},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++) {
        int64_t ms = -42;
        int rc = sky_parse_duration_ms(sky_span_cstr(cases[i].text), &ms);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0 && ms != cases[i].ms)
            fail_msg("\"%s\": %lld ms, want %lld", cases[i].text, (long long)ms,
                     (long long)cases[i].ms);
    }
}

/* Only the bytes of the span count, not what follows them. */
static void test_duration_span_bounds(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(sky_parse_duration_ms(sky_span_make("20msXYZ", 4), &ms), 0);
    assert_int_equal(ms, 20);
    assert_int_equal(sky_parse_duration_ms(sky_span_make("1s", 1), &ms), 0);
    assert_int_equal(ms, 1000);
}

static int retry_after(sky_headers *h, int64_t wall_ms, int64_t *out)
{
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 0, wall_ms);
    return sky_parse_retry_after_ms(h, &fc.clock, out);
}

static void test_retry_after_absent(void **state)
{
    sky_headers *h = *state;
    int64_t ms;
    assert_int_equal(retry_after(h, DATE_MS, &ms), SKY_ENOTFOUND);
    assert_int_equal(add(h, "X-RateLimit-Reset-Requests", "1s"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), SKY_ENOTFOUND);
}

static void test_retry_after_ms_headers(void **state)
{
    sky_headers *h = *state;
    int64_t ms;
    assert_int_equal(add(h, "x-ms-retry-after-ms", "700"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), 0);
    assert_int_equal(ms, 700);
    assert_int_equal(add(h, "Retry-After", "9"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), 0);
    assert_int_equal(ms, 700); /* the ms header comes before Retry-After */
    assert_int_equal(add(h, "Retry-After-Ms", "123.5"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), 0);
    assert_int_equal(ms, 124); /* retry-after-ms first; fractions round up */
}

static void test_retry_after_ms_values(void **state)
{
    sky_headers *h = *state;
    const struct {
        const char *text;
        int rc;
        int64_t ms;
    } cases[] = {
        {"0", 0, 0},
        {"250", 0, 250},
        {"0.1", 0, 1},
        {"12.000", 0, 12},
        {"-5", SKY_EINVAL, 0},
        {"", SKY_EINVAL, 0},
        {"1e3", SKY_EINVAL, 0},
        {"abc", SKY_EINVAL, 0},
        {"99999999999999999999", SKY_EINVAL, 0},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++) {
        sky_headers_clear(h);
        assert_int_equal(add(h, "retry-after-ms", cases[i].text), 0);
        int64_t ms = -42;
        int rc = retry_after(h, DATE_MS, &ms);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0 && ms != cases[i].ms)
            fail_msg("\"%s\": %lld, want %lld", cases[i].text, (long long)ms,
                     (long long)cases[i].ms);
    }
}

/* A garbled ms header does not hide a readable Retry-After behind it. */
static void test_retry_after_falls_back_when_unreadable(void **state)
{
    sky_headers *h = *state;
    int64_t ms;
    assert_int_equal(add(h, "retry-after-ms", "soon"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), SKY_EINVAL);
    assert_int_equal(add(h, "retry-after", "2"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), 0);
    assert_int_equal(ms, 2000);
}

static void test_retry_after_seconds(void **state)
{
    sky_headers *h = *state;
    int64_t ms;
    assert_int_equal(line(h, "Retry-After: 120\r\n"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), 0);
    assert_int_equal(ms, 120000);
    /* fractional seconds, as some servers send and OpenAI's SDKs read: rounded up */
    sky_headers_clear(h);
    assert_int_equal(line(h, "Retry-After: 1.5\r\n"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), 0);
    assert_int_equal(ms, 1500);
    sky_headers_clear(h);
    assert_int_equal(line(h, "Retry-After: 0.0001\r\n"), 0);
    assert_int_equal(retry_after(h, DATE_MS, &ms), 0);
    assert_int_equal(ms, 1);
    const char *bad[] = {"-1", ".5", "1.5s", "abc", "", "99999999999999999999"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(bad); i++) {
        sky_headers_clear(h);
        assert_int_equal(add(h, "Retry-After", bad[i]), 0);
        assert_int_equal(retry_after(h, DATE_MS, &ms), SKY_EINVAL);
    }
}

static void test_retry_after_http_date(void **state)
{
    sky_headers *h = *state;
    int64_t ms;
    assert_int_equal(add(h, "Retry-After", DATE_TEXT), 0);
    assert_int_equal(retry_after(h, DATE_MS - 30000, &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(retry_after(h, DATE_MS - 1500, &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(retry_after(h, DATE_MS, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(retry_after(h, DATE_MS + 5000, &ms), 0);
    assert_int_equal(ms, 0); /* a date in the past means now */
}

/* The obsolete RFC 850 and asctime forms are HTTP-dates too. */
static void test_retry_after_obsolete_dates(void **state)
{
    sky_headers *h = *state;
    const char *forms[] = {"Wednesday, 21-Oct-15 07:28:00 GMT", "Wed Oct 21 07:28:00 2015"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(forms); i++) {
        sky_headers_clear(h);
        assert_int_equal(add(h, "Retry-After", forms[i]), 0);
        int64_t ms;
        assert_int_equal(retry_after(h, DATE_MS - 60000, &ms), 0);
        assert_int_equal(ms, 60000);
    }
}

static void test_retry_after_real_clock(void **state)
{
    sky_headers *h = *state;
    int64_t ms;
    assert_int_equal(add(h, "Retry-After", DATE_TEXT), 0);
    assert_int_equal(sky_parse_retry_after_ms(h, NULL, &ms), 0); /* 2015 is past */
    assert_int_equal(ms, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_get_is_case_insensitive),
        T(test_repeats_kept_in_order),
        T(test_values_trimmed_and_copied),
        T(test_invalid_names),
        T(test_value_control_bytes_replaced),
        T(test_parse_lines),
        T(test_status_line_resets),
        T(test_bad_lines),
        T(test_obs_fold_appends),
        T(test_clear_keeps_map_usable),
        T(test_add_all_copies),
        T(test_truncate),
        T(test_truncate_gives_bytes_back),
        T(test_get_int64),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_duration_span_bounds),
        T(test_retry_after_absent),
        T(test_retry_after_ms_headers),
        T(test_retry_after_ms_values),
        T(test_retry_after_falls_back_when_unreadable),
        T(test_retry_after_seconds),
        T(test_retry_after_http_date),
        T(test_retry_after_obsolete_dates),
        T(test_retry_after_real_clock),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
