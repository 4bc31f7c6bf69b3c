/* Integration-test harness: a real redis-server on a free loopback port, in a temp folder. */
#ifndef SKY_TEST_HARNESS_REDIS_H
#define SKY_TEST_HARNESS_REDIS_H

#include <sys/types.h>

struct redisReply;

/** What a test Redis runs with; fill with sky_test_redis_options_init. */
typedef struct sky_test_redis_options {
    int appendonly;          /* 1: appendonly yes, fsync always (a restart keeps the data) */
    const char *requirepass; /* the default user's password, or NULL for none */
} sky_test_redis_options;

typedef struct sky_test_redis {
    pid_t pid;
    int port;
    sky_test_redis_options opts;
    char pass[128]; /* copy of opts.requirepass ("" for none) */
    char dir[256];  /* temp folder: its working directory (AOF, RDB) and its log */
    char url[384];  /* redis://[:pass@]127.0.0.1:PORT/0 */
} sky_test_redis;

/** No append-only file, no password. */
void sky_test_redis_options_init(sky_test_redis_options *o);

/*
 * Start /usr/bin/redis-server (or $SKY_TEST_REDIS_SERVER) on 127.0.0.1 and a free port, in a
 * new temp folder, with @p o (NULL: the defaults); wait until it answers PING (up to 10 s).
 * Fails the test on error, with a message saying to run scripts/install-deps when
 * redis-server is not installed. No snapshots (save ""), no protected mode beyond loopback.
 */
void sky_test_redis_start(sky_test_redis *r, const sky_test_redis_options *o);
/* SIGTERM (Redis writes its AOF and exits), wait; the folder stays. Returns the wait status. */
int sky_test_redis_stop(sky_test_redis *r);
/* SIGKILL, wait; the folder stays. */
void sky_test_redis_kill(sky_test_redis *r);
/*
 * Start it again on the same port and folder after a stop or kill (with @p wipe, its files
 * are removed first: it comes back empty). Waits until it answers PING (up to 10 s).
 */
void sky_test_redis_restart(sky_test_redis *r, int wipe);
/* Stop it (if running) and remove its folder. */
void sky_test_redis_free(sky_test_redis *r);

/*
 * One command on a short blocking hiredis connection (AUTH first when a password is set),
 * printf-style as redisCommand. Returns the reply (free it with freeReplyObject), or NULL
 * when Redis cannot be reached or the connection failed.
 */
struct redisReply *sky_test_redis_command(const sky_test_redis *r, const char *fmt, ...);

/* The integer a command returns (INCR, DBSIZE, XLEN, HLEN...), or -1 on any other reply. */
long long sky_test_redis_int(const sky_test_redis *r, const char *fmt, ...);

#endif
