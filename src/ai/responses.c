/* The Responses API: one input, its output text and id (not streamed). */
#include <string.h>

#include "skyio/json.h"
#include "skyio/ratelimit.h"
#include "internal.h"

void sky_ai_respond_options_init(sky_ai_respond_options *o)
{
    memset(o, 0, sizeof(*o));
}

static json_t *respond_body(const sky_ai_respond_options *o)
{
    json_t *body = json_pack("{s:s}", "input", o->input);
    if (body && o->instructions)
        json_object_set_new(body, "instructions", json_string(o->instructions));
    if (body && o->previous_response_id)
        json_object_set_new(body, "previous_response_id", json_string(o->previous_response_id));
    if (body && sky__ai_merge_params(body, o->params) < 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

int sky_ai_respond_start(sky_ai_client *c, const sky_ai_respond_options *o, sky_ai_request **out,
                         sky_error *err)
{
    if (c == NULL || o == NULL || o->model == NULL || o->input == NULL || o->on_done == NULL ||
        (o->params && !json_is_object(o->params)))
        return sky_error_set(err, SKY_EINVAL, "a response needs a model, an input and on_done");
    sky_ai_request *r = sky__ai_request_new(c, AI_RESPOND, &o->model, 1);
    json_t *body = r ? respond_body(o) : NULL;
    if (body == NULL) {
        if (r)
            sky__ai_request_free(r);
        return sky_error_set(err, SKY_ENOMEM, "out of memory starting a response");
    }
    r->on_respond = o->on_done;
    r->user_data = o->user_data;
    int64_t max = sky_json_int(body, "max_output_tokens", 0);
    int rc = sky__ai_request_start(r, "/v1/responses", body,
                                   sky_ratelimit_estimate_tokens(strlen(o->input), max), err);
    json_decref(body);
    if (rc == 0 && out)
        *out = r;
    return rc;
}

/* The text of output[].content[] parts of type output_text, joined (as the SDKs'
 * output_text). */
static int join_output_text(const json_t *reply, sky_buf *out)
{
    size_t i, j;
    json_t *item, *part;
    json_array_foreach(json_object_get(reply, "output"), i, item)
    {
        json_array_foreach(json_object_get(item, "content"), j, part)
        {
            if (strcmp(sky_json_str(part, "type", ""), "output_text") == 0 &&
                sky_buf_append_str(out, sky_json_str(part, "text", "")) < 0)
                return SKY_ENOMEM;
        }
    }
    return 0;
}

void sky__ai_respond_done(ai_leg *leg, const sky_call_result *res, const sky_error *err)
{
    sky_ai_request *r = leg->req;
    sky_ai_respond_result out;
    sky_error own;
    memset(&out, 0, sizeof(out));
    sky_error_clear(&own);
    out.call = res;
    out.output_text = "";
    out.input_tokens = out.output_tokens = -1;
    if (err == NULL) {
        json_t *usage = json_object_get(res->json, "usage");
        out.reply = res->json;
        out.id = json_string_value(json_object_get(res->json, "id"));
        out.status = json_string_value(json_object_get(res->json, "status"));
        out.input_tokens = sky_json_int(usage, "input_tokens", -1);
        out.output_tokens = sky_json_int(usage, "output_tokens", -1);
        if (join_output_text(res->json, &leg->text) < 0) {
            sky_error_set(&own, SKY_ENOMEM, "out of memory reading the output");
            err = &own;
        }
        out.output_text = leg->text.data ? leg->text.data : "";
    }
    r->on_respond(r, &out, err, r->user_data);
}
