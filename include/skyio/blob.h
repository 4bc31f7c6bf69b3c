/* skyio — Azure Blob Storage client: containers, blobs, parallel block transfers. */
#ifndef SKYIO_BLOB_H
#define SKYIO_BLOB_H

#include <uv.h>

#include "buf.h"
#include "clock.h"
#include "common.h"
#include "credential.h"
#include "error.h"
#include "headers.h"
#include "http.h"
#include "pipeline.h"
#include "retry.h"
#include "storage.h"

/*
 * Every request of a client goes through its own pipeline (skyio/pipeline.h): retries,
 * deadlines, the rate limit, the circuit breaker and the credential's token refresh apply
 * to each one, with Storage's reply rules (sky_blob_classifier) naming its failures.
 */

/** Long-lived: one per account endpoint. */
typedef struct sky_blob_client sky_blob_client;
/** One-shot: an operation in flight. Valid until its callback returns. */
typedef struct sky_blob_op sky_blob_op;

/**
 * Bearer-token source (Entra ID): write the token into @p out (the caller
 * resets it first); @p refresh nonzero after a 401 asks for a fresh one.
 * Called on the loop for every attempt, so it should answer from a cache.
 * Returns 0 or a SKY_E code (the attempt fails with SKY_EAUTH).
 */
typedef int (*sky_blob_token_cb)(void *user_data, int refresh, sky_buf *out);

typedef struct sky_blob_client_options {
    const char *endpoint;       /**< "https://acct.blob.core.windows.net" or path-style; required */
    const char *account_name;   /**< required with account_key */
    const char *account_key;    /**< base64: Shared Key auth when set (a secret) */
    const char *sas;            /**< SAS token (with or without '?'): appended to every URL */
    sky_blob_token_cb token_cb; /**< bearer auth from a callback (when no key) */
    void *token_user_data;
    sky_credential *credential; /**< Entra ID bearer auth (when no key); borrowed, outlives us */
    const char *scope;          /**< default "https://storage.azure.com/.default" */
    sky_retry_options retry;    /**< the pipeline's; default: azure-core's (10 retries, 800 ms
                                     .. 60 s); Storage's busy codes (503, 500) are retried */
    long attempt_timeout_ms;    /**< one attempt; default 300000; 0: none */
    size_t block_size;          /**< block and range size; default 4 MiB, at most 4000 MiB */
    size_t single_put_max;      /**< files up to this go in one PUT; default = block_size */
    int concurrency;            /**< blocks or ranges in flight per transfer; default 4 */
    const sky_clock *clock;     /**< NULL: the real clock. Borrowed */
    /**
     * 0 (default): until the endpoint has answered once (any HTTP status), a failure to
     * connect, resolve its name or complete TLS is final, not retried: the URL, the name or
     * the certificates are wrong, and ten retries would only take minutes to say so. Once it
     * has answered, such a failure is an outage and is retried like any other.
     * 1: retry them from the start (an endpoint that may still be coming up).
     */
    int retry_unreached;
    /**
     * The client's pipeline: its rate limit (rate.rpm), breaker, operation deadline
     * (operation_timeout_ms) and the rest, filled by sky_blob_pipeline_options_init. The
     * fields above decide its retry, attempt_timeout_ms, clock and fail_unreached (!
     * retry_unreached), and the client sets its auth, credential, scope and sign itself.
     */
    sky_pipeline_options pipeline;
} sky_blob_client_options;

/** Every default; no endpoint and no auth. */
SKY_EXTERN void sky_blob_client_options_init(sky_blob_client_options *o);

/**
 * Storage's reply rules as a pipeline classifier: a failure named by its Storage error code
 * (x-ms-error-code, or the error XML's Code) and message. Static: never freed.
 */
SKY_EXTERN const sky_reply_classifier *sky_blob_classifier(void);

/**
 * sky_pipeline_options_init, then what a Blob client wants: sky_blob_classifier, no
 * concurrency limit (a transfer keeps `concurrency` blocks in flight itself), and a rate
 * limit that paces nothing until a limit shows (Storage announces none) or rate.rpm is set.
 */
SKY_EXTERN void sky_blob_pipeline_options_init(sky_pipeline_options *o);

/**
 * Point @p o at @p a's endpoint, name, key and SAS. The strings are
 * borrowed: @p a must outlive the client creation (the client copies them).
 */
SKY_EXTERN void sky_blob_client_options_from_account(sky_blob_client_options *o,
                                                     const sky_storage_account *a);

/**
 * A new client on @p loop sending through @p http (borrowed: it must outlive
 * the client). @p o is copied, strings included. Returns 0, or SKY_EINVAL /
 * SKY_ENOMEM with @p err filled.
 */
SKY_EXTERN int sky_blob_client_new(uv_loop_t *loop, sky_http_client *http,
                                   const sky_blob_client_options *o, sky_blob_client **out,
                                   sky_error *err) SKY_NODISCARD;

/**
 * Cancel every operation (each callback runs soon, from the loop, with
 * SKY_ECANCELED) and free the client once they have reported.
 */
SKY_EXTERN void sky_blob_client_free(sky_blob_client *c);

/**
 * Replies (any HTTP status) the endpoint has given this client so far. 0 with a
 * failure of SKY_ECONNECT, SKY_ERESOLVE or SKY_ETLS means the endpoint was never
 * reached: a caller running many operations can stop them all (see retry_unreached).
 */
SKY_EXTERN uint64_t sky_blob_client_answered(const sky_blob_client *c);

/** The client's pipeline, for its health and limiters (borrowed: lives with the client). */
SKY_EXTERN sky_pipeline *sky_blob_client_pipeline(sky_blob_client *c);

/** One entry of a listing. Borrowed: valid until the callback returns. */
typedef struct sky_blob_item {
    const char *name;
    int64_t size;              /**< Content-Length; -1 for a container or a prefix */
    const char *etag;          /**< NULL when absent */
    const char *content_md5;   /**< base64; NULL when absent */
    const char *last_modified; /**< RFC 1123 text; NULL when absent */
    int is_prefix;             /**< a "folder" (BlobPrefix) when listing with a delimiter */
} sky_blob_item;

/** One page of a listing. */
typedef struct sky_blob_list_page {
    const sky_blob_item *items;
    size_t count;
    const char *next_marker; /**< NULL on the last page; pass it as `marker` for the next */
} sky_blob_list_page;

/** A blob's properties (HEAD). */
typedef struct sky_blob_properties {
    int64_t size;
    const char *etag;
    const char *content_md5; /**< base64; NULL when the blob has none */
    const char *content_type;
    const char *last_modified;
    const sky_headers *metadata; /**< x-ms-meta-* with the prefix taken off */
} sky_blob_properties;

/** Where a transfer stands. */
typedef struct sky_blob_transfer_stats {
    int64_t bytes_total;     /**< the file's or blob's size */
    int64_t bytes_done;      /**< moved so far, skipped blocks included */
    uint32_t blocks_total;   /**< blocks or ranges; 1 for a single PUT or GET */
    uint32_t blocks_sent;    /**< uploaded or downloaded by this call */
    uint32_t blocks_skipped; /**< already on the service (resumed upload) */
    uint32_t requests;       /**< HTTP attempts made, retries included */
    uint32_t retries;        /**< attempts that were retries */
} sky_blob_transfer_stats;

/** What a callback receives. Borrowed: valid until the callback returns. */
typedef struct sky_blob_reply {
    int status;                              /**< last HTTP status, 0 when none */
    const sky_headers *headers;              /**< last reply's headers; may be NULL */
    sky_span body;                           /**< sky_blob_get: the blob's bytes */
    int exists;                              /**< *_exists: 1 or 0 */
    const sky_blob_properties *props;        /**< sky_blob_properties_get */
    const sky_blob_list_page *list;          /**< listings */
    const sky_blob_transfer_stats *transfer; /**< uploads and downloads */
} sky_blob_reply;

/**
 * The operation is over: exactly once, from the loop. @p err is NULL on
 * success; otherwise its code (SKY_EHTTP for a service error, with
 * http_status, service_code = the Storage error code such as
 * "BlobNotFound", and the service's message), a transport error or
 * SKY_ECANCELED. @p op is freed when this returns.
 */
typedef void (*sky_blob_done_cb)(sky_blob_op *op, const sky_blob_reply *reply, const sky_error *err,
                                 void *user_data);

/** Progress of a transfer, after each block or range (borrowed for the call). */
typedef void (*sky_blob_progress_cb)(sky_blob_op *op, const sky_blob_transfer_stats *st,
                                     void *user_data);

/** Cancel: the callback runs soon, from the loop, with SKY_ECANCELED. */
SKY_EXTERN void sky_blob_op_cancel(sky_blob_op *op);

/*
 * Every operation below: the names are copied; on success returns 0 and
 * (when @p out_op is not NULL) the handle, and @p cb will run exactly once,
 * never from inside the call. On failure returns a SKY_E code with @p err
 * filled, and @p cb never runs.
 */

/** PUT ?restype=container. */
SKY_EXTERN int sky_blob_container_create(sky_blob_client *c, const char *container,
                                         sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                                         sky_error *err) SKY_NODISCARD;
/** DELETE ?restype=container. */
SKY_EXTERN int sky_blob_container_delete(sky_blob_client *c, const char *container,
                                         sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                                         sky_error *err) SKY_NODISCARD;
/** GET ?restype=container: reply->exists (404 is not an error here). */
SKY_EXTERN int sky_blob_container_exists(sky_blob_client *c, const char *container,
                                         sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                                         sky_error *err) SKY_NODISCARD;

/** Listing filters and paging (all optional; NULL or 0 for none). */
typedef struct sky_blob_list_options {
    const char *prefix;
    const char *delimiter; /**< "/" to list one "folder" level */
    const char *marker;    /**< next_marker of the previous page */
    int max_results;       /**< 0: the service's default (5000) */
} sky_blob_list_options;

/** One page of containers (reply->list). @p lo may be NULL. */
SKY_EXTERN int sky_blob_container_list(sky_blob_client *c, const sky_blob_list_options *lo,
                                       sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                                       sky_error *err) SKY_NODISCARD;
/** One page of blobs of @p container (reply->list). @p lo may be NULL. */
SKY_EXTERN int sky_blob_list(sky_blob_client *c, const char *container,
                             const sky_blob_list_options *lo, sky_blob_done_cb cb, void *user_data,
                             sky_blob_op **out_op, sky_error *err) SKY_NODISCARD;

/**
 * Put @p data as a block blob in one request, with its Content-MD5 (over
 * 64 KiB hashed in the thread pool first). @p data, @p content_type (NULL:
 * application/octet-stream) and @p metadata (names without the x-ms-meta-
 * prefix; may be NULL) are copied.
 */
SKY_EXTERN int sky_blob_put(sky_blob_client *c, const char *container, const char *blob,
                            sky_span data, const char *content_type, const sky_headers *metadata,
                            sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                            sky_error *err) SKY_NODISCARD;
/** GET the whole blob into memory (reply->body), up to 64 MiB. */
SKY_EXTERN int sky_blob_get(sky_blob_client *c, const char *container, const char *blob,
                            sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                            sky_error *err) SKY_NODISCARD;
/** DELETE the blob (and its snapshots). */
SKY_EXTERN int sky_blob_delete(sky_blob_client *c, const char *container, const char *blob,
                               sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                               sky_error *err) SKY_NODISCARD;
/** HEAD: reply->props, metadata included. */
SKY_EXTERN int sky_blob_properties_get(sky_blob_client *c, const char *container, const char *blob,
                                       sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                                       sky_error *err) SKY_NODISCARD;
/** Replace the blob's metadata with @p metadata (names without the prefix; copied). */
SKY_EXTERN int sky_blob_metadata_set(sky_blob_client *c, const char *container, const char *blob,
                                     const sky_headers *metadata, sky_blob_done_cb cb,
                                     void *user_data, sky_blob_op **out_op,
                                     sky_error *err) SKY_NODISCARD;

/**
 * Whether @p blob is a name Azure accepts: 1 to 1,024 characters. Every operation on
 * a blob checks it first. Returns 0 or SKY_EINVAL with @p err saying why.
 */
SKY_EXTERN int sky_blob_name_check(const char *blob, sky_error *err) SKY_NODISCARD;

/*
 * Folder downloads. A blob name is a path with '/' between its parts; written under a
 * local folder it must stay there and fit the local file system.
 */

/**
 * Whether @p rel (a blob name, or what follows the listed prefix) can be a file's path
 * relative to a folder: not empty, not absolute, no empty, "." or ".." part, no
 * trailing '/', no part over NAME_MAX bytes, under PATH_MAX in all. Pure. Returns 0 or
 * SKY_EINVAL with @p err naming the rule.
 */
SKY_EXTERN int sky_blob_relpath_check(const char *rel, sky_error *err) SKY_NODISCARD;

/**
 * Make the folders of @p rel's parent under the existing folder @p root, one part at a
 * time (mkdirat, then openat with O_NOFOLLOW), so nothing is ever created or opened
 * through a symbolic link, whether it points out of @p root or not; the file's own name
 * must not be a link or a folder either. Checks sky_blob_relpath_check first. Blocking:
 * run it in the thread pool. Returns 0, SKY_EINVAL (a name, a link or a file in the
 * way) or SKY_EIO, with @p err saying which part and why.
 */
SKY_EXTERN int sky_blob_make_parent_dirs(const char *root, const char *rel,
                                         sky_error *err) SKY_NODISCARD;

/** Per-transfer settings; fill with sky_blob_transfer_options_init. */
typedef struct sky_blob_transfer_options {
    size_t block_size;        /**< 0: the client's */
    size_t single_put_max;    /**< 0: block_size when set here, else the client's */
    int concurrency;          /**< 0: the client's */
    const char *content_type; /**< upload; NULL: application/octet-stream */
    const char *content_md5;  /**< upload: base64 MD5 of the whole file, stored on the blob
                                   (x-ms-blob-content-md5) by Put Block List, and sent as
                                   the Content-MD5 of a single put; NULL: none */
    int no_block_md5;         /**< upload: no transactional Content-MD5 on each block or
                                   single put, so no hashing (the Python SDK's default);
                                   0 (default): every PUT carries one */
    int store_md5;            /**< upload: store the file's MD5 on the blob; for blocks it is
                                   hashed in the thread pool while they go, and the commit
                                   waits for it (ignored with content_md5); default 0 */
    int verify_md5;           /**< download: when the blob has a Content-MD5, hash the file
                                   once written (thread pool) and keep it only if it
                                   matches; default 0 */
    sky_blob_progress_cb on_progress;
    void *progress_user_data;
} sky_blob_transfer_options;

SKY_EXTERN void sky_blob_transfer_options_init(sky_blob_transfer_options *o);

/**
 * Upload the file at @p path. Up to single_put_max: one PUT with Content-MD5.
 * Larger: Get Block List first, then the missing blocks staged in parallel
 * (Put Block with Content-MD5, block ids derived from the file's size,
 * mtime and the block size, so a rerun after an interruption sends only the
 * blocks the service lacks), then Put Block List. Blocks stream from the file
 * (uv_fs_read) through a 512 KiB buffer per block in flight, whatever the
 * block size; a block's MD5 is computed in the thread pool before it is sent.
 * reply->transfer has the counts. @p to may be NULL.
 */
SKY_EXTERN int sky_blob_upload_file(sky_blob_client *c, const char *container, const char *blob,
                                    const char *path, const sky_blob_transfer_options *to,
                                    sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                                    sky_error *err) SKY_NODISCARD;

/**
 * Download a blob to @p path: HEAD, then one GET or parallel ranged GETs
 * (If-Match the first ETag) written at their offsets with uv_fs_write into
 * "<path>.skyio-partial" (".skyio-partial-<hash>" beside it when that name would
 * pass NAME_MAX), which is renamed over @p path only on success (a symlink at
 * @p path is replaced, never written through). A @p path over PATH_MAX, or with
 * a part over NAME_MAX bytes, is refused at once (SKY_EINVAL). With verify_md5
 * the file is first checked against the blob's Content-MD5 (when it has one).
 * On failure or cancel the partial file is removed and @p path is left as it
 * was. More than 2^32 ranges: SKY_EINVAL (use a larger block size). @p to may
 * be NULL.
 */
SKY_EXTERN int sky_blob_download_file(sky_blob_client *c, const char *container, const char *blob,
                                      const char *path, const sky_blob_transfer_options *to,
                                      sky_blob_done_cb cb, void *user_data, sky_blob_op **out_op,
                                      sky_error *err) SKY_NODISCARD;

#endif
