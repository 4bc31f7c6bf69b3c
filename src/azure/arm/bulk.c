/*
 * Many long-running operations under a concurrency limit: each end starts the
 * next, and the tally is kept here so that every front end sums up alike.
 */
#include <stdlib.h>
#include <string.h>

#include "skyio/arm.h"

typedef struct bulk_item {
    sky_arm_bulk *b;
    char *method, *path, *api_version, *body;
    size_t body_len;
    sky_arm_lro *lro; /* while in flight */
} bulk_item;

struct sky_arm_bulk {
    sky_arm_client *c;
    sky_arm_bulk_options o;
    bulk_item *items;
    size_t n, cap, next, active, ok, failed;
    int running, stopped, done_fired, freeing;
    int in_cb; /* callbacks and cancels under way: freeing waits for them */
};

void sky_arm_bulk_options_init(sky_arm_bulk_options *o)
{
    memset(o, 0, sizeof(*o));
    o->concurrency = 8;
}

int sky_arm_bulk_new(sky_arm_client *c, const sky_arm_bulk_options *o, sky_arm_bulk **out)
{
    *out = NULL;
    if (c == NULL || o == NULL || o->concurrency == 0)
        return SKY_EINVAL;
    sky_arm_bulk *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return SKY_ENOMEM;
    b->c = c;
    b->o = *o;
    *out = b;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void item_free(bulk_item *it)
{
    free(it->method);
    free(it->path);
    free(it->api_version);
    free(it->body);
}

int sky_arm_bulk_add(sky_arm_bulk *b, const char *method, const char *path, const char *api_version,
                     sky_span body)
{
    if (path == NULL)
        return SKY_EINVAL;
    if (b->running)
        return SKY_ESTATE;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        bulk_item *bigger = realloc(b->items, cap * sizeof(*bigger));
        if (bigger == NULL)
            return SKY_ENOMEM;
        b->items = bigger;
        b->cap = cap;
    }
    bulk_item *it = &b->items[b->n];
    memset(it, 0, sizeof(*it));
    it->method = strdup(method ? method : "PUT");
    it->path = strdup(path);
    it->api_version = dup_or_null(api_version);
    it->body = malloc(body.len + 1);
    if (it->method == NULL || it->path == NULL || (api_version && it->api_version == NULL) ||
        it->body == NULL) {
        item_free(it);
        return SKY_ENOMEM;
    }
    if (body.len)
        memcpy(it->body, body.ptr, body.len);
    it->body_len = body.len;
    b->n++;
    return 0;
}

void sky_arm_bulk_get_counts(const sky_arm_bulk *b, sky_arm_bulk_counts *out)
{
    out->total = b->n;
    out->succeeded = b->ok;
    out->failed = b->failed;
    out->unfinished = b->n - b->ok - b->failed;
}

static void bulk_destroy(sky_arm_bulk *b)
{
    for (size_t i = 0; i < b->n; i++)
        item_free(&b->items[i]);
    free(b->items);
    free(b);
}

/* After any callback: when nothing runs and nothing more will start, say so once; free if asked. */
static void maybe_finish(sky_arm_bulk *b)
{
    if (b->in_cb > 0 || b->active > 0 || (!b->stopped && b->next < b->n))
        return;
    if (b->running && !b->done_fired) {
        sky_arm_bulk_counts counts;
        b->done_fired = 1;
        sky_arm_bulk_get_counts(b, &counts);
        if (b->o.on_done) {
            b->in_cb++;
            b->o.on_done(b, &counts, b->o.user_data);
            b->in_cb--;
        }
    }
    if (b->freeing)
        bulk_destroy(b);
}

static void report(sky_arm_bulk *b, bulk_item *it, const sky_arm_lro_result *res,
                   const sky_error *err)
{
    if (err)
        b->failed++;
    else
        b->ok++;
    if (b->o.on_op) {
        b->in_cb++;
        b->o.on_op(b, (size_t)(it - b->items), it->path, res, err, b->o.user_data);
        b->in_cb--;
    }
}

static void start_more(sky_arm_bulk *b);

static void on_lro_done(sky_arm_lro *lro, const sky_arm_lro_result *res, const sky_error *err,
                        void *ud)
{
    bulk_item *it = ud;
    sky_arm_bulk *b = it->b;
    (void)lro;
    it->lro = NULL;
    b->active--;
    report(b, it, res, err);
    start_more(b);
    maybe_finish(b);
}

static void start_one(sky_arm_bulk *b, bulk_item *it)
{
    sky_arm_lro_options o;
    sky_error err;
    sky_error_clear(&err);
    sky_arm_lro_options_init(&o);
    o.method = it->method;
    o.path = it->path;
    o.api_version = it->api_version;
    o.body = sky_span_make(it->body, it->body_len);
    o.timeout_ms = b->o.timeout_ms;
    o.on_done = on_lro_done;
    o.user_data = it;
    it->b = b;
    b->active++;
    if (sky_arm_lro_begin(b->c, &o, &it->lro, &err) < 0) {
        b->active--;
        it->lro = NULL;
        report(b, it, NULL, &err);
    }
}

static void start_more(sky_arm_bulk *b)
{
    b->in_cb++; /* a failed start's callback may free us: not before this loop ends */
    while (!b->stopped && b->active < b->o.concurrency && b->next < b->n)
        start_one(b, &b->items[b->next++]);
    b->in_cb--;
}

int sky_arm_bulk_run(sky_arm_bulk *b)
{
    if (b->running)
        return SKY_ESTATE;
    if (b->n == 0)
        return SKY_EINVAL;
    b->running = 1;
    start_more(b);
    maybe_finish(b);
    return 0;
}

void sky_arm_bulk_stop(sky_arm_bulk *b)
{
    if (b)
        b->stopped = 1;
}

void sky_arm_bulk_free(sky_arm_bulk *b)
{
    if (b == NULL || b->freeing)
        return;
    b->freeing = 1;
    b->stopped = 1;
    b->in_cb++;
    for (size_t i = 0; i < b->next; i++)
        if (b->items[i].lro)
            sky_arm_lro_cancel(b->items[i].lro);
    b->in_cb--;
    maybe_finish(b);
}
