/* `skyio http --rate`: the open-loop mode's flags, run and summary (the schedule and the
 * latency accounting are the library's, src/http/openloop.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli.h"
#include "cmd_http.h"
#include "http/openloop.h"

int sky_cli_http_rate_opt(http_run *run, const char *a, const char *v)
{
    double *dst;
    if (!strcmp(a, "--latency-log")) {
        run->latency_log = v;
        return 0;
    }
    if (!strcmp(a, "--rate"))
        dst = &run->rate;
    else if (!strcmp(a, "--duration"))
        dst = &run->duration_s;
    else
        return 1;
    if (sky_cli_parse_double(v, dst) < 0 || !(*dst > 0) || *dst > 1e9) {
        fprintf(stderr, "skyio http: %s wants a number above 0, not '%s'\n", a, v);
        return -1;
    }
    return 0;
}

int sky_cli_http_rate_check(http_run *run)
{
    if (run->rate <= 0) {
        if (run->duration_s > 0 || run->latency_log) {
            fprintf(stderr, "skyio http: %s goes with --rate\n",
                    run->latency_log ? "--latency-log" : "--duration");
            return -1;
        }
        if (run->concurrency == 0)
            run->concurrency = 64;
        return 0;
    }
    if (run->concurrency == 0)
        run->concurrency = 1000;
    if (run->duration_s <= 0 && !run->total_set)
        run->duration_s = 10;
    return 0;
}

/* ---- --latency-log: the rows, kept in memory during the run (a write to a file
 * between requests would add its own delay to the figures), written at the end ---- */

typedef struct http_latency_row {
    uint64_t index, intended_ns, sent_ns, done_ns;
    int status, new_conn;
} http_latency_row;

typedef struct http_latency_rows {
    FILE *f;
    http_latency_row *rows;
    size_t n, cap;
    int oom; /* a row could not be kept: said at the end */
} http_latency_rows;

static int latency_log_open(http_run *run)
{
    if (run->latency_log == NULL)
        return 0;
    http_latency_rows *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->f = fopen(run->latency_log, "w")) == NULL) {
        fprintf(stderr, "skyio http: cannot write --latency-log '%s'\n", run->latency_log);
        free(l);
        return -1;
    }
    run->lrows = l;
    return 0;
}

static void latency_log_add(http_latency_rows *l, const sky_openloop_sample *s,
                            const sky_http_response *res)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        http_latency_row *rows = realloc(l->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            l->oom = 1;
            return;
        }
        l->rows = rows;
        l->cap = cap;
    }
    http_latency_row *r = &l->rows[l->n++];
    r->index = s->index;
    r->intended_ns = s->intended_ns;
    r->sent_ns = s->sent_ns;
    r->done_ns = s->done_ns;
    r->status = res ? res->status : 0;
    r->new_conn = res ? !res->reused_connection : 0;
}

static unsigned long long us_of(uint64_t from_ns, uint64_t to_ns)
{
    return to_ns > from_ns ? (to_ns - from_ns) / 1000u : 0;
}

/* Unix time minus monotonic time, in us, now: what turns a monotonic time into a Unix one. */
static long long unix_minus_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long unix_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    return unix_us - (long long)(sky_clock_real_ns() / 1000u);
}

/* Write the rows in completion order and close; 0, or -1 when the file is incomplete. */
static int latency_log_close(http_run *run)
{
    http_latency_rows *l = run->lrows;
    if (l == NULL)
        return 0;
    long long off = unix_minus_mono_us();
    fprintf(l->f, "index,due_mono_us,due_unix_us,send_lag_us,latency_us,service_us,status,"
                  "new_connection\n");
    for (size_t i = 0; i < l->n; i++) {
        const http_latency_row *r = &l->rows[i];
        unsigned long long due = r->intended_ns / 1000u;
        fprintf(l->f, "%llu,%llu,%lld,%llu,%llu,%llu,%d,%d\n", (unsigned long long)r->index, due,
                (long long)due + off, us_of(r->intended_ns, r->sent_ns),
                us_of(r->intended_ns, r->done_ns), us_of(r->sent_ns, r->done_ns), r->status,
                r->new_conn);
    }
    int bad = l->oom || ferror(l->f);
    if (fclose(l->f) != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "skyio http: --latency-log '%s' is incomplete\n", run->latency_log);
    free(l->rows);
    free(l);
    run->lrows = NULL;
    return bad ? -1 : 0;
}

static void on_rate_result(void *ud, const sky_openloop_sample *s, const sky_http_response *res,
                           const sky_error *err)
{
    http_run *run = ud;
    if (run->lrows)
        latency_log_add(run->lrows, s, res);
    sky_cli_http_count(run, res, err);
}

static void print_hist(const char *name, const sky_histogram *h, int json)
{
    unsigned long long p50 = sky_histogram_percentile(h, 50);
    unsigned long long p90 = sky_histogram_percentile(h, 90);
    unsigned long long p99 = sky_histogram_percentile(h, 99);
    unsigned long long p999 = sky_histogram_percentile(h, 99.9);
    unsigned long long max = h->count ? h->max : 0;
    if (json)
        printf("\"%s\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p99_9\":%llu,\"max\":%llu},", name,
               p50, p90, p99, p999, max);
    else
        printf("%s us: p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu\n", name, p50, p90, p99,
               p999, max);
}

static void print_rate_summary(const http_run *run, const sky_openloop_stats *st)
{
    double secs = (double)(st->last_done_ns - st->start_ns) / 1e9;
    double achieved = sky__openloop_achieved_rate(st);
    unsigned long long late = st->late, lag = st->max_lag_us, inflt = st->max_in_flight;
    if (run->json_out) {
        printf("{\"requests\":%lld,\"ok\":%lld,\"failed\":%lld,\"seconds\":%.3f,\"rate\":%.1f,"
               "\"achieved_rate\":%.1f,",
               run->done, run->ok, run->done - run->ok, secs, run->rate, achieved);
        print_hist("latency_us", &st->latency_us, 1);
        print_hist("service_us", &st->service_us, 1);
        printf("\"late\":%llu,\"max_lag_us\":%llu,\"max_in_flight\":%llu,\"peak_rss_kb\":%ld,",
               late, lag, inflt, sky_cli_peak_rss_kb());
        sky_cli_http_print_counts(run);
        printf("}\n");
        return;
    }
    printf("requests: %lld  ok: %lld  failed: %lld\n", run->done, run->ok, run->done - run->ok);
    printf("rate: %.1f requests/s asked, %.1f reached (%.3f s)\n", run->rate, achieved, secs);
    print_hist("latency (from each request's due time)", &st->latency_us, 0);
    print_hist("service (from its actual send)", &st->service_us, 0);
    printf("sent over 1 ms late: %llu  most behind: %llu us  in flight at most: %llu\n", late, lag,
           inflt);
    sky_cli_http_print_counts(run);
}

/* A request the client would not send ends the schedule, as it ends -n's. */
static void note_send_error(http_run *run, const sky_error *se)
{
    char line[512];
    fprintf(stderr, "skyio http: %s\n", sky_error_format(se, line, sizeof(line)));
    run->worst_exit = run->done ? SKY_EXIT_FAILED : SKY_EXIT_USAGE;
}

int sky_cli_http_run_rate(http_run *run)
{
    sky_openloop_options o;
    sky_openloop *ol = NULL;
    sky__openloop_options_init(&o);
    o.rate = run->rate;
    o.duration_ms = (uint64_t)(run->duration_s * 1000.0);
    o.max_requests = run->total_set ? (uint64_t)run->total : 0;
    o.max_in_flight = (uint64_t)run->concurrency;
    if (latency_log_open(run) < 0)
        return SKY_EXIT_USAGE;
#ifdef __linux__
    /* wake at the time asked, not up to 50 us after it (the kernel's default slack) */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
    int rc = sky__openloop_start(sky_loop_uv(run->loop), run->client, &o, &run->ropts,
                                 on_rate_result, run, &ol);
    sky_loop_run(run->loop);
    int log_rc = latency_log_close(run);
    if (rc < 0) {
        fprintf(stderr, "skyio http: cannot start the schedule: %s\n", sky_strerror(rc));
        sky__openloop_free(ol);
        return SKY_EXIT_START;
    }
    if (sky__openloop_send_error(ol))
        note_send_error(run, sky__openloop_send_error(ol));
    print_rate_summary(run, sky__openloop_stats(ol));
    sky_cli_http_print_first_error(run);
    sky__openloop_free(ol);
    int ex = sky_cli_http_many_exit(run);
    return log_rc < 0 && ex == 0 ? SKY_EXIT_FAILED : ex;
}
