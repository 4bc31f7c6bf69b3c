/*
 * The SQLite store's schema version 1, as skyio wrote it: the tables and indexes only (no
 * BEGIN, no user_version). Frozen: it stands for the files users have, so the migration
 * tests build their old files from it. Never edit.
 */
#ifndef SKY_TEST_SQLITE_SCHEMA_V1_H
#define SKY_TEST_SQLITE_SCHEMA_V1_H

#define SKY_TEST_SQLITE_SCHEMA_V1_TABLES                                                           \
    "CREATE TABLE cache(key TEXT PRIMARY KEY, value BLOB NOT NULL, size INTEGER NOT NULL,"         \
    " stored_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);"                                   \
    "CREATE INDEX cache_by_age ON cache(stored_ms);"                                               \
    "CREATE INDEX cache_by_expiry ON cache(expires_ms) WHERE expires_ms > 0;"                      \
    "CREATE TABLE usage(id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, day TEXT NOT NULL,"      \
    " key_name TEXT NOT NULL, model TEXT NOT NULL, deployment TEXT NOT NULL,"                      \
    " status INTEGER NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,"           \
    " latency_us INTEGER NOT NULL, cost REAL NOT NULL);"                                           \
    "CREATE INDEX usage_by_day ON usage(day, key_name, model);"                                    \
    "CREATE TABLE docs(scope TEXT NOT NULL, id TEXT NOT NULL, doc BLOB NOT NULL,"                  \
    " updated_ms INTEGER NOT NULL, PRIMARY KEY(scope, id));"                                       \
    "CREATE TABLE keys(name TEXT PRIMARY KEY, hash TEXT NOT NULL, config TEXT NOT NULL,"           \
    " created_ms INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);"                           \
    "CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL,"                         \
    " expires_ms INTEGER NOT NULL);"

#endif
