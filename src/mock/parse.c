/*
 * Reading what a client asks of a model call: the JSON body of each kind of
 * call, as the providers read it, and the Content-Type. No server here: the
 * fuzz target calls these directly.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "skyio/json.h"
#include "internal.h"

static int64_t count_message_chars(const json_t *messages)
{
    size_t i, chars = 0;
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        const json_t *content = json_object_get(msg, "content");
        if (json_is_string(content)) {
            chars += json_string_length(content);
        } else if (json_is_array(content)) {
            size_t j;
            json_t *part;
            json_array_foreach(content, j, part) chars += strlen(sky_json_str(part, "text", ""));
        }
    }
    return (int64_t)chars;
}

/* The reply is @p max tokens long when the request set a limit (0: it did not). */
static void set_length(sky__mock_request *q, int64_t max)
{
    q->has_max = max > 0;
    q->n_tokens = max > 0 ? (int)(max > 100000 ? 100000 : max) : q->n_tokens;
}

/* The function of tools[] named @p name, or the first when @p name is NULL. */
static const json_t *find_tool(const json_t *tools, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        const char *fn_name = sky_json_str(fn, "name", NULL);
        if (fn_name && (name == NULL || strcmp(fn_name, name) == 0))
            return fn;
    }
    return NULL;
}

/* Function @p k (modulo their number) of tools[]; NULL when it has none. */
static const json_t *nth_tool(const json_t *tools, uint64_t k)
{
    size_t i, n = 0;
    json_t *t;
    json_array_foreach(tools, i, t) n +=
        sky_json_str(json_object_get(t, "function"), "name", NULL) != NULL;
    if (n == 0)
        return NULL;
    k %= n;
    json_array_foreach(tools, i, t)
    {
        const json_t *fn = json_object_get(t, "function");
        if (sky_json_str(fn, "name", NULL) && k-- == 0)
            return fn;
    }
    return NULL;
}

/*
 * The function the reply calls: under tool_choice "required" the first, under a named
 * function that one. Under "auto" (the default when tools are given) the seed decides, as
 * a model would: about half the bodies get prose, the others a call of one of the tools.
 * "none" answers in prose.
 */
static const char *parse_tools(sky__mock_request *q, const json_t *req)
{
    const json_t *tools = json_object_get(req, "tools");
    const json_t *choice = json_object_get(req, "tool_choice");
    const char *named = sky_json_str(json_object_get(choice, "function"), "name", NULL);
    if (tools && !json_is_array(tools))
        return "'tools' must be an array";
    int required = json_is_string(choice) && strcmp(json_string_value(choice), "required") == 0;
    int is_auto = choice == NULL || json_is_null(choice) ||
                  (json_is_string(choice) && strcmp(json_string_value(choice), "auto") == 0);
    if (is_auto) {
        uint64_t s = q->seed ^ 0x5bd1e9955bd1e995u;
        uint64_t draw = sky__mock_rand(&s);
        q->tool = (draw & 1) ? nth_tool(tools, draw >> 1) : NULL;
        return NULL;
    }
    if (!required && named == NULL)
        return NULL;
    q->tool = find_tool(tools, named); /* "required": the first */
    return q->tool ? NULL : "'tool_choice' names no function of 'tools'";
}

static const char *parse_format(sky__mock_request *q, const json_t *req)
{
    const json_t *rf = json_object_get(req, "response_format");
    const char *type = sky_json_str(rf, "type", "text");
    if (strcmp(type, "json_object") == 0) {
        q->format = SKY__FORMAT_JSON;
    } else if (strcmp(type, "json_schema") == 0) {
        q->format = SKY__FORMAT_SCHEMA;
        q->schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
        if (!json_is_object(q->schema))
            return "'response_format.json_schema.schema' must be an object";
    } else if (strcmp(type, "text") != 0) {
        return "'response_format.type' must be 'text', 'json_object' or 'json_schema'";
    }
    return NULL;
}

static const char *parse_chat(sky__mock_request *q, const json_t *req)
{
    const json_t *messages = json_object_get(req, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return "'messages' is required and must be a non-empty array";
    int64_t max = sky_json_int(req, "max_completion_tokens", sky_json_int(req, "max_tokens", 0));
    if (max < 0)
        return "'max_tokens' must be positive";
    set_length(q, max);
    int64_t n = sky_json_int(req, "n", 1);
    if (n < 1 || n > 128)
        return "'n' must be between 1 and 128";
    q->n_choices = (int)n;
    const char *problem = parse_format(q, req);
    if (problem || (problem = parse_tools(q, req)) != NULL)
        return problem;
    q->stream = sky_json_bool(req, "stream", 0);
    q->include_usage = sky_json_bool(json_object_get(req, "stream_options"), "include_usage", 0);
    q->prompt_tokens = sky__mock_estimate_tokens((size_t)count_message_chars(messages)) +
                       4 * (int64_t)json_array_size(messages);
    return NULL;
}

static const char *parse_embed(sky__mock_request *q, const json_t *req)
{
    const json_t *input = json_object_get(req, "input");
    size_t chars = 0;
    if (json_is_string(input)) {
        q->n_inputs = 1;
        chars = json_string_length(input);
    } else if (json_is_array(input) && json_array_size(input) > 0) {
        size_t i;
        json_t *v;
        q->n_inputs = (int)json_array_size(input);
        json_array_foreach(input, i, v) chars +=
            json_is_string(v) ? json_string_length(v) : 4 * json_array_size(v);
    } else {
        return "'input' is required: a string or an array";
    }
    int64_t dim = sky_json_int(req, "dimensions", q->dim);
    if (dim <= 0 || dim > 65536)
        return "'dimensions' must be between 1 and 65536";
    q->dim = (int)dim;
    const char *format = sky_json_str(req, "encoding_format", "float");
    if (strcmp(format, "float") != 0 && strcmp(format, "base64") != 0)
        return "'encoding_format' must be 'float' or 'base64'";
    q->base64 = strcmp(format, "base64") == 0;
    q->prompt_tokens = sky__mock_estimate_tokens(chars);
    return NULL;
}

static const char *parse_responses(sky__mock_request *q, const json_t *req, char **out_instructions)
{
    const json_t *input = json_object_get(req, "input");
    if (!json_is_string(input) && !json_is_array(input))
        return "'input' is required: a string or an array of input items";
    q->stream = sky_json_bool(req, "stream", 0);
    int64_t max = sky_json_int(req, "max_output_tokens", 0);
    if (max < 0)
        return "'max_output_tokens' must be positive";
    set_length(q, max);
    const json_t *instructions = json_object_get(req, "instructions");
    int64_t chars = sky__mock_input_chars(input) + sky__mock_input_chars(instructions);
    if (json_is_string(instructions) &&
        (*out_instructions = strdup(json_string_value(instructions))) == NULL)
        return "out of memory";
    q->prompt_tokens = sky__mock_estimate_tokens((size_t)chars);
    return NULL;
}

static const char *parse_completion(sky__mock_request *q, const json_t *req)
{
    const json_t *prompt = json_object_get(req, "prompt");
    if (!json_is_string(prompt) && (!json_is_array(prompt) || json_array_size(prompt) == 0))
        return "'prompt' is required: a string, an array of strings or of token ids";
    q->stream = sky_json_bool(req, "stream", 0);
    q->include_usage = sky_json_bool(json_object_get(req, "stream_options"), "include_usage", 0);
    int64_t max = sky_json_int(req, "max_tokens", 0);
    if (max < 0)
        return "'max_tokens' must be positive";
    set_length(q, max);
    q->prompt_tokens = sky__mock_estimate_tokens((size_t)sky__mock_input_chars(prompt));
    /* one choice per prompt: a string or token ids are one, a list of them several */
    const json_t *first = json_array_get(prompt, 0);
    q->n_inputs = json_is_string(first) || json_is_array(first) ? (int)json_array_size(prompt) : 1;
    if (q->n_inputs > 128)
        return "'prompt' may hold at most 128 prompts in one request";
    return NULL;
}

static const char *parse_moderation(sky__mock_request *q, const json_t *req)
{
    const json_t *input = json_object_get(req, "input");
    if (!json_is_string(input) && (!json_is_array(input) || json_array_size(input) == 0))
        return "'input' is required: a string or a non-empty array";
    /* strings are judged one by one; text and image parts together, as one input */
    q->n_inputs = json_is_string(json_array_get(input, 0)) ? (int)json_array_size(input) : 1;
    if (q->n_inputs > 2048)
        return "'input' may hold at most 2048 strings in one request";
    q->prompt_tokens = sky__mock_estimate_tokens((size_t)sky__mock_input_chars(input));
    return NULL;
}

const char *sky__mock_parse_call(int kind, const json_t *req, sky__mock_request *q,
                                 char **out_instructions)
{
    *out_instructions = NULL;
    switch (kind) {
    case SKY__MOCK_CHAT:
        return parse_chat(q, req);
    case SKY__MOCK_EMBEDDINGS:
        return parse_embed(q, req);
    case SKY__MOCK_RESPONSES:
        return parse_responses(q, req, out_instructions);
    case SKY__MOCK_COMPLETIONS:
        return parse_completion(q, req);
    case SKY__MOCK_MODERATIONS:
        return parse_moderation(q, req);
    default:
        return "unknown kind of call";
    }
}

const char *sky__mock_parse_request(int kind, const json_t *req, int default_tokens, int dim,
                                    sky__mock_request *out)
{
    char *instructions = NULL;
    memset(out, 0, sizeof(*out));
    out->n_tokens = default_tokens;
    out->dim = dim;
    const char *problem = sky__mock_parse_call(kind, req, out, &instructions);
    free(instructions);
    return problem;
}

int sky__mock_json_media_type(sky_span v)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;
    if (v.len < n || strncasecmp(v.ptr, want, n) != 0)
        return 0;
    return v.len == n || v.ptr[n] == ';' || v.ptr[n] == ' ' || v.ptr[n] == '\t';
}
