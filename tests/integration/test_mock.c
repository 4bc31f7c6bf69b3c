/* `skyio mock` as a user meets it: endpoints, auth, rate limits, config, shutdown. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <openssl/evp.h>
#include <regex.h>

#include "harness.h"
#include "skyio/json.h"
#include "skyio/sse.h"

static const char chat_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5}";

typedef struct fixture {
    sky_test_mock mock;
    uv_loop_t *loop;
    sky_http_client *client;
} fixture;

static void open_fixture(fixture *f, const char *const *args)
{
    memset(f, 0, sizeof(*f));
    sky_test_mock_start(&f->mock, args);
    f->loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(f->loop, NULL, &f->client), 0);
}

static void close_fixture(fixture *f)
{
    sky_http_client_free(f->client);
    sky_test_loop_free(f->loop);
    assert_int_equal(sky_test_mock_stop(&f->mock), 0);
}

static void request(fixture *f, const char *method, const char *path, const char *body,
                    const char *const *headers, sky_test_result *r)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", f->mock.base_url, path);
    sky_test_request(f->loop, f->client, method, url, body, headers, 10000, r);
    assert_int_equal(r->err_code, 0);
}

/*
 * request() whose checks are the status and, unless @p contains is NULL, a piece of the
 * body: names the request when one is off.
 */
static void expect_body(fixture *f, const char *method, const char *path, const char *body,
                        const char *const *headers, int status, const char *contains)
{
    sky_test_result r;
    request(f, method, path, body, headers, &r);
    if (r.status != status)
        print_error("%s %s answered %d, want %d\n", method, path, r.status, status);
    assert_int_equal(r.status, status);
    if (contains && !strstr(r.body, contains))
        print_error("%s %s: no %s in %s\n", method, path, contains, r.body);
    if (contains)
        assert_non_null(strstr(r.body, contains));
    sky_test_result_free(&r);
}

static void expect_status(fixture *f, const char *method, const char *path, const char *body,
                          const char *const *headers, int status)
{
    expect_body(f, method, path, body, headers, status, NULL);
}

static json_t *body_json(const sky_test_result *r)
{
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_make(r->body, r->body_len), &j, NULL), 0);
    return j;
}

static const char *header(const sky_test_result *r, const char *name)
{
    return json_string_value(json_object_get(r->headers, name));
}

static void test_auth(void **state)
{
    static const char *const args[] = {"--key", "k1", "--key", "k2", NULL};
    static const char *const bearer[] = {"Authorization: Bearer k2", NULL};
    static const char *const apikey[] = {"api-key: k1", NULL};
    static const char *const wrong[] = {"Authorization: Bearer nope", NULL};
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, args);
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
    assert_int_equal(r.status, 401);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")), "invalid_api_key");
    json_decref(j);
    sky_test_result_free(&r);
    expect_status(&f, "POST", "/v1/chat/completions", chat_body, wrong, 401);
    expect_status(&f, "POST", "/v1/chat/completions", chat_body, bearer, 200);
    expect_status(&f, "POST", "/openai/deployments/d1/chat/completions?api-version=2024-10-21",
                  chat_body, apikey, 200);
    json_t *stats = sky_test_mock_stats(&f.mock);
    assert_int_equal(json_integer_value(json_object_get(stats, "auth_failures")), 2);
    assert_int_equal(json_integer_value(sky_json_path(stats, "responses.401")), 2);
    json_decref(stats);
    close_fixture(&f);
}

/* Like OpenAI: a JSON body labelled anything but application/json is refused. */
static void test_content_type(void **state)
{
    static const char *const form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    static const char *const charset[] = {"content-type: Application/JSON; charset=utf-8", NULL};
    static const char *const near[] = {"Content-Type: application/jsonx", NULL};
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, NULL);
    request(&f, "POST", "/v1/chat/completions", chat_body, form, &r);
    assert_int_equal(r.status, 400);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")),
                        "unsupported_content_type");
    assert_non_null(strstr(json_string_value(sky_json_path(j, "error.message")),
                           "'application/x-www-form-urlencoded'"));
    json_decref(j);
    sky_test_result_free(&r);
    expect_status(&f, "POST", "/v1/embeddings", "{\"model\":\"m\",\"input\":\"x\"}", near, 400);
    request(&f, "POST", "/openai/deployments/d1/chat/completions?api-version=2024-10-21", chat_body,
            form, &r);
    assert_int_equal(r.status, 400);
    j = body_json(&r);
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")),
                        "unsupported_content_type");
    json_decref(j);
    sky_test_result_free(&r);
    expect_status(&f, "POST", "/v1/chat/completions", chat_body, charset, 200);
    json_t *stats = sky_test_mock_stats(&f.mock);
    assert_int_equal(json_integer_value(sky_json_path(stats, "responses.400")), 3);
    assert_int_equal(json_integer_value(sky_json_path(stats, "endpoints.chat")), 1);
    json_decref(stats);
    close_fixture(&f);
}

static void test_chat_shape_and_determinism(void **state)
{
    fixture f;
    sky_test_result a, b;
    (void)state;
    open_fixture(&f, NULL);
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &a);
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &b);
    json_t *ja = body_json(&a), *jb = body_json(&b);
    const char *ca = json_string_value(sky_json_path(ja, "choices.0.message.content"));
    const char *cb = json_string_value(sky_json_path(jb, "choices.0.message.content"));
    assert_non_null(ca);
    assert_string_equal(ca, cb);
    assert_string_equal(json_string_value(sky_json_path(ja, "choices.0.finish_reason")), "length");
    assert_string_equal(json_string_value(sky_json_path(ja, "model")), "gpt-4o-mini");
    int64_t p = json_integer_value(sky_json_path(ja, "usage.prompt_tokens"));
    int64_t c = json_integer_value(sky_json_path(ja, "usage.completion_tokens"));
    assert_int_equal(c, 5);
    assert_int_equal(json_integer_value(sky_json_path(ja, "usage.total_tokens")), p + c);
    /* five words for five tokens */
    int spaces = 0;
    for (const char *s = ca; *s; s++)
        spaces += *s == ' ';
    assert_int_equal(spaces, 4);
    /* "created" is Unix time, as the providers send it (a minute's slack for a slow run) */
    int64_t created = json_integer_value(json_object_get(ja, "created"));
    assert_true(llabs(created - (int64_t)time(NULL)) < 60);
    json_decref(ja);
    json_decref(jb);
    sky_test_result_free(&a);
    sky_test_result_free(&b);
    close_fixture(&f);
}

/* A model name that needs escaping is escaped by jansson; the reply is the
 * same shape and still valid JSON. */
static void test_model_name_escaped(void **state)
{
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, NULL);
    request(&f, "POST", "/v1/chat/completions",
            "{\"model\":\"we\\\"ird\\\\m\u00e9\",\"messages\":[{\"role\":\"user\","
            "\"content\":\"hello\"}],\"max_tokens\":5}",
            NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "we\"ird\\m\xc3\xa9");
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.completion_tokens")), 5);
    assert_string_equal(json_string_value(sky_json_path(j, "choices.0.finish_reason")), "length");
    json_decref(j);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* One chat reply: its model, its number of words, its id and request id. */
static void check_chat_reply(fixture *f, const char *model, int max_tokens)
{
    char body[256];
    sky_test_result r;
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
             "\"max_tokens\":%d}",
             model, max_tokens);
    request(f, "POST", "/v1/chat/completions", body, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "model")), model);
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.completion_tokens")), max_tokens);
    const char *content = json_string_value(sky_json_path(j, "choices.0.message.content"));
    assert_non_null(content);
    int spaces = 0;
    for (const char *s = content; *s; s++)
        spaces += *s == ' ';
    assert_int_equal(spaces, max_tokens - 1);
    const char *id = json_string_value(json_object_get(j, "id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), strlen("chatcmpl-") + 16);
    assert_int_equal(strncmp(id, "chatcmpl-", 9), 0);
    const char *rid = header(&r, "x-request-id");
    assert_non_null(rid);
    assert_int_equal(strlen(rid), strlen("req_") + 16);
    json_decref(j);
    sky_test_result_free(&r);
}

/* The mock keeps the last model's encoding: a change of model must show in
 * the next reply. A long reply outgrows the small buffer a short one uses. */
static void test_models_in_turn_and_long_reply(void **state)
{
    /* every reply as long as its max_tokens, the mock's length before issue 16 */
    static const char *const args[] = {"--reply-median-tokens", "0", NULL};
    fixture f;
    (void)state;
    open_fixture(&f, args);
    check_chat_reply(&f, "model-a", 3);
    check_chat_reply(&f, "model-b", 400);
    check_chat_reply(&f, "model-a", 1);
    close_fixture(&f);
}

static void test_embeddings_and_models(void **state)
{
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, NULL);
    request(&f, "POST", "/v1/embeddings",
            "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\",\"c\"],"
            "\"dimensions\":8}",
            NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 3);
    json_t *vec = sky_json_path(j, "data.2.embedding");
    assert_int_equal(json_array_size(vec), 8);
    double norm = 0;
    for (size_t i = 0; i < 8; i++)
        norm += json_real_value(json_array_get(vec, i)) * json_real_value(json_array_get(vec, i));
    assert_true(norm > 0.999 && norm < 1.001);
    json_decref(j);
    sky_test_result_free(&r);
    request(&f, "POST", "/openai/deployments/emb/embeddings?api-version=2024-10-21",
            "{\"input\":\"hello\"}", NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_array_size(sky_json_path(j, "data.0.embedding")), 1536);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "emb");
    json_decref(j);
    sky_test_result_free(&r);
    request(&f, "GET", "/v1/models", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_true(json_array_size(json_object_get(j, "data")) >= 3);
    json_decref(j);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* The base64 of one embedding decoded as little-endian float32s: their count, and the sum
 * of their squares in *out_norm. */
static int decode_base64_floats(const char *text, double *out_norm)
{
    size_t len = strlen(text);
    unsigned char *raw = malloc(len);
    assert_non_null(raw);
    int n = EVP_DecodeBlock(raw, (const unsigned char *)text, (int)len);
    assert_true(n >= 0);
    n -= len >= 2 && text[len - 1] == '=' ? (text[len - 2] == '=' ? 2 : 1) : 0;
    assert_int_equal(n % 4, 0);
    *out_norm = 0;
    for (int i = 0; i < n / 4; i++) {
        uint32_t bits = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
                        (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24;
        float v;
        memcpy(&v, &bits, 4);
        *out_norm += (double)v * v;
    }
    free(raw);
    return n / 4;
}

/* encoding_format "base64", the SDKs' default, on both routes: float32s, unit length. */
static void test_embeddings_base64(void **state)
{
    static const char *const paths[] = {
        "/v1/embeddings", "/openai/deployments/emb/embeddings?api-version=2024-10-21"};
    fixture f;
    sky_test_result r;
    double norm;
    (void)state;
    open_fixture(&f, NULL);
    for (int i = 0; i < 2; i++) {
        request(&f, "POST", paths[i],
                "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\"],"
                "\"encoding_format\":\"base64\"}",
                NULL, &r);
        assert_int_equal(r.status, 200);
        json_t *j = body_json(&r);
        const char *b64 = json_string_value(sky_json_path(j, "data.1.embedding"));
        assert_non_null(b64);
        assert_int_equal(decode_base64_floats(b64, &norm), 1536);
        assert_true(norm > 0.999 && norm < 1.001);
        json_decref(j);
        sky_test_result_free(&r);
    }
    expect_status(&f, "POST", "/v1/embeddings",
                  "{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"int8\"}", NULL, 400);
    close_fixture(&f);
}

/* PUT a resource whose operation is polled (--arm-polls 1) and list a group's resources one
 * a page, sending @p headers: the Azure-AsyncOperation and the nextLink. */
static void arm_links(fixture *f, const char *const *headers, char *out_async, char *out_next)
{
    static const char sub[] = "/subscriptions/s1/resourcegroups/g1";
    static const char api[] = "?api-version=2021-04-01";
    char path[256];
    sky_test_result r;
    snprintf(path, sizeof(path), "%s%s", sub, api);
    expect_status(f, "PUT", path, "{\"location\":\"westus\"}", headers, 201);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/providers/Microsoft.Storage/things/t%d%s", sub, i, api);
        request(f, "PUT", path, "{\"location\":\"westus\"}", headers, &r);
        assert_true(r.status == 201 || r.status == 200);
        snprintf(out_async, 512, "%s", header(&r, "azure-asyncoperation"));
        sky_test_result_free(&r);
    }
    snprintf(path, sizeof(path), "%s/resources%s", sub, api);
    request(f, "GET", path, NULL, headers, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    snprintf(out_next, 512, "%s", json_string_value(json_object_get(j, "nextLink")));
    json_decref(j);
    sky_test_result_free(&r);
}

/* With --tls-cert the links the mock writes are https; behind a proxy they name the
 * Host the client sent, so the client follows them with its token. */
static void test_arm_links_scheme_and_host(void **state)
{
    static const char *const args[] = {"--arm-polls", "1", "--arm-page-size", "1", NULL};
    static const char *const bearer[] = {"Authorization: Bearer t", NULL};
    static const char *const proxied[] = {"Authorization: Bearer t", "Host: arm.example:8443",
                                          NULL};
    char async_url[512], next[512], want[128], ca[300];
    fixture f;
    sky_http_client_options o;
    (void)state;
    memset(&f, 0, sizeof(f));
    f.mock.tls = 1;
    sky_test_mock_start(&f.mock, args);
    f.loop = sky_test_loop_new();
    sky_http_client_options_init(&o);
    snprintf(ca, sizeof(ca), "%s/ca.pem", f.mock.dir);
    o.ca_file = ca;
    assert_int_equal(sky_http_client_new(f.loop, &o, &f.client), 0);
    arm_links(&f, bearer, async_url, next);
    snprintf(want, sizeof(want), "https://127.0.0.1:%d/subscriptions/s1/", f.mock.port);
    assert_memory_equal(async_url, want, strlen(want));
    assert_memory_equal(next, want, strlen(want));
    close_fixture(&f);
    open_fixture(&f, args);
    arm_links(&f, proxied, async_url, next);
    assert_non_null(strstr(async_url, "http://arm.example:8443/subscriptions/s1/"));
    assert_non_null(strstr(next, "http://arm.example:8443/subscriptions/s1/"));
    close_fixture(&f);
}

/* What MSAL fetches before a token: the tenant's OpenID configuration, whose endpoints are
 * on the mock and whose issuer has the authority's origin, and instance discovery. */
static void test_entra_discovery(void **state)
{
    fixture f;
    sky_test_result r;
    char want[256];
    (void)state;
    open_fixture(&f, NULL);
    request(&f, "GET", "/tenant-1/v2.0/.well-known/openid-configuration", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    snprintf(want, sizeof(want), "%s/tenant-1/oauth2/v2.0/token", f.mock.base_url);
    assert_string_equal(sky_json_str(j, "token_endpoint", ""), want);
    snprintf(want, sizeof(want), "%s/tenant-1/oauth2/v2.0/authorize", f.mock.base_url);
    assert_string_equal(sky_json_str(j, "authorization_endpoint", ""), want);
    snprintf(want, sizeof(want), "%s/tenant-1/v2.0", f.mock.base_url);
    assert_string_equal(sky_json_str(j, "issuer", ""), want);
    json_decref(j);
    sky_test_result_free(&r);
    request(&f, "GET",
            "/common/discovery/instance?api-version=1.1&authorization_endpoint=https%3A%2F%2Fx"
            "%2Ft%2Foauth2%2Fv2.0%2Fauthorize",
            NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    snprintf(want, sizeof(want), "%s/{tenant}/v2.0/.well-known/openid-configuration",
             f.mock.base_url);
    assert_string_equal(sky_json_str(j, "tenant_discovery_endpoint", ""), want);
    assert_string_equal(json_string_value(sky_json_path(j, "metadata.0.aliases.0")),
                        f.mock.base_url + strlen("http://"));
    json_decref(j);
    sky_test_result_free(&r);
    /* the token endpoint as before; a path the mock does not serve is still a 404 */
    request(&f, "GET", "/v1/no-such-thing", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    j = body_json(&r);
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")), "not_found");
    json_decref(j);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* A route with a trailing slash answers as without: MSAL sends one to managed identity. */
static void test_trailing_slash(void **state)
{
    static const char *const imds[] = {"Metadata: true", NULL};
    static const char *const app[] = {"X-IDENTITY-HEADER: mock-identity-header", NULL};
    fixture f;
    (void)state;
    open_fixture(&f, NULL);
    expect_body(&f, "GET",
                "/metadata/identity/oauth2/token/?api-version=2018-02-01&resource=https://x", NULL,
                imds, 200, "mock-token-");
    expect_status(&f, "GET", "/msi/token/?api-version=2019-08-01&resource=https://x", NULL, app,
                  200);
    expect_status(&f, "POST", "/v1/chat/completions/", chat_body, NULL, 200);
    expect_status(&f, "POST", "/openai/deployments/d1/chat/completions/?api-version=2024-10-21",
                  chat_body, NULL, 200);
    expect_body(&f, "GET", "/v1/models/gpt-4o-mini/", NULL, NULL, 200, "\"gpt-4o-mini\"");
    close_fixture(&f);
}

/* Routes the SDKs call that the mock lacked: checkExistence (HEAD on a group), a
 * subscription's resources, Azure's /openai/responses and /openai/models. */
static void test_sdk_routes(void **state)
{
    static const char *const bearer[] = {"Authorization: Bearer t", NULL};
    static const char sub[] = "/subscriptions/s1";
    static const char api[] = "?api-version=2021-04-01";
    char path[256];
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, NULL);
    snprintf(path, sizeof(path), "%s/resourcegroups/g1%s", sub, api);
    expect_status(&f, "HEAD", path, NULL, bearer, 404);
    request(&f, "PUT", path, "{\"location\":\"westus\"}", bearer, &r);
    assert_int_equal(r.status, 201);
    json_t *j = body_json(&r);
    assert_string_equal(sky_json_str(j, "id", ""), "/subscriptions/s1/resourceGroups/g1");
    json_decref(j);
    sky_test_result_free(&r);
    expect_status(&f, "HEAD", path, NULL, bearer, 204);
    snprintf(path, sizeof(path), "%s/resourcegroups/g1/providers/A.B/things/t1%s", sub, api);
    request(&f, "PUT", path, "{\"location\":\"westus\"}", bearer, &r);
    sky_test_result_free(&r);
    snprintf(path, sizeof(path), "%s/resources%s", sub, api);
    request(&f, "GET", path, NULL, bearer, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "value")), 1);
    assert_string_equal(json_string_value(sky_json_path(j, "value.0.name")), "t1");
    json_decref(j);
    sky_test_result_free(&r);
    request(&f, "POST", "/openai/responses?api-version=2025-03-01-preview",
            "{\"model\":\"dep1\",\"input\":\"hi\"}", NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(sky_json_str(j, "model", ""), "dep1");
    assert_string_equal(sky_json_str(j, "object", ""), "response");
    json_decref(j);
    sky_test_result_free(&r);
    request(&f, "POST", "/openai/responses", "{\"model\":\"dep1\",\"input\":\"hi\"}", NULL, &r);
    assert_int_equal(r.status, 404); /* Azure wants its api-version */
    sky_test_result_free(&r);
    expect_body(&f, "GET", "/openai/models?api-version=2024-10-21", NULL, NULL, 200, "\"list\"");
    close_fixture(&f);
}

/* The events of a whole SSE body: "type|data" lines, kept in order. */
typedef struct sse_log {
    json_t *types; /* event types ("" for none), in order */
    json_t *data;  /* their data parsed as JSON (null for [DONE]) */
} sse_log;

static int on_sse(void *ud, const sky_sse_event *ev)
{
    sse_log *l = ud;
    json_t *j = NULL;
    json_array_append_new(l->types, json_stringn(ev->event.ptr, ev->event.len));
    if (!ev->is_done)
        assert_int_equal(sky_json_parse(ev->data, &j, NULL), 0);
    json_array_append_new(l->data, j ? j : json_null());
    return 0;
}

static void read_sse(const sky_test_result *r, sse_log *l)
{
    sky_sse_parser p;
    l->types = json_array();
    l->data = json_array();
    sky_sse_parser_init(&p, 0, on_sse, l);
    assert_int_equal(sky_sse_parser_feed(&p, r->body, r->body_len), 0);
    assert_int_equal(sky_sse_parser_finish(&p), 0);
    sky_sse_parser_free(&p);
}

static void sse_log_free(sse_log *l)
{
    json_decref(l->types);
    json_decref(l->data);
}

static json_t *chat(fixture *f, const char *path, const char *body)
{
    sky_test_result r;
    request(f, "POST", path, body, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    sky_test_result_free(&r);
    return j;
}

#define USER "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
#define PERSON                                                                                     \
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"        \
    "\"age\":{\"type\":\"integer\",\"minimum\":18,\"maximum\":30},\"color\":{\"enum\":[\"red\","   \
    "\"green\"]},\"tags\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/tag\"}},"              \
    "\"pet\":{\"anyOf\":[{\"type\":\"null\"},{\"type\":\"boolean\"}]}},\"required\":[\"name\","    \
    "\"age\",\"color\",\"tags\",\"pet\"],\"additionalProperties\":false,\"$defs\":{\"tag\":"       \
    "{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}}}"

/* A value made for PERSON: every property, of its type, within its bounds. */
static void check_person(const char *text)
{
    json_t *p = NULL;
    assert_int_equal(sky_json_parse(sky_span_cstr(text), &p, NULL), 0);
    assert_int_equal(json_object_size(p), 5);
    assert_true(json_is_string(json_object_get(p, "name")));
    assert_true(strlen(sky_json_str(p, "name", "")) <= 12);
    int64_t age = sky_json_int(p, "age", -1);
    assert_true(json_is_integer(json_object_get(p, "age")) && age >= 18 && age <= 30);
    const char *color = sky_json_str(p, "color", "");
    assert_true(strcmp(color, "red") == 0 || strcmp(color, "green") == 0);
    const char *tag = json_string_value(sky_json_path(p, "tags.0"));
    assert_true(tag && (strcmp(tag, "a") == 0 || strcmp(tag, "b") == 0));
    assert_true(json_is_boolean(json_object_get(p, "pet")));
    json_decref(p);
}

/* n choices, JSON under response_format, tool calls under tool_choice, and the fields the
 * SDKs model: replies the SDKs' helpers (chat.completions.parse, runTools) can read. */
static void test_chat_follows_request(void **state)
{
    static const char tools[] =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"unit\":{\"enum\":"
        "[\"c\",\"f\"]}},\"required\":[\"city\",\"unit\"]}}},{\"type\":\"function\",\"function\":"
        "{\"name\":\"noop\"}}]";
    fixture f;
    char body[2048];
    (void)state;
    open_fixture(&f, NULL);
    json_t *j = chat(&f, "/v1/chat/completions", "{\"model\":\"m\"," USER ",\"n\":3}");
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 3);
    assert_int_equal(json_integer_value(sky_json_path(j, "choices.2.index")), 2);
    assert_string_not_equal(json_string_value(sky_json_path(j, "choices.0.message.content")),
                            json_string_value(sky_json_path(j, "choices.1.message.content")));
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.completion_tokens")), 3 * 16);
    json_decref(j);
    snprintf(body, sizeof(body),
             "{\"model\":\"m\"," USER ",\"response_format\":{\"type\":\"json_schema\","
             "\"json_schema\":{\"name\":\"person\",\"strict\":true,\"schema\":%s}}}",
             PERSON);
    j = chat(&f, "/v1/chat/completions", body);
    check_person(json_string_value(sky_json_path(j, "choices.0.message.content")));
    json_decref(j);
    j = chat(&f, "/v1/chat/completions",
             "{\"model\":\"m\"," USER ",\"response_format\":{\"type\":\"json_object\"}}");
    json_t *obj = NULL;
    assert_int_equal(sky_json_parse(sky_span_cstr(json_string_value(
                                        sky_json_path(j, "choices.0.message.content"))),
                                    &obj, NULL),
                     0);
    assert_true(json_is_object(obj));
    json_decref(obj);
    json_decref(j);
    snprintf(body, sizeof(body), "{\"model\":\"m\"," USER ",%s,\"tool_choice\":\"required\"}",
             tools);
    j = chat(&f, "/v1/chat/completions", body);
    assert_string_equal(json_string_value(sky_json_path(j, "choices.0.finish_reason")),
                        "tool_calls");
    assert_true(json_is_null(sky_json_path(j, "choices.0.message.content")));
    json_t *call = sky_json_path(j, "choices.0.message.tool_calls.0");
    assert_string_equal(json_string_value(sky_json_path(call, "function.name")), "get_weather");
    assert_string_equal(sky_json_str(call, "type", ""), "function");
    json_t *args = NULL;
    assert_int_equal(
        sky_json_parse(sky_span_cstr(json_string_value(sky_json_path(call, "function.arguments"))),
                       &args, NULL),
        0);
    assert_true(json_is_string(json_object_get(args, "city")));
    assert_true(strchr("cf", sky_json_str(args, "unit", "x")[0]) != NULL);
    json_decref(args);
    json_decref(j);
    snprintf(body, sizeof(body),
             "{\"model\":\"m\"," USER ",%s,\"tool_choice\":{\"type\":\"function\",\"function\":"
             "{\"name\":\"noop\"}}}",
             tools);
    j = chat(&f, "/v1/chat/completions", body);
    assert_string_equal(json_string_value(sky_json_path(j, "choices.0.message.tool_calls.0."
                                                           "function.name")),
                        "noop");
    json_decref(j);
    /* the plain reply (written by hand) has the fields the SDKs model */
    j = chat(&f, "/v1/chat/completions", chat_body);
    assert_true(json_is_null(sky_json_path(j, "choices.0.message.refusal")));
    assert_true(json_is_array(sky_json_path(j, "choices.0.message.annotations")));
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.prompt_tokens_details."
                                                         "cached_tokens")),
                     0);
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.completion_tokens_details."
                                                         "reasoning_tokens")),
                     0);
    assert_string_equal(sky_json_str(j, "service_tier", ""), "default");
    assert_string_equal(sky_json_str(j, "system_fingerprint", ""), "fp_skyio_mock");
    json_decref(j);
    close_fixture(&f);
}

/* Azure's replies carry its content filter's results; its streams open with a chunk of no
 * choices that holds the prompt's. */
static void test_azure_filter_results(void **state)
{
    static const char path[] = "/openai/deployments/d1/chat/completions?api-version=2024-10-21";
    fixture f;
    sky_test_result r;
    sse_log log;
    (void)state;
    open_fixture(&f, NULL);
    json_t *j = chat(&f, path, chat_body);
    assert_false(json_is_true(sky_json_path(j, "prompt_filter_results.0.content_filter_results."
                                               "hate.filtered")));
    assert_string_equal(json_string_value(sky_json_path(j, "choices.0.content_filter_results."
                                                           "violence.severity")),
                        "safe");
    json_decref(j);
    request(&f, "POST", path,
            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}", NULL, &r);
    read_sse(&r, &log);
    json_t *first = json_array_get(log.data, 0);
    assert_int_equal(json_array_size(json_object_get(first, "choices")), 0);
    assert_non_null(sky_json_path(first, "prompt_filter_results.0.content_filter_results"));
    assert_int_equal(json_array_size(sky_json_path(json_array_get(log.data, 1), "choices")), 1);
    sse_log_free(&log);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* A streamed JSON reply: its content deltas add up to a value of the schema. */
static void test_chat_stream_json(void **state)
{
    fixture f;
    sky_test_result r;
    sse_log log;
    char body[2048];
    (void)state;
    open_fixture(&f, NULL);
    snprintf(body, sizeof(body),
             "{\"model\":\"m\"," USER ",\"stream\":true,\"response_format\":{\"type\":"
             "\"json_schema\",\"json_schema\":{\"name\":\"p\",\"schema\":%s}}}",
             PERSON);
    request(&f, "POST", "/v1/chat/completions", body, NULL, &r);
    read_sse(&r, &log);
    sky_buf text;
    sky_buf_init(&text, 1 << 20);
    size_t i;
    json_t *chunk;
    json_array_foreach(log.data, i, chunk)
    {
        const char *piece = json_string_value(sky_json_path(chunk, "choices.0.delta.content"));
        if (piece)
            assert_int_equal(sky_buf_append_str(&text, piece), 0);
    }
    assert_int_equal(sky_buf_append(&text, "", 1), 0);
    check_person(text.data);
    sky_buf_free(&text);
    sse_log_free(&log);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* Content (or tool argument) pieces of choice @p index in a chat stream, and its finish. */
static int stream_pieces(const sse_log *log, int index, int tool, sky_buf *text,
                         const char **out_finish)
{
    size_t i;
    json_t *chunk;
    int n = 0;
    json_array_foreach(log->data, i, chunk)
    {
        const json_t *ch = sky_json_path(chunk, "choices.0");
        if (ch == NULL || sky_json_int(ch, "index", -1) != index)
            continue;
        const char *piece =
            json_string_value(tool ? sky_json_path(ch, "delta.tool_calls.0.function.arguments")
                                   : sky_json_path(ch, "delta.content"));
        if (piece && piece[0]) {
            assert_int_equal(sky_buf_append_str(text, piece), 0);
            n++;
        }
        if (json_is_string(json_object_get(ch, "finish_reason")))
            *out_finish = json_string_value(json_object_get(ch, "finish_reason"));
    }
    return n;
}

/* Streams of n choices, JSON and tool calls go token by token, the choices side by side,
 * as plain text does. */
static void test_stream_shapes_token_by_token(void **state)
{
    static const char *const bodies[] = {
        "{\"model\":\"m\"," USER ",\"stream\":true,\"n\":2}",
        "{\"model\":\"m\"," USER ",\"stream\":true,\"response_format\":{\"type\":\"json_object\"}}",
        "{\"model\":\"m\"," USER ",\"stream\":true,\"tool_choice\":\"required\",\"tools\":[{"
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}"};
    fixture f;
    (void)state;
    open_fixture(&f, NULL);
    for (size_t b = 0; b < 3; b++) {
        sky_test_result r;
        sse_log log;
        request(&f, "POST", "/v1/chat/completions", bodies[b], NULL, &r);
        read_sse(&r, &log);
        for (int index = 0; index < (b == 0 ? 2 : 1); index++) {
            sky_buf text;
            const char *finish = NULL;
            sky_buf_init(&text, 1 << 20);
            int pieces = stream_pieces(&log, index, b == 2, &text, &finish);
            assert_int_equal(sky_buf_append(&text, "", 1), 0);
            if (b == 0)
                assert_int_equal(pieces, 16); /* a word a chunk */
            else
                assert_true(pieces >= 4);
            json_t *parsed = NULL;
            if (b > 0) /* the pieces add up to JSON */
                assert_int_equal(sky_json_parse(sky_span_cstr(text.data), &parsed, NULL), 0);
            assert_true(b == 0 || json_is_object(parsed));
            json_decref(parsed);
            assert_string_equal(finish, b == 2 ? "tool_calls" : "stop");
            sky_buf_free(&text);
        }
        if (b == 0) /* choice 1's first word comes before choice 0's second */
            assert_int_equal(
                sky_json_int(sky_json_path(json_array_get(log.data, 3), "choices.0"), "index", -1),
                1);
        sse_log_free(&log);
        sky_test_result_free(&r);
    }
    close_fixture(&f);
}

/* tool_choice "auto": prose for some bodies, a call for others, the same for the same body. */
static void test_tool_choice_auto(void **state)
{
    fixture f;
    char body[512];
    int calls = 0;
    (void)state;
    open_fixture(&f, NULL);
    for (int i = 0; i < 16; i++) {
        snprintf(body, sizeof(body),
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"}],"
                 "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}",
                 i);
        json_t *a = chat(&f, "/v1/chat/completions", body);
        json_t *b = chat(&f, "/v1/chat/completions", body);
        const json_t *call = sky_json_path(a, "choices.0.message.tool_calls");
        assert_int_equal(call != NULL, sky_json_path(b, "choices.0.message.tool_calls") != NULL);
        assert_string_equal(sky_json_str(sky_json_path(a, "choices.0"), "finish_reason", ""),
                            call ? "tool_calls" : "stop");
        calls += call != NULL;
        json_decref(a);
        json_decref(b);
    }
    assert_true(calls >= 3 && calls <= 13);
    close_fixture(&f);
}

/* A schema's "pattern" is followed where the generator knows its parts. */
static void test_schema_pattern(void **state)
{
    fixture f;
    regex_t re;
    (void)state;
    open_fixture(&f, NULL);
    assert_int_equal(regcomp(&re, "^[A-Z]{3}-[0-9]{4}(-x)?$", REG_EXTENDED | REG_NOSUB), 0);
    for (int i = 0; i < 8; i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"p%d\"}],"
                 "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"s\","
                 "\"schema\":{\"type\":\"object\",\"properties\":{\"sku\":{\"type\":\"string\","
                 "\"pattern\":\"^[A-Z]{3}-\\\\d{4}(?:-x)?$\"},\"odd\":{\"type\":\"string\","
                 "\"pattern\":\"(?=a)b\"}}}}}}",
                 i);
        json_t *r = chat(&f, "/v1/chat/completions", body);
        json_t *v = NULL;
        assert_int_equal(sky_json_parse(sky_span_cstr(json_string_value(
                                            sky_json_path(r, "choices.0.message.content"))),
                                        &v, NULL),
                         0);
        assert_int_equal(regexec(&re, sky_json_str(v, "sku", ""), 0, NULL, 0), 0);
        assert_true(json_is_string(json_object_get(v, "odd"))); /* a gap: words */
        json_decref(v);
        json_decref(r);
    }
    regfree(&re);
    close_fixture(&f);
}

/* A virtual machine as ARM keeps it: no password in answers, power actions that move the
 * instance view's PowerState. */
static void test_arm_virtual_machine(void **state)
{
    static const char *const args[] = {"--arm-polls", "0", NULL};
    static const char *const bearer[] = {"Authorization: Bearer t", NULL};
    static const char vm[] = "/subscriptions/s1/resourceGroups/g1/providers/"
                             "Microsoft.Compute/virtualMachines/vm1";
    static const char api[] = "api-version=2024-07-01";
    char path[512];
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, args);
    snprintf(path, sizeof(path), "/subscriptions/s1/resourceGroups/g1?%s", api);
    request(&f, "PUT", path, "{\"location\":\"westus\"}", bearer, &r);
    sky_test_result_free(&r);
    snprintf(path, sizeof(path), "%s?%s", vm, api);
    request(&f, "PUT", path,
            "{\"location\":\"westus\",\"properties\":{\"hardwareProfile\":{\"vmSize\":\"B1s\"},"
            "\"storageProfile\":{\"imageReference\":{\"offer\":\"o\"}},\"osProfile\":{"
            "\"adminUsername\":\"u\",\"adminPassword\":\"secret-pw\"},\"networkProfile\":{"
            "\"networkInterfaces\":[{\"id\":\"/nic\"}]}}}",
            bearer, &r);
    assert_int_equal(r.status, 201);
    assert_null(strstr(r.body, "secret-pw"));
    assert_non_null(strstr(r.body, "\"vmId\""));
    sky_test_result_free(&r);
    snprintf(path, sizeof(path), "%s/powerOff?%s", vm, api);
    expect_status(&f, "POST", path, "", bearer, 200);
    snprintf(path, sizeof(path), "%s/instanceView?%s", vm, api);
    expect_body(&f, "GET", path, NULL, bearer, 200, "PowerState/stopped");
    snprintf(path, sizeof(path), "%s/start?%s", vm, api);
    request(&f, "POST", path, "", bearer, &r);
    sky_test_result_free(&r);
    snprintf(path, sizeof(path), "%s?%s&$expand=instanceView", vm, api);
    request(&f, "GET", path, NULL, bearer, &r);
    json_t *j = body_json(&r);
    assert_non_null(strstr(r.body, "PowerState/running"));
    assert_non_null(sky_json_path(j, "properties.instanceView.statuses"));
    assert_null(strstr(r.body, "secret-pw"));
    assert_null(strstr(r.body, "skyio-mock-")); /* the mock's bookkeeping stays inside */
    json_decref(j);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* With a generous max_tokens most replies end on their own ("stop"), shorter than it; a
 * small one still cuts them ("length"). */
static void test_reply_length_distribution(void **state)
{
    fixture f;
    char body[256];
    int stops = 0;
    (void)state;
    open_fixture(&f, NULL);
    for (int i = 0; i < 40; i++) {
        snprintf(body, sizeof(body),
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"}],"
                 "\"max_tokens\":4096}",
                 i);
        json_t *j = chat(&f, "/v1/chat/completions", body);
        int64_t n = json_integer_value(sky_json_path(j, "usage.completion_tokens"));
        int stop = strcmp(json_string_value(sky_json_path(j, "choices.0.finish_reason")), "stop");
        assert_true(n >= 64 && n <= 4096);
        stops += stop == 0 && n < 4096;
        json_decref(j);
    }
    assert_true(stops >= 36);
    json_t *j = chat(&f, "/v1/chat/completions", chat_body); /* max_tokens 5 */
    assert_string_equal(json_string_value(sky_json_path(j, "choices.0.finish_reason")), "length");
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.completion_tokens")), 5);
    json_decref(j);
    close_fixture(&f);
}

/* A streamed response: the events of the API reference, in order, numbered, ending with
 * the whole response; the deltas add up to the text; no [DONE]. */
static void test_responses_stream(void **state)
{
    static const char *const types[] = {"response.created",           "response.in_progress",
                                        "response.output_item.added", "response.content_part.added",
                                        "response.output_text.delta", "response.output_text.delta",
                                        "response.output_text.delta", "response.output_text.done",
                                        "response.content_part.done", "response.output_item.done",
                                        "response.completed"};
    static const char *const args[] = {"--completion-tokens", "3", NULL};
    fixture f;
    sky_test_result r;
    sse_log l;
    char text[256] = "";
    (void)state;
    open_fixture(&f, args);
    request(&f, "POST", "/v1/responses",
            "{\"model\":\"gpt-4.1\",\"input\":\"hello\",\"instructions\":\"terse\","
            "\"stream\":true}",
            NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "content-type"), "text/event-stream");
    read_sse(&r, &l);
    assert_int_equal(json_array_size(l.types), SKY_ARRAY_LEN(types));
    for (size_t i = 0; i < SKY_ARRAY_LEN(types); i++) {
        json_t *d = json_array_get(l.data, i);
        assert_string_equal(json_string_value(json_array_get(l.types, i)), types[i]);
        assert_string_equal(sky_json_str(d, "type", ""), types[i]);
        assert_int_equal(json_integer_value(json_object_get(d, "sequence_number")), (json_int_t)i);
        if (strcmp(types[i], "response.output_text.delta") == 0)
            strncat(text, sky_json_str(d, "delta", ""), sizeof(text) - strlen(text) - 1);
    }
    json_t *last = json_array_get(l.data, SKY_ARRAY_LEN(types) - 1);
    assert_string_equal(json_string_value(sky_json_path(last, "response.status")), "completed");
    assert_string_equal(json_string_value(sky_json_path(last, "response.output.0.content.0.text")),
                        text);
    assert_int_equal(json_integer_value(sky_json_path(last, "response.usage.output_tokens")), 3);
    assert_string_equal(json_string_value(sky_json_path(last, "response.instructions")), "terse");
    assert_string_equal(json_string_value(sky_json_path(l.data, "1.response.status")),
                        "in_progress");
    sse_log_free(&l);
    sky_test_result_free(&r);
    /* a content filter stops it half-way: response.incomplete, and the text so far */
    close_fixture(&f);
    static const char *const filtered[] = {"--completion-tokens", "4", "--fault-content-filter",
                                           "1", NULL};
    open_fixture(&f, filtered);
    request(&f, "POST", "/v1/responses",
            "{\"model\":\"gpt-4.1\",\"input\":\"hello\",\"stream\":true}", NULL, &r);
    read_sse(&r, &l);
    last = json_array_get(l.data, json_array_size(l.data) - 1);
    assert_string_equal(sky_json_str(last, "type", ""), "response.incomplete");
    assert_string_equal(
        json_string_value(sky_json_path(last, "response.incomplete_details.reason")),
        "content_filter");
    assert_int_equal(json_integer_value(sky_json_path(last, "response.usage.output_tokens")), 2);
    sse_log_free(&l);
    sky_test_result_free(&r);
    close_fixture(&f);
    /* a server error half-way is an "error" event, the stream's last */
    static const char *const failing[] = {"--completion-tokens", "4", "--fault-stream-error", "1",
                                          NULL};
    open_fixture(&f, failing);
    request(&f, "POST", "/v1/responses",
            "{\"model\":\"gpt-4.1\",\"input\":\"hello\",\"stream\":true}", NULL, &r);
    read_sse(&r, &l);
    last = json_array_get(l.data, json_array_size(l.data) - 1);
    assert_string_equal(json_string_value(json_array_get(l.types, json_array_size(l.types) - 1)),
                        "error");
    assert_string_equal(sky_json_str(last, "code", ""), "server_error");
    sse_log_free(&l);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* A streamed legacy completion: text chunks, the finish, usage when asked, [DONE]. */
static void test_completion_stream(void **state)
{
    fixture f;
    sky_test_result r;
    sse_log l;
    (void)state;
    open_fixture(&f, NULL);
    request(&f, "POST", "/v1/completions",
            "{\"model\":\"i\",\"prompt\":\"hi\",\"max_tokens\":2,\"stream\":true,"
            "\"stream_options\":{\"include_usage\":true}}",
            NULL, &r);
    assert_int_equal(r.status, 200);
    read_sse(&r, &l);
    assert_int_equal(json_array_size(l.data), 5); /* 2 tokens, finish, usage, [DONE] */
    assert_string_equal(json_string_value(sky_json_path(l.data, "0.object")), "text_completion");
    assert_true(strlen(json_string_value(sky_json_path(l.data, "0.choices.0.text"))) > 0);
    assert_true(strlen(json_string_value(sky_json_path(l.data, "1.choices.0.text"))) > 1);
    assert_string_equal(json_string_value(sky_json_path(l.data, "2.choices.0.finish_reason")),
                        "length");
    assert_int_equal(json_integer_value(sky_json_path(l.data, "3.usage.completion_tokens")), 2);
    assert_true(json_is_null(json_array_get(l.data, 4)));
    sse_log_free(&l);
    sky_test_result_free(&r);
    /* two prompts: each token step has a chunk for each choice, then a finish for each */
    request(&f, "POST", "/v1/completions",
            "{\"model\":\"i\",\"prompt\":[\"a\",\"b\"],\"max_tokens\":2,\"stream\":true}", NULL,
            &r);
    read_sse(&r, &l);
    assert_int_equal(json_array_size(l.data), 7);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(
            json_integer_value(sky_json_path(json_array_get(l.data, i), "choices.0.index")),
            (json_int_t)(i % 2));
    assert_string_equal(json_string_value(sky_json_path(l.data, "5.choices.0.finish_reason")),
                        "length");
    sse_log_free(&l);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* GET /v1/models lists what --model serves; /v1/models/{id} answers for one name. */
static void test_model_list_and_retrieve(void **state)
{
    static const char *const args[] = {"--model", "served-a", "--model", "org/served-b", NULL};
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, args);
    request(&f, "GET", "/v1/models", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    assert_string_equal(json_string_value(sky_json_path(j, "data.1.id")), "org/served-b");
    json_decref(j);
    sky_test_result_free(&r);
    request(&f, "GET", "/v1/models/org/served-b", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(sky_json_str(j, "id", ""), "org/served-b");
    assert_string_equal(sky_json_str(j, "object", ""), "model");
    json_decref(j);
    sky_test_result_free(&r);
    expect_status(&f, "GET", "/models/served-a", NULL, NULL, 200);
    /* as openai-node sends it: the id escaped as one path segment */
    expect_status(&f, "GET", "/v1/models/org%2Fserved-b", NULL, NULL, 200);
    /* moderations without a model go to the provider's own, whatever --model lists */
    expect_status(&f, "POST", "/v1/moderations", "{\"input\":\"hi\"}", NULL, 200);
    expect_body(&f, "GET", "/v1/models/gpt-4o", NULL, NULL, 404, "model_not_found");
    /* a trailing slash is the list's path, as every route's (issue 16) */
    expect_body(&f, "GET", "/v1/models/", NULL, NULL, 200, "\"list\"");
    expect_status(&f, "GET", "/v1/models//", NULL, NULL, 404);
    close_fixture(&f);
    /* without --model every name is served */
    open_fixture(&f, NULL);
    expect_status(&f, "GET", "/v1/models/anything-at-all", NULL, NULL, 200);
    close_fixture(&f);
}

/* A POST that must answer 200; its JSON body (json_decref it). */
static json_t *post_ok(fixture *f, const char *path, const char *body)
{
    sky_test_result r;
    request(f, "POST", path, body, NULL, &r);
    if (r.status != 200)
        fail_msg("%s answered %d: %s", path, r.status, r.body ? r.body : "");
    json_t *j = body_json(&r);
    sky_test_result_free(&r);
    return j;
}

static void test_responses_completions_moderations(void **state)
{
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, NULL);

    /* Responses: a token limit makes the reply that long and "incomplete" */
    json_t *j = post_ok(&f, "/v1/responses",
                        "{\"model\":\"gpt-4.1-mini\",\"input\":\"hello there\","
                        "\"max_output_tokens\":4}");
    assert_string_equal(sky_json_str(j, "object", ""), "response");
    assert_string_equal(sky_json_str(j, "status", ""), "incomplete");
    assert_string_equal(json_string_value(sky_json_path(j, "incomplete_details.reason")),
                        "max_output_tokens");
    assert_string_equal(json_string_value(sky_json_path(j, "output.0.content.0.type")),
                        "output_text");
    /* the settings the API echoes */
    assert_int_equal(json_integer_value(json_object_get(j, "max_output_tokens")), 4);
    assert_string_equal(sky_json_str(j, "tool_choice", ""), "auto");
    assert_true(json_is_array(json_object_get(j, "tools")));
    const char *text = json_string_value(sky_json_path(j, "output.0.content.0.text"));
    assert_non_null(text);
    int words = 1;
    for (const char *p = text; *p; p++)
        words += *p == ' ';
    assert_int_equal(words, 4);
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.output_tokens")), 4);
    assert_true(json_integer_value(sky_json_path(j, "usage.input_tokens")) >= 1);
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.total_tokens")),
                     json_integer_value(sky_json_path(j, "usage.input_tokens")) + 4);
    json_decref(j);
    /* input items with content parts, on Azure's v1 surface; no limit: "completed" */
    j = post_ok(&f, "/openai/v1/responses",
                "{\"model\":\"dep\",\"instructions\":\"be brief\",\"input\":[{\"role\":\"user\","
                "\"content\":[{\"type\":\"input_text\",\"text\":\"hi\"}]}]}");
    assert_string_equal(sky_json_str(j, "status", ""), "completed");
    assert_string_equal(sky_json_str(j, "instructions", ""), "be brief");
    assert_true(json_is_null(json_object_get(j, "incomplete_details")));
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.output_tokens")), 16);
    json_decref(j);

    /* legacy completions, OpenAI's and an Azure deployment's */
    /* two prompts: a choice each, with words of its own */
    j = post_ok(&f, "/v1/completions",
                "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":[\"a\",\"b\"],\"max_tokens\":3}");
    assert_string_equal(sky_json_str(j, "object", ""), "text_completion");
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 2);
    assert_string_equal(json_string_value(sky_json_path(j, "choices.0.finish_reason")), "length");
    assert_int_equal(json_integer_value(sky_json_path(j, "choices.1.index")), 1);
    assert_non_null(json_string_value(sky_json_path(j, "choices.0.text")));
    assert_string_not_equal(json_string_value(sky_json_path(j, "choices.0.text")),
                            json_string_value(sky_json_path(j, "choices.1.text")));
    assert_int_equal(json_integer_value(sky_json_path(j, "usage.completion_tokens")), 6);
    json_decref(j);
    /* token ids are one prompt */
    j = post_ok(&f, "/v1/completions",
                "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":[15,16,17],\"max_tokens\":2}");
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 1);
    json_decref(j);
    j = post_ok(&f, "/openai/deployments/instruct/completions?api-version=2024-10-21",
                "{\"prompt\":\"hi\"}");
    assert_string_equal(sky_json_str(j, "model", ""), "instruct");
    assert_string_equal(json_string_value(sky_json_path(j, "choices.0.finish_reason")), "stop");
    json_decref(j);

    /* moderations: one result per input, the model left to the provider */
    j = post_ok(&f, "/v1/moderations", "{\"input\":[\"x\",\"y\"]}");
    assert_string_equal(sky_json_str(j, "model", ""), "omni-moderation-latest");
    assert_int_equal(json_array_size(json_object_get(j, "results")), 2);
    assert_true(json_is_false(sky_json_path(j, "results.1.flagged")));
    assert_true(json_is_real(sky_json_path(j, "results.0.category_scores.violence")));
    assert_string_equal(
        json_string_value(sky_json_path(j, "results.0.category_applied_input_types.violence.0")),
        "text");
    json_decref(j);
    /* text and image parts are one input */
    j = post_ok(&f, "/v1/moderations",
                "{\"input\":[{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"image_url\","
                "\"image_url\":{\"url\":\"data:,\"}}]}");
    assert_int_equal(json_array_size(json_object_get(j, "results")), 1);
    json_decref(j);

    /* bad requests say why */
    expect_body(&f, "POST", "/v1/completions", "{\"model\":\"m\"}", NULL, 400, "prompt");
    expect_status(&f, "POST", "/v1/moderations", "{\"input\":[]}", NULL, 400);

    /* the calls served, as for chat: the refused ones count only as requests */
    request(&f, "GET", "/mock/stats", NULL, NULL, &r);
    j = body_json(&r);
    assert_int_equal(json_integer_value(sky_json_path(j, "endpoints.responses")), 2);
    assert_int_equal(json_integer_value(sky_json_path(j, "endpoints.completions")), 3);
    assert_int_equal(json_integer_value(sky_json_path(j, "endpoints.moderations")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "requests")), 9);
    assert_int_equal(json_integer_value(sky_json_path(j, "tokens.completion")),
                     4 + 16 + 2 * 3 + 2 + 16);
    json_decref(j);
    sky_test_result_free(&r);
    close_fixture(&f);
}

static void test_bad_requests(void **state)
{
    static const char *const args[] = {"--max-body", "1000", NULL};
    fixture f;
    char big[3000];
    (void)state;
    open_fixture(&f, args);
    expect_body(&f, "POST", "/v1/chat/completions", "{not json", NULL, 400, "line 1");
    expect_body(&f, "POST", "/v1/chat/completions", "{\"model\":\"m\"}", NULL, 400, "messages");
    /* Azure without api-version */
    expect_status(&f, "POST", "/openai/deployments/d/chat/completions", chat_body, NULL, 404);
    expect_status(&f, "GET", "/v1/nothing", NULL, NULL, 404);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_status(&f, "POST", "/v1/chat/completions", big, NULL, 413);
    close_fixture(&f);
}

/*
 * The mock's rate-limit windows are fixed: each starts at a multiple of its length on the
 * monotonic clock (the mock's uv_now, the clock uv_hrtime reads), not at a test's first
 * request. A test that counts what one 60 s window lets through failed when its requests
 * straddled a boundary (the count started again midway; odds: its run time over 60 s).
 * Wait until the current window is at least 100 ms old (the mock's loop time may lag a
 * little) and has at least @p need_ms left; at worst that is need_ms + 100 ms.
 */
static void wait_for_window_room(uint64_t window_ms, uint64_t need_ms)
{
    uint64_t deadline = uv_hrtime() / 1000000u + need_ms + 1000;
    for (;;) {
        uint64_t now = uv_hrtime() / 1000000u;
        uint64_t phase = now % window_ms;
        if (phase >= 100 && window_ms - phase >= need_ms)
            return;
        if (now > deadline)
            fail_msg("no room in a %llu ms rate-limit window", (unsigned long long)window_ms);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* A 60-second window makes the count exact: 10 RPM means 10 per window. */
static void test_rpm_limit_and_headers(void **state)
{
    static const char *const args[] = {"--rpm", "10", "--window-ms", "60000", NULL};
    fixture f;
    sky_test_result r;
    int ok = 0, limited = 0;
    (void)state;
    open_fixture(&f, args);
    wait_for_window_room(60000, 10000); /* every request in one window */
    for (int i = 0; i < 15; i++) {
        request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
        assert_non_null(header(&r, "x-ratelimit-limit-requests"));
        assert_string_equal(header(&r, "x-ratelimit-limit-requests"), "10");
        if (r.status == 200) {
            ok++;
            assert_int_equal(atoi(header(&r, "x-ratelimit-remaining-requests")), 10 - ok);
        } else {
            assert_int_equal(r.status, 429);
            limited++;
            assert_non_null(header(&r, "retry-after"));
            long ms = atol(header(&r, "retry-after-ms"));
            assert_true(ms > 0 && ms <= 60000);
            assert_true(atol(header(&r, "retry-after")) * 1000 >= ms);
            json_t *j = body_json(&r);
            assert_string_equal(json_string_value(sky_json_path(j, "error.code")),
                                "rate_limit_exceeded");
            json_decref(j);
        }
        sky_test_result_free(&r);
    }
    assert_int_equal(ok, 10);
    assert_int_equal(limited, 5);
    json_t *stats = sky_test_mock_stats(&f.mock);
    assert_int_equal(json_integer_value(json_object_get(stats, "rate_limited_requests")), 5);
    assert_int_equal(json_integer_value(sky_json_path(stats, "responses.429")), 5);
    json_decref(stats);
    close_fixture(&f);
}

/* Tokens: each request costs its prompt estimate plus max_tokens (5). */
static void test_tpm_limit(void **state)
{
    static const char *const args[] = {"--tpm", "40", "--window-ms", "60000", NULL};
    fixture f;
    sky_test_result r;
    int ok = 0;
    (void)state;
    open_fixture(&f, args);
    wait_for_window_room(60000, 10000); /* every request in one window */
    for (int i = 0; i < 10; i++) {
        request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
        ok += r.status == 200;
        if (r.status != 200)
            assert_int_equal(r.status, 429);
        sky_test_result_free(&r);
    }
    /* prompt "hello" = 2 tokens + 4 for the message, + 5 max_tokens = 11: 3 fit in 40 */
    assert_int_equal(ok, 3);
    assert_int_equal(sky_test_mock_stat(&f.mock, "rate_limited_tokens"), 7);
    close_fixture(&f);
}

static void test_hidden_headers(void **state)
{
    static const char *const args[] = {
        "--rpm", "1", "--window-ms", "60000", "--hide-ratelimit-headers", NULL};
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, args);
    wait_for_window_room(60000, 10000); /* every request in one window */
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(header(&r, "x-ratelimit-limit-requests"));
    sky_test_result_free(&r);
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
    assert_int_equal(r.status, 429);
    assert_null(header(&r, "retry-after"));
    assert_null(header(&r, "retry-after-ms"));
    assert_null(header(&r, "x-ratelimit-remaining-requests"));
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* The seeded generator: rates hold over many requests, and stats count each fault. */
static void test_fault_rates_in_stats(void **state)
{
    static const char *const args[] = {"--fault-500", "0.2", "--fault-503", "0.1",
                                       "--seed",      "42",  NULL};
    fixture f;
    sky_test_result r;
    int n500 = 0, n503 = 0;
    (void)state;
    open_fixture(&f, args);
    for (int i = 0; i < 400; i++) {
        request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
        n500 += r.status == 500;
        n503 += r.status == 503;
        sky_test_result_free(&r);
    }
    assert_true(n500 > 50 && n500 < 110);
    assert_true(n503 > 20 && n503 < 65);
    json_t *stats = sky_test_mock_stats(&f.mock);
    assert_int_equal(json_integer_value(sky_json_path(stats, "faults.http_500")), n500);
    assert_int_equal(json_integer_value(sky_json_path(stats, "faults.http_503")), n503);
    assert_int_equal(json_integer_value(sky_json_path(stats, "responses.500")), n500);
    json_decref(stats);
    close_fixture(&f);
}

static void test_config_file_and_flag_precedence(void **state)
{
    char dir[256], path[512];
    fixture f;
    (void)state;
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/mock.json", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"keys\": [\"from-file\"], \"rpm\": 1, \"window_ms\": 60000,"
          " \"faults\": {\"http_503\": 0}}",
          fp);
    fclose(fp);
    /* the flag --rpm 100 wins over the file's rpm 1 */
    const char *const args[] = {"--config", path, "--rpm", "100", NULL};
    static const char *const key[] = {"api-key: from-file", NULL};
    open_fixture(&f, args);
    for (int i = 0; i < 3; i++)
        expect_status(&f, "POST", "/v1/chat/completions", chat_body, key, 200);
    expect_status(&f, "POST", "/v1/chat/completions", chat_body, NULL, 401);
    close_fixture(&f);
    sky_test_rmdir(dir);
}

static void test_bad_config_is_a_clear_error(void **state)
{
    char dir[256], path[512], cmd[1024], line[512] = "";
    (void)state;
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/mock.json", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"rpm\": 10, \"bogus_knob\": 1}", fp);
    fclose(fp);
    snprintf(cmd, sizeof(cmd), "%s mock --config '%s' 2>&1", SKY_TEST_BIN, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(line, "bogus_knob"));
    snprintf(cmd, sizeof(cmd), "%s mock --fault-500 1.5 >/dev/null 2>&1", SKY_TEST_BIN);
    status = system(cmd);
    assert_int_equal(WEXITSTATUS(status), 2);
    /* a folder is not a config file (it read as an empty one, and the mock started) */
    snprintf(cmd, sizeof(cmd), "%s mock --config '%s' 2>&1", SKY_TEST_BIN, dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    status = pclose(p);
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(line, "it is a folder, not a file"));
    snprintf(cmd, sizeof(cmd), "%s mock --capacity -1 >/dev/null 2>&1", SKY_TEST_BIN);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof(cmd), "%s mock --overload-status 500 >/dev/null 2>&1", SKY_TEST_BIN);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    sky_test_rmdir(dir);
}

/* SIGTERM lets requests in flight finish, then the mock exits 0. */
typedef struct drain {
    sky_test_result r[5];
    int done;
} drain;

static void on_drain_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                          void *ud)
{
    drain *d = ud;
    sky_test_on_done(req, res, err, &d->r[d->done]);
    d->done++;
}

/* The chat calls the mock has received. */
static int64_t mock_chat_count(const fixture *f)
{
    json_t *stats = sky_test_mock_stats(&f->mock);
    int64_t n = (int64_t)json_integer_value(sky_json_path(stats, "endpoints.chat"));
    json_decref(stats);
    return n;
}

static void test_sigterm_drains(void **state)
{
    static const char *const args[] = {"--ttft-ms", "400", "--jitter", "0", NULL};
    fixture f;
    drain d;
    sky_http_request_options o;
    char url[256];
    int all = 0;
    (void)state;
    memset(&d, 0, sizeof(d));
    open_fixture(&f, args);
    snprintf(url, sizeof(url), "%s/v1/chat/completions", f.mock.base_url);
    sky_test_post_options(&o, url, chat_body, on_drain_done, &d);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    /* the signal comes once the mock has all five, however slow this run is */
    int64_t received = 0;
    for (int i = 0; i < 1000 && received < 5; i++) {
        sky_test_run_until(f.loop, &all, 10);
        received = mock_chat_count(&f);
    }
    assert_int_equal(received, 5);
    kill(f.mock.pid, SIGTERM);
    for (int i = 0; i < 400 && d.done < 5; i++)
        sky_test_run_until(f.loop, &all, 25);
    assert_int_equal(d.done, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d.r[i].err_code, 0);
        assert_int_equal(d.r[i].status, 200);
        sky_test_result_free(&d.r[i]);
    }
    int status;
    assert_int_equal(waitpid(f.mock.pid, &status, 0), f.mock.pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    f.mock.pid = 0;
    close_fixture(&f);
}

/* Idle keep-alive connections and a request that never gets an answer must
 * not keep a stopping mock alive. */
static void test_sigterm_with_idle_and_hung_connections(void **state)
{
    static const char *const args[] = {"--fault-hang", "0.5", "--seed", "7", NULL};
    fixture f;
    sky_test_result r[6];
    sky_http_request_options o;
    char url[256];
    int never = 0, status;
    (void)state;
    memset(r, 0, sizeof(r));
    open_fixture(&f, args);
    snprintf(url, sizeof(url), "%s/v1/chat/completions", f.mock.base_url);
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = url;
    o.headers = sky_test_json_headers();
    o.body = sky_span_cstr(chat_body);
    o.on_done = sky_test_on_done;
    for (int i = 0; i < 6; i++) {
        o.user_data = &r[i];
        assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    }
    /* every request at the mock before the signal, however slow the machine */
    for (int i = 0; i < 400 && mock_chat_count(&f) < 6; i++)
        sky_test_run_until(f.loop, &never, 25);
    assert_int_equal(mock_chat_count(&f), 6);
    kill(f.mock.pid, SIGTERM);
    /* the mock's grace is 5 s; hung requests are aborted after it */
    for (int i = 0; i < 400; i++) {
        int done = 1;
        for (int k = 0; k < 6; k++)
            done &= r[k].done == 1;
        if (done)
            break;
        sky_test_run_until(f.loop, &never, 25);
    }
    /* answered, or refused with 503 at the end of the grace: never dropped */
    int answered = 0, refused = 0;
    for (int k = 0; k < 6; k++) {
        assert_int_equal(r[k].done, 1);
        assert_int_equal(r[k].err_code, 0);
        answered += r[k].status == 200;
        refused += r[k].status == 503;
        sky_test_result_free(&r[k]);
    }
    assert_int_equal(answered + refused, 6);
    assert_true(refused > 0 && answered > 0);
    assert_int_equal(waitpid(f.mock.pid, &status, 0), f.mock.pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    f.mock.pid = 0;
    close_fixture(&f);
}

/* Two loops on one port: the counts add up across them, and both stop. */
typedef struct counter {
    int done, ok, all;
} counter;

static void on_count(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                     void *ud)
{
    counter *c = ud;
    (void)req;
    c->ok += err == NULL && res->status == 200;
    c->all = ++c->done == 300;
}

static void test_threads(void **state)
{
    static const char *const args[] = {"--threads", "2", "--ttft-ms", "20", NULL};
    fixture f;
    counter c = {0, 0, 0};
    sky_http_request_options o;
    char url[256];
    (void)state;
    /* See the file: h2o's per-thread caches outlive the worker threads. */
    char *lsan_old = sky_test_lsan_threads_begin();
    open_fixture(&f, args);
    sky_test_lsan_threads_end(lsan_old);
    snprintf(url, sizeof(url), "%s/v1/chat/completions", f.mock.base_url);
    sky_test_post_options(&o, url, chat_body, on_count, &c);
    for (int i = 0; i < 300; i++)
        assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &c.all, 60000));
    assert_int_equal(c.ok, 300);
    json_t *stats = sky_test_mock_stats(&f.mock);
    assert_int_equal(json_integer_value(json_object_get(stats, "threads")), 2);
    assert_int_equal(json_integer_value(sky_json_path(stats, "endpoints.chat")), 300);
    assert_int_equal(json_integer_value(sky_json_path(stats, "responses.200")), 300);
    assert_int_equal(json_integer_value(sky_json_path(stats, "tokens.completion")), 1500);
    json_decref(stats);
    close_fixture(&f);
}

/* Latency: time to first token plus time per token, so a long reply takes
 * longer. Only lower bounds are checked: a slow machine cannot fail them. */
static void test_latency_model(void **state)
{
    static const char *const args[] = {"--ttft-ms", "50", "--per-token-ms", "5", "--jitter",
                                       "0",         NULL};
    static const char long_body[] =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
        "\"max_tokens\":60}";
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, args);
    uint64_t t0 = uv_hrtime();
    request(&f, "POST", "/v1/chat/completions", long_body, NULL, &r);
    uint64_t long_ms = (uv_hrtime() - t0) / 1000000u;
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    /* 50 ms + 60 tokens x 5 ms */
    assert_true(long_ms >= 340);
    close_fixture(&f);
}

/* Requests sent at once, each finishing into its own result. */
typedef struct burst {
    int done;
    int status[64];
    uint64_t ms[64]; /* from the send to the end of the reply */
} burst;

typedef struct burst_slot {
    burst *b;
    int i;
} burst_slot;

static void on_burst_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                          void *ud)
{
    burst_slot *s = ud;
    (void)req;
    s->b->status[s->i] = err ? -1 : res->status;
    s->b->ms[s->i] = res->total_us / 1000u;
    s->b->done++;
}

/* @p n chat requests at once, bodies told apart by @p distinct (else all the same). */
static void send_burst(fixture *f, int n, int distinct, burst *b)
{
    char url[512];
    static char bodies[64][160];
    burst_slot slots[64];
    memset(b, 0, sizeof(*b));
    snprintf(url, sizeof(url), "%s/v1/chat/completions", f->mock.base_url);
    for (int i = 0; i < n; i++) {
        sky_http_request_options o;
        snprintf(bodies[i], sizeof(bodies[i]),
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"}]}",
                 distinct ? i : 0);
        slots[i].b = b;
        slots[i].i = i;
        sky_test_post_options(&o, url, bodies[i], on_burst_done, &slots[i]);
        assert_int_equal(sky_http_request_send(f->client, &o, NULL, NULL), 0);
    }
    for (int k = 0; k < 2000 && b->done < n; k++) {
        int never = 0;
        sky_test_run_until(f->loop, &never, 10);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * --capacity: 4 served at once, 100 ms each; 12 at once finish in three waves, each
 * wave's latency holding its wait, and the stats count the waits.
 */
static void test_capacity_queues(void **state)
{
    static const char *const args[] = {"--capacity", "4", "--ttft-ms", "100",
                                       "--jitter",   "0", NULL};
    fixture f;
    burst b;
    (void)state;
    open_fixture(&f, args);
    send_burst(&f, 12, 1, &b);
    assert_int_equal(b.done, 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(b.status[i], 200);
    qsort(b.ms, 12, sizeof(b.ms[0]), cmp_u64);
    /* the fastest four waited for nothing, the slowest for two turns of 100 ms */
    assert_true(b.ms[0] >= 95 && b.ms[3] < 195);
    assert_true(b.ms[11] >= 290);
    json_t *st = sky_test_mock_stats(&f.mock);
    assert_int_equal(json_integer_value(sky_json_path(st, "capacity.limit")), 4);
    assert_int_equal(json_integer_value(sky_json_path(st, "capacity.waits")), 8);
    assert_int_equal(json_integer_value(sky_json_path(st, "capacity.busy")), 0);
    assert_int_equal(json_integer_value(sky_json_path(st, "capacity.queued")), 0);
    assert_true(json_integer_value(sky_json_path(st, "capacity.peak_queued")) >= 8);
    assert_true(json_integer_value(sky_json_path(st, "capacity.wait_ms")) >= 4 * 95 + 4 * 190);
    json_decref(st);
    close_fixture(&f);
}

/* A call that never answers gives up its slot: the line does not jam behind it. */
static void test_capacity_hang_frees_slot(void **state)
{
    static const char *const args[] = {"--capacity", "1", "--fault-hang", "1", NULL};
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, args);
    char url[512];
    snprintf(url, sizeof(url), "%s/v1/chat/completions", f.mock.base_url);
    /* each hangs (holding the one slot) until the client's timeout */
    for (int i = 0; i < 3; i++) {
        sky_test_request(f.loop, f.client, "POST", url, chat_body, NULL, 300, &r);
        assert_int_equal(r.err_code, SKY_ETIMEDOUT);
        sky_test_result_free(&r);
    }
    assert_int_equal(sky_test_wait_stat(NULL, &f.mock, "faults.hang", 3, 5000), 3);
    json_t *st = sky_test_mock_stats(&f.mock);
    for (int i = 0; i < 100 && json_integer_value(sky_json_path(st, "capacity.busy")) != 0; i++) {
        json_decref(st);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        st = sky_test_mock_stats(&f.mock);
    }
    assert_int_equal(json_integer_value(sky_json_path(st, "capacity.busy")), 0);
    assert_int_equal(json_integer_value(sky_json_path(st, "capacity.queued")), 0);
    json_decref(st);
    close_fixture(&f);
}

/* --overload-rps: past the rate and its burst, 503 with nginx's kind of HTML page, or 529. */
static void test_overload(void **state)
{
    static const char *const args[] = {"--overload-rps", "5", "--overload-burst", "3", NULL};
    static const char *const args529[] = {
        "--overload-rps", "5", "--overload-burst", "0", "--overload-status", "529", NULL};
    fixture f;
    burst b;
    (void)state;
    open_fixture(&f, args);
    send_burst(&f, 20, 1, &b);
    int ok = 0, refused = 0;
    for (int i = 0; i < 20; i++) {
        ok += b.status[i] == 200;
        refused += b.status[i] == 503;
    }
    /* the burst of 4, and perhaps one more as the bucket refills meanwhile */
    assert_true(ok >= 4 && ok <= 6);
    assert_int_equal(ok + refused, 20);
    assert_int_equal(sky_test_mock_stat(&f.mock, "overloaded"), refused);
    sky_test_result r;
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(header(&r, "content-type"), "text/html"));
    sky_test_result_free(&r);
    close_fixture(&f);
    open_fixture(&f, args529);
    expect_status(&f, "POST", "/v1/chat/completions", chat_body, NULL, 200);
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
    assert_int_equal(r.status, 529);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(sky_json_path(j, "error.type")), "overloaded_error");
    json_decref(j);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* --poison: the same body fails every time; other bodies are served. */
static void test_poison(void **state)
{
    static const char *const args[] = {"--poison", "0.25", NULL};
    fixture f;
    burst b;
    (void)state;
    open_fixture(&f, args);
    send_burst(&f, 64, 1, &b);
    int failed[64], n_failed = 0;
    for (int i = 0; i < 64; i++) {
        assert_true(b.status[i] == 200 || b.status[i] == 500);
        if (b.status[i] == 500)
            failed[n_failed++] = i;
    }
    assert_true(n_failed >= 4 && n_failed <= 32); /* a quarter of 64, give or take */
    /* again: exactly the same ones fail */
    send_burst(&f, 64, 1, &b);
    int again = 0;
    for (int i = 0; i < 64; i++)
        again += b.status[i] == 500;
    assert_int_equal(again, n_failed);
    for (int k = 0; k < n_failed; k++)
        assert_int_equal(b.status[failed[k]], 500);
    assert_int_equal(sky_test_mock_stat(&f.mock, "poisoned"), 2 * n_failed);
    close_fixture(&f);
}

/* The default window is one second: RPM/60 requests a second, so a burst of
 * 30 at 600 RPM gets 10 through, or up to 20 if it straddles two windows. */
static void test_rpm_short_window(void **state)
{
    static const char *const args[] = {"--rpm", "600", NULL};
    fixture f;
    counter c = {0, 0, 0};
    sky_http_request_options o;
    char url[256];
    (void)state;
    open_fixture(&f, args);
    snprintf(url, sizeof(url), "%s/v1/chat/completions", f.mock.base_url);
    sky_test_post_options(&o, url, chat_body, on_count, &c);
    /* start the burst early in a one-second window, so a slow run spans two at most */
    wait_for_window_room(1000, 700);
    for (int i = 0; i < 30; i++)
        assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    int never = 0;
    for (int i = 0; i < 400 && c.done < 30; i++)
        sky_test_run_until(f.loop, &never, 25);
    assert_int_equal(c.done, 30);
    assert_true(c.ok >= 10 && c.ok <= 20);
    assert_int_equal(sky_test_mock_stat(&f.mock, "rate_limited"), 30 - c.ok);
    close_fixture(&f);
}

/* Under --rpm 60 the headers tell of the minute (59 left after one request), as the
 * providers' do, while the one-second window still refuses the second request at once. */
static void test_ratelimit_headers_per_minute(void **state)
{
    static const char *const args[] = {"--rpm", "60", "--tpm", "6000", NULL};
    fixture f;
    sky_test_result r;
    (void)state;
    open_fixture(&f, args);
    wait_for_window_room(1000, 700);
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "x-ratelimit-limit-requests"), "60");
    assert_string_equal(header(&r, "x-ratelimit-remaining-requests"), "59");
    assert_string_equal(header(&r, "x-ratelimit-limit-tokens"), "6000");
    assert_string_equal(header(&r, "x-ratelimit-remaining-tokens"), "5989"); /* 11 charged */
    assert_non_null(strchr(header(&r, "x-ratelimit-reset-requests"), 's'));
    sky_test_result_free(&r);
    request(&f, "POST", "/v1/chat/completions", chat_body, NULL, &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(header(&r, "x-ratelimit-remaining-requests"), "59");
    assert_true(atol(header(&r, "retry-after-ms")) <= 1000);
    sky_test_result_free(&r);
    close_fixture(&f);
}

/* --help names every knob the issue lists. */
static void test_help_lists_knobs(void **state)
{
    static const char *const knobs[] = {"--key",
                                        "--config",
                                        "--ttft-ms",
                                        "--per-token-ms",
                                        "--jitter",
                                        "--rpm",
                                        "--tpm",
                                        "--window-ms",
                                        "--hide-ratelimit-headers",
                                        "--fault-500",
                                        "--fault-502",
                                        "--fault-503",
                                        "--fault-reset",
                                        "--fault-hang",
                                        "--fault-cut",
                                        "--fault-malformed",
                                        "--fault-stream-cut",
                                        "--seed",
                                        "--tls-cert",
                                        "--tls-key",
                                        "--threads",
                                        "/mock/stats",
                                        "--port-file",
                                        "--reply-median-tokens",
                                        "openid-configuration",
                                        "instanceView",
                                        "\"auto\"",
                                        "known gaps (docs/mock.md):"};
    char cmd[512], text[32768];
    (void)state;
    snprintf(cmd, sizeof(cmd), "%s mock --help", SKY_TEST_BIN);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(text, 1, sizeof(text) - 1, p);
    text[n] = '\0';
    assert_int_equal(pclose(p), 0);
    for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++)
        if (strstr(text, knobs[i]) == NULL)
            fail_msg("skyio mock --help does not mention %s", knobs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_chat_shape_and_determinism),
        cmocka_unit_test(test_model_name_escaped),
        cmocka_unit_test(test_models_in_turn_and_long_reply),
        cmocka_unit_test(test_embeddings_and_models),
        cmocka_unit_test(test_embeddings_base64),
        cmocka_unit_test(test_arm_links_scheme_and_host),
        cmocka_unit_test(test_entra_discovery),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_sdk_routes),
        cmocka_unit_test(test_chat_follows_request),
        cmocka_unit_test(test_azure_filter_results),
        cmocka_unit_test(test_chat_stream_json),
        cmocka_unit_test(test_stream_shapes_token_by_token),
        cmocka_unit_test(test_tool_choice_auto),
        cmocka_unit_test(test_schema_pattern),
        cmocka_unit_test(test_arm_virtual_machine),
        cmocka_unit_test(test_reply_length_distribution),
        cmocka_unit_test(test_responses_completions_moderations),
        cmocka_unit_test(test_model_list_and_retrieve),
        cmocka_unit_test(test_responses_stream),
        cmocka_unit_test(test_completion_stream),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_rpm_limit_and_headers),
        cmocka_unit_test(test_tpm_limit),
        cmocka_unit_test(test_hidden_headers),
        cmocka_unit_test(test_fault_rates_in_stats),
        cmocka_unit_test(test_config_file_and_flag_precedence),
        cmocka_unit_test(test_bad_config_is_a_clear_error),
        cmocka_unit_test(test_sigterm_drains),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_latency_model),
        cmocka_unit_test(test_capacity_queues),
        cmocka_unit_test(test_capacity_hang_frees_slot),
        cmocka_unit_test(test_overload),
        cmocka_unit_test(test_poison),
        cmocka_unit_test(test_rpm_short_window),
        cmocka_unit_test(test_ratelimit_headers_per_minute),
        cmocka_unit_test(test_help_lists_knobs),
        cmocka_unit_test(test_sigterm_with_idle_and_hung_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
