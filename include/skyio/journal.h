/* skyio — the output journal of a batch job: durable, resumable JSON lines. */
#ifndef SKYIO_JOURNAL_H
#define SKYIO_JOURNAL_H

#include <uv.h>

#include "common.h"
#include "error.h"

/**
 * An append-only file of records in the OpenAI Batch output format, one JSON
 * object per line. Opening scans what is already there: every record's
 * custom_id is "done", a torn last line is cut off, and with retry_failed the
 * failed records are removed (atomically) so they are redone. Appends are
 * queued and written in order by libuv fs requests, each record as a whole
 * line; the file is fdatasync'ed at most every flush_interval_ms and on close,
 * with writes going on during a sync. At most max_pending_records wait in
 * memory (appends past that get SKY_EBUSY): written records survive a kill -9,
 * queued ones do not.
 * The flush timer does not keep the loop alive; queued writes do, and
 * sky_journal_close always syncs, so close the journal before the loop ends.
 * A second instance serves as the errors file (`--errors`): same API.
 * One journal per file: a second open of the same file fails with SKY_EBUSY.
 */
typedef struct sky_journal sky_journal;

/**
 * A write or sync failed (called once, at the first failure). @p err is
 * borrowed for the call. Writing has stopped: later appends fail with SKY_EIO,
 * and the records queued are counted in stats.unwritten. Their ids still
 * answer sky_journal_is_done until the journal is reopened; stop the run.
 */
typedef void (*sky_journal_error_cb)(sky_journal *j, const sky_error *err, void *user_data);
/** Pending bytes and records fell to half their caps after an append was refused (SKY_EBUSY). */
typedef void (*sky_journal_drain_cb)(sky_journal *j, void *user_data);
/**
 * The journal is closed. @p err->code is 0 when everything appended is on
 * disk, else the first failure. @p j may still be read (stats, is_done) during
 * the call; it is freed when the callback returns.
 */
typedef void (*sky_journal_close_cb)(sky_journal *j, const sky_error *err, void *user_data);

typedef struct sky_journal_options {
    int retry_failed;           /**< remove failed records on open, so they are redone */
    uint64_t flush_interval_ms; /**< fdatasync at most this often; 0: after every write. 1000 */
    size_t max_pending_bytes;   /**< queued bytes before appends get SKY_EBUSY. 16 MiB */
    /** Queued records before appends get SKY_EBUSY: what a kill -9 can lose. 256 */
    uint64_t max_pending_records;
    size_t max_line_bytes;   /**< longest record read or written. 64 MiB */
    size_t expected_records; /**< sizing hint for the done set; 0 is fine */
    /** 1: the file holds JSON lines of another kind (a batch's timeline), so a file
     *  without Batch records is not refused as "not Batch output". Default 0. */
    int any_lines;
    sky_journal_error_cb on_error; /**< optional */
    sky_journal_drain_cb on_drain; /**< optional */
    void *user_data;               /**< given to on_error, on_drain */
} sky_journal_options;

/** What the scan found and what has been written since. */
typedef struct sky_journal_stats {
    uint64_t done_ok;         /**< scan: records kept that succeeded */
    uint64_t done_failed;     /**< scan: failed records kept (they count as done) */
    uint64_t removed_failed;  /**< scan with retry_failed: failed records removed */
    uint64_t bad_lines;       /**< scan: lines kept that are not records (bad JSON, no id) */
    uint64_t duplicate_lines; /**< scan: records whose custom_id was already seen */
    uint64_t torn_bytes;      /**< scan: bytes cut from the end of the file */
    uint64_t appended;        /**< records accepted by append */
    uint64_t written;         /**< records completely written */
    uint64_t unwritten;       /**< records dropped after a write error */
    uint64_t bytes_written;
    uint64_t syncs; /**< fdatasync calls that succeeded */
} sky_journal_stats;

/** sky_journal_append's "already recorded": nothing was queued. Not an error (> 0). */
#define SKY_JOURNAL_DUP 1

/** Set every option to its default. */
SKY_EXTERN void sky_journal_options_init(sky_journal_options *opts);

/**
 * Open (create) @p path for appending and scan it (see above). A record is
 * failed when "error" is not null, or "response.status_code" is missing or
 * outside 200..299; without retry_failed it counts as done all the same. The scan and
 * repair use synchronous libuv fs calls: call this at start-up, before the
 * loop runs work that must not wait. @p opts may be NULL (defaults); it is
 * copied. On success *out holds the journal (free it with sky_journal_close);
 * on failure *out is NULL and @p err says why (SKY_EIO, SKY_EBUSY when another
 * journal holds the file, SKY_ENOMEM).
 */
SKY_EXTERN int sky_journal_open(uv_loop_t *loop, const char *path, const sky_journal_options *opts,
                                sky_journal **out, sky_error *err) SKY_NODISCARD;

/**
 * Replace the options' on_error, on_drain and user_data: for a journal opened by one part of
 * a program and written by another (the batch engine's journal store). Either may be NULL.
 */
SKY_EXTERN void sky_journal_set_handlers(sky_journal *j, sky_journal_error_cb on_error,
                                         sky_journal_drain_cb on_drain, void *user_data);

/** Nonzero when a record for @p custom_id is in the file or queued. */
SKY_EXTERN int sky_journal_is_done(const sky_journal *j, const char *custom_id);

/**
 * Queue one record: @p line is a JSON object with a string "custom_id", no
 * newline (the journal adds it). The bytes are copied. The record is parsed
 * to find its custom_id; use sky_journal_append_id when the caller knows it.
 * Returns 0 (queued, and its id is done from now on), SKY_JOURNAL_DUP (the id
 * is already done; nothing queued), or an error and nothing queued:
 * SKY_EBUSY (over max_pending_bytes or max_pending_records: wait for on_drain or pending to
 * fall), SKY_EINVAL (not such an object, or a newline inside), SKY_ETOOBIG
 * (over max_line_bytes), SKY_ESTATE (closing), SKY_EIO (an earlier write
 * failed), SKY_ENOMEM.
 */
SKY_EXTERN int sky_journal_append(sky_journal *j, const char *line, size_t len) SKY_NODISCARD;

/** sky_journal_append for a line whose custom_id the caller gives (not parsed). */
SKY_EXTERN int sky_journal_append_id(sky_journal *j, const char *custom_id, const char *line,
                                     size_t len) SKY_NODISCARD;

/** Bytes accepted but not yet written. Stop admitting work when this grows. */
SKY_EXTERN size_t sky_journal_pending_bytes(const sky_journal *j);

/** Records accepted but not yet written (in memory: a kill -9 loses them). */
SKY_EXTERN uint64_t sky_journal_pending_records(const sky_journal *j);

/** Copy the counters into @p out. */
SKY_EXTERN void sky_journal_get_stats(const sky_journal *j, sky_journal_stats *out);

/**
 * Write everything queued, fdatasync, close the file, then call @p cb exactly
 * once (never from inside this call) and free the journal. Appends made
 * after this fail with SKY_ESTATE. Returns 0, or SKY_ESTATE when already
 * closing (the first cb still runs).
 */
SKY_EXTERN int sky_journal_close(sky_journal *j, sky_journal_close_cb cb, void *user_data);

#endif
