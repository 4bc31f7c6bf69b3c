/*
 * The deployments of `skyio batch --config gateway.json` (the gateway's file: its models,
 * deployments and fallbacks) or `--deployments URL,URL,...` (the same model on several
 * OpenAI-compatible servers), for the batch engine's routing (skyio/route.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_routes.h"
#include "cli.h"

/* gateway.json's routing: its keys are the gateway's clients', which a batch has none of */
static int load_config(sky_cli_batch_routes *r, const char *path)
{
    json_error_t jerr;
    sky_error err;
    sky_error_clear(&err);
    if (sky_cli_check_input_file("batch", "--config", path) < 0)
        return -1;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL)
        return fprintf(stderr, "skyio batch: %s:%d:%d: %s\n", path, jerr.line, jerr.column,
                       jerr.text),
               -1;
    if (json_is_object(doc))
        json_object_del(doc, "keys");
    int rc = sky_gateway_config_parse(doc, &r->cfg, &err);
    json_decref(doc);
    if (rc < 0)
        return fprintf(stderr, "skyio batch: %s: %s\n", path, err.message), -1;
    r->deps = r->cfg.deployments;
    r->n_deps = r->cfg.n_deployments;
    r->fallbacks = r->cfg.fallbacks;
    r->n_fallbacks = r->cfg.n_fallbacks;
    return 0;
}

static int load_urls(sky_cli_batch_routes *r, const char *urls)
{
    size_t n = 1;
    for (const char *p = urls; *p; p++)
        n += *p == ',';
    r->urls = strdup(urls);
    r->list = calloc(n, sizeof(*r->list));
    if (r->urls == NULL || r->list == NULL)
        return fprintf(stderr, "skyio batch: out of memory\n"), -1;
    const char *key = getenv("OPENAI_API_KEY");
    char *save = NULL;
    for (char *u = strtok_r(r->urls, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        sky_route_deployment *d = &r->list[r->n_deps++];
        sky_route_deployment_init(d);
        d->model = "*"; /* the only model: every line goes to it, its body as it is */
        d->kind = SKY_ROUTE_COMPATIBLE;
        d->base_url = u;
        d->api_key = key && key[0] ? key : NULL;
    }
    if (r->n_deps == 0)
        return fprintf(stderr, "skyio batch: --deployments is a list of URLs\n"), -1;
    r->deps = r->list;
    return 0;
}

int sky_cli_batch_routes_load(sky_cli_batch_routes *r, const char *config, const char *urls)
{
    memset(r, 0, sizeof(*r));
    if (config && urls)
        return fprintf(stderr, "skyio batch: --config or --deployments, not both\n"), -1;
    int rc = config ? load_config(r, config) : load_urls(r, urls);
    for (size_t i = 0; rc == 0 && i < r->n_deps; i++)
        r->azure_without_key |= r->deps[i].kind == SKY_ROUTE_AZURE && r->deps[i].api_key == NULL;
    return rc;
}

void sky_cli_batch_routes_free(sky_cli_batch_routes *r)
{
    sky_gateway_config_free(&r->cfg);
    free(r->list);
    free(r->urls);
    memset(r, 0, sizeof(*r));
}
