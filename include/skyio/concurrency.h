/* skyio — concurrency limiters: how many requests may be in flight to one endpoint. */
#ifndef SKYIO_CONCURRENCY_H
#define SKYIO_CONCURRENCY_H

#include "common.h"
#include "clock.h"

/*
 * A limiter is a counting semaphore whose size moves with what the server
 * tells us. It is synchronous and single-threaded (like the loop that owns
 * it): the pipeline calls sky_limiter_try_acquire before sending and
 * sky_limiter_release with the outcome and the round-trip time when the
 * request ends. Nothing here blocks, sleeps or touches the network; time
 * comes from the injected clock.
 */

/** Handle to a limiter (opaque). */
typedef struct sky_limiter sky_limiter;

/** The algorithm that moves the limit. */
typedef enum sky_limiter_kind {
    /**
     * Latency gradient, after Netflix concurrency-limits' Gradient2: the
     * limit follows long-term RTT / short-term RTT. The default.
     */
    SKY_LIMITER_GRADIENT = 0,
    /** Additive increase (+1 per window of successes), multiplicative decrease on overload. */
    SKY_LIMITER_AIMD,
    /** A plain semaphore of `initial` slots; outcomes never change it. */
    SKY_LIMITER_FIXED
} sky_limiter_kind;

/** How a request ended, as far as the limiter cares. */
typedef enum sky_limit_outcome {
    /** The server answered (2xx, or an answer that says nothing about load). */
    SKY_LIMIT_SUCCESS = 0,
    /** The server is overloaded: 429, 503, or a timeout. The limit goes down. */
    SKY_LIMIT_DROPPED,
    /** Says nothing about the server (4xx client error, cancel): the slot is freed, no sample. */
    SKY_LIMIT_IGNORE
} sky_limit_outcome;

/** How a limiter behaves. Fill with sky_limiter_options_init, then change fields. */
typedef struct sky_limiter_options {
    sky_limiter_kind kind; /**< default SKY_LIMITER_GRADIENT */
    int initial;           /**< starting limit (the fixed size for FIXED); default 20 */
    int min;               /**< the limit never goes below this; default 1 */
    int max;               /**< nor above this; default 1000 */
    /**
     * Multiplier applied to the limit on SKY_LIMIT_DROPPED (AIMD and
     * GRADIENT); default 0.5. Applied at most once per round trip: drops of
     * requests that were already in flight at the last decrease belong to
     * the same overload and are not counted again.
     */
    double backoff_ratio;
    /* The fields below tune GRADIENT only. */
    double smoothing;       /**< weight of each new limit estimate, (0, 1]; default 0.2 */
    int long_window;        /**< the long-term RTT averages over about this many windows; 600 */
    int window_min_samples; /**< a window closes after at least this many samples; default 10 */
    uint64_t window_min_ms; /**< ... and at least this much time; default 1000 */
    /**
     * How often to re-measure the no-load RTT by briefly holding the limit
     * at about sqrt(limit) (0 = never after the first); default 120000.
     */
    uint64_t probe_interval_ms;
    /**
     * GRADIENT: start like TCP's slow start instead of with a probe. Successes while the
     * limit binds add slots: two each (tripling the limit each round trip) while the
     * last round showed no queue, then one each (doubling), until the mean RTT of a round
     * passes 1.5 times the lowest seen (a server's queue has begun: the limit goes to the
     * server's rate times that lowest RTT, plus its square root), a drop, or max. The
     * lowest round is the no-load RTT the gradient then keeps to. Default 0 (off).
     */
    int slow_start;
} sky_limiter_options;

/** Set every field of @p opts to its default. */
SKY_EXTERN void sky_limiter_options_init(sky_limiter_options *opts);

/**
 * Create a limiter. @p opts is copied (NULL means defaults). @p clock is
 * borrowed and must outlive the limiter (NULL means the real clock).
 * Returns 0 and sets *out (free with sky_limiter_free), SKY_EINVAL for
 * out-of-range options (min < 1, max < min, initial outside [min, max],
 * ratios outside (0, 1], zero windows), or SKY_ENOMEM.
 */
SKY_EXTERN int sky_limiter_new(const sky_limiter_options *opts, const sky_clock *clock,
                               sky_limiter **out) SKY_NODISCARD;

/** Free a limiter (NULL is allowed). Requests still in flight are simply forgotten. */
SKY_EXTERN void sky_limiter_free(sky_limiter *lim);

/**
 * Take a slot. Returns 1 when the request may go (call sky_limiter_release
 * exactly once when it ends), 0 when the limit is reached (nothing taken;
 * try again after a release).
 */
SKY_EXTERN int sky_limiter_try_acquire(sky_limiter *lim) SKY_NODISCARD;

/**
 * Give back a slot taken by sky_limiter_try_acquire. @p outcome is a
 * sky_limit_outcome; @p rtt_us is the request's round-trip time in
 * microseconds (from send to the end of the answer, or to the first token
 * for streams; used by GRADIENT and by the once-per-round-trip rule for
 * drops). A release with nothing in flight is ignored and counted in
 * sky_limiter_stats.unmatched_releases, so a double release can never open
 * extra slots. An unknown outcome is treated as SKY_LIMIT_IGNORE.
 */
SKY_EXTERN void sky_limiter_release(sky_limiter *lim, int outcome, uint64_t rtt_us);

/**
 * A slot taken by sky_limiter_try_acquire whose request waits for something else
 * before it goes (a rate limiter's pacing): it still counts against the limit, but
 * not as use of it. While slots are parked and those in use never reach the limit,
 * the limit does not grow: the other limit decides what is in flight, and more
 * slots would only park more requests. Call sky_limiter_unpark when the request
 * goes (or before releasing the slot). More parks than slots taken are ignored.
 */
SKY_EXTERN void sky_limiter_park(sky_limiter *lim);

/** The parked slot's request goes now (see sky_limiter_park). Ignored when none is parked. */
SKY_EXTERN void sky_limiter_unpark(sky_limiter *lim);

/** The limit try_acquire enforces now (lower than the estimate while probing). */
SKY_EXTERN int sky_limiter_limit(const sky_limiter *lim);

/** How many slots are taken. */
SKY_EXTERN int sky_limiter_in_flight(const sky_limiter *lim);

/** What the limiter is doing, for progress lines, metrics and tests. */
typedef struct sky_limiter_stats {
    sky_limiter_kind kind;
    int limit;                   /**< enforced now (sky_limiter_limit) */
    int estimate;                /**< the algorithm's limit, probes aside */
    int in_flight;               /**< slots taken */
    int parked;                  /**< of those, parked (sky_limiter_park) */
    int probing;                 /**< nonzero while GRADIENT re-measures the no-load RTT */
    uint64_t long_rtt_us;        /**< GRADIENT: long-term RTT (0 before the first probe) */
    uint64_t short_rtt_us;       /**< GRADIENT: mean RTT of the last closed window */
    uint64_t acquired;           /**< try_acquire calls that took a slot */
    uint64_t rejected;           /**< try_acquire calls refused at the limit */
    uint64_t drops;              /**< releases with SKY_LIMIT_DROPPED */
    uint64_t decreases;          /**< times a drop lowered the limit */
    uint64_t unmatched_releases; /**< releases with nothing in flight (ignored) */
    int slow_start;              /**< nonzero while GRADIENT is still in its slow start */
} sky_limiter_stats;

/** Fill @p out with the current state. Changes nothing. */
SKY_EXTERN void sky_limiter_get_stats(const sky_limiter *lim, sky_limiter_stats *out);

/** Name of a kind for logs ("gradient", "aimd", "fixed"); never NULL. */
SKY_EXTERN const char *sky_limiter_kind_name(int kind);

#endif
