/*
 * `skyio serve` moves a request to another deployment for each cause issue 17 names, before
 * the first byte has gone to the client: a 429, an overload (529), a 500 and a 502 (the
 * 503 and a closed port are in test_serve_failover.c), a reset connection and a timeout
 * (an upstream that never answers, past --upstream-timeout-ms). For each, a model of two
 * deployments, the failing one weighing fifty times the healthy one: every call, plain and
 * streamed, is answered 200, by the healthy one after the failing one was tried and failed
 * (the mocks' stats).
 * Real processes on loopback: seven `skyio mock` (six failing, each its own way, and one
 * healthy), one `skyio serve`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define CALLS 6

typedef struct cause {
    const char *model;       /* the gateway's model of the failing deployment */
    const char *const *args; /* the failing mock's flags */
    const char *stat;        /* its stats' count of the failures */
    sky_test_mock mock;
} cause;

static const char *const refuse_429[] = {"--refuse-status", "429", "--refuse-code",
                                         "rate_limit_exceeded", NULL};
static const char *const overload_529[] = {
    "--overload-rps", "0.001", "--overload-burst", "0", "--overload-status", "529", NULL};
static const char *const fail_500[] = {"--fault-500", "1", NULL};
static const char *const fail_502[] = {"--fault-502", "1", NULL};
static const char *const reset[] = {"--fault-reset", "1", NULL};
static const char *const hang[] = {"--fault-hang", "1", NULL};

static cause causes[] = {
    {"c429", refuse_429, "responses.429", {0}}, {"c529", overload_529, "overloaded", {0}},
    {"c500", fail_500, "faults.http_500", {0}}, {"c502", fail_502, "faults.http_502", {0}},
    {"creset", reset, "faults.reset", {0}},     {"chang", hang, "faults.hang", {0}},
};
#define N_CAUSES (sizeof(causes) / sizeof(causes[0]))

static struct {
    sky_test_mock good;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static void write_config(char *path, size_t len)
{
    char models[4096];
    size_t at = 0;
    for (size_t i = 0; i < N_CAUSES; i++)
        at += (size_t)snprintf(models + at, sizeof(models) - at,
                               "%s\"%s\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", "
                               "\"weight\": 50}, {\"kind\": \"compatible\", \"base_url\": "
                               "\"%s/v1\", \"weight\": 1}]",
                               i ? ", " : "", causes[i].model, causes[i].mock.base_url,
                               env.good.base_url);
    assert_true(at < sizeof(models));
    sky_test_gateway_config(path, len, env.dir, "{\"models\": {%s}}\n", models);
}

static int setup(void **state)
{
    (void)state;
    memset(&env, 0, sizeof(env));
    for (size_t i = 0; i < N_CAUSES; i++)
        sky_test_mock_start(&causes[i].mock, causes[i].args);
    sky_test_mock_start(&env.good, NULL);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    char config[512];
    write_config(config, sizeof(config));
    /* a hung upstream is given up after half a second */
    const char *const args[] = {"--config", config, "--upstream-timeout-ms", "500", NULL};
    sky_test_serve_start(&env.serve, env.dir, args, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *mocks[N_CAUSES + 2] = {NULL};
    for (size_t i = 0; i < N_CAUSES; i++)
        mocks[i] = &causes[i].mock;
    mocks[N_CAUSES] = &env.good;
    sky_test_serve_teardown(&env.serve, env.loop, env.client, mocks, env.dir);
    return 0;
}

static void calls_move_to_the_healthy_one(const cause *c)
{
    int64_t good0 = sky_test_mock_stat_or(&env.good, "responses.200", 0);
    int64_t bad0 = sky_test_mock_stat_or(&c->mock, "responses.200", 0);
    for (int i = 0; i < CALLS; i++) {
        char body[200];
        sky_test_result r;
        snprintf(body, sizeof(body),
                 "{\"model\":\"%s\",%s\"max_tokens\":4,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 c->model, i % 2 ? "\"stream\":true," : "");
        sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/chat/completions", body,
                            NULL, NULL, &r);
        assert_int_equal(r.err_code, 0);
        if (r.status != 200)
            fprintf(stderr, "%s call %d: %d %s\n", c->model, i, r.status, r.body);
        assert_int_equal(r.status, 200);
        if (i % 2)
            assert_non_null(strstr(r.body, "data: [DONE]"));
        else
            assert_non_null(strstr(r.body, "\"chat.completion\""));
        sky_test_result_free(&r);
    }
    /* the failing deployment was tried and failed; each call was answered once upstream
     * (the overloaded mock lets its first call through: the others, the healthy one) */
    int64_t bad = sky_test_mock_stat_or(&c->mock, "responses.200", 0) - bad0;
    int64_t good = sky_test_mock_stat_or(&env.good, "responses.200", 0) - good0;
    assert_true(sky_test_mock_stat_or(&c->mock, c->stat, 0) >= 1);
    assert_true(bad <= 1);
    assert_int_equal(bad + good, CALLS);
}

static void test_429(void **state)
{
    (void)state;
    calls_move_to_the_healthy_one(&causes[0]);
}

static void test_overload_529(void **state)
{
    (void)state;
    calls_move_to_the_healthy_one(&causes[1]);
}

static void test_500(void **state)
{
    (void)state;
    calls_move_to_the_healthy_one(&causes[2]);
}

static void test_502(void **state)
{
    (void)state;
    calls_move_to_the_healthy_one(&causes[3]);
}

static void test_reset(void **state)
{
    (void)state;
    calls_move_to_the_healthy_one(&causes[4]);
}

static void test_timeout(void **state)
{
    (void)state;
    calls_move_to_the_healthy_one(&causes[5]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_429),   cmocka_unit_test(test_overload_529),
        cmocka_unit_test(test_500),   cmocka_unit_test(test_502),
        cmocka_unit_test(test_reset), cmocka_unit_test(test_timeout),
    };
    return sky_test_run_group(tests, setup, teardown);
}
