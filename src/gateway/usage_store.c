/*
 * The gateway's usage records: one per model call, appended to a store (src/store), which
 * queues it and writes it in a batch off the request path; `skyio usage` totals them.
 * A store that cannot keep up refuses past its bound; the store counts what was lost.
 */
#include "internal.h"
#include "stores.h"
#include "store/store.h"

void sky__gw_set_usage_store(sky_gateway *g, struct sky__store *store)
{
    g->usage = store;
}

static int64_t nonneg(int64_t v)
{
    return v > 0 ? v : 0;
}

void sky__gw_usage_record(sky_gateway *g, const gw_record *r)
{
    if (g->usage == NULL)
        return;
    sky__store_usage u;
    memset(&u, 0, sizeof(u));
    u.time_ms = sky__store_now_ms();
    u.key_name = r->key ? r->key : "";
    u.model = r->model ? r->model : "";
    u.deployment = r->deployment ? r->deployment : "";
    u.status = r->status;
    u.tokens_in = nonneg(r->used.prompt);
    u.tokens_out = nonneg(r->used.completion);
    u.latency_us = (int64_t)(r->total_ns / 1000);
    (void)sky__store_usage_append(g->usage, &u); /* refused past the bound: counted there */
}
