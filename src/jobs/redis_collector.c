/*
 * The collector: the job's accepted results into a local store (the output journal). One
 * poll is one pipelined round trip: the meta and the counts first, then a page of results
 * after the last one seen. When the load is done and every custom_id loaded has a result,
 * and the page read after that is not full, every result is here. Between polls it lets
 * results gather for a moment; with nothing new, it waits on a second connection for the
 * next one (redis_block.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/log.h"
#include "redis_internal.h"

#define PAGE 64
#define PAGE_TEXT "64"
/* After a page: let results gather this long (one poll for several workers' batches). */
#define GATHER_MS 100
/* A wait for the next result lasts this long at most (a cancel seen late); the timer's
 * backoff, without the blocker, goes up to BACKOFF_MS. */
#define WAIT_MS 1000
#define BACKOFF_MS 500

typedef struct pending_rec {
    struct pending_rec *next;
    char *cid, *line;
    size_t len;
    int failed;
} pending_rec;

typedef struct rcoll {
    sky__redis_part part;
    sky_redis_job *j;
    sky_batch_store *local;
    sky_redis_job_done_cb cb;
    void *ud;
    char last[64];    /* the last results entry read: the next page starts after it */
    char last_id[64]; /* the same as a stream id ("0-0" before the first) */
    sky__redis_blocker *blocker;
    int blocked;              /* waiting on the blocker: it polls again */
    pending_rec *head, *tail; /* a page not yet taken by the store (it said busy) */
    int outstanding, finished, busy, got, bad, timer_open;
    int load_done, canceled;
    int lost_reply; /* a reply of the poll went with the connection: it proves nothing */
    long long ids, done;
    uint64_t backoff_ms;
    uv_timer_t timer;
} rcoll;

static void poll_now(rcoll *c);

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void destroy(rcoll *c)
{
    for (pending_rec *p = c->head, *next; p; p = next) {
        next = p->next;
        free(p->cid);
        free(p->line);
        free(p);
    }
    sky__redis_remove_part(c->j, &c->part);
    sky__redis_blocker_free(c->blocker);
    c->blocker = NULL;
    if (c->j->collector == c)
        c->j->collector = NULL;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void finish(rcoll *c, const sky_error *err)
{
    if (c->finished)
        return;
    c->finished = 1;
    uv_timer_stop(&c->timer);
    c->local->on_drain = NULL;
    c->local->on_fail = NULL;
    if (c->cb)
        c->cb(c->j, err, c->ud);
    if (c->outstanding == 0)
        destroy(c);
}

/* Hand what is held to the store: 0 when all went, 1 when it is busy. */
static int drain(rcoll *c)
{
    sky_error e;
    sky_error_clear(&e);
    while (c->head) {
        pending_rec *p = c->head;
        sky_batch_record rec = {p->cid, sky_span_make(p->line, p->len), p->failed};
        int rc = c->local->is_done(c->local, p->cid) ? SKY_BATCH_STORE_DUP
                                                     : c->local->append(c->local, &rec);
        if (rc == SKY_EBUSY)
            return c->busy = 1;
        if (rc < 0 && rc != SKY_BATCH_STORE_DUP) {
            sky_error_set(&e, rc, "cannot write the result of %s: %s", p->cid, sky_strerror(rc));
            finish(c, &e);
            return 1;
        }
        c->j->cstats.written += rc == 0;
        c->j->cstats.failed += rc == 0 && p->failed;
        c->j->cstats.skipped += rc == SKY_BATCH_STORE_DUP;
        c->head = p->next;
        free(p->cid);
        free(p->line);
        free(p);
    }
    c->tail = NULL;
    return 0;
}

static void on_local_drain(void *engine)
{
    rcoll *c = engine;
    c->busy = 0;
    if (!c->finished && drain(c) == 0)
        poll_now(c);
}

static void on_local_fail(void *engine, const sky_error *err)
{
    finish(engine, err);
}

static void hold(rcoll *c, const redisReply *k, const redisReply *v)
{
    pending_rec *p = calloc(1, sizeof(*p));
    if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || v->len < 1) {
        free(p);
        return;
    }
    if (p == NULL || (p->cid = strndup(k->str, k->len)) == NULL ||
        (p->line = strndup(v->str + 1, v->len - 1)) == NULL) {
        if (p)
            free(p->cid);
        free(p);
        c->bad = 1;
        return;
    }
    p->len = v->len - 1;
    p->failed = v->str[0] == '1';
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
}

static void take_page(rcoll *c, const redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
            continue;
        snprintf(c->last, sizeof(c->last), "(%s", e->element[0]->str);
        snprintf(c->last_id, sizeof(c->last_id), "%s", e->element[0]->str);
        const redisReply *f = e->element[1];
        for (size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2)
            hold(c, f->element[k], f->element[k + 1]);
        c->got++;
    }
}

static void on_tick(uv_timer_t *t)
{
    poll_now(t->data);
}

static void on_woken(void *ud, int woke)
{
    rcoll *c = ud;
    (void)woke; /* the poll says what came */
    c->blocked = 0;
    poll_now(c);
}

/* Nothing new: wait for the next result on the blocker, else by the timer's backoff. */
static void wait_for_results(rcoll *c)
{
    static const int keys[] = {SKY__RK_OUT};
    const char *ids[] = {c->last_id};
    if (sky__redis_block(c->blocker, 1, keys, ids, WAIT_MS, on_woken, c) == 0) {
        c->blocked = 1;
        c->backoff_ms = 0;
        return;
    }
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 25;
    if (c->backoff_ms > BACKOFF_MS)
        c->backoff_ms = BACKOFF_MS;
    uv_timer_start(&c->timer, on_tick, c->backoff_ms, 0);
}

/* In the last tenth of a job the collector takes each batch as it lands (a poll a batch, for
 * a tenth of the job at most), so the loader ends with the last result, not up to a gather
 * later. */
static int near_end(const rcoll *c)
{
    return c->load_done && c->ids >= 0 && c->done >= 0 && (c->ids - c->done) * 10 <= c->ids;
}

/* The counts (read before the page) say every result loaded is accepted: a page that is not
 * full holds the last of them. */
static int complete(const rcoll *c)
{
    return c->load_done && c->ids >= 0 && c->done >= c->ids && c->got < PAGE;
}

static void poll_done(rcoll *c)
{
    sky_error e;
    sky_error_clear(&e);
    if (c->finished) {
        destroy(c);
        return;
    }
    if (c->bad) {
        sky_error_set(&e, SKY_ENOMEM, "out of memory collecting results");
        finish(c, &e);
        return;
    }
    SKY_DEBUG("redis", "job %s: collected %d entries; %lld of %lld done, load done %d", c->j->name,
              c->got, c->done, c->ids, c->load_done);
    if (c->got) {
        /* a full page: read on at once; else let results gather for a moment */
        c->backoff_ms = 0;
        if (drain(c) != 0)
            return; /* the store's on_drain polls again */
        if (complete(c))
            finish(c, NULL);
        else if (c->got < PAGE && near_end(c))
            wait_for_results(c);
        else
            uv_timer_start(&c->timer, on_tick, c->got >= PAGE ? 0 : GATHER_MS, 0);
        return;
    }
    if (c->lost_reply)
        return; /* the page may have been lost: on_up polls again */
    if (c->canceled || complete(c)) {
        finish(c, NULL);
        return;
    }
    wait_for_results(c);
}

static int reply_ok(rcoll *c, const redisReply *r)
{
    sky_error e;
    sky_error_clear(&e);
    if (r == NULL)
        c->lost_reply = 1;
    if (r == NULL || c->finished)
        return 0;
    if (r->type != REDIS_REPLY_ERROR)
        return 1;
    sky__redis_reply_error(&e, SKY_EPROTO, "collecting results", r);
    finish(c, &e);
    return 0;
}

static void on_meta(redisAsyncContext *ac, void *reply, void *ud)
{
    rcoll *c = ud;
    redisReply *r = reply;
    (void)ac;
    if (reply_ok(c, r) && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        const redisReply *tok = r->element[0];
        if (tok->type != REDIS_REPLY_STRING || strcmp(tok->str, c->j->token) != 0)
            sky__redis_mark_lost(c->j, "its state is gone from Redis (restarted without its "
                                       "data, or the job deleted)");
        c->load_done = r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->str[0] == '1';
        c->canceled = r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->str[0] == '1';
    }
    if (--c->outstanding == 0)
        poll_done(c);
}

static void on_count(redisAsyncContext *ac, void *reply, void *ud)
{
    rcoll *c = ud;
    redisReply *r = reply;
    (void)ac;
    if (reply_ok(c, r) && r->type == REDIS_REPLY_INTEGER) {
        if (c->ids < 0)
            c->ids = r->integer;
        else
            c->done = r->integer;
    }
    if (--c->outstanding == 0)
        poll_done(c);
}

static void on_page(redisAsyncContext *ac, void *reply, void *ud)
{
    rcoll *c = ud;
    redisReply *r = reply;
    (void)ac;
    if (reply_ok(c, r) && r->type == REDIS_REPLY_ARRAY)
        take_page(c, r);
    if (--c->outstanding == 0)
        poll_done(c);
}

static void send_one(rcoll *c, redisCallbackFn *cb, int argc, const char **argv)
{
    if (sky__redis_send(c->j, cb, c, argc, argv, NULL) == 0)
        c->outstanding++;
}

static void poll_now(rcoll *c)
{
    sky_redis_job *j = c->j;
    if (c->outstanding || c->finished || c->busy || c->blocked || !j->up || j->lost)
        return; /* a wait on the blocker polls when it ends */
    uv_timer_stop(&c->timer);
    c->got = c->bad = c->load_done = c->canceled = c->lost_reply = 0;
    c->ids = c->done = -1;
    const char *meta[] = {"HMGET", j->keys[SKY__RK_META], "token", "load_done", "canceled"};
    const char *ids[] = {"HLEN", j->keys[SKY__RK_IDS]};
    const char *done[] = {"HLEN", j->keys[SKY__RK_DONE]};
    const char *page[] = {"XRANGE", j->keys[SKY__RK_OUT], c->last, "+", "COUNT", PAGE_TEXT};
    send_one(c, on_meta, 5, meta);
    send_one(c, on_count, 2, ids);
    send_one(c, on_count, 2, done);
    send_one(c, on_page, 6, page);
}

static void on_up(sky__redis_part *p)
{
    rcoll *c = (rcoll *)((char *)p - offsetof(rcoll, part));
    c->blocked = 0; /* a wait in flight may outlive the connection it was for: poll now */
    poll_now(c);
}

static void on_lost(sky__redis_part *p)
{
    rcoll *c = (rcoll *)((char *)p - offsetof(rcoll, part));
    finish(c, &c->j->lost_err);
}

int sky_redis_job_collect(sky_redis_job *j, sky_batch_store *local, sky_redis_job_done_cb cb,
                          void *user_data)
{
    rcoll *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->blocker = sky__redis_blocker_new(j)) == NULL ||
        uv_timer_init(j->loop, &c->timer) != 0) {
        if (c)
            sky__redis_blocker_free(c->blocker);
        free(c);
        return SKY_ENOMEM;
    }
    c->timer.data = c;
    c->j = j;
    c->local = local;
    c->cb = cb;
    c->ud = user_data;
    snprintf(c->last, sizeof(c->last), "-");
    snprintf(c->last_id, sizeof(c->last_id), "0-0");
    local->on_drain = on_local_drain;
    local->on_fail = on_local_fail;
    local->engine = c;
    c->part.on_up = on_up;
    c->part.on_lost = on_lost;
    sky__redis_add_part(j, &c->part);
    j->collector = c;
    poll_now(c);
    return 0;
}

void sky_redis_job_collect_stats(const sky_redis_job *j, sky_redis_collect_stats *out)
{
    *out = j->cstats;
}

void sky__redis_collector_cancel(void *p)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECANCELED, "the job was closed");
    finish((rcoll *)p, &e);
}
