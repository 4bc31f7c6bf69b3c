/*
 * The response cache for an embeddings request with a list of inputs: each input is looked
 * up and kept on its own (its key: the request with that input alone), so a list that
 * shares inputs with earlier ones sends only the new inputs upstream. When every input
 * hits, nothing goes upstream; otherwise the body sent has the misses only, and the answer
 * is merged back with the hits in the client's order (x-skyio-cache-status: partial, or
 * miss when none hit). Usage counts what went upstream.
 */
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "skyio/log.h"
#include "store/store.h"

/* More inputs than this go the whole-request way (OpenAI allows 2,048 a request). */
#define EMBED_MAX_INPUTS 2048

struct gw_embed_cache {
    size_t n;
    char (*keys)[GW_CACHE_KEY_LEN + 1];
    json_t **items; /* each input's embedding object, once known */
    size_t *miss;   /* the inputs sent upstream, in order */
    size_t n_miss;
    size_t errors; /* lookups the store could not answer */
    char *body;    /* the body sent upstream (owned: the request's body points at it) */
    char *merged;  /* the answer given */
};

typedef struct embed_slot {
    gw_cache_lookup *l;
    size_t i;
} embed_slot;

void sky__gw_embed_free(gw_embed_cache *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; e->items && i < e->n; i++)
        json_decref(e->items[i]);
    free(e->items);
    free(e->keys);
    free(e->miss);
    free(e->body);
    free(e->merged);
    free(e);
}

/* A list of inputs (strings or token lists), not one input's tokens. */
static int input_list(const json_t *input)
{
    size_t n = json_array_size(input);
    if (n == 0 || n > EMBED_MAX_INPUTS)
        return 0;
    const json_t *first = json_array_get(input, 0);
    return json_is_string(first) || json_is_array(first);
}

static int input_key(const gw_request *q, const json_t *doc, const json_t *one, char *out)
{
    json_t *alone = json_copy((json_t *)(uintptr_t)doc);
    char *canon = NULL;
    if (alone && json_object_set(alone, "input", (json_t *)(uintptr_t)one) == 0) {
        json_object_del(alone, "user");
        canon = json_dumps(alone, JSON_SORT_KEYS | JSON_COMPACT);
    }
    json_decref(alone);
    int rc = canon ? sky__gw_cache_digest(q, canon, out) : -1;
    free(canon);
    return rc;
}

static gw_embed_cache *embed_new(const gw_request *q, const json_t *doc, const json_t *input)
{
    gw_embed_cache *e = calloc(1, sizeof(*e));
    size_t n = json_array_size(input);
    if (e == NULL)
        return NULL;
    e->n = n;
    e->keys = calloc(n, sizeof(*e->keys));
    e->items = calloc(n, sizeof(*e->items));
    e->miss = calloc(n, sizeof(*e->miss));
    int ok = e->keys && e->items && e->miss;
    for (size_t i = 0; ok && i < n; i++)
        ok = input_key(q, doc, json_array_get(input, i), e->keys[i]) == 0;
    if (!ok) {
        sky__gw_embed_free(e);
        return NULL;
    }
    return e;
}

/* {"object": "list", "data": [each input's, indexed], "model", "usage"}: into e->merged. */
static int merge(gw_embed_cache *e, const char *model, json_t *usage)
{
    json_t *data = json_array();
    for (size_t i = 0; data && i < e->n; i++) {
        json_t *item = json_copy(e->items[i]);
        if (!item || json_object_set_new(item, "index", json_integer((json_int_t)i)) != 0 ||
            json_array_append_new(data, item) != 0) {
            json_decref(item);
            json_decref(data);
            data = NULL;
        }
    }
    json_t *doc = data ? json_pack("{ss so ss sO}", "object", "list", "data", data, "model", model,
                                   "usage", usage)
                       : NULL;
    free(e->merged);
    e->merged = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return e->merged ? 0 : -1;
}

/* Every input hit: the answer, with nothing upstream. */
static void answer_all(gw_request *q, gw_embed_cache *e)
{
    json_t *usage = json_pack("{sisi}", "prompt_tokens", 0, "total_tokens", 0);
    int rc = usage ? merge(e, q->asked->name, usage) : -1;
    json_decref(usage);
    if (rc < 0) {
        sky__gw_proxy_miss(q);
        return;
    }
    q->status = 200;
    q->used = (gw_tokens){0, 0, 0, 0};
    sky_server_add_header(q->sr, "x-skyio-cache-status", SKY_SPAN_LIT("hit"));
    sky_server_respond(q->sr, 200, "application/json", sky_span_cstr(e->merged)); /* may free q */
}

/* The body upstream: the request with the missed inputs only. */
static int misses_body(gw_request *q, gw_embed_cache *e)
{
    json_t *doc = json_loadb(q->body.ptr, q->body.len, 0, NULL);
    json_t *input = json_object_get(doc, "input");
    json_t *sent = json_array();
    for (size_t j = 0; sent && j < e->n_miss; j++)
        if (json_array_append(sent, json_array_get(input, e->miss[j])) != 0)
            json_decref(sent), sent = NULL;
    if (sent && json_object_set_new(doc, "input", sent) == 0)
        e->body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (e->body == NULL)
        return -1;
    q->body = sky_span_cstr(e->body);
    return 0;
}

static void decide(gw_request *q, gw_embed_cache *e)
{
    e->n_miss = 0;
    for (size_t i = 0; i < e->n; i++)
        if (e->items[i] == NULL)
            e->miss[e->n_miss++] = i;
    q->g->cache_counts[e->errors          ? GW_CACHE_BYPASSED
                       : e->n_miss == 0   ? GW_CACHE_HIT
                       : e->n_miss < e->n ? GW_CACHE_PARTIAL
                                          : GW_CACHE_MISSED]++;
    if (e->n_miss == 0) {
        answer_all(q, e);
        return;
    }
    if (e->n_miss < e->n && misses_body(q, e) < 0)
        e->n_miss = e->n; /* out of memory: the whole list goes up */
    sky__gw_proxy_miss(q);
}

static void on_input(const sky_error *err, sky_span value, void *ud)
{
    embed_slot *slot = ud;
    gw_cache_lookup *l = slot->l;
    size_t i = slot->i;
    free(slot);
    l->pending--;
    if (l->q == NULL) {
        sky__gw_lookup_release(l);
        return;
    }
    if (err->code != 0 && err->code != SKY_ENOTFOUND)
        l->e->errors++;
    if (err->code == 0) {
        json_t *item = json_loadb(value.ptr, value.len, 0, NULL);
        if (json_is_object(item))
            l->e->items[i] = item;
        else
            json_decref(item);
    }
    if (l->pending == 0)
        decide(l->q, l->e);
}

int sky__gw_embed_begin(gw_request *q, gw_cache_lookup *l)
{
    json_t *doc = json_loadb(q->body.ptr, q->body.len, 0, NULL);
    json_t *input = json_object_get(doc, "input");
    gw_embed_cache *e = input_list(input) ? embed_new(q, doc, input) : NULL;
    json_decref(doc);
    if (e == NULL)
        return 0;
    l->e = e;
    l->pending = e->n; /* callbacks never run inside the calls below */
    for (size_t i = 0; i < e->n; i++) {
        embed_slot *slot = malloc(sizeof(*slot));
        if (slot == NULL) {
            l->pending--; /* counted as a miss */
            continue;
        }
        slot->l = l;
        slot->i = i;
        sky__store_cache_get(q->g->cache, e->keys[i], on_input, slot);
    }
    if (l->pending == 0)
        decide(q, e); /* every slot failed: not from a callback, but nothing was asked */
    return 1;
}

/* Keep each answered input, and put it in its place among the hits. */
static int take_answer(gw_request *q, gw_embed_cache *e, json_t *data)
{
    if (json_array_size(data) != e->n_miss)
        return -1;
    for (size_t j = 0; j < e->n_miss; j++) {
        json_t *item = json_array_get(data, j);
        json_int_t at = json_integer_value(json_object_get(item, "index"));
        if (!json_is_object(item) || at < 0 || (size_t)at >= e->n_miss)
            return -1;
        size_t i = e->miss[at];
        json_t *kept = json_copy(item);
        json_object_del(kept, "index");
        char *text = kept ? json_dumps(kept, JSON_COMPACT) : NULL;
        if (text && strlen(text) <= sky__gw_cache_max_entry(q->g))
            sky__store_cache_put(q->g->cache, e->keys[i], sky_span_cstr(text),
                                 sky__gw_cache_ttl(q->g, q->asked->name), NULL, NULL);
        free(text);
        json_decref(e->items[i]);
        e->items[i] = kept;
    }
    return 0;
}

sky_span sky__gw_embed_answered(gw_request *q, gw_cache_lookup *l, const sky_call_result *res)
{
    gw_embed_cache *e = l->e;
    int partial = e->n_miss < e->n;
    sky_server_add_header(q->sr, "x-skyio-cache-status",
                          partial ? SKY_SPAN_LIT("partial") : SKY_SPAN_LIT("miss"));
    if (res->status != 200)
        return res->body;
    json_t *doc = json_loadb(res->body.ptr, res->body.len, 0, NULL);
    json_t *usage = json_object_get(doc, "usage");
    const char *model = json_string_value(json_object_get(doc, "model"));
    int rc = take_answer(q, e, json_object_get(doc, "data"));
    if (rc == 0 && partial)
        rc = merge(e, model ? model : q->asked->name, usage ? usage : json_null());
    json_decref(doc);
    if (rc < 0)
        SKY_WARN("gateway", "embeddings answer not as asked: passed on, not cached");
    return rc == 0 && partial ? sky_span_cstr(e->merged) : res->body;
}
