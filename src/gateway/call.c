/*
 * What every model call checks before it goes upstream, in OpenAI's order: the key
 * (401), the body's size (413) and shape (400), the model (404), the key's right to it
 * (403).
 */
#include "internal.h"

/* The body checked and read into @p b: 0, or -1 after answering why not. */
static int read_body(sky_gateway *g, sky_server_req *r, gw_body *b)
{
    sky_span body = sky_server_req_body(r);
    sky_error err;
    sky_error_clear(&err);
    if (body.len > g->max_body) {
        sky__gw_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                      "The request body is %zu bytes, more than the gateway's limit of %zu.",
                      body.len, g->max_body);
        return -1;
    }
    if (sky__gw_body_read(body, b, &err) < 0) {
        sky__gw_error(r, 400, "invalid_request_error", NULL, NULL,
                      "We could not parse the JSON body of your request: %s", err.message);
        return -1;
    }
    if (!b->has_model) {
        sky__gw_error(r, 400, "invalid_request_error", "model", NULL,
                      "You must provide a model parameter.");
        return -1;
    }
    return 0;
}

void sky__gw_model_call(sky_gateway *g, sky_server_req *r, gw_op op)
{
    const gw_key *key;
    gw_body b;
    if (sky__gw_authenticate(g, r, &key) < 0 || read_body(g, r, &b) < 0)
        return;
    const gw_model *m = sky__gw_model_find(g, sky_span_cstr(b.model));
    if (m == NULL) {
        sky__gw_error(r, 404, "invalid_request_error", "model", "model_not_found",
                      "The model '%s' does not exist or you do not have access to it.", b.model);
        return;
    }
    if (!sky__gw_key_allows(key, m->name)) {
        sky__gw_error(r, 403, "invalid_request_error", "model", "model_not_allowed",
                      "The key '%s' may not use the model '%s'.", key->name, m->name);
        return;
    }
    sky__gw_proxy(g, r, m, op, &b);
}
