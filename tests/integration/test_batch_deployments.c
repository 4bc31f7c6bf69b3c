/*
 * A batch spread over several deployments (skyio/batch.h's deployments, `skyio batch
 * --config` and `--deployments`), against `skyio mock` processes on loopback, each with a
 * hidden rate limit: every line succeeds and every deployment serves a share; one that is
 * down, from the start or killed during the run, is avoided and no line fails; lines go to
 * the deployments of the model their body names. What each mock answered is read from its
 * stats.
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
#include "harness_batch.h"
#include "harness_cli.h"
#include "skyio/batch.h"
#include "skyio/json.h"

#define N_MOCKS 3

typedef struct run {
    uv_loop_t *loop;
    sky_http_client *client;
    sky_batch_source *src;
    sky_batch_store *store;
    sky_batch *batch;
    int finished;
    sky_batch_summary summary;
    char urls[N_MOCKS][160];
} run;

static void on_event(sky_batch *b, const sky_batch_event *ev, void *ud)
{
    run *r = ud;
    (void)b;
    if (ev->kind == SKY_BATCH_EVENT_FAULT || ev->kind == SKY_BATCH_EVENT_UNREACHABLE)
        fprintf(stderr, "event %d: %s\n", ev->kind, ev->error ? ev->error->message : "");
    if (ev->kind == SKY_BATCH_EVENT_FINISHED) {
        r->finished++;
        r->summary = *ev->summary;
    }
}

/* A run of @p n lines over @p n_deps deployments of @p mocks (model @p models[i], NULL: "a"). */
static void run_open(run *r, const sky_test_mock *mocks, size_t n_deps, const char *const *models,
                     int n, const char *line_model)
{
    sky_batch_options o;
    sky_route_deployment deps[N_MOCKS];
    sky_error err;
    memset(r, 0, sizeof(*r));
    sky_error_clear(&err);
    sky_test_client_open(&r->loop, &r->client);
    for (size_t i = 0; i < n_deps; i++) {
        snprintf(r->urls[i], sizeof(r->urls[i]), "%s/v1", mocks[i].base_url);
        sky_route_deployment_init(&deps[i]);
        deps[i].model = models ? models[i] : "a";
        deps[i].kind = SKY_ROUTE_COMPATIBLE;
        deps[i].base_url = r->urls[i];
    }
    r->src = sky_batch_memory_source_new();
    r->store = sky_batch_memory_store_new();
    /* NULL: every other line "b", the rest "a" */
    sky_test_batch_add_lines(r->src, n, line_model ? line_model : "a", line_model ? NULL : "b");
    sky_batch_options_init(&o);
    o.deployments = deps;
    o.n_deployments = n_deps;
    o.on_event = on_event;
    o.user_data = r;
    assert_int_equal(sky_batch_new(r->loop, r->client, &o, r->src, r->store, &r->batch, &err), 0);
    assert_int_equal(sky_batch_start(r->batch), 0);
}

static void run_close(run *r)
{
    sky_batch_free(r->batch);
    sky_http_client_free(r->client);
    sky_test_loop_free(r->loop);
    assert_int_equal(r->finished, 1);
    sky_batch_memory_source_free(r->src);
    sky_batch_memory_store_free(r->store);
}

static void start_mocks(sky_test_mock *m, int n, const char *const *rpm)
{
    memset(m, 0, (size_t)n * sizeof(*m));
    for (int i = 0; i < n; i++) {
        const char *args[] = {"--rpm", rpm[i], "--hide-ratelimit-headers", "--ttft-ms", "5", NULL};
        sky_test_mock_start(&m[i], args);
    }
}

static void stop_mocks(sky_test_mock *m, int n)
{
    for (int i = 0; i < n; i++)
        if (m[i].pid > 0)
            (void)sky_test_mock_stop(&m[i]);
}

static void test_every_deployment_serves_a_share(void **state)
{
    (void)state;
    sky_test_mock m[N_MOCKS];
    const char *rpm[] = {"600", "1200", "1800"};
    run r;
    start_mocks(m, N_MOCKS, rpm);
    run_open(&r, m, N_MOCKS, NULL, 240, "a");
    assert_true(sky_test_run_until(r.loop, &r.finished, 60000));
    assert_int_equal(sky_test_batch_count_ok(r.store), 240);
    assert_int_equal(r.summary.progress.failed, 0);
    int64_t served = 0, limited = 0;
    for (int i = 0; i < N_MOCKS; i++) {
        int64_t ok = sky_test_mock_stat(&m[i], "responses.200");
        assert_true(ok > 0); /* each took a share */
        served += ok;
        limited += sky_test_mock_stat(&m[i], "rate_limited");
    }
    assert_int_equal(served, 240); /* nothing asked twice once answered */
    /* the 429s were moved elsewhere and counted */
    assert_int_equal((int64_t)r.summary.progress.responses_429, limited);
    run_close(&r);
    stop_mocks(m, N_MOCKS);
}

/* Run until @p want records are in, at most 30 s. */
static void run_until_records(run *r, size_t want)
{
    uint64_t end = uv_now(r->loop) + 30000;
    while (sky_batch_memory_store_count(r->store) < want && !r->finished && uv_now(r->loop) < end)
        uv_run(r->loop, UV_RUN_ONCE);
}

static void test_a_deployment_down_is_avoided(void **state)
{
    (void)state;
    sky_test_mock m[N_MOCKS];
    const char *rpm[] = {"0", "0", "0"};
    run r;
    start_mocks(m, N_MOCKS, rpm);
    (void)sky_test_mock_stop(&m[2]); /* down from the start: nothing there answers */
    m[2].pid = 0;
    run_open(&r, m, N_MOCKS, NULL, 300, "a");
    run_until_records(&r, 60);
    (void)sky_test_mock_stop(&m[1]); /* and another killed during the run */
    m[1].pid = 0;
    assert_true(sky_test_run_until(r.loop, &r.finished, 60000));
    assert_int_equal(sky_test_batch_count_ok(r.store), 300);
    assert_int_equal(r.summary.progress.failed, 0);
    assert_false(r.summary.unreachable);
    assert_true(sky_test_mock_stat(&m[0], "responses.200") > 0);
    run_close(&r);
    stop_mocks(m, N_MOCKS);
}

static void test_lines_go_to_their_model(void **state)
{
    (void)state;
    sky_test_mock m[2];
    const char *rpm[] = {"0", "0"};
    const char *models[] = {"a", "b"};
    run r;
    start_mocks(m, 2, rpm);
    run_open(&r, m, 2, models, 40, NULL);
    assert_true(sky_test_run_until(r.loop, &r.finished, 30000));
    assert_int_equal(sky_test_batch_count_ok(r.store), 40);
    assert_int_equal(sky_test_mock_stat(&m[0], "responses.200"), 20);
    assert_int_equal(sky_test_mock_stat(&m[1], "responses.200"), 20);
    run_close(&r);
    /* a model no deployment serves, among several: a bad line, nothing sent */
    run_open(&r, m, 2, models, 3, "c");
    assert_true(sky_test_run_until(r.loop, &r.finished, 30000));
    assert_int_equal(sky_test_batch_count_ok(r.store), 0);
    assert_int_equal(r.summary.progress.bad_lines, 3);
    run_close(&r);
    stop_mocks(m, 2);
}

/* `skyio batch --config gateway.json` and `--deployments URL,URL`. */
static void test_cli_config_and_deployments(void **state)
{
    (void)state;
    sky_test_mock m[2];
    const char *rpm[] = {"600", "0"};
    char dir[256], path[512], text[1024];
    sky_test_cli_out out;
    start_mocks(m, 2, rpm);
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/in.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 30; i++)
        fprintf(f,
                "{\"custom_id\":\"c-%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                "\"body\":{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"hi\"}],\"max_tokens\":5}}\n",
                i);
    fclose(f);
    snprintf(text, sizeof(text),
             "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}, "
             "{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"weight\": 2}]},"
             " \"keys\": [{\"name\": \"ci\", \"key_env\": \"SKY_TEST_UNSET_KEY\"}]}",
             m[0].base_url, m[1].base_url);
    snprintf(path, sizeof(path), "%s/gw.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    sky_test_run_skyio(&out, "batch", "%s/in.jsonl --config %s/gw.json --json --no-timeline", dir,
                       dir);
    assert_int_equal(out.code, 0);
    json_t *s = sky_test_cli_json(&out);
    assert_int_equal(json_integer_value(json_object_get(s, "ok")), 30);
    json_decref(s);
    sky_test_run_skyio(&out, "batch",
                       "%s/in.jsonl -o %s/two.jsonl --deployments %s/v1,%s/v1 --json --no-timeline",
                       dir, dir, m[0].base_url, m[1].base_url);
    assert_int_equal(out.code, 0);
    s = sky_test_cli_json(&out);
    assert_int_equal(json_integer_value(json_object_get(s, "ok")), 30);
    json_decref(s);
    assert_int_equal(sky_test_mock_stat(&m[0], "responses.200") +
                         sky_test_mock_stat(&m[1], "responses.200"),
                     60);
    sky_test_rmdir(dir);
    stop_mocks(m, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_deployment_serves_a_share),
        cmocka_unit_test(test_a_deployment_down_is_avoided),
        cmocka_unit_test(test_lines_go_to_their_model),
        cmocka_unit_test(test_cli_config_and_deployments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
