/* skyio — an injectable clock, so timing policies are tested without sleeping. */
#ifndef SKYIO_CLOCK_H
#define SKYIO_CLOCK_H

#include "common.h"

/**
 * A clock: monotonic milliseconds for durations, and wall-clock milliseconds
 * since the epoch for HTTP dates and token expiry. Every policy takes a
 * clock instead of asking the system, so tests drive time by hand.
 */
typedef struct sky_clock sky_clock;
struct sky_clock {
    uint64_t (*now_ms)(const sky_clock *c); /**< monotonic */
    int64_t (*wall_ms)(const sky_clock *c); /**< since 1970-01-01 UTC */
    void *data;
};

/** The real clock (CLOCK_MONOTONIC and CLOCK_REALTIME). Static; never freed. */
SKY_EXTERN const sky_clock *sky_clock_real(void);

/** Monotonic milliseconds of @p c (the real clock when @p c is NULL). */
SKY_EXTERN uint64_t sky_clock_now_ms(const sky_clock *c);
/** Wall-clock milliseconds of @p c (the real clock when @p c is NULL). */
SKY_EXTERN int64_t sky_clock_wall_ms(const sky_clock *c);
/** Monotonic nanoseconds of the real clock, for latency measurements. */
SKY_EXTERN uint64_t sky_clock_real_ns(void);

/** A fake clock for tests: time moves only when told to. */
typedef struct sky_fake_clock {
    sky_clock clock; /**< pass &fake.clock wherever a clock is wanted */
    uint64_t mono_ms;
    int64_t wall_ms;
} sky_fake_clock;

/** Start a fake clock at the given monotonic and wall times. */
SKY_EXTERN void sky_fake_clock_init(sky_fake_clock *f, uint64_t mono_ms, int64_t wall_ms);
/** Move both readings of the fake clock forward by @p ms. */
SKY_EXTERN void sky_fake_clock_advance(sky_fake_clock *f, uint64_t ms);

#endif
