/* What `skyio blob` and `skyio queue` share: their flags as a table, and the account. */
#include "storage_flags.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

static const sky_cli_flag_def *flag_find(const sky_cli_flag_table *t, const char *o)
{
    for (size_t i = 0; i < t->ndefs; i++)
        if (strcmp(o, t->defs[i].name) == 0 ||
            (t->defs[i].alias && strcmp(o, t->defs[i].alias) == 0))
            return &t->defs[i];
    return NULL;
}

/* What follows an error's line: the usage, when the table asks for it. */
static const char *after_error(const sky_cli_flag_table *t)
{
    return t->usage_on_error ? t->usage : "";
}

/* Option @p o, with its value after '=' (@p eq) or in the next argument. 0 or -1. */
static int flag_set(const sky_cli_flag_table *t, void *flags, const sky_cli_flag_def *d,
                    const char *o, const char *eq, int argc, char **argv, int *i)
{
    char *field = (char *)flags + d->off;
    if (d->kind == SKY_CLI_FLAG_SWITCH && eq) {
        fprintf(stderr, "skyio %s: %s takes no value\n%s", t->cmd, o, after_error(t));
        return -1;
    }
    if (d->kind == SKY_CLI_FLAG_SWITCH) {
        *(int *)(void *)field = 1;
        return 0;
    }
    if (!eq && *i + 1 >= argc) {
        fprintf(stderr, "skyio %s: %s needs a value\n%s", t->cmd, o, after_error(t));
        return -1;
    }
    const char *v = eq ? eq + 1 : argv[++*i];
    if (d->kind == SKY_CLI_FLAG_STRING) {
        *(const char **)(void *)field = v;
        return 0;
    }
    return sky_cli_number_opt(t->cmd, o, v, d->min, (long long *)(void *)field);
}

int sky_cli_storage_parse_flags(const sky_cli_flag_table *t, void *flags, const char **args,
                                int *nargs, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        /* "--opt=value": split it, so the value is never echoed (it may be a key or a SAS). */
        const char *eq = strncmp(o, "--", 2) == 0 ? strchr(o, '=') : NULL;
        char oname[64];
        if (eq) {
            snprintf(oname, sizeof(oname), "%.*s", (int)(eq - o), o);
            o = oname;
        }
        const sky_cli_flag_def *d = flag_find(t, o);
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(t->usage, stdout);
            return 1;
        } else if (d && flag_set(t, flags, d, o, eq, argc, argv, &i) != 0) {
            return -1;
        } else if (d == NULL && o[0] == '-' && o[1] != '\0') {
            fprintf(stderr, "skyio %s: unknown option '%s'\n%s", t->cmd, o, after_error(t));
            return -1;
        } else if (d == NULL && *nargs < 3) {
            args[(*nargs)++] = o;
        } else if (d == NULL) {
            fprintf(stderr, "skyio %s: too many arguments\n%s", t->cmd, after_error(t));
            return -1;
        }
    }
    return 0;
}

int sky_cli_storage_account(const sky_cli_storage_creds *c, sky_storage_account **out,
                            sky_error *err)
{
    sky_storage_account_options ao;
    sky_storage_account_options_init(&ao);
    ao.connection_string = c->connstr;
    ao.account_name = c->name;
    ao.account_key = c->key; /* a keyvault:// reference was read by main */
    ao.sas = c->sas;
    ao.blob_endpoint = c->endpoint;
    int rc = sky_storage_account_resolve(&ao, out, err);
    if (rc == SKY_ENOTFOUND) {
        sky_error_clear(err);
        return sky_error_set(err, SKY_EINVAL,
                             "no account: give --connection-string, --account-name with "
                             "--account-key or --sas, or set AZURE_STORAGE_CONNECTION_STRING");
    }
    return rc;
}

int sky_cli_storage_connect(sky_cli_storage_env *e, int login, sky_error *err)
{
    int rc = sky_http_client_new(sky_loop_uv(e->loop), NULL, &e->http);
    if (rc == 0 && login)
        rc = sky_credential_default_new(sky_loop_uv(e->loop), e->http, NULL, &e->cred, err);
    return rc;
}

static void on_idle_check(uv_prepare_t *p)
{
    sky_cli_storage_env *e = p->data;
    if (*e->done)
        sky_loop_stop(e->loop);
}

void sky_cli_storage_watch_start(sky_cli_storage_env *e, const int *done)
{
    e->done = done;
    uv_prepare_init(sky_loop_uv(e->loop), &e->watch);
    e->watch.data = e;
    uv_prepare_start(&e->watch, on_idle_check);
}

void sky_cli_storage_watch_stop(sky_cli_storage_env *e)
{
    uv_close((uv_handle_t *)&e->watch, NULL); /* closed by the drain's run */
}

void sky_cli_storage_env_drain(sky_cli_storage_env *e)
{
    sky_credential_free(e->cred);
    e->cred = NULL;
    if (e->http)
        sky_http_client_free(e->http);
    e->http = NULL;
    if (e->loop) {
        (void)sky_loop_on_signal(e->loop, NULL, NULL);
        sky_loop_run(e->loop); /* the handles' close callbacks */
    }
}

void sky_cli_storage_env_free(sky_cli_storage_env *e)
{
    if (e->loop)
        sky_loop_free(e->loop);
    e->loop = NULL;
    sky_storage_account_free(e->acct);
    e->acct = NULL;
}
