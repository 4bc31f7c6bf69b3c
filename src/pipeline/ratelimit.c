/* The client-side rate limiter: paced token buckets that learn the provider's quota. */
#include <math.h>
#include <stdlib.h>

#include "skyio/error.h"
#include "skyio/ratelimit.h"

/* Grants are counted in slots of RL_SLOT_MS, RL_SLOTS of them, to measure the rate
 * actually sent... */
#define RL_SLOT_MS 100
#define RL_SLOTS 20
/* ... over about the last second: the rate when a 429 came, not a longer average
 * that still holds the slower seconds before it. In slow start the rate doubles
 * every interval, and a 3 s average was half the rate that met the limit. */
#define RL_MEASURE_MS 1000
/* Slack for floating-point refills: 1e-9 of a request or token is nothing. */
#define RL_EPS 1e-9

/*
 * One bucket. Rates are per minute; 0 means unlimited (the bucket is off).
 * The level may go negative: a request bigger than the bucket leaves debt.
 */
typedef struct rl_bucket {
    double ceiling;      /* given or learned limit, 0 none */
    double rate;         /* current learned rate, <= ceiling */
    double wmax;         /* rate at which the last 429 came, 0 before any */
    uint64_t hold_until; /* a limit met twice at the same rate: stay just under it till then */
    int probes;          /* increases past wmax without a 429: each probe step doubles */
    double clean_rate;   /* slow start: the rate before the last doubling, which drew no 429 */
    double floor_rate;   /* learning never goes below this */
    double level;        /* what may be spent now */
    double cap_rate;     /* temporary cap from a low remaining header */
    uint64_t cap_until;  /* monotonic ms the cap lasts until */
    int limited;         /* refused a request since the last increase */
    int raised;          /* the rate went up since the last decrease */
} rl_bucket;

struct sky_ratelimit {
    sky_ratelimit_options o;
    const sky_clock *clock;
    rl_bucket req;
    rl_bucket tok;
    uint64_t created_ms;
    uint64_t last_ms; /* last refill */
    uint64_t paused_until;
    uint64_t last_increase_ms;
    uint64_t last_decrease_ms;
    uint64_t last_429_ms;
    int has_decreased;
    int waiting;
    uint64_t wait_start;
    int64_t wait_ms;
    uint64_t slot_id[RL_SLOTS]; /* now / RL_SLOT_MS of the grants counted in each slot */
    uint32_t slot_req[RL_SLOTS];
    int64_t slot_tok[RL_SLOTS];
    uint64_t ok_slot_id[RL_SLOTS]; /* the same for 2xx replies: what the provider took */
    uint32_t ok_slot[RL_SLOTS];
    int unpaced; /* unpaced_start, until the first limit shows */
    uint64_t granted;
    uint64_t responses_429;
    uint64_t decreases;
    int64_t tokens_corrected;
};

void sky_ratelimit_options_init(sky_ratelimit_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->burst_seconds = 1.0;
    opts->learn = 1;
    opts->initial_rpm = 60.0;
    opts->decrease_factor = 0.5;
    opts->decrease_cooldown_ms = 2000;
    opts->increase_interval_ms = 5000;
    opts->increase_fraction = 0.05;
    opts->low_remaining_fraction = 0.1;
    opts->min_rpm = 1.0;
    opts->min_tpm = 100.0;
}

/* Written as !(x > 0) so that NaN is refused too. */
static int options_valid(const sky_ratelimit_options *o)
{
    if (!(o->rpm >= 0) || !(o->tpm >= 0) || !(o->burst_seconds > 0))
        return 0;
    if (!(o->initial_rpm > 0) || !(o->decrease_factor > 0) || !(o->decrease_factor < 1))
        return 0;
    if (o->decrease_cooldown_ms < 0 || o->increase_interval_ms <= 0)
        return 0;
    if (!(o->increase_fraction > 0) || !(o->low_remaining_fraction >= 0))
        return 0;
    return o->low_remaining_fraction <= 1 && o->min_rpm > 0 && o->min_tpm > 0;
}

/* ---- one bucket ---- */

static double bucket_eff_rate(const rl_bucket *b, uint64_t now)
{
    if (b->rate <= 0)
        return 0;
    if (b->cap_until > now && b->cap_rate < b->rate)
        return b->cap_rate;
    return b->rate;
}

/* At least one unit, so a single request can always pass a full bucket. */
static double bucket_capacity(double eff, double burst_s)
{
    double c = eff * burst_s / 60.0;
    return c < 1 ? 1 : c;
}

static void bucket_clamp(rl_bucket *b, uint64_t now, double burst_s)
{
    double eff = bucket_eff_rate(b, now);
    double cap = bucket_capacity(eff, burst_s);
    if (eff > 0 && b->level > cap)
        b->level = cap;
}

static void bucket_refill(rl_bucket *b, uint64_t now, uint64_t elapsed, double burst_s)
{
    double eff = bucket_eff_rate(b, now);
    if (eff <= 0)
        return;
    b->level += (double)elapsed * eff / 60000.0;
    bucket_clamp(b, now, burst_s);
}

/* Milliseconds until @p cost fits (capped at the bucket size), 0 when it fits now. */
static int64_t bucket_wait_ms(const rl_bucket *b, uint64_t now, double cost, double burst_s)
{
    double eff = bucket_eff_rate(b, now);
    if (eff <= 0)
        return 0;
    double cap = bucket_capacity(eff, burst_s);
    double need = cost < cap ? cost : cap;
    if (b->level + RL_EPS >= need)
        return 0;
    double ms = ceil((need - b->level) * 60000.0 / eff - 1e-6);
    return ms < 1 ? 1 : (int64_t)ms;
}

/* Set the learned rate within [floor, ceiling] and shrink the level to fit. */
static void bucket_set_rate(rl_bucket *b, double rate, uint64_t now, double burst_s)
{
    if (rate < b->floor_rate)
        rate = b->floor_rate;
    if (b->ceiling > 0 && rate > b->ceiling)
        rate = b->ceiling;
    b->rate = rate;
    bucket_clamp(b, now, burst_s);
}

/* Just under a limit met twice at about the same rate. */
#define RL_HOLD_SHARE 0.97
/* How many increase intervals to hold there before probing past it again. */
#define RL_HOLD_INTERVALS 10

/*
 * After a quiet interval in which the bucket held requests back: double
 * while no 429 has shown where the limit is (slow start), else close half
 * the gap to the rate of the last 429 (BIC's binary search), and past it
 * probe upward by a small constant step. A limit met twice at the same
 * rate is a provider's fixed quota: stay just under it for a while instead
 * of probing past it again at once.
 */
static void bucket_increase(rl_bucket *b, const sky_ratelimit_options *o, uint64_t now)
{
    if (b->rate <= 0 || (b->ceiling > 0 && b->rate >= b->ceiling))
        return;
    double r;
    if (b->wmax <= 0) {
        b->clean_rate = b->rate;
        r = b->rate * 2;
    } else {
        double step = o->increase_fraction * b->wmax;
        double half_gap = (b->wmax - b->rate) / 2;
        if (now >= b->hold_until && b->rate >= b->wmax) {
            /* past the last 429's rate without a new one: the limit was further; speed up
             * (BIC's max probing) so an early, low 429 does not cost minutes */
            step *= (double)(1 << (b->probes < 4 ? b->probes : 4));
            b->probes++;
        }
        r = b->rate + (half_gap > step ? half_gap : step);
        if (now < b->hold_until && r > RL_HOLD_SHARE * b->wmax)
            r = b->rate > RL_HOLD_SHARE * b->wmax ? b->rate : RL_HOLD_SHARE * b->wmax;
    }
    b->raised |= r > b->rate;
    bucket_set_rate(b, r, now, o->burst_seconds);
}

/*
 * Multiplicative decrease from what was actually being sent when that is
 * less than the allowed rate (the other bucket or the caller's concurrency
 * was binding), so one 429 takes effect at once. The saved burst is
 * forfeited: the provider just said we were too fast.
 *
 * The first 429 of slow start comes up to twice the limit (the rate just
 * doubled), so a gentle decrease_factor would stay over it for several more
 * intervals of 429s: go at least back to the rate before that doubling,
 * which a whole interval showed the provider accepts. The limit lies between
 * that rate and the measured one, which still counts what was sent while the
 * first 429 was on its way back: search from the middle (BIC's binary search)
 * rather than climb toward a rate that is surely too high.
 */
static void bucket_decrease(rl_bucket *b, double measured, const sky_ratelimit_options *o,
                            uint64_t now)
{
    if (b->rate <= 0)
        return;
    double base = b->rate;
    if (measured > 0 && measured < base)
        base = measured;
    double factor = o->decrease_factor;
    if (b->wmax > 0 && b->raised && fabs(base - b->wmax) <= 0.1 * b->wmax) {
        /* the same limit again, climbed back to: a fixed quota, found; back off half as
         * far (429s that never stopped since the last cut say the cut was too small) */
        factor = 1 - (1 - factor) / 2;
        b->hold_until = now + RL_HOLD_INTERVALS * (uint64_t)o->increase_interval_ms;
    }
    double r = base * factor;
    if (b->wmax <= 0 && b->clean_rate > 0 && r > b->clean_rate) {
        r = b->clean_rate;
        base = (b->clean_rate + base) / 2;
    }
    b->wmax = base;
    b->raised = 0;
    b->probes = 0;
    b->clean_rate = 0;
    bucket_set_rate(b, r, now, o->burst_seconds);
    if (b->level > 0)
        b->level = 0;
}

/* ---- the limiter ---- */

int sky_ratelimit_new(const sky_ratelimit_options *opts, const sky_clock *clock,
                      sky_ratelimit **out)
{
    sky_ratelimit_options defaults;
    if (out == NULL)
        return SKY_EINVAL;
    *out = NULL;
    if (opts == NULL) {
        sky_ratelimit_options_init(&defaults);
        opts = &defaults;
    }
    if (!options_valid(opts))
        return SKY_EINVAL;
    sky_ratelimit *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return SKY_ENOMEM;
    rl->o = *opts;
    rl->clock = clock ? clock : sky_clock_real();
    rl->created_ms = rl->last_ms = rl->last_increase_ms = sky_clock_now_ms(rl->clock);
    rl->req.ceiling = opts->rpm;
    rl->unpaced = opts->unpaced_start && opts->learn && !(opts->rpm > 0);
    rl->req.rate =
        opts->rpm > 0 ? opts->rpm : (opts->learn && !rl->unpaced ? opts->initial_rpm : 0);
    rl->req.floor_rate = opts->min_rpm;
    rl->req.level = bucket_capacity(rl->req.rate, opts->burst_seconds);
    rl->tok.ceiling = rl->tok.rate = opts->tpm;
    rl->tok.floor_rate = opts->min_tpm;
    rl->tok.level = bucket_capacity(rl->tok.rate, opts->burst_seconds);
    *out = rl;
    return 0;
}

void sky_ratelimit_free(sky_ratelimit *rl)
{
    free(rl);
}

static uint64_t rl_now(const sky_ratelimit *rl)
{
    return sky_clock_now_ms(rl->clock);
}

/*
 * Nothing refills while paused: a Retry-After pause ends with the bucket as
 * the 429 left it (drained), not full, so the queue does not rush out at once.
 */
static void rl_refill(sky_ratelimit *rl, uint64_t now)
{
    uint64_t from = rl->last_ms > rl->paused_until ? rl->last_ms : rl->paused_until;
    uint64_t elapsed = now > from ? now - from : 0;
    bucket_refill(&rl->req, now, elapsed, rl->o.burst_seconds);
    bucket_refill(&rl->tok, now, elapsed, rl->o.burst_seconds);
    if (now > rl->last_ms)
        rl->last_ms = now;
}

static void rl_pause_until(sky_ratelimit *rl, uint64_t until)
{
    if (until > rl->paused_until)
        rl->paused_until = until;
}

/* Probe upward only when there was demand: an idle limiter learns nothing. */
static void rl_maybe_increase(sky_ratelimit *rl, uint64_t now)
{
    uint64_t every = (uint64_t)rl->o.increase_interval_ms;
    if (!rl->o.learn || now - rl->last_increase_ms < every)
        return;
    if (rl->has_decreased && now - rl->last_decrease_ms < every)
        return;
    /* nor while 429s still come, though the cooldown counts them as the last overload */
    if (rl->responses_429 > 0 && now - rl->last_429_ms < every)
        return;
    if (rl->req.limited)
        bucket_increase(&rl->req, &rl->o, now);
    if (rl->tok.limited)
        bucket_increase(&rl->tok, &rl->o, now);
    rl->req.limited = rl->tok.limited = 0;
    rl->last_increase_ms = now;
}

/*
 * Requests (or tokens) per minute granted over the last RL_MEASURE_MS and the
 * current slot (1.0 to 1.1 s); 0 when the limiter is younger than that.
 */
static double rl_measured(const sky_ratelimit *rl, uint64_t now, int tokens)
{
    uint64_t slot = now / RL_SLOT_MS, n = RL_MEASURE_MS / RL_SLOT_MS;
    if (now < rl->created_ms + RL_MEASURE_MS || slot < n)
        return 0;
    uint64_t from = (slot - n) * RL_SLOT_MS;
    if (from < rl->created_ms)
        from = rl->created_ms;
    double sum = 0;
    for (int i = 0; i < RL_SLOTS; i++) {
        if (rl->slot_id[i] + n >= slot && rl->slot_id[i] <= slot)
            sum += tokens ? (double)rl->slot_tok[i] : (double)rl->slot_req[i];
    }
    return sum * 60000.0 / (double)(now - from);
}

static void rl_record_grant(sky_ratelimit *rl, uint64_t now, int64_t tokens)
{
    uint64_t slot = now / RL_SLOT_MS;
    int i = (int)(slot % RL_SLOTS);
    if (rl->slot_id[i] != slot) {
        rl->slot_id[i] = slot;
        rl->slot_req[i] = 0;
        rl->slot_tok[i] = 0;
    }
    rl->slot_req[i]++;
    rl->slot_tok[i] += tokens;
    rl->granted++;
    if (rl->waiting) {
        rl->wait_ms += (int64_t)(now - rl->wait_start);
        rl->waiting = 0;
    }
}

static int64_t rl_refuse(sky_ratelimit *rl, uint64_t now, int64_t wait)
{
    if (!rl->waiting) {
        rl->waiting = 1;
        rl->wait_start = now;
    }
    return wait;
}

/* A refusal under a header's temporary cap says nothing about the learned rate. */
static void mark_limited(rl_bucket *b, uint64_t now)
{
    if (b->cap_until <= now)
        b->limited = 1;
}

int64_t sky_ratelimit_acquire(sky_ratelimit *rl, int64_t est_tokens)
{
    uint64_t now = rl_now(rl);
    double burst = rl->o.burst_seconds;
    if (est_tokens < 0)
        est_tokens = 0;
    rl_refill(rl, now);
    rl_maybe_increase(rl, now);
    if (rl->paused_until > now)
        return rl_refuse(rl, now, (int64_t)(rl->paused_until - now));
    int64_t wr = bucket_wait_ms(&rl->req, now, 1, burst);
    int64_t wt = bucket_wait_ms(&rl->tok, now, (double)est_tokens, burst);
    if (wr > 0)
        mark_limited(&rl->req, now);
    if (wt > 0)
        mark_limited(&rl->tok, now);
    if (wr > 0 || wt > 0)
        return rl_refuse(rl, now, wr > wt ? wr : wt);
    if (rl->req.rate > 0)
        rl->req.level -= 1;
    if (rl->tok.rate > 0)
        rl->tok.level -= (double)est_tokens;
    rl_record_grant(rl, now, est_tokens);
    return 0;
}

/* ---- learning from replies ---- */

/*
 * x-ratelimit-limit-*: the provider's own number becomes the ceiling, unless
 * the caller asked for less (to share a quota). Before any 429 the rate jumps
 * to it; after one, recovery climbs toward it.
 */
static void adopt_limit(sky_ratelimit *rl, rl_bucket *b, double limit, double user, uint64_t now)
{
    double c = user > 0 && user < limit ? user : limit;
    int was_off = b->rate <= 0;
    b->ceiling = c;
    b->clean_rate = 0; /* the provider said where the limit is: no slow start to undo */
    if (b->wmax > c)
        b->wmax = c;
    bucket_set_rate(b, b->wmax <= 0 || was_off ? c : b->rate, now, rl->o.burst_seconds);
    if (was_off)
        b->level = bucket_capacity(b->rate, rl->o.burst_seconds);
}

/*
 * A low remaining budget means others share the quota or we overdrew it:
 * spread what is left until the reset. Nothing left means wait for the reset.
 */
static void apply_remaining(sky_ratelimit *rl, rl_bucket *b, int64_t remaining, int64_t reset_ms,
                            double limit, uint64_t now)
{
    if (reset_ms <= 0)
        return;
    if (remaining == 0) {
        rl_pause_until(rl, now + (uint64_t)reset_ms);
        return;
    }
    double ref = limit > 0 ? limit : (b->ceiling > 0 ? b->ceiling : b->rate);
    if (ref <= 0)
        return;
    if ((double)remaining >= rl->o.low_remaining_fraction * ref) {
        b->cap_until = 0;
        return;
    }
    b->cap_rate = (double)remaining * 60000.0 / (double)reset_ms;
    b->cap_until = now + (uint64_t)reset_ms;
    bucket_clamp(b, now, rl->o.burst_seconds);
}

/* The names of one bucket's three headers. */
typedef struct rl_header_names {
    const char *limit;
    const char *remaining;
    const char *reset;
} rl_header_names;

static void learn_bucket(sky_ratelimit *rl, rl_bucket *b, const sky_headers *h,
                         const rl_header_names *n, double user, uint64_t now)
{
    int64_t limit = 0, remaining, reset_ms;
    if (sky_headers_get_int64(h, n->limit, &limit) == 0 && limit > 0)
        adopt_limit(rl, b, (double)limit, user, now);
    else
        limit = 0;
    const char *reset = sky_headers_get(h, n->reset);
    if (reset == NULL || sky_parse_duration_ms(sky_span_cstr(reset), &reset_ms) != 0)
        return;
    if (sky_headers_get_int64(h, n->remaining, &remaining) == 0 && remaining >= 0)
        apply_remaining(rl, b, remaining, reset_ms, (double)limit, now);
}

static void learn_from_headers(sky_ratelimit *rl, const sky_headers *h, uint64_t now)
{
    static const rl_header_names req = {"x-ratelimit-limit-requests",
                                        "x-ratelimit-remaining-requests",
                                        "x-ratelimit-reset-requests"};
    static const rl_header_names tok = {"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                                        "x-ratelimit-reset-tokens"};
    learn_bucket(rl, &rl->req, h, &req, rl->o.rpm, now);
    learn_bucket(rl, &rl->tok, h, &tok, rl->o.tpm, now);
}

/* Count a 2xx reply in its slot, for the rate an unpaced start begins from. */
static void rl_record_ok(sky_ratelimit *rl, uint64_t now)
{
    uint64_t slot = now / RL_SLOT_MS;
    int i = (int)(slot % RL_SLOTS);
    if (rl->ok_slot_id[i] != slot) {
        rl->ok_slot_id[i] = slot;
        rl->ok_slot[i] = 0;
    }
    rl->ok_slot[i]++;
}

/*
 * 2xx replies per minute over the last second, or since the start when that is sooner,
 * counted as if over a whole second: a provider judges its limit over windows of about
 * a second, so what it took in one is what it allows.
 */
static double rl_ok_rate(const sky_ratelimit *rl, uint64_t now)
{
    uint64_t slot = now / RL_SLOT_MS, n = RL_MEASURE_MS / RL_SLOT_MS;
    uint64_t span = now - rl->created_ms;
    double sum = 0;
    for (int i = 0; i < RL_SLOTS; i++) {
        if (rl->ok_slot_id[i] + n >= slot && rl->ok_slot_id[i] <= slot)
            sum += (double)rl->ok_slot[i];
    }
    return sum * 60000.0 /
           (double)(span > RL_MEASURE_MS + RL_SLOT_MS ? RL_MEASURE_MS + RL_SLOT_MS : RL_MEASURE_MS);
}

/*
 * The first 429 of an unpaced start: the provider has a limit after all. Pace from the
 * rate it just accepted, or from initial_rpm when it accepted less, and search upward
 * from there by doubling, as a paced start does: that rate is counted from the replies
 * already in, while those to the last requests the provider took before refusing are
 * still on their way (a refusal comes back at once), so the limit may be well above it
 * (twice it in `make demo`). The doubling waits for a whole interval without a 429
 * (rl_maybe_increase): when the rate was already over the limit, the next 429s cut it
 * instead. What was sent meanwhile is answered as the same overload (the cooldown
 * starts now).
 */
static void start_pacing(sky_ratelimit *rl, uint64_t now)
{
    double ok = rl_ok_rate(rl, now);
    rl->unpaced = 0;
    bucket_set_rate(&rl->req, ok > rl->o.initial_rpm ? ok : rl->o.initial_rpm, now,
                    rl->o.burst_seconds);
    rl->req.level = 0;
    rl->has_decreased = 1;
    rl->last_decrease_ms = now;
    rl->last_increase_ms = now;
    rl->req.limited = 0;
    rl->decreases++;
}

/*
 * Retry-After is always honoured. The rates drop at most once per cooldown:
 * replies to requests already in flight when the provider overloaded come
 * back as a burst of 429s, and they all report the same overload.
 */
static void on_429(sky_ratelimit *rl, const sky_headers *h, uint64_t now)
{
    int64_t ra;
    rl->responses_429++;
    rl->last_429_ms = now;
    if (h != NULL && sky_parse_retry_after_ms(h, rl->clock, &ra) == 0 && ra > 0)
        rl_pause_until(rl, now + (uint64_t)ra);
    if (!rl->o.learn)
        return;
    if (rl->unpaced && rl->req.rate <= 0) {
        start_pacing(rl, now);
        return;
    }
    if (rl->has_decreased && now - rl->last_decrease_ms < (uint64_t)rl->o.decrease_cooldown_ms)
        return;
    bucket_decrease(&rl->req, rl_measured(rl, now, 0), &rl->o, now);
    bucket_decrease(&rl->tok, rl_measured(rl, now, 1), &rl->o, now);
    rl->has_decreased = 1;
    rl->last_decrease_ms = now;
    rl->req.limited = rl->tok.limited = 0;
    rl->decreases++;
}

/* Give back an overestimate, or charge what the estimate missed. */
static void correct_tokens(sky_ratelimit *rl, int64_t est_tokens, int64_t actual_tokens,
                           uint64_t now)
{
    if (est_tokens < 0)
        est_tokens = 0;
    int64_t delta = actual_tokens - est_tokens;
    rl->tokens_corrected += delta;
    if (rl->tok.rate <= 0)
        return;
    rl->tok.level -= (double)delta;
    bucket_clamp(&rl->tok, now, rl->o.burst_seconds);
}

void sky_ratelimit_on_response(sky_ratelimit *rl, int status, const sky_headers *headers,
                               int64_t est_tokens, int64_t actual_tokens)
{
    uint64_t now = rl_now(rl);
    rl_refill(rl, now);
    if (actual_tokens >= 0)
        correct_tokens(rl, est_tokens, actual_tokens, now);
    if (status >= 200 && status < 300)
        rl_record_ok(rl, now);
    if (headers != NULL && rl->o.learn)
        learn_from_headers(rl, headers, now);
    if (status == 429)
        on_429(rl, headers, now);
}

int64_t sky_ratelimit_estimate_tokens(size_t prompt_chars, int64_t max_tokens)
{
    int64_t prompt = (int64_t)(prompt_chars / 4 + (prompt_chars % 4 != 0));
    return prompt + (max_tokens > 0 ? max_tokens : 0);
}

void sky_ratelimit_get_stats(const sky_ratelimit *rl, sky_ratelimit_stats *out)
{
    uint64_t now = rl_now(rl);
    memset(out, 0, sizeof(*out));
    out->rpm = bucket_eff_rate(&rl->req, now);
    out->tpm = bucket_eff_rate(&rl->tok, now);
    out->rpm_ceiling = rl->req.ceiling;
    out->tpm_ceiling = rl->tok.ceiling;
    out->wait_ms = rl->wait_ms;
    if (rl->waiting && now > rl->wait_start)
        out->wait_ms += (int64_t)(now - rl->wait_start);
    out->paused_ms = rl->paused_until > now ? (int64_t)(rl->paused_until - now) : 0;
    out->granted = rl->granted;
    out->responses_429 = rl->responses_429;
    out->decreases = rl->decreases;
    out->tokens_corrected = rl->tokens_corrected;
}

int64_t sky_ratelimit_peek(const sky_ratelimit *rl, int64_t est_tokens)
{
    uint64_t now = rl_now(rl);
    double burst = rl->o.burst_seconds;
    if (rl->paused_until > now)
        return (int64_t)(rl->paused_until - now);
    /* acquire's refill, on copies of the buckets */
    rl_bucket req = rl->req, tok = rl->tok;
    uint64_t from = rl->last_ms > rl->paused_until ? rl->last_ms : rl->paused_until;
    uint64_t elapsed = now > from ? now - from : 0;
    bucket_refill(&req, now, elapsed, burst);
    bucket_refill(&tok, now, elapsed, burst);
    int64_t wr = bucket_wait_ms(&req, now, 1, burst);
    int64_t wt = bucket_wait_ms(&tok, now, (double)(est_tokens > 0 ? est_tokens : 0), burst);
    return wr > wt ? wr : wt;
}
