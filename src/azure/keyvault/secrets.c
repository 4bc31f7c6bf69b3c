/* The secrets operations: get, set, list, delete; and keyvault:// references. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

static int secret_url(const sky_keyvault_client *c, const char *base, const char *name,
                      const char *version, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%s/%s%s%s?api-version=" SKY_KEYVAULT_API_VERSION, c->vault_url,
                     base, name, version ? "/" : "", version ? version : "");
    return n < 0 || (size_t)n >= len ? SKY_ETOOBIG : 0;
}

static int check_version(const char *version, sky_error *err)
{
    if (version == NULL)
        return 0;
    size_t n = strlen(version);
    for (size_t i = 0; i < n; i++)
        if (!((version[i] >= '0' && version[i] <= '9') ||
              (version[i] >= 'a' && version[i] <= 'z') || (version[i] >= 'A' && version[i] <= 'Z')))
            n = 0;
    if (n == 0 || n > 64)
        return sky_error_set(err, SKY_EINVAL, "secret version '%.64s': letters and digits only",
                             version);
    return 0;
}

int sky_keyvault_get(sky_keyvault_client *c, const char *name, const char *version,
                     sky_keyvault_done_cb cb, void *user_data, sky_keyvault_op **out_op,
                     sky_error *err)
{
    char url[1024], what[256];
    if (sky_keyvault_name_check(name, err) != 0 || check_version(version, err) != 0)
        return SKY_EINVAL;
    if (c == NULL || secret_url(c, "secrets", name, version, url, sizeof(url)) != 0)
        return sky_error_set(err, SKY_EINVAL, "key vault: no client, or a URL too long");
    snprintf(what, sizeof(what), "GET /secrets/%s%s%s", name, version ? "/" : "",
             version ? version : "");
    return sky__kv_start(c, SKY__KV_SECRET, "GET", url, what, NULL, cb, user_data, out_op, err);
}

/* {"value": ..., "contentType": ...}: a new string holding the value (wipe it). */
static char *set_body(sky_span value, const char *content_type)
{
    json_t *o = json_object();
    json_t *v = json_stringn(value.ptr ? value.ptr : "", value.len);
    if (o == NULL || v == NULL) {
        json_decref(o);
        json_decref(v);
        return NULL;
    }
    json_object_set_new(o, "value", v);
    if (content_type)
        json_object_set_new(o, "contentType", json_string(content_type));
    char *text = json_dumps(o, JSON_COMPACT);
    OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v), value.len);
    json_decref(o);
    return text;
}

int sky_keyvault_set(sky_keyvault_client *c, const char *name, sky_span value,
                     const char *content_type, sky_keyvault_done_cb cb, void *user_data,
                     sky_keyvault_op **out_op, sky_error *err)
{
    char url[1024], what[256];
    if (sky_keyvault_name_check(name, err) != 0)
        return SKY_EINVAL;
    if (c == NULL || secret_url(c, "secrets", name, NULL, url, sizeof(url)) != 0)
        return sky_error_set(err, SKY_EINVAL, "key vault: no client, or a URL too long");
    if (value.len > 25 * 1024)
        return sky_error_set(err, SKY_ETOOBIG,
                             "secret value of %zu bytes: Key Vault takes at "
                             "most 25 KiB",
                             value.len);
    char *body = set_body(value, content_type);
    if (body == NULL)
        return sky_error_set(err, SKY_EINVAL, "secret value: not UTF-8 text (or out of memory)");
    snprintf(what, sizeof(what), "PUT /secrets/%s", name);
    int rc = sky__kv_start(c, SKY__KV_SECRET, "PUT", url, what, body, cb, user_data, out_op, err);
    OPENSSL_cleanse(body, strlen(body));
    free(body);
    return rc;
}

/* A next link is followed only on the vault's own host: the token goes nowhere else. */
static int next_link_ok(const sky_keyvault_client *c, const char *link)
{
    size_t h = strlen(c->host);
    return strncmp(link, "https://", 8) == 0 && strncmp(link + 8, c->host, h) == 0 &&
           (link[8 + h] == '/' || link[8 + h] == '?');
}

int sky_keyvault_list(sky_keyvault_client *c, const char *next_link, sky_keyvault_done_cb cb,
                      void *user_data, sky_keyvault_op **out_op, sky_error *err)
{
    char url[2048];
    if (c == NULL)
        return sky_error_set(err, SKY_EINVAL, "key vault: no client");
    if (next_link && (!next_link_ok(c, next_link) || strlen(next_link) >= sizeof(url)))
        return sky_error_set(err, SKY_EINVAL,
                             "key vault: a next link not on the vault's host is not followed");
    if (next_link)
        snprintf(url, sizeof(url), "%s", next_link);
    else
        snprintf(url, sizeof(url), "%s/secrets?api-version=" SKY_KEYVAULT_API_VERSION,
                 c->vault_url);
    return sky__kv_start(c, SKY__KV_LIST, "GET", url, "GET /secrets", NULL, cb, user_data, out_op,
                         err);
}

int sky_keyvault_delete(sky_keyvault_client *c, const char *name, sky_keyvault_done_cb cb,
                        void *user_data, sky_keyvault_op **out_op, sky_error *err)
{
    char url[1024], what[256];
    if (sky_keyvault_name_check(name, err) != 0)
        return SKY_EINVAL;
    if (c == NULL || secret_url(c, "secrets", name, NULL, url, sizeof(url)) != 0)
        return sky_error_set(err, SKY_EINVAL, "key vault: no client, or a URL too long");
    snprintf(what, sizeof(what), "DELETE /secrets/%s", name);
    return sky__kv_start(c, SKY__KV_DELETED, "DELETE", url, what, NULL, cb, user_data, out_op, err);
}

/* ---- references ---- */

int sky_keyvault_is_ref(const char *text)
{
    return text && strncmp(text, "keyvault://", 11) == 0;
}

void sky_keyvault_ref_free(sky_keyvault_ref *r)
{
    if (r == NULL)
        return;
    free(r->vault_url);
    free(r->name);
    free(r->version);
    memset(r, 0, sizeof(*r));
}

/* VAULT, NAME and VERSION of "VAULT/NAME[/VERSION]" into @p parts (empty when absent). */
static int ref_parts(const char *rest, char parts[3][256])
{
    int n = 0;
    memset(parts, 0, 3 * 256);
    for (const char *p = rest; n < 3; n++) {
        size_t len = strcspn(p, "/");
        if (len == 0 || len >= 256)
            return -1;
        memcpy(parts[n], p, len);
        p += len;
        if (*p == '\0')
            return n + 1;
        p++;
    }
    return -1;
}

int sky_keyvault_ref_parse(const char *text, sky_keyvault_ref *out, sky_error *err)
{
    char parts[3][256], url[300];
    memset(out, 0, sizeof(*out));
    int n = sky_keyvault_is_ref(text) ? ref_parts(text + 11, parts) : -1;
    if (n < 2)
        return sky_error_set(err, SKY_EINVAL,
                             "'%.200s' is not a secret reference: keyvault://VAULT/NAME[/VERSION]",
                             text ? text : "");
    if (sky_keyvault_name_check(parts[1], err) != 0 ||
        check_version(n == 3 ? parts[2] : NULL, err) != 0)
        return SKY_EINVAL;
    /* a vault's name, or (with a dot or a colon) its host */
    int is_host = strpbrk(parts[0], ".:") != NULL;
    snprintf(url, sizeof(url), is_host ? "https://%s" : "https://%s.vault.azure.net", parts[0]);
    out->vault_url = strdup(url);
    out->name = strdup(parts[1]);
    out->version = n == 3 ? strdup(parts[2]) : NULL;
    if (!out->vault_url || !out->name || (n == 3 && !out->version)) {
        sky_keyvault_ref_free(out);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    return 0;
}
