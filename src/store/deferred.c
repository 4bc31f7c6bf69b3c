/*
 * Completions that are known before a call reaches its backend (an operation the backend
 * does not keep, a server away, a store closing): kept in a list and called from a zero
 * timer, so a callback never runs inside the call that was given it.
 */
#include <stdlib.h>

#include "internal.h"

typedef enum { D_DONE, D_VALUE, D_COUNT, D_TOTALS, D_KEYS, D_LEASE } deferred_kind;

struct sky__deferred {
    sky__deferred *next;
    deferred_kind kind;
    union {
        sky__store_done_cb done;
        sky__store_value_cb value;
        sky__store_count_cb count;
        sky__store_totals_cb totals;
        sky__store_keys_cb keys;
        sky__store_lease_cb lease;
    } cb;
    void *ud;
    sky_error err;
};

static const sky__store_lease_answer no_lease;

static void run_one(sky__deferred *d)
{
    switch (d->kind) {
    case D_DONE:
        d->cb.done(&d->err, d->ud);
        break;
    case D_VALUE:
        d->cb.value(&d->err, sky_span_make(NULL, 0), d->ud);
        break;
    case D_COUNT:
        d->cb.count(&d->err, 0, d->ud);
        break;
    case D_TOTALS:
        d->cb.totals(&d->err, NULL, 0, d->ud);
        break;
    case D_KEYS:
        d->cb.keys(&d->err, NULL, 0, d->ud);
        break;
    case D_LEASE:
        d->cb.lease(&d->err, &no_lease, d->ud);
        break;
    }
}

/* Run what is listed now; calls listed meanwhile wait for the next turn. */
static void on_defer_timer(uv_timer_t *t)
{
    sky__store *s = t->data;
    sky__deferred *d = s->deferred_head;
    s->deferred_head = s->deferred_tail = NULL;
    while (d) {
        sky__deferred *next = d->next;
        run_one(d);
        free(d);
        d = next;
    }
    if (s->deferred_head)
        uv_timer_start(&s->defer_timer, on_defer_timer, 0, 0);
}

static void push(sky__store *s, sky__deferred *d, void *ud, const sky_error *err)
{
    d->ud = ud;
    if (err)
        d->err = *err;
    else
        sky_error_set(&d->err, SKY_EINTERNAL, "no cause recorded");
    if (s->deferred_tail)
        s->deferred_tail->next = d;
    else
        s->deferred_head = d;
    s->deferred_tail = d;
    if (!uv_is_active((uv_handle_t *)&s->defer_timer))
        uv_timer_start(&s->defer_timer, on_defer_timer, 0, 0);
}

/* Out of memory while failing: nothing can be listed; the callback must still run once,
 * so it runs now (the one place a callback may run inside its call). */
#define DEFER(kind_, member, args_on_oom)                                                          \
    do {                                                                                           \
        sky__deferred *d = calloc(1, sizeof(*d));                                                  \
        if (!d) {                                                                                  \
            cb args_on_oom;                                                                        \
            return;                                                                                \
        }                                                                                          \
        d->kind = kind_;                                                                           \
        d->cb.member = cb;                                                                         \
        push(s, d, ud, err);                                                                       \
    } while (0)

void sky__store_fail_done(sky__store *s, sky__store_done_cb cb, void *ud, const sky_error *err)
{
    if (cb)
        DEFER(D_DONE, done, (err, ud));
}

void sky__store_fail_value(sky__store *s, sky__store_value_cb cb, void *ud, const sky_error *err)
{
    DEFER(D_VALUE, value, (err, sky_span_make(NULL, 0), ud));
}

void sky__store_fail_count(sky__store *s, sky__store_count_cb cb, void *ud, const sky_error *err)
{
    DEFER(D_COUNT, count, (err, 0, ud));
}

void sky__store_fail_lease(sky__store *s, sky__store_lease_cb cb, void *ud, const sky_error *err)
{
    DEFER(D_LEASE, lease, (err, &no_lease, ud));
}

void sky__store_fail_totals(sky__store *s, sky__store_totals_cb cb, void *ud, const sky_error *err)
{
    DEFER(D_TOTALS, totals, (err, NULL, 0, ud));
}

void sky__store_fail_keys(sky__store *s, sky__store_keys_cb cb, void *ud, const sky_error *err)
{
    DEFER(D_KEYS, keys, (err, NULL, 0, ud));
}

/* Called by close: whatever is still listed runs before the store goes. */
void sky__store_run_deferred(sky__store *s)
{
    while (s->deferred_head)
        on_defer_timer(&s->defer_timer);
}
