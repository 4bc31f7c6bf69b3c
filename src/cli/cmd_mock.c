/* `skyio mock`: flags and config file in, a running simulator out. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/skyio.h"
#include "cli.h"
#include "mock/mock.h"

enum opt_kind { OPT_DOUBLE, OPT_INT64, OPT_INT, OPT_SIZE, OPT_U64, OPT_FLAG, OPT_STRING };

typedef struct mock_opt {
    const char *flag;
    enum opt_kind kind;
    size_t offset; /* into sky_mock_config */
    const char *arg;
    const char *help;
} mock_opt;

#define CFG(field) offsetof(sky_mock_config, field)

/* Every knob, once: parsing and --help both read this table. */
static const mock_opt opts[] = {
    {"--host", OPT_STRING, CFG(host), "ADDR", "address to listen on (default 127.0.0.1)"},
    {"--port", OPT_INT, CFG(port), "N", "port; 0 picks a free one (default 0)"},
    {"--tls-cert", OPT_STRING, CFG(tls_cert_file), "FILE",
     "serve HTTPS (and HTTP/2 through ALPN) with this PEM certificate chain"},
    {"--tls-key", OPT_STRING, CFG(tls_key_file), "FILE", "the private key for --tls-cert"},
    {"--ttft-ms", OPT_DOUBLE, CFG(ttft_ms), "MS", "time to first token (default 0)"},
    {"--per-token-ms", OPT_DOUBLE, CFG(per_token_ms), "MS",
     "time per output token: a streamed reply arrives token by token (default 0)"},
    {"--jitter", OPT_DOUBLE, CFG(jitter), "F",
     "latency varies by up to +-F of itself, 0..1 (default 0.1)"},
    {"--rpm", OPT_INT64, CFG(rpm), "N", "requests per minute; 0 means unlimited (default 0)"},
    {"--tpm", OPT_INT64, CFG(tpm), "N",
     "tokens per minute, charged up front as prompt estimate + max_tokens (default 0)"},
    {"--window-ms", OPT_INT64, CFG(window_ms), "MS",
     "limits are enforced per window of this length: RPM*MS/60000 requests per window, "
     "like Azure OpenAI's one-second windows (default 1000)"},
    {"--hide-ratelimit-headers", OPT_FLAG, CFG(hide_ratelimit_headers), NULL,
     "send no x-ratelimit-*, retry-after or retry-after-ms headers"},
    {"--completion-tokens", OPT_INT, CFG(default_completion_tokens), "N",
     "reply length when the request sets no max_tokens (default 16)"},
    {"--reply-median-tokens", OPT_INT, CFG(reply_median_tokens), "N",
     "with max_tokens, a reply's natural length is drawn log-normal around N tokens and the "
     "limit cuts it (finish_reason \"length\"); most replies end \"stop\" before it. 0: every "
     "reply uses its whole max_tokens (default 200)"},
    {"--reply-min-tokens", OPT_INT, CFG(reply_min_tokens), "N",
     "no natural reply is shorter than N tokens, unless max_tokens is (default 64)"},
    {"--embedding-dim", OPT_INT, CFG(embedding_dim), "N",
     "embedding size when the request sets no dimensions (default 1536)"},
    {"--max-body", OPT_SIZE, CFG(max_body), "BYTES",
     "larger request bodies get 413 (default 8 MiB)"},
    {"--refuse-status", OPT_INT, CFG(refuse_status), "CODE",
     "refuse every model call (chat, embeddings, ...) with this status, as for a whole account "
     "(403: no role; 429: no credit); 0: serve them (default 0)"},
    {"--refuse-code", OPT_STRING, CFG(refuse_code), "CODE",
     "their error code (default PermissionDenied for 403, insufficient_quota for 429)"},
    {"--fault-500", OPT_DOUBLE, CFG(faults.http_500), "P", "rate of 500 replies with error JSON"},
    {"--fault-502", OPT_DOUBLE, CFG(faults.http_502), "P", "rate of 502 replies"},
    {"--fault-503", OPT_DOUBLE, CFG(faults.http_503), "P", "rate of 503 replies"},
    {"--fault-reset", OPT_DOUBLE, CFG(faults.reset), "P",
     "rate of connections reset before any reply"},
    {"--fault-hang", OPT_DOUBLE, CFG(faults.hang), "P",
     "rate of requests never answered (the client's timeout must act)"},
    {"--fault-cut", OPT_DOUBLE, CFG(faults.cut), "P",
     "rate of bodies announced in full and cut short half-way"},
    {"--fault-malformed", OPT_DOUBLE, CFG(faults.malformed), "P",
     "rate of 200 replies whose body is not valid JSON"},
    {"--fault-stream-cut", OPT_DOUBLE, CFG(faults.stream_cut), "P",
     "rate of streams that end before data: [DONE]"},
    {"--fault-stream-error", OPT_DOUBLE, CFG(faults.stream_error), "P",
     "rate of streams that send an error chunk half-way and end there"},
    {"--fault-content-filter", OPT_DOUBLE, CFG(faults.content_filter), "P",
     "rate of streams the content filter stops half-way (finish_reason content_filter)"},
    {"--capacity", OPT_INT, CFG(capacity), "N",
     "serve N model calls at once (per thread), as an inference server does; the rest wait "
     "in line and their latency includes the wait; 0: no limit (default 0)"},
    {"--overload-rps", OPT_DOUBLE, CFG(overload_rps), "R",
     "above R model calls a second (plus a burst), answer --overload-status at once, as "
     "nginx's limit_req does; 0: never (default 0)"},
    {"--overload-burst", OPT_INT, CFG(overload_burst), "N",
     "calls over the rate that still pass in a burst (default 5)"},
    {"--overload-status", OPT_INT, CFG(overload_status), "CODE",
     "503 (nginx's HTML page) or 529 (an overloaded_error JSON) (default 503)"},
    {"--poison", OPT_DOUBLE, CFG(poison), "P",
     "fraction of distinct request bodies answered 500 every time, retries or not (default 0)"},
    {"--seed", OPT_U64, CFG(seed), "N", "seed of the fault and jitter generator (default 1)"},
    {"--threads", OPT_INT, CFG(threads), "N",
     "serve from N threads, each with its own loop, on the one port (default 1)"},
    {"--arm-polls", OPT_INT, CFG(arm.polls), "N",
     "ARM: InProgress polls before an operation ends (default 2)"},
    {"--arm-retry-after", OPT_INT, CFG(arm.retry_after_s), "S",
     "ARM: Retry-After seconds on operations and polls (default 0)"},
    {"--arm-style", OPT_STRING, CFG(arm.style), "STYLE",
     "ARM: async, location or state polling (default async)"},
    {"--arm-page-size", OPT_INT, CFG(arm.page_size), "N",
     "ARM: items per list page before a nextLink (default 100)"},
    {"--arm-throttle-every", OPT_INT, CFG(arm.throttle_every), "N",
     "ARM: every Nth ARM request gets 429; 0: never (default 0)"},
    {"--arm-throttle-retry-after", OPT_INT, CFG(arm.throttle_retry_after_s), "S",
     "ARM: Retry-After seconds of those 429s (default 0)"},
    {"--identity-client-id", OPT_STRING, CFG(identity.client_id), "ID",
     "identity: the only client_id the token endpoint accepts (default: any)"},
    {"--identity-client-secret", OPT_STRING, CFG(identity.client_secret), "SECRET",
     "identity: the only client_secret accepted (default: any non-empty one)"},
    {"--identity-header", OPT_STRING, CFG(identity.identity_header), "VALUE",
     "identity: the X-IDENTITY-HEADER /msi/token wants (default mock-identity-header)"},
    {"--identity-expires-in", OPT_INT, CFG(identity.expires_in), "S",
     "identity: lifetime of issued tokens in seconds (default 3600)"},
    {"--identity-fail-status", OPT_INT, CFG(identity.fail_status), "CODE",
     "identity: answer token requests with this HTTP status and an AADSTS error (default 0)"},
    {"--identity-fail-count", OPT_INT, CFG(identity.fail_count), "N",
     "identity: only the first N token requests fail; 0: all (default 0)"},
    {"--identity-delay-ms", OPT_INT, CFG(identity.delay_ms), "MS",
     "identity: wait before each token reply (default 0)"},
};

/* In parts: C99 promises string literals of 4095 bytes only. */
static const char *const usage_head[] = {
    "usage: skyio mock [options]\n"
    "\n"
    "A local OpenAI- and Azure-OpenAI-compatible server for tests, benchmarks and offline\n"
    "demos. It prints \"listening URL\" on stdout once ready, and stops on SIGINT/SIGTERM\n"
    "after the requests in flight are answered.\n"
    "\n"
    "endpoints (a trailing slash on any path answers as without):\n"
    "  POST /v1/chat/completions            chat; \"stream\": true streams SSE chunks, token\n"
    "                                       by token, the \"n\" choices side by side;\n"
    "                                       response_format json_object or json_schema answers\n"
    "                                       JSON (the schema's types, properties, enums,\n"
    "                                       bounds, formats, common patterns); tool_choice\n"
    "                                       \"required\" or a named function answers a tool\n"
    "                                       call whose arguments fit its parameters, \"auto\"\n"
    "                                       prose or a call (the body decides, the same each\n"
    "                                       time)\n"
    "  POST /v1/embeddings                  embeddings of \"input\" (string or array);\n"
    "                                       encoding_format \"base64\" (the SDKs' default) or\n"
    "                                       \"float\"\n"
    "  POST /v1/responses                   the Responses API; \"stream\": true sends its typed\n"
    "                                       events; Azure's /openai/v1/responses and\n"
    "                                       /openai/responses?api-version=... too\n"
    "  POST /v1/completions                 legacy completions of \"prompt\", streamed too\n"
    "  POST /v1/moderations                 one result per input, nothing flagged\n"
    "                                       (with chat and embeddings: every url a batch\n"
    "                                       file may name; a token limit in the request\n"
    "                                       cuts the reply, see --reply-median-tokens)\n"
    "  GET  /v1/models                      the models of --model (or a few known names);\n"
    "                                       Azure's /openai/models too\n"
    "  GET  /v1/models/{id}                 one model; 404 model_not_found for a name\n"
    "                                       --model does not list\n",
    "  POST /openai/deployments/{deployment}/chat/completions?api-version=...   (Azure)\n"
    "  POST /openai/deployments/{deployment}/embeddings?api-version=...         (Azure)\n"
    "  POST /openai/deployments/{deployment}/completions?api-version=...        (Azure)\n"
    "                                       (like OpenAI, these POSTs want Content-Type:\n"
    "                                       application/json; any other is a 400\n"
    "                                       unsupported_content_type). Azure replies carry\n"
    "                                       content_filter_results; its streams open with a\n"
    "                                       chunk of no choices and prompt_filter_results\n"
    "  GET  /mock/stats                     what the mock received and answered, as JSON\n"
    "  POST /mock/reset                     zero the statistics and the rate-limit window\n",
    "  /subscriptions/...?api-version=...   Azure Resource Manager: resource groups (HEAD\n"
    "                                       for checkExistence), any resource, a\n"
    "                                       subscription's resources; virtual machines with\n"
    "                                       their required fields, instanceView and power\n"
    "                                       actions (powerOff, deallocate, start, restart);\n"
    "                                       PUT, DELETE and POST actions are long-running\n"
    "                                       operations; paged lists; any Bearer token. Links\n"
    "                                       use the scheme served and the Host the client\n"
    "                                       sent. Tags on a resource steer it:\n"
    "                                       skyio-mock-fail=CODE, skyio-mock-cancel=1,\n"
    "                                       skyio-mock-polls=N, skyio-mock-style=STYLE.\n"
    "                                       ARM state is shared by all threads (one lock).\n"
    "  POST /{tenant}/oauth2/v2.0/token     Entra ID client credentials (client_secret or a\n"
    "                                       jwt-bearer client_assertion); tokens mock-token-N\n"
    "  GET  /{tenant}/v2.0/.well-known/openid-configuration, /common/discovery/instance\n"
    "                                       what MSAL reads first (endpoints on the mock)\n"
    "  GET  /metadata/identity/oauth2/token IMDS managed identity (needs Metadata: true)\n"
    "  GET  /msi/token                      App Service managed identity (IDENTITY_ENDPOINT;\n"
    "                                       needs X-IDENTITY-HEADER); counts in /mock/stats\n"
    "                                       under \"identity\"\n"
    "\n",
    "rate limits: --rpm and --tpm are enforced over short windows (--window-ms), as Azure\n"
    "does; the x-ratelimit-* headers tell of the last minute, as the providers' do.\n"
    "\n"
    "known gaps (docs/mock.md): replies are generated words, not answers, and never a\n"
    "refusal; tool_choice \"auto\" is decided by the body's hash, not its meaning, with one\n"
    "call per choice; JSON Schema: a \"pattern\" with lookaround, backreferences, \\b, \\p,\n"
    "\\u or anchors inside a group gets words that may not match it; formats other than\n"
    "date-time, date, time, email, uri and uuid, multipleOf, exclusive bounds, uniqueItems,\n"
    "allOf/not/if are not followed; anyOf takes its first non-null option; ARM serves no\n"
    "provider's rules beyond virtual machines' required fields (no Microsoft.Network: a\n"
    "VM's network interface is taken on trust), no deployments, locks or RBAC; MSAL's\n"
    "instance discovery asks login.microsoftonline.com whatever the authority host (set\n"
    "disableInstanceDiscovery); no Files, Batches, Assistants, images, audio or realtime\n"
    "APIs; no Blob Storage or Queues (use Azurite).\n"
    "\n"
    "options (a flag wins over the same key in --config):\n"
    "  --config FILE          JSON object whose keys are the long options without '--' and\n"
    "                         with '_' for '-' (\"rpm\", \"per_token_ms\", \"tls_cert\"), faults\n"
    "                         under \"faults\": {\"http_503\": 0.1, \"reset\": 0.01, ...},\n"
    "                         keys under \"keys\": [\"k1\", \"k2\"]\n"
    "  --key KEY              accept this API key (Authorization: Bearer KEY or api-key: KEY);\n"
    "                         repeat for several. Without any key, auth is off.\n"
    "  --model NAME           serve only this model (or Azure deployment); repeat for several.\n"
    "                         Others get 404 model_not_found. Without any, every name is served.\n"
    "  --port-file FILE       write the port listened on to FILE once ready\n"};

static void print_usage(FILE *f)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(usage_head); i++)
        fputs(usage_head[i], f);
    for (size_t i = 0; i < SKY_ARRAY_LEN(opts); i++) {
        char left[64];
        snprintf(left, sizeof(left), "%s%s%s", opts[i].flag, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(f, "  %-22s %s\n", left, opts[i].help);
    }
    fputs("\nFault rates are probabilities (0..1) drawn per request; they add up, so 0.1 of\n"
          "each of three faults fails about 30% of requests. Statistics count every fault.\n",
          f);
}

static const mock_opt *find_opt(const char *flag)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(opts); i++)
        if (strcmp(opts[i].flag, flag) == 0)
            return &opts[i];
    return NULL;
}

static int set_opt(sky_mock_config *c, const mock_opt *o, const char *val)
{
    char *base = (char *)c;
    double d;
    long long ll;
    switch (o->kind) {
    case OPT_STRING:
        *(const char **)(base + o->offset) = val;
        return 0;
    case OPT_FLAG:
        *(int *)(base + o->offset) = 1;
        return 0;
    case OPT_DOUBLE:
        if (sky_cli_parse_double(val, &d) < 0 || d < 0)
            return -1;
        *(double *)(base + o->offset) = d;
        return 0;
    default:
        break;
    }
    if (sky_cli_parse_long(val, &ll) < 0 || ll < 0)
        return -1;
    if (o->kind == OPT_INT)
        *(int *)(base + o->offset) = (int)ll;
    else if (o->kind == OPT_INT64)
        *(int64_t *)(base + o->offset) = (int64_t)ll;
    else if (o->kind == OPT_SIZE)
        *(size_t *)(base + o->offset) = (size_t)ll;
    else
        *(uint64_t *)(base + o->offset) = (uint64_t)ll;
    return 0;
}

typedef struct mock_run {
    sky_loop *loop;
    sky_mock *mock;
    const char *port_file;
    const char *config_file;
    json_t *config_json;
    int signals;
} mock_run;

static int load_config_file(mock_run *run, sky_mock_config *c)
{
    sky_error err;
    json_error_t jerr;
    sky_error_clear(&err);
    if (sky_cli_check_input_file("mock", "--config", run->config_file) < 0)
        return -1; /* a folder would read as an empty file */
    run->config_json = json_load_file(run->config_file, 0, &jerr);
    if (run->config_json == NULL) {
        fprintf(stderr, "skyio mock: %s:%d:%d: %s\n", run->config_file, jerr.line, jerr.column,
                jerr.text);
        return -1;
    }
    if (sky_mock_config_apply_json(c, run->config_json, &err) < 0) {
        fprintf(stderr, "skyio mock: %s: %s\n", run->config_file, err.message);
        return -1;
    }
    return 0;
}

/* Flags after the config file, so a flag wins. Returns 0, 1 for --help, -1. */
static int parse_args(mock_run *run, sky_mock_config *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            run->config_file = argv[i + 1];
    if (run->config_file && load_config_file(run, c) < 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        int has_val = i + 1 < argc;
        if ((strcmp(a, "--config") == 0 || strcmp(a, "--port-file") == 0 ||
             strcmp(a, "--key") == 0) &&
            !has_val) {
            fprintf(stderr, "skyio mock: %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--config") == 0) {
            i++;
        } else if (strcmp(a, "--port-file") == 0) {
            run->port_file = argv[++i];
        } else if (strcmp(a, "--key") == 0) {
            if (c->n_keys == SKY_MOCK_MAX_KEYS) {
                fprintf(stderr, "skyio mock: at most %d keys\n", SKY_MOCK_MAX_KEYS);
                return -1;
            }
            c->keys[c->n_keys++] = argv[++i];
        } else if (strcmp(a, "--model") == 0) {
            if (c->n_models == SKY_MOCK_MAX_KEYS) {
                fprintf(stderr, "skyio mock: at most %d models\n", SKY_MOCK_MAX_KEYS);
                return -1;
            }
            c->models[c->n_models++] = argv[++i];
        } else {
            const mock_opt *o = find_opt(a);
            if (o == NULL) {
                fprintf(stderr, "skyio mock: unknown option '%s' (see skyio mock --help)\n", a);
                return -1;
            }
            if (o->kind != OPT_FLAG && !has_val) {
                fprintf(stderr, "skyio mock: %s needs a value\n", a);
                return -1;
            }
            if (set_opt(c, o, o->kind == OPT_FLAG ? NULL : argv[++i]) < 0) {
                fprintf(stderr, "skyio mock: %s: '%s' is not a valid %s\n", a, argv[i], o->arg);
                return -1;
            }
        }
    }
    return 0;
}

static int check_config(const sky_mock_config *c)
{
    const sky_mock_faults *f = &c->faults;
    const double rates[] = {f->http_500,     f->http_502,      f->http_503,  f->reset,
                            f->hang,         f->cut,           f->malformed, f->stream_cut,
                            f->stream_error, f->content_filter};
    double total = 0;
    const sky_mock_identity *id = &c->identity;
    if (id->expires_in < 1 || id->fail_count < 0 || id->delay_ms < 0 ||
        (id->fail_status && (id->fail_status < 200 || id->fail_status > 599))) {
        fprintf(stderr, "skyio mock: --identity-expires-in is at least 1; --identity-fail-status "
                        "200..599; --identity-fail-count and --identity-delay-ms not negative\n");
        return -1;
    }
    for (size_t i = 0; i < SKY_ARRAY_LEN(rates); i++) {
        if (rates[i] > 1) {
            fprintf(stderr, "skyio mock: fault rates are probabilities between 0 and 1\n");
            return -1;
        }
        total += rates[i];
    }
    if (total > 1) {
        fprintf(stderr, "skyio mock: the fault rates add up to %.3f, more than 1\n", total);
        return -1;
    }
    if (c->jitter > 1 || c->window_ms <= 0 || c->default_completion_tokens <= 0 ||
        c->reply_min_tokens <= 0 || c->embedding_dim <= 0 || c->port > 65535 || c->threads < 1 ||
        c->threads > 64 || c->arm.page_size < 1 || !c->arm.style ||
        (strcmp(c->arm.style, "async") && strcmp(c->arm.style, "location") &&
         strcmp(c->arm.style, "state"))) {
        fprintf(stderr, "skyio mock: --jitter is 0..1; --window-ms, --completion-tokens, "
                        "--reply-min-tokens and --embedding-dim must be positive; --port at most "
                        "65535; --threads "
                        "1..64; --arm-page-size positive; --arm-style async|location|state\n");
        return -1;
    }
    if (c->capacity < 0 || c->overload_rps < 0 || c->overload_burst < 0 || c->poison < 0 ||
        c->poison > 1 || (c->overload_status != 503 && c->overload_status != 529)) {
        fprintf(stderr, "skyio mock: --capacity, --overload-rps and --overload-burst are 0 or "
                        "more; --poison is 0..1; --overload-status is 503 or 529\n");
        return -1;
    }
    return 0;
}

static void on_down(sky_mock *m, void *ud)
{
    mock_run *run = ud;
    (void)m;
    sky_loop_stop(run->loop);
}

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    mock_run *run = ud;
    (void)loop;
    sky_cli_signal_graceful("mock", &run->signals, signum);
    sky_mock_shutdown(run->mock, 5000, on_down, run);
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return -1;
    /* Rename, so a reader never sees a half-written file. */
    return rename(tmp, path);
}

int sky_cli_mock(int argc, char **argv)
{
    mock_run run;
    sky_mock_config cfg;
    sky_error err;
    memset(&run, 0, sizeof(run));
    sky_error_clear(&err);
    sky_mock_config_init(&cfg);
    int rc = parse_args(&run, &cfg, argc, argv);
    if (rc != 0 || check_config(&cfg) < 0) {
        json_decref(run.config_json);
        if (rc == 1)
            print_usage(stdout);
        return rc == 1 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    }
    run.loop = sky_loop_new();
    if (run.loop == NULL || sky_mock_start(sky_loop_uv(run.loop), &cfg, &run.mock, &err) < 0) {
        fprintf(stderr, "skyio mock: cannot start: %s\n", err.code ? err.message : "out of memory");
        sky_loop_free(run.loop);
        json_decref(run.config_json);
        return SKY_EXIT_START;
    }
    int port = sky_mock_port(run.mock);
    if (run.port_file && write_port_file(run.port_file, port) < 0)
        fprintf(stderr, "skyio mock: cannot write %s\n", run.port_file);
    printf("listening %s://%s:%d\n", cfg.tls_cert_file ? "https" : "http", cfg.host, port);
    fflush(stdout);
    (void)sky_loop_on_signal(run.loop, on_signal, &run);
    sky_loop_run(run.loop);
    sky_mock_free(run.mock);
    sky_loop_free(run.loop);
    json_decref(run.config_json);
    return SKY_EXIT_OK;
}
