/*
 * A batch's requests: an input line into a call (or into the record of a bad line), the
 * call's reply read once, and its end into the record of its outcome, or into a stop when
 * the provider refuses the account or the endpoint was never reached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/ai.h"
#include "skyio/json.h"
#include "skyio/log.h"
#include "batch_internal.h"

typedef sky__batch_item item;

/* ---- bad lines ---- */

static int already_done(const sky_batch *b, const char *id)
{
    return b->store->is_done(b->store, id);
}

/*
 * A bad line is recorded under its own custom_id when it has a valid one that no earlier
 * line took, so a reader can join it to its input. Otherwise (no id, or a duplicate) it
 * gets an id of its own, "skyio-<kind>-line-N". Either way a rerun knows it is recorded
 * and the output holds every id once.
 */
static void record_input_error(sky_batch *b, const sky_batchline_error *le, const char *kind)
{
    char id[SKY_BATCHLINE_CUSTOM_ID_MAX + 1], hex[32];
    sky_buf line;
    int own = kind == NULL && le->has_custom_id;
    if (own)
        memcpy(id, le->custom_id, le->custom_id_len + 1);
    else
        snprintf(id, sizeof(id), "skyio-%s-line-%llu", kind ? kind : "input",
                 (unsigned long long)le->line);
    if (already_done(b, id))
        return;
    sky_batchline_error e = *le;
    e.has_custom_id = 1;
    e.custom_id_len = strlen(id);
    memcpy(e.custom_id, id, e.custom_id_len + 1);
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)le->line);
    sky_buf_init(&line, 1u << 20);
    if (sky_batchline_record_input_error(&line, hex, &e) == 0 &&
        sky__batch_record(b, 1, id, &line) == 0)
        b->input_errors++;
    sky_buf_free(&line);
}

/* A line that is not a request: under its custom_id when it has one no line took before. */
static void record_bad_line(sky_batch *b, const sky_batchline_error *le)
{
    int added = le->has_custom_id
                    ? sky_idset_add(b->seen, sky_span_make(le->custom_id, le->custom_id_len))
                    : 0;
    if (added < 0)
        b->fatal = 1;
    else
        record_input_error(b, le, added ? NULL : "input");
}

static void record_too_long(sky_batch *b, uint64_t line_no)
{
    sky_batchline_error le;
    sky_batchline_error_too_long(&le, line_no, &b->o.line);
    record_input_error(b, &le, "input");
}

/* A line whose request cannot be sent where the endpoint is (Azure without a model). */
static void record_unsendable(sky_batch *b, const sky_batchline_request *req, int rc)
{
    sky_batchline_error le;
    memset(&le, 0, sizeof(le));
    le.line = req->line;
    if (b->routes)
        sky_error_set(&le.err, SKY_EINVAL, "line %llu: cannot send: no deployment takes model '%s'",
                      (unsigned long long)req->line, req->model ? req->model : "(none)");
    else
        sky_error_set(&le.err, SKY_EINVAL, "line %llu: cannot send: %s",
                      (unsigned long long)req->line,
                      rc == SKY_EINVAL      ? "Azure needs body.model to name the deployment"
                      : rc == SKY_ENOTFOUND ? "Azure OpenAI has no such endpoint"
                                            : sky_strerror(rc));
    sky_error_set_service(&le.err, "invalid_request");
    /* the line's custom_id is valid and taken by this line: the record goes under it */
    le.has_custom_id = 1;
    le.custom_id_len = strlen(req->custom_id);
    memcpy(le.custom_id, req->custom_id, le.custom_id_len + 1);
    record_input_error(b, &le, NULL);
}

/* ---- starting ---- */

static int start_call(sky_batch *b, const sky_batchline_request *req, const sky_buf *url, item *it,
                      sky_error *err)
{
    sky_call_options co;
    sky_call_options_init(&co);
    co.method = "POST";
    co.url = url->data;
    co.headers = b->json_headers;
    co.body = sky_span_make(req->body, req->body_len);
    co.est_tokens = (int64_t)req->token_estimate;
    co.check_reply = sky__batch_check_reply;
    co.on_done = sky__batch_call_done;
    co.user_data = it;
    return sky_call_start(b->pipe, &co, NULL, err);
}

/* A request that could not be started for this run's own reason (memory, a pipeline that
 * will not take the call): stop, and the next run sends it. */
static void cannot_start(sky_batch *b, int rc, const sky_error *err)
{
    sky_error e;
    sky_error_clear(&e);
    if (err->code)
        e = *err;
    else
        sky_error_set(&e, rc, "%s", sky_strerror(rc));
    sky__batch_fault(b, SKY_BATCH_FAULT_START, &e, NULL);
    b->fatal = 1;
    b->stopping = 1;
    b->left_undone++;
}

static void item_free(item *it)
{
    sky__batch_routed_free(it->routed);
    free(it->custom_id);
    free(it);
}

/* With deployments: the route sends it (batch_route.c). */
static void start_routed(sky_batch *b, sky_batchline_request *req, item *it)
{
    sky_error err;
    sky_error_clear(&err);
    it->b = b;
    int rc = b->routes ? sky__batch_route_start(it, req, &err) : SKY_ESTATE;
    if (rc == 0) {
        it->custom_id = req->custom_id; /* the item owns it now */
        req->custom_id = NULL;
        b->in_flight++;
        return;
    }
    free(it);
    if (rc == SKY_ENOTFOUND)
        record_unsendable(b, req, rc);
    else
        cannot_start(b, rc, &err);
}

static void start_request(sky_batch *b, sky_batchline_request *req)
{
    sky_buf url;
    sky_error err;
    item *it = calloc(1, sizeof(*it));
    if (it && b->o.deployments) {
        start_routed(b, req, it);
        return;
    }
    sky_buf_init(&url, 8192);
    sky_error_clear(&err);
    int rc = it ? sky_ai_url(b->o.endpoint, req->url, req->model, &url) : SKY_ENOMEM;
    /* only what the line says can make it unsendable; anything else is this run's trouble */
    int lines_fault = rc == SKY_EINVAL || rc == SKY_ENOTFOUND;
    if (rc == 0) {
        it->b = b;
        it->custom_id = req->custom_id; /* the item owns it now */
        rc = b->pipe ? start_call(b, req, &url, it, &err) : SKY_ESTATE;
        if (rc < 0)
            it->custom_id = NULL; /* still the request's, freed with it */
    }
    if (rc == 0) {
        req->custom_id = NULL;
        b->in_flight++;
    } else if (lines_fault) {
        record_unsendable(b, req, rc);
    } else {
        cannot_start(b, rc, &err);
    }
    if (rc < 0)
        free(it);
    sky_buf_free(&url);
}

void sky__batch_handle_line(sky_batch *b, const sky_batch_source_line *line)
{
    sky_batchline_request req;
    sky_batchline_error le;
    if (line->too_long) {
        record_too_long(b, line->number);
        return;
    }
    memset(&req, 0, sizeof(req));
    int rc = b->o.text ? sky_batchline_text_parse(line->text, line->number, &b->o.line, &req, &le)
                       : sky_batchline_parse(line->text, line->number, &b->o.line, &req, &le);
    if (rc == SKY_BATCHLINE_BLANK)
        return;
    if (rc < 0) {
        if (le.err.code == SKY_ENOMEM)
            b->fatal = 1;
        else
            record_bad_line(b, &le);
        return;
    }
    sky_span id = sky_span_cstr(req.custom_id);
    int added = sky_idset_add(b->seen, id);
    if (added == 0) {
        sky_batchline_error_duplicate(&le, line->number, 0, id);
        record_input_error(b, &le, "duplicate");
    } else if (added < 0) {
        b->fatal = 1;
    } else if (already_done(b, req.custom_id)) {
        b->skipped++;
    } else {
        start_request(b, &req);
    }
    sky_batchline_request_free(&req);
}

/* ---- the reply ---- */

/* A usage count under its chat name, or else its Responses API name; -1 when neither. */
static int64_t usage_tokens(const json_t *counts, const char *chat_key, const char *responses_key)
{
    json_t *v = json_object_get(counts, chat_key);
    if (v == NULL)
        v = json_object_get(counts, responses_key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* The few replies the scan leaves to jansson (a rare escape, a long number, deep nesting). */
static int check_by_tree(const sky_reply *r, item *it)
{
    json_t *j = NULL;
    int rc = sky_json_parse(r->body, &j, NULL);
    if (rc < 0)
        return rc;
    json_t *u = json_object_get(j, "usage");
    it->usage.prompt_tokens = usage_tokens(u, "prompt_tokens", "input_tokens");
    it->usage.completion_tokens = usage_tokens(u, "completion_tokens", "output_tokens");
    it->usage.total_tokens = usage_tokens(u, "total_tokens", "total_tokens");
    it->too_deep = sky_json_deeper_than(j, SKY_JSON_MAX_DEPTH - 8);
    json_decref(j);
    return 0;
}

/*
 * A 2xx reply, read once before the pipeline decides on it: whether it is JSON (a reply that
 * is not is asked for once more), what it used (for the rate limiter and the summary), and
 * whether it nests too deep to record. One scan, no tree: the record takes its bytes.
 */
int sky__batch_check_reply(sky_call *call, const sky_reply *reply, void *ud)
{
    item *it = ud;
    it->too_deep = 0;
    /* the record nests the reply two deeper, and the store reads it back with jansson */
    int rc = sky__ai_reply_usage(reply->body, SKY_JSON_MAX_DEPTH - 8, &it->usage);
    if (rc == SKY_EJSON)
        rc = check_by_tree(reply, it);
    if (rc == 0 && it->usage.total_tokens >= 0)
        sky_call_set_usage(call, it->usage.total_tokens);
    return rc;
}

/* ---- the end of a request ---- */

static int account_refusal(const sky_call_result *res, const sky_error *err)
{
    if (err == NULL || err->code != SKY_EHTTP)
        return SKY_BATCH_REFUSED_NONE;
    if (res->status == 401)
        return SKY_BATCH_REFUSED_CREDENTIALS;
    if (res->status == 403)
        return SKY_BATCH_REFUSED_ACCESS;
    if (res->status == 429 && strcmp(err->service_code, "insufficient_quota") == 0)
        return SKY_BATCH_REFUSED_QUOTA;
    return SKY_BATCH_REFUSED_NONE;
}

/*
 * A 401 (wrong key or token), a 403 (the identity lacks a role, or the network is not
 * allowed) or a 429 insufficient_quota (no credit left) holds for every request alike:
 * recording it for each line of a large input would fill the output with failures the next
 * run skips, and keep sending what is refused. Stop instead, as a graceful stop: what is
 * waiting is not sent, and nothing refused is recorded, so the run after the account is
 * fixed does it all.
 */
static void refuse(sky_batch *b, int why, const sky_error *err)
{
    static const char *const said[] = {"", "refused the credentials", "denied access",
                                       "says the account is out of quota"};
    static const char *const advice[] = {
        "", "fix the key or token",
        ("give the identity access (for Azure OpenAI with Entra ID, the Cognitive Services "
         "OpenAI User role) or check the network rules"),
        "check the plan and billing"};
    sky_batch_event ev;
    sky_error e = *err;
    sky_buf msg;
    if (b->refused)
        return;
    b->refused = why;
    /* no secret in what is reported: a reply may echo the key it refused */
    sky_buf_init(&msg, 4096);
    int rc = sky_redact(sky_span_cstr(err->message), &msg);
    snprintf(e.message, sizeof(e.message), "%s", rc == 0 && msg.len ? msg.data : "");
    sky_buf_free(&msg);
    memset(&ev, 0, sizeof(ev));
    ev.kind = SKY_BATCH_EVENT_REFUSED;
    ev.refusal = why;
    ev.said = said[why];
    ev.advice = advice[why];
    ev.error = &e;
    sky__batch_emit(b, &ev);
    (void)sky__batch_cancel_waiting(b);
    b->stopping = 1;
}

/*
 * The request id the provider gave its reply (OpenAI's x-request-id, which Azure sends as
 * apim-request-id too): the one its support asks for, and what OpenAI's own batch output
 * records. Ours (sent to Azure as x-ms-client-request-id) when the reply named none.
 */
static const char *provider_request_id(const sky_call_result *res)
{
    const char *id = res->headers ? sky_headers_get(res->headers, "x-request-id") : NULL;
    if (id == NULL || id[0] == '\0')
        id = res->headers ? sky_headers_get(res->headers, "apim-request-id") : NULL;
    return id && id[0] ? id : res->request_id;
}

static int build_record(sky_buf *line, const item *it, const sky_call_result *res,
                        const sky_error *err, const char *hex)
{
    const char *rid = provider_request_id(res);
    if (err == NULL) {
        /* check_reply has read a success: its bytes are JSON that jansson reads back */
        return sky_batchline_record_success_raw(line, hex, sky_span_cstr(it->custom_id),
                                                res->status, rid, res->body);
    }
    /* a reply too large or too deep to record goes without its body; so does an error reply
     * over 1 MiB (as a JSON string, control bytes grow sixfold) */
    sky_batchline_response r = {res->status, rid, res->body};
    int keep = res->status && err->code != SKY_ETOOBIG && res->body.len <= ((size_t)1 << 20);
    return sky_batchline_record_failure(
        line, hex, sky_span_cstr(it->custom_id), keep ? &r : NULL,
        err->service_code[0] ? err->service_code : sky_err_name(err->code), err->message);
}

/* The result's record, into the store; 0 once written or queued. */
static int record_result(sky_batch *b, const item *it, const sky_call_result *res,
                         const sky_error *err)
{
    sky_buf line;
    char hex[40];
    /* the record's id: our request id's hex digits, without the dashes */
    size_t n = 0;
    for (size_t i = 0; i < 32 && res->request_id[i]; i++)
        if (res->request_id[i] != '-')
            hex[n++] = res->request_id[i];
    hex[n] = '\0';
    sky_buf_init(&line, 128u * 1024u * 1024u);
    int rc = build_record(&line, it, res, err, hex);
    rc = rc == 0 ? sky__batch_record(b, err != NULL, it->custom_id, &line) : -1;
    sky_buf_free(&line);
    return rc;
}

/* A reply that nests too deep to record (check_reply found it) is a failure. */
static int too_deep(const item *it, const sky_call_result *res, sky_error *out)
{
    if (!it->too_deep)
        return 0;
    sky_error_clear(out);
    sky_error_set(out, SKY_ETOOBIG, "the reply nests deeper than %d levels: it cannot be recorded",
                  SKY_JSON_MAX_DEPTH - 8);
    sky_error_set_service(out, "response_too_deep");
    out->http_status = res->status;
    return 1;
}

static void count_result(sky_batch *b, const item *it, int ok)
{
    if (!ok) {
        b->failed++;
        return;
    }
    b->ok++;
    b->tokens_in += it->usage.prompt_tokens > 0 ? (uint64_t)it->usage.prompt_tokens : 0;
    b->tokens_out += it->usage.completion_tokens > 0 ? (uint64_t)it->usage.completion_tokens : 0;
}

void sky__batch_item_unsent(item *it)
{
    sky_batch *b = it->b;
    b->in_flight--;
    b->left_undone++;
    item_free(it);
    sky__batch_pump(b);
    sky__batch_maybe_finish(b);
}

void sky__batch_call_done(sky_call *call, const sky_call_result *res, const sky_error *err,
                          void *ud)
{
    item *it = ud;
    sky_batch *b = it->b;
    sky_error deep;
    (void)call;
    if (it->routed && sky__batch_route_again(it, res, err))
        return; /* on another deployment, or waiting for the next round */
    b->in_flight--;
    if (err == NULL && too_deep(it, res, &deep))
        err = &deep;
    b->retries += res->attempts > 1 ? (uint64_t)(res->attempts - 1) : 0;
    b->responses_429 += res->retry ? (uint64_t)res->retry->responses_429 : 0;
    /* the provider's latency, not the time spent queued behind the limits */
    sky_histogram_record(&b->latency_ms, res->attempt_ms);
    sky__batch_timeline_result(b->timeline, it->custom_id, res, err);
    int refusal = account_refusal(res, err);
    if (refusal)
        refuse(b, refusal, err);
    int unsent = sky__batch_never_reached(b, err) || b->unreachable;
    if (unsent)
        sky__batch_stop_unreachable(b, err);
    /* a canceled, refused or never-sent request is not recorded: the next run does it; nor
     * is one that came back after the store could no longer write. Only what is recorded
     * is counted. */
    if ((err && err->code == SKY_ECANCELED) || refusal || unsent ||
        record_result(b, it, res, err) < 0)
        b->left_undone++;
    else
        count_result(b, it, err == NULL);
    item_free(it);
    sky__batch_pump(b);
    sky__batch_maybe_finish(b);
}
