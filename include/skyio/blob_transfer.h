/* skyio — folder transfers: a local folder to a blob prefix and back, many files at once. */
#ifndef SKYIO_BLOB_TRANSFER_H
#define SKYIO_BLOB_TRANSFER_H

#include "blob.h"

/*
 * A folder transfer is planned, then run. The plan walks the local folder (in libuv's
 * thread pool) and lists the prefix, and makes the list of files; the run moves them,
 * `parallel` at once, each with the client's block transfers. Files that fail are
 * recorded with their reason while the others go on. Everything runs on the client's
 * loop and never blocks it.
 *
 *   sky_blob_folder_new -> [sky_blob_folder_add ...] [sky_blob_folder_plan] ->
 *   sky_blob_folder_run -> (items, stats) -> sky_blob_folder_free
 */

/** Long-lived: one folder transfer. */
typedef struct sky_blob_folder sky_blob_folder;

/** What the transfer does with each file. */
typedef enum sky_blob_folder_kind {
    SKY_BLOB_FOLDER_UPLOAD = 0, /**< the files under `local` to blobs under `prefix` */
    SKY_BLOB_FOLDER_DOWNLOAD,   /**< the blobs under `prefix` to files under `local` */
    SKY_BLOB_FOLDER_DELETE      /**< delete every blob under `prefix` */
} sky_blob_folder_kind;

/** Where one file stands. */
typedef enum sky_blob_item_state {
    SKY_BLOB_ITEM_WAITING = 0,
    SKY_BLOB_ITEM_RUNNING,
    SKY_BLOB_ITEM_DONE,
    SKY_BLOB_ITEM_FAILED, /**< `error` says why; names refused by the plan too */
    SKY_BLOB_ITEM_SKIPPED /**< upload with sync: the blob already holds the file */
} sky_blob_item_state;

/** Which step of a plan failed. */
typedef enum sky_blob_folder_step {
    SKY_BLOB_FOLDER_STEP_NONE = 0,
    SKY_BLOB_FOLDER_STEP_WALK, /**< reading the local folder (upload) */
    SKY_BLOB_FOLDER_STEP_LIST, /**< listing the prefix */
    SKY_BLOB_FOLDER_STEP_DEST  /**< making the destination folder (download) */
} sky_blob_folder_step;

/** One file of the transfer. Borrowed: valid until sky_blob_folder_free. */
typedef struct sky_blob_folder_item {
    const char *name;  /**< the blob name */
    const char *local; /**< the file; NULL for a delete, or a name the plan refused */
    int64_t size;      /**< bytes, from the walk or the listing (an added download: once done) */
    int state;         /**< sky_blob_item_state */
    int rollback;      /**< a delete of a blob this run uploaded (rollback_on_failure) */
    int error_code;    /**< a SKY_E code when failed, else 0 */
    const char *error; /**< when failed, one line saying why ("refused: ..." for a name the
                            plan refused); else NULL */
} sky_blob_folder_item;

/** Counts of a run, for progress and the end. */
typedef struct sky_blob_folder_stats {
    size_t files_total;    /**< items, rollback deletes included */
    size_t files_finished; /**< of files_total */
    size_t done;           /**< files moved (or deleted); rollback deletes not counted */
    size_t skipped;        /**< unchanged files (sync) */
    size_t failed;         /**< failed files; rollback deletes not counted */
    size_t rolled_back;    /**< blobs this run uploaded, then deleted again */
    int rollback;          /**< a rollback began (rollback_on_failure, and a file failed) */
    int64_t bytes_total;   /**< of every file, as planned */
    int64_t bytes_done;    /**< of the files done or skipped, and what running files moved */
    uint64_t elapsed_ms;   /**< since the run began, by the options' clock */
} sky_blob_folder_stats;

/**
 * A plan is over: exactly once, from the loop. @p err is NULL on success; else @p step
 * says which step failed, and @p err why: SKY_EIO or SKY_EINVAL for the walk or the
 * destination, the listing's error (SKY_EHTTP with the Storage code such as
 * "ContainerNotFound", a transport error), SKY_ENOMEM, or SKY_ECANCELED.
 */
typedef void (*sky_blob_folder_plan_cb)(sky_blob_folder *f, int step, const sky_error *err,
                                        void *user_data);

/**
 * A run is over: exactly once, from the loop; @p st (borrowed for the call) has the
 * counts, and the items their outcomes. @p err is NULL when every file was tried (some
 * may have failed: st->failed); SKY_ECANCELED after sky_blob_folder_cancel or free; or,
 * when the endpoint was never reached (see sky_blob_client_answered), that failure
 * (SKY_ECONNECT, SKY_ERESOLVE or SKY_ETLS): the run stopped at once, since every file
 * would fail the same way.
 */
typedef void (*sky_blob_folder_done_cb)(sky_blob_folder *f, const sky_blob_folder_stats *st,
                                        const sky_error *err, void *user_data);

/** Progress of a run, every progress_interval_ms (@p st borrowed for the call). */
typedef void (*sky_blob_folder_progress_cb)(sky_blob_folder *f, const sky_blob_folder_stats *st,
                                            void *user_data);

/** Settings of a folder transfer; fill with sky_blob_folder_options_init. */
typedef struct sky_blob_folder_options {
    int kind;                /**< sky_blob_folder_kind; default SKY_BLOB_FOLDER_UPLOAD */
    const char *container;   /**< required */
    const char *prefix;      /**< a folder of blob names: "dir" takes dir/a, never dirfoo/a;
                                  default "" (the whole container) */
    const char *local;       /**< the local folder: what an upload plan walks, where a download
                                  plan writes (made once the listing worked) */
    int parallel;            /**< files at once; default 8 */
    int sync;                /**< upload: the plan lists the prefix, and the run skips a file
                                  whose blob has its size and MD5; default 1 */
    int checksum;            /**< 1 (default): every block carries a Content-MD5, uploads store
                                  the file's MD5 on the blob, downloads check it; 0: no hashing
                                  but what sync needs to compare */
    int rollback_on_failure; /**< upload: when a file failed, delete what this run uploaded;
                                  default 0 */
    size_t block_size;       /**< of each file's blocks and ranges; 0 (default): the client's */
    int concurrency;         /**< blocks or ranges in flight per file; 0 (default): the client's */
    const sky_clock *clock;  /**< NULL (default): the real clock. Borrowed */
    sky_blob_folder_progress_cb on_progress; /**< NULL (default): none */
    void *progress_user_data;
    unsigned progress_interval_ms; /**< default 200 */
} sky_blob_folder_options;

/** Every default; no container. */
SKY_EXTERN void sky_blob_folder_options_init(sky_blob_folder_options *o);

/**
 * A new folder transfer through @p c (borrowed: it must outlive the transfer), on the
 * client's loop. @p o is copied, strings included. Returns 0 and @p *out (the caller's,
 * to free with sky_blob_folder_free), or SKY_EINVAL / SKY_ENOMEM with @p err filled.
 */
SKY_EXTERN int sky_blob_folder_new(sky_blob_client *c, const sky_blob_folder_options *o,
                                   sky_blob_folder **out, sky_error *err) SKY_NODISCARD;

/**
 * Add one file by hand, before the run: @p local (NULL for a delete) and @p name are
 * copied and used as given (no folder is made, the caller chose the path); @p size is
 * for the counts (0 when not known). Not allowed while a plan or a run is in progress,
 * or once the run began. Returns 0, or SKY_ESTATE, SKY_EINVAL (no name) or SKY_ENOMEM with
 * @p err filled.
 */
SKY_EXTERN int sky_blob_folder_add(sky_blob_folder *f, const char *local, const char *name,
                                   int64_t size, sky_error *err) SKY_NODISCARD;

/**
 * Plan: an upload walks `local` (regular files only; links are never followed) and,
 * with sync, lists the prefix; a download lists the prefix, makes `local` and adds each
 * blob as a file under it, refusing with its reason a name that is not under the prefix
 * or not a safe relative path (sky_blob_relpath_check); a delete lists the prefix. At
 * most once, before the run. @p cb runs exactly once, never from inside the call.
 * Returns 0, or SKY_ESTATE, or SKY_EINVAL (an upload or download without `local`), with
 * @p err filled (and @p cb never runs).
 */
SKY_EXTERN int sky_blob_folder_plan(sky_blob_folder *f, sky_blob_folder_plan_cb cb, void *user_data,
                                    sky_error *err) SKY_NODISCARD;

/**
 * Run: move every planned or added file, `parallel` at once. A download of a planned
 * file makes its folders under the destination one part at a time and never through a
 * link (sky_blob_make_parent_dirs). With rollback_on_failure, an upload with a failed
 * file then deletes the blobs this run uploaded (items with `rollback` set). At most
 * once, after a successful plan or none. @p cb runs exactly once, never from inside the
 * call. Returns 0, or SKY_ESTATE with @p err filled (and @p cb never runs).
 */
SKY_EXTERN int sky_blob_folder_run(sky_blob_folder *f, sky_blob_folder_done_cb cb, void *user_data,
                                   sky_error *err) SKY_NODISCARD;

/**
 * Stop: nothing new starts, what runs is canceled, files not started fail "not started
 * (canceled)", and the plan's or run's callback reports SKY_ECANCELED soon, from the loop.
 * Idempotent; allowed from a callback.
 */
SKY_EXTERN void sky_blob_folder_cancel(sky_blob_folder *f);

/**
 * Free the transfer: a plan or run in progress is canceled first and its callback runs
 * (SKY_ECANCELED) before the memory goes. Allowed from a callback (deferred until it
 * returns). NULL is a no-op.
 */
SKY_EXTERN void sky_blob_folder_free(sky_blob_folder *f);

/** How many items the transfer holds (planned, added, and rollback deletes). */
SKY_EXTERN size_t sky_blob_folder_count(const sky_blob_folder *f);

/** Item @p i (< count), borrowed until sky_blob_folder_free; NULL when out of range. */
SKY_EXTERN const sky_blob_folder_item *sky_blob_folder_item_at(const sky_blob_folder *f, size_t i);

/** The counts now (a run in progress included) into @p out. */
SKY_EXTERN void sky_blob_folder_stats_get(const sky_blob_folder *f, sky_blob_folder_stats *out);

#endif
