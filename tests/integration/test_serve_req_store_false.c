/*
 * The Responses API's "store": false through `skyio serve --state` (issue 18,
 * "Conversations": `store: true` keeps a response; the tests only showed the kept side): an
 * answer asked with "store": false is not kept, so GET of its id is 404 and a turn after it
 * cannot name it, while one kept by default is there (the control).
 * Real processes on loopback: one `skyio mock`, one `skyio serve --state`.
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

static struct {
    sky_test_mock fast;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static int setup(void **state)
{
    (void)state;
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.fast, NULL);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    char config[512], db[512];
    snprintf(db, sizeof(db), "%s/state.db", env.dir);
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"fast\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
        env.fast.base_url);
    const char *const args[] = {"--config", config, "--state", db, "--grace-ms", "200", NULL};
    sky_test_serve_start(&env.serve, env.dir, args, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.fast, NULL};
    sky_test_serve_teardown(&env.serve, env.loop, env.client, mocks, env.dir);
    return 0;
}

/* POST /v1/responses with @p body: its id into @p id (200 expected). */
static void respond(const char *body, char *id, size_t len)
{
    json_t *j = sky_test_serve_json(&env.serve, env.loop, env.client, "POST", "/v1/responses", body,
                                    NULL, 200);
    snprintf(id, len, "%s", sky_json_str(j, "id", ""));
    json_decref(j);
    assert_int_equal(strncmp(id, "resp_", 5), 0);
}

static int get_status(const char *id)
{
    char path[160];
    sky_test_result r;
    snprintf(path, sizeof(path), "/v1/responses/%s", id);
    sky_test_serve_call(&env.serve, env.loop, env.client, "GET", path, NULL, NULL, NULL, &r);
    int st = r.status;
    sky_test_result_free(&r);
    return st;
}

static void test_store_false_is_not_kept(void **state)
{
    (void)state;
    char kept[96], unkept[96], body[256];
    respond("{\"model\":\"fast\",\"input\":\"keep this\"}", kept, sizeof(kept));
    respond("{\"model\":\"fast\",\"input\":\"forget this\",\"store\":false}", unkept,
            sizeof(unkept));
    assert_int_equal(get_status(kept), 200);
    assert_int_equal(get_status(unkept), 404);
    snprintf(body, sizeof(body),
             "{\"model\":\"fast\",\"input\":\"and?\",\"previous_response_id\":\"%s\"}", unkept);
    sky_test_result r;
    sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/responses", body, NULL, NULL,
                        &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "previous_response_id"));
    sky_test_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_false_is_not_kept),
    };
    return sky_test_run_group(tests, setup, teardown);
}
