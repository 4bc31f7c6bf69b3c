/* Placeholder while the postgres store is written. */
#include "internal.h"

static int stub_open(sky__store *s, sky_error *err)
{
    (void)s;
    return sky_error_set(err, SKY_ESTATE, "not built yet");
}

const sky__store_vt sky__store_postgres_vt = {.name = "postgres", .caps = 0, .open = stub_open};
