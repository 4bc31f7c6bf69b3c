/*
 * A client that leaves while its HTTP/1.1 request waits for an answer.
 *
 * Why: h2o stops reading an HTTP/1 connection while its request is answered, so the
 * client's close is seen only when the answer is written; an upstream call of minutes ran
 * on for nobody. Streams (written as they come) and HTTP/2 (read all along) do not have
 * this. nginx treats a client's close during a proxied request as an abort; so does this.
 *
 * Cost: a request answered within a sweep or two is never watched, so the fast path gains
 * no system call (one timer, armed while HTTP/1.1 requests are in flight, walks the
 * server's requests every SKY_HELD_SWEEP_MS). A watched request pays eight system calls
 * against a wait of 50 ms or more: the dup; libuv's ioctl and three epoll_ctl checks in
 * uv_poll_init and uv_poll_start; the registration; its removal; the close.
 *
 * libuv allows one watcher per fd in a loop and the connection's uv_tcp_t has it: the watch
 * polls a dup() of the fd. uv_poll_stop (and uv_close) take the fd out of epoll at once
 * (uv__platform_invalidate_fd), so the dup can be closed right after.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "held_watch.h"

struct sky__held {
    uv_timer_t timer; /* first: the close callback frees this pointer */
    int (*sweep)(void *ud);
    void *ud;
};

struct sky__held_watch {
    uv_poll_t poll; /* first: the close callback frees this pointer */
    int fd;         /* the dup, ours to close */
    void (*on_closed)(void *ud);
    void *ud;
};

static void on_sweep(uv_timer_t *t)
{
    sky__held *h = (sky__held *)t;
    if (!h->sweep(h->ud))
        uv_timer_stop(t);
}

sky__held *sky__held_new(uv_loop_t *loop, int (*sweep)(void *ud), void *ud)
{
    sky__held *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    uv_timer_init(loop, &h->timer);
    uv_unref((uv_handle_t *)&h->timer); /* requests keep the loop running, not the sweep */
    h->sweep = sweep;
    h->ud = ud;
    return h;
}

void sky__held_note(sky__held *h)
{
    if (!uv_is_active((uv_handle_t *)&h->timer))
        uv_timer_start(&h->timer, on_sweep, SKY_HELD_SWEEP_MS, SKY_HELD_SWEEP_MS);
}

void sky__held_free(sky__held *h)
{
    if (h)
        uv_close((uv_handle_t *)&h->timer, (uv_close_cb)free);
}

void sky__held_watch_stop(sky__held_watch *w)
{
    uv_close((uv_handle_t *)&w->poll, (uv_close_cb)free); /* out of epoll now */
    close(w->fd);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sky__held_watch *w = (sky__held_watch *)p;
    if (status == 0 && !(events & UV_DISCONNECT))
        return;
    void (*cb)(void *) = w->on_closed;
    void *ud = w->ud;
    sky__held_watch_stop(w);
    cb(ud);
}

sky__held_watch *sky__held_watch_start(uv_loop_t *loop, h2o_conn_t *conn,
                                       void (*on_closed)(void *ud), void *ud)
{
    h2o_socket_t *sock = conn->callbacks->get_socket ? conn->callbacks->get_socket(conn) : NULL;
    int fd = sock ? h2o_socket_get_fd(sock) : -1;
    if (fd < 0)
        return NULL;
    sky__held_watch *w = malloc(sizeof(*w));
    if (w == NULL)
        return NULL;
    w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (w->fd < 0 || uv_poll_init(loop, &w->poll, w->fd) != 0) {
        if (w->fd >= 0)
            close(w->fd);
        free(w);
        return NULL;
    }
    w->on_closed = on_closed;
    w->ud = ud;
    if (uv_poll_start(&w->poll, UV_DISCONNECT, on_poll) != 0) {
        sky__held_watch_stop(w);
        return NULL;
    }
    return w;
}
