/*
 * A client key's budget: requests and tokens a minute, each a bucket that refills
 * continuously (so a 60 RPM key may send one a second, or 60 at once after a quiet minute,
 * as OpenAI's limits read). A request is charged its estimated tokens up front, as Azure
 * OpenAI does, and settled against what the reply says it used. Time comes in as an
 * argument: the rules are tested without a clock.
 */
#include <math.h>
#include <stdio.h>

#include "internal.h"

static void refill(gw_budget *b, uint64_t now_ms)
{
    double minutes = now_ms > b->at_ms ? (double)(now_ms - b->at_ms) / 60000.0 : 0;
    b->at_ms = now_ms > b->at_ms ? now_ms : b->at_ms;
    if (b->rpm > 0)
        b->reqs = fmin(b->rpm, b->reqs + minutes * b->rpm);
    if (b->tpm > 0)
        b->toks = fmin(b->tpm, b->toks + minutes * b->tpm);
}

void sky__gw_budget_init(gw_budget *b, double rpm, double tpm, uint64_t now_ms)
{
    b->rpm = rpm > 0 ? rpm : 0;
    b->tpm = tpm > 0 ? tpm : 0;
    b->reqs = b->rpm;
    b->toks = b->tpm;
    b->at_ms = now_ms;
    memset(&b->lease, 0, sizeof(b->lease));
    b->lease.level_reqs = b->rpm; /* nothing heard yet: the shared bucket is taken as full */
    b->lease.level_toks = b->tpm;
}

/* Milliseconds until @p level reaches @p want, refilling @p per_minute. */
static uint64_t ms_until(double level, double want, double per_minute)
{
    return level >= want ? 0 : (uint64_t)ceil((want - level) * 60000.0 / per_minute);
}

static void view(const gw_budget *b, gw_budget_view *v)
{
    v->rpm = b->rpm;
    v->tpm = b->tpm;
    v->reqs_left = (int64_t)floor(b->reqs);
    v->toks_left = (int64_t)floor(b->toks);
    v->reqs_reset_ms = b->rpm > 0 ? ms_until(b->reqs, b->rpm, b->rpm) : 0;
    v->toks_reset_ms = b->tpm > 0 ? ms_until(b->toks, b->tpm, b->tpm) : 0;
}

int sky__gw_budget_take(gw_budget *b, uint64_t now_ms, int64_t tokens, gw_budget_view *out)
{
    memset(out, 0, sizeof(*out));
    refill(b, now_ms);
    /* a request larger than the whole minute's tokens waits for a full bucket */
    double t = b->tpm > 0 ? fmin((double)(tokens > 0 ? tokens : 0), b->tpm) : 0;
    if (b->rpm > 0 && b->reqs < 1) {
        out->refused = GW_BUDGET_REQUESTS;
        out->retry_ms = ms_until(b->reqs, 1, b->rpm);
    } else if (b->tpm > 0 && b->toks < t) {
        out->refused = GW_BUDGET_TOKENS;
        out->retry_ms = ms_until(b->toks, t, b->tpm);
    } else {
        b->reqs -= b->rpm > 0 ? 1 : 0;
        b->toks -= t;
        out->charged = (int64_t)t;
    }
    view(b, out);
    return out->refused ? -1 : 0;
}

void sky__gw_budget_settle(gw_budget *b, int64_t charged, int64_t used)
{
    if (b->tpm <= 0 || used < 0)
        return;
    if (b->lease.shared && b->lease.state != GW_LEASE_LOCAL) {
        b->lease.give_toks += charged - used; /* back to Redis with the next lease */
        return;
    }
    b->toks = fmin(b->tpm, b->toks + (double)charged - (double)used);
}

void sky__gw_format_duration(uint64_t ms, char *out, size_t len)
{
    if (ms < 1000)
        snprintf(out, len, "%llums", (unsigned long long)ms);
    else if (ms < 60000 && ms % 1000 == 0)
        snprintf(out, len, "%llus", (unsigned long long)(ms / 1000));
    else if (ms < 60000)
        snprintf(out, len, "%llu.%03llus", (unsigned long long)(ms / 1000),
                 (unsigned long long)(ms % 1000));
    else if (ms < 3600000)
        snprintf(out, len, "%llum%llus", (unsigned long long)(ms / 60000),
                 (unsigned long long)(ms % 60000 / 1000));
    else
        snprintf(out, len, "%lluh%llum%llus", (unsigned long long)(ms / 3600000),
                 (unsigned long long)(ms % 3600000 / 60000),
                 (unsigned long long)(ms % 60000 / 1000));
}

static void add_number(sky_server_req *r, const char *name, int64_t n)
{
    char v[32];
    int len = snprintf(v, sizeof(v), "%lld", (long long)n);
    sky_server_add_header(r, name, sky_span_make(v, (size_t)len));
}

static void add_duration(sky_server_req *r, const char *name, uint64_t ms)
{
    char v[48];
    sky__gw_format_duration(ms, v, sizeof(v));
    sky_server_add_header(r, name, sky_span_cstr(v));
}

void sky__gw_budget_headers(sky_server_req *r, const gw_budget_view *v)
{
    if (v->rpm > 0) {
        add_number(r, "x-ratelimit-limit-requests", (int64_t)v->rpm);
        add_number(r, "x-ratelimit-remaining-requests", v->reqs_left);
        add_duration(r, "x-ratelimit-reset-requests", v->reqs_reset_ms);
    }
    if (v->tpm > 0) {
        add_number(r, "x-ratelimit-limit-tokens", (int64_t)v->tpm);
        add_number(r, "x-ratelimit-remaining-tokens", v->toks_left);
        add_duration(r, "x-ratelimit-reset-tokens", v->toks_reset_ms);
    }
}

void sky__gw_budget_refuse(sky_server_req *r, const gw_key *key, const gw_budget_view *v)
{
    int tokens = v->refused == GW_BUDGET_TOKENS;
    uint64_t secs = (v->retry_ms + 999) / 1000;
    add_number(r, "retry-after", (int64_t)(secs > 0 ? secs : 1));
    add_number(r, "retry-after-ms", (int64_t)v->retry_ms);
    sky__gw_budget_headers(r, v);
    sky__gw_error(
        r, 429, tokens ? "tokens" : "requests", NULL, "rate_limit_exceeded",
        "Rate limit reached for key '%s' on %s per min: Limit %lld, Used %lld. "
        "Please try again in %llums.",
        key->name, tokens ? "tokens" : "requests", (long long)(tokens ? v->tpm : v->rpm),
        (long long)(tokens ? v->tpm - (double)v->toks_left : v->rpm - (double)v->reqs_left),
        (unsigned long long)v->retry_ms);
}
