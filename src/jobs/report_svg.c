/*
 * Line charts as inline SVG for the run report: a frame, "nice" ticks on both axes (1, 2 or
 * 5 times a power of ten), the time axis in seconds or minutes, one polyline a series, and
 * a legend. No script: the browser draws it as it is.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_internal.h"

#define W 920
#define H 280
#define LEFT 64
#define RIGHT 16
#define TOP 36
#define BOTTOM 44
#define TICKS 5

typedef struct frame {
    double x0, x1, y0, y1;
} frame;

/* A tick step near range / TICKS: 1, 2 or 5 times a power of ten. */
static double nice_step(double range)
{
    if (!(range > 0))
        return 1;
    double raw = range / TICKS;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static double px_x(const frame *f, double x)
{
    double span = f->x1 > f->x0 ? f->x1 - f->x0 : 1;
    return LEFT + (x - f->x0) / span * (W - LEFT - RIGHT);
}

static double px_y(const frame *f, double y)
{
    double span = f->y1 > f->y0 ? f->y1 - f->y0 : 1;
    return H - BOTTOM - (y - f->y0) / span * (H - TOP - BOTTOM);
}

static frame frame_of(const sky__chart *c)
{
    frame f = {0, 1, 0, 1};
    /* time runs from the job's start, 0, whatever the first second says */
    if (c->n > 0)
        f.x1 = c->x[c->n - 1] > 0 ? c->x[c->n - 1] : 1;
    double top = 0;
    for (size_t s = 0; s < c->nseries; s++)
        for (size_t i = 0; i < c->n; i++)
            if (isfinite(c->series[s].y[i]) && c->series[s].y[i] > top)
                top = c->series[s].y[i];
    double step = nice_step(top > 0 ? top : 1);
    f.y1 = ceil((top > 0 ? top : 1) / step) * step;
    return f;
}

/* A number for a tick label: 1.5k, 20, 0.25. */
static void fmt_num(char *out, size_t cap, double v)
{
    if (fabs(v) >= 10000)
        snprintf(out, cap, "%gk", v / 1000);
    else
        snprintf(out, cap, "%g", v);
}

static void fmt_time(char *out, size_t cap, double secs, int minutes)
{
    if (minutes)
        snprintf(out, cap, "%d:%02d", (int)(secs / 60), (int)fmod(secs, 60));
    else
        snprintf(out, cap, "%gs", secs);
}

static void y_axis(FILE *out, const frame *f, const char *unit)
{
    double step = nice_step(f->y1 - f->y0);
    char label[32];
    for (double v = f->y0; v <= f->y1 + step / 2; v += step) {
        double y = px_y(f, v);
        fmt_num(label, sizeof(label), v);
        fprintf(out,
                "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                LEFT, y, W - RIGHT, y, LEFT - 6, y + 4, label);
    }
    fprintf(out,
            "<text class=\"unit\" x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" "
            "text-anchor=\"middle\">",
            (H - BOTTOM + TOP) / 2, (H - BOTTOM + TOP) / 2);
    sky__report_html_text(out, unit);
    fputs("</text>\n", out);
}

static void x_axis(FILE *out, const frame *f)
{
    int minutes = f->x1 - f->x0 > 180;
    double step = minutes ? 60 * nice_step((f->x1 - f->x0) / 60) : nice_step(f->x1 - f->x0);
    double first = ceil(f->x0 / step) * step;
    char label[32];
    for (double v = first; v <= f->x1 + 1e-9; v += step) {
        double x = px_x(f, v);
        fmt_time(label, sizeof(label), v, minutes);
        fprintf(out,
                "<line class=\"axis\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                x, H - BOTTOM, x, H - BOTTOM + 5, x, H - BOTTOM + 18, label);
    }
    fprintf(out,
            "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
            "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
            "<text class=\"unit\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since the "
            "start (%s)</text>\n",
            LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, LEFT, TOP, LEFT, H - BOTTOM,
            (LEFT + W - RIGHT) / 2, H - 8, minutes ? "minutes:seconds" : "seconds");
}

static void series_path(FILE *out, const frame *f, const sky__chart *c, const sky__chart_series *s)
{
    int pen_down = 0;
    fprintf(out, "<path class=\"series\" data-label=\"");
    sky__report_html_text(out, s->label);
    fprintf(out, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s d=\"", s->color,
            s->dashed ? " stroke-dasharray=\"6 4\"" : "");
    for (size_t i = 0; i < c->n; i++) {
        if (!isfinite(s->y[i])) {
            pen_down = 0;
            continue;
        }
        fprintf(out, "%s%.1f %.1f", pen_down ? " L" : (i ? " M" : "M"), px_x(f, c->x[i]),
                px_y(f, s->y[i]));
        pen_down = 1;
    }
    fputs("\"/>\n", out);
}

static void legend(FILE *out, const sky__chart *c)
{
    int x = LEFT;
    for (size_t s = 0; s < c->nseries; s++) {
        fprintf(out,
                "<line x1=\"%d\" y1=\"24\" x2=\"%d\" y2=\"24\" stroke=\"%s\" stroke-width=\"3\"%s/>"
                "<text class=\"legend\" x=\"%d\" y=\"28\">",
                x, x + 18, c->series[s].color,
                c->series[s].dashed ? " stroke-dasharray=\"6 4\"" : "", x + 24);
        sky__report_html_text(out, c->series[s].label);
        fputs("</text>\n", out);
        x += 40 + 7 * (int)strlen(c->series[s].label);
    }
}

void sky__report_svg_chart(FILE *out, const sky__chart *c)
{
    frame f = frame_of(c);
    fputs("<figure><figcaption>", out);
    sky__report_html_text(out, c->title);
    fprintf(out,
            "</figcaption>\n<svg id=\"%s\" class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" "
            "height=\"%d\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">\n",
            c->id, W, H, W, H);
    y_axis(out, &f, c->y_unit);
    x_axis(out, &f);
    for (size_t s = 0; s < c->nseries; s++)
        series_path(out, &f, c, &c->series[s]);
    legend(out, c);
    fputs("</svg></figure>\n", out);
}
