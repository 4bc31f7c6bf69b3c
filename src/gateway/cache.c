/*
 * The gateway's response cache, on a store (src/store: Redis, or a SQLite file). A client
 * asks for it per request with `x-skyio-cache: on` (look up, and keep the answer on a miss),
 * `refresh` (go upstream, keep the new answer) or `off` (the default); the answer says
 * `x-skyio-cache-status: hit | miss | refresh` (and `partial`: cache_embeddings.c). Whole
 * answers of status 200 are kept, for the store's TTL; a streamed chat request that hits
 * gets the kept answer replayed as a stream (a streamed miss passes through, not kept).
 *
 * The key is the SHA-256 of the operation, the model asked for and the body as canonical
 * JSON (keys sorted, no spaces, without "stream"), so the same request written differently
 * hits; "user" is left out, as it says who asks, not what. A store that fails (Redis away)
 * is a miss: the request goes upstream as if there were no cache.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "stores.h"
#include "cache_internal.h"
#include "skyio/log.h"
#include "store/store.h"

void sky__gw_set_cache(sky_gateway *g, sky__store *store, const gw_cache_conf *conf)
{
    g->cache = store;
    __atomic_store_n(&g->cache_conf, conf, __ATOMIC_RELEASE);
}

void sky__gw_set_cache_conf(sky_gateway *g, const gw_cache_conf *conf)
{
    for (int i = 0; i < g->n_loops; i++) {
        sky_gateway *l = sky__gw_loop_at(g, i);
        if (l)
            __atomic_store_n(&l->cache_conf, conf, __ATOMIC_RELEASE);
    }
}

void sky__gw_cache_hit_headers(gw_request *q)
{
    q->status = 200;
    q->used = (gw_tokens){0, 0, 0, 0}; /* nothing upstream: the key's budget gets it back */
    sky_server_add_header(q->sr, "x-skyio-cache-status", SKY_SPAN_LIT("hit"));
}

static int header_is(sky_span v, const char *word)
{
    return v.len == strlen(word) && strncasecmp(v.ptr, word, v.len) == 0;
}

/* The header wins; without it, the config's rule (per model, temperature 0). Streams are
 * kept for chat and completions; the Responses API's streams pass by. */
static int mode_of(const gw_request *q)
{
    sky_span v;
    if (!q->g->cache || (q->stream && q->op != GW_OP_CHAT && q->op != GW_OP_COMPLETIONS))
        return GW_CACHE_NONE;
    if (!sky_server_req_header(q->sr, "x-skyio-cache", &v))
        return sky__gw_cache_by_default(q) ? GW_CACHE_USE : GW_CACHE_NONE;
    if (header_is(v, "on"))
        return GW_CACHE_USE;
    if (header_is(v, "refresh"))
        return GW_CACHE_REFRESH;
    return GW_CACHE_NONE;
}

static void to_hex(const unsigned char *md, unsigned n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static const char *op_name(gw_op op)
{
    switch (op) {
    case GW_OP_CHAT:
        return "chat";
    case GW_OP_EMBEDDINGS:
        return "embeddings";
    case GW_OP_RESPONSES:
        return "responses";
    default:
        return "completions";
    }
}

int sky__gw_cache_digest(const gw_request *q, const char *canon, char out[GW_CACHE_KEY_LEN + 1])
{
    const char *path = op_name(q->op);
    const char *model = q->asked->name;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, path, strlen(path) + 1) == 1 &&
             EVP_DigestUpdate(ctx, model, strlen(model) + 1) == 1 &&
             EVP_DigestUpdate(ctx, canon, strlen(canon)) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &n) == 1 && n * 2 == GW_CACHE_KEY_LEN;
    EVP_MD_CTX_free(ctx);
    if (ok)
        to_hex(md, n, out);
    return ok ? 0 : -1;
}

static int make_key(gw_request *q)
{
    json_t *doc = json_loadb(q->body.ptr, q->body.len, 0, NULL);
    char *canon = NULL;
    if (json_is_object(doc)) {
        json_object_del(doc, "user");
        json_object_del(doc, "stream"); /* a stream hits the whole answer, replayed */
        json_object_del(doc, "stream_options");
        canon = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
    }
    json_decref(doc);
    int rc = canon ? sky__gw_cache_digest(q, canon, q->cache_key) : -1;
    free(canon);
    return rc;
}

/* 1 when @p v answers @p q; 0 when it cannot (a kept stream for a whole request, a whole
 * answer that is no chat for a stream): a miss, the upstream's answer replaces it. */
static int answer_hit(gw_request *q, sky_span v)
{
    if (q->stream)
        return sky__gw_cache_replay(q, v) == 0; /* may free q */
    if (sky__gw_cache_is_sse(v))
        return 0;
    sky__gw_cache_hit_headers(q);
    sky_server_respond(q->sr, 200, "application/json", v); /* may free q */
    return 1;
}

void sky__gw_lookup_release(gw_cache_lookup *l)
{
    if (l->q || l->pending)
        return;
    sky__gw_embed_free(l->e);
    sky_buf_free(&l->sse);
    free(l);
}

/* The lookup stays with its request until it ends (sky__gw_cache_forget): a streamed miss
 * collects its copy there. */
static void on_lookup(const sky_error *err, sky_span value, void *ud)
{
    gw_cache_lookup *l = ud;
    gw_request *q = l->q;
    l->pending = 0;
    if (q == NULL) {
        sky__gw_lookup_release(l);
        return;
    }
    sky_gateway *g = q->g;
    if (err->code == 0 && answer_hit(q, value)) {
        g->cache_counts[GW_CACHE_HIT]++; /* q may be gone */
        return;
    }
    int missed = err->code == 0 || err->code == SKY_ENOTFOUND;
    g->cache_counts[missed ? GW_CACHE_MISSED : GW_CACHE_BYPASSED]++;
    if (!missed)
        SKY_DEBUG("gateway", "cache lookup failed (%s): going upstream", sky_err_name(err->code));
    sky__gw_proxy_miss(q);
}

int sky__gw_cache_begin(gw_request *q)
{
    q->cache_mode = mode_of(q);
    if (q->cache_mode == GW_CACHE_NONE)
        return 0;
    gw_cache_lookup *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        q->cache_mode = GW_CACHE_NONE;
        return 0;
    }
    l->q = q;
    q->lookup = l;
    if (q->op == GW_OP_EMBEDDINGS && q->cache_mode == GW_CACHE_USE && sky__gw_embed_begin(q, l))
        return 1;
    int keyed = make_key(q) == 0;
    if (!keyed)
        q->cache_mode = GW_CACHE_NONE;
    if (!keyed)
        sky__gw_cache_forget(q);
    if (!keyed || q->cache_mode == GW_CACHE_REFRESH)
        return 0; /* nothing to look up */
    l->pending = 1;
    sky__store_cache_get(q->g->cache, q->cache_key, on_lookup, l);
    return 1;
}

sky_span sky__gw_cache_answered(gw_request *q, const sky_call_result *res)
{
    if (q->cache_mode == GW_CACHE_NONE || q->sr == NULL)
        return res->body;
    if (q->lookup && q->lookup->e)
        return sky__gw_embed_answered(q, q->lookup, res);
    sky_server_add_header(q->sr, "x-skyio-cache-status",
                          q->cache_mode == GW_CACHE_REFRESH ? SKY_SPAN_LIT("refresh")
                                                            : SKY_SPAN_LIT("miss"));
    if (res->status == 200 && res->body.len <= sky__gw_cache_max_entry(q->g))
        sky__store_cache_put(q->g->cache, q->cache_key, res->body,
                             sky__gw_cache_ttl(q->g, q->asked->name), NULL, NULL);
    return res->body;
}

void sky__gw_cache_forget(gw_request *q)
{
    gw_cache_lookup *l = q->lookup;
    q->lookup = NULL;
    if (l) {
        l->q = NULL;
        sky__gw_lookup_release(l);
    }
}
