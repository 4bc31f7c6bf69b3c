/*
 * A usage batch for PostgreSQL: one prepared INSERT whose ten parameters are the batch's
 * columns as arrays, expanded by unnest into rows, so the batch is one statement, atomic,
 * one round trip. Arrays rather than a JSON document: the server reads an array element
 * with its type's input function and no key lookups, where json_to_recordset lexed every
 * record and looked each field up by name (most of the server's CPU per record in a
 * profile); and the client writes the literals straight into buffers, without building a
 * jansson tree first.
 *
 * Array literals (PostgreSQL's documented input syntax): {e1,e2,...}; a text element is
 * always double-quoted, with '"' and '\' preceded by a backslash, so that an empty string
 * or the word NULL stays a string.
 */
#include <stdio.h>
#include <stdlib.h>

#include "postgres_internal.h"
#include "skyio/buf.h"

enum {
    COL_TIME,
    COL_DAY,
    COL_KEY,
    COL_MODEL,
    COL_DEPLOYMENT,
    COL_STATUS,
    COL_TOKENS_IN,
    COL_TOKENS_OUT,
    COL_LATENCY,
    COL_COST,
    COL__COUNT
};

/* A batch of at most usage_batch_max records of short strings: far below this. */
#define COL_CAP ((size_t)64 << 20)

static int put_text(sky_buf *b, const char *s)
{
    int rc = sky_buf_append(b, "\"", 1);
    for (const char *run = s; rc == 0 && *s; run = s) {
        while (*s && *s != '"' && *s != '\\')
            s++;
        rc = sky_buf_append(b, run, (size_t)(s - run));
        if (rc == 0 && *s) {
            char esc[2] = {'\\', *s++};
            rc = sky_buf_append(b, esc, 2);
        }
    }
    return rc ? rc : sky_buf_append(b, "\"", 1);
}

/* Decimal digits by hand: snprintf's format parsing was most of a record's client CPU. */
static int put_int(sky_buf *b, int64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return sky_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* %.17g gives back the same double (the JSON form before wrote it so too); an unpriced
 * call's 0 needs no formatting. */
static int put_real(sky_buf *b, double v)
{
    if (v == 0)
        return sky_buf_append(b, "0", 1);
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    return sky_buf_append(b, tmp, (size_t)n);
}

/* Record @p r's ten values, each after a comma unless it is the first record. */
static int put_record(sky_buf *cols, const sky__store_usage *r, const char *day, int first)
{
    int rc = 0;
    if (!first)
        for (int c = 0; rc == 0 && c < COL__COUNT; c++)
            rc = sky_buf_append(&cols[c], ",", 1);
    if (rc)
        return rc;
    return put_int(&cols[COL_TIME], r->time_ms) | put_text(&cols[COL_DAY], day) |
           put_text(&cols[COL_KEY], r->key_name) | put_text(&cols[COL_MODEL], r->model) |
           put_text(&cols[COL_DEPLOYMENT], r->deployment) | put_int(&cols[COL_STATUS], r->status) |
           put_int(&cols[COL_TOKENS_IN], r->tokens_in) |
           put_int(&cols[COL_TOKENS_OUT], r->tokens_out) |
           put_int(&cols[COL_LATENCY], r->latency_us) | put_real(&cols[COL_COST], r->cost);
}

/* The op's parameters: each column of @p recs as an array literal; 0 or SKY_ENOMEM. */
static int columns(sky__pg_op *op, const sky__store_usage *recs, size_t n)
{
    sky_buf cols[COL__COUNT];
    sky__store_day_cache days = {0};
    int rc = 0;
    for (int c = 0; c < COL__COUNT; c++) {
        sky_buf_init(&cols[c], COL_CAP);
        rc |= sky_buf_append(&cols[c], "{", 1);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = put_record(cols, &recs[i], sky__store_day_of(&days, recs[i].time_ms), i == 0);
    for (int c = 0; c < COL__COUNT; c++) {
        if (rc == 0 && sky_buf_append(&cols[c], "}", 1) == 0)
            op->params[c] = sky_buf_detach(&cols[c], NULL);
        rc |= rc == 0 && op->params[c] == NULL;
        sky_buf_free(&cols[c]);
    }
    return rc ? SKY_ENOMEM : 0;
}

void sky__pg_usage_write(sky__store *s, const sky__store_usage *recs, size_t n,
                         sky__store_done_cb cb, void *ud)
{
    sky__pg_op *op = sky__pg_op_new(PQ_USAGE_INSERT, PG_OP_DONE, ud);
    sky_error e;
    sky_error_clear(&e);
    if (op == NULL) {
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        sky__store_fail_done(s, cb, ud, &e);
        return;
    }
    op->cb.done = cb;
    if (columns(op, recs, n) == 0) {
        sky__pg_submit(s->impl, op);
        return;
    }
    sky_error_set(&e, SKY_ENOMEM, "out of memory");
    sky__pg_fail_later(s->impl, op, &e);
}
