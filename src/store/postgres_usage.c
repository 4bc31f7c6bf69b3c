/*
 * A usage batch for PostgreSQL: one COPY skyio_usage FROM STDIN in the binary format, the
 * batch's rows its data, one statement, atomic (the rollup's trigger runs in it), written
 * straight into one buffer. COPY rather than an INSERT of unnest()ed arrays: the server
 * inserts the rows in bulk (heap_multi_insert) without parsing ten array literals first;
 * binary rather than text: each field is its length and its bytes (numbers in network
 * order, float8 as its IEEE bits), so neither side formats or parses a digit and no string
 * needs escaping. The server's CPU a record was most of what a record cost the machine
 * (bench/RESULTS.md).
 *
 * The format (PostgreSQL's COPY documentation): the signature "PGCOPY\n\377\r\n\0", a
 * 32-bit flags field and a 32-bit header extension length (both 0); each tuple a 16-bit
 * field count, then each field's 32-bit length and its bytes; a 16-bit -1 after the last.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_internal.h"
#include "skyio/buf.h"

/* A batch of at most usage_batch_max records of short strings: far below this. */
#define COPY_CAP ((size_t)64 << 20)

/* The binary format's header: signature, flags, header extension length. */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

/* Integers in network byte order, as every length and number of the format. */
static size_t be(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = n; i-- > 0; v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
    return n;
}

/* A field of @p n bytes (int4, int8 or float8): its length, then its value. */
static size_t put_num(unsigned char *p, uint64_t v, size_t n)
{
    size_t k = be(p, n, 4);
    return k + be(p + k, v, n);
}

static uint64_t float_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static int put_text(sky_buf *b, const char *s)
{
    size_t n = strlen(s);
    unsigned char len[4];
    if (n > INT32_MAX)
        return SKY_ETOOBIG;
    be(len, n, 4);
    int rc = sky_buf_append(b, len, 4);
    return rc ? rc : sky_buf_append(b, s, n);
}

/* Record @p r as one tuple: ten fields, in the columns' order of the COPY's list. */
static int put_record(sky_buf *b, const sky__store_usage *r, const char *day)
{
    unsigned char head[2 + (4 + 8)], tail[(4 + 4) + 4 * (4 + 8)]; /* the numbers around the text */
    size_t h = be(head, 10, 2);
    h += put_num(head + h, (uint64_t)r->time_ms, 8);
    size_t t = put_num(tail, (uint64_t)(uint32_t)r->status, 4);
    t += put_num(tail + t, (uint64_t)r->tokens_in, 8);
    t += put_num(tail + t, (uint64_t)r->tokens_out, 8);
    t += put_num(tail + t, (uint64_t)r->latency_us, 8);
    t += put_num(tail + t, float_bits(r->cost), 8);
    int rc = sky_buf_append(b, head, h);
    rc = rc ? rc : put_text(b, day);
    rc = rc ? rc : put_text(b, r->key_name);
    rc = rc ? rc : put_text(b, r->model);
    rc = rc ? rc : put_text(b, r->deployment);
    return rc ? rc : sky_buf_append(b, tail, t);
}

/* The op's COPY data (params[0], copy_len bytes): every record of @p recs between the
 * header and the trailer (-1 as a tuple's field count); 0 or an error code. */
static int copy_data(sky__pg_op *op, const sky__store_usage *recs, size_t n)
{
    sky_buf b;
    sky__store_day_cache days = {0};
    sky_buf_init(&b, COPY_CAP);
    int rc = sky_buf_append(&b, copy_header, sizeof(copy_header));
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = put_record(&b, &recs[i], sky__store_day_of(&days, recs[i].time_ms));
    rc = rc ? rc : sky_buf_append(&b, "\377\377", 2);
    if (rc == 0)
        op->params[0] = sky_buf_detach(&b, &op->copy_len);
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
