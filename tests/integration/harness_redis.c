/* Integration-test harness: redis-server. See harness_redis.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "harness.h"
#include "harness_redis.h"

void sky_test_redis_options_init(sky_test_redis_options *o)
{
    memset(o, 0, sizeof(*o));
}

/* A port the kernel just handed out on 127.0.0.1 and nobody holds now. */
static int rd_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* The settings go in a file, so the password is not on redis-server's command line. */
static void rd_write_conf(const sky_test_redis *r)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/redis.conf", r->dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "bind 127.0.0.1\nport %d\ndir %s\nlogfile %s/redis.log\nsave \"\"\n", r->port,
            r->dir, r->dir);
    fprintf(f, "daemonize no\nappendonly %s\nappendfsync always\n",
            r->opts.appendonly ? "yes" : "no");
    if (r->pass[0])
        fprintf(f, "requirepass %s\n", r->pass);
    fclose(f);
}

static const char *rd_bin(void)
{
    const char *bin = getenv("SKY_TEST_REDIS_SERVER");
    return bin && *bin ? bin : "/usr/bin/redis-server";
}

static redisContext *rd_connect(const sky_test_redis *r)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (r->pass[0]) {
        redisReply *rep = redisCommand(c, "AUTH %s", r->pass);
        int ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

static int rd_pings(const void *arg)
{
    redisReply *rep = sky_test_redis_command(arg, "PING");
    int ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep)
        freeReplyObject(rep);
    return ok;
}

static void rd_spawn(sky_test_redis *r)
{
    const char *bin = rd_bin();
    char conf[512];
    if (access(bin, X_OK) != 0)
        fail_msg("redis-server is not installed (%s missing): run scripts/install-deps", bin);
    snprintf(conf, sizeof(conf), "%s/redis.conf", r->dir);
    pid_t pid = sky_test_fork();
    if (pid == 0) {
        execl(bin, bin, conf, (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    if (sky_test_wait_ready(&r->pid, rd_pings, r, 10000, "redis-server", r->dir, "redis.log"))
        return;
    sky_test_redis_kill(r);
    fail_msg("redis-server did not answer PING within 10 s; see %s/redis.log", r->dir);
}

void sky_test_redis_start(sky_test_redis *r, const sky_test_redis_options *o)
{
    memset(r, 0, sizeof(*r));
    if (o)
        r->opts = *o;
    if (r->opts.requirepass)
        snprintf(r->pass, sizeof(r->pass), "%s", r->opts.requirepass);
    r->opts.requirepass = r->pass;
    sky_test_tmpdir(r->dir, sizeof(r->dir));
    r->port = rd_free_port();
    if (r->pass[0])
        snprintf(r->url, sizeof(r->url), "redis://:%s@127.0.0.1:%d/0", r->pass, r->port);
    else
        snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", r->port);
    rd_write_conf(r);
    rd_spawn(r);
}

int sky_test_redis_stop(sky_test_redis *r)
{
    int status = sky_test_stop_child(r->pid);
    r->pid = 0;
    return status;
}

void sky_test_redis_kill(sky_test_redis *r)
{
    int status;
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &status, 0);
    r->pid = 0;
}

static void rd_wipe(const sky_test_redis *r)
{
    char cmd[600];
    /* Everything but the config: the AOF folder (Redis 7) or file, any RDB, the log. */
    snprintf(cmd, sizeof(cmd), "cd '%s' && find . -mindepth 1 ! -name redis.conf -exec rm -rf {} +",
             r->dir);
    if (system(cmd) != 0)
        fail_msg("cannot empty %s", r->dir);
}

void sky_test_redis_restart(sky_test_redis *r, int wipe)
{
    if (r->pid > 0)
        sky_test_redis_stop(r);
    if (wipe)
        rd_wipe(r);
    rd_spawn(r);
}

void sky_test_redis_free(sky_test_redis *r)
{
    if (r->pid > 0)
        sky_test_redis_stop(r);
    if (r->dir[0])
        sky_test_rmdir(r->dir);
    r->dir[0] = '\0';
}

static redisReply *rd_vcommand(const sky_test_redis *r, const char *fmt, va_list ap)
{
    redisContext *c = rd_connect(r);
    if (c == NULL)
        return NULL;
    redisReply *rep = redisvCommand(c, fmt, ap);
    redisFree(c);
    return rep;
}

redisReply *sky_test_redis_command(const sky_test_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = rd_vcommand(r, fmt, ap);
    va_end(ap);
    return rep;
}

long long sky_test_redis_int(const sky_test_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = rd_vcommand(r, fmt, ap);
    va_end(ap);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    if (rep)
        freeReplyObject(rep);
    return v;
}
