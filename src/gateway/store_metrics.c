/*
 * The stores in /metrics: the response cache's lookups by outcome (a "bypassed" lookup is
 * one the store could not answer: Redis away), and the usage records written, waiting and
 * lost (refused over the queue's bound, or unwritten at exit), and those on the spill file.
 * With --threads each loop has its own stores: each leaves its figures in the shared state
 * on its monitor's tick (every 100 ms), and /metrics adds them up, the answering loop's as
 * they are now.
 */
#include "internal.h"
#include "store/store.h"

static int write_cache(sky_buf *b, const gw_store_view *v)
{
    static const char *const outcome[GW_CACHE_COUNTS] = {"hit", "miss", "partial", "bypassed"};
    int rc = sky_buf_printf(b, "# HELP skyio_gateway_cache_lookups_total Response cache lookups "
                               "by outcome (bypassed: the store could not answer).\n"
                               "# TYPE skyio_gateway_cache_lookups_total counter\n");
    for (int i = 0; rc == 0 && i < GW_CACHE_COUNTS; i++)
        rc = sky_buf_printf(b, "skyio_gateway_cache_lookups_total{result=\"%s\"} %llu\n",
                            outcome[i], (unsigned long long)v->cache[i]);
    return rc;
}

static int write_usage(sky_buf *b, const gw_store_view *v)
{
    return sky_buf_printf(
        b,
        "# HELP skyio_gateway_usage_records_total Usage records by fate (lost: refused over "
        "the queue's bound).\n"
        "# TYPE skyio_gateway_usage_records_total counter\n"
        "skyio_gateway_usage_records_total{state=\"written\"} %llu\n"
        "skyio_gateway_usage_records_total{state=\"lost\"} %llu\n"
        "# HELP skyio_gateway_usage_records_queued Usage records waiting to be written.\n"
        "# TYPE skyio_gateway_usage_records_queued gauge\n"
        "skyio_gateway_usage_records_queued %llu\n"
        "# HELP skyio_gateway_usage_write_errors_total Batches of usage records that failed "
        "(kept and tried again).\n"
        "# TYPE skyio_gateway_usage_write_errors_total counter\n"
        "skyio_gateway_usage_write_errors_total %llu\n"
        "# HELP skyio_gateway_usage_records_spilled Usage records waiting on the local spill "
        "file (past the memory bound while the store cannot write).\n"
        "# TYPE skyio_gateway_usage_records_spilled gauge\n"
        "skyio_gateway_usage_records_spilled %llu\n",
        (unsigned long long)v->usage_written, (unsigned long long)v->usage_lost,
        (unsigned long long)v->usage_queued, (unsigned long long)v->write_errors,
        (unsigned long long)v->usage_spilled);
}

/* This loop's figures now. */
static void view_of(const sky_gateway *g, gw_store_view *v)
{
    memset(v, 0, sizeof(*v));
    v->has_cache = g->cache != NULL;
    memcpy(v->cache, g->cache_counts, sizeof(v->cache));
    if ((v->has_usage = g->usage != NULL) != 0) {
        sky__store_stats st;
        sky__store_get_stats(g->usage, &st);
        v->usage_written = st.usage_written;
        v->usage_lost = st.usage_lost;
        v->usage_queued = st.usage_queued;
        v->write_errors = st.write_errors;
        v->usage_spilled = st.usage_spilled;
    }
}

void sky__gw_stores_publish(const sky_gateway *g)
{
    gw_store_view v;
    if (g->n_loops < 2)
        return;
    view_of(g, &v);
    sky__gw_shared_lock(g->shared);
    sky__gw_shared_set_stores(g->shared, g->index, &v);
    sky__gw_shared_unlock(g->shared);
}

int sky__gw_stores_metrics(sky_buf *b, const sky_gateway *g)
{
    gw_store_view v;
    view_of(g, &v);
    if (g->n_loops > 1) { /* this loop's as they are now, the others' as they last left them */
        sky__gw_shared_set_stores(g->shared, g->index, &v);
        sky__gw_shared_stores(g->shared, &v);
    }
    int rc = v.has_cache ? write_cache(b, &v) : 0;
    rc = rc ? rc : sky__gw_usage_metrics(b, g); /* usage_store.c */
    return rc ? rc : v.has_usage ? write_usage(b, &v) : 0;
}
