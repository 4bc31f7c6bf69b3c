/* Azure Storage Shared Key: the string-to-sign, HMAC-SHA256 and the Authorization header. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "skyio/storage.h"

/* The standard headers of the string-to-sign, in their order. */
static const char *const std_headers[] = {"Content-Encoding",
                                          "Content-Language",
                                          "Content-Length",
                                          "Content-MD5",
                                          "Content-Type",
                                          "Date",
                                          "If-Modified-Since",
                                          "If-Match",
                                          "If-None-Match",
                                          "If-Unmodified-Since",
                                          "Range"};

/* A name/value pair pointing into someone else's storage (or owned, see below). */
typedef struct kv {
    char *name;
    char *value;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void kv_free(kv *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static char *lower_dup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = (char)tolower((unsigned char)s[i]);
    p[n] = '\0';
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode (and '+' stays '+': Storage reads it literally in paths and SAS). */
static char *decode_dup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    size_t o = 0;
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < n && (h = hexval(s[i + 1])) >= 0 &&
            (l = hexval(s[i + 2])) >= 0) {
            p[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            p[o++] = s[i];
        }
    }
    p[o] = '\0';
    return p;
}

/* The start of the path in @p url ("/..." after scheme://authority), or NULL. */
static const char *url_path(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return NULL;
    p += 3;
    while (*p && *p != '/' && *p != '?')
        p++;
    return p;
}

static int append_std_headers(const sky_headers *h, sky_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < SKY_ARRAY_LEN(std_headers) && rc == 0; i++) {
        const char *v = h ? sky_headers_get(h, std_headers[i]) : NULL;
        if (v && strcmp(std_headers[i], "Content-Length") == 0 && strcmp(v, "0") == 0)
            v = NULL;
        if (v && strcmp(std_headers[i], "Date") == 0 && sky_headers_get(h, "x-ms-date"))
            v = NULL;
        rc = sky_buf_printf(out, "%s\n", v ? v : "");
    }
    return rc;
}

/* Every x-ms-* header, lower-cased and sorted, "name:value\n". */
static int append_ms_headers(const sky_headers *h, sky_buf *out)
{
    size_t n = h ? sky_headers_count(h) : 0, k = 0;
    kv *v = calloc(n ? n : 1, sizeof(*v));
    int rc = v ? 0 : SKY_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *name, *value;
        (void)sky_headers_at(h, i, &name, &value);
        if (strncasecmp(name, "x-ms-", 5) != 0)
            continue;
        v[k].name = lower_dup(name, strlen(name));
        v[k].value = strdup(value);
        rc = v[k].name && v[k].value ? 0 : SKY_ENOMEM;
        k++;
    }
    if (rc == 0)
        qsort(v, k, sizeof(*v), kv_cmp);
    for (size_t i = 0; i < k && rc == 0; i++)
        rc = sky_buf_printf(out, "%s:%s\n", v[i].name, v[i].value);
    if (v)
        kv_free(v, k);
    return rc;
}

/* Split "a=1&b=2" into decoded pairs with lower-cased names. */
static int parse_query(const char *q, kv **out_v, size_t *out_n)
{
    size_t cap = 1;
    for (const char *p = q; *p; p++)
        cap += *p == '&';
    kv *v = calloc(cap, sizeof(*v));
    size_t n = 0;
    if (v == NULL)
        return SKY_ENOMEM;
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t nlen = eq ? (size_t)(eq - q) : len;
        if (len > 0) {
            char *dn = decode_dup(q, nlen);
            v[n].name = dn ? lower_dup(dn, strlen(dn)) : NULL;
            free(dn);
            v[n].value = eq ? decode_dup(eq + 1, len - nlen - 1) : strdup("");
            n++;
            if (!v[n - 1].name || !v[n - 1].value) {
                kv_free(v, n);
                return SKY_ENOMEM;
            }
        }
        q += len + (q[len] == '&');
    }
    *out_v = v;
    *out_n = n;
    return 0;
}

/* "/{account}{path}" then "\nname:v1,v2" per query parameter, sorted. */
static int append_resource(const char *account, const char *url, sky_buf *out)
{
    const char *path = url_path(url);
    if (path == NULL)
        return SKY_EINVAL;
    size_t plen = strcspn(path, "?");
    int rc = sky_buf_printf(out, "/%s%.*s", account, (int)plen, plen ? path : "/");
    if (rc != 0 || path[plen] != '?')
        return rc;
    kv *v;
    size_t n;
    rc = parse_query(path + plen + 1, &v, &n);
    if (rc != 0)
        return rc;
    qsort(v, n, sizeof(*v), kv_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int same = i > 0 && strcmp(v[i - 1].name, v[i].name) == 0;
        rc = same ? sky_buf_printf(out, ",%s", v[i].value)
                  : sky_buf_printf(out, "\n%s:%s", v[i].name, v[i].value);
    }
    kv_free(v, n);
    return rc;
}

int sky_storage_string_to_sign(const char *account, const char *method, const char *url,
                               const sky_headers *h, sky_buf *out)
{
    if (account == NULL || method == NULL || url == NULL || out == NULL)
        return SKY_EINVAL;
    int rc = sky_buf_printf(out, "%s\n", method);
    if (rc == 0)
        rc = append_std_headers(h, out);
    if (rc == 0)
        rc = append_ms_headers(h, out);
    if (rc == 0)
        rc = append_resource(account, url, out);
    return rc;
}

int sky_storage_hmac_b64(const char *key_b64, sky_span msg, char *out, size_t out_len)
{
    size_t klen = key_b64 ? strlen(key_b64) : 0;
    if (klen == 0 || klen % 4 != 0 || klen > 1024)
        return SKY_EINVAL;
    unsigned char key[800];
    int n = EVP_DecodeBlock(key, (const unsigned char *)key_b64, (int)klen);
    if (n <= 0)
        return SKY_EINVAL;
    /* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
    n -= (key_b64[klen - 1] == '=') + (key_b64[klen - 2] == '=');
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    unsigned char *ok =
        HMAC(EVP_sha256(), key, n, (const unsigned char *)msg.ptr, msg.len, mac, &mlen);
    OPENSSL_cleanse(key, sizeof(key));
    if (ok == NULL)
        return SKY_EINTERNAL;
    if (out_len < 4 * ((mlen + 2) / 3) + 1)
        return SKY_ETOOBIG;
    EVP_EncodeBlock((unsigned char *)out, mac, (int)mlen);
    return 0;
}

int sky_storage_authorize(const char *account, const char *key_b64, const char *method,
                          const char *url, sky_headers *h, sky_error *err)
{
    sky_buf sts;
    char sig[64];
    sky_buf_init(&sts, 1 << 20);
    int rc = sky_storage_string_to_sign(account, method, url, h, &sts);
    if (rc != 0) {
        sky_buf_free(&sts);
        return sky_error_set(err, rc, "shared key: cannot build the string to sign for %s",
                             method ? method : "?");
    }
    rc = sky_storage_hmac_b64(key_b64, sky_buf_span(&sts), sig, sizeof(sig));
    sky_buf_free(&sts);
    if (rc != 0)
        return sky_error_set(err, rc, "shared key: the account key is not valid base64");
    sky_buf hv;
    sky_buf_init(&hv, 4096);
    rc = sky_buf_printf(&hv, "SharedKey %s:%s", account, sig);
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_buf_span(&hv));
    OPENSSL_cleanse(sig, sizeof(sig));
    if (hv.data)
        OPENSSL_cleanse(hv.data, hv.len);
    sky_buf_free(&hv);
    return rc ? sky_error_set(err, rc, "shared key: cannot add the Authorization header") : 0;
}

void sky_storage_date_now(char *out, size_t out_len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(out, out_len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int sky_storage_url_encode(sky_span in, int keep_slash, sky_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.ptr[i];
        int keep =
            isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
        int rc = keep ? sky_buf_append(out, &in.ptr[i], 1) : sky_buf_append(out, enc, 3);
        if (rc != 0)
            return rc;
    }
    return 0;
}
