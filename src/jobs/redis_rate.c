/*
 * The shared rate limit's client side: the pipeline's admitter (skyio/pipeline.h) for every
 * attempt of a worker, first tries and retries alike, with tokens leased from the bucket
 * script in chunks; the 2xx replies and 429s it hears go to Redis with the next lease, so
 * one worker's 429 sets everyone's rate. The ceiling goes once per connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

/* With no shared limit known, attempts go unpaced and the admitter looks (and reports what
 * it heard) every LOOK_MS; a 429 makes it look at once. */
#define LOOK_MS 500
/* While a lease is on its way, an attempt asks again after at most this long (the lease's
 * answer wakes it sooner); while Redis is away, after DOWN_MS. */
#define LEASE_WAIT_MS 100
#define DOWN_MS 250
/* The bucket's shared start lasts this long; Redis away past its end, as no limit known. */
#define START_MS 1000
/* What a lease asks for in the shared start (the bucket's window is 32 then): fewer leases. */
#define START_CHUNK 32

typedef struct admitter {
    sky_rate_admitter hook;
    sky_redis_job *j;
    sky_pipeline *p;         /* the pipeline asking, to wake; NULL once it is freed */
    long long tokens, chunk; /* leased and not yet used; the next lease's size */
    double rpm;       /* the shared rate at the last lease; 0: no limit known; -1: not asked yet */
    uint64_t next_ms; /* no lease before this (the bucket said wait, or the next look) */
    long long ok, refused;           /* replies heard since the last lease went */
    long long sent_ok, sent_refused; /* what the lease on its way carries */
    double announced;                /* the provider's x-ratelimit-limit-requests, as sent */
    uint64_t start_end_ms; /* the shared start's end, as first answered; 0: not in it yet */
    int leasing, closing;
} admitter;

static void on_ignore(redisAsyncContext *ac, void *reply, void *ud)
{
    (void)ac;
    (void)reply;
    (void)ud;
}

static int rate_op(sky_redis_job *j, int nargs, const char **args, redisCallbackFn *cb, void *ud)
{
    static const int keys[] = {SKY__RK_RATE};
    return sky__redis_eval(j, SKY__RS_RATE, keys, 1, nargs, args, NULL, cb, ud);
}

static double reply_double(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING    ? strtod(r->str, NULL)
           : r->type == REDIS_REPLY_INTEGER ? (double)r->integer
                                            : 0;
}

static void admitter_wake(admitter *a)
{
    if (a->p)
        sky_pipeline_admitter_wake(a->p);
}

/* What a lease's answer means: tokens, the rate, when to ask again. */
static void lease_answer(admitter *a, long long granted, long long wait_ms, double rpm)
{
    uint64_t now = uv_now(a->j->loop);
    a->rpm = rpm;
    if (rpm < 0) { /* the shared start: count these, hold the rest until the next lease */
        if (a->start_end_ms == 0)
            a->start_end_ms = now + START_MS;
        a->tokens += granted;
        a->next_ms = granted == 0 ? now + (uint64_t)(wait_ms > 1 ? wait_ms : 1) : 0;
        return;
    }
    if (rpm == 0) {
        a->tokens = 0; /* nothing to count: unpaced until the next look */
        a->next_ms = now + LOOK_MS;
        return;
    }
    a->tokens += granted;
    a->chunk = (long long)(rpm / 300); /* a fifth of a second of the shared rate */
    a->chunk = a->chunk < 1 ? 1 : a->chunk > 32 ? 32 : a->chunk;
    a->next_ms = granted == 0 ? now + (uint64_t)(wait_ms > 1 ? wait_ms : 1) : 0;
}

static void on_lease(redisAsyncContext *ac, void *reply, void *ud)
{
    admitter *a = ud;
    redisReply *r = reply;
    (void)ac;
    a->leasing = 0;
    if (a->closing) {
        free(a);
        return;
    }
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        lease_answer(a, r->element[0]->integer, r->element[1]->integer,
                     reply_double(r->element[2]));
    } else {
        a->ok += a->sent_ok; /* not counted there: they go with the next lease */
        a->refused += a->sent_refused;
        a->next_ms = uv_now(a->j->loop) + DOWN_MS;
    }
    admitter_wake(a);
}

/* A lease of @p want tokens, carrying what was heard since the last one. */
static void lease(admitter *a, long long want)
{
    char v[3][32];
    const char *args[] = {a->j->rate_dep, "lease", v[0], v[1], v[2]};
    if (a->leasing || !a->j->up || a->j->lost)
        return;
    snprintf(v[0], sizeof(v[0]), "%lld", want);
    snprintf(v[1], sizeof(v[1]), "%lld", a->ok);
    snprintf(v[2], sizeof(v[2]), "%lld", a->refused);
    if (rate_op(a->j, 5, args, on_lease, a) != 0)
        return;
    a->leasing = 1;
    a->sent_ok = a->ok;
    a->sent_refused = a->refused;
    a->ok = a->refused = 0;
}

static int64_t admit_acquire(void *ud, sky_pipeline *p, int64_t est_tokens)
{
    admitter *a = ud;
    uint64_t now = uv_now(a->j->loop);
    (void)est_tokens;
    a->p = p;
    if (a->tokens > 0) {
        a->tokens--;
        return 0;
    }
    if (a->rpm < 0 && a->start_end_ms != 0 && now >= a->start_end_ms && (!a->j->up || a->j->lost))
        a->rpm = 0; /* the start is over and Redis cannot say more: unpaced, as before it */
    if (now >= a->next_ms)
        lease(a, a->rpm > 0 ? a->chunk : a->rpm < 0 ? START_CHUNK : 0);
    if (a->rpm == 0)
        return 0; /* no limit known: the look above goes on its own */
    if (a->leasing)
        return LEASE_WAIT_MS;
    if (!a->j->up || a->j->lost)
        return DOWN_MS;
    return a->next_ms > now ? (int64_t)(a->next_ms - now) : 1;
}

/*
 * A limit the provider announces (x-ratelimit-limit-requests, per minute, for everyone on
 * the key) becomes the shared ceiling, unless --rpm asked for less: learned once by
 * whichever worker reads it, for all.
 */
static void share_announced(admitter *a, const sky_headers *h)
{
    const char *v = h ? sky_headers_get(h, "x-ratelimit-limit-requests") : NULL;
    char *end;
    double limit = v ? strtod(v, &end) : 0;
    sky_redis_job *j = a->j;
    if (v == NULL || end == v || !(limit >= 1) || limit == a->announced ||
        (j->rate_ceiling > 0 && limit >= j->rate_ceiling))
        return;
    char num[32];
    const char *args[] = {j->rate_dep, "set", num};
    snprintf(num, sizeof(num), "%.3f", limit);
    if (rate_op(j, 3, args, on_ignore, NULL) == 0)
        a->announced = limit;
}

static void admit_reply(void *ud, sky_pipeline *p, int status, const sky_headers *h, double rpm)
{
    admitter *a = ud;
    (void)p;
    (void)rpm;
    share_announced(a, h);
    if (status >= 200 && status < 300)
        a->ok++;
    if (status != 429)
        return;
    a->refused++;
    a->tokens = 0; /* the bucket's rate is about to change: lease afresh */
    if (a->rpm == 0)
        a->rpm = -1; /* unpaced until now: hold every attempt until the bucket answers */
    lease(a, a->chunk);
}

static void admit_free(void *ud, sky_pipeline *p)
{
    admitter *a = ud;
    if (a->p == p)
        a->p = NULL;
}

const sky_rate_admitter *sky_redis_job_rate_admitter(sky_redis_job *j)
{
    admitter *a = j->rate_admit;
    if (a)
        return &a->hook;
    if (j->rate_dep[0] == '\0' || (a = calloc(1, sizeof(*a))) == NULL)
        return NULL;
    a->j = j;
    a->chunk = 8;
    a->rpm = -1; /* the first attempts wait for the first lease: there may be a limit */
    a->hook.acquire = admit_acquire;
    a->hook.on_reply = admit_reply;
    a->hook.on_free = admit_free;
    a->hook.user_data = a;
    j->rate_admit = a;
    return &a->hook;
}

double sky_redis_job_rate_now(const sky_redis_job *j)
{
    const admitter *a = j->rate_admit;
    return a && a->rpm > 0 ? a->rpm : 0;
}

void sky__redis_rate_on_up(sky_redis_job *j)
{
    char v[32];
    const char *args[] = {j->rate_dep, "set", v};
    if (j->rate_admit)
        admitter_wake(j->rate_admit); /* a lease may have been lost with the connection */
    if (j->rate_dep[0] == '\0' || j->rate_ceiling <= 0 || j->rate_set_done)
        return;
    snprintf(v, sizeof(v), "%.3f", j->rate_ceiling);
    if (rate_op(j, 3, args, on_ignore, NULL) == 0)
        j->rate_set_done = 1;
}

int sky_redis_job_rate_configure(sky_redis_job *j, const char *deployment, double rpm)
{
    if (deployment == NULL || deployment[0] == '\0' || strlen(deployment) >= sizeof(j->rate_dep) ||
        rpm < 0 || j->rate_admit)
        return SKY_EINVAL;
    snprintf(j->rate_dep, sizeof(j->rate_dep), "%s", deployment);
    j->rate_ceiling = rpm;
    j->rate_set_done = 0;
    if (j->up)
        sky__redis_rate_on_up(j);
    return 0;
}

void sky__redis_rate_stop(sky_redis_job *j)
{
    admitter *a = j->rate_admit;
    if (a == NULL)
        return;
    j->rate_admit = NULL;
    a->p = NULL;
    if (a->leasing)
        a->closing = 1; /* freed when the lease answers (or the connection's end says so) */
    else
        free(a);
}
