/* Queue client internals shared by its files: the client, an operation, XML and messages. */
#ifndef SKY_QUEUE_INTERNAL_H
#define SKY_QUEUE_INTERNAL_H

#include "skyio/buf.h"
#include "skyio/pipeline.h"
#include "skyio/queue.h"

#include "../storage_client.h"

struct sky_queue_client {
    uv_loop_t *loop;
    sky_http_client *http;
    sky_pipeline *pipe;         /* every request goes through it */
    sky_queue_client_options o; /* strings below are our copies */
    sky__storage_conn s;        /* endpoint and auth, copied */
    sky_queue_op *ops;          /* every op not yet reported */
};

/* What an operation's reply holds, and so how it is read. */
enum sky__queue_kind {
    SKY__QUEUE_PLAIN,    /* nothing to read */
    SKY__QUEUE_LIST,     /* EnumerationResults */
    SKY__QUEUE_MESSAGES, /* QueueMessagesList of get and peek */
    SKY__QUEUE_PUT,      /* QueueMessagesList with the id and receipt of the put */
    SKY__QUEUE_UPDATE,   /* the new receipt in headers */
    SKY__QUEUE_PROPS     /* approximate count and metadata in headers */
};

struct sky_queue_op {
    sky_queue_client *c;       /* NULL once the client is gone (the op waits for its call) */
    sky_queue_op *prev, *next; /* in c->ops */
    sky_call *call;
    int kind;
    char *what; /* "GET /queue/messages" for a failure's words: never a query */
    char *id;   /* update: the message's id, for the reply */
    sky_queue_done_cb cb;
    void *user_data;
};

/** A request of an operation: method, the path under the endpoint, query, headers, body. */
typedef struct sky__queue_req {
    const char *method;
    const char *queue;          /* NULL: the account (list) */
    const char *path_rest;      /* after /{queue}: "/messages", "/messages/{id}" or NULL */
    const char *query;          /* without '?', percent-encoded; may be NULL */
    const sky_headers *headers; /* extra (metadata); may be NULL */
    sky_span body;
    int kind;
    const char *id;
} sky__queue_req;

/** Start @p q as a new op of @p c. 0, or a SKY_E code with @p err filled (no callback). */
int sky__queue_start(sky_queue_client *c, const sky__queue_req *q, sky_queue_done_cb cb,
                     void *user_data, sky_queue_op **out_op, sky_error *err);

/* ---- XML (xml.c, expat) ---- */

typedef struct sky__queue_parsed {
    sky_queue_message *messages;
    size_t count, cap;
    char **texts; /* each message's text as stored, before decoding */
    char **queues;
    size_t nqueues, qcap;
    char *next_marker;
} sky__queue_parsed;

/** Parse a QueueMessagesList or an EnumerationResults body. 0, SKY_EPROTO, SKY_ENOMEM. */
int sky__queue_parse(sky_span xml, sky__queue_parsed *out);
void sky__queue_parsed_free(sky__queue_parsed *p);

/* ---- message text (message.c) ---- */

/**
 * The <QueueMessage> body for @p text: base64 (raw 0) or XML-escaped (raw 1). Returns 0,
 * SKY_ETOOBIG (over SKY_QUEUE_MESSAGE_MAX, with @p err naming the size) or SKY_ENOMEM.
 */
int sky__queue_message_body(sky_span text, int raw, sky_buf *out, sky_error *err);

/** Decode each parsed message's text in place (raw 0), marking those not base64. */
int sky__queue_decode_texts(sky__queue_parsed *p, int raw);

#endif
