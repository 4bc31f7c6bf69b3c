/*
 * A deep copy of a gateway's routing options (deployments, fallbacks, keys, prices), for the
 * loops of `--threads N` that build their table of a reload later, on their own thread,
 * after the caller's options are gone. Every string is wiped when the copy is freed: the
 * deployments' keys are among them.
 */
#include <openssl/crypto.h>
#include <stdlib.h>

#include "internal.h"

struct gw_routing_copy {
    sky_gateway_options o;
    sky_gateway_deployment *deps;
    sky_gateway_fallback *fbs;
    sky_gateway_client_key *keys;
    sky_gateway_price *prices;
    char **strings;
    size_t n_strings, cap;
    const char ***arrays; /* the name lists */
    size_t n_arrays;
    int failed;
};

/* @p s copied and kept for the free; NULL stays NULL. */
static const char *dup(gw_routing_copy *c, const char *s)
{
    if (s == NULL || c->failed)
        return NULL;
    char *d = strdup(s);
    if (d == NULL || c->n_strings == c->cap) {
        free(d);
        c->failed = 1;
        return NULL;
    }
    c->strings[c->n_strings++] = d;
    return d;
}

/* An array of @p n names copied (its memory kept as one of the strings). */
static const char *const *dup_names(gw_routing_copy *c, const char *const *names, size_t n)
{
    if (n == 0 || c->failed)
        return NULL;
    const char **a = calloc(n, sizeof(*a));
    if (a == NULL) {
        c->failed = 1;
        return NULL;
    }
    c->arrays[c->n_arrays++] = a;
    for (size_t i = 0; i < n; i++)
        a[i] = dup(c, names[i]);
    return a;
}

static size_t count_strings(const sky_gateway_options *o)
{
    size_t n = 5 * o->n_deployments + o->n_fallbacks + o->n_keys + o->n_prices;
    for (size_t i = 0; i < o->n_fallbacks; i++)
        n += o->fallbacks[i].n_to;
    for (size_t i = 0; i < o->n_keys; i++)
        n += o->keys[i].n_models;
    return n + 1;
}

static void copy_deployments(gw_routing_copy *c, const sky_gateway_options *o)
{
    for (size_t i = 0; i < o->n_deployments; i++) {
        sky_gateway_deployment *d = &c->deps[i];
        *d = o->deployments[i];
        d->model = dup(c, d->model);
        d->base_url = dup(c, d->base_url);
        d->api_key = dup(c, d->api_key);
        d->api_version = dup(c, d->api_version);
        d->deployment = dup(c, d->deployment);
    }
}

static void copy_fallbacks_and_keys(gw_routing_copy *c, const sky_gateway_options *o)
{
    for (size_t i = 0; i < o->n_fallbacks; i++) {
        c->fbs[i] = o->fallbacks[i];
        c->fbs[i].model = dup(c, c->fbs[i].model);
        c->fbs[i].to = dup_names(c, c->fbs[i].to, c->fbs[i].n_to);
    }
    for (size_t i = 0; i < o->n_keys; i++) {
        c->keys[i] = o->keys[i];
        c->keys[i].name = dup(c, c->keys[i].name);
        c->keys[i].models = dup_names(c, c->keys[i].models, c->keys[i].n_models);
    }
    for (size_t i = 0; i < o->n_prices; i++) {
        c->prices[i] = o->prices[i];
        c->prices[i].model = dup(c, c->prices[i].model);
    }
}

gw_routing_copy *sky__gw_routing_copy(const sky_gateway_options *o)
{
    gw_routing_copy *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->o = *o;
    c->cap = count_strings(o);
    c->strings = calloc(c->cap, sizeof(*c->strings));
    c->deps = calloc(o->n_deployments + 1, sizeof(*c->deps));
    c->fbs = calloc(o->n_fallbacks + 1, sizeof(*c->fbs));
    c->keys = calloc(o->n_keys + 1, sizeof(*c->keys));
    c->prices = calloc(o->n_prices + 1, sizeof(*c->prices));
    c->arrays = calloc(o->n_fallbacks + o->n_keys + 1, sizeof(*c->arrays));
    c->failed = !c->strings || !c->deps || !c->fbs || !c->keys || !c->prices || !c->arrays;
    if (!c->failed) {
        copy_deployments(c, o);
        copy_fallbacks_and_keys(c, o);
    }
    /* what a loop's table reads, and nothing of the listening options */
    c->o.host = NULL;
    c->o.access_log = c->o.tls_cert_file = c->o.tls_key_file = NULL;
    c->o.deployments = c->deps;
    c->o.fallbacks = c->fbs;
    c->o.keys = c->keys;
    c->o.prices = c->prices;
    if (c->failed) {
        sky__gw_routing_free(c);
        return NULL;
    }
    return c;
}

const sky_gateway_options *sky__gw_routing_options(const gw_routing_copy *c)
{
    return &c->o;
}

void sky__gw_routing_free(gw_routing_copy *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_strings; i++) {
        OPENSSL_cleanse(c->strings[i], strlen(c->strings[i]));
        free(c->strings[i]);
    }
    for (size_t i = 0; i < c->n_arrays; i++)
        free((void *)c->arrays[i]);
    free(c->arrays);
    free(c->strings);
    free(c->deps);
    free(c->fbs);
    free(c->keys);
    free(c->prices);
    free(c);
}
