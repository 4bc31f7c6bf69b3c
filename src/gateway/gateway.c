/*
 * The gateway handle: its deployments (an endpoint, a pipeline and URLs each), its models,
 * its clients' keys, and the server with the route table. Everything here is set up once;
 * requests are handled in the route files and proxy.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/log.h"
#include "skyio/rand.h"
#include "internal.h"

#define GW_DEFAULT_MAX_BODY (16u * 1024u * 1024u)
#define GW_MAX_DEPLOYMENTS_PER_MODEL 64

/* The API's index: the first route that matches serves the request. */
static const struct {
    const char *method;
    const char *path;
    int prefix;
    sky_server_handler_cb handler;
} routes[] = {
    /* OpenAI's: the body names the model */
    {"POST", "/v1/chat/completions", 0, sky__gw_on_chat},
    {"POST", "/v1/embeddings", 0, sky__gw_on_embeddings},
    {"POST", "/v1/responses", 0, sky__gw_on_responses},
    {"POST", "/v1/completions", 0, sky__gw_on_completions},
    {"GET", "/v1/models", 0, sky__gw_on_models},
    /* Azure OpenAI's v1 surface: the same, under /openai */
    {"POST", "/openai/v1/chat/completions", 0, sky__gw_on_chat},
    {"POST", "/openai/v1/embeddings", 0, sky__gw_on_embeddings},
    {"POST", "/openai/v1/responses", 0, sky__gw_on_responses},
    {"POST", "/openai/v1/completions", 0, sky__gw_on_completions},
    {"GET", "/openai/v1/models", 0, sky__gw_on_models},
    /* Azure OpenAI's: the path names the deployment (a model of the gateway's) */
    {"POST", "/openai/deployments/", 1, sky__gw_on_azure},
    {"POST", "/openai/responses", 0, sky__gw_on_responses},
    /* operations: no key */
    {"GET", "/healthz", 0, sky__gw_on_healthz},
};

static const char *const op_paths[GW_OP_COUNT] = {
    [GW_OP_CHAT] = "/v1/chat/completions",
    [GW_OP_EMBEDDINGS] = "/v1/embeddings",
    [GW_OP_RESPONSES] = "/v1/responses",
    [GW_OP_COMPLETIONS] = "/v1/completions",
};

void sky_gateway_deployment_init(sky_gateway_deployment *d)
{
    memset(d, 0, sizeof(*d));
    d->kind = SKY_GATEWAY_OPENAI;
    d->weight = 1;
}

void sky_gateway_options_init(sky_gateway_options *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->max_body = GW_DEFAULT_MAX_BODY;
    o->upstream_timeout_ms = 300000;
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
 * The deployment's own pipeline: its limits and breaker learn from it alone. No retry in
 * it: a failure goes back to the gateway, which tries another deployment at once rather
 * than wait on one that is throttled or down; an open breaker refuses at once for the same
 * reason.
 */
static int dep_pipeline(sky_gateway *g, gw_deployment *d, const sky_gateway_deployment *in,
                        long timeout_ms, sky_error *err)
{
    sky_pipeline_options po;
    sky_ai_pipeline_options_init(&po);
    po.retry.max_retries = 0;
    po.breaker_fail_fast = 1;
    po.attempt_timeout_ms = timeout_ms;
    po.auth = sky_ai_pipeline_auth;
    po.auth_user_data = &d->ep;
    po.rate.rpm = in->rpm;
    po.rate.tpm = in->tpm;
    int rc = sky_pipeline_new(g->loop, g->http, &po, &d->pipe);
    return rc < 0 ? sky_error_set(err, rc, "%s: cannot make its pipeline", d->label) : 0;
}

static int dep_setup(sky_gateway *g, gw_deployment *d, const sky_gateway_deployment *in, size_t nth,
                     long timeout_ms, sky_error *err)
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
    d->weight = in->weight;
    if (d->label == NULL || d->model == NULL || (renamed && !d->upstream))
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    if (sky_ai_endpoint_set(&d->ep, azure ? SKY_AI_AZURE : SKY_AI_OPENAI, in->base_url, in->api_key,
                            in->api_version) < 0)
        return sky_error_set(err, SKY_EINVAL, "%s: bad endpoint", d->label);
    int rc = dep_urls(d, in->deployment ? in->deployment : in->model, err);
    return rc < 0 ? rc : dep_pipeline(g, d, in, timeout_ms, err);
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

/* ---- models: the deployments grouped by the name clients use ---- */

static gw_model *model_for(sky_gateway *g, const char *name)
{
    for (size_t i = 0; i < g->n_models; i++)
        if (strcmp(g->models[i].name, name) == 0)
            return &g->models[i];
    gw_model *m = &g->models[g->n_models];
    m->deps = calloc(g->n_deps, sizeof(*m->deps));
    if (m->deps == NULL)
        return NULL;
    m->name = name;
    g->n_models++;
    return m;
}

static int group_models(sky_gateway *g, sky_error *err)
{
    g->models = calloc(g->n_deps, sizeof(*g->models));
    if (g->models == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < g->n_deps; i++) {
        gw_model *m = model_for(g, g->deps[i].model);
        if (m == NULL)
            return sky_error_set(err, SKY_ENOMEM, "out of memory");
        if (m->n_deps == GW_MAX_DEPLOYMENTS_PER_MODEL)
            return sky_error_set(err, SKY_EINVAL, "model %s: more than %d deployments", m->name,
                                 GW_MAX_DEPLOYMENTS_PER_MODEL);
        m->deps[m->n_deps++] = i;
    }
    return 0;
}

static gw_model *model_named(sky_gateway *g, const char *name)
{
    const gw_model *m = sky__gw_model_find(g, sky_span_cstr(name));
    return m ? &g->models[m - g->models] : NULL;
}

static int add_fallbacks(sky_gateway *g, const sky_gateway_fallback *f, sky_error *err)
{
    gw_model *m = model_named(g, f->model ? f->model : "");
    if (m == NULL)
        return sky_error_set(err, SKY_EINVAL, "fallbacks: no model %s", f->model);
    if (m->n_fallbacks > 0)
        return sky_error_set(err, SKY_EINVAL, "fallbacks: model %s twice", m->name);
    m->fallbacks = calloc(f->n_to + 1, sizeof(*m->fallbacks));
    if (m->fallbacks == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < f->n_to; i++) {
        gw_model *to = model_named(g, f->to[i] ? f->to[i] : "");
        if (to == NULL || to == m)
            return sky_error_set(err, SKY_EINVAL, "fallbacks of %s: %s is not another model",
                                 m->name, f->to[i] ? f->to[i] : "(null)");
        m->fallbacks[m->n_fallbacks++] = (size_t)(to - g->models);
    }
    return 0;
}

static int setup_fallbacks(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    for (size_t i = 0; i < o->n_fallbacks; i++) {
        int rc = add_fallbacks(g, &o->fallbacks[i], err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- clients' keys ---- */

static int key_copy(gw_key *k, const sky_gateway_client_key *in, uint64_t now_ms)
{
    sky__gw_budget_init(&k->budget, in->rpm, in->tpm, now_ms);
    k->name = strdup(in->name ? in->name : "");
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

static void keys_free(sky_gateway *g)
{
    for (size_t i = 0; i < g->n_keys; i++) {
        for (size_t j = 0; j < g->keys[i].n_models; j++)
            free(g->keys[i].models[j]);
        free(g->keys[i].models);
        free(g->keys[i].name);
    }
    free(g->keys);
}

/* ---- the handle ---- */

static int setup_server(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    sky_server_options so;
    sky_server_options_init(&so);
    so.host = o->host ? o->host : "127.0.0.1";
    so.port = o->port;
    /* h2o refuses bodies over its limit itself, in plain text; up to twice --max-body the
     * gateway reads them and answers 413 in OpenAI's JSON */
    so.max_request_body = g->max_body <= SIZE_MAX / 2 ? g->max_body * 2 : g->max_body;
    int rc = sky_server_new(g->loop, &so, &g->srv, err);
    for (size_t i = 0; rc == 0 && i < SKY_ARRAY_LEN(routes); i++)
        rc = sky_server_route(g->srv, routes[i].method, routes[i].path, routes[i].prefix,
                              routes[i].handler, g);
    if (rc == SKY_ENOMEM)
        sky_error_set(err, rc, "out of memory");
    return rc < 0 ? rc : sky_server_listen(g->srv, err);
}

static int setup_upstreams(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    sky_http_client_options co;
    sky_http_client_options_init(&co);
    co.connect_timeout_ms = 10000; /* a deployment that does not answer is failed over */
    if (sky_http_client_new(g->loop, &co, &g->http) < 0 ||
        (g->json_headers = sky_headers_new()) == NULL ||
        sky_headers_add(g->json_headers, SKY_SPAN_LIT("Content-Type"),
                        SKY_SPAN_LIT("application/json")) < 0)
        return sky_error_set(err, SKY_ENOMEM, "cannot make the HTTP client");
    g->deps = calloc(o->n_deployments, sizeof(*g->deps));
    if (g->deps == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->n_deployments; i++) {
        g->n_deps++;
        int rc = dep_setup(g, &g->deps[i], &o->deployments[i], i, o->upstream_timeout_ms, err);
        if (rc < 0)
            return rc;
    }
    return group_models(g, err);
}

static int setup_keys(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    g->keys = o->n_keys ? calloc(o->n_keys, sizeof(*g->keys)) : NULL;
    if (o->n_keys && g->keys == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->n_keys; i++) {
        g->n_keys++;
        if (key_copy(&g->keys[i], &o->keys[i], uv_now(g->loop)) < 0)
            return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    return 0;
}

int sky_gateway_new(uv_loop_t *loop, const sky_gateway_options *o, sky_gateway **out,
                    sky_error *err)
{
    if (o == NULL || o->n_deployments == 0)
        return sky_error_set(err, SKY_EINVAL, "the gateway needs at least one deployment");
    sky_gateway *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    g->loop = loop;
    g->max_body = o->max_body ? o->max_body : GW_DEFAULT_MAX_BODY;
    g->rng = sky_rand_u64();
    int rc = setup_upstreams(g, o, err);
    rc = rc < 0 ? rc : setup_fallbacks(g, o, err);
    rc = rc < 0 ? rc : setup_keys(g, o, err);
    rc = rc < 0 ? rc : setup_server(g, o, err);
    if (rc < 0) {
        sky_gateway_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int sky_gateway_port(const sky_gateway *g)
{
    return sky_server_port(g->srv);
}

static void on_server_down(sky_server *s, void *ud)
{
    sky_gateway *g = ud;
    (void)s;
    sky_gateway_shutdown_cb cb = g->shutdown_cb;
    g->shutdown_cb = NULL;
    if (cb)
        cb(g, g->shutdown_ud);
}

void sky_gateway_shutdown(sky_gateway *g, uint64_t grace_ms, sky_gateway_shutdown_cb cb,
                          void *user_data)
{
    g->shutdown_cb = cb;
    g->shutdown_ud = user_data;
    sky_server_shutdown(g->srv, grace_ms, on_server_down, g);
}

void sky_gateway_free(sky_gateway *g)
{
    if (g == NULL)
        return;
    /* Pipelines first: their calls end now, answering clients still there (503), while
     * the server can still answer them. */
    for (size_t i = 0; i < g->n_deps; i++) {
        sky_pipeline_free(g->deps[i].pipe);
        g->deps[i].pipe = NULL;
    }
    sky__gw_proxy_end_all(g);
    sky_server_free(g->srv);
    sky_http_client_free(g->http);
    sky_headers_free(g->json_headers);
    for (size_t i = 0; i < g->n_deps; i++)
        dep_free(&g->deps[i]);
    for (size_t i = 0; i < g->n_models; i++) {
        free(g->models[i].deps);
        free(g->models[i].fallbacks);
    }
    free(g->models);
    free(g->deps);
    keys_free(g);
    free(g);
}
