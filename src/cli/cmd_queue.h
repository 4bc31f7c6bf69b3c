/* `skyio queue`, shared by its files: the flags, the command's state. */
#ifndef SKY_CLI_CMD_QUEUE_H
#define SKY_CLI_CMD_QUEUE_H

#include <uv.h>

#include "skyio/queue.h"
#include "skyio/skyio.h"

#include "storage_flags.h"

typedef struct sky_cli_queue_flags {
    int json, raw, login, wait;
    const char *connstr, *name, *key, *sas, *endpoint, *process, *file;
    long long count, visibility, delay, ttl, max;
    const char *args[3];
    int nargs;
} sky_cli_queue_flags;

typedef struct sky_cli_queue_app {
    sky_cli_storage_env env; /* loop, HTTP client, credential, account */
    sky_queue_client *q;
    char *endpoint;
    sky_cli_queue_flags f;
    const char *verb;
    const char *queue;
    char *marker; /* ls: the next page's */
    char *text;   /* put: the message */
    size_t text_len;
    void *proc; /* get --process: the loop's state (queue_process.c) */
    int stop;   /* Ctrl-C */
    int exit_code;
    int done;
} sky_cli_queue_app;

/** The usage text. */
extern const char sky_cli_queue_usage[];
/** The flags and arguments after the verb: 0, 1 after --help, or -1 after saying why. */
int sky_cli_queue_parse_flags(sky_cli_queue_flags *f, int argc, char **argv);
/** The number of arguments of @p verb: 0 or an exit code, after saying what is wrong. */
int sky_cli_queue_check_args(const char *verb, const sky_cli_queue_flags *f);

/** A request failed: say why on stderr and choose the exit code. */
void sky_cli_queue_failed(sky_cli_queue_app *a, const char *what, const sky_error *err);

/** get --process: start the loop. 0, or an exit code after saying why. */
int sky_cli_queue_process_start(sky_cli_queue_app *a);
/** Ctrl-C during get --process: stop taking messages; the command running is ended. */
void sky_cli_queue_process_stop(sky_cli_queue_app *a);
/** Free what the loop kept (after the loop has run out). */
void sky_cli_queue_process_free(sky_cli_queue_app *a);

#endif
