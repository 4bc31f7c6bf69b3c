/* skyio — the request pipeline: ordered policies around the HTTP transport. */
#ifndef SKYIO_PIPELINE_H
#define SKYIO_PIPELINE_H

#include <jansson.h>
#include <uv.h>

#include "breaker.h"
#include "common.h"
#include "concurrency.h"
#include "credential.h"
#include "error.h"
#include "headers.h"
#include "http.h"
#include "ratelimit.h"
#include "retry.h"

/*
 * Per call (once per operation): request id, deadline, circuit breaker,
 * rate limit, concurrency limit. Per try (every attempt): auth headers,
 * logging, transport. Retry sits between them and sends the operation back
 * through the per-call admission (rate and concurrency) before each retry,
 * so retries are paced like first attempts.
 */

/** Long-lived: the policies shared by every call to one endpoint. */
typedef struct sky_pipeline sky_pipeline;
/** One-shot: an operation, over one or more attempts. Valid until its callback returns. */
typedef struct sky_call sky_call;

/**
 * Per-try auth: add the credential's headers to @p headers (the call's, for this
 * attempt only: what is added is dropped again once the attempt has gone). With @p refresh nonzero
 * the previous attempt got 401: get a new token first. Returns 0, or a SKY_E code that ends the
 * call (SKY_EAUTH).
 */
typedef int (*sky_pipeline_auth_cb)(void *user_data, sky_headers *headers, int refresh);

/**
 * Per-try signing, for a scheme that signs the request itself (Storage's Shared Key signs
 * the verb, the URL and every x-ms-* header). Called last before each attempt is sent,
 * after every header the pipeline adds (x-ms-client-request-id, the bearer token, auth's),
 * with the attempt's @p method, @p url and @p headers (the call's: what it adds goes with this
 * attempt only). It may add headers (a fresh x-ms-date) and adds its
 * signature over them. Returns 0, or a SKY_E code with @p err filled that ends the call
 * (never a secret in the message). Everything is borrowed for the call.
 */
typedef int (*sky_pipeline_sign_cb)(void *user_data, const char *method, const char *url,
                                    sky_headers *headers, sky_error *err);

/** One reply as a service's classifier sees it. Borrowed: valid during the classifier's call. */
typedef struct sky_reply {
    int status;
    const sky_headers *headers;
    sky_span body;      /**< the body; a streamed success's is empty (it went to the caller) */
    const json_t *json; /**< a 2xx body parsed (see sky_call_result.json); else NULL */
} sky_reply;

/**
 * A service's reply rules, which the generic pipeline does not know: what a reply says it
 * used, and what a failed reply means. Every member may be NULL. Borrowed by the pipeline
 * (a static one is usual: sky_ai_classifier() in skyio/ai.h).
 */
typedef struct sky_reply_classifier {
    /** Tokens a 2xx reply says it used, for the rate limiter's token bucket; -1 unknown.
     *  When set, 2xx JSON replies are parsed for it while the pipeline rate-limits. */
    int64_t (*reply_tokens)(void *user_data, const sky_reply *reply);
    /**
     * A reply that is not a 2xx, in the service's words: set @p err with
     * sky_error_set(err, SKY_EHTTP, "HTTP %d: <its message>", ...) and its service code,
     * or leave it clear for the pipeline's plain "HTTP n". Return 1 when no wait mends the
     * reply (OpenAI's insufficient_quota): the call then ends with it, unretried.
     */
    int (*describe_error)(void *user_data, const sky_reply *reply, sky_error *err);
    void *user_data;
} sky_reply_classifier;

/**
 * A rate limit kept outside the pipeline and shared with other processes (a bucket in
 * Redis, say): asked before every attempt, first tries and retries alike, once the
 * pipeline's own breaker and concurrency slot let it go, and told how each attempt it let
 * through ended. Borrowed by the pipeline (it must outlive it); every callback runs on the
 * pipeline's loop and must not free the pipeline.
 */
typedef struct sky_rate_admitter {
    /**
     * May an attempt costing @p est_tokens go now? 0: yes (the admitter has counted it);
     * > 0: not yet: the pipeline asks again after at most that many milliseconds, or sooner
     * once the admitter calls sky_pipeline_admitter_wake(@p p) (tokens it asked for came).
     */
    int64_t (*acquire)(void *user_data, sky_pipeline *p, int64_t est_tokens);
    /**
     * An attempt it let through has ended: @p status (429 also for a 503 the pipeline took
     * for load being shed; 0: no reply), the reply's @p headers (borrowed for the call; NULL
     * without a reply) and @p rpm, the rate the pipeline's own limiter allows now (0:
     * unpaced, or no limiter). May be NULL.
     */
    void (*on_reply)(void *user_data, sky_pipeline *p, int status, const sky_headers *headers,
                     double rpm);
    /** @p p is being freed: forget it (no wake after this returns). May be NULL. */
    void (*on_free)(void *user_data, sky_pipeline *p);
    void *user_data;
} sky_rate_admitter;

typedef struct sky_pipeline_options {
    sky_retry_options retry;
    long attempt_timeout_ms;         /**< one attempt; default 300000 (azure-core's 300 s) */
    long operation_timeout_ms;       /**< the whole call, retries included; 0: none (default) */
    int use_rate_limit;              /**< default 1 */
    sky_ratelimit_options rate;      /**< learned from replies unless rpm/tpm are given */
    int use_concurrency;             /**< default 1 */
    sky_limiter_options concurrency; /**< adaptive by default */
    int use_breaker;                 /**< default 1 */
    sky_breaker_options breaker;
    int breaker_fail_fast; /**< 1: fail at once while open (library); 0: wait (batch) */
    /**
     * 1: a 503 or 529 within overload_window_ms of a success, while such refusals are at
     * least 5% of the last second's replies, is the endpoint shedding load (a proxy's rate
     * limiter, an overloaded server), not failing: the rate and concurrency limiters take
     * it as they take a 429, and the breaker does not count it. A stray 503 among many
     * successes is an ordinary failure, retried. Default 0.
     */
    int overload_is_rate;
    uint64_t overload_window_ms; /**< default 2000 */
    sky_pipeline_auth_cb auth;   /**< NULL: no auth headers */
    void *auth_user_data;
    /** 1: @c auth gets a new credential when called with refresh set, so a 401 is worth
     *  one retry. Default 0: a fixed key, and a 401 after it is final. */
    int auth_refreshes;
    const sky_clock *clock; /**< NULL: the real clock. Borrowed */
    /** When set (with scope), every attempt carries `Authorization: Bearer <token>`
     *  from it, and a 401 forces one refresh and one retry. Borrowed: it must
     *  outlive the pipeline. Takes the place of `auth`. */
    sky_credential *credential;
    /** The token's scope, e.g. "https://management.azure.com/.default"; copied. */
    const char *scope;
    /**
     * The service's reply rules (borrowed: must outlive the pipeline). NULL: none, the
     * status alone decides. Default, for now: sky_ai_classifier() (OpenAI's rules, as the
     * pipeline applied them itself before this hook), so that callers written before the
     * hook keep their behaviour; callers that want OpenAI's rules should set it
     * explicitly, since the default is to become NULL.
     */
    const sky_reply_classifier *classifier;
    /**
     * 1: an attempt that could not reach an endpoint that has never answered (could not
     * connect, resolve or complete TLS) ends the call at once, unretried: the address or the
     * certificates are wrong, and no wait mends that. For a user waiting at a terminal.
     * Default 0 (retried as any transport failure).
     */
    int fail_unreached;
    /** Signs each attempt over its final headers (see the type); NULL: none. It runs after
     *  `auth` and the credential's bearer, which it leaves as they are. */
    sky_pipeline_sign_cb sign;
    void *sign_user_data;
    /**
     * 1 (default): every attempt carries the call's request id as x-ms-client-request-id,
     * which Azure services log and send back. 0: the id is made (sky_call_result) but not
     * sent, for a service that reads none: a header each way costs curl some 10,000
     * instructions a request.
     */
    int send_request_id;
    /** A shared rate limit asked before every attempt (see the type); NULL (default): none. */
    const sky_rate_admitter *admitter;
} sky_pipeline_options;

/** Every default. */
SKY_EXTERN void sky_pipeline_options_init(sky_pipeline_options *o);

/**
 * A pipeline on @p loop sending through @p client (borrowed: it must
 * outlive the pipeline). @p o is copied. Returns 0, SKY_EINVAL, SKY_ENOMEM.
 */
SKY_EXTERN int sky_pipeline_new(uv_loop_t *loop, sky_http_client *client,
                                const sky_pipeline_options *o, sky_pipeline **out) SKY_NODISCARD;
/**
 * Cancel every call (each callback runs now with SKY_ECANCELED) and free the
 * pipeline; its timers' memory goes when the loop has closed them.
 */
SKY_EXTERN void sky_pipeline_free(sky_pipeline *p);

/** What the callback receives. Borrowed: valid until the callback returns. */
typedef struct sky_call_result {
    int status;                   /**< the last attempt's status; 0 when none arrived */
    const sky_headers *headers;   /**< the last reply's headers (NULL when none) */
    sky_span body;                /**< the last reply's body */
    const char *request_id;       /**< sent as x-ms-client-request-id (send_request_id) */
    int attempts;                 /**< attempts made */
    const sky_retry_state *retry; /**< why each attempt ended and what followed */
    uint64_t waited_ms;           /**< time held back by the rate and concurrency limits */
    uint64_t total_ms;            /**< from start to the end */
    uint64_t attempt_ms;          /**< the last attempt alone, send to reply; 0 when none */
    /** The last reply's body parsed, when it was a 2xx JSON reply and the call had
     *  want_json; else NULL (always NULL for a streamed body). Borrowed. */
    const json_t *json;
} sky_call_result;

/**
 * A caller's own reading of a 2xx reply held whole, before the pipeline decides on the
 * attempt (it takes the place of require_json's check). Return 0 to take the reply;
 * SKY_EJSON when it is not what the caller can use: a failed attempt, asked for once more
 * and then final, like a body that is not JSON; SKY_ENOMEM when memory ran out reading
 * it: the call ends with it, since asking again would pay twice. It may call
 * sky_call_set_usage with what the reply says it used. @p reply is borrowed until it
 * returns; what it reads it keeps in the call's user_data.
 */
typedef int (*sky_call_check_cb)(sky_call *call, const struct sky_reply *reply, void *user_data);

/**
 * The call is over: exactly once. @p err is NULL when the final reply is a
 * success (2xx); otherwise it says why not: the last status (SKY_EHTTP,
 * with http_status and the service's code when the body names one), the
 * transport error, SKY_ETIMEDOUT for the operation deadline, SKY_EBUSY
 * for an open circuit with breaker_fail_fast, SKY_ECANCELED.
 */
typedef void (*sky_call_done_cb)(sky_call *call, const sky_call_result *res, const sky_error *err,
                                 void *user_data);

/*
 * Streaming. A call may take its request body from a reader and hand its reply's body to
 * the caller as it arrives, instead of holding either whole in memory. The rule: the
 * pipeline retries an attempt only until the reply has begun to reach the caller, that
 * is until on_headers has run for a 2xx being streamed (when on_headers is set) or the
 * first byte of its body has gone to on_body. After that a failure (a reset, a timeout,
 * a body cut short) ends the call with its error: bytes the caller has consumed cannot
 * be taken back, and only the caller knows whether to start again. A caller that can
 * (a ranged download written at fixed offsets) sets body_restart: then such a failure is
 * retried like one before the first byte, and the next attempt's reply (its on_headers,
 * its body from the first byte) follows a call of body_restart. Replies other than
 * 2xx are never streamed: their bodies are held (the first 1 MiB) for the classifier and
 * the retry policy, and reach the caller through on_done as before. Streamed calls go
 * through the same admission (breaker, concurrency, rate limit) as any other.
 *
 * Each streaming callback gets the call and the call's user_data; what it is given is
 * borrowed until it returns. It may cancel the call (sky_call_cancel) or free the
 * pipeline; the call then reports through on_done as usual.
 */

/** A 2xx reply's status and headers, before its body. */
typedef void (*sky_call_headers_cb)(sky_call *call, int status, const sky_headers *headers,
                                    void *user_data);
/**
 * The next bytes of a 2xx reply's body. Return 0 to go on, SKY_HTTP_PAUSE to hold the
 * transfer until sky_call_resume (this chunk then comes again), any other nonzero value
 * to cancel the call (SKY_ECANCELED).
 */
typedef int (*sky_call_body_cb)(sky_call *call, const char *data, size_t len, void *user_data);
/**
 * Supply up to @p cap bytes of the request body into @p out: the count, 0 at the end,
 * SKY_HTTP_PAUSE when none is ready yet (then call sky_call_resume once it is), or a
 * negative SKY_E code that ends the call with it (not retried).
 */
typedef long (*sky_call_read_cb)(sky_call *call, char *out, size_t cap, void *user_data);
/** Start the request body again from its first byte, for another attempt: 0, or a
 *  SKY_E code that ends the call. */
typedef int (*sky_call_rewind_cb)(sky_call *call, void *user_data);
/** Forget what the last attempt's streamed reply handed over (reset the sink), since the
 *  next attempt's reply comes from its first byte: 0, or a SKY_E code that ends the call. */
typedef int (*sky_call_restart_cb)(sky_call *call, void *user_data);

typedef struct sky_call_options {
    const char *method;         /**< default "POST" when a body is given, else "GET" */
    const char *url;            /**< required; copied */
    const sky_headers *headers; /**< copied */
    sky_span body;              /**< copied */
    int64_t est_tokens;         /**< the rate limiter's estimate; 0 when unknown */
    /** A 2xx reply whose body is not JSON is a failed attempt (SKY_EJSON), retried like a
     *  cut-short body: an AI endpoint always answers JSON, and a garbled answer is worth
     *  nothing to keep even if it was billed. Default 0 (any body is a success). */
    int require_json;
    /** 1: the result carries the 2xx reply parsed as a tree (sky_call_result.json). Checking
     *  (require_json) or reading (check_reply) a reply builds no tree. Default 0. */
    int want_json;
    /** A 2xx reply read by the caller before the pipeline decides on it (see the type);
     *  NULL: none. Not with a streamed body. */
    sky_call_check_cb check_reply;
    sky_call_done_cb on_done; /**< required */
    void *user_data;
    /* Streaming (see above); all optional. With none set, the call buffers as always. */
    sky_call_headers_cb on_headers; /**< a 2xx reply's status and headers */
    /** a 2xx reply's body as it arrives, instead of in the result (not with require_json) */
    sky_call_body_cb on_body;
    sky_call_read_cb body_reader; /**< the request body from a reader (then body is ignored) */
    int64_t body_length;          /**< the reader's total length; -1 (default): chunked */
    /** Needed for more than one attempt with a reader: without it a call whose body came
     *  from a reader is not retried. */
    sky_call_rewind_cb body_rewind;
    /** Makes a streamed reply restartable: a failure after it began to reach the caller is
     *  retried, with a call of this first (see above). NULL (default): such a failure is
     *  final. */
    sky_call_restart_cb body_restart;
    /** curl's receive and send buffers for this call's attempts; 0 (default): the HTTP
     *  client's. Large bodies move with fewer system calls and callbacks through larger
     *  ones (see sky_http_request_options). */
    long recv_buffer_size;
    long upload_buffer_size;
    /** The most of a reply the transport holds for the call; 0 (default): the HTTP
     *  client's cap. A longer reply fails its attempt. */
    size_t max_response_bytes;
} sky_call_options;

/** Every default: no body, buffered reply, body_length -1. */
SKY_EXTERN void sky_call_options_init(sky_call_options *o);

/**
 * Start a call. Returns 0 (the callback will run, never from inside this
 * call), or a SKY_E code with @p err filled (the callback never runs).
 */
SKY_EXTERN int sky_call_start(sky_pipeline *p, const sky_call_options *o, sky_call **out_call,
                              sky_error *err) SKY_NODISCARD;
/** Cancel: the callback runs soon with SKY_ECANCELED. */
SKY_EXTERN void sky_call_cancel(sky_call *call);

/** Continue a transfer that a streaming callback paused with SKY_HTTP_PAUSE (either
 *  direction). Nothing for a call that is not paused. Not after on_done. */
SKY_EXTERN void sky_call_resume(sky_call *call);

/**
 * Tell the rate limiter what the current attempt used, in tokens, when the reply says so
 * where the pipeline cannot read it (a streamed reply's last chunk). Call it from a
 * streaming callback; the attempt's own report then uses it.
 */
SKY_EXTERN void sky_call_set_usage(sky_call *call, int64_t tokens);

/**
 * Cancel every call that is not in the middle of an attempt: queued for a
 * concurrency slot, held by the rate limiter or the breaker, or waiting to
 * retry. Each reports SKY_ECANCELED soon, from the loop; calls on the wire
 * go on. For a graceful stop (SIGINT) that sends nothing new. Returns how
 * many were canceled.
 */
SKY_EXTERN size_t sky_pipeline_cancel_waiting(sky_pipeline *p);

/** How the endpoint behind a pipeline is doing, for progress lines and stop rules. */
typedef struct sky_pipeline_health {
    sky_breaker_state breaker; /**< CLOSED when the pipeline runs no breaker */
    uint64_t times_opened;     /**< CLOSED -> OPEN so far: an outage shorter than a poll shows */
    uint64_t failed_probes;    /**< half-open probes that failed (the breaker opened again) */
    uint64_t retry_in_ms;      /**< while OPEN: until the next probe may go */
    uint64_t answered;         /**< attempts that got an HTTP response, any status */
    sky_error last_fault;      /**< the last attempt that failed at the endpoint (transport
                                    error or 5xx); code 0 when none */
} sky_pipeline_health;

/** Fill @p out (caller's) with the endpoint's health as the pipeline sees it. */
SKY_EXTERN void sky_pipeline_get_health(const sky_pipeline *p, sky_pipeline_health *out);

/**
 * 1 when a reply is OpenAI's "no credit left": a 429 whose error names insufficient_quota
 * (as its code or its type). Kept for the callers written before the classifier hook: a
 * thin wrapper of sky_ai_quota_exhausted (skyio/ai.h), where OpenAI's rules now live.
 * @p body is borrowed for the call.
 */
SKY_EXTERN int sky_pipeline_quota_exhausted(int status, sky_span body);

/**
 * Hold (nonzero) or release (0) the sending of calls: while held, a call that
 * would start an attempt (a new one, or a retry) waits in the concurrency
 * queue instead; attempts on the wire go on and report as usual. A caller that
 * cannot keep up with the results (a journal behind on its writes) holds the
 * pipeline, so what it has been paid for and not yet kept stays bounded.
 * Releasing sends the waiting calls through admission at once, in order; their
 * callbacks may run before this returns (a call whose deadline passed).
 */
SKY_EXTERN void sky_pipeline_hold(sky_pipeline *p, int hold);

/** Calls waiting for the pipeline's admitter ask it again now (from the loop, not from
 *  inside this call). For the admitter, when tokens it waited for have come. */
SKY_EXTERN void sky_pipeline_admitter_wake(sky_pipeline *p);

/** Calls started and not yet reported. */
SKY_EXTERN size_t sky_pipeline_active(const sky_pipeline *p);
/** Attempts on the wire: sent and not yet answered. The rest of the active calls wait (for
 *  a slot, the rate limiter, a retry's backoff, the breaker or a token). */
SKY_EXTERN size_t sky_pipeline_on_wire(const sky_pipeline *p);
/** Active calls waiting out a retry's backoff (a failed attempt behind them, the next one
 *  due later): neither on the wire nor waiting for a slot. */
SKY_EXTERN size_t sky_pipeline_backing_off(const sky_pipeline *p);
/** The shared policies, for progress lines and summaries (borrowed; NULL when off). */
SKY_EXTERN sky_ratelimit *sky_pipeline_rate_limiter(sky_pipeline *p);
SKY_EXTERN sky_limiter *sky_pipeline_limiter(sky_pipeline *p);

#endif
