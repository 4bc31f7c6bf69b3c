/*
 * usage in a chat, completion, embeddings or Responses reply, read in the scan that checks
 * the reply is JSON: the batch and the rate limiter need three numbers, not a tree.
 */
#include <stdlib.h>

#include "skyio/json.h"
#include "usage.h"

typedef struct usage_scan {
    sky__ai_usage *out;
    int in_usage;  /* the value of the root's "usage" member is being read */
    int64_t *next; /* where the next count goes, or NULL */
} usage_scan;

static int64_t *slot_for(sky__ai_usage *u, sky_span key)
{
    if (sky_span_eq_cstr(key, "prompt_tokens") || sky_span_eq_cstr(key, "input_tokens"))
        return &u->prompt_tokens;
    if (sky_span_eq_cstr(key, "completion_tokens") || sky_span_eq_cstr(key, "output_tokens"))
        return &u->completion_tokens;
    if (sky_span_eq_cstr(key, "total_tokens"))
        return &u->total_tokens;
    return NULL;
}

/* Only usage's counts are read: the scan passes over every other member's value. */
static int on_key(void *ud, int depth, sky_span key)
{
    usage_scan *s = ud;
    s->next = NULL;
    if (depth == 1) {
        s->in_usage = sky_span_eq_cstr(key, "usage");
        return s->in_usage ? 0 : SKY_JSON_SKIP;
    }
    if (depth == 2 && s->in_usage)
        s->next = slot_for(s->out, key);
    return s->next ? 0 : SKY_JSON_SKIP;
}

static int on_scalar(void *ud, int depth, sky_json_kind kind, sky_span v)
{
    usage_scan *s = ud;
    /* the scan has checked that an integer fits: strtoll stops at the span's end; a count
     * of 18 digits or fewer is read without it */
    if (depth == 2 && s->next && kind == SKY_JSON_INTEGER)
        *s->next = v.len <= 18 ? sky_json_scan_int(v) : strtoll(v.ptr, NULL, 10);
    s->next = NULL;
    return 0;
}

static int on_open(void *ud, int depth, sky_json_kind kind, size_t at)
{
    usage_scan *s = ud;
    (void)kind;
    (void)at;
    if (depth == 2)
        s->next = NULL;
    return 0;
}

static const sky_json_visitor k_visitor = {on_key, on_scalar, on_open, NULL};

int sky__ai_reply_usage(sky_span body, int max_depth, sky__ai_usage *out)
{
    out->prompt_tokens = out->completion_tokens = out->total_tokens = -1;
    usage_scan s = {out, 0, NULL};
    return sky_json_scan(body, max_depth, &k_visitor, &s);
}
