/* skyio — an OpenAI-compatible gateway in front of many deployments (`skyio serve`). */
#ifndef SKYIO_GATEWAY_H
#define SKYIO_GATEWAY_H

#include <jansson.h>
#include <uv.h>

#include "common.h"
#include "error.h"
#include "route.h"

/*
 * The gateway answers OpenAI's API (POST /v1/chat/completions, /v1/responses and
 * /v1/completions, plain and streamed, POST /v1/embeddings, GET /v1/models, GET /healthz),
 * and Azure OpenAI's (/openai/deployments/{model}/..., /openai/responses, /openai/v1/...)
 * so Azure SDK clients can point at it too. It sends each model call to one
 * of the model's deployments, each with a pipeline of its own (learned rate limit,
 * adaptive concurrency, circuit breaker). A failure before the first byte has reached
 * the client moves the request to another deployment of the model, then to the model's
 * fallbacks; after it, the error is passed on. A client that leaves cancels its upstream
 * call. Each client key may have a budget (RPM/TPM, 429 as OpenAI answers). Operations:
 * GET /metrics (Prometheus), /readyz, an access log of JSON lines, x-request-id both
 * ways; sky_gateway_reload swaps the routing without dropping a request; several loops
 * on threads of their own share one port (sky_gateway_options.threads).
 */

/** Long-lived: a listening gateway on a loop. */
typedef struct sky_gateway sky_gateway;

/* A deployment, its kind and a model's fallbacks are the routing module's (skyio/route.h),
 * which `skyio batch --config` shares; these names stay for the gateway's callers. */
typedef sky_route_kind sky_gateway_kind;
#define SKY_GATEWAY_OPENAI SKY_ROUTE_OPENAI
#define SKY_GATEWAY_AZURE SKY_ROUTE_AZURE
#define SKY_GATEWAY_COMPATIBLE SKY_ROUTE_COMPATIBLE

/** One upstream deployment of a model (see sky_route_deployment). Every string is borrowed
 *  until sky_gateway_new returns (the gateway copies what it keeps). For Azure without a
 *  key: Entra ID tokens from the credential chain (as sky_credential_default_new), one per
 *  loop. max_concurrency 0 (default): no concurrency limit, the clients' concurrency goes
 *  through (its rate limit and breaker still hold); with max_concurrency, an adaptive limit
 *  (slow start from 16, or from it when lower). Both limits are split evenly between the
 *  loops (rounded up). */
typedef sky_route_deployment sky_gateway_deployment;

/** Every default (weight 1, kind OpenAI): sky_route_deployment_init. */
SKY_EXTERN void sky_gateway_deployment_init(sky_gateway_deployment *d);

/** Where a model's requests go when every deployment of it refused before the first byte
 *  (see sky_route_fallback). Strings borrowed as above. */
typedef sky_route_fallback sky_gateway_fallback;

#define SKY_GATEWAY_SHA256_LEN 32

/** A key the gateway's clients present (Authorization: Bearer K, or api-key: K). Only its
 *  SHA-256 is kept; keys are compared in constant time. Strings borrowed as above. */
typedef struct sky_gateway_client_key {
    const char *name; /**< for logs; required */
    unsigned char sha256[SKY_GATEWAY_SHA256_LEN];
    const char *const *models; /**< the models it may use; NULL (n_models 0): every model */
    size_t n_models;
    /** Its budget, requests and tokens a minute (tokens charged up front from the body's
     *  size and max_tokens, settled by the reply's usage); over it, 429 as OpenAI answers.
     *  0: no limit. */
    double rpm, tpm;
    /** Its daily caps: tokens (in and out) and cost (see sky_gateway_price) a UTC day, from
     *  what its calls used; once reached, 429 until midnight UTC. 0: no cap. */
    double daily_tokens, daily_cost;
} sky_gateway_client_key;

/** A model's price, per million tokens, for the cost kept with each usage record and the
 *  keys' daily_cost caps. A model without one costs 0 (and is counted in /metrics).
 *  Strings borrowed as above. */
typedef struct sky_gateway_price {
    const char *model; /**< a configured model's name (others are ignored) */
    double input_per_1m;
    double output_per_1m;
    /** input tokens the upstream served from its prompt cache; < 0: input_per_1m */
    double cached_input_per_1m;
} sky_gateway_price;

/**
 * A gateway's routing and keys read from JSON (`--config gateway.json`):
 *
 *     {"models": {"gpt-4o": [{"kind": "azure", "base_url": "https://x.openai.azure.com",
 *                             "key_env": "AZURE_KEY_1", "deployment": "gpt4o-east",
 *                             "api_version": "2024-10-21", "weight": 2, "rpm": 600}],
 *                 "gpt-4o-mini": [...]},
 *      "fallbacks": {"gpt-4o": ["gpt-4o-mini"]},
 *      "keys": [{"name": "team-a", "key_sha256": "<64 hex>", "models": ["gpt-4o"]},
 *               {"name": "ci", "key_env": "GATEWAY_CI_KEY", "rpm": 600, "tpm": 90000,
 *                "daily_tokens": 2000000, "daily_cost": 25}],
 *      "prices": {"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10,
 *                            "cached_input_per_1m": 1.25}}}
 *
 * A deployment's key comes from the environment variable key_env names (never from the
 * file); a client key from its SHA-256 in hex, or from an environment variable. The
 * config owns everything it points at: free it with sky_gateway_config_free.
 */
typedef struct sky_gateway_config {
    sky_gateway_deployment *deployments;
    size_t n_deployments;
    sky_gateway_fallback *fallbacks;
    size_t n_fallbacks;
    sky_gateway_client_key *keys;
    size_t n_keys;
    sky_gateway_price *prices;
    size_t n_prices;
    void *priv; /**< owned strings; do not touch */
} sky_gateway_config;

/**
 * Read @p doc (borrowed) into @p out (caller's; zeroed first). Returns 0, or SKY_EINVAL
 * with @p err saying which entry and why (an unknown kind, a key_env that is not set, a
 * key_sha256 that is not 64 hex digits, ...; never a key's value), or SKY_ENOMEM.
 */
SKY_EXTERN int sky_gateway_config_parse(const json_t *doc, sky_gateway_config *out,
                                        sky_error *err) SKY_NODISCARD;
/** Free what sky_gateway_config_parse filled in (the keys are wiped first). */
SKY_EXTERN void sky_gateway_config_free(sky_gateway_config *c);

/** SHA-256 of @p key into @p out (for sky_gateway_client_key.sha256). 0 or SKY_EINTERNAL. */
SKY_EXTERN int sky_gateway_key_hash(sky_span key,
                                    unsigned char out[SKY_GATEWAY_SHA256_LEN]) SKY_NODISCARD;

typedef struct sky_gateway_options {
    const char *host;                          /**< default "127.0.0.1" */
    int port;                                  /**< 0 picks a free one (see sky_gateway_port) */
    size_t max_body;                           /**< larger request bodies get 413; default 16 MiB */
    const sky_gateway_deployment *deployments; /**< borrowed until sky_gateway_new returns */
    size_t n_deployments;
    /** Each names configured models only (else sky_gateway_new fails); borrowed as above. */
    const sky_gateway_fallback *fallbacks;
    size_t n_fallbacks;
    /** NULL (n_keys 0): no key is asked for (fine on loopback, said at start otherwise) */
    const sky_gateway_client_key *keys;
    size_t n_keys;
    /** The models' prices (borrowed as above); NULL (n_prices 0): every call costs 0. */
    const sky_gateway_price *prices;
    size_t n_prices;
    long upstream_timeout_ms; /**< one upstream attempt, a whole stream included; 300000 */
    /** A client's request (head and body) must arrive within this: the first of a plain
     *  connection gets 408 in OpenAI's JSON after it, a later one is closed. 10000 */
    long client_timeout_ms;
    /** A JSON line per model call appended to this file ("-": stderr); NULL: none.
     *  Borrowed for sky_gateway_new. */
    const char *access_log;
    /** PEM certificate chain and key: HTTPS, with HTTP/2 offered through ALPN (HTTP/1.1
     *  too). NULL (both): plain HTTP/1.1. Borrowed for sky_gateway_new. */
    const char *tls_cert_file;
    const char *tls_key_file;
    /** Loops on threads of their own, all on one port (SO_REUSEPORT): the caller's loop
     *  and threads - 1 more. The clients' key budgets and the metrics are shared by them,
     *  and so is each deployment's rate limit, known or learned from every loop's replies
     *  (each loop's pipeline asks it, beside its own limiter with an even share of a known
     *  limit); a concurrency limit is split evenly between them. Default 1; at most 64. */
    int threads;
    /** The upstream calls' transport (sky_http_client_options.transport):
     *  SKY_HTTP_TRANSPORT_H2O (default), skyio's own HTTP/1.1 client for plain http://
     *  deployments on an IP literal or localhost (TLS, HTTP/2, host names and proxies stay
     *  on curl), or SKY_HTTP_TRANSPORT_CURL for every call. */
    int upstream_transport;
} sky_gateway_options;

/** Every default. */
SKY_EXTERN void sky_gateway_options_init(sky_gateway_options *o);

/**
 * A gateway on @p loop, listening when this returns. @p o and what it points at are
 * borrowed for the call. Returns 0 and *out, or a SKY_E code with @p err filled (no
 * deployment, a bad URL, the port taken, ...).
 */
SKY_EXTERN int sky_gateway_new(uv_loop_t *loop, const sky_gateway_options *o, sky_gateway **out,
                               sky_error *err) SKY_NODISCARD;
/**
 * Replace the routing (deployments, fallbacks, keys, prices) with @p o's, without dropping a
 * connection or a request: requests under way finish on the routing they began with. The
 * listening options (host, port, max_body) stay as they were. A deployment the new
 * routing leaves unchanged (model, kind, base URL, deployment name, api-version, key,
 * rpm/tpm, concurrency and the upstream timeout all the same; its weight may change) keeps
 * its pipeline: the rate limit it learned, its concurrency limit, its breaker; any other
 * starts afresh. A key of the same name and budget keeps its budget's state. Returns 0, or a SKY_E
 * code with @p err filled and the old routing still in place. @p o is borrowed for the call. Not
 * from inside a callback.
 */
SKY_EXTERN int sky_gateway_reload(sky_gateway *g, const sky_gateway_options *o,
                                  sky_error *err) SKY_NODISCARD;

/** What sky_gateway_reload_file calls back, on the loop. */
typedef struct sky_gateway_reload_hooks {
    /** After the file parsed, before the swap: the caller takes what else it keeps in the
     *  config (@p doc, borrowed for the call); < 0 with @p err filled refuses the reload.
     *  NULL: none. */
    int (*check)(sky_gateway *g, const json_t *doc, sky_error *err, void *user_data);
    /** Once: @p err NULL when the new routing took effect, else why the old one stays. */
    void (*done)(sky_gateway *g, const sky_error *err, void *user_data);
    void *user_data;
} sky_gateway_reload_hooks;

/**
 * sky_gateway_reload from a config file, without stalling the loop: @p path (as
 * sky_gateway_config_parse reads it) is read and parsed on the loop's thread pool, then its
 * routing and prices are swapped in on the loop; @p o gives the rest (copied; its routing
 * is not read). @p hooks (copied; may be NULL) hear of it. A refused reload (the file does
 * not read, parse or build, or the check refused it) leaves the old routing running and
 * counts in /metrics (skyio_gateway_config_reload_failures_total). Asked for while one is
 * under way, the file is read once more after it, with the first one's hooks. Returns 0,
 * or SKY_ENOMEM.
 */
SKY_EXTERN int sky_gateway_reload_file(sky_gateway *g, const char *path,
                                       const sky_gateway_options *o,
                                       const sky_gateway_reload_hooks *hooks) SKY_NODISCARD;

/** The port listened on. */
SKY_EXTERN int sky_gateway_port(const sky_gateway *g);

typedef void (*sky_gateway_shutdown_cb)(sky_gateway *g, void *user_data);
/**
 * Stop accepting and let requests in flight (streams too) finish for up to @p grace_ms;
 * then those left are ended (their upstream calls canceled) and @p cb runs, once.
 */
SKY_EXTERN void sky_gateway_shutdown(sky_gateway *g, uint64_t grace_ms, sky_gateway_shutdown_cb cb,
                                     void *user_data);
/** Cancel every upstream call, answer what is still waiting, and free the gateway. Not
 *  from inside one of its callbacks. */
SKY_EXTERN void sky_gateway_free(sky_gateway *g);

#endif
