/*
 * The PostgreSQL store's statements and operations: the schema (versioned, migrated at
 * open under an advisory lock so two gateways starting together do not race), the SQL of
 * each prepared statement, and each operation's parameters and results. A usage batch is a
 * query of COPYs: the batch's rows and its sums (postgres_usage.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "postgres_internal.h"

/*
 * Version 4: a batch's records are packed, a row of skyio_usage_packed per (day, key, model,
 * deployment) group of at most 80 records, holding arrays of their time, status, tokens in
 * and out, latency and cost (element i of each array is record i); SQL users read them one
 * a row through the view skyio_usage, the nine columns the issue lists (time, key, model,
 * deployment, status, tokens in and out, latency, cost), unnested. A row is about 3.7 kB:
 * the table's toast_tuple_target keeps it as it is (past the default of 2 kB PostgreSQL
 * compressed each array: 31k instructions a record against 2.2k), and storage EXTERNAL
 * moves a longer row's arrays (long names) out of line uncompressed. No index.
 * Version 3's rows (a row a record, the same nine columns) stay where they are, the table
 * renamed skyio_usage_rows (a change of the catalog, no copy under the migration's lock);
 * the view is the union of both, and its INSTEAD OF INSERT trigger puts a row written into
 * it there: a version 3 gateway still running while another migrates keeps its records.
 * skyio_usage_daily holds the sums by (day, key, model) that the totals read, added by the
 * gateway with each batch of records in the batch's own transaction: through each
 * connection's temporary skyio_sums and one prepared upsert (sums_setup_sql, below; not
 * part of the schema), or, for a group with names too long for that table and for a batch
 * of few sums, through skyio_usage_daily_add, a view whose INSTEAD OF trigger upserts each
 * sum (postgres_usage.c).
 * Version 2 had a statement trigger sum each batch's rows (its transition table) instead,
 * and each row an id from a sequence and its day's text; version 1 indexed the rows by id
 * and by (day, key, model) and had no sums. Both are migrated with their rows and totals:
 * version 1's rows summed into the new table, the indexes, trigger and columns dropped
 * (dropping a column is a change of the catalog: the rows stay where they are). A later
 * version appends "IF v < 5 THEN ... END IF;".
 */
static const char migrate_sql[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(727165);"
    "CREATE TABLE IF NOT EXISTS skyio_schema(version integer NOT NULL);"
    "INSERT INTO skyio_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM skyio_schema);"
    "DO $$ DECLARE v integer; BEGIN"
    " SELECT version INTO v FROM skyio_schema;"
    " IF v > 4 THEN RAISE EXCEPTION 'schema version % is newer than this skyio''s (4)', v;"
    " END IF;"
    " IF v < 1 THEN"
    "  CREATE TABLE skyio_usage(time_ms bigint NOT NULL, key_name text NOT NULL,"
    "   model text NOT NULL, deployment text NOT NULL, status integer NOT NULL,"
    "   tokens_in bigint NOT NULL, tokens_out bigint NOT NULL, latency_us bigint NOT NULL,"
    "   cost double precision NOT NULL);"
    "  CREATE TABLE skyio_docs(scope text NOT NULL, id text NOT NULL, doc text NOT NULL,"
    "   updated_ms bigint NOT NULL, PRIMARY KEY(scope, id));"
    "  CREATE TABLE skyio_keys(name text PRIMARY KEY, hash text NOT NULL,"
    "   config text NOT NULL, created_ms bigint NOT NULL,"
    "   revoked boolean NOT NULL DEFAULT false);"
    "  CREATE TABLE skyio_counters(name text PRIMARY KEY, value bigint NOT NULL,"
    "   expires_ms bigint NOT NULL);"
    " END IF;"
    " IF v < 2 THEN"
    "  CREATE TABLE skyio_usage_daily(day text NOT NULL, key_name text NOT NULL,"
    "   model text NOT NULL, requests bigint NOT NULL, errors bigint NOT NULL,"
    "   tokens_in bigint NOT NULL, tokens_out bigint NOT NULL,"
    "   cost double precision NOT NULL, PRIMARY KEY(day, key_name, model));"
    " END IF;"
    " IF v = 1 THEN"
    "  INSERT INTO skyio_usage_daily SELECT day, key_name, model, count(*),"
    "   count(*) FILTER (WHERE status >= 400), sum(tokens_in), sum(tokens_out), sum(cost)"
    "   FROM skyio_usage GROUP BY day, key_name, model;"
    "  DROP INDEX skyio_usage_by_day;"
    "  ALTER TABLE skyio_usage DROP CONSTRAINT skyio_usage_pkey;"
    " END IF;"
    " IF v IN (1, 2) THEN"
    "  DROP TRIGGER IF EXISTS skyio_usage_roll ON skyio_usage;"
    "  DROP FUNCTION IF EXISTS skyio_usage_roll();"
    "  ALTER TABLE skyio_usage DROP COLUMN id, DROP COLUMN day;" /* and id's sequence */
    " END IF;"
    " IF v < 3 THEN"
    "  CREATE VIEW skyio_usage_daily_add AS SELECT * FROM skyio_usage_daily WHERE false;"
    "  CREATE FUNCTION skyio_usage_add() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    "   INSERT INTO skyio_usage_daily AS d VALUES (NEW.day, NEW.key_name, NEW.model,"
    "    NEW.requests, NEW.errors, NEW.tokens_in, NEW.tokens_out, NEW.cost)"
    "   ON CONFLICT (day, key_name, model) DO UPDATE SET"
    "    requests = d.requests + EXCLUDED.requests, errors = d.errors + EXCLUDED.errors,"
    "    tokens_in = d.tokens_in + EXCLUDED.tokens_in,"
    "    tokens_out = d.tokens_out + EXCLUDED.tokens_out, cost = d.cost + EXCLUDED.cost;"
    "   RETURN NULL; END $f$;"
    "  CREATE TRIGGER skyio_usage_add INSTEAD OF INSERT ON skyio_usage_daily_add"
    "   FOR EACH ROW EXECUTE FUNCTION skyio_usage_add();"
    "  UPDATE skyio_schema SET version = 3;"
    " END IF;"
    " IF v < 4 THEN"
    "  ALTER TABLE skyio_usage RENAME TO skyio_usage_rows;"
    "  CREATE TABLE skyio_usage_packed(key_name text NOT NULL, model text NOT NULL,"
    "   deployment text NOT NULL, time_ms bigint[] NOT NULL, status integer[] NOT NULL,"
    "   tokens_in bigint[] NOT NULL, tokens_out bigint[] NOT NULL,"
    "   latency_us bigint[] NOT NULL, cost double precision[] NOT NULL)"
    "   WITH (toast_tuple_target = 8160);"
    "  ALTER TABLE skyio_usage_packed ALTER time_ms SET STORAGE EXTERNAL,"
    "   ALTER status SET STORAGE EXTERNAL, ALTER tokens_in SET STORAGE EXTERNAL,"
    "   ALTER tokens_out SET STORAGE EXTERNAL, ALTER latency_us SET STORAGE EXTERNAL,"
    "   ALTER cost SET STORAGE EXTERNAL;"
    "  CREATE VIEW skyio_usage AS SELECT * FROM skyio_usage_rows UNION ALL"
    "   SELECT u.time_ms, p.key_name, p.model, p.deployment, u.status, u.tokens_in,"
    "    u.tokens_out, u.latency_us, u.cost FROM skyio_usage_packed p,"
    "    unnest(p.time_ms, p.status, p.tokens_in, p.tokens_out, p.latency_us, p.cost)"
    "    AS u(time_ms, status, tokens_in, tokens_out, latency_us, cost);"
    "  CREATE FUNCTION skyio_usage_insert() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    "   INSERT INTO skyio_usage_rows VALUES (NEW.*); RETURN NEW; END $f$;"
    "  CREATE TRIGGER skyio_usage_insert INSTEAD OF INSERT ON skyio_usage"
    "   FOR EACH ROW EXECUTE FUNCTION skyio_usage_insert();"
    "  UPDATE skyio_schema SET version = 4;"
    " END IF; END $$;"
    "COMMIT;";

/*
 * A connection's setup before its first usage batch (not a schema change: nothing is kept
 * after the session). skyio_sums, a temporary table emptied at each commit, takes a batch's
 * sums by its COPY, and skyio_sums_add, prepared once, adds them all to skyio_usage_daily in
 * one statement (an INSTEAD OF trigger ran a plpgsql call and an INSERT's executor a group).
 * The table has no TOAST table (its strings are stored PLAIN, in the row: a table gets a
 * TOAST table when made only if a column may be moved out of its row, hence the shape
 * table it is made LIKE): emptying a table at commit rebuilds its TOAST table's index,
 * 300k instructions a batch. postgres_usage.c sends a group with longer names than fit
 * in a page to version 3's view instead.
 * The groups are upserted in their bytes' order, the order the trigger of version 3's view
 * saw them in too: two gateways, old or new, lock the rows they share in the same order.
 */
static const char sums_setup_sql[] =
    "CREATE TEMPORARY TABLE skyio_sums_shape(day text NOT NULL, key_name text NOT NULL,"
    " model text NOT NULL, requests bigint NOT NULL, errors bigint NOT NULL,"
    " tokens_in bigint NOT NULL, tokens_out bigint NOT NULL, cost double precision NOT NULL);"
    "ALTER TABLE skyio_sums_shape ALTER day SET STORAGE PLAIN,"
    " ALTER key_name SET STORAGE PLAIN, ALTER model SET STORAGE PLAIN;"
    "CREATE TEMPORARY TABLE skyio_sums(LIKE skyio_sums_shape INCLUDING STORAGE)"
    " ON COMMIT DELETE ROWS;"
    "DROP TABLE skyio_sums_shape;"
    "PREPARE skyio_sums_add AS INSERT INTO skyio_usage_daily AS d"
    " SELECT * FROM skyio_sums"
    " ORDER BY day COLLATE \"C\", key_name COLLATE \"C\", model COLLATE \"C\""
    " ON CONFLICT (day, key_name, model) DO UPDATE SET"
    " requests = d.requests + EXCLUDED.requests, errors = d.errors + EXCLUDED.errors,"
    " tokens_in = d.tokens_in + EXCLUDED.tokens_in,"
    " tokens_out = d.tokens_out + EXCLUDED.tokens_out, cost = d.cost + EXCLUDED.cost;";

static const struct {
    const char *name;
    int nparams;
    const char *sql;
} stmts[PQ__COUNT] = {
    /* not prepared: the op's own query of COPYs, the records their data (postgres_usage.c);
     * this is the connection's setup for it, sent before its first batch there */
    [PQ_USAGE_COPY] = {NULL, 0, sums_setup_sql},
    [PQ_USAGE_TOTALS] = {"skyio_usage_totals", 2,
                         "SELECT day, key_name, model, requests, errors, tokens_in,"
                         " tokens_out, cost FROM skyio_usage_daily"
                         " WHERE ($1::text IS NULL OR key_name = $1::text)"
                         " AND ($2::text IS NULL OR day >= $2::text)"
                         " ORDER BY day, key_name, model"},
    [PQ_DOC_PUT] = {"skyio_doc_put", 4,
                    "INSERT INTO skyio_docs(scope, id, doc, updated_ms) VALUES($1, $2, $3, $4)"
                    " ON CONFLICT(scope, id) DO UPDATE SET doc = EXCLUDED.doc,"
                    " updated_ms = EXCLUDED.updated_ms"},
    [PQ_DOC_GET] = {"skyio_doc_get", 2, "SELECT doc FROM skyio_docs WHERE scope = $1 AND id = $2"},
    [PQ_DOC_DELETE] = {"skyio_doc_delete", 2,
                       "DELETE FROM skyio_docs WHERE scope = $1 AND id = $2"},
    [PQ_KEY_PUT] = {"skyio_key_put", 4,
                    "INSERT INTO skyio_keys(name, hash, config, created_ms, revoked)"
                    " VALUES($1, $2, $3, $4, false) ON CONFLICT(name) DO UPDATE SET"
                    " hash = EXCLUDED.hash, config = EXCLUDED.config,"
                    " created_ms = EXCLUDED.created_ms, revoked = false"},
    [PQ_KEY_LIST] = {"skyio_key_list", 0,
                     "SELECT name, hash, config, created_ms, revoked FROM skyio_keys"
                     " ORDER BY name"},
    [PQ_KEY_REVOKE] = {"skyio_key_revoke", 1,
                       "UPDATE skyio_keys SET revoked = true WHERE name = $1"},
    [PQ_COUNTER_ADD] = {"skyio_counter_add", 4,
                        "INSERT INTO skyio_counters AS c(name, value, expires_ms)"
                        " VALUES($1, $2, $3) ON CONFLICT(name) DO UPDATE SET"
                        " value = CASE WHEN c.expires_ms > 0 AND c.expires_ms <= $4"
                        " THEN EXCLUDED.value ELSE c.value + EXCLUDED.value END,"
                        " expires_ms = CASE WHEN c.expires_ms > 0 AND c.expires_ms <= $4"
                        " THEN EXCLUDED.expires_ms ELSE c.expires_ms END RETURNING value"},
};

const char *sky__pg_sql(sky__pg_stmt id)
{
    return id == PQ_MIGRATE ? migrate_sql : stmts[id].sql;
}

const char *sky__pg_name(sky__pg_stmt id)
{
    return id == PQ_MIGRATE ? NULL : stmts[id].name;
}

int sky__pg_nparams(sky__pg_stmt id)
{
    return stmts[id].nparams;
}

/* ---- ops */

sky__pg_op *sky__pg_op_new(sky__pg_stmt stmt, pg_op_kind kind, void *ud)
{
    sky__pg_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->stmt = stmt;
    op->kind = kind;
    op->ud = ud;
    op->nparams = stmt == PQ_MIGRATE ? 0 : stmts[stmt].nparams;
    return op;
}

void sky__pg_op_free(sky__pg_op *op)
{
    if (!op)
        return;
    for (int i = 0; i < SKY__PG_MAX_PARAMS; i++)
        free(op->params[i]);
    free(op->copy_sql);
    free(op->copy_ends);
    free(op);
}

int sky__pg_param(sky__pg_op *op, int i, const char *v)
{
    if (v && !(op->params[i] = strdup(v)))
        return SKY_ENOMEM;
    return 0;
}

int sky__pg_param_int(sky__pg_op *op, int i, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return sky__pg_param(op, i, buf);
}

/* ---- results */

static void deliver_totals(sky__pg_op *op, const PGresult *res, const sky_error *err)
{
    size_t n = res ? (size_t)PQntuples(res) : 0;
    sky__store_usage_total *rows = n ? calloc(n, sizeof(*rows)) : NULL;
    sky_error e = *err;
    if (n && !rows) {
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        int r = (int)i;
        rows[i].day = PQgetvalue(res, r, 0);
        rows[i].key_name = PQgetvalue(res, r, 1);
        rows[i].model = PQgetvalue(res, r, 2);
        rows[i].requests = strtoll(PQgetvalue(res, r, 3), NULL, 10);
        rows[i].errors = strtoll(PQgetvalue(res, r, 4), NULL, 10);
        rows[i].tokens_in = strtoll(PQgetvalue(res, r, 5), NULL, 10);
        rows[i].tokens_out = strtoll(PQgetvalue(res, r, 6), NULL, 10);
        rows[i].cost = strtod(PQgetvalue(res, r, 7), NULL);
    }
    op->cb.totals(&e, rows, n, op->ud);
    free(rows);
}

static void deliver_keys(sky__pg_op *op, const PGresult *res, const sky_error *err)
{
    size_t n = res ? (size_t)PQntuples(res) : 0;
    sky__store_key *keys = n ? calloc(n, sizeof(*keys)) : NULL;
    sky_error e = *err;
    if (n && !keys) {
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        int r = (int)i;
        keys[i].name = PQgetvalue(res, r, 0);
        keys[i].hash = PQgetvalue(res, r, 1);
        keys[i].config = PQgetvalue(res, r, 2);
        keys[i].created_ms = strtoll(PQgetvalue(res, r, 3), NULL, 10);
        keys[i].revoked = PQgetvalue(res, r, 4)[0] == 't';
    }
    op->cb.keys(&e, keys, n, op->ud);
    free(keys);
}

static void deliver_value(sky__pg_op *op, const PGresult *res, const sky_error *err)
{
    sky_error e = *err;
    if (!e.code && PQntuples(res) == 0)
        sky_error_set(&e, SKY_ENOTFOUND, "no such entry");
    sky_span v = sky_span_make(NULL, 0);
    if (!e.code)
        v = sky_span_make(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    op->cb.value(&e, v, op->ud);
}

static void deliver_done(sky__pg_op *op, const PGresult *res, const sky_error *err)
{
    sky_error e = *err;
    if (!e.code && op->must_change &&
        strtol(PQcmdTuples((PGresult *)(uintptr_t)res), NULL, 10) == 0)
        sky_error_set(&e, SKY_ENOTFOUND, "no such entry");
    if (op->cb.done)
        op->cb.done(&e, op->ud);
}

void sky__pg_deliver(sky__pg *pg, sky__pg_op *op, const PGresult *res, const sky_error *err)
{
    switch (op->kind) {
    case PG_OP_OPEN:
        sky__pg_opened(pg, err);
        break;
    case PG_OP_DONE:
        deliver_done(op, res, err);
        break;
    case PG_OP_VALUE:
        deliver_value(op, res, err);
        break;
    case PG_OP_COUNT:
        op->cb.count(err, err->code ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10), op->ud);
        break;
    case PG_OP_TOTALS:
        deliver_totals(op, res, err);
        break;
    case PG_OP_KEYS:
        deliver_keys(op, res, err);
        break;
    }
    sky__pg_op_free(op);
}

static void open_failed_later(const sky_error *err, void *ud)
{
    sky__pg_op *op = ud;
    sky__pg *pg = op->ud;
    sky__pg_op_free(op);
    sky__pg_opened(pg, err);
}

void sky__pg_fail_later(sky__pg *pg, sky__pg_op *op, const sky_error *err)
{
    sky__store *s = pg->store;
    switch (op->kind) {
    case PG_OP_OPEN:
        op->ud = pg;
        sky__store_fail_done(s, open_failed_later, op, err);
        return;
    case PG_OP_DONE:
        sky__store_fail_done(s, op->cb.done, op->ud, err);
        break;
    case PG_OP_VALUE:
        sky__store_fail_value(s, op->cb.value, op->ud, err);
        break;
    case PG_OP_COUNT:
        sky__store_fail_count(s, op->cb.count, op->ud, err);
        break;
    case PG_OP_TOTALS:
        sky__store_fail_totals(s, op->cb.totals, op->ud, err);
        break;
    case PG_OP_KEYS:
        sky__store_fail_keys(s, op->cb.keys, op->ud, err);
        break;
    }
    sky__pg_op_free(op);
}

/* ---- the operations: parameters in, submitted */

/* Submit @p op when its parameters were copied (@p rc 0); otherwise fail it later. */
static void submit(sky__store *s, sky__pg_op *op, int rc)
{
    if (rc == 0) {
        sky__pg_submit(s->impl, op);
        return;
    }
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ENOMEM, "out of memory");
    sky__pg_fail_later(s->impl, op, &e);
}

/* A new op carrying @p cb, or the call failed (later) and the function returns. */
#define OP_OR_OOM(op, s, stmt, kind, member, cb, ud, failfn)                                       \
    sky__pg_op *op = sky__pg_op_new(stmt, kind, ud);                                               \
    if (!op) {                                                                                     \
        sky_error e_;                                                                              \
        sky_error_clear(&e_);                                                                      \
        sky_error_set(&e_, SKY_ENOMEM, "out of memory");                                           \
        failfn(s, cb, ud, &e_);                                                                    \
        return;                                                                                    \
    }                                                                                              \
    op->cb.member = cb

void sky__pg_usage_totals(sky__store *s, const char *key_name, const char *since_day,
                          sky__store_totals_cb cb, void *ud)
{
    OP_OR_OOM(op, s, PQ_USAGE_TOTALS, PG_OP_TOTALS, totals, cb, ud, sky__store_fail_totals);
    int rc = sky__pg_param(op, 0, key_name);
    submit(s, op, rc ? rc : sky__pg_param(op, 1, since_day));
}

void sky__pg_doc_put(sky__store *s, const char *scope, const char *id, sky_span doc,
                     sky__store_done_cb cb, void *ud)
{
    OP_OR_OOM(op, s, PQ_DOC_PUT, PG_OP_DONE, done, cb, ud, sky__store_fail_done);
    int rc = sky__pg_param(op, 0, scope) | sky__pg_param(op, 1, id) |
             sky__pg_param_int(op, 3, sky__store_now_ms());
    op->params[2] = malloc(doc.len + 1);
    if (op->params[2]) {
        if (doc.len)
            memcpy(op->params[2], doc.ptr, doc.len);
        op->params[2][doc.len] = '\0';
    }
    submit(s, op, rc || !op->params[2] ? SKY_ENOMEM : 0);
}

void sky__pg_doc_get(sky__store *s, const char *scope, const char *id, sky__store_value_cb cb,
                     void *ud)
{
    OP_OR_OOM(op, s, PQ_DOC_GET, PG_OP_VALUE, value, cb, ud, sky__store_fail_value);
    submit(s, op, sky__pg_param(op, 0, scope) | sky__pg_param(op, 1, id));
}

void sky__pg_doc_delete(sky__store *s, const char *scope, const char *id, sky__store_done_cb cb,
                        void *ud)
{
    OP_OR_OOM(op, s, PQ_DOC_DELETE, PG_OP_DONE, done, cb, ud, sky__store_fail_done);
    op->must_change = 1;
    submit(s, op, sky__pg_param(op, 0, scope) | sky__pg_param(op, 1, id));
}

void sky__pg_key_put(sky__store *s, const sky__store_key *key, sky__store_done_cb cb, void *ud)
{
    OP_OR_OOM(op, s, PQ_KEY_PUT, PG_OP_DONE, done, cb, ud, sky__store_fail_done);
    submit(s, op,
           sky__pg_param(op, 0, key->name ? key->name : "") |
               sky__pg_param(op, 1, key->hash ? key->hash : "") |
               sky__pg_param(op, 2, key->config ? key->config : "{}") |
               sky__pg_param_int(op, 3, key->created_ms));
}

void sky__pg_key_list(sky__store *s, sky__store_keys_cb cb, void *ud)
{
    OP_OR_OOM(op, s, PQ_KEY_LIST, PG_OP_KEYS, keys, cb, ud, sky__store_fail_keys);
    submit(s, op, 0);
}

void sky__pg_key_revoke(sky__store *s, const char *name, sky__store_done_cb cb, void *ud)
{
    OP_OR_OOM(op, s, PQ_KEY_REVOKE, PG_OP_DONE, done, cb, ud, sky__store_fail_done);
    op->must_change = 1;
    submit(s, op, sky__pg_param(op, 0, name));
}

void sky__pg_counter_add(sky__store *s, const char *name, int64_t delta, uint64_t ttl_ms,
                         sky__store_count_cb cb, void *ud)
{
    OP_OR_OOM(op, s, PQ_COUNTER_ADD, PG_OP_COUNT, count, cb, ud, sky__store_fail_count);
    int64_t now = sky__store_now_ms();
    submit(s, op,
           sky__pg_param(op, 0, name) | sky__pg_param_int(op, 1, delta) |
               sky__pg_param_int(op, 2, ttl_ms ? now + (int64_t)ttl_ms : 0) |
               sky__pg_param_int(op, 3, now));
}
