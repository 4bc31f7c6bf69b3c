/* The batch engine's parts: the handle (batch.c), requests (batch_request.c), recording
 * (batch_record.c) and reports (batch_report.c) share this. */
#ifndef SKY_JOBS_BATCH_INTERNAL_H
#define SKY_JOBS_BATCH_INTERNAL_H

#include "skyio/batch.h"
#include "skyio/idset.h"
#include "skyio/metrics.h"
#include "skyio/route.h"
#include "ai/usage.h"

typedef struct sky__batch_timeline sky__batch_timeline;
typedef struct sky__batch_token sky__batch_token;
typedef struct sky__batch_routes sky__batch_routes;
typedef struct sky__batch_routed sky__batch_routed;

/* One request in flight (batch_request.c). */
typedef struct sky__batch_item {
    sky_batch *b;
    char *custom_id;
    sky__ai_usage usage;       /* what the last 2xx reply said it used */
    int too_deep;              /* ... and whether it nests too deep to be recorded */
    sky__batch_routed *routed; /* with deployments: where it goes (batch_route.c); else NULL */
} sky__batch_item;

/* A record the store could not take yet (it said SKY_EBUSY). */
typedef struct sky__batch_held {
    struct sky__batch_held *next;
    char *id;
    char *line;
    size_t len;
    int failed;
} sky__batch_held;

struct sky_batch {
    uv_loop_t *loop;
    sky_http_client *client;
    sky_batch_options o;
    sky_batch_source *src;
    sky_batch_store *store;
    sky_pipeline *pipe;        /* one endpoint's; NULL with deployments, and once stopped */
    sky__batch_routes *routes; /* with deployments (batch_route.c); else NULL */
    sky_headers *json_headers; /* every request's body is JSON */
    sky_idset *seen;           /* custom_ids of this input, for duplicates */
    sky__batch_held *held_head, *held_tail;
    uint64_t window; /* lines read and not finished, at most */
    /* where the run stands */
    int started, eof, stopping, fatal, closing, finished;
    int pumping, paused, store_closing, store_open, src_open;
    int unrecordable;               /* the store failed: results can no longer be written */
    int refused;                    /* sky_batch_refusal */
    int endpoint_down, unreachable; /* the breaker is open; and nothing ever answered */
    uint64_t outages_told;          /* breaker openings already reported */
    int in_event, free_pending, handles_open;
    uint64_t line_no, in_flight;
    /* requests that ended unrecorded (canceled, refused, unwritable) */
    uint64_t left_undone;
    uint64_t unwritten; /* results lost: held ones dropped, and what the store lost */
    /* counts */
    uint64_t skipped, input_errors, ok, failed, retries, tokens_in, tokens_out, responses_429;
    uint64_t start_ms;
    sky_histogram latency_ms;
    sky__batch_timeline *timeline; /* options' timeline_path, when set */
    sky__batch_token *first_token; /* asked before the first line is read */
    uv_timer_t watch, progress, grace, defer;
};

/* batch.c */
void sky__batch_apply_limiter(const sky_batch_options *o, sky_pipeline_options *po);
void sky__batch_emit(sky_batch *b, sky_batch_event *ev);
void sky__batch_fault(sky_batch *b, int fault, const sky_error *err, const char *custom_id);
void sky__batch_pump(sky_batch *b);
void sky__batch_maybe_finish(sky_batch *b);
void sky__batch_stop_now(sky_batch *b);

/* batch_request.c: one line into a request, a request's end into a record */
void sky__batch_handle_line(sky_batch *b, const sky_batch_source_line *line);
/* A call's end, as the pipeline reports it (the route's calls end here too). */
void sky__batch_call_done(sky_call *call, const sky_call_result *res, const sky_error *err,
                          void *ud);
int sky__batch_check_reply(sky_call *call, const sky_reply *reply, void *ud);
/* An item that ends without a call's end (a wait canceled): unrecorded, left for the next run. */
void sky__batch_item_unsent(sky__batch_item *it);

/* The sending side, one endpoint's pipeline or the deployments' (batch.c) */
/* Whether requests can still be sent (not stopped at once). */
int sky__batch_live(const sky_batch *b);
/* Cancel what waits (a slot, the rate, a retry, the breaker): how many. */
size_t sky__batch_cancel_waiting(sky_batch *b);
void sky__batch_hold(sky_batch *b, int hold);

/* batch_route.c: a job spread over several deployments (skyio/route.h) */
int sky__batch_routes_new(sky_batch *b, sky_error *err);
/* End every call now (canceled) and every wait; the deployments stay for the summary. */
void sky__batch_routes_close(sky_batch *b);
int sky__batch_routes_live(const sky_batch *b);
void sky__batch_routes_free(sky_batch *b);
/* Send @p req (its body and model taken over) on the deployment with the most headroom: 0;
 * SKY_ENOTFOUND when no deployment serves its model (the line's fault); else this run's. */
int sky__batch_route_start(sky__batch_item *it, sky_batchline_request *req, sky_error *err);
/* A call of @p it ended: 1 when it went on elsewhere (another deployment, or a wait), 0 when
 * the outcome is final. */
int sky__batch_route_again(sky__batch_item *it, const sky_call_result *res, const sky_error *err);
void sky__batch_routed_free(sky__batch_routed *r);
size_t sky__batch_routes_cancel_waiting(sky_batch *b);
void sky__batch_routes_hold(sky_batch *b, int hold);
/* The deployments' health as one: OPEN when none is CLOSED; what each answered, summed. */
void sky__batch_routes_health(const sky_batch *b, sky_pipeline_health *out);
/* Whether a line read now should be sent now (see batch_route.c). */
int sky__batch_routes_room(const sky_batch *b);
/* Their limits and calls on the wire, summed. */
void sky__batch_routes_progress(const sky_batch *b, sky_batch_progress *out);

/* batch_record.c: records into the store, held while it is behind */
int sky__batch_record(sky_batch *b, int failed, const char *id, const sky_buf *line);
void sky__batch_on_store_drain(void *engine);
void sky__batch_on_store_fail(void *engine, const sky_error *err);
void sky__batch_drop_held(sky_batch *b);

/* batch_report.c: the endpoint's watch, progress and the summary */
void sky__batch_watch_endpoint(sky_batch *b);
void sky__batch_report_outages(sky_batch *b);
int sky__batch_never_reached(const sky_batch *b, const sky_error *err);
void sky__batch_stop_unreachable(sky_batch *b, const sky_error *fault);
void sky__batch_summary(const sky_batch *b, sky_batch_summary *out);

/* batch_credential.c: the credential's first token, before any line is read */
void sky__batch_first_token(sky_batch *b);
void sky__batch_first_token_drop(sky_batch *b);

/* batch_timeline.c: a line a second into options' timeline_path */
int sky__batch_timeline_open(sky_batch *b, const char *path, sky__batch_timeline **out,
                             sky_error *err);
void sky__batch_timeline_start(sky__batch_timeline *tl);
void sky__batch_timeline_result(sky__batch_timeline *tl, const char *custom_id,
                                const sky_call_result *res, const sky_error *err);
void sky__batch_timeline_close(sky__batch_timeline *tl);

#endif
