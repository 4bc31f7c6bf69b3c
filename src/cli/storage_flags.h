/* What `skyio blob` and `skyio queue` share: their flags as a table, and the account. */
#ifndef SKY_CLI_STORAGE_FLAGS_H
#define SKY_CLI_STORAGE_FLAGS_H

#include <stddef.h>

#include "skyio/error.h"
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

#endif
