/*
 * Usage records past the bound while PostgreSQL is away, through `skyio serve` (issue 18,
 * "Faults": nothing lost below the bound, the loss above it counted in the metrics). With
 * --usage-queue-max 3 and no spill file, calls served while the server is down keep three
 * records in memory; the rest are counted in /metrics as lost. Once PostgreSQL is back the
 * kept ones are written: what is written and what was counted lost add up to every call,
 * and `skyio usage` shows the written ones. The spill file's side has its own test
 * (test_serve_usage.c).
 * Real processes on loopback: one `skyio mock`, a PostgreSQL (initdb + pg_ctl in a temp
 * folder), `skyio serve`, `skyio usage`.
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
#include "harness_cli.h"
#include "harness_postgres.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define WRITTEN "skyio_gateway_usage_records_total{state=\"written\"}"
#define LOST "skyio_gateway_usage_records_total{state=\"lost\"}"
#define QUEUED "skyio_gateway_usage_records_queued"
#define AWAY_CALLS 10

static struct {
    sky_test_mock mock;
    sky_test_pg pg;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static int setup(void **state)
{
    (void)state;
    memset(&env, 0, sizeof(env));
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = sky_test_stop_child(env.serve.pid);
    if (env.pg.running || env.pg.dir[0])
        sky_test_pg_free(&env.pg);
    sky_test_mock *const mocks[] = {&env.mock, NULL};
    sky_test_serve_teardown(NULL, env.loop, env.client, mocks, env.dir);
    assert_true(sky_test_exited_ok(status));
    return 0;
}

static int chat_status(void)
{
    sky_test_result r;
    sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/chat/completions",
                        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        NULL, NULL, &r);
    assert_int_equal(r.err_code, 0);
    int st = r.status;
    sky_test_result_free(&r);
    return st;
}

static double metric(const char *series)
{
    return sky_test_serve_sample(&env.serve, env.loop, env.client, series);
}

/* Poll the metrics until @p series is at least @p want (10 s at most); its last value. */
static double wait_metric(const char *series, double want)
{
    double v = -1;
    for (int i = 0; i < 200 && (v = metric(series)) < want; i++)
        usleep(50000);
    return v;
}

/* The requests `skyio usage --postgres` counts for model m. */
static int64_t usage_requests(void)
{
    sky_test_cli_out out;
    sky_test_run_skyio(&out, "usage", "--postgres %s --json", env.pg.url);
    assert_int_equal(out.code, 0);
    json_t *doc = sky_test_cli_json(&out);
    int64_t n = 0;
    json_t *rows = json_object_get(doc, "totals");
    for (size_t i = 0; i < json_array_size(rows); i++)
        if (!strcmp(sky_json_str(json_array_get(rows, i), "model", ""), "m"))
            n += sky_json_int(json_array_get(rows, i), "requests", 0);
    json_decref(doc);
    return n;
}

static void test_loss_over_the_bound_is_counted(void **state)
{
    (void)state;
    if (!sky_test_pg_available()) {
        print_message("postgres: initdb and pg_ctl not installed; skipped\n");
        skip();
    }
    sky_test_pg_start(&env.pg);
    char config[512];
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
        env.mock.base_url);
    const char *const args[] = {"--config",          config, "--postgres", env.pg.url,
                                "--usage-queue-max", "3",    NULL};
    sky_test_serve_start(&env.serve, env.dir, args, NULL);
    assert_int_equal(chat_status(), 200);
    assert_int_equal(wait_metric(WRITTEN, 1), 1);
    sky_test_pg_stop(&env.pg);
    for (int i = 0; i < AWAY_CALLS; i++) /* served while PostgreSQL is away */
        assert_int_equal(chat_status(), 200);
    /* past the bound of three: counted lost, never more than the calls */
    double lost = wait_metric(LOST, AWAY_CALLS - 3);
    assert_true(lost >= AWAY_CALLS - 3 && lost <= AWAY_CALLS);
    assert_true(metric(QUEUED) <= 3);
    sky_test_pg_restart(&env.pg);
    /* the kept ones are written: written and lost add up to every call */
    double written = wait_metric(WRITTEN, 1 + AWAY_CALLS - lost);
    assert_true(written == 1 + AWAY_CALLS - lost);
    assert_true(metric(LOST) == lost);
    sky_test_serve_stop_ok(&env.serve);
    assert_int_equal(usage_requests(), (int64_t)written);
    assert_int_equal(sky_test_mock_stat(&env.mock, "endpoints.chat"), 1 + AWAY_CALLS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_over_the_bound_is_counted),
    };
    return sky_test_run_group(tests, setup, teardown);
}
