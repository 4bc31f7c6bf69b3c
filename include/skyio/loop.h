/* skyio — the one event loop of a process, a thin wrapper over libuv. */
#ifndef SKYIO_LOOP_H
#define SKYIO_LOOP_H

#include <uv.h>

#include "common.h"

typedef struct sky_loop sky_loop;

/** Called on SIGINT or SIGTERM with the signal number. */
typedef void (*sky_signal_cb)(sky_loop *loop, int signum, void *user_data);

/** A new loop (its own uv_loop_t). NULL on out of memory. Free with sky_loop_free. */
SKY_EXTERN sky_loop *sky_loop_new(void);
/** The libuv loop underneath, for code that uses libuv directly. Borrowed. */
SKY_EXTERN uv_loop_t *sky_loop_uv(sky_loop *loop);
/** Run until there is no more work or sky_loop_stop. Returns uv_run's result. */
SKY_EXTERN int sky_loop_run(sky_loop *loop);
/** Ask a running loop to return from sky_loop_run. */
SKY_EXTERN void sky_loop_stop(sky_loop *loop);
/**
 * Watch SIGINT and SIGTERM; @p cb runs on the loop for each. The watchers do
 * not keep the loop alive. Calling again replaces the callback; NULL stops
 * watching. A SIGINT the process ignores (a background job of a shell without
 * job control) stays ignored. Returns 0 or a SKY_E code.
 */
SKY_EXTERN int sky_loop_on_signal(sky_loop *loop, sky_signal_cb cb, void *user_data);
/**
 * Close every handle still open (their close callbacks run), then free the
 * loop. Owners should close their own handles first; this is the safety net.
 */
SKY_EXTERN void sky_loop_free(sky_loop *loop);

#endif
