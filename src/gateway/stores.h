/* The stores `skyio serve` gives the gateway: the response cache (cache.c), the usage
 * records and the keys' shared daily counters (usage_store.c). All are borrowed: close them
 * after sky_gateway_free. */
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

/*
 * The keys' use today from the usage store's records (its daily caps hold across a
 * restart); the loop runs until they are read. 0 (also without a usage store), or a SKY_E
 * code with @p err.
 */
int sky__gw_usage_load_today(sky_gateway *g, sky_error *err);

/*
 * Share the keys' use today with the gateways beside this one through @p store's counters
 * (open, keeping counters: Redis), so their daily caps hold for all of them. NULL: none.
 */
void sky__gw_set_counters(sky_gateway *g, struct sky__store *store);

#endif
