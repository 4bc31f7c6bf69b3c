/*
 * Azure OpenAI's form, so Azure SDK clients (the openai package's AzureOpenAI class among
 * them) can point at the gateway: POST /openai/deployments/{name}/chat/completions,
 * .../embeddings and .../completions?api-version=V, where {name} is one of the gateway's
 * model names. The api-version is the client's business with Azure: the gateway reads it
 * nowhere (each deployment sends its own).
 */
#include "internal.h"

/* The length of "/openai/deployments/", which the route table matched. */
#define PREFIX_LEN (sizeof("/openai/deployments/") - 1)

/* The operation a path's tail names, or -1. */
static int op_of(sky_span tail)
{
    if (sky_span_eq_cstr(tail, "/chat/completions"))
        return GW_OP_CHAT;
    if (sky_span_eq_cstr(tail, "/embeddings"))
        return GW_OP_EMBEDDINGS;
    if (sky_span_eq_cstr(tail, "/completions"))
        return GW_OP_COMPLETIONS;
    return -1;
}

void sky__gw_on_azure(sky_server_req *r, void *gateway)
{
    sky_span path = sky_server_req_path(r);
    while (path.len > PREFIX_LEN + 1 && path.ptr[path.len - 1] == '/')
        path.len--; /* .../chat/completions/ is .../chat/completions */
    const char *name = path.ptr + PREFIX_LEN;
    size_t rest = path.len - PREFIX_LEN;
    const char *slash = memchr(name, '/', rest);
    int op =
        slash && slash > name ? op_of(sky_span_make(slash, rest - (size_t)(slash - name))) : -1;
    if (op < 0) {
        sky__gw_error(r, 404, "invalid_request_error", NULL, "404", "Resource not found");
        return;
    }
    sky__gw_model_call(gateway, r, (gw_op)op, sky_span_make(name, (size_t)(slash - name)));
}
