/*
 * What the run report shows, read from the batch's files: each record of the output (and
 * errors) file counted, its failure put under a code with the first few examples; each line
 * of the timeline into columns, one value a second, and its slowest calls kept.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report_internal.h"

/* ---- the output file ---- */

static sky__fail_group *group_of(sky__report_data *d, const char *code)
{
    for (size_t i = 0; i < d->ngroups; i++)
        if (strcmp(d->groups[i].code, code) == 0)
            return &d->groups[i];
    sky__fail_group *g = realloc(d->groups, (d->ngroups + 1) * sizeof(*g));
    if (g == NULL)
        return NULL;
    d->groups = g;
    g = &d->groups[d->ngroups];
    memset(g, 0, sizeof(*g));
    g->code = strdup(code);
    if (g->code == NULL)
        return NULL;
    d->ngroups++;
    return g;
}

static const char *str_at(const json_t *o, const char *a, const char *b)
{
    const json_t *v = json_object_get(o, a);
    v = b ? json_object_get(v, b) : v;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A failed record's code and message: the record's error, or the error reply's. */
static void failure_of(const json_t *rec, long status, char *code, size_t cap, const char **msg)
{
    const json_t *error = json_object_get(rec, "error");
    const json_t *body = json_object_get(json_object_get(rec, "response"), "body");
    const char *c = str_at(error, "code", NULL);
    *msg = str_at(error, "message", NULL);
    if (c == NULL)
        c = str_at(body, "error", "code");
    if (c == NULL)
        c = str_at(body, "error", "type");
    if (*msg == NULL)
        *msg = str_at(body, "error", "message");
    if (status && c)
        snprintf(code, cap, "HTTP %ld %s", status, c);
    else if (status)
        snprintf(code, cap, "HTTP %ld", status);
    else
        snprintf(code, cap, "%s", c ? c : "error");
}

static int add_failure(sky__report_data *d, size_t examples, const json_t *rec, long status)
{
    char code[160];
    const char *msg;
    failure_of(rec, status, code, sizeof(code), &msg);
    sky__fail_group *g = group_of(d, code);
    if (g == NULL)
        return SKY_ENOMEM;
    g->n++;
    if (g->nex < examples && g->nex < SKY__REPORT_EXAMPLES_MAX) {
        const char *id = str_at(rec, "custom_id", NULL);
        g->ex_id[g->nex] = strdup(id ? id : "");
        g->ex_msg[g->nex] = strdup(msg ? msg : "");
        g->nex++;
    }
    return 0;
}

static int count_record(sky__report_data *d, size_t examples, const json_t *rec)
{
    const json_t *resp = json_object_get(rec, "response");
    long status = (long)json_integer_value(json_object_get(resp, "status_code"));
    const json_t *usage = json_object_get(json_object_get(resp, "body"), "usage");
    d->records++;
    if (json_is_null(json_object_get(rec, "error")) && status >= 200 && status < 300) {
        d->ok++;
        d->tokens_in += (uint64_t)json_integer_value(json_object_get(usage, "prompt_tokens"));
        d->tokens_out += (uint64_t)json_integer_value(json_object_get(usage, "completion_tokens"));
        return 0;
    }
    d->failed++;
    return add_failure(d, examples, rec, status);
}

typedef int (*line_cb)(sky__report_data *d, const sky_report_options *o, const json_t *j);

/* Each line of @p path that is a JSON object to @p cb; the others counted in *not_json. */
static int each_line(const char *path, sky__report_data *d, const sky_report_options *o, line_cb cb,
                     uint64_t *not_json, sky_error *err)
{
    FILE *f = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    if (f == NULL)
        return sky_error_set(err, SKY_EIO, "%s: cannot read it", path);
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        json_t *j = json_loadb(line, (size_t)n, 0, NULL);
        if (json_is_object(j))
            rc = cb(d, o, j);
        else if (n > 1)
            (*not_json)++;
        json_decref(j);
    }
    if (rc == 0 && ferror(f))
        rc = sky_error_set(err, SKY_EIO, "%s: a read failed", path);
    else if (rc < 0)
        sky_error_set(err, rc, "%s: out of memory", path);
    free(line);
    fclose(f);
    return rc;
}

static int on_record(sky__report_data *d, const sky_report_options *o, const json_t *j)
{
    return count_record(d, o->examples, j);
}

/* ---- the timeline ---- */

static int grow(sky__report_data *d)
{
    size_t cap = d->cap ? d->cap * 2 : 256;
    for (int c = 0; c < SKY__COLS; c++) {
        double *p = realloc(d->col[c], cap * sizeof(double));
        if (p == NULL)
            return SKY_ENOMEM;
        d->col[c] = p;
    }
    d->cap = cap;
    return 0;
}

static double num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static double failures_of(json_t *kinds)
{
    const char *k;
    json_t *v;
    double sum = 0;
    json_object_foreach(kinds, k, v)
    {
        (void)k;
        sum += (double)json_integer_value(v);
    }
    return sum;
}

static int keep_slow(sky__report_data *d, const char *id, double ms, double t)
{
    size_t at = d->nslow < d->max_slow ? d->nslow++ : d->max_slow;
    if (at == d->max_slow) {
        if (d->max_slow == 0 || d->slow[at - 1].ms >= ms)
            return 0;
        free(d->slow[--at].id);
    }
    while (at > 0 && d->slow[at - 1].ms < ms) {
        d->slow[at] = d->slow[at - 1];
        at--;
    }
    d->slow[at].id = strdup(id);
    d->slow[at].ms = ms;
    d->slow[at].t = t;
    return d->slow[at].id ? 0 : SKY_ENOMEM;
}

static int on_second(sky__report_data *d, const sky_report_options *o, const json_t *j)
{
    (void)o;
    if (d->npoints == d->cap && grow(d) < 0)
        return SKY_ENOMEM;
    size_t i = d->npoints++;
    double rpm = num(j, "rpm");
    d->col[SKY__COL_T][i] = num(j, "t");
    d->col[SKY__COL_RPS][i] = num(j, "rps");
    d->col[SKY__COL_TOKENS][i] = num(j, "tokens_out_ps");
    d->col[SKY__COL_SENDING][i] = num(j, "sending");
    d->col[SKY__COL_WAITING][i] = num(j, "waiting");
    d->col[SKY__COL_CONC][i] = num(j, "concurrency") > 0 ? num(j, "concurrency") : NAN;
    d->col[SKY__COL_RATE][i] = rpm > 0 ? rpm / 60.0 : NAN;
    d->col[SKY__COL_R429][i] = num(j, "r429");
    d->col[SKY__COL_FAILS][i] = failures_of(json_object_get(j, "failures"));
    d->col[SKY__COL_P50][i] = num(j, "p50_ms");
    d->col[SKY__COL_P90][i] = num(j, "p90_ms");
    d->col[SKY__COL_P99][i] = num(j, "p99_ms");
    int run = (int)json_integer_value(json_object_get(j, "run"));
    d->runs = run > d->runs ? run : d->runs;
    size_t k;
    const json_t *s;
    json_array_foreach(json_object_get(j, "slowest"), k, s)
    {
        const char *id = json_string_value(json_array_get(s, 0));
        if (id && keep_slow(d, id, (double)json_integer_value(json_array_get(s, 1)),
                            d->col[SKY__COL_T][i]) < 0)
            return SKY_ENOMEM;
    }
    return 0;
}

/* ---- all of it ---- */

int sky__report_read(const sky_report_options *o, sky__report_data *d, sky_error *err)
{
    memset(d, 0, sizeof(*d));
    d->max_slow = o->slowest;
    if (d->max_slow && (d->slow = calloc(d->max_slow + 1, sizeof(*d->slow))) == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = each_line(o->output, d, o, on_record, &d->not_json, err);
    if (rc == 0 && o->errors)
        rc = each_line(o->errors, d, o, on_record, &d->not_json, err);
    if (rc == 0 && o->timeline) {
        rc = each_line(o->timeline, d, o, on_second, &d->timeline_not_json, err);
        d->has_timeline = rc == 0 && d->npoints > 0;
    }
    return rc;
}

void sky__report_data_free(sky__report_data *d)
{
    for (size_t i = 0; i < d->ngroups; i++) {
        free(d->groups[i].code);
        for (size_t k = 0; k < d->groups[i].nex; k++) {
            free(d->groups[i].ex_id[k]);
            free(d->groups[i].ex_msg[k]);
        }
    }
    free(d->groups);
    for (int c = 0; c < SKY__COLS; c++)
        free(d->col[c]);
    for (size_t i = 0; i < d->nslow; i++)
        free(d->slow[i].id);
    free(d->slow);
    memset(d, 0, sizeof(*d));
}
