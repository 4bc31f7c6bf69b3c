/* What `skyio batch` prints of the engine's events, and how a run's end maps to an exit code;
 * shared by the batch front ends (batch_print.c). */
#ifndef SKY_CLI_BATCH_PRINT_H
#define SKY_CLI_BATCH_PRINT_H

#include "skyio/batch.h"

/* Where and how a run's summary is printed. */
typedef struct sky_cli_batch_out {
    int tty;            /* stderr is a terminal: progress redraws one line */
    int json;           /* --json: the summary as JSON on stdout */
    const char *output; /* the results file, named in the summary */
    const char *errors; /* the failures file, or NULL */
} sky_cli_batch_out;

/* Every event but FINISHED, on stderr. */
void sky_cli_batch_print_event(const sky_cli_batch_out *o, const sky_batch_event *ev);
/* The summary at the end: JSON on stdout with --json, else lines on stderr. */
void sky_cli_batch_print_summary(const sky_cli_batch_out *o, const sky_batch_summary *s);
/* 3 when it could not run (a fault, the account refused, the endpoint never reached), 1 when
 * something failed or is left for the next run, else 0. */
int sky_cli_batch_exit_code(const sky_batch_summary *s);
/* What opening a results file found: a torn line repaired, records kept from a run before. */
void sky_cli_batch_say_resuming(const char *path, const sky_journal_stats *st);

#endif
