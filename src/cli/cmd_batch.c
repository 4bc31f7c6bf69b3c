/*
 * `skyio batch INPUT [-o OUTPUT]`: the flags, the printing and the signals of the batch
 * engine (skyio/batch.h), which sends every line of an OpenAI Batch JSONL file (or, with
 * --text, every prompt line) through the pipeline and appends each result to a durable,
 * resumable output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "skyio/skyio.h"
#include "batch_print.h"
#include "batch_routes.h"
#include "cli.h"

static const char usage[] =
    "usage: skyio batch INPUT [-o OUTPUT] [options]\n"
    "\n"
    "Send every request of INPUT (OpenAI Batch JSONL: custom_id, method, url, body) as\n"
    "fast as the provider allows, and append each result to OUTPUT in the Batch output\n"
    "format, in completion order. Run the same command again after any stop (even kill\n"
    "-9) and it skips what OUTPUT already holds, repairs a torn last line, and does the\n"
    "rest: each custom_id ends up in OUTPUT exactly once.\n"
    "\n"
    "environment (as OpenAI's and Azure's SDKs read it): OPENAI_API_KEY, OPENAI_BASE_URL,\n"
    "OPENAI_ORG_ID, OPENAI_PROJECT_ID; AZURE_OPENAI_ENDPOINT with AZURE_OPENAI_API_KEY or\n"
    "AZURE_OPENAI_AD_TOKEN, OPENAI_API_VERSION. Azure OpenAI with neither uses an Entra ID\n"
    "token from the credential chain (see `skyio token --help`), for the endpoint's cloud.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE      results (default INPUT with .out.jsonl)\n"
    "      --errors FILE      failed requests and bad input lines go here instead\n"
    "      --retry-failed     redo the requests OUTPUT records as failed\n"
    "      --redis URL --job NAME  one batch over many machines: load INPUT into a job in\n"
    "                         Redis, work on it, collect OUTPUT (see skyio worker --help)\n"
    "      --text             INPUT is one prompt per line, sent as chat requests:\n"
    "      --model M            with this model (required with --text)\n"
    "      --system TEXT        a system message first\n"
    "      --temperature T      sampling temperature\n"
    "      --max-tokens N       longest reply\n"
    "      --max-completion-tokens N  the same, as reasoning models (o-series, gpt-5) want it\n"
    "      --rpm N            the provider's requests per minute (default: unpaced until\n"
    "                         the provider announces or enforces a limit, then learned)\n"
    "      --tpm N            the provider's tokens per minute (default: learned)\n"
    "      --concurrency N    a fixed number in flight (default: adaptive: doubles each\n"
    "                         round trip until the server's latency shows a queue)\n"
    "      --max-concurrency N  the most the adaptive limit may reach (default 1024)\n"
    "      --limiter KIND     gradient (default), aimd, or fixed (with --concurrency)\n"
    "      --no-rate-limit    send as fast as concurrency allows; rely on retries alone\n"
    "      --max-retries N    per request (default 10)\n"
    "      --max-line-bytes N longest input line (default 16 MiB); longer ones are bad lines\n"
    "      --timeout-ms N     per attempt (default 600000, as OpenAI's SDKs: a long reply\n"
    "                         cut by a timeout is paid for and then asked again)\n"
    "      --base-url URL     an OpenAI-compatible server's API root, as OpenAI's SDKs take\n"
    "                         it (http://host:8000/v1; instead of $OPENAI_BASE_URL)\n"
    "      --azure            use $AZURE_OPENAI_ENDPOINT even when $OPENAI_API_KEY is set\n"
    "      --config FILE      spread the job over the deployments of skyio serve's config\n"
    "                         (its models and fallbacks): each line to its body's model (or\n"
    "                         the only one), to the deployment with the most headroom, and\n"
    "                         to another when one is throttled or down (--max-retries bounds\n"
    "                         the attempts over all); each learns its own limits\n"
    "      --deployments URL,URL,...  the same over OpenAI-compatible API roots serving\n"
    "                         the same model, with $OPENAI_API_KEY\n"
    "      --cacert FILE      trust the CAs in FILE\n"
    "      --json             the summary as JSON on stdout\n"
    "      --report FILE      at the end, the run's HTML report (see skyio report --help)\n"
    "      --no-timeline      keep no OUTPUT.timeline.jsonl (a line a second; the report's\n"
    "                         charts are drawn from it)\n"
    "\n";
/* (two strings: C compilers need not take one over 4,095 bytes) */
static const char usage_end[] =
    "SIGINT/SIGTERM: stop reading, let requests in flight finish (30 s), write the summary;\n"
    "a second signal stops at once. Requests not recorded are done by the next run.\n"
    "A refusal of the whole account stops the run the same way, and nothing refused is\n"
    "recorded: a 401 (the key or token), a 403 (no access: a missing role, network rules)\n"
    "or a 429 insufficient_quota (no credit left). Fix it and run again. So does an\n"
    "endpoint that was never reached (connection refused, unknown host, TLS failure). One\n"
    "that fails later (5xx, resets) makes requests wait; they go again once it answers.\n"
    "INPUT is a regular file, or - for standard input (with -o; a rerun must be given the\n"
    "same lines to resume). Devices, FIFOs and directories are refused.\n"
    "OUTPUT must be Batch output or new: a file with lines and no result (the input, say)\n"
    "is refused untouched. If results cannot be written (a full disk), nothing more is sent.\n"
    "exit: 0 all done; 1 some failed, or a stop left work for the next run; 2 usage or\n"
    "input error; 3 could not start (auth, network, config, an unusable OUTPUT), the\n"
    "provider refused the account, or results could not be written.\n";

typedef struct cli_batch {
    /* options: the engine's as the flags set them, and the command's own */
    sky_batch_options o;
    const char *input, *output, *errors, *base_url, *cacert, *report, *config, *deployments;
    char *timeline;
    int retry_failed, prefer_azure, json_out, no_timeline;
    long long rpm, tpm, concurrency, max_concurrency, max_retries, timeout_ms, max_line_bytes;
    /* what runs */
    sky_loop *loop;
    sky_http_client *client;
    sky_credential *cred; /* Azure OpenAI without a key: Entra ID tokens */
    sky_ai_endpoint ep;
    sky_cli_batch_routes routes; /* --config or --deployments */
    sky_batch_source *src;       /* until the batch takes it */
    sky_batch *batch;
    int tty, signals, exit_code;
} cli_batch;

/* ---- options ---- */

static int value_opt(cli_batch *c, const char *a, const char *v)
{
    double d;
    if (!strcmp(a, "-o") || !strcmp(a, "--output"))
        c->output = v;
    else if (!strcmp(a, "--errors"))
        c->errors = v;
    else if (!strcmp(a, "--report"))
        c->report = v;
    else if (!strcmp(a, "--model"))
        c->o.line.model = v;
    else if (!strcmp(a, "--system"))
        c->o.line.system = v;
    else if (!strcmp(a, "--temperature")) {
        if (sky_cli_parse_double(v, &d) < 0 || d < 0 || d > 2)
            return fprintf(stderr, "skyio batch: --temperature is a number from 0 to 2\n"), -1;
        c->o.line.temperature = d;
        c->o.line.has_temperature = 1;
    } else if (!strcmp(a, "--max-tokens") || !strcmp(a, "--max-completion-tokens")) {
        long long n;
        if (sky_cli_number_opt("batch", a, v, 1, &n) < 0)
            return -1;
        c->o.line.max_tokens = n;
        c->o.line.max_completion_tokens = !strcmp(a, "--max-completion-tokens");
    } else if (!strcmp(a, "--rpm"))
        return sky_cli_number_opt("batch", a, v, 1, &c->rpm);
    else if (!strcmp(a, "--tpm"))
        return sky_cli_number_opt("batch", a, v, 1, &c->tpm);
    else if (!strcmp(a, "--concurrency"))
        return sky_cli_number_opt("batch", a, v, 1, &c->concurrency);
    else if (!strcmp(a, "--max-concurrency"))
        return sky_cli_number_opt("batch", a, v, 1, &c->max_concurrency);
    else if (!strcmp(a, "--max-retries"))
        return sky_cli_number_opt("batch", a, v, 0, &c->max_retries);
    else if (!strcmp(a, "--timeout-ms"))
        return sky_cli_number_opt("batch", a, v, 1, &c->timeout_ms);
    else if (!strcmp(a, "--max-line-bytes"))
        return sky_cli_number_opt("batch", a, v, 1024, &c->max_line_bytes);
    else if (!strcmp(a, "--base-url"))
        c->base_url = v;
    else if (!strcmp(a, "--cacert"))
        c->cacert = v;
    else if (!strcmp(a, "--config"))
        c->config = v;
    else if (!strcmp(a, "--deployments"))
        c->deployments = v;
    else if (!strcmp(a, "--limiter")) {
        c->o.limiter = !strcmp(v, "aimd")    ? SKY_LIMITER_AIMD
                       : !strcmp(v, "fixed") ? SKY_LIMITER_FIXED
                                             : SKY_LIMITER_GRADIENT;
        if (c->o.limiter == SKY_LIMITER_GRADIENT && strcmp(v, "gradient"))
            return fprintf(stderr, "skyio batch: --limiter is gradient, aimd or fixed\n"), -1;
    } else
        return 1;
    return 0;
}

static int flag_opt(cli_batch *c, const char *a)
{
    if (!strcmp(a, "--no-rate-limit"))
        c->o.pipeline.use_rate_limit = 0;
    else if (!strcmp(a, "--text"))
        c->o.text = 1;
    else if (!strcmp(a, "--retry-failed"))
        c->retry_failed = 1;
    else if (!strcmp(a, "--azure"))
        c->prefer_azure = 1;
    else if (!strcmp(a, "--json"))
        c->json_out = 1;
    else if (!strcmp(a, "--no-timeline"))
        c->no_timeline = 1;
    else
        return 1;
    return 0;
}

/* 0, 1 for --help, -1 on a usage error. */
static int parse_args(cli_batch *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (a[0] != '-' || a[1] == '\0') {
            if (c->input)
                return fprintf(stderr, "skyio batch: more than one INPUT ('%s')\n", a), -1;
            c->input = a;
            continue;
        }
        int rc = flag_opt(c, a);
        if (rc == 1) {
            if (i + 1 >= argc)
                return fprintf(stderr, "skyio batch: %s needs a value\n", a), -1;
            rc = value_opt(c, a, argv[++i]);
            if (rc == 1)
                fprintf(stderr, "skyio batch: unknown option '%s' (see skyio batch --help)\n", a);
        }
        if (rc != 0)
            return -1;
    }
    if (c->input == NULL)
        return fprintf(stderr, "skyio batch: INPUT is required (see skyio batch --help)\n"), -1;
    if (strcmp(c->input, "-") == 0 && c->output == NULL)
        return fprintf(stderr, "skyio batch: reading standard input (-) needs -o OUTPUT\n"), -1;
    if (c->o.text && c->o.line.model == NULL)
        return fprintf(stderr, "skyio batch: --text needs --model\n"), -1;
    return 0;
}

/* ---- printing what the engine reports (batch_print.c) ---- */

static void on_event(sky_batch *b, const sky_batch_event *ev, void *ud)
{
    cli_batch *c = ud;
    sky_cli_batch_out o = {c->tty, c->json_out, c->output, c->errors};
    (void)b;
    if (ev->kind != SKY_BATCH_EVENT_FINISHED) {
        sky_cli_batch_print_event(&o, ev);
        return;
    }
    sky_cli_batch_print_summary(&o, ev->summary);
    c->exit_code = sky_cli_batch_exit_code(ev->summary);
    sky_loop_stop(c->loop);
}

/* ---- signals ---- */

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    cli_batch *c = ud;
    sky_batch_stop_info st;
    (void)loop;
    if (c->signals++ > 0) {
        fprintf(stderr, "\nskyio batch: second signal: stopping now; rerun to finish\n");
        _exit(SKY_EXIT_FAILED);
    }
    (void)sky_batch_stop(c->batch, SKY_BATCH_STOP_GRACEFUL, &st);
    fprintf(stderr,
            "\nskyio batch: signal %d: finishing %llu requests on the wire (30 s); %llu not yet "
            "sent are left for the next run\n",
            signum, (unsigned long long)st.on_wire, (unsigned long long)st.canceled);
}

/* ---- set-up ---- */

/* INPUT: a regular file or "-", and not one of the result files. */
static int open_input(cli_batch *c)
{
    sky_error err;
    sky_error_clear(&err);
    if (sky_batch_file_source_open(sky_loop_uv(c->loop), c->input, c->o.line.max_line_bytes,
                                   &c->src, &err) < 0) {
        if (err.code == SKY_EINVAL)
            fprintf(stderr, "skyio batch: %s: INPUT must be a file, or - to read standard input\n",
                    err.message);
        else
            fprintf(stderr, "skyio batch: %s\n", err.message);
        return SKY_EXIT_USAGE;
    }
    const char *same = sky_batch_file_source_reads(c->src, c->output)   ? c->output
                       : sky_batch_file_source_reads(c->src, c->errors) ? c->errors
                                                                        : NULL;
    if (same == NULL)
        return 0;
    fprintf(stderr, "skyio batch: %s is the input file; results need a file of their own\n", same);
    return SKY_EXIT_USAGE;
}

static int open_endpoint(cli_batch *c)
{
    sky_error err;
    sky_error_clear(&err);
    if (c->config || c->deployments)
        return sky_cli_batch_routes_load(&c->routes, c->config, c->deployments);
    int rc = sky_ai_endpoint_resolve(&c->ep, c->base_url, c->prefer_azure, &err);
    if (rc < 0)
        fprintf(stderr, "skyio batch: %s\n", err.message);
    return rc;
}

static int open_client(cli_batch *c)
{
    sky_http_client_options co;
    sky_error e;
    sky_error_clear(&e);
    sky_http_client_options_init(&co);
    co.ca_file = c->cacert;
    co.shards = sky_cli_shards_for(c->concurrency);
    if (sky_http_client_new(sky_loop_uv(c->loop), &co, &c->client) < 0)
        return -1;
    /* Azure OpenAI without a key: the credential chain, its token cached and refreshed */
    if ((c->ep.use_entra_id || c->routes.azure_without_key) &&
        sky_credential_default_new(sky_loop_uv(c->loop), c->client, NULL, &c->cred, &e) < 0) {
        fprintf(stderr, "skyio batch: %s\n", e.message);
        return -1;
    }
    return 0;
}

static int open_store(cli_batch *c, sky_batch_store **out)
{
    sky_journal_stats st;
    sky_error err;
    sky_error_clear(&err);
    if (sky_batch_journal_store_open(sky_loop_uv(c->loop), c->output, c->errors, c->retry_failed,
                                     out, &err) < 0)
        return fprintf(stderr, "skyio batch: %s\n", err.message), -1;
    for (int i = 0; i < 2; i++)
        if (sky_batch_journal_store_scan(*out, i, &st) == 0)
            sky_cli_batch_say_resuming(i ? c->errors : c->output, &st);
    return 0;
}

/* The engine, with the journals as its store: it takes the input and the store. */
static int open_batch(cli_batch *c)
{
    sky_batch_options *o = &c->o;
    sky_batch_store *store;
    sky_error err;
    sky_error_clear(&err);
    if (open_store(c, &store) < 0)
        return SKY_EXIT_START;
    o->pipeline.attempt_timeout_ms = (long)c->timeout_ms;
    o->pipeline.retry.max_retries = (int)c->max_retries;
    o->pipeline.rate.rpm = (double)c->rpm;
    o->pipeline.rate.tpm = (double)c->tpm;
    o->pipeline.concurrency.max = (int)c->max_concurrency;
    o->pipeline.credential = c->cred;
    o->concurrency = (int)c->concurrency;
    o->endpoint = c->routes.n_deps ? NULL : &c->ep;
    o->deployments = c->routes.deps;
    o->n_deployments = c->routes.n_deps;
    o->fallbacks = c->routes.fallbacks;
    o->n_fallbacks = c->routes.n_fallbacks;
    o->progress_interval_ms = c->tty ? 500 : 5000;
    if (!c->no_timeline)
        o->timeline_path = c->timeline = sky_report_timeline_path(c->output);
    o->on_event = on_event;
    o->user_data = c;
    int rc = sky_batch_new(sky_loop_uv(c->loop), c->client, o, c->src, store, &c->batch, &err);
    c->src = NULL;
    if (rc < 0)
        fprintf(stderr, "skyio batch: %s\n", err.message[0] ? err.message : "cannot start");
    return rc < 0 ? SKY_EXIT_START : 0;
}

static int start(cli_batch *c)
{
    c->loop = sky_loop_new();
    if (c->loop == NULL)
        return fprintf(stderr, "skyio batch: cannot start the client\n"), SKY_EXIT_START;
    int rc = open_input(c);
    if (rc != 0)
        return rc;
    if (open_endpoint(c) < 0)
        return SKY_EXIT_START;
    if (open_client(c) < 0)
        return fprintf(stderr, "skyio batch: cannot start the client\n"), SKY_EXIT_START;
    return open_batch(c); /* which checks the credential's first token: a FAULT, exit 3 */
}

static int run(cli_batch *c)
{
    c->exit_code = SKY_EXIT_START; /* until the engine says how it ended */
    (void)sky_loop_on_signal(c->loop, on_signal, c);
    if (sky_batch_start(c->batch) < 0)
        return SKY_EXIT_START;
    sky_loop_run(c->loop);
    return c->exit_code;
}

static void teardown(cli_batch *c)
{
    sky_batch_free(c->batch); /* its pipeline first: it borrows the client and credential */
    if (c->src)
        c->src->close(c->src);
    sky_credential_free(c->cred);
    sky_http_client_free(c->client);
    if (c->loop) {
        (void)sky_loop_on_signal(c->loop, NULL, NULL);
        sky_loop_run(c->loop);
        sky_loop_free(c->loop);
    }
    sky_ai_endpoint_free(&c->ep);
    sky_cli_batch_routes_free(&c->routes);
}

/* --report: after the journals are closed, so the report sees every record. */
static int write_report(const cli_batch *c)
{
    sky_report_options ro;
    sky_report_options_init(&ro);
    ro.output = c->output;
    ro.errors = c->errors;
    ro.timeline = c->timeline;
    return sky_cli_report_write("batch", &ro, c->report);
}

int sky_cli_batch(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--redis"))
            return sky_cli_redis_run(argc, argv, 1); /* batch_redis.c */
    cli_batch *c = calloc(1, sizeof(*c));
    char *out_default = NULL;
    if (c == NULL)
        return SKY_EXIT_START;
    sky_batch_options_init(&c->o);
    c->max_retries = c->o.pipeline.retry.max_retries;
    c->max_concurrency = c->o.pipeline.concurrency.max;
    c->timeout_ms = c->o.pipeline.attempt_timeout_ms;
    c->tty = isatty(2);
    int rc = parse_args(c, argc, argv);
    if (rc != 0) {
        if (rc == 1)
            fputs(usage, stdout), fputs(usage_end, stdout);
        free(c);
        return rc == 1 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    }
    if (c->max_line_bytes > 0)
        c->o.line.max_line_bytes = (size_t)c->max_line_bytes;
    if (c->output == NULL)
        c->output = out_default = sky_batch_default_output(c->input);
    int code = c->output ? start(c) : SKY_EXIT_START;
    if (code == 0)
        code = run(c);
    teardown(c);
    if (c->report && code != SKY_EXIT_START && code != SKY_EXIT_USAGE)
        code = write_report(c) == SKY_EXIT_OK ? code : SKY_EXIT_START;
    free(c->timeline);
    free(out_default);
    free(c);
    return code;
}
