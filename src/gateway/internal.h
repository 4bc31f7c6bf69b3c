/* The gateway's parts, shared by its files (not installed). */
#ifndef SKY_GATEWAY_INTERNAL_H
#define SKY_GATEWAY_INTERNAL_H

#include "skyio/ai.h"
#include "skyio/buf.h"
#include "skyio/credential.h"
#include "skyio/gateway.h"
#include "skyio/http.h"
#include "skyio/pipeline.h"
#include "skyio/route.h"
#include "skyio/server.h"
#include "status.h"

/* The upstream operations a deployment serves, each with its URL. */
typedef enum gw_op {
    GW_OP_CHAT = 0,
    GW_OP_EMBEDDINGS,
    GW_OP_RESPONSES,
    GW_OP_COMPLETIONS,
    GW_OP_COUNT
} gw_op;

/* One deployment: its endpoint (the key inside), its pipeline, its URLs, and the router's
 * view of it (skyio/route.h). Owned by the gateway. */
typedef struct gw_deployment {
    char *model; /* the name clients use */
    /* OpenAI and compatible: the body's model upstream when it differs from model, else
     * NULL; Azure: the deployment's name (the body's model on its v1 Responses path) */
    char *upstream;
    int azure;
    char *label;         /* "model#i" for logs: never a URL with a key or a secret */
    sky_route_target rt; /* its pipeline (the same as pipe), weight and shadows */
    int chat_only;       /* speaks chat completions only: a Responses call is translated */
    sky_ai_endpoint ep;
    sky_pipeline *pipe;   /* held's, borrowed */
    struct gw_pipe *held; /* its pipeline, maybe shared with an older table (carry.c) */
    char *url[GW_OP_COUNT];
} gw_deployment;

/* A model, the indexes of its deployments in the gateway's list, and of the models its
 * requests fall back to in the gateway's models (the routing module's). */
typedef sky_route_model gw_model;

/* A key's lease of its budget shared by the gateways side by side (budget_lease.c,
 * budget_shared.c): what this gateway took from the bucket in Redis and has not spent. */
enum { GW_LEASE_NEW = 0, GW_LEASE_SHARED, GW_LEASE_LOCAL };
typedef struct gw_lease {
    int state;         /* GW_LEASE_*: no answer yet, leased, or Redis away (the local bucket) */
    int shared;        /* taken from the lease at least once: settlements go back to Redis */
    int leasing;       /* a lease on its way (one a key) */
    double reqs, toks; /* leased, not spent; below 0: spent ahead of a lease (a chunk at most) */
    double level_reqs, level_toks; /* the shared bucket at the last answer, less borrowed since */
    int64_t give_toks;             /* settlements, to go back with the next lease */
    int64_t need_toks;             /* the largest charge that did not fit since the last lease */
    uint64_t answered_ms, wait_ms; /* the last answer: when, and the bucket's wait */
    uint64_t next_ms;              /* no lease before this */
} gw_lease;

/* A key's budget: requests and tokens a minute, as buckets (see budget.c); 0: none. */
typedef struct gw_budget {
    double rpm, tpm;
    double reqs, toks; /* what is left in each bucket */
    uint64_t at_ms;    /* when they were last refilled */
    /* the key's use today, for its daily caps (daily.c); kept when the limits change */
    int64_t day; /* UTC days since the epoch the totals are of */
    int64_t day_tokens;
    double day_cost;
    int64_t synced_ms; /* when the shared counters were last asked (0: never) */
    gw_lease lease;    /* with a Redis store: the shared bucket's lease (budget_shared.c) */
} gw_budget;

enum { GW_BUDGET_REQUESTS = 1, GW_BUDGET_TOKENS };

/* A budget as one request saw it: what its x-ratelimit-* headers say. */
typedef struct gw_budget_view {
    double rpm, tpm;
    int64_t reqs_left, toks_left;
    uint64_t reqs_reset_ms, toks_reset_ms; /* until each bucket is full again */
    int refused;                           /* 0, GW_BUDGET_REQUESTS or GW_BUDGET_TOKENS */
    uint64_t retry_ms;                     /* refused: when it would fit */
    int64_t charged;                       /* taken: the tokens charged up front */
} gw_budget_view;

/* A client key as kept: name, hash, allowed models and budget, all owned. */
typedef struct gw_key {
    char *name;
    unsigned char sha256[SKY_GATEWAY_SHA256_LEN];
    char **models;
    size_t n_models;
    gw_budget *budget; /* the key's, shared by the loops (shared.c); NULL when out of memory */
    double daily_tokens, daily_cost; /* caps a UTC day (daily.c); 0: none */
} gw_key;

/* The longest x-request-id taken from a client (a longer one is replaced). */
#define GW_REQUEST_ID_MAX 128

/* A latency histogram with Prometheus's fixed buckets (seconds; see metrics.c). */
#define GW_LAT_BUCKETS 20
typedef struct gw_latency {
    uint64_t count;
    double sum;
    uint64_t buckets[GW_LAT_BUCKETS]; /* not cumulative */
} gw_latency;

typedef struct gw_metrics gw_metrics;
typedef struct gw_access_log gw_access_log;
typedef struct gw_shared gw_shared;
typedef struct gw_group gw_group;
typedef struct gw_routing_copy gw_routing_copy;
typedef struct gw_admin gw_admin;

/* A deployment as one loop saw it last, for /metrics (monitor.c). */
typedef struct gw_dep_gauges {
    char model[256];
    char label[320];
    double in_flight, concurrency, rpm, tpm, breaker;
} gw_dep_gauges;

/* The most loops (--threads) a gateway runs. */
#define GW_MAX_LOOPS 64

/* The routing: deployments, models, keys, as one config made them (table.c). Held by the
 * gateway while current and by each request that began on it. */
typedef struct gw_table {
    sky_gateway *g;
    int refs;
    gw_deployment *deps;
    size_t n_deps;
    gw_model *models;
    size_t n_models;
    gw_key *keys;
    size_t n_keys;
    struct gw_price *prices;      /* per model, in models' order (prices.c); NULL: none */
    struct gw_table *prev, *next; /* the gateway's tables: current and those still held */
} gw_table;

/* The response cache's lookups by outcome (cache.c, store_metrics.c). */
enum { GW_CACHE_HIT, GW_CACHE_MISSED, GW_CACHE_PARTIAL, GW_CACHE_BYPASSED, GW_CACHE_COUNTS };

struct sky_gateway {
    uv_loop_t *loop;
    sky_server *srv;
    sky_http_client *http;
    sky_headers *json_headers; /* Content-Type: application/json, for every upstream call */
    gw_table *table;           /* the current one */
    gw_table *tables;          /* every one still alive */
    int closing;               /* sky_gateway_free under way: it frees the tables */
    gw_shared *shared;         /* with the other loops: budgets, metrics (shared.c) */
    int index;                 /* this loop's, 0 for the caller's */
    int n_loops;
    gw_group *group;            /* loop 0 of several: the others (loops.c); else NULL */
    sky_credential *credential; /* Entra ID for Azure deployments without a key; NULL: none */
    uv_timer_t *monitor;        /* monitor.c */
    uint64_t monitor_due_ns;
    gw_access_log *access_log; /* NULL: none */
    size_t max_body;
    uint64_t rng;             /* the weighted choice's generator (not for secrets) */
    struct gw_request *live;  /* requests with an upstream call or a client, for free */
    struct gw_request *spare; /* ended requests' memory, for the next (proxy.c) */
    size_t n_spare;
    sky_gateway_shutdown_cb shutdown_cb;
    struct sky__store *cache; /* the response cache (cache.c); NULL: none; not owned */
    /* when it answers (cache_conf.c); not owned; atomic: a reload on loop 0 sets every loop's */
    const struct gw_cache_conf *cache_conf;
    uint64_t cache_counts[GW_CACHE_COUNTS]; /* lookups by outcome (GW_CACHE_HIT, ...) */
    struct sky__store *usage;     /* usage records (usage_store.c); NULL: none; not owned */
    struct gw_counters *counters; /* keys' daily use shared with other gateways; NULL: none */
    gw_admin *admin;              /* the admin API and its keys (admin.c); NULL: off */
    struct gw_reload_job *reload; /* a reload from the file under way (reload_file.c) */
    int reload_again;             /* asked for again meanwhile */
    void *shutdown_ud;
};

/* What the gateway reads of a request body: a few fields, no tree. */
typedef struct gw_body {
    char model[256]; /* NUL-terminated; a longer name is cut (and so matches no model) */
    int has_model;   /* a string "model" */
    int stream;      /* "stream": true */
    int64_t max_tokens;
    int temperature_zero; /* "temperature": a number equal to 0 (the cache's default rule) */
} gw_body;

/* Tokens a reply says it used; -1: it did not say. cached: of prompt, those the upstream
 * served from its prompt cache (-1 or 0 when it did not say). */
typedef struct gw_tokens {
    int64_t prompt, completion, total, cached;
} gw_tokens;

/* The response cache (cache.c): what a request asks of it; its key's length. */
enum { GW_CACHE_NONE = 0, GW_CACHE_USE, GW_CACHE_REFRESH };
#define GW_CACHE_KEY_LEN 64
typedef struct gw_cache_lookup gw_cache_lookup;

/* One client request through the gateway: alive while the client is there or an upstream
 * call is in flight, whichever ends last (see proxy.c). */
typedef struct gw_request {
    sky_gateway *g;
    gw_table *t;           /* the table it began on (held) */
    sky_server_req *sr;    /* NULL once the client is gone */
    sky_call *call;        /* the upstream call in flight, NULL between calls */
    const gw_model *asked; /* the model the client asked for */
    const gw_model *model; /* the one being tried: asked, then its fallbacks */
    size_t fell;           /* fallbacks of asked tried so far */
    gw_op op;
    int stream;
    int64_t est_tokens;
    sky_span body;        /* the client's body (the server's, valid while sr is) */
    gw_key *key;          /* the client's key, NULL when the gateway asks for none */
    gw_budget_view rl;    /* the key's budget as admission saw it (rl.charged: taken) */
    gw_tokens used;       /* what the answer says it used */
    uint64_t t0_ns;       /* when the request was read */
    uint64_t call_t0_ns;  /* when the call in flight started */
    uint64_t upstream_ns; /* the calls' time so far */
    char request_id[GW_REQUEST_ID_MAX + 1];
    /* the model the body names when it is a configured one (its name), else NULL: an Azure
     * path names the model, and the body may name another or none */
    const char *body_model;
    uint64_t tried; /* bit i: deployment i of the model was tried */
    size_t dep;     /* the deployment of the call in flight */
    int started;    /* a call went to a deployment (dep says which, the last) */
    int streaming;  /* the client's answer has begun: no failover any more */
    int status;     /* the status answered; 0 while none */
    char tail[2];   /* the last two bytes sent, to know an SSE event boundary */
    /* the response cache (cache.c): GW_CACHE_* asked, a lookup under way, hex SHA-256 */
    int cache_mode;
    int temperature_zero; /* the body's (gw_body) */
    gw_cache_lookup *lookup;
    char cache_key[GW_CACHE_KEY_LEN + 1];
    /* the Responses API (responses_turn.h): the body rebuilt with the earlier turns (q->body
     * points at it; NULL: the client's), the turn kept after the answer, whether the call
     * in flight is translated to chat and its stream's translator, why a translation was
     * refused (the client's mistake: 400) */
    char *own_body;
    struct gw_turn *turn;
    int xlate;
    struct gw_rc_stream *rcs;
    char refusal[256];
    struct gw_request *prev, *next;
} gw_request;

/* ---- body.c ---- */
/* Read @p body's model, stream and max_tokens. 0, or SKY_EJSON with @p err (the parser's
 * words) when it is not a JSON object. */
int sky__gw_body_read(sky_span body, gw_body *out, sky_error *err);
/* @p body with its root "model" set to @p model: a new string (free it), NULL on error. */
char *sky__gw_body_set_model(sky_span body, const char *model, size_t *out_len);

/* ---- keys.c ---- */
/* The key the request presents (Bearer or api-key) checked against the gateway's: 0 with
 * *out_key (NULL when the gateway asks for none), or -1 after answering 401. */
int sky__gw_authenticate(sky_gateway *g, sky_server_req *r, gw_key **out_key);
/* Whether @p key (NULL: any) may use @p model. */
int sky__gw_key_allows(const gw_key *key, const char *model);
/* The key the request presents (Bearer or api-key) into @p out (borrowed): 1, or 0. */
int sky__gw_presented_key(sky_server_req *r, sky_span *out);

/* ---- admin.c: keys made through the admin API (setter: admin.h) ---- */
/* The admin keys the loops share (a ring: new holds one reference; unref frees at 0). */
typedef struct gw_admin_ring gw_admin_ring;
gw_admin_ring *sky__gw_admin_ring_new(void);
void sky__gw_admin_ring_ref(gw_admin_ring *r);
void sky__gw_admin_ring_unref(gw_admin_ring *r);
/* The shared state's ring (made on first use), with a reference for the caller; NULL: OOM. */
gw_admin_ring *sky__gw_shared_admin_ring(gw_shared *s);
/* Whether the admin API is on (and so every model call needs a key). */
int sky__gw_admin_on(const sky_gateway *g);
/* The live admin key whose hash is @p hash, compared in constant time with each; or NULL. */
gw_key *sky__gw_admin_match(sky_gateway *g, const unsigned char *hash);
/* With the gateway: its keys are freed once the store's calls in flight have answered. */
void sky__gw_admin_free(gw_admin *a);
/* POST and GET /admin/keys; DELETE /admin/keys/{name}. */
void sky__gw_on_admin_keys(sky_server_req *r, void *gateway);
void sky__gw_on_admin_key(sky_server_req *r, void *gateway);

/* ---- record.c ---- */

/* One model call's outcome, as the metrics and the access log take it. Borrowed. */
typedef struct gw_record {
    const char *request_id;
    const char *key; /* the key's name; NULL when none */
    gw_op op;
    const char *model;      /* the configured model asked for; NULL when none matched */
    const char *asked;      /* what the client named, for the log only (never a label) */
    const char *deployment; /* the last deployment tried (its label); NULL when none */
    int status;             /* answered; 499 when the client left first */
    uint64_t total_ns;      /* from the request read to the answer's end */
    uint64_t upstream_ns;   /* of which upstream calls took */
    gw_tokens used;
    int stream;
    double cost;       /* of the tokens used, at the model's price (prices.c) */
    int priced;        /* the model has a price */
    gw_budget *budget; /* the key's, for its use today (daily.c); NULL when none */
    int capped;        /* the key has daily caps: its use is shared (usage_store.c) */
} gw_record;

/* Count @p r in the metrics and write its access log line. */
void sky__gw_record(sky_gateway *g, const gw_record *r);
/* The request's id into @p out (the client's x-request-id if sane, else a new one), and
 * the same as the answer's x-request-id header. */
void sky__gw_request_id(sky_server_req *r, char out[GW_REQUEST_ID_MAX + 1]);

/* ---- metrics.c (read and changed under the shared lock) ---- */
/* Empty counters; NULL on out of memory. */
gw_metrics *sky__gw_metrics_new(void);
void sky__gw_metrics_lag(gw_metrics *m, double seconds);
void sky__gw_metrics_free(gw_metrics *m);
void sky__gw_metrics_count(gw_metrics *m, const gw_record *r);
void sky__gw_metrics_reloaded(gw_metrics *m);
void sky__gw_metrics_reload_failed(gw_metrics *m);

/* ---- reload_file.c ---- */
typedef struct gw_reload_job gw_reload_job;
/* The gateway goes: a reload under way is dropped when it comes back. */
void sky__gw_reload_forget(sky_gateway *g);

/* ---- shared.c ---- */
gw_shared *sky__gw_shared_new(int n_loops);
void sky__gw_shared_free(gw_shared *s);
void sky__gw_shared_lock(gw_shared *s);
void sky__gw_shared_unlock(gw_shared *s);
/* The metrics (touch them under the lock). */
gw_metrics *sky__gw_shared_metrics(gw_shared *s);
/* The budget of the key named @p name, made full on first use or when its limits changed;
 * the same one for every loop and table. Take and settle it under the lock. NULL: OOM. */
gw_budget *sky__gw_shared_budget(gw_shared *s, const char *name, double rpm, double tpm,
                                 uint64_t now_ms);
/* The budget of the key named @p name as it stands (made, without limits, when there is
 * none yet: a key's use today may be known before its key is); NULL: OOM. Takes the lock. */
gw_budget *sky__gw_shared_budget_of(gw_shared *s, const char *name);
/* Usage counts for /metrics (daily.c, record.c; under the lock). */
typedef struct gw_usage_counts {
    uint64_t unpriced;         /* calls of a model without a price (cost 0) */
    uint64_t daily_refused[3]; /* by GW_DAILY_TOKENS, GW_DAILY_COST */
    uint64_t budget_local;     /* calls a shared budget let through alone (Redis away) */
    uint64_t budget_waited;    /* calls that waited for their key's lease on its way */
} gw_usage_counts;
gw_usage_counts *sky__gw_shared_usage_counts(gw_shared *s);
/* Loop @p loop's deployments as it sees them now (@p v malloc'd, taken over). */
void sky__gw_shared_set_view(gw_shared *s, int loop, gw_dep_gauges *v, size_t n);
/* Under the lock: loop @p loop's last view. */
size_t sky__gw_shared_view(const gw_shared *s, int loop, const gw_dep_gauges **out);
int sky__gw_shared_loops(const gw_shared *s);
/* A loop's stores as /metrics shows them (store_metrics.c), left in the shared state by each
 * loop (its monitor's tick) so that /metrics adds the loops up. */
typedef struct gw_store_view {
    int has_cache, has_usage;
    uint64_t cache[GW_CACHE_COUNTS];
    uint64_t usage_written, usage_lost, usage_queued, write_errors, usage_spilled;
} gw_store_view;
/* Under the lock: loop @p loop's view kept; every loop's last view added up into *out. */
void sky__gw_shared_set_stores(gw_shared *s, int loop, const gw_store_view *v);
void sky__gw_shared_stores(gw_shared *s, gw_store_view *out);
/* Conversation (@p scope, @p id) taken for a change by the caller's loop: 1, 0 when a loop
 * has it already (try again later), -1 when out of memory. Give it back when done. */
int sky__gw_shared_conv_take(gw_shared *s, const char *scope, const char *id);
void sky__gw_shared_conv_give(gw_shared *s, const char *scope, const char *id);
/* With several loops: the admitter of the deployment of @p key (its label and URL), one
 * rate limiter of options @p o learned from every loop's replies, made on first use (again
 * when its rpm or tpm changed); the same for every loop and table. Valid until the shared
 * state is freed. NULL: out of memory. */
const sky_rate_admitter *sky__gw_shared_rate(gw_shared *s, const char *key,
                                             const sky_ratelimit_options *o);

/* ---- monitor.c ---- */
/* The loop's 100 ms timer: its lag into the metrics, its deployments' view refreshed. */
int sky__gw_monitor_start(sky_gateway *g);
void sky__gw_monitor_stop(sky_gateway *g);
/* Leave this loop's view of its deployments in the shared state now. */
void sky__gw_monitor_refresh(sky_gateway *g);

/* ---- routing_copy.c ---- */
/* A deep copy of @p o's routing (deployments, fallbacks, keys); NULL on out of memory. */
gw_routing_copy *sky__gw_routing_copy(const sky_gateway_options *o);
const sky_gateway_options *sky__gw_routing_options(const gw_routing_copy *c);
/* Free it, every string wiped. */
void sky__gw_routing_free(gw_routing_copy *c);

/* ---- gateway.c and loops.c: the loops of --threads ---- */
/* One loop's gateway: its server (on @p port, shared by SO_REUSEPORT with the others
 * when there are several; -1: none yet), client, table, access log, monitor. */
int sky__gw_loop_new(uv_loop_t *loop, const sky_gateway_options *o, gw_shared *sh, int index,
                     int port, sky_gateway **out, sky_error *err);
void sky__gw_loop_free(sky_gateway *g);
/* The server of a gateway made with port -1, listening on @p port. */
int sky__gw_loop_listen(sky_gateway *g, const sky_gateway_options *o, int port, sky_error *err);
/* The loop's Entra ID credential chain, made on first need (it outlives the tables);
 * NULL with @p err filled when it cannot be made. */
sky_credential *sky__gw_credential(sky_gateway *g, sky_error *err);
/* Build a table from @p o and make it the current one. */
int sky__gw_swap_table(sky_gateway *g, const sky_gateway_options *o, sky_error *err);
/* Make loops 1..n-1, each listening on loop 0's port, and run them on threads of their
 * own (unless @p hold: sky__gw_start_loops runs them). */
int sky__gw_loops_start(sky_gateway *g, const sky_gateway_options *o, int hold, sky_error *err);
/* Loop @p index's gateway (0: @p g), NULL when there is none. Its fields belong to its
 * thread once it runs. */
sky_gateway *sky__gw_loop_at(sky_gateway *g, int index);
/* Each other loop builds @p o's table (copied) on its thread. */
void sky__gw_loops_reload(sky_gateway *g, const sky_gateway_options *o);
void sky__gw_loops_shutdown(sky_gateway *g, uint64_t grace_ms, sky_gateway_shutdown_cb cb,
                            void *user_data);
/* Free the other loops (their threads joined). */
void sky__gw_loops_free(sky_gateway *g);

/* ---- access_log.c ---- */
/* A log to @p path, appended ("-" or NULL: stderr): 0, or SKY_EIO / SKY_ENOMEM with @p err. */
int sky__gw_access_log_open(uv_loop_t *loop, const char *path, gw_access_log **out, sky_error *err);
void sky__gw_access_log_write(gw_access_log *l, const gw_record *r);
/* Say loop @p index in each line (a gateway of several loops). */
void sky__gw_access_log_set_loop(gw_access_log *l, int index);
/* Write what is left and close (after the loop has run the last write, if one is under way). */
void sky__gw_access_log_close(gw_access_log *l);

/* ---- tokens.c ---- */
/* The "usage" of a reply's JSON (at the root, or one level in): fills what it names. */
void sky__gw_tokens_read(sky_span json, gw_tokens *out);
/* The same, and whether @p json is JSON as jansson reads it: 0, SKY_EJSON (@p out then says
 * nothing) or SKY_ENOMEM. One pass serves the pipeline's check of a held answer. */
int sky__gw_tokens_check(sky_span json, gw_tokens *out);
/* The same from a stream chunk, when it holds a whole event line naming "usage". */
void sky__gw_tokens_from_chunk(sky_span chunk, gw_tokens *out);

/* ---- budget.c ---- */
/* Full buckets of @p rpm requests and @p tpm tokens a minute (0: no limit of that kind). */
void sky__gw_budget_init(gw_budget *b, double rpm, double tpm, uint64_t now_ms);
/* Charge one request of @p tokens (estimated) at @p now_ms: 0, or -1 when it does not fit
 * (nothing charged). @p out says what the headers say, either way. */
int sky__gw_budget_take(gw_budget *b, uint64_t now_ms, int64_t tokens, gw_budget_view *out);
/* The reply said @p used tokens of the @p charged taken up front: give back the rest (or
 * take what was missing). @p used < 0: unknown, the charge stands. */
void sky__gw_budget_settle(gw_budget *b, int64_t charged, int64_t used);
/* @p ms as OpenAI writes durations: "20ms", "1s", "1.500s", "6m0s", "1h2m3s". */
void sky__gw_format_duration(uint64_t ms, char *out, size_t len);
/* Add the x-ratelimit-* headers of @p v (the limits a key has) to the answer. */
void sky__gw_budget_headers(sky_server_req *r, const gw_budget_view *v);
/* Answer 429 as OpenAI does: retry-after, retry-after-ms, x-ratelimit-*, the error JSON. */
void sky__gw_budget_refuse(sky_server_req *r, const gw_key *key, const gw_budget_view *v);

/* The lease's rules (budget_lease.c, under the shared lock; time as an argument). A leased
 * budget's take: from the lease, or ahead of it while the shared bucket had room. */
struct sky__store_lease_ask;
struct sky__store_lease_answer;
int sky__gw_lease_take(gw_budget *b, uint64_t now_ms, int64_t tokens, gw_budget_view *out);
/* After a refusal by sky__gw_lease_take: 1 when the call was refused only because the lease
 * is on its way (one in flight, and the shared bucket had room at its last answer). */
int sky__gw_lease_awaited(const gw_budget *b, int64_t tokens);
/* 1 when a lease is due (then @p ask is filled and the budget waits for its answer). */
int sky__gw_lease_due(gw_budget *b, uint64_t now_ms, struct sky__store_lease_ask *ask);
void sky__gw_lease_answered(gw_budget *b, uint64_t now_ms, const struct sky__store_lease_ask *ask,
                            const struct sky__store_lease_answer *a);
/* Redis away: the local bucket takes over from what the shared one had; retried later. */
void sky__gw_lease_failed(gw_budget *b, uint64_t now_ms, const struct sky__store_lease_ask *ask);

/* ---- budget_shared.c: the keys' minute budgets shared through Redis ---- */
typedef struct gw_leases gw_leases;
/* With a store that keeps buckets (Redis): the leaser, or NULL. */
gw_leases *sky__gw_leases_new(sky_gateway *g, struct sky__store *store);
/* With the gateway: freed once its leases in flight have answered. */
void sky__gw_leases_free(gw_leases *l);
/* The gateway's leaser (usage_store.c keeps it with the counters), or NULL. */
gw_leases *sky__gw_leases_of(const sky_gateway *g);
/* Under the shared lock: the call charged to the key's budget, shared or local. */
int sky__gw_budget_admit(sky_gateway *g, gw_budget *b, uint64_t now_ms, int64_t tokens,
                         gw_budget_view *out);
/* Under the lock, after a refusal by sky__gw_budget_admit: 1 when the call may wait for the
 * key's lease on its way (then decided again by the same rule), 0 when the refusal stands. */
int sky__gw_budget_awaits(sky_gateway *g, const gw_budget *b, int64_t tokens);
/* After the lock: the key's next lease asked when it is due (never waited for). */
void sky__gw_budget_lease(sky_gateway *g, const gw_key *key);

/* ---- daily.c: a key's daily caps (under the shared lock; time: Unix ms, UTC) ---- */
enum { GW_DAILY_TOKENS = 1, GW_DAILY_COST };
typedef struct gw_daily_view {
    int refused; /* 0, GW_DAILY_TOKENS or GW_DAILY_COST */
    double limit, used;
    uint64_t reset_ms; /* until midnight UTC */
} gw_daily_view;
/* Whether key @p k (its use today in @p b) may make a call at @p now_ms: 0, or -1 with
 * @p out saying which cap it reached. */
int sky__gw_daily_check(gw_budget *b, const gw_key *k, int64_t now_ms, gw_daily_view *out);
/* A call of @p tokens and @p cost ended at @p now_ms. */
void sky__gw_daily_add(gw_budget *b, int64_t now_ms, int64_t tokens, double cost);
/* Day @p day's use as counted elsewhere (the records, the gateways' shared counters): kept
 * where it is more than this gateway's. */
void sky__gw_daily_seen(gw_budget *b, int64_t day, int64_t tokens, double cost);
/* Answer 429: which cap, its limit and use, retry-after the seconds to midnight UTC. */
void sky__gw_daily_refuse(sky_server_req *r, const gw_key *key, const gw_daily_view *v);

/* ---- prices.c ---- */
/* A model's price per million tokens; priced 0: none, its calls cost 0. */
typedef struct gw_price {
    int priced;
    double in, out, cached_in;
} gw_price;
/* Give @p t's models their prices (models not in @p t are skipped): 0, or SKY_ENOMEM. */
int sky__gw_prices_set(gw_table *t, const sky_gateway_price *prices, size_t n, sky_error *err);
/* What @p used cost at the price of @p m (one of @p t's models, or NULL); *out_priced 0
 * (cost 0) when it has none. */
double sky__gw_cost(const gw_table *t, const gw_model *m, const gw_tokens *used, int *out_priced);

/* ---- errors.c ---- */
/* Answer OpenAI's {"error": {"message", "type", "param", "code"}}; @p param and @p code may
 * be NULL (JSON null). */
void sky__gw_error(sky_server_req *r, int status, const char *type, const char *param,
                   const char *code, const char *fmt, ...) SKY_PRINTF(6, 7);
/* The same as one SSE event, for an error after a stream began. */
int sky__gw_error_event(sky_server_req *r, const char *type, const char *code, const char *msg);

/* ---- carry.c: a reload keeps an unchanged deployment's pipeline ---- */
typedef struct gw_pipe gw_pipe;
/* The fingerprint of what shapes @p in's pipeline (the key among it): 0, or SKY_ENOMEM. */
int sky__gw_dep_print(const sky_gateway_deployment *in, long timeout_ms,
                      unsigned char out[SKY_GATEWAY_SHA256_LEN]);
/* A holder for a new pipeline of that fingerprint (held once); NULL: out of memory. */
gw_pipe *sky__gw_pipe_new(const unsigned char print[SKY_GATEWAY_SHA256_LEN]);
/* Its endpoint (the pipeline's auth reads it) and where its pipeline goes. */
sky_ai_endpoint *sky__gw_pipe_endpoint(gw_pipe *p);
sky_pipeline **sky__gw_pipe_slot(gw_pipe *p);
/* One hold less; the last frees the pipeline (its calls end now) and the endpoint. */
void sky__gw_pipe_release(gw_pipe *p);
/* @p d takes the pipeline and shadows of a deployment of @p prev (may be NULL) with the
 * same fingerprint and not @p taken yet (marked now): 1, or 0 when there is none. */
int sky__gw_carry(gw_table *prev, unsigned char *taken, gw_deployment *d,
                  const unsigned char print[SKY_GATEWAY_SHA256_LEN]);

/* ---- table.c ---- */
/* A table from @p o (borrowed), held once by the caller: 0, or a SKY_E code with @p err. */
int sky__gw_table_new(sky_gateway *g, const sky_gateway_options *o, gw_table **out, sky_error *err);
gw_table *sky__gw_table_ref(gw_table *t);
/* Release a hold; the last frees the table (not while the gateway closes). */
void sky__gw_table_unref(gw_table *t);
/* End every call on the table's pipelines (their callbacks run now). */
void sky__gw_table_close(gw_table *t);
void sky__gw_table_free(gw_table *t);
/* "/v1/chat/completions", ...: the operation's path on OpenAI's API. */
const char *sky__gw_op_path(gw_op op);

/* ---- route.c: the routing module (skyio/route.h) over a table ---- */
/* The model named @p name, or NULL. */
const gw_model *sky__gw_model_find(const gw_table *t, sky_span name);
/* Whether @p d would take a call now (its breaker is not refusing). */
int sky__gw_usable(const gw_deployment *d);
/* The next deployment of @p m to try among those not yet tried (@p tried), by
 * sky_route_pick: its index in m->deps, or -1 when every one was tried. */
int sky__gw_pick(sky_gateway *g, gw_table *t, const gw_model *m, uint64_t tried,
                 int64_t est_tokens);

/* ---- proxy.c ---- */
/* What admission decided of a model call: its table, key, the key's budget, the estimate,
 * and when it came with which id. */
typedef struct gw_admission {
    gw_table *t;
    uint64_t t0_ns;
    char request_id[GW_REQUEST_ID_MAX + 1];
    gw_key *key;
    gw_budget_view rl;
    int64_t est_tokens;
} gw_admission;

/* Take a client's model call (body read, key, model and budget checked) to an upstream. */
void sky__gw_proxy(sky_gateway *g, sky_server_req *r, const gw_model *m, gw_op op, const gw_body *b,
                   const gw_admission *a);
/* Cancel every upstream call; requests still waiting get 503. */
void sky__gw_proxy_end_all(sky_gateway *g);

/* ---- the handlers: one a file ---- */
void sky__gw_on_chat(sky_server_req *r, void *gateway);
void sky__gw_on_embeddings(sky_server_req *r, void *gateway);
void sky__gw_on_models(sky_server_req *r, void *gateway);
void sky__gw_on_model(sky_server_req *r, void *gateway);
void sky__gw_on_healthz(sky_server_req *r, void *gateway);
void sky__gw_on_readyz(sky_server_req *r, void *gateway);
void sky__gw_on_metrics(sky_server_req *r, void *gateway);
void sky__gw_on_responses(sky_server_req *r, void *gateway);
void sky__gw_on_completions(sky_server_req *r, void *gateway);
void sky__gw_on_azure(sky_server_req *r, void *gateway);
/* What every model call shares: key, body, model, then the proxy. The model is the one
 * @p path_model names (Azure's /openai/deployments/{name}/...), or when it is empty the
 * body's "model". */
void sky__gw_model_call(sky_gateway *g, sky_server_req *r, gw_op op, sky_span path_model);

/* ---- cache.c and usage_store.c (their setters: gateway/stores.h) ---- */
/* Look the request up when it asks for the cache: 1 when the cache took it (it
 * answers, or calls sky__gw_proxy_miss), 0 to go upstream now. */
int sky__gw_cache_begin(gw_request *q);
/* An upstream answer of a request that asked for the cache: the status header, the answer
 * kept when it is a 200; returns the body to give (res->body, or the cache's merge of it:
 * embeddings cached per input, valid until the request ends). */
sky_span sky__gw_cache_answered(gw_request *q, const sky_call_result *res);
/* The request ends: a lookup under way is dropped. */
void sky__gw_cache_forget(gw_request *q);
/* A streamed answer of a request that uses the cache (cache_stream.c): its headers are
 * about to go (the status header added), each chunk as it went to the client, and its
 * good end (the copy kept, unless it grew past the entry cap). */
void sky__gw_cache_stream_begun(gw_request *q);
void sky__gw_cache_stream_chunk(gw_request *q, const char *data, size_t len);
void sky__gw_cache_stream_ended(gw_request *q);
/* One model call's usage record, to the usage store (when there is one), and its tokens
 * and cost to the shared counters of the key's day (when there are). */
void sky__gw_usage_record(sky_gateway *g, const gw_record *r);
/* The key's use today asked of the shared counters, when they were not asked lately. */
void sky__gw_usage_sync(sky_gateway *g, const gw_key *key);
/* With the gateway (usage_store.c): freed once the counters' calls have answered. */
void sky__gw_counters_free(struct gw_counters *c);
/* The usage counts (unpriced calls, daily refusals) in /metrics; under the lock. */
int sky__gw_usage_metrics(sky_buf *b, const sky_gateway *g);
/* responses_store.c: GET and DELETE /v1/responses/{id}, a Responses API answer kept (unless
 * "store": false, by responses_turn.c) in the usage store under its id and the key's name. */
void sky__gw_on_response_doc(sky_server_req *r, void *gateway);
/* store_metrics.c: the cache's lookups and the usage store's records, for /metrics (under
 * the shared lock; with several loops, their sum); and this loop's left in the shared state
 * (monitor's tick; takes the lock). */
void sky__gw_stores_publish(const sky_gateway *g);
int sky__gw_stores_metrics(sky_buf *b, const sky_gateway *g);
/* proxy.c: the cache missed; on to the deployments. */
void sky__gw_proxy_miss(gw_request *q);

#endif
