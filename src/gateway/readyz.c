/*
 * GET /readyz: ready when every model has a deployment that would take a call now (its
 * breaker not open, or its wait over). 503 names the models that have none. No key: a
 * load balancer asks.
 */
#include "internal.h"

static int model_ready(const gw_table *t, const gw_model *m)
{
    for (size_t i = 0; i < m->n_deps; i++)
        if (sky__gw_usable(&t->deps[m->deps[i]]))
            return 1;
    return 0;
}

void sky__gw_on_readyz(sky_server_req *r, void *gateway)
{
    sky_gateway *g = gateway;
    const gw_table *t = g->table;
    json_t *down = json_array();
    for (size_t i = 0; down && i < t->n_models; i++)
        if (!model_ready(t, &t->models[i]) &&
            json_array_append_new(down, json_string(t->models[i].name)) < 0) {
            json_decref(down);
            down = NULL;
        }
    int ready = down && json_array_size(down) == 0;
    json_t *body =
        down ? json_pack("{s:s,s:o}", "status", ready ? "ready" : "not ready", "unavailable", down)
             : NULL;
    if (body == NULL) {
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    sky_server_respond_json(r, ready ? 200 : 503, body);
    json_decref(body);
}
