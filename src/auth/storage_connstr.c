/* Azure Storage connection strings: "Key=value;Key=value", parsed without echoing secrets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "skyio/storage.h"

/* Published in the Azurite documentation; the emulator accepts nothing else. */
static const char dev_key[] =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

enum { K_PROTOCOL, K_NAME, K_KEY, K_SUFFIX, K_BLOB, K_SAS, K_DEV, K_COUNT };

static const char *const key_names[K_COUNT] = {
    "DefaultEndpointsProtocol", "AccountName",  "AccountKey",
    "EndpointSuffix",           "BlobEndpoint", "SharedAccessSignature",
    "UseDevelopmentStorage"};

/* The values found, as spans into the input. */
typedef struct connstr_parts {
    sky_span v[K_COUNT];
    int seen[K_COUNT];
} connstr_parts;

static char *span_dup(sky_span s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        if (s.len)
            memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void sky_storage_account_free(sky_storage_account *a)
{
    if (a == NULL)
        return;
    free(a->account_name);
    free_secret(a->account_key);
    free(a->blob_endpoint);
    free_secret(a->sas);
    free(a);
}

/* Nonzero when @p s is well-formed base64 that decodes to at least one byte. */
static int is_base64(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/' || (c == '=' && i >= n - 2);
        if (!ok || (c != '=' && i > 0 && s[i - 1] == '='))
            return 0;
    }
    return 1;
}

static sky_span trim(sky_span s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t' || s.ptr[0] == '\r' || s.ptr[0] == '\n'))
        s.ptr++, s.len--;
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t' ||
                     s.ptr[s.len - 1] == '\r' || s.ptr[s.len - 1] == '\n'))
        s.len--;
    return s;
}

static int key_index(sky_span k)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strlen(key_names[i]) == k.len && strncasecmp(key_names[i], k.ptr, k.len) == 0)
            return i;
    return -1;
}

/* One "Key=value" segment starting at byte @p pos of the input. */
static int parse_segment(sky_span seg, size_t pos, connstr_parts *p, sky_error *err)
{
    const char *eq = memchr(seg.ptr, '=', seg.len);
    if (eq == NULL)
        return sky_error_set(err, SKY_EINVAL,
                             "connection string: segment at position %zu has no '=' "
                             "(expected Key=value)",
                             pos);
    sky_span k = trim(sky_span_make(seg.ptr, (size_t)(eq - seg.ptr)));
    sky_span v = trim(sky_span_make(eq + 1, seg.len - (size_t)(eq - seg.ptr) - 1));
    if (k.len == 0)
        return sky_error_set(err, SKY_EINVAL, "connection string: empty key at position %zu", pos);
    int i = key_index(k);
    if (i < 0)
        return 0; /* QueueEndpoint, TableEndpoint, ...: not ours */
    if (p->seen[i])
        return sky_error_set(err, SKY_EINVAL, "connection string: %s given twice (position %zu)",
                             key_names[i], pos);
    if (v.len == 0)
        return sky_error_set(err, SKY_EINVAL, "connection string: %s is empty (position %zu)",
                             key_names[i], pos);
    p->seen[i] = 1;
    p->v[i] = v;
    return 0;
}

static int split(sky_span text, connstr_parts *p, sky_error *err)
{
    size_t start = 0;
    for (size_t i = 0; i <= text.len; i++) {
        if (i < text.len && text.ptr[i] != ';')
            continue;
        sky_span seg = sky_span_make(text.ptr + start, i - start);
        if (trim(seg).len > 0) {
            int rc = parse_segment(seg, start, p, err);
            if (rc != 0)
                return rc;
        }
        start = i + 1;
    }
    return 0;
}

int sky_storage_account_name_check(const char *name, sky_error *err)
{
    size_t n = name ? strlen(name) : 0;
    size_t ok = name ? strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789") : 0;
    if (n >= 3 && n <= 24 && ok == n)
        return 0;
    /* The name is no secret, but it may be huge: show its start and say what is wrong. */
    char why[64];
    if (n < 3 || n > 24)
        snprintf(why, sizeof(why), "it is %zu character%s long", n, n == 1 ? "" : "s");
    else
        snprintf(why, sizeof(why), "'%c' (character %zu) is not a lowercase letter or digit",
                 name[ok] >= 0x20 && name[ok] < 0x7f ? name[ok] : '?', ok + 1);
    return sky_error_set(err, SKY_EINVAL,
                         "AccountName '%.32s%s' is not a storage account name, which is 3 to "
                         "24 lowercase letters and digits (as %s is): %s",
                         name ? name : "", n > 32 ? "..." : "", SKY_STORAGE_DEV_ACCOUNT, why);
}

int sky_storage_account_new(const char *account_name, const char *account_key,
                            const char *blob_endpoint, const char *sas, sky_storage_account **out,
                            sky_error *err)
{
    *out = NULL;
    if (account_name && sky_storage_account_name_check(account_name, err) != 0)
        return SKY_EINVAL;
    if (account_key && !is_base64(account_key))
        return sky_error_set(err, SKY_EINVAL, "AccountKey is not valid base64");
    sky_storage_account *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int bad = 0;
    if (account_name)
        bad |= (a->account_name = strdup(account_name)) == NULL;
    if (account_key)
        bad |= (a->account_key = strdup(account_key)) == NULL;
    if (blob_endpoint) {
        sky_span e = sky_span_cstr(blob_endpoint);
        while (e.len && e.ptr[e.len - 1] == '/')
            e.len--;
        bad |= (a->blob_endpoint = span_dup(e)) == NULL;
    }
    if (sas)
        bad |= (a->sas = strdup(sas[0] == '?' ? sas + 1 : sas)) == NULL;
    if (bad) {
        sky_storage_account_free(a);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    *out = a;
    return 0;
}

static int build_dev(const connstr_parts *p, sky_storage_account **out, sky_error *err)
{
    if (!sky_span_eq_cstr(p->v[K_DEV], "true") && !sky_span_eq_cstr(p->v[K_DEV], "True"))
        return sky_error_set(err, SKY_EINVAL,
                             "connection string: UseDevelopmentStorage must be 'true'");
    return sky_storage_account_new(SKY_STORAGE_DEV_ACCOUNT, dev_key, SKY_STORAGE_DEV_BLOB_ENDPOINT,
                                   NULL, out, err);
}

/* The endpoint from BlobEndpoint, or {protocol}://{account}.blob.{suffix}. */
static int make_endpoint(const connstr_parts *p, sky_buf *ep, sky_error *err)
{
    if (p->seen[K_BLOB]) {
        if (sky_buf_append(ep, p->v[K_BLOB].ptr, p->v[K_BLOB].len) != 0)
            return sky_error_set(err, SKY_ENOMEM, "out of memory");
        if (strncmp(ep->data, "http://", 7) != 0 && strncmp(ep->data, "https://", 8) != 0)
            return sky_error_set(err, SKY_EINVAL,
                                 "connection string: BlobEndpoint must start with http:// or "
                                 "https://");
        return 0;
    }
    if (!p->seen[K_NAME])
        return sky_error_set(err, SKY_EINVAL,
                             "connection string: AccountName or BlobEndpoint is required");
    sky_span proto = p->seen[K_PROTOCOL] ? p->v[K_PROTOCOL] : SKY_SPAN_LIT("https");
    if (!sky_span_eq_cstr(proto, "https") && !sky_span_eq_cstr(proto, "http"))
        return sky_error_set(err, SKY_EINVAL,
                             "connection string: DefaultEndpointsProtocol must be http or https");
    sky_span suffix = p->seen[K_SUFFIX] ? p->v[K_SUFFIX] : SKY_SPAN_LIT("core.windows.net");
    if (sky_buf_printf(ep, "%.*s://%.*s.blob.%.*s", (int)proto.len, proto.ptr,
                       (int)p->v[K_NAME].len, p->v[K_NAME].ptr, (int)suffix.len, suffix.ptr) != 0)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    return 0;
}

static int build(const connstr_parts *p, sky_storage_account **out, sky_error *err)
{
    if (p->seen[K_KEY] && !p->seen[K_NAME])
        return sky_error_set(err, SKY_EINVAL, "connection string: AccountKey needs AccountName");
    if (p->seen[K_NAME]) {
        /* Before the endpoint is made of it: a huge name would not even fit its buffer. */
        char *name = span_dup(p->v[K_NAME]);
        int rc = name ? sky_storage_account_name_check(name, err)
                      : sky_error_set(err, SKY_ENOMEM, "out of memory");
        free(name);
        if (rc != 0)
            return rc;
    }
    sky_buf ep;
    sky_buf_init(&ep, 4096);
    int rc = make_endpoint(p, &ep, err);
    char *name = p->seen[K_NAME] ? span_dup(p->v[K_NAME]) : NULL;
    char *key = p->seen[K_KEY] ? span_dup(p->v[K_KEY]) : NULL;
    char *sas = p->seen[K_SAS] ? span_dup(p->v[K_SAS]) : NULL;
    if (rc == 0 &&
        ((p->seen[K_NAME] && !name) || (p->seen[K_KEY] && !key) || (p->seen[K_SAS] && !sas)))
        rc = sky_error_set(err, SKY_ENOMEM, "out of memory");
    if (rc == 0 && key && !is_base64(key))
        rc = sky_error_set(err, SKY_EINVAL, "connection string: AccountKey is not valid base64");
    if (rc == 0)
        rc = sky_storage_account_new(name, key, ep.data, sas, out, err);
    free(name);
    free_secret(key);
    free_secret(sas);
    sky_buf_free(&ep);
    return rc;
}

int sky_storage_connstr_parse(sky_span text, sky_storage_account **out, sky_error *err)
{
    connstr_parts p;
    memset(&p, 0, sizeof(p));
    *out = NULL;
    if (trim(text).len == 0)
        return sky_error_set(err, SKY_EINVAL, "connection string: empty");
    if (memchr(text.ptr, '\0', text.len) != NULL)
        return sky_error_set(err, SKY_EINVAL, "connection string: contains a NUL byte");
    int rc = split(text, &p, err);
    if (rc != 0)
        return rc;
    if (p.seen[K_DEV])
        return build_dev(&p, out, err);
    return build(&p, out, err);
}

int sky_storage_connstr_from_env(sky_storage_account **out, sky_error *err)
{
    const char *s = getenv("AZURE_STORAGE_CONNECTION_STRING");
    *out = NULL;
    if (s == NULL || s[0] == '\0')
        return sky_error_set(err, SKY_ENOTFOUND, "AZURE_STORAGE_CONNECTION_STRING is not set");
    return sky_storage_connstr_parse(sky_span_cstr(s), out, err);
}

void sky_storage_account_options_init(sky_storage_account_options *o)
{
    memset(o, 0, sizeof(*o));
}

/* An account from its parts: the endpoint given, or the public cloud's for the name. */
static int account_from_parts(const sky_storage_account_options *o, sky_storage_account **out,
                              sky_error *err)
{
    char ep[128];
    if (o->blob_endpoint == NULL && o->account_name == NULL)
        return sky_error_set(err, SKY_EINVAL, "an account name or a Blob endpoint is required");
    if (o->blob_endpoint == NULL)
        snprintf(ep, sizeof(ep), "https://%s.blob.core.windows.net", o->account_name);
    return sky_storage_account_new(o->account_name, o->account_key,
                                   o->blob_endpoint ? o->blob_endpoint : ep, o->sas, out, err);
}

int sky_storage_account_resolve(const sky_storage_account_options *o, sky_storage_account **out,
                                sky_error *err)
{
    *out = NULL;
    if (o->connection_string)
        return sky_storage_connstr_parse(sky_span_cstr(o->connection_string), out, err);
    if (o->account_name || o->sas || o->blob_endpoint)
        return account_from_parts(o, out, err);
    return sky_storage_connstr_from_env(out, err);
}
