/* skyio — asynchronous HTTP client: libcurl's multi-socket interface on the libuv loop. */
#ifndef SKYIO_HTTP_H
#define SKYIO_HTTP_H

#include <uv.h>

#include "common.h"
#include "error.h"
#include "headers.h"

/** Long-lived: one per loop is usual. Holds the connection pool. */
typedef struct sky_http_client sky_http_client;
/** One-shot: a request in flight. Valid until its done callback returns. */
typedef struct sky_http_request sky_http_request;

typedef struct sky_http_client_options {
    long connect_timeout_ms;   /**< default 300000 (azure-core's 300 s) */
    size_t max_response_bytes; /**< cap for buffered bodies; default 64 MiB */
    const char *ca_file;       /**< PEM bundle to trust; NULL: $SSL_CERT_FILE, else system */
    int verify_peer;           /**< verify certificates and host names; default 1 */
    int http2;                 /**< offer HTTP/2 over TLS through ALPN; default 1 */
    /** speak HTTP/2 over cleartext (h2c) directly; default 0. With libcurl before 8.0,
     *  which cannot reuse an h2c connection, each request opens a connection of its own. */
    int http2_prior_knowledge;
    long max_host_connections;  /**< 0: no limit (curl's default) */
    long max_total_connections; /**< 0: no limit */
    /** curl's receive buffer per transfer; 0 (default): 2048 for HTTP/1.1, and 1024 where
     *  HTTP/2 may be used, since there it only takes copies from the connection's own
     *  buffer (more calls, no more system calls). With libcurl before 8.0, HTTP/2 gets at
     *  least 32768 whatever is set: a smaller one could hold a stream's end until the
     *  server's idle timeout */
    long recv_buffer_size;
    /** curl's send buffer per transfer, 16384..2097152; default 16384 (its minimum: with
     *  thousands of small requests in flight it adds up). Released as soon as an in-memory
     *  body has been sent. Large streamed uploads go faster with more (fewer reads and send
     *  calls). */
    long upload_buffer_size;
    /** Independent curl multi handles the transfers are spread over; default 1. libcurl
     *  7.88 searches all of a host's connections for each new transfer: with thousands in
     *  flight, about one shard per 500 keeps that cheap. Connections are reused within a
     *  shard only. 1..64. */
    int shards;
    const char *user_agent; /**< default "skyio/<version>" */
    /** SKY_HTTP_TRANSPORT_CURL (default) or SKY_HTTP_TRANSPORT_H2O: plain http:// requests
     *  to an IP literal or localhost with an in-memory body then go through skyio's own
     *  HTTP/1.1 client on the loop (replies parsed by the picohttpparser of libh2o, hence
     *  the name; live keep-alive connections pooled per origin, idle ones closed after 4 s;
     *  a tenth of curl's instructions a request); the rest still through curl, and every
     *  request when a proxy variable (http_proxy, HTTP_PROXY, all_proxy...) is set. On
     *  that transport a body callback cannot pause (SKY_HTTP_PAUSE fails the request), and
     *  of the other options only connect_timeout_ms (SKY_ETIMEDOUT, "connect timed out",
     *  as curl's) and max_response_bytes apply. */
    int transport;
} sky_http_client_options;

enum { SKY_HTTP_TRANSPORT_CURL = 0, SKY_HTTP_TRANSPORT_H2O = 1 };

/** Fill @p o with every default. */
SKY_EXTERN void sky_http_client_options_init(sky_http_client_options *o);

/**
 * A new client on @p loop. @p options may be NULL for defaults; it is copied.
 * Returns 0 and *out_client, or SKY_EINVAL / SKY_ENOMEM / SKY_EINTERNAL.
 */
SKY_EXTERN int sky_http_client_new(uv_loop_t *loop, const sky_http_client_options *options,
                                   sky_http_client **out_client) SKY_NODISCARD;

/**
 * Cancel every request in flight (each done callback runs now with
 * SKY_ECANCELED), then close the client. Its memory is released once the
 * loop has run the close callbacks of its handles. Called from inside one of
 * this client's callbacks, the free happens when that callback returns.
 */
SKY_EXTERN void sky_http_client_free(sky_http_client *client);

/** Number of requests in flight. */
SKY_EXTERN size_t sky_http_client_active(const sky_http_client *client);

/** What the done callback receives. Borrowed: valid until the callback returns. */
typedef struct sky_http_response {
    int status;                 /**< final HTTP status, 0 when none arrived */
    const sky_headers *headers; /**< final response's headers */
    sky_span body;              /**< the body, when no on_body callback streamed it */
    int http_version;           /**< 1 or 2, 0 when unknown */
    int reused_connection;      /**< nonzero when no new connection was opened */
    uint64_t total_us;          /**< from start to the last byte */
} sky_http_response;

/** The response's status and headers have arrived (before any body). */
typedef void (*sky_http_headers_cb)(sky_http_request *req, int status, const sky_headers *headers,
                                    void *user_data);
/**
 * Returned by a body reader or a body callback to pause the transfer (in that
 * direction) until sky_http_request_resume: back-pressure for bodies streamed
 * from or to slower places, such as files through libuv. A paused body
 * callback gets the same chunk again after the resume.
 */
#define SKY_HTTP_PAUSE (-0x7fff)

/**
 * A chunk of the body. Return 0 to go on, SKY_HTTP_PAUSE to hold the rest
 * (this chunk comes again after sky_http_request_resume), any other nonzero
 * value to cancel the request.
 */
typedef int (*sky_http_body_cb)(sky_http_request *req, const char *data, size_t len,
                                void *user_data);
/**
 * The request is over: exactly once, whatever happened. @p err is NULL when
 * a whole HTTP response arrived (of any status: deciding what a status means
 * is the caller's business); otherwise it says why not (SKY_ECANCELED after
 * a cancel). After this returns, @p req is gone.
 */
typedef void (*sky_http_done_cb)(sky_http_request *req, const sky_http_response *res,
                                 const sky_error *err, void *user_data);
/**
 * Supply up to @p cap bytes of a streamed request body into @p out. Return the
 * count written, 0 at the end, SKY_HTTP_PAUSE when nothing is ready yet (call
 * sky_http_request_resume once it is), or a negative SKY_E code to fail the
 * request.
 */
typedef long (*sky_http_read_cb)(char *out, size_t cap, void *user_data);

typedef struct sky_http_request_options {
    const char *method; /**< "GET" when NULL */
    const char *url;    /**< required */
    /** Request headers; copied at send. May be NULL. A body goes with the Content-Type
     *  given here, or with none: never curl's application/x-www-form-urlencoded. */
    const sky_headers *headers;
    sky_span body;                /**< in-memory body; copied at send */
    sky_http_read_cb body_reader; /**< or a streamed body (then body is ignored) */
    int64_t body_length;          /**< length of the streamed body; -1: chunked */
    long timeout_ms;              /**< whole request; 0: none */
    size_t max_response_bytes;    /**< 0: the client's cap */
    /** curl's receive and send buffers for this request; 0: the client's. Large bodies
     *  move with fewer reads, writes and callbacks through larger ones (at most 512 KiB
     *  and 2 MiB); a request that sets either gets an easy handle of its own. Over HTTP/2
     *  with libcurl before 8.0 the receive buffer is at least 32768 (see the client's). */
    long recv_buffer_size;
    long upload_buffer_size;
    sky_http_headers_cb on_headers;
    sky_http_body_cb on_body; /**< when set, the body is streamed, not buffered */
    sky_http_done_cb on_done; /**< required */
    void *user_data;
} sky_http_request_options;

/** Fill @p o with defaults (GET, no body, no timeout). */
SKY_EXTERN void sky_http_request_options_init(sky_http_request_options *o);

/**
 * Start a request. On success returns 0 and, when @p out_req is not NULL, the
 * handle; the done callback will run exactly once, never from inside this
 * call. On failure returns a SKY_E code, fills @p err when given, and the
 * callback never runs. Fails with SKY_ESTATE on a client being freed.
 */
SKY_EXTERN int sky_http_request_send(sky_http_client *client, const sky_http_request_options *o,
                                     sky_http_request **out_req, sky_error *err) SKY_NODISCARD;

/**
 * Cancel a request in flight. Its done callback runs soon, from the loop,
 * with SKY_ECANCELED (not from inside this call). Cancelling a request that
 * already finished its transfer but not yet reported is also a cancel.
 */
SKY_EXTERN void sky_http_request_cancel(sky_http_request *req);

/**
 * Continue a transfer paused by SKY_HTTP_PAUSE (either direction). Does
 * nothing for a request that is not paused or was cancelled. The body
 * callback may run from inside this call with the chunk it held back. Not
 * allowed after the done callback (the request is gone).
 */
SKY_EXTERN void sky_http_request_resume(sky_http_request *req);

/** Map a CURLcode to a SKY_E code and whether a retry could help. */
SKY_EXTERN int sky_http_map_curl_code(int curl_code, int *out_retryable);

#endif
