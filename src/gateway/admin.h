/* The gateway's admin API (admin.c): POST/GET/DELETE /admin/keys with a master key. */
#ifndef SKY_GATEWAY_ADMIN_H
#define SKY_GATEWAY_ADMIN_H

#include "skyio/gateway.h"

struct sky__store;

/*
 * Turn the admin API on: requests presenting the key whose SHA-256 is @p master_sha256
 * create, list and revoke gateway keys kept (hashed) in @p store (open, keeping keys;
 * borrowed: close it after sky_gateway_free). The keys already in the store are loaded
 * now (the loop runs until they are) and accepted beside the config's. With several
 * loops call it for each, before they run, each with a store of its own: the keys are
 * loaded once and shared, so one made or revoked on a loop holds on all. 0, or a SKY_E
 * code with @p err. Without it the routes answer 404.
 */
int sky__gw_set_admin(sky_gateway *g, struct sky__store *store,
                      const unsigned char master_sha256[SKY_GATEWAY_SHA256_LEN], sky_error *err);

#endif
