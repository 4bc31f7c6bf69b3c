/*
 * `skyio serve` under bursts (issue 17): 30 chat calls at once to a model with a fast
 * deployment (weight 2) and a throttled one (60 RPM, 8 at a time, as the live page's check
 * has it). Once the throttled one's limit is known, a burst sends it no call that its limiter
 * would hold while the fast one has room: earlier, such calls waited behind it for seconds.
 * Every call succeeds. Real processes on loopback: two `skyio mock`, one `skyio serve`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_serve.h"
#include "harness_group.h"

#define CALLS 30
#define BODY                                                                                       \
    "{\"model\":\"gpt-4o\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]" \
    "}"

typedef struct burst_env {
    sky_test_mock fast, slow;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} burst_env;

static burst_env env;

static void start_serve(void)
{
    char config[512];
    snprintf(config, sizeof(config), "%s/gateway.json", env.dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"models\": {\"gpt-4o\": ["
            "{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"weight\": 2, "
            "\"max_concurrency\": 64},"
            "{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"concurrency\": 8}]}}\n",
            env.fast.base_url, env.slow.base_url);
    fclose(f);
    const char *const args[] = {"--config", config, NULL};
    sky_test_serve_start_named(&env.serve, env.dir, "serve", args, NULL);
}

static int setup(void **state)
{
    (void)state;
    static const char *const fast[] = {"--ttft-ms", "5", NULL};
    static const char *const slow[] = {"--ttft-ms", "40", "--rpm", "60", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.fast, fast);
    sky_test_mock_start(&env.slow, slow);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    start_serve();
    env.loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(env.loop, NULL, &env.client), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_http_client_free(env.client);
    sky_test_loop_free(env.loop);
    int status = sky_test_stop_child(env.serve.pid);
    sky_test_mock_stop(&env.fast);
    sky_test_mock_stop(&env.slow);
    sky_test_rmdir(env.dir);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}

typedef struct burst {
    int done, ok, all_done;
} burst;

static void on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                    void *ud)
{
    burst *b = ud;
    (void)req;
    b->ok += err == NULL && res && res->status == 200;
    b->all_done = ++b->done == CALLS;
}

/* CALLS chats at once through the gateway, until all have answered. */
static void run_burst(burst *b)
{
    char url[256];
    sky_http_request_options o;
    memset(b, 0, sizeof(*b));
    snprintf(url, sizeof(url), "%s/v1/chat/completions", env.serve.base);
    sky_test_post_options(&o, url, BODY, on_done, b);
    o.timeout_ms = 60000;
    for (int i = 0; i < CALLS; i++)
        assert_int_equal(sky_http_request_send(env.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(env.loop, &b->all_done, 60000));
}

static void test_burst_not_held_by_the_throttled_deployment(void **state)
{
    (void)state;
    burst b;
    /* the first burst teaches the gateway the throttled deployment's limit (its headers) */
    run_burst(&b);
    assert_int_equal(b.ok, CALLS);
    for (int round = 0; round < 3; round++) {
        int64_t before = sky_test_mock_stat(&env.slow, "requests");
        run_burst(&b);
        assert_int_equal(b.ok, CALLS);
        /* at 60 RPM it may take the one call its limiter lets through now (two when a burst
         * spans a second): any more would have waited there while the fast one had room */
        assert_true(sky_test_mock_stat(&env.slow, "requests") - before <= 2);
        usleep(1100 * 1000); /* its next token */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_not_held_by_the_throttled_deployment),
    };
    return sky_test_run_group(tests, setup, teardown);
}
