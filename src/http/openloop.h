/*
 * skyio internal — open-loop load: requests sent on a fixed schedule at a set rate, each
 * one's latency counted from the moment the schedule meant to send it, not from when it
 * went. A closed-loop tool (wrk, `skyio http -n`) waits for an answer before it sends the
 * next request, so a server that stalls also stalls the sender, and the requests that
 * would have met the stall are never sent nor counted ("coordinated omission", Gil Tene's
 * name for it). Here a request due while the sender is held back still counts its wait,
 * as wrk2 and vegeta do.
 *
 * Three parts: the schedule and the recorder are plain arithmetic over times the caller
 * passes in (tests drive them with made-up times); the driver sends through a
 * sky_http_client on a libuv loop and feeds both with the real clock.
 */
#ifndef SKY_HTTP_OPENLOOP_H
#define SKY_HTTP_OPENLOOP_H

#include <uv.h>

#include "skyio/http.h"
#include "skyio/metrics.h"

typedef struct sky_openloop_options {
    double rate;            /**< requests per second; must be > 0 */
    uint64_t duration_ms;   /**< length of the schedule; 0: max_requests alone decides */
    uint64_t max_requests;  /**< 0: duration_ms alone decides; both set: the smaller */
    uint64_t max_in_flight; /**< due requests wait while this many are out (0: no cap);
                                 their wait is part of their latency */
} sky_openloop_options;

/** Defaults: no rate (the caller must set one), no duration, no count, no cap. */
void sky__openloop_options_init(sky_openloop_options *o);
/** How many requests the schedule of @p o holds: 0 when it is not usable. */
uint64_t sky__openloop_count(const sky_openloop_options *o);

/* ---- the schedule ---- */

typedef struct sky_openloop_schedule {
    uint64_t start_ns;
    double rate;
    uint64_t count; /**< requests in all */
    uint64_t next;  /**< index of the next request to send */
} sky_openloop_schedule;

void sky__openloop_schedule_init(sky_openloop_schedule *s, const sky_openloop_options *o,
                                 uint64_t start_ns);
/** The time request @p i is meant to go: start + i / rate seconds. */
uint64_t sky__openloop_intended_ns(const sky_openloop_schedule *s, uint64_t i);
/**
 * The next request, if it is due at @p now_ns: 1 and its intended time in
 * @p out_ns (the schedule moves on); 0 when it is not due yet, with the time it
 * will be in @p out_ns; -1 when every request of the schedule has been taken.
 */
int sky__openloop_schedule_next(sky_openloop_schedule *s, uint64_t now_ns, uint64_t *out_ns);

/* ---- the recorder ---- */

typedef struct sky_openloop_stats {
    sky_histogram latency_us; /**< intended send time -> last byte: what a user waits */
    sky_histogram service_us; /**< actual send time -> last byte: what a closed loop sees */
    uint64_t start_ns;        /**< the schedule's start */
    uint64_t last_done_ns;    /**< the latest completion recorded */
    uint64_t sent;            /**< requests handed to the client */
    uint64_t done;            /**< requests over, whatever their outcome */
    uint64_t late;            /**< requests sent more than 1 ms after their intended time */
    uint64_t max_lag_us;      /**< the most a request went after its intended time */
    uint64_t max_in_flight;   /**< the most requests out at once (kept by the driver) */
} sky_openloop_stats;

void sky__openloop_stats_init(sky_openloop_stats *st, uint64_t start_ns);
/** A request meant for @p intended_ns went at @p sent_ns. */
void sky__openloop_record_send(sky_openloop_stats *st, uint64_t intended_ns, uint64_t sent_ns);
/** A request meant for @p intended_ns, sent at @p sent_ns, ended at @p done_ns. */
void sky__openloop_record_done(sky_openloop_stats *st, uint64_t intended_ns, uint64_t sent_ns,
                               uint64_t done_ns);
/** Requests over per second, from the schedule's start to the last one's end; 0 if none. */
double sky__openloop_achieved_rate(const sky_openloop_stats *st);

/* ---- the driver ---- */

/** When one request of the schedule was due, went and ended (monotonic ns, as
 * sky_clock_real_ns), and its place in the schedule. */
typedef struct sky_openloop_sample {
    uint64_t index;
    uint64_t intended_ns, sent_ns, done_ns;
} sky_openloop_sample;

/** One request is over (@p err NULL when a whole response arrived). Borrowed arguments. */
typedef void (*sky_openloop_result_cb)(void *user_data, const sky_openloop_sample *s,
                                       const sky_http_response *res, const sky_error *err);

typedef struct sky_openloop sky_openloop;

/**
 * Start sending copies of @p req (its pointers borrowed until the run is over; its
 * on_done and user_data are replaced) through @p client on @p loop, on the schedule of
 * @p o, from now. @p on_result sees each outcome. The run is over when the loop returns:
 * every request sent and answered, the driver's handles closed. A request the client
 * refuses to send ends the schedule (sky__openloop_send_error says why). 0 or a SKY_E
 * code; free with sky__openloop_free once the loop has returned.
 */
int sky__openloop_start(uv_loop_t *loop, sky_http_client *client, const sky_openloop_options *o,
                        const sky_http_request_options *req, sky_openloop_result_cb on_result,
                        void *user_data, sky_openloop **out) SKY_NODISCARD;
/** The figures so far. Borrowed; valid until sky__openloop_free. */
const sky_openloop_stats *sky__openloop_stats(const sky_openloop *ol);
/** The client's refusal that ended the schedule early; NULL when none did. */
const sky_error *sky__openloop_send_error(const sky_openloop *ol);
/** Free a driver whose loop has returned. NULL is allowed. */
void sky__openloop_free(sky_openloop *ol);

#endif
