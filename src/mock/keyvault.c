/*
 * Key Vault's secrets API, as `skyio mock` serves it (over TLS, as vaults are HTTPS only):
 *
 *   PUT    /secrets/{name}                  a new version           (200 bundle)
 *   GET    /secrets/{name}[/{version}]      the latest or a version (200, 404 SecretNotFound)
 *   GET    /secrets                         names, paged by maxresults ($skiptoken, nextLink)
 *   DELETE /secrets/{name}                  soft-delete             (200 deleted bundle)
 *   GET    /deletedsecrets/{name}           the deleted secret      (200, 404)
 *   POST   /deletedsecrets/{name}/recover   undo the delete         (200 bundle)
 *   DELETE /deletedsecrets/{name}           purge                   (204)
 *
 * A request without a bearer token gets the vault's challenge: 401 with WWW-Authenticate
 * naming the authority (with a tenant) and resource https://vault.azure.net. Any bearer
 * token is taken. Every request needs ?api-version. Setting a secret that is deleted but
 * not purged is a 409 (ObjectIsDeletedButRecoverable). Throttling on demand: every other
 * request about a secret whose name starts with "throttle-" is a 429 with Retry-After: 1.
 * The store is the process's, shared by the workers under a lock, and lives in memory.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "worker.h"

#define MOCK_TENANT "72f988bf-0000-4000-8000-00000000cafe"
#define MAX_VERSIONS 64

typedef struct kv_version {
    char id[33];
    char *value;
    char *content_type;
    int64_t created;
} kv_version;

typedef struct kv_secret {
    struct kv_secret *next;
    char name[128];
    kv_version versions[MAX_VERSIONS];
    int nversions;
    int deleted;
    int64_t deleted_date;
    uint64_t hits; /* throttle-: every other request */
} kv_secret;

static pthread_mutex_t kv_lock = PTHREAD_MUTEX_INITIALIZER;
static kv_secret *kv_store;
static uint64_t kv_serial;

/* ---- replies ---- */

static void kv_error(sky_server_req *req, int status, const char *code, const char *msg)
{
    json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
    sky_server_respond_json(req, status, e);
    json_decref(e);
}

static void base_url(sky_server_req *req, char *out, size_t len)
{
    sky_span a = sky_server_req_authority(req);
    snprintf(out, len, "https://%.*s", (int)a.len, a.ptr);
}

static json_t *bundle(sky_server_req *req, const kv_secret *s, const kv_version *v, int with_value)
{
    char base[300], id[600];
    base_url(req, base, sizeof(base));
    snprintf(id, sizeof(id), "%s/secrets/%s/%s", base, s->name, v->id);
    json_t *o = json_pack("{s:s, s:{s:b, s:I, s:I, s:s, s:i}}", "id", id, "attributes", "enabled",
                          1, "created", (json_int_t)v->created, "updated", (json_int_t)v->created,
                          "recoveryLevel", "Recoverable+Purgeable", "recoverableDays", 90);
    if (with_value)
        json_object_set_new(o, "value", json_string(v->value));
    if (v->content_type)
        json_object_set_new(o, "contentType", json_string(v->content_type));
    return o;
}

static json_t *deleted_bundle(sky_server_req *req, const kv_secret *s)
{
    char base[300], rid[600];
    base_url(req, base, sizeof(base));
    json_t *o = bundle(req, s, &s->versions[s->nversions - 1], 0);
    snprintf(rid, sizeof(rid), "%s/deletedsecrets/%s", base, s->name);
    json_object_set_new(o, "recoveryId", json_string(rid));
    json_object_set_new(o, "deletedDate", json_integer(s->deleted_date));
    json_object_set_new(o, "scheduledPurgeDate", json_integer(s->deleted_date + 90 * 86400));
    return o;
}

static void respond(sky_server_req *req, int status, json_t *body)
{
    sky_server_respond_json(req, status, body);
    json_decref(body);
}

/* ---- the store (under kv_lock) ---- */

static kv_secret *find(const char *name)
{
    for (kv_secret *s = kv_store; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static void purge(kv_secret *gone)
{
    for (kv_secret **p = &kv_store; *p; p = &(*p)->next)
        if (*p == gone) {
            *p = gone->next;
            break;
        }
    for (int i = 0; i < gone->nversions; i++) {
        free(gone->versions[i].value);
        free(gone->versions[i].content_type);
    }
    free(gone);
}

static const kv_version *version_of(const kv_secret *s, const char *version)
{
    if (version == NULL || version[0] == '\0')
        return s->nversions ? &s->versions[s->nversions - 1] : NULL;
    for (int i = 0; i < s->nversions; i++)
        if (strcmp(s->versions[i].id, version) == 0)
            return &s->versions[i];
    return NULL;
}

/* ---- handlers ---- */

static void not_found(sky_server_req *req, const char *name)
{
    char msg[300];
    snprintf(msg, sizeof(msg),
             "A secret with (name/id) %s was not found in this key vault. If you recently "
             "deleted this secret you may be able to recover it using the correct recovery "
             "command.",
             name);
    kv_error(req, 404, "SecretNotFound", msg);
}

static void on_set(sky_server_req *req, const char *name)
{
    sky_span b = sky_server_req_body(req);
    json_t *in = json_loadb(b.ptr ? b.ptr : "", b.len, 0, NULL);
    const char *value = json_string_value(json_object_get(in, "value"));
    const char *ctype = json_string_value(json_object_get(in, "contentType"));
    kv_secret *s = find(name);
    if (value == NULL) {
        kv_error(req, 400, "BadParameter", "The request body has no secret value.");
    } else if (s && s->deleted) {
        kv_error(req, 409, "Conflict",
                 "Secret is currently in a deleted but recoverable state, and its name cannot "
                 "be reused; in this state, the secret can only be recovered or purged.");
    } else if (s == NULL && (s = calloc(1, sizeof(*s))) == NULL) {
        kv_error(req, 500, "InternalError", "out of memory");
    } else {
        if (s->name[0] == '\0') {
            snprintf(s->name, sizeof(s->name), "%s", name);
            s->next = kv_store;
            kv_store = s;
        }
        if (s->nversions == MAX_VERSIONS) {
            free(s->versions[0].value);
            free(s->versions[0].content_type);
            memmove(s->versions, s->versions + 1, sizeof(s->versions[0]) * (MAX_VERSIONS - 1));
            s->nversions--;
        }
        kv_version *v = &s->versions[s->nversions++];
        snprintf(v->id, sizeof(v->id), "%016llx%016llx", (unsigned long long)time(NULL),
                 (unsigned long long)++kv_serial);
        v->value = strdup(value);
        v->content_type = ctype ? strdup(ctype) : NULL;
        v->created = (int64_t)time(NULL);
        respond(req, 200, bundle(req, s, v, 1));
    }
    json_decref(in);
}

static void on_get(sky_server_req *req, const char *name, const char *version)
{
    kv_secret *s = find(name);
    const kv_version *v = s && !s->deleted ? version_of(s, version) : NULL;
    if (v == NULL)
        not_found(req, name);
    else
        respond(req, 200, bundle(req, s, v, 1));
}

static void on_list(sky_server_req *req)
{
    sky_span p;
    long max = 25, skip = 0;
    char base[300], next[700];
    if (sky_server_req_query_param(req, "maxresults", &p))
        max = strtol(p.ptr, NULL, 10);
    if (sky_server_req_query_param(req, "$skiptoken", &p))
        skip = strtol(p.ptr, NULL, 10);
    max = max < 1 || max > 25 ? 25 : max;
    json_t *arr = json_array();
    long i = 0, shown = 0;
    for (kv_secret *s = kv_store; s; s = s->next) {
        if (s->deleted || i++ < skip)
            continue;
        if (shown == max) {
            shown++;
            break;
        }
        json_t *item = bundle(req, s, &s->versions[s->nversions - 1], 0);
        char id[600];
        base_url(req, base, sizeof(base));
        snprintf(id, sizeof(id), "%s/secrets/%s", base, s->name);
        json_object_set_new(item, "id", json_string(id));
        json_array_append_new(arr, item);
        shown++;
    }
    json_t *out = json_pack("{s:o}", "value", arr);
    base_url(req, base, sizeof(base));
    snprintf(next, sizeof(next), "%s/secrets?api-version=7.5&maxresults=%ld&$skiptoken=%ld", base,
             max, skip + max);
    json_object_set_new(out, "nextLink", shown > max ? json_string(next) : json_null());
    respond(req, 200, out);
}

static void on_delete(sky_server_req *req, const char *name)
{
    kv_secret *s = find(name);
    if (s == NULL || s->deleted) {
        not_found(req, name);
        return;
    }
    s->deleted = 1;
    s->deleted_date = (int64_t)time(NULL);
    respond(req, 200, deleted_bundle(req, s));
}

static void on_deleted(sky_server_req *req, const char *method, const char *name,
                       const char *action)
{
    kv_secret *s = find(name);
    if (s == NULL || !s->deleted) {
        kv_error(req, 404, "SecretNotFound", "Deleted Secret not found");
    } else if (strcmp(method, "GET") == 0 && action == NULL) {
        respond(req, 200, deleted_bundle(req, s));
    } else if (strcmp(method, "DELETE") == 0 && action == NULL) {
        purge(s);
        sky_server_respond(req, 204, NULL, sky_span_cstr(""));
    } else if (strcmp(method, "POST") == 0 && action && strcmp(action, "recover") == 0) {
        s->deleted = 0;
        respond(req, 200, bundle(req, s, &s->versions[s->nversions - 1], 0));
    } else {
        kv_error(req, 405, "MethodNotAllowed", "Not a deleted secrets operation.");
    }
}

/* ---- the route ---- */

/* The challenge a request without a token gets. */
static int challenged(sky_server_req *req)
{
    sky_span auth;
    if (sky_server_req_header(req, "authorization", &auth) && auth.len > 7 &&
        strncmp(auth.ptr, "Bearer ", 7) == 0)
        return 0;
    sky_server_add_header(
        req, "WWW-Authenticate",
        SKY_SPAN_LIT("Bearer authorization=\"https://login.microsoftonline.com/" MOCK_TENANT
                     "\", resource=\"https://vault.azure.net\""));
    kv_error(req, 401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.");
    return 1;
}

static int throttled(sky_server_req *req, const char *name)
{
    kv_secret *s = find(name);
    static uint64_t unknown_hits;
    uint64_t *hits = s ? &s->hits : &unknown_hits;
    if (strncmp(name, "throttle-", 9) != 0 || (*hits)++ % 2 != 0)
        return 0;
    sky_server_add_header(req, "Retry-After", SKY_SPAN_LIT("1"));
    kv_error(req, 429, "Throttled",
             "Request was not processed because too many requests were received.");
    return 1;
}

/* "/secrets/a/b" into its parts: base ("secrets"), name, and what follows (may be ""). */
static int split_path(sky_span path, char *base, char *name, char *rest)
{
    char p[600];
    if (path.len == 0 || path.len >= sizeof(p))
        return -1;
    memcpy(p, path.ptr, path.len);
    p[path.len] = '\0';
    while (path.len > 1 && p[strlen(p) - 1] == '/')
        p[strlen(p) - 1] = '\0';
    base[0] = name[0] = rest[0] = '\0';
    return sscanf(p, "/%63[^/]/%127[^/]/%127s", base, name, rest) >= 1 ? 0 : -1;
}

static void route(sky_server_req *req, const char *method, const char *base, const char *name,
                  const char *rest)
{
    int deleted = strcmp(base, "deletedsecrets") == 0;
    if (!deleted && strcmp(base, "secrets") != 0)
        kv_error(req, 404, "NotFound", "Not a Key Vault path.");
    else if (name[0] && throttled(req, name))
        return;
    else if (deleted && name[0])
        on_deleted(req, method, name, rest[0] ? rest : NULL);
    else if (!name[0] && strcmp(method, "GET") == 0)
        on_list(req);
    else if (name[0] && strcmp(method, "PUT") == 0 && !rest[0])
        on_set(req, name);
    else if (name[0] && strcmp(method, "GET") == 0)
        on_get(req, name, rest);
    else if (name[0] && strcmp(method, "DELETE") == 0 && !rest[0])
        on_delete(req, name);
    else
        kv_error(req, 405, "MethodNotAllowed", "Not a secrets operation.");
}

void sky__mock_on_keyvault(sky_server_req *req, void *user_data);

void sky__mock_on_keyvault(sky_server_req *req, void *user_data)
{
    char method[16], base[64], name[128], rest[128];
    sky_span m = sky_server_req_method(req), v;
    (void)user_data;
    snprintf(method, sizeof(method), "%.*s", (int)m.len, m.ptr);
    if (split_path(sky_server_req_path(req), base, name, rest) != 0) {
        kv_error(req, 404, "NotFound", "Not a Key Vault path.");
        return;
    }
    if (challenged(req))
        return;
    /* the JavaScript SDK writes the name percent-encoded */
    if ((!sky_server_req_query_param(req, "api-version", &v) &&
         !sky_server_req_query_param(req, "api%2Dversion", &v) &&
         !sky_server_req_query_param(req, "api%2dversion", &v)) ||
        v.len == 0) {
        kv_error(req, 400, "MissingApiVersionParameter",
                 "The api-version query parameter (?api-version=) is required for all "
                 "requests.");
        return;
    }
    pthread_mutex_lock(&kv_lock);
    route(req, method, base, name, rest);
    pthread_mutex_unlock(&kv_lock);
}
