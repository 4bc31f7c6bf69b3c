/*
 * libFuzzer target for SAS tokens and Shared Key signing. The input is
 * fields separated by '\n' (missing ones are NULL, empty ones ""):
 *
 *   account, key (base64), permissions, ip, protocol, version, services,
 *   resource types, container, blob, identifier, start, expiry (Unix seconds)
 *
 * Each field set makes an account SAS and a service SAS; the key, account and
 * a query also go through sky_storage_account_new and sky_storage_authorize.
 * Invariants: a SAS is a query of name=value pairs (no raw ' ', '?', '#' or
 * newline) that ends with a 44-character base64 signature, is the same when
 * made twice; a refusal says why (SKY_EINVAL and a message).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "skyio/storage.h"

enum {
    FZ_ACCOUNT,
    FZ_KEY,
    FZ_PERMISSIONS,
    FZ_IP,
    FZ_PROTOCOL,
    FZ_VERSION,
    FZ_SERVICES,
    FZ_TYPES,
    FZ_CONTAINER,
    FZ_BLOB,
    FZ_IDENTIFIER,
    FZ_START,
    FZ_EXPIRY,
    FZ_FIELDS
};

/* A time field: Unix seconds, within what gmtime and a four-digit year take. */
static int64_t fz_time(const char *s)
{
    if (s == NULL)
        return 0;
    return strtoll(s, NULL, 10); /* past the year 9999 the library refuses it */
}

/* The query: pairs of name=value joined by '&', the last one sig=<44 base64 chars>. */
static void fz_check_query(const sky_buf *q)
{
    FZ_CHECK(q->data != NULL && q->len > 0);
    FZ_CHECK(strpbrk(q->data, " ?#\r\n") == NULL);
    const char *sig = strstr(q->data, "sig=");
    FZ_CHECK(sig != NULL && (sig == q->data || sig[-1] == '&'));
    /* base64 of 32 bytes, with '+', '/' and '=' percent-encoded */
    size_t raw = 0;
    for (const char *c = sig + 4; *c; c += *c == '%' ? 3 : 1)
        raw++;
    FZ_CHECK(raw == 44);
    for (const char *pair = q->data; pair;) {
        const char *amp = strchr(pair, '&');
        const char *eq = strchr(pair, '=');
        FZ_CHECK(eq != NULL && eq > pair && (amp == NULL || eq < amp));
        pair = amp ? amp + 1 : NULL;
    }
}

typedef int (*fz_sas_fn)(const char *, const char *, const sky_storage_sas_options *, sky_buf *,
                         sky_error *);

static void fz_make(fz_sas_fn fn, const char *account, const char *key,
                    const sky_storage_sas_options *o)
{
    sky_buf a, b;
    sky_buf_init(&a, 1 << 20);
    sky_buf_init(&b, 1 << 20);
    sky_error err;
    sky_error_clear(&err);
    int rc = fn(account, key, o, &a, &err);
    if (rc == 0) {
        fz_check_query(&a);
        sky_error_clear(&err);
        FZ_CHECK(fn(account, key, o, &b, &err) == 0);
        FZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    } else {
        FZ_CHECK(err.code == rc && a.len == 0);
        FZ_CHECK(rc == SKY_EINVAL || rc == SKY_ENOMEM || rc == SKY_ETOOBIG);
        FZ_CHECK(err.message[0] != '\0');
    }
    sky_buf_free(&a);
    sky_buf_free(&b);
}

/* The same strings as an account, and as a request signed with Shared Key. */
static void fz_account_and_sign(const char *f[FZ_FIELDS])
{
    sky_storage_account *acct = NULL;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky_storage_account_new(f[FZ_ACCOUNT], f[FZ_KEY], f[FZ_CONTAINER], f[FZ_IDENTIFIER],
                                     &acct, &err);
    if (rc == 0) {
        FZ_CHECK(acct != NULL);
        /* the token as given, less one leading '?' */
        const char *sas = f[FZ_IDENTIFIER];
        FZ_CHECK((acct->sas == NULL) == (sas == NULL));
        FZ_CHECK(sas == NULL || strcmp(acct->sas, sas + (sas[0] == '?')) == 0);
        sky_storage_account_free(acct);
    } else {
        FZ_CHECK(acct == NULL && (rc == SKY_EINVAL || rc == SKY_ENOMEM));
    }
    if (f[FZ_ACCOUNT] == NULL || f[FZ_KEY] == NULL || f[FZ_BLOB] == NULL)
        return;
    sky_headers *h = sky_headers_new();
    if (h == NULL)
        return;
    char url[4096];
    snprintf(url, sizeof(url), "https://%s.blob.core.windows.net/%s", f[FZ_ACCOUNT], f[FZ_BLOB]);
    if (sky_headers_add(h, SKY_SPAN_LIT("x-ms-date"),
                        SKY_SPAN_LIT("Mon, 01 Jan 2024 00:00:00 GMT")) == 0 &&
        sky_headers_add(h, SKY_SPAN_LIT("x-ms-version"), SKY_SPAN_LIT(SKY_STORAGE_VERSION)) == 0) {
        sky_error_clear(&err);
        rc = sky_storage_authorize(f[FZ_ACCOUNT], f[FZ_KEY], "PUT", url, h, &err);
        if (rc == 0) {
            const char *auth = sky_headers_get(h, "Authorization");
            FZ_CHECK(auth != NULL && strncmp(auth, "SharedKey ", 10) == 0);
        } else {
            FZ_CHECK(err.code == rc && err.message[0] != '\0');
        }
    }
    sky_headers_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *f[FZ_FIELDS];
    fz_split_fields(copy, size, f, FZ_FIELDS);
    sky_storage_sas_options o;
    sky_storage_sas_options_init(&o);
    o.permissions = f[FZ_PERMISSIONS];
    o.ip = f[FZ_IP];
    o.protocol = f[FZ_PROTOCOL];
    o.version = f[FZ_VERSION];
    o.services = f[FZ_SERVICES];
    o.resource_types = f[FZ_TYPES];
    o.container = f[FZ_CONTAINER];
    o.blob = f[FZ_BLOB];
    o.identifier = f[FZ_IDENTIFIER];
    o.start = fz_time(f[FZ_START]);
    o.expiry = fz_time(f[FZ_EXPIRY]);
    fz_make(sky_storage_sas_account, f[FZ_ACCOUNT], f[FZ_KEY], &o);
    fz_make(sky_storage_sas_service, f[FZ_ACCOUNT], f[FZ_KEY], &o);
    fz_account_and_sign(f);
    free(copy);
    return 0;
}
