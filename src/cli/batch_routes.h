/* The deployments `skyio batch --config FILE` or `--deployments URL,...` spreads a job over
 * (batch_routes.c). */
#ifndef SKY_CLI_BATCH_ROUTES_H
#define SKY_CLI_BATCH_ROUTES_H

#include "skyio/gateway.h"

typedef struct sky_cli_batch_routes {
    sky_gateway_config cfg;     /* --config's */
    sky_route_deployment *list; /* --deployments' */
    char *urls;                 /* their copy, cut at the commas */
    const sky_route_deployment *deps;
    size_t n_deps;
    const sky_route_fallback *fallbacks;
    size_t n_fallbacks;
    int azure_without_key; /* one of them wants Entra ID tokens */
} sky_cli_batch_routes;

/* Read @p config (gateway.json: its models and fallbacks; its keys and listening options are
 * the gateway's and left alone) or @p urls (OpenAI-compatible API roots, comma-separated,
 * each a deployment of the one model every line goes to, with $OPENAI_API_KEY). 0, or -1
 * after saying why on stderr. */
int sky_cli_batch_routes_load(sky_cli_batch_routes *r, const char *config, const char *urls);
void sky_cli_batch_routes_free(sky_cli_batch_routes *r);

#endif
