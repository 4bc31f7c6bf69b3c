/* `skyio chat`: one prompt, streamed token by token; several models at once with --model a,b,c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "skyio/ai.h"
#include "skyio/skyio.h"
#include "cli.h"

#define MAX_MODELS 16

static const char usage[] =
    "usage: skyio chat [options] [PROMPT...]\n"
    "\n"
    "Ask one prompt and stream the reply token by token. With --model a,b,c the same\n"
    "prompt goes to every model at once and each answer is printed under its name when it\n"
    "is complete; one failing does not stop the others. The prompt is the arguments, or\n"
    "standard input when there are none (or PROMPT is -).\n"
    "\n"
    "options:\n"
    "  -m, --model M[,M...]   model(s), or Azure deployment(s) (default gpt-4o-mini)\n"
    "  -s, --system TEXT      a system message first\n"
    "  -t, --temperature T    sampling temperature\n"
    "  -n, --max-tokens N     longest reply\n"
    "      --max-completion-tokens N  the same, as reasoning models (o-series, gpt-5) want it\n"
    "      --base-url URL     an OpenAI-compatible server's API root, as OpenAI's SDKs take\n"
    "                         it (http://host:8000/v1; instead of $OPENAI_BASE_URL)\n"
    "      --azure            use $AZURE_OPENAI_ENDPOINT even when $OPENAI_API_KEY is set\n"
    "      --timeout-ms N     per request (default 600000, as OpenAI's SDKs)\n"
    "      --max-retries N    retries of a request that failed before its first token: 429,\n"
    "                         5xx, resets, timeouts, honouring Retry-After (default 5). An\n"
    "                         endpoint that never answered and cannot be reached (refused,\n"
    "                         unknown host, TLS failure) is not retried: exit 3 at once\n"
    "      --cacert FILE      trust the CAs in FILE\n"
    "      --usage            ask for token usage (stream_options) and print it on stderr\n"
    "\n"
    "environment (as OpenAI's and Azure's SDKs read it): OPENAI_API_KEY, OPENAI_BASE_URL,\n"
    "OPENAI_ORG_ID, OPENAI_PROJECT_ID; AZURE_OPENAI_ENDPOINT with AZURE_OPENAI_API_KEY or\n"
    "AZURE_OPENAI_AD_TOKEN, OPENAI_API_VERSION. Azure OpenAI with neither uses an Entra ID\n"
    "token from the credential chain (see `skyio token --help`), for the endpoint's cloud.\n"
    "exit: 0 every answer complete; 1 some failed; 2 usage; 3 configuration, or the endpoint\n"
    "cannot be reached.\n";

typedef struct chat_run chat_run;

typedef struct answer {
    chat_run *run;
    const char *model;
    sky_sse_parser parser;
    sky_buf text; /* the answer (printed at the end when several models run) */
    sky_buf raw;  /* the body as received, for an error reply's message */
    int status, saw_done, done, failed;
    int64_t prompt_tokens, completion_tokens;
    char finish_reason[32]; /* the last one the stream gave */
    char stream_error[400]; /* an error the provider sent inside the stream */
    char error[512];
    sky_error unreached; /* the failure, when the endpoint was never reached (code 0: not) */
    sky_retry_state retry;
    uv_timer_t retry_timer; /* the wait before the next attempt */
    int timer_open;
} answer;

struct chat_run {
    sky_loop *loop;
    sky_http_client *client;
    sky_ai_endpoint ep;
    const char *models_arg;
    char *models_buf;
    answer answers[MAX_MODELS];
    int n_answers, finished;
    const char *system;
    double temperature;
    int has_temperature;
    long long max_tokens;
    int max_completion_tokens; /* send max_tokens under its new name */
    long timeout_ms;
    long long max_retries;
    const char *base_url;
    const char *cacert;
    int prefer_azure, show_usage;
    char *prompt;
    sky_credential *cred; /* Azure OpenAI without a key: Entra ID */
    char *bearer;
    int exit_code;
    uint64_t answered; /* attempts the endpoint answered, any status */
};

/* ---- the prompt ---- */

static char *read_stdin(void)
{
    sky_buf b;
    char chunk[4096];
    size_t n;
    sky_buf_init(&b, 16u * 1024u * 1024u);
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (sky_buf_append(&b, chunk, n) < 0) {
            sky_buf_free(&b);
            return NULL;
        }
    while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = '\0';
    return sky_buf_detach(&b, NULL);
}

static char *join_args(int argc, char **argv, int first)
{
    sky_buf b;
    sky_buf_init(&b, 16u * 1024u * 1024u);
    for (int i = first; i < argc; i++)
        if ((i > first && sky_buf_append(&b, " ", 1) < 0) || sky_buf_append_str(&b, argv[i]) < 0) {
            sky_buf_free(&b);
            return NULL;
        }
    return sky_buf_detach(&b, NULL);
}

/* ---- arguments ---- */

static int value_opt(chat_run *r, const char *a, const char *v)
{
    long long n;
    double d;
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        r->models_arg = v;
    else if (!strcmp(a, "-s") || !strcmp(a, "--system"))
        r->system = v;
    else if (!strcmp(a, "-t") || !strcmp(a, "--temperature")) {
        if (sky_cli_parse_double(v, &d) < 0 || d < 0 || d > 2)
            return fprintf(stderr, "skyio chat: --temperature is a number from 0 to 2\n"), -1;
        r->temperature = d;
        r->has_temperature = 1;
    } else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens") ||
               !strcmp(a, "--max-completion-tokens")) {
        if (sky_cli_parse_long(v, &n) < 0 || n < 1)
            return fprintf(stderr, "skyio chat: %s is a whole number >= 1\n", a), -1;
        r->max_tokens = n;
        r->max_completion_tokens = !strcmp(a, "--max-completion-tokens");
    } else if (!strcmp(a, "--timeout-ms")) {
        if (sky_cli_parse_long(v, &n) < 0 || n < 1)
            return fprintf(stderr, "skyio chat: --timeout-ms is a whole number >= 1\n"), -1;
        r->timeout_ms = (long)n;
    } else if (!strcmp(a, "--max-retries")) {
        if (sky_cli_parse_long(v, &n) < 0 || n < 0 || n > 100)
            return fprintf(stderr, "skyio chat: --max-retries is a whole number from 0 to 100\n"),
                   -1;
        r->max_retries = n;
    } else if (!strcmp(a, "--base-url"))
        r->base_url = v;
    else if (!strcmp(a, "--cacert"))
        r->cacert = v;
    else
        return 1;
    return 0;
}

/* Returns the index of the first prompt word, argc when none, -1 usage, -2 help. */
static int parse_args(chat_run *r, int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return -2;
        if (!strcmp(a, "--"))
            return i + 1;
        if (a[0] != '-' || !strcmp(a, "-"))
            return i;
        if (!strcmp(a, "--azure")) {
            r->prefer_azure = 1;
            continue;
        }
        if (!strcmp(a, "--usage")) {
            r->show_usage = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "skyio chat: %s needs a value\n", a);
            return -1;
        }
        int rc = value_opt(r, a, argv[i + 1]);
        if (rc == 1)
            fprintf(stderr, "skyio chat: unknown option '%s' (see skyio chat --help)\n", a);
        if (rc != 0)
            return -1;
        i++;
    }
    return i;
}

static int split_models(chat_run *r)
{
    r->models_buf = strdup(r->models_arg ? r->models_arg : "gpt-4o-mini");
    if (r->models_buf == NULL)
        return -1;
    for (char *save = NULL, *m = strtok_r(r->models_buf, ",", &save); m;
         m = strtok_r(NULL, ",", &save)) {
        if (r->n_answers == MAX_MODELS) {
            fprintf(stderr, "skyio chat: at most %d models at once\n", MAX_MODELS);
            return -1;
        }
        answer *a = &r->answers[r->n_answers++];
        a->model = m;
        a->prompt_tokens = a->completion_tokens = -1; /* until a usage chunk says */
    }
    if (r->n_answers == 0) {
        fprintf(stderr, "skyio chat: --model names no model\n");
        return -1;
    }
    return 0;
}

/* ---- one request per model ---- */

static int on_delta(void *ud, const sky_ai_delta *d)
{
    answer *a = ud;
    if (d->content && d->content[0]) {
        if (a->run->n_answers == 1) {
            fputs(d->content, stdout);
            fflush(stdout);
        }
        if (sky_buf_append_str(&a->text, d->content) < 0)
            return SKY_ENOMEM;
    }
    if (d->finish_reason)
        snprintf(a->finish_reason, sizeof(a->finish_reason), "%s", d->finish_reason);
    if (d->error && a->stream_error[0] == '\0')
        snprintf(a->stream_error, sizeof(a->stream_error), "%s", d->error);
    if (d->prompt_tokens >= 0)
        a->prompt_tokens = d->prompt_tokens;
    if (d->completion_tokens >= 0)
        a->completion_tokens = d->completion_tokens;
    return 0;
}

static int on_event(void *ud, const sky_sse_event *ev)
{
    answer *a = ud;
    if (ev->is_done) {
        a->saw_done = 1;
        return 0;
    }
    int rc = sky_ai_parse_chunk(ev->data, on_delta, a);
    /* "event: error" whose data is not an error chunk: its text is the message */
    if (sky_span_eq_cstr(ev->event, "error") && a->stream_error[0] == '\0')
        snprintf(a->stream_error, sizeof(a->stream_error), "%.*s",
                 (int)(ev->data.len < 300 ? ev->data.len : 300), ev->data.ptr ? ev->data.ptr : "");
    return rc == SKY_ENOMEM;
}

static int on_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    answer *a = ud;
    (void)req;
    /* keep the start of the body: an error reply's message is in it */
    size_t room = a->raw.cap - a->raw.len;
    if (sky_buf_append(&a->raw, data, len < room ? len : room) < 0)
        return 1;
    int rc = sky_sse_parser_feed(&a->parser, data, len);
    return rc < 0 && rc != SKY_ECANCELED;
}

/* The provider's own message, from an error reply's JSON. */
static void describe_http_error(answer *a, int status)
{
    json_t *j = NULL;
    const char *msg = NULL;
    if (sky_json_parse(sky_buf_span(&a->raw), &j, NULL) == 0)
        msg = json_string_value(sky_json_path(j, "error.message"));
    snprintf(a->error, sizeof(a->error), "HTTP %d%s%s", status, msg ? ": " : "", msg ? msg : "");
    json_decref(j);
}

static int send_one(chat_run *r, answer *a);

/*
 * A failure to connect, resolve or shake hands with an endpoint that has never answered:
 * the URL, the host or the certificates are wrong, and no wait mends that.
 */
static int never_reached(const chat_run *r, const sky_error *err)
{
    return err && r->answered == 0 &&
           (err->code == SKY_ECONNECT || err->code == SKY_ERESOLVE || err->code == SKY_ETLS);
}

static void on_retry_timer(uv_timer_t *t)
{
    answer *a = t->data;
    (void)send_one(a->run, a); /* a failure to send is recorded there */
}

/*
 * A stream that failed before its first token can be asked again: nothing was shown, and
 * what failed (a 429, a 5xx, a reset) was not an answer. Once tokens are on the screen, a
 * failure is reported instead. Returns 1 when another attempt is on its way.
 */
static int retry_later(answer *a, const sky_http_response *res, const sky_error *err)
{
    sky_retry_options o;
    sky_retry_decision d;
    if (a->text.len > 0 || !a->timer_open)
        return 0;
    sky_retry_options_init(&o);
    o.max_retries = (int)a->run->max_retries;
    o.openai_statuses = 1;
    int status = err ? 0 : res->status;
    if (!err && sky_pipeline_quota_exhausted(status, sky_buf_span(&a->raw)))
        return 0; /* no credit left: no wait mends it */
    if (sky_retry_decide(&o, &a->retry, status, err, err ? NULL : res->headers, NULL, 0, NULL, NULL,
                         &d) < 0 ||
        d.action != SKY_RETRY_YES)
        return 0;
    SKY_INFO("chat", "%s: %s", a->model, d.reason);
    sky_buf_reset(&a->raw);
    sky_sse_parser_free(&a->parser);
    sky_sse_parser_init(&a->parser, 0, on_event, a);
    a->saw_done = 0;
    a->finish_reason[0] = a->stream_error[0] = '\0';
    uv_timer_start(&a->retry_timer, on_retry_timer, d.delay_ms, 0);
    return 1;
}

static void on_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                    void *ud)
{
    answer *a = ud;
    (void)req;
    int failed = err || res->status != 200 || !a->saw_done;
    if (res->status > 0)
        a->run->answered++;
    if (never_reached(a->run, err))
        a->unreached = *err; /* not retried: see never_reached */
    else if (failed && !(err && err->code == SKY_ECANCELED) && retry_later(a, res, err))
        return;
    a->done = 1;
    a->status = res->status;
    a->run->finished++;
    if (err) {
        a->failed = 1;
        sky_error_format(err, a->error, sizeof(a->error));
    } else if (res->status != 200) {
        a->failed = 1;
        describe_http_error(a, res->status);
    } else if (a->stream_error[0]) {
        a->failed = 1;
        snprintf(a->error, sizeof(a->error), "the provider stopped the stream with an error: %s",
                 a->stream_error);
    } else if (!a->saw_done) {
        a->failed = 1;
        snprintf(a->error, sizeof(a->error), "the stream ended before [DONE]: the answer is cut");
    } else if (strcmp(a->finish_reason, "content_filter") == 0) {
        a->failed = 1;
        snprintf(a->error, sizeof(a->error),
                 "the provider's content filter stopped the answer (finish_reason "
                 "content_filter): what is shown is not all of it");
    }
}

static char *request_body(const chat_run *r, const char *model)
{
    json_t *msgs = json_array();
    if (r->system)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", r->system));
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", r->prompt));
    json_t *body = json_pack("{s:s,s:o,s:b}", "model", model, "messages", msgs, "stream", 1);
    /* only when asked: Azure api-versions before 2024-10-21 refuse stream_options (400) */
    if (body && r->show_usage)
        json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (body && r->has_temperature)
        json_object_set_new(body, "temperature", json_real(r->temperature));
    if (body && r->max_tokens > 0)
        json_object_set_new(body, r->max_completion_tokens ? "max_completion_tokens" : "max_tokens",
                            json_integer((json_int_t)r->max_tokens));
    char *text = body ? sky_json_dump(body, NULL) : NULL;
    json_decref(body);
    return text;
}

/* Send (or send again) the request of @p a. */
static int send_one(chat_run *r, answer *a)
{
    sky_http_request_options o;
    sky_buf url;
    sky_error err;
    int rc;
    sky_buf_init(&url, 8192);
    sky_headers *h = sky_headers_new();
    char *body = request_body(r, a->model);
    rc = (h && body) ? 0 : SKY_ENOMEM;
    if (rc == 0)
        rc = sky_ai_url(&r->ep, "/v1/chat/completions", a->model, &url);
    if (rc == 0)
        rc = sky_ai_auth_headers(&r->ep, h);
    if (rc == 0 && r->bearer) {
        sky_buf v;
        sky_buf_init(&v, 65536);
        rc = sky_buf_printf(&v, "Bearer %s", r->bearer);
        rc = rc ? rc : sky_headers_add(h, SKY_SPAN_LIT("Authorization"), sky_buf_span(&v));
        if (v.data)
            memset(v.data, 0, v.len);
        sky_buf_free(&v);
    }
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-Type"), SKY_SPAN_LIT("application/json"));
    if (rc == 0) {
        sky_http_request_options_init(&o);
        sky_error_clear(&err);
        o.method = "POST";
        o.url = url.data;
        o.headers = h;
        o.body = sky_span_cstr(body);
        o.timeout_ms = r->timeout_ms;
        o.on_body = on_body;
        o.on_done = on_done;
        o.user_data = a;
        rc = sky_http_request_send(r->client, &o, NULL, &err);
    }
    if (rc < 0) {
        a->failed = a->done = 1;
        r->finished++;
        snprintf(a->error, sizeof(a->error), "could not start: %s", sky_strerror(rc));
    }
    sky_headers_free(h);
    free(body);
    sky_buf_free(&url);
    return rc;
}

static int start_one(chat_run *r, answer *a)
{
    a->run = r;
    sky_buf_init(&a->text, 64u * 1024u * 1024u);
    sky_buf_init(&a->raw, 65536);
    sky_sse_parser_init(&a->parser, 0, on_event, a);
    sky_retry_state_init(&a->retry);
    a->timer_open = uv_timer_init(sky_loop_uv(r->loop), &a->retry_timer) == 0;
    a->retry_timer.data = a;
    return send_one(r, a);
}

/* ---- output ---- */

static int report(const chat_run *r)
{
    int failed = 0;
    for (int i = 0; i < r->n_answers; i++) {
        const answer *a = &r->answers[i];
        failed += a->failed;
        if (r->n_answers == 1) {
            fputc('\n', stdout);
            fflush(stdout); /* the answer's line ends before anything on stderr */
            if (a->failed)
                fprintf(stderr, "skyio chat: %s: %s\n", a->model, a->error);
        } else {
            printf("== %s%s ==\n%s\n", a->model, a->failed ? " (failed)" : "",
                   a->failed ? a->error : (a->text.data ? a->text.data : ""));
            if (i + 1 < r->n_answers)
                fputc('\n', stdout);
        }
        fflush(stdout);
        if (!a->failed && strcmp(a->finish_reason, "length") == 0)
            fprintf(stderr, "skyio chat: %s: the answer reached the token limit and stops there\n",
                    a->model);
        if (r->show_usage && !a->failed && a->prompt_tokens >= 0)
            fprintf(stderr, "%s: prompt %lld tokens, completion %lld tokens\n", a->model,
                    (long long)a->prompt_tokens, (long long)a->completion_tokens);
        else if (r->show_usage && !a->failed)
            fprintf(stderr, "%s: the provider reported no token usage\n", a->model);
    }
    return failed ? SKY_EXIT_FAILED : SKY_EXIT_OK;
}

/* Every answer failed the same way before anything answered: say it once, exit 3. */
static int report_unreached(const chat_run *r)
{
    char line[512];
    if (r->answered > 0)
        return 0;
    for (int i = 0; i < r->n_answers; i++)
        if (r->answers[i].unreached.code == 0)
            return 0;
    fprintf(stderr,
            "skyio chat: cannot reach the endpoint: %s\n"
            "skyio chat: nothing was sent. Check --base-url (or OPENAI_BASE_URL, "
            "AZURE_OPENAI_ENDPOINT), the network or --cacert, and run again.\n",
            sky_error_format(&r->answers[0].unreached, line, sizeof(line)));
    return 1;
}

static void run_free(chat_run *r)
{
    for (int i = 0; i < r->n_answers; i++) {
        if (r->answers[i].timer_open)
            uv_close((uv_handle_t *)&r->answers[i].retry_timer, NULL);
        sky_buf_free(&r->answers[i].text);
        sky_buf_free(&r->answers[i].raw);
        sky_sse_parser_free(&r->answers[i].parser);
    }
    sky_credential_free(r->cred);
    if (r->bearer) {
        memset(r->bearer, 0, strlen(r->bearer));
        free(r->bearer);
    }
    sky_http_client_free(r->client);
    if (r->loop) {
        sky_loop_run(r->loop);
        sky_loop_free(r->loop);
    }
    sky_ai_endpoint_free(&r->ep);
    free(r->models_buf);
    free(r->prompt);
    free(r);
}

static int configure(chat_run *r)
{
    sky_error err;
    sky_http_client_options co;
    sky_error_clear(&err);
    int rc = r->base_url ? sky_ai_endpoint_set(&r->ep, SKY_AI_OPENAI, r->base_url,
                                               getenv("OPENAI_API_KEY"), NULL)
                         : sky_ai_endpoint_from_env_entra(&r->ep, r->prefer_azure, &err);
    if (rc == 0 && r->base_url)
        rc = sky_ai_endpoint_read_org_env(&r->ep);
    if (rc < 0) {
        fprintf(stderr, "skyio chat: %s\n", err.code ? err.message : sky_strerror(rc));
        return -1;
    }
    r->loop = sky_loop_new();
    sky_http_client_options_init(&co);
    co.ca_file = r->cacert;
    if (r->loop == NULL || sky_http_client_new(sky_loop_uv(r->loop), &co, &r->client) < 0) {
        fprintf(stderr, "skyio chat: cannot start the HTTP client\n");
        return -1;
    }
    return 0;
}

static void on_entra_token(sky_token_request *req, const sky_access_token *tok,
                           const sky_error *err, void *ud)
{
    chat_run *r = ud;
    (void)req;
    if (tok == NULL || (r->bearer = strdup(tok->token)) == NULL) {
        fprintf(stderr,
                "skyio chat: no Entra ID token for Azure OpenAI (set AZURE_OPENAI_API_KEY "
                "or sign in): %s\n",
                err ? err->message : "out of memory");
        r->exit_code = SKY_EXIT_START;
        return;
    }
    for (int i = 0; i < r->n_answers; i++)
        (void)start_one(r, &r->answers[i]);
}

/* Every answer at once; Azure OpenAI without a key first gets an Entra ID token. */
static int start_all(chat_run *r)
{
    sky_error err;
    sky_error_clear(&err);
    if (r->ep.use_entra_id) {
        if (sky_credential_default_new(sky_loop_uv(r->loop), r->client, NULL, &r->cred, &err) < 0 ||
            sky_credential_get_token(r->cred, sky_ai_entra_scope(&r->ep), on_entra_token, r, NULL,
                                     &err) < 0) {
            fprintf(stderr, "skyio chat: %s\n", err.message);
            return -1;
        }
        return 0;
    }
    for (int i = 0; i < r->n_answers; i++)
        (void)start_one(r, &r->answers[i]);
    return 0;
}

int sky_cli_chat(int argc, char **argv)
{
    chat_run *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return SKY_EXIT_START;
    r->timeout_ms = 600000;
    r->max_retries = 5;
    int first = parse_args(r, argc, argv);
    if (first < 0 || split_models(r) < 0) {
        if (first == -2)
            fputs(usage, stdout);
        run_free(r);
        return first == -2 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    }
    int from_stdin = first >= argc || (first == argc - 1 && !strcmp(argv[first], "-"));
    r->prompt = from_stdin ? read_stdin() : join_args(argc, argv, first);
    if (r->prompt == NULL || r->prompt[0] == '\0') {
        fprintf(stderr, "skyio chat: no prompt (give it as arguments or on standard input)\n");
        run_free(r);
        return SKY_EXIT_USAGE;
    }
    if (configure(r) < 0 || start_all(r) < 0) {
        run_free(r);
        return SKY_EXIT_START;
    }
    sky_loop_run(r->loop);
    int code = r->exit_code ? r->exit_code : report_unreached(r) ? SKY_EXIT_START : report(r);
    run_free(r);
    return code;
}
