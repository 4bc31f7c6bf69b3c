/* skyio — counters, gauges and latency histograms cheap enough for the hot path. */
#ifndef SKYIO_METRICS_H
#define SKYIO_METRICS_H

#include <jansson.h>

#include "common.h"

/** A monotonically increasing count. Single-threaded, like the loop that owns it. */
typedef struct sky_counter {
    uint64_t value;
} sky_counter;

/** A value that goes up and down (in flight, current limit). */
typedef struct sky_gauge {
    int64_t value;
} sky_gauge;

static inline void sky_counter_add(sky_counter *c, uint64_t n)
{
    c->value += n;
}
static inline void sky_gauge_set(sky_gauge *g, int64_t v)
{
    g->value = v;
}
static inline void sky_gauge_add(sky_gauge *g, int64_t d)
{
    g->value += d;
}

/*
 * Log-linear histogram (HdrHistogram's idea): each power of two is split in
 * SKY_HIST_SUB buckets, so a recorded value is known within 1/SKY_HIST_SUB
 * (about 3%). Fixed size, no allocation; recording is a few instructions.
 * Values are unsigned integers in any unit (we use microseconds for latency).
 */
#define SKY_HIST_SUB_BITS 5
#define SKY_HIST_SUB (1u << SKY_HIST_SUB_BITS)
#define SKY_HIST_MAGNITUDES 40 /* values up to 2^40 (12 days in microseconds) */
#define SKY_HIST_BUCKETS ((SKY_HIST_MAGNITUDES + 1) * SKY_HIST_SUB)

typedef struct sky_histogram {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint32_t buckets[SKY_HIST_BUCKETS];
} sky_histogram;

/** Empty the histogram. */
SKY_EXTERN void sky_histogram_init(sky_histogram *h);
/** Record one value (values past the range land in the last bucket). */
SKY_EXTERN void sky_histogram_record(sky_histogram *h, uint64_t value);
/**
 * The value at percentile @p p (0..100): the smallest recorded bucket's
 * upper bound such that at least p% of values are at or below it, clamped
 * to [min, max]. 0 when empty.
 */
SKY_EXTERN uint64_t sky_histogram_percentile(const sky_histogram *h, double p);
/** Mean of recorded values; 0 when empty. */
SKY_EXTERN double sky_histogram_mean(const sky_histogram *h);
/** Add every value of @p src to @p dst. */
SKY_EXTERN void sky_histogram_merge(sky_histogram *dst, const sky_histogram *src);

/**
 * A named set of metrics, for /stats endpoints and summaries. Names are
 * copied. Lookups create on first use and return the same pointer after,
 * stable until sky_metrics_free.
 */
typedef struct sky_metrics sky_metrics;

SKY_EXTERN sky_metrics *sky_metrics_new(void);
SKY_EXTERN void sky_metrics_free(sky_metrics *m);
/** NULL only on out of memory, or when @p name already names another kind. */
SKY_EXTERN sky_counter *sky_metrics_counter(sky_metrics *m, const char *name);
SKY_EXTERN sky_gauge *sky_metrics_gauge(sky_metrics *m, const char *name);
SKY_EXTERN sky_histogram *sky_metrics_histogram(sky_metrics *m, const char *name);
/**
 * A JSON object (new reference): counters and gauges as numbers, histograms as
 * {"count","mean","min","max","p50","p90","p99"}. NULL on out of memory.
 */
SKY_EXTERN json_t *sky_metrics_to_json(const sky_metrics *m);

#endif
