/* The gateway's response cache, as the `skyio serve` command sets it up (see
 * cache.c). */
#ifndef SKY_GATEWAY_CACHE_H
#define SKY_GATEWAY_CACHE_H

#include <stdint.h>

#include "skyio/gateway.h"

struct sky__store;

/*
 * Answer requests that ask for it (x-skyio-cache: on|refresh) from @p store
 * (open, keeping a cache), keeping answers @p ttl_ms. The store is borrowed:
 * close it after sky_gateway_free. NULL turns the cache off.
 */
void sky__gw_set_cache(sky_gateway *g, struct sky__store *store,
                       uint64_t ttl_ms);

#endif
