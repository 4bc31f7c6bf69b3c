/*
 * libFuzzer target for the AI endpoint: base URLs, keys and versions as a user
 * or the environment gives them, and the URL made for each request path and
 * model. The input is fields separated by '\n':
 *
 *   kind ("azure" or anything else: OpenAI), base URL, key, api-version,
 *   request path ("/v1/chat/completions"), model
 *
 * and as a whole, one `data:` payload of a chat stream.
 *
 * Invariants: an endpoint keeps its base without a trailing '/'; a URL starts
 * with that base; OpenAI's is base + path (less a "/v1" the base already has);
 * Azure's names the deployment as one escaped path segment that decodes to the
 * model and ends with the api-version, or is the v1 Responses URL, or is
 * refused as the header says; the key goes only into its header; the same
 * settings from the environment fail with SKY_EAUTH or give the same URL, and
 * an error message never quotes the key.
 */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "skyio/ai.h"

enum { FZ_KIND, FZ_BASE, FZ_KEY, FZ_VERSION, FZ_PATH, FZ_MODEL, FZ_FIELDS };

static const char *const fz_env_names[] = {
    "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "OPENAI_API_KEY",
    "OPENAI_BASE_URL",       "OPENAI_API_VERSION",   "OPENAI_ORG_ID",         "OPENAI_PROJECT_ID"};

static int fz_starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Azure: {base}/openai/deployments/{escaped model}{path}?api-version={v}. */
static void fz_check_azure(const sky_ai_endpoint *ep, const char *url, const char *path,
                           const char *model)
{
    const char *rest = url + strlen(ep->base_url);
    const char *op = fz_starts(path, "/v1/") ? path + 3 : path;
    if (strcmp(op, "/responses") == 0) {
        FZ_CHECK(strcmp(rest, "/openai/v1/responses") == 0);
        return;
    }
    FZ_CHECK(fz_starts(rest, "/openai/deployments/"));
    const char *dep = rest + strlen("/openai/deployments/");
    size_t dep_len = strcspn(dep, "/?#");
    FZ_CHECK(strncmp(dep + dep_len, op, strlen(op)) == 0);
    FZ_CHECK(fz_starts(dep + dep_len + strlen(op), "?api-version="));
    FZ_CHECK(strcmp(dep + dep_len + strlen(op) + strlen("?api-version="), ep->api_version) == 0);
    int n = 0;
    char *back = curl_easy_unescape(NULL, dep, (int)dep_len, &n);
    FZ_CHECK(back == NULL || ((size_t)n == strlen(model) && memcmp(back, model, (size_t)n) == 0));
    curl_free(back);
}

/* The URL for @p path and @p model, checked; 0 with *out_url (free it), or the error. */
static int fz_url(const sky_ai_endpoint *ep, const char *path, const char *model, char **out_url)
{
    sky_buf out;
    sky_buf_init(&out, 1 << 20);
    int rc = sky_ai_url(ep, path, model, &out);
    *out_url = NULL;
    if (path == NULL || path[0] != '/') {
        FZ_CHECK(rc == SKY_EINVAL);
    } else if (rc == 0) {
        FZ_CHECK(out.data != NULL && fz_starts(out.data, ep->base_url));
        if (ep->kind == SKY_AI_AZURE) {
            fz_check_azure(ep, out.data, path, model);
        } else {
            const char *rest = out.data + strlen(ep->base_url);
            FZ_CHECK(strcmp(rest, path) == 0 ||
                     (fz_starts(path, "/v1/") && strcmp(rest, path + 3) == 0));
        }
        *out_url = sky_buf_detach(&out, NULL);
    } else if (ep->kind == SKY_AI_AZURE) {
        const char *op = fz_starts(path, "/v1/") ? path + 3 : path;
        if (strcmp(op, "/moderations") == 0)
            FZ_CHECK(rc == SKY_ENOTFOUND);
        else
            FZ_CHECK(rc == SKY_ENOMEM || rc == SKY_ETOOBIG ||
                     (rc == SKY_EINVAL && (model == NULL || model[0] == '\0')));
    } else {
        FZ_CHECK(rc == SKY_ENOMEM || rc == SKY_ETOOBIG);
    }
    sky_buf_free(&out);
    return rc;
}

/* The key goes into exactly its header, and the scope is one of the three clouds'. */
static void fz_check_auth(const sky_ai_endpoint *ep)
{
    const char *scope = sky_ai_entra_scope(ep);
    FZ_CHECK(fz_starts(scope, "https://cognitiveservices.azure.") && strstr(scope, "/.default"));
    sky_headers *h = sky_headers_new();
    if (h == NULL)
        return;
    int rc = sky_ai_auth_headers(ep, h);
    FZ_CHECK(rc == 0 || rc == SKY_EINVAL || rc == SKY_ENOMEM);
    if (rc == 0 && ep->api_key) {
        const char *v = sky_headers_get(h, ep->kind == SKY_AI_AZURE ? "api-key" : "Authorization");
        FZ_CHECK(v != NULL);
        /* (a key of blanks only is trimmed away with the space after "Bearer") */
        FZ_CHECK(ep->kind == SKY_AI_AZURE || fz_starts(v, "Bearer"));
    }
    if (rc == 0 && ep->api_key == NULL)
        FZ_CHECK(sky_headers_count(h) == 0);
    sky_headers_free(h);
}

static void fz_set_env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

/* The same settings through the environment the SDKs read. */
static void fz_from_env(int azure, const char *f[FZ_FIELDS], const char *url)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(fz_env_names); i++)
        unsetenv(fz_env_names[i]);
    fz_set_env(azure ? "AZURE_OPENAI_ENDPOINT" : "OPENAI_BASE_URL", f[FZ_BASE]);
    fz_set_env(azure ? "AZURE_OPENAI_API_KEY" : "OPENAI_API_KEY", f[FZ_KEY]);
    fz_set_env("OPENAI_API_VERSION", f[FZ_VERSION]);
    sky_ai_endpoint ep;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky_ai_endpoint_from_env(&ep, azure, &err);
    if (rc == 0) {
        FZ_CHECK(ep.base_url != NULL);
        FZ_CHECK((ep.kind == SKY_AI_AZURE) == (azure && f[FZ_BASE] && f[FZ_BASE][0]));
        char *again = NULL;
        int urc = fz_url(&ep, f[FZ_PATH], f[FZ_MODEL], &again);
        /* the same base, key and version as set by hand: the same URL */
        FZ_CHECK(url == NULL || ep.kind != (azure ? SKY_AI_AZURE : SKY_AI_OPENAI) ||
                 (urc == 0 && strcmp(url, again) == 0));
        free(again);
        sky_ai_endpoint_free(&ep);
    } else {
        FZ_CHECK(rc == SKY_EAUTH || rc == SKY_ENOMEM || rc == SKY_EINVAL);
        /* a key shaped like one ("sk-..."), so the message's own words cannot match it */
        const char *key = f[FZ_KEY];
        FZ_CHECK(key == NULL || strncmp(key, "sk-", 3) != 0 || strlen(key) < 12 ||
                 strstr(err.message, key) == NULL || (f[FZ_BASE] && strstr(f[FZ_BASE], key)));
    }
    for (size_t i = 0; i < SKY_ARRAY_LEN(fz_env_names); i++)
        unsetenv(fz_env_names[i]);
}

/* Every string of a delta is readable to its end while the callback runs. */
static int fz_on_delta(void *ud, const sky_ai_delta *d)
{
    size_t *total = ud;
    *total += d->content ? strlen(d->content) : 0;
    *total += d->finish_reason ? strlen(d->finish_reason) : 0;
    *total += d->error ? strlen(d->error) : 0;
    return 7;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t total = 0;
    int rc = sky_ai_parse_chunk(sky_span_make((const char *)data, size), fz_on_delta, &total);
    FZ_CHECK(rc == 7 || rc == SKY_EJSON);
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *f[FZ_FIELDS];
    fz_split_fields(copy, size, f, FZ_FIELDS);
    int azure = f[FZ_KIND] && strcmp(f[FZ_KIND], "azure") == 0;
    sky_ai_endpoint ep;
    rc = sky_ai_endpoint_set(&ep, azure ? SKY_AI_AZURE : SKY_AI_OPENAI, f[FZ_BASE], f[FZ_KEY],
                             f[FZ_VERSION]);
    char *url = NULL;
    if (f[FZ_BASE] == NULL || f[FZ_BASE][0] == '\0') {
        FZ_CHECK(rc == SKY_EINVAL);
    } else if (rc == 0) {
        size_t n = strlen(ep.base_url);
        FZ_CHECK(n == 0 || ep.base_url[n - 1] != '/');
        FZ_CHECK(strncmp(ep.base_url, f[FZ_BASE], n) == 0);
        FZ_CHECK((ep.api_version != NULL) == azure);
        (void)fz_url(&ep, f[FZ_PATH], f[FZ_MODEL], &url);
        fz_check_auth(&ep);
        sky_ai_endpoint_free(&ep);
    } else {
        FZ_CHECK(rc == SKY_ENOMEM);
    }
    fz_from_env(azure, f, url);
    free(url);
    free(copy);
    return 0;
}
