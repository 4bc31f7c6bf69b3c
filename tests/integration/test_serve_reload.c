/*
 * `skyio serve` reloads keep what an unchanged deployment learned: a rate limit learned
 * from a mock that hides its limit (429s without headers) is still there after SIGHUP,
 * while 30 streams are under way through the reload and all end whole; a change of weight
 * keeps it too; a change of base URL starts that deployment afresh. Real processes on
 * loopback: two `skyio mock`, one `skyio serve`.
 */
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
#include <unistd.h>

#include "harness.h"
#include "harness_serve.h"
#include "harness_group.h"

#define STREAMS 30
#define LIM_SERIES "skyio_gateway_deployment_rate_limit_rpm{model=\"lim\",deployment=\"lim#0\"}"

typedef struct reload_env {
    sky_test_mock hidden, slow; /* a limit it does not tell; streams that take a while */
    sky_test_serve serve;
    char dir[256];
    char config[512];
    uv_loop_t *loop;
    sky_http_client *client;
} reload_env;

static reload_env env;

/* The config: "lim" on the hidden-limit mock (@p lim_path after its URL, @p weight), and
 * "steady" on the slow one; @p added adds a model. */
static void write_config(const char *lim_path, double weight, int added)
{
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", env.config);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(
        f,
        "{\"models\": {"
        " \"lim\": [{\"kind\": \"compatible\", \"base_url\": \"%s%s\", \"weight\": %g}],"
        " \"steady\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]%s}}\n",
        env.hidden.base_url, lim_path, weight, env.slow.base_url,
        added ? ", \"added\": [{\"kind\": \"compatible\", \"base_url\": \"http://127.0.0.1:9/v1\"}]"
              : "");
    fclose(f);
    assert_int_equal(rename(tmp, env.config), 0); /* a reader never sees half a file */
}

static int setup(void **state)
{
    (void)state;
    /* 300 a minute in one-second windows: 5 a second, and no header says so */
    static const char *const hidden[] = {"--rpm", "300", "--hide-ratelimit-headers", NULL};
    static const char *const slow[] = {"--per-token-ms", "30", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.hidden, hidden);
    sky_test_mock_start(&env.slow, slow);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    snprintf(env.config, sizeof(env.config), "%s/gateway.json", env.dir);
    write_config("/v1", 1, 0);
    const char *const args[] = {"--config", env.config, "--grace-ms", "2000", NULL};
    sky_test_serve_start(&env.serve, env.dir, args, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.hidden, &env.slow, NULL};
    sky_test_serve_teardown(&env.serve, env.loop, env.client, mocks, env.dir);
    return 0;
}

/* ---- requests ---- */

typedef struct burst {
    int n, done, ok, whole, throttled, all_done;
} burst;

static void on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                    void *ud)
{
    static const char last[] = "data: [DONE]\n\n";
    burst *b = ud;
    (void)req;
    size_t n = sizeof(last) - 1;
    if (err == NULL && res->status == 200)
        b->ok++;
    if (err == NULL && res->status == 429)
        b->throttled++;
    if (err == NULL && res->body.len >= n &&
        memcmp(res->body.ptr + res->body.len - n, last, n) == 0)
        b->whole++;
    b->all_done = ++b->done == b->n;
}

/* Start @p n chats of @p model at once (streamed or not); @p body must outlive them. */
static void send_burst(const char *model, int stream, int n, burst *b, char *body, size_t len)
{
    char url[256];
    sky_http_request_options o;
    memset(b, 0, sizeof(*b));
    b->n = n;
    snprintf(url, sizeof(url), "%s/v1/chat/completions", env.serve.base);
    snprintf(body, len,
             "{\"model\":\"%s\",\"stream\":%s,\"max_tokens\":10,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
             model, stream ? "true" : "false");
    sky_test_post_options(&o, url, body, on_done, b);
    o.timeout_ms = 30000;
    for (int i = 0; i < n; i++)
        assert_int_equal(sky_http_request_send(env.client, &o, NULL, NULL), 0);
}

static void run_burst(burst *b)
{
    sky_test_run_until(env.loop, &b->all_done, 40000);
    assert_int_equal(b->done, b->n);
}

/* A sample of the gateway's /metrics; -1 when it has none. */
static double metric(const char *series)
{
    return sky_test_serve_sample(&env.serve, env.loop, env.client, series);
}

/* SIGHUP, then wait until /metrics counts @p n reloads (the file is read off the loop). */
static void reload_and_wait(double n)
{
    assert_int_equal(kill(env.serve.pid, SIGHUP), 0);
    for (int i = 0; i < 500 && metric("skyio_gateway_config_reloads_total") < n; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_true(metric("skyio_gateway_config_reloads_total") == n);
}

/* ---- the test ---- */

static void test_reload_keeps_learned_limits(void **state)
{
    (void)state;
    char body[256], body2[256];
    burst b, streams;
    /* 40 at once against 5 a second: most are refused, and the deployment learns a limit */
    assert_true(metric(LIM_SERIES) == 0);
    send_burst("lim", 0, 40, &b, body, sizeof(body));
    run_burst(&b);
    assert_true(b.throttled > 0);
    double learned = metric(LIM_SERIES);
    /* near 300 a minute, probing a little above it now and then */
    if (!(learned > 0 && learned < 600))
        fail_msg("learned %g rpm after %d of 40 refused", learned, b.throttled);

    /* the same deployment, a model added, while 30 streams are under way */
    send_burst("steady", 1, STREAMS, &streams, body2, sizeof(body2));
    sky_test_run_until(env.loop, &streams.all_done, 100);
    write_config("/v1", 1, 1);
    reload_and_wait(1);
    run_burst(&streams);
    assert_int_equal(streams.ok, STREAMS);
    assert_int_equal(streams.whole, STREAMS);
    assert_true(metric("skyio_gateway_deployment_rate_limit_rpm{model=\"added\","
                       "deployment=\"added#2\"}") == 0);
    assert_true(metric(LIM_SERIES) == learned);

    /* a new weight is no new deployment */
    write_config("/v1", 2, 1);
    reload_and_wait(2);
    assert_true(metric(LIM_SERIES) == learned);

    /* another base URL is: it starts afresh */
    write_config("/v1/", 2, 1);
    reload_and_wait(3);
    assert_true(metric(LIM_SERIES) == 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload_keeps_learned_limits),
    };
    return sky_test_run_group(tests, setup, teardown);
}
