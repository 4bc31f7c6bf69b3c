/* skyio — leveled logging to stderr, with secrets redacted before anything is written. */
#ifndef SKYIO_LOG_H
#define SKYIO_LOG_H

#include "common.h"
#include "buf.h"

typedef enum sky_log_level {
    SKY_LOG_TRACE = 0,
    SKY_LOG_DEBUG,
    SKY_LOG_INFO,
    SKY_LOG_WARN,
    SKY_LOG_ERROR,
    SKY_LOG_OFF
} sky_log_level;

/**
 * Where finished lines go. The line is already redacted and formatted (text
 * or JSON), without the trailing newline; it is borrowed for the call only.
 */
typedef void (*sky_log_sink_cb)(void *user_data, sky_log_level level, const char *line, size_t len);

/** Lines below @p level are dropped. Default SKY_LOG_WARN, or $SKYIO_LOG when set. */
SKY_EXTERN void sky_log_set_level(sky_log_level level);
SKY_EXTERN sky_log_level sky_log_get_level(void);
/** "trace", "debug", "info", "warn", "error", "off" (case-insensitive). 0 or SKY_EINVAL. */
SKY_EXTERN int sky_log_parse_level(const char *name, sky_log_level *out_level);
/** Nonzero: one JSON object per line ({"ts","level","component","msg"}). Default text. */
SKY_EXTERN void sky_log_set_json(int on);
/** Send lines to @p cb instead of stderr; NULL restores stderr. */
SKY_EXTERN void sky_log_set_sink(sky_log_sink_cb cb, void *user_data);
/** Nonzero when a line at @p level would be written (cheap; use before costly formatting). */
SKY_EXTERN int sky_log_enabled(sky_log_level level);

/**
 * Format, redact and write one line. @p component names the module ("http",
 * "mock"). Secrets in the message are replaced by "[REDACTED]" whatever the
 * caller passed: see sky_redact().
 */
SKY_EXTERN void sky_log(sky_log_level level, const char *component, const char *fmt, ...)
    SKY_PRINTF(3, 4);

#define SKY_LOGF(level, comp, ...)                                                                 \
    do {                                                                                           \
        if (sky_log_enabled(level))                                                                \
            sky_log(level, comp, __VA_ARGS__);                                                     \
    } while (0)
#define SKY_TRACE(comp, ...) SKY_LOGF(SKY_LOG_TRACE, comp, __VA_ARGS__)
#define SKY_DEBUG(comp, ...) SKY_LOGF(SKY_LOG_DEBUG, comp, __VA_ARGS__)
#define SKY_INFO(comp, ...) SKY_LOGF(SKY_LOG_INFO, comp, __VA_ARGS__)
#define SKY_WARN(comp, ...) SKY_LOGF(SKY_LOG_WARN, comp, __VA_ARGS__)
#define SKY_ERROR(comp, ...) SKY_LOGF(SKY_LOG_ERROR, comp, __VA_ARGS__)

/**
 * Copy @p in to @p out with every secret replaced by "[REDACTED]":
 * values of the headers Authorization, Proxy-Authorization, api-key,
 * Ocp-Apim-Subscription-Key, X-IDENTITY-HEADER and any x-ms-*-key;
 * bearer tokens ("Bearer xyz"); the SAS signature (`sig=...`);
 * `client_secret`, `client_assertion`, `access_token`, `refresh_token`,
 * `AccountKey`, `SharedAccessSignature` and `password` in query strings,
 * form bodies, connection strings and JSON ("key": "value").
 * Returns 0, or SKY_ENOMEM / SKY_ETOOBIG from the buffer.
 */
SKY_EXTERN int sky_redact(sky_span in, sky_buf *out) SKY_NODISCARD;

/** Nonzero when a header of this name carries a secret (case-insensitive). */
SKY_EXTERN int sky_redact_is_secret_header(sky_span name);

#endif
