/* skyio — incremental parser for text/event-stream (server-sent events). */
#ifndef SKYIO_SSE_H
#define SKYIO_SSE_H

#include "common.h"
#include "buf.h"

/**
 * One dispatched event. Every span is borrowed and valid only during the
 * callback. `data` is the joined `data:` lines (joined by "\n", no trailing
 * newline). `event` is empty when the stream named no type ("message" is
 * implied). `id` is the last event id seen so far (it persists across events,
 * as the specification says). `retry_ms` is -1 unless this event block set it.
 * `is_done` is nonzero when data is exactly "[DONE]" (OpenAI's end marker).
 */
typedef struct sky_sse_event {
    sky_span event;
    sky_span data;
    sky_span id;
    int64_t retry_ms;
    int is_done;
} sky_sse_event;

/** Return 0 to go on, nonzero to stop: feed() then returns SKY_ECANCELED. */
typedef int (*sky_sse_event_cb)(void *user_data, const sky_sse_event *ev);

/**
 * Parser state. Fields are private; the struct is public so it can live
 * inside the caller's own struct without an allocation.
 */
typedef struct sky_sse_parser {
    sky_buf line;  /* the line being read */
    sky_buf data;  /* data of the event being built */
    sky_buf event; /* event type of the event being built */
    sky_buf id;    /* last event id */
    int64_t retry_ms;
    int state; /* bit flags: CR seen at chunk end, BOM checked, stopped */
    size_t max_event;
    sky_sse_event_cb cb;
    void *user_data;
    uint64_t events; /* events dispatched so far */
} sky_sse_parser;

/**
 * Start a parser. @p max_event_bytes caps one line and one event's data
 * (0 means 1 MiB). No allocation until bytes arrive.
 */
SKY_EXTERN void sky_sse_parser_init(sky_sse_parser *p, size_t max_event_bytes, sky_sse_event_cb cb,
                                    void *user_data);
/**
 * Feed the next bytes of the stream; chunks may split anywhere (inside a
 * line, between CR and LF, inside a UTF-8 sequence). Lines end in CRLF, LF or
 * CR; a leading UTF-8 BOM is skipped; lines starting with ':' are comments.
 * Returns 0; SKY_ETOOBIG when a line or event passes the cap; SKY_ENOMEM;
 * SKY_ECANCELED when the callback asked to stop (later feeds do nothing and
 * return SKY_ECANCELED again).
 */
SKY_EXTERN int sky_sse_parser_feed(sky_sse_parser *p, const char *bytes, size_t len) SKY_NODISCARD;
/**
 * End of stream. A last line without its newline is processed; an event
 * not closed by a blank line is discarded, as the specification says.
 * Returns 0, or the errors of feed().
 */
SKY_EXTERN int sky_sse_parser_finish(sky_sse_parser *p) SKY_NODISCARD;
/** Free the parser's buffers. */
SKY_EXTERN void sky_sse_parser_free(sky_sse_parser *p);

#endif
