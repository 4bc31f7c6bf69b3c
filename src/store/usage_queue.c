/*
 * Usage records on their way to a backend. sky__store_usage_append only copies the record
 * into a bounded queue; a timer writes the queue in batches, one batch in flight at a time.
 * A batch that fails goes back to the head of the queue, in order, and is tried again on
 * the next tick: a server that is away loses nothing below the bound, and what is refused
 * above it is counted. With a spill file (usage_spill.c), records past the memory bound
 * wait there instead, up to a bound of their own.
 */
#include <stdlib.h>
#include <time.h>

#include "internal.h"

struct sky__flush_waiter {
    sky__flush_waiter *next;
    uint64_t target; /* done when usage_written reaches it */
    sky__store_done_cb cb;
    void *ud;
};

static void write_batch(sky__store *s);

/* A node's room for its three strings when the queue reuses it: most records' names fit. */
#define NODE_ROOM 112

/* @p r's copy into @p n, its strings @p lens long (with their NULs). */
static sky__usage_node *fill(sky__usage_node *n, const sky__store_usage *r, const char *str[3],
                             const size_t lens[3])
{
    n->next = NULL;
    n->rec = *r;
    char *p = n->strings;
    const char **dst[3] = {&n->rec.key_name, &n->rec.model, &n->rec.deployment};
    for (int i = 0; i < 3; i++) {
        memcpy(p, str[i], lens[i]);
        *dst[i] = p;
        p += lens[i];
    }
    return n;
}

/* A node for @p r: a spare one when its strings fit (no malloc), else a new one, with room
 * to be reused when they fit @p room. */
static sky__usage_node *node_for(sky__store *s, const sky__store_usage *r, size_t room)
{
    const char *str[3] = {r->key_name ? r->key_name : "", r->model ? r->model : "",
                          r->deployment ? r->deployment : ""};
    size_t lens[3] = {strlen(str[0]) + 1, strlen(str[1]) + 1, strlen(str[2]) + 1};
    size_t need = lens[0] + lens[1] + lens[2];
    sky__usage_node *n;
    if (s && need <= NODE_ROOM && s->spare) {
        n = s->spare;
        s->spare = n->next;
        s->spare_n--;
        return fill(n, r, str, lens);
    }
    room = need <= room ? room : 0;
    n = malloc(sizeof(*n) + (room ? room : need));
    if (!n)
        return NULL;
    n->room = room;
    return fill(n, r, str, lens);
}

sky__usage_node *sky__usage_node_new(const sky__store_usage *r)
{
    return node_for(NULL, r, 0);
}

/* A written node: kept for the next records (up to a batch of them), else freed. */
static void node_done(sky__store *s, sky__usage_node *n)
{
    if (n->room == NODE_ROOM && s->spare_n < s->opts.usage_batch_max) {
        n->next = s->spare;
        s->spare = n;
        s->spare_n++;
        return;
    }
    free(n);
}

/* Past the memory bound, or behind records already there: to the spill file. */
static int spill(sky__store *s, const sky__store_usage *rec)
{
    sky__usage_node *n = sky__usage_node_new(rec);
    if (!n || sky__spill_add(s, n) < 0) {
        free(n);
        s->stats.usage_lost++;
        return SKY_EBUSY;
    }
    s->stats.usage_appended++;
    return 0;
}

int sky__store_usage_append(sky__store *s, const sky__store_usage *rec)
{
    if (!(s->vt->caps & SKY__STORE_USAGE) || s->closing)
        return SKY_ESTATE;
    sky__usage_node *n = NULL;
    int full = s->stats.usage_queued + s->batch_n >= s->opts.usage_queue_max;
    if (s->spill && (full || sky__spill_active(s)))
        return spill(s, rec);
    if (!full)
        n = node_for(s, rec, NODE_ROOM);
    if (!n) {
        s->stats.usage_lost++;
        return SKY_EBUSY;
    }
    if (s->q_tail)
        s->q_tail->next = n;
    else
        s->q_head = n;
    s->q_tail = n;
    s->stats.usage_appended++;
    s->stats.usage_queued++;
    if (s->stats.usage_queued >= s->opts.usage_batch_max && !s->writing)
        write_batch(s);
    return 0;
}

static void notify_waiters(sky__store *s, const sky_error *err)
{
    uint64_t settled = s->stats.usage_written;
    sky__flush_waiter **pp = &s->waiters;
    while (*pp) {
        sky__flush_waiter *w = *pp;
        if (settled < w->target && !(err && err->code)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        sky_error ok;
        sky_error_clear(&ok);
        w->cb(err ? err : &ok, w->ud);
        free(w);
    }
}

/* Put the failed batch back at the head, oldest first. */
static void requeue_batch(sky__store *s)
{
    for (size_t i = s->batch_n; i-- > 0;) {
        sky__usage_node *n = s->batch[i];
        n->next = s->q_head;
        s->q_head = n;
        if (!s->q_tail)
            s->q_tail = n;
    }
    s->stats.usage_queued += s->batch_n;
}

/* Closing: once no batch and no spill job is under way, the queue is settled. */
static void close_step(sky__store *s, const sky_error *err)
{
    if (!s->writing && !sky__spill_busy(s))
        sky__store_usage_closed(s, err);
}

void sky__store_usage_close_step(sky__store *s)
{
    close_step(s, NULL);
}

void sky__store_usage_take(sky__store *s, sky__usage_node *head, size_t n)
{
    if (s->q_tail)
        s->q_tail->next = head;
    else
        s->q_head = head;
    while (head->next)
        head = head->next;
    s->q_tail = head;
    s->stats.usage_queued += n;
    if (!s->writing)
        write_batch(s);
}

static void on_batch_written(const sky_error *err, void *ud)
{
    sky__store *s = ud;
    s->writing = 0;
    if (err && err->code) {
        s->stats.write_errors++;
        requeue_batch(s);
    } else {
        for (size_t i = 0; i < s->batch_n; i++)
            node_done(s, s->batch[i]);
        s->stats.usage_written += s->batch_n;
    }
    s->batch_n = 0;
    /* A failed flush is reported now (waiting for a server that is away would hang the
     * caller); the records stay queued for the timer. */
    notify_waiters(s, err && err->code ? err : NULL);
    if (!err || !err->code) {
        if (s->q_head &&
            (s->stats.usage_queued >= s->opts.usage_batch_max || s->waiters || s->closing))
            write_batch(s);
        else if (!s->q_head)
            sky__spill_tick(s); /* the store keeps up: what waits on the spill comes back */
    }
    if (s->closing)
        close_step(s, err);
}

static void write_batch(sky__store *s)
{
    size_t n = 0;
    while (s->q_head && n < s->opts.usage_batch_max) {
        sky__usage_node *node = s->q_head;
        s->q_head = node->next;
        node->next = NULL;
        s->batch[n] = node;
        s->batch_recs[n] = node->rec;
        n++;
    }
    if (!s->q_head)
        s->q_tail = NULL;
    if (n == 0)
        return;
    s->stats.usage_queued -= n;
    s->batch_n = n;
    s->writing = 1;
    s->vt->usage_write(s, s->batch_recs, n, on_batch_written, s);
}

static void on_flush_timer(uv_timer_t *t)
{
    sky__store *s = t->data;
    if (!s->writing && s->q_head)
        write_batch(s);
    sky__spill_tick(s);
}

int sky__store_usage_start(sky__store *s)
{
    size_t cap = s->opts.usage_batch_max;
    s->batch = calloc(cap, sizeof(*s->batch));
    s->batch_recs = calloc(cap, sizeof(*s->batch_recs));
    if (!s->batch || !s->batch_recs)
        return SKY_ENOMEM;
    uv_timer_start(&s->flush_timer, on_flush_timer, s->opts.usage_flush_ms, s->opts.usage_flush_ms);
    uv_unref((uv_handle_t *)&s->flush_timer);
    return 0;
}

void sky__store_usage_flush(sky__store *s, sky__store_done_cb cb, void *user_data)
{
    sky_error err;
    sky_error_clear(&err);
    if (!(s->vt->caps & SKY__STORE_USAGE) || s->closing) {
        sky_error_set(&err, SKY_ESTATE, "%s store: no usage here, or closing", s->vt->name);
        sky__store_fail_done(s, cb, user_data, &err);
        return;
    }
    sky__flush_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        sky_error_set(&err, SKY_ENOMEM, "out of memory");
        sky__store_fail_done(s, cb, user_data, &err);
        return;
    }
    w->target = s->stats.usage_written + s->stats.usage_queued + s->batch_n;
    w->cb = cb;
    w->ud = user_data;
    if (w->target == s->stats.usage_written) {
        free(w);
        sky__store_fail_done(s, cb, user_data, &err); /* nothing pending: done (err 0) */
        return;
    }
    w->next = s->waiters;
    s->waiters = w;
    if (!s->writing)
        write_batch(s);
}

/* Close: write what is queued; sky__store_usage_closed runs when nothing is in flight. */
void sky__store_usage_close(sky__store *s)
{
    uv_timer_stop(&s->flush_timer);
    if (s->writing)
        return;
    if (s->q_head && (s->vt->caps & SKY__STORE_USAGE)) {
        write_batch(s);
        return;
    }
    close_step(s, NULL);
}

/* Records never written are lost (kept on the spill file when there is one); count them
 * and free them. */
void sky__store_usage_free(sky__store *s)
{
    sky__spill_close(s);
    while (s->q_head) {
        sky__usage_node *n = s->q_head;
        s->q_head = n->next;
        free(n);
        s->stats.usage_lost++;
    }
    s->q_tail = NULL;
    s->stats.usage_queued = 0;
    while (s->spare) {
        sky__usage_node *n = s->spare;
        s->spare = n->next;
        free(n);
    }
    s->spare_n = 0;
    sky_error cancel;
    sky_error_clear(&cancel);
    sky_error_set(&cancel, SKY_ECANCELED, "store closed");
    notify_waiters(s, &cancel);
    free(s->batch);
    free(s->batch_recs);
    s->batch = NULL;
    s->batch_recs = NULL;
}

void sky__store_get_stats(const sky__store *s, sky__store_stats *out)
{
    *out = s->stats;
}

void sky__store_day(int64_t ms, char out[11])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

const char *sky__store_day_of(sky__store_day_cache *c, int64_t ms)
{
    if (ms >= c->from_ms && ms < c->to_ms)
        return c->day;
    const int64_t day_ms = 86400000;
    int64_t d = ms >= 0 ? ms / day_ms : (ms - day_ms + 1) / day_ms; /* floor */
    c->from_ms = d * day_ms;
    c->to_ms = c->from_ms + day_ms;
    sky__store_day(ms, c->day);
    return c->day;
}
