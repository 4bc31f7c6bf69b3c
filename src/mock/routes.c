/*
 * Every route of `skyio mock`, in the order the server tries them (the first that
 * matches serves the request): the API's index. A prefix route serves every path
 * that starts with its path; an exact one its path with a trailing slash too.
 */
#include <stdio.h>

#include "worker.h"

/* Whose state a route's handler gets as its user data. */
enum { FOR_WORKER, FOR_ARM, FOR_IDENTITY };

typedef struct mock_route {
    const char *method; /* NULL: any */
    const char *path;
    int prefix;
    sky_server_handler_cb handler;
    int state;
} mock_route;

void sky__mock_on_keyvault(sky_server_req *req, void *user_data); /* keyvault.c */

static const mock_route routes[] = {
    /* OpenAI: the body names the model */
    {"POST", "/v1/chat/completions", 0, sky__mock_on_chat, FOR_WORKER},
    {"POST", "/chat/completions", 0, sky__mock_on_chat, FOR_WORKER},
    {"POST", "/openai/v1/chat/completions", 0, sky__mock_on_chat, FOR_WORKER},
    {"POST", "/v1/embeddings", 0, sky__mock_on_embeddings, FOR_WORKER},
    {"POST", "/embeddings", 0, sky__mock_on_embeddings, FOR_WORKER},
    {"POST", "/openai/v1/embeddings", 0, sky__mock_on_embeddings, FOR_WORKER},
    {"POST", "/v1/responses", 0, sky__mock_on_responses, FOR_WORKER},
    {"POST", "/responses", 0, sky__mock_on_responses, FOR_WORKER},
    {"POST", "/openai/v1/responses", 0, sky__mock_on_responses, FOR_WORKER},
    {"POST", "/v1/completions", 0, sky__mock_on_completions, FOR_WORKER},
    {"POST", "/completions", 0, sky__mock_on_completions, FOR_WORKER},
    {"POST", "/openai/v1/completions", 0, sky__mock_on_completions, FOR_WORKER},
    {"POST", "/v1/moderations", 0, sky__mock_on_moderations, FOR_WORKER},
    {"POST", "/moderations", 0, sky__mock_on_moderations, FOR_WORKER},
    {"GET", "/v1/models", 0, sky__mock_on_models, FOR_WORKER},
    {"GET", "/models", 0, sky__mock_on_models, FOR_WORKER},
    {"GET", "/v1/models/", 1, sky__mock_on_model, FOR_WORKER},
    {"GET", "/models/", 1, sky__mock_on_model, FOR_WORKER},
    /* Azure OpenAI: /openai/deployments/{deployment}/chat/completions, .../embeddings,
     * .../completions */
    {NULL, "/openai/deployments/", 1, sky__mock_on_azure, FOR_WORKER},
    /* Azure OpenAI without a deployment in the path: the body names it */
    {"POST", "/openai/responses", 0, sky__mock_on_azure_responses, FOR_WORKER},
    {"GET", "/openai/models", 0, sky__mock_on_models, FOR_WORKER},
    {"GET", "/openai/v1/models", 0, sky__mock_on_models, FOR_WORKER},
    /* the mock's own */
    {"GET", "/mock/stats", 0, sky__mock_on_stats, FOR_WORKER},
    {"POST", "/mock/reset", 0, sky__mock_on_reset, FOR_WORKER},
    {"GET", "/mock/arm", 0, sky__mock_on_arm_stats, FOR_ARM},
    /* Azure Resource Manager: /subscriptions/{id}/resourceGroups/..., operations, lists */
    {NULL, "/subscriptions/", 1, sky__mock_on_arm, FOR_ARM},
    /* Key Vault secrets (keyvault.c) */
    {NULL, "/secrets", 1, sky__mock_on_keyvault, FOR_WORKER},
    {NULL, "/deletedsecrets", 1, sky__mock_on_keyvault, FOR_WORKER},
    /* tokens: IMDS, App Service managed identity, Entra ID */
    {"GET", "/metadata/identity/oauth2/token", 0, sky__mock_on_imds, FOR_IDENTITY},
    {"GET", "/msi/token", 0, sky__mock_on_app_service, FOR_IDENTITY},
    /* last, a catch-all the handler checks: Entra ID's POST /{tenant}/oauth2/v2.0/token,
     * GET /{tenant}/v2.0/.well-known/openid-configuration, /common/discovery/instance */
    {NULL, "/", 1, sky__mock_on_entra, FOR_IDENTITY},
};

/* An exact route also serves its path with a trailing slash, as the services do: MSAL adds
 * one to the managed identity endpoints (/metadata/identity/oauth2/token/). Prefix routes
 * trim theirs in the handler. */
static int add_route(sky_server *srv, const mock_route *rt, void *state)
{
    char slashed[128];
    int rc = sky_server_route(srv, rt->method, rt->path, rt->prefix, rt->handler, state);
    if (rc != 0 || rt->prefix)
        return rc;
    snprintf(slashed, sizeof(slashed), "%s/", rt->path);
    return sky_server_route(srv, rt->method, slashed, 0, rt->handler, state);
}

int sky__mock_routes_add(sky__mock_worker *w)
{
    void *const state[] = {
        [FOR_WORKER] = w, [FOR_ARM] = w->owner->arm, [FOR_IDENTITY] = w->owner->identity};
    for (size_t i = 0; i < SKY_ARRAY_LEN(routes); i++) {
        int rc = add_route(w->srv, &routes[i], state[routes[i].state]);
        if (rc != 0)
            return rc;
    }
    return 0;
}
