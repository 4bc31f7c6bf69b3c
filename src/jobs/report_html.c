/*
 * The run report as one HTML file: no script, no network, styles inline; charts from
 * report_svg.c over the timeline's columns, tables from the output's records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report_internal.h"

static const char style[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:960px;color:#222}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:left;"
    "border-bottom:1px solid #eee;vertical-align:top}td.n{text-align:right;"
    "font-variant-numeric:tabular-nums}code{font-size:12px}figure{margin:12px 0}"
    "figcaption{font-weight:600;margin-bottom:2px}svg.chart{max-width:100%;height:auto}"
    ".grid{stroke:#eee}.axis{stroke:#888}.tick,.legend,.unit{font-size:11px;fill:#444}"
    ".note{color:#666}";

void sky_report_options_init(sky_report_options *o)
{
    memset(o, 0, sizeof(*o));
    o->examples = 3;
    o->slowest = 10;
}

char *sky_report_timeline_path(const char *output)
{
    static const char ext[] = ".timeline.jsonl";
    size_t n = strlen(output);
    char *p = malloc(n + sizeof(ext));
    if (p) {
        memcpy(p, output, n);
        memcpy(p + n, ext, sizeof(ext));
    }
    return p;
}

void sky__report_html_text(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

/* ---- the parts of the page ---- */

/* A row of the summary: @p decimals places. */
static void row(FILE *out, const char *what, int decimals, double v)
{
    fprintf(out, "<tr><th>%s</th><td class=\"n\">%.*f</td></tr>\n", what, decimals, v);
}

static double duration(const sky__report_data *d)
{
    return d->npoints ? d->col[SKY__COL_T][d->npoints - 1] : 0;
}

static void summary(FILE *out, const sky__report_data *d)
{
    double secs = duration(d);
    fputs("<h2>Summary</h2>\n<table id=\"summary\">\n", out);
    row(out, "requests recorded", 0, (double)d->records);
    row(out, "succeeded", 0, (double)d->ok);
    row(out, "failed", 0, (double)d->failed);
    row(out, "prompt tokens", 0, (double)d->tokens_in);
    row(out, "completion tokens", 0, (double)d->tokens_out);
    if (d->has_timeline) {
        row(out, "time running (s)", 1, secs);
        row(out, "runs (a stop and a rerun make two)", 0, (double)d->runs);
        row(out, "requests a second, mean", 1, secs > 0 ? (double)d->records / secs : 0);
    }
    if (d->not_json)
        row(out, "lines that are not records", 0, (double)d->not_json);
    fputs("</table>\n", out);
}

static void chart(FILE *out, const sky__report_data *d, const char *id, const char *title,
                  const char *unit, const sky__chart_series *s, size_t n)
{
    sky__chart c = {id, title, unit, d->col[SKY__COL_T], d->npoints, s, n};
    sky__report_svg_chart(out, &c);
}

static void charts(FILE *out, const sky__report_data *d)
{
    double *const *col = d->col;
    fputs("<h2>Over time</h2>\n", out);
    if (!d->has_timeline) {
        fputs("<p class=\"note\">No timeline: the run did not write one (it is kept beside the "
              "output as OUTPUT.timeline.jsonl).</p>\n",
              out);
        return;
    }
    sky__chart_series thr[] = {{"requests/s", "#1f77b4", col[SKY__COL_RPS], 0},
                               {"rate limit (req/s)", "#d62728", col[SKY__COL_RATE], 1}};
    chart(out, d, "chart-throughput", "Throughput", "requests a second", thr, 2);
    sky__chart_series tok[] = {{"completion tokens/s", "#9467bd", col[SKY__COL_TOKENS], 0}};
    chart(out, d, "chart-tokens", "Tokens", "tokens a second", tok, 1);
    sky__chart_series fly[] = {{"on the wire", "#2ca02c", col[SKY__COL_SENDING], 0},
                               {"waiting", "#ff7f0e", col[SKY__COL_WAITING], 0},
                               {"concurrency limit", "#d62728", col[SKY__COL_CONC], 1}};
    chart(out, d, "chart-inflight", "In flight against the limits", "requests", fly, 3);
    sky__chart_series bad[] = {{"429 replies", "#d62728", col[SKY__COL_R429], 0},
                               {"failed requests", "#7f7f7f", col[SKY__COL_FAILS], 0}};
    chart(out, d, "chart-failures", "429s and failures", "a second", bad, 2);
    sky__chart_series lat[] = {{"p50", "#1f77b4", col[SKY__COL_P50], 0},
                               {"p90", "#ff7f0e", col[SKY__COL_P90], 0},
                               {"p99", "#d62728", col[SKY__COL_P99], 0}};
    chart(out, d, "chart-latency", "Latency of the provider (each second's calls)", "ms", lat, 3);
}

static int by_count(const void *a, const void *b)
{
    const sky__fail_group *x = a, *y = b;
    return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->code, y->code);
}

static void failures(FILE *out, sky__report_data *d)
{
    fputs("<h2>Failures by code</h2>\n", out);
    if (d->ngroups == 0) {
        fputs("<p class=\"note\">None.</p>\n", out);
        return;
    }
    qsort(d->groups, d->ngroups, sizeof(*d->groups), by_count);
    fputs("<table id=\"failures\"><tr><th>code</th><th>requests</th><th>examples "
          "(custom_id: message)</th></tr>\n",
          out);
    for (size_t i = 0; i < d->ngroups; i++) {
        const sky__fail_group *g = &d->groups[i];
        fputs("<tr><td><code>", out);
        sky__report_html_text(out, g->code);
        fprintf(out, "</code></td><td class=\"n\">%llu</td><td>", (unsigned long long)g->n);
        for (size_t k = 0; k < g->nex; k++) {
            fputs(k ? "<br><code>" : "<code>", out);
            sky__report_html_text(out, g->ex_id[k]);
            fputs("</code>: ", out);
            sky__report_html_text(out, g->ex_msg[k]);
        }
        fputs("</td></tr>\n", out);
    }
    fputs("</table>\n", out);
}

static void slowest(FILE *out, const sky__report_data *d)
{
    fputs("<h2>Slowest requests</h2>\n", out);
    if (d->nslow == 0) {
        fputs("<p class=\"note\">No timeline, or no call answered.</p>\n", out);
        return;
    }
    fputs("<table id=\"slowest\"><tr><th>custom_id</th><th>latency (ms)</th><th>at (s)</th>"
          "</tr>\n",
          out);
    for (size_t i = 0; i < d->nslow; i++) {
        fputs("<tr><td><code>", out);
        sky__report_html_text(out, d->slow[i].id);
        fprintf(out, "</code></td><td class=\"n\">%.0f</td><td class=\"n\">%.0f</td></tr>\n",
                d->slow[i].ms, d->slow[i].t);
    }
    fputs("</table>\n", out);
}

static void page(FILE *out, const sky_report_options *o, sky__report_data *d)
{
    fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width\">\n<title>");
    sky__report_html_text(out, o->title);
    fprintf(out, "</title>\n<style>%s</style></head><body>\n<h1>", style);
    sky__report_html_text(out, o->title);
    fputs("</h1>\n<p class=\"note\">Made by <code>skyio report</code> from ", out);
    sky__report_html_text(out, o->output);
    if (d->has_timeline) {
        fputs(" and ", out);
        sky__report_html_text(out, o->timeline);
    }
    fputs(".</p>\n", out);
    summary(out, d);
    charts(out, d);
    failures(out, d);
    slowest(out, d);
    fputs("</body></html>\n", out);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int sky_report_write_html(const sky_report_options *opts, FILE *out, sky_error *err)
{
    sky_report_options o = *opts;
    sky__report_data d;
    char *timeline = NULL, *title = NULL;
    if (o.output == NULL || out == NULL)
        return sky_error_set(err, SKY_EINVAL, "a report needs the batch's output file");
    if (o.timeline == NULL && (timeline = sky_report_timeline_path(o.output)) != NULL &&
        exists(timeline))
        o.timeline = timeline;
    if (o.title == NULL && (title = malloc(strlen(o.output) + 16)) != NULL) {
        sprintf(title, "skyio batch: %s", o.output);
        o.title = title;
    }
    int rc = sky__report_read(&o, &d, err);
    if (rc == 0) {
        page(out, &o, &d);
        if (fflush(out) != 0 || ferror(out))
            rc = sky_error_set(err, SKY_EIO, "the report could not be written");
    }
    sky__report_data_free(&d);
    free(timeline);
    free(title);
    return rc;
}
