/*
 * libFuzzer target for Key Vault's readers: the input as a keyvault:// reference, as a
 * 401's WWW-Authenticate challenge, and as a secret, deleted secret or listing reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "azure/keyvault/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_ref(const char *s)
{
    sky_keyvault_ref r;
    sky_error e;
    sky_error_clear(&e);
    if (sky_keyvault_ref_parse(s, &r, &e) != 0)
        return;
    if (strncmp(r.vault_url, "https://", 8) != 0 || r.name == NULL ||
        sky_keyvault_name_check(r.name, &e) != 0)
        abort();
    sky_keyvault_ref_free(&r);
}

static void fz_challenge(const char *s)
{
    char url[] = "https://myvault.vault.azure.net";
    sky_keyvault_client c;
    sky_error e;
    char *scope = NULL;
    memset(&c, 0, sizeof(c));
    sky_keyvault_client_options_init(&c.o);
    c.vault_url = url;
    sky_error_clear(&e);
    int rc = sky__kv_challenge_scope(&c, s, &scope, &e);
    if ((rc == 0) != (scope != NULL))
        abort();
    free(scope);
}

static void fz_reply(sky_span in)
{
    for (int kind = SKY__KV_SECRET; kind <= SKY__KV_DELETED; kind++) {
        sky__kv_read r;
        int rc = sky__kv_read_reply(kind, in, &r);
        if (rc != 0 && rc != SKY_EJSON && rc != SKY_ENOMEM)
            abort();
        for (size_t i = 0; rc == 0 && i < r.count; i++)
            if (r.items[i].id == NULL)
                abort();
        sky__kv_read_free(&r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    fz_ref(s);
    fz_challenge(s);
    fz_reply((sky_span){(const char *)data, size});
    free(s);
    return 0;
}
