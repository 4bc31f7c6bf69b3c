/* Integration-test harness: real `skyio mock` processes on loopback, and a loop to wait on. */
#ifndef SKY_TEST_HARNESS_H
#define SKY_TEST_HARNESS_H

#include <jansson.h>
#include <sys/types.h>
#include <uv.h>

#include "skyio/http.h"
#include "skyio/pipeline.h"

typedef struct sky_test_mock {
    pid_t pid;
    int port;
    int tls;
    char dir[256];      /* temp folder of this mock (port file, certs) */
    char base_url[128]; /* http://127.0.0.1:PORT or https://localhost:PORT */
} sky_test_mock;

/*
 * Start `skyio mock` with the given extra arguments (NULL-terminated list) on
 * a free loopback port; waits until it listens. Aborts the test on failure.
 */
void sky_test_mock_start(sky_test_mock *m, const char *const *args);
/* SIGTERM, wait for the exit (SIGKILL after 10 s). Returns the exit status. */
int sky_test_mock_stop(sky_test_mock *m);
/* The same for any child process: its wait status, 0 when @p pid is not a process. */
int sky_test_stop_child(pid_t pid);
/* fork(), failing the test when it cannot; the child (0 returned) dies with this process. */
pid_t sky_test_fork(void);
/* In a forked child: @p fd into the file @p dir/@p name (created, truncated). */
void sky_test_redirect(const char *dir, const char *name, int fd);
/* In a forked child: get SIGTERM when the test process @p parent ends, however it ends. */
void sky_test_die_with_parent(pid_t parent);

/*
 * Make a throwaway CA and a server certificate for localhost/127.0.0.1 with
 * the openssl command, in @p dir: ca.pem, server.pem, server.key.
 * Returns 0 or -1.
 */
int sky_test_make_certs(const char *dir);

/* A new temp directory under $TMPDIR (or /tmp); the path is written to @p out. */
void sky_test_tmpdir(char *out, size_t len);

/* A loopback port nothing listens on (bound, read, closed): a connect there is refused. */
int sky_test_closed_port(void);

/* The port a server wrote to its --port-file, or 0 when it is not there yet. */
int sky_test_read_port(const char *path);
/*
 * Wait for the child *@p pid (just forked) to get ready: every 10 ms, up to @p timeout_ms, call
 * @p ready(@p arg) until it gives nonzero, and return that. When the child exits first, *@p pid
 * becomes 0 and the test fails, naming @p what and the log @p dir/@p log. Returns 0 when the
 * time ran out (the caller stops the child and fails).
 */
int sky_test_wait_ready(pid_t *pid, int (*ready)(const void *arg), const void *arg,
                        unsigned timeout_ms, const char *what, const char *dir, const char *log);
/* sky_test_wait_ready for the port a child writes to @p port_file (0: none in time). */
int sky_test_wait_port_file(pid_t *pid, const char *port_file, unsigned timeout_ms,
                            const char *what, const char *dir);
/* rm -rf @p dir. */
void sky_test_rmdir(const char *dir);

/* Run @p loop until *flag is nonzero or @p timeout_ms passed; returns *flag. */
int sky_test_run_until(uv_loop_t *loop, const int *flag, uint64_t timeout_ms);

/* One finished request, as the done callback saw it (copied). */
typedef struct sky_test_result {
    int done; /* callback count: must end at exactly 1 */
    int status;
    int err_code;
    int curl_code;
    int http_version;
    int reused;
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
    json_t *headers; /* lower-cased name -> first value */
} sky_test_result;

void sky_test_result_free(sky_test_result *r);

/* A done callback that fills the sky_test_result given as user data. */
void sky_test_on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                      void *user_data);

/*
 * Send one request and wait for it (up to @p timeout_ms). @p body may be NULL.
 * @p headers: NULL-terminated "Name: value" strings, or NULL.
 */
void sky_test_request(uv_loop_t *loop, sky_http_client *client, const char *method, const char *url,
                      const char *body, const char *const *headers, long timeout_ms,
                      sky_test_result *out);

/* New headers "Authorization: Bearer @p key" and "Content-Type: application/json" (free
 * them with sky_headers_free); fails the test when it cannot. */
sky_headers *sky_test_bearer_json_headers(const char *key);

/* "Content-Type: application/json", for requests with a JSON body (freed at exit). */
const sky_headers *sky_test_json_headers(void);

/*
 * Options for a POST of @p body (JSON) to @p url, reporting to @p cb with @p user_data.
 * sky_test_request labels a body JSON too, unless @p headers give a Content-Type.
 */
void sky_test_post_options(sky_http_request_options *o, const char *url, const char *body,
                           sky_http_done_cb cb, void *user_data);

/* Pipeline call options for a POST of @p body (JSON) to @p url, reporting to @p cb. */
void sky_test_call_options(sky_call_options *o, const char *url, const char *body,
                           sky_call_done_cb cb, void *user_data);

/* GET /mock/stats of @p m as JSON (new reference); aborts the test on failure. */
json_t *sky_test_mock_stats(const sky_test_mock *m);

/* The integer at @p path (sky_json_path syntax) of @p m's /mock/stats; fails when there is none. */
int64_t sky_test_mock_stat(const sky_test_mock *m, const char *path);
/* The same, @p none when there is nothing at @p path. */
int64_t sky_test_mock_stat_or(const sky_test_mock *m, const char *path, int64_t none);

/* GET @p path of @p m (a 200 with a JSON body) as JSON (new reference); aborts on failure. */
json_t *sky_test_mock_get_json(const sky_test_mock *m, const char *path);

/*
 * Wait for something the mock counts: run @p loop (may be NULL) in turns of 10 ms and
 * read /mock/stats between them, until the integer at @p path (sky_json_path syntax,
 * "faults.hang") is at least @p want or @p timeout_ms passed. Each read is a new
 * connection to the mock. Returns the last value read (-1 while @p path is absent).
 */
int64_t sky_test_wait_stat(uv_loop_t *loop, const sky_test_mock *m, const char *path, int64_t want,
                           uint64_t timeout_ms);

/* A loop, a client (options may be NULL) — and their teardown, which checks no leak. */
uv_loop_t *sky_test_loop_new(void);
void sky_test_loop_free(uv_loop_t *loop);

/* A new loop and an HTTP client on it (default options); fails the test when it cannot. */
void sky_test_client_open(uv_loop_t **loop, sky_http_client **client);
/* Free what sky_test_client_open made (the loop's teardown checks nothing leaked). */
void sky_test_client_close(uv_loop_t *loop, sky_http_client *client);

/*
 * For a test whose operation reports into @p out (a struct with an int `done`, zeroed
 * first): run @p call, an expression that may use `err` (a cleared sky_error *), fail the
 * test with the error's message unless it gives 0, then run @p loop until out.done (30 s at
 * most). The test file includes cmocka.h and string.h.
 */
#define SKY_TEST_START(loop, out, call)                                                            \
    do {                                                                                           \
        sky_error e_;                                                                              \
        sky_error_clear(&e_);                                                                      \
        memset(&(out), 0, sizeof(out));                                                            \
        sky_error *err = &e_;                                                                      \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s", e_.message);                                                            \
        assert_true(sky_test_run_until((loop), &(out).done, 30000));                               \
    } while (0)

/*
 * Around the start of a child with --threads: h2o's per-thread caches outlive its worker
 * threads, so the child gets lsan-h2o-threads.supp added to LSAN_OPTIONS. _begin returns
 * what LSAN_OPTIONS was (malloc'd; NULL: unset); _end puts that back and frees it.
 */
char *sky_test_lsan_threads_begin(void);
void sky_test_lsan_threads_end(char *old);

/* Whether @p status, from sky_test_stop_child, is an exit with code 0. */
int sky_test_exited_ok(int status);

#endif
