/* GET /v1/models: the configured model names, those the key may use, as OpenAI lists; GET
 * /v1/models/{model}: one of them (the SDKs' models.retrieve). */
#include "internal.h"

static json_t *model_entry(const char *name)
{
    return json_pack("{s:s,s:s,s:i,s:s}", "id", name, "object", "model", "created", 0, "owned_by",
                     "skyio");
}

void sky__gw_on_models(sky_server_req *r, void *gateway)
{
    sky_gateway *g = gateway;
    gw_key *key;
    if (sky__gw_authenticate(g, r, &key) < 0)
        return;
    json_t *data = json_array();
    const gw_table *t = g->table;
    for (size_t i = 0; data && i < t->n_models; i++)
        if (sky__gw_key_allows(key, t->models[i].name) &&
            json_array_append_new(data, model_entry(t->models[i].name)) < 0) {
            json_decref(data);
            data = NULL;
        }
    json_t *list = data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL;
    if (list == NULL) {
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    sky_server_respond_json(r, 200, list);
    json_decref(list);
}

void sky__gw_on_model(sky_server_req *r, void *gateway)
{
    sky_gateway *g = gateway;
    gw_key *key;
    if (sky__gw_authenticate(g, r, &key) < 0)
        return;
    /* the name after the first "/models/": /v1/models/{model}, /openai/v1/models/{model},
     * /openai/models/{model}; a name may hold slashes (meta-llama/...) */
    sky_span path = sky_server_req_path(r);
    size_t skip = 0;
    while (skip + 8 <= path.len && memcmp(path.ptr + skip, "/models/", 8) != 0)
        skip++;
    skip = skip + 8 <= path.len ? skip + 8 : path.len;
    sky_span name = sky_span_make(path.ptr + skip, path.len - skip);
    const gw_model *m = sky__gw_model_find(g->table, name);
    json_t *entry = m && sky__gw_key_allows(key, m->name) ? model_entry(m->name) : NULL;
    if (entry == NULL) {
        sky__gw_error(r, 404, "invalid_request_error", "model", "model_not_found",
                      "The model '%.*s' does not exist or you do not have access to it.",
                      (int)(name.len > 256 ? 256 : name.len), name.ptr);
        return;
    }
    sky_server_respond_json(r, 200, entry);
    json_decref(entry);
}
