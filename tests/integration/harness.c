/* Integration-test harness: see harness.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "skyio/json.h"

void sky_test_tmpdir(char *out, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, len, "%s/skyio-test-XXXXXX", base && base[0] ? base : "/tmp");
    if (mkdtemp(out) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
}

void sky_test_rmdir(const char *dir)
{
    char cmd[512];
    if (dir[0] == '\0' || strstr(dir, "skyio-test-") == NULL)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", dir);
}

int sky_test_make_certs(const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
             "-subj '/CN=skyio test CA' >/dev/null 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
             "-subj '/CN=localhost' >/dev/null 2>&1 && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' "
             "> ext.cnf && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 2 -extfile ext.cnf >/dev/null 2>&1",
             dir);
    return system(cmd) == 0 ? 0 : -1;
}

int sky_test_read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

int sky_test_wait_ready(pid_t *pid, int (*ready)(const void *arg), const void *arg,
                        unsigned timeout_ms, const char *what, const char *dir, const char *log)
{
    for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        int status, got;
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            fail_msg("%s exited at start (status %d); see %s/%s", what, status, dir, log);
        }
        if ((got = ready(arg)) != 0)
            return got;
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int port_file_ready(const void *path)
{
    return sky_test_read_port(path);
}

int sky_test_wait_port_file(pid_t *pid, const char *port_file, unsigned timeout_ms,
                            const char *what, const char *dir)
{
    return sky_test_wait_ready(pid, port_file_ready, port_file, timeout_ms, what, dir,
                               "stderr.log");
}

void sky_test_redirect(const char *dir, const char *name, int fd)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out >= 0) {
        dup2(out, fd);
        close(out);
    }
}

void sky_test_mock_start(sky_test_mock *m, const char *const *args)
{
    char port_file[512], cert[512], key[512];
    const char *argv[96];
    size_t n = 0;
    int tls = m->tls;
    memset(m, 0, sizeof(*m));
    m->tls = tls;
    sky_test_tmpdir(m->dir, sizeof(m->dir));
    snprintf(port_file, sizeof(port_file), "%s/port", m->dir);
    argv[n++] = SKY_TEST_BIN;
    argv[n++] = "mock";
    argv[n++] = "--port-file";
    argv[n++] = port_file;
    if (m->tls) {
        if (sky_test_make_certs(m->dir) < 0)
            fail_msg("could not make test certificates with openssl");
        snprintf(cert, sizeof(cert), "%s/server.pem", m->dir);
        snprintf(key, sizeof(key), "%s/server.key", m->dir);
        argv[n++] = "--tls-cert";
        argv[n++] = cert;
        argv[n++] = "--tls-key";
        argv[n++] = key;
    }
    for (size_t i = 0; args && args[i] && n < SKY_ARRAY_LEN(argv) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = sky_test_fork();
    if (pid == 0) {
        sky_test_redirect(m->dir, "stdout.log", 1);
        sky_test_redirect(m->dir, "stderr.log", 2);
        execv(SKY_TEST_BIN, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    m->pid = pid;
    m->port = sky_test_wait_port_file(&m->pid, port_file, 10000, "skyio mock", m->dir);
    if (m->port == 0) {
        sky_test_mock_stop(m);
        fail_msg("skyio mock did not start listening within 10 s");
    }
    snprintf(m->base_url, sizeof(m->base_url), "%s://127.0.0.1:%d", m->tls ? "https" : "http",
             m->port);
}

pid_t sky_test_fork(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0)
        sky_test_die_with_parent(parent);
    return pid;
}

void sky_test_die_with_parent(pid_t parent)
{
    /* A failed assertion skips the test's own stop; the server must not outlive the run. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(126);
}

int sky_test_stop_child(pid_t pid)
{
    int status = -1;
    if (pid <= 0)
        return 0; /* nothing left to stop */
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

int sky_test_mock_stop(sky_test_mock *m)
{
    int status = sky_test_stop_child(m->pid);
    m->pid = 0;
    sky_test_rmdir(m->dir);
    m->dir[0] = '\0';
    return status;
}

/* ---- loop helpers ---- */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

int sky_test_run_until(uv_loop_t *loop, const int *flag, uint64_t timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    /* A ticking timer keeps uv_run(ONCE) from blocking forever. */
    uv_timer_start(&tick, on_tick, 10, 10);
    uint64_t deadline = uv_now(loop) + timeout_ms;
    while (!*flag && uv_now(loop) < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

uv_loop_t *sky_test_loop_new(void)
{
    uv_loop_t *loop = malloc(sizeof(*loop));
    assert_non_null(loop);
    assert_int_equal(uv_loop_init(loop), 0);
    return loop;
}

static void count_walk(uv_handle_t *h, void *arg)
{
    int *n = arg;
    if (!uv_is_closing(h))
        ++*n;
}

void sky_test_loop_free(uv_loop_t *loop)
{
    /* Let closing handles finish; anything still open is a leak in the code under test. */
    for (int i = 0; i < 5; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    int open_handles = 0;
    uv_walk(loop, count_walk, &open_handles);
    assert_int_equal(open_handles, 0);
    assert_int_equal(uv_loop_close(loop), 0);
    free(loop);
}

/* ---- requests ---- */

void sky_test_result_free(sky_test_result *r)
{
    free(r->body);
    json_decref(r->headers);
    memset(r, 0, sizeof(*r));
}

void sky_test_on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                      void *user_data)
{
    sky_test_result *r = user_data;
    (void)req;
    r->done++;
    r->status = res->status;
    r->err_code = err ? err->code : 0;
    r->curl_code = err ? err->curl_code : 0;
    r->http_version = res->http_version;
    r->reused = res->reused_connection;
    free(r->body);
    r->body = malloc(res->body.len + 1);
    assert_non_null(r->body);
    memcpy(r->body, res->body.ptr, res->body.len);
    r->body[res->body.len] = '\0';
    r->body_len = res->body.len;
    json_decref(r->headers);
    r->headers = json_object();
    for (size_t i = 0; res->headers && i < sky_headers_count(res->headers); i++) {
        const char *n, *v;
        char lower[128];
        (void)sky_headers_at(res->headers, i, &n, &v);
        size_t k = 0;
        for (; n[k] && k < sizeof(lower) - 1; k++)
            lower[k] = (char)((n[k] >= 'A' && n[k] <= 'Z') ? n[k] + 32 : n[k]);
        lower[k] = '\0';
        if (json_object_get(r->headers, lower) == NULL)
            json_object_set_new(r->headers, lower, json_string(v));
    }
}

static sky_headers *json_headers;

static void free_json_headers(void)
{
    sky_headers_free(json_headers);
    json_headers = NULL;
}

sky_headers *sky_test_bearer_json_headers(const char *key)
{
    char auth[256];
    sky_headers *h = sky_headers_new();
    assert_non_null(h);
    snprintf(auth, sizeof(auth), "Bearer %s", key);
    assert_int_equal(sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_span_cstr(auth)), 0);
    assert_int_equal(
        sky_headers_add(h, SKY_SPAN_LIT("Content-Type"), SKY_SPAN_LIT("application/json")), 0);
    return h;
}

const sky_headers *sky_test_json_headers(void)
{
    if (json_headers == NULL) {
        json_headers = sky_headers_new();
        assert_non_null(json_headers);
        assert_int_equal(sky_headers_add(json_headers, SKY_SPAN_LIT("Content-Type"),
                                         SKY_SPAN_LIT("application/json")),
                         0);
        atexit(free_json_headers);
    }
    return json_headers;
}

void sky_test_request(uv_loop_t *loop, sky_http_client *client, const char *method, const char *url,
                      const char *body, const char *const *headers, long timeout_ms,
                      sky_test_result *out)
{
    sky_http_request_options o;
    sky_error err;
    sky_headers *h = sky_headers_new();
    assert_non_null(h);
    for (size_t i = 0; headers && headers[i]; i++) {
        const char *colon = strchr(headers[i], ':');
        assert_non_null(colon);
        assert_int_equal(sky_headers_add(h, sky_span_make(headers[i], (size_t)(colon - headers[i])),
                                         sky_span_cstr(colon + 1)),
                         0);
    }
    if (body && sky_headers_get(h, "Content-Type") == NULL)
        assert_int_equal(
            sky_headers_add(h, SKY_SPAN_LIT("Content-Type"), SKY_SPAN_LIT("application/json")), 0);
    sky_http_request_options_init(&o);
    sky_error_clear(&err);
    o.method = method;
    o.url = url;
    o.headers = h;
    o.body = sky_span_cstr(body);
    o.timeout_ms = timeout_ms;
    o.on_done = sky_test_on_done;
    o.user_data = out;
    memset(out, 0, sizeof(*out));
    assert_int_equal(sky_http_request_send(client, &o, NULL, &err), 0);
    sky_headers_free(h);
    sky_test_run_until(loop, &out->done, (uint64_t)(timeout_ms > 0 ? timeout_ms : 30000) + 5000);
    assert_int_equal(out->done, 1);
}

void sky_test_post_options(sky_http_request_options *o, const char *url, const char *body,
                           sky_http_done_cb cb, void *user_data)
{
    sky_http_request_options_init(o);
    o->method = "POST";
    o->url = url;
    o->headers = sky_test_json_headers();
    o->body = sky_span_cstr(body);
    o->on_done = cb;
    o->user_data = user_data;
}

void sky_test_call_options(sky_call_options *o, const char *url, const char *body,
                           sky_call_done_cb cb, void *user_data)
{
    sky_call_options_init(o);
    o->headers = sky_test_json_headers();
    o->url = url;
    o->body = sky_span_cstr(body);
    o->on_done = cb;
    o->user_data = user_data;
}

json_t *sky_test_mock_stats(const sky_test_mock *m)
{
    return sky_test_mock_get_json(m, "/mock/stats");
}

int64_t sky_test_mock_stat(const sky_test_mock *m, const char *path)
{
    json_t *s = sky_test_mock_stats(m);
    json_t *v = sky_json_path(s, path);
    if (!json_is_integer(v))
        fail_msg("no integer at %s of the mock's stats", path);
    int64_t n = (int64_t)json_integer_value(v);
    json_decref(s);
    return n;
}

int64_t sky_test_mock_stat_or(const sky_test_mock *m, const char *path, int64_t none)
{
    json_t *s = sky_test_mock_stats(m);
    json_t *v = sky_json_path(s, path);
    int64_t n = v ? (int64_t)json_integer_value(v) : none;
    json_decref(s);
    return n;
}

json_t *sky_test_mock_get_json(const sky_test_mock *m, const char *path)
{
    char url[512];
    sky_test_result r;
    sky_http_client *c;
    sky_http_client_options co;
    uv_loop_t *loop = sky_test_loop_new();
    sky_http_client_options_init(&co);
    co.verify_peer = 0; /* the stats endpoint of a TLS mock in tests */
    assert_int_equal(sky_http_client_new(loop, &co, &c), 0);
    snprintf(url, sizeof(url), "%s%s", m->base_url, path);
    sky_test_request(loop, c, "GET", url, NULL, NULL, 10000, &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    json_t *stats = NULL;
    assert_int_equal(sky_json_parse(sky_span_make(r.body, r.body_len), &stats, NULL), 0);
    sky_test_result_free(&r);
    sky_http_client_free(c);
    sky_test_loop_free(loop);
    return stats;
}

int64_t sky_test_wait_stat(uv_loop_t *loop, const sky_test_mock *m, const char *path, int64_t want,
                           uint64_t timeout_ms)
{
    uint64_t deadline = uv_hrtime() + timeout_ms * UINT64_C(1000000);
    int never = 0;
    for (;;) {
        json_t *stats = sky_test_mock_stats(m);
        json_t *v = sky_json_path(stats, path);
        int64_t got = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
        json_decref(stats);
        if (got >= want || uv_hrtime() >= deadline)
            return got;
        if (loop)
            sky_test_run_until(loop, &never, 10);
        else
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
}

void sky_test_client_open(uv_loop_t **loop, sky_http_client **client)
{
    *loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(*loop, NULL, client), 0);
}

void sky_test_client_close(uv_loop_t *loop, sky_http_client *client)
{
    sky_http_client_free(client);
    sky_test_loop_free(loop);
}

int sky_test_exited_ok(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int sky_test_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

char *sky_test_lsan_threads_begin(void)
{
    char lsan[1024];
    const char *now = getenv("LSAN_OPTIONS");
    char *old = now ? strdup(now) : NULL;
    assert_true(now == NULL || old != NULL);
    snprintf(lsan, sizeof(lsan), "%s%ssuppressions=%s/tests/integration/lsan-h2o-threads.supp",
             old ? old : "", old ? ":" : "", SKY_TEST_SRCDIR);
    setenv("LSAN_OPTIONS", lsan, 1);
    return old;
}

void sky_test_lsan_threads_end(char *old)
{
    if (old)
        setenv("LSAN_OPTIONS", old, 1);
    else
        unsetenv("LSAN_OPTIONS");
    free(old);
}
