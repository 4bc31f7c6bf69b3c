/*
 * `skyio serve` passes its clients' concurrency through: 300 streams at once to a
 * deployment whose first token takes 500 ms are all in flight at the upstream together,
 * not queued inside the gateway; a deployment with "max_concurrency": 10 gets 10 at most.
 * Real processes on loopback: two `skyio mock`, one `skyio serve`.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_serve.h"
#include "harness_group.h"

#define STREAMS 300
#define CAPPED_CALLS 40
#define CAP 10
#define STREAM_BODY                                                                                \
    "{\"model\":\"%s\",\"stream\":true,\"max_tokens\":10,"                                         \
    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

typedef struct conc_env {
    sky_test_mock open, capped; /* behind a deployment without a limit, and one of CAP */
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} conc_env;

static conc_env env;

/* ---- starting serve ---- */

static void start_serve(void)
{
    char config[512];
    sky_test_gateway_config(config, sizeof(config), env.dir,
                            "{\"models\": {"
                            " \"open\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}],"
                            " \"capped\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", "
                            "\"max_concurrency\": %d}]}}\n",
                            env.open.base_url, env.capped.base_url, CAP);
    const char *const args[] = {"--config", config, "--grace-ms", "2000", NULL};
    sky_test_serve_start_named(&env.serve, env.dir, "serve", args, NULL);
}

static int setup(void **state)
{
    (void)state;
    /* 500 ms to the first token, then 10 tokens 50 ms apart: a stream is in flight at the
     * mock for a second, long enough for all of them to have arrived */
    static const char *const slow[] = {"--ttft-ms", "500", "--per-token-ms", "50", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.open, slow);
    sky_test_mock_start(&env.capped, slow);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    start_serve();
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.open, &env.capped, NULL};
    sky_test_serve_teardown(&env.serve, env.loop, env.client, mocks, env.dir);
    return 0;
}

/* ---- many streams at once ---- */

typedef struct burst {
    int n, done, ok, all_done;
} burst;

/* A whole stream: it ends with OpenAI's last event. */
static int whole_stream(sky_span body)
{
    static const char last[] = "data: [DONE]\n\n";
    size_t n = sizeof(last) - 1;
    return body.len >= n && memcmp(body.ptr + body.len - n, last, n) == 0;
}

static void on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                    void *ud)
{
    burst *b = ud;
    (void)req;
    int whole = res && whole_stream(res->body);
    if (err == NULL && res && res->status == 200 && whole)
        b->ok++;
    b->all_done = ++b->done == b->n;
}

/* Start @p n streamed chats of @p model through the gateway, all at once. */
static void send_burst(const char *model, int n, burst *b, char *body, size_t body_len)
{
    char url[256];
    sky_http_request_options o;
    memset(b, 0, sizeof(*b));
    b->n = n;
    snprintf(url, sizeof(url), "%s/v1/chat/completions", env.serve.base);
    snprintf(body, body_len, STREAM_BODY, model);
    sky_test_post_options(&o, url, body, on_done, b);
    o.timeout_ms = 30000;
    for (int i = 0; i < n; i++)
        assert_int_equal(sky_http_request_send(env.client, &o, NULL, NULL), 0);
}

/* Run the loop until the burst ends, reading the mock's calls in flight every 10 ms or
 * so; the most seen. */
static int64_t peak_in_flight(const sky_test_mock *m, burst *b)
{
    int64_t peak = 0;
    uint64_t deadline = uv_hrtime() + UINT64_C(40000) * 1000000;
    while (!b->all_done && uv_hrtime() < deadline) {
        int64_t now = sky_test_wait_stat(env.loop, m, "in_flight", INT64_MAX, 0);
        if (now > peak)
            peak = now;
        sky_test_run_until(env.loop, &b->all_done, 10);
    }
    return peak;
}

static void test_streams_go_upstream_together(void **state)
{
    (void)state;
    char body[256];
    burst b;
    send_burst("open", STREAMS, &b, body, sizeof(body));
    int64_t peak = peak_in_flight(&env.open, &b);
    assert_int_equal(b.done, STREAMS);
    assert_int_equal(b.ok, STREAMS);
    /* every stream was at the upstream at the same time: none waited in the gateway (a
     * limit of about 20 would have held 280 of them back for rounds of 1.5 s each) */
    assert_int_equal(peak, STREAMS);
    json_t *st = sky_test_mock_stats(&env.open);
    assert_int_equal(json_integer_value(json_object_get(st, "streams")), STREAMS);
    json_decref(st);
}

static void test_max_concurrency_holds(void **state)
{
    (void)state;
    char body[256];
    burst b;
    send_burst("capped", CAPPED_CALLS, &b, body, sizeof(body));
    int64_t peak = peak_in_flight(&env.capped, &b);
    assert_int_equal(b.done, CAPPED_CALLS);
    assert_int_equal(b.ok, CAPPED_CALLS);
    /* the rest waited in the gateway for a slot: 10 at a time, never more */
    assert_int_equal(peak, CAP);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams_go_upstream_together),
        cmocka_unit_test(test_max_concurrency_holds),
    };
    return sky_test_run_group(tests, setup, teardown);
}
