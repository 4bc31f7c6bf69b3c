/*
 * Chat completions: the request's body, and the answer read from a whole reply or from a
 * stream of chat.completion.chunk events (with the SSE parser), for one model or several.
 */
#include <stdio.h>
#include <string.h>

#include "skyio/json.h"
#include "skyio/ratelimit.h"
#include "internal.h"

void sky_ai_chat_options_init(sky_ai_chat_options *o)
{
    memset(o, 0, sizeof(*o));
}

/* ---- the request ---- */

static json_t *message(const char *role, const char *content)
{
    return json_pack("{s:s,s:s}", "role", role, "content", content);
}

static json_t *chat_messages(const sky_ai_chat_options *o)
{
    if (o->messages)
        return json_deep_copy(o->messages);
    json_t *msgs = json_array();
    if (msgs && o->system)
        json_array_append_new(msgs, message("system", o->system));
    if (msgs)
        json_array_append_new(msgs, message("user", o->prompt));
    return msgs;
}

static json_t *chat_body(const sky_ai_chat_options *o)
{
    json_t *body = json_pack("{s:o,s:b}", "messages", chat_messages(o), "stream", o->stream);
    /* only when asked: Azure api-versions before 2024-10-21 refuse stream_options (400) */
    if (body && o->stream && o->include_usage)
        json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (body && sky__ai_merge_params(body, o->params) < 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* What the rate limiter charges before the answer: the prompt and the longest reply. */
static int64_t chat_estimate(const json_t *body)
{
    size_t chars = 0, i;
    json_t *m;
    json_array_foreach(json_object_get(body, "messages"), i, m)
    {
        chars += strlen(sky_json_str(m, "content", ""));
    }
    int64_t max = sky_json_int(body, "max_completion_tokens", sky_json_int(body, "max_tokens", 0));
    return sky_ratelimit_estimate_tokens(chars, max);
}

static int chat_check(const sky_ai_chat_options *o, sky_error *err)
{
    if (o->on_done == NULL || (o->model == NULL && o->n_models == 0))
        return sky_error_set(err, SKY_EINVAL, "a chat needs a model and on_done");
    if (o->messages == NULL && o->prompt == NULL)
        return sky_error_set(err, SKY_EINVAL, "a chat needs a prompt or messages");
    if (o->params && !json_is_object(o->params))
        return sky_error_set(err, SKY_EINVAL, "params must be a JSON object");
    return 0;
}

static int on_event(void *ud, const sky_sse_event *ev);

int sky_ai_chat_start(sky_ai_client *c, const sky_ai_chat_options *o, sky_ai_request **out,
                      sky_error *err)
{
    if (c == NULL || o == NULL || chat_check(o, err) < 0)
        return sky_error_set(err, SKY_EINVAL, "a chat needs a client and options");
    const char *const *models = o->n_models ? o->models : &o->model;
    sky_ai_request *r = sky__ai_request_new(c, AI_CHAT, models, o->n_models ? o->n_models : 1);
    json_t *body = r ? chat_body(o) : NULL;
    if (body == NULL) {
        if (r)
            sky__ai_request_free(r);
        return sky_error_set(err, SKY_ENOMEM, "out of memory starting a chat");
    }
    r->stream = o->stream;
    r->on_delta = o->on_delta;
    r->on_chat = o->on_done;
    r->user_data = o->user_data;
    for (size_t i = 0; r->stream && i < r->n_legs; i++)
        sky_sse_parser_init(&r->legs[i].parser, 0, on_event, &r->legs[i]);
    int rc = sky__ai_request_start(r, "/v1/chat/completions", body, chat_estimate(body), err);
    json_decref(body);
    if (rc == 0 && out)
        *out = r;
    return rc;
}

/* ---- a streamed answer ---- */

static int on_delta(void *ud, const sky_ai_delta *d)
{
    ai_leg *leg = ud;
    sky_ai_request *r = leg->req;
    if (d->content && d->content[0] && sky_buf_append_str(&leg->text, d->content) < 0)
        return SKY_ENOMEM;
    if (d->finish_reason)
        snprintf(leg->finish_reason, sizeof(leg->finish_reason), "%s", d->finish_reason);
    if (d->error && leg->stream_error[0] == '\0')
        snprintf(leg->stream_error, sizeof(leg->stream_error), "%s", d->error);
    if (d->prompt_tokens >= 0)
        leg->prompt_tokens = d->prompt_tokens;
    if (d->completion_tokens >= 0)
        leg->completion_tokens = d->completion_tokens;
    if (d->prompt_tokens >= 0 && d->completion_tokens >= 0)
        sky_call_set_usage(leg->call, d->prompt_tokens + d->completion_tokens);
    if (r->on_delta == NULL)
        return 0;
    sky__ai_enter(r->client);
    int stop = r->on_delta(r, leg->index, d, r->user_data);
    sky__ai_leave(r->client);
    return stop ? SKY_ECANCELED : 0;
}

static int on_event(void *ud, const sky_sse_event *ev)
{
    ai_leg *leg = ud;
    if (ev->is_done) {
        leg->saw_done = 1;
        return 0;
    }
    int rc = sky_ai_parse_chunk(ev->data, on_delta, leg);
    /* "event: error" whose data is not an error chunk: its text is the message */
    if (sky_span_eq_cstr(ev->event, "error") && leg->stream_error[0] == '\0')
        snprintf(leg->stream_error, sizeof(leg->stream_error), "%.*s",
                 (int)(ev->data.len < 300 ? ev->data.len : 300), ev->data.ptr ? ev->data.ptr : "");
    /* a chunk that is not JSON is skipped; running out of memory or a stop is not */
    return rc == SKY_ENOMEM || rc == SKY_ECANCELED;
}

int sky__ai_chat_on_body(sky_call *call, const char *data, size_t len, void *ud)
{
    ai_leg *leg = ud;
    (void)call;
    int rc = sky_sse_parser_feed(&leg->parser, data, len);
    return rc < 0; /* nonzero cancels the call */
}

/* ---- the answer ---- */

/* Why a streamed answer that arrived as a 2xx is not whole; 0 when it is. */
static int stream_trouble(const ai_leg *leg, sky_error *e)
{
    if (leg->stream_error[0]) {
        sky_error_set(e, SKY_EPARTIAL, "the provider stopped the stream with an error: %s",
                      leg->stream_error);
        sky_error_set_service(e, "stream_error");
    } else if (!leg->saw_done) {
        sky_error_set(e, SKY_EPARTIAL, "the stream ended before [DONE]: the answer is cut");
    }
    return e->code;
}

/* A content filter that stopped the answer, streamed or not. */
static int filtered(const char *finish_reason, sky_error *e)
{
    if (finish_reason == NULL || strcmp(finish_reason, "content_filter") != 0)
        return 0;
    sky_error_set(e, SKY_EPARTIAL,
                  "the provider's content filter stopped the answer (finish_reason "
                  "content_filter): what is shown is not all of it");
    sky_error_set_service(e, "content_filter");
    return 1;
}

/* A whole reply: choices[0].message and usage. */
static void read_reply(const json_t *reply, sky_ai_chat_result *out)
{
    json_t *choice = sky_json_path(reply, "choices.0");
    out->content = sky__ai_str(json_string_value(sky_json_path(choice, "message.content")));
    out->finish_reason = json_string_value(json_object_get(choice, "finish_reason"));
    out->prompt_tokens = sky_json_int(json_object_get(reply, "usage"), "prompt_tokens", -1);
    out->completion_tokens = sky_json_int(json_object_get(reply, "usage"), "completion_tokens", -1);
}

void sky__ai_chat_done(ai_leg *leg, const sky_call_result *res, const sky_error *err)
{
    sky_ai_request *r = leg->req;
    sky_ai_chat_result out;
    sky_error own;
    sky_error_clear(&own);
    memset(&out, 0, sizeof(out));
    out.model = leg->model;
    out.index = leg->index;
    out.call = res;
    if (r->stream) {
        out.content = leg->text.data ? leg->text.data : "";
        out.finish_reason = leg->finish_reason[0] ? leg->finish_reason : NULL;
        out.prompt_tokens = leg->prompt_tokens;
        out.completion_tokens = leg->completion_tokens;
        if (err == NULL && (stream_trouble(leg, &own) || filtered(out.finish_reason, &own)))
            err = &own;
    } else {
        out.content = "";
        out.reply = err ? NULL : res->json;
        if (out.reply)
            read_reply(out.reply, &out);
        if (err == NULL && filtered(out.finish_reason, &own))
            err = &own;
    }
    r->on_chat(r, &out, err, r->user_data);
}
