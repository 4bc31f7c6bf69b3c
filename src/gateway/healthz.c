/* GET /healthz: the process is up and its loop turns. No key: a load balancer asks. */
#include "internal.h"

void sky__gw_on_healthz(sky_server_req *r, void *gateway)
{
    (void)gateway;
    sky_server_respond(r, 200, "application/json", SKY_SPAN_LIT("{\"status\":\"ok\"}"));
}
