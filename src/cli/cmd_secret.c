/*
 * `skyio secret`: Key Vault secrets from the command line: get, set, ls, rm. The rules
 * (the challenge, the token, the retries) are the library's (skyio/keyvault.h). A value
 * is never taken from the command line, where `ps` would show it: set reads stdin or a
 * file; get prints it only on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "skyio/keyvault.h"
#include "skyio/skyio.h"

static const char usage[] =
    "usage: skyio secret <command> [options] VAULT [NAME]\n"
    "\n"
    "Azure Key Vault secrets, with a token from the credential chain (environment,\n"
    "workload identity, managed identity, Azure CLI) for the scope the vault's challenge\n"
    "names.\n"
    "\n"
    "commands:\n"
    "  get VAULT NAME     print the secret's value on stdout (--version V: that version)\n"
    "  set VAULT NAME     a new version, its value read from stdin or --file PATH (never\n"
    "                     from the command line, where ps would show it); prints its id\n"
    "  ls VAULT           the secrets' names (values are never listed)\n"
    "  rm VAULT NAME      delete (soft-delete: recoverable until its purge date)\n"
    "\n"
    "VAULT is a vault's name (myvault: https://myvault.vault.azure.net), its URL, or its\n"
    "host. Secret names: 1-127 characters, letters, digits and hyphens.\n"
    "\n"
    "options:\n"
    "      --version V          get: a version (default the latest)\n"
    "      --file PATH          set: the value from a file (one trailing newline dropped)\n"
    "      --content-type T     set: the secret's content type\n"
    "      --json               one JSON object per line (get: with the value)\n"
    "\n"
    "Elsewhere, keyvault://VAULT/NAME[/VERSION] in place of a key is read once at start:\n"
    "blob and queue --account-key, and for batch, chat and serve any environment variable\n"
    "(OPENAI_API_KEY, AZURE_OPENAI_API_KEY, a gateway config's key_env).\n"
    "exit: 0 done; 1 the vault refused (not found, conflict); 2 usage; 3 could not start\n"
    "(credentials, network, TLS).\n";

typedef struct app {
    sky_loop *loop;
    sky_http_client *http;
    sky_credential *cred;
    sky_keyvault_client *kv;
    const char *verb, *vault, *name, *version, *file, *content_type;
    int json, exit_code, done;
    char *next_link;
} app;

/* ---- flags ---- */

static int parse(app *a, int argc, char **argv)
{
    const char *args[2] = {NULL, NULL};
    int nargs = 0;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char **field = strcmp(o, "--version") == 0        ? &a->version
                             : strcmp(o, "--file") == 0         ? &a->file
                             : strcmp(o, "--content-type") == 0 ? &a->content_type
                                                                : NULL;
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(usage, stdout);
            return 1;
        } else if (strcmp(o, "--json") == 0) {
            a->json = 1;
        } else if (field && i + 1 < argc) {
            *field = argv[++i];
        } else if (o[0] == '-' || nargs == 2) {
            fprintf(stderr, "skyio secret: %s '%s' (values are read from stdin or --file)\n",
                    o[0] == '-' ? "unknown option or missing value" : "too many arguments",
                    o[0] == '-' ? o : "...");
            return -1;
        } else {
            args[nargs++] = o;
        }
    }
    a->vault = args[0];
    a->name = args[1];
    int want = strcmp(a->verb, "ls") == 0 ? 1 : 2;
    if (nargs != want) {
        fprintf(stderr, "skyio secret %s: wrong number of arguments\n%s", a->verb, usage);
        return -1;
    }
    return 0;
}

/* ---- printing ---- */

static void say_failed(app *a, const sky_error *err)
{
    char line[512];
    fprintf(stderr, "skyio secret %s: %s\n", a->verb, sky_error_format(err, line, sizeof(line)));
    int start = err->code == SKY_EAUTH || err->code == SKY_ECONNECT || err->code == SKY_ERESOLVE ||
                err->code == SKY_ETLS || err->http_status == 401 || err->http_status == 403;
    a->exit_code = start ? SKY_EXIT_START : SKY_EXIT_FAILED;
}

static void print_json(json_t *o)
{
    char *line = json_dumps(o, JSON_COMPACT);
    if (line)
        puts(line);
    free(line);
}

static json_t *describe(const sky_keyvault_secret *s)
{
    json_t *o = json_pack("{s:s?, s:s?, s:s?, s:b, s:I, s:I}", "name", s->name, "version",
                          s->version, "id", s->id, "enabled", s->enabled, "created",
                          (json_int_t)s->created, "updated", (json_int_t)s->updated);
    if (o && s->content_type)
        json_object_set_new(o, "content_type", json_string(s->content_type));
    if (o && s->recovery_id) {
        json_object_set_new(o, "recovery_id", json_string(s->recovery_id));
        json_object_set_new(o, "scheduled_purge_date", json_integer(s->scheduled_purge_date));
    }
    return o;
}

static void print_secret(const app *a, const sky_keyvault_secret *s)
{
    int is_get = strcmp(a->verb, "get") == 0;
    if (!a->json && is_get) {
        fwrite(s->value.ptr, 1, s->value.len, stdout);
        fputc('\n', stdout);
        return;
    }
    if (!a->json) {
        printf("%s\n", s->id ? s->id : "");
        return;
    }
    json_t *o = describe(s);
    json_t *v = is_get ? json_stringn(s->value.ptr, s->value.len) : NULL;
    if (v)
        json_object_set_new(o, "value", v);
    print_json(o);
    if (v)
        OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v), s->value.len);
    json_decref(o);
}

/* ---- replies ---- */

static void on_reply(sky_keyvault_op *op, const sky_keyvault_reply *rep, const sky_error *err,
                     void *ud);

static int list_page(app *a, sky_error *err)
{
    return sky_keyvault_list(a->kv, a->next_link, on_reply, a, NULL, err);
}

static void on_reply(sky_keyvault_op *op, const sky_keyvault_reply *rep, const sky_error *err,
                     void *ud)
{
    app *a = ud;
    sky_error e;
    (void)op;
    a->done = 1;
    if (err) {
        say_failed(a, err);
        return;
    }
    if (rep->secret) {
        print_secret(a, rep->secret);
        return;
    }
    for (size_t i = 0; i < rep->count; i++) {
        json_t *o = describe(&rep->items[i]);
        if (a->json)
            print_json(o);
        else
            printf("%s\n", rep->items[i].name);
        json_decref(o);
    }
    free(a->next_link);
    a->next_link = rep->next_link ? strdup(rep->next_link) : NULL;
    sky_error_clear(&e);
    if (a->next_link && list_page(a, &e) == 0)
        a->done = 0;
    else if (a->next_link)
        say_failed(a, &e);
}

/* ---- the value of set ---- */

static char *read_value(const app *a, size_t *len)
{
    const char *path = a->file ? a->file : "/dev/stdin";
    if (a->file && sky_cli_check_input_file("secret", "--file", path) != 0)
        return NULL;
    char *v = sky_cli_read_file(path, len);
    if (v && *len > 0 && v[*len - 1] == '\n')
        v[--*len] = '\0';
    if (v && *len > 0 && v[*len - 1] == '\r')
        v[--*len] = '\0';
    return v;
}

static int start_set(app *a, sky_error *err)
{
    size_t len = 0;
    char *v = read_value(a, &len);
    if (v == NULL)
        return sky_error_set(err, SKY_EINVAL, "cannot read the value (stdin or --file)");
    sky_span value = {v, len};
    int rc = sky_keyvault_set(a->kv, a->name, value, a->content_type, on_reply, a, NULL, err);
    OPENSSL_cleanse(v, len);
    free(v);
    return rc;
}

/* ---- the client ---- */

/* "myvault", "host[:port]" or "https://host[:port]" as a vault URL. */
static void vault_url(const char *vault, char *out, size_t len)
{
    if (strncmp(vault, "https://", 8) == 0 || strncmp(vault, "http://", 7) == 0)
        snprintf(out, len, "%s", vault);
    else if (strpbrk(vault, ".:"))
        snprintf(out, len, "https://%s", vault);
    else
        snprintf(out, len, "https://%s.vault.azure.net", vault);
}

static int setup(app *a, sky_error *err)
{
    char url[512];
    sky_keyvault_client_options o;
    sky_keyvault_client_options_init(&o);
    vault_url(a->vault, url, sizeof(url));
    a->loop = sky_loop_new();
    if (a->loop == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = sky_http_client_new(sky_loop_uv(a->loop), NULL, &a->http);
    if (rc == 0)
        rc = sky_credential_default_new(sky_loop_uv(a->loop), a->http, NULL, &a->cred, err);
    o.vault_url = url;
    o.credential = a->cred;
    if (rc == 0)
        rc = sky_keyvault_client_new(sky_loop_uv(a->loop), a->http, &o, &a->kv, err);
    return rc;
}

static int start(app *a, sky_error *err)
{
    if (strcmp(a->verb, "get") == 0)
        return sky_keyvault_get(a->kv, a->name, a->version, on_reply, a, NULL, err);
    if (strcmp(a->verb, "set") == 0)
        return start_set(a, err);
    if (strcmp(a->verb, "rm") == 0)
        return sky_keyvault_delete(a->kv, a->name, on_reply, a, NULL, err);
    return list_page(a, err);
}

static void cleanup(app *a)
{
    sky_keyvault_client_free(a->kv);
    sky_credential_free(a->cred);
    if (a->http)
        sky_http_client_free(a->http);
    if (a->loop) {
        sky_loop_run(a->loop);
        sky_loop_free(a->loop);
    }
    free(a->next_link);
}

int sky_cli_secret(int argc, char **argv)
{
    app a;
    sky_error err;
    char line[512];
    memset(&a, 0, sizeof(a));
    sky_error_clear(&err);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SKY_EXIT_USAGE : SKY_EXIT_OK;
    }
    a.verb = argv[1];
    if (strcmp(a.verb, "get") && strcmp(a.verb, "set") && strcmp(a.verb, "ls") &&
        strcmp(a.verb, "rm")) {
        fprintf(stderr, "skyio secret: unknown command '%s'\n%s", a.verb, usage);
        return SKY_EXIT_USAGE;
    }
    int rc = parse(&a, argc, argv);
    if (rc != 0)
        return rc > 0 ? SKY_EXIT_OK : SKY_EXIT_USAGE;
    rc = setup(&a, &err);
    int exit_code = rc ? SKY_EXIT_START : SKY_EXIT_OK;
    if (rc == 0 && (rc = start(&a, &err)) != 0)
        exit_code = rc == SKY_ENOMEM ? SKY_EXIT_START : SKY_EXIT_USAGE;
    if (rc == 0)
        sky_loop_run(a.loop);
    else
        fprintf(stderr, "skyio secret %s: %s\n", a.verb,
                sky_error_format(&err, line, sizeof(line)));
    cleanup(&a);
    return rc ? exit_code : a.exit_code;
}
