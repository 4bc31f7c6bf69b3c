/*
 * `skyio arm`: requests on any ARM resource id, paged lists as JSON lines,
 * long-running operations (wait here, or print a resume token and wait
 * later with `skyio arm wait`), and many PUTs at once from a JSONL file
 * (arm_bulk.c). The flags (arm_flags.c) and the runners here are shared with
 * `skyio group` and `skyio vm`.
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
        o.pipeline.fail_unreached = 1;   /* a wrong address is said at once, not retried */
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

/*
 * The client's pipeline has fail_unreached set: an attempt that cannot connect, resolve or
 * shake hands with an endpoint that never answered ends the call at once. Whether @p err
 * is such an end; the failure goes to @p out.
 */
int sky_cli_arm_never_reached(const sky_cli_arm_ctx *c, const sky_error *err, sky_error *out)
{
    sky_pipeline_health h;
    if (err == NULL)
        return 0;
    sky_pipeline_get_health(sky_arm_client_pipeline(c->arm), &h);
    if (h.answered > 0 || !(h.last_fault.code == SKY_ECONNECT ||
                            h.last_fault.code == SKY_ERESOLVE || h.last_fault.code == SKY_ETLS))
        return 0;
    *out = h.last_fault;
    return 1;
}

void sky_cli_arm_say_unreachable(const sky_cli_arm_ctx *c, const sky_error *fault)
{
    char line[512];
    fprintf(stderr,
            "skyio %s: cannot reach the endpoint: %s\n"
            "skyio %s: stopped; nothing was done. Check --endpoint (or $SKYIO_ARM_ENDPOINT), "
            "the network or the TLS certificates, and run again.\n",
            c->cmd, sky_error_format(fault, line, sizeof(line)), c->cmd);
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
    if (sky_cli_arm_never_reached(run->c, err, &fault)) {
        sky_cli_arm_say_unreachable(run->c, &fault);
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
    op_run run = {c, op, 0, SKY_EXIT_FAILED};
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
    while (!run.done)
        sky_loop_run(c->loop);
    return run.exit_code;
}

/* ---- GET and lists ---- */

typedef struct get_run {
    sky_cli_arm_ctx *c;
    const char *what;
    int done, exit_code;
    size_t printed;
} get_run;

/* A GET or a list ended with @p err: say why, and the exit code. */
static int get_failed(const get_run *run, const sky_error *err)
{
    sky_error fault;
    if (sky_cli_arm_never_reached(run->c, err, &fault)) {
        sky_cli_arm_say_unreachable(run->c, &fault);
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
    get_run run = {c, path, 0, SKY_EXIT_FAILED, 0};
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
    while (!run.done)
        sky_loop_run(c->loop);
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
    get_run run = {c, path, 0, SKY_EXIT_FAILED, 0};
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
    while (!run.done)
        sky_loop_run(c->loop);
    return run.exit_code;
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
        return sky_cli_arm_run_bulk(&f);
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
