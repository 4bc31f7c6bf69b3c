/*
 * What a reload keeps: a deployment the new config leaves as it was keeps its pipeline
 * (the rate limit it learned, its concurrency limit, its breaker) and the router's shadows
 * of its buckets, rather than learn them again from the first 429s. "As it was" is a
 * fingerprint of everything that shapes the pipeline: model, kind, base URL, deployment
 * name, api-version, key, known limits, concurrency, timeout. Its weight may change. The
 * tables that share a pipeline hold it together; the last to go frees it.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

struct gw_pipe {
    sky_pipeline *pipe;
    sky_ai_endpoint ep; /* the one its auth reads: it lives as long as the pipeline */
    unsigned char print[SKY_GATEWAY_SHA256_LEN];
    int refs;
};

static int put_str(sky_buf *b, const char *s)
{
    /* NULL and "" differ; the length keeps "ab"+"c" from "a"+"bc" */
    return s ? sky_buf_printf(b, "%zu:%s|", strlen(s), s) : sky_buf_append(b, "-|", 2);
}

int sky__gw_dep_print(const sky_gateway_deployment *in, long timeout_ms,
                      unsigned char out[SKY_GATEWAY_SHA256_LEN])
{
    sky_buf b;
    sky_buf_init(&b, 1 << 20);
    int rc = put_str(&b, in->model);
    rc = rc ? rc : put_str(&b, in->base_url);
    rc = rc ? rc : put_str(&b, in->deployment);
    rc = rc ? rc : put_str(&b, in->api_version);
    rc = rc ? rc : put_str(&b, in->api_key);
    rc = rc ? rc
            : sky_buf_printf(&b, "%d|%.17g|%.17g|%d|%d|%ld", (int)in->kind, in->rpm, in->tpm,
                             in->max_concurrency, in->concurrency, timeout_ms);
    rc = rc ? rc : sky_gateway_key_hash(sky_span_make(b.data, b.len), out);
    if (b.data)
        OPENSSL_cleanse(b.data, b.len); /* the key was in it */
    sky_buf_free(&b);
    return rc < 0 ? SKY_ENOMEM : 0;
}

gw_pipe *sky__gw_pipe_new(const unsigned char print[SKY_GATEWAY_SHA256_LEN])
{
    gw_pipe *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    memcpy(p->print, print, sizeof(p->print));
    p->refs = 1;
    return p;
}

sky_ai_endpoint *sky__gw_pipe_endpoint(gw_pipe *p)
{
    return &p->ep;
}

sky_pipeline **sky__gw_pipe_slot(gw_pipe *p)
{
    return &p->pipe;
}

void sky__gw_pipe_release(gw_pipe *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    sky_pipeline_free(p->pipe); /* its calls end now, their callbacks run */
    sky_ai_endpoint_free(&p->ep);
    free(p);
}

int sky__gw_carry(gw_table *prev, unsigned char *taken, gw_deployment *d,
                  const unsigned char print[SKY_GATEWAY_SHA256_LEN])
{
    for (size_t i = 0; prev && i < prev->n_deps; i++) {
        gw_deployment *old = &prev->deps[i];
        gw_pipe *p = old->held;
        if (taken[i] || p == NULL || p->pipe == NULL ||
            CRYPTO_memcmp(p->print, print, sizeof(p->print)) != 0)
            continue;
        taken[i] = 1; /* one old deployment for one new: a twin gets a pipeline of its own */
        p->refs++;
        d->held = p;
        d->pipe = d->rt.pipe = p->pipe;
        d->rt.shadow_req = old->rt.shadow_req;
        d->rt.shadow_tok = old->rt.shadow_tok;
        return 1;
    }
    return 0;
}
