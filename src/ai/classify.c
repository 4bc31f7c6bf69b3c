/*
 * OpenAI's reply rules, for the pipeline's classifier hook: what a reply says it used, what
 * its error JSON says, and the one refusal no wait mends (insufficient_quota). Azure
 * OpenAI and OpenAI-compatible servers answer in the same shapes.
 */
#include <string.h>

#include "skyio/ai.h"
#include "skyio/json.h"
#include "usage.h"

/* Whether an error reply's JSON names insufficient_quota, as its code or its type. */
static int names_no_quota(const json_t *reply)
{
    const char *code = json_string_value(sky_json_path(reply, "error.code"));
    const char *type = json_string_value(sky_json_path(reply, "error.type"));
    return (code && strcmp(code, "insufficient_quota") == 0) ||
           (type && strcmp(type, "insufficient_quota") == 0);
}

int sky_ai_quota_exhausted(int status, sky_span body)
{
    json_t *j = NULL;
    if (status != 429 || body.len == 0 || sky_json_parse(body, &j, NULL) < 0)
        return 0;
    int yes = names_no_quota(j);
    json_decref(j);
    return yes;
}

/* Moved here from the pipeline with the rest of OpenAI's rules; the old name stays. */
int sky_pipeline_quota_exhausted(int status, sky_span body)
{
    return sky_ai_quota_exhausted(status, body);
}

/* usage.total_tokens of a chat, completion, embeddings or responses reply: from the tree
 * when the caller had one built, else read from the bytes without one. */
static int64_t tree_tokens(const json_t *reply)
{
    json_t *t = sky_json_path(reply, "usage.total_tokens");
    return json_is_integer(t) ? (int64_t)json_integer_value(t) : -1;
}

static int64_t reply_tokens(void *ud, const sky_reply *r)
{
    (void)ud;
    if (r->json)
        return tree_tokens(r->json);
    sky__ai_usage u;
    int rc = sky__ai_reply_usage(r->body, 0, &u);
    if (rc != SKY_EJSON)
        return rc == 0 ? u.total_tokens : -1;
    /* a reply the scan leaves to jansson (a rare escape, a long number) */
    json_t *j = NULL;
    int64_t n = sky_json_parse(r->body, &j, NULL) == 0 ? tree_tokens(j) : -1;
    json_decref(j);
    return n;
}

/* {"error": {"message", "type", "param", "code"}}: the provider's message and code. */
static int describe_error(void *ud, const sky_reply *r, sky_error *e)
{
    json_t *j = NULL;
    (void)ud;
    if (sky_json_parse(r->body, &j, NULL) < 0)
        return 0;
    json_t *ec = sky_json_path(j, "error.code");
    const char *code = json_is_string(ec) ? json_string_value(ec) : NULL;
    const char *msg = json_string_value(sky_json_path(j, "error.message"));
    /* the one code callers act on, whether the reply says it as code or as type */
    int no_quota = r->status == 429 && names_no_quota(j);
    sky_error_set(e, SKY_EHTTP, "HTTP %d%s%s", r->status, msg ? ": " : "", msg ? msg : "");
    sky_error_set_service(e, no_quota ? "insufficient_quota" : code);
    json_decref(j);
    return no_quota;
}

static const sky_reply_classifier openai_rules = {reply_tokens, describe_error, NULL};

const sky_reply_classifier *sky_ai_classifier(void)
{
    return &openai_rules;
}

void sky_ai_pipeline_options_init(sky_pipeline_options *o)
{
    sky_pipeline_options_init(o);
    o->classifier = sky_ai_classifier();
    o->retry.openai_statuses = 1;
    /* a server that shows no limit is never slowed; one that does is paced at it */
    o->rate.unpaced_start = 1;
}
