/* skyio — Azure Key Vault secrets: get, set, list, delete; keyvault:// references. */
#ifndef SKYIO_KEYVAULT_H
#define SKYIO_KEYVAULT_H

#include <uv.h>

#include "clock.h"
#include "common.h"
#include "credential.h"
#include "error.h"
#include "headers.h"
#include "http.h"
#include "pipeline.h"
#include "retry.h"

/*
 * Key Vault's challenge-based auth: the client's first request goes without a token; the
 * vault answers 401 with `WWW-Authenticate: Bearer authorization="<authority>/<tenant>",
 * resource="https://vault.azure.net"` (or scope="..."); the client then asks its
 * credential for a token for that scope and sends the request again, and every later
 * request carries a token for it. The challenge's resource must be the vault's own
 * domain (a vault at x.vault.azure.net asks for https://vault.azure.net), so that a
 * token is never handed to a host that names another service; a vault on a loopback
 * address (a local mock) is exempt. Every request goes through the client's pipeline:
 * Key Vault's 429 (with Retry-After) and 5xx replies are waited for and retried.
 *
 * Secret values are secrets: skyio never logs them, never puts them in an error, and
 * wipes its copies when done. A reply's value is borrowed until the callback returns.
 */

/** Long-lived: one per vault. */
typedef struct sky_keyvault_client sky_keyvault_client;
/** One-shot: an operation in flight. Valid until its callback returns. */
typedef struct sky_keyvault_op sky_keyvault_op;

/** The Key Vault REST API version skyio speaks. */
#define SKY_KEYVAULT_API_VERSION "7.5"

typedef struct sky_keyvault_client_options {
    const char *vault_url;      /**< "https://myvault.vault.azure.net"; https only; required */
    sky_credential *credential; /**< required; borrowed: it must outlive the client */
    /** 1 (default): the challenge's resource or scope must be the vault's domain. 0: any
     *  (like the SDKs' disableChallengeResourceVerification). Loopback vaults are exempt. */
    int verify_challenge_resource;
    sky_retry_options retry; /**< default: azure-core's (10 retries); 429 waits Retry-After */
    long attempt_timeout_ms; /**< one attempt; default 300000 */
    const sky_clock *clock;  /**< NULL: the real clock. Borrowed */
    int retry_unreached;     /**< as sky_blob_client_options.retry_unreached; default 0 */
    /** The client's pipeline, filled by sky_keyvault_pipeline_options_init. */
    sky_pipeline_options pipeline;
} sky_keyvault_client_options;

/** Every default; no vault and no credential. */
SKY_EXTERN void sky_keyvault_client_options_init(sky_keyvault_client_options *o);

/** Key Vault's reply rules as a pipeline classifier (its JSON error's code and message).
 *  Static: never freed. */
SKY_EXTERN const sky_reply_classifier *sky_keyvault_classifier(void);

/** sky_pipeline_options_init with sky_keyvault_classifier and no concurrency limit. */
SKY_EXTERN void sky_keyvault_pipeline_options_init(sky_pipeline_options *o);

/**
 * A new client on @p loop sending through @p http (borrowed: it must outlive the client).
 * @p o is copied. Returns 0, or SKY_EINVAL / SKY_ENOMEM with @p err filled.
 */
SKY_EXTERN int sky_keyvault_client_new(uv_loop_t *loop, sky_http_client *http,
                                       const sky_keyvault_client_options *o,
                                       sky_keyvault_client **out, sky_error *err) SKY_NODISCARD;

/** Cancel every operation (each callback runs now, before this returns, with SKY_ECANCELED)
 *  and free the client. Allowed from inside an operation's callback. */
SKY_EXTERN void sky_keyvault_client_free(sky_keyvault_client *c);

/**
 * Whether @p name is a secret name Key Vault accepts: 1 to 127 characters, ASCII letters,
 * digits and hyphens. Every operation checks it before any request. 0 or SKY_EINVAL with
 * @p err naming the rule.
 */
SKY_EXTERN int sky_keyvault_name_check(const char *name, sky_error *err) SKY_NODISCARD;

/** A secret, or one entry of a listing. Borrowed: valid until the callback returns. */
typedef struct sky_keyvault_secret {
    const char *name;
    const char *version;      /**< NULL in a listing */
    const char *id;           /**< "https://vault/secrets/name/version" */
    const char *content_type; /**< NULL when none */
    sky_span value;           /**< get and set only (a secret: never log it); else empty */
    int enabled;              /**< attributes.enabled; 1 when absent */
    int64_t created, updated; /**< Unix seconds; 0 when absent */
    /* A deleted secret (delete's reply): */
    const char *recovery_id;      /**< NULL when the vault has no soft-delete */
    int64_t deleted_date;         /**< Unix seconds; 0 when absent */
    int64_t scheduled_purge_date; /**< Unix seconds; 0 when absent */
} sky_keyvault_secret;

/** What a callback receives. Borrowed: valid until the callback returns. */
typedef struct sky_keyvault_reply {
    int status;                        /**< last HTTP status, 0 when none */
    const sky_keyvault_secret *secret; /**< get, set, delete */
    const sky_keyvault_secret *items;  /**< list: this page */
    size_t count;
    const char *next_link; /**< list: the next page's URL, NULL on the last */
} sky_keyvault_reply;

/**
 * The operation is over: exactly once, from the loop. @p err is NULL on success; otherwise
 * SKY_EHTTP with http_status and Key Vault's code (SecretNotFound, Forbidden, ...), SKY_EAUTH
 * (no token, or a challenge refused), a transport error or SKY_ECANCELED. @p op is freed
 * when this returns; the reply's value is wiped then.
 */
typedef void (*sky_keyvault_done_cb)(sky_keyvault_op *op, const sky_keyvault_reply *reply,
                                     const sky_error *err, void *user_data);

/** Cancel: the callback runs soon, from the loop, with SKY_ECANCELED. */
SKY_EXTERN void sky_keyvault_op_cancel(sky_keyvault_op *op);

/*
 * Every operation below: the arguments are copied; on success returns 0 and (when
 * @p out_op is not NULL) the handle, and @p cb runs exactly once, never from inside the
 * call. On failure (a bad name) returns a SKY_E code with @p err filled; @p cb never runs.
 */

/** GET /secrets/{name}[/{version}]: @p version NULL for the latest. reply->secret. */
SKY_EXTERN int sky_keyvault_get(sky_keyvault_client *c, const char *name, const char *version,
                                sky_keyvault_done_cb cb, void *user_data, sky_keyvault_op **out_op,
                                sky_error *err) SKY_NODISCARD;
/** PUT /secrets/{name}: a new version with @p value (copied, wiped after the send);
 *  @p content_type may be NULL. reply->secret names the version made. */
SKY_EXTERN int sky_keyvault_set(sky_keyvault_client *c, const char *name, sky_span value,
                                const char *content_type, sky_keyvault_done_cb cb, void *user_data,
                                sky_keyvault_op **out_op, sky_error *err) SKY_NODISCARD;
/** One page of secrets (no values): @p next_link NULL for the first, else the previous
 *  page's (it must be on the vault's host). reply->items, reply->next_link. */
SKY_EXTERN int sky_keyvault_list(sky_keyvault_client *c, const char *next_link,
                                 sky_keyvault_done_cb cb, void *user_data, sky_keyvault_op **out_op,
                                 sky_error *err) SKY_NODISCARD;
/** DELETE /secrets/{name}: every version; with soft-delete the vault keeps it for
 *  recovery until reply->secret->scheduled_purge_date. */
SKY_EXTERN int sky_keyvault_delete(sky_keyvault_client *c, const char *name,
                                   sky_keyvault_done_cb cb, void *user_data,
                                   sky_keyvault_op **out_op, sky_error *err) SKY_NODISCARD;

/*
 * Secret references: "keyvault://VAULT/NAME" or "keyvault://VAULT/NAME/VERSION", where a
 * Key Vault is wanted in place of a secret's value (an API key in the environment, an
 * account key on the command line). VAULT is a vault's name (myvault: the vault at
 * https://myvault.vault.azure.net) or, with a dot or a colon in it, its host
 * (myvault.vault.azure.cn, 127.0.0.1:8443).
 */

/** A parsed reference; every string owned (free with sky_keyvault_ref_free). */
typedef struct sky_keyvault_ref {
    char *vault_url; /**< "https://myvault.vault.azure.net" */
    char *name;
    char *version; /**< NULL: the latest */
} sky_keyvault_ref;

/** Whether @p text is a reference (starts with "keyvault://"): 1 or 0. */
SKY_EXTERN int sky_keyvault_is_ref(const char *text);

/**
 * Parse @p text into @p out. Returns 0, or SKY_EINVAL with @p err saying what is wrong
 * (the reference names no secret value, so it may be quoted), or SKY_ENOMEM.
 */
SKY_EXTERN int sky_keyvault_ref_parse(const char *text, sky_keyvault_ref *out,
                                      sky_error *err) SKY_NODISCARD;
SKY_EXTERN void sky_keyvault_ref_free(sky_keyvault_ref *r);

#endif
