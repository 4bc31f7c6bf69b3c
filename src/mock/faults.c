/*
 * Every way the mock fails on purpose: faults drawn per call at the configured rates
 * (those answered at once here; a stream's half-way ones in stream.c),
 * --overload-rps, --poison and --refuse-status.
 */
#include <stdlib.h>

#include "skyio/json.h"
#include "worker.h"

const char *const sky__mock_fault_names[SKY__FAULT_COUNT] = {
    "http_500", "http_502",  "http_503",   "reset",        "hang",
    "cut",      "malformed", "stream_cut", "stream_error", "content_filter",
};

static int draw_fault(sky__mock_worker *m, int stream)
{
    const sky_mock_faults *f = &m->cfg.faults;
    const double rates[SKY__FAULT_COUNT] = {
        f->http_500, f->http_502,  f->http_503,   f->reset,        f->hang,
        f->cut,      f->malformed, f->stream_cut, f->stream_error, f->content_filter};
    double total = 0;
    for (int i = 0; i < SKY__FAULT_COUNT; i++)
        total += rates[i];
    if (total <= 0)
        return SKY__FAULT_NONE;
    double x = sky__mock_rand01(&m->rng), acc = 0;
    for (int i = 0; i < SKY__FAULT_COUNT; i++) {
        acc += rates[i];
        if (x < acc) {
            if ((i == SKY__FAULT_STREAM_CUT || i == SKY__FAULT_STREAM_ERROR ||
                 i == SKY__FAULT_CONTENT_FILTER) &&
                !stream)
                return SKY__FAULT_NONE;
            if (i == SKY__FAULT_MALFORMED && stream)
                return SKY__FAULT_NONE;
            return i;
        }
    }
    return SKY__FAULT_NONE;
}

/* Answer with the fault @p c->fault; returns 1 when it answered (or chose not to). */
static int apply_fault(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    static const char malformed[] = "{\"id\": \"chatcmpl-broken\", \"choices\": [{\"index\": 0, ";
    switch (c->fault) {
    case SKY__FAULT_500:
    case SKY__FAULT_502:
    case SKY__FAULT_503: {
        int status = c->fault == SKY__FAULT_500 ? 500 : c->fault == SKY__FAULT_502 ? 502 : 503;
        sky__mock_respond_error(
            m, r, c->azure, status, "server_error",
            c->azure ? "InternalServerError" : "server_error",
            "The server had an error while processing your request (injected fault).");
        return 1;
    }
    case SKY__FAULT_RESET:
        sky_server_reset(r);
        return 1;
    case SKY__FAULT_HANG:
        return 1; /* never answer: the request lives until the client leaves */
    case SKY__FAULT_MALFORMED:
        sky__mock_count_status(m, 200);
        sky__mock_add_request_id(r, m);
        sky_server_respond(r, 200, "application/json",
                           sky_span_make(malformed, sizeof(malformed) - 1));
        return 1;
    default:
        return 0;
    }
}

int sky__mock_fault_answered(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    c->fault = draw_fault(m, c->stream);
    if (c->fault != SKY__FAULT_NONE)
        ST_ADD(m->st.faults[c->fault], 1);
    return apply_fault(m, r, c);
}

void sky__mock_send_cut(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    json_t *body = sky__mock_call_body(c);
    size_t len = 0;
    char *text = body ? sky_json_dump(body, &len) : NULL;
    json_decref(body);
    if (text == NULL) {
        sky_server_abort(r);
        return;
    }
    sky__mock_count_status(m, 200);
    sky__mock_add_request_id(r, m);
    sky_server_stream_start(r, 200, "application/json", (int64_t)len);
    (void)sky_server_stream_write(r, sky_span_make(text, len / 2), 0);
    sky_server_abort(r);
    free(text);
}

/* nginx's limit_req without delay: a bucket of burst + 1 calls, refilled at the rate. */
int sky__mock_overloaded(sky__mock_worker *m)
{
    sky_mock *o = m->owner;
    double rate = m->cfg.overload_rps, cap = (double)m->cfg.overload_burst + 1.0;
    uint64_t now = sky__mock_now_ms(m);
    uv_mutex_lock(&o->limiter_lock);
    if (o->overload_at_ms == 0)
        o->overload_tokens = cap;
    else if (now > o->overload_at_ms)
        o->overload_tokens += rate * (double)(now - o->overload_at_ms) / 1000.0;
    if (o->overload_tokens > cap)
        o->overload_tokens = cap;
    o->overload_at_ms = now ? now : 1;
    int refused = o->overload_tokens < 1.0;
    if (!refused)
        o->overload_tokens -= 1.0;
    uv_mutex_unlock(&o->limiter_lock);
    return refused;
}

void sky__mock_respond_overloaded(sky__mock_worker *m, sky_server_req *r)
{
    static const char page[] = "<html><body><h1>503 Service Temporarily Unavailable</h1>"
                               "<p>too many requests (skyio mock --overload-rps)</p></body></html>";
    static const char anthropic[] = "{\"type\":\"error\",\"error\":{\"type\":"
                                    "\"overloaded_error\",\"message\":\"Overloaded\"}}";
    int status = m->cfg.overload_status;
    ST_ADD(m->st.overloaded, 1);
    sky__mock_count_status(m, status);
    if (status == 529)
        sky_server_respond(r, 529, "application/json",
                           sky_span_make(anthropic, sizeof(anthropic) - 1));
    else
        sky_server_respond(r, status, "text/html", sky_span_make(page, sizeof(page) - 1));
}

/* Whether the body hashed to @p seed is one of the --poison fraction that always fail. */
int sky__mock_poisoned(const sky__mock_worker *m, uint64_t seed)
{
    uint64_t h = seed ^ 0x9e3779b97f4a7c15ull;
    return m->cfg.poison > 0 && (double)(sky__mock_rand(&h) >> 11) * 0x1.0p-53 < m->cfg.poison;
}

/* --refuse-status: what a provider answers every request of an account it will not serve. */
int sky__mock_refuse_account(sky__mock_worker *m, sky_server_req *r, int azure)
{
    int status = m->cfg.refuse_status;
    if (status == 0)
        return 0;
    const char *code = m->cfg.refuse_code ? m->cfg.refuse_code
                       : status == 403    ? "PermissionDenied"
                       : status == 429    ? "insufficient_quota"
                                          : "refused";
    const char *msg = strcmp(code, "insufficient_quota") == 0
                          ? "You exceeded your current quota, please check your plan and "
                            "billing details."
                      : status == 403 ? "The principal lacks the required data action to "
                                        "perform this operation."
                                      : "This account is refused (skyio mock --refuse-status).";
    sky__mock_respond_error(m, r, azure, status, status == 429 ? code : "invalid_request_error",
                            code, msg);
    return 1;
}
