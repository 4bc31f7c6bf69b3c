/*
 * The Responses API's state kept by the gateway: an answer of POST /v1/responses is kept
 * (unless "store": false) in the store that keeps usage (serve --state or --postgres),
 * under the id the answer gives and the client key's name, so one key never reads another's
 * (responses_turn.c keeps it, with the input items it answered);
 * GET /v1/responses/{id} returns it, GET /v1/responses/{id}/input_items the items it
 * answered, and DELETE /v1/responses/{id} removes it, whatever the upstream keeps.
 */
#include <stdlib.h>

#include "internal.h"
#include "store/store.h"

/* One GET or DELETE waiting for the store. */
typedef struct doc_call {
    sky_server_req *r; /* NULL once the request is disposed */
    int pending;       /* the store has not answered */
    int input_items;   /* GET .../{id}/input_items */
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

/* The input items of a kept response, as a list page (newest first, as OpenAI's default). */
static json_t *input_items(const json_t *kept)
{
    json_t *data = json_array();
    const json_t *items = json_object_get(kept, "context");
    for (size_t n = json_array_size(items); n > 0; n--)
        json_array_append(data, json_array_get(items, n - 1));
    size_t n = json_array_size(data);
    json_t *first = json_object_get(json_array_get(data, 0), "id");
    json_t *last = json_object_get(json_array_get(data, n ? n - 1 : 0), "id");
    return json_pack("{ss so sO sO sb}", "object", "list", "data", data, "first_id",
                     first ? first : json_null(), "last_id", last ? last : json_null(), "has_more",
                     0);
}

static void on_got(const sky_error *err, sky_span doc, void *ud)
{
    doc_call *c = ud;
    if (settle(c, err) < 0)
        return;
    json_t *kept = json_loadb(doc.ptr, doc.len, 0, NULL);
    const json_t *resp = json_object_get(kept, "response"); /* NULL: kept whole, before */
    json_t *page = c->input_items ? input_items(kept) : NULL;
    if (page)
        sky_server_respond_json(c->r, 200, page);
    else if (resp && !c->input_items)
        sky_server_respond_json(c->r, 200, resp);
    else if (!c->input_items)
        sky_server_respond(c->r, 200, "application/json", doc);
    else
        not_found(c);
    json_decref(page);
    json_decref(kept);
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

/* The {id} of /v1/responses/{id} (or /openai/v1/...), and whether /input_items follows:
 * 0, or -1 when there is none. */
static int response_id(sky_server_req *r, doc_call *c)
{
    static const char prefix[] = "/v1/responses/", tail[] = "/input_items";
    sky_span path = sky_server_req_path(r);
    size_t skip = sizeof(prefix) - 1, tl = sizeof(tail) - 1;
    if (path.len >= 7 && memcmp(path.ptr, "/openai", 7) == 0)
        skip += 7;
    if (path.len > skip + tl && memcmp(path.ptr + path.len - tl, tail, tl) == 0 &&
        sky_span_eq_cstr(sky_server_req_method(r), "GET")) {
        c->input_items = 1;
        path.len -= tl;
    }
    if (path.len <= skip || path.len - skip >= sizeof(c->id) ||
        memchr(path.ptr + skip, '/', path.len - skip))
        return -1;
    memcpy(c->id, path.ptr + skip, path.len - skip);
    c->id[path.len - skip] = '\0';
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
    if (response_id(r, c) < 0 || st == NULL || strncmp(c->id, "conv_", 5) == 0) {
        not_found(c); /* no store: nothing was kept (serve --state or --postgres keeps them) */
        return;
    }
    c->pending = 1;
    if (sky_span_eq_cstr(sky_server_req_method(r), "DELETE"))
        sky__store_doc_delete(st, scope_of(key), c->id, on_deleted, c);
    else
        sky__store_doc_get(st, scope_of(key), c->id, on_got, c);
}
