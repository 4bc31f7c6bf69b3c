/* The real clock and the fake one tests drive by hand. */
#include <time.h>

#include "skyio/clock.h"

static uint64_t real_now_ms(const sky_clock *c)
{
    (void)c;
    return sky_clock_real_ns() / 1000000u;
}

static int64_t real_wall_ms(const sky_clock *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const sky_clock real_clock = {real_now_ms, real_wall_ms, NULL};

const sky_clock *sky_clock_real(void)
{
    return &real_clock;
}

uint64_t sky_clock_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t sky_clock_now_ms(const sky_clock *c)
{
    if (c == NULL)
        c = &real_clock;
    return c->now_ms(c);
}

int64_t sky_clock_wall_ms(const sky_clock *c)
{
    if (c == NULL)
        c = &real_clock;
    return c->wall_ms(c);
}

static uint64_t fake_now_ms(const sky_clock *c)
{
    return ((const sky_fake_clock *)c->data)->mono_ms;
}

static int64_t fake_wall_ms(const sky_clock *c)
{
    return ((const sky_fake_clock *)c->data)->wall_ms;
}

void sky_fake_clock_init(sky_fake_clock *f, uint64_t mono_ms, int64_t wall_ms)
{
    f->clock.now_ms = fake_now_ms;
    f->clock.wall_ms = fake_wall_ms;
    f->clock.data = f;
    f->mono_ms = mono_ms;
    f->wall_ms = wall_ms;
}

void sky_fake_clock_advance(sky_fake_clock *f, uint64_t ms)
{
    f->mono_ms += ms;
    f->wall_ms += (int64_t)ms;
}
