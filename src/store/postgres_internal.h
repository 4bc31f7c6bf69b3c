/* The PostgreSQL store's insides: the pool, its connections and the queued operations. */
#ifndef SKY_STORE_POSTGRES_INTERNAL_H
#define SKY_STORE_POSTGRES_INTERNAL_H

#include <libpq-fe.h>

#include "internal.h"

/* Statements, each prepared on a connection the first time it runs there, except those
 * without a name (sky__pg_name NULL), sent as plain queries. */
typedef enum {
    PQ_USAGE_COPY, /* COPYs ... FROM STDIN (binary): the op's copy_sql, its data params[0];
                      its sky__pg_sql: the connection's setup for it, run there first */
    PQ_USAGE_TOTALS,
    PQ_DOC_PUT,
    PQ_DOC_GET,
    PQ_DOC_DELETE,
    PQ_KEY_PUT,
    PQ_KEY_LIST,
    PQ_KEY_REVOKE,
    PQ_COUNTER_ADD,
    PQ__COUNT,
    PQ_MIGRATE = PQ__COUNT /* a plain query: the schema, at open */
} sky__pg_stmt;

typedef enum {
    PG_OP_OPEN,
    PG_OP_DONE,
    PG_OP_VALUE,
    PG_OP_COUNT,
    PG_OP_TOTALS,
    PG_OP_KEYS
} pg_op_kind;

#define SKY__PG_MAX_PARAMS 10

typedef struct sky__pg_op sky__pg_op;
struct sky__pg_op {
    sky__pg_op *next;
    sky__pg_stmt stmt;
    pg_op_kind kind;
    int nparams;
    char *params[SKY__PG_MAX_PARAMS]; /* owned; NULL is SQL NULL */
    /* PQ_USAGE_COPY: the query (copy_sql, owned) of `copies` COPYs, their data params[0]
     * (copy_len bytes), COPY i's ending at copy_ends[i] (owned); copies_sent so far */
    char *copy_sql;
    size_t copy_len;
    size_t *copy_ends;
    size_t copies, copies_sent;
    size_t staged_at; /* nonzero: the sums go to skyio_sums, their statement from here on */
    int must_change;  /* SKY_ENOTFOUND when no row changed */
    union {
        sky__store_done_cb done;
        sky__store_value_cb value;
        sky__store_count_cb count;
        sky__store_totals_cb totals;
        sky__store_keys_cb keys;
    } cb;
    void *ud;
};

typedef struct sky__pg sky__pg;

typedef enum { PG_DOWN, PG_CONNECTING, PG_READY, PG_BUSY } pg_conn_state;

typedef struct sky__pg_conn {
    sky__pg *pg;
    PGconn *conn;
    uv_poll_t *poll; /* on PQsocket; closed (and freed) with the connection */
    int fd;
    pg_conn_state state;
    unsigned prepared; /* bit per sky__pg_stmt */
    sky__pg_op *op;    /* in flight */
    int preparing;     /* the op's statement is being prepared first */
    int unstaged;      /* no skyio_sums here (the setup was refused): sums through the view */
    PGresult *result;  /* the op's first result */
    uint64_t last_attempt;
} sky__pg_conn;

struct sky__pg {
    sky__store *store;
    sky__pg_conn *conns;
    size_t nconns;
    sky__pg_op *q_head, *q_tail; /* waiting for a connection */
    int opened;                  /* the schema is migrated */
    int closing;
    int handles;      /* handles not yet closed (the polls, the watchdog) */
    uv_timer_t watch; /* gives up on a connect that does not end */
};

/* postgres_ops.c */
const char *sky__pg_sql(sky__pg_stmt id);
/* The prepared statement's name; NULL: a plain query. */
const char *sky__pg_name(sky__pg_stmt id);
int sky__pg_nparams(sky__pg_stmt id);
/* Call the op's callback with @p res (may be NULL) or @p err, then free the op. */
void sky__pg_deliver(sky__pg *pg, sky__pg_op *op, const PGresult *res, const sky_error *err);
/* Free an op that never ran, calling its callback later with @p err. */
void sky__pg_fail_later(sky__pg *pg, sky__pg_op *op, const sky_error *err);
void sky__pg_op_free(sky__pg_op *op);
sky__pg_op *sky__pg_op_new(sky__pg_stmt stmt, pg_op_kind kind, void *ud);
/* Copy @p v into parameter @p i (NULL stays NULL); 0 or SKY_ENOMEM. */
int sky__pg_param(sky__pg_op *op, int i, const char *v);
int sky__pg_param_int(sky__pg_op *op, int i, int64_t v);

/* postgres.c */
void sky__pg_submit(sky__pg *pg, sky__pg_op *op);
/* The schema is migrated (err->code 0) or could not be. */
void sky__pg_opened(sky__pg *pg, const sky_error *err);

/* postgres_usage.c */
void sky__pg_usage_write(sky__store *s, const sky__store_usage *recs, size_t n,
                         sky__store_done_cb cb, void *ud);
/* Send @p op's sums through version 3's view instead of skyio_sums; 0 or SKY_ENOMEM. */
int sky__pg_usage_unstage(sky__pg_op *op);
/* postgres_ops.c: the backend's other operations. */
void sky__pg_usage_totals(sky__store *s, const char *key_name, const char *since_day,
                          sky__store_totals_cb cb, void *ud);
void sky__pg_doc_put(sky__store *s, const char *scope, const char *id, sky_span doc,
                     sky__store_done_cb cb, void *ud);
void sky__pg_doc_get(sky__store *s, const char *scope, const char *id, sky__store_value_cb cb,
                     void *ud);
void sky__pg_doc_delete(sky__store *s, const char *scope, const char *id, sky__store_done_cb cb,
                        void *ud);
void sky__pg_key_put(sky__store *s, const sky__store_key *key, sky__store_done_cb cb, void *ud);
void sky__pg_key_list(sky__store *s, sky__store_keys_cb cb, void *ud);
void sky__pg_key_revoke(sky__store *s, const char *name, sky__store_done_cb cb, void *ud);
void sky__pg_counter_add(sky__store *s, const char *name, int64_t delta, uint64_t ttl_ms,
                         sky__store_count_cb cb, void *ud);

#endif
