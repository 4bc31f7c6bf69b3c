/*
 * The few fields the gateway reads of a request body (model, stream, max_tokens, whether
 * "temperature" is 0), by a scan that builds no tree: the body itself goes upstream as it
 * came.
 */
#include <stdlib.h>

#include "skyio/json.h"
#include "internal.h"

/* The body's nesting the gateway accepts; deeper is refused as malformed. */
#define GW_BODY_MAX_DEPTH 64

enum { FIELD_NONE, FIELD_MODEL, FIELD_STREAM, FIELD_MAX_TOKENS, FIELD_TEMPERATURE };

typedef struct body_scan {
    gw_body *out;
    int field; /* the root member whose value comes next */
    int root_object;
} body_scan;

static int on_key(void *ud, int depth, sky_span key)
{
    body_scan *s = ud;
    if (depth != 1)
        return 0;
    s->field = sky_span_eq_cstr(key, "model")                   ? FIELD_MODEL
               : sky_span_eq_cstr(key, "stream")                ? FIELD_STREAM
               : sky_span_eq_cstr(key, "max_tokens")            ? FIELD_MAX_TOKENS
               : sky_span_eq_cstr(key, "max_completion_tokens") ? FIELD_MAX_TOKENS
               : sky_span_eq_cstr(key, "temperature")           ? FIELD_TEMPERATURE
                                                                : FIELD_NONE;
    /* a member the gateway does not read goes by unreported (still checked): the messages
     * are most of a body */
    return s->field == FIELD_NONE ? SKY_JSON_SKIP : 0;
}

static void set_model(gw_body *b, const char *p, size_t len)
{
    size_t n = len < sizeof(b->model) - 1 ? len : sizeof(b->model) - 1;
    memcpy(b->model, p, n);
    b->model[n] = '\0';
    b->has_model = 1;
}

/* A number as written equal to 0 ("0", "0.0", "-0", "0e5"). */
static int number_is_zero(sky_json_kind kind, sky_span value)
{
    char text[32];
    if ((kind != SKY_JSON_INTEGER && kind != SKY_JSON_REAL) || value.len >= sizeof(text))
        return 0;
    memcpy(text, value.ptr, value.len);
    text[value.len] = '\0';
    return strtod(text, NULL) == 0.0;
}

static int on_scalar(void *ud, int depth, sky_json_kind kind, sky_span value)
{
    body_scan *s = ud;
    if (depth != 1)
        return 0;
    if (s->field == FIELD_MODEL && kind == SKY_JSON_STRING)
        set_model(s->out, value.ptr, value.len);
    else if (s->field == FIELD_STREAM)
        s->out->stream = kind == SKY_JSON_TRUE;
    else if (s->field == FIELD_MAX_TOKENS && kind == SKY_JSON_INTEGER && value.len < 19)
        s->out->max_tokens = sky_json_scan_int(value);
    else if (s->field == FIELD_TEMPERATURE)
        s->out->temperature_zero = number_is_zero(kind, value);
    s->field = FIELD_NONE;
    return 0;
}

static int on_open(void *ud, int depth, sky_json_kind kind, size_t at)
{
    body_scan *s = ud;
    (void)at;
    if (depth == 0)
        s->root_object = kind == SKY_JSON_OBJECT;
    if (depth == 1)
        s->field = FIELD_NONE; /* "model": {...} is no model */
    return 0;
}

/* The same fields from a tree, for the rare body the scan cannot vouch for. */
static int read_tree(sky_span body, gw_body *out, sky_error *err)
{
    json_t *doc = NULL;
    int rc = sky_json_parse(body, &doc, err);
    if (rc < 0)
        return rc;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return sky_error_set(err, SKY_EJSON, "the body is not a JSON object");
    }
    const char *model = sky_json_str(doc, "model", NULL);
    if (model)
        set_model(out, model, strlen(model));
    out->stream = sky_json_bool(doc, "stream", 0);
    out->max_tokens =
        sky_json_int(doc, "max_tokens", sky_json_int(doc, "max_completion_tokens", 0));
    json_t *t = json_object_get(doc, "temperature");
    out->temperature_zero = json_is_number(t) && json_number_value(t) == 0.0;
    json_decref(doc);
    return 0;
}

int sky__gw_body_read(sky_span body, gw_body *out, sky_error *err)
{
    static const sky_json_visitor visitor = {on_key, on_scalar, on_open, NULL};
    body_scan s = {out, FIELD_NONE, 0};
    memset(out, 0, sizeof(*out));
    int rc = sky_json_scan(body, GW_BODY_MAX_DEPTH, &visitor, &s);
    if (rc == SKY_ENOMEM)
        return sky_error_set(err, rc, "out of memory");
    if (rc < 0) {
        memset(out, 0, sizeof(*out));
        return read_tree(body, out, err);
    }
    if (!s.root_object)
        return sky_error_set(err, SKY_EJSON, "the body is not a JSON object");
    return 0;
}

char *sky__gw_body_set_model(sky_span body, const char *model, size_t *out_len)
{
    json_t *doc = NULL;
    if (sky_json_parse(body, &doc, NULL) < 0)
        return NULL;
    char *text = NULL;
    if (json_object_set_new(doc, "model", json_string(model)) == 0)
        text = sky_json_dump(doc, out_len);
    json_decref(doc);
    return text;
}
