/* Endpoints: configuration from the environment, URLs, keys, stream chunks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "skyio/ai.h"

static void clear_env(void)
{
    unsetenv("AZURE_OPENAI_ENDPOINT");
    unsetenv("AZURE_OPENAI_API_KEY");
    unsetenv("OPENAI_API_KEY");
    unsetenv("OPENAI_BASE_URL");
    unsetenv("OPENAI_API_VERSION");
    unsetenv("OPENAI_ORG_ID");
    unsetenv("OPENAI_PROJECT_ID");
    unsetenv("AZURE_OPENAI_AD_TOKEN");
}

static void expect_url(const sky_ai_endpoint *ep, const char *path, const char *model,
                       const char *want)
{
    sky_buf b;
    sky_buf_init(&b, 4096);
    assert_int_equal(sky_ai_url(ep, path, model, &b), 0);
    assert_string_equal(b.data, want);
    sky_buf_free(&b);
}

static void test_openai_urls(void **state)
{
    sky_ai_endpoint ep;
    (void)state;
    assert_int_equal(
        sky_ai_endpoint_set(&ep, SKY_AI_OPENAI, "https://api.openai.com/v1/", "k", NULL), 0);
    expect_url(&ep, "/v1/chat/completions", "gpt-4o", "https://api.openai.com/v1/chat/completions");
    expect_url(&ep, "/v1/embeddings", NULL, "https://api.openai.com/v1/embeddings");
    sky_ai_endpoint_free(&ep);
    /* a bare server address keeps the path whole */
    assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_OPENAI, "http://127.0.0.1:8000", NULL, NULL),
                     0);
    expect_url(&ep, "/v1/chat/completions", NULL, "http://127.0.0.1:8000/v1/chat/completions");
    sky_ai_endpoint_free(&ep);
    /* any other base is the API root, as OpenAI's SDKs read it */
    static const char *const roots[][2] = {
        {"https://generativelanguage.googleapis.com/v1beta/openai/",
         "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"},
        {"https://res.services.ai.azure.com/models",
         "https://res.services.ai.azure.com/models/chat/completions"},
        {"https://res.openai.azure.com/openai/v1",
         "https://res.openai.azure.com/openai/v1/chat/completions"},
        {"http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1/chat/completions"},
        {"localhost:8000/v1", "localhost:8000/v1/chat/completions"},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(roots); i++) {
        assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_OPENAI, roots[i][0], NULL, NULL), 0);
        expect_url(&ep, "/v1/chat/completions", NULL, roots[i][1]);
        sky_ai_endpoint_free(&ep);
    }
}

static void test_azure_urls(void **state)
{
    sky_ai_endpoint ep;
    sky_buf b;
    (void)state;
    assert_int_equal(
        sky_ai_endpoint_set(&ep, SKY_AI_AZURE, "https://res.openai.azure.com", "k", NULL), 0);
    expect_url(&ep, "/v1/chat/completions", "gpt4o-prod",
               "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
               "?api-version=2024-10-21");
    expect_url(&ep, "/v1/embeddings", "emb 1",
               "https://res.openai.azure.com/openai/deployments/emb%201/embeddings"
               "?api-version=2024-10-21");
    /* Responses on Azure's v1 surface, the deployment in the body; no moderations there */
    expect_url(&ep, "/v1/responses", "gpt4o-prod",
               "https://res.openai.azure.com/openai/v1/responses");
    sky_buf_init(&b, 4096);
    assert_int_equal(sky_ai_url(&ep, "/v1/moderations", "m", &b), SKY_ENOTFOUND);
    assert_int_equal(sky_ai_url(&ep, "/v1/chat/completions", NULL, &b), SKY_EINVAL);
    assert_int_equal(sky_ai_url(&ep, "chat", "m", &b), SKY_EINVAL);
    sky_buf_free(&b);
    sky_ai_endpoint_free(&ep);
}

static void test_from_env(void **state)
{
    sky_ai_endpoint ep;
    sky_error err;
    (void)state;
    clear_env();
    sky_error_clear(&err);
    /* no key for the real OpenAI: a clear error that names the variable */
    assert_int_equal(sky_ai_endpoint_from_env(&ep, 0, &err), SKY_EAUTH);
    assert_non_null(strstr(err.message, "OPENAI_API_KEY"));
    /* a loopback server needs no key */
    setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1", 1);
    assert_int_equal(sky_ai_endpoint_from_env(&ep, 0, NULL), 0);
    assert_int_equal(ep.kind, SKY_AI_OPENAI);
    assert_null(ep.api_key);
    sky_ai_endpoint_free(&ep);
    /* Azure when its endpoint is set and OpenAI's key is not */
    setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/", 1);
    setenv("AZURE_OPENAI_API_KEY", "az-secret", 1);
    setenv("OPENAI_API_VERSION", "2025-01-01-preview", 1);
    assert_int_equal(sky_ai_endpoint_from_env(&ep, 0, NULL), 0);
    assert_int_equal(ep.kind, SKY_AI_AZURE);
    assert_string_equal(ep.base_url, "https://res.openai.azure.com");
    assert_string_equal(ep.api_version, "2025-01-01-preview");
    sky_ai_endpoint_free(&ep);
    /* both set: OpenAI unless Azure is preferred */
    setenv("OPENAI_API_KEY", "sk-secret", 1);
    assert_int_equal(sky_ai_endpoint_from_env(&ep, 0, NULL), 0);
    assert_int_equal(ep.kind, SKY_AI_OPENAI);
    sky_ai_endpoint_free(&ep);
    assert_int_equal(sky_ai_endpoint_from_env(&ep, 1, NULL), 0);
    assert_int_equal(ep.kind, SKY_AI_AZURE);
    sky_ai_endpoint_free(&ep);
    /* Azure without its key, off loopback */
    unsetenv("AZURE_OPENAI_API_KEY");
    sky_error_clear(&err);
    assert_int_equal(sky_ai_endpoint_from_env(&ep, 1, &err), SKY_EAUTH);
    assert_null(strstr(err.message, "sk-secret"));
    /* ... but with a ready token (AZURE_OPENAI_AD_TOKEN), sent as a bearer */
    setenv("AZURE_OPENAI_AD_TOKEN", "eyJ-token", 1);
    sky_headers *h = sky_headers_new();
    assert_int_equal(sky_ai_endpoint_from_env(&ep, 1, NULL), 0);
    assert_int_equal(ep.use_entra_id, 0);
    assert_int_equal(sky_ai_auth_headers(&ep, h), 0);
    assert_string_equal(sky_headers_get(h, "authorization"), "Bearer eyJ-token");
    assert_null(sky_headers_get(h, "api-key"));
    sky_ai_endpoint_free(&ep);
    /* OpenAI's organization and project, as the SDK sends them */
    sky_headers_clear(h);
    setenv("OPENAI_ORG_ID", "org-1", 1);
    setenv("OPENAI_PROJECT_ID", "proj_2", 1);
    assert_int_equal(sky_ai_endpoint_from_env(&ep, 0, NULL), 0);
    assert_int_equal(sky_ai_auth_headers(&ep, h), 0);
    assert_string_equal(sky_headers_get(h, "openai-organization"), "org-1");
    assert_string_equal(sky_headers_get(h, "openai-project"), "proj_2");
    assert_string_equal(sky_headers_get(h, "authorization"), "Bearer sk-secret");
    sky_ai_endpoint_free(&ep);
    /* the same for an endpoint set explicitly (--base-url) */
    sky_headers_clear(h);
    assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_OPENAI, "http://127.0.0.1:9/v1", NULL, NULL),
                     0);
    assert_int_equal(sky_ai_endpoint_read_org_env(&ep), 0);
    assert_int_equal(sky_ai_auth_headers(&ep, h), 0);
    assert_string_equal(sky_headers_get(h, "openai-project"), "proj_2");
    sky_ai_endpoint_free(&ep);
    sky_headers_free(h);
    clear_env();
}

/* The Entra ID scope follows the endpoint's cloud. */
static void test_entra_scope(void **state)
{
    static const char *const cases[][2] = {
        {"https://res.openai.azure.com", "https://cognitiveservices.azure.com/.default"},
        {"https://res.openai.azure.us", "https://cognitiveservices.azure.us/.default"},
        {"https://res.openai.azure.us:443/", "https://cognitiveservices.azure.us/.default"},
        {"https://res.openai.azure.cn", "https://cognitiveservices.azure.cn/.default"},
        {"http://127.0.0.1:8080", "https://cognitiveservices.azure.com/.default"},
    };
    sky_ai_endpoint ep;
    (void)state;
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++) {
        assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_AZURE, cases[i][0], NULL, NULL), 0);
        assert_string_equal(sky_ai_entra_scope(&ep), cases[i][1]);
        sky_ai_endpoint_free(&ep);
    }
}

static void test_auth_headers(void **state)
{
    sky_ai_endpoint ep;
    sky_headers *h = sky_headers_new();
    (void)state;
    assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_OPENAI, "https://x/v1", "sk-1", NULL), 0);
    assert_int_equal(sky_ai_pipeline_auth(&ep, h, 0), 0);
    assert_string_equal(sky_headers_get(h, "authorization"), "Bearer sk-1");
    sky_ai_endpoint_free(&ep);
    sky_headers_clear(h);
    assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_AZURE, "https://x", "az-1", NULL), 0);
    assert_int_equal(sky_ai_auth_headers(&ep, h), 0);
    assert_string_equal(sky_headers_get(h, "api-key"), "az-1");
    assert_null(sky_headers_get(h, "authorization"));
    sky_ai_endpoint_free(&ep);
    sky_headers_free(h);
}

typedef struct seen {
    char text[256];
    char finish[16];
    char error[64];
    int64_t prompt, completion;
    int calls;
} seen;

static int collect(void *ud, const sky_ai_delta *d)
{
    seen *s = ud;
    s->calls++;
    if (d->content)
        strncat(s->text, d->content, sizeof(s->text) - strlen(s->text) - 1);
    if (d->finish_reason)
        strncpy(s->finish, d->finish_reason, sizeof(s->finish) - 1);
    if (d->prompt_tokens >= 0)
        s->prompt = d->prompt_tokens;
    if (d->completion_tokens >= 0)
        s->completion = d->completion_tokens;
    snprintf(s->error, sizeof(s->error), "%s", d->error ? d->error : "");
    return 0;
}

static void test_parse_chunks(void **state)
{
    static const char *const chunks[] = {
        ("{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
         "\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}"),
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}",
    };
    seen s;
    (void)state;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++)
        assert_int_equal(sky_ai_parse_chunk(sky_span_cstr(chunks[i]), collect, &s), 0);
    assert_string_equal(s.text, "Hello");
    assert_string_equal(s.finish, "stop");
    assert_int_equal(s.prompt, 7);
    assert_int_equal(s.completion, 2);
    assert_int_equal(sky_ai_parse_chunk(SKY_SPAN_LIT("{not json"), collect, &s), SKY_EJSON);
    assert_int_equal(sky_ai_parse_chunk(SKY_SPAN_LIT("[1]"), collect, &s), SKY_EJSON);
    assert_int_equal(s.calls, 5);
    assert_string_equal(s.error, "");
    /* an error chunk, as a provider sends when a stream fails after it began */
    assert_int_equal(sky_ai_parse_chunk(SKY_SPAN_LIT("{\"error\":{\"message\":\"overloaded\","
                                                     "\"type\":\"server_error\"}}"),
                                        collect, &s),
                     0);
    assert_string_equal(s.error, "overloaded");
    assert_int_equal(
        sky_ai_parse_chunk(SKY_SPAN_LIT("{\"error\":{\"code\":\"rate_limit\"}}"), collect, &s), 0);
    assert_string_equal(s.error, "rate_limit");
    assert_int_equal(sky_ai_parse_chunk(SKY_SPAN_LIT("{\"error\":\"upstream gone\"}"), collect, &s),
                     0);
    assert_string_equal(s.error, "upstream gone");
    assert_int_equal(
        sky_ai_parse_chunk(SKY_SPAN_LIT("{\"error\":null,\"choices\":[]}"), collect, &s), 0);
    assert_string_equal(s.error, "");
}

/* OpenAI's reply rules, as the pipeline's classifier applies them. */
static int describe(int status, const char *body, sky_error *e)
{
    sky_reply r = {status, NULL, sky_span_cstr(body), NULL};
    sky_error_clear(e);
    return sky_ai_classifier()->describe_error(NULL, &r, e);
}

static void test_classifier(void **state)
{
    sky_error e;
    json_t *reply = json_pack("{s:{s:i}}", "usage", "total_tokens", 42);
    sky_reply ok = {200, NULL, SKY_SPAN_LIT(""), reply};
    (void)state;
    assert_int_equal(sky_ai_classifier()->reply_tokens(NULL, &ok), 42);
    ok.json = NULL;
    assert_int_equal(sky_ai_classifier()->reply_tokens(NULL, &ok), -1);
    json_decref(reply);
    /* the provider's words; out of credit is final, as code or as type */
    assert_int_equal(describe(429,
                              "{\"error\":{\"message\":\"no credit\","
                              "\"type\":\"insufficient_quota\",\"code\":null}}",
                              &e),
                     1);
    assert_string_equal(e.message, "HTTP 429: no credit");
    assert_string_equal(e.service_code, "insufficient_quota");
    assert_int_equal(describe(429, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}", &e), 0);
    assert_string_equal(e.service_code, "rate_limit_exceeded");
    assert_int_equal(describe(403, "{\"error\":{\"code\":\"insufficient_quota\"}}", &e), 0);
    /* not JSON: nothing said, the pipeline's "HTTP n" stands */
    assert_int_equal(describe(502, "<html>bad gateway</html>", &e), 0);
    assert_int_equal(e.code, 0);
    assert_true(
        sky_ai_quota_exhausted(429, SKY_SPAN_LIT("{\"error\":{\"code\":\"insufficient_quota\"}}")));
    assert_true(
        sky_pipeline_quota_exhausted(/* the old name */
                                     429, SKY_SPAN_LIT(
                                              "{\"error\":{\"type\":\"insufficient_quota\"}}")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_urls),  cmocka_unit_test(test_azure_urls),
        cmocka_unit_test(test_from_env),     cmocka_unit_test(test_auth_headers),
        cmocka_unit_test(test_parse_chunks), cmocka_unit_test(test_entra_scope),
        cmocka_unit_test(test_classifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
