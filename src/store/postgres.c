/*
 * The PostgreSQL store: a small pool of connections driven by the caller's loop through
 * libpq's asynchronous API. Each connection is watched by a uv_poll on PQsocket: connecting
 * with PQconnectStart / PQconnectPoll, then one operation at a time, its statement prepared
 * on that connection the first time (PQsendPrepare) and run with PQsendQueryPrepared, every
 * value a bound parameter; a usage batch is a query of COPYs, its rows sent as their data,
 * after the connection's setup for it (a temporary table and a prepared statement) once.
 * Operations wait in a queue for a free connection.
 *
 * A server that is down at open fails the open. One that goes away later fails the calls
 * in flight and queued with SKY_ECONNECT (the usage queue keeps its records and tries again)
 * and is connected again at most every reconnect_interval_ms, on the next call.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "postgres_internal.h"
#include "skyio/log.h"

static void conn_watch(sky__pg_conn *c, int events);
static void pump(sky__pg *pg);

/* libpq's message, on one line, without the trailing newline. */
static void pq_message(const char *msg, char *out, size_t len)
{
    snprintf(out, len, "%s", msg ? msg : "");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
}

static void conn_error(sky__pg_conn *c, sky_error *err, const char *what)
{
    char msg[200];
    pq_message(c->conn ? PQerrorMessage(c->conn) : "out of memory", msg, sizeof(msg));
    sky_error_set(err, SKY_ECONNECT, "postgres at %s: %s: %s", c->pg->store->safe_url, what, msg);
}

/* Closing: the last handle gone, the store may go. */
static void release(sky__pg *pg)
{
    sky__store *s = pg->store;
    free(pg);
    s->impl = NULL;
    sky__store_backend_closed(s);
}

static void handle_gone(sky__pg *pg)
{
    if (--pg->handles == 0 && pg->closing)
        release(pg);
}

static void on_poll_closed(uv_handle_t *h)
{
    sky__pg *pg = h->data;
    free(h);
    handle_gone(pg);
}

static void on_watch_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

static void stop_poll(sky__pg_conn *c)
{
    if (!c->poll)
        return;
    c->poll->data = c->pg;
    uv_close((uv_handle_t *)c->poll, on_poll_closed);
    c->poll = NULL;
}

/* Fail everything waiting for a connection. */
static void fail_queue(sky__pg *pg, const sky_error *err)
{
    sky__pg_op *op = pg->q_head;
    pg->q_head = pg->q_tail = NULL;
    while (op) {
        sky__pg_op *next = op->next;
        sky__pg_fail_later(pg, op, err);
        op = next;
    }
}

static int any_conn(const sky__pg *pg, pg_conn_state st)
{
    for (size_t i = 0; i < pg->nconns; i++)
        if (pg->conns[i].state == st)
            return 1;
    return 0;
}

/* The connection is gone: its op fails with @p err; so does the queue if no other is left. */
static void conn_drop(sky__pg_conn *c, const sky_error *err)
{
    sky__pg *pg = c->pg;
    stop_poll(c);
    if (c->result)
        PQclear(c->result);
    c->result = NULL;
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
    c->state = PG_DOWN;
    c->prepared = 0;
    c->unstaged = 0;
    sky__pg_op *op = c->op;
    c->op = NULL;
    if (op)
        sky__pg_deliver(pg, op, NULL, err);
    if (!any_conn(pg, PG_READY) && !any_conn(pg, PG_BUSY) && !any_conn(pg, PG_CONNECTING))
        fail_queue(pg, err);
}

static void conn_lost(sky__pg_conn *c, const char *what)
{
    sky_error err;
    sky_error_clear(&err);
    conn_error(c, &err, what);
    conn_drop(c, &err);
}

/* ---- running one op */

/* Send what libpq holds; watch for writable while some is left. */
static void flush_step(sky__pg_conn *c, const char *what)
{
    int f = PQflush(c->conn);
    if (f < 0)
        conn_lost(c, what);
    else
        conn_watch(c, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

static void send_step(sky__pg_conn *c)
{
    sky__pg_op *op = c->op;
    const char *name = sky__pg_name(op->stmt);
    int ok;
    if (op->stmt == PQ_MIGRATE) {
        ok = PQsendQuery(c->conn, sky__pg_sql(op->stmt));
    } else if (!(c->prepared & (1u << op->stmt))) {
        /* prepared first, or (a plain query's) the connection's setup for it run first */
        c->preparing = 1;
        ok = name ? PQsendPrepare(c->conn, name, sky__pg_sql(op->stmt), sky__pg_nparams(op->stmt),
                                  NULL)
                  : PQsendQuery(c->conn, sky__pg_sql(op->stmt));
    } else if (!name) {
        c->preparing = 0;
        ok = !(c->unstaged && op->staged_at && sky__pg_usage_unstage(op)) &&
             PQsendQuery(c->conn, op->copy_sql);
    } else {
        c->preparing = 0;
        ok = PQsendQueryPrepared(c->conn, name, op->nparams, (const char *const *)op->params, NULL,
                                 NULL, 0);
    }
    if (!ok) {
        conn_lost(c, "sending a query");
        return;
    }
    flush_step(c, "sending a query");
}

/* The server waits for the data of the op's next COPY: all of it, then its end (a COPY
 * the op has no data for is refused, failing the whole query). In nonblocking mode libpq
 * grows its buffer rather than refuse (0 only when it cannot). */
static void copy_step(sky__pg_conn *c)
{
    sky__pg_op *op = c->op;
    size_t i = op->copies_sent++;
    int ok;
    if (i >= op->copies) {
        ok = PQputCopyEnd(c->conn, "skyio has no data for this COPY") == 1;
    } else {
        size_t from = i ? op->copy_ends[i - 1] : 0, n = op->copy_ends[i] - from;
        ok = n <= INT_MAX && PQputCopyData(c->conn, op->params[0] + from, (int)n) == 1 &&
             PQputCopyEnd(c->conn, NULL) == 1;
    }
    if (!ok) {
        conn_lost(c, "sending COPY data");
        return;
    }
    flush_step(c, "sending COPY data");
}

static void run_op(sky__pg_conn *c, sky__pg_op *op)
{
    c->op = op;
    c->state = PG_BUSY;
    c->preparing = 0;
    send_step(c);
}

/* The usage batches' setup (a temporary table) refused, by a role without the TEMPORARY
 * privilege: the connection's batches send their sums through version 3's view. */
static int setup_refused(sky__pg_conn *c, const PGresult *res)
{
    if (c->op->stmt != PQ_USAGE_COPY || !res || PQstatus(c->conn) != CONNECTION_OK)
        return 0;
    char msg[200];
    pq_message(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), msg, sizeof(msg));
    SKY_WARN("store", "postgres at %s: %s: usage sums go through a trigger a group",
             c->pg->store->safe_url, msg);
    c->unstaged = 1;
    return 1;
}

/* Every result of the step is in: prepare done (run the query) or the op done. */
static void step_done(sky__pg_conn *c)
{
    PGresult *res = c->result;
    c->result = NULL;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (c->preparing && (ok || setup_refused(c, res))) {
        PQclear(res);
        c->prepared |= 1u << c->op->stmt;
        send_step(c);
        return;
    }
    sky__pg_op *op = c->op;
    c->op = NULL;
    c->state = PG_READY;
    sky_error err;
    sky_error_clear(&err);
    if (!ok) {
        char msg[200];
        pq_message(res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(c->conn),
                   msg, sizeof(msg));
        int gone = PQstatus(c->conn) != CONNECTION_OK;
        sky_error_set(&err, gone ? SKY_ECONNECT : SKY_EIO, "postgres at %s: %s",
                      c->pg->store->safe_url, msg);
    }
    sky__pg *pg = c->pg;
    sky__pg_deliver(pg, op, ok ? res : NULL, &err);
    if (res)
        PQclear(res);
    if (pg->closing) /* closed from the callback: c is gone */
        return;
    if (c->conn && PQstatus(c->conn) != CONNECTION_OK)
        conn_lost(c, "connection lost");
    pump(pg);
}

/* Read what arrived; keep the first result of the step, finish it on the last. */
static void conn_read(sky__pg_conn *c)
{
    if (!PQconsumeInput(c->conn)) {
        conn_lost(c, "connection lost");
        return;
    }
    while (c->state == PG_BUSY && !PQisBusy(c->conn)) {
        PGresult *res = PQgetResult(c->conn);
        if (!res) {
            step_done(c);
            return;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN) {
            PQclear(res);
            copy_step(c);
            continue;
        }
        int keep = !c->result ||
                   (st == PGRES_FATAL_ERROR && PQresultStatus(c->result) != PGRES_FATAL_ERROR);
        if (keep) {
            if (c->result)
                PQclear(c->result);
            c->result = res;
        } else {
            PQclear(res);
        }
    }
    if (c->state == PG_READY && PQstatus(c->conn) != CONNECTION_OK)
        conn_lost(c, "connection lost");
}

/* ---- connecting */

static void connect_poll(sky__pg_conn *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING:
        conn_watch(c, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        conn_watch(c, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        PQsetnonblocking(c->conn, 1);
        c->state = PG_READY;
        conn_watch(c, UV_READABLE);
        pump(c->pg);
        break;
    default:
        conn_lost(c, "could not connect");
        break;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sky__pg_conn *c = h->data;
    if (status < 0 && c->state != PG_CONNECTING) {
        conn_lost(c, uv_strerror(status));
        return;
    }
    if (c->state == PG_CONNECTING) {
        /* an error too (libuv's EBADF for POLLERR): libpq reads the socket's own (refused)
         * into its message, or tries the host's next address */
        connect_poll(c);
        return;
    }
    if ((events & UV_WRITABLE) && c->state == PG_BUSY) {
        flush_step(c, "sending a query");
        if (c->state != PG_BUSY)
            return;
    }
    if (events & UV_READABLE)
        conn_read(c);
}

/* Watch PQsocket for @p events; a new socket (libpq may change it while connecting) gets a
 * new poll handle. */
static void conn_watch(sky__pg_conn *c, int events)
{
    int fd = PQsocket(c->conn);
    if (c->poll && fd != c->fd)
        stop_poll(c);
    if (!c->poll) {
        c->poll = malloc(sizeof(*c->poll));
        if (!c->poll || uv_poll_init(c->pg->store->loop, c->poll, fd) != 0) {
            free(c->poll);
            c->poll = NULL;
            conn_lost(c, "watching the socket");
            return;
        }
        c->pg->handles++;
        c->poll->data = c;
        c->fd = fd;
    }
    uv_poll_start(c->poll, events, on_poll);
}

/* The server's notices ("already exists, skipping") go to the debug log, not stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char msg[200];
    pq_message(message, msg, sizeof(msg));
    SKY_DEBUG("store", "postgres: %s", msg);
}

static void conn_start(sky__pg_conn *c)
{
    c->last_attempt = uv_now(c->pg->store->loop);
    c->conn = PQconnectStart(c->pg->store->url);
    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
        conn_lost(c, "could not connect");
        return;
    }
    PQsetNoticeProcessor(c->conn, on_notice, NULL);
    c->state = PG_CONNECTING;
    conn_watch(c, UV_WRITABLE);
}

/* ---- the queue */

/* Give queued ops to ready connections; connect a down one when nothing else can serve. */
static void pump(sky__pg *pg)
{
    for (size_t i = 0; i < pg->nconns && pg->q_head; i++) {
        sky__pg_conn *c = &pg->conns[i];
        if (c->state != PG_READY)
            continue;
        sky__pg_op *op = pg->q_head;
        pg->q_head = op->next;
        if (!pg->q_head)
            pg->q_tail = NULL;
        op->next = NULL;
        run_op(c, op);
    }
    if (!pg->q_head || any_conn(pg, PG_CONNECTING))
        return;
    uint64_t now = uv_now(pg->store->loop);
    for (size_t i = 0; i < pg->nconns; i++) {
        sky__pg_conn *c = &pg->conns[i];
        if (c->state == PG_DOWN &&
            (!c->last_attempt || now - c->last_attempt >= pg->store->opts.reconnect_interval_ms)) {
            conn_start(c);
            return;
        }
    }
    if (!any_conn(pg, PG_READY) && !any_conn(pg, PG_BUSY)) {
        sky_error err;
        sky_error_clear(&err);
        sky_error_set(&err, SKY_ECONNECT, "postgres at %s: unreachable; retrying",
                      pg->store->safe_url);
        fail_queue(pg, &err);
    }
}

void sky__pg_submit(sky__pg *pg, sky__pg_op *op)
{
    if (pg->q_tail)
        pg->q_tail->next = op;
    else
        pg->q_head = op;
    pg->q_tail = op;
    pump(pg);
}

/* ---- open and close */

/* libpq leaves a connect's time limit to the caller in its asynchronous API: a server
 * that never answers (a black-holed address) is given up after this long. */
#define PG_CONNECT_TIMEOUT_MS 5000

static void on_watch(uv_timer_t *t)
{
    sky__pg *pg = t->data;
    uint64_t now = uv_now(pg->store->loop);
    for (size_t i = 0; i < pg->nconns && !pg->closing; i++) {
        sky__pg_conn *c = &pg->conns[i];
        if (c->state == PG_CONNECTING && now - c->last_attempt >= PG_CONNECT_TIMEOUT_MS)
            conn_lost(c, "connect timed out");
    }
}

static int pg_open(sky__store *s, sky_error *err)
{
    sky__pg *pg = calloc(1, sizeof(*pg));
    sky__pg_op *op = sky__pg_op_new(PQ_MIGRATE, PG_OP_OPEN, NULL);
    if (pg)
        pg->conns = calloc(s->opts.pool_size, sizeof(*pg->conns));
    if (!pg || !pg->conns || !op) {
        free(pg ? pg->conns : NULL);
        free(pg);
        sky__pg_op_free(op);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    pg->store = s;
    pg->nconns = s->opts.pool_size;
    for (size_t i = 0; i < pg->nconns; i++)
        pg->conns[i].pg = pg;
    s->impl = pg;
    uv_timer_init(s->loop, &pg->watch);
    pg->watch.data = pg;
    pg->handles++;
    uv_timer_start(&pg->watch, on_watch, 500, 500);
    uv_unref((uv_handle_t *)&pg->watch);
    sky__pg_submit(pg, op);
    return 0;
}

static void pg_close(sky__store *s)
{
    sky__pg *pg = s->impl;
    pg->closing = 1;
    sky_error err;
    sky_error_clear(&err);
    sky_error_set(&err, SKY_ECANCELED, "store closed");
    fail_queue(pg, &err);
    for (size_t i = 0; i < pg->nconns; i++)
        if (pg->conns[i].state != PG_DOWN)
            conn_drop(&pg->conns[i], &err);
    free(pg->conns);
    pg->conns = NULL;
    pg->nconns = 0;
    uv_close((uv_handle_t *)&pg->watch, on_watch_closed); /* the last handle frees pg */
}

void sky__pg_opened(sky__pg *pg, const sky_error *err)
{
    pg->opened = !err->code;
    sky__store_opened(pg->store, err);
}

const sky__store_vt sky__store_postgres_vt = {
    .name = "postgres",
    .caps = SKY__STORE_USAGE | SKY__STORE_CONV | SKY__STORE_KEYS | SKY__STORE_COUNTERS,
    .open = pg_open,
    .usage_write = sky__pg_usage_write,
    .usage_totals = sky__pg_usage_totals,
    .doc_put = sky__pg_doc_put,
    .doc_get = sky__pg_doc_get,
    .doc_delete = sky__pg_doc_delete,
    .key_put = sky__pg_key_put,
    .key_list = sky__pg_key_list,
    .key_revoke = sky__pg_key_revoke,
    .counter_add = sky__pg_counter_add,
    .close = pg_close,
};
