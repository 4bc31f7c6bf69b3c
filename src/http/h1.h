/*
 * The HTTP client's second transport: HTTP/1.1 on libuv directly, replies parsed by the
 * picohttpparser that libh2o carries, with a pool of live keep-alive connections per
 * origin, on the client's libuv loop (named for h2o, whose client it was). A client made with
 * SKY_HTTP_TRANSPORT_H2O sends here the requests this transport can take (plain http://
 * to an IP literal or localhost, an in-memory body); every other request (TLS, HTTP/2, a
 * host name to resolve, a streamed upload, curl buffer sizes) still goes through curl.
 * Internal to src/http.
 */
#ifndef SKY_HTTP_H1_H
#define SKY_HTTP_H1_H

#include <uv.h>

#include "skyio/http.h"

/* the first member of both request kinds: which transport a sky_http_request is */
enum { SKY__HTTP_KIND_CURL = 0, SKY__HTTP_KIND_H1 = 1 };

typedef struct sky__h1 sky__h1;

int sky__h1_new(sky_http_client *c, uv_loop_t *loop, const sky_http_client_options *o,
                sky__h1 **out);
/** Nonzero when @p o can go through this transport. */
int sky__h1_takes(sky__h1 *h, const sky_http_request_options *o);
int sky__h1_send(sky__h1 *h, const sky_http_request_options *o, sky_http_request **out_req,
                 sky_error *err);
void sky__h1_cancel(sky_http_request *r);
/** Requests this transport has in flight. */
size_t sky__h1_active(const sky__h1 *h);
/** Ends every request (done callbacks with SKY_ECANCELED, from inside this call) and closes
 *  the pools; the memory goes once the loop has closed the handles. */
void sky__h1_free(sky__h1 *h);

/* from client.c: the client's callback depth, so a free from a callback waits */
void sky__http_enter(sky_http_client *c);
/** Leaves a callback; nonzero when the client should now be freed (from the loop). */
int sky__http_leave(sky_http_client *c);
void sky__http_maybe_free(sky_http_client *c);

#endif
