/* Integration-test harness: `skyio serve`. See harness_serve.h. */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_serve.h"

static void serve_exec(const char *dir, const char *port_file, const char *const *args)
{
    const char *argv[40] = {SKY_TEST_BIN, "serve", "--port", "0", "--port-file", port_file};
    size_t n = 6;
    for (size_t i = 0; args && args[i] && n < SKY_ARRAY_LEN(argv) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    sky_test_redirect(dir, "stdout.log", 1);
    sky_test_redirect(dir, "stderr.log", 2);
    execv(SKY_TEST_BIN, (char *const *)(uintptr_t)argv);
    _exit(127);
}

void sky_test_serve_start(sky_test_serve *s, const char *dir, const char *const *args,
                          void (*child_env)(void))
{
    char port_file[512];
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    memset(s, 0, sizeof(*s));
    s->pid = sky_test_fork();
    if (s->pid == 0) {
        if (child_env)
            child_env();
        serve_exec(dir, port_file, args);
    }
    s->port = sky_test_wait_port_file(&s->pid, port_file, 10000, "skyio serve", dir);
    if (s->port == 0) {
        sky_test_stop_child(s->pid);
        fail_msg("skyio serve did not start within 10 s; see %s/stderr.log", dir);
    }
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
}

int sky_test_file_holds(const char *dir, const char *name, const char *needle)
{
    char path[512];
    static char text[1 << 20];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

double sky_test_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = strstr(text, series); p; p = strstr(p + 1, series))
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}
