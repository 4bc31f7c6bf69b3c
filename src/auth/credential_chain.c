/*
 * DefaultAzureCredential's chain, in its Linux order: environment (client
 * secret), workload identity, managed identity, Azure CLI. The first source
 * that gives a token wins and is the only one asked from then on; when all
 * fail, one error says why each did.
 */
#include <stdio.h>
#include <stdlib.h>

#include "credential_internal.h"

#define N_LINKS 4

static const char *const link_names[N_LINKS] = {"environment", "workload_identity",
                                                "managed_identity", "azure_cli"};

typedef int (*link_ctor)(uv_loop_t *, sky_http_client *, const sky_credential_options *,
                         sky_credential **, sky_error *);
static const link_ctor link_ctors[N_LINKS] = {
    sky_credential_client_secret_new, sky_credential_workload_identity_new,
    sky_credential_managed_identity_new, sky_credential_azure_cli_new};

typedef struct chain {
    sky_credential *child[N_LINKS];
    char why[N_LINKS][SKY_ERROR_MESSAGE_MAX]; /* why a link could not be built */
    int winner;                               /* -1 until a link gave a token */
} chain;

typedef struct chain_fetch {
    int idx;
    sky_token_request *req;
    int tried[N_LINKS];
    char reason[N_LINKS][SKY_ERROR_MESSAGE_MAX];
} chain_fetch;

static void try_next(sky__cred_fetch *f);

/* How many characters each tried link's reason may keep so that all fit in
 * @p room: the largest cap whose total fits, so short reasons leave their
 * spare room to the long ones. */
static size_t reason_cap(const chain_fetch *cf, size_t room)
{
    for (size_t cap = SKY_ERROR_MESSAGE_MAX; cap > 0; cap--) {
        size_t total = 0;
        for (int i = 0; i < N_LINKS; i++) {
            size_t len = strlen(cf->reason[i]);
            if (cf->tried[i])
                total += len < cap ? len : cap;
        }
        if (total <= room)
            return cap;
    }
    return 0;
}

/* One message naming every link tried and why it failed, cut to fit. */
static void chain_error(const chain_fetch *cf, sky_error *err)
{
    static const char prefix[] = "no credential worked: ";
    char msg[SKY_ERROR_MESSAGE_MAX];
    size_t len = (size_t)snprintf(msg, sizeof(msg), "%s", prefix), room = sizeof(msg) - 1 - len;
    int first = 1;
    for (int i = 0; i < N_LINKS; i++)
        if (cf->tried[i] && room > strlen(link_names[i]) + 4)
            room -= strlen(link_names[i]) + 4;
    size_t cap = reason_cap(cf, room);
    for (int i = 0; i < N_LINKS && len < sizeof(msg) - 1; i++) {
        if (!cf->tried[i])
            continue;
        len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s%s: %.*s", first ? "" : "; ",
                                link_names[i], (int)cap, cf->reason[i]);
        first = 0;
    }
    if (first)
        snprintf(msg, sizeof(msg), "%severy credential is excluded", prefix);
    sky_error_clear(err);
    sky_error_set(err, SKY_EAUTH, "%s", msg);
}

static void chain_end(sky__cred_fetch *f, const sky_access_token *tok, const sky_error *err)
{
    free(f->impl);
    f->impl = NULL;
    if (tok)
        sky__cred_fetch_done(f, tok->token, tok->expires_on, 0, tok->source, NULL);
    else
        sky__cred_fetch_done(f, NULL, 0, 0, NULL, err);
}

static void on_link_token(sky_token_request *req, const sky_access_token *tok, const sky_error *err,
                          void *user_data)
{
    sky__cred_fetch *f = user_data;
    chain_fetch *cf = f->impl;
    chain *ch = f->c->impl;
    sky_error e;
    (void)req;
    cf->req = NULL;
    if (tok) {
        ch->winner = cf->idx;
        chain_end(f, tok, NULL);
        return;
    }
    if (f->aborted || ch->winner >= 0) {
        sky_error_clear(&e);
        if (f->aborted)
            sky_error_set(&e, SKY_ECANCELED, "credential freed");
        else
            sky_error_set(&e, err->code, "%s: %s", link_names[cf->idx], err->message);
        e.http_status = err->http_status;
        chain_end(f, NULL, &e);
        return;
    }
    cf->tried[cf->idx] = 1;
    snprintf(cf->reason[cf->idx], sizeof(cf->reason[0]), "%s", err->message);
    cf->idx++;
    try_next(f);
}

static void try_next(sky__cred_fetch *f)
{
    chain_fetch *cf = f->impl;
    chain *ch = f->c->impl;
    sky_error err;
    for (; cf->idx < N_LINKS; cf->idx++) {
        sky_credential *link = ch->child[cf->idx];
        if (ch->winner >= 0 && ch->winner != cf->idx)
            continue;
        if (f->c->cfg.exclude[cf->idx])
            continue;
        cf->tried[cf->idx] = 1;
        if (link == NULL) {
            snprintf(cf->reason[cf->idx], sizeof(cf->reason[0]), "%s", ch->why[cf->idx]);
            continue;
        }
        sky_error_clear(&err);
        int rc =
            f->forced
                ? sky_credential_refresh_token(link, f->scope, on_link_token, f, &cf->req, &err)
                : sky_credential_get_token(link, f->scope, on_link_token, f, &cf->req, &err);
        if (rc == 0)
            return;
        snprintf(cf->reason[cf->idx], sizeof(cf->reason[0]), "%s", err.message);
    }
    chain_error(cf, &err);
    chain_end(f, NULL, &err);
}

static void chain_start(sky__cred_fetch *f)
{
    chain_fetch *cf = calloc(1, sizeof(*cf));
    sky_error err;
    if (cf == NULL) {
        sky_error_clear(&err);
        sky_error_set(&err, SKY_ENOMEM, "out of memory");
        sky__cred_fetch_done(f, NULL, 0, 0, NULL, &err);
        return;
    }
    f->impl = cf;
    try_next(f);
}

static void chain_abort(sky__cred_fetch *f)
{
    chain_fetch *cf = f->impl;
    if (cf && cf->req)
        sky_token_request_cancel(cf->req);
}

static void chain_destroy(sky_credential *c)
{
    chain *ch = c->impl;
    if (ch == NULL)
        return;
    free(ch);
    c->impl = NULL;
}

static int build_links(chain *ch, uv_loop_t *loop, sky_http_client *client,
                       const sky_credential_options *o)
{
    const int excluded[N_LINKS] = {o->exclude_environment, o->exclude_workload_identity,
                                   o->exclude_managed_identity, o->exclude_azure_cli};
    for (int i = 0; i < N_LINKS; i++) {
        sky_error err;
        sky_error_clear(&err);
        if (excluded[i])
            continue;
        int rc = link_ctors[i](loop, client, o, &ch->child[i], &err);
        if (rc == SKY_ENOMEM)
            return rc;
        if (rc < 0)
            snprintf(ch->why[i], sizeof(ch->why[0]), "%s", err.message);
    }
    /* In a chain, IMDS is probed quickly first: off Azure nobody answers at
     * 169.254.169.254, and the next link should not wait long for that. */
    if (ch->child[2]) {
        sky__cred_config *k = &ch->child[2]->cfg;
        k->imds_probe_timeout_ms = k->request_timeout_ms < 1000 ? k->request_timeout_ms : 1000;
    }
    return 0;
}

/* The chain frees its links when it goes: their pending requests (the
 * chain's own fetch) are canceled synchronously, which ends that fetch. */
static void free_links(chain *ch)
{
    for (int i = 0; i < N_LINKS; i++) {
        sky_credential_free(ch->child[i]);
        ch->child[i] = NULL;
    }
}

static void chain_shutdown(sky_credential *c)
{
    if (c->impl)
        free_links(c->impl);
}

static const sky__cred_ops chain_ops = {"default", chain_start, chain_abort, chain_destroy,
                                        chain_shutdown};

int sky_credential_default_new(uv_loop_t *loop, sky_http_client *client,
                               const sky_credential_options *o, sky_credential **out,
                               sky_error *err)
{
    sky_credential_options dflt;
    sky_credential *c = NULL;
    if (o == NULL) {
        sky_credential_options_init(&dflt);
        o = &dflt;
    }
    int rc = sky__cred_new(loop, client, o, &chain_ops, &c, err);
    if (rc < 0)
        return rc;
    chain *ch = calloc(1, sizeof(*ch));
    c->impl = ch;
    if (ch == NULL || build_links(ch, loop, client, o) < 0) {
        if (ch)
            free_links(ch);
        sky__cred_discard(c);
        *out = NULL;
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    ch->winner = -1;
    return sky__cred_finish_new(c, NULL, out, err);
}

/* The link named @p kind, or -1. */
static int link_index(const char *kind)
{
    for (int i = 0; kind && i < N_LINKS; i++)
        if (strcmp(kind, link_names[i]) == 0)
            return i;
    return -1;
}

int sky_credential_new_named(uv_loop_t *loop, sky_http_client *client, const char *kind,
                             const sky_credential_options *o, sky_credential **out, sky_error *err)
{
    int i = link_index(kind);
    if (kind == NULL || strcmp(kind, "default") == 0)
        return sky_credential_default_new(loop, client, o, out, err);
    if (i < 0) {
        if (out)
            *out = NULL;
        return sky_error_set(err, SKY_EINVAL, "unknown credential '%s'", kind);
    }
    return link_ctors[i](loop, client, o, out, err);
}

int sky_credential_options_exclude(sky_credential_options *o, const char *kind)
{
    int *flags[N_LINKS] = {&o->exclude_environment, &o->exclude_workload_identity,
                           &o->exclude_managed_identity, &o->exclude_azure_cli};
    int i = link_index(kind);
    if (i < 0)
        return SKY_EINVAL;
    *flags[i] = 1;
    return 0;
}
