/*
 * A worker's store: results handed back to the job. Results queue in memory and go in
 * batches, one script per batch (it keeps the first result of each custom_id and
 * acknowledges the entries), one batch in flight. While Redis is away the queue waits, and
 * with a journal (redis_journal.c) what waits is written there too, so a worker that dies
 * during an outage loses nothing: the next worker to open that journal hands it over first.
 * A batch whose reply was lost goes again (the script is idempotent).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "skyio/log.h"
#include "redis_internal.h"

#define BATCH_MAX 256
/* A batch goes once it has this many results, or FLUSH_MS after its first (or after the
 * batch before it returned, for what came meanwhile): one script for many results (Redis
 * commands per request) at a cost of 50 ms. */
#define BATCH_SOON 128
#define FLUSH_MS 50

typedef struct result {
    struct result *next;
    char *cid, *id, *line;
    size_t line_len;
    int failed;
    int journaled; /* in the journal file, or queued for it */
} result;

typedef struct rstore {
    sky_batch_store base;
    sky__redis_part part;
    sky_redis_job *j;
    result *head, *tail; /* waiting to go */
    result *sending;     /* the batch in flight */
    size_t queued;
    int flushing, busy_said, closing, finished;
    sky_error failure;
    sky_batch_store_closed_cb close_cb;
    void *close_ud;
    uv_timer_t timer;
    sky_journal *jr; /* NULL: none, or closed */
    char *jr_path;
    int jr_broken; /* a write failed: the journal is no longer counted on */
    int gone;      /* of the timer and the journal, those closed */
    uint64_t unwritten;
} rstore;

static void flush(rstore *s);
static void on_flush_tick(uv_timer_t *t);

static void result_free(result *r)
{
    free(r->cid);
    free(r->id);
    free(r->line);
    free(r);
}

static void free_list(result *r)
{
    for (result *next; r; r = next) {
        next = r->next;
        result_free(r);
    }
}

static uint64_t count_list(const result *r)
{
    uint64_t n = 0;
    for (; r; r = r->next)
        n++;
    return n;
}

static void store_free(rstore *s)
{
    free(s->jr_path);
    free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    rstore *s = h->data;
    if (++s->gone == 2)
        store_free(s);
}

static void report_closed(rstore *s)
{
    if (s->close_cb)
        s->close_cb(&s->base, s->failure.code ? &s->failure : NULL, s->unwritten, s->close_ud);
    if (++s->gone == 2)
        store_free(s);
}

/* Everything it held is in Redis: the journal has nothing left to keep. */
static void on_journal_closed(sky_journal *jr, const sky_error *err, void *ud)
{
    rstore *s = ud;
    uv_fs_t req;
    (void)jr;
    if (s->unwritten == 0 && s->failure.code == 0 && (err == NULL || err->code == 0) &&
        !s->jr_broken) {
        (void)uv_fs_unlink(NULL, &req, s->jr_path, NULL);
        uv_fs_req_cleanup(&req);
    }
    report_closed(s);
}

static void finish(rstore *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    s->unwritten = count_list(s->head) + count_list(s->sending);
    sky__redis_remove_part(s->j, &s->part);
    if (s->j->store == &s->base)
        s->j->store = NULL;
    free_list(s->head);
    free_list(s->sending);
    s->head = s->sending = NULL;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    sky_journal *jr = s->jr;
    s->jr = NULL;
    if (jr == NULL || sky_journal_close(jr, on_journal_closed, s) != 0)
        report_closed(s);
}

/*
 * While Redis is away (or @p lost: its connection has just gone), what waits here goes to
 * the journal too (once each): a crash then loses nothing. Stops at SKY_EBUSY, and the
 * journal's on_drain calls again.
 */
static void journal_queue(rstore *s, int lost)
{
    if (s->jr == NULL || s->jr_broken || (s->j->up && !lost))
        return;
    for (result *r = s->head; r; r = r->next) {
        if (r->journaled)
            continue;
        int rc = sky__redis_journal_put(s->jr, s->j->token, r->cid, r->id, r->failed, r->line,
                                        r->line_len);
        if (rc == SKY_EBUSY)
            return;
        if (rc < 0) {
            SKY_WARN("redis", "the worker's journal %s: %s; results wait in memory only",
                     s->jr_path, sky_strerror(rc));
            s->jr_broken = 1;
            return;
        }
        r->journaled = 1;
    }
}

static void fail(rstore *s, const sky_error *err)
{
    if (s->failure.code == 0)
        s->failure = *err;
    if (s->closing) {
        if (!s->flushing)
            finish(s); /* else when the batch in flight returns */
    } else {
        sky_batch_store_failed(&s->base, err);
    }
}

/* The batch in flight goes back to the front of the queue. Counted before it is linked to
 * what waits: counted after, the queue would be counted twice, and a store whose count
 * never comes back to 0 never closes (the process that has every result never ends). */
static void requeue(rstore *s)
{
    result *last = s->sending;
    if (last == NULL)
        return;
    s->queued += count_list(s->sending);
    while (last->next)
        last = last->next;
    last->next = s->head;
    if (s->head == NULL)
        s->tail = last;
    s->head = s->sending;
    s->sending = NULL;
}

static void after_batch(rstore *s)
{
    free_list(s->sending);
    s->sending = NULL;
    if (s->busy_said && s->queued <= s->j->o.max_unsent / 2) {
        s->busy_said = 0;
        sky_batch_store_drained(&s->base);
    }
    if (s->closing && s->queued == 0)
        finish(s);
    else if (s->closing || s->queued >= BATCH_SOON || !s->j->up)
        flush(s);
    else if (s->head && !uv_is_active((uv_handle_t *)&s->timer))
        uv_timer_start(&s->timer, on_flush_tick, FLUSH_MS, 0); /* what came meanwhile gathers */
}

static void on_accepted(redisAsyncContext *ac, void *reply, void *ud)
{
    rstore *s = ud;
    redisReply *r = reply;
    sky_error e;
    sky_error_clear(&e);
    (void)ac;
    s->flushing = 0;
    if (s->closing && s->failure.code) {
        requeue(s);
        finish(s);
        return;
    }
    if (r == NULL) {
        /* the connection went: this batch goes again on the next, and to the journal now
         * (the job is not marked down until every reply of the connection has been told) */
        requeue(s);
        journal_queue(s, 1);
        return;
    }
    if (sky__redis_is_error(r, "NOJOB")) {
        requeue(s);
        sky__redis_mark_lost(s->j, "its state is gone from Redis (restarted without its data, "
                                   "or the job deleted)");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        requeue(s);
        sky__redis_reply_error(&e, SKY_EPROTO, "handing results back", r);
        fail(s, &e);
        return;
    }
    SKY_DEBUG("redis", "job %s: results handed back", s->j->name);
    after_batch(s);
}

/* Up to BATCH_MAX results from the queue into one script's arguments. */
static int send_batch(rstore *s)
{
    size_t n = 0;
    for (result *r = s->head; r && n < BATCH_MAX; r = r->next)
        n++;
    const char **args = malloc(sizeof(*args) * (2 + 4 * n));
    size_t *lens = malloc(sizeof(*lens) * (2 + 4 * n));
    static const int keys[] = {SKY__RK_META, SKY__RK_STREAM, SKY__RK_DONE, SKY__RK_OUT};
    int rc = SKY_ENOMEM;
    if (args && lens) {
        args[0] = s->j->token;
        args[1] = SKY__REDIS_GROUP;
        lens[0] = strlen(args[0]);
        lens[1] = strlen(args[1]);
        size_t k = 2;
        for (result *r = s->head; k < 2 + 4 * n; r = r->next) {
            args[k] = r->cid;
            lens[k++] = strlen(r->cid);
            args[k] = r->failed ? "1" : "0";
            lens[k++] = 1;
            args[k] = r->line;
            lens[k++] = r->line_len;
            args[k] = r->id;
            lens[k++] = strlen(r->id);
        }
        rc = sky__redis_eval(s->j, SKY__RS_ACCEPT, keys, 4, (int)k, args, lens, on_accepted, s);
    }
    free(args);
    free(lens);
    if (rc == 0) {
        /* the first n results are the batch in flight */
        result *last = s->head;
        for (size_t i = 1; i < n; i++)
            last = last->next;
        s->sending = s->head;
        s->head = last->next;
        last->next = NULL;
        if (s->head == NULL)
            s->tail = NULL;
        s->queued -= n;
        s->flushing = 1;
    }
    return rc;
}

static void flush(rstore *s)
{
    if (!s->j->up)
        journal_queue(s, 0);
    if (s->flushing || s->head == NULL || !s->j->up || s->j->lost)
        return;
    uv_timer_stop(&s->timer);
    if (send_batch(s) == SKY_ENOMEM) {
        sky_error e;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ENOMEM, "out of memory handing results back");
        fail(s, &e);
    }
}

static void on_flush_tick(uv_timer_t *t)
{
    flush(t->data);
}

static int st_is_done(const sky_batch_store *st, const char *custom_id)
{
    (void)st;
    (void)custom_id;
    return 0; /* the script decides, atomically, at hand-back */
}

/* @p r at the end of the results waiting to be handed back. */
static void enqueue(rstore *s, result *r)
{
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    s->queued++;
}

static int st_append(sky_batch_store *st, const sky_batch_record *rec)
{
    rstore *s = (rstore *)st;
    if (s->j->lost)
        return SKY_ENOTFOUND;
    if (s->queued >= s->j->o.max_unsent) {
        s->busy_said = 1;
        return SKY_EBUSY;
    }
    json_t *id = json_object_get(s->j->entries, rec->custom_id);
    result *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->cid = strdup(rec->custom_id)) == NULL ||
        (r->id = strdup(json_is_string(id) ? json_string_value(id) : "")) == NULL ||
        (r->line = malloc(rec->line.len + 1)) == NULL) {
        if (r)
            result_free(r);
        return SKY_ENOMEM;
    }
    memcpy(r->line, rec->line.ptr, rec->line.len);
    r->line[rec->line.len] = '\0';
    r->line_len = rec->line.len;
    r->failed = rec->failed;
    (void)json_object_del(s->j->entries, rec->custom_id);
    enqueue(s, r);
    if (s->queued >= BATCH_SOON || !s->j->up)
        flush(s);
    else if (!uv_is_active((uv_handle_t *)&s->timer))
        uv_timer_start(&s->timer, on_flush_tick, FLUSH_MS, 0);
    return 0;
}

static void st_close(sky_batch_store *st, sky_batch_store_closed_cb cb, void *ud)
{
    rstore *s = (rstore *)st;
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    if (s->j->lost)
        fail(s, &s->j->lost_err);
    else if (s->queued == 0 && !s->flushing)
        finish(s);
    else
        flush(s);
}

static void on_up(sky__redis_part *p)
{
    flush((rstore *)((char *)p - offsetof(rstore, part)));
}

static void on_lost(sky__redis_part *p)
{
    rstore *s = (rstore *)((char *)p - offsetof(rstore, part));
    fail(s, &s->j->lost_err);
}

/* A result the journal kept (a crash during an outage): handed over before anything else. */
static int recover_one(void *ud, const char *job, const char *cid, const char *entry, int failed,
                       const char *line, size_t len)
{
    rstore *s = ud;
    if (strcmp(job, s->j->token) != 0) {
        s->unwritten++; /* of a job since deleted: nowhere to go */
        return 0;
    }
    result *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->cid = strdup(cid)) == NULL || (r->id = strdup(entry)) == NULL ||
        (r->line = malloc(len + 1)) == NULL) {
        if (r)
            result_free(r);
        return SKY_ENOMEM;
    }
    memcpy(r->line, line, len);
    r->line[len] = '\0';
    r->line_len = len;
    r->failed = failed;
    r->journaled = 1;
    enqueue(s, r);
    return 0;
}

static void on_journal_drain(sky_journal *jr, void *ud)
{
    (void)jr;
    journal_queue(ud, 0);
}

static void on_journal_error(sky_journal *jr, const sky_error *err, void *ud)
{
    rstore *s = ud;
    (void)jr;
    SKY_WARN("redis", "the worker's journal: %s; results wait in memory only", err->message);
    s->jr_broken = 1;
}

/* Open the journal and take back what it holds (blocking reads: at start-up). */
static int open_journal(rstore *s, const char *path, sky_error *err)
{
    s->jr = sky__redis_journal_open(s->j->loop, path, s->j->name, &s->jr_path, err);
    if (s->jr == NULL)
        return err->code ? err->code : SKY_EIO;
    sky_journal_set_handlers(s->jr, on_journal_error, on_journal_drain, s);
    int rc = sky__redis_journal_read(s->jr_path, recover_one, s, err);
    if (rc == 0 && s->unwritten)
        SKY_WARN("redis", "%s: %llu results of an earlier job of this name left out", s->jr_path,
                 (unsigned long long)s->unwritten);
    s->unwritten = 0;
    return rc;
}

static rstore *store_new(sky_redis_job *j)
{
    rstore *s = calloc(1, sizeof(*s));
    if (s == NULL || uv_timer_init(j->loop, &s->timer) != 0) {
        free(s);
        return NULL;
    }
    s->timer.data = s;
    s->j = j;
    s->base.is_done = st_is_done;
    s->base.append = st_append;
    s->base.close = st_close;
    s->part.on_up = on_up;
    s->part.on_lost = on_lost;
    return s;
}

int sky_redis_job_store_new(sky_redis_job *j, sky_batch_store **out)
{
    rstore *s = store_new(j);
    *out = NULL;
    if (s == NULL)
        return SKY_ENOMEM;
    sky__redis_add_part(j, &s->part);
    j->store = &s->base;
    *out = &s->base;
    return 0;
}

/* A store that fails to open goes without having been anyone's: its timer, then it. */
static void on_unused_closed(uv_handle_t *h)
{
    rstore *s = h->data;
    free_list(s->head);
    store_free(s);
}

static void on_unused_journal_closed(sky_journal *jr, const sky_error *err, void *ud)
{
    rstore *s = ud;
    (void)jr;
    (void)err;
    uv_close((uv_handle_t *)&s->timer, on_unused_closed);
}

int sky_redis_job_store_open(sky_redis_job *j, const char *journal, sky_batch_store **out,
                             sky_error *err)
{
    rstore *s = store_new(j);
    *out = NULL;
    if (s == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = open_journal(s, journal, err);
    if (rc != 0) {
        if (s->jr == NULL || sky_journal_close(s->jr, on_unused_journal_closed, s) != 0)
            uv_close((uv_handle_t *)&s->timer, on_unused_closed);
        return rc;
    }
    sky__redis_add_part(j, &s->part);
    j->store = &s->base;
    *out = &s->base;
    flush(s); /* what the journal held goes first, before this worker reads anything */
    return 0;
}
