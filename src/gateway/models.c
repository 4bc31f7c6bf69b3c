/* GET /v1/models: the configured model names, those the key may use, as OpenAI lists. */
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
