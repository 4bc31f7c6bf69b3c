/* Open-loop load: the schedule, the recorder, and the driver that sends on time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/timerfd.h>
#endif

#include "skyio/clock.h"
#include "http/openloop.h"

#define LATE_NS 1000000u /* a request sent more than 1 ms after its time counts as late */

void sky__openloop_options_init(sky_openloop_options *o)
{
    memset(o, 0, sizeof(*o));
}

uint64_t sky__openloop_count(const sky_openloop_options *o)
{
    if (!(o->rate > 0) || (o->duration_ms == 0 && o->max_requests == 0))
        return 0;
    if (o->duration_ms == 0)
        return o->max_requests;
    double n = (double)o->duration_ms * o->rate / 1000.0;
    uint64_t by_time = n < 1.0 ? 1 : n > 1e15 ? (uint64_t)1e15 : (uint64_t)n;
    if (o->max_requests && o->max_requests < by_time)
        return o->max_requests;
    return by_time;
}

/* ---- the schedule ---- */

void sky__openloop_schedule_init(sky_openloop_schedule *s, const sky_openloop_options *o,
                                 uint64_t start_ns)
{
    s->start_ns = start_ns;
    s->rate = o->rate;
    s->count = sky__openloop_count(o);
    s->next = 0;
}

uint64_t sky__openloop_intended_ns(const sky_openloop_schedule *s, uint64_t i)
{
    return s->start_ns + (uint64_t)((double)i * 1e9 / s->rate);
}

int sky__openloop_schedule_next(sky_openloop_schedule *s, uint64_t now_ns, uint64_t *out_ns)
{
    if (s->next >= s->count)
        return -1;
    *out_ns = sky__openloop_intended_ns(s, s->next);
    if (*out_ns > now_ns)
        return 0;
    s->next++;
    return 1;
}

/* ---- the recorder ---- */

void sky__openloop_stats_init(sky_openloop_stats *st, uint64_t start_ns)
{
    memset(st, 0, sizeof(*st));
    sky_histogram_init(&st->latency_us);
    sky_histogram_init(&st->service_us);
    st->start_ns = start_ns;
    st->last_done_ns = start_ns;
}

static uint64_t us_between(uint64_t from_ns, uint64_t to_ns)
{
    return to_ns > from_ns ? (to_ns - from_ns) / 1000u : 0;
}

void sky__openloop_record_send(sky_openloop_stats *st, uint64_t intended_ns, uint64_t sent_ns)
{
    uint64_t lag = us_between(intended_ns, sent_ns);
    st->sent++;
    if (sent_ns > intended_ns + LATE_NS)
        st->late++;
    if (lag > st->max_lag_us)
        st->max_lag_us = lag;
}

void sky__openloop_record_done(sky_openloop_stats *st, uint64_t intended_ns, uint64_t sent_ns,
                               uint64_t done_ns)
{
    st->done++;
    sky_histogram_record(&st->latency_us, us_between(intended_ns, done_ns));
    sky_histogram_record(&st->service_us, us_between(sent_ns, done_ns));
    if (done_ns > st->last_done_ns)
        st->last_done_ns = done_ns;
}

double sky__openloop_achieved_rate(const sky_openloop_stats *st)
{
    if (st->done == 0 || st->last_done_ns <= st->start_ns)
        return 0;
    return (double)st->done * 1e9 / (double)(st->last_done_ns - st->start_ns);
}

/* ---- the driver ---- */

struct sky_openloop {
    sky_http_client *client;
    sky_http_request_options req;
    sky_openloop_result_cb on_result;
    void *user_data;
    sky_openloop_schedule sched;
    sky_openloop_stats stats;
    uint64_t max_in_flight, in_flight;
    uint64_t armed_ns; /* the wake-up set last, so it is not set again */
    sky_error send_err;
    int over, closing;
#ifdef __linux__
    int tfd;
    uv_poll_t tick;
#else
    uv_timer_t tick;
#endif
};

/* What travels with each request: when it was meant to go and when it went. */
typedef struct ol_request {
    sky_openloop *ol;
    uint64_t index, intended_ns, sent_ns;
} ol_request;

static void pump(sky_openloop *ol);

static void on_tick_closed(uv_handle_t *h)
{
#ifdef __linux__
    sky_openloop *ol = h->data;
    close(ol->tfd);
    ol->tfd = -1;
#else
    (void)h;
#endif
}

/* The schedule is spent and nothing is out: let the loop end. */
static void finish_if_over(sky_openloop *ol)
{
    if (!ol->over || ol->in_flight > 0 || ol->closing)
        return;
    ol->closing = 1;
    uv_close((uv_handle_t *)&ol->tick, on_tick_closed);
}

#ifdef __linux__
static void on_tick(uv_poll_t *h, int status, int events)
{
    sky_openloop *ol = h->data;
    uint64_t expirations;
    (void)status;
    (void)events;
    if (read(ol->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        return;
    pump(ol);
}

/* A timerfd on the monotonic clock: wakes the loop to the microsecond, where a libuv
 * timer counts whole milliseconds and would send a millisecond's requests in a burst. */
static int tick_init(sky_openloop *ol, uv_loop_t *loop)
{
    ol->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ol->tfd < 0)
        return SKY_EIO;
    ol->tick.data = ol;
    if (uv_poll_init(loop, &ol->tick, ol->tfd) < 0) {
        close(ol->tfd);
        return SKY_EIO;
    }
    if (uv_poll_start(&ol->tick, UV_READABLE, on_tick) < 0) {
        ol->closing = 1;
        uv_close((uv_handle_t *)&ol->tick, on_tick_closed);
        return SKY_EIO;
    }
    return 0;
}

static void tick_at(sky_openloop *ol, uint64_t at_ns)
{
    struct itimerspec its;
    if (at_ns == ol->armed_ns)
        return;
    ol->armed_ns = at_ns;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(at_ns / 1000000000u);
    its.it_value.tv_nsec = (long)(at_ns % 1000000000u);
    (void)timerfd_settime(ol->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}
#else
static void on_tick(uv_timer_t *h)
{
    pump(h->data);
}

static int tick_init(sky_openloop *ol, uv_loop_t *loop)
{
    ol->tick.data = ol;
    return uv_timer_init(loop, &ol->tick) < 0 ? SKY_EIO : 0;
}

static void tick_at(sky_openloop *ol, uint64_t at_ns)
{
    uint64_t now = sky_clock_real_ns();
    uint64_t ms = at_ns > now ? (at_ns - now + 999999u) / 1000000u : 0;
    (void)uv_timer_start(&ol->tick, on_tick, ms, 0);
}
#endif

static void on_request_done(sky_http_request *req, const sky_http_response *res,
                            const sky_error *err, void *ud)
{
    ol_request *r = ud;
    sky_openloop *ol = r->ol;
    sky_openloop_sample s = {r->index, r->intended_ns, r->sent_ns, sky_clock_real_ns()};
    (void)req;
    sky__openloop_record_done(&ol->stats, s.intended_ns, s.sent_ns, s.done_ns);
    free(r);
    ol->in_flight--;
    ol->on_result(ol->user_data, &s, res, err);
    pump(ol);
}

/* Send the request meant for @p intended_ns; -1 when the client refused it. */
static int send_one(sky_openloop *ol, uint64_t intended_ns)
{
    ol_request *r = malloc(sizeof(*r));
    if (r == NULL) {
        sky_error_set(&ol->send_err, SKY_ENOMEM, "out of memory");
        return -1;
    }
    r->ol = ol;
    r->index = ol->sched.next - 1; /* schedule_next has moved past it */
    r->intended_ns = intended_ns;
    r->sent_ns = sky_clock_real_ns();
    sky_http_request_options o = ol->req;
    o.user_data = r;
    if (sky_http_request_send(ol->client, &o, NULL, &ol->send_err) < 0) {
        free(r);
        return -1;
    }
    if (++ol->in_flight > ol->stats.max_in_flight)
        ol->stats.max_in_flight = ol->in_flight;
    sky__openloop_record_send(&ol->stats, intended_ns, r->sent_ns);
    return 0;
}

/* Send every request that is due, up to the cap; then sleep until the next one. */
static void pump(sky_openloop *ol)
{
    uint64_t at;
    while (!ol->over && (ol->max_in_flight == 0 || ol->in_flight < ol->max_in_flight)) {
        int rc = sky__openloop_schedule_next(&ol->sched, sky_clock_real_ns(), &at);
        if (rc == 0) {
            tick_at(ol, at);
            return;
        }
        if (rc < 0 || send_one(ol, at) < 0)
            ol->over = 1;
    }
    finish_if_over(ol);
}

int sky__openloop_start(uv_loop_t *loop, sky_http_client *client, const sky_openloop_options *o,
                        const sky_http_request_options *req, sky_openloop_result_cb on_result,
                        void *user_data, sky_openloop **out)
{
    *out = NULL;
    if (sky__openloop_count(o) == 0 || on_result == NULL)
        return SKY_EINVAL;
    sky_openloop *ol = calloc(1, sizeof(*ol));
    if (ol == NULL)
        return SKY_ENOMEM;
    ol->client = client;
    ol->req = *req;
    ol->req.on_done = on_request_done;
    ol->on_result = on_result;
    ol->user_data = user_data;
    ol->max_in_flight = o->max_in_flight;
    int rc = tick_init(ol, loop);
    if (rc < 0) {
        /* a handle already being closed still needs the loop to run before the free */
        ol->over = 1;
        *out = ol;
        return rc;
    }
    uint64_t now = sky_clock_real_ns();
    sky__openloop_schedule_init(&ol->sched, o, now);
    sky__openloop_stats_init(&ol->stats, now);
    *out = ol;
    pump(ol);
    return 0;
}

const sky_openloop_stats *sky__openloop_stats(const sky_openloop *ol)
{
    return &ol->stats;
}

const sky_error *sky__openloop_send_error(const sky_openloop *ol)
{
    return ol->send_err.code ? &ol->send_err : NULL;
}

void sky__openloop_free(sky_openloop *ol)
{
    free(ol);
}
