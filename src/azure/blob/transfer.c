/*
 * Folder transfers, the handle: options, items, the public calls, references and freeing.
 * The plan is in transfer_plan.c, the run in transfer_run.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer.h"

void sky_blob_folder_options_init(sky_blob_folder_options *o)
{
    memset(o, 0, sizeof(*o));
    o->kind = SKY_BLOB_FOLDER_UPLOAD;
    o->prefix = "";
    o->parallel = 8;
    o->sync = 1;
    o->checksum = 1;
    o->progress_interval_ms = 200;
}

/* ---- references: the memory goes once the user freed it and nothing is in flight ---- */

static void on_closed(uv_handle_t *h)
{
    sky_blob_folder *f = h->data;
    if (--f->closing > 0)
        return;
    for (size_t i = 0; i < f->njobs; i++) {
        sky__folder_job *j = f->jobs[i];
        free(j->name);
        free(j->local);
        free(j->error);
        free(j->guard_why);
        free(j);
    }
    free(f->jobs);
    for (size_t i = 0; i < f->nremotes; i++) {
        free(f->remotes[i].name);
        free(f->remotes[i].md5);
    }
    free(f->remotes);
    free(f->marker);
    free(f->container);
    free(f->prefix);
    free(f->local);
    free(f);
}

static void release(sky_blob_folder *f)
{
    f->closing = 2;
    uv_close((uv_handle_t *)&f->kick, on_closed);
    uv_close((uv_handle_t *)&f->tick, on_closed);
}

void sky__folder_ref(sky_blob_folder *f)
{
    f->refs++;
}

void sky__folder_unref(sky_blob_folder *f)
{
    if (--f->refs == 0 && f->freeing && f->closing == 0)
        release(f);
}

/* ---- new ---- */

static int copy_strings(sky_blob_folder *f, const sky_blob_folder_options *o)
{
    f->container = strdup(o->container);
    f->prefix = strdup(o->prefix ? o->prefix : "");
    f->local = o->local ? strdup(o->local) : NULL;
    f->o.container = f->container;
    f->o.prefix = f->prefix;
    f->o.local = f->local;
    return f->container && f->prefix && (o->local == NULL || f->local) ? 0 : SKY_ENOMEM;
}

static int check_options(const sky_blob_folder_options *o, sky_error *err)
{
    if (o == NULL || o->container == NULL || o->container[0] == '\0')
        return sky_error_set(err, SKY_EINVAL, "folder transfer: a container is required");
    if (o->kind < SKY_BLOB_FOLDER_UPLOAD || o->kind > SKY_BLOB_FOLDER_DELETE)
        return sky_error_set(err, SKY_EINVAL, "folder transfer: unknown kind %d", o->kind);
    if (o->parallel < 1)
        return sky_error_set(err, SKY_EINVAL, "folder transfer: parallel must be at least 1");
    return 0;
}

int sky_blob_folder_new(sky_blob_client *c, const sky_blob_folder_options *o, sky_blob_folder **out,
                        sky_error *err)
{
    *out = NULL;
    if (c == NULL)
        return sky_error_set(err, SKY_EINVAL, "folder transfer: a client is required");
    int rc = check_options(o, err);
    if (rc != 0)
        return rc;
    sky_blob_folder *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return sky_error_set(err, SKY_ENOMEM, "folder transfer: out of memory");
    f->c = c;
    f->loop = c->loop;
    f->o = *o;
    if (f->o.progress_interval_ms == 0)
        f->o.progress_interval_ms = 200;
    if (copy_strings(f, o) != 0) {
        free(f->container);
        free(f->prefix);
        free(f->local);
        free(f);
        return sky_error_set(err, SKY_ENOMEM, "folder transfer: out of memory");
    }
    uv_timer_init(f->loop, &f->kick);
    uv_timer_init(f->loop, &f->tick);
    f->kick.data = f;
    f->tick.data = f;
    *out = f;
    return 0;
}

/* ---- jobs and remotes ---- */

static int grow_jobs(sky_blob_folder *f)
{
    if (f->njobs < f->cap)
        return 0;
    size_t cap = f->cap ? f->cap * 2 : 64;
    sky__folder_job **n = realloc(f->jobs, cap * sizeof(*n));
    if (n == NULL)
        return -1;
    f->jobs = n;
    f->cap = cap;
    return 0;
}

sky__folder_job *sky__folder_take_job(sky_blob_folder *f, char *local, char *name, int64_t size)
{
    sky__folder_job *j = grow_jobs(f) == 0 ? calloc(1, sizeof(*j)) : NULL;
    if (j == NULL) {
        free(local);
        free(name);
        return NULL;
    }
    j->f = f;
    j->local = local;
    j->name = name;
    j->item.name = name;
    j->item.local = local;
    j->item.size = size;
    f->jobs[f->njobs++] = j;
    f->bytes_total += size > 0 ? size : 0;
    return j;
}

sky__folder_job *sky__folder_add_job(sky_blob_folder *f, const char *local, const char *name,
                                     int64_t size)
{
    char *l = local ? strdup(local) : NULL;
    char *n = strdup(name);
    if ((local && l == NULL) || n == NULL) {
        free(l);
        free(n);
        return NULL;
    }
    return sky__folder_take_job(f, l, n, size);
}

void sky__folder_job_fail(sky__folder_job *j, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(j->error);
    j->error = strdup(msg);
    j->item.error = j->error ? j->error : "out of memory";
    j->item.error_code = code;
    j->item.state = SKY_BLOB_ITEM_FAILED;
}

static int remote_cmp(const void *x, const void *y)
{
    return strcmp(((const sky__folder_remote *)x)->name, ((const sky__folder_remote *)y)->name);
}

void sky__folder_sort_remotes(sky_blob_folder *f)
{
    if (f->nremotes > 0)
        qsort(f->remotes, f->nremotes, sizeof(*f->remotes), remote_cmp);
}

const sky__folder_remote *sky__folder_find_remote(const sky_blob_folder *f, const char *name)
{
    sky__folder_remote key = {(char *)(uintptr_t)name, 0, NULL};
    if (f->nremotes == 0)
        return NULL;
    return bsearch(&key, f->remotes, f->nremotes, sizeof(key), remote_cmp);
}

/* ---- the public calls ---- */

/* A plan or run begins from the loop, so that no callback ever runs inside the call. */
static void on_kick(uv_timer_t *t)
{
    sky_blob_folder *f = t->data;
    if (f->phase == SKY__FOLDER_PLANNING)
        sky__folder_plan_start(f);
    else
        sky__folder_pump(f);
    sky__folder_unref(f);
}

int sky_blob_folder_add(sky_blob_folder *f, const char *local, const char *name, int64_t size,
                        sky_error *err)
{
    if (f->phase == SKY__FOLDER_PLANNING || f->phase >= SKY__FOLDER_RUNNING)
        return sky_error_set(err, SKY_ESTATE, "folder transfer: files are added before the run");
    if (name == NULL)
        return sky_error_set(err, SKY_EINVAL, "folder transfer: a blob name is required");
    if (sky__folder_add_job(f, local, name, size) == NULL)
        return sky_error_set(err, SKY_ENOMEM, "folder transfer: out of memory");
    return 0;
}

int sky_blob_folder_plan(sky_blob_folder *f, sky_blob_folder_plan_cb cb, void *user_data,
                         sky_error *err)
{
    if (f->phase != SKY__FOLDER_IDLE || f->freeing)
        return sky_error_set(err, SKY_ESTATE, "folder transfer: planned once, before the run");
    if (f->local == NULL && f->o.kind != SKY_BLOB_FOLDER_DELETE)
        return sky_error_set(err, SKY_EINVAL, "folder transfer: a local folder is required");
    f->phase = SKY__FOLDER_PLANNING;
    f->plan_cb = cb;
    f->user_data = user_data;
    sky__folder_ref(f); /* the plan's report */
    sky__folder_ref(f); /* the kick */
    uv_timer_start(&f->kick, on_kick, 0, 0);
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    sky_blob_folder *f = t->data;
    sky_blob_folder_stats st;
    sky_blob_folder_stats_get(f, &st);
    sky__folder_ref(f);
    f->o.on_progress(f, &st, f->o.progress_user_data);
    sky__folder_unref(f);
}

int sky_blob_folder_run(sky_blob_folder *f, sky_blob_folder_done_cb cb, void *user_data,
                        sky_error *err)
{
    if (f->phase != SKY__FOLDER_IDLE && f->phase != SKY__FOLDER_PLANNED)
        return sky_error_set(err, SKY_ESTATE,
                             "folder transfer: run once, after a plan that worked or none");
    if (f->freeing)
        return sky_error_set(err, SKY_ESTATE, "folder transfer: being freed");
    f->phase = SKY__FOLDER_RUNNING;
    f->done_cb = cb;
    f->user_data = user_data;
    f->t0_ms = sky_clock_now_ms(f->o.clock);
    sky__folder_ref(f); /* the run's report */
    sky__folder_ref(f); /* the kick */
    uv_timer_start(&f->kick, on_kick, 0, 0);
    if (f->o.on_progress)
        uv_timer_start(&f->tick, on_tick, f->o.progress_interval_ms, f->o.progress_interval_ms);
    return 0;
}

void sky_blob_folder_cancel(sky_blob_folder *f)
{
    if (f == NULL || f->canceled)
        return;
    f->canceled = 1;
    f->stop = 1;
    if (f->list_op)
        sky_blob_op_cancel(f->list_op);
    sky__folder_cancel_running(f);
}

void sky_blob_folder_free(sky_blob_folder *f)
{
    if (f == NULL || f->freeing)
        return;
    f->freeing = 1;
    sky_blob_folder_cancel(f);
    if (f->refs == 0)
        release(f);
}

size_t sky_blob_folder_count(const sky_blob_folder *f)
{
    return f->njobs;
}

const sky_blob_folder_item *sky_blob_folder_item_at(const sky_blob_folder *f, size_t i)
{
    return i < f->njobs ? &f->jobs[i]->item : NULL;
}

void sky_blob_folder_stats_get(const sky_blob_folder *f, sky_blob_folder_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->files_total = f->njobs;
    out->files_finished = f->finished;
    out->bytes_total = f->bytes_total;
    out->bytes_done = f->bytes_done;
    out->rollback = f->rolling_back;
    for (size_t i = 0; i < f->njobs; i++) {
        const sky__folder_job *j = f->jobs[i];
        int st = j->item.state;
        if (st == SKY_BLOB_ITEM_RUNNING)
            out->bytes_done += j->moved;
        if (j->item.rollback) {
            out->rolled_back += st == SKY_BLOB_ITEM_DONE;
            continue;
        }
        out->done += st == SKY_BLOB_ITEM_DONE;
        out->skipped += st == SKY_BLOB_ITEM_SKIPPED;
        out->failed += st == SKY_BLOB_ITEM_FAILED;
    }
    if (f->phase == SKY__FOLDER_RUNNING)
        out->elapsed_ms = sky_clock_now_ms(f->o.clock) - f->t0_ms;
    else if (f->phase == SKY__FOLDER_OVER)
        out->elapsed_ms = f->t1_ms - f->t0_ms;
}
