/*
 * `skyio batch` through `skyio serve` (issue 17, "Tests"): a job sent to the gateway as to
 * any OpenAI-compatible server (--base-url, the gateway's client key in OPENAI_API_KEY).
 * The gateway moves each call from a deployment that refuses everything (503) to the
 * healthy one before any byte goes back; the batch paces itself by the x-ratelimit-* headers
 * of its key's budget (1,200 requests a minute) and waits out any 429 it gets: every line
 * ends in the output once, a success, and the healthy upstream answered each line once.
 * Real processes on loopback: two `skyio mock`, one `skyio serve`, one `skyio batch`.
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
#include "harness_cli.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define CLIENT_KEY "sk-client-batch-0001"
#define UPSTREAM_KEY "sk-upstream-batch-canary-91c2"
#define LINES 60

static struct {
    sky_test_mock good, broken;
    sky_test_serve serve;
    char dir[256];
} env;

static void serve_env(void)
{
    setenv("SKY_TEST_CLIENT_KEY", CLIENT_KEY, 1);
    setenv("SKY_TEST_UPSTREAM_KEY", UPSTREAM_KEY, 1);
}

static int setup(void **state)
{
    (void)state;
    static const char *const good[] = {"--key", UPSTREAM_KEY, NULL};
    static const char *const broken[] = {"--key", UPSTREAM_KEY, "--fault-503", "1", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.good, good);
    sky_test_mock_start(&env.broken, broken);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    char config[512];
    /* the broken deployment weighs most: the picks start there until its breaker opens */
    sky_test_gateway_config(config, sizeof(config), env.dir,
                            "{\"models\": {\"gpt-4o\": ["
                            "{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"key_env\": "
                            "\"SKY_TEST_UPSTREAM_KEY\", \"weight\": 10},"
                            "{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"key_env\": "
                            "\"SKY_TEST_UPSTREAM_KEY\", \"weight\": 1}]},"
                            " \"keys\": [{\"name\": \"batch\", \"key_env\": "
                            "\"SKY_TEST_CLIENT_KEY\", \"rpm\": 1200}]}\n",
                            env.broken.base_url, env.good.base_url);
    const char *const args[] = {"--config", config, "--grace-ms", "500", NULL};
    sky_test_serve_start(&env.serve, env.dir, args, serve_env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = sky_test_stop_child(env.serve.pid);
    int leaked = sky_test_file_holds(env.dir, "stderr.log", UPSTREAM_KEY) ||
                 sky_test_file_holds(env.dir, "stdout.log", UPSTREAM_KEY) ||
                 sky_test_file_holds(env.dir, "out.jsonl", UPSTREAM_KEY);
    sky_test_mock *const mocks[] = {&env.good, &env.broken, NULL};
    sky_test_serve_teardown(NULL, NULL, NULL, mocks, env.dir);
    assert_false(leaked);
    assert_true(sky_test_exited_ok(status));
    return 0;
}

static void write_input(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < LINES; i++)
        fprintf(f,
                "{\"custom_id\":\"line-%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                "\"body\":{\"model\":\"gpt-4o\",\"max_tokens\":5,"
                "\"messages\":[{\"role\":\"user\",\"content\":\"hi %d\"}]}}\n",
                i, i);
    fclose(f);
}

/* Each custom_id of the input once in @p path, each a 200 with a chat completion. */
static void check_output(const char *path)
{
    static char seen[LINES];
    char line[1 << 14];
    int n = 0;
    memset(seen, 0, sizeof(seen));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        json_t *j = NULL;
        int id = -1;
        assert_int_equal(sky_json_parse(sky_span_cstr(line), &j, NULL), 0);
        assert_int_equal(sscanf(sky_json_str(j, "custom_id", ""), "line-%d", &id), 1);
        assert_true(id >= 0 && id < LINES && !seen[id]);
        seen[id] = 1;
        assert_int_equal(sky_json_int(json_object_get(j, "response"), "status_code", 0), 200);
        assert_string_equal(sky_json_str(sky_json_path(j, "response.body"), "object", ""),
                            "chat.completion");
        json_decref(j);
        n++;
    }
    fclose(f);
    assert_int_equal(n, LINES);
}

static void test_batch_through_the_gateway(void **state)
{
    (void)state;
    char in[512], out[512];
    sky_test_cli_out r;
    snprintf(in, sizeof(in), "%s/in.jsonl", env.dir);
    snprintf(out, sizeof(out), "%s/out.jsonl", env.dir);
    write_input(in);
    setenv("OPENAI_API_KEY", CLIENT_KEY, 1);
    unsetenv("OPENAI_BASE_URL");
    unsetenv("AZURE_OPENAI_ENDPOINT");
    sky_test_run_skyio(&r, "batch", "%s -o %s --base-url %s/v1 --json --no-timeline", in, out,
                       env.serve.base);
    unsetenv("OPENAI_API_KEY");
    if (r.code != 0)
        fprintf(stderr, "%s\n%s\n", r.out, r.err);
    assert_int_equal(r.code, 0);
    json_t *s = sky_test_cli_json(&r);
    assert_int_equal(sky_json_int(s, "ok", -1), LINES);
    assert_int_equal(sky_json_int(s, "failed", -1), 0);
    json_decref(s);
    check_output(out);
    /* each line reached the healthy upstream once, and the broken deployment's 503s never
     * reached the batch */
    assert_int_equal(sky_test_mock_stat(&env.good, "endpoints.chat"), LINES);
    assert_int_equal(sky_test_mock_stat(&env.good, "responses.200"), LINES);
    assert_true(sky_test_mock_stat(&env.broken, "responses.503") >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_through_the_gateway),
    };
    return sky_test_run_group(tests, setup, teardown);
}
