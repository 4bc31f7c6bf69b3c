/*
 * What the loops of one gateway (`--threads N`) share, behind one lock: the clients' key
 * budgets, found by the key's name, so a key's RPM and TPM hold for the whole gateway
 * whichever loop a connection lands on (and across reloads); the metrics; and each loop's
 * last view of its deployments, which /metrics adds up; and with several loops, each
 * deployment's rate limit, learned from every loop's replies (a pipeline admitter), so the
 * loops together keep to one limit whichever loop the traffic lands on; and the keys of
 * the admin API. With one loop the lock is never contended.
 */
#include <stdlib.h>

#include "internal.h"

typedef struct budget_slot {
    struct budget_slot *next;
    char *name;
    gw_budget budget;
} budget_slot;

/* A conversation a loop is changing (conversations.c): the others wait for it. */
typedef struct conv_hold {
    struct conv_hold *next;
    char *scope, *id;
} conv_hold;

/* A deployment's rate limit as the loops share it, found by the deployment's key. */
typedef struct rate_slot {
    struct rate_slot *next;
    char *key;
    double rpm, tpm; /* as configured when made */
    sky_ratelimit *rl;
    gw_shared *s;
    sky_rate_admitter admitter;
} rate_slot;

struct gw_shared {
    uv_mutex_t lock;
    gw_metrics *metrics;
    gw_history *history; /* the live page's (status_history.c) */
    budget_slot *budgets;
    rate_slot *rates; /* with several loops: the deployments' rate limits */
    gw_usage_counts usage_counts;
    int n_loops;
    gw_dep_gauges **views; /* per loop: its deployments, as it last saw them */
    size_t *n_views;
    gw_admin_ring *admin_ring; /* the admin API's keys, one set for every loop (admin.c) */
    conv_hold *holds;          /* conversations being changed, by any loop */
    gw_store_view *stores;     /* per loop: its stores, as it last saw them */
};

gw_shared *sky__gw_shared_new(int n_loops)
{
    gw_shared *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->n_loops = n_loops;
    s->metrics = sky__gw_metrics_new();
    s->history = sky__gw_history_new();
    s->views = calloc((size_t)n_loops, sizeof(*s->views));
    s->n_views = calloc((size_t)n_loops, sizeof(*s->n_views));
    s->stores = calloc((size_t)n_loops, sizeof(*s->stores));
    if (s->metrics == NULL || s->history == NULL || s->views == NULL || s->n_views == NULL ||
        s->stores == NULL || uv_mutex_init(&s->lock) != 0) {
        free(s->stores);
        sky__gw_metrics_free(s->metrics);
        sky__gw_history_free(s->history);
        free(s->views);
        free(s->n_views);
        free(s);
        return NULL;
    }
    return s;
}

void sky__gw_shared_free(gw_shared *s)
{
    if (s == NULL)
        return;
    while (s->budgets) {
        budget_slot *b = s->budgets;
        s->budgets = b->next;
        free(b->name);
        free(b);
    }
    while (s->rates) {
        rate_slot *r = s->rates;
        s->rates = r->next;
        sky_ratelimit_free(r->rl);
        free(r->key);
        free(r);
    }
    sky__gw_admin_ring_unref(s->admin_ring); /* the admins may hold it a little longer */
    while (s->holds) {
        conv_hold *h = s->holds;
        s->holds = h->next;
        free(h->scope);
        free(h);
    }
    for (int i = 0; i < s->n_loops; i++)
        free(s->views[i]);
    free(s->views);
    free(s->n_views);
    free(s->stores);
    sky__gw_metrics_free(s->metrics);
    sky__gw_history_free(s->history);
    uv_mutex_destroy(&s->lock);
    free(s);
}

void sky__gw_shared_lock(gw_shared *s)
{
    uv_mutex_lock(&s->lock);
}

void sky__gw_shared_unlock(gw_shared *s)
{
    uv_mutex_unlock(&s->lock);
}

gw_metrics *sky__gw_shared_metrics(gw_shared *s)
{
    return s->metrics;
}

gw_history *sky__gw_shared_history(gw_shared *s)
{
    return s->history;
}

/* The slot of @p name, made with @p rpm and @p tpm when there is none; under the lock. */
static budget_slot *slot_of(gw_shared *s, const char *name, double rpm, double tpm, uint64_t now_ms)
{
    budget_slot *b;
    for (b = s->budgets; b && strcmp(b->name, name) != 0; b = b->next)
        ;
    if (b == NULL && (b = calloc(1, sizeof(*b))) != NULL) {
        if ((b->name = strdup(name)) == NULL) {
            free(b);
            b = NULL;
        } else {
            sky__gw_budget_init(&b->budget, rpm, tpm, now_ms);
            b->next = s->budgets;
            s->budgets = b;
        }
    }
    return b;
}

gw_budget *sky__gw_shared_budget_of(gw_shared *s, const char *name)
{
    uv_mutex_lock(&s->lock);
    budget_slot *b = slot_of(s, name, 0, 0, 0);
    uv_mutex_unlock(&s->lock);
    return b ? &b->budget : NULL;
}

gw_admin_ring *sky__gw_shared_admin_ring(gw_shared *s)
{
    uv_mutex_lock(&s->lock);
    if (s->admin_ring == NULL)
        s->admin_ring = sky__gw_admin_ring_new();
    gw_admin_ring *r = s->admin_ring;
    if (r)
        sky__gw_admin_ring_ref(r);
    uv_mutex_unlock(&s->lock);
    return r;
}

gw_usage_counts *sky__gw_shared_usage_counts(gw_shared *s)
{
    return &s->usage_counts;
}

gw_budget *sky__gw_shared_budget(gw_shared *s, const char *name, double rpm, double tpm,
                                 uint64_t now_ms)
{
    uv_mutex_lock(&s->lock);
    budget_slot *b = slot_of(s, name, rpm, tpm, now_ms);
    /* a key whose limits changed starts over on the new ones */
    if (b && (b->budget.rpm != (rpm > 0 ? rpm : 0) || b->budget.tpm != (tpm > 0 ? tpm : 0)))
        sky__gw_budget_init(&b->budget, rpm, tpm, now_ms);
    uv_mutex_unlock(&s->lock);
    return b ? &b->budget : NULL;
}

void sky__gw_shared_set_view(gw_shared *s, int loop, gw_dep_gauges *v, size_t n)
{
    uv_mutex_lock(&s->lock);
    gw_dep_gauges *old = s->views[loop];
    s->views[loop] = v;
    s->n_views[loop] = n;
    uv_mutex_unlock(&s->lock);
    free(old);
}

size_t sky__gw_shared_view(const gw_shared *s, int loop, const gw_dep_gauges **out)
{
    *out = s->views[loop];
    return s->n_views[loop];
}

void sky__gw_shared_set_stores(gw_shared *s, int loop, const gw_store_view *v)
{
    s->stores[loop] = *v;
}

void sky__gw_shared_stores(gw_shared *s, gw_store_view *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < s->n_loops; i++) {
        const gw_store_view *v = &s->stores[i];
        out->has_cache |= v->has_cache;
        out->has_usage |= v->has_usage;
        for (size_t k = 0; k < sizeof(v->cache) / sizeof(v->cache[0]); k++)
            out->cache[k] += v->cache[k];
        out->usage_written += v->usage_written;
        out->usage_lost += v->usage_lost;
        out->usage_queued += v->usage_queued;
        out->write_errors += v->write_errors;
        out->usage_spilled += v->usage_spilled;
    }
}

int sky__gw_shared_loops(const gw_shared *s)
{
    return s->n_loops;
}

/* ---- the deployments' rate limits, shared by the loops ---- */

static int64_t rate_acquire(void *ud, sky_pipeline *p, int64_t est_tokens)
{
    rate_slot *r = ud;
    (void)p;
    uv_mutex_lock(&r->s->lock);
    int64_t wait = sky_ratelimit_acquire(r->rl, est_tokens);
    uv_mutex_unlock(&r->s->lock);
    return wait;
}

/* Every loop's replies teach the one limiter: the headers' limits, the 429s. */
static void rate_on_reply(void *ud, sky_pipeline *p, int status, const sky_headers *headers,
                          double rpm)
{
    rate_slot *r = ud;
    (void)p;
    (void)rpm;
    uv_mutex_lock(&r->s->lock);
    sky_ratelimit_on_response(r->rl, status, headers, 0, -1);
    uv_mutex_unlock(&r->s->lock);
}

static rate_slot *rate_slot_new(gw_shared *s, const char *key, const sky_ratelimit_options *o)
{
    rate_slot *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->key = strdup(key)) == NULL || sky_ratelimit_new(o, NULL, &r->rl) < 0) {
        if (r)
            free(r->key);
        free(r);
        return NULL;
    }
    r->s = s;
    r->rpm = o->rpm;
    r->tpm = o->tpm;
    r->admitter.acquire = rate_acquire;
    r->admitter.on_reply = rate_on_reply;
    r->admitter.user_data = r;
    return r;
}

const sky_rate_admitter *sky__gw_shared_rate(gw_shared *s, const char *key,
                                             const sky_ratelimit_options *o)
{
    rate_slot *r;
    uv_mutex_lock(&s->lock);
    for (r = s->rates; r && strcmp(r->key, key) != 0; r = r->next)
        ;
    /* a deployment whose limits changed starts over on the new ones (the old slot stays
     * for the pipelines of tables still in use) */
    if (r && (r->rpm != o->rpm || r->tpm != o->tpm))
        r = NULL;
    if (r == NULL && (r = rate_slot_new(s, key, o)) != NULL) {
        r->next = s->rates;
        s->rates = r;
    }
    uv_mutex_unlock(&s->lock);
    return r ? &r->admitter : NULL;
}

/* ---- the conversations being changed ---- */

static conv_hold **hold_of(gw_shared *s, const char *scope, const char *id)
{
    conv_hold **pp = &s->holds;
    while (*pp && (strcmp((*pp)->id, id) != 0 || strcmp((*pp)->scope, scope) != 0))
        pp = &(*pp)->next;
    return pp;
}

int sky__gw_shared_conv_take(gw_shared *s, const char *scope, const char *id)
{
    size_t ns = strlen(scope) + 1, ni = strlen(id) + 1;
    uv_mutex_lock(&s->lock);
    int rc = *hold_of(s, scope, id) ? 0 : 1;
    conv_hold *h = rc ? malloc(sizeof(*h)) : NULL;
    if (h && (h->scope = malloc(ns + ni)) != NULL) {
        h->id = h->scope + ns;
        memcpy(h->scope, scope, ns);
        memcpy(h->id, id, ni);
        h->next = s->holds;
        s->holds = h;
    } else if (rc) {
        free(h);
        rc = -1;
    }
    uv_mutex_unlock(&s->lock);
    return rc;
}

void sky__gw_shared_conv_give(gw_shared *s, const char *scope, const char *id)
{
    uv_mutex_lock(&s->lock);
    conv_hold **pp = hold_of(s, scope, id), *h = *pp;
    if (h)
        *pp = h->next;
    uv_mutex_unlock(&s->lock);
    if (h)
        free(h->scope);
    free(h);
}
