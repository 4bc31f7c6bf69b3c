/*
 * A client's model call taken to an upstream deployment and its answer brought back.
 *
 * Lifetime of a gw_request: it lives while the client waits (the server request) or an
 * upstream call is in flight, whichever ends last. The client leaving cancels the call
 * (sky_call_cancel), whose done callback then frees it; a call that ends while the client
 * waits answers it, and the request's disposal (on_client_gone) frees it.
 *
 * Failover: until the first byte of the answer has gone to the client, a failure that
 * another deployment could mend (429, 5xx, 401/403, a reset, a timeout, an open breaker)
 * sends the request to the next deployment of the model. A stream's answer begins with
 * the upstream's first body bytes: a failure after its head and before them still moves. Once the
 * answer has begun, an error is passed on: as an error event at an event boundary, else by cutting
 * the stream, as the upstream did.
 */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/log.h"
#include "responses_turn.h"

static void on_call_done(sky_call *call, const sky_call_result *res, const sky_error *err,
                         void *ud);

/* Ended requests' memory kept for the next ones, at most this many (a calloc and a free a
 * request, before; none in sanitizer builds: CMakeLists.txt). */
#define GW_SPARE_REQUESTS 64

static gw_request *request_new(sky_gateway *g)
{
    gw_request *q = g->spare;
    if (q == NULL)
        return calloc(1, sizeof(*q));
    g->spare = q->next;
    g->n_spare--;
    memset(q, 0, sizeof(*q));
    return q;
}

static void request_release(sky_gateway *g, gw_request *q)
{
    if (!SKY_KEEP_SPARES || g->closing || g->n_spare >= GW_SPARE_REQUESTS) {
        free(q);
        return;
    }
    q->next = g->spare;
    g->spare = q;
    g->n_spare++;
}

/* The key's budget settled by what the answer used: all of the estimate back when no
 * answer came, the difference when the reply said, the estimate when it did not. */
static void settle(gw_request *q)
{
    if (q->key == NULL || q->key->budget == NULL || q->rl.charged <= 0)
        return;
    int answered = q->status >= 200 && q->status < 300;
    int64_t used = q->used.total >= 0 ? q->used.total : answered ? -1 : 0;
    sky__gw_shared_lock(q->g->shared); /* the loops share a key's budget */
    sky__gw_budget_settle(q->key->budget, q->rl.charged, used);
    sky__gw_shared_unlock(q->g->shared);
}

/* The outcome, in the metrics and the access log. */
static void record(gw_request *q)
{
    gw_record rec;
    memset(&rec, 0, sizeof(rec));
    rec.request_id = q->request_id;
    rec.key = q->key ? q->key->name : NULL;
    rec.op = q->op;
    rec.model = q->asked->name;
    rec.deployment = q->started ? q->t->deps[q->dep].label : NULL;
    rec.status = q->status ? q->status : 499;
    rec.total_ns = uv_hrtime() - q->t0_ns;
    rec.upstream_ns = q->upstream_ns;
    rec.used = q->used;
    rec.stream = q->stream;
    rec.cost = sky__gw_cost(q->t, q->asked, &q->used, &rec.priced); /* prices.c */
    rec.budget = q->key ? q->key->budget : NULL;
    rec.capped = q->key && (q->key->daily_tokens > 0 || q->key->daily_cost > 0);
    sky__gw_record(q->g, &rec);
}

/* The request's end, once: recorded, what it used settled, then freed. */
static void request_free(gw_request *q)
{
    sky_gateway *g = q->g;
    sky__gw_cache_forget(q);
    sky__gw_turn_forget(q);
    sky__gw_rc_stream_free(q->rcs);
    free(q->own_body);
    if (!g->closing)
        record(q);
    settle(q);
    sky__gw_table_unref(q->t);
    if (q->prev)
        q->prev->next = q->next;
    else
        g->live = q->next;
    if (q->next)
        q->next->prev = q->prev;
    request_release(g, q);
}

static void on_client_gone(void *data)
{
    gw_request *q = data;
    q->sr = NULL;
    if (q->call)
        sky_call_cancel(q->call); /* its done callback frees q */
    else
        request_free(q);
}

/* ---- the streamed answer ---- */

static void note_tail(gw_request *q, const char *data, size_t len)
{
    if (len >= 2) {
        q->tail[0] = data[len - 2];
        q->tail[1] = data[len - 1];
    } else if (len == 1) {
        q->tail[0] = q->tail[1];
        q->tail[1] = data[0];
    }
}

/* What every answer of an admitted request carries: the key's budget as it stands. */
static void answer_headers(gw_request *q)
{
    if (q->rl.rpm > 0 || q->rl.tpm > 0)
        sky__gw_budget_headers(q->sr, &q->rl);
}

/* The client's streamed answer begins with the upstream's first body bytes, not with its
 * head: an upstream that fails between the two (a 200 head, then a reset while the model
 * thinks) has sent the client nothing, and the request may still go to another deployment. */
static void begin_stream(gw_request *q)
{
    q->streaming = 1;
    q->status = 200;
    answer_headers(q);
    sky_server_add_header(q->sr, "cache-control", SKY_SPAN_LIT("no-cache"));
    sky_server_add_header(q->sr, "x-accel-buffering", SKY_SPAN_LIT("no"));
    sky__gw_cache_stream_begun(q);
    sky_server_stream_start(q->sr, 200, "text/event-stream", -1);
    if (q->xlate)
        q->rcs = sky__gw_responses_stream_begin(q);
}

/* The translator's events so far to the client: 0, or -1 when it cannot take them. */
static int send_translated(gw_request *q)
{
    sky_buf *out = sky__gw_rc_stream_out(q->rcs);
    int rc = out->len ? sky_server_stream_write(q->sr, sky_buf_span(out), 0) : 0;
    sky_buf_reset(out);
    return rc;
}

/* A chat stream told as Responses events: 0, or 1 to cancel (garbled, or the client gone). */
static int on_translated_body(gw_request *q, sky_call *call, const char *data, size_t len)
{
    if (q->rcs == NULL || sky__gw_rc_stream_feed(q->rcs, data, len) < 0 || send_translated(q) < 0)
        return 1;
    int64_t had = q->used.total;
    sky__gw_rc_stream_tokens(q->rcs, &q->used);
    if (q->used.total >= 0 && q->used.total != had)
        sky_call_set_usage(call, q->used.total);
    return 0;
}

/* Each upstream chunk goes to the client as it came: no holding (a Responses stream whose
 * turn is kept is read on the side, for its last response). */
static int on_stream_body(sky_call *call, const char *data, size_t len, void *ud)
{
    gw_request *q = ud;
    if (q->sr && !q->streaming) {
        if (len == 0)
            return 0;
        begin_stream(q);
    }
    if (q->sr && q->xlate)
        return on_translated_body(q, call, data, len);
    if (q->sr == NULL || sky_server_stream_write(q->sr, sky_span_make(data, len), 0) < 0)
        return 1; /* the client is gone: cancel */
    note_tail(q, data, len);
    sky__gw_turn_watch(q, data, len); /* a Responses stream with a turn to keep */
    sky__gw_cache_stream_chunk(q, data, len);
    int64_t had = q->used.total;
    sky__gw_tokens_from_chunk(sky_span_make(data, len), &q->used);
    if (q->used.total >= 0 && q->used.total != had)
        sky_call_set_usage(call, q->used.total); /* the deployment's limiter learns it too */
    return 0;
}

static void end_kept(gw_request *q, sky_span body)
{
    (void)body;
    (void)sky_server_stream_write(q->sr, sky_span_make("", 0), 1);
}

/* A translated stream's last events; the end once the store keeps the answer. */
static void end_translated(gw_request *q)
{
    if (q->rcs == NULL || sky__gw_rc_stream_finish(q->rcs) < 0 || send_translated(q) < 0) {
        sky_server_abort(q->sr);
        return;
    }
    sky__gw_rc_stream_tokens(q->rcs, &q->used);
    if (!sky__gw_turn_answered(q, sky__gw_rc_stream_final(q->rcs), sky_span_make("", 0), end_kept))
        end_kept(q, sky_span_make("", 0));
}

static void end_stream(gw_request *q, const sky_error *err)
{
    if (err == NULL && q->xlate) {
        end_translated(q);
        return;
    }
    if (err == NULL) {
        sky__gw_cache_stream_ended(q);
        if (!sky__gw_turn_answered(q, sky__gw_turn_streamed(q), sky_span_make("", 0), end_kept))
            end_kept(q, sky_span_make("", 0));
        return;
    }
    SKY_WARN("gateway", "%s: stream failed after it began: %s", q->model->name,
             sky_err_name(err->code));
    if (q->tail[0] == '\n' && q->tail[1] == '\n' &&
        sky__gw_error_event(q->sr, "server_error", "upstream_error",
                            "The upstream stream failed before its end.") == 0) {
        (void)sky_server_stream_write(q->sr, sky_span_make("", 0), 1);
        return;
    }
    sky_server_abort(q->sr);
}

/* ---- starting a call on a deployment ---- */

/* A held answer read once, before the pipeline decides on it: checked as JSON (a garbled
 * answer is worth another deployment) and its usage taken, for the access log, the key's
 * budget and the deployment's limiter alike (which then read it no more). */
static int check_answer(sky_call *call, const sky_reply *reply, void *ud)
{
    gw_request *q = ud;
    int rc = sky__gw_tokens_check(reply->body, &q->used);
    if (rc == 0)
        sky_call_set_usage(call, q->used.total); /* ignored when the reply said none */
    return rc;
}

/* The model name the upstream must read in the body, or NULL when the body may go as it
 * came. Azure reads the deployment from the path, but on its v1 Responses path. */
static const char *body_model_for(const gw_request *q, const gw_deployment *d)
{
    const char *want = d->azure ? (q->op == GW_OP_RESPONSES ? d->upstream : NULL)
                                : (d->upstream ? d->upstream : d->model);
    if (want == NULL || (q->body_model && strcmp(q->body_model, want) == 0))
        return NULL;
    return want;
}

/* The call on @p d, its shadow buckets charged when it starts. Its headers: the gateway's
 * (JSON), and the request's id for the upstream's logs, added to the loop's own map while
 * sky_call_start copies it and dropped after (sky_headers_truncate gives its bytes back). */
static int start_call(gw_request *q, gw_deployment *d, sky_call_options *o, sky_error *err)
{
    sky_headers *h = q->g->json_headers;
    size_t base = sky_headers_count(h);
    if (sky_headers_add(h, SKY_SPAN_LIT("x-request-id"), sky_span_cstr(q->request_id)) < 0) {
        sky_headers_truncate(h, base);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    o->headers = h;
    q->call_t0_ns = uv_hrtime();
    int rc = sky_call_start(d->pipe, o, &q->call, err); /* copies the body and headers */
    sky_headers_truncate(h, base);
    if (rc == 0)
        sky_route_charge(&d->rt, q->est_tokens);
    return rc;
}

/* A Responses request to a chat-only deployment: its chat translation, on its chat URL.
 * SKY_EINVAL when the request asks what chat cannot say (q->refusal says what). */
static int start_translated(gw_request *q, gw_deployment *d, sky_call_options *o, sky_error *err)
{
    size_t len = 0;
    const char *model = d->azure ? NULL : d->upstream ? d->upstream : d->model;
    char *chat = sky__gw_responses_to_chat(q, model, &len);
    if (chat == NULL)
        return sky_error_set(err, q->refusal[0] ? SKY_EINVAL : SKY_ENOMEM, "%s",
                             q->refusal[0] ? q->refusal : "out of memory");
    o->url = d->url[GW_OP_CHAT];
    o->body = sky_span_make(chat, len);
    int rc = start_call(q, d, o, err);
    free(chat);
    return rc;
}

static int start_on(gw_request *q, size_t dep, sky_error *err)
{
    gw_deployment *d = &q->t->deps[dep];
    sky_call_options o;
    sky_call_options_init(&o);
    o.method = "POST";
    o.url = d->url[q->op];
    o.body = q->body;
    o.est_tokens = q->est_tokens;
    o.check_reply = q->stream ? NULL : check_answer;
    o.on_done = on_call_done;
    o.user_data = q;
    if (q->stream)
        o.on_body = on_stream_body;
    q->dep = dep;
    q->started = 1;
    q->xlate = q->op == GW_OP_RESPONSES && d->chat_only;
    if (q->xlate)
        return start_translated(q, d, &o, err);
    char *rewritten = NULL;
    const char *model = body_model_for(q, d);
    size_t len = 0;
    if (model && (rewritten = sky__gw_body_set_model(q->body, model, &len)) != NULL)
        o.body = sky_span_make(rewritten, len);
    int rc = model == NULL || rewritten ? start_call(q, d, &o, err)
                                        : sky_error_set(err, SKY_ENOMEM, "out of memory");
    free(rewritten);
    return rc;
}

/* Every deployment of the model tried: on to the next model of the fallback list. 0, or -1
 * when none is left. */
static int next_model(gw_request *q)
{
    const gw_model *a = q->asked;
    if (q->fell >= a->n_fallbacks)
        return -1;
    const gw_model *m = &q->t->models[a->fallbacks[q->fell++]];
    SKY_INFO("gateway", "%s: no deployment could answer, falling back to %s", q->model->name,
             m->name);
    q->model = m;
    q->tried = 0;
    return 0;
}

/* Start on the next deployment not yet tried, of the model or of its fallbacks: 0, or -1
 * when none is left. */
static int start_next(gw_request *q)
{
    for (;;) {
        int i = sky__gw_pick(q->g, q->t, q->model, q->tried, q->est_tokens);
        if (i < 0 && next_model(q) == 0)
            continue;
        if (i < 0)
            return -1;
        q->tried |= UINT64_C(1) << i;
        sky_error err;
        sky_error_clear(&err);
        if (start_on(q, q->model->deps[i], &err) == 0)
            return 0;
        if (q->refusal[0])
            return -1; /* the request asks what the deployment cannot say: the client's to mend */
        SKY_WARN("gateway", "%s: cannot start: %s", q->t->deps[q->model->deps[i]].label,
                 sky_err_name(err.code));
    }
}

/* ---- the outcome ---- */

static void copy_header(sky_server_req *r, const sky_headers *h, const char *name)
{
    const char *v = h ? sky_headers_get(h, name) : NULL;
    if (v)
        sky_server_add_header(r, name, sky_span_cstr(v));
}

/* Whether @p hay holds @p needle (glibc's memmem needs _GNU_SOURCE). */
static int holds(sky_span hay, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n > 0 && i + n <= hay.len; i++)
        if (hay.ptr[i] == needle[0] && memcmp(hay.ptr + i, needle, n) == 0)
            return 1;
    return 0;
}

/* The upstream's own words for the client's mistakes (400, 404, 422, ...), unless they
 * hold the deployment's key: an upstream may quote a key back. */
static int pass_on(gw_request *q, const sky_call_result *res)
{
    const char *key = q->t->deps[q->dep].ep.api_key;
    if (res->status < 400 || res->status >= 500 || sky_route_worth_another(res->status, NULL))
        return 0;
    if (key && holds(res->body, key))
        return 0;
    q->status = res->status;
    answer_headers(q);
    sky_server_respond(q->sr, res->status, "application/json", res->body);
    return 1;
}

static void fail(gw_request *q, const sky_call_result *res, const sky_error *err)
{
    sky_server_req *r = q->sr;
    const char *name = q->asked->name;
    if (pass_on(q, res))
        return;
    if (res->status == 429) {
        q->status = 429;
        copy_header(r, res->headers, "retry-after");
        copy_header(r, res->headers, "retry-after-ms");
        sky__gw_error(r, 429, "requests", NULL, "rate_limit_exceeded",
                      "Every deployment of model '%s' is over its rate limit. Retry later.", name);
    } else if (err && err->code == SKY_ECANCELED) {
        q->status = 503;
        sky__gw_error(r, 503, "server_error", NULL, "shutting_down",
                      "The gateway is shutting down.");
    } else if (err && err->code == SKY_ETIMEDOUT) {
        q->status = 504;
        sky__gw_error(r, 504, "server_error", NULL, "upstream_timeout",
                      "No deployment of model '%s' answered in time.", name);
    } else {
        /* the status or the error's name: never the upstream's message, which may quote
         * a key or an internal address */
        char why[48];
        if (err && err->code != SKY_EHTTP)
            snprintf(why, sizeof(why), "%s", sky_err_name(err->code));
        else
            snprintf(why, sizeof(why), "HTTP %d", res->status);
        q->status = 502;
        sky__gw_error(r, 502, "server_error", NULL, "upstream_error",
                      "No deployment of model '%s' could answer (last: %s).", name, why);
    }
}

static void send_kept(gw_request *q, sky_span body)
{
    sky_server_respond(q->sr, 200, "application/json", body);
}

static void respond(gw_request *q, const sky_call_result *res)
{
    sky_call_result mine = *res;
    json_t *resp = NULL; /* a Responses answer, translated or patched (responses_turn.h) */
    char *text = NULL;
    if (q->op == GW_OP_RESPONSES && res->status == 200 &&
        sky__gw_responses_answer(q, res->body, &resp, &text) < 0) {
        q->status = 502;
        sky__gw_error(q->sr, 502, "server_error", NULL, "upstream_error",
                      "The answer of model '%s' could not be read as a chat completion.",
                      q->asked->name);
        return;
    }
    /* q->used: read by check_answer, unless the answer was translated */
    if (text) {
        mine.body = sky_span_cstr(text);
        sky__gw_tokens_read(mine.body, &q->used);
    }
    sky_span body = sky__gw_cache_answered(q, &mine); /* the body, or the cache's merge of it */
    q->status = res->status;
    answer_headers(q);
    if (!sky__gw_turn_answered(q, resp, body, send_kept))
        sky_server_respond(q->sr, res->status, "application/json", body);
    json_decref(resp);
    free(text);
}

/* No deployment took the request: 400 when a translation refused it, else 503. */
static void no_deployment(gw_request *q)
{
    if (q->refusal[0]) {
        q->status = 400;
        sky__gw_error(q->sr, 400, "invalid_request_error", NULL, NULL, "%s", q->refusal);
        return;
    }
    q->status = 503;
    sky__gw_error(q->sr, 503, "server_error", NULL, "no_deployment",
                  "No deployment of model '%s' can take the request.", q->asked->name);
}

static void on_call_done(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    gw_request *q = ud;
    (void)call;
    q->call = NULL;
    q->upstream_ns += uv_hrtime() - q->call_t0_ns;
    if (q->sr == NULL) {
        request_free(q);
        return;
    }
    /* From here the server request owns q: answering it may dispose it (and free q). */
    if (q->stream && !q->streaming && err == NULL)
        begin_stream(q); /* a whole stream of no bytes: its head, and its end */
    if (q->streaming) {
        end_stream(q, err);
        return;
    }
    if (err == NULL) {
        respond(q, res);
        return;
    }
    if (sky_route_worth_another(res->status, err)) {
        SKY_INFO("gateway", "%s: %s (HTTP %d), trying another deployment", q->t->deps[q->dep].label,
                 sky_err_name(err->code), res->status);
        if (start_next(q) == 0)
            return;
        if (q->refusal[0]) {
            no_deployment(q);
            return;
        }
    }
    fail(q, res, err);
}

void sky__gw_proxy(sky_gateway *g, sky_server_req *r, const gw_model *m, gw_op op, const gw_body *b,
                   const gw_admission *a)
{
    gw_request *q = request_new(g);
    if (q == NULL) {
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    q->g = g;
    q->sr = r;
    q->asked = q->model = m;
    q->op = op;
    q->stream = op != GW_OP_EMBEDDINGS && b->stream;
    q->temperature_zero = b->temperature_zero;
    q->body_model = b->has_model && strcmp(b->model, m->name) == 0 ? m->name : NULL;
    q->body = sky_server_req_body(r);
    q->t = sky__gw_table_ref(a->t);
    q->t0_ns = a->t0_ns;
    memcpy(q->request_id, a->request_id, sizeof(q->request_id));
    q->est_tokens = a->est_tokens;
    q->key = a->key;
    q->rl = a->rl;
    q->used = (gw_tokens){-1, -1, -1, -1};
    q->tail[0] = q->tail[1] = '\n'; /* nothing sent yet is a boundary */
    q->next = g->live;
    if (g->live)
        g->live->prev = q;
    g->live = q;
    sky_server_req_set_data(r, q, on_client_gone);
    if (q->op == GW_OP_RESPONSES && sky__gw_turn_begin(q))
        return; /* answered, or sky__gw_proxy_go once the earlier turns are read */
    sky__gw_proxy_go(q);
}

void sky__gw_proxy_go(gw_request *q)
{
    if (sky__gw_cache_begin(q))
        return; /* answered from the cache, or sky__gw_proxy_miss later */
    if (start_next(q) < 0)
        no_deployment(q);
}

void sky__gw_proxy_miss(gw_request *q)
{
    if (start_next(q) < 0)
        no_deployment(q);
}

void sky__gw_proxy_end_all(sky_gateway *g)
{
    /* The pipelines are freed first (their calls' callbacks have run): what is left is
     * requests whose clients are still there. Forget them, so their disposal, later,
     * does not reach a freed gateway. */
    while (g->live) {
        gw_request *q = g->live;
        if (q->sr)
            sky_server_req_set_data(q->sr, NULL, NULL);
        request_free(q);
    }
    while (g->spare) {
        gw_request *q = g->spare;
        g->spare = q->next;
        free(q);
    }
    g->n_spare = 0;
}
