/*
 * Key Vault operations: each a call of the client's pipeline with a bearer token for the
 * scope the vault's challenge named. The first op goes without one; its 401 names the
 * scope, the credential gives the token, and the op is sent again (once). Later ops get a
 * token first (the credential caches it). Values and tokens are wiped when done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"
#include "../op_list.h"

#define MAX_REPLY (4u * 1024 * 1024)

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void op_free(sky_keyvault_op *op)
{
    free(op->method);
    free(op->url);
    free(op->what);
    wipe_free(op->body);
    wipe_free(op->auth);
    free(op);
}

static void op_unlink(sky_keyvault_op *op)
{
    sky_keyvault_client *c = op->c;
    SKY__OP_LIST_REMOVE(c->ops, op);
}

/* The op is over: report once, then free it (the reply's value is wiped with it). */
static void op_report(sky_keyvault_op *op, int status, sky__kv_read *rd, const sky_error *err)
{
    sky_keyvault_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.status = status;
    if (rd && op->kind == SKY__KV_LIST) {
        rep.items = rd->items;
        rep.count = rd->count;
        rep.next_link = rd->next_link;
    } else if (rd && rd->count > 0) {
        rep.secret = &rd->items[0];
    }
    op_unlink(op);
    op->cb(op, &rep, err, op->user_data);
    op_free(op);
}

static void fail(sky_keyvault_op *op, int status, const sky_error *err)
{
    op_report(op, status, NULL, err);
}

void sky_keyvault_op_cancel(sky_keyvault_op *op)
{
    if (op == NULL)
        return;
    if (op->call)
        sky_call_cancel(op->call);
    else if (op->treq)
        sky_token_request_cancel(op->treq);
}

/* ---- sending ---- */

static void on_call_done(sky_call *call, const sky_call_result *res, const sky_error *err,
                         void *ud);

static int send_op(sky_keyvault_op *op, sky_error *err)
{
    sky_headers *h = sky_headers_new();
    int rc = h ? 0 : SKY_ENOMEM;
    if (rc == 0 && op->auth)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_span_cstr(op->auth));
    if (rc == 0 && op->body)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-Type"), SKY_SPAN_LIT("application/json"));
    if (rc != 0) {
        sky_headers_free(h);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    sky_call_options co;
    sky_call_options_init(&co);
    co.method = op->method;
    co.url = op->url;
    co.headers = h;
    co.body = sky_span_cstr(op->body);
    co.max_response_bytes = MAX_REPLY;
    co.on_done = on_call_done;
    co.user_data = op;
    rc = sky_call_start(op->c->pipe, &co, &op->call, err);
    sky_headers_free(h); /* copied by the call; the token in it is the pipeline's to drop */
    return rc;
}

static void on_token(sky_token_request *req, const sky_access_token *tok, const sky_error *err,
                     void *ud)
{
    sky_keyvault_op *op = ud;
    sky_error e;
    (void)req;
    op->treq = NULL;
    sky_error_clear(&e);
    if (op->c == NULL) { /* reported when the client was freed */
        op_free(op);
        return;
    }
    if (err) {
        sky_error_set(&e, err->code == SKY_ECANCELED ? SKY_ECANCELED : SKY_EAUTH,
                      "%s: no token for the vault: %s", op->what, err->message);
        fail(op, 0, &e);
        return;
    }
    wipe_free(op->auth);
    size_t n = strlen(tok->token) + 8;
    op->auth = malloc(n);
    if (op->auth)
        snprintf(op->auth, n, "Bearer %s", tok->token);
    op->token_tried = 1;
    if (op->auth == NULL)
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
    if (op->auth == NULL || send_op(op, &e) != 0)
        fail(op, 0, &e);
}

/* A token for the client's scope (a fresh one with @p refresh), then the op goes. */
static int get_token(sky_keyvault_op *op, int refresh, sky_error *err)
{
    sky_keyvault_client *c = op->c;
    return refresh
               ? sky_credential_refresh_token(c->o.credential, c->scope, on_token, op, &op->treq,
                                              err)
               : sky_credential_get_token(c->o.credential, c->scope, on_token, op, &op->treq, err);
}

/* A 401: the first names the scope (the op goes again with a token for it); after a
 * token was refused once, it is final. 1 when the op goes on. */
static int answer_challenge(sky_keyvault_op *op, const sky_call_result *res, sky_error *e)
{
    sky_keyvault_client *c = op->c;
    char *scope = NULL;
    if (op->challenged)
        return 0;
    op->challenged = 1;
    const char *www = sky_headers_get(res->headers, "WWW-Authenticate");
    if (sky__kv_challenge_scope(c, www, &scope, e) != 0)
        return 0;
    int refresh = op->token_tried && c->scope && strcmp(c->scope, scope) == 0;
    free(c->scope);
    c->scope = scope;
    return get_token(op, refresh, e) == 0;
}

static void on_call_done(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    sky_keyvault_op *op = ud;
    sky_error e;
    sky__kv_read rd;
    (void)call;
    op->call = NULL;
    if (op->c == NULL) {
        op_free(op);
        return;
    }
    sky_error_clear(&e);
    if (res->status == 401 && answer_challenge(op, res, &e))
        return;
    if (err && e.code == 0) {
        const char *msg = err->message;
        const char *colon = strncmp(msg, "HTTP ", 5) == 0 ? strstr(msg, ": ") : NULL;
        sky_error_set(&e, err->code, "%s: %s", op->what, colon ? colon + 2 : msg);
        e.http_status = err->http_status;
        e.retryable = err->retryable;
        sky_error_set_service(&e, err->service_code);
    }
    if (e.code) {
        fail(op, res->status, &e);
        return;
    }
    memset(&rd, 0, sizeof(rd));
    int rc = sky__kv_read_reply(op->kind, res->body, &rd);
    if (rc != 0)
        sky_error_set(&e, rc, "%s: the reply could not be read", op->what);
    op_report(op, res->status, rc == 0 ? &rd : NULL, rc ? &e : NULL);
    sky__kv_read_free(&rd);
}

/* ---- starting ---- */

static sky_keyvault_op *op_new(sky_keyvault_client *c, int kind, const char *method,
                               const char *url, const char *what, const char *body)
{
    sky_keyvault_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->c = c;
    op->kind = kind;
    op->method = strdup(method);
    op->url = strdup(url);
    op->what = strdup(what);
    op->body = body ? strdup(body) : NULL;
    if (!op->method || !op->url || !op->what || (body && !op->body)) {
        op_free(op);
        return NULL;
    }
    return op;
}

int sky__kv_start(sky_keyvault_client *c, int kind, const char *method, const char *url,
                  const char *what, const char *body, sky_keyvault_done_cb cb, void *user_data,
                  sky_keyvault_op **out_op, sky_error *err)
{
    if (c == NULL || cb == NULL)
        return sky_error_set(err, SKY_EINVAL, "key vault: a client and a callback are required");
    sky_keyvault_op *op = op_new(c, kind, method, url, what, body);
    if (op == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    op->cb = cb;
    op->user_data = user_data;
    /* no scope yet: the vault's challenge names it */
    int rc = c->scope ? get_token(op, 0, err) : send_op(op, err);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    SKY__OP_LIST_PUSH(c->ops, op);
    if (out_op)
        *out_op = op;
    return 0;
}

/* Each op still running reports SKY_ECANCELED now and is left to its call or token
 * request, which end with the pipeline (or are cancelled) and free it then. */
void sky_keyvault_client_free(sky_keyvault_client *c)
{
    if (c == NULL)
        return;
    sky_error e;
    while (c->ops) {
        sky_keyvault_op *op = c->ops;
        sky_keyvault_reply rep;
        memset(&rep, 0, sizeof(rep));
        c->ops = op->next;
        op->c = NULL;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ECANCELED, "key vault: the client was freed");
        op->cb(op, &rep, &e, op->user_data);
        if (op->treq)
            sky_token_request_cancel(op->treq);
    }
    sky_pipeline_free(c->pipe);
    free(c->vault_url);
    free(c->host);
    free(c->scope);
    free(c);
}
