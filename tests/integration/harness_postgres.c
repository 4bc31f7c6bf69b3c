/*
 * PostgreSQL for the tests: initdb and pg_ctl from Debian's packages, run as an unprivileged
 * user when the tests run as root (the server refuses root), each command a child process
 * with its arguments given as a list (no shell).
 */
#include "harness_postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static const char *pg_bindir(void)
{
    const char *d = getenv("SKY_TEST_PG_BIN");
    return d && d[0] ? d : "/usr/lib/postgresql/15/bin";
}

static void pg_tool(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", pg_bindir(), name);
}

int sky_test_pg_available(void)
{
    char initdb[512], pg_ctl[512];
    pg_tool(initdb, sizeof(initdb), "initdb");
    pg_tool(pg_ctl, sizeof(pg_ctl), "pg_ctl");
    return access(initdb, X_OK) == 0 && access(pg_ctl, X_OK) == 0;
}

static int pg_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("no free loopback port");
    close(fd);
    return ntohs(a.sin_port);
}

/* Run @p argv (a PostgreSQL tool, then its arguments), as "nobody" when we are root, with
 * its output appended to DIR/server.log. Returns its exit status (-1 when it did not exit). */
static int pg_run(const sky_test_pg *pg, const char *const *argv)
{
    char log[300];
    snprintf(log, sizeof(log), "%s/server.log", pg->dir);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(log, "a");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        if (geteuid() == 0) {
            const char *wrapped[24] = {"setpriv", "--reuid=nobody", "--regid=nogroup",
                                       "--clear-groups"};
            size_t n = 4;
            for (size_t i = 0; argv[i] && n < 23; i++)
                wrapped[n++] = argv[i];
            wrapped[n] = NULL;
            execvp("setpriv", (char *const *)(uintptr_t)wrapped);
        } else {
            execv(argv[0], (char *const *)(uintptr_t)argv);
        }
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void pg_start_server(sky_test_pg *pg)
{
    char pg_ctl[512], data[300], opts[512];
    pg_tool(pg_ctl, sizeof(pg_ctl), "pg_ctl");
    snprintf(data, sizeof(data), "%s/data", pg->dir);
    snprintf(opts, sizeof(opts),
             "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
             pg->port, pg->dir);
    const char *argv[] = {pg_ctl, "-D", data, "-o", opts, "-w", "-t", "30", "start", NULL};
    if (pg_run(pg, argv) != 0)
        fail_msg("pg_ctl start failed: see %s/server.log", pg->dir);
    pg->running = 1;
}

void sky_test_pg_start(sky_test_pg *pg)
{
    memset(pg, 0, sizeof(*pg));
    sky_test_tmpdir(pg->dir, sizeof(pg->dir));
    if (geteuid() == 0 && chmod(pg->dir, 0777) != 0)
        fail_msg("chmod %s failed", pg->dir);
    char initdb[512], data[300];
    pg_tool(initdb, sizeof(initdb), "initdb");
    snprintf(data, sizeof(data), "%s/data", pg->dir);
    const char *argv[] = {initdb,  "-D",        data, "-U",   "skyio", "-A",
                          "trust", "--no-sync", "-E", "UTF8", NULL};
    if (pg_run(pg, argv) != 0)
        fail_msg("initdb failed: see %s/server.log", pg->dir);
    pg->port = pg_free_port();
    snprintf(pg->url, sizeof(pg->url), "postgresql://skyio@127.0.0.1:%d/postgres", pg->port);
    pg_start_server(pg);
}

void sky_test_pg_stop(sky_test_pg *pg)
{
    if (!pg->running)
        return;
    char pg_ctl[512], data[300];
    pg_tool(pg_ctl, sizeof(pg_ctl), "pg_ctl");
    snprintf(data, sizeof(data), "%s/data", pg->dir);
    const char *argv[] = {pg_ctl, "-D", data, "-m", "fast", "-w", "stop", NULL};
    pg_run(pg, argv);
    pg->running = 0;
}

void sky_test_pg_restart(sky_test_pg *pg)
{
    sky_test_pg_stop(pg);
    pg_start_server(pg);
}

void sky_test_pg_free(sky_test_pg *pg)
{
    sky_test_pg_stop(pg);
    if (pg->dir[0])
        sky_test_rmdir(pg->dir);
    pg->dir[0] = '\0';
}
