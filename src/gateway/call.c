/*
 * What every model call checks before it goes upstream, in OpenAI's order: the key
 * (401), the body's size (413) and shape (400), the model (404), the key's right to it
 * (403), the key's daily caps and budget (429). A refusal is recorded (metrics, access log) as any
 * answer is. A call refused only because its key's lease of the shared budget is on its way
 * waits for it (polled on its own loop, at most GW_LEASE_AWAIT_MS), then is checked again.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "store/store.h"

/* The body checked and read into @p b: 0, or the status answered (413, 400). A body
 * without a model is fine when the path names it (@p need_model 0). */
static int read_body(sky_gateway *g, sky_server_req *r, gw_body *b, int need_model)
{
    sky_span body = sky_server_req_body(r);
    sky_error err;
    sky_error_clear(&err);
    if (body.len > g->max_body) {
        sky__gw_error(r, 413, "invalid_request_error", NULL, "request_too_large",
                      "The request body is %zu bytes, more than the gateway's limit of %zu.",
                      body.len, g->max_body);
        return 413;
    }
    if (sky__gw_body_read(body, b, &err) < 0) {
        sky__gw_error(r, 400, "invalid_request_error", NULL, NULL,
                      "We could not parse the JSON body of your request: %s", err.message);
        return 400;
    }
    if (need_model && !b->has_model) {
        sky__gw_error(r, 400, "invalid_request_error", "model", NULL,
                      "You must provide a model parameter.");
        return 400;
    }
    return 0;
}

/* How long a call may wait for its key's lease on its way, and how often it looks. */
#define GW_LEASE_AWAIT_MS 100
#define GW_LEASE_POLL_MS 2

/* A call waiting for its key's lease: the request's data until it is checked again (or its
 * client leaves: then freed by on_gone, its timer gone with the request). */
typedef struct gw_parked {
    sky_gateway *g;
    gw_op op;
    sky_span path_model; /* in the request's path */
    uint64_t t0_ns, until_ms;
    char request_id[GW_REQUEST_ID_MAX + 1];
} gw_parked;

/* The key's budget charged for the call: 0, 429 after answering it, or -1 when the call may
 * wait for its key's lease on its way (@p may_wait; nothing answered). */
static int admit(sky_gateway *g, sky_server_req *r, const gw_body *b, gw_admission *a, int may_wait)
{
    gw_key *key = a->key;
    /* the rate limiters' charge: about 4 bytes a token, plus what the answer may use */
    a->est_tokens =
        (int64_t)(sky_server_req_body(r).len / 4) + (b->max_tokens > 0 ? b->max_tokens : 0);
    if (key == NULL || key->budget == NULL)
        return 0;
    /* the loops share a key's budget (one without limits takes nothing); a key over its
     * daily cap takes nothing from its minute budget */
    gw_daily_view day;
    sky__gw_shared_lock(g->shared);
    int over = sky__gw_daily_check(key->budget, key, sky__store_now_ms(), &day);
    int rc =
        over ? -1 : sky__gw_budget_admit(g, key->budget, uv_now(g->loop), a->est_tokens, &a->rl);
    int wait = rc < 0 && !over && may_wait && sky__gw_budget_awaits(g, key->budget, a->est_tokens);
    if (over)
        sky__gw_shared_usage_counts(g->shared)->daily_refused[day.refused]++;
    sky__gw_shared_unlock(g->shared);
    if (!over)
        sky__gw_budget_lease(g, key); /* the shared bucket's next chunk, ahead of time */
    if (key->daily_tokens > 0 || key->daily_cost > 0)
        sky__gw_usage_sync(g, key); /* what the gateways beside this one used */
    if (rc == 0 || wait)
        return wait ? -1 : 0;
    if (over)
        sky__gw_daily_refuse(r, key, &day);
    else
        sky__gw_budget_refuse(r, key, &a->rl);
    return 429;
}

/* The model: 0, or the status answered (404, 403). */
static int check_model(sky_server_req *r, const gw_key *key, const gw_model *m, sky_span name)
{
    if (m == NULL) {
        sky__gw_error(r, 404, "invalid_request_error", "model", "model_not_found",
                      "The model '%.*s' does not exist or you do not have access to it.",
                      (int)(name.len > 256 ? 256 : name.len), name.ptr);
        return 404;
    }
    if (!sky__gw_key_allows(key, m->name)) {
        sky__gw_error(r, 403, "invalid_request_error", "model", "model_not_allowed",
                      "The key '%s' may not use the model '%s'.", key->name, m->name);
        return 403;
    }
    return 0;
}

static void record_refusal(sky_gateway *g, const gw_admission *a, gw_op op, const gw_model *m,
                           const char *asked, int status)
{
    gw_record rec;
    memset(&rec, 0, sizeof(rec));
    rec.request_id = a->request_id;
    rec.key = a->key ? a->key->name : NULL;
    rec.op = op;
    rec.model = m ? m->name : NULL;
    rec.asked = asked;
    rec.status = status;
    rec.total_ns = uv_hrtime() - a->t0_ns;
    rec.used = (gw_tokens){-1, -1, -1, -1};
    sky__gw_record(g, &rec);
}

static void call_run(sky_gateway *g, sky_server_req *r, gw_op op, sky_span path_model,
                     const gw_parked *was);

static void parked_free(void *data)
{
    free(data);
}

/* The bound passed or not, the call is checked again (the request's data is dropped first:
 * an answer may dispose the request at once). */
static void on_parked(sky_server_req *r, void *data)
{
    gw_parked p = *(gw_parked *)data;
    sky_server_req_set_data(r, NULL, NULL);
    free(data);
    call_run(p.g, r, p.op, p.path_model, &p);
}

/* The call waits for its key's lease: 0, or -1 (out of memory) when it cannot. */
static int park(sky_gateway *g, sky_server_req *r, gw_op op, sky_span path_model,
                const gw_admission *a, const gw_parked *was)
{
    gw_parked *p = malloc(sizeof(*p));
    if (p == NULL)
        return -1;
    p->g = g;
    p->op = op;
    p->path_model = path_model;
    p->t0_ns = a->t0_ns;
    p->until_ms = was ? was->until_ms : uv_now(g->loop) + GW_LEASE_AWAIT_MS;
    memcpy(p->request_id, a->request_id, sizeof(p->request_id));
    if (sky_server_req_after(r, GW_LEASE_POLL_MS, on_parked) != 0) {
        free(p);
        return -1;
    }
    sky_server_req_set_data(r, p, parked_free);
    if (was == NULL) {
        sky__gw_shared_lock(g->shared);
        sky__gw_shared_usage_counts(g->shared)->budget_waited++;
        sky__gw_shared_unlock(g->shared);
    }
    return 0;
}

/* A model call checked (@p was: again, after waiting for its key's lease) and sent on. */
static void call_run(sky_gateway *g, sky_server_req *r, gw_op op, sky_span path_model,
                     const gw_parked *was)
{
    gw_admission a;
    gw_body b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.t0_ns = was ? was->t0_ns : uv_hrtime();
    a.t = g->table;
    if (was)
        memcpy(a.request_id, was->request_id, sizeof(a.request_id));
    else
        sky__gw_request_id(r, a.request_id);
    int may_wait = was == NULL || uv_now(g->loop) < was->until_ms;
    int by_path = path_model.len > 0;
    int status = sky__gw_authenticate(g, r, &a.key) < 0 ? 401 : read_body(g, r, &b, !by_path);
    sky_span name = by_path ? path_model : sky_span_cstr(b.model);
    const gw_model *m = status ? NULL : sky__gw_model_find(a.t, name);
    status = status ? status : check_model(r, a.key, m, name);
    status = status ? status : admit(g, r, &b, &a, may_wait);
    if (status < 0 && park(g, r, op, path_model, &a, was) == 0)
        return;
    if (status < 0) { /* it cannot wait: refused, as without the lease */
        sky__gw_budget_refuse(r, a.key, &a.rl);
        status = 429;
    }
    if (status) {
        char asked[257];
        snprintf(asked, sizeof(asked), "%.*s", (int)(name.len > 256 ? 256 : name.len),
                 name.ptr ? name.ptr : "");
        record_refusal(g, &a, op, m, asked, status);
        return;
    }
    sky__gw_proxy(g, r, m, op, &b, &a);
}

void sky__gw_model_call(sky_gateway *g, sky_server_req *r, gw_op op, sky_span path_model)
{
    call_run(g, r, op, path_model, NULL);
}
