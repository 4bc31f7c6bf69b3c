/* skyio — routing: which of a model's deployments takes a request, and when to move it. */
#ifndef SKYIO_ROUTE_H
#define SKYIO_ROUTE_H

#include "common.h"
#include "error.h"
#include "pipeline.h"

/*
 * The routing that `skyio serve` and `skyio batch --config` share. A model name maps to a
 * list of deployments, each with a pipeline of its own (learned rate limit, concurrency
 * limit, circuit breaker). A request goes to the deployment with the most headroom, by
 * weight; a failure that another deployment could mend (a 429, an overload, a 5xx, a reset,
 * a timeout) moves it to another deployment of the model, then to the model's fallbacks.
 *
 * The module keeps no deployment of its own: a caller embeds a sky_route_target in each of
 * its deployments (the gateway's hold per-operation URLs, the batch's its request bodies)
 * and asks sky_route_pick among them. Everything here runs on one loop.
 */

/** What a deployment speaks. */
typedef enum sky_route_kind {
    SKY_ROUTE_OPENAI = 0, /**< api.openai.com or alike: bearer key, model in the body */
    SKY_ROUTE_AZURE,      /**< Azure OpenAI: deployment in the path, api-version, api-key */
    SKY_ROUTE_COMPATIBLE  /**< any OpenAI-compatible server (vLLM, llama.cpp, a mock) */
} sky_route_kind;

/** One upstream deployment of a model, as a config names it. Every string is borrowed:
 *  whoever takes it (the gateway, a batch) copies what it keeps, or says how long it reads
 *  them. */
typedef struct sky_route_deployment {
    const char *model; /**< the name requests ask for; required */
    sky_route_kind kind;
    const char *base_url; /**< OpenAI: the API root (…/v1); Azure: the resource URL */
    /** The key itself (a secret: never logged). NULL: none; for Azure, Entra ID tokens
     *  from a credential chain. */
    const char *api_key;
    const char *api_version; /**< Azure; NULL: SKY_AI_DEFAULT_API_VERSION */
    /** Azure: the deployment's name; others: the model name upstream, when it differs
     *  from @c model (the body's "model" is rewritten). NULL: @c model. */
    const char *deployment;
    double weight; /**< share of the model's requests; default 1, 0 = only when others fail */
    double rpm;    /**< known limits; 0: learned from the replies */
    double tpm;
    /** Calls in flight to it at most: an adaptive limit that never passes this. 0
     *  (default): the taker's default. */
    int max_concurrency;
    /** A fixed number of calls in flight at most; 0: none. Not with max_concurrency. */
    int concurrency;
    /** It speaks chat completions only (vLLM, older Azure api-versions; config "api":
     *  "chat"): the gateway sends it a Responses API call as a chat completion and gives
     *  the answer (or stream) back as the Responses API's. 0 (default): it speaks both. */
    int chat_only;
} sky_route_deployment;

/** Every default (weight 1, kind OpenAI). */
SKY_EXTERN void sky_route_deployment_init(sky_route_deployment *d);

/** Where a model's requests go when every deployment of it failed before an answer: the
 *  deployments of each model of @c to, in order. Strings borrowed as above. */
typedef struct sky_route_fallback {
    const char *model;
    const char *const *to;
    size_t n_to;
} sky_route_fallback;

/** The most deployments one model may have (a request's tried set is a 64-bit mask). */
#define SKY_ROUTE_MAX_DEPLOYMENTS 64

/** The router's shadow of one of a deployment's rate buckets. */
typedef struct sky_route_shadow {
    double level;
    uint64_t at_ms; /**< 0: not seen yet */
} sky_route_shadow;

/**
 * One deployment as the router sees it, embedded in the caller's own record of it. The
 * caller sets @c pipe and @c weight (zero the rest); the shadows are the router's.
 */
typedef struct sky_route_target {
    sky_pipeline *pipe; /**< borrowed; NULL once closed (then never picked as usable) */
    double weight;
    sky_route_shadow shadow_req, shadow_tok;
} sky_route_target;

/** A model: the indexes of its deployments in the caller's list, and of the models its
 *  requests fall back to. Made by sky_route_models_new. */
typedef struct sky_route_model {
    const char *name; /**< borrowed from the names given to sky_route_models_new */
    size_t *deps;
    size_t n_deps;
    size_t *fallbacks;
    size_t n_fallbacks;
} sky_route_model;

/** Every model of a list of deployments, in the order each first appears. */
typedef struct sky_route_models {
    sky_route_model *models;
    size_t n_models;
} sky_route_models;

/**
 * Group @p n deployments by their model names (@p names[i] is deployment i's; borrowed:
 * they must outlive @p out) and attach @p fallbacks (borrowed for the call). Returns 0, or
 * SKY_EINVAL with @p err (more than SKY_ROUTE_MAX_DEPLOYMENTS for a model, a fallback
 * naming an unknown model or itself, a model given fallbacks twice), or SKY_ENOMEM.
 * Free with sky_route_models_free (on failure too).
 */
SKY_EXTERN int sky_route_models_new(const char *const *names, size_t n,
                                    const sky_route_fallback *fallbacks, size_t n_fallbacks,
                                    sky_route_models *out, sky_error *err) SKY_NODISCARD;
SKY_EXTERN void sky_route_models_free(sky_route_models *m);
/** The model named @p name, or NULL. */
SKY_EXTERN const sky_route_model *sky_route_model_find(const sky_route_models *m, sky_span name);

/** Whether @p t would take a call now (it has a pipeline, and its breaker is not refusing). */
SKY_EXTERN int sky_route_usable(const sky_route_target *t);

/**
 * The target to try next among @p targets[0..n) (a model's, in its order) that are not in
 * @p tried (bit i: targets[i] was tried): drawn by weight times headroom (the share of a
 * second's requests and @p est_tokens its rate limiter would let through now, and of its
 * concurrency limit that is free) among those with room now (none where calls already
 * wait, or where the limiter would hold a call now: sky_ratelimit_peek); when none has room, the
 * one where the call would wait the least (the calls waiting there over the rate it lets through,
 * by weight, plus a Retry-After pause), so a saturated model's queues drain at the sum of the
 * deployments' rates; one with an open breaker only when no other is left. @p now_ms is the loop's
 * time, @p rng the draw's generator state. Returns the index, or -1 when every one was tried.
 */
SKY_EXTERN int sky_route_pick(sky_route_target *const *targets, size_t n, uint64_t tried,
                              int64_t est_tokens, uint64_t now_ms, uint64_t *rng);

/** A call of @p est_tokens started on @p t: its shadow buckets pay for it. */
SKY_EXTERN void sky_route_charge(sky_route_target *t, int64_t est_tokens);

/**
 * The failover rule: whether another deployment could answer what one could not, given the
 * status (0: none) and the call's error (NULL: none). Yes for 401, 403, 408, 409, 429 and
 * every 5xx, and for any failure but a cancel, out of memory or a bad request of ours.
 */
SKY_EXTERN int sky_route_worth_another(int status, const sky_error *err);

#endif
