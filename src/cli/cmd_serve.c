/* `skyio serve`: flags and the config file in, a running gateway (skyio/gateway.h) out. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/skyio.h"
#include "skyio/gateway.h"
#include "cli.h"
#include "serve_stores.h"

static const char usage[] =
    "usage: skyio serve --config FILE [options]\n"
    "\n"
    "An OpenAI-compatible gateway in front of OpenAI, Azure OpenAI and OpenAI-compatible\n"
    "deployments. Each deployment has its own rate limit (learned from its replies),\n"
    "concurrency limit (when set) and circuit breaker; a request goes to one of its model's\n"
    "deployments with room now (its limiter would not hold it), drawn by weight times\n"
    "headroom, and a failure before the first byte of the answer (429, 5xx, a reset, a\n"
    "timeout, an open breaker) moves it to another, then to the model's fallbacks. Streams\n"
    "pass through chunk by chunk. A client that leaves cancels its upstream call. It\n"
    "prints \"listening URL\" on stdout once ready, and stops on SIGINT/SIGTERM after the\n"
    "requests in flight end.\n"
    "SIGHUP reads --config again and swaps in its models, deployments, fallbacks and keys\n"
    "without dropping a connection: requests under way finish on the old routing (the\n"
    "listening options stay; a config that does not parse changes nothing and counts in\n"
    "skyio_gateway_config_reload_failures_total). The file is read off the event loop.\n"
    "\n"
    "endpoints:\n"
    "  POST /v1/chat/completions   chat; \"stream\": true streams server-sent events\n"
    "  POST /v1/embeddings         embeddings\n"
    "  POST /v1/responses          the Responses API; \"stream\": true streams its events\n"
    "  GET|DELETE /v1/responses/ID, GET /v1/responses/ID/input_items   a kept answer\n"
    "  POST /v1/conversations, GET|POST|DELETE /v1/conversations/ID,\n"
    "  GET|POST /v1/conversations/ID/items, GET|DELETE .../items/ITEM   OpenAI's\n"
    "                              Conversations API (needs --state or --postgres)\n"
    "  POST /v1/completions        legacy text completions, plain or streamed\n"
    "  GET  /v1/models[/MODEL]     the configured models the key may use (or one of them)\n"
    "  the same under /openai/v1/..., and Azure OpenAI's form for Azure SDK clients:\n"
    "  POST /openai/deployments/MODEL/chat/completions|embeddings|completions?api-version=V\n"
    "  POST /openai/responses?api-version=V   (the model in the body)\n"
    "       where MODEL is one of the gateway's model names; the api-version is not read\n"
    "  GET  /healthz               200 while the gateway runs (no key needed)\n"
    "  GET  /readyz                200 when every model has a deployment whose breaker lets\n"
    "                              calls in, else 503 naming those that have none (no key)\n"
    "  GET  /metrics               Prometheus text (no key): skyio_gateway_requests_total\n"
    "                              {route,model,deployment,status}, request and added\n"
    "                              _duration_seconds histograms by route, tokens_total\n"
    "                              {model,kind}, each deployment's in_flight,\n"
    "                              concurrency_limit, rate_limit_rpm/tpm, breaker_state\n"
    "                              (0 closed, 1 open, 2 half open), loop_lag_seconds\n"
    "  GET  /                      the live page (no key; inline, needs no network): per\n"
    "                              model and deployment the breaker, in flight against the\n"
    "                              concurrency limit, the rate limit, requests/s and\n"
    "                              latency p50/p90 over the last 5 minutes, every 2 s\n"
    "  GET  /status.json           what the page draws (no key): per model its ready and\n"
    "                              fallbacks; per deployment label, kind, weight, usable,\n"
    "                              in_flight, concurrency_limit, rpm, tpm, breaker and a\n"
    "                              history of 60 slots of slot_seconds (5): requests,\n"
    "                              throttled, errors, p50_ms, p90_ms; loop_lag_ms (the\n"
    "                              loops' worst per slot), connections_open; names only,\n"
    "                              no URL or key\n";

/* What every answer carries, and the errors (a string literal has a size limit in C) */
static const char usage_answers[] =
    "Every model call's answer carries x-request-id: the client's own (up to 128 of\n"
    "A-Z a-z 0-9 -_.:/+=) or a new one; it is sent upstream as x-request-id too.\n"
    "Clients send their key as 'Authorization: Bearer KEY' (OpenAI SDKs) or 'api-key: KEY'.\n"
    "Errors are OpenAI's JSON: 400 malformed body, 401 invalid_api_key, 403 a model the\n"
    "key may not use, 404 model_not_found, 413 a body over --max-body, 429 every\n"
    "deployment rate limited, 502/504 no deployment could answer. Plain HTTP/1.1 clients\n"
    "get it for a bad first request on a connection too: 431 a header flood (over 100\n"
    "headers or 64 KiB), 414 a request line over 16 KiB, 408 a request not whole within\n"
    "--client-timeout-ms (later requests on a keep-alive connection, and TLS ones, get the\n"
    "HTTP library's own plain-text 400 or a close).\n"
    "\n";

/* The flags' part of --help */
static const char usage_options[] =
    "options (a flag wins over the same key at the top of the config):\n"
    "  --config FILE             the models, their deployments and the clients' keys (below)\n"
    "  --host ADDR               address to listen on (default 127.0.0.1; \"host\")\n"
    "  --port N                  port; 0 picks a free one (default 8080; \"port\")\n"
    "  --port-file FILE          write the port listened on to FILE once ready\n"
    "  --max-body BYTES          larger request bodies get 413 (default 16 MiB; \"max_body\")\n"
    "  --upstream-timeout-ms MS  one upstream attempt, a whole stream included (default\n"
    "                            300000; \"upstream_timeout_ms\")\n"
    "  --client-timeout-ms MS    a client's request must arrive whole within MS, else 408\n"
    "                            (default 10000; \"client_timeout_ms\")\n"
    "  --tls-cert FILE           PEM certificate chain: HTTPS, HTTP/2 offered by ALPN and\n"
    "                            HTTP/1.1 too (\"tls_cert\"; default plain HTTP/1.1)\n"
    "  --tls-key FILE            its PEM private key (\"tls_key\")\n"
    "  --upstream-transport T    h2o (default) or curl: skyio's HTTP/1.1 client for plain\n"
    "                            http:// deployments on an IP address or localhost\n"
    "                            (about a third less gateway CPU a request; TLS, host\n"
    "                            names and proxies stay on curl); curl: curl for all\n"
    "                            (\"upstream_transport\")\n"
    "  --threads N               N event loops on threads of their own, one port\n"
    "                            (SO_REUSEPORT); key budgets, metrics and each\n"
    "                            deployment's rate limit (known or learned) are shared;\n"
    "                            each loop also keeps an even share of a known rpm/tpm\n"
    "                            (\"threads\"; default 1, at most 64). With the stores\n"
    "                            below each loop has its own connections (PostgreSQL's\n"
    "                            pool split between them, one each at least; SQLite one\n"
    "                            per loop on the same file): every loop caches, keeps\n"
    "                            answers and records usage, admin keys hold on all\n"
    "  --access-log FILE         a JSON line per model call appended to FILE (\"-\": stderr):\n"
    "                            request_id, key (its name, never the key), route, model,\n"
    "                            deployment, status, latency_ms, added_ms, stream, tokens,\n"
    "                            loop (with --threads: 0..N-1)\n"
    "                            (\"access_log\"; default none)\n"
    "  --grace-ms MS             on SIGTERM, how long requests in flight may go on (default\n"
    "                            10000)\n"
    "\n";

/* What the stores mean for the Responses API (after the stores' part of --help) */
static const char usage_state[] =
    "previous_response_id and conversation (on /v1/responses) are resolved by the gateway\n"
    "when it has --state or --postgres: the earlier turns it kept for the same key are sent\n"
    "upstream as input items (an id kept for another key: 404), whatever the deployment\n"
    "speaks, and the new turn is kept and added to its conversation before the answer goes\n"
    "out. Without a store they go to the upstream as they came (refused for a chat-only\n"
    "deployment). See docs/gateway-state.md.\n"
    "\n";

/* The config's part of --help (a string literal has a size limit in C) */
static const char usage_config[] =
    "config (JSON):\n"
    "  {\n"
    "    \"port\": 8080,\n"
    "    \"models\": {\n"
    "      \"gpt-4o\": [\n"
    "        {\"kind\": \"azure\", \"base_url\": \"https://east.openai.azure.com\",\n"
    "         \"deployment\": \"gpt4o\", \"api_version\": \"2024-10-21\",\n"
    "         \"key_env\": \"AZURE_EAST_KEY\", \"weight\": 2, \"rpm\": 600, \"tpm\": 100000},\n"
    "        {\"kind\": \"openai\", \"base_url\": \"https://api.openai.com/v1\",\n"
    "         \"key_env\": \"OPENAI_API_KEY\", \"weight\": 1}\n"
    "      ],\n"
    "      \"llama\": [{\"kind\": \"compatible\", \"base_url\": \"http://10.0.0.5:8000/v1\",\n"
    "                 \"deployment\": \"meta-llama/Llama-3.1-8B-Instruct\"}]\n"
    "    },\n"
    "    \"fallbacks\": {\"gpt-4o\": [\"llama\"]},\n"
    "    \"keys\": [\n"
    "      {\"name\": \"team-a\", \"key_sha256\": \"<sha256 of the key, 64 hex digits>\",\n"
    "       \"models\": [\"gpt-4o\"]},\n"
    "      {\"name\": \"ci\", \"key_env\": \"GATEWAY_CI_KEY\", \"rpm\": 600, \"tpm\": 90000,\n"
    "       \"daily_tokens\": 2000000, \"daily_cost\": 25}\n"
    "    ],\n"
    "    \"prices\": {\"gpt-4o\": {\"input_per_1m\": 2.5, \"output_per_1m\": 10,\n"
    "                          \"cached_input_per_1m\": 1.25}}\n"
    "  }\n"
    "\n"
    "  kind         openai (default), azure or compatible\n"
    "  key_env      the NAME of the environment variable holding the deployment's key; keys\n"
    "               never go in the file (one there is refused). None: no key is sent,\n"
    "               but to an azure deployment, which gets Entra ID tokens from the\n"
    "               credential chain (environment, workload identity, managed identity,\n"
    "               Azure CLI: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, ...)\n"
    "  deployment   azure: the deployment's name; others: the model's name upstream, when\n"
    "               it differs from the name clients use\n"
    "  weight       the deployment's share of its model's requests among those with\n"
    "               room (default 1; 0: only when the others fail or are full)\n"
    "  rpm, tpm     the deployment's limits when known; otherwise learned from its replies\n"
    "  max_concurrency  calls in flight to it at most, adaptive below that (slow start\n"
    "               from 16); \"concurrency\": a fixed number instead. Default neither:\n"
    "               the clients' concurrency goes through, the upstream's 429s and rate\n"
    "               headers and the breaker protect it (split between --threads loops)\n"
    "  api          \"chat\": the deployment speaks chat completions only (vLLM, older\n"
    "               Azure api-versions): /v1/responses calls to it are translated to\n"
    "               chat and answered (or streamed) as the Responses API; parameters\n"
    "               chat cannot carry (built-in tools, include, ...) get a 400. \"all\":\n"
    "               the default\n"
    "  fallbacks    when every deployment of a model refused before the first byte of the\n"
    "               answer (429, 5xx, a reset, a timeout, an open breaker), the request\n"
    "               goes to the deployments of these models, in order (the body's \"model\"\n"
    "               rewritten); errors of the request itself (400, 404) do not fall back\n"
    "";

/* The config's keys and prices (a string literal has a size limit in C) */
static const char usage_config_keys[] =
    "  keys         the gateway's own keys, by SHA-256 (`printf %s KEY | sha256sum`) or\n"
    "               from an environment variable; \"models\" limits what a key may use.\n"
    "               Without any key the gateway asks for none. Keys are kept hashed and\n"
    "               compared in constant time.\n"
    "  rpm, tpm     (of a key) its budget, requests and tokens a minute, refilled\n"
    "               continuously; tokens are charged up front (the body's size / 4 plus\n"
    "               max_tokens) and settled by the reply's usage. Over it: 429 with\n"
    "               retry-after, retry-after-ms and x-ratelimit-{limit,remaining,reset}-\n"
    "               {requests,tokens} as OpenAI sends them; those headers come with every\n"
    "               answer of a key that has a budget.\n"
    "  daily_tokens, daily_cost  (of a key) caps a UTC day on the tokens (in and out) and\n"
    "               the cost its calls used; once reached, 429 until midnight UTC\n"
    "               (retry-after: the seconds until then). The day's use is read from\n"
    "               --state / --postgres at start, and shared with the gateways beside\n"
    "               this one through a Redis --cache (else through --postgres)\n"
    "  prices       per model, per million tokens: each usage record's cost (`skyio\n"
    "               usage`) and the daily_cost caps; cached_input_per_1m prices the\n"
    "               prompt tokens the upstream served from its cache (default: the input\n"
    "               price). A model without a price costs 0 (counted in /metrics)\n";

typedef struct serve_run {
    sky_loop *loop;
    sky_gateway *gw;
    sky_gateway_options opts;
    sky_gateway_config cfg; /* the first config's routing (a reload's is the gateway's) */
    json_t *doc;            /* the first config: the listening options point into it */
    uv_signal_t hup;
    int hup_on;
    const char *config_file;
    const char *port_file;
    long long grace_ms;
    sky_cli_stores stores; /* --cache, --state, --postgres */
    int signals;
} serve_run;

/* The config file read and parsed: its document (new reference) and *cfg, or NULL after
 * saying why on stderr. */
static json_t *read_config(const char *path, sky_gateway_config *cfg)
{
    json_error_t jerr;
    sky_error err;
    sky_error_clear(&err);
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) {
        fprintf(stderr, "skyio serve: %s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (sky_gateway_config_parse(doc, cfg, &err) < 0) {
        fprintf(stderr, "skyio serve: %s: %s\n", path, err.message);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* "curl" or "h2o"; 0, or -1 after saying why on stderr */
static int set_transport(sky_gateway_options *o, const char *v)
{
    if (strcmp(v, "curl") == 0 || strcmp(v, "h2o") == 0) {
        o->upstream_transport = v[0] == 'h' ? SKY_HTTP_TRANSPORT_H2O : SKY_HTTP_TRANSPORT_CURL;
        return 0;
    }
    fprintf(stderr, "skyio serve: --upstream-transport takes curl or h2o, not '%s'\n", v);
    return -1;
}

static int load_config(serve_run *run)
{
    if (sky_cli_check_input_file("serve", "--config", run->config_file) < 0)
        return -1;
    run->doc = read_config(run->config_file, &run->cfg);
    if (run->doc == NULL || sky_cli_stores_config(&run->stores, run->doc) < 0)
        return -1;
    sky_gateway_options *o = &run->opts;
    o->host = sky_json_str(run->doc, "host", o->host);
    o->port = (int)sky_json_int(run->doc, "port", o->port);
    o->max_body = (size_t)sky_json_int(run->doc, "max_body", (int64_t)o->max_body);
    o->upstream_timeout_ms =
        (long)sky_json_int(run->doc, "upstream_timeout_ms", o->upstream_timeout_ms);
    o->client_timeout_ms = (long)sky_json_int(run->doc, "client_timeout_ms", o->client_timeout_ms);
    o->access_log = sky_json_str(run->doc, "access_log", o->access_log);
    o->threads = (int)sky_json_int(run->doc, "threads", o->threads);
    const char *t = sky_json_str(run->doc, "upstream_transport", NULL);
    if (t && set_transport(o, t) < 0)
        return -1;
    o->tls_cert_file = sky_json_str(run->doc, "tls_cert", o->tls_cert_file);
    o->tls_key_file = sky_json_str(run->doc, "tls_key", o->tls_key_file);
    return 0;
}

/* One flag with a value; 0, or -1 after saying why on stderr. */
static int set_flag(serve_run *run, const char *flag, const char *v)
{
    long long n;
    sky_gateway_options *o = &run->opts;
    if (strcmp(flag, "--host") == 0)
        o->host = v;
    else if (strcmp(flag, "--port-file") == 0)
        run->port_file = v;
    else if (strcmp(flag, "--access-log") == 0)
        o->access_log = v;
    else if (strcmp(flag, "--tls-cert") == 0)
        o->tls_cert_file = v;
    else if (strcmp(flag, "--tls-key") == 0)
        o->tls_key_file = v;
    else if (strcmp(flag, "--upstream-transport") == 0)
        return set_transport(o, v);
    else if (strcmp(flag, "--port") == 0) {
        if (sky_cli_number_opt("serve", flag, v, 0, &n) < 0 || n > 65535)
            return -1;
        o->port = (int)n;
    } else if (strcmp(flag, "--max-body") == 0) {
        if (sky_cli_number_opt("serve", flag, v, 1, &n) < 0)
            return -1;
        o->max_body = (size_t)n;
    } else if (strcmp(flag, "--upstream-timeout-ms") == 0) {
        if (sky_cli_number_opt("serve", flag, v, 1, &n) < 0)
            return -1;
        o->upstream_timeout_ms = (long)n;
    } else if (strcmp(flag, "--client-timeout-ms") == 0) {
        if (sky_cli_number_opt("serve", flag, v, 1, &n) < 0)
            return -1;
        o->client_timeout_ms = (long)n;
    } else if ((n = sky_cli_stores_flag(&run->stores, flag, v)) != 0) {
        if (n < 0)
            return -1;
    } else if (strcmp(flag, "--threads") == 0) {
        if (sky_cli_number_opt("serve", flag, v, 1, &n) < 0 || n > 64)
            return -1;
        o->threads = (int)n;
    } else if (strcmp(flag, "--grace-ms") == 0) {
        if (sky_cli_number_opt("serve", flag, v, 0, &run->grace_ms) < 0)
            return -1;
    } else if (strcmp(flag, "--config") != 0) {
        fprintf(stderr, "skyio serve: unknown option '%s' (see skyio serve --help)\n", flag);
        return -1;
    }
    return 0;
}

/* The config first, then the flags over it. Returns 0, 1 for --help, -1. */
static int parse_args(serve_run *run, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            run->config_file = argv[i + 1];
    }
    if (run->config_file == NULL) {
        fprintf(stderr, "skyio serve: --config FILE is required (see skyio serve --help)\n");
        return -1;
    }
    if (load_config(run) < 0)
        return -1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "skyio serve: %s needs a value\n", argv[i]);
            return -1;
        }
        if (set_flag(run, argv[i], argv[i + 1]) < 0)
            return -1;
    }
    if (!run->opts.tls_cert_file != !run->opts.tls_key_file) {
        fprintf(stderr, "skyio serve: --tls-cert and --tls-key go together\n");
        return -1;
    }
    return 0;
}

static void on_down(sky_gateway *g, void *ud)
{
    serve_run *run = ud;
    (void)g;
    sky_loop_stop(run->loop);
}

static void on_signal(sky_loop *loop, int signum, void *ud)
{
    serve_run *run = ud;
    (void)loop;
    sky_cli_signal_graceful("serve", &run->signals, signum);
    sky_gateway_shutdown(run->gw, (uint64_t)run->grace_ms, on_down, run);
}

static void use_config(serve_run *run, const sky_gateway_config *cfg)
{
    run->opts.deployments = cfg->deployments;
    run->opts.n_deployments = cfg->n_deployments;
    run->opts.fallbacks = cfg->fallbacks;
    run->opts.n_fallbacks = cfg->n_fallbacks;
    run->opts.keys = cfg->keys;
    run->opts.n_keys = cfg->n_keys;
    run->opts.prices = cfg->prices;
    run->opts.n_prices = cfg->n_prices;
}

/* A reload's config, before its routing is swapped in: its "cache" part taken. */
static int reload_check(sky_gateway *g, const json_t *doc, sky_error *err, void *ud)
{
    serve_run *run = ud;
    (void)g;
    if (sky_cli_stores_config(&run->stores, doc) < 0) /* it said why */
        return sky_error_set(err, SKY_EINVAL, "its cache part is refused");
    return 0;
}

static void on_reloaded(sky_gateway *g, const sky_error *err, void *ud)
{
    serve_run *run = ud;
    (void)g;
    if (err)
        fprintf(stderr, "skyio serve: reload refused, the running config stays: %s\n",
                err->message);
    else
        fprintf(stderr, "skyio serve: reloaded %s\n", run->config_file);
}

/*
 * SIGHUP: the config file read again (off the loop) and its routing (models, deployments,
 * fallbacks, keys) swapped in; requests under way finish on the old one, no connection is
 * dropped. The listening options stay. A config that does not parse changes nothing.
 */
static void on_hup(uv_signal_t *h, int signum)
{
    serve_run *run = h->data;
    (void)signum;
    sky_gateway_reload_hooks hk = {reload_check, on_reloaded, run};
    if (sky_gateway_reload_file(run->gw, run->config_file, &run->opts, &hk) < 0)
        fprintf(stderr, "skyio serve: reload refused, the running config stays: out of memory\n");
}

static void watch_hup(serve_run *run)
{
    uv_loop_t *loop = sky_loop_uv(run->loop);
    run->hup.data = run;
    if (uv_signal_init(loop, &run->hup) != 0)
        return;
    run->hup_on = 1;
    if (uv_signal_start(&run->hup, on_hup, SIGHUP) != 0)
        fprintf(stderr, "skyio serve: cannot watch SIGHUP: no reloads\n");
    uv_unref((uv_handle_t *)&run->hup);
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
    return rename(tmp, path); /* a reader never sees half a file */
}

static int is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

static int start(serve_run *run)
{
    sky_error err;
    sky_error_clear(&err);
    use_config(run, &run->cfg);
    run->loop = sky_loop_new();
    /* the other loops listen once each has its stores */
    int rc = run->loop == NULL
                 ? SKY_ENOMEM
                 : sky__gw_new_held(sky_loop_uv(run->loop), &run->opts, &run->gw, &err);
    if (rc == 0 && sky_cli_stores_open(&run->stores, run->gw, run->opts.threads) < 0)
        return -1; /* it said why */
    if (rc < 0 || (rc = sky__gw_start_loops(run->gw, &run->opts, &err)) < 0) {
        fprintf(stderr, "skyio serve: cannot start: %s\n",
                err.code ? err.message : "out of memory");
        return -1;
    }
    if (run->cfg.n_keys == 0 && !is_loopback(run->opts.host))
        fprintf(stderr,
                "skyio serve: warning: no keys configured: anyone who reaches %s may "
                "use every model\n",
                run->opts.host);
    int port = sky_gateway_port(run->gw);
    if (run->port_file && write_port_file(run->port_file, port) < 0)
        fprintf(stderr, "skyio serve: cannot write %s\n", run->port_file);
    printf("listening %s://%s:%d\n", run->opts.tls_cert_file ? "https" : "http", run->opts.host,
           port);
    fflush(stdout);
    return 0;
}

int sky_cli_serve(int argc, char **argv)
{
    serve_run run;
    memset(&run, 0, sizeof(run));
    sky_gateway_options_init(&run.opts);
    run.opts.port = 8080;
    run.grace_ms = 10000;
    sky_cli_stores_init(&run.stores);
    int rc = parse_args(&run, argc, argv);
    int code = rc == 1 ? SKY_EXIT_OK : rc < 0 ? SKY_EXIT_USAGE : SKY_EXIT_OK;
    if (rc == 1)
        fprintf(stdout, "%s%s%s%s%s%s%s%s", usage, usage_answers, usage_options,
                sky_cli_stores_usage, usage_state, usage_config, usage_config_keys,
                sky_cli_stores_config_usage);
    if (rc == 0 && start(&run) < 0)
        code = SKY_EXIT_START;
    else if (rc == 0) {
        (void)sky_loop_on_signal(run.loop, on_signal, &run);
        watch_hup(&run);
        sky_loop_run(run.loop);
    }
    if (run.hup_on)
        uv_close((uv_handle_t *)&run.hup, NULL); /* sky_loop_free runs the close */
    sky_gateway_free(run.gw);
    /* after the gateway; no loop (and no store open) after --help or a usage error, but a
     * URL or the config's cache part may have been taken already */
    sky_cli_stores_close(&run.stores, run.loop ? sky_loop_uv(run.loop) : NULL);
    sky_loop_free(run.loop);
    sky_gateway_config_free(&run.cfg);
    json_decref(run.doc);
    return code;
}
