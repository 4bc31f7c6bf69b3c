/* skyio — one batch, many machines: a batch job kept in Redis (Streams, consumer groups). */
#ifndef SKYIO_BATCH_REDIS_H
#define SKYIO_BATCH_REDIS_H

#include <uv.h>

#include "batch.h"
#include "common.h"
#include "error.h"

/*
 * A job in Redis, under keys that share the hash tag {skyio:NAME} (one Cluster slot):
 *   :meta     hash: token (the job's identity), loaded (input lines loaded), load_done,
 *             canceled, failed
 *   :ids      hash: custom_id -> input line number, one per request or bad-line record
 *   :stream   stream of requests (c custom_id, n line number, l the JSONL line), read by the
 *             consumer group "workers"
 *   :done     hash: custom_id -> "0" ok / "1" failed; first writer wins
 *   :out      stream of accepted results (custom_id -> flag and record line), batched
 *   :workers  hash: consumer -> "unix_ms done rpm" heartbeats
 *   :rate     the shared rate limit (a token bucket per deployment)
 * A loader puts input lines in (idempotently: a custom_id is added once, and the load goes
 * on from the line it reached); any number of workers take them through the group and hand
 * results back with one atomic script that records each custom_id once and acknowledges;
 * a collector writes the results into a local store (the output journal), exactly once.
 *
 * Everything runs on the loop given to sky_redis_job_open, through hiredis's libuv adapter;
 * commands are pipelined. A source or collector with nothing to do waits with XREAD BLOCK
 * on a second connection of its own and wakes when the job's streams change. After the first
 * connection, a lost one is retried with backoff (250 ms doubling to 5 s) while sources wait and
 * stores keep their results (in memory, and in the journal of sky_redis_job_store_open). If the
 * job's state has gone (Redis came back empty, or the job was deleted), every part stops with
 * SKY_ENOTFOUND and sends nothing again.
 */

/** Long-lived: a connection to one job on one Redis, from _open to _close. */
typedef struct sky_redis_job sky_redis_job;

/** Where Redis is: redis://[[user]:password@]host[:port][/db]. */
typedef struct sky_redis_url {
    char host[256];
    int port; /**< default 6379 */
    int db;   /**< default 0 */
    char user[128];
    char password[256]; /**< secret: wipe it with sky_redis_url_wipe */
} sky_redis_url;

/**
 * Parse @p url into @p out; a password the URL lacks comes from $REDIS_PASSWORD. Returns 0,
 * or SKY_EINVAL with @p err saying what is wrong (never the password).
 */
SKY_EXTERN int sky_redis_url_parse(const char *url, sky_redis_url *out,
                                   sky_error *err) SKY_NODISCARD;
/** Overwrite the password in memory. */
SKY_EXTERN void sky_redis_url_wipe(sky_redis_url *u);

/** How a job is opened; fill with sky_redis_job_options_init. */
typedef struct sky_redis_job_options {
    const sky_redis_url *url; /**< required; copied */
    const char *name;         /**< the job's name (required; 1..200 of [A-Za-z0-9._-]) */
    /** 1: create the job when it does not exist (a loader); 0: open it as it is. */
    int create;
    /** Without create, a job not there yet: 1 waits for it (a worker started before its
     *  loader); 0 fails the open with SKY_ENOTFOUND. */
    int wait;
    /** A worker's name in the group; NULL: hostname-pid. */
    const char *consumer;
    /** Entries another consumer has held this long are claimed (XAUTOCLAIM). 60000. */
    uint64_t claim_idle_ms;
    /** Entries read at a time. 256. */
    uint32_t read_count;
    /** Results a store keeps in memory, at most, before the engine waits. 8192. */
    uint32_t max_unsent;
    /** Connecting (the first time) gives up after this long. 5000. */
    uint64_t connect_timeout_ms;
} sky_redis_job_options;

SKY_EXTERN void sky_redis_job_options_init(sky_redis_job_options *o);

/** The job is open (@p err NULL) or could not be (@p err: the cause). Borrowed arguments. */
typedef void (*sky_redis_job_cb)(sky_redis_job *j, const sky_error *err, void *user_data);

/**
 * Connect (AUTH and SELECT as the URL says), load the scripts and open the job named in
 * @p o, creating it with @p o->create, or waiting for it to appear with @p o->wait. @p cb runs
 * once, from the loop. On an error there the job is dead: close it. Returns 0 and *out, or
 * SKY_EINVAL / SKY_ENOMEM / SKY_ECONNECT with @p err (no callback then, and nothing to close).
 * Errors passed to @p cb: SKY_ECONNECT (unreachable, refused), SKY_EAUTH (the password or
 * user refused), SKY_EPROTO (not a Redis server), SKY_ETIMEDOUT, SKY_ENOTFOUND (no such
 * job, without create or wait).
 */
SKY_EXTERN int sky_redis_job_open(uv_loop_t *loop, const sky_redis_job_options *o,
                                  sky_redis_job_cb cb, void *user_data, sky_redis_job **out,
                                  sky_error *err) SKY_NODISCARD;

/** Nonzero once the job's state is known to be gone; err (may be NULL) says why. */
SKY_EXTERN int sky_redis_job_lost(const sky_redis_job *j, sky_error *err);

/**
 * Disconnect and free, once every source and store made from it has closed (call this after
 * the batch's FINISHED event). Commands still queued are sent first. NULL is a no-op.
 */
SKY_EXTERN void sky_redis_job_close(sky_redis_job *j);

/**
 * A worker's source: requests from the job's stream through the consumer group, and those a
 * dead consumer left once idle for claim_idle_ms. It ends when the load is done and no
 * entry is left but those this worker holds, or when the job is canceled. A lost job is an
 * error (the run stops). One per job; closing it frees it (after its reads return).
 */
SKY_EXTERN int sky_redis_job_source_new(sky_redis_job *j, sky_batch_source **out) SKY_NODISCARD;

/**
 * A worker's store: results handed back with one script per batch that keeps the first
 * result of each custom_id and acknowledges the entries. While Redis is away, results wait
 * in memory (appends say SKY_EBUSY past max_unsent) and go once it is back; close waits for
 * all of them. One per job, with the source; closing it frees it.
 */
SKY_EXTERN int sky_redis_job_store_new(sky_redis_job *j, sky_batch_store **out) SKY_NODISCARD;

/**
 * A worker's store as sky_redis_job_store_new's, with a local journal: while Redis is away
 * the results waiting in memory are also written (and synced) to the file @p journal, so a
 * worker that dies during the outage loses none of them; the journal is read at open and
 * what it holds is handed over first, before the worker reads any request (a worker
 * restarted with the same journal acknowledges the dead one's entries, and nobody sends
 * them again). Results of an earlier job of the same name are left out. @p journal NULL:
 * the first free (not held by a live worker) of $XDG_STATE_HOME/skyio/redis/JOB-K.jsonl
 * (~/.local/state when XDG_STATE_HOME is unset), K = 0..15. The file goes once a close
 * finds everything handed over. Reads the file at once (blocking): call at start-up, once
 * the job is open. 0, or SKY_EIO / SKY_EBUSY (held by another worker) / SKY_ENOMEM with
 * @p err.
 */
SKY_EXTERN int sky_redis_job_store_open(sky_redis_job *j, const char *journal,
                                        sky_batch_store **out, sky_error *err) SKY_NODISCARD;

/** The load or the collection has ended: @p err NULL when complete. Borrowed arguments. */
typedef void (*sky_redis_job_done_cb)(sky_redis_job *j, const sky_error *err, void *user_data);

/**
 * The loader: every line of @p lines (borrowed; the caller closes it after @p cb) into the
 * job, each custom_id once, bad lines and duplicates as error records; lines @p local
 * (borrowed, may be NULL) already holds are left out. Lines below the job's load cursor are
 * read but not sent again. When all are in, load_done is set and @p cb runs. With @p text,
 * each line is a prompt (sky_batchline_text_parse with @p line_opts' model, system...): the
 * job gets the chat request made of it, custom_id line-N, so workers send it as any other.
 */
SKY_EXTERN int sky_redis_job_load(sky_redis_job *j, sky_batch_source *lines,
                                  const sky_batchline_options *line_opts, int text,
                                  sky_batch_store *local, sky_redis_job_done_cb cb,
                                  void *user_data) SKY_NODISCARD;

/** What the collector has written. */
typedef struct sky_redis_collect_stats {
    uint64_t written; /**< records appended to the local store */
    uint64_t failed;  /**< of which failures */
    uint64_t skipped; /**< records it already held */
} sky_redis_collect_stats;

/**
 * The collector: every accepted result into @p local (borrowed; a journal store: its
 * on_drain and engine fields are taken over), each custom_id once, until every request
 * loaded has a result (or the job is canceled); then @p cb. Reads the results from the
 * start each time it runs: what @p local holds is skipped.
 */
SKY_EXTERN int sky_redis_job_collect(sky_redis_job *j, sky_batch_store *local,
                                     sky_redis_job_done_cb cb, void *user_data) SKY_NODISCARD;
/** The collector's counts into @p out. */
SKY_EXTERN void sky_redis_job_collect_stats(const sky_redis_job *j, sky_redis_collect_stats *out);

/** A job's counts. */
typedef struct sky_redis_job_status {
    int exists, load_done, canceled;
    uint64_t loaded;  /**< requests and error records loaded */
    uint64_t queued;  /**< not yet taken by a worker */
    uint64_t pending; /**< taken, not yet handed back (in flight) */
    uint64_t done, failed;
    uint64_t workers_alive; /**< heartbeats within 10 s */
    double rpm;             /**< the workers' rates, summed */
    double shared_rpm;      /**< the shared limit's rate now; 0 when none */
} sky_redis_job_status;

typedef void (*sky_redis_status_cb)(sky_redis_job *j, const sky_redis_job_status *st,
                                    const sky_error *err, void *user_data);

/** Read the counts (one pipelined round trip); @p cb once. 0 or SKY_ESTATE (not open). */
SKY_EXTERN int sky_redis_job_get_status(sky_redis_job *j, sky_redis_status_cb cb,
                                        void *user_data) SKY_NODISCARD;
/** Cancel (workers stop taking work; collectors stop) or delete every key; @p cb once. */
SKY_EXTERN int sky_redis_job_cancel(sky_redis_job *j, int delete_keys, sky_redis_job_done_cb cb,
                                    void *user_data) SKY_NODISCARD;

/**
 * The shared rate limit: every attempt of every worker (first tries and retries) takes a
 * token from a bucket kept in Redis for @p deployment (a name the job's workers agree on,
 * such as the endpoint's URL), leased in chunks of about a fifth of a second's worth so
 * that a request costs a fraction of a round trip. @p rpm > 0 sets the ceiling (all
 * workers share it); 0 leaves the rate to be learned: unpaced until the first 429
 * anywhere, then 95% of the rate the deployment served, probing 5% higher every 5 s (see
 * sky_redis_job_rate_admitter). Call once, before sky_redis_job_rate_admitter. 0, or
 * SKY_EINVAL.
 */
SKY_EXTERN int sky_redis_job_rate_configure(sky_redis_job *j, const char *deployment,
                                            double rpm) SKY_NODISCARD;

/**
 * The shared limit as the pipeline's admitter (sky_pipeline_options.admitter, for the
 * batch's pipeline): asked before every attempt, it hands out leased tokens, and the 2xx
 * replies and 429s it hears go to Redis with its next lease (a 429 at once), so one
 * worker's 429 sets every worker's rate; a limit a reply announces (x-ratelimit-limit-
 * requests) becomes the shared ceiling, unless the configured one is lower. NULL before
 * sky_redis_job_rate_configure (or out of memory). Owned by the job: valid until
 * sky_redis_job_close, which must come after the pipeline (the batch) is freed. The
 * worker's own limiter should then not learn from 429s (pipeline.rate.learn = 0): the
 * shared bucket does, for everyone.
 */
SKY_EXTERN const sky_rate_admitter *sky_redis_job_rate_admitter(sky_redis_job *j);

/** The shared rate (requests a minute) at this worker's last lease, for progress lines; 0
 *  while none is known (unpaced) or without a shared limit. */
SKY_EXTERN double sky_redis_job_rate_now(const sky_redis_job *j);

#endif
