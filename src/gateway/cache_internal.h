/* The response cache's parts shared by cache.c and cache_embeddings.c. */
#ifndef SKY_GATEWAY_CACHE_INTERNAL_H
#define SKY_GATEWAY_CACHE_INTERNAL_H

#include <jansson.h>

#include "skyio/buf.h"
#include "internal.h"

typedef struct gw_embed_cache gw_embed_cache;

/* The cache's state of one request: its lookups under way, and for an embeddings request
 * cached per input, what each input found. Freed when the request has ended and no lookup
 * is left (sky__gw_lookup_release). */
struct gw_cache_lookup {
    gw_request *q;     /* NULL once the request ended */
    size_t pending;    /* lookups whose answer has not come */
    gw_embed_cache *e; /* per-input embeddings, or NULL */
    /* a streamed miss: its events as they went to the client, kept once it ended well */
    sky_buf sse;
    int sse_on; /* collecting (dropped, with sse freed, past the entry cap) */
};

/* Free @p l when its request has ended and no lookup is pending. */
void sky__gw_lookup_release(gw_cache_lookup *l);
/* The key of @p canon (canonical JSON) for @p q's operation and model, hex into @p out. */
int sky__gw_cache_digest(const gw_request *q, const char *canon, char out[GW_CACHE_KEY_LEN + 1]);

/* A hit's status, its tokens (none upstream) and its x-skyio-cache-status header. */
void sky__gw_cache_hit_headers(gw_request *q);

/* cache_conf.c: the TTL of @p model's answers; the largest answer kept; whether the
 * config (or temperature 0) asks for the cache when the request's header does not say. */
uint64_t sky__gw_cache_ttl(const sky_gateway *g, const char *model);
size_t sky__gw_cache_max_entry(const sky_gateway *g);
int sky__gw_cache_by_default(const gw_request *q);

/* cache_stream.c: a kept stream (SSE text, as the upstream sent it) tells itself from a
 * kept whole answer (JSON) by its first byte. */
int sky__gw_cache_is_sse(sky_span value);
/* Answer the streamed @p q from @p value (a kept stream, or a whole chat answer made into
 * one): 0 (q may be gone), or -1 when @p value cannot be a stream (nothing sent). */
int sky__gw_cache_replay(gw_request *q, sky_span value);

/* cache_embeddings.c: an embeddings request with a list of inputs, each input looked up
 * (and kept) on its own; only the misses go upstream. 1 when it took the request, 0 when
 * the request is not such a list. */
int sky__gw_embed_begin(gw_request *q, gw_cache_lookup *l);
/* The upstream answer to the misses: each kept, merged with the hits (a new body, owned by
 * @p l), or res->body as it came when it cannot be merged. */
sky_span sky__gw_embed_answered(gw_request *q, gw_cache_lookup *l, const sky_call_result *res);
void sky__gw_embed_free(gw_embed_cache *e);

#endif
