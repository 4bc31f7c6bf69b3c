/* The process's event loop: a libuv loop plus the SIGINT/SIGTERM watchers. */
#include <signal.h>
#include <stdlib.h>

#include "skyio/error.h"
#include "skyio/loop.h"

struct sky_loop {
    uv_loop_t uv;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    sky_signal_cb signal_cb;
    void *signal_data;
};

/* How many times sky_loop_free closes stragglers before it gives up on the loop. */
#define LOOP_CLOSE_ATTEMPTS 8

static int from_uv(int uv_err)
{
    switch (uv_err) {
    case 0:
        return 0;
    case UV_ENOMEM:
        return SKY_ENOMEM;
    case UV_EINVAL:
        return SKY_EINVAL;
    case UV_EBUSY:
        return SKY_EBUSY;
    default:
        return SKY_EIO;
    }
}

sky_loop *sky_loop_new(void)
{
    sky_loop *loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return NULL;
    if (uv_loop_init(&loop->uv) != 0) {
        free(loop);
        return NULL;
    }
    loop->uv.data = loop;
    return loop;
}

uv_loop_t *sky_loop_uv(sky_loop *loop)
{
    return &loop->uv;
}

int sky_loop_run(sky_loop *loop)
{
    return uv_run(&loop->uv, UV_RUN_DEFAULT);
}

void sky_loop_stop(sky_loop *loop)
{
    uv_stop(&loop->uv);
}

static void on_uv_signal(uv_signal_t *handle, int signum)
{
    sky_loop *loop = handle->data;
    if (loop->signal_cb)
        loop->signal_cb(loop, signum, loop->signal_data);
}

/* The loop struct starts zeroed, so a watcher not yet initialized has no type. */
static int watcher_ready(const uv_signal_t *w)
{
    return w->type == UV_SIGNAL;
}

/*
 * Set up a watcher once; it does not keep the loop alive on its own. An
 * initialized watcher stays open until sky_loop_free closes it.
 */
static int watcher_init(sky_loop *loop, uv_signal_t *w)
{
    if (watcher_ready(w))
        return 0;
    int rc = uv_signal_init(&loop->uv, w);
    if (rc != 0)
        return rc;
    w->data = loop;
    uv_unref((uv_handle_t *)w);
    return 0;
}

static void signals_stop(sky_loop *loop)
{
    if (watcher_ready(&loop->sigint))
        uv_signal_stop(&loop->sigint);
    if (watcher_ready(&loop->sigterm))
        uv_signal_stop(&loop->sigterm);
}

/*
 * A shell without job control starts a background job with SIGINT ignored, so that
 * a Ctrl-C meant for the foreground does not reach it. Such a process keeps ignoring
 * it, as Unix programs do; libuv would install its handler regardless.
 */
static int sigint_ignored(const sky_loop *loop)
{
    struct sigaction sa;
    if (watcher_ready(&loop->sigint) && uv_is_active((const uv_handle_t *)&loop->sigint))
        return 0; /* ours is installed */
    return sigaction(SIGINT, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

static int signals_start(sky_loop *loop)
{
    int watch_int = !sigint_ignored(loop);
    int rc = watcher_init(loop, &loop->sigint);
    if (rc == 0)
        rc = watcher_init(loop, &loop->sigterm);
    if (rc == 0 && watch_int)
        rc = uv_signal_start(&loop->sigint, on_uv_signal, SIGINT);
    if (rc == 0)
        rc = uv_signal_start(&loop->sigterm, on_uv_signal, SIGTERM);
    return rc;
}

int sky_loop_on_signal(sky_loop *loop, sky_signal_cb cb, void *user_data)
{
    if (loop == NULL)
        return SKY_EINVAL;
    loop->signal_cb = cb;
    loop->signal_data = user_data;
    if (cb == NULL) {
        signals_stop(loop);
        return 0;
    }
    int rc = signals_start(loop);
    if (rc != 0) {
        signals_stop(loop);
        loop->signal_cb = NULL;
        loop->signal_data = NULL;
    }
    return from_uv(rc);
}

static void close_walk_cb(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

void sky_loop_free(sky_loop *loop)
{
    if (loop == NULL)
        return;
    for (int i = 0; i < LOOP_CLOSE_ATTEMPTS; i++) {
        uv_walk(&loop->uv, close_walk_cb, NULL);
        uv_run(&loop->uv, UV_RUN_DEFAULT);
        if (uv_loop_close(&loop->uv) == 0) {
            free(loop);
            return;
        }
    }
    /*
     * Something keeps reopening handles or requests never finish. Freeing the
     * memory now would let libuv write into freed storage later, so leak it.
     */
}
