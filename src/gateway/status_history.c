/*
 * The recent history behind the live page: per model and deployment (its label), a ring of
 * 5-second slots holding the calls answered, 429s, other errors and a coarse latency
 * histogram, enough for a rate and p50 / p90 over the last minutes. A slot is reused when
 * its number comes round again, so nothing grows with time; series grow with the names
 * configured (a reload that renames keeps the old ones, as the metrics do).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define GW_HISTORY_SERIES_MAX 4096

typedef struct gw_history_series {
    struct gw_history_series *next;
    char *model, *label; /* label "": the call reached no deployment */
    gw_history_slot ring[GW_HISTORY_SLOTS];
} gw_history_series;

typedef struct gw_lag_slot {
    uint64_t slot;
    double worst_ms;
} gw_lag_slot;

struct gw_history {
    gw_history_series *series;
    size_t n;
    gw_lag_slot lag[GW_HISTORY_SLOTS];
};

gw_history *sky__gw_history_new(void)
{
    return calloc(1, sizeof(gw_history));
}

void sky__gw_history_free(gw_history *h)
{
    if (h == NULL)
        return;
    while (h->series) {
        gw_history_series *s = h->series;
        h->series = s->next;
        free(s->model);
        free(s->label);
        free(s);
    }
    free(h);
}

static gw_history_series *series_for(gw_history *h, const char *model, const char *label)
{
    gw_history_series *s;
    for (s = h->series; s; s = s->next)
        if (strcmp(s->model, model) == 0 && strcmp(s->label, label) == 0)
            return s;
    if (h->n >= GW_HISTORY_SERIES_MAX || (s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    if ((s->model = strdup(model)) == NULL || (s->label = strdup(label)) == NULL) {
        free(s->model);
        free(s);
        return NULL;
    }
    s->next = h->series;
    h->series = s;
    h->n++;
    return s;
}

static int lat_bucket(uint64_t ns)
{
    double ms = (double)ns / 1e6, bound = 0.25;
    for (int i = 0; i < GW_HISTORY_LAT_BUCKETS - 1; i++, bound *= 2)
        if (ms <= bound)
            return i;
    return GW_HISTORY_LAT_BUCKETS - 1;
}

void sky__gw_history_count(gw_history *h, const gw_record *r, uint64_t now_ms)
{
    if (h == NULL || r->model == NULL)
        return;
    gw_history_series *s = series_for(h, r->model, r->deployment ? r->deployment : "");
    if (s == NULL)
        return;
    uint64_t n = now_ms / GW_HISTORY_SLOT_MS;
    gw_history_slot *slot = &s->ring[n % GW_HISTORY_SLOTS];
    if (slot->slot != n) {
        memset(slot, 0, sizeof(*slot));
        slot->slot = n;
    }
    slot->requests++;
    slot->throttled += r->status == 429;
    slot->errors += r->status >= 400 && r->status != 429;
    slot->lat[lat_bucket(r->total_ns)]++;
}

static void add_slot(gw_history_slot *to, const gw_history_slot *from)
{
    to->requests += from->requests;
    to->throttled += from->throttled;
    to->errors += from->errors;
    for (int i = 0; i < GW_HISTORY_LAT_BUCKETS; i++)
        to->lat[i] += from->lat[i];
}

void sky__gw_history_collect(const gw_history *h, const char *model, const char *label,
                             uint64_t now_ms, gw_history_slot out[GW_HISTORY_SLOTS])
{
    uint64_t last = now_ms / GW_HISTORY_SLOT_MS;
    memset(out, 0, GW_HISTORY_SLOTS * sizeof(*out));
    for (int i = 0; i < GW_HISTORY_SLOTS; i++)
        out[i].slot = last + 1 + (uint64_t)i - GW_HISTORY_SLOTS; /* wraps harmlessly early on */
    for (const gw_history_series *s = h ? h->series : NULL; s; s = s->next) {
        if (strcmp(s->model, model) != 0 || (label && strcmp(s->label, label) != 0))
            continue;
        for (int i = 0; i < GW_HISTORY_SLOTS; i++) {
            const gw_history_slot *from = &s->ring[out[i].slot % GW_HISTORY_SLOTS];
            if (from->slot == out[i].slot && from->requests > 0)
                add_slot(&out[i], from);
        }
    }
}

double sky__gw_history_quantile(const gw_history_slot *s, double q)
{
    if (s->requests == 0)
        return -1;
    double want = q * s->requests, seen = 0, low = 0, high = 0.25;
    for (int i = 0; i < GW_HISTORY_LAT_BUCKETS; i++, low = high, high *= 2) {
        if (s->lat[i] > 0 && seen + s->lat[i] >= want) /* linear within the bucket */
            return low + (high - low) * (want - seen) / s->lat[i];
        seen += s->lat[i];
    }
    return low;
}

void sky__gw_history_lag(gw_history *h, double seconds, uint64_t now_ms)
{
    if (h == NULL)
        return;
    uint64_t n = now_ms / GW_HISTORY_SLOT_MS;
    gw_lag_slot *slot = &h->lag[n % GW_HISTORY_SLOTS];
    double ms = seconds * 1000;
    if (slot->slot != n) {
        slot->slot = n;
        slot->worst_ms = ms;
    } else if (ms > slot->worst_ms) {
        slot->worst_ms = ms;
    }
}

void sky__gw_history_lag_collect(const gw_history *h, uint64_t now_ms, double out[GW_HISTORY_SLOTS])
{
    uint64_t last = now_ms / GW_HISTORY_SLOT_MS;
    for (int i = 0; i < GW_HISTORY_SLOTS; i++) {
        uint64_t n = last + 1 + (uint64_t)i - GW_HISTORY_SLOTS;
        const gw_lag_slot *slot = h ? &h->lag[n % GW_HISTORY_SLOTS] : NULL;
        out[i] = slot && slot->slot == n && n != 0 ? slot->worst_ms : -1;
    }
}
