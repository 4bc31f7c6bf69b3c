/* The stores' insides: the backend table, the shared handle, deferred completions. */
#ifndef SKY_STORE_INTERNAL_H
#define SKY_STORE_INTERNAL_H

#include "store.h"

/*
 * One backend. The generic layer (store.c) checks caps, queues and batches usage, and
 * defers early failures; a backend runs the operations. Each operation must call its
 * callback exactly once, never from inside the call (use sky__store_fail for early errors).
 */
typedef struct sky__store_vt {
    const char *name;
    unsigned caps;
    /** Connect / open / migrate; call sky__store_opened(s, err) once, never from inside. */
    int (*open)(sky__store *s, sky_error *err);
    void (*cache_get)(sky__store *s, const char *key, sky__store_value_cb cb, void *ud);
    void (*cache_put)(sky__store *s, const char *key, sky_span value, uint64_t ttl_ms,
                      sky__store_done_cb cb, void *ud);
    /** Write @p n records (borrowed until cb) in one batch, all or none. */
    void (*usage_write)(sky__store *s, const sky__store_usage *recs, size_t n,
                        sky__store_done_cb cb, void *ud);
    /** @p key_name, @p since_day: NULL for every key, every day. */
    void (*usage_totals)(sky__store *s, const char *key_name, const char *since_day,
                         sky__store_totals_cb cb, void *ud);
    void (*doc_put)(sky__store *s, const char *scope, const char *id, sky_span doc,
                    sky__store_done_cb cb, void *ud);
    void (*doc_get)(sky__store *s, const char *scope, const char *id, sky__store_value_cb cb,
                    void *ud);
    void (*doc_delete)(sky__store *s, const char *scope, const char *id, sky__store_done_cb cb,
                       void *ud);
    void (*key_put)(sky__store *s, const sky__store_key *key, sky__store_done_cb cb, void *ud);
    void (*key_list)(sky__store *s, sky__store_keys_cb cb, void *ud);
    void (*key_revoke)(sky__store *s, const char *name, sky__store_done_cb cb, void *ud);
    void (*counter_add)(sky__store *s, const char *name, int64_t delta, uint64_t ttl_ms,
                        sky__store_count_cb cb, void *ud);
    void (*bucket_lease)(sky__store *s, const char *name, const sky__store_lease_ask *ask,
                         sky__store_lease_cb cb, void *ud);
    /** Fail every pending call with SKY_ECANCELED, release everything, then call
     *  sky__store_backend_closed(s) once (possibly later, after handles close). */
    void (*close)(sky__store *s);
} sky__store_vt;

typedef struct sky__usage_node sky__usage_node;
typedef struct sky__usage_spill sky__usage_spill;
typedef struct sky__deferred sky__deferred;
typedef struct sky__flush_waiter sky__flush_waiter;

struct sky__store {
    const sky__store_vt *vt;
    uv_loop_t *loop;
    sky__store_options opts;
    char *url;          /* copy of opts.url (may hold a password: never printed) */
    char safe_url[256]; /* scrubbed, for messages */
    void *impl;         /* the backend's state */

    sky__store_open_cb open_cb;
    void *open_ud;
    sky_error open_err;

    /* Usage records waiting, oldest first; `batch` is the one being written. */
    sky__usage_node *q_head, *q_tail;
    sky__usage_node **batch;
    sky__store_usage *batch_recs;
    size_t batch_n;
    int writing;
    uv_timer_t flush_timer;
    sky__flush_waiter *waiters;
    sky__usage_node *spare; /* written nodes kept for the next records, spare_n of them */
    size_t spare_n;
    sky__store_stats stats;
    sky__usage_spill *spill; /* usage_spill.c; NULL: none */
    char spill_path[512];    /* copy of opts.usage_spill_path */

    /* Completions of calls that failed before reaching the backend. */
    sky__deferred *deferred_head, *deferred_tail;
    uv_timer_t defer_timer;
    int handles_open;

    int closing;
    sky__store_done_cb close_cb;
    void *close_ud;
    sky_error close_err;
};

extern const sky__store_vt sky__store_sqlite_vt;
extern const sky__store_vt sky__store_redis_vt;
extern const sky__store_vt sky__store_postgres_vt;

/** The backend finished opening (err NULL or code 0: success). */
void sky__store_opened(sky__store *s, const sky_error *err);
/** The backend has released everything; the store may be freed. */
void sky__store_backend_closed(sky__store *s);

/* Call a callback of the given shape later from the loop, with @p err and empty results. */
void sky__store_fail_done(sky__store *s, sky__store_done_cb cb, void *ud, const sky_error *err);
void sky__store_fail_value(sky__store *s, sky__store_value_cb cb, void *ud, const sky_error *err);
void sky__store_fail_count(sky__store *s, sky__store_count_cb cb, void *ud, const sky_error *err);
void sky__store_fail_lease(sky__store *s, sky__store_lease_cb cb, void *ud, const sky_error *err);
void sky__store_fail_totals(sky__store *s, sky__store_totals_cb cb, void *ud, const sky_error *err);
void sky__store_fail_keys(sky__store *s, sky__store_keys_cb cb, void *ud, const sky_error *err);

/* The usage queue (usage_queue.c) and the deferred list (deferred.c), for store.c. */
int sky__store_usage_start(sky__store *s);
void sky__store_usage_close(sky__store *s);
void sky__store_usage_closed(sky__store *s, const sky_error *err);
void sky__store_usage_free(sky__store *s);
void sky__store_run_deferred(sky__store *s);

/* One queued usage record, its strings with it. */
struct sky__usage_node {
    sky__usage_node *next;
    sky__store_usage rec; /* strings point into `strings` */
    size_t room;          /* bytes of `strings` when the queue may reuse the node, else 0 */
    char strings[];
};
/* A copy of @p r (its strings too), or NULL. */
sky__usage_node *sky__usage_node_new(const sky__store_usage *r);
/* The UTC day ("YYYY-MM-DD") of a record's time, worked out once per day a batch spans
 * (gmtime and strftime per record cost more than the rest of writing it). Zero it first. */
typedef struct sky__store_day_cache {
    int64_t from_ms, to_ms; /* the day's bounds: [from, to) */
    char day[11];
} sky__store_day_cache;
const char *sky__store_day_of(sky__store_day_cache *c, int64_t ms);
/* Records back from the spill, to the queue's tail (written as any). */
void sky__store_usage_take(sky__store *s, sky__usage_node *head, size_t n);
/* Closing: settle the queue when nothing is under way any more. */
void sky__store_usage_close_step(sky__store *s);

/* The spill file (usage_spill.c): records past the memory bound while the store cannot
 * write. Open: at the store's open (a file that cannot be used fails it, named). */
int sky__spill_open(sky__store *s, sky_error *err);
/* Anything on the spill (the file, or on its way there). */
int sky__spill_active(const sky__store *s);
/* A job on the thread pool. */
int sky__spill_busy(const sky__store *s);
/* Take @p n (0), or -1 past usage_spill_max (the caller frees it and counts it lost). */
int sky__spill_add(sky__store *s, sky__usage_node *n);
/* Save what waits, or bring rows back when the queue is empty; a no-op without a spill. */
void sky__spill_tick(sky__store *s);
/* Memory's records to the file (on the loop: at close only), and the file closed. */
void sky__spill_close(sky__store *s);

/** The path of a "sqlite:PATH" or plain-path URL (borrowed from @p url). */
const char *sky__store_sqlite_path(const char *url);

#endif
