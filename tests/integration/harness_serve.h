/* Integration-test harness: a `skyio serve` child on loopback, and reading what it wrote. */
#ifndef SKY_TEST_HARNESS_SERVE_H
#define SKY_TEST_HARNESS_SERVE_H

#include <sys/types.h>

typedef struct sky_test_serve {
    pid_t pid;
    int port;
    char base[128]; /* http://127.0.0.1:PORT */
} sky_test_serve;

/*
 * Start `skyio serve --port 0 --port-file DIR/port ARGS` (@p args NULL-terminated) with its
 * stdout and stderr in @p dir's stdout.log and stderr.log; in the child, @p child_env (may be
 * NULL) runs first. Waits up to 10 s for the port; fails the test when it does not come.
 * Stop it with sky_test_stop_child(s->pid).
 */
void sky_test_serve_start(sky_test_serve *s, const char *dir, const char *const *args,
                          void (*child_env)(void));

/*
 * The same for one of several serves in @p dir: the port in @p dir/@p name.port, stdout and
 * stderr both in @p dir/@p name.log.
 */
void sky_test_serve_start_named(sky_test_serve *s, const char *dir, const char *name,
                                const char *const *args, void (*child_env)(void));

/* Whether the file @p dir/@p name holds @p needle (0 when it is missing). */
int sky_test_file_holds(const char *dir, const char *name, const char *needle);

/* The value of the metrics sample @p series (its text up to the value) in @p text; -1: none. */
double sky_test_sample(const char *text, const char *series);

#endif
