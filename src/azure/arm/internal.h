/* Internals of the ARM client: the long-running-operation decisions and the resume token. */
#ifndef SKY_ARM_INTERNAL_H
#define SKY_ARM_INTERNAL_H

#include "skyio/arm.h"

/* Where an operation stands: enough to keep waiting, and to write a resume token. */
typedef struct sky__arm_lro_state {
    char method[8];
    sky_arm_poll_style style;
    char *resource_url; /* the original request's URL (api-version included) */
    char *poll_url;     /* what to GET next; NULL for SKY_ARM_POLL_NONE */
    char *final_url;    /* DELETE/POST with Azure-AsyncOperation: the Location, if any */
} sky__arm_lro_state;

typedef enum sky__arm_step {
    SKY__ARM_DONE,        /* over: this reply is the result (err says if it failed) */
    SKY__ARM_POLL,        /* wait delay_ms, then GET state->poll_url */
    SKY__ARM_FETCH_FINAL, /* GET url; that reply is the result */
} sky__arm_step;

typedef struct sky__arm_decision {
    sky__arm_step step;
    uint64_t delay_ms;
    const char *url; /* FETCH_FINAL: borrowed from the state */
    char status[32]; /* what the service says: "InProgress", "Succeeded", a state ... */
} sky__arm_decision;

/* The longest wait a Retry-After may ask for between polls. */
#define SKY__ARM_MAX_POLL_WAIT_MS 600000u
/* The shortest (Retry-After: 0 included) unless the caller's own interval is shorter:
 * at most about 10 polls a second. */
#define SKY__ARM_MIN_POLL_WAIT_MS 100u

void sky__arm_lro_state_free(sky__arm_lro_state *s);

/*
 * The first reply of @p method on @p resource_url (copied): choose how to
 * follow it. Returns 0 with @p d filled (@p err set when DONE with a failure),
 * or SKY_ENOMEM. @p interval_ms is the wait when no Retry-After is sent.
 */
int sky__arm_lro_first(sky__arm_lro_state *s, const char *method, const char *resource_url,
                       int status, const sky_headers *h, sky_span body, uint64_t interval_ms,
                       const sky_clock *clock, sky__arm_decision *d, sky_error *err);
/* A poll's reply: poll again, fetch the final state, or finish. Same returns. */
int sky__arm_lro_next(sky__arm_lro_state *s, int status, const sky_headers *h, sky_span body,
                      uint64_t interval_ms, const sky_clock *clock, sky__arm_decision *d,
                      sky_error *err);

/* The token: base64url of {"v":1,"m","r","p","s","f"}. New string, NULL when out of memory. */
char *sky__arm_token_encode(const sky__arm_lro_state *s);
/* Parse a token into @p s (fresh). 0, or SKY_EINVAL with @p err saying why, or SKY_ENOMEM. */
int sky__arm_token_decode(const char *token, sky__arm_lro_state *s, sky_error *err);

/* Terminal provisioning states and operation statuses (case-insensitive). */
int sky__arm_status_terminal(const char *status);

/* Nonzero when @p url is @p endpoint itself or a path or query under it (scheme, host
 * and port the same): the only URLs the ARM token may go to. */
int sky__arm_same_origin(const char *endpoint, const char *url);

/* The token scope for an ARM endpoint: "<endpoint>/.default" (new string, NULL on OOM). */
char *sky__arm_default_scope(const char *endpoint);

#endif
