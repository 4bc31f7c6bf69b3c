/*
 * A reload from the config file without stalling the loop: the file is read and parsed on
 * libuv's thread pool (json_load_file and sky_gateway_config_parse touch only the job's
 * own memory and the environment), then the routing is swapped in on the loop, where the
 * tables live. A reload asked for while one is under way runs again after it, so the file
 * as it stands last is the one that counts.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

struct gw_reload_job {
    uv_work_t work;
    sky_gateway *g; /* NULL once the gateway is gone */
    char *path;
    sky_gateway_options base; /* the options beside the routing */
    sky_gateway_reload_hooks hooks;
    json_t *doc;            /* read on the pool */
    sky_gateway_config cfg; /* parsed there */
    sky_error err;
    int rc;
};

static void job_free(gw_reload_job *j)
{
    sky_gateway_config_free(&j->cfg);
    json_decref(j->doc);
    free(j->path);
    free(j);
}

/* On the thread pool. */
static void job_read(uv_work_t *w)
{
    gw_reload_job *j = w->data;
    json_error_t jerr;
    sky_error_clear(&j->err);
    memset(&j->cfg, 0, sizeof(j->cfg));
    j->doc = json_load_file(j->path, 0, &jerr);
    if (j->doc == NULL) {
        j->rc = sky_error_set(&j->err, SKY_EINVAL, "%s:%d:%d: %s", j->path, jerr.line, jerr.column,
                              jerr.text);
        return;
    }
    j->rc = sky_gateway_config_parse(j->doc, &j->cfg, &j->err);
}

static void job_done(uv_work_t *w, int status);

static int job_queue(gw_reload_job *j)
{
    j->work.data = j;
    return uv_queue_work(j->g->loop, &j->work, job_read, job_done) == 0 ? 0 : SKY_EINTERNAL;
}

/* On the loop: swap in what was read, or count why not. */
static void job_swap(gw_reload_job *j)
{
    sky_gateway *g = j->g;
    if (j->rc == 0 && j->hooks.check)
        j->rc = j->hooks.check(g, j->doc, &j->err, j->hooks.user_data);
    if (j->rc == 0) {
        sky_gateway_options o = j->base;
        o.deployments = j->cfg.deployments;
        o.n_deployments = j->cfg.n_deployments;
        o.fallbacks = j->cfg.fallbacks;
        o.n_fallbacks = j->cfg.n_fallbacks;
        o.keys = j->cfg.keys;
        o.n_keys = j->cfg.n_keys;
        o.prices = j->cfg.prices;
        o.n_prices = j->cfg.n_prices;
        j->rc = sky_gateway_reload(g, &o, &j->err); /* copies what it keeps */
    }
    sky_gateway_config_free(&j->cfg);
    memset(&j->cfg, 0, sizeof(j->cfg));
    json_decref(j->doc);
    j->doc = NULL;
    if (j->rc < 0) { /* the caller's callback says so */
        sky__gw_shared_lock(g->shared);
        sky__gw_metrics_reload_failed(sky__gw_shared_metrics(g->shared));
        sky__gw_shared_unlock(g->shared);
    }
}

static void job_done(uv_work_t *w, int status)
{
    gw_reload_job *j = w->data;
    sky_gateway *g = j->g;
    if (g == NULL || status != 0) {
        job_free(j); /* the gateway went first */
        return;
    }
    job_swap(j);
    if (j->hooks.done)
        j->hooks.done(g, j->rc < 0 ? &j->err : NULL, j->hooks.user_data);
    if (g->reload_again) {
        g->reload_again = 0;
        if (job_queue(j) == 0)
            return;
    }
    g->reload = NULL;
    job_free(j);
}

int sky_gateway_reload_file(sky_gateway *g, const char *path, const sky_gateway_options *o,
                            const sky_gateway_reload_hooks *hooks)
{
    if (g->reload) {
        g->reload_again = 1; /* the file is read again once this one is in */
        return 0;
    }
    gw_reload_job *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->path = strdup(path)) == NULL) {
        free(j);
        return SKY_ENOMEM;
    }
    j->g = g;
    j->base = *o;
    if (hooks)
        j->hooks = *hooks;
    int rc = job_queue(j);
    if (rc < 0) {
        job_free(j);
        return rc;
    }
    g->reload = j;
    return 0;
}

void sky__gw_reload_forget(sky_gateway *g)
{
    gw_reload_job *j = g->reload;
    if (j == NULL)
        return;
    j->g = NULL;
    g->reload = NULL;
    /* not started yet: its done callback comes with UV_ECANCELED; else once it has read */
    (void)uv_cancel((uv_req_t *)&j->work);
}
