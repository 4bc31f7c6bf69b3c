/*
 * The gateway handle: the server with the route table, the HTTP client every deployment
 * sends through, and the routing table (table.c), which a reload replaces. Requests are
 * handled in the route files and proxy.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/log.h"
#include "skyio/rand.h"
#include "responses_turn.h"
#include "stores.h"

#define GW_DEFAULT_MAX_BODY (16u * 1024u * 1024u)

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
    {"GET", "/v1/responses/", 1, sky__gw_on_response_doc},
    {"DELETE", "/v1/responses/", 1, sky__gw_on_response_doc},
    {"POST", "/v1/completions", 0, sky__gw_on_completions},
    {"POST", "/v1/conversations", 0, sky__gw_on_conversations},
    {"GET", "/v1/conversations/", 1, sky__gw_on_conversation},
    {"POST", "/v1/conversations/", 1, sky__gw_on_conversation},
    {"DELETE", "/v1/conversations/", 1, sky__gw_on_conversation},
    {"GET", "/v1/models", 0, sky__gw_on_models},
    {"GET", "/v1/models/", 1, sky__gw_on_model},
    /* Azure OpenAI's v1 surface: the same, under /openai */
    {"POST", "/openai/v1/chat/completions", 0, sky__gw_on_chat},
    {"POST", "/openai/v1/embeddings", 0, sky__gw_on_embeddings},
    {"POST", "/openai/v1/responses", 0, sky__gw_on_responses},
    {"GET", "/openai/v1/responses/", 1, sky__gw_on_response_doc},
    {"DELETE", "/openai/v1/responses/", 1, sky__gw_on_response_doc},
    {"POST", "/openai/v1/completions", 0, sky__gw_on_completions},
    {"POST", "/openai/v1/conversations", 0, sky__gw_on_conversations},
    {"GET", "/openai/v1/conversations/", 1, sky__gw_on_conversation},
    {"POST", "/openai/v1/conversations/", 1, sky__gw_on_conversation},
    {"DELETE", "/openai/v1/conversations/", 1, sky__gw_on_conversation},
    {"GET", "/openai/v1/models", 0, sky__gw_on_models},
    {"GET", "/openai/v1/models/", 1, sky__gw_on_model},
    /* Azure OpenAI's: the path names the deployment (a model of the gateway's) */
    {"POST", "/openai/deployments/", 1, sky__gw_on_azure},
    {"POST", "/openai/responses", 0, sky__gw_on_responses},
    {"GET", "/openai/models", 0, sky__gw_on_models},
    {"GET", "/openai/models/", 1, sky__gw_on_model},
    /* operations: no key */
    {"GET", "/healthz", 0, sky__gw_on_healthz},
    {"GET", "/readyz", 0, sky__gw_on_readyz},
    {"GET", "/metrics", 0, sky__gw_on_metrics},
    /* the live page and its JSON (status.c, page.c): no key either */
    {"GET", "/status.json", 0, sky__gw_on_status},
    /* the admin API (admin.c): the master key, or 404 when there is none */
    {"POST", "/admin/keys", 0, sky__gw_on_admin_keys},
    {"GET", "/admin/keys", 0, sky__gw_on_admin_keys},
    {"DELETE", "/admin/keys/", 1, sky__gw_on_admin_key},
    {"GET", "/", 0, sky__gw_on_page},
};

void sky_gateway_deployment_init(sky_gateway_deployment *d)
{
    sky_route_deployment_init(d);
}

void sky_gateway_options_init(sky_gateway_options *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->max_body = GW_DEFAULT_MAX_BODY;
    o->upstream_timeout_ms = 300000;
    o->client_timeout_ms = 10000;
    /* half the gateway's instructions a request where it applies (bench/RESULTS.md) */
    o->upstream_transport = SKY_HTTP_TRANSPORT_H2O;
}

/* ---- the handle ---- */

static int setup_server(sky_gateway *g, const sky_gateway_options *o, int port, sky_error *err)
{
    sky_server_options so;
    sky_server_options_init(&so);
    so.host = o->host ? o->host : "127.0.0.1";
    so.port = port;
    so.tls_cert_file = o->tls_cert_file;
    so.tls_key_file = o->tls_key_file;
    so.reuse_port = g->n_loops > 1;
    so.request_timeout_ms = o->client_timeout_ms > 0 ? (uint64_t)o->client_timeout_ms : 0;
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

static int setup_client(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    sky_http_client_options co;
    sky_http_client_options_init(&co);
    co.transport = o->upstream_transport;
    co.connect_timeout_ms = 10000; /* a deployment that does not answer is failed over */
    if (sky_http_client_new(g->loop, &co, &g->http) < 0 ||
        (g->json_headers = sky_headers_new()) == NULL ||
        sky_headers_add(g->json_headers, SKY_SPAN_LIT("Content-Type"),
                        SKY_SPAN_LIT("application/json")) < 0)
        return sky_error_set(err, SKY_ENOMEM, "cannot make the HTTP client");
    return 0;
}

static int setup_ops(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    if (sky__gw_monitor_start(g) < 0)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    if (o->access_log == NULL)
        return 0;
    int rc = sky__gw_access_log_open(g->loop, o->access_log, &g->access_log, err);
    if (rc == 0 && g->n_loops > 1)
        sky__gw_access_log_set_loop(g->access_log, g->index);
    return rc;
}

sky_credential *sky__gw_credential(sky_gateway *g, sky_error *err)
{
    if (g->credential == NULL &&
        sky_credential_default_new(g->loop, g->http, NULL, &g->credential, err) < 0)
        return NULL;
    return g->credential;
}

int sky__gw_swap_table(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    gw_table *t = NULL;
    int rc = sky__gw_table_new(g, o, &t, err);
    if (rc < 0)
        return rc;
    gw_table *old = g->table;
    g->table = t;
    if (old)
        sky__gw_table_unref(old); /* freed now, or with the last request that holds it */
    return 0;
}

int sky__gw_loop_listen(sky_gateway *g, const sky_gateway_options *o, int port, sky_error *err)
{
    return setup_server(g, o, port, err);
}

int sky__gw_loop_new(uv_loop_t *loop, const sky_gateway_options *o, gw_shared *sh, int index,
                     int port, sky_gateway **out, sky_error *err)
{
    sky_gateway *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    g->loop = loop;
    g->shared = sh;
    g->index = index;
    g->n_loops = sky__gw_shared_loops(sh);
    g->max_body = o->max_body ? o->max_body : GW_DEFAULT_MAX_BODY;
    g->rng = sky_rand_u64();
    int rc = setup_client(g, o, err);
    rc = rc < 0 ? rc : setup_ops(g, o, err);
    rc = rc < 0 ? rc : sky__gw_swap_table(g, o, err);
    if (port >= 0) /* else sky__gw_loop_listen, later */
        rc = rc < 0 ? rc : setup_server(g, o, port, err);
    if (rc < 0) {
        sky__gw_loop_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int sky_gateway_new(uv_loop_t *loop, const sky_gateway_options *o, sky_gateway **out,
                    sky_error *err)
{
    int rc = sky__gw_new_held(loop, o, out, err);
    if (rc == 0 && (rc = sky__gw_start_loops(*out, o, err)) < 0) {
        sky_gateway_free(*out);
        *out = NULL;
    }
    return rc;
}

int sky__gw_new_held(uv_loop_t *loop, const sky_gateway_options *o, sky_gateway **out,
                     sky_error *err)
{
    if (o == NULL || o->n_deployments == 0)
        return sky_error_set(err, SKY_EINVAL, "the gateway needs at least one deployment");
    int n = o->threads > 0 ? o->threads : 1;
    if (n > GW_MAX_LOOPS)
        return sky_error_set(err, SKY_EINVAL, "at most %d threads", GW_MAX_LOOPS);
    gw_shared *sh = sky__gw_shared_new(n);
    if (sh == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    sky_gateway *g = NULL;
    int rc = sky__gw_loop_new(loop, o, sh, 0, o->port, &g, err);
    if (rc < 0) {
        sky__gw_shared_free(sh);
        return rc;
    }
    if (n > 1 && (rc = sky__gw_loops_start(g, o, 1, err)) < 0) {
        sky_gateway_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int sky_gateway_reload(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    int rc = sky__gw_swap_table(g, o, err);
    if (rc < 0)
        return rc;
    if (g->group)
        sky__gw_loops_reload(g, o); /* what loop 0 could build, each other loop builds */
    sky__gw_shared_lock(g->shared);
    sky__gw_metrics_reloaded(sky__gw_shared_metrics(g->shared));
    sky__gw_shared_unlock(g->shared);
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
    if (g->group) {
        sky__gw_loops_shutdown(g, grace_ms, cb, user_data);
        return;
    }
    g->shutdown_cb = cb;
    g->shutdown_ud = user_data;
    sky_server_shutdown(g->srv, grace_ms, on_server_down, g);
}

void sky__gw_loop_free(sky_gateway *g)
{
    if (g == NULL)
        return;
    /* Pipelines first: their calls end now, answering clients still there (503), while
     * the server can still answer them. No table is freed until every one is closed. */
    g->closing = 1;
    sky__gw_reload_forget(g);
    for (gw_table *t = g->tables; t; t = t->next)
        sky__gw_table_close(t);
    sky__gw_proxy_end_all(g);
    sky_server_free(g->srv);
    sky__gw_conv_close(g);        /* after the requests that wait for a conversation */
    sky__gw_admin_free(g->admin); /* after the requests that hold its keys */
    sky__gw_counters_free(g->counters);
    while (g->tables)
        sky__gw_table_free(g->tables);
    sky_credential_free(g->credential); /* after the pipelines that borrow it */
    sky_http_client_free(g->http);
    sky_headers_free(g->json_headers);
    sky__gw_monitor_stop(g);
    sky__gw_access_log_close(g->access_log);
    free(g);
}

void sky_gateway_free(sky_gateway *g)
{
    if (g == NULL)
        return;
    gw_shared *sh = g->shared;
    if (g->group)
        sky__gw_loops_free(g); /* the other loops first: they use the shared state */
    sky__gw_loop_free(g);
    sky__gw_shared_free(sh);
}
