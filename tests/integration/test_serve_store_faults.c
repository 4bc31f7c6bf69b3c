/*
 * `skyio serve` meeting its stores' faults, as a user sees them (issue 18, "Faults and bad
 * input"): a corrupt or locked --state file stops it with exit 3 and an error naming the
 * file; PostgreSQL down at start stops it with exit 3 and the cause, its password never
 * shown; Redis unreachable from the start does not stop it: requests are served upstream,
 * the log says once that the cache is bypassed and /metrics counts each bypass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

static struct {
    sky_test_mock mock;
    char dir[256];
    char config[512];
} env;

static int setup(void **state)
{
    (void)state;
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    snprintf(env.config, sizeof(env.config), "%s/gateway.json", env.dir);
    FILE *f = fopen(env.config, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
            env.mock.base_url);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock_stop(&env.mock);
    sky_test_rmdir(env.dir);
    return 0;
}

/* Run `skyio serve --config ... --port 0 FLAGS` to its exit; its stderr in @p err (cap).
 * Returns the exit status (-1 when it did not exit by itself). */
static int serve_until_exit(const char *flags, char *err, size_t cap)
{
    char cmd[2048], path[300];
    snprintf(path, sizeof(path), "%s/exit-stderr.log", env.dir);
    snprintf(cmd, sizeof(cmd), "timeout 30 %s serve --config %s --port 0 %s >/dev/null 2>%s",
             SKY_TEST_BIN, env.config, flags, path);
    int st = system(cmd);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(err, 1, cap - 1, f);
    err[n] = '\0';
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_in(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("\"%s\" not in: %s", needle, text);
}

static void corrupt_state_file_is_named(void **state)
{
    (void)state;
    char path[400], flags[512], err[4096];
    snprintf(path, sizeof(path), "%s/broken.db", env.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 400; i++)
        fputs("not a database at all ", f);
    fclose(f);
    snprintf(flags, sizeof(flags), "--state %s", path);
    assert_int_equal(serve_until_exit(flags, err, sizeof(err)), 3);
    expect_in(err, path);
    expect_in(err, "not a SQLite database, or corrupt");
}

static void locked_state_file_is_named(void **state)
{
    (void)state;
    char path[400], flags[512], err[4096];
    snprintf(path, sizeof(path), "%s/locked.db", env.dir);
    sqlite3 *holder = NULL;
    assert_int_equal(sqlite3_open(path, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder,
                                  "PRAGMA locking_mode = EXCLUSIVE; CREATE TABLE t(x);"
                                  " BEGIN EXCLUSIVE; INSERT INTO t VALUES(1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    snprintf(flags, sizeof(flags), "--state %s", path);
    int code = serve_until_exit(flags, err, sizeof(err));
    sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(holder);
    assert_int_equal(code, 3);
    expect_in(err, path);
    expect_in(err, "locked by another process");
}

static void postgres_down_at_start_says_why(void **state)
{
    (void)state;
    char flags[512], err[4096], where[64];
    int port = sky_test_closed_port();
    snprintf(flags, sizeof(flags), "--postgres postgresql://skyio:pg-canary-pw@127.0.0.1:%d/skyio",
             port);
    assert_int_equal(serve_until_exit(flags, err, sizeof(err)), 3);
    snprintf(where, sizeof(where), "%d", port);
    expect_in(err, "cannot open the usage store");
    expect_in(err, where);
    expect_in(err, "refused"); /* the cause, as libpq gives it */
    assert_null(strstr(err, "pg-canary-pw"));
}

/* This build's hiredis has no TLS: rediss:// is refused by name (exit 2), on either flag,
 * never opened as a SQLite file of that name; its password stays out of the message. */
static void tls_redis_url_is_refused(void **state)
{
    (void)state;
    char err[4096];
    const char *flags[] = {"--redis rediss://:rd-canary-pw@127.0.0.1:6380/0",
                           "--cache rediss://:rd-canary-pw@127.0.0.1:6380/0"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(serve_until_exit(flags[i], err, sizeof(err)), 2);
        expect_in(err, "rediss:// (Redis over TLS) is not supported");
        assert_null(strstr(err, "rd-canary-pw"));
    }
}

/* Answers the mock gave so far (none yet: 0). */
static int64_t upstream_calls(void)
{
    json_t *st = sky_test_mock_stats(&env.mock);
    int64_t n = json_integer_value(sky_json_path(st, "responses.200"));
    json_decref(st);
    return n;
}

/* Times @p needle is in @p text. */
static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

#define REDIS_CANARY "redis-pw-canary-51c3"

static void redis_unreachable_at_start_serves(void **state)
{
    (void)state;
    char url[128], log[400], where[64];
    int port = sky_test_closed_port();
    /* --redis is --cache with a redis:// URL; its password leaves argv (ps) at once */
    snprintf(url, sizeof(url), "redis://:" REDIS_CANARY "@127.0.0.1:%d/0", port);
    snprintf(where, sizeof(where), "redis at 127.0.0.1:%d unreachable", port);
    const char *args[] = {"--config", env.config, "--redis", url, NULL};
    sky_test_serve s;
    sky_test_serve_start_named(&s, env.dir, "redis-away", args, NULL);
    char cmdline_path[64];
    snprintf(cmdline_path, sizeof(cmdline_path), "/proc/%d/cmdline", (int)s.pid);
    FILE *cf = fopen(cmdline_path, "rb");
    assert_non_null(cf);
    char cmdline[8192];
    size_t cn = fread(cmdline, 1, sizeof(cmdline) - 1, cf);
    fclose(cf);
    for (size_t i = 0; i < cn; i++)
        cmdline[i] = cmdline[i] ? cmdline[i] : ' ';
    cmdline[cn] = '\0';
    assert_non_null(strstr(cmdline, "--redis"));
    assert_null(strstr(cmdline, REDIS_CANARY));
    uv_loop_t *loop = sky_test_loop_new();
    sky_http_client *client = NULL;
    assert_int_equal(sky_http_client_new(loop, NULL, &client), 0);
    int64_t calls0 = upstream_calls();
    char target[256];
    snprintf(target, sizeof(target), "%s/v1/chat/completions", s.base);
    const char *headers[] = {"x-skyio-cache: on", NULL};
    const char body[] =
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"r\"}]}";
    for (int i = 0; i < 3; i++) {
        sky_test_result r;
        sky_test_request(loop, client, "POST", target, body, headers, 20000, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(json_string_value(json_object_get(r.headers, "x-skyio-cache-status")),
                            "miss");
        sky_test_result_free(&r);
    }
    assert_int_equal(upstream_calls(), calls0 + 3);
    snprintf(target, sizeof(target), "%s/metrics", s.base);
    sky_test_result m;
    sky_test_request(loop, client, "GET", target, NULL, NULL, 20000, &m);
    assert_int_equal(m.status, 200);
    assert_true(sky_test_sample(m.body, "skyio_gateway_cache_lookups_total{result=\"bypassed\"}") >=
                3);
    sky_test_result_free(&m);
    sky_http_client_free(client);
    sky_test_loop_free(loop);
    assert_int_equal(sky_test_stop_child(s.pid), 0);
    snprintf(log, sizeof(log), "%s/redis-away.log", env.dir);
    const char *text = read_file(log);
    assert_int_equal(count_lines(text, "the cache is bypassed"), 1); /* once per outage */
    expect_in(text, where);
    assert_null(strstr(text, REDIS_CANARY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corrupt_state_file_is_named),
        cmocka_unit_test(locked_state_file_is_named),
        cmocka_unit_test(postgres_down_at_start_says_why),
        cmocka_unit_test(tls_redis_url_is_refused),
        cmocka_unit_test(redis_unreachable_at_start_serves),
    };
    return sky_test_run_group(tests, setup, teardown);
}
