/*
 * The Azure CLI's token: `az account get-access-token --output json
 * --resource <resource>`, run with uv_spawn; its output comes through pipes
 * and a timer kills it when it runs too long, so the loop never waits on
 * it. The program is $SKYIO_AZ_PATH or the option az_path, else `az` from
 * PATH (tests point it at a small script).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "credential_internal.h"
#include "skyio/json.h"
#include "skyio/log.h"

typedef struct cli_fetch {
    sky__cred_fetch *f;
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    int open_handles;
    int exited, timed_out, killed;
    int64_t exit_status;
    int term_signal;
    int spawn_error;
    sky_buf out_buf, err_buf;
    char slab[16384];
} cli_fetch;

static void cli_finish(cli_fetch *x);

static void on_handle_closed(uv_handle_t *h)
{
    cli_fetch *x = h->data;
    if (--x->open_handles == 0)
        cli_finish(x);
}

static void close_handle(cli_fetch *x, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_handle_closed);
    (void)x;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cli_fetch *x = h->data;
    (void)suggested;
    *buf = uv_buf_init(x->slab, sizeof(x->slab));
}

/* Both pipes at their end and the process gone: the timer goes last. */
static void check_done(cli_fetch *x)
{
    if (x->exited && uv_is_closing((uv_handle_t *)&x->out) &&
        uv_is_closing((uv_handle_t *)&x->err)) {
        uv_timer_stop(&x->timer);
        close_handle(x, (uv_handle_t *)&x->timer);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    cli_fetch *x = s->data;
    sky_buf *dst = s == (uv_stream_t *)&x->out ? &x->out_buf : &x->err_buf;
    if (n > 0) {
        /* past the cap the rest is dropped: the result will not parse */
        if (sky_buf_append(dst, buf->base, (size_t)n) < 0)
            dst->len = dst->cap;
        memset(buf->base, 0, (size_t)n);
    } else if (n < 0) {
        close_handle(x, (uv_handle_t *)s);
        check_done(x);
    }
}

static void on_timeout(uv_timer_t *t);

static void on_az_exit(uv_process_t *p, int64_t status, int term_signal)
{
    cli_fetch *x = p->data;
    x->exited = 1;
    x->exit_status = status;
    x->term_signal = term_signal;
    close_handle(x, (uv_handle_t *)p);
    /* a child of az may hold the pipes open: give them a moment, not forever */
    if (!uv_is_closing((uv_handle_t *)&x->out) || !uv_is_closing((uv_handle_t *)&x->err))
        uv_timer_start(&x->timer, on_timeout, 2000, 0);
    check_done(x);
}

static void on_timeout(uv_timer_t *t)
{
    cli_fetch *x = t->data;
    if (!x->exited) {
        x->timed_out = 1;
        uv_process_kill(&x->proc, SIGKILL);
        return;
    }
    close_handle(x, (uv_handle_t *)&x->out);
    close_handle(x, (uv_handle_t *)&x->err);
    check_done(x);
}

/* "2024-05-01 13:45:12.000000", local time, as older CLIs print expiresOn. */
static int64_t parse_local_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (s == NULL || sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    return t == (time_t)-1 ? 0 : (int64_t)t;
}

int sky__cred_parse_cli_output(sky_span out, char **token, int64_t *expires_on, sky_error *e)
{
    json_t *j = NULL;
    if (sky_json_parse(out, &j, NULL) < 0 || !json_is_object(j)) {
        json_decref(j);
        return sky_error_set(e, SKY_EAUTH, "az printed no JSON object (%zu bytes)", out.len);
    }
    const char *tok = sky_json_str(j, "accessToken", NULL);
    json_t *eo = json_object_get(j, "expires_on");
    *expires_on = json_is_integer(eo)  ? (int64_t)json_integer_value(eo)
                  : json_is_string(eo) ? strtoll(json_string_value(eo), NULL, 10)
                                       : 0;
    if (*expires_on <= 0)
        *expires_on = parse_local_time(sky_json_str(j, "expiresOn", NULL));
    if (tok == NULL || *tok == '\0' || *expires_on <= 0) {
        json_decref(j);
        return sky_error_set(e, SKY_EAUTH, "az's output lacks %s",
                             tok ? "an expiry" : "accessToken");
    }
    *token = strdup(tok);
    json_decref(j);
    return *token ? 0 : sky_error_set(e, SKY_ENOMEM, "out of memory");
}

/* The first line of az's stderr, redacted: "ERROR: Please run 'az login' ...". */
static void cli_error(cli_fetch *x, sky_error *e)
{
    char line[160];
    const char *s = x->err_buf.data ? x->err_buf.data : "";
    while (*s == '\n' || *s == '\r' || *s == ' ')
        s++;
    snprintf(line, sizeof(line), "%.*s", (int)strcspn(s, "\r\n"), s);
    sky__cred_scrub(line, NULL);
    if (x->term_signal)
        sky_error_set(e, SKY_EAUTH, "az was killed by signal %d", x->term_signal);
    else
        sky_error_set(e, SKY_EAUTH, "az exited with status %lld%s%s", (long long)x->exit_status,
                      line[0] ? ": " : "", line);
}

static void cli_finish(cli_fetch *x)
{
    sky__cred_fetch *f = x->f;
    sky_credential *c = f->c;
    sky_error e;
    char *token = NULL;
    int64_t expires_on = 0;
    sky_error_clear(&e);
    if (f->aborted)
        sky_error_set(&e, SKY_ECANCELED, "credential freed");
    else if (x->spawn_error == UV_ENOENT)
        sky_error_set(&e, SKY_EAUTH, "Azure CLI not found (%s)", c->cfg.az_path);
    else if (x->spawn_error)
        sky_error_set(&e, SKY_EAUTH, "cannot run %s: %s", c->cfg.az_path,
                      uv_strerror(x->spawn_error));
    else if (x->timed_out)
        sky_error_set(&e, SKY_ETIMEDOUT, "az did not answer within %ld ms", c->cfg.az_timeout_ms);
    else if (x->exit_status != 0 || x->term_signal)
        cli_error(x, &e);
    else
        sky__cred_parse_cli_output(sky_buf_span(&x->out_buf), &token, &expires_on, &e);
    if (x->out_buf.data)
        memset(x->out_buf.data, 0, x->out_buf.len);
    sky_buf_free(&x->out_buf);
    sky_buf_free(&x->err_buf);
    free(x);
    f->impl = NULL;
    sky__cred_fetch_done(f, token, expires_on, 0, "azure_cli", e.code ? &e : NULL);
    if (token) {
        memset(token, 0, strlen(token));
        free(token);
    }
}

static int spawn_az(cli_fetch *x, const char *resource)
{
    sky_credential *c = x->f->c;
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    char *args[10];
    int n = 0;
    args[n++] = c->cfg.az_path;
    args[n++] = (char *)(uintptr_t) "account";
    args[n++] = (char *)(uintptr_t) "get-access-token";
    args[n++] = (char *)(uintptr_t) "--output";
    args[n++] = (char *)(uintptr_t) "json";
    args[n++] = (char *)(uintptr_t) "--resource";
    args[n++] = (char *)(uintptr_t)resource;
    if (c->cfg.cli_tenant) {
        args[n++] = (char *)(uintptr_t) "--tenant";
        args[n++] = c->cfg.cli_tenant;
    }
    args[n] = NULL;
    memset(&po, 0, sizeof(po));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[1].data.stream = (uv_stream_t *)&x->out;
    stdio[2].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = (uv_stream_t *)&x->err;
    po.file = c->cfg.az_path;
    po.args = args;
    po.stdio = stdio;
    po.stdio_count = 3;
    po.exit_cb = on_az_exit;
    return uv_spawn(c->loop, &x->proc, &po);
}

static void cli_start(sky__cred_fetch *f)
{
    sky_credential *c = f->c;
    char resource[2048];
    cli_fetch *x = calloc(1, sizeof(*x));
    sky_error e;
    sky_error_clear(&e);
    if (x == NULL || sky_credential_scope_to_resource(f->scope, resource, sizeof(resource)) < 0) {
        free(x);
        sky_error_set(&e, x ? SKY_EINVAL : SKY_ENOMEM, "cannot start az");
        sky__cred_fetch_done(f, NULL, 0, 0, NULL, &e);
        return;
    }
    x->f = f;
    f->impl = x;
    sky_buf_init(&x->out_buf, 1u << 20);
    sky_buf_init(&x->err_buf, 16384);
    uv_pipe_init(c->loop, &x->out, 0);
    uv_pipe_init(c->loop, &x->err, 0);
    uv_timer_init(c->loop, &x->timer);
    x->out.data = x->err.data = x->timer.data = x->proc.data = x;
    x->open_handles = 3;
    int rc = spawn_az(x, resource);
    if (rc < 0) {
        /* the process handle needs closing too after a failed uv_spawn */
        x->spawn_error = rc;
        x->open_handles++;
        x->proc.data = x;
        close_handle(x, (uv_handle_t *)&x->proc);
        close_handle(x, (uv_handle_t *)&x->out);
        close_handle(x, (uv_handle_t *)&x->err);
        close_handle(x, (uv_handle_t *)&x->timer);
        return;
    }
    x->open_handles++;
    uv_read_start((uv_stream_t *)&x->out, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&x->err, on_alloc, on_read);
    uv_timer_start(&x->timer, on_timeout, (uint64_t)c->cfg.az_timeout_ms, 0);
}

static void cli_abort(sky__cred_fetch *f)
{
    cli_fetch *x = f->impl;
    if (x && !x->exited && !x->spawn_error)
        uv_process_kill(&x->proc, SIGKILL);
}

const sky__cred_ops sky__cred_cli_ops = {"azure_cli", cli_start, cli_abort, NULL, NULL};

int sky_credential_azure_cli_new(uv_loop_t *loop, sky_http_client *client,
                                 const sky_credential_options *o, sky_credential **out,
                                 sky_error *err)
{
    sky_credential *c = NULL;
    int rc = sky__cred_new(loop, client, o, &sky__cred_cli_ops, &c, err);
    return rc < 0 ? rc : sky__cred_finish_new(c, NULL, out, err);
}
