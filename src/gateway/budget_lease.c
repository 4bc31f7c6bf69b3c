/*
 * A key's minute budget shared by gateways side by side: the bucket lives in Redis
 * (budget_shared.c asks it; src/store/redis.c holds its script) and each gateway leases
 * small chunks of it (about 2% of the minute's budget, at least 1), spending them here
 * without a round trip. The next chunk is asked ahead of time when the lease runs low (not
 * near the bucket's bottom, where an idle chunk would be refused to the others), one lease
 * in flight a key. While the lease is empty and the shared bucket had room at its
 * last answer, a call may be let through ahead of the lease (at most one chunk, or its own
 * tokens, owed): the key's use can pass its budget by at most that debt a gateway. A call
 * refused only because the debt is full while the lease is on its way waits for the lease
 * (call.c, at most GW_LEASE_AWAIT_MS) and is decided again: no false 429 when Redis is slow. Tokens
 * settled against usage go back with the next lease. When Redis is away the local bucket takes over
 * from what the shared one had, and the shared one is asked again every LEASE_RETRY_MS. Time comes
 * in as an argument.
 */
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "store/store.h"

#define LEASE_RETRY_MS 1000
/* an empty shared bucket is asked again after its wait, but at least this often */
#define LEASE_WAIT_MAX_MS 1000

static double chunk_of(double per_minute)
{
    return per_minute > 0 ? fmax(1, ceil(per_minute * 0.02)) : 0;
}

/* The shared bucket as this gateway sees it: its last answer and the lease left. */
static void lease_view(const gw_budget *b, uint64_t now_ms, gw_budget_view *v)
{
    const gw_lease *l = &b->lease;
    /* what was borrowed is already off the level */
    double reqs = fmax(0, l->level_reqs + fmax(0, l->reqs));
    double toks = fmax(0, l->level_toks + fmax(0, l->toks));
    double since = now_ms > l->answered_ms ? (double)(now_ms - l->answered_ms) : 0;
    v->rpm = b->rpm;
    v->tpm = b->tpm;
    v->reqs_left = (int64_t)floor(reqs);
    v->toks_left = (int64_t)floor(toks);
    v->reqs_reset_ms = b->rpm > 0 ? (uint64_t)ceil((b->rpm - reqs) * 60000.0 / b->rpm) : 0;
    v->toks_reset_ms = b->tpm > 0 ? (uint64_t)ceil((b->tpm - toks) * 60000.0 / b->tpm) : 0;
    v->reqs_reset_ms = since < (double)v->reqs_reset_ms ? v->reqs_reset_ms - (uint64_t)since : 0;
    v->toks_reset_ms = since < (double)v->toks_reset_ms ? v->toks_reset_ms - (uint64_t)since : 0;
}

/* How long a refused call should wait: the bucket's wait at its last answer, else the time
 * @p level takes to reach @p want at @p rate from then; at least a millisecond. */
static uint64_t retry_of(const gw_lease *l, uint64_t now_ms, double level, double want, double rate)
{
    uint64_t until = l->answered_ms + l->wait_ms;
    if (l->wait_ms > 0 && until > now_ms)
        return until - now_ms;
    double ms = level >= want ? 1 : ceil((want - level) * 60000.0 / rate);
    uint64_t since = now_ms > l->answered_ms ? now_ms - l->answered_ms : 0;
    return (uint64_t)ms > since ? (uint64_t)ms - since : 1;
}

int sky__gw_lease_take(gw_budget *b, uint64_t now_ms, int64_t tokens, gw_budget_view *out)
{
    gw_lease *l = &b->lease;
    memset(out, 0, sizeof(*out));
    l->shared = 1;
    double t = b->tpm > 0 ? fmin((double)(tokens > 0 ? tokens : 0), b->tpm) : 0;
    double br = b->rpm > 0 && l->reqs < 1 ? 1 : 0; /* to borrow */
    double bt = b->tpm > 0 && l->toks < t ? t - fmax(0, l->toks) : 0;
    int ok_r = br == 0 || (l->level_reqs >= 1 && l->reqs - 1 >= -chunk_of(b->rpm));
    int ok_t = bt == 0 || (l->level_toks >= bt && l->toks - t >= -fmax(chunk_of(b->tpm), t));
    if (ok_r && ok_t) {
        l->reqs -= b->rpm > 0 ? 1 : 0;
        l->toks -= t;
        l->level_reqs -= br;
        l->level_toks -= bt;
        out->charged = (int64_t)t;
    } else if (!ok_r) {
        out->refused = GW_BUDGET_REQUESTS;
        out->retry_ms = retry_of(l, now_ms, fmax(0, l->level_reqs + fmax(0, l->reqs)), 1, b->rpm);
    } else {
        out->refused = GW_BUDGET_TOKENS;
        l->need_toks = l->need_toks > (int64_t)t ? l->need_toks : (int64_t)t;
        out->retry_ms = retry_of(l, now_ms, fmax(0, l->level_toks + fmax(0, l->toks)), t, b->tpm);
    }
    lease_view(b, now_ms, out);
    return out->refused ? -1 : 0;
}

int sky__gw_lease_awaited(const gw_budget *b, int64_t tokens)
{
    const gw_lease *l = &b->lease;
    if (!l->leasing || l->state == GW_LEASE_LOCAL)
        return 0;
    double t = b->tpm > 0 ? fmin((double)(tokens > 0 ? tokens : 0), b->tpm) : 0;
    double br = b->rpm > 0 && l->reqs < 1 ? 1 : 0;
    double bt = b->tpm > 0 && l->toks < t ? t - fmax(0, l->toks) : 0;
    /* the bucket had room for what the call would borrow: only the debt's bound refused it */
    return (br == 0 || l->level_reqs >= 1) && (bt == 0 || l->level_toks >= bt);
}

/* Near the shared bucket's bottom (below this many chunks at its last answer) requests are
 * not leased ahead: a chunk held idle here would be refused to the gateways beside this one.
 * A call then goes ahead of its own lease (or waits for it), which is asked at once. */
#define LEASE_AHEAD_CHUNKS 4

/* The lease runs low: below half a chunk of requests (owed, or the bucket near its bottom:
 * none left), or of tokens (or the charge that did not fit), or settlements worth a chunk
 * wait to go back. A bucket seen empty is asked again (after its wait) to see it refill. */
static int running_low(const gw_budget *b)
{
    const gw_lease *l = &b->lease;
    double cr = chunk_of(b->rpm), ct = chunk_of(b->tpm);
    double low_r = l->level_reqs >= LEASE_AHEAD_CHUNKS * cr ? ceil(cr / 2) : 0;
    if (b->rpm > 0 && (l->reqs < low_r || l->level_reqs < 1))
        return 1;
    if (b->tpm > 0 && (l->toks < ceil(ct / 2) || l->toks < (double)l->need_toks))
        return 1;
    return b->tpm > 0 && (double)llabs(l->give_toks) >= ct;
}

/* The requests a lease fills up to: a chunk; near the bucket's bottom only what is owed (or,
 * the bucket seen empty, a chunk to see it refill). */
static double reqs_target(const gw_budget *b)
{
    const gw_lease *l = &b->lease;
    double cr = chunk_of(b->rpm);
    if (l->level_reqs >= LEASE_AHEAD_CHUNKS * cr || l->level_reqs < 1)
        return cr;
    return 0;
}

int sky__gw_lease_due(gw_budget *b, uint64_t now_ms, sky__store_lease_ask *ask)
{
    gw_lease *l = &b->lease;
    if ((b->rpm <= 0 && b->tpm <= 0) || l->leasing || now_ms < l->next_ms)
        return 0;
    if (l->state != GW_LEASE_LOCAL && !running_low(b))
        return 0;
    double want_t = fmax(chunk_of(b->tpm), (double)l->need_toks);
    memset(ask, 0, sizeof(*ask));
    ask->rpm = b->rpm;
    ask->tpm = b->tpm;
    if (l->state == GW_LEASE_LOCAL) { /* asked again: a fresh start when it answers */
        ask->want_reqs = (int64_t)chunk_of(b->rpm);
        ask->want_toks = b->tpm > 0 ? (int64_t)want_t : 0;
    } else {
        ask->want_reqs = b->rpm > 0 ? (int64_t)fmax(0, ceil(reqs_target(b) - l->reqs)) : 0;
        ask->want_toks = b->tpm > 0 ? (int64_t)fmax(0, ceil(want_t - l->toks)) : 0;
        ask->give_toks = l->give_toks;
        l->give_toks = 0;
    }
    l->leasing = 1;
    return 1;
}

void sky__gw_lease_answered(gw_budget *b, uint64_t now_ms, const sky__store_lease_ask *ask,
                            const sky__store_lease_answer *a)
{
    gw_lease *l = &b->lease;
    l->leasing = 0;
    if (ask->rpm != b->rpm || ask->tpm != b->tpm)
        return; /* the key's limits changed meanwhile: its budget started over */
    if (l->state == GW_LEASE_LOCAL) {
        l->reqs = l->toks = 0;
        l->give_toks = 0;
    }
    l->state = GW_LEASE_SHARED;
    l->reqs += (double)a->reqs;
    l->toks += (double)a->toks;
    l->level_reqs = (double)a->level_reqs;
    l->level_toks = (double)a->level_toks;
    l->answered_ms = now_ms;
    l->wait_ms = a->wait_ms > 0 ? (uint64_t)a->wait_ms : 0;
    l->next_ms = now_ms + (l->wait_ms < LEASE_WAIT_MAX_MS ? l->wait_ms : LEASE_WAIT_MAX_MS);
    if (l->toks >= (double)l->need_toks)
        l->need_toks = 0;
}

void sky__gw_lease_failed(gw_budget *b, uint64_t now_ms, const sky__store_lease_ask *ask)
{
    gw_lease *l = &b->lease;
    l->leasing = 0;
    l->next_ms = now_ms + LEASE_RETRY_MS;
    if (ask->rpm != b->rpm || ask->tpm != b->tpm || l->state == GW_LEASE_LOCAL)
        return;
    /* the local bucket goes on from what the shared one had for this gateway */
    double given = (double)(ask->give_toks + l->give_toks);
    b->reqs = fmin(b->rpm, fmax(0, l->level_reqs + fmax(0, l->reqs)));
    b->toks = fmin(b->tpm, fmax(0, l->level_toks + fmax(0, l->toks) + given));
    b->at_ms = now_ms;
    l->state = GW_LEASE_LOCAL;
    l->reqs = l->toks = 0;
    l->give_toks = 0;
    l->need_toks = 0;
}
