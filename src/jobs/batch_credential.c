/*
 * The batch's first token. With a credential on its pipeline, the engine asks it for a token
 * before it reads a line: without one nothing can be sent, and every line would fail the
 * same way, paid for by nobody and recorded as failed. So the run stops at once instead,
 * with SKY_BATCH_FAULT_CREDENTIAL and nothing recorded. The token fetched is the one the
 * credential caches for the pipeline's first calls.
 */
#include <stdlib.h>

#include "skyio/ai.h"
#include "batch_internal.h"

struct sky__batch_token {
    sky_batch *b; /* NULL once the batch let go: the callback then only frees */
    sky_token_request *req;
};

static void on_first_token(sky_token_request *req, const sky_access_token *tok,
                           const sky_error *err, void *ud)
{
    sky__batch_token *t = ud;
    sky_batch *b = t->b;
    (void)req;
    (void)tok;
    free(t);
    if (b == NULL)
        return;
    b->first_token = NULL;
    if (err && !b->closing && !b->stopping) {
        b->fatal = 1;
        b->stopping = 1; /* the lines are left unread for the next run */
        /* the credential's own words: a chain's name every link, and need the room */
        sky__batch_fault(b, SKY_BATCH_FAULT_CREDENTIAL, err, NULL);
    }
    sky__batch_pump(b);
    sky__batch_maybe_finish(b);
}

void sky__batch_first_token(sky_batch *b)
{
    sky_credential *c = b->o.pipeline.credential;
    const char *scope = b->o.pipeline.scope;
    sky_error err;
    if (c == NULL || b->o.endpoint == NULL)
        return; /* with deployments, each asks with its first call */
    sky__batch_token *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return; /* the pipeline asks for the token with the first request, as without a check */
    sky_error_clear(&err);
    t->b = b;
    if (sky_credential_get_token(c, scope ? scope : sky_ai_entra_scope(b->o.endpoint),
                                 on_first_token, t, &t->req, &err) < 0) {
        free(t); /* the same failure reaches every request through the pipeline */
        return;
    }
    b->first_token = t;
}

void sky__batch_first_token_drop(sky_batch *b)
{
    sky__batch_token *t = b->first_token;
    if (t == NULL)
        return;
    b->first_token = NULL;
    t->b = NULL;
    sky_token_request_cancel(t->req); /* its callback comes from the loop and frees t */
}
