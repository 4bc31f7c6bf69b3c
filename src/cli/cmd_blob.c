/*
 * `skyio blob`: list, make and remove containers; put, get and rm blobs and whole folders.
 * The transfers are the library's (skyio/blob_transfer.h): this file parses the flags,
 * prints what the library reports and wires Ctrl-C.
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

#include "skyio/blob.h"
#include "skyio/blob_transfer.h"
#include "skyio/skyio.h"
#include "skyio/storage.h"
#include "cli.h"

static const char usage[] =
    "usage: skyio blob <command> [options] ARGS\n"
    "\n"
    "Azure Blob Storage from the command line, many files in parallel.\n"
    "\n"
    "commands:\n"
    "  ls [CONTAINER[/PREFIX]]       list containers, or blobs one level deep (-r: all)\n"
    "  mb CONTAINER                  make a container\n"
    "  rb CONTAINER                  remove a container and everything in it\n"
    "  put FILE CONTAINER[/NAME]     upload a file (NAME ending in / or absent: FILE's name)\n"
    "  put -r DIR CONTAINER[/PREFIX] upload every file under DIR; a rerun skips files whose\n"
    "                                size and MD5 match the blob (sync)\n"
    "  get CONTAINER/NAME PATH       download a blob (PATH a folder: into it)\n"
    "  get -r CONTAINER[/PREFIX] DIR download every blob under PREFIX into DIR (made once\n"
    "                                the listing worked). Refused, each with its reason: a\n"
    "                                name that is absolute or has an empty, '.' or '..'\n"
    "                                part, a part over NAME_MAX (255) bytes, and a path\n"
    "                                through a symbolic link inside DIR: links there are\n"
    "                                never followed, even those that stay inside DIR\n"
    "  rm CONTAINER/NAME             delete a blob (-r: every blob under the prefix)\n"
    "\n"
    "options:\n"
    "  -r, --recursive             folders and prefixes, as above\n"
    "  -j, --parallel N            files at once (default 8)\n"
    "      --concurrency N         blocks or ranges in flight per file (default 4)\n"
    "      --block-size BYTES      block and range size (default 4194304)\n"
    "      --rollback-on-failure   put -r: when any file fails, delete what this run uploaded\n"
    "      --no-sync               put -r: upload every file even when unchanged\n"
    "      --checksum MODE         md5 (default): put hashes each file and stores its MD5\n"
    "                              on the blob, and sends a Content-MD5 with every block,\n"
    "                              which the service checks; get checks the file against\n"
    "                              the blob's MD5 (when it has one) before keeping it.\n"
    "                              none: no hashing (the Python SDK's default; much less\n"
    "                              CPU for big files), except that put -r still hashes a\n"
    "                              file whose blob has the same size and an MD5, to know\n"
    "                              whether it changed\n"
    "      --json                  print the summary as one JSON object on stdout\n"
    "      --connection-string S   (default $AZURE_STORAGE_CONNECTION_STRING)\n"
    "      --account-name N        with --account-key or --sas\n"
    "      --account-key KEY       Shared Key\n"
    "      --sas TOKEN             a SAS token (account or container)\n"
    "      --endpoint URL          Blob endpoint (default https://N.blob.core.windows.net)\n"
    "      --login                 Entra ID: a token from the credential chain (environment,\n"
    "                              workload identity, managed identity, Azure CLI)\n"
    "\n"
    "Progress (files, bytes, bytes/s, ETA) goes to stderr when it is a terminal; failed\n"
    "files are listed at the end while the others finish. Ctrl-C cancels what is running.\n"
    "Blob names are at most 1,024 characters (Azure's limit). An endpoint that has never\n"
    "answered and cannot be reached (connection refused, unknown host, TLS failure) is not\n"
    "retried: the command stops at once, having transferred nothing.\n"
    "exit: 0 all done; 1 some files failed; 2 usage; 3 could not start (credentials,\n"
    "network, unreachable endpoint, missing container).\n";

enum verb { V_LS, V_MB, V_RB, V_PUT, V_GET, V_RM };

/* CONTAINER/NAME or a path, as given: a blob name of 1,024 characters of up to 4 bytes,
 * with its container, fits, and so does a local path. */
#define ARG_MAX_BYTES 8192

typedef struct blob_flags {
    int recursive, rollback, no_sync, login, json;
    const char *connstr, *name, *key, *sas, *endpoint, *checksum;
    long long parallel, block_size, concurrency;
    const char *args[3];
    int nargs;
} blob_flags;

typedef struct blob_app {
    sky_loop *loop;
    sky_http_client *http;
    sky_blob_client *blob;
    sky_credential *cred;
    sky_storage_account *acct;
    sky_blob_folder *folder; /* put, get and rm */
    sky_blob_folder_options fo;
    blob_flags f;
    int verb, tty;
    const char *container;
    char *prefix;
    char *marker; /* ls: the next page's; a copy, as long as the service made it */
    int stop;     /* Ctrl-C */
    int exit_code;
    int done;
    uv_prepare_t watch; /* stops the loop once done */
} blob_app;

/* ---- saying what failed ---- */

static void print_err(const char *what, const sky_error *err)
{
    char line[512];
    fprintf(stderr, "skyio blob: %s: %s\n", what, sky_error_format(err, line, sizeof(line)));
}

static void say_unreachable(const sky_error *err)
{
    char line[512];
    fprintf(stderr,
            "skyio blob: cannot reach the endpoint: %s\n"
            "skyio blob: stopped; nothing was transferred. Check the endpoint (connection "
            "string or --endpoint), the network or the TLS certificates, and run again.\n",
            sky_error_format(err, line, sizeof(line)));
}

/* A command of one request failed: say why and choose the exit code. */
static void one_request_failed(blob_app *a, const char *what, const sky_error *err)
{
    int code = err->code;
    if ((code == SKY_ECONNECT || code == SKY_ERESOLVE || code == SKY_ETLS) &&
        sky_blob_client_answered(a->blob) == 0)
        say_unreachable(err); /* never reached: the URL, the host or the certificates */
    else
        print_err(what, err);
    int start = code == SKY_EAUTH || code == SKY_ECONNECT || code == SKY_ERESOLVE ||
                code == SKY_ETLS || err->http_status == 401 || err->http_status == 403 ||
                strcmp(err->service_code, "ContainerNotFound") == 0;
    a->exit_code = start ? SKY_EXIT_START : SKY_EXIT_FAILED;
}

/* "container/rest" into the container (in place) and the rest (may be ""). */
static char *split_target(char *arg)
{
    char *slash = strchr(arg, '/');
    if (slash == NULL)
        return arg + strlen(arg);
    *slash = '\0';
    return slash + 1;
}

/* ---- progress and summary ---- */

static void human(double v, char *out, size_t len)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void on_progress(sky_blob_folder *fo, const sky_blob_folder_stats *st, void *ud)
{
    (void)fo, (void)ud;
    if (st->files_total == 0)
        return;
    double secs = (double)st->elapsed_ms / 1000.0;
    double rate = secs > 0 ? (double)st->bytes_done / secs : 0;
    char hb[32], ht[32], hr[32], eta[32] = "-";
    human((double)st->bytes_done, hb, sizeof(hb));
    human((double)st->bytes_total, ht, sizeof(ht));
    human(rate, hr, sizeof(hr));
    if (rate > 0 && st->bytes_total > st->bytes_done)
        snprintf(eta, sizeof(eta), "%.0fs", (double)(st->bytes_total - st->bytes_done) / rate);
    fprintf(stderr, "\r\033[K%zu/%zu files  %s / %s  %s/s  ETA %s", st->files_finished,
            st->files_total, hb, ht, hr, eta);
    fflush(stderr);
}

static void summary(blob_app *a, const sky_blob_folder_stats *st)
{
    double secs = (double)st->elapsed_ms / 1000.0;
    if (a->tty)
        fprintf(stderr, "\r\033[K");
    for (size_t i = 0; i < sky_blob_folder_count(a->folder); i++) {
        const sky_blob_folder_item *it = sky_blob_folder_item_at(a->folder, i);
        if (it->state == SKY_BLOB_ITEM_FAILED)
            fprintf(stderr, "failed: %s: %s\n", it->name, it->error);
    }
    const char *what = a->verb == V_PUT ? "uploaded" : a->verb == V_GET ? "downloaded" : "deleted";
    if (a->f.json) {
        printf("{\"%s\":%zu,\"skipped\":%zu,\"failed\":%zu,\"rolled_back\":%zu,\"bytes\":%" PRId64
               ",\"seconds\":%.3f}\n",
               what, st->done, st->skipped, st->failed, st->rolled_back, st->bytes_done, secs);
    } else {
        char hb[32];
        human((double)st->bytes_done, hb, sizeof(hb));
        fprintf(stderr, "%s %zu file(s), %s in %.1fs; %zu unchanged, %zu failed", what, st->done,
                hb, secs, st->skipped, st->failed);
        if (st->rollback)
            fprintf(stderr, "; rolled back %zu", st->rolled_back);
        fputc('\n', stderr);
    }
    if (st->failed > 0)
        a->exit_code = SKY_EXIT_FAILED;
}

/* ---- put, get and rm: a folder transfer of the library ---- */

static void on_run_done(sky_blob_folder *fo, const sky_blob_folder_stats *st, const sky_error *err,
                        void *ud)
{
    blob_app *a = ud;
    (void)fo;
    if (err && err->code != SKY_ECANCELED) { /* the endpoint was never reached */
        say_unreachable(err);
        a->exit_code = SKY_EXIT_START;
    } else {
        summary(a, st);
    }
    a->done = 1;
}

static void run(blob_app *a)
{
    sky_error err;
    sky_error_clear(&err);
    if (sky_blob_folder_run(a->folder, on_run_done, a, &err) != 0) {
        print_err("start", &err);
        a->exit_code = SKY_EXIT_START;
        a->done = 1;
    }
}

/* The plan failed: say so as each step always has, and choose the exit code. */
static void on_planned(sky_blob_folder *fo, int step, const sky_error *err, void *ud)
{
    blob_app *a = ud;
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
        one_request_failed(a, "list", err);
    } else if (step == SKY_BLOB_FOLDER_STEP_WALK && !canceled) {
        fprintf(stderr, "skyio blob: cannot walk %s\n", a->f.args[0]);
    } else if (!canceled) { /* the destination folder */
        fprintf(stderr, "skyio blob: %s\n", err->message);
    }
    a->done = 1;
}

/* A folder (@p name NULL: planned, then run) or one file or blob named on the command line. */
static int transfer(blob_app *a, int kind, const char *local, const char *name, int64_t size)
{
    sky_error err;
    sky_error_clear(&err);
    a->fo.kind = kind;
    a->fo.container = a->container;
    a->fo.prefix = a->prefix;
    a->fo.local = name ? NULL : local;
    a->fo.on_progress = a->tty ? on_progress : NULL;
    int rc = sky_blob_folder_new(a->blob, &a->fo, &a->folder, &err);
    if (rc == 0 && name == NULL)
        rc = sky_blob_folder_plan(a->folder, on_planned, a, &err);
    else if (rc == 0)
        rc = sky_blob_folder_add(a->folder, local, name, size, &err);
    if (rc != 0) {
        print_err("start", &err);
        return SKY_EXIT_START;
    }
    if (name)
        run(a);
    return 0;
}

/* ---- one-request commands: ls, mb, rb ---- */

static void on_ls(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud);

static int ls_page(blob_app *a, sky_error *err)
{
    sky_blob_list_options lo = {a->prefix, a->f.recursive ? NULL : "/", a->marker, 0};
    return a->container
               ? sky_blob_list(a->blob, a->container, &lo, on_ls, a, NULL, err)
               : sky_blob_container_list(a->blob, a->marker ? &lo : NULL, on_ls, a, NULL, err);
}

/* The next page, when there is one; its marker kept whole (a cut one lists the wrong page). */
static int ls_next(blob_app *a, const char *marker)
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
    print_err("ls", &err);
    return -1;
}

static void on_ls(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    blob_app *a = ud;
    (void)op;
    if (err) {
        one_request_failed(a, "ls", err);
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
    blob_app *a = ud;
    (void)op, (void)rep;
    if (err)
        one_request_failed(a, a->verb == V_MB ? "mb" : "rb", err);
    a->done = 1;
}

/* ---- flags ---- */

enum { FLAG_SWITCH, FLAG_STRING, FLAG_NUMBER };

static const struct flag_def {
    const char *name, *alias;
    int kind;
    size_t off;    /* of the field in blob_flags */
    long long min; /* a number's least value */
} flag_defs[] = {
    {"--recursive", "-r", FLAG_SWITCH, offsetof(blob_flags, recursive), 0},
    {"--rollback-on-failure", NULL, FLAG_SWITCH, offsetof(blob_flags, rollback), 0},
    {"--no-sync", NULL, FLAG_SWITCH, offsetof(blob_flags, no_sync), 0},
    {"--login", NULL, FLAG_SWITCH, offsetof(blob_flags, login), 0},
    {"--json", NULL, FLAG_SWITCH, offsetof(blob_flags, json), 0},
    {"--connection-string", NULL, FLAG_STRING, offsetof(blob_flags, connstr), 0},
    {"--account-name", NULL, FLAG_STRING, offsetof(blob_flags, name), 0},
    {"--account-key", NULL, FLAG_STRING, offsetof(blob_flags, key), 0},
    {"--sas", NULL, FLAG_STRING, offsetof(blob_flags, sas), 0},
    {"--endpoint", NULL, FLAG_STRING, offsetof(blob_flags, endpoint), 0},
    {"--checksum", NULL, FLAG_STRING, offsetof(blob_flags, checksum), 0},
    {"--parallel", "-j", FLAG_NUMBER, offsetof(blob_flags, parallel), 1},
    {"--concurrency", NULL, FLAG_NUMBER, offsetof(blob_flags, concurrency), 1},
    {"--block-size", NULL, FLAG_NUMBER, offsetof(blob_flags, block_size), 1024},
};

static const struct flag_def *flag_find(const char *o)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(flag_defs); i++)
        if (strcmp(o, flag_defs[i].name) == 0 ||
            (flag_defs[i].alias && strcmp(o, flag_defs[i].alias) == 0))
            return &flag_defs[i];
    return NULL;
}

/* Option @p o, with its value after '=' (@p eq) or in the next argument. 0 or -1. */
static int flag_set(blob_flags *f, const struct flag_def *d, const char *o, const char *eq,
                    int argc, char **argv, int *i)
{
    char *field = (char *)f + d->off;
    if (d->kind == FLAG_SWITCH && eq) {
        fprintf(stderr, "skyio blob: %s takes no value\n%s", o, usage);
        return -1;
    }
    if (d->kind == FLAG_SWITCH) {
        *(int *)(void *)field = 1;
        return 0;
    }
    if (!eq && *i + 1 >= argc) {
        fprintf(stderr, "skyio blob: %s needs a value\n%s", o, usage);
        return -1;
    }
    const char *v = eq ? eq + 1 : argv[++*i];
    if (d->kind == FLAG_STRING) {
        *(const char **)(void *)field = v;
        return 0;
    }
    return sky_cli_number_opt("blob", o, v, d->min, (long long *)(void *)field);
}

/* 0, 1 after --help, or -1 after saying what is wrong. */
static int parse_flags(blob_flags *f, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        /* "--opt=value": split it, so the value is never echoed (it may be a key or a SAS). */
        const char *eq = strncmp(o, "--", 2) == 0 ? strchr(o, '=') : NULL;
        char oname[64];
        if (eq) {
            snprintf(oname, sizeof(oname), "%.*s", (int)(eq - o), o);
            o = oname;
        }
        const struct flag_def *d = flag_find(o);
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(usage, stdout);
            return 1;
        } else if (d && flag_set(f, d, o, eq, argc, argv, &i) != 0) {
            return -1;
        } else if (d == NULL && o[0] == '-' && o[1] != '\0') {
            fprintf(stderr, "skyio blob: unknown option '%s'\n%s", o, usage);
            return -1;
        } else if (d == NULL && f->nargs < 3) {
            f->args[f->nargs++] = o;
        } else if (d == NULL) {
            fprintf(stderr, "skyio blob: too many arguments\n%s", usage);
            return -1;
        }
    }
    return 0;
}

static int verb_of(const char *s)
{
    static const char *const names[] = {"ls", "mb", "rb", "put", "get", "rm"};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* The number of arguments, --checksum and the arguments' lengths: 0 or an exit code. */
static int check_args(const blob_app *a, const blob_flags *f)
{
    static const int want_min[] = {0, 1, 1, 2, 2, 1}, want_max[] = {1, 1, 1, 2, 2, 1};
    if (f->nargs < want_min[a->verb] || f->nargs > want_max[a->verb]) {
        fprintf(stderr, "skyio blob: wrong number of arguments\n%s", usage);
        return SKY_EXIT_USAGE;
    }
    if (f->checksum && strcmp(f->checksum, "md5") != 0 && strcmp(f->checksum, "none") != 0) {
        fprintf(stderr, "skyio blob: --checksum: '%s' is not md5 or none\n", f->checksum);
        return SKY_EXIT_USAGE;
    }
    for (int i = 0; i < f->nargs && i < 2; i++)
        if (strlen(f->args[i]) >= ARG_MAX_BYTES) {
            fprintf(stderr,
                    "skyio blob: argument %d is %zu bytes: too long for a blob name or a path\n",
                    i + 1, strlen(f->args[i]));
            return SKY_EXIT_USAGE;
        }
    return 0;
}

/* ---- the account and the client ---- */

static int make_account(blob_app *a, const blob_flags *f, sky_error *err)
{
    if (f->connstr)
        return sky_storage_connstr_parse(sky_span_cstr(f->connstr), &a->acct, err);
    if (f->name || f->sas || f->endpoint) {
        char ep[512];
        if (f->endpoint == NULL && f->name == NULL)
            return sky_error_set(err, SKY_EINVAL, "--account-name or --endpoint is required");
        snprintf(ep, sizeof(ep), "%s", f->endpoint ? f->endpoint : "");
        if (f->endpoint == NULL)
            snprintf(ep, sizeof(ep), "https://%s.blob.core.windows.net", f->name);
        return sky_storage_account_new(f->name, f->key, ep, f->sas, &a->acct, err);
    }
    int rc = sky_storage_connstr_from_env(&a->acct, err);
    if (rc == SKY_ENOTFOUND) {
        sky_error_clear(err);
        return sky_error_set(err, SKY_EINVAL,
                             "no account: give --connection-string, --account-name with "
                             "--account-key or --sas, or set AZURE_STORAGE_CONNECTION_STRING");
    }
    return rc;
}

static int setup(blob_app *a, blob_flags *f)
{
    sky_error err;
    sky_error_clear(&err);
    sky_blob_client_options o;
    sky_blob_client_options_init(&o);
    a->loop = sky_loop_new();
    int rc = a->loop ? make_account(a, f, &err) : SKY_ENOMEM;
    if (rc == 0)
        rc = sky_http_client_new(sky_loop_uv(a->loop), NULL, &a->http);
    if (rc == 0) {
        sky_blob_client_options_from_account(&o, a->acct);
        if (f->block_size > 0)
            o.block_size = (size_t)f->block_size;
        if (f->concurrency > 0)
            o.concurrency = (int)f->concurrency;
        if (f->login)
            rc = sky_credential_default_new(sky_loop_uv(a->loop), a->http, NULL, &a->cred, &err);
        o.credential = a->cred;
        if (rc == 0)
            rc = sky_blob_client_new(sky_loop_uv(a->loop), a->http, &o, &a->blob, &err);
    }
    if (rc != 0) {
        if (err.code == 0)
            sky_error_set(&err, rc, "cannot set up the client");
        print_err("setup", &err);
        return rc == SKY_EINVAL && f->connstr == NULL && a->acct == NULL ? SKY_EXIT_USAGE
                                                                         : SKY_EXIT_START;
    }
    return 0;
}

/* ---- each command ---- */

static int put(blob_app *a, const char *src, char *target)
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

static int get(blob_app *a, char *source, const char *dst)
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

static int start_verb(blob_app *a, char *arg0, char *arg1)
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
        print_err("start", &err);
        return SKY_EXIT_USAGE;
    }
    return 0;
}

/* ---- signals and the loop ---- */

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    blob_app *a = ud;
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

static void on_idle_check(uv_prepare_t *p)
{
    blob_app *a = p->data;
    if (a->done)
        sky_loop_stop(a->loop);
}

/* Run the command on the loop until it is done: its exit code. */
static int run_verb(blob_app *a, char *arg0, char *arg1)
{
    uv_prepare_init(sky_loop_uv(a->loop), &a->watch);
    a->watch.data = a;
    uv_prepare_start(&a->watch, on_idle_check);
    (void)sky_loop_on_signal(a->loop, on_signal, a);
    int rc = start_verb(a, a->f.nargs > 0 ? arg0 : NULL, arg1);
    if (rc == 0 && !a->done)
        sky_loop_run(a->loop);
    uv_close((uv_handle_t *)&a->watch, NULL); /* closed by cleanup's last run */
    return rc == 0 ? a->exit_code : rc;
}

static void cleanup(blob_app *a)
{
    sky_blob_folder_free(a->folder);
    sky_blob_client_free(a->blob);
    sky_credential_free(a->cred);
    if (a->http)
        sky_http_client_free(a->http);
    if (a->loop) {
        (void)sky_loop_on_signal(a->loop, NULL, NULL);
        sky_loop_run(a->loop);
        sky_loop_free(a->loop);
    }
    free(a->prefix);
    free(a->marker);
    sky_storage_account_free(a->acct);
}

int sky_cli_blob(int argc, char **argv)
{
    blob_app a;
    memset(&a, 0, sizeof(a));
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SKY_EXIT_USAGE : SKY_EXIT_OK;
    }
    a.verb = verb_of(argv[1]);
    if (a.verb < 0) {
        fprintf(stderr, "skyio blob: unknown command '%s'\n%s", argv[1], usage);
        return SKY_EXIT_USAGE;
    }
    int rc = parse_flags(&a.f, argc, argv);
    if (rc != 0)
        return rc > 0 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    rc = check_args(&a, &a.f);
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
