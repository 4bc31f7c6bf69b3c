/*
 * Folder transfers' internals, shared by the handle (transfer.c), the plan
 * (transfer_plan.c) and the run (transfer_run.c).
 */
#ifndef SKY_BLOB_TRANSFER_INTERNAL_H
#define SKY_BLOB_TRANSFER_INTERNAL_H

#include <limits.h>

#include "internal.h"
#include "skyio/blob_transfer.h"

/* One file of the transfer: its public view and what the run needs beside it. */
typedef struct sky__folder_job {
    sky_blob_folder_item item; /* name, local and error point at the copies below */
    sky_blob_folder *f;
    char *name, *local, *error;
    size_t rel_off;  /* a planned download: its path under root_real starts here; else 0 */
    int64_t moved;   /* bytes so far of a running file (its progress) */
    int guard_rc;    /* making its folders: 0, SKY_EINVAL (refused) or SKY_EIO ... */
    char *guard_why; /* ... and why (from the thread pool; the loop takes it after) */
    char md5[SKY__BLOB_MD5_B64]; /* an upload's file, hashed for the sync check */
    sky_blob_op *op;             /* in flight; valid until its callback returns */
    uv_work_t work;
} sky__folder_job;

/* A blob the listing found. */
typedef struct sky__folder_remote {
    char *name;
    int64_t size;
    char *md5;
} sky__folder_remote;

/* The phases, in order; a plan that failed ends in PLAN_FAILED, and nothing may run. */
enum {
    SKY__FOLDER_IDLE,
    SKY__FOLDER_PLANNING,
    SKY__FOLDER_PLANNED,
    SKY__FOLDER_PLAN_FAILED,
    SKY__FOLDER_RUNNING,
    SKY__FOLDER_OVER
};

struct sky_blob_folder {
    sky_blob_client *c;
    uv_loop_t *loop;
    sky_blob_folder_options o; /* container, prefix and local point at our copies */
    char *container, *prefix, *local;
    char root_real[PATH_MAX]; /* a download's destination, as realpath found it */
    sky__folder_job **jobs;   /* each its own allocation: items stay where they are */
    size_t njobs, cap, next, running, finished, rolled_back;
    sky__folder_remote *remotes; /* sorted by name once listed */
    size_t nremotes, rcap;
    char *marker; /* the next page's */
    sky_blob_op *list_op;
    int64_t bytes_total, bytes_done; /* of every job; of the finished ones */
    uint64_t t0_ms, t1_ms;           /* the run's start and end */
    int phase;
    int stop;         /* canceled, or the endpoint cannot be reached */
    int canceled;     /* sky_blob_folder_cancel */
    int unreachable;  /* the endpoint never answered: stop_err says how it failed */
    int rolling_back; /* the jobs after the first rolled_back.. are deletes of uploads */
    int pumping;
    sky_error stop_err;
    sky_blob_folder_plan_cb plan_cb;
    sky_blob_folder_done_cb done_cb;
    void *user_data;
    uv_timer_t kick, tick; /* the run's start (never from inside the call); progress */
    int refs;              /* one per thing in flight, and one per plan or run not reported */
    int freeing, closing;
};

/* ---- the handle (transfer.c) ---- */

/** Take a reference: something in flight will come back to @p f. */
void sky__folder_ref(sky_blob_folder *f);
/** Drop it, last thing a handler does: frees @p f once freed by its user and idle. */
void sky__folder_unref(sky_blob_folder *f);
/** A new job that takes @p local (may be NULL) and @p name, malloc'd: freed here when it
 *  cannot be made (NULL, out of memory). */
sky__folder_job *sky__folder_take_job(sky_blob_folder *f, char *local, char *name, int64_t size);
/** A new job with copies of the strings; NULL when out of memory. */
sky__folder_job *sky__folder_add_job(sky_blob_folder *f, const char *local, const char *name,
                                     int64_t size);
/** Mark @p j failed with @p code and why (replacing an earlier reason). */
void sky__folder_job_fail(sky__folder_job *j, int code, const char *fmt, ...) SKY_PRINTF(3, 4);
/** Sort the listed blobs by name, for sky__folder_find_remote. */
void sky__folder_sort_remotes(sky_blob_folder *f);
/** The remote that the listing found under @p name, or NULL. */
const sky__folder_remote *sky__folder_find_remote(const sky_blob_folder *f, const char *name);

/* ---- the plan (transfer_plan.c) ---- */

/** Begin the plan's first step; the plan's report follows from the loop. */
void sky__folder_plan_start(sky_blob_folder *f);

/* ---- the run (transfer_run.c) ---- */

/** Start what may start; report the run when nothing is left. */
void sky__folder_pump(sky_blob_folder *f);
/** Cancel the operations in flight (their callbacks come later, from the loop). */
void sky__folder_cancel_running(sky_blob_folder *f);

#endif
