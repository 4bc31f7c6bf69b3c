/* `skyio blob`: list, make and remove containers; put, get and rm blobs and whole folders. */
/* nftw() is an X/Open interface. */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "skyio/blob.h"
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
enum jstate { J_WAIT, J_RUN, J_DONE, J_FAILED, J_SKIPPED };

/* CONTAINER/NAME or a path, as given: a blob name of 1,024 characters of up to 4 bytes,
 * with its container, fits, and so does a local path. */
#define ARG_MAX_BYTES 8192

typedef struct blob_app blob_app;

typedef struct job {
    blob_app *app;
    char *local; /* the file on disk */
    char *name;  /* the blob name */
    int64_t size;
    int64_t moved;   /* bytes so far (from progress) */
    int guard_rc;    /* get -r: making the file's folders: 0, or SKY_EINVAL (refused), SKY_EIO */
    char *guard_why; /* ... and why not (from the thread pool; the loop takes it after) */
    int state;
    char md5[32]; /* base64 of the local file (put) */
    char *error;
    uv_work_t work;
} job;

typedef struct remote {
    char *name;
    int64_t size;
    char *md5;
} remote;

struct blob_app {
    sky_loop *loop;
    sky_http_client *http;
    sky_blob_client *blob;
    sky_credential *cred;
    sky_storage_account *acct;
    int verb, recursive, sync, rollback, json, tty;
    int checksum; /* hash files and blocks (--checksum md5) */
    long long parallel;
    sky_blob_transfer_options to;
    const char *container;
    char *prefix;
    const char *local_root; /* put -r source, get -r destination */
    char root_real[PATH_MAX];
    sky_error root_err; /* get -r: why the destination could not be made */
    job *jobs;
    size_t njobs, cap, next, running, finished;
    remote *remotes;
    size_t nremotes, rcap;
    char *marker; /* the next page's; a copy, as long as the service made it */
    int64_t bytes_total, bytes_done;
    uint64_t t0_ms;
    uv_timer_t tick;
    int tick_on;
    int stop;         /* Ctrl-C, or the endpoint cannot be reached */
    int unreachable;  /* the endpoint never answered: nothing was transferred */
    int exit_code;    /* a fatal error before any file */
    int rolling_back; /* the jobs now are deletes of what we uploaded */
    size_t rolled_back;
    void (*after_list)(blob_app *);
    int done;
};

/* ---- small helpers ---- */

static void print_err(const char *what, const sky_error *err)
{
    char line[512];
    fprintf(stderr, "skyio blob: %s: %s\n", what, sky_error_format(err, line, sizeof(line)));
}

static int exit_for(const sky_error *err)
{
    if (err->code == SKY_EAUTH || err->code == SKY_ECONNECT || err->code == SKY_ERESOLVE ||
        err->code == SKY_ETLS || err->http_status == 401 || err->http_status == 403 ||
        strcmp(err->service_code, "ContainerNotFound") == 0)
        return SKY_EXIT_START;
    return SKY_EXIT_FAILED;
}

/* A failure to connect, resolve or shake hands, and the endpoint has never answered. */
static int never_reached(const blob_app *a, const sky_error *err)
{
    return (err->code == SKY_ECONNECT || err->code == SKY_ERESOLVE || err->code == SKY_ETLS) &&
           sky_blob_client_answered(a->blob) == 0;
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
    if (never_reached(a, err))
        say_unreachable(err);
    else
        print_err(what, err);
    a->exit_code = exit_for(err);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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

static job *add_job(blob_app *a, const char *local, const char *name, int64_t size)
{
    if (a->njobs == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        job *n = realloc(a->jobs, cap * sizeof(*n));
        if (n == NULL)
            return NULL;
        a->jobs = n;
        a->cap = cap;
    }
    job *j = &a->jobs[a->njobs];
    memset(j, 0, sizeof(*j));
    j->app = a;
    j->local = local ? strdup(local) : NULL;
    j->name = strdup(name);
    j->size = size;
    if ((local && !j->local) || !j->name) {
        free(j->local);
        free(j->name);
        return NULL;
    }
    a->njobs++;
    a->bytes_total += size > 0 ? size : 0;
    return j;
}

static void job_fail(job *j, const char *fmt, ...) SKY_PRINTF(2, 3);

static void job_fail(job *j, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(j->error);
    j->error = strdup(msg);
    j->state = J_FAILED;
}

/* ---- progress ---- */

static void human(double v, char *out, size_t len)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int64_t bytes_now(const blob_app *a)
{
    int64_t b = a->bytes_done;
    for (size_t i = 0; i < a->njobs; i++)
        if (a->jobs[i].state == J_RUN)
            b += a->jobs[i].moved;
    return b;
}

static void draw_progress(blob_app *a)
{
    if (!a->tty || a->njobs == 0)
        return;
    double secs = (double)(now_ms() - a->t0_ms) / 1000.0;
    int64_t b = bytes_now(a);
    double rate = secs > 0 ? (double)b / secs : 0;
    char hb[32], ht[32], hr[32], eta[32] = "-";
    human((double)b, hb, sizeof(hb));
    human((double)a->bytes_total, ht, sizeof(ht));
    human(rate, hr, sizeof(hr));
    if (rate > 0 && a->bytes_total > b)
        snprintf(eta, sizeof(eta), "%.0fs", (double)(a->bytes_total - b) / rate);
    fprintf(stderr, "\r\033[K%zu/%zu files  %s / %s  %s/s  ETA %s", a->finished, a->njobs, hb, ht,
            hr, eta);
    fflush(stderr);
}

static void on_tick(uv_timer_t *t)
{
    draw_progress(t->data);
}

/* ---- the work queue: at most `parallel` files at once ---- */

static void pump(blob_app *a);
static void start_job(blob_app *a, job *j);

static void job_end(job *j)
{
    blob_app *a = j->app;
    a->running--;
    a->finished++;
    if (j->state == J_DONE || j->state == J_SKIPPED)
        a->bytes_done += j->size > 0 ? j->size : 0;
    pump(a);
}

static void on_progress(sky_blob_op *op, const sky_blob_transfer_stats *st, void *ud)
{
    job *j = ud;
    (void)op;
    j->moved = st->bytes_done;
}

/*
 * The endpoint was never reached: a wrong URL, host or certificate, not an outage. Every
 * other file would fail the same way, so stop them all (as Ctrl-C does) and report once.
 */
static void stop_unreachable(blob_app *a, const sky_error *err)
{
    if (a->unreachable)
        return;
    a->unreachable = 1;
    a->stop = 1;
    say_unreachable(err);
    sky_blob_client_free(a->blob); /* what still runs reports ECANCELED */
    a->blob = NULL;
}

static void on_job_done(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    job *j = ud;
    (void)op, (void)rep;
    if (err && !j->app->unreachable && never_reached(j->app, err))
        stop_unreachable(j->app, err);
    if (err) {
        char line[512];
        job_fail(j, "%s", sky_error_format(err, line, sizeof(line)));
    } else {
        j->state = J_DONE;
        if (rep->transfer && j->size <= 0)
            j->size = rep->transfer->bytes_total;
    }
    job_end(j);
}

static void finish(blob_app *a);
static void rollback_start(blob_app *a);

static void pump(blob_app *a)
{
    while (!a->stop && a->running < (size_t)a->parallel && a->next < a->njobs) {
        job *j = &a->jobs[a->next++];
        if (j->state == J_FAILED) { /* refused at planning */
            a->finished++;
            continue;
        }
        a->running++;
        j->state = J_RUN;
        start_job(a, j);
    }
    if (a->running > 0)
        return;
    if (a->next < a->njobs) { /* stopped: the rest never ran */
        for (size_t i = a->next; i < a->njobs; i++)
            job_fail(&a->jobs[i], "%s", "not started (canceled)");
        a->next = a->njobs;
    }
    if (a->verb == V_PUT && a->rollback && !a->rolling_back && !a->unreachable) {
        for (size_t i = 0; i < a->njobs; i++)
            if (a->jobs[i].state == J_FAILED) {
                rollback_start(a);
                return;
            }
    }
    finish(a);
}

/* ---- put ---- */

static void upload(blob_app *a, job *j);

static void md5_work(uv_work_t *w)
{
    job *j = w->data;
    FILE *fp = fopen(j->local, "rb");
    j->md5[0] = '\0';
    if (fp == NULL)
        return;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t got;
    if (ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1) {
        while ((got = fread(buf, 1, sizeof(buf), fp)) > 0)
            EVP_DigestUpdate(ctx, buf, got);
        if (!ferror(fp) && EVP_DigestFinal_ex(ctx, md, &n) == 1)
            EVP_EncodeBlock((unsigned char *)j->md5, md, (int)n);
    }
    EVP_MD_CTX_free(ctx);
    fclose(fp);
}

static int remote_cmp(const void *x, const void *y)
{
    return strcmp(((const remote *)x)->name, ((const remote *)y)->name);
}

static const remote *find_remote(const blob_app *a, const char *name)
{
    remote key = {(char *)(uintptr_t)name, 0, NULL};
    return a->nremotes ? bsearch(&key, a->remotes, a->nremotes, sizeof(remote), remote_cmp) : NULL;
}

static void md5_after(uv_work_t *w, int status)
{
    job *j = w->data;
    blob_app *a = j->app;
    if (status != 0 || j->md5[0] == '\0') {
        job_fail(j, "cannot read %s", j->local);
        job_end(j);
        return;
    }
    const remote *r = a->sync ? find_remote(a, j->name) : NULL;
    if (r && r->size == j->size && r->md5 && strcmp(r->md5, j->md5) == 0) {
        j->state = J_SKIPPED;
        job_end(j);
        return;
    }
    upload(a, j);
}

/*
 * Hash the file first only when that is the only way to know whether the blob already
 * holds it. Otherwise the upload hashes what it needs itself: a single put what it
 * reads, a block upload the whole file alongside its blocks (store_md5).
 */
static void start_put(blob_app *a, job *j)
{
    const remote *r = a->sync ? find_remote(a, j->name) : NULL;
    if (!(r && r->size == j->size && r->md5)) {
        upload(a, j);
        return;
    }
    j->work.data = j;
    if (uv_queue_work(sky_loop_uv(a->loop), &j->work, md5_work, md5_after) != 0) {
        job_fail(j, "%s", "cannot queue the hash");
        job_end(j);
    }
}

static void upload(blob_app *a, job *j)
{
    sky_blob_transfer_options to = a->to;
    /* A hash made for the sync check costs nothing more to store. */
    to.content_md5 = j->md5[0] ? j->md5 : NULL;
    to.no_block_md5 = !a->checksum;
    to.store_md5 = a->checksum;
    to.on_progress = on_progress;
    to.progress_user_data = j;
    sky_error err;
    sky_error_clear(&err);
    if (sky_blob_upload_file(a->blob, a->container, j->name, j->local, &to, on_job_done, j, NULL,
                             &err) != 0) {
        char line[512];
        job_fail(j, "%s", sky_error_format(&err, line, sizeof(line)));
        job_end(j);
    }
}

/* ---- get ---- */

/*
 * In the thread pool: make the file's folders under the destination one part at a time,
 * never through a symbolic link (sky_blob_make_parent_dirs).
 */
static void guard_work(uv_work_t *w)
{
    job *j = w->data;
    const char *rel = j->local + strlen(j->app->root_real) + 1;
    sky_error e;
    sky_error_clear(&e);
    j->guard_rc = sky_blob_make_parent_dirs(j->app->root_real, rel, &e);
    if (j->guard_rc != 0)
        j->guard_why = strdup(e.message);
}

static void download(blob_app *a, job *j)
{
    sky_blob_transfer_options to = a->to;
    to.verify_md5 = a->checksum;
    to.on_progress = on_progress;
    to.progress_user_data = j;
    sky_error err;
    sky_error_clear(&err);
    if (sky_blob_download_file(a->blob, a->container, j->name, j->local, &to, on_job_done, j, NULL,
                               &err) != 0) {
        char line[512];
        job_fail(j, "%s", sky_error_format(&err, line, sizeof(line)));
        job_end(j);
    }
}

static void guard_after(uv_work_t *w, int status)
{
    job *j = w->data;
    if (status != 0 || j->guard_rc != 0 || j->app->stop) {
        const char *why = j->guard_why ? j->guard_why : "cannot make the folders";
        if (status != 0 || j->app->stop)
            job_fail(j, "%s", "not started (canceled)");
        else
            job_fail(j, "%s%s", j->guard_rc == SKY_EINVAL ? "refused: " : "", why);
        free(j->guard_why);
        j->guard_why = NULL;
        job_end(j);
        return;
    }
    download(j->app, j);
}

static void start_get(blob_app *a, job *j)
{
    if (!a->recursive) {
        download(a, j);
        return;
    }
    j->work.data = j;
    if (uv_queue_work(sky_loop_uv(a->loop), &j->work, guard_work, guard_after) != 0) {
        job_fail(j, "%s", "cannot queue the folder check");
        job_end(j);
    }
}

static void start_job(blob_app *a, job *j)
{
    sky_error err;
    sky_error_clear(&err);
    int rc = 0;
    if (a->rolling_back || a->verb == V_RM) {
        rc = sky_blob_delete(a->blob, a->container, j->name, on_job_done, j, NULL, &err);
    } else if (a->verb == V_PUT) {
        start_put(a, j);
        return;
    } else {
        start_get(a, j);
        return;
    }
    if (rc != 0) {
        char line[512];
        job_fail(j, "%s", sky_error_format(&err, line, sizeof(line)));
        job_end(j);
    }
}

/* ---- rollback ---- */

static void rollback_start(blob_app *a)
{
    /* Keep the outcome of the uploads; the deletes are new jobs after them. */
    size_t n = a->njobs;
    a->rolling_back = 1;
    for (size_t i = 0; i < n; i++) {
        if (a->jobs[i].state != J_DONE)
            continue;
        char *name = strdup(a->jobs[i].name);
        job *j = name ? add_job(a, NULL, name, 0) : NULL;
        free(name);
        if (j == NULL)
            break;
        a->rolled_back++;
    }
    if (a->next == a->njobs) {
        finish(a);
        return;
    }
    pump(a);
}

/* ---- listing every page ---- */

/*
 * The listing matches the prefix as a string; a prefix names a folder, so "dir" must not
 * take "dirfoo/x". Names that do not start with the prefix at all (a misbehaving server)
 * stay in the list and are refused one by one in plan_get.
 */
static int in_folder(const blob_app *a, const char *name)
{
    size_t pl = strlen(a->prefix);
    if (pl == 0 || a->prefix[pl - 1] == '/' || strncmp(name, a->prefix, pl) != 0)
        return 1;
    return name[pl] == '/' || name[pl] == '\0';
}

static int add_remote(blob_app *a, const sky_blob_item *it)
{
    if (a->nremotes == a->rcap) {
        size_t cap = a->rcap ? a->rcap * 2 : 256;
        remote *n = realloc(a->remotes, cap * sizeof(*n));
        if (n == NULL)
            return -1;
        a->remotes = n;
        a->rcap = cap;
    }
    remote *r = &a->remotes[a->nremotes];
    r->name = strdup(it->name);
    r->size = it->size;
    r->md5 = it->content_md5 ? strdup(it->content_md5) : NULL;
    if (r->name == NULL) {
        free(r->md5);
        return -1;
    }
    a->nremotes++;
    return 0;
}

/* Keep the next page's marker whole: a cut one would list the wrong page. */
static int set_marker(blob_app *a, const char *marker)
{
    char *m = strdup(marker);
    if (m == NULL) {
        fprintf(stderr, "skyio blob: out of memory\n");
        return -1;
    }
    free(a->marker);
    a->marker = m;
    return 0;
}

static void list_page(blob_app *a);

static void on_list(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    blob_app *a = ud;
    (void)op;
    if (err) {
        /* A sync upload into a container that does not exist yet: nothing to compare. */
        one_request_failed(a, "list", err);
        a->done = 1;
        return;
    }
    for (size_t i = 0; i < rep->list->count; i++)
        if (!rep->list->items[i].is_prefix && in_folder(a, rep->list->items[i].name) &&
            add_remote(a, &rep->list->items[i]) != 0) {
            fprintf(stderr, "skyio blob: out of memory\n");
            a->exit_code = SKY_EXIT_START;
            a->done = 1;
            return;
        }
    if (rep->list->next_marker && !a->stop) {
        if (set_marker(a, rep->list->next_marker) != 0) {
            a->exit_code = SKY_EXIT_START;
            a->done = 1;
            return;
        }
        list_page(a);
        return;
    }
    if (a->nremotes > 0)
        qsort(a->remotes, a->nremotes, sizeof(remote), remote_cmp);
    a->after_list(a);
}

static void list_page(blob_app *a)
{
    sky_blob_list_options lo = {a->prefix, NULL, a->marker, 0};
    sky_error err;
    sky_error_clear(&err);
    if (sky_blob_list(a->blob, a->container, &lo, on_list, a, NULL, &err) != 0) {
        print_err("list", &err);
        a->exit_code = SKY_EXIT_START;
        a->done = 1;
    }
}

/* ---- planning ---- */

static blob_app *g_walk; /* nftw has no user pointer */

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    blob_app *a = g_walk;
    const char *rel = path + strlen(a->local_root);
    while (*rel == '/')
        rel++;
    char name[ARG_MAX_BYTES + PATH_MAX];
    size_t pl = strlen(a->prefix);
    snprintf(name, sizeof(name), "%s%s%s", a->prefix, pl && a->prefix[pl - 1] != '/' ? "/" : "",
             rel);
    return add_job(a, path, name, (int64_t)st->st_size) ? 0 : -1;
}

static void start_transfers(blob_app *a)
{
    a->t0_ms = now_ms();
    if (a->tty) {
        uv_timer_init(sky_loop_uv(a->loop), &a->tick);
        a->tick.data = a;
        uv_timer_start(&a->tick, on_tick, 200, 200);
        a->tick_on = 1;
    }
    pump(a);
}

/* A listed blob as a job of get -r: its file under the destination, or refused and why. */
static void plan_one_get(blob_app *a, const remote *r)
{
    char path[2 * PATH_MAX];
    size_t pl = strlen(a->prefix);
    if (strncmp(r->name, a->prefix, pl) != 0) {
        job *j = add_job(a, NULL, r->name, r->size);
        if (j)
            job_fail(j, "refused: '%s' is not under the prefix that was listed", r->name);
        return;
    }
    const char *rel = r->name + pl;
    if (pl && a->prefix[pl - 1] != '/' && *rel == '/')
        rel++;
    sky_error e;
    sky_error_clear(&e);
    int bad = sky_blob_relpath_check(rel, &e) != 0;
    if (!bad)
        snprintf(path, sizeof(path), "%s/%s", a->root_real, rel);
    job *j = add_job(a, bad ? NULL : path, r->name, r->size);
    if (j && bad)
        job_fail(j, "refused: %s", e.message);
}

/* In the thread pool: make the destination (only now that the listing worked) and find
 * where it really is; every file is checked against that. */
static void root_work(uv_work_t *w)
{
    blob_app *a = w->data;
    sky_error_clear(&a->root_err);
    if (mkdir(a->local_root, 0755) != 0 && errno != EEXIST)
        sky_error_set(&a->root_err, SKY_EIO, "%s: %s", a->local_root, strerror(errno));
    else if (realpath(a->local_root, a->root_real) == NULL)
        sky_error_set(&a->root_err, SKY_EIO, "%s: %s", a->local_root, strerror(errno));
}

static void root_after(uv_work_t *w, int status)
{
    blob_app *a = w->data;
    free(w);
    if (status != 0 || a->root_err.code != 0 || a->stop) {
        if (a->root_err.code != 0)
            fprintf(stderr, "skyio blob: %s\n", a->root_err.message);
        a->exit_code = a->root_err.code != 0 ? SKY_EXIT_USAGE : SKY_EXIT_FAILED;
        a->done = 1;
        return;
    }
    for (size_t i = 0; i < a->nremotes; i++)
        plan_one_get(a, &a->remotes[i]);
    start_transfers(a);
}

static void plan_get(blob_app *a)
{
    uv_work_t *w = malloc(sizeof(*w));
    if (w)
        w->data = a;
    if (w == NULL || uv_queue_work(sky_loop_uv(a->loop), w, root_work, root_after) != 0) {
        free(w);
        fprintf(stderr, "skyio blob: cannot queue making the destination folder\n");
        a->exit_code = SKY_EXIT_START;
        a->done = 1;
    }
}

static void plan_rm(blob_app *a)
{
    size_t pl = strlen(a->prefix);
    for (size_t i = 0; i < a->nremotes; i++) {
        const char *name = a->remotes[i].name;
        job *j = add_job(a, NULL, name, 0);
        if (j && strncmp(name, a->prefix, pl) != 0)
            job_fail(j, "refused: '%s' is not under the prefix that was listed", name);
    }
    start_transfers(a);
}

/* ---- one-request commands: ls, mb, rb ---- */

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
        if (set_marker(a, rep->list->next_marker) != 0) {
            a->exit_code = SKY_EXIT_FAILED;
            a->done = 1;
            return;
        }
        sky_blob_list_options lo = {a->prefix, a->recursive ? NULL : "/", a->marker, 0};
        sky_error e2;
        sky_error_clear(&e2);
        int rc = a->container ? sky_blob_list(a->blob, a->container, &lo, on_ls, a, NULL, &e2)
                              : sky_blob_container_list(a->blob, &lo, on_ls, a, NULL, &e2);
        if (rc == 0)
            return;
        print_err("ls", &e2);
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

/* ---- summary ---- */

static void summary(blob_app *a)
{
    size_t ok = 0, skipped = 0, failed = 0, undone = 0;
    size_t n = a->rolling_back ? a->njobs - a->rolled_back : a->njobs;
    for (size_t i = 0; i < n; i++) {
        ok += a->jobs[i].state == J_DONE;
        skipped += a->jobs[i].state == J_SKIPPED;
        failed += a->jobs[i].state == J_FAILED;
    }
    for (size_t i = n; i < a->njobs; i++)
        undone += a->jobs[i].state == J_DONE;
    double secs = (double)(now_ms() - a->t0_ms) / 1000.0;
    if (a->tty)
        fprintf(stderr, "\r\033[K");
    for (size_t i = 0; i < a->njobs; i++)
        if (a->jobs[i].state == J_FAILED)
            fprintf(stderr, "failed: %s: %s\n", a->jobs[i].name,
                    a->jobs[i].error ? a->jobs[i].error : "?");
    const char *what = a->verb == V_PUT ? "uploaded" : a->verb == V_GET ? "downloaded" : "deleted";
    if (a->json) {
        printf("{\"%s\":%zu,\"skipped\":%zu,\"failed\":%zu,\"rolled_back\":%zu,\"bytes\":%" PRId64
               ",\"seconds\":%.3f}\n",
               what, ok, skipped, failed, undone, a->bytes_done, secs);
    } else {
        char hb[32];
        human((double)a->bytes_done, hb, sizeof(hb));
        fprintf(stderr, "%s %zu file(s), %s in %.1fs; %zu unchanged, %zu failed", what, ok, hb,
                secs, skipped, failed);
        if (a->rolling_back)
            fprintf(stderr, "; rolled back %zu", undone);
        fputc('\n', stderr);
    }
    if (failed > 0)
        a->exit_code = SKY_EXIT_FAILED;
}

static void finish(blob_app *a)
{
    if (a->tick_on) {
        uv_timer_stop(&a->tick);
        uv_close((uv_handle_t *)&a->tick, NULL);
        a->tick_on = 0;
    }
    if (a->unreachable)
        a->exit_code = SKY_EXIT_START; /* said once, when it was found: nothing to sum up */
    else
        summary(a);
    a->done = 1;
}

/* ---- options ---- */

typedef struct blob_flags {
    const char *connstr, *name, *key, *sas, *endpoint, *checksum;
    int login;
    long long block_size, concurrency;
    const char *args[3];
    int nargs;
} blob_flags;

static int need_value(int i, int argc, const char *opt)
{
    if (i + 1 < argc)
        return 0;
    fprintf(stderr, "skyio blob: %s needs a value\n%s", opt, usage);
    return -1;
}

static int parse_flags(blob_app *a, blob_flags *f, int argc, char **argv)
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
        const char **str = NULL;
        long long *num = NULL;
        long long lo = 1;
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(usage, stdout);
            return 1;
        } else if (strcmp(o, "-r") == 0 || strcmp(o, "--recursive") == 0) {
            a->recursive = 1;
        } else if (strcmp(o, "--rollback-on-failure") == 0) {
            a->rollback = 1;
        } else if (strcmp(o, "--no-sync") == 0) {
            a->sync = 0;
        } else if (strcmp(o, "--login") == 0) {
            f->login = 1;
        } else if (strcmp(o, "--json") == 0) {
            a->json = 1;
        } else if (strcmp(o, "--connection-string") == 0) {
            str = &f->connstr;
        } else if (strcmp(o, "--account-name") == 0) {
            str = &f->name;
        } else if (strcmp(o, "--account-key") == 0) {
            str = &f->key;
        } else if (strcmp(o, "--sas") == 0) {
            str = &f->sas;
        } else if (strcmp(o, "--endpoint") == 0) {
            str = &f->endpoint;
        } else if (strcmp(o, "--checksum") == 0) {
            str = &f->checksum;
        } else if (strcmp(o, "-j") == 0 || strcmp(o, "--parallel") == 0) {
            num = &a->parallel;
        } else if (strcmp(o, "--concurrency") == 0) {
            num = &f->concurrency;
        } else if (strcmp(o, "--block-size") == 0) {
            num = &f->block_size;
            lo = 1024;
        } else if (o[0] == '-' && o[1] != '\0') {
            fprintf(stderr, "skyio blob: unknown option '%s'\n%s", o, usage);
            return -1;
        } else if (f->nargs < 3) {
            f->args[f->nargs++] = o;
        } else {
            fprintf(stderr, "skyio blob: too many arguments\n%s", usage);
            return -1;
        }
        if (eq && !str && !num) {
            fprintf(stderr, "skyio blob: %s takes no value\n%s", o, usage);
            return -1;
        }
        if (str || num) {
            if (!eq && need_value(i, argc, o) != 0)
                return -1;
            const char *v = eq ? eq + 1 : argv[++i];
            if (str)
                *str = v;
            else if (sky_cli_number_opt("blob", o, v, lo, num) != 0)
                return -1;
        }
    }
    return 0;
}

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

static int verb_of(const char *s)
{
    static const char *const names[] = {"ls", "mb", "rb", "put", "get", "rm"};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int check_args(const blob_app *a, const blob_flags *f)
{
    static const int want_min[] = {0, 1, 1, 2, 2, 1};
    static const int want_max[] = {1, 1, 1, 2, 2, 1};
    if (f->nargs < want_min[a->verb] || f->nargs > want_max[a->verb]) {
        fprintf(stderr, "skyio blob: wrong number of arguments\n%s", usage);
        return -1;
    }
    return 0;
}

/* ---- set up each command ---- */

static int setup_put(blob_app *a, const blob_flags *f, char *target)
{
    const char *src = f->args[0];
    char *rest = split_target(target);
    a->container = target;
    struct stat st;
    if (stat(src, &st) != 0) {
        fprintf(stderr, "skyio blob: %s: %s\n", src, strerror(errno));
        return SKY_EXIT_USAGE;
    }
    if (a->recursive) {
        if (!S_ISDIR(st.st_mode)) {
            fprintf(stderr, "skyio blob: put -r needs a folder, %s is not one\n", src);
            return SKY_EXIT_USAGE;
        }
        a->prefix = strdup(rest);
        a->local_root = src;
        g_walk = a;
        if (a->prefix == NULL || nftw(src, walk_one, 32, FTW_PHYS) != 0) {
            fprintf(stderr, "skyio blob: cannot walk %s\n", src);
            return SKY_EXIT_USAGE;
        }
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "skyio blob: %s is not a file (use -r for a folder)\n", src);
        return SKY_EXIT_USAGE;
    }
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
    a->prefix = strdup("");
    a->sync = 0;
    return add_job(a, src, name, (int64_t)st.st_size) && a->prefix ? 0 : SKY_EXIT_START;
}

/* get -r DIR: DIR is made only once the listing worked, so a failed start leaves nothing. */
static int check_get_dir(const char *dst)
{
    struct stat st;
    if (stat(dst, &st) == 0 && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "skyio blob: %s exists and is not a folder\n", dst);
        return SKY_EXIT_USAGE;
    }
    return 0;
}

static int setup_get(blob_app *a, const blob_flags *f, char *source)
{
    const char *dst = f->args[1];
    char *rest = split_target(source);
    a->container = source;
    a->prefix = strdup(rest);
    if (a->prefix == NULL)
        return SKY_EXIT_START;
    if (a->recursive) {
        a->local_root = dst;
        return check_get_dir(dst);
    }
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
    struct stat st;
    char path[2 * PATH_MAX];
    const char *base = strrchr(rest, '/') ? strrchr(rest, '/') + 1 : rest;
    if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* Into a folder under the blob's own last part: that part must be a file name. */
        if (sky_blob_relpath_check(base, &e) != 0) {
            fprintf(stderr,
                    "skyio blob: refused: blob '%s' cannot be saved into %s under its own name: "
                    "%s\n",
                    rest, dst, base[0] ? e.message : "it ends with '/' (a folder: use get -r)");
            return SKY_EXIT_USAGE;
        }
        snprintf(path, sizeof(path), "%s/%s", dst, base);
    } else {
        snprintf(path, sizeof(path), "%s", dst);
    }
    return add_job(a, path, rest, 0) ? 0 : SKY_EXIT_START;
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

static int start_verb(blob_app *a, blob_flags *f, char *arg0, char *arg1)
{
    sky_error err;
    sky_error_clear(&err);
    int rc = 0;
    switch (a->verb) {
    case V_LS: {
        if (arg0) {
            a->prefix = strdup(split_target(arg0));
            a->container = arg0;
        }
        sky_blob_list_options lo = {a->prefix, a->recursive ? NULL : "/", NULL, 0};
        rc = a->container ? sky_blob_list(a->blob, a->container, &lo, on_ls, a, NULL, &err)
                          : sky_blob_container_list(a->blob, NULL, on_ls, a, NULL, &err);
        break;
    }
    case V_MB:
        rc = sky_blob_container_create(a->blob, arg0, on_simple, a, NULL, &err);
        break;
    case V_RB:
        rc = sky_blob_container_delete(a->blob, arg0, on_simple, a, NULL, &err);
        break;
    case V_PUT:
        rc = setup_put(a, f, arg1);
        if (rc != 0)
            return rc;
        if (a->recursive && a->sync) {
            a->after_list = start_transfers;
            list_page(a);
        } else {
            start_transfers(a);
        }
        return 0;
    case V_GET:
        rc = setup_get(a, f, arg0);
        if (rc != 0)
            return rc;
        if (a->recursive) {
            a->after_list = plan_get;
            list_page(a);
        } else {
            start_transfers(a);
        }
        return 0;
    case V_RM:
        a->container = arg0;
        a->prefix = strdup(split_target(arg0));
        if (a->recursive) {
            a->after_list = plan_rm;
            list_page(a);
        } else {
            add_job(a, NULL, a->prefix, 0);
            start_transfers(a);
        }
        return 0;
    }
    if (rc != 0) {
        print_err("start", &err);
        return SKY_EXIT_USAGE;
    }
    return 0;
}

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    blob_app *a = ud;
    (void)loop, (void)signum;
    if (a->stop)
        return;
    a->stop = 1;
    fprintf(stderr, "\nskyio blob: canceling...\n");
    sky_blob_client_free(a->blob); /* every transfer reports ECANCELED */
    a->blob = NULL;
}

static void cleanup(blob_app *a)
{
    sky_blob_client_free(a->blob);
    sky_credential_free(a->cred);
    if (a->http)
        sky_http_client_free(a->http);
    if (a->loop) {
        (void)sky_loop_on_signal(a->loop, NULL, NULL);
        sky_loop_run(a->loop);
        sky_loop_free(a->loop);
    }
    for (size_t i = 0; i < a->njobs; i++) {
        free(a->jobs[i].local);
        free(a->jobs[i].name);
        free(a->jobs[i].error);
    }
    free(a->jobs);
    for (size_t i = 0; i < a->nremotes; i++) {
        free(a->remotes[i].name);
        free(a->remotes[i].md5);
    }
    free(a->remotes);
    free(a->prefix);
    free(a->marker);
    sky_storage_account_free(a->acct);
}

static void on_idle_check(uv_prepare_t *p)
{
    blob_app *a = p->data;
    if (a->done)
        sky_loop_stop(a->loop);
}

int sky_cli_blob(int argc, char **argv)
{
    blob_app a;
    blob_flags f;
    memset(&a, 0, sizeof(a));
    memset(&f, 0, sizeof(f));
    a.parallel = 8;
    a.sync = 1;
    a.checksum = 1;
    a.tty = isatty(2);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SKY_EXIT_USAGE : SKY_EXIT_OK;
    }
    a.verb = verb_of(argv[1]);
    if (a.verb < 0) {
        fprintf(stderr, "skyio blob: unknown command '%s'\n%s", argv[1], usage);
        return SKY_EXIT_USAGE;
    }
    int rc = parse_flags(&a, &f, argc, argv);
    if (rc != 0)
        return rc > 0 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    if (check_args(&a, &f) != 0)
        return SKY_EXIT_USAGE;
    if (f.checksum && strcmp(f.checksum, "md5") != 0 && strcmp(f.checksum, "none") != 0) {
        fprintf(stderr, "skyio blob: --checksum: '%s' is not md5 or none\n", f.checksum);
        return SKY_EXIT_USAGE;
    }
    a.checksum = f.checksum == NULL || strcmp(f.checksum, "md5") == 0;
    /* Room for a container and a blob name of 1,024 characters of 4 bytes each. */
    char arg0[ARG_MAX_BYTES] = "", arg1[ARG_MAX_BYTES] = "";
    for (int i = 0; i < f.nargs && i < 2; i++)
        if (strlen(f.args[i]) >= ARG_MAX_BYTES) {
            fprintf(stderr,
                    "skyio blob: argument %d is %zu bytes: too long for a blob name or a path\n",
                    i + 1, strlen(f.args[i]));
            return SKY_EXIT_USAGE;
        }
    snprintf(arg0, sizeof(arg0), "%s", f.nargs > 0 ? f.args[0] : "");
    snprintf(arg1, sizeof(arg1), "%s", f.nargs > 1 ? f.args[1] : "");
    rc = setup(&a, &f);
    if (rc == 0) {
        uv_prepare_t watch;
        uv_prepare_init(sky_loop_uv(a.loop), &watch);
        watch.data = &a;
        uv_prepare_start(&watch, on_idle_check);
        (void)sky_loop_on_signal(a.loop, on_signal, &a);
        rc = start_verb(&a, &f, f.nargs > 0 ? arg0 : NULL, arg1);
        if (rc == 0 && !a.done)
            sky_loop_run(a.loop);
        uv_close((uv_handle_t *)&watch, NULL);
        if (rc == 0)
            rc = a.exit_code;
    }
    cleanup(&a);
    return rc;
}
