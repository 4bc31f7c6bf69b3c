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

typedef struct answer {
    const char *model;
    char *text; /* the answer (printed at the end when several models run) */
    int done, failed;
    int64_t prompt_tokens, completion_tokens;
    char finish_reason[32];
    char error[512];
    sky_error unreached; /* the failure, when the endpoint was never reached (code 0: not) */
} answer;

typedef struct chat_run {
    sky_loop *loop;
    sky_http_client *client;
    sky_ai_client *ai;
    sky_ai_endpoint ep;
    const char *models_arg;
    char *models_buf;
    const char *models[MAX_MODELS];
    answer answers[MAX_MODELS];
    int n_answers;
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
    int exit_code;
} chat_run;

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
        r->models[r->n_answers] = m;
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

/* ---- one answer per model, through the AI client ---- */

static int on_delta(sky_ai_request *req, size_t index, const sky_ai_delta *d, void *ud)
{
    chat_run *r = ud;
    (void)req;
    (void)index;
    if (r->n_answers == 1 && d->content && d->content[0]) {
        fputs(d->content, stdout);
        fflush(stdout);
    }
    return 0;
}

/* The provider's words for what the client read from it; the error's name for the rest. */
static void describe(answer *a, const sky_error *err)
{
    if (err->code == SKY_EHTTP || err->code == SKY_EPARTIAL)
        snprintf(a->error, sizeof(a->error), "%s", err->message);
    else
        sky_error_format(err, a->error, sizeof(a->error));
}

static void on_answer(sky_ai_request *req, const sky_ai_chat_result *res, const sky_error *err,
                      void *ud)
{
    chat_run *r = ud;
    answer *a = &r->answers[res->index];
    (void)req;
    a->done = 1;
    a->text = strdup(res->content);
    a->prompt_tokens = res->prompt_tokens;
    a->completion_tokens = res->completion_tokens;
    snprintf(a->finish_reason, sizeof(a->finish_reason), "%s",
             res->finish_reason ? res->finish_reason : "");
    if (sky_ai_client_unreachable(r->ai, err)) /* nothing of it ever answered */
        a->unreached = *err;
    if (err) {
        a->failed = 1;
        describe(a, err);
    }
}

/* temperature and the token limit, under the name the model wants */
static json_t *chat_params(const chat_run *r)
{
    json_t *params = json_object();
    if (params && r->has_temperature)
        json_object_set_new(params, "temperature", json_real(r->temperature));
    if (params && r->max_tokens > 0)
        json_object_set_new(params,
                            r->max_completion_tokens ? "max_completion_tokens" : "max_tokens",
                            json_integer((json_int_t)r->max_tokens));
    return params;
}

/* The prompt to every model at once. */
static int start_chat(chat_run *r)
{
    sky_ai_chat_options o;
    sky_error err;
    sky_error_clear(&err);
    sky_ai_chat_options_init(&o);
    o.models = r->models;
    o.n_models = (size_t)r->n_answers;
    o.system = r->system;
    o.prompt = r->prompt;
    json_t *params = chat_params(r);
    o.params = params;
    o.stream = 1;
    o.include_usage = r->show_usage;
    o.on_delta = on_delta;
    o.on_done = on_answer;
    o.user_data = r;
    int rc = params ? sky_ai_chat_start(r->ai, &o, NULL, &err) : SKY_ENOMEM;
    json_decref(params);
    if (rc < 0) {
        fprintf(stderr, "skyio chat: could not start: %s\n",
                err.code ? err.message : sky_strerror(rc));
        r->exit_code = SKY_EXIT_START;
    }
    return rc;
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
                   a->failed ? a->error : (a->text ? a->text : ""));
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
    if (r->ai == NULL)
        return 0;
    for (int i = 0; i < r->n_answers; i++) /* and nothing answered since */
        if (!sky_ai_client_unreachable(r->ai, &r->answers[i].unreached))
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
    for (int i = 0; i < r->n_answers; i++)
        free(r->answers[i].text);
    sky_ai_client_free(r->ai);
    sky_credential_free(r->cred);
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
    if (sky_ai_endpoint_resolve(&r->ep, r->base_url, r->prefer_azure, &err) < 0) {
        fprintf(stderr, "skyio chat: %s\n", err.message);
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

/* The AI client: its pipeline retries, paces and refreshes the token of every attempt. */
static int make_client(chat_run *r)
{
    sky_ai_client_options o;
    sky_error err;
    sky_error_clear(&err);
    sky_ai_client_options_init(&o);
    o.endpoint = &r->ep;
    o.pipeline.attempt_timeout_ms = r->timeout_ms;
    o.pipeline.retry.max_retries = (int)r->max_retries;
    o.pipeline.fail_unreached = 1; /* a wrong address is said at once, not retried */
    o.pipeline.credential = r->cred;
    if (sky_ai_client_new(sky_loop_uv(r->loop), r->client, &o, &r->ai, &err) < 0) {
        fprintf(stderr, "skyio chat: %s\n", err.message);
        r->exit_code = SKY_EXIT_START;
        return -1;
    }
    return 0;
}

/* The token is asked for first, so a sign-in problem is said once, as a configuration error. */
static void on_first_token(sky_ai_client *ai, const sky_error *err, void *ud)
{
    chat_run *r = ud;
    (void)ai;
    if (err) {
        fprintf(stderr,
                "skyio chat: no Entra ID token for Azure OpenAI (set AZURE_OPENAI_API_KEY "
                "or sign in): %s\n",
                err->message);
        r->exit_code = SKY_EXIT_START;
        return;
    }
    (void)start_chat(r);
}

/* Every answer at once; Azure OpenAI without a key first gets an Entra ID token. */
static int start_all(chat_run *r)
{
    sky_error err;
    sky_error_clear(&err);
    if (r->ep.use_entra_id &&
        sky_credential_default_new(sky_loop_uv(r->loop), r->client, NULL, &r->cred, &err) < 0) {
        fprintf(stderr, "skyio chat: %s\n", err.message);
        return -1;
    }
    if (make_client(r) < 0)
        return -1;
    if (r->cred == NULL)
        return start_chat(r) < 0 ? -1 : 0;
    if (sky_ai_client_first_token(r->ai, on_first_token, r, &err) < 0) {
        fprintf(stderr, "skyio chat: %s\n", err.message);
        return -1;
    }
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
