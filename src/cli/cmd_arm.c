/*
 * `skyio arm`: requests on any ARM resource id, paged lists as JSON lines,
 * long-running operations (wait here, or print a resume token and wait
 * later with `skyio arm wait`), and many PUTs at once from a JSONL file.
 * The flag parser and the runners here are shared with `skyio group` and
 * `skyio vm`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "skyio/skyio.h"
#include "skyio/arm.h"
#include "skyio/credential.h"
#include "cli.h"
#include "cmd_arm.h"

/* ---- flags ---- */

enum { F_STR, F_FLAG, F_SECONDS, F_COUNT, F_TAG };

typedef struct arm_flag {
    const char *name;
    const char *alias;
    int kind;
    size_t offset;
    int mask;
    const char *arg;
    const char *help;
} arm_flag;

#define FO(field) offsetof(sky_cli_arm_flags, field)

static const arm_flag flags[] = {
    {"--subscription", "-s", F_STR, FO(subscription), ARMF_GROUP | ARMF_VM, "ID",
     "subscription id (default $AZURE_SUBSCRIPTION_ID)"},
    {"--resource-group", "-g", F_STR, FO(group), ARMF_VM, "NAME", "the VM's resource group"},
    {"--location", "-l", F_STR, FO(location), ARMF_GROUP | ARMF_VM, "REGION",
     "Azure region, e.g. westeurope (required by create)"},
    {"--tag", NULL, F_TAG, FO(tags), ARMF_GROUP | ARMF_VM, "K=V", "a tag; repeat for several"},
    {"--size", NULL, F_STR, FO(size), ARMF_VM, "SIZE", "VM size (default Standard_B1s)"},
    {"--image", NULL, F_STR, FO(image), ARMF_VM, "P:O:S:V",
     "publisher:offer:sku:version (default\n"
     "                             Canonical:ubuntu-24_04-lts:server:latest)"},
    {"--admin-user", NULL, F_STR, FO(admin_user), ARMF_VM, "NAME",
     "admin user (default azureuser)"},
    {"--ssh-key-file", NULL, F_STR, FO(ssh_key_file), ARMF_VM, "FILE",
     "public SSH key for the admin user (required by create)"},
    {"--nic", NULL, F_STR, FO(nic), ARMF_VM, "ID",
     "resource id of an existing network interface (required by create)"},
    {"--api-version", NULL, F_STR, FO(api_version), ARMF_ALL, "V",
     "api-version (required for arm; group, vm: defaults)"},
    {"--body", NULL, F_STR, FO(body_file), ARMF_ARM, "FILE", "JSON request body"},
    {"--input", NULL, F_STR, FO(input), ARMF_ARM, "FILE.jsonl",
     "arm put: one {\"id\", \"body\"} per line"},
    {"--concurrency", NULL, F_COUNT, FO(concurrency), ARMF_ARM, "N",
     "arm put --input: operations at once (default 8)"},
    {"--wait", NULL, F_FLAG, FO(wait), ARMF_ARM, NULL,
     "wait for the operation to end (default: print its token)"},
    {"--no-wait", NULL, F_FLAG, FO(no_wait), ARMF_GROUP | ARMF_VM, NULL,
     "print the resume token once started instead of waiting"},
    {"--timeout", NULL, F_SECONDS, FO(timeout_s), ARMF_ALL, "S",
     "give up waiting after S seconds (default: no limit)"},
    {"--poll-interval", NULL, F_SECONDS, FO(poll_interval_s), ARMF_ALL, "S",
     "between polls without Retry-After (default 30)"},
    {"--endpoint", NULL, F_STR, FO(endpoint), ARMF_ALL, "URL",
     "ARM endpoint (default $SKYIO_ARM_ENDPOINT, else\n"
     "                             https://management.azure.com)"},
    {"--json", NULL, F_FLAG, FO(json), ARMF_ARM, NULL, "arm put --input: summary as JSON"},
};

void sky_cli_arm_print_flags(FILE *out, int cmd_mask)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(flags); i++) {
        char left[64];
        if (!(flags[i].mask & cmd_mask))
            continue;
        snprintf(left, sizeof(left), "%s%s%s%s%s", flags[i].alias ? flags[i].alias : "",
                 flags[i].alias ? ", " : "", flags[i].name, flags[i].arg ? " " : "",
                 flags[i].arg ? flags[i].arg : "");
        fprintf(out, "  %-26s %s\n", left, flags[i].help);
    }
    fputs("\nAuth: $SKYIO_ARM_TOKEN when set (a bearer token, e.g. for tests), otherwise the\n"
          "default credential chain (environment, workload identity, managed identity, Azure\n"
          "CLI) for scope <endpoint>/.default (" SKY_ARM_SCOPE " on public Azure).\n"
          "An endpoint that has never answered and cannot be reached (connection refused,\n"
          "unknown host, TLS failure) is not retried: the command stops at once, exit 3.\n",
          out);
}

static const arm_flag *find_flag(const char *a, int mask)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(flags); i++)
        if ((flags[i].mask & mask) &&
            (strcmp(a, flags[i].name) == 0 || (flags[i].alias && strcmp(a, flags[i].alias) == 0)))
            return &flags[i];
    return NULL;
}

static int set_flag(const char *cmd, const arm_flag *fl, const char *v, sky_cli_arm_flags *f)
{
    char *base = (char *)f;
    switch (fl->kind) {
    case F_FLAG:
        *(int *)(base + fl->offset) = 1;
        return 0;
    case F_STR:
        *(const char **)(base + fl->offset) = v;
        return 0;
    case F_TAG:
        if (f->n_tags == SKY_CLI_ARM_MAX_TAGS || strchr(v, '=') == NULL) {
            fprintf(stderr, "skyio %s: --tag: '%s' is not KEY=VALUE (at most %d tags)\n", cmd, v,
                    SKY_CLI_ARM_MAX_TAGS);
            return -1;
        }
        f->tags[f->n_tags++] = v;
        return 0;
    case F_COUNT:
        return sky_cli_number_opt(cmd, fl->name, v, 1, (long long *)(base + fl->offset));
    default:
        if (sky_cli_parse_double(v, (double *)(base + fl->offset)) < 0 ||
            *(double *)(base + fl->offset) < 0) {
            fprintf(stderr, "skyio %s: %s: '%s' is not a number of seconds >= 0\n", cmd, fl->name,
                    v);
            return -1;
        }
        return 0;
    }
}

int sky_cli_arm_parse(const char *cmd, int cmd_mask, int argc, char **argv, sky_cli_arm_flags *f)
{
    memset(f, 0, sizeof(*f));
    f->concurrency = 8;
    f->poll_interval_s = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            f->help = 1;
            return 0;
        }
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (f->n_pos == SKY_CLI_ARM_MAX_POS) {
                fprintf(stderr, "skyio %s: too many arguments ('%s')\n", cmd, a);
                return -1;
            }
            f->pos[f->n_pos++] = a;
            continue;
        }
        const arm_flag *fl = find_flag(a, cmd_mask);
        if (fl == NULL) {
            fprintf(stderr, "skyio %s: unknown option '%s' (see skyio %s --help)\n", cmd, a, cmd);
            return -1;
        }
        if (fl->kind != F_FLAG && i + 1 >= argc) {
            fprintf(stderr, "skyio %s: %s needs a value\n", cmd, a);
            return -1;
        }
        if (set_flag(cmd, fl, fl->kind == F_FLAG ? NULL : argv[++i], f) < 0)
            return -1;
    }
    return 0;
}

const char *sky_cli_arm_subscription(const char *cmd, const sky_cli_arm_flags *f)
{
    const char *s = f->subscription ? f->subscription : getenv("AZURE_SUBSCRIPTION_ID");
    if (s == NULL || *s == '\0' || strchr(s, '/') || strchr(s, '?')) {
        fprintf(stderr,
                "skyio %s: no subscription: give --subscription ID or set AZURE_SUBSCRIPTION_ID\n",
                cmd);
        return NULL;
    }
    return s;
}

/* ---- the client ---- */

static int make_credential(sky_cli_arm_ctx *c, sky_error *err)
{
    const char *token = getenv("SKYIO_ARM_TOKEN");
    if (token && *token)
        return sky_credential_static_new(sky_loop_uv(c->loop), token, 0, &c->cred, err);
    return sky_credential_default_new(sky_loop_uv(c->loop), c->http, NULL, &c->cred, err);
}

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    sky_cli_arm_ctx *c = ud;
    (void)loop;
    (void)signum;
    if (c->signaled++ > 0)
        exit(SKY_EXIT_FAILED);
    if (c->current)
        sky_arm_lro_cancel(c->current);
    else
        sky_loop_stop(c->loop);
}

int sky_cli_arm_open(sky_cli_arm_ctx *c, const char *cmd, const sky_cli_arm_flags *f)
{
    sky_arm_options o;
    sky_error err;
    memset(c, 0, sizeof(*c));
    sky_error_clear(&err);
    c->cmd = cmd;
    sky_arm_options_init(&o);
    o.endpoint = f->endpoint;
    if (f->poll_interval_s >= 0)
        o.poll_interval_ms = (uint64_t)(f->poll_interval_s * 1000.0 + 0.5);
    c->loop = sky_loop_new();
    int rc = c->loop ? sky_http_client_new(sky_loop_uv(c->loop), NULL, &c->http) : SKY_ENOMEM;
    if (rc == 0)
        rc = make_credential(c, &err);
    if (rc == 0) {
        o.pipeline.credential = c->cred; /* scope: the endpoint's own */
        rc = sky_arm_client_new(sky_loop_uv(c->loop), c->http, &o, &c->arm, &err);
    }
    if (rc < 0) {
        char line[512];
        if (err.code == 0)
            sky_error_set(&err, rc, "cannot set up the client");
        fprintf(stderr, "skyio %s: %s\n", cmd, sky_error_format(&err, line, sizeof(line)));
        sky_cli_arm_close(c);
        return SKY_EXIT_START;
    }
    (void)sky_loop_on_signal(c->loop, on_signal, c);
    return 0;
}

void sky_cli_arm_close(sky_cli_arm_ctx *c)
{
    sky_arm_client_free(c->arm);
    sky_credential_free(c->cred);
    if (c->http)
        sky_http_client_free(c->http);
    if (c->loop) {
        (void)sky_loop_on_signal(c->loop, NULL, NULL);
        sky_loop_run(c->loop);
        sky_loop_free(c->loop);
    }
    memset(c, 0, sizeof(*c));
}

int sky_cli_arm_exit_for(const sky_error *err)
{
    switch (err->code) {
    case SKY_EAUTH:
    case SKY_ECONNECT:
    case SKY_ERESOLVE:
    case SKY_ETLS:
        return SKY_EXIT_START;
    default:
        return err->http_status == 401 ? SKY_EXIT_START : SKY_EXIT_FAILED;
    }
}

static void print_error(const sky_cli_arm_ctx *c, const char *what, const sky_error *err)
{
    char line[512];
    fprintf(stderr, "skyio %s: %s: %s\n", c->cmd, what, sky_error_format(err, line, sizeof(line)));
}

/* ---- an endpoint that never answers ---- */

static int unreachable_code(int code)
{
    return code == SKY_ECONNECT || code == SKY_ERESOLVE || code == SKY_ETLS;
}

/*
 * Whether a call that failed with @p err met an endpoint that was never reached: nothing
 * ever answered, and an attempt failed to connect, resolve or shake hands (a wrong URL,
 * host or certificate rather than an outage). The failure goes to @p out.
 */
static int never_reached(const sky_cli_arm_ctx *c, const sky_error *err, sky_error *out)
{
    sky_pipeline_health h;
    if (err == NULL)
        return 0;
    sky_pipeline_get_health(sky_arm_client_pipeline(c->arm), &h);
    if (h.answered > 0 || !unreachable_code(h.last_fault.code))
        return 0;
    *out = h.last_fault;
    return 1;
}

static void say_unreachable(const sky_cli_arm_ctx *c, const sky_error *fault)
{
    char line[512];
    fprintf(stderr,
            "skyio %s: cannot reach the endpoint: %s\n"
            "skyio %s: stopped; nothing was done. Check --endpoint (or $SKYIO_ARM_ENDPOINT), "
            "the network or the TLS certificates, and run again.\n",
            c->cmd, sky_error_format(fault, line, sizeof(line)), c->cmd);
}

/*
 * The pipeline retries a failed connection for a minute and more: right for an outage,
 * wrong for an endpoint that was never there. It has no hook per attempt, so while nothing
 * has answered, look at its health every WATCH_MS; once an attempt has failed that way,
 * cancel what waits to retry (a call on the wire waits too once its attempt fails, and is
 * canceled at the next look). The caller then reports never_reached's failure.
 */
#define WATCH_MS 20

typedef struct reach_watch {
    const sky_cli_arm_ctx *c;
    uv_timer_t *timer;
} reach_watch;

static void on_watch(uv_timer_t *t)
{
    reach_watch *w = t->data;
    sky_pipeline *p = sky_arm_client_pipeline(w->c->arm);
    sky_pipeline_health h;
    sky_pipeline_get_health(p, &h);
    if (h.answered > 0)
        uv_timer_stop(t); /* it answers: from now on a failure is an outage, retried */
    else if (unreachable_code(h.last_fault.code))
        (void)sky_pipeline_cancel_waiting(p);
}

static void watch_start(reach_watch *w, const sky_cli_arm_ctx *c)
{
    w->c = c;
    w->timer = malloc(sizeof(*w->timer));
    if (w->timer == NULL)
        return; /* no watch: the pipeline's own retries end it, later */
    uv_timer_init(sky_loop_uv(c->loop), w->timer);
    w->timer->data = w;
    uv_timer_start(w->timer, on_watch, WATCH_MS, WATCH_MS);
    uv_unref((uv_handle_t *)w->timer); /* never the reason the loop goes on */
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void watch_end(reach_watch *w)
{
    if (w->timer)
        uv_close((uv_handle_t *)w->timer, free_handle);
    w->timer = NULL;
}

/* Print a reply body as one line of JSON (when it is JSON), else as it came. */
static void print_body(sky_span body)
{
    json_t *j = NULL;
    if (body.len == 0)
        return;
    if (sky_json_parse(body, &j, NULL) == 0) {
        char *s = sky_json_dump(j, NULL);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    fwrite(body.ptr, 1, body.len, stdout);
    putchar('\n');
}

/* ---- one operation ---- */

typedef struct op_run {
    sky_cli_arm_ctx *c;
    const sky_cli_arm_op *op;
    int done;
    int exit_code;
    reach_watch watch;
} op_run;

static void on_op_progress(sky_arm_lro *lro, const sky_arm_lro_progress *p, void *ud)
{
    op_run *run = ud;
    (void)lro;
    if (!run->op->progress)
        return;
    if (p->polls == 0)
        fprintf(stderr, "skyio %s: %s: started, %s (%s polling, first poll in %.1f s)\n",
                run->c->cmd, run->op->what, p->status, sky_arm_poll_style_name(p->style),
                (double)p->next_poll_ms / 1000.0);
    else
        fprintf(stderr, "skyio %s: %s: %s (poll %d, %.1f s, next in %.1f s)\n", run->c->cmd,
                run->op->what, p->status, p->polls, (double)p->elapsed_ms / 1000.0,
                (double)p->next_poll_ms / 1000.0);
}

static void on_op_done(sky_arm_lro *lro, const sky_arm_lro_result *res, const sky_error *err,
                       void *ud)
{
    op_run *run = ud;
    sky_error fault;
    (void)lro;
    run->done = 1;
    run->c->current = NULL;
    sky_loop_stop(run->c->loop);
    if (never_reached(run->c, err, &fault)) {
        say_unreachable(run->c, &fault);
        run->exit_code = SKY_EXIT_START;
        return;
    }
    if (err) {
        print_error(run->c, run->op->what, err);
        if (res->resume_token && (err->code == SKY_ECANCELED || err->code == SKY_ETIMEDOUT) &&
            res->status[0] == '\0')
            fprintf(stderr, "skyio %s: the operation goes on; wait again with: skyio arm wait %s\n",
                    run->c->cmd, res->resume_token);
        run->exit_code = sky_cli_arm_exit_for(err);
        return;
    }
    if (strcmp(res->status, "Succeeded") != 0 && res->resume_token) {
        /* started, not waited for */
        printf("%s\n", res->resume_token);
        fprintf(stderr, "skyio %s: %s: started (%s); wait with: skyio arm wait TOKEN\n",
                run->c->cmd, run->op->what, res->status);
        run->exit_code = SKY_EXIT_OK;
        return;
    }
    if (run->op->progress)
        fprintf(stderr, "skyio %s: %s: %s\n", run->c->cmd, run->op->what, res->status);
    print_body(res->body);
    run->exit_code = SKY_EXIT_OK;
}

int sky_cli_arm_run_op(sky_cli_arm_ctx *c, const sky_cli_arm_op *op, const char *token,
                       const sky_cli_arm_flags *f)
{
    sky_arm_lro_options o;
    sky_error err;
    op_run run = {c, op, 0, SKY_EXIT_FAILED, {NULL, NULL}};
    sky_error_clear(&err);
    sky_arm_lro_options_init(&o);
    o.method = op->method;
    o.path = op->path;
    o.api_version = op->api_version;
    o.body = op->body;
    o.no_wait = !op->wait;
    o.timeout_ms = (uint64_t)(f->timeout_s * 1000.0 + 0.5);
    o.on_progress = on_op_progress;
    o.on_done = on_op_done;
    o.user_data = &run;
    int rc = token ? sky_arm_lro_resume(c->arm, token, &o, &c->current, &err)
                   : sky_arm_lro_begin(c->arm, &o, &c->current, &err);
    if (rc < 0) {
        print_error(c, op->what, &err);
        return rc == SKY_EINVAL ? SKY_EXIT_USAGE : SKY_EXIT_START;
    }
    watch_start(&run.watch, c);
    while (!run.done)
        sky_loop_run(c->loop);
    watch_end(&run.watch);
    return run.exit_code;
}

/* ---- GET and lists ---- */

typedef struct get_run {
    sky_cli_arm_ctx *c;
    const char *what;
    int done, exit_code;
    size_t printed;
    reach_watch watch;
} get_run;

/* A GET or a list ended with @p err: say why, and the exit code. */
static int get_failed(const get_run *run, const sky_error *err)
{
    sky_error fault;
    if (never_reached(run->c, err, &fault)) {
        say_unreachable(run->c, &fault);
        return SKY_EXIT_START;
    }
    print_error(run->c, run->what, err);
    return sky_cli_arm_exit_for(err);
}

static void on_get_done(sky_arm_request *req, const sky_arm_response *res, const sky_error *err,
                        void *ud)
{
    get_run *run = ud;
    (void)req;
    run->done = 1;
    sky_loop_stop(run->c->loop);
    if (err) {
        run->exit_code = get_failed(run, err);
        return;
    }
    print_body(res->body);
    run->exit_code = SKY_EXIT_OK;
}

int sky_cli_arm_run_get(sky_cli_arm_ctx *c, const char *path, const char *api_version)
{
    sky_arm_request_options o;
    sky_error err;
    get_run run = {c, path, 0, SKY_EXIT_FAILED, 0, {NULL, NULL}};
    sky_error_clear(&err);
    sky_arm_request_options_init(&o);
    o.path = path;
    o.api_version = api_version;
    o.on_done = on_get_done;
    o.user_data = &run;
    if (sky_arm_request_send(c->arm, &o, NULL, &err) < 0) {
        print_error(c, path, &err);
        return SKY_EXIT_START;
    }
    watch_start(&run.watch, c);
    while (!run.done)
        sky_loop_run(c->loop);
    watch_end(&run.watch);
    return run.exit_code;
}

static int on_list_page(sky_arm_list *l, const json_t *items, void *ud)
{
    get_run *run = ud;
    size_t i;
    json_t *item;
    (void)l;
    json_array_foreach(items, i, item)
    {
        char *s = sky_json_dump(item, NULL);
        if (s)
            printf("%s\n", s);
        free(s);
        run->printed++;
    }
    fflush(stdout);
    return 0;
}

static void on_list_done(sky_arm_list *l, size_t pages, size_t items, const sky_error *err,
                         void *ud)
{
    get_run *run = ud;
    (void)l;
    (void)pages;
    (void)items;
    run->done = 1;
    sky_loop_stop(run->c->loop);
    if (err) {
        run->exit_code = get_failed(run, err);
        return;
    }
    run->exit_code = SKY_EXIT_OK;
}

int sky_cli_arm_run_list(sky_cli_arm_ctx *c, const char *path, const char *api_version)
{
    sky_arm_list_options o;
    sky_error err;
    get_run run = {c, path, 0, SKY_EXIT_FAILED, 0, {NULL, NULL}};
    sky_error_clear(&err);
    sky_arm_list_options_init(&o);
    o.path = path;
    o.api_version = api_version;
    o.on_page = on_list_page;
    o.on_done = on_list_done;
    o.user_data = &run;
    if (sky_arm_list_start(c->arm, &o, NULL, &err) < 0) {
        print_error(c, path, &err);
        return SKY_EXIT_START;
    }
    watch_start(&run.watch, c);
    while (!run.done)
        sky_loop_run(c->loop);
    watch_end(&run.watch);
    return run.exit_code;
}

/* ---- many PUTs from a JSONL file ---- */

typedef struct batch_run batch_run;

typedef struct batch_item {
    batch_run *run;
    char *id;
    char *body;
    size_t body_len;
    int line;
} batch_item;

struct batch_run {
    sky_cli_arm_ctx *c;
    const sky_cli_arm_flags *f;
    batch_item *items;
    size_t n, next, active, ok, failed;
    json_t *failures;    /* [{id, code, message}] */
    json_t *codes;       /* code -> count */
    sky_error unreached; /* the endpoint was never reached: stop, record nothing */
    reach_watch watch;
};

static void batch_start_more(batch_run *b);

static void on_batch_done(sky_arm_lro *lro, const sky_arm_lro_result *res, const sky_error *err,
                          void *ud)
{
    batch_item *it = ud;
    batch_run *b = it->run;
    (void)lro;
    b->active--;
    if (b->unreached.code != 0 || never_reached(b->c, err, &b->unreached)) {
        /* never sent: no result line, so a rerun of the same file does it */
        if (b->active == 0)
            sky_loop_stop(b->c->loop);
        return;
    }
    json_t *line = json_pack("{s:s,s:s}", "id", it->id, "status",
                             err ? (res->status[0] ? res->status : "Error") : res->status);
    if (err) {
        const char *code = err->service_code[0] ? err->service_code : sky_err_name(err->code);
        b->failed++;
        json_object_set_new(b->codes, code,
                            json_integer(json_integer_value(json_object_get(b->codes, code)) + 1));
        json_array_append_new(b->failures, json_pack("{s:s,s:s,s:s}", "id", it->id, "code", code,
                                                     "message", err->message));
        if (line)
            json_object_set_new(line, "error",
                                json_pack("{s:s,s:s}", "code", code, "message", err->message));
    } else {
        b->ok++;
    }
    char *s = line ? sky_json_dump(line, NULL) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(line);
    batch_start_more(b);
    if (b->active == 0 && b->next == b->n)
        sky_loop_stop(b->c->loop);
}

static void batch_start_more(batch_run *b)
{
    while (b->unreached.code == 0 && b->active < (size_t)b->f->concurrency && b->next < b->n) {
        batch_item *it = &b->items[b->next++];
        sky_arm_lro_options o;
        sky_error err;
        sky_error_clear(&err);
        sky_arm_lro_options_init(&o);
        o.method = "PUT";
        o.path = it->id;
        o.api_version = b->f->api_version;
        o.body = sky_span_make(it->body, it->body_len);
        o.timeout_ms = (uint64_t)(b->f->timeout_s * 1000.0 + 0.5);
        o.on_done = on_batch_done;
        o.user_data = it;
        if (sky_arm_lro_begin(b->c->arm, &o, NULL, &err) < 0) {
            b->failed++;
            json_array_append_new(b->failures,
                                  json_pack("{s:s,s:s,s:s}", "id", it->id, "code",
                                            sky_err_name(err.code), "message", err.message));
            continue;
        }
        b->active++;
    }
}

/* One input line: {"id": "/subscriptions/...", "body": {...}}. */
static int batch_parse_line(const char *line, size_t len, int lineno, batch_item *it)
{
    json_t *j = NULL;
    sky_error err;
    sky_error_clear(&err);
    if (sky_json_parse(sky_span_make(line, len), &j, &err) < 0) {
        fprintf(stderr, "skyio arm: --input line %d: %s\n", lineno, err.message);
        return -1;
    }
    const char *id = sky_json_str(j, "id", NULL);
    json_t *body = json_object_get(j, "body");
    if (id == NULL || *id != '/' || !json_is_object(body)) {
        fprintf(stderr,
                "skyio arm: --input line %d: needs \"id\" (a resource id) and \"body\" "
                "(an object)\n",
                lineno);
        json_decref(j);
        return -1;
    }
    it->id = strdup(id);
    it->body = sky_json_dump(body, &it->body_len);
    it->line = lineno;
    json_decref(j);
    return it->id && it->body ? 0 : -1;
}

static int batch_read(const char *path, batch_run *b)
{
    size_t len = 0, cap = 0;
    if (sky_cli_check_input_file("arm", "--input", path) < 0)
        return -1;
    char *text = sky_cli_read_file(path, &len);
    if (text == NULL) {
        fprintf(stderr, "skyio arm: --input %s: cannot read it\n", path);
        return -1;
    }
    int lineno = 0, rc = 0;
    for (char *p = text; rc == 0 && p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        lineno++;
        if (n > 0 && strspn(p, " \t\r") < n) {
            if (b->n == cap) {
                cap = cap ? cap * 2 : 16;
                batch_item *bigger = realloc(b->items, cap * sizeof(*bigger));
                if (bigger == NULL) {
                    rc = -1;
                    break;
                }
                b->items = bigger;
            }
            memset(&b->items[b->n], 0, sizeof(batch_item));
            b->items[b->n].run = b;
            rc = batch_parse_line(p, n, lineno, &b->items[b->n]);
            b->n++;
        }
        p += n + 1;
    }
    free(text);
    if (rc == 0 && b->n == 0) {
        fprintf(stderr, "skyio arm: --input %s: no operations in it\n", path);
        rc = -1;
    }
    return rc;
}

static void batch_summary(const batch_run *b, int as_json)
{
    if (as_json) {
        json_t *j = json_pack("{s:I,s:I,s:I,s:O,s:O}", "total", (json_int_t)b->n, "succeeded",
                              (json_int_t)b->ok, "failed", (json_int_t)b->failed, "codes", b->codes,
                              "failures", b->failures);
        char *s = j ? sky_json_dump(j, NULL) : NULL;
        if (s)
            fprintf(stderr, "%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    size_t i;
    json_t *f;
    const char *code;
    json_t *count;
    fprintf(stderr, "skyio arm: %zu operations: %zu succeeded, %zu failed\n", b->n, b->ok,
            b->failed);
    json_object_foreach(b->codes, code, count)
    {
        fprintf(stderr, "  %-28s %lld\n", code, (long long)json_integer_value(count));
    }
    json_array_foreach(b->failures, i, f)
    {
        if (i == 20) {
            fprintf(stderr, "  ... %zu more\n", json_array_size(b->failures) - 20);
            break;
        }
        fprintf(stderr, "  failed %s: %s: %s\n", sky_json_str(f, "id", ""),
                sky_json_str(f, "code", ""), sky_json_str(f, "message", ""));
    }
}

static void batch_free(batch_run *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].id);
        free(b->items[i].body);
    }
    free(b->items);
    json_decref(b->failures);
    json_decref(b->codes);
}

static int run_batch(const sky_cli_arm_flags *f)
{
    batch_run b;
    sky_cli_arm_ctx c;
    memset(&b, 0, sizeof(b));
    b.f = f;
    b.failures = json_array();
    b.codes = json_object();
    if (b.failures == NULL || b.codes == NULL || batch_read(f->input, &b) < 0) {
        batch_free(&b);
        return SKY_EXIT_USAGE;
    }
    int rc = sky_cli_arm_open(&c, "arm", f);
    if (rc != 0) {
        batch_free(&b);
        return rc;
    }
    b.c = &c;
    batch_start_more(&b);
    watch_start(&b.watch, &c);
    while (b.active > 0 && !c.signaled)
        sky_loop_run(c.loop);
    watch_end(&b.watch);
    fflush(stdout);
    if (b.unreached.code != 0) {
        say_unreachable(&c, &b.unreached);
        sky_cli_arm_close(&c);
        batch_free(&b);
        return SKY_EXIT_START;
    }
    batch_summary(&b, f->json);
    size_t unfinished = b.n - b.ok - b.failed;
    rc = b.failed == 0 && unfinished == 0                                    ? SKY_EXIT_OK
         : b.ok == 0 && b.failed == b.n && json_object_get(b.codes, "EAUTH") ? SKY_EXIT_START
                                                                             : SKY_EXIT_FAILED;
    sky_cli_arm_close(&c);
    batch_free(&b);
    return rc;
}

/* ---- the command ---- */

static const char usage[] =
    "usage: skyio arm get|put|patch|delete|post RESOURCE_ID --api-version V [--body FILE]\n"
    "                 [--wait] [--timeout S] [--poll-interval S]\n"
    "       skyio arm list COLLECTION_ID --api-version V\n"
    "       skyio arm wait TOKEN [--timeout S] [--poll-interval S]\n"
    "       skyio arm put --input FILE.jsonl --api-version V [--concurrency N] [--json]\n"
    "\n"
    "Azure Resource Manager requests on resource ids (/subscriptions/{id}/resourceGroups/\n"
    "{rg}/providers/...). put, patch, delete and post may start a long-running operation:\n"
    "with --wait skyio follows it (Azure-AsyncOperation, Location or provisioningState,\n"
    "honouring Retry-After) and prints the final resource or reply; without --wait it prints\n"
    "a resume token on stdout, and `skyio arm wait TOKEN` (in any process) waits for the end.\n"
    "list prints every item of every page as one JSON line, one page in memory at a time.\n"
    "put --input starts one PUT per line ({\"id\": RESOURCE_ID, \"body\": {...}}) under a\n"
    "concurrency limit, waits for each, prints one result line each and a summary on stderr.\n"
    "\n"
    "Exit: 0 done; 1 the service refused or the operation failed (some failed, for --input);\n"
    "2 usage or input error; 3 could not start (auth, network, an unreachable endpoint).\n"
    "\n"
    "options:\n";

static int read_body(const char *file, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (file == NULL)
        return 0;
    if (sky_cli_check_input_file("arm", "--body", file) < 0)
        return -1;
    *out = sky_cli_read_file(file, len);
    if (*out == NULL) {
        fprintf(stderr, "skyio arm: --body %s: cannot read it\n", file);
        return -1;
    }
    json_t *j = NULL;
    sky_error err;
    sky_error_clear(&err);
    if (sky_json_parse(sky_span_make(*out, *len), &j, &err) < 0) {
        fprintf(stderr, "skyio arm: --body %s: not JSON: %s\n", file, err.message);
        free(*out);
        *out = NULL;
        return -1;
    }
    json_decref(j);
    return 0;
}

static int verb_known(const char *v)
{
    static const char *const verbs[] = {"get", "put", "patch", "delete", "post", "list", "wait"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(verbs); i++)
        if (strcmp(v, verbs[i]) == 0)
            return 1;
    return 0;
}

static int check_args(const sky_cli_arm_flags *f)
{
    const char *verb = f->pos[0];
    if (verb == NULL || !verb_known(verb)) {
        fprintf(stderr, "skyio arm: expected get|put|patch|delete|post|list|wait (see --help)\n");
        return -1;
    }
    if (strcmp(verb, "put") == 0 && f->input) {
        if (f->n_pos != 1 || f->api_version == NULL) {
            fprintf(stderr, "skyio arm: put --input takes no RESOURCE_ID and needs "
                            "--api-version\n");
            return -1;
        }
        return 0;
    }
    if (f->n_pos != 2) {
        fprintf(stderr, "skyio arm %s: expected one %s\n", verb,
                strcmp(verb, "wait") == 0 ? "TOKEN" : "RESOURCE_ID");
        return -1;
    }
    if (strcmp(verb, "wait") != 0 && f->api_version == NULL) {
        fprintf(stderr, "skyio arm %s: --api-version is required\n", verb);
        return -1;
    }
    if (strcmp(verb, "wait") != 0 && f->pos[1][0] != '/' && strncmp(f->pos[1], "http", 4) != 0) {
        fprintf(stderr,
                "skyio arm %s: '%s' is not a resource id (it starts with /subscriptions/)"
                "\n",
                verb, f->pos[1]);
        return -1;
    }
    return 0;
}

int sky_cli_arm(int argc, char **argv)
{
    sky_cli_arm_flags f;
    if (sky_cli_arm_parse("arm", ARMF_ARM, argc, argv, &f) < 0)
        return SKY_EXIT_USAGE;
    if (f.help) {
        fputs(usage, stdout);
        sky_cli_arm_print_flags(stdout, ARMF_ARM);
        return SKY_EXIT_OK;
    }
    if (check_args(&f) < 0)
        return SKY_EXIT_USAGE;
    if (f.input)
        return run_batch(&f);
    const char *verb = f.pos[0];
    char *body = NULL;
    size_t body_len = 0;
    if (read_body(f.body_file, &body, &body_len) < 0)
        return SKY_EXIT_USAGE;
    sky_cli_arm_ctx c;
    int rc = sky_cli_arm_open(&c, "arm", &f);
    if (rc != 0) {
        free(body);
        return rc;
    }
    char method[8];
    size_t i;
    for (i = 0; verb[i] && i + 1 < sizeof(method); i++)
        method[i] = (char)(verb[i] - ('a' - 'A'));
    method[i] = '\0';
    if (strcmp(verb, "get") == 0) {
        rc = sky_cli_arm_run_get(&c, f.pos[1], f.api_version);
    } else if (strcmp(verb, "list") == 0) {
        rc = sky_cli_arm_run_list(&c, f.pos[1], f.api_version);
    } else {
        int waiting = strcmp(verb, "wait") == 0;
        sky_cli_arm_op op = {method,
                             f.pos[1],
                             f.api_version,
                             sky_span_make(body, body_len),
                             f.wait || waiting,
                             1,
                             waiting ? "wait" : verb};
        rc = sky_cli_arm_run_op(&c, &op, waiting ? f.pos[1] : NULL, &f);
    }
    sky_cli_arm_close(&c);
    free(body);
    return rc;
}
