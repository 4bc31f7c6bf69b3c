/*
 * libFuzzer target for what ARM hands us: the resume token (from a user, any
 * process), ARM error bodies, and the operation decisions over a reply body.
 *
 * The input is also read as a whole operation, one reply after another, each
 * with the headers that steer it (Azure-AsyncOperation, Location, Retry-After)
 * and a body (the status or the provisioning state):
 *
 *   PUT 201                       first reply: method and status
 *   Azure-AsyncOperation: https://...
 *   Retry-After: 5
 *                                 a blank line, then the body
 *   {"properties":{"provisioningState":"Creating"}}
 *   --                            next reply (a poll): "202", headers, blank, body
 *
 * Invariants: a decision is one of the three steps; a poll has a URL to poll
 * and waits no longer than the cap (or the caller's interval); a fetch goes to
 * the resource or the final URL; a failure says why; a state whose URLs are
 * http(s) writes a resume token that reads back to the same state.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "azure/arm/internal.h"

/* A token either decodes to a usable state that encodes back, or is refused cleanly. */
static void fz_token(const char *s)
{
    sky__arm_lro_state st;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky__arm_token_decode(s, &st, &err);
    if (rc == 0) {
        if (st.poll_url == NULL || st.resource_url == NULL || st.style == SKY_ARM_POLL_NONE)
            abort();
        char *again = sky__arm_token_encode(&st);
        sky__arm_lro_state st2;
        if (again && sky__arm_token_decode(again, &st2, &err) != 0)
            abort();
        if (again)
            sky__arm_lro_state_free(&st2);
        free(again);
        sky__arm_lro_state_free(&st);
    } else if (rc != SKY_EINVAL && rc != SKY_ENOMEM) {
        abort();
    }
}

static void fz_bodies(const char *s, size_t n)
{
    sky_error err;
    sky__arm_lro_state st;
    sky__arm_decision d;
    sky_span body = sky_span_make(s, n);
    sky_error_clear(&err);
    if (sky_arm_error_from_reply(400, body, &err) != SKY_EHTTP || err.http_status != 400 ||
        strlen(err.message) >= sizeof(err.message))
        abort();
    sky_error_clear(&err);
    if (sky__arm_lro_first(&st, "PUT", "https://a/r", 201, NULL, body, 10, NULL, &d, &err) == 0 &&
        d.step == SKY__ARM_POLL) {
        sky_error_clear(&err);
        (void)sky__arm_lro_next(&st, 200, NULL, body, 10, NULL, &d, &err);
    }
    sky__arm_lro_state_free(&st);
}

#define FZ_RESOURCE                                                                                \
    "https://management.azure.com/subscriptions/s/resourceGroups/g/providers/"                     \
    "Microsoft.Storage/storageAccounts/a?api-version=2023-01-01"
#define FZ_INTERVAL_MS 30000u
#define FZ_MAX_REPLIES 8

/* One reply of the input: status, headers and body (borrowed from the input). */
typedef struct fz_reply {
    char method[8];
    int status;
    sky_headers *h;
    sky_span body;
} fz_reply;

/* The resume token's own rule for URLs, restated: http(s), no white space. */
static int fz_url_ok(const char *u)
{
    return u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0) &&
           strpbrk(u, " \r\n\t") == NULL;
}

/* The next line of [*p, end), without its newline; NULL at the end. */
static const char *fz_line(const char **p, const char *end, size_t *out_len)
{
    if (*p >= end)
        return NULL;
    const char *start = *p;
    const char *nl = memchr(start, '\n', (size_t)(end - start));
    const char *stop = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    *out_len = (size_t)(stop - start);
    if (*out_len > 0 && start[*out_len - 1] == '\r')
        (*out_len)--;
    return start;
}

/* "PUT 201", "DELETE 202", or only "200": the method (first reply) and the status. */
static void fz_status_line(const char *l, size_t n, fz_reply *r)
{
    static const char *const methods[] = {"PUT", "PATCH", "DELETE", "POST"};
    char text[32];
    snprintf(text, sizeof(text), "%.*s", (int)(n < 31 ? n : 31), l);
    snprintf(r->method, sizeof(r->method), "PUT");
    const char *num = text;
    for (size_t i = 0; i < SKY_ARRAY_LEN(methods); i++) {
        size_t ml = strlen(methods[i]);
        if (strncmp(text, methods[i], ml) == 0 && text[ml] == ' ') {
            snprintf(r->method, sizeof(r->method), "%s", methods[i]);
            num = text + ml + 1;
        }
    }
    r->status = atoi(num);
}

/* Read one reply up to "--" or the end. 0, or -1 when out of memory. */
static int fz_reply_read(const char **p, const char *end, fz_reply *r)
{
    size_t n;
    const char *l = fz_line(p, end, &n);
    r->h = sky_headers_new();
    if (r->h == NULL)
        return -1;
    if (l)
        fz_status_line(l, n, r);
    while ((l = fz_line(p, end, &n)) != NULL && n > 0) {
        int rc = sky_headers_parse_line(r->h, l, n);
        FZ_CHECK(rc == 0 || rc == SKY_EPROTO || rc == SKY_ENOMEM);
    }
    const char *body = *p;
    const char *sep = NULL;
    for (const char *q = body; q + 4 <= end && sep == NULL; q++)
        if (memcmp(q, "\n--\n", 4) == 0)
            sep = q;
    r->body = sky_span_make(body, (size_t)((sep ? sep : end) - body));
    *p = sep ? sep + 4 : end;
    return 0;
}

/* What any decision must satisfy, given the state it left. */
static void fz_check_decision(const sky__arm_lro_state *st, const sky__arm_decision *d,
                              const sky_error *err)
{
    FZ_CHECK(d->step == SKY__ARM_DONE || d->step == SKY__ARM_POLL ||
             d->step == SKY__ARM_FETCH_FINAL);
    FZ_CHECK(memchr(d->status, '\0', sizeof(d->status)) != NULL);
    if (d->step == SKY__ARM_POLL) {
        FZ_CHECK(err->code == 0);
        FZ_CHECK(st->poll_url != NULL && st->poll_url[0] != '\0');
        FZ_CHECK(st->style != SKY_ARM_POLL_NONE);
        FZ_CHECK(d->delay_ms <= (SKY__ARM_MAX_POLL_WAIT_MS > FZ_INTERVAL_MS
                                     ? SKY__ARM_MAX_POLL_WAIT_MS
                                     : FZ_INTERVAL_MS));
    } else if (d->step == SKY__ARM_FETCH_FINAL) {
        FZ_CHECK(err->code == 0);
        FZ_CHECK(d->url != NULL && (d->url == st->resource_url || d->url == st->final_url));
    } else if (err->code != 0) {
        FZ_CHECK(err->message[0] != '\0');
        FZ_CHECK(strlen(err->message) < sizeof(err->message));
    }
}

/* A state to keep polling writes a token that reads back the same, when its URLs can. */
static void fz_check_token(const sky__arm_lro_state *st)
{
    if (!fz_url_ok(st->resource_url) || !fz_url_ok(st->poll_url) ||
        (st->final_url && !fz_url_ok(st->final_url)))
        return;
    char *token = sky__arm_token_encode(st);
    if (token == NULL)
        return;
    sky__arm_lro_state back;
    sky_error err;
    sky_error_clear(&err);
    FZ_CHECK(sky__arm_token_decode(token, &back, &err) == 0);
    FZ_CHECK(strcmp(back.method, st->method) == 0 && back.style == st->style);
    FZ_CHECK(strcmp(back.resource_url, st->resource_url) == 0);
    FZ_CHECK(strcmp(back.poll_url, st->poll_url) == 0);
    FZ_CHECK((back.final_url == NULL) == (st->final_url == NULL));
    FZ_CHECK(back.final_url == NULL || strcmp(back.final_url, st->final_url) == 0);
    sky__arm_lro_state_free(&back);
    free(token);
}

/* The whole operation: the first reply, then polls while the decision says poll. */
static void fz_operation(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    sky_fake_clock fc;
    sky_fake_clock_init(&fc, 0, INT64_C(1700000000000));
    sky__arm_lro_state st;
    sky__arm_decision d;
    sky_error err;
    fz_reply r;
    memset(&r, 0, sizeof(r));
    sky_error_clear(&err);
    if (fz_reply_read(&p, end, &r) < 0)
        return;
    int rc = sky__arm_lro_first(&st, r.method, FZ_RESOURCE, r.status, r.h, r.body, FZ_INTERVAL_MS,
                                &fc.clock, &d, &err);
    sky_headers_free(r.h);
    FZ_CHECK(rc == 0 || rc == SKY_ENOMEM);
    if (rc == 0)
        FZ_CHECK(st.resource_url && strcmp(st.resource_url, FZ_RESOURCE) == 0);
    for (int i = 0; rc == 0 && i < FZ_MAX_REPLIES; i++) {
        fz_check_decision(&st, &d, &err);
        if (d.step != SKY__ARM_POLL || p >= end)
            break;
        fz_check_token(&st);
        fz_reply next;
        memset(&next, 0, sizeof(next));
        if (fz_reply_read(&p, end, &next) < 0)
            break;
        sky_fake_clock_advance(&fc, d.delay_ms);
        sky_error_clear(&err);
        rc = sky__arm_lro_next(&st, next.status, next.h, next.body, FZ_INTERVAL_MS, &fc.clock, &d,
                               &err);
        sky_headers_free(next.h);
        FZ_CHECK(rc == 0 || rc == SKY_ENOMEM);
    }
    sky__arm_lro_state_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    fz_token(s);
    fz_bodies(s, size);
    fz_operation(s, size);
    free(s);
    return 0;
}
