/*
 * skyio — batch lines: OpenAI Batch JSONL input lines (or plain prompt lines)
 * into requests, and results into OpenAI Batch output lines. Pure functions:
 * no I/O, no loop, no clock.
 */
#ifndef SKYIO_BATCHLINE_H
#define SKYIO_BATCHLINE_H

#include <jansson.h>

#include "buf.h"
#include "common.h"
#include "error.h"

/** Longest accepted custom_id, in bytes. */
#define SKY_BATCHLINE_CUSTOM_ID_MAX 512
/** Default cap on one input line, in bytes (checked before parsing). */
#define SKY_BATCHLINE_MAX_DEFAULT ((size_t)16 * 1024 * 1024)
/** Returned by the line parsers for a line of only whitespace: skip it. */
#define SKY_BATCHLINE_BLANK 1

/** How input lines are read. Fill with sky_batchline_options_init, then change fields. */
typedef struct sky_batchline_options {
    /** longer lines are errors; 0 means the default (16 MiB: a request with images inline
     *  is several MiB; OpenAI sets no limit per line, only 200 MB per file) */
    size_t max_line_bytes;
    /* Used only by sky_batchline_text_parse (the --text mode). Strings are borrowed. */
    const char *model;   /**< body.model; NULL leaves it out */
    const char *system;  /**< system message; NULL leaves it out */
    int has_temperature; /**< nonzero to send temperature */
    double temperature;
    int64_t max_tokens; /**< sent when > 0 */
    /** nonzero: send it as max_completion_tokens, which OpenAI's reasoning models (o-series,
     *  gpt-5) require and which deprecates max_tokens there; 0 (default): max_tokens */
    int max_completion_tokens;
} sky_batchline_options;

/** Set every default: 16 MiB lines, no model, no system prompt, no temperature, no max_tokens. */
SKY_EXTERN void sky_batchline_options_init(sky_batchline_options *opts);

/**
 * One request read from an input line. Every pointer is owned by the struct
 * and freed by sky_batchline_request_free, except @c url, which points to a
 * static string and is never freed. The method is always POST.
 */
typedef struct sky_batchline_request {
    char *custom_id;       /**< non-empty, at most SKY_BATCHLINE_CUSTOM_ID_MAX bytes, valid UTF-8 */
    const char *url;       /**< static: "/v1/chat/completions", "/v1/embeddings", ... */
    char *body;            /**< the body's JSON text, ready to send (NUL-terminated) */
    size_t body_len;       /**< strlen(body) */
    char *model;           /**< body.model, or NULL when absent or not a string */
    uint64_t line;         /**< 1-based input line number */
    uint64_t prompt_chars; /**< characters (code points) of prompt text, see estimate */
    uint64_t max_tokens;   /**< max_tokens / max_completion_tokens / max_output_tokens, or 0 */
    uint64_t token_estimate; /**< ceil(prompt_chars / 4) + max_tokens, for the rate limiter */
} sky_batchline_request;

/** Free what the request owns and zero it. Safe on a zeroed or already freed request. */
SKY_EXTERN void sky_batchline_request_free(sky_batchline_request *req);

/**
 * Why an input line was refused. A plain value (no heap): copy it freely.
 * The message names the line and the field, never the line's content
 * (only the custom_id, which is kept in its own field, is ever echoed).
 */
typedef struct sky_batchline_error {
    /**
     * code: SKY_EJSON (not JSON), SKY_ETOOBIG (line too long), SKY_EINVAL
     * (anything else wrong with the line), SKY_ENOMEM (not the line's fault:
     * stop the job instead of writing a record). service_code: the record's
     * error code ("invalid_json", "invalid_input", "line_too_long",
     * "duplicate_custom_id", "internal_error"). message: "line 17: lacks custom_id".
     */
    sky_error err;
    uint64_t line;     /**< 1-based line number */
    const char *param; /**< static field name ("custom_id", "method", "url", "body") or NULL */
    int has_custom_id; /**< nonzero when custom_id below is known */
    size_t custom_id_len;
    char custom_id[SKY_BATCHLINE_CUSTOM_ID_MAX + 1];
} sky_batchline_error;

/**
 * Parse one OpenAI Batch JSONL line ({"custom_id","method","url","body"}).
 * @p line need not be NUL-terminated and may end in "\r\n". @p opts may be NULL
 * (defaults). A UTF-8 byte order mark at the start of line 1 is ignored.
 * Returns 0 with *out_req filled (free it with sky_batchline_request_free),
 * SKY_BATCHLINE_BLANK for a line of only whitespace (nothing filled), or a
 * negative code with *out_err filled (*out_req left zeroed).
 */
SKY_EXTERN int sky_batchline_parse(sky_span line, uint64_t line_no,
                                   const sky_batchline_options *opts,
                                   sky_batchline_request *out_req,
                                   sky_batchline_error *out_err) SKY_NODISCARD;

/**
 * The --text mode: a plain prompt line (any UTF-8 text, not JSON) becomes a
 * chat request with custom_id "line-<N>" to /v1/chat/completions, its body
 * built from @p opts (model, system, temperature, max_tokens). One trailing
 * "\n" and then one trailing "\r" are dropped. Returns as sky_batchline_parse;
 * invalid UTF-8 is SKY_EINVAL with custom_id "line-<N>" known.
 */
SKY_EXTERN int sky_batchline_text_parse(sky_span line, uint64_t line_no,
                                        const sky_batchline_options *opts,
                                        sky_batchline_request *out_req,
                                        sky_batchline_error *out_err) SKY_NODISCARD;

/**
 * Fill @p out_err for a custom_id already seen (the caller owns the id set).
 * @p first_line is where it was first seen, 0 when unknown. A custom_id longer
 * than SKY_BATCHLINE_CUSTOM_ID_MAX is left out of the record.
 */
SKY_EXTERN void sky_batchline_error_duplicate(sky_batchline_error *out_err, uint64_t line_no,
                                              uint64_t first_line, sky_span custom_id);

/**
 * Fill @p out_err for a line longer than the limit of @p opts (may be NULL: the default),
 * which the caller did not gather whole: the error sky_batchline_parse gives such a line.
 */
SKY_EXTERN void sky_batchline_error_too_long(sky_batchline_error *out_err, uint64_t line_no,
                                             const sky_batchline_options *opts);

/**
 * The token estimate of a request body: characters (Unicode code points) of
 * messages[].content (strings, or {"type":"text","text"} parts), input
 * (string, strings, token arrays at 4 characters a token, or message items),
 * prompt and instructions; and max_tokens, else max_completion_tokens, else
 * max_output_tokens (0 when none). Either out pointer may be NULL.
 */
SKY_EXTERN void sky_batchline_body_estimate(const json_t *body, uint64_t *out_prompt_chars,
                                            uint64_t *out_max_tokens);

/** The last HTTP response of a request, borrowed for the duration of the call. */
typedef struct sky_batchline_response {
    int status_code;
    const char *request_id; /**< NULL writes "request_id":null */
    sky_span body;          /**< stored parsed when it is JSON, else as a string */
} sky_batchline_response;

/*
 * Output records. Each builder APPENDS one compact JSON line (no newline) to
 * @p out; on failure @p out is left as it was. For a new malloc'd string,
 * build into an empty sky_buf and sky_buf_detach it. @p id_hex is the part
 * after "batch_req_" in the record's id: 1..64 characters of [0-9a-zA-Z].
 * Text that is not valid UTF-8 (a reply body, an error message) is written
 * with U+FFFD in place of the bad bytes. Returns 0, SKY_EINVAL (bad argument,
 * or a custom_id that is not valid UTF-8), SKY_ETOOBIG (past out's cap) or
 * SKY_ENOMEM.
 */

/** {"id","custom_id","response":{"status_code","request_id","body"},"error":null}. */
SKY_EXTERN int sky_batchline_record_success(sky_buf *out, const char *id_hex, sky_span custom_id,
                                            const sky_batchline_response *resp) SKY_NODISCARD;

/**
 * The same record as sky_batchline_record_success, with @p json_body copied as it
 * came (line ends folded to spaces) instead of parsed and printed again: the
 * provider's numbers keep their digits, and a large reply costs one copy.
 * @p json_body must be one valid JSON text, as the caller checked by parsing it.
 */
SKY_EXTERN int sky_batchline_record_success_raw(sky_buf *out, const char *id_hex,
                                                sky_span custom_id, int status,
                                                const char *request_id,
                                                sky_span json_body) SKY_NODISCARD;

/**
 * {"id","custom_id","response":<last response or null>,"error":{"code","message"}}.
 * @p last_resp may be NULL. @p code and @p message must hold no secret.
 */
SKY_EXTERN int sky_batchline_record_failure(sky_buf *out, const char *id_hex, sky_span custom_id,
                                            const sky_batchline_response *last_resp,
                                            const char *code, const char *message) SKY_NODISCARD;

/**
 * The record of a refused input line: {"id","custom_id":<string or null>,
 * "response":null,"error":{"code","message","line"[,"param"]}}.
 */
SKY_EXTERN int sky_batchline_record_input_error(sky_buf *out, const char *id_hex,
                                                const sky_batchline_error *line_err) SKY_NODISCARD;

/**
 * Read back an output line (for resume). On success *out_custom_id is a new
 * malloc'd string (free it), or NULL when the record's custom_id is null
 * (an input error that had none), and *out_ok is 1 when "error" is null or
 * absent and response.status_code is 2xx, else 0. Returns 0, SKY_EJSON
 * (not JSON: e.g. a line cut short by a crash) or SKY_EINVAL (not an output
 * record), leaving *out_custom_id NULL.
 */
SKY_EXTERN int sky_batchline_output_parse(sky_span line, char **out_custom_id,
                                          int *out_ok) SKY_NODISCARD;

#endif
