/* What `skyio arm`, `skyio group` and `skyio vm` share: flags, the client, one operation. */
#ifndef SKY_CLI_CMD_ARM_H
#define SKY_CLI_CMD_ARM_H

#include <stdio.h>

#include "skyio/arm.h"
#include "skyio/credential.h"
#include "skyio/loop.h"

/* Which commands take a flag. */
enum { ARMF_ARM = 1, ARMF_GROUP = 2, ARMF_VM = 4, ARMF_ALL = 7 };

#define SKY_CLI_ARM_MAX_TAGS 16
#define SKY_CLI_ARM_MAX_POS 4

typedef struct sky_cli_arm_flags {
    const char *endpoint, *subscription, *api_version, *body_file, *input;
    const char *group, *location, *size, *image, *admin_user, *ssh_key_file, *nic;
    const char *tags[SKY_CLI_ARM_MAX_TAGS];
    int n_tags;
    int wait, no_wait, json, help;
    double timeout_s, poll_interval_s;
    long long concurrency;
    const char *pos[SKY_CLI_ARM_MAX_POS]; /* positional arguments, in order */
    int n_pos;
} sky_cli_arm_flags;

/* Parse argv[1..] (argv[0] is the subcommand) for command @p cmd_mask. 0, or -1 after saying why.
 */
int sky_cli_arm_parse(const char *cmd, int cmd_mask, int argc, char **argv, sky_cli_arm_flags *f);
/* Print the flags @p cmd_mask takes, for --help. */
void sky_cli_arm_print_flags(FILE *out, int cmd_mask);
/* --subscription, else $AZURE_SUBSCRIPTION_ID; NULL after saying it is missing. */
const char *sky_cli_arm_subscription(const char *cmd, const sky_cli_arm_flags *f);

/* The loop, HTTP client, credential and ARM client of one command. */
typedef struct sky_cli_arm_ctx {
    const char *cmd; /* "arm", "group", "vm": the start of every message */
    sky_loop *loop;
    sky_http_client *http;
    sky_credential *cred;
    sky_arm_client *arm;
    int signaled;
    sky_arm_lro *current; /* canceled on SIGINT */
} sky_cli_arm_ctx;

/* Set everything up. Returns 0, or SKY_EXIT_START after saying why. */
int sky_cli_arm_open(sky_cli_arm_ctx *c, const char *cmd, const sky_cli_arm_flags *f);
void sky_cli_arm_close(sky_cli_arm_ctx *c);

/* What one operation should do with its outcome. */
typedef struct sky_cli_arm_op {
    const char *method, *path, *api_version;
    sky_span body;
    int wait;         /* 0: print the resume token once started */
    int progress;     /* progress lines on stderr */
    const char *what; /* "create group rg1", for messages */
} sky_cli_arm_op;

/* Run an operation (or resume @p token when not NULL) to its end; exit code. */
int sky_cli_arm_run_op(sky_cli_arm_ctx *c, const sky_cli_arm_op *op, const char *token,
                       const sky_cli_arm_flags *f);
/* GET @p path and print the body; exit code. */
int sky_cli_arm_run_get(sky_cli_arm_ctx *c, const char *path, const char *api_version);
/* Walk a list and print each item as one JSON line; exit code. */
int sky_cli_arm_run_list(sky_cli_arm_ctx *c, const char *path, const char *api_version);
/* The exit code for an error: 3 when the service could not be reached or auth failed, else 1. */
int sky_cli_arm_exit_for(const sky_error *err);

/* Whether @p err ended a call on an endpoint never reached; the failure goes to @p out. */
int sky_cli_arm_never_reached(const sky_cli_arm_ctx *c, const sky_error *err, sky_error *out);
/* Say the endpoint cannot be reached and nothing was done. */
void sky_cli_arm_say_unreachable(const sky_cli_arm_ctx *c, const sky_error *fault);
/* `skyio arm put --input FILE.jsonl`: every line's PUT, a result line each, a summary; exit code.
 */
int sky_cli_arm_run_bulk(const sky_cli_arm_flags *f);

#endif
