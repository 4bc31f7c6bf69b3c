/*
 * The model-call routes: OpenAI's, where the body names the model, and Azure
 * OpenAI's /openai/deployments/{deployment}/..., where the path names it.
 * Both end in sky__mock_handle_call (call.c).
 */
#include "worker.h"

/* The OpenAI routes of each kind of call. */
static void serve(sky_server_req *r, void *worker, int kind)
{
    sky__mock_worker *m = worker;
    ST_ADD(m->st.requests, 1);
    sky__mock_handle_call(m, r, kind, 0, sky_span_make("", 0));
}

void sky__mock_on_chat(sky_server_req *r, void *worker)
{
    serve(r, worker, SKY__MOCK_CHAT);
}

void sky__mock_on_embeddings(sky_server_req *r, void *worker)
{
    serve(r, worker, SKY__MOCK_EMBEDDINGS);
}

void sky__mock_on_responses(sky_server_req *r, void *worker)
{
    serve(r, worker, SKY__MOCK_RESPONSES);
}

void sky__mock_on_completions(sky_server_req *r, void *worker)
{
    serve(r, worker, SKY__MOCK_COMPLETIONS);
}

void sky__mock_on_moderations(sky_server_req *r, void *worker)
{
    serve(r, worker, SKY__MOCK_MODERATIONS);
}

/* POST /openai/responses?api-version=...: the AzureOpenAI class's path, the deployment in
 * the body's "model". */
void sky__mock_on_azure_responses(sky_server_req *r, void *worker)
{
    sky__mock_worker *m = worker;
    ST_ADD(m->st.requests, 1);
    sky__mock_handle_call(m, r, SKY__MOCK_RESPONSES, 1, sky_span_make("", 0));
}

/* The call an Azure deployment's operation is, or -1. */
static int azure_kind(sky_span op)
{
    if (sky_span_eq_cstr(op, "/chat/completions"))
        return SKY__MOCK_CHAT;
    if (sky_span_eq_cstr(op, "/embeddings"))
        return SKY__MOCK_EMBEDDINGS;
    if (sky_span_eq_cstr(op, "/completions"))
        return SKY__MOCK_COMPLETIONS;
    return -1;
}

/* /openai/deployments/{deployment}/chat/completions, .../embeddings and .../completions */
void sky__mock_on_azure(sky_server_req *r, void *worker)
{
    static const char prefix[] = "/openai/deployments/";
    sky__mock_worker *m = worker;
    sky_span path = sky_server_req_path(r);
    while (path.len > sizeof(prefix) && path.ptr[path.len - 1] == '/')
        path.len--; /* .../chat/completions/ is .../chat/completions */
    const char *dep = path.ptr + sizeof(prefix) - 1;
    size_t rest = path.len - (sizeof(prefix) - 1);
    const char *slash = memchr(dep, '/', rest);
    ST_ADD(m->st.requests, 1);
    if (slash == NULL || slash == dep) {
        sky__mock_respond_error(m, r, 1, 404, "invalid_request_error", "404", "Resource not found");
        return;
    }
    sky_span deployment = sky_span_make(dep, (size_t)(slash - dep));
    sky_span op = sky_span_make(slash, rest - (size_t)(slash - dep));
    if (!sky_span_eq_cstr(sky_server_req_method(r), "POST")) {
        sky__mock_respond_error(m, r, 1, 405, "invalid_request_error", "405", "Method not allowed");
        return;
    }
    int kind = azure_kind(op);
    if (kind < 0)
        sky__mock_respond_error(m, r, 1, 404, "invalid_request_error", "404", "Resource not found");
    else
        sky__mock_handle_call(m, r, kind, 1, deployment);
}
