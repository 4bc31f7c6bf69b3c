/*
 * The gateway's live view (not installed): each deployment's recent history (requests,
 * 429s, errors, latency per 5-second slot over the last 5 minutes, status_history.c), the
 * JSON snapshot GET /status.json answers (status.c) and the page GET / answers (page.c).
 */
#ifndef SKY_GATEWAY_STATUS_H
#define SKY_GATEWAY_STATUS_H

#include <stdint.h>

/* The history's slots: GW_HISTORY_SLOTS of GW_HISTORY_SLOT_MS each, the newest last. */
#define GW_HISTORY_SLOT_MS 5000
#define GW_HISTORY_SLOTS 60
/* Latency buckets of a slot: upper bounds 0.25 ms doubling, the last one unbounded. */
#define GW_HISTORY_LAT_BUCKETS 20

/* One slot of a series, or several series added up. */
typedef struct gw_history_slot {
    uint64_t slot; /* its number: monotonic ms / GW_HISTORY_SLOT_MS */
    uint32_t requests, throttled, errors;
    uint32_t lat[GW_HISTORY_LAT_BUCKETS];
} gw_history_slot;

/* Every (model, deployment) series seen, each a ring of slots; kept by their names'
 * text like the metrics, so a reload does not reset them. Used under the shared lock. */
typedef struct gw_history gw_history;

struct gw_record;
struct gw_shared;
struct sky_server_req;

gw_history *sky__gw_history_new(void);
void sky__gw_history_free(gw_history *h);
/* Count one model call's outcome at monotonic @p now_ms (calls of no configured model are
 * not counted). */
void sky__gw_history_count(gw_history *h, const struct gw_record *r, uint64_t now_ms);
/* The slots of @p model's series up to @p now_ms's slot, oldest first, added up over its
 * deployment labelled @p label (NULL: all of them, and its calls that reached none). */
void sky__gw_history_collect(const gw_history *h, const char *model, const char *label,
                             uint64_t now_ms, gw_history_slot out[GW_HISTORY_SLOTS]);
/* The event loops' lag (@p seconds late, a 100 ms tick of one loop) at monotonic @p now_ms:
 * the worst of each slot is kept. */
void sky__gw_history_lag(gw_history *h, double seconds, uint64_t now_ms);
/* The worst lag of each slot up to @p now_ms's, in ms, oldest first; -1 when none. */
void sky__gw_history_lag_collect(const gw_history *h, uint64_t now_ms,
                                 double out[GW_HISTORY_SLOTS]);
/* The latency in ms under which @p q (0..1) of the slot's calls ended; -1 when none. */
double sky__gw_history_quantile(const gw_history_slot *s, double q);

/* shared.c: the loops' history (touch it under the lock). */
gw_history *sky__gw_shared_history(struct gw_shared *s);

/* GET /status.json and GET / (no key, like /metrics). */
void sky__gw_on_status(struct sky_server_req *r, void *gateway);
void sky__gw_on_page(struct sky_server_req *r, void *gateway);

#endif
