/* skyio — Azure Resource Manager: requests on resource ids, paged lists, long-running operations.
 */
#ifndef SKYIO_ARM_H
#define SKYIO_ARM_H

#include <jansson.h>
#include <uv.h>

#include "clock.h"
#include "common.h"
#include "error.h"
#include "headers.h"
#include "http.h"
#include "pipeline.h"

/** The public cloud's endpoint; override with sky_arm_options.endpoint or $SKYIO_ARM_ENDPOINT. */
#define SKY_ARM_DEFAULT_ENDPOINT "https://management.azure.com"
/** The Entra ID scope of ARM tokens. */
#define SKY_ARM_SCOPE "https://management.azure.com/.default"
/** The environment variable that overrides the default endpoint (sovereign clouds, tests). */
#define SKY_ARM_ENDPOINT_ENV "SKYIO_ARM_ENDPOINT"

/** Long-lived: an endpoint, a pipeline and the polling defaults. */
typedef struct sky_arm_client sky_arm_client;
/** One-shot: a single request. Valid until its callback returns. */
typedef struct sky_arm_request sky_arm_request;
/** One-shot: a paged list being walked. Valid until its done callback returns. */
typedef struct sky_arm_list sky_arm_list;
/** One-shot: a long-running operation being started or waited for. */
typedef struct sky_arm_lro sky_arm_lro;

typedef struct sky_arm_options {
    /** Base URL; NULL: $SKYIO_ARM_ENDPOINT, else SKY_ARM_DEFAULT_ENDPOINT. Copied. */
    const char *endpoint;
    /** Retry, timeouts, auth (pipeline.auth, or a credential) for every request. Copied. */
    sky_pipeline_options pipeline;
    uint64_t poll_interval_ms; /**< between polls when no Retry-After says; default 30000 */
    const sky_clock *clock;    /**< NULL: the real clock. Borrowed */
} sky_arm_options;

/** Every default. */
SKY_EXTERN void sky_arm_options_init(sky_arm_options *o);

/**
 * A client on @p loop sending through @p http (borrowed: it must outlive the
 * client). Returns 0, SKY_EINVAL (bad endpoint), SKY_ENOMEM.
 */
SKY_EXTERN int sky_arm_client_new(uv_loop_t *loop, sky_http_client *http, const sky_arm_options *o,
                                  sky_arm_client **out, sky_error *err) SKY_NODISCARD;
/** Cancel what is in flight (callbacks run with SKY_ECANCELED) and free the client. */
SKY_EXTERN void sky_arm_client_free(sky_arm_client *c);
/** The endpoint in use (borrowed from the client). */
SKY_EXTERN const char *sky_arm_client_endpoint(const sky_arm_client *c);
/** The pipeline underneath (borrowed), for statistics. */
SKY_EXTERN sky_pipeline *sky_arm_client_pipeline(sky_arm_client *c);

/**
 * The URL for @p path: an absolute http(s) URL is kept, a resource id
 * ("/subscriptions/...") is put after the endpoint; "api-version=@p api_version"
 * is added unless the URL has one (or @p api_version is NULL). New string (free it),
 * NULL when out of memory.
 */
SKY_EXTERN char *sky_arm_url(const sky_arm_client *c, const char *path, const char *api_version);

/**
 * Fill @p err from an ARM error reply: SKY_EHTTP, http_status, service_code
 * = error.code, message = error.message followed by the details' codes and
 * messages. Bodies that are not ARM errors give "HTTP <status>". Returns err->code.
 */
SKY_EXTERN int sky_arm_error_from_reply(int http_status, sky_span body, sky_error *err);

/* ---- single requests ---- */

/** What a request's callback receives. Borrowed: valid until the callback returns. */
typedef struct sky_arm_response {
    int status;                 /**< HTTP status; 0 when no reply arrived */
    const sky_headers *headers; /**< NULL when no reply arrived */
    sky_span body;
    const char *request_id; /**< x-ms-client-request-id sent */
} sky_arm_response;

/** Exactly once. @p err is NULL for a 2xx reply, else the ARM error (or transport error). */
typedef void (*sky_arm_response_cb)(sky_arm_request *req, const sky_arm_response *res,
                                    const sky_error *err, void *user_data);

typedef struct sky_arm_request_options {
    const char *method;      /**< "GET", "PUT", "PATCH", "DELETE", "POST"; default "GET" */
    const char *path;        /**< resource id or absolute URL; required. Copied */
    const char *api_version; /**< added to the URL unless it has one. Copied */
    sky_span body;           /**< JSON body; copied. Empty: none */
    sky_arm_response_cb on_done;
    void *user_data;
} sky_arm_request_options;

SKY_EXTERN void sky_arm_request_options_init(sky_arm_request_options *o);
/** Start one request. Returns 0 (the callback will run, not from inside), or a code with @p err. */
SKY_EXTERN int sky_arm_request_send(sky_arm_client *c, const sky_arm_request_options *o,
                                    sky_arm_request **out_req, sky_error *err) SKY_NODISCARD;
/** Cancel: the callback runs soon with SKY_ECANCELED. */
SKY_EXTERN void sky_arm_request_cancel(sky_arm_request *req);

/* ---- paged lists ---- */

/**
 * One page: @p items is the page's "value" array (borrowed until the callback
 * returns). Return 0 to go on, nonzero to stop (the list then ends without error).
 */
typedef int (*sky_arm_page_cb)(sky_arm_list *l, const json_t *items, void *user_data);
/** The list ended: @p err NULL when every page came (or the page callback stopped it). */
typedef void (*sky_arm_list_done_cb)(sky_arm_list *l, size_t pages, size_t items,
                                     const sky_error *err, void *user_data);

typedef struct sky_arm_list_options {
    const char *path;        /**< collection id or absolute URL; required. Copied */
    const char *api_version; /**< copied */
    sky_arm_page_cb on_page;
    sky_arm_list_done_cb on_done;
    void *user_data;
} sky_arm_list_options;

SKY_EXTERN void sky_arm_list_options_init(sky_arm_list_options *o);
/**
 * Walk {"value": [...], "nextLink": URL} pages one at a time: only one page is
 * in memory. Returns 0 (on_done will run exactly once) or a code with @p err.
 */
SKY_EXTERN int sky_arm_list_start(sky_arm_client *c, const sky_arm_list_options *o,
                                  sky_arm_list **out_list, sky_error *err) SKY_NODISCARD;
/** Cancel: on_done runs soon with SKY_ECANCELED. */
SKY_EXTERN void sky_arm_list_cancel(sky_arm_list *l);

/* ---- long-running operations ---- */

/** How an operation is followed (REFERENCE.md: Azure-AsyncOperation wins). */
typedef enum sky_arm_poll_style {
    SKY_ARM_POLL_NONE = 0, /**< finished with the first reply */
    SKY_ARM_POLL_ASYNC,    /**< GET the Azure-AsyncOperation URL for {"status"} */
    SKY_ARM_POLL_LOCATION, /**< GET the Location URL: 202 while running */
    SKY_ARM_POLL_STATE,    /**< GET the resource for properties.provisioningState */
} sky_arm_poll_style;

/** "none", "async", "location", "state". */
SKY_EXTERN const char *sky_arm_poll_style_name(sky_arm_poll_style s);

/** Progress, after the first reply and after every poll. Borrowed: valid during the call. */
typedef struct sky_arm_lro_progress {
    sky_arm_poll_style style;
    const char *status;       /**< "InProgress", a provisioningState, "Accepted" ... */
    int polls;                /**< polls made so far */
    uint64_t next_poll_ms;    /**< the wait before the next poll */
    uint64_t elapsed_ms;      /**< since the start (or the resume) */
    const char *resume_token; /**< hand to sky_arm_lro_resume to keep waiting elsewhere */
} sky_arm_lro_progress;

typedef void (*sky_arm_lro_progress_cb)(sky_arm_lro *op, const sky_arm_lro_progress *p,
                                        void *user_data);

/** The outcome. Borrowed: valid until the callback returns. */
typedef struct sky_arm_lro_result {
    /** "Succeeded", "Failed", "Canceled" (by the service), "InProgress" (with no_wait),
     *  or "" when we stopped (timeout, cancel, transport error). */
    const char *status;
    sky_arm_poll_style style;
    int http_status; /**< of the final reply */
    sky_span body;   /**< the final resource (PUT/PATCH) or final reply (DELETE/POST) */
    int polls;
    const char *resume_token; /**< NULL when finished at the first reply */
} sky_arm_lro_result;

/**
 * Exactly once. @p err is NULL for success (or for a started operation with
 * no_wait). Otherwise: SKY_EHTTP with the ARM code for a failed operation or
 * reply, SKY_ECANCELED for sky_arm_lro_cancel (status "") or for an operation
 * the service canceled (status "Canceled"), SKY_ETIMEDOUT for the timeout.
 */
typedef void (*sky_arm_lro_done_cb)(sky_arm_lro *op, const sky_arm_lro_result *res,
                                    const sky_error *err, void *user_data);

typedef struct sky_arm_lro_options {
    const char *method;        /**< "PUT", "PATCH", "DELETE", "POST"; default "PUT" */
    const char *path;          /**< resource id or absolute URL; required. Copied */
    const char *api_version;   /**< copied */
    sky_span body;             /**< copied */
    uint64_t poll_interval_ms; /**< 0: the client's default; Retry-After wins when sent */
    uint64_t timeout_ms;       /**< the whole wait; 0: none */
    int no_wait;               /**< 1: report after the first reply, with the resume token */
    sky_arm_lro_progress_cb on_progress;
    sky_arm_lro_done_cb on_done; /**< required */
    void *user_data;
} sky_arm_lro_options;

SKY_EXTERN void sky_arm_lro_options_init(sky_arm_lro_options *o);
/** Send the request and follow the operation. Returns 0 (on_done will run) or a code. */
SKY_EXTERN int sky_arm_lro_begin(sky_arm_client *c, const sky_arm_lro_options *o,
                                 sky_arm_lro **out_op, sky_error *err) SKY_NODISCARD;
/**
 * Keep waiting for an operation from its resume token (any process may do
 * it). @p o gives the callbacks and timing; its method, path and body are
 * ignored. Returns 0 (on_done will run, from the loop, never inside this
 * call), or SKY_EINVAL for a malformed token or one naming a URL outside the
 * client's endpoint (scheme, host and port), with @p err (on_done never runs).
 */
SKY_EXTERN int sky_arm_lro_resume(sky_arm_client *c, const char *token,
                                  const sky_arm_lro_options *o, sky_arm_lro **out_op,
                                  sky_error *err) SKY_NODISCARD;
/** Stop waiting (the operation itself goes on in Azure): on_done runs soon with SKY_ECANCELED. */
SKY_EXTERN void sky_arm_lro_cancel(sky_arm_lro *op);

/* ---- many operations at once ---- */

/** One batch of operations run under a concurrency limit. Long-lived: free it. */
typedef struct sky_arm_bulk sky_arm_bulk;

/**
 * One operation ended, exactly once each: @p index is its place in the order of
 * sky_arm_bulk_add (from 0), @p path its resource id. @p res is NULL when it could
 * not start (then this may run from inside sky_arm_bulk_run); @p err is NULL for
 * success. Everything is borrowed until the callback returns.
 */
typedef void (*sky_arm_bulk_op_cb)(sky_arm_bulk *b, size_t index, const char *path,
                                   const sky_arm_lro_result *res, const sky_error *err,
                                   void *user_data);

/** The tally: total = succeeded + failed + unfinished (never started or stopped). */
typedef struct sky_arm_bulk_counts {
    size_t total, succeeded, failed, unfinished;
} sky_arm_bulk_counts;

/** Every operation started has ended. Exactly once after a successful sky_arm_bulk_run. */
typedef void (*sky_arm_bulk_done_cb)(sky_arm_bulk *b, const sky_arm_bulk_counts *counts,
                                     void *user_data);

typedef struct sky_arm_bulk_options {
    size_t concurrency;  /**< operations at once; default 8 */
    uint64_t timeout_ms; /**< each operation's whole wait; 0: none */
    sky_arm_bulk_op_cb on_op;
    sky_arm_bulk_done_cb on_done;
    void *user_data;
} sky_arm_bulk_options;

/** Every default. */
SKY_EXTERN void sky_arm_bulk_options_init(sky_arm_bulk_options *o);
/**
 * A batch on @p c (borrowed: it must outlive the batch). @p o is copied.
 * Returns 0, SKY_EINVAL (concurrency 0), SKY_ENOMEM.
 */
SKY_EXTERN int sky_arm_bulk_new(sky_arm_client *c, const sky_arm_bulk_options *o,
                                sky_arm_bulk **out) SKY_NODISCARD;
/**
 * Add one long-running operation (@p method NULL: "PUT"); every argument is copied.
 * Returns 0, SKY_EINVAL (no path), SKY_ESTATE (already running), SKY_ENOMEM.
 */
SKY_EXTERN int sky_arm_bulk_add(sky_arm_bulk *b, const char *method, const char *path,
                                const char *api_version, sky_span body) SKY_NODISCARD;
/**
 * Start the first operations; each end starts the next. Returns 0 (on_done will
 * run; from inside this call when none could start), SKY_EINVAL (nothing added),
 * SKY_ESTATE (run twice).
 */
SKY_EXTERN int sky_arm_bulk_run(sky_arm_bulk *b) SKY_NODISCARD;
/** Start no more operations; those in flight go on to their end. */
SKY_EXTERN void sky_arm_bulk_stop(sky_arm_bulk *b);
/** The tally so far. */
SKY_EXTERN void sky_arm_bulk_get_counts(const sky_arm_bulk *b, sky_arm_bulk_counts *out);
/**
 * Stop, cancel what is in flight (on_op runs for each with SKY_ECANCELED, then
 * on_done) and free the batch once they have ended. Allowed from a callback.
 */
SKY_EXTERN void sky_arm_bulk_free(sky_arm_bulk *b);

/*
 * A bulk input file: JSON Lines, one operation a line,
 *   {"id": "/subscriptions/.../resourceGroups/rg1", "body": {...}}
 * (the resource id, starting with '/', and the request body, an object); blank lines are
 * skipped. An error names the line from 1: "line 2: ..." (SKY_EJSON: not JSON; SKY_EINVAL:
 * no "id" or no object "body").
 */

/**
 * Check @p text (borrowed for the call) without a batch, e.g. before any client is made.
 * Returns the number of operations it holds (0 for none), or a SKY_E code with @p err.
 */
SKY_EXTERN long sky_arm_bulk_check_jsonl(sky_span text, sky_error *err) SKY_NODISCARD;
/**
 * Add one operation per line of @p text (borrowed for the call) to @p b, each with @p method
 * (NULL: "PUT") and @p api_version, as sky_arm_bulk_add. Returns the number added, or a
 * SKY_E code with @p err (lines before the bad one stay added).
 */
SKY_EXTERN long sky_arm_bulk_add_jsonl(sky_arm_bulk *b, sky_span text, const char *method,
                                       const char *api_version, sky_error *err) SKY_NODISCARD;

/* ---- resource bodies ---- */

/** The Microsoft.Compute/virtualMachines api-version sky_arm_vm_body writes for. */
#define SKY_ARM_VM_API_VERSION "2024-03-01"

/**
 * A Linux virtual machine on an existing network interface, with SSH key login only (the
 * common case `skyio vm create` serves). Fill with sky_arm_vm_spec_init; every string is
 * borrowed for the call that reads the spec.
 */
typedef struct sky_arm_vm_spec {
    const char *location;       /**< the region; required */
    const char *nic_id;         /**< the network interface's resource id; required */
    const char *ssh_public_key; /**< the public key's text; its trailing newline is dropped */
    const char *size;           /**< default "Standard_B1s" */
    const char *image;          /**< "PUBLISHER:OFFER:SKU:VERSION"; default Ubuntu 24.04 LTS */
    const char *admin_user;     /**< default "azureuser" */
    const char *const *tags;    /**< "KEY=VALUE" each; n_tags of them */
    size_t n_tags;
} sky_arm_vm_spec;

/** Every default; the required fields NULL. */
SKY_EXTERN void sky_arm_vm_spec_init(sky_arm_vm_spec *s);

/**
 * The PUT body for the VM @p name as JSON: a new string (free it) with its length in
 * @p out_len (may be NULL), or NULL with @p err filled: SKY_EINVAL (a required field
 * missing, an image not PUBLISHER:OFFER:SKU:VERSION, a tag not KEY=VALUE), SKY_ENOMEM.
 */
SKY_EXTERN char *sky_arm_vm_body(const sky_arm_vm_spec *s, const char *name, size_t *out_len,
                                 sky_error *err) SKY_NODISCARD;

#endif
