/*
 * `skyio mock`: a local OpenAI / Azure OpenAI simulator with latency, limits and faults.
 * Internal: the skyio_mock library, linked into the `skyio` binary and the tests that
 * need it, never into libskyio nor installed.
 */
#ifndef SKY_MOCK_MOCK_H
#define SKY_MOCK_MOCK_H

#include <jansson.h>
#include <uv.h>

#include "skyio/common.h"
#include "skyio/error.h"

#define SKY_MOCK_MAX_KEYS 16

/** Fault rates, each a probability in [0, 1] drawn per request from a seeded generator. */
typedef struct sky_mock_faults {
    double http_500, http_502, http_503;
    double reset;      /**< connection reset before any answer */
    double hang;       /**< no answer ever (the client's timeout must act) */
    double cut;        /**< body announced in full, cut short half-way */
    double malformed;  /**< 200 with a body that is not valid JSON */
    double stream_cut; /**< a stream that ends before its [DONE] */
    /** a stream that sends an error chunk half-way, {"error": {...}}, and ends there */
    double stream_error;
    /** a stream whose answer the content filter stops half-way (finish_reason
     *  "content_filter", then [DONE]) */
    double content_filter;
} sky_mock_faults;

/** Azure Resource Manager in the mock (src/mock/arm.c); keys under "arm" in --config. */
typedef struct sky_mock_arm {
    int polls;          /**< polls an operation answers InProgress before it ends; default 2 */
    int retry_after_s;  /**< Retry-After on started operations and polls; default 0 */
    const char *style;  /**< "async" (Azure-AsyncOperation, default), "location", "state" */
    int page_size;      /**< items per list page; default 100 */
    int throttle_every; /**< every Nth ARM request gets 429; 0: never (default) */
    int throttle_retry_after_s; /**< Retry-After of those 429s; default 0 */
} sky_mock_arm;

/** Entra ID, IMDS and App Service token endpoints (src/mock/identity.c); keys under "identity". */
typedef struct sky_mock_identity {
    const char *client_id;       /**< the only client id accepted; NULL: any */
    const char *client_secret;   /**< the only secret accepted; NULL: any non-empty one */
    const char *identity_header; /**< X-IDENTITY-HEADER wanted; default "mock-identity-header" */
    int expires_in;              /**< lifetime of issued tokens in seconds; default 3600 */
    int fail_status;             /**< nonzero: token requests get this status; default 0 */
    int fail_count;              /**< with fail_status: only the first N fail; 0: all (default) */
    int delay_ms;                /**< wait before each token reply; default 0 */
} sky_mock_identity;

typedef struct sky_mock_config {
    const char *host;          /**< default 127.0.0.1 */
    int port;                  /**< default 0: a free port */
    const char *tls_cert_file; /**< with tls_key_file: HTTPS, HTTP/2 via ALPN */
    const char *tls_key_file;
    const char *keys[SKY_MOCK_MAX_KEYS]; /**< accepted keys; none: auth off */
    size_t n_keys;
    /** Known models (or Azure deployments); none: any name is served. Others get 404. */
    const char *models[SKY_MOCK_MAX_KEYS];
    size_t n_models;
    double ttft_ms;                /**< time to first token */
    double per_token_ms;           /**< time per output token */
    double jitter;                 /**< +- fraction applied to latency, default 0.1 */
    int64_t rpm;                   /**< requests per minute; 0: unlimited */
    int64_t tpm;                   /**< tokens per minute; 0: unlimited */
    int64_t window_ms;             /**< enforcement window, default 1000 (RPM/60 per second) */
    int hide_ratelimit_headers;    /**< send no x-ratelimit-* / retry-after headers */
    int default_completion_tokens; /**< reply length without max_tokens; default 16 */
    /** With max_tokens, a reply's natural length is drawn log-normal around this median and
     *  the limit cuts it ("length"); most replies end "stop" before it. 0: every reply uses
     *  its whole max_tokens. Default 200. */
    int reply_median_tokens;
    int reply_min_tokens; /**< no natural reply is shorter; default 64 */
    int embedding_dim;    /**< default 1536 unless the request says "dimensions" */
    size_t max_body;      /**< request body limit; default 8 MiB */
    /** Refuse every chat and embeddings request (after auth) with this status, as a provider
     *  does for a whole account: 403 for a missing role, 429 with refuse_code
     *  "insufficient_quota" for an account out of credit. 0 (default): serve them. */
    int refuse_status;
    const char *refuse_code; /**< the error code of those refusals; default per status */
    sky_mock_faults faults;
    /** Requests served at once (per thread), as an inference server serves a batch; the rest
     *  wait in line and their latency includes the wait. 0 (default): no limit. */
    int capacity;
    /** Above this many model calls a second (bursts of overload_burst more pass), answer
     *  overload_status at once, as nginx's limit_req does. 0 (default): never. */
    double overload_rps;
    int overload_burst;  /**< default 5 */
    int overload_status; /**< 503 (nginx's default, an HTML page) or 529; default 503 */
    /** Fraction of distinct request bodies answered 500 every time (a request the server
     *  cannot handle, whatever the retries). 0 (default): none. */
    double poison;
    uint64_t seed; /**< fault and jitter generator seed; default 1 */
    /** Loops (threads) serving the port; default 1. Each has its own generator
     *  (seed + index): replies stay reproducible per thread, not across them. */
    int threads;
    sky_mock_arm arm;           /**< ARM state is shared by the threads, under a lock */
    sky_mock_identity identity; /**< identity endpoints; counters shared by the threads */
} sky_mock_config;

/** Every default. */
void sky_mock_config_init(sky_mock_config *c);
/**
 * Apply a JSON config object (keys as in `skyio mock --help`, e.g. "rpm",
 * "faults": {"http_503": 0.1}). Strings are borrowed from @p json: keep it
 * alive as long as the config. Unknown keys are an error naming the key.
 */
int sky_mock_config_apply_json(sky_mock_config *c, json_t *json, sky_error *err) SKY_NODISCARD;

typedef struct sky_mock sky_mock;

/** Create and start listening. Returns 0, or a SKY_E code with @p err filled. */
int sky_mock_start(uv_loop_t *loop, const sky_mock_config *c, sky_mock **out_mock,
                   sky_error *err) SKY_NODISCARD;
/** The port listened on. */
int sky_mock_port(const sky_mock *m);
/** The statistics as served at GET /mock/stats (new reference). */
json_t *sky_mock_stats(const sky_mock *m);
/** Stop accepting and let requests in flight end (up to @p grace_ms); then @p cb. */
void sky_mock_shutdown(sky_mock *m, uint64_t grace_ms, void (*cb)(sky_mock *, void *),
                       void *user_data);
void sky_mock_free(sky_mock *m);

#endif
