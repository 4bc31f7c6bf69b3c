/*
 * A job's counts, in one pipelined round trip (meta, sizes, the group's pending entries,
 * the workers' heartbeats, the shared limit), and its cancel and delete.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

#define STATUS_REPLIES 6

typedef struct rstatus {
    sky_redis_job *j;
    sky_redis_status_cb cb;
    void *ud;
    int replies;
    sky_redis_job_status st;
    sky_error err;
} rstatus;

static uint64_t to_u64(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    return r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
}

static void take_meta(rstatus *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return;
    s->st.exists = r->element[0]->type == REDIS_REPLY_STRING;
    s->st.load_done = to_u64(r->element[1]) == 1;
    s->st.canceled = to_u64(r->element[2]) == 1;
    s->st.failed = to_u64(r->element[3]);
}

/* consumer -> "unix_ms done rpm": alive when heard from in the last 10 s */
static void take_workers(rstatus *s, const redisReply *r)
{
    uint64_t now = sky__redis_now_ms();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        unsigned long long at = 0, done = 0;
        double rpm = 0;
        const redisReply *v = r->element[i + 1];
        if (v->type != REDIS_REPLY_STRING || sscanf(v->str, "%llu %llu %lf", &at, &done, &rpm) < 2)
            continue;
        if (at + 10000 >= now) {
            s->st.workers_alive++;
            s->st.rpm += rpm;
        }
    }
}

/* fields "<deployment>:rpm" of the rate hash, summed over deployments */
static void take_rate(rstatus *s, const redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];
        if (k->type == REDIS_REPLY_STRING && k->len > 4 && strcmp(k->str + k->len - 4, ":rpm") == 0)
            s->st.shared_rpm += strtod(r->element[i + 1]->str, NULL);
    }
}

static void on_status_reply(redisAsyncContext *ac, void *reply, void *ud)
{
    rstatus *s = ud;
    redisReply *r = reply;
    int which = STATUS_REPLIES - s->replies;
    (void)ac;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (s->err.code == 0)
            sky__redis_reply_error(&s->err, SKY_EPROTO, "reading the job's status", r);
    } else if (which == 0) {
        take_meta(s, r);
    } else if (which == 1) {
        s->st.loaded = to_u64(r);
    } else if (which == 2) {
        s->st.done = to_u64(r);
    } else if (which == 3) {
        s->st.pending = r->type == REDIS_REPLY_ARRAY && r->elements ? to_u64(r->element[0]) : 0;
    } else if (which == 4) {
        take_workers(s, r);
    } else {
        take_rate(s, r);
    }
    if (--s->replies > 0)
        return;
    uint64_t taken = s->st.done + s->st.pending;
    s->st.queued = s->st.loaded > taken ? s->st.loaded - taken : 0;
    s->cb(s->j, &s->st, s->err.code ? &s->err : NULL, s->ud);
    free(s);
}

int sky_redis_job_get_status(sky_redis_job *j, sky_redis_status_cb cb, void *user_data)
{
    rstatus *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SKY_ENOMEM;
    if (!j->up) {
        free(s);
        return SKY_ESTATE;
    }
    s->j = j;
    s->cb = cb;
    s->ud = user_data;
    const char *meta[] = {"HMGET", j->keys[SKY__RK_META], "token", "load_done", "canceled",
                          "failed"};
    const char *ids[] = {"HLEN", j->keys[SKY__RK_IDS]};
    const char *done[] = {"HLEN", j->keys[SKY__RK_DONE]};
    const char *pend[] = {"XPENDING", j->keys[SKY__RK_STREAM], SKY__REDIS_GROUP};
    const char *workers[] = {"HGETALL", j->keys[SKY__RK_WORKERS]};
    const char *rate[] = {"HGETALL", j->keys[SKY__RK_RATE]};
    s->replies = STATUS_REPLIES;
    (void)sky__redis_send(j, on_status_reply, s, 6, meta, NULL);
    (void)sky__redis_send(j, on_status_reply, s, 2, ids, NULL);
    (void)sky__redis_send(j, on_status_reply, s, 2, done, NULL);
    (void)sky__redis_send(j, on_status_reply, s, 3, pend, NULL);
    (void)sky__redis_send(j, on_status_reply, s, 2, workers, NULL);
    (void)sky__redis_send(j, on_status_reply, s, 2, rate, NULL);
    return 0;
}

typedef struct rcancel {
    sky_redis_job *j;
    sky_redis_job_done_cb cb;
    void *ud;
} rcancel;

static void on_cancel_reply(redisAsyncContext *ac, void *reply, void *ud)
{
    rcancel *c = ud;
    redisReply *r = reply;
    sky_error e;
    sky_error_clear(&e);
    (void)ac;
    sky_error_clear(&e);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        sky__redis_reply_error(&e, SKY_EPROTO, "changing the job", r);
    c->cb(c->j, e.code ? &e : NULL, c->ud);
    free(c);
}

int sky_redis_job_cancel(sky_redis_job *j, int delete_keys, sky_redis_job_done_cb cb,
                         void *user_data)
{
    rcancel *c = calloc(1, sizeof(*c));
    const char *argv[1 + SKY__RK_COUNT];
    int argc = 0, rc;
    if (c == NULL)
        return SKY_ENOMEM;
    c->j = j;
    c->cb = cb;
    c->ud = user_data;
    if (delete_keys) {
        argv[argc++] = "DEL";
        for (int i = 0; i < SKY__RK_COUNT; i++)
            argv[argc++] = j->keys[i];
    } else {
        argv[argc++] = "HSET";
        argv[argc++] = j->keys[SKY__RK_META];
        argv[argc++] = "canceled";
        argv[argc++] = "1";
    }
    rc = sky__redis_send(j, on_cancel_reply, c, argc, argv, NULL);
    if (rc < 0)
        free(c);
    return rc < 0 ? SKY_ESTATE : 0;
}
