/*
 * ARM's long-running-operation rules as pure decisions (no I/O, no timers),
 * the resume token, and ARM error bodies. The driver in client.c does the
 * sending and the waiting; everything it decides comes from here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include <openssl/evp.h>

#include "skyio/json.h"
#include "internal.h"

static const char *const style_names[] = {"none", "async", "location", "state"};

const char *sky_arm_poll_style_name(sky_arm_poll_style s)
{
    if ((unsigned)s < SKY_ARRAY_LEN(style_names))
        return style_names[s];
    return "unknown";
}

static int style_from_name(const char *name)
{
    for (size_t i = 0; name && i < SKY_ARRAY_LEN(style_names); i++)
        if (strcmp(name, style_names[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- errors ---- */

/* "code: message" of each detail, after the main message, as room allows. */
static void append_details(char *msg, size_t cap, const json_t *details)
{
    size_t i;
    json_t *d;
    size_t used = strlen(msg);
    if (!json_is_array(details) || json_array_size(details) == 0)
        return;
    json_array_foreach(details, i, d)
    {
        const char *code = sky_json_str(d, "code", "");
        const char *text = sky_json_str(d, "message", "");
        int n = snprintf(msg + used, cap - used, "%s%s%s%s", i == 0 ? " (details: " : "; ", code,
                         *code && *text ? ": " : "", text);
        if (n < 0 || (size_t)n >= cap - used)
            return;
        used += (size_t)n;
    }
    if (used + 1 < cap)
        snprintf(msg + used, cap - used, ")");
}

/* @p obj is the "error" object of a reply or an operation status. */
static int error_from_object(int http_status, const json_t *obj, const char *fallback_code,
                             sky_error *err)
{
    char msg[SKY_ERROR_MESSAGE_MAX];
    const char *code = sky_json_str(obj, "code", fallback_code);
    snprintf(msg, sizeof(msg), "%s", sky_json_str(obj, "message", ""));
    append_details(msg, sizeof(msg), json_object_get(obj, "details"));
    /* the status and the code have their own fields: the message is the service's words */
    sky_error_set(err, SKY_EHTTP, "%s", msg[0] ? msg : code && *code ? code : "the request failed");
    sky_error_set_service(err, code);
    if (http_status && err->http_status == 0)
        err->http_status = http_status;
    return err->code;
}

int sky_arm_error_from_reply(int http_status, sky_span body, sky_error *err)
{
    json_t *j = NULL;
    if (body.len > 0 && sky_json_parse(body, &j, NULL) == 0) {
        json_t *e = json_object_get(j, "error");
        /* Some services answer {"code", "message"} without the wrapper. */
        if (!json_is_object(e) && json_is_string(json_object_get(j, "code")))
            e = j;
        if (json_is_object(e)) {
            error_from_object(http_status, e, NULL, err);
            json_decref(j);
            return err->code;
        }
    }
    json_decref(j);
    sky_error_set(err, SKY_EHTTP, "HTTP %d", http_status);
    if (err->http_status == 0)
        err->http_status = http_status;
    return err->code;
}

/* ---- decisions ---- */

int sky__arm_status_terminal(const char *status)
{
    return status && (strcasecmp(status, "Succeeded") == 0 || strcasecmp(status, "Failed") == 0 ||
                      strcasecmp(status, "Canceled") == 0 || strcasecmp(status, "Cancelled") == 0);
}

void sky__arm_lro_state_free(sky__arm_lro_state *s)
{
    free(s->resource_url);
    free(s->poll_url);
    free(s->final_url);
    memset(s, 0, sizeof(*s));
}

static int set_str(char **slot, const char *v)
{
    char *copy = v ? strdup(v) : NULL;
    if (v && copy == NULL)
        return SKY_ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

static int is_put_or_patch(const sky__arm_lro_state *s)
{
    return strcmp(s->method, "PUT") == 0 || strcmp(s->method, "PATCH") == 0;
}

static uint64_t wait_ms(const sky_headers *h, uint64_t interval_ms, const sky_clock *clock)
{
    int64_t ms;
    /* A server's (or a proxy's) Retry-After of days must not stall an operation that
     * could be checked: wait at most 10 minutes between polls. */
    if (h && sky_parse_retry_after_ms(h, clock, &ms) == 0 && ms >= 0)
        return ms > SKY__ARM_MAX_POLL_WAIT_MS ? SKY__ARM_MAX_POLL_WAIT_MS : (uint64_t)ms;
    return interval_ms;
}

static void decide(sky__arm_decision *d, sky__arm_step step, const char *status)
{
    memset(d, 0, sizeof(*d));
    d->step = step;
    snprintf(d->status, sizeof(d->status), "%s", status ? status : "");
}

static void poll_again(sky__arm_decision *d, const char *status, const sky_headers *h,
                       uint64_t interval_ms, const sky_clock *clock)
{
    decide(d, SKY__ARM_POLL, status);
    d->delay_ms = wait_ms(h, interval_ms, clock);
}

/*
 * The body's properties.provisioningState, copied into @p out; *out_state is NULL
 * when there is none. Returns 0, or SKY_ENOMEM when the body could not be read for
 * want of memory: a state not read is not a state absent (absent means finished).
 */
static int provisioning_state(sky_span body, char *out, size_t len, const char **out_state)
{
    json_t *j = NULL;
    *out_state = NULL;
    int rc = body.len ? sky_json_parse(body, &j, NULL) : SKY_EJSON;
    if (rc == SKY_ENOMEM)
        return rc;
    json_t *v = sky_json_path(j, "properties.provisioningState");
    if (json_is_string(v)) {
        snprintf(out, len, "%s", json_string_value(v));
        *out_state = out;
    }
    json_decref(j);
    return 0;
}

/* A terminal state that is not success ends the operation with an error. */
static void finish_state(sky__arm_decision *d, const char *state, sky_span body, int status,
                         sky_error *err)
{
    decide(d, SKY__ARM_DONE, state);
    if (strcasecmp(state, "Succeeded") == 0)
        return;
    json_t *j = NULL;
    json_t *e = NULL;
    if (body.len && sky_json_parse(body, &j, NULL) == 0)
        e = json_object_get(j, "error");
    int canceled = strncasecmp(state, "Cancel", 6) == 0;
    if (json_is_object(e)) {
        error_from_object(0, e, canceled ? "Canceled" : "OperationFailed", err);
    } else {
        sky_error_set(err, SKY_EHTTP, "the operation ended %s", state);
        sky_error_set_service(err, canceled ? "Canceled" : "OperationFailed");
    }
    if (canceled)
        err->code = SKY_ECANCELED;
    err->http_status = status;
    json_decref(j);
}

int sky__arm_lro_first(sky__arm_lro_state *s, const char *method, const char *resource_url,
                       int status, const sky_headers *h, sky_span body, uint64_t interval_ms,
                       const sky_clock *clock, sky__arm_decision *d, sky_error *err)
{
    char st[32];
    const char *async = h ? sky_headers_get(h, "azure-asyncoperation") : NULL;
    const char *loc = h ? sky_headers_get(h, "location") : NULL;
    memset(s, 0, sizeof(*s));
    snprintf(s->method, sizeof(s->method), "%s", method);
    if (set_str(&s->resource_url, resource_url) < 0)
        return SKY_ENOMEM;
    if (status < 200 || status >= 300) {
        decide(d, SKY__ARM_DONE, "Failed");
        sky_arm_error_from_reply(status, body, err);
        return 0;
    }
    if (async && *async) {
        s->style = SKY_ARM_POLL_ASYNC;
        if (set_str(&s->poll_url, async) < 0 ||
            (!is_put_or_patch(s) && loc && *loc && set_str(&s->final_url, loc) < 0))
            return SKY_ENOMEM;
        poll_again(d, "InProgress", h, interval_ms, clock);
        return 0;
    }
    if (loc && *loc && (status == 202 || status == 201)) {
        s->style = SKY_ARM_POLL_LOCATION;
        if (set_str(&s->poll_url, loc) < 0)
            return SKY_ENOMEM;
        poll_again(d, "Accepted", h, interval_ms, clock);
        return 0;
    }
    const char *state;
    if (provisioning_state(body, st, sizeof(st), &state) < 0)
        return SKY_ENOMEM;
    if (is_put_or_patch(s) && (status == 200 || status == 201) && state &&
        !sky__arm_status_terminal(state)) {
        s->style = SKY_ARM_POLL_STATE;
        if (set_str(&s->poll_url, resource_url) < 0)
            return SKY_ENOMEM;
        poll_again(d, state, h, interval_ms, clock);
        return 0;
    }
    finish_state(d, state ? state : "Succeeded", body, status, err);
    return 0;
}

/* Azure-AsyncOperation: {"status": ..., "error": {...}}. 0, or SKY_ENOMEM. */
static int next_async(sky__arm_lro_state *s, const sky_headers *h, sky_span body, int status,
                      uint64_t interval_ms, const sky_clock *clock, sky__arm_decision *d,
                      sky_error *err)
{
    json_t *j = NULL;
    char st[32] = "";
    int rc = body.len ? sky_json_parse(body, &j, NULL) : SKY_EJSON;
    if (rc == SKY_ENOMEM) /* unread is not "no status": that would end the operation */
        return rc;
    if (rc == 0)
        snprintf(st, sizeof(st), "%s", sky_json_str(j, "status", ""));
    json_decref(j);
    if (st[0] == '\0') {
        decide(d, SKY__ARM_DONE, "");
        sky_error_set(err, SKY_EPROTO, "the operation status reply has no \"status\"");
        err->http_status = status;
        return 0;
    }
    if (!sky__arm_status_terminal(st)) {
        poll_again(d, st, h, interval_ms, clock);
        return 0;
    }
    if (strcasecmp(st, "Succeeded") != 0) {
        finish_state(d, st, body, status, err);
        return 0;
    }
    const char *final = is_put_or_patch(s) ? s->resource_url : s->final_url;
    decide(d, final ? SKY__ARM_FETCH_FINAL : SKY__ARM_DONE, st);
    d->url = final;
    return 0;
}

int sky__arm_lro_next(sky__arm_lro_state *s, int status, const sky_headers *h, sky_span body,
                      uint64_t interval_ms, const sky_clock *clock, sky__arm_decision *d,
                      sky_error *err)
{
    char st[32];
    if (status < 200 || status >= 300) {
        decide(d, SKY__ARM_DONE, "Failed");
        sky_arm_error_from_reply(status, body, err);
        return 0;
    }
    switch (s->style) {
    case SKY_ARM_POLL_ASYNC:
        return next_async(s, h, body, status, interval_ms, clock, d, err);
    case SKY_ARM_POLL_LOCATION: {
        const char *loc = h ? sky_headers_get(h, "location") : NULL;
        if (status == 202) {
            if (loc && *loc && set_str(&s->poll_url, loc) < 0)
                return SKY_ENOMEM;
            poll_again(d, "InProgress", h, interval_ms, clock);
            return 0;
        }
        decide(d, is_put_or_patch(s) ? SKY__ARM_FETCH_FINAL : SKY__ARM_DONE, "Succeeded");
        d->url = is_put_or_patch(s) ? s->resource_url : NULL;
        return 0;
    }
    case SKY_ARM_POLL_STATE: {
        const char *state;
        if (provisioning_state(body, st, sizeof(st), &state) < 0)
            return SKY_ENOMEM;
        if (state == NULL || sky__arm_status_terminal(state))
            finish_state(d, state ? state : "Succeeded", body, status, err);
        else
            poll_again(d, state, h, interval_ms, clock);
        return 0;
    }
    default:
        decide(d, SKY__ARM_DONE, "Succeeded");
        return 0;
    }
}

/* ---- the resume token ---- */

static char *b64url_encode(const char *in, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

/* The decoded bytes in *out_text (NUL-terminated, free them). 0, SKY_EINVAL when @p in
 * is not base64url, or SKY_ENOMEM. */
static int b64url_decode(const char *in, char **out_text, size_t *out_len)
{
    size_t len = strlen(in);
    if (len == 0 || len % 4 == 1 || len > 64 * 1024)
        return SKY_EINVAL;
    size_t padded = (len + 3) / 4 * 4;
    char *tmp = malloc(padded + 1);
    unsigned char *out = malloc(padded / 4 * 3 + 1);
    if (tmp == NULL || out == NULL) {
        free(tmp);
        free(out);
        return SKY_ENOMEM;
    }
    for (size_t i = 0; i < padded; i++) {
        char ch = i < len ? in[i] : '=';
        if (ch == '-')
            ch = '+';
        else if (ch == '_')
            ch = '/';
        else if (i < len && !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                              (ch >= '0' && ch <= '9')))
            ch = '!'; /* '+', '/', '=' are not base64url: make it fail */
        tmp[i] = ch;
    }
    tmp[padded] = '\0';
    int n = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)padded);
    free(tmp);
    if (n < 0) {
        free(out);
        return SKY_EINVAL;
    }
    n -= (int)(padded - len); /* EVP_DecodeBlock counts the padding as zero bytes */
    out[n] = '\0';
    *out_len = (size_t)n;
    *out_text = (char *)out;
    return 0;
}

char *sky__arm_token_encode(const sky__arm_lro_state *s)
{
    json_t *j = json_pack("{s:i,s:s,s:s,s:s,s:s?,s:s?}", "v", 1, "m", s->method, "s",
                          sky_arm_poll_style_name(s->style), "r", s->resource_url, "p", s->poll_url,
                          "f", s->final_url);
    size_t len = 0;
    char *text = j ? sky_json_dump(j, &len) : NULL;
    json_decref(j);
    char *token = text ? b64url_encode(text, len) : NULL;
    free(text);
    return token;
}

static int url_ok(const char *u)
{
    return u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0) &&
           strpbrk(u, " \r\n\t") == NULL;
}

static int method_ok(const char *m)
{
    static const char *const ok[] = {"PUT", "PATCH", "DELETE", "POST"};
    for (size_t i = 0; m && i < SKY_ARRAY_LEN(ok); i++)
        if (strcmp(m, ok[i]) == 0)
            return 1;
    return 0;
}

static int token_fields(const json_t *j, sky__arm_lro_state *s, sky_error *err)
{
    const char *m = sky_json_str(j, "m", NULL), *r = sky_json_str(j, "r", NULL);
    const char *p = sky_json_str(j, "p", NULL), *f = sky_json_str(j, "f", NULL);
    int style = style_from_name(sky_json_str(j, "s", NULL));
    if (sky_json_int(j, "v", 0) != 1)
        return sky_error_set(err, SKY_EINVAL, "resume token: unknown version");
    if (!method_ok(m))
        return sky_error_set(err, SKY_EINVAL, "resume token: no valid method");
    if (style <= SKY_ARM_POLL_NONE)
        return sky_error_set(err, SKY_EINVAL, "resume token: no valid polling style");
    if (!url_ok(r) || !url_ok(p) || (f && !url_ok(f)))
        return sky_error_set(err, SKY_EINVAL, "resume token: a URL is missing or not http(s)");
    snprintf(s->method, sizeof(s->method), "%s", m);
    s->style = (sky_arm_poll_style)style;
    if (set_str(&s->resource_url, r) < 0 || set_str(&s->poll_url, p) < 0 ||
        set_str(&s->final_url, f) < 0)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    return 0;
}

int sky__arm_token_decode(const char *token, sky__arm_lro_state *s, sky_error *err)
{
    size_t len = 0;
    json_t *j = NULL;
    memset(s, 0, sizeof(*s));
    char *text = NULL;
    int rc = token ? b64url_decode(token, &text, &len) : SKY_EINVAL;
    if (rc == 0) {
        rc = sky_json_parse(sky_span_make(text, len), &j, NULL);
        free(text);
    } else if (rc != SKY_ENOMEM) {
        return sky_error_set(err, SKY_EINVAL, "resume token: not base64url");
    }
    /* out of memory says nothing of the token: it must not be called bad */
    if (rc == SKY_ENOMEM)
        return sky_error_set(err, SKY_ENOMEM, "out of memory reading the resume token");
    if (rc < 0 || !json_is_object(j)) {
        json_decref(j);
        return sky_error_set(err, SKY_EINVAL, "resume token: not a JSON object");
    }
    rc = token_fields(j, s, err);
    json_decref(j);
    if (rc < 0)
        sky__arm_lro_state_free(s);
    return rc;
}
