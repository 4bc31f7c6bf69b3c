/*
 * Whole replies: the JSON body of each model call, and how it is sent. A chat
 * reply is written from fragments (reply.c) on the fast path; the other bodies,
 * and chat when that fails, are built with jansson (apis.c for Responses,
 * Completions and Moderations).
 */
#include <math.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "skyio/json.h"
#include "worker.h"

/* A unit vector of @p dim values drawn from @p seed, malloc'd; NULL without memory. */
static float *unit_vector(uint64_t seed, int dim)
{
    double norm = 0;
    uint64_t s = seed;
    float *v = malloc(sizeof(float) * (size_t)dim);
    if (v == NULL)
        return NULL;
    for (int i = 0; i < dim; i++) {
        v[i] = (float)(sky__mock_rand01(&s) * 2.0 - 1.0);
        norm += (double)v[i] * v[i];
    }
    norm = norm > 0 ? sqrt(norm) : 1;
    for (int i = 0; i < dim; i++)
        v[i] = (float)(v[i] / norm);
    return v;
}

static json_t *float_array(const float *v, int dim)
{
    json_t *a = json_array();
    for (int i = 0; a && i < dim; i++) {
        if (json_array_append_new(a, json_real(v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* What the SDKs ask for by default: the float32s in little-endian order, in base64. */
static json_t *base64_floats(const float *v, int dim)
{
    size_t n = (size_t)dim * 4;
    unsigned char *raw = malloc(n);
    char *text = malloc(4 * ((n + 2) / 3) + 1);
    json_t *out = NULL;
    if (raw && text) {
        for (int i = 0; i < dim; i++) {
            uint32_t bits;
            memcpy(&bits, &v[i], 4);
            for (int b = 0; b < 4; b++)
                raw[4 * i + b] = (unsigned char)(bits >> (8 * b));
        }
        int len = EVP_EncodeBlock((unsigned char *)text, raw, (int)n);
        out = json_stringn(text, (size_t)len);
    }
    free(raw);
    free(text);
    return out;
}

static json_t *embed_vector(uint64_t seed, int dim, int base64)
{
    float *v = unit_vector(seed, dim);
    json_t *out = v == NULL ? NULL : base64 ? base64_floats(v, dim) : float_array(v, dim);
    free(v);
    return out;
}

static json_t *embed_body(const sky__mock_call *c)
{
    json_t *data = json_array();
    for (int i = 0; data && i < c->n_inputs; i++) {
        json_t *vec = embed_vector(c->seed + (uint64_t)i, c->dim, c->base64);
        json_t *item =
            vec ? json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i, "embedding", vec)
                : NULL;
        if (item == NULL || json_array_append_new(data, item) < 0) {
            json_decref(data);
            return NULL;
        }
    }
    if (data == NULL)
        return NULL;
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", c->model,
                     "usage", "prompt_tokens", (json_int_t)c->prompt_tokens, "total_tokens",
                     (json_int_t)c->prompt_tokens);
}

int64_t sky__mock_generated(const sky__mock_call *c, int tokens)
{
    return (int64_t)tokens *
           (c->kind == SKY__MOCK_COMPLETIONS && c->n_inputs > 1 ? c->n_inputs : 1);
}

sky__mock_text sky__mock_call_text(const sky__mock_call *c)
{
    sky__mock_text t = {.id = c->id,
                        .model = c->model,
                        .created = c->created,
                        .prompt_tokens = c->prompt_tokens,
                        .n_tokens = c->n_tokens,
                        .has_max = c->has_max,
                        .limit = c->max_tokens,
                        .n_inputs = c->n_inputs,
                        .seed = c->seed,
                        .instructions = c->instructions};
    return t;
}

json_t *sky__mock_call_body(const sky__mock_call *c)
{
    sky__mock_text t = sky__mock_call_text(c);
    switch (c->kind) {
    case SKY__MOCK_CHAT:
        return sky__mock_chat_body(c);
    case SKY__MOCK_EMBEDDINGS:
        return embed_body(c);
    case SKY__MOCK_RESPONSES:
        return sky__mock_responses_body(&t);
    case SKY__MOCK_COMPLETIONS:
        return sky__mock_completion_body(&t);
    default:
        return sky__mock_moderation_body(&t);
    }
}

/*
 * A chat reply assembled from fragments (src/mock/reply.c), on the stack
 * when it is small, as it is in the benchmarks. Fails, answering nothing,
 * when the model name cannot be a JSON string or memory runs out; the
 * caller then answers through jansson.
 */
static int send_chat_fast(sky__mock_worker *m, sky_server_req *r, const sky__mock_call *c)
{
    char local[1024];
    sky__mock_chat_reply reply = {.id = sky_span_cstr(c->id),
                                  .created = c->created,
                                  .prompt_tokens = c->prompt_tokens,
                                  .n_tokens = c->n_tokens,
                                  .has_max = c->has_max,
                                  .seed = c->seed};
    int rc = sky__mock_json_name_get(&m->model_json, c->model, &reply.model_json);
    if (rc < 0)
        return rc;
    size_t size = sky__mock_chat_reply_size(&reply);
    char *out = size <= sizeof(local) ? local : malloc(size);
    if (out == NULL)
        return SKY_ENOMEM;
    size_t len = sky__mock_chat_reply_write(&reply, out);
    ST_ADD(m->st.completion_tokens, (uint64_t)c->n_tokens);
    sky__mock_count_status(m, 200);
    sky__mock_add_request_id(r, m);
    sky_server_respond(r, 200, "application/json", sky_span_make(out, len));
    if (out != local)
        free(out);
    return 0;
}

void sky__mock_send_reply(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    if (c->fault == SKY__FAULT_CUT) {
        sky__mock_send_cut(m, r, c);
        return;
    }
    if (c->kind == SKY__MOCK_CHAT && sky__mock_chat_is_plain(c) && send_chat_fast(m, r, c) == 0)
        return;
    json_t *body = sky__mock_call_body(c);
    if (body == NULL) {
        sky__mock_respond_error(m, r, c->azure, 500, "server_error", "server_error",
                                "out of memory");
        return;
    }
    ST_ADD(m->st.completion_tokens,
           sky__mock_generates(c->kind) ? (uint64_t)sky__mock_generated(c, c->n_tokens) : 0);
    sky__mock_respond_json(m, r, 200, body);
}

void sky__mock_delayed_reply(sky_server_req *r, void *data)
{
    sky__mock_call *c = data;
    sky__mock_send_reply(c->m, r, c);
}
