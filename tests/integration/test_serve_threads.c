/*
 * `skyio serve --threads 2`: two loops on one port. Each connection lands on one of them;
 * a key's budget holds for the whole gateway, the metrics add the loops up, a reload
 * reaches every loop, and SIGTERM ends them all.
 */
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
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_cli.h"
#include "harness_serve.h"
#include "skyio/gateway.h"
#include "skyio/json.h"
#include "harness_group.h"

#define UPSTREAM_KEY "sk-upstream-canary-threads-91c4"
#define CLIENT_KEY "sk-client-threads-0001"
#define METERED_KEY "sk-client-threads-metered-0002"

static struct {
    sky_test_mock fast, slow;
    sky_test_serve serve;
    char dir[256], config[512];
    uv_loop_t *loop;
} env;

static void hash_hex(const char *key, char *out)
{
    unsigned char h[SKY_GATEWAY_SHA256_LEN];
    assert_int_equal(sky_gateway_key_hash(sky_span_cstr(key), h), 0);
    for (size_t i = 0; i < sizeof(h); i++)
        sprintf(out + 2 * i, "%02x", h[i]);
}

static void write_config(const char *extra_model)
{
    char full[65], metered[65], tmp[600], extra[400] = "";
    hash_hex(CLIENT_KEY, full);
    hash_hex(METERED_KEY, metered);
    if (extra_model)
        snprintf(extra, sizeof(extra),
                 ", \"%s\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
                 "\"UPK\"}]",
                 extra_model, env.fast.base_url);
    snprintf(tmp, sizeof(tmp), "%s.tmp", env.config);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", "
            "\"key_env\": \"UPK\", \"rpm\": 6000}],"
            " \"slow\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
            "\"UPK\"}]%s},"
            " \"keys\": [{\"name\": \"full\", \"key_sha256\": \"%s\"},"
            "            {\"name\": \"metered\", \"key_sha256\": \"%s\", \"rpm\": 5}]}\n",
            env.fast.base_url, env.slow.base_url, extra, full, metered);
    fclose(f);
    assert_int_equal(rename(tmp, env.config), 0);
}

static void serve_env(void)
{
    sky_test_serve_lsan_threads();
    setenv("UPK", UPSTREAM_KEY, 1);
}

static int setup(void **state)
{
    (void)state;
    static const char *const healthy[] = {"--key", UPSTREAM_KEY, NULL};
    static const char *const slow[] = {"--key", UPSTREAM_KEY, "--per-token-ms", "20", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.fast, healthy);
    sky_test_mock_start(&env.slow, slow);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    snprintf(env.config, sizeof(env.config), "%s/gateway.json", env.dir);
    write_config(NULL);
    const char *const args[] = {"--config",   env.config, "--threads", "2",
                                "--grace-ms", "2000",     NULL};
    sky_test_serve_start(&env.serve, env.dir, args, serve_env);
    env.loop = sky_test_loop_new();
    return 0;
}

static int file_holds(const char *name, const char *needle)
{
    return sky_test_file_holds(env.dir, name, needle);
}

/* When serve did not exit 0, its stderr says why: printed before the directory goes. */
static void show_stderr_unless_ok(int status)
{
    static char text[1 << 16];
    char path[512];
    if (sky_test_exited_ok(status))
        return;
    snprintf(path, sizeof(path), "%s/stderr.log", env.dir);
    sky_test_slurp(path, text, sizeof(text));
    fprintf(stderr, "skyio serve ended with status 0x%x; its stderr:\n%s\n", (unsigned)status,
            text);
}

static int teardown(void **state)
{
    (void)state;
    sky_test_loop_free(env.loop);
    int status = sky_test_stop_child(env.serve.pid);
    show_stderr_unless_ok(status);
    int leaked = file_holds("stderr.log", UPSTREAM_KEY) || file_holds("stdout.log", UPSTREAM_KEY);
    sky_test_mock_stop(&env.fast);
    sky_test_mock_stop(&env.slow);
    sky_test_rmdir(env.dir);
    assert_false(leaked);
    assert_true(sky_test_exited_ok(status));
    return 0;
}

/* One request on a connection of its own, so the kernel picks a loop for each. */
static void call_fresh(const char *method, const char *path, const char *body, const char *key,
                       sky_test_result *out)
{
    char url[256], auth[128];
    const char *headers[] = {auth, NULL};
    sky_http_client *client;
    snprintf(url, sizeof(url), "%s%s", env.serve.base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    assert_int_equal(sky_http_client_new(env.loop, NULL, &client), 0);
    sky_test_request(env.loop, client, method, url, body, headers, 20000, out);
    sky_http_client_free(client);
    assert_int_equal(out->err_code, 0);
    assert_null(strstr(out->body, UPSTREAM_KEY));
}

static const char chat_body[] =
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static void test_both_loops_answer_and_report(void **state)
{
    (void)state;
    sky_test_result r;
    for (int i = 0; i < 30; i++) {
        call_fresh("POST", "/v1/chat/completions", chat_body, CLIENT_KEY, &r);
        assert_int_equal(r.status, 200);
        sky_test_result_free(&r);
    }
    /* every call counted once, whichever loop took it; the deployment's 6000 rpm split in
     * two pipelines that /metrics adds up again: both loops report. A call is counted when
     * its loop frees it, which may come just after the client has the reply: asked again */
    double rpm = 0, total = 0;
    for (int i = 0; i < 50 && (rpm != 6000 || total != 30); i++) {
        call_fresh("GET", "/metrics", NULL, CLIENT_KEY, &r);
        total =
            sky_test_sample(r.body, "skyio_gateway_requests_total{route=\"/v1/chat/completions\","
                                    "model=\"gpt-4o\",deployment=\"gpt-4o#0\",status=\"200\"}");
        rpm = sky_test_sample(r.body, "skyio_gateway_deployment_rate_limit_rpm{model=\"gpt-4o\","
                                      "deployment=\"gpt-4o#0\"}");
        sky_test_result_free(&r);
        if (rpm != 6000 || total != 30)
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    assert_true(total == 30);
    assert_true(rpm == 6000);
}

/* 5 requests a minute for the key, whichever loop each connection lands on */
static void test_key_budget_shared_by_the_loops(void **state)
{
    (void)state;
    int ok = 0, refused = 0;
    for (int i = 0; i < 12; i++) {
        sky_test_result r;
        call_fresh("POST", "/v1/chat/completions", chat_body, METERED_KEY, &r);
        ok += r.status == 200;
        refused += r.status == 429;
        sky_test_result_free(&r);
    }
    assert_int_equal(ok, 5);
    assert_int_equal(refused, 7);
}

static void test_reload_reaches_every_loop(void **state)
{
    (void)state;
    write_config("added");
    assert_int_equal(kill(env.serve.pid, SIGHUP), 0);
    /* every loop builds the new routing on its own thread: soon, 20 fresh connections in a
     * row all find the new model */
    int streak = 0;
    for (int i = 0; i < 400 && streak < 20; i++) {
        sky_test_result r;
        call_fresh("POST", "/v1/chat/completions",
                   "{\"model\":\"added\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                   CLIENT_KEY, &r);
        streak = r.status == 200 ? streak + 1 : 0;
        sky_test_result_free(&r);
    }
    assert_int_equal(streak, 20);
}

/* The exit of a serve already told to stop, waited for without a second signal: one that
 * lands after serve has closed its signal watchers (as it frees its loop) ends it by the
 * signal's default action, not with its exit code. After 10 s, sky_test_stop_child. */
static int wait_exit(pid_t pid)
{
    int status = -1;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return sky_test_stop_child(pid);
}

/* SIGTERM while streams run on both loops: no new connection is taken, the streams end
 * whole within the grace period, and the process exits 0 */
typedef struct streams {
    int done, complete, ok;
    sky_test_result r[6];
} streams;

static void test_sigterm_lets_streams_finish(void **state)
{
    (void)state;
    static streams st;
    sky_http_client *clients[6];
    char url[256];
    memset(&st, 0, sizeof(st));
    snprintf(url, sizeof(url), "%s/v1/chat/completions", env.serve.base);
    sky_headers *h = sky_test_bearer_json_headers(CLIENT_KEY);
    for (int i = 0; i < 6; i++) { /* a connection each: both loops get some */
        sky_http_request_options o;
        assert_int_equal(sky_http_client_new(env.loop, NULL, &clients[i]), 0);
        sky_http_request_options_init(&o);
        o.method = "POST";
        o.url = url;
        o.headers = h;
        o.body = SKY_SPAN_LIT("{\"model\":\"slow\",\"stream\":true,\"max_tokens\":25,"
                              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        o.timeout_ms = 20000;
        o.on_done = sky_test_on_done;
        o.user_data = &st.r[i];
        assert_int_equal(sky_http_request_send(clients[i], &o, NULL, NULL), 0);
    }
    int never = 0;
    (void)sky_test_run_until(env.loop, &never, 150); /* the streams have begun */
    assert_int_equal(kill(env.serve.pid, SIGTERM), 0);
    for (int turn = 0; turn < 400 && st.done < 6; turn++) {
        (void)sky_test_run_until(env.loop, &never, 25);
        st.done = 0;
        for (int i = 0; i < 6; i++)
            st.done += st.r[i].done;
    }
    for (int i = 0; i < 6; i++) {
        const char *end = "data: [DONE]\n\n";
        assert_int_equal(st.r[i].status, 200);
        assert_true(st.r[i].body_len > strlen(end));
        assert_string_equal(st.r[i].body + st.r[i].body_len - strlen(end), end);
        sky_test_result_free(&st.r[i]);
        sky_http_client_free(clients[i]);
    }
    sky_headers_free(h);
    int status = wait_exit(env.serve.pid);
    env.serve.pid = 0;
    show_stderr_unless_ok(status);
    assert_true(sky_test_exited_ok(status));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_loops_answer_and_report),
        cmocka_unit_test(test_key_budget_shared_by_the_loops),
        cmocka_unit_test(test_reload_reaches_every_loop),
        cmocka_unit_test(test_sigterm_lets_streams_finish),
    };
    return sky_test_run_group(tests, setup, teardown);
}
