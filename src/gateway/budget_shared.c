/*
 * The keys' minute budgets shared through Redis: each loop's leaser asks the shared bucket
 * for a key's next lease when budget_lease.c says it is due, off the request path (the
 * answer lands in the key's budget under the shared lock). A call is held for Redis only when
 * it would be refused because its key's lease is on its way (call.c, bounded).
 * When Redis cannot answer, the key goes on under its local bucket, a warning is logged once
 * an outage, /metrics counts the calls decided alone, and the shared bucket is asked again
 * every second until it answers.
 */
#include <stdlib.h>

#include "internal.h"
#include "skyio/log.h"
#include "store/store.h"

struct gw_leases {
    sky_gateway *g; /* NULL once the gateway is gone */
    sky__store *store;
    int calls;  /* in flight: the last one frees a closed leaser */
    int warned; /* this outage was logged */
};

/* One lease in flight. */
typedef struct lease_call {
    gw_leases *l;
    sky__store_lease_ask ask;
    char key[];
} lease_call;

gw_leases *sky__gw_leases_new(sky_gateway *g, sky__store *store)
{
    if (store == NULL || !(sky__store_caps(store) & SKY__STORE_BUCKETS))
        return NULL;
    gw_leases *l = calloc(1, sizeof(*l));
    if (l) {
        l->g = g;
        l->store = store;
    }
    return l;
}

void sky__gw_leases_free(gw_leases *l)
{
    if (l == NULL)
        return;
    l->g = NULL;
    if (l->calls == 0)
        free(l);
}

int sky__gw_budget_admit(sky_gateway *g, gw_budget *b, uint64_t now_ms, int64_t tokens,
                         gw_budget_view *out)
{
    if (sky__gw_leases_of(g) == NULL || (b->rpm <= 0 && b->tpm <= 0))
        return sky__gw_budget_take(b, now_ms, tokens, out);
    if (b->lease.state == GW_LEASE_LOCAL) {
        sky__gw_shared_usage_counts(g->shared)->budget_local++;
        return sky__gw_budget_take(b, now_ms, tokens, out);
    }
    return sky__gw_lease_take(b, now_ms, tokens, out);
}

int sky__gw_budget_awaits(sky_gateway *g, const gw_budget *b, int64_t tokens)
{
    if (sky__gw_leases_of(g) == NULL || (b->rpm <= 0 && b->tpm <= 0))
        return 0;
    return sky__gw_lease_awaited(b, tokens);
}

static void note_outage(gw_leases *l, const sky_error *err)
{
    if (l->warned)
        return;
    l->warned = 1;
    SKY_WARN("gateway",
             "keys' minute budgets: the shared bucket cannot be leased (%s); each gateway keeps "
             "them alone until it can",
             err->message);
}

static void on_lease(const sky_error *err, const sky__store_lease_answer *a, void *ud)
{
    lease_call *call = ud;
    gw_leases *l = call->l;
    l->calls--;
    if (l->g) {
        gw_shared *sh = l->g->shared;
        uint64_t now = uv_now(l->g->loop);
        gw_budget *b = sky__gw_shared_budget_of(sh, call->key);
        int closing = err->code == SKY_ECANCELED; /* the store closes: nothing to say */
        if (err->code && !closing)
            note_outage(l, err);
        else if (!err->code && l->warned) {
            l->warned = 0;
            SKY_INFO("gateway", "keys' minute budgets: shared through redis again");
        }
        sky__gw_shared_lock(sh);
        if (b && closing)
            b->lease.leasing = 0;
        else if (b && err->code)
            sky__gw_lease_failed(b, now, &call->ask);
        else if (b)
            sky__gw_lease_answered(b, now, &call->ask, a);
        sky__gw_shared_unlock(sh);
    }
    if (l->g == NULL && l->calls == 0)
        free(l);
    free(call);
}

void sky__gw_budget_lease(sky_gateway *g, const gw_key *key)
{
    gw_leases *l = sky__gw_leases_of(g);
    if (l == NULL || key->budget == NULL)
        return;
    sky__store_lease_ask ask;
    sky__gw_shared_lock(g->shared);
    int due = sky__gw_lease_due(key->budget, uv_now(g->loop), &ask);
    sky__gw_shared_unlock(g->shared);
    if (!due)
        return;
    size_t n = strlen(key->name) + 1;
    lease_call *call = malloc(sizeof(*call) + n);
    if (call == NULL) { /* out of memory: the local bucket, as when Redis is away */
        sky__gw_shared_lock(g->shared);
        sky__gw_lease_failed(key->budget, uv_now(g->loop), &ask);
        sky__gw_shared_unlock(g->shared);
        return;
    }
    call->l = l;
    call->ask = ask;
    memcpy(call->key, key->name, n);
    l->calls++;
    sky__store_bucket_lease(l->store, key->name, &ask, on_lease, call);
}
