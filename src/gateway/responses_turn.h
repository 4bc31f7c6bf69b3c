/*
 * The Responses API's parts kept by the gateway (not installed):
 *   responses_chat.c         a Responses request translated to chat completions, and the
 *                            chat answer translated back (deployments with "api": "chat")
 *   responses_chat_stream.c  the same for a stream: chat chunks in, Responses events out
 *   responses_items.c        input items as kept and as sent upstream again
 *   responses_turn.c         previous_response_id and conversation: the earlier turns read
 *                            from the store before the call, the turn kept after it
 *   conversations.c          the Conversations API
 */
#ifndef SKY_GATEWAY_RESPONSES_TURN_H
#define SKY_GATEWAY_RESPONSES_TURN_H

#include <jansson.h>

#include "skyio/buf.h"
#include "skyio/sse.h"
#include "internal.h"

/* ---- responses_chat.c ---- */

/*
 * The chat completions request that asks what the Responses request @p req asks, for the
 * upstream model @p model (NULL: none in the body). NULL with @p why (a sentence naming
 * the parameter) when @p req asks what chat completions cannot say, or out of memory
 * (why says so). The caller owns the result.
 */
json_t *sky__gw_rc_request(json_t *req, const char *model, char *why, size_t why_len);

/*
 * A Responses object around @p output (stolen), as OpenAI answers one: @p id, the
 * request's settings echoed from @p req, @p status ("completed", "incomplete"), the
 * incomplete reason when there is one, @p usage ({input_tokens, output_tokens,
 * total_tokens}; stolen; NULL: null). NULL on out of memory.
 */
json_t *sky__gw_rc_response(const json_t *req, const char *id, const char *model, json_t *output,
                            const char *status, const char *incomplete, json_t *usage);

/* The Responses object of chat answer @p chat to request @p req, under @p id; NULL when
 * @p chat is not a chat completion with a choice. */
json_t *sky__gw_rc_reply(const json_t *chat, const json_t *req, const char *id);

/* A new id: @p prefix ("resp", "msg", "conv", "fc") "_" and 32 hex digits. */
void sky__gw_new_id(const char *prefix, char out[48]);

/* The usage of a chat answer or last chunk as the Responses API says it; NULL: none. */
json_t *sky__gw_rc_usage(const json_t *chat_usage);

/* ---- responses_chat_stream.c ---- */

typedef struct gw_rc_stream gw_rc_stream;

/* A translator for the stream answering @p req (held until it is freed) under @p id.
 * NULL on out of memory. */
gw_rc_stream *sky__gw_rc_stream_new(json_t *req, const char *id);
void sky__gw_rc_stream_free(gw_rc_stream *s);
/* response.created and response.in_progress, into the translator's output. */
int sky__gw_rc_stream_begin(gw_rc_stream *s);
/* The upstream's next bytes of chat chunks: 0, or an error (the stream is garbled). */
int sky__gw_rc_stream_feed(gw_rc_stream *s, const char *data, size_t len);
/* The upstream ended: the items' done events and response.completed. 0 or an error. */
int sky__gw_rc_stream_finish(gw_rc_stream *s);
/* The events made so far and not yet taken; taking them empties the output. */
sky_buf *sky__gw_rc_stream_out(gw_rc_stream *s);
/* The tokens the chunks said they used (-1 each when none said). */
void sky__gw_rc_stream_tokens(const gw_rc_stream *s, gw_tokens *out);
/* The whole response once finished (borrowed from the translator), else NULL. */
json_t *sky__gw_rc_stream_final(const gw_rc_stream *s);

/* ---- responses_items.c ---- */

/* The request's "input" as a list of items (a string is one user message; a message's
 * string content becomes one text part); each kept item gets an id and a status when
 * @p with_ids. NULL when the input is neither a string nor an array of objects. */
json_t *sky__gw_items_of_input(const json_t *input, int with_ids);
/* @p items (earlier turns, as kept) as input items to send again: message items without
 * their ids and statuses (an assistant's as one string), calls and their outputs, no
 * reasoning items. A new array. */
json_t *sky__gw_items_for_upstream(const json_t *items);
/* A message's content as one string: a string as it is, the parts' "text" joined. */
json_t *sky__gw_items_text(const json_t *content);
/* The output items of a Responses object as they are kept (a new array). */
json_t *sky__gw_items_of_output(const json_t *response);

/* ---- responses_turn.c ---- */

typedef struct gw_turn gw_turn;

/*
 * A Responses request that names previous_response_id or a conversation, with a store: the
 * earlier turns are read first. 1 when it took the request (it answers an error, or calls
 * sky__gw_proxy_go when the request is rebuilt), 0 to go on now.
 */
int sky__gw_turn_begin(gw_request *q);
/*
 * A Responses answer @p response (status 200; borrowed) about to go to the client as
 * @p body (copied): kept under its id (unless "store": false) and appended to its
 * conversation, then @p send runs with the body (the client gets the answer once the store
 * has it, so the next turn finds it). Returns 1 when it took the answer (send will run,
 * unless the client leaves first), 0 when there is nothing to keep (send now).
 */
int sky__gw_turn_answered(gw_request *q, json_t *response, sky_span body,
                          void (*send)(gw_request *q, sky_span body));
/* A passed-through stream's next bytes (a Responses upstream): its final response is kept
 * at the end. */
void sky__gw_turn_watch(gw_request *q, const char *data, size_t len);
/* That response once the stream ended (borrowed, patched as sky__gw_turn_patch), or NULL. */
json_t *sky__gw_turn_streamed(gw_request *q);
/* The request ends: forget it (a store call under way answers into nothing). */
void sky__gw_turn_forget(gw_request *q);
/* The answer patched with what the client asked (previous_response_id, conversation),
 * which the upstream did not see. */
void sky__gw_turn_patch(const gw_request *q, json_t *response);

/* The client's request as the turn read it (borrowed), or NULL when there is no turn. */
json_t *sky__gw_turn_request(const gw_request *q);

/* ---- responses.c: what proxy.c asks of a Responses call ---- */
/* The chat request for the upstream model @p model (NULL: none in the body): a new string,
 * or NULL with q->refusal set (the client's mistake) or empty (out of memory). */
char *sky__gw_responses_to_chat(gw_request *q, const char *model, size_t *out_len);
/* A 200 answer of a Responses call: translated from chat (q->xlate) or patched with what
 * the gateway took from the request; *out_resp (the answer, to keep) and *out_text (the
 * body to give, when it changed) are the caller's. 0, or -1 when a chat answer cannot be
 * read. Both stay NULL when there is nothing to keep or change. */
int sky__gw_responses_answer(gw_request *q, sky_span body, json_t **out_resp, char **out_text);
/* A translator for the stream that begins (its first events made), or NULL. */
gw_rc_stream *sky__gw_responses_stream_begin(gw_request *q);

/* ---- proxy.c ---- */
/* On to the cache and the deployments, after sky__gw_turn_begin took the request. */
void sky__gw_proxy_go(gw_request *q);

/* ---- conversations.c ---- */
void sky__gw_on_conversations(sky_server_req *r, void *gateway);
void sky__gw_on_conversation(sky_server_req *r, void *gateway);
/* Append @p items (stolen) to conversation @p id of @p scope: then @p cb (may be NULL). */
void sky__gw_conv_append(sky_gateway *g, const char *scope, const char *id, json_t *items,
                         void (*cb)(int ok, void *ud), void *ud);
/* The gateway (one loop of it) closes, its requests gone: its conversations' changes no
 * longer wait for the other loops, and give back what they hold (on the loop's thread). */
void sky__gw_conv_close(sky_gateway *g);

#endif
