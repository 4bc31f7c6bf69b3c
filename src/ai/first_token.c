/*
 * The client's first token, asked for before any request: without a token nothing can be
 * sent, and every request would fail alike after its retries. So a front end asks first
 * and says a sign-in problem once (as the batch engine does, src/jobs/batch_credential.c).
 * Also the rule that tells an endpoint that cannot be reached from one that is down.
 */
#include <stdlib.h>

#include "internal.h"

struct ai_first_token {
    sky_ai_client *c; /* NULL once the client let go: the token's callback then only frees */
    sky_token_request *req;
    sky_ai_token_cb cb;
    void *user_data;
};

static void on_token(sky_token_request *req, const sky_access_token *tok, const sky_error *err,
                     void *ud)
{
    ai_first_token *t = ud;
    sky_ai_client *c = t->c;
    sky_ai_token_cb cb = t->cb;
    void *cb_ud = t->user_data;
    sky_error none;
    (void)req;
    free(t);
    if (c == NULL)
        return;
    c->first_token = NULL;
    sky_error_clear(&none);
    if (tok == NULL && err == NULL) {
        sky_error_set(&none, SKY_EAUTH, "the credential gave no token");
        err = &none;
    }
    sky__ai_enter(c);
    cb(c, tok ? NULL : err, cb_ud);
    sky__ai_leave(c);
}

int sky_ai_client_first_token(sky_ai_client *c, sky_ai_token_cb cb, void *user_data, sky_error *err)
{
    if (c == NULL || cb == NULL || c->cred == NULL)
        return sky_error_set(err, SKY_EINVAL, "the client has no credential to ask");
    if (c->first_token)
        return sky_error_set(err, SKY_ESTATE, "a first token is asked for already");
    ai_first_token *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    t->c = c;
    t->cb = cb;
    t->user_data = user_data;
    int rc = sky_credential_get_token(c->cred, c->scope, on_token, t, &t->req, err);
    if (rc < 0) {
        free(t);
        return rc;
    }
    c->first_token = t;
    return 0;
}

void sky__ai_first_token_drop(sky_ai_client *c)
{
    ai_first_token *t = c->first_token;
    sky_error canceled;
    if (t == NULL)
        return;
    c->first_token = NULL;
    t->c = NULL;
    sky_error_clear(&canceled);
    sky_error_set(&canceled, SKY_ECANCELED, "the AI client was freed");
    sky_ai_token_cb cb = t->cb;
    void *cb_ud = t->user_data;
    sky_token_request_cancel(t->req); /* its callback comes from the loop and frees t */
    cb(c, &canceled, cb_ud);
}

int sky_ai_client_unreachable(const sky_ai_client *c, const sky_error *err)
{
    sky_pipeline_health h;
    if (c == NULL || err == NULL ||
        !(err->code == SKY_ECONNECT || err->code == SKY_ERESOLVE || err->code == SKY_ETLS))
        return 0;
    sky_pipeline_get_health(c->pipe, &h);
    return h.answered == 0;
}
