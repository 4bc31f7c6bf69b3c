/*
 * A batch spread over several deployments (`skyio batch --config gateway.json`). Each has
 * its own pipeline, with the batch's profile (its own learned limits, concurrency and
 * breaker) but no retries: the routing module (skyio/route.h) picks the deployment with the
 * most headroom for each request, and another one when a deployment could not answer (a
 * 429, an overload, a 5xx, a timeout), then the model's fallbacks. A request that every one
 * of them failed waits its backoff (the retry policy's; a Retry-After is honoured) and goes
 * round again: pipeline.retry.max_retries bounds its attempts over all of them. So a job
 * uses the sum of the deployments' quotas, and one that is down is left alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/ai.h"
#include "skyio/json.h"
#include "skyio/rand.h"
#include "batch_internal.h"

typedef struct batch_dep {
    char *model; /* the name lines ask for */
    /* OpenAI kinds: the body's model upstream when renamed, else NULL; Azure: the
     * deployment's name */
    char *upstream;
    int azure;
    sky_ai_endpoint ep;
    sky_pipeline *pipe;
    sky_route_target rt;
} batch_dep;

struct sky__batch_routes {
    batch_dep *deps;
    size_t n;
    sky_route_models models;
    uint64_t rng;
    int closed;                 /* the pipelines are freed: nothing more is sent */
    sky__batch_routed *waiting; /* requests waiting out a backoff */
};

struct sky__batch_routed {
    sky__batch_item *it;
    const sky_route_model *asked, *model; /* asked for; being tried (asked, then fallbacks) */
    size_t fell;                          /* fallbacks of asked tried so far */
    uint64_t tried;                       /* bit i: model->deps[i] tried this round */
    int attempts;                         /* calls started, over every round */
    const char *path;                     /* the line's url (static) */
    char *body;
    size_t body_len;
    char *body_model; /* the body's "model"; NULL: none */
    int64_t est_tokens;
    sky_retry_state retry; /* the backoff between rounds */
    uv_timer_t *timer;     /* while waiting (or being canceled) */
    int canceled;
    sky__batch_routed *prev, *next; /* in the waiting list */
};

/* ---- the deployments ---- */

/* The deployment's own limits over the batch's profile: its known rates, its concurrency. */
static void dep_limits(sky_pipeline_options *po, const sky_route_deployment *in)
{
    if (in->rpm > 0)
        po->rate.rpm = in->rpm;
    if (in->tpm > 0)
        po->rate.tpm = in->tpm;
    if (in->concurrency > 0) {
        po->concurrency.kind = SKY_LIMITER_FIXED;
        po->concurrency.slow_start = 0;
        po->concurrency.initial = po->concurrency.max = in->concurrency;
        po->concurrency.min = po->concurrency.min > in->concurrency ? 1 : po->concurrency.min;
    } else if (in->max_concurrency > 0) {
        po->concurrency.max = in->max_concurrency;
        if (po->concurrency.initial > in->max_concurrency)
            po->concurrency.initial = in->max_concurrency;
    }
}

static int dep_pipeline(sky_batch *b, batch_dep *d, const sky_route_deployment *in,
                        const char *label, sky_error *err)
{
    sky_pipeline_options po = b->o.pipeline;
    sky__batch_apply_limiter(&b->o, &po);
    po.retry.max_retries = 0; /* the router tries again, elsewhere first */
    dep_limits(&po, in);
    if (d->azure && in->api_key == NULL) {
        if (po.credential == NULL)
            return sky_error_set(err, SKY_EINVAL,
                                 "%s: an Azure deployment without a key needs "
                                 "a credential",
                                 label);
        po.scope = po.scope ? po.scope : sky_ai_entra_scope(&d->ep);
    } else {
        po.credential = NULL;
        po.auth = sky_ai_pipeline_auth;
        po.auth_user_data = &d->ep;
    }
    if (!d->azure)
        po.send_request_id = 0; /* OpenAI reads none (see batch.c) */
    int rc = sky_pipeline_new(b->loop, b->client, &po, &d->pipe);
    d->rt.pipe = d->pipe;
    d->rt.weight = in->weight;
    return rc < 0 ? sky_error_set(err, rc, "%s: cannot make its pipeline", label) : 0;
}

static int dep_setup(sky_batch *b, batch_dep *d, const sky_route_deployment *in, size_t nth,
                     sky_error *err)
{
    char label[300];
    if (in->model == NULL || in->model[0] == '\0' || in->base_url == NULL || in->weight < 0)
        return sky_error_set(err, SKY_EINVAL,
                             "deployment %zu: a model, a base_url and a weight of 0 or more", nth);
    snprintf(label, sizeof(label), "%.255s#%zu", in->model, nth);
    d->azure = in->kind == SKY_ROUTE_AZURE;
    d->model = strdup(in->model);
    int renamed = in->deployment && (d->azure || strcmp(in->deployment, in->model) != 0);
    d->upstream = renamed ? strdup(in->deployment) : NULL;
    if (d->model == NULL || (renamed && d->upstream == NULL))
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    if (sky_ai_endpoint_set(&d->ep, d->azure ? SKY_AI_AZURE : SKY_AI_OPENAI, in->base_url,
                            in->api_key, in->api_version) < 0)
        return sky_error_set(err, SKY_EINVAL, "%s: bad endpoint", label);
    if (d->azure && d->upstream == NULL)
        return sky_error_set(err, SKY_EINVAL, "%s: an Azure deployment needs its name", label);
    return dep_pipeline(b, d, in, label, err);
}

static int setup_models(sky__batch_routes *rs, const sky_batch_options *o, sky_error *err)
{
    const char **names = calloc(rs->n, sizeof(*names));
    if (names == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < rs->n; i++)
        names[i] = rs->deps[i].model;
    int rc = sky_route_models_new(names, rs->n, o->fallbacks, o->n_fallbacks, &rs->models, err);
    free(names);
    return rc;
}

int sky__batch_routes_new(sky_batch *b, sky_error *err)
{
    sky__batch_routes *rs = calloc(1, sizeof(*rs));
    if (rs == NULL || (rs->deps = calloc(b->o.n_deployments, sizeof(*rs->deps))) == NULL) {
        free(rs);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    b->routes = rs;
    rs->rng = sky_rand_u64();
    for (size_t i = 0; i < b->o.n_deployments; i++) {
        rs->n++;
        int rc = dep_setup(b, &rs->deps[i], &b->o.deployments[i], i, err);
        if (rc < 0)
            return rc;
    }
    return setup_models(rs, &b->o, err);
}

void sky__batch_routes_close(sky_batch *b)
{
    sky__batch_routes *rs = b->routes;
    if (rs == NULL || rs->closed)
        return;
    rs->closed = 1;
    (void)sky__batch_routes_cancel_waiting(b); /* the waits end from the loop */
    for (size_t i = 0; i < rs->n; i++) {
        sky_pipeline *p = rs->deps[i].pipe;
        rs->deps[i].pipe = rs->deps[i].rt.pipe = NULL;
        sky_pipeline_free(p); /* its calls end now, canceled */
    }
}

int sky__batch_routes_live(const sky_batch *b)
{
    return b->routes != NULL && !b->routes->closed;
}

void sky__batch_routes_free(sky_batch *b)
{
    sky__batch_routes *rs = b->routes;
    if (rs == NULL)
        return;
    sky__batch_routes_close(b);
    for (size_t i = 0; i < rs->n; i++) {
        sky_ai_endpoint_free(&rs->deps[i].ep); /* wipes the key */
        free(rs->deps[i].model);
        free(rs->deps[i].upstream);
    }
    sky_route_models_free(&rs->models);
    free(rs->deps);
    free(rs);
    b->routes = NULL;
}

/* ---- sending ---- */

/* The model a line goes to: the one its body names, or the only one there is. */
static const sky_route_model *model_of(const sky__batch_routes *rs, const char *name)
{
    const sky_route_model *m = name ? sky_route_model_find(&rs->models, sky_span_cstr(name)) : NULL;
    return m ? m : rs->models.n_models == 1 ? &rs->models.models[0] : NULL;
}

/* The model name the deployment must read in the body, or NULL when it may go as it came
 * (Azure reads the deployment from the path, but on its v1 Responses path). */
static const char *body_model_for(const sky__batch_routed *r, const batch_dep *d)
{
    const char *want =
        d->azure ? (strcmp(r->path, "/v1/responses") == 0 ? d->upstream : NULL) : d->upstream;
    if (want == NULL || (r->body_model && strcmp(r->body_model, want) == 0))
        return NULL;
    return want;
}

/* The body with its "model" set to @p model: a new string (free it), NULL on error. */
static char *with_model(const sky__batch_routed *r, const char *model, size_t *out_len)
{
    json_t *doc = NULL;
    char *out = NULL;
    if (sky_json_parse(sky_span_make(r->body, r->body_len), &doc, NULL) == 0 &&
        json_object_set_new(doc, "model", json_string(model)) == 0)
        out = sky_json_dump(doc, out_len);
    json_decref(doc);
    return out;
}

static int start_on(sky__batch_routed *r, size_t dep, sky_error *err)
{
    sky_batch *b = r->it->b;
    batch_dep *d = &b->routes->deps[dep];
    sky_buf url;
    size_t len = r->body_len;
    char *rewritten = NULL;
    sky_buf_init(&url, 8192);
    const char *want = body_model_for(r, d);
    int rc = sky_ai_url(&d->ep, r->path, d->azure ? d->upstream : r->body_model, &url);
    if (rc == 0 && want && (rewritten = with_model(r, want, &len)) == NULL)
        rc = SKY_ENOMEM;
    if (rc == 0) {
        sky_call_options co;
        sky_call_options_init(&co);
        co.method = "POST";
        co.url = url.data;
        co.headers = b->json_headers;
        co.body = sky_span_make(rewritten ? rewritten : r->body, len);
        co.est_tokens = r->est_tokens;
        co.check_reply = sky__batch_check_reply;
        co.on_done = sky__batch_call_done;
        co.user_data = r->it;
        rc = d->pipe ? sky_call_start(d->pipe, &co, NULL, err) : SKY_ESTATE;
    }
    if (rc == 0) {
        sky_route_charge(&d->rt, r->est_tokens);
        r->attempts++;
    }
    free(rewritten);
    sky_buf_free(&url);
    return rc;
}

/* Every deployment of the model tried: on to its next fallback. 0, or -1 when none is left. */
static int next_model(sky__batch_routed *r)
{
    const sky_route_model *a = r->asked;
    if (r->fell >= a->n_fallbacks)
        return -1;
    r->model = &r->it->b->routes->models.models[a->fallbacks[r->fell++]];
    r->tried = 0;
    return 0;
}

static int pick(sky__batch_routed *r)
{
    sky__batch_routes *rs = r->it->b->routes;
    sky_route_target *targets[SKY_ROUTE_MAX_DEPLOYMENTS];
    size_t n = r->model->n_deps;
    for (size_t i = 0; i < n; i++)
        targets[i] = &rs->deps[r->model->deps[i]].rt;
    return sky_route_pick(targets, n, r->tried, r->est_tokens, uv_now(r->it->b->loop), &rs->rng);
}

/* Start on the next deployment not tried this round, of the model or of its fallbacks: 0;
 * SKY_ENOTFOUND when none is left (or none could take it); SKY_ENOMEM. */
static int send_next(sky__batch_routed *r, sky_error *err)
{
    for (;;) {
        int i = pick(r);
        if (i < 0 && next_model(r) == 0)
            continue;
        if (i < 0)
            return SKY_ENOTFOUND;
        r->tried |= UINT64_C(1) << i;
        sky_error_clear(err);
        int rc = start_on(r, r->model->deps[i], err);
        if (rc == 0 || rc == SKY_ENOMEM)
            return rc;
        /* this deployment cannot take the line (Azure has no such endpoint): another may */
    }
}

int sky__batch_route_start(sky__batch_item *it, sky_batchline_request *req, sky_error *err)
{
    const sky_route_model *m = model_of(it->b->routes, req->model);
    if (m == NULL)
        return SKY_ENOTFOUND;
    sky__batch_routed *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    r->it = it;
    r->asked = r->model = m;
    r->path = req->url;
    r->body = req->body;
    r->body_len = req->body_len;
    r->body_model = req->model;
    r->est_tokens = (int64_t)req->token_estimate;
    sky_retry_state_init(&r->retry);
    it->routed = r;
    int rc = send_next(r, err);
    if (rc < 0) {
        it->routed = NULL;
        free(r);
        return rc;
    }
    req->body = req->model = NULL; /* the route's now */
    return 0;
}

void sky__batch_routed_free(sky__batch_routed *r)
{
    if (r == NULL)
        return;
    free(r->body);
    free(r->body_model);
    free(r);
}

/* ---- after a failure: elsewhere, or a wait and another round ---- */

static void unlink_waiting(sky__batch_routed *r)
{
    sky__batch_routes *rs = r->it->b->routes;
    if (r->prev)
        r->prev->next = r->next;
    else
        rs->waiting = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_wait_over(uv_timer_t *t)
{
    sky__batch_routed *r = t->data;
    sky_batch *b = r->it->b;
    sky_error err;
    unlink_waiting(r);
    uv_close((uv_handle_t *)t, on_timer_closed);
    r->timer = NULL;
    if (!r->canceled && !b->stopping && !b->routes->closed && send_next(r, &err) == 0) {
        b->retries++;
        return;
    }
    /* canceled, stopping, or nowhere to go: unrecorded, the next run does it */
    sky__batch_item_unsent(r->it);
}

/* Every deployment failed this round: wait as the retry policy says (a Retry-After too),
 * then go round again from the model asked. 1 when waiting, 0 when the failure is final. */
static int wait_round(sky__batch_routed *r, const sky_call_result *res, const sky_error *err)
{
    sky_batch *b = r->it->b;
    sky_retry_options ro = b->o.pipeline.retry;
    sky_retry_decision d;
    ro.max_retries = b->o.pipeline.retry.max_retries + 1; /* the attempts are counted here */
    if (sky_retry_decide(&ro, &r->retry, res->status, err, res->headers, NULL, 0, NULL, NULL, &d) <
            0 ||
        d.action != SKY_RETRY_YES || (r->timer = malloc(sizeof(*r->timer))) == NULL)
        return 0;
    uv_timer_init(b->loop, r->timer);
    r->timer->data = r;
    uv_timer_start(r->timer, on_wait_over, d.delay_ms, 0);
    r->next = b->routes->waiting;
    if (r->next)
        r->next->prev = r;
    b->routes->waiting = r;
    r->model = r->asked;
    r->fell = 0;
    r->tried = 0;
    return 1;
}

int sky__batch_route_again(sky__batch_item *it, const sky_call_result *res, const sky_error *err)
{
    sky__batch_routed *r = it->routed;
    sky_batch *b = it->b;
    sky_error next_err;
    if (r == NULL || err == NULL || b->stopping || b->routes->closed ||
        r->attempts > b->o.pipeline.retry.max_retries || !sky_route_worth_another(res->status, err))
        return 0;
    int rc = send_next(r, &next_err);
    if (rc != 0 && (rc != SKY_ENOTFOUND || !wait_round(r, res, err)))
        return 0;
    if (rc == 0)
        b->retries++;
    b->responses_429 += res->status == 429;
    return 1;
}

size_t sky__batch_routes_cancel_waiting(sky_batch *b)
{
    sky__batch_routes *rs = b->routes;
    size_t n = 0;
    for (size_t i = 0; i < rs->n; i++)
        n += rs->deps[i].pipe ? sky_pipeline_cancel_waiting(rs->deps[i].pipe) : 0;
    /* each ends from the loop, as a pipeline's canceled calls do */
    for (sky__batch_routed *r = rs->waiting; r; r = r->next) {
        n += !r->canceled;
        r->canceled = 1;
        uv_timer_start(r->timer, on_wait_over, 0, 0);
    }
    return n;
}

void sky__batch_routes_hold(sky_batch *b, int hold)
{
    sky__batch_routes *rs = b->routes;
    for (size_t i = 0; i < rs->n; i++)
        if (rs->deps[i].pipe)
            sky_pipeline_hold(rs->deps[i].pipe, hold);
}

/*
 * Lines are read only while the deployments can take them soon: at most twice their
 * concurrency limits in flight (16 more to start). A line sent waits in the pipeline it was
 * given, whatever is learned after; read later, it goes where the limits learned by then
 * say. Read 4,096 at once at the start, before any limit is known, a job split them
 * evenly and a slow deployment then held a third of them for minutes.
 */
int sky__batch_routes_room(const sky_batch *b)
{
    const sky__batch_routes *rs = b->routes;
    uint64_t cap = 16;
    for (size_t i = 0; i < rs->n; i++) {
        sky_limiter *l = rs->deps[i].pipe ? sky_pipeline_limiter(rs->deps[i].pipe) : NULL;
        cap += l ? 2 * (uint64_t)sky_limiter_limit(l) : 64;
    }
    return b->in_flight < cap;
}

/* ---- what they report ---- */

void sky__batch_routes_health(const sky_batch *b, sky_pipeline_health *out)
{
    const sky__batch_routes *rs = b->routes;
    int closed = 0;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < rs->n; i++) {
        sky_pipeline_health h;
        if (rs->deps[i].pipe == NULL)
            continue;
        sky_pipeline_get_health(rs->deps[i].pipe, &h);
        closed |= h.breaker == SKY_BREAKER_CLOSED;
        out->answered += h.answered;
        out->times_opened += h.times_opened;
        if (out->last_fault.code == 0 || h.breaker != SKY_BREAKER_CLOSED)
            out->last_fault = h.last_fault;
    }
    out->breaker = closed || rs->n == 0 ? SKY_BREAKER_CLOSED : SKY_BREAKER_OPEN;
    if (closed)
        out->times_opened = 0; /* one deployment's outage is not the job's: others serve */
}

void sky__batch_routes_progress(const sky_batch *b, sky_batch_progress *out)
{
    const sky__batch_routes *rs = b->routes;
    for (size_t i = 0; i < rs->n; i++) {
        sky_pipeline *p = rs->deps[i].pipe;
        sky_ratelimit *rl = p ? sky_pipeline_rate_limiter(p) : NULL;
        sky_limiter *lim = p ? sky_pipeline_limiter(p) : NULL;
        if (rl) {
            sky_ratelimit_stats rs_;
            sky_ratelimit_get_stats(rl, &rs_);
            out->rpm += rs_.rpm > 0 ? rs_.rpm : 0;
            out->rate_limit_wait_ms += rs_.wait_ms;
        }
        out->concurrency += lim ? sky_limiter_limit(lim) : 0;
        out->sending += p ? (uint64_t)sky_pipeline_on_wire(p) : 0;
    }
}
