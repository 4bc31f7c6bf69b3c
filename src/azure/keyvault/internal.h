/* Key Vault client internals shared by its files: the client, an operation, its replies. */
#ifndef SKY_KEYVAULT_INTERNAL_H
#define SKY_KEYVAULT_INTERNAL_H

#include <jansson.h>

#include "skyio/buf.h"
#include "skyio/keyvault.h"
#include "skyio/pipeline.h"

struct sky_keyvault_client {
    uv_loop_t *loop;
    sky_http_client *http;
    sky_pipeline *pipe;
    sky_keyvault_client_options o;
    char *vault_url; /* without a trailing '/' */
    char *host;      /* the vault's host (and port), for the challenge and next links */
    char *scope;     /* from the first challenge; NULL until then */
    sky_keyvault_op *ops;
};

/* What an operation's reply holds. */
enum sky__kv_kind { SKY__KV_SECRET, SKY__KV_LIST, SKY__KV_DELETED };

struct sky_keyvault_op {
    sky_keyvault_client *c;       /* NULL once the client is gone (the op waits for its call) */
    sky_keyvault_op *prev, *next; /* in c->ops */
    sky_call *call;
    sky_token_request *treq;
    int kind;
    char *method;
    char *url;
    char *what;      /* "GET /secrets/name" for a failure's words */
    char *body;      /* a set's JSON: holds the value, wiped */
    char *auth;      /* "Bearer ...", wiped */
    int challenged;  /* a challenge was answered: another 401 is final */
    int token_tried; /* a token was sent: a 401 now asks for a fresh one */
    sky_keyvault_done_cb cb;
    void *user_data;
};

/** Start an op of @p kind: @p method on @p url (absolute, with its api-version), @p body
 *  (a JSON text, copied and wiped, may be NULL). 0 or a SKY_E code with @p err. */
int sky__kv_start(sky_keyvault_client *c, int kind, const char *method, const char *url,
                  const char *what, const char *body, sky_keyvault_done_cb cb, void *user_data,
                  sky_keyvault_op **out_op, sky_error *err);

/** The scope a 401's WWW-Authenticate asks for, checked against the vault (see keyvault.h):
 *  a new string in *out, or a SKY_EAUTH code with @p err. */
int sky__kv_challenge_scope(const sky_keyvault_client *c, const char *www_authenticate, char **out,
                            sky_error *err);

/* ---- replies (secret.c) ---- */

typedef struct sky__kv_read {
    sky_keyvault_secret *items;
    size_t count;
    char **strings; /* everything the items point at */
    size_t nstrings, cap;
    char *value; /* the secret's value: wiped */
    size_t value_len;
    char *next_link;
} sky__kv_read;

/** Read a reply body of @p kind into @p out. 0, SKY_EJSON or SKY_ENOMEM. */
int sky__kv_read_reply(int kind, sky_span body, sky__kv_read *out);
/** Free (wiping the value). */
void sky__kv_read_free(sky__kv_read *r);

#endif
