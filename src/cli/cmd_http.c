/* `skyio http`: one request (plain or streamed), or many at once with a summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "skyio/skyio.h"
#include "cli.h"
#include "cmd_http.h"

#define MAX_HEADERS 64

static const char usage[] =
    "usage: skyio http [options] URL\n"
    "\n"
    "Make HTTP requests with skyio's client (libcurl on libuv). One request prints the\n"
    "response body on stdout; with -n it runs many at once and prints a summary.\n"
    "\n"
    "options:\n"
    "  -X, --method M         request method (default GET, or POST with -d)\n"
    "  -d, --data DATA        request body; @FILE reads it from FILE. It goes with no\n"
    "                         Content-Type unless -H or --json-body gives one (curl's -d\n"
    "                         would label it form data)\n"
    "  -H, --header 'N: V'    add a request header (repeatable)\n"
    "      --json-body        shorthand for -H 'Content-Type: application/json'\n"
    "      --sse              read the reply as server-sent events: print each event's data\n"
    "                         on its own line, stop at [DONE]\n"
    "  -i, --include          print the status and response headers on stderr\n"
    "      --timeout-ms N     whole-request timeout (default none)\n"
    "      --cacert FILE      trust the CAs in FILE (default $SSL_CERT_FILE, else system)\n"
    "  -k, --insecure         do not verify the server certificate (for tests only)\n"
    "      --http1.1          do not offer HTTP/2\n"
    "      --h2c              speak HTTP/2 over cleartext (prior knowledge)\n"
    "      --max-connections N  at most N connections to the host (default: no limit;\n"
    "                         with HTTP/2, requests beyond them share connections)\n"
    "  -n, --requests N       send N requests (default 1)\n"
    "  -c, --concurrency C    keep C requests in flight with -n (default 64); with --rate,\n"
    "                         at most C in flight (default 1000): a request due beyond\n"
    "                         them waits, and its wait counts in its latency\n"
    "      --rate R           open loop: send R requests per second on a fixed schedule,\n"
    "                         each one's latency counted from when it was due to go (no\n"
    "                         coordinated omission, as wrk2 and vegeta); the summary\n"
    "                         gives p50/p90/p99/p99.9 in microseconds and the rate reached\n"
    "      --duration S       with --rate: send for S seconds (default 10, or until -n)\n"
    "      --latency-log FILE\n"
    "                         with --rate: write one CSV line a request to FILE when the\n"
    "                         run is over: its index in the schedule, when it was due\n"
    "                         (monotonic and Unix-time us, to line up with traces), how\n"
    "                         late it went, its latency and service time (us), its status\n"
    "                         (0: no response) and whether it opened a new connection\n"
    "      --json             print the -n summary as JSON\n"
    "\n"
    "exit: 0 all answered 2xx; 1 some failed or got an error status; 2 usage or a URL\n"
    "      that cannot be used; 3 could not connect (refused, DNS, TLS). With -n, 2 or 3\n"
    "      only when every request failed that way.\n";

/* ---- argument parsing ---- */

static int need(int i, int argc, const char *a)
{
    if (i + 1 >= argc) {
        fprintf(stderr, "skyio http: %s needs a value\n", a);
        return -1;
    }
    return 0;
}

static int add_header_arg(http_run *run, const char *hv)
{
    const char *colon = strchr(hv, ':');
    if (colon == NULL || colon == hv) {
        fprintf(stderr, "skyio http: header '%s' is not 'Name: value'\n", hv);
        return -1;
    }
    if (sky_headers_add(run->headers, sky_span_make(hv, (size_t)(colon - hv)),
                        sky_span_cstr(colon + 1)) < 0) {
        fprintf(stderr, "skyio http: header name in '%s' is not valid\n", hv);
        return -1;
    }
    return 0;
}

static int set_body(http_run *run, const char *data)
{
    size_t len = strlen(data);
    if (data[0] == '@') {
        run->body = sky_cli_read_file(data + 1, &len);
        if (run->body == NULL) {
            fprintf(stderr, "skyio http: cannot read %s\n", data + 1);
            return -1;
        }
    } else {
        run->body = strdup(data);
        if (run->body == NULL)
            return -1;
    }
    run->ropts.body = sky_span_make(run->body, len);
    if (run->ropts.method == NULL)
        run->ropts.method = "POST";
    return 0;
}

/* Options followed by a value; anything else starting with '-' is a flag or unknown. */
static int takes_value(const char *a)
{
    static const char names[] =
        " -X --method -d --data -H --header --timeout-ms --cacert "
        "-n --requests -c --concurrency --max-connections --rate --duration --latency-log ";
    char key[32];
    if (strlen(a) + 3 > sizeof(key))
        return 0;
    snprintf(key, sizeof(key), " %s ", a);
    return strstr(names, key) != NULL;
}

static int parse_value_opt(http_run *run, const char *a, const char *v)
{
    long long n;
    if (!strcmp(a, "-X") || !strcmp(a, "--method"))
        run->ropts.method = v;
    else if (!strcmp(a, "-d") || !strcmp(a, "--data"))
        return set_body(run, v);
    else if (!strcmp(a, "-H") || !strcmp(a, "--header"))
        return add_header_arg(run, v);
    else if (!strcmp(a, "--timeout-ms")) {
        if (sky_cli_number_opt("http", a, v, 0, &n) < 0)
            return -1;
        run->ropts.timeout_ms = (long)n;
    } else if (!strcmp(a, "--cacert"))
        run->copts.ca_file = v;
    else if (!strcmp(a, "-n") || !strcmp(a, "--requests")) {
        run->total_set = 1;
        return sky_cli_number_opt("http", a, v, 1, &run->total);
    } else if (!strcmp(a, "-c") || !strcmp(a, "--concurrency"))
        return sky_cli_number_opt("http", a, v, 1, &run->concurrency);
    else if (!strcmp(a, "--max-connections")) {
        if (sky_cli_number_opt("http", a, v, 1, &n) < 0)
            return -1;
        run->copts.max_host_connections = (long)n;
    } else
        return sky_cli_http_rate_opt(run, a, v);
    return 0;
}

static int parse_flag_opt(http_run *run, const char *a)
{
    if (!strcmp(a, "-i") || !strcmp(a, "--include"))
        run->include = 1;
    else if (!strcmp(a, "--sse"))
        run->sse = 1;
    else if (!strcmp(a, "--json"))
        run->json_out = 1;
    else if (!strcmp(a, "-k") || !strcmp(a, "--insecure"))
        run->copts.verify_peer = 0;
    else if (!strcmp(a, "--http1.1"))
        run->copts.http2 = 0;
    else if (!strcmp(a, "--h2c"))
        run->copts.http2_prior_knowledge = 1;
    else if (!strcmp(a, "--json-body"))
        return add_header_arg(run, "Content-Type: application/json");
    else
        return 1;
    return 0;
}

/* Returns 0, 1 for --help, -1 on a usage error. */
static int parse_args(http_run *run, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (a[0] != '-') {
            if (run->ropts.url) {
                fprintf(stderr, "skyio http: more than one URL ('%s')\n", a);
                return -1;
            }
            run->ropts.url = a;
            continue;
        }
        int rc = parse_flag_opt(run, a);
        if (rc == 1 && takes_value(a)) {
            /* an unknown option last on the line is unknown, not short of a value */
            if (need(i, argc, a) < 0)
                return -1;
            rc = parse_value_opt(run, a, argv[++i]);
        }
        if (rc == 1) {
            fprintf(stderr, "skyio http: unknown option '%s' (see skyio http --help)\n", a);
            return -1;
        }
        if (rc < 0)
            return -1;
    }
    if (run->ropts.url == NULL) {
        fprintf(stderr, "skyio http: a URL is required (see skyio http --help)\n");
        return -1;
    }
    return sky_cli_http_rate_check(run);
}

/* ---- one request ---- */

static int on_event(void *ud, const sky_sse_event *ev)
{
    (void)ud;
    if (ev->is_done)
        return 1;
    fwrite(ev->data.ptr, 1, ev->data.len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

/* Is the reply a text/event-stream (any parameters after it)? */
static int is_event_stream(const sky_headers *h)
{
    const char *type = h ? sky_headers_get(h, "Content-Type") : NULL;
    return type && strncasecmp(type, "text/event-stream", 17) == 0;
}

static void on_single_headers(sky_http_request *req, int status, const sky_headers *h, void *ud)
{
    http_run *run = ud;
    (void)req;
    /* An error reply to a streaming request is JSON: parsed as events it would vanish. */
    run->sse_raw = run->sse && !is_event_stream(h);
    if (!run->include)
        return;
    fprintf(stderr, "HTTP %d\n", status);
    for (size_t i = 0; i < sky_headers_count(h); i++) {
        const char *n, *v;
        (void)sky_headers_at(h, i, &n, &v);
        fprintf(stderr, "%s: %s\n", n, v);
    }
    fputc('\n', stderr);
}

static int on_single_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    http_run *run = ud;
    (void)req;
    if (!run->sse || run->sse_raw) {
        fwrite(data, 1, len, stdout);
        return 0;
    }
    int rc = sky_sse_parser_feed(&run->parser, data, len);
    /* [DONE] seen: the reply is complete; stop reading. */
    return rc == SKY_ECANCELED ? 0 : rc;
}

/* Could not connect: exit 3, as the usage says; a URL curl cannot use: a usage error. */
static int exit_for_code(int code)
{
    if (code == SKY_ECONNECT || code == SKY_ERESOLVE || code == SKY_ETLS)
        return SKY_EXIT_START;
    if (code == SKY_EINVAL)
        return SKY_EXIT_USAGE;
    return SKY_EXIT_FAILED;
}

static int exit_for_error(const sky_error *err)
{
    return exit_for_code(err->code);
}

static int err_index(int code)
{
    int idx = code - SKY__ERR_FIRST;
    return idx > 0 && idx < HTTP_N_ERR_CODES ? idx : 0;
}

static void on_single_done(sky_http_request *req, const sky_http_response *res,
                           const sky_error *err, void *ud)
{
    http_run *run = ud;
    char line[512];
    (void)req;
    fflush(stdout);
    if (err) {
        fprintf(stderr, "skyio http: %s\n", sky_error_format(err, line, sizeof(line)));
        run->worst_exit = exit_for_error(err);
        return;
    }
    run->worst_exit = res->status >= 200 && res->status < 300 ? SKY_EXIT_OK : SKY_EXIT_FAILED;
    if (run->worst_exit)
        fprintf(stderr, "skyio http: HTTP %d\n", res->status);
}

/* ---- many requests ---- */

static void start_more(http_run *run);

static void on_many_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                         void *ud)
{
    http_run *run = ud;
    (void)req;
    sky_histogram_record(&run->latency_us, res->total_us);
    sky_cli_http_count(run, res, err);
    start_more(run);
}

void sky_cli_http_count(http_run *run, const sky_http_response *res, const sky_error *err)
{
    run->done++;
    if (err) {
        run->by_error[err_index(err->code)]++;
        if (run->first_err.code == 0)
            run->first_err = *err;
    } else {
        run->by_status[res->status > 0 && res->status < 600 ? res->status : 0]++;
        if (res->status >= 200 && res->status < 300)
            run->ok++;
    }
}

static void start_more(http_run *run)
{
    sky_error err;
    while (run->started < run->total &&
           (long long)sky_http_client_active(run->client) < run->concurrency) {
        sky_error_clear(&err);
        if (sky_http_request_send(run->client, &run->ropts, NULL, &err) < 0) {
            fprintf(stderr, "skyio http: %s\n", err.message);
            run->total = run->started;
            run->worst_exit = run->started ? SKY_EXIT_FAILED : SKY_EXIT_USAGE;
            break;
        }
        run->started++;
    }
    long long active = (long long)sky_http_client_active(run->client);
    if (active > run->max_in_flight)
        run->max_in_flight = active;
}

/* 0 when every request was answered 2xx. When none got an answer and all failed the
 * same way, that way's exit, as for one request (3: could not connect; 2: bad URL). */
int sky_cli_http_many_exit(const http_run *run)
{
    static const int codes[] = {SKY_ECONNECT, SKY_ERESOLVE, SKY_ETLS, SKY_EINVAL};
    if (run->worst_exit)
        return run->worst_exit;
    if (run->ok == run->done)
        return SKY_EXIT_OK;
    long long no_conn = 0, bad_url = 0;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        uint64_t n = run->by_error[err_index(codes[i])];
        if (exit_for_code(codes[i]) == SKY_EXIT_START)
            no_conn += (long long)n;
        else
            bad_url += (long long)n;
    }
    if (no_conn == run->done)
        return SKY_EXIT_START;
    if (bad_url == run->done)
        return SKY_EXIT_USAGE;
    return SKY_EXIT_FAILED;
}

/* ---- main ---- */

static int run_requests(http_run *run)
{
    sky_error err;
    sky_error_clear(&err);
    if (sky_http_client_new(sky_loop_uv(run->loop), &run->copts, &run->client) < 0) {
        fprintf(stderr, "skyio http: cannot create the client\n");
        return SKY_EXIT_START;
    }
    run->ropts.headers = run->headers;
    run->ropts.user_data = run;
    if (run->total <= 1 && run->rate <= 0) {
        run->ropts.on_headers = on_single_headers;
        run->ropts.on_body = on_single_body;
        run->ropts.on_done = on_single_done;
        sky_sse_parser_init(&run->parser, 0, on_event, run);
        if (sky_http_request_send(run->client, &run->ropts, NULL, &err) < 0) {
            fprintf(stderr, "skyio http: %s\n", err.message);
            run->worst_exit = SKY_EXIT_USAGE;
        }
        sky_loop_run(run->loop);
        sky_sse_parser_free(&run->parser);
        return run->worst_exit;
    }
    if (run->rate > 0)
        return sky_cli_http_run_rate(run);
    run->ropts.on_done = on_many_done;
    sky_histogram_init(&run->latency_us);
    run->rss_start_kb = sky_cli_rss_now_kb();
    run->start_ns = sky_clock_real_ns();
    start_more(run);
    sky_loop_run(run->loop);
    sky_cli_http_print_summary(run, (double)(sky_clock_real_ns() - run->start_ns) / 1e9);
    sky_cli_http_print_first_error(run);
    return sky_cli_http_many_exit(run);
}

int sky_cli_http(int argc, char **argv)
{
    http_run *run = calloc(1, sizeof(*run));
    if (run == NULL)
        return SKY_EXIT_START;
    sky_http_client_options_init(&run->copts);
    sky_http_request_options_init(&run->ropts);
    run->concurrency = 0; /* unset: 64, or 1000 with --rate (sky_cli_http_rate_check) */
    run->total = 1;
    run->headers = sky_headers_new();
    int rc = run->headers ? parse_args(run, argc, argv) : -1;
    int exit_code = rc == 1 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    if (rc == 1)
        fputs(usage, stdout);
    if (rc == 0) {
        run->copts.shards = sky_cli_shards_for(run->concurrency);
        run->loop = sky_loop_new();
        exit_code = run->loop ? run_requests(run) : SKY_EXIT_START;
        sky_http_client_free(run->client);
        if (run->loop) {
            sky_loop_run(run->loop); /* let the client's handles close */
            sky_loop_free(run->loop);
        }
    }
    sky_headers_free(run->headers);
    free(run->body);
    free(run);
    return exit_code;
}
