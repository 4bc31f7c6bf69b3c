/* The error list, its names and texts, and the first-cause-wins recorder. */
#include <stdarg.h>
#include <stdio.h>

#include "skyio/error.h"

const char *sky_strerror(int code)
{
    switch (code) {
    case SKY_OK:
        return "success";
#define SKY__ERR_TEXT(name, text)                                                                  \
    case SKY_##name:                                                                               \
        return text;
        SKY_ERRNO_MAP(SKY__ERR_TEXT)
#undef SKY__ERR_TEXT
    default:
        return "unknown error";
    }
}

const char *sky_err_name(int code)
{
    switch (code) {
    case SKY_OK:
        return "OK";
#define SKY__ERR_NAME(name, text)                                                                  \
    case SKY_##name:                                                                               \
        return #name;
        SKY_ERRNO_MAP(SKY__ERR_NAME)
#undef SKY__ERR_NAME
    default:
        return "UNKNOWN";
    }
}

/* The fields and the two texts' first bytes, not the texts' 320 bytes: a request clears
 * errors several times on its way, and every reader takes the texts as C strings. */
void sky_error_clear(sky_error *err)
{
    err->code = 0;
    err->http_status = 0;
    err->curl_code = 0;
    err->retryable = 0;
    err->service_code[0] = '\0';
    err->message[0] = '\0';
}

int sky_error_set(sky_error *err, int code, const char *fmt, ...)
{
    if (err == NULL || err->code != 0)
        return code;
    err->code = code;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    } else {
        err->message[0] = '\0';
    }
    return code;
}

void sky_error_set_service(sky_error *err, const char *service_code)
{
    if (err == NULL || service_code == NULL || err->service_code[0] != '\0')
        return;
    snprintf(err->service_code, sizeof(err->service_code), "%s", service_code);
}

const char *sky_error_format(const sky_error *err, char *out, size_t out_len)
{
    if (out_len == 0)
        return out;
    int n = snprintf(out, out_len, "%s: %s", sky_err_name(err->code), sky_strerror(err->code));
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used < out_len && (err->http_status || err->curl_code || err->service_code[0])) {
        const char *sep = " (";
        if (err->http_status) {
            n = snprintf(out + used, out_len - used, "%sHTTP %d", sep, err->http_status);
            used += n < 0 ? 0 : (size_t)n;
            sep = ", ";
        }
        if (used < out_len && err->service_code[0]) {
            n = snprintf(out + used, out_len - used, "%s%s", sep, err->service_code);
            used += n < 0 ? 0 : (size_t)n;
            sep = ", ";
        }
        if (used < out_len && err->curl_code) {
            n = snprintf(out + used, out_len - used, "%scurl %d", sep, err->curl_code);
            used += n < 0 ? 0 : (size_t)n;
        }
        if (used < out_len) {
            n = snprintf(out + used, out_len - used, ")");
            used += n < 0 ? 0 : (size_t)n;
        }
    }
    if (used < out_len && err->message[0])
        snprintf(out + used, out_len - used, ": %s", err->message);
    return out;
}
