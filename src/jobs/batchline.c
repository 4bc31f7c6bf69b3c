/*
 * Batch lines: input lines into requests, results into output records.
 * Everything JSON goes through jansson; this file only decides what goes where.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/batchline.h"
#include "skyio/json.h"
#include "skyio/utf8.h"
#include "batchline_internal.h"

#define ID_HEX_MAX 64
#define ID_PREFIX "batch_req_"
#define ESTIMATE_DEPTH_MAX SKY__ESTIMATE_DEPTH_MAX
#define CHARS_PER_TOKEN SKY__CHARS_PER_TOKEN

static const char *const k_urls[] = {
    "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses", "/v1/moderations",
};

static const char k_chat_url[] = "/v1/chat/completions";

void sky_batchline_options_init(sky_batchline_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_line_bytes = SKY_BATCHLINE_MAX_DEFAULT;
    opts->temperature = 1.0;
}

void sky_batchline_request_free(sky_batchline_request *req)
{
    if (req == NULL)
        return;
    free(req->custom_id);
    free(req->body);
    free(req->model);
    memset(req, 0, sizeof *req);
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* A JSON string of @p p, with U+FFFD for each byte that is not UTF-8. NULL on OOM. */
static json_t *str_lossy(const char *p, size_t n)
{
    size_t bad = sky_utf8_invalid_at(p, n);
    if (bad == n)
        return json_stringn(p, n);
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *fixed = malloc(n * 3 + 1);
    if (fixed == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = sky_utf8_seq_len((const unsigned char *)p + i, n - i);
        if (k == 0) {
            memcpy(fixed + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, p + i, k);
            o += k;
            i += k;
        }
    }
    json_t *s = json_stringn(fixed, o);
    free(fixed);
    return s;
}

/* Nonzero when @p s may be a custom_id in a record: UTF-8, no NUL, not too long. */
static int custom_id_ok(sky_span s)
{
    return (s.ptr != NULL || s.len == 0) && s.len <= SKY_BATCHLINE_CUSTOM_ID_MAX &&
           (s.len == 0 || memchr(s.ptr, '\0', s.len) == NULL) &&
           sky_utf8_invalid_at(s.ptr, s.len) == s.len;
}

/* ---- line errors ---------------------------------------------------------- */

static void lerr_init(sky_batchline_error *e, uint64_t line_no)
{
    sky_error_clear(&e->err);
    e->line = line_no;
    e->param = NULL;
    e->has_custom_id = 0;
    e->custom_id_len = 0;
    e->custom_id[0] = '\0';
}

static void lerr_custom_id(sky_batchline_error *e, sky_span id)
{
    if (!custom_id_ok(id))
        return;
    if (id.len)
        memcpy(e->custom_id, id.ptr, id.len);
    e->custom_id[id.len] = '\0';
    e->custom_id_len = id.len;
    e->has_custom_id = 1;
}

/* Record "line N: <reason>"; the reason names fields, never the line's bytes. */
static int lerr_set(sky_batchline_error *e, int code, const char *record_code, const char *param,
                    const char *fmt, ...) SKY_PRINTF(5, 6);

static int lerr_set(sky_batchline_error *e, int code, const char *record_code, const char *param,
                    const char *fmt, ...)
{
    char reason[SKY_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    sky_error_set(&e->err, code, "line %" PRIu64 ": %s", e->line, reason);
    sky_error_set_service(&e->err, record_code);
    e->param = param;
    return code;
}

static size_t line_cap(const sky_batchline_options *opts);

static int lerr_invalid(sky_batchline_error *e, const char *param, const char *reason)
{
    return lerr_set(e, SKY_EINVAL, "invalid_input", param, "%s", reason);
}

static int lerr_nomem(sky_batchline_error *e)
{
    return lerr_set(e, SKY_ENOMEM, "internal_error", NULL, "out of memory");
}

void sky_batchline_error_duplicate(sky_batchline_error *out_err, uint64_t line_no,
                                   uint64_t first_line, sky_span custom_id)
{
    lerr_init(out_err, line_no);
    lerr_custom_id(out_err, custom_id);
    if (first_line)
        lerr_set(out_err, SKY_EINVAL, "duplicate_custom_id", "custom_id",
                 "duplicate custom_id (first on line %" PRIu64 ")", first_line);
    else
        lerr_set(out_err, SKY_EINVAL, "duplicate_custom_id", "custom_id", "duplicate custom_id");
}

void sky_batchline_error_too_long(sky_batchline_error *out_err, uint64_t line_no,
                                  const sky_batchline_options *opts)
{
    lerr_init(out_err, line_no);
    lerr_set(out_err, SKY_ETOOBIG, "line_too_long", NULL, "line is longer than %zu bytes",
             line_cap(opts));
}

/* ---- token estimate ------------------------------------------------------- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Characters of prompt text in a string, a token array, parts or message items. */
static uint64_t text_chars(const json_t *v, int depth)
{
    if (v == NULL || depth > ESTIMATE_DEPTH_MAX)
        return 0;
    if (json_is_string(v))
        return sky_utf8_chars(json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return CHARS_PER_TOKEN;
    uint64_t sum = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            sum = sat_add(sum, text_chars(json_array_get(v, i), depth + 1));
        return sum;
    }
    if (json_is_object(v)) {
        const json_t *text = json_object_get(v, "text");
        if (json_is_string(text))
            sum = text_chars(text, depth + 1);
        sum = sat_add(sum, text_chars(json_object_get(v, "content"), depth + 1));
    }
    return sum;
}

static uint64_t max_tokens_of(const json_t *body)
{
    static const char *const keys[] = {"max_tokens", "max_completion_tokens", "max_output_tokens"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(keys); i++) {
        int64_t v = sky_json_int(body, keys[i], -1);
        if (v >= 0)
            return (uint64_t)v;
    }
    return 0;
}

void sky_batchline_body_estimate(const json_t *body, uint64_t *out_prompt_chars,
                                 uint64_t *out_max_tokens)
{
    uint64_t chars = 0;
    if (json_is_object(body)) {
        const json_t *instr = json_object_get(body, "instructions");
        chars = text_chars(json_object_get(body, "messages"), 0);
        chars = sat_add(chars, text_chars(json_object_get(body, "input"), 0));
        chars = sat_add(chars, text_chars(json_object_get(body, "prompt"), 0));
        if (json_is_string(instr))
            chars = sat_add(chars, text_chars(instr, 0));
    }
    if (out_prompt_chars)
        *out_prompt_chars = chars;
    if (out_max_tokens)
        *out_max_tokens = json_is_object(body) ? max_tokens_of(body) : 0;
}

/* ---- requests ------------------------------------------------------------- */

/* Fill the parts every request shares from its body: JSON text, model, estimate. */
static int request_fill_body(sky_batchline_request *req, const json_t *body, sky_batchline_error *e)
{
    req->body = sky_json_dump(body, &req->body_len);
    if (req->body == NULL)
        return lerr_nomem(e);
    const json_t *model = json_object_get(body, "model");
    if (json_is_string(model) && strlen(json_string_value(model)) == json_string_length(model)) {
        req->model = strdup(json_string_value(model));
        if (req->model == NULL)
            return lerr_nomem(e);
    }
    sky_batchline_body_estimate(body, &req->prompt_chars, &req->max_tokens);
    req->token_estimate = sky__batchline_token_estimate(req->prompt_chars, req->max_tokens);
    return 0;
}

uint64_t sky__batchline_token_estimate(uint64_t prompt_chars, uint64_t max_tokens)
{
    uint64_t prompt_tokens = prompt_chars / CHARS_PER_TOKEN + (prompt_chars % CHARS_PER_TOKEN != 0);
    return sat_add(prompt_tokens, max_tokens);
}

static size_t line_cap(const sky_batchline_options *opts)
{
    return opts && opts->max_line_bytes ? opts->max_line_bytes : SKY_BATCHLINE_MAX_DEFAULT;
}

static int is_blank(sky_span s)
{
    for (size_t i = 0; i < s.len; i++)
        if (strchr(" \t\r\n\v\f", s.ptr[i]) == NULL || s.ptr[i] == '\0')
            return 0;
    return 1;
}

/* Checks shared by both line kinds: arguments, size, BOM, blank. */
static int line_begin(sky_span *line, uint64_t line_no, const sky_batchline_options *opts,
                      sky_batchline_request *out_req, sky_batchline_error *out_err)
{
    if (out_req == NULL || out_err == NULL)
        return SKY_EINVAL;
    memset(out_req, 0, sizeof *out_req);
    lerr_init(out_err, line_no);
    if (line->ptr == NULL && line->len != 0)
        return lerr_set(out_err, SKY_EINVAL, "invalid_input", NULL, "no line given");
    size_t cap = line_cap(opts);
    if (line->len > cap)
        return lerr_set(out_err, SKY_ETOOBIG, "line_too_long", NULL,
                        "line is longer than %zu bytes", cap);
    if (line_no == 1 && line->len >= 3 && memcmp(line->ptr, "\xEF\xBB\xBF", 3) == 0) {
        line->ptr += 3;
        line->len -= 3;
    }
    return is_blank(*line) ? SKY_BATCHLINE_BLANK : 0;
}

/*
 * Whether json_loadb failed for want of memory rather than for the text: jansson
 * leaves the error text empty then (2.14 never sets json_error_out_of_memory while
 * parsing, and leaves the code byte unset).
 */
static int load_out_of_memory(const json_error_t *jerr)
{
    return jerr->text[0] == '\0' || json_error_code(jerr) == json_error_out_of_memory;
}

static int load_line(sky_span line, json_t **out_root, sky_batchline_error *e)
{
    json_error_t jerr;
    *out_root =
        json_loadb(line.ptr ? line.ptr : "", line.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (*out_root != NULL)
        return 0;
    if (load_out_of_memory(&jerr))
        return lerr_nomem(e);
    /* jansson quotes the offending token after " near "; that is line content. */
    char *near = strstr(jerr.text, " near ");
    if (near != NULL)
        *near = '\0';
    return lerr_set(e, SKY_EJSON, "invalid_json", NULL, "not valid JSON (column %d: %s)",
                    jerr.column, jerr.text);
}

/* The string member @p key, or an error naming it. */
static int need_string(const json_t *root, const char *key, const json_t **out,
                       sky_batchline_error *e)
{
    *out = json_object_get(root, key);
    if (*out == NULL)
        return lerr_set(e, SKY_EINVAL, "invalid_input", key, "lacks %s", key);
    if (!json_is_string(*out))
        return lerr_set(e, SKY_EINVAL, "invalid_input", key, "%s is not a string", key);
    return 0;
}

static int check_custom_id(const json_t *root, sky_batchline_error *e)
{
    const json_t *v;
    int rc = need_string(root, "custom_id", &v, e);
    if (rc < 0)
        return rc;
    sky_span id = sky_span_make(json_string_value(v), json_string_length(v));
    if (id.len == 0)
        return lerr_invalid(e, "custom_id", "custom_id is empty");
    if (id.len > SKY_BATCHLINE_CUSTOM_ID_MAX)
        return lerr_set(e, SKY_EINVAL, "invalid_input", "custom_id",
                        "custom_id is longer than %d bytes", SKY_BATCHLINE_CUSTOM_ID_MAX);
    if (memchr(id.ptr, '\0', id.len) != NULL)
        return lerr_invalid(e, "custom_id", "custom_id holds a NUL character");
    lerr_custom_id(e, id);
    return 0;
}

static int check_method(const json_t *root, sky_batchline_error *e)
{
    const json_t *v;
    int rc = need_string(root, "method", &v, e);
    if (rc < 0)
        return rc;
    sky_span m = sky_span_make(json_string_value(v), json_string_length(v));
    if (!sky_span_eq_cstr(m, "POST"))
        return lerr_invalid(e, "method", "unsupported method (only POST)");
    return 0;
}

static int check_url(const json_t *root, const char **out_url, sky_batchline_error *e)
{
    const json_t *v;
    int rc = need_string(root, "url", &v, e);
    if (rc < 0)
        return rc;
    *out_url = sky__batchline_url(sky_span_make(json_string_value(v), json_string_length(v)));
    return *out_url ? 0 : lerr_invalid(e, "url", "unsupported url");
}

const char *sky__batchline_url(sky_span url)
{
    /* Azure OpenAI's batch files name the same paths without the /v1 */
    for (size_t i = 0; i < SKY_ARRAY_LEN(k_urls); i++) {
        size_t n = strlen(k_urls[i]), skip = url.len + 3 == n ? 3 : 0;
        if (url.len + skip == n && memcmp(url.ptr, k_urls[i] + skip, url.len) == 0)
            return k_urls[i];
    }
    return NULL;
}

static int check_body(const json_t *root, const json_t **out_body, sky_batchline_error *e)
{
    *out_body = json_object_get(root, "body");
    if (*out_body == NULL)
        return lerr_invalid(e, "body", "lacks body");
    if (!json_is_object(*out_body))
        return lerr_invalid(e, "body", "body is not a JSON object");
    /* The Batch API records whole replies, and so does skyio: a streamed reply would be
     * paid for and then not readable as one, every time it was retried. */
    if (json_is_true(json_object_get(*out_body, "stream")))
        return lerr_invalid(e, "body.stream",
                            "\"stream\": true is not supported in a batch (each result is "
                            "recorded whole): remove it or set it to false");
    return 0;
}

static int request_from_json(const json_t *root, sky_batchline_request *req, sky_batchline_error *e)
{
    if (!json_is_object(root))
        return lerr_invalid(e, NULL, "not a JSON object");
    const json_t *body = NULL;
    int rc = check_custom_id(root, e);
    if (rc == 0)
        rc = check_method(root, e);
    if (rc == 0)
        rc = check_url(root, &req->url, e);
    if (rc == 0)
        rc = check_body(root, &body, e);
    if (rc < 0)
        return rc;
    req->custom_id = strdup(json_string_value(json_object_get(root, "custom_id")));
    if (req->custom_id == NULL)
        return lerr_nomem(e);
    return request_fill_body(req, body, e);
}

/* The full reader: every line, with jansson's tree, and every error's message. */
static int line_from_tree(sky_span line, uint64_t line_no, sky_batchline_request *out_req,
                          sky_batchline_error *out_err)
{
    json_t *root;
    int rc = load_line(line, &root, out_err);
    if (rc < 0)
        return rc;
    out_req->line = line_no;
    rc = request_from_json(root, out_req, out_err);
    json_decref(root);
    if (rc < 0)
        sky_batchline_request_free(out_req);
    return rc;
}

int sky__batchline_parse_tree(sky_span line, uint64_t line_no, const sky_batchline_options *opts,
                              sky_batchline_request *out_req, sky_batchline_error *out_err)
{
    int rc = line_begin(&line, line_no, opts, out_req, out_err);
    return rc != 0 ? rc : line_from_tree(line, line_no, out_req, out_err);
}

int sky_batchline_parse(sky_span line, uint64_t line_no, const sky_batchline_options *opts,
                        sky_batchline_request *out_req, sky_batchline_error *out_err)
{
    int rc = line_begin(&line, line_no, opts, out_req, out_err);
    if (rc != 0)
        return rc;
    /* most lines are well formed: read those without a tree, the rest with jansson */
    rc = sky__batchline_scan(line, out_req);
    if (rc == SKY_ENOMEM)
        return lerr_nomem(out_err);
    if (rc == 0) {
        out_req->line = line_no;
        return 0;
    }
    return line_from_tree(line, line_no, out_req, out_err);
}

/* ---- the --text mode ------------------------------------------------------ */

/* Append a new value to an object or array; -1 when it is NULL or will not fit. */
static int obj_put(json_t *obj, const char *key, json_t *value)
{
    return value == NULL ? -1 : json_object_set_new(obj, key, value);
}

static int arr_put(json_t *arr, json_t *value)
{
    return value == NULL ? -1 : json_array_append_new(arr, value);
}

static json_t *message_new(const char *role, json_t *content)
{
    json_t *m = json_object();
    if (m == NULL || obj_put(m, "role", json_string(role)) < 0) {
        json_decref(content);
        json_decref(m);
        return NULL;
    }
    if (obj_put(m, "content", content) < 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* Options a user typed must be sendable; say which one is not. */
static int check_text_options(const sky_batchline_options *opts, sky_batchline_error *e)
{
    if (opts == NULL)
        return 0;
    if (opts->model && sky_utf8_invalid_at(opts->model, strlen(opts->model)) != strlen(opts->model))
        return lerr_invalid(e, NULL, "the model option is not valid UTF-8");
    if (opts->system &&
        sky_utf8_invalid_at(opts->system, strlen(opts->system)) != strlen(opts->system))
        return lerr_invalid(e, NULL, "the system option is not valid UTF-8");
    if (opts->has_temperature && !(opts->temperature - opts->temperature == 0.0))
        return lerr_invalid(e, NULL, "the temperature option is not a finite number");
    return 0;
}

/* {"model", "messages":[system?, user], "temperature"?, "max_tokens"?}; NULL on OOM. */
static json_t *text_body_new(sky_span text, const sky_batchline_options *opts)
{
    json_t *body = json_object();
    json_t *msgs = json_array();
    int bad = body == NULL || msgs == NULL;
    if (!bad && opts && opts->model)
        bad = obj_put(body, "model", json_string(opts->model)) < 0;
    if (!bad && opts && opts->system)
        bad = arr_put(msgs, message_new("system", json_string(opts->system))) < 0;
    if (!bad)
        bad = arr_put(msgs, message_new("user", json_stringn(text.ptr, text.len))) < 0;
    if (!bad)
        bad = json_object_set(body, "messages", msgs) < 0;
    if (!bad && opts && opts->has_temperature)
        bad = obj_put(body, "temperature", json_real(opts->temperature)) < 0;
    if (!bad && opts && opts->max_tokens > 0)
        bad = obj_put(body, opts->max_completion_tokens ? "max_completion_tokens" : "max_tokens",
                      json_integer((json_int_t)opts->max_tokens)) < 0;
    json_decref(msgs);
    if (bad) {
        json_decref(body);
        return NULL;
    }
    return body;
}

static int text_request(sky_span text, const sky_batchline_options *opts,
                        sky_batchline_request *req, sky_batchline_error *e)
{
    size_t bad = sky_utf8_invalid_at(text.ptr, text.len);
    if (bad != text.len)
        return lerr_set(e, SKY_EINVAL, "invalid_input", NULL, "not valid UTF-8 text (byte %zu)",
                        bad + 1);
    int rc = check_text_options(opts, e);
    if (rc < 0)
        return rc;
    req->custom_id = strdup(e->custom_id);
    if (req->custom_id == NULL)
        return lerr_nomem(e);
    req->url = k_chat_url;
    json_t *body = text_body_new(text, opts);
    if (body == NULL)
        return lerr_nomem(e);
    rc = request_fill_body(req, body, e);
    json_decref(body);
    return rc;
}

int sky_batchline_text_parse(sky_span line, uint64_t line_no, const sky_batchline_options *opts,
                             sky_batchline_request *out_req, sky_batchline_error *out_err)
{
    if (line.len && line.ptr && line.ptr[line.len - 1] == '\n')
        line.len--;
    if (line.len && line.ptr && line.ptr[line.len - 1] == '\r')
        line.len--;
    int rc = line_begin(&line, line_no, opts, out_req, out_err);
    if (rc != 0)
        return rc;
    char id[32];
    snprintf(id, sizeof id, "line-%" PRIu64, line_no);
    lerr_custom_id(out_err, sky_span_cstr(id));
    out_req->line = line_no;
    rc = text_request(line, opts, out_req, out_err);
    if (rc < 0)
        sky_batchline_request_free(out_req);
    return rc;
}

/* ---- output records ------------------------------------------------------- */

typedef struct dump_ctx {
    sky_buf *out;
    int rc;
} dump_ctx;

/*
 * jansson goes on printing after an object key failed to print (dump.c ignores
 * dump_string's result for keys), and then reports success: keep the first failure
 * and refuse every later chunk, so a record is whole or not written at all.
 */
static int dump_cb(const char *p, size_t n, void *data)
{
    dump_ctx *ctx = data;
    if (ctx->rc == 0)
        ctx->rc = sky_buf_append(ctx->out, p, n);
    return ctx->rc < 0 ? -1 : 0;
}

/* Append @p rec (consumed) as one compact line; on failure restore @p out. */
static int record_emit(sky_buf *out, json_t *rec)
{
    if (rec == NULL)
        return SKY_ENOMEM;
    size_t mark = out->len;
    dump_ctx ctx = {out, 0};
    int rc = 0;
    if (json_dump_callback(rec, dump_cb, &ctx, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
        ctx.rc < 0) {
        rc = ctx.rc < 0 ? ctx.rc : SKY_ENOMEM;
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    json_decref(rec);
    return rc;
}

static int id_hex_ok(const char *id_hex)
{
    size_t n = id_hex ? strlen(id_hex) : 0;
    if (n == 0 || n > ID_HEX_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id_hex[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

/* {"id":"batch_req_<hex>","custom_id":<custom_id, consumed>}; NULL on OOM. */
static json_t *record_new(const char *id_hex, json_t *custom_id)
{
    char id[sizeof ID_PREFIX + ID_HEX_MAX];
    snprintf(id, sizeof id, "%s%s", ID_PREFIX, id_hex);
    json_t *rec = json_object();
    if (rec == NULL || obj_put(rec, "id", json_string(id)) < 0) {
        json_decref(custom_id);
        json_decref(rec);
        return NULL;
    }
    if (obj_put(rec, "custom_id", custom_id) < 0) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

/*
 * The reply body as JSON when it parses, else as a string. So is one nested so deep that
 * its record, two levels deeper, would be past what jansson reads back.
 */
static json_t *body_value(sky_span body)
{
    json_error_t jerr;
    json_t *v = json_loadb(body.ptr ? body.ptr : "", body.ptr ? body.len : 0,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v != NULL && sky_json_deeper_than(v, SKY_JSON_MAX_DEPTH - 8)) {
        json_decref(v);
        v = NULL;
    } else if (v != NULL || load_out_of_memory(&jerr)) {
        return v;
    }
    return str_lossy(body.ptr ? body.ptr : "", body.ptr ? body.len : 0);
}

/* {"status_code","request_id","body"}, or JSON null when there is no response. */
static json_t *response_value(const sky_batchline_response *r)
{
    if (r == NULL)
        return json_null();
    json_t *o = json_object();
    if (o == NULL || obj_put(o, "status_code", json_integer(r->status_code)) < 0 ||
        obj_put(o, "request_id",
                r->request_id ? str_lossy(r->request_id, strlen(r->request_id)) : json_null()) <
            0 ||
        obj_put(o, "body", body_value(r->body)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *error_value(const char *code, const char *message)
{
    json_t *o = json_object();
    if (o == NULL || obj_put(o, "code", str_lossy(code, strlen(code))) < 0 ||
        obj_put(o, "message", str_lossy(message, strlen(message))) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A record with the given response and error (both consumed); NULL on OOM. */
static json_t *record_build(const char *id_hex, json_t *custom_id, json_t *response, json_t *error)
{
    json_t *rec = record_new(id_hex, custom_id);
    if (rec == NULL) {
        json_decref(response);
        json_decref(error);
        return NULL;
    }
    if (obj_put(rec, "response", response) < 0) {
        json_decref(error);
        json_decref(rec);
        return NULL;
    }
    if (obj_put(rec, "error", error) < 0) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

int sky_batchline_record_success(sky_buf *out, const char *id_hex, sky_span custom_id,
                                 const sky_batchline_response *resp)
{
    if (out == NULL || resp == NULL || !id_hex_ok(id_hex) || !custom_id_ok(custom_id))
        return SKY_EINVAL;
    json_t *cid = json_stringn(custom_id.ptr ? custom_id.ptr : "", custom_id.len);
    return record_emit(out, record_build(id_hex, cid, response_value(resp), json_null()));
}

/* Append @p v (consumed) as compact JSON; any value, not only objects. */
static int emit_value(sky_buf *out, json_t *v)
{
    if (v == NULL)
        return SKY_ENOMEM;
    dump_ctx ctx = {out, 0};
    int rc = json_dump_callback(v, dump_cb, &ctx, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    return rc == 0 && ctx.rc == 0 ? 0 : ctx.rc < 0 ? ctx.rc : SKY_ENOMEM;
}

/* Whether @p p is a JSON string's content as it stands: printable ASCII, no quote or
 * backslash. Such ids are the rule; anything else is escaped by jansson. */
static int plain_ascii(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7E || p[i] == '"' || p[i] == '\\')
            return 0;
    return 1;
}

/* Append @p s as a JSON string; bytes that are not UTF-8 become U+FFFD. */
static int emit_string(sky_buf *out, sky_span s)
{
    if (!plain_ascii(s.ptr, s.len))
        return emit_value(out, str_lossy(s.ptr, s.len));
    int rc = sky_buf_append(out, "\"", 1);
    rc = rc ? rc : sky_buf_append(out, s.ptr, s.len);
    return rc ? rc : sky_buf_append(out, "\"", 1);
}

/* A JSON text on one line: a raw CR or LF in valid JSON can only be whitespace. */
static int emit_one_line(sky_buf *out, sky_span body)
{
    size_t start = out->len;
    int rc = sky_buf_append(out, body.ptr, body.len);
    /* nearly every reply is on one line already: memchr looks faster than a loop */
    if (rc == 0 && memchr(body.ptr, '\n', body.len) == NULL &&
        memchr(body.ptr, '\r', body.len) == NULL)
        return 0;
    for (size_t i = start; rc == 0 && i < out->len; i++)
        if (out->data[i] == '\n' || out->data[i] == '\r')
            out->data[i] = ' ';
    return rc;
}

int sky_batchline_record_success_raw(sky_buf *out, const char *id_hex, sky_span custom_id,
                                     int status, const char *request_id, sky_span json_body)
{
    if (out == NULL || json_body.len == 0 || !id_hex_ok(id_hex) || !custom_id_ok(custom_id))
        return SKY_EINVAL;
    size_t mark = out->len;
    /* the record is the body, the ids and some 120 bytes of names: one allocation */
    int rc = sky_buf_reserve(out, json_body.len + custom_id.len + 256);
    char status_text[16];
    snprintf(status_text, sizeof status_text, "%d", status);
    rc = rc ? rc : sky_buf_append_str(out, "{\"id\":\"batch_req_");
    rc = rc ? rc : sky_buf_append_str(out, id_hex);
    rc = rc ? rc : sky_buf_append_str(out, "\",\"custom_id\":");
    /* a custom_id is UTF-8 (checked above): emit_string keeps it as it is */
    rc = rc ? rc
            : emit_string(out, sky_span_make(custom_id.ptr ? custom_id.ptr : "", custom_id.len));
    rc = rc ? rc : sky_buf_append_str(out, ",\"response\":{\"status_code\":");
    rc = rc ? rc : sky_buf_append_str(out, status_text);
    rc = rc ? rc : sky_buf_append_str(out, ",\"request_id\":");
    rc = rc           ? rc
         : request_id ? emit_string(out, sky_span_cstr(request_id))
                      : sky_buf_append_str(out, "null");
    rc = rc ? rc : sky_buf_append_str(out, ",\"body\":");
    rc = rc ? rc : emit_one_line(out, json_body);
    rc = rc ? rc : sky_buf_append_str(out, "},\"error\":null}");
    if (rc < 0) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

int sky_batchline_record_failure(sky_buf *out, const char *id_hex, sky_span custom_id,
                                 const sky_batchline_response *last_resp, const char *code,
                                 const char *message)
{
    if (out == NULL || code == NULL || !id_hex_ok(id_hex) || !custom_id_ok(custom_id))
        return SKY_EINVAL;
    json_t *cid = json_stringn(custom_id.ptr ? custom_id.ptr : "", custom_id.len);
    json_t *err = error_value(code, message ? message : "");
    return record_emit(out, record_build(id_hex, cid, response_value(last_resp), err));
}

static json_t *input_error_value(const sky_batchline_error *e)
{
    const char *code = e->err.service_code[0] ? e->err.service_code : "invalid_input";
    json_t *o = error_value(code, e->err.message);
    json_int_t line = e->line > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)e->line;
    if (o == NULL || obj_put(o, "line", json_integer(line)) < 0 ||
        (e->param && obj_put(o, "param", json_string(e->param)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int sky_batchline_record_input_error(sky_buf *out, const char *id_hex,
                                     const sky_batchline_error *line_err)
{
    if (out == NULL || line_err == NULL || !id_hex_ok(id_hex) ||
        line_err->custom_id_len > SKY_BATCHLINE_CUSTOM_ID_MAX)
        return SKY_EINVAL;
    sky_span id = sky_span_make(line_err->custom_id, line_err->custom_id_len);
    json_t *cid =
        line_err->has_custom_id && custom_id_ok(id) ? json_stringn(id.ptr, id.len) : json_null();
    return record_emit(out, record_build(id_hex, cid, json_null(), input_error_value(line_err)));
}

/* ---- reading records back ------------------------------------------------- */

static int record_ok(const json_t *rec)
{
    const json_t *error = json_object_get(rec, "error");
    const json_t *resp = json_object_get(rec, "response");
    int64_t status = sky_json_int(resp, "status_code", 0);
    return (error == NULL || json_is_null(error)) && status >= 200 && status <= 299;
}

static int record_custom_id(const json_t *rec, char **out_custom_id)
{
    const json_t *v = json_object_get(rec, "custom_id");
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return SKY_EINVAL;
    *out_custom_id = strdup(json_string_value(v));
    return *out_custom_id ? 0 : SKY_ENOMEM;
}

int sky_batchline_output_parse(sky_span line, char **out_custom_id, int *out_ok)
{
    if (out_custom_id == NULL || out_ok == NULL || (line.ptr == NULL && line.len != 0))
        return SKY_EINVAL;
    *out_custom_id = NULL;
    *out_ok = 0;
    json_error_t jerr;
    json_t *rec =
        json_loadb(line.ptr ? line.ptr : "", line.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (rec == NULL)
        return load_out_of_memory(&jerr) ? SKY_ENOMEM : SKY_EJSON;
    int rc = json_is_object(rec) ? record_custom_id(rec, out_custom_id) : SKY_EINVAL;
    if (rc == 0)
        *out_ok = record_ok(rec);
    json_decref(rec);
    return rc;
}
