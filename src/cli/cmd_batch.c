/*
 * `skyio batch INPUT [-o OUTPUT]`: every line of an OpenAI Batch JSONL file
 * (or, with --text, every prompt line) through the pipeline, each result
 * appended to a durable, resumable output. The input is read in chunks only
 * as fast as the pipeline drains it, so memory does not grow with the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "skyio/ai.h"
#include "skyio/batchline.h"
#include "skyio/idset.h"
#include "skyio/journal.h"
#include "skyio/skyio.h"
#include "ai/usage.h"
#include "cli.h"

#define CHUNK (64 * 1024)

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
    "      --cacert FILE      trust the CAs in FILE\n"
    "      --json             the summary as JSON on stdout\n"
    "\n"
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

typedef struct batch batch;

/* One request in flight. */
typedef struct item {
    batch *b;
    char *custom_id;
    uint64_t line;
    sky__ai_usage usage; /* what the last 2xx reply said it used */
    int too_deep;        /* ... and whether it nests too deep to be recorded */
} item;

/* A record the journal could not take yet (over its pending cap). */
typedef struct held {
    struct held *next;
    sky_journal *j;
    char *id;
    char *line;
    size_t len;
} held;

struct batch {
    /* options */
    const char *input, *output, *errors, *base_url, *cacert, *limiter;
    int text, retry_failed, prefer_azure, json_out, no_rate_limit;
    long long rpm, tpm, concurrency, max_concurrency, max_retries, timeout_ms, max_line_bytes;
    sky_batchline_options lo;
    /* machinery */
    sky_loop *loop;
    sky_http_client *client;
    sky_pipeline *pipe;
    sky_headers *json_headers; /* every request's body is JSON */
    sky_credential *cred;      /* Azure OpenAI without a key: Entra ID tokens */
    sky_ai_endpoint ep;
    sky_journal *out, *err;
    sky_idset *seen;
    held *held_head, *held_tail;
    /* reading */
    uv_file fd;
    int stdin_input; /* INPUT is "-": read as a stream */
    uv_fs_t read_req;
    char chunk[CHUNK];
    int64_t offset;
    int64_t input_size; /* for the total and ETA estimates */
    sky_buf partial;
    uint64_t line_no;
    int eof, reading, stopping, signals;
    /* requests that ended unrecorded (canceled, refused, unwritable), and whether lines read
     * were left unhandled when the run stopped: either leaves work for the next run */
    uint64_t left_undone;
    int lines_left;
    uint64_t unwritten_closed; /* results lost to write errors (closed journals, held ones) */
    int unrecordable;          /* the output failed: results can no longer be written */
    uint64_t window, in_flight;
    uv_timer_t progress, grace;
    /* counts */
    uint64_t skipped, input_errors, ok, failed, retries, tokens_in, tokens_out;
    uint64_t responses_429; /* attempts answered 429, whether a rate limiter runs or not */
    uint64_t start_ms;
    sky_histogram latency_ms;
    int closing, journals_open, fatal;
    int refused; /* REFUSED_*: the provider refuses the account, whatever the request */
    int endpoint_down, unreachable; /* the breaker is open; and nothing ever answered */
    uint64_t outages_told;          /* breaker openings already reported */
};

static void read_more(batch *b);
static void maybe_finish(batch *b);
static int never_reached(const batch *b, const sky_error *err);
static void stop_unreachable(batch *b, const sky_error *fault);

/* ---- options ---- */

static int value_opt(batch *b, const char *a, const char *v)
{
    double d;
    if (!strcmp(a, "-o") || !strcmp(a, "--output"))
        b->output = v;
    else if (!strcmp(a, "--errors"))
        b->errors = v;
    else if (!strcmp(a, "--model"))
        b->lo.model = v;
    else if (!strcmp(a, "--system"))
        b->lo.system = v;
    else if (!strcmp(a, "--temperature")) {
        if (sky_cli_parse_double(v, &d) < 0 || d < 0 || d > 2)
            return fprintf(stderr, "skyio batch: --temperature is a number from 0 to 2\n"), -1;
        b->lo.temperature = d;
        b->lo.has_temperature = 1;
    } else if (!strcmp(a, "--max-tokens") || !strcmp(a, "--max-completion-tokens")) {
        long long n;
        if (sky_cli_number_opt("batch", a, v, 1, &n) < 0)
            return -1;
        b->lo.max_tokens = n;
        b->lo.max_completion_tokens = !strcmp(a, "--max-completion-tokens");
    } else if (!strcmp(a, "--rpm"))
        return sky_cli_number_opt("batch", a, v, 1, &b->rpm);
    else if (!strcmp(a, "--tpm"))
        return sky_cli_number_opt("batch", a, v, 1, &b->tpm);
    else if (!strcmp(a, "--concurrency"))
        return sky_cli_number_opt("batch", a, v, 1, &b->concurrency);
    else if (!strcmp(a, "--max-concurrency"))
        return sky_cli_number_opt("batch", a, v, 1, &b->max_concurrency);
    else if (!strcmp(a, "--max-retries"))
        return sky_cli_number_opt("batch", a, v, 0, &b->max_retries);
    else if (!strcmp(a, "--timeout-ms"))
        return sky_cli_number_opt("batch", a, v, 1, &b->timeout_ms);
    else if (!strcmp(a, "--max-line-bytes"))
        return sky_cli_number_opt("batch", a, v, 1024, &b->max_line_bytes);
    else if (!strcmp(a, "--base-url"))
        b->base_url = v;
    else if (!strcmp(a, "--cacert"))
        b->cacert = v;
    else if (!strcmp(a, "--limiter")) {
        if (strcmp(v, "gradient") && strcmp(v, "aimd") && strcmp(v, "fixed"))
            return fprintf(stderr, "skyio batch: --limiter is gradient, aimd or fixed\n"), -1;
        b->limiter = v;
    } else
        return 1;
    return 0;
}

static int flag_opt(batch *b, const char *a)
{
    if (!strcmp(a, "--no-rate-limit")) {
        b->no_rate_limit = 1;
        return 0;
    }
    if (!strcmp(a, "--text"))
        b->text = 1;
    else if (!strcmp(a, "--retry-failed"))
        b->retry_failed = 1;
    else if (!strcmp(a, "--azure"))
        b->prefer_azure = 1;
    else if (!strcmp(a, "--json"))
        b->json_out = 1;
    else
        return 1;
    return 0;
}

/* 0, 1 for --help, -1 on a usage error. */
static int parse_args(batch *b, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (a[0] != '-' || a[1] == '\0') {
            if (b->input)
                return fprintf(stderr, "skyio batch: more than one INPUT ('%s')\n", a), -1;
            b->input = a;
            continue;
        }
        int rc = flag_opt(b, a);
        if (rc == 1) {
            if (i + 1 >= argc)
                return fprintf(stderr, "skyio batch: %s needs a value\n", a), -1;
            rc = value_opt(b, a, argv[++i]);
            if (rc == 1)
                fprintf(stderr, "skyio batch: unknown option '%s' (see skyio batch --help)\n", a);
        }
        if (rc != 0)
            return -1;
    }
    if (b->input == NULL)
        return fprintf(stderr, "skyio batch: INPUT is required (see skyio batch --help)\n"), -1;
    if (strcmp(b->input, "-") == 0 && b->output == NULL)
        return fprintf(stderr, "skyio batch: reading standard input (-) needs -o OUTPUT\n"), -1;
    if (b->text && b->lo.model == NULL)
        return fprintf(stderr, "skyio batch: --text needs --model\n"), -1;
    return 0;
}

/* ---- recording ---- */

static void held_free(held *h)
{
    free(h->line);
    free(h->id);
    free(h);
}

static void hold(batch *b, sky_journal *j, const char *id, const char *line, size_t len)
{
    held *h = calloc(1, sizeof(*h));
    if (h) {
        h->line = malloc(len);
        h->id = strdup(id);
    }
    if (h == NULL || h->line == NULL || h->id == NULL) {
        fprintf(stderr, "skyio batch: out of memory holding a result; stopping\n");
        b->fatal = 1;
        if (h)
            held_free(h);
        return;
    }
    memcpy(h->line, line, len);
    h->len = len;
    h->j = j;
    if (b->held_tail)
        b->held_tail->next = h;
    else
        b->held_head = h;
    b->held_tail = h;
}

/*
 * Results can no longer be written: send nothing more. What is waiting stays for the next
 * run; the requests already on the wire are answered and, unrecorded, done again then.
 */
static void stop_unrecordable(batch *b)
{
    if (b->unrecordable++ == 0 && b->pipe)
        (void)sky_pipeline_cancel_waiting(b->pipe);
    b->fatal = 1;
    b->stopping = 1;
    /* results waiting for room in the journal will not get it: count them as lost */
    while (b->held_head) {
        held *h = b->held_head;
        b->held_head = h->next;
        held_free(h);
        b->unwritten_closed++;
    }
    b->held_tail = NULL;
}

/* Append one record under @p id to the output, or to --errors when it failed. Returns 0
 * when it is written or queued to be, -1 when it cannot be (and the run stops). */
static int record(batch *b, int failed, const char *id, const sky_buf *line)
{
    sky_journal *j = failed && b->err ? b->err : b->out;
    if (b->unrecordable)
        return -1;
    if (b->held_head) {
        hold(b, j, id, line->data, line->len);
        return 0;
    }
    int rc = sky_journal_append_id(j, id, line->data, line->len);
    if (rc == SKY_EBUSY) {
        /* the journal is behind: send nothing more until it catches up, so what is paid
         * for and not yet written stays within what is on the wire plus its queue */
        hold(b, j, id, line->data, line->len);
        sky_pipeline_hold(b->pipe, 1);
    } else if (rc < 0 && rc != SKY_JOURNAL_DUP) {
        fprintf(stderr, "skyio batch: cannot record %s: %s; stopping\n", id, sky_strerror(rc));
        stop_unrecordable(b);
        return -1;
    }
    return 0;
}

static void on_drain(sky_journal *j, void *ud)
{
    batch *b = ud;
    (void)j;
    while (b->held_head) {
        held *h = b->held_head;
        int rc = sky_journal_append_id(h->j, h->id, h->line, h->len);
        if (rc == SKY_EBUSY)
            return;
        b->held_head = h->next;
        if (b->held_head == NULL)
            b->held_tail = NULL;
        held_free(h);
    }
    sky_pipeline_hold(b->pipe, 0);
    read_more(b);
    maybe_finish(b); /* the last results may have been the ones waiting here */
}

static void on_journal_error(sky_journal *j, const sky_error *err, void *ud)
{
    batch *b = ud;
    (void)j;
    fprintf(stderr, "skyio batch: writing results failed: %s; stopping\n", err->message);
    stop_unrecordable(b);
}

/* ---- the input ---- */

/*
 * A bad line is recorded under its own custom_id when it has a valid one that no earlier
 * line took, so a reader can join it to its input. Otherwise (no id, or a duplicate) it
 * gets an id of its own, "skyio-<kind>-line-N". Either way a rerun knows it is recorded
 * and the output holds every id once.
 */
static void record_input_error(batch *b, const sky_batchline_error *le, const char *kind)
{
    char id[SKY_BATCHLINE_CUSTOM_ID_MAX + 1], hex[32];
    sky_buf line;
    int own = kind == NULL && le->has_custom_id;
    if (own)
        memcpy(id, le->custom_id, le->custom_id_len + 1);
    else
        snprintf(id, sizeof(id), "skyio-%s-line-%llu", kind ? kind : "input",
                 (unsigned long long)le->line);
    if (sky_journal_is_done(b->out, id) || (b->err && sky_journal_is_done(b->err, id)))
        return;
    sky_batchline_error e = *le;
    e.has_custom_id = 1;
    e.custom_id_len = strlen(id);
    memcpy(e.custom_id, id, e.custom_id_len + 1);
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)le->line);
    sky_buf_init(&line, 1u << 20);
    if (sky_batchline_record_input_error(&line, hex, &e) == 0 && record(b, 1, id, &line) == 0)
        b->input_errors++;
    sky_buf_free(&line);
}

/* A line that is not a request: under its custom_id when it has one no line took before. */
static void record_bad_line(batch *b, const sky_batchline_error *le)
{
    int added = le->has_custom_id
                    ? sky_idset_add(b->seen, sky_span_make(le->custom_id, le->custom_id_len))
                    : 0;
    if (added < 0)
        b->fatal = 1;
    else
        record_input_error(b, le, added ? NULL : "input");
}

static int already_done(const batch *b, const char *id)
{
    return sky_journal_is_done(b->out, id) || (b->err && sky_journal_is_done(b->err, id));
}

static void on_call_done(sky_call *call, const sky_call_result *res, const sky_error *err,
                         void *ud);
static int check_reply(sky_call *call, const sky_reply *reply, void *ud);

static void start_request(batch *b, sky_batchline_request *req)
{
    sky_call_options co;
    sky_buf url;
    sky_error err;
    item *it = calloc(1, sizeof(*it));
    sky_buf_init(&url, 8192);
    sky_error_clear(&err);
    int rc = it ? sky_ai_url(&b->ep, req->url, req->model, &url) : SKY_ENOMEM;
    /* only what the line says can make it unsendable; anything else (memory, a pipeline
     * that will not take the call) is this run's trouble: stop, and the next run sends it */
    int lines_fault = rc == SKY_EINVAL || rc == SKY_ENOTFOUND;
    if (rc == 0) {
        it->b = b;
        it->custom_id = req->custom_id;
        it->line = req->line;
        req->custom_id = NULL; /* the item owns it now */
        sky_call_options_init(&co);
        co.method = "POST";
        co.url = url.data;
        co.headers = b->json_headers;
        co.body = sky_span_make(req->body, req->body_len);
        co.est_tokens = (int64_t)req->token_estimate;
        co.check_reply = check_reply;
        co.on_done = on_call_done;
        co.user_data = it;
        rc = sky_call_start(b->pipe, &co, NULL, &err);
    }
    if (rc < 0 && !lines_fault) {
        fprintf(stderr, "skyio batch: cannot start a request: %s; stopping\n",
                err.code ? err.message : sky_strerror(rc));
        b->fatal = 1;
        b->stopping = 1;
        b->left_undone++;
        if (it) {
            free(it->custom_id);
            free(it);
        }
    } else if (rc < 0) {
        sky_batchline_error le;
        memset(&le, 0, sizeof(le));
        le.line = req->line;
        sky_error_set(&le.err, SKY_EINVAL, "line %llu: cannot send: %s",
                      (unsigned long long)req->line,
                      rc == SKY_EINVAL      ? "Azure needs body.model to name the deployment"
                      : rc == SKY_ENOTFOUND ? "Azure OpenAI has no such endpoint"
                                            : sky_strerror(rc));
        sky_error_set_service(&le.err, "invalid_request");
        /* the line's custom_id is valid and taken by this line: the record goes under it */
        const char *cid = req->custom_id ? req->custom_id : it->custom_id;
        le.has_custom_id = 1;
        le.custom_id_len = strlen(cid);
        memcpy(le.custom_id, cid, le.custom_id_len + 1);
        record_input_error(b, &le, NULL);
        if (it) {
            free(it->custom_id);
            free(it);
        }
    } else {
        b->in_flight++;
    }
    sky_buf_free(&url);
}

static void handle_line(batch *b, sky_span text)
{
    sky_batchline_request req;
    sky_batchline_error le;
    uint64_t n = ++b->line_no;
    memset(&req, 0, sizeof(req));
    int rc = b->text ? sky_batchline_text_parse(text, n, &b->lo, &req, &le)
                     : sky_batchline_parse(text, n, &b->lo, &req, &le);
    if (rc == SKY_BATCHLINE_BLANK)
        return;
    if (rc < 0) {
        if (le.err.code == SKY_ENOMEM)
            b->fatal = 1;
        else
            record_bad_line(b, &le);
        return;
    }
    sky_span id = sky_span_cstr(req.custom_id);
    int added = sky_idset_add(b->seen, id);
    if (added == 0) {
        sky_batchline_error_duplicate(&le, n, 0, id);
        record_input_error(b, &le, "duplicate");
    } else if (added < 0) {
        b->fatal = 1;
    } else if (already_done(b, req.custom_id)) {
        b->skipped++;
    } else {
        start_request(b, &req);
    }
    sky_batchline_request_free(&req);
}

/*
 * Split the chunk into lines; keep a last line without its newline for later.
 * A read that was under way when a signal came still arrives: its lines are
 * left for the next run, like the requests the signal found waiting.
 */
static void handle_chunk(batch *b, const char *p, size_t n)
{
    while (n > 0 && !b->fatal && !b->stopping) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        if (sky_buf_append(&b->partial, p, take) < 0) {
            /* a line over every limit: report it and skip to its end */
            sky_batchline_error le;
            memset(&le, 0, sizeof(le));
            le.line = b->line_no + 1;
            sky_error_set(&le.err, SKY_ETOOBIG, "line %llu: longer than the line limit",
                          (unsigned long long)le.line);
            sky_error_set_service(&le.err, "line_too_long");
            if (nl) {
                b->line_no++;
                record_input_error(b, &le, "input");
                sky_buf_reset(&b->partial);
            }
        } else if (nl) {
            handle_line(b, sky_buf_span(&b->partial));
            sky_buf_reset(&b->partial);
        }
        p += take;
        n -= take;
    }
    if (n > 0)
        b->lines_left = 1;
}

static void on_read(uv_fs_t *req)
{
    batch *b = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    b->reading = 0;
    if (n < 0) {
        fprintf(stderr, "skyio batch: reading %s: %s\n", b->input, uv_strerror((int)n));
        b->fatal = 1;
        b->eof = 1;
    } else if (n == 0) {
        if (b->partial.len && !b->stopping)
            handle_line(b, sky_buf_span(&b->partial));
        else if (b->partial.len)
            b->lines_left = 1; /* a last line without its newline, left for the next run */
        sky_buf_reset(&b->partial);
        b->eof = 1;
    } else {
        b->offset += n;
        handle_chunk(b, b->chunk, (size_t)n);
    }
    read_more(b);
    maybe_finish(b);
}

/* Read on while the pipeline has room; requests finishing call this again. */
static void read_more(batch *b)
{
    if (b->reading || b->eof || b->stopping || b->fatal || b->held_head ||
        b->in_flight >= b->window)
        return;
    b->reading = 1;
    b->read_req.data = b;
    uv_buf_t buf = uv_buf_init(b->chunk, CHUNK);
    int64_t at = b->stdin_input ? -1 : b->offset; /* a pipe has no offsets */
    if (uv_fs_read(sky_loop_uv(b->loop), &b->read_req, b->fd, &buf, 1, at, on_read) < 0) {
        b->reading = 0;
        b->eof = 1;
        b->fatal = 1;
    }
}

/* ---- results ---- */

/* A usage count under its chat name, or else its Responses API name; -1 when neither. */
static int64_t usage_tokens(const json_t *counts, const char *chat_key, const char *responses_key)
{
    json_t *v = json_object_get(counts, chat_key);
    if (v == NULL)
        v = json_object_get(counts, responses_key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* The few replies the scan leaves to jansson (a rare escape, a long number, deep nesting). */
static int check_by_tree(const sky_reply *r, item *it)
{
    json_t *j = NULL;
    int rc = sky_json_parse(r->body, &j, NULL);
    if (rc < 0)
        return rc;
    json_t *u = json_object_get(j, "usage");
    it->usage.prompt_tokens = usage_tokens(u, "prompt_tokens", "input_tokens");
    it->usage.completion_tokens = usage_tokens(u, "completion_tokens", "output_tokens");
    it->usage.total_tokens = usage_tokens(u, "total_tokens", "total_tokens");
    it->too_deep = sky_json_deeper_than(j, SKY_JSON_MAX_DEPTH - 8);
    json_decref(j);
    return 0;
}

/*
 * A 2xx reply, read once before the pipeline decides on it: whether it is JSON (a reply that
 * is not is asked for once more), what it used (for the rate limiter and the summary), and
 * whether it nests too deep to record. One scan, no tree: the record takes its bytes.
 */
static int check_reply(sky_call *call, const sky_reply *reply, void *ud)
{
    item *it = ud;
    it->too_deep = 0;
    /* the record nests the reply two deeper, and the journal reads it back with jansson */
    int rc = sky__ai_reply_usage(reply->body, SKY_JSON_MAX_DEPTH - 8, &it->usage);
    if (rc == SKY_EJSON)
        rc = check_by_tree(reply, it);
    if (rc == 0 && it->usage.total_tokens >= 0)
        sky_call_set_usage(call, it->usage.total_tokens);
    return rc;
}

static void count_usage(batch *b, const item *it)
{
    b->tokens_in += it->usage.prompt_tokens > 0 ? (uint64_t)it->usage.prompt_tokens : 0;
    b->tokens_out += it->usage.completion_tokens > 0 ? (uint64_t)it->usage.completion_tokens : 0;
}

/* Refusals that say nothing about the request and everything about the account. */
enum { REFUSED_NONE, REFUSED_CREDENTIALS, REFUSED_ACCESS, REFUSED_QUOTA };

static int account_refusal(const sky_call_result *res, const sky_error *err)
{
    if (err == NULL || err->code != SKY_EHTTP)
        return REFUSED_NONE;
    if (res->status == 401)
        return REFUSED_CREDENTIALS;
    if (res->status == 403)
        return REFUSED_ACCESS;
    if (res->status == 429 && strcmp(err->service_code, "insufficient_quota") == 0)
        return REFUSED_QUOTA;
    return REFUSED_NONE;
}

/*
 * A 401 (wrong key or token), a 403 (the identity lacks a role, or the network is not
 * allowed) or a 429 insufficient_quota (no credit left) holds for every request alike:
 * recording it for each line of a large input would fill the output with failures the
 * next run skips, and keep sending what is refused. Stop instead, as on SIGINT: what is
 * waiting is not sent, and nothing refused is recorded, so the run after the account is
 * fixed does it all.
 */
static void refuse(batch *b, int why, const sky_error *err)
{
    static const char *const what[] = {"", "refused the credentials", "denied access",
                                       "says the account is out of quota"};
    static const char *const fix[] = {
        "", "fix the key or token",
        ("give the identity access (for Azure OpenAI with Entra ID, the Cognitive Services "
         "OpenAI User role) or check the network rules"),
        "check the plan and billing"};
    if (b->refused)
        return;
    b->refused = why;
    sky_buf msg;
    sky_buf_init(&msg, 4096);
    if (sky_redact(sky_span_cstr(err->message), &msg) < 0)
        sky_buf_free(&msg);
    /* the message begins "HTTP <status>": the service's code, when there is one, goes first */
    fprintf(stderr,
            "\nskyio batch: the provider %s (%s%s%s); stopping. Nothing it refused is "
            "recorded: %s and run again.\n",
            what[why], err->service_code, err->service_code[0] ? ": " : "",
            msg.len ? msg.data : "HTTP error", fix[why]);
    sky_buf_free(&msg);
    if (b->pipe)
        (void)sky_pipeline_cancel_waiting(b->pipe);
    b->stopping = 1;
}

/*
 * The request id the provider gave its reply (OpenAI's x-request-id, which Azure sends as
 * apim-request-id too): the one its support asks for, and what OpenAI's own batch output
 * records. Ours, sent as x-ms-client-request-id, when the reply named none.
 */
static const char *provider_request_id(const sky_call_result *res)
{
    const char *id = res->headers ? sky_headers_get(res->headers, "x-request-id") : NULL;
    if (id == NULL || id[0] == '\0')
        id = res->headers ? sky_headers_get(res->headers, "apim-request-id") : NULL;
    return id && id[0] ? id : res->request_id;
}

/* The result's record, appended to the output (or --errors); 0 once written or queued. */
static int record_result(batch *b, const item *it, const sky_call_result *res, const sky_error *err)
{
    sky_buf line;
    char hex[40];
    const char *rid = provider_request_id(res);
    sky_batchline_response r = {res->status, rid, res->body};
    /* the record's id: our request id's hex digits, without the dashes */
    size_t n = 0;
    for (size_t i = 0; i < 32 && res->request_id[i]; i++)
        if (res->request_id[i] != '-')
            hex[n++] = res->request_id[i];
    hex[n] = '\0';
    sky_buf_init(&line, 128u * 1024u * 1024u);
    int rc;
    if (err == NULL) {
        /* check_reply has read a success: its bytes are JSON that jansson reads back */
        rc = sky_batchline_record_success_raw(&line, hex, sky_span_cstr(it->custom_id), res->status,
                                              rid, res->body);
    } else {
        /* a reply too large or too deep to record goes without its body; so does an error
         * reply over 1 MiB (as a JSON string, control bytes grow sixfold) */
        int keep = res->status && err->code != SKY_ETOOBIG && res->body.len <= ((size_t)1 << 20);
        rc = sky_batchline_record_failure(
            &line, hex, sky_span_cstr(it->custom_id), keep ? &r : NULL,
            err->service_code[0] ? err->service_code : sky_err_name(err->code), err->message);
    }
    rc = rc == 0 ? record(b, err != NULL, it->custom_id, &line) : -1;
    sky_buf_free(&line);
    return rc;
}

/* A reply that nests too deep to record (check_reply found it) is a failure. */
static int too_deep(const item *it, const sky_call_result *res, sky_error *out)
{
    if (!it->too_deep)
        return 0;
    sky_error_clear(out);
    sky_error_set(out, SKY_ETOOBIG, "the reply nests deeper than %d levels: it cannot be recorded",
                  SKY_JSON_MAX_DEPTH - 8);
    sky_error_set_service(out, "response_too_deep");
    out->http_status = res->status;
    return 1;
}

static void on_call_done(sky_call *call, const sky_call_result *res, const sky_error *err, void *ud)
{
    item *it = ud;
    batch *b = it->b;
    sky_error deep;
    (void)call;
    b->in_flight--;
    if (err == NULL && too_deep(it, res, &deep))
        err = &deep;
    b->retries += res->attempts > 1 ? (uint64_t)(res->attempts - 1) : 0;
    b->responses_429 += res->retry ? (uint64_t)res->retry->responses_429 : 0;
    /* the provider's latency, not the time spent queued behind the limits */
    sky_histogram_record(&b->latency_ms, res->attempt_ms);
    int refusal = account_refusal(res, err);
    if (refusal)
        refuse(b, refusal, err);
    int unsent = never_reached(b, err) || b->unreachable;
    if (unsent)
        stop_unreachable(b, err);
    /* a canceled, refused or never-sent request is not recorded: the next run does it;
     * nor is one that came back after the output could no longer be written. Only what is
     * recorded is counted. */
    if ((err && err->code == SKY_ECANCELED) || refusal || unsent ||
        record_result(b, it, res, err) < 0) {
        b->left_undone++;
    } else if (err == NULL) {
        b->ok++;
        count_usage(b, it);
    } else {
        b->failed++;
    }
    free(it->custom_id);
    free(it);
    read_more(b);
    maybe_finish(b);
}

/* ---- progress and summary ---- */

/* Lines in the whole input, from the lines read so far and the bytes they took. */
static uint64_t estimated_total(const batch *b)
{
    if (b->eof || b->offset <= 0 || b->input_size <= 0)
        return b->line_no;
    return (uint64_t)((double)b->line_no * (double)b->input_size / (double)b->offset);
}

static void eta_text(const batch *b, double rps, char *out, size_t len)
{
    uint64_t done = b->ok + b->failed + b->skipped + b->input_errors;
    uint64_t total = estimated_total(b);
    if (rps <= 0 || total <= done) {
        snprintf(out, len, "%llu/%llu", (unsigned long long)done, (unsigned long long)total);
        return;
    }
    double eta = (double)(total - done) / rps;
    snprintf(out, len, "%llu/%llu ETA %dm%02ds", (unsigned long long)done,
             (unsigned long long)total, (int)(eta / 60), (int)eta % 60);
}

static void print_progress(batch *b, int final)
{
    double secs = (double)(sky_clock_now_ms(NULL) - b->start_ms) / 1000.0;
    double rps = secs > 0 ? (double)(b->ok + b->failed) / secs : 0;
    char eta[96];
    eta_text(b, rps, eta, sizeof(eta));
    sky_ratelimit_stats rs;
    memset(&rs, 0, sizeof(rs));
    if (b->pipe && sky_pipeline_rate_limiter(b->pipe))
        sky_ratelimit_get_stats(sky_pipeline_rate_limiter(b->pipe), &rs);
    sky_limiter *lim = b->pipe ? sky_pipeline_limiter(b->pipe) : NULL;
    /* on the wire: what holds a concurrency slot; the rest of what was read waits (for a
     * slot, the rate, a retry or the endpoint) */
    uint64_t wire = lim ? (uint64_t)sky_limiter_in_flight(lim) : b->in_flight;
    if (wire > b->in_flight)
        wire = b->in_flight;
    char rate[32];
    if (rs.rpm > 0)
        snprintf(rate, sizeof(rate), "%.0f/min", rs.rpm);
    else
        snprintf(rate, sizeof(rate), "unpaced");
    fprintf(stderr,
            "%s%s  %llu done (%llu ok, %llu failed, %llu skipped, %llu bad lines)  %.1f req/s  "
            "%llu tok/s  sending %llu, waiting %llu  concurrency %d  rate %s  429s %llu  retries "
            "%llu%s%s",
            isatty(2) && !final ? "\r" : "", eta, (unsigned long long)(b->ok + b->failed),
            (unsigned long long)b->ok, (unsigned long long)b->failed,
            (unsigned long long)b->skipped, (unsigned long long)b->input_errors, rps,
            (unsigned long long)(secs > 0 ? (double)(b->tokens_in + b->tokens_out) / secs : 0),
            (unsigned long long)wire, (unsigned long long)(b->in_flight - wire),
            lim ? sky_limiter_limit(lim) : 0, rate, (unsigned long long)b->responses_429,
            (unsigned long long)b->retries,
            b->endpoint_down && !final ? "  ENDPOINT DOWN, waiting" : "",
            isatty(2) && !final ? "   " : "\n");
}

/* Failures that say the endpoint was never reached: the URL, the name or the TLS set-up. */
static int unreachable_code(int code)
{
    return code == SKY_ECONNECT || code == SKY_ERESOLVE || code == SKY_ETLS;
}

/* A line when the breaker has opened since the last look (even if it is closed again by
 * now) and when the endpoint answers again. */
static void report_outages(batch *b, const sky_pipeline_health *h)
{
    int down = h->breaker != SKY_BREAKER_CLOSED;
    if (h->times_opened > b->outages_told) {
        b->outages_told = h->times_opened;
        if (!b->endpoint_down)
            fprintf(stderr,
                    "\nskyio batch: the endpoint is failing (%s: %s); requests wait and go again "
                    "once it answers. Ctrl-C stops; nothing is lost.\n",
                    sky_err_name(h->last_fault.code), h->last_fault.message);
        b->endpoint_down = 1;
    }
    if (!down && b->endpoint_down) {
        fprintf(stderr, "\nskyio batch: the endpoint answers again\n");
        b->endpoint_down = 0;
    }
}

/*
 * The endpoint has never answered and cannot be reached at all: a wrong URL, host or
 * certificate rather than an outage. Stop as on SIGINT, record nothing (a record would make
 * the next run skip a request that was never sent), and cancel what is on the wire, since
 * nothing answered is worth waiting for.
 */
static void stop_unreachable(batch *b, const sky_error *fault)
{
    if (b->unreachable || b->pipe == NULL)
        return;
    b->unreachable = 1;
    fprintf(stderr,
            "\nskyio batch: cannot reach the endpoint (%s: %s); stopping. Nothing was "
            "recorded: check the URL, the network or --cacert and run again.\n",
            sky_err_name(fault->code), fault->message);
    b->stopping = 1;
    sky_pipeline_free(b->pipe); /* deferred when called from one of its callbacks */
    b->pipe = NULL;
    maybe_finish(b);
}

/* Whether @p err says the endpoint was never reached, and nothing of it ever answered. */
static int never_reached(const batch *b, const sky_error *err)
{
    sky_pipeline_health h;
    if (err == NULL || !unreachable_code(err->code) || b->pipe == NULL)
        return 0;
    sky_pipeline_get_health(b->pipe, &h);
    return h.answered == 0;
}

/*
 * Say when the endpoint starts failing (the breaker opens: requests wait) and when it
 * answers again; stop when it has never answered and cannot be reached at all.
 */
static void watch_endpoint(batch *b)
{
    sky_pipeline_health h;
    if (b->pipe == NULL || b->stopping)
        return;
    sky_pipeline_get_health(b->pipe, &h);
    int down = h.breaker != SKY_BREAKER_CLOSED;
    if (down && h.answered == 0 && unreachable_code(h.last_fault.code)) {
        stop_unreachable(b, &h.last_fault);
        return;
    }
    report_outages(b, &h);
}

static void on_progress(uv_timer_t *t)
{
    batch *b = t->data;
    watch_endpoint(b);
    if (!b->closing)
        print_progress(b, 0);
}

/* Results accepted for writing that a write error then lost (a full disk). */
static uint64_t unwritten(const batch *b)
{
    sky_journal_stats st;
    uint64_t n = b->unwritten_closed;
    if (b->out) {
        sky_journal_get_stats(b->out, &st);
        n += st.unwritten;
    }
    if (b->err) {
        sky_journal_get_stats(b->err, &st);
        n += st.unwritten;
    }
    return n;
}

/* Whether a stop left work for the next run: 0 means every line is recorded. */
static int unfinished(const batch *b)
{
    return (b->stopping && (!b->eof || b->lines_left)) || b->left_undone > 0 || unwritten(b) > 0;
}

static void print_summary(batch *b)
{
    if (b->pipe) {
        sky_pipeline_health h;
        sky_pipeline_get_health(b->pipe, &h);
        report_outages(b, &h);
    }
    double secs = (double)(sky_clock_now_ms(NULL) - b->start_ms) / 1000.0;
    sky_ratelimit_stats rs;
    memset(&rs, 0, sizeof(rs));
    if (b->pipe && sky_pipeline_rate_limiter(b->pipe))
        sky_ratelimit_get_stats(sky_pipeline_rate_limiter(b->pipe), &rs);
    json_t *s = json_pack(
        "{s:I,s:I,s:I,s:I,s:f,s:f,s:{s:I,s:I},s:{s:I,s:I,s:I},s:I,s:I,s:I,s:b}", "ok",
        (json_int_t)b->ok, "failed", (json_int_t)b->failed, "skipped", (json_int_t)b->skipped,
        "bad_lines", (json_int_t)b->input_errors, "seconds", secs, "requests_per_second",
        secs > 0 ? (double)(b->ok + b->failed) / secs : 0.0, "tokens", "in",
        (json_int_t)b->tokens_in, "out", (json_int_t)b->tokens_out, "latency_ms", "p50",
        (json_int_t)sky_histogram_percentile(&b->latency_ms, 50), "p90",
        (json_int_t)sky_histogram_percentile(&b->latency_ms, 90), "p99",
        (json_int_t)sky_histogram_percentile(&b->latency_ms, 99), "retries", (json_int_t)b->retries,
        "responses_429", (json_int_t)b->responses_429, "rate_limit_wait_ms", (json_int_t)rs.wait_ms,
        "interrupted", b->stopping && !b->fatal);
    if (s && b->refused == REFUSED_CREDENTIALS)
        json_object_set_new(s, "credentials_refused", json_true());
    if (s && b->refused == REFUSED_ACCESS)
        json_object_set_new(s, "access_denied", json_true());
    if (s && b->refused == REFUSED_QUOTA)
        json_object_set_new(s, "quota_exhausted", json_true());
    if (s && b->unreachable)
        json_object_set_new(s, "endpoint_unreachable", json_true());
    if (s && unfinished(b))
        json_object_set_new(s, "unfinished", json_true());
    if (s && unwritten(b) > 0)
        json_object_set_new(s, "unwritten", json_integer((json_int_t)unwritten(b)));
    if (b->json_out && s) {
        char *text = sky_json_dump(s, NULL);
        if (text)
            puts(text);
        free(text);
    } else {
        print_progress(b, 1);
        if (unwritten(b) > 0)
            fprintf(stderr, "%llu results could not be written; ",
                    (unsigned long long)unwritten(b));
        if (unfinished(b))
            fprintf(stderr, "not finished: run the same command again to do the rest\n");
        fprintf(stderr, "results in %s%s%s; latency p50/p90/p99 %lld/%lld/%lld ms\n", b->output,
                b->errors ? ", failures in " : "", b->errors ? b->errors : "",
                (long long)sky_histogram_percentile(&b->latency_ms, 50),
                (long long)sky_histogram_percentile(&b->latency_ms, 90),
                (long long)sky_histogram_percentile(&b->latency_ms, 99));
    }
    json_decref(s);
}

/* ---- the end ---- */

static void on_journal_closed(sky_journal *j, const sky_error *err, void *ud)
{
    batch *b = ud;
    sky_journal_stats st;
    /* the journal is freed when this returns: keep what the summary needs of it */
    sky_journal_get_stats(j, &st);
    b->unwritten_closed += st.unwritten;
    if (j == b->out)
        b->out = NULL;
    else if (j == b->err)
        b->err = NULL;
    if (err && err->code) {
        fprintf(stderr, "skyio batch: closing results: %s\n", err->message);
        b->fatal = 1;
    }
    if (--b->journals_open > 0)
        return;
    /* after the close, so the summary knows what reached the disk */
    if (b->closing)
        print_summary(b);
    sky_loop_stop(b->loop);
}

/* Close the output and the errors file; the last close ends the loop (on_journal_closed,
 * which also forgets each journal, hence the copies). */
static void close_journals(batch *b)
{
    sky_journal *out = b->out, *err = b->err;
    b->journals_open = (out != NULL) + (err != NULL);
    if (out)
        (void)sky_journal_close(out, on_journal_closed, b);
    if (err)
        (void)sky_journal_close(err, on_journal_closed, b);
}

static void maybe_finish(batch *b)
{
    if (b->closing || b->in_flight > 0 || b->reading || b->held_head)
        return;
    if (!(b->eof || b->stopping || b->fatal))
        return;
    b->closing = 1;
    uv_timer_stop(&b->progress);
    uv_timer_stop(&b->grace);
    close_journals(b);
}

static void on_grace(uv_timer_t *t)
{
    batch *b = t->data;
    /* in flight too long after the signal: cancel; the next run redoes them */
    sky_pipeline_free(b->pipe);
    b->pipe = NULL;
    maybe_finish(b);
}

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    batch *b = ud;
    (void)loop;
    if (b->signals++ > 0) {
        fprintf(stderr, "\nskyio batch: second signal: stopping now; rerun to finish\n");
        _exit(SKY_EXIT_FAILED);
    }
    /* what is waiting (for a slot, the rate limit, a retry) is not sent: the next run does it */
    size_t waiting = b->pipe ? sky_pipeline_cancel_waiting(b->pipe) : 0;
    fprintf(stderr,
            "\nskyio batch: signal %d: finishing %llu requests on the wire (30 s); %llu not yet "
            "sent are left for the next run\n",
            signum, (unsigned long long)(b->in_flight - waiting), (unsigned long long)waiting);
    b->stopping = 1;
    uv_timer_start(&b->grace, on_grace, 30000, 0);
    maybe_finish(b);
}

/* ---- set-up ---- */

static char *default_output(const char *input)
{
    size_t n = strlen(input);
    const char *ext = n > 6 && strcmp(input + n - 6, ".jsonl") == 0 ? input + n - 6 : input + n;
    sky_buf b;
    sky_buf_init(&b, 8192);
    if (sky_buf_printf(&b, "%.*s.out.jsonl", (int)(ext - input), input) < 0) {
        sky_buf_free(&b);
        return NULL;
    }
    return sky_buf_detach(&b, NULL);
}

static int setup_pipeline(batch *b)
{
    sky_pipeline_options po;
    sky_pipeline_options_init(&po);
    po.auth = sky_ai_pipeline_auth;
    po.auth_user_data = &b->ep;
    if (b->ep.use_entra_id) {
        /* the credential chain, its token cached and refreshed ahead of expiry */
        sky_error e;
        sky_error_clear(&e);
        if (sky_credential_default_new(sky_loop_uv(b->loop), b->client, NULL, &b->cred, &e) < 0) {
            fprintf(stderr, "skyio batch: %s\n", e.message);
            return SKY_EAUTH;
        }
        po.credential = b->cred;
        po.scope = sky_ai_entra_scope(&b->ep);
    }
    /* Without it curl labels a POST body form data, which OpenAI refuses (400
     * unsupported_content_type) and FastAPI servers such as vLLM do not parse. */
    b->json_headers = sky_headers_new();
    if (b->json_headers == NULL || sky_headers_add(b->json_headers, SKY_SPAN_LIT("Content-Type"),
                                                   SKY_SPAN_LIT("application/json")) < 0)
        return SKY_ENOMEM;
    po.breaker_fail_fast = 0; /* a batch waits for the endpoint to come back */
    /* and only when nothing succeeds: failures among successes are load being shed or a
     * request the server cannot handle, which the retries settle */
    po.breaker.quiet_ms = 2000;
    /* and looks again soon: a probe after 5 s, then 10, 20, up to a minute while it fails */
    po.breaker.reset_ms = 5000;
    po.breaker.max_reset_ms = 60000;
    po.attempt_timeout_ms = (long)b->timeout_ms;
    po.retry.max_retries = (int)b->max_retries;
    po.retry.openai_statuses = 1;
    /* With no limit given or announced, do not pace at all: a server with none (vLLM, a
     * provisioned deployment) is never slowed. The first 429 starts pacing at the rate
     * the provider just took, or at 10 requests a second doubling every second while held
     * back when it took none. A provider's limit is fixed, so a later 429 cuts the rate by
     * a fifth, not by half: at a hidden 3,000 RPM that held 85% of it with 1% 429s,
     * against 76% when halving. A 503 or 529 among successes is a limiter's refusal too
     * (nginx's limit_req, an overloaded server), not an outage. */
    po.rate.unpaced_start = 1;
    po.rate.initial_rpm = 600;
    po.overload_is_rate = 1;
    po.rate.increase_interval_ms = 1000;
    po.rate.decrease_factor = 0.8;
    if (b->rpm)
        po.rate.rpm = (double)b->rpm;
    if (b->tpm)
        po.rate.tpm = (double)b->tpm;
    po.use_rate_limit = !b->no_rate_limit;
    /* LLM replies take hundreds of milliseconds, so a server's capacity needs hundreds of
     * requests in flight. Start at 16 and double each round trip (slow start) until the
     * latency shows a queue (the limit goes to the server's rate times the quietest round
     * trip), a refusal, or the cap; then the gradient judges every quarter second. */
    po.concurrency.initial = 16;
    po.concurrency.slow_start = 1;
    po.concurrency.max = (int)b->max_concurrency;
    po.concurrency.window_min_ms = 250;
    if (b->limiter && !strcmp(b->limiter, "aimd")) {
        po.concurrency.kind = SKY_LIMITER_AIMD;
        po.concurrency.slow_start = 0;
    }
    if (po.concurrency.initial > po.concurrency.max)
        po.concurrency.initial = po.concurrency.max;
    if (b->concurrency || (b->limiter && !strcmp(b->limiter, "fixed"))) {
        int n = b->concurrency ? (int)b->concurrency : po.concurrency.initial;
        po.concurrency.kind = SKY_LIMITER_FIXED;
        po.concurrency.slow_start = 0;
        po.concurrency.initial = n;
        po.concurrency.max = n;
        if (po.concurrency.min > n)
            po.concurrency.min = n;
    }
    return sky_pipeline_new(sky_loop_uv(b->loop), b->client, &po, &b->pipe);
}

static int open_journal(batch *b, const char *path, sky_journal **out)
{
    sky_journal_options jo;
    sky_error err;
    sky_error_clear(&err);
    sky_journal_options_init(&jo);
    jo.retry_failed = b->retry_failed;
    jo.on_error = on_journal_error;
    jo.on_drain = on_drain;
    jo.user_data = b;
    /* room for a record around the largest reply the client takes (64 MiB) */
    jo.max_line_bytes = (size_t)65 << 20;
    if (sky_journal_open(sky_loop_uv(b->loop), path, &jo, out, &err) < 0) {
        fprintf(stderr, "skyio batch: %s: %s\n", path, err.message);
        return -1;
    }
    sky_journal_stats st;
    sky_journal_get_stats(*out, &st);
    if (st.torn_bytes)
        fprintf(stderr, "skyio batch: %s: repaired a torn last line (%llu bytes)\n", path,
                (unsigned long long)st.torn_bytes);
    if (st.done_failed)
        fprintf(stderr,
                "skyio batch: %s: resuming, %llu requests already recorded, %llu of them "
                "failed (kept as done; --retry-failed sends those again)\n",
                path, (unsigned long long)(st.done_ok + st.done_failed),
                (unsigned long long)st.done_failed);
    else if (st.done_ok)
        fprintf(stderr, "skyio batch: %s: resuming, %llu requests already recorded\n", path,
                (unsigned long long)st.done_ok);
    return 0;
}

typedef struct first_token {
    int done;
    sky_error err;
} first_token;

static void on_first_token(sky_token_request *req, const sky_access_token *tok,
                           const sky_error *err, void *ud)
{
    first_token *ft = ud;
    (void)req;
    (void)tok;
    if (err)
        ft->err = *err;
    ft->done = 1;
}

/* Without a token nothing can be sent: find out now, not once per line (exit 3). */
static int check_credential(batch *b)
{
    first_token ft;
    memset(&ft, 0, sizeof(ft));
    if (b->cred == NULL)
        return 0;
    if (sky_credential_get_token(b->cred, sky_ai_entra_scope(&b->ep), on_first_token, &ft, NULL,
                                 &ft.err) < 0)
        ft.done = 1;
    while (!ft.done)
        uv_run(sky_loop_uv(b->loop), UV_RUN_ONCE);
    if (ft.err.code == 0)
        return 0;
    fprintf(stderr, "skyio batch: no Entra ID token for Azure OpenAI: %s\n", ft.err.message);
    return -1;
}

static const char *file_kind(uint64_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

/* Whether @p path names the file @p st describes (a link to it, say). */
static int is_same_file(const uv_stat_t *st, const char *path)
{
    uv_fs_t req;
    int same = uv_fs_stat(NULL, &req, path, NULL) == 0 && req.statbuf.st_dev == st->st_dev &&
               req.statbuf.st_ino == st->st_ino;
    uv_fs_req_cleanup(&req);
    return same;
}

/*
 * INPUT is a regular file, read by offset (a rerun finds the same lines at the same places),
 * or "-", standard input read as a stream. Anything else would never end (/dev/zero), block
 * at open (a FIFO without a writer) or fail at the first read: refuse it before anything runs.
 * O_NONBLOCK only keeps the open of a FIFO from blocking; regular files ignore it.
 */
static int open_input(batch *b)
{
    uv_fs_t req;
    b->stdin_input = strcmp(b->input, "-") == 0;
    if (b->stdin_input) {
        b->fd = dup(0);
        if (b->fd < 0) {
            fprintf(stderr, "skyio batch: cannot read standard input: %s\n", strerror(errno));
            return SKY_EXIT_USAGE;
        }
    } else {
        b->fd = uv_fs_open(NULL, &req, b->input, O_RDONLY | O_NONBLOCK, 0, NULL);
        uv_fs_req_cleanup(&req);
        if (b->fd < 0) {
            fprintf(stderr, "skyio batch: cannot open %s: %s\n", b->input, uv_strerror(b->fd));
            return SKY_EXIT_USAGE;
        }
    }
    if (uv_fs_fstat(NULL, &req, b->fd, NULL) < 0) {
        uv_fs_req_cleanup(&req);
        fprintf(stderr, "skyio batch: cannot read %s\n", b->input);
        return SKY_EXIT_USAGE;
    }
    uv_stat_t in = req.statbuf;
    uv_fs_req_cleanup(&req);
    if (!b->stdin_input && !S_ISREG(in.st_mode)) {
        fprintf(stderr,
                "skyio batch: %s is %s, not a regular file: INPUT must be a file, or - to read "
                "standard input\n",
                b->input, file_kind(in.st_mode));
        return SKY_EXIT_USAGE;
    }
    b->input_size = S_ISREG(in.st_mode) ? (int64_t)in.st_size : 0;
    if (is_same_file(&in, b->output) || (b->errors && is_same_file(&in, b->errors))) {
        fprintf(stderr, "skyio batch: %s is the input file; results need a file of their own\n",
                is_same_file(&in, b->output) ? b->output : b->errors);
        return SKY_EXIT_USAGE;
    }
    return 0;
}

static int start(batch *b)
{
    sky_error err;
    sky_http_client_options co;
    sky_error_clear(&err);
    int rc = open_input(b);
    if (rc != 0)
        return rc;
    rc = b->base_url ? sky_ai_endpoint_set(&b->ep, SKY_AI_OPENAI, b->base_url,
                                           getenv("OPENAI_API_KEY"), NULL)
                     : sky_ai_endpoint_from_env_entra(&b->ep, b->prefer_azure, &err);
    if (rc == 0 && b->base_url)
        rc = sky_ai_endpoint_read_org_env(&b->ep);
    if (rc < 0) {
        fprintf(stderr, "skyio batch: %s\n", err.code ? err.message : sky_strerror(rc));
        return SKY_EXIT_START;
    }
    b->loop = sky_loop_new();
    if (b->loop) {
        /* initialized at once: teardown closes them whatever happens next */
        uv_timer_init(sky_loop_uv(b->loop), &b->progress);
        uv_timer_init(sky_loop_uv(b->loop), &b->grace);
        b->progress.data = b->grace.data = b;
    }
    sky_http_client_options_init(&co);
    co.ca_file = b->cacert;
    co.shards = sky_cli_shards_for(b->concurrency);
    b->seen = sky_idset_new(0);
    if (b->loop == NULL || b->seen == NULL ||
        sky_http_client_new(sky_loop_uv(b->loop), &co, &b->client) < 0 || setup_pipeline(b) < 0) {
        fprintf(stderr, "skyio batch: cannot start the client\n");
        return SKY_EXIT_START;
    }
    if (check_credential(b) < 0)
        return SKY_EXIT_START;
    if (open_journal(b, b->output, &b->out) < 0 ||
        (b->errors && open_journal(b, b->errors, &b->err) < 0))
        return SKY_EXIT_START;
    return 0;
}

static void run(batch *b)
{
    /* read ahead of what may be in flight, so a slot never waits for the file */
    b->window = b->concurrency + 1024 > 4096 ? (uint64_t)b->concurrency + 1024 : 4096;
    b->start_ms = sky_clock_now_ms(NULL);
    sky_histogram_init(&b->latency_ms);
    uv_unref((uv_handle_t *)&b->progress);
    uv_timer_start(&b->progress, on_progress, isatty(2) ? 500 : 5000, isatty(2) ? 500 : 5000);
    (void)sky_loop_on_signal(b->loop, on_signal, b);
    read_more(b);
    maybe_finish(b);
    sky_loop_run(b->loop);
}

static void teardown(batch *b)
{
    while (b->held_head) {
        held *h = b->held_head;
        b->held_head = h->next;
        held_free(h);
    }
    if (b->loop) {
        uv_close((uv_handle_t *)&b->progress, NULL);
        uv_close((uv_handle_t *)&b->grace, NULL);
    }
    sky_pipeline_free(b->pipe);
    sky_headers_free(b->json_headers);
    sky_credential_free(b->cred);
    sky_http_client_free(b->client);
    if (b->loop) {
        (void)sky_loop_on_signal(b->loop, NULL, NULL);
        sky_loop_run(b->loop);
        sky_loop_free(b->loop);
    }
    if (b->fd >= 0) {
        uv_fs_t req;
        uv_fs_close(NULL, &req, b->fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    sky_idset_free(b->seen);
    sky_buf_free(&b->partial);
    sky_ai_endpoint_free(&b->ep);
}

int sky_cli_batch(int argc, char **argv)
{
    batch *b = calloc(1, sizeof(*b));
    char *out_default = NULL;
    if (b == NULL)
        return SKY_EXIT_START;
    b->fd = -1;
    b->max_retries = 10;
    b->max_concurrency = 1024;
    /* OpenAI's SDKs wait 10 minutes: a slow reasoning reply timed out sooner is billed,
     * then asked (and billed) again */
    b->timeout_ms = 600000;
    sky_batchline_options_init(&b->lo);
    int rc = parse_args(b, argc, argv);
    if (rc != 0) {
        if (rc == 1)
            fputs(usage, stdout);
        free(b);
        return rc == 1 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    }
    if (b->max_line_bytes > 0)
        b->lo.max_line_bytes = (size_t)b->max_line_bytes;
    /* a line is gathered here whole, up to the limit plus one read */
    sky_buf_init(&b->partial, b->lo.max_line_bytes + CHUNK);
    if (b->output == NULL)
        b->output = out_default = default_output(b->input);
    int code = b->output ? start(b) : SKY_EXIT_START;
    if (code == 0) {
        run(b);
        code = b->fatal || b->refused || b->unreachable          ? SKY_EXIT_START
               : (b->failed || b->input_errors || unfinished(b)) ? SKY_EXIT_FAILED
                                                                 : SKY_EXIT_OK;
    } else if (b->out || b->err) {
        /* opened but never ran: close what was opened */
        close_journals(b);
        sky_loop_run(b->loop);
    }
    teardown(b);
    free(out_default);
    free(b);
    return code;
}
