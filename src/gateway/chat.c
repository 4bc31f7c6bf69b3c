/* POST /v1/chat/completions: plain, or "stream": true passed through chunk by chunk. */
#include "internal.h"

void sky__gw_on_chat(sky_server_req *r, void *gateway)
{
    sky__gw_model_call(gateway, r, GW_OP_CHAT, sky_span_make("", 0));
}
