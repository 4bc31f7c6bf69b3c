/* Key Vault's JSON replies, read with jansson: a secret bundle, a deleted one, a listing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"

static const char *keep(sky__kv_read *r, const char *s)
{
    if (s == NULL)
        return NULL;
    if (r->nstrings == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        char **n = realloc(r->strings, cap * sizeof(*n));
        if (n == NULL)
            return NULL;
        r->strings = n;
        r->cap = cap;
    }
    char *copy = strdup(s);
    if (copy)
        r->strings[r->nstrings++] = copy;
    return copy;
}

/* "https://vault/secrets/NAME[/VERSION]" (or /deletedsecrets/): name and version kept. */
static int split_id(sky__kv_read *r, const char *id, sky_keyvault_secret *s)
{
    const char *p = id ? strstr(id, "secrets/") : NULL;
    if (p == NULL)
        return 0;
    p += strlen("secrets/");
    size_t n = strcspn(p, "/?");
    char name[256];
    if (n >= sizeof(name))
        return SKY_EJSON;
    memcpy(name, p, n);
    name[n] = '\0';
    s->name = keep(r, name);
    if (p[n] == '/' && p[n + 1])
        s->version = keep(r, p + n + 1);
    return s->name ? 0 : SKY_ENOMEM;
}

static int64_t num(const json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

static int read_item(sky__kv_read *r, const json_t *j, sky_keyvault_secret *s)
{
    const json_t *attrs = json_object_get(j, "attributes");
    const json_t *enabled = json_object_get(attrs, "enabled");
    memset(s, 0, sizeof(*s));
    const char *id = json_string_value(json_object_get(j, "id"));
    s->id = keep(r, id);
    s->content_type = keep(r, json_string_value(json_object_get(j, "contentType")));
    s->recovery_id = keep(r, json_string_value(json_object_get(j, "recoveryId")));
    s->enabled = enabled ? json_is_true(enabled) : 1;
    s->created = num(attrs, "created");
    s->updated = num(attrs, "updated");
    s->deleted_date = num(j, "deletedDate");
    s->scheduled_purge_date = num(j, "scheduledPurgeDate");
    return id == NULL ? SKY_EJSON : split_id(r, id, s);
}

/* The value, copied for the reply; jansson's copy is wiped before the tree goes. */
static int read_value(sky__kv_read *r, json_t *root, sky_keyvault_secret *s)
{
    json_t *v = json_object_get(root, "value");
    if (!json_is_string(v))
        return 0;
    size_t n = json_string_length(v);
    r->value = malloc(n + 1);
    if (r->value == NULL)
        return SKY_ENOMEM;
    memcpy(r->value, json_string_value(v), n);
    r->value[n] = '\0';
    r->value_len = n;
    OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v), n);
    s->value.ptr = r->value;
    s->value.len = n;
    return 0;
}

static int read_list(sky__kv_read *r, const json_t *root)
{
    const json_t *arr = json_object_get(root, "value");
    size_t n = json_array_size(arr);
    r->items = calloc(n ? n : 1, sizeof(*r->items));
    if (r->items == NULL)
        return SKY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = read_item(r, json_array_get(arr, i), &r->items[r->count]);
        if (rc != 0)
            return rc;
        r->count++;
    }
    const char *next = json_string_value(json_object_get(root, "nextLink"));
    if (next && next[0] && (r->next_link = strdup(next)) == NULL)
        return SKY_ENOMEM;
    return 0;
}

int sky__kv_read_reply(int kind, sky_span body, sky__kv_read *out)
{
    memset(out, 0, sizeof(*out));
    json_t *root = json_loadb(body.ptr ? body.ptr : "", body.len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return SKY_EJSON;
    }
    int rc;
    if (kind == SKY__KV_LIST) {
        rc = read_list(out, root);
    } else {
        out->items = calloc(1, sizeof(*out->items));
        rc = out->items ? read_item(out, root, &out->items[0]) : SKY_ENOMEM;
        out->count = rc == 0;
        if (rc == 0)
            rc = read_value(out, root, &out->items[0]);
    }
    json_decref(root);
    return rc;
}

void sky__kv_read_free(sky__kv_read *r)
{
    for (size_t i = 0; i < r->nstrings; i++)
        free(r->strings[i]);
    if (r->value) {
        OPENSSL_cleanse(r->value, r->value_len);
        free(r->value);
    }
    free(r->strings);
    free(r->items);
    free(r->next_link);
    memset(r, 0, sizeof(*r));
}
