/* Internals of the credentials shared by src/auth/credential*.c. */
#ifndef SKY_CREDENTIAL_INTERNAL_H
#define SKY_CREDENTIAL_INTERNAL_H

#include "skyio/buf.h"
#include "skyio/credential.h"
#include "skyio/pipeline.h"

typedef struct sky__cred_fetch sky__cred_fetch;
typedef struct sky__cred_entry sky__cred_entry;

/* What makes one kind of credential: how to fetch a token, how to stop. */
typedef struct sky__cred_ops {
    const char *kind;
    /* Start getting a token for f->scope; end, now or later, with
     * sky__cred_fetch_done() exactly once. */
    void (*start)(sky__cred_fetch *f);
    /* Stop a fetch in flight (the credential is going): it still ends with
     * sky__cred_fetch_done(). */
    void (*abort)(sky__cred_fetch *f);
    /* Free the kind's own data (c->impl) when the credential goes. */
    void (*destroy)(sky_credential *c);
    /* Optional: the credential is being freed, after its fetches were aborted. */
    void (*shutdown)(sky_credential *c);
} sky__cred_ops;

/* Settings, resolved from options and environment; strings owned. */
typedef struct sky__cred_config {
    char *authority_host, *tenant_id, *client_id, *client_secret, *token_file;
    char *imds_endpoint, *identity_endpoint, *identity_header, *az_path, *cli_tenant;
    long az_timeout_ms, request_timeout_ms, imds_retry_base_ms, imds_probe_timeout_ms;
    long entra_retry_base_ms;
    int imds_max_retries, entra_max_retries;
    int64_t refresh_margin_s;
    int exclude[4];
} sky__cred_config;

/* One token fetch for one scope; waiting requests hang on its entry. */
struct sky__cred_fetch {
    sky_credential *c;
    sky__cred_entry *entry;
    const char *scope; /* the entry's */
    int forced;
    int aborted;
    void *impl; /* the kind's state while in flight */
};

struct sky__cred_entry {
    sky__cred_entry *next;
    char *scope;
    char *token;            /* NULL until the first success */
    int64_t expires_on;     /* Unix seconds */
    int64_t refresh_at_ms;  /* wall ms: refresh from here on */
    int64_t next_try_ms;    /* wall ms: after a failed background refresh */
    const char *source;     /* static string */
    sky__cred_fetch *fetch; /* in flight, or NULL */
};

typedef struct sky__token_list {
    sky_token_request *head, *tail;
} sky__token_list;

struct sky_credential {
    const sky__cred_ops *ops;
    uv_loop_t *loop;
    sky_http_client *http;
    sky_pipeline *pipe;       /* token requests (credential_http.c); NULL for kinds without */
    sky_pipeline *probe_pipe; /* managed identity's quick first probe in a chain */
    const sky_clock *clock;
    sky__cred_config cfg;
    void *impl;
    char *static_token;
    int64_t static_expires_on;
    sky__cred_entry *entries;
    sky__token_list waiting, ready;
    uv_timer_t kick; /* delivers ready requests from the loop */
    size_t n_fetches;
    int succeeded; /* a token came at least once */
    int in_deliver;
    int free_requested;
    int freeing;
    int closing;
};

/* Build a credential of @p ops with resolved settings (no network). */
int sky__cred_new(uv_loop_t *loop, sky_http_client *http, const sky_credential_options *o,
                  const sky__cred_ops *ops, sky_credential **out, sky_error *err);
/* End a kind's constructor: with @p missing (what is not configured) the
 * credential is discarded and SKY_EINVAL returned; else it goes live in *out. */
int sky__cred_finish_new(sky_credential *c, const char *missing, sky_credential **out,
                         sky_error *err);
/* Free the half-built credential of a failed constructor (no handles started). */
void sky__cred_discard(sky_credential *c);

/*
 * The fetch is over: a token (copied) valid until @p expires_on with an
 * optional @p refresh_in_s hint (0: none), or @p err. Wakes every request
 * waiting on the entry (delivered from the loop) and frees @p f.
 */
void sky__cred_fetch_done(sky__cred_fetch *f, const char *token, int64_t expires_on,
                          int64_t refresh_in_s, const char *source, const sky_error *err);

/* Wall-clock seconds of the credential's clock. */
int64_t sky__cred_now_s(const sky_credential *c);

/* Append "key=value" form-encoded (with '&' before it unless first). 0 or SKY_E. */
int sky__form_append(sky_buf *b, const char *key, const char *value);

/*
 * An error message from a service's reply: the text passed through the
 * log redaction, and any occurrence of @p secret (may be NULL) masked.
 */
void sky__cred_scrub(char *text, const char *secret);

/*
 * The token out of a JSON reply: "access_token" (or "accessToken"), the
 * expiry from "expires_on" / "expiresOn" (seconds, as a number or a
 * string) else now + "expires_in", and "refresh_in". 0 or SKY_EAUTH/EJSON.
 */
int sky__cred_parse_token_json(const sky_credential *c, sky_span body, char **out_token,
                               int64_t *out_expires_on, int64_t *out_refresh_in, sky_error *err);

/*
 * The token out of `az account get-access-token --output json` (@p out, its
 * stdout): "accessToken", and the expiry from "expires_on" (Unix seconds, a
 * number or a string) else "expiresOn" (local time, as older CLIs print it).
 * On success *token is new (free it). 0, SKY_EAUTH or SKY_ENOMEM.
 */
int sky__cred_parse_cli_output(sky_span out, char **token, int64_t *expires_on, sky_error *e);

/* The error for a non-2xx token reply: status, the service's code and first
 * line of its description, redacted and with @p secret masked. SKY_EAUTH. */
void sky__cred_reply_error(const sky_http_response *res, const char *secret, sky_error *err);
/* A transport failure (@p cause) of the token request to @p what. */
void sky__cred_transport_error(const sky_error *cause, const char *what, sky_error *err);

/* When to refresh a token obtained at @p now_s: margin before expiry, or
 * half the lifetime of a short one; @p refresh_in_s (when > 0) if earlier. */
int64_t sky__cred_refresh_at_ms(int64_t now_s, int64_t expires_on, int64_t margin_s,
                                int64_t refresh_in_s);

/* ---- token requests over a pipeline (credential_http.c) ---- */

/* How a kind's token requests are tried. */
typedef struct sky__token_policy {
    int max_retries;
    long retry_base_ms;
    long attempt_timeout_ms;
    int (*also_retry)(int status); /* the service's statuses beyond the pipeline's lists */
} sky__token_policy;

/* A pipeline for token requests alone, retrying by @p tp: no auth, no limits, no breaker,
 * no classifier. 0, or a SKY_E code with @p err filled. */
int sky__cred_pipeline_new(sky_credential *c, const sky__token_policy *tp, sky_pipeline **out,
                           sky_error *err);

/* sky__cred_finish_new for a kind that sends token requests: with nothing @p missing, its
 * pipeline (c->pipe) is built by @p tp first. */
int sky__cred_finish_new_http(sky_credential *c, const char *missing, const sky__token_policy *tp,
                              sky_credential **out, sky_error *err);

/* Start a token request (GET, or POST with @p body) on @p p: the call options filled
 * for a token reply (at most 1 MiB). 0, or a SKY_E code with @p err filled. */
int sky__cred_call(sky_pipeline *p, const char *url, const sky_headers *h, sky_span body,
                   sky_call_done_cb on_done, void *ud, sky_call **out, sky_error *err);

/* A token call's outcome: the token (new: free it) and its expiry into the out
 * parameters, or @p e: the transport failure prefixed with @p what, or the reply's error
 * with @p secret masked. */
void sky__cred_read_reply(const sky_credential *c, const sky_call_result *res, const sky_error *err,
                          const char *what, const char *secret, char **token, int64_t *expires_on,
                          int64_t *refresh_in, sky_error *e);

/* Static kind strings. */
const char *sky__cred_source_name(const char *s);

extern const sky__cred_ops sky__cred_client_secret_ops;
extern const sky__cred_ops sky__cred_workload_ops;
extern const sky__cred_ops sky__cred_managed_ops;
extern const sky__cred_ops sky__cred_cli_ops;

#endif
