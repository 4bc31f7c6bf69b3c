/*
 * The Redis store: the response cache and shared counters, through hiredis's asynchronous
 * API on the caller's loop (its libuv adapter). Redis is a helper, never a dependency of a
 * request: when it is unreachable every call fails at once with SKY_ECONNECT (the caller
 * bypasses the cache), a warning is logged once per outage, and a new connection is tried
 * at most every reconnect_interval_ms, on the next call.
 *
 * A key's minute budget shared by gateways is a bucket leased from in chunks (the script
 * below; the gateway's budget_shared.c spends the leases).
 *
 * The cache is bounded: a Lua script (atomic on the server) stores the value, records its
 * size and its order, and evicts the oldest values while the total is over the bound.
 * An expired value's size counts until the value is evicted in its turn.
 */
#include <curl/curl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <strings.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wconversion"
#include <hiredis/adapters/libuv.h>
#pragma GCC diagnostic pop

#include "internal.h"
#include "skyio/log.h"

#define CACHE_PREFIX "skyio:cache:"
#define CACHE_INDEX "skyio:cache#order"
#define CACHE_SIZES "skyio:cache#sizes"
#define CACHE_BYTES "skyio:cache#bytes"
#define CACHE_SEQ "skyio:cache#seq"
#define COUNTER_PREFIX "skyio:counter:"
#define BUCKET_PREFIX "skyio:bucket:"

static const char cache_put_lua[] =
    "local old = tonumber(redis.call('HGET', KEYS[3], KEYS[1]) or '0')\n"
    "if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "else redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[5]), KEYS[1])\n"
    "redis.call('HSET', KEYS[3], KEYS[1], #ARGV[1])\n"
    "local total = redis.call('INCRBY', KEYS[4], #ARGV[1] - old)\n"
    "while total > tonumber(ARGV[3]) do\n"
    "  local oldest = redis.call('ZPOPMIN', KEYS[2])\n"
    "  if #oldest == 0 then break end\n"
    "  local size = tonumber(redis.call('HGET', KEYS[3], oldest[1]) or '0')\n"
    "  redis.call('HDEL', KEYS[3], oldest[1])\n"
    "  redis.call('DEL', oldest[1])\n"
    "  total = redis.call('DECRBY', KEYS[4], size)\n"
    "end\n"
    "return total\n";

static const char counter_add_lua[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return v\n";

/*
 * A key's shared minute budget: one hash (requests and tokens left, when, at which rates),
 * refilled by the server's clock (TIME: the gateways' clocks do not matter). KEYS bucket;
 * ARGV rpm, tpm, requests wanted, tokens wanted, tokens given back (negative: taken).
 * Grants up to what is there; returns granted requests and tokens, the levels after, and
 * the milliseconds until what was not granted would be there.
 */
static const char bucket_lease_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local h = redis.call('HMGET', KEYS[1], 'r', 't', 'at', 'rpm', 'tpm')\n"
    "local r, k, at = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])\n"
    "if not r or not k or not at or tonumber(h[4]) ~= rpm or tonumber(h[5]) ~= tpm then\n"
    "  r, k, at = rpm, tpm, now end\n"
    "local m = math.max(0, now - at) / 60000\n"
    "r = math.min(rpm, r + m * rpm)\n"
    "k = math.min(tpm, k + m * tpm + tonumber(ARGV[5]))\n"
    "local function take(level, want, rate)\n"
    "  if rate <= 0 then return 0, level, 0 end\n"
    "  local g = math.max(0, math.min(want, math.floor(level)))\n"
    "  level = level - g\n"
    "  local need = math.min(want - g, rate)\n"
    "  local w = 0\n"
    "  if need > 0 and level < need then w = math.ceil((need - level) * 60000 / rate) end\n"
    "  return g, level, w\n"
    "end\n"
    "local gr, wr, gk, wk\n"
    "gr, r, wr = take(r, tonumber(ARGV[3]), rpm)\n"
    "gk, k, wk = take(k, tonumber(ARGV[4]), tpm)\n"
    "redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(k), 'at', now,\n"
    "           'rpm', ARGV[1], 'tpm', ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], 120000)\n"
    "return {gr, gk, math.floor(r), math.floor(k), math.max(wr, wk)}\n";

typedef struct redis_store {
    sky__store *store;
    redisAsyncContext *ac; /* NULL while disconnected */
    char host[256];
    int port;
    long db;
    char *password;
    uint64_t last_attempt; /* uv_now of the last connect */
    int warned;            /* this outage was logged */
    int closing;
    int connected;
    uint64_t inflight;      /* commands sent, not answered */
    uint64_t last_progress; /* uv_now of the connect or the last reply */
    uv_timer_t watch;       /* gives up on a connect or a reply that never comes */
    uv_timer_t close_timer;
} redis_store;

/* hiredis 0.14's libuv adapter drops poll errors (a refused connect reports nothing), so a
 * connection that makes no progress for this long is given up by a watchdog. */
#define CONNECT_TIMEOUT_MS 1000
#define REPLY_TIMEOUT_MS 2000
#define WATCH_INTERVAL_MS 100

typedef enum { OP_OPEN, OP_VALUE, OP_DONE, OP_COUNT, OP_LEASE, OP_SETUP } op_kind;

typedef struct redis_op {
    redis_store *r;
    op_kind kind;
    union {
        sky__store_value_cb value;
        sky__store_done_cb done;
        sky__store_count_cb count;
        sky__store_lease_cb lease;
    } cb;
    void *ud;
} redis_op;

/* ---- the URL: redis://[:password@]host[:port][/db] */

static int parse_url(redis_store *r, const char *url, sky_error *err)
{
    if (strncasecmp(url, "rediss://", 9) == 0)
        return sky_error_set(err, SKY_EINVAL,
                             "%s: rediss:// (Redis over TLS) is not supported by this build's "
                             "hiredis; use redis://",
                             r->store->safe_url);
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *pass = NULL, *path = NULL;
    int rc = SKY_EINVAL;
    if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE);
        curl_url_get(u, CURLUPART_PATH, &path, 0);
        snprintf(r->host, sizeof(r->host), "%s", host);
        r->port = port ? atoi(port) : 6379;
        r->db = path && path[0] == '/' && path[1] ? strtol(path + 1, NULL, 10) : 0;
        r->password = pass ? strdup(pass) : NULL;
        rc = pass && !r->password ? SKY_ENOMEM : 0;
    }
    if (rc == SKY_EINVAL)
        sky_error_set(err, rc, "%s: not a redis://host:port/db URL", r->store->safe_url);
    curl_free(host);
    curl_free(port);
    if (pass)
        memset(pass, 0, strlen(pass));
    curl_free(pass);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* ---- the connection */

static void warn_unreachable(redis_store *r, const char *why)
{
    if (r->warned || r->closing)
        return;
    r->warned = 1;
    SKY_WARN("store", "redis at %s:%d unreachable (%s): the cache is bypassed", r->host, r->port,
             why && why[0] ? why : "no reply");
}

static void on_connect(const redisAsyncContext *c, int status)
{
    redis_store *r = c->data;
    if (status != REDIS_OK) {
        warn_unreachable(r, c->errstr);
        r->ac = NULL; /* hiredis frees it after this call */
        return;
    }
    r->connected = 1;
    r->last_progress = uv_now(r->store->loop);
    if (r->warned)
        SKY_INFO("store", "redis at %s:%d is back: cache in use", r->host, r->port);
    r->warned = 0;
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    redis_store *r = c->data;
    r->ac = NULL;
    r->connected = 0;
    if (status != REDIS_OK)
        warn_unreachable(r, c->errstr);
}

static void on_reply(redisAsyncContext *c, void *reply, void *privdata);

/* AUTH and SELECT go first on every new connection; their failures are logged. */
static void send_setup(redis_store *r)
{
    char db[24];
    snprintf(db, sizeof(db), "%ld", r->db);
    const char *auth[] = {"AUTH", r->password};
    const char *select[] = {"SELECT", db};
    const char *const *cmds[] = {r->password ? auth : NULL, r->db ? select : NULL};
    for (size_t i = 0; i < 2; i++) {
        if (!cmds[i])
            continue;
        redis_op *op = calloc(1, sizeof(*op));
        if (!op)
            return;
        op->r = r;
        op->kind = OP_SETUP;
        if (redisAsyncCommandArgv(r->ac, on_reply, op, 2, (const char **)(uintptr_t)cmds[i],
                                  NULL) != REDIS_OK)
            free(op);
        else
            r->inflight++;
    }
}

static void connect_now(redis_store *r)
{
    r->last_attempt = uv_now(r->store->loop);
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac)
        return;
    if (ac->err) {
        warn_unreachable(r, ac->errstr);
        redisAsyncFree(ac);
        return;
    }
    ac->data = r;
    if (redisLibuvAttach(ac, r->store->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->connected = 0;
    r->inflight = 0;
    r->last_progress = r->last_attempt;
    send_setup(r);
}

/* Drop a connection that is stuck: its pending calls fail with SKY_ECONNECT. */
static void on_watch(uv_timer_t *t)
{
    redis_store *r = t->data;
    if (!r->ac || (r->connected && r->inflight == 0))
        return;
    uint64_t limit = r->connected ? REPLY_TIMEOUT_MS : CONNECT_TIMEOUT_MS;
    if (uv_now(r->store->loop) - r->last_progress < limit)
        return;
    warn_unreachable(r, r->connected ? "no reply" : "connect timed out");
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->connected = 0;
    redisAsyncFree(ac);
}

/* The connection to use, connecting again when the last try is old enough; or NULL. */
static redisAsyncContext *usable(redis_store *r, sky_error *err)
{
    if (!r->ac && uv_now(r->store->loop) - r->last_attempt >= r->store->opts.reconnect_interval_ms)
        connect_now(r);
    if (!r->ac)
        sky_error_set(err, SKY_ECONNECT, "redis at %s:%d unreachable: the cache is bypassed",
                      r->host, r->port);
    return r->ac;
}

/* ---- replies */

/* The bucket script's five integers. */
static void deliver_lease(redis_op *op, sky_error *e, const redisReply *rep)
{
    sky__store_lease_answer a;
    memset(&a, 0, sizeof(a));
    int64_t *out[] = {&a.reqs, &a.toks, &a.level_reqs, &a.level_toks, &a.wait_ms};
    if (!e->code && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5))
        sky_error_set(e, SKY_EPROTO, "redis: not a lease");
    for (size_t i = 0; !e->code && i < 5; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER)
            sky_error_set(e, SKY_EPROTO, "redis: not a lease");
        else
            *out[i] = (int64_t)rep->element[i]->integer;
    }
    if (e->code)
        memset(&a, 0, sizeof(a));
    op->cb.lease(e, &a, op->ud);
}

static void deliver(redis_op *op, const sky_error *err, const redisReply *rep)
{
    sky_error e = *err;
    switch (op->kind) {
    case OP_VALUE:
        if (!e.code && rep->type != REDIS_REPLY_STRING)
            sky_error_set(&e, SKY_ENOTFOUND, "no such entry");
        op->cb.value(&e,
                     e.code ? sky_span_make(NULL, 0) : sky_span_make(rep->str, (size_t)rep->len),
                     op->ud);
        break;
    case OP_COUNT:
        if (!e.code && rep->type != REDIS_REPLY_INTEGER)
            sky_error_set(&e, SKY_EPROTO, "redis: not a number");
        op->cb.count(&e, e.code ? 0 : (int64_t)rep->integer, op->ud);
        break;
    case OP_DONE:
        if (op->cb.done)
            op->cb.done(&e, op->ud);
        break;
    case OP_LEASE:
        deliver_lease(op, &e, rep);
        break;
    case OP_OPEN:
        if (e.code)
            warn_unreachable(op->r, e.message);
        sky__store_opened(op->r->store, NULL);
        break;
    case OP_SETUP:
        if (e.code)
            SKY_WARN("store", "redis at %s:%d: %s", op->r->host, op->r->port, e.message);
        break;
    }
}

static void on_reply(redisAsyncContext *c, void *reply, void *privdata)
{
    (void)c;
    redis_op *op = privdata;
    redis_store *r = op->r;
    const redisReply *rep = reply;
    if (r->inflight)
        r->inflight--;
    r->last_progress = uv_now(r->store->loop);
    sky_error err;
    sky_error_clear(&err);
    if (!rep && r->closing)
        sky_error_set(&err, SKY_ECANCELED, "store closed");
    else if (!rep)
        sky_error_set(&err, SKY_ECONNECT, "redis at %s:%d: connection lost", r->host, r->port);
    else if (rep->type == REDIS_REPLY_ERROR)
        sky_error_set(&err, SKY_EPROTO, "redis: %.*s", (int)rep->len, rep->str);
    deliver(op, &err, rep);
    free(op);
}

static void opened_later(const sky_error *err, void *ud)
{
    redis_op *op = ud;
    deliver(op, err, NULL);
    free(op);
}

/* The op could not be sent: its callback runs from the loop with @p err. */
static void fail_op(redis_store *r, redis_op *op, const sky_error *err)
{
    sky__store *s = r->store;
    switch (op->kind) {
    case OP_VALUE:
        sky__store_fail_value(s, op->cb.value, op->ud, err);
        break;
    case OP_COUNT:
        sky__store_fail_count(s, op->cb.count, op->ud, err);
        break;
    case OP_LEASE:
        sky__store_fail_lease(s, op->cb.lease, op->ud, err);
        break;
    case OP_DONE:
        sky__store_fail_done(s, op->cb.done, op->ud, err);
        break;
    case OP_OPEN:
        sky__store_fail_done(s, opened_later, op, err);
        return; /* freed by opened_later */
    case OP_SETUP:
        break;
    }
    free(op);
}

static void send_op(redis_store *r, redis_op *op, int argc, const char **argv, const size_t *lens)
{
    sky_error err;
    sky_error_clear(&err);
    redisAsyncContext *ac = usable(r, &err);
    /* While a new connection is being made (the server may be away: a refused connect is
     * only seen by the watchdog), calls do not wait for it: the cache is bypassed. The
     * first connection's PING waits, as the open does. */
    if (ac && !r->connected && op->kind != OP_OPEN) {
        sky_error_set(&err, SKY_ECONNECT, "redis at %s:%d: connecting; the cache is bypassed",
                      r->host, r->port);
        ac = NULL;
    }
    if (ac && redisAsyncCommandArgv(ac, on_reply, op, argc, argv, lens) == REDIS_OK) {
        if (r->inflight++ == 0)
            r->last_progress = uv_now(r->store->loop);
        return;
    }
    if (ac)
        sky_error_set(&err, SKY_ECONNECT, "redis at %s:%d: command not sent", r->host, r->port);
    fail_op(r, op, &err);
}

static redis_op *new_op(redis_store *r, op_kind kind, void *ud)
{
    redis_op *op = calloc(1, sizeof(*op));
    if (op) {
        op->r = r;
        op->kind = kind;
        op->ud = ud;
    }
    return op;
}

static sky_error oom(void)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ENOMEM, "out of memory");
    return e;
}

/* "prefix" + name in a new string. */
static char *prefixed(const char *prefix, const char *name)
{
    size_t a = strlen(prefix), b = strlen(name);
    char *k = malloc(a + b + 1);
    if (k) {
        memcpy(k, prefix, a);
        memcpy(k + a, name, b + 1);
    }
    return k;
}

/* ---- operations */

static void redis_cache_get(sky__store *s, const char *key, sky__store_value_cb cb, void *ud)
{
    redis_store *r = s->impl;
    redis_op *op = new_op(r, OP_VALUE, ud);
    char *k = prefixed(CACHE_PREFIX, key);
    if (!op || !k) {
        free(op);
        free(k);
        sky_error e = oom();
        sky__store_fail_value(s, cb, ud, &e);
        return;
    }
    op->cb.value = cb;
    const char *argv[] = {"GET", k};
    send_op(r, op, 2, argv, NULL);
    free(k);
}

static void redis_cache_put(sky__store *s, const char *key, sky_span value, uint64_t ttl_ms,
                            sky__store_done_cb cb, void *ud)
{
    redis_store *r = s->impl;
    sky_error e;
    sky_error_clear(&e);
    if (value.len > s->opts.cache_max_bytes) {
        sky_error_set(&e, SKY_ETOOBIG, "value larger than the cache");
        sky__store_fail_done(s, cb, ud, &e);
        return;
    }
    redis_op *op = new_op(r, OP_DONE, ud);
    char *k = prefixed(CACHE_PREFIX, key);
    if (!op || !k) {
        free(op);
        free(k);
        e = oom();
        sky__store_fail_done(s, cb, ud, &e);
        return;
    }
    op->cb.done = cb;
    char ttl[24], max[24];
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    snprintf(max, sizeof(max), "%llu", (unsigned long long)s->opts.cache_max_bytes);
    const char *argv[] = {"EVAL",      cache_put_lua, "5",       k,   CACHE_INDEX, CACHE_SIZES,
                          CACHE_BYTES, CACHE_SEQ,     value.ptr, ttl, max};
    size_t lens[SKY_ARRAY_LEN(argv)];
    for (size_t i = 0; i < SKY_ARRAY_LEN(argv); i++)
        lens[i] = i == 8 ? value.len : strlen(argv[i]);
    argv[8] = value.ptr ? value.ptr : "";
    send_op(r, op, (int)SKY_ARRAY_LEN(argv), argv, lens);
    free(k);
}

static void redis_counter_add(sky__store *s, const char *name, int64_t delta, uint64_t ttl_ms,
                              sky__store_count_cb cb, void *ud)
{
    redis_store *r = s->impl;
    redis_op *op = new_op(r, OP_COUNT, ud);
    char *k = prefixed(COUNTER_PREFIX, name);
    if (!op || !k) {
        free(op);
        free(k);
        sky_error e = oom();
        sky__store_fail_count(s, cb, ud, &e);
        return;
    }
    op->cb.count = cb;
    char d[24], ttl[24];
    snprintf(d, sizeof(d), "%lld", (long long)delta);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    const char *argv[] = {"EVAL", counter_add_lua, "1", k, d, ttl};
    send_op(r, op, 6, argv, NULL);
    free(k);
}

static void redis_bucket_lease(sky__store *s, const char *name, const sky__store_lease_ask *ask,
                               sky__store_lease_cb cb, void *ud)
{
    redis_store *r = s->impl;
    redis_op *op = new_op(r, OP_LEASE, ud);
    char *k = prefixed(BUCKET_PREFIX, name);
    if (!op || !k) {
        free(op);
        free(k);
        sky_error e = oom();
        sky__store_fail_lease(s, cb, ud, &e);
        return;
    }
    op->cb.lease = cb;
    char v[5][32];
    snprintf(v[0], sizeof(v[0]), "%.17g", ask->rpm > 0 ? ask->rpm : 0);
    snprintf(v[1], sizeof(v[1]), "%.17g", ask->tpm > 0 ? ask->tpm : 0);
    snprintf(v[2], sizeof(v[2]), "%lld", (long long)ask->want_reqs);
    snprintf(v[3], sizeof(v[3]), "%lld", (long long)ask->want_toks);
    snprintf(v[4], sizeof(v[4]), "%lld", (long long)ask->give_toks);
    const char *argv[] = {"EVAL", bucket_lease_lua, "1", k, v[0], v[1], v[2], v[3], v[4]};
    send_op(r, op, 9, argv, NULL);
    free(k);
}

/* ---- open and close */

static int redis_open(sky__store *s, sky_error *err)
{
    redis_store *r = calloc(1, sizeof(*r));
    if (!r)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    r->store = s;
    int rc = parse_url(r, s->url, err);
    redis_op *op = rc ? NULL : new_op(r, OP_OPEN, NULL);
    if (!op) {
        free(r->password);
        free(r);
        return rc ? rc : sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    uv_timer_init(s->loop, &r->close_timer);
    uv_timer_init(s->loop, &r->watch);
    r->close_timer.data = r->watch.data = r;
    uv_timer_start(&r->watch, on_watch, WATCH_INTERVAL_MS, WATCH_INTERVAL_MS);
    uv_unref((uv_handle_t *)&r->watch);
    s->impl = r;
    r->last_attempt = uv_now(s->loop) - s->opts.reconnect_interval_ms;
    const char *argv[] = {"PING"};
    send_op(r, op, 1, argv, NULL);
    return 0;
}

static void on_close_done(uv_handle_t *h)
{
    redis_store *r = h->data;
    if (!uv_is_closing((uv_handle_t *)&r->watch)) {
        uv_close((uv_handle_t *)&r->watch, on_close_done);
        return;
    }
    sky__store *s = r->store;
    free(r->password);
    free(r);
    s->impl = NULL;
    sky__store_backend_closed(s);
}

/* From a timer, never from inside a hiredis callback (where a free would be deferred). */
static void on_close_timer(uv_timer_t *t)
{
    redis_store *r = t->data;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks get SKY_ECANCELED */
    }
    uv_close((uv_handle_t *)t, on_close_done);
}

static void redis_close(sky__store *s)
{
    redis_store *r = s->impl;
    r->closing = 1;
    uv_timer_start(&r->close_timer, on_close_timer, 0, 0);
}

const sky__store_vt sky__store_redis_vt = {
    .name = "redis",
    .caps = SKY__STORE_CACHE | SKY__STORE_COUNTERS | SKY__STORE_BUCKETS,
    .open = redis_open,
    .cache_get = redis_cache_get,
    .cache_put = redis_cache_put,
    .counter_add = redis_counter_add,
    .bucket_lease = redis_bucket_lease,
    .close = redis_close,
};
