/*
 * The gateway's side of the routing module (skyio/route.h): a table's models and
 * deployments handed to its pick.
 */
#include "internal.h"

const gw_model *sky__gw_model_find(const gw_table *t, sky_span name)
{
    sky_route_models m = {t->models, t->n_models};
    return sky_route_model_find(&m, name);
}

int sky__gw_usable(const gw_deployment *d)
{
    return sky_route_usable(&d->rt);
}

int sky__gw_pick(sky_gateway *g, gw_table *t, const gw_model *m, uint64_t tried, int64_t est_tokens)
{
    sky_route_target *targets[SKY_ROUTE_MAX_DEPLOYMENTS];
    size_t n = m->n_deps < SKY_ROUTE_MAX_DEPLOYMENTS ? m->n_deps : SKY_ROUTE_MAX_DEPLOYMENTS;
    for (size_t i = 0; i < n; i++)
        targets[i] = &t->deps[m->deps[i]].rt;
    return sky_route_pick(targets, n, tried, est_tokens, uv_now(g->loop), &g->rng);
}
