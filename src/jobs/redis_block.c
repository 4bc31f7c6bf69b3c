/*
 * A second connection to the job's Redis for blocking reads (XREAD BLOCK): a part with
 * nothing to do (a worker whose stream is empty, a collector with no new results) waits
 * there for the job's streams to change, so it wakes the moment they do, at the cost of one
 * command a wait; the first connection's pipelined commands are never held up behind it.
 * It is only a wake-up: while it cannot connect, waiters use their timers as before, and a
 * wait that goes wrong (a lost connection, an error, no answer) just wakes its waiter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

/* No answer this long past the wait's own timeout: the connection is taken to be dead. */
#define GUARD_MS 2000
/* After a failed connection (or a refused AUTH / SELECT), no new one for this long. */
#define RETRY_MS 1000

struct sky__redis_blocker {
    sky_redis_job *j;
    redisAsyncContext *ac; /* NULL: none yet, or dropped */
    uv_timer_t guard;
    sky__redis_block_cb cb; /* the wait in flight; NULL: none */
    void *ud;
    uint64_t retry_at; /* sky__redis_now_ms() before which no new connection is tried */
    int bad;           /* AUTH or SELECT was refused on this connection */
};

/* The wait in flight ends: its waiter is told (once). */
static void wake(sky__redis_blocker *b, int woke)
{
    sky__redis_block_cb cb = b->cb;
    uv_timer_stop(&b->guard);
    b->cb = NULL;
    if (cb)
        cb(b->ud, woke);
}

/* Let the connection go; its callbacks, run now or later by hiredis, find no blocker. */
static void drop(sky__redis_blocker *b)
{
    redisAsyncContext *ac = b->ac;
    b->ac = NULL;
    b->retry_at = sky__redis_now_ms() + RETRY_MS;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}

/* hiredis lets go of the context after these (a failed connect, a closed connection). */
static void forget(const redisAsyncContext *ac)
{
    sky__redis_blocker *b = ac->data;
    if (b && b->ac == ac) {
        b->ac = NULL;
        b->retry_at = sky__redis_now_ms() + RETRY_MS;
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        forget(ac);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    forget(ac);
}

static void on_setup(redisAsyncContext *ac, void *reply, void *ud)
{
    sky__redis_blocker *b = ac->data;
    const redisReply *r = reply;
    (void)ud;
    if (b && r && r->type == REDIS_REPLY_ERROR)
        b->bad = 1;
}

static void on_read(redisAsyncContext *ac, void *reply, void *ud)
{
    sky__redis_blocker *b = ac->data;
    const redisReply *r = reply;
    (void)ud;
    if (b == NULL)
        return; /* dropped: its waiter was told then */
    if (r == NULL) {
        forget(ac); /* the connection goes: hiredis frees it */
        ac->data = NULL;
    } else if (b->bad || r->type == REDIS_REPLY_ERROR) {
        drop(b);
    }
    wake(b, r != NULL && r->type == REDIS_REPLY_ARRAY);
}

static void on_guard(uv_timer_t *t)
{
    sky__redis_blocker *b = t->data;
    drop(b);
    wake(b, 0);
}

/* A connection with the job's AUTH and SELECT queued first: 0, or -1 (none now). */
static int blocker_connect(sky__redis_blocker *b)
{
    const sky_redis_url *u = &b->j->url;
    if (sky__redis_now_ms() < b->retry_at)
        return -1;
    redisAsyncContext *ac = redisAsyncConnect(u->host, u->port);
    if (ac == NULL || ac->err || sky__redis_uv_attach(ac, b->j->loop) < 0) {
        if (ac)
            redisAsyncFree(ac);
        b->retry_at = sky__redis_now_ms() + RETRY_MS;
        return -1;
    }
    ac->data = b;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    b->ac = ac;
    b->bad = 0;
    if (u->password[0] || u->user[0]) {
        const char *argv[3] = {"AUTH", NULL, NULL};
        int n = 1;
        if (u->user[0])
            argv[n++] = u->user;
        argv[n++] = u->password;
        redisAsyncCommandArgv(ac, on_setup, NULL, n, argv, NULL);
    }
    if (u->db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", u->db);
        const char *argv[] = {"SELECT", db};
        redisAsyncCommandArgv(ac, on_setup, NULL, 2, argv, NULL);
    }
    return 0;
}

sky__redis_blocker *sky__redis_blocker_new(sky_redis_job *j)
{
    sky__redis_blocker *b = calloc(1, sizeof(*b));
    if (b == NULL || uv_timer_init(j->loop, &b->guard) != 0) {
        free(b);
        return NULL;
    }
    b->guard.data = b;
    b->j = j;
    return b;
}

int sky__redis_block(sky__redis_blocker *b, int n, const int *keys, const char *const *ids,
                     uint64_t ms, sky__redis_block_cb cb, void *ud)
{
    char block[24];
    const char *argv[6 + 2 * 2];
    if (b == NULL || b->cb)
        return SKY_EBUSY;
    if (n < 1 || n > 2)
        return SKY_EINVAL;
    if (b->j->closing || (b->ac == NULL && blocker_connect(b) < 0))
        return SKY_ECONNECT;
    snprintf(block, sizeof(block), "%llu", (unsigned long long)ms);
    int k = 0;
    argv[k++] = "XREAD";
    argv[k++] = "COUNT";
    argv[k++] = "1";
    argv[k++] = "BLOCK";
    argv[k++] = block;
    argv[k++] = "STREAMS";
    for (int i = 0; i < n; i++)
        argv[k++] = b->j->keys[keys[i]];
    for (int i = 0; i < n; i++)
        argv[k++] = ids[i];
    if (redisAsyncCommandArgv(b->ac, on_read, NULL, k, argv, NULL) != REDIS_OK) {
        drop(b);
        return SKY_ECONNECT;
    }
    b->cb = cb;
    b->ud = ud;
    uv_timer_start(&b->guard, on_guard, ms + GUARD_MS, 0);
    return 0;
}

static void on_guard_closed(uv_handle_t *h)
{
    free(h->data);
}

void sky__redis_blocker_free(sky__redis_blocker *b)
{
    if (b == NULL)
        return;
    b->cb = NULL;
    drop(b);
    uv_close((uv_handle_t *)&b->guard, on_guard_closed);
}
