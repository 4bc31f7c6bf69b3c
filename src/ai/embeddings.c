/* Embeddings: texts in, one vector of numbers each out, in input order. */
#include <stdlib.h>
#include <string.h>

#include "skyio/json.h"
#include "skyio/ratelimit.h"
#include "internal.h"

void sky_ai_embed_options_init(sky_ai_embed_options *o)
{
    memset(o, 0, sizeof(*o));
}

static json_t *embed_body(const sky_ai_embed_options *o, size_t *chars)
{
    json_t *input = json_array();
    *chars = 0;
    for (size_t i = 0; input && i < o->n_inputs; i++) {
        *chars += strlen(o->inputs[i]);
        if (json_array_append_new(input, json_string(o->inputs[i])) < 0) {
            json_decref(input);
            return NULL;
        }
    }
    json_t *body = json_pack("{s:o}", "input", input);
    if (body && o->dimensions > 0)
        json_object_set_new(body, "dimensions", json_integer(o->dimensions));
    return body;
}

int sky_ai_embed_start(sky_ai_client *c, const sky_ai_embed_options *o, sky_ai_request **out,
                       sky_error *err)
{
    size_t chars;
    if (c == NULL || o == NULL || o->model == NULL || o->on_done == NULL || o->n_inputs == 0 ||
        o->inputs == NULL)
        return sky_error_set(err, SKY_EINVAL, "embeddings need a model, inputs and on_done");
    sky_ai_request *r = sky__ai_request_new(c, AI_EMBED, &o->model, 1);
    json_t *body = r ? embed_body(o, &chars) : NULL;
    if (body == NULL) {
        if (r)
            sky__ai_request_free(r);
        return sky_error_set(err, SKY_ENOMEM, "out of memory starting embeddings");
    }
    r->on_embed = o->on_done;
    r->user_data = o->user_data;
    int rc = sky__ai_request_start(r, "/v1/embeddings", body,
                                   sky_ratelimit_estimate_tokens(chars, 0), err);
    json_decref(body);
    if (rc == 0 && out)
        *out = r;
    return rc;
}

/* data[i].embedding of each item, placed by its index; SKY_EJSON when they do not fit. */
static int read_vector(const json_t *item, size_t count, size_t dim, double *out)
{
    json_t *vec = json_object_get(item, "embedding");
    int64_t at = sky_json_int(item, "index", -1);
    json_t *x;
    size_t j;
    if (!json_is_array(vec) || json_array_size(vec) != dim || at < 0 || (size_t)at >= count)
        return SKY_EJSON;
    json_array_foreach(vec, j, x)
    {
        if (!json_is_number(x))
            return SKY_EJSON;
        out[(size_t)at * dim + j] = json_number_value(x);
    }
    return 0;
}

static int read_vectors(const json_t *reply, sky_ai_embed_result *res, double **out)
{
    json_t *data = json_object_get(reply, "data"), *item;
    size_t i;
    res->count = json_array_size(data);
    res->dim = json_array_size(json_object_get(json_array_get(data, 0), "embedding"));
    if (res->count == 0 || res->dim == 0)
        return SKY_EJSON;
    if ((*out = calloc(res->count * res->dim, sizeof(double))) == NULL)
        return SKY_ENOMEM;
    json_array_foreach(data, i, item)
    {
        if (read_vector(item, res->count, res->dim, *out) < 0)
            return SKY_EJSON;
    }
    res->vectors = *out;
    return 0;
}

void sky__ai_embed_done(ai_leg *leg, const sky_call_result *res, const sky_error *err)
{
    sky_ai_request *r = leg->req;
    sky_ai_embed_result out;
    sky_error own;
    double *vectors = NULL;
    memset(&out, 0, sizeof(out));
    sky_error_clear(&own);
    out.call = res;
    out.prompt_tokens = -1;
    if (err == NULL) {
        out.reply = res->json;
        out.prompt_tokens = sky_json_int(json_object_get(res->json, "usage"), "prompt_tokens", -1);
        int rc = read_vectors(res->json, &out, &vectors);
        if (rc < 0) {
            sky_error_set(&own, rc, "the embeddings reply has no vectors of one size");
            own.http_status = res->status;
            out.count = out.dim = 0;
            out.vectors = NULL;
            err = &own;
        }
    }
    r->on_embed(r, &out, err, r->user_data);
    free(vectors);
}
