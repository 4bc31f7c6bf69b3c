/*
 * The batch engine's handle: its pipeline profile, the run's life (start, the pump that
 * reads lines while there is room, stop, the end once the store has closed) and its
 * timers. Requests are in batch_request.c, recording in batch_record.c, the endpoint's
 * watch and the summary in batch_report.c.
 */
#include <stdlib.h>
#include <string.h>

#include "skyio/ai.h"
#include "skyio/clock.h"
#include "batch_internal.h"

/* The endpoint rules' own period, whatever the progress events' is. */
#define WATCH_MS 500
/* Lines read ahead of what may be in flight, so a slot never waits for the source. */
#define WINDOW_MIN 4096
#define WINDOW_EXTRA 1024

/* ---- options ---- */

/* The breaker: a batch waits for the endpoint to come back instead of failing its lines. */
static void profile_breaker(sky_pipeline_options *po)
{
    po->breaker_fail_fast = 0;
    /* and only when nothing succeeds: failures among successes are load being shed or a
     * request the server cannot handle, which the retries settle */
    po->breaker.quiet_ms = 2000;
    /* and looks again soon: a probe after 5 s, then 10, 20, up to a minute while it fails */
    po->breaker.reset_ms = 5000;
    po->breaker.max_reset_ms = 60000;
}

/*
 * With no limit given or announced, do not pace at all: a server with none (vLLM, a
 * provisioned deployment) is never slowed. The first 429 starts pacing at the rate the
 * provider just took, or at 10 requests a second doubling every second while held back when
 * it took none. A provider's limit is fixed, so a later 429 cuts the rate by a fifth, not by
 * half: at a hidden 3,000 RPM that held 85% of it with 1% 429s, against 76% when halving. A
 * 503 or 529 among successes is a limiter's refusal too (nginx's limit_req, an overloaded
 * server), not an outage.
 */
static void profile_rate(sky_pipeline_options *po)
{
    po->rate.unpaced_start = 1;
    po->rate.initial_rpm = 600;
    po->overload_is_rate = 1;
    po->rate.increase_interval_ms = 1000;
    po->rate.decrease_factor = 0.8;
}

/*
 * LLM replies take hundreds of milliseconds, so a server's capacity needs hundreds of
 * requests in flight. Start at 16 and double each round trip (slow start) until the latency
 * shows a queue (the limit goes to the server's rate times the quietest round trip), a
 * refusal, or the cap; then the gradient judges every quarter second.
 */
static void profile_concurrency(sky_pipeline_options *po)
{
    po->concurrency.initial = 16;
    po->concurrency.slow_start = 1;
    po->concurrency.max = 1024;
    po->concurrency.window_min_ms = 250;
}

void sky_batch_options_init(sky_batch_options *o)
{
    memset(o, 0, sizeof(*o));
    sky_pipeline_options_init(&o->pipeline);
    profile_breaker(&o->pipeline);
    profile_rate(&o->pipeline);
    profile_concurrency(&o->pipeline);
    /* OpenAI's SDKs wait 10 minutes: a slow reasoning reply timed out sooner is billed, then
     * asked (and billed) again */
    o->pipeline.attempt_timeout_ms = 600000;
    o->pipeline.retry.max_retries = 10;
    o->pipeline.retry.openai_statuses = 1;
    o->pipeline.classifier = sky_ai_classifier();
    sky_batchline_options_init(&o->line);
    o->stop_grace_ms = 30000;
}

/* ---- set-up ---- */

static uint64_t default_window(const sky_batch_options *o)
{
    uint64_t fixed = o->concurrency > 0 ? (uint64_t)o->concurrency + WINDOW_EXTRA : 0;
    return fixed > WINDOW_MIN ? fixed : WINDOW_MIN;
}

/* An AIMD or a fixed limiter over the profile's adaptive one. */
void sky__batch_apply_limiter(const sky_batch_options *o, sky_pipeline_options *po)
{
    if (o->limiter == SKY_LIMITER_AIMD) {
        po->concurrency.kind = SKY_LIMITER_AIMD;
        po->concurrency.slow_start = 0;
    }
    if (po->concurrency.initial > po->concurrency.max)
        po->concurrency.initial = po->concurrency.max;
    if (o->concurrency > 0 || o->limiter == SKY_LIMITER_FIXED) {
        int n = o->concurrency > 0 ? o->concurrency : po->concurrency.initial;
        po->concurrency.kind = SKY_LIMITER_FIXED;
        po->concurrency.slow_start = 0;
        po->concurrency.initial = n;
        po->concurrency.max = n;
        if (po->concurrency.min > n)
            po->concurrency.min = n;
    }
}

static int make_pipeline(sky_batch *b, sky_error *err)
{
    sky_pipeline_options po = b->o.pipeline;
    po.auth = sky_ai_pipeline_auth;
    po.auth_user_data = b->o.endpoint;
    /* OpenAI and the servers that speak its API read no client request id (theirs comes back
     * as x-request-id, and the record keeps it): sent, the header and its echo would cost
     * every request some 10,000 instructions in curl for nothing */
    if (b->o.endpoint->kind == SKY_AI_OPENAI)
        po.send_request_id = 0;
    if (po.credential && po.scope == NULL)
        po.scope = sky_ai_entra_scope(b->o.endpoint);
    sky__batch_apply_limiter(&b->o, &po);
    int rc = sky_pipeline_new(b->loop, b->client, &po, &b->pipe);
    if (rc < 0)
        sky_error_set(err, rc, "cannot make the pipeline: %s", sky_strerror(rc));
    return rc;
}

static void init_timers(sky_batch *b)
{
    uv_timer_t *t[] = {&b->watch, &b->progress, &b->grace, &b->defer};
    for (size_t i = 0; i < SKY_ARRAY_LEN(t); i++) {
        uv_timer_init(b->loop, t[i]);
        t[i]->data = b;
        b->handles_open++;
    }
    uv_unref((uv_handle_t *)&b->watch);
    uv_unref((uv_handle_t *)&b->progress);
}

static void attach(sky_batch *b, sky_batch_source *src, sky_batch_store *st)
{
    b->src = src;
    b->store = st;
    src->on_ready = NULL;
    src->engine = b;
    st->on_drain = sky__batch_on_store_drain;
    st->on_fail = sky__batch_on_store_fail;
    st->engine = b;
    b->src_open = b->store_open = 1;
}

static int setup(sky_batch *b, sky_error *err)
{
    /* Without it curl labels a POST body form data, which OpenAI refuses (400
     * unsupported_content_type) and FastAPI servers such as vLLM do not parse. */
    b->json_headers = sky_headers_new();
    b->seen = sky_idset_new(0);
    if (b->json_headers == NULL || b->seen == NULL ||
        sky_headers_add(b->json_headers, SKY_SPAN_LIT("Content-Type"),
                        SKY_SPAN_LIT("application/json")) < 0)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    b->window = b->o.max_pending ? b->o.max_pending : default_window(&b->o);
    int rc = b->o.deployments ? sky__batch_routes_new(b, err) : make_pipeline(b, err);
    if (rc == 0 && b->o.timeline_path)
        rc = sky__batch_timeline_open(b, b->o.timeline_path, &b->timeline, err);
    return rc;
}

static void ignore_closed(sky_batch_store *st, const sky_error *err, uint64_t unwritten, void *ud)
{
    (void)st;
    (void)err;
    (void)unwritten;
    (void)ud;
}

static void close_parts(sky_batch_source *src, sky_batch_store *st)
{
    if (src)
        src->close(src);
    if (st)
        st->close(st, ignore_closed, NULL);
}

int sky_batch_new(uv_loop_t *loop, sky_http_client *client, const sky_batch_options *o,
                  sky_batch_source *source, sky_batch_store *store, sky_batch **out, sky_error *err)
{
    *out = NULL;
    if (loop == NULL || client == NULL || o == NULL ||
        (o->endpoint == NULL) == (o->n_deployments == 0 || o->deployments == NULL) ||
        source == NULL || store == NULL) {
        close_parts(source, store);
        return sky_error_set(err, SKY_EINVAL,
                             "a batch needs a loop, a client, an endpoint or deployments (not "
                             "both), a source and a store");
    }
    sky_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        close_parts(source, store);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    b->loop = loop;
    b->client = client;
    b->o = *o;
    init_timers(b);
    attach(b, source, store);
    int rc = setup(b, err);
    if (rc < 0) {
        sky_batch_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

/* ---- events ---- */

void sky__batch_emit(sky_batch *b, sky_batch_event *ev)
{
    if (b->o.on_event == NULL)
        return;
    b->in_event++;
    b->o.on_event(b, ev, b->o.user_data);
    b->in_event--;
}

/* The fault's sentence around its cause, as a front end prints it. */
static void fault_error(sky_error *e, int fault, const sky_error *cause, const char *id)
{
    const char *m = cause->message;
    int code = cause->code ? cause->code : SKY_EINTERNAL;
    sky_error_clear(e);
    if (fault == SKY_BATCH_FAULT_START)
        sky_error_set(e, code, "cannot start a request: %s; stopping", m);
    else if (fault == SKY_BATCH_FAULT_RECORD)
        sky_error_set(e, code, "cannot record %s: %s; stopping", id, m);
    else if (fault == SKY_BATCH_FAULT_HOLD)
        sky_error_set(e, code, "out of memory holding a result; stopping");
    else if (fault == SKY_BATCH_FAULT_STORE)
        sky_error_set(e, code, "writing results failed: %s; stopping", m);
    else if (fault == SKY_BATCH_FAULT_STORE_CLOSE)
        sky_error_set(e, code, "closing results: %s", m);
    else
        sky_error_set(e, code, "%s", m);
    e->http_status = cause->http_status;
    sky_error_set_service(e, cause->service_code);
}

void sky__batch_fault(sky_batch *b, int fault, const sky_error *cause, const char *custom_id)
{
    sky_batch_event ev;
    sky_error e;
    fault_error(&e, fault, cause, custom_id);
    memset(&ev, 0, sizeof(ev));
    ev.kind = SKY_BATCH_EVENT_FAULT;
    ev.fault = fault;
    ev.error = &e;
    ev.custom_id = custom_id;
    sky__batch_emit(b, &ev);
}

static void on_watch(uv_timer_t *t)
{
    sky__batch_watch_endpoint(t->data);
}

static void on_progress(uv_timer_t *t)
{
    sky_batch *b = t->data;
    sky_batch_progress p;
    sky_batch_event ev;
    sky_batch_get_progress(b, &p);
    memset(&ev, 0, sizeof(ev));
    ev.kind = SKY_BATCH_EVENT_PROGRESS;
    ev.progress = &p;
    sky__batch_emit(b, &ev);
}

/* ---- reading ---- */

static void on_source_ready(void *engine)
{
    sky_batch *b = engine;
    sky__batch_pump(b);
    sky__batch_maybe_finish(b);
}

void sky_batch_source_ready(sky_batch_source *src)
{
    if (src->on_ready)
        src->on_ready(src->engine);
}

/*
 * Lines in flight, at most: the window, and twice the concurrency limit in force (16 more
 * to start), as over deployments, beside the calls waiting out a retry's backoff. A line
 * read is a call with its headers and body, kept until a slot takes it: 4,096 read ahead
 * of 64 slots held 13 MiB that went cold in the cache before they were sent (a fifth of
 * the batch's CPU a request at zero latency). The limit grows only as calls end, and each
 * end reads on, so its growth is never held back. Calls backing off hold no slot, and will
 * not for seconds: counted in the cap, 5% of lines failing every time (each waiting out
 * three backoffs) held back the reading of the good ones until their retries were spent.
 */
static uint64_t read_cap(const sky_batch *b)
{
    const sky_limiter *lim = b->pipe ? sky_pipeline_limiter(b->pipe) : NULL;
    int limit = lim ? sky_limiter_limit(lim) : 0;
    uint64_t cap =
        limit > 0 ? 2 * (uint64_t)limit + 16 + sky_pipeline_backing_off(b->pipe) : b->window;
    return cap < b->window ? cap : b->window;
}

/* Whether to read on: a line read now could be started (or recorded) now. */
static int has_room(const sky_batch *b)
{
    return b->in_flight < read_cap(b) && b->held_head == NULL &&
           (b->routes == NULL || sky__batch_routes_room(b));
}

static void set_paused(sky_batch *b, int pause)
{
    if (b->paused == pause || !b->src_open)
        return;
    b->paused = pause;
    if (pause && b->src->pause)
        b->src->pause(b->src);
    else if (!pause && b->src->resume)
        b->src->resume(b->src);
}

/* One line from the source: 1 when there may be more now, 0 when not. */
static int read_one(sky_batch *b)
{
    sky_batch_source_line line;
    sky_error err;
    sky_error_clear(&err);
    int rc = b->src->next(b->src, &line, &err);
    if (rc == SKY_BATCH_SOURCE_WAIT)
        return 0;
    if (rc == SKY_BATCH_SOURCE_END || rc < 0) {
        b->eof = 1;
        if (rc < 0) {
            b->fatal = 1;
            sky__batch_fault(b, SKY_BATCH_FAULT_SOURCE, &err, NULL);
        }
        return 0;
    }
    b->line_no = line.number;
    sky__batch_handle_line(b, &line);
    return 1;
}

/* Read and start lines while there is room; requests finishing and the store draining call
 * this again. */
void sky__batch_pump(sky_batch *b)
{
    if (b->pumping || !b->started || b->closing || b->first_token)
        return;
    b->pumping = 1;
    if (has_room(b))
        set_paused(b, 0);
    while (!b->eof && !b->stopping && !b->fatal && has_room(b) && read_one(b))
        ;
    set_paused(b, !b->eof && !b->stopping && !b->fatal && !has_room(b));
    b->pumping = 0;
}

int sky_batch_start(sky_batch *b)
{
    if (b == NULL || b->started)
        return SKY_ESTATE;
    b->started = 1;
    b->start_ms = sky_clock_now_ms(NULL);
    sky_histogram_init(&b->latency_ms);
    sky__batch_timeline_start(b->timeline);
    b->src->on_ready = on_source_ready;
    uv_timer_start(&b->watch, on_watch, WATCH_MS, WATCH_MS);
    if (b->o.progress_interval_ms)
        uv_timer_start(&b->progress, on_progress, b->o.progress_interval_ms,
                       b->o.progress_interval_ms);
    sky__batch_first_token(b); /* the pump waits for it */
    sky__batch_pump(b);
    sky__batch_maybe_finish(b);
    return 0;
}

/* ---- the end ---- */

static void on_handle_closed(uv_handle_t *h)
{
    sky_batch *b = h->data;
    if (--b->handles_open == 0)
        free(b);
}

static void release(sky_batch *b)
{
    sky_pipeline *p = b->pipe;
    sky__batch_first_token_drop(b);
    sky__batch_timeline_close(b->timeline);
    b->timeline = NULL;
    sky__batch_drop_held(b);
    b->pipe = NULL;
    sky_pipeline_free(p);
    sky__batch_routes_free(b);
    sky_headers_free(b->json_headers);
    sky_idset_free(b->seen);
    close_parts(b->src_open ? b->src : NULL, b->store_open ? b->store : NULL);
    uv_close((uv_handle_t *)&b->watch, on_handle_closed);
    uv_close((uv_handle_t *)&b->progress, on_handle_closed);
    uv_close((uv_handle_t *)&b->grace, on_handle_closed);
    uv_close((uv_handle_t *)&b->defer, on_handle_closed);
}

static void finish(sky_batch *b)
{
    sky_batch_summary s;
    sky_batch_event ev;
    /* the last look, so that an outage shorter than the watch's period is told too */
    sky__batch_report_outages(b);
    sky__batch_summary(b, &s);
    sky__batch_timeline_close(b->timeline);
    b->timeline = NULL;
    b->finished = 1;
    memset(&ev, 0, sizeof(ev));
    ev.kind = SKY_BATCH_EVENT_FINISHED;
    ev.summary = &s;
    sky__batch_emit(b, &ev);
    if (b->free_pending)
        release(b);
}

/* Work put off to the loop: the end when the store closed inside its close call, and a free
 * asked for from inside an event. */
static void on_defer(uv_timer_t *t)
{
    sky_batch *b = t->data;
    if (b->closing && !b->store_open && !b->finished)
        finish(b); /* which frees, when asked to */
    else if (b->free_pending && b->started && !b->finished)
        sky__batch_stop_now(b); /* FINISHED frees it */
    else if (b->free_pending)
        release(b);
}

static void on_store_closed(sky_batch_store *st, const sky_error *err, uint64_t unwritten, void *ud)
{
    sky_batch *b = ud;
    (void)st;
    b->store_open = 0;
    b->unwritten += unwritten;
    if (err && err->code) {
        b->fatal = 1;
        sky__batch_fault(b, SKY_BATCH_FAULT_STORE_CLOSE, err, NULL);
    }
    /* after the close, so the summary knows what the store kept; and from the loop, as
     * FINISHED always comes, even when the store closed inside its close call */
    if (b->store_closing)
        uv_timer_start(&b->defer, on_defer, 0, 0);
    else
        finish(b);
}

void sky__batch_maybe_finish(sky_batch *b)
{
    if (!b->started || b->closing || b->in_flight > 0 || b->held_head)
        return;
    if (!(b->eof || b->stopping || b->fatal))
        return;
    b->closing = 1;
    uv_timer_stop(&b->watch);
    uv_timer_stop(&b->progress);
    uv_timer_stop(&b->grace);
    b->src_open = 0;
    b->src->close(b->src);
    b->store_closing = 1;
    b->store->close(b->store, on_store_closed, b);
    b->store_closing = 0;
}

/* ---- the sending side: one endpoint's pipeline, or the deployments' ---- */

int sky__batch_live(const sky_batch *b)
{
    return b->pipe != NULL || sky__batch_routes_live(b);
}

size_t sky__batch_cancel_waiting(sky_batch *b)
{
    if (b->routes)
        return sky__batch_routes_cancel_waiting(b);
    return b->pipe ? sky_pipeline_cancel_waiting(b->pipe) : 0;
}

void sky__batch_hold(sky_batch *b, int hold)
{
    if (b->routes)
        sky__batch_routes_hold(b, hold);
    else if (b->pipe)
        sky_pipeline_hold(b->pipe, hold);
}

/* ---- stopping ---- */

void sky__batch_stop_now(sky_batch *b)
{
    sky_pipeline *p = b->pipe;
    b->stopping = 1;
    /* every call ends now, canceled: none is recorded, the next run does them. Their
     * callbacks, which may run inside the free, find no pipeline to ask. */
    b->pipe = NULL;
    sky_pipeline_free(p); /* deferred when called from one of its callbacks */
    sky__batch_routes_close(b);
    sky__batch_maybe_finish(b);
}

static void on_grace(uv_timer_t *t)
{
    /* in flight too long after a graceful stop: cancel; the next run redoes them */
    sky__batch_stop_now(t->data);
}

int sky_batch_stop(sky_batch *b, int mode, sky_batch_stop_info *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (b == NULL || !b->started || b->finished)
        return SKY_ESTATE;
    if (mode == SKY_BATCH_STOP_NOW) {
        sky__batch_stop_now(b);
        return 0;
    }
    /* what is waiting (for a slot, the rate limit, a retry) is not sent: the next run does it */
    size_t waiting = sky__batch_cancel_waiting(b);
    if (out) {
        out->canceled = waiting;
        out->on_wire = b->in_flight - waiting;
    }
    b->stopping = 1;
    if (b->o.stop_grace_ms && !b->closing)
        uv_timer_start(&b->grace, on_grace, b->o.stop_grace_ms, 0);
    sky__batch_maybe_finish(b);
    return 0;
}

void sky_batch_free(sky_batch *b)
{
    if (b == NULL || b->free_pending)
        return;
    b->free_pending = 1;
    if (b->in_event)
        uv_timer_start(&b->defer, on_defer, 0, 0);
    else if (b->started && !b->finished)
        sky__batch_stop_now(b); /* FINISHED frees it */
    else
        release(b);
}
