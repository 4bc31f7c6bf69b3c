/* POST /v1/embeddings: the answer held whole by the pipeline (it can fail over until it
 * is complete), then passed on as it came. */
#include "internal.h"

void sky__gw_on_embeddings(sky_server_req *r, void *gateway)
{
    sky__gw_model_call(gateway, r, GW_OP_EMBEDDINGS, sky_span_make("", 0));
}
