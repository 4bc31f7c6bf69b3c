/* skyio — Azure Storage auth: connection strings, Shared Key signing, SAS tokens. */
#ifndef SKYIO_STORAGE_H
#define SKYIO_STORAGE_H

#include <stdint.h>

#include "buf.h"
#include "common.h"
#include "error.h"
#include "headers.h"

/** The service version skyio sends (x-ms-version) and signs SAS tokens for. */
#define SKY_STORAGE_VERSION "2021-12-02"
/** Azurite's well-known development account. */
#define SKY_STORAGE_DEV_ACCOUNT "devstoreaccount1"
/** Azurite's default Blob endpoint (path-style: the account is the first path segment). */
#define SKY_STORAGE_DEV_BLOB_ENDPOINT "http://127.0.0.1:10000/devstoreaccount1"

/**
 * A storage account as a connection string describes it. Every string is
 * owned by the struct (free with sky_storage_account_free); fields that the
 * connection string did not give are NULL.
 */
typedef struct sky_storage_account {
    char *account_name;  /**< "mystorage" */
    char *account_key;   /**< base64 account key (a secret); NULL when none */
    char *blob_endpoint; /**< "https://mystorage.blob.core.windows.net", no trailing '/' */
    char *sas;           /**< SAS token without the leading '?' (a secret); NULL when none */
} sky_storage_account;

/**
 * Parse a connection string ("AccountName=..;AccountKey=..;..."). Keys are
 * case-insensitive: DefaultEndpointsProtocol, AccountName, AccountKey,
 * EndpointSuffix, BlobEndpoint, SharedAccessSignature, UseDevelopmentStorage;
 * others (QueueEndpoint, ...) are accepted and ignored. On success returns 0
 * and a new account in *out (caller frees). On failure returns SKY_EINVAL
 * (or SKY_ENOMEM) and @p err says which key or position and why; a value of
 * AccountKey or SharedAccessSignature never appears in the message.
 */
SKY_EXTERN int sky_storage_connstr_parse(sky_span text, sky_storage_account **out,
                                         sky_error *err) SKY_NODISCARD;

/**
 * Parse $AZURE_STORAGE_CONNECTION_STRING. SKY_ENOTFOUND when it is unset or
 * empty, otherwise as sky_storage_connstr_parse.
 */
SKY_EXTERN int sky_storage_connstr_from_env(sky_storage_account **out,
                                            sky_error *err) SKY_NODISCARD;

/** Free an account from the parsers (NULL is fine). Secrets are wiped first. */
SKY_EXTERN void sky_storage_account_free(sky_storage_account *a);

/**
 * Whether @p name is a storage account name: 3 to 24 lowercase letters and digits
 * (Azurite's devstoreaccount1 is one). Returns 0 or SKY_EINVAL with @p err saying
 * what is wrong. The connection string parser and sky_storage_account_new check it.
 */
SKY_EXTERN int sky_storage_account_name_check(const char *name, sky_error *err) SKY_NODISCARD;

/**
 * A new account from its parts (each copied; any may be NULL). Returns 0,
 * SKY_EINVAL when @p account_name is not an account name (see
 * sky_storage_account_name_check) or @p account_key is given but not base64, or SKY_ENOMEM.
 */
SKY_EXTERN int sky_storage_account_new(const char *account_name, const char *account_key,
                                       const char *blob_endpoint, const char *sas,
                                       sky_storage_account **out, sky_error *err) SKY_NODISCARD;

/** Where a program's account comes from, as a command line names it. Every field is
 *  optional and borrowed for the call; fill with sky_storage_account_options_init. */
typedef struct sky_storage_account_options {
    const char *connection_string; /**< decides alone when given */
    const char *account_name;      /**< "mystorage" */
    const char *account_key;       /**< base64 (a secret); with account_name */
    const char *sas;               /**< a SAS token (a secret), with or without '?' */
    const char *blob_endpoint;     /**< default https://{account_name}.blob.core.windows.net */
} sky_storage_account_options;

/** Every field NULL. */
SKY_EXTERN void sky_storage_account_options_init(sky_storage_account_options *o);

/**
 * The account @p o names, in the order a command line takes them: its connection string;
 * else, when it gives an account name, a SAS or an endpoint, an account of those parts (a
 * name or an endpoint is required; a key alone names nothing); else
 * $AZURE_STORAGE_CONNECTION_STRING. Returns 0 and a new account in *out (free with
 * sky_storage_account_free), SKY_ENOTFOUND when nothing names one, or SKY_EINVAL /
 * SKY_ENOMEM with @p err saying why (never with a secret in it).
 */
SKY_EXTERN int sky_storage_account_resolve(const sky_storage_account_options *o,
                                           sky_storage_account **out, sky_error *err) SKY_NODISCARD;

/**
 * Build the Shared Key string-to-sign of a request into @p out (appended):
 * the verb, the standard headers of @p h (Content-Length empty when 0), the
 * canonicalized x-ms-* headers and the canonicalized resource
 * "/{account}{path as sent}" plus the decoded, sorted query parameters.
 * @p url is the full URL as it will be sent. Returns 0, SKY_EINVAL, SKY_ENOMEM.
 */
SKY_EXTERN int sky_storage_string_to_sign(const char *account, const char *method, const char *url,
                                          const sky_headers *h, sky_buf *out) SKY_NODISCARD;

/**
 * base64(HMAC-SHA256(base64-decoded @p key_b64, @p msg)) into @p out
 * (NUL-terminated; 45 bytes are enough). Returns 0, SKY_EINVAL for a key
 * that is not base64, SKY_ETOOBIG when @p out is too small.
 */
SKY_EXTERN int sky_storage_hmac_b64(const char *key_b64, sky_span msg, char *out,
                                    size_t out_len) SKY_NODISCARD;

/**
 * Sign a request with Shared Key: add "Authorization: SharedKey
 * {account}:{signature}" to @p h, which must already hold x-ms-date,
 * x-ms-version and every header that will be sent. Returns 0 or a SKY_E code
 * with @p err filled (never with the key in it).
 */
SKY_EXTERN int sky_storage_authorize(const char *account, const char *key_b64, const char *method,
                                     const char *url, sky_headers *h, sky_error *err) SKY_NODISCARD;

/** The current time as an RFC 1123 date for x-ms-date ("Sun, 06 Nov 1994 08:49:37 GMT"). */
SKY_EXTERN void sky_storage_date_now(char *out, size_t out_len);

/**
 * Percent-encode @p in for a URL path (keep_slash nonzero: '/' stays) or a
 * query value (keep_slash 0), appending to @p out. Unreserved characters
 * (A-Z a-z 0-9 - . _ ~) stay as they are. Returns 0 or a sky_buf error.
 */
SKY_EXTERN int sky_storage_url_encode(sky_span in, int keep_slash, sky_buf *out) SKY_NODISCARD;

/** Settings of a SAS token. Fill with sky_storage_sas_options_init. */
typedef struct sky_storage_sas_options {
    const char *permissions; /**< sp, e.g. "racwdl"; required */
    int64_t start;           /**< st, Unix seconds; 0: none */
    int64_t expiry;          /**< se, Unix seconds; required */
    const char *ip;          /**< sip; NULL: none */
    const char *protocol;    /**< spr: "https" or "https,http"; NULL: none */
    const char *version;     /**< sv, 2020-12-06 or later; NULL: SKY_STORAGE_VERSION */
    /* Account SAS only. */
    const char *services;       /**< ss; default "b" */
    const char *resource_types; /**< srt; default "sco" */
    /* Service SAS only. */
    const char *container;  /**< required for a service SAS */
    const char *blob;       /**< NULL: a container SAS (sr=c), else a blob SAS (sr=b) */
    const char *identifier; /**< si (stored access policy); NULL: none */
} sky_storage_sas_options;

/** Every default (nothing set, expiry 0). */
SKY_EXTERN void sky_storage_sas_options_init(sky_storage_sas_options *o);

/**
 * Make an account SAS (string-to-sign of "Create an account SAS" for
 * version 2020-12-06 and later) and append the query string, without '?',
 * to @p out: "sv=..&ss=..&srt=..&sp=..&se=..[&st=..][&sip=..][&spr=..]&sig=..".
 * Returns 0 or a SKY_E code with @p err filled.
 */
SKY_EXTERN int sky_storage_sas_account(const char *account, const char *key_b64,
                                       const sky_storage_sas_options *o, sky_buf *out,
                                       sky_error *err) SKY_NODISCARD;

/**
 * Make a Blob service SAS for a container or one blob (string-to-sign of
 * "Create a service SAS" for version 2020-12-06 and later) and append its
 * query string, without '?', to @p out. Returns 0 or a SKY_E code.
 */
SKY_EXTERN int sky_storage_sas_service(const char *account, const char *key_b64,
                                       const sky_storage_sas_options *o, sky_buf *out,
                                       sky_error *err) SKY_NODISCARD;

#endif
