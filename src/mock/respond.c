/*
 * How the mock answers: every reply counts its status and carries a request id;
 * errors take the provider's shape; rate limits show in OpenAI's headers.
 */
#include <stdio.h>

#include "worker.h"

void sky__mock_count_status(sky__mock_worker *m, int status)
{
    if (status >= 0 && status < 600)
        ST_ADD(m->st.by_status[status], 1);
}

void sky__mock_add_request_id(sky_server_req *r, sky__mock_worker *m)
{
    char id[48];
    sky_span client_id;
    size_t len = sky__mock_format_id(id, "req_", m->index, ++m->next_id);
    sky_server_add_header(r, "x-request-id", sky_span_make(id, len));
    sky_server_add_header(r, "apim-request-id", sky_span_make(id, len));
    if (sky_server_req_header(r, "x-ms-client-request-id", &client_id))
        sky_server_add_header(r, "x-ms-client-request-id", client_id);
}

void sky__mock_respond_json(sky__mock_worker *m, sky_server_req *r, int status, json_t *body)
{
    sky__mock_count_status(m, status);
    sky__mock_add_request_id(r, m);
    sky_server_respond_json(r, status, body);
    json_decref(body);
}

/* The provider's error shape: OpenAI's {"error": {message,type,param,code}},
 * or Azure's {"error": {code, message}}. */
void sky__mock_respond_error(sky__mock_worker *m, sky_server_req *r, int azure, int status,
                             const char *type, const char *code, const char *message)
{
    json_t *err = azure ? json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message)
                        : json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", message, "type",
                                    type, "param", "code", code);
    if (err == NULL) {
        sky__mock_count_status(m, 500);
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{}"));
        return;
    }
    sky__mock_respond_json(m, r, status, err);
}

/* x-ratelimit-{limit,remaining,reset}-@p kind ("requests" or "tokens"). */
static void add_limit_headers(sky_server_req *r, const char *kind, int64_t limit, int64_t left,
                              const char *reset)
{
    char name[48], num[32];
    snprintf(name, sizeof(name), "x-ratelimit-limit-%s", kind);
    snprintf(num, sizeof(num), "%lld", (long long)limit);
    sky_server_add_header(r, name, sky_span_cstr(num));
    snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", kind);
    snprintf(num, sizeof(num), "%lld", (long long)(left < 0 ? 0 : left));
    sky_server_add_header(r, name, sky_span_cstr(num));
    snprintf(name, sizeof(name), "x-ratelimit-reset-%s", kind);
    sky_server_add_header(r, name, sky_span_cstr(reset));
}

/*
 * The headers tell of the minute, as OpenAI's and Azure's do (limit 60 and remaining 59
 * after one request under --rpm 60), while the short windows are what refuses: a
 * client may see requests left and still get a 429, as it does from Azure.
 */
void sky__mock_add_ratelimit_headers(sky__mock_worker *m, sky_server_req *r,
                                     const sky__mock_verdict *v)
{
    char dur[32];
    if (m->cfg.hide_ratelimit_headers || (m->cfg.rpm == 0 && m->cfg.tpm == 0))
        return;
    sky__mock_format_duration(v->minute_reset_ms > 0 ? v->minute_reset_ms : v->reset_ms, dur,
                              sizeof(dur));
    if (m->cfg.rpm > 0)
        add_limit_headers(r, "requests", m->cfg.rpm, v->minute_req_left, dur);
    if (m->cfg.tpm > 0)
        add_limit_headers(r, "tokens", m->cfg.tpm, v->minute_tok_left, dur);
}

void sky__mock_respond_429(sky__mock_worker *m, sky_server_req *r, const sky__mock_call *c,
                           const sky__mock_verdict *v)
{
    char num[32], msg[256];
    int64_t secs = (v->retry_ms + 999) / 1000;
    if (v->by_tokens)
        ST_ADD(m->st.rate_limited_tokens, 1);
    else
        ST_ADD(m->st.rate_limited_requests, 1);
    sky__mock_add_ratelimit_headers(m, r, v);
    if (!m->cfg.hide_ratelimit_headers) {
        snprintf(num, sizeof(num), "%lld", (long long)(secs > 0 ? secs : 1));
        sky_server_add_header(r, "retry-after", sky_span_cstr(num));
        snprintf(num, sizeof(num), "%lld", (long long)v->retry_ms);
        sky_server_add_header(r, "retry-after-ms", sky_span_cstr(num));
    }
    snprintf(msg, sizeof(msg),
             "Rate limit reached for %s: limit %lld per minute. Please retry after %lld seconds.",
             v->by_tokens ? "tokens" : "requests",
             (long long)(v->by_tokens ? m->cfg.tpm : m->cfg.rpm), (long long)(secs ? secs : 1));
    sky__mock_respond_error(m, r, c->azure, 429, v->by_tokens ? "tokens" : "requests",
                            c->azure ? "429" : "rate_limit_exceeded", msg);
}
