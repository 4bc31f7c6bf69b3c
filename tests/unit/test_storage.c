/* Tests for Storage auth: connection strings, Shared Key (known answers), SAS tokens. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/blob.h"
#include "skyio/storage.h"

/* Azurite's published development key. */
#define DEV_KEY                                                                                    \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define DATE "Mon, 01 Jan 2024 00:00:00 GMT"
#define T2024 INT64_C(1704067200)
#define T2030 INT64_C(1893456000)

static sky_headers *hdrs(const char *const *kv)
{
    sky_headers *h = sky_headers_new();
    assert_non_null(h);
    for (size_t i = 0; kv[i]; i += 2)
        assert_int_equal(sky_headers_add(h, sky_span_cstr(kv[i]), sky_span_cstr(kv[i + 1])), 0);
    return h;
}

/* Expected values were computed independently with Python's hmac/hashlib/base64. */
static void test_string_to_sign_put_block(void **state)
{
    (void)state;
    static const char *const kv[] = {"x-ms-version",
                                     "2021-12-02",
                                     "x-ms-date",
                                     DATE,
                                     "Content-Length",
                                     "11",
                                     "Content-Type",
                                     "application/octet-stream",
                                     "x-ms-blob-type",
                                     "BlockBlob",
                                     "X-MS-Meta-Foo",
                                     "  bar  ",
                                     "User-Agent",
                                     "skyio",
                                     NULL};
    sky_headers *h = hdrs(kv);
    const char *url =
        "http://127.0.0.1:10000/devstoreaccount1/c1/a%20b.txt?comp=block&blockid=QUJD%3D%3D";
    sky_buf sts;
    sky_buf_init(&sts, 1 << 16);
    assert_int_equal(sky_storage_string_to_sign("devstoreaccount1", "PUT", url, h, &sts), 0);
    assert_string_equal(sts.data, "PUT\n\n\n11\n\napplication/octet-stream\n\n\n\n\n\n\n"
                                  "x-ms-blob-type:BlockBlob\nx-ms-date:" DATE "\n"
                                  "x-ms-meta-foo:bar\nx-ms-version:2021-12-02\n"
                                  "/devstoreaccount1/devstoreaccount1/c1/a%20b.txt\n"
                                  "blockid:QUJD==\ncomp:block");
    assert_int_equal(sky_storage_authorize("devstoreaccount1", DEV_KEY, "PUT", url, h, NULL), 0);
    assert_string_equal(sky_headers_get(h, "Authorization"),
                        "SharedKey devstoreaccount1:fRYw1J6SwjZK+nWxazXbt05TvUlj1BtTblRQkUpqKWg=");
    sky_buf_free(&sts);
    sky_headers_free(h);
}

static void test_string_to_sign_repeated_query_and_zero_length(void **state)
{
    (void)state;
    static const char *const kv[] = {
        "x-ms-version",           "2021-12-02", "x-ms-date", DATE, "Content-Length", "0", "Date",
        "ignored when x-ms-date", NULL};
    sky_headers *h = hdrs(kv);
    const char *url =
        "http://127.0.0.1:10000/devstoreaccount1/?include=snapshots&COMP=list&include=metadata";
    sky_buf sts;
    sky_buf_init(&sts, 1 << 16);
    assert_int_equal(sky_storage_string_to_sign("devstoreaccount1", "GET", url, h, &sts), 0);
    assert_string_equal(
        sts.data, "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:" DATE "\nx-ms-version:2021-12-02\n"
                  "/devstoreaccount1/devstoreaccount1/\ncomp:list\ninclude:metadata,snapshots");
    char sig[64];
    assert_int_equal(sky_storage_hmac_b64(DEV_KEY, sky_buf_span(&sts), sig, sizeof(sig)), 0);
    assert_string_equal(sig, "LnJywh0gzLxlfOk78LVfQ0tRIwEEkjlM/6aC+id6Mog=");
    assert_int_equal(sky_storage_hmac_b64(DEV_KEY, sky_buf_span(&sts), sig, 10), SKY_ETOOBIG);
    assert_int_equal(sky_storage_hmac_b64("not base64!", sky_buf_span(&sts), sig, 64), SKY_EINVAL);
    sky_buf_free(&sts);
    sky_headers_free(h);
}

static void test_authorize_bad_key_does_not_leak(void **state)
{
    (void)state;
    static const char *const kv[] = {"x-ms-date", DATE, NULL};
    sky_headers *h = hdrs(kv);
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_storage_authorize("acct", "sekrit-key-value", "GET",
                                           "https://acct.blob.core.windows.net/c", h, &err),
                     SKY_EINVAL);
    assert_null(strstr(err.message, "sekrit"));
    assert_null(sky_headers_get(h, "Authorization"));
    sky_headers_free(h);
}

static void test_url_encode(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 1024);
    assert_int_equal(sky_storage_url_encode(SKY_SPAN_LIT("a b/ü+=.txt"), 1, &b), 0);
    assert_string_equal(b.data, "a%20b/%C3%BC%2B%3D.txt");
    sky_buf_reset(&b);
    assert_int_equal(sky_storage_url_encode(SKY_SPAN_LIT("a/b:c"), 0, &b), 0);
    assert_string_equal(b.data, "a%2Fb%3Ac");
    sky_buf_free(&b);
}

static void test_connstr_full(void **state)
{
    (void)state;
    sky_storage_account *a = NULL;
    sky_error err;
    sky_error_clear(&err);
    const char *cs = "DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=" DEV_KEY
                     ";EndpointSuffix=core.chinacloudapi.cn;QueueEndpoint=https://q;";
    assert_int_equal(sky_storage_connstr_parse(sky_span_cstr(cs), &a, &err), 0);
    assert_string_equal(a->account_name, "myacct");
    assert_string_equal(a->account_key, DEV_KEY);
    assert_string_equal(a->blob_endpoint, "https://myacct.blob.core.chinacloudapi.cn");
    assert_null(a->sas);
    sky_storage_account_free(a);
}

static void test_connstr_blob_endpoint_and_sas(void **state)
{
    (void)state;
    sky_storage_account *a = NULL;
    const char *cs = " blobendpoint = http://127.0.0.1:9999/acct/ ; "
                     "SharedAccessSignature=?sv=2021-12-02&sig=abc%3D";
    assert_int_equal(sky_storage_connstr_parse(sky_span_cstr(cs), &a, NULL), 0);
    assert_null(a->account_name);
    assert_null(a->account_key);
    assert_string_equal(a->blob_endpoint, "http://127.0.0.1:9999/acct");
    assert_string_equal(a->sas, "sv=2021-12-02&sig=abc%3D");
    sky_storage_account_free(a);
}

static void test_connstr_dev_storage(void **state)
{
    (void)state;
    sky_storage_account *a = NULL;
    assert_int_equal(
        sky_storage_connstr_parse(SKY_SPAN_LIT("UseDevelopmentStorage=true"), &a, NULL), 0);
    assert_string_equal(a->account_name, "devstoreaccount1");
    assert_string_equal(a->account_key, DEV_KEY);
    assert_string_equal(a->blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
    sky_storage_account_free(a);
}

/* Each bad string fails with EINVAL, names the problem and never shows the secret. */
static void test_connstr_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *says;
    } cases[] = {
        {"", "empty"},
        {"AccountName=a;NoEquals", "position 14"},
        {"AccountName=a;AccountName=b", "AccountName given twice"},
        {"AccountName=abc;AccountKey=SECRETnotb64!", "AccountKey is not valid base64"},
        {"AccountKey=" DEV_KEY, "AccountKey needs AccountName"},
        {"AccountName=abc;DefaultEndpointsProtocol=ftp", "DefaultEndpointsProtocol"},
        {"SharedAccessSignature=sig=SECRET", "AccountName or BlobEndpoint is required"},
        {"BlobEndpoint=ftp://x;SharedAccessSignature=sig=SECRET", "BlobEndpoint must start"},
        {"UseDevelopmentStorage=false", "UseDevelopmentStorage"},
        {"AccountName=", "AccountName is empty"},
        {"=x", "empty key at position 0"},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++) {
        sky_storage_account *a = (sky_storage_account *)1;
        sky_error err;
        sky_error_clear(&err);
        int rc = sky_storage_connstr_parse(sky_span_cstr(cases[i].text), &a, &err);
        if (rc != SKY_EINVAL || strstr(err.message, cases[i].says) == NULL)
            fail_msg("case %zu: rc %d message '%s'", i, rc, err.message);
        assert_null(a);
        assert_null(strstr(err.message, "SECRET"));
        assert_null(strstr(err.message, DEV_KEY));
    }
}

static void test_connstr_env(void **state)
{
    (void)state;
    sky_storage_account *a = NULL;
    unsetenv("AZURE_STORAGE_CONNECTION_STRING");
    assert_int_equal(sky_storage_connstr_from_env(&a, NULL), SKY_ENOTFOUND);
    setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=envacct;AccountKey=" DEV_KEY, 1);
    assert_int_equal(sky_storage_connstr_from_env(&a, NULL), 0);
    assert_string_equal(a->blob_endpoint, "https://envacct.blob.core.windows.net");
    sky_storage_account_free(a);
    unsetenv("AZURE_STORAGE_CONNECTION_STRING");
}

static void test_sas_account(void **state)
{
    (void)state;
    sky_storage_sas_options o;
    sky_storage_sas_options_init(&o);
    o.permissions = "rl";
    o.start = T2024;
    o.expiry = T2030;
    o.protocol = "https,http";
    sky_buf out;
    sky_buf_init(&out, 4096);
    assert_int_equal(sky_storage_sas_account("devstoreaccount1", DEV_KEY, &o, &out, NULL), 0);
    assert_string_equal(out.data, "sv=2021-12-02&ss=b&srt=sco&sp=rl&st=2024-01-01T00%3A00%3A00Z"
                                  "&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp"
                                  "&sig=0nQ79cOjb9L2wwFx3ufG0eJcG2ojLlLxa0meVeJTeB8%3D");
    sky_buf_free(&out);
}

static void test_sas_service_blob(void **state)
{
    (void)state;
    sky_storage_sas_options o;
    sky_storage_sas_options_init(&o);
    o.permissions = "r";
    o.expiry = T2030;
    o.container = "c1";
    o.blob = "dir/x.bin";
    sky_buf out;
    sky_buf_init(&out, 4096);
    assert_int_equal(sky_storage_sas_service("devstoreaccount1", DEV_KEY, &o, &out, NULL), 0);
    assert_string_equal(out.data, "sv=2021-12-02&sp=r&se=2030-01-01T00%3A00%3A00Z&sr=b"
                                  "&sig=p1V%2FyK4CZRGZcXysuytJ372iW%2BtGzDMgkM%2BjaDxYX6c%3D");
    sky_buf_free(&out);
}

static void test_sas_errors(void **state)
{
    (void)state;
    sky_storage_sas_options o;
    sky_storage_sas_options_init(&o);
    sky_buf out;
    sky_buf_init(&out, 4096);
    sky_error err;
    sky_error_clear(&err);
    o.expiry = T2030;
    assert_int_equal(sky_storage_sas_account("a", DEV_KEY, &o, &out, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "permissions"));
    o.permissions = "r";
    sky_error_clear(&err);
    assert_int_equal(sky_storage_sas_service("a", DEV_KEY, &o, &out, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "container"));
    o.container = "c";
    o.expiry = 0;
    sky_error_clear(&err);
    assert_int_equal(sky_storage_sas_service("a", DEV_KEY, &o, &out, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "expiry"));
    /* a time past the year 9999 has no four-digit form (and gmtime_r fails far past it) */
    o.expiry = INT64_C(253402300800);
    sky_error_clear(&err);
    assert_int_equal(sky_storage_sas_service("a", DEV_KEY, &o, &out, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "year 10000"));
    o.expiry = INT64_MAX;
    assert_int_equal(sky_storage_sas_account("a", DEV_KEY, &o, &out, &err), SKY_EINVAL);
    /* An sv older than the layout we sign, or not a date, is refused, not signed wrong. */
    o.expiry = T2030;
    o.version = "2019-12-12";
    sky_error_clear(&err);
    assert_int_equal(sky_storage_sas_service("a", DEV_KEY, &o, &out, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "version"));
    sky_error_clear(&err);
    assert_int_equal(sky_storage_sas_account("a", DEV_KEY, &o, &out, &err), SKY_EINVAL);
    o.version = "2021-1-1";
    assert_int_equal(sky_storage_sas_account("a", DEV_KEY, &o, &out, &err), SKY_EINVAL);
    assert_int_equal(out.len, 0);
    o.version = "2020-12-06";
    assert_int_equal(sky_storage_sas_service("a", DEV_KEY, &o, &out, &err), 0);
    sky_buf_free(&out);
}

/* 3 to 24 lowercase letters and digits; a huge name is EINVAL with the rule, not ENOMEM. */
static void test_account_name_rules(void **state)
{
    (void)state;
    char huge[5001], line[256];
    sky_error err;
    static const char *const good[] = {"devstoreaccount1", "abc", "a1b2c3d4e5f6g7h8i9j0k1l2"};
    static const char *const bad[] = {
        "ab", "a1b2c3d4e5f6g7h8i9j0k1l2m", "Bad_Name", "UPPER", "dev-store", "spa ce", ""};
    for (size_t i = 0; i < SKY_ARRAY_LEN(good); i++)
        assert_int_equal(sky_storage_account_name_check(good[i], NULL), 0);
    for (size_t i = 0; i < SKY_ARRAY_LEN(bad); i++) {
        sky_error_clear(&err);
        assert_int_equal(sky_storage_account_name_check(bad[i], &err), SKY_EINVAL);
        assert_non_null(strstr(err.message, "3 to 24 lowercase letters and digits"));
    }
    memset(huge, 'a', 5000);
    huge[5000] = '\0';
    sky_error_clear(&err);
    assert_int_equal(sky_storage_account_name_check(huge, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "5000 characters long"));
    /* through a connection string (whose endpoint is made of the name) and account_new */
    char cs[5200];
    snprintf(cs, sizeof(cs), "AccountName=%s;AccountKey=" DEV_KEY, huge);
    sky_storage_account *a = NULL;
    sky_error_clear(&err);
    assert_int_equal(sky_storage_connstr_parse(sky_span_cstr(cs), &a, &err), SKY_EINVAL);
    assert_null(a);
    assert_non_null(strstr(sky_error_format(&err, line, sizeof(line)), "5000 characters long"));
    assert_null(strstr(err.message, "memory"));
    sky_error_clear(&err);
    assert_int_equal(
        sky_storage_connstr_parse(SKY_SPAN_LIT("AccountName=bad_name;AccountKey=" DEV_KEY
                                               ";BlobEndpoint=http://127.0.0.1:1/x"),
                                  &a, &err),
        SKY_EINVAL);
    assert_non_null(strstr(err.message, "'_' (character 4) is not a lowercase letter or digit"));
    sky_error_clear(&err);
    assert_int_equal(sky_storage_account_new(huge, DEV_KEY, "http://127.0.0.1:1/x", NULL, &a, &err),
                     SKY_EINVAL);
    assert_non_null(strstr(err.message, "5000 characters long"));
    assert_int_equal(
        sky_storage_connstr_parse(SKY_SPAN_LIT("UseDevelopmentStorage=true"), &a, NULL), 0);
    assert_string_equal(a->account_name, "devstoreaccount1");
    sky_storage_account_free(a);
}

/* Azure's limit is 1,024 characters (not bytes). */
static void test_blob_name_length(void **state)
{
    (void)state;
    char name[2 * 1025 + 1];
    sky_error err;
    memset(name, 'a', 1024);
    name[1024] = '\0';
    assert_int_equal(sky_blob_name_check(name, NULL), 0);
    strcat(name, "b");
    sky_error_clear(&err);
    assert_int_equal(sky_blob_name_check(name, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "1025 characters long: Azure allows at most 1,024"));
    for (int i = 0; i < 1024; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2); /* e-acute: 2 bytes, 1 character */
    name[2048] = '\0';
    assert_int_equal(sky_blob_name_check(name, NULL), 0);
    assert_int_equal(sky_blob_name_check("", NULL), SKY_EINVAL);
}

/* What may become a path under a folder; each rule has its own words. */
static void test_relpath_rules(void **state)
{
    (void)state;
    static const struct {
        const char *rel;
        const char *why; /* NULL: accepted */
    } cases[] = {
        {"a.txt", NULL},
        {"dir/sub/a.txt", NULL},
        {"..a/b..", NULL},
        {"", "an empty name"},
        {"/abs.txt", "begins with '/'"},
        {"..", "has a '..' part"},
        {"a/../b", "has a '..' part"},
        {"a/..", "has a '..' part"},
        {"in/../ok.txt", "has a '..' part"},
        {".", "has a '.' part"},
        {"a/./b", "has a '.' part"},
        {"a//b", "has an empty part"},
        {"a/", "ends with '/'"},
    };
    sky_error err;
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++) {
        sky_error_clear(&err);
        int rc = sky_blob_relpath_check(cases[i].rel, &err);
        if (cases[i].why == NULL) {
            assert_int_equal(rc, 0);
            continue;
        }
        assert_int_equal(rc, SKY_EINVAL);
        if (strstr(err.message, cases[i].why) == NULL)
            fail_msg("'%s': '%s' lacks '%s'", cases[i].rel, err.message, cases[i].why);
    }
    /* NAME_MAX per part, PATH_MAX in all */
    char rel[PATH_MAX + 8];
    memset(rel, 'n', NAME_MAX);
    strcpy(rel + NAME_MAX, "/x");
    assert_int_equal(sky_blob_relpath_check(rel, NULL), 0);
    memset(rel, 'n', 304);
    strcpy(rel + 304, "/x");
    sky_error_clear(&err);
    assert_int_equal(sky_blob_relpath_check(rel, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "a part of 304 bytes"));
    assert_non_null(strstr(err.message, "NAME_MAX"));
    for (int i = 0; i < PATH_MAX; i += 2)
        memcpy(rel + i, "d/", 2);
    strcpy(rel + PATH_MAX, "f");
    sky_error_clear(&err);
    assert_int_equal(sky_blob_relpath_check(rel, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "PATH_MAX"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_to_sign_put_block),
        cmocka_unit_test(test_string_to_sign_repeated_query_and_zero_length),
        cmocka_unit_test(test_authorize_bad_key_does_not_leak),
        cmocka_unit_test(test_url_encode),
        cmocka_unit_test(test_connstr_full),
        cmocka_unit_test(test_connstr_blob_endpoint_and_sas),
        cmocka_unit_test(test_connstr_dev_storage),
        cmocka_unit_test(test_connstr_errors),
        cmocka_unit_test(test_connstr_env),
        cmocka_unit_test(test_sas_account),
        cmocka_unit_test(test_sas_service_blob),
        cmocka_unit_test(test_sas_errors),
        cmocka_unit_test(test_account_name_rules),
        cmocka_unit_test(test_blob_name_length),
        cmocka_unit_test(test_relpath_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
