/* The run report's parts: what the files say (report_data.c), charts as SVG (report_svg.c),
 * and the page (report_html.c). */
#ifndef SKY_JOBS_REPORT_INTERNAL_H
#define SKY_JOBS_REPORT_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "skyio/report.h"

/* The timeline's columns the charts use, one value a second. */
enum {
    SKY__COL_T,       /* seconds since the job's first run began */
    SKY__COL_RPS,     /* requests recorded a second */
    SKY__COL_TOKENS,  /* completion tokens a second */
    SKY__COL_SENDING, /* on the wire */
    SKY__COL_WAITING, /* started, waiting for a slot, the rate or a retry */
    SKY__COL_CONC,    /* the concurrency limit */
    SKY__COL_RATE,    /* the rate limiter's pace, requests a second (0: unpaced) */
    SKY__COL_R429,    /* 429 replies in the second */
    SKY__COL_FAILS,   /* requests recorded failed in the second */
    SKY__COL_P50,     /* latency percentiles of the second's calls, ms */
    SKY__COL_P90,
    SKY__COL_P99,
    SKY__COLS
};

#define SKY__REPORT_EXAMPLES_MAX 10

typedef struct sky__fail_group {
    char *code;
    uint64_t n;
    size_t nex;
    char *ex_id[SKY__REPORT_EXAMPLES_MAX];
    char *ex_msg[SKY__REPORT_EXAMPLES_MAX];
} sky__fail_group;

typedef struct sky__slow_call {
    char *id;
    double ms;
    double t;
} sky__slow_call;

typedef struct sky__report_data {
    /* the output (and errors) files */
    uint64_t records, ok, failed, not_json;
    uint64_t tokens_in, tokens_out;
    sky__fail_group *groups;
    size_t ngroups;
    /* the timeline */
    int has_timeline, runs;
    uint64_t timeline_not_json;
    double *col[SKY__COLS];
    size_t npoints, cap;
    sky__slow_call *slow;
    size_t nslow, max_slow;
} sky__report_data;

int sky__report_read(const sky_report_options *o, sky__report_data *d, sky_error *err);
void sky__report_data_free(sky__report_data *d);

/* One line of a chart: its name in the legend, its colour, its values (one per x). */
typedef struct sky__chart_series {
    const char *label;
    const char *color;
    const double *y;
    int dashed;
} sky__chart_series;

typedef struct sky__chart {
    const char *id; /* the SVG's element id, for tests and links */
    const char *title;
    const char *y_unit;
    const double *x; /* seconds */
    size_t n;
    const sky__chart_series *series;
    size_t nseries;
} sky__chart;

/* Write @p c as an inline <svg>: axes with ticks and units, one path per series, a legend. */
void sky__report_svg_chart(FILE *out, const sky__chart *c);
/* @p s with &, <, >, " and ' escaped for HTML text and attributes. */
void sky__report_html_text(FILE *out, const char *s);

#endif
