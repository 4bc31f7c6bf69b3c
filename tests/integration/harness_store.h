/* Integration-test harness: a store (src/store) opened for a test, and its SQLite file. */
#ifndef SKY_TEST_HARNESS_STORE_H
#define SKY_TEST_HARNESS_STORE_H

#include <uv.h>

#include "store/store.h"

/* The store at @p url (a SQLite path or a postgres:// URL), opened on @p loop with default
 * options; fails the test, naming @p url and the error, when it does not open. */
sky__store *sky_test_store_open(uv_loop_t *loop, const char *url);

/* Run @p sql on the SQLite file @p path directly; fails the test with SQLite's message. */
void sky_test_sqlite_exec(const char *path, const char *sql);

#endif
