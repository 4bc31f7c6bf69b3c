/*
 * Storage's reply rules, for the pipeline's classifier hook: a failure's code and message
 * from its error XML and the x-ms-error-code header, and the pipeline profile a Blob
 * client starts from.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Room for a Storage message: one sentence; the RequestId and Time lines are dropped. */
#define MESSAGE_MAX 200

/* A failed reply's Storage code and message; the header's code over the body's. */
static void storage_error(const sky_headers *h, sky_span body, char *code, size_t code_len,
                          char *msg, size_t msg_len)
{
    sky__blob_parse_error(body, code, code_len, msg, msg_len);
    const char *hcode = h ? sky_headers_get(h, "x-ms-error-code") : NULL;
    if (hcode && hcode[0])
        snprintf(code, code_len, "%s", hcode);
}

static const char *said(const char *msg, const char *code)
{
    return msg[0] ? msg : code[0] ? code : "no error message";
}

/*
 * Storage's busy replies (503 ServerBusy, 500 OperationTimedOut) are worth a wait, and the
 * status lists retry them; no Storage code makes a retryable status final, so this only
 * names the failure.
 */
static int describe_error(void *ud, const sky_reply *r, sky_error *e)
{
    char code[SKY_ERROR_SERVICE_CODE_MAX], msg[MESSAGE_MAX];
    (void)ud;
    storage_error(r->headers, r->body, code, sizeof(code), msg, sizeof(msg));
    sky_error_set(e, SKY_EHTTP, "HTTP %d: %s", r->status, said(msg, code));
    if (code[0])
        sky_error_set_service(e, code);
    return 0;
}

static const sky_reply_classifier storage_rules = {NULL, describe_error, NULL};

const sky_reply_classifier *sky_blob_classifier(void)
{
    return &storage_rules;
}

void sky_blob_pipeline_options_init(sky_pipeline_options *o)
{
    sky_pipeline_options_init(o);
    o->classifier = sky_blob_classifier();
    /* a transfer keeps its own number of blocks in flight (its concurrency) */
    o->use_concurrency = 0;
    /* Storage announces no limit: nothing is paced until one shows, or rpm is given */
    o->rate.unpaced_start = 1;
}

void sky__blob_describe_error(const char *method, const char *url, int status, const sky_headers *h,
                              sky_span body, sky_error *e)
{
    char code[SKY_ERROR_SERVICE_CODE_MAX], msg[MESSAGE_MAX];
    storage_error(h, body, code, sizeof(code), msg, sizeof(msg));
    /* The path names what failed; the query (and never a SAS: @p url has none) is left out. */
    const char *path = strstr(url, "://");
    path = path ? path + 3 + strcspn(path + 3, "/") : url;
    sky_error_set(e, SKY_EHTTP, "%s %.*s: %s", method, (int)strcspn(path, "?"), path,
                  said(msg, code));
    e->http_status = status;
    e->retryable = sky_retry_is_retryable(status, NULL);
    if (code[0])
        sky_error_set_service(e, code);
}
