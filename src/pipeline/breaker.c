/* The circuit breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED or OPEN again. */
#include "skyio/breaker.h"
#include "skyio/error.h"

void sky_breaker_options_init(sky_breaker_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->failure_threshold = 5;
    opts->reset_ms = 30000;
    opts->max_reset_ms = 0;
    opts->half_open_probes = 1;
}

static int options_valid(const sky_breaker_options *o)
{
    if (o->failure_threshold < 1 || o->half_open_probes < 1)
        return 0;
    return o->max_reset_ms == 0 || o->max_reset_ms >= o->reset_ms;
}

int sky_breaker_init(sky_breaker *b, const sky_breaker_options *opts, const sky_clock *clock)
{
    sky_breaker_options defaults;
    if (opts == NULL) {
        sky_breaker_options_init(&defaults);
        opts = &defaults;
    }
    memset(b, 0, sizeof(*b));
    if (!options_valid(opts))
        return SKY_EINVAL;
    b->opts = *opts;
    b->clock = clock;
    b->state = SKY_BREAKER_CLOSED;
    b->open_ms = opts->reset_ms;
    return 0;
}

static uint64_t now_ms(const sky_breaker *b)
{
    return sky_clock_now_ms(b->clock);
}

static uint64_t open_left_ms(const sky_breaker *b)
{
    uint64_t elapsed = now_ms(b) - b->opened_at_ms;
    return elapsed >= b->open_ms ? 0 : b->open_ms - elapsed;
}

static void enter_open(sky_breaker *b)
{
    b->state = SKY_BREAKER_OPEN;
    b->opened_at_ms = now_ms(b);
    b->probes_in_flight = 0;
}

static void enter_closed(sky_breaker *b)
{
    b->state = SKY_BREAKER_CLOSED;
    b->consecutive_failures = 0;
    b->probes_in_flight = 0;
    b->open_ms = b->opts.reset_ms;
    b->counters.closed++;
}

/* A failed probe means the endpoint is still down: wait longer next time, if allowed to. */
static void grow_open_time(sky_breaker *b)
{
    uint64_t cap = b->opts.max_reset_ms;
    if (cap == 0)
        return;
    b->open_ms = b->open_ms > cap / 2 ? cap : b->open_ms * 2;
}

sky_breaker_state sky_breaker_get_state(const sky_breaker *b)
{
    if (b->state == SKY_BREAKER_OPEN && open_left_ms(b) == 0)
        return SKY_BREAKER_HALF_OPEN;
    return b->state;
}

uint64_t sky_breaker_wait_ms(const sky_breaker *b)
{
    switch (b->state) {
    case SKY_BREAKER_OPEN:
        return open_left_ms(b);
    case SKY_BREAKER_HALF_OPEN:
        return b->probes_in_flight < b->opts.half_open_probes ? 0 : b->open_ms;
    default:
        return 0;
    }
}

static int refuse(sky_breaker *b, uint64_t *out_wait_ms)
{
    b->counters.refused++;
    if (out_wait_ms != NULL)
        *out_wait_ms = sky_breaker_wait_ms(b);
    return 0;
}

int sky_breaker_allow(sky_breaker *b, uint64_t *out_wait_ms)
{
    if (out_wait_ms != NULL)
        *out_wait_ms = 0;
    if (b->state == SKY_BREAKER_OPEN) {
        if (open_left_ms(b) > 0)
            return refuse(b, out_wait_ms);
        b->state = SKY_BREAKER_HALF_OPEN;
        b->counters.half_opened++;
    }
    if (b->state == SKY_BREAKER_HALF_OPEN) {
        if (b->probes_in_flight >= b->opts.half_open_probes)
            return refuse(b, out_wait_ms);
        b->probes_in_flight++;
    }
    b->counters.allowed++;
    return 1;
}

static void record_closed(sky_breaker *b, int success)
{
    if (success) {
        b->consecutive_failures = 0;
        return;
    }
    uint64_t now = sky_clock_now_ms(b->clock);
    if (b->consecutive_failures++ == 0)
        b->failing_since_ms = now;
    if (b->consecutive_failures >= b->opts.failure_threshold &&
        now - b->failing_since_ms >= b->opts.quiet_ms) {
        enter_open(b);
        b->counters.opened++;
    }
}

static void record_half_open(sky_breaker *b, int success)
{
    if (success) {
        enter_closed(b);
        return;
    }
    grow_open_time(b);
    enter_open(b);
    b->counters.reopened++;
}

void sky_breaker_record(sky_breaker *b, int success)
{
    if (success)
        b->counters.successes++;
    else
        b->counters.failures++;
    if (b->state == SKY_BREAKER_CLOSED)
        record_closed(b, success);
    else if (b->state == SKY_BREAKER_HALF_OPEN)
        record_half_open(b, success);
    /* OPEN: a late result of a request sent before the breaker opened; the timer stands. */
}

void sky_breaker_cancel(sky_breaker *b)
{
    if (b->state == SKY_BREAKER_HALF_OPEN && b->probes_in_flight > 0)
        b->probes_in_flight--;
}

const char *sky_breaker_state_name(int state)
{
    switch (state) {
    case SKY_BREAKER_CLOSED:
        return "closed";
    case SKY_BREAKER_OPEN:
        return "open";
    case SKY_BREAKER_HALF_OPEN:
        return "half-open";
    default:
        return "unknown";
    }
}

void sky_breaker_get_counters(const sky_breaker *b, sky_breaker_counters *out)
{
    *out = b->counters;
}
