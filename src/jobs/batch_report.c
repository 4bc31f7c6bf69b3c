/*
 * What a batch reports, and the endpoint rules that read the same health: an outage
 * (the breaker opens: requests wait) and its end, an endpoint never reached (the run
 * stops), the progress snapshot and the summary.
 */
#include <stdio.h>
#include <string.h>

#include "skyio/clock.h"
#include "batch_internal.h"

/* Failures that say the endpoint was never reached: the URL, the name or the TLS set-up. */
static int unreachable_code(int code)
{
    return code == SKY_ECONNECT || code == SKY_ERESOLVE || code == SKY_ETLS;
}

static void emit_endpoint(sky_batch *b, int kind, const sky_error *err)
{
    sky_batch_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = kind;
    ev.error = err;
    sky__batch_emit(b, &ev);
}

/* An event when the breaker has opened since the last look (even if it is closed again by
 * now), and when the endpoint answers again. */
static void report_health(sky_batch *b, const sky_pipeline_health *h)
{
    int down = h->breaker != SKY_BREAKER_CLOSED;
    if (h->times_opened > b->outages_told) {
        b->outages_told = h->times_opened;
        if (!b->endpoint_down) {
            b->endpoint_down = 1;
            emit_endpoint(b, SKY_BATCH_EVENT_ENDPOINT_DOWN, &h->last_fault);
        }
    }
    if (!down && b->endpoint_down) {
        b->endpoint_down = 0;
        emit_endpoint(b, SKY_BATCH_EVENT_ENDPOINT_UP, NULL);
    }
}

/* The endpoint's health, or the deployments' as one (down when every one is): 0, or -1
 * when nothing is sending any more. */
static int health(const sky_batch *b, sky_pipeline_health *out)
{
    if (b->pipe)
        sky_pipeline_get_health(b->pipe, out);
    else if (sky__batch_routes_live(b))
        sky__batch_routes_health(b, out);
    else
        return -1;
    return 0;
}

void sky__batch_report_outages(sky_batch *b)
{
    sky_pipeline_health h;
    if (health(b, &h) == 0)
        report_health(b, &h);
}

/*
 * The endpoint has never answered and cannot be reached at all: a wrong URL, host or
 * certificate rather than an outage. Stop, record nothing (a record would make the next run
 * skip a request that was never sent), and cancel what is on the wire, since nothing
 * answered is worth waiting for.
 */
void sky__batch_stop_unreachable(sky_batch *b, const sky_error *fault)
{
    if (b->unreachable || !sky__batch_live(b))
        return;
    b->unreachable = 1;
    emit_endpoint(b, SKY_BATCH_EVENT_UNREACHABLE, fault);
    sky__batch_stop_now(b);
}

/* Whether @p err says the endpoint was never reached, and nothing of it ever answered. */
int sky__batch_never_reached(const sky_batch *b, const sky_error *err)
{
    sky_pipeline_health h;
    if (err == NULL || !unreachable_code(err->code) || health(b, &h) < 0)
        return 0;
    return h.answered == 0;
}

/*
 * On the engine's own timer: say when the endpoint starts failing (the breaker opens:
 * requests wait) and when it answers again; stop when it has never answered and cannot be
 * reached at all (calls waiting behind the open breaker would not end to tell).
 */
void sky__batch_watch_endpoint(sky_batch *b)
{
    sky_pipeline_health h;
    if (b->stopping || health(b, &h) < 0)
        return;
    int down = h.breaker != SKY_BREAKER_CLOSED;
    if (down && h.answered == 0 && unreachable_code(h.last_fault.code)) {
        sky__batch_stop_unreachable(b, &h.last_fault);
        return;
    }
    report_health(b, &h);
}

/* ---- progress ---- */

/* Lines in the whole input, from the lines read so far and the bytes they took. */
static uint64_t estimated_total(const sky_batch *b)
{
    uint64_t done = 0, total = 0;
    if (!b->eof && b->src_open && b->src->position)
        b->src->position(b->src, &done, &total);
    if (done == 0 || total == 0)
        return b->line_no;
    return (uint64_t)((double)b->line_no * (double)total / (double)done);
}

static void pipeline_progress(const sky_batch *b, sky_batch_progress *out)
{
    if (b->routes) {
        sky__batch_routes_progress(b, out); /* the deployments' limits and wire, summed */
        out->sending = out->sending < b->in_flight ? out->sending : b->in_flight;
        out->waiting = b->in_flight - out->sending;
        return;
    }
    sky_ratelimit *rl = b->pipe ? sky_pipeline_rate_limiter(b->pipe) : NULL;
    sky_limiter *lim = b->pipe ? sky_pipeline_limiter(b->pipe) : NULL;
    if (rl) {
        sky_ratelimit_stats rs;
        sky_ratelimit_get_stats(rl, &rs);
        out->rpm = rs.rpm > 0 ? rs.rpm : 0;
        out->rate_limit_wait_ms = rs.wait_ms;
    }
    /* on the wire: attempts sent and not answered; the rest of what was read waits (for a
     * slot, the rate, a retry or the endpoint). A concurrency slot is not the wire: a call
     * holds its slot while it waits for the rate limiter. */
    uint64_t wire = b->pipe ? (uint64_t)sky_pipeline_on_wire(b->pipe) : 0;
    if (wire > b->in_flight)
        wire = b->in_flight;
    out->sending = wire;
    out->waiting = b->in_flight - wire;
    out->concurrency = lim ? sky_limiter_limit(lim) : 0;
}

void sky_batch_get_progress(const sky_batch *b, sky_batch_progress *out)
{
    memset(out, 0, sizeof(*out));
    if (b == NULL || !b->started)
        return;
    out->ok = b->ok;
    out->failed = b->failed;
    out->skipped = b->skipped;
    out->bad_lines = b->input_errors;
    out->lines_read = b->line_no;
    out->lines_total = estimated_total(b);
    out->input_ended = b->eof;
    out->tokens_in = b->tokens_in;
    out->tokens_out = b->tokens_out;
    out->retries = b->retries;
    out->responses_429 = b->responses_429;
    out->elapsed_ms = sky_clock_now_ms(NULL) - b->start_ms;
    out->endpoint_down = b->endpoint_down;
    pipeline_progress(b, out);
}

/* "done/total", and the time left at @p rps when there is some. */
static int eta_text(const sky_batch_progress *p, double rps, sky_buf *out)
{
    uint64_t done = p->ok + p->failed + p->skipped + p->bad_lines;
    uint64_t total = p->lines_total;
    if (rps <= 0 || total <= done)
        return sky_buf_printf(out, "%llu/%llu", (unsigned long long)done,
                              (unsigned long long)total);
    double eta = (double)(total - done) / rps;
    return sky_buf_printf(out, "%llu/%llu ETA %dm%02ds", (unsigned long long)done,
                          (unsigned long long)total, (int)(eta / 60), (int)eta % 60);
}

int sky_batch_progress_text(const sky_batch_progress *p, int running, sky_buf *out)
{
    double secs = (double)p->elapsed_ms / 1000.0;
    double rps = secs > 0 ? (double)(p->ok + p->failed) / secs : 0;
    char rate[32];
    if (p->rpm > 0)
        snprintf(rate, sizeof(rate), "%.0f/min", p->rpm);
    else
        snprintf(rate, sizeof(rate), "unpaced");
    int rc = eta_text(p, rps, out);
    if (rc < 0)
        return rc;
    return sky_buf_printf(
        out,
        "  %llu done (%llu ok, %llu failed, %llu skipped, %llu bad lines)  %.1f req/s  "
        "%llu tok/s  sending %llu, waiting %llu  concurrency %d  rate %s  429s %llu  retries "
        "%llu%s",
        (unsigned long long)(p->ok + p->failed), (unsigned long long)p->ok,
        (unsigned long long)p->failed, (unsigned long long)p->skipped,
        (unsigned long long)p->bad_lines, rps,
        (unsigned long long)(secs > 0 ? (double)(p->tokens_in + p->tokens_out) / secs : 0),
        (unsigned long long)p->sending, (unsigned long long)p->waiting, p->concurrency, rate,
        (unsigned long long)p->responses_429, (unsigned long long)p->retries,
        p->endpoint_down && running ? "  ENDPOINT DOWN, waiting" : "");
}

/* ---- the summary ---- */

void sky__batch_summary(const sky_batch *b, sky_batch_summary *out)
{
    memset(out, 0, sizeof(*out));
    sky_batch_get_progress(b, &out->progress);
    out->latency_p50_ms = sky_histogram_percentile(&b->latency_ms, 50);
    out->latency_p90_ms = sky_histogram_percentile(&b->latency_ms, 90);
    out->latency_p99_ms = sky_histogram_percentile(&b->latency_ms, 99);
    out->stopped = b->stopping;
    out->fatal = b->fatal;
    out->refusal = b->refused;
    out->unreachable = b->unreachable;
    out->unwritten = b->unwritten;
    /* a stop left work for the next run: lines unread, requests unrecorded or lost */
    out->unfinished = (b->stopping && !b->eof) || b->left_undone > 0 || b->unwritten > 0;
}

static void add_flags(json_t *s, const sky_batch_summary *sum)
{
    if (sum->refusal == SKY_BATCH_REFUSED_CREDENTIALS)
        json_object_set_new(s, "credentials_refused", json_true());
    if (sum->refusal == SKY_BATCH_REFUSED_ACCESS)
        json_object_set_new(s, "access_denied", json_true());
    if (sum->refusal == SKY_BATCH_REFUSED_QUOTA)
        json_object_set_new(s, "quota_exhausted", json_true());
    if (sum->unreachable)
        json_object_set_new(s, "endpoint_unreachable", json_true());
    if (sum->unfinished)
        json_object_set_new(s, "unfinished", json_true());
    if (sum->unwritten > 0)
        json_object_set_new(s, "unwritten", json_integer((json_int_t)sum->unwritten));
}

json_t *sky_batch_summary_json(const sky_batch_summary *sum)
{
    const sky_batch_progress *p = &sum->progress;
    double secs = (double)p->elapsed_ms / 1000.0;
    json_t *s = json_pack(
        "{s:I,s:I,s:I,s:I,s:f,s:f,s:{s:I,s:I},s:{s:I,s:I,s:I},s:I,s:I,s:I,s:b}", "ok",
        (json_int_t)p->ok, "failed", (json_int_t)p->failed, "skipped", (json_int_t)p->skipped,
        "bad_lines", (json_int_t)p->bad_lines, "seconds", secs, "requests_per_second",
        secs > 0 ? (double)(p->ok + p->failed) / secs : 0.0, "tokens", "in",
        (json_int_t)p->tokens_in, "out", (json_int_t)p->tokens_out, "latency_ms", "p50",
        (json_int_t)sum->latency_p50_ms, "p90", (json_int_t)sum->latency_p90_ms, "p99",
        (json_int_t)sum->latency_p99_ms, "retries", (json_int_t)p->retries, "responses_429",
        (json_int_t)p->responses_429, "rate_limit_wait_ms", (json_int_t)p->rate_limit_wait_ms,
        "interrupted", sum->stopped && !sum->fatal);
    if (s)
        add_flags(s, sum);
    return s;
}
