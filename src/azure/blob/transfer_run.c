/*
 * Folder transfers, the run: a work queue of at most `parallel` files at once; an upload
 * skips a file the blob already holds, a download makes the file's folders first, and a
 * failed upload may roll back what the run sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer.h"

static void start_job(sky_blob_folder *f, sky__folder_job *j);

static void job_end(sky__folder_job *j)
{
    sky_blob_folder *f = j->f;
    f->running--;
    f->finished++;
    if (j->item.state == SKY_BLOB_ITEM_DONE || j->item.state == SKY_BLOB_ITEM_SKIPPED)
        f->bytes_done += j->item.size > 0 ? j->item.size : 0;
    sky__folder_pump(f);
}

static void job_fail_err(sky__folder_job *j, const sky_error *err)
{
    char line[512];
    sky__folder_job_fail(j, err->code, "%s", sky_error_format(err, line, sizeof(line)));
}

static void job_canceled(sky__folder_job *j)
{
    sky__folder_job_fail(j, SKY_ECANCELED, "%s", "not started (canceled)");
}

/* A failure to connect, resolve or shake hands, and the endpoint has never answered. */
static int never_reached(const sky_blob_folder *f, const sky_error *err)
{
    return (err->code == SKY_ECONNECT || err->code == SKY_ERESOLVE || err->code == SKY_ETLS) &&
           sky_blob_client_answered(f->c) == 0;
}

void sky__folder_cancel_running(sky_blob_folder *f)
{
    for (size_t i = 0; i < f->njobs; i++)
        if (f->jobs[i]->op)
            sky_blob_op_cancel(f->jobs[i]->op);
}

/*
 * The endpoint was never reached: a wrong URL, host or certificate, not an outage. Every
 * other file would fail the same way, so stop them all and report this once.
 */
static void stop_unreachable(sky_blob_folder *f, const sky_error *err)
{
    f->unreachable = 1;
    f->stop = 1;
    f->stop_err = *err;
    sky__folder_cancel_running(f);
}

static void on_progress(sky_blob_op *op, const sky_blob_transfer_stats *st, void *ud)
{
    sky__folder_job *j = ud;
    (void)op;
    j->moved = st->bytes_done;
}

static void on_job_done(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    sky__folder_job *j = ud;
    sky_blob_folder *f = j->f;
    (void)op;
    j->op = NULL;
    if (err && !f->unreachable && never_reached(f, err))
        stop_unreachable(f, err);
    if (err) {
        job_fail_err(j, err);
    } else {
        j->item.state = SKY_BLOB_ITEM_DONE;
        if (rep->transfer && j->item.size <= 0)
            j->item.size = rep->transfer->bytes_total;
    }
    job_end(j);
    sky__folder_unref(f);
}

/* A call that would start an operation said no at once: the file failed, with why. */
static void started(sky__folder_job *j, int rc, const sky_error *err)
{
    if (rc == 0)
        return;
    job_fail_err(j, err);
    sky__folder_unref(j->f);
    job_end(j);
}

static void transfer_options(const sky_blob_folder *f, sky__folder_job *j,
                             sky_blob_transfer_options *to)
{
    sky_blob_transfer_options_init(to);
    to->block_size = f->o.block_size;
    to->concurrency = f->o.concurrency;
    to->on_progress = on_progress;
    to->progress_user_data = j;
}

/* ---- upload ---- */

static void upload(sky_blob_folder *f, sky__folder_job *j)
{
    sky_blob_transfer_options to;
    transfer_options(f, j, &to);
    /* A hash made for the sync check costs nothing more to store. */
    to.content_md5 = j->md5[0] ? j->md5 : NULL;
    to.no_block_md5 = !f->o.checksum;
    to.store_md5 = f->o.checksum;
    sky_error err;
    sky_error_clear(&err);
    sky__folder_ref(f);
    started(j,
            sky_blob_upload_file(f->c, f->container, j->name, j->local, &to, on_job_done, j, &j->op,
                                 &err),
            &err);
}

/* In the thread pool: the file's MD5, to compare with the blob's. */
static void md5_work(uv_work_t *w)
{
    sky__folder_job *j = w->data;
    if (sky__blob_md5_path(j->local, j->md5) != 0)
        j->md5[0] = '\0';
}

static void md5_after(uv_work_t *w, int status)
{
    sky__folder_job *j = w->data;
    sky_blob_folder *f = j->f;
    const sky__folder_remote *r = sky__folder_find_remote(f, j->name);
    if (status != 0 || f->stop) {
        job_canceled(j);
        job_end(j);
    } else if (j->md5[0] == '\0') {
        sky__folder_job_fail(j, SKY_EIO, "cannot read %s", j->local);
        job_end(j);
    } else if (r && r->size == j->item.size && r->md5 && strcmp(r->md5, j->md5) == 0) {
        j->item.state = SKY_BLOB_ITEM_SKIPPED;
        job_end(j);
    } else {
        upload(f, j);
    }
    sky__folder_unref(f);
}

/*
 * Hash the file first only when that is the only way to know whether the blob already
 * holds it. Otherwise the upload hashes what it needs itself: a single put what it
 * reads, a block upload the whole file alongside its blocks (store_md5).
 */
static void start_put(sky_blob_folder *f, sky__folder_job *j)
{
    const sky__folder_remote *r = f->o.sync ? sky__folder_find_remote(f, j->name) : NULL;
    if (!(r && r->size == j->item.size && r->md5)) {
        upload(f, j);
        return;
    }
    j->work.data = j;
    sky__folder_ref(f);
    if (uv_queue_work(f->loop, &j->work, md5_work, md5_after) != 0) {
        sky__folder_job_fail(j, SKY_EIO, "%s", "cannot queue the hash");
        sky__folder_unref(f);
        job_end(j);
    }
}

/* ---- download ---- */

static void download(sky_blob_folder *f, sky__folder_job *j)
{
    sky_blob_transfer_options to;
    transfer_options(f, j, &to);
    to.verify_md5 = f->o.checksum;
    sky_error err;
    sky_error_clear(&err);
    sky__folder_ref(f);
    started(j,
            sky_blob_download_file(f->c, f->container, j->name, j->local, &to, on_job_done, j,
                                   &j->op, &err),
            &err);
}

/*
 * In the thread pool: make the file's folders under the destination one part at a time,
 * never through a symbolic link (sky_blob_make_parent_dirs).
 */
static void guard_work(uv_work_t *w)
{
    sky__folder_job *j = w->data;
    sky_error e;
    sky_error_clear(&e);
    j->guard_rc = sky_blob_make_parent_dirs(j->f->root_real, j->local + j->rel_off, &e);
    if (j->guard_rc != 0)
        j->guard_why = strdup(e.message);
}

static void guard_after(uv_work_t *w, int status)
{
    sky__folder_job *j = w->data;
    sky_blob_folder *f = j->f;
    if (status != 0 || f->stop) {
        job_canceled(j);
        job_end(j);
    } else if (j->guard_rc != 0) {
        const char *why = j->guard_why ? j->guard_why : "cannot make the folders";
        sky__folder_job_fail(j, j->guard_rc, "%s%s", j->guard_rc == SKY_EINVAL ? "refused: " : "",
                             why);
        job_end(j);
    } else {
        download(f, j);
    }
    free(j->guard_why);
    j->guard_why = NULL;
    sky__folder_unref(f);
}

/* A planned file has its folders made first; one added by hand goes where it was told. */
static void start_get(sky_blob_folder *f, sky__folder_job *j)
{
    if (j->rel_off == 0) {
        download(f, j);
        return;
    }
    j->work.data = j;
    sky__folder_ref(f);
    if (uv_queue_work(f->loop, &j->work, guard_work, guard_after) != 0) {
        sky__folder_job_fail(j, SKY_EIO, "%s", "cannot queue the folder check");
        sky__folder_unref(f);
        job_end(j);
    }
}

/* ---- the queue ---- */

static void start_delete(sky_blob_folder *f, sky__folder_job *j)
{
    sky_error err;
    sky_error_clear(&err);
    sky__folder_ref(f);
    started(j, sky_blob_delete(f->c, f->container, j->name, on_job_done, j, &j->op, &err), &err);
}

static void start_job(sky_blob_folder *f, sky__folder_job *j)
{
    f->running++;
    j->item.state = SKY_BLOB_ITEM_RUNNING;
    if (j->item.rollback || f->o.kind == SKY_BLOB_FOLDER_DELETE)
        start_delete(f, j);
    else if (f->o.kind == SKY_BLOB_FOLDER_UPLOAD)
        start_put(f, j);
    else
        start_get(f, j);
}

/* Delete what this run uploaded: new jobs after the uploads, whose outcomes stay. */
static void rollback_start(sky_blob_folder *f)
{
    size_t n = f->njobs;
    f->rolling_back = 1;
    for (size_t i = 0; i < n; i++) {
        if (f->jobs[i]->item.state != SKY_BLOB_ITEM_DONE)
            continue;
        sky__folder_job *j = sky__folder_add_job(f, NULL, f->jobs[i]->name, 0);
        if (j == NULL)
            break;
        j->item.rollback = 1;
        f->rolled_back++;
    }
    sky__folder_pump(f);
}

static int wants_rollback(const sky_blob_folder *f)
{
    if (f->o.kind != SKY_BLOB_FOLDER_UPLOAD || !f->o.rollback_on_failure || f->rolling_back ||
        f->unreachable)
        return 0;
    for (size_t i = 0; i < f->njobs; i++)
        if (f->jobs[i]->item.state == SKY_BLOB_ITEM_FAILED)
            return 1;
    return 0;
}

static void finish(sky_blob_folder *f)
{
    sky_error canceled;
    sky_error_clear(&canceled);
    sky_error_set(&canceled, SKY_ECANCELED, "folder transfer canceled");
    const sky_error *err = f->unreachable ? &f->stop_err : f->canceled ? &canceled : NULL;
    uv_timer_stop(&f->tick);
    f->phase = SKY__FOLDER_OVER;
    f->t1_ms = sky_clock_now_ms(f->o.clock);
    sky_blob_folder_stats st;
    sky_blob_folder_stats_get(f, &st);
    if (f->done_cb)
        f->done_cb(f, &st, err, f->user_data);
    sky__folder_unref(f); /* the run's report */
}

void sky__folder_pump(sky_blob_folder *f)
{
    if (f->pumping || f->phase != SKY__FOLDER_RUNNING)
        return;
    f->pumping = 1;
    while (!f->stop && f->running < (size_t)f->o.parallel && f->next < f->njobs) {
        sky__folder_job *j = f->jobs[f->next++];
        if (j->item.state == SKY_BLOB_ITEM_FAILED) /* refused by the plan */
            f->finished++;
        else
            start_job(f, j);
    }
    f->pumping = 0;
    if (f->running > 0)
        return;
    for (; f->next < f->njobs; f->next++) { /* stopped: the rest never ran */
        if (f->jobs[f->next]->item.state != SKY_BLOB_ITEM_FAILED)
            job_canceled(f->jobs[f->next]);
        f->finished++;
    }
    if (wants_rollback(f))
        rollback_start(f);
    else
        finish(f);
}
