/*
 * The mock's other three batch endpoints: the Responses API, the legacy
 * Completions API and Moderations. A batch file may name any of the five urls
 * of the OpenAI Batch API, so a user must be able to run every one of them
 * offline. The replies have the shapes of the API reference; their words come
 * from the same vocabulary as a chat reply's.
 */
#include <stdio.h>
#include <string.h>

#include "skyio/json.h"
#include "internal.h"

enum { INPUT_DEPTH_MAX = 8 };

static int64_t input_chars(const json_t *v, int depth)
{
    if (v == NULL || depth > INPUT_DEPTH_MAX)
        return 0;
    if (json_is_string(v))
        return (int64_t)json_string_length(v);
    if (json_is_integer(v))
        return 4; /* a token id of a pre-tokenised prompt */
    int64_t sum = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) sum += input_chars(item, depth + 1);
        return sum;
    }
    if (json_is_object(v)) {
        const json_t *text = json_object_get(v, "text");
        if (json_is_string(text))
            sum += (int64_t)json_string_length(text);
        sum += input_chars(json_object_get(v, "content"), depth + 1);
    }
    return sum;
}

int64_t sky__mock_input_chars(const json_t *v)
{
    return input_chars(v, 0);
}

/* The reply's words in @p text (sky_buf_free it; data is NULL when there are none). */
static int words(sky_buf *text, const sky__mock_text *t)
{
    sky_buf_init(text, 16u * 1024u * 1024u);
    return sky__mock_words(text, t->seed, t->n_tokens);
}

/* ---- Responses ---- */

/* The status a response ends in, and why it is incomplete (NULL when it is not). */
static const char *final_status(const sky__mock_text *t, const char **out_reason)
{
    *out_reason = t->stop_reason ? t->stop_reason : t->has_max ? "max_output_tokens" : NULL;
    return *out_reason ? "incomplete" : "completed";
}

/* The message item's id follows the response's: resp_X -> msg_X. */
static void message_id(const sky__mock_text *t, char *out, size_t size)
{
    const char *tail = strchr(t->id, '_');
    snprintf(out, size, "msg_%s", tail ? tail + 1 : t->id);
}

static json_t *text_part(const sky_buf *text)
{
    return json_pack("{s:s,s:s%,s:[]}", "type", "output_text", "text", text->data ? text->data : "",
                     text->len, "annotations");
}

/* The assistant's message; its content is empty until the text is done (@p text NULL). */
static json_t *message_item(const sky__mock_text *t, const char *status, const sky_buf *text)
{
    char id[64];
    message_id(t, id, sizeof(id));
    json_t *content = text ? json_pack("[o]", text_part(text)) : json_array();
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "type", "message", "id", id, "status", status, "role",
                     "assistant", "content", content);
}

/* The response object: while "in_progress" it has no output and no usage yet. */
static json_t *response_object(const sky__mock_text *t, const char *status, const char *reason,
                               const sky_buf *text)
{
    int done = strcmp(status, "in_progress") != 0;
    json_t *output = done ? json_pack("[o]", message_item(t, status, text)) : json_array();
    json_t *usage = done ? json_pack("{s:I,s:{s:i},s:I,s:{s:i},s:I}", "input_tokens",
                                     (json_int_t)t->prompt_tokens, "input_tokens_details",
                                     "cached_tokens", 0, "output_tokens", (json_int_t)t->n_tokens,
                                     "output_tokens_details", "reasoning_tokens", 0, "total_tokens",
                                     (json_int_t)(t->prompt_tokens + t->n_tokens))
                         : json_null();
    json_t *details = reason ? json_pack("{s:s}", "reason", reason) : json_null();
    json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:n,s:o,s:o,s:s,s:o,s:o}", "id", t->id, "object",
                             "response", "created_at", (json_int_t)t->created, "status", status,
                             "error", "incomplete_details", details, "instructions",
                             t->instructions ? json_string(t->instructions) : json_null(), "model",
                             t->model, "output", output, "usage", usage);
    /* the settings a reply echoes, as the provider's defaults (SDKs model them as fields) */
    json_t *settings = json_pack(
        "{s:o,s:b,s:s,s:[],s:f,s:f,s:{},s:{s:{s:s}},s:s,s:n,s:b}", "max_output_tokens",
        t->limit > 0 ? json_integer(t->limit) : json_null(), "parallel_tool_calls", 1,
        "tool_choice", "auto", "tools", "temperature", 1.0, "top_p", 1.0, "metadata", "text",
        "format", "type", "text", "truncation", "disabled", "previous_response_id", "store", 1);
    if (body == NULL || settings == NULL || json_object_update(body, settings) < 0) {
        json_decref(body);
        body = NULL;
    }
    json_decref(settings);
    return body;
}

json_t *sky__mock_responses_body(const sky__mock_text *t)
{
    sky_buf text;
    const char *reason;
    if (words(&text, t) < 0) {
        sky_buf_free(&text);
        return NULL;
    }
    const char *status = final_status(t, &reason);
    json_t *body = response_object(t, status, reason, &text);
    sky_buf_free(&text);
    return body;
}

/* The fields every event on the message's text has. */
static json_t *text_event(const sky__mock_text *t, const char *type, int seq)
{
    char id[64];
    message_id(t, id, sizeof(id));
    return json_pack("{s:s,s:i,s:s,s:i,s:i}", "type", type, "sequence_number", seq, "item_id", id,
                     "output_index", 0, "content_index", 0);
}

static json_t *responses_event(const sky__mock_text *t, int ev, int seq, const char *delta,
                               const sky_buf *text, const char **out_type)
{
    const char *reason, *status = final_status(t, &reason);
    json_t *e = NULL;
    switch (ev) {
    case SKY__RE_CREATED:
    case SKY__RE_IN_PROGRESS:
        *out_type = ev == SKY__RE_CREATED ? "response.created" : "response.in_progress";
        return json_pack("{s:s,s:i,s:o}", "type", *out_type, "sequence_number", seq, "response",
                         response_object(t, "in_progress", NULL, NULL));
    case SKY__RE_ITEM_ADDED:
    case SKY__RE_ITEM_DONE:
        *out_type =
            ev == SKY__RE_ITEM_ADDED ? "response.output_item.added" : "response.output_item.done";
        return json_pack("{s:s,s:i,s:i,s:o}", "type", *out_type, "sequence_number", seq,
                         "output_index", 0, "item",
                         ev == SKY__RE_ITEM_ADDED ? message_item(t, "in_progress", NULL)
                                                  : message_item(t, status, text));
    case SKY__RE_PART_ADDED:
    case SKY__RE_PART_DONE: {
        sky_buf empty = {0};
        *out_type =
            ev == SKY__RE_PART_ADDED ? "response.content_part.added" : "response.content_part.done";
        e = text_event(t, *out_type, seq);
        if (e &&
            json_object_set_new(e, "part", text_part(ev == SKY__RE_PART_ADDED ? &empty : text)) < 0)
            break;
        return e;
    }
    case SKY__RE_DELTA:
    case SKY__RE_TEXT_DONE:
        *out_type =
            ev == SKY__RE_DELTA ? "response.output_text.delta" : "response.output_text.done";
        e = text_event(t, *out_type, seq);
        if (e &&
            (json_object_set_new(e, ev == SKY__RE_DELTA ? "delta" : "text",
                                 ev == SKY__RE_DELTA
                                     ? json_string(delta)
                                     : json_stringn(text->data ? text->data : "", text->len)) < 0 ||
             json_object_set_new(e, "logprobs", json_array()) < 0))
            break;
        return e;
    case SKY__RE_END:
        *out_type = reason ? "response.incomplete" : "response.completed";
        return json_pack("{s:s,s:i,s:o}", "type", *out_type, "sequence_number", seq, "response",
                         response_object(t, status, reason, text));
    default:
        *out_type = "error";
        return json_pack("{s:s,s:i,s:s,s:s,s:n}", "type", "error", "sequence_number", seq, "code",
                         "server_error", "message",
                         "The server had an error while processing your request.", "param");
    }
    json_decref(e);
    return NULL;
}

json_t *sky__mock_responses_event(const sky__mock_text *t, int ev, int seq, const char *delta,
                                  const char **out_type)
{
    sky_buf text;
    sky_buf_init(&text, 16u * 1024u * 1024u);
    int needs_text = ev == SKY__RE_TEXT_DONE || ev == SKY__RE_PART_DONE ||
                     ev == SKY__RE_ITEM_DONE || ev == SKY__RE_END;
    if (needs_text && words(&text, t) < 0) {
        sky_buf_free(&text);
        return NULL;
    }
    json_t *e = responses_event(t, ev, seq, delta, &text, out_type);
    sky_buf_free(&text);
    return e;
}

/* ---- legacy Completions ---- */

/* The completion's tokens over all its choices: one per prompt. */
static json_int_t completion_tokens(const sky__mock_text *t)
{
    return (json_int_t)t->n_tokens * (t->n_inputs > 0 ? t->n_inputs : 1);
}

static json_t *completion_choice(const sky__mock_text *t, int index)
{
    sky__mock_text one = *t;
    sky_buf text;
    one.seed = t->seed + (uint64_t)index;
    if (words(&text, &one) < 0) {
        sky_buf_free(&text);
        return NULL;
    }
    json_t *choice =
        json_pack("{s:s%,s:i,s:n,s:s}", "text", text.data ? text.data : "", text.len, "index",
                  index, "logprobs", "finish_reason", t->has_max ? "length" : "stop");
    sky_buf_free(&text);
    return choice;
}

json_t *sky__mock_completion_body(const sky__mock_text *t)
{
    json_t *choices = json_array();
    for (int i = 0; choices && i < (t->n_inputs > 0 ? t->n_inputs : 1); i++) {
        if (json_array_append_new(choices, completion_choice(t, i)) < 0) {
            json_decref(choices);
            return NULL;
        }
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:I,s:I,s:I}}", "id", t->id, "object",
                     "text_completion", "created", (json_int_t)t->created, "model", t->model,
                     "choices", choices, "usage", "prompt_tokens", (json_int_t)t->prompt_tokens,
                     "completion_tokens", completion_tokens(t), "total_tokens",
                     (json_int_t)t->prompt_tokens + completion_tokens(t));
}

/* The categories of omni-moderation; the mock flags none. */
static const char *const categories[] = {
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
};

/* One input's verdict: nothing flagged, small stable scores, every category judged on text. */
static json_t *moderation_result(uint64_t seed)
{
    json_t *flags = json_object(), *scores = json_object(), *applied = json_object();
    json_t *result =
        flags && scores && applied
            ? json_pack("{s:b,s:O,s:O,s:O}", "flagged", 0, "categories", flags, "category_scores",
                        scores, "category_applied_input_types", applied)
            : NULL;
    int rc = result ? 0 : -1;
    uint64_t s = seed;
    for (size_t i = 0; rc == 0 && i < SKY_ARRAY_LEN(categories); i++) {
        double score = sky__mock_rand01(&s) * 0.001; /* the same input scores the same */
        rc = json_object_set_new(flags, categories[i], json_false());
        rc = rc ? rc : json_object_set_new(scores, categories[i], json_real(score));
        rc = rc ? rc : json_object_set_new(applied, categories[i], json_pack("[s]", "text"));
    }
    json_decref(flags);
    json_decref(scores);
    json_decref(applied);
    if (rc != 0) {
        json_decref(result);
        return NULL;
    }
    return result;
}

json_t *sky__mock_moderation_body(const sky__mock_text *t)
{
    json_t *results = json_array();
    for (int i = 0; results && i < t->n_inputs; i++) {
        json_t *one = moderation_result(t->seed + (uint64_t)i);
        if (one == NULL || json_array_append_new(results, one) < 0) {
            json_decref(results);
            return NULL;
        }
    }
    if (results == NULL)
        return NULL;
    return json_pack("{s:s,s:s,s:o}", "id", t->id, "model", t->model, "results", results);
}

json_t *sky__mock_completion_chunk(const sky__mock_text *t, int index, const char *text,
                                   const char *finish)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:[{s:s,s:i,s:n,s:o}]}", "id", t->id, "object",
                     "text_completion", "created", (json_int_t)t->created, "model", t->model,
                     "choices", "text", text, "index", index, "logprobs", "finish_reason",
                     finish ? json_string(finish) : json_null());
}

json_t *sky__mock_completion_usage_chunk(const sky__mock_text *t)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:[],s:{s:I,s:I,s:I}}", "id", t->id, "object",
                     "text_completion", "created", (json_int_t)t->created, "model", t->model,
                     "choices", "usage", "prompt_tokens", (json_int_t)t->prompt_tokens,
                     "completion_tokens", completion_tokens(t), "total_tokens",
                     (json_int_t)t->prompt_tokens + completion_tokens(t));
}
