/* What the Blob and Queue clients share: their copied endpoint and auth, checks, signing. */
#ifndef SKY_AZURE_STORAGE_CLIENT_H
#define SKY_AZURE_STORAGE_CLIENT_H

#include "skyio/clock.h"
#include "skyio/credential.h"
#include "skyio/error.h"
#include "skyio/pipeline.h"
#include "skyio/retry.h"

/** A Storage client's own copies of its endpoint and auth (key and SAS wiped when freed). */
typedef struct sky__storage_conn {
    const char *what;   /* "blob" or "queue": a static string, for the errors' words */
    char *endpoint;     /* without a trailing '/' */
    char *account_name; /* NULL when none */
    char *account_key;  /* base64; NULL when none */
    char *sas;          /* without its leading '?'; NULL when none */
    char *scope;        /* the bearer token's scope; never NULL once copied */
} sky__storage_conn;

/** The caller's auth, borrowed: what sky__storage_conn_copy copies. */
typedef struct sky__storage_auth {
    const char *endpoint;
    const char *account_name;
    const char *account_key;
    const char *sas;
    const char *scope; /* NULL: https://storage.azure.com/.default */
} sky__storage_auth;

/** An http(s) endpoint, and an account name wherever a key is given. 0 or SKY_EINVAL. */
int sky__storage_auth_check(const char *what, const sky__storage_auth *a, sky_error *err);

/** Copy @p a into @p s (what is static). 0, or SKY_ENOMEM (release @p s then). */
int sky__storage_conn_copy(sky__storage_conn *s, const char *what, const sky__storage_auth *a);

/** Free what @p s holds, key and SAS wiped first. */
void sky__storage_conn_release(sky__storage_conn *s);

/**
 * A pipeline sign callback (user data: the sky__storage_conn): a fresh x-ms-date, then with
 * a key the Shared Key signature over everything the attempt carries.
 */
int sky__storage_sign_attempt(void *ud, const char *method, const char *url, sky_headers *h,
                              sky_error *err);

/** What the Blob and Queue client options have alike, for their pipeline. */
typedef struct sky__storage_pipe_options {
    sky_pipeline_options pipeline; /* the caller's policies */
    sky_retry_options retry;
    long attempt_timeout_ms;
    const sky_clock *clock;
    int retry_unreached;
    sky_credential *credential; /* borrowed; used without a key */
} sky__storage_pipe_options;

/**
 * Fill @p po from @p o for the client with @p s: retries, timeout, clock, reached-or-not,
 * signing with @p s; without a key, bearer auth from the credential (no token source).
 */
void sky__storage_pipeline_options(sky_pipeline_options *po, const sky__storage_pipe_options *o,
                                   sky__storage_conn *s);

#endif
