/*
 * The framing of an HTTP/1.1 reply for the h2o transport (h1.c): picohttpparser, which
 * libh2o carries and exports, parses the status line and the headers and decodes chunked
 * bodies; this module only tells, from what it parsed, where the body ends (RFC 9112
 * section 6.3): no body after a HEAD request or a 1xx, 204 or 304 status, else chunked,
 * else Content-Length, else until the upstream closes. Internal to src/http.
 */
#ifndef SKY_HTTP_H1_REPLY_H
#define SKY_HTTP_H1_REPLY_H

#include <stddef.h>
#include <stdint.h>

/* picohttpparser's types (its header is not installed): a header as it parsed it, and the
 * chunked decoder's state, with room to spare for the fields later versions add */
typedef struct sky__phr_header {
    const char *name; /* NULL for the continuation of a folded line */
    size_t name_len;
    const char *value;
    size_t value_len;
} sky__phr_header;

typedef struct sky__phr_chunked {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char hex_count;
    char state;
    char reserved[37];
} sky__phr_chunked;

enum { SKY__H1_HEAD, SKY__H1_LENGTH, SKY__H1_CHUNKED, SKY__H1_CLOSE, SKY__H1_DONE };

#define SKY__H1_MAX_HEADERS 100

typedef struct sky__h1_reply {
    int state;      /* SKY__H1_HEAD until a final head was parsed */
    int is_head;    /* the request was HEAD: no body, whatever the headers say */
    int status;     /* the last head's status */
    int interim;    /* the last head was a 1xx: another head follows */
    int keep_alive; /* the connection may carry another request after this reply */
    uint64_t left;  /* SKY__H1_LENGTH: body bytes still to come */
    sky__phr_chunked chunked;
} sky__h1_reply;

/** A reply to a request, @p is_head when that was a HEAD. */
void sky__h1_reply_init(sky__h1_reply *p, int is_head);

/**
 * Parse a head at @p buf. Returns its length (the body starts after it), 0 when more bytes
 * are needed, -1 for a malformed head (or more than @p *n headers). On success, @p hdrs
 * holds @p *n headers (pointing into @p buf), and the state says how the body is framed;
 * with `interim` set the head was a 1xx and the state is still SKY__H1_HEAD.
 */
int sky__h1_reply_head(sky__h1_reply *p, const char *buf, size_t len, sky__phr_header *hdrs,
                       size_t *n);

/**
 * Frame the body bytes at @p buf (chunked ones are decoded in place). Sets @p *body to the
 * number of body bytes now at the start of @p buf and @p *used to the bytes of @p len that
 * belong to this reply. Returns 1 when the body is complete, 0 when more is to come, -1
 * for a malformed chunked body.
 */
int sky__h1_reply_body(sky__h1_reply *p, char *buf, size_t len, size_t *body, size_t *used);

/** The upstream closed the connection: 1 when that ends the body (read until close). */
int sky__h1_reply_eof(const sky__h1_reply *p);

#endif
