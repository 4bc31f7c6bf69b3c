/*
 * Which deployment serves a request: among those whose breaker lets calls in, those with
 * room now (their rate limiter and concurrency limit would not hold the call), drawn by
 * weight times headroom; when none has room, by weight among the full ones.
 */
#include <math.h>

#include "skyio/rand.h"
#include "skyio/route.h"

/* An open breaker whose wait is not over: a call there would be refused (or held) at once. */
static int refuses(const sky_route_target *t)
{
    sky_pipeline_health h;
    sky_pipeline_get_health(t->pipe, &h);
    return h.breaker == SKY_BREAKER_OPEN && h.retry_in_ms > 0;
}

int sky_route_usable(const sky_route_target *t)
{
    return t->pipe != NULL && !refuses(t);
}

/* ---- headroom ---- */

/* Bring the shadow bucket @p b, refilled at @p per_minute and one second deep, to @p now_ms;
 * its depth. Full when first seen. */
static double refill(sky_route_shadow *b, double per_minute, uint64_t now_ms)
{
    double cap = fmax(1, per_minute / 60);
    if (b->at_ms == 0)
        b->level = cap;
    else if (now_ms > b->at_ms)
        b->level = fmin(cap, b->level + (double)(now_ms - b->at_ms) * per_minute / 60000);
    b->at_ms = now_ms;
    return cap;
}

/*
 * How much of one second's requests and tokens the deployment's limiter would let through
 * now, in [0, 1]: the router's shadows of its two buckets, at the rates the limiter allows
 * now (given or learned), one second deep as the limiter's own, charged by each call
 * started there. A request sent where a bucket cannot pay for it would wait in the pipeline
 * while another deployment might take it at once. 1 when no limit is known; 0 while a
 * Retry-After pause lasts.
 */
static double rate_headroom(sky_route_target *t, uint64_t now_ms, int64_t est_tokens)
{
    sky_ratelimit_stats st;
    sky_ratelimit *rl = sky_pipeline_rate_limiter(t->pipe);
    if (rl == NULL)
        return 1;
    sky_ratelimit_get_stats(rl, &st);
    if (st.paused_ms > 0 || sky_ratelimit_peek(rl, est_tokens) > 0)
        return 0; /* the limiter itself would hold a call now */
    double room = 1;
    if (st.rpm > 0) {
        double cap = refill(&t->shadow_req, st.rpm, now_ms);
        room = t->shadow_req.level >= 1 ? t->shadow_req.level / cap : 0;
    }
    if (st.tpm > 0 && est_tokens > 0) {
        double cap = refill(&t->shadow_tok, st.tpm, now_ms);
        /* one larger than the bucket goes when it is full, as the limiter lets it */
        double need = fmin((double)est_tokens, cap);
        room = fmin(room, t->shadow_tok.level >= need ? t->shadow_tok.level / cap : 0);
    }
    return room;
}

/* Calls started there and not on the wire: waiting for admission, a slot or the rate. A
 * call sent there now would wait behind them, whatever the shadows say (they are the
 * router's guess; a limit learned in the middle of a burst can leave the limiter's own
 * bucket emptier). */
static size_t waiting(const sky_route_target *t)
{
    size_t active = sky_pipeline_active(t->pipe), wire = sky_pipeline_on_wire(t->pipe);
    return active > wire ? active - wire : 0;
}

/* The share of the deployment's concurrency limit still free, in [0, 1]. */
static double slot_headroom(const sky_route_target *t)
{
    sky_limiter *l = sky_pipeline_limiter(t->pipe);
    int limit = l ? sky_limiter_limit(l) : 0;
    if (limit <= 0)
        return 1;
    int used = sky_limiter_in_flight(l);
    return used >= limit ? 0 : (double)(limit - used) / limit;
}

void sky_route_charge(sky_route_target *t, int64_t est_tokens)
{
    if (t->shadow_req.at_ms != 0)
        t->shadow_req.level -= 1;
    if (t->shadow_tok.at_ms != 0)
        t->shadow_tok.level -= (double)(est_tokens > 0 ? est_tokens : 0);
}

/*
 * When every deployment is full, the call waits in one pipeline: in the one where it would
 * wait the least, by weight. Its wait there is the calls already waiting (and itself) over
 * the rate its limiter lets through, or over what its concurrency limit lets through (the
 * limit over the round trip), whichever is slower, plus a Retry-After pause. Drawn by
 * weight alone, a job's calls would queue evenly and the deployment with the smallest
 * quota would set the pace of all; this way each one's queue drains as fast as the
 * others', a job gets the sum of their rates, and a burst does not wait a second behind a
 * throttled deployment while its peer answers in milliseconds.
 */
#define ROUTE_RTT_UNKNOWN_S 0.1 /* a round trip not measured yet: an LLM call's order */

static double expected_wait(const sky_route_target *t)
{
    sky_ratelimit_stats st = {0};
    sky_limiter_stats ls = {0};
    sky_ratelimit *rl = sky_pipeline_rate_limiter(t->pipe);
    sky_limiter *l = sky_pipeline_limiter(t->pipe);
    if (rl)
        sky_ratelimit_get_stats(rl, &st);
    if (l)
        sky_limiter_get_stats(l, &ls);
    double queued = (double)waiting(t) + 1;
    double by_rate = st.rpm > 0 ? queued / (st.rpm / 60) : 0;
    uint64_t rtt_us = ls.short_rtt_us ? ls.short_rtt_us : ls.long_rtt_us;
    double rtt = rtt_us ? (double)rtt_us / 1e6 : ROUTE_RTT_UNKNOWN_S;
    double by_slots = ls.limit > 0 ? queued * rtt / ls.limit : 0;
    double paused = st.paused_ms > 0 ? (double)st.paused_ms / 1000 : 0;
    return t->weight > 0 ? (paused + fmax(by_rate, by_slots)) / t->weight : HUGE_VAL;
}

/* ---- the draw ---- */

typedef struct tier {
    int cand[SKY_ROUTE_MAX_DEPLOYMENTS];
    double score[SKY_ROUTE_MAX_DEPLOYMENTS];
    size_t n;
} tier;

static void add(tier *t, int i, double score)
{
    t->cand[t->n] = i;
    t->score[t->n++] = score;
}

/* A draw among the tier's candidates by score; -1 when no score is positive. */
static int draw(const tier *t, uint64_t *rng)
{
    double total = 0;
    for (size_t i = 0; i < t->n; i++)
        total += t->score[i];
    if (total <= 0)
        return -1;
    double at = (double)(sky_rand_splitmix64(rng) >> 11) / 9007199254740992.0 * total;
    for (size_t i = 0; i < t->n; i++) {
        if (t->score[i] > 0 && at < t->score[i])
            return t->cand[i];
        at -= t->score[i];
    }
    return t->cand[t->n - 1];
}

/* The full deployment with the shortest expected wait (ties to the first; the candidates
 * come in a random rotation, so ties spread); -1 when there is none. */
static int least_wait(const tier *t, uint64_t *rng)
{
    if (t->n == 0)
        return -1;
    size_t start = (size_t)(sky_rand_splitmix64(rng) % t->n), best = start;
    for (size_t k = 1; k < t->n; k++) {
        size_t i = (start + k) % t->n;
        if (t->score[i] < t->score[best])
            best = i;
    }
    return t->cand[best];
}

/* From the best tier that has one: a weighted draw, or its first (a standby of weight 0). */
static int from(const tier *t, uint64_t *rng)
{
    int i = draw(t, rng);
    return i >= 0 ? i : t->n > 0 ? t->cand[0] : -1;
}

int sky_route_pick(sky_route_target *const *targets, size_t n, uint64_t tried, int64_t est_tokens,
                   uint64_t now_ms, uint64_t *rng)
{
    tier ready, full, open; /* only .n set: a zeroed tier is 768 bytes, three every request */
    ready.n = full.n = open.n = 0;
    for (size_t i = 0; i < n && i < SKY_ROUTE_MAX_DEPLOYMENTS; i++) {
        sky_route_target *t = targets[i];
        if ((tried & (UINT64_C(1) << i)) || t->pipe == NULL)
            continue;
        double room = refuses(t) ? -1
                      : waiting(t) > 0
                          ? 0
                          : fmin(rate_headroom(t, now_ms, est_tokens), slot_headroom(t));
        if (room < 0)
            add(&open, (int)i, 0);
        else if (room > 0)
            add(&ready, (int)i, t->weight * room); /* the most headroom, by weight */
        else
            add(&full, (int)i, expected_wait(t));
    }
    /* every one full: the call waits in the pipeline where it waits the least; every one
     * open: try one anyway, so the caller hears why it failed */
    return ready.n ? from(&ready, rng) : full.n ? least_wait(&full, rng) : from(&open, rng);
}
