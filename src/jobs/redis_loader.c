/*
 * The loader: input lines into the job, a chunk per script. Every line is parsed here, so
 * the stream holds only requests a worker can send; a bad line, a duplicate custom_id or a
 * line too long becomes its error record at once, under the id the one-machine batch would
 * give it. A rerun reads the file again (to know the duplicates) but sends only the lines
 * past the job's cursor, and the script takes each custom_id once whatever it is sent.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/batchline.h"
#include "skyio/idset.h"
#include "redis_internal.h"

#define CHUNK_LINES 128
#define CHUNK_BYTES (1u << 20)

typedef struct rload {
    sky__redis_part part;
    sky_redis_job *j;
    sky_batch_source *lines;
    sky_batchline_options lo;
    int text; /* each line a prompt: the job gets the chat request made of it */
    sky_batch_store *local;
    sky_redis_job_done_cb cb;
    void *ud;
    sky_idset *seen;
    uint64_t cursor; /* the job's: lines up to it are in */
    uint64_t last_line;
    /* the chunk: kind, custom_id, line number, payload per line */
    char *args[2 + 4 * CHUNK_LINES];
    size_t lens[2 + 4 * CHUNK_LINES];
    char cursor_arg[32];
    int nlines;
    size_t bytes;
    int sending, eof, done_sent, finished, started;
} rload;

static void pump(rload *l);

static void chunk_clear(rload *l)
{
    for (int i = 2; i < 2 + 4 * l->nlines; i++) {
        free(l->args[i]);
        l->args[i] = NULL;
    }
    l->nlines = 0;
    l->bytes = 0;
}

static void destroy(rload *l)
{
    chunk_clear(l);
    sky_idset_free(l->seen);
    sky__redis_remove_part(l->j, &l->part);
    if (l->j->loader == l)
        l->j->loader = NULL;
    free(l);
}

static void finish(rload *l, const sky_error *err)
{
    if (l->finished)
        return;
    l->finished = 1;
    l->lines->on_ready = NULL;
    if (l->cb)
        l->cb(l->j, err, l->ud);
    if (!l->sending)
        destroy(l);
}

static void fail_code(rload *l, int code, const char *what)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, code, "%s", what);
    finish(l, &e);
}

/* ---- the chunk ---- */

static char *copy_span(sky_span s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static int chunk_add(rload *l, const char *kind, sky_span id, uint64_t n, sky_span payload)
{
    char num[24];
    int k = 2 + 4 * l->nlines;
    snprintf(num, sizeof(num), "%llu", (unsigned long long)n);
    l->args[k] = strdup(kind);
    l->args[k + 1] = copy_span(id);
    l->args[k + 2] = strdup(num);
    l->args[k + 3] = copy_span(payload);
    l->lens[k] = 1;
    l->lens[k + 1] = id.len;
    l->lens[k + 2] = strlen(num);
    l->lens[k + 3] = payload.len;
    l->nlines++;
    l->bytes += payload.len + id.len;
    for (int i = k; i < k + 4; i++)
        if (l->args[i] == NULL)
            return SKY_ENOMEM;
    return 0;
}

/* An input error's record, under its own custom_id or skyio-<kind>-line-N. */
static int add_bad(rload *l, sky_batchline_error *le, const char *kind)
{
    char id[SKY_BATCHLINE_CUSTOM_ID_MAX + 1], hex[32];
    sky_buf rec;
    if (kind == NULL && le->has_custom_id)
        memcpy(id, le->custom_id, le->custom_id_len + 1);
    else
        snprintf(id, sizeof(id), "skyio-%s-line-%llu", kind ? kind : "input",
                 (unsigned long long)le->line);
    if (le->line <= l->cursor || (l->local && l->local->is_done(l->local, id)))
        return 0;
    le->has_custom_id = 1;
    le->custom_id_len = strlen(id);
    memcpy(le->custom_id, id, le->custom_id_len + 1);
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)le->line);
    sky_buf_init(&rec, 1u << 20);
    int rc = sky_batchline_record_input_error(&rec, hex, le);
    if (rc == 0)
        rc = chunk_add(l, "b", sky_span_cstr(id), le->line, sky_buf_span(&rec));
    sky_buf_free(&rec);
    return rc;
}

static sky_span trim_eol(sky_span s)
{
    while (s.len && (s.ptr[s.len - 1] == '\n' || s.ptr[s.len - 1] == '\r'))
        s.len--;
    return s;
}

/*
 * In text mode the job holds the request made of the prompt, a Batch input line like any
 * other, so workers need no --text or --model of their own. The custom_id is line-N and
 * the url a static path: neither needs escaping; the body is the JSON text made for it.
 */
static int add_text_request(rload *l, const sky_batchline_request *req, uint64_t n)
{
    static const char fmt[] =
        "{\"custom_id\":\"%s\",\"method\":\"POST\",\"url\":\"%s\",\"body\":%s}";
    size_t cap = sizeof(fmt) + strlen(req->custom_id) + strlen(req->url) + req->body_len;
    char *line = malloc(cap);
    if (line == NULL)
        return SKY_ENOMEM;
    int len = snprintf(line, cap, fmt, req->custom_id, req->url, req->body);
    int rc = chunk_add(l, "r", sky_span_cstr(req->custom_id), n, sky_span_make(line, (size_t)len));
    free(line);
    return rc;
}

static int add_request(rload *l, const sky_batch_source_line *line,
                       const sky_batchline_request *req)
{
    const char *cid = req->custom_id;
    if (line->number <= l->cursor || (l->local && l->local->is_done(l->local, cid)))
        return 0;
    if (l->text)
        return add_text_request(l, req, line->number);
    return chunk_add(l, "r", sky_span_cstr(cid), line->number, trim_eol(line->text));
}

static int add_line(rload *l, const sky_batch_source_line *line)
{
    sky_batchline_request req;
    sky_batchline_error le;
    if (line->too_long) {
        sky_batchline_error_too_long(&le, line->number, &l->lo);
        return add_bad(l, &le, "input");
    }
    memset(&req, 0, sizeof(req));
    int rc = l->text ? sky_batchline_text_parse(line->text, line->number, &l->lo, &req, &le)
                     : sky_batchline_parse(line->text, line->number, &l->lo, &req, &le);
    if (rc == SKY_BATCHLINE_BLANK)
        return 0;
    if (rc < 0) {
        if (le.err.code == SKY_ENOMEM)
            return SKY_ENOMEM;
        int added = le.has_custom_id
                        ? sky_idset_add(l->seen, sky_span_make(le.custom_id, le.custom_id_len))
                        : 0;
        return added < 0 ? added : add_bad(l, &le, added ? NULL : "input");
    }
    sky_span id = sky_span_cstr(req.custom_id);
    int added = sky_idset_add(l->seen, id);
    if (added == 0) {
        sky_batchline_error_duplicate(&le, line->number, 0, id);
        rc = add_bad(l, &le, "duplicate");
    } else {
        rc = added < 0 ? added : add_request(l, line, &req);
    }
    sky_batchline_request_free(&req);
    return rc;
}

/* ---- sending ---- */

static void on_loaded(redisAsyncContext *ac, void *reply, void *ud)
{
    rload *l = ud;
    redisReply *r = reply;
    sky_error e;
    sky_error_clear(&e);
    (void)ac;
    l->sending = 0;
    if (l->finished) {
        destroy(l);
        return;
    }
    if (r == NULL)
        return; /* the connection went: on_up sends the chunk again */
    if (sky__redis_is_error(r, "NOJOB")) {
        sky__redis_mark_lost(l->j, "its state is gone from Redis (restarted without its data, "
                                   "or the job deleted)");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sky__redis_reply_error(&e, SKY_EPROTO, "loading the job", r);
        finish(l, &e);
        return;
    }
    if (l->done_sent) {
        finish(l, NULL);
        return;
    }
    chunk_clear(l);
    pump(l);
}

static void send_chunk(rload *l)
{
    static const int keys[] = {SKY__RK_META, SKY__RK_IDS, SKY__RK_STREAM, SKY__RK_DONE,
                               SKY__RK_OUT};
    const char *args[2 + 4 * CHUNK_LINES];
    if (l->sending || !l->j->up)
        return;
    /* the last chunk sets load_done with its entries: a worker that reads them knows */
    l->done_sent = l->eof;
    snprintf(l->cursor_arg, sizeof(l->cursor_arg), "%llu%s", (unsigned long long)l->last_line,
             l->eof ? ":done" : "");
    args[0] = l->j->token;
    args[1] = l->done_sent && l->nlines == 0 ? "done" : l->cursor_arg;
    l->lens[0] = strlen(args[0]);
    l->lens[1] = strlen(args[1]);
    for (int i = 2; i < 2 + 4 * l->nlines; i++)
        args[i] = l->args[i];
    if (sky__redis_eval(l->j, SKY__RS_LOAD, keys, 5, 2 + 4 * l->nlines, args, l->lens, on_loaded,
                        l) == 0)
        l->sending = 1;
}

static void on_lines_ready(void *engine)
{
    pump(engine);
}

/* Read lines into the chunk until it is full, the source waits, or it ends; then send. */
static void pump(rload *l)
{
    sky_batch_source_line line;
    sky_error err;
    sky_error_clear(&err);
    if (l->sending || l->finished)
        return;
    while (!l->eof && l->nlines < CHUNK_LINES && l->bytes < CHUNK_BYTES) {
        sky_error_clear(&err);
        int rc = l->lines->next(l->lines, &line, &err);
        if (rc == SKY_BATCH_SOURCE_WAIT)
            return;
        if (rc == SKY_BATCH_SOURCE_END) {
            l->eof = 1;
        } else if (rc < 0) {
            finish(l, &err);
            return;
        } else {
            l->last_line = line.number;
            if (add_line(l, &line) < 0) {
                fail_code(l, SKY_ENOMEM, "out of memory loading the job");
                return;
            }
        }
    }
    send_chunk(l);
}

/* ---- start: the cursor first ---- */

static void on_cursor(redisAsyncContext *ac, void *reply, void *ud)
{
    rload *l = ud;
    redisReply *r = reply;
    (void)ac;
    l->sending = 0;
    if (l->finished) {
        destroy(l);
        return;
    }
    if (r == NULL)
        return; /* on_up asks again */
    l->started = 1;
    if (r->type == REDIS_REPLY_STRING)
        l->cursor = strtoull(r->str, NULL, 10);
    pump(l);
}

static void ask_cursor(rload *l)
{
    const char *argv[] = {"HGET", l->j->keys[SKY__RK_META], "cursor"};
    if (sky__redis_send(l->j, on_cursor, l, 3, argv, NULL) == 0)
        l->sending = 1;
}

static void on_up(sky__redis_part *p)
{
    rload *l = (rload *)((char *)p - offsetof(rload, part));
    if (!l->started)
        ask_cursor(l);
    else
        send_chunk(l);
}

static void on_lost(sky__redis_part *p)
{
    rload *l = (rload *)((char *)p - offsetof(rload, part));
    finish(l, &l->j->lost_err);
}

int sky_redis_job_load(sky_redis_job *j, sky_batch_source *lines,
                       const sky_batchline_options *line_opts, int text, sky_batch_store *local,
                       sky_redis_job_done_cb cb, void *user_data)
{
    rload *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->seen = sky_idset_new(0)) == NULL) {
        free(l);
        return SKY_ENOMEM;
    }
    l->j = j;
    l->lines = lines;
    if (line_opts)
        l->lo = *line_opts;
    else
        sky_batchline_options_init(&l->lo);
    l->text = text;
    l->local = local;
    l->cb = cb;
    l->ud = user_data;
    lines->on_ready = on_lines_ready;
    lines->engine = l;
    l->part.on_up = on_up;
    l->part.on_lost = on_lost;
    sky__redis_add_part(j, &l->part);
    j->loader = l;
    ask_cursor(l);
    return 0;
}

void sky__redis_loader_cancel(void *p)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECANCELED, "the job was closed");
    finish((rload *)p, &e);
}
