/* The Key Vault client: options, its pipeline, Key Vault's errors, names, the challenge. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

void sky_keyvault_client_options_init(sky_keyvault_client_options *o)
{
    memset(o, 0, sizeof(*o));
    o->verify_challenge_resource = 1;
    sky_retry_options_init(&o->retry);
    o->attempt_timeout_ms = 300000;
    sky_keyvault_pipeline_options_init(&o->pipeline);
}

/* ---- Key Vault's errors: {"error": {"code", "message", "innererror"}} ---- */

static int describe_error(void *ud, const sky_reply *r, sky_error *e)
{
    (void)ud;
    json_t *root = r->body.len ? json_loadb(r->body.ptr, r->body.len, 0, NULL) : NULL;
    json_t *error = json_object_get(root, "error");
    const char *code = json_string_value(json_object_get(error, "code"));
    const char *msg = json_string_value(json_object_get(error, "message"));
    sky_error_set(e, SKY_EHTTP, "HTTP %d: %.200s", r->status,
                  msg    ? msg
                  : code ? code
                         : "no error message");
    if (code)
        sky_error_set_service(e, code);
    json_decref(root);
    return 0;
}

static const sky_reply_classifier keyvault_rules = {NULL, describe_error, NULL};

const sky_reply_classifier *sky_keyvault_classifier(void)
{
    return &keyvault_rules;
}

void sky_keyvault_pipeline_options_init(sky_pipeline_options *o)
{
    sky_pipeline_options_init(o);
    o->classifier = sky_keyvault_classifier();
    o->use_concurrency = 0;
    o->rate.unpaced_start = 1; /* Key Vault says its limit with 429s only */
}

/* ---- names ---- */

int sky_keyvault_name_check(const char *name, sky_error *err)
{
    static const char rule[] = "1 to 127 characters, ASCII letters, digits and hyphens";
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > 127)
        return sky_error_set(err, SKY_EINVAL, "secret name of %zu characters: it must be %s", n,
                             rule);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!isalnum(ch) && ch != '-')
            return sky_error_set(err, SKY_EINVAL,
                                 "secret name '%.127s': character %zu breaks the rule: %s", name,
                                 i + 1, rule);
    }
    return 0;
}

/* ---- the challenge ---- */

/* The value of parameter @p key in a Bearer challenge (quoted or not), into @p out. */
static int challenge_param(const char *h, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    for (const char *p = h; *p; p++) {
        if (strncasecmp(p, key, kl) != 0)
            continue;
        int starts = p == h || p[-1] == ' ' || p[-1] == ',';
        const char *v = p + kl;
        while (*v == ' ')
            v++;
        if (!starts || *v != '=')
            continue;
        v++;
        while (*v == ' ')
            v++;
        int quoted = *v == '"';
        v += quoted;
        size_t n = quoted ? strcspn(v, "\"") : strcspn(v, ", ");
        if (n == 0 || n >= len)
            return -1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

/* The host of an https URL (without port), into @p out. */
static int url_host(const char *url, char *out, size_t len)
{
    if (strncmp(url, "https://", 8) != 0)
        return -1;
    const char *h = url + 8;
    size_t n = strcspn(h, ":/?");
    if (n == 0 || n >= len)
        return -1;
    memcpy(out, h, n);
    out[n] = '\0';
    return 0;
}

static int is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "[::1]") == 0;
}

/* The vault's host ends with ".<the resource's host>" (x.vault.azure.net, vault.azure.net). */
static int resource_fits(const sky_keyvault_client *c, const char *resource)
{
    char vault_host[256], res_host[256];
    if (url_host(c->vault_url, vault_host, sizeof(vault_host)) != 0)
        return 0;
    if (is_loopback(vault_host) || !c->o.verify_challenge_resource)
        return 1;
    if (url_host(resource, res_host, sizeof(res_host)) != 0)
        return 0;
    size_t v = strlen(vault_host), r = strlen(res_host);
    return v > r && strcasecmp(vault_host + v - r, res_host) == 0 && vault_host[v - r - 1] == '.';
}

int sky__kv_challenge_scope(const sky_keyvault_client *c, const char *www, char **out,
                            sky_error *err)
{
    char value[512];
    *out = NULL;
    if (www == NULL || strncasecmp(www, "Bearer", 6) != 0)
        return sky_error_set(err, SKY_EAUTH,
                             "key vault: a 401 without a Bearer challenge (WWW-Authenticate)");
    int scoped = challenge_param(www, "scope", value, sizeof(value)) == 0;
    if (!scoped && challenge_param(www, "resource", value, sizeof(value)) != 0)
        return sky_error_set(err, SKY_EAUTH, "key vault: the challenge names no resource or scope");
    if (!resource_fits(c, value))
        return sky_error_set(err, SKY_EAUTH,
                             "key vault: the challenge's resource %.200s is not the vault's "
                             "domain: no token is sent to it",
                             value);
    size_t n = strlen(value) + 16;
    *out = malloc(n);
    if (*out == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    size_t vl = strlen(value);
    int has_default = vl >= 9 && strcmp(value + vl - 9, "/.default") == 0;
    snprintf(*out, n, "%s%s", value, scoped || has_default ? "" : "/.default");
    return 0;
}

/* ---- the client ---- */

static void client_release(sky_keyvault_client *c)
{
    free(c->vault_url);
    free(c->host);
    free(c->scope);
    free(c);
}

static int check_options(const sky_keyvault_client_options *o, sky_error *err)
{
    if (o == NULL || o->vault_url == NULL || strncmp(o->vault_url, "https://", 8) != 0)
        return sky_error_set(err, SKY_EINVAL,
                             "key vault: an https:// vault URL is required (vaults are HTTPS "
                             "only)");
    if (o->credential == NULL)
        return sky_error_set(err, SKY_EINVAL, "key vault: a credential is required");
    return 0;
}

int sky_keyvault_client_new(uv_loop_t *loop, sky_http_client *http,
                            const sky_keyvault_client_options *o, sky_keyvault_client **out,
                            sky_error *err)
{
    *out = NULL;
    if (loop == NULL || http == NULL)
        return sky_error_set(err, SKY_EINVAL, "key vault: a loop and an HTTP client are required");
    int rc = check_options(o, err);
    if (rc != 0)
        return rc;
    sky_keyvault_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    c->loop = loop;
    c->http = http;
    c->o = *o;
    size_t n = strlen(o->vault_url);
    while (n > 8 && o->vault_url[n - 1] == '/')
        n--;
    c->vault_url = strndup(o->vault_url, n);
    c->host = c->vault_url ? strndup(c->vault_url + 8, strcspn(c->vault_url + 8, "/?")) : NULL;
    sky_pipeline_options po = o->pipeline;
    po.retry = o->retry;
    po.attempt_timeout_ms = o->attempt_timeout_ms;
    po.clock = o->clock;
    po.fail_unreached = !o->retry_unreached;
    po.auth = NULL;
    po.credential = NULL; /* the challenge decides the scope: each op adds its token */
    po.sign = NULL;
    rc = c->vault_url && c->host ? sky_pipeline_new(loop, http, &po, &c->pipe) : SKY_ENOMEM;
    if (rc != 0) {
        client_release(c);
        return sky_error_set(err, rc, "key vault: cannot make the client (%s)", sky_err_name(rc));
    }
    *out = c;
    return 0;
}
