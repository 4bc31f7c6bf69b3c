/*
 * A key's daily caps: tokens (in and out) and cost a UTC day, from what its calls used.
 * A key under its caps is let through; once a cap is reached, its calls get 429 until
 * midnight UTC, and the answer says how long that is. The day's use is kept beside the
 * key's minute budget (shared by the loops and across reloads); with a usage store it is
 * loaded from the records at start, and with a counters store (Redis) it is shared with
 * the gateways beside this one (usage_store.c). Time comes in as an argument.
 */
#include <stdio.h>

#include "internal.h"

#define DAY_MS 86400000LL

static int64_t day_of(int64_t now_ms)
{
    return now_ms >= 0 ? now_ms / DAY_MS : 0;
}

/* A new day starts from nothing. */
static void roll(gw_budget *b, int64_t now_ms)
{
    int64_t day = day_of(now_ms);
    if (b->day != day) {
        b->day = day;
        b->day_tokens = 0;
        b->day_cost = 0;
    }
}

int sky__gw_daily_check(gw_budget *b, const gw_key *k, int64_t now_ms, gw_daily_view *out)
{
    memset(out, 0, sizeof(*out));
    if (b == NULL || (k->daily_tokens <= 0 && k->daily_cost <= 0))
        return 0;
    roll(b, now_ms);
    out->reset_ms = (uint64_t)((b->day + 1) * DAY_MS - now_ms);
    if (k->daily_tokens > 0 && (double)b->day_tokens >= k->daily_tokens) {
        out->refused = GW_DAILY_TOKENS;
        out->limit = k->daily_tokens;
        out->used = (double)b->day_tokens;
    } else if (k->daily_cost > 0 && b->day_cost >= k->daily_cost) {
        out->refused = GW_DAILY_COST;
        out->limit = k->daily_cost;
        out->used = b->day_cost;
    }
    return out->refused ? -1 : 0;
}

void sky__gw_daily_add(gw_budget *b, int64_t now_ms, int64_t tokens, double cost)
{
    roll(b, now_ms);
    b->day_tokens += tokens > 0 ? tokens : 0;
    b->day_cost += cost > 0 ? cost : 0;
}

void sky__gw_daily_seen(gw_budget *b, int64_t day, int64_t tokens, double cost)
{
    if (day < b->day)
        return; /* an answer about a day that is over */
    if (day > b->day) {
        b->day = day;
        b->day_tokens = 0;
        b->day_cost = 0;
    }
    if (tokens > b->day_tokens)
        b->day_tokens = tokens;
    if (cost > b->day_cost)
        b->day_cost = cost;
}

void sky__gw_daily_refuse(sky_server_req *r, const gw_key *key, const gw_daily_view *v)
{
    char secs[32], ms[32], reset[48];
    uint64_t s = (v->reset_ms + 999) / 1000;
    snprintf(secs, sizeof(secs), "%llu", (unsigned long long)(s > 0 ? s : 1));
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)v->reset_ms);
    sky__gw_format_duration(v->reset_ms, reset, sizeof(reset));
    sky_server_add_header(r, "retry-after", sky_span_cstr(secs));
    sky_server_add_header(r, "retry-after-ms", sky_span_cstr(ms));
    if (v->refused == GW_DAILY_TOKENS)
        sky__gw_error(r, 429, "tokens", NULL, "daily_budget_exceeded",
                      "Daily token budget reached for key '%s': Limit %.0f, Used %.0f. It "
                      "resets at midnight UTC, in %s.",
                      key->name, v->limit, v->used, reset);
    else
        sky__gw_error(r, 429, "insufficient_quota", NULL, "daily_budget_exceeded",
                      "Daily cost budget reached for key '%s': Limit %.4f, Used %.4f. It "
                      "resets at midnight UTC, in %s.",
                      key->name, v->limit, v->used, reset);
}
