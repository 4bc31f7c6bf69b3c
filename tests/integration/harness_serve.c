/* Integration-test harness: `skyio serve`. See harness_serve.h. */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_cli.h"
#include "harness_serve.h"

/* In the child: exec serve with stdout and stderr in @p out and @p err of @p dir (err NULL: out).
 */
static void serve_exec(const char *dir, const char *port_file, const char *out, const char *err,
                       const char *const *args)
{
    const char *argv[40] = {SKY_TEST_BIN, "serve", "--port", "0", "--port-file", port_file};
    size_t n = 6;
    /* SKY_TEST_UPSTREAM_TRANSPORT=curl runs the gateway's tests on curl for every upstream
     * call (h2o's client is the default for plain http:// deployments on loopback) */
    const char *transport = getenv("SKY_TEST_UPSTREAM_TRANSPORT");
    if (transport && transport[0]) {
        argv[n++] = "--upstream-transport";
        argv[n++] = transport;
    }
    for (size_t i = 0; args && args[i] && n < SKY_ARRAY_LEN(argv) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    sky_test_redirect(dir, out, 1);
    if (err)
        sky_test_redirect(dir, err, 2);
    else
        dup2(1, 2);
    execv(SKY_TEST_BIN, (char *const *)(uintptr_t)argv);
    _exit(127);
}

static int port_ready(const void *port_file)
{
    return sky_test_read_port(port_file);
}

/* Fork serve (see serve_exec) and wait up to 10 s for @p port_name in @p dir. */
static void serve_spawn(sky_test_serve *s, const char *dir, const char *port_name, const char *out,
                        const char *err, const char *const *args, void (*child_env)(void))
{
    char port_file[512];
    const char *log = err ? err : out;
    snprintf(port_file, sizeof(port_file), "%s/%s", dir, port_name);
    memset(s, 0, sizeof(*s));
    s->pid = sky_test_fork();
    if (s->pid == 0) {
        if (child_env)
            child_env();
        serve_exec(dir, port_file, out, err, args);
    }
    s->port = sky_test_wait_ready(&s->pid, port_ready, port_file, 10000, "skyio serve", dir, log);
    if (s->port == 0) {
        sky_test_stop_child(s->pid);
        fail_msg("skyio serve did not start within 10 s; see %s/%s", dir, log);
    }
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
}

void sky_test_serve_start(sky_test_serve *s, const char *dir, const char *const *args,
                          void (*child_env)(void))
{
    serve_spawn(s, dir, "port", "stdout.log", "stderr.log", args, child_env);
}

void sky_test_serve_start_named(sky_test_serve *s, const char *dir, const char *name,
                                const char *const *args, void (*child_env)(void))
{
    char port_name[128], log[128];
    snprintf(port_name, sizeof(port_name), "%s.port", name);
    snprintf(log, sizeof(log), "%s.log", name);
    serve_spawn(s, dir, port_name, log, NULL, args, child_env);
}

void sky_test_serve_start_in(sky_test_serve *s, const char *dir, const char *sub,
                             const char *const *args, void (*child_env)(void))
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    assert_int_equal(mkdir(path, 0700), 0);
    sky_test_serve_start(s, path, args, child_env);
}

void sky_test_serve_stop_ok(sky_test_serve *s)
{
    int status = sky_test_stop_child(s->pid);
    s->pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

void sky_test_serve_lsan_threads(void)
{
    char lsan[1024];
    const char *old = getenv("LSAN_OPTIONS");
    snprintf(lsan, sizeof(lsan), "%s%ssuppressions=%s/tests/integration/lsan-h2o-threads.supp",
             old ? old : "", old ? ":" : "", SKY_TEST_SRCDIR);
    setenv("LSAN_OPTIONS", lsan, 1);
}

int sky_test_file_holds(const char *dir, const char *name, const char *needle)
{
    char path[512];
    static char text[1 << 20];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    sky_test_slurp(path, text, sizeof(text));
    return strstr(text, needle) != NULL;
}

double sky_test_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = strstr(text, series); p; p = strstr(p + 1, series))
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

void sky_test_gateway_config(char *path, size_t len, const char *dir, const char *fmt, ...)
{
    snprintf(path, len, "%s/gateway.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    assert_int_equal(fclose(f), 0);
}

void sky_test_serve_call(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                         const char *method, const char *path, const char *body, const char *key,
                         const char *header, sky_test_result *out)
{
    char url[1024], auth[256];
    const char *headers[3] = {NULL, NULL, NULL};
    size_t n = 0;
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    if (key) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        headers[n++] = auth;
    }
    if (header)
        headers[n++] = header;
    sky_test_request(loop, client, method, url, body, headers, 20000, out);
}

void sky_test_serve_metrics(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                            sky_test_result *out)
{
    sky_test_serve_call(s, loop, client, "GET", "/metrics", NULL, NULL, NULL, out);
    assert_int_equal(out->status, 200);
}

json_t *sky_test_serve_json(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                            const char *method, const char *path, const char *body, const char *key,
                            int status)
{
    sky_test_result r;
    sky_test_serve_call(s, loop, client, method, path, body, key, NULL, &r);
    assert_int_equal(r.status, status);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    sky_test_result_free(&r);
    assert_non_null(j);
    return j;
}

void sky_test_serve_teardown(sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                             sky_test_mock *const *mocks, const char *dir)
{
    if (client)
        sky_test_client_close(loop, client);
    int status = 0;
    if (s) {
        status = sky_test_stop_child(s->pid);
        s->pid = 0;
    }
    for (size_t i = 0; mocks && mocks[i]; i++)
        sky_test_mock_stop(mocks[i]);
    sky_test_rmdir(dir);
    assert_true(sky_test_exited_ok(status));
}

double sky_test_serve_sample(const sky_test_serve *s, uv_loop_t *loop, sky_http_client *client,
                             const char *series)
{
    sky_test_result r;
    sky_test_serve_metrics(s, loop, client, &r);
    double v = sky_test_sample(r.body, series);
    sky_test_result_free(&r);
    return v;
}
