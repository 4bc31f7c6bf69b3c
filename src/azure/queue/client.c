/* The Queue client: options, its endpoint, its pipeline and auth per attempt, queue names. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "skyio/blob.h"

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

static void client_release(sky_queue_client *c)
{
    sky__storage_conn_release(&c->s);
    free(c);
}

static sky__storage_auth auth_of(const sky_queue_client_options *o)
{
    sky__storage_auth a = {o->endpoint, o->account_name, o->account_key, o->sas, o->scope};
    return a;
}

static int check_options(const sky_queue_client_options *o, sky_error *err)
{
    if (o == NULL)
        return sky_error_set(err, SKY_EINVAL, "queue: an http(s) endpoint is required");
    sky__storage_auth a = auth_of(o);
    return sky__storage_auth_check("queue", &a, err) != 0 ? SKY_EINVAL : 0;
}

/* The caller's policies with the client's retries, clock and auth: a key signs each
 * attempt; without one, a credential gives a bearer token (a SAS needs neither). */
static int client_pipeline(sky_queue_client *c)
{
    sky__storage_pipe_options spo = {c->o.pipeline, c->o.retry,           c->o.attempt_timeout_ms,
                                     c->o.clock,    c->o.retry_unreached, c->o.credential};
    sky_pipeline_options po;
    sky__storage_pipeline_options(&po, &spo, &c->s);
    return sky_pipeline_new(c->loop, c->http, &po, &c->pipe);
}

static int client_copy(sky_queue_client *c, const sky_queue_client_options *o)
{
    c->o = *o;
    sky__storage_auth a = auth_of(o);
    return sky__storage_conn_copy(&c->s, "queue", &a);
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
