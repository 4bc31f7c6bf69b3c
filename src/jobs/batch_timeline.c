/*
 * A batch's timeline: once a second, one JSON line of what the run did in that second
 * (requests and tokens a second, what was on the wire and what waited, the limits in force,
 * 429s, failures by kind, latency percentiles, the slowest requests), appended to a file
 * beside the output through a journal, so a kill -9 loses at most the last second and a
 * rerun goes on where the last run's time ended. `skyio report` draws its charts from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "skyio/clock.h"
#include "skyio/journal.h"
#include "skyio/log.h"
#include "batch_internal.h"

#define TICK_MS 1000
#define KINDS_MAX 16
#define SLOWEST 5
#define TAIL_BYTES 65536

typedef struct kind_count {
    char name[96];
    uint64_t n;
} kind_count;

typedef struct slow_call {
    char id[SKY_BATCHLINE_CUSTOM_ID_MAX + 1];
    uint64_t ms;
} slow_call;

struct sky__batch_timeline {
    sky_batch *b; /* NULL once the engine let go */
    sky_journal *journal;
    uv_timer_t timer;
    int closing, parts_open;
    double t_offset; /* seconds of the runs before this one */
    int run;         /* this run's number, from 1 */
    uint64_t last_ms, lines;
    sky_batch_progress last; /* the counters at the last line */
    /* the second being counted */
    sky_histogram latency;
    kind_count kinds[KINDS_MAX];
    int nkinds;
    slow_call slow[SLOWEST];
    int nslow;
};

/* ---- where the last run ended ---- */

/* The last complete line of @p path's last TAIL_BYTES, parsed; NULL when none. */
static json_t *last_line(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(TAIL_BYTES + 1);
    size_t n = 0;
    if (f && buf) {
        long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
        long from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
        n = size > 0 && fseek(f, from, SEEK_SET) == 0 ? fread(buf, 1, TAIL_BYTES, f) : 0;
    }
    if (f)
        fclose(f);
    while (n > 0 && buf[n - 1] == '\n')
        n--;
    json_t *j = NULL;
    if (n > 0) {
        buf[n] = '\0';
        char *start = strrchr(buf, '\n');
        j = json_loads(start ? start + 1 : buf, 0, NULL);
    }
    free(buf);
    return j;
}

static void resume_from(sky__batch_timeline *tl, const char *path)
{
    json_t *j = last_line(path);
    if (j == NULL)
        return;
    tl->t_offset = json_number_value(json_object_get(j, "t"));
    tl->run = (int)json_integer_value(json_object_get(j, "run"));
    json_decref(j);
}

/* ---- the second being counted ---- */

static kind_count *find_kind(sky__batch_timeline *tl, const char *name)
{
    for (int i = 0; i < tl->nkinds; i++)
        if (strcmp(tl->kinds[i].name, name) == 0)
            return &tl->kinds[i];
    return NULL;
}

/* Failures of one kind in this second; past KINDS_MAX - 1 kinds, new ones count as "other". */
static void count_kind(sky__batch_timeline *tl, const char *name)
{
    kind_count *k = find_kind(tl, name);
    if (k == NULL && tl->nkinds >= KINDS_MAX - 1)
        k = find_kind(tl, name = "other");
    if (k == NULL) {
        k = &tl->kinds[tl->nkinds++];
        snprintf(k->name, sizeof(k->name), "%s", name);
        k->n = 0;
    }
    k->n++;
}

/* The kind a failure is counted under: the final status, or what ended it without one. */
static void failure_kind(const sky_call_result *res, const sky_error *err, char *out, size_t cap)
{
    if (res->status && err->service_code[0])
        snprintf(out, cap, "HTTP %d %s", res->status, err->service_code);
    else if (res->status)
        snprintf(out, cap, "HTTP %d", res->status);
    else
        snprintf(out, cap, "%s", sky_err_name(err->code));
}

/* The second's SLOWEST slowest calls, slowest first. */
static void note_slow(sky__batch_timeline *tl, const char *id, uint64_t ms)
{
    if (tl->nslow == SLOWEST && tl->slow[SLOWEST - 1].ms >= ms)
        return;
    int at = tl->nslow < SLOWEST ? tl->nslow++ : SLOWEST - 1;
    while (at > 0 && tl->slow[at - 1].ms < ms) {
        tl->slow[at] = tl->slow[at - 1];
        at--;
    }
    snprintf(tl->slow[at].id, sizeof(tl->slow[at].id), "%s", id);
    tl->slow[at].ms = ms;
}

void sky__batch_timeline_result(sky__batch_timeline *tl, const char *custom_id,
                                const sky_call_result *res, const sky_error *err)
{
    char kind[96];
    if (tl == NULL || tl->closing)
        return;
    if (res->attempt_ms) {
        sky_histogram_record(&tl->latency, res->attempt_ms);
        note_slow(tl, custom_id, res->attempt_ms);
    }
    if (err && err->code != SKY_ECANCELED) {
        failure_kind(res, err, kind, sizeof(kind));
        count_kind(tl, kind);
    }
}

/* ---- one line a second ---- */

static double per_second(uint64_t now, uint64_t before, double secs)
{
    return secs > 0 && now >= before ? (double)(now - before) / secs : 0;
}

static json_t *kinds_json(const sky__batch_timeline *tl)
{
    json_t *o = json_object();
    for (int i = 0; o && i < tl->nkinds; i++)
        json_object_set_new(o, tl->kinds[i].name, json_integer((json_int_t)tl->kinds[i].n));
    return o;
}

static json_t *slow_json(const sky__batch_timeline *tl)
{
    json_t *a = json_array();
    for (int i = 0; a && i < tl->nslow; i++)
        json_array_append_new(a, json_pack("[s,I]", tl->slow[i].id, (json_int_t)tl->slow[i].ms));
    return a;
}

static void utc_now(char *out, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A latency percentile of the second's calls; null in a second without any. */
static json_t *percentile(const sky__batch_timeline *tl, double p)
{
    if (tl->latency.count == 0)
        return json_null();
    return json_integer((json_int_t)sky_histogram_percentile(&tl->latency, p));
}

static json_t *sample(const sky__batch_timeline *tl, const sky_batch_progress *p, double secs)
{
    const sky_batch_progress *l = &tl->last;
    char when[32];
    utc_now(when, sizeof(when));
    return json_pack(
        "{s:f,s:s,s:i,s:I,s:I,s:f,s:f,s:f,s:I,s:I,s:i,s:f,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:b}", "t",
        tl->t_offset + (double)p->elapsed_ms / 1000.0, "time", when, "run", tl->run, "ok",
        (json_int_t)p->ok, "failed", (json_int_t)p->failed, "rps",
        per_second(p->ok + p->failed, l->ok + l->failed, secs), "tokens_in_ps",
        per_second(p->tokens_in, l->tokens_in, secs), "tokens_out_ps",
        per_second(p->tokens_out, l->tokens_out, secs), "sending", (json_int_t)p->sending,
        "waiting", (json_int_t)p->waiting, "concurrency", p->concurrency, "rpm", p->rpm, "r429",
        (json_int_t)(p->responses_429 - l->responses_429), "retries",
        (json_int_t)(p->retries - l->retries), "failures", kinds_json(tl), "p50_ms",
        percentile(tl, 50), "p90_ms", percentile(tl, 90), "p99_ms", percentile(tl, 99), "slowest",
        slow_json(tl), "endpoint_down", p->endpoint_down);
}

static void write_line(sky__batch_timeline *tl, const sky_batch_progress *p)
{
    uint64_t now = sky_clock_now_ms(NULL);
    double secs = (double)(now - tl->last_ms) / 1000.0;
    char id[32];
    json_t *j = sample(tl, p, secs);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    /* a line a second is never behind the journal's caps; a line lost to memory is a gap */
    snprintf(id, sizeof(id), "t%d-%llu", tl->run, (unsigned long long)tl->lines++);
    if (text == NULL || sky_journal_append_id(tl->journal, id, text, strlen(text)) < 0)
        SKY_WARN("batch", "timeline: a second was not written");
    free(text);
    json_decref(j);
    tl->last = *p;
    tl->last_ms = now;
    sky_histogram_init(&tl->latency);
    tl->nkinds = 0;
    tl->nslow = 0;
}

static void on_tick(uv_timer_t *t)
{
    sky__batch_timeline *tl = t->data;
    sky_batch_progress p;
    if (tl->b == NULL)
        return;
    sky_batch_get_progress(tl->b, &p);
    write_line(tl, &p);
}

/* ---- life ---- */

static void part_closed(sky__batch_timeline *tl)
{
    if (--tl->parts_open == 0)
        free(tl);
}

static void on_timer_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

static void on_journal_closed(sky_journal *j, const sky_error *err, void *ud)
{
    (void)j;
    if (err && err->code)
        SKY_WARN("batch", "timeline: %s", err->message);
    part_closed(ud);
}

int sky__batch_timeline_open(sky_batch *b, const char *path, sky__batch_timeline **out,
                             sky_error *err)
{
    sky_journal_options jo;
    sky__batch_timeline *tl = calloc(1, sizeof(*tl));
    *out = NULL;
    if (tl == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory"), SKY_ENOMEM;
    sky_journal_options_init(&jo);
    jo.max_line_bytes = 1u << 20;
    jo.any_lines = 1;
    int rc = sky_journal_open(b->loop, path, &jo, &tl->journal, err);
    if (rc < 0) {
        free(tl);
        return rc;
    }
    resume_from(tl, path);
    tl->run++;
    tl->b = b;
    uv_timer_init(b->loop, &tl->timer);
    tl->timer.data = tl;
    uv_unref((uv_handle_t *)&tl->timer);
    tl->parts_open = 2;
    sky_histogram_init(&tl->latency);
    *out = tl;
    return 0;
}

void sky__batch_timeline_start(sky__batch_timeline *tl)
{
    if (tl == NULL)
        return;
    tl->last_ms = sky_clock_now_ms(NULL);
    uv_timer_start(&tl->timer, on_tick, TICK_MS, TICK_MS);
}

void sky__batch_timeline_close(sky__batch_timeline *tl)
{
    if (tl == NULL || tl->closing)
        return;
    tl->closing = 1;
    if (tl->b && tl->b->started) {
        sky_batch_progress p;
        sky_batch_get_progress(tl->b, &p);
        write_line(tl, &p); /* the run's last part-second */
    }
    tl->b = NULL;
    uv_close((uv_handle_t *)&tl->timer, on_timer_closed);
    if (sky_journal_close(tl->journal, on_journal_closed, tl) < 0)
        part_closed(tl);
}
