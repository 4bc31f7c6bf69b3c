/* Internals of `skyio mock` shared by its files. */
#ifndef SKY_MOCK_INTERNAL_H
#define SKY_MOCK_INTERNAL_H

#include "skyio/buf.h"
#include "mock.h"

/* Fixed-window limiter: per window, rpm*window/60000 requests and as many
 * tokens; like Azure OpenAI, which judges RPM over one-second windows. What passed
 * in the last minute is kept a second at a time too, for the headers, which tell of
 * the minute as the providers' do. */
typedef struct sky__mock_limiter {
    int64_t window_ms;
    int64_t req_allow, tok_allow; /* per window; 0: unlimited */
    int64_t rpm, tpm;
    uint64_t window_start;
    int64_t req_used, tok_used;
    uint64_t sec_at[60]; /* the second (since the clock's epoch) each slot holds */
    int64_t sec_req[60], sec_tok[60];
} sky__mock_limiter;

typedef struct sky__mock_verdict {
    int allowed;
    int by_tokens;    /* refused for tokens rather than requests */
    int64_t retry_ms; /* when refused: until the window turns */
    int64_t reset_ms; /* until the window turns */
    int64_t req_left, tok_left;
    /* in the last minute: what is left of rpm and tpm, and when the oldest of it leaves */
    int64_t minute_req_left, minute_tok_left;
    int64_t minute_reset_ms;
} sky__mock_verdict;

void sky__mock_limiter_init(sky__mock_limiter *l, int64_t rpm, int64_t tpm, int64_t window_ms);
/* Charge one request of @p tokens at @p now_ms, or refuse it. */
void sky__mock_limiter_take(sky__mock_limiter *l, uint64_t now_ms, int64_t tokens,
                            sky__mock_verdict *out);

/* splitmix64: a small seeded generator, for reproducible faults and jitter. */
uint64_t sky__mock_rand(uint64_t *state);
/* Uniform in [0, 1). */
double sky__mock_rand01(uint64_t *state);

/* FNV-1a over bytes: the seed of a reply's words, so replies are deterministic. */
uint64_t sky__mock_hash(const void *p, size_t n, uint64_t h);
/* Append @p n_tokens words chosen from @p seed to @p out, separated by spaces. */
int sky__mock_words(sky_buf *out, uint64_t seed, int n_tokens);
/* The one word for token @p i of a reply with @p seed (static storage). */
const char *sky__mock_word(uint64_t seed, int i);
/* At most how many bytes sky__mock_words_write() writes for @p n_tokens words. */
size_t sky__mock_words_max(int n_tokens);
/* Write the words sky__mock_words() appends to @p out (no NUL); returns their length. */
size_t sky__mock_words_write(char *out, uint64_t seed, int n_tokens);
/* A token estimate for text: about four characters a token, at least 1. */
int64_t sky__mock_estimate_tokens(size_t chars);
/* Format a duration the way OpenAI's reset headers do ("1s", "250ms", "1m3s"). */
void sky__mock_format_duration(int64_t ms, char *out, size_t len);

/* Reply fragments (src/mock/reply.c). */

/* Write @p prefix, @p worker as two or more hex digits and @p n as fourteen
 * or more, then a NUL, to @p out (room for strlen(prefix) + 33 bytes).
 * Returns the length. */
size_t sky__mock_format_id(char *out, const char *prefix, int worker, uint64_t n);

/* A name and its JSON encoding (quotes included) by jansson, kept for the
 * next request that names the same model. */
typedef struct sky__mock_json_name {
    char *raw;
    char *json;
    size_t len;
} sky__mock_json_name;

/* @p name as a JSON string in @p out, borrowed from @p cache until the next
 * call. 0, SKY_EINVAL when the name is not UTF-8, or SKY_ENOMEM. */
int sky__mock_json_name_get(sky__mock_json_name *cache, const char *name, sky_span *out);
void sky__mock_json_name_free(sky__mock_json_name *cache);

/* What a plain chat completion says; the spans are borrowed. */
typedef struct sky__mock_chat_reply {
    sky_span id;         /* ours: letters, digits and '-' */
    sky_span model_json; /* from sky__mock_json_name_get() */
    int64_t created;
    int64_t prompt_tokens;
    int n_tokens;
    int has_max; /* finish_reason "length" rather than "stop" */
    uint64_t seed;
} sky__mock_chat_reply;

/* At most how many bytes sky__mock_chat_reply_write() writes for @p r. */
size_t sky__mock_chat_reply_size(const sky__mock_chat_reply *r);
/* Write the reply's JSON to @p out (no NUL); returns its length. */
size_t sky__mock_chat_reply_write(const sky__mock_chat_reply *r, char *out);

/* Responses, Completions and Moderations (src/mock/apis.c). */

/* What such a reply says; the strings are borrowed. */
typedef struct sky__mock_text {
    const char *id;
    const char *model;
    int64_t created;
    int64_t prompt_tokens;
    int n_tokens;
    int has_max;  /* the request set a token limit: the reply stops at it */
    int limit;    /* that limit (0: none), which a reply echoes */
    int n_inputs; /* moderations: one result per input; completions: one choice per prompt */
    uint64_t seed;
    const char *stop_reason;  /* Responses: why a stream stopped early ("content_filter") */
    const char *instructions; /* Responses: the request's, echoed (NULL: none) */
} sky__mock_text;

/* The events of a streamed response, in the order they are sent. */
enum {
    SKY__RE_CREATED,
    SKY__RE_IN_PROGRESS,
    SKY__RE_ITEM_ADDED,
    SKY__RE_PART_ADDED,
    SKY__RE_DELTA, /* one per token */
    SKY__RE_TEXT_DONE,
    SKY__RE_PART_DONE,
    SKY__RE_ITEM_DONE,
    SKY__RE_END, /* response.completed, or response.incomplete */
    SKY__RE_ERROR
};

/* Characters of prompt text in a string, token ids, content parts or input items. */
int64_t sky__mock_input_chars(const json_t *v);
/* The reply bodies (new references), NULL when out of memory. */
json_t *sky__mock_responses_body(const sky__mock_text *t);
json_t *sky__mock_completion_body(const sky__mock_text *t);
json_t *sky__mock_moderation_body(const sky__mock_text *t);
/* Event @p ev of a streamed response, numbered @p seq, and its type in *out_type (static).
 * @p delta is the token of SKY__RE_DELTA; the "done" events hold the first t->n_tokens
 * words. NULL when out of memory. */
json_t *sky__mock_responses_event(const sky__mock_text *t, int ev, int seq, const char *delta,
                                  const char **out_type);
/* A chunk of choice @p index of a streamed legacy completion (one choice per prompt:
 * t->n_inputs), and the usage chunk before [DONE]. */
json_t *sky__mock_completion_chunk(const sky__mock_text *t, int index, const char *text,
                                   const char *finish);
json_t *sky__mock_completion_usage_chunk(const sky__mock_text *t);

/* A value that validates against JSON Schema @p schema, drawn from @p seed (src/mock/schema.c):
 * a new reference, NULL when out of memory. */
json_t *sky__mock_from_schema(const json_t *schema, uint64_t seed);
/* Append to @p out a string that the JSON Schema @p pattern (NUL-terminated) matches, drawn
 * from @p rng (src/mock/pattern.c). SKY_EINVAL, with @p out as it was, when the pattern uses
 * what the generator does not know (lookaround, backreferences, \b, \p, \u) or is
 * malformed; SKY_ENOMEM. */
int sky__mock_pattern_string(const char *pattern, uint64_t *rng, sky_buf *out);

/* Request parsing (src/mock/parse.c), callable without a server (tests, fuzzing). */

/* The model calls. */
enum {
    SKY__MOCK_CHAT,
    SKY__MOCK_EMBEDDINGS,
    SKY__MOCK_RESPONSES,
    SKY__MOCK_COMPLETIONS,
    SKY__MOCK_MODERATIONS,
    SKY__MOCK_CALL_KINDS
};

/* The reply a chat request asks for: prose, or JSON (response_format). */
enum { SKY__FORMAT_TEXT, SKY__FORMAT_JSON, SKY__FORMAT_SCHEMA };

/* What a request body asks for, as the handler reads it. */
typedef struct sky__mock_request {
    int stream;
    int include_usage;
    int has_max;  /* it set a token limit */
    int n_tokens; /* reply length: that limit (at most 100000), else the default */
    int dim;      /* embeddings */
    int base64;   /* embeddings: encoding_format "base64" */
    int n_inputs; /* embeddings, completions, moderations */
    int64_t prompt_tokens;
    int n_choices;        /* chat: "n" */
    int format;           /* chat: SKY__FORMAT_* */
    const json_t *schema; /* chat: json_schema's schema (borrowed from the body) */
    const json_t *tool;   /* chat: the function tool_choice makes it call (borrowed), or NULL */
    uint64_t seed;        /* in: the body's hash, which decides what tool_choice "auto" does */
} sky__mock_request;

/* Read the JSON body @p req of a call of @p kind as the handler does, with the config's
 * @p default_tokens and embedding @p dim: NULL, or what is wrong with it (static text). */
const char *sky__mock_parse_request(int kind, const json_t *req, int default_tokens, int dim,
                                    sky__mock_request *out);
/* The handler's reading: @p q holds the defaults (n_tokens, dim, the rest 0) and gets what
 * the body asks; a Responses call's instructions go to *out_instructions (malloc'd, the
 * caller frees; NULL: none), even when the body is refused. */
const char *sky__mock_parse_call(int kind, const json_t *req, sky__mock_request *q,
                                 char **out_instructions);
/* "application/json" in any case, with or without parameters such as charset. */
int sky__mock_json_media_type(sky_span content_type);

/* ARM (src/mock/arm.c): one state for every worker, guarded by its own lock. */
typedef struct sky__mock_arm sky__mock_arm;
/* A new ARM state with the settings of @p c (copied); its links use https when @p tls and
 * name @p host (copied) when a request names none. NULL when out of memory. */
sky__mock_arm *sky__mock_arm_new(const sky_mock_arm *c, int tls, const char *host);
void sky__mock_arm_free(sky__mock_arm *a);
/* Defaults, and the "arm" object of a JSON config. */
void sky__mock_arm_config_init(sky_mock_arm *c);
int sky__mock_arm_apply_json(sky_mock_arm *c, json_t *obj, sky_error *err);

/* Virtual machines (src/mock/arm_compute.c), under the ARM state's lock. Top-level keys of a
 * stored resource that start with SKY__MOCK_ARM_PRIVATE are the mock's, never answered. */
#define SKY__MOCK_ARM_PRIVATE "skyio-mock-"
/* Nonzero when @p type is Microsoft.Compute/virtualMachines (any case). */
int sky__mock_vm_is(const char *type);
/* The first required field a create body @p req lacks (static text), or NULL. */
const char *sky__mock_vm_problem(const json_t *req);
/* A stored VM @p res as ARM keeps it: secrets dropped, a vmId from @p serial, running. */
void sky__mock_vm_created(json_t *res, uint64_t serial);
/* The effect of a finished POST @p action (powerOff, deallocate, start, restart) on @p res. */
void sky__mock_vm_action_done(json_t *res, const char *action);
/* The instanceView of @p res (new reference): provisioning and power states. */
json_t *sky__mock_vm_instance_view(const json_t *res);

/* Identity endpoints (src/mock/identity.c): settings and counters shared by every worker. */
typedef struct sky__mock_identity sky__mock_identity;
/* With @p tls, discovery documents name https:// endpoints. */
sky__mock_identity *sky__mock_identity_new(const sky_mock_identity *c, int tls);
void sky__mock_identity_free(sky__mock_identity *id);
/* The "identity" object of /mock/stats (new reference), and its reset. */
json_t *sky__mock_identity_stats(const sky__mock_identity *id);
void sky__mock_identity_reset(sky__mock_identity *id);
void sky__mock_identity_config_init(sky_mock_identity *c);
/* The decoded value of @p key in an x-www-form-urlencoded body (malloc'd), or NULL. */
char *sky__mock_form_get(sky_span body, const char *key);
/* Nonzero when @p path is /{tenant}/oauth2/v2.0/token (one segment of tenant). */
int sky__mock_tenant_path_ok(sky_span path);
int sky__mock_identity_apply_json(sky_mock_identity *c, json_t *obj, sky_error *err);

#endif
