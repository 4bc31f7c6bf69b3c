/*
 * A chat completions stream told as the Responses API's typed events: response.created and
 * response.in_progress first; the message item added with its output_text part, a
 * response.output_text.delta for each chunk of text; at the end the text, part and item
 * done, one function_call item per tool call (added, arguments done, done), and
 * response.completed with the whole response. Each event has its sequence_number, as the
 * SDKs' stream helpers expect. The chunks are read by the SSE parser, each with jansson.
 */
#include <stdlib.h>

#include "skyio/json.h"
#include "responses_turn.h"

#define RC_MAX_EVENT (4u * 1024u * 1024u)
#define RC_MAX_OUT (64u * 1024u * 1024u)

struct gw_rc_stream {
    sky_sse_parser sse;
    json_t *req; /* held */
    char id[48], msg_id[48];
    char model[256];
    sky_buf out;  /* events made, not yet taken */
    sky_buf text; /* the message's text so far */
    int64_t seq;
    int began;        /* the message item was added */
    int ended;        /* finished */
    json_t *calls;    /* function_call items by the chunks' tool index */
    char finish[32];  /* the choice's finish_reason */
    json_t *usage;    /* the last chunk's usage, Responses-shaped; NULL: none */
    gw_tokens tokens; /* the same for the gateway's counts */
    json_t *final;
};

static int emit(gw_rc_stream *s, const char *type, json_t *ev)
{
    if (ev == NULL)
        return SKY_ENOMEM;
    json_object_set_new(ev, "type", json_string(type));
    json_object_set_new(ev, "sequence_number", json_integer(s->seq++));
    char *data = sky_json_dump(ev, NULL);
    json_decref(ev);
    if (data == NULL)
        return SKY_ENOMEM;
    int rc = sky_buf_printf(&s->out, "event: %s\ndata: %s\n\n", type, data);
    free(data);
    return rc;
}

static json_t *snapshot(gw_rc_stream *s, const char *status, json_t *output)
{
    json_t *r = sky__gw_rc_response(s->req, s->id, s->model[0] ? s->model : NULL, output, status,
                                    NULL, NULL);
    return r;
}

int sky__gw_rc_stream_begin(gw_rc_stream *s)
{
    int rc = emit(s, "response.created",
                  json_pack("{so}", "response", snapshot(s, "in_progress", json_array())));
    return rc ? rc
              : emit(s, "response.in_progress",
                     json_pack("{so}", "response", snapshot(s, "in_progress", json_array())));
}

static json_t *text_part(const char *text, size_t len)
{
    return json_pack("{ss ss% s[]}", "type", "output_text", "text", text, len, "annotations");
}

static int begin_message(gw_rc_stream *s)
{
    s->began = 1;
    sky__gw_new_id("msg", s->msg_id);
    int rc =
        emit(s, "response.output_item.added",
             json_pack("{si s{ss ss ss ss s[]}}", "output_index", 0, "item", "id", s->msg_id,
                       "type", "message", "status", "in_progress", "role", "assistant", "content"));
    return rc ? rc
              : emit(s, "response.content_part.added",
                     json_pack("{ss si si so}", "item_id", s->msg_id, "output_index", 0,
                               "content_index", 0, "part", text_part("", 0)));
}

static int on_text(gw_rc_stream *s, const char *delta)
{
    int rc = s->began ? 0 : begin_message(s);
    if (rc == 0 && delta[0] != '\0')
        rc = sky_buf_append_str(&s->text, delta);
    if (rc == 0 && delta[0] != '\0')
        rc = emit(s, "response.output_text.delta",
                  json_pack("{ss si si ss s[]}", "item_id", s->msg_id, "output_index", 0,
                            "content_index", 0, "delta", delta, "logprobs"));
    return rc;
}

/* A tool call's pieces: its id and name come first, its arguments in parts. */
static void on_call(gw_rc_stream *s, const json_t *tc)
{
    size_t index = (size_t)sky_json_int(tc, "index", 0);
    while (json_array_size(s->calls) <= index && index < 128) {
        char id[48];
        sky__gw_new_id("fc", id);
        json_array_append_new(s->calls, json_pack("{ss ss ss ss ss ss}", "id", id, "type",
                                                  "function_call", "status", "completed", "call_id",
                                                  "", "name", "", "arguments", ""));
    }
    json_t *item = json_array_get(s->calls, index);
    const json_t *fn = json_object_get(tc, "function");
    if (sky_json_str(tc, "id", NULL))
        json_object_set_new(item, "call_id", json_string(sky_json_str(tc, "id", "")));
    if (sky_json_str(fn, "name", NULL))
        json_object_set_new(item, "name", json_string(sky_json_str(fn, "name", "")));
    const char *args = sky_json_str(fn, "arguments", NULL);
    if (args && item) {
        size_t had = json_string_length(json_object_get(item, "arguments"));
        size_t more = strlen(args);
        char *joined = malloc(had + more + 1);
        if (joined) {
            memcpy(joined, json_string_value(json_object_get(item, "arguments")), had);
            memcpy(joined + had, args, more + 1);
            json_object_set_new(item, "arguments", json_stringn(joined, had + more));
            free(joined);
        }
    }
}

static int on_chunk(gw_rc_stream *s, const json_t *chunk)
{
    const char *model = sky_json_str(chunk, "model", NULL);
    if (model && !s->model[0])
        snprintf(s->model, sizeof(s->model), "%s", model);
    json_t *usage = sky__gw_rc_usage(json_object_get(chunk, "usage"));
    if (usage) {
        json_decref(s->usage);
        s->usage = usage;
        s->tokens.prompt = sky_json_int(usage, "input_tokens", -1);
        s->tokens.completion = sky_json_int(usage, "output_tokens", -1);
        s->tokens.total = sky_json_int(usage, "total_tokens", -1);
        s->tokens.cached =
            sky_json_int(json_object_get(usage, "input_tokens_details"), "cached_tokens", -1);
    }
    const json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
    const json_t *delta = json_object_get(choice, "delta");
    const char *finish = sky_json_str(choice, "finish_reason", NULL);
    if (finish)
        snprintf(s->finish, sizeof(s->finish), "%s", finish);
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc) on_call(s, tc);
    const char *text = sky_json_str(delta, "content", NULL);
    return text ? on_text(s, text) : 0;
}

static int on_event(void *ud, const sky_sse_event *ev)
{
    gw_rc_stream *s = ud;
    if (ev->is_done)
        return 0;
    json_t *chunk = json_loadb(ev->data.ptr, ev->data.len, 0, NULL);
    if (chunk == NULL)
        return 1; /* not a chat chunk: stop, the stream is garbled */
    int rc = json_object_get(chunk, "error") ? 1 : on_chunk(s, chunk);
    json_decref(chunk);
    return rc != 0;
}

gw_rc_stream *sky__gw_rc_stream_new(json_t *req, const char *id)
{
    gw_rc_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->req = json_incref(req);
    snprintf(s->id, sizeof(s->id), "%s", id);
    sky_sse_parser_init(&s->sse, RC_MAX_EVENT, on_event, s);
    sky_buf_init(&s->out, RC_MAX_OUT);
    sky_buf_init(&s->text, RC_MAX_OUT);
    s->calls = json_array();
    s->tokens = (gw_tokens){-1, -1, -1, -1};
    if (s->calls == NULL) {
        sky__gw_rc_stream_free(s);
        return NULL;
    }
    return s;
}

void sky__gw_rc_stream_free(gw_rc_stream *s)
{
    if (s == NULL)
        return;
    sky_sse_parser_free(&s->sse);
    sky_buf_free(&s->out);
    sky_buf_free(&s->text);
    json_decref(s->calls);
    json_decref(s->usage);
    json_decref(s->final);
    json_decref(s->req);
    free(s);
}

int sky__gw_rc_stream_feed(gw_rc_stream *s, const char *data, size_t len)
{
    return sky_sse_parser_feed(&s->sse, data, len);
}

/* The message's done events, and its item as it ends. */
static json_t *end_message(gw_rc_stream *s, int *rc)
{
    const char *text = s->text.len ? (const char *)s->text.data : "";
    size_t len = s->text.len;
    *rc = emit(s, "response.output_text.done",
               json_pack("{ss si si ss% s[]}", "item_id", s->msg_id, "output_index", 0,
                         "content_index", 0, "text", text, len, "logprobs"));
    if (*rc == 0)
        *rc = emit(s, "response.content_part.done",
                   json_pack("{ss si si so}", "item_id", s->msg_id, "output_index", 0,
                             "content_index", 0, "part", text_part(text, len)));
    json_t *item = json_pack("{ss ss ss ss s[o]}", "id", s->msg_id, "type", "message", "status",
                             "completed", "role", "assistant", "content", text_part(text, len));
    if (*rc == 0)
        *rc = emit(s, "response.output_item.done",
                   json_pack("{si sO}", "output_index", 0, "item", item));
    return item;
}

static int end_call(gw_rc_stream *s, json_t *item, int index)
{
    json_t *added = json_deep_copy(item);
    json_object_set_new(added, "arguments", json_string(""));
    json_object_set_new(added, "status", json_string("in_progress"));
    int rc = emit(s, "response.output_item.added",
                  json_pack("{si so}", "output_index", index, "item", added));
    if (rc == 0)
        rc = emit(s, "response.function_call_arguments.done",
                  json_pack("{ss si sO}", "item_id", sky_json_str(item, "id", ""), "output_index",
                            index, "arguments", json_object_get(item, "arguments")));
    return rc ? rc
              : emit(s, "response.output_item.done",
                     json_pack("{si sO}", "output_index", index, "item", item));
}

int sky__gw_rc_stream_finish(gw_rc_stream *s)
{
    int rc = sky_sse_parser_finish(&s->sse);
    if (rc || s->ended)
        return rc ? rc : SKY_ESTATE;
    s->ended = 1;
    json_t *output = json_array();
    if (!s->began && json_array_size(s->calls) == 0)
        rc = begin_message(s);
    if (rc == 0 && s->began)
        json_array_append_new(output, end_message(s, &rc));
    size_t i;
    json_t *item;
    json_array_foreach(s->calls, i, item)
    {
        if (rc == 0)
            rc = end_call(s, item, (int)json_array_size(output));
        json_array_append(output, item);
    }
    const char *why = strcmp(s->finish, "length") == 0           ? "max_output_tokens"
                      : strcmp(s->finish, "content_filter") == 0 ? "content_filter"
                                                                 : NULL;
    json_incref(s->usage);
    s->final = sky__gw_rc_response(s->req, s->id, s->model[0] ? s->model : NULL, output,
                                   why ? "incomplete" : "completed", why, s->usage);
    if (s->final == NULL)
        return SKY_ENOMEM;
    return rc ? rc
              : emit(s, why ? "response.incomplete" : "response.completed",
                     json_pack("{sO}", "response", s->final));
}

sky_buf *sky__gw_rc_stream_out(gw_rc_stream *s)
{
    return &s->out;
}

void sky__gw_rc_stream_tokens(const gw_rc_stream *s, gw_tokens *out)
{
    *out = s->tokens;
}

json_t *sky__gw_rc_stream_final(const gw_rc_stream *s)
{
    return s->final;
}
