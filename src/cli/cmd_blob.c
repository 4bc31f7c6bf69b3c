/*
 * `skyio blob`: list, make and remove containers; put, get and rm blobs and whole folders.
 * The transfers are the library's (skyio/blob_transfer.h): this file runs the verbs and
 * wires Ctrl-C; the flags are in blob_flags.c, what it prints in blob_report.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_blob.h"
#include "storage_flags.h"

/* "container/rest" into the container (in place) and the rest (may be ""). */
static char *split_target(char *arg)
{
    char *slash = strchr(arg, '/');
    if (slash == NULL)
        return arg + strlen(arg);
    *slash = '\0';
    return slash + 1;
}

/* ---- put, get and rm: a folder transfer of the library ---- */

static void on_run_done(sky_blob_folder *fo, const sky_blob_folder_stats *st, const sky_error *err,
                        void *ud)
{
    sky_cli_blob_app *a = ud;
    (void)fo;
    if (err && err->code != SKY_ECANCELED) { /* the endpoint was never reached */
        sky_cli_blob_say_unreachable(err);
        a->exit_code = SKY_EXIT_START;
    } else {
        sky_cli_blob_summary(a, st);
    }
    a->done = 1;
}

static void run(sky_cli_blob_app *a)
{
    sky_error err;
    sky_error_clear(&err);
    if (sky_blob_folder_run(a->folder, on_run_done, a, &err) != 0) {
        sky_cli_blob_print_err("start", &err);
        a->exit_code = SKY_EXIT_START;
        a->done = 1;
    }
}

/* The plan failed: say so as each step always has, and choose the exit code. */
static void on_planned(sky_blob_folder *fo, int step, const sky_error *err, void *ud)
{
    sky_cli_blob_app *a = ud;
    (void)fo;
    if (err == NULL) {
        run(a);
        return;
    }
    int canceled = err->code == SKY_ECANCELED;
    a->exit_code = canceled ? SKY_EXIT_FAILED : SKY_EXIT_USAGE;
    if (step == SKY_BLOB_FOLDER_STEP_LIST && err->code == SKY_ENOMEM) {
        fprintf(stderr, "skyio blob: out of memory\n");
        a->exit_code = SKY_EXIT_START;
    } else if (step == SKY_BLOB_FOLDER_STEP_LIST) {
        /* A sync upload into a container that does not exist yet: nothing to compare. */
        sky_cli_blob_one_request_failed(a, "list", err);
    } else if (step == SKY_BLOB_FOLDER_STEP_WALK && !canceled) {
        fprintf(stderr, "skyio blob: cannot walk %s\n", a->f.args[0]);
    } else if (!canceled) { /* the destination folder */
        fprintf(stderr, "skyio blob: %s\n", err->message);
    }
    a->done = 1;
}

/* A folder (@p name NULL: planned, then run) or one file or blob named on the command line. */
static int transfer(sky_cli_blob_app *a, int kind, const char *local, const char *name,
                    int64_t size)
{
    sky_error err;
    sky_error_clear(&err);
    a->fo.kind = kind;
    a->fo.container = a->container;
    a->fo.prefix = a->prefix;
    a->fo.local = name ? NULL : local;
    a->fo.on_progress = a->tty ? sky_cli_blob_on_progress : NULL;
    int rc = sky_blob_folder_new(a->blob, &a->fo, &a->folder, &err);
    if (rc == 0 && name == NULL)
        rc = sky_blob_folder_plan(a->folder, on_planned, a, &err);
    else if (rc == 0)
        rc = sky_blob_folder_add(a->folder, local, name, size, &err);
    if (rc != 0) {
        sky_cli_blob_print_err("start", &err);
        return SKY_EXIT_START;
    }
    if (name)
        run(a);
    return 0;
}

/* ---- one-request commands: ls, mb, rb ---- */

static void on_ls(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud);

static int ls_page(sky_cli_blob_app *a, sky_error *err)
{
    sky_blob_list_options lo = {a->prefix, a->f.recursive ? NULL : "/", a->marker, 0};
    return a->container
               ? sky_blob_list(a->blob, a->container, &lo, on_ls, a, NULL, err)
               : sky_blob_container_list(a->blob, a->marker ? &lo : NULL, on_ls, a, NULL, err);
}

/* The next page, when there is one; its marker kept whole (a cut one lists the wrong page). */
static int ls_next(sky_cli_blob_app *a, const char *marker)
{
    sky_error err;
    sky_error_clear(&err);
    char *m = strdup(marker);
    if (m == NULL) {
        fprintf(stderr, "skyio blob: out of memory\n");
        return -1;
    }
    free(a->marker);
    a->marker = m;
    if (ls_page(a, &err) == 0)
        return 0;
    sky_cli_blob_print_err("ls", &err);
    return -1;
}

static void on_ls(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    sky_cli_blob_app *a = ud;
    (void)op;
    if (err) {
        sky_cli_blob_one_request_failed(a, "ls", err);
        a->done = 1;
        return;
    }
    for (size_t i = 0; i < rep->list->count; i++) {
        const sky_blob_item *it = &rep->list->items[i];
        if (a->container == NULL || it->is_prefix)
            printf("%s%s\n", it->is_prefix ? "                 " : "", it->name);
        else
            printf("%16" PRId64 " %s\n", it->size, it->name);
    }
    if (rep->list->next_marker && !a->stop) {
        if (ls_next(a, rep->list->next_marker) == 0)
            return;
        a->exit_code = SKY_EXIT_FAILED;
    }
    a->done = 1;
}

static void on_simple(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    sky_cli_blob_app *a = ud;
    (void)op, (void)rep;
    if (err)
        sky_cli_blob_one_request_failed(a, a->verb == V_MB ? "mb" : "rb", err);
    a->done = 1;
}

/* ---- the account and the client ---- */

/* The account the flags name (the library's rules), in the flags' words when they name none. */
static int make_account(sky_cli_blob_app *a, const sky_cli_blob_flags *f, sky_error *err)
{
    if (f->connstr == NULL && f->sas && f->name == NULL && f->endpoint == NULL)
        return sky_error_set(err, SKY_EINVAL, "--account-name or --endpoint is required");
    sky_cli_storage_creds c = {f->connstr, f->name, f->key, f->sas, f->endpoint};
    return sky_cli_storage_account(&c, &a->env.acct, err);
}

static int setup(sky_cli_blob_app *a, sky_cli_blob_flags *f)
{
    sky_error err;
    sky_error_clear(&err);
    sky_blob_client_options o;
    sky_blob_client_options_init(&o);
    a->env.loop = sky_loop_new();
    int rc = a->env.loop ? make_account(a, f, &err) : SKY_ENOMEM;
    if (rc == 0)
        rc = sky_cli_storage_connect(&a->env, f->login, &err);
    if (rc == 0) {
        sky_blob_client_options_from_account(&o, a->env.acct);
        if (f->block_size > 0)
            o.block_size = (size_t)f->block_size;
        if (f->concurrency > 0)
            o.concurrency = (int)f->concurrency;
        o.credential = a->env.cred;
        rc = sky_blob_client_new(sky_loop_uv(a->env.loop), a->env.http, &o, &a->blob, &err);
    }
    if (rc != 0) {
        if (err.code == 0)
            sky_error_set(&err, rc, "cannot set up the client");
        sky_cli_blob_print_err("setup", &err);
        return rc == SKY_EINVAL && f->connstr == NULL && a->env.acct == NULL ? SKY_EXIT_USAGE
                                                                             : SKY_EXIT_START;
    }
    return 0;
}

/* ---- each command ---- */

static int put(sky_cli_blob_app *a, const char *src, char *target)
{
    char *rest = split_target(target);
    struct stat st;
    a->container = target;
    a->prefix = strdup(a->f.recursive ? rest : "");
    if (a->prefix == NULL)
        return SKY_EXIT_START;
    if (stat(src, &st) != 0) {
        fprintf(stderr, "skyio blob: %s: %s\n", src, strerror(errno));
        return SKY_EXIT_USAGE;
    }
    if (a->f.recursive && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "skyio blob: put -r needs a folder, %s is not one\n", src);
        return SKY_EXIT_USAGE;
    }
    if (a->f.recursive)
        return transfer(a, SKY_BLOB_FOLDER_UPLOAD, src, NULL, 0);
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "skyio blob: %s is not a file (use -r for a folder)\n", src);
        return SKY_EXIT_USAGE;
    }
    /* NAME ending in '/' or absent: the file's own name under it. */
    const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
    char name[ARG_MAX_BYTES + NAME_MAX + 1];
    size_t rl = strlen(rest);
    snprintf(name, sizeof(name), "%s%s", rest, rl == 0 || rest[rl - 1] == '/' ? base : "");
    sky_error e;
    sky_error_clear(&e);
    if (sky_blob_name_check(name, &e) != 0) {
        fprintf(stderr, "skyio blob: %s\n", e.message);
        return SKY_EXIT_USAGE;
    }
    a->fo.sync = 0;
    return transfer(a, SKY_BLOB_FOLDER_UPLOAD, src, name, (int64_t)st.st_size);
}

/* get CONTAINER/NAME DST: DST itself, or a folder to hold the blob under its last part. */
static int get_path(const char *dst, const char *rest, char *path, size_t len)
{
    struct stat st;
    sky_error e;
    sky_error_clear(&e);
    const char *base = strrchr(rest, '/') ? strrchr(rest, '/') + 1 : rest;
    if (stat(dst, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(path, len, "%s", dst);
        return 0;
    }
    /* Into a folder under the blob's own last part: that part must be a file name. */
    if (sky_blob_relpath_check(base, &e) != 0) {
        fprintf(stderr,
                "skyio blob: refused: blob '%s' cannot be saved into %s under its own name: %s\n",
                rest, dst, base[0] ? e.message : "it ends with '/' (a folder: use get -r)");
        return SKY_EXIT_USAGE;
    }
    snprintf(path, len, "%s/%s", dst, base);
    return 0;
}

static int get(sky_cli_blob_app *a, char *source, const char *dst)
{
    char *rest = split_target(source);
    struct stat st;
    a->container = source;
    a->prefix = strdup(rest);
    if (a->prefix == NULL)
        return SKY_EXIT_START;
    if (a->f.recursive && stat(dst, &st) == 0 && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "skyio blob: %s exists and is not a folder\n", dst);
        return SKY_EXIT_USAGE;
    }
    /* get -r DIR: the plan makes DIR only once the listing worked. */
    if (a->f.recursive)
        return transfer(a, SKY_BLOB_FOLDER_DOWNLOAD, dst, NULL, 0);
    sky_error e;
    sky_error_clear(&e);
    if (rest[0] == '\0') {
        fprintf(stderr, "skyio blob: get needs CONTAINER/NAME (or -r)\n");
        return SKY_EXIT_USAGE;
    }
    if (sky_blob_name_check(rest, &e) != 0) {
        fprintf(stderr, "skyio blob: %s\n", e.message);
        return SKY_EXIT_USAGE;
    }
    char path[2 * PATH_MAX];
    int rc = get_path(dst, rest, path, sizeof(path));
    return rc ? rc : transfer(a, SKY_BLOB_FOLDER_DOWNLOAD, path, rest, 0);
}

static int start_verb(sky_cli_blob_app *a, char *arg0, char *arg1)
{
    sky_error err;
    sky_error_clear(&err);
    int rc = 0;
    if (a->verb == V_PUT)
        return put(a, a->f.args[0], arg1);
    if (a->verb == V_GET)
        return get(a, arg0, a->f.args[1]);
    a->container = arg0; /* ls without one lists the containers */
    if (arg0 && (a->verb == V_LS || a->verb == V_RM) &&
        (a->prefix = strdup(split_target(arg0))) == NULL)
        return SKY_EXIT_START;
    if (a->verb == V_RM)
        return transfer(a, SKY_BLOB_FOLDER_DELETE, NULL, a->f.recursive ? NULL : a->prefix, 0);
    if (a->verb == V_LS)
        rc = ls_page(a, &err);
    else if (a->verb == V_MB)
        rc = sky_blob_container_create(a->blob, a->container, on_simple, a, NULL, &err);
    else
        rc = sky_blob_container_delete(a->blob, a->container, on_simple, a, NULL, &err);
    if (rc != 0) {
        sky_cli_blob_print_err("start", &err);
        return SKY_EXIT_USAGE;
    }
    return 0;
}

/* ---- signals and the loop ---- */

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    sky_cli_blob_app *a = ud;
    (void)loop, (void)signum;
    if (a->stop)
        return;
    a->stop = 1;
    fprintf(stderr, "\nskyio blob: canceling...\n");
    if (a->folder) {
        sky_blob_folder_cancel(a->folder); /* every file reports ECANCELED */
        return;
    }
    sky_blob_client_free(a->blob); /* the request reports ECANCELED */
    a->blob = NULL;
}

/* Run the command on the loop until it is done: its exit code. */
static int run_verb(sky_cli_blob_app *a, char *arg0, char *arg1)
{
    sky_cli_storage_watch_start(&a->env, &a->done);
    (void)sky_loop_on_signal(a->env.loop, on_signal, a);
    int rc = start_verb(a, a->f.nargs > 0 ? arg0 : NULL, arg1);
    if (rc == 0 && !a->done)
        sky_loop_run(a->env.loop);
    sky_cli_storage_watch_stop(&a->env);
    return rc == 0 ? a->exit_code : rc;
}

static void cleanup(sky_cli_blob_app *a)
{
    sky_blob_folder_free(a->folder);
    sky_blob_client_free(a->blob);
    sky_cli_storage_env_drain(&a->env);
    sky_cli_storage_env_free(&a->env);
    free(a->prefix);
    free(a->marker);
}

int sky_cli_blob(int argc, char **argv)
{
    sky_cli_blob_app a;
    memset(&a, 0, sizeof(a));
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(sky_cli_blob_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SKY_EXIT_USAGE : SKY_EXIT_OK;
    }
    a.verb = sky_cli_blob_verb_of(argv[1]);
    if (a.verb < 0) {
        fprintf(stderr, "skyio blob: unknown command '%s'\n%s", argv[1], sky_cli_blob_usage);
        return SKY_EXIT_USAGE;
    }
    int rc = sky_cli_blob_parse_flags(&a.f, argc, argv);
    if (rc != 0)
        return rc > 0 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    rc = sky_cli_blob_check_args(a.verb, &a.f);
    if (rc != 0)
        return rc;
    sky_blob_folder_options_init(&a.fo);
    a.fo.parallel = a.f.parallel > 0 ? (int)(a.f.parallel > INT32_MAX ? INT32_MAX : a.f.parallel)
                                     : a.fo.parallel;
    a.fo.sync = !a.f.no_sync;
    a.fo.rollback_on_failure = a.f.rollback;
    a.fo.checksum = a.f.checksum == NULL || strcmp(a.f.checksum, "md5") == 0;
    a.tty = isatty(2);
    /* Room for a container and a blob name of 1,024 characters of 4 bytes each. */
    char arg0[ARG_MAX_BYTES], arg1[ARG_MAX_BYTES];
    snprintf(arg0, sizeof(arg0), "%s", a.f.nargs > 0 ? a.f.args[0] : "");
    snprintf(arg1, sizeof(arg1), "%s", a.f.nargs > 1 ? a.f.args[1] : "");
    rc = setup(&a, &a.f);
    if (rc == 0)
        rc = run_verb(&a, arg0, arg1);
    cleanup(&a);
    return rc;
}
