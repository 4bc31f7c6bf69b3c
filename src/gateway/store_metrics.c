/*
 * The stores in /metrics: the response cache's lookups by outcome (a "bypassed" lookup is
 * one the store could not answer: Redis away), and the usage records written, waiting and
 * lost (refused over the queue's bound, or unwritten at exit), and those on the spill file.
 */
#include "internal.h"
#include "store/store.h"

static int write_cache(sky_buf *b, const sky_gateway *g)
{
    static const char *const outcome[GW_CACHE_COUNTS] = {"hit", "miss", "partial", "bypassed"};
    int rc = sky_buf_printf(b, "# HELP skyio_gateway_cache_lookups_total Response cache lookups "
                               "by outcome (bypassed: the store could not answer).\n"
                               "# TYPE skyio_gateway_cache_lookups_total counter\n");
    for (int i = 0; rc == 0 && i < GW_CACHE_COUNTS; i++)
        rc = sky_buf_printf(b, "skyio_gateway_cache_lookups_total{result=\"%s\"} %llu\n",
                            outcome[i], (unsigned long long)g->cache_counts[i]);
    return rc;
}

static int write_usage(sky_buf *b, const sky__store *s)
{
    sky__store_stats st;
    sky__store_get_stats(s, &st);
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
        (unsigned long long)st.usage_written, (unsigned long long)st.usage_lost,
        (unsigned long long)st.usage_queued, (unsigned long long)st.write_errors,
        (unsigned long long)st.usage_spilled);
}

int sky__gw_stores_metrics(sky_buf *b, const sky_gateway *g)
{
    int rc = g->cache ? write_cache(b, g) : 0;
    rc = rc ? rc : sky__gw_usage_metrics(b, g); /* usage_store.c */
    return rc ? rc : g->usage ? write_usage(b, g->usage) : 0;
}
