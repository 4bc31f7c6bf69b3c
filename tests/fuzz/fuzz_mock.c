/*
 * libFuzzer target for what `skyio mock` reads from a client, without a
 * server: the input is at once
 * - a JSON request body for each of the five model calls (chat, embeddings,
 *   responses, completions, moderations), read as the handlers read them;
 * - the model name it names, which the fast chat reply writes into its JSON by hand;
 * - a token request's form body (client credentials, assertions) and a path
 *   of the Entra ID token route;
 * - a Content-Type value;
 * - a mock config (--config), with its "arm" and "identity" parts.
 *
 * Invariants: an accepted body gives a reply length within 1..100000, a
 * prompt token count of at least 1 and counts within the documented limits;
 * the hand-written chat reply is valid JSON that names the same model and
 * adds up its usage, within the size it promised; a form value is found
 * exactly when "key=" starts a pair, and decodes to no more bytes; an
 * accepted config is within its ranges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "mock/internal.h"
#include "skyio/json.h"

#define FZ_DEFAULT_TOKENS 16
#define FZ_DIM 1536
#define FZ_MAX_WORDS 2000 /* the reply's words cost time, not coverage */

/* The fast chat reply for @p model: valid JSON, the same model, usage that adds up. */
static void fz_chat_reply(const char *model, const sky__mock_request *rq, uint64_t seed)
{
    sky__mock_json_name cache;
    memset(&cache, 0, sizeof(cache));
    sky_span model_json;
    int rc = sky__mock_json_name_get(&cache, model, &model_json);
    FZ_CHECK(rc == 0 || rc == SKY_EINVAL || rc == SKY_ENOMEM);
    if (rc != 0)
        return;
    sky__mock_chat_reply r;
    memset(&r, 0, sizeof(r));
    r.id = SKY_SPAN_LIT("chatcmpl-00000000000000000001");
    r.model_json = model_json;
    r.created = 1700000000;
    r.prompt_tokens = rq->prompt_tokens;
    r.n_tokens = rq->n_tokens > FZ_MAX_WORDS ? FZ_MAX_WORDS : rq->n_tokens;
    r.has_max = rq->has_max;
    r.seed = seed;
    size_t cap = sky__mock_chat_reply_size(&r);
    char *out = malloc(cap);
    if (out != NULL) {
        size_t n = sky__mock_chat_reply_write(&r, out);
        FZ_CHECK(n <= cap);
        json_t *j = NULL;
        FZ_CHECK(sky_json_parse(sky_span_make(out, n), &j, NULL) == 0);
        const char *back = sky_json_str(j, "model", NULL);
        FZ_CHECK(back != NULL && strcmp(back, model) == 0);
        FZ_CHECK(sky_json_int(sky_json_path(j, "usage"), "total_tokens", -1) ==
                 r.prompt_tokens + r.n_tokens);
        json_decref(j);
        free(out);
    }
    sky__mock_json_name_free(&cache);
}

/* The limits each kind of call puts on what it accepts. */
static void fz_check_request(int kind, const sky__mock_request *rq)
{
    FZ_CHECK(rq->n_tokens >= 1 && rq->n_tokens <= 100000);
    FZ_CHECK(rq->has_max || rq->n_tokens == FZ_DEFAULT_TOKENS);
    FZ_CHECK(rq->prompt_tokens >= 1);
    if (kind == SKY__MOCK_EMBEDDINGS)
        FZ_CHECK(rq->dim >= 1 && rq->dim <= 65536 && rq->n_inputs >= 1);
    if (kind == SKY__MOCK_COMPLETIONS)
        FZ_CHECK(rq->n_inputs >= 1 && rq->n_inputs <= 128);
    if (kind == SKY__MOCK_MODERATIONS)
        FZ_CHECK(rq->n_inputs >= 1 && rq->n_inputs <= 2048);
}

static void fz_bodies(const json_t *req, const uint8_t *data, size_t size)
{
    FZ_CHECK(sky__mock_input_chars(req) >= 0);
    for (int kind = 0; kind < SKY__MOCK_CALL_KINDS; kind++) {
        sky__mock_request rq;
        const char *problem = sky__mock_parse_request(kind, req, FZ_DEFAULT_TOKENS, FZ_DIM, &rq);
        if (problem != NULL) {
            FZ_CHECK(problem[0] != '\0');
            continue;
        }
        fz_check_request(kind, &rq);
        const char *model = sky_json_str(req, "model", NULL);
        if (kind == SKY__MOCK_CHAT && model != NULL)
            fz_chat_reply(model, &rq, sky__mock_hash(data, size, 0));
    }
}

/* The reference: the raw value of the first pair that starts with "key=". */
static const char *fz_form_ref(sky_span body, const char *key, size_t *out_len)
{
    size_t klen = strlen(key);
    const char *p = body.ptr, *end = body.ptr + body.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            *out_len = (size_t)(stop - p) - klen - 1;
            return p + klen + 1;
        }
        p = stop + 1;
    }
    return NULL;
}

static void fz_form(sky_span body)
{
    static const char *const keys[] = {
        "grant_type",      "client_id", "scope", "client_secret", "client_assertion_type",
        "client_assertion"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(keys); i++) {
        size_t raw_len = 0;
        const char *raw = fz_form_ref(body, keys[i], &raw_len);
        char *v = sky__mock_form_get(body, keys[i]);
        FZ_CHECK((v != NULL) == (raw != NULL));
        FZ_CHECK(v == NULL || strlen(v) <= raw_len);
        free(v);
    }
    if (sky__mock_tenant_path_ok(body)) {
        static const char suffix[] = "/oauth2/v2.0/token";
        FZ_CHECK(body.len > sizeof(suffix) && memcmp(body.ptr + body.len - (sizeof(suffix) - 1),
                                                     suffix, sizeof(suffix) - 1) == 0);
    }
    if (sky__mock_json_media_type(body))
        FZ_CHECK(body.len >= 16 && strncasecmp(body.ptr, "application/json", 16) == 0);
}

/* A config that is accepted holds values within their ranges, and makes an ARM state. */
static void fz_config(json_t *json)
{
    sky_mock_config c;
    sky_mock_config_init(&c);
    sky_error err;
    sky_error_clear(&err);
    int rc = sky_mock_config_apply_json(&c, json, &err);
    if (rc != 0) {
        FZ_CHECK(rc == SKY_EINVAL && err.code == rc && err.message[0] != '\0');
        return;
    }
    FZ_CHECK(c.port >= 0 && c.port <= 65535 && c.window_ms >= 1);
    FZ_CHECK(c.threads >= 1 && c.threads <= 64);
    FZ_CHECK(c.embedding_dim >= 1 && c.embedding_dim <= 65536);
    FZ_CHECK(c.n_keys <= SKY_MOCK_MAX_KEYS && c.n_models <= SKY_MOCK_MAX_KEYS);
    FZ_CHECK(c.arm.polls >= 0 && c.arm.style != NULL);
    sky__mock_arm *a = sky__mock_arm_new(&c.arm, 0, "127.0.0.1");
    sky__mock_arm_free(a);
    sky__mock_identity *id = sky__mock_identity_new(&c.identity, 0);
    sky__mock_identity_free(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sky_span text = sky_span_make((const char *)data, size);
    json_t *req = NULL;
    if (sky_json_parse(text, &req, NULL) == 0) {
        if (json_is_object(req))
            fz_bodies(req, data, size);
        fz_config(req);
        json_decref(req);
    }
    fz_form(text);
    return 0;
}
