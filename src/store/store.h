/*
 * The gateway's stores: what `skyio serve` keeps between requests and restarts.
 *
 * One small interface, one implementation per backend:
 *   sqlite    a file (`--state ./skyio.db`): everything; statements run on a writer
 *             thread fed by a queue that is drained in batches, one transaction each.
 *   redis     `redis://host:port/db`: the response cache and shared counters, on the
 *             caller's loop (hiredis's libuv adapter). When Redis is unreachable every
 *             call fails at once (SKY_ECONNECT) and a warning is logged: callers bypass it.
 *   postgres  `postgresql://...`: usage, conversations and keys, on the caller's loop
 *             (libpq's asynchronous API on PQsocket, a small pool, prepared statements).
 *
 * The header is internal (sky__ names, not installed): the gateway and `skyio usage` are its
 * only users today, and its shapes will move while the gateway grows; a C user gets the
 * gateway, not its tables.
 *
 * An open Redis or PostgreSQL store keeps its loop alive (its sockets are watched): close
 * it before the loop is expected to end.
 *
 * Every asynchronous call takes a callback and user data and calls it exactly once, never
 * from inside the call: success, an error, or SKY_ECANCELED when the store closes first.
 * Everything a callback receives is borrowed and lives until it returns. Strings given to
 * a call are copied before it returns. An operation a backend does not keep fails with
 * SKY_ESTATE (see sky__store_caps). Every value reaches the database as a bound parameter.
 */
#ifndef SKY_STORE_STORE_H
#define SKY_STORE_STORE_H

#include <stdint.h>
#include <uv.h>

#include "skyio/common.h"
#include "skyio/error.h"

typedef struct sky__store sky__store;

/** What a backend keeps. */
enum {
    SKY__STORE_CACHE = 1u << 0,
    SKY__STORE_USAGE = 1u << 1,
    SKY__STORE_CONV = 1u << 2,
    SKY__STORE_KEYS = 1u << 3,
    SKY__STORE_COUNTERS = 1u << 4,
    SKY__STORE_BUCKETS = 1u << 5
};

typedef struct sky__store_options {
    /** "sqlite:PATH", a plain path, "redis://host:port/db" or "postgresql://..." (borrowed). */
    const char *url;
    uint64_t cache_max_bytes;       /**< values kept in the cache before the oldest go. 64 MiB */
    uint32_t usage_queue_max;       /**< usage records held while the store is away. 100,000 */
    uint32_t usage_batch_max;       /**< records written per batch. 512 */
    uint64_t usage_flush_ms;        /**< queued records are written at least this often. 200 */
    uint32_t pool_size;             /**< PostgreSQL connections. 2 */
    uint64_t reconnect_interval_ms; /**< network stores: retry a lost server this often. 500 */
    /** A local SQLite file for the usage records past usage_queue_max while the store cannot
     *  write them (they are written when it can, also after a restart); NULL: none. */
    const char *usage_spill_path;
    uint64_t usage_spill_max; /**< records kept on that file at most. 10,000,000 */
} sky__store_options;

void sky__store_options_init(sky__store_options *opts);

/** The store is open (@p store non-NULL) or could not open (@p err says why, naming the file
 *  or the scrubbed URL; @p store NULL). */
typedef void (*sky__store_open_cb)(sky__store *store, const sky_error *err, void *user_data);
/** A write, delete or revoke finished. */
typedef void (*sky__store_done_cb)(const sky_error *err, void *user_data);
/** A value was read: err->code 0 and @p value set, or SKY_ENOTFOUND, or another error. */
typedef void (*sky__store_value_cb)(const sky_error *err, sky_span value, void *user_data);
/** A counter's value after the addition. */
typedef void (*sky__store_count_cb)(const sky_error *err, int64_t value, void *user_data);

/**
 * Open a store on @p loop. The SQLite file is created, set to WAL and migrated to the
 * current schema; PostgreSQL is connected and migrated; Redis is connected. @p cb gets the
 * store. @p opts is copied. Returns 0 (cb will run) or an error (cb will not run).
 */
int sky__store_open(uv_loop_t *loop, const sky__store_options *opts, sky__store_open_cb cb,
                    void *user_data) SKY_NODISCARD;

/**
 * sky__store_open, running @p loop until the store is open: for start-up, before the loop
 * serves anything else. 0 with *out, or the error (naming the file or the scrubbed URL).
 */
int sky__store_open_sync(uv_loop_t *loop, const sky__store_options *opts, sky__store **out,
                         sky_error *err) SKY_NODISCARD;
/** sky__store_close, running @p loop until it is closed (at exit, outside the loop). */
void sky__store_close_sync(uv_loop_t *loop, sky__store *s);

/** The backend's name ("sqlite", "redis", "postgres") and what it keeps (SKY__STORE_*). */
const char *sky__store_backend(const sky__store *s);
unsigned sky__store_caps(const sky__store *s);

/**
 * Write what is queued (usage), wait for the calls in flight, then free the store and call
 * @p cb (err: the first failure of the final writes; usage records that could not be written
 * are counted in usage_lost). @p cb may be NULL.
 */
void sky__store_close(sky__store *s, sky__store_done_cb cb, void *user_data);

/* ---- (a) response cache: opaque values under a key (the request's hash), with a TTL. */

void sky__store_cache_get(sky__store *s, const char *key, sky__store_value_cb cb, void *user_data);
/** Keep @p value for @p ttl_ms (0: no expiry, until evicted); the oldest values are evicted
 *  when the cache holds more than cache_max_bytes. */
void sky__store_cache_put(sky__store *s, const char *key, sky_span value, uint64_t ttl_ms,
                          sky__store_done_cb cb, void *user_data);

/* ---- (b) usage: one record per request, appended without waiting, totals read back. */

typedef struct sky__store_usage {
    int64_t time_ms;        /**< when the request ended, Unix milliseconds (UTC) */
    const char *key_name;   /**< the gateway key's name, "" when none */
    const char *model;      /**< the model the client asked for */
    const char *deployment; /**< the deployment that answered, "" when none */
    int status;             /**< HTTP status given to the client */
    int64_t tokens_in;
    int64_t tokens_out;
    int64_t latency_us;
    double cost;
} sky__store_usage;

/**
 * Queue one record (copied). It is written in a batch within usage_flush_ms, off the
 * request path. While the store cannot write (server away) records stay queued and are
 * written when it returns; past usage_queue_max the record goes to the spill file (when
 * there is one, up to usage_spill_max), else it is refused, counted in usage_lost, and
 * SKY_EBUSY returned. Otherwise 0.
 */
int sky__store_usage_append(sky__store *s, const sky__store_usage *rec);

/** Totals for one key, model and UTC day ("YYYY-MM-DD"). */
typedef struct sky__store_usage_total {
    const char *day;
    const char *key_name;
    const char *model;
    int64_t requests;
    int64_t errors; /**< status >= 400 */
    int64_t tokens_in;
    int64_t tokens_out;
    double cost;
} sky__store_usage_total;

/** Rows ordered by day, key, model; borrowed for the call. */
typedef void (*sky__store_totals_cb)(const sky_error *err, const sky__store_usage_total *rows,
                                     size_t n, void *user_data);

/** Totals of the written records, for @p key_name only when non-NULL. Write queued records
 *  first with sky__store_usage_flush when they must count. */
void sky__store_usage_totals(sky__store *s, const char *key_name, sky__store_totals_cb cb,
                             void *user_data);
/** The same, of the UTC days from @p since_day ("YYYY-MM-DD") on when non-NULL. */
void sky__store_usage_totals_since(sky__store *s, const char *key_name, const char *since_day,
                                   sky__store_totals_cb cb, void *user_data);

/** Write every queued record now; @p cb when they are written (or the write failed). */
void sky__store_usage_flush(sky__store *s, sky__store_done_cb cb, void *user_data);

typedef struct sky__store_stats {
    uint64_t usage_appended; /**< accepted by sky__store_usage_append */
    uint64_t usage_written;
    uint64_t usage_queued;  /**< waiting now */
    uint64_t usage_lost;    /**< refused over the bound, or unwritten at close */
    uint64_t write_errors;  /**< batches that failed and were kept for a retry */
    uint64_t usage_spilled; /**< on the spill file now, or on their way there */
} sky__store_stats;

void sky__store_get_stats(const sky__store *s, sky__store_stats *out);

/* ---- (c) conversations and stored responses: JSON documents scoped by gateway key. */

/** Keep @p doc under (@p scope, @p id), replacing what was there. @p scope is the gateway
 *  key's name: one key never reads another's documents. */
void sky__store_doc_put(sky__store *s, const char *scope, const char *id, sky_span doc,
                        sky__store_done_cb cb, void *user_data);
void sky__store_doc_get(sky__store *s, const char *scope, const char *id, sky__store_value_cb cb,
                        void *user_data);
/** SKY_ENOTFOUND when there was nothing to delete. */
void sky__store_doc_delete(sky__store *s, const char *scope, const char *id, sky__store_done_cb cb,
                           void *user_data);

/* ---- (d) the gateway's keys: only their hash is kept. */

typedef struct sky__store_key {
    const char *name;   /**< unique */
    const char *hash;   /**< hex SHA-256 of the key; never the key itself */
    const char *config; /**< JSON text: models, budgets; "{}" when none */
    int64_t created_ms;
    int revoked;
} sky__store_key;

/** Create or replace the key called @p key->name (revoked is cleared). */
void sky__store_key_put(sky__store *s, const sky__store_key *key, sky__store_done_cb cb,
                        void *user_data);
/** Every key, by name, revoked ones too (their flag set); borrowed for the call. */
typedef void (*sky__store_keys_cb)(const sky_error *err, const sky__store_key *keys, size_t n,
                                   void *user_data);
void sky__store_key_list(sky__store *s, sky__store_keys_cb cb, void *user_data);
/** SKY_ENOTFOUND when no such key. */
void sky__store_key_revoke(sky__store *s, const char *name, sky__store_done_cb cb, void *user_data);

/* ---- shared counters (key budgets across gateways). */

/** Add @p delta to counter @p name (created at 0, expiring @p ttl_ms after its creation
 *  when nonzero) and give the new value. */
void sky__store_counter_add(sky__store *s, const char *name, int64_t delta, uint64_t ttl_ms,
                            sky__store_count_cb cb, void *user_data);

/* ---- shared buckets (keys' minute budgets across gateways): Redis. */

/** A lease asked of a shared bucket: requests and tokens a minute, refilled continuously
 *  by the server's clock. */
typedef struct sky__store_lease_ask {
    double rpm, tpm;              /**< the bucket's rates (0: that side has no limit) */
    int64_t want_reqs, want_toks; /**< asked; granted up to what the bucket holds */
    int64_t give_toks;            /**< tokens given back with it (negative: taken) */
} sky__store_lease_ask;

typedef struct sky__store_lease_answer {
    int64_t reqs, toks;             /**< granted */
    int64_t level_reqs, level_toks; /**< what the bucket holds after the grant */
    int64_t wait_ms; /**< until what was asked and not granted fits (0: all granted) */
} sky__store_lease_answer;

/** A lease's answer; on error @p a is all zeros. */
typedef void (*sky__store_lease_cb)(const sky_error *err, const sky__store_lease_answer *a,
                                    void *user_data);

/** Take a lease from bucket @p name (made full on first use, or when its rates change;
 *  gone after two idle minutes). */
void sky__store_bucket_lease(sky__store *s, const char *name, const sky__store_lease_ask *ask,
                             sky__store_lease_cb cb, void *user_data);

/* ---- helpers */

/** @p url with any password replaced by "***" (PostgreSQL / Redis URLs, key=value strings). */
void sky__store_url_scrub(const char *url, char *out, size_t out_len);

/** Unix time in milliseconds (wall clock: records, expiries). */
int64_t sky__store_now_ms(void);

/** "YYYY-MM-DD" of Unix milliseconds @p ms in UTC. */
void sky__store_day(int64_t ms, char out[11]);

#endif
