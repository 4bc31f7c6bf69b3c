/*
 * What the gateway counts, and GET /metrics in Prometheus's text format (0.0.4): requests
 * by route, model, deployment and status; latency, total and added by the gateway, as
 * histograms by route; tokens by model; each deployment's pipeline as it stands (learned
 * limits, in flight, breaker, added up over the loops); the event loops' lag. Counters are
 * shared by the loops (shared.c) and read under their lock. Series are kept by their labels'
 * text, so a reload, which makes new deployments, does not reset them. Labels hold only
 * configured names: never what a client sent (an unknown model is counted as "").
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "skyio/log.h"
#include "internal.h"

#define GW_SERIES_BUCKETS 256
#define GW_METRICS_MAX (8u << 20)

/* Upper bounds of the latency buckets, in seconds (+Inf after them). */
static const double bounds[GW_LAT_BUCKETS] = {
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,     0.1,     0.25,   0.5,     1,      2.5,   5,      10,    30,   60};

typedef struct gw_series {
    struct gw_series *next;
    char *model, *deployment; /* "" when none */
    int route;                /* a gw_op */
    int status;
    uint64_t count;
} gw_series;

typedef struct gw_token_series {
    struct gw_token_series *next;
    char *model;
    uint64_t prompt, completion;
} gw_token_series;

struct gw_metrics {
    gw_series *series[GW_SERIES_BUCKETS];
    gw_series *last; /* the series counted last: mostly the next one's too */
    gw_token_series *tokens;
    gw_latency total[GW_OP_COUNT], added[GW_OP_COUNT];
    gw_latency lag;
    uint64_t reloads, reload_failures;
};

static void latency_record(gw_latency *h, double s)
{
    h->count++;
    h->sum += s;
    for (int i = 0; i < GW_LAT_BUCKETS; i++)
        if (s <= bounds[i]) {
            h->buckets[i]++;
            return;
        }
}

gw_metrics *sky__gw_metrics_new(void)
{
    return calloc(1, sizeof(gw_metrics));
}

void sky__gw_metrics_free(gw_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < GW_SERIES_BUCKETS; i++)
        while (m->series[i]) {
            gw_series *s = m->series[i];
            m->series[i] = s->next;
            free(s->model);
            free(s->deployment);
            free(s);
        }
    while (m->tokens) {
        gw_token_series *t = m->tokens;
        m->tokens = t->next;
        free(t->model);
        free(t);
    }
    free(m);
}

/* ---- counting ---- */

static uint32_t hash(const char *a, const char *b, int route, int status)
{
    uint32_t h = 2166136261u ^ (uint32_t)route ^ ((uint32_t)status << 8);
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static gw_series *series_for(gw_metrics *m, const char *model, const char *dep, int route,
                             int status)
{
    gw_series *last = m->last;
    if (last && last->route == route && last->status == status && strcmp(last->model, model) == 0 &&
        strcmp(last->deployment, dep) == 0)
        return last;
    gw_series **head = &m->series[hash(model, dep, route, status) % GW_SERIES_BUCKETS];
    for (gw_series *s = *head; s; s = s->next)
        if (s->route == route && s->status == status && strcmp(s->model, model) == 0 &&
            strcmp(s->deployment, dep) == 0)
            return s;
    gw_series *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->model = strdup(model)) == NULL || (s->deployment = strdup(dep)) == NULL) {
        if (s)
            free(s->model);
        free(s);
        return NULL;
    }
    s->route = route;
    s->status = status;
    s->next = *head;
    *head = s;
    return s;
}

static void count_tokens(gw_metrics *m, const char *model, const gw_tokens *t)
{
    gw_token_series *s = m->tokens;
    while (s && strcmp(s->model, model) != 0)
        s = s->next;
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL || (s->model = strdup(model)) == NULL) {
            free(s);
            return;
        }
        s->next = m->tokens;
        m->tokens = s;
    }
    s->prompt += t->prompt > 0 ? (uint64_t)t->prompt : 0;
    s->completion += t->completion > 0 ? (uint64_t)t->completion : 0;
}

void sky__gw_metrics_count(gw_metrics *m, const gw_record *r)
{
    const char *model = r->model ? r->model : "";
    gw_series *s = series_for(m, model, r->deployment ? r->deployment : "", (int)r->op, r->status);
    if (s) {
        s->count++;
        m->last = s;
    }
    uint64_t added = r->total_ns > r->upstream_ns ? r->total_ns - r->upstream_ns : 0;
    latency_record(&m->total[r->op], (double)r->total_ns / 1e9);
    latency_record(&m->added[r->op], (double)added / 1e9);
    if (r->model && (r->used.prompt > 0 || r->used.completion > 0))
        count_tokens(m, r->model, &r->used);
}

void sky__gw_metrics_reloaded(gw_metrics *m)
{
    m->reloads++;
}

void sky__gw_metrics_reload_failed(gw_metrics *m)
{
    m->reload_failures++;
}

void sky__gw_metrics_lag(gw_metrics *m, double seconds)
{
    latency_record(&m->lag, seconds);
}

/* ---- the exposition ---- */

/* A label value as the format wants it: backslash, quote and newline escaped. */
static int label(sky_buf *b, const char *v)
{
    int rc = 0;
    for (const char *p = v; rc == 0 && *p; p++)
        rc = *p == '\\'   ? sky_buf_append(b, "\\\\", 2)
             : *p == '"'  ? sky_buf_append(b, "\\\"", 2)
             : *p == '\n' ? sky_buf_append(b, "\\n", 2)
                          : sky_buf_append(b, p, 1);
    return rc;
}

static int head(sky_buf *b, const char *name, const char *type, const char *help)
{
    return sky_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int write_requests(sky_buf *b, const gw_metrics *m)
{
    int rc = head(b, "skyio_gateway_requests_total", "counter",
                  "Model calls answered, by route, model, deployment (the last tried) and "
                  "status (499: the client left first).");
    for (size_t i = 0; rc == 0 && i < GW_SERIES_BUCKETS; i++)
        for (const gw_series *s = m->series[i]; rc == 0 && s; s = s->next) {
            rc = sky_buf_printf(b, "skyio_gateway_requests_total{route=\"%s\",model=\"",
                                sky__gw_op_path((gw_op)s->route));
            rc = rc ? rc : label(b, s->model);
            rc = rc ? rc : sky_buf_append_str(b, "\",deployment=\"");
            rc = rc ? rc : label(b, s->deployment);
            rc = rc ? rc
                    : sky_buf_printf(b, "\",status=\"%d\"} %llu\n", s->status,
                                     (unsigned long long)s->count);
        }
    return rc;
}

static int write_histogram(sky_buf *b, const char *name, const char *labels, const gw_latency *h)
{
    uint64_t cum = 0;
    int rc = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; rc == 0 && i < GW_LAT_BUCKETS; i++) {
        cum += h->buckets[i];
        rc = sky_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
                            (unsigned long long)cum);
    }
    rc = rc ? rc
            : sky_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                             (unsigned long long)h->count);
    rc = rc ? rc : sky_buf_printf(b, "%s_sum{%s} %.9f\n", name, labels, h->sum);
    return rc ? rc
              : sky_buf_printf(b, "%s_count{%s} %llu\n", name, labels,
                               (unsigned long long)h->count);
}

static int write_latency(sky_buf *b, const gw_metrics *m)
{
    static const char *const names[2] = {"skyio_gateway_request_duration_seconds",
                                         "skyio_gateway_added_duration_seconds"};
    static const char *const helps[2] = {
        "From the request read to its answer's end, by route.",
        "The part of it the gateway added: total less the time upstream calls took."};
    int rc = 0;
    for (int k = 0; rc == 0 && k < 2; k++) {
        rc = head(b, names[k], "histogram", helps[k]);
        for (int op = 0; rc == 0 && op < GW_OP_COUNT; op++) {
            char labels[64];
            snprintf(labels, sizeof(labels), "route=\"%s\"", sky__gw_op_path((gw_op)op));
            rc = write_histogram(b, names[k], labels, k ? &m->added[op] : &m->total[op]);
        }
    }
    return rc;
}

static int write_tokens(sky_buf *b, const gw_metrics *m)
{
    int rc = head(b, "skyio_gateway_tokens_total", "counter",
                  "Tokens the replies said they used, by model and kind.");
    for (const gw_token_series *t = m->tokens; rc == 0 && t; t = t->next)
        for (int k = 0; rc == 0 && k < 2; k++) {
            rc = sky_buf_append_str(b, "skyio_gateway_tokens_total{model=\"");
            rc = rc ? rc : label(b, t->model);
            rc = rc ? rc
                    : sky_buf_printf(b, "\",kind=\"%s\"} %llu\n", k ? "completion" : "prompt",
                                     (unsigned long long)(k ? t->completion : t->prompt));
        }
    return rc;
}

/* A deployment's gauges added up over every loop (those that know it by that label). */
static gw_dep_gauges sum_over_loops(const gw_shared *sh, const gw_dep_gauges *d)
{
    gw_dep_gauges sum = *d;
    for (int l = 1; l < sky__gw_shared_loops(sh); l++) {
        const gw_dep_gauges *v;
        size_t n = sky__gw_shared_view(sh, l, &v);
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i].label, d->label) == 0) {
                sum.in_flight += v[i].in_flight;
                sum.concurrency += v[i].concurrency;
                sum.rpm += v[i].rpm;
                sum.tpm += v[i].tpm;
                sum.breaker = fmax(sum.breaker, v[i].breaker);
            }
    }
    return sum;
}

static const struct {
    const char *name, *help;
    size_t at; /* the value's offset in gw_dep_gauges */
} dep_gauges[] = {
    {"skyio_gateway_deployment_in_flight", "Calls under way on the deployment.",
     offsetof(gw_dep_gauges, in_flight)},
    {"skyio_gateway_deployment_concurrency_limit",
     "The deployment's concurrency limit as learned (added up over the loops).",
     offsetof(gw_dep_gauges, concurrency)},
    {"skyio_gateway_deployment_rate_limit_rpm",
     "Requests a minute the deployment's limiter allows now (given or learned; 0: no limit "
     "known).",
     offsetof(gw_dep_gauges, rpm)},
    {"skyio_gateway_deployment_rate_limit_tpm",
     "Tokens a minute the deployment's limiter allows now (0: no limit known).",
     offsetof(gw_dep_gauges, tpm)},
    {"skyio_gateway_deployment_breaker_state",
     "The deployment's circuit breaker: 0 closed, 1 open, 2 half open (the worst of the "
     "loops).",
     offsetof(gw_dep_gauges, breaker)},
};

static int write_dep_gauge(sky_buf *b, const gw_shared *sh, size_t k)
{
    const gw_dep_gauges *v;
    size_t n = sky__gw_shared_view(sh, 0, &v);
    const char *name = dep_gauges[k].name;
    int rc = head(b, name, "gauge", dep_gauges[k].help);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        gw_dep_gauges sum = sum_over_loops(sh, &v[i]);
        double value;
        memcpy(&value, (const char *)&sum + dep_gauges[k].at, sizeof(value));
        rc = sky_buf_printf(b, "%s{model=\"", name);
        rc = rc ? rc : label(b, sum.model);
        rc = rc ? rc : sky_buf_append_str(b, "\",deployment=\"");
        rc = rc ? rc : label(b, sum.label);
        rc = rc ? rc : sky_buf_printf(b, "\"} %.17g\n", value);
    }
    return rc;
}

static int write_deployments(sky_buf *b, const gw_shared *sh)
{
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < SKY_ARRAY_LEN(dep_gauges); k++)
        rc = write_dep_gauge(b, sh, k);
    return rc;
}

static int write_process(sky_buf *b, const sky_gateway *g, const gw_metrics *m)
{
    int rc = head(b, "skyio_gateway_loop_lag_seconds", "histogram",
                  "How late a 100 ms timer of the event loop fires: the loop's lag.");
    rc = rc ? rc : write_histogram(b, "skyio_gateway_loop_lag_seconds", "", &m->lag);
    rc = rc ? rc
            : head(b, "skyio_gateway_connections_open", "gauge",
                   "Client connections open on the loop that answered this scrape.");
    rc = rc ? rc
            : sky_buf_printf(b, "skyio_gateway_connections_open %llu\n",
                             (unsigned long long)sky_server_open_connections(g->srv));
    rc = rc ? rc
            : head(b, "skyio_gateway_config_reloads_total", "counter",
                   "Routing reloads that took effect.");
    rc = rc ? rc
            : sky_buf_printf(b, "skyio_gateway_config_reloads_total %llu\n",
                             (unsigned long long)m->reloads);
    rc = rc ? rc
            : head(b, "skyio_gateway_config_reload_failures_total", "counter",
                   "Reloads refused (the file did not read, parse or build): the routing "
                   "running stayed.");
    return rc ? rc
              : sky_buf_printf(b, "skyio_gateway_config_reload_failures_total %llu\n",
                               (unsigned long long)m->reload_failures);
}

void sky__gw_on_metrics(sky_server_req *r, void *gateway)
{
    sky_gateway *g = gateway;
    sky_buf b;
    sky_buf_init(&b, GW_METRICS_MAX);
    sky__gw_monitor_refresh(g); /* this loop's deployments as they are now */
    sky__gw_shared_lock(g->shared);
    const gw_metrics *m = sky__gw_shared_metrics(g->shared);
    int rc = write_requests(&b, m);
    rc = rc ? rc : write_latency(&b, m);
    rc = rc ? rc : write_tokens(&b, m);
    rc = rc ? rc : write_deployments(&b, g->shared);
    rc = rc ? rc : write_process(&b, g, m);
    rc = rc ? rc : sky__gw_stores_metrics(&b, g); /* store_metrics.c */
    sky__gw_shared_unlock(g->shared);
    if (rc < 0)
        sky__gw_error(r, 500, "server_error", NULL, NULL, "cannot write the metrics: %s",
                      sky_err_name(rc));
    else
        sky_server_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", sky_buf_span(&b));
    sky_buf_free(&b);
}
