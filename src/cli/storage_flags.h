/* What `skyio blob` and `skyio queue` share: their flags as a table, and the account. */
#ifndef SKY_CLI_STORAGE_FLAGS_H
#define SKY_CLI_STORAGE_FLAGS_H

#include <stddef.h>

#include <uv.h>

#include "skyio/error.h"
#include "skyio/skyio.h"
#include "skyio/storage.h"

enum { SKY_CLI_FLAG_SWITCH, SKY_CLI_FLAG_STRING, SKY_CLI_FLAG_NUMBER };

/* One flag: where it goes in the command's flags struct (int, const char * or long long). */
typedef struct sky_cli_flag_def {
    const char *name, *alias;
    int kind;
    size_t off;    /* of the field in the command's flags struct */
    long long min; /* a number's least value */
} sky_cli_flag_def;

/* A command's flags. */
typedef struct sky_cli_flag_table {
    const char *cmd;    /* "blob": errors start "skyio blob: " */
    const char *usage;  /* printed by --help */
    int usage_on_error; /* 1: the usage after each error too */
    const sky_cli_flag_def *defs;
    size_t ndefs;
} sky_cli_flag_table;

/*
 * argv[2..] into @p flags (fields at the table's offsets) and at most 3 arguments into
 * @p args (count in *nargs). A value after '=' is never echoed (it may be a key or a SAS).
 * 0, 1 after --help, or -1 after saying what is wrong on stderr.
 */
int sky_cli_storage_parse_flags(const sky_cli_flag_table *t, void *flags, const char **args,
                                int *nargs, int argc, char **argv);

/* The account flags, borrowed. */
typedef struct sky_cli_storage_creds {
    const char *connstr, *name, *key, *sas, *endpoint;
} sky_cli_storage_creds;

/*
 * The account the flags name (the library's rules; the endpoint as the Blob endpoint),
 * or from AZURE_STORAGE_CONNECTION_STRING. When none is named: SKY_EINVAL, in the flags'
 * words. 0 or a SKY_E code with @p err filled.
 */
int sky_cli_storage_account(const sky_cli_storage_creds *c, sky_storage_account **out,
                            sky_error *err);

/* What a storage command runs on. */
typedef struct sky_cli_storage_env {
    sky_loop *loop;
    sky_http_client *http;
    sky_credential *cred; /* --login's */
    sky_storage_account *acct;
    uv_prepare_t watch; /* stops the loop once *done */
    const int *done;
} sky_cli_storage_env;

/* The HTTP client on e->loop and, with @p login, the default credential chain. 0 or a code. */
int sky_cli_storage_connect(sky_cli_storage_env *e, int login, sky_error *err);
/* Stop the loop once *@p done is set, checked before each wait; then ..._watch_stop. */
void sky_cli_storage_watch_start(sky_cli_storage_env *e, const int *done);
void sky_cli_storage_watch_stop(sky_cli_storage_env *e);
/* Free the credential and the HTTP client, then run the loop until every handle is closed
 * (the signal handler off). The clients on the loop are to be freed first. */
void sky_cli_storage_env_drain(sky_cli_storage_env *e);
/* After ..._drain: free the loop and the account. */
void sky_cli_storage_env_free(sky_cli_storage_env *e);

#endif
