/* GET /v1/models and /v1/models/{id}: the SDKs' models.list and models.retrieve. */
#include <curl/curl.h>
#include <stdio.h>

#include "worker.h"

/* They count as model calls and want a key, as OpenAI's do. */
static int models_call_ok(sky__mock_worker *m, sky_server_req *r)
{
    ST_ADD(m->st.requests, 1);
    ST_ADD(m->st.models, 1);
    if (sky__mock_authorized(m, r))
        return 1;
    ST_ADD(m->st.auth_failures, 1);
    sky__mock_respond_error(m, r, 0, 401, "invalid_request_error", "invalid_api_key",
                            "Incorrect API key provided.");
    return 0;
}

static json_t *model_object(const char *id)
{
    return json_pack("{s:s,s:s,s:i,s:s}", "id", id, "object", "model", "created", 1700000000,
                     "owned_by", "skyio-mock");
}

/* The models of --model, or else a few well-known names (every name is served then). */
void sky__mock_on_models(sky_server_req *r, void *worker)
{
    static const char *const known[] = {"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini",
                                        "text-embedding-3-small", "text-embedding-3-large"};
    sky__mock_worker *m = worker;
    if (!models_call_ok(m, r))
        return;
    size_t n = m->cfg.n_models ? m->cfg.n_models : SKY_ARRAY_LEN(known);
    json_t *data = json_array();
    for (size_t i = 0; data && i < n; i++) {
        const char *id = m->cfg.n_models ? m->cfg.models[i] : known[i];
        if (json_array_append_new(data, model_object(id)) < 0) {
            json_decref(data);
            data = NULL;
        }
    }
    json_t *body = data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL;
    if (body == NULL) {
        sky__mock_respond_error(m, r, 0, 500, "server_error", "server_error", "out of memory");
        return;
    }
    sky__mock_respond_json(m, r, 200, body);
}

/* The model object of @p id, or 404 when --model does not serve it. */
static void respond_model(sky__mock_worker *m, sky_server_req *r, const char *id)
{
    if (!sky__mock_model_known(m, id)) {
        char msg[256];
        snprintf(msg, sizeof(msg), "The model '%.128s' does not exist", id);
        sky__mock_respond_error(m, r, 0, 404, "invalid_request_error", "model_not_found", msg);
        return;
    }
    json_t *body = model_object(id);
    if (body == NULL) {
        sky__mock_respond_error(m, r, 0, 500, "server_error", "server_error", "out of memory");
        return;
    }
    sky__mock_respond_json(m, r, 200, body);
}

/* GET /v1/models/{id}, which tools use to check a name. */
void sky__mock_on_model(sky_server_req *r, void *worker)
{
    static const char v1[] = "/v1/models/", bare[] = "/models/";
    sky__mock_worker *m = worker;
    if (!models_call_ok(m, r))
        return;
    sky_span path = sky_server_req_path(r);
    if (path.len > 1 && path.ptr[path.len - 1] == '/')
        path.len--; /* /v1/models/{id}/ names the same model */
    size_t skip = path.len >= sizeof(v1) - 1 && memcmp(path.ptr, v1, sizeof(v1) - 1) == 0
                      ? sizeof(v1) - 1
                      : sizeof(bare) - 1;
    /* the SDKs escape the id as a path segment: "org/name" arrives as org%2Fname */
    int n = 0;
    char *id = path.len > skip && path.len - skip <= 1024
                   ? curl_easy_unescape(NULL, path.ptr + skip, (int)(path.len - skip), &n)
                   : NULL;
    if (id == NULL || n == 0 || strlen(id) != (size_t)n || n > 256) {
        curl_free(id);
        sky__mock_respond_error(m, r, 0, 404, "invalid_request_error", "model_not_found",
                                "No model id in the path.");
        return;
    }
    respond_model(m, r, id);
    curl_free(id);
}
