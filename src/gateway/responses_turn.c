/*
 * A Responses API turn with the gateway's store (serve --state or --postgres).
 *
 * Before the call: previous_response_id and conversation are the gateway's to resolve
 * whatever the upstream speaks. The earlier turns are read from the store, under the
 * client key's name only (another key's id is not found: 404), and sent as input items
 * before the new input; the upstream sees neither parameter. So a model whose deployments
 * do not share state (several accounts, a chat-only server) keeps the conversation, and
 * one key never reaches another's turns through the upstream's own store. Without a store
 * the parameters go to the upstream as they came (a chat-only deployment refuses them).
 *
 * After the call: the answer is kept under its id with every input item it answered (the
 * earlier turns' and this one's), so the next turn is rebuilt from one read, and the turn's
 * input and output are appended to its conversation. The client gets the answer once the
 * store has it, so a next turn sent at once finds it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/json.h"
#include "skyio/log.h"
#include "store/store.h"
#include "responses_turn.h"

struct gw_turn {
    gw_request *q;         /* NULL once the request ended */
    sky_sse_parser *watch; /* a passed-through stream's events, for its last response */
    json_t *streamed;      /* that response (response.completed or .incomplete) */
    sky__store *st;
    int pending;     /* store calls under way */
    json_t *req;     /* the client's request */
    json_t *context; /* the earlier turns' items, as kept; NULL: none */
    char ref[128];   /* the previous response or conversation named */
    int is_conv;     /* ref names a conversation */
    char *body;      /* the answer to give once kept */
    size_t body_len;
    void (*send)(gw_request *q, sky_span body);
};

static sky__store *turn_store(const sky_gateway *g)
{
    return g->usage && (sky__store_caps(g->usage) & SKY__STORE_CONV) ? g->usage : NULL;
}

static const char *scope_of(const gw_request *q)
{
    return q->key ? q->key->name : "";
}

static void turn_free(gw_turn *t)
{
    if (t->watch) {
        sky_sse_parser_free(t->watch);
        free(t->watch);
    }
    json_decref(t->streamed);
    json_decref(t->req);
    json_decref(t->context);
    free(t->body);
    free(t);
}

void sky__gw_turn_forget(gw_request *q)
{
    gw_turn *t = q->turn;
    q->turn = NULL;
    if (t == NULL)
        return;
    t->q = NULL;
    if (!t->pending)
        turn_free(t);
}

/* A store call answered: 0 to go on with the request, -1 when it is gone (t freed). */
static int settle(gw_turn *t)
{
    t->pending--;
    if (t->q)
        return 0;
    if (t->pending == 0)
        turn_free(t);
    return -1;
}

/* The conversation's id: a string, or an object with one. */
static const char *conversation_of(const json_t *req)
{
    const json_t *c = json_object_get(req, "conversation");
    return json_is_string(c) ? json_string_value(c) : sky_json_str(c, "id", NULL);
}

/* The earlier turns of a kept response: what it answered, then its output. A response kept
 * before the gateway kept its input counts by its output only. */
static json_t *context_of_response(const json_t *doc)
{
    const json_t *resp = json_object_get(doc, "response");
    json_t *items = json_deep_copy(json_object_get(doc, "context"));
    if (!json_is_array(items)) {
        json_decref(items);
        items = json_array();
    }
    json_t *out = sky__gw_items_of_output(resp ? resp : doc);
    json_array_extend(items, out);
    json_decref(out);
    return items;
}

/* The request as the upstream gets it: the earlier turns, then the new input. */
static int rebuild(gw_request *q, gw_turn *t)
{
    json_t *body = json_deep_copy(t->req);
    json_t *input = sky__gw_items_for_upstream(t->context);
    json_t *now = json_object_get(t->req, "input");
    if (json_is_string(now))
        json_array_append_new(input, json_pack("{ss sO}", "role", "user", "content", now));
    else if (json_is_array(now))
        json_array_extend(input, now);
    json_object_del(body, "previous_response_id");
    json_object_del(body, "conversation");
    json_object_set_new(body, "input", input);
    size_t len = 0;
    q->own_body = sky_json_dump(body, &len);
    json_decref(body);
    if (q->own_body == NULL)
        return SKY_ENOMEM;
    q->body = sky_span_make(q->own_body, len);
    return 0;
}

static void not_found(gw_turn *t)
{
    if (t->is_conv)
        sky__gw_error(t->q->sr, 404, "invalid_request_error", "conversation", NULL,
                      "Conversation with id '%s' not found.", t->ref);
    else
        sky__gw_error(t->q->sr, 404, "invalid_request_error", "previous_response_id", NULL,
                      "Previous response with id '%s' not found.", t->ref);
}

static void on_loaded(const sky_error *err, sky_span doc, void *ud)
{
    gw_turn *t = ud;
    if (settle(t) < 0)
        return;
    gw_request *q = t->q;
    json_t *d = err->code ? NULL : json_loadb(doc.ptr, doc.len, 0, NULL);
    if (err->code == SKY_ENOTFOUND) {
        q->status = 404;
        not_found(t);
    } else if (d == NULL) {
        q->status = 503;
        sky__gw_error(q->sr, 503, "server_error", NULL, NULL,
                      "The gateway's store cannot be read now (%s).",
                      err->code ? sky_err_name(err->code) : "a document is not JSON");
    } else {
        t->context =
            t->is_conv ? json_deep_copy(json_object_get(d, "items")) : context_of_response(d);
        if (rebuild(q, t) == 0)
            sky__gw_proxy_go(q);
        else {
            q->status = 500;
            sky__gw_error(q->sr, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    json_decref(d);
}

int sky__gw_turn_begin(gw_request *q)
{
    sky__store *st = turn_store(q->g);
    json_t *req = st ? json_loadb(q->body.ptr, q->body.len, 0, NULL) : NULL;
    gw_turn *t = req ? calloc(1, sizeof(*t)) : NULL;
    if (t == NULL) {
        json_decref(req);
        return 0; /* nothing to keep, or the upstream says what is wrong with the body */
    }
    t->q = q;
    t->st = st;
    t->req = req;
    q->turn = t;
    const char *prev = sky_json_str(req, "previous_response_id", NULL);
    const char *conv = conversation_of(req);
    if (prev && conv) {
        q->status = 400;
        sky__gw_error(q->sr, 400, "invalid_request_error", NULL, NULL,
                      "Mutually exclusive parameters: previous_response_id and conversation "
                      "cannot both be given.");
        return 1;
    }
    if (!prev && !conv)
        return 0;
    snprintf(t->ref, sizeof(t->ref), "%s", prev ? prev : conv);
    t->is_conv = conv != NULL;
    t->pending++;
    sky__store_doc_get(st, scope_of(q), t->ref, on_loaded, t);
    return 1;
}

json_t *sky__gw_turn_request(const gw_request *q)
{
    return q->turn ? q->turn->req : NULL;
}

void sky__gw_turn_patch(const gw_request *q, json_t *response)
{
    const gw_turn *t = q->turn;
    const char *prev = t ? sky_json_str(t->req, "previous_response_id", NULL) : NULL;
    if (prev)
        json_object_set_new(response, "previous_response_id", json_string(prev));
    if (t && t->is_conv)
        json_object_set_new(response, "conversation", json_pack("{ss}", "id", t->ref));
}

/* ---- a passed-through stream: its final response, to keep ---- */

#define TURN_MAX_EVENT (16u * 1024u * 1024u)

static int on_watched(void *ud, const sky_sse_event *ev)
{
    gw_turn *t = ud;
    if (!sky_span_eq_cstr(ev->event, "response.completed") &&
        !sky_span_eq_cstr(ev->event, "response.incomplete"))
        return 0;
    json_t *doc = json_loadb(ev->data.ptr, ev->data.len, 0, NULL);
    json_t *resp = json_object_get(doc, "response");
    if (json_is_object(resp)) {
        json_decref(t->streamed);
        t->streamed = json_incref(resp);
    }
    json_decref(doc);
    return 0;
}

void sky__gw_turn_watch(gw_request *q, const char *data, size_t len)
{
    gw_turn *t = q->turn;
    if (t == NULL)
        return;
    if (t->watch == NULL && (t->watch = calloc(1, sizeof(*t->watch))) != NULL)
        sky_sse_parser_init(t->watch, TURN_MAX_EVENT, on_watched, t);
    if (t->watch && sky_sse_parser_feed(t->watch, data, len) < 0) {
        sky_sse_parser_free(t->watch); /* too big or garbled: nothing to keep */
        free(t->watch);
        t->watch = NULL;
        json_decref(t->streamed);
        t->streamed = NULL;
    }
}

json_t *sky__gw_turn_streamed(gw_request *q)
{
    gw_turn *t = q->turn;
    if (t == NULL || t->watch == NULL || sky_sse_parser_finish(t->watch) < 0 || t->streamed == NULL)
        return NULL;
    sky__gw_turn_patch(q, t->streamed); /* the upstream did not see what the gateway took */
    return t->streamed;
}

/* ---- keeping the answer ---- */

static void step_done(gw_turn *t)
{
    if (settle(t) < 0 || t->pending > 0)
        return;
    t->send(t->q, sky_span_make(t->body ? t->body : "", t->body_len));
}

static void on_kept(const sky_error *err, void *ud)
{
    gw_turn *t = ud;
    if (err->code)
        SKY_WARN("gateway", "a response could not be kept in the store: %s",
                 sky_err_name(err->code));
    step_done(t);
}

static void on_appended(int ok, void *ud)
{
    gw_turn *t = ud;
    if (!ok)
        SKY_WARN("gateway", "a turn could not be added to conversation %s", t->ref);
    step_done(t);
}

/* What the answer answered: the earlier turns and this input (@p now), as kept. */
static json_t *answered_items(const gw_turn *t, json_t *now)
{
    json_t *items = t->context ? json_deep_copy(t->context) : json_array();
    json_array_extend(items, now);
    return items;
}

static void keep_response(gw_turn *t, const char *scope, json_t *response, json_t *now)
{
    json_t *doc = json_pack("{sO so}", "response", response, "context", answered_items(t, now));
    size_t len = 0;
    char *text = doc ? sky_json_dump(doc, &len) : NULL;
    json_decref(doc);
    t->pending++;
    if (text)
        sky__store_doc_put(t->st, scope, json_string_value(json_object_get(response, "id")),
                           sky_span_make(text, len), on_kept, t);
    else {
        sky_error e;
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        on_kept(&e, t);
    }
    free(text);
}

static void append_turn(gw_turn *t, const char *scope, json_t *response, json_t *now)
{
    json_t *items = json_deep_copy(now);
    json_t *out = sky__gw_items_of_output(response);
    json_array_extend(items, out);
    json_decref(out);
    t->pending++;
    sky__gw_conv_append(t->q->g, scope, t->ref, items, on_appended, t);
}

int sky__gw_turn_answered(gw_request *q, json_t *response, sky_span body,
                          void (*send)(gw_request *q, sky_span body))
{
    gw_turn *t = q->turn;
    if (t == NULL || response == NULL)
        return 0;
    const char *id = sky_json_str(response, "id", NULL);
    int keep = id && sky_json_bool(t->req, "store", 1) && sky_json_bool(response, "store", 1);
    if (!keep && !t->is_conv)
        return 0;
    t->body = malloc(body.len + 1);
    if (t->body == NULL)
        return 0;
    memcpy(t->body, body.ptr, body.len);
    t->body_len = body.len;
    t->send = send;
    t->pending++; /* until both steps have begun: a step answering at once sends nothing */
    /* this turn's input as kept, with the same ids in the response and the conversation */
    json_t *now = sky__gw_items_of_input(json_object_get(t->req, "input"), 1);
    if (now == NULL)
        now = json_array();
    if (keep)
        keep_response(t, scope_of(q), response, now);
    if (t->is_conv)
        append_turn(t, scope_of(q), response, now);
    json_decref(now);
    step_done(t);
    return 1;
}
