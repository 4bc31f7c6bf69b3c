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

/* Integers in network byte order, as every length and number of the format; returns the
 * position after them. */
static unsigned char *be(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = n; i-- > 0; v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
    return p + n;
}

/* A field of @p n bytes (int4, int8 or float8): its length, then its value. */
static unsigned char *put_num(unsigned char *p, uint64_t v, size_t n)
{
    return be(be(p, n, 4), v, n);
}

static unsigned char *put_text(unsigned char *p, const char *s, size_t n)
{
    p = be(p, n, 4);
    memcpy(p, s, n);
    return p + n;
}

static uint64_t float_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

/* A tuple's bytes besides its four strings': the field count, the int8 time, each
 * string's length, the int4 status and the four int8 / float8 numbers. */
#define TUPLE_FIXED (2 + (4 + 8) + 4 * 4 + (4 + 4) + 4 * (4 + 8))

/* Record @p r as one tuple: ten fields, in the columns' order of the COPY's list, written
 * in place after one reservation (appending field by field was most of the client's work). */
static int put_record(sky_buf *b, const sky__store_usage *r, const char *day)
{
    size_t dl = strlen(day), kl = strlen(r->key_name), ml = strlen(r->model);
    size_t pl = strlen(r->deployment), n = TUPLE_FIXED + dl + kl + ml + pl;
    if (kl > INT32_MAX || ml > INT32_MAX || pl > INT32_MAX)
        return SKY_ETOOBIG;
    int rc = sky_buf_reserve(b, n);
    if (rc)
        return rc;
    unsigned char *p = (unsigned char *)b->data + b->len;
    p = be(p, 10, 2);
    p = put_num(p, (uint64_t)r->time_ms, 8);
    p = put_text(p, day, dl);
    p = put_text(p, r->key_name, kl);
    p = put_text(p, r->model, ml);
    p = put_text(p, r->deployment, pl);
    p = put_num(p, (uint32_t)r->status, 4);
    p = put_num(p, (uint64_t)r->tokens_in, 8);
    p = put_num(p, (uint64_t)r->tokens_out, 8);
    p = put_num(p, (uint64_t)r->latency_us, 8);
    put_num(p, float_bits(r->cost), 8);
    b->len += n;
    return 0;
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
