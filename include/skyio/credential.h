/* skyio — Entra ID (Azure AD) credentials: one interface to get an access token for a scope. */
#ifndef SKYIO_CREDENTIAL_H
#define SKYIO_CREDENTIAL_H

#include <uv.h>

#include "clock.h"
#include "common.h"
#include "error.h"
#include "http.h"

/*
 * Every credential answers one question asynchronously: "a token for this
 * scope, please". Tokens are cached per scope and refreshed ahead of their
 * expiry (5 minutes before, or at half the lifetime of a short token); while
 * a refresh is in flight, every caller for that scope waits on the same
 * request. Tokens and secrets never appear in a log line or an error message.
 */

/** Long-lived: a source of tokens. Free with sky_credential_free(). */
typedef struct sky_credential sky_credential;
/** One-shot: a pending sky_credential_get_token(). Valid until its callback returns. */
typedef struct sky_token_request sky_token_request;

/** A token, as the callback sees it. Borrowed: valid until the callback returns. */
typedef struct sky_access_token {
    const char *token;  /**< the bearer token (a secret: never log it) */
    int64_t expires_on; /**< Unix seconds */
    /** Which credential gave it: "environment", "workload_identity",
     *  "managed_identity", "azure_cli" or "static". */
    const char *source;
} sky_access_token;

/**
 * The outcome of sky_credential_get_token(): exactly once, never from inside
 * the call that started it. @p tok is set and @p err NULL on success;
 * otherwise @p tok is NULL and @p err says why (SKY_EAUTH, SKY_ECANCELED...).
 */
typedef void (*sky_token_cb)(sky_token_request *req, const sky_access_token *tok,
                             const sky_error *err, void *user_data);

/**
 * Settings shared by every credential. Fill with sky_credential_options_init()
 * (all NULL / defaults); a NULL string falls back to its environment variable
 * as noted. Strings are copied by the constructors.
 */
typedef struct sky_credential_options {
    const char
        *authority_host; /**< NULL: $AZURE_AUTHORITY_HOST, else https://login.microsoftonline.com */
    const char *tenant_id;     /**< NULL: $AZURE_TENANT_ID */
    const char *client_id;     /**< NULL: $AZURE_CLIENT_ID (managed identity: user-assigned id) */
    const char *client_secret; /**< NULL: $AZURE_CLIENT_SECRET */
    const char *federated_token_file; /**< NULL: $AZURE_FEDERATED_TOKEN_FILE */
    /** IMDS base URL. NULL: $AZURE_POD_IDENTITY_AUTHORITY_HOST, else http://169.254.169.254 */
    const char *imds_endpoint;
    const char *identity_endpoint; /**< App Service / Container Apps; NULL: $IDENTITY_ENDPOINT */
    const char *identity_header;   /**< NULL: $IDENTITY_HEADER */
    const char *az_path;           /**< Azure CLI program; NULL: $SKYIO_AZ_PATH, else "az" */
    long az_timeout_ms;            /**< the az process; default 15000 */
    long request_timeout_ms;       /**< one token HTTP request; default 30000 */
    int imds_max_retries;          /**< IMDS 404/410/429/5xx/transport retries; default 3 */
    long imds_retry_base_ms;       /**< first backoff ceiling, doubled each retry; default 500 */
    int entra_max_retries;         /**< Entra ID 429/5xx/transport retries; default 3 */
    long entra_retry_base_ms;      /**< first backoff ceiling, doubled each retry; default 800 */
    int64_t refresh_margin_s;      /**< refresh this early; default 300 (half a short lifetime) */
    /* DefaultAzureCredential's chain: each source can be left out. */
    int exclude_environment;
    int exclude_workload_identity;
    int exclude_managed_identity;
    int exclude_azure_cli;
    const sky_clock *clock; /**< NULL: the real clock. Borrowed */
} sky_credential_options;

/** Every default (NULL strings: read the environment at construction). */
SKY_EXTERN void sky_credential_options_init(sky_credential_options *o);

/*
 * Constructors. Each takes the loop, an HTTP client (borrowed: it must
 * outlive the credential; may be NULL for static and Azure CLI), options
 * (NULL: defaults; copied), and returns 0 with *out, or a SKY_E code with
 * @p err filled (SKY_EINVAL when a required setting is missing).
 */

/**
 * The chain: environment (client secret), workload identity, managed
 * identity, Azure CLI. A link that is not configured is skipped; the first
 * that gives a token is the only one asked afterwards. Until IMDS has
 * answered once, the chain gives it 1 s (off Azure nobody answers there).
 * When every link fails, one SKY_EAUTH error names each and why.
 */
SKY_EXTERN int sky_credential_default_new(uv_loop_t *loop, sky_http_client *client,
                                          const sky_credential_options *o, sky_credential **out,
                                          sky_error *err) SKY_NODISCARD;
/** OAuth2 client credentials with a client secret (tenant, client id and secret required). */
SKY_EXTERN int sky_credential_client_secret_new(uv_loop_t *loop, sky_http_client *client,
                                                const sky_credential_options *o,
                                                sky_credential **out, sky_error *err) SKY_NODISCARD;
/** Client credentials with a federated assertion read from a file on every refresh. */
SKY_EXTERN int sky_credential_workload_identity_new(uv_loop_t *loop, sky_http_client *client,
                                                    const sky_credential_options *o,
                                                    sky_credential **out,
                                                    sky_error *err) SKY_NODISCARD;
/** Managed identity: App Service form when IDENTITY_ENDPOINT+HEADER are set, else IMDS. */
SKY_EXTERN int sky_credential_managed_identity_new(uv_loop_t *loop, sky_http_client *client,
                                                   const sky_credential_options *o,
                                                   sky_credential **out,
                                                   sky_error *err) SKY_NODISCARD;
/** `az account get-access-token`, run with uv_spawn (client unused; may be NULL). */
SKY_EXTERN int sky_credential_azure_cli_new(uv_loop_t *loop, sky_http_client *client,
                                            const sky_credential_options *o, sky_credential **out,
                                            sky_error *err) SKY_NODISCARD;
/**
 * A credential by the name its kind goes by (sky_credential_kind): "environment",
 * "workload_identity", "managed_identity" or "azure_cli" for that one alone, "default" or
 * NULL for the chain; the rest as the constructors above. SKY_EINVAL for another name.
 */
SKY_EXTERN int sky_credential_new_named(uv_loop_t *loop, sky_http_client *client, const char *kind,
                                        const sky_credential_options *o, sky_credential **out,
                                        sky_error *err) SKY_NODISCARD;

/** Leave the chain's link named @p kind ("environment", ...) out of @p o: 0, or SKY_EINVAL
 *  when no link goes by that name. */
SKY_EXTERN int sky_credential_options_exclude(sky_credential_options *o,
                                              const char *kind) SKY_NODISCARD;

/**
 * A fixed token (copied) that expires at @p expires_on (Unix seconds; 0:
 * never), for tests and for keys. Source "static".
 */
SKY_EXTERN int sky_credential_static_new(uv_loop_t *loop, const char *token, int64_t expires_on,
                                         sky_credential **out, sky_error *err) SKY_NODISCARD;

/**
 * Get a token for @p scope (e.g. "https://management.azure.com/.default";
 * copied). Returns 0 and, when @p out_req is not NULL, the handle; @p cb runs
 * exactly once, from the loop, never from inside this call. On failure
 * returns a SKY_E code with @p err filled and @p cb never runs.
 */
SKY_EXTERN int sky_credential_get_token(sky_credential *c, const char *scope, sky_token_cb cb,
                                        void *user_data, sky_token_request **out_req,
                                        sky_error *err) SKY_NODISCARD;

/**
 * Like sky_credential_get_token(), but the cached token is ignored and a new
 * one fetched (after a 401). Concurrent refreshes still share one request.
 */
SKY_EXTERN int sky_credential_refresh_token(sky_credential *c, const char *scope, sky_token_cb cb,
                                            void *user_data, sky_token_request **out_req,
                                            sky_error *err) SKY_NODISCARD;

/**
 * The cached token for @p scope when it is fresh (not due for refresh),
 * synchronously: returns 1 and fills @p out (borrowed until the next call on
 * @p c), or 0.
 */
SKY_EXTERN int sky_credential_peek_token(sky_credential *c, const char *scope,
                                         sky_access_token *out);

/** Cancel: the callback runs soon with SKY_ECANCELED (a shared refresh goes on for others). */
SKY_EXTERN void sky_token_request_cancel(sky_token_request *req);

/** The credential's kind: "default", "environment", "workload_identity", ... Static string. */
SKY_EXTERN const char *sky_credential_kind(const sky_credential *c);

/**
 * Cancel every pending request (callbacks run with SKY_ECANCELED) and free
 * the credential; handle memory goes when the loop has closed them.
 */
SKY_EXTERN void sky_credential_free(sky_credential *c);

/**
 * The resource for IMDS / Azure CLI from a scope: "<x>/.default" gives "<x>"
 * (written into @p out, NUL-terminated). Returns 0, or SKY_ETOOBIG.
 */
SKY_EXTERN int sky_credential_scope_to_resource(const char *scope, char *out, size_t out_len);

#endif
