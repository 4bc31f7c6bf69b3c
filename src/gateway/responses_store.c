/*
 * The Responses API's state kept by the gateway: an answer of POST /v1/responses is kept
 * (unless "store": false) in the store that keeps usage (serve --state or --postgres),
 * under the id the answer gives and the client key's name, so one key never reads another's;
 * GET /v1/responses/{id} returns it and DELETE /v1/responses/{id} removes it, whatever the
 * upstream keeps.
 */
#include <stdlib.h>

#include "internal.h"
#include "store/store.h"

/* One GET or DELETE waiting for the store. */
typedef struct doc_call {
    sky_server_req *r; /* NULL once the request is disposed */
    int pending;       /* the store has not answered */
    char id[128];
} doc_call;

static sky__store *doc_store(const sky_gateway *g)
{
    return g->usage && (sky__store_caps(g->usage) & SKY__STORE_CONV) ? g->usage : NULL;
}

static const char *scope_of(const gw_key *key)
{
    return key ? key->name : "";
}

void sky__gw_docs_answered(gw_request *q, const sky_call_result *res)
{
    sky__store *st = doc_store(q->g);
    if (q->op != GW_OP_RESPONSES || res->status != 200 || st == NULL || q->stream)
        return;
    json_t *doc = json_loadb(res->body.ptr, res->body.len, 0, NULL);
    json_t *asked = json_loadb(q->body.ptr, q->body.len, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    int keep = !json_is_false(json_object_get(doc, "store")) &&
               !json_is_false(json_object_get(asked, "store"));
    if (id && keep)
        sky__store_doc_put(st, scope_of(q->key), id, res->body, NULL, NULL);
    json_decref(asked);
    json_decref(doc);
}

static void on_gone(void *data)
{
    doc_call *c = data;
    c->r = NULL;
    if (!c->pending)
        free(c);
}

/* Answer and let go: the disposal (on_gone) frees @p c. */
static void not_found(doc_call *c)
{
    sky__gw_error(c->r, 404, "invalid_request_error", NULL, NULL, "No response found with id '%s'.",
                  c->id);
}

static int settle(doc_call *c, const sky_error *err)
{
    c->pending = 0;
    if (c->r == NULL) {
        free(c);
        return -1;
    }
    if (err->code == SKY_ENOTFOUND) {
        not_found(c);
        return -1;
    }
    if (err->code) {
        sky__gw_error(c->r, 503, "server_error", NULL, NULL,
                      "The gateway's store cannot be read now (%s).", sky_err_name(err->code));
        return -1;
    }
    return 0;
}

static void on_got(const sky_error *err, sky_span doc, void *ud)
{
    doc_call *c = ud;
    if (settle(c, err) == 0)
        sky_server_respond(c->r, 200, "application/json", doc);
}

static void on_deleted(const sky_error *err, void *ud)
{
    doc_call *c = ud;
    if (settle(c, err) < 0)
        return;
    json_t *ok = json_pack("{ss ss sb}", "id", c->id, "object", "response", "deleted", 1);
    sky_server_respond_json(c->r, 200, ok);
    json_decref(ok);
}

/* The {id} of /v1/responses/{id} (or /openai/v1/...): 0, or -1 when there is none. */
static int response_id(sky_server_req *r, char *out, size_t len)
{
    static const char prefix[] = "/v1/responses/";
    sky_span path = sky_server_req_path(r);
    size_t skip = sizeof(prefix) - 1;
    if (path.len >= 7 && memcmp(path.ptr, "/openai", 7) == 0)
        skip += 7;
    if (path.len <= skip || path.len - skip >= len || memchr(path.ptr + skip, '/', path.len - skip))
        return -1;
    memcpy(out, path.ptr + skip, path.len - skip);
    out[path.len - skip] = '\0';
    return 0;
}

void sky__gw_on_response_doc(sky_server_req *r, void *gateway)
{
    sky_gateway *g = gateway;
    gw_key *key;
    if (sky__gw_authenticate(g, r, &key) < 0)
        return;
    doc_call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    c->r = r;
    sky_server_req_set_data(r, c, on_gone);
    sky__store *st = doc_store(g);
    if (response_id(r, c->id, sizeof(c->id)) < 0 || st == NULL) {
        not_found(c); /* no store: nothing was kept (serve --state or --postgres keeps them) */
        return;
    }
    c->pending = 1;
    if (sky_span_eq_cstr(sky_server_req_method(r), "DELETE"))
        sky__store_doc_delete(st, scope_of(key), c->id, on_deleted, c);
    else
        sky__store_doc_get(st, scope_of(key), c->id, on_got, c);
}
