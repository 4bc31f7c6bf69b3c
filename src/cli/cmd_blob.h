/* `skyio blob`, shared by its files: the flags, the command's state, what it prints. */
#ifndef SKY_CLI_CMD_BLOB_H
#define SKY_CLI_CMD_BLOB_H

#include <uv.h>

#include "skyio/blob.h"
#include "skyio/blob_transfer.h"
#include "skyio/skyio.h"

#include "storage_flags.h"
#include "skyio/storage.h"

enum verb { V_LS, V_MB, V_RB, V_PUT, V_GET, V_RM };

/* CONTAINER/NAME or a path, as given: a blob name of 1,024 characters of up to 4 bytes,
 * with its container, fits, and so does a local path. */
#define ARG_MAX_BYTES 8192

typedef struct sky_cli_blob_flags {
    int recursive, rollback, no_sync, login, json;
    const char *connstr, *name, *key, *sas, *endpoint, *checksum;
    long long parallel, block_size, concurrency;
    const char *args[3];
    int nargs;
} sky_cli_blob_flags;

typedef struct sky_cli_blob_app {
    sky_cli_storage_env env; /* loop, HTTP client, credential, account */
    sky_blob_client *blob;
    sky_blob_folder *folder; /* put, get and rm */
    sky_blob_folder_options fo;
    sky_cli_blob_flags f;
    int verb, tty;
    const char *container;
    char *prefix;
    char *marker; /* ls: the next page's; a copy, as long as the service made it */
    int stop;     /* Ctrl-C */
    int exit_code;
    int done;
} sky_cli_blob_app;

/* ---- flags (blob_flags.c) ---- */

/** The usage text. */
extern const char sky_cli_blob_usage[];
/** The verb named by @p s (V_LS ...), or -1. */
int sky_cli_blob_verb_of(const char *s);
/** The flags and arguments after the verb: 0, 1 after --help, or -1 after saying what is wrong. */
int sky_cli_blob_parse_flags(sky_cli_blob_flags *f, int argc, char **argv);
/** The number of arguments for @p verb, --checksum and the arguments' lengths: 0 or an exit
 *  code, after saying what is wrong. */
int sky_cli_blob_check_args(int verb, const sky_cli_blob_flags *f);

/* ---- what the command prints (blob_report.c) ---- */

void sky_cli_blob_print_err(const char *what, const sky_error *err);
/** The endpoint was never reached: say so, and that nothing was transferred. */
void sky_cli_blob_say_unreachable(const sky_error *err);
/** A command of one request failed: say why and choose the exit code. */
void sky_cli_blob_one_request_failed(sky_cli_blob_app *a, const char *what, const sky_error *err);
/** The progress line on a terminal. */
void sky_cli_blob_on_progress(sky_blob_folder *fo, const sky_blob_folder_stats *st, void *ud);
/** The failed files and the summary line (or JSON); exit 1 when any failed. */
void sky_cli_blob_summary(sky_cli_blob_app *a, const sky_blob_folder_stats *st);

#endif
