/*
 * The tokens a reply says it used: its "usage" object (chat, completions and embeddings at
 * the root; the Responses API's inside "response" of its last event), read by a scan that
 * builds no tree. A stream's usage comes in one of its last events: only a chunk that
 * names "usage" is looked at, one event line of it. The prompt's tokens served from the
 * upstream's prompt cache are in the usage's prompt_tokens_details (input_tokens_details
 * on the Responses API) as cached_tokens: they are priced apart.
 */
#include <stdlib.h>

#include "skyio/json.h"
#include "internal.h"

#define TOKENS_MAX_DEPTH 16

enum { T_NONE, T_PROMPT, T_COMPLETION, T_TOTAL, T_CACHED, T_DETAILS };

typedef struct tokens_scan {
    gw_tokens *out;
    int pending_usage; /* the last key was "usage": its value comes next */
    int pending_depth;
    int want; /* the member of a usage object whose number comes next */
    unsigned char in_usage[TOKENS_MAX_DEPTH + 1];
    unsigned char in_details[TOKENS_MAX_DEPTH + 1]; /* a usage's *_tokens_details */
} tokens_scan;

static int which(sky_span k)
{
    if (sky_span_eq_cstr(k, "prompt_tokens") || sky_span_eq_cstr(k, "input_tokens"))
        return T_PROMPT;
    if (sky_span_eq_cstr(k, "completion_tokens") || sky_span_eq_cstr(k, "output_tokens"))
        return T_COMPLETION;
    if (sky_span_eq_cstr(k, "prompt_tokens_details") || sky_span_eq_cstr(k, "input_tokens_details"))
        return T_DETAILS;
    return sky_span_eq_cstr(k, "total_tokens") ? T_TOTAL : T_NONE;
}

static int on_key(void *ud, int depth, sky_span key)
{
    tokens_scan *s = ud;
    s->pending_usage = sky_span_eq_cstr(key, "usage");
    s->pending_depth = depth;
    int inside = depth >= 1 && depth <= TOKENS_MAX_DEPTH;
    s->want = inside && s->in_usage[depth - 1] ? which(key) : T_NONE;
    if (inside && s->in_details[depth - 1] && sky_span_eq_cstr(key, "cached_tokens"))
        s->want = T_CACHED;
    /* what holds no count goes by unreported (still checked): a chat reply's choices are
     * most of it */
    if (s->want == T_NONE && !s->pending_usage && !sky_span_eq_cstr(key, "response"))
        return SKY_JSON_SKIP;
    return 0;
}

static int on_scalar(void *ud, int depth, sky_json_kind kind, sky_span v)
{
    tokens_scan *s = ud;
    (void)depth;
    if (s->want != T_NONE && kind == SKY_JSON_INTEGER && v.len < 19) {
        int64_t n = sky_json_scan_int(v);
        if (s->want == T_PROMPT)
            s->out->prompt = n;
        else if (s->want == T_COMPLETION)
            s->out->completion = n;
        else if (s->want == T_CACHED)
            s->out->cached = n;
        else if (s->want == T_TOTAL)
            s->out->total = n;
    }
    s->pending_usage = 0;
    s->want = T_NONE;
    return 0;
}

static int on_open(void *ud, int depth, sky_json_kind kind, size_t at)
{
    tokens_scan *s = ud;
    (void)at;
    if (depth >= 0 && depth <= TOKENS_MAX_DEPTH) {
        s->in_usage[depth] =
            kind == SKY_JSON_OBJECT && s->pending_usage && s->pending_depth == depth;
        s->in_details[depth] = kind == SKY_JSON_OBJECT && s->want == T_DETAILS;
    }
    s->pending_usage = 0;
    s->want = T_NONE;
    return 0;
}

static int on_close(void *ud, int depth, sky_json_kind kind, size_t end)
{
    tokens_scan *s = ud;
    (void)kind;
    (void)end;
    if (depth >= 0 && depth <= TOKENS_MAX_DEPTH)
        s->in_usage[depth] = s->in_details[depth] = 0;
    return 0;
}

/* An integer member of @p obj under one of two names, into @p slot when there is one. */
static void tree_count(const json_t *obj, const char *name, const char *alt, int64_t *slot)
{
    const json_t *n = json_object_get(obj, name);
    if (!json_is_integer(n))
        n = json_object_get(obj, alt);
    if (json_is_integer(n))
        *slot = (int64_t)json_integer_value(n);
}

/* A usage object's counts from a tree (the root's, or the Responses event's "response"). */
static void tree_tokens(const json_t *doc, gw_tokens *out)
{
    const json_t *u = json_object_get(doc, "usage");
    if (!json_is_object(u))
        u = sky_json_path(doc, "response.usage");
    if (!json_is_object(u))
        return;
    tree_count(u, "prompt_tokens", "input_tokens", &out->prompt);
    tree_count(u, "completion_tokens", "output_tokens", &out->completion);
    tree_count(u, "total_tokens", "total_tokens", &out->total);
    const json_t *d = json_object_get(u, "prompt_tokens_details");
    if (!json_is_object(d))
        d = json_object_get(u, "input_tokens_details");
    if (json_is_object(d))
        tree_count(d, "cached_tokens", "cached_tokens", &out->cached);
}

int sky__gw_tokens_check(sky_span json, gw_tokens *out)
{
    static const sky_json_visitor visitor = {on_key, on_scalar, on_open, on_close};
    static const gw_tokens none = {-1, -1, -1, -1};
    tokens_scan s;
    memset(&s, 0, sizeof(s));
    s.out = out;
    *out = none;
    int rc = sky_json_scan(json, SKY_JSON_MAX_DEPTH, &visitor, &s);
    if (rc == SKY_EJSON) {
        /* not JSON, or a text the scan cannot vouch for (a rare escape, a long number):
         * jansson decides, as the pipeline's own check would */
        json_t *doc = NULL;
        *out = none;
        rc = sky_json_parse(json, &doc, NULL);
        if (rc == 0)
            tree_tokens(doc, out);
        json_decref(doc);
    }
    if (rc < 0) {
        *out = none; /* a reply that is not JSON says nothing */
        return rc;
    }
    if (out->total < 0 && out->prompt >= 0)
        out->total = out->prompt + (out->completion > 0 ? out->completion : 0);
    return 0;
}

void sky__gw_tokens_read(sky_span json, gw_tokens *out)
{
    (void)sky__gw_tokens_check(json, out);
}

/* Where @p needle first is in @p hay, or NULL. */
static const char *find(sky_span hay, const char *needle, size_t n)
{
    for (size_t i = 0; i + n <= hay.len; i++)
        if (hay.ptr[i] == needle[0] && memcmp(hay.ptr + i, needle, n) == 0)
            return hay.ptr + i;
    return NULL;
}

void sky__gw_tokens_from_chunk(sky_span chunk, gw_tokens *out)
{
    const char *u = find(chunk, "\"usage\"", 7);
    if (u == NULL)
        return;
    /* the "data: " line that holds it, whole in this chunk, or nothing */
    const char *start = u;
    while (start > chunk.ptr && start[-1] != '\n')
        start--;
    const char *end = memchr(u, '\n', (size_t)(chunk.ptr + chunk.len - u));
    if (end == NULL || end - start < 6 || memcmp(start, "data: ", 6) != 0)
        return;
    gw_tokens t = {-1, -1, -1, -1};
    sky__gw_tokens_read(sky_span_make(start + 6, (size_t)(end - start - 6)), &t);
    if (t.total >= 0)
        *out = t;
}
