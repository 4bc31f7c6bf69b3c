/*
 * A usage batch for PostgreSQL: one COPY skyio_usage FROM STDIN, the batch's rows its data
 * in COPY's text format, one statement, atomic (the rollup's trigger runs in it), written
 * straight into one buffer. COPY rather than an INSERT of unnest()ed arrays: the server
 * reads each field with its type's input function, without parsing ten array literals
 * first, and inserts the rows in bulk (heap_multi_insert, one WAL record a page's worth);
 * the server's CPU a record was most of what a record cost the machine.
 *
 * Text format (PostgreSQL's COPY documentation): a row a line, its columns separated by
 * tabs; in a text value a backslash, a tab, a newline or a carriage return is written as
 * \\, \t, \n or \r, so a value is always itself (no column holds SQL NULL).
 */
#include <stdio.h>
#include <stdlib.h>

#include "postgres_internal.h"
#include "skyio/buf.h"

/* A batch of at most usage_batch_max records of short strings: far below this. */
#define COPY_CAP ((size_t)64 << 20)

static int put_text(sky_buf *b, const char *s)
{
    int rc = 0;
    for (const char *run = s; rc == 0 && *s; run = s) {
        while (*s && *s != '\\' && *s != '\t' && *s != '\n' && *s != '\r')
            s++;
        rc = sky_buf_append(b, run, (size_t)(s - run));
        if (rc == 0 && *s) {
            char c = *s++;
            char esc[2] = {'\\', c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : c};
            rc = sky_buf_append(b, esc, 2);
        }
    }
    return rc;
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

static int put_tab(sky_buf *b)
{
    return sky_buf_append(b, "\t", 1);
}

/* Record @p r as one line of COPY data. */
static int put_record(sky_buf *b, const sky__store_usage *r, const char *day)
{
    int rc = put_int(b, r->time_ms) | put_tab(b) | put_text(b, day) | put_tab(b);
    rc |= put_text(b, r->key_name) | put_tab(b) | put_text(b, r->model) | put_tab(b);
    rc |= put_text(b, r->deployment) | put_tab(b) | put_int(b, r->status) | put_tab(b);
    rc |= put_int(b, r->tokens_in) | put_tab(b) | put_int(b, r->tokens_out) | put_tab(b);
    rc |= put_int(b, r->latency_us) | put_tab(b) | put_real(b, r->cost);
    return rc | sky_buf_append(b, "\n", 1);
}

/* The op's COPY data (params[0]): every record of @p recs; 0 or SKY_ENOMEM. */
static int copy_data(sky__pg_op *op, const sky__store_usage *recs, size_t n)
{
    sky_buf b;
    sky__store_day_cache days = {0};
    int rc = 0;
    sky_buf_init(&b, COPY_CAP);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = put_record(&b, &recs[i], sky__store_day_of(&days, recs[i].time_ms));
    if (rc == 0)
        op->params[0] = sky_buf_detach(&b, NULL);
    sky_buf_free(&b);
    return rc || op->params[0] == NULL ? SKY_ENOMEM : 0;
}

void sky__pg_usage_write(sky__store *s, const sky__store_usage *recs, size_t n,
                         sky__store_done_cb cb, void *ud)
{
    sky__pg_op *op = sky__pg_op_new(PQ_USAGE_COPY, PG_OP_DONE, ud);
    sky_error e;
    sky_error_clear(&e);
    if (op == NULL) {
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        sky__store_fail_done(s, cb, ud, &e);
        return;
    }
    op->cb.done = cb;
    if (copy_data(op, recs, n) == 0) {
        sky__pg_submit(s->impl, op);
        return;
    }
    sky_error_set(&e, SKY_ENOMEM, "out of memory");
    sky__pg_fail_later(s->impl, op, &e);
}
