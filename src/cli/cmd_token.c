/* `skyio token`: an Entra ID access token from the credential chain, printed like `az account
 * get-access-token`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "skyio/skyio.h"
#include "cli.h"

static const char usage[] =
    "usage: skyio token --scope SCOPE [options]\n"
    "\n"
    "Get an Entra ID (Azure AD) access token and print it as JSON, the way\n"
    "`az account get-access-token` does:\n"
    "  {\"accessToken\": ..., \"expiresOn\": \"YYYY-MM-DD HH:MM:SS.000000\" (local time),\n"
    "   \"expires_on\": UNIX-SECONDS, \"tokenType\": \"Bearer\", \"credential\": WHICH}\n"
    "The token is a secret: it goes to stdout only, never to a log line.\n"
    "\n"
    "Credentials are tried in DefaultAzureCredential's order, the first that gives a\n"
    "token wins:\n"
    "  environment        AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET\n"
    "  workload_identity  AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_FEDERATED_TOKEN_FILE\n"
    "  managed_identity   IDENTITY_ENDPOINT + IDENTITY_HEADER (App Service, Container Apps),\n"
    "                     else IMDS at $AZURE_POD_IDENTITY_AUTHORITY_HOST or 169.254.169.254\n"
    "  azure_cli          `az account get-access-token` ($SKYIO_AZ_PATH or az from PATH)\n"
    "AZURE_AUTHORITY_HOST changes the Entra ID host (default https://login.microsoftonline.com).\n"
    "\n"
    "options:\n"
    "      --scope SCOPE        e.g. https://management.azure.com/.default (required, or\n"
    "                           --resource)\n"
    "      --resource URL       the scope URL/.default, as az's --resource\n"
    "      --credential KIND    only this one: environment, workload_identity,\n"
    "                           managed_identity, azure_cli (default: the chain)\n"
    "      --exclude KIND       leave KIND out of the chain (repeatable)\n"
    "      --tenant ID          tenant (instead of $AZURE_TENANT_ID); also passed to az\n"
    "      --client-id ID       client or user-assigned identity (instead of $AZURE_CLIENT_ID)\n"
    "      --imds-endpoint URL  IMDS base URL (instead of $AZURE_POD_IDENTITY_AUTHORITY_HOST)\n"
    "      --az-path PATH       the Azure CLI program (instead of $SKYIO_AZ_PATH)\n"
    "      --timeout-ms N       per token request and for az (default 30000 / 15000)\n"
    "      --cacert FILE        trust the CAs in FILE\n"
    "\n"
    "exit: 0 a token was printed; 2 usage; 3 no credential worked (the reason of each on\n"
    "stderr, without secrets).\n";

typedef struct token_run {
    sky_loop *loop;
    sky_credential_options o;
    const char *scope, *resource, *only, *cacert;
    char *scope_buf;
    int done, exit_code;
} token_run;

static int exclude(token_run *r, const char *k)
{
    if (sky_credential_options_exclude(&r->o, k) == 0)
        return 0;
    fprintf(stderr, "skyio token: unknown credential '%s'\n", k);
    return -1;
}

static int take_option(token_run *r, const char *a, const char *v)
{
    long long n = 0;
    if (!strcmp(a, "--scope"))
        r->scope = v;
    else if (!strcmp(a, "--resource"))
        r->resource = v;
    else if (!strcmp(a, "--credential"))
        r->only = v;
    else if (!strcmp(a, "--exclude"))
        return exclude(r, v);
    else if (!strcmp(a, "--tenant"))
        r->o.tenant_id = v;
    else if (!strcmp(a, "--client-id"))
        r->o.client_id = v;
    else if (!strcmp(a, "--imds-endpoint"))
        r->o.imds_endpoint = v;
    else if (!strcmp(a, "--az-path"))
        r->o.az_path = v;
    else if (!strcmp(a, "--cacert"))
        r->cacert = v;
    else if (!strcmp(a, "--timeout-ms")) {
        if (sky_cli_number_opt("token", a, v, 1, &n) < 0)
            return -1;
        r->o.request_timeout_ms = r->o.az_timeout_ms = (long)n;
    } else {
        fprintf(stderr, "skyio token: unknown option '%s'\n", a);
        return -1;
    }
    return 0;
}

/* 0 to go on, 1 for --help, -1 for a usage error. */
static int parse_args(token_run *r, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
        if (i + 1 >= argc) {
            fprintf(stderr, "skyio token: %s needs a value\n", argv[i]);
            return -1;
        }
        if (take_option(r, argv[i], argv[i + 1]) < 0)
            return -1;
        i++;
    }
    if (!r->scope && r->resource) {
        size_t n = strlen(r->resource) + sizeof("/.default");
        r->scope_buf = malloc(n);
        if (r->scope_buf == NULL)
            return -1;
        snprintf(r->scope_buf, n, "%s/.default", r->resource);
        r->scope = r->scope_buf;
    }
    if (!r->scope || !*r->scope) {
        fprintf(stderr, "skyio token: --scope (or --resource) is required\n");
        return -1;
    }
    /* the name is checked now, so that a wrong one is a usage error: a link of the chain */
    sky_credential_options names;
    sky_credential_options_init(&names);
    if (r->only && sky_credential_options_exclude(&names, r->only) < 0) {
        fprintf(stderr, "skyio token: unknown credential '%s'\n", r->only);
        return -1;
    }
    return 0;
}

static void print_token(const sky_access_token *tok)
{
    char local[64] = "";
    time_t t = (time_t)tok->expires_on;
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(local, sizeof(local), "%Y-%m-%d %H:%M:%S.000000", &tm);
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:s}", "accessToken", tok->token, "expiresOn", local,
                          "expires_on", (json_int_t)tok->expires_on, "tokenType", "Bearer",
                          "credential", tok->source);
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (text) {
        printf("%s\n", text);
        memset(text, 0, strlen(text));
    }
    free(text);
    json_decref(j);
}

static void on_token(sky_token_request *req, const sky_access_token *tok, const sky_error *err,
                     void *ud)
{
    token_run *r = ud;
    (void)req;
    r->done = 1;
    if (tok) {
        print_token(tok);
        r->exit_code = SKY_EXIT_OK;
    } else {
        fprintf(stderr, "skyio token: %s\n", err->message);
        if (!sky_log_enabled(SKY_LOG_INFO))
            fprintf(stderr, "skyio token: SKYIO_LOG=info shows each credential's whole reason\n");
        r->exit_code = SKY_EXIT_START;
    }
    sky_loop_stop(r->loop);
}

static int run(token_run *r)
{
    sky_http_client_options co;
    sky_http_client *client = NULL;
    sky_credential *cred = NULL;
    sky_error err;
    sky_error_clear(&err);
    sky_http_client_options_init(&co);
    co.ca_file = r->cacert;
    co.connect_timeout_ms = 30000;
    r->loop = sky_loop_new();
    if (r->loop == NULL || sky_http_client_new(sky_loop_uv(r->loop), &co, &client) < 0) {
        fprintf(stderr, "skyio token: cannot start the HTTP client\n");
        sky_loop_free(r->loop);
        return SKY_EXIT_START;
    }
    r->exit_code = SKY_EXIT_START;
    if (sky_credential_new_named(sky_loop_uv(r->loop), client, r->only, &r->o, &cred, &err) < 0 ||
        sky_credential_get_token(cred, r->scope, on_token, r, NULL, &err) < 0)
        fprintf(stderr, "skyio token: %s\n", err.message);
    else
        sky_loop_run(r->loop);
    sky_credential_free(cred);
    sky_http_client_free(client);
    sky_loop_run(r->loop);
    sky_loop_free(r->loop);
    return r->exit_code;
}

int sky_cli_token(int argc, char **argv)
{
    token_run r;
    memset(&r, 0, sizeof(r));
    sky_credential_options_init(&r.o);
    int rc = parse_args(&r, argc, argv);
    if (rc != 0) {
        fputs(usage, rc > 0 ? stdout : stderr);
        free(r.scope_buf);
        return rc > 0 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    }
    rc = run(&r);
    free(r.scope_buf);
    return rc;
}
