/* skyio — the retry policy: which outcomes to retry, how long to wait, and why. */
#ifndef SKYIO_RETRY_H
#define SKYIO_RETRY_H

#include "common.h"
#include "clock.h"
#include "error.h"
#include "headers.h"

/*
 * A pure, synchronous policy: given what one attempt returned, it decides
 * whether to try again and after how long. It never sleeps, allocates or
 * touches the network; the pipeline arms the timer. Time comes from an
 * injected clock and randomness from an injected generator, so every
 * schedule is reproducible in tests.
 */

/** How many decisions the log of one operation keeps (the most recent). The state is
 *  embedded in every call in flight, so this is memory per request: keep it small. */
#define SKY_RETRY_LOG_MAX 8
/** Room for one reason text, NUL included ("429 retry-after-ms=1200"). */
#define SKY_RETRY_REASON_MAX 64

/**
 * Settings of the policy. Fill with sky_retry_options_init() and change
 * what you need. The defaults follow azure-core: exponential backoff with
 * full jitter from 800 ms up to 60 s, at most 10 retries, the server's
 * requested wait honoured without a cap.
 */
typedef struct sky_retry_options {
    int max_retries;             /**< retries after the first attempt; default 10 */
    uint64_t base_ms;            /**< backoff ceiling of the first retry; default 800 */
    uint64_t cap_ms;             /**< backoff ceiling never exceeds this; default 60000 */
    uint64_t max_server_wait_ms; /**< cap on the server's requested wait; 0 = none (default) */
    int honour_server_wait;      /**< nonzero: wait as the server asks; default 1 */
    /** nonzero: also retry 409 and every 5xx (501, the 52x of a CDN in front), as OpenAI's
     *  SDKs do; default 0: azure-core's list (408, 429, 500, 502, 503, 504) */
    int openai_statuses;
    /** A service's own additions to the lists: nonzero for a failed status worth another
     *  try though the lists above say no (IMDS answers 404 and 410 while an identity is
     *  being assigned). A pure function of the status. NULL (default): none. */
    int (*also_retry)(int status);
} sky_retry_options;

/** Set every field of @p opts to its default. */
SKY_EXTERN void sky_retry_options_init(sky_retry_options *opts);

/** What to do after an attempt. */
typedef enum sky_retry_action {
    SKY_RETRY_NO = 0,       /**< done: success, or a failure that a retry cannot fix */
    SKY_RETRY_YES,          /**< wait delay_ms, then send again */
    SKY_RETRY_REFRESH_AUTH, /**< 401: get a fresh token (bypass the cache), then send again */
    SKY_RETRY_GIVE_UP       /**< a retry could help, but a limit forbids it: see `limit` */
} sky_retry_action;

/** Which limit stopped a retry that could have helped. */
typedef enum sky_retry_limit {
    SKY_RETRY_LIMIT_NONE = 0,
    SKY_RETRY_LIMIT_MAX_RETRIES, /**< options.max_retries reached */
    SKY_RETRY_LIMIT_DEADLINE     /**< the wait would reach the operation's deadline */
} sky_retry_limit;

/** One decision. Plain value; the reason is a copy. */
typedef struct sky_retry_decision {
    sky_retry_action action;
    sky_retry_limit limit; /**< set when action is SKY_RETRY_GIVE_UP */
    uint64_t delay_ms;     /**< wait before the next attempt (0 unless retrying) */
    /**
     * Why, for people: "429 retry-after-ms=1200", "ECONNRESET backoff=523",
     * "401 refresh-auth", "404 not retryable", "deadline: 503 backoff=2000".
     * A give-up reason begins with "deadline" or "max-retries".
     */
    char reason[SKY_RETRY_REASON_MAX];
} sky_retry_decision;

/** One logged decision. */
typedef struct sky_retry_log_entry {
    int attempt;       /**< 1 for the first attempt */
    int status;        /**< HTTP status of the attempt, 0 when none */
    int error_code;    /**< SKY_E... of the transport, 0 when none */
    uint64_t delay_ms; /**< wait chosen */
    sky_retry_action action;
    char reason[SKY_RETRY_REASON_MAX];
} sky_retry_log_entry;

/**
 * The policy's memory of one operation: attempts so far, whether the one
 * token refresh was used, the jitter generator and a ring of the last
 * SKY_RETRY_LOG_MAX decisions. Fixed size, no heap: embed it in the
 * operation. Read it through the functions below.
 */
typedef struct sky_retry_state {
    int attempts;       /**< decisions made, i.e. attempts finished */
    int retries;        /**< SKY_RETRY_YES decisions so far (the backoff exponent) */
    int auth_refreshed; /**< nonzero once SKY_RETRY_REFRESH_AUTH was given */
    int responses_429;  /**< attempts answered 429, all of them (the log keeps the last) */
    int held;           /**< retries held back unsent (sky_retry_decide_held), in `retries` */
    uint64_t rng;       /**< splitmix64 state for jitter when no generator is passed */
    sky_retry_log_entry log[SKY_RETRY_LOG_MAX];
} sky_retry_state;

/**
 * Start the state of a new operation. The jitter generator is seeded from
 * sky_rand_u64(), so processes started together do not retry in step.
 */
SKY_EXTERN void sky_retry_state_init(sky_retry_state *state);

/** A source of 64 random bits; @p ud is the caller's. */
typedef uint64_t (*sky_rand64_fn)(void *ud);

/**
 * splitmix64: a small, fast generator for jitter (not for secrets).
 * @p ud points at a uint64_t state, advanced on each call.
 */
SKY_EXTERN uint64_t sky_retry_splitmix64(void *ud);

/**
 * Whether a plain retry could help this outcome, by the status and error
 * lists alone: 1 for 408, 429, 500, 502, 503, 504 and for ECONNECT,
 * ECONNRESET, ETIMEDOUT, EPARTIAL, EPROTO; 0 for everything else, 401
 * included (it wants a token refresh first: see sky_retry_decide).
 * A transport error other than SKY_EHTTP decides over the status (a body
 * cut short under a 200 is EPARTIAL); an error code on neither list falls
 * back to its `retryable` flag. @p err may be NULL.
 */
SKY_EXTERN int sky_retry_is_retryable(int status, const sky_error *err);

/**
 * Record an attempt that the caller found final by what the lists cannot see (a 429
 * whose body says the account has no credit left): counted and logged as SKY_RETRY_NO
 * with the reason "<status> <reason>", in place of sky_retry_decide.
 */
SKY_EXTERN void sky_retry_record_final(sky_retry_state *state, int status, const char *reason);

/**
 * Decide what follows an attempt, record the decision in @p state's log
 * and write it to @p out.
 *
 * - @p status is the HTTP status (0 when no response); @p transport_err
 *   the attempt's error (NULL or code 0 when none); @p resp_headers the
 *   response's headers (NULL when none). All are borrowed for the call.
 * - `x-should-retry: true|false` (OpenAI) overrides the status lists for
 *   failed responses (not for transport errors, nor for 1xx-3xx). true on a
 *   401 still asks for the one token refresh first, then plain retries.
 * - A 401 gets SKY_RETRY_REFRESH_AUTH once per operation (delay 0, not
 *   counted against max_retries); a second 401 is final.
 * - The wait is the server's (retry-after-ms, x-ms-retry-after-ms,
 *   Retry-After) when given and honoured, capped by max_server_wait_ms;
 *   otherwise a full-jitter draw in [0, min(cap, base * 2^retries)].
 * - @p deadline_ms is a monotonic time from @p clock (0 = none): a retry
 *   whose wait would end at or after it gives up with limit DEADLINE.
 * - @p rand64 draws the jitter (with @p rand_ud); NULL uses the state's own.
 * - @p clock NULL means the real clock.
 *
 * Returns 0, or SKY_EINVAL when @p opts, @p state or @p out is NULL.
 */
SKY_EXTERN int sky_retry_decide(const sky_retry_options *opts, sky_retry_state *state, int status,
                                const sky_error *transport_err, const sky_headers *resp_headers,
                                const sky_clock *clock, uint64_t deadline_ms, sky_rand64_fn rand64,
                                void *rand_ud, sky_retry_decision *out) SKY_NODISCARD;

/**
 * A retry that could not be sent: something in front of the endpoint (an open circuit
 * breaker) held it back. It counts as one of the operation's retries, so max_retries bounds
 * the time an operation can take however long the hold lasts: SKY_RETRY_YES with a wait of
 * the smaller of this retry's backoff ceiling and @p hold_ms (when the hold may end), or
 * SKY_RETRY_GIVE_UP at max_retries or the deadline. @p what names the hold in the reason
 * ("circuit-open"). Not logged as an attempt: `attempts` counts attempts made.
 *
 * Returns 0, or SKY_EINVAL when @p opts, @p state, @p what or @p out is NULL.
 */
SKY_EXTERN int sky_retry_decide_held(const sky_retry_options *opts, sky_retry_state *state,
                                     const char *what, uint64_t hold_ms, const sky_clock *clock,
                                     uint64_t deadline_ms, sky_retry_decision *out) SKY_NODISCARD;

/** Decisions kept in the log: min(attempts, SKY_RETRY_LOG_MAX). */
SKY_EXTERN size_t sky_retry_log_count(const sky_retry_state *state);

/**
 * Kept entry @p i, 0 being the oldest kept; NULL past the end. Borrowed:
 * valid until the next sky_retry_decide or sky_retry_state_init on @p state.
 */
SKY_EXTERN const sky_retry_log_entry *sky_retry_log_at(const sky_retry_state *state, size_t i);

/**
 * Render the log as one line into @p out (always NUL-terminated, cut short
 * when too small): "#1 429 retry-after-ms=1200; #2 200 done", beginning
 * with "(N earlier) " when older entries fell out of the ring. Returns @p out.
 */
SKY_EXTERN const char *sky_retry_log_format(const sky_retry_state *state, char *out,
                                            size_t out_len);

#endif
