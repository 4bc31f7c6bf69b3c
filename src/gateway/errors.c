/* Errors as OpenAI writes them, so every SDK reads the gateway's as it reads OpenAI's. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "skyio/json.h"
#include "internal.h"

static json_t *error_json(const char *type, const char *param, const char *code, const char *msg)
{
    return json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", msg, "type", type, "param",
                     param, "code", code);
}

void sky__gw_error(sky_server_req *r, int status, const char *type, const char *param,
                   const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *body = error_json(type, param, code, msg);
    if (body == NULL) {
        sky_server_respond(r, 500, "application/json", SKY_SPAN_LIT("{\"error\":{}}"));
        return;
    }
    sky_server_respond_json(r, status, body);
    json_decref(body);
}

int sky__gw_error_event(sky_server_req *r, const char *type, const char *code, const char *msg)
{
    json_t *body = error_json(type, NULL, code, msg);
    size_t len = 0;
    char *text = body ? sky_json_dump(body, &len) : NULL;
    json_decref(body);
    if (text == NULL)
        return SKY_ENOMEM;
    int rc = sky_server_sse_send(r, sky_span_make(text, len));
    free(text);
    return rc;
}
