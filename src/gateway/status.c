/*
 * GET /status.json: what the live page (page.c) draws, as one JSON snapshot. For each
 * model of the current routing, its fallbacks and whether it is ready; for each of its
 * deployments, by label, its kind, weight, the pipeline as it stands (limits as learned,
 * in flight, breaker; added up over the loops as /metrics does) and its recent history;
 * the model's own history adds up its deployments' and its calls that reached none. And
 * the event loops' worst lag per slot, and the connections open on the loop that answers.
 * Only configured names: never a URL, an upstream key or a client's key. No key asked,
 * like /metrics.
 */
#include <math.h>
#include <stdio.h>

#include "internal.h"

static const char *const breaker_names[] = {"closed", "open", "half-open"};

/* A deployment's gauges over every loop that knows its label; 0 when none has it yet. */
static int gauges_for(const gw_shared *sh, const char *label, gw_dep_gauges *sum)
{
    int found = 0;
    memset(sum, 0, sizeof(*sum));
    for (int l = 0; l < sky__gw_shared_loops(sh); l++) {
        const gw_dep_gauges *v;
        size_t n = sky__gw_shared_view(sh, l, &v);
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i].label, label) == 0) {
                found = 1;
                sum->in_flight += v[i].in_flight;
                sum->concurrency += v[i].concurrency;
                sum->rpm += v[i].rpm;
                sum->tpm += v[i].tpm;
                sum->breaker = fmax(sum->breaker, v[i].breaker);
            }
    }
    return found;
}

/* Milliseconds a slot, to the microsecond; null where there is none (< 0). */
static json_t *ms_array(const double v[GW_HISTORY_SLOTS])
{
    json_t *a = json_array();
    for (int i = 0; a && i < GW_HISTORY_SLOTS; i++)
        if (json_array_append_new(a, v[i] < 0 ? json_null()
                                              : json_real(round(v[i] * 1000) / 1000)) < 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

static json_t *quantiles(const gw_history_slot *s, double q)
{
    double v[GW_HISTORY_SLOTS];
    for (int i = 0; i < GW_HISTORY_SLOTS; i++)
        v[i] = sky__gw_history_quantile(&s[i], q);
    return ms_array(v);
}

static json_t *lag_json(const sky_gateway *g, uint64_t now_ms)
{
    double v[GW_HISTORY_SLOTS];
    sky__gw_history_lag_collect(sky__gw_shared_history(g->shared), now_ms, v);
    return ms_array(v);
}

static json_t *counts(const gw_history_slot *s, size_t at)
{
    json_t *a = json_array();
    for (int i = 0; a && i < GW_HISTORY_SLOTS; i++) {
        uint32_t v;
        memcpy(&v, (const char *)&s[i] + at, sizeof(v));
        if (json_array_append_new(a, json_integer(v)) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

/* {"requests": [...], "throttled": [...], "errors": [...], "p50_ms": [...], "p90_ms": [...]},
 * a number a slot, oldest first; a latency with no calls is null. */
static json_t *history_json(const sky_gateway *g, const char *model, const char *label,
                            uint64_t now_ms)
{
    gw_history_slot s[GW_HISTORY_SLOTS];
    sky__gw_history_collect(sky__gw_shared_history(g->shared), model, label, now_ms, s);
    return json_pack("{s:o,s:o,s:o,s:o,s:o}", "requests",
                     counts(s, offsetof(gw_history_slot, requests)), "throttled",
                     counts(s, offsetof(gw_history_slot, throttled)), "errors",
                     counts(s, offsetof(gw_history_slot, errors)), "p50_ms", quantiles(s, 0.5),
                     "p90_ms", quantiles(s, 0.9));
}

static json_t *deployment_json(const sky_gateway *g, const gw_deployment *d, uint64_t now_ms)
{
    gw_dep_gauges gs;
    int seen = gauges_for(g->shared, d->label, &gs);
    int b = (int)gs.breaker;
    json_t *o = json_pack("{s:s,s:s,s:f,s:b,s:f,s:f,s:f,s:f,s:s}", "label", d->label, "kind",
                          d->azure ? "azure" : "openai", "weight", d->rt.weight, "usable",
                          sky__gw_usable(d), "in_flight", gs.in_flight, "concurrency_limit",
                          gs.concurrency, "rpm", gs.rpm, "tpm", gs.tpm, "breaker",
                          !seen             ? "unknown"
                          : b >= 0 && b < 3 ? breaker_names[b]
                                            : "unknown");
    if (o && json_object_set_new(o, "history", history_json(g, d->model, d->label, now_ms)) < 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static int model_ready(const gw_table *t, const gw_model *m)
{
    for (size_t i = 0; i < m->n_deps; i++)
        if (sky__gw_usable(&t->deps[m->deps[i]]))
            return 1;
    return 0;
}

static json_t *model_json(const sky_gateway *g, const gw_table *t, const gw_model *m,
                          uint64_t now_ms)
{
    json_t *deps = json_array(), *fallbacks = json_array();
    for (size_t i = 0; deps && i < m->n_deps; i++)
        if (json_array_append_new(deps, deployment_json(g, &t->deps[m->deps[i]], now_ms)) < 0) {
            json_decref(deps);
            deps = NULL;
        }
    for (size_t i = 0; fallbacks && i < m->n_fallbacks; i++)
        if (json_array_append_new(fallbacks, json_string(t->models[m->fallbacks[i]].name)) < 0) {
            json_decref(fallbacks);
            fallbacks = NULL;
        }
    return json_pack("{s:s,s:b,s:o,s:o,s:o}", "name", m->name, "ready", model_ready(t, m),
                     "fallbacks", fallbacks, "deployments", deps, "history",
                     history_json(g, m->name, NULL, now_ms));
}

/* The snapshot; NULL when out of memory. Read under the shared lock. */
static json_t *status_json(const sky_gateway *g)
{
    const gw_table *t = g->table;
    uint64_t now_ms = uv_hrtime() / 1000000; /* one time for every history: slots align */
    json_t *models = json_array();
    for (size_t i = 0; models && i < t->n_models; i++)
        if (json_array_append_new(models, model_json(g, t, &t->models[i], now_ms)) < 0) {
            json_decref(models);
            models = NULL;
        }
    return json_pack("{s:i,s:i,s:i,s:I,s:o,s:o}", "slot_seconds", GW_HISTORY_SLOT_MS / 1000,
                     "slots", GW_HISTORY_SLOTS, "loops", g->n_loops, "connections_open",
                     (json_int_t)sky_server_open_connections(g->srv), "loop_lag_ms",
                     lag_json(g, now_ms), "models", models);
}

void sky__gw_on_status(sky_server_req *r, void *gateway)
{
    sky_gateway *g = gateway;
    sky__gw_monitor_refresh(g); /* this loop's deployments as they are now */
    sky__gw_shared_lock(g->shared);
    json_t *body = status_json(g);
    sky__gw_shared_unlock(g->shared);
    if (body == NULL) {
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    sky_server_add_header(r, "cache-control", SKY_SPAN_LIT("no-store"));
    sky_server_respond_json(r, 200, body);
    json_decref(body);
}
