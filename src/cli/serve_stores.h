/* `skyio serve`'s stores: the flags that name them, and their opening and closing. */
#ifndef SKY_CLI_SERVE_STORES_H
#define SKY_CLI_SERVE_STORES_H

#include <uv.h>

#include "gateway/stores.h"
#include "skyio/gateway.h"
#include "store/store.h"

typedef struct sky_cli_stores {
    char *cache_url;           /* --cache or --redis URL (a copy: argv's password is wiped) */
    const char *state;         /* --state FILE: usage (and the cache, without --cache) */
    char *postgres;            /* --postgres URL (a copy: argv's password is wiped) */
    long long cache_ttl_s;     /* --cache-ttl-s; 0: the config's */
    const char *admin_env;     /* --admin-key-env NAME: the variable holding the master key */
    const char *usage_spill;   /* --usage-spill FILE: records past the queue's bound */
    long long usage_queue_max; /* --usage-queue-max N (0: the store's default) */
    sky__store *cache, *usage; /* loop 0's */
    gw_cache_conf *cache_conf; /* the config's "cache" (the gateway borrows it) */
    sky_gateway *gw;           /* once the stores are open */
    /* --threads N: loops 1..N-1's own stores (index i-1), each opened and closed on its loop */
    struct sky_cli_loop_stores *loops;
    int n_loops;
    gw_cache_conf **retired; /* replaced by reloads while other loops may still read them */
    size_t n_retired;
} sky_cli_stores;

/* The --help text of these flags. */
extern const char sky_cli_stores_usage[];
/* The config's "cache" member, for the config's part of --help. */
extern const char sky_cli_stores_config_usage[];

void sky_cli_stores_init(sky_cli_stores *st);
/* A flag of these: 1 when taken, 0 when not one of them, -1 after saying why on stderr. */
int sky_cli_stores_flag(sky_cli_stores *st, const char *flag, const char *v);
/* The config's "cache" (of @p doc, the whole config) taken: 0, or -1 after saying why on
 * stderr (the running one stays). Once the stores are open the gateway gets it at once:
 * call it again on a reload. */
int sky_cli_stores_config(sky_cli_stores *st, const json_t *doc);
/* Open what the flags name and give it to each of the @p threads loops of @p gw (made by
 * sky__gw_new_held, its loops not run yet; each loop gets its own connections, opened on it): 0, or
 * -1 after saying why on stderr (the caller exits 3: PostgreSQL down, a corrupt or locked SQLite
 * file). Each other loop closes its own as it ends (in sky_gateway_free). */
int sky_cli_stores_open(sky_cli_stores *st, sky_gateway *gw, int threads);
/* After sky_gateway_free: write what loop 0's stores queued and close them (running
 * @p loop, which may be NULL when none was opened), and free what the flags and config gave. */
void sky_cli_stores_close(sky_cli_stores *st, uv_loop_t *loop);

#endif
