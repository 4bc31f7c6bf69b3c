/* Which deployment serves a request: by weight, among those whose breaker lets calls in. */
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

/* A weighted draw among @p cand (indexes into m->deps) of positive weight; -1 when none
 * has any weight. */
static int draw(sky_gateway *g, const gw_table *t, const gw_model *m, const int *cand, size_t n)
{
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += t->deps[m->deps[cand[i]]].weight;
    if (total <= 0)
        return -1;
    double at = (double)(sky_rand_splitmix64(&g->rng) >> 11) / 9007199254740992.0 * total;
    for (size_t i = 0; i < n; i++) {
        double w = t->deps[m->deps[cand[i]]].weight;
        if (w > 0 && at < w)
            return cand[i];
        at -= w;
    }
    return cand[n - 1];
}

int sky__gw_pick(sky_gateway *g, const gw_table *t, const gw_model *m, uint64_t tried)
{
    int open[GW_MAX_DEPLOYMENTS], ready[GW_MAX_DEPLOYMENTS];
    size_t n_open = 0, n_ready = 0;
    for (size_t i = 0; i < m->n_deps && i < GW_MAX_DEPLOYMENTS; i++) {
        if (tried & (UINT64_C(1) << i))
            continue;
        if (refuses(&t->deps[m->deps[i]]))
            open[n_open++] = (int)i;
        else
            ready[n_ready++] = (int)i;
    }
    if (n_ready > 0) {
        int i = draw(g, t, m, ready, n_ready);
        /* weight 0: a standby, used when every weighted one has been tried */
        return i >= 0 ? i : ready[0];
    }
    /* Every one left is open: try one anyway, so the client hears why it failed. */
    return n_open > 0 ? open[0] : -1;
}
