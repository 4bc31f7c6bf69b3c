/* The stores `skyio serve` gives the gateway: the response cache (cache.c), the usage
 * records and the keys' shared daily counters (usage_store.c). All are borrowed: close them
 * after sky_gateway_free. */
#ifndef SKY_GATEWAY_STORES_H
#define SKY_GATEWAY_STORES_H

#include <stdint.h>

#include "skyio/gateway.h"

struct sky__store;

/* When the cache answers a request that does not ask (the config's "cache": per model,
 * temperature 0), how long it keeps answers, and its largest answer kept (cache_conf.c). */
typedef struct gw_cache_conf gw_cache_conf;

/* The config's "cache" object (NULL: the defaults) into *out (free it with
 * sky__gw_cache_conf_free): 0, or SKY_EINVAL / SKY_ENOMEM with @p err saying which member. */
int sky__gw_cache_conf_parse(const json_t *cache, gw_cache_conf **out, sky_error *err);
/* A TTL that wins over the config's (the --cache-ttl-s flag); 0 changes nothing. */
void sky__gw_cache_conf_set_ttl(gw_cache_conf *c, uint64_t ttl_ms);
void sky__gw_cache_conf_free(gw_cache_conf *c);

/*
 * Answer requests from @p store (open, keeping a cache): those that ask for it
 * (x-skyio-cache: on|refresh) and those @p conf says (borrowed until it is replaced by
 * another call or the gateway is freed; NULL: the defaults). @p store NULL turns the cache
 * off. Calls may replace @p conf at any time on the gateway's loop (a config reload).
 */
void sky__gw_set_cache(sky_gateway *g, struct sky__store *store, const gw_cache_conf *conf);

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

/* ---- --threads N with stores: each loop opens its own (loops.c) ---- */

/* A loop's gateway, its libuv loop and its index (0: the caller's); 0 or a SKY_E code. */
typedef int (*sky__gw_loop_fn)(sky_gateway *loop_gw, uv_loop_t *loop, int index, void *ud);
/* Loop @p index (1..N-1) is ending on its own thread, its gateway freed: close what was
 * opened for it on @p loop (which runs until then), then call @p done(@p done_arg) there. */
typedef void (*sky__gw_loop_end_fn)(uv_loop_t *loop, int index, void *ud, void (*done)(void *arg),
                                    void *done_arg);

/*
 * sky_gateway_new, but loops 1..N-1 are made without their servers and not yet run: give
 * each its stores with sky__gw_each_loop, then start them with sky__gw_start_loops.
 * sky_gateway_free frees it either way.
 */
int sky__gw_new_held(uv_loop_t *loop, const sky_gateway_options *o, sky_gateway **out,
                     sky_error *err);
/* @p fn on each loop in turn, loop 0 first, on the caller's thread (which may run each
 * loop: none runs yet); stops at the first nonzero return and gives it. SKY_ESTATE once
 * the loops run. */
int sky__gw_each_loop(sky_gateway *g, sky__gw_loop_fn fn, void *ud);
/* Loops 1..N-1 listening on loop 0's port and running on their threads (nothing with one
 * loop), with @p o the options given to sky__gw_new_held: 0, or a SKY_E code with @p err. */
int sky__gw_start_loops(sky_gateway *g, const sky_gateway_options *o, sky_error *err);
/* @p fn when each loop 1..N-1 ends (its thread, or the caller's for a loop never run).
 * Loop 0's are the caller's to close after sky_gateway_free. */
void sky__gw_on_loop_end(sky_gateway *g, sky__gw_loop_end_fn fn, void *ud);
/* @p conf (as sky__gw_set_cache's) to every loop's cache, from loop 0's thread. */
void sky__gw_set_cache_conf(sky_gateway *g, const gw_cache_conf *conf);

#endif
