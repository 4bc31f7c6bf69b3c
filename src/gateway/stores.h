/* The stores `skyio serve` gives the gateway: the response cache (cache.c) and the usage
 * records (usage_store.c). Both are borrowed: close them after sky_gateway_free. */
#ifndef SKY_GATEWAY_STORES_H
#define SKY_GATEWAY_STORES_H

#include <stdint.h>

#include "skyio/gateway.h"

struct sky__store;

/*
 * Answer requests that ask for it (x-skyio-cache: on|refresh) from @p store (open, keeping
 * a cache), keeping answers @p ttl_ms. NULL turns the cache off.
 */
void sky__gw_set_cache(sky_gateway *g, struct sky__store *store, uint64_t ttl_ms);

/*
 * Append one usage record per model call (time, key, model, deployment, status, tokens,
 * latency) to @p store, which writes them in batches off the request path. NULL: none.
 */
void sky__gw_set_usage_store(sky_gateway *g, struct sky__store *store);

#endif
