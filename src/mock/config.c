/* `skyio mock` configuration: defaults and the JSON file form. */
#include <stdio.h>

#include "skyio/json.h"
#include "internal.h"

void sky_mock_config_init(sky_mock_config *c)
{
    memset(c, 0, sizeof(*c));
    c->host = "127.0.0.1";
    c->jitter = 0.1;
    c->window_ms = 1000;
    c->default_completion_tokens = 16;
    c->reply_median_tokens = 200;
    c->reply_min_tokens = 64;
    c->embedding_dim = 1536;
    c->max_body = 8u * 1024u * 1024u;
    c->seed = 1;
    c->threads = 1;
    c->overload_burst = 5;
    c->overload_status = 503;
    sky__mock_arm_config_init(&c->arm);
    sky__mock_identity_config_init(&c->identity);
}

static int want_number(const json_t *v, const char *key, double lo, double hi, double *out,
                       sky_error *err)
{
    if (!json_is_number(v))
        return sky_error_set(err, SKY_EINVAL, "config key \"%s\": expected a number", key);
    double d = json_number_value(v);
    if (d < lo || d > hi)
        return sky_error_set(err, SKY_EINVAL, "config key \"%s\": %g is outside [%g, %g]", key, d,
                             lo, hi);
    *out = d;
    return 0;
}

static int apply_faults(sky_mock_faults *f, json_t *obj, sky_error *err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj))
        return sky_error_set(err, SKY_EINVAL, "config key \"faults\": expected an object");
    json_object_foreach(obj, key, v)
    {
        double *slot = NULL;
        if (strcmp(key, "http_500") == 0)
            slot = &f->http_500;
        else if (strcmp(key, "http_502") == 0)
            slot = &f->http_502;
        else if (strcmp(key, "http_503") == 0)
            slot = &f->http_503;
        else if (strcmp(key, "reset") == 0)
            slot = &f->reset;
        else if (strcmp(key, "hang") == 0)
            slot = &f->hang;
        else if (strcmp(key, "cut") == 0)
            slot = &f->cut;
        else if (strcmp(key, "malformed") == 0)
            slot = &f->malformed;
        else if (strcmp(key, "stream_cut") == 0)
            slot = &f->stream_cut;
        else if (strcmp(key, "stream_error") == 0)
            slot = &f->stream_error;
        else if (strcmp(key, "content_filter") == 0)
            slot = &f->content_filter;
        else
            return sky_error_set(err, SKY_EINVAL, "config key \"faults.%s\" is unknown", key);
        if (want_number(v, key, 0, 1, slot, err) < 0)
            return SKY_EINVAL;
    }
    return 0;
}

/* "keys" and "models": arrays of at most SKY_MOCK_MAX_KEYS strings. */
static int apply_names(const char *key, const json_t *arr, const char **out, size_t *n,
                       sky_error *err)
{
    size_t i;
    json_t *v;
    if (!json_is_array(arr))
        return sky_error_set(err, SKY_EINVAL, "config key \"%s\": expected an array", key);
    *n = 0;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || *n == SKY_MOCK_MAX_KEYS)
            return sky_error_set(err, SKY_EINVAL, "config key \"%s\": expected at most %d strings",
                                 key, SKY_MOCK_MAX_KEYS);
        out[(*n)++] = json_string_value(v);
    }
    return 0;
}

static int apply_string(const json_t *v, const char *key, const char **out, sky_error *err)
{
    if (!json_is_string(v))
        return sky_error_set(err, SKY_EINVAL, "config key \"%s\": expected a string", key);
    *out = json_string_value(v);
    return 0;
}

/* Numeric keys, with their ranges, in one table. */
static int apply_numeric(sky_mock_config *c, const char *key, const json_t *v, sky_error *err)
{
    double d;
    int rc = 0;
    if (strcmp(key, "port") == 0 && (rc = want_number(v, key, 0, 65535, &d, err)) == 0)
        c->port = (int)d;
    else if (strcmp(key, "ttft_ms") == 0 && (rc = want_number(v, key, 0, 3.6e6, &d, err)) == 0)
        c->ttft_ms = d;
    else if (strcmp(key, "per_token_ms") == 0 && (rc = want_number(v, key, 0, 6e4, &d, err)) == 0)
        c->per_token_ms = d;
    else if (strcmp(key, "jitter") == 0 && (rc = want_number(v, key, 0, 1, &d, err)) == 0)
        c->jitter = d;
    else if (strcmp(key, "rpm") == 0 && (rc = want_number(v, key, 0, 1e12, &d, err)) == 0)
        c->rpm = (int64_t)d;
    else if (strcmp(key, "tpm") == 0 && (rc = want_number(v, key, 0, 1e15, &d, err)) == 0)
        c->tpm = (int64_t)d;
    else if (strcmp(key, "window_ms") == 0 && (rc = want_number(v, key, 1, 6e4, &d, err)) == 0)
        c->window_ms = (int64_t)d;
    else if (strcmp(key, "default_completion_tokens") == 0 &&
             (rc = want_number(v, key, 1, 1e5, &d, err)) == 0)
        c->default_completion_tokens = (int)d;
    else if (strcmp(key, "reply_median_tokens") == 0 &&
             (rc = want_number(v, key, 0, 1e5, &d, err)) == 0)
        c->reply_median_tokens = (int)d;
    else if (strcmp(key, "reply_min_tokens") == 0 &&
             (rc = want_number(v, key, 1, 1e5, &d, err)) == 0)
        c->reply_min_tokens = (int)d;
    else if (strcmp(key, "embedding_dim") == 0 &&
             (rc = want_number(v, key, 1, 65536, &d, err)) == 0)
        c->embedding_dim = (int)d;
    else if (strcmp(key, "max_body") == 0 && (rc = want_number(v, key, 1, 1e10, &d, err)) == 0)
        c->max_body = (size_t)d;
    else if (strcmp(key, "seed") == 0 && (rc = want_number(v, key, 0, 1.8e19, &d, err)) == 0)
        c->seed = (uint64_t)d;
    else if (strcmp(key, "threads") == 0 && (rc = want_number(v, key, 1, 64, &d, err)) == 0)
        c->threads = (int)d;
    else if (strcmp(key, "refuse_status") == 0 && (rc = want_number(v, key, 0, 599, &d, err)) == 0)
        c->refuse_status = (int)d;
    else if (strcmp(key, "capacity") == 0 && (rc = want_number(v, key, 0, 1e6, &d, err)) == 0)
        c->capacity = (int)d;
    else if (strcmp(key, "overload_rps") == 0 && (rc = want_number(v, key, 0, 1e9, &d, err)) == 0)
        c->overload_rps = d;
    else if (strcmp(key, "overload_burst") == 0 && (rc = want_number(v, key, 0, 1e6, &d, err)) == 0)
        c->overload_burst = (int)d;
    else if (strcmp(key, "overload_status") == 0 &&
             (rc = want_number(v, key, 500, 599, &d, err)) == 0)
        c->overload_status = (int)d;
    else if (strcmp(key, "poison") == 0 && (rc = want_number(v, key, 0, 1, &d, err)) == 0)
        c->poison = d;
    else if (rc == 0)
        return 1; /* not a numeric key */
    return rc;
}

int sky_mock_config_apply_json(sky_mock_config *c, json_t *json, sky_error *err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(json))
        return sky_error_set(err, SKY_EINVAL, "mock config: expected a JSON object");
    json_object_foreach(json, key, v)
    {
        int rc = apply_numeric(c, key, v, err);
        if (rc == 1) {
            if (strcmp(key, "host") == 0)
                rc = apply_string(v, key, &c->host, err);
            else if (strcmp(key, "tls_cert") == 0)
                rc = apply_string(v, key, &c->tls_cert_file, err);
            else if (strcmp(key, "tls_key") == 0)
                rc = apply_string(v, key, &c->tls_key_file, err);
            else if (strcmp(key, "refuse_code") == 0)
                rc = apply_string(v, key, &c->refuse_code, err);
            else if (strcmp(key, "keys") == 0)
                rc = apply_names(key, v, c->keys, &c->n_keys, err);
            else if (strcmp(key, "models") == 0)
                rc = apply_names(key, v, c->models, &c->n_models, err);
            else if (strcmp(key, "faults") == 0)
                rc = apply_faults(&c->faults, v, err);
            else if (strcmp(key, "arm") == 0)
                rc = sky__mock_arm_apply_json(&c->arm, v, err);
            else if (strcmp(key, "identity") == 0)
                rc = sky__mock_identity_apply_json(&c->identity, v, err);
            else if (strcmp(key, "hide_ratelimit_headers") == 0 && json_is_boolean(v))
                c->hide_ratelimit_headers = json_is_true(v);
            else
                rc =
                    sky_error_set(err, SKY_EINVAL, "config key \"%s\" is unknown or mistyped", key);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}
