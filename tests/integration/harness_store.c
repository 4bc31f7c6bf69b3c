#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "harness_store.h"

sky__store *sky_test_store_open(uv_loop_t *loop, const char *url)
{
    sky__store_options o;
    sky__store_options_init(&o);
    o.url = url;
    sky__store *s = NULL;
    sky_error err;
    sky_error_clear(&err);
    if (sky__store_open_sync(loop, &o, &s, &err) != 0)
        fail_msg("opening %s: %s", url, err.message);
    return s;
}

void sky_test_sqlite_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", path, msg ? msg : "?");
    sqlite3_close(db);
}
