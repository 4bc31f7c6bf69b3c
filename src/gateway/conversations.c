/*
 * OpenAI's Conversations API, kept in the gateway's store (serve --state or --postgres)
 * under the client key's name, so one key never reads another's (404):
 *
 *   POST   /v1/conversations                        {items?, metadata?}: a new one
 *   GET    /v1/conversations/{id}                   the conversation (id, created_at, metadata)
 *   POST   /v1/conversations/{id}                   {metadata}: replaced
 *   DELETE /v1/conversations/{id}                   {id, object: conversation.deleted, deleted}
 *   GET    /v1/conversations/{id}/items             a page: ?limit=1..100 (20), order=asc|desc
 *                                                   (desc), after=ITEM_ID
 *   POST   /v1/conversations/{id}/items             {items}: appended, answered as a list
 *   GET    /v1/conversations/{id}/items/{item_id}   one item
 *   DELETE /v1/conversations/{id}/items/{item_id}   removed; answers the conversation
 *
 * A conversation is one document: its fields and its items. A change reads it, changes it
 * and writes it back; changes to one conversation are made one at a time, in the order
 * they came, by a queue per conversation in each loop of the gateway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

#include "skyio/json.h"
#include "store/store.h"
#include "responses_turn.h"

typedef enum cv_kind {
    CV_CREATE,
    CV_GET,
    CV_UPDATE,
    CV_DELETE,
    CV_ITEMS_LIST,
    CV_ITEMS_ADD,
    CV_ITEM_GET,
    CV_ITEM_DELETE,
    CV_APPEND
} cv_kind;

typedef struct cv_call {
    sky_gateway *g;
    sky__store *st;
    sky_server_req *r; /* NULL once disposed, and for CV_APPEND */
    int pending;       /* a store call under way */
    int queued;        /* holds its conversation's turn (see the queue below) */
    cv_kind kind;
    char *scope;
    char id[128], item[128];
    json_t *body;   /* the request's (update, add) or the items to append; held */
    json_t *answer; /* given once the store has the change */
    void (*cb)(int ok, void *ud);
    void *ud;
    struct cv_call *next_waiting;
} cv_call;

static sky__store *conv_store(const sky_gateway *g)
{
    return g->usage && (sky__store_caps(g->usage) & SKY__STORE_CONV) ? g->usage : NULL;
}

/* ---- one change at a time per conversation ----
 * A list of conversations with a change under way, each with the calls waiting behind it.
 * Kept per store, and per thread: with --threads each loop has its own store and list.
 * Across the loops, the head of a conversation's queue takes the conversation in the
 * shared state (shared.c) before it starts; when another loop has it, this loop tries
 * again every millisecond (a timer per loop), so two loops never change one at once. */
typedef struct cv_busy {
    sky__store *st;
    cv_call *head, *tail; /* head: the call under way (or waiting for the other loops) */
    gw_shared *sh;        /* with several loops, until the gateway closes; else NULL */
    int held;             /* head has the conversation in sh */
    int waiting;          /* head waits for another loop to give it back */
    struct cv_busy *next;
} cv_busy;

static _Thread_local cv_busy *busy_list;
static _Thread_local uv_timer_t *retry_timer; /* this loop's, while one waits */

static cv_busy *busy_find(const cv_call *c)
{
    for (cv_busy *b = busy_list; b; b = b->next)
        if (b->st == c->st && strcmp(b->head->id, c->id) == 0 &&
            strcmp(b->head->scope, c->scope) == 0)
            return b;
    return NULL;
}

static void cv_start(cv_call *c);
static void arm_retry(uv_loop_t *loop);

/* The head of @p b takes its conversation from the other loops: 1 when it may start. */
static int take(cv_busy *b)
{
    if (b->sh == NULL)
        return 1;
    int rc = sky__gw_shared_conv_take(b->sh, b->head->scope, b->head->id);
    b->held = rc == 1;
    return rc != 0; /* out of memory: go unserialized rather than fail */
}

/* The head of @p b starts now, or once the other loops let it. */
static void cv_begin(cv_busy *b)
{
    b->waiting = !take(b);
    if (b->waiting)
        arm_retry(b->head->g->loop);
    else
        cv_start(b->head);
}

static void on_retry(uv_timer_t *t)
{
    int left = 0;
    for (cv_busy *b = busy_list; b; b = b->next) {
        if (b->waiting && take(b)) {
            b->waiting = 0;
            cv_start(b->head); /* its store answers later, never from inside the call */
        }
        left += b->waiting;
    }
    if (!left)
        uv_timer_stop(t);
}

static void arm_retry(uv_loop_t *loop)
{
    if (retry_timer == NULL && (retry_timer = malloc(sizeof(*retry_timer))) != NULL)
        uv_timer_init(loop, retry_timer);
    if (retry_timer && !uv_is_active((uv_handle_t *)retry_timer))
        uv_timer_start(retry_timer, on_retry, 1, 1);
}

/* @p c queued behind the change under way on its conversation, or started (now, or once
 * the other loops let it). */
static void cv_enter(cv_call *c)
{
    cv_busy *b = busy_find(c);
    c->queued = 1;
    if (b) {
        b->tail->next_waiting = c;
        b->tail = c;
        return;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        c->queued = 0; /* out of memory: go unserialized rather than fail */
        cv_start(c);
        return;
    }
    b->st = c->st;
    b->sh = sky__gw_shared_loops(c->g->shared) > 1 ? c->g->shared : NULL;
    b->head = b->tail = c;
    b->next = busy_list;
    busy_list = b;
    cv_begin(b);
}

/* @p c is done with its conversation: the next waiting one starts. */
static void cv_leave(cv_call *c)
{
    if (!c->queued)
        return;
    c->queued = 0;
    cv_busy **pp = &busy_list;
    while (*pp && (*pp)->head != c)
        pp = &(*pp)->next;
    cv_busy *b = *pp;
    if (b == NULL)
        return;
    if (b->held)
        sky__gw_shared_conv_give(b->sh, c->scope, c->id);
    b->held = b->waiting = 0;
    cv_call *next = c->next_waiting;
    if (next) {
        b->head = next;
        cv_begin(b);
        return;
    }
    *pp = b->next;
    free(b);
}

/* ---- the call ---- */

static void cv_free(cv_call *c)
{
    cv_leave(c);
    json_decref(c->body);
    json_decref(c->answer);
    free(c->scope);
    free(c);
}

/* @p c, waiting behind another change, leaves the queue: 1, or 0 when it is not waiting. */
static int cv_unwait(cv_call *c)
{
    for (cv_busy *b = busy_list; b; b = b->next) {
        if (b->head == c && b->waiting) { /* for the other loops: it goes, the next comes */
            cv_leave(c);
            return 1;
        }
        if (b->head == c)
            return 0; /* under way */
        for (cv_call *p = b->head; p->next_waiting; p = p->next_waiting) {
            if (p->next_waiting != c)
                continue;
            p->next_waiting = c->next_waiting;
            if (b->tail == c)
                b->tail = p;
            c->queued = 0;
            return 1;
        }
    }
    return 0;
}

static void on_gone(void *data)
{
    cv_call *c = data;
    c->r = NULL;
    if (c->queued && !c->pending)
        cv_unwait(c); /* the client left (or the gateway closes) before its turn came */
    if (!c->pending && !c->queued)
        cv_free(c);
}

/* The call is over (answered or not): free it unless the request still holds it. */
static void cv_end(cv_call *c, int ok)
{
    cv_leave(c);
    if (c->kind == CV_APPEND) {
        if (c->cb)
            c->cb(ok, c->ud);
        cv_free(c);
    } else if (c->r == NULL)
        cv_free(c);
}

static void answer_json(cv_call *c, int status, const json_t *body)
{
    cv_leave(c); /* the next change may start before the client reads this */
    if (c->r)
        sky_server_respond_json(c->r, status, body);
    else
        cv_free(c);
}

static void answer_error(cv_call *c, int status, const char *param, const char *msg)
{
    cv_leave(c);
    if (c->kind == CV_APPEND) {
        cv_end(c, 0);
        return;
    }
    if (c->r)
        sky__gw_error(c->r, status, "invalid_request_error", param, NULL, "%s", msg);
    else
        cv_free(c);
}

static void store_error(cv_call *c, const sky_error *err)
{
    char msg[256];
    if (err->code == SKY_ENOTFOUND) {
        snprintf(msg, sizeof(msg), "Conversation with id '%s' not found.", c->id);
        answer_error(c, 404, NULL, msg);
        return;
    }
    snprintf(msg, sizeof(msg), "The gateway's store cannot be used now (%s).",
             sky_err_name(err->code));
    if (c->kind != CV_APPEND && c->r) {
        cv_leave(c);
        sky__gw_error(c->r, 503, "server_error", NULL, NULL, "%s", msg);
        return;
    }
    answer_error(c, 503, NULL, msg);
}

/* The conversation as the API shows it: no items. */
static json_t *view_of(const json_t *doc)
{
    return json_pack("{sO ss sO sO}", "id", json_object_get(doc, "id"), "object", "conversation",
                     "created_at", json_object_get(doc, "created_at"), "metadata",
                     json_object_get(doc, "metadata"));
}

static json_t *list_of(json_t *data, int has_more)
{
    size_t n = json_array_size(data);
    json_t *first = n ? json_object_get(json_array_get(data, 0), "id") : NULL;
    json_t *last = n ? json_object_get(json_array_get(data, n - 1), "id") : NULL;
    return json_pack("{ss so so so sb}", "object", "list", "data", data, "first_id",
                     first ? json_incref(first) : json_null(), "last_id",
                     last ? json_incref(last) : json_null(), "has_more", has_more);
}

/* ---- writing ---- */

static void on_put(const sky_error *err, void *ud)
{
    cv_call *c = ud;
    c->pending = 0;
    if (err->code) {
        store_error(c, err);
        return;
    }
    if (c->kind == CV_APPEND) {
        cv_end(c, 1);
        return;
    }
    answer_json(c, 200, c->answer);
}

/* Write @p doc back; @p answer (stolen) is given when it is written. */
static void put_doc(cv_call *c, const json_t *doc, json_t *answer)
{
    size_t len = 0;
    char *text = sky_json_dump(doc, &len);
    c->answer = answer;
    if (text == NULL || (answer == NULL && c->kind != CV_APPEND)) {
        free(text);
        answer_error(c, 500, NULL, "out of memory");
        return;
    }
    c->pending = 1;
    sky__store_doc_put(c->st, c->scope, c->id, sky_span_make(text, len), on_put, c);
    free(text);
}

/* ---- what each call does with the conversation read ---- */

static ssize_t item_index(const json_t *items, const char *id)
{
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        if (strcmp(sky_json_str(item, "id", ""), id) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static int query_int(sky_server_req *r, const char *name, int dflt)
{
    sky_span v;
    char buf[16];
    if (!r || !sky_server_req_query_param(r, name, &v) || v.len == 0 || v.len >= sizeof(buf))
        return dflt;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    return atoi(buf);
}

static int query_is(sky_server_req *r, const char *name, const char *want)
{
    sky_span v;
    return r && sky_server_req_query_param(r, name, &v) && sky_span_eq_cstr(v, want);
}

static void list_items(cv_call *c, const json_t *items)
{
    int limit = query_int(c->r, "limit", 20);
    int asc = query_is(c->r, "order", "asc");
    sky_span after = {0};
    int has_after = c->r && sky_server_req_query_param(c->r, "after", &after) && after.len > 0;
    if (limit < 1 || limit > 100) {
        answer_error(c, 400, "limit", "'limit' must be between 1 and 100.");
        return;
    }
    size_t n = json_array_size(items), seen = 0;
    int skipping = has_after;
    json_t *data = json_array();
    int more = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *item = json_array_get(items, asc ? k : n - 1 - k);
        if (skipping) {
            skipping = !sky_span_eq_cstr(after, sky_json_str(item, "id", ""));
            continue;
        }
        if (seen == (size_t)limit) {
            more = 1;
            break;
        }
        json_array_append(data, item);
        seen++;
    }
    json_t *list = list_of(data, more);
    answer_json(c, 200, list);
    json_decref(list);
}

static void add_items(cv_call *c, json_t *doc)
{
    json_t *added = sky__gw_items_of_input(json_object_get(c->body, "items"), 1);
    size_t n = json_array_size(added);
    if (added == NULL || (c->kind == CV_ITEMS_ADD && (n == 0 || n > 20))) {
        json_decref(added);
        answer_error(c, 400, "items", "'items' must be a list of 1 to 20 items.");
        return;
    }
    json_array_extend(json_object_get(doc, "items"), added);
    put_doc(c, doc, c->kind == CV_APPEND ? (json_decref(added), NULL) : list_of(added, 0));
}

static void item_call(cv_call *c, json_t *doc)
{
    json_t *items = json_object_get(doc, "items");
    ssize_t at = item_index(items, c->item);
    if (at < 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "Item with id '%s' not found.", c->item);
        answer_error(c, 404, NULL, msg);
    } else if (c->kind == CV_ITEM_GET) {
        answer_json(c, 200, json_array_get(items, (size_t)at));
    } else {
        json_array_remove(items, (size_t)at);
        put_doc(c, doc, view_of(doc));
    }
}

static void on_read(cv_call *c, json_t *doc)
{
    json_t *items = json_object_get(doc, "items");
    if (!json_is_array(items))
        json_object_set_new(doc, "items", json_array());
    switch (c->kind) {
    case CV_GET: {
        json_t *v = view_of(doc);
        answer_json(c, 200, v);
        json_decref(v);
        break;
    }
    case CV_UPDATE:
        json_object_set(doc, "metadata", json_object_get(c->body, "metadata"));
        put_doc(c, doc, view_of(doc));
        break;
    case CV_ITEMS_LIST:
        list_items(c, json_object_get(doc, "items"));
        break;
    case CV_ITEMS_ADD:
    case CV_APPEND:
        add_items(c, doc);
        break;
    default:
        item_call(c, doc);
        break;
    }
}

static void on_got(const sky_error *err, sky_span text, void *ud)
{
    cv_call *c = ud;
    c->pending = 0;
    if (err->code) {
        store_error(c, err);
        return;
    }
    json_t *doc = json_loadb(text.ptr, text.len, 0, NULL);
    if (doc == NULL) {
        answer_error(c, 500, NULL, "A kept conversation is not JSON.");
        return;
    }
    on_read(c, doc);
    json_decref(doc);
}

static void on_deleted(const sky_error *err, void *ud)
{
    cv_call *c = ud;
    c->pending = 0;
    if (err->code) {
        store_error(c, err);
        return;
    }
    json_t *ok =
        json_pack("{ss ss sb}", "id", c->id, "object", "conversation.deleted", "deleted", 1);
    answer_json(c, 200, ok);
    json_decref(ok);
}

static void create(cv_call *c)
{
    json_t *items = json_object_get(c->body, "items");
    json_t *kept = items ? sky__gw_items_of_input(items, 1) : json_array();
    json_t *meta = json_object_get(c->body, "metadata");
    if (kept == NULL || json_array_size(kept) > 20) {
        json_decref(kept);
        answer_error(c, 400, "items", "'items' must be a list of at most 20 items.");
        return;
    }
    sky__gw_new_id("conv", c->id);
    json_t *doc =
        json_pack("{ss ss sI so so}", "id", c->id, "object", "conversation", "created_at",
                  (json_int_t)time(NULL), "metadata",
                  json_is_object(meta) ? json_incref(meta) : json_object(), "items", kept);
    put_doc(c, doc, doc ? view_of(doc) : NULL);
    json_decref(doc);
}

static void cv_start(cv_call *c)
{
    c->pending = 1;
    if (c->kind == CV_DELETE)
        sky__store_doc_delete(c->st, c->scope, c->id, on_deleted, c);
    else
        sky__store_doc_get(c->st, c->scope, c->id, on_got, c);
}

/* Start @p c: at once, or once the change before it on its conversation is done. */
static void cv_go(cv_call *c)
{
    if (c->kind == CV_CREATE) {
        create(c);
        return;
    }
    int changes = c->kind != CV_GET && c->kind != CV_ITEMS_LIST && c->kind != CV_ITEM_GET;
    if (changes)
        cv_enter(c);
    else
        cv_start(c);
}

void sky__gw_conv_close(sky_gateway *g)
{
    for (cv_busy *b = busy_list; b; b = b->next) {
        if (b->head->g != g)
            continue;
        if (b->held)
            sky__gw_shared_conv_give(b->sh, b->head->scope, b->head->id);
        b->held = 0;
        b->sh = NULL; /* the shared state goes with the gateway: the rest go unserialized */
        if (b->waiting) {
            b->waiting = 0;
            cv_start(b->head); /* ends as those under way do: when the store answers */
        }
    }
    if (retry_timer) {
        uv_close((uv_handle_t *)retry_timer, (uv_close_cb)free);
        retry_timer = NULL;
    }
}

void sky__gw_conv_append(sky_gateway *g, const char *scope, const char *id, json_t *items,
                         void (*cb)(int ok, void *ud), void *ud)
{
    cv_call *c = calloc(1, sizeof(*c));
    char *sc = strdup(scope);
    sky__store *st = conv_store(g);
    if (c == NULL || sc == NULL || st == NULL) {
        free(c);
        free(sc);
        json_decref(items);
        if (cb)
            cb(0, ud);
        return;
    }
    c->g = g;
    c->st = st;
    c->kind = CV_APPEND;
    c->scope = sc;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->body = json_pack("{so}", "items", items);
    c->cb = cb;
    c->ud = ud;
    cv_go(c);
}

/* ---- the handlers ---- */

/* The path after /v1/conversations/ (or /openai/v1/...): {id}, {id}/items or
 * {id}/items/{item}. The kind for @p method, or -1 when the path is not one of those. */
static int parse_path(sky_server_req *r, cv_call *c)
{
    static const char prefix[] = "/v1/conversations/";
    sky_span path = sky_server_req_path(r);
    size_t skip =
        sizeof(prefix) - 1 + (path.len >= 7 && memcmp(path.ptr, "/openai", 7) == 0 ? 7 : 0);
    char rest[300];
    if (path.len <= skip || path.len - skip >= sizeof(rest))
        return -1;
    memcpy(rest, path.ptr + skip, path.len - skip);
    rest[path.len - skip] = '\0';
    char *slash = strchr(rest, '/');
    if (slash)
        *slash = '\0';
    if (strlen(rest) >= sizeof(c->id))
        return -1;
    memcpy(c->id, rest, strlen(rest) + 1);
    if (strncmp(rest, "conv_", 5) != 0)
        return -2; /* the gateway's ids: a kept response (same table) is not a conversation */
    sky_span m = sky_server_req_method(r);
    int get = sky_span_eq_cstr(m, "GET"), post = sky_span_eq_cstr(m, "POST");
    if (!slash)
        return get ? CV_GET : post ? CV_UPDATE : CV_DELETE;
    char *tail = slash + 1;
    if (strcmp(tail, "items") == 0)
        return get ? CV_ITEMS_LIST : post ? CV_ITEMS_ADD : -1;
    if (strncmp(tail, "items/", 6) || tail[6] == '\0' || strchr(tail + 6, '/') ||
        strlen(tail + 6) >= sizeof(c->item) || post)
        return -1;
    memcpy(c->item, tail + 6, strlen(tail + 6) + 1);
    return get ? CV_ITEM_GET : CV_ITEM_DELETE;
}

/* The body as JSON (an empty body: {}); NULL after answering 400. */
static json_t *body_of(cv_call *c)
{
    sky_span b = sky_server_req_body(c->r);
    json_t *doc = b.len ? json_loadb(b.ptr, b.len, 0, NULL) : json_object();
    if (json_is_object(doc))
        return doc;
    json_decref(doc);
    answer_error(c, 400, NULL, "We could not parse the JSON body of your request.");
    return NULL;
}

static int check_body(cv_call *c)
{
    if (c->kind != CV_CREATE && c->kind != CV_UPDATE && c->kind != CV_ITEMS_ADD)
        return 0;
    c->body = body_of(c);
    if (c->body == NULL)
        return -1;
    json_t *meta = json_object_get(c->body, "metadata");
    if ((meta && !json_is_object(meta) && !json_is_null(meta)) ||
        (c->kind == CV_UPDATE && !json_is_object(meta))) {
        answer_error(c, 400, "metadata", "'metadata' must be an object of strings.");
        return -1;
    }
    return 0;
}

/* Key, store and call: the call, or NULL after answering. */
static cv_call *begin(sky_server_req *r, sky_gateway *g)
{
    gw_key *key;
    if (sky__gw_authenticate(g, r, &key) < 0)
        return NULL;
    cv_call *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->scope = strdup(key ? key->name : "")) == NULL) {
        free(c);
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    c->g = g;
    c->r = r;
    c->st = conv_store(g);
    sky_server_req_set_data(r, c, on_gone);
    if (c->st == NULL) {
        answer_error(c, 400, NULL,
                     "The Conversations API needs the gateway's store (skyio serve --state or "
                     "--postgres).");
        return NULL;
    }
    return c;
}

void sky__gw_on_conversations(sky_server_req *r, void *gateway)
{
    cv_call *c = begin(r, gateway);
    if (c == NULL)
        return;
    c->kind = CV_CREATE;
    if (check_body(c) == 0)
        cv_go(c);
}

void sky__gw_on_conversation(sky_server_req *r, void *gateway)
{
    cv_call *c = begin(r, gateway);
    if (c == NULL)
        return;
    int kind = parse_path(r, c);
    if (kind == -2) {
        sky_error nf;
        sky_error_set(&nf, SKY_ENOTFOUND, "not found");
        store_error(c, &nf);
        return;
    }
    if (kind < 0) {
        answer_error(c, 404, NULL, "No such route.");
        return;
    }
    c->kind = (cv_kind)kind;
    if (check_body(c) == 0)
        cv_go(c);
}
