/*
 * The gateway's config file read into sky_gateway_config. Keys never live in the file:
 * a deployment names the environment variable that holds its key (key_env), a client key
 * is given by its SHA-256 or by a variable too. A file that holds a key anyway is refused,
 * so a key pasted there is noticed before the file is shared.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <strings.h>

#include "skyio/json.h"
#include "internal.h"

/* What the config owns besides its arrays: its copy of the document (whose strings the
 * entries borrow), the keys read from the environment, the key's model lists. */
typedef struct config_priv {
    json_t *doc;
    char **secrets;
    size_t n_secrets;
    const char **names;    /* every key's model names, one array */
    const char **fb_names; /* every fallback's model names, one array */
} config_priv;

static int parse_kind(const char *s, sky_gateway_kind *out)
{
    if (s == NULL || strcmp(s, "openai") == 0)
        *out = SKY_GATEWAY_OPENAI;
    else if (strcmp(s, "azure") == 0)
        *out = SKY_GATEWAY_AZURE;
    else if (strcmp(s, "compatible") == 0)
        *out = SKY_GATEWAY_COMPATIBLE;
    else
        return -1;
    return 0;
}

/* The value of the variable @p name, kept (and wiped at the end) by the config. */
static int env_secret(config_priv *p, const char *name, const char **out)
{
    const char *v = getenv(name);
    *out = NULL;
    if (v == NULL || v[0] == '\0')
        return SKY_ENOTFOUND;
    char *copy = strdup(v);
    if (copy == NULL)
        return SKY_ENOMEM;
    p->secrets[p->n_secrets++] = copy;
    *out = copy;
    return 0;
}

static int has_inline_key(const json_t *o)
{
    return json_object_get(o, "key") || json_object_get(o, "api_key");
}

#define GW_MAX_CONCURRENCY 1000000

/* "max_concurrency" (an adaptive limit's cap) or "concurrency" (a fixed one); neither: none. */
static int parse_concurrency(const char *model, json_t *o, sky_gateway_deployment *d,
                             sky_error *err)
{
    json_t *vm = json_object_get(o, "max_concurrency"), *vf = json_object_get(o, "concurrency");
    int64_t max = sky_json_int(o, "max_concurrency", -1);
    int64_t fixed = sky_json_int(o, "concurrency", -1);
    if ((vm && max < 0) || (vf && fixed < 0) || (max > 0 && fixed > 0) ||
        max > GW_MAX_CONCURRENCY || fixed > GW_MAX_CONCURRENCY)
        return sky_error_set(err, SKY_EINVAL,
                             "model %s: max_concurrency or concurrency (not both) is a whole "
                             "number from 0 to %d",
                             model, GW_MAX_CONCURRENCY);
    d->max_concurrency = max > 0 ? (int)max : 0;
    d->concurrency = fixed > 0 ? (int)fixed : 0;
    return 0;
}

/* "api": "chat" (chat completions only: Responses calls are translated) or "all" (default). */
static int parse_api(const char *model, const json_t *o, sky_gateway_deployment *d, sky_error *err)
{
    const char *api = sky_json_str(o, "api", "all");
    if (strcmp(api, "chat") && strcmp(api, "all"))
        return sky_error_set(err, SKY_EINVAL, "model %s: api is \"chat\" or \"all\"", model);
    d->chat_only = strcmp(api, "chat") == 0;
    return 0;
}

static int parse_deployment(config_priv *p, const char *model, json_t *o, sky_gateway_deployment *d,
                            sky_error *err)
{
    sky_gateway_deployment_init(d);
    d->model = model;
    if (!json_is_object(o))
        return sky_error_set(err, SKY_EINVAL, "model %s: a deployment is an object", model);
    if (has_inline_key(o))
        return sky_error_set(err, SKY_EINVAL,
                             "model %s: keys do not belong in the file; name the environment "
                             "variable that holds it with \"key_env\"",
                             model);
    if (parse_kind(sky_json_str(o, "kind", NULL), &d->kind) < 0)
        return sky_error_set(err, SKY_EINVAL, "model %s: kind is openai, azure or compatible",
                             model);
    d->base_url =
        sky_json_str(o, "base_url", d->kind == SKY_GATEWAY_OPENAI ? SKY_AI_DEFAULT_BASE_URL : NULL);
    d->api_version = sky_json_str(o, "api_version", NULL);
    d->deployment = sky_json_str(o, "deployment", NULL);
    d->weight = sky_json_num(o, "weight", 1);
    d->rpm = sky_json_num(o, "rpm", 0);
    d->tpm = sky_json_num(o, "tpm", 0);
    if (d->base_url == NULL || d->weight < 0 || d->rpm < 0 || d->tpm < 0)
        return sky_error_set(err, SKY_EINVAL,
                             "model %s: a deployment needs a base_url; weight, rpm and tpm are "
                             "0 or more",
                             model);
    int rc = parse_concurrency(model, o, d, err);
    if (rc < 0 || (rc = parse_api(model, o, d, err)) < 0)
        return rc;
    if (d->kind == SKY_GATEWAY_AZURE && d->deployment == NULL)
        return sky_error_set(err, SKY_EINVAL, "model %s: an azure deployment needs \"deployment\"",
                             model);
    const char *env = sky_json_str(o, "key_env", NULL);
    rc = env ? env_secret(p, env, &d->api_key) : 0;
    if (rc == SKY_ENOTFOUND)
        return sky_error_set(err, SKY_EINVAL, "model %s: the environment variable %s is not set",
                             model, env);
    return rc < 0 ? sky_error_set(err, rc, "out of memory") : 0;
}

static size_t count_deployments(json_t *models)
{
    const char *name;
    json_t *v;
    size_t n = 0;
    json_object_foreach(models, name, v) n += json_is_array(v) ? json_array_size(v) : 1;
    (void)name;
    return n;
}

static int parse_models(config_priv *p, json_t *models, sky_gateway_config *c, sky_error *err)
{
    const char *name;
    json_t *v;
    size_t n = count_deployments(models);
    c->deployments = calloc(n ? n : 1, sizeof(*c->deployments));
    p->secrets = calloc(n ? n : 1, sizeof(*p->secrets));
    if (c->deployments == NULL || p->secrets == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    json_object_foreach(models, name, v)
    {
        size_t k = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < k; i++) {
            json_t *o = json_is_array(v) ? json_array_get(v, i) : v;
            int rc = parse_deployment(p, name, o, &c->deployments[c->n_deployments], err);
            if (rc < 0)
                return rc;
            c->n_deployments++;
        }
    }
    return 0;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int parse_hex_hash(const char *s, unsigned char *out)
{
    if (s == NULL || strlen(s) != 2 * SKY_GATEWAY_SHA256_LEN)
        return -1;
    for (size_t i = 0; i < SKY_GATEWAY_SHA256_LEN; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int key_hash(const json_t *o, sky_gateway_client_key *k, sky_error *err)
{
    const char *hex = sky_json_str(o, "key_sha256", NULL);
    const char *env = sky_json_str(o, "key_env", NULL);
    if (hex)
        return parse_hex_hash(hex, k->sha256) < 0
                   ? sky_error_set(err, SKY_EINVAL, "key %s: key_sha256 is 64 hex digits", k->name)
                   : 0;
    const char *v = env ? getenv(env) : NULL;
    if (v == NULL || v[0] == '\0')
        return sky_error_set(err, SKY_EINVAL,
                             env ? "key %s: the environment variable %s is not set"
                                 : "key %s: give key_sha256 or key_env%s",
                             k->name, env ? env : "");
    return sky_gateway_key_hash(sky_span_cstr(v), k->sha256) < 0
               ? sky_error_set(err, SKY_EINTERNAL, "key %s: cannot hash it", k->name)
               : 0;
}

static int key_models(const json_t *o, sky_gateway_client_key *k, const char **names, size_t *used,
                      sky_error *err)
{
    json_t *models = json_object_get(o, "models");
    if (models == NULL)
        return 0;
    if (!json_is_array(models))
        return sky_error_set(err, SKY_EINVAL, "key %s: models is a list of names", k->name);
    k->models = names + *used;
    for (size_t i = 0; i < json_array_size(models); i++) {
        const char *m = json_string_value(json_array_get(models, i));
        if (m == NULL)
            return sky_error_set(err, SKY_EINVAL, "key %s: models is a list of names", k->name);
        names[(*used)++] = m;
        k->n_models++;
    }
    return 0;
}

static size_t count_names(const json_t *keys)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(keys); i++)
        n += json_array_size(json_object_get(json_array_get(keys, i), "models"));
    return n;
}

static int parse_keys(config_priv *p, const json_t *keys, sky_gateway_config *c, sky_error *err)
{
    size_t n = json_array_size(keys), used = 0;
    c->keys = calloc(n ? n : 1, sizeof(*c->keys));
    p->names = calloc(count_names(keys) + 1, sizeof(*p->names));
    if (c->keys == NULL || p->names == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(keys, i);
        sky_gateway_client_key *k = &c->keys[i];
        k->name = sky_json_str(o, "name", NULL);
        if (!json_is_object(o) || k->name == NULL)
            return sky_error_set(err, SKY_EINVAL, "keys[%zu]: an object with a name", i);
        if (has_inline_key(o))
            return sky_error_set(err, SKY_EINVAL,
                                 "key %s: give its key_sha256 or key_env, not the key", k->name);
        k->rpm = sky_json_num(o, "rpm", 0);
        k->tpm = sky_json_num(o, "tpm", 0);
        k->daily_tokens = sky_json_num(o, "daily_tokens", 0);
        k->daily_cost = sky_json_num(o, "daily_cost", 0);
        if (k->rpm < 0 || k->tpm < 0 || k->daily_tokens < 0 || k->daily_cost < 0)
            return sky_error_set(err, SKY_EINVAL,
                                 "key %s: rpm, tpm, daily_tokens and daily_cost are 0 or more",
                                 k->name);
        int rc = key_hash(o, k, err);
        rc = rc < 0 ? rc : key_models(o, k, p->names, &used, err);
        if (rc < 0)
            return rc;
        c->n_keys++;
    }
    return 0;
}

static size_t count_fallback_names(json_t *fallbacks)
{
    const char *name;
    json_t *v;
    size_t n = 0;
    json_object_foreach(fallbacks, name, v) n += json_is_array(v) ? json_array_size(v) : 1;
    (void)name;
    return n;
}

/* "fallbacks": {"gpt-4o": ["gpt-4o-mini", ...]} (one name may stand alone) */
static int parse_fallbacks(config_priv *p, json_t *fallbacks, sky_gateway_config *c, sky_error *err)
{
    const char *model;
    json_t *v;
    size_t used = 0;
    if (fallbacks == NULL)
        return 0;
    if (!json_is_object(fallbacks))
        return sky_error_set(err, SKY_EINVAL, "\"fallbacks\" maps a model to a list of models");
    c->fallbacks = calloc(json_object_size(fallbacks) + 1, sizeof(*c->fallbacks));
    p->fb_names = calloc(count_fallback_names(fallbacks) + 1, sizeof(*p->fb_names));
    if (c->fallbacks == NULL || p->fb_names == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    json_object_foreach(fallbacks, model, v)
    {
        sky_gateway_fallback *f = &c->fallbacks[c->n_fallbacks++];
        size_t k = json_is_array(v) ? json_array_size(v) : 1;
        f->model = model;
        f->to = p->fb_names + used;
        for (size_t i = 0; i < k; i++) {
            const char *to = json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
            if (to == NULL)
                return sky_error_set(err, SKY_EINVAL, "fallbacks of %s: a list of model names",
                                     model);
            p->fb_names[used++] = to;
            f->n_to++;
        }
    }
    return 0;
}

/* One price: {"input_per_1m", "output_per_1m", "cached_input_per_1m"}, numbers >= 0. */
static int parse_price(const char *model, json_t *o, sky_gateway_price *p, sky_error *err)
{
    static const char *const fields[] = {"input_per_1m", "output_per_1m", "cached_input_per_1m"};
    int ok = json_is_object(o);
    for (size_t i = 0; ok && i < SKY_ARRAY_LEN(fields); i++) {
        json_t *v = json_object_get(o, fields[i]);
        ok = v == NULL || (json_is_number(v) && json_number_value(v) >= 0);
    }
    if (!ok)
        return sky_error_set(err, SKY_EINVAL,
                             "prices of %s: {\"input_per_1m\", \"output_per_1m\", "
                             "\"cached_input_per_1m\"}, each a number of 0 or more",
                             model);
    p->model = model;
    p->input_per_1m = sky_json_num(o, "input_per_1m", 0);
    p->output_per_1m = sky_json_num(o, "output_per_1m", 0);
    p->cached_input_per_1m = sky_json_num(o, "cached_input_per_1m", -1);
    return 0;
}

/* "prices": {"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10}} (dollars, or any unit) */
static int parse_prices(json_t *prices, sky_gateway_config *c, sky_error *err)
{
    const char *model;
    json_t *v;
    if (prices == NULL)
        return 0;
    if (!json_is_object(prices))
        return sky_error_set(err, SKY_EINVAL, "\"prices\" maps a model to its price");
    c->prices = calloc(json_object_size(prices) + 1, sizeof(*c->prices));
    if (c->prices == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    json_object_foreach(prices, model, v)
    {
        int rc = parse_price(model, v, &c->prices[c->n_prices], err);
        if (rc < 0)
            return rc;
        c->n_prices++;
    }
    return 0;
}

int sky_gateway_config_parse(const json_t *doc, sky_gateway_config *out, sky_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(doc))
        return sky_error_set(err, SKY_EINVAL, "the config is a JSON object");
    config_priv *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->doc = json_deep_copy(doc)) == NULL) {
        free(p);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    out->priv = p;
    json_t *models = json_object_get(p->doc, "models");
    json_t *keys = json_object_get(p->doc, "keys");
    int rc = 0;
    if (!json_is_object(models) || json_object_size(models) == 0)
        rc = sky_error_set(err, SKY_EINVAL, "\"models\" maps model names to their deployments");
    else if (keys && !json_is_array(keys))
        rc = sky_error_set(err, SKY_EINVAL, "\"keys\" is a list");
    rc = rc < 0 ? rc : parse_models(p, models, out, err);
    rc = rc < 0 ? rc : parse_keys(p, keys, out, err);
    rc = rc < 0 ? rc : parse_fallbacks(p, json_object_get(p->doc, "fallbacks"), out, err);
    rc = rc < 0 ? rc : parse_prices(json_object_get(p->doc, "prices"), out, err);
    if (rc < 0)
        sky_gateway_config_free(out);
    return rc;
}

void sky_gateway_config_free(sky_gateway_config *c)
{
    config_priv *p = c ? c->priv : NULL;
    if (p) {
        for (size_t i = 0; i < p->n_secrets; i++) {
            OPENSSL_cleanse(p->secrets[i], strlen(p->secrets[i]));
            free(p->secrets[i]);
        }
        free(p->secrets);
        free(p->names);
        free(p->fb_names);
        json_decref(p->doc);
        free(p);
    }
    if (c) {
        OPENSSL_cleanse(c->keys, c->n_keys * sizeof(*c->keys));
        free(c->deployments);
        free(c->fallbacks);
        free(c->keys);
        free(c->prices);
        memset(c, 0, sizeof(*c));
    }
}
