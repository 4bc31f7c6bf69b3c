/*
 * The AI client: an endpoint and the pipeline its calls share, and the requests that go
 * through it. Each request is one call per leg (one per model for a chat fan-out); the
 * typed parts (chat.c, embeddings.c, responses.c) build the body and read the reply.
 */
#include <stdlib.h>
#include <string.h>

#include "skyio/json.h"
#include "internal.h"

static void client_release(sky_ai_client *c);

/* ---- callbacks into the user's code ---- */

void sky__ai_enter(sky_ai_client *c)
{
    c->in_callback++;
}

void sky__ai_leave(sky_ai_client *c)
{
    if (--c->in_callback == 0 && c->free_requested && !c->closing)
        sky_ai_client_free(c);
}

/* ---- the client ---- */

void sky_ai_client_options_init(sky_ai_client_options *o)
{
    memset(o, 0, sizeof(*o));
    sky_ai_pipeline_options_init(&o->pipeline);
}

static char *dup_or_null(const char *s, int *failed)
{
    char *d = s ? strdup(s) : NULL;
    *failed |= s != NULL && d == NULL;
    return d;
}

/* A copy the client owns, so the caller's endpoint may go when the client is made. */
static int endpoint_copy(sky_ai_endpoint *dst, const sky_ai_endpoint *src)
{
    int failed = 0;
    memset(dst, 0, sizeof(*dst));
    dst->kind = src->kind;
    dst->use_entra_id = src->use_entra_id;
    dst->base_url = dup_or_null(src->base_url, &failed);
    dst->api_key = dup_or_null(src->api_key, &failed);
    dst->api_version = dup_or_null(src->api_version, &failed);
    dst->ad_token = dup_or_null(src->ad_token, &failed);
    dst->organization = dup_or_null(src->organization, &failed);
    dst->project = dup_or_null(src->project, &failed);
    if (failed)
        sky_ai_endpoint_free(dst);
    return failed ? SKY_ENOMEM : 0;
}

static int client_endpoint(sky_ai_client *c, const sky_ai_client_options *o, sky_error *err)
{
    if (o->endpoint == NULL)
        return sky_ai_endpoint_from_env_entra(&c->ep, 0, err);
    if (o->endpoint->base_url == NULL)
        return sky_error_set(err, SKY_EINVAL, "the endpoint has no base URL");
    if (endpoint_copy(&c->ep, o->endpoint) < 0)
        return sky_error_set(err, SKY_ENOMEM, "out of memory copying the endpoint");
    return 0;
}

/* The pipeline: the caller's policies, with the endpoint's key on every attempt. */
static int client_pipeline(sky_ai_client *c, uv_loop_t *loop, sky_http_client *http,
                           const sky_ai_client_options *o, sky_error *err)
{
    sky_pipeline_options po = o->pipeline;
    if (c->ep.use_entra_id && po.credential == NULL)
        return sky_error_set(err, SKY_EINVAL,
                             "Azure OpenAI without a key needs a credential (pipeline.credential)");
    po.auth = sky_ai_pipeline_auth;
    po.auth_user_data = &c->ep;
    if (po.credential && po.scope == NULL)
        po.scope = sky_ai_entra_scope(&c->ep);
    c->cred = po.credential;
    if (po.credential && (c->scope = strdup(po.scope)) == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = sky_pipeline_new(loop, http, &po, &c->pipe);
    return rc < 0 ? sky_error_set(err, rc, "could not make the pipeline") : 0;
}

int sky_ai_client_new(uv_loop_t *loop, sky_http_client *http, const sky_ai_client_options *o,
                      sky_ai_client **out, sky_error *err)
{
    sky_ai_client_options dflt;
    if (loop == NULL || http == NULL || out == NULL)
        return sky_error_set(err, SKY_EINVAL, "an AI client needs a loop and an HTTP client");
    if (o == NULL) {
        sky_ai_client_options_init(&dflt);
        o = &dflt;
    }
    sky_ai_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = client_endpoint(c, o, err);
    if (rc == 0 && ((c->json_headers = sky_headers_new()) == NULL ||
                    sky_headers_add(c->json_headers, SKY_SPAN_LIT("Content-Type"),
                                    SKY_SPAN_LIT("application/json")) < 0))
        rc = sky_error_set(err, SKY_ENOMEM, "out of memory");
    if (rc == 0)
        rc = client_pipeline(c, loop, http, o, err);
    if (rc < 0) {
        client_release(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void client_release(sky_ai_client *c)
{
    sky_headers_free(c->json_headers);
    sky_ai_endpoint_free(&c->ep);
    free(c->scope);
    free(c);
}

void sky_ai_client_free(sky_ai_client *c)
{
    if (c == NULL || c->closing)
        return;
    if (c->in_callback > 0) {
        c->free_requested = 1;
        return;
    }
    c->closing = 1;
    sky__ai_first_token_drop(c);
    /* every call reports now, canceled, and with it every request */
    sky_pipeline_free(c->pipe);
    client_release(c);
}

sky_pipeline *sky_ai_client_pipeline(sky_ai_client *c)
{
    return c->pipe;
}

const sky_ai_endpoint *sky_ai_client_endpoint(const sky_ai_client *c)
{
    return &c->ep;
}

/* ---- requests ---- */

sky_ai_request *sky__ai_request_new(sky_ai_client *c, ai_kind kind, const char *const *models,
                                    size_t n_legs)
{
    sky_ai_request *r = calloc(1, sizeof(*r) + n_legs * sizeof(ai_leg));
    if (r == NULL)
        return NULL;
    r->client = c;
    r->kind = kind;
    r->n_legs = n_legs;
    for (size_t i = 0; i < n_legs; i++) {
        ai_leg *leg = &r->legs[i];
        leg->req = r;
        leg->index = i;
        leg->prompt_tokens = leg->completion_tokens = -1;
        sky_buf_init(&leg->text, 64u * 1024u * 1024u);
        if ((leg->model = strdup(models[i])) == NULL) {
            sky__ai_request_free(r);
            return NULL;
        }
    }
    return r;
}

void sky__ai_request_free(sky_ai_request *r)
{
    for (size_t i = 0; i < r->n_legs; i++) {
        free(r->legs[i].model);
        sky_buf_free(&r->legs[i].text);
        sky_sse_parser_free(&r->legs[i].parser);
    }
    free(r);
}

static void report(ai_leg *leg, const sky_call_result *res, const sky_error *err)
{
    switch (leg->req->kind) {
    case AI_CHAT:
        sky__ai_chat_done(leg, res, err);
        break;
    case AI_EMBED:
        sky__ai_embed_done(leg, res, err);
        break;
    case AI_RESPOND:
        sky__ai_respond_done(leg, res, err);
        break;
    }
}

static void on_leg_done(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    ai_leg *leg = ud;
    sky_ai_request *r = leg->req;
    sky_ai_client *c = r->client;
    (void)call;
    leg->call = NULL;
    sky__ai_enter(c);
    if (!r->silent)
        report(leg, res, err);
    if (--r->n_open == 0)
        sky__ai_request_free(r);
    sky__ai_leave(c);
}

static int leg_start(ai_leg *leg, const char *path, json_t *body, int64_t est_tokens,
                     sky_error *err)
{
    sky_ai_request *r = leg->req;
    sky_call_options o;
    sky_buf url;
    char *text = NULL;
    sky_buf_init(&url, 8192);
    int rc = sky_ai_url(&r->client->ep, path, leg->model, &url);
    if (rc < 0)
        sky_error_set(err, rc, "no URL for %s with model '%.100s'", path, leg->model);
    if (rc == 0 && (json_object_set_new(body, "model", json_string(leg->model)) < 0 ||
                    (text = sky_json_dump(body, NULL)) == NULL))
        rc = sky_error_set(err, SKY_ENOMEM, "out of memory building the request");
    if (rc == 0) {
        sky_call_options_init(&o);
        o.url = url.data;
        o.headers = r->client->json_headers;
        o.body = sky_span_cstr(text);
        o.est_tokens = est_tokens;
        o.require_json = !r->stream; /* an AI endpoint answers JSON, and garble is worthless */
        o.want_json = !r->stream;    /* the typed result is read from the tree */
        o.on_body = r->stream ? sky__ai_chat_on_body : NULL;
        o.on_done = on_leg_done;
        o.user_data = leg;
        rc = sky_call_start(r->client->pipe, &o, &leg->call, err);
    }
    free(text);
    sky_buf_free(&url);
    return rc;
}

int sky__ai_request_start(sky_ai_request *r, const char *path, json_t *body, int64_t est_tokens,
                          sky_error *err)
{
    for (size_t i = 0; i < r->n_legs; i++) {
        int rc = leg_start(&r->legs[i], path, body, est_tokens, err);
        if (rc < 0) {
            /* none of the started ones may report now: they go quietly */
            r->silent = 1;
            for (size_t j = 0; j < i; j++)
                sky_call_cancel(r->legs[j].call);
            if (r->n_open == 0)
                sky__ai_request_free(r);
            return rc;
        }
        r->n_open++;
    }
    return 0;
}

void sky_ai_request_cancel(sky_ai_request *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_legs; i++)
        if (r->legs[i].call)
            sky_call_cancel(r->legs[i].call);
}

int sky__ai_merge_params(json_t *body, const json_t *params)
{
    if (params == NULL)
        return 0;
    if (!json_is_object(params))
        return SKY_EINVAL;
    json_t *copy = json_deep_copy(params); /* the caller's stays untouched */
    int rc = copy ? json_object_update_missing(body, copy) : -1;
    json_decref(copy);
    return rc < 0 ? SKY_ENOMEM : 0;
}

const char *sky__ai_str(const char *s)
{
    return s ? s : "";
}
