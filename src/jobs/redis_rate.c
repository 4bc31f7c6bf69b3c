/*
 * The shared rate limit's client side: leases from the bucket script, the ceiling sent
 * once per connection, and a watch on the engine's 429s that lowers the shared rate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

/* 429s are looked for every WATCH_MS; the requests answered go to Redis every fourth look. */
#define WATCH_MS 250
#define DONE_EVERY 4

typedef struct lease {
    sky__redis_lease_cb cb;
    void *ud;
} lease;

typedef struct watch {
    sky_redis_job *j;
    sky_batch *b;
    uint64_t seen_429, seen_done, ticks;
    uv_timer_t timer;
} watch;

static void on_ignore(redisAsyncContext *ac, void *reply, void *ud)
{
    (void)ac;
    (void)reply;
    (void)ud;
}

static int rate_op(sky_redis_job *j, const char *op, const char *value, redisCallbackFn *cb,
                   void *ud)
{
    static const int keys[] = {SKY__RK_RATE};
    const char *args[] = {j->rate_dep, op, value};
    return sky__redis_eval(j, SKY__RS_RATE, keys, 1, 3, args, NULL, cb, ud);
}

static double reply_double(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING    ? strtod(r->str, NULL)
           : r->type == REDIS_REPLY_INTEGER ? (double)r->integer
                                            : 0;
}

static void on_lease(redisAsyncContext *ac, void *reply, void *ud)
{
    lease *l = ud;
    redisReply *r = reply;
    (void)ac;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3)
        l->cb(l->ud, r->element[0]->integer, r->element[1]->integer, reply_double(r->element[2]));
    else
        l->cb(l->ud, -1, 0, 0);
    free(l);
}

int sky__redis_rate_lease(sky_redis_job *j, long long want, sky__redis_lease_cb cb, void *ud)
{
    char v[32];
    lease *l = malloc(sizeof(*l));
    if (l == NULL)
        return SKY_ENOMEM;
    l->cb = cb;
    l->ud = ud;
    snprintf(v, sizeof(v), "%lld", want);
    int rc = rate_op(j, "lease", v, on_lease, l);
    if (rc < 0)
        free(l);
    return rc;
}

void sky__redis_rate_on_up(sky_redis_job *j)
{
    char v[32];
    if (j->rate_dep[0] == '\0' || j->rate_ceiling <= 0 || j->rate_set_done)
        return;
    snprintf(v, sizeof(v), "%.3f", j->rate_ceiling);
    if (rate_op(j, "set", v, on_ignore, NULL) == 0)
        j->rate_set_done = 1;
}

int sky_redis_job_rate_configure(sky_redis_job *j, const char *deployment, double rpm)
{
    if (deployment == NULL || deployment[0] == '\0' || strlen(deployment) >= sizeof(j->rate_dep) ||
        rpm < 0)
        return SKY_EINVAL;
    snprintf(j->rate_dep, sizeof(j->rate_dep), "%s", deployment);
    j->rate_ceiling = rpm;
    j->rate_set_done = 0;
    if (j->up)
        sky__redis_rate_on_up(j);
    return 0;
}

static void on_watch_tick(uv_timer_t *t)
{
    watch *w = t->data;
    sky_batch_progress p;
    char v[32];
    sky_batch_get_progress(w->b, &p);
    uint64_t done = p.ok + p.failed;
    if (++w->ticks % DONE_EVERY == 0 && done > w->seen_done) {
        snprintf(v, sizeof(v), "%llu", (unsigned long long)(done - w->seen_done));
        if (rate_op(w->j, "done", v, on_ignore, NULL) == 0)
            w->seen_done = done;
    }
    if (p.responses_429 <= w->seen_429)
        return;
    w->seen_429 = p.responses_429;
    snprintf(v, sizeof(v), "%.3f", p.rpm > 0 ? p.rpm : 60.0);
    (void)rate_op(w->j, "refused", v, on_ignore, NULL);
}

static void on_watch_closed(uv_handle_t *h)
{
    free(h->data);
}

void sky__redis_rate_stop(sky_redis_job *j)
{
    watch *w = j->rate_watch;
    if (w == NULL)
        return;
    j->rate_watch = NULL;
    uv_close((uv_handle_t *)&w->timer, on_watch_closed);
}

void sky_redis_job_rate_watch(sky_redis_job *j, sky_batch *b)
{
    sky__redis_rate_stop(j);
    if (b == NULL || j->rate_dep[0] == '\0')
        return;
    watch *w = calloc(1, sizeof(*w));
    if (w == NULL || uv_timer_init(j->loop, &w->timer) != 0) {
        free(w);
        return;
    }
    w->j = j;
    w->b = b;
    w->timer.data = w;
    uv_timer_start(&w->timer, on_watch_tick, WATCH_MS, WATCH_MS);
    uv_unref((uv_handle_t *)&w->timer);
    j->rate_watch = w;
}
