/* Azure Storage SAS tokens: account SAS and Blob service SAS, version 2020-12-06 and later. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "skyio/storage.h"

void sky_storage_sas_options_init(sky_storage_sas_options *o)
{
    memset(o, 0, sizeof(*o));
}

/* 9999-12-31T23:59:59Z: a SAS time has four digits of year (and gmtime_r fails far past). */
#define SAS_TIME_MAX INT64_C(253402300799)

/* ISO 8601 UTC without fractions, as SAS tokens carry it ("2030-01-02T03:04:05Z"). */
static void iso_time(int64_t t, char *out, size_t len)
{
    if (t <= 0) {
        out[0] = '\0';
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* Append "&name=value" (or "name=value" when @p out is empty), the value encoded. */
static int add_param(sky_buf *out, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    int rc = sky_buf_printf(out, "%s%s=", out->len ? "&" : "", name);
    return rc ? rc : sky_storage_url_encode(sky_span_cstr(value), 0, out);
}

/* "YYYY-MM-DD" no older than 2020-12-06, the layout we sign; ISO dates compare as strings. */
static int version_ok(const char *sv)
{
    if (strlen(sv) != 10 || sv[4] != '-' || sv[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (sv[i] < '0' || sv[i] > '9'))
            return 0;
    return strcmp(sv, "2020-12-06") >= 0;
}

static int check_common(const char *account, const char *key_b64, const sky_storage_sas_options *o,
                        sky_error *err)
{
    if (account == NULL || account[0] == '\0' || key_b64 == NULL || o == NULL)
        return sky_error_set(err, SKY_EINVAL, "SAS: account name and key are required");
    if (o->permissions == NULL || o->permissions[0] == '\0')
        return sky_error_set(err, SKY_EINVAL, "SAS: permissions (sp) are required");
    if (o->expiry <= 0)
        return sky_error_set(err, SKY_EINVAL, "SAS: an expiry time (se) is required");
    if (o->expiry > SAS_TIME_MAX || o->start > SAS_TIME_MAX)
        return sky_error_set(err, SKY_EINVAL,
                             "SAS: start and expiry times must be before the year 10000");
    if (o->version && !version_ok(o->version))
        return sky_error_set(err, SKY_EINVAL,
                             "SAS: version (sv) must be a date 2020-12-06 or later: the "
                             "string-to-sign of older versions has other fields");
    return 0;
}

/* Sign @p sts and append the query made by @p params then "&sig=". */
static int finish(const char *key_b64, sky_buf *sts, sky_buf *query, sky_buf *out, sky_error *err)
{
    char sig[64];
    int rc = sky_storage_hmac_b64(key_b64, sky_buf_span(sts), sig, sizeof(sig));
    if (rc != 0)
        return sky_error_set(err, rc, "SAS: the account key is not valid base64");
    rc = add_param(query, "sig", sig);
    OPENSSL_cleanse(sig, sizeof(sig));
    if (rc == 0)
        rc = sky_buf_append(out, query->data, query->len);
    return rc ? sky_error_set(err, rc, "SAS: out of memory") : 0;
}

int sky_storage_sas_account(const char *account, const char *key_b64,
                            const sky_storage_sas_options *o, sky_buf *out, sky_error *err)
{
    int rc = check_common(account, key_b64, o, err);
    if (rc != 0)
        return rc;
    const char *sv = o->version ? o->version : SKY_STORAGE_VERSION;
    const char *ss = o->services ? o->services : "b";
    const char *srt = o->resource_types ? o->resource_types : "sco";
    char st[64], se[64];
    iso_time(o->start, st, sizeof(st));
    iso_time(o->expiry, se, sizeof(se));
    sky_buf sts, q;
    sky_buf_init(&sts, 64 * 1024);
    sky_buf_init(&q, 64 * 1024);
    /* The trailing empty line is the encryption scope (ses), which we do not set. */
    rc = sky_buf_printf(&sts, "%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n\n", account, o->permissions, ss,
                        srt, st, se, or_empty(o->ip), or_empty(o->protocol), sv);
    if (rc == 0)
        rc = add_param(&q, "sv", sv) || add_param(&q, "ss", ss) || add_param(&q, "srt", srt) ||
             add_param(&q, "sp", o->permissions) || add_param(&q, "st", st) ||
             add_param(&q, "se", se) || add_param(&q, "sip", o->ip) ||
             add_param(&q, "spr", o->protocol);
    rc = rc ? sky_error_set(err, SKY_ENOMEM, "SAS: out of memory")
            : finish(key_b64, &sts, &q, out, err);
    sky_buf_free(&sts);
    sky_buf_free(&q);
    return rc;
}

int sky_storage_sas_service(const char *account, const char *key_b64,
                            const sky_storage_sas_options *o, sky_buf *out, sky_error *err)
{
    int rc = check_common(account, key_b64, o, err);
    if (rc != 0)
        return rc;
    if (o->container == NULL || o->container[0] == '\0')
        return sky_error_set(err, SKY_EINVAL, "SAS: a service SAS needs a container");
    const char *sv = o->version ? o->version : SKY_STORAGE_VERSION;
    const char *sr = o->blob ? "b" : "c";
    char st[64], se[64];
    iso_time(o->start, st, sizeof(st));
    iso_time(o->expiry, se, sizeof(se));
    sky_buf sts, q;
    sky_buf_init(&sts, 64 * 1024);
    sky_buf_init(&q, 64 * 1024);
    rc = sky_buf_printf(&sts, "%s\n%s\n%s\n/blob/%s/%s%s%s\n%s\n%s\n%s\n%s\n%s\n", o->permissions,
                        st, se, account, o->container, o->blob ? "/" : "", or_empty(o->blob),
                        or_empty(o->identifier), or_empty(o->ip), or_empty(o->protocol), sv, sr);
    /* snapshot time, encryption scope, then rscc, rscd, rsce, rscl, rsct: all empty. */
    if (rc == 0)
        rc = sky_buf_append_str(&sts, "\n\n\n\n\n\n");
    if (rc == 0)
        rc = add_param(&q, "sv", sv) || add_param(&q, "sp", o->permissions) ||
             add_param(&q, "st", st) || add_param(&q, "se", se) || add_param(&q, "sr", sr) ||
             add_param(&q, "sip", o->ip) || add_param(&q, "spr", o->protocol) ||
             add_param(&q, "si", o->identifier);
    rc = rc ? sky_error_set(err, SKY_ENOMEM, "SAS: out of memory")
            : finish(key_b64, &sts, &q, out, err);
    sky_buf_free(&sts);
    sky_buf_free(&q);
    return rc;
}
