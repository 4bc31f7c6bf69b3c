/*
 * Chat completion replies that follow the request, built with jansson: "n" choices,
 * JSON under response_format (json_object, or a value of the json_schema), a tool call
 * under tool_choice "required" or a named function, and the fields the SDKs model.
 * Azure's replies carry its content filter results. The plain reply, the one the
 * benchmarks ask for, is written by hand in reply.c with the same fields. A stream of such
 * a reply follows a plan made here: each choice's text or tool arguments cut into the
 * pieces its chunks carry, one piece per token tick.
 */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/json.h"
#include "worker.h"

int sky__mock_chat_is_plain(const sky__mock_call *c)
{
    return !c->azure && c->n_choices <= 1 && c->format == SKY__FORMAT_TEXT && c->tool == NULL;
}

/* Azure's verdict on a text: every category safe, nothing filtered. */
static json_t *filter_results(void)
{
    static const char *const categories[] = {"hate", "self_harm", "sexual", "violence"};
    json_t *r = json_object();
    for (size_t i = 0; r && i < SKY_ARRAY_LEN(categories); i++)
        json_object_set_new(r, categories[i],
                            json_pack("{s:b,s:s}", "filtered", 0, "severity", "safe"));
    return r;
}

static json_t *prompt_filter_results(void)
{
    return json_pack("[{s:i,s:o}]", "prompt_index", 0, "content_filter_results", filter_results());
}

json_t *sky__mock_prompt_filter_chunk(void)
{
    return json_pack("{s:s,s:s,s:i,s:s,s:[],s:o}", "id", "", "object", "", "created", 0, "model",
                     "", "choices", "prompt_filter_results", prompt_filter_results());
}

static json_t *words_text(uint64_t seed, int n)
{
    sky_buf text;
    sky_buf_init(&text, 16u * 1024u * 1024u);
    json_t *out = sky__mock_words(&text, seed, n) < 0
                      ? NULL
                      : json_stringn(text.data ? text.data : "", text.len);
    sky_buf_free(&text);
    return out;
}

/* @p v (consumed) as compact JSON text in a JSON string, and its length in tokens. */
static json_t *dumped(json_t *v, int *out_tokens)
{
    size_t len = 0;
    char *text = v ? sky_json_dump(v, &len) : NULL;
    json_decref(v);
    json_t *out = text ? json_stringn(text, len) : NULL;
    free(text);
    *out_tokens = (int)sky__mock_estimate_tokens(len);
    return out;
}

static json_t *tool_call(const sky__mock_call *c, int index, uint64_t seed, int *out_tokens)
{
    char id[48];
    snprintf(id, sizeof(id), "call_%s_%d", c->id, index);
    json_t *params = json_object_get(c->tool, "parameters");
    json_t *args = dumped(params ? sky__mock_from_schema(params, seed) : json_object(), out_tokens);
    return args ? json_pack("{s:s,s:s,s:{s:s,s:o}}", "id", id, "type", "function", "function",
                            "name", sky_json_str(c->tool, "name", ""), "arguments", args)
                : NULL;
}

void sky__mock_chat_choice(const sky__mock_call *c, int index, json_t **out_text,
                           json_t **out_tool_call, int *out_tokens, const char **out_finish)
{
    /* the first choice says what a single-choice reply says */
    uint64_t seed = c->seed + (uint64_t)index * 0x9e3779b97f4a7c15u;
    *out_text = *out_tool_call = NULL;
    *out_tokens = c->n_tokens;
    *out_finish = c->has_max ? "length" : "stop";
    if (c->tool) {
        *out_tool_call = tool_call(c, index, seed, out_tokens);
        *out_finish = "tool_calls";
    } else if (c->format == SKY__FORMAT_SCHEMA) {
        *out_text = dumped(sky__mock_from_schema(c->schema, seed), out_tokens);
        *out_finish = "stop"; /* a cut JSON text would not parse */
    } else if (c->format == SKY__FORMAT_JSON) {
        *out_text = dumped(json_pack("{s:o}", "answer", words_text(seed, c->n_tokens)), out_tokens);
        *out_finish = "stop";
    } else {
        *out_text = words_text(seed, c->n_tokens);
    }
}

static json_t *choice(const sky__mock_call *c, int index, int *out_tokens)
{
    json_t *text, *call;
    const char *finish;
    sky__mock_chat_choice(c, index, &text, &call, out_tokens, &finish);
    if (text == NULL && call == NULL)
        return NULL;
    json_t *msg = json_pack("{s:s,s:o,s:n,s:[]}", "role", "assistant", "content",
                            text ? text : json_null(), "refusal", "annotations");
    if (msg && call)
        json_object_set_new(msg, "tool_calls", json_pack("[o]", call));
    else
        json_decref(call);
    json_t *ch = msg ? json_pack("{s:i,s:o,s:n,s:s}", "index", index, "message", msg, "logprobs",
                                 "finish_reason", finish)
                     : NULL;
    if (ch && c->azure)
        json_object_set_new(ch, "content_filter_results", filter_results());
    return ch;
}

static json_t *usage(int64_t prompt, int64_t completion)
{
    return json_pack("{s:I,s:I,s:I,s:{s:i,s:i},s:{s:i,s:i,s:i,s:i}}", "prompt_tokens",
                     (json_int_t)prompt, "completion_tokens", (json_int_t)completion,
                     "total_tokens", (json_int_t)(prompt + completion), "prompt_tokens_details",
                     "cached_tokens", 0, "audio_tokens", 0, "completion_tokens_details",
                     "reasoning_tokens", 0, "audio_tokens", 0, "accepted_prediction_tokens", 0,
                     "rejected_prediction_tokens", 0);
}

json_t *sky__mock_chat_body(const sky__mock_call *c)
{
    json_t *choices = json_array();
    int64_t completion = 0;
    for (int i = 0; choices && i < (c->n_choices > 0 ? c->n_choices : 1); i++) {
        int tokens = 0;
        json_t *ch = choice(c, i, &tokens);
        if (ch == NULL || json_array_append_new(choices, ch) < 0) {
            json_decref(choices);
            return NULL;
        }
        completion += tokens;
    }
    json_t *body =
        choices ? json_pack("{s:s,s:s,s:I,s:s,s:o,s:o,s:s,s:s}", "id", c->id, "object",
                            "chat.completion", "created", (json_int_t)c->created, "model", c->model,
                            "choices", choices, "usage", usage(c->prompt_tokens, completion),
                            "service_tier", "default", "system_fingerprint", "fp_skyio_mock")
                : NULL;
    if (body && c->azure)
        json_object_set_new(body, "prompt_filter_results", prompt_filter_results());
    return body;
}

/* The pieces a stream sends of @p text: words with their leading space for prose, about
 * four bytes (a token's worth, never inside a UTF-8 character) for JSON. */
static json_t *pieces_of(const char *text, int prose)
{
    json_t *out = json_array();
    size_t len = strlen(text), at = 0;
    while (out && at < len) {
        size_t n = 1;
        if (prose)
            while (at + n < len && text[at + n] != ' ')
                n++;
        else
            n = len - at < 4 ? len - at : 4;
        while (at + n < len && ((unsigned char)text[at + n] & 0xC0) == 0x80)
            n++;
        if (json_array_append_new(out, json_stringn(text + at, n)) < 0) {
            json_decref(out);
            return NULL;
        }
        at += n;
    }
    return out;
}

/* Choice @p index of a plan: {pieces, call (its id and name, or null), finish, tokens}. */
static json_t *plan_choice(const sky__mock_call *c, int index)
{
    json_t *text, *call;
    int tokens = 0;
    const char *finish;
    sky__mock_chat_choice(c, index, &text, &call, &tokens, &finish);
    const char *body = call ? sky_json_str(json_object_get(call, "function"), "arguments", "")
                            : json_string_value(text);
    json_t *pieces = body ? pieces_of(body, c->format == SKY__FORMAT_TEXT && !call) : NULL;
    json_t *out = pieces ? json_pack("{s:o,s:O?,s:s,s:i}", "pieces", pieces, "call", call, "finish",
                                     finish, "tokens", tokens)
                         : NULL;
    json_decref(text);
    json_decref(call);
    return out;
}

json_t *sky__mock_chat_plan(const sky__mock_call *c, int *out_steps, int *out_tokens)
{
    json_t *plan = json_array();
    int most = 0, tokens = 0; /* @p out_tokens may be c's own: set at the end */
    for (int i = 0; plan && i < (c->n_choices > 0 ? c->n_choices : 1); i++) {
        json_t *ch = plan_choice(c, i);
        if (ch == NULL || json_array_append_new(plan, ch) < 0) {
            json_decref(plan);
            return NULL;
        }
        int steps = (int)json_array_size(json_object_get(ch, "pieces"));
        most = steps > most ? steps : most;
        tokens += (int)sky_json_int(ch, "tokens", 0);
    }
    *out_steps = most;
    *out_tokens = tokens;
    return plan;
}
