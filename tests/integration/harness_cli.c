/* Integration-test harness: running a command. See harness_cli.h. */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_cli.h"
#include "skyio/json.h"

void sky_test_slurp(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

pid_t sky_test_cli_spawn(const char *const *argv, const char *dir, void (*child_env)(void),
                         unsigned alarm_s, int *in_fd)
{
    char out[300], err[300];
    int p[2];
    assert_int_equal(pipe(p), 0);
    snprintf(out, sizeof(out), "%s/out", dir);
    snprintf(err, sizeof(err), "%s/err", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600),
            fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(p[0], 0);
        dup2(fo, 1);
        dup2(fe, 2);
        close(p[1]);
        if (child_env)
            child_env();
        alarm(alarm_s);
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    close(p[0]);
    *in_fd = p[1];
    return pid;
}

void sky_test_cli_finish(pid_t pid, const char *dir, sky_test_cli_out *r)
{
    char path[300];
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    snprintf(path, sizeof(path), "%s/out", dir);
    sky_test_slurp(path, r->out, sizeof(r->out));
    snprintf(path, sizeof(path), "%s/err", dir);
    sky_test_slurp(path, r->err, sizeof(r->err));
}

void sky_test_run_cli(const char *const *argv, const char *input, void (*child_env)(void),
                      unsigned alarm_s, sky_test_cli_out *r)
{
    char dir[256];
    int in;
    sky_test_tmpdir(dir, sizeof(dir));
    pid_t pid = sky_test_cli_spawn(argv, dir, child_env, alarm_s, &in);
    if (input)
        assert_int_equal(write(in, input, strlen(input)), (ssize_t)strlen(input));
    close(in);
    sky_test_cli_finish(pid, dir, r);
    sky_test_rmdir(dir);
}

void sky_test_run_skyio(sky_test_cli_out *r, const char *sub, const char *fmt, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "exec %s %s %s", SKY_TEST_BIN, sub, args);
    const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    sky_test_run_cli(argv, NULL, NULL, 120, r);
    if (r->code >= 128)
        fail_msg("skyio %s %s: no normal exit (code %d); stderr:\n%s", sub, args, r->code, r->err);
}

json_t *sky_test_cli_json(const sky_test_cli_out *r)
{
    json_t *j = NULL;
    if (sky_json_parse(sky_span_cstr(r->out), &j, NULL) < 0)
        fail_msg("stdout is not JSON:\n%s\nstderr:\n%s", r->out, r->err);
    return j;
}

int sky_test_shell(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

double sky_test_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sky_test_shell_unreachable(const char *cmd, const char *why, char *out, size_t cap)
{
    double t0 = sky_test_now_s();
    int rc = sky_test_shell(cmd, out, cap);
    double secs = sky_test_now_s() - t0;
    if (rc != 3 || secs > 10 || strstr(out, "cannot reach the endpoint") == NULL ||
        strstr(out, why) == NULL)
        fail_msg("%s: exit %d after %.1f s:\n%s", cmd, rc, secs, out);
}
