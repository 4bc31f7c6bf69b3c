/* The Queue client: options, its endpoint, its pipeline and auth per attempt, queue names. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "internal.h"
#include "skyio/blob.h"

#define DEFAULT_SCOPE "https://storage.azure.com/.default"

void sky_queue_client_options_init(sky_queue_client_options *o)
{
    memset(o, 0, sizeof(*o));
    sky_retry_options_init(&o->retry);
    o->attempt_timeout_ms = 300000;
    sky_blob_pipeline_options_init(&o->pipeline);
    o->pipeline.use_concurrency = 0;
}

void sky_queue_put_options_init(sky_queue_put_options *o)
{
    memset(o, 0, sizeof(*o));
}

void sky_queue_client_options_from_account(sky_queue_client_options *o,
                                           const sky_storage_account *a, const char *endpoint)
{
    o->endpoint = endpoint;
    o->account_name = a->account_name;
    o->account_key = a->account_key;
    o->sas = a->sas;
}

/* ---- the endpoint ---- */

/* The value of key QueueEndpoint in a connection string ("K=V;K=V"), or NULL. */
static char *connstr_queue_endpoint(const char *cs)
{
    static const char key[] = "QueueEndpoint=";
    for (const char *p = cs; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
        while (*p == ' ')
            p++;
        if (strncasecmp(p, key, sizeof(key) - 1) == 0) {
            const char *v = p + sizeof(key) - 1;
            return strndup(v, strcspn(v, ";"));
        }
    }
    return NULL;
}

/* The Blob endpoint's Queue twin: ".blob." -> ".queue.", or Azurite's port 10000 -> 10001. */
static char *from_blob_endpoint(const char *b)
{
    const char *dot = strstr(b, ".blob.");
    const char *port = strstr(b, ":10000/");
    if (port == NULL && strlen(b) > 6 && strcmp(b + strlen(b) - 6, ":10000") == 0)
        port = b + strlen(b) - 6;
    size_t at = dot ? (size_t)(dot - b) : port ? (size_t)(port - b) : 0;
    if (dot == NULL && port == NULL)
        return NULL;
    const char *with = dot ? ".queue." : ":10001";
    size_t skip = dot ? 6 : 6, n = strlen(b) + 8;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s%s%s", (int)at, b, with, b + at + skip);
    return out;
}

int sky_queue_endpoint_of(const sky_storage_account *a, const char *connstr, char **out,
                          sky_error *err)
{
    *out = connstr ? connstr_queue_endpoint(connstr) : NULL;
    if (*out == NULL && a && a->blob_endpoint)
        *out = from_blob_endpoint(a->blob_endpoint);
    if (*out && (*out)[0])
        return 0;
    free(*out);
    *out = NULL;
    return sky_error_set(err, SKY_EINVAL,
                         "queue: no Queue endpoint: give one (--endpoint, or QueueEndpoint in "
                         "the connection string)");
}

/* ---- names ---- */

int sky_queue_name_check(const char *name, sky_error *err)
{
    static const char rule[] = "3 to 63 characters, lower-case letters, digits and single "
                               "hyphens, starting and ending with a letter or a digit";
    size_t n = name ? strlen(name) : 0;
    if (n < 3 || n > 63)
        return sky_error_set(err, SKY_EINVAL, "queue name '%.70s' is %zu characters: it must be %s",
                             name ? name : "", n, rule);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        int ok =
            islower(ch) || isdigit(ch) || (ch == '-' && i > 0 && i + 1 < n && name[i - 1] != '-');
        if (!ok)
            return sky_error_set(err, SKY_EINVAL,
                                 "queue name '%.63s': character %zu ('%c') breaks the rule: %s",
                                 name, i + 1, isprint(ch) ? ch : '?', rule);
    }
    return 0;
}

/* ---- the client ---- */

static char *dup_or_null(const char *s, int *bad)
{
    char *p = s ? strdup(s) : NULL;
    *bad |= s != NULL && p == NULL;
    return p;
}

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void client_release(sky_queue_client *c)
{
    free(c->endpoint);
    free(c->account_name);
    wipe_free(c->account_key);
    wipe_free(c->sas);
    free(c->scope);
    free(c);
}

static int check_options(const sky_queue_client_options *o, sky_error *err)
{
    if (o == NULL || o->endpoint == NULL ||
        (strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0))
        return sky_error_set(err, SKY_EINVAL, "queue: an http(s) endpoint is required");
    if (o->account_key && (o->account_name == NULL || o->account_name[0] == '\0'))
        return sky_error_set(err, SKY_EINVAL, "queue: an account key needs the account name");
    if (o->account_name && sky_storage_account_name_check(o->account_name, err) != 0)
        return SKY_EINVAL;
    return 0;
}

/* Last before each attempt: a fresh x-ms-date, then with a key the Shared Key signature. */
static int sign_attempt(void *ud, const char *method, const char *url, sky_headers *h,
                        sky_error *err)
{
    sky_queue_client *c = ud;
    char date[64];
    sky_storage_date_now(date, sizeof(date));
    int rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-date"), sky_span_cstr(date));
    if (rc != 0)
        return sky_error_set(err, rc, "queue: cannot build the request headers");
    if (c->account_key == NULL)
        return 0;
    return sky_storage_authorize(c->account_name, c->account_key, method, url, h, err);
}

/* The caller's policies with the client's retries, clock and auth: a key signs each
 * attempt; without one, a credential gives a bearer token (a SAS needs neither). */
static int client_pipeline(sky_queue_client *c)
{
    sky_pipeline_options po = c->o.pipeline;
    po.retry = c->o.retry;
    po.attempt_timeout_ms = c->o.attempt_timeout_ms;
    po.clock = c->o.clock;
    po.fail_unreached = !c->o.retry_unreached;
    po.auth = NULL;
    po.auth_refreshes = 0;
    po.credential = c->account_key == NULL ? c->o.credential : NULL;
    po.scope = po.credential ? c->scope : NULL;
    po.sign = sign_attempt;
    po.sign_user_data = c;
    return sky_pipeline_new(c->loop, c->http, &po, &c->pipe);
}

static int client_copy(sky_queue_client *c, const sky_queue_client_options *o)
{
    int bad = 0;
    size_t elen = strlen(o->endpoint);
    while (elen > 0 && o->endpoint[elen - 1] == '/')
        elen--;
    c->o = *o;
    c->endpoint = strndup(o->endpoint, elen);
    bad |= c->endpoint == NULL;
    c->account_name = dup_or_null(o->account_name, &bad);
    c->account_key = dup_or_null(o->account_key, &bad);
    c->sas = dup_or_null(o->sas && o->sas[0] == '?' ? o->sas + 1 : o->sas, &bad);
    c->scope = dup_or_null(o->scope ? o->scope : DEFAULT_SCOPE, &bad);
    return bad ? SKY_ENOMEM : 0;
}

int sky_queue_client_new(uv_loop_t *loop, sky_http_client *http, const sky_queue_client_options *o,
                         sky_queue_client **out, sky_error *err)
{
    *out = NULL;
    if (loop == NULL || http == NULL)
        return sky_error_set(err, SKY_EINVAL, "queue: a loop and an HTTP client are required");
    int rc = check_options(o, err);
    if (rc != 0)
        return rc;
    sky_queue_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    c->loop = loop;
    c->http = http;
    rc = client_copy(c, o);
    if (rc == 0)
        rc = client_pipeline(c);
    if (rc != 0) {
        client_release(c);
        return sky_error_set(err, rc, "queue: cannot make the client (%s)", sky_err_name(rc));
    }
    *out = c;
    return 0;
}

sky_pipeline *sky_queue_client_pipeline(sky_queue_client *c)
{
    return c ? c->pipe : NULL;
}

/*
 * Each op still running reports SKY_ECANCELED now and is left to its call, which the
 * pipeline's free ends (at once, or once the pipeline's callback in progress returns);
 * the op is freed then, without its client.
 */
void sky_queue_client_free(sky_queue_client *c)
{
    if (c == NULL)
        return;
    sky_error e;
    while (c->ops) {
        sky_queue_op *op = c->ops;
        c->ops = op->next;
        op->c = NULL;
        sky_error_clear(&e);
        sky_error_set(&e, SKY_ECANCELED, "queue: the client was freed");
        sky_queue_reply rep = {0};
        rep.approximate_count = -1;
        op->cb(op, &rep, &e, op->user_data);
        op->cb = NULL;
    }
    sky_pipeline_free(c->pipe);
    client_release(c);
}
