/* Log-linear latency histograms and the named registry behind /stats. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "skyio/metrics.h"

/* ------------------------------------------------------------------ */
/* Histogram                                                           */
/* ------------------------------------------------------------------ */

/*
 * Bucket layout: a value below SKY_HIST_SUB is its own bucket. Above, the
 * bucket is (position of the highest set bit) * SKY_HIST_SUB plus the
 * SKY_HIST_SUB_BITS bits below that bit, so a bucket spans 1/32 of its power
 * of two. Magnitudes 1..4 share the exact range and their slots stay unused;
 * the layout is simple to invert and costs 512 bytes.
 */
static unsigned highest_bit(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

static size_t bucket_of(uint64_t v)
{
    if (v < SKY_HIST_SUB)
        return (size_t)v;
    unsigned msb = highest_bit(v);
    if (msb > SKY_HIST_MAGNITUDES)
        return SKY_HIST_BUCKETS - 1;
    uint64_t sub = (v >> (msb - SKY_HIST_SUB_BITS)) & (SKY_HIST_SUB - 1);
    return (size_t)msb * SKY_HIST_SUB + (size_t)sub;
}

/* The largest value that lands in bucket @p i. */
static uint64_t bucket_upper(size_t i)
{
    if (i < SKY_HIST_SUB)
        return i;
    unsigned msb = (unsigned)(i / SKY_HIST_SUB);
    uint64_t sub = i % SKY_HIST_SUB;
    if (msb < SKY_HIST_SUB_BITS) /* an unused slot; nothing is ever recorded there */
        return 0;
    unsigned shift = msb - SKY_HIST_SUB_BITS;
    return ((SKY_HIST_SUB + sub + 1) << shift) - 1;
}

/* Counters saturate rather than wrap: a wrong-but-huge total beats a small one. */
static uint64_t add_sat64(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint32_t add_sat32(uint32_t a, uint32_t b)
{
    return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

void sky_histogram_init(sky_histogram *h)
{
    memset(h, 0, sizeof(*h));
}

void sky_histogram_record(sky_histogram *h, uint64_t value)
{
    if (h->count == 0 || value < h->min)
        h->min = value;
    if (h->count == 0 || value > h->max)
        h->max = value;
    h->count = add_sat64(h->count, 1);
    h->sum = add_sat64(h->sum, value);
    size_t i = bucket_of(value);
    h->buckets[i] = add_sat32(h->buckets[i], 1);
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

uint64_t sky_histogram_percentile(const sky_histogram *h, double p)
{
    if (h->count == 0)
        return 0;
    if (!(p > 0.0)) /* also NaN */
        return h->min;
    if (p >= 100.0)
        return h->max;
    double want = ceil(p / 100.0 * (double)h->count);
    uint64_t rank = want < 1.0 ? 1 : (uint64_t)want;
    uint64_t seen = 0;
    for (size_t i = 0; i < SKY_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen < rank)
            continue;
        /* The last bucket also holds everything past the range; only max bounds it. */
        if (i == SKY_HIST_BUCKETS - 1)
            return h->max;
        return clamp_u64(bucket_upper(i), h->min, h->max);
    }
    return h->max; /* saturated buckets can sum to less than count */
}

double sky_histogram_mean(const sky_histogram *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

void sky_histogram_merge(sky_histogram *dst, const sky_histogram *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->count == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->count = add_sat64(dst->count, src->count);
    dst->sum = add_sat64(dst->sum, src->sum);
    for (size_t i = 0; i < SKY_HIST_BUCKETS; i++)
        dst->buckets[i] = add_sat32(dst->buckets[i], src->buckets[i]);
}

/* ------------------------------------------------------------------ */
/* Registry                                                            */
/* ------------------------------------------------------------------ */

typedef enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_kind;

/* Each entry is its own allocation, so the pointers handed out never move. */
typedef struct metric {
    struct metric *next;
    metric_kind kind;
    char *name;
    union {
        sky_counter counter;
        sky_gauge gauge;
        sky_histogram histogram;
    } u;
} metric;

struct sky_metrics {
    metric *head;
    metric *tail; /* appended in creation order, which is the JSON's order */
};

sky_metrics *sky_metrics_new(void)
{
    return calloc(1, sizeof(sky_metrics));
}

void sky_metrics_free(sky_metrics *m)
{
    if (m == NULL)
        return;
    metric *e = m->head;
    while (e != NULL) {
        metric *next = e->next;
        free(e->name);
        free(e);
        e = next;
    }
    free(m);
}

static metric *find(const sky_metrics *m, const char *name)
{
    for (metric *e = m->head; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

static metric *create(sky_metrics *m, const char *name, metric_kind kind)
{
    metric *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->name = strdup(name);
    if (e->name == NULL) {
        free(e);
        return NULL;
    }
    e->kind = kind;
    if (kind == METRIC_HISTOGRAM)
        sky_histogram_init(&e->u.histogram);
    if (m->tail)
        m->tail->next = e;
    else
        m->head = e;
    m->tail = e;
    return e;
}

/* The entry named @p name, created on first use; NULL when it is of another kind. */
static metric *lookup(sky_metrics *m, const char *name, metric_kind kind)
{
    if (m == NULL || name == NULL)
        return NULL;
    metric *e = find(m, name);
    if (e == NULL)
        return create(m, name, kind);
    return e->kind == kind ? e : NULL;
}

sky_counter *sky_metrics_counter(sky_metrics *m, const char *name)
{
    metric *e = lookup(m, name, METRIC_COUNTER);
    return e ? &e->u.counter : NULL;
}

sky_gauge *sky_metrics_gauge(sky_metrics *m, const char *name)
{
    metric *e = lookup(m, name, METRIC_GAUGE);
    return e ? &e->u.gauge : NULL;
}

sky_histogram *sky_metrics_histogram(sky_metrics *m, const char *name)
{
    metric *e = lookup(m, name, METRIC_HISTOGRAM);
    return e ? &e->u.histogram : NULL;
}

/* JSON integers are signed; a count past that is reported at the ceiling. */
static json_t *json_u64(uint64_t v)
{
    return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

/* Each json_object_set_new consumes its value, even NULL or on failure. */
static json_t *histogram_json(const sky_histogram *h)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "count", json_u64(h->count)) < 0 ||
        json_object_set_new(o, "mean", json_real(sky_histogram_mean(h))) < 0 ||
        json_object_set_new(o, "min", json_u64(h->min)) < 0 ||
        json_object_set_new(o, "max", json_u64(h->max)) < 0 ||
        json_object_set_new(o, "p50", json_u64(sky_histogram_percentile(h, 50))) < 0 ||
        json_object_set_new(o, "p90", json_u64(sky_histogram_percentile(h, 90))) < 0 ||
        json_object_set_new(o, "p99", json_u64(sky_histogram_percentile(h, 99))) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *metric_json(const metric *e)
{
    switch (e->kind) {
    case METRIC_COUNTER:
        return json_u64(e->u.counter.value);
    case METRIC_GAUGE:
        return json_integer((json_int_t)e->u.gauge.value);
    case METRIC_HISTOGRAM:
        return histogram_json(&e->u.histogram);
    }
    return NULL;
}

json_t *sky_metrics_to_json(const sky_metrics *m)
{
    json_t *root = json_object();
    if (root == NULL || m == NULL)
        return root;
    for (const metric *e = m->head; e != NULL; e = e->next) {
        if (json_object_set_new(root, e->name, metric_json(e)) < 0) {
            json_decref(root);
            return NULL;
        }
    }
    return root;
}
