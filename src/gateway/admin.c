/*
 * The admin API: gateway keys made, listed and revoked over HTTP with a master key.
 *
 *   POST   /admin/keys          {"name", "models": [...], "rpm", "tpm", "daily_tokens",
 *                               "daily_cost"} -> 201 with the new key, given this once
 *                               ("sk-skyio-" + 32 hex digits)
 *   GET    /admin/keys          names, models, budgets and creation times; never a key
 *   DELETE /admin/keys/{name}   revoked: the key is refused from then on
 *
 * Only a key's SHA-256 is kept, in the gateway's store (serve --state or --postgres), so a
 * restart keeps the keys. The master key is compared by hash in constant time; without
 * one set, the routes answer 404 as any unknown path does. Keys live in memory beside the
 * config's; a revoked one stays (flagged) until the gateway ends, so a request that holds
 * it keeps a valid pointer. With --threads the loops share one ring of keys (under its
 * lock), so a key made or revoked on one loop is at once made or revoked on all; each loop
 * talks to its own store connection.
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "admin.h"
#include "internal.h"
#include "store/store.h"

#define ADMIN_NAME_MAX 64
#define ADMIN_KEY_PREFIX "sk-skyio-"
#define ADMIN_KEY_LEN (sizeof(ADMIN_KEY_PREFIX) - 1 + 32)

typedef struct admin_key {
    gw_key k;
    double rpm, tpm;
    int64_t created_ms;
    int live; /* 0 while its write is under way, after a failed one, or once revoked */
    int pending;
    struct admin_key *next;
} admin_key;

/* The keys, shared by the loops' admins; freed with the last of them and the shared state. */
struct gw_admin_ring {
    uv_mutex_t lock;
    admin_key *keys; /* and their live and pending flags: under the lock */
    int refs;        /* atomic */
    int loaded;      /* the store's keys are in (by the first loop, at start) */
};

struct gw_admin {
    sky_gateway *g; /* NULL once the gateway is gone */
    sky__store *store;
    unsigned char master[SKY_GATEWAY_SHA256_LEN];
    gw_admin_ring *ring;
    int calls;  /* store calls in flight */
    int closed; /* freed by the gateway: the last call frees it */
};

/* One POST or DELETE waiting for the store. */
typedef struct admin_call {
    gw_admin *a;
    sky_server_req *r; /* NULL once the request is disposed */
    admin_key *key;
    int pending; /* the store has not answered */
    char secret[ADMIN_KEY_LEN + 1];
} admin_call;

static void key_free(admin_key *k)
{
    for (size_t i = 0; i < k->k.n_models; i++)
        free(k->k.models[i]);
    free(k->k.models);
    free(k->k.name);
    free(k);
}

/* ---- the ring ---- */

gw_admin_ring *sky__gw_admin_ring_new(void)
{
    gw_admin_ring *r = calloc(1, sizeof(*r));
    if (r && uv_mutex_init(&r->lock) != 0) {
        free(r);
        return NULL;
    }
    if (r)
        r->refs = 1;
    return r;
}

void sky__gw_admin_ring_ref(gw_admin_ring *r)
{
    __atomic_add_fetch(&r->refs, 1, __ATOMIC_ACQ_REL);
}

void sky__gw_admin_ring_unref(gw_admin_ring *r)
{
    if (r == NULL || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    while (r->keys) {
        admin_key *k = r->keys;
        r->keys = k->next;
        key_free(k);
    }
    uv_mutex_destroy(&r->lock);
    free(r);
}

static void ring_add(gw_admin_ring *r, admin_key *k)
{
    k->next = r->keys;
    r->keys = k;
}

static void admin_destroy(gw_admin *a)
{
    sky__gw_admin_ring_unref(a->ring);
    OPENSSL_cleanse(a->master, sizeof(a->master));
    free(a);
}

void sky__gw_admin_free(gw_admin *a)
{
    if (a == NULL)
        return;
    a->g = NULL;
    a->closed = 1;
    if (a->calls == 0)
        admin_destroy(a);
}

int sky__gw_admin_on(const sky_gateway *g)
{
    return g->admin != NULL;
}

gw_key *sky__gw_admin_match(sky_gateway *g, const unsigned char *hash)
{
    gw_key *found = NULL;
    if (g->admin == NULL)
        return NULL;
    uv_mutex_lock(&g->admin->ring->lock);
    for (admin_key *k = g->admin->ring->keys; k; k = k->next) {
        int same = CRYPTO_memcmp(k->k.sha256, hash, SKY_GATEWAY_SHA256_LEN) == 0;
        if (same && k->live && found == NULL)
            found = &k->k;
    }
    uv_mutex_unlock(&g->admin->ring->lock);
    return found;
}

/* ---- keys in memory ---- */

static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > ADMIN_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return 0;
    return 1;
}

/* A key called @p name: a live or pending admin key, or one of the config's (under the
 * ring's lock). */
static int name_taken(const gw_admin *a, const char *name)
{
    for (const admin_key *k = a->ring->keys; k; k = k->next)
        if ((k->live || k->pending) && strcmp(k->k.name, name) == 0)
            return 1;
    const gw_table *t = a->g->table;
    for (size_t i = 0; i < t->n_keys; i++)
        if (strcmp(t->keys[i].name, name) == 0)
            return 1;
    return 0;
}

/* Under the ring's lock. */
static admin_key *live_key(gw_admin *a, const char *name)
{
    for (admin_key *k = a->ring->keys; k; k = k->next)
        if (k->live && strcmp(k->k.name, name) == 0)
            return k;
    return NULL;
}

/* A key from its name and @p config ({"models", "rpm", "tpm"}), not yet in the list. */
static admin_key *key_new(gw_admin *a, const char *name, const json_t *config)
{
    admin_key *k = calloc(1, sizeof(*k));
    const json_t *models = json_object_get(config, "models");
    size_t n = json_array_size(models);
    if (k == NULL || (k->k.name = strdup(name)) == NULL ||
        (n && (k->k.models = calloc(n, sizeof(char *))) == NULL))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const char *m = json_string_value(json_array_get(models, i));
        if (m == NULL)
            continue;
        if ((k->k.models[k->k.n_models] = strdup(m)) == NULL)
            goto oom;
        k->k.n_models++;
    }
    k->rpm = json_number_value(json_object_get(config, "rpm"));
    k->tpm = json_number_value(json_object_get(config, "tpm"));
    k->k.daily_tokens = json_number_value(json_object_get(config, "daily_tokens"));
    k->k.daily_cost = json_number_value(json_object_get(config, "daily_cost"));
    k->k.budget =
        sky__gw_shared_budget(a->g->shared, k->k.name, k->rpm, k->tpm, uv_now(a->g->loop));
    if (k->k.budget == NULL)
        goto oom;
    return k;
oom:
    if (k)
        key_free(k);
    return NULL;
}

static int hex_to_hash(const char *hex, unsigned char out[SKY_GATEWAY_SHA256_LEN])
{
    if (hex == NULL || strlen(hex) != 2 * SKY_GATEWAY_SHA256_LEN)
        return -1;
    for (size_t i = 0; i < SKY_GATEWAY_SHA256_LEN; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* @p n bytes as 2 * @p n hex digits and a NUL into @p out. */
static void to_hex(const unsigned char *h, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- loading at start ---- */

typedef struct load_state {
    gw_admin *a;
    int done;
    sky_error err;
} load_state;

static void on_listed(const sky_error *err, const sky__store_key *keys, size_t n, void *ud)
{
    load_state *ls = ud;
    ls->done = 1;
    if (err->code) {
        ls->err = *err;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char h[SKY_GATEWAY_SHA256_LEN];
        if (keys[i].revoked || hex_to_hash(keys[i].hash, h) < 0)
            continue;
        json_t *config = json_loads(keys[i].config ? keys[i].config : "{}", 0, NULL);
        admin_key *k = key_new(ls->a, keys[i].name, config);
        json_decref(config);
        if (k == NULL) {
            sky_error_set(&ls->err, SKY_ENOMEM, "out of memory");
            return;
        }
        memcpy(k->k.sha256, h, sizeof(h));
        k->created_ms = keys[i].created_ms;
        k->live = 1;
        ring_add(ls->a->ring, k);
    }
}

/* The store's keys into the ring, unless another loop did it: 0, or the store's error in
 * @p ls. The loops are given their admin one after the other, before they run. */
static void load_keys(gw_admin *a, load_state *ls)
{
    sky_error_clear(&ls->err);
    if (a->ring->loaded)
        return;
    sky__store_key_list(a->store, on_listed, ls);
    while (!ls->done)
        uv_run(a->g->loop, UV_RUN_ONCE);
    a->ring->loaded = ls->err.code == 0;
}

int sky__gw_set_admin(sky_gateway *g, struct sky__store *store,
                      const unsigned char master_sha256[SKY_GATEWAY_SHA256_LEN], sky_error *err)
{
    if (store == NULL || !(sky__store_caps(store) & SKY__STORE_KEYS))
        return sky_error_set(err, SKY_EINVAL, "the admin API needs a store that keeps keys");
    gw_admin *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->ring = sky__gw_shared_admin_ring(g->shared)) == NULL) {
        free(a);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    a->g = g;
    a->store = store;
    memcpy(a->master, master_sha256, sizeof(a->master));
    load_state ls = {.a = a};
    load_keys(a, &ls);
    if (ls.err.code) {
        admin_destroy(a);
        return sky_error_set(err, ls.err.code, "cannot read the gateway's keys: %s",
                             ls.err.message);
    }
    sky__gw_admin_free(g->admin);
    g->admin = a;
    return 0;
}

/* ---- the master key ---- */

static void not_found(sky_server_req *r)
{
    sky__gw_error(r, 404, "invalid_request_error", NULL, "unknown_url", "Unknown request URL: %.*s",
                  (int)sky_server_req_path(r).len, sky_server_req_path(r).ptr);
}

/* The admin API is on and the request presents the master key: 0; else -1, answered. */
static int check_master(sky_gateway *g, sky_server_req *r)
{
    if (g->admin == NULL) {
        not_found(r);
        return -1;
    }
    sky_span key;
    unsigned char hash[SKY_GATEWAY_SHA256_LEN];
    int ok = sky__gw_presented_key(r, &key) && sky_gateway_key_hash(key, hash) == 0 &&
             CRYPTO_memcmp(hash, g->admin->master, sizeof(hash)) == 0;
    OPENSSL_cleanse(hash, sizeof(hash));
    if (!ok)
        sky__gw_error(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                      "The admin API needs the gateway's master key.");
    return ok ? 0 : -1;
}

/* ---- store calls ---- */

static void on_gone(void *data)
{
    admin_call *c = data;
    c->r = NULL;
    if (!c->pending)
        free(c);
}

/* The request's call, freed with the request (or by the store's answer when the request
 * is gone first). NULL after answering 500. */
static admin_call *call_new(gw_admin *a, sky_server_req *r)
{
    admin_call *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    c->a = a;
    c->r = r;
    sky_server_req_set_data(r, c, on_gone);
    return c;
}

/* The call goes to the store now. */
static void call_start(admin_call *c)
{
    c->pending = 1;
    c->a->calls++;
}

/* The store answered: 0 to answer the client, -1 when there is none to answer (or it was
 * answered an error). Frees the admin when it was the last call of a closed one; a call
 * whose request is gone is freed. */
static int call_end(admin_call *c, const sky_error *err)
{
    gw_admin *a = c->a;
    c->pending = 0;
    a->calls--;
    if (a->closed) {
        c->key = NULL;
        if (a->calls == 0)
            admin_destroy(a);
    }
    if (c->r == NULL) {
        OPENSSL_cleanse(c->secret, sizeof(c->secret));
        free(c);
        return -1;
    }
    if (err->code)
        sky__gw_error(c->r, 503, "server_error", NULL, NULL,
                      "The gateway's store cannot be written now (%s).", sky_err_name(err->code));
    return err->code ? -1 : 0;
}

static json_t *key_json(const admin_key *k, const char *secret)
{
    json_t *models = json_array();
    for (size_t i = 0; models && i < k->k.n_models; i++)
        json_array_append_new(models, json_string(k->k.models[i]));
    json_t *o = json_pack("{s:s,s:s,s:o,s:f,s:f,s:f,s:f,s:I}", "object", "gateway.key", "name",
                          k->k.name, "models", models ? models : json_array(), "rpm", k->rpm, "tpm",
                          k->tpm, "daily_tokens", k->k.daily_tokens, "daily_cost", k->k.daily_cost,
                          "created", (json_int_t)(k->created_ms / 1000));
    if (o && secret)
        json_object_set_new(o, "key", json_string(secret));
    return o;
}

static void respond_key(sky_server_req *r, int status, const admin_key *k, const char *secret)
{
    json_t *o = key_json(k, secret);
    if (o == NULL) {
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    sky_server_respond_json(r, status, o);
    json_decref(o);
}

/* ---- POST /admin/keys ---- */

static void on_put(const sky_error *err, void *ud)
{
    admin_call *c = ud;
    admin_key *k = c->key;
    if (k && !c->a->closed) {
        uv_mutex_lock(&c->a->ring->lock);
        k->pending = 0;
        k->live = err->code == 0; /* kept even when the client left: the store has it */
        uv_mutex_unlock(&c->a->ring->lock);
    }
    if (call_end(c, err) < 0)
        return;
    respond_key(c->r, 201, k, c->secret);
    OPENSSL_cleanse(c->secret, sizeof(c->secret));
}

/* The body's limits: each absent (0) or a number of 0 or more. */
static const char *const limits[] = {"rpm", "tpm", "daily_tokens", "daily_cost"};

static int limits_ok(const json_t *body)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(limits); i++) {
        const json_t *v = json_object_get(body, limits[i]);
        if (v && !(json_is_number(v) && json_number_value(v) >= 0))
            return 0;
    }
    return 1;
}

/* The body's name and config, checked: 0, or -1 after answering 400. */
static int read_request(sky_server_req *r, json_t *body, const char **name, json_t **config)
{
    *name = json_string_value(json_object_get(body, "name"));
    const json_t *models = json_object_get(body, "models");
    int ok = json_is_object(body) && valid_name(*name) && (!models || json_is_array(models)) &&
             limits_ok(body);
    for (size_t i = 0; ok && i < json_array_size(models); i++)
        ok = json_is_string(json_array_get(models, i));
    if (!ok) {
        sky__gw_error(r, 400, "invalid_request_error", NULL, NULL,
                      "Give {\"name\": letters, digits, '-', '_' or '.' (at most %d), "
                      "\"models\": [names], \"rpm\": n, \"tpm\": n, \"daily_tokens\": n, "
                      "\"daily_cost\": n}.",
                      ADMIN_NAME_MAX);
        return -1;
    }
    json_t *list = models ? json_incref((json_t *)(uintptr_t)models) : json_array();
    *config = json_pack("{s:o}", "models", list);
    for (size_t i = 0; *config && i < SKY_ARRAY_LEN(limits); i++)
        json_object_set_new(*config, limits[i],
                            json_real(json_number_value(json_object_get(body, limits[i]))));
    if (*config == NULL)
        sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
    return *config ? 0 : -1;
}

/* A new key into @p out, its hash into @p hash: 0, or -1 when there is no randomness. */
static int make_secret(char out[ADMIN_KEY_LEN + 1], unsigned char hash[SKY_GATEWAY_SHA256_LEN])
{
    unsigned char raw[16];
    char hex[2 * sizeof(raw) + 1];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    to_hex(raw, sizeof(raw), hex);
    snprintf(out, ADMIN_KEY_LEN + 1, "%s%s", ADMIN_KEY_PREFIX, hex);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    return sky_gateway_key_hash(sky_span_cstr(out), hash) == 0 ? 0 : -1;
}

/* @p name taken, under the ring's lock; with @p k, k in the ring as pending when it is not.
 * Taken: 409 answered, -1. */
static int claim_name(gw_admin *a, sky_server_req *r, const char *name, admin_key *k)
{
    uv_mutex_lock(&a->ring->lock);
    int taken = name_taken(a, name);
    if (!taken && k) {
        k->pending = 1;
        ring_add(a->ring, k);
    }
    uv_mutex_unlock(&a->ring->lock);
    if (taken)
        sky__gw_error(r, 409, "invalid_request_error", "name", "key_exists",
                      "A key named '%s' exists already.", name);
    return taken ? -1 : 0;
}

static void create_key(gw_admin *a, sky_server_req *r, const char *name, json_t *config)
{
    if (claim_name(a, r, name, NULL) < 0)
        return; /* before its budget is made; checked again (another loop) once it is */
    admin_key *k = key_new(a, name, config);
    char *text = k ? json_dumps(config, JSON_COMPACT) : NULL;
    char secret[ADMIN_KEY_LEN + 1];
    if (text == NULL || make_secret(secret, k->k.sha256) < 0) {
        sky__gw_error(r, 500, "server_error", NULL, NULL, "cannot make a key now");
        goto out;
    }
    k->created_ms = sky__store_now_ms();
    admin_call *c = call_new(a, r);
    if (c == NULL)
        goto out;
    if (claim_name(a, r, name, k) < 0) {
        OPENSSL_cleanse(c->secret, sizeof(c->secret));
        goto out; /* c goes with the request */
    }
    memcpy(c->secret, secret, sizeof(secret));
    char hex[2 * SKY_GATEWAY_SHA256_LEN + 1];
    to_hex(k->k.sha256, SKY_GATEWAY_SHA256_LEN, hex);
    c->key = k;
    k = NULL;
    sky__store_key key = {
        .name = name, .hash = hex, .config = text, .created_ms = c->key->created_ms};
    call_start(c);
    sky__store_key_put(a->store, &key, on_put, c);
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    free(text);
    if (k)
        key_free(k);
}

void sky__gw_on_admin_keys(sky_server_req *r, void *gateway)
{
    sky_gateway *g = gateway;
    if (check_master(g, r) < 0)
        return;
    if (sky_span_eq_cstr(sky_server_req_method(r), "GET")) {
        json_t *data = json_array();
        uv_mutex_lock(&g->admin->ring->lock);
        for (const admin_key *k = g->admin->ring->keys; data && k; k = k->next)
            if (k->live)
                json_array_append_new(data, key_json(k, NULL));
        uv_mutex_unlock(&g->admin->ring->lock);
        json_t *o = data ? json_pack("{s:s,s:o}", "object", "list", "data", data) : NULL;
        if (o == NULL) {
            sky__gw_error(r, 500, "server_error", NULL, NULL, "out of memory");
            return;
        }
        sky_server_respond_json(r, 200, o);
        json_decref(o);
        return;
    }
    sky_span b = sky_server_req_body(r);
    json_t *body = json_loadb(b.ptr ? b.ptr : "", b.len, 0, NULL);
    const char *name = NULL;
    json_t *config = NULL;
    if (read_request(r, body, &name, &config) == 0)
        create_key(g->admin, r, name, config);
    json_decref(config);
    json_decref(body);
}

/* ---- DELETE /admin/keys/{name} ---- */

static void on_revoked(const sky_error *err, void *ud)
{
    admin_call *c = ud;
    admin_key *k = c->key;
    sky_error ok;
    sky_error_clear(&ok);
    int gone = err->code == 0 || err->code == SKY_ENOTFOUND; /* not kept either way */
    if (k && !c->a->closed && !gone) {
        uv_mutex_lock(&c->a->ring->lock);
        k->live = 1; /* not revoked after all */
        uv_mutex_unlock(&c->a->ring->lock);
    }
    if (call_end(c, gone ? &ok : err) < 0)
        return;
    json_t *o =
        json_pack("{s:s,s:s,s:b}", "object", "gateway.key", "name", k->k.name, "deleted", 1);
    if (o == NULL) {
        sky__gw_error(c->r, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    sky_server_respond_json(c->r, 200, o);
    json_decref(o);
}

void sky__gw_on_admin_key(sky_server_req *r, void *gateway)
{
    static const char prefix[] = "/admin/keys/";
    sky_gateway *g = gateway;
    if (check_master(g, r) < 0)
        return;
    sky_span path = sky_server_req_path(r);
    char name[ADMIN_NAME_MAX + 1];
    size_t n = path.len - (sizeof(prefix) - 1);
    admin_key *k = NULL;
    uv_mutex_lock(&g->admin->ring->lock);
    if (n > 0 && n <= ADMIN_NAME_MAX) {
        memcpy(name, path.ptr + sizeof(prefix) - 1, n);
        name[n] = '\0';
        k = live_key(g->admin, name);
    }
    if (k)
        k->live = 0; /* refused from now on, on every loop */
    uv_mutex_unlock(&g->admin->ring->lock);
    if (k == NULL) {
        sky__gw_error(r, 404, "invalid_request_error", NULL, "key_not_found", "No such key.");
        return;
    }
    admin_call *c = call_new(g->admin, r);
    if (c == NULL) {
        uv_mutex_lock(&g->admin->ring->lock);
        k->live = 1; /* not revoked: the store was not asked */
        uv_mutex_unlock(&g->admin->ring->lock);
        return;
    }
    c->key = k;
    call_start(c);
    sky__store_key_revoke(g->admin->store, k->k.name, on_revoked, c);
}
