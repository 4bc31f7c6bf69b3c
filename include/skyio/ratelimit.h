/* skyio — client-side rate limiter: paced request and token buckets that learn the quota. */
#ifndef SKYIO_RATELIMIT_H
#define SKYIO_RATELIMIT_H

#include "common.h"
#include "clock.h"
#include "headers.h"

/*
 * Two token buckets, one counting requests and one counting model tokens,
 * each refilled continuously at its per-minute rate and holding at most
 * burst_seconds' worth. Providers judge "per minute" limits over one- to
 * ten-second windows, so a bucket that saved a whole minute would turn a
 * burst into 429s; a small bucket paces requests instead.
 *
 * The limiter is synchronous and owns no timers: the caller asks
 * sky_ratelimit_acquire() whether a request may go now or how long to wait,
 * and reports every reply through sky_ratelimit_on_response(). Rates are
 * given, learned from x-ratelimit-* headers, or learned from 429s by
 * multiplicative decrease and a slow additive probe back up.
 *
 * A limiter is not thread-safe: it belongs to the loop that uses it.
 */
typedef struct sky_ratelimit sky_ratelimit;

/** How a limiter behaves. Fill with sky_ratelimit_options_init, then change fields. */
typedef struct sky_ratelimit_options {
    /** Requests per minute; a ceiling the limiter never exceeds. 0 = unknown. Default 0. */
    double rpm;
    /** Tokens per minute; a ceiling. 0 = unknown (no token limit until learned). Default 0. */
    double tpm;
    /** Bucket size in seconds of the current rate (at least one request). Default 1.0. */
    double burst_seconds;
    /** Learn from x-ratelimit-* headers and from 429s. Default 1 (on). */
    int learn;
    /** Starting requests per minute when rpm is unknown and learn is on. Default 60. */
    double initial_rpm;
    /**
     * With rpm unknown and learn on: do not pace at all until the provider shows a
     * limit (x-ratelimit-* headers, which set it, or a first 429, which starts pacing at
     * the rate of successes just measured, or at initial_rpm when none was). A server
     * with no limit is then never slowed by this limiter. Default 0 (off).
     */
    int unpaced_start;
    /** Multiplier applied to the rates on a 429, in (0, 1). Default 0.5. */
    double decrease_factor;
    /** 429s closer together than this count as one overload. Default 2000 ms. */
    int64_t decrease_cooldown_ms;
    /** Quiet time between two increases, and after a 429 before the first. Default 5000 ms. */
    int64_t increase_interval_ms;
    /**
     * Additive probe step, as a fraction of the rate at which the last 429
     * came; before any 429 the rate doubles each interval instead. Default 0.05.
     */
    double increase_fraction;
    /**
     * A remaining-requests or -tokens header below this fraction of the limit
     * slows the bucket so the rest lasts until the reset. Default 0.1.
     */
    double low_remaining_fraction;
    /** Learned rates never fall below these. Defaults 1 rpm and 100 tpm. */
    double min_rpm;
    double min_tpm;
} sky_ratelimit_options;

/** Set every field of @p opts to its default. */
SKY_EXTERN void sky_ratelimit_options_init(sky_ratelimit_options *opts);

/**
 * Create a limiter. @p opts is copied (NULL means defaults). @p clock is
 * borrowed and must outlive the limiter (NULL means the real clock).
 * The bucket starts full. Returns 0 and sets *out (free with
 * sky_ratelimit_free), SKY_EINVAL for out-of-range options, SKY_ENOMEM.
 */
SKY_EXTERN int sky_ratelimit_new(const sky_ratelimit_options *opts, const sky_clock *clock,
                                 sky_ratelimit **out) SKY_NODISCARD;

/** Free a limiter (NULL is allowed). */
SKY_EXTERN void sky_ratelimit_free(sky_ratelimit *rl);

/**
 * May a request costing @p est_tokens tokens go now? Returns 0 when it may,
 * and then charges one request and @p est_tokens tokens; otherwise returns
 * the milliseconds (> 0) to wait before asking again, and charges nothing.
 * A request larger than the token bucket passes when the bucket is full and
 * leaves it in debt, so big requests are slowed, never starved.
 */
SKY_EXTERN int64_t sky_ratelimit_acquire(sky_ratelimit *rl, int64_t est_tokens);

/**
 * What acquire() would say now, without charging or changing anything: 0 when a request of
 * @p est_tokens would go at once, else the milliseconds it would wait (a Retry-After pause
 * included). For a router choosing among several limiters (skyio/route.h).
 */
SKY_EXTERN int64_t sky_ratelimit_peek(const sky_ratelimit *rl, int64_t est_tokens);

/**
 * Report the reply to a request that acquire() let through.
 * @p status is the HTTP status (0 when there was no reply); @p headers are
 * the reply's headers, borrowed for the call (NULL when none).
 * @p est_tokens is what acquire() charged; @p actual_tokens is the usage the
 * reply reported (prompt + completion), or -1 when unknown. The difference
 * is given back or charged. Pass 0 for a request the provider refused
 * without charging, to refund its estimate.
 *
 * A 429 pauses the limiter for its Retry-After (always honoured) and, when
 * learning, multiplies the rates by decrease_factor at most once per
 * decrease_cooldown_ms. x-ratelimit-limit-* headers set the ceilings;
 * a low x-ratelimit-remaining-* slows the bucket until the matching
 * x-ratelimit-reset-*.
 */
SKY_EXTERN void sky_ratelimit_on_response(sky_ratelimit *rl, int status, const sky_headers *headers,
                                          int64_t est_tokens, int64_t actual_tokens);

/**
 * Tokens a chat request will be charged before it runs: the prompt at about
 * four characters per token, plus @p max_tokens (Azure charges the whole
 * max_tokens up front). A negative @p max_tokens counts as 0.
 */
SKY_EXTERN int64_t sky_ratelimit_estimate_tokens(size_t prompt_chars, int64_t max_tokens);

/** What the limiter is doing, for progress lines and summaries. */
typedef struct sky_ratelimit_stats {
    double rpm;               /**< requests per minute allowed now; 0 = unlimited */
    double tpm;               /**< tokens per minute allowed now; 0 = unlimited */
    double rpm_ceiling;       /**< given or learned ceiling; 0 = none known */
    double tpm_ceiling;       /**< given or learned ceiling; 0 = none known */
    int64_t wait_ms;          /**< total time at least one request was held back */
    int64_t paused_ms;        /**< time left in a Retry-After or reset pause; 0 = none */
    uint64_t granted;         /**< requests let through */
    uint64_t responses_429;   /**< 429 replies reported */
    uint64_t decreases;       /**< times a 429 lowered the rates */
    int64_t tokens_corrected; /**< sum of (actual - estimate) over replies with usage */
} sky_ratelimit_stats;

/** Fill @p out with the current state (reads the clock; changes nothing). */
SKY_EXTERN void sky_ratelimit_get_stats(const sky_ratelimit *rl, sky_ratelimit_stats *out);

#endif
