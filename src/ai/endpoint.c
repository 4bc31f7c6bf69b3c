/* OpenAI and Azure OpenAI endpoints: configuration, URLs, keys, stream chunks. */
#include <curl/curl.h>
#include <stdlib.h>
#include <strings.h>

#include "skyio/ai.h"
#include "skyio/json.h"

static char *dup_opt(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A secret: do not leave it in freed memory. */
static void free_secret(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

void sky_ai_endpoint_free(sky_ai_endpoint *ep)
{
    if (ep == NULL)
        return;
    free(ep->base_url);
    free_secret(ep->api_key);
    free_secret(ep->ad_token);
    free(ep->api_version);
    free(ep->organization);
    free(ep->project);
    memset(ep, 0, sizeof(*ep));
}

int sky_ai_endpoint_set(sky_ai_endpoint *ep, sky_ai_kind kind, const char *base_url,
                        const char *api_key, const char *api_version)
{
    memset(ep, 0, sizeof(*ep));
    if (base_url == NULL || base_url[0] == '\0')
        return SKY_EINVAL;
    ep->kind = kind;
    ep->base_url = strdup(base_url);
    ep->api_key = dup_opt(api_key && api_key[0] ? api_key : NULL);
    ep->api_version =
        dup_opt(kind == SKY_AI_AZURE
                    ? (api_version && api_version[0] ? api_version : SKY_AI_DEFAULT_API_VERSION)
                    : NULL);
    if (ep->base_url == NULL || (api_key && api_key[0] && ep->api_key == NULL) ||
        (kind == SKY_AI_AZURE && ep->api_version == NULL)) {
        sky_ai_endpoint_free(ep);
        return SKY_ENOMEM;
    }
    /* "https://host/v1/" and "https://host/v1" mean the same */
    size_t n = strlen(ep->base_url);
    while (n > 0 && ep->base_url[n - 1] == '/')
        ep->base_url[--n] = '\0';
    return 0;
}

/* A local server (the mock, a self-hosted model) often takes no key. */
static int is_loopback_url(const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    return strncmp(host, "127.", 4) == 0 || strncmp(host, "localhost", 9) == 0 ||
           strncmp(host, "[::1]", 5) == 0;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* What the SDKs read beside the key: @p name's value copied into @p slot when set. */
static int env_extra(const char *name, char **slot)
{
    const char *v = env(name);
    if (v && (*slot = strdup(v)) == NULL)
        return SKY_ENOMEM;
    return 0;
}

int sky_ai_endpoint_read_org_env(sky_ai_endpoint *ep)
{
    int rc = env_extra("OPENAI_ORG_ID", &ep->organization);
    return rc ? rc : env_extra("OPENAI_PROJECT_ID", &ep->project);
}

static int from_env(sky_ai_endpoint *ep, int prefer_azure, int allow_entra, sky_error *err)
{
    const char *azure = env("AZURE_OPENAI_ENDPOINT");
    const char *openai_key = env("OPENAI_API_KEY");
    int rc;
    if (azure && (prefer_azure || openai_key == NULL)) {
        const char *key = env("AZURE_OPENAI_API_KEY");
        const char *token = key ? NULL : env("AZURE_OPENAI_AD_TOKEN");
        if (key == NULL && token == NULL && !allow_entra && !is_loopback_url(azure))
            return sky_error_set(err, SKY_EAUTH,
                                 "AZURE_OPENAI_ENDPOINT is set but neither AZURE_OPENAI_API_KEY "
                                 "nor AZURE_OPENAI_AD_TOKEN is");
        rc = sky_ai_endpoint_set(ep, SKY_AI_AZURE, azure, key, env("OPENAI_API_VERSION"));
        if (rc == 0 && token && (ep->ad_token = strdup(token)) == NULL)
            rc = SKY_ENOMEM;
        if (rc == 0)
            ep->use_entra_id =
                key == NULL && token == NULL && allow_entra && !is_loopback_url(azure);
    } else {
        const char *base = env("OPENAI_BASE_URL");
        base = base ? base : SKY_AI_DEFAULT_BASE_URL;
        if (openai_key == NULL && !is_loopback_url(base))
            return sky_error_set(err, SKY_EAUTH,
                                 "set OPENAI_API_KEY (or AZURE_OPENAI_ENDPOINT and "
                                 "AZURE_OPENAI_API_KEY) to call %s",
                                 base);
        rc = sky_ai_endpoint_set(ep, SKY_AI_OPENAI, base, openai_key, NULL);
        if (rc == 0)
            rc = sky_ai_endpoint_read_org_env(ep);
    }
    if (rc < 0) {
        sky_ai_endpoint_free(ep);
        return sky_error_set(err, rc, "endpoint configuration: %s", sky_strerror(rc));
    }
    return 0;
}

int sky_ai_endpoint_from_env(sky_ai_endpoint *ep, int prefer_azure, sky_error *err)
{
    return from_env(ep, prefer_azure, 0, err);
}

int sky_ai_endpoint_from_env_entra(sky_ai_endpoint *ep, int prefer_azure, sky_error *err)
{
    return from_env(ep, prefer_azure, 1, err);
}

int sky_ai_endpoint_resolve(sky_ai_endpoint *ep, const char *base_url, int prefer_azure,
                            sky_error *err)
{
    int rc = base_url
                 ? sky_ai_endpoint_set(ep, SKY_AI_OPENAI, base_url, getenv("OPENAI_API_KEY"), NULL)
                 : sky_ai_endpoint_from_env_entra(ep, prefer_azure, err);
    if (rc == 0 && base_url)
        rc = sky_ai_endpoint_read_org_env(ep);
    if (rc < 0 && err && err->code == 0)
        sky_error_set(err, rc, "%s", sky_strerror(rc));
    return rc;
}

/* ---- URLs ---- */

/* Whether @p url names a path after its host ("http://h:8000/v1" does, "http://h:8000" not). */
static int has_path(const char *url)
{
    const char *host = strstr(url, "://");
    return strchr(host ? host + 3 : url, '/') != NULL;
}

/*
 * As OpenAI's SDKs read OPENAI_BASE_URL: the base is the API root, and "/v1/chat/completions"
 * goes there as "/chat/completions" (https://api.openai.com/v1, Gemini's .../v1beta/openai).
 * A bare server address keeps the /v1 (http://127.0.0.1:8000 -> .../v1/chat/completions),
 * where the SDKs would send /chat/completions to a server that answers 404.
 */
static int openai_url(const sky_ai_endpoint *ep, const char *path, sky_buf *out)
{
    if (has_path(ep->base_url) && strncmp(path, "/v1/", 4) == 0)
        path += 3;
    int rc = sky_buf_append_str(out, ep->base_url);
    return rc ? rc : sky_buf_append_str(out, path);
}

static int azure_url(const sky_ai_endpoint *ep, const char *path, const char *model, sky_buf *out)
{
    if (strncmp(path, "/v1/", 4) == 0)
        path += 3;
    /* Responses lives only on Azure's v1 surface, the deployment in the body's model */
    if (strcmp(path, "/responses") == 0)
        return sky_buf_printf(out, "%s/openai/v1/responses", ep->base_url);
    if (strcmp(path, "/moderations") == 0)
        return SKY_ENOTFOUND; /* Azure OpenAI has none */
    if (model == NULL || model[0] == '\0')
        return SKY_EINVAL;
    /* the deployment is a path segment: escape what a name should not hold */
    char *dep = curl_easy_escape(NULL, model, 0);
    if (dep == NULL)
        return SKY_ENOMEM;
    int rc = sky_buf_printf(out, "%s/openai/deployments/%s%s?api-version=%s", ep->base_url, dep,
                            path, ep->api_version);
    curl_free(dep);
    return rc;
}

int sky_ai_url(const sky_ai_endpoint *ep, const char *path, const char *model, sky_buf *out)
{
    if (ep == NULL || path == NULL || path[0] != '/')
        return SKY_EINVAL;
    return ep->kind == SKY_AI_AZURE ? azure_url(ep, path, model, out) : openai_url(ep, path, out);
}

/* ---- keys ---- */

static int add_bearer(sky_headers *h, const char *secret)
{
    sky_buf v;
    sky_buf_init(&v, 16384);
    int rc = sky_buf_printf(&v, "Bearer %s", secret);
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_buf_span(&v));
    if (v.data)
        memset(v.data, 0, v.len);
    sky_buf_free(&v);
    return rc;
}

int sky_ai_auth_headers(const sky_ai_endpoint *ep, sky_headers *h)
{
    int rc = 0;
    if (ep->organization)
        rc = sky_headers_add(h, SKY_SPAN_LIT("OpenAI-Organization"),
                             sky_span_cstr(ep->organization));
    if (rc == 0 && ep->project)
        rc = sky_headers_add(h, SKY_SPAN_LIT("OpenAI-Project"), sky_span_cstr(ep->project));
    if (rc < 0)
        return rc;
    if (ep->kind == SKY_AI_AZURE && ep->api_key)
        return sky_headers_add(h, SKY_SPAN_LIT("api-key"), sky_span_cstr(ep->api_key));
    if (ep->kind == SKY_AI_AZURE && ep->ad_token)
        return add_bearer(h, ep->ad_token);
    return ep->api_key ? add_bearer(h, ep->api_key) : 0;
}

const char *sky_ai_entra_scope(const sky_ai_endpoint *ep)
{
    const char *host = ep && ep->base_url ? strstr(ep->base_url, "://") : NULL;
    size_t n = host ? strcspn(host + 3, "/:") : 0;
    if (n >= 9 && strncasecmp(host + 3 + n - 9, ".azure.us", 9) == 0)
        return "https://cognitiveservices.azure.us/.default";
    if (n >= 9 && strncasecmp(host + 3 + n - 9, ".azure.cn", 9) == 0)
        return "https://cognitiveservices.azure.cn/.default";
    return SKY_AI_ENTRA_SCOPE;
}

int sky_ai_pipeline_auth(void *user_data, sky_headers *h, int refresh)
{
    /* a key does not refresh: a 401 after it is final */
    (void)refresh;
    return sky_ai_auth_headers(user_data, h);
}

/* ---- stream chunks ---- */

int sky_ai_parse_chunk(sky_span data, int (*cb)(void *ud, const sky_ai_delta *d), void *ud)
{
    json_t *j = NULL;
    if (sky_json_parse(data, &j, NULL) < 0 || !json_is_object(j)) {
        json_decref(j);
        return SKY_EJSON;
    }
    sky_ai_delta d;
    d.content = json_string_value(sky_json_path(j, "choices.0.delta.content"));
    d.finish_reason = json_string_value(sky_json_path(j, "choices.0.finish_reason"));
    json_t *pt = sky_json_path(j, "usage.prompt_tokens");
    json_t *ct = sky_json_path(j, "usage.completion_tokens");
    d.prompt_tokens = json_is_integer(pt) ? (int64_t)json_integer_value(pt) : -1;
    d.completion_tokens = json_is_integer(ct) ? (int64_t)json_integer_value(ct) : -1;
    json_t *e = json_object_get(j, "error");
    d.error =
        json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    if (d.error == NULL)
        d.error = json_string_value(json_object_get(e, "code"));
    if (d.error == NULL && e != NULL && !json_is_null(e))
        d.error = "an error without a message";
    int rc = cb(ud, &d);
    json_decref(j);
    return rc;
}
