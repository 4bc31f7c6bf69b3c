/*
 * A usage batch for PostgreSQL: one simple query of several COPY ... FROM STDIN in the
 * binary format, which the server runs as one implicit transaction (all of it or none):
 * the batch's records packed into skyio_usage_packed, a row per (day, key, model,
 * deployment) group of at most ROW_MAX records holding arrays of their other six values
 * (schema version 4: the view skyio_usage unpacks them, a row a record), COPY_ROWS rows to
 * a COPY; then the batch's sums by day, key and model into skyio_sums, the connection's
 * temporary table (emptied at each commit), and one prepared statement that adds them all
 * to skyio_usage_daily (postgres_ops.c: the connection's setup before its first batch).
 *
 * Packed: the server's work a record was a row's (COPY's per-row slot and tuple, nine
 * fields received, heap_multi_insert, a WAL record's header): 8.6k instructions a record
 * as a row of nine columns, about a fifth of that as six array elements (figures:
 * bench/RESULTS.md). A packed row stays within a page and under toast_tuple_target (set on
 * the table), so it is neither compressed nor moved out of line.
 * The gateway sums the batch (a handful of groups) so the server does not.
 *
 * Binary COPY: each field is its length and its bytes (numbers in network order, float8 as
 * its IEEE bits, an array its dimensions, element type and elements), so neither side
 * formats or parses a digit and no string needs escaping. Each COPY is a round trip
 * (libpq sends a COPY's data once the server asks for it).
 *
 * The format (PostgreSQL's COPY documentation): the signature "PGCOPY\n\377\r\n\0", a
 * 32-bit flags field and a 32-bit header extension length (both 0); each tuple a 16-bit
 * field count, then each field's 32-bit length and its bytes; a 16-bit -1 after the last.
 * An array field (array_recv): its dimensions (1), a has-nulls flag (0), the elements' type
 * OID, each dimension's size and lower bound (1), then each element as a field.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_internal.h"
#include "skyio/buf.h"

/* A batch of at most usage_batch_max records of short strings: far below this. */
#define COPY_CAP ((size_t)64 << 20)
/* Records a packed row at most: 44 bytes each in its arrays, so ~3.7 kB a row with short
 * names, two to a page, under the table's toast_tuple_target (postgres_ops.c). */
#ifndef ROW_MAX
#define ROW_MAX 80
#endif
/* Rows a COPY: COPY makes a tuple slot for each row it buffers, and PostgreSQL 15's resource
 * owner keeps the slots' (identical) tuple descriptor references in a hash past 64 of them,
 * where each lookup walks all the others (a batch of one-record groups: a row a record). */
#define COPY_ROWS 64

/* The element types' OIDs (PostgreSQL's fixed catalog: pg_type.dat). */
#define OID_INT8 20
#define OID_INT4 23
#define OID_FLOAT8 701

/* The binary format's header: signature, flags, header extension length. */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

/* The statements, their columns in the order the tuples hold them. */
static const char rows_sql[] = "COPY skyio_usage_packed(key_name, model, deployment, time_ms,"
                               " status, tokens_in, tokens_out, latency_us, cost) FROM STDIN"
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

/* ---- the batch's groups by day, key, model and deployment */

typedef struct pg_group {
    char day[11];
    const sky__store_usage *rec; /* its first record: the names, borrowed */
    int64_t requests, errors, tokens_in, tokens_out;
    double cost;
    size_t at, fill; /* its records' place in pg_batch.order, and how many are there */
} pg_group;

typedef struct pg_batch {
    pg_group *g;  /* in the order they were met (a group never moves) */
    uint32_t *by; /* the groups in (day, key, model, deployment) order, the bytes' order */
    uint32_t *of; /* each record's group */
    const sky__store_usage **order; /* the records, group by group in `by` order */
    size_t n, last;                 /* groups; last: the group found last (a batch is mostly one) */
} pg_batch;

static int group_cmp(const pg_group *g, const char *day, const sky__store_usage *r)
{
    int c = strcmp(g->day, day);
    c = c ? c : strcmp(g->rec->key_name, r->key_name);
    c = c ? c : strcmp(g->rec->model, r->model);
    return c ? c : strcmp(g->rec->deployment, r->deployment);
}

/* @p r's group on @p day: found by a binary search, else made and put in its place. */
static uint32_t group_of(pg_batch *b, const char *day, const sky__store_usage *r)
{
    if (b->n && group_cmp(&b->g[b->last], day, r) == 0)
        return (uint32_t)b->last;
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = group_cmp(&b->g[b->by[mid]], day, r);
        if (c == 0)
            return (uint32_t)(b->last = b->by[mid]);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(&b->by[lo + 1], &b->by[lo], (b->n - lo) * sizeof(*b->by));
    pg_group *g = &b->g[b->n];
    memset(g, 0, sizeof(*g));
    strncpy(g->day, day, sizeof(g->day) - 1);
    g->rec = r;
    b->by[lo] = (uint32_t)b->n;
    return (uint32_t)(b->last = b->n++);
}

/* Group and sum @p n records, then order them group by group. */
static void group_batch(pg_batch *b, const sky__store_usage *recs, size_t n)
{
    sky__store_day_cache days = {0};
    for (size_t i = 0; i < n; i++) {
        const sky__store_usage *r = &recs[i];
        pg_group *g = &b->g[b->of[i] = group_of(b, sky__store_day_of(&days, r->time_ms), r)];
        g->requests++;
        g->errors += r->status >= 400;
        g->tokens_in += r->tokens_in;
        g->tokens_out += r->tokens_out;
        g->cost += r->cost;
    }
    size_t at = 0;
    for (size_t k = 0; k < b->n; k++) {
        pg_group *g = &b->g[b->by[k]];
        g->at = at;
        at += (size_t)g->requests;
    }
    for (size_t i = 0; i < n; i++) {
        pg_group *g = &b->g[b->of[i]];
        b->order[g->at + g->fill++] = &recs[i];
    }
}

static int batch_init(pg_batch *b, size_t n)
{
    size_t m = n ? n : 1;
    memset(b, 0, sizeof(*b));
    b->g = malloc(m * sizeof(*b->g));
    b->by = malloc(m * sizeof(*b->by));
    b->of = malloc(m * sizeof(*b->of));
    b->order = malloc(m * sizeof(*b->order));
    return b->g && b->by && b->of && b->order ? 0 : SKY_ENOMEM;
}

static void batch_free(pg_batch *b)
{
    free(b->g);
    free(b->by);
    free(b->of);
    free(b->order);
}

/* The k'th group in order and the one after it are one sum (the same day, key and model). */
static int same_sum(const pg_batch *b, size_t k)
{
    const pg_group *g = &b->g[b->by[k]], *h = &b->g[b->by[k + 1]];
    return strcmp(g->day, h->day) == 0 && strcmp(g->rec->key_name, h->rec->key_name) == 0 &&
           strcmp(g->rec->model, h->rec->model) == 0;
}

/* ---- tuples */

/* A tuple's three names, after its field count; 0 or SKY_ETOOBIG. */
typedef struct pg_names {
    const char *s[3];
    size_t len[3];
} pg_names;

static int names_of(pg_names *nm, const char *a, const char *b, const char *c)
{
    nm->s[0] = a;
    nm->s[1] = b;
    nm->s[2] = c;
    for (int i = 0; i < 3; i++)
        if ((nm->len[i] = strlen(nm->s[i])) > INT32_MAX / 2)
            return SKY_ETOOBIG;
    return 0;
}

/* Reserve a tuple of @p fields fields, @p n bytes besides its names; write the field count
 * and the names. The position after them, or NULL (out of memory). */
static unsigned char *tuple_start(sky_buf *b, uint16_t fields, const pg_names *nm, size_t n)
{
    n += 2 + 3 * 4 + nm->len[0] + nm->len[1] + nm->len[2];
    if (sky_buf_reserve(b, n))
        return NULL;
    unsigned char *p = (unsigned char *)b->data + b->len;
    b->len += n;
    p = be2(p, fields);
    for (int i = 0; i < 3; i++)
        p = put_text(p, nm->s[i], nm->len[i]);
    return p;
}

/* An array field's length and header: one dimension of @p k elements of @p w bytes. */
#define ARRAY_HEAD 20
static unsigned char *array_head(unsigned char *p, uint32_t oid, size_t w, size_t k)
{
    p = be4(p, (uint32_t)(ARRAY_HEAD + k * (4 + w)));
    p = be4(p, 1);
    p = be4(p, 0);
    p = be4(p, oid);
    p = be4(p, (uint32_t)k);
    return be4(p, 1);
}

/* The bytes of a packed row of @p k records besides its names: six arrays' fields. */
#define ROW_BYTES(k) (6 * (4 + ARRAY_HEAD) + (k) * (5 * (4 + 8) + (4 + 4)))

/* An array field of @p k records' int8 (or float8: their bits) at @p off in a record. */
static unsigned char *array8(unsigned char *p, uint32_t oid, const sky__store_usage *const *r,
                             size_t k, size_t off)
{
    p = array_head(p, oid, 8, k);
    for (size_t j = 0; j < k; j++) {
        uint64_t v;
        memcpy(&v, (const char *)r[j] + off, sizeof(v));
        p = put_int8(p, v);
    }
    return p;
}

/* A packed row: the group's names, then the arrays of @p k records' values from @p r, in
 * the columns' order of rows_sql. */
static int put_row(sky_buf *b, const pg_group *g, const sky__store_usage *const *r, size_t k)
{
    pg_names nm;
    if (names_of(&nm, g->rec->key_name, g->rec->model, g->rec->deployment))
        return SKY_ETOOBIG;
    unsigned char *p = tuple_start(b, 9, &nm, ROW_BYTES(k));
    if (!p)
        return SKY_ENOMEM;
    p = array8(p, OID_INT8, r, k, offsetof(sky__store_usage, time_ms));
    p = array_head(p, OID_INT4, 4, k);
    for (size_t j = 0; j < k; j++)
        p = put_int4(p, (uint32_t)r[j]->status);
    p = array8(p, OID_INT8, r, k, offsetof(sky__store_usage, tokens_in));
    p = array8(p, OID_INT8, r, k, offsetof(sky__store_usage, tokens_out));
    p = array8(p, OID_INT8, r, k, offsetof(sky__store_usage, latency_us));
    array8(p, OID_FLOAT8, r, k, offsetof(sky__store_usage, cost));
    return 0;
}

/* A sum: the k'th group in order and those after it with the same day, key and model, as
 * one tuple of eight fields in the columns' order of sums_sql; the index of its last group. */
static size_t put_sum(sky_buf *b, const pg_batch *bt, size_t k, int *rc)
{
    const pg_group *g = &bt->g[bt->by[k]];
    int64_t v[4] = {g->requests, g->errors, g->tokens_in, g->tokens_out};
    double cost = g->cost;
    for (; k + 1 < bt->n && same_sum(bt, k); k++) {
        const pg_group *h = &bt->g[bt->by[k + 1]];
        v[0] += h->requests;
        v[1] += h->errors;
        v[2] += h->tokens_in;
        v[3] += h->tokens_out;
        cost += h->cost;
    }
    pg_names nm;
    unsigned char *p = NULL;
    *rc = names_of(&nm, g->day, g->rec->key_name, g->rec->model);
    if (*rc == 0 && !(p = tuple_start(b, 8, &nm, 5 * (4 + 8))))
        *rc = SKY_ENOMEM;
    for (int i = 0; p && i < 4; i++)
        p = put_int8(p, (uint64_t)v[i]);
    if (p)
        put_int8(p, float_bits(cost));
    return k;
}

/* ---- the op */

/* COPY @p i's data ends here; its trailer (-1 as a tuple's field count) appended. */
static int end_copy(sky__pg_op *op, sky_buf *b, size_t i)
{
    int rc = sky_buf_append(b, "\377\377", 2);
    op->copy_ends[i] = b->len;
    return rc;
}

/* The packed rows' COPYs, then the sums', into @p b; 0 or an error code. */
static int copy_data(sky__pg_op *op, sky_buf *b, const pg_batch *bt, size_t rows)
{
    int rc = 0;
    size_t row = 0, c = 0;
    for (size_t k = 0; rc == 0 && k < bt->n; k++) {
        const pg_group *g = &bt->g[bt->by[k]];
        for (size_t j = 0; rc == 0 && j < g->fill; j += ROW_MAX, row++) {
            if (row % COPY_ROWS == 0)
                rc = sky_buf_append(b, copy_header, sizeof(copy_header));
            size_t m = g->fill - j < ROW_MAX ? g->fill - j : ROW_MAX;
            rc = rc ? rc : put_row(b, g, bt->order + g->at + j, m);
            if (rc == 0 && (row + 1 == rows || (row + 1) % COPY_ROWS == 0))
                rc = end_copy(op, b, c++);
        }
    }
    rc = rc ? rc : sky_buf_append(b, copy_header, sizeof(copy_header));
    for (size_t k = 0; rc == 0 && k < bt->n; k++)
        k = put_sum(b, bt, k, &rc);
    return rc ? rc : end_copy(op, b, c);
}

/* The statement the sums go to: skyio_sums, unless a group's names are too long for it, or
 * the batch has at most three sums: the view's trigger calls then cost less than the upsert
 * statement's executor and the table's emptying (the server's instructions a batch through
 * skyio_sums: ~130k more, ~40k a sum instead of ~80k; three or four cost about the same
 * either way; bench/RESULTS.md). */
static const char *sums_statement(const pg_batch *b, size_t *len)
{
    size_t sums = b->n;
    int fits = 1;
    for (size_t k = 0; k < b->n; k++) {
        const pg_group *g = &b->g[b->by[k]];
        sums -= k + 1 < b->n && same_sum(b, k);
        fits = fits && strlen(g->rec->key_name) + strlen(g->rec->model) <= SUMS_NAMES_MAX;
    }
    int staged = fits && sums >= 4;
    *len = staged ? sizeof(sums_sql) : sizeof(view_sql);
    return staged ? sums_sql : view_sql;
}

/* Packed rows of the batch: each group's records, ROW_MAX to a row. */
static size_t rows_of(const pg_batch *b)
{
    size_t rows = 0;
    for (size_t k = 0; k < b->n; k++)
        rows += (b->g[k].fill + ROW_MAX - 1) / ROW_MAX;
    return rows;
}

/* The op's query (a rows_sql a COPY of rows, then the sums' statement) and its COPYs' data
 * (params[0], copy_len bytes, COPY i's ending at copy_ends[i]); 0 or an error code. */
static int batch_op(sky__pg_op *op, const pg_batch *bt)
{
    size_t rows = rows_of(bt), copies = (rows + COPY_ROWS - 1) / COPY_ROWS;
    size_t sl = sizeof(rows_sql) - 1, tl;
    const char *tail = sums_statement(bt, &tl);
    op->copies = copies + 1;
    op->copy_ends = calloc(op->copies, sizeof(*op->copy_ends));
    op->copy_sql = malloc(copies * sl + tl);
    if (!op->copy_ends || !op->copy_sql)
        return SKY_ENOMEM;
    for (size_t i = 0; i < copies; i++)
        memcpy(op->copy_sql + i * sl, rows_sql, sl);
    memcpy(op->copy_sql + copies * sl, tail, tl);
    op->staged_at = tail == sums_sql ? copies * sl : 0;
    sky_buf b;
    sky_buf_init(&b, COPY_CAP);
    int rc = copy_data(op, &b, bt, rows);
    if (rc == 0)
        op->params[0] = sky_buf_detach(&b, &op->copy_len);
    sky_buf_free(&b);
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
    pg_batch bt;
    int rc = batch_init(&bt, n);
    if (rc == 0) {
        group_batch(&bt, recs, n);
        rc = batch_op(op, &bt);
    }
    batch_free(&bt);
    if (rc == 0) {
        sky__pg_submit(s->impl, op);
        return;
    }
    sky_error_set(&e, rc,
                  rc == SKY_ETOOBIG ? "a usage record's name is too long" : "out of memory");
    sky__pg_fail_later(s->impl, op, &e);
}
