/*
 * A gateway's routing table: its deployments (an endpoint, a pipeline and URLs each), its
 * models with their fallbacks, its clients' keys. Built whole from the options, never
 * changed after; a reload builds another and swaps it in. Each request holds the table it
 * began with, so a reload drops nothing: the old table goes with its last request.
 */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/log.h"
#include "internal.h"

static const char *const op_paths[GW_OP_COUNT] = {
    [GW_OP_CHAT] = "/v1/chat/completions",
    [GW_OP_EMBEDDINGS] = "/v1/embeddings",
    [GW_OP_RESPONSES] = "/v1/responses",
    [GW_OP_COMPLETIONS] = "/v1/completions",
};

const char *sky__gw_op_path(gw_op op)
{
    return op_paths[op];
}

/* ---- deployments ---- */

static int dep_urls(gw_deployment *d, const char *url_model, sky_error *err)
{
    for (int op = 0; op < GW_OP_COUNT; op++) {
        sky_buf b;
        sky_buf_init(&b, 8192);
        int rc = sky_ai_url(&d->ep, op_paths[op], url_model, &b);
        if (rc < 0) {
            sky_buf_free(&b);
            return sky_error_set(err, rc, "%s: cannot make its %s URL", d->label, op_paths[op]);
        }
        d->url[op] = sky_buf_detach(&b, NULL);
        if (d->url[op] == NULL)
            return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    return 0;
}

/*
 * How many calls may be in flight to the deployment. None unless the config says so: a
 * gateway passes its clients' concurrency through, as a proxy does; what protects the
 * upstream is its own answer (429s and rate headers teach the rate limiter, failures open
 * the breaker), not a guess of ours. An adaptive limiter by default held 10,000 streams to
 * about 20 at a time, queued inside the gateway, whenever the first token was slow. Each
 * loop gets its share of a configured limit, rounded up.
 */
static void dep_concurrency(sky_pipeline_options *po, const sky_gateway_deployment *in, int n_loops)
{
    int n = in->concurrency > 0 ? in->concurrency : in->max_concurrency;
    po->use_concurrency = n > 0;
    if (n <= 0)
        return;
    n = (n + n_loops - 1) / n_loops;
    po->concurrency.max = n;
    if (in->concurrency > 0) {
        po->concurrency.kind = SKY_LIMITER_FIXED;
        po->concurrency.initial = n;
        return;
    }
    /* adaptive under the cap, starting as a batch does: from 16, doubling or more each
     * round trip while the round trip does not grow */
    po->concurrency.initial = n < 16 ? n : 16;
    po->concurrency.slow_start = 1;
    po->concurrency.window_min_ms = 250;
}

/*
 * Several loops: each loop's pipeline keeps its own limiter (an even share of a known
 * limit, and what that loop has learned), and every one asks the deployment's shared
 * limiter too (the whole known limit), which learns from the replies of all of them: the
 * loops together keep to one limit, known or learned.
 */
static int dep_shared_rate(sky_gateway *g, const gw_deployment *d, const sky_gateway_deployment *in,
                           sky_pipeline_options *po)
{
    char key[1024];
    snprintf(key, sizeof(key), "%s %s %s", d->label, in->base_url,
             in->deployment ? in->deployment : "");
    po->admitter = sky__gw_shared_rate(g->shared, key, &po->rate);
    return po->admitter ? 0 : -1;
}

/*
 * The deployment's own pipeline: its limits and breaker learn from it alone. No retry in
 * it: a failure goes back to the gateway, which tries another deployment at once rather
 * than wait on one that is throttled or down; an open breaker refuses at once for the same
 * reason.
 */
static int dep_pipeline(sky_gateway *g, gw_deployment *d, const sky_gateway_deployment *in,
                        long timeout_ms, sky_error *err)
{
    /* the endpoint its auth reads is the holder's: the pipeline may outlive this table */
    sky_ai_endpoint *ep = sky__gw_pipe_endpoint(d->held);
    if (sky_ai_endpoint_set(ep, d->azure ? SKY_AI_AZURE : SKY_AI_OPENAI, in->base_url, in->api_key,
                            in->api_version) < 0)
        return sky_error_set(err, SKY_EINVAL, "%s: bad endpoint", d->label);
    sky_pipeline_options po;
    sky_ai_pipeline_options_init(&po);
    po.retry.max_retries = 0;
    po.breaker_fail_fast = 1;
    po.attempt_timeout_ms = timeout_ms;
    /* the client's request id goes as x-request-id (proxy.c); only Azure reads a second one,
     * x-ms-client-request-id: to the others it and its echo cost curl some 10,000
     * instructions a request for nothing */
    po.send_request_id = d->azure;
    if (d->azure && in->api_key == NULL) {
        /* Azure without a key: Entra ID tokens from the loop's credential chain, shared
         * by its deployments (one token a scope, one refresh at a time) */
        po.credential = sky__gw_credential(g, err);
        if (po.credential == NULL)
            return -1;
        po.scope = sky_ai_entra_scope(ep);
    } else {
        po.auth = sky_ai_pipeline_auth;
        po.auth_user_data = ep;
    }
    po.rate.rpm = in->rpm;
    po.rate.tpm = in->tpm;
    if (g->n_loops > 1 && dep_shared_rate(g, d, in, &po) < 0)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    /* each loop's own limiter: its even share of a known limit */
    po.rate.rpm = in->rpm / g->n_loops;
    po.rate.tpm = in->tpm / g->n_loops;
    dep_concurrency(&po, in, g->n_loops);
    sky_pipeline **slot = sky__gw_pipe_slot(d->held);
    int rc = sky_pipeline_new(g->loop, g->http, &po, slot);
    d->pipe = d->rt.pipe = *slot;
    return rc < 0 ? sky_error_set(err, rc, "%s: cannot make its pipeline", d->label) : 0;
}

/* Its pipeline: the one an unchanged deployment of @p prev had (learned state and all), or
 * a new one. */
static int dep_pipe(sky_gateway *g, gw_deployment *d, const sky_gateway_deployment *in,
                    long timeout_ms, gw_table *prev, unsigned char *taken, sky_error *err)
{
    unsigned char print[SKY_GATEWAY_SHA256_LEN];
    if (sky__gw_dep_print(in, timeout_ms, print) < 0)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    if (sky__gw_carry(prev, taken, d, print))
        return 0;
    if ((d->held = sky__gw_pipe_new(print)) == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    return dep_pipeline(g, d, in, timeout_ms, err);
}

static int dep_setup(sky_gateway *g, gw_deployment *d, const sky_gateway_deployment *in, size_t nth,
                     long timeout_ms, gw_table *prev, unsigned char *taken, sky_error *err)
{
    char label[320];
    if (in->model == NULL || in->model[0] == '\0' || in->base_url == NULL || in->weight < 0)
        return sky_error_set(err, SKY_EINVAL,
                             "deployment %zu: a model, a base_url and a weight of 0 or more", nth);
    snprintf(label, sizeof(label), "%.255s#%zu", in->model, nth);
    d->label = strdup(label);
    d->model = strdup(in->model);
    int azure = in->kind == SKY_GATEWAY_AZURE;
    int renamed = in->deployment && (azure || strcmp(in->deployment, in->model) != 0);
    if (renamed)
        d->upstream = strdup(in->deployment);
    d->azure = azure;
    d->chat_only = in->chat_only;
    d->rt.weight = in->weight;
    if (d->label == NULL || d->model == NULL || (renamed && !d->upstream))
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    if (sky_ai_endpoint_set(&d->ep, azure ? SKY_AI_AZURE : SKY_AI_OPENAI, in->base_url, in->api_key,
                            in->api_version) < 0)
        return sky_error_set(err, SKY_EINVAL, "%s: bad endpoint", d->label);
    int rc = dep_urls(d, in->deployment ? in->deployment : in->model, err);
    return rc < 0 ? rc : dep_pipe(g, d, in, timeout_ms, prev, taken, err);
}

static void dep_free(gw_deployment *d)
{
    sky_ai_endpoint_free(&d->ep); /* wipes the key */
    for (int op = 0; op < GW_OP_COUNT; op++)
        free(d->url[op]);
    free(d->model);
    free(d->upstream);
    free(d->label);
}

/* ---- models: the deployments grouped by the name clients use (skyio/route.h) ---- */

static int setup_models(gw_table *t, const sky_gateway_options *o, sky_error *err)
{
    sky_route_models m;
    const char **names = calloc(t->n_deps ? t->n_deps : 1, sizeof(*names));
    if (names == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->n_deps; i++)
        names[i] = t->deps[i].model;
    int rc = sky_route_models_new(names, t->n_deps, o->fallbacks, o->n_fallbacks, &m, err);
    free(names);
    t->models = m.models; /* the table frees them, on failure too */
    t->n_models = m.n_models;
    return rc;
}

/* ---- clients' keys ---- */

/* The key as kept; its budget is the gateway's for that name (shared.c), so a reload or
 * another loop finds it as it stands. */
static int key_copy(sky_gateway *g, gw_key *k, const sky_gateway_client_key *in)
{
    k->name = strdup(in->name ? in->name : "");
    k->budget = k->name
                    ? sky__gw_shared_budget(g->shared, k->name, in->rpm, in->tpm, uv_now(g->loop))
                    : NULL;
    if (k->budget == NULL)
        return SKY_ENOMEM;
    k->daily_tokens = in->daily_tokens > 0 ? in->daily_tokens : 0;
    k->daily_cost = in->daily_cost > 0 ? in->daily_cost : 0;
    memcpy(k->sha256, in->sha256, sizeof(k->sha256));
    k->models = in->n_models ? calloc(in->n_models, sizeof(*k->models)) : NULL;
    if (k->name == NULL || (in->n_models && k->models == NULL))
        return SKY_ENOMEM;
    for (size_t i = 0; i < in->n_models; i++) {
        if ((k->models[i] = strdup(in->models[i])) == NULL)
            return SKY_ENOMEM;
        k->n_models++;
    }
    return 0;
}

static void keys_free(gw_table *t)
{
    for (size_t i = 0; i < t->n_keys; i++) {
        for (size_t j = 0; j < t->keys[i].n_models; j++)
            free(t->keys[i].models[j]);
        free(t->keys[i].models);
        free(t->keys[i].name);
    }
    free(t->keys);
}

static int setup_keys(sky_gateway *g, gw_table *t, const sky_gateway_options *o, sky_error *err)
{
    t->keys = o->n_keys ? calloc(o->n_keys, sizeof(*t->keys)) : NULL;
    if (o->n_keys && t->keys == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->n_keys; i++) {
        t->n_keys++;
        if (key_copy(g, &t->keys[i], &o->keys[i]) < 0)
            return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    return 0;
}

/* ---- the table ---- */

static int setup_upstreams(sky_gateway *g, gw_table *t, const sky_gateway_options *o,
                           sky_error *err)
{
    /* the routing running now, whose unchanged deployments keep what they learned */
    gw_table *prev = g->table;
    unsigned char *taken = prev ? calloc(prev->n_deps, 1) : NULL;
    t->deps = calloc(o->n_deployments, sizeof(*t->deps));
    if (t->deps == NULL || (prev && taken == NULL)) {
        free(taken);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < o->n_deployments; i++) {
        t->n_deps++;
        rc = dep_setup(g, &t->deps[i], &o->deployments[i], i, o->upstream_timeout_ms, prev, taken,
                       err);
    }
    free(taken);
    return rc < 0 ? rc : setup_models(t, o, err);
}

int sky__gw_table_new(sky_gateway *g, const sky_gateway_options *o, gw_table **out, sky_error *err)
{
    if (o == NULL || o->n_deployments == 0)
        return sky_error_set(err, SKY_EINVAL, "the gateway needs at least one deployment");
    gw_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    t->g = g;
    t->refs = 1;
    t->next = g->tables;
    if (g->tables)
        g->tables->prev = t;
    g->tables = t;
    int rc = setup_upstreams(g, t, o, err);
    rc = rc < 0 ? rc : setup_keys(g, t, o, err);
    rc = rc < 0 ? rc : sky__gw_prices_set(t, o->prices, o->n_prices, err); /* prices.c */
    if (rc < 0) {
        sky__gw_table_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void sky__gw_table_close(gw_table *t)
{
    for (size_t i = 0; i < t->n_deps; i++) {
        sky__gw_pipe_release(t->deps[i].held); /* freed with the last table that holds it */
        t->deps[i].held = NULL;
        t->deps[i].pipe = t->deps[i].rt.pipe = NULL;
    }
}

void sky__gw_table_free(gw_table *t)
{
    if (t == NULL)
        return;
    sky_gateway *g = t->g;
    if (t->prev)
        t->prev->next = t->next;
    else
        g->tables = t->next;
    if (t->next)
        t->next->prev = t->prev;
    sky__gw_table_close(t);
    for (size_t i = 0; i < t->n_deps; i++)
        dep_free(&t->deps[i]);
    sky_route_models models = {t->models, t->n_models};
    sky_route_models_free(&models);
    free(t->deps);
    free(t->prices);
    keys_free(t);
    free(t);
}

gw_table *sky__gw_table_ref(gw_table *t)
{
    t->refs++;
    return t;
}

void sky__gw_table_unref(gw_table *t)
{
    /* while the gateway closes, it frees every table itself */
    if (--t->refs == 0 && !t->g->closing)
        sky__gw_table_free(t);
}
