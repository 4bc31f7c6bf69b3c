/*
 * What a model call cost: the tokens its answer says it used, at the model's price per
 * million tokens from the config's price table. The prompt's tokens the upstream served
 * from its prompt cache are priced apart when the table says how (OpenAI and Azure bill
 * them lower). A model without a price costs 0; the usage records say so by counting it.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int sky__gw_prices_set(gw_table *t, const sky_gateway_price *prices, size_t n, sky_error *err)
{
    if (n == 0 || t->n_models == 0)
        return 0;
    t->prices = calloc(t->n_models, sizeof(*t->prices));
    if (t->prices == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const sky_gateway_price *p = &prices[i];
        size_t j = 0;
        while (p->model && j < t->n_models && strcmp(t->models[j].name, p->model) != 0)
            j++;
        if (p->model == NULL || j == t->n_models)
            continue; /* a price list may name models this gateway does not serve */
        gw_price *m = &t->prices[j];
        m->priced = 1;
        m->in = p->input_per_1m > 0 ? p->input_per_1m : 0;
        m->out = p->output_per_1m > 0 ? p->output_per_1m : 0;
        m->cached_in = p->cached_input_per_1m >= 0 ? p->cached_input_per_1m : m->in;
    }
    return 0;
}

static double nonneg(int64_t v)
{
    return v > 0 ? (double)v : 0;
}

double sky__gw_cost(const gw_table *t, const gw_model *m, const gw_tokens *used, int *out_priced)
{
    const gw_price *p = t && t->prices && m ? &t->prices[m - t->models] : NULL;
    *out_priced = p != NULL && p->priced;
    if (!*out_priced)
        return 0;
    double prompt = nonneg(used->prompt), cached = nonneg(used->cached);
    if (cached > prompt)
        cached = prompt;
    return ((prompt - cached) * p->in + cached * p->cached_in + nonneg(used->completion) * p->out) /
           1e6;
}
