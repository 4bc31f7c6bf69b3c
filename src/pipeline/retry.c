/* The retry policy: classify an attempt's outcome, choose the wait, keep a log of why. */
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "skyio/retry.h"
#include "skyio/rand.h"

/* What the lists say about one outcome, before limits are applied. */
typedef enum verdict {
    V_DONE,  /* success: nothing to retry */
    V_NEVER, /* a failure that sending again cannot fix */
    V_RETRY, /* a transient failure */
    V_AUTH   /* 401: worth one retry after a token refresh */
} verdict;

/* Everything one decision looks at, so the helpers take one argument. */
typedef struct retry_ctx {
    const sky_retry_options *opts;
    sky_retry_state *state;
    const sky_headers *headers;
    const sky_clock *clock;
    uint64_t deadline_ms;
    sky_rand64_fn rand64;
    void *rand_ud;
    char what[48]; /* the outcome for people: "429", "ECONNRESET", "400 x-should-retry=true" */
} retry_ctx;

void sky_retry_options_init(sky_retry_options *opts)
{
    opts->max_retries = 10;
    opts->base_ms = 800;
    opts->cap_ms = 60000;
    opts->max_server_wait_ms = 0;
    opts->honour_server_wait = 1;
    opts->openai_statuses = 0;
    opts->also_retry = NULL;
}

uint64_t sky_retry_splitmix64(void *ud)
{
    return sky_rand_splitmix64(ud);
}

void sky_retry_state_init(sky_retry_state *state)
{
    memset(state, 0, sizeof(*state));
    state->rng = sky_rand_u64();
}

/* The transport's own failure code, or 0 when the attempt got a response it could read. */
static int transport_code(const sky_error *err)
{
    if (err == NULL || err->code == 0 || err->code == SKY_EHTTP)
        return 0;
    return err->code;
}

/* The status to judge: SKY_EHTTP errors may carry it instead of the caller. */
static int effective_status(int status, const sky_error *err)
{
    if (status == 0 && err != NULL && err->code == SKY_EHTTP)
        return err->http_status;
    return status;
}

static verdict classify_error(const sky_error *err)
{
    switch (err->code) {
    case SKY_ECONNECT:
    case SKY_ECONNRESET:
    case SKY_ETIMEDOUT:
    case SKY_EPARTIAL:
    case SKY_EPROTO:
        return V_RETRY;
    case SKY_ECANCELED:
    case SKY_ETLS:
    case SKY_EINVAL:
        return V_NEVER;
    default:
        /* The layer that raised it knows best whether it was transient. */
        return err->retryable ? V_RETRY : V_NEVER;
    }
}

/* azure-core's list, or OpenAI's SDKs' wider one. 3xx counts as done: redirects are
 * libcurl's business, not ours. */
static verdict classify_status(int status, int openai)
{
    if (status >= 100 && status < 400)
        return V_DONE;
    if (openai && (status == 409 || (status >= 500 && status < 600)))
        return V_RETRY;
    switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
        return V_RETRY;
    case 401:
        return V_AUTH;
    default:
        return V_NEVER;
    }
}

int sky_retry_is_retryable(int status, const sky_error *err)
{
    if (transport_code(err) != 0)
        return classify_error(err) == V_RETRY;
    return classify_status(effective_status(status, err), 0) == V_RETRY;
}

/* OpenAI's x-should-retry: 1 for true, 0 for false, -1 when absent or neither. */
static int should_retry_header(const sky_headers *h)
{
    const char *v = h ? sky_headers_get(h, "x-should-retry") : NULL;
    if (v != NULL && strcasecmp(v, "true") == 0)
        return 1;
    if (v != NULL && strcasecmp(v, "false") == 0)
        return 0;
    return -1;
}

/* A status as text without printf, which every attempt's log entry would pay for. */
static void status_text(char *out, size_t cap, int status)
{
    if (status < 100 || status > 999) {
        snprintf(out, cap, "%d", status);
        return;
    }
    out[0] = (char)('0' + status / 100);
    out[1] = (char)('0' + status / 10 % 10);
    out[2] = (char)('0' + status % 10);
    out[3] = '\0';
}

/* The verdict for a response, with the server's x-should-retry taking precedence. */
static verdict classify_response(retry_ctx *c, int status)
{
    verdict v = classify_status(status, c->opts->openai_statuses);
    if (v == V_NEVER && c->opts->also_retry && c->opts->also_retry(status))
        v = V_RETRY;
    int hint = v == V_DONE ? -1 : should_retry_header(c->headers);
    if (hint < 0) {
        status_text(c->what, sizeof(c->what), status);
        return v;
    }
    snprintf(c->what, sizeof(c->what), "%d%s", status,
             hint < 0 ? ""
             : hint   ? " x-should-retry=true"
                      : " x-should-retry=false");
    if (hint == 0)
        return V_NEVER;
    /* The server's "true" still lets a 401 try its one token refresh first. */
    if (hint == 1 && (v != V_AUTH || c->state->auth_refreshed))
        return V_RETRY;
    return v;
}

static verdict classify(retry_ctx *c, int status, const sky_error *err)
{
    if (transport_code(err) != 0) {
        snprintf(c->what, sizeof(c->what), "%s", sky_err_name(err->code));
        return classify_error(err);
    }
    status = effective_status(status, err);
    if (status == 0) {
        snprintf(c->what, sizeof(c->what), "no-response");
        return V_NEVER;
    }
    return classify_response(c, status);
}

static void set_reason(sky_retry_decision *out, const char *fmt, ...) SKY_PRINTF(2, 3);

static void set_reason(sky_retry_decision *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
}

/* "<what><tail>" without printf, for the decision every successful attempt makes. */
static void reason_join(sky_retry_decision *out, const char *what, const char *tail)
{
    size_t a = strlen(what), b = strlen(tail);
    if (a + b >= sizeof(out->reason)) {
        set_reason(out, "%s%s", what, tail);
        return;
    }
    memcpy(out->reason, what, a);
    memcpy(out->reason + a, tail, b + 1);
}

static void decide_final(sky_retry_decision *out, sky_retry_action action, sky_retry_limit limit)
{
    out->action = action;
    out->limit = limit;
    out->delay_ms = 0;
}

/* Nonzero when an attempt started after @p delay_ms would begin at or past the deadline. */
static int passes_deadline(const retry_ctx *c, uint64_t delay_ms)
{
    if (c->deadline_ms == 0)
        return 0;
    uint64_t now = sky_clock_now_ms(c->clock);
    return now >= c->deadline_ms || delay_ms >= c->deadline_ms - now;
}

/* min(cap, base * 2^n), without overflowing however many retries came before. */
static uint64_t backoff_ceiling(const sky_retry_options *o, int n)
{
    if (o->base_ms == 0)
        return 0;
    if (n >= 63 || o->base_ms > (o->cap_ms >> n))
        return o->cap_ms;
    return o->base_ms << n;
}

/* Full jitter (AWS's name): uniform in [0, ceiling], so clients that failed together spread out. */
static uint64_t full_jitter(const retry_ctx *c, uint64_t ceiling)
{
    uint64_t r = c->rand64 ? c->rand64(c->rand_ud) : sky_retry_splitmix64(&c->state->rng);
    if (ceiling == UINT64_MAX)
        return r;
    return r % (ceiling + 1);
}

/* Whether @p v reads as a millisecond count ("1200", "12.5"), the form the -ms headers use. */
static int looks_like_ms(const char *v)
{
    size_t whole = strspn(v, "0123456789"), frac = 0;
    const char *p = v + whole;
    if (*p == '.') {
        frac = strspn(p + 1, "0123456789");
        p += 1 + frac;
    }
    return *p == '\0' && whole + frac > 0;
}

/*
 * Which header sky_parse_retry_after_ms took its answer from, for the log.
 * It tries the millisecond headers first and skips unreadable ones.
 */
static const char *server_wait_source(const sky_headers *h)
{
    static const char *const ms_names[] = {"retry-after-ms", "x-ms-retry-after-ms"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(ms_names); i++) {
        const char *v = sky_headers_get(h, ms_names[i]);
        if (v != NULL && looks_like_ms(v))
            return ms_names[i];
    }
    return "retry-after";
}

/* The server's requested wait, capped by the options; 0 on success, SKY_ENOTFOUND otherwise. */
static int server_wait(const retry_ctx *c, uint64_t *out_ms, uint64_t *out_asked)
{
    int64_t ms;
    if (!c->opts->honour_server_wait || c->headers == NULL)
        return SKY_ENOTFOUND;
    /* An unreadable header is no instruction: back off as if it were absent. */
    if (sky_parse_retry_after_ms(c->headers, c->clock, &ms) != 0 || ms < 0)
        return SKY_ENOTFOUND;
    *out_asked = (uint64_t)ms;
    *out_ms = *out_asked;
    if (c->opts->max_server_wait_ms != 0 && *out_ms > c->opts->max_server_wait_ms)
        *out_ms = c->opts->max_server_wait_ms;
    return 0;
}

/* Choose the wait and write "<what> <source>=<ms>ms" as the reason. */
static uint64_t choose_wait(const retry_ctx *c, sky_retry_decision *out)
{
    uint64_t wait, asked;
    if (server_wait(c, &wait, &asked) == 0) {
        const char *src = server_wait_source(c->headers);
        if (wait != asked)
            set_reason(out, "%s %s=%llums capped=%llums", c->what, src, (unsigned long long)asked,
                       (unsigned long long)wait);
        else
            set_reason(out, "%s %s=%llums", c->what, src, (unsigned long long)wait);
        return wait;
    }
    wait = full_jitter(c, backoff_ceiling(c->opts, c->state->retries));
    set_reason(out, "%s backoff=%llums", c->what, (unsigned long long)wait);
    return wait;
}

/* Prefix the reason already written with the limit that stopped the retry. */
static void give_up(sky_retry_decision *out, sky_retry_limit limit, const char *label)
{
    char tail[SKY_RETRY_REASON_MAX];
    memcpy(tail, out->reason, sizeof(tail));
    set_reason(out, "%s: %s", label, tail);
    decide_final(out, SKY_RETRY_GIVE_UP, limit);
}

static void decide_retry(retry_ctx *c, sky_retry_decision *out)
{
    int max = c->opts->max_retries < 0 ? 0 : c->opts->max_retries;
    if (c->state->retries >= max) {
        set_reason(out, "max-retries=%d: %s", max, c->what);
        decide_final(out, SKY_RETRY_GIVE_UP, SKY_RETRY_LIMIT_MAX_RETRIES);
        return;
    }
    uint64_t wait = choose_wait(c, out);
    if (passes_deadline(c, wait)) {
        give_up(out, SKY_RETRY_LIMIT_DEADLINE, "deadline");
        return;
    }
    out->action = SKY_RETRY_YES;
    out->limit = SKY_RETRY_LIMIT_NONE;
    out->delay_ms = wait;
}

/* One refresh per operation: a token that fails twice is not a stale token. */
static void decide_auth(retry_ctx *c, sky_retry_decision *out)
{
    if (c->state->auth_refreshed) {
        set_reason(out, "%s after refresh-auth", c->what);
        decide_final(out, SKY_RETRY_NO, SKY_RETRY_LIMIT_NONE);
        return;
    }
    set_reason(out, "%s refresh-auth", c->what);
    if (passes_deadline(c, 0)) {
        give_up(out, SKY_RETRY_LIMIT_DEADLINE, "deadline");
        return;
    }
    decide_final(out, SKY_RETRY_REFRESH_AUTH, SKY_RETRY_LIMIT_NONE);
}

/* Append the decision to the ring and count it against the operation's budgets. */
static void record(sky_retry_state *s, int status, const sky_error *err,
                   const sky_retry_decision *d)
{
    sky_retry_log_entry *e = &s->log[(size_t)s->attempts % SKY_RETRY_LOG_MAX];
    e->attempt = ++s->attempts;
    e->status = status;
    e->error_code = err ? err->code : 0;
    e->delay_ms = d->delay_ms;
    e->action = d->action;
    memcpy(e->reason, d->reason, sizeof(e->reason));
    s->retries += d->action == SKY_RETRY_YES;
    s->responses_429 += status == 429;
    s->auth_refreshed |= d->action == SKY_RETRY_REFRESH_AUTH;
}

void sky_retry_record_final(sky_retry_state *state, int status, const char *reason)
{
    sky_retry_decision d;
    memset(&d, 0, sizeof(d));
    snprintf(d.reason, sizeof(d.reason), "%d %s", status, reason ? reason : "final");
    record(state, status, NULL, &d);
}

static void decide(retry_ctx *c, int status, const sky_error *err, sky_retry_decision *out)
{
    switch (classify(c, status, err)) {
    case V_DONE:
        reason_join(out, c->what, " done");
        decide_final(out, SKY_RETRY_NO, SKY_RETRY_LIMIT_NONE);
        break;
    case V_NEVER:
        set_reason(out, "%s not retryable", c->what);
        decide_final(out, SKY_RETRY_NO, SKY_RETRY_LIMIT_NONE);
        break;
    case V_AUTH:
        decide_auth(c, out);
        break;
    case V_RETRY:
        decide_retry(c, out);
        break;
    }
}

int sky_retry_decide(const sky_retry_options *opts, sky_retry_state *state, int status,
                     const sky_error *transport_err, const sky_headers *resp_headers,
                     const sky_clock *clock, uint64_t deadline_ms, sky_rand64_fn rand64,
                     void *rand_ud, sky_retry_decision *out)
{
    if (opts == NULL || state == NULL || out == NULL)
        return SKY_EINVAL;
    retry_ctx c = {opts, state, resp_headers, clock, deadline_ms, rand64, rand_ud, {0}};
    memset(out, 0, sizeof(*out));
    decide(&c, status, transport_err, out);
    record(state, status, transport_err, out);
    return 0;
}

int sky_retry_decide_held(const sky_retry_options *opts, sky_retry_state *state, const char *what,
                          uint64_t hold_ms, const sky_clock *clock, uint64_t deadline_ms,
                          sky_retry_decision *out)
{
    if (opts == NULL || state == NULL || what == NULL || out == NULL)
        return SKY_EINVAL;
    retry_ctx c = {opts, state, NULL, clock, deadline_ms, NULL, NULL, {0}};
    int max = opts->max_retries < 0 ? 0 : opts->max_retries;
    memset(out, 0, sizeof(*out));
    snprintf(c.what, sizeof(c.what), "%s", what);
    if (state->retries >= max) {
        set_reason(out, "max-retries=%d: %s", max, c.what);
        decide_final(out, SKY_RETRY_GIVE_UP, SKY_RETRY_LIMIT_MAX_RETRIES);
        return 0;
    }
    /* the ceiling, not a draw: a retry held back waits its share of the schedule, or until
     * the hold may end, and no longer */
    uint64_t ceiling = backoff_ceiling(opts, state->retries);
    uint64_t wait = hold_ms < ceiling ? hold_ms : ceiling;
    set_reason(out, "%s wait=%llums", c.what, (unsigned long long)wait);
    if (passes_deadline(&c, wait)) {
        give_up(out, SKY_RETRY_LIMIT_DEADLINE, "deadline");
        return 0;
    }
    out->action = SKY_RETRY_YES;
    out->delay_ms = wait;
    state->retries++;
    state->held++;
    return 0;
}

size_t sky_retry_log_count(const sky_retry_state *state)
{
    size_t n = (size_t)state->attempts;
    return n < SKY_RETRY_LOG_MAX ? n : SKY_RETRY_LOG_MAX;
}

const sky_retry_log_entry *sky_retry_log_at(const sky_retry_state *state, size_t i)
{
    size_t count = sky_retry_log_count(state);
    if (i >= count)
        return NULL;
    size_t first = (size_t)state->attempts - count;
    return &state->log[(first + i) % SKY_RETRY_LOG_MAX];
}

/* snprintf at *pos; stops advancing once the buffer is full, leaving it NUL-terminated. */
static void append(char *out, size_t out_len, size_t *pos, const char *fmt, ...) SKY_PRINTF(4, 5);

static void append(char *out, size_t out_len, size_t *pos, const char *fmt, ...)
{
    if (*pos >= out_len - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *pos, out_len - *pos, fmt, ap);
    va_end(ap);
    if (n > 0)
        *pos += (size_t)n < out_len - *pos ? (size_t)n : out_len - 1 - *pos;
}

const char *sky_retry_log_format(const sky_retry_state *state, char *out, size_t out_len)
{
    if (out == NULL || out_len == 0)
        return out;
    size_t pos = 0;
    size_t count = sky_retry_log_count(state);
    out[0] = '\0';
    if ((size_t)state->attempts > count)
        append(out, out_len, &pos, "(%zu earlier) ", (size_t)state->attempts - count);
    for (size_t i = 0; i < count; i++) {
        const sky_retry_log_entry *e = sky_retry_log_at(state, i);
        append(out, out_len, &pos, "%s#%d %s", i ? "; " : "", e->attempt, e->reason);
    }
    return out;
}
