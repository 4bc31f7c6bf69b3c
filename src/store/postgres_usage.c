/*
 * A usage batch for PostgreSQL: one simple query of several COPY ... FROM STDIN in the
 * binary format, which the server runs as one implicit transaction (all of it or none):
 * the batch's rows into skyio_usage, COPY_ROWS to a COPY, then the batch's sums by day, key
 * and model into skyio_sums, the connection's temporary table (emptied at each commit),
 * and one prepared statement that adds them all to skyio_usage_daily (postgres_ops.c: the
 * connection's setup before its first batch). The gateway sums the batch (a handful of
 * groups) so the server does not: the statement trigger over the batch's transition table
 * that did it cost as much as the row itself, and version 3's view, whose INSTEAD OF
 * trigger upserts one group at a time, ~100k instructions a group (~40k this way).
 *
 * COPY rather than an INSERT of arrays: the server inserts the rows in bulk
 * (heap_multi_insert) without parsing arrays first; binary rather than text: each field is
 * its length and its bytes (numbers in network order, float8 as its IEEE bits), so neither
 * side formats or parses a digit and no string needs escaping. COPY_ROWS: COPY makes a
 * tuple slot for each row it buffers, and PostgreSQL 15's resource owner keeps the slots'
 * (identical) tuple descriptor references in a hash past 64 of them, where each lookup
 * walks all the others: 512 rows in one COPY cost twice the instructions a row of 128 (the
 * figures: bench/RESULTS.md). Each COPY is a round trip (libpq sends a COPY's data once the
 * server asks for it).
 *
 * The format (PostgreSQL's COPY documentation): the signature "PGCOPY\n\377\r\n\0", a
 * 32-bit flags field and a 32-bit header extension length (both 0); each tuple a 16-bit
 * field count, then each field's 32-bit length and its bytes; a 16-bit -1 after the last.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_internal.h"
#include "skyio/buf.h"

/* A batch of at most usage_batch_max records of short strings: far below this. */
#define COPY_CAP ((size_t)64 << 20)
/* Rows a COPY (see above). */
#define COPY_ROWS 128

/* The binary format's header: signature, flags, header extension length. */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

/* The statements, their columns in the order the tuples hold them. */
static const char rows_sql[] = "COPY skyio_usage(time_ms, key_name, model, deployment, status,"
                               " tokens_in, tokens_out, latency_us, cost) FROM STDIN"
                               " WITH (FORMAT binary);";
static const char sums_sql[] = "COPY skyio_sums(day, key_name, model, requests, errors,"
                               " tokens_in, tokens_out, cost) FROM STDIN WITH (FORMAT binary);"
                               "EXECUTE skyio_sums_add";
/* A batch with a group whose names are longer than this goes through version 3's view (a
 * plpgsql upsert a group) instead: skyio_sums keeps its strings in the row (no TOAST table,
 * which its emptying at each commit would rebuild), and a row must fit in a page of 8 kB. */
#define SUMS_NAMES_MAX 4000
static const char view_sql[] = "COPY skyio_usage_daily_add(day, key_name, model, requests,"
                               " errors, tokens_in, tokens_out, cost) FROM STDIN"
                               " WITH (FORMAT binary)";

/* Integers in network byte order, as every length and number of the format (a byte swap
 * and a store each); returns the position after them. */
static unsigned char *be2(unsigned char *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, sizeof(v));
    return p + sizeof(v);
}

static unsigned char *be4(unsigned char *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, sizeof(v));
    return p + sizeof(v);
}

/* An int4 field: its length, then its value; an int8 or float8 field. */
static unsigned char *put_int4(unsigned char *p, uint32_t v)
{
    return be4(be4(p, 4), v);
}

static unsigned char *put_int8(unsigned char *p, uint64_t v)
{
    v = htobe64(v);
    p = be4(p, 8);
    memcpy(p, &v, sizeof(v));
    return p + sizeof(v);
}

static unsigned char *put_text(unsigned char *p, const char *s, size_t n)
{
    p = be4(p, (uint32_t)n);
    memcpy(p, s, n);
    return p + n;
}

static uint64_t float_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

/* A tuple's bytes besides its three strings': the field count, the int8 time, each
 * string's length, the int4 status and the four int8 / float8 numbers. */
#define ROW_FIXED (2 + (4 + 8) + 3 * 4 + (4 + 4) + 4 * (4 + 8))
/* A sum's: the field count, three strings' lengths, five int8 / float8 numbers. */
#define SUM_FIXED (2 + 3 * 4 + 5 * (4 + 8))

/* Record @p r as one tuple: nine fields, in the columns' order of rows_sql, written in
 * place after one reservation (appending field by field was most of the client's work). */
static int put_record(sky_buf *b, const sky__store_usage *r)
{
    size_t kl = strlen(r->key_name), ml = strlen(r->model), pl = strlen(r->deployment);
    size_t n = ROW_FIXED + kl + ml + pl;
    if (kl > INT32_MAX || ml > INT32_MAX || pl > INT32_MAX)
        return SKY_ETOOBIG;
    int rc = sky_buf_reserve(b, n);
    if (rc)
        return rc;
    unsigned char *p = (unsigned char *)b->data + b->len;
    p = be2(p, 9);
    p = put_int8(p, (uint64_t)r->time_ms);
    p = put_text(p, r->key_name, kl);
    p = put_text(p, r->model, ml);
    p = put_text(p, r->deployment, pl);
    p = put_int4(p, (uint32_t)r->status);
    p = put_int8(p, (uint64_t)r->tokens_in);
    p = put_int8(p, (uint64_t)r->tokens_out);
    p = put_int8(p, (uint64_t)r->latency_us);
    put_int8(p, float_bits(r->cost));
    b->len += n;
    return 0;
}

/* ---- the batch's sums by day, key and model */

typedef struct pg_sum {
    char day[11];
    const char *key_name, *model; /* the batch's, borrowed */
    int64_t requests, errors, tokens_in, tokens_out;
    double cost;
} pg_sum;

/* The groups, in (day, key, model) order, the bytes' order: two gateways' batches lock the
 * rows they share in the same order. */
typedef struct pg_sums {
    pg_sum *v;
    size_t n, last; /* last: the group found last (a batch is mostly one) */
} pg_sums;

static int sum_cmp(const pg_sum *g, const char *day, const sky__store_usage *r)
{
    int c = strcmp(g->day, day);
    c = c ? c : strcmp(g->key_name, r->key_name);
    return c ? c : strcmp(g->model, r->model);
}

/* The sum of @p r's group on @p day: found by a binary search, else made in its place. */
static pg_sum *sum_of(pg_sums *s, const char *day, const sky__store_usage *r)
{
    if (s->n && sum_cmp(&s->v[s->last], day, r) == 0)
        return &s->v[s->last];
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = sum_cmp(&s->v[mid], day, r);
        if (c == 0)
            return &s->v[s->last = mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(&s->v[lo + 1], &s->v[lo], (s->n - lo) * sizeof(*s->v));
    pg_sum *g = &s->v[lo];
    memset(g, 0, sizeof(*g));
    strncpy(g->day, day, sizeof(g->day) - 1);
    g->key_name = r->key_name;
    g->model = r->model;
    s->n++;
    s->last = lo;
    return g;
}

/* Sum @p n records (s->v has room for n groups). */
static void sum_batch(pg_sums *s, const sky__store_usage *recs, size_t n)
{
    sky__store_day_cache days = {0};
    for (size_t i = 0; i < n; i++) {
        const sky__store_usage *r = &recs[i];
        pg_sum *g = sum_of(s, sky__store_day_of(&days, r->time_ms), r);
        g->requests++;
        g->errors += r->status >= 400;
        g->tokens_in += r->tokens_in;
        g->tokens_out += r->tokens_out;
        g->cost += r->cost;
    }
}

/* Sum @p g as one tuple: eight fields, in the columns' order of sums_sql. */
static int put_sum(sky_buf *b, const pg_sum *g)
{
    size_t dl = strlen(g->day), kl = strlen(g->key_name), ml = strlen(g->model);
    size_t n = SUM_FIXED + dl + kl + ml;
    int rc = sky_buf_reserve(b, n);
    if (rc)
        return rc;
    unsigned char *p = (unsigned char *)b->data + b->len;
    p = be2(p, 8);
    p = put_text(p, g->day, dl);
    p = put_text(p, g->key_name, kl);
    p = put_text(p, g->model, ml);
    p = put_int8(p, (uint64_t)g->requests);
    p = put_int8(p, (uint64_t)g->errors);
    p = put_int8(p, (uint64_t)g->tokens_in);
    p = put_int8(p, (uint64_t)g->tokens_out);
    put_int8(p, float_bits(g->cost));
    b->len += n;
    return 0;
}

/* ---- the op */

/* COPY @p i's data ends here; its trailer (-1 as a tuple's field count) appended. */
static int end_copy(sky__pg_op *op, sky_buf *b, size_t i)
{
    int rc = sky_buf_append(b, "\377\377", 2);
    op->copy_ends[i] = b->len;
    return rc;
}

/* The rows' COPYs, then the sums', into @p b; 0 or an error code. */
static int copy_data(sky__pg_op *op, sky_buf *b, const sky__store_usage *recs, size_t n,
                     const pg_sums *s)
{
    int rc = 0;
    size_t i = 0, c = 0;
    for (; rc == 0 && i < n; i++) {
        if (i % COPY_ROWS == 0)
            rc = sky_buf_append(b, copy_header, sizeof(copy_header));
        rc = rc ? rc : put_record(b, &recs[i]);
        if (rc == 0 && (i + 1 == n || (i + 1) % COPY_ROWS == 0))
            rc = end_copy(op, b, c++);
    }
    rc = rc ? rc : sky_buf_append(b, copy_header, sizeof(copy_header));
    for (size_t g = 0; rc == 0 && g < s->n; g++)
        rc = put_sum(b, &s->v[g]);
    return rc ? rc : end_copy(op, b, c);
}

/* The statement the sums go to: skyio_sums, unless a group's names are too long for it, or
 * the batch has at most three groups: the view's trigger calls then cost less than the
 * upsert statement's executor and the table's emptying (the server's instructions a batch
 * through skyio_sums: ~130k more, ~40k a group instead of ~80k; three or four groups cost
 * about the same either way; bench/RESULTS.md). */
static const char *sums_statement(const pg_sums *s, size_t *len)
{
    int staged = s->n >= 4;
    for (size_t g = 0; staged && g < s->n; g++)
        staged = strlen(s->v[g].key_name) + strlen(s->v[g].model) <= SUMS_NAMES_MAX;
    *len = staged ? sizeof(sums_sql) : sizeof(view_sql);
    return staged ? sums_sql : view_sql;
}

/* The op's query (copies - 1 of rows_sql, then the sums' statement) and its COPYs' data
 * (params[0], copy_len bytes, COPY i's ending at copy_ends[i]); 0 or an error code. */
static int batch_op(sky__pg_op *op, const sky__store_usage *recs, size_t n)
{
    size_t rows = (n + COPY_ROWS - 1) / COPY_ROWS, sl = sizeof(rows_sql) - 1, tl;
    pg_sums s = {malloc((n ? n : 1) * sizeof(*s.v)), 0, 0};
    if (!s.v)
        return SKY_ENOMEM;
    sum_batch(&s, recs, n);
    const char *tail = sums_statement(&s, &tl);
    op->copies = rows + 1;
    op->copy_ends = calloc(op->copies, sizeof(*op->copy_ends));
    op->copy_sql = malloc(rows * sl + tl);
    if (!op->copy_ends || !op->copy_sql) {
        free(s.v);
        return SKY_ENOMEM;
    }
    for (size_t i = 0; i < rows; i++)
        memcpy(op->copy_sql + i * sl, rows_sql, sl);
    memcpy(op->copy_sql + rows * sl, tail, tl);
    op->staged_at = tail == sums_sql ? rows * sl : 0;
    sky_buf b;
    sky_buf_init(&b, COPY_CAP);
    int rc = copy_data(op, &b, recs, n, &s);
    if (rc == 0)
        op->params[0] = sky_buf_detach(&b, &op->copy_len);
    sky_buf_free(&b);
    free(s.v);
    return rc ? rc : op->params[0] == NULL ? SKY_ENOMEM : 0;
}

int sky__pg_usage_unstage(sky__pg_op *op)
{
    size_t at = op->staged_at;
    char *sql = realloc(op->copy_sql, at + sizeof(view_sql));
    if (!sql)
        return SKY_ENOMEM;
    memcpy(sql + at, view_sql, sizeof(view_sql));
    op->copy_sql = sql;
    op->staged_at = 0;
    return 0;
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
    int rc = batch_op(op, recs, n);
    if (rc == 0) {
        sky__pg_submit(s->impl, op);
        return;
    }
    sky_error_set(&e, rc,
                  rc == SKY_ETOOBIG ? "a usage record's name is too long" : "out of memory");
    sky__pg_fail_later(s->impl, op, &e);
}
