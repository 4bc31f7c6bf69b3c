/* Integration-test harness: running a command (the skyio binary) and capturing its output. */
#ifndef SKY_TEST_HARNESS_CLI_H
#define SKY_TEST_HARNESS_CLI_H

#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

/* What a finished command gave: its exit code (128 + the signal when killed), its output. */
typedef struct sky_test_cli_out {
    int code;
    char out[65536];
    char err[16384];
} sky_test_cli_out;

/* Up to @p len - 1 bytes of the file @p path into @p buf, NUL-terminated ("" when missing). */
void sky_test_slurp(const char *path, char *buf, size_t len);

/*
 * Start @p argv (NULL-terminated; argv[0] a path, or a name on PATH) with a pipe on its stdin (the
 * write end into *in_fd) and its stdout and stderr into the files out and err in @p dir. In the
 * child, @p child_env (may be NULL) runs first, then alarm(@p alarm_s): a hung command
 * ends with exit code 142 instead of hanging the test.
 */
pid_t sky_test_cli_spawn(const char *const *argv, const char *dir, void (*child_env)(void),
                         unsigned alarm_s, int *in_fd);

/* Wait for @p pid and fill @p r from its exit status and @p dir's out and err. */
void sky_test_cli_finish(pid_t pid, const char *dir, sky_test_cli_out *r);

/* Spawn @p argv in a fresh temp folder, give it @p input (NULL: none) and wait for it. */
void sky_test_run_cli(const char *const *argv, const char *input, void (*child_env)(void),
                      unsigned alarm_s, sky_test_cli_out *r);

/*
 * Run `skyio SUB ARGS` (the binary under test; ARGS from @p fmt, split as a shell would) with
 * nothing on stdin and wait for it (120 s at most). The exit must be a normal one: a crash,
 * a sanitizer's abort or the alarm fails the test.
 */
void sky_test_run_skyio(sky_test_cli_out *r, const char *sub, const char *fmt, ...)
    SKY_PRINTF(3, 4);

/* The stdout of @p r as JSON (new reference); fails the test, showing both outputs, when it is not.
 */
json_t *sky_test_cli_json(const sky_test_cli_out *r);

/*
 * Run the shell command line @p cmd and capture its stdout (its stderr too with 2>&1 in
 * it) into @p out, NUL-terminated, @p cap - 1 bytes at most. The exit must be a normal
 * one; returns its code.
 */
int sky_test_shell(const char *cmd, char *out, size_t cap);

/*
 * Run @p cmd with sky_test_shell, its output into @p out: it must exit 3 within 10 s,
 * saying it cannot reach the endpoint and @p why (an error name); else the test fails,
 * showing the command, its exit, its time and its output.
 */
void sky_test_shell_unreachable(const char *cmd, const char *why, char *out, size_t cap);

/* Seconds on the monotonic clock, to time a command. */
double sky_test_now_s(void);

#endif
