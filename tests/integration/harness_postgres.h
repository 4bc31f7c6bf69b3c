/* Integration-test harness: a real PostgreSQL server in a temp folder, on loopback. */
#ifndef SKY_TEST_HARNESS_POSTGRES_H
#define SKY_TEST_HARNESS_POSTGRES_H

typedef struct sky_test_pg {
    int port;
    int running;
    char dir[256]; /* temp folder: data/ (the cluster), the socket, server.log */
    char url[384]; /* postgresql://skyio@127.0.0.1:PORT/postgres */
} sky_test_pg;

/*
 * Nonzero when initdb and pg_ctl are installed (in $SKY_TEST_PG_BIN, else Debian's
 * /usr/lib/postgresql/15/bin), so a test can skip with a message when they are not.
 */
int sky_test_pg_available(void);

/*
 * initdb a new cluster (user "skyio", trust auth on loopback only, no fsync) in a new temp
 * folder and start it on 127.0.0.1 and a free port; waits until it accepts connections.
 * The server refuses to run as root: as root, initdb and pg_ctl run as "nobody" (setpriv)
 * and the folder is made theirs. Fails the test on error, pointing at server.log.
 */
void sky_test_pg_start(sky_test_pg *pg);
/* pg_ctl stop -m fast (sessions are ended at once); the cluster stays. */
void sky_test_pg_stop(sky_test_pg *pg);
/* Start the stopped cluster again on the same port; waits until it accepts connections. */
void sky_test_pg_restart(sky_test_pg *pg);
/* Stop it (if running) and remove the folder. */
void sky_test_pg_free(sky_test_pg *pg);

#endif
