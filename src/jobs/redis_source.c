/*
 * A worker's source: the job's stream through the consumer group. One poll is one pipelined
 * round trip: new entries (XREADGROUP) and, every claim_idle/2, entries a dead consumer left
 * (XAUTOCLAIM). A read that finds nothing is followed by a check, the same read behind the
 * server's TIME, the job's meta (still there? loaded? canceled?) and the group's pending
 * summary. The meta is read before the stream, so when the load is done and the read finds
 * nothing, nothing more can come; and when others still hold entries, the worker waits on a
 * second connection (redis_block.c) for the stream or the results to change after that
 * TIME: new entries, or another worker's results (its last ones end the job).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "skyio/idset.h"
#include "skyio/log.h"
#include "redis_internal.h"

typedef struct entry {
    struct entry *next;
    char *id, *cid, *line;
    size_t line_len;
    uint64_t n;
} entry;

typedef struct rsrc {
    sky_batch_source base;
    sky__redis_part part;
    sky_redis_job *j;
    entry *head, *tail, *cur;
    size_t queued;
    sky_idset *handed; /* custom_ids given to the engine in this run */
    uint64_t handed_count;
    int outstanding;          /* replies of the poll in flight */
    int checking, check_next; /* the poll in flight is, the next poll will be, a check */
    int read_new;             /* the poll in flight reads new entries (not a reread) */
    int blocked;              /* waiting on the blocker: it polls again */
    sky__redis_blocker *blocker;
    char since[48]; /* the check's TIME as a stream id: what came after it wakes the wait */
    int waiting;    /* next said WAIT: call ready when something changes */
    int paused, closing, ended, timer_open, destroyed;
    int reread;    /* connected again: read this consumer's own pending entries first */
    sky_error err; /* the run stops with it */
    uv_timer_t timer;
    uint64_t backoff_ms, last_claim_ms, last_beat_ms, beat_count, last_refresh_ms;
    int handles_open, bg_outstanding;
    uv_timer_t bg_timer;
    /* what the poll in flight found */
    int got, load_done, canceled, bad;
    int lost_reply; /* a reply went with the connection: the poll proves nothing */
    long long pending_total, pending_mine;
} rsrc;

static void poll_now(rsrc *s);

/* A wait on the blocker lasts this long at most (a cancel or load_done seen late, a dead
 * consumer's entries to claim); the timers' backoff, without it, goes up to BACKOFF_MS. */
#define WAIT_MS 1000
#define BACKOFF_MS 500

static void entry_free(entry *e)
{
    if (e == NULL)
        return;
    free(e->id);
    free(e->cid);
    free(e->line);
    free(e);
}

static void wake(rsrc *s)
{
    if (s->waiting && !s->closing) {
        s->waiting = 0;
        sky_batch_source_ready(&s->base);
    }
}

static void fail(rsrc *s, const sky_error *err)
{
    if (s->err.code == 0)
        s->err = *err;
    wake(s);
}

/* ---- entries ---- */

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; fields && i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return fields->element[i + 1];
    }
    return NULL;
}

static char *dup_str(const redisReply *r)
{
    char *p = r && r->type == REDIS_REPLY_STRING ? malloc(r->len + 1) : NULL;
    if (p) {
        memcpy(p, r->str, r->len);
        p[r->len] = '\0';
    }
    return p;
}

/* A reread of this consumer's own pending entries meets those read ahead too. */
static int queued_already(const rsrc *s, const redisReply *cid)
{
    for (const entry *e = s->head; e; e = e->next)
        if (strcmp(e->cid, cid->str) == 0)
            return 1;
    return 0;
}

/* One [id, [field, value...]] into the queue, unless this run has had its custom_id. */
static void enqueue(rsrc *s, const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY)
        return; /* deleted meanwhile */
    const redisReply *f = e->element[1], *c = field(f, "c"), *l = field(f, "l"), *n = field(f, "n");
    if (c == NULL || l == NULL || n == NULL || c->type != REDIS_REPLY_STRING)
        return;
    if (sky_idset_contains(s->handed, sky_span_make(c->str, c->len)) || queued_already(s, c))
        return; /* in flight here, or handed back, or read ahead: not twice in one engine */
    entry *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->id = dup_str(e->element[0])) == NULL || (q->cid = dup_str(c)) == NULL ||
        (q->line = dup_str(l)) == NULL) {
        entry_free(q);
        s->bad = 1;
        return;
    }
    q->line_len = l->len;
    q->n = n->type == REDIS_REPLY_STRING ? strtoull(n->str, NULL, 10) : 0;
    if (s->tail)
        s->tail->next = q;
    else
        s->head = q;
    s->tail = q;
    s->queued++;
    s->got++;
}

static void enqueue_all(rsrc *s, const redisReply *list)
{
    for (size_t i = 0; list && list->type == REDIS_REPLY_ARRAY && i < list->elements; i++)
        enqueue(s, list->element[i]);
}

/* ---- the poll ---- */

static void destroy(rsrc *s);
static void maybe_destroy(rsrc *s);

static void on_tick(uv_timer_t *t)
{
    poll_now(t->data);
}

static void schedule(rsrc *s, uint64_t ms)
{
    if (!s->closing && !s->paused && s->err.code == 0 && !s->ended)
        uv_timer_start(&s->timer, on_tick, ms, 0);
}

static void on_woken(void *ud, int woke)
{
    rsrc *s = ud;
    (void)woke; /* woken or not, the check says what changed */
    s->blocked = 0;
    s->check_next = 1;
    if (s->closing)
        maybe_destroy(s);
    else
        poll_now(s);
}

/* Nothing to read and the job not over: wait for the stream or the results to change after
 * the check's TIME, at most WAIT_MS and no later than the next claim is due; without the
 * blocker, the timer's backoff. */
static void wait_for_change(rsrc *s)
{
    static const int keys[] = {SKY__RK_STREAM, SKY__RK_OUT};
    const char *ids[] = {s->since, s->since};
    uint64_t now = sky__redis_now_ms(), next_claim = s->last_claim_ms + s->j->o.claim_idle_ms / 2;
    uint64_t ms = next_claim > now + WAIT_MS ? WAIT_MS
                  : next_claim > now + 10    ? next_claim - now
                                             : 10;
    if (s->since[0] && !s->paused && s->err.code == 0 && !s->ended &&
        sky__redis_block(s->blocker, 2, keys, ids, ms, on_woken, s) == 0) {
        s->blocked = 1;
        s->backoff_ms = 0;
        return;
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 25;
    if (s->backoff_ms > BACKOFF_MS)
        s->backoff_ms = BACKOFF_MS;
    schedule(s, s->backoff_ms);
}

/* Every reply of the poll is in: what it means. */
static void poll_done(rsrc *s)
{
    if (s->closing) {
        maybe_destroy(s);
        return;
    }
    if (s->bad) {
        sky_error e;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ENOMEM, "out of memory reading the job's stream");
        fail(s, &e);
        return;
    }
    if (s->got) {
        s->backoff_ms = 0;
        s->check_next = 0;
        wake(s);
        return;
    }
    if (s->lost_reply)
        return; /* the read may have taken entries unseen: on_up reads them (reread) */
    if (!s->checking || !s->read_new) {
        s->check_next = 1; /* the stream looks empty: look at the whole job */
        poll_now(s);
        return;
    }
    if (s->canceled ||
        (s->load_done && s->pending_total >= 0 && s->pending_total <= s->pending_mine)) {
        SKY_DEBUG("redis", "job %s: nothing left for this worker (load done %d, canceled %d)",
                  s->j->name, s->load_done, s->canceled);
        s->ended = 1;
        wake(s);
        return;
    }
    SKY_DEBUG("redis", "job %s: stream empty (load done %d, pending %lld, mine %lld): waiting",
              s->j->name, s->load_done, s->pending_total, s->pending_mine);
    wait_for_change(s);
}

static void reply_done(rsrc *s)
{
    if (--s->outstanding == 0)
        poll_done(s);
}

static int check_reply(rsrc *s, const redisReply *r, const char *what)
{
    sky_error e;
    sky_error_clear(&e);
    if (s->closing)
        return -1;
    if (r == NULL) {
        s->lost_reply = 1;
        return -1; /* the connection went: the next one polls again (on_up) */
    }
    if (sky__redis_is_error(r, "NOGROUP")) {
        sky__redis_mark_lost(s->j, "its stream and group are gone from Redis");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sky__redis_reply_error(&e, SKY_EPROTO, what, r);
        fail(s, &e);
        return -1;
    }
    return 0;
}

static void on_meta(redisAsyncContext *ac, void *reply, void *ud)
{
    rsrc *s = ud;
    redisReply *r = reply;
    (void)ac;
    if (check_reply(s, r, "reading the job") == 0 && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 3) {
        const redisReply *tok = r->element[0];
        if (tok->type != REDIS_REPLY_STRING || strcmp(tok->str, s->j->token) != 0)
            sky__redis_mark_lost(s->j, "its state is gone from Redis (restarted without its "
                                       "data, or the job deleted)");
        s->load_done = r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->str[0] == '1';
        s->canceled = r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->str[0] == '1';
    }
    reply_done(s);
}

/* TIME as the stream id just before that millisecond: entries added after it are past it. */
static void on_time(redisAsyncContext *ac, void *reply, void *ud)
{
    rsrc *s = ud;
    redisReply *r = reply;
    (void)ac;
    s->since[0] = '\0';
    if (check_reply(s, r, "reading the time") == 0 && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        unsigned long long ms = strtoull(r->element[0]->str, NULL, 10) * 1000 +
                                strtoull(r->element[1]->str, NULL, 10) / 1000;
        if (ms > 0)
            snprintf(s->since, sizeof(s->since), "%llu-18446744073709551615", ms - 1);
    }
    reply_done(s);
}

static void on_pending(redisAsyncContext *ac, void *reply, void *ud)
{
    rsrc *s = ud;
    redisReply *r = reply;
    (void)ac;
    s->pending_total = s->pending_mine = -1; /* unknown: never "ended" */
    if (check_reply(s, r, "reading the pending entries") == 0 && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 4 && r->element[0]->type == REDIS_REPLY_INTEGER) {
        s->pending_total = r->element[0]->integer;
        s->pending_mine = 0;
        const redisReply *c = r->element[3];
        for (size_t i = 0; c->type == REDIS_REPLY_ARRAY && i < c->elements; i++) {
            const redisReply *p = c->element[i];
            if (p->elements == 2 && strcmp(p->element[0]->str, s->j->consumer) == 0)
                s->pending_mine = strtoll(p->element[1]->str, NULL, 10);
        }
    }
    reply_done(s);
}

static void on_read(redisAsyncContext *ac, void *reply, void *ud)
{
    rsrc *s = ud;
    redisReply *r = reply;
    (void)ac;
    if (check_reply(s, r, "reading the job's stream") == 0 && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->elements == 2)
                enqueue_all(s, r->element[i]->element[1]);
    reply_done(s);
}

static void on_claim(redisAsyncContext *ac, void *reply, void *ud)
{
    rsrc *s = ud;
    redisReply *r = reply;
    (void)ac;
    if (check_reply(s, r, "claiming idle entries") == 0 && r->type == REDIS_REPLY_ARRAY &&
        r->elements >= 2)
        enqueue_all(s, r->element[1]);
    reply_done(s);
}

static void on_bg_reply(redisAsyncContext *ac, void *reply, void *ud)
{
    rsrc *s = ud;
    (void)ac;
    (void)reply;
    s->bg_outstanding--;
    maybe_destroy(s);
}

static void send_bg(rsrc *s, int argc, const char **argv)
{
    if (sky__redis_send(s->j, on_bg_reply, s, argc, argv, NULL) == 0)
        s->bg_outstanding++;
}

static void send_one(rsrc *s, redisCallbackFn *cb, int argc, const char **argv)
{
    if (sky__redis_send(s->j, cb, s, argc, argv, NULL) == 0)
        s->outstanding++;
}

static void send_claim(rsrc *s, uint64_t now)
{
    sky_redis_job *j = s->j;
    char idle[32], count[16];
    snprintf(idle, sizeof(idle), "%llu", (unsigned long long)j->o.claim_idle_ms);
    snprintf(count, sizeof(count), "%u", j->o.read_count);
    const char *claim[] = {
        "XAUTOCLAIM", j->keys[SKY__RK_STREAM], SKY__REDIS_GROUP, j->consumer, idle, "0-0", "COUNT",
        count};
    send_one(s, on_claim, 8, claim);
    s->last_claim_ms = now;
}

static void send_beat(rsrc *s, uint64_t now)
{
    char beat[96];
    uint64_t secs = now - s->last_beat_ms;
    double rpm = s->last_beat_ms ? (double)(s->handed_count - s->beat_count) * 60000.0 /
                                       (double)(secs ? secs : 1)
                                 : 0;
    snprintf(beat, sizeof(beat), "%llu %llu %.1f", (unsigned long long)now,
             (unsigned long long)s->handed_count, rpm);
    const char *hset[] = {"HSET", s->j->keys[SKY__RK_WORKERS], s->j->consumer, beat};
    send_bg(s, 4, hset);
    s->last_beat_ms = now;
    s->beat_count = s->handed_count;
}

/*
 * What this worker holds (read ahead, or in the engine until handed back) is claimed again
 * by it now and then (XCLAIM ... JUSTID: the idle time starts over, the delivery count
 * stays), so that a request waiting here for the rate or a slot is not taken by another
 * worker after claim_idle and paid for twice.
 */
static void send_refresh(rsrc *s, uint64_t now)
{
    sky_redis_job *j = s->j;
    size_t n = s->queued + json_object_size(j->entries), k = 0;
    const char **argv = n ? malloc(sizeof(*argv) * (n + 6)) : NULL;
    const char *cid;
    json_t *id;
    s->last_refresh_ms = now;
    if (argv == NULL)
        return;
    argv[k++] = "XCLAIM";
    argv[k++] = j->keys[SKY__RK_STREAM];
    argv[k++] = SKY__REDIS_GROUP;
    argv[k++] = j->consumer;
    argv[k++] = "0";
    for (entry *e = s->head; e; e = e->next)
        argv[k++] = e->id;
    json_object_foreach(j->entries, cid, id) argv[k++] = json_string_value(id);
    argv[k++] = "JUSTID";
    send_bg(s, (int)k, argv);
    free(argv);
}

static void poll_now(rsrc *s)
{
    sky_redis_job *j = s->j;
    char count[16];
    uint64_t now = sky__redis_now_ms();
    if (s->outstanding || s->closing || s->paused || s->ended || s->err.code || j->lost ||
        s->blocked)
        return; /* a wait on the blocker polls when it ends */
    if (!j->up)
        return; /* on_up polls again */
    uv_timer_stop(&s->timer);
    s->got = s->bad = s->lost_reply = 0;
    s->load_done = s->canceled = 0;
    s->checking = s->check_next;
    s->read_new = !s->reread;
    uint32_t room = j->o.read_count > s->queued ? j->o.read_count - (uint32_t)s->queued : 0;
    snprintf(count, sizeof(count), "%u", s->reread ? 100000 : room ? room : 1);
    const char *meta[] = {"HMGET", j->keys[SKY__RK_META], "token", "load_done", "canceled"};
    const char *pend[] = {"XPENDING", j->keys[SKY__RK_STREAM], SKY__REDIS_GROUP};
    const char *read[] = {
        "XREADGROUP", "GROUP",   SKY__REDIS_GROUP,        j->consumer,          "COUNT",
        count,        "STREAMS", j->keys[SKY__RK_STREAM], s->reread ? "0" : ">"};
    const char *time[] = {"TIME"};
    if (s->checking) {
        send_one(s, on_time, 1, time);
        send_one(s, on_meta, 5, meta);
        send_one(s, on_pending, 3, pend);
    }
    send_one(s, on_read, 9, read);
    s->reread = 0;
    if (now - s->last_claim_ms >= j->o.claim_idle_ms / 2)
        send_claim(s, now);
}

/* Every second: the heartbeat (every 2 s) and the refresh of what is held (claim_idle/3),
 * whether or not the engine is asking for lines. */
static void on_bg_tick(uv_timer_t *t)
{
    rsrc *s = t->data;
    uint64_t now = sky__redis_now_ms();
    if (s->closing || !s->j->up || s->j->lost)
        return;
    if (now - s->last_beat_ms >= 2000)
        send_beat(s, now);
    if (now - s->last_refresh_ms >= s->j->o.claim_idle_ms / 3)
        send_refresh(s, now);
}

/* ---- the source's functions ---- */

static int src_next(sky_batch_source *src, sky_batch_source_line *out, sky_error *err)
{
    rsrc *s = (rsrc *)src;
    entry_free(s->cur);
    s->cur = NULL;
    if (s->err.code || s->j->lost) {
        *err = s->err.code ? s->err : s->j->lost_err;
        return err->code;
    }
    if (s->head == NULL) {
        if (s->ended)
            return SKY_BATCH_SOURCE_END;
        s->waiting = 1;
        poll_now(s);
        return SKY_BATCH_SOURCE_WAIT;
    }
    entry *e = s->head;
    s->head = e->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->queued--;
    s->cur = e;
    json_t *id = json_string(e->id);
    if (id == NULL || json_object_set_new(s->j->entries, e->cid, id) != 0 ||
        sky_idset_add(s->handed, sky_span_cstr(e->cid)) < 0) {
        sky_error_set(err, SKY_ENOMEM, "out of memory");
        return SKY_ENOMEM;
    }
    s->handed_count++;
    memset(out, 0, sizeof(*out));
    out->text = sky_span_make(e->line, e->line_len);
    out->number = e->n;
    if (s->queued < s->j->o.read_count / 4)
        poll_now(s);
    return 0;
}

static void src_pause(sky_batch_source *src)
{
    rsrc *s = (rsrc *)src;
    s->paused = 1;
    uv_timer_stop(&s->timer);
}

static void src_resume(sky_batch_source *src)
{
    rsrc *s = (rsrc *)src;
    s->paused = 0;
    if (s->queued < s->j->o.read_count / 4)
        poll_now(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    rsrc *s = h->data;
    if (--s->handles_open == 0)
        free(s);
}

static void destroy(rsrc *s)
{
    entry_free(s->cur);
    for (entry *e = s->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    sky_idset_free(s->handed);
    sky__redis_blocker_free(s->blocker);
    s->blocker = NULL;
    s->head = s->cur = NULL;
    s->handed = NULL;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    uv_close((uv_handle_t *)&s->bg_timer, on_timer_closed);
}

static void maybe_destroy(rsrc *s)
{
    if (s->closing && s->outstanding == 0 && s->bg_outstanding == 0 && !s->destroyed) {
        s->destroyed = 1;
        destroy(s);
    }
}

static void src_close(sky_batch_source *src)
{
    rsrc *s = (rsrc *)src;
    s->closing = 1;
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->bg_timer);
    sky__redis_blocker_free(s->blocker); /* a wait in flight ends unheard */
    s->blocker = NULL;
    s->blocked = 0;
    sky__redis_remove_part(s->j, &s->part);
    if (s->j->source == src)
        s->j->source = NULL;
    maybe_destroy(s);
}

/*
 * Connected again. A read whose reply the lost connection took was done all the same: its
 * entries are pending for this consumer, which never saw them, and they would count as its
 * own (it would end without them, and the others wait claim_idle for them). So the next
 * read takes this consumer's own pending entries (ID 0) first; those it holds are skipped.
 */
static void on_up(sky__redis_part *p)
{
    rsrc *s = (rsrc *)((char *)p - offsetof(rsrc, part));
    s->reread = 1;
    s->blocked = 0; /* a wait in flight may outlive the connection it was for: poll now */
    s->check_next = 1;
    poll_now(s);
    wake(s);
}

static void on_lost(sky__redis_part *p)
{
    rsrc *s = (rsrc *)((char *)p - offsetof(rsrc, part));
    fail(s, &s->j->lost_err);
}

int sky_redis_job_source_new(sky_redis_job *j, sky_batch_source **out)
{
    rsrc *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL || (s->handed = sky_idset_new(0)) == NULL ||
        (s->blocker = sky__redis_blocker_new(j)) == NULL ||
        uv_timer_init(j->loop, &s->timer) != 0 || uv_timer_init(j->loop, &s->bg_timer) != 0) {
        if (s) {
            sky_idset_free(s->handed);
            sky__redis_blocker_free(s->blocker);
        }
        free(s);
        return SKY_ENOMEM;
    }
    s->timer.data = s;
    s->bg_timer.data = s;
    s->handles_open = 2;
    s->j = j;
    s->base.next = src_next;
    s->base.pause = src_pause;
    s->base.resume = src_resume;
    s->base.close = src_close;
    s->part.on_up = on_up;
    s->part.on_lost = on_lost;
    sky__redis_add_part(j, &s->part);
    uv_timer_start(&s->bg_timer, on_bg_tick, 1000, 1000);
    j->source = &s->base;
    *out = &s->base;
    return 0;
}
