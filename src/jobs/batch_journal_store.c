/*
 * The batch's journal store: results in the output journal, failures in the errors journal
 * when there is one. A custom_id is done when either holds it.
 */
#include <stdlib.h>
#include <string.h>

#include "skyio/batch.h"

typedef struct journal_store {
    sky_batch_store base;
    sky_journal *out, *err;
    int open;          /* journals not yet closed */
    sky_error failure; /* the first close that failed */
    uint64_t unwritten;
    sky_batch_store_closed_cb cb;
    void *cb_data;
} journal_store;

static int js_is_done(const sky_batch_store *st, const char *custom_id)
{
    const journal_store *s = (const journal_store *)st;
    return sky_journal_is_done(s->out, custom_id) ||
           (s->err && sky_journal_is_done(s->err, custom_id));
}

static int js_append(sky_batch_store *st, const sky_batch_record *rec)
{
    journal_store *s = (journal_store *)st;
    sky_journal *j = rec->failed && s->err ? s->err : s->out;
    return sky_journal_append_id(j, rec->custom_id, rec->line.ptr, rec->line.len);
}

static void on_drain(sky_journal *j, void *ud)
{
    (void)j;
    sky_batch_store_drained(ud);
}

static void on_error(sky_journal *j, const sky_error *err, void *ud)
{
    (void)j;
    sky_batch_store_failed(ud, err);
}

static void on_journal_closed(sky_journal *j, const sky_error *err, void *ud)
{
    journal_store *s = ud;
    sky_journal_stats st;
    /* the journal is freed when this returns: keep what the summary needs of it */
    sky_journal_get_stats(j, &st);
    s->unwritten += st.unwritten;
    if (err && err->code && s->failure.code == 0)
        s->failure = *err;
    if (--s->open > 0)
        return;
    if (s->cb)
        s->cb(&s->base, s->failure.code ? &s->failure : NULL, s->unwritten, s->cb_data);
    free(s);
}

static void js_close(sky_batch_store *st, sky_batch_store_closed_cb cb, void *ud)
{
    journal_store *s = (journal_store *)st;
    sky_journal *out = s->out, *err = s->err;
    s->cb = cb;
    s->cb_data = ud;
    s->open = (out != NULL) + (err != NULL);
    if (out)
        (void)sky_journal_close(out, on_journal_closed, s);
    if (err)
        (void)sky_journal_close(err, on_journal_closed, s);
}

int sky_batch_journal_store_new(sky_journal *output, sky_journal *errors, sky_batch_store **out)
{
    journal_store *s = output ? calloc(1, sizeof(*s)) : NULL;
    *out = NULL;
    if (s == NULL) {
        if (output)
            (void)sky_journal_close(output, NULL, NULL);
        if (errors)
            (void)sky_journal_close(errors, NULL, NULL);
        return output ? SKY_ENOMEM : SKY_EINVAL;
    }
    s->base.is_done = js_is_done;
    s->base.append = js_append;
    s->base.close = js_close;
    s->out = output;
    s->err = errors;
    sky_journal_set_handlers(output, on_error, on_drain, &s->base);
    if (errors)
        sky_journal_set_handlers(errors, on_error, on_drain, &s->base);
    *out = &s->base;
    return 0;
}

/* One journal with the batch's settings: room for a record around the largest reply the
 * client takes (64 MiB). */
static int open_one(uv_loop_t *loop, const char *path, int retry_failed, sky_journal **out,
                    sky_error *err)
{
    sky_journal_options jo;
    sky_error e;
    sky_error_clear(&e);
    sky_journal_options_init(&jo);
    jo.retry_failed = retry_failed;
    jo.max_line_bytes = (size_t)65 << 20;
    int rc = sky_journal_open(loop, path, &jo, out, &e);
    if (rc < 0) {
        sky_error_set(err, rc, "%s: %s", path, e.message);
        err->http_status = e.http_status;
    }
    return rc;
}

int sky_batch_journal_store_open(uv_loop_t *loop, const char *output, const char *errors,
                                 int retry_failed, sky_batch_store **out, sky_error *err)
{
    sky_journal *o = NULL, *e = NULL;
    *out = NULL;
    if (output == NULL)
        return sky_error_set(err, SKY_EINVAL, "a journal store needs an output");
    int rc = open_one(loop, output, retry_failed, &o, err);
    if (rc == 0 && errors)
        rc = open_one(loop, errors, retry_failed, &e, err);
    if (rc < 0) {
        if (o)
            (void)sky_journal_close(o, NULL, NULL);
        return rc;
    }
    rc = sky_batch_journal_store_new(o, e, out);
    if (rc < 0)
        sky_error_set(err, rc, "%s", sky_strerror(rc));
    return rc;
}

int sky_batch_journal_store_scan(const sky_batch_store *st, int errors, sky_journal_stats *out)
{
    const journal_store *s = (const journal_store *)st;
    const sky_journal *j = st && st->is_done == js_is_done ? (errors ? s->err : s->out) : NULL;
    if (j == NULL)
        return SKY_EINVAL;
    sky_journal_get_stats(j, out);
    return 0;
}

char *sky_batch_default_output(const char *input)
{
    size_t n = strlen(input);
    const char *ext = n > 6 && strcmp(input + n - 6, ".jsonl") == 0 ? input + n - 6 : input + n;
    sky_buf b;
    sky_buf_init(&b, 8192);
    if (sky_buf_printf(&b, "%.*s.out.jsonl", (int)(ext - input), input) < 0) {
        sky_buf_free(&b);
        return NULL;
    }
    return sky_buf_detach(&b, NULL);
}
