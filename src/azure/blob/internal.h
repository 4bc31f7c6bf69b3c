/* Blob client internals shared by its files: the client, operations, one request. */
#ifndef SKY_BLOB_INTERNAL_H
#define SKY_BLOB_INTERNAL_H

#include "skyio/blob.h"
#include "skyio/pipeline.h"

#include "../storage_client.h"

typedef struct sky__blob_req sky__blob_req;

struct sky_blob_client {
    uv_loop_t *loop;
    sky_http_client *http;
    sky_pipeline *pipe;        /* every request goes through it: retries, limits, breaker */
    sky_blob_client_options o; /* strings below are our copies */
    sky__storage_conn s;       /* endpoint and auth, copied */
    sky_blob_op *ops;          /* every op not yet freed */
    size_t nops;
    int freeing;
};

/* What an op does when it is freed, and its kind's state. */
typedef void (*sky__blob_state_free)(void *state);

struct sky_blob_op {
    sky_blob_client *c;
    sky_blob_op *prev, *next; /* in c->ops */
    sky__blob_req *reqs;      /* requests not yet reported (in the pipeline) */
    sky_blob_done_cb cb;
    void *user_data;
    sky_error err;
    int refs;     /* one for the report, one per request not yet closed, fs calls */
    int reported; /* the callback ran */
    int canceled;
    sky_blob_transfer_stats stats;
    void *state;
    sky__blob_state_free state_free;
    /* Called on cancel (after the requests are cancelled), for kinds with more to stop. */
    void (*on_cancel)(sky_blob_op *op);
};

/*
 * A request has finished: @p err is NULL for a 2xx reply (and a 404 with not_found_ok).
 * Everything is borrowed for the call; @p body is the buffered reply body.
 */
typedef void (*sky__blob_req_cb)(sky__blob_req *r, int status, const sky_headers *headers,
                                 sky_span body, const sky_error *err, void *user_data);

typedef struct sky__blob_req_options {
    const char *method;
    const char *url;            /* without the SAS; copied */
    const sky_headers *headers; /* extra headers; copied */
    const char *body;           /* borrowed: must live until the callback */
    size_t body_len;            /* of body, or of what reader gives */
    /*
     * A streamed body instead of `body`: body_len bytes from reader, which may
     * return SKY_HTTP_PAUSE (then sky__blob_req_resume once it has more).
     */
    sky_http_read_cb reader;
    /*
     * A 2xx reply's body goes to sink instead of the buffer (error bodies are
     * still buffered, for their Storage error code): return 0, SKY_HTTP_PAUSE
     * (then sky__blob_req_resume; the chunk comes again), or nonzero to fail.
     */
    int (*sink)(void *user_data, const char *data, size_t len);
    /* Before the first attempt, and before another once a reader or sink has been used: the
     * reader or sink starts over. */
    void (*on_attempt)(void *user_data);
    int large;        /* a big body either way: curl's larger buffers (fewer syscalls, callbacks) */
    size_t max_body;  /* reply body cap; 0: 16 MiB */
    int not_found_ok; /* a 404 is reported as success (exists) */
    sky__blob_req_cb cb;
    void *user_data;
} sky__blob_req_options;

/** Make an op (refs 1) linked into the client. NULL on out of memory. */
sky_blob_op *sky__blob_op_new(sky_blob_client *c, sky_blob_done_cb cb, void *user_data);
/** Drop one reference; frees the op at zero. */
void sky__blob_op_unref(sky_blob_op *op);
/** Report once (@p err NULL for success) and drop the report's reference. */
void sky__blob_op_report(sky_blob_op *op, const sky_blob_reply *reply, const sky_error *err);
/** Record the first error and cancel the op's requests in flight. */
void sky__blob_op_fail(sky_blob_op *op, const sky_error *err);

/**
 * Start one request of @p op through the client's pipeline. Returns 0 or a SKY_E code with
 * @p err filled (then the callback never runs). With @p out_req the request's handle,
 * valid until its callback returns.
 */
int sky__blob_req_start(sky_blob_op *op, const sky__blob_req_options *o, sky__blob_req **out_req,
                        sky_error *err);

/** Continue a request whose reader or sink said SKY_HTTP_PAUSE (no-op otherwise). */
void sky__blob_req_resume(sky__blob_req *r);

/** Cancel every request of @p op: each callback runs soon, from the loop, with the op's error. */
void sky__blob_req_cancel_all(sky_blob_op *op);

/**
 * A Storage error reply in the client's words: SKY_EHTTP, "<method> <path>: <message>"
 * (the URL's query left out), http_status and the Storage error code (the
 * x-ms-error-code header's over the XML body's). Into @p e, cleared by the caller.
 */
void sky__blob_describe_error(const char *method, const char *url, int status, const sky_headers *h,
                              sky_span body, sky_error *e);

/**
 * The URL of a container (blob NULL) or blob, names percent-encoded, plus
 * @p query ("restype=container", may be NULL). Appended to @p out.
 */
int sky__blob_url(const sky_blob_client *c, const char *container, const char *blob,
                  const char *query, sky_buf *out);

/* ---- names (names.c) ---- */

/** @p len bytes of @p s for a message: whole when short, else cut with its length. */
const char *sky__blob_short(const char *s, size_t len, char *out, size_t out_len);

/**
 * Whether a local @p path (plus @p suffix more bytes, a partial file's) fits the file
 * system's limits: PATH_MAX for the whole, NAME_MAX for each part. 0 or SKY_EINVAL.
 */
int sky__blob_local_path_check(const char *path, size_t suffix, sky_error *err);

/* ---- MD5 (md5.c) ---- */

/* A base64 MD5 with its NUL. */
#define SKY__BLOB_MD5_B64 25

/** base64(MD5(@p data)) into @p out. */
void sky__blob_md5_mem(const void *data, size_t len, char out[SKY__BLOB_MD5_B64]);

/**
 * base64(MD5) of @p len bytes of @p fd from @p off, read with pread through @p buf
 * (@p cap bytes). Blocking: for the thread pool. 0, or -1 when the file cannot be read
 * or is shorter (then @p out is untouched).
 */
int sky__blob_md5_fd(int fd, int64_t off, int64_t len, char *buf, size_t cap,
                     char out[SKY__BLOB_MD5_B64]);

/** The whole file's MD5 (@p size bytes of @p fd), through a buffer of its own. */
int sky__blob_md5_file(int fd, int64_t size, char out[SKY__BLOB_MD5_B64]);

/** The MD5 of the file at @p path, as long as it is when opened. Blocking: 0, or -1. */
int sky__blob_md5_path(const char *path, char out[SKY__BLOB_MD5_B64]);

/* ---- XML (expat) ---- */

typedef struct sky__blob_list {
    sky_blob_item *items;
    size_t count, cap;
    char *next_marker;
    int in_prefix; /* inside a BlobPrefix */
} sky__blob_list;

/** Parse an EnumerationResults body (containers or blobs). 0, SKY_EPROTO, SKY_ENOMEM. */
int sky__blob_parse_list(sky_span xml, sky__blob_list *out);
void sky__blob_list_free(sky__blob_list *l);

/** Block names (base64 ids) and sizes from a BlockList body. */
typedef struct sky__blob_blocks {
    char **names;
    int64_t *sizes;
    size_t count, cap;
} sky__blob_blocks;

int sky__blob_parse_blocks(sky_span xml, sky__blob_blocks *out);
void sky__blob_blocks_free(sky__blob_blocks *b);

/** <Error><Code>..</Code><Message>..</Message></Error>: copies into the buffers (may be empty). */
void sky__blob_parse_error(sky_span xml, char *code, size_t code_len, char *msg, size_t msg_len);

#endif
