/*
 * POST /v1/responses (OpenAI's SDKs) and POST /openai/responses (the AzureOpenAI class,
 * the deployment in the body's "model"): plain, or "stream": true with its typed events
 * passed through chunk by chunk. To a deployment that speaks chat completions only
 * ("api": "chat") the request goes translated (responses_chat.c) and its answer comes
 * back as a Responses object, or as the Responses events of a stream.
 */
#include <stdlib.h>

#include "skyio/json.h"
#include "responses_turn.h"

void sky__gw_on_responses(sky_server_req *r, void *gateway)
{
    sky__gw_model_call(gateway, r, GW_OP_RESPONSES, sky_span_make("", 0));
}

/* The client's request: the turn's when there is one, else the body read now (new ref). */
static json_t *client_request(const gw_request *q)
{
    json_t *req = sky__gw_turn_request(q);
    return req ? json_incref(req) : json_loadb(q->body.ptr, q->body.len, 0, NULL);
}

char *sky__gw_responses_to_chat(gw_request *q, const char *model, size_t *out_len)
{
    json_t *req = json_loadb(q->body.ptr, q->body.len, 0, NULL);
    json_t *chat = req ? sky__gw_rc_request(req, model, q->refusal, sizeof(q->refusal)) : NULL;
    if (req == NULL)
        snprintf(q->refusal, sizeof(q->refusal), "%s",
                 "We could not parse the JSON body of your request.");
    char *text = chat ? sky_json_dump(chat, out_len) : NULL;
    json_decref(chat);
    json_decref(req);
    return text;
}

int sky__gw_responses_answer(gw_request *q, sky_span body, json_t **out_resp, char **out_text)
{
    *out_resp = NULL;
    *out_text = NULL;
    if (!q->xlate && q->turn == NULL)
        return 0; /* nothing to keep or change: the answer goes as it came */
    json_t *got = json_loadb(body.ptr, body.len, 0, NULL);
    if (got == NULL)
        return q->xlate ? -1 : 0;
    json_t *resp = got;
    if (q->xlate) {
        char id[48];
        json_t *req = client_request(q);
        sky__gw_new_id("resp", id);
        resp = req ? sky__gw_rc_reply(got, req, id) : NULL;
        json_decref(req);
        json_decref(got);
        if (resp == NULL)
            return -1;
    }
    sky__gw_turn_patch(q, resp);
    size_t len = 0;
    *out_text = sky_json_dump(resp, &len);
    *out_resp = resp;
    return 0;
}

gw_rc_stream *sky__gw_responses_stream_begin(gw_request *q)
{
    char id[48];
    json_t *req = client_request(q);
    sky__gw_new_id("resp", id);
    gw_rc_stream *s = req ? sky__gw_rc_stream_new(req, id) : NULL;
    json_decref(req);
    if (s && sky__gw_rc_stream_begin(s) < 0) {
        sky__gw_rc_stream_free(s);
        return NULL;
    }
    return s;
}
