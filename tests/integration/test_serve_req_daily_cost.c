/*
 * A key's daily cost cap through `skyio serve` (issue 18, "Usage": key budgets, daily token
 * or cost caps, enforced from the usage): the gateway prices each call from the config's
 * table; once a key's cost today reaches its "daily_cost", it gets 429 (OpenAI's
 * insufficient_quota shape, code daily_budget_exceeded) until midnight UTC, counted in
 * /metrics under cap="cost"; another key is not held; and a restart on the same --state file
 * keeps the day's cost, so the key is still refused. `skyio usage` shows the cost that
 * reached the cap. The daily token cap has its own test (test_serve_usage.c).
 * Real processes on loopback: one `skyio mock`, `skyio serve` twice, `skyio usage`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "harness_cli.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define SPENDER_KEY "sk-spender-5e1d"
#define OTHER_KEY "sk-other-77a0"
#define DAILY_COST 0.5 /* a call costs some 0.2 at the prices below */

static struct {
    sky_test_mock mock;
    char dir[256], config[512], db[512];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static void keys_in_env(void)
{
    setenv("SKY_TEST_SPENDER_KEY", SPENDER_KEY, 1);
    setenv("SKY_TEST_OTHER_KEY", OTHER_KEY, 1);
}

static int setup(void **state)
{
    (void)state;
    memset(&env, 0, sizeof(env));
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    snprintf(env.db, sizeof(env.db), "%s/state.db", env.dir);
    sky_test_gateway_config(
        env.config, sizeof(env.config), env.dir,
        "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]},"
        " \"keys\": [{\"name\": \"spender\", \"key_env\": \"SKY_TEST_SPENDER_KEY\","
        "             \"daily_cost\": %g},"
        "            {\"name\": \"other\", \"key_env\": \"SKY_TEST_OTHER_KEY\"}],"
        " \"prices\": {\"gpt-4o\": {\"input_per_1m\": 2500, \"output_per_1m\": 10000}}}\n",
        env.mock.base_url, DAILY_COST);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.mock, NULL};
    sky_test_serve_teardown(NULL, env.loop, env.client, mocks, env.dir);
    return 0;
}

static void start(sky_test_serve *s, const char *name)
{
    const char *const args[] = {"--config", env.config, "--state", env.db, NULL};
    sky_test_serve_start_named(s, env.dir, name, args, keys_in_env);
}

static void chat(const sky_test_serve *s, const char *key, sky_test_result *out)
{
    sky_test_serve_call(s, env.loop, env.client, "POST", "/v1/chat/completions",
                        "{\"model\":\"gpt-4o\",\"max_tokens\":16,"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}]}",
                        key, NULL, out);
    assert_int_equal(out->err_code, 0);
}

static int chat_status(const sky_test_serve *s, const char *key)
{
    sky_test_result r;
    chat(s, key, &r);
    int st = r.status;
    sky_test_result_free(&r);
    return st;
}

/* The refusal of the spender's key: the cost cap named, retry-after to midnight UTC. */
static void assert_cost_refusal(const sky_test_serve *s)
{
    sky_test_result r;
    chat(s, SPENDER_KEY, &r);
    assert_int_equal(r.status, 429);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(sky_json_path(j, "error.type")), "insufficient_quota");
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")), "daily_budget_exceeded");
    const char *msg = json_string_value(sky_json_path(j, "error.message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "Daily cost budget reached for key 'spender'"));
    json_decref(j);
    const char *ra = json_string_value(json_object_get(r.headers, "retry-after"));
    assert_non_null(ra);
    long long to_midnight = 86400 - (long long)(time(NULL) % 86400);
    assert_true(llabs(atoll(ra) - to_midnight) <= 120);
    sky_test_result_free(&r);
}

static double metric(const sky_test_serve *s, const char *series)
{
    return sky_test_serve_sample(s, env.loop, env.client, series);
}

/* The spender's cost today, as `skyio usage --state --json` totals it. */
static double usage_cost(void)
{
    sky_test_cli_out out;
    sky_test_run_skyio(&out, "usage", "--state %s --json", env.db);
    assert_int_equal(out.code, 0);
    json_t *doc = sky_test_cli_json(&out);
    double cost = 0;
    json_t *rows = json_object_get(doc, "totals");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        if (!strcmp(sky_json_str(row, "key", ""), "spender"))
            cost += json_number_value(json_object_get(row, "cost"));
    }
    json_decref(doc);
    return cost;
}

static void test_daily_cost_cap(void **state)
{
    (void)state;
    sky_test_serve s;
    start(&s, "first");
    int through = 0;
    while (through < 20 && chat_status(&s, SPENDER_KEY) == 200)
        through++;
    /* refused once the cost reached the cap: after a few calls, not at the first */
    assert_true(through >= 2 && through < 20);
    assert_cost_refusal(&s);
    assert_true(metric(&s, "skyio_gateway_key_daily_refused_total{cap=\"cost\"}") >= 2);
    assert_true(metric(&s, "skyio_gateway_key_daily_refused_total{cap=\"tokens\"}") <= 0);
    assert_int_equal(chat_status(&s, OTHER_KEY), 200); /* no cap of its own */
    sky_test_serve_stop_ok(&s);
    /* every call that went through was priced and recorded: their cost reached the cap */
    assert_int_equal(sky_test_mock_stat(&env.mock, "endpoints.chat"), through + 1);
    double cost = usage_cost();
    assert_true(cost >= DAILY_COST && cost < DAILY_COST * 4);

    /* a restart on the same file: the day's cost is read back, the key still refused */
    start(&s, "second");
    assert_cost_refusal(&s);
    assert_int_equal(chat_status(&s, OTHER_KEY), 200);
    sky_test_serve_stop_ok(&s);
    assert_int_equal(sky_test_mock_stat(&env.mock, "endpoints.chat"), through + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daily_cost_cap),
    };
    return sky_test_run_group(tests, setup, teardown);
}
