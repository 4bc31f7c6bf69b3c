/*
 * Which deployment serves a request: among those whose breaker lets calls in, those with
 * room now (their rate limiter and concurrency limit would not hold the call), drawn by
 * weight times headroom; when none has room, by weight among the full ones.
 */
#include <math.h>

#include "skyio/rand.h"
#include "internal.h"

/* The most deployments a model may have: the tried set of a request is a 64-bit mask. */
#define GW_MAX_DEPLOYMENTS 64

const gw_model *sky__gw_model_find(const gw_table *t, sky_span name)
{
    for (size_t i = 0; i < t->n_models; i++)
        if (sky_span_eq_cstr(name, t->models[i].name))
            return &t->models[i];
    return NULL;
}

/* An open breaker whose wait is not over: a call there would be refused at once. */
static int refuses(const gw_deployment *d)
{
    sky_pipeline_health h;
    sky_pipeline_get_health(d->pipe, &h);
    return h.breaker == SKY_BREAKER_OPEN && h.retry_in_ms > 0;
}

int sky__gw_usable(const gw_deployment *d)
{
    return d->pipe != NULL && !refuses(d);
}

/* ---- headroom ---- */

/* Bring the shadow bucket @p b, refilled at @p per_minute and one second deep, to @p now_ms;
 * its depth. Full when first seen. */
static double refill(gw_shadow *b, double per_minute, uint64_t now_ms)
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
 * now, in [0, 1]: the gateway's shadows of its two buckets, at the rates the limiter allows
 * now (given or learned), one second deep as the limiter's own, charged by each call the
 * gateway starts there. A request sent where a bucket cannot pay for it would wait in the
 * pipeline while another deployment might take it at once. 1 when no limit is known; 0
 * while a Retry-After pause lasts.
 */
static double rate_headroom(gw_deployment *d, uint64_t now_ms, int64_t est_tokens)
{
    sky_ratelimit_stats st;
    sky_ratelimit *rl = sky_pipeline_rate_limiter(d->pipe);
    if (rl == NULL)
        return 1;
    sky_ratelimit_get_stats(rl, &st);
    if (st.paused_ms > 0)
        return 0;
    double room = 1;
    if (st.rpm > 0) {
        double cap = refill(&d->shadow_req, st.rpm, now_ms);
        room = d->shadow_req.level >= 1 ? d->shadow_req.level / cap : 0;
    }
    if (st.tpm > 0 && est_tokens > 0) {
        double cap = refill(&d->shadow_tok, st.tpm, now_ms);
        /* one larger than the bucket goes when it is full, as the limiter lets it */
        double need = fmin((double)est_tokens, cap);
        room = fmin(room, d->shadow_tok.level >= need ? d->shadow_tok.level / cap : 0);
    }
    return room;
}

/* The share of the deployment's concurrency limit still free, in [0, 1]. */
static double slot_headroom(const gw_deployment *d)
{
    sky_limiter *l = sky_pipeline_limiter(d->pipe);
    int limit = l ? sky_limiter_limit(l) : 0;
    if (limit <= 0)
        return 1;
    int used = sky_limiter_in_flight(l);
    return used >= limit ? 0 : (double)(limit - used) / limit;
}

void sky__gw_charge(gw_deployment *d, int64_t est_tokens)
{
    if (d->shadow_req.at_ms != 0)
        d->shadow_req.level -= 1;
    if (d->shadow_tok.at_ms != 0)
        d->shadow_tok.level -= (double)(est_tokens > 0 ? est_tokens : 0);
}

/* A draw among @p cand (indexes into m->deps) by @p score; -1 when no score is positive. */
static int draw(sky_gateway *g, const int *cand, const double *score, size_t n)
{
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += score[i];
    if (total <= 0)
        return -1;
    double at = (double)(sky_rand_splitmix64(&g->rng) >> 11) / 9007199254740992.0 * total;
    for (size_t i = 0; i < n; i++) {
        if (score[i] > 0 && at < score[i])
            return cand[i];
        at -= score[i];
    }
    return cand[n - 1];
}

typedef struct tier {
    int cand[GW_MAX_DEPLOYMENTS];
    double score[GW_MAX_DEPLOYMENTS];
    size_t n;
} tier;

static void add(tier *t, int i, double score)
{
    t->cand[t->n] = i;
    t->score[t->n++] = score;
}

/* From the best tier that has one: a weighted draw, or its first (a standby of weight 0). */
static int from(sky_gateway *g, const tier *t)
{
    int i = draw(g, t->cand, t->score, t->n);
    return i >= 0 ? i : t->n > 0 ? t->cand[0] : -1;
}

int sky__gw_pick(sky_gateway *g, gw_table *t, const gw_model *m, uint64_t tried, int64_t est_tokens)
{
    tier ready = {.n = 0}, full = {.n = 0}, open = {.n = 0};
    uint64_t now = uv_now(g->loop);
    for (size_t i = 0; i < m->n_deps && i < GW_MAX_DEPLOYMENTS; i++) {
        gw_deployment *d = &t->deps[m->deps[i]];
        if (tried & (UINT64_C(1) << i))
            continue;
        double room = refuses(d) ? -1 : fmin(rate_headroom(d, now, est_tokens), slot_headroom(d));
        if (room < 0)
            add(&open, (int)i, 0);
        else if (room > 0)
            add(&ready, (int)i, d->weight * room); /* the most headroom, by weight */
        else
            add(&full, (int)i, d->weight);
    }
    /* every one full: the call waits in a pipeline; every one open: try one anyway, so the
     * client hears why it failed */
    return ready.n ? from(g, &ready) : full.n ? from(g, &full) : from(g, &open);
}
