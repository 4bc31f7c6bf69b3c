/*
 * When the response cache answers a request that does not say (no x-skyio-cache header):
 * the config's "cache" object, and the rule for temperature 0.
 *
 *     "cache": {"ttl_s": 3600, "max_entry_bytes": 1048576, "temperature_zero": true,
 *               "models": {"gpt-4o": true, "gpt-4o-mini": false,
 *                          "text-embedding-3-small": {"ttl_s": 86400}}}
 *
 * A model listed true (or with an object) is cached whatever its temperature, false never
 * unless a request asks; a model not listed is cached when the body says "temperature": 0
 * (an answer that is meant to be the same each time), unless temperature_zero is false.
 * The Responses API is left out of both: its answers are state (an id each, a turn of a
 * conversation), so only a request that asks (x-skyio-cache: on) gets a kept one.
 * Every member is optional; no "cache" at all is the defaults.
 */
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "stores.h"

#define CONF_TTL_MS_DEFAULT (3600ull * 1000)
#define CONF_MAX_ENTRY_DEFAULT ((size_t)1 << 20)
/* A model's ttl_s at most a year: the stores keep milliseconds in 64 bits either way. */
#define CONF_TTL_S_MAX (366ll * 24 * 3600)

typedef struct conf_model {
    char *name;
    int on;
    uint64_t ttl_ms; /* 0: the cache's */
} conf_model;

struct gw_cache_conf {
    uint64_t ttl_ms;
    size_t max_entry;
    int temperature_zero;
    conf_model *models;
    size_t n_models;
};

static const gw_cache_conf conf_default = {CONF_TTL_MS_DEFAULT, CONF_MAX_ENTRY_DEFAULT, 1, NULL, 0};

void sky__gw_cache_conf_free(gw_cache_conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_models; i++)
        free(c->models[i].name);
    free(c->models);
    free(c);
}

/* A whole number of seconds from 1 to a year, when @p o has @p name: its milliseconds. */
static int ttl_of(const json_t *o, const char *what, uint64_t *out, sky_error *err)
{
    json_t *v = json_object_get(o, "ttl_s");
    if (v == NULL)
        return 0;
    json_int_t s = json_integer_value(v);
    if (!json_is_integer(v) || s < 1 || s > CONF_TTL_S_MAX)
        return sky_error_set(err, SKY_EINVAL,
                             "cache: %s: ttl_s is a whole number of seconds "
                             "from 1 to a year",
                             what);
    *out = (uint64_t)s * 1000;
    return 0;
}

static int parse_model(const char *name, const json_t *v, conf_model *m, sky_error *err)
{
    if (!json_is_boolean(v) && !json_is_object(v))
        return sky_error_set(err, SKY_EINVAL, "cache: models: %s is true, false or {\"ttl_s\": N}",
                             name);
    m->on = !json_is_false(v);
    m->name = strdup(name);
    if (m->name == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    return json_is_object(v) ? ttl_of(v, name, &m->ttl_ms, err) : 0;
}

static int parse_models(gw_cache_conf *c, const json_t *models, sky_error *err)
{
    const char *name;
    json_t *v;
    if (models == NULL)
        return 0;
    if (!json_is_object(models))
        return sky_error_set(err, SKY_EINVAL,
                             "cache: models maps model names to true, false "
                             "or {\"ttl_s\": N}");
    c->models = calloc(json_object_size(models) + 1, sizeof(*c->models));
    if (c->models == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    json_object_foreach((json_t *)(uintptr_t)models, name, v)
    {
        int rc = parse_model(name, v, &c->models[c->n_models], err);
        if (c->models[c->n_models].name)
            c->n_models++;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_top(gw_cache_conf *c, const json_t *cache, sky_error *err)
{
    json_t *max = json_object_get(cache, "max_entry_bytes");
    json_t *zero = json_object_get(cache, "temperature_zero");
    int rc = ttl_of(cache, "the cache", &c->ttl_ms, err);
    if (rc < 0)
        return rc;
    if (max && (!json_is_integer(max) || json_integer_value(max) < 1))
        return sky_error_set(err, SKY_EINVAL, "cache: max_entry_bytes is a whole number above 0");
    if (zero && !json_is_boolean(zero))
        return sky_error_set(err, SKY_EINVAL, "cache: temperature_zero is true or false");
    if (max)
        c->max_entry = (size_t)json_integer_value(max);
    if (zero)
        c->temperature_zero = json_is_true(zero);
    return parse_models(c, json_object_get(cache, "models"), err);
}

int sky__gw_cache_conf_parse(const json_t *cache, gw_cache_conf **out, sky_error *err)
{
    *out = NULL;
    if (cache && !json_is_object(cache))
        return sky_error_set(err, SKY_EINVAL,
                             "\"cache\" is an object: ttl_s, max_entry_bytes, "
                             "temperature_zero, models");
    gw_cache_conf *c = malloc(sizeof(*c));
    if (c == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    *c = conf_default;
    int rc = cache ? parse_top(c, cache, err) : 0;
    if (rc < 0) {
        sky__gw_cache_conf_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void sky__gw_cache_conf_set_ttl(gw_cache_conf *c, uint64_t ttl_ms)
{
    if (c && ttl_ms > 0)
        c->ttl_ms = ttl_ms;
}

static const conf_model *find(const gw_cache_conf *c, const char *model)
{
    for (size_t i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i].name, model) == 0)
            return &c->models[i];
    return NULL;
}

static const gw_cache_conf *conf_of(const sky_gateway *g)
{
    const gw_cache_conf *c = __atomic_load_n(&g->cache_conf, __ATOMIC_ACQUIRE);
    return c ? c : &conf_default;
}

uint64_t sky__gw_cache_ttl(const sky_gateway *g, const char *model)
{
    const gw_cache_conf *c = conf_of(g);
    const conf_model *m = find(c, model);
    return m && m->ttl_ms ? m->ttl_ms : c->ttl_ms;
}

size_t sky__gw_cache_max_entry(const sky_gateway *g)
{
    return conf_of(g)->max_entry;
}

int sky__gw_cache_by_default(const gw_request *q)
{
    const gw_cache_conf *c = conf_of(q->g);
    if (q->op == GW_OP_RESPONSES)
        return 0; /* its answers are state (ids, conversations): only when a request asks */
    const conf_model *m = find(c, q->asked->name);
    if (m)
        return m->on;
    return c->temperature_zero && q->op != GW_OP_EMBEDDINGS && q->temperature_zero;
}
