/*
 * hiredis's async context on a libuv loop: one uv_poll_t per connection, started for the
 * events hiredis asks for. hiredis 0.14's own adapter (adapters/libuv.h) drops a poll that
 * reports an error, so a refused connection is never noticed; here an error hands the
 * socket to hiredis, which reads the cause (SO_ERROR, ECONNREFUSED) and disconnects.
 */
#include <stdlib.h>

#include "redis_internal.h"

typedef struct uv_events {
    redisAsyncContext *ac; /* NULL once hiredis has let go */
    uv_poll_t poll;
    int events;
} uv_events;

static void on_poll(uv_poll_t *h, int status, int events)
{
    uv_events *ev = h->data;
    if (status < 0)
        events = ev->events; /* let hiredis meet the error on its next read or write */
    if (ev->ac && (events & UV_READABLE))
        redisAsyncHandleRead(ev->ac);
    if (ev->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(ev->ac);
}

static void set_events(uv_events *ev, int events)
{
    ev->events = events;
    if (events)
        uv_poll_start(&ev->poll, events, on_poll);
    else
        uv_poll_stop(&ev->poll);
}

static void add_read(void *p)
{
    uv_events *ev = p;
    set_events(ev, ev->events | UV_READABLE);
}

static void del_read(void *p)
{
    uv_events *ev = p;
    set_events(ev, ev->events & ~UV_READABLE);
}

static void add_write(void *p)
{
    uv_events *ev = p;
    set_events(ev, ev->events | UV_WRITABLE);
}

static void del_write(void *p)
{
    uv_events *ev = p;
    set_events(ev, ev->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *p)
{
    uv_events *ev = p;
    ev->ac = NULL;
    uv_close((uv_handle_t *)&ev->poll, on_closed);
}

int sky__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return SKY_ESTATE;
    uv_events *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return SKY_ENOMEM;
    if (uv_poll_init_socket(loop, &ev->poll, ac->c.fd) != 0) {
        free(ev);
        return SKY_EIO;
    }
    ev->ac = ac;
    ev->poll.data = ev;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = ev;
    return 0;
}
