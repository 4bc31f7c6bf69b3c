/*
 * A routing table's models: deployments grouped by the model name requests use, each with
 * the models its requests fall back to. Built once from a config, never changed after.
 */
#include <stdlib.h>
#include <string.h>

#include "skyio/route.h"

void sky_route_deployment_init(sky_route_deployment *d)
{
    memset(d, 0, sizeof(*d));
    d->kind = SKY_ROUTE_OPENAI;
    d->weight = 1;
}

const sky_route_model *sky_route_model_find(const sky_route_models *m, sky_span name)
{
    for (size_t i = 0; i < m->n_models; i++)
        if (sky_span_eq_cstr(name, m->models[i].name))
            return &m->models[i];
    return NULL;
}

static sky_route_model *model_named(sky_route_models *m, const char *name)
{
    const sky_route_model *found = sky_route_model_find(m, sky_span_cstr(name));
    return found ? &m->models[found - m->models] : NULL;
}

/* The model of @p name, added (with room for @p n deployments) when it is new. */
static sky_route_model *model_for(sky_route_models *m, const char *name, size_t n)
{
    sky_route_model *found = model_named(m, name);
    if (found)
        return found;
    sky_route_model *add = &m->models[m->n_models];
    add->deps = calloc(n, sizeof(*add->deps));
    if (add->deps == NULL)
        return NULL;
    add->name = name;
    m->n_models++;
    return add;
}

static int group(const char *const *names, size_t n, sky_route_models *m, sky_error *err)
{
    m->models = calloc(n ? n : 1, sizeof(*m->models));
    if (m->models == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL || names[i][0] == '\0')
            return sky_error_set(err, SKY_EINVAL, "deployment %zu: no model name", i);
        sky_route_model *mod = model_for(m, names[i], n);
        if (mod == NULL)
            return sky_error_set(err, SKY_ENOMEM, "out of memory");
        if (mod->n_deps == SKY_ROUTE_MAX_DEPLOYMENTS)
            return sky_error_set(err, SKY_EINVAL, "model %s: more than %d deployments", mod->name,
                                 SKY_ROUTE_MAX_DEPLOYMENTS);
        mod->deps[mod->n_deps++] = i;
    }
    return 0;
}

static int add_fallbacks(sky_route_models *m, const sky_route_fallback *f, sky_error *err)
{
    sky_route_model *from = model_named(m, f->model ? f->model : "");
    if (from == NULL)
        return sky_error_set(err, SKY_EINVAL, "fallbacks: no model %s", f->model);
    if (from->n_fallbacks > 0)
        return sky_error_set(err, SKY_EINVAL, "fallbacks: model %s twice", from->name);
    from->fallbacks = calloc(f->n_to + 1, sizeof(*from->fallbacks));
    if (from->fallbacks == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < f->n_to; i++) {
        sky_route_model *to = model_named(m, f->to[i] ? f->to[i] : "");
        if (to == NULL || to == from)
            return sky_error_set(err, SKY_EINVAL, "fallbacks of %s: %s is not another model",
                                 from->name, f->to[i] ? f->to[i] : "(null)");
        from->fallbacks[from->n_fallbacks++] = (size_t)(to - m->models);
    }
    return 0;
}

int sky_route_models_new(const char *const *names, size_t n, const sky_route_fallback *fallbacks,
                         size_t n_fallbacks, sky_route_models *out, sky_error *err)
{
    memset(out, 0, sizeof(*out));
    int rc = group(names, n, out, err);
    for (size_t i = 0; rc == 0 && i < n_fallbacks; i++)
        rc = add_fallbacks(out, &fallbacks[i], err);
    return rc;
}

void sky_route_models_free(sky_route_models *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_models; i++) {
        free(m->models[i].deps);
        free(m->models[i].fallbacks);
    }
    free(m->models);
    memset(m, 0, sizeof(*m));
}
