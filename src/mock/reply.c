/*
 * The plain chat completion: the reply the benchmarks ask for most. It is
 * assembled from fragments, because building it as a jansson tree and
 * dumping it, or printing it with a format, cost about as much as parsing
 * the request. The constant parts are fixed JSON text, the numbers are
 * decimal digits, the words come from a vocabulary that needs no escaping,
 * and the one string taken from the request, the model name, is encoded by
 * jansson (once for as long as requests keep naming the same model).
 */
#include <stdlib.h>

#include "skyio/json.h"
#include "internal.h"

/* Every fragment, in order; a reply is these with the variable parts between. */
#define F_ID "{\"id\":\""
#define F_CREATED "\",\"object\":\"chat.completion\",\"created\":"
#define F_MODEL ",\"model\":"
#define F_CONTENT ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\""
#define F_FINISH "\",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":\""
#define F_PROMPT "\"}],\"usage\":{\"prompt_tokens\":"
#define F_COMPLETION ",\"completion_tokens\":"
#define F_TOTAL ",\"total_tokens\":"
#define F_END                                                                                      \
    ",\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"                         \
    "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"                    \
    "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}},"                         \
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_skyio_mock\"}"

/* The longest decimal int64, sign included. */
enum { MAX_DIGITS = 20 };

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_int(char *p, int64_t v)
{
    char digits[MAX_DIGITS];
    size_t n = 0;
    /* Negate in unsigned arithmetic: -INT64_MIN does not fit an int64_t. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = digits[--n];
    return p;
}

static char *put_hex(char *p, uint64_t v, int min_digits)
{
    static const char hex[] = "0123456789abcdef";
    int n = 1;
    while (n < 16 && (v >> (4 * n)) != 0)
        n++;
    if (n < min_digits)
        n = min_digits;
    for (int i = n - 1; i >= 0; i--)
        *p++ = i < 16 ? hex[(v >> (4 * i)) & 0xf] : '0';
    return p;
}

size_t sky__mock_format_id(char *out, const char *prefix, int worker, uint64_t n)
{
    char *p = put(out, prefix, strlen(prefix));
    p = put_hex(p, (uint64_t)worker, 2);
    p = put_hex(p, n, 14);
    *p = '\0';
    return (size_t)(p - out);
}

int sky__mock_json_name_get(sky__mock_json_name *cache, const char *name, sky_span *out)
{
    if (cache->raw == NULL || strcmp(cache->raw, name) != 0) {
        json_t *s = json_string(name); /* NULL when the name is not UTF-8 */
        size_t len = 0;
        char *json = s ? sky_json_dump(s, &len) : NULL;
        char *raw = json ? strdup(name) : NULL;
        json_decref(s);
        if (raw == NULL) {
            free(json);
            return s ? SKY_ENOMEM : SKY_EINVAL;
        }
        sky__mock_json_name_free(cache);
        cache->raw = raw;
        cache->json = json;
        cache->len = len;
    }
    *out = sky_span_make(cache->json, cache->len);
    return 0;
}

void sky__mock_json_name_free(sky__mock_json_name *cache)
{
    free(cache->raw);
    free(cache->json);
    memset(cache, 0, sizeof(*cache));
}

size_t sky__mock_chat_reply_size(const sky__mock_chat_reply *r)
{
    static const char fixed[] =
        F_ID F_CREATED F_MODEL F_CONTENT F_FINISH "length" F_PROMPT F_COMPLETION F_TOTAL F_END;
    return sizeof(fixed) - 1 + r->id.len + r->model_json.len + 4 * MAX_DIGITS +
           sky__mock_words_max(r->n_tokens);
}

size_t sky__mock_chat_reply_write(const sky__mock_chat_reply *r, char *out)
{
    char *p = PUT_LIT(out, F_ID);
    p = put(p, r->id.ptr, r->id.len);
    p = put_int(PUT_LIT(p, F_CREATED), r->created);
    p = put(PUT_LIT(p, F_MODEL), r->model_json.ptr, r->model_json.len);
    p = PUT_LIT(p, F_CONTENT);
    p += sky__mock_words_write(p, r->seed, r->n_tokens);
    p = PUT_LIT(p, F_FINISH);
    p = r->has_max ? PUT_LIT(p, "length") : PUT_LIT(p, "stop");
    p = put_int(PUT_LIT(p, F_PROMPT), r->prompt_tokens);
    p = put_int(PUT_LIT(p, F_COMPLETION), r->n_tokens);
    p = put_int(PUT_LIT(p, F_TOTAL), r->prompt_tokens + r->n_tokens);
    p = PUT_LIT(p, F_END);
    return (size_t)(p - out);
}
