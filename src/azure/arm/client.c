/*
 * The ARM client: requests on resource ids over the pipeline, paged lists
 * one page at a time, and the driver of long-running operations (sending,
 * waiting, timeouts, cancel). What to do after each reply is decided in
 * lro_state.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "skyio/json.h"
#include "skyio/log.h"
#include "internal.h"

struct sky_arm_client {
    uv_loop_t *loop;
    sky_pipeline *pipe;
    char *endpoint;
    char *scope; /* the token's audience: the endpoint's own, for sovereign clouds too */
    uint64_t poll_interval_ms;
    const sky_clock *clock;
    sky_headers *json_headers; /* Content-Type for bodies */
    sky_arm_lro *lros;         /* operations in progress, to cancel at free */
    int closing;
};

void sky_arm_options_init(sky_arm_options *o)
{
    memset(o, 0, sizeof(*o));
    sky_pipeline_options_init(&o->pipeline);
    /* ARM's limits are per hour and announced in x-ms-ratelimit-remaining-*: a learned
     * per-minute pace would only slow polls down. 429s are retried after Retry-After. */
    o->pipeline.use_rate_limit = 0;
    o->poll_interval_ms = 30000;
}

static int endpoint_ok(const char *e)
{
    return strncmp(e, "https://", 8) == 0 || strncmp(e, "http://", 7) == 0;
}

int sky_arm_client_new(uv_loop_t *loop, sky_http_client *http, const sky_arm_options *o,
                       sky_arm_client **out, sky_error *err)
{
    sky_arm_options dflt;
    if (o == NULL) {
        sky_arm_options_init(&dflt);
        o = &dflt;
    }
    const char *ep = o->endpoint;
    if (ep == NULL || *ep == '\0')
        ep = getenv(SKY_ARM_ENDPOINT_ENV);
    if (ep == NULL || *ep == '\0')
        ep = SKY_ARM_DEFAULT_ENDPOINT;
    if (!endpoint_ok(ep))
        return sky_error_set(err, SKY_EINVAL, "ARM endpoint '%.128s' is not an http(s) URL", ep);
    sky_arm_client *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->endpoint = strdup(ep)) == NULL ||
        (c->json_headers = sky_headers_new()) == NULL ||
        sky_headers_add(c->json_headers, SKY_SPAN_LIT("Content-Type"),
                        SKY_SPAN_LIT("application/json")) < 0) {
        sky_arm_client_free(c);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/')
        c->endpoint[--n] = '\0';
    sky_pipeline_options po = o->pipeline;
    if (po.clock == NULL)
        po.clock = o->clock;
    if (po.credential && po.scope == NULL) {
        /* management.chinacloudapi.cn wants a token for itself, not for azure.com */
        c->scope = sky__arm_default_scope(c->endpoint);
        if (c->scope == NULL) {
            sky_arm_client_free(c);
            return sky_error_set(err, SKY_ENOMEM, "out of memory");
        }
        po.scope = c->scope;
    }
    int rc = sky_pipeline_new(loop, http, &po, &c->pipe);
    if (rc < 0) {
        sky_arm_client_free(c);
        return sky_error_set(err, rc, "cannot make the ARM pipeline");
    }
    c->loop = loop;
    c->poll_interval_ms = o->poll_interval_ms;
    c->clock = o->clock ? o->clock : sky_clock_real();
    *out = c;
    return 0;
}

const char *sky_arm_client_endpoint(const sky_arm_client *c)
{
    return c->endpoint;
}

sky_pipeline *sky_arm_client_pipeline(sky_arm_client *c)
{
    return c->pipe;
}

char *sky_arm_url(const sky_arm_client *c, const char *path, const char *api_version)
{
    sky_buf b;
    int rc = 0;
    sky_buf_init(&b, 64 * 1024);
    if (strncmp(path, "https://", 8) == 0 || strncmp(path, "http://", 7) == 0)
        rc = sky_buf_append_str(&b, path);
    else
        rc = sky_buf_printf(&b, "%s%s%s", c->endpoint, path[0] == '/' ? "" : "/", path);
    if (rc == 0 && api_version && *api_version && strstr(b.data, "api-version=") == NULL)
        rc = sky_buf_printf(&b, "%sapi-version=%s", strchr(b.data, '?') ? "&" : "?", api_version);
    if (rc < 0) {
        sky_buf_free(&b);
        return NULL;
    }
    return sky_buf_detach(&b, NULL);
}

char *sky__arm_default_scope(const char *endpoint)
{
    size_t n = strlen(endpoint);
    while (n > 0 && endpoint[n - 1] == '/')
        n--;
    char *s = malloc(n + sizeof("/.default"));
    if (s) {
        memcpy(s, endpoint, n);
        memcpy(s + n, "/.default", sizeof("/.default"));
    }
    return s;
}

int sky__arm_same_origin(const char *endpoint, const char *url)
{
    size_t n = strlen(endpoint);
    return strncasecmp(url, endpoint, n) == 0 && (url[n] == '\0' || url[n] == '/' || url[n] == '?');
}

/* One call through the pipeline; NULL body for none. */
static int start_call(sky_arm_client *c, const char *method, const char *url, sky_span body,
                      sky_call_done_cb cb, void *ud, sky_call **out, sky_error *err)
{
    sky_call_options co;
    if (c->closing)
        return sky_error_set(err, SKY_ESTATE, "the ARM client is being freed");
    /* Every request carries the management token: a poll URL, a nextLink or a resume
     * token naming another host (or plain http) must not collect it. */
    if (!sky__arm_same_origin(c->endpoint, url))
        return sky_error_set(err, SKY_EPROTO,
                             "refusing to send the ARM token to a URL outside %s (a poll URL, "
                             "nextLink or resume token points elsewhere)",
                             c->endpoint);
    sky_call_options_init(&co);
    co.method = method;
    co.url = url;
    co.body = body;
    co.headers = body.len ? c->json_headers : NULL;
    co.on_done = cb;
    co.user_data = ud;
    SKY_DEBUG("arm", "%s %s", method, url);
    return sky_call_start(c->pipe, &co, out, err);
}

/* The pipeline's error, with ARM's own words when the reply was an error. */
static void map_error(const sky_call_result *res, const sky_error *err, sky_error *out)
{
    sky_error_clear(out);
    if (err && err->code == SKY_EHTTP && res && res->status >= 300) {
        sky_arm_error_from_reply(res->status, res->body, out);
        out->retryable = err->retryable;
    } else if (err) {
        *out = *err;
    }
}

/* ---- single requests ---- */

struct sky_arm_request {
    sky_call *call;
    sky_arm_response_cb cb;
    void *ud;
};

void sky_arm_request_options_init(sky_arm_request_options *o)
{
    memset(o, 0, sizeof(*o));
    o->method = "GET";
}

static void on_request_done(sky_call *call, const sky_call_result *res, const sky_error *err,
                            void *ud)
{
    sky_arm_request *r = ud;
    sky_arm_response ar;
    sky_error e;
    (void)call;
    map_error(res, err, &e);
    ar.status = res->status;
    ar.headers = res->headers;
    ar.body = res->body;
    ar.request_id = res->request_id;
    r->cb(r, &ar, err ? &e : NULL, r->ud);
    free(r);
}

int sky_arm_request_send(sky_arm_client *c, const sky_arm_request_options *o,
                         sky_arm_request **out_req, sky_error *err)
{
    if (o == NULL || o->path == NULL || o->on_done == NULL)
        return sky_error_set(err, SKY_EINVAL, "an ARM request needs a path and on_done");
    sky_arm_request *r = calloc(1, sizeof(*r));
    char *url = r ? sky_arm_url(c, o->path, o->api_version) : NULL;
    if (url == NULL) {
        free(r);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    r->cb = o->on_done;
    r->ud = o->user_data;
    int rc = start_call(c, o->method ? o->method : "GET", url, o->body, on_request_done, r,
                        &r->call, err);
    free(url);
    if (rc < 0) {
        free(r);
        return rc;
    }
    if (out_req)
        *out_req = r;
    return 0;
}

void sky_arm_request_cancel(sky_arm_request *req)
{
    if (req && req->call)
        sky_call_cancel(req->call);
}

/* ---- paged lists ---- */

struct sky_arm_list {
    sky_arm_client *c;
    sky_call *call;
    sky_arm_list_options o;
    char *api_version; /* o.api_version's copy: every page's URL needs it */
    char *last_next;   /* the nextLink followed last: one that repeats would loop forever */
    size_t pages, items;
    int canceled;
};

void sky_arm_list_options_init(sky_arm_list_options *o)
{
    memset(o, 0, sizeof(*o));
}

static void list_end(sky_arm_list *l, const sky_error *err)
{
    l->o.on_done(l, l->pages, l->items, err, l->o.user_data);
    free(l->api_version);
    free(l->last_next);
    free(l);
}

static int list_fetch(sky_arm_list *l, const char *path, sky_error *err);

/* One page: hand over "value", then follow "nextLink" (NULL: the end). */
static int list_page(sky_arm_list *l, sky_span body, const char **next, json_t **out_j,
                     sky_error *err)
{
    json_t *j = NULL;
    if (sky_json_parse(body, &j, err) < 0)
        return SKY_EJSON;
    *out_j = j;
    json_t *items = json_object_get(j, "value");
    if (!json_is_array(items))
        return sky_error_set(err, SKY_EPROTO, "page %zu of the list has no \"value\" array",
                             l->pages + 1);
    l->pages++;
    l->items += json_array_size(items);
    *next = sky_json_str(j, "nextLink", NULL);
    if (*next && **next == '\0')
        *next = NULL;
    if (l->o.on_page && l->o.on_page(l, items, l->o.user_data) != 0)
        *next = NULL;
    return 0;
}

/* A nextLink equal to the last one would page forever (a server bug): stop there. */
static int next_ok(sky_arm_list *l, const char *next, sky_error *err)
{
    if (l->last_next && strcmp(l->last_next, next) == 0)
        return sky_error_set(err, SKY_EPROTO, "page %zu of the list repeats the previous nextLink",
                             l->pages);
    free(l->last_next);
    if ((l->last_next = strdup(next)) == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    return 0;
}

static void on_list_page(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    sky_arm_list *l = ud;
    sky_error e;
    json_t *j = NULL;
    const char *next = NULL;
    (void)call;
    l->call = NULL;
    map_error(res, err, &e);
    if (err == NULL && list_page(l, res->body, &next, &j, &e) == 0 && next && !l->canceled &&
        next_ok(l, next, &e) == 0)
        list_fetch(l, next, &e);
    json_decref(j);
    if (e.code == 0 && l->canceled)
        sky_error_set(&e, SKY_ECANCELED, "the list was canceled");
    if (l->call == NULL)
        list_end(l, e.code ? &e : NULL);
}

static int list_fetch(sky_arm_list *l, const char *path, sky_error *err)
{
    char *url = sky_arm_url(l->c, path, l->o.api_version);
    if (url == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = start_call(l->c, "GET", url, sky_span_make(NULL, 0), on_list_page, l, &l->call, err);
    free(url);
    if (rc < 0)
        l->call = NULL;
    return rc;
}

int sky_arm_list_start(sky_arm_client *c, const sky_arm_list_options *o, sky_arm_list **out_list,
                       sky_error *err)
{
    if (o == NULL || o->path == NULL || o->on_done == NULL)
        return sky_error_set(err, SKY_EINVAL, "an ARM list needs a path and on_done");
    sky_arm_list *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    l->c = c;
    l->o = *o;
    if (o->api_version && (l->api_version = strdup(o->api_version)) == NULL) {
        free(l);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    l->o.api_version = l->api_version;
    int rc = list_fetch(l, o->path, err);
    l->o.path = NULL; /* copied into the URL; the caller's pointer may die */
    if (rc < 0) {
        free(l->api_version);
        free(l);
        return rc;
    }
    if (out_list)
        *out_list = l;
    return 0;
}

void sky_arm_list_cancel(sky_arm_list *l)
{
    if (l == NULL)
        return;
    l->canceled = 1;
    if (l->call)
        sky_call_cancel(l->call);
}

/* ---- long-running operations ---- */

enum { PHASE_FIRST, PHASE_POLL, PHASE_FINAL, PHASE_WAIT, PHASE_DONE };

struct sky_arm_lro {
    sky_arm_client *c;
    sky_arm_lro *prev, *next;
    sky_arm_lro_options o;
    sky__arm_lro_state st;
    sky_call *call;
    uv_timer_t timer; /* the wait before a poll, or the deadline while a call is out */
    int phase;
    int polls;
    int canceled, timed_out;
    uint64_t start_ms, deadline_ms;
    char *token;
};

void sky_arm_lro_options_init(sky_arm_lro_options *o)
{
    memset(o, 0, sizeof(*o));
    o->method = "PUT";
}

static void lro_unlink(sky_arm_lro *op)
{
    sky_arm_client *c = op->c;
    if (c == NULL)
        return; /* already unlinked by sky_arm_client_free, whose client may be gone */
    if (op->prev)
        op->prev->next = op->next;
    else if (c->lros == op)
        c->lros = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

static void lro_closed(uv_handle_t *h)
{
    sky_arm_lro *op = h->data;
    sky__arm_lro_state_free(&op->st);
    free(op->token);
    free(op);
}

static const char *lro_token(sky_arm_lro *op)
{
    if (op->st.style == SKY_ARM_POLL_NONE || op->st.poll_url == NULL)
        return NULL;
    free(op->token);
    op->token = sky__arm_token_encode(&op->st);
    return op->token;
}

static void lro_finish(sky_arm_lro *op, const char *status, int http_status, sky_span body,
                       const sky_error *err)
{
    sky_arm_lro_result r;
    if (op->phase == PHASE_DONE)
        return;
    op->phase = PHASE_DONE;
    uv_timer_stop(&op->timer);
    lro_unlink(op);
    memset(&r, 0, sizeof(r));
    r.status = status ? status : "";
    r.style = op->st.style;
    r.http_status = http_status;
    r.body = body;
    r.polls = op->polls;
    r.resume_token = lro_token(op);
    op->o.on_done(op, &r, err, op->o.user_data);
    uv_close((uv_handle_t *)&op->timer, lro_closed);
}

static void lro_fail(sky_arm_lro *op, int code, const char *msg)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, code, "%s", msg);
    lro_finish(op, "", 0, sky_span_make(NULL, 0), &e);
}

static uint64_t lro_now(const sky_arm_lro *op)
{
    return sky_clock_now_ms(op->c->clock);
}

static void on_lro_timer(uv_timer_t *t);

/* While a call is out, the timer guards the deadline. */
static void arm_deadline(sky_arm_lro *op)
{
    if (op->deadline_ms == 0)
        return;
    uint64_t now = lro_now(op);
    uv_timer_start(&op->timer, on_lro_timer, op->deadline_ms > now ? op->deadline_ms - now : 0, 0);
}

static void on_lro_reply(sky_call *call, const sky_call_result *res, const sky_error *err,
                         void *ud);

static void lro_get(sky_arm_lro *op, const char *url, int phase)
{
    sky_error e;
    sky_error_clear(&e);
    op->phase = phase;
    if (start_call(op->c, "GET", url, sky_span_make(NULL, 0), on_lro_reply, op, &op->call, &e) <
        0) {
        op->call = NULL;
        lro_finish(op, "", 0, sky_span_make(NULL, 0), &e);
        return;
    }
    arm_deadline(op);
}

static void report_progress(sky_arm_lro *op, const sky__arm_decision *d)
{
    sky_arm_lro_progress p;
    if (op->o.on_progress == NULL)
        return;
    memset(&p, 0, sizeof(p));
    p.style = op->st.style;
    p.status = d->status;
    p.polls = op->polls;
    p.next_poll_ms = d->delay_ms;
    p.elapsed_ms = lro_now(op) - op->start_ms;
    p.resume_token = lro_token(op);
    op->o.on_progress(op, &p, op->o.user_data);
}

static void lro_wait(sky_arm_lro *op, const sky__arm_decision *d)
{
    uint64_t delay = d->delay_ms;
    uint64_t floor = op->o.poll_interval_ms < SKY__ARM_MIN_POLL_WAIT_MS ? op->o.poll_interval_ms
                                                                        : SKY__ARM_MIN_POLL_WAIT_MS;
    /* "Retry-After: 0" means poll again now, not poll in a tight loop. */
    if (delay < floor)
        delay = floor;
    op->phase = PHASE_WAIT;
    report_progress(op, d);
    if (op->phase != PHASE_WAIT)
        return; /* finished from the progress callback */
    if (op->canceled)
        delay = 0;
    if (op->deadline_ms) {
        uint64_t now = lro_now(op);
        if (now + delay >= op->deadline_ms) {
            op->timed_out = 1;
            delay = op->deadline_ms > now ? op->deadline_ms - now : 0;
        }
    }
    uv_timer_start(&op->timer, on_lro_timer, delay, 0);
}

static void lro_decided(sky_arm_lro *op, const sky_call_result *res, sky__arm_decision *d,
                        const sky_error *e)
{
    switch (d->step) {
    case SKY__ARM_POLL:
        if (op->o.no_wait && op->phase == PHASE_FIRST)
            lro_finish(op, d->status, res->status, res->body, NULL);
        else
            lro_wait(op, d);
        return;
    case SKY__ARM_FETCH_FINAL:
        lro_get(op, d->url, PHASE_FINAL);
        return;
    default:
        lro_finish(op, d->status, res->status, res->body, e->code ? e : NULL);
    }
}

/* The state is rebuilt from the first reply; its inputs are moved out first. */
static int lro_first(sky_arm_lro *op, const sky_call_result *res, sky__arm_decision *d,
                     sky_error *e)
{
    char method[8];
    char *url = op->st.resource_url;
    snprintf(method, sizeof(method), "%s", op->st.method);
    op->st.resource_url = NULL;
    sky__arm_lro_state_free(&op->st);
    int rc = sky__arm_lro_first(&op->st, method, url, res->status, res->headers, res->body,
                                op->o.poll_interval_ms, op->c->clock, d, e);
    free(url);
    op->o.method = op->st.method;
    return rc;
}

static void on_lro_reply(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    sky_arm_lro *op = ud;
    sky__arm_decision d;
    sky_error e;
    int rc = 0;
    (void)call;
    op->call = NULL;
    uv_timer_stop(&op->timer);
    sky_error_clear(&e);
    if (op->c == NULL || op->timed_out || op->canceled || (err && res->status == 0)) {
        if (op->c == NULL)
            sky_error_set(&e, SKY_ECANCELED, "the ARM client was freed");
        else if (op->timed_out)
            sky_error_set(&e, SKY_ETIMEDOUT, "gave up waiting for the operation (timeout)");
        else if (op->canceled)
            sky_error_set(&e, SKY_ECANCELED, "stopped waiting for the operation");
        lro_finish(op, "", res->status, res->body, e.code ? &e : err);
        return;
    }
    if (op->phase == PHASE_FINAL) {
        map_error(res, err, &e);
        lro_finish(op, err ? "Failed" : "Succeeded", res->status, res->body, err ? &e : NULL);
        return;
    }
    if (op->phase == PHASE_FIRST)
        rc = lro_first(op, res, &d, &e);
    else
        rc = sky__arm_lro_next(&op->st, res->status, res->headers, res->body,
                               op->o.poll_interval_ms, op->c->clock, &d, &e);
    if (rc < 0) {
        lro_fail(op, rc, "out of memory");
        return;
    }
    lro_decided(op, res, &d, &e);
}

static void on_lro_timer(uv_timer_t *t)
{
    sky_arm_lro *op = t->data;
    if (op->phase != PHASE_WAIT) {
        /* the deadline passed with a call out: cancel it, its callback ends us */
        op->timed_out = 1;
        if (op->call)
            sky_call_cancel(op->call);
        return;
    }
    if (op->canceled) {
        lro_fail(op, SKY_ECANCELED, "stopped waiting for the operation");
        return;
    }
    if (op->timed_out) {
        lro_fail(op, SKY_ETIMEDOUT, "gave up waiting for the operation (timeout)");
        return;
    }
    op->polls++;
    lro_get(op, op->st.poll_url, PHASE_POLL);
}

static sky_arm_lro *lro_new(sky_arm_client *c, const sky_arm_lro_options *o)
{
    sky_arm_lro *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->c = c;
    op->o = *o;
    op->o.path = NULL;
    op->o.body = sky_span_make(NULL, 0);
    op->o.api_version = NULL;
    if (op->o.poll_interval_ms == 0)
        op->o.poll_interval_ms = c->poll_interval_ms;
    op->start_ms = sky_clock_now_ms(c->clock);
    if (o->timeout_ms)
        op->deadline_ms = op->start_ms + o->timeout_ms;
    uv_timer_init(c->loop, &op->timer);
    op->timer.data = op;
    op->next = c->lros;
    if (c->lros)
        c->lros->prev = op;
    c->lros = op;
    return op;
}

/* Undo lro_new when the start failed (no callback will run). */
static void lro_abandon(sky_arm_lro *op)
{
    op->phase = PHASE_DONE;
    lro_unlink(op);
    uv_close((uv_handle_t *)&op->timer, lro_closed);
}

static int method_ok(const char *m)
{
    return strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0 ||
           strcmp(m, "POST") == 0;
}

int sky_arm_lro_begin(sky_arm_client *c, const sky_arm_lro_options *o, sky_arm_lro **out_op,
                      sky_error *err)
{
    const char *method = o && o->method ? o->method : "PUT";
    if (o == NULL || o->path == NULL || o->on_done == NULL)
        return sky_error_set(err, SKY_EINVAL, "an ARM operation needs a path and on_done");
    if (!method_ok(method))
        return sky_error_set(err, SKY_EINVAL, "'%.16s' does not start an ARM operation", method);
    if (c->closing)
        return sky_error_set(err, SKY_ESTATE, "the ARM client is being freed");
    sky_arm_lro *op = lro_new(c, o);
    if (op == NULL || (op->st.resource_url = sky_arm_url(c, o->path, o->api_version)) == NULL) {
        if (op)
            lro_abandon(op);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    snprintf(op->st.method, sizeof(op->st.method), "%s", method);
    op->o.method = op->st.method;
    op->phase = PHASE_FIRST;
    if (start_call(c, method, op->st.resource_url, o->body, on_lro_reply, op, &op->call, err) < 0) {
        lro_abandon(op);
        return err->code;
    }
    arm_deadline(op);
    if (out_op)
        *out_op = op;
    return 0;
}

/* Every URL of a resume token must be the client's own: the token is user input. */
static int token_origin_ok(const sky_arm_client *c, const sky__arm_lro_state *st)
{
    return sky__arm_same_origin(c->endpoint, st->resource_url) &&
           sky__arm_same_origin(c->endpoint, st->poll_url) &&
           (st->final_url == NULL || sky__arm_same_origin(c->endpoint, st->final_url));
}

int sky_arm_lro_resume(sky_arm_client *c, const char *token, const sky_arm_lro_options *o,
                       sky_arm_lro **out_op, sky_error *err)
{
    sky__arm_lro_state st;
    if (o == NULL || o->on_done == NULL)
        return sky_error_set(err, SKY_EINVAL, "resuming an ARM operation needs on_done");
    if (c->closing)
        return sky_error_set(err, SKY_ESTATE, "the ARM client is being freed");
    int rc = sky__arm_token_decode(token, &st, err);
    if (rc < 0)
        return rc;
    if (!token_origin_ok(c, &st)) {
        sky__arm_lro_state_free(&st);
        return sky_error_set(err, SKY_EINVAL,
                             "resume token: refusing to send the ARM token to a URL outside %s "
                             "(the token names another host)",
                             c->endpoint);
    }
    sky_arm_lro *op = lro_new(c, o);
    if (op == NULL) {
        sky__arm_lro_state_free(&st);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    op->st = st;
    op->o.method = op->st.method;
    op->o.no_wait = 0;
    /* The first poll starts from the loop, as sky_call_start does: a poll that cannot
     * start then ends the operation there, never inside this call. */
    op->phase = PHASE_WAIT;
    uv_timer_start(&op->timer, on_lro_timer, 0, 0);
    if (out_op)
        *out_op = op;
    return 0;
}

void sky_arm_lro_cancel(sky_arm_lro *op)
{
    if (op == NULL || op->phase == PHASE_DONE || op->canceled)
        return;
    op->canceled = 1;
    if (op->call)
        sky_call_cancel(op->call);
    else if (op->phase == PHASE_WAIT)
        uv_timer_start(&op->timer, on_lro_timer, 0, 0);
}

void sky_arm_client_free(sky_arm_client *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    /* Operations waiting between polls have no call for the pipeline to cancel. */
    while (c->lros) {
        sky_arm_lro *op = c->lros;
        if (op->call) {
            /* Its call's cancel below ends it, maybe later (deferred when we are in a
             * callback) and after c is freed: so it must forget c. */
            lro_unlink(op);
            op->c = NULL;
            continue;
        }
        lro_fail(op, SKY_ECANCELED, "the ARM client was freed");
    }
    sky_pipeline_free(c->pipe);
    sky_headers_free(c->json_headers);
    free(c->endpoint);
    free(c->scope);
    free(c);
}
