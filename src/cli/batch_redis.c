/*
 * `skyio batch INPUT -o OUTPUT --redis URL --job NAME` and `skyio worker --redis URL --job
 * NAME`: the flags, printing and signals of a batch spread over machines through Redis
 * (skyio/batch_redis.h). A worker runs the batch engine on the job's stream; the batch
 * command also loads INPUT into the job and collects every result into OUTPUT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "skyio/batch_redis.h"
#include "skyio/skyio.h"
#include "cli.h"

/* Entries a worker reads at a time, and holds beyond its requests in flight. */
#define READ_AHEAD 64

typedef struct cli_dist {
    sky_batch_options o;
    const char *cmd; /* "batch" or "worker" */
    int loader;      /* batch: load INPUT, collect into OUTPUT */
    const char *input, *output, *errors, *url_text, *job_name, *base_url, *cacert, *journal;
    int prefer_azure, json_out, retry_failed;
    int text; /* batch: INPUT's lines are prompts; the job holds the requests made of them */
    long long rpm, tpm, concurrency, max_concurrency, max_retries, timeout_ms, claim_idle;
    sky_redis_url url;
    sky_loop *loop;
    sky_http_client *client;
    sky_credential *cred;
    sky_ai_endpoint ep;
    sky_redis_job *job;
    sky_batch_source *lines; /* INPUT */
    sky_batch_store *local;  /* OUTPUT's journals */
    sky_batch *batch;
    sky_batch_summary summary;
    int opened, batch_done, load_done, collect_done, local_closed, stopping, signals, tty;
    int failed_hard; /* a fault, a lost job: exit 3 */
    int tearing_down;
    sky_error open_err;
} cli_dist;

/* ---- flags ---- */

static int value_opt(cli_dist *c, const char *a, const char *v)
{
    static const struct {
        const char *name;
        long long lo;
        size_t off;
    } nums[] = {
        {"--rpm", 1, offsetof(cli_dist, rpm)},
        {"--tpm", 1, offsetof(cli_dist, tpm)},
        {"--concurrency", 1, offsetof(cli_dist, concurrency)},
        {"--max-concurrency", 1, offsetof(cli_dist, max_concurrency)},
        {"--max-retries", 0, offsetof(cli_dist, max_retries)},
        {"--timeout-ms", 1, offsetof(cli_dist, timeout_ms)},
        {"--claim-idle", 1, offsetof(cli_dist, claim_idle)},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (!strcmp(a, nums[i].name))
            return sky_cli_number_opt(c->cmd, a, v, nums[i].lo,
                                      (long long *)(void *)((char *)c + nums[i].off));
    if (!strcmp(a, "--redis"))
        c->url_text = v;
    else if (!strcmp(a, "--job"))
        c->job_name = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
        c->output = v;
    else if (!strcmp(a, "--errors"))
        c->errors = v;
    else if (!strcmp(a, "--base-url"))
        c->base_url = v;
    else if (!strcmp(a, "--cacert"))
        c->cacert = v;
    else if (!strcmp(a, "--journal"))
        c->journal = v;
    else
        return c->loader ? sky_cli_redis_text_opt(&c->o, a, v) : 1;
    return 0;
}

static int flag_opt(cli_dist *c, const char *a)
{
    if (!strcmp(a, "--no-rate-limit"))
        c->o.pipeline.use_rate_limit = 0;
    else if (!strcmp(a, "--azure"))
        c->prefer_azure = 1;
    else if (!strcmp(a, "--json"))
        c->json_out = 1;
    else if (!strcmp(a, "--retry-failed"))
        c->retry_failed = 1;
    else if (!strcmp(a, "--text") && c->loader)
        c->text = 1;
    else
        return 1;
    return 0;
}

static int one_arg(cli_dist *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (a[0] != '-' || a[1] == '\0') {
        if (!c->loader || c->input)
            return fprintf(stderr, "skyio %s: unexpected argument '%s'\n", c->cmd, a), -1;
        c->input = a;
        return 0;
    }
    int rc = flag_opt(c, a);
    if (rc != 1)
        return rc;
    if (*i + 1 >= argc)
        return fprintf(stderr, "skyio %s: %s needs a value\n", c->cmd, a), -1;
    rc = value_opt(c, a, argv[++*i]);
    if (rc == 1)
        fprintf(stderr, "skyio %s: unknown option '%s' with --redis (see skyio %s --help)\n",
                c->cmd, a, c->cmd);
    return rc;
}

static int parse_args(cli_dist *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (one_arg(c, argc, argv, &i) != 0)
            return -1;
    if (c->url_text == NULL || c->job_name == NULL)
        return fprintf(stderr, "skyio %s: --redis URL and --job NAME are required\n", c->cmd), -1;
    if (c->loader && c->input == NULL)
        return fprintf(stderr, "skyio batch: INPUT is required\n"), -1;
    if (c->loader && strcmp(c->input, "-") == 0)
        return fprintf(stderr, "skyio batch: --redis loads a file, not standard input\n"), -1;
    if (c->text && c->o.line.model == NULL)
        return fprintf(stderr, "skyio batch: --text needs --model\n"), -1;
    return 0;
}

/* A bad URL cannot start anything: exit 3, with the cause (never the password). */
static int parse_url(cli_dist *c)
{
    sky_error err;
    sky_error_clear(&err);
    if (sky_redis_url_parse(c->url_text, &c->url, &err) == 0)
        return 0;
    fprintf(stderr, "skyio %s: %s\n", c->cmd, err.message);
    return SKY_EXIT_START;
}

/* ---- what the engine and the job report ---- */

static void maybe_stop_loop(cli_dist *c)
{
    if (c->tearing_down)
        return; /* the loop runs on until everything has closed */
    int loader_done = !c->loader || c->stopping || (c->load_done && c->collect_done);
    if (c->batch_done && loader_done)
        sky_loop_stop(c->loop);
}

static void print_progress(const cli_dist *c, const sky_batch_progress *p, int final)
{
    sky_cli_redis_progress(c->job, p, c->tty, final);
}

static void on_event(sky_batch *b, const sky_batch_event *ev, void *ud)
{
    cli_dist *c = ud;
    (void)b;
    if (ev->kind == SKY_BATCH_EVENT_PROGRESS) {
        print_progress(c, ev->progress, 0);
    } else if (ev->kind == SKY_BATCH_EVENT_REFUSED) {
        fprintf(stderr, "\nskyio %s: the provider %s (%s); stopping: %s and run again\n", c->cmd,
                ev->said, ev->error->message, ev->advice);
    } else if (ev->kind == SKY_BATCH_EVENT_UNREACHABLE) {
        fprintf(stderr, "\nskyio %s: cannot reach the endpoint (%s); stopping\n", c->cmd,
                ev->error->message);
    } else if (ev->kind == SKY_BATCH_EVENT_FAULT) {
        fprintf(stderr, "skyio %s: %s\n", c->cmd, ev->error->message);
    } else if (ev->kind == SKY_BATCH_EVENT_FINISHED) {
        c->summary = *ev->summary;
        c->batch_done = 1;
        maybe_stop_loop(c);
    }
}

static void on_loaded(sky_redis_job *j, const sky_error *err, void *ud)
{
    cli_dist *c = ud;
    (void)j;
    c->load_done = 1;
    if (err && err->code != SKY_ECANCELED) {
        fprintf(stderr, "skyio batch: loading %s: %s\n", c->input, err->message);
        c->failed_hard = 1;
        c->stopping = 1;
        (void)sky_batch_stop(c->batch, SKY_BATCH_STOP_GRACEFUL, NULL);
    }
    maybe_stop_loop(c);
}

static void on_collected(sky_redis_job *j, const sky_error *err, void *ud)
{
    cli_dist *c = ud;
    (void)j;
    c->collect_done = 1;
    if (err && err->code != SKY_ECANCELED) {
        fprintf(stderr, "skyio batch: collecting results: %s\n", err->message);
        c->failed_hard = 1;
        c->stopping = 1;
        (void)sky_batch_stop(c->batch, SKY_BATCH_STOP_GRACEFUL, NULL);
    }
    maybe_stop_loop(c);
}

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    cli_dist *c = ud;
    (void)loop;
    if (c->signals++ > 0) {
        fprintf(stderr, "\nskyio %s: second signal: stopping now; rerun to finish\n", c->cmd);
        _exit(SKY_EXIT_FAILED);
    }
    fprintf(stderr,
            "\nskyio %s: signal %d: finishing the requests on the wire (30 s) and handing "
            "their results back; the rest stays in the job\n",
            c->cmd, signum);
    c->stopping = 1;
    (void)sky_batch_stop(c->batch, SKY_BATCH_STOP_GRACEFUL, NULL);
}

/* ---- set-up ---- */

static void on_job_open(sky_redis_job *j, const sky_error *err, void *ud)
{
    cli_dist *c = ud;
    (void)j;
    if (err)
        c->open_err = *err;
    c->opened = 1;
}

static int open_job(cli_dist *c)
{
    sky_redis_job_options jo;
    sky_error err;
    sky_error_clear(&err);
    sky_redis_job_options_init(&jo);
    jo.url = &c->url;
    jo.name = c->job_name;
    jo.create = c->loader;
    jo.wait = !c->loader;
    if (c->claim_idle)
        jo.claim_idle_ms = (uint64_t)c->claim_idle;
    jo.read_count = READ_AHEAD;
    int rc = sky_redis_job_open(sky_loop_uv(c->loop), &jo, on_job_open, c, &c->job, &err);
    sky_redis_url_wipe(&c->url);
    if (rc < 0)
        return fprintf(stderr, "skyio %s: %s\n", c->cmd, err.message), -1;
    if (!c->loader)
        fprintf(stderr, "skyio worker: job %s: waiting for it to be loaded, if it is not\n",
                c->job_name);
    while (!c->opened)
        uv_run(sky_loop_uv(c->loop), UV_RUN_ONCE);
    if (c->open_err.code == 0)
        return 0;
    fprintf(stderr, "skyio %s: %s\n", c->cmd, c->open_err.message);
    return -1;
}

static void say_resuming(const cli_dist *c)
{
    sky_journal_stats st;
    if (sky_batch_journal_store_scan(c->local, 0, &st) == 0 && st.done_ok + st.done_failed)
        fprintf(stderr, "skyio batch: %s: resuming, %llu results already there\n", c->output,
                (unsigned long long)(st.done_ok + st.done_failed));
}

/* batch: INPUT and OUTPUT, then the loader and the collector. */
static int open_files(cli_dist *c)
{
    sky_error err;
    sky_error_clear(&err);
    if (sky_batch_file_source_open(sky_loop_uv(c->loop), c->input, 0, &c->lines, &err) < 0)
        return fprintf(stderr, "skyio batch: %s\n", err.message), SKY_EXIT_USAGE;
    if (sky_batch_journal_store_open(sky_loop_uv(c->loop), c->output, c->errors, c->retry_failed,
                                     &c->local, &err) < 0)
        return fprintf(stderr, "skyio batch: %s\n", err.message), SKY_EXIT_START;
    say_resuming(c);
    return 0;
}

static int start_loader(cli_dist *c)
{
    if (sky_redis_job_load(c->job, c->lines, &c->o.line, c->text, c->local, on_loaded, c) < 0 ||
        sky_redis_job_collect(c->job, c->local, on_collected, c) < 0)
        return fprintf(stderr, "skyio batch: out of memory\n"), SKY_EXIT_START;
    return 0;
}

static int open_endpoint(cli_dist *c)
{
    sky_http_client_options co;
    sky_error err;
    sky_error_clear(&err);
    int rc = c->base_url ? sky_ai_endpoint_set(&c->ep, SKY_AI_OPENAI, c->base_url,
                                               getenv("OPENAI_API_KEY"), NULL)
                         : sky_ai_endpoint_from_env_entra(&c->ep, c->prefer_azure, &err);
    if (rc == 0 && c->base_url)
        rc = sky_ai_endpoint_read_org_env(&c->ep);
    if (rc < 0)
        return fprintf(stderr, "skyio %s: %s\n", c->cmd, err.code ? err.message : sky_strerror(rc)),
               -1;
    sky_http_client_options_init(&co);
    co.ca_file = c->cacert;
    co.shards = sky_cli_shards_for(c->concurrency);
    if (sky_http_client_new(sky_loop_uv(c->loop), &co, &c->client) < 0)
        return fprintf(stderr, "skyio %s: cannot start the client\n", c->cmd), -1;
    if (c->ep.use_entra_id &&
        sky_credential_default_new(sky_loop_uv(c->loop), c->client, NULL, &c->cred, &err) < 0)
        return fprintf(stderr, "skyio %s: %s\n", c->cmd, err.message), -1;
    return 0;
}

/* One rate limit for the endpoint, shared by every worker of the job (unless
 * --no-rate-limit) and asked before every attempt: the ceiling from --rpm, else learned
 * from the first 429 anywhere. This worker's own limiter keeps --rpm and Retry-After but
 * leaves the learning to the shared one. */
static int share_rate(cli_dist *c)
{
    if (!c->o.pipeline.use_rate_limit)
        return 0;
    if (sky_redis_job_rate_configure(c->job, c->ep.base_url, (double)c->rpm) < 0)
        return fprintf(stderr, "skyio %s: the endpoint's URL is too long\n", c->cmd),
               SKY_EXIT_START;
    c->o.pipeline.admitter = sky_redis_job_rate_admitter(c->job);
    if (c->o.pipeline.admitter == NULL)
        return fprintf(stderr, "skyio %s: out of memory\n", c->cmd), SKY_EXIT_START;
    c->o.pipeline.rate.learn = 0;
    return 0;
}

static int open_batch(cli_dist *c)
{
    sky_batch_options *o = &c->o;
    sky_batch_source *src;
    sky_batch_store *store;
    sky_error err;
    sky_error_clear(&err);
    int rc = share_rate(c);
    if (rc != 0)
        return rc;
    if (sky_redis_job_source_new(c->job, &src) < 0)
        return SKY_EXIT_START;
    if (sky_redis_job_store_open(c->job, c->journal, &store, &err) < 0) {
        fprintf(stderr, "skyio %s: the journal: %s\n", c->cmd, err.message);
        src->close(src);
        return SKY_EXIT_START;
    }
    o->pipeline.attempt_timeout_ms = (long)c->timeout_ms;
    o->pipeline.retry.max_retries = (int)c->max_retries;
    o->pipeline.rate.rpm = (double)c->rpm;
    o->pipeline.rate.tpm = (double)c->tpm;
    o->pipeline.concurrency.max = (int)c->max_concurrency;
    o->pipeline.credential = c->cred;
    o->concurrency = (int)c->concurrency;
    /* Take from the job only what this worker will soon send: the rest stays for others, and
     * at the job's end no worker sits on a queue while the others have nothing to do. */
    o->max_pending = c->concurrency ? (uint64_t)c->concurrency + READ_AHEAD : 256;
    o->endpoint = &c->ep;
    o->progress_interval_ms = c->tty ? 500 : 5000;
    o->on_event = on_event;
    o->user_data = c;
    if (sky_batch_new(sky_loop_uv(c->loop), c->client, o, src, store, &c->batch, &err) < 0)
        return fprintf(stderr, "skyio %s: %s\n", c->cmd, err.message), SKY_EXIT_START;
    return 0;
}

static int start(cli_dist *c)
{
    int rc = 0;
    c->loop = sky_loop_new();
    if (c->loop == NULL)
        return fprintf(stderr, "skyio %s: cannot start\n", c->cmd), SKY_EXIT_START;
    if (c->loader && (rc = open_files(c)) != 0)
        return rc;
    if (open_job(c) < 0 || open_endpoint(c) < 0)
        return SKY_EXIT_START;
    if ((rc = open_batch(c)) != 0)
        return rc;
    if (c->loader && (rc = start_loader(c)) != 0)
        return rc;
    (void)sky_loop_on_signal(c->loop, on_signal, c);
    return sky_batch_start(c->batch) < 0 ? SKY_EXIT_START : 0;
}

/* ---- the end ---- */

static int exit_code(const cli_dist *c)
{
    const sky_batch_summary *s = &c->summary;
    sky_redis_collect_stats cs;
    if (c->failed_hard || s->fatal || s->refusal || s->unreachable)
        return SKY_EXIT_START;
    if (!c->loader)
        return s->unfinished || s->progress.failed ? SKY_EXIT_FAILED : SKY_EXIT_OK;
    sky_redis_job_collect_stats(c->job, &cs);
    return !c->collect_done || c->stopping || cs.failed ? SKY_EXIT_FAILED : SKY_EXIT_OK;
}

static void print_end(const cli_dist *c, int code)
{
    sky_redis_collect_stats cs;
    json_t *js = sky_batch_summary_json(&c->summary);
    if (c->loader)
        sky_redis_job_collect_stats(c->job, &cs);
    if (c->json_out && js) {
        json_object_set_new(js, "job", json_string(c->job_name));
        if (c->loader)
            json_object_set_new(js, "collected",
                                json_pack("{s:I,s:I,s:I}", "written", (json_int_t)cs.written,
                                          "failed", (json_int_t)cs.failed, "skipped",
                                          (json_int_t)cs.skipped));
        char *text = sky_json_dump(js, NULL);
        if (text)
            puts(text);
        free(text);
    } else {
        fprintf(stderr, "this %s: ", c->cmd);
        print_progress(c, &c->summary.progress, 1);
        if (c->loader)
            fprintf(stderr,
                    "job %s: %llu results written to %s (%llu failed), %llu there before%s\n",
                    c->job_name, (unsigned long long)cs.written, c->output,
                    (unsigned long long)cs.failed, (unsigned long long)cs.skipped,
                    code == SKY_EXIT_FAILED && !c->collect_done ? "; not finished: run again" : "");
    }
    json_decref(js);
}

static void on_local_closed(sky_batch_store *st, const sky_error *err, uint64_t unwritten, void *ud)
{
    cli_dist *c = ud;
    (void)st;
    if (err)
        fprintf(stderr, "skyio batch: %s (%llu results not written)\n", err->message,
                (unsigned long long)unwritten);
    c->local_closed = 1;
}

static int run(cli_dist *c)
{
    sky_error lost;
    sky_error_clear(&lost);
    sky_loop_run(c->loop);
    if (sky_redis_job_lost(c->job, &lost))
        c->failed_hard = 1;
    int code = exit_code(c);
    print_end(c, code);
    return code;
}

static void teardown(cli_dist *c)
{
    c->tearing_down = 1;
    sky_batch_free(c->batch); /* its pipeline first: it borrows the client and credential */
    c->batch = NULL;
    sky_redis_job_close(c->job); /* the loader and collector stop; queued commands go */
    if (c->local)
        c->local->close(c->local, on_local_closed, c);
    if (c->lines)
        c->lines->close(c->lines);
    sky_credential_free(c->cred);
    sky_http_client_free(c->client);
    if (c->loop) {
        (void)sky_loop_on_signal(c->loop, NULL, NULL);
        sky_loop_run(c->loop);
        sky_loop_free(c->loop);
    }
    sky_ai_endpoint_free(&c->ep);
}

int sky_cli_redis_run(int argc, char **argv, int loader)
{
    cli_dist *c = calloc(1, sizeof(*c));
    char *out_default = NULL;
    if (c == NULL)
        return SKY_EXIT_START;
    sky_batch_options_init(&c->o);
    c->cmd = loader ? "batch" : "worker";
    c->loader = loader;
    c->max_retries = c->o.pipeline.retry.max_retries;
    c->max_concurrency = c->o.pipeline.concurrency.max;
    c->timeout_ms = c->o.pipeline.attempt_timeout_ms;
    c->tty = isatty(2);
    int code = parse_args(c, argc, argv) < 0 ? SKY_EXIT_USAGE : 0;
    if (code == 0)
        code = parse_url(c);
    sky_cli_redis_scrub_argv(argc, argv);
    if (code == 0 && loader && c->output == NULL)
        c->output = out_default = sky_batch_default_output(c->input);
    if (code == 0)
        code = start(c);
    if (code == 0)
        code = run(c);
    teardown(c);
    free(out_default);
    free(c);
    return code;
}
