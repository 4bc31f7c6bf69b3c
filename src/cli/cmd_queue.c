/*
 * `skyio queue`: make, list and remove queues; put, get, peek, delete and clear messages;
 * get --process hands each message to a command (queue_process.c). The rules are the
 * library's (skyio/queue.h): this file parses flags, prints replies and wires Ctrl-C.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cmd_queue.h"
#include "storage_flags.h"

/* ---- printing ---- */

void sky_cli_queue_failed(sky_cli_queue_app *a, const char *what, const sky_error *err)
{
    char line[512];
    if (err->code == SKY_ECANCELED && a->stop)
        return;
    fprintf(stderr, "skyio queue %s: %s\n", what, sky_error_format(err, line, sizeof(line)));
    int start = err->code == SKY_EAUTH || err->code == SKY_ECONNECT || err->code == SKY_ERESOLVE ||
                err->code == SKY_ETLS || err->http_status == 401 || err->http_status == 403;
    a->exit_code = start ? SKY_EXIT_START : SKY_EXIT_FAILED;
}

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

static void print_message(const sky_cli_queue_app *a, const sky_queue_message *m)
{
    if (!a->f.json) {
        fwrite(m->text.ptr, 1, m->text.len, stdout);
        fputc('\n', stdout);
        return;
    }
    json_t *o = json_object();
    set_str(o, "id", m->id);
    set_str(o, "pop_receipt", m->pop_receipt);
    if (m->dequeue_count >= 0)
        json_object_set_new(o, "dequeue_count", json_integer(m->dequeue_count));
    set_str(o, "inserted", m->inserted);
    set_str(o, "expires", m->expires);
    set_str(o, "next_visible", m->next_visible);
    json_t *t = m->text.ptr ? json_stringn(m->text.ptr, m->text.len) : NULL; /* NULL: not UTF-8 */
    if (m->text.ptr)
        json_object_set_new(o, t ? "text" : "text_bytes",
                            t ? t : json_integer((json_int_t)m->text.len));
    char *line = json_dumps(o, JSON_COMPACT);
    if (line)
        puts(line);
    free(line);
    json_decref(o);
}

static void print_info(const sky_cli_queue_app *a, const sky_queue_reply *rep)
{
    const char *name, *value;
    json_t *o = json_object(), *meta = json_object();
    for (size_t i = 0; rep->metadata && sky_headers_at(rep->metadata, i, &name, &value) == 0; i++)
        json_object_set_new(meta, name, json_string(value));
    json_object_set_new(o, "name", json_string(a->queue));
    json_object_set_new(o, "approximate_messages", json_integer(rep->approximate_count));
    json_object_set_new(o, "metadata", meta);
    char *line = json_dumps(o, JSON_COMPACT);
    if (line && a->f.json)
        puts(line);
    else
        printf("%s: about %lld messages\n", a->queue, (long long)rep->approximate_count);
    free(line);
    json_decref(o);
}

/* ---- replies ---- */

static void on_reply(sky_queue_op *op, const sky_queue_reply *rep, const sky_error *err, void *ud);

static int start_ls(sky_cli_queue_app *a, sky_error *err)
{
    const char *prefix = a->f.nargs > 0 ? a->f.args[0] : NULL;
    return sky_queue_list(a->q, prefix, a->marker, 0, on_reply, a, NULL, err);
}

/* ls: this page's names, and the next page when there is one. */
static int on_ls_page(sky_cli_queue_app *a, const sky_queue_reply *rep)
{
    for (size_t i = 0; i < rep->nqueues; i++)
        printf(a->f.json ? "{\"name\":\"%s\"}\n" : "%s\n", rep->queues[i]); /* names: [a-z0-9-] */
    if (rep->next_marker == NULL)
        return 0;
    sky_error err;
    sky_error_clear(&err);
    free(a->marker);
    a->marker = strdup(rep->next_marker);
    if (a->marker && start_ls(a, &err) == 0)
        return 1;
    sky_cli_queue_failed(a, "ls", &err);
    return 0;
}

static void on_reply(sky_queue_op *op, const sky_queue_reply *rep, const sky_error *err, void *ud)
{
    sky_cli_queue_app *a = ud;
    (void)op;
    if (err) {
        sky_cli_queue_failed(a, a->verb, err);
    } else if (strcmp(a->verb, "ls") == 0) {
        if (on_ls_page(a, rep))
            return;
    } else if (strcmp(a->verb, "info") == 0) {
        print_info(a, rep);
    } else if (strcmp(a->verb, "put") == 0 && rep->count == 1) {
        if (a->f.json)
            print_message(a, &rep->messages[0]);
        else
            printf("%s\n", rep->messages[0].id ? rep->messages[0].id : "");
    } else {
        for (size_t i = 0; i < rep->count; i++)
            print_message(a, &rep->messages[i]);
    }
    a->done = 1;
}

/* ---- the account and the client ---- */

static int make_account(sky_cli_queue_app *a, const sky_cli_queue_flags *f, sky_error *err)
{
    /* the endpoint only names the account: the queue endpoint is below */
    sky_cli_storage_creds cr = {f->connstr, f->name, f->key, f->sas, f->endpoint};
    int rc = sky_cli_storage_account(&cr, &a->env.acct, err);
    if (rc != 0)
        return rc;
    if (f->endpoint)
        a->endpoint = strdup(f->endpoint);
    else
        rc = sky_queue_endpoint_of(a->env.acct,
                                   f->connstr          ? f->connstr
                                   : f->name || f->sas ? NULL
                                                       : getenv("AZURE_STORAGE_CONNECTION_STRING"),
                                   &a->endpoint, err);
    return rc == 0 && a->endpoint == NULL ? SKY_ENOMEM : rc;
}

static int make_client(sky_cli_queue_app *a, sky_error *err)
{
    sky_queue_client_options o;
    sky_queue_client_options_init(&o);
    sky_queue_client_options_from_account(&o, a->env.acct, a->endpoint);
    o.raw = a->f.raw;
    int rc = sky_cli_storage_connect(&a->env, a->f.login, err);
    o.credential = a->env.cred;
    if (rc == 0)
        rc = sky_queue_client_new(sky_loop_uv(a->env.loop), a->env.http, &o, &a->q, err);
    return rc;
}

static int setup(sky_cli_queue_app *a)
{
    sky_error err;
    sky_error_clear(&err);
    a->env.loop = sky_loop_new();
    if (a->env.loop == NULL)
        return SKY_EXIT_START;
    int rc = make_account(a, &a->f, &err);
    int usage_err = rc == SKY_EINVAL;
    if (rc == 0)
        rc = make_client(a, &err);
    if (rc == 0)
        return 0;
    if (err.code == 0)
        sky_error_set(&err, rc, "cannot set up the client");
    char line[512];
    fprintf(stderr, "skyio queue: %s\n", sky_error_format(&err, line, sizeof(line)));
    return usage_err ? SKY_EXIT_USAGE : SKY_EXIT_START;
}

/* ---- each command ---- */

/* put's message: the argument, --file, or stdin (read whole; at most 1 MiB). */
static int read_text(sky_cli_queue_app *a)
{
    if (a->f.nargs > 1) {
        a->text = strdup(a->f.args[1]);
        a->text_len = a->text ? strlen(a->text) : 0;
        return a->text ? 0 : SKY_EXIT_START;
    }
    const char *path = a->f.file ? a->f.file : "/dev/stdin";
    if (a->f.file && sky_cli_check_input_file("queue", "--file", path) != 0)
        return SKY_EXIT_USAGE;
    a->text = sky_cli_read_file(path, &a->text_len);
    if (a->text == NULL) {
        fprintf(stderr, "skyio queue put: cannot read the message from %s\n", path);
        return SKY_EXIT_USAGE;
    }
    return 0;
}

static int start_put(sky_cli_queue_app *a, sky_error *err)
{
    int rc = read_text(a);
    if (rc != 0)
        return -rc;
    sky_queue_put_options po;
    sky_queue_put_options_init(&po);
    po.visibility_delay = (int)(a->f.delay > 604800 ? 604801 : a->f.delay);
    po.ttl = a->f.ttl;
    sky_span text = {a->text, a->text_len};
    return sky_queue_put(a->q, a->queue, text, &po, on_reply, a, NULL, err);
}

/* A verb's first request: 0, a SKY_E code with @p err, or minus an exit code. */
static int start_verb(sky_cli_queue_app *a, sky_error *err)
{
    const char *v = a->verb;
    int n = a->f.count > 0 ? (int)(a->f.count > 1000 ? 1000 : a->f.count) : 1;
    int vis = a->f.visibility > 0 ? (int)(a->f.visibility > 604800 ? 604801 : a->f.visibility) : 30;
    if (strcmp(v, "ls") == 0)
        return start_ls(a, err);
    if (strcmp(v, "mk") == 0)
        return sky_queue_create(a->q, a->queue, NULL, on_reply, a, NULL, err);
    if (strcmp(v, "rm") == 0)
        return sky_queue_delete(a->q, a->queue, on_reply, a, NULL, err);
    if (strcmp(v, "info") == 0)
        return sky_queue_properties(a->q, a->queue, on_reply, a, NULL, err);
    if (strcmp(v, "clear") == 0)
        return sky_queue_clear(a->q, a->queue, on_reply, a, NULL, err);
    if (strcmp(v, "put") == 0)
        return start_put(a, err);
    if (strcmp(v, "peek") == 0)
        return sky_queue_peek(a->q, a->queue, n, on_reply, a, NULL, err);
    if (strcmp(v, "delete") == 0)
        return sky_queue_delete_message(a->q, a->queue, a->f.args[1], a->f.args[2], on_reply, a,
                                        NULL, err);
    if (a->f.process)
        return -sky_cli_queue_process_start(a);
    return sky_queue_get(a->q, a->queue, n, vis, on_reply, a, NULL, err);
}

/* ---- signals and the loop ---- */

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    sky_cli_queue_app *a = ud;
    (void)loop, (void)signum;
    if (a->stop)
        return;
    a->stop = 1;
    a->exit_code = SKY_EXIT_FAILED;
    fprintf(stderr, "\nskyio queue: canceling...\n");
    if (a->proc) {
        sky_cli_queue_process_stop(a);
        return;
    }
    sky_queue_client_free(a->q); /* the request reports ECANCELED */
    a->q = NULL;
    a->done = 1;
}

static int run(sky_cli_queue_app *a)
{
    sky_error err;
    sky_error_clear(&err);
    sky_cli_storage_watch_start(&a->env, &a->done);
    (void)sky_loop_on_signal(a->env.loop, on_signal, a);
    int rc = start_verb(a, &err);
    if (rc <= SKY__ERR_FIRST + 100) { /* a SKY_E code: refused before any request */
        char line[512];
        fprintf(stderr, "skyio queue %s: %s\n", a->verb,
                sky_error_format(&err, line, sizeof(line)));
        rc = err.code == SKY_ENOMEM ? SKY_EXIT_START : SKY_EXIT_USAGE;
    } else if (rc < 0) {
        rc = -rc;
    } else if (!a->done) {
        sky_loop_run(a->env.loop);
    }
    sky_cli_storage_watch_stop(&a->env);
    return rc ? rc : a->exit_code;
}

static void cleanup(sky_cli_queue_app *a)
{
    sky_queue_client_free(a->q);
    sky_cli_storage_env_drain(&a->env);
    sky_cli_queue_process_free(a); /* after the drain: its timers are closed */
    sky_cli_storage_env_free(&a->env);
    free(a->endpoint);
    free(a->marker);
    free(a->text);
}

int sky_cli_queue(int argc, char **argv)
{
    sky_cli_queue_app a;
    memset(&a, 0, sizeof(a));
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(sky_cli_queue_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SKY_EXIT_USAGE : SKY_EXIT_OK;
    }
    a.verb = argv[1];
    int rc = sky_cli_queue_parse_flags(&a.f, argc, argv);
    if (rc != 0)
        return rc > 0 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    rc = sky_cli_queue_check_args(a.verb, &a.f);
    if (rc != 0)
        return rc;
    if (a.f.process && strcmp(a.verb, "get") != 0) {
        fprintf(stderr, "skyio queue: --process goes with get\n");
        return SKY_EXIT_USAGE;
    }
    a.queue = strcmp(a.verb, "ls") == 0 ? NULL : a.f.args[0];
    rc = setup(&a);
    if (rc == 0)
        rc = run(&a);
    cleanup(&a);
    return rc;
}
