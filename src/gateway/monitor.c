/*
 * Each loop's monitor: a 100 ms timer that measures how late it fires (the loop's lag,
 * into the shared metrics) and leaves the loop's view of its deployments (in flight,
 * limits, breaker) where /metrics, answered on any loop, adds them up. Pipelines are read
 * only on their own loop.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define GW_MONITOR_EVERY_MS 100

static void gauges_of(const gw_deployment *d, gw_dep_gauges *out)
{
    sky_pipeline_health h;
    sky_ratelimit_stats st;
    memset(out, 0, sizeof(*out));
    snprintf(out->model, sizeof(out->model), "%s", d->model);
    snprintf(out->label, sizeof(out->label), "%s", d->label);
    if (d->pipe == NULL)
        return;
    sky_limiter *l = sky_pipeline_limiter(d->pipe);
    sky_ratelimit *rl = sky_pipeline_rate_limiter(d->pipe);
    sky_pipeline_get_health(d->pipe, &h);
    out->in_flight = (double)sky_pipeline_active(d->pipe);
    out->concurrency = l ? sky_limiter_limit(l) : 0;
    out->breaker = (double)h.breaker;
    if (rl) {
        sky_ratelimit_get_stats(rl, &st);
        out->rpm = st.rpm;
        out->tpm = st.tpm;
    }
}

void sky__gw_monitor_refresh(sky_gateway *g)
{
    const gw_table *t = g->table;
    gw_dep_gauges *v = t->n_deps ? calloc(t->n_deps, sizeof(*v)) : NULL;
    if (v == NULL)
        return; /* the last view stays */
    for (size_t i = 0; i < t->n_deps; i++)
        gauges_of(&t->deps[i], &v[i]);
    sky__gw_shared_set_view(g->shared, g->index, v, t->n_deps);
}

static void on_tick(uv_timer_t *timer)
{
    sky_gateway *g = timer->data;
    uint64_t now = uv_hrtime();
    double late = now > g->monitor_due_ns ? (double)(now - g->monitor_due_ns) / 1e9 : 0;
    g->monitor_due_ns = now + GW_MONITOR_EVERY_MS * UINT64_C(1000000);
    sky__gw_shared_lock(g->shared);
    sky__gw_metrics_lag(sky__gw_shared_metrics(g->shared), late);
    sky__gw_history_lag(sky__gw_shared_history(g->shared), late, now / 1000000);
    sky__gw_shared_unlock(g->shared);
    sky__gw_monitor_refresh(g);
    sky__gw_stores_publish(g); /* with several loops, for /metrics (store_metrics.c) */
}

int sky__gw_monitor_start(sky_gateway *g)
{
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL || uv_timer_init(g->loop, t) != 0) {
        free(t);
        return SKY_ENOMEM;
    }
    t->data = g;
    g->monitor = t;
    g->monitor_due_ns = uv_hrtime() + GW_MONITOR_EVERY_MS * UINT64_C(1000000);
    (void)uv_timer_start(t, on_tick, GW_MONITOR_EVERY_MS, GW_MONITOR_EVERY_MS);
    uv_unref((uv_handle_t *)t); /* it keeps no loop alive */
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h);
}

void sky__gw_monitor_stop(sky_gateway *g)
{
    if (g->monitor)
        uv_close((uv_handle_t *)g->monitor, on_closed);
    g->monitor = NULL;
}
