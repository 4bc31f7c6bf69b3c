/*
 * A batch's records into its store. A store that is behind (SKY_EBUSY) holds the pipeline
 * and the reading until it drains, and the records that come meanwhile wait here, in order;
 * a store that cannot write stops the run.
 */
#include <stdlib.h>
#include <string.h>

#include "batch_internal.h"

static void held_free(sky__batch_held *h)
{
    free(h->line);
    free(h->id);
    free(h);
}

static sky__batch_held *held_new(const sky_batch_record *rec)
{
    sky__batch_held *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->line = malloc(rec->line.len ? rec->line.len : 1);
    h->id = strdup(rec->custom_id);
    if (h->line == NULL || h->id == NULL) {
        held_free(h);
        return NULL;
    }
    memcpy(h->line, rec->line.ptr, rec->line.len);
    h->len = rec->line.len;
    h->failed = rec->failed;
    return h;
}

static void hold(sky_batch *b, const sky_batch_record *rec)
{
    sky__batch_held *h = held_new(rec);
    if (h == NULL) {
        sky_error e;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ENOMEM, "out of memory holding a result");
        sky__batch_fault(b, SKY_BATCH_FAULT_HOLD, &e, rec->custom_id);
        b->fatal = 1;
        return;
    }
    if (b->held_tail)
        b->held_tail->next = h;
    else
        b->held_head = h;
    b->held_tail = h;
}

/* Results waiting for room in the store that will not get it: count them as lost. */
void sky__batch_drop_held(sky_batch *b)
{
    while (b->held_head) {
        sky__batch_held *h = b->held_head;
        b->held_head = h->next;
        held_free(h);
        b->unwritten++;
    }
    b->held_tail = NULL;
}

/*
 * Results can no longer be written: send nothing more. What is waiting stays for the next
 * run; the requests already on the wire are answered and, unrecorded, done again then.
 */
static void stop_unrecordable(sky_batch *b)
{
    if (b->unrecordable++ == 0)
        (void)sky__batch_cancel_waiting(b);
    b->fatal = 1;
    b->stopping = 1;
    sky__batch_drop_held(b);
}

static void cannot_record(sky_batch *b, const char *id, int rc)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, rc, "%s", sky_strerror(rc));
    sky__batch_fault(b, SKY_BATCH_FAULT_RECORD, &e, id);
    stop_unrecordable(b);
}

/* Append one record under @p id, failed or not. Returns 0 when it is taken or held to be,
 * -1 when it cannot be (and the run stops). */
int sky__batch_record(sky_batch *b, int failed, const char *id, const sky_buf *line)
{
    sky_batch_record rec = {id, sky_buf_span(line), failed};
    if (b->unrecordable)
        return -1;
    if (b->held_head) {
        hold(b, &rec);
        return 0;
    }
    int rc = b->store->append(b->store, &rec);
    if (rc == SKY_EBUSY) {
        /* the store is behind: send nothing more until it catches up, so what is paid for
         * and not yet written stays within what is on the wire plus its queue */
        hold(b, &rec);
        sky__batch_hold(b, 1);
    } else if (rc < 0 && rc != SKY_BATCH_STORE_DUP) {
        cannot_record(b, id, rc);
        return -1;
    }
    return 0;
}

void sky__batch_on_store_drain(void *engine)
{
    sky_batch *b = engine;
    while (b->held_head) {
        sky__batch_held *h = b->held_head;
        sky_batch_record rec = {h->id, sky_span_make(h->line, h->len), h->failed};
        int rc = b->store->append(b->store, &rec);
        if (rc == SKY_EBUSY)
            return;
        b->held_head = h->next;
        if (b->held_head == NULL)
            b->held_tail = NULL;
        held_free(h);
    }
    sky__batch_hold(b, 0);
    sky__batch_pump(b);
    sky__batch_maybe_finish(b); /* the last results may have been the ones waiting here */
}

void sky__batch_on_store_fail(void *engine, const sky_error *err)
{
    sky_batch *b = engine;
    sky__batch_fault(b, SKY_BATCH_FAULT_STORE, err, NULL);
    stop_unrecordable(b);
}

void sky_batch_store_drained(sky_batch_store *st)
{
    if (st->on_drain)
        st->on_drain(st->engine);
}

void sky_batch_store_failed(sky_batch_store *st, const sky_error *err)
{
    if (st->on_fail)
        st->on_fail(st->engine, err);
}
