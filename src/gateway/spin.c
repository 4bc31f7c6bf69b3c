/* A bounded wait before the gateway's loop sleeps (the policy: src/core/spin.h): a prepare
 * handle asks the policy before each wait for events, an idle handle, while started, makes
 * that wait a poll that does not block, and a check handle counts the time it took. */
#include <stdlib.h>

#include "core/spin.h"
#include "internal.h"

struct gw_spin {
    sky_spin policy;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_idle_t idle;
    uint64_t polled_at; /* when this turn's non-blocking poll began; 0: it sleeps */
    int open_handles;
};

static void on_idle(uv_idle_t *h)
{
    (void)h; /* its being active is what makes the wait a poll */
}

static void on_prepare(uv_prepare_t *h)
{
    gw_spin *s = h->data;
    uint64_t now = uv_hrtime();
    if (sky__spin_poll_now(&s->policy, now)) {
        s->polled_at = now;
        if (!uv_is_active((uv_handle_t *)&s->idle))
            uv_idle_start(&s->idle, on_idle);
        return;
    }
    s->polled_at = 0;
    if (uv_is_active((uv_handle_t *)&s->idle))
        uv_idle_stop(&s->idle);
}

static void on_check(uv_check_t *h)
{
    gw_spin *s = h->data;
    if (s->polled_at == 0)
        return;
    uint64_t now = uv_hrtime();
    sky__spin_spent(&s->policy, now, now - s->polled_at);
}

int sky__gw_spin_start(sky_gateway *g, uint64_t max_reply_us)
{
    gw_spin *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SKY_ENOMEM;
    sky__spin_init(&s->policy);
    if (max_reply_us)
        s->policy.max_reply_ns = max_reply_us * 1000u;
    uv_prepare_init(g->loop, &s->prepare);
    uv_check_init(g->loop, &s->check);
    uv_idle_init(g->loop, &s->idle);
    s->prepare.data = s->check.data = s->idle.data = s;
    s->open_handles = 3;
    uv_unref((uv_handle_t *)&s->prepare);
    uv_unref((uv_handle_t *)&s->check);
    uv_unref((uv_handle_t *)&s->idle);
    uv_prepare_start(&s->prepare, on_prepare);
    uv_check_start(&s->check, on_check);
    g->spin = s;
    return 0;
}

void sky__gw_spin_sent(sky_gateway *g)
{
    if (g->spin)
        sky__spin_sent(&g->spin->policy);
}

void sky__gw_spin_replied(sky_gateway *g, uint64_t reply_ns)
{
    if (g->spin)
        sky__spin_replied(&g->spin->policy, reply_ns);
}

static void on_closed(uv_handle_t *h)
{
    gw_spin *s = h->data;
    if (--s->open_handles == 0)
        free(s);
}

void sky__gw_spin_stop(sky_gateway *g)
{
    gw_spin *s = g->spin;
    if (s == NULL)
        return;
    g->spin = NULL;
    uv_close((uv_handle_t *)&s->prepare, on_closed);
    uv_close((uv_handle_t *)&s->check, on_closed);
    uv_close((uv_handle_t *)&s->idle, on_closed);
}
