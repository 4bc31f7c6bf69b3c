/*
 * POST /v1/responses (OpenAI's SDKs) and POST /openai/responses (the AzureOpenAI class,
 * the deployment in the body's "model"): plain, or "stream": true with its typed events
 * passed through chunk by chunk.
 */
#include "internal.h"

void sky__gw_on_responses(sky_server_req *r, void *gateway)
{
    sky__gw_model_call(gateway, r, GW_OP_RESPONSES, sky_span_make("", 0));
}
