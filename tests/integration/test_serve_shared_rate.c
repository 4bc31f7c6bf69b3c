/*
 * `skyio serve --threads 2`: a deployment's learned rate limit holds for the loops together
 * (issue 17). The upstream (a mock at 60 RPM, one request a second) announces its limit in
 * x-ratelimit-* headers; one call teaches it to the gateway, then ten calls at once over ten
 * connections (spread over both loops) are paced at one a second for the whole gateway, so
 * the upstream refuses none and every call succeeds. With a limiter per loop, the loop that
 * had not seen a reply sent its calls at once and the upstream refused them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_serve.h"
#include "harness_group.h"

#define CALLS 10
#define BODY                                                                                       \
    "{\"model\":\"gpt-4o\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]" \
    "}"

typedef struct rate_env {
    sky_test_mock upstream;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *clients[CALLS];
} rate_env;

static rate_env env;

static int setup(void **state)
{
    (void)state;
    static const char *const limited[] = {"--rpm", "60", NULL};
    char config[512];
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.upstream, limited);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
        env.upstream.base_url);
    const char *const args[] = {"--config", config, "--threads", "2", "--grace-ms", "2000", NULL};
    sky_test_serve_start(&env.serve, env.dir, args, sky_test_serve_lsan_threads);
    env.loop = sky_test_loop_new();
    for (int i = 0; i < CALLS; i++)
        assert_int_equal(sky_http_client_new(env.loop, NULL, &env.clients[i]), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < CALLS; i++)
        sky_http_client_free(env.clients[i]);
    sky_test_loop_free(env.loop);
    int status = sky_test_stop_child(env.serve.pid);
    sky_test_mock_stop(&env.upstream);
    sky_test_rmdir(env.dir);
    assert_true(sky_test_exited_ok(status));
    return 0;
}

typedef struct wave {
    int n, done, ok, all_done;
} wave;

static void on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                    void *ud)
{
    wave *w = ud;
    (void)req;
    w->ok += err == NULL && res && res->status == 200;
    w->all_done = ++w->done == w->n;
}

/* @p n chats at once, each from a client (a connection) of its own. */
static void run_wave(wave *w, int n)
{
    char url[256];
    sky_http_request_options o;
    memset(w, 0, sizeof(*w));
    w->n = n;
    snprintf(url, sizeof(url), "%s/v1/chat/completions", env.serve.base);
    sky_test_post_options(&o, url, BODY, on_done, w);
    o.timeout_ms = 60000;
    for (int i = 0; i < n; i++)
        assert_int_equal(sky_http_request_send(env.clients[i], &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(env.loop, &w->all_done, 60000));
}

static void test_loops_keep_to_one_learned_limit(void **state)
{
    (void)state;
    wave w;
    run_wave(&w, 1); /* the limit, from the reply's headers */
    assert_int_equal(w.ok, 1);
    usleep(1100 * 1000); /* the upstream's next second */
    run_wave(&w, CALLS);
    assert_int_equal(w.ok, CALLS);
    /* paced for the gateway as a whole: the upstream refused none (one at most, should a
     * call cross its window's edge) */
    assert_true(sky_test_mock_stat(&env.upstream, "rate_limited") <= 1);
    assert_int_equal(sky_test_mock_stat(&env.upstream, "responses.200"), CALLS + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loops_keep_to_one_learned_limit),
    };
    return sky_test_run_group(tests, setup, teardown);
}
