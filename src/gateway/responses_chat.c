/*
 * The Responses API over a deployment that speaks chat completions only ("api": "chat":
 * vLLM, older Azure api-versions): the request becomes a chat request (instructions the
 * system message, input items the messages, function tools, the text format as
 * response_format), and the chat answer becomes a Responses object (a message item, a
 * function_call item per tool call, usage in input and output tokens). What chat cannot
 * say is refused with a 400 naming the parameter, never dropped silently.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "skyio/json.h"
#include "skyio/rand.h"
#include "responses_turn.h"

void sky__gw_new_id(const char *prefix, char out[48])
{
    snprintf(out, 48, "%s_%016llx%016llx", prefix, (unsigned long long)sky_rand_u64(),
             (unsigned long long)sky_rand_u64());
}

/* The parameters a chat request can carry, and those read here; others are refused. */
static const char *const known[] = {"model",
                                    "input",
                                    "instructions",
                                    "max_output_tokens",
                                    "temperature",
                                    "top_p",
                                    "stream",
                                    "tools",
                                    "tool_choice",
                                    "parallel_tool_calls",
                                    "text",
                                    "user",
                                    "metadata",
                                    "store",
                                    "reasoning",
                                    "truncation",
                                    "service_tier",
                                    "safety_identifier",
                                    "prompt_cache_key",
                                    "stream_options",
                                    NULL};

static int is_known(const char *key)
{
    for (size_t i = 0; known[i]; i++)
        if (strcmp(known[i], key) == 0)
            return 1;
    return 0;
}

static json_t *refuse(char *why, size_t len, const char *fmt, ...) SKY_PRINTF(3, 4);

static json_t *refuse(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return NULL;
}

/* A part's text, for the parts chat takes as text. */
static const char *part_text(const json_t *part)
{
    const char *type = sky_json_str(part, "type", "");
    if (strcmp(type, "input_text") == 0 || strcmp(type, "output_text") == 0 ||
        strcmp(type, "text") == 0)
        return sky_json_str(part, "text", NULL);
    return NULL;
}

/* A message's parts as chat content: one string when every part is text, else parts with
 * images as image_url. NULL (why set) for a part chat has no word for. */
static json_t *chat_content(const json_t *content, char *why, size_t len)
{
    if (json_is_string(content))
        return json_deep_copy(content);
    if (!json_is_array(content))
        return refuse(why, len, "%s", "Each input message needs a string or a list of parts.");
    json_t *parts = json_array();
    int all_text = 1;
    size_t i;
    json_t *p;
    json_array_foreach(content, i, p)
    {
        const char *text = part_text(p);
        const char *image = sky_json_str(p, "image_url", NULL);
        if (text)
            json_array_append_new(parts, json_pack("{ss ss}", "type", "text", "text", text));
        else if (strcmp(sky_json_str(p, "type", ""), "input_image") == 0 && image) {
            all_text = 0;
            json_array_append_new(parts, json_pack("{ss s{ss ss}}", "type", "image_url",
                                                   "image_url", "url", image, "detail",
                                                   sky_json_str(p, "detail", "auto")));
        } else {
            json_decref(parts);
            return refuse(why, len,
                          "The input part type '%s' cannot be sent to a chat-completions "
                          "deployment.",
                          sky_json_str(p, "type", "?"));
        }
    }
    if (!all_text)
        return parts;
    json_t *joined = sky__gw_items_text(parts);
    json_decref(parts);
    return joined;
}

static json_t *message_of(const json_t *item, char *why, size_t len)
{
    const char *role = sky_json_str(item, "role", "user");
    if (strcmp(role, "developer") == 0)
        role = "system"; /* chat-only servers know system, not always developer */
    if (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system"))
        return refuse(why, len,
                      "The input role '%s' is not one of user, assistant, system, "
                      "developer.",
                      role);
    json_t *content = chat_content(json_object_get(item, "content"), why, len);
    return content ? json_pack("{ss so}", "role", role, "content", content) : NULL;
}

/* A function_call item joins the assistant message just before it, or makes one. */
static void add_call(json_t *msgs, const json_t *item)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *calls = json_object_get(last, "tool_calls");
    if (!calls || strcmp(sky_json_str(last, "role", ""), "assistant")) {
        calls = json_array();
        json_array_append_new(
            msgs, json_pack("{ss sn so}", "role", "assistant", "content", "tool_calls", calls));
    }
    json_array_append_new(calls, json_pack("{ss ss s{ss ss}}", "id",
                                           sky_json_str(item, "call_id", ""), "type", "function",
                                           "function", "name", sky_json_str(item, "name", ""),
                                           "arguments", sky_json_str(item, "arguments", "{}")));
}

static int add_item(json_t *msgs, const json_t *item, char *why, size_t len)
{
    const char *type = sky_json_str(item, "type", "message");
    if (strcmp(type, "message") == 0) {
        json_t *m = message_of(item, why, len);
        return m ? json_array_append_new(msgs, m) : -1;
    }
    if (strcmp(type, "function_call") == 0) {
        add_call(msgs, item);
        return 0;
    }
    if (strcmp(type, "function_call_output") == 0) {
        json_t *out = json_object_get(item, "output");
        json_t *content = json_is_string(out) ? json_deep_copy(out) : chat_content(out, why, len);
        if (!content)
            return -1;
        return json_array_append_new(msgs, json_pack("{ss ss so}", "role", "tool", "tool_call_id",
                                                     sky_json_str(item, "call_id", ""), "content",
                                                     content));
    }
    if (strcmp(type, "reasoning") == 0)
        return 0; /* chat has no place for it; the model reasons again */
    refuse(why, len, "The input item type '%s' cannot be sent to a chat-completions deployment.",
           type);
    return -1;
}

static json_t *messages_of(const json_t *req, char *why, size_t len)
{
    json_t *msgs = json_array();
    const char *instructions = sky_json_str(req, "instructions", NULL);
    if (instructions)
        json_array_append_new(msgs,
                              json_pack("{ss ss}", "role", "system", "content", instructions));
    json_t *items = sky__gw_items_of_input(json_object_get(req, "input"), 0);
    if (items == NULL) {
        json_decref(msgs);
        return refuse(why, len, "%s", "'input' must be a string or a list of input items.");
    }
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        if (add_item(msgs, item, why, len) < 0) {
            json_decref(msgs);
            msgs = NULL;
            break;
        }
    }
    json_decref(items);
    return msgs;
}

static json_t *tools_of(const json_t *tools, char *why, size_t len)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *type = sky_json_str(t, "type", "");
        if (strcmp(type, "function")) {
            json_decref(out);
            return refuse(why, len,
                          "The tool type '%s' cannot be sent to a chat-completions deployment: "
                          "only function tools can.",
                          type);
        }
        json_t *fn = json_pack("{ss}", "name", sky_json_str(t, "name", ""));
        const char *fields[] = {"description", "parameters", "strict"};
        for (size_t k = 0; k < 3; k++)
            if (json_object_get(t, fields[k]) && !json_is_null(json_object_get(t, fields[k])))
                json_object_set(fn, fields[k], json_object_get(t, fields[k]));
        json_array_append_new(out, json_pack("{ss so}", "type", "function", "function", fn));
    }
    return out;
}

static json_t *tool_choice_of(const json_t *c, char *why, size_t len)
{
    if (json_is_string(c))
        return json_deep_copy(c);
    if (strcmp(sky_json_str(c, "type", ""), "function") == 0 && sky_json_str(c, "name", NULL))
        return json_pack("{ss s{ss}}", "type", "function", "function", "name",
                         sky_json_str(c, "name", ""));
    return refuse(why, len, "%s",
                  "Only 'auto', 'none', 'required' or a named function can be sent as "
                  "tool_choice to a chat-completions deployment.");
}

/* text.format as response_format; NULL with why empty: plain text (nothing to send). */
static json_t *format_of(const json_t *text, char *why, size_t len)
{
    const json_t *f = json_object_get(text, "format");
    const char *type = sky_json_str(f, "type", "text");
    if (strcmp(type, "text") == 0)
        return NULL;
    if (strcmp(type, "json_object") == 0)
        return json_pack("{ss}", "type", "json_object");
    if (strcmp(type, "json_schema") == 0) {
        json_t *js = json_pack("{ss}", "name", sky_json_str(f, "name", "response"));
        const char *fields[] = {"schema", "strict", "description"};
        for (size_t k = 0; k < 3; k++)
            if (json_object_get(f, fields[k]))
                json_object_set(js, fields[k], json_object_get(f, fields[k]));
        return json_pack("{ss so}", "type", "json_schema", "json_schema", js);
    }
    return refuse(why, len, "The text format '%s' cannot be sent to a chat-completions deployment.",
                  type);
}

/* The settings that go across as they are, or renamed. */
static void copy_settings(const json_t *req, json_t *chat)
{
    static const char *const same[][2] = {{"temperature", "temperature"},
                                          {"top_p", "top_p"},
                                          {"user", "user"},
                                          {"parallel_tool_calls", "parallel_tool_calls"},
                                          {"max_output_tokens", "max_tokens"},
                                          {"service_tier", "service_tier"}};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        json_t *v = json_object_get(req, same[i][0]);
        if (v && !json_is_null(v))
            json_object_set(chat, same[i][1], v);
    }
    const char *effort = sky_json_str(json_object_get(req, "reasoning"), "effort", NULL);
    if (effort)
        json_object_set_new(chat, "reasoning_effort", json_string(effort));
    if (sky_json_bool(req, "stream", 0)) {
        json_object_set_new(chat, "stream", json_true());
        json_object_set_new(chat, "stream_options", json_pack("{sb}", "include_usage", 1));
    }
}

static int named(const json_t *req, const char *key)
{
    json_t *v = json_object_get(req, key);
    return v && !json_is_null(v);
}

/* The first parameter of @p req that chat cannot carry, or NULL. */
static const char *unknown_param(json_t *req)
{
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v)
    {
        if (json_is_null(v))
            continue;
        if (!is_known(key))
            return key;
    }
    return NULL;
}

/* Tools, tool choice and the text format, into @p chat: 0, or -1 with why. */
static int add_options(const json_t *req, json_t *chat, char *why, size_t len)
{
    json_t *tools = json_object_get(req, "tools");
    if (json_array_size(tools) > 0) {
        json_t *t = tools_of(tools, why, len);
        if (!t)
            return -1;
        json_object_set_new(chat, "tools", t);
    }
    json_t *choice = json_object_get(req, "tool_choice");
    if (choice && !json_is_null(choice)) {
        json_t *c = tool_choice_of(choice, why, len);
        if (!c)
            return -1;
        json_object_set_new(chat, "tool_choice", c);
    }
    why[0] = '\0';
    json_t *format = format_of(json_object_get(req, "text"), why, len);
    if (!format && why[0])
        return -1;
    if (format)
        json_object_set_new(chat, "response_format", format);
    return 0;
}

json_t *sky__gw_rc_request(json_t *req, const char *model, char *why, size_t why_len)
{
    if (named(req, "previous_response_id") || named(req, "conversation"))
        return refuse(why, why_len, "%s",
                      "previous_response_id and conversation need the gateway's store (skyio "
                      "serve --state or --postgres) when the model's deployment speaks chat "
                      "completions only.");
    const char *bad = unknown_param(req);
    if (bad)
        return refuse(why, why_len,
                      "The parameter '%s' cannot be sent to a chat-completions deployment.", bad);
    json_t *msgs = messages_of(req, why, why_len);
    if (!msgs)
        return NULL;
    json_t *chat = json_pack("{so}", "messages", msgs);
    if (chat && model)
        json_object_set_new(chat, "model", json_string(model));
    if (chat == NULL)
        return refuse(why, why_len, "%s", "out of memory");
    copy_settings(req, chat);
    if (add_options(req, chat, why, why_len) < 0) {
        json_decref(chat);
        return NULL;
    }
    return chat;
}

/* ---- the answer ---- */

json_t *sky__gw_rc_usage(const json_t *u)
{
    if (!json_is_object(u))
        return NULL;
    json_int_t in = sky_json_int(u, "prompt_tokens", 0),
               out = sky_json_int(u, "completion_tokens", 0);
    json_int_t cached =
        sky_json_int(json_object_get(u, "prompt_tokens_details"), "cached_tokens", 0);
    json_int_t reasoning =
        sky_json_int(json_object_get(u, "completion_tokens_details"), "reasoning_tokens", 0);
    return json_pack("{sI s{sI} sI s{sI} sI}", "input_tokens", in, "input_tokens_details",
                     "cached_tokens", cached, "output_tokens", out, "output_tokens_details",
                     "reasoning_tokens", reasoning, "total_tokens",
                     sky_json_int(u, "total_tokens", in + out));
}

/* @p key of @p req, or @p dflt (stolen) when it is missing or null. */
static json_t *echo(const json_t *req, const char *key, json_t *dflt)
{
    json_t *v = json_object_get(req, key);
    if (v == NULL || json_is_null(v))
        return dflt;
    json_decref(dflt);
    return json_deep_copy(v);
}

json_t *sky__gw_rc_response(const json_t *req, const char *id, const char *model, json_t *output,
                            const char *status, const char *incomplete, json_t *usage)
{
    json_t *r = json_pack("{ss ss sI ss sn ss}", "id", id, "object", "response", "created_at",
                          (json_int_t)time(NULL), "status", status, "error", "model",
                          model ? model : sky_json_str(req, "model", ""));
    if (r == NULL) {
        json_decref(output);
        json_decref(usage);
        return NULL;
    }
    json_object_set_new(r, "incomplete_details",
                        incomplete ? json_pack("{ss}", "reason", incomplete) : json_null());
    json_object_set_new(r, "output", output);
    json_object_set_new(r, "usage", usage ? usage : json_null());
    static const char *const nullable[] = {"instructions", "max_output_tokens",    "temperature",
                                           "top_p",        "previous_response_id", "user"};
    for (size_t i = 0; i < sizeof(nullable) / sizeof(nullable[0]); i++)
        json_object_set_new(r, nullable[i], echo(req, nullable[i], json_null()));
    json_object_set_new(r, "parallel_tool_calls", echo(req, "parallel_tool_calls", json_true()));
    json_object_set_new(r, "tool_choice", echo(req, "tool_choice", json_string("auto")));
    json_object_set_new(r, "tools", echo(req, "tools", json_array()));
    json_object_set_new(r, "text",
                        echo(req, "text", json_pack("{s{ss}}", "format", "type", "text")));
    json_object_set_new(r, "store", echo(req, "store", json_true()));
    json_object_set_new(r, "metadata", echo(req, "metadata", json_object()));
    const json_t *conv = json_object_get(req, "conversation");
    if (json_is_string(conv))
        json_object_set_new(r, "conversation", json_pack("{sO}", "id", conv));
    else if (json_is_object(conv))
        json_object_set_new(r, "conversation", json_deep_copy(conv));
    return r;
}

static json_t *call_item(const json_t *call)
{
    char id[48];
    sky__gw_new_id("fc", id);
    const json_t *fn = json_object_get(call, "function");
    return json_pack("{ss ss ss ss ss ss}", "id", id, "type", "function_call", "status",
                     "completed", "call_id", sky_json_str(call, "id", id), "name",
                     sky_json_str(fn, "name", ""), "arguments", sky_json_str(fn, "arguments", ""));
}

static json_t *message_item(const char *text)
{
    char id[48];
    sky__gw_new_id("msg", id);
    return json_pack("{ss ss ss ss s[{ss ss s[]}]}", "id", id, "type", "message", "status",
                     "completed", "role", "assistant", "content", "type", "output_text", "text",
                     text, "annotations");
}

static const char *incomplete_of(const char *finish)
{
    if (finish && strcmp(finish, "length") == 0)
        return "max_output_tokens";
    if (finish && strcmp(finish, "content_filter") == 0)
        return "content_filter";
    return NULL;
}

json_t *sky__gw_rc_reply(const json_t *chat, const json_t *req, const char *id)
{
    const json_t *choice = json_array_get(json_object_get(chat, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg))
        return NULL;
    json_t *output = json_array();
    const char *text = sky_json_str(msg, "content", NULL);
    json_t *calls = json_object_get(msg, "tool_calls");
    if (text || json_array_size(calls) == 0)
        json_array_append_new(output, message_item(text ? text : ""));
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) json_array_append_new(output, call_item(c));
    const char *incomplete = incomplete_of(sky_json_str(choice, "finish_reason", NULL));
    return sky__gw_rc_response(req, id, sky_json_str(chat, "model", NULL), output,
                               incomplete ? "incomplete" : "completed", incomplete,
                               sky__gw_rc_usage(json_object_get(chat, "usage")));
}
