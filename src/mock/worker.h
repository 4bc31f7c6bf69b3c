/*
 * The server side of `skyio mock`, shared by its handler files: the mock and its
 * workers (one loop and one server each), a model call on its way to a reply, and
 * the steps that answer it. The route table is routes.c; a call's path from request
 * to reply is call.c.
 */
#ifndef SKY_MOCK_WORKER_H
#define SKY_MOCK_WORKER_H

#include <uv.h>

#include "skyio/server.h"
#include "internal.h"

/* The faults a call can draw (faults.c), in the order of sky_mock_faults. */
enum {
    SKY__FAULT_NONE = -1,
    SKY__FAULT_500,
    SKY__FAULT_502,
    SKY__FAULT_503,
    SKY__FAULT_RESET,
    SKY__FAULT_HANG,
    SKY__FAULT_CUT,
    SKY__FAULT_MALFORMED,
    SKY__FAULT_STREAM_CUT,
    SKY__FAULT_STREAM_ERROR,
    SKY__FAULT_CONTENT_FILTER,
    SKY__FAULT_COUNT
};

/* Their names in /mock/stats, as in the "faults" object of --config. */
extern const char *const sky__mock_fault_names[SKY__FAULT_COUNT];

/* Counters of one worker, summed by /mock/stats: every field a uint64_t. */
typedef struct sky__mock_stats {
    uint64_t requests;
    uint64_t by_status[600];
    uint64_t rate_limited_requests, rate_limited_tokens;
    uint64_t auth_failures;
    uint64_t faults[SKY__FAULT_COUNT];
    uint64_t prompt_tokens, completion_tokens;
    uint64_t chat, embeddings, models, streams;
    uint64_t responses, completions, moderations;
    uint64_t streams_with_usage; /* that asked for stream_options.include_usage */
    uint64_t overloaded;         /* refused by --overload-rps */
    uint64_t poisoned;           /* answered 500 by --poison */
    uint64_t capacity_waits;     /* calls that waited in line for --capacity */
    uint64_t capacity_wait_ms;   /* and the time they waited, in all */
} sky__mock_stats;

/* Updated by one worker, read by any: relaxed atomics. */
#define ST_ADD(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define ST_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

struct sky__mock_call;

/*
 * One loop, one server. With --threads N there are N workers, each listening
 * on the same port (SO_REUSEPORT) from its own thread; worker 0 runs on the
 * caller's loop. Everything a request touches is the worker's own, but for
 * the rate limiter, which is shared under a lock.
 */
typedef struct sky__mock_worker {
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
    sky__mock_stats st;
    /* --capacity: calls being served, and those waiting in line (oldest first); the
     * gauges are read by /mock/stats from any thread */
    uint64_t busy, queued, peak_queued;
    struct sky__mock_call *line_head, *line_tail;
} sky__mock_worker;

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
    sky__mock_worker *workers;
    uv_async_t down; /* workers say they are down */
    int workers_down;
    uint64_t grace_ms;
    void (*shutdown_cb)(sky_mock *, void *);
    void *shutdown_ud;
};

/* What one model call needs after the handler returns. */
typedef struct sky__mock_call {
    sky__mock_worker *m;
    int kind; /* SKY__MOCK_CHAT, ... */
    int azure;
    int stream;
    int include_usage;
    int fault;
    int n_tokens; /* reply length */
    int sent;     /* tokens streamed so far */
    int seq;      /* Responses: the next event's sequence_number */
    int has_max;  /* the request set max_tokens: finish_reason is "length" */
    int dim;
    int base64; /* embeddings as base64 of little-endian float32s */
    int n_inputs;
    int64_t prompt_tokens;
    int max_tokens; /* the request's token limit, 0: none */
    int n_choices;  /* chat: "n" */
    int format;     /* chat: SKY__FORMAT_* */
    json_t *schema; /* chat: the json_schema (owned), or NULL */
    json_t *tool;   /* chat: the function it must call (owned), or NULL */
    json_t *plan;   /* chat stream of more than prose: sky__mock_chat_plan() (owned), or NULL */
    int plan_steps; /* its ticks: the most pieces of a choice */
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
    struct sky__mock_call *next_in_line;
} sky__mock_call;

static inline uint64_t sky__mock_now_ms(const sky__mock_worker *m)
{
    return uv_now(m->loop);
}

/* @p ms varied by up to +-jitter of itself. */
static inline double sky__mock_jittered(sky__mock_worker *m, double ms)
{
    if (ms <= 0)
        return 0;
    double j = m->cfg.jitter * (2.0 * sky__mock_rand01(&m->rng) - 1.0);
    double v = ms * (1.0 + j);
    return v > 0 ? v : 0;
}

/* The calls whose reply is generated text, which costs time per token and counts as
 * completion. */
static inline int sky__mock_generates(int kind)
{
    return kind == SKY__MOCK_CHAT || kind == SKY__MOCK_RESPONSES || kind == SKY__MOCK_COMPLETIONS;
}

/* The route table (routes.c): every route of worker @p w's server. 0 or a SKY_E code. */
int sky__mock_routes_add(sky__mock_worker *w);

/* Answers (respond.c): each counts its status and carries a request id. */
void sky__mock_count_status(sky__mock_worker *m, int status);
void sky__mock_add_request_id(sky_server_req *r, sky__mock_worker *m);
/* Answer @p body (consumed). */
void sky__mock_respond_json(sky__mock_worker *m, sky_server_req *r, int status, json_t *body);
/* The provider's error shape: OpenAI's, or Azure's when @p azure. */
void sky__mock_respond_error(sky__mock_worker *m, sky_server_req *r, int azure, int status,
                             const char *type, const char *code, const char *message);
void sky__mock_add_ratelimit_headers(sky__mock_worker *m, sky_server_req *r,
                                     const sky__mock_verdict *v);
void sky__mock_respond_429(sky__mock_worker *m, sky_server_req *r, const sky__mock_call *c,
                           const sky__mock_verdict *v);

/* Keys and models (access.c). */
int sky__mock_authorized(const sky__mock_worker *m, const sky_server_req *r);
int sky__mock_model_known(const sky__mock_worker *m, const char *model);

/* A model call from request to reply (call.c): an Azure one when @p azure, whose model is
 * @p deployment, or the body's when that is empty. */
void sky__mock_handle_call(sky__mock_worker *m, sky_server_req *r, int kind, int azure,
                           sky_span deployment);
/* A copy of @p c held as @p r's data, for a reply later; NULL (answered 500) without memory. */
sky__mock_call *sky__mock_hold_call(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c);
/* A held call's turn has come (at once, or after its wait in line); a server timer callback. */
void sky__mock_serve_held(sky_server_req *r, void *data);

/* --capacity (capacity.c): N calls served at once, the rest wait in line. */
void sky__mock_dispatch_in_line(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c);
void sky__mock_leave_line(sky__mock_worker *m, sky__mock_call *c);
void sky__mock_free_slot(sky__mock_worker *m);

/* Failures on purpose (faults.c). */
/* Draw @p c's fault and answer with it when it is one answered at once: returns 1 then. */
int sky__mock_fault_answered(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c);
/* The whole body announced, half of it sent, then the connection cut. */
void sky__mock_send_cut(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c);
/* --overload-rps: nonzero when this call is over the rate; and the answer then. */
int sky__mock_overloaded(sky__mock_worker *m);
void sky__mock_respond_overloaded(sky__mock_worker *m, sky_server_req *r);
/* --poison: nonzero when the body hashed to @p seed always fails. */
int sky__mock_poisoned(const sky__mock_worker *m, uint64_t seed);
/* --refuse-status: answers as a provider refuses an account; returns 1 when it answered. */
int sky__mock_refuse_account(sky__mock_worker *m, sky_server_req *r, int azure);

/* Chat replies (chat.c). */
/* Nonzero when @p c's reply is the plain one reply.c writes fast. */
int sky__mock_chat_is_plain(const sky__mock_call *c);
json_t *sky__mock_chat_body(const sky__mock_call *c);
/* Azure's first stream chunk: no choices, the prompt's filter results. */
json_t *sky__mock_prompt_filter_chunk(void);
/* Choice @p index's message: its text (prose or JSON) in *out_text, or its tool call in
 * *out_tool_call; its length in tokens and finish_reason. New references, or NULL. */
void sky__mock_chat_choice(const sky__mock_call *c, int index, json_t **out_text,
                           json_t **out_tool_call, int *out_tokens, const char **out_finish);
/* How a stream sends @p c's choices (new reference, NULL when out of memory): per choice
 * {"pieces": [text, one per tick], "call": its tool call or null, "finish", "tokens"}; the
 * ticks it takes in *out_steps, the tokens of every choice in *out_tokens. */
json_t *sky__mock_chat_plan(const sky__mock_call *c, int *out_steps, int *out_tokens);

/* Whole replies (plain.c). */
/* The tokens generated for @p tokens a choice: a legacy completion has one choice per prompt. */
int64_t sky__mock_generated(const sky__mock_call *c, int tokens);
/* What the reply bodies of apis.c need to know of @p c. */
sky__mock_text sky__mock_call_text(const sky__mock_call *c);
/* The reply body of @p c (new reference), NULL when out of memory. */
json_t *sky__mock_call_body(const sky__mock_call *c);
void sky__mock_send_reply(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c);
/* sky__mock_send_reply() as a server timer callback of a held call. */
void sky__mock_delayed_reply(sky_server_req *r, void *data);

/* Streamed replies (stream.c): the first event, then a token per tick; a server timer
 * callback of a held call. */
void sky__mock_stream_begin(sky_server_req *r, void *data);

/* The handlers the route table names. */
void sky__mock_on_chat(sky_server_req *r, void *worker);            /* openai.c */
void sky__mock_on_embeddings(sky_server_req *r, void *worker);      /* openai.c */
void sky__mock_on_responses(sky_server_req *r, void *worker);       /* openai.c */
void sky__mock_on_completions(sky_server_req *r, void *worker);     /* openai.c */
void sky__mock_on_moderations(sky_server_req *r, void *worker);     /* openai.c */
void sky__mock_on_azure(sky_server_req *r, void *worker);           /* openai.c */
void sky__mock_on_azure_responses(sky_server_req *r, void *worker); /* openai.c */
void sky__mock_on_models(sky_server_req *r, void *worker);          /* models.c */
void sky__mock_on_model(sky_server_req *r, void *worker);           /* models.c */
void sky__mock_on_stats(sky_server_req *r, void *worker);           /* stats.c */
void sky__mock_on_reset(sky_server_req *r, void *worker);           /* stats.c */
void sky__mock_on_arm(sky_server_req *r, void *arm);                /* arm.c */
void sky__mock_on_arm_stats(sky_server_req *r, void *arm);          /* arm.c */
void sky__mock_on_imds(sky_server_req *r, void *identity);          /* identity.c */
void sky__mock_on_app_service(sky_server_req *r, void *identity);   /* identity.c */
void sky__mock_on_entra(sky_server_req *r, void *identity);         /* identity.c */

#endif
