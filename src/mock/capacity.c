/*
 * --capacity: a worker serves N calls at once, as an inference server serves a
 * batch; the rest wait in line, oldest first, and their latency includes the wait.
 */
#include "worker.h"

static void join_line(sky__mock_worker *m, sky__mock_call *c)
{
    c->in_line = 1;
    c->in_line_at_ms = sky__mock_now_ms(m);
    c->next_in_line = NULL;
    if (m->line_tail)
        m->line_tail->next_in_line = c;
    else
        m->line_head = c;
    m->line_tail = c;
    uint64_t n = ST_ADD(m->queued, 1) + 1;
    if (n > ST_GET(m->peak_queued))
        __atomic_store_n(&m->peak_queued, n, __ATOMIC_RELAXED);
}

/* A call that waited in line is gone (the client left): take it out. */
void sky__mock_leave_line(sky__mock_worker *m, sky__mock_call *c)
{
    sky__mock_call **pp = &m->line_head, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->next_in_line;
    }
    if (*pp == NULL)
        return;
    *pp = c->next_in_line;
    if (m->line_tail == c)
        m->line_tail = prev;
    c->in_line = 0;
    __atomic_fetch_sub(&m->queued, 1, __ATOMIC_RELAXED);
}

/*
 * A served call ended: the slot goes to the oldest in line. Its turn starts from its
 * own timer, not from here, since this runs while h2o disposes of the ended request.
 */
void sky__mock_free_slot(sky__mock_worker *m)
{
    sky__mock_call *next = m->line_head;
    if (next == NULL) {
        __atomic_fetch_sub(&m->busy, 1, __ATOMIC_RELAXED);
        return;
    }
    sky__mock_leave_line(m, next);
    next->in_slot = 1;
    ST_ADD(m->st.capacity_waits, 1);
    ST_ADD(m->st.capacity_wait_ms, sky__mock_now_ms(m) - next->in_line_at_ms);
    if (sky_server_req_after(next->req, 0, sky__mock_serve_held) < 0)
        sky__mock_respond_error(m, next->req, next->azure, 500, "server_error", "server_error",
                                "out of memory");
}

/* Serve @p c now when a slot is free, else put it in line. */
void sky__mock_dispatch_in_line(sky__mock_worker *m, sky_server_req *r, sky__mock_call *c)
{
    sky__mock_call *held = sky__mock_hold_call(m, r, c);
    if (held == NULL)
        return;
    if (ST_GET(m->busy) < (uint64_t)m->cfg.capacity) {
        ST_ADD(m->busy, 1);
        held->in_slot = 1;
        sky__mock_serve_held(r, held);
    } else {
        join_line(m, held);
    }
}
