/*
 * Clients' keys. Only their SHA-256 is kept, so a memory dump or a config file shows no
 * usable key; the presented key is hashed and compared with every stored hash in constant
 * time (CRYPTO_memcmp, and no early exit), so timing tells nothing of how close a guess was
 * or which key matched.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>

#include "internal.h"

int sky_gateway_key_hash(sky_span key, unsigned char out[SKY_GATEWAY_SHA256_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(key.ptr ? key.ptr : "", key.len, out, &len, EVP_sha256(), NULL) != 1 ||
        len != SKY_GATEWAY_SHA256_LEN)
        return SKY_EINTERNAL;
    return 0;
}

/* The key of "Authorization: Bearer K" (OpenAI's SDKs) or "api-key: K" (Azure's). */
int sky__gw_presented_key(sky_server_req *r, sky_span *out)
{
    sky_span v;
    if (sky_server_req_header(r, "authorization", &v)) {
        if (v.len <= 7 || strncasecmp(v.ptr, "Bearer ", 7) != 0)
            return 0;
        *out = sky_span_make(v.ptr + 7, v.len - 7);
        while (out->len > 0 && out->ptr[0] == ' ')
            *out = sky_span_make(out->ptr + 1, out->len - 1);
        return out->len > 0;
    }
    if (sky_server_req_header(r, "api-key", &v) && v.len > 0) {
        *out = v;
        return 1;
    }
    return 0;
}

static gw_key *match_key(gw_table *t, const unsigned char *hash)
{
    gw_key *found = NULL;
    for (size_t i = 0; i < t->n_keys; i++) {
        int same = CRYPTO_memcmp(t->keys[i].sha256, hash, SKY_GATEWAY_SHA256_LEN) == 0;
        if (same && found == NULL)
            found = &t->keys[i];
    }
    return found;
}

int sky__gw_authenticate(sky_gateway *g, sky_server_req *r, gw_key **out_key)
{
    sky_span key;
    unsigned char hash[SKY_GATEWAY_SHA256_LEN];
    *out_key = NULL;
    if (g->table->n_keys == 0 && !sky__gw_admin_on(g))
        return 0;
    if (!sky__gw_presented_key(r, &key)) {
        sky__gw_error(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                      "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' "
                      "or 'api-key: KEY'.");
        return -1;
    }
    if (sky_gateway_key_hash(key, hash) == 0) {
        gw_key *made = sky__gw_admin_match(g, hash); /* both looked at: no early exit */
        *out_key = match_key(g->table, hash);
        *out_key = *out_key ? *out_key : made;
    }
    OPENSSL_cleanse(hash, sizeof(hash));
    if (*out_key == NULL) {
        /* never the key itself, not even a part of it: the reply may be logged anywhere */
        sky__gw_error(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                      "Incorrect API key provided.");
        return -1;
    }
    return 0;
}

int sky__gw_key_allows(const gw_key *key, const char *model)
{
    if (key == NULL || key->n_models == 0)
        return 1;
    for (size_t i = 0; i < key->n_models; i++)
        if (strcmp(key->models[i], model) == 0 || strcmp(key->models[i], "*") == 0)
            return 1;
    return 0;
}
