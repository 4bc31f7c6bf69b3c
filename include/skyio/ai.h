/* skyio — OpenAI and Azure OpenAI endpoints: where requests go, how they authenticate. */
#ifndef SKYIO_AI_H
#define SKYIO_AI_H

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
 * Set it with `po.classifier = &sky_ai_classifier;` or use sky_ai_pipeline_options_init.
 */
extern SKY_EXTERN const sky_reply_classifier sky_ai_classifier;

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

#endif
