/*
 * `--threads N`: loop 0 is the caller's; loops 1..N-1 run on threads of their own, each a
 * whole gateway (server, client, table, access log) listening on loop 0's port through
 * SO_REUSEPORT, so the kernel spreads connections between them. What they share is in
 * shared.c. Loop 0 talks to the others only through their async handles: shut down,
 * reload (a deep copy of the routing, built on the loop's own thread), stop.
 *
 * Stores (`serve --state/--cache/--postgres`) are opened per loop, on that loop, before its
 * thread runs and before it listens (sky__gw_new_held, sky__gw_each_loop,
 * sky__gw_start_loops), so no hiredis or libpq object is ever touched from two threads and
 * no request is served without its stores; at the end each loop closes its own on its
 * thread (the end hook) before the handles left over are closed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "skyio/log.h"
#include "internal.h"
#include "stores.h"

typedef struct gw_loop_thread {
    gw_group *group;
    sky_gateway *g; /* NULL once freed */
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;          /* shut down */
    uv_async_t reload;        /* build the pending routing */
    uv_async_t stop;          /* free the gateway, let the thread end */
    gw_routing_copy *pending; /* under the group's lock */
    int loop_ready, handles_ready, running;
} gw_loop_thread;

struct gw_group {
    sky_gateway *g0;
    int n; /* the loops beside loop 0 */
    gw_loop_thread *th;
    uv_mutex_t lock;
    uv_async_t down;            /* on loop 0: a loop is done with its shutdown */
    sky__gw_loop_end_fn end_fn; /* each other loop's stores closed on its thread */
    void *end_ud;
    int down_count; /* atomic */
    uint64_t grace_ms;
    sky_gateway_shutdown_cb cb;
    void *cb_data;
};

/* ---- on a loop's own thread ---- */

static void on_reload(uv_async_t *a)
{
    gw_loop_thread *t = a->data;
    uv_mutex_lock(&t->group->lock);
    gw_routing_copy *c = t->pending;
    t->pending = NULL;
    uv_mutex_unlock(&t->group->lock);
    if (c == NULL || t->g == NULL) {
        sky__gw_routing_free(c);
        return;
    }
    sky_error err;
    sky_error_clear(&err);
    if (sky__gw_swap_table(t->g, sky__gw_routing_options(c), &err) < 0)
        SKY_WARN("gateway", "loop %d keeps its routing: %s", t->g->index, err.message);
    sky__gw_routing_free(c);
}

static void on_loop_down(sky_server *s, void *ud)
{
    gw_group *grp = ud;
    (void)s;
    __atomic_fetch_add(&grp->down_count, 1, __ATOMIC_ACQ_REL);
    uv_async_send(&grp->down); /* wakes coalesce: loop 0 counts */
}

static void on_wake(uv_async_t *a)
{
    gw_loop_thread *t = a->data;
    if (t->g)
        sky_server_shutdown(t->g->srv, t->group->grace_ms, on_loop_down, t->group);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* what is left (connections h2o keeps until they close, the asyncs) closes now, so the
 * loop runs out of work and the thread ends */
static void close_rest(void *arg)
{
    gw_loop_thread *t = arg;
    if (t->handles_ready)
        uv_walk(&t->loop, close_any, NULL);
}

/* The loop's gateway freed, then its stores closed (writing what is queued) while the
 * loop still runs them, then the rest. */
static void end_loop(gw_loop_thread *t)
{
    sky__gw_loop_free(t->g);
    t->g = NULL;
    gw_group *grp = t->group;
    if (grp->end_fn)
        grp->end_fn(&t->loop, (int)(t - grp->th) + 1, grp->end_ud, close_rest, t);
    else
        close_rest(t);
}

static void on_stop(uv_async_t *a)
{
    end_loop(a->data);
}

static void thread_main(void *arg)
{
    gw_loop_thread *t = arg;
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

/* ---- on loop 0 ---- */

static void on_down(uv_async_t *a)
{
    gw_group *grp = a->data;
    if (__atomic_load_n(&grp->down_count, __ATOMIC_ACQUIRE) < grp->n + 1)
        return;
    sky_gateway_shutdown_cb cb = grp->cb;
    grp->cb = NULL;
    if (cb)
        cb(grp->g0, grp->cb_data);
}

static int thread_handles(gw_loop_thread *t)
{
    t->wake.data = t->reload.data = t->stop.data = t;
    if (uv_async_init(&t->loop, &t->wake, on_wake) != 0)
        return -1;
    if (uv_async_init(&t->loop, &t->reload, on_reload) != 0) {
        uv_close((uv_handle_t *)&t->wake, NULL);
        return -1;
    }
    if (uv_async_init(&t->loop, &t->stop, on_stop) != 0) {
        uv_close((uv_handle_t *)&t->wake, NULL);
        uv_close((uv_handle_t *)&t->reload, NULL);
        return -1;
    }
    t->handles_ready = 1;
    return 0;
}

static int run_one(gw_loop_thread *t, int i, sky_error *err)
{
    if (uv_thread_create(&t->thread, thread_main, t) != 0)
        return sky_error_set(err, SKY_EINTERNAL, "cannot start thread %d", i + 1);
    t->running = 1;
    return 0;
}

/* Loop @p i: made here, then run on its thread (unless @p hold). */
static int start_one(gw_group *grp, int i, const sky_gateway_options *o, int port, int hold,
                     sky_error *err)
{
    gw_loop_thread *t = &grp->th[i];
    t->group = grp;
    if (uv_loop_init(&t->loop) != 0)
        return sky_error_set(err, SKY_EINTERNAL, "cannot make a loop for thread %d", i + 1);
    t->loop_ready = 1;
    if (thread_handles(t) < 0)
        return sky_error_set(err, SKY_EINTERNAL, "cannot make the handles of thread %d", i + 1);
    /* held: no server until it runs, so no connection is taken on this thread (h2o's
     * memory is per thread) nor before its stores are given */
    int rc = sky__gw_loop_new(&t->loop, o, grp->g0->shared, i + 1, hold ? -1 : port, &t->g, err);
    if (rc < 0)
        return rc;
    return hold ? 0 : run_one(t, i, err);
}

int sky__gw_loops_start(sky_gateway *g, const sky_gateway_options *o, int hold, sky_error *err)
{
    gw_group *grp = calloc(1, sizeof(*grp));
    if (grp == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    grp->g0 = g;
    grp->n = g->n_loops - 1;
    grp->th = calloc((size_t)grp->n, sizeof(*grp->th));
    if (grp->th == NULL || uv_mutex_init(&grp->lock) != 0) {
        free(grp->th);
        free(grp);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    grp->down.data = grp;
    (void)uv_async_init(g->loop, &grp->down, on_down);
    uv_unref((uv_handle_t *)&grp->down);
    g->group = grp;
    int port = sky_gateway_port(g);
    for (int i = 0; i < grp->n; i++) {
        int rc = start_one(grp, i, o, port, hold, err);
        if (rc < 0)
            return rc; /* sky_gateway_free undoes what was made */
    }
    return 0;
}

int sky__gw_each_loop(sky_gateway *g, sky__gw_loop_fn fn, void *ud)
{
    int rc = fn(g, g->loop, 0, ud);
    gw_group *grp = g->group;
    for (int i = 0; rc == 0 && grp && i < grp->n; i++) {
        gw_loop_thread *t = &grp->th[i];
        if (t->running)
            return SKY_ESTATE; /* its thread owns it now */
        rc = fn(t->g, &t->loop, i + 1, ud);
    }
    return rc;
}

void sky__gw_on_loop_end(sky_gateway *g, sky__gw_loop_end_fn fn, void *ud)
{
    if (g->group) {
        g->group->end_fn = fn;
        g->group->end_ud = ud;
    }
}

int sky__gw_start_loops(sky_gateway *g, const sky_gateway_options *o, sky_error *err)
{
    gw_group *grp = g->group;
    int port = sky_gateway_port(g);
    for (int i = 0; grp && i < grp->n; i++) {
        gw_loop_thread *t = &grp->th[i];
        if (t->running || t->g == NULL)
            continue;
        int rc = t->g->srv ? 0 : sky__gw_loop_listen(t->g, o, port, err);
        if (rc < 0 || (rc = run_one(t, i, err)) < 0)
            return rc;
    }
    return 0;
}

sky_gateway *sky__gw_loop_at(sky_gateway *g, int index)
{
    if (index == 0)
        return g;
    gw_group *grp = g->group;
    return grp && index - 1 < grp->n ? grp->th[index - 1].g : NULL;
}

void sky__gw_loops_reload(sky_gateway *g, const sky_gateway_options *o)
{
    gw_group *grp = g->group;
    for (int i = 0; i < grp->n; i++) {
        gw_loop_thread *t = &grp->th[i];
        gw_routing_copy *c = t->running ? sky__gw_routing_copy(o) : NULL;
        if (c == NULL) {
            SKY_WARN("gateway", "loop %d keeps its routing: out of memory", i + 1);
            continue;
        }
        uv_mutex_lock(&grp->lock);
        gw_routing_copy *old = t->pending; /* one not built yet is overtaken */
        t->pending = c;
        uv_mutex_unlock(&grp->lock);
        sky__gw_routing_free(old);
        uv_async_send(&t->reload);
    }
}

static void on_loop0_down(sky_server *s, void *ud)
{
    gw_group *grp = ud;
    on_loop_down(s, grp);
}

void sky__gw_loops_shutdown(sky_gateway *g, uint64_t grace_ms, sky_gateway_shutdown_cb cb,
                            void *user_data)
{
    gw_group *grp = g->group;
    grp->cb = cb;
    grp->cb_data = user_data;
    grp->grace_ms = grace_ms;
    /* the loops that never started count as down */
    int idle = 0;
    for (int i = 0; i < grp->n; i++)
        idle += !grp->th[i].running;
    __atomic_store_n(&grp->down_count, idle, __ATOMIC_RELEASE);
    uv_ref((uv_handle_t *)&grp->down); /* loop 0 waits for the others */
    sky_server_shutdown(g->srv, grace_ms, on_loop0_down, grp);
    for (int i = 0; i < grp->n; i++)
        if (grp->th[i].running)
            uv_async_send(&grp->th[i].wake);
}

static void on_group_closed(uv_handle_t *h)
{
    gw_group *grp = h->data;
    uv_mutex_destroy(&grp->lock);
    free(grp->th);
    free(grp);
}

/* A loop made but never run: torn down here, on the caller's thread. */
static void free_unstarted(gw_loop_thread *t)
{
    end_loop(t);
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

void sky__gw_loops_free(sky_gateway *g)
{
    gw_group *grp = g->group;
    for (int i = 0; i < grp->n; i++) {
        gw_loop_thread *t = &grp->th[i];
        if (t->running) {
            uv_async_send(&t->stop);
            uv_thread_join(&t->thread);
        } else if (t->loop_ready) {
            free_unstarted(t);
        }
        if (t->loop_ready && uv_loop_close(&t->loop) != 0)
            SKY_WARN("gateway", "loop %d: handles still open at the end", i + 1);
        sky__gw_routing_free(t->pending);
    }
    g->group = NULL;
    uv_close((uv_handle_t *)&grp->down, on_group_closed);
}
