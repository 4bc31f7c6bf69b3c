/* A bounded wait before the loop sleeps: the policy (see spin.h). */
#include <string.h>

#include "core/spin.h"

#define SPIN_EWMA_SHIFT 3 /* the learned reply time moves 1/8 of the way to each new one */

void sky__spin_init(sky_spin *s)
{
    memset(s, 0, sizeof(*s));
    s->max_reply_ns = 100000;
    s->window_ns = 1000000000u;
    s->max_permille = 200;
}

void sky__spin_sent(sky_spin *s)
{
    s->in_flight++;
}

void sky__spin_replied(sky_spin *s, uint64_t reply_ns)
{
    if (s->in_flight)
        s->in_flight--;
    s->wait_since_ns = 0; /* the next wait is a new one */
    if (reply_ns == 0)
        return;
    if (s->reply_ns == 0)
        s->reply_ns = reply_ns;
    else if (reply_ns >= s->reply_ns)
        s->reply_ns += (reply_ns - s->reply_ns) >> SPIN_EWMA_SHIFT;
    else
        s->reply_ns -= (s->reply_ns - reply_ns) >> SPIN_EWMA_SHIFT;
}

/* The budget's window moved on: start a new one. */
static void roll(sky_spin *s, uint64_t now_ns)
{
    if (s->win_start_ns == 0 || now_ns - s->win_start_ns >= s->window_ns) {
        s->win_start_ns = now_ns;
        s->win_spent_ns = 0;
    }
}

int sky__spin_poll_now(sky_spin *s, uint64_t now_ns)
{
    if (s->in_flight == 0 || s->reply_ns == 0 || s->reply_ns > s->max_reply_ns) {
        s->wait_since_ns = 0;
        return 0;
    }
    if (s->wait_since_ns == 0)
        s->wait_since_ns = now_ns;
    if (now_ns - s->wait_since_ns >= s->reply_ns)
        return 0; /* waited as long as a reply takes: sleep until it comes */
    roll(s, now_ns);
    return s->win_spent_ns < s->window_ns / 1000u * s->max_permille;
}

void sky__spin_spent(sky_spin *s, uint64_t now_ns, uint64_t spent_ns)
{
    roll(s, now_ns);
    s->win_spent_ns += spent_ns;
    s->polls++;
    s->polled_ns += spent_ns;
}
