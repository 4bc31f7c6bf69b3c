/*
 * The Responses API's state in the gateway, end to end: `skyio serve` with its store
 * (--state SQLite, then --postgres) in front of `skyio mock`, with a model whose deployment
 * speaks chat completions only ("api": "chat") and one that speaks the Responses API.
 *
 * Three turns through previous_response_id against the chat-only deployment: the mock
 * counts only chat calls, and the third turn's prompt tokens (the mock counts a message's
 * characters / 4, rounded up, plus 4 a message) are exactly those of the six messages the
 * gateway rebuilt: instructions, the three inputs and the two answers. The second turn is
 * streamed (Responses events from chat chunks) and still kept. The Conversations API:
 * create, read, update, items added, listed, read and deleted, a response appended to a
 * conversation, and another key sees none of it (404). Then the same through the official
 * OpenAI Node SDK (serve_conversations_sdk.mjs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "harness_postgres.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

typedef sky_test_serve serve;

static struct {
    sky_test_mock mock;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static void serve_keys_env(void)
{
    setenv("SKY_TEST_KEY_A", "sk-test-alice", 1);
    setenv("SKY_TEST_KEY_B", "sk-test-bob", 1);
}

static void start(serve *s, const char *name, const char *flag, const char *value)
{
    char config[512];
    snprintf(config, sizeof(config), "%s/gateway.json", env.dir);
    const char *args[] = {"--config", config, "--grace-ms", "1000", flag, value, NULL};
    sky_test_serve_start_named(s, env.dir, name, args, serve_keys_env);
}

static int setup(void **state)
{
    (void)state;
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    char config[512];
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"chatty\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\","
        " \"deployment\": \"gpt-4o\", \"api\": \"chat\"}],"
        " \"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]},"
        " \"keys\": [{\"name\": \"alice\", \"key_env\": \"SKY_TEST_KEY_A\"},"
        "           {\"name\": \"bob\", \"key_env\": \"SKY_TEST_KEY_B\"}]}\n",
        env.mock.base_url, env.mock.base_url);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_client_close(env.loop, env.client);
    sky_test_mock_stop(&env.mock);
    sky_test_rmdir(env.dir);
    return 0;
}

/* @p method @p path on @p s with @p key's bearer (and @p body when not NULL): the status,
 * the body as JSON in *out when it is JSON (else NULL; may be NULL to skip). */
static int call(const serve *s, const char *method, const char *path, const char *key,
                const char *body, json_t **out)
{
    sky_test_result r;
    sky_test_serve_call(s, env.loop, env.client, method, path, body, key, NULL, &r);
    assert_int_equal(r.err_code, 0);
    int status = r.status;
    if (out)
        *out = json_loadb(r.body, r.body_len, 0, NULL);
    sky_test_result_free(&r);
    return status;
}

/* The POST /v1/responses answer's JSON, asserting a 200. */
static json_t *respond(const serve *s, const char *body)
{
    json_t *doc = NULL;
    assert_int_equal(call(s, "POST", "/v1/responses", "sk-test-alice", body, &doc), 200);
    assert_non_null(doc);
    return doc;
}

static const char *out_text(const json_t *resp)
{
    json_t *item = json_array_get(json_object_get(resp, "output"), 0);
    return sky_json_str(json_array_get(json_object_get(item, "content"), 0), "text", "");
}

/* The response of a Responses stream's response.completed (or .incomplete) event. */
static json_t *streamed_response(const serve *s, const char *body)
{
    sky_test_result r;
    sky_test_serve_call(s, env.loop, env.client, "POST", "/v1/responses", body, "sk-test-alice",
                        NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "event: response.created\n"));
    assert_non_null(strstr(r.body, "event: response.output_text.delta\n"));
    const char *at = strstr(r.body, "event: response.completed\ndata: ");
    if (at == NULL)
        at = strstr(r.body, "event: response.incomplete\ndata: ");
    assert_non_null(at);
    at = strstr(at, "data: ") + 6;
    json_t *ev = json_loadb(at, strcspn(at, "\n"), 0, NULL);
    assert_non_null(ev);
    json_t *resp = json_incref(json_object_get(ev, "response"));
    json_decref(ev);
    sky_test_result_free(&r);
    return resp;
}

static int64_t mock_count(const char *path)
{
    return sky_test_mock_stat(&env.mock, path);
}

/* The mock's prompt tokens for messages of @p chars characters in all, @p n messages. */
static int64_t prompt_tokens(size_t chars, int n)
{
    int64_t t = (int64_t)((chars + 3) / 4);
    return (t > 0 ? t : 1) + 4 * n;
}

static void three_turns_on(const serve *s)
{
    static const char instructions[] = "Answer as a pirate.";
    static const char in1[] = "My name is Ada.", in2[] = "What is a ship?",
                      in3[] = "And what is my name?";
    int64_t chat0 = mock_count("endpoints.chat"), resp0 = mock_count("endpoints.responses");
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"model\":\"chatty\",\"instructions\":\"%s\",\"input\":\"%s\","
             "\"max_output_tokens\":12}",
             instructions, in1);
    json_t *r1 = respond(s, body);
    assert_string_equal(sky_json_str(r1, "object", ""), "response");
    assert_int_equal(strncmp(sky_json_str(r1, "id", ""), "resp_", 5), 0);
    snprintf(body, sizeof(body),
             "{\"model\":\"chatty\",\"input\":\"%s\",\"previous_response_id\":\"%s\","
             "\"max_output_tokens\":12,\"stream\":true}",
             in2, sky_json_str(r1, "id", ""));
    json_t *r2 = streamed_response(s, body);
    assert_string_equal(sky_json_str(r2, "previous_response_id", ""), sky_json_str(r1, "id", ""));
    /* the instructions of a turn are not carried to the next, as OpenAI does */
    snprintf(body, sizeof(body),
             "{\"model\":\"chatty\",\"instructions\":\"%s\",\"input\":\"%s\","
             "\"previous_response_id\":\"%s\"}",
             instructions, in3, sky_json_str(r2, "id", ""));
    json_t *r3 = respond(s, body);
    size_t chars = strlen(instructions) + strlen(in1) + strlen(out_text(r1)) + strlen(in2) +
                   strlen(out_text(r2)) + strlen(in3);
    assert_int_equal(sky_json_int(json_object_get(r3, "usage"), "input_tokens", -1),
                     prompt_tokens(chars, 6));
    assert_int_equal(mock_count("endpoints.chat") - chat0, 3);
    assert_int_equal(mock_count("endpoints.responses") - resp0, 0);

    /* what the third turn answered, newest first: input 3, answer 2, input 2, answer 1,
     * input 1 */
    char path[256];
    json_t *page = NULL;
    snprintf(path, sizeof(path), "/v1/responses/%s/input_items", sky_json_str(r3, "id", ""));
    assert_int_equal(call(s, "GET", path, "sk-test-alice", NULL, &page), 200);
    assert_int_equal(json_array_size(json_object_get(page, "data")), 5);
    json_t *first = json_array_get(json_object_get(page, "data"), 0);
    assert_string_equal(
        sky_json_str(json_array_get(json_object_get(first, "content"), 0), "text", ""), in3);
    json_decref(page);

    /* another key: neither the response nor a turn after it */
    snprintf(path, sizeof(path), "/v1/responses/%s", sky_json_str(r2, "id", ""));
    assert_int_equal(call(s, "GET", path, "sk-test-bob", NULL, NULL), 404);
    assert_int_equal(call(s, "GET", path, "sk-test-alice", NULL, NULL), 200);
    snprintf(body, sizeof(body),
             "{\"model\":\"chatty\",\"input\":\"x\",\"previous_response_id\":\"%s\"}",
             sky_json_str(r2, "id", ""));
    json_t *err = NULL;
    assert_int_equal(call(s, "POST", "/v1/responses", "sk-test-bob", body, &err), 404);
    assert_string_equal(sky_json_str(json_object_get(err, "error"), "param", ""),
                        "previous_response_id");
    json_decref(err);
    /* what chat completions cannot say is refused, naming it */
    assert_int_equal(call(s, "POST", "/v1/responses", "sk-test-alice",
                          "{\"model\":\"chatty\",\"input\":\"x\",\"tools\":[{\"type\":"
                          "\"web_search\"}]}",
                          &err),
                     400);
    assert_non_null(
        strstr(sky_json_str(json_object_get(err, "error"), "message", ""), "web_search"));
    json_decref(err);
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
}

/* A conversation's items, @p query appended to the path: the page's JSON. */
static json_t *items(const serve *s, const char *id, const char *query, const char *key, int want)
{
    char path[512];
    json_t *page = NULL;
    snprintf(path, sizeof(path), "/v1/conversations/%s/items%s", id, query);
    assert_int_equal(call(s, "GET", path, key, NULL, &page), want);
    return page;
}

static void conversation_api_on(const serve *s)
{
    json_t *conv = NULL;
    assert_int_equal(call(s, "POST", "/v1/conversations", "sk-test-alice",
                          "{\"metadata\":{\"topic\":\"ships\"},\"items\":[{\"type\":\"message\","
                          "\"role\":\"user\",\"content\":\"I like ships.\"}]}",
                          &conv),
                     200);
    char id[128], path[512];
    snprintf(id, sizeof(id), "%s", sky_json_str(conv, "id", ""));
    assert_string_equal(sky_json_str(conv, "object", ""), "conversation");
    assert_int_equal(strncmp(id, "conv_", 5), 0);
    json_decref(conv);
    snprintf(path, sizeof(path), "/v1/conversations/%s", id);
    assert_int_equal(call(s, "GET", path, "sk-test-alice", NULL, &conv), 200);
    assert_string_equal(sky_json_str(json_object_get(conv, "metadata"), "topic", ""), "ships");
    json_decref(conv);
    assert_int_equal(
        call(s, "POST", path, "sk-test-alice", "{\"metadata\":{\"topic\":\"sea\"}}", &conv), 200);
    assert_string_equal(sky_json_str(json_object_get(conv, "metadata"), "topic", ""), "sea");
    json_decref(conv);

    /* another key: nothing of it */
    assert_int_equal(call(s, "GET", path, "sk-test-bob", NULL, NULL), 404);
    json_decref(items(s, id, "", "sk-test-bob", 404));
    assert_int_equal(call(s, "DELETE", path, "sk-test-bob", NULL, NULL), 404);

    /* a turn in the conversation: its items go to the chat-only upstream, the turn is added */
    char body[512];
    snprintf(body, sizeof(body),
             "{\"model\":\"chatty\",\"input\":\"Which do I like?\",\"conversation\":\"%s\"}", id);
    json_t *r = respond(s, body);
    assert_string_equal(sky_json_str(json_object_get(r, "conversation"), "id", ""), id);
    size_t chars = strlen("I like ships.") + strlen("Which do I like?");
    assert_int_equal(sky_json_int(json_object_get(r, "usage"), "input_tokens", -1),
                     prompt_tokens(chars, 2));
    /* and one streamed through the Responses-speaking deployment, in the same conversation:
     * passed through, and kept at its end (a next turn finds it) */
    snprintf(body, sizeof(body),
             "{\"model\":\"gpt-4o\",\"input\":\"More?\",\"conversation\":\"%s\","
             "\"stream\":true}",
             id);
    json_t *streamed = streamed_response(s, body);
    snprintf(body, sizeof(body),
             "{\"model\":\"chatty\",\"input\":\"x\",\"previous_response_id\":\"%s\"}",
             sky_json_str(streamed, "id", ""));
    json_t *after = respond(s, body);
    assert_int_equal(sky_json_int(json_object_get(after, "usage"), "input_tokens", -1),
                     prompt_tokens(chars + strlen(out_text(r)) + strlen("More?") +
                                       strlen(out_text(streamed)) + 1,
                                   6));
    json_decref(after);
    json_decref(streamed);

    json_t *page = items(s, id, "?order=asc", "sk-test-alice", 200);
    json_t *data = json_object_get(page, "data");
    assert_int_equal(json_array_size(data), 5);
    assert_string_equal(sky_json_str(json_array_get(data, 2), "role", ""), "assistant");
    assert_string_equal(
        sky_json_str(json_array_get(json_object_get(json_array_get(data, 2), "content"), 0), "text",
                     ""),
        out_text(r));
    char second[128];
    snprintf(second, sizeof(second), "%s", sky_json_str(json_array_get(data, 1), "id", ""));
    json_decref(page);
    /* the turn's input has one id, in the conversation and in what the response answered */
    char rpath[256];
    snprintf(rpath, sizeof(rpath), "/v1/responses/%s/input_items", sky_json_str(r, "id", ""));
    assert_int_equal(call(s, "GET", rpath, "sk-test-alice", NULL, &page), 200);
    assert_string_equal(sky_json_str(page, "first_id", ""), second);
    json_decref(page);
    json_decref(r);

    /* added by hand; a page of two, newest first, then the next page */
    snprintf(path, sizeof(path), "/v1/conversations/%s/items", id);
    assert_int_equal(call(s, "POST", path, "sk-test-alice",
                          "{\"items\":[{\"role\":\"user\",\"content\":\"one\"},"
                          "{\"role\":\"assistant\",\"content\":\"two\"}]}",
                          &page),
                     200);
    assert_int_equal(json_array_size(json_object_get(page, "data")), 2);
    json_decref(page);
    page = items(s, id, "?limit=2", "sk-test-alice", 200);
    assert_true(json_is_true(json_object_get(page, "has_more")));
    json_t *top = json_array_get(json_object_get(page, "data"), 0);
    assert_string_equal(
        sky_json_str(json_array_get(json_object_get(top, "content"), 0), "text", ""), "two");
    char query[200];
    snprintf(query, sizeof(query), "?limit=100&after=%s", sky_json_str(page, "last_id", ""));
    json_decref(page);
    page = items(s, id, query, "sk-test-alice", 200);
    assert_int_equal(json_array_size(json_object_get(page, "data")), 5);
    assert_true(json_is_false(json_object_get(page, "has_more")));
    json_decref(page);

    /* one item read, deleted, gone */
    snprintf(path, sizeof(path), "/v1/conversations/%s/items/%s", id, second);
    assert_int_equal(call(s, "GET", path, "sk-test-alice", NULL, NULL), 200);
    assert_int_equal(call(s, "GET", path, "sk-test-bob", NULL, NULL), 404);
    assert_int_equal(call(s, "DELETE", path, "sk-test-alice", NULL, NULL), 200);
    assert_int_equal(call(s, "GET", path, "sk-test-alice", NULL, NULL), 404);
    page = items(s, id, "", "sk-test-alice", 200);
    assert_int_equal(json_array_size(json_object_get(page, "data")), 6);
    json_decref(page);

    snprintf(path, sizeof(path), "/v1/conversations/%s", id);
    assert_int_equal(call(s, "DELETE", path, "sk-test-alice", NULL, &conv), 200);
    assert_true(json_is_true(json_object_get(conv, "deleted")));
    json_decref(conv);
    assert_int_equal(call(s, "GET", path, "sk-test-alice", NULL, NULL), 404);
}

static void on_sqlite(void **state)
{
    (void)state;
    char db[512];
    snprintf(db, sizeof(db), "%s/state.db", env.dir);
    serve s = {0};
    start(&s, "sqlite", "--state", db);
    three_turns_on(&s);
    conversation_api_on(&s);
    sky_test_serve_stop_ok(&s);
}

static void on_postgres(void **state)
{
    (void)state;
    if (!sky_test_pg_available()) {
        print_message("PostgreSQL is not installed; skipped\n");
        skip();
    }
    sky_test_pg pg;
    sky_test_pg_start(&pg);
    serve s = {0};
    start(&s, "postgres", "--postgres", pg.url);
    three_turns_on(&s);
    conversation_api_on(&s);
    sky_test_serve_stop_ok(&s);
    sky_test_pg_free(&pg);
}

/* Without a store: the Conversations API says what it needs, and previous_response_id to a
 * chat-only deployment is refused (a Responses upstream would get it as it came). */
static void without_store(void **state)
{
    (void)state;
    char config[512];
    snprintf(config, sizeof(config), "%s/gateway.json", env.dir);
    const char *args[] = {"--config", config, NULL};
    serve s = {0};
    sky_test_serve_start_named(&s, env.dir, "nostore", args, serve_keys_env);
    json_t *err = NULL;
    assert_int_equal(call(&s, "POST", "/v1/conversations", "sk-test-alice", "{}", &err), 400);
    assert_non_null(strstr(sky_json_str(json_object_get(err, "error"), "message", ""), "--state"));
    json_decref(err);
    assert_int_equal(call(&s, "POST", "/v1/responses", "sk-test-alice",
                          "{\"model\":\"chatty\",\"input\":\"x\",\"previous_response_id\":"
                          "\"resp_1\"}",
                          &err),
                     400);
    json_decref(err);
    sky_test_serve_stop_ok(&s);
}

/* The official OpenAI Node SDK as the client (serve_conversations_sdk.mjs), on SQLite. */
static void node_sdk(void **state)
{
    (void)state;
    char cmd[2048], db[512];
    const char *sdk = SKY_TEST_SRCDIR "/.deps/compat-node";
    snprintf(cmd, sizeof(cmd), "%s/node_modules/openai/package.json", sdk);
    if (access(cmd, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0) {
        print_message("node or the openai package (scripts/install-deps) missing; skipped\n");
        skip();
    }
    snprintf(db, sizeof(db), "%s/sdk.db", env.dir);
    serve s = {0};
    start(&s, "sdk", "--state", db);
    snprintf(cmd, sizeof(cmd),
             "node '%s/tests/integration/serve_conversations_sdk.mjs' '%s' '%s' sk-test-alice "
             "sk-test-bob > '%s/sdk.log' 2>&1",
             SKY_TEST_SRCDIR, sdk, s.base, env.dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s/sdk.log' >&2", env.dir);
        (void)system(cmd);
    }
    assert_int_equal(rc, 0);
    sky_test_serve_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(on_sqlite),
        cmocka_unit_test(on_postgres),
        cmocka_unit_test(without_store),
        cmocka_unit_test(node_sdk),
    };
    return sky_test_run_group(tests, setup, teardown);
}
