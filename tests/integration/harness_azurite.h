/* Integration-test harness: a real Azurite Blob or Queue emulator on a free loopback port. */
#ifndef SKY_TEST_HARNESS_AZURITE_H
#define SKY_TEST_HARNESS_AZURITE_H

#include <sys/types.h>

typedef struct sky_test_azurite {
    pid_t pid;
    int port;
    char dir[256];      /* temp folder of this Azurite (its logs) */
    char endpoint[128]; /* http://127.0.0.1:PORT/devstoreaccount1 */
    char connstr[512];  /* a connection string for the development account */
} sky_test_azurite;

/* Azurite's published development account key. */
#define SKY_TEST_AZURITE_KEY                                                                       \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

/*
 * Start <srcdir>/.deps/azurite/node_modules/.bin/azurite-blob on 127.0.0.1
 * (port 0: Azurite picks a free one and prints it), in memory, without
 * telemetry; wait until it listens. Fails the test (with a message saying to
 * run scripts/install-deps) when Azurite is not installed.
 */
void sky_test_azurite_start(sky_test_azurite *a);
/* The same with azurite-queue: endpoint and connstr (QueueEndpoint=) of its queue service. */
void sky_test_azurite_start_queue(sky_test_azurite *a);
/* SIGTERM, then SIGKILL after 10 s; removes the temp folder. Returns the exit status. */
int sky_test_azurite_stop(sky_test_azurite *a);

/*
 * One Azurite for a whole test file: defines the cmocka group setup and teardown
 * `group_setup` and `group_teardown`, which start the file's @p az with @p start
 * (sky_test_azurite_start or _start_queue) and stop it.
 */
#define SKY_TEST_AZURITE_GROUP(az, start)                                                          \
    static int group_setup(void **state)                                                           \
    {                                                                                              \
        (void)state;                                                                               \
        start(&(az));                                                                              \
        return 0;                                                                                  \
    }                                                                                              \
    static int group_teardown(void **state)                                                        \
    {                                                                                              \
        (void)state;                                                                               \
        sky_test_azurite_stop(&(az));                                                              \
        return 0;                                                                                  \
    }

#endif
