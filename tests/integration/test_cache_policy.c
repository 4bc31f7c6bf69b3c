/*
 * When the gateway's response cache answers without being asked, and streams kept:
 * `skyio serve --state` in front of `skyio mock` with a config whose "cache" lists one
 * model on and one off, and a small entry cap. A request at temperature 0 is cached by
 * default, one at another temperature is not; the header always wins. A streamed miss is
 * kept once it ends and replayed as the same stream; a whole request with the same key
 * never gets that stream; a stream over the entry cap is not kept. A bad "cache" in the
 * config is refused at start (exit 2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "harness_serve.h"
#include "harness_group.h"

/* The entry cap of the test's config: a short stream fits, a long one does not. */
#define ENTRY_CAP 6000

static struct {
    sky_test_mock mock;
    char dir[256];
    sky_test_serve serve;
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", env.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    char config[512], db[512];
    const char *u = env.mock.base_url;
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}],"
        " \"always\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\","
        "              \"deployment\": \"gpt-4o\"}],"
        " \"never\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\","
        "             \"deployment\": \"gpt-4o\"}]},"
        " \"cache\": {\"max_entry_bytes\": %d, \"ttl_s\": 600,"
        "            \"models\": {\"always\": {\"ttl_s\": 60}, \"never\": false}}}\n",
        u, u, u, ENTRY_CAP);
    snprintf(db, sizeof(db), "%s/state.db", env.dir);
    const char *args[] = {"--config", config, "--state", db, "--grace-ms", "1000", NULL};
    sky_test_serve_start_named(&env.serve, env.dir, "serve", args, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_client_close(env.loop, env.client);
    sky_test_serve_stop_ok(&env.serve);
    sky_test_mock_stop(&env.mock);
    sky_test_rmdir(env.dir);
    return 0;
}

static int64_t upstream_calls(void)
{
    return sky_test_mock_stat(&env.mock, "requests");
}

/* POST a chat body, with `x-skyio-cache: @p cache` unless NULL. */
static void chat(const char *body, const char *cache, sky_test_result *out)
{
    char header[64];
    snprintf(header, sizeof(header), "x-skyio-cache: %s", cache ? cache : "");
    sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/chat/completions", body,
                        NULL, cache ? header : NULL, out);
    assert_int_equal(out->err_code, 0);
    assert_int_equal(out->status, 200);
}

static const char *header(const sky_test_result *r, const char *name)
{
    return json_string_value(json_object_get(r->headers, name));
}

/* The status header of @p body sent with @p cache; NULL when there was none. */
static void expect(const char *body, const char *cache, const char *status, int64_t upstream)
{
    sky_test_result r;
    int64_t calls0 = upstream_calls();
    chat(body, cache, &r);
    if (status)
        assert_string_equal(header(&r, "x-skyio-cache-status"), status);
    else
        assert_null(header(&r, "x-skyio-cache-status"));
    assert_int_equal(upstream_calls(), calls0 + upstream);
    sky_test_result_free(&r);
}

static void temperature_zero_by_default(void **state)
{
    (void)state;
    const char *zero = "{\"model\":\"gpt-4o\",\"temperature\":0.0,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"zero\"}]}";
    const char *warm = "{\"model\":\"gpt-4o\",\"temperature\":0.7,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"warm\"}]}";
    const char *unsaid = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
                         "\"content\":\"unsaid\"}]}";
    expect(zero, NULL, "miss", 1);
    expect(zero, NULL, "hit", 0);
    expect(zero, "off", NULL, 1); /* the header wins */
    expect(warm, NULL, NULL, 1);
    expect(warm, NULL, NULL, 1);
    expect(unsaid, NULL, NULL, 1); /* no temperature: OpenAI's default, 1 */
    expect(warm, "on", "miss", 1);
    expect(warm, "on", "hit", 0);
}

static void per_model_config(void **state)
{
    (void)state;
    const char *always = "{\"model\":\"always\",\"temperature\":1,"
                         "\"messages\":[{\"role\":\"user\",\"content\":\"per model\"}]}";
    const char *never = "{\"model\":\"never\",\"temperature\":0,"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"per model\"}]}";
    expect(always, NULL, "miss", 1);
    expect(always, NULL, "hit", 0);
    expect(always, "refresh", "refresh", 1);
    expect(never, NULL, NULL, 1);
    expect(never, NULL, NULL, 1);
    expect(never, "on", "miss", 1); /* the header still wins */
    expect(never, "on", "hit", 0);
}

/* The Responses API is cached only when a request asks: its answers are state. */
static void responses_only_when_asked(void **state)
{
    (void)state;
    const char *bodies[] = {"{\"model\":\"gpt-4o\",\"temperature\":0,\"input\":\"state\"}",
                            "{\"model\":\"always\",\"input\":\"state\"}"};
    for (size_t i = 0; i < 2; i++) {
        for (int n = 0; n < 2; n++) {
            sky_test_result r;
            int64_t calls0 = upstream_calls();
            sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/responses",
                                bodies[i], NULL, NULL, &r);
            assert_int_equal(r.status, 200);
            assert_null(header(&r, "x-skyio-cache-status"));
            assert_int_equal(upstream_calls(), calls0 + 1);
            sky_test_result_free(&r);
        }
    }
}

static char *stream_body(const char *content, int max_tokens, int stream)
{
    char *text = malloc(512);
    assert_non_null(text);
    snprintf(text, 512,
             "{\"model\":\"gpt-4o\",\"temperature\":0,\"stream\":%s,\"max_tokens\":%d,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             stream ? "true" : "false", max_tokens, content);
    return text;
}

static void streamed_miss_kept(void **state)
{
    (void)state;
    char *streamed = stream_body("keep this stream", 12, 1);
    char *whole = stream_body("keep this stream", 12, 0);
    sky_test_result first, again, plain;
    int64_t calls0 = upstream_calls();
    chat(streamed, NULL, &first);
    assert_string_equal(header(&first, "x-skyio-cache-status"), "miss");
    assert_non_null(strstr(first.body, "data: [DONE]"));
    chat(streamed, NULL, &again);
    assert_string_equal(header(&again, "x-skyio-cache-status"), "hit");
    assert_non_null(strstr(header(&again, "content-type"), "text/event-stream"));
    assert_int_equal(again.body_len, first.body_len); /* the same stream, as it came */
    assert_memory_equal(again.body, first.body, first.body_len);
    assert_int_equal(upstream_calls(), calls0 + 1);

    chat(whole, NULL, &plain); /* the same key, not streamed: no SSE for it */
    assert_string_equal(header(&plain, "x-skyio-cache-status"), "miss");
    assert_non_null(strstr(header(&plain, "content-type"), "application/json"));
    assert_int_equal(plain.body[0], '{');
    assert_int_equal(upstream_calls(), calls0 + 2);
    sky_test_result_free(&plain);
    chat(whole, NULL, &plain); /* its whole answer took the stream's place */
    assert_string_equal(header(&plain, "x-skyio-cache-status"), "hit");
    assert_int_equal(plain.body[0], '{');
    assert_int_equal(upstream_calls(), calls0 + 2);
    sky_test_result_free(&first);
    sky_test_result_free(&again);
    sky_test_result_free(&plain);
    free(streamed);
    free(whole);
}

static void stream_over_cap_not_kept(void **state)
{
    (void)state;
    char *big = stream_body("a long one", 400, 1);
    sky_test_result r;
    int64_t calls0 = upstream_calls();
    for (int i = 0; i < 2; i++) {
        chat(big, NULL, &r);
        assert_true(r.body_len > ENTRY_CAP); /* passed through whole all the same */
        assert_non_null(strstr(r.body, "data: [DONE]"));
        assert_string_equal(header(&r, "x-skyio-cache-status"), "miss");
        sky_test_result_free(&r);
    }
    assert_int_equal(upstream_calls(), calls0 + 2);
    free(big);
}

/* `skyio serve` with @p config: its exit status. */
static int serve_exit(const char *config)
{
    write_file("bad.json", config);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s serve --config %s/bad.json --port 0 2>%s/bad.log", SKY_TEST_BIN,
             env.dir, env.dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void bad_cache_config_refused(void **state)
{
    (void)state;
    const char *models = "{\"models\": {\"m\": [{\"kind\": \"compatible\", \"base_url\": "
                         "\"http://127.0.0.1:9/v1\"}]}, \"cache\": ";
    char text[512];
    snprintf(text, sizeof(text), "%s{\"models\": {\"m\": \"yes\"}}}", models);
    assert_int_equal(serve_exit(text), 2);
    assert_true(sky_test_file_holds(env.dir, "bad.log", "cache: models: m is true, false"));
    snprintf(text, sizeof(text), "%s{\"ttl_s\": 0}}", models);
    assert_int_equal(serve_exit(text), 2);
    assert_true(sky_test_file_holds(env.dir, "bad.log", "ttl_s"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(temperature_zero_by_default), cmocka_unit_test(per_model_config),
        cmocka_unit_test(streamed_miss_kept),          cmocka_unit_test(stream_over_cap_not_kept),
        cmocka_unit_test(responses_only_when_asked),   cmocka_unit_test(bad_cache_config_refused),
    };
    return sky_test_run_group(tests, setup, teardown);
}
