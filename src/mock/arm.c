/*
 * Azure Resource Manager in `skyio mock`: resource groups, generic resources
 * and virtual machines kept in memory. PUT and DELETE start operations that
 * answer InProgress for a set number of polls and then end: Succeeded, or
 * Failed / Canceled when the resource's tags ask for it. Operations follow
 * Azure-AsyncOperation, Location or provisioningState, lists are paged with
 * absolute nextLinks, and every Nth request can be throttled with 429.
 *
 * The state is shared by every worker thread under one lock: a handler
 * takes the lock, decides the whole answer, lets go, then responds.
 *
 * Tags that steer one resource (set them in the PUT body's "tags"):
 *   skyio-mock-fail: CODE     its operations fail with this ARM error code
 *   skyio-mock-cancel: any    its operations end Canceled
 *   skyio-mock-polls: N       polls before its operations end
 *   skyio-mock-style: S       async | location | state
 *   skyio-mock-link-base: U   its operation URLs start with U (a foreign host, for tests)
 *
 * GET /mock/arm tells tests what the simulator saw: each operation's polls and when
 * they came, so a test can measure the waits a client really kept.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "skyio/json.h"
#include "skyio/server.h"
#include "worker.h"

#define OP_API "2024-01-01"
#define MAX_SEGS 16
#define MAX_POLL_TIMES 32 /* poll times kept per operation; the count goes on */

enum { ST_ASYNC, ST_LOCATION, ST_STATE };
enum { OP_PUT, OP_DELETE, OP_ACTION };

struct sky__mock_arm {
    uv_mutex_t lock;
    sky_mock_arm cfg;
    char style[16];
    int tls;           /* links are https:// */
    char host[128];    /* the listen address, for a request that names no host */
    json_t *resources; /* lower-case id -> resource (insertion order kept) */
    json_t *ops;       /* operation id -> {kind, rid, left, style, fail, cancel, done, ...} */
    json_t *state_ops; /* lower-case id -> operation id, for provisioningState polling */
    uint64_t requests;
    uint64_t next_op;
};

/* What a handler decided, answered after the lock is released. */
typedef struct reply {
    int status;
    json_t *body; /* owned; NULL: no body */
    char async_url[512];
    char location[512];
    int retry_after; /* -1: none */
} reply;

void sky__mock_arm_config_init(sky_mock_arm *c)
{
    memset(c, 0, sizeof(*c));
    c->polls = 2;
    c->style = "async";
    c->page_size = 100;
}

static int style_code(const char *s)
{
    if (s && strcasecmp(s, "location") == 0)
        return ST_LOCATION;
    if (s && strcasecmp(s, "state") == 0)
        return ST_STATE;
    return ST_ASYNC;
}

static int style_known(const char *s)
{
    return strcmp(s, "async") == 0 || strcmp(s, "location") == 0 || strcmp(s, "state") == 0;
}

int sky__mock_arm_apply_json(sky_mock_arm *c, json_t *obj, sky_error *err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj))
        return sky_error_set(err, SKY_EINVAL, "config key \"arm\": expected an object");
    json_object_foreach(obj, key, v)
    {
        int *slot = strcmp(key, "polls") == 0                  ? &c->polls
                    : strcmp(key, "retry_after") == 0          ? &c->retry_after_s
                    : strcmp(key, "page_size") == 0            ? &c->page_size
                    : strcmp(key, "throttle_every") == 0       ? &c->throttle_every
                    : strcmp(key, "throttle_retry_after") == 0 ? &c->throttle_retry_after_s
                                                               : NULL;
        if (slot && json_is_integer(v) && json_integer_value(v) >= 0 &&
            json_integer_value(v) <= 1000000) {
            *slot = (int)json_integer_value(v);
        } else if (strcmp(key, "style") == 0 && json_is_string(v) &&
                   style_known(json_string_value(v))) {
            c->style = json_string_value(v);
        } else {
            return sky_error_set(err, SKY_EINVAL,
                                 "config key \"arm.%s\" is unknown or has a bad value", key);
        }
    }
    return 0;
}

sky__mock_arm *sky__mock_arm_new(const sky_mock_arm *c, int tls, const char *host)
{
    sky__mock_arm *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->cfg = *c;
    a->tls = tls;
    snprintf(a->host, sizeof(a->host), "%s", host ? host : "127.0.0.1");
    snprintf(a->style, sizeof(a->style), "%s", c->style ? c->style : "async");
    a->cfg.style = a->style;
    if (a->cfg.page_size <= 0)
        a->cfg.page_size = 100;
    a->resources = json_object();
    a->ops = json_object();
    a->state_ops = json_object();
    if (a->resources == NULL || a->ops == NULL || a->state_ops == NULL ||
        uv_mutex_init(&a->lock) != 0) {
        json_decref(a->resources);
        json_decref(a->ops);
        json_decref(a->state_ops);
        free(a);
        return NULL;
    }
    return a;
}

void sky__mock_arm_free(sky__mock_arm *a)
{
    if (a == NULL)
        return;
    json_decref(a->resources);
    json_decref(a->ops);
    json_decref(a->state_ops);
    uv_mutex_destroy(&a->lock);
    free(a);
}

/* ---- replies ---- */

static void reply_init(reply *rp)
{
    memset(rp, 0, sizeof(*rp));
    rp->retry_after = -1;
}

static void reply_error(reply *rp, int status, const char *code, const char *fmt, ...)
    SKY_PRINTF(4, 5);

static void reply_error(reply *rp, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_decref(rp->body);
    rp->status = status;
    rp->body = json_pack("{s:{s:s,s:s,s:[]}}", "error", "code", code, "message", msg, "details");
}

/* A copy of a stored resource without the mock's bookkeeping. */
static json_t *public_copy(const json_t *res)
{
    const char *key;
    json_t *v;
    void *tmp;
    json_t *copy = json_deep_copy(res);
    json_object_foreach_safe(copy, tmp, key, v)
    {
        if (strncmp(key, SKY__MOCK_ARM_PRIVATE, sizeof(SKY__MOCK_ARM_PRIVATE) - 1) == 0)
            json_object_del(copy, key);
    }
    return copy;
}

static void send_reply(sky_server_req *r, reply *rp)
{
    char num[32];
    static unsigned long long seq;
    unsigned long long id = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    snprintf(num, sizeof(num), "arm-%llu", id);
    sky_server_add_header(r, "x-ms-request-id", sky_span_cstr(num));
    sky_server_add_header(r, "x-ms-correlation-request-id", sky_span_cstr(num));
    if (rp->async_url[0])
        sky_server_add_header(r, "Azure-AsyncOperation", sky_span_cstr(rp->async_url));
    if (rp->location[0])
        sky_server_add_header(r, "Location", sky_span_cstr(rp->location));
    if (rp->retry_after >= 0) {
        snprintf(num, sizeof(num), "%d", rp->retry_after);
        sky_server_add_header(r, "Retry-After", sky_span_cstr(num));
    }
    if (rp->body)
        sky_server_respond_json(r, rp->status, rp->body);
    else
        sky_server_respond(r, rp->status, NULL, sky_span_make(NULL, 0));
    json_decref(rp->body);
}

/* ---- paths ---- */

typedef struct path {
    char id[1024];  /* the path as the client wrote it, without a trailing '/' */
    char buf[1024]; /* the same, cut into segments */
    char *seg[MAX_SEGS];
    int n;
    char key[1024]; /* the lower-case id */
    char base[128]; /* scheme://host:port, for absolute URLs */
} path;

/* Ids carry ARM's own casing of "resourceGroups", whatever the client sent, as ARM
 * answers them. */
static void canonical_case(path *p)
{
    static const char rg[] = "resourceGroups";
    if (p->n >= 3 && strcasecmp(p->seg[2], rg) == 0)
        memcpy(p->id + (p->seg[2] - p->buf), rg, sizeof(rg) - 1);
}

static int split_path(sky_span p, path *out)
{
    if (p.len == 0 || p.len >= sizeof(out->buf))
        return -1;
    memcpy(out->id, p.ptr, p.len);
    out->id[p.len] = '\0';
    while (p.len > 1 && out->id[p.len - 1] == '/')
        out->id[--p.len] = '\0';
    snprintf(out->buf, sizeof(out->buf), "%s", out->id);
    snprintf(out->key, sizeof(out->key), "%s", out->id);
    for (char *k = out->key; *k; k++)
        *k = (char)tolower((unsigned char)*k);
    out->n = 0;
    char *save = NULL;
    for (char *s = strtok_r(out->buf, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (out->n == MAX_SEGS)
            return -1;
        out->seg[out->n++] = s;
    }
    canonical_case(out);
    return 0;
}

static int seg_is(const path *p, int i, const char *s)
{
    return i < p->n && strcasecmp(p->seg[i], s) == 0;
}

/* "/subscriptions/{s}/resourceGroups/{g}" of a key, lower case. */
static void group_key(const path *p, char *out, size_t len)
{
    snprintf(out, len, "/subscriptions/%s/resourcegroups/%s", p->seg[1], p->seg[3]);
    for (char *k = out; *k; k++)
        *k = (char)tolower((unsigned char)*k);
}

static const char *tag(const json_t *res, const char *name)
{
    return json_string_value(json_object_get(json_object_get(res, "tags"), name));
}

/* ---- operations ---- */

static void op_urls(sky__mock_arm *a, const path *p, const char *base, const char *op_id, int style,
                    int kind, reply *rp)
{
    char async_url[512], loc[512];
    snprintf(async_url, sizeof(async_url),
             "%.128s/subscriptions/%s/providers/skyio.mock/operations/%s?api-version=" OP_API, base,
             p->seg[1], op_id);
    snprintf(loc, sizeof(loc),
             "%.128s/subscriptions/%s/providers/skyio.mock/operationResults/%s?api-version=" OP_API,
             base, p->seg[1], op_id);
    rp->retry_after = a->cfg.retry_after_s;
    if (style == ST_ASYNC) {
        memcpy(rp->async_url, async_url, sizeof(async_url));
        if (kind != OP_PUT) /* DELETE and POST name both: the client must prefer the first */
            memcpy(rp->location, loc, sizeof(loc));
    } else if (style == ST_LOCATION) {
        memcpy(rp->location, loc, sizeof(loc));
    }
}

/* Milliseconds on the monotonic clock, which the test processes read too. */
static int64_t now_ms(void)
{
    return (int64_t)(uv_hrtime() / 1000000u);
}

/* A new operation on resource @p rid; its id is written to @p op_id. */
static json_t *op_new(sky__mock_arm *a, const json_t *res, const char *rid, int kind, int style,
                      char *op_id, size_t len)
{
    const char *polls = tag(res, "skyio-mock-polls");
    snprintf(op_id, len, "op-%06llu", (unsigned long long)++a->next_op);
    json_t *op =
        json_pack("{s:i,s:s,s:i,s:i,s:b,s:s?,s:b}", "kind", kind, "rid", rid, "left",
                  polls ? atoi(polls) : a->cfg.polls, "style", style, "done", 0, "fail",
                  tag(res, "skyio-mock-fail"), "cancel", tag(res, "skyio-mock-cancel") != NULL);
    if (op && (json_object_set_new(op, "started_ms", json_integer(now_ms())) < 0 ||
               json_object_set_new(op, "polls", json_integer(0)) < 0 ||
               json_object_set_new(op, "poll_ms", json_array()) < 0)) {
        json_decref(op);
        return NULL;
    }
    if (op && json_object_set_new(a->ops, op_id, op) < 0)
        return NULL;
    return op;
}

static void remove_under(sky__mock_arm *a, const char *prefix)
{
    const char *key;
    json_t *v;
    void *tmp;
    size_t n = strlen(prefix);
    json_object_foreach_safe(a->resources, tmp, key, v)
    {
        if (strncmp(key, prefix, n) == 0 && (key[n] == '\0' || key[n] == '/'))
            json_object_del(a->resources, key);
    }
}

/* The operation's end: its effect on the resources, once. */
static void op_complete(sky__mock_arm *a, json_t *op)
{
    const char *rid = sky_json_str(op, "rid", "");
    json_t *res = json_object_get(a->resources, rid);
    int kind = (int)sky_json_int(op, "kind", 0);
    int failed = sky_json_str(op, "fail", NULL) != NULL, canceled = sky_json_bool(op, "cancel", 0);
    json_object_set_new(op, "done", json_true());
    json_object_del(a->state_ops, rid);
    if (failed || canceled) {
        if (res && kind != OP_ACTION)
            json_object_set_new(json_object_get(res, "properties"), "provisioningState",
                                json_string(canceled ? "Canceled" : "Failed"));
        return;
    }
    if (kind == OP_DELETE)
        remove_under(a, rid);
    else if (res && kind == OP_PUT)
        json_object_set_new(json_object_get(res, "properties"), "provisioningState",
                            json_string("Succeeded"));
    else if (res && kind == OP_ACTION && sky__mock_vm_is(sky_json_str(res, "type", "")))
        sky__mock_vm_action_done(res, sky_json_str(op, "action", ""));
}

/* Note when a poll came, for GET /mock/arm. */
static void note_poll(json_t *op)
{
    json_t *times = json_object_get(op, "poll_ms");
    json_object_set_new(op, "polls", json_integer(sky_json_int(op, "polls", 0) + 1));
    if (json_array_size(times) < MAX_POLL_TIMES)
        json_array_append_new(times, json_integer(now_ms()));
}

/* Count one poll; true when the operation is over (now or before). */
static int op_poll(sky__mock_arm *a, json_t *op)
{
    note_poll(op);
    if (sky_json_bool(op, "done", 0))
        return 1;
    int64_t left = sky_json_int(op, "left", 0);
    if (left > 0) {
        json_object_set_new(op, "left", json_integer(left - 1));
        return 0;
    }
    op_complete(a, op);
    return 1;
}

static const char *op_status(const json_t *op)
{
    if (!sky_json_bool(op, "done", 0))
        return "InProgress";
    if (sky_json_bool(op, "cancel", 0))
        return "Canceled";
    return sky_json_str(op, "fail", NULL) ? "Failed" : "Succeeded";
}

static json_t *op_error(const json_t *op)
{
    const char *code =
        sky_json_bool(op, "cancel", 0) ? "OperationCanceled" : sky_json_str(op, "fail", "Failed");
    return json_pack("{s:s,s:s,s:[{s:s,s:s}]}", "code", code, "message",
                     sky_json_bool(op, "cancel", 0)
                         ? "The operation was canceled (skyio mock, tag skyio-mock-cancel)."
                         : "The operation failed (skyio mock, tag skyio-mock-fail).",
                     "details", "code", "MockDetail", "message", sky_json_str(op, "rid", ""));
}

/* GET .../operations/{id}: the Azure-AsyncOperation status. */
static void poll_async(sky__mock_arm *a, const char *id, json_t *op, reply *rp)
{
    int over = op_poll(a, op);
    const char *st = op_status(op);
    rp->status = 200;
    rp->body = json_pack("{s:s,s:s,s:s}", "id", id, "name", id, "status", st);
    if (over && strcmp(st, "Succeeded") != 0)
        json_object_set_new(rp->body, "error", op_error(op));
    if (!over)
        rp->retry_after = a->cfg.retry_after_s;
}

/* GET .../operationResults/{id}: 202 while running, then the result. */
static void poll_location(sky__mock_arm *a, const path *p, json_t *op, reply *rp)
{
    if (!op_poll(a, op)) {
        rp->status = 202;
        rp->retry_after = a->cfg.retry_after_s;
        snprintf(rp->location, sizeof(rp->location),
                 "%s/subscriptions/%s/providers/skyio.mock/operationResults/%s?api-version=" OP_API,
                 p->base, p->seg[1], p->seg[5]);
        return;
    }
    const char *st = op_status(op);
    if (strcmp(st, "Succeeded") != 0) {
        json_t *e = op_error(op);
        rp->status = sky_json_bool(op, "cancel", 0) ? 409 : 400;
        rp->body = json_pack("{s:o}", "error", e);
        return;
    }
    int kind = (int)sky_json_int(op, "kind", 0);
    json_t *res = json_object_get(a->resources, sky_json_str(op, "rid", ""));
    if (kind == OP_DELETE) {
        rp->status = 204;
    } else if (kind == OP_ACTION) {
        rp->status = 200;
        rp->body =
            json_pack("{s:s,s:s}", "action", sky_json_str(op, "action", ""), "status", "Succeeded");
    } else {
        rp->status = 200;
        rp->body = res ? public_copy(res) : json_object();
    }
}

static void handle_operation(sky__mock_arm *a, const path *p, sky_span method, reply *rp)
{
    json_t *op = json_object_get(a->ops, p->seg[5]);
    if (!sky_span_eq_cstr(method, "GET")) {
        reply_error(rp, 405, "MethodNotAllowed", "operations are read with GET");
        return;
    }
    if (op == NULL) {
        reply_error(rp, 404, "OperationNotFound", "operation '%s' is unknown", p->seg[5]);
        return;
    }
    if (seg_is(p, 4, "operations"))
        poll_async(a, p->seg[5], op, rp);
    else
        poll_location(a, p, op, rp);
}

/* ---- resources ---- */

/* Start @p kind on the resource at @p p (stored under p->key): the first reply. */
static void start_op(sky__mock_arm *a, const path *p, json_t *res, int kind, int created, reply *rp)
{
    char op_id[32];
    const char *st_tag = tag(res, "skyio-mock-style");
    int style = style_code(st_tag ? st_tag : a->cfg.style);
    if (kind != OP_PUT && style == ST_STATE)
        style = ST_LOCATION; /* DELETE and POST have no provisioningState to watch */
    json_t *op = op_new(a, res, p->key, kind, style, op_id, sizeof(op_id));
    if (op == NULL) {
        reply_error(rp, 500, "InternalServerError", "out of memory");
        return;
    }
    if (kind == OP_ACTION)
        json_object_set_new(op, "action", json_string(p->seg[p->n - 1]));
    if (sky_json_int(op, "left", 0) == 0 && style != ST_STATE) {
        /* no polls wanted: the work is done before we answer */
        op_complete(a, op);
        if (strcmp(op_status(op), "Succeeded") != 0) {
            rp->status = 400;
            rp->body = json_pack("{s:o}", "error", op_error(op));
        } else {
            rp->status = kind == OP_DELETE ? 200 : created ? 201 : 200;
            rp->body = kind == OP_PUT ? public_copy(res) : NULL;
        }
        return;
    }
    if (style == ST_STATE)
        json_object_set_new(a->state_ops, p->key, json_string(op_id));
    const char *link_base = tag(res, "skyio-mock-link-base");
    op_urls(a, p, link_base ? link_base : p->base, op_id, style, kind, rp);
    if (kind == OP_PUT) {
        rp->status = style == ST_LOCATION ? 202 : created ? 201 : 200;
        rp->body = style == ST_LOCATION ? NULL : public_copy(res);
    } else {
        rp->status = 202;
    }
}

/* A resource body for the store, from the request's. */
static json_t *make_resource(const path *p, json_t *req, const char *type, const char *name,
                             int is_group)
{
    json_t *props = json_object_get(req, "properties");
    json_t *tags = json_object_get(req, "tags");
    json_t *res =
        json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "id", p->id, "name", name, "type", type, "location",
                  sky_json_str(req, "location", ""), "tags",
                  json_is_object(tags) ? json_deep_copy(tags) : json_object(), "properties",
                  json_is_object(props) ? json_deep_copy(props) : json_object());
    if (res == NULL)
        return NULL;
    json_object_set_new(json_object_get(res, "properties"), "provisioningState",
                        json_string(is_group ? "Succeeded" : "Creating"));
    return res;
}

static json_t *parse_body(sky_server_req *r, reply *rp)
{
    json_t *req = NULL;
    sky_error err;
    sky_error_clear(&err);
    if (sky_json_parse(sky_server_req_body(r), &req, &err) < 0 || !json_is_object(req)) {
        json_decref(req);
        reply_error(rp, 400, "InvalidRequestContent", "The request content was invalid: %s",
                    err.code ? err.message : "expected a JSON object");
        return NULL;
    }
    return req;
}

/* PATCH: tags replaced when given; synchronous, as ARM does for tags. */
static void patch_resource(json_t *res, json_t *req, reply *rp)
{
    json_t *tags = json_object_get(req, "tags");
    if (json_is_object(tags))
        json_object_set(res, "tags", tags);
    json_t *props = json_object_get(req, "properties");
    if (json_is_object(props))
        json_object_update(json_object_get(res, "properties"), props);
    rp->status = 200;
    rp->body = public_copy(res);
}

static void put_group(sky__mock_arm *a, sky_server_req *r, path *p, reply *rp)
{
    json_t *req = parse_body(r, rp);
    if (req == NULL)
        return;
    if (sky_json_str(req, "location", NULL) == NULL) {
        json_decref(req);
        reply_error(rp, 400, "LocationRequired", "The location property is required.");
        return;
    }
    int created = json_object_get(a->resources, p->key) == NULL;
    json_t *res = make_resource(p, req, "Microsoft.Resources/resourceGroups", p->seg[3], 1);
    json_decref(req);
    if (res == NULL || json_object_set_new(a->resources, p->key, res) < 0) {
        reply_error(rp, 500, "InternalServerError", "out of memory");
        return;
    }
    rp->status = created ? 201 : 200;
    rp->body = public_copy(res);
}

static void put_resource(sky__mock_arm *a, sky_server_req *r, path *p, reply *rp)
{
    char type[256];
    json_t *req = parse_body(r, rp);
    if (req == NULL)
        return;
    snprintf(type, sizeof(type), "%s/%s", p->seg[5], p->seg[6]);
    for (int i = 8; i + 1 < p->n; i += 2) {
        size_t used = strlen(type);
        snprintf(type + used, sizeof(type) - used, "/%s", p->seg[i]);
    }
    const char *problem = sky__mock_vm_is(type) ? sky__mock_vm_problem(req) : NULL;
    if (problem) {
        json_decref(req);
        reply_error(rp, 400, "InvalidParameter", "Required parameter '%s' is missing (null).",
                    problem);
        return;
    }
    json_t *old = json_object_get(a->resources, p->key);
    json_t *res = make_resource(p, req, type, p->seg[p->n - 1], 0);
    json_decref(req);
    if (res && sky__mock_vm_is(type))
        sky__mock_vm_created(res, a->next_op + 1);
    if (res == NULL || json_object_set_new(a->resources, p->key, res) < 0) {
        reply_error(rp, 500, "InternalServerError", "out of memory");
        return;
    }
    start_op(a, p, res, OP_PUT, old == NULL, rp);
}

/* ?$expand=instanceView on a virtual machine: its power state inside the answer. The SDKs
 * write the name percent-encoded. */
static void expand_instance_view(sky_server_req *r, const json_t *res, json_t *body)
{
    sky_span v;
    if (body && sky__mock_vm_is(sky_json_str(res, "type", "")) &&
        (sky_server_req_query_param(r, "$expand", &v) ||
         sky_server_req_query_param(r, "%24expand", &v)) &&
        sky_span_eq_cstr(v, "instanceView"))
        json_object_set_new(json_object_get(body, "properties"), "instanceView",
                            sky__mock_vm_instance_view(res));
}

static void get_resource(sky__mock_arm *a, sky_server_req *r, const path *p, json_t *res, reply *rp)
{
    json_t *op_id = json_object_get(a->state_ops, p->key);
    json_t *op = op_id ? json_object_get(a->ops, json_string_value(op_id)) : NULL;
    if (op)
        op_poll(a, op); /* provisioningState style: each read moves it on */
    rp->status = 200;
    rp->body = public_copy(res);
    expand_instance_view(r, res, rp->body);
    if (op && !sky_json_bool(op, "done", 0))
        rp->retry_after = a->cfg.retry_after_s;
}

/* An item: a resource group (is_group) or a resource under one. */
static void handle_item(sky__mock_arm *a, sky_server_req *r, path *p, sky_span method, int is_group,
                        reply *rp)
{
    char gkey[512];
    group_key(p, gkey, sizeof(gkey));
    json_t *res = json_object_get(a->resources, p->key);
    if (!is_group && json_object_get(a->resources, gkey) == NULL) {
        reply_error(rp, 404, "ResourceGroupNotFound", "Resource group '%s' could not be found.",
                    p->seg[3]);
        return;
    }
    if (is_group && sky_span_eq_cstr(method, "HEAD")) {
        rp->status = res ? 204 : 404; /* checkExistence: the status alone */
        return;
    }
    if (sky_span_eq_cstr(method, "PUT")) {
        if (is_group)
            put_group(a, r, p, rp);
        else
            put_resource(a, r, p, rp);
        return;
    }
    if (res == NULL && sky_span_eq_cstr(method, "DELETE")) {
        rp->status = 204;
        return;
    }
    if (res == NULL) {
        if (is_group)
            reply_error(rp, 404, "ResourceGroupNotFound", "Resource group '%s' could not be found.",
                        p->seg[3]);
        else
            reply_error(rp, 404, "ResourceNotFound",
                        "The Resource '%s' under resource group '%s' was not found.",
                        p->seg[p->n - 1], p->seg[3]);
        return;
    }
    if (sky_span_eq_cstr(method, "GET")) {
        get_resource(a, r, p, res, rp);
    } else if (sky_span_eq_cstr(method, "DELETE")) {
        json_object_set_new(json_object_get(res, "properties"), "provisioningState",
                            json_string("Deleting"));
        start_op(a, p, res, OP_DELETE, 0, rp);
    } else if (sky_span_eq_cstr(method, "PATCH")) {
        json_t *req = parse_body(r, rp);
        if (req)
            patch_resource(res, req, rp);
        json_decref(req);
    } else {
        reply_error(rp, 405, "MethodNotAllowed", "method not allowed on a resource");
    }
}

/* POST {resource}/{action}: an operation whose final Location reply is the result. */
static void handle_action(sky__mock_arm *a, path *p, sky_span method, reply *rp)
{
    char item[1024];
    if (!sky_span_eq_cstr(method, "POST")) {
        reply_error(rp, 405, "MethodNotAllowed", "actions are started with POST");
        return;
    }
    snprintf(item, sizeof(item), "%s", p->key);
    char *slash = strrchr(item, '/');
    if (slash)
        *slash = '\0';
    json_t *res = json_object_get(a->resources, item);
    if (res == NULL) {
        reply_error(rp, 404, "ResourceNotFound", "The Resource '%s' was not found.",
                    p->seg[p->n - 2]);
        return;
    }
    path target = *p;
    snprintf(target.key, sizeof(target.key), "%s", item);
    start_op(a, &target, res, OP_ACTION, 0, rp);
}

/* GET {virtual machine}/instanceView. */
static void handle_instance_view(sky__mock_arm *a, const path *p, reply *rp)
{
    char item[1024];
    snprintf(item, sizeof(item), "%s", p->key);
    char *slash = strrchr(item, '/');
    if (slash)
        *slash = '\0';
    json_t *res = json_object_get(a->resources, item);
    if (res == NULL || !sky__mock_vm_is(sky_json_str(res, "type", ""))) {
        reply_error(rp, 404, "ResourceNotFound", "The virtual machine '%s' was not found.",
                    p->seg[p->n - 2]);
        return;
    }
    rp->status = 200;
    rp->body = sky__mock_vm_instance_view(res);
}

/* ---- lists ---- */

typedef int (*match_fn)(const char *key, const json_t *res, const void *arg);

static int match_children(const char *key, const json_t *res, const void *arg)
{
    const char *prefix = arg;
    size_t n = strlen(prefix);
    (void)res;
    return strncmp(key, prefix, n) == 0 && key[n] == '/' && strchr(key + n + 1, '/') == NULL;
}

static int match_groups(const char *key, const json_t *res, const void *arg)
{
    const char *prefix = arg; /* /subscriptions/{s}/resourcegroups */
    return match_children(key, res, prefix);
}

static int match_in_group(const char *key, const json_t *res, const void *arg)
{
    const char *prefix = arg; /* /subscriptions/{s}/resourcegroups/{g}/providers/ */
    (void)res;
    return strncmp(key, prefix, strlen(prefix)) == 0;
}

static int match_in_subscription(const char *key, const json_t *res, const void *arg)
{
    const char *prefix = arg; /* /subscriptions/{s}/resourcegroups/ */
    size_t n = strlen(prefix);
    (void)res;
    return strncmp(key, prefix, n) == 0 && strstr(key + n, "/providers/") != NULL;
}

static int match_type(const char *key, const json_t *res, const void *arg)
{
    const char *const *want = arg; /* {subscription prefix, type} */
    return strncmp(key, want[0], strlen(want[0])) == 0 &&
           strcasecmp(sky_json_str(res, "type", ""), want[1]) == 0;
}

static void list(sky__mock_arm *a, sky_server_req *r, const path *p, match_fn fn, const void *arg,
                 reply *rp)
{
    sky_span v;
    long skip = 0;
    char num[24];
    const char *key;
    json_t *res;
    if (sky_server_req_query_param(r, "$skiptoken", &v) && v.len < sizeof(num)) {
        memcpy(num, v.ptr, v.len);
        num[v.len] = '\0';
        skip = strtol(num, NULL, 10);
    }
    json_t *items = json_array();
    long seen = 0;
    int more = 0;
    json_object_foreach(a->resources, key, res)
    {
        if (!fn(key, res, arg))
            continue;
        if (seen++ < skip)
            continue;
        if ((long)json_array_size(items) == a->cfg.page_size) {
            more = 1;
            break;
        }
        json_array_append_new(items, public_copy(res));
    }
    rp->status = 200;
    rp->body = json_pack("{s:o}", "value", items);
    if (more && rp->body) {
        char next[1200];
        sky_span ver = SKY_SPAN_LIT(""), stuck;
        sky_server_req_query_param(r, "api-version", &ver);
        /* ?skyio-mock-stuck=1: a broken server whose nextLink never moves past page 2 */
        int is_stuck = sky_server_req_query_param(r, "skyio-mock-stuck", &stuck);
        snprintf(next, sizeof(next), "%s%.*s?api-version=%.*s&$skiptoken=%ld%s", p->base,
                 (int)sky_server_req_path(r).len, sky_server_req_path(r).ptr, (int)ver.len, ver.ptr,
                 is_stuck ? (long)a->cfg.page_size : skip + a->cfg.page_size,
                 is_stuck ? "&skyio-mock-stuck=1" : "");
        json_object_set_new(rp->body, "nextLink", json_string(next));
    }
}

static void handle_list(sky__mock_arm *a, sky_server_req *r, const path *p, reply *rp)
{
    char prefix[1024];
    if (seg_is(p, 2, "resourcegroups") && p->n == 3) {
        list(a, r, p, match_groups, p->key, rp);
        return;
    }
    if (p->n == 3 && seg_is(p, 2, "resources")) {
        snprintf(prefix, sizeof(prefix), "/subscriptions/%s/resourcegroups/", p->seg[1]);
        for (char *k = prefix; *k; k++)
            *k = (char)tolower((unsigned char)*k);
        list(a, r, p, match_in_subscription, prefix, rp);
        return;
    }
    if (seg_is(p, 2, "resourcegroups") && p->n == 5 && seg_is(p, 4, "resources")) {
        char gkey[512];
        group_key(p, gkey, sizeof(gkey));
        if (json_object_get(a->resources, gkey) == NULL) {
            reply_error(rp, 404, "ResourceGroupNotFound", "Resource group '%s' could not be found.",
                        p->seg[3]);
            return;
        }
        snprintf(prefix, sizeof(prefix), "%s/providers/", gkey);
        list(a, r, p, match_in_group, prefix, rp);
        return;
    }
    if (seg_is(p, 2, "resourcegroups") && p->n >= 7) {
        char gkey[512];
        group_key(p, gkey, sizeof(gkey));
        if (json_object_get(a->resources, gkey) == NULL) {
            reply_error(rp, 404, "ResourceGroupNotFound", "Resource group '%s' could not be found.",
                        p->seg[3]);
            return;
        }
        list(a, r, p, match_children, p->key, rp);
        return;
    }
    /* /subscriptions/{s}/providers/{ns}/{type}: every such resource of the subscription */
    char type[256], sub[256];
    snprintf(type, sizeof(type), "%s/%s", p->seg[3], p->seg[4]);
    snprintf(sub, sizeof(sub), "/subscriptions/%s/", p->seg[1]);
    for (char *k = sub; *k; k++)
        *k = (char)tolower((unsigned char)*k);
    const char *want[2] = {sub, type};
    list(a, r, p, match_type, want, rp);
}

/* ---- dispatch ---- */

static int throttled(sky__mock_arm *a, reply *rp)
{
    a->requests++;
    if (a->cfg.throttle_every <= 0 || a->requests % (uint64_t)a->cfg.throttle_every != 0)
        return 0;
    reply_error(rp, 429, "TooManyRequests",
                "The request is being throttled (skyio mock: every %d requests).",
                a->cfg.throttle_every);
    rp->retry_after = a->cfg.throttle_retry_after_s;
    return 1;
}

static int authorized(sky_server_req *r)
{
    sky_span v;
    return sky_server_req_header(r, "authorization", &v) && v.len > 7 &&
           strncasecmp(v.ptr, "Bearer ", 7) == 0;
}

/* Decide the answer to one request, under the lock. */
static void route(sky__mock_arm *a, sky_server_req *r, path *p, reply *rp)
{
    sky_span method = sky_server_req_method(r), ver;
    if (!authorized(r)) {
        reply_error(rp, 401, "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.");
        return;
    }
    if (throttled(a, rp))
        return;
    if (!sky_server_req_query_param(r, "api-version", &ver) || ver.len == 0) {
        reply_error(rp, 400, "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all "
                    "requests.");
        return;
    }
    int n = p->n;
    if (n == 6 && seg_is(p, 2, "providers") && seg_is(p, 3, "skyio.mock") &&
        (seg_is(p, 4, "operations") || seg_is(p, 4, "operationResults")))
        handle_operation(a, p, method, rp);
    else if (n == 4 && seg_is(p, 2, "resourcegroups"))
        handle_item(a, r, p, method, 1, rp);
    else if (n >= 8 && n % 2 == 0 && seg_is(p, 2, "resourcegroups") && seg_is(p, 4, "providers"))
        handle_item(a, r, p, method, 0, rp);
    else if (n >= 9 && n % 2 == 1 && seg_is(p, 2, "resourcegroups") && seg_is(p, 4, "providers") &&
             sky_span_eq_cstr(method, "POST"))
        handle_action(a, p, method, rp);
    else if (n == 9 && sky_span_eq_cstr(method, "GET") && seg_is(p, 8, "instanceView"))
        handle_instance_view(a, p, rp);
    else if (sky_span_eq_cstr(method, "GET") &&
             ((n == 3 && (seg_is(p, 2, "resourcegroups") || seg_is(p, 2, "resources"))) ||
              (n == 5 && seg_is(p, 2, "resourcegroups") && seg_is(p, 4, "resources")) ||
              (n >= 7 && n % 2 == 1 && seg_is(p, 2, "resourcegroups") &&
               seg_is(p, 4, "providers")) ||
              (n == 5 && seg_is(p, 2, "providers"))))
        handle_list(a, r, p, rp);
    else
        reply_error(rp, 404, "InvalidResourceType",
                    "The path '%s' names no resource the mock serves.", p->key);
}

/*
 * scheme://host of the links the mock writes: the scheme it serves and the host the
 * client named (behind a proxy, the proxy's), so that a client, which sends its token
 * only to the host it started from and only over https, follows them.
 */
static void base_url(const sky__mock_arm *a, sky_server_req *r, char *out, size_t len)
{
    const char *scheme = a->tls ? "https" : "http";
    sky_span host = sky_server_req_authority(r);
    int port = sky_server_port(sky_server_req_server(r));
    if (host.len > 0 && host.len < 100 && !memchr(host.ptr, '/', host.len))
        snprintf(out, len, "%s://%.*s", scheme, (int)host.len, host.ptr);
    else if (strchr(a->host, ':')) /* an IPv6 address */
        snprintf(out, len, "%s://[%.64s]:%d", scheme, a->host, port);
    else
        snprintf(out, len, "%s://%.64s:%d", scheme, a->host, port);
}

void sky__mock_on_arm(sky_server_req *r, void *ud)
{
    sky__mock_arm *a = ud;
    path p;
    reply rp;
    reply_init(&rp);
    if (split_path(sky_server_req_path(r), &p) < 0 || p.n < 3) {
        reply_error(&rp, 400, "InvalidResourceId", "The resource id is malformed.");
        send_reply(r, &rp);
        return;
    }
    base_url(a, r, p.base, sizeof(p.base));
    uv_mutex_lock(&a->lock);
    route(a, r, &p, &rp);
    uv_mutex_unlock(&a->lock);
    send_reply(r, &rp);
}

/* GET /mock/arm: requests seen, and each operation's resource, status and polls. */
static json_t *arm_stats(sky__mock_arm *a)
{
    const char *id;
    json_t *op;
    json_t *ops = json_object();
    json_object_foreach(a->ops, id, op)
    {
        json_object_set_new(
            ops, id,
            json_pack("{s:s,s:s,s:O,s:O,s:O}", "rid", sky_json_str(op, "rid", ""), "status",
                      op_status(op), "started_ms", json_object_get(op, "started_ms"), "polls",
                      json_object_get(op, "polls"), "poll_ms", json_object_get(op, "poll_ms")));
    }
    return json_pack("{s:I,s:o}", "requests", (json_int_t)a->requests, "operations", ops);
}

void sky__mock_on_arm_stats(sky_server_req *r, void *ud)
{
    sky__mock_arm *a = ud;
    uv_mutex_lock(&a->lock);
    json_t *st = arm_stats(a);
    uv_mutex_unlock(&a->lock);
    if (st == NULL) {
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{}"));
        return;
    }
    sky_server_respond_json(r, 200, st);
    json_decref(st);
}
