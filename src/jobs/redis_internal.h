/* The Redis job's parts: the connection and the job (redis_job.c), its scripts
 * (redis_scripts.c), the source, store, loader, collector and status share this. */
#ifndef SKY_JOBS_REDIS_INTERNAL_H
#define SKY_JOBS_REDIS_INTERNAL_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "skyio/batch_redis.h"
#include "skyio/journal.h"

/* The scripts, loaded at each connection (SCRIPT LOAD) and run by EVALSHA. */
enum { SKY__RS_CREATE, SKY__RS_LOAD, SKY__RS_ACCEPT, SKY__RS_RATE, SKY__RS_COUNT };
extern const char *const sky__redis_scripts[SKY__RS_COUNT];

/* The keys of a job, in the order the scripts take them. */
enum {
    SKY__RK_META,
    SKY__RK_IDS,
    SKY__RK_STREAM,
    SKY__RK_DONE,
    SKY__RK_OUT,
    SKY__RK_WORKERS,
    SKY__RK_RATE,
    SKY__RK_COUNT
};

#define SKY__REDIS_GROUP "workers"

/* A part of the job told of the connection's changes. */
typedef struct sky__redis_part {
    struct sky__redis_part *next;
    void (*on_up)(struct sky__redis_part *p);   /* connected again, job still there */
    void (*on_lost)(struct sky__redis_part *p); /* the job's state is gone */
} sky__redis_part;

struct sky_redis_job {
    uv_loop_t *loop;
    sky_redis_job_options o;
    sky_redis_url url;
    char name[208];
    char consumer[128];
    char keys[SKY__RK_COUNT][240];
    char token[40]; /* the job's identity, from its meta; "" until known */
    char sha[SKY__RS_COUNT][41];
    redisAsyncContext *ac;
    int up;               /* connected, authenticated, scripts loaded, job checked */
    int ever_up;          /* the first open succeeded: later losses are retried */
    int closing;          /* sky_redis_job_close was called */
    int lost;             /* the job's state is gone */
    int opened;           /* the open callback has run */
    int handshake;        /* commands of the handshake still to answer */
    int wait_had_entries; /* waiting for the job, its stream had entries: wait by the timer */
    uint64_t backoff_ms;
    sky_error lost_err;
    sky_error hs_err; /* the first error of the handshake */
    sky_redis_job_cb open_cb;
    void *open_ud;
    sky__redis_part *parts;
    uv_timer_t timer; /* connect timeout, reconnect backoff, waiting for the job */
    int timer_open;
    /* the parts made from it */
    sky_batch_source *source;
    sky_batch_store *store;
    void *loader, *collector;
    sky_redis_collect_stats cstats;
    /* cid -> stream entry id of what the source handed out and the store has not acked */
    struct json_t *entries;
    /* the shared rate limit (redis_rate.c) */
    char rate_dep[256]; /* "" when there is none */
    double rate_ceiling;
    int rate_set_done;
    void *rate_admit; /* the pipeline's admitter, once asked for */
};

/* The job (re)connected: the ceiling goes to Redis once, waiting attempts ask again. */
void sky__redis_rate_on_up(sky_redis_job *j);
/* The job closes: the admitter goes (once its lease has answered). */
void sky__redis_rate_stop(sky_redis_job *j);

/* The worker's local journal (redis_journal.c). Open @p path, or with NULL the first free
 * default file for @p job; *out_path gets the path (the caller frees it). NULL with @p err. */
sky_journal *sky__redis_journal_open(uv_loop_t *loop, const char *path, const char *job,
                                     char **out_path, sky_error *err);
/* Append one result (a custom_id already there is not written twice): 0 or sky_journal_append's
 * error (SKY_EBUSY: wait for its on_drain). */
int sky__redis_journal_put(sky_journal *jr, const char *job, const char *cid, const char *entry,
                           int failed, const char *line, size_t len);
/* Each result of the file at @p path (borrowed strings; @p job the token of the job it is
 * for); a nonzero return stops the read. */
typedef int (*sky__redis_journal_each_cb)(void *ud, const char *job, const char *cid,
                                          const char *entry, int failed, const char *line,
                                          size_t len);
/* Read the results back (at start-up: blocking reads). 0, or the error with @p err. */
int sky__redis_journal_read(const char *path, sky__redis_journal_each_cb each, void *ud,
                            sky_error *err);

/* Send one command (argv with lengths; lens NULL: NUL-terminated). 0, or SKY_ECONNECT when
 * not connected (nothing sent; @p cb not called). @p cb gets a NULL reply when the
 * connection drops first. */
int sky__redis_send(sky_redis_job *j, redisCallbackFn *cb, void *ud, int argc, const char **argv,
                    const size_t *lens);
/* EVALSHA of script @p which with the job's keys @p keys (indexes into j->keys, count
 * @p nkeys) and @p nargs arguments. */
int sky__redis_eval(sky_redis_job *j, int which, const int *keys, int nkeys, int nargs,
                    const char **args, const size_t *lens, redisCallbackFn *cb, void *ud);
void sky__redis_add_part(sky_redis_job *j, sky__redis_part *p);
void sky__redis_remove_part(sky_redis_job *j, sky__redis_part *p);
/* The job's state is gone (a script said NOJOB, the token changed): tell every part. */
void sky__redis_mark_lost(sky_redis_job *j, const char *why);
/* A reply's error text into @p err as @p code, with @p what before it. */
void sky__redis_reply_error(sky_error *err, int code, const char *what, const redisReply *r);
/* Whether @p r is an error whose text starts with @p prefix. */
int sky__redis_is_error(const redisReply *r, const char *prefix);
/* The job closes: the loader and the collector stop (their callbacks get SKY_ECANCELED). */
void sky__redis_loader_cancel(void *loader);
void sky__redis_collector_cancel(void *collector);
/* A second connection for blocking reads (redis_block.c): a waiter told once when one of the
 * job's streams has an entry past the id given, or the wait's time is up, or it went wrong
 * (@p woke 0: look again, nothing is known). Long-lived, one wait at a time. */
typedef struct sky__redis_blocker sky__redis_blocker;
typedef void (*sky__redis_block_cb)(void *ud, int woke);
/* NULL when out of memory. */
sky__redis_blocker *sky__redis_blocker_new(sky_redis_job *j);
/* XREAD BLOCK @p ms on the @p n (1 or 2) streams @p keys (indexes into j->keys), each past its
 * id in @p ids (borrowed for the call). 0: @p cb runs once (unless the blocker is freed first);
 * SKY_EBUSY: a wait is in flight; SKY_ECONNECT: no connection now (use a timer). */
int sky__redis_block(sky__redis_blocker *b, int n, const int *keys, const char *const *ids,
                     uint64_t ms, sky__redis_block_cb cb, void *ud);
/* Close it: a wait in flight ends without its callback. NULL is a no-op. */
void sky__redis_blocker_free(sky__redis_blocker *b);
/* Drive @p ac from @p loop (redis_uv.c). 0, SKY_ENOMEM, SKY_EIO. */
int sky__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);
/* Milliseconds since the epoch (heartbeats). */
uint64_t sky__redis_now_ms(void);

#endif
