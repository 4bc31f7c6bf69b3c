/* `skyio http`: what its files share (the run's state, the summaries, the --rate mode). */
#ifndef SKY_CLI_CMD_HTTP_H
#define SKY_CLI_CMD_HTTP_H

#include "skyio/skyio.h"

#define HTTP_N_ERR_CODES 32

typedef struct http_run {
    sky_loop *loop;
    sky_http_client *client;
    sky_http_client_options copts;
    sky_http_request_options ropts;
    sky_headers *headers;
    char *body;
    int include, sse, json_out;
    int sse_raw; /* --sse, but the reply is no event stream (an error): print it as it is */
    long long total, concurrency, started, done, ok;
    int total_set;                   /* -n was given */
    double rate;                     /* --rate: requests per second, 0 when not open-loop */
    double duration_s;               /* --duration */
    const char *latency_log;         /* --latency-log FILE: one line a request */
    struct http_latency_rows *lrows; /* its rows, kept in memory until the run is over */
    uint64_t start_ns;
    sky_histogram latency_us;
    uint64_t by_status[600];
    uint64_t by_error[HTTP_N_ERR_CODES];
    int worst_exit;
    long rss_start_kb;
    long long max_in_flight;
    sky_sse_parser parser;
    sky_error first_err;
} http_run;

/* Count one request's outcome in run's totals (status or error, ok, first error). */
void sky_cli_http_count(http_run *run, const sky_http_response *res, const sky_error *err);
/* The exit code of a run of many requests (see skyio http --help). */
int sky_cli_http_many_exit(const http_run *run);

/* Resident memory now and at peak, KiB (Linux); 0 when unknown. */
long sky_cli_rss_now_kb(void);
long sky_cli_peak_rss_kb(void);
/* The -n summary, after @p secs seconds, as text or JSON (--json). */
void sky_cli_http_print_summary(const http_run *run, double secs);
/* The statuses and errors of the summary: JSON members "status":{..},"errors":{..}, or
 * one indented text line each. */
void sky_cli_http_print_counts(const http_run *run);
/* "first error: ..." on stderr when any request failed without a response. */
void sky_cli_http_print_first_error(const http_run *run);

/* --rate and --duration: 0 taken, 1 not one of them, -1 a bad value (said on stderr). */
int sky_cli_http_rate_opt(http_run *run, const char *a, const char *v);
/* Check the --rate options against the others after parsing: 0 or -1 (said on stderr). */
int sky_cli_http_rate_check(http_run *run);
/* The open-loop run of --rate: send, wait for the last answer, print; its exit code. */
int sky_cli_http_run_rate(http_run *run);

#endif
