/*
 * Concurrency limiters: FIXED, AIMD and a latency-gradient limiter.
 *
 * The gradient limiter follows Netflix concurrency-limits' Gradient2: RTT
 * samples are gathered into windows; each window's lower quartile is the
 * short-term RTT (see window_short_rtt), a slow exponential average of those
 * is the long-term RTT, and
 *
 *     gradient  = clamp(long / short, 0.5, 1.0)
 *     new_limit = limit * gradient + sqrt(limit)
 *     limit     = limit * (1 - smoothing) + new_limit * smoothing
 *
 * Gradient2 alone only sees changes in latency: a limiter that starts far
 * above the server's capacity learns the queueing latency as "normal" and
 * never comes down. So, like Gradient (v1) and BBR's ProbeRTT, it
 * re-measures the no-load RTT at the start and then every
 * probe_interval_ms: the limit is held at about sqrt(limit) until the
 * requests sent before the probe have drained, the mean RTT of the next
 * window_min_samples requests becomes the long-term RTT, and the limit is
 * given back. Overload signals (429, 503, timeouts) cut the limit at once.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/concurrency.h"
#include "skyio/error.h"

/* RTTs kept per gradient window (a reservoir sample beyond that) for its quantile. */
#define WINDOW_SAMPLES_MAX 256

struct sky_limiter {
    sky_limiter_options opts;
    const sky_clock *clock;
    int in_flight;
    int parked;      /* slots taken whose requests wait for something else (sky_limiter_park) */
    double estimate; /* the algorithm's limit, probes aside */

    /* Once-per-round-trip rule for drops. */
    int has_decreased;
    uint64_t last_decrease_us;

    /* The current window (AIMD counts successes, GRADIENT also sums RTTs). */
    int window_count;
    int window_peak;   /* most slots in use at once during the window (parked ones aside) */
    int window_parked; /* a slot was parked during the window */
    double window_rtt_sum;
    double window_samples[WINDOW_SAMPLES_MAX]; /* GRADIENT: the window's RTTs, or a sample */
    int window_nsamples;
    uint64_t window_seen, rng;
    uint64_t window_start_ms;

    /* GRADIENT */
    double long_rtt;  /* microseconds; 0 until the first probe ends */
    double short_rtt; /* mean of the last closed window */
    int probing;
    int probe_limit;
    int probe_drained;
    uint64_t probe_clean_from_us; /* samples of requests sent from here on are clean */
    int probe_count;
    double probe_rtt_sum;
    uint64_t last_probe_ms;
    int slow;              /* in slow start */
    uint64_t slow_end_us;  /* when it ended: samples of requests sent before are stale */
    double slow_min_rtt;   /* the lowest round mean of the slow start */
    double slow_best_rate; /* completions per microsecond of the round that last grew it */
    int slow_stalls;       /* rounds since the rate last grew by SLOW_RATE_GROWTH */

    uint64_t acquired, rejected, drops, decreases, unmatched_releases;
};

void sky_limiter_options_init(sky_limiter_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->kind = SKY_LIMITER_GRADIENT;
    opts->initial = 20;
    opts->min = 1;
    opts->max = 1000;
    opts->backoff_ratio = 0.5;
    opts->smoothing = 0.2;
    opts->long_window = 600;
    opts->window_min_samples = 10;
    opts->window_min_ms = 1000;
    opts->probe_interval_ms = 120000;
}

static int ratio_ok(double r)
{
    return r > 0.0 && r <= 1.0;
}

static int options_valid(const sky_limiter_options *o)
{
    if (o->kind == SKY_LIMITER_FIXED)
        return o->initial >= 1;
    if (o->kind != SKY_LIMITER_GRADIENT && o->kind != SKY_LIMITER_AIMD)
        return 0;
    if (o->min < 1 || o->max < o->min || o->initial < o->min || o->initial > o->max)
        return 0;
    return ratio_ok(o->backoff_ratio) && ratio_ok(o->smoothing) && o->long_window >= 1 &&
           o->window_min_samples >= 1;
}

static uint64_t now_ms(const sky_limiter *lim)
{
    return sky_clock_now_ms(lim->clock);
}

static uint64_t now_us(const sky_limiter *lim)
{
    return now_ms(lim) * 1000u;
}

/* When a request that took rtt_us and ends now was sent. */
static uint64_t sent_at_us(const sky_limiter *lim, uint64_t rtt_us)
{
    uint64_t now = now_us(lim);
    return rtt_us < now ? now - rtt_us : 0;
}

static void window_reset(sky_limiter *lim)
{
    lim->window_count = 0;
    lim->window_peak = lim->in_flight - lim->parked;
    lim->window_parked = lim->parked > 0;
    lim->window_rtt_sum = 0.0;
    lim->window_nsamples = 0;
    lim->window_seen = 0;
    lim->window_start_ms = now_ms(lim);
}

static int probe_limit_for(const sky_limiter *lim)
{
    int p = (int)ceil(sqrt(lim->estimate));
    if (p < lim->opts.min)
        p = lim->opts.min;
    return p < (int)lim->estimate ? p : (int)lim->estimate;
}

/* Hold the limit low until old requests drain, then measure the no-load RTT. */
static void probe_start(sky_limiter *lim)
{
    lim->probing = 1;
    lim->probe_limit = probe_limit_for(lim);
    lim->probe_drained = 0;
    lim->probe_count = 0;
    lim->probe_rtt_sum = 0.0;
    if (lim->in_flight <= lim->probe_limit) {
        lim->probe_drained = 1;
        lim->probe_clean_from_us = now_us(lim);
    }
}

static void probe_finish(sky_limiter *lim)
{
    lim->long_rtt = lim->probe_rtt_sum / lim->probe_count;
    lim->probing = 0;
    lim->last_probe_ms = now_ms(lim);
    window_reset(lim);
}

int sky_limiter_new(const sky_limiter_options *opts, const sky_clock *clock, sky_limiter **out)
{
    sky_limiter_options defaults;
    if (opts == NULL) {
        sky_limiter_options_init(&defaults);
        opts = &defaults;
    }
    *out = NULL;
    if (!options_valid(opts))
        return SKY_EINVAL;
    sky_limiter *lim = calloc(1, sizeof(*lim));
    if (lim == NULL)
        return SKY_ENOMEM;
    lim->opts = *opts;
    lim->clock = clock;
    lim->estimate = opts->initial;
    window_reset(lim);
    /* The gradient needs a no-load RTT before it means anything: a probe measures it,
     * or the slow start's quietest round does. */
    if (opts->kind == SKY_LIMITER_GRADIENT && opts->slow_start)
        lim->slow = 1;
    else if (opts->kind == SKY_LIMITER_GRADIENT)
        probe_start(lim);
    *out = lim;
    return 0;
}

void sky_limiter_free(sky_limiter *lim)
{
    free(lim);
}

int sky_limiter_limit(const sky_limiter *lim)
{
    int limit = (int)lim->estimate;
    if (lim->probing && lim->probe_limit < limit)
        limit = lim->probe_limit;
    return limit;
}

int sky_limiter_in_flight(const sky_limiter *lim)
{
    return lim->in_flight;
}

int sky_limiter_try_acquire(sky_limiter *lim)
{
    if (lim->in_flight >= sky_limiter_limit(lim)) {
        lim->rejected++;
        return 0;
    }
    lim->in_flight++;
    lim->acquired++;
    if (lim->in_flight - lim->parked > lim->window_peak)
        lim->window_peak = lim->in_flight - lim->parked;
    return 1;
}

void sky_limiter_park(sky_limiter *lim)
{
    if (lim->parked >= lim->in_flight)
        return;
    lim->parked++;
    lim->window_parked = 1;
}

void sky_limiter_unpark(sky_limiter *lim)
{
    if (lim->parked <= 0)
        return;
    lim->parked--;
    if (lim->in_flight - lim->parked > lim->window_peak)
        lim->window_peak = lim->in_flight - lim->parked;
}

static void clamp_estimate(sky_limiter *lim)
{
    if (lim->estimate < lim->opts.min)
        lim->estimate = lim->opts.min;
    if (lim->estimate > lim->opts.max)
        lim->estimate = lim->opts.max;
}

/*
 * A burst of 429s from requests that were all in flight together is one
 * overload, not many: like TCP, cut once per round trip, so only a drop of
 * a request sent after the last cut counts.
 */
static void slow_exit(sky_limiter *lim, double round_rtt, double round_per_us);

static void on_drop(sky_limiter *lim, uint64_t rtt_us)
{
    lim->drops++;
    if (lim->opts.kind == SKY_LIMITER_FIXED)
        return;
    if (lim->slow)
        slow_exit(lim, 0.0, 0.0);
    if (lim->has_decreased && sent_at_us(lim, rtt_us) < lim->last_decrease_us)
        return;
    lim->estimate = floor(lim->estimate * lim->opts.backoff_ratio);
    clamp_estimate(lim);
    lim->has_decreased = 1;
    lim->last_decrease_us = now_us(lim);
    lim->decreases++;
    if (lim->probing && lim->probe_limit > (int)lim->estimate)
        lim->probe_limit = (int)lim->estimate;
    window_reset(lim);
}

/*
 * A window in which slots were parked (their requests waited for a rate limiter) and the
 * slots in use never reached the limit: the rate, not the limit, set what was in flight.
 */
static int window_rate_bound(const sky_limiter *lim)
{
    return lim->window_parked && lim->window_peak < (int)lim->estimate;
}

/*
 * A window that never had half the limit in use says nothing about the
 * limit (the caller had too little work): growing on it would let an idle
 * limiter creep to max and then flood the server when work arrives.
 *
 * Nor does a rate-bound one: growing on it would raise the limit with no evidence
 * for as long as the rate binds (TCP's rule: grow only when the window is full).
 * The limit then stays near the rate times the latency.
 */
static int window_app_limited(const sky_limiter *lim)
{
    return window_rate_bound(lim) || lim->window_peak * 2 < (int)lim->estimate;
}

/* AIMD: one window is `limit` successes, about one round trip of traffic. */
static void aimd_on_success(sky_limiter *lim)
{
    if (++lim->window_count < (int)lim->estimate)
        return;
    if (!window_app_limited(lim)) {
        lim->estimate += 1.0;
        clamp_estimate(lim);
    }
    window_reset(lim);
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void gradient_update_long(sky_limiter *lim, double short_rtt)
{
    double alpha = 2.0 / (lim->opts.long_window + 1.0);
    lim->long_rtt += alpha * (short_rtt - lim->long_rtt);
    /* Latency is back to normal after a long overload: forget it faster (Gradient2). */
    if (lim->long_rtt > 2.0 * short_rtt)
        lim->long_rtt *= 0.95;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Keep @p rtt in the window's sample: all of them up to WINDOW_SAMPLES_MAX, then each
 * with an equal chance (reservoir sampling). */
static void window_keep(sky_limiter *lim, double rtt)
{
    uint64_t seen = lim->window_seen++;
    if (lim->window_nsamples < WINDOW_SAMPLES_MAX) {
        lim->window_samples[lim->window_nsamples++] = rtt;
        return;
    }
    lim->rng = lim->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t j = (lim->rng >> 11) % (seen + 1);
    if (j < WINDOW_SAMPLES_MAX)
        lim->window_samples[j] = rtt;
}

/*
 * The window's short-term RTT: its lower quartile, not its mean. An LLM's replies take
 * longer the longer they are, and within requests sent together the short ones end first:
 * after the limit drops, the windows that follow hold mostly long replies and their mean
 * rises with no queue at all, which would cut the limit again (and again). A queue delays
 * every request, the quick ones too, so the lower quartile still sees it.
 */
static double window_short_rtt(sky_limiter *lim)
{
    int n = lim->window_nsamples;
    if (n == 0)
        return lim->window_rtt_sum / lim->window_count;
    qsort(lim->window_samples, (size_t)n, sizeof(double), cmp_double);
    return lim->window_samples[(n + 1) / 4]; /* the quartile, rounded: (n - 1) / 4 + 1/2 */
}

static void gradient_close_window(sky_limiter *lim)
{
    double short_rtt = window_short_rtt(lim);
    lim->short_rtt = short_rtt;
    gradient_update_long(lim, short_rtt);
    if (!window_app_limited(lim) && short_rtt > 0.0) {
        double gradient = clampd(lim->long_rtt / short_rtt, 0.5, 1.0);
        double next = lim->estimate * gradient + sqrt(lim->estimate);
        double s = lim->opts.smoothing;
        lim->estimate = lim->estimate * (1.0 - s) + next * s;
        clamp_estimate(lim);
    }
    window_reset(lim);
    uint64_t every = lim->opts.probe_interval_ms;
    if (every != 0 && now_ms(lim) - lim->last_probe_ms >= every)
        probe_start(lim);
}

static void probe_on_success(sky_limiter *lim, uint64_t rtt_us)
{
    if (!lim->probe_drained || sent_at_us(lim, rtt_us) < lim->probe_clean_from_us)
        return; /* sent while the old, higher limit was in force */
    lim->probe_rtt_sum += (double)rtt_us;
    if (++lim->probe_count >= lim->opts.window_min_samples)
        probe_finish(lim);
}

/*
 * The slow start ends: the gradient keeps the quietest round's RTT from here on. When a
 * queue ended it, the server's rate times that RTT is what it serves at once (BBR's
 * bandwidth-delay product): the limit goes there, with a queue of its square root.
 */
static void slow_exit(sky_limiter *lim, double round_rtt, double round_per_us)
{
    lim->slow = 0;
    lim->slow_end_us = now_us(lim);
    if (lim->slow_min_rtt <= 0.0) {
        probe_start(lim); /* ended before a whole round: measure as a cold start does */
        return;
    }
    lim->long_rtt = lim->slow_min_rtt;
    lim->last_probe_ms = now_ms(lim);
    if (round_rtt <= 0.0)
        return;
    double bdp = round_per_us * lim->slow_min_rtt;
    if (bdp <= 0.0) /* no time passed in the round: what a gradient window would do */
        bdp = lim->estimate * clampd(lim->slow_min_rtt / round_rtt, 0.5, 1.0);
    if (bdp < lim->estimate)
        lim->estimate = bdp + sqrt(bdp);
    clamp_estimate(lim);
}

/* Slots added per success in slow start while the last round showed no queue at all
 * (within SLOW_CLEAR_RATIO of the quietest): the limit triples each round trip, so 16
 * reach a thousand in four round trips rather than six. Once latency creeps up, one slot
 * a success (doubling), so the knee is not overshot by much. */
#define SLOW_GROWTH 2.0
#define SLOW_CLEAR_RATIO 1.2

/* Latency a round may add over the quietest one before a queue is taken to have formed. */
#define SLOW_EXIT_RATIO 1.5
/* A round whose delivery rate is not this much over the best before it has stalled. */
#define SLOW_RATE_GROWTH 1.25

/*
 * Slow start: more slots per success while the limit binds (see SLOW_GROWTH); a round
 * closes after a quarter of a limit's worth of samples and at least one round trip (the
 * quietest round's), so its rate is not one cohort's burst of replies. It ends at the
 * knee: when a round's mean RTT is SLOW_EXIT_RATIO over the quietest AND its rate stopped
 * growing (BBR's full pipe). Latency alone misleads when replies vary in length: within
 * requests sent together the short ones end first, so later rounds look slower with no
 * queue at all, while the rate still grows with the limit.
 */
static void slow_on_success(sky_limiter *lim, uint64_t rtt_us)
{
    lim->window_rtt_sum += (double)rtt_us;
    lim->window_count++;
    if (!window_app_limited(lim)) {
        lim->estimate += lim->slow_min_rtt > 0.0 && lim->short_rtt > 0.0 &&
                                 lim->short_rtt <= SLOW_CLEAR_RATIO * lim->slow_min_rtt
                             ? SLOW_GROWTH
                             : 1.0;
        clamp_estimate(lim);
    }
    int round = (int)(lim->estimate / 4);
    uint64_t took_us = now_us(lim) - lim->window_start_ms * 1000u;
    if (lim->window_count <
            (round > lim->opts.window_min_samples ? round : lim->opts.window_min_samples) ||
        (double)took_us < lim->slow_min_rtt)
        return;
    double mean = lim->window_rtt_sum / lim->window_count;
    double per_us = took_us > 0 ? (double)lim->window_count / (double)took_us : 0.0;
    int rate_bound = window_rate_bound(lim);
    lim->short_rtt = mean;
    window_reset(lim);
    if (rate_bound) {
        /* its delivery rate is the rate limiter's: no sign of the server's knee (ending
         * here set the limit to that rate times the RTT, far under what the server takes
         * once the rate rises); the slow start goes on when the limit binds again */
        if (lim->slow_min_rtt <= 0.0 || mean < lim->slow_min_rtt)
            lim->slow_min_rtt = mean;
        return;
    }
    if (per_us >= SLOW_RATE_GROWTH * lim->slow_best_rate) {
        lim->slow_best_rate = per_us;
        lim->slow_stalls = 0;
    } else
        lim->slow_stalls++;
    if (lim->slow_min_rtt <= 0.0 || mean < lim->slow_min_rtt)
        lim->slow_min_rtt = mean;
    else if (mean > SLOW_EXIT_RATIO * lim->slow_min_rtt && lim->slow_stalls > 0)
        slow_exit(lim, mean, per_us);
    if (lim->slow && lim->estimate >= lim->opts.max)
        slow_exit(lim, 0.0, 0.0); /* at the cap: nothing more to find */
}

static void gradient_on_success(sky_limiter *lim, uint64_t rtt_us)
{
    if (lim->slow) {
        slow_on_success(lim, rtt_us);
        return;
    }
    if (lim->probing) {
        probe_on_success(lim, rtt_us);
        return;
    }
    /* sent before the slow start ended: it waited in the queue that ended it, which the
     * new limit is already draining; counting it would cut the limit twice */
    if (sent_at_us(lim, rtt_us) < lim->slow_end_us)
        return;
    lim->window_rtt_sum += (double)rtt_us;
    lim->window_count++;
    window_keep(lim, (double)rtt_us);
    if (lim->window_count >= lim->opts.window_min_samples &&
        now_ms(lim) - lim->window_start_ms >= lim->opts.window_min_ms)
        gradient_close_window(lim);
}

/* Every request sent from the moment few enough are in flight is a clean probe sample. */
static void probe_check_drained(sky_limiter *lim)
{
    if (lim->probing && !lim->probe_drained && lim->in_flight <= lim->probe_limit) {
        lim->probe_drained = 1;
        lim->probe_clean_from_us = now_us(lim);
    }
}

void sky_limiter_release(sky_limiter *lim, int outcome, uint64_t rtt_us)
{
    if (lim->in_flight <= 0) {
        lim->unmatched_releases++;
        return;
    }
    lim->in_flight--;
    if (lim->parked > lim->in_flight)
        lim->parked = lim->in_flight; /* a parked slot released without sky_limiter_unpark */
    if (outcome == SKY_LIMIT_DROPPED) {
        on_drop(lim, rtt_us);
    } else if (outcome == SKY_LIMIT_SUCCESS) {
        if (lim->opts.kind == SKY_LIMITER_AIMD)
            aimd_on_success(lim);
        else if (lim->opts.kind == SKY_LIMITER_GRADIENT)
            gradient_on_success(lim, rtt_us);
    }
    probe_check_drained(lim);
}

void sky_limiter_get_stats(const sky_limiter *lim, sky_limiter_stats *out)
{
    out->kind = lim->opts.kind;
    out->limit = sky_limiter_limit(lim);
    out->estimate = (int)lim->estimate;
    out->in_flight = lim->in_flight;
    out->parked = lim->parked;
    out->probing = lim->probing;
    out->long_rtt_us = (uint64_t)lim->long_rtt;
    out->short_rtt_us = (uint64_t)lim->short_rtt;
    out->acquired = lim->acquired;
    out->rejected = lim->rejected;
    out->drops = lim->drops;
    out->decreases = lim->decreases;
    out->unmatched_releases = lim->unmatched_releases;
    out->slow_start = lim->slow;
}

const char *sky_limiter_kind_name(int kind)
{
    switch (kind) {
    case SKY_LIMITER_GRADIENT:
        return "gradient";
    case SKY_LIMITER_AIMD:
        return "aimd";
    case SKY_LIMITER_FIXED:
        return "fixed";
    default:
        return "unknown";
    }
}
