/*
 * The failover rule: which failures of one deployment another could mend. Throttling (429),
 * an overload or outage (5xx), a refused key or role on that deployment (401, 403), a
 * timeout or a broken connection are the deployment's; a request the provider finds wrong
 * (400, 404, 422) would be wrong everywhere.
 */
#include "skyio/route.h"

int sky_route_worth_another(int status, const sky_error *err)
{
    if (err && err->code != SKY_EHTTP)
        return err->code != SKY_ECANCELED && err->code != SKY_ENOMEM && err->code != SKY_EINVAL;
    return status == 401 || status == 403 || status == 408 || status == 409 || status == 429 ||
           status >= 500;
}
