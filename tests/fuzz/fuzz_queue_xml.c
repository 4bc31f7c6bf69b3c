/*
 * libFuzzer target for the Queue XML reader: the input as a message list or a queue
 * listing, its texts decoded as base64 and kept raw. Whatever the input, every message
 * and name the reader keeps is whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "azure/queue/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_parse(sky_span in, int raw)
{
    sky__queue_parsed p;
    int rc = sky__queue_parse(in, &p);
    if (rc != 0 && rc != SKY_EPROTO && rc != SKY_ENOMEM && rc != SKY_ETOOBIG)
        abort();
    if (rc == 0 && sky__queue_decode_texts(&p, raw) != 0)
        abort();
    for (size_t i = 0; rc == 0 && i < p.count; i++)
        if (p.messages[i].text.len && p.messages[i].text.ptr == NULL)
            abort();
    for (size_t i = 0; rc == 0 && i < p.nqueues; i++)
        if (p.queues[i] == NULL)
            abort();
    sky__queue_parsed_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sky_span in = {(const char *)data, size};
    fz_parse(in, 0);
    fz_parse(in, 1);
    return 0;
}
