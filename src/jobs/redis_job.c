/*
 * The Redis job's connection: connect, authenticate, select, load the scripts and find (or
 * create) the job, in one pipelined handshake; after a lost connection, the same again with
 * backoff, and a job whose token changed or vanished is lost for good.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "skyio/log.h"
#include "skyio/rand.h"
#include "redis_internal.h"

enum { HS_AUTH = 1, HS_SELECT, HS_SCRIPT, HS_CREATE };

/* A worker waiting for its job looks again at least this often. */
#define WAIT_JOB_MS 500

static const char *const key_names[SKY__RK_COUNT] = {"meta", "ids",     "stream", "done",
                                                     "out",  "workers", "rate"};

static int job_connect(sky_redis_job *j, sky_error *err);
static void schedule_reconnect(sky_redis_job *j);

uint64_t sky__redis_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sky_redis_job_options_init(sky_redis_job_options *o)
{
    memset(o, 0, sizeof(*o));
    o->claim_idle_ms = 60000;
    o->read_count = 256;
    o->max_unsent = 8192;
    o->connect_timeout_ms = 5000;
}

static void script_shas(sky_redis_job *j)
{
    for (int i = 0; i < SKY__RS_COUNT; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        const char *s = sky__redis_scripts[i];
        EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL);
        for (unsigned int k = 0; k < n && k < 20; k++)
            snprintf(j->sha[i] + 2 * k, 3, "%02x", md[k]);
    }
}

static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* ---- replies ---- */

int sky__redis_is_error(const redisReply *r, const char *prefix)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str &&
           strncmp(r->str, prefix, strlen(prefix)) == 0;
}

void sky__redis_reply_error(sky_error *err, int code, const char *what, const redisReply *r)
{
    const char *text = r == NULL                      ? "the connection was lost"
                       : r->type == REDIS_REPLY_ERROR ? r->str
                                                      : "an unexpected reply";
    sky_error_set(err, code, "%s: %s", what, text);
}

/* ---- parts ---- */

void sky__redis_add_part(sky_redis_job *j, sky__redis_part *p)
{
    p->next = j->parts;
    j->parts = p;
}

void sky__redis_remove_part(sky_redis_job *j, sky__redis_part *p)
{
    for (sky__redis_part **pp = &j->parts; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

void sky__redis_mark_lost(sky_redis_job *j, const char *why)
{
    if (j->lost)
        return;
    j->lost = 1;
    sky_error_set(&j->lost_err, SKY_ENOTFOUND,
                  "job %s: %s; stopping, and sending nothing again (rerun the loader to start "
                  "the job afresh)",
                  j->name, why);
    for (sky__redis_part *p = j->parts, *next; p; p = next) {
        next = p->next;
        if (p->on_lost)
            p->on_lost(p);
    }
}

int sky_redis_job_lost(const sky_redis_job *j, sky_error *err)
{
    if (j->lost && err)
        *err = j->lost_err;
    return j->lost;
}

/* ---- sending ---- */

int sky__redis_send(sky_redis_job *j, redisCallbackFn *cb, void *ud, int argc, const char **argv,
                    const size_t *lens)
{
    if (!j->up || j->ac == NULL || j->closing)
        return SKY_ECONNECT;
    return redisAsyncCommandArgv(j->ac, cb, ud, argc, argv, lens) == REDIS_OK ? 0 : SKY_ECONNECT;
}

int sky__redis_eval(sky_redis_job *j, int which, const int *keys, int nkeys, int nargs,
                    const char **args, const size_t *lens, redisCallbackFn *cb, void *ud)
{
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc(sizeof(*argv) * (size_t)argc);
    size_t *alen = malloc(sizeof(*alen) * (size_t)argc);
    char nk[16];
    int rc = SKY_ENOMEM;
    if (argv && alen) {
        snprintf(nk, sizeof(nk), "%d", nkeys);
        argv[0] = "EVALSHA";
        argv[1] = j->sha[which];
        argv[2] = nk;
        for (int i = 0; i < 3; i++)
            alen[i] = strlen(argv[i]);
        for (int i = 0; i < nkeys; i++) {
            argv[3 + i] = j->keys[keys[i]];
            alen[3 + i] = strlen(argv[3 + i]);
        }
        for (int i = 0; i < nargs; i++) {
            argv[3 + nkeys + i] = args[i];
            alen[3 + nkeys + i] = lens ? lens[i] : strlen(args[i]);
        }
        rc = sky__redis_send(j, cb, ud, argc, argv, alen);
    }
    free(argv);
    free(alen);
    return rc;
}

/* ---- opening ---- */

static void open_done(sky_redis_job *j, const sky_error *err)
{
    if (j->opened)
        return;
    j->opened = 1;
    uv_timer_stop(&j->timer);
    SKY_DEBUG("redis", "job %s: %s", j->name, err ? err->message : "open");
    if (j->open_cb)
        j->open_cb(j, err, j->open_ud);
}

static void drop_connection(sky_redis_job *j)
{
    if (j->ac)
        redisAsyncDisconnect(j->ac);
}

/* The handshake failed: the first open reports it; later, it is one more lost connection. */
static void hs_fail(sky_redis_job *j)
{
    if (!j->opened)
        open_done(j, &j->hs_err);
    drop_connection(j);
}

static void hs_create_send(sky_redis_job *j);

static void on_wait_tick(uv_timer_t *t)
{
    sky_redis_job *j = t->data;
    if (j->ac && !j->closing)
        hs_create_send(j);
}

/* The stream got its first entry (the loader's first chunk), or the wait is up: look again.
 * Entries there for a job that is not (a stream left behind) would end every wait at once:
 * the next wait is the timer's then. */
static void on_wait_read(redisAsyncContext *ac, void *reply, void *ud)
{
    sky_redis_job *j = ac->data;
    redisReply *r = reply;
    (void)ud;
    if (r == NULL || j == NULL || j->closing)
        return; /* the connection went: its callbacks say why */
    j->wait_had_entries = r->type == REDIS_REPLY_ARRAY;
    hs_create_send(j);
}

/* A worker started before its loader waits for the job's stream to get an entry (nothing
 * else is sent on the connection until the job is open, so it may block there). */
static void wait_for_job(sky_redis_job *j)
{
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", WAIT_JOB_MS);
    const char *argv[] = {"XREAD", "COUNT", "1", "BLOCK", ms, "STREAMS", j->keys[SKY__RK_STREAM],
                          "0-0"};
    SKY_DEBUG("redis", "job %s: not there yet: waiting for it", j->name);
    uv_timer_stop(&j->timer); /* no connect timeout while waiting */
    if (j->wait_had_entries ||
        redisAsyncCommandArgv(j->ac, on_wait_read, NULL, 8, argv, NULL) != REDIS_OK)
        uv_timer_start(&j->timer, on_wait_tick, WAIT_JOB_MS, 0);
}

/* The job was found (its token), or is not there. */
static void hs_job(sky_redis_job *j, const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL) {
        if (j->token[0]) {
            sky__redis_mark_lost(j, "its state is gone from Redis (restarted without its data, "
                                    "or the job deleted)");
            drop_connection(j);
            return;
        }
        if (!j->o.wait) {
            sky_error_set(&j->hs_err, SKY_ENOTFOUND, "no job %s in this Redis", j->name);
            hs_fail(j);
            return;
        }
        wait_for_job(j); /* a worker waits for its loader */
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        sky__redis_reply_error(&j->hs_err, SKY_EPROTO, "opening the job", r);
        hs_fail(j);
        return;
    }
    if (j->token[0] && strcmp(j->token, r->str) != 0) {
        sky__redis_mark_lost(j, "it was deleted and made again since this run began");
        drop_connection(j);
        return;
    }
    snprintf(j->token, sizeof(j->token), "%s", r->str);
    j->up = 1;
    j->ever_up = 1;
    j->backoff_ms = 0;
    sky__redis_rate_on_up(j);
    if (!j->opened)
        open_done(j, NULL);
    else
        for (sky__redis_part *p = j->parts, *next; p; p = next) {
            next = p->next;
            if (p->on_up)
                p->on_up(p);
        }
}

static void hs_error(sky_redis_job *j, int step, const redisReply *r)
{
    if (j->hs_err.code)
        return; /* the first error is the cause; NOAUTH after a refused AUTH is not */
    if (step == HS_AUTH)
        sky__redis_reply_error(&j->hs_err, SKY_EAUTH, "Redis refused the credentials", r);
    else if (sky__redis_is_error(r, "NOAUTH"))
        sky_error_set(&j->hs_err, SKY_EAUTH,
                      "Redis wants a password (NOAUTH): give it in the URL or REDIS_PASSWORD");
    else
        sky__redis_reply_error(&j->hs_err, SKY_EPROTO, "Redis refused the job's set-up", r);
}

static void on_hs_reply(redisAsyncContext *ac, void *reply, void *ud)
{
    sky_redis_job *j = ac->data;
    redisReply *r = reply;
    int step = (int)(uintptr_t)ud;
    if (r == NULL || j == NULL)
        return; /* the connection went: its callbacks say why */
    if (r->type == REDIS_REPLY_ERROR)
        hs_error(j, step, r);
    if (step != HS_CREATE)
        return;
    if (j->hs_err.code)
        hs_fail(j);
    else
        hs_job(j, r);
}

static void hs_create_send(sky_redis_job *j)
{
    j->rate_set_done = 0; /* a new connection: send the ceiling again */
    char token[SKY_UUID_LEN + 1];
    sky_rand_uuid(token);
    const char *argv[] = {"EVALSHA",
                          j->sha[SKY__RS_CREATE],
                          "2",
                          j->keys[SKY__RK_META],
                          j->keys[SKY__RK_STREAM],
                          j->o.create && !j->ever_up ? "1" : "0",
                          token,
                          SKY__REDIS_GROUP};
    redisAsyncCommandArgv(j->ac, on_hs_reply, (void *)(uintptr_t)HS_CREATE, 8, argv, NULL);
}

static void hs_send(sky_redis_job *j)
{
    redisAsyncContext *ac = j->ac;
    sky_error_clear(&j->hs_err);
    if (j->url.password[0] || j->url.user[0]) {
        const char *argv[3] = {"AUTH", NULL, NULL};
        int n = 1;
        if (j->url.user[0])
            argv[n++] = j->url.user;
        argv[n++] = j->url.password;
        redisAsyncCommandArgv(ac, on_hs_reply, (void *)(uintptr_t)HS_AUTH, n, argv, NULL);
    }
    if (j->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", j->url.db);
        const char *argv[] = {"SELECT", db};
        redisAsyncCommandArgv(ac, on_hs_reply, (void *)(uintptr_t)HS_SELECT, 2, argv, NULL);
    }
    for (int i = 0; i < SKY__RS_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", sky__redis_scripts[i]};
        redisAsyncCommandArgv(ac, on_hs_reply, (void *)(uintptr_t)HS_SCRIPT, 3, argv, NULL);
    }
    hs_create_send(j);
}

/* ---- the connection's life ---- */

static void finish_close(sky_redis_job *j);

static void lost_connection(sky_redis_job *j, const sky_error *why)
{
    j->ac = NULL;
    j->up = 0;
    if (j->closing) {
        finish_close(j);
    } else if (!j->opened) {
        open_done(j, why);
    } else if (j->ever_up && !j->lost) {
        schedule_reconnect(j);
    }
}

static void conn_error(const sky_redis_job *j, const redisAsyncContext *ac, sky_error *out)
{
    /* the context's own error: hiredis copies it to ac->err only after onConnect */
    int code = ac->c.err;
    const char *why = ac->c.errstr[0] ? ac->c.errstr : "connection lost";
    if (code == REDIS_ERR_PROTOCOL)
        sky_error_set(out, SKY_EPROTO, "not a Redis server at %s:%d, it seems (%s)", j->url.host,
                      j->url.port, why);
    else if (code == REDIS_ERR_EOF)
        sky_error_set(out, SKY_EPROTO, "%s:%d closed the connection (not a Redis server?)",
                      j->url.host, j->url.port);
    else
        sky_error_set(out, SKY_ECONNECT, "cannot connect to Redis at %s:%d: %s", j->url.host,
                      j->url.port, why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    sky_redis_job *j = ac->data;
    sky_error e;
    sky_error_clear(&e);
    if (status == REDIS_OK || j == NULL)
        return;
    conn_error(j, ac, &e);
    lost_connection(j, &e);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    sky_redis_job *j = ac->data;
    sky_error e;
    sky_error_clear(&e);
    if (j == NULL)
        return;
    sky_error_clear(&e);
    if (status != REDIS_OK)
        conn_error(j, ac, &e);
    else if (j->hs_err.code)
        e = j->hs_err;
    else
        sky_error_set(&e, SKY_ECONNRESET, "Redis at %s:%d closed the connection", j->url.host,
                      j->url.port);
    lost_connection(j, &e);
}

static int job_connect(sky_redis_job *j, sky_error *err)
{
    redisAsyncContext *ac = redisAsyncConnect(j->url.host, j->url.port);
    if (ac == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory connecting to Redis");
    if (ac->err) {
        sky_error_set(err, SKY_ECONNECT, "cannot connect to Redis at %s:%d: %s", j->url.host,
                      j->url.port, ac->errstr);
        redisAsyncFree(ac);
        return SKY_ECONNECT;
    }
    ac->data = j;
    if (sky__redis_uv_attach(ac, j->loop) < 0) {
        redisAsyncFree(ac);
        return sky_error_set(err, SKY_ENOMEM, "out of memory connecting to Redis");
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    j->ac = ac;
    hs_send(j);
    return 0;
}

static void on_reconnect_tick(uv_timer_t *t)
{
    sky_redis_job *j = t->data;
    sky_error e;
    sky_error_clear(&e);
    if (j->closing || j->lost || j->ac)
        return;
    if (job_connect(j, &e) < 0)
        schedule_reconnect(j);
}

static void schedule_reconnect(sky_redis_job *j)
{
    j->backoff_ms = j->backoff_ms ? j->backoff_ms * 2 : 250;
    if (j->backoff_ms > 5000)
        j->backoff_ms = 5000;
    uv_timer_start(&j->timer, on_reconnect_tick, j->backoff_ms, 0);
}

static void on_open_timeout(uv_timer_t *t)
{
    sky_redis_job *j = t->data;
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ETIMEDOUT, "Redis at %s:%d did not answer within %llu ms", j->url.host,
                  j->url.port, (unsigned long long)j->o.connect_timeout_ms);
    open_done(j, &e);
    if (j->ac) {
        redisAsyncContext *ac = j->ac;
        j->ac = NULL;
        ac->data = NULL; /* its callbacks have nothing more to say */
        redisAsyncFree(ac);
    }
}

static int job_init(sky_redis_job *j, uv_loop_t *loop, const sky_redis_job_options *o)
{
    char host[64];
    j->loop = loop;
    j->o = *o;
    j->url = *o->url;
    j->o.url = &j->url;
    snprintf(j->name, sizeof(j->name), "%s", o->name);
    j->o.name = j->name;
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "worker");
    host[sizeof(host) - 1] = '\0';
    if (o->consumer)
        snprintf(j->consumer, sizeof(j->consumer), "%s", o->consumer);
    else
        snprintf(j->consumer, sizeof(j->consumer), "%s-%ld", host, (long)getpid());
    j->o.consumer = j->consumer;
    for (int i = 0; i < SKY__RK_COUNT; i++)
        snprintf(j->keys[i], sizeof(j->keys[i]), "{skyio:%s}:%s", j->name, key_names[i]);
    script_shas(j);
    j->entries = json_object();
    if (j->entries == NULL || uv_timer_init(loop, &j->timer) != 0)
        return SKY_ENOMEM;
    j->timer.data = j;
    j->timer_open = 1;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void job_free(sky_redis_job *j)
{
    sky_redis_url_wipe(&j->url);
    json_decref(j->entries);
    if (j->timer_open)
        uv_close((uv_handle_t *)&j->timer, on_timer_closed);
    else
        free(j);
}

int sky_redis_job_open(uv_loop_t *loop, const sky_redis_job_options *o, sky_redis_job_cb cb,
                       void *user_data, sky_redis_job **out, sky_error *err)
{
    *out = NULL;
    if (o == NULL || o->url == NULL || !valid_name(o->name))
        return sky_error_set(err, SKY_EINVAL,
                             "a job needs a name of 1 to 200 letters, digits, '.', '_' or '-'");
    sky_redis_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = job_init(j, loop, o);
    if (rc == 0)
        rc = job_connect(j, err);
    else
        sky_error_set(err, rc, "out of memory");
    if (rc < 0) {
        job_free(j);
        return rc;
    }
    j->open_cb = cb;
    j->open_ud = user_data;
    uv_timer_start(&j->timer, on_open_timeout, o->connect_timeout_ms, 0);
    *out = j;
    return 0;
}

static void finish_close(sky_redis_job *j)
{
    uv_timer_stop(&j->timer);
    job_free(j);
}

void sky_redis_job_close(sky_redis_job *j)
{
    if (j == NULL)
        return;
    sky__redis_rate_stop(j);
    if (j->loader)
        sky__redis_loader_cancel(j->loader);
    if (j->collector)
        sky__redis_collector_cancel(j->collector);
    j->closing = 1;
    j->up = 0;
    uv_timer_stop(&j->timer);
    if (j->ac)
        redisAsyncDisconnect(j->ac); /* on_disconnect finishes */
    else
        finish_close(j);
}
