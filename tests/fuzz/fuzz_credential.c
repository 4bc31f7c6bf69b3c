/*
 * libFuzzer target for what token endpoints and the Azure CLI answer: the
 * input is at once a token reply of Entra ID or managed identity (200), an
 * error reply (its status from the input's length), and `az`'s stdout.
 *
 * Invariants: a token parses to a non-empty string with an expiry in the
 * future of 1970 and a refresh time between now and the expiry; anything else
 * is refused with SKY_EJSON/SKY_EAUTH and no token; an error reply's message
 * is one line and never holds the secret of the request (client secret,
 * assertion or identity header), nor does the service code.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "auth/credential_internal.h"

#define FZ_SECRET "Fz8Q~s3cr3t-value.of_the~client"
#define FZ_NOW_MS INT64_C(1700000000000)
#define FZ_MARGIN_S 300

static const int fz_statuses[] = {400, 401, 403, 404, 410, 429, 500, 502, 503, 504};

/* When to refresh must lie between now and the expiry (now itself for an expired one). */
static void fz_check_refresh(int64_t now_s, int64_t expires_on, int64_t refresh_in)
{
    int64_t at_ms = sky__cred_refresh_at_ms(now_s, expires_on, FZ_MARGIN_S, refresh_in);
    FZ_CHECK(at_ms >= now_s * 1000);
    if (expires_on > now_s)
        FZ_CHECK(at_ms / 1000 <= expires_on);
}

/* The JSON reply of Entra ID or of a managed-identity endpoint, status 200. */
static void fz_token_reply(sky_span body)
{
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 0, FZ_NOW_MS);
    sky_credential c;
    memset(&c, 0, sizeof(c));
    c.clock = &fc.clock;
    char *token = NULL;
    int64_t expires_on = -1, refresh_in = -1;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky__cred_parse_token_json(&c, body, &token, &expires_on, &refresh_in, &err);
    if (rc == 0) {
        FZ_CHECK(token != NULL && token[0] != '\0' && err.code == 0);
        FZ_CHECK(expires_on > 0 && refresh_in >= 0);
        FZ_CHECK(strstr(err.message, token) == NULL);
        fz_check_refresh(FZ_NOW_MS / 1000, expires_on, refresh_in);
        free(token);
    } else {
        FZ_CHECK(token == NULL && err.code == rc);
        FZ_CHECK(rc == SKY_EJSON || rc == SKY_EAUTH || rc == SKY_ENOMEM);
    }
}

/* A non-2xx reply: one line of text, the secret masked everywhere. */
static void fz_error_reply(sky_span body, int status)
{
    sky_http_response res;
    memset(&res, 0, sizeof(res));
    res.status = status;
    res.body = body;
    sky_error err;
    sky_error_clear(&err);
    sky__cred_reply_error(&res, FZ_SECRET, &err);
    FZ_CHECK(err.code == SKY_EAUTH && err.http_status == status);
    FZ_CHECK(!!err.retryable == (status == 429 || status >= 500));
    FZ_CHECK(strpbrk(err.message, "\r\n") == NULL);
    FZ_CHECK(strstr(err.message, FZ_SECRET) == NULL);
    FZ_CHECK(strstr(err.service_code, FZ_SECRET) == NULL);
    FZ_CHECK(memchr(err.service_code, '\0', sizeof(err.service_code)) != NULL);
}

/* `az account get-access-token --output json`. */
static void fz_cli_output(sky_span out)
{
    char *token = NULL;
    int64_t expires_on = -1;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky__cred_parse_cli_output(out, &token, &expires_on, &err);
    if (rc == 0) {
        FZ_CHECK(token != NULL && token[0] != '\0' && expires_on > 0 && err.code == 0);
        fz_check_refresh(FZ_NOW_MS / 1000, expires_on, 0);
        free(token);
    } else {
        FZ_CHECK(token == NULL && err.code == rc);
        FZ_CHECK(rc == SKY_EAUTH || rc == SKY_ENOMEM);
    }
}

/* Any text, scrubbed: no longer than before, and the secret gone. */
static void fz_scrub(const char *s, size_t n)
{
    char *text = malloc(n + 1);
    if (text == NULL)
        return;
    memcpy(text, s, n);
    text[n] = '\0';
    size_t before = strlen(text);
    sky__cred_scrub(text, FZ_SECRET);
    FZ_CHECK(strlen(text) <= before);
    FZ_CHECK(strstr(text, FZ_SECRET) == NULL);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sky_span body = sky_span_make((const char *)data, size);
    fz_token_reply(body);
    fz_error_reply(body, fz_statuses[size % SKY_ARRAY_LEN(fz_statuses)]);
    fz_cli_output(body);
    fz_scrub((const char *)data, size);
    return 0;
}
