/* skyio — errors as values: one list of codes, and the cause kept beside it. */
#ifndef SKYIO_ERROR_H
#define SKYIO_ERROR_H

#include "common.h"

/*
 * The one list of error codes: name, text. Codes are negative, 0 is success
 * (libuv's convention), so `if (rc < 0)` reads naturally.
 */
#define SKY_ERRNO_MAP(XX)                                                                          \
    XX(EINVAL, "invalid argument")                                                                 \
    XX(ENOMEM, "out of memory")                                                                    \
    XX(ECANCELED, "operation canceled")                                                            \
    XX(ETIMEDOUT, "operation timed out")                                                           \
    XX(ECONNECT, "could not connect")                                                              \
    XX(ECONNRESET, "connection reset")                                                             \
    XX(ETLS, "TLS handshake or certificate verification failed")                                   \
    XX(ERESOLVE, "could not resolve host")                                                         \
    XX(EPARTIAL, "response body cut short")                                                        \
    XX(ETOOBIG, "size limit exceeded")                                                             \
    XX(EPROTO, "protocol error")                                                                   \
    XX(EHTTP, "HTTP error status")                                                                 \
    XX(EJSON, "malformed JSON")                                                                    \
    XX(EIO, "input/output error")                                                                  \
    XX(EBUSY, "resource busy")                                                                     \
    XX(ESTATE, "call not allowed in this state")                                                   \
    XX(ENOTFOUND, "not found")                                                                     \
    XX(EAUTH, "authentication failed")                                                             \
    XX(ETRANSPORT, "transport error")                                                              \
    XX(EINTERNAL, "internal error")

typedef enum sky_errno {
    SKY_OK = 0,
#define SKY__ERR_ENUM(name, text) SKY_##name,
    SKY__ERR_FIRST = -1000,
    SKY_ERRNO_MAP(SKY__ERR_ENUM)
#undef SKY__ERR_ENUM
        SKY__ERR_END
} sky_errno;

/** Text for a code ("operation canceled"); never NULL. */
SKY_EXTERN const char *sky_strerror(int code);
/** Name of a code ("ECANCELED"); never NULL. */
SKY_EXTERN const char *sky_err_name(int code);

#define SKY_ERROR_SERVICE_CODE_MAX 64
#define SKY_ERROR_MESSAGE_MAX 256

/**
 * An error with its cause. Plain value, no heap: copy it freely.
 * The first cause recorded wins (sky_error_set does nothing when code != 0),
 * so a later cleanup failure never hides why the operation failed.
 */
typedef struct sky_error {
    int code;                                      /**< SKY_E..., 0 when none */
    int http_status;                               /**< last HTTP status, 0 if none */
    int curl_code;                                 /**< CURLcode of the transport, 0 if none */
    int retryable;                                 /**< nonzero when a retry could help */
    char service_code[SKY_ERROR_SERVICE_CODE_MAX]; /**< the service's own code */
    char message[SKY_ERROR_MESSAGE_MAX];           /**< human text; never a secret */
} sky_error;

/** Reset to "no error". */
SKY_EXTERN void sky_error_clear(sky_error *err);

/**
 * Record @p code and a printf-style message, unless an error is already
 * recorded. Returns @p code so callers can `return sky_error_set(...)`.
 */
SKY_EXTERN int sky_error_set(sky_error *err, int code, const char *fmt, ...) SKY_PRINTF(3, 4);

/** Record the service's own error code (e.g. "rate_limit_exceeded"), first wins. */
SKY_EXTERN void sky_error_set_service(sky_error *err, const char *service_code);

/**
 * Format the error as one line into @p out (always NUL-terminated):
 * "ETIMEDOUT: operation timed out (HTTP 504, curl 28): <message>".
 */
SKY_EXTERN const char *sky_error_format(const sky_error *err, char *out, size_t out_len);

#endif
