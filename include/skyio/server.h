/* skyio — a small HTTP server over libh2o on the shared libuv loop (used by mock and gateway). */
#ifndef SKYIO_SERVER_H
#define SKYIO_SERVER_H

#include <jansson.h>
#include <uv.h>

#include "common.h"
#include "error.h"

/** Long-lived: a listening server with its routes. */
typedef struct sky_server sky_server;
/**
 * One request being answered. Valid from the handler call until it is
 * disposed: after the response has been sent, or when the client went away
 * (the on_gone callback, when set, says so). On HTTP/1.1 a request still
 * unanswered after 50 to 100 ms has its connection watched, so a client that
 * closes while it waits is gone at once, not when the answer is written.
 */
typedef struct sky_server_req sky_server_req;

typedef struct sky_server_options {
    const char *host;          /**< address to listen on; default "127.0.0.1" */
    int port;                  /**< 0 picks a free port (see sky_server_port) */
    const char *tls_cert_file; /**< PEM chain; with tls_key_file serves HTTPS, h2 via ALPN */
    const char *tls_key_file;
    size_t max_request_body; /**< larger bodies get 413; default 8 MiB */
    int backlog;             /**< listen backlog; default 4096 */
    int reuse_port;          /**< SO_REUSEPORT: several servers (threads) share one port */
    /** A request (head and body) must arrive within this, else 408 (the first request of
     *  a plain-HTTP connection) or the connection is closed; default 10000 */
    uint64_t request_timeout_ms;
} sky_server_options;

SKY_EXTERN void sky_server_options_init(sky_server_options *o);

/** A handler answers now or later; it must eventually respond or abort. */
typedef void (*sky_server_handler_cb)(sky_server_req *req, void *user_data);

/** Returns 0 and *out_server, or a SKY_E code with @p err filled (bad TLS files, ...). */
SKY_EXTERN int sky_server_new(uv_loop_t *loop, const sky_server_options *o, sky_server **out_server,
                              sky_error *err) SKY_NODISCARD;
/**
 * Route @p method (NULL: any) and @p path to @p cb. With @p prefix nonzero the
 * path matches any request path starting with it. First match wins; paths
 * are compared without the query string.
 */
SKY_EXTERN int sky_server_route(sky_server *s, const char *method, const char *path, int prefix,
                                sky_server_handler_cb cb, void *user_data) SKY_NODISCARD;
/** Start listening. Returns 0 or a SKY_E code with @p err filled. */
SKY_EXTERN int sky_server_listen(sky_server *s, sky_error *err) SKY_NODISCARD;
/** The port actually listened on (useful after port 0). */
SKY_EXTERN int sky_server_port(const sky_server *s);
/** Connections accepted so far. */
SKY_EXTERN uint64_t sky_server_connections(const sky_server *s);
/** Connections open now. */
SKY_EXTERN uint64_t sky_server_open_connections(const sky_server *s);
/** Requests being answered now. */
SKY_EXTERN uint64_t sky_server_requests_in_flight(const sky_server *s);

typedef void (*sky_server_shutdown_cb)(sky_server *s, void *user_data);
/**
 * Graceful shutdown: stop accepting, tell HTTP/2 clients (GOAWAY), let
 * requests in flight finish for up to @p grace_ms, abort those still going
 * after it, then close every connection (idle keep-alive ones too). @p cb
 * runs when all are closed, or a second after the close began.
 */
SKY_EXTERN void sky_server_shutdown(sky_server *s, uint64_t grace_ms, sky_server_shutdown_cb cb,
                                    void *user_data);
/**
 * Free the server. Requests still arriving on open connections get 404; the
 * memory h2o still needs for those connections goes when the last closes.
 */
SKY_EXTERN void sky_server_free(sky_server *s);

/* ---- the request ---- */

SKY_EXTERN sky_span sky_server_req_method(const sky_server_req *r);
/** The path without the query string. */
SKY_EXTERN sky_span sky_server_req_path(const sky_server_req *r);
/** The query string without '?', empty when none. */
SKY_EXTERN sky_span sky_server_req_query(const sky_server_req *r);
/** The value of query parameter @p name (not decoded); 1 when found, else 0. */
SKY_EXTERN int sky_server_req_query_param(const sky_server_req *r, const char *name,
                                          sky_span *out_value);
/** The request body (empty when none). */
SKY_EXTERN sky_span sky_server_req_body(const sky_server_req *r);
/** The first value of header @p name (any case); 1 when found, else 0. */
SKY_EXTERN int sky_server_req_header(const sky_server_req *r, const char *name,
                                     sky_span *out_value);
/** The host the client named: HTTP/1's Host header or HTTP/2's :authority (h2o keeps
 *  neither among the headers). Empty when none. Valid as long as the request. */
SKY_EXTERN sky_span sky_server_req_authority(const sky_server_req *r);
/** 1 for HTTP/1.x, 2 for HTTP/2. */
SKY_EXTERN int sky_server_req_http_version(const sky_server_req *r);
/** The server this request came to. */
SKY_EXTERN sky_server *sky_server_req_server(const sky_server_req *r);

/**
 * Attach the handler's own state. @p on_gone runs once when the request is
 * disposed (answered, or the client left): free the state there, and stop
 * using @p r from then on.
 */
SKY_EXTERN void sky_server_req_set_data(sky_server_req *r, void *data, void (*on_gone)(void *data));
SKY_EXTERN void *sky_server_req_data(const sky_server_req *r);

/** Call @p cb after @p ms on the loop, unless the request is disposed first. One at a time. */
SKY_EXTERN int sky_server_req_after(sky_server_req *r, uint64_t ms,
                                    void (*cb)(sky_server_req *r, void *data)) SKY_NODISCARD;

/** Add a response header (before responding). Name and value are copied. */
SKY_EXTERN void sky_server_add_header(sky_server_req *r, const char *name, sky_span value);
/** Answer in one piece; @p body is copied. */
SKY_EXTERN void sky_server_respond(sky_server_req *r, int status, const char *content_type,
                                   sky_span body);
/** Answer with @p body serialized compactly (borrowed) as application/json. */
SKY_EXTERN void sky_server_respond_json(sky_server_req *r, int status, const json_t *body);

/**
 * Start a streamed answer (for SSE: "text/event-stream"); with
 * @p content_length >= 0 it is announced, else the body is chunked (HTTP/1.1).
 */
SKY_EXTERN void sky_server_stream_start(sky_server_req *r, int status, const char *content_type,
                                        int64_t content_length);
/**
 * Queue bytes of a streamed answer (copied) and flush them as soon as the
 * connection allows. With @p final nonzero the answer ends after them.
 * Returns 0, SKY_ESTATE when the stream is not started or already ended.
 */
SKY_EXTERN int sky_server_stream_write(sky_server_req *r, sky_span data, int final);
/** One SSE event "data: <data>\n\n", flushed at once. */
SKY_EXTERN int sky_server_sse_send(sky_server_req *r, sky_span data);
/**
 * One SSE event with a type: "event: <event>\n" (none when @p event is NULL), then
 * @p data, a "data: " line for each of its lines, then a blank line; flushed at once.
 * @p event must not hold a line break. Returns 0, SKY_EINVAL, SKY_ESTATE or SKY_ENOMEM.
 */
SKY_EXTERN int sky_server_sse_send_event(sky_server_req *r, const char *event, sky_span data);
/**
 * End the answer abnormally: on HTTP/1 the connection closes (a started body
 * is cut short), on HTTP/2 the stream is reset.
 */
SKY_EXTERN void sky_server_abort(sky_server_req *r);
/**
 * Reset the connection under the request (TCP RST on HTTP/1; stream reset on
 * HTTP/2), before any answer is written.
 */
SKY_EXTERN void sky_server_reset(sky_server_req *r);

#endif
