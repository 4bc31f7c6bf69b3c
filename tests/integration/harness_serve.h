/* Integration-test harness: a `skyio serve` child on loopback, and reading what it wrote. */
#ifndef SKY_TEST_HARNESS_SERVE_H
#define SKY_TEST_HARNESS_SERVE_H

#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

typedef struct sky_test_serve {
    pid_t pid;
    int port;
    char base[128]; /* http://127.0.0.1:PORT */
} sky_test_serve;

/*
 * Start `skyio serve --port 0 --port-file DIR/port ARGS` (@p args NULL-terminated) with its
 * stdout and stderr in @p dir's stdout.log and stderr.log; in the child, @p child_env (may be
 * NULL) runs first. Waits up to 10 s for the port; fails the test when it does not come.
 * Stop it with sky_test_stop_child(s->pid).
 */
void sky_test_serve_start(sky_test_serve *s, const char *dir, const char *const *args,
                          void (*child_env)(void));

/*
 * The same for one of several serves in @p dir: the port in @p dir/@p name.port, stdout and
 * stderr both in @p dir/@p name.log.
 */
void sky_test_serve_start_named(sky_test_serve *s, const char *dir, const char *name,
                                const char *const *args, void (*child_env)(void));

/* sky_test_serve_start with @p dir/@p sub (made here, 0700) as the serve's folder. */
void sky_test_serve_start_in(sky_test_serve *s, const char *dir, const char *sub,
                             const char *const *args, void (*child_env)(void));

/* Stop @p s (its pid 0 after); fails the test unless it exited with 0. */
void sky_test_serve_stop_ok(sky_test_serve *s);

/* For a serve child with --threads: h2o's per-thread caches outlive its loops' threads, so
 * add lsan-h2o-threads.supp to this process's LSAN_OPTIONS (a child_env runs it). */
void sky_test_serve_lsan_threads(void);

/* Whether the file @p dir/@p name holds @p needle (0 when it is missing). */
int sky_test_file_holds(const char *dir, const char *name, const char *needle);

/* The value of the metrics sample @p series (its text up to the value) in @p text; -1: none. */
double sky_test_sample(const char *text, const char *series);

/* Write @p dir/gateway.json from printf-style @p fmt; its path in @p path (@p len bytes). */
void sky_test_gateway_config(char *path, size_t len, const char *dir, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * @p method of @p path under @p s->base with @p body (NULL: none), "Authorization: Bearer
 * @p key" (NULL: none) and @p header ("Name: value", NULL: none), waiting 20 s at most;
 * the answer in @p out (free with sky_test_result_free).
 */
void sky_test_serve_call(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                         const char *method, const char *path, const char *body, const char *key,
                         const char *header, sky_test_result *out);

/*
 * sky_test_serve_call of @p method @p path with @p body and @p key's bearer (each may be NULL);
 * fails the test unless the answer came with @p status and a JSON body. That body (json_decref
 * it).
 */
json_t *sky_test_serve_json(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                            const char *method, const char *path, const char *body, const char *key,
                            int status);

/*
 * A serve test's teardown: close @p client on @p loop (client NULL: none), stop @p s (NULL:
 * none; its pid 0 after), stop every mock of the NULL-terminated @p mocks (NULL: none), remove
 * @p dir; then fails the test unless @p s exited with 0 (a pid of 0, already stopped, counts
 * as that).
 */
void sky_test_serve_teardown(sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                             sky_test_mock *const *mocks, const char *dir);

/* GET /metrics of @p s into @p out; fails the test unless it is a 200. */
void sky_test_serve_metrics(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                            sky_test_result *out);

/* The value of the sample @p series (see sky_test_sample) in @p s's /metrics; -1: none. */
double sky_test_serve_sample(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                             const char *series);

#endif
