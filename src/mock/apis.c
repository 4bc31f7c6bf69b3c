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

json_t *sky__mock_responses_body(const sky__mock_text *t)
{
    sky_buf text;
    char msg_id[64];
    if (words(&text, t) < 0) {
        sky_buf_free(&text);
        return NULL;
    }
    /* the message item's id follows the response's: resp_X -> msg_X */
    const char *tail = strchr(t->id, '_');
    snprintf(msg_id, sizeof(msg_id), "msg_%s", tail ? tail + 1 : t->id);
    json_t *body = json_pack(
        "{s:s,s:s,s:I,s:s,s:n,s:n,s:n,s:s,"
        "s:[{s:s,s:s,s:s,s:s,s:[{s:s,s:s%,s:[]}]}],"
        "s:{s:I,s:{s:i},s:I,s:{s:i},s:I}}",
        "id", t->id, "object", "response", "created_at", (json_int_t)t->created, "status",
        t->has_max ? "incomplete" : "completed", "error", "incomplete_details", "instructions",
        "model", t->model, "output", "type", "message", "id", msg_id, "status",
        t->has_max ? "incomplete" : "completed", "role", "assistant", "content", "type",
        "output_text", "text", text.data ? text.data : "", text.len, "annotations", "usage",
        "input_tokens", (json_int_t)t->prompt_tokens, "input_tokens_details", "cached_tokens", 0,
        "output_tokens", (json_int_t)t->n_tokens, "output_tokens_details", "reasoning_tokens", 0,
        "total_tokens", (json_int_t)(t->prompt_tokens + t->n_tokens));
    sky_buf_free(&text);
    if (body && t->has_max &&
        json_object_set_new(body, "incomplete_details",
                            json_pack("{s:s}", "reason", "max_output_tokens")) < 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

json_t *sky__mock_completion_body(const sky__mock_text *t)
{
    sky_buf text;
    if (words(&text, t) < 0) {
        sky_buf_free(&text);
        return NULL;
    }
    json_t *body =
        json_pack("{s:s,s:s,s:I,s:s,s:[{s:s%,s:i,s:n,s:s}],s:{s:I,s:I,s:I}}", "id", t->id, "object",
                  "text_completion", "created", (json_int_t)t->created, "model", t->model,
                  "choices", "text", text.data ? text.data : "", text.len, "index", 0, "logprobs",
                  "finish_reason", t->has_max ? "length" : "stop", "usage", "prompt_tokens",
                  (json_int_t)t->prompt_tokens, "completion_tokens", (json_int_t)t->n_tokens,
                  "total_tokens", (json_int_t)(t->prompt_tokens + t->n_tokens));
    sky_buf_free(&text);
    return body;
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

static json_t *moderation_result(uint64_t seed)
{
    json_t *flags = json_object(), *scores = json_object();
    json_t *result = flags && scores ? json_pack("{s:b,s:O,s:O}", "flagged", 0, "categories", flags,
                                                 "category_scores", scores)
                                     : NULL;
    int rc = result ? 0 : -1;
    uint64_t s = seed;
    for (size_t i = 0; rc == 0 && i < SKY_ARRAY_LEN(categories); i++) {
        /* small and stable: the same input scores the same */
        double score = sky__mock_rand01(&s) * 0.001;
        rc = json_object_set_new(flags, categories[i], json_false());
        rc = rc ? rc : json_object_set_new(scores, categories[i], json_real(score));
    }
    json_decref(flags);
    json_decref(scores);
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
