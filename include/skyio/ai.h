/* skyio — OpenAI and Azure OpenAI endpoints: where requests go, how they authenticate. */
#ifndef SKYIO_AI_H
#define SKYIO_AI_H

#include <jansson.h>
#include <uv.h>

#include "buf.h"
#include "common.h"
#include "error.h"
#include "headers.h"
#include "pipeline.h"

typedef enum sky_ai_kind {
    SKY_AI_OPENAI = 0, /**< OpenAI or any OpenAI-compatible server: bearer key, model in body */
    SKY_AI_AZURE       /**< Azure OpenAI: deployment in the path, api-version, api-key */
} sky_ai_kind;

#define SKY_AI_DEFAULT_BASE_URL "https://api.openai.com/v1"
#define SKY_AI_DEFAULT_API_VERSION "2024-10-21"
/** The Entra ID scope of Azure OpenAI (and every Azure AI service). */
#define SKY_AI_ENTRA_SCOPE "https://cognitiveservices.azure.com/.default"

/**
 * An endpoint. Strings are owned (copied in, freed by sky_ai_endpoint_free).
 * The key is a secret: nothing here logs it or puts it in an error message.
 */
typedef struct sky_ai_endpoint {
    sky_ai_kind kind;
    char *base_url;    /**< OpenAI: up to and usually including /v1; Azure: the resource URL */
    char *api_key;     /**< NULL: send no key (a local server, or a token added elsewhere) */
    char *api_version; /**< Azure only */
    /** Azure without a key: authenticate with an Entra ID token for
     *  sky_ai_entra_scope() (a sky_credential; e.g. the pipeline's credential). */
    int use_entra_id;
    char *ad_token;     /**< Azure: a ready Entra ID token (AZURE_OPENAI_AD_TOKEN); NULL: none */
    char *organization; /**< OpenAI: sent as OpenAI-Organization (OPENAI_ORG_ID); NULL: none */
    char *project;      /**< OpenAI: sent as OpenAI-Project (OPENAI_PROJECT_ID); NULL: none */
} sky_ai_endpoint;

/**
 * Fill @p ep from the environment the OpenAI and Azure SDKs read:
 * AZURE_OPENAI_ENDPOINT (+ AZURE_OPENAI_API_KEY, OPENAI_API_VERSION) makes an
 * Azure endpoint when set and @p prefer_azure is nonzero or OPENAI_API_KEY is
 * unset; otherwise OpenAI with OPENAI_BASE_URL (default api.openai.com/v1)
 * and OPENAI_API_KEY (OPENAI_ORG_ID and OPENAI_PROJECT_ID too, as the SDK).
 * Azure takes AZURE_OPENAI_AD_TOKEN, a ready Entra ID token, when there is no
 * key. A missing key is allowed only for a base URL on loopback; otherwise
 * SKY_EAUTH naming the variable to set.
 */
SKY_EXTERN int sky_ai_endpoint_from_env(sky_ai_endpoint *ep, int prefer_azure,
                                        sky_error *err) SKY_NODISCARD;

/**
 * Like sky_ai_endpoint_from_env(), but AZURE_OPENAI_ENDPOINT without
 * AZURE_OPENAI_API_KEY is accepted: the endpoint gets no key and
 * use_entra_id = 1, and the caller sends `Authorization: Bearer <token>`
 * from a credential (sky_credential_default_new) for SKY_AI_ENTRA_SCOPE.
 */
SKY_EXTERN int sky_ai_endpoint_from_env_entra(sky_ai_endpoint *ep, int prefer_azure,
                                              sky_error *err) SKY_NODISCARD;

/**
 * The endpoint a front end was told of, flag before environment: with @p base_url (an
 * OpenAI-compatible server's API root, as a --base-url flag gives it; borrowed) an OpenAI
 * endpoint there, with OPENAI_API_KEY, OPENAI_ORG_ID and OPENAI_PROJECT_ID; without it,
 * sky_ai_endpoint_from_env_entra(). 0, or a SKY_E code with @p err filled.
 */
SKY_EXTERN int sky_ai_endpoint_resolve(sky_ai_endpoint *ep, const char *base_url, int prefer_azure,
                                       sky_error *err) SKY_NODISCARD;

/** OPENAI_ORG_ID and OPENAI_PROJECT_ID into @p ep, for an endpoint set explicitly (the
 *  environment functions read them already). 0 or SKY_ENOMEM. */
SKY_EXTERN int sky_ai_endpoint_read_org_env(sky_ai_endpoint *ep) SKY_NODISCARD;

/** Set @p ep explicitly (strings copied; @p api_version NULL takes the default). */
SKY_EXTERN int sky_ai_endpoint_set(sky_ai_endpoint *ep, sky_ai_kind kind, const char *base_url,
                                   const char *api_key, const char *api_version) SKY_NODISCARD;

SKY_EXTERN void sky_ai_endpoint_free(sky_ai_endpoint *ep);

/**
 * The URL for an OpenAI-style @p path ("/v1/chat/completions", what a batch
 * line's url says) and @p model, appended to @p out.
 * - OpenAI: the base is the API root, as OpenAI's SDKs take OPENAI_BASE_URL: base +
 *   "/chat/completions" (https://api.openai.com/v1/chat/completions). A base that is only
 *   a server address keeps the /v1 (http://127.0.0.1:8000/v1/chat/completions).
 * - Azure: {endpoint}/openai/deployments/{model}/chat/completions?api-version=V (the
 *   model names the deployment; SKY_EINVAL without one). /v1/responses goes to Azure's
 *   v1 surface, {endpoint}/openai/v1/responses; /v1/moderations, which Azure OpenAI
 *   does not have, is SKY_ENOTFOUND.
 */
SKY_EXTERN int sky_ai_url(const sky_ai_endpoint *ep, const char *path, const char *model,
                          sky_buf *out) SKY_NODISCARD;

/**
 * The Entra ID scope for the endpoint's cloud, from its host: Azure Government
 * (*.azure.us) and Azure China (*.azure.cn) have their own; the public cloud's
 * is SKY_AI_ENTRA_SCOPE. Static string.
 */
SKY_EXTERN const char *sky_ai_entra_scope(const sky_ai_endpoint *ep);

/** Add the key: "Authorization: Bearer K" (OpenAI) or "api-key: K" (Azure), or Azure's
 *  ready token as "Authorization: Bearer T"; and OpenAI-Organization / OpenAI-Project. */
SKY_EXTERN int sky_ai_auth_headers(const sky_ai_endpoint *ep, sky_headers *h) SKY_NODISCARD;

/** The same, in the shape of sky_pipeline_auth_cb (@p user_data is the endpoint). */
SKY_EXTERN int sky_ai_pipeline_auth(void *user_data, sky_headers *h, int refresh);

/* ---- OpenAI's reply rules, for the pipeline ---- */

/**
 * OpenAI's reply rules as a pipeline classifier: usage.total_tokens of a reply feeds the
 * rate limiter's token bucket; an error reply is described by its
 * {"error": {"message", "code"}} ("HTTP 429: You exceeded your current quota...", service
 * code "insufficient_quota"); a 429 insufficient_quota (as code or type), an account out
 * of credit, is final. Azure OpenAI and OpenAI-compatible servers answer alike.
 * Set it with `po.classifier = sky_ai_classifier();` or use sky_ai_pipeline_options_init.
 * A function, not an exported object: its address is the library's, static, never freed.
 */
SKY_EXTERN const sky_reply_classifier *sky_ai_classifier(void);

/**
 * sky_pipeline_options_init, then what an AI caller wants: sky_ai_classifier, OpenAI's
 * retry list (409 and every 5xx, as its SDKs) and a rate limiter that paces only once the
 * provider shows a limit (rate.unpaced_start).
 */
SKY_EXTERN void sky_ai_pipeline_options_init(sky_pipeline_options *o);

/**
 * 1 when a reply is OpenAI's "no credit left": a 429 whose error names insufficient_quota
 * (as its code or its type). No wait mends it. @p body is borrowed for the call.
 */
SKY_EXTERN int sky_ai_quota_exhausted(int status, sky_span body);

/** What one streamed chat chunk says (borrowed from the chunk's parse; see below). */
typedef struct sky_ai_delta {
    const char *content;       /**< the new text, NULL when none */
    const char *finish_reason; /**< "stop", "length", ... or NULL */
    int64_t prompt_tokens;     /**< from a usage chunk; -1 when absent */
    int64_t completion_tokens; /**< likewise */
    /** A chunk that is an error ({"error": {...}}), as a provider sends when a stream fails
     *  after it began: its message (or its code when it has none), else NULL */
    const char *error;
} sky_ai_delta;

/**
 * Read one `data:` payload of a chat stream (a chat.completion.chunk).
 * Calls @p cb with the delta while the parsed JSON is alive; returns 0,
 * SKY_EJSON when the payload is not a chunk, or what @p cb returns.
 */
SKY_EXTERN int sky_ai_parse_chunk(sky_span data, int (*cb)(void *ud, const sky_ai_delta *d),
                                  void *ud) SKY_NODISCARD;

/* ---- the AI service as a client: typed operations over the pipeline ---- */

/*
 * Every operation goes through the client's pipeline: retries (a stream only until its
 * first byte has reached the client), the rate and concurrency limits, the breaker, the
 * credential's tokens. Each takes an options struct with an _init, returns a handle that
 * can be canceled, and reports through its done callback exactly once (a fan-out: once
 * per model), never from inside the start call: success, error or SKY_ECANCELED. What a
 * callback is given is borrowed until it returns. Freeing the client (allowed from a
 * callback, then done when it returns) reports every pending operation as canceled.
 */

/** Long-lived: an endpoint and the pipeline its calls share. */
typedef struct sky_ai_client sky_ai_client;
/** One-shot: an operation in flight. Valid until its last done callback returns. */
typedef struct sky_ai_request sky_ai_request;

typedef struct sky_ai_client_options {
    /** Where to send; copied. NULL: from the environment, as sky_ai_endpoint_from_env_entra
     *  reads it (Azure without a key then needs pipeline.credential). */
    const sky_ai_endpoint *endpoint;
    /** The pipeline's policies; sky_ai_client_options_init fills them with
     *  sky_ai_pipeline_options_init. auth is the client's own (the endpoint's key); set
     *  pipeline.credential (borrowed) for Entra ID: its scope is the endpoint's cloud's. */
    sky_pipeline_options pipeline;
} sky_ai_client_options;

/** Every default. */
SKY_EXTERN void sky_ai_client_options_init(sky_ai_client_options *o);

/**
 * A client on @p loop sending through @p http (borrowed: it must outlive the client).
 * Returns 0, or SKY_EINVAL / SKY_ENOMEM / SKY_EAUTH (from the environment) with @p err.
 */
SKY_EXTERN int sky_ai_client_new(uv_loop_t *loop, sky_http_client *http,
                                 const sky_ai_client_options *o, sky_ai_client **out,
                                 sky_error *err) SKY_NODISCARD;
/** Cancel every operation (each reports SKY_ECANCELED) and free the client. */
SKY_EXTERN void sky_ai_client_free(sky_ai_client *c);
/** The client's pipeline, for its health and limiters (borrowed: lives with the client). */
SKY_EXTERN sky_pipeline *sky_ai_client_pipeline(sky_ai_client *c);
/** The client's copy of its endpoint (borrowed: lives with the client). */
SKY_EXTERN const sky_ai_endpoint *sky_ai_client_endpoint(const sky_ai_client *c);

/** Cancel: each pending done callback runs soon with SKY_ECANCELED. */
SKY_EXTERN void sky_ai_request_cancel(sky_ai_request *r);

/**
 * 1 when @p err (may be NULL: 0) ended a call because the client's endpoint cannot be
 * reached: a failure to connect, resolve its name or shake hands (SKY_ECONNECT,
 * SKY_ERESOLVE, SKY_ETLS) while nothing of it has ever answered, so its address or
 * certificates are wrong rather than the service down. With pipeline.fail_unreached set
 * such a call is not retried, and a front end can stop at once instead of going on.
 */
SKY_EXTERN int sky_ai_client_unreachable(const sky_ai_client *c, const sky_error *err);

/** The outcome of sky_ai_client_first_token: @p err NULL when the credential gave a token;
 *  else the credential's own error, or SKY_ECANCELED when the client was freed first.
 *  Borrowed until the callback returns. */
typedef void (*sky_ai_token_cb)(sky_ai_client *c, const sky_error *err, void *user_data);

/**
 * Ask the client's credential (pipeline.credential) for its token before any request, so
 * that a sign-in problem is said once rather than by every request (each would fail alike,
 * after its retries). The token is the one the credential caches for the first calls.
 * @p cb runs exactly once, from the loop, never inside this call; freeing the client runs
 * it with SKY_ECANCELED. Returns 0, or SKY_EINVAL (no credential; no cb), SKY_ESTATE (one
 * is pending already), SKY_ENOMEM, or the credential's error, with @p err; then @p cb
 * never runs.
 */
SKY_EXTERN int sky_ai_client_first_token(sky_ai_client *c, sky_ai_token_cb cb, void *user_data,
                                         sky_error *err) SKY_NODISCARD;

/* ---- chat completions ---- */

/** One answer. Borrowed: valid until the callback returns. */
typedef struct sky_ai_chat_result {
    const char *model;
    size_t index;              /**< the model's place in a fan-out; 0 for one model */
    const char *content;       /**< the answer, whole (a stream's deltas joined); "" when none */
    const char *finish_reason; /**< "stop", "length", "content_filter", ...; NULL when none */
    int64_t prompt_tokens;     /**< from usage; -1 when the reply gave none */
    int64_t completion_tokens;
    const json_t *reply;         /**< the whole reply when not streamed; else NULL */
    const sky_call_result *call; /**< attempts, status, request id, timings */
} sky_ai_chat_result;

/** A streamed chunk of model @p index. Return 0 to go on, nonzero to cancel that answer. */
typedef int (*sky_ai_chat_delta_cb)(sky_ai_request *req, size_t index, const sky_ai_delta *d,
                                    void *user_data);
/**
 * One model's answer is over. @p err is NULL for a whole answer; else why not: the
 * pipeline's error (SKY_EHTTP with the provider's message and code, a transport error,
 * SKY_ETIMEDOUT, ...), or SKY_EPARTIAL for an answer that did not end well: a stream cut
 * before [DONE], an error sent inside the stream (service code its code or "stream_error"),
 * a content filter (service code "content_filter"). @p res is always given; its content
 * is what arrived.
 */
typedef void (*sky_ai_chat_done_cb)(sky_ai_request *req, const sky_ai_chat_result *res,
                                    const sky_error *err, void *user_data);

typedef struct sky_ai_chat_options {
    const char *model; /**< the model, or Azure's deployment; required unless models is set */
    /** Fan-out: the same request to each of these models at once, each answer reported on
     *  its own (one failing does not stop the others). Borrowed for the start call. */
    const char *const *models;
    size_t n_models;
    const char *system;     /**< a system message first; NULL: none */
    const char *prompt;     /**< the user's message */
    const json_t *messages; /**< or the whole conversation (then system and prompt are
                                 ignored); borrowed for the start call */
    /** More request fields (temperature, max_tokens, tools, ...), merged into the body;
     *  borrowed for the start call. NULL: none. */
    const json_t *params;
    int stream;        /**< 1: stream the answer (deltas to on_delta as they come) */
    int include_usage; /**< stream: ask for the usage chunk (stream_options.include_usage;
                            older Azure api-versions refuse it) */
    sky_ai_chat_delta_cb on_delta; /**< stream: each chunk; may be NULL */
    sky_ai_chat_done_cb on_done;   /**< required */
    void *user_data;
} sky_ai_chat_options;

SKY_EXTERN void sky_ai_chat_options_init(sky_ai_chat_options *o);
/**
 * Start a chat completion (or one per model). Returns 0 and, when @p out is not NULL, the
 * handle; or a SKY_E code with @p err, and no callback runs.
 */
SKY_EXTERN int sky_ai_chat_start(sky_ai_client *c, const sky_ai_chat_options *o,
                                 sky_ai_request **out, sky_error *err) SKY_NODISCARD;

/* ---- embeddings ---- */

/** The vectors, in input order. Borrowed: valid until the callback returns. */
typedef struct sky_ai_embed_result {
    size_t count;                /**< vectors */
    size_t dim;                  /**< numbers in each */
    const double *vectors;       /**< count * dim: vector i starts at vectors + i * dim */
    int64_t prompt_tokens;       /**< -1 when the reply gave none */
    const json_t *reply;         /**< the whole reply; NULL on error */
    const sky_call_result *call; /**< attempts, status, request id, timings */
} sky_ai_embed_result;

typedef void (*sky_ai_embed_done_cb)(sky_ai_request *req, const sky_ai_embed_result *res,
                                     const sky_error *err, void *user_data);

typedef struct sky_ai_embed_options {
    const char *model;         /**< required */
    const char *const *inputs; /**< texts to embed; borrowed for the start call */
    size_t n_inputs;           /**< at least 1 */
    int dimensions;            /**< 0: the model's own */
    sky_ai_embed_done_cb on_done;
    void *user_data;
} sky_ai_embed_options;

SKY_EXTERN void sky_ai_embed_options_init(sky_ai_embed_options *o);
/** Start an embeddings request: as sky_ai_chat_start. A reply whose vectors are not
 *  all numbers of one size is SKY_EJSON. */
SKY_EXTERN int sky_ai_embed_start(sky_ai_client *c, const sky_ai_embed_options *o,
                                  sky_ai_request **out, sky_error *err) SKY_NODISCARD;

/* ---- responses ---- */

/** Borrowed: valid until the callback returns. */
typedef struct sky_ai_respond_result {
    const char *id;          /**< the response's id (for previous_response_id); NULL on error */
    const char *output_text; /**< the output_text parts joined; "" when none */
    const char *status;      /**< "completed", "incomplete", ...; NULL when absent */
    int64_t input_tokens;    /**< -1 when the reply gave none */
    int64_t output_tokens;
    const json_t *reply;
    const sky_call_result *call;
} sky_ai_respond_result;

typedef void (*sky_ai_respond_done_cb)(sky_ai_request *req, const sky_ai_respond_result *res,
                                       const sky_error *err, void *user_data);

typedef struct sky_ai_respond_options {
    const char *model;                /**< required */
    const char *input;                /**< the user's text; required */
    const char *instructions;         /**< NULL: none */
    const char *previous_response_id; /**< continue that conversation; NULL: none */
    const json_t *params; /**< more request fields, merged in; borrowed for the start call */
    sky_ai_respond_done_cb on_done;
    void *user_data;
} sky_ai_respond_options;

SKY_EXTERN void sky_ai_respond_options_init(sky_ai_respond_options *o);
/** Start a Responses API request (not streamed): as sky_ai_chat_start. */
SKY_EXTERN int sky_ai_respond_start(sky_ai_client *c, const sky_ai_respond_options *o,
                                    sky_ai_request **out, sky_error *err) SKY_NODISCARD;

#endif
