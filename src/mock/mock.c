/*
 * `skyio mock`: an OpenAI- and Azure-OpenAI-compatible server for tests,
 * benchmarks and offline demos. Replies have the real shape and are
 * generated from the request, so the same request gets the same words.
 */
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "skyio/json.h"
#include "skyio/log.h"
#include "skyio/server.h"
#include "internal.h"

enum { CALL_CHAT, CALL_EMBED, CALL_RESPONSES, CALL_COMPLETION, CALL_MODERATION };

/* The calls whose reply is generated text, which costs time per token and counts as completion. */
#define GENERATES(kind)                                                                            \
    ((kind) == CALL_CHAT || (kind) == CALL_RESPONSES || (kind) == CALL_COMPLETION)

enum {
    FAULT_NONE = -1,
    FAULT_500,
    FAULT_502,
    FAULT_503,
    FAULT_RESET,
    FAULT_HANG,
    FAULT_CUT,
    FAULT_MALFORMED,
    FAULT_STREAM_CUT,
    FAULT_STREAM_ERROR,
    FAULT_CONTENT_FILTER,
    FAULT_COUNT
};

static const char *const fault_names[FAULT_COUNT] = {
    "http_500", "http_502",  "http_503",   "reset",        "hang",
    "cut",      "malformed", "stream_cut", "stream_error", "content_filter",
};

typedef struct mock_stats {
    uint64_t requests;
    uint64_t by_status[600];
    uint64_t rate_limited_requests, rate_limited_tokens;
    uint64_t auth_failures;
    uint64_t faults[FAULT_COUNT];
    uint64_t prompt_tokens, completion_tokens;
    uint64_t chat, embeddings, models, streams;
    uint64_t responses, completions, moderations;
    uint64_t streams_with_usage; /* that asked for stream_options.include_usage */
    uint64_t overloaded;         /* refused by --overload-rps */
    uint64_t poisoned;           /* answered 500 by --poison */
    uint64_t capacity_waits;     /* calls that waited in line for --capacity */
    uint64_t capacity_wait_ms;   /* and the time they waited, in all */
} mock_stats;

/* Updated by one worker, read by any: relaxed atomics. */
#define ST_ADD(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define ST_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/*
 * One loop, one server. With --threads N there are N workers, each listening
 * on the same port (SO_REUSEPORT) from its own thread; worker 0 runs on the
 * caller's loop. Everything a request touches is the worker's own, but for
 * the rate limiter, which is shared under a lock.
 */
typedef struct mock_worker {
    sky_mock *owner;
    int index;
    uv_loop_t *loop;
    uv_loop_t own_loop;
    uv_thread_t thread;
    uv_async_t wake; /* threads: "shut down", sent from the main loop */
    int has_thread;
    sky_server *srv;
    sky_mock_config cfg; /* a copy, read without sharing */
    uint64_t rng;
    uint64_t next_id;
    sky__mock_json_name model_json; /* the last model named, as JSON */
    mock_stats st;
    /* --capacity: calls being served, and those waiting in line (oldest first); the
     * gauges are read by /mock/stats from any thread */
    uint64_t busy, queued, peak_queued;
    struct mock_call *line_head, *line_tail;
} mock_worker;

struct sky_mock {
    uv_loop_t *loop;
    sky_mock_config cfg;
    sky__mock_limiter limiter;
    uv_mutex_t limiter_lock;      /* the limiter's, and the overload bucket's */
    double overload_tokens;       /* --overload-rps: calls that may still pass now */
    uint64_t overload_at_ms;      /* when the bucket was last filled */
    sky__mock_arm *arm;           /* ARM resources and operations, shared by the workers */
    sky__mock_identity *identity; /* token endpoints' settings and counters */
    int n_workers;
    mock_worker *workers;
    uv_async_t down; /* workers say they are down */
    int workers_down;
    uint64_t grace_ms;
    void (*shutdown_cb)(sky_mock *, void *);
    void *shutdown_ud;
};

/* What one chat or embeddings call needs after the handler returns. */
typedef struct mock_call {
    mock_worker *m;
    int kind;
    int azure;
    int stream;
    int include_usage;
    int fault;
    int n_tokens; /* reply length */
    int sent;     /* tokens streamed so far */
    int seq;      /* Responses: the next event's sequence_number */
    int has_max;  /* the request set max_tokens: finish_reason is "length" */
    int dim;
    int n_inputs;
    int64_t prompt_tokens;
    uint64_t seed;
    int64_t created;
    double per_token_ms;
    char id[40];
    char model[128];
    char *instructions; /* Responses: the request's, echoed in the reply (owned, or NULL) */
    /* --capacity */
    sky_server_req *req;    /* the request this held call answers */
    int in_slot;            /* being served: its end frees a slot */
    int in_line;            /* waiting for a slot */
    uint64_t in_line_at_ms; /* since when */
    struct mock_call *next_in_line;
} mock_call;

static void leave_line(mock_worker *m, mock_call *c);
static void free_slot(mock_worker *m);

/* The data free of a call held for a later reply: its request is done, answered or left. */
static void call_free(void *p)
{
    mock_call *c = p;
    if (c->in_line)
        leave_line(c->m, c);
    else if (c->in_slot)
        free_slot(c->m);
    free(c->instructions);
    free(c);
}

/* ---- small helpers ---- */

static uint64_t mock_now_ms(const mock_worker *m)
{
    return uv_now(m->loop);
}

static double jittered(mock_worker *m, double ms)
{
    if (ms <= 0)
        return 0;
    double j = m->cfg.jitter * (2.0 * sky__mock_rand01(&m->rng) - 1.0);
    double v = ms * (1.0 + j);
    return v > 0 ? v : 0;
}

static void count_status(mock_worker *m, int status)
{
    if (status >= 0 && status < 600)
        ST_ADD(m->st.by_status[status], 1);
}

static void add_request_id(sky_server_req *r, mock_worker *m)
{
    char id[48];
    sky_span client_id;
    size_t len = sky__mock_format_id(id, "req_", m->index, ++m->next_id);
    sky_server_add_header(r, "x-request-id", sky_span_make(id, len));
    sky_server_add_header(r, "apim-request-id", sky_span_make(id, len));
    if (sky_server_req_header(r, "x-ms-client-request-id", &client_id))
        sky_server_add_header(r, "x-ms-client-request-id", client_id);
}

static void respond_json(mock_worker *m, sky_server_req *r, int status, json_t *body)
{
    count_status(m, status);
    add_request_id(r, m);
    sky_server_respond_json(r, status, body);
    json_decref(body);
}

/* The provider's error shape: OpenAI's {"error": {message,type,param,code}},
 * or Azure's {"error": {code, message}}. */
static void respond_error(mock_worker *m, sky_server_req *r, int azure, int status,
                          const char *type, const char *code, const char *message)
{
    json_t *err = azure ? json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message)
                        : json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", message, "type",
                                    type, "param", "code", code);
    if (err == NULL) {
        count_status(m, 500);
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{}"));
        return;
    }
    respond_json(m, r, status, err);
}

/* ---- rate limits ---- */

/* x-ratelimit-{limit,remaining,reset}-@p kind ("requests" or "tokens"). */
static void add_limit_headers(sky_server_req *r, const char *kind, int64_t limit, int64_t left,
                              const char *reset)
{
    char name[48], num[32];
    snprintf(name, sizeof(name), "x-ratelimit-limit-%s", kind);
    snprintf(num, sizeof(num), "%lld", (long long)limit);
    sky_server_add_header(r, name, sky_span_cstr(num));
    snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", kind);
    snprintf(num, sizeof(num), "%lld", (long long)(left < 0 ? 0 : left));
    sky_server_add_header(r, name, sky_span_cstr(num));
    snprintf(name, sizeof(name), "x-ratelimit-reset-%s", kind);
    sky_server_add_header(r, name, sky_span_cstr(reset));
}

static void add_ratelimit_headers(mock_worker *m, sky_server_req *r, const sky__mock_verdict *v)
{
    char dur[32];
    if (m->cfg.hide_ratelimit_headers || (m->cfg.rpm == 0 && m->cfg.tpm == 0))
        return;
    sky__mock_format_duration(v->reset_ms, dur, sizeof(dur));
    if (m->cfg.rpm > 0)
        add_limit_headers(r, "requests", m->cfg.rpm, v->req_left, dur);
    if (m->cfg.tpm > 0)
        add_limit_headers(r, "tokens", m->cfg.tpm, v->tok_left, dur);
}

static void respond_429(mock_worker *m, sky_server_req *r, const mock_call *c,
                        const sky__mock_verdict *v)
{
    char num[32], msg[256];
    int64_t secs = (v->retry_ms + 999) / 1000;
    if (v->by_tokens)
        ST_ADD(m->st.rate_limited_tokens, 1);
    else
        ST_ADD(m->st.rate_limited_requests, 1);
    add_ratelimit_headers(m, r, v);
    if (!m->cfg.hide_ratelimit_headers) {
        snprintf(num, sizeof(num), "%lld", (long long)(secs > 0 ? secs : 1));
        sky_server_add_header(r, "retry-after", sky_span_cstr(num));
        snprintf(num, sizeof(num), "%lld", (long long)v->retry_ms);
        sky_server_add_header(r, "retry-after-ms", sky_span_cstr(num));
    }
    snprintf(msg, sizeof(msg),
             "Rate limit reached for %s: limit %lld per minute. Please retry after %lld seconds.",
             v->by_tokens ? "tokens" : "requests",
             (long long)(v->by_tokens ? m->cfg.tpm : m->cfg.rpm), (long long)(secs ? secs : 1));
    respond_error(m, r, c->azure, 429, v->by_tokens ? "tokens" : "requests",
                  c->azure ? "429" : "rate_limit_exceeded", msg);
}

/* ---- auth and models ---- */

static int model_known(const mock_worker *m, const char *model)
{
    if (m->cfg.n_models == 0)
        return 1;
    for (size_t i = 0; i < m->cfg.n_models; i++)
        if (strcmp(model, m->cfg.models[i]) == 0)
            return 1;
    return 0;
}

static int key_ok(const mock_worker *m, sky_span key)
{
    for (size_t i = 0; i < m->cfg.n_keys; i++)
        if (sky_span_eq_cstr(key, m->cfg.keys[i]))
            return 1;
    return 0;
}

static int authorized(const mock_worker *m, const sky_server_req *r)
{
    sky_span v;
    if (m->cfg.n_keys == 0)
        return 1;
    if (sky_server_req_header(r, "api-key", &v) && key_ok(m, v))
        return 1;
    if (sky_server_req_header(r, "authorization", &v) && v.len > 7 &&
        strncasecmp(v.ptr, "Bearer ", 7) == 0)
        return key_ok(m, sky_span_make(v.ptr + 7, v.len - 7));
    return 0;
}

/* ---- reply bodies ---- */

static json_t *chat_body(const mock_call *c)
{
    sky_buf text;
    sky_buf_init(&text, 16u * 1024u * 1024u);
    if (sky__mock_words(&text, c->seed, c->n_tokens) < 0) {
        sky_buf_free(&text);
        return NULL;
    }
    json_t *body = json_pack(
        "{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s%},s:n,s:s}],s:{s:I,s:I,s:I},s:s}", "id", c->id,
        "object", "chat.completion", "created", (json_int_t)c->created, "model", c->model,
        "choices", "index", 0, "message", "role", "assistant", "content",
        text.data ? text.data : "", text.len, "logprobs", "finish_reason",
        c->has_max ? "length" : "stop", "usage", "prompt_tokens", (json_int_t)c->prompt_tokens,
        "completion_tokens", (json_int_t)c->n_tokens, "total_tokens",
        (json_int_t)(c->prompt_tokens + c->n_tokens), "system_fingerprint", "fp_skyio_mock");
    sky_buf_free(&text);
    return body;
}

static json_t *embed_vector(uint64_t seed, int dim)
{
    json_t *v = json_array();
    double norm = 0;
    uint64_t s = seed;
    double *tmp = malloc(sizeof(double) * (size_t)dim);
    if (v == NULL || tmp == NULL) {
        free(tmp);
        json_decref(v);
        return NULL;
    }
    for (int i = 0; i < dim; i++) {
        tmp[i] = sky__mock_rand01(&s) * 2.0 - 1.0;
        norm += tmp[i] * tmp[i];
    }
    norm = norm > 0 ? sqrt(norm) : 1;
    for (int i = 0; i < dim; i++)
        json_array_append_new(v, json_real(tmp[i] / norm));
    free(tmp);
    return v;
}

static json_t *embed_body(const mock_call *c)
{
    json_t *data = json_array();
    for (int i = 0; data && i < c->n_inputs; i++) {
        json_t *vec = embed_vector(c->seed + (uint64_t)i, c->dim);
        json_t *item =
            vec ? json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i, "embedding", vec)
                : NULL;
        if (item == NULL || json_array_append_new(data, item) < 0) {
            json_decref(data);
            return NULL;
        }
    }
    if (data == NULL)
        return NULL;
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", c->model,
                     "usage", "prompt_tokens", (json_int_t)c->prompt_tokens, "total_tokens",
                     (json_int_t)c->prompt_tokens);
}

/* The tokens generated for @p tokens a choice: a legacy completion has one choice per prompt. */
static int64_t generated(const mock_call *c, int tokens)
{
    return (int64_t)tokens * (c->kind == CALL_COMPLETION && c->n_inputs > 1 ? c->n_inputs : 1);
}

/* What the reply bodies of src/mock/apis.c need to know of @p c. */
static sky__mock_text call_text(const mock_call *c)
{
    sky__mock_text t = {.id = c->id,
                        .model = c->model,
                        .created = c->created,
                        .prompt_tokens = c->prompt_tokens,
                        .n_tokens = c->n_tokens,
                        .has_max = c->has_max,
                        .limit = c->has_max ? c->n_tokens : 0,
                        .n_inputs = c->n_inputs,
                        .seed = c->seed,
                        .instructions = c->instructions};
    return t;
}

static json_t *call_body(const mock_call *c)
{
    sky__mock_text t = call_text(c);
    switch (c->kind) {
    case CALL_CHAT:
        return chat_body(c);
    case CALL_EMBED:
        return embed_body(c);
    case CALL_RESPONSES:
        return sky__mock_responses_body(&t);
    case CALL_COMPLETION:
        return sky__mock_completion_body(&t);
    default:
        return sky__mock_moderation_body(&t);
    }
}

/* ---- faults ---- */

static int draw_fault(mock_worker *m, int stream)
{
    const sky_mock_faults *f = &m->cfg.faults;
    const double rates[FAULT_COUNT] = {
        f->http_500, f->http_502,  f->http_503,   f->reset,        f->hang,
        f->cut,      f->malformed, f->stream_cut, f->stream_error, f->content_filter};
    double total = 0;
    for (int i = 0; i < FAULT_COUNT; i++)
        total += rates[i];
    if (total <= 0)
        return FAULT_NONE;
    double x = sky__mock_rand01(&m->rng), acc = 0;
    for (int i = 0; i < FAULT_COUNT; i++) {
        acc += rates[i];
        if (x < acc) {
            if ((i == FAULT_STREAM_CUT || i == FAULT_STREAM_ERROR || i == FAULT_CONTENT_FILTER) &&
                !stream)
                return FAULT_NONE;
            if (i == FAULT_MALFORMED && stream)
                return FAULT_NONE;
            return i;
        }
    }
    return FAULT_NONE;
}

/* Answer with the fault @p c->fault; returns 1 when it answered (or chose not to). */
static int apply_fault(mock_worker *m, sky_server_req *r, mock_call *c)
{
    static const char malformed[] = "{\"id\": \"chatcmpl-broken\", \"choices\": [{\"index\": 0, ";
    switch (c->fault) {
    case FAULT_500:
    case FAULT_502:
    case FAULT_503: {
        int status = c->fault == FAULT_500 ? 500 : c->fault == FAULT_502 ? 502 : 503;
        respond_error(m, r, c->azure, status, "server_error",
                      c->azure ? "InternalServerError" : "server_error",
                      "The server had an error while processing your request (injected fault).");
        return 1;
    }
    case FAULT_RESET:
        sky_server_reset(r);
        return 1;
    case FAULT_HANG:
        return 1; /* never answer: the request lives until the client leaves */
    case FAULT_MALFORMED:
        count_status(m, 200);
        add_request_id(r, m);
        sky_server_respond(r, 200, "application/json",
                           sky_span_make(malformed, sizeof(malformed) - 1));
        return 1;
    default:
        return 0;
    }
}

static void send_cut(mock_worker *m, sky_server_req *r, mock_call *c)
{
    json_t *body = call_body(c);
    size_t len = 0;
    char *text = body ? sky_json_dump(body, &len) : NULL;
    json_decref(body);
    if (text == NULL) {
        sky_server_abort(r);
        return;
    }
    count_status(m, 200);
    add_request_id(r, m);
    sky_server_stream_start(r, 200, "application/json", (int64_t)len);
    (void)sky_server_stream_write(r, sky_span_make(text, len / 2), 0);
    sky_server_abort(r);
    free(text);
}

/* ---- plain replies ---- */

/*
 * A chat reply assembled from fragments (src/mock/reply.c), on the stack
 * when it is small, as it is in the benchmarks. Fails, answering nothing,
 * when the model name cannot be a JSON string or memory runs out; the
 * caller then answers through jansson.
 */
static int send_chat_fast(mock_worker *m, sky_server_req *r, const mock_call *c)
{
    char local[1024];
    sky__mock_chat_reply reply = {.id = sky_span_cstr(c->id),
                                  .created = c->created,
                                  .prompt_tokens = c->prompt_tokens,
                                  .n_tokens = c->n_tokens,
                                  .has_max = c->has_max,
                                  .seed = c->seed};
    int rc = sky__mock_json_name_get(&m->model_json, c->model, &reply.model_json);
    if (rc < 0)
        return rc;
    size_t size = sky__mock_chat_reply_size(&reply);
    char *out = size <= sizeof(local) ? local : malloc(size);
    if (out == NULL)
        return SKY_ENOMEM;
    size_t len = sky__mock_chat_reply_write(&reply, out);
    ST_ADD(m->st.completion_tokens, (uint64_t)c->n_tokens);
    count_status(m, 200);
    add_request_id(r, m);
    sky_server_respond(r, 200, "application/json", sky_span_make(out, len));
    if (out != local)
        free(out);
    return 0;
}

static void send_reply(mock_worker *m, sky_server_req *r, mock_call *c)
{
    if (c->fault == FAULT_CUT) {
        send_cut(m, r, c);
        return;
    }
    if (c->kind == CALL_CHAT && send_chat_fast(m, r, c) == 0)
        return;
    json_t *body = call_body(c);
    if (body == NULL) {
        respond_error(m, r, c->azure, 500, "server_error", "server_error", "out of memory");
        return;
    }
    ST_ADD(m->st.completion_tokens, GENERATES(c->kind) ? (uint64_t)generated(c, c->n_tokens) : 0);
    respond_json(m, r, 200, body);
}

/* ---- streamed replies ---- */

/* One SSE event holding @p chunk (consumed, may be NULL after a failed pack). */
static int send_json_event(sky_server_req *r, json_t *chunk)
{
    size_t len = 0;
    char *text = chunk ? sky_json_dump(chunk, &len) : NULL;
    json_decref(chunk);
    if (text == NULL)
        return SKY_ENOMEM;
    int rc = sky_server_sse_send(r, sky_span_make(text, len));
    free(text);
    return rc;
}

static int send_chunk(sky_server_req *r, const mock_call *c, const char *content, int role,
                      const char *finish)
{
    json_t *delta = role      ? json_pack("{s:s,s:s}", "role", "assistant", "content", "")
                    : content ? json_pack("{s:s}", "content", content)
                              : json_object();
    json_t *chunk =
        delta ? json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:i,s:o,s:n,s:s?}]}", "id", c->id, "object",
                          "chat.completion.chunk", "created", (json_int_t)c->created, "model",
                          c->model, "system_fingerprint", "fp_skyio_mock", "choices", "index", 0,
                          "delta", delta, "logprobs", "finish_reason", finish)
              : NULL;
    if (chunk == NULL)
        return SKY_ENOMEM;
    if (finish == NULL) {
        /* "finish_reason": null, as the providers send it. */
        json_object_set_new(json_array_get(json_object_get(chunk, "choices"), 0), "finish_reason",
                            json_null());
    }
    return send_json_event(r, chunk);
}

static int send_usage_chunk(sky_server_req *r, const mock_call *c)
{
    if (c->kind == CALL_COMPLETION) {
        sky__mock_text t = call_text(c);
        return send_json_event(r, sky__mock_completion_usage_chunk(&t));
    }
    json_t *chunk = json_pack(
        "{s:s,s:s,s:I,s:s,s:[],s:{s:I,s:I,s:I}}", "id", c->id, "object", "chat.completion.chunk",
        "created", (json_int_t)c->created, "model", c->model, "choices", "usage", "prompt_tokens",
        (json_int_t)c->prompt_tokens, "completion_tokens", (json_int_t)c->n_tokens, "total_tokens",
        (json_int_t)(c->prompt_tokens + c->n_tokens));
    return send_json_event(r, chunk);
}

/* Event @p ev of a streamed response, with its type; a Responses stream has no [DONE]. */
static int send_response_event(sky_server_req *r, mock_call *c, int ev, const char *delta,
                               const char *stop_reason, int tokens)
{
    sky__mock_text t = call_text(c);
    const char *type = NULL;
    t.n_tokens = tokens;
    t.stop_reason = stop_reason;
    json_t *e = sky__mock_responses_event(&t, ev, c->seq++, delta, &type);
    size_t len = 0;
    char *text = e ? sky_json_dump(e, &len) : NULL;
    json_decref(e);
    if (text == NULL)
        return SKY_ENOMEM;
    int rc = sky_server_sse_send_event(r, type, sky_span_make(text, len));
    free(text);
    return rc;
}

/* What a stream sends before its first token. */
static void stream_open(sky_server_req *r, mock_call *c)
{
    if (c->kind == CALL_CHAT) {
        (void)send_chunk(r, c, NULL, 1, NULL);
        return;
    }
    for (int ev = SKY__RE_CREATED; c->kind == CALL_RESPONSES && ev <= SKY__RE_PART_ADDED; ev++)
        (void)send_response_event(r, c, ev, NULL, NULL, 0);
}

static int send_token(sky_server_req *r, mock_call *c, const char *word)
{
    if (c->kind == CALL_RESPONSES)
        return send_response_event(r, c, SKY__RE_DELTA, word, NULL, 0);
    if (c->kind != CALL_COMPLETION)
        return send_chunk(r, c, word, 0, NULL);
    /* a chunk for each prompt's choice, each with words of its own */
    sky__mock_text t = call_text(c);
    int rc = send_json_event(r, sky__mock_completion_chunk(&t, 0, word, NULL));
    for (int i = 1; rc == 0 && i < c->n_inputs; i++) {
        char own[64];
        snprintf(own, sizeof(own), "%s%s", c->sent ? " " : "",
                 sky__mock_word(c->seed + (uint64_t)i, c->sent));
        rc = send_json_event(r, sky__mock_completion_chunk(&t, i, own, NULL));
    }
    return rc;
}

/*
 * End a stream after @p tokens tokens for @p finish ("stop", "length" or "content_filter"):
 * the last chunk, the usage chunk when asked for and [DONE]; for the Responses API the
 * "done" events and response.completed or response.incomplete.
 */
static void stream_close(mock_worker *m, sky_server_req *r, mock_call *c, const char *finish,
                         int tokens)
{
    if (c->kind == CALL_RESPONSES) {
        const char *stop = strcmp(finish, "content_filter") == 0 ? finish : NULL;
        for (int ev = SKY__RE_TEXT_DONE; ev <= SKY__RE_END; ev++)
            (void)send_response_event(r, c, ev, NULL, stop, tokens);
        (void)sky_server_stream_write(r, sky_span_make("", 0), 1);
    } else {
        sky__mock_text t = call_text(c);
        if (c->kind != CALL_COMPLETION)
            (void)send_chunk(r, c, NULL, 0, finish);
        for (int i = 0; c->kind == CALL_COMPLETION && i < c->n_inputs; i++)
            (void)send_json_event(r, sky__mock_completion_chunk(&t, i, "", finish));
        if (c->include_usage)
            (void)send_usage_chunk(r, c);
        (void)sky_server_stream_write(r, SKY_SPAN_LIT("data: [DONE]\n\n"), 1);
    }
    ST_ADD(m->st.completion_tokens, (uint64_t)generated(c, tokens));
}

static void stream_finish(mock_worker *m, sky_server_req *r, mock_call *c)
{
    stream_close(m, r, c, c->has_max ? "length" : "stop", c->n_tokens);
}

static void stream_step(sky_server_req *r, void *data);

/* Half-way through a stream: the faults that end it early, each in its own way. */
static void stream_fault(mock_worker *m, sky_server_req *r, mock_call *c)
{
    static const char error_event[] =
        "data: {\"error\":{\"message\":\"The server had an error while processing your "
        "request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}"
        "\n\n";
    switch (c->fault) {
    case FAULT_CUT:
        sky_server_abort(r);
        break;
    case FAULT_STREAM_ERROR:
        if (c->kind == CALL_RESPONSES) {
            (void)send_response_event(r, c, SKY__RE_ERROR, NULL, NULL, c->sent);
            (void)sky_server_stream_write(r, sky_span_make("", 0), 1);
            break;
        }
        (void)sky_server_stream_write(r, sky_span_make(error_event, sizeof(error_event) - 1), 1);
        break;
    case FAULT_CONTENT_FILTER:
        stream_close(m, r, c, "content_filter", c->sent);
        break;
    default: /* FAULT_STREAM_CUT */
        (void)sky_server_stream_write(r, sky_span_make("", 0), 1);
        break;
    }
}

/* Send the tokens that are due now; schedule the next; end when all are out. */
static void stream_step(sky_server_req *r, void *data)
{
    mock_call *c = data;
    mock_worker *m = c->m;
    int cut_at = c->n_tokens / 2;
    do {
        if (c->fault != FAULT_NONE && c->sent >= cut_at) {
            stream_fault(m, r, c);
            return;
        }
        if (c->sent >= c->n_tokens) {
            stream_finish(m, r, c);
            return;
        }
        char word[64];
        snprintf(word, sizeof(word), "%s%s", c->sent ? " " : "", sky__mock_word(c->seed, c->sent));
        (void)send_token(r, c, word);
        c->sent++;
    } while (c->per_token_ms <= 0);
    if (sky_server_req_after(r, (uint64_t)jittered(m, c->per_token_ms), stream_step) < 0)
        sky_server_abort(r);
}

static void stream_begin(sky_server_req *r, void *data)
{
    mock_call *c = data;
    count_status(c->m, 200);
    add_request_id(r, c->m);
    sky_server_add_header(r, "cache-control", SKY_SPAN_LIT("no-cache"));
    sky_server_stream_start(r, 200, "text/event-stream", -1);
    stream_open(r, c);
    stream_step(r, c);
}

static void delayed_reply(sky_server_req *r, void *data)
{
    mock_call *c = data;
    send_reply(c->m, r, c);
}

/* ---- request parsing ---- */

static int64_t count_message_chars(const json_t *messages)
{
    size_t i, chars = 0;
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        const json_t *content = json_object_get(msg, "content");
        if (json_is_string(content)) {
            chars += json_string_length(content);
        } else if (json_is_array(content)) {
            size_t j;
            json_t *part;
            json_array_foreach(content, j, part) chars += strlen(sky_json_str(part, "text", ""));
        }
    }
    return (int64_t)chars;
}

/* The reply is @p max tokens long when the request set a limit (0: it did not). */
static void set_length(mock_call *c, int64_t max)
{
    c->has_max = max > 0;
    c->n_tokens = max > 0 ? (int)(max > 100000 ? 100000 : max) : c->n_tokens;
}

/* Read a chat request; returns NULL and answers 400 when it is not one. */
static const char *parse_chat(mock_call *c, const json_t *req)
{
    const json_t *messages = json_object_get(req, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return "'messages' is required and must be a non-empty array";
    int64_t max = sky_json_int(req, "max_completion_tokens", sky_json_int(req, "max_tokens", 0));
    if (max < 0)
        return "'max_tokens' must be positive";
    set_length(c, max);
    c->stream = sky_json_bool(req, "stream", 0);
    c->include_usage = sky_json_bool(json_object_get(req, "stream_options"), "include_usage", 0);
    c->prompt_tokens = sky__mock_estimate_tokens((size_t)count_message_chars(messages)) +
                       4 * (int64_t)json_array_size(messages);
    return NULL;
}

static const char *parse_embed(mock_call *c, const json_t *req)
{
    const json_t *input = json_object_get(req, "input");
    size_t chars = 0;
    if (json_is_string(input)) {
        c->n_inputs = 1;
        chars = json_string_length(input);
    } else if (json_is_array(input) && json_array_size(input) > 0) {
        size_t i;
        json_t *v;
        c->n_inputs = (int)json_array_size(input);
        json_array_foreach(input, i, v) chars +=
            json_is_string(v) ? json_string_length(v) : 4 * json_array_size(v);
    } else {
        return "'input' is required: a string or an array";
    }
    int64_t dim = sky_json_int(req, "dimensions", c->dim);
    if (dim <= 0 || dim > 65536)
        return "'dimensions' must be between 1 and 65536";
    c->dim = (int)dim;
    c->prompt_tokens = sky__mock_estimate_tokens(chars);
    return NULL;
}

static const char *parse_responses(mock_call *c, const json_t *req)
{
    const json_t *input = json_object_get(req, "input");
    if (!json_is_string(input) && !json_is_array(input))
        return "'input' is required: a string or an array of input items";
    c->stream = sky_json_bool(req, "stream", 0);
    int64_t max = sky_json_int(req, "max_output_tokens", 0);
    if (max < 0)
        return "'max_output_tokens' must be positive";
    set_length(c, max);
    const json_t *instructions = json_object_get(req, "instructions");
    int64_t chars = sky__mock_input_chars(input) + sky__mock_input_chars(instructions);
    if (json_is_string(instructions) &&
        (c->instructions = strdup(json_string_value(instructions))) == NULL)
        return "out of memory";
    c->prompt_tokens = sky__mock_estimate_tokens((size_t)chars);
    return NULL;
}

static const char *parse_completion(mock_call *c, const json_t *req)
{
    const json_t *prompt = json_object_get(req, "prompt");
    if (!json_is_string(prompt) && (!json_is_array(prompt) || json_array_size(prompt) == 0))
        return "'prompt' is required: a string, an array of strings or of token ids";
    c->stream = sky_json_bool(req, "stream", 0);
    c->include_usage = sky_json_bool(json_object_get(req, "stream_options"), "include_usage", 0);
    int64_t max = sky_json_int(req, "max_tokens", 0);
    if (max < 0)
        return "'max_tokens' must be positive";
    set_length(c, max);
    c->prompt_tokens = sky__mock_estimate_tokens((size_t)sky__mock_input_chars(prompt));
    /* one choice per prompt: a string or token ids are one, a list of them several */
    const json_t *first = json_array_get(prompt, 0);
    c->n_inputs = json_is_string(first) || json_is_array(first) ? (int)json_array_size(prompt) : 1;
    if (c->n_inputs > 128)
        return "'prompt' may hold at most 128 prompts in one request";
    return NULL;
}

static const char *parse_moderation(mock_call *c, const json_t *req)
{
    const json_t *input = json_object_get(req, "input");
    if (!json_is_string(input) && (!json_is_array(input) || json_array_size(input) == 0))
        return "'input' is required: a string or a non-empty array";
    /* strings are judged one by one; text and image parts together, as one input */
    c->n_inputs = json_is_string(json_array_get(input, 0)) ? (int)json_array_size(input) : 1;
    if (c->n_inputs > 2048)
        return "'input' may hold at most 2048 strings in one request";
    c->prompt_tokens = sky__mock_estimate_tokens((size_t)sky__mock_input_chars(input));
    return NULL;
}

/* Read the request of a call of kind c->kind; NULL, or what is wrong with it. */
static const char *parse_call(mock_call *c, const json_t *req)
{
    switch (c->kind) {
    case CALL_CHAT:
        return parse_chat(c, req);
    case CALL_EMBED:
        return parse_embed(c, req);
    case CALL_RESPONSES:
        return parse_responses(c, req);
    case CALL_COMPLETION:
        return parse_completion(c, req);
    default:
        return parse_moderation(c, req);
    }
}

_Static_assert(CALL_MODERATION + 1 == SKY__MOCK_CALL_KINDS, "the call kinds of internal.h");

const char *sky__mock_parse_request(int kind, const json_t *req, int default_tokens, int dim,
                                    sky__mock_request *out)
{
    mock_call c;
    memset(&c, 0, sizeof(c));
    c.kind = kind;
    c.n_tokens = default_tokens;
    c.dim = dim;
    const char *problem =
        kind >= 0 && kind < SKY__MOCK_CALL_KINDS ? parse_call(&c, req) : "unknown kind of call";
    free(c.instructions);
    memset(out, 0, sizeof(*out));
    out->stream = c.stream;
    out->include_usage = c.include_usage;
    out->has_max = c.has_max;
    out->n_tokens = c.n_tokens;
    out->dim = c.dim;
    out->n_inputs = c.n_inputs;
    out->prompt_tokens = c.prompt_tokens;
    return problem;
}

/* snprintf's "%s" with its truncation, without the cost of a format. */
static void copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void call_init(mock_worker *m, mock_call *c, int kind, int azure, sky_span deployment)
{
    memset(c, 0, sizeof(*c));
    c->m = m;
    c->kind = kind;
    c->azure = azure;
    c->fault = FAULT_NONE;
    c->n_tokens = m->cfg.default_completion_tokens;
    c->dim = m->cfg.embedding_dim;
    c->per_token_ms = m->cfg.per_token_ms;
    c->created = (int64_t)time(NULL); /* the vDSO's clock: no system call */
    static const char *const prefixes[] = {"chatcmpl-", "embd-", "resp_", "cmpl-", "modr-"};
    sky__mock_format_id(c->id, prefixes[kind], m->index, ++m->next_id);
    if (deployment.len)
        snprintf(c->model, sizeof(c->model), "%.*s", (int)deployment.len, deployment.ptr);
}

/* ---- the chat and embeddings handler ---- */

/* Charge @p c to the shared limiter; answers 429 and returns 0 when refused. */
static int take_limit(mock_worker *m, sky_server_req *r, const mock_call *c)
{
    sky__mock_verdict v;
    int64_t cost = c->prompt_tokens + (GENERATES(c->kind) ? generated(c, c->n_tokens) : 0);
    sky_mock *owner = m->owner;
    uv_mutex_lock(&owner->limiter_lock);
    sky__mock_limiter_take(&owner->limiter, mock_now_ms(m), cost, &v);
    uv_mutex_unlock(&owner->limiter_lock);
    if (!v.allowed) {
        respond_429(m, r, c, &v);
        return 0;
    }
    add_ratelimit_headers(m, r, &v);
    return 1;
}

static int admit(mock_worker *m, sky_server_req *r, mock_call *c)
{
    /* Without limits every request passes and no header tells of them: skip
     * the lock, which the workers of --threads would otherwise pass between them. */
    int limited = m->cfg.rpm > 0 || m->cfg.tpm > 0;
    if (limited && !take_limit(m, r, c))
        return 0;
    ST_ADD(m->st.prompt_tokens, (uint64_t)c->prompt_tokens);
    return 1;
}

/* Draw this call's fault and answer with it when it is one answered at once. */
static int fault_answered(mock_worker *m, sky_server_req *r, mock_call *c)
{
    c->fault = draw_fault(m, c->stream);
    if (c->fault != FAULT_NONE)
        ST_ADD(m->st.faults[c->fault], 1);
    return apply_fault(m, r, c);
}

/* Time to the reply (to the first token of a stream), jittered. */
static double reply_delay(mock_worker *m, const mock_call *c)
{
    double delay = GENERATES(c->kind) && !c->stream
                       ? m->cfg.ttft_ms + m->cfg.per_token_ms * c->n_tokens
                       : m->cfg.ttft_ms;
    return jittered(m, delay);
}

/* A copy of @p c held as @p r's data, for a reply later; NULL (answered 500) without memory. */
static mock_call *hold_call(mock_worker *m, sky_server_req *r, mock_call *c)
{
    mock_call *held = malloc(sizeof(*held));
    if (held == NULL) {
        respond_error(m, r, c->azure, 500, "server_error", "server_error", "out of memory");
        return NULL;
    }
    *held = *c;
    c->instructions = NULL; /* the held copy owns it now */
    held->req = r;
    sky_server_req_set_data(r, held, call_free);
    return held;
}

/* Answer the held call @p c after @p delay ms: the whole reply, or a stream's first token. */
static void answer_after(mock_worker *m, sky_server_req *r, mock_call *c, double delay)
{
    if (c->stream)
        ST_ADD(m->st.streams, 1);
    if (c->stream && c->include_usage)
        ST_ADD(m->st.streams_with_usage, 1);
    if (delay < 0.5) {
        if (c->stream)
            stream_begin(r, c);
        else
            send_reply(m, r, c);
        return;
    }
    if (sky_server_req_after(r, (uint64_t)(delay + 0.5), c->stream ? stream_begin : delayed_reply) <
        0)
        respond_error(m, r, c->azure, 500, "server_error", "server_error", "out of memory");
}

/* A held call's turn has come (at once, or after its wait in line). */
static void serve_held(sky_server_req *r, void *data)
{
    mock_call *c = data;
    if (!fault_answered(c->m, r, c)) {
        answer_after(c->m, r, c, reply_delay(c->m, c));
    } else if (c->fault == FAULT_HANG && c->in_slot) {
        /* h2o does not see an HTTP/1.1 client leave while its request waits, so a hung
         * call would hold its slot for good: it gives the slot up at once */
        c->in_slot = 0;
        free_slot(c->m);
    }
}

/* ---- --capacity: N calls served at once, the rest wait in line ---- */

static void join_line(mock_worker *m, mock_call *c)
{
    c->in_line = 1;
    c->in_line_at_ms = mock_now_ms(m);
    c->next_in_line = NULL;
    if (m->line_tail)
        m->line_tail->next_in_line = c;
    else
        m->line_head = c;
    m->line_tail = c;
    uint64_t n = ST_ADD(m->queued, 1) + 1;
    if (n > ST_GET(m->peak_queued))
        __atomic_store_n(&m->peak_queued, n, __ATOMIC_RELAXED);
}

/* A call that waited in line is gone (the client left): take it out. */
static void leave_line(mock_worker *m, mock_call *c)
{
    mock_call **pp = &m->line_head, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->next_in_line;
    }
    if (*pp == NULL)
        return;
    *pp = c->next_in_line;
    if (m->line_tail == c)
        m->line_tail = prev;
    c->in_line = 0;
    __atomic_fetch_sub(&m->queued, 1, __ATOMIC_RELAXED);
}

/*
 * A served call ended: the slot goes to the oldest in line. Its turn starts from its
 * own timer, not from here, since this runs while h2o disposes of the ended request.
 */
static void free_slot(mock_worker *m)
{
    mock_call *next = m->line_head;
    if (next == NULL) {
        __atomic_fetch_sub(&m->busy, 1, __ATOMIC_RELAXED);
        return;
    }
    leave_line(m, next);
    next->in_slot = 1;
    ST_ADD(m->st.capacity_waits, 1);
    ST_ADD(m->st.capacity_wait_ms, mock_now_ms(m) - next->in_line_at_ms);
    if (sky_server_req_after(next->req, 0, serve_held) < 0)
        respond_error(m, next->req, next->azure, 500, "server_error", "server_error",
                      "out of memory");
}

static void dispatch_in_line(mock_worker *m, sky_server_req *r, mock_call *c)
{
    mock_call *held = hold_call(m, r, c);
    if (held == NULL)
        return;
    if (ST_GET(m->busy) < (uint64_t)m->cfg.capacity) {
        ST_ADD(m->busy, 1);
        held->in_slot = 1;
        serve_held(r, held);
    } else {
        join_line(m, held);
    }
}

static void dispatch(mock_worker *m, sky_server_req *r, mock_call *c)
{
    if (m->cfg.capacity > 0) {
        dispatch_in_line(m, r, c);
        return;
    }
    if (fault_answered(m, r, c))
        return;
    double delay = reply_delay(m, c);
    if (!c->stream && delay < 0.5) {
        send_reply(m, r, c); /* the fast path: nothing held */
        return;
    }
    mock_call *held = hold_call(m, r, c);
    if (held)
        answer_after(m, r, held, delay);
}

/* ---- --overload-rps and --poison ---- */

/* nginx's limit_req without delay: a bucket of burst + 1 calls, refilled at the rate. */
static int overloaded(mock_worker *m)
{
    sky_mock *o = m->owner;
    double rate = m->cfg.overload_rps, cap = (double)m->cfg.overload_burst + 1.0;
    uint64_t now = mock_now_ms(m);
    uv_mutex_lock(&o->limiter_lock);
    if (o->overload_at_ms == 0)
        o->overload_tokens = cap;
    else if (now > o->overload_at_ms)
        o->overload_tokens += rate * (double)(now - o->overload_at_ms) / 1000.0;
    if (o->overload_tokens > cap)
        o->overload_tokens = cap;
    o->overload_at_ms = now ? now : 1;
    int refused = o->overload_tokens < 1.0;
    if (!refused)
        o->overload_tokens -= 1.0;
    uv_mutex_unlock(&o->limiter_lock);
    return refused;
}

static void respond_overloaded(mock_worker *m, sky_server_req *r)
{
    static const char page[] = "<html><body><h1>503 Service Temporarily Unavailable</h1>"
                               "<p>too many requests (skyio mock --overload-rps)</p></body></html>";
    static const char anthropic[] = "{\"type\":\"error\",\"error\":{\"type\":"
                                    "\"overloaded_error\",\"message\":\"Overloaded\"}}";
    int status = m->cfg.overload_status;
    ST_ADD(m->st.overloaded, 1);
    count_status(m, status);
    if (status == 529)
        sky_server_respond(r, 529, "application/json",
                           sky_span_make(anthropic, sizeof(anthropic) - 1));
    else
        sky_server_respond(r, status, "text/html", sky_span_make(page, sizeof(page) - 1));
}

/* Whether the body hashed to @p seed is one of the --poison fraction that always fail. */
static int poisoned(const mock_worker *m, uint64_t seed)
{
    uint64_t h = seed ^ 0x9e3779b97f4a7c15ull;
    return m->cfg.poison > 0 && (double)(sky__mock_rand(&h) >> 11) * 0x1.0p-53 < m->cfg.poison;
}

int sky__mock_json_media_type(sky_span v)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;
    if (v.len < n || strncasecmp(v.ptr, want, n) != 0)
        return 0;
    return v.len == n || v.ptr[n] == ';' || v.ptr[n] == ' ' || v.ptr[n] == '\t';
}

/*
 * OpenAI answers a body of any other type with 400 unsupported_content_type, and
 * servers built on FastAPI (vLLM among them) do not read the body as JSON at all:
 * a client that forgets the header must fail here too, not first in production.
 */
static int content_type_ok(mock_worker *m, sky_server_req *r, int azure)
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
    respond_error(m, r, azure, 400, "invalid_request_error", "unsupported_content_type", msg);
    return 0;
}

/*
 * --refuse-status: what a provider answers every request of an account it will not serve.
 * Returns 1 when it answered.
 */
static int refuse_account(mock_worker *m, sky_server_req *r, int azure)
{
    int status = m->cfg.refuse_status;
    if (status == 0)
        return 0;
    const char *code = m->cfg.refuse_code ? m->cfg.refuse_code
                       : status == 403    ? "PermissionDenied"
                       : status == 429    ? "insufficient_quota"
                                          : "refused";
    const char *msg = strcmp(code, "insufficient_quota") == 0
                          ? "You exceeded your current quota, please check your plan and "
                            "billing details."
                      : status == 403 ? "The principal lacks the required data action to "
                                        "perform this operation."
                                      : "This account is refused (skyio mock --refuse-status).";
    respond_error(m, r, azure, status, status == 429 ? code : "invalid_request_error", code, msg);
    return 1;
}

static void count_call(mock_worker *m, int kind)
{
    uint64_t *const counters[] = {&m->st.chat, &m->st.embeddings, &m->st.responses,
                                  &m->st.completions, &m->st.moderations};
    ST_ADD(*counters[kind], 1);
}

static void serve_call(mock_worker *m, sky_server_req *r, mock_call *c);

static void handle_call(mock_worker *m, sky_server_req *r, int kind, int azure, sky_span deployment)
{
    mock_call c;
    json_t *req = NULL;
    sky_error err;
    sky_error_clear(&err);
    call_init(m, &c, kind, azure, deployment);
    if (!authorized(m, r)) {
        ST_ADD(m->st.auth_failures, 1);
        respond_error(m, r, azure, 401, "invalid_request_error", azure ? "401" : "invalid_api_key",
                      azure ? "Access denied due to invalid subscription key or wrong API "
                              "endpoint. Make sure to provide a valid key for an active "
                              "subscription and use a correct regional API endpoint for your "
                              "resource."
                            : "Incorrect API key provided.");
        return;
    }
    sky_span api_version;
    if (azure && !sky_server_req_query_param(r, "api-version", &api_version)) {
        respond_error(m, r, 1, 404, "invalid_request_error", "404",
                      "Resource not found: the api-version query parameter is missing.");
        return;
    }
    if (!content_type_ok(m, r, azure) || refuse_account(m, r, azure))
        return;
    if (sky_json_parse(sky_server_req_body(r), &req, &err) < 0 || !json_is_object(req)) {
        char msg[SKY_ERROR_MESSAGE_MAX + 64];
        snprintf(msg, sizeof(msg), "The request body is not valid JSON: %s",
                 err.code ? err.message : "expected an object");
        json_decref(req);
        respond_error(m, r, azure, 400, "invalid_request_error", "invalid_json", msg);
        return;
    }
    if (!azure) {
        /* moderations alone may leave the model to the provider */
        const char *model =
            sky_json_str(req, "model", kind == CALL_MODERATION ? "omni-moderation-latest" : NULL);
        if (model == NULL) {
            json_decref(req);
            respond_error(m, r, 0, 400, "invalid_request_error", "missing_model",
                          "you must provide a model parameter");
            return;
        }
        copy_name(c.model, sizeof(c.model), model);
    }
    const char *problem = parse_call(&c, req);
    if (problem == NULL) {
        sky_span body = sky_server_req_body(r);
        c.seed = sky__mock_hash(body.ptr, body.len, 0);
    }
    json_decref(req);
    if (problem)
        respond_error(m, r, azure, 400, "invalid_request_error", "invalid_request", problem);
    else
        serve_call(m, r, &c);
    free(c.instructions);
}

/* A call read without fault: the model known, the limits passed, it is answered. */
static void serve_call(mock_worker *m, sky_server_req *r, mock_call *c)
{
    int kind = c->kind, azure = c->azure;
    /* the provider's own moderation model is served whatever --model lists */
    int default_moderation =
        kind == CALL_MODERATION && strcmp(c->model, "omni-moderation-latest") == 0;
    if (!default_moderation && !model_known(m, c->model)) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "The model `%.128s` does not exist or you do not have access to it.", c->model);
        respond_error(m, r, azure, 404, "invalid_request_error",
                      azure ? "DeploymentNotFound" : "model_not_found", msg);
        return;
    }
    count_call(m, kind);
    if (m->cfg.overload_rps > 0 && overloaded(m)) {
        respond_overloaded(m, r);
        return;
    }
    if (poisoned(m, c->seed)) {
        ST_ADD(m->st.poisoned, 1);
        respond_error(m, r, azure, 500, "server_error",
                      azure ? "InternalServerError" : "server_error",
                      "The server cannot process this request (skyio mock --poison).");
        return;
    }
    if (admit(m, r, c))
        dispatch(m, r, c);
}

/* The OpenAI routes of each kind of call: the model is in the body. */
static void serve(sky_server_req *r, void *ud, int kind)
{
    mock_worker *m = ud;
    ST_ADD(m->st.requests, 1);
    handle_call(m, r, kind, 0, sky_span_make("", 0));
}

static void on_chat(sky_server_req *r, void *ud)
{
    serve(r, ud, CALL_CHAT);
}

static void on_embeddings(sky_server_req *r, void *ud)
{
    serve(r, ud, CALL_EMBED);
}

static void on_responses(sky_server_req *r, void *ud)
{
    serve(r, ud, CALL_RESPONSES);
}

static void on_completions(sky_server_req *r, void *ud)
{
    serve(r, ud, CALL_COMPLETION);
}

static void on_moderations(sky_server_req *r, void *ud)
{
    serve(r, ud, CALL_MODERATION);
}

/* /openai/deployments/{deployment}/chat/completions, .../embeddings and .../completions */
static void on_azure(sky_server_req *r, void *ud)
{
    static const char prefix[] = "/openai/deployments/";
    mock_worker *m = ud;
    sky_span path = sky_server_req_path(r);
    const char *dep = path.ptr + sizeof(prefix) - 1;
    size_t rest = path.len - (sizeof(prefix) - 1);
    const char *slash = memchr(dep, '/', rest);
    ST_ADD(m->st.requests, 1);
    if (slash == NULL || slash == dep) {
        respond_error(m, r, 1, 404, "invalid_request_error", "404", "Resource not found");
        return;
    }
    sky_span deployment = sky_span_make(dep, (size_t)(slash - dep));
    sky_span op = sky_span_make(slash, rest - (size_t)(slash - dep));
    sky_span method = sky_server_req_method(r);
    if (!sky_span_eq_cstr(method, "POST")) {
        respond_error(m, r, 1, 405, "invalid_request_error", "405", "Method not allowed");
        return;
    }
    if (sky_span_eq_cstr(op, "/chat/completions"))
        handle_call(m, r, CALL_CHAT, 1, deployment);
    else if (sky_span_eq_cstr(op, "/embeddings"))
        handle_call(m, r, CALL_EMBED, 1, deployment);
    else if (sky_span_eq_cstr(op, "/completions"))
        handle_call(m, r, CALL_COMPLETION, 1, deployment);
    else
        respond_error(m, r, 1, 404, "invalid_request_error", "404", "Resource not found");
}

/* GET /v1/models and /v1/models/{id} count as model calls and want a key, as OpenAI's do. */
static int models_call_ok(mock_worker *m, sky_server_req *r)
{
    ST_ADD(m->st.requests, 1);
    ST_ADD(m->st.models, 1);
    if (authorized(m, r))
        return 1;
    ST_ADD(m->st.auth_failures, 1);
    respond_error(m, r, 0, 401, "invalid_request_error", "invalid_api_key",
                  "Incorrect API key provided.");
    return 0;
}

static json_t *model_object(const char *id)
{
    return json_pack("{s:s,s:s,s:i,s:s}", "id", id, "object", "model", "created", 1700000000,
                     "owned_by", "skyio-mock");
}

/* The models of --model, or else a few well-known names (every name is served then). */
static void on_models(sky_server_req *r, void *ud)
{
    static const char *const known[] = {"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini",
                                        "text-embedding-3-small", "text-embedding-3-large"};
    mock_worker *m = ud;
    if (!models_call_ok(m, r))
        return;
    size_t n = m->cfg.n_models ? m->cfg.n_models : SKY_ARRAY_LEN(known);
    json_t *data = json_array();
    for (size_t i = 0; data && i < n; i++) {
        const char *id = m->cfg.n_models ? m->cfg.models[i] : known[i];
        if (json_array_append_new(data, model_object(id)) < 0) {
            json_decref(data);
            data = NULL;
        }
    }
    json_t *body = data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL;
    if (body == NULL) {
        respond_error(m, r, 0, 500, "server_error", "server_error", "out of memory");
        return;
    }
    respond_json(m, r, 200, body);
}

/* The model object of @p id, or 404 when --model does not serve it. */
static void on_model_id(mock_worker *m, sky_server_req *r, const char *id)
{
    if (!model_known(m, id)) {
        char msg[256];
        snprintf(msg, sizeof(msg), "The model '%.128s' does not exist", id);
        respond_error(m, r, 0, 404, "invalid_request_error", "model_not_found", msg);
        return;
    }
    json_t *body = model_object(id);
    if (body == NULL) {
        respond_error(m, r, 0, 500, "server_error", "server_error", "out of memory");
        return;
    }
    respond_json(m, r, 200, body);
}

/* GET /v1/models/{id}: the SDKs' models.retrieve, which tools use to check a name. */
static void on_model(sky_server_req *r, void *ud)
{
    static const char v1[] = "/v1/models/", bare[] = "/models/";
    mock_worker *m = ud;
    if (!models_call_ok(m, r))
        return;
    sky_span path = sky_server_req_path(r);
    size_t skip = path.len >= sizeof(v1) - 1 && memcmp(path.ptr, v1, sizeof(v1) - 1) == 0
                      ? sizeof(v1) - 1
                      : sizeof(bare) - 1;
    /* the SDKs escape the id as a path segment: "org/name" arrives as org%2Fname */
    int n = 0;
    char *id = path.len > skip && path.len - skip <= 1024
                   ? curl_easy_unescape(NULL, path.ptr + skip, (int)(path.len - skip), &n)
                   : NULL;
    if (id == NULL || n == 0 || strlen(id) != (size_t)n || n > 256) {
        curl_free(id);
        respond_error(m, r, 0, 404, "invalid_request_error", "model_not_found",
                      "No model id in the path.");
        return;
    }
    on_model_id(m, r, id);
    curl_free(id);
}

/* ---- statistics ---- */

static void sum_stats(const sky_mock *m, mock_stats *out, uint64_t *conns, uint64_t *in_flight)
{
    memset(out, 0, sizeof(*out));
    *conns = *in_flight = 0;
    for (int w = 0; w < m->n_workers; w++) {
        const mock_stats *st = &m->workers[w].st;
        const uint64_t *src = (const uint64_t *)st;
        uint64_t *dst = (uint64_t *)out;
        for (size_t i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
            dst[i] += ST_GET(src[i]);
        *conns += sky_server_connections(m->workers[w].srv);
        *in_flight += sky_server_requests_in_flight(m->workers[w].srv);
    }
}

/* --capacity: the limit, the calls served and waiting now, and the waits so far. */
static json_t *capacity_stats(const sky_mock *m, const mock_stats *st)
{
    uint64_t busy = 0, queued = 0, peak = 0;
    for (int w = 0; w < m->n_workers; w++) {
        busy += ST_GET(m->workers[w].busy);
        queued += ST_GET(m->workers[w].queued);
        peak += ST_GET(m->workers[w].peak_queued);
    }
    return json_pack("{s:i,s:I,s:I,s:I,s:I,s:I}", "limit", m->cfg.capacity * m->n_workers, "busy",
                     (json_int_t)busy, "queued", (json_int_t)queued, "peak_queued",
                     (json_int_t)peak, "waits", (json_int_t)st->capacity_waits, "wait_ms",
                     (json_int_t)st->capacity_wait_ms);
}

json_t *sky_mock_stats(const sky_mock *m)
{
    mock_stats st;
    uint64_t conns, in_flight;
    json_t *status = json_object(), *faults = json_object();
    char key[8];
    sum_stats(m, &st, &conns, &in_flight);
    for (int i = 0; status && i < 600; i++) {
        if (st.by_status[i] == 0)
            continue;
        snprintf(key, sizeof(key), "%d", i);
        json_object_set_new(status, key, json_integer((json_int_t)st.by_status[i]));
    }
    for (int i = 0; faults && i < FAULT_COUNT; i++)
        json_object_set_new(faults, fault_names[i], json_integer((json_int_t)st.faults[i]));
    json_t *out = json_pack(
        "{s:I,s:o,s:I,s:I,s:I,s:o,s:{s:I,s:I},s:{s:I,s:I,s:I},s:I,s:I,s:I,s:I,s:i}", "requests",
        (json_int_t)st.requests, "responses", status, "rate_limited",
        (json_int_t)(st.rate_limited_requests + st.rate_limited_tokens), "rate_limited_requests",
        (json_int_t)st.rate_limited_requests, "rate_limited_tokens",
        (json_int_t)st.rate_limited_tokens, "faults", faults, "tokens", "prompt",
        (json_int_t)st.prompt_tokens, "completion", (json_int_t)st.completion_tokens, "endpoints",
        "chat", (json_int_t)st.chat, "embeddings", (json_int_t)st.embeddings, "models",
        (json_int_t)st.models, "streams", (json_int_t)st.streams, "auth_failures",
        (json_int_t)st.auth_failures, "connections", (json_int_t)conns, "in_flight",
        (json_int_t)(in_flight > 0 ? in_flight - 1 : 0), "threads", m->n_workers);
    if (out) {
        json_object_set_new(out, "streams_with_usage",
                            json_integer((json_int_t)st.streams_with_usage));
        json_t *ep = json_object_get(out, "endpoints");
        json_object_set_new(ep, "responses", json_integer((json_int_t)st.responses));
        json_object_set_new(ep, "completions", json_integer((json_int_t)st.completions));
        json_object_set_new(ep, "moderations", json_integer((json_int_t)st.moderations));
        json_object_set_new(out, "identity", sky__mock_identity_stats(m->identity));
        json_object_set_new(out, "overloaded", json_integer((json_int_t)st.overloaded));
        json_object_set_new(out, "poisoned", json_integer((json_int_t)st.poisoned));
        json_object_set_new(out, "capacity", capacity_stats(m, &st));
    }
    return out;
}

static void on_stats(sky_server_req *r, void *ud)
{
    mock_worker *w = ud;
    json_t *st = sky_mock_stats(w->owner);
    if (st == NULL) {
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{}"));
        return;
    }
    sky_server_respond_json(r, 200, st);
    json_decref(st);
}

static void on_reset(sky_server_req *r, void *ud)
{
    mock_worker *w = ud;
    sky_mock *m = w->owner;
    for (int i = 0; i < m->n_workers; i++) {
        uint64_t *p = (uint64_t *)&m->workers[i].st;
        for (size_t k = 0; k < sizeof(mock_stats) / sizeof(uint64_t); k++)
            __atomic_store_n(&p[k], 0, __ATOMIC_RELAXED);
    }
    uv_mutex_lock(&m->limiter_lock);
    sky__mock_limiter_init(&m->limiter, m->cfg.rpm, m->cfg.tpm, m->cfg.window_ms);
    uv_mutex_unlock(&m->limiter_lock);
    sky__mock_identity_reset(m->identity);
    sky_server_respond(r, 200, "application/json", SKY_SPAN_LIT("{\"reset\":true}"));
}

/* ---- workers ---- */

static int add_routes(mock_worker *w)
{
    int rc = 0;
    sky_server *s = w->srv;
    rc = rc ? rc : sky_server_route(s, "POST", "/v1/chat/completions", 0, on_chat, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/chat/completions", 0, on_chat, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/openai/v1/chat/completions", 0, on_chat, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/v1/embeddings", 0, on_embeddings, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/embeddings", 0, on_embeddings, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/openai/v1/embeddings", 0, on_embeddings, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/v1/responses", 0, on_responses, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/responses", 0, on_responses, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/openai/v1/responses", 0, on_responses, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/v1/completions", 0, on_completions, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/completions", 0, on_completions, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/openai/v1/completions", 0, on_completions, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/v1/moderations", 0, on_moderations, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/moderations", 0, on_moderations, w);
    rc = rc ? rc : sky_server_route(s, "GET", "/v1/models", 0, on_models, w);
    rc = rc ? rc : sky_server_route(s, "GET", "/models", 0, on_models, w);
    rc = rc ? rc : sky_server_route(s, "GET", "/v1/models/", 1, on_model, w);
    rc = rc ? rc : sky_server_route(s, "GET", "/models/", 1, on_model, w);
    rc = rc ? rc : sky_server_route(s, NULL, "/openai/deployments/", 1, on_azure, w);
    rc = rc ? rc : sky_server_route(s, "GET", "/mock/stats", 0, on_stats, w);
    rc = rc ? rc : sky_server_route(s, "POST", "/mock/reset", 0, on_reset, w);
    rc = rc ? rc : sky__mock_arm_routes(s, w->owner->arm);
    /* last: it holds a POST catch-all for /{tenant}/oauth2/v2.0/token */
    rc = rc ? rc : sky__mock_identity_routes(s, w->owner->identity);
    return rc;
}

static int worker_listen(mock_worker *w, int port, sky_error *err)
{
    sky_server_options so;
    const sky_mock_config *c = &w->cfg;
    sky_server_options_init(&so);
    so.host = c->host;
    so.port = port;
    so.tls_cert_file = c->tls_cert_file;
    so.tls_key_file = c->tls_key_file;
    so.max_request_body = c->max_body;
    so.reuse_port = w->owner->n_workers > 1;
    int rc = sky_server_new(w->loop, &so, &w->srv, err);
    if (rc == 0 && (rc = add_routes(w)) < 0)
        sky_error_set(err, rc, "cannot add routes");
    if (rc == 0)
        rc = sky_server_listen(w->srv, err);
    return rc;
}

static void on_worker_down(sky_server *s, void *ud)
{
    mock_worker *w = ud;
    (void)s;
    if (w->has_thread) {
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_stop(w->loop);
    }
    /* Wakes coalesce: the count says how many are down. */
    __atomic_fetch_add(&w->owner->workers_down, 1, __ATOMIC_ACQ_REL);
    uv_async_send(&w->owner->down);
}

static void on_wake(uv_async_t *a)
{
    mock_worker *w = a->data;
    sky_server_shutdown(w->srv, w->owner->grace_ms, on_worker_down, w);
}

static void worker_main(void *arg)
{
    mock_worker *w = arg;
    uv_run(w->loop, UV_RUN_DEFAULT);
    /* down: free the server on its own loop, and let its handles close */
    sky_server_free(w->srv);
    w->srv = NULL;
    for (int i = 0; i < 8; i++)
        uv_run(w->loop, UV_RUN_NOWAIT);
}

static void on_all_down(uv_async_t *a)
{
    sky_mock *m = a->data;
    if (__atomic_load_n(&m->workers_down, __ATOMIC_ACQUIRE) < m->n_workers)
        return;
    void (*cb)(sky_mock *, void *) = m->shutdown_cb;
    m->shutdown_cb = NULL;
    if (cb)
        cb(m, m->shutdown_ud);
}

static void worker_init(sky_mock *m, mock_worker *w, int index)
{
    w->owner = m;
    w->index = index;
    w->cfg = m->cfg;
    w->rng = m->cfg.seed + (uint64_t)index * 0x9e3779b97f4a7c15ull;
}

static int start_threads(sky_mock *m, sky_error *err)
{
    int port = sky_server_port(m->workers[0].srv);
    for (int i = 1; i < m->n_workers; i++) {
        mock_worker *w = &m->workers[i];
        if (uv_loop_init(&w->own_loop) != 0)
            return sky_error_set(err, SKY_EINTERNAL, "cannot make a loop for thread %d", i);
        w->loop = &w->own_loop;
        uv_async_init(w->loop, &w->wake, on_wake);
        w->wake.data = w;
        int rc = worker_listen(w, port, err);
        if (rc < 0)
            return rc;
        if (uv_thread_create(&w->thread, worker_main, w) != 0)
            return sky_error_set(err, SKY_EINTERNAL, "cannot start thread %d", i);
        w->has_thread = 1;
    }
    return 0;
}

int sky_mock_start(uv_loop_t *loop, const sky_mock_config *c, sky_mock **out_mock, sky_error *err)
{
    int n = c->threads > 0 ? c->threads : 1;
    sky_mock *m = calloc(1, sizeof(*m));
    mock_worker *ws = calloc((size_t)n, sizeof(*ws));
    if (m == NULL || ws == NULL) {
        free(m);
        free(ws);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    m->loop = loop;
    m->cfg = *c;
    m->n_workers = n;
    m->workers = ws;
    if ((m->arm = sky__mock_arm_new(&c->arm)) == NULL ||
        (m->identity = sky__mock_identity_new(&c->identity)) == NULL) {
        sky__mock_arm_free(m->arm);
        free(m);
        free(ws);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    uv_mutex_init(&m->limiter_lock);
    sky__mock_limiter_init(&m->limiter, c->rpm, c->tpm, c->window_ms);
    uv_async_init(loop, &m->down, on_all_down);
    m->down.data = m;
    for (int i = 0; i < n; i++)
        worker_init(m, &ws[i], i);
    ws[0].loop = loop;
    int rc = worker_listen(&ws[0], c->port, err);
    if (rc == 0 && n > 1)
        rc = start_threads(m, err);
    if (rc < 0) {
        sky_mock_free(m);
        return rc;
    }
    *out_mock = m;
    return 0;
}

int sky_mock_port(const sky_mock *m)
{
    return sky_server_port(m->workers[0].srv);
}

void sky_mock_shutdown(sky_mock *m, uint64_t grace_ms, void (*cb)(sky_mock *, void *),
                       void *user_data)
{
    m->shutdown_cb = cb;
    m->shutdown_ud = user_data;
    m->grace_ms = grace_ms;
    __atomic_store_n(&m->workers_down, 0, __ATOMIC_RELEASE);
    sky_server_shutdown(m->workers[0].srv, grace_ms, on_worker_down, &m->workers[0]);
    for (int i = 1; i < m->n_workers; i++)
        if (m->workers[i].has_thread)
            uv_async_send(&m->workers[i].wake);
}

void sky_mock_free(sky_mock *m)
{
    if (m == NULL)
        return;
    for (int i = 1; i < m->n_workers; i++) {
        mock_worker *w = &m->workers[i];
        if (w->has_thread) {
            uv_thread_join(&w->thread);
            uv_loop_close(&w->own_loop);
        } else if (w->loop) {
            /* set up but never started: tear down here */
            sky_server_free(w->srv);
            uv_close((uv_handle_t *)&w->wake, NULL);
            uv_run(w->loop, UV_RUN_DEFAULT);
            uv_loop_close(w->loop);
        }
    }
    sky_server_free(m->workers[0].srv);
    for (int i = 0; i < m->n_workers; i++)
        sky__mock_json_name_free(&m->workers[i].model_json);
    uv_close((uv_handle_t *)&m->down, NULL);
    uv_mutex_destroy(&m->limiter_lock);
    sky__mock_arm_free(m->arm);
    sky__mock_identity_free(m->identity);
    free(m->workers);
    free(m);
}
