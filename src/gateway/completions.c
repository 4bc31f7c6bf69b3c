/* POST /v1/completions, the legacy text completions: plain, or streamed as chat is. */
#include "internal.h"

void sky__gw_on_completions(sky_server_req *r, void *gateway)
{
    sky__gw_model_call(gateway, r, GW_OP_COMPLETIONS, sky_span_make("", 0));
}
