/*
 * `skyio serve` as a real process in front of real `skyio mock` processes on loopback:
 * plain and streamed chat, embeddings, models, failover before the first byte, every
 * bad-input answer, a client leaving mid-stream, and no upstream key in any reply or log.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_serve.h"
#include "skyio/buf.h"
#include "skyio/gateway.h"
#include "skyio/headers.h"
#include "skyio/json.h"

#define UPSTREAM_KEY "sk-upstream-canary-7f3a9c51"
#define CLIENT_KEY "sk-client-full-0001"
#define LIMITED_KEY "sk-client-limited-0002"
#define METERED_KEY "sk-client-metered-0003"
#define TOKENS_KEY "sk-client-tokens-0004"
#define MAX_BODY 65536

typedef struct serve_env {
    sky_test_mock fast, fast2, broken, slow, throttled, wordy;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} serve_env;

static serve_env env;

/* ---- starting serve ---- */

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

static void write_config(const char *path, int closed_port)
{
    unsigned char h[SKY_GATEWAY_SHA256_LEN];
    char hx[2 * SKY_GATEWAY_SHA256_LEN + 1];
    assert_int_equal(sky_gateway_key_hash(sky_span_cstr(CLIENT_KEY), h), 0);
    hex(h, sizeof(h), hx);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(
        f,
        "{\"models\": {"
        " \"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\"},"
        "              {\"kind\": \"openai\", \"base_url\": \"%s/v1\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"text-embedding-3-small\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", "
        "\"key_env\": \"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"slow\": [{\"kind\": \"azure\", \"base_url\": \"%s\", \"deployment\": \"slow-dep\", "
        "\"key_env\": \"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"flaky\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\", \"weight\": 10},"
        "             {\"kind\": \"compatible\", \"base_url\": \"http://127.0.0.1:%d\", "
        "\"weight\": 10},"
        "             {\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\", \"deployment\": \"gpt-4o-mini\", \"weight\": 1}],"
        " \"fallen\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\"}],"
        " \"wordy\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"weight\": 10},"
        "            {\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\", \"weight\": 1}],"
        " \"busy\": [{\"kind\": \"compatible\", \"base_url\": \"%s\", \"weight\": 10},"
        "           {\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": "
        "\"SKY_TEST_UPSTREAM_KEY\", \"weight\": 1}]},"
        " \"fallbacks\": {\"fallen\": [\"gpt-4o\"]},"
        " \"keys\": [{\"name\": \"full\", \"key_sha256\": \"%s\"},"
        "          {\"name\": \"limited\", \"key_env\": \"SKY_TEST_LIMITED_KEY\", "
        "\"models\": [\"text-embedding-3-small\"]},"
        "          {\"name\": \"metered\", \"key_env\": \"SKY_TEST_METERED_KEY\", \"rpm\": 3},"
        "          {\"name\": \"tokens\", \"key_env\": \"SKY_TEST_TOKENS_KEY\", \"tpm\": 100}]}\n",
        env.fast.base_url, env.fast2.base_url, env.fast.base_url, env.slow.base_url,
        env.broken.base_url, closed_port, env.fast2.base_url, env.broken.base_url,
        env.wordy.base_url, env.fast.base_url, env.throttled.base_url, env.fast.base_url, hx);
    fclose(f);
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
    uv_loop_t *loop = sky_test_loop_new();
    uv_tcp_t t;
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_init(loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&a, 0), 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    sky_test_loop_free(loop);
    return port;
}

static void serve_child_env(void)
{
    setenv("SKY_TEST_UPSTREAM_KEY", UPSTREAM_KEY, 1);
    setenv("SKY_TEST_LIMITED_KEY", LIMITED_KEY, 1);
    setenv("SKY_TEST_METERED_KEY", METERED_KEY, 1);
    setenv("SKY_TEST_TOKENS_KEY", TOKENS_KEY, 1);
    setenv("SKYIO_LOG", "debug", 1); /* every log line the gateway has, for the canary */
}

static void start_serve(void)
{
    char config[512];
    snprintf(config, sizeof(config), "%s/gateway.json", env.dir);
    write_config(config, closed_port());
    const char *const args[] = {"--config",   config, "--max-body", "65536",
                                "--grace-ms", "2000", NULL};
    sky_test_serve_start(&env.serve, env.dir, args, serve_child_env);
}

static int setup(void **state)
{
    (void)state;
    static const char *const healthy[] = {"--key", UPSTREAM_KEY, NULL};
    static const char *const broken[] = {"--key", UPSTREAM_KEY, "--fault-503", "1.0", NULL};
    static const char *const slow[] = {"--key", UPSTREAM_KEY, "--per-token-ms", "20", NULL};
    /* one request a second, 429 with retry-after over it */
    static const char *const throttled[] = {"--rpm", "60", NULL};
    /* 100 tokens a second */
    static const char *const wordy[] = {"--tpm", "6000", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.fast, healthy);
    sky_test_mock_start(&env.fast2, healthy);
    sky_test_mock_start(&env.broken, broken);
    sky_test_mock_start(&env.slow, slow);
    sky_test_mock_start(&env.throttled, throttled);
    sky_test_mock_start(&env.wordy, wordy);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    start_serve();
    env.loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(env.loop, NULL, &env.client), 0);
    return 0;
}

/* Whether the file @p name of the serve folder holds @p needle. */
static int log_holds(const char *name, const char *needle)
{
    return sky_test_file_holds(env.dir, name, needle);
}

static int teardown(void **state)
{
    (void)state;
    sky_http_client_free(env.client);
    sky_test_loop_free(env.loop);
    int status = sky_test_stop_child(env.serve.pid);
    /* the secrets canary, over everything serve wrote, its shutdown included */
    int leaked = log_holds("stderr.log", UPSTREAM_KEY) || log_holds("stdout.log", UPSTREAM_KEY);
    int logged = log_holds("stderr.log", "gateway");
    sky_test_mock_stop(&env.fast);
    sky_test_mock_stop(&env.fast2);
    sky_test_mock_stop(&env.broken);
    sky_test_mock_stop(&env.slow);
    sky_test_mock_stop(&env.throttled);
    sky_test_mock_stop(&env.wordy);
    sky_test_rmdir(env.dir);
    assert_false(leaked);
    assert_true(logged); /* the canary looked at a log that says something */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}

/* ---- requests ---- */

/* One request with @p header ("Name: value", or NULL) and the answer's checks that hold
 * for every request: it came, and it quotes no upstream key. */
static void call_with(const char *method, const char *path, const char *body, const char *header,
                      sky_test_result *out)
{
    char url[256];
    const char *headers[] = {header, NULL};
    snprintf(url, sizeof(url), "%s%s", env.serve.base, path);
    sky_test_request(env.loop, env.client, method, url, body, headers, 20000, out);
    assert_int_equal(out->err_code, 0);
    assert_null(strstr(out->body, UPSTREAM_KEY));
}

static void call(const char *method, const char *path, const char *body, const char *key,
                 sky_test_result *out)
{
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key ? key : "");
    call_with(method, path, body, key ? auth : NULL, out);
}

static json_t *body_json(const sky_test_result *r)
{
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_make(r->body, r->body_len), &j, NULL), 0);
    return j;
}

/* An OpenAI error of @p status, @p type and @p code (NULL: JSON null). */
static void expect_error(const sky_test_result *r, int status, const char *type, const char *code)
{
    assert_int_equal(r->status, status);
    json_t *j = body_json(r);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_object(e));
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_string_equal(sky_json_str(e, "type", ""), type);
    assert_non_null(json_object_get(e, "param"));
    if (code)
        assert_string_equal(sky_json_str(e, "code", ""), code);
    else
        assert_true(json_is_null(json_object_get(e, "code")));
    json_decref(j);
}

static const char chat_body[] =
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static void test_plain_chat(void **state)
{
    (void)state;
    sky_test_result r;
    call("POST", "/v1/chat/completions", chat_body, CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "chat.completion");
    assert_true(json_is_string(sky_json_path(j, "choices.0.message.content")));
    json_decref(j);
    sky_test_result_free(&r);
}

static void test_embeddings(void **state)
{
    (void)state;
    sky_test_result r;
    call("POST", "/v1/embeddings",
         "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\"],\"dimensions\":8}",
         LIMITED_KEY, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    assert_int_equal(json_array_size(sky_json_path(j, "data.0.embedding")), 8);
    json_decref(j);
    sky_test_result_free(&r);
}

static void test_models(void **state)
{
    (void)state;
    sky_test_result r;
    call("GET", "/v1/models", NULL, CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "list");
    assert_int_equal(json_array_size(json_object_get(j, "data")), 7);
    assert_string_equal(sky_json_str(sky_json_path(j, "data.0"), "id", ""), "gpt-4o");
    json_decref(j);
    sky_test_result_free(&r);
    /* a key limited to some models sees only those */
    call("GET", "/v1/models", NULL, LIMITED_KEY, &r);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    sky_test_result_free(&r);
    call("GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    /* one model, as the SDKs' models.retrieve asks */
    call("GET", "/v1/models/gpt-4o", NULL, CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(sky_json_str(j, "id", ""), "gpt-4o");
    assert_string_equal(sky_json_str(j, "object", ""), "model");
    json_decref(j);
    sky_test_result_free(&r);
    call("GET", "/v1/models/gpt-4o", NULL, LIMITED_KEY, &r);
    expect_error(&r, 404, "invalid_request_error", "model_not_found");
    sky_test_result_free(&r);
    call("GET", "/openai/models/gpt-4o?api-version=2024-10-21", NULL, CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    call("GET", "/openai/v1/models/no-such", NULL, CLIENT_KEY, &r);
    expect_error(&r, 404, "invalid_request_error", "model_not_found");
    sky_test_result_free(&r);
}

static void test_responses_and_completions(void **state)
{
    (void)state;
    sky_test_result r;
    call("POST", "/v1/responses", "{\"model\":\"gpt-4o\",\"input\":\"hi\"}", CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "response");
    assert_true(json_is_array(json_object_get(j, "output")));
    json_decref(j);
    sky_test_result_free(&r);
    /* to an Azure deployment: its v1 Responses path, the deployment's name in the body */
    call("POST", "/v1/responses", "{\"model\":\"slow\",\"input\":\"hi\",\"max_output_tokens\":3}",
         CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(sky_json_str(j, "model", ""), "slow-dep");
    json_decref(j);
    sky_test_result_free(&r);
    call("POST", "/v1/completions", "{\"model\":\"gpt-4o\",\"prompt\":\"once upon\"}", CLIENT_KEY,
         &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "text_completion");
    assert_true(json_is_string(sky_json_path(j, "choices.0.text")));
    json_decref(j);
    sky_test_result_free(&r);
}

/* Azure's paths, with Azure's api-key header: the path names the model, the body need not */
static void test_azure_routes(void **state)
{
    (void)state;
    sky_test_result r;
    const char *key = "api-key: " CLIENT_KEY;
    call_with("POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
              "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", key, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "chat.completion");
    /* an OpenAI-kind upstream needs the model in the body: the gateway put it there */
    assert_string_equal(sky_json_str(j, "model", ""), "gpt-4o");
    json_decref(j);
    sky_test_result_free(&r);
    call_with("POST",
              "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21",
              "{\"input\":\"a\",\"dimensions\":4}", key, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_array_size(sky_json_path(j, "data.0.embedding")), 4);
    json_decref(j);
    sky_test_result_free(&r);
    call_with("POST", "/openai/deployments/slow/completions?api-version=2024-10-21",
              "{\"prompt\":\"x\",\"max_tokens\":2}", key, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    call_with("POST", "/openai/responses?api-version=2025-04-01-preview",
              "{\"model\":\"gpt-4o\",\"input\":\"hi\"}", key, &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    call_with("POST", "/openai/deployments/nope/chat/completions?api-version=2024-10-21",
              "{\"messages\":[]}", key, &r);
    expect_error(&r, 404, "invalid_request_error", "model_not_found");
    sky_test_result_free(&r);
    call_with("POST", "/openai/deployments/gpt-4o/images/generations?api-version=2024-10-21", "{}",
              key, &r);
    assert_int_equal(r.status, 404);
    sky_test_result_free(&r);
    call_with("POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
              "{\"messages\":[]}", "api-key: sk-wrong", &r);
    expect_error(&r, 401, "invalid_request_error", "invalid_api_key");
    sky_test_result_free(&r);
}

/* ---- streams ---- */

typedef struct stream_rec {
    int done, status, err_code, chunks, cancel_after;
    sky_buf body;
    sky_http_request *req;
    char content_type[64], cache[32], accel[16];
} stream_rec;

static void on_stream_headers(sky_http_request *req, int status, const sky_headers *h, void *ud)
{
    stream_rec *s = ud;
    (void)req;
    s->status = status;
    snprintf(s->content_type, sizeof(s->content_type), "%s",
             sky_headers_get(h, "content-type") ? sky_headers_get(h, "content-type") : "");
    snprintf(s->cache, sizeof(s->cache), "%s",
             sky_headers_get(h, "cache-control") ? sky_headers_get(h, "cache-control") : "");
    snprintf(s->accel, sizeof(s->accel), "%s",
             sky_headers_get(h, "x-accel-buffering") ? sky_headers_get(h, "x-accel-buffering")
                                                     : "");
}

static int on_stream_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    stream_rec *s = ud;
    (void)req;
    assert_int_equal(sky_buf_append(&s->body, data, len), 0);
    if (++s->chunks == s->cancel_after)
        sky_http_request_cancel(s->req);
    return 0;
}

static void on_stream_done(sky_http_request *req, const sky_http_response *res,
                           const sky_error *err, void *ud)
{
    stream_rec *s = ud;
    (void)req;
    (void)res;
    s->done++;
    s->err_code = err ? err->code : 0;
}

static void stream_to(const char *path, const char *body, int cancel_after, stream_rec *s)
{
    char url[256], auth[128];
    sky_http_request_options o;
    sky_headers *h = sky_headers_new();
    memset(s, 0, sizeof(*s));
    sky_buf_init(&s->body, 1 << 20);
    s->cancel_after = cancel_after;
    snprintf(url, sizeof(url), "%s%s", env.serve.base, path);
    snprintf(auth, sizeof(auth), "Bearer %s", CLIENT_KEY);
    assert_int_equal(sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_span_cstr(auth)), 0);
    assert_int_equal(
        sky_headers_add(h, SKY_SPAN_LIT("Content-Type"), SKY_SPAN_LIT("application/json")), 0);
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = url;
    o.headers = h;
    o.body = sky_span_cstr(body);
    o.timeout_ms = 20000;
    o.on_headers = on_stream_headers;
    o.on_body = on_stream_body;
    o.on_done = on_stream_done;
    o.user_data = s;
    assert_int_equal(sky_http_request_send(env.client, &o, &s->req, NULL), 0);
    sky_headers_free(h);
    sky_test_run_until(env.loop, &s->done, 25000);
    assert_int_equal(s->done, 1);
    assert_null(strstr(s->body.data ? s->body.data : "", UPSTREAM_KEY));
}

static void stream(const char *body, int cancel_after, stream_rec *s)
{
    stream_to("/v1/chat/completions", body, cancel_after, s);
}

static void test_stream_chat(void **state)
{
    (void)state;
    stream_rec s;
    stream("{\"model\":\"slow\",\"stream\":true,\"max_tokens\":12,"
           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
           0, &s);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.status, 200);
    assert_string_equal(s.content_type, "text/event-stream");
    assert_string_equal(s.cache, "no-cache");
    assert_string_equal(s.accel, "no");
    /* tokens 20 ms apart arrive as they come, not in one piece at the end */
    assert_true(s.chunks >= 5);
    const char *end = "data: [DONE]\n\n";
    assert_true(s.body.len > strlen(end));
    assert_string_equal(s.body.data + s.body.len - strlen(end), end);
    assert_non_null(strstr(s.body.data, "chat.completion.chunk"));
    sky_buf_free(&s.body);
}

/* The Responses API's typed events, through the Azure deployment, as they come */
static void test_stream_responses(void **state)
{
    (void)state;
    stream_rec s;
    stream_to("/v1/responses",
              "{\"model\":\"slow\",\"stream\":true,\"max_output_tokens\":8,\"input\":\"hi\"}", 0,
              &s);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.status, 200);
    assert_string_equal(s.content_type, "text/event-stream");
    assert_true(s.chunks >= 5);
    assert_non_null(strstr(s.body.data, "event: response.output_text.delta"));
    assert_non_null(strstr(s.body.data, "event: response.output_text.done"));
    assert_null(strstr(s.body.data, "[DONE]"));
    sky_buf_free(&s.body);
    /* and a streamed legacy completion */
    stream_to("/v1/completions",
              "{\"model\":\"slow\",\"stream\":true,\"max_tokens\":6,\"prompt\":\"hi\"}", 0, &s);
    assert_int_equal(s.err_code, 0);
    assert_true(s.chunks >= 3);
    assert_non_null(strstr(s.body.data, "text_completion"));
    assert_non_null(strstr(s.body.data, "data: [DONE]"));
    sky_buf_free(&s.body);
}

static void test_disconnect_cancels_upstream(void **state)
{
    (void)state;
    stream_rec s;
    json_t *before = sky_test_mock_stats(&env.slow);
    int64_t streams0 = json_integer_value(json_object_get(before, "streams"));
    int64_t tokens0 = json_integer_value(sky_json_path(before, "tokens.completion"));
    json_decref(before);
    /* 200 tokens 20 ms apart: 4 s of stream; the client leaves after 3 chunks */
    stream("{\"model\":\"slow\",\"stream\":true,\"max_tokens\":200,"
           "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
           3, &s);
    assert_int_equal(s.err_code, SKY_ECANCELED);
    sky_buf_free(&s.body);
    /* the mock's request ends well before the stream would have: in_flight back to 0
     * (the stats request itself is not counted) */
    uint64_t t0 = uv_hrtime();
    int64_t in_flight = 1;
    while (in_flight > 0 && uv_hrtime() - t0 < UINT64_C(1500) * 1000000) {
        json_t *st = sky_test_mock_stats(&env.slow);
        in_flight = json_integer_value(json_object_get(st, "in_flight"));
        json_decref(st);
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    assert_int_equal(in_flight, 0);
    json_t *after = sky_test_mock_stats(&env.slow);
    assert_int_equal(json_integer_value(json_object_get(after, "streams")), streams0 + 1);
    /* a stream counts its tokens when it completes: this one never did */
    assert_int_equal(json_integer_value(sky_json_path(after, "tokens.completion")), tokens0);
    json_decref(after);
}

/* ---- failover ---- */

static void test_failover_before_first_byte(void **state)
{
    (void)state;
    json_t *before = sky_test_mock_stats(&env.fast2);
    int64_t ok0 = json_integer_value(sky_json_path(before, "responses.200"));
    json_decref(before);
    const int n = 12;
    for (int i = 0; i < n; i++) {
        sky_test_result r;
        call("POST", "/v1/chat/completions",
             i % 2 ? "{\"model\":\"flaky\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
                   : "{\"model\":\"flaky\",\"stream\":true,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
             CLIENT_KEY, &r);
        assert_int_equal(r.status, 200);
        /* the standby's upstream name went in the body: the mock echoes it */
        assert_non_null(strstr(r.body, "gpt-4o-mini"));
        sky_test_result_free(&r);
    }
    /* every request was answered by the healthy deployment... */
    json_t *ok = sky_test_mock_stats(&env.fast2);
    assert_int_equal(json_integer_value(sky_json_path(ok, "responses.200")), ok0 + n);
    json_decref(ok);
    /* ...after the broken one refused some, until its breaker opened */
    json_t *bad = sky_test_mock_stats(&env.broken);
    int64_t refused = json_integer_value(sky_json_path(bad, "responses.503"));
    json_decref(bad);
    assert_true(refused >= 1 && refused < n);
}

/* Every deployment of "fallen" refuses (503): its requests go to gpt-4o's */
static void test_fallback_model(void **state)
{
    (void)state;
    json_t *st = sky_test_mock_stats(&env.fast);
    json_t *st2 = sky_test_mock_stats(&env.fast2);
    int64_t ok0 = json_integer_value(sky_json_path(st, "responses.200")) +
                  json_integer_value(sky_json_path(st2, "responses.200"));
    json_decref(st);
    json_decref(st2);
    for (int i = 0; i < 4; i++) {
        sky_test_result r;
        call("POST", "/v1/chat/completions",
             i % 2 ? "{\"model\":\"fallen\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
                   : "{\"model\":\"fallen\",\"stream\":true,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
             CLIENT_KEY, &r);
        assert_int_equal(r.status, 200);
        /* the fallback's name went upstream in the body: the mock echoes it */
        assert_non_null(strstr(r.body, "\"model\":\"gpt-4o\""));
        sky_test_result_free(&r);
    }
    st = sky_test_mock_stats(&env.fast);
    st2 = sky_test_mock_stats(&env.fast2);
    assert_int_equal(json_integer_value(sky_json_path(st, "responses.200")) +
                         json_integer_value(sky_json_path(st2, "responses.200")),
                     ok0 + 4);
    json_decref(st);
    json_decref(st2);
}

/* ---- clients' budgets ---- */

static const char *header(const sky_test_result *r, const char *name)
{
    const char *v = json_string_value(json_object_get(r->headers, name));
    assert_non_null(v);
    return v;
}

/* 3 requests a minute: the fourth is refused as OpenAI refuses, headers and all */
static void test_key_request_budget(void **state)
{
    (void)state;
    sky_test_result r;
    for (int i = 0; i < 3; i++) {
        call("POST", "/v1/chat/completions", chat_body, METERED_KEY, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "x-ratelimit-limit-requests"), "3");
        assert_int_equal(atoi(header(&r, "x-ratelimit-remaining-requests")), 2 - i);
        assert_non_null(header(&r, "x-ratelimit-reset-requests"));
        sky_test_result_free(&r);
    }
    call("POST", "/v1/chat/completions", chat_body, METERED_KEY, &r);
    expect_error(&r, 429, "requests", "rate_limit_exceeded");
    /* one request comes back in 20 s (3 a minute): retry-after says so, in seconds */
    int after = atoi(header(&r, "retry-after"));
    assert_true(after >= 19 && after <= 20);
    assert_true(atoi(header(&r, "retry-after-ms")) > 19000);
    assert_string_equal(header(&r, "x-ratelimit-remaining-requests"), "0");
    int64_t reset = 0;
    assert_int_equal(
        sky_parse_duration_ms(sky_span_cstr(header(&r, "x-ratelimit-reset-requests")), &reset), 0);
    assert_true(reset > 50000 && reset <= 60000);
    assert_null(strstr(r.body, METERED_KEY));
    sky_test_result_free(&r);
    /* another key's budget is its own */
    call("POST", "/v1/chat/completions", chat_body, CLIENT_KEY, &r);
    assert_int_equal(r.status, 200);
    assert_null(json_object_get(r.headers, "x-ratelimit-limit-requests"));
    sky_test_result_free(&r);
}

/* 100 tokens a minute, charged up front (max_tokens counts) and settled by the usage */
static void test_key_token_budget(void **state)
{
    (void)state;
    const char *big = "{\"model\":\"gpt-4o\",\"max_tokens\":5000,"
                      "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    sky_test_result r;
    call("POST", "/v1/chat/completions", big, TOKENS_KEY, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-ratelimit-limit-tokens"), "100");
    /* the whole minute was charged up front: the estimate is over the limit */
    assert_string_equal(header(&r, "x-ratelimit-remaining-tokens"), "0");
    json_t *j = body_json(&r);
    int64_t used = json_integer_value(sky_json_path(j, "usage.total_tokens"));
    json_decref(j);
    assert_true(used > 0 && used < 100);
    sky_test_result_free(&r);
    /* the reply said it used fewer: those came back, but not the 100 a request asks */
    call("POST", "/v1/chat/completions", big, TOKENS_KEY, &r);
    expect_error(&r, 429, "tokens", "rate_limit_exceeded");
    int64_t left = atoll(header(&r, "x-ratelimit-remaining-tokens"));
    assert_true(left >= 100 - used && left < 100);
    assert_true(atoi(header(&r, "retry-after")) >= 1);
    sky_test_result_free(&r);
}

/* A deployment at its limit holds calls in its pipeline: the gateway sends them where
 * there is room now, though the one at its limit (@p bound) has ten times the weight */
static void headroom_run(const char *body, const sky_test_mock *bound)
{
    enum { N = 40, AT_ONCE = 8 };
    static sky_test_result r[N];
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/chat/completions", env.serve.base);
    sky_headers *h = sky_headers_new();
    assert_int_equal(
        sky_headers_add(h, SKY_SPAN_LIT("Authorization"), SKY_SPAN_LIT("Bearer " CLIENT_KEY)), 0);
    assert_int_equal(
        sky_headers_add(h, SKY_SPAN_LIT("Content-Type"), SKY_SPAN_LIT("application/json")), 0);
    json_t *st = sky_test_mock_stats(&env.fast);
    int64_t fast0 = json_integer_value(sky_json_path(st, "responses.200"));
    json_decref(st);
    int sent = 0, done = 0;
    memset(r, 0, sizeof(r));
    while (done < N) {
        while (sent < N && sent - done < AT_ONCE) {
            sky_http_request_options o;
            sky_http_request_options_init(&o);
            o.method = "POST";
            o.url = url;
            o.headers = h;
            o.body = sky_span_cstr(body);
            o.timeout_ms = 20000;
            o.on_done = sky_test_on_done;
            o.user_data = &r[sent++];
            assert_int_equal(sky_http_request_send(env.client, &o, NULL, NULL), 0);
        }
        int one = 0;
        (void)sky_test_run_until(env.loop, &one, 5);
        done = 0;
        for (int i = 0; i < sent; i++)
            done += r[i].done;
    }
    sky_headers_free(h);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].status, 200);
        sky_test_result_free(&r[i]);
    }
    st = sky_test_mock_stats(&env.fast);
    int64_t fast = json_integer_value(sky_json_path(st, "responses.200")) - fast0;
    json_decref(st);
    st = sky_test_mock_stats(bound);
    int64_t slowed = json_integer_value(sky_json_path(st, "responses.200"));
    json_decref(st);
    assert_int_equal(fast + slowed, N);
    assert_true(fast >= N / 2);
}

/* one request a second */
static void test_headroom_beats_weight(void **state)
{
    (void)state;
    headroom_run("{\"model\":\"busy\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                 &env.throttled);
}

/* 100 tokens a second, each call 50 and more */
static void test_token_headroom_beats_weight(void **state)
{
    (void)state;
    headroom_run("{\"model\":\"wordy\",\"max_tokens\":50,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                 &env.wordy);
}

/* ---- bad input ---- */

static void test_bad_input(void **state)
{
    (void)state;
    sky_test_result r;
    call("POST", "/v1/chat/completions", chat_body, NULL, &r);
    expect_error(&r, 401, "invalid_request_error", "invalid_api_key");
    sky_test_result_free(&r);
    call("POST", "/v1/chat/completions", chat_body, "sk-wrong", &r);
    expect_error(&r, 401, "invalid_request_error", "invalid_api_key");
    assert_null(strstr(r.body, "sk-wrong"));
    sky_test_result_free(&r);
    call("GET", "/v1/models", NULL, "sk-wrong", &r);
    expect_error(&r, 401, "invalid_request_error", "invalid_api_key");
    sky_test_result_free(&r);
    call("POST", "/v1/chat/completions", "{\"model\":\"gpt-4o\",", CLIENT_KEY, &r);
    expect_error(&r, 400, "invalid_request_error", NULL);
    sky_test_result_free(&r);
    call("POST", "/v1/chat/completions", "[1,2]", CLIENT_KEY, &r);
    expect_error(&r, 400, "invalid_request_error", NULL);
    sky_test_result_free(&r);
    call("POST", "/v1/chat/completions", "{\"messages\":[]}", CLIENT_KEY, &r);
    expect_error(&r, 400, "invalid_request_error", NULL);
    sky_test_result_free(&r);
    call("POST", "/v1/chat/completions", "{\"model\":\"gpt-5-imaginary\",\"messages\":[]}",
         CLIENT_KEY, &r);
    expect_error(&r, 404, "invalid_request_error", "model_not_found");
    sky_test_result_free(&r);
    call("POST", "/v1/chat/completions", chat_body, LIMITED_KEY, &r);
    expect_error(&r, 403, "invalid_request_error", "model_not_allowed");
    sky_test_result_free(&r);
    /* the canary in the metrics and the readiness too: call() looks at every reply */
    call("GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, CLIENT_KEY));
    sky_test_result_free(&r);
    call("GET", "/readyz", NULL, NULL, &r);
    sky_test_result_free(&r);
}

static void test_body_too_large(void **state)
{
    (void)state;
    size_t n = MAX_BODY + 1000;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int at = sprintf(big, "{\"model\":\"gpt-4o\",\"messages\":[],\"pad\":\"");
    memset(big + at, 'x', n - (size_t)at);
    strcpy(big + n, "\"}");
    sky_test_result r;
    call("POST", "/v1/chat/completions", big, CLIENT_KEY, &r);
    expect_error(&r, 413, "invalid_request_error", "request_too_large");
    sky_test_result_free(&r);
    free(big);
}

/* ---- the official OpenAI Node SDK as the client ---- */

static void test_openai_node_sdk(void **state)
{
    (void)state;
    char cmd[2048];
    const char *sdk = SKY_TEST_SRCDIR "/.deps/compat-node";
    snprintf(cmd, sizeof(cmd), "%s/node_modules/openai/package.json", sdk);
    if (access(cmd, R_OK) != 0 || system("node --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: node or the openai package (scripts/install-deps) missing\n");
        skip();
    }
    snprintf(cmd, sizeof(cmd),
             "node '%s/tests/integration/serve_openai_sdk.mjs' '%s' '%s' '%s' > '%s/sdk.log' 2>&1",
             SKY_TEST_SRCDIR, sdk, env.serve.base, CLIENT_KEY, env.dir);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s/sdk.log' >&2", env.dir);
        (void)system(cmd);
    }
    assert_int_equal(rc, 0);
    assert_false(log_holds("sdk.log", UPSTREAM_KEY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_chat),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_responses_and_completions),
        cmocka_unit_test(test_azure_routes),
        cmocka_unit_test(test_stream_chat),
        cmocka_unit_test(test_stream_responses),
        cmocka_unit_test(test_disconnect_cancels_upstream),
        cmocka_unit_test(test_failover_before_first_byte),
        cmocka_unit_test(test_fallback_model),
        cmocka_unit_test(test_headroom_beats_weight),
        cmocka_unit_test(test_token_headroom_beats_weight),
        cmocka_unit_test(test_key_request_budget),
        cmocka_unit_test(test_key_token_budget),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_openai_node_sdk),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
