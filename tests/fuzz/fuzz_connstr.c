/*
 * libFuzzer target for Storage connection strings and the Shared Key
 * string-to-sign: the input as a connection string, and as a request URL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/error.h"
#include "skyio/storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A parsed account must be consistent: an endpoint always, a key only with a name. */
static void fz_connstr(const char *s, size_t n)
{
    sky_storage_account *a = NULL;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky_storage_connstr_parse(sky_span_make(s, n), &a, &err);
    if (rc == 0) {
        if (a == NULL || a->blob_endpoint == NULL)
            abort();
        if (a->account_key && a->account_name == NULL)
            abort();
        if (a->account_key && strstr(err.message, a->account_key))
            abort();
        sky_storage_account_free(a);
    } else if ((rc != SKY_EINVAL && rc != SKY_ENOMEM) || a != NULL || err.code != rc) {
        abort();
    }
}

static void fz_sign(const char *s, size_t n)
{
    char *url = malloc(n + 32);
    if (url == NULL)
        return;
    memcpy(url, "http://h/", 9);
    memcpy(url + 9, s, n);
    url[9 + n] = '\0';
    sky_buf sts;
    sky_buf_init(&sts, 1 << 20);
    int rc = sky_storage_string_to_sign("acct", "GET", url, NULL, &sts);
    if (rc != 0 && rc != SKY_ENOMEM && rc != SKY_ETOOBIG)
        abort();
    if (rc == 0 && strncmp(sts.data, "GET\n", 4) != 0)
        abort();
    sky_buf_free(&sts);
    free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    fz_connstr(s, size);
    if (memchr(s, '\0', size) == NULL)
        fz_sign(s, size);
    return 0;
}
