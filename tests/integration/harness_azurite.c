/* Integration-test harness: Azurite. See harness_azurite.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_azurite.h"
#include "harness_cli.h"

#ifndef SKY_TEST_SRCDIR
#define SKY_TEST_SRCDIR "."
#endif

/* The port from "successfully listens on http://127.0.0.1:PORT" in the log, or 0. */
static int az_read_port(const void *arg)
{
    const char *dir = arg;
    char path[512], text[8192];
    snprintf(path, sizeof(path), "%s/stdout.log", dir);
    sky_test_slurp(path, text, sizeof(text));
    const char *p = strstr(text, "listens on http://127.0.0.1:");
    return p ? atoi(p + strlen("listens on http://127.0.0.1:")) : 0;
}

/* One of Azurite's services: its program and the flags that differ. */
typedef struct az_service {
    const char *program;      /* "azurite-blob" */
    const char *host_flag;    /* "--blobHost" */
    const char *port_flag;    /* "--blobPort" */
    const char *endpoint_key; /* "BlobEndpoint" */
    int extent_limit;         /* the blob store's --extentMemoryLimit 512 */
} az_service;

static void az_exec(const az_service *s, const char *bin, const char *dir)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = s->host_flag;
    argv[n++] = "127.0.0.1";
    argv[n++] = s->port_flag;
    argv[n++] = "0";
    argv[n++] = "--inMemoryPersistence";
    if (s->extent_limit) {
        argv[n++] = "--extentMemoryLimit";
        argv[n++] = "512";
    }
    argv[n++] = "--disableTelemetry";
    argv[n++] = "--skipApiVersionCheck";
    argv[n++] = "--loose";
    argv[n] = NULL;
    /* In memory: --location cannot go with --inMemoryPersistence. */
    if (chdir(dir) != 0)
        _exit(126);
    sky_test_redirect(dir, "stdout.log", 1);
    sky_test_redirect(dir, "stderr.log", 2);
    execv(bin, (char *const *)(uintptr_t)argv);
    _exit(127);
}

static void az_start(sky_test_azurite *a, const az_service *s)
{
    char bin[512];
    memset(a, 0, sizeof(*a));
    snprintf(bin, sizeof(bin), "%s/.deps/azurite/node_modules/.bin/%s", SKY_TEST_SRCDIR,
             s->program);
    if (access(bin, X_OK) != 0)
        fail_msg("Azurite is not installed (%s missing): run scripts/install-deps", bin);
    sky_test_tmpdir(a->dir, sizeof(a->dir));
    pid_t pid = sky_test_fork();
    if (pid == 0) {
        az_exec(s, bin, a->dir);
    }
    a->pid = pid;
    /* Node takes a moment to start: up to 30 s on a loaded machine. */
    a->port =
        sky_test_wait_ready(&a->pid, az_read_port, a->dir, 30000, s->program, a->dir, "stderr.log");
    if (a->port == 0) {
        sky_test_azurite_stop(a);
        fail_msg("%s did not start listening within 30 s", s->program);
    }
    snprintf(a->endpoint, sizeof(a->endpoint), "http://127.0.0.1:%d/devstoreaccount1", a->port);
    snprintf(a->connstr, sizeof(a->connstr),
             "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;"
             "%s=%s;",
             SKY_TEST_AZURITE_KEY, s->endpoint_key, a->endpoint);
}

void sky_test_azurite_start(sky_test_azurite *a)
{
    static const az_service blob = {"azurite-blob", "--blobHost", "--blobPort", "BlobEndpoint", 1};
    az_start(a, &blob);
}

void sky_test_azurite_start_queue(sky_test_azurite *a)
{
    static const az_service queue = {"azurite-queue", "--queueHost", "--queuePort", "QueueEndpoint",
                                     0};
    az_start(a, &queue);
}

int sky_test_azurite_stop(sky_test_azurite *a)
{
    int status = sky_test_stop_child(a->pid);
    a->pid = 0;
    if (a->dir[0])
        sky_test_rmdir(a->dir);
    a->dir[0] = '\0';
    return status;
}
