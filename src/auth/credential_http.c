/*
 * Token requests over the pipeline, so that the project keeps one retry loop.
 *
 * Layers: the credential interface (the cache, the shared refresh: credential.c) sits below
 * the pipeline, which uses it for bearer tokens. The kinds that fetch tokens over HTTP
 * (Entra ID, managed identity) send through a pipeline of their own, as azure-identity's
 * credentials do over azure-core's: a pipeline with no credential and no auth callback on
 * it, so a token request never asks for a token and nothing recurses. It runs no rate
 * limit, concurrency limit or breaker either: token requests are rare, and one that failed
 * should not keep the next from trying. What is left is the retry with the service's own
 * list (also_retry): IMDS retries 404 and 410 besides 429 and 5xx.
 */
#include <stdlib.h>

#include "credential_internal.h"

int sky__cred_pipeline_new(sky_credential *c, const sky__token_policy *tp, sky_pipeline **out,
                           sky_error *err)
{
    sky_pipeline_options po;
    sky_pipeline_options_init(&po);
    po.retry.max_retries = tp->max_retries;
    po.retry.base_ms = (uint64_t)tp->retry_base_ms;
    po.retry.max_server_wait_ms = 60000; /* a Retry-After longer than a minute is not waited */
    po.retry.also_retry = tp->also_retry;
    po.attempt_timeout_ms = tp->attempt_timeout_ms;
    po.use_rate_limit = 0;
    po.use_concurrency = 0;
    po.use_breaker = 0;
    po.classifier = NULL; /* the default is OpenAI's rules */
    int rc = sky_pipeline_new(c->loop, c->http, &po, out);
    return rc < 0 ? sky_error_set(err, rc, "cannot set up the token requests' pipeline") : 0;
}

int sky__cred_finish_new_http(sky_credential *c, const char *missing, const sky__token_policy *tp,
                              sky_credential **out, sky_error *err)
{
    if (missing == NULL) {
        int rc = sky__cred_pipeline_new(c, tp, &c->pipe, err);
        if (rc < 0) {
            sky__cred_discard(c);
            *out = NULL;
            return rc;
        }
    }
    return sky__cred_finish_new(c, missing, out, err);
}

int sky__cred_call(sky_pipeline *p, const char *url, const sky_headers *h, sky_span body,
                   sky_call_done_cb on_done, void *ud, sky_call **out, sky_error *err)
{
    sky_call_options co;
    sky_call_options_init(&co);
    co.method = body.len ? "POST" : "GET";
    co.url = url;
    co.headers = h;
    co.body = body;
    co.max_response_bytes = 1u << 20;
    co.on_done = on_done;
    co.user_data = ud;
    return sky_call_start(p, &co, out, err);
}

void sky__cred_read_reply(const sky_credential *c, const sky_call_result *res, const sky_error *err,
                          const char *what, const char *secret, char **token, int64_t *expires_on,
                          int64_t *refresh_in, sky_error *e)
{
    sky_error_clear(e);
    if (err && err->code != SKY_EHTTP) {
        sky__cred_transport_error(err, what, e);
    } else if (res->status != 200) {
        sky_http_response r = {res->status, res->headers, res->body, 0, 0, 0};
        sky__cred_reply_error(&r, secret, e);
    } else {
        sky__cred_parse_token_json(c, res->body, token, expires_on, refresh_in, e);
    }
}
