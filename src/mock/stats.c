/* GET /mock/stats and POST /mock/reset: the counters of every worker, summed. */
#include <stdio.h>

#include "worker.h"

static void sum_stats(const sky_mock *m, sky__mock_stats *out, uint64_t *conns, uint64_t *in_flight)
{
    memset(out, 0, sizeof(*out));
    *conns = *in_flight = 0;
    for (int w = 0; w < m->n_workers; w++) {
        const sky__mock_stats *st = &m->workers[w].st;
        const uint64_t *src = (const uint64_t *)st;
        uint64_t *dst = (uint64_t *)out;
        for (size_t i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
            dst[i] += ST_GET(src[i]);
        *conns += sky_server_connections(m->workers[w].srv);
        *in_flight += sky_server_requests_in_flight(m->workers[w].srv);
    }
}

/* --capacity: the limit, the calls served and waiting now, and the waits so far. */
static json_t *capacity_stats(const sky_mock *m, const sky__mock_stats *st)
{
    uint64_t busy = 0, queued = 0, peak = 0;
    for (int w = 0; w < m->n_workers; w++) {
        busy += ST_GET(m->workers[w].busy);
        queued += ST_GET(m->workers[w].queued);
        peak += ST_GET(m->workers[w].peak_queued);
    }
    return json_pack("{s:i,s:I,s:I,s:I,s:I,s:I}", "limit", m->cfg.capacity * m->n_workers, "busy",
                     (json_int_t)busy, "queued", (json_int_t)queued, "peak_queued",
                     (json_int_t)peak, "waits", (json_int_t)st->capacity_waits, "wait_ms",
                     (json_int_t)st->capacity_wait_ms);
}

/* {"200": n, "429": n, ...}: the statuses answered, those never answered left out. */
static json_t *status_counts(const sky__mock_stats *st)
{
    json_t *status = json_object();
    char key[8];
    for (int i = 0; status && i < 600; i++) {
        if (st->by_status[i] == 0)
            continue;
        snprintf(key, sizeof(key), "%d", i);
        json_object_set_new(status, key, json_integer((json_int_t)st->by_status[i]));
    }
    return status;
}

static json_t *fault_counts(const sky__mock_stats *st)
{
    json_t *faults = json_object();
    for (int i = 0; faults && i < SKY__FAULT_COUNT; i++)
        json_object_set_new(faults, sky__mock_fault_names[i],
                            json_integer((json_int_t)st->faults[i]));
    return faults;
}

/* The counters added after the first shape of /mock/stats, set into @p out. */
static void add_later_stats(const sky_mock *m, const sky__mock_stats *st, json_t *out)
{
    json_object_set_new(out, "streams_with_usage",
                        json_integer((json_int_t)st->streams_with_usage));
    json_t *ep = json_object_get(out, "endpoints");
    json_object_set_new(ep, "responses", json_integer((json_int_t)st->responses));
    json_object_set_new(ep, "completions", json_integer((json_int_t)st->completions));
    json_object_set_new(ep, "moderations", json_integer((json_int_t)st->moderations));
    json_object_set_new(out, "identity", sky__mock_identity_stats(m->identity));
    json_object_set_new(out, "overloaded", json_integer((json_int_t)st->overloaded));
    json_object_set_new(out, "poisoned", json_integer((json_int_t)st->poisoned));
    json_object_set_new(out, "capacity", capacity_stats(m, st));
}

json_t *sky_mock_stats(const sky_mock *m)
{
    sky__mock_stats st;
    uint64_t conns, in_flight;
    sum_stats(m, &st, &conns, &in_flight);
    json_t *status = status_counts(&st), *faults = fault_counts(&st);
    json_t *out = json_pack(
        "{s:I,s:o,s:I,s:I,s:I,s:o,s:{s:I,s:I},s:{s:I,s:I,s:I},s:I,s:I,s:I,s:I,s:i}", "requests",
        (json_int_t)st.requests, "responses", status, "rate_limited",
        (json_int_t)(st.rate_limited_requests + st.rate_limited_tokens), "rate_limited_requests",
        (json_int_t)st.rate_limited_requests, "rate_limited_tokens",
        (json_int_t)st.rate_limited_tokens, "faults", faults, "tokens", "prompt",
        (json_int_t)st.prompt_tokens, "completion", (json_int_t)st.completion_tokens, "endpoints",
        "chat", (json_int_t)st.chat, "embeddings", (json_int_t)st.embeddings, "models",
        (json_int_t)st.models, "streams", (json_int_t)st.streams, "auth_failures",
        (json_int_t)st.auth_failures, "connections", (json_int_t)conns, "in_flight",
        (json_int_t)(in_flight > 0 ? in_flight - 1 : 0), "threads", m->n_workers);
    if (out)
        add_later_stats(m, &st, out);
    return out;
}

void sky__mock_on_stats(sky_server_req *r, void *worker)
{
    sky__mock_worker *w = worker;
    json_t *st = sky_mock_stats(w->owner);
    if (st == NULL) {
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{}"));
        return;
    }
    sky_server_respond_json(r, 200, st);
    json_decref(st);
}

void sky__mock_on_reset(sky_server_req *r, void *worker)
{
    sky__mock_worker *w = worker;
    sky_mock *m = w->owner;
    for (int i = 0; i < m->n_workers; i++) {
        uint64_t *p = (uint64_t *)&m->workers[i].st;
        for (size_t k = 0; k < sizeof(sky__mock_stats) / sizeof(uint64_t); k++)
            __atomic_store_n(&p[k], 0, __ATOMIC_RELAXED);
    }
    uv_mutex_lock(&m->limiter_lock);
    sky__mock_limiter_init(&m->limiter, m->cfg.rpm, m->cfg.tpm, m->cfg.window_ms);
    uv_mutex_unlock(&m->limiter_lock);
    sky__mock_identity_reset(m->identity);
    sky_server_respond(r, 200, "application/json", SKY_SPAN_LIT("{\"reset\":true}"));
}
