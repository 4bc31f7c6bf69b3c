/*
 * Credentials: the shared part. A credential keeps one cache entry per
 * scope; a request either takes the cached token or waits on the entry's one
 * fetch in flight, so concurrent callers share a single token request. Every
 * callback is delivered from the loop by the credential's `kick` timer, so
 * none runs inside the call that asked for it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "credential_internal.h"
#include "skyio/json.h"
#include "skyio/log.h"

struct sky_token_request {
    sky_credential *c;
    sky_token_request *prev, *next;
    sky__cred_entry *entry; /* waiting on its fetch; NULL once ready */
    sky_token_cb cb;
    void *user_data;
    char *token;
    int64_t expires_on;
    const char *source;
    sky_error err;
};

static void cred_release(sky_credential *c);

/* ---- options and small helpers ---- */

void sky_credential_options_init(sky_credential_options *o)
{
    memset(o, 0, sizeof(*o));
    o->az_timeout_ms = 15000;
    o->request_timeout_ms = 30000;
    o->imds_max_retries = 3;
    o->imds_retry_base_ms = 500;
    o->entra_max_retries = 3;
    o->entra_retry_base_ms = 800;
    o->refresh_margin_s = 300;
}

int64_t sky__cred_now_s(const sky_credential *c)
{
    return sky_clock_wall_ms(c->clock) / 1000;
}

static void secure_free(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = 0;
        free(s);
    }
}

static char *dup_setting(const char *opt, const char *env, int *oom)
{
    const char *v = opt ? opt : env ? getenv(env) : NULL;
    if (v == NULL || *v == '\0')
        return NULL;
    char *s = strdup(v);
    if (s == NULL)
        *oom = 1;
    return s;
}

static char *dup_trimmed_url(const char *v, const char *dflt, int *oom)
{
    char *s = dup_setting(v ? v : dflt, NULL, oom);
    size_t n = s ? strlen(s) : 0;
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

static int resolve_config(sky__cred_config *k, const sky_credential_options *o)
{
    int oom = 0;
    const char *imds =
        o->imds_endpoint ? o->imds_endpoint : getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST");
    const char *authority = o->authority_host ? o->authority_host : getenv("AZURE_AUTHORITY_HOST");
    if (authority && *authority == '\0')
        authority = NULL;
    if (imds && *imds == '\0')
        imds = NULL;
    k->authority_host = dup_trimmed_url(authority, "https://login.microsoftonline.com", &oom);
    k->imds_endpoint = dup_trimmed_url(imds, "http://169.254.169.254", &oom);
    k->tenant_id = dup_setting(o->tenant_id, "AZURE_TENANT_ID", &oom);
    k->client_id = dup_setting(o->client_id, "AZURE_CLIENT_ID", &oom);
    k->client_secret = dup_setting(o->client_secret, "AZURE_CLIENT_SECRET", &oom);
    k->token_file = dup_setting(o->federated_token_file, "AZURE_FEDERATED_TOKEN_FILE", &oom);
    k->identity_endpoint = dup_setting(o->identity_endpoint, "IDENTITY_ENDPOINT", &oom);
    k->identity_header = dup_setting(o->identity_header, "IDENTITY_HEADER", &oom);
    k->az_path = dup_setting(o->az_path ? o->az_path : getenv("SKYIO_AZ_PATH"), NULL, &oom);
    if (k->az_path == NULL && !oom)
        k->az_path = dup_setting("az", NULL, &oom);
    k->cli_tenant = dup_setting(o->tenant_id, NULL, &oom);
    k->az_timeout_ms = o->az_timeout_ms > 0 ? o->az_timeout_ms : 15000;
    k->request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 30000;
    k->imds_retry_base_ms = o->imds_retry_base_ms > 0 ? o->imds_retry_base_ms : 500;
    k->imds_probe_timeout_ms = 0; /* the chain sets it on its managed identity link */
    k->imds_max_retries = o->imds_max_retries >= 0 ? o->imds_max_retries : 0;
    k->entra_retry_base_ms = o->entra_retry_base_ms > 0 ? o->entra_retry_base_ms : 800;
    k->entra_max_retries = o->entra_max_retries >= 0 ? o->entra_max_retries : 0;
    k->refresh_margin_s = o->refresh_margin_s > 0 ? o->refresh_margin_s : 300;
    k->exclude[0] = o->exclude_environment;
    k->exclude[1] = o->exclude_workload_identity;
    k->exclude[2] = o->exclude_managed_identity;
    k->exclude[3] = o->exclude_azure_cli;
    return oom ? SKY_ENOMEM : 0;
}

static void free_config(sky__cred_config *k)
{
    free(k->authority_host);
    free(k->tenant_id);
    free(k->client_id);
    secure_free(k->client_secret);
    free(k->token_file);
    free(k->imds_endpoint);
    free(k->identity_endpoint);
    secure_free(k->identity_header);
    free(k->az_path);
    free(k->cli_tenant);
    memset(k, 0, sizeof(*k));
}

const char *sky__cred_source_name(const char *s)
{
    static const char *const names[] = {
        "environment", "workload_identity", "managed_identity", "azure_cli", "static", "default"};
    for (size_t i = 0; s && i < SKY_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0)
            return names[i];
    return "unknown";
}

int sky__form_append(sky_buf *b, const char *key, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = b->len ? sky_buf_append(b, "&", 1) : 0;
    rc = rc ? rc : sky_buf_append_str(b, key);
    rc = rc ? rc : sky_buf_append(b, "=", 1);
    for (const unsigned char *p = (const unsigned char *)value; rc == 0 && *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            rc = sky_buf_append(b, p, 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rc = sky_buf_append(b, esc, 3);
        }
    }
    return rc;
}

void sky__cred_scrub(char *text, const char *secret)
{
    sky_buf out;
    size_t n = strlen(text);
    sky_buf_init(&out, n * 2 + 64);
    if (sky_redact(sky_span_make(text, n), &out) == 0 && out.data) {
        snprintf(text, n + 1, "%s", out.data);
    }
    sky_buf_free(&out);
    size_t sl = secret ? strlen(secret) : 0;
    if (sl < 4)
        return;
    for (char *hit = strstr(text, secret); hit; hit = strstr(hit + sl, secret))
        memset(hit, '*', sl);
}

/* Seconds past 10^12 (the year 33658) mean "never" as well as any larger number; held
 * there, the sums with the clock and the product in milliseconds cannot overflow, whatever
 * a token endpoint or az sends. */
#define MAX_SECONDS INT64_C(1000000000000)

static int64_t clamp_seconds(int64_t s)
{
    return s > MAX_SECONDS ? MAX_SECONDS : s < -MAX_SECONDS ? -MAX_SECONDS : s;
}

int64_t sky__cred_refresh_at_ms(int64_t now_s, int64_t expires_on, int64_t margin_s,
                                int64_t refresh_in_s)
{
    now_s = clamp_seconds(now_s);
    expires_on = clamp_seconds(expires_on);
    margin_s = clamp_seconds(margin_s);
    refresh_in_s = clamp_seconds(refresh_in_s);
    int64_t life = expires_on - now_s;
    int64_t at = life > 2 * margin_s ? expires_on - margin_s : now_s + (life > 0 ? life / 2 : 0);
    if (refresh_in_s > 0 && now_s + refresh_in_s < at)
        at = now_s + refresh_in_s;
    return at * 1000;
}

/* A number of seconds given as a JSON integer, real or decimal string. */
static int json_seconds(const json_t *v, int64_t *out)
{
    char *end = NULL;
    if (json_is_integer(v)) {
        *out = clamp_seconds((int64_t)json_integer_value(v));
        return 1;
    }
    if (json_is_real(v)) {
        /* clamped before the cast: a double out of int64_t's range does not convert */
        double d = json_real_value(v);
        *out = d >= (double)MAX_SECONDS    ? MAX_SECONDS
               : d <= -(double)MAX_SECONDS ? -MAX_SECONDS
                                           : (int64_t)d;
        return 1;
    }
    if (!json_is_string(v))
        return 0;
    long long n = strtoll(json_string_value(v), &end, 10);
    if (end == json_string_value(v) || *end != '\0')
        return 0;
    *out = clamp_seconds((int64_t)n);
    return 1;
}

int sky__cred_parse_token_json(const sky_credential *c, sky_span body, char **out_token,
                               int64_t *out_expires_on, int64_t *out_refresh_in, sky_error *err)
{
    json_t *j = NULL;
    int64_t v = 0;
    if (sky_json_parse(body, &j, NULL) < 0 || !json_is_object(j)) {
        json_decref(j);
        return sky_error_set(err, SKY_EJSON, "the token reply is not a JSON object (%zu bytes)",
                             body.len);
    }
    const char *tok = sky_json_str(j, "access_token", sky_json_str(j, "accessToken", NULL));
    int64_t now = sky__cred_now_s(c);
    *out_expires_on = 0;
    if (json_seconds(json_object_get(j, "expires_on"), &v) && v > 0)
        *out_expires_on = v;
    else if (json_seconds(json_object_get(j, "expires_in"), &v) && v > 0)
        *out_expires_on = now + v;
    *out_refresh_in = json_seconds(json_object_get(j, "refresh_in"), &v) && v > 0 ? v : 0;
    if (tok == NULL || *tok == '\0' || *out_expires_on == 0) {
        json_decref(j);
        return sky_error_set(err, SKY_EAUTH, "the token reply lacks %s",
                             tok ? "an expiry" : "an access token");
    }
    *out_token = strdup(tok);
    json_decref(j);
    return *out_token ? 0 : sky_error_set(err, SKY_ENOMEM, "out of memory");
}

void sky__cred_reply_error(const sky_http_response *res, const char *secret, sky_error *err)
{
    json_t *j = NULL;
    const char *code = NULL, *desc = NULL;
    char msg[SKY_ERROR_MESSAGE_MAX];
    if (sky_json_parse(res->body, &j, NULL) == 0 && json_is_object(j)) {
        json_t *e = json_object_get(j, "error");
        code = json_is_string(e) ? json_string_value(e) : sky_json_str(e, "code", NULL);
        desc = sky_json_str(j, "error_description",
                            sky_json_str(j, "message", sky_json_str(e, "message", NULL)));
    }
    snprintf(msg, sizeof(msg), "HTTP %d%s%s%s%s", res->status, code ? " " : "", code ? code : "",
             desc ? ": " : "", desc ? desc : "");
    /* Entra's descriptions run on with trace ids and timestamps: keep the first line. */
    msg[strcspn(msg, "\r\n")] = '\0';
    sky__cred_scrub(msg, secret);
    sky_error_clear(err);
    sky_error_set(err, SKY_EAUTH, "%s", msg);
    if (code) {
        char svc[SKY_ERROR_SERVICE_CODE_MAX];
        snprintf(svc, sizeof(svc), "%s", code);
        sky__cred_scrub(svc, secret);
        sky_error_set_service(err, svc);
    }
    err->http_status = res->status;
    err->retryable = res->status == 429 || res->status >= 500;
    json_decref(j);
}

void sky__cred_transport_error(const sky_error *cause, const char *what, sky_error *err)
{
    sky_error_clear(err);
    sky_error_set(err, cause->code, "%s: %s", what, cause->message);
    err->curl_code = cause->curl_code;
    err->retryable = cause->retryable;
}

int sky_credential_scope_to_resource(const char *scope, char *out, size_t out_len)
{
    size_t n = scope ? strlen(scope) : 0;
    if (n >= 9 && strcmp(scope + n - 9, "/.default") == 0)
        n -= 9;
    if (n + 1 > out_len)
        return SKY_ETOOBIG;
    if (n)
        memcpy(out, scope, n);
    out[n] = '\0';
    return 0;
}

/* ---- request lists ---- */

static void list_push(sky__token_list *l, sky_token_request *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static void list_remove(sky__token_list *l, sky_token_request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

/* ---- delivery ---- */

static void request_free(sky_token_request *r)
{
    secure_free(r->token);
    free(r);
}

static void deliver_one(sky_credential *c, sky_token_request *r)
{
    sky_access_token tok;
    list_remove(&c->ready, r);
    tok.token = r->token;
    tok.expires_on = r->expires_on;
    tok.source = r->source;
    c->in_deliver++;
    if (r->err.code == 0 && r->token)
        r->cb(r, &tok, NULL, r->user_data);
    else
        r->cb(r, NULL, &r->err, r->user_data);
    c->in_deliver--;
    request_free(r);
}

static void deliver_ready(sky_credential *c)
{
    while (c->ready.head)
        deliver_one(c, c->ready.head);
    if (c->free_requested && c->in_deliver == 0) {
        c->free_requested = 0;
        sky_credential_free(c);
    }
}

static void on_kick(uv_timer_t *t)
{
    deliver_ready(t->data);
}

static void make_ready(sky_credential *c, sky_token_request *r)
{
    if (r->entry) {
        list_remove(&c->waiting, r);
        r->entry = NULL;
    }
    list_push(&c->ready, r);
    if (!c->freeing)
        uv_timer_start(&c->kick, on_kick, 0, 0);
}

static void fill_token(sky_token_request *r, const char *token, int64_t expires_on,
                       const char *source)
{
    r->token = strdup(token);
    r->expires_on = expires_on;
    r->source = source;
    if (r->token == NULL)
        sky_error_set(&r->err, SKY_ENOMEM, "out of memory");
}

/* ---- cache and fetches ---- */

static sky__cred_entry *find_entry(sky_credential *c, const char *scope, int create)
{
    for (sky__cred_entry *e = c->entries; e; e = e->next)
        if (strcmp(e->scope, scope) == 0)
            return e;
    if (!create)
        return NULL;
    sky__cred_entry *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->scope = strdup(scope)) == NULL) {
        free(e);
        return NULL;
    }
    e->next = c->entries;
    c->entries = e;
    return e;
}

static void wake_waiters(sky_credential *c, sky__cred_entry *e, const char *token,
                         int64_t expires_on, const char *source, const sky_error *err)
{
    for (sky_token_request *r = c->waiting.head, *next; r; r = next) {
        next = r->next;
        if (r->entry != e)
            continue;
        if (token)
            fill_token(r, token, expires_on, source);
        else
            r->err = *err;
        make_ready(c, r);
    }
}

static void start_fetch(sky_credential *c, sky__cred_entry *e, int forced)
{
    sky__cred_fetch *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        sky_error err;
        sky_error_clear(&err);
        sky_error_set(&err, SKY_ENOMEM, "out of memory");
        wake_waiters(c, e, NULL, 0, NULL, &err);
        return;
    }
    f->c = c;
    f->entry = e;
    f->scope = e->scope;
    f->forced = forced;
    e->fetch = f;
    c->n_fetches++;
    SKY_DEBUG("auth", "%s: fetching a token for %s%s", c->ops->kind, e->scope,
              forced ? " (forced refresh)" : "");
    c->ops->start(f);
}

static void store_token(sky_credential *c, sky__cred_entry *e, const char *token,
                        int64_t expires_on, int64_t refresh_in_s, const char *source)
{
    char *copy = strdup(token);
    if (copy == NULL)
        return;
    secure_free(e->token);
    e->token = copy;
    e->expires_on = expires_on;
    e->source = source;
    e->refresh_at_ms = sky__cred_refresh_at_ms(sky__cred_now_s(c), expires_on,
                                               c->cfg.refresh_margin_s, refresh_in_s);
    e->next_try_ms = 0;
    c->succeeded = 1;
}

void sky__cred_fetch_done(sky__cred_fetch *f, const char *token, int64_t expires_on,
                          int64_t refresh_in_s, const char *source, const sky_error *err)
{
    sky_credential *c = f->c;
    sky__cred_entry *e = f->entry;
    const char *src = sky__cred_source_name(source ? source : c->ops->kind);
    sky_error fallback;
    e->fetch = NULL;
    c->n_fetches--;
    free(f);
    if (err == NULL && token) {
        store_token(c, e, token, expires_on, refresh_in_s, src);
        SKY_INFO("auth", "%s: token for %s from %s, expires in %llds", c->ops->kind, e->scope, src,
                 (long long)(expires_on - sky__cred_now_s(c)));
    } else {
        token = NULL;
        if (err == NULL) {
            sky_error_clear(&fallback);
            sky_error_set(&fallback, SKY_EAUTH, "no token");
            err = &fallback;
        }
        e->next_try_ms = sky_clock_wall_ms(c->clock) + 30000;
        SKY_INFO("auth", "%s: no token for %s: %s", c->ops->kind, e->scope, err->message);
    }
    wake_waiters(c, e, token, expires_on, src, err);
    if (c->freeing && c->n_fetches == 0)
        cred_release(c);
}

/* ---- the public interface ---- */

static int check_static(sky_credential *c, sky_token_request *r)
{
    if (c->static_expires_on && sky__cred_now_s(c) >= c->static_expires_on)
        sky_error_set(&r->err, SKY_EAUTH, "the static token has expired");
    else
        fill_token(r, c->static_token, c->static_expires_on ? c->static_expires_on : INT64_MAX,
                   "static");
    make_ready(c, r);
    return 0;
}

/* A fresh-enough cached token, or wait on the entry's fetch. */
static void route_request(sky_credential *c, sky__cred_entry *e, sky_token_request *r, int forced)
{
    int64_t now_ms = sky_clock_wall_ms(c->clock);
    int usable = e->token && !forced && now_ms < e->expires_on * 1000 - 5000;
    if (usable) {
        fill_token(r, e->token, e->expires_on, e->source);
        make_ready(c, r);
        /* Due for refresh but still valid: refresh in the background, once. */
        if (now_ms >= e->refresh_at_ms && e->fetch == NULL && now_ms >= e->next_try_ms)
            start_fetch(c, e, 0);
        return;
    }
    r->entry = e;
    list_push(&c->waiting, r);
    if (e->fetch == NULL)
        start_fetch(c, e, forced);
}

static int get_token(sky_credential *c, const char *scope, int forced, sky_token_cb cb,
                     void *user_data, sky_token_request **out_req, sky_error *err)
{
    if (c == NULL || cb == NULL || scope == NULL || *scope == '\0')
        return sky_error_set(err, SKY_EINVAL,
                             "get_token needs a credential, a scope and a callback");
    if (c->freeing || c->free_requested)
        return sky_error_set(err, SKY_ESTATE, "the credential is being freed");
    sky_token_request *r = calloc(1, sizeof(*r));
    sky__cred_entry *e = c->static_token ? NULL : find_entry(c, scope, 1);
    if (r == NULL || (e == NULL && c->static_token == NULL)) {
        free(r);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    r->c = c;
    r->cb = cb;
    r->user_data = user_data;
    sky_error_clear(&r->err);
    if (out_req)
        *out_req = r;
    if (c->static_token)
        return check_static(c, r);
    route_request(c, e, r, forced);
    return 0;
}

int sky_credential_get_token(sky_credential *c, const char *scope, sky_token_cb cb, void *user_data,
                             sky_token_request **out_req, sky_error *err)
{
    return get_token(c, scope, 0, cb, user_data, out_req, err);
}

int sky_credential_refresh_token(sky_credential *c, const char *scope, sky_token_cb cb,
                                 void *user_data, sky_token_request **out_req, sky_error *err)
{
    return get_token(c, scope, 1, cb, user_data, out_req, err);
}

int sky_credential_peek_token(sky_credential *c, const char *scope, sky_access_token *out)
{
    if (c == NULL || scope == NULL || c->freeing)
        return 0;
    if (c->static_token) {
        if (c->static_expires_on && sky__cred_now_s(c) >= c->static_expires_on)
            return 0;
        out->token = c->static_token;
        out->expires_on = c->static_expires_on ? c->static_expires_on : INT64_MAX;
        out->source = "static";
        return 1;
    }
    sky__cred_entry *e = find_entry(c, scope, 0);
    if (e == NULL || e->token == NULL || sky_clock_wall_ms(c->clock) >= e->refresh_at_ms)
        return 0;
    out->token = e->token;
    out->expires_on = e->expires_on;
    out->source = e->source;
    return 1;
}

void sky_token_request_cancel(sky_token_request *r)
{
    if (r == NULL)
        return;
    sky_credential *c = r->c;
    secure_free(r->token);
    r->token = NULL;
    sky_error_clear(&r->err);
    sky_error_set(&r->err, SKY_ECANCELED, "token request canceled");
    if (r->entry)
        make_ready(c, r);
}

const char *sky_credential_kind(const sky_credential *c)
{
    return c ? c->ops->kind : "none";
}

/* ---- construction and freeing ---- */

static void static_start(sky__cred_fetch *f)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_EINTERNAL, "static credentials never fetch");
    sky__cred_fetch_done(f, NULL, 0, 0, NULL, &e);
}

static void no_abort(sky__cred_fetch *f)
{
    (void)f;
}

static const sky__cred_ops static_ops = {"static", static_start, no_abort, NULL, NULL};

int sky__cred_new(uv_loop_t *loop, sky_http_client *http, const sky_credential_options *o,
                  const sky__cred_ops *ops, sky_credential **out, sky_error *err)
{
    sky_credential_options dflt;
    if (out)
        *out = NULL;
    if (loop == NULL || out == NULL)
        return sky_error_set(err, SKY_EINVAL, "a credential needs a loop");
    if (o == NULL) {
        sky_credential_options_init(&dflt);
        o = &dflt;
    }
    sky_credential *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    c->ops = ops;
    c->loop = loop;
    c->http = http;
    c->clock = o->clock;
    if (resolve_config(&c->cfg, o) < 0) {
        free_config(&c->cfg);
        free(c);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    *out = c;
    return 0;
}

/* Arm the loop side: called once the kind's own checks passed. */
static void cred_activate(sky_credential *c)
{
    uv_timer_init(c->loop, &c->kick);
    c->kick.data = c;
}

static void free_entries(sky_credential *c);

void sky__cred_discard(sky_credential *c)
{
    if (c == NULL)
        return;
    free_entries(c);
    if (c->ops->destroy)
        c->ops->destroy(c);
    /* every fetch has ended by now: the pipelines hold no call */
    sky_pipeline_free(c->pipe);
    sky_pipeline_free(c->probe_pipe);
    free_config(&c->cfg);
    secure_free(c->static_token);
    free(c);
}

int sky_credential_static_new(uv_loop_t *loop, const char *token, int64_t expires_on,
                              sky_credential **out, sky_error *err)
{
    if (token == NULL || *token == '\0')
        return sky_error_set(err, SKY_EINVAL, "a static credential needs a token");
    sky_credential *c = NULL;
    int rc = sky__cred_new(loop, NULL, NULL, &static_ops, &c, err);
    if (rc < 0)
        return rc;
    c->static_token = strdup(token);
    c->static_expires_on = expires_on;
    if (c->static_token == NULL) {
        sky__cred_discard(c);
        *out = NULL;
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    cred_activate(c);
    *out = c;
    return 0;
}

int sky__cred_finish_new(sky_credential *c, const char *missing, sky_credential **out,
                         sky_error *err)
{
    if (missing) {
        sky_error_set(err, SKY_EINVAL, "%s", missing);
        c->impl = NULL;
        sky__cred_discard(c);
        *out = NULL;
        return SKY_EINVAL;
    }
    cred_activate(c);
    *out = c;
    return 0;
}

static void on_kick_closed(uv_handle_t *h)
{
    sky__cred_discard(h->data);
}

static void free_entries(sky_credential *c)
{
    while (c->entries) {
        sky__cred_entry *e = c->entries;
        c->entries = e->next;
        secure_free(e->token);
        free(e->scope);
        free(e);
    }
}

static void cred_release(sky_credential *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->kick, on_kick_closed);
}

void sky_credential_free(sky_credential *c)
{
    if (c == NULL || c->freeing)
        return;
    if (c->in_deliver > 0) {
        c->free_requested = 1;
        return;
    }
    c->freeing = 1;
    uv_timer_stop(&c->kick);
    while (c->waiting.head)
        sky_token_request_cancel(c->waiting.head);
    for (sky_token_request *r = c->ready.head; r; r = r->next)
        if (r->err.code == 0) {
            secure_free(r->token);
            r->token = NULL;
            sky_error_set(&r->err, SKY_ECANCELED, "credential freed");
        }
    while (c->ready.head)
        deliver_one(c, c->ready.head);
    for (sky__cred_entry *e = c->entries; e; e = e->next)
        if (e->fetch && !e->fetch->aborted) {
            e->fetch->aborted = 1;
            c->ops->abort(e->fetch);
        }
    if (c->ops->shutdown)
        c->ops->shutdown(c);
    if (c->n_fetches == 0)
        cred_release(c);
}
