/* skyio — Azure Storage Queues client: queues, messages, metadata. */
#ifndef SKYIO_QUEUE_H
#define SKYIO_QUEUE_H

#include <uv.h>

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
 * Every request of a client goes through its own pipeline (skyio/pipeline.h) with Storage's
 * reply rules (sky_blob_classifier): retries, ServerBusy backoff, deadlines, the rate limit,
 * the breaker and the credential's token refresh apply to each one. Auth is the Blob
 * client's: Shared Key, SAS, or an Entra ID token for https://storage.azure.com/.default.
 */

/** Long-lived: one per account's Queue endpoint. */
typedef struct sky_queue_client sky_queue_client;
/** One-shot: an operation in flight. Valid until its callback returns. */
typedef struct sky_queue_op sky_queue_op;

/** The most a message may be, as sent (after base64 encoding): Azure's 64 KiB. */
#define SKY_QUEUE_MESSAGE_MAX 65536
/** The most messages one get or peek returns (Azure's limit). */
#define SKY_QUEUE_GET_MAX 32

typedef struct sky_queue_client_options {
    const char *endpoint;       /**< "https://acct.queue.core.windows.net" or path-style
                                     (Azurite: http://127.0.0.1:10001/devstoreaccount1); required */
    const char *account_name;   /**< required with account_key */
    const char *account_key;    /**< base64: Shared Key auth when set (a secret) */
    const char *sas;            /**< SAS token (with or without '?'): on every URL (a secret) */
    sky_credential *credential; /**< Entra ID bearer auth (when no key); borrowed, outlives us */
    const char *scope;          /**< default "https://storage.azure.com/.default" */
    /**
     * 0 (default): message text is base64-encoded on put and decoded on get and peek, as
     * the Azure SDKs do. 1: the text goes as it is (XML-escaped), for readers that expect
     * raw text.
     */
    int raw;
    sky_retry_options retry; /**< default: azure-core's (10 retries); 503 and 500 retried */
    long attempt_timeout_ms; /**< one attempt; default 300000; 0: none */
    const sky_clock *clock;  /**< NULL: the real clock. Borrowed */
    int retry_unreached;     /**< as sky_blob_client_options.retry_unreached; default 0 */
    /** The client's pipeline, filled by sky_blob_pipeline_options_init (Storage's rules). */
    sky_pipeline_options pipeline;
} sky_queue_client_options;

/** Every default; no endpoint and no auth. */
SKY_EXTERN void sky_queue_client_options_init(sky_queue_client_options *o);

/**
 * The Queue endpoint of account @p a: the QueueEndpoint of @p connstr when it names one
 * (@p connstr may be NULL), else derived from the Blob endpoint ("x.blob.core..." ->
 * "x.queue.core...", Azurite's port 10000 -> 10001). Returns 0 and a new string in
 * *out (free() it), SKY_EINVAL when none can be told (@p err says so), or SKY_ENOMEM.
 */
SKY_EXTERN int sky_queue_endpoint_of(const sky_storage_account *a, const char *connstr, char **out,
                                     sky_error *err) SKY_NODISCARD;

/**
 * Point @p o at @p a's name, key and SAS, and at @p endpoint. Borrowed: the strings
 * must outlive the client creation (the client copies them).
 */
SKY_EXTERN void sky_queue_client_options_from_account(sky_queue_client_options *o,
                                                      const sky_storage_account *a,
                                                      const char *endpoint);

/**
 * A new client on @p loop sending through @p http (borrowed: it must outlive the client).
 * @p o is copied, strings included. Returns 0, or SKY_EINVAL / SKY_ENOMEM with @p err.
 */
SKY_EXTERN int sky_queue_client_new(uv_loop_t *loop, sky_http_client *http,
                                    const sky_queue_client_options *o, sky_queue_client **out,
                                    sky_error *err) SKY_NODISCARD;

/**
 * Cancel every operation (each callback runs now, before this returns, with SKY_ECANCELED)
 * and free the client. Allowed from inside an operation's callback.
 */
SKY_EXTERN void sky_queue_client_free(sky_queue_client *c);

/** The client's pipeline, for its health and limiters (borrowed: lives with the client). */
SKY_EXTERN sky_pipeline *sky_queue_client_pipeline(sky_queue_client *c);

/**
 * Whether @p name is a queue name Azure accepts: 3 to 63 characters, lower-case letters,
 * digits and single hyphens, starting and ending with a letter or digit. Every operation
 * checks it before any request. Returns 0 or SKY_EINVAL with @p err naming the rule.
 */
SKY_EXTERN int sky_queue_name_check(const char *name, sky_error *err) SKY_NODISCARD;

/** One message. Borrowed: valid until the callback returns. */
typedef struct sky_queue_message {
    const char *id;
    const char *pop_receipt;  /**< NULL for a peek */
    const char *inserted;     /**< RFC 1123 text; NULL when absent */
    const char *expires;      /**< RFC 1123 text; NULL when absent */
    const char *next_visible; /**< RFC 1123 text; NULL for a peek */
    int64_t dequeue_count;    /**< -1 when absent */
    sky_span text;            /**< decoded unless raw; not NUL-safe: use the length */
    int not_base64;           /**< the client decodes, but this text was not base64:
                                   `text` is the text as stored */
} sky_queue_message;

/** What a callback receives. Borrowed: valid until the callback returns. */
typedef struct sky_queue_reply {
    int status;                        /**< last HTTP status, 0 when none */
    const sky_headers *headers;        /**< last reply's headers; may be NULL */
    const sky_queue_message *messages; /**< get, peek; put and update: the one message
                                            (id or receipt and next visible time) */
    size_t count;                      /**< of messages */
    const char *const *queues;         /**< list: the names of this page */
    size_t nqueues;
    const char *next_marker;     /**< list: NULL on the last page */
    int64_t approximate_count;   /**< properties: -1 when not known */
    const sky_headers *metadata; /**< properties: x-ms-meta-* without the prefix */
} sky_queue_reply;

/**
 * The operation is over: exactly once, from the loop. @p err is NULL on success; otherwise
 * SKY_EHTTP with http_status and the Storage code (QueueNotFound, PopReceiptMismatch, ...)
 * and what to do, a transport error, or SKY_ECANCELED. @p op is freed when this returns.
 */
typedef void (*sky_queue_done_cb)(sky_queue_op *op, const sky_queue_reply *reply,
                                  const sky_error *err, void *user_data);

/** Cancel: the callback runs soon, from the loop, with SKY_ECANCELED. */
SKY_EXTERN void sky_queue_op_cancel(sky_queue_op *op);

/*
 * Every operation below: the arguments are copied; on success returns 0 and (when
 * @p out_op is not NULL) the handle, and @p cb runs exactly once, never from inside the
 * call. On failure (a bad name, a message too big) returns a SKY_E code with @p err
 * filled, and @p cb never runs.
 */

/** PUT /{queue}, with @p metadata (names without the x-ms-meta- prefix; may be NULL). */
SKY_EXTERN int sky_queue_create(sky_queue_client *c, const char *queue, const sky_headers *metadata,
                                sky_queue_done_cb cb, void *user_data, sky_queue_op **out_op,
                                sky_error *err) SKY_NODISCARD;
/** DELETE /{queue}. */
SKY_EXTERN int sky_queue_delete(sky_queue_client *c, const char *queue, sky_queue_done_cb cb,
                                void *user_data, sky_queue_op **out_op,
                                sky_error *err) SKY_NODISCARD;
/** One page of queue names (reply->queues). @p prefix and @p marker may be NULL;
 *  @p max_results 0: the service's default (5000). */
SKY_EXTERN int sky_queue_list(sky_queue_client *c, const char *prefix, const char *marker,
                              int max_results, sky_queue_done_cb cb, void *user_data,
                              sky_queue_op **out_op, sky_error *err) SKY_NODISCARD;
/** GET ?comp=metadata: reply->approximate_count and reply->metadata. */
SKY_EXTERN int sky_queue_properties(sky_queue_client *c, const char *queue, sky_queue_done_cb cb,
                                    void *user_data, sky_queue_op **out_op,
                                    sky_error *err) SKY_NODISCARD;
/** Replace the queue's metadata with @p metadata (names without the prefix). */
SKY_EXTERN int sky_queue_metadata_set(sky_queue_client *c, const char *queue,
                                      const sky_headers *metadata, sky_queue_done_cb cb,
                                      void *user_data, sky_queue_op **out_op,
                                      sky_error *err) SKY_NODISCARD;

/** Settings of a put; fill with sky_queue_put_options_init. */
typedef struct sky_queue_put_options {
    int visibility_delay; /**< seconds before the message can be got; default 0 */
    int64_t ttl;          /**< seconds it lives; 0: the service's (7 days); -1: forever */
} sky_queue_put_options;

SKY_EXTERN void sky_queue_put_options_init(sky_queue_put_options *o);

/**
 * POST /{queue}/messages: @p text (copied) base64-encoded unless the client is raw. A
 * message over SKY_QUEUE_MESSAGE_MAX as sent is refused (SKY_ETOOBIG), naming its size.
 * reply->messages[0] has the id and pop receipt. @p po may be NULL.
 */
SKY_EXTERN int sky_queue_put(sky_queue_client *c, const char *queue, sky_span text,
                             const sky_queue_put_options *po, sky_queue_done_cb cb, void *user_data,
                             sky_queue_op **out_op, sky_error *err) SKY_NODISCARD;
/**
 * GET up to @p count (1..32) messages, hidden from other readers for
 * @p visibility_timeout seconds (0: the service's 30). reply->messages.
 */
SKY_EXTERN int sky_queue_get(sky_queue_client *c, const char *queue, int count,
                             int visibility_timeout, sky_queue_done_cb cb, void *user_data,
                             sky_queue_op **out_op, sky_error *err) SKY_NODISCARD;
/** Look at up to @p count (1..32) messages without hiding them (no pop receipt). */
SKY_EXTERN int sky_queue_peek(sky_queue_client *c, const char *queue, int count,
                              sky_queue_done_cb cb, void *user_data, sky_queue_op **out_op,
                              sky_error *err) SKY_NODISCARD;
/**
 * Hide message @p id for @p visibility_timeout more seconds (from now) and, when @p text
 * is not NULL, replace its content. reply->messages[0] has the new pop receipt, which the
 * next update or the delete must use.
 */
SKY_EXTERN int sky_queue_update(sky_queue_client *c, const char *queue, const char *id,
                                const char *pop_receipt, int visibility_timeout,
                                const sky_span *text, sky_queue_done_cb cb, void *user_data,
                                sky_queue_op **out_op, sky_error *err) SKY_NODISCARD;
/** DELETE one message by its latest pop receipt. */
SKY_EXTERN int sky_queue_delete_message(sky_queue_client *c, const char *queue, const char *id,
                                        const char *pop_receipt, sky_queue_done_cb cb,
                                        void *user_data, sky_queue_op **out_op,
                                        sky_error *err) SKY_NODISCARD;
/** DELETE /{queue}/messages: every message. */
SKY_EXTERN int sky_queue_clear(sky_queue_client *c, const char *queue, sky_queue_done_cb cb,
                               void *user_data, sky_queue_op **out_op,
                               sky_error *err) SKY_NODISCARD;

#endif
