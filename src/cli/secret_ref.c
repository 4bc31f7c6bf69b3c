/* Secret references for the commands: see secret_ref.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "secret_ref.h"
#include "skyio/keyvault.h"
#include "skyio/skyio.h"

extern char **environ;

/* The values put in place, wiped at exit. */
#define MAX_RESOLVED 32
static char *resolved[MAX_RESOLVED];
static int nresolved;

static void wipe_resolved(void)
{
    for (int i = 0; i < nresolved; i++) {
        OPENSSL_cleanse(resolved[i], strlen(resolved[i]));
        free(resolved[i]);
    }
    nresolved = 0;
}

typedef struct fetch {
    int done;
    sky_error err;
    char *value;
} fetch;

static void on_got(sky_keyvault_op *op, const sky_keyvault_reply *rep, const sky_error *err,
                   void *ud)
{
    fetch *f = ud;
    (void)op;
    f->done = 1;
    if (err) {
        f->err = *err;
        return;
    }
    f->value = malloc(rep->secret->value.len + 1);
    if (f->value == NULL) {
        sky_error_set(&f->err, SKY_ENOMEM, "out of memory");
        return;
    }
    memcpy(f->value, rep->secret->value.ptr, rep->secret->value.len);
    f->value[rep->secret->value.len] = '\0';
}

/* Get @p r's secret on @p loop through the credential chain. */
static void fetch_on(sky_loop *loop, const sky_keyvault_ref *r, fetch *f)
{
    sky_http_client *http = NULL;
    sky_credential *cred = NULL;
    sky_keyvault_client *kv = NULL;
    sky_keyvault_client_options o;
    sky_keyvault_client_options_init(&o);
    int rc = sky_http_client_new(sky_loop_uv(loop), NULL, &http);
    if (rc == 0)
        rc = sky_credential_default_new(sky_loop_uv(loop), http, NULL, &cred, &f->err);
    o.vault_url = r->vault_url;
    o.credential = cred;
    o.retry.max_retries = 3;
    if (rc == 0)
        rc = sky_keyvault_client_new(sky_loop_uv(loop), http, &o, &kv, &f->err);
    if (rc == 0)
        rc = sky_keyvault_get(kv, r->name, r->version, on_got, f, NULL, &f->err);
    if (rc == 0)
        sky_loop_run(loop);
    if (rc != 0 && f->err.code == 0)
        sky_error_set(&f->err, rc, "cannot set up the client");
    sky_keyvault_client_free(kv);
    sky_credential_free(cred);
    if (http)
        sky_http_client_free(http);
    sky_loop_run(loop); /* the handles' close callbacks */
}

int sky_cli_secret_ref_fetch(const char *cmd, const char *what, const char *ref, char **out)
{
    sky_keyvault_ref r;
    fetch f;
    char line[512];
    memset(&f, 0, sizeof(f));
    *out = NULL;
    if (sky_keyvault_ref_parse(ref, &r, &f.err) == 0) {
        sky_loop *loop = sky_loop_new();
        if (loop)
            fetch_on(loop, &r, &f);
        else
            sky_error_set(&f.err, SKY_ENOMEM, "out of memory");
        sky_loop_free(loop);
        sky_keyvault_ref_free(&r);
    }
    if (f.err.code == 0 && f.value) {
        *out = f.value;
        return 0;
    }
    /* the reference names where the secret is, never what it is */
    fprintf(stderr, "skyio %s: %s: cannot read the secret reference %.300s: %s\n", cmd, what, ref,
            sky_error_format(&f.err, line, sizeof(line)));
    return -1;
}

/* Replace a reference in @p slot (an argv entry or an environment variable's value). */
static int resolve_one(const char *cmd, const char *what, const char *ref, char **out)
{
    if (nresolved >= MAX_RESOLVED - 1)
        return -1;
    if (sky_cli_secret_ref_fetch(cmd, what, ref, out) != 0)
        return -1;
    if (nresolved == 0)
        atexit(wipe_resolved);
    resolved[nresolved++] = *out;
    return 0;
}

static int resolve_argv(const char *cmd, int argc, char **argv)
{
    char *v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--account-key=", 14) == 0 && sky_keyvault_is_ref(a + 14)) {
            if (resolve_one(cmd, "--account-key", a + 14, &v) != 0)
                return -1;
            size_t n = strlen(v) + 15; /* "--account-key=" + value, in memory of ours */
            char *both = nresolved < MAX_RESOLVED ? malloc(n) : NULL;
            if (both == NULL)
                return -1;
            snprintf(both, n, "--account-key=%s", v);
            resolved[nresolved++] = both;
            argv[i] = both;
        } else if (strcmp(a, "--account-key") == 0 && i + 1 < argc &&
                   sky_keyvault_is_ref(argv[i + 1])) {
            if (resolve_one(cmd, "--account-key", argv[i + 1], &v) != 0)
                return -1;
            argv[++i] = v;
        }
    }
    return 0;
}

static int resolve_env(const char *cmd, const char *var)
{
    char *v;
    const char *ref = getenv(var);
    if (!sky_keyvault_is_ref(ref))
        return 0;
    if (resolve_one(cmd, var, ref, &v) != 0)
        return -1;
    return setenv(var, v, 1) == 0 ? 0 : -1; /* setenv's copy is the C library's */
}

/* Every environment variable holding a reference: the keys batch and chat read, and the
 * variables a gateway config names with key_env. */
static int resolve_all_env(const char *cmd)
{
    char names[MAX_RESOLVED][128];
    int n = 0;
    for (char **e = environ; *e && n < MAX_RESOLVED; e++) {
        const char *eq = strchr(*e, '=');
        if (eq && sky_keyvault_is_ref(eq + 1) && (size_t)(eq - *e) < sizeof(names[0]))
            snprintf(names[n++], sizeof(names[0]), "%.*s", (int)(eq - *e), *e);
    }
    for (int i = 0; i < n; i++) /* setenv may move environ: names were copied first */
        if (resolve_env(cmd, names[i]) != 0)
            return -1;
    return 0;
}

int sky_cli_secret_refs_resolve(const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "blob") == 0 || strcmp(cmd, "queue") == 0)
        return resolve_argv(cmd, argc, argv);
    if (strcmp(cmd, "batch") == 0 || strcmp(cmd, "chat") == 0 || strcmp(cmd, "serve") == 0)
        return resolve_all_env(cmd);
    return 0;
}
