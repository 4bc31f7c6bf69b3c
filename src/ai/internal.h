/* The AI client's parts: the client and its requests (client.c), chat (chat.c), embeddings
 * (embeddings.c) and responses (responses.c). Internal to src/ai. */
#ifndef SKY_AI_INTERNAL_H
#define SKY_AI_INTERNAL_H

#include "skyio/ai.h"
#include "skyio/sse.h"

typedef enum ai_kind { AI_CHAT, AI_EMBED, AI_RESPOND } ai_kind;

/* One call of a request: a fan-out has one per model, other requests one. */
typedef struct ai_leg {
    sky_ai_request *req;
    size_t index;
    char *model;
    sky_call *call; /* NULL once it has reported */
    /* a streamed chat's answer, as it arrives */
    sky_sse_parser parser;
    sky_buf text;
    int saw_done;
    int64_t prompt_tokens, completion_tokens;
    char finish_reason[32];
    char stream_error[400]; /* an error the provider sent inside the stream */
    char stream_code[64];
} ai_leg;

struct sky_ai_request {
    sky_ai_client *client;
    ai_kind kind;
    int stream;
    sky_ai_chat_delta_cb on_delta;
    sky_ai_chat_done_cb on_chat;
    sky_ai_embed_done_cb on_embed;
    sky_ai_respond_done_cb on_respond;
    void *user_data;
    size_t n_legs;
    size_t n_open; /* legs started and not yet reported */
    int silent;    /* the start failed: legs already started report to nobody */
    ai_leg legs[];
};

/* A pending sky_ai_client_first_token (first_token.c). */
typedef struct ai_first_token ai_first_token;

struct sky_ai_client {
    sky_pipeline *pipe;
    sky_ai_endpoint ep;
    sky_credential *cred;        /* pipeline.credential (borrowed); NULL: none */
    char *scope;                 /* its scope's copy */
    ai_first_token *first_token; /* pending; NULL: none */
    sky_headers *json_headers;
    int in_callback;
    int free_requested;
    int closing;
};

/* A request of @p n_legs legs, each named by @p models[i] (copied). NULL: out of memory. */
sky_ai_request *sky__ai_request_new(sky_ai_client *c, ai_kind kind, const char *const *models,
                                    size_t n_legs);
/* Free a request none of whose legs was started. */
void sky__ai_request_free(sky_ai_request *r);
/*
 * Start every leg: POST @p body, with "model" set to the leg's, to @p path. On failure no
 * callback runs: legs already started are canceled silently, and the request is freed
 * when they have reported.
 */
int sky__ai_request_start(sky_ai_request *r, const char *path, json_t *body, int64_t est_tokens,
                          sky_error *err);
/* Run a user's callback: freeing the client from inside it waits until it returns. */
void sky__ai_enter(sky_ai_client *c);
void sky__ai_leave(sky_ai_client *c);

/* The pending first token's callback, with SKY_ECANCELED: the client is being freed. */
void sky__ai_first_token_drop(sky_ai_client *c);

/* Per kind: a leg's call is over; report it to the user (inside sky__ai_enter/leave). */
void sky__ai_chat_done(ai_leg *leg, const sky_call_result *res, const sky_error *err);
void sky__ai_embed_done(ai_leg *leg, const sky_call_result *res, const sky_error *err);
void sky__ai_respond_done(ai_leg *leg, const sky_call_result *res, const sky_error *err);
/* A streamed chat's body, fed to its SSE parser. */
int sky__ai_chat_on_body(sky_call *call, const char *data, size_t len, void *ud);

/* The fields of @p params (an object) added to @p body, whose own fields win. */
int sky__ai_merge_params(json_t *body, const json_t *params);
/* A text that stays valid for the callback: @p s, or "" for NULL. */
const char *sky__ai_str(const char *s);

#endif
