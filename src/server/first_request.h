/*
 * The first request of a plain-HTTP connection, read before h2o sees it (first_request.c).
 * Internal to src/server.
 */
#ifndef SKY_SERVER_FIRST_REQUEST_H
#define SKY_SERVER_FIRST_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The request line over this: 414. */
#define SKY_FIRST_MAX_LINE (16u * 1024u)
/* The request line and headers over this, or over SKY_FIRST_MAX_HEADERS headers: 431. */
#define SKY_FIRST_MAX_HEAD (64u * 1024u)
#define SKY_FIRST_MAX_HEADERS 100 /* h2o's H2O_MAX_HEADERS: over it h2o answers in text */

typedef struct sky__first sky__first;

/*
 * The guard is done. @p data (@p len bytes: the whole first request, maybe more behind it)
 * is valid for the call only: give it to h2o. Or @p refused: the client was answered (an
 * OpenAI-shaped JSON error) or sent nothing, and the connection is to be closed now.
 */
typedef void (*sky__first_cb)(void *user_data, const char *data, size_t len, int refused);

/*
 * Read @p tcp's first request whole (its body too when it has a Content-Length and no
 * Expect) within @p timeout_ms, a body of at most @p max_body. What h2o would refuse in
 * plain text, or by closing without a word, gets JSON here: a header flood (431), a request
 * line too long (414), a malformed head or Content-Length (400), a body over the limit
 * (413), a client too slow to send it (408). An error answer is followed by a lingering
 * close, so the client reads it rather than a reset. @p cb runs once; NULL when out of
 * memory (nothing started).
 */
sky__first *sky__first_start(uv_tcp_t *tcp, size_t max_body, uint64_t timeout_ms, sky__first_cb cb,
                             void *user_data);
/* Stop now: @p cb runs with refused set, no answer sent. */
void sky__first_cancel(sky__first *f);

#endif
