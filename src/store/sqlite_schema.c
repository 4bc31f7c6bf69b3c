/*
 * The SQLite file: opened in WAL mode, its schema versioned by PRAGMA user_version and
 * migrated step by step on open, and the SQL text of every statement (all values bound).
 */
#include <stdio.h>

#include "sqlite_internal.h"

/* Migration i takes the schema from version i to i + 1. Append; never edit one. */
static const char *const migrations[] = {
    "CREATE TABLE cache(key TEXT PRIMARY KEY, value BLOB NOT NULL, size INTEGER NOT NULL,"
    " stored_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);"
    "CREATE INDEX cache_by_age ON cache(stored_ms);"
    "CREATE INDEX cache_by_expiry ON cache(expires_ms) WHERE expires_ms > 0;"
    "CREATE TABLE usage(id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, day TEXT NOT NULL,"
    " key_name TEXT NOT NULL, model TEXT NOT NULL, deployment TEXT NOT NULL,"
    " status INTEGER NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,"
    " latency_us INTEGER NOT NULL, cost REAL NOT NULL);"
    "CREATE INDEX usage_by_day ON usage(day, key_name, model);"
    "CREATE TABLE docs(scope TEXT NOT NULL, id TEXT NOT NULL, doc BLOB NOT NULL,"
    " updated_ms INTEGER NOT NULL, PRIMARY KEY(scope, id));"
    "CREATE TABLE keys(name TEXT PRIMARY KEY, hash TEXT NOT NULL, config TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL);",
    /* 2: the records' totals by day, key and model kept in usage_daily, added to with each
     * batch's sums, and read instead of the records; the index on every record (two B-tree
     * inserts a record instead of one, most of a record's cost) goes. */
    "CREATE TABLE usage_daily(day TEXT NOT NULL, key_name TEXT NOT NULL, model TEXT NOT NULL,"
    " requests INTEGER NOT NULL, errors INTEGER NOT NULL, tokens_in INTEGER NOT NULL,"
    " tokens_out INTEGER NOT NULL, cost REAL NOT NULL,"
    " PRIMARY KEY(day, key_name, model)) WITHOUT ROWID;"
    "INSERT INTO usage_daily SELECT day, key_name, model, COUNT(*), SUM(status >= 400),"
    " SUM(tokens_in), SUM(tokens_out), SUM(cost) FROM usage GROUP BY day, key_name, model;"
    "DROP INDEX usage_by_day;",
};

static const char *const sql[Q__COUNT] = {
    [Q_SAVEPOINT] = "SAVEPOINT job",
    [Q_RELEASE] = "RELEASE job",
    [Q_ROLLBACK_TO] = "ROLLBACK TO job",
    [Q_CACHE_GET] =
        "SELECT value FROM cache WHERE key = ?1 AND (expires_ms = 0 OR expires_ms > ?2)",
    [Q_CACHE_EXPIRE] = "DELETE FROM cache WHERE expires_ms > 0 AND expires_ms <= ?1 RETURNING size",
    [Q_CACHE_OLD_SIZE] = "SELECT size FROM cache WHERE key = ?1",
    [Q_CACHE_PUT] = "INSERT OR REPLACE INTO cache(key, value, size, stored_ms, expires_ms)"
                    " VALUES(?1, ?2, ?3, ?4, ?5)",
    [Q_CACHE_EVICT] = "DELETE FROM cache WHERE key = (SELECT key FROM cache"
                      " ORDER BY stored_ms, rowid LIMIT 1) RETURNING size",
    [Q_USAGE_INSERT] = "INSERT INTO usage(time_ms, day, key_name, model, deployment, status,"
                       " tokens_in, tokens_out, latency_us, cost) SELECT time_ms, day, key_name,"
                       " model, deployment, status, tokens_in, tokens_out, latency_us, cost"
                       " FROM skyio_usage_rows",
    [Q_USAGE_ADD] = "INSERT INTO usage_daily(day, key_name, model, requests, errors, tokens_in,"
                    " tokens_out, cost) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    " ON CONFLICT(day, key_name, model) DO UPDATE SET"
                    " requests = requests + excluded.requests, errors = errors + excluded.errors,"
                    " tokens_in = tokens_in + excluded.tokens_in,"
                    " tokens_out = tokens_out + excluded.tokens_out, cost = cost + excluded.cost",
    [Q_USAGE_TOTALS] = "SELECT day, key_name, model, requests, errors, tokens_in, tokens_out, cost"
                       " FROM usage_daily"
                       " WHERE (?1 IS NULL OR key_name = ?1) AND (?2 IS NULL OR day >= ?2)"
                       " ORDER BY day, key_name, model",
    [Q_DOC_PUT] = "INSERT INTO docs(scope, id, doc, updated_ms) VALUES(?1, ?2, ?3, ?4)"
                  " ON CONFLICT(scope, id) DO UPDATE SET doc = excluded.doc,"
                  " updated_ms = excluded.updated_ms",
    [Q_DOC_GET] = "SELECT doc FROM docs WHERE scope = ?1 AND id = ?2",
    [Q_DOC_DELETE] = "DELETE FROM docs WHERE scope = ?1 AND id = ?2",
    [Q_KEY_PUT] = "INSERT INTO keys(name, hash, config, created_ms, revoked)"
                  " VALUES(?1, ?2, ?3, ?4, 0) ON CONFLICT(name) DO UPDATE SET"
                  " hash = excluded.hash, config = excluded.config,"
                  " created_ms = excluded.created_ms, revoked = 0",
    [Q_KEY_LIST] = "SELECT name, hash, config, created_ms, revoked FROM keys ORDER BY name",
    [Q_KEY_REVOKE] = "UPDATE keys SET revoked = 1 WHERE name = ?1",
    [Q_COUNTER_EXPIRE] = "DELETE FROM counters WHERE name = ?1 AND expires_ms > 0"
                         " AND expires_ms <= ?2",
    [Q_COUNTER_ADD] = "INSERT INTO counters(name, value, expires_ms) VALUES(?1, ?2, ?3)"
                      " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
                      " RETURNING value",
};

const char *sky__sqlite_sql(sky__sqlite_q id)
{
    return sql[id];
}

static int user_version(sky__sqlite *q, int *out, sky_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? rc : sky__sqlite_fail(q, err, rc, "reading the schema version");
}

/* One migration and its new version number, in one transaction; none when another
 * connection (a second gateway on the file) migrated first: the version is read again under
 * the write lock. */
static int migrate_one(sky__sqlite *q, int from, sky_error *err)
{
    char setver[64];
    snprintf(setver, sizeof(setver), "PRAGMA user_version = %d", from + 1);
    int now = from;
    int rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK && (rc = user_version(q, &now, err)) != SQLITE_OK) {
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        return rc; /* err set */
    }
    if (rc == SQLITE_OK && now == from)
        rc = sqlite3_exec(q->db, migrations[from], NULL, NULL, NULL);
    if (rc == SQLITE_OK && now == from)
        rc = sqlite3_exec(q->db, setver, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return rc;
    sky__sqlite_fail(q, err, rc, "migrating the schema");
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int migrate(sky__sqlite *q, sky_error *err)
{
    const int latest = (int)SKY_ARRAY_LEN(migrations);
    for (;;) {
        int v = 0;
        int rc = user_version(q, &v, err);
        if (rc != SQLITE_OK)
            return rc;
        if (v > latest) {
            sky_error_set(err, SKY_EIO, "%s: schema version %d is newer than this skyio's (%d)",
                          q->path, v, latest);
            return SQLITE_ERROR;
        }
        if (v == latest)
            return SQLITE_OK;
        if ((rc = migrate_one(q, v, err)) != SQLITE_OK)
            return rc;
    }
}

static int cache_size(sky__sqlite *q, sky_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "SELECT COALESCE(SUM(size), 0) FROM cache", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        q->cache_bytes = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? rc : sky__sqlite_fail(q, err, rc, "reading the cache size");
}

/* WAL keeps readers and the writer apart; NORMAL syncs at checkpoints, which WAL makes safe
 * against corruption (a power cut may lose the last transactions, never the file). */
static int set_wal(sky__sqlite *q, sky_error *err)
{
    int rc = sqlite3_exec(q->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(q->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    return rc == SQLITE_OK ? rc : sky__sqlite_fail(q, err, rc, "opening");
}

int sky__sqlite_open_db(sky__sqlite *q, sky_error *err)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(q->path, &q->db, flags, NULL);
    if (rc != SQLITE_OK) {
        sky__sqlite_fail(q, err, rc, "opening");
        sqlite3_close(q->db);
        q->db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(q->db, 2000);
    if ((rc = sky__sqlite_rows_register(q)) != SQLITE_OK)
        sky__sqlite_fail(q, err, rc, "opening");
    else if ((rc = set_wal(q, err)) == SQLITE_OK && (rc = migrate(q, err)) == SQLITE_OK)
        rc = cache_size(q, err);
    if (rc != SQLITE_OK) {
        sqlite3_close(q->db);
        q->db = NULL;
    }
    return rc;
}
