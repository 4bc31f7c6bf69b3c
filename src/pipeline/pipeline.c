/*
 * The request pipeline. A call goes through admission (breaker, concurrency
 * slot, rate limit), then an attempt (request id, auth, transport), then the
 * retry policy, which either ends the call or sends it back to admission
 * after a wait. Waits are one libuv timer per call, set up on the call's first wait;
 * admission "from the loop, at once" (a new call, a woken one) is one timer of the
 * pipeline's for all the calls of a loop turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "skyio/ai.h"
#include "skyio/buf.h"
#include "skyio/json.h"
#include "skyio/log.h"
#include "skyio/pipeline.h"
#include "skyio/rand.h"

enum call_step { STEP_ADMIT, STEP_QUEUED, STEP_SENDING, STEP_WAITING, STEP_DONE };

/* A streamed call holds at most this much of a reply it does not stream (an error's body). */
#define HELD_BODY_MAX (1024u * 1024u)

/* Ended calls kept for the next ones: at most CALL_SPARE of them (none in sanitizer builds:
 * CMakeLists.txt), those whose method, URL and body fit in CALL_ROOM bytes (every such call
 * is given that room). */
#define CALL_SPARE 64
#define CALL_ROOM 2048

/* The share of 503s and 529s is counted over SHED_SLOTS slots of SHED_SLOT_MS. */
#define SHED_SLOTS 10
#define SHED_SLOT_MS 100

struct sky_call {
    sky_pipeline *p;
    char *method;
    char *url;
    char *body;
    size_t body_len;
    sky_headers *headers;
    int64_t est_tokens;
    int require_json;
    int want_json;
    sky_call_check_cb check_reply;
    json_t *reply_json; /* the last 2xx reply as a tree, for a caller with want_json */
    sky_call_done_cb on_done;
    void *user_data;
    sky_call_headers_cb on_headers; /* streaming: see sky_call_options */
    sky_call_body_cb on_body;
    sky_call_read_cb body_reader;
    sky_call_rewind_cb body_rewind;
    sky_call_restart_cb body_restart;
    int64_t body_length;
    long recv_buffer_size, upload_buffer_size; /* curl's, per attempt; 0: the client's */
    size_t max_response_bytes;
    int streaming; /* this attempt's reply is a 2xx going to on_body */
    /* a streamed reply began to reach the caller: no more retries, unless body_restart */
    int committed;
    sky_buf held;                 /* a streamed call's reply that is not streamed (an error) */
    int64_t reported_tokens;      /* sky_call_set_usage for this attempt; -1: none */
    uint64_t sent_ns, headers_ns; /* real time, as the transport's own total_us */
    char request_id[SKY_UUID_LEN + 1];
    sky_retry_state retry;
    sky_error *fault;        /* while retrying: the last attempt's failure (own allocation) */
    uv_timer_t *timer;       /* &timer_handle once it is initialised (its first wait) */
    uv_timer_t timer_handle; /* once initialised, the call is freed by its close callback */
    int in_ready;            /* in p's ready list: admitted when the pipeline's kick runs */
    int roomy;               /* allocated with CALL_ROOM bytes after it: may be kept */
    sky_call *rprev, *rnext;
    int step;
    int canceled;
    int orphaned; /* the pipeline went first: report nothing, free on return */
    int refresh_auth;
    int have_slot;
    int parked;      /* its slot waits for the rate limiter (sky_limiter_park) */
    int backing_off; /* waits out a retry's backoff (counted in n_backing_off) */
    int malformed;   /* 2xx replies whose body could not be read */
    int parse_rc;    /* reading the last 2xx reply: 0, SKY_EJSON or SKY_ENOMEM */
    int failed;      /* an attempt failed: its retries tell the breaker nothing new */
    int breaker_taken;
    int waits_on_endpoint; /* waiting out a failing endpoint: woken when the breaker closes */
    int waits_on_admitter; /* waiting for the admitter's tokens: woken by it */
    int admitted;          /* the admitter let the next attempt go: told how it ends */
    uint64_t start_ms, deadline_ms, wait_from_ms, waited_ms, attempt_ms;
    sky_http_request *req;
    sky_token_request *token_req; /* getting the credential's token */
    char *bearer;                 /* the token for the next attempt */
    uint64_t bearer_hash;         /* which token the last attempt sent (not the token itself) */
    sky_call *prev, *next;        /* in p->calls */
    sky_call *qnext;              /* in the concurrency queue */
};

struct sky_pipeline {
    uv_loop_t *loop;
    sky_http_client *client;
    sky_pipeline_options o;
    char *scope; /* o.scope's copy */
    sky_ratelimit *rate;
    sky_limiter *limiter;
    sky_breaker breaker;
    sky_call *calls;
    sky_call *queue_head, *queue_tail;
    sky_call *ready_head, *ready_tail; /* calls to admit from the loop, at once, in order */
    sky_call *spare; /* ended calls' memory, their header maps emptied (linked by next) */
    size_t n_spare;
    /* a 0 ms timer while ready_head; set up with the first call, closed with the last (a
     * loop's end may close every handle left: this one is not left) */
    uv_timer_t *kick;
    size_t n_active;
    size_t n_on_wire;     /* attempts sent and not yet answered */
    size_t n_backing_off; /* calls waiting out a retry's backoff */
    size_t n_orphans;
    int in_callback;
    int held; /* sky_pipeline_hold: no call is sent until it is lifted */
    int free_requested;
    int freeing;
    uint64_t answered;   /* attempts that got an HTTP response, any status */
    uint64_t last_ok_ms; /* when a 2xx last came; 0: never */
    /* HTTP replies, and 503s and 529s among them, over about the last second */
    uint64_t reply_slot[SHED_SLOTS]; /* now / SHED_SLOT_MS of each slot's counts */
    uint32_t replies[SHED_SLOTS], refusals[SHED_SLOTS];
    sky_error last_fault; /* the last attempt the breaker counted as a failure */
};

static void admit(sky_call *c);
static void pump_queue(sky_pipeline *p);
static void release_admission(sky_call *c);
static void pipeline_release(sky_pipeline *p);

static uint64_t now_ms(const sky_pipeline *p)
{
    return sky_clock_now_ms(p->o.clock);
}

/* ---- options ---- */

void sky_pipeline_options_init(sky_pipeline_options *o)
{
    memset(o, 0, sizeof(*o));
    sky_retry_options_init(&o->retry);
    o->attempt_timeout_ms = 300000;
    o->use_rate_limit = 1;
    sky_ratelimit_options_init(&o->rate);
    o->use_concurrency = 1;
    sky_limiter_options_init(&o->concurrency);
    o->use_breaker = 1;
    sky_breaker_options_init(&o->breaker);
    o->breaker_fail_fast = 1;
    o->overload_window_ms = 2000;
    o->send_request_id = 1;
    /* For now: callers written before the classifier hook (the batch engine, ARM) keep
     * the rules the pipeline used to apply itself. To become NULL once they set theirs. */
    o->classifier = sky_ai_classifier();
}

void sky_call_options_init(sky_call_options *o)
{
    memset(o, 0, sizeof(*o));
    o->body_length = -1;
}

/* ---- life of a call ---- */

/* The call's memory, its timer within it, goes once the loop has let go of the timer. */
static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* FNV-1a: tells tokens apart without keeping one. */
static uint64_t token_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void forget_bearer(sky_call *c)
{
    if (c->bearer) {
        memset(c->bearer, 0, strlen(c->bearer));
        free(c->bearer);
        c->bearer = NULL;
    }
}

static void ready_remove(sky_call *c)
{
    sky_pipeline *p = c->p;
    if (!c->in_ready)
        return;
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        p->ready_head = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        p->ready_tail = c->rprev;
    c->rprev = c->rnext = NULL;
    c->in_ready = 0;
}

/* The call's own timer, for a wait: set up on the first (most calls never wait). */
static uv_timer_t *call_timer(sky_call *c)
{
    if (c->timer == NULL) {
        c->timer = &c->timer_handle;
        uv_timer_init(c->p->loop, c->timer);
        c->timer->data = c;
    }
    return c->timer;
}

static void stop_timer(sky_call *c)
{
    if (c->timer)
        uv_timer_stop(c->timer);
}

/* Kept for the next call, when it may be: its header map emptied and wiped (it may hold a
 * caller's credential). 1 when kept. */
static int call_keep(sky_call *c)
{
    sky_pipeline *p = c->p;
    if (!SKY_KEEP_SPARES || !c->roomy || c->timer || c->headers == NULL || p->freeing ||
        p->free_requested || p->n_spare >= CALL_SPARE)
        return 0;
    sky_headers_truncate(c->headers, 0);
    sky_headers_clear(c->headers);
    c->next = p->spare;
    p->spare = c;
    p->n_spare++;
    return 1;
}

static void call_free(sky_call *c)
{
    ready_remove(c);
    forget_bearer(c);
    sky_buf_free(&c->held);
    free(c->fault);
    json_decref(c->reply_json);
    /* a URL may carry a SAS signature, a token request's body a client secret: neither
     * outlives the call in freed memory */
    OPENSSL_cleanse(c->url, strlen(c->url));
    if (c->body)
        OPENSSL_cleanse(c->body, c->body_len);
    if (call_keep(c))
        return;
    sky_headers_free(c->headers);
    if (c->timer)
        uv_close((uv_handle_t *)c->timer, on_timer_closed); /* which frees c */
    else
        free(c);
}

static void backoff_over(sky_call *c)
{
    if (c->backing_off) {
        c->backing_off = 0;
        c->p->n_backing_off--;
    }
}

static void on_handle_freed(uv_handle_t *h)
{
    free(h);
}

static void kick_close(sky_pipeline *p)
{
    if (p->kick) {
        uv_close((uv_handle_t *)p->kick, on_handle_freed);
        p->kick = NULL;
    }
}

static void unlink_call(sky_pipeline *p, sky_call *c)
{
    backoff_over(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (--p->n_active == 0 && p->ready_head == NULL)
        kick_close(p);
}

static void queue_remove(sky_pipeline *p, sky_call *c)
{
    sky_call **pp = &p->queue_head, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp == NULL)
        return;
    *pp = c->qnext;
    if (p->queue_tail == c)
        p->queue_tail = prev;
    c->qnext = NULL;
}

static void maybe_free_pipeline(sky_pipeline *p)
{
    if (p->free_requested && p->in_callback == 0)
        sky_pipeline_free(p);
}

static void fill_result(const sky_call *c, const sky_http_response *res, sky_call_result *r)
{
    memset(r, 0, sizeof(*r));
    if (res) {
        r->status = res->status;
        r->headers = res->headers;
        r->body = res->body;
    }
    r->request_id = c->request_id;
    r->attempts = c->retry.attempts;
    r->retry = &c->retry;
    r->waited_ms = c->waited_ms;
    r->total_ms = now_ms(c->p) - c->start_ms;
    r->attempt_ms = c->attempt_ms;
    r->json = res ? c->reply_json : NULL;
}

/* Report the outcome once, then forget the call. */
static void finish(sky_call *c, const sky_http_response *res, const sky_error *err)
{
    sky_pipeline *p = c->p;
    sky_call_result r;
    /* canceled or out of time while it waited for the rate: its slot and breaker turn */
    release_admission(c);
    c->step = STEP_DONE;
    stop_timer(c);
    ready_remove(c);
    fill_result(c, res, &r);
    unlink_call(p, c);
    p->in_callback++;
    c->on_done(c, &r, err, c->user_data);
    p->in_callback--;
    call_free(c);
}

static void finish_error(sky_call *c, int code, const char *msg)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, code, "%s", msg);
    finish(c, NULL, &e);
}

/* ---- waiting ---- */

/* A wait is over: the deadline of a call in the queue, else admission again. */
static void wake(sky_call *c)
{
    sky_pipeline *p = c->p;
    backoff_over(c);
    c->waits_on_endpoint = 0;
    c->waits_on_admitter = 0;
    if (c->step == STEP_QUEUED) {
        /* the deadline came while waiting for a concurrency slot */
        queue_remove(p, c);
        finish_error(c, SKY_ETIMEDOUT, "operation deadline passed waiting for a slot");
    } else {
        admit(c);
    }
}

static void on_call_timer(uv_timer_t *t)
{
    sky_call *c = t->data;
    sky_pipeline *p = c->p;
    wake(c);
    maybe_free_pipeline(p);
}

/* The calls made ready in this loop turn, in order. A free asked for from a callback waits
 * until they have gone (those left are then ended by the free). */
static void on_kick(uv_timer_t *t)
{
    sky_pipeline *p = t->data;
    p->in_callback++;
    while (p->ready_head && !p->free_requested) {
        sky_call *c = p->ready_head;
        ready_remove(c);
        wake(c);
    }
    p->in_callback--;
    maybe_free_pipeline(p);
}

/* Admission for @p c from the loop, at once: never inside the caller's own call. The calls
 * made ready in one turn share the pipeline's timer (a timer each cost every call a start,
 * a stop and a close). */
static void kick(sky_call *c)
{
    sky_pipeline *p = c->p;
    stop_timer(c);
    c->step = STEP_WAITING;
    if (c->in_ready)
        return;
    if (p->kick == NULL && (p->kick = malloc(sizeof(*p->kick))) != NULL) {
        uv_timer_init(p->loop, p->kick);
        p->kick->data = p;
    }
    if (p->kick == NULL) {
        uv_timer_start(call_timer(c), on_call_timer, 0, 0); /* out of memory: its own */
        return;
    }
    c->in_ready = 1;
    c->rnext = NULL;
    c->rprev = p->ready_tail;
    if (p->ready_tail)
        p->ready_tail->rnext = c;
    else
        p->ready_head = c;
    p->ready_tail = c;
    if (!uv_is_active((uv_handle_t *)p->kick))
        uv_timer_start(p->kick, on_kick, 0, 0);
}

/* Come back to admission after @p ms, unless the deadline comes first. */
static void wait_then_admit(sky_call *c, uint64_t ms, int counts_as_limit_wait)
{
    uint64_t now = now_ms(c->p);
    if (c->deadline_ms && now + ms >= c->deadline_ms) {
        finish_error(c, SKY_ETIMEDOUT, "operation deadline would pass before the next attempt");
        return;
    }
    if (counts_as_limit_wait)
        c->waited_ms += ms;
    c->step = STEP_WAITING;
    ready_remove(c);
    uv_timer_start(call_timer(c), on_call_timer, ms, 0);
}

/* ---- admission: breaker, concurrency slot, rate limit ---- */

/* A call with a slot waits for a rate (the local one or the admitter's), or goes: the
 * limiter tells the two apart. */
static void park_slot(sky_call *c, int parked)
{
    if (!c->have_slot || c->parked == parked)
        return;
    c->parked = parked;
    if (parked)
        sky_limiter_park(c->p->limiter);
    else
        sky_limiter_unpark(c->p->limiter);
}

static void release_slot_unused(sky_call *c)
{
    park_slot(c, 0);
    if (c->have_slot) {
        sky_limiter_release(c->p->limiter, SKY_LIMIT_IGNORE, 0);
        c->have_slot = 0;
        pump_queue(c->p);
    }
}

/* A call held back by the open breaker ends with the failure that sent it to retry. */
static void finish_held(sky_call *c, const sky_retry_decision *d)
{
    sky_error e;
    sky_error_clear(&e);
    if (c->fault == NULL) {
        sky_error_set(&e, SKY_EBUSY, "circuit open: the endpoint failed repeatedly (%s)",
                      d->reason);
        finish(c, NULL, &e);
        return;
    }
    e = *c->fault;
    snprintf(e.message, sizeof(e.message), "%.150s; then held back by the open circuit (%.60s)",
             c->fault->message, d->reason);
    finish(c, NULL, &e);
}

/*
 * A retry held back by the open breaker counts as one, and waits no longer than its share of
 * the schedule: --max-retries bounds the time a call takes, even behind an endpoint that
 * stays down. A call not yet tried waits for the endpoint instead (a batch rides out an
 * outage).
 */
static void hold_retry(sky_call *c, uint64_t breaker_wait)
{
    sky_pipeline *p = c->p;
    sky_retry_decision d;
    if (sky_retry_decide_held(&p->o.retry, &c->retry, "circuit-open",
                              breaker_wait ? breaker_wait : 1, p->o.clock, c->deadline_ms,
                              &d) < 0 ||
        d.action != SKY_RETRY_YES) {
        finish_held(c, &d);
        return;
    }
    c->waits_on_endpoint = 1;
    wait_then_admit(c, d.delay_ms, 1);
}

/* Asked right before sending (after the slot), so calls that waited in the
 * queue meet a breaker that opened meanwhile. */
static int admit_breaker(sky_call *c)
{
    sky_pipeline *p = c->p;
    uint64_t wait = 0;
    if (!p->o.use_breaker || c->breaker_taken)
        return 1;
    if (sky_breaker_allow(&p->breaker, &wait)) {
        c->breaker_taken = 1;
        return 1;
    }
    release_slot_unused(c);
    if (p->o.breaker_fail_fast) {
        finish_error(c, SKY_EBUSY, "circuit open: the endpoint failed repeatedly");
    } else if (c->retry.attempts > 0) {
        hold_retry(c, wait);
    } else {
        c->waits_on_endpoint = 1; /* first: the wait may end the call at its deadline */
        wait_then_admit(c, wait ? wait : 1, 1);
    }
    return 0;
}

/* A free slot for a call that waits for none: never while held, and first come first served. */
static int take_slot(sky_call *c)
{
    sky_pipeline *p = c->p;
    if (p->held)
        return 0;
    if (!p->o.use_concurrency)
        return 1;
    if (p->queue_head != NULL || !sky_limiter_try_acquire(p->limiter))
        return 0;
    c->have_slot = 1;
    return 1;
}

static int admit_slot(sky_call *c)
{
    sky_pipeline *p = c->p;
    if (c->have_slot || take_slot(c))
        return 1;
    c->step = STEP_QUEUED;
    c->wait_from_ms = now_ms(p);
    if (p->queue_tail)
        p->queue_tail->qnext = c;
    else
        p->queue_head = c;
    p->queue_tail = c;
    if (c->deadline_ms)
        uv_timer_start(call_timer(c), on_call_timer, c->deadline_ms - c->wait_from_ms, 0);
    return 0;
}

static int admit_rate(sky_call *c)
{
    sky_pipeline *p = c->p;
    if (!p->o.use_rate_limit)
        return 1;
    int64_t wait = sky_ratelimit_acquire(p->rate, c->est_tokens);
    if (wait <= 0)
        return 1;
    park_slot(c, 1);
    wait_then_admit(c, (uint64_t)wait, 1);
    return 0;
}

/* The shared limit outside the pipeline, asked once per attempt (a wait keeps its grant). */
static int admit_shared(sky_call *c)
{
    const sky_rate_admitter *a = c->p->o.admitter;
    if (a == NULL || a->acquire == NULL || c->admitted)
        return 1;
    int64_t wait = a->acquire(a->user_data, c->p, c->est_tokens);
    if (wait <= 0) {
        c->admitted = 1;
        return 1;
    }
    c->waits_on_admitter = 1;
    park_slot(c, 1);
    wait_then_admit(c, (uint64_t)wait, 1);
    return 0;
}

static void authorize(sky_call *c);

static void admit(sky_call *c)
{
    sky_pipeline *p = c->p;
    if (c->canceled) {
        finish_error(c, SKY_ECANCELED, "call canceled");
        return;
    }
    if (c->deadline_ms && now_ms(p) >= c->deadline_ms) {
        finish_error(c, SKY_ETIMEDOUT, "operation deadline passed");
        return;
    }
    c->step = STEP_ADMIT;
    if (admit_slot(c) && admit_breaker(c) && admit_shared(c) && admit_rate(c)) {
        park_slot(c, 0);
        authorize(c);
    }
}

/* A slot came free, or the hold was lifted: hand it to the longest-waiting call. */
static void pump_queue(sky_pipeline *p)
{
    while (!p->held && p->queue_head &&
           (!p->o.use_concurrency || sky_limiter_try_acquire(p->limiter))) {
        sky_call *c = p->queue_head;
        p->queue_head = c->qnext;
        if (p->queue_head == NULL)
            p->queue_tail = NULL;
        c->qnext = NULL;
        c->have_slot = p->o.use_concurrency;
        c->waited_ms += now_ms(p) - c->wait_from_ms;
        stop_timer(c);
        admit(c);
    }
}

/* ---- the attempt ---- */

static void on_attempt_done(sky_http_request *req, const sky_http_response *res,
                            const sky_error *err, void *ud);

/* Last before the attempt goes: its signature over everything it carries. */
static int sign_attempt(sky_call *c, sky_headers *h, sky_error *err)
{
    sky_pipeline *p = c->p;
    if (p->o.sign == NULL)
        return 0;
    p->in_callback++;
    int rc = p->o.sign(p->o.sign_user_data, c->method, c->url, h, err);
    p->in_callback--;
    if (rc < 0 && err->code == 0)
        sky_error_set(err, rc, "could not sign the attempt (%s)", sky_err_name(rc));
    return rc < 0 ? rc : 0;
}

/*
 * The attempt's headers: the call's own, with the credential and the signature of this
 * attempt added after them; send_attempt drops those again (sky_headers_truncate, which
 * wipes them) once the transport has copied the request. The first @p own entries are the
 * call's.
 */
static int attempt_headers(sky_call *c, size_t own, sky_error *err)
{
    sky_pipeline *p = c->p;
    sky_headers *h = c->headers;
    int rc = 0;
    if (c->bearer) {
        sky_buf v;
        sky_buf_init(&v, 64 * 1024);
        rc = sky_buf_printf(&v, "Bearer %s", c->bearer);
        c->bearer_hash = token_hash(c->bearer);
        rc = rc ? rc : sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_buf_span(&v));
        if (v.data)
            memset(v.data, 0, v.len);
        sky_buf_free(&v);
        forget_bearer(c);
    }
    if (rc == 0 && p->o.auth)
        rc = p->o.auth(p->o.auth_user_data, h, c->refresh_auth);
    c->refresh_auth = 0;
    if (rc < 0)
        sky_error_set(err, rc == SKY_ENOMEM ? SKY_ENOMEM : SKY_EAUTH,
                      "could not prepare the attempt's headers (credential)");
    else
        rc = sign_attempt(c, h, err);
    if (rc < 0)
        sky_headers_truncate(h, own);
    return rc < 0 ? rc : 0;
}

static long attempt_timeout(const sky_call *c)
{
    long t = c->p->o.attempt_timeout_ms;
    if (c->deadline_ms) {
        uint64_t now = now_ms(c->p);
        long left = c->deadline_ms > now ? (long)(c->deadline_ms - now) : 1;
        if (t <= 0 || left < t)
            t = left;
    }
    return t;
}

/* ---- streaming: the reply's body to the caller as it arrives, the request's from a reader ---- */

static int is_2xx(int status)
{
    return status >= 200 && status < 300;
}

/* Whether the caller may be handed what the transport gives: not once it has gone. */
static int call_listens(const sky_call *c)
{
    return !c->orphaned && !c->canceled && c->step != STEP_DONE;
}

static void on_reply_headers(sky_http_request *req, int status, const sky_headers *headers,
                             void *ud)
{
    sky_call *c = ud;
    sky_pipeline *p = c->p;
    (void)req;
    c->headers_ns = sky_clock_real_ns();
    c->streaming = c->on_body != NULL && is_2xx(status);
    if (!call_listens(c) || !is_2xx(status) || c->on_headers == NULL)
        return;
    /* headers of a streamed reply are the caller's first news of it: no retry after */
    c->committed |= c->streaming;
    p->in_callback++;
    c->on_headers(c, status, headers, c->user_data);
    p->in_callback--;
    maybe_free_pipeline(p);
}

/* A reply that is not streamed is held, its start at least, for the classifier. */
static int hold_body(sky_call *c, const char *data, size_t len)
{
    size_t room = c->held.cap - c->held.len;
    return sky_buf_append(&c->held, data, len < room ? len : room) < 0;
}

static int on_reply_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    sky_call *c = ud;
    sky_pipeline *p = c->p;
    (void)req;
    if (!call_listens(c))
        return 1;
    if (!c->streaming)
        return hold_body(c, data, len);
    c->committed = 1;
    p->in_callback++;
    int rc = c->on_body(c, data, len, c->user_data);
    p->in_callback--;
    if (rc != 0 && rc != SKY_HTTP_PAUSE)
        c->canceled = 1; /* the transfer stops with SKY_ECANCELED: the caller asked */
    maybe_free_pipeline(p);
    return call_listens(c) ? rc : 1;
}

static long read_body(char *out, size_t cap, void *ud)
{
    sky_call *c = ud;
    sky_pipeline *p = c->p;
    if (!call_listens(c))
        return SKY_ECANCELED;
    p->in_callback++;
    long n = c->body_reader(c, out, cap, c->user_data);
    p->in_callback--;
    maybe_free_pipeline(p);
    return call_listens(c) ? n : SKY_ECANCELED;
}

/* Another attempt with a body from a reader starts it again from its first byte. */
static int rewind_body(sky_call *c)
{
    if (c->body_reader == NULL || c->retry.attempts == 0)
        return 0;
    sky_pipeline *p = c->p;
    p->in_callback++;
    int rc = c->body_rewind ? c->body_rewind(c, c->user_data) : SKY_ESTATE;
    p->in_callback--;
    return rc < 0 ? rc : 0;
}

/* Another attempt after a streamed reply that had begun to reach the caller: its sink
 * starts again (only a call with body_restart is retried after that). */
static int restart_reply(sky_call *c)
{
    if (!c->committed || c->body_restart == NULL)
        return 0;
    sky_pipeline *p = c->p;
    c->committed = 0;
    p->in_callback++;
    int rc = c->body_restart(c, c->user_data);
    p->in_callback--;
    return rc < 0 ? rc : 0;
}

/* The transport's side of a streamed call: our callbacks stand between it and the caller's. */
static void stream_options(sky_call *c, sky_http_request_options *ro)
{
    c->streaming = 0;
    c->headers_ns = 0;
    c->reported_tokens = -1;
    sky_buf_reset(&c->held);
    if (c->on_body || c->on_headers)
        ro->on_headers = on_reply_headers;
    if (c->on_body)
        ro->on_body = on_reply_body;
    if (c->body_reader) {
        ro->body_reader = read_body;
        ro->body_length = c->body_length;
    }
}

static void send_attempt(sky_call *c)
{
    sky_pipeline *p = c->p;
    sky_http_request_options ro;
    sky_error err;
    sky_error_clear(&err);
    int rc = rewind_body(c);
    if (rc < 0) {
        release_admission(c);
        finish_error(c, rc, "could not start the request body again");
        return;
    }
    rc = restart_reply(c);
    if (rc < 0) {
        release_admission(c);
        finish_error(c, rc, "could not start the reply's body again");
        return;
    }
    size_t own = sky_headers_count(c->headers);
    rc = attempt_headers(c, own, &err);
    if (rc < 0) {
        release_admission(c);
        finish(c, NULL, &err);
        return;
    }
    sky_http_request_options_init(&ro);
    ro.method = c->method;
    ro.url = c->url;
    ro.headers = c->headers;
    ro.body = sky_span_make(c->body, c->body_len);
    ro.timeout_ms = attempt_timeout(c);
    ro.recv_buffer_size = c->recv_buffer_size;
    ro.upload_buffer_size = c->upload_buffer_size;
    ro.max_response_bytes = c->max_response_bytes;
    ro.on_done = on_attempt_done;
    ro.user_data = c;
    stream_options(c, &ro);
    if (c->on_body)
        c->sent_ns = sky_clock_real_ns(); /* the start of a streamed reply's latency_us */
    SKY_DEBUG("pipeline", "%s %s attempt %d id %s", c->method, c->url, c->retry.attempts + 1,
              c->request_id);
    rc = sky_http_request_send(p->client, &ro, &c->req, &err); /* copies the headers */
    sky_headers_truncate(c->headers, own);
    if (rc < 0) {
        c->req = NULL;
        release_admission(c);
        finish(c, NULL, &err);
        return;
    }
    p->n_on_wire++;
    c->step = STEP_SENDING;
}

/* ---- auth: the credential's token, per attempt ---- */

/* Give back what admission took when no attempt will be made. */
static void release_admission(sky_call *c)
{
    release_slot_unused(c);
    if (c->breaker_taken) {
        sky_breaker_cancel(&c->p->breaker);
        c->breaker_taken = 0;
    }
}

static void on_token(sky_token_request *req, const sky_access_token *tok, const sky_error *err,
                     void *ud)
{
    sky_call *c = ud;
    sky_pipeline *p = c->p;
    (void)req;
    c->token_req = NULL;
    if (c->orphaned) {
        call_free(c);
        if (--p->n_orphans == 0 && p->freeing)
            pipeline_release(p);
        return;
    }
    if (tok && !c->canceled && (c->bearer = strdup(tok->token)) != NULL) {
        send_attempt(c);
    } else {
        sky_error e;
        sky_error_clear(&e);
        if (c->canceled)
            sky_error_set(&e, SKY_ECANCELED, "call canceled");
        else if (err)
            sky_error_set(&e, err->code == SKY_ECANCELED ? SKY_ECANCELED : SKY_EAUTH,
                          "credential: %s", err->message);
        else
            sky_error_set(&e, SKY_ENOMEM, "out of memory");
        if (err)
            e.http_status = err->http_status;
        release_admission(c);
        finish(c, NULL, &e);
    }
    maybe_free_pipeline(p);
}

/* Per try: the token first (cached: usually at once), then the attempt.
 * After a 401 the retry policy asks for a refresh, which skips the cache. */
static void authorize(sky_call *c)
{
    sky_pipeline *p = c->p;
    sky_access_token tok;
    sky_error err;
    if (p->o.credential == NULL) {
        send_attempt(c);
        return;
    }
    /* After a 401, a cached token other than the one refused is already the
     * refresh (another call's): many 401s at once make one token request. */
    if (sky_credential_peek_token(p->o.credential, p->scope, &tok) &&
        (!c->refresh_auth || token_hash(tok.token) != c->bearer_hash)) {
        if ((c->bearer = strdup(tok.token)) != NULL) {
            send_attempt(c);
            return;
        }
    }
    sky_error_clear(&err);
    int rc = c->refresh_auth ? sky_credential_refresh_token(p->o.credential, p->scope, on_token, c,
                                                            &c->token_req, &err)
                             : sky_credential_get_token(p->o.credential, p->scope, on_token, c,
                                                        &c->token_req, &err);
    if (rc < 0) {
        c->token_req = NULL;
        release_admission(c);
        finish_error(c, SKY_EAUTH, err.message);
        return;
    }
    c->step = STEP_SENDING;
}

/* Tokens the reply says the attempt used, by the service's rules; -1 when unknown. */
static int64_t reply_tokens(const sky_call *c, const sky_http_response *res)
{
    const sky_reply_classifier *k = c->p->o.classifier;
    if (c->reported_tokens >= 0)
        return c->reported_tokens;
    if (k == NULL || k->reply_tokens == NULL)
        return -1;
    sky_reply r = {res->status, res->headers, res->body, c->reply_json};
    return k->reply_tokens(k->user_data, &r);
}

/* Whether @p body is JSON, as jansson judges: a scan answers for nearly every reply, jansson
 * for the few the scan leaves to it (a rare escape, a long number, deep nesting). */
static int json_valid(sky_span body)
{
    int rc = sky_json_scan(body, 0, NULL, NULL);
    if (rc != SKY_EJSON)
        return rc;
    json_t *j = NULL;
    rc = sky_json_parse(body, &j, NULL);
    json_decref(j);
    return rc;
}

/* Read a held 2xx reply once: by the caller's check, as a tree, or only checked as JSON. */
static void parse_reply(sky_call *c, const sky_http_response *res, const sky_error *err)
{
    json_decref(c->reply_json);
    c->reply_json = NULL;
    c->parse_rc = 0;
    if (err || !is_2xx(res->status) || c->streaming)
        return;
    if (c->check_reply) {
        sky_reply r = {res->status, res->headers, res->body, NULL};
        c->parse_rc = c->check_reply(c, &r, c->user_data);
    } else if (c->want_json) {
        c->parse_rc = sky_json_parse(res->body, &c->reply_json, NULL);
        if (c->parse_rc < 0)
            c->reply_json = NULL;
    } else if (c->require_json) {
        c->parse_rc = json_valid(res->body);
    }
}

/* What tells the concurrency limiter "too much": an attempt that timed out,
 * or a 429 when no rate limiter is there to take it. A 5xx is the endpoint failing, not a verdict
 * on our load (at a steady fault rate it would halve the limit every round trip); the breaker
 * watches those. */
static int is_overload(const sky_pipeline *p, int status, const sky_error *err)
{
    /* With a rate limiter, a 429 is its business: the request rate was too
     * high, not the number in flight, and halving both would halve twice. */
    return (status == 429 && !p->o.use_rate_limit) || (err && err->code == SKY_ETIMEDOUT);
}

/* What a 503 or 529 says (overload_is_rate). */
enum { SHED_NO, SHED_SLOW_DOWN, SHED_AMONG_SUCCESSES };

/*
 * A 503 or 529 that says "slow down" rather than "failed": a 529 (overloaded), a 503
 * with Retry-After, or one that is not the API's JSON error (a proxy's page: nginx's
 * limit_req, a gateway's overflow). An API's own JSON 503 is an ordinary failure unless
 * it comes as a large share of the replies, which stray failures do not.
 */
#define SHED_JSON_SHARE 0.2
#define SHED_JSON_MIN 5
/* Fewer refusals than this in a second, before any success, are stray failures. */
#define SHED_FIRST_BURST 3

static void count_reply(sky_pipeline *p, int status, uint64_t now)
{
    uint64_t slot = now / SHED_SLOT_MS;
    int i = (int)(slot % SHED_SLOTS);
    if (p->reply_slot[i] != slot) {
        p->reply_slot[i] = slot;
        p->replies[i] = p->refusals[i] = 0;
    }
    p->replies[i]++;
    p->refusals[i] += status == 503 || status == 529;
}

/* Replies and refusals over the last second. */
static void recent_replies(const sky_pipeline *p, uint32_t *replies, uint32_t *refusals)
{
    uint64_t slot = now_ms(p) / SHED_SLOT_MS;
    *replies = *refusals = 0;
    for (int i = 0; i < SHED_SLOTS; i++) {
        if (p->reply_slot[i] + SHED_SLOTS > slot && p->reply_slot[i] <= slot) {
            *replies += p->replies[i];
            *refusals += p->refusals[i];
        }
    }
}

static int says_slow_down(const sky_pipeline *p, int status, const sky_headers *h)
{
    uint32_t replies, refusals;
    if (status == 529 || (h && sky_headers_get(h, "retry-after")))
        return 1;
    const char *type = h ? sky_headers_get(h, "content-type") : NULL;
    if (type == NULL || strstr(type, "json") == NULL)
        return 1;
    recent_replies(p, &replies, &refusals);
    return refusals >= SHED_JSON_MIN && (double)refusals >= SHED_JSON_SHARE * (double)replies;
}

/*
 * Among successes, a refusal that says "slow down" is the endpoint shedding load: slow
 * down, and it is not failing. Before any success, several of them are a first burst
 * refused at once (every instant refusal frees a slot for the next request): slow down
 * all the same, and let the breaker count them, whose quiet time leaves room for the
 * first successes to come back.
 */
static int sheds_load(const sky_pipeline *p, int status, const sky_headers *h)
{
    uint32_t replies, refusals;
    if (!p->o.overload_is_rate || (status != 503 && status != 529) || !says_slow_down(p, status, h))
        return SHED_NO;
    if (p->last_ok_ms == 0) {
        recent_replies(p, &replies, &refusals);
        return refusals >= SHED_FIRST_BURST ? SHED_SLOW_DOWN : SHED_NO;
    }
    return now_ms(p) - p->last_ok_ms < p->o.overload_window_ms ? SHED_AMONG_SUCCESSES : SHED_NO;
}

/* How the concurrency limiter takes the attempt. A refusal or failure is no sample of
 * the latency the limit answers for: only a shed load, a timeout (or a 429 without a
 * rate limiter) lowers it; other refusals and 5xx free the slot and say nothing. */
static int limit_outcome(const sky_pipeline *p, int status, const sky_error *err, int shed)
{
    if (err && err->code == SKY_ECANCELED)
        return SKY_LIMIT_IGNORE;
    if (shed || is_overload(p, status, err))
        return SKY_LIMIT_DROPPED;
    if (err || status == 429 || status >= 500)
        return SKY_LIMIT_IGNORE;
    return SKY_LIMIT_SUCCESS;
}

/* For sky_pipeline_get_health: whether the endpoint answers, and its last failure. */
static void note_health(sky_pipeline *p, int status, const sky_error *err)
{
    if (err && err->code == SKY_ECANCELED)
        return;
    if (!err)
        p->answered++;
    if (!err && status < 500)
        return;
    if (err) {
        p->last_fault = *err;
    } else {
        sky_error_clear(&p->last_fault);
        sky_error_set(&p->last_fault, SKY_EHTTP, "HTTP %d", status);
        p->last_fault.http_status = status;
    }
}

/*
 * The endpoint answers again: calls that were held by the open breaker, or backing off
 * after its failures (up to a minute by then), go now rather than when their timers
 * end. Admission still paces them through the concurrency and rate limits.
 */
static void wake_endpoint_waiters(sky_pipeline *p)
{
    for (sky_call *c = p->calls; c; c = c->next) {
        if (c->waits_on_endpoint && c->step == STEP_WAITING) {
            c->waits_on_endpoint = 0;
            kick(c);
        }
    }
}

/*
 * The breaker hears of an endpoint answering with a failure once per call: a retry
 * answered with a failure again says nothing new (a request the server cannot handle
 * fails every time while the others succeed), so it is not counted, unless the breaker
 * is probing. A retry that reaches nothing (refused, reset, timed out) always counts.
 */
static void report_breaker(sky_call *c, int status, const sky_error *err, int shed)
{
    sky_pipeline *p = c->p;
    int ok = !err && status < 500;
    sky_breaker_state before = sky_breaker_get_state(&p->breaker);
    if ((err && err->code == SKY_ECANCELED) || shed ||
        (!ok && !err && c->failed && before == SKY_BREAKER_CLOSED))
        sky_breaker_cancel(&p->breaker);
    else
        sky_breaker_record(&p->breaker, ok);
    c->failed |= !ok;
    c->breaker_taken = 0;
    if (before != SKY_BREAKER_CLOSED && sky_breaker_get_state(&p->breaker) == SKY_BREAKER_CLOSED)
        wake_endpoint_waiters(p);
}

/*
 * The latency the concurrency limiter judges the load by. A streamed reply lasts as long
 * as its producer takes (a chat answer token by token): the time to its headers is what
 * the endpoint's load shows in.
 */
static uint64_t latency_us(const sky_call *c, const sky_http_response *res)
{
    if (c->streaming && c->headers_ns >= c->sent_ns)
        return (c->headers_ns - c->sent_ns) / 1000u;
    return res->total_us;
}

/* The admitter hears how the attempt it let through ended, with the local limiter's rate. */
static void report_admitter(sky_call *c, int status, const sky_headers *h)
{
    const sky_rate_admitter *a = c->p->o.admitter;
    sky_ratelimit_stats rs;
    c->admitted = 0;
    if (a->on_reply == NULL)
        return;
    rs.rpm = 0;
    if (c->p->rate)
        sky_ratelimit_get_stats(c->p->rate, &rs);
    a->on_reply(a->user_data, c->p, status, h, rs.rpm);
}

/* Tell the shared policies how the attempt went. */
static void report_attempt(sky_call *c, const sky_http_response *res, const sky_error *err)
{
    sky_pipeline *p = c->p;
    int status = err ? 0 : res->status;
    uint64_t now = now_ms(p); /* once: a clock read costs as much as a hundred instructions */
    if (status > 0)
        count_reply(p, status, now);
    int shed = sheds_load(p, status, err ? NULL : res->headers);
    if (!err && status >= 200 && status < 300)
        p->last_ok_ms = now;
    if (c->have_slot) {
        sky_limiter_release(p->limiter, limit_outcome(p, status, err, shed), latency_us(c, res));
        c->have_slot = 0;
    }
    if (p->o.use_rate_limit) {
        int64_t actual = status == 429 || shed ? 0 : reply_tokens(c, res);
        sky_ratelimit_on_response(p->rate, shed ? 429 : status, err ? NULL : res->headers,
                                  c->est_tokens, actual);
    }
    if (c->admitted)
        report_admitter(c, shed ? 429 : status, err ? NULL : res->headers);
    if (c->breaker_taken)
        report_breaker(c, status, err, shed == SHED_AMONG_SUCCESSES);
    note_health(p, status, err);
}

/*
 * A reply that is not a success, in the service's own words (its classifier's), else as
 * "HTTP n". Returns 1 when the service says no wait mends it.
 */
static int describe_reply(const sky_call *c, const sky_http_response *res, sky_error *e)
{
    const sky_reply_classifier *k = c->p->o.classifier;
    sky_reply r = {res->status, res->headers, res->body, NULL};
    sky_error_clear(e);
    int final = k && k->describe_error ? k->describe_error(k->user_data, &r, e) : 0;
    sky_error_set(e, SKY_EHTTP, "HTTP %d", res->status); /* when the classifier said nothing */
    e->http_status = res->status;
    /* by the same lists the retry policy uses */
    const sky_retry_options *ro = &c->p->o.retry;
    int wider = (ro->openai_statuses &&
                 (res->status == 409 || (res->status >= 500 && res->status < 600))) ||
                (ro->also_retry && ro->also_retry(res->status));
    e->retryable = !final && (sky_retry_is_retryable(res->status, NULL) || wider);
    return final;
}

/* A 2xx that the caller needs as JSON and is not: a failed attempt with the reply kept. */
static const sky_error *check_json(const sky_call *c, const sky_http_response *res,
                                   const sky_error *err, sky_error *out)
{
    if (err || !(c->require_json || c->check_reply) || !is_2xx(res->status) || c->streaming ||
        c->parse_rc == 0)
        return err;
    if (c->parse_rc == SKY_ENOMEM) {
        /* the reply is fine and paid for: asking again would pay twice */
        sky_error_set(out, SKY_ENOMEM, "HTTP %d: out of memory reading its body (%zu bytes)",
                      res->status, res->body.len);
        out->http_status = res->status;
        return out;
    }
    sky_error_set(out, SKY_EJSON, "HTTP %d with a body that is not valid JSON (%zu bytes)",
                  res->status, res->body.len);
    sky_error_set_service(out, "malformed_response");
    out->http_status = res->status;
    out->retryable = 1;
    return out;
}

/* A 401 is worth its one retry only when the next attempt can carry a new credential. */
static int can_refresh(const sky_pipeline *p)
{
    return p->o.credential != NULL || (p->o.auth != NULL && p->o.auth_refreshes);
}

/* An endpoint that never answered and cannot be reached: its address or certificates are wrong. */
static int unreachable(const sky_pipeline *p, const sky_error *err)
{
    return p->o.fail_unreached && err && p->answered == 0 &&
           (err->code == SKY_ECONNECT || err->code == SKY_ERESOLVE || err->code == SKY_ETLS);
}

/*
 * Why this failed attempt must be the last though the retry lists might allow another;
 * NULL when nothing forbids a retry. @p bad_json is the attempt's unreadable 2xx, if any;
 * @p refused says the service found the reply final.
 */
static const char *final_reason(sky_call *c, const sky_http_response *res, const sky_error *err,
                                sky_error *bad_json, int refused, const sky_error *refusal)
{
    if (err == bad_json && (bad_json->code == SKY_ENOMEM || c->malformed++ > 0)) {
        /* a paid reply that could not be read twice will not be read a third time; one
         * that memory ran out reading is fine, and asking again would pay twice */
        bad_json->retryable = 0;
        return bad_json->code == SKY_ENOMEM ? "out_of_memory" : "malformed_response";
    }
    if (refused)
        return refusal->service_code[0] ? refusal->service_code : "final";
    if (err && c->committed && c->body_restart == NULL)
        return "after the first byte"; /* the caller has consumed part of the reply */
    if (unreachable(c->p, err))
        return "unreachable";
    if ((err || !is_2xx(res->status)) && c->body_reader && c->body_rewind == NULL)
        return "body read once";
    return NULL;
}

/* A retried call keeps its last failure, to end with should the breaker hold it back. */
static void keep_fault(sky_call *c, const sky_error *outcome)
{
    if (outcome == NULL || (c->fault == NULL && (c->fault = malloc(sizeof(*c->fault))) == NULL))
        return;
    *c->fault = *outcome;
}

/* After an attempt: the end of the call, or another attempt after a wait. */
static void settle(sky_call *c, const sky_http_response *res, const sky_error *err)
{
    sky_pipeline *p = c->p;
    sky_retry_decision d;
    sky_error bad_json, refusal;
    sky_error_clear(&bad_json);
    sky_error_clear(&refusal);
    err = check_json(c, res, err, &bad_json);
    int refused = !err && !is_2xx(res->status) && describe_reply(c, res, &refusal);
    /* what the call ends with, should it end here */
    const sky_error *outcome = err ? err : is_2xx(res->status) ? NULL : &refusal;
    const char *final =
        c->canceled ? NULL : final_reason(c, res, err, &bad_json, refused, &refusal);
    if (c->canceled) {
        finish_error(c, SKY_ECANCELED, "call canceled");
    } else if (final) {
        sky_retry_record_final(&c->retry, res->status, final);
        finish(c, res, outcome);
    } else if (sky_retry_decide(&p->o.retry, &c->retry, err ? 0 : res->status, err, res->headers,
                                p->o.clock, c->deadline_ms, NULL, NULL, &d) < 0 ||
               (d.action != SKY_RETRY_YES &&
                !(d.action == SKY_RETRY_REFRESH_AUTH && can_refresh(p)))) {
        finish(c, res, outcome);
    } else {
        SKY_DEBUG("pipeline", "%s id %s: %s", c->url, c->request_id, d.reason);
        c->refresh_auth = d.action == SKY_RETRY_REFRESH_AUTH;
        keep_fault(c, outcome);
        /* what the breaker counts as the endpoint failing; not a 429's Retry-After */
        c->waits_on_endpoint = err != NULL || res->status >= 500;
        c->backing_off = 1; /* over when its timer fires or the call ends (unlink_call) */
        p->n_backing_off++;
        wait_then_admit(c, d.action == SKY_RETRY_YES ? d.delay_ms : 0, 0);
    }
}

static void on_attempt_done(sky_http_request *req, const sky_http_response *res,
                            const sky_error *err, void *ud)
{
    sky_call *c = ud;
    sky_pipeline *p = c->p;
    (void)req;
    c->req = NULL;
    p->n_on_wire--;
    c->attempt_ms = res->total_us / 1000u;
    if (c->orphaned) {
        call_free(c);
        if (--p->n_orphans == 0 && p->freeing)
            pipeline_release(p);
        return;
    }
    /* a streamed call's reply that was not streamed was held here, not by the transport */
    sky_http_response reply = *res;
    if (c->on_body)
        reply.body = sky_buf_span(&c->held);
    parse_reply(c, &reply, err);
    report_attempt(c, &reply, err);
    pump_queue(p);
    settle(c, &reply, err);
    maybe_free_pipeline(p);
}

/* ---- starting and cancelling ---- */

/*
 * The call's headers: the caller's, then its request id, one for every attempt, as
 * azure-core's x-ms-client-request-id (sent once: a second copy as x-request-id cost every
 * request some 7,000 instructions in curl, and that name is the reply's).
 */
static int call_headers(sky_call *c, const sky_headers *src)
{
    if (c->headers == NULL)
        c->headers = sky_headers_new();
    int rc = c->headers ? 0 : SKY_ENOMEM;
    if (rc == 0 && src)
        rc = sky_headers_add_all(c->headers, src);
    sky_rand_uuid(c->request_id);
    if (rc == 0 && c->p->o.send_request_id)
        rc = sky_headers_add(c->headers, SKY_SPAN_LIT("x-ms-client-request-id"),
                             sky_span_cstr(c->request_id));
    return rc;
}

static sky_call *call_new(sky_pipeline *p, const sky_call_options *o)
{
    const char *m = o->method ? o->method : o->body.len || o->body_reader ? "POST" : "GET";
    size_t mlen = strlen(m) + 1, ulen = strlen(o->url) + 1;
    size_t blen = o->body_reader == NULL ? o->body.len : 0;
    if (blen > SIZE_MAX - sizeof(sky_call) - mlen - ulen)
        return NULL;
    /* One allocation: the call, then its method, URL and body; a kept one when they fit.
     * Only the first CALL_SPARE calls in flight are given the room to be kept: beyond them
     * (thousands of held streams) the room would be memory no call reuses. */
    size_t room = mlen + ulen + blen;
    sky_call *c = room <= CALL_ROOM ? p->spare : NULL;
    int roomy = room <= CALL_ROOM && (c != NULL || p->n_active < CALL_SPARE);
    sky_headers *h = NULL;
    if (c) {
        p->spare = c->next;
        p->n_spare--;
        h = c->headers; /* emptied when it was kept */
    } else if ((c = malloc(sizeof(*c) + (roomy ? CALL_ROOM : room))) == NULL) {
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    c->p = p;
    c->roomy = roomy;
    c->headers = h;
    c->method = memcpy((char *)(c + 1), m, mlen);
    c->url = memcpy(c->method + mlen, o->url, ulen);
    if (blen) {
        c->body = memcpy(c->url + ulen, o->body.ptr, blen);
        c->body_len = blen;
    }
    sky_buf_init(&c->held, HELD_BODY_MAX);
    if (call_headers(c, o->headers) < 0) {
        call_free(c);
        return NULL;
    }
    return c;
}

int sky_call_start(sky_pipeline *p, const sky_call_options *o, sky_call **out_call, sky_error *err)
{
    if (p == NULL || o == NULL || o->url == NULL || o->on_done == NULL)
        return sky_error_set(err, SKY_EINVAL, "a call needs a pipeline, a url and on_done");
    if (o->on_body && (o->require_json || o->want_json || o->check_reply))
        return sky_error_set(err, SKY_EINVAL, "a streamed reply body cannot be read as JSON");
    if (p->freeing || p->free_requested)
        return sky_error_set(err, SKY_ESTATE, "the pipeline is being freed");
    sky_call *c = call_new(p, o);
    if (c == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory starting a call");
    c->est_tokens = o->est_tokens;
    c->require_json = o->require_json;
    c->want_json = o->want_json;
    c->check_reply = o->check_reply;
    c->on_done = o->on_done;
    c->user_data = o->user_data;
    c->on_headers = o->on_headers;
    c->on_body = o->on_body;
    c->body_reader = o->body_reader;
    c->body_rewind = o->body_rewind;
    c->body_restart = o->body_restart;
    c->recv_buffer_size = o->recv_buffer_size;
    c->upload_buffer_size = o->upload_buffer_size;
    c->max_response_bytes = o->max_response_bytes;
    c->body_length = o->body_reader ? o->body_length : 0;
    c->reported_tokens = -1;
    sky_retry_state_init(&c->retry);
    c->start_ms = now_ms(p);
    if (p->o.operation_timeout_ms > 0)
        c->deadline_ms = c->start_ms + (uint64_t)p->o.operation_timeout_ms;
    c->next = p->calls;
    if (p->calls)
        p->calls->prev = c;
    p->calls = c;
    p->n_active++;
    if (out_call)
        *out_call = c;
    /* Admission runs from the loop, so the callback never runs inside this call. */
    kick(c);
    return 0;
}

void sky_call_cancel(sky_call *c)
{
    if (c == NULL || c->canceled || c->step == STEP_DONE)
        return;
    c->canceled = 1;
    if (c->req) {
        sky_http_request_cancel(c->req);
        return;
    }
    if (c->token_req) {
        sky_token_request_cancel(c->token_req);
        return;
    }
    if (c->step == STEP_QUEUED)
        queue_remove(c->p, c);
    kick(c);
}

void sky_call_resume(sky_call *c)
{
    if (c && c->req && c->step != STEP_DONE)
        sky_http_request_resume(c->req);
}

void sky_call_set_usage(sky_call *c, int64_t tokens)
{
    if (c && tokens >= 0)
        c->reported_tokens = tokens;
}

size_t sky_pipeline_cancel_waiting(sky_pipeline *p)
{
    size_t n = 0;
    if (p == NULL)
        return 0;
    for (sky_call *c = p->calls; c != NULL; c = c->next) {
        if (c->canceled || c->req != NULL || c->step == STEP_SENDING || c->step == STEP_DONE)
            continue;
        sky_call_cancel(c); /* a waiting call only arms its timer: the list stays as it is */
        n++;
    }
    return n;
}

/* ---- the pipeline ---- */

int sky_pipeline_new(uv_loop_t *loop, sky_http_client *client, const sky_pipeline_options *o,
                     sky_pipeline **out)
{
    if (loop == NULL || client == NULL || out == NULL ||
        (o && o->credential && (o->scope == NULL || *o->scope == '\0')))
        return SKY_EINVAL;
    sky_pipeline *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return SKY_ENOMEM;
    p->loop = loop;
    p->client = client;
    if (o)
        p->o = *o;
    else
        sky_pipeline_options_init(&p->o);
    int rc = 0;
    if (p->o.credential && (p->scope = strdup(p->o.scope)) == NULL)
        rc = SKY_ENOMEM;
    p->o.scope = p->scope;
    if (rc == 0 && p->o.use_rate_limit)
        rc = sky_ratelimit_new(&p->o.rate, p->o.clock, &p->rate);
    if (rc == 0 && p->o.use_concurrency)
        rc = sky_limiter_new(&p->o.concurrency, p->o.clock, &p->limiter);
    if (rc == 0 && p->o.use_breaker)
        rc = sky_breaker_init(&p->breaker, &p->o.breaker, p->o.clock);
    if (rc < 0) {
        sky_ratelimit_free(p->rate);
        sky_limiter_free(p->limiter);
        free(p->scope);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void pipeline_release(sky_pipeline *p)
{
    while (p->spare) {
        sky_call *c = p->spare;
        p->spare = c->next;
        sky_headers_free(c->headers);
        free(c);
    }
    if (p->o.admitter && p->o.admitter->on_free)
        p->o.admitter->on_free(p->o.admitter->user_data, p);
    sky_ratelimit_free(p->rate);
    sky_limiter_free(p->limiter);
    free(p->scope);
    kick_close(p);
    free(p);
}

/* A call whose attempt is in flight when the pipeline goes: report it now;
 * the transport answers later, and then the call is freed silently. */
static void orphan_call(sky_pipeline *p, sky_call *c)
{
    sky_error e;
    sky_call_result r;
    unlink_call(p, c);
    c->orphaned = 1;
    p->n_orphans++;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECANCELED, "pipeline freed");
    fill_result(c, NULL, &r);
    p->in_callback++;
    c->on_done(c, &r, &e, c->user_data);
    p->in_callback--;
    if (c->req)
        sky_http_request_cancel(c->req);
    else
        sky_token_request_cancel(c->token_req);
}

void sky_pipeline_free(sky_pipeline *p)
{
    if (p == NULL || p->freeing)
        return;
    if (p->in_callback > 0) {
        p->free_requested = 1;
        return;
    }
    p->freeing = 1;
    p->free_requested = 0;
    p->queue_head = p->queue_tail = NULL;
    while (p->calls) {
        if (p->calls->req || p->calls->token_req)
            orphan_call(p, p->calls);
        else
            finish_error(p->calls, SKY_ECANCELED, "pipeline freed");
    }
    if (p->n_orphans == 0)
        pipeline_release(p);
}

void sky_pipeline_hold(sky_pipeline *p, int hold)
{
    if (p == NULL || p->held == !!hold)
        return;
    p->held = !!hold;
    if (!p->held)
        pump_queue(p);
}

void sky_pipeline_admitter_wake(sky_pipeline *p)
{
    for (sky_call *c = p ? p->calls : NULL; c; c = c->next) {
        if (c->waits_on_admitter && c->step == STEP_WAITING) {
            c->waits_on_admitter = 0;
            kick(c);
        }
    }
}

size_t sky_pipeline_active(const sky_pipeline *p)
{
    return p->n_active;
}

size_t sky_pipeline_on_wire(const sky_pipeline *p)
{
    return p->n_on_wire;
}

size_t sky_pipeline_backing_off(const sky_pipeline *p)
{
    return p->n_backing_off;
}

sky_ratelimit *sky_pipeline_rate_limiter(sky_pipeline *p)
{
    return p->rate;
}

sky_limiter *sky_pipeline_limiter(sky_pipeline *p)
{
    return p->limiter;
}

void sky_pipeline_get_health(const sky_pipeline *p, sky_pipeline_health *out)
{
    memset(out, 0, sizeof(*out));
    out->breaker = p->o.use_breaker ? sky_breaker_get_state(&p->breaker) : SKY_BREAKER_CLOSED;
    if (p->o.use_breaker) {
        sky_breaker_counters bc;
        sky_breaker_get_counters(&p->breaker, &bc);
        out->times_opened = bc.opened;
        out->failed_probes = bc.reopened;
        out->retry_in_ms = sky_breaker_wait_ms(&p->breaker);
    }
    out->answered = p->answered;
    out->last_fault = p->last_fault;
}
