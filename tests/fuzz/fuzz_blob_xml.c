/*
 * libFuzzer target for the Blob XML readers: the input as a listing, a block
 * list and an error body. Whatever the input, results stay consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "azure/blob/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_list(sky_span in)
{
    sky__blob_list l;
    int rc = sky__blob_parse_list(in, &l);
    if (rc != 0) {
        if (rc != SKY_EPROTO && rc != SKY_ENOMEM && rc != SKY_ETOOBIG)
            abort();
        return;
    }
    for (size_t i = 0; i < l.count; i++)
        if (l.items[i].name == NULL || (l.items[i].is_prefix && l.items[i].size != -1))
            abort();
    if (l.next_marker && l.next_marker[0] == '\0')
        abort();
    sky__blob_list_free(&l);
}

static void fz_blocks(sky_span in)
{
    sky__blob_blocks b;
    int rc = sky__blob_parse_blocks(in, &b);
    if (rc != 0) {
        if (rc != SKY_EPROTO && rc != SKY_ENOMEM && rc != SKY_ETOOBIG)
            abort();
        return;
    }
    for (size_t i = 0; i < b.count; i++)
        if (b.names[i] == NULL)
            abort();
    sky__blob_blocks_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sky_span in = sky_span_make((const char *)data, size);
    fz_list(in);
    fz_blocks(in);
    char code[SKY_ERROR_SERVICE_CODE_MAX], msg[128];
    sky__blob_parse_error(in, code, sizeof(code), msg, sizeof(msg));
    if (strlen(code) >= sizeof(code) || strchr(msg, '\n'))
        abort();
    return 0;
}
