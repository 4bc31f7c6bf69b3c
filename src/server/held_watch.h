/*
 * Held HTTP/1.1 requests watched for their client's close (held_watch.c). Internal to
 * src/server.
 */
#ifndef SKY_SERVER_HELD_WATCH_H
#define SKY_SERVER_HELD_WATCH_H

#include <h2o.h>
#include <uv.h>

/*
 * How often the sweep runs while an HTTP/1.1 request waits for its answer; a request still
 * unanswered at two sweeps in a row (held 50 to 100 ms) gets its connection watched. Why 50:
 * a model call takes hundreds of milliseconds or more, so its client's close is still acted
 * on early in it; a fast request delayed by a stall of the loop or of the machine (tens of
 * milliseconds on a busy host: at 25 ms, 0.4% of the zero-latency bench's requests were
 * watched under strace at load 10) is not watched for it; and the timer wakes the loop 20
 * times a second while HTTP/1.1 requests are in flight.
 */
#define SKY_HELD_SWEEP_MS 50

typedef struct sky__held sky__held;
typedef struct sky__held_watch sky__held_watch;

/*
 * The server's sweep timer, not armed yet. @p sweep(@p ud) runs at each tick and returns
 * nonzero while some request is left to look at again; at 0 the timer stops until the next
 * sky__held_note. NULL when out of memory.
 */
sky__held *sky__held_new(uv_loop_t *loop, int (*sweep)(void *ud), void *ud);
/* An HTTP/1.1 request came in: arm the sweep unless it is armed. No system call. */
void sky__held_note(sky__held *h);
/* Stop and free the timer (its memory goes with its close callback). NULL is ignored. */
void sky__held_free(sky__held *h);

/*
 * Watch @p conn's socket for the client's close (FIN or reset; readable data, such as a
 * pipelined request, is not one): on it the watch ends itself and @p on_closed(@p ud) runs
 * once. The watch holds a dup() of the socket, polled with libuv for UV_DISCONNECT only,
 * since the connection's own fd is libuv's already. NULL when it cannot be made (no fd left,
 * no memory): nothing is watched then.
 */
sky__held_watch *sky__held_watch_start(uv_loop_t *loop, h2o_conn_t *conn,
                                       void (*on_closed)(void *ud), void *ud);
/* End the watch: the poll's registration goes now, its dup is closed, its memory with the
 * close callback; @p on_closed does not run. */
void sky__held_watch_stop(sky__held_watch *w);

#endif
