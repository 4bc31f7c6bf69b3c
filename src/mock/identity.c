/*
 * `skyio mock`'s identity endpoints, shaped like the real ones:
 *   POST /{tenant}/oauth2/v2.0/token        Entra ID client credentials
 *        (client_secret, or a client_assertion of type jwt-bearer)
 *   GET  /metadata/identity/oauth2/token    IMDS (needs `Metadata: true`)
 *   GET  /msi/token                         App Service / Container Apps
 *        (needs X-IDENTITY-HEADER; point IDENTITY_ENDPOINT here)
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration and
 *        /common/discovery/instance   the discovery MSAL does first
 * Tokens are "mock-token-N", N counting up from 1 across the endpoints, so
 * a test can tell a refreshed token from the first. Settings and counters
 * are shared by every worker thread (counters are atomic).
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "worker.h"
#include "skyio/json.h"
#include "skyio/server.h"

enum { EP_ENTRA, EP_IMDS, EP_APP, EP_COUNT };

struct sky__mock_identity {
    sky_mock_identity cfg;
    int tls; /* discovery documents name https:// endpoints */
    char *client_id, *client_secret, *identity_header; /* the cfg strings' copies */
    uint64_t issued;                                   /* tokens handed out */
    uint64_t requests[EP_COUNT];
    uint64_t failed;   /* answered with an error, any cause */
    uint64_t injected; /* failures from fail_status */
};

#define ID_ADD(field) __atomic_add_fetch(&(field), 1, __ATOMIC_RELAXED)
#define ID_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* ---- configuration ---- */

void sky__mock_identity_config_init(sky_mock_identity *c)
{
    memset(c, 0, sizeof(*c));
    c->identity_header = "mock-identity-header";
    c->expires_in = 3600;
}

static int want_int(json_t *v, const char *key, int lo, int hi, int *out, sky_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return sky_error_set(err, SKY_EINVAL,
                             "config key \"identity.%s\": expected an integer "
                             "in [%d, %d]",
                             key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

int sky__mock_identity_apply_json(sky_mock_identity *c, json_t *obj, sky_error *err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj))
        return sky_error_set(err, SKY_EINVAL, "config key \"identity\": expected an object");
    json_object_foreach(obj, key, v)
    {
        int rc = 0;
        if (strcmp(key, "client_id") == 0 && json_is_string(v))
            c->client_id = json_string_value(v);
        else if (strcmp(key, "client_secret") == 0 && json_is_string(v))
            c->client_secret = json_string_value(v);
        else if (strcmp(key, "identity_header") == 0 && json_is_string(v))
            c->identity_header = json_string_value(v);
        else if (strcmp(key, "expires_in") == 0)
            rc = want_int(v, key, 1, 86400 * 30, &c->expires_in, err);
        else if (strcmp(key, "fail_status") == 0)
            rc = want_int(v, key, 0, 599, &c->fail_status, err);
        else if (strcmp(key, "fail_count") == 0)
            rc = want_int(v, key, 0, 1 << 30, &c->fail_count, err);
        else if (strcmp(key, "delay_ms") == 0)
            rc = want_int(v, key, 0, 600000, &c->delay_ms, err);
        else
            rc = sky_error_set(err, SKY_EINVAL,
                               "config key \"identity.%s\": unknown or of the "
                               "wrong type",
                               key);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static char *dup_or_null(const char *s, int *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s && d == NULL)
        *oom = 1;
    return d;
}

sky__mock_identity *sky__mock_identity_new(const sky_mock_identity *c, int tls)
{
    int oom = 0;
    sky__mock_identity *id = calloc(1, sizeof(*id));
    if (id == NULL)
        return NULL;
    id->cfg = *c;
    id->tls = tls;
    id->client_id = dup_or_null(c->client_id, &oom);
    id->client_secret = dup_or_null(c->client_secret, &oom);
    id->identity_header = dup_or_null(c->identity_header, &oom);
    id->cfg.client_id = id->client_id;
    id->cfg.client_secret = id->client_secret;
    id->cfg.identity_header = id->identity_header;
    if (id->cfg.expires_in <= 0)
        id->cfg.expires_in = 3600;
    if (oom) {
        sky__mock_identity_free(id);
        return NULL;
    }
    return id;
}

void sky__mock_identity_free(sky__mock_identity *id)
{
    if (id == NULL)
        return;
    free(id->client_id);
    free(id->client_secret);
    free(id->identity_header);
    free(id);
}

json_t *sky__mock_identity_stats(const sky__mock_identity *id)
{
    sky__mock_identity *m = (sky__mock_identity *)(uintptr_t)id;
    uint64_t total =
        ID_GET(m->requests[EP_ENTRA]) + ID_GET(m->requests[EP_IMDS]) + ID_GET(m->requests[EP_APP]);
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "token_requests", (json_int_t)total, "entra",
                     (json_int_t)ID_GET(m->requests[EP_ENTRA]), "imds",
                     (json_int_t)ID_GET(m->requests[EP_IMDS]), "app_service",
                     (json_int_t)ID_GET(m->requests[EP_APP]), "failed",
                     (json_int_t)ID_GET(m->failed), "issued", (json_int_t)ID_GET(m->issued));
}

void sky__mock_identity_reset(sky__mock_identity *id)
{
    for (int i = 0; i < EP_COUNT; i++)
        __atomic_store_n(&id->requests[i], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&id->failed, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&id->injected, 0, __ATOMIC_RELAXED);
}

/* ---- replies ---- */

typedef struct held_reply {
    int status;
    json_t *body;
} held_reply;

static void held_free(void *data)
{
    held_reply *h = data;
    json_decref(h->body);
    free(h);
}

static void send_held(sky_server_req *r, void *data)
{
    held_reply *h = data;
    sky_server_respond_json(r, h->status, h->body);
}

/* Answer now, or after the configured delay. Takes @p body. */
static void reply(sky__mock_identity *id, sky_server_req *r, int status, json_t *body)
{
    if (body == NULL) {
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{}"));
        return;
    }
    if (status != 200)
        ID_ADD(id->failed);
    held_reply *h = id->cfg.delay_ms > 0 ? malloc(sizeof(*h)) : NULL;
    if (h == NULL) {
        sky_server_respond_json(r, status, body);
        json_decref(body);
        return;
    }
    h->status = status;
    h->body = body;
    sky_server_req_set_data(r, h, held_free);
    if (sky_server_req_after(r, (uint64_t)id->cfg.delay_ms, send_held) < 0)
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{}"));
}

/* An Entra-style error: {"error", "error_description", "error_codes", ...}. */
static void reply_aad_error(sky__mock_identity *id, sky_server_req *r, int status,
                            const char *error, int aadsts, const char *text)
{
    char desc[512];
    snprintf(desc, sizeof(desc), "AADSTS%d: %s Trace ID: 00000000-0000-0000-0000-000000000000",
             aadsts, text);
    reply(id, r, status,
          json_pack("{s:s,s:s,s:[i],s:s,s:s}", "error", error, "error_description", desc,
                    "error_codes", aadsts, "timestamp", "2024-01-01 00:00:00Z", "trace_id",
                    "00000000-0000-0000-0000-000000000000"));
}

/* The configured failure, when it applies to this request. */
static int injected_failure(sky__mock_identity *id, sky_server_req *r)
{
    int status = id->cfg.fail_status;
    if (status == 0)
        return 0;
    uint64_t n = ID_ADD(id->injected);
    if (id->cfg.fail_count > 0 && n > (uint64_t)id->cfg.fail_count)
        return 0;
    if (status == 429)
        sky_server_add_header(r, "Retry-After", SKY_SPAN_LIT("0"));
    reply_aad_error(id, r, status, status == 429 ? "too_many_requests" : "temporarily_unavailable",
                    status == 429 ? 50196 : 50000, "The mock was told to fail this token request.");
    return 1;
}

static void next_token(sky__mock_identity *id, char *out, size_t len)
{
    snprintf(out, len, "mock-token-%llu", (unsigned long long)ID_ADD(id->issued));
}

/* ---- form bodies ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

char *sky__mock_form_get(sky_span body, const char *key)
{
    size_t klen = strlen(key), i = 0;
    while (i < body.len) {
        const char *p = body.ptr + i;
        const char *amp = memchr(p, '&', body.len - i);
        size_t n = amp ? (size_t)(amp - p) : body.len - i;
        i += n + 1;
        if (n <= klen || p[klen] != '=' || memcmp(p, key, klen) != 0)
            continue;
        char *out = malloc(n - klen);
        size_t o = 0;
        for (size_t k = klen + 1; out && k < n; k++) {
            if (p[k] == '+') {
                out[o++] = ' ';
            } else if (p[k] == '%' && k + 2 < n && hexval(p[k + 1]) >= 0 && hexval(p[k + 2]) >= 0) {
                out[o++] = (char)(hexval(p[k + 1]) * 16 + hexval(p[k + 2]));
                k += 2;
            } else {
                out[o++] = p[k];
            }
        }
        if (out)
            out[o] = '\0';
        return out;
    }
    return NULL;
}

/* ---- POST /{tenant}/oauth2/v2.0/token ---- */

static const char token_suffix[] = "/oauth2/v2.0/token";

int sky__mock_tenant_path_ok(sky_span path)
{
    size_t sl = sizeof(token_suffix) - 1;
    if (path.len <= sl + 1 || memcmp(path.ptr + path.len - sl, token_suffix, sl) != 0)
        return 0;
    return memchr(path.ptr + 1, '/', path.len - sl - 1) == NULL;
}

/* What is wrong with the client's proof, or NULL. */
static const char *check_client(sky__mock_identity *id, const char *secret, const char *atype,
                                const char *assertion, int *aadsts)
{
    if (assertion) {
        *aadsts = 700024;
        if (atype == NULL ||
            strcmp(atype, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") != 0)
            return "Client assertion type is not jwt-bearer.";
        return *assertion ? NULL : "Client assertion is empty.";
    }
    *aadsts = 7000215;
    if (secret == NULL || *secret == '\0')
        return "The request body must contain the following parameter: 'client_assertion' or "
               "'client_secret'.";
    if (id->cfg.client_secret && strcmp(secret, id->cfg.client_secret) != 0)
        return "Invalid client secret provided. Ensure the secret being sent in the request is "
               "the client secret value, not the client secret ID.";
    return NULL;
}

static void answer_entra(sky__mock_identity *id, sky_server_req *r, const char *client_id,
                         const char *scope, const char *grant, const char *err_text, int aadsts)
{
    char token[64];
    if (grant == NULL || strcmp(grant, "client_credentials") != 0) {
        reply_aad_error(id, r, 400, "unsupported_grant_type", 70003,
                        "The app requested an unsupported grant type.");
    } else if (client_id == NULL || scope == NULL) {
        reply_aad_error(id, r, 400, "invalid_request", 900144,
                        "The request body must contain the parameters 'client_id' and 'scope'.");
    } else if (id->cfg.client_id && strcmp(client_id, id->cfg.client_id) != 0) {
        reply_aad_error(id, r, 400, "unauthorized_client", 700016,
                        "Application was not found in the directory.");
    } else if (err_text) {
        reply_aad_error(id, r, 401, "invalid_client", aadsts, err_text);
    } else {
        next_token(id, token, sizeof(token));
        reply(id, r, 200,
              json_pack("{s:s,s:i,s:i,s:s}", "token_type", "Bearer", "expires_in",
                        id->cfg.expires_in, "ext_expires_in", id->cfg.expires_in, "access_token",
                        token));
    }
}

static void on_token(sky__mock_identity *id, sky_server_req *r)
{
    ID_ADD(id->requests[EP_ENTRA]);
    if (injected_failure(id, r))
        return;
    sky_span body = sky_server_req_body(r);
    char *grant = sky__mock_form_get(body, "grant_type"),
         *client_id = sky__mock_form_get(body, "client_id");
    char *scope = sky__mock_form_get(body, "scope"),
         *secret = sky__mock_form_get(body, "client_secret");
    char *atype = sky__mock_form_get(body, "client_assertion_type");
    char *assertion = sky__mock_form_get(body, "client_assertion");
    int aadsts = 0;
    const char *bad = check_client(id, secret, atype, assertion, &aadsts);
    answer_entra(id, r, client_id, scope, grant, bad, aadsts);
    free(grant);
    free(client_id);
    free(scope);
    free(secret);
    free(atype);
    free(assertion);
}

/* ---- discovery: what MSAL reads before it asks for a token ---- */

/* scheme://host the client reached us at, as MSAL wants the issuer: the same origin as
 * the authority it was given. */
static void origin(const sky__mock_identity *id, sky_server_req *r, char *out, size_t len)
{
    sky_span host = sky_server_req_authority(r);
    if (host.len == 0 || host.len > 200)
        host = sky_span_cstr("127.0.0.1");
    snprintf(out, len, "%s://%.*s", id->tls ? "https" : "http", (int)host.len, host.ptr);
}

/* The path's first segment (the tenant) into @p out; 0 when it is empty or too long. */
static int first_segment(sky_span path, char *out, size_t len)
{
    const char *p = path.ptr + 1, *end = path.ptr + path.len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    size_t n = (size_t)((slash ? slash : end) - p);
    if (n == 0 || n >= len)
        return 0;
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

/* GET /{tenant}/v2.0/.well-known/openid-configuration, Entra ID's document, with every
 * endpoint on the mock. */
static void on_openid_configuration(sky__mock_identity *id, sky_server_req *r, const char *tenant)
{
    char o[256], base[600], url[7][700];
    static const char *const tails[] = {
        "/oauth2/v2.0/token",   "/oauth2/v2.0/authorize",  "/v2.0",
        "/discovery/v2.0/keys", "/oauth2/v2.0/devicecode", "/oauth2/v2.0/logout",
        "/openid/userinfo"};
    origin(id, r, o, sizeof(o));
    snprintf(base, sizeof(base), "%s/%s", o, tenant);
    for (size_t i = 0; i < SKY_ARRAY_LEN(tails); i++)
        snprintf(url[i], sizeof(url[i]), "%s%s", base, tails[i]);
    reply(id, r, 200,
          json_pack("{s:s,s:[sss],s:s,s:[s],s:s,s:[s],s:[ssss],s:[ssss],s:s,s:s,s:s,s:s,s:s,"
                    "s:b,s:b,s:n,s:s,s:s,s:s}",
                    "token_endpoint", url[0], "token_endpoint_auth_methods_supported",
                    "client_secret_post", "private_key_jwt", "client_secret_basic", "jwks_uri",
                    url[3], "subject_types_supported", "pairwise", "issuer", url[2],
                    "id_token_signing_alg_values_supported", "RS256", "response_types_supported",
                    "code", "id_token", "code id_token", "id_token token", "scopes_supported",
                    "openid", "profile", "email", "offline_access", "authorization_endpoint",
                    url[1], "device_authorization_endpoint", url[4], "end_session_endpoint", url[5],
                    "userinfo_endpoint", url[6], "cloud_instance_name", "microsoftonline.com",
                    "http_logout_supported", 1, "frontchannel_logout_supported", 1,
                    "tenant_region_scope", "cloud_graph_host_name", "graph.windows.net",
                    "msgraph_host", "graph.microsoft.com", "rbac_url", "https://pas.windows.net"));
}

/* GET /common/discovery/instance?api-version=1.1&authorization_endpoint=...: the mock is
 * its own cloud, one host with no aliases. */
static void on_instance_discovery(sky__mock_identity *id, sky_server_req *r)
{
    char o[256], tde[400];
    sky_span ver;
    if (!sky_server_req_query_param(r, "api-version", &ver) || ver.len == 0) {
        reply_aad_error(id, r, 400, "invalid_request", 900561,
                        "The endpoint only accepts requests with an api-version.");
        return;
    }
    origin(id, r, o, sizeof(o));
    const char *host = strstr(o, "://") + 3;
    snprintf(tde, sizeof(tde), "%s/{tenant}/v2.0/.well-known/openid-configuration", o);
    reply(id, r, 200,
          json_pack("{s:s,s:s,s:[{s:s,s:s,s:[s]}]}", "tenant_discovery_endpoint", tde,
                    "api-version", "1.1", "metadata", "preferred_network", host, "preferred_cache",
                    host, "aliases", host));
}

static int path_ends(sky_span path, const char *tail)
{
    size_t n = strlen(tail);
    return path.len > n && memcmp(path.ptr + path.len - n, tail, n) == 0;
}

/* Nonzero when @p path is /{tenant}@p tail, one segment of tenant. */
static int tenant_path(sky_span path, const char *tail)
{
    size_t n = strlen(tail);
    return path_ends(path, tail) && path.len > n + 1 &&
           memchr(path.ptr + 1, '/', path.len - n - 1) == NULL;
}

static void not_found(sky_server_req *r)
{
    /* the body the server answers for a path no route serves */
    sky_server_respond(r, 404, "application/json",
                       SKY_SPAN_LIT("{\"error\":{\"message\":\"no such route\",\"type\":"
                                    "\"invalid_request_error\",\"param\":null,\"code\":"
                                    "\"not_found\"}}"));
}

static void on_entra_get(sky__mock_identity *id, sky_server_req *r, sky_span path)
{
    char tenant[128];
    if (tenant_path(path, "/v2.0/.well-known/openid-configuration") &&
        first_segment(path, tenant, sizeof(tenant)))
        on_openid_configuration(id, r, tenant);
    else if (tenant_path(path, "/discovery/instance"))
        on_instance_discovery(id, r);
    else if (tenant_path(path, "/discovery/v2.0/keys"))
        reply(id, r, 200, json_pack("{s:[]}", "keys"));
    else
        not_found(r);
}

void sky__mock_on_entra(sky_server_req *r, void *ud)
{
    sky__mock_identity *id = ud;
    sky_span path = sky_server_req_path(r);
    while (path.len > 1 && path.ptr[path.len - 1] == '/')
        path.len--;
    if (sky_span_eq_cstr(sky_server_req_method(r), "GET"))
        on_entra_get(id, r, path);
    else if (!sky_span_eq_cstr(sky_server_req_method(r), "POST"))
        not_found(r);
    else if (sky__mock_tenant_path_ok(path))
        on_token(id, r);
    else
        sky_server_respond(r, 404, "application/json",
                           SKY_SPAN_LIT("{\"error\":{\"code\":\"NotFound\",\"message\":\"no "
                                        "such path in skyio mock\"}}"));
}

/* ---- GET /metadata/identity/oauth2/token and GET /msi/token ---- */

/* The managed-identity reply: expires_in and expires_on as strings, like IMDS. */
static void answer_managed(sky__mock_identity *id, sky_server_req *r, sky_span resource)
{
    char token[64], exp_in[24], exp_on[24], res[1024];
    next_token(id, token, sizeof(token));
    snprintf(exp_in, sizeof(exp_in), "%d", id->cfg.expires_in);
    snprintf(exp_on, sizeof(exp_on), "%lld", (long long)time(NULL) + id->cfg.expires_in);
    snprintf(res, sizeof(res), "%.*s", (int)resource.len, resource.ptr);
    reply(
        id, r, 200,
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "access_token", token, "expires_in", exp_in,
                  "expires_on", exp_on, "resource", res, "token_type", "Bearer", "client_id",
                  id->cfg.client_id ? id->cfg.client_id : "00000000-0000-0000-0000-000000000000"));
}

static void on_managed(sky_server_req *r, sky__mock_identity *id, int ep, const char *version)
{
    sky_span v, resource;
    ID_ADD(id->requests[ep]);
    if (injected_failure(id, r))
        return;
    if (ep == EP_IMDS &&
        !(sky_server_req_header(r, "metadata", &v) && sky_span_eq_cstr(v, "true"))) {
        reply(id, r, 400,
              json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                        "Required metadata header not specified"));
    } else if (ep == EP_APP &&
               !(sky_server_req_header(r, "x-identity-header", &v) && id->cfg.identity_header &&
                 sky_span_eq_cstr(v, id->cfg.identity_header))) {
        reply(id, r, 401,
              json_pack("{s:i,s:s}", "statusCode", 401, "message",
                        "X-IDENTITY-HEADER is missing or wrong"));
    } else if (!sky_server_req_query_param(r, "api-version", &v) || !sky_span_eq_cstr(v, version)) {
        reply(id, r, 400,
              json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                        "Unsupported or missing api-version"));
    } else if (!sky_server_req_query_param(r, "resource", &resource) || resource.len == 0) {
        reply(id, r, 400,
              json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                        "Required query variable 'resource' is missing"));
    } else {
        answer_managed(id, r, resource);
    }
}

void sky__mock_on_imds(sky_server_req *r, void *ud)
{
    on_managed(r, ud, EP_IMDS, "2018-02-01");
}

void sky__mock_on_app_service(sky_server_req *r, void *ud)
{
    on_managed(r, ud, EP_APP, "2019-08-01");
}
