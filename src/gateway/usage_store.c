/*
 * The gateway's usage records: one per model call, with its cost, appended to a store
 * (src/store), which queues it and writes it in a batch off the request path; `skyio usage`
 * totals them. A store that cannot keep up refuses past its bound; the store counts what
 * was lost.
 *
 * The keys' use today (daily.c) comes from here too: loaded from the records at start, and
 * with a counters store (Redis) added to one counter per key, day and kind (tokens, cost in
 * millionths) with an atomic add that expires after the day, so gateways side by side see
 * each other's use: every call adds its own, and a key with caps asks for the sum at most
 * once a second as its calls come in (never waiting for it).
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "stores.h"
#include "store/store.h"

#define DAY_MS 86400000LL
#define SYNC_MS 1000

struct gw_counters {
    sky_gateway *g; /* NULL once the gateway is gone */
    sky__store *store;
    int calls;         /* in flight: the last one frees a closed counters */
    gw_leases *leases; /* the keys' minute budgets shared (budget_shared.c); NULL: none */
};

/* One counter add in flight. */
typedef struct counter_call {
    struct gw_counters *c;
    int64_t day;
    int cost; /* the cost counter, else the tokens' */
    char key[];
} counter_call;

void sky__gw_set_usage_store(sky_gateway *g, struct sky__store *store)
{
    g->usage = store;
}

static int64_t nonneg(int64_t v)
{
    return v > 0 ? v : 0;
}

/* The tokens a call used, in and out. */
static int64_t tokens_of(const gw_record *r)
{
    int64_t sum = nonneg(r->used.prompt) + nonneg(r->used.completion);
    return sum > 0 ? sum : nonneg(r->used.total);
}

/* ---- the shared counters ---- */

void sky__gw_set_counters(sky_gateway *g, struct sky__store *store)
{
    if (g->counters == NULL && store && (sky__store_caps(store) & SKY__STORE_COUNTERS)) {
        g->counters = calloc(1, sizeof(*g->counters));
        if (g->counters) {
            g->counters->g = g;
            g->counters->store = store;
            g->counters->leases = sky__gw_leases_new(g, store);
        }
    }
}

void sky__gw_counters_free(struct gw_counters *c)
{
    if (c == NULL)
        return;
    sky__gw_leases_free(c->leases);
    c->leases = NULL;
    c->g = NULL;
    if (c->calls == 0)
        free(c);
}

static void on_counted(const sky_error *err, int64_t value, void *ud)
{
    counter_call *call = ud;
    struct gw_counters *c = call->c;
    c->calls--;
    if (c->g && err->code == 0) {
        gw_shared *sh = c->g->shared;
        gw_budget *b = sky__gw_shared_budget_of(sh, call->key);
        sky__gw_shared_lock(sh);
        if (b)
            sky__gw_daily_seen(b, call->day, call->cost ? -1 : value,
                               call->cost ? (double)value / 1e6 : -1);
        sky__gw_shared_unlock(sh);
    }
    if (c->g == NULL && c->calls == 0)
        free(c);
    free(call);
}

gw_leases *sky__gw_leases_of(const sky_gateway *g)
{
    return g->counters ? g->counters->leases : NULL;
}

/* Add @p delta (0: only read) to key @p key's counter of the day of @p now_ms. */
static void count(struct gw_counters *c, const char *key, int64_t now_ms, int cost, int64_t delta)
{
    size_t n = strlen(key) + 1;
    counter_call *call = malloc(sizeof(*call) + n);
    if (call == NULL)
        return; /* the next call's add brings the sum back */
    call->c = c;
    call->day = now_ms / DAY_MS;
    call->cost = cost;
    memcpy(call->key, key, n);
    char day[11], name[256];
    sky__store_day(now_ms, day);
    snprintf(name, sizeof(name), "daily:%s:%s:%s", day, cost ? "cost_micro" : "tokens", key);
    uint64_t ttl =
        (uint64_t)((call->day + 1) * DAY_MS - now_ms) + 3600000; /* the day, and an hour */
    c->calls++;
    sky__store_counter_add(c->store, name, delta, ttl, on_counted, call);
}

void sky__gw_usage_sync(sky_gateway *g, const gw_key *key)
{
    if (g->counters == NULL || key->budget == NULL)
        return;
    int64_t now = sky__store_now_ms();
    sky__gw_shared_lock(g->shared);
    int due = now - key->budget->synced_ms >= SYNC_MS || now < key->budget->synced_ms;
    if (due)
        key->budget->synced_ms = now;
    sky__gw_shared_unlock(g->shared);
    if (due) {
        count(g->counters, key->name, now, 0, 0);
        count(g->counters, key->name, now, 1, 0);
    }
}

/* ---- the records ---- */

void sky__gw_usage_record(sky_gateway *g, const gw_record *r)
{
    int64_t now = sky__store_now_ms();
    if (g->counters && r->key && r->budget && r->capped) {
        int64_t tokens = tokens_of(r), micro = (int64_t)(r->cost * 1e6 + 0.5);
        if (tokens > 0)
            count(g->counters, r->key, now, 0, tokens);
        if (micro > 0)
            count(g->counters, r->key, now, 1, micro);
    }
    if (g->usage == NULL)
        return;
    sky__store_usage u;
    memset(&u, 0, sizeof(u));
    u.time_ms = now;
    u.key_name = r->key ? r->key : "";
    u.model = r->model ? r->model : "";
    u.deployment = r->deployment ? r->deployment : "";
    u.status = r->status;
    u.tokens_in = nonneg(r->used.prompt);
    u.tokens_out = nonneg(r->used.completion);
    u.latency_us = (int64_t)(r->total_ns / 1000);
    u.cost = r->cost;
    (void)sky__store_usage_append(g->usage, &u); /* refused past the bound: counted there */
}

/* ---- today's use at start ---- */

typedef struct load_state {
    sky_gateway *g;
    char today[11];
    int done;
    sky_error err;
} load_state;

static void on_totals(const sky_error *err, const sky__store_usage_total *rows, size_t n, void *ud)
{
    load_state *ls = ud;
    ls->done = 1;
    if (err->code) {
        ls->err = *err;
        return;
    }
    int64_t day = sky__store_now_ms() / DAY_MS;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].day, ls->today) != 0 || rows[i].key_name[0] == '\0')
            continue;
        gw_budget *b = sky__gw_shared_budget_of(ls->g->shared, rows[i].key_name);
        if (b == NULL) {
            sky_error_set(&ls->err, SKY_ENOMEM, "out of memory");
            return;
        }
        /* rows are by key and model: a key's models add up */
        sky__gw_shared_lock(ls->g->shared);
        if (b->day != day) {
            b->day = day;
            b->day_tokens = 0;
            b->day_cost = 0;
        }
        b->day_tokens += rows[i].tokens_in + rows[i].tokens_out;
        b->day_cost += rows[i].cost;
        sky__gw_shared_unlock(ls->g->shared);
    }
}

int sky__gw_usage_load_today(sky_gateway *g, sky_error *err)
{
    if (g->usage == NULL)
        return 0;
    load_state ls = {.g = g};
    sky_error_clear(&ls.err);
    sky__store_day(sky__store_now_ms(), ls.today);
    sky__store_usage_totals_since(g->usage, NULL, ls.today, on_totals, &ls);
    while (!ls.done)
        uv_run(g->loop, UV_RUN_ONCE);
    if (ls.err.code)
        return sky_error_set(err, ls.err.code, "cannot read today's usage: %s", ls.err.message);
    return 0;
}

/* ---- /metrics ---- */

int sky__gw_usage_metrics(sky_buf *b, const sky_gateway *g)
{
    const gw_usage_counts *c = sky__gw_shared_usage_counts(g->shared);
    return sky_buf_printf(
        b,
        "# HELP skyio_gateway_usage_unpriced_total Model calls that used tokens of a model "
        "without a price in the config (recorded at cost 0).\n"
        "# TYPE skyio_gateway_usage_unpriced_total counter\n"
        "skyio_gateway_usage_unpriced_total %llu\n"
        "# HELP skyio_gateway_key_daily_refused_total Calls refused (429) because their key "
        "reached a daily cap, by cap.\n"
        "# TYPE skyio_gateway_key_daily_refused_total counter\n"
        "skyio_gateway_key_daily_refused_total{cap=\"tokens\"} %llu\n"
        "skyio_gateway_key_daily_refused_total{cap=\"cost\"} %llu\n"
        "# HELP skyio_gateway_key_budget_local_total Calls a key's minute budget shared through "
        "Redis decided alone, Redis away.\n"
        "# TYPE skyio_gateway_key_budget_local_total counter\n"
        "skyio_gateway_key_budget_local_total %llu\n"
        "# HELP skyio_gateway_key_budget_waited_total Calls that waited for their key's lease of "
        "the shared minute budget, on its way, instead of a 429.\n"
        "# TYPE skyio_gateway_key_budget_waited_total counter\n"
        "skyio_gateway_key_budget_waited_total %llu\n",
        (unsigned long long)c->unpriced, (unsigned long long)c->daily_refused[GW_DAILY_TOKENS],
        (unsigned long long)c->daily_refused[GW_DAILY_COST], (unsigned long long)c->budget_local,
        (unsigned long long)c->budget_waited);
}
