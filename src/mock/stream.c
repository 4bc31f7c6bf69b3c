/*
 * Streamed replies, token by token as server-sent events: chat completion
 * chunks, legacy completion chunks (a choice per prompt) or the Responses API's
 * typed events; the faults that end a stream half-way.
 */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/json.h"
#include "worker.h"

/* One SSE event holding @p chunk (consumed, may be NULL after a failed pack). */
static int send_json_event(sky_server_req *r, json_t *chunk)
{
    size_t len = 0;
    char *text = chunk ? sky_json_dump(chunk, &len) : NULL;
    json_decref(chunk);
    if (text == NULL)
        return SKY_ENOMEM;
    int rc = sky_server_sse_send(r, sky_span_make(text, len));
    free(text);
    return rc;
}

static int send_chunk(sky_server_req *r, const sky__mock_call *c, const char *content, int role,
                      const char *finish)
{
    json_t *delta = role      ? json_pack("{s:s,s:s}", "role", "assistant", "content", "")
                    : content ? json_pack("{s:s}", "content", content)
                              : json_object();
    json_t *chunk =
        delta ? json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:i,s:o,s:n,s:s?}]}", "id", c->id, "object",
                          "chat.completion.chunk", "created", (json_int_t)c->created, "model",
                          c->model, "system_fingerprint", "fp_skyio_mock", "choices", "index", 0,
                          "delta", delta, "logprobs", "finish_reason", finish)
              : NULL;
    if (chunk == NULL)
        return SKY_ENOMEM;
    if (finish == NULL) {
        /* "finish_reason": null, as the providers send it. */
        json_object_set_new(json_array_get(json_object_get(chunk, "choices"), 0), "finish_reason",
                            json_null());
    }
    return send_json_event(r, chunk);
}

static int send_usage_chunk(sky_server_req *r, const sky__mock_call *c)
{
    if (c->kind == SKY__MOCK_COMPLETIONS) {
        sky__mock_text t = sky__mock_call_text(c);
        return send_json_event(r, sky__mock_completion_usage_chunk(&t));
    }
    json_t *chunk = json_pack(
        "{s:s,s:s,s:I,s:s,s:[],s:{s:I,s:I,s:I}}", "id", c->id, "object", "chat.completion.chunk",
        "created", (json_int_t)c->created, "model", c->model, "choices", "usage", "prompt_tokens",
        (json_int_t)c->prompt_tokens, "completion_tokens", (json_int_t)c->n_tokens, "total_tokens",
        (json_int_t)(c->prompt_tokens + c->n_tokens));
    return send_json_event(r, chunk);
}

/* Event @p ev of a streamed response, with its type; a Responses stream has no [DONE]. */
static int send_response_event(sky_server_req *r, sky__mock_call *c, int ev, const char *delta,
                               const char *stop_reason, int tokens)
{
    sky__mock_text t = sky__mock_call_text(c);
    const char *type = NULL;
    t.n_tokens = tokens;
    t.stop_reason = stop_reason;
    json_t *e = sky__mock_responses_event(&t, ev, c->seq++, delta, &type);
    size_t len = 0;
    char *text = e ? sky_json_dump(e, &len) : NULL;
    json_decref(e);
    if (text == NULL)
        return SKY_ENOMEM;
    int rc = sky_server_sse_send_event(r, type, sky_span_make(text, len));
    free(text);
    return rc;
}

/* A chunk of choice @p index whose delta is @p delta (consumed). */
static int send_delta(sky_server_req *r, const sky__mock_call *c, int index, json_t *delta,
                      const char *finish)
{
    json_t *chunk =
        delta ? json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:i,s:o,s:n,s:o}]}", "id", c->id, "object",
                          "chat.completion.chunk", "created", (json_int_t)c->created, "model",
                          c->model, "system_fingerprint", "fp_skyio_mock", "choices", "index",
                          index, "delta", delta, "logprobs", "finish_reason",
                          finish ? json_string(finish) : json_null())
              : NULL;
    return send_json_event(r, chunk);
}

/* A planned stream's opening: each choice's role, and its tool call's id and name. */
static void plan_open(sky_server_req *r, const sky__mock_call *c)
{
    size_t i;
    json_t *ch;
    json_array_foreach(c->plan, i, ch)
    {
        (void)send_delta(r, c, (int)i,
                         json_pack("{s:s,s:s,s:n}", "role", "assistant", "content", "", "refusal"),
                         NULL);
        const json_t *call = json_object_get(ch, "call");
        if (json_is_object(call))
            (void)send_delta(r, c, (int)i,
                             json_pack("{s:[{s:i,s:O,s:s,s:{s:O,s:s}}]}", "tool_calls", "index", 0,
                                       "id", json_object_get(call, "id"), "type", "function",
                                       "function", "name", sky_json_path(call, "function.name"),
                                       "arguments", ""),
                             NULL);
    }
}

/* Tick @p step of a planned stream: the next piece of every choice that has one. */
static int plan_send_step(sky_server_req *r, const sky__mock_call *c, int step)
{
    size_t i;
    json_t *ch;
    int rc = 0;
    json_array_foreach(c->plan, i, ch)
    {
        json_t *piece = json_array_get(json_object_get(ch, "pieces"), (size_t)step);
        if (piece == NULL)
            continue;
        json_t *delta = json_is_object(json_object_get(ch, "call"))
                            ? json_pack("{s:[{s:i,s:{s:O}}]}", "tool_calls", "index", 0, "function",
                                        "arguments", piece)
                            : json_pack("{s:O}", "content", piece);
        if (rc == 0)
            rc = send_delta(r, c, (int)i, delta, NULL);
        else
            json_decref(delta);
    }
    return rc;
}

/* Each choice's last chunk: its own finish_reason, or @p finish for all when not NULL. */
static void plan_close(sky_server_req *r, const sky__mock_call *c, const char *finish)
{
    size_t i;
    json_t *ch;
    json_array_foreach(c->plan, i, ch)
    {
        (void)send_delta(r, c, (int)i, json_object(),
                         finish ? finish : sky_json_str(ch, "finish", "stop"));
    }
}

/* What a stream sends before its first token. */
static void stream_open(sky_server_req *r, sky__mock_call *c)
{
    if (c->kind == SKY__MOCK_CHAT) {
        /* Azure's stream opens with a chunk of no choices, only its prompt filter's verdict */
        if (c->azure)
            (void)send_json_event(r, sky__mock_prompt_filter_chunk());
        if (c->plan)
            plan_open(r, c);
        else
            (void)send_chunk(r, c, NULL, 1, NULL);
        return;
    }
    for (int ev = SKY__RE_CREATED; c->kind == SKY__MOCK_RESPONSES && ev <= SKY__RE_PART_ADDED; ev++)
        (void)send_response_event(r, c, ev, NULL, NULL, 0);
}

static int send_token(sky_server_req *r, sky__mock_call *c, const char *word)
{
    if (c->plan)
        return plan_send_step(r, c, c->sent);
    if (c->kind == SKY__MOCK_RESPONSES)
        return send_response_event(r, c, SKY__RE_DELTA, word, NULL, 0);
    if (c->kind != SKY__MOCK_COMPLETIONS)
        return send_chunk(r, c, word, 0, NULL);
    /* a chunk for each prompt's choice, each with words of its own */
    sky__mock_text t = sky__mock_call_text(c);
    int rc = send_json_event(r, sky__mock_completion_chunk(&t, 0, word, NULL));
    for (int i = 1; rc == 0 && i < c->n_inputs; i++) {
        char own[64];
        snprintf(own, sizeof(own), "%s%s", c->sent ? " " : "",
                 sky__mock_word(c->seed + (uint64_t)i, c->sent));
        rc = send_json_event(r, sky__mock_completion_chunk(&t, i, own, NULL));
    }
    return rc;
}

/*
 * End a stream after @p tokens tokens for @p finish ("stop", "length" or "content_filter";
 * NULL: each planned choice's own): the last chunk, the usage chunk when asked for and
 * [DONE]; for the Responses API the "done" events and response.completed or
 * response.incomplete.
 */
static void stream_close(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c,
                         const char *finish, int tokens)
{
    if (c->kind == SKY__MOCK_RESPONSES) {
        const char *stop = finish && strcmp(finish, "content_filter") == 0 ? finish : NULL;
        for (int ev = SKY__RE_TEXT_DONE; ev <= SKY__RE_END; ev++)
            (void)send_response_event(r, c, ev, NULL, stop, tokens);
        (void)sky_server_stream_write(r, sky_span_make("", 0), 1);
    } else {
        sky__mock_text t = sky__mock_call_text(c);
        if (c->plan)
            plan_close(r, c, finish);
        else if (c->kind != SKY__MOCK_COMPLETIONS)
            (void)send_chunk(r, c, NULL, 0, finish);
        for (int i = 0; c->kind == SKY__MOCK_COMPLETIONS && i < c->n_inputs; i++)
            (void)send_json_event(r, sky__mock_completion_chunk(&t, i, "", finish));
        if (c->include_usage)
            (void)send_usage_chunk(r, c);
        (void)sky_server_stream_write(r, SKY_SPAN_LIT("data: [DONE]\n\n"), 1);
    }
    ST_ADD(m->st.completion_tokens, (uint64_t)sky__mock_generated(c, tokens));
}

static void stream_finish(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    if (c->plan) /* each choice ends for its own reason */
        stream_close(m, r, c, NULL, c->n_tokens);
    else
        stream_close(m, r, c, c->has_max ? "length" : "stop", c->n_tokens);
}

/* Half-way through a stream: the faults that end it early, each in its own way. */
static void stream_fault(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    static const char error_event[] =
        "data: {\"error\":{\"message\":\"The server had an error while processing your "
        "request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}"
        "\n\n";
    switch (c->fault) {
    case SKY__FAULT_CUT:
        sky_server_abort(r);
        break;
    case SKY__FAULT_STREAM_ERROR:
        if (c->kind == SKY__MOCK_RESPONSES) {
            (void)send_response_event(r, c, SKY__RE_ERROR, NULL, NULL, c->sent);
            (void)sky_server_stream_write(r, sky_span_make("", 0), 1);
            break;
        }
        (void)sky_server_stream_write(r, sky_span_make(error_event, sizeof(error_event) - 1), 1);
        break;
    case SKY__FAULT_CONTENT_FILTER:
        stream_close(m, r, c, "content_filter", c->sent);
        break;
    default: /* SKY__FAULT_STREAM_CUT */
        (void)sky_server_stream_write(r, sky_span_make("", 0), 1);
        break;
    }
}

/* Send the tokens that are due now; schedule the next; end when all are out. */
static void stream_step(sky_server_req *r, void *data)
{
    sky__mock_call *c = data;
    sky__mock_worker *m = c->m;
    int ticks = c->plan ? c->plan_steps : c->n_tokens;
    int cut_at = ticks / 2;
    do {
        if (c->fault != SKY__FAULT_NONE && c->sent >= cut_at) {
            stream_fault(m, r, c);
            return;
        }
        if (c->sent >= ticks) {
            stream_finish(m, r, c);
            return;
        }
        char word[64] = "";
        if (c->plan == NULL)
            snprintf(word, sizeof(word), "%s%s", c->sent ? " " : "",
                     sky__mock_word(c->seed, c->sent));
        (void)send_token(r, c, word);
        c->sent++;
    } while (c->per_token_ms <= 0);
    if (sky_server_req_after(r, (uint64_t)sky__mock_jittered(m, c->per_token_ms), stream_step) < 0)
        sky_server_abort(r);
}

void sky__mock_stream_begin(sky_server_req *r, void *data)
{
    sky__mock_call *c = data;
    sky__mock_count_status(c->m, 200);
    sky__mock_add_request_id(r, c->m);
    sky_server_add_header(r, "cache-control", SKY_SPAN_LIT("no-cache"));
    sky_server_stream_start(r, 200, "text/event-stream", -1);
    if (c->kind == SKY__MOCK_CHAT && (c->n_choices > 1 || c->format || c->tool)) {
        /* each choice's text or tool arguments, token by token, the choices side by side */
        c->plan = sky__mock_chat_plan(c, &c->plan_steps, &c->n_tokens);
        if (c->plan == NULL) {
            sky_server_abort(r);
            return;
        }
    }
    stream_open(r, c);
    stream_step(r, c);
}
