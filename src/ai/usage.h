/* What an OpenAI-style reply says it used, read without building a tree. */
#ifndef SKY_AI_USAGE_H
#define SKY_AI_USAGE_H

#include <stdint.h>

#include "skyio/common.h"

/* usage's counts; -1 where the reply gives none. The Responses API's names (input_tokens,
 * output_tokens) land in the chat names' places. */
typedef struct sky__ai_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t total_tokens;
} sky__ai_usage;

/*
 * Read @p body's top-level "usage" and check that the body is JSON, in one scan (no tree).
 * Returns 0 (the body is JSON that jansson reads too, nesting at most @p max_depth deep);
 * SKY_EJSON when it is not, or when the scan cannot tell (parse with jansson then);
 * SKY_ENOMEM.
 */
int sky__ai_reply_usage(sky_span body, int max_depth, sky__ai_usage *out);

#endif
