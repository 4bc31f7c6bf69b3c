/* skyio — a circuit breaker per endpoint: stop calling what keeps failing, probe it later. */
#ifndef SKYIO_BREAKER_H
#define SKYIO_BREAKER_H

#include "common.h"
#include "clock.h"

/*
 * CLOSED: requests go; `failure_threshold` consecutive failures open it.
 * OPEN: requests are refused for the open time (reset_ms, growing on failed
 * probes when max_reset_ms allows). When it has passed, the next
 * sky_breaker_allow moves to HALF_OPEN.
 * HALF_OPEN: at most `half_open_probes` requests at a time are let through;
 * the first success closes the breaker, a failure opens it again.
 *
 * Synchronous and single-threaded like the loop that owns it; time comes
 * from the injected clock. Results are attributed by when they arrive, not
 * by when their request was allowed: a late success in HALF_OPEN closes the
 * breaker (it is evidence the endpoint answers), results arriving while
 * OPEN are counted and otherwise ignored.
 */

typedef enum sky_breaker_state {
    SKY_BREAKER_CLOSED = 0,
    SKY_BREAKER_OPEN,
    SKY_BREAKER_HALF_OPEN
} sky_breaker_state;

/** How a breaker behaves. Fill with sky_breaker_options_init, then change fields. */
typedef struct sky_breaker_options {
    int failure_threshold; /**< consecutive failures that open it; default 5 */
    uint64_t reset_ms;     /**< how long it stays open before a probe; default 30000 */
    /**
     * 0 (default): every opening lasts reset_ms. Otherwise each failed probe
     * doubles the open time, up to this cap; closing resets it to reset_ms.
     */
    uint64_t max_reset_ms;
    int half_open_probes; /**< requests let through at a time in HALF_OPEN; default 1 */
    /**
     * Open only when the consecutive failures have gone on for this long, with no
     * success among them: failures among successes (a burst refused by a rate limiter,
     * a request the endpoint cannot serve) are not an endpoint that is down. 0
     * (default): the count alone.
     */
    uint64_t quiet_ms;
} sky_breaker_options;

/** What happened so far, for logs and metrics. */
typedef struct sky_breaker_counters {
    uint64_t opened;      /**< CLOSED -> OPEN */
    uint64_t reopened;    /**< HALF_OPEN -> OPEN (a probe failed) */
    uint64_t half_opened; /**< OPEN -> HALF_OPEN */
    uint64_t closed;      /**< HALF_OPEN -> CLOSED (a probe succeeded) */
    uint64_t allowed;     /**< sky_breaker_allow answers of 1 */
    uint64_t refused;     /**< sky_breaker_allow answers of 0 */
    uint64_t successes;   /**< results recorded, in any state */
    uint64_t failures;
} sky_breaker_counters;

/**
 * A breaker. Allocated by the caller (usually inside a per-endpoint
 * struct); no heap, nothing to free. The fields are private: use the
 * functions below.
 */
typedef struct sky_breaker {
    sky_breaker_options opts;
    const sky_clock *clock;
    sky_breaker_state state;
    int consecutive_failures;
    int probes_in_flight;
    uint64_t opened_at_ms;
    uint64_t open_ms;          /* how long this opening lasts */
    uint64_t failing_since_ms; /* when the current run of consecutive failures began */
    sky_breaker_counters counters;
} sky_breaker;

/** Set every field of @p opts to its default. */
SKY_EXTERN void sky_breaker_options_init(sky_breaker_options *opts);

/**
 * Start @p b CLOSED. @p opts is copied (NULL means defaults). @p clock is
 * borrowed and must outlive the breaker (NULL means the real clock).
 * Returns 0, or SKY_EINVAL (threshold or probes < 1, or a nonzero
 * max_reset_ms below reset_ms), leaving @p b unusable.
 */
SKY_EXTERN int sky_breaker_init(sky_breaker *b, const sky_breaker_options *opts,
                                const sky_clock *clock) SKY_NODISCARD;

/**
 * May a request go now? Returns 1 (then call sky_breaker_record, or
 * sky_breaker_cancel, exactly once when it ends) or 0. When 0 and
 * @p out_wait_ms is not NULL, it receives sky_breaker_wait_ms: a batch can
 * sleep that long and ask again, a library call fails fast.
 */
SKY_EXTERN int sky_breaker_allow(sky_breaker *b, uint64_t *out_wait_ms) SKY_NODISCARD;

/**
 * Record how an allowed request ended. A failure is what says the endpoint
 * is unwell (connection errors, 5xx, timeouts); the caller decides, and a
 * 4xx client error should be recorded as a success or cancelled.
 */
SKY_EXTERN void sky_breaker_record(sky_breaker *b, int success);

/**
 * An allowed request ended without a verdict (canceled by the caller):
 * frees its probe slot in HALF_OPEN, changes nothing else.
 */
SKY_EXTERN void sky_breaker_cancel(sky_breaker *b);

/**
 * Milliseconds until sky_breaker_allow could say yes: 0 when it would now;
 * while OPEN, the time left; in HALF_OPEN with every probe slot taken, the
 * probe's result decides, and this returns the current open time as a hint
 * (the wait should the probe fail).
 */
SKY_EXTERN uint64_t sky_breaker_wait_ms(const sky_breaker *b);

/** The state as of now: an OPEN breaker whose time is up reads HALF_OPEN. */
SKY_EXTERN sky_breaker_state sky_breaker_get_state(const sky_breaker *b);

/** Name of a state for logs ("closed", "open", "half-open"); never NULL. */
SKY_EXTERN const char *sky_breaker_state_name(int state);

/** Copy the counters into @p out. */
SKY_EXTERN void sky_breaker_get_counters(const sky_breaker *b, sky_breaker_counters *out);

#endif
