/*
 * A model call from request to reply, in the order a provider judges it: the
 * key, the api-version (Azure), the Content-Type, an account refused, the body,
 * the model; then overload, poison, the rate limit, a drawn fault, and the reply
 * now, later, token by token or after a wait in line.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "skyio/json.h"
#include "worker.h"

/* The data free of a call held for a later reply: its request is done, answered or left. */
static void call_free(void *p)
{
    sky__mock_call *c = p;
    if (c->in_line)
        sky__mock_leave_line(c->m, c);
    else if (c->in_slot)
        sky__mock_free_slot(c->m);
    free(c->instructions);
    json_decref(c->schema);
    json_decref(c->tool);
    json_decref(c->plan);
    free(c);
}

/* snprintf's "%s" with its truncation, without the cost of a format. */
static void copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void call_init(sky__mock_worker *m, sky__mock_call *c, int kind, int azure,
                      sky_span deployment)
{
    static const char *const prefixes[] = {"chatcmpl-", "embd-", "resp_", "cmpl-", "modr-"};
    memset(c, 0, sizeof(*c));
    c->m = m;
    c->kind = kind;
    c->azure = azure;
    c->fault = SKY__FAULT_NONE;
    c->n_tokens = m->cfg.default_completion_tokens;
    c->dim = m->cfg.embedding_dim;
    c->per_token_ms = m->cfg.per_token_ms;
    c->created = (int64_t)time(NULL); /* the vDSO's clock: no system call */
    sky__mock_format_id(c->id, prefixes[kind], m->index, ++m->next_id);
    if (deployment.len)
        snprintf(c->model, sizeof(c->model), "%.*s", (int)deployment.len, deployment.ptr);
}

/* ---- before the body: the key, api-version, Content-Type, the account ---- */

static void respond_unauthorized(sky__mock_worker *m, sky_server_req *r, int azure)
{
    ST_ADD(m->st.auth_failures, 1);
    sky__mock_respond_error(m, r, azure, 401, "invalid_request_error",
                            azure ? "401" : "invalid_api_key",
                            azure ? "Access denied due to invalid subscription key or wrong API "
                                    "endpoint. Make sure to provide a valid key for an active "
                                    "subscription and use a correct regional API endpoint for "
                                    "your resource."
                                  : "Incorrect API key provided.");
}

/*
 * OpenAI answers a body of any other type with 400 unsupported_content_type, and
 * servers built on FastAPI (vLLM among them) do not read the body as JSON at all:
 * a client that forgets the header must fail here too, not first in production.
 */
static int content_type_ok(sky__mock_worker *m, sky_server_req *r, int azure)
{
    sky_span v;
    if (sky_server_req_header(r, "content-type", &v) && sky__mock_json_media_type(v))
        return 1;
    char msg[256];
    if (sky_server_req_header(r, "content-type", &v))
        snprintf(msg, sizeof(msg),
                 "Unsupported content type: '%.*s'. This API method only accepts "
                 "'application/json' requests.",
                 (int)(v.len < 100 ? v.len : 100), v.ptr);
    else
        snprintf(msg, sizeof(msg),
                 "No Content-Type header. This API method only accepts "
                 "'application/json' requests.");
    sky__mock_respond_error(m, r, azure, 400, "invalid_request_error", "unsupported_content_type",
                            msg);
    return 0;
}

/* Everything judged before the body is read; answers and returns 0 when one fails. */
static int caller_ok(sky__mock_worker *m, sky_server_req *r, int azure)
{
    sky_span api_version;
    if (!sky__mock_authorized(m, r)) {
        respond_unauthorized(m, r, azure);
        return 0;
    }
    if (azure && !sky_server_req_query_param(r, "api-version", &api_version)) {
        sky__mock_respond_error(m, r, 1, 404, "invalid_request_error", "404",
                                "Resource not found: the api-version query parameter is missing.");
        return 0;
    }
    return content_type_ok(m, r, azure) && !sky__mock_refuse_account(m, r, azure);
}

/* ---- the body ---- */

/* The body as a JSON object (new reference); NULL when it is not one, answered 400. */
static json_t *read_body(sky__mock_worker *m, sky_server_req *r, int azure)
{
    json_t *req = NULL;
    sky_error err;
    sky_error_clear(&err);
    if (sky_json_parse(sky_server_req_body(r), &req, &err) >= 0 && json_is_object(req))
        return req;
    char msg[SKY_ERROR_MESSAGE_MAX + 64];
    snprintf(msg, sizeof(msg), "The request body is not valid JSON: %s",
             err.code ? err.message : "expected an object");
    json_decref(req);
    sky__mock_respond_error(m, r, azure, 400, "invalid_request_error", "invalid_json", msg);
    return NULL;
}

/* OpenAI's calls name the model in the body; answers 400 and returns 0 when it is missing. */
static int take_model(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c, const json_t *req)
{
    /* moderations alone may leave the model to the provider */
    const char *model = sky_json_str(
        req, "model", c->kind == SKY__MOCK_MODERATIONS ? "omni-moderation-latest" : NULL);
    if (model == NULL) {
        sky__mock_respond_error(m, r, c->azure, 400, "invalid_request_error", "missing_model",
                                "you must provide a model parameter");
        return 0;
    }
    copy_name(c->model, sizeof(c->model), model);
    return 1;
}

/* What the body asks, into @p c: NULL, or what is wrong with it. */
static const char *read_request(sky__mock_call *c, const json_t *req)
{
    sky__mock_request q = {.n_tokens = c->n_tokens, .dim = c->dim, .seed = c->seed};
    const char *problem = sky__mock_parse_call(c->kind, req, &q, &c->instructions);
    if (problem)
        return problem;
    c->stream = q.stream;
    c->include_usage = q.include_usage;
    c->has_max = q.has_max;
    c->n_tokens = q.n_tokens;
    c->dim = q.dim;
    c->base64 = q.base64;
    c->n_inputs = q.n_inputs;
    c->prompt_tokens = q.prompt_tokens;
    c->max_tokens = q.has_max ? q.n_tokens : 0;
    c->n_choices = q.n_choices > 0 ? q.n_choices : 1;
    c->format = q.format;
    c->schema = json_incref((json_t *)(uintptr_t)q.schema);
    c->tool = json_incref((json_t *)(uintptr_t)q.tool);
    return NULL;
}

/*
 * How long the reply is: a model stops when its answer is done, which is most often
 * before the request's limit. The natural length is drawn from the body's hash
 * (log-normal around --reply-median-tokens, at least --reply-min-tokens); the limit cuts
 * it ("length"). Without a limit the reply is --completion-tokens long, as before.
 */
static void draw_length(const sky__mock_worker *m, sky__mock_call *c)
{
    if (!c->has_max || m->cfg.reply_median_tokens <= 0 || !sky__mock_generates(c->kind))
        return;
    uint64_t s = c->seed ^ 0x9e3779b97f4a7c15u;
    /* a normal deviate from the sum of four uniforms, then e^(0.8 z): a long right tail */
    double z = (sky__mock_rand01(&s) + sky__mock_rand01(&s) + sky__mock_rand01(&s) +
                sky__mock_rand01(&s) - 2.0) *
               1.7320508;
    double natural = m->cfg.reply_median_tokens * exp(0.8 * z);
    if (natural < m->cfg.reply_min_tokens)
        natural = m->cfg.reply_min_tokens;
    if (natural < c->n_tokens) {
        c->n_tokens = natural < 1 ? 1 : (int)natural;
        c->has_max = 0; /* it stopped on its own: "stop" */
    }
}

/* ---- after the body: limits, then the reply ---- */

/* Charge @p c to the shared limiter; answers 429 and returns 0 when refused. */
static int take_limit(sky__mock_worker *m, sky_server_req *r, const sky__mock_call *c)
{
    sky__mock_verdict v;
    /* charged up front on the limit, as Azure does, whatever the reply turns out to be */
    int charged = c->max_tokens > 0 ? c->max_tokens : c->n_tokens;
    int64_t cost =
        c->prompt_tokens + (sky__mock_generates(c->kind) ? sky__mock_generated(c, charged) : 0);
    sky_mock *owner = m->owner;
    uv_mutex_lock(&owner->limiter_lock);
    sky__mock_limiter_take(&owner->limiter, sky__mock_now_ms(m), cost, &v);
    uv_mutex_unlock(&owner->limiter_lock);
    if (!v.allowed) {
        sky__mock_respond_429(m, r, c, &v);
        return 0;
    }
    sky__mock_add_ratelimit_headers(m, r, &v);
    return 1;
}

static int admit(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    /* Without limits every request passes and no header tells of them: skip
     * the lock, which the workers of --threads would otherwise pass between them. */
    int limited = m->cfg.rpm > 0 || m->cfg.tpm > 0;
    if (limited && !take_limit(m, r, c))
        return 0;
    ST_ADD(m->st.prompt_tokens, (uint64_t)c->prompt_tokens);
    return 1;
}

/* Time to the reply (to the first token of a stream), jittered. */
static double reply_delay(sky__mock_worker *m, const sky__mock_call *c)
{
    double delay = sky__mock_generates(c->kind) && !c->stream
                       ? m->cfg.ttft_ms + m->cfg.per_token_ms * c->n_tokens
                       : m->cfg.ttft_ms;
    return sky__mock_jittered(m, delay);
}

sky__mock_call *sky__mock_hold_call(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    sky__mock_call *held = malloc(sizeof(*held));
    if (held == NULL) {
        sky__mock_respond_error(m, r, c->azure, 500, "server_error", "server_error",
                                "out of memory");
        return NULL;
    }
    *held = *c;
    /* the held copy owns them now */
    c->instructions = NULL;
    c->schema = NULL;
    c->tool = NULL;
    held->req = r;
    sky_server_req_set_data(r, held, call_free);
    return held;
}

/* Answer the held call @p c after @p delay ms: the whole reply, or a stream's first token. */
static void answer_after(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c, double delay)
{
    if (c->stream)
        ST_ADD(m->st.streams, 1);
    if (c->stream && c->include_usage)
        ST_ADD(m->st.streams_with_usage, 1);
    if (delay < 0.5) {
        if (c->stream)
            sky__mock_stream_begin(r, c);
        else
            sky__mock_send_reply(m, r, c);
        return;
    }
    if (sky_server_req_after(r, (uint64_t)(delay + 0.5),
                             c->stream ? sky__mock_stream_begin : sky__mock_delayed_reply) < 0)
        sky__mock_respond_error(m, r, c->azure, 500, "server_error", "server_error",
                                "out of memory");
}

void sky__mock_serve_held(sky_server_req *r, void *data)
{
    sky__mock_call *c = data;
    if (!sky__mock_fault_answered(c->m, r, c)) {
        answer_after(c->m, r, c, reply_delay(c->m, c));
    } else if (c->fault == SKY__FAULT_HANG && c->in_slot) {
        /* h2o does not see an HTTP/1.1 client leave while its request waits, so a hung
         * call would hold its slot for good: it gives the slot up at once */
        c->in_slot = 0;
        sky__mock_free_slot(c->m);
    }
}

static void dispatch(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    if (m->cfg.capacity > 0) {
        sky__mock_dispatch_in_line(m, r, c);
        return;
    }
    if (sky__mock_fault_answered(m, r, c))
        return;
    double delay = reply_delay(m, c);
    if (!c->stream && delay < 0.5) {
        sky__mock_send_reply(m, r, c); /* the fast path: nothing held */
        return;
    }
    sky__mock_call *held = sky__mock_hold_call(m, r, c);
    if (held)
        answer_after(m, r, held, delay);
}

static void count_call(sky__mock_worker *m, int kind)
{
    uint64_t *const counters[] = {&m->st.chat, &m->st.embeddings, &m->st.responses,
                                  &m->st.completions, &m->st.moderations};
    ST_ADD(*counters[kind], 1);
}

/* A call read without fault: the model known, the limits passed, it is answered. */
static void serve_call(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    int kind = c->kind, azure = c->azure;
    /* the provider's own moderation model is served whatever --model lists */
    int default_moderation =
        kind == SKY__MOCK_MODERATIONS && strcmp(c->model, "omni-moderation-latest") == 0;
    if (!default_moderation && !sky__mock_model_known(m, c->model)) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "The model `%.128s` does not exist or you do not have access to it.", c->model);
        sky__mock_respond_error(m, r, azure, 404, "invalid_request_error",
                                azure ? "DeploymentNotFound" : "model_not_found", msg);
        return;
    }
    count_call(m, kind);
    if (m->cfg.overload_rps > 0 && sky__mock_overloaded(m)) {
        sky__mock_respond_overloaded(m, r);
        return;
    }
    if (sky__mock_poisoned(m, c->seed)) {
        ST_ADD(m->st.poisoned, 1);
        sky__mock_respond_error(m, r, azure, 500, "server_error",
                                azure ? "InternalServerError" : "server_error",
                                "The server cannot process this request (skyio mock --poison).");
        return;
    }
    if (admit(m, r, c))
        dispatch(m, r, c);
}

void sky__mock_handle_call(sky__mock_worker *m, sky_server_req *r, int kind, int azure,
                           sky_span deployment)
{
    sky__mock_call c;
    call_init(m, &c, kind, azure, deployment);
    if (!caller_ok(m, r, azure))
        return;
    json_t *req = read_body(m, r, azure);
    if (req == NULL)
        return;
    if (deployment.len == 0 && !take_model(m, r, &c, req)) {
        json_decref(req);
        return;
    }
    sky_span body = sky_server_req_body(r);
    c.seed = sky__mock_hash(body.ptr, body.len, 0);
    const char *problem = read_request(&c, req);
    json_decref(req);
    if (problem) {
        sky__mock_respond_error(m, r, azure, 400, "invalid_request_error", "invalid_request",
                                problem);
    } else {
        draw_length(m, &c);
        serve_call(m, r, &c);
    }
    free(c.instructions);
    json_decref(c.schema);
    json_decref(c.tool);
}
