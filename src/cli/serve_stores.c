/*
 * `skyio serve --cache / --state / --postgres`: the stores the gateway keeps things in.
 *
 * With --threads N every loop has stores of its own, opened on it before its thread runs
 * and closed on it when it ends, so no hiredis or libpq object is touched from two threads:
 * a Redis connection per loop, PostgreSQL's pool divided between the loops (one each at
 * least), and a SQLite connection per loop on the same file (WAL: one writer at a time,
 * readers beside it; each loop's writer thread hands its results back to its own loop, as
 * with one loop, so src/store needs nothing new). What a request keeps is committed before
 * another reads it whatever loop either is on; the day's use and the admin keys are shared
 * in memory (gateway/shared.c), read from the store once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "gateway/admin.h"
#include "gateway/stores.h"
#include "serve_stores.h"

const char sky_cli_stores_usage[] =
    "stores (what the gateway keeps):\n"
    "  --state FILE              a SQLite file (created; WAL) for the usage records, the\n"
    "                            Responses API's kept answers (GET/DELETE /v1/responses/ID,\n"
    "                            per key) and conversations, and the cache unless --cache\n"
    "                            names another store\n"
    "  --postgres URL            postgresql://USER@HOST:PORT/DB for the usage records, the\n"
    "                            kept answers and conversations (the password from\n"
    "                            PGPASSWORD or ~/.pgpass, not the URL);\n"
    "                            down at start: exit 3; down later: records wait in a\n"
    "                            bounded queue and are written when it is back\n"
    "  --usage-queue-max N       usage records held in memory while the store is away\n"
    "                            (default 100000, split between --threads loops); past it\n"
    "                            they go to --usage-spill, else they are lost (counted\n"
    "                            in /metrics)\n"
    "  --usage-spill FILE        a local SQLite file for the records past that bound while\n"
    "                            PostgreSQL is away (10,000,000 at most); written to it when\n"
    "                            it is back, also after a restart (one loop: not with\n"
    "                            --threads above 1)\n"
    "  --cache URL               the response cache: redis://HOST:PORT/DB or a SQLite file.\n"
    "                            With a cache (--cache, or --state's file), a request uses\n"
    "                            it when its header x-skyio-cache says on (look up, keep on\n"
    "                            a miss) or refresh (go upstream, keep); off: never. Without\n"
    "                            the header: when the config's \"cache\".models lists its\n"
    "                            model true, never when false, else when its body says\n"
    "                            \"temperature\": 0. The answer says x-skyio-cache-status:\n"
    "                            hit|miss|refresh. 200 answers are kept, streams too once\n"
    "                            they ended with [DONE] (a stream hit is replayed as a\n"
    "                            stream; a whole request never gets a kept stream), up to\n"
    "                            \"cache\".max_entry_bytes each (default 1 MiB); embeddings\n"
    "                            are kept per input (only new inputs go upstream: partial).\n"
    "                            Redis away: served upstream, with a warning\n"
    "  --redis URL               the same as --cache with a redis:// URL\n"
    "  --cache-ttl-s S           how long a cached answer lives (default: the config's\n"
    "                            \"cache\".ttl_s, else 3600; a model's own ttl_s wins)\n"
    "  --admin-key-env NAME      the admin API on, with the master key in the environment\n"
    "                            variable NAME (never on the command line): POST /admin/keys\n"
    "                            {\"name\", \"models\", \"rpm\", \"tpm\", \"daily_tokens\",\n"
    "                            \"daily_cost\"} answers a new key once\n"
    "                            (kept hashed in --state or --postgres; a restart keeps it),\n"
    "                            GET /admin/keys lists them, DELETE /admin/keys/NAME revokes\n"
    "  `skyio usage --state FILE | --postgres URL` prints the usage totals.\n"
    "\n";

const char sky_cli_stores_config_usage[] =
    "  cache        when the response cache (--cache or --state) answers a request that\n"
    "               has no x-skyio-cache header: {\"models\": {\"gpt-4o\": true,\n"
    "               \"gpt-4o-mini\": false, \"text-embedding-3-small\": {\"ttl_s\": 86400}},\n"
    "               \"ttl_s\": 3600, \"max_entry_bytes\": 1048576, \"temperature_zero\": true}:\n"
    "               a model listed true (or with its own ttl_s) always, false never; any\n"
    "               other when its body says \"temperature\": 0 (unless temperature_zero is\n"
    "               false). The Responses API only when its header asks (its answers\n"
    "               are state). The header (on, refresh, off) always wins.\n";

void sky_cli_stores_init(sky_cli_stores *st)
{
    memset(st, 0, sizeof(*st));
}

int sky_cli_stores_config(sky_cli_stores *st, const json_t *doc)
{
    gw_cache_conf *conf = NULL;
    sky_error err;
    sky_error_clear(&err);
    if (sky__gw_cache_conf_parse(json_object_get(doc, "cache"), &conf, &err) < 0) {
        fprintf(stderr, "skyio serve: the config's %s\n", err.message);
        return -1;
    }
    sky__gw_cache_conf_set_ttl(conf, (uint64_t)st->cache_ttl_s * 1000);
    if (st->gw) /* a reload: the gateway takes the new one before the old goes */
        sky__gw_set_cache_conf(st->gw, conf);
    gw_cache_conf **r = NULL;
    if (st->gw && st->n_loops > 0) { /* another loop may read the old one right now */
        r = realloc(st->retired, (st->n_retired + 1) * sizeof(*r));
        if (r)
            (st->retired = r)[st->n_retired++] = st->cache_conf;
    }
    if (r == NULL)
        sky__gw_cache_conf_free(st->cache_conf);
    st->cache_conf = conf;
    return 0;
}

/* A store's URL, copied into @p slot; a password in it is wiped from argv (its memory), so
 * `ps` does not show it. */
static int take_url(char **slot, const char *v)
{
    if (*slot)
        memset(*slot, 0, strlen(*slot));
    free(*slot);
    *slot = strdup(v);
    if (!*slot)
        return -1;
    char safe[512];
    sky__store_url_scrub(v, safe, sizeof(safe));
    size_t n = strlen(v);
    if (strcmp(safe, v) != 0 && strlen(safe) <= n) {
        char *w = (char *)(uintptr_t)v; /* argv's own storage */
        memset(w, ' ', n);
        memcpy(w, safe, strlen(safe));
    }
    return 1;
}

/* rediss:// would need TLS in hiredis (1.0 and later; Debian bookworm packages 0.14): refused
 * by name, not opened as a SQLite file called "rediss://..." */
static int tls_redis(const char *flag, const char *v)
{
    if (strncasecmp(v, "rediss://", 9) != 0)
        return 0;
    fprintf(stderr,
            "skyio serve: %s: rediss:// (Redis over TLS) is not supported by this build's "
            "hiredis; use redis:// on a trusted network or a TLS tunnel (stunnel, spiped)\n",
            flag);
    return 1;
}

/* --redis URL: the cache (and the shared daily caps) on Redis, as --cache redis://... */
static int take_redis(sky_cli_stores *st, const char *v)
{
    if (tls_redis("--redis", v))
        return -1;
    if (strncmp(v, "redis://", 8) != 0) {
        fprintf(stderr, "skyio serve: --redis takes a redis://HOST:PORT/DB URL\n");
        return -1;
    }
    return take_url(&st->cache_url, v);
}

int sky_cli_stores_flag(sky_cli_stores *st, const char *flag, const char *v)
{
    if (strcmp(flag, "--cache") == 0)
        return tls_redis(flag, v) ? -1 : take_url(&st->cache_url, v);
    else if (strcmp(flag, "--redis") == 0)
        return take_redis(st, v);
    else if (strcmp(flag, "--state") == 0)
        st->state = v;
    else if (strcmp(flag, "--postgres") == 0)
        return take_url(&st->postgres, v);
    else if (strcmp(flag, "--admin-key-env") == 0)
        st->admin_env = v;
    else if (strcmp(flag, "--usage-spill") == 0)
        st->usage_spill = v;
    else if (strcmp(flag, "--usage-queue-max") == 0)
        return sky_cli_number_opt("serve", flag, v, 1, &st->usage_queue_max) < 0 ? -1 : 1;
    else if (strcmp(flag, "--cache-ttl-s") == 0)
        return sky_cli_number_opt("serve", flag, v, 1, &st->cache_ttl_s) < 0 ? -1 : 1;
    else
        return 0;
    return 1;
}

/* A loop's own connections: loop 0's in st->cache and st->usage, the others' here. */
typedef struct sky_cli_loop_stores {
    sky__store *cache, *usage;
    int closing;             /* closes under way */
    void (*done)(void *arg); /* then this, on the loop */
    void *done_arg;
} sky_cli_loop_stores;

/* A Redis or PostgreSQL URL (else a SQLite file) */
static int is_network(const char *url)
{
    static const char *const schemes[] = {"redis://", "rediss://", "postgresql://", "postgres://"};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncasecmp(url, schemes[i], strlen(schemes[i])) == 0)
            return 1;
    return 0;
}

/* One of @p n loops' options: the bounds of the whole gateway divided between them (one
 * each at least), PostgreSQL's pool, the usage queue, and a SQLite file's cache (each
 * connection evicts by the bytes it wrote; Redis's bound is the server's). */
static void share_options(sky__store_options *so, uint32_t n)
{
    so->pool_size = so->pool_size / n >= 1 ? so->pool_size / n : 1;
    so->usage_queue_max = so->usage_queue_max / n >= 1 ? so->usage_queue_max / n : 1;
    if (!is_network(so->url))
        so->cache_max_bytes /= n;
}

static int open_one(const sky_cli_stores *st, uv_loop_t *loop, const char *url, const char *what,
                    sky__store **out)
{
    sky__store_options so;
    sky__store_options_init(&so);
    so.url = url;
    if (strcmp(what, "usage") == 0) {
        so.usage_spill_path = st->usage_spill;
        if (st->usage_queue_max > 0)
            so.usage_queue_max = (uint32_t)st->usage_queue_max;
    }
    share_options(&so, (uint32_t)st->n_loops + 1);
    sky_error err;
    sky_error_clear(&err);
    if (sky__store_open_sync(loop, &so, out, &err) == 0)
        return 0;
    fprintf(stderr, "skyio serve: cannot open the %s store: %s\n", what, err.message);
    return -1;
}

/* --admin-key-env: the master key's hash to the gateway, with the store's keys. */
static int open_admin(const sky_cli_stores *st, sky_gateway *gw, sky__store *usage)
{
    const char *master = getenv(st->admin_env);
    if (master == NULL || master[0] == '\0') {
        fprintf(stderr, "skyio serve: --admin-key-env: the environment variable %s is not set\n",
                st->admin_env);
        return -1;
    }
    unsigned char hash[SKY_GATEWAY_SHA256_LEN];
    sky_error err;
    sky_error_clear(&err);
    int rc = sky_gateway_key_hash(sky_span_cstr(master), hash);
    rc = rc < 0 ? sky_error_set(&err, rc, "cannot hash the master key")
                : sky__gw_set_admin(gw, usage, hash, &err);
    memset(hash, 0, sizeof(hash));
    if (rc < 0)
        fprintf(stderr, "skyio serve: --admin-key-env: %s\n", err.message);
    return rc < 0 ? -1 : 0;
}

/* The keys' use today from the usage records, for their daily caps. */
static int load_today(sky_gateway *gw)
{
    sky_error err;
    sky_error_clear(&err);
    if (sky__gw_usage_load_today(gw, &err) == 0)
        return 0;
    fprintf(stderr, "skyio serve: %s\n", err.message);
    return -1;
}

static int check_flags(const sky_cli_stores *st)
{
    if (st->admin_env && !st->state && !st->postgres) {
        fprintf(stderr, "skyio serve: --admin-key-env keeps keys in --state or --postgres: give "
                        "one\n");
        return -1;
    }
    if (st->usage_spill && !st->postgres) {
        fprintf(stderr, "skyio serve: --usage-spill keeps --postgres's records while it is "
                        "away: give --postgres\n");
        return -1;
    }
    if (st->usage_spill && st->n_loops > 0) {
        /* several loops draining one spill file would write its records twice */
        fprintf(stderr, "skyio serve: --usage-spill does not go with --threads above 1\n");
        return -1;
    }
    if (st->state && st->postgres) {
        fprintf(stderr, "skyio serve: --state and --postgres both keep usage: give one\n");
        return -1;
    }
    return 0;
}

/* Loop @p index's stores given to its gateway @p lg (on @p loop, not running yet). */
static int open_loop(sky_gateway *lg, uv_loop_t *loop, int index, void *ud)
{
    sky_cli_stores *st = ud;
    sky__store **usage = index ? &st->loops[index - 1].usage : &st->usage;
    sky__store **cache = index ? &st->loops[index - 1].cache : &st->cache;
    const char *usage_url = st->postgres ? st->postgres : st->state;
    if (usage_url && open_one(st, loop, usage_url, "usage", usage) < 0)
        return -1;
    if (st->cache_url && open_one(st, loop, st->cache_url, "cache", cache) < 0)
        return -1;
    sky__gw_set_usage_store(lg, *usage);
    if (index == 0 && load_today(lg) < 0) /* the loops share the keys' day */
        return -1;
    /* the keys' daily use, shared with the gateways beside this one: on Redis, else on
     * PostgreSQL (a SQLite file is this gateway's own) */
    if (*cache && strcmp(sky__store_backend(*cache), "redis") == 0)
        sky__gw_set_counters(lg, *cache);
    else if (*usage && strcmp(sky__store_backend(*usage), "postgres") == 0)
        sky__gw_set_counters(lg, *usage);
    if (*cache)
        sky__gw_set_cache(lg, *cache, st->cache_conf);
    else if (st->state) /* the state file keeps the cache too */
        sky__gw_set_cache(lg, *usage, st->cache_conf);
    return st->admin_env ? open_admin(st, lg, *usage) : 0;
}

static void on_loop_closed(const sky_error *err, void *ud)
{
    sky_cli_loop_stores *ls = ud;
    (void)err; /* the store logged it; records it could not write are counted */
    if (--ls->closing == 0)
        ls->done(ls->done_arg);
}

/* Loop @p index ends: its stores write what they queued and close, on it. */
static void close_loop(uv_loop_t *loop, int index, void *ud, void (*done)(void *), void *arg)
{
    sky_cli_stores *st = ud;
    sky_cli_loop_stores *ls = &st->loops[index - 1];
    (void)loop;
    ls->done = done;
    ls->done_arg = arg;
    ls->closing = 1; /* until both are asked */
    sky__store *both[] = {ls->cache, ls->usage};
    ls->cache = ls->usage = NULL;
    for (size_t i = 0; i < 2; i++) {
        if (both[i]) {
            ls->closing++;
            sky__store_close(both[i], on_loop_closed, ls);
        }
    }
    on_loop_closed(NULL, ls);
}

int sky_cli_stores_open(sky_cli_stores *st, sky_gateway *gw, int threads)
{
    st->n_loops = threads > 1 ? threads - 1 : 0;
    if (check_flags(st) < 0)
        return -1;
    if (st->n_loops && (st->loops = calloc((size_t)st->n_loops, sizeof(*st->loops))) == NULL) {
        fprintf(stderr, "skyio serve: out of memory\n");
        return -1;
    }
    sky__gw_on_loop_end(gw, close_loop, st);
    sky__gw_cache_conf_set_ttl(st->cache_conf, (uint64_t)st->cache_ttl_s * 1000); /* flag wins */
    st->gw = gw;
    return sky__gw_each_loop(gw, open_loop, st) == 0 ? 0 : -1;
}

void sky_cli_stores_close(sky_cli_stores *st, uv_loop_t *loop)
{
    if (st->cache)
        sky__store_close_sync(loop, st->cache);
    if (st->usage)
        sky__store_close_sync(loop, st->usage); /* writes what is queued */
    char **urls[] = {&st->postgres, &st->cache_url};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        if (*urls[i])
            memset(*urls[i], 0, strlen(*urls[i]));
        free(*urls[i]);
    }
    sky__gw_cache_conf_free(st->cache_conf);
    for (size_t i = 0; i < st->n_retired; i++)
        sky__gw_cache_conf_free(st->retired[i]);
    free(st->retired);
    free(st->loops); /* each loop closed its own as it ended */
    memset(st, 0, sizeof(*st));
}
