/* Leveled logging, and the redaction every line passes through before it is written. */
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "skyio/clock.h"
#include "skyio/error.h"
#include "skyio/json.h"
#include "skyio/log.h"

/* A message longer than this is cut: a log line is not the place for a whole body. */
#define LOG_MSG_MAX (64u * 1024u)
/* Redaction at most roughly triples tiny secrets ("sig=a" -> "sig=[REDACTED]"). */
#define LOG_REDACTED_MAX (16u * LOG_MSG_MAX)
/* JSON escapes a control byte in six ("\u0001"). */
#define LOG_LINE_MAX (6u * LOG_REDACTED_MAX + 1024u)

static const char redacted_text[] = "[REDACTED]";

/* ------------------------------------------------------------------ */
/* Redaction                                                           */
/* ------------------------------------------------------------------ */

/* Names compared here are ASCII; tolower() would depend on the locale. */
static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int span_ieq(sky_span a, const char *s)
{
    size_t n = strlen(s);
    if (a.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)a.ptr[i]) != ascii_lower((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

static int span_istarts(sky_span a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && span_ieq(sky_span_make(a.ptr, n), prefix);
}

static int span_iends(sky_span a, const char *suffix)
{
    size_t n = strlen(suffix);
    return a.len >= n && span_ieq(sky_span_make(a.ptr + a.len - n, n), suffix);
}

static int span_in_list(sky_span name, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (span_ieq(name, list[i]))
            return 1;
    }
    return 0;
}

int sky_redact_is_secret_header(sky_span name)
{
    static const char *const names[] = {
        "authorization", "proxy-authorization", "api-key",
        "x-api-key",     "x-identity-header",   "ocp-apim-subscription-key",
    };
    if (span_in_list(name, names, SKY_ARRAY_LEN(names)))
        return 1;
    /* x-ms-<anything>-key: the customer-provided encryption key and its kin. */
    return name.len > 9 && span_istarts(name, "x-ms-") && span_iends(name, "-key");
}

/* Names whose value is a secret in `name=value` (query, form, connection string). */
static int is_secret_param(sky_span name)
{
    static const char *const names[] = {
        "sig",        "client_secret",         "client_assertion", "access_token", "refresh_token",
        "AccountKey", "SharedAccessSignature", "password",         "api_key",      "api-key",
    };
    return span_in_list(name, names, SKY_ARRAY_LEN(names));
}

/* Names whose value is a secret as a JSON (or Python-dict) key. */
static int is_secret_json_key(sky_span name)
{
    static const char *const names[] = {"accessToken", "refreshToken", "clientSecret"};
    return is_secret_param(name) || sky_redact_is_secret_header(name) ||
           span_in_list(name, names, SKY_ARRAY_LEN(names));
}

static int is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* RFC 6750's b64token, the characters a bearer token is made of. */
static int is_token68_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int is_space(unsigned char c)
{
    return is_blank(c) || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Kinds of value that run until a stop byte. */
typedef enum run_kind {
    RUN_LINE,    /* header value: to CR or LF */
    RUN_PARAM,   /* name=value: to & ; quote or space */
    RUN_SAS,     /* SharedAccessSignature=value: its own '&'s belong to it */
    RUN_TOKEN68, /* bearer token */
    RUN_SCALAR,  /* bare JSON value: to , } ] or space */
    RUN_KINDS
} run_kind;

static int run_continues(run_kind k, unsigned char c)
{
    switch (k) {
    case RUN_LINE:
        return c != '\r' && c != '\n';
    case RUN_PARAM:
    case RUN_SAS:
        return c != ';' && c != '"' && c != '\'' && !is_space(c) && (k == RUN_SAS || c != '&');
    case RUN_TOKEN68:
        return is_token68_char(c);
    case RUN_SCALAR:
        return c != ',' && c != '}' && c != ']' && !is_space(c);
    default:
        return 0;
    }
}

/*
 * The input being scanned. Secrets are found inside secrets too (a bearer
 * token that is itself "api-key: ..."), so values are rescanned; the last run
 * of each kind is remembered, which keeps hostile input linear.
 */
typedef struct scan {
    const char *p;
    size_t n;
    size_t run_from[RUN_KINDS];
    size_t run_end[RUN_KINDS];
} scan;

/* A secret's value: the byte range [vs, ve). */
typedef struct match {
    size_t vs, ve;
} match;

static size_t skip_while(const scan *s, size_t i, int (*pred)(unsigned char))
{
    while (i < s->n && pred((unsigned char)s->p[i]))
        i++;
    return i;
}

/* End of the run of kind @p k starting at @p i. Within a known run the end is the same. */
static size_t run_end(scan *s, run_kind k, size_t i)
{
    if (s->run_from[k] <= i && i <= s->run_end[k])
        return s->run_end[k];
    size_t e = i;
    while (e < s->n && run_continues(k, (unsigned char)s->p[e]))
        e++;
    s->run_from[k] = i;
    s->run_end[k] = e;
    return e;
}

static int set_match(match *m, size_t vs, size_t ve)
{
    m->vs = vs;
    m->ve = ve;
    return ve > vs;
}

/* "Bearer <token>" anywhere: the name token is [ns, ne). */
static int match_bearer(scan *s, size_t ns, size_t ne, match *m)
{
    if (!span_ieq(sky_span_make(s->p + ns, ne - ns), "bearer"))
        return 0;
    size_t vs = skip_while(s, ne, is_blank);
    if (vs == ne)
        return 0;
    return set_match(m, vs, run_end(s, RUN_TOKEN68, vs));
}

/* "Name: value" for a secret header; the value runs to the end of the line. */
static int match_header(scan *s, size_t ns, size_t ne, match *m)
{
    size_t i = skip_while(s, ne, is_blank);
    if (i >= s->n || s->p[i] != ':')
        return 0;
    if (!sky_redact_is_secret_header(sky_span_make(s->p + ns, ne - ns)))
        return 0;
    size_t vs = skip_while(s, i + 1, is_blank);
    return set_match(m, vs, run_end(s, RUN_LINE, vs));
}

/*
 * A quote as it appears in the text: `"` or `'` as is, or `\"` for JSON that
 * was itself embedded in a JSON string (an error body quoted in a message).
 */
typedef struct quote {
    char ch;
    int escaped;
} quote;

static size_t quote_len(quote q)
{
    return q.escaped ? 2 : 1;
}

static int quote_at(const scan *s, size_t i, quote q)
{
    if (q.escaped)
        return i + 1 < s->n && s->p[i] == '\\' && s->p[i + 1] == q.ch;
    return i < s->n && s->p[i] == q.ch;
}

/*
 * End of a quoted string's content starting at @p i (the input's end when the
 * string is cut short). A quote closes the string when the backslashes before
 * it do not escape it: an even run for plain quotes; for `\"` quotes one
 * backslash belongs to the quote and the rest must escape in pairs of pairs.
 */
static size_t string_end(const scan *s, size_t i, quote q)
{
    while (i < s->n) {
        size_t run = 0;
        while (i < s->n && s->p[i] == '\\') {
            run++;
            i++;
        }
        if (i >= s->n)
            break;
        if (s->p[i] == q.ch && (q.escaped ? run % 4 == 1 : run % 2 == 0))
            return q.escaped ? i - 1 : i;
        i++;
    }
    return s->n;
}

/* "name=value" for a secret name (query strings, form bodies, connection strings). */
static int match_param(scan *s, size_t ns, size_t ne, match *m)
{
    sky_span name = sky_span_make(s->p + ns, ne - ns);
    if (ne >= s->n || s->p[ne] != '=' || !is_secret_param(name))
        return 0;
    size_t vs = ne + 1;
    if (vs < s->n && (s->p[vs] == '"' || s->p[vs] == '\'')) {
        /* A quoted value (password="a b") is the quote's content. */
        quote q = {s->p[vs], 0};
        return set_match(m, vs + 1, string_end(s, vs + 1, q));
    }
    run_kind k = span_ieq(name, "SharedAccessSignature") ? RUN_SAS : RUN_PARAM;
    return set_match(m, vs, run_end(s, k, vs));
}

/* The value after `"key":` starting at @p i: a string's content or a bare scalar. */
static int match_json_value(scan *s, size_t i, quote q, match *m)
{
    if (quote_at(s, i, q)) {
        size_t vs = i + quote_len(q);
        return set_match(m, vs, string_end(s, vs, q));
    }
    size_t ve = run_end(s, RUN_SCALAR, i);
    /* null says there is no secret; leave it readable. */
    if (span_ieq(sky_span_make(s->p + i, ve - i), "null"))
        return 0;
    return set_match(m, i, ve);
}

/* `"secret_key": "value"` starting at the opening quote of the key at @p i. */
static int match_json_key(scan *s, size_t i, quote q, match *m)
{
    size_t ns = i + quote_len(q);
    size_t ne = skip_while(s, ns, is_name_char);
    if (ne == ns || !quote_at(s, ne, q))
        return 0;
    size_t j = skip_while(s, ne + quote_len(q), is_space);
    if (j >= s->n || s->p[j] != ':')
        return 0;
    if (!is_secret_json_key(sky_span_make(s->p + ns, ne - ns)))
        return 0;
    return match_json_value(s, skip_while(s, j + 1, is_space), q, m);
}

static int quote_start(const scan *s, size_t i, quote *q)
{
    char c = s->p[i];
    if (c == '"' || c == '\'') {
        q->ch = c;
        q->escaped = 0;
        return 1;
    }
    if (c == '\\' && i + 1 < s->n && s->p[i + 1] == '"') {
        q->ch = '"';
        q->escaped = 1;
        return 1;
    }
    return 0;
}

/* A name starting at a word boundary at @p i: is it a secret's name? */
static int match_name(scan *s, size_t i, size_t *out_next, match *m)
{
    size_t ne = skip_while(s, i, is_name_char);
    *out_next = ne;
    return match_bearer(s, i, ne, m) || match_header(s, i, ne, m) || match_param(s, i, ne, m);
}

/*
 * Look for a secret starting at @p i. Returns 1 with the value's range in @p m.
 * Either way *out_next is where the next attempt starts.
 */
static int match_at(scan *s, size_t i, size_t *out_next, match *m)
{
    quote q;
    *out_next = i + 1;
    if (quote_start(s, i, &q))
        return match_json_key(s, i, q, m);
    /* Names only start at a word boundary, so "xsig=" or "mypassword=" stay. */
    if (is_name_char((unsigned char)s->p[i]) &&
        (i == 0 || !is_name_char((unsigned char)s->p[i - 1])))
        return match_name(s, i, out_next, m);
    return 0;
}

/* Output so far: bytes before `flushed` are written; [vs, ve) awaits its "[REDACTED]". */
typedef struct writer {
    const char *p;
    sky_buf *out;
    size_t flushed;
    int pending;
    size_t vs, ve;
} writer;

static int write_pending(writer *w)
{
    if (!w->pending)
        return 0;
    w->pending = 0;
    int rc = sky_buf_append(w->out, w->p + w->flushed, w->vs - w->flushed);
    w->flushed = w->ve;
    return rc < 0 ? rc : sky_buf_append(w->out, redacted_text, sizeof(redacted_text) - 1);
}

/* Secrets that overlap or touch become one "[REDACTED]". */
static int add_secret(writer *w, match m)
{
    if (w->pending && m.vs <= w->ve) {
        if (m.vs < w->vs)
            w->vs = m.vs < w->flushed ? w->flushed : m.vs;
        if (m.ve > w->ve)
            w->ve = m.ve;
        return 0;
    }
    int rc = write_pending(w);
    w->pending = 1;
    w->vs = m.vs < w->flushed ? w->flushed : m.vs;
    w->ve = m.ve;
    return rc;
}

int sky_redact(sky_span in, sky_buf *out)
{
    scan s = {in.ptr ? in.ptr : "", in.ptr ? in.len : 0, {0}, {0}};
    for (size_t k = 0; k < RUN_KINDS; k++)
        s.run_from[k] = SIZE_MAX;
    writer w = {s.p, out, 0, 0, 0, 0};
    int rc = 0;
    for (size_t i = 0; i < s.n && rc == 0;) {
        match m;
        size_t next;
        if (match_at(&s, i, &next, &m))
            rc = add_secret(&w, m);
        i = next;
    }
    if (rc == 0)
        rc = write_pending(&w);
    return rc < 0 ? rc : sky_buf_append(out, s.p + w.flushed, s.n - w.flushed);
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

/* -1 until set or read from $SKYIO_LOG. Atomic so a worker thread may ask too. */
static atomic_int log_level = -1;
static atomic_int log_json = 0;
/* The sink is meant to be set once at start-up, before other threads log. */
static sky_log_sink_cb log_sink = NULL;
static void *log_sink_data = NULL;

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", "off"};
static const char *const level_labels[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"};

int sky_log_parse_level(const char *name, sky_log_level *out_level)
{
    if (name == NULL)
        return SKY_EINVAL;
    for (size_t i = 0; i < SKY_ARRAY_LEN(level_names); i++) {
        if (span_ieq(sky_span_cstr(name), level_names[i])) {
            if (out_level)
                *out_level = (sky_log_level)i;
            return 0;
        }
    }
    return SKY_EINVAL;
}

void sky_log_set_level(sky_log_level level)
{
    if ((int)level < SKY_LOG_TRACE || level > SKY_LOG_OFF)
        level = SKY_LOG_WARN;
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

sky_log_level sky_log_get_level(void)
{
    int level = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (level >= 0)
        return (sky_log_level)level;
    sky_log_level parsed = SKY_LOG_WARN;
    if (sky_log_parse_level(getenv("SKYIO_LOG"), &parsed) < 0)
        parsed = SKY_LOG_WARN;
    /* A concurrent sky_log_set_level wins over the environment. */
    int expected = -1;
    atomic_compare_exchange_strong(&log_level, &expected, (int)parsed);
    return (sky_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

void sky_log_set_json(int on)
{
    atomic_store_explicit(&log_json, on != 0, memory_order_relaxed);
}

void sky_log_set_sink(sky_log_sink_cb cb, void *user_data)
{
    log_sink = cb;
    log_sink_data = cb ? user_data : NULL;
}

int sky_log_enabled(sky_log_level level)
{
    sky_log_level min = sky_log_get_level();
    return (int)level >= (int)min && (int)level < (int)SKY_LOG_OFF;
}

/* ------------------------------------------------------------------ */
/* Writing a line                                                      */
/* ------------------------------------------------------------------ */

/* "2026-11-21T23:17:06.123Z" into @p out; room for any int year keeps the compiler sure. */
static void format_timestamp(char *out, size_t len)
{
    int64_t ms = sky_clock_wall_ms(NULL);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(out, len, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* A message that did not fit the stack buffer: format it again on the heap, cut. */
SKY_PRINTF(3, 0)
static int format_long(sky_buf *msg, size_t n, const char *fmt, va_list ap)
{
    size_t len = n > LOG_MSG_MAX ? LOG_MSG_MAX : n;
    char *p = malloc(len + 1);
    if (p == NULL)
        return SKY_ENOMEM;
    vsnprintf(p, len + 1, fmt, ap);
    int rc = sky_buf_append(msg, p, len);
    free(p);
    if (rc == 0 && n > len)
        rc = sky_buf_append_str(msg, " [truncated]");
    return rc;
}

/* The caller's message into @p msg, cut at LOG_MSG_MAX bytes. */
SKY_PRINTF(2, 0)
static int format_message(sky_buf *msg, const char *fmt, va_list ap)
{
    char small[512];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    int rc;
    if (n < 0)
        rc = SKY_EINVAL;
    else if ((size_t)n < sizeof(small))
        rc = sky_buf_append(msg, small, (size_t)n);
    else
        rc = format_long(msg, (size_t)n, fmt, again);
    va_end(again);
    return rc;
}

static int format_text(sky_buf *line, const char *ts, sky_log_level level, const char *component,
                       sky_span msg)
{
    int rc = sky_buf_printf(line, "%s %-5s %s: ", ts, level_labels[level], component);
    return rc < 0 ? rc : sky_buf_append(line, msg.ptr, msg.len);
}

/* jansson takes UTF-8 only; replace other bytes so the line is still written. */
static json_t *json_string_lossy(sky_span s)
{
    json_t *j = json_stringn(s.ptr, s.len);
    if (j != NULL || s.len == 0)
        return j;
    char *copy = malloc(s.len);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < s.len; i++)
        copy[i] = ((unsigned char)s.ptr[i] < 0x80) ? s.ptr[i] : '?';
    j = json_stringn(copy, s.len);
    free(copy);
    return j;
}

/* json_object_set_new takes the value's reference even when it fails (or is NULL). */
static json_t *log_object(const char *ts, sky_log_level level, const char *component, sky_span msg)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    if (json_object_set_new(obj, "ts", json_string(ts)) < 0 ||
        json_object_set_new(obj, "level", json_string(level_names[level])) < 0 ||
        json_object_set_new(obj, "component", json_string_lossy(sky_span_cstr(component))) < 0 ||
        json_object_set_new(obj, "msg", json_string_lossy(msg)) < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static int format_json(sky_buf *line, const char *ts, sky_log_level level, const char *component,
                       sky_span msg)
{
    json_t *obj = log_object(ts, level, component, msg);
    if (obj == NULL)
        return SKY_ENOMEM;
    /* sky_json_dump, not json_dumps: jansson's dump can drop a key it failed to print */
    char *text = sky_json_dump(obj, NULL);
    json_decref(obj);
    if (text == NULL)
        return SKY_ENOMEM;
    int rc = sky_buf_append_str(line, text);
    free(text);
    return rc;
}

static void write_stderr(const char *line, size_t len)
{
    /* One locked write per line, so lines from two threads never interleave. */
    flockfile(stderr);
    fwrite(line, 1, len, stderr);
    fputc('\n', stderr);
    funlockfile(stderr);
}

static void emit(sky_log_level level, const char *line, size_t len)
{
    sky_log_sink_cb sink = log_sink;
    if (sink)
        sink(log_sink_data, level, line, len);
    else
        write_stderr(line, len);
}

/* Redact @p raw, then lay out the line in the configured format. */
static int build_line(sky_buf *line, sky_log_level level, const char *component, sky_span raw)
{
    sky_buf clean;
    sky_buf_init(&clean, LOG_REDACTED_MAX);
    int rc = sky_redact(raw, &clean);
    if (rc == 0) {
        char ts[96];
        format_timestamp(ts, sizeof(ts));
        if (atomic_load_explicit(&log_json, memory_order_relaxed))
            rc = format_json(line, ts, level, component, sky_buf_span(&clean));
        else
            rc = format_text(line, ts, level, component, sky_buf_span(&clean));
    }
    sky_buf_free(&clean);
    return rc;
}

void sky_log(sky_log_level level, const char *component, const char *fmt, ...)
{
    if (!sky_log_enabled(level) || fmt == NULL)
        return;
    if (component == NULL)
        component = "skyio";
    sky_buf raw, line;
    sky_buf_init(&raw, LOG_MSG_MAX + 64);
    sky_buf_init(&line, LOG_LINE_MAX);
    va_list ap;
    va_start(ap, fmt);
    int rc = format_message(&raw, fmt, ap);
    va_end(ap);
    if (rc == 0)
        rc = build_line(&line, level, component, sky_buf_span(&raw));
    if (rc == 0) {
        emit(level, line.data ? line.data : "", line.len);
    } else {
        /* Never fall back to the unredacted text: say that a line was lost instead. */
        static const char dropped[] = "log line dropped: out of memory or too long";
        emit(level, dropped, sizeof(dropped) - 1);
    }
    sky_buf_free(&raw);
    sky_buf_free(&line);
}
