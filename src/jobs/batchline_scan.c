/*
 * The fast reader of a Batch line. A well-formed line is read by a streaming scan: the few
 * members a request needs are picked out, the prompt's characters counted on the way, and
 * the body sent as the bytes the line holds, never built into a tree and printed again.
 * Anything else (an error, a duplicate member, a text the scan cannot vouch for) goes to
 * the full reader in batchline.c, so every message a user sees comes from one place.
 */

#include <stdlib.h>
#include <string.h>

#include "skyio/json.h"
#include "skyio/utf8.h"
#include "batchline_internal.h"

/* Lines nesting deeper go to jansson, which measures them against its own limit. */
#define SCAN_DEPTH_MAX 64

/* Members of the line and of its body that the request reads; a second one of any is
 * left to the full reader, where the last one wins as it does in jansson. */
enum { TOP_CUSTOM_ID, TOP_METHOD, TOP_URL, TOP_BODY, TOP_OTHER };
enum {
    BODY_MODEL,
    BODY_STREAM,
    BODY_MESSAGES,
    BODY_INPUT,
    BODY_PROMPT,
    BODY_INSTRUCTIONS,
    BODY_MAX_TOKENS, /* then max_completion_tokens, max_output_tokens: in this order */
    BODY_OTHER = BODY_MAX_TOKENS + 3
};

static const char *const k_top[] = {"custom_id", "method", "url", "body"};
static const char *const k_body[] = {"model",
                                     "stream",
                                     "messages",
                                     "input",
                                     "prompt",
                                     "instructions",
                                     "max_tokens",
                                     "max_completion_tokens",
                                     "max_output_tokens"};

/* An object or array being read, and how the prompt estimate sees what it holds. */
typedef struct frame {
    sky_json_kind kind;
    int td;          /* its depth as the estimate counts (text_chars' depth), -1: not counted */
    int next_td;     /* in an object: for the member whose key came last */
    int text_string; /* ... that member is "text", counted only as a string */
    unsigned seen;   /* in an object: "text" (1) and "content" (2) seen, for duplicates */
} frame;

typedef struct line_scan {
    sky_batchline_request *req;
    unsigned top_seen, body_seen;
    int top_key, body_key; /* whose value comes next, at depth 1 and 2 */
    int method_ok;
    int body_is_object;
    size_t body_at, body_end;
    int64_t max_tokens[3];
    uint64_t chars;
    frame frames[SCAN_DEPTH_MAX + 1];
} line_scan;

/* the visitor's "leave it to the full reader" */
#define FALL_BACK 1

static int key_index(sky_span key, const char *const *names, int n, int other)
{
    for (int i = 0; i < n; i++)
        if (sky_span_eq_cstr(key, names[i]))
            return i;
    return other;
}

static int first_time(unsigned *seen, int bit)
{
    if (*seen & (1u << bit))
        return 0;
    *seen |= 1u << bit;
    return 1;
}

static int on_key(void *ud, int depth, sky_span key)
{
    line_scan *s = ud;
    if (depth == 1) {
        s->top_key = key_index(key, k_top, TOP_OTHER, TOP_OTHER);
        return s->top_key == TOP_OTHER || first_time(&s->top_seen, s->top_key) ? 0 : FALL_BACK;
    }
    if (depth == 2 && s->top_key == TOP_BODY) {
        s->body_key = key_index(key, k_body, BODY_OTHER, BODY_OTHER);
        return s->body_key == BODY_OTHER || first_time(&s->body_seen, s->body_key) ? 0 : FALL_BACK;
    }
    /* inside a counted object only "text" and "content" hold prompt text */
    frame *f = &s->frames[depth - 1];
    int bit = sky_span_eq_cstr(key, "text") ? 0 : sky_span_eq_cstr(key, "content") ? 1 : -1;
    f->next_td = f->td < 0 || bit < 0 ? -1 : f->td + 1;
    f->text_string = bit == 0;
    return bit < 0 || first_time(&f->seen, bit) ? 0 : FALL_BACK;
}

/* The estimate's depth for a value @p depth deep of kind @p kind, or -1: not counted. */
static int value_td(const line_scan *s, int depth, sky_json_kind kind)
{
    int td = -1;
    if (depth == 2 && s->top_key == TOP_BODY) {
        int k = s->body_key;
        if (k == BODY_MESSAGES || k == BODY_INPUT || k == BODY_PROMPT ||
            (k == BODY_INSTRUCTIONS && kind == SKY_JSON_STRING))
            td = 0;
    } else if (depth > 2) {
        const frame *f = &s->frames[depth - 1];
        if (f->kind == SKY_JSON_ARRAY)
            td = f->td < 0 ? -1 : f->td + 1;
        else if (!f->text_string || kind == SKY_JSON_STRING)
            td = f->next_td;
    }
    return td > SKY__ESTIMATE_DEPTH_MAX ? -1 : td;
}

static int body_scalar(line_scan *s, sky_json_kind kind, sky_span v)
{
    sky_batchline_request *req = s->req;
    if (s->body_key == BODY_STREAM && kind == SKY_JSON_TRUE)
        return FALL_BACK; /* refused, with its message, by the full reader */
    if (s->body_key == BODY_MODEL && kind == SKY_JSON_STRING) {
        req->model = malloc(v.len + 1);
        if (req->model == NULL)
            return SKY_ENOMEM;
        memcpy(req->model, v.ptr, v.len);
        req->model[v.len] = '\0';
    } else if (s->body_key >= BODY_MAX_TOKENS && s->body_key < BODY_OTHER &&
               kind == SKY_JSON_INTEGER) {
        /* the scan has checked the integer fits */
        s->max_tokens[s->body_key - BODY_MAX_TOKENS] = strtoll(v.ptr, NULL, 10);
    }
    return 0;
}

static int top_scalar(line_scan *s, sky_json_kind kind, sky_span v)
{
    if (kind != SKY_JSON_STRING)
        return s->top_key == TOP_OTHER ? 0 : FALL_BACK;
    switch (s->top_key) {
    case TOP_CUSTOM_ID:
        /* the whole line is UTF-8 and holds no \u0000: only the length is left to check */
        if (v.len == 0 || v.len > SKY_BATCHLINE_CUSTOM_ID_MAX)
            return FALL_BACK;
        s->req->custom_id = malloc(v.len + 1);
        if (s->req->custom_id == NULL)
            return SKY_ENOMEM;
        memcpy(s->req->custom_id, v.ptr, v.len);
        s->req->custom_id[v.len] = '\0';
        return 0;
    case TOP_METHOD:
        s->method_ok = sky_span_eq_cstr(v, "POST");
        return s->method_ok ? 0 : FALL_BACK;
    case TOP_URL:
        s->req->url = sky__batchline_url(v);
        return s->req->url ? 0 : FALL_BACK;
    case TOP_BODY:
        return FALL_BACK;
    }
    return 0;
}

static int on_scalar(void *ud, int depth, sky_json_kind kind, sky_span v)
{
    line_scan *s = ud;
    if (depth == 0)
        return FALL_BACK;
    if (depth == 1)
        return top_scalar(s, kind, v);
    int td = value_td(s, depth, kind);
    if (td >= 0 && kind == SKY_JSON_STRING)
        s->chars += sky_utf8_chars(v.ptr, v.len);
    else if (td >= 0 && kind == SKY_JSON_INTEGER)
        s->chars += SKY__CHARS_PER_TOKEN;
    return depth == 2 && s->top_key == TOP_BODY ? body_scalar(s, kind, v) : 0;
}

static int on_open(void *ud, int depth, sky_json_kind kind, size_t at)
{
    line_scan *s = ud;
    if (depth == 0)
        return kind == SKY_JSON_OBJECT ? 0 : FALL_BACK;
    if (depth == 1 && s->top_key == TOP_BODY) {
        if (kind != SKY_JSON_OBJECT)
            return FALL_BACK;
        s->body_at = at;
    } else if (depth == 1 && s->top_key != TOP_OTHER) {
        return FALL_BACK; /* custom_id, method or url that is not a string */
    }
    frame *f = &s->frames[depth];
    f->kind = kind;
    f->td = value_td(s, depth, kind);
    f->next_td = -1;
    f->text_string = 0;
    f->seen = 0;
    return 0;
}

static int on_close(void *ud, int depth, sky_json_kind kind, size_t end)
{
    line_scan *s = ud;
    (void)kind;
    if (depth == 1 && s->top_key == TOP_BODY) {
        s->body_end = end;
        s->body_is_object = 1;
    }
    return 0;
}

static const sky_json_visitor k_visitor = {on_key, on_scalar, on_open, on_close};

static int take_body(line_scan *s, sky_span line)
{
    sky_batchline_request *req = s->req;
    size_t n = s->body_end - s->body_at;
    req->body = malloc(n + 1);
    if (req->body == NULL)
        return SKY_ENOMEM;
    memcpy(req->body, line.ptr + s->body_at, n);
    req->body[n] = '\0';
    req->body_len = n;
    for (int i = 0; i < 3; i++) {
        if (s->max_tokens[i] >= 0) {
            req->max_tokens = (uint64_t)s->max_tokens[i];
            break;
        }
    }
    req->prompt_chars = s->chars;
    req->token_estimate = sky__batchline_token_estimate(req->prompt_chars, req->max_tokens);
    return 0;
}

int sky__batchline_scan(sky_span line, sky_batchline_request *req)
{
    line_scan s;
    memset(&s, 0, sizeof s);
    memset(req, 0, sizeof *req);
    s.req = req;
    s.top_key = TOP_OTHER;
    s.body_key = BODY_OTHER;
    for (int i = 0; i < 3; i++)
        s.max_tokens[i] = -1;
    int rc = sky_json_scan(line, SCAN_DEPTH_MAX, &k_visitor, &s);
    if (rc == 0 && (s.top_seen != 0xF || !s.method_ok || !s.body_is_object))
        rc = FALL_BACK;
    if (rc == 0)
        rc = take_body(&s, line);
    if (rc != 0) {
        sky_batchline_request_free(req);
        return rc == SKY_ENOMEM ? SKY_ENOMEM : FALL_BACK;
    }
    return 0;
}
