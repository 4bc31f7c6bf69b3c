/*
 * libFuzzer target for the header map and its parsers: the input as header
 * lines (split after each '\n'), as a duration, and as each retry header.
 */
#include <stdint.h>
#include <stdlib.h>

#include "skyio/headers.h"
#include "skyio/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every stored entry must be a token name and a trimmed, C-string-safe value. */
static void fz_check_map(const sky_headers *h)
{
    for (size_t i = 0; i < sky_headers_count(h); i++) {
        const char *name;
        const char *value;
        if (sky_headers_at(h, i, &name, &value) != 0 || name[0] == '\0')
            abort();
        size_t vlen = strlen(value);
        if (vlen && (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' ||
                     value[vlen - 1] == '\t'))
            abort();
        if (strpbrk(name, " \t:\r\n") || strpbrk(value, "\r\n"))
            abort();
        if (sky_headers_get(h, name) == NULL)
            abort();
        int64_t v;
        int rc = sky_headers_get_int64(h, name, &v);
        if (rc != 0 && rc != SKY_EINVAL)
            abort();
    }
    if (sky_headers_at(h, sky_headers_count(h), NULL, NULL) != SKY_EINVAL)
        abort();
}

static void fz_check_retry(const sky_headers *h)
{
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 0, INT64_C(1700000000000));
    int64_t ms = -1;
    int rc = sky_parse_retry_after_ms(h, &fc.clock, &ms);
    if (rc == 0 && ms < 0)
        abort();
    if (rc != 0 && rc != SKY_EINVAL && rc != SKY_ENOTFOUND)
        abort();
}

static void fz_lines(const char *s, size_t n)
{
    sky_headers *h = sky_headers_new();
    if (h == NULL)
        return;
    while (n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t len = nl ? (size_t)(nl - s) + 1 : n;
        int rc = sky_headers_parse_line(h, s, len);
        if (rc != 0 && rc != SKY_EPROTO && rc != SKY_ENOMEM)
            abort();
        s += len;
        n -= len;
    }
    fz_check_map(h);
    fz_check_retry(h);
    sky_headers_free(h);
}

/* The whole input as the value of each retry header in turn. */
static void fz_retry_values(const char *s, size_t n)
{
    static const char *const names[] = {"retry-after-ms", "x-ms-retry-after-ms", "Retry-After"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(names); i++) {
        sky_headers *h = sky_headers_new();
        if (h == NULL)
            return;
        if (sky_headers_add(h, sky_span_cstr(names[i]), sky_span_make(s, n)) != 0)
            abort();
        fz_check_retry(h);
        sky_headers_free(h);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    fz_lines(s, size);
    int64_t ms = -1;
    int rc = sky_parse_duration_ms(sky_span_make(s, size), &ms);
    if ((rc == 0 && ms < 0) || (rc != 0 && rc != SKY_EINVAL))
        abort();
    fz_retry_values(s, size);
    return 0;
}
