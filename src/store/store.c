/*
 * The store handle: choosing the backend from the URL, opening and closing, and the calls,
 * which check that the backend keeps what is asked before handing it over.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

void sky__store_options_init(sky__store_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->cache_max_bytes = 64u << 20;
    opts->usage_queue_max = 100000;
    opts->usage_batch_max = 512;
    opts->usage_flush_ms = 200;
    opts->pool_size = 2;
    opts->reconnect_interval_ms = 500;
    opts->usage_spill_max = 10000000;
}

int64_t sky__store_now_ms(void)
{
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) != 0)
        return 0;
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

const char *sky__store_sqlite_path(const char *url)
{
    if (strncmp(url, "sqlite://", 9) == 0)
        return url + 9;
    if (strncmp(url, "sqlite:", 7) == 0)
        return url + 7;
    return url;
}

static const sky__store_vt *backend_for(const char *url)
{
    if (strncasecmp(url, "redis://", 8) == 0 || strncasecmp(url, "rediss://", 9) == 0)
        return &sky__store_redis_vt; /* rediss:// is refused there, by name */
    if (strncasecmp(url, "postgresql://", 13) == 0 || strncasecmp(url, "postgres://", 11) == 0)
        return &sky__store_postgres_vt;
    return &sky__store_sqlite_vt;
}

static void fix_options(sky__store_options *o)
{
    if (o->usage_batch_max == 0)
        o->usage_batch_max = 512;
    if (o->usage_flush_ms == 0)
        o->usage_flush_ms = 200;
    if (o->pool_size == 0)
        o->pool_size = 1;
    if (o->reconnect_interval_ms == 0)
        o->reconnect_interval_ms = 500;
    if (o->usage_spill_max == 0)
        o->usage_spill_max = 10000000;
}

int sky__store_open(uv_loop_t *loop, const sky__store_options *opts, sky__store_open_cb cb,
                    void *user_data)
{
    if (!loop || !opts || !opts->url || !opts->url[0] || !cb)
        return SKY_EINVAL;
    sky__store *s = calloc(1, sizeof(*s));
    if (!s || !(s->url = strdup(opts->url))) {
        free(s);
        return SKY_ENOMEM;
    }
    s->loop = loop;
    s->opts = *opts;
    s->opts.url = s->url;
    snprintf(s->spill_path, sizeof(s->spill_path), "%s",
             opts->usage_spill_path ? opts->usage_spill_path : "");
    s->opts.usage_spill_path = opts->usage_spill_path ? s->spill_path : NULL;
    fix_options(&s->opts);
    s->vt = backend_for(s->url);
    sky__store_url_scrub(s->url, s->safe_url, sizeof(s->safe_url));
    s->open_cb = cb;
    s->open_ud = user_data;
    uv_timer_init(loop, &s->flush_timer);
    uv_timer_init(loop, &s->defer_timer);
    s->flush_timer.data = s->defer_timer.data = s;
    s->handles_open = 2;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky__store_usage_start(s);
    if (rc == 0)
        rc = s->vt->open(s, &err);
    if (rc != 0) {
        /* Nothing of the backend is left to close: release the timers and the store. */
        s->open_cb = NULL;
        s->closing = 1;
        sky__store_backend_closed(s);
    }
    return rc;
}

typedef struct sync_wait {
    int done;
    sky__store *store;
    sky_error err;
} sync_wait;

static void on_sync_open(sky__store *s, const sky_error *err, void *ud)
{
    sync_wait *w = ud;
    w->done = 1;
    w->store = s;
    w->err = *err;
}

int sky__store_open_sync(uv_loop_t *loop, const sky__store_options *opts, sky__store **out,
                         sky_error *err)
{
    sync_wait w;
    memset(&w, 0, sizeof(w));
    int rc = sky__store_open(loop, opts, on_sync_open, &w);
    if (rc != 0)
        return sky_error_set(err, rc, "cannot open the store: %s", sky_strerror(rc));
    while (!w.done)
        uv_run(loop, UV_RUN_ONCE);
    if (!w.store) {
        *err = w.err;
        return w.err.code ? w.err.code : SKY_EINTERNAL;
    }
    *out = w.store;
    return 0;
}

static void on_sync_close(const sky_error *err, void *ud)
{
    (void)err;
    *(int *)ud = 1;
}

void sky__store_close_sync(uv_loop_t *loop, sky__store *s)
{
    int done = 0;
    sky__store_close(s, on_sync_close, &done);
    while (!done)
        uv_run(loop, UV_RUN_ONCE);
}

void sky__store_opened(sky__store *s, const sky_error *err)
{
    sky_error spill_err;
    sky_error_clear(&spill_err);
    if (!(err && err->code) && s->opts.usage_spill_path && (s->vt->caps & SKY__STORE_USAGE) &&
        sky__spill_open(s, &spill_err) < 0)
        err = &spill_err; /* a spill file that cannot be used fails the open, named */
    if (err && err->code) {
        s->open_err = *err;
        s->closing = 1;
        sky__store_usage_free(s);
        s->vt->close(s);
        return;
    }
    sky_error ok;
    sky_error_clear(&ok);
    sky__store_open_cb cb = s->open_cb;
    s->open_cb = NULL;
    cb(s, &ok, s->open_ud);
}

static void on_handle_closed(uv_handle_t *h)
{
    sky__store *s = h->data;
    if (--s->handles_open > 0)
        return;
    if (s->open_cb) {
        s->open_cb(NULL, &s->open_err, s->open_ud);
    } else if (s->close_cb) {
        s->close_cb(&s->close_err, s->close_ud);
    }
    free(s->url);
    free(s);
}

void sky__store_backend_closed(sky__store *s)
{
    sky__store_run_deferred(s);
    sky__store_usage_free(s);
    uv_close((uv_handle_t *)&s->flush_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->defer_timer, on_handle_closed);
}

/* The usage queue is settled (written, or given up): close the backend. */
void sky__store_usage_closed(sky__store *s, const sky_error *err)
{
    if (err && err->code && !s->close_err.code)
        s->close_err = *err;
    sky__store_usage_free(s);
    s->vt->close(s);
}

void sky__store_close(sky__store *s, sky__store_done_cb cb, void *user_data)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_ud = user_data;
    sky__store_usage_close(s);
}

const char *sky__store_backend(const sky__store *s)
{
    return s->vt->name;
}

unsigned sky__store_caps(const sky__store *s)
{
    return s->vt->caps;
}

/* 0 when the backend keeps @p cap and the store is open; otherwise the error to give. */
static int refuse(sky__store *s, unsigned cap, sky_error *err)
{
    sky_error_clear(err);
    if (s->closing)
        return sky_error_set(err, SKY_ECANCELED, "store closing");
    if (!(s->vt->caps & cap))
        return sky_error_set(err, SKY_ESTATE, "the %s store does not keep this", s->vt->name);
    return 0;
}

void sky__store_cache_get(sky__store *s, const char *key, sky__store_value_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_CACHE, &err))
        sky__store_fail_value(s, cb, ud, &err);
    else
        s->vt->cache_get(s, key, cb, ud);
}

void sky__store_cache_put(sky__store *s, const char *key, sky_span value, uint64_t ttl_ms,
                          sky__store_done_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_CACHE, &err))
        sky__store_fail_done(s, cb, ud, &err);
    else
        s->vt->cache_put(s, key, value, ttl_ms, cb, ud);
}

void sky__store_usage_totals(sky__store *s, const char *key_name, sky__store_totals_cb cb, void *ud)
{
    sky__store_usage_totals_since(s, key_name, NULL, cb, ud);
}

void sky__store_usage_totals_since(sky__store *s, const char *key_name, const char *since_day,
                                   sky__store_totals_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_USAGE, &err))
        sky__store_fail_totals(s, cb, ud, &err);
    else
        s->vt->usage_totals(s, key_name, since_day, cb, ud);
}

void sky__store_doc_put(sky__store *s, const char *scope, const char *id, sky_span doc,
                        sky__store_done_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_CONV, &err))
        sky__store_fail_done(s, cb, ud, &err);
    else
        s->vt->doc_put(s, scope, id, doc, cb, ud);
}

void sky__store_doc_get(sky__store *s, const char *scope, const char *id, sky__store_value_cb cb,
                        void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_CONV, &err))
        sky__store_fail_value(s, cb, ud, &err);
    else
        s->vt->doc_get(s, scope, id, cb, ud);
}

void sky__store_doc_delete(sky__store *s, const char *scope, const char *id, sky__store_done_cb cb,
                           void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_CONV, &err))
        sky__store_fail_done(s, cb, ud, &err);
    else
        s->vt->doc_delete(s, scope, id, cb, ud);
}

void sky__store_key_put(sky__store *s, const sky__store_key *key, sky__store_done_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_KEYS, &err))
        sky__store_fail_done(s, cb, ud, &err);
    else
        s->vt->key_put(s, key, cb, ud);
}

void sky__store_key_list(sky__store *s, sky__store_keys_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_KEYS, &err))
        sky__store_fail_keys(s, cb, ud, &err);
    else
        s->vt->key_list(s, cb, ud);
}

void sky__store_key_revoke(sky__store *s, const char *name, sky__store_done_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_KEYS, &err))
        sky__store_fail_done(s, cb, ud, &err);
    else
        s->vt->key_revoke(s, name, cb, ud);
}

void sky__store_counter_add(sky__store *s, const char *name, int64_t delta, uint64_t ttl_ms,
                            sky__store_count_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_COUNTERS, &err))
        sky__store_fail_count(s, cb, ud, &err);
    else
        s->vt->counter_add(s, name, delta, ttl_ms, cb, ud);
}

void sky__store_bucket_lease(sky__store *s, const char *name, const sky__store_lease_ask *ask,
                             sky__store_lease_cb cb, void *ud)
{
    sky_error err;
    if (refuse(s, SKY__STORE_BUCKETS, &err))
        sky__store_fail_lease(s, cb, ud, &err);
    else
        s->vt->bucket_lease(s, name, ask, cb, ud);
}
