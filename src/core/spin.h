/*
 * skyio internal - a bounded wait before the loop sleeps: while replies are awaited that
 * came back quickly of late, the loop polls without blocking for about that long before it
 * lets the kernel put it to sleep, so that a reply due in microseconds does not pay for a
 * sleep and a wake-up (on a VM, a halted vCPU woken through the hypervisor). Never longer
 * than the learned reply time, only while that is under a ceiling, and never more than a
 * set share of the time. Plain arithmetic over the times the caller passes in (tests drive
 * it with made-up ones); src/gateway/spin.c runs it on a gateway's loop.
 */
#ifndef SKY_CORE_SPIN_H
#define SKY_CORE_SPIN_H

#include <stdint.h>

typedef struct sky_spin {
    uint64_t max_reply_ns; /**< no polling while the learned reply time is above this */
    uint64_t window_ns;    /**< the budget's window */
    uint32_t max_permille; /**< of each window, at most this much spent polling */
    /* state */
    uint64_t reply_ns;      /**< learned: a moving average of recent reply times; 0: none yet */
    uint64_t in_flight;     /**< replies awaited */
    uint64_t wait_since_ns; /**< when this wait for a reply began; 0: none */
    uint64_t win_start_ns, win_spent_ns;
    uint64_t polls, polled_ns; /**< totals, for a report */
} sky_spin;

/** Defaults: a 100 us ceiling, 20% of each second. */
void sky__spin_init(sky_spin *s);
/** A request went out: its reply is awaited. */
void sky__spin_sent(sky_spin *s);
/** A reply came @p reply_ns after its request went (0 when it ended without one: not learned). */
void sky__spin_replied(sky_spin *s, uint64_t reply_ns);
/** The loop is about to wait for events at @p now_ns: 1 to poll without blocking this turn,
 * 0 to sleep as usual. */
int sky__spin_poll_now(sky_spin *s, uint64_t now_ns);
/** A turn polled without blocking spent @p spent_ns in it, up to @p now_ns (the budget). */
void sky__spin_spent(sky_spin *s, uint64_t now_ns, uint64_t spent_ns);

#endif
