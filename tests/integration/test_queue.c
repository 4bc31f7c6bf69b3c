/*
 * Storage Queues against a real Azurite queue service: the library's every operation,
 * names and sizes refused before any request, the CLI (get --process included), and a
 * cross-check with the official SDK (@azure/storage-queue): what skyio puts, it reads,
 * and back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_azurite.h"
#include "harness_cli.h"
#include "skyio/queue.h"
#include "skyio/server.h"
#include "harness_group.h"

/* One Azurite queue service for the whole file: starting node takes seconds. */
static sky_test_azurite g_az;

SKY_TEST_AZURITE_GROUP(g_az, sky_test_azurite_start_queue)

/* ---- the library ---- */

typedef struct fixture {
    uv_loop_t *loop;
    sky_http_client *http;
    sky_queue_client *q;
} fixture;

typedef struct outcome {
    int done;
    int err_code;
    int http_status;
    char service_code[SKY_ERROR_SERVICE_CODE_MAX];
    char message[SKY_ERROR_MESSAGE_MAX];
    size_t count;
    char ids[32][64];
    char receipts[32][128];
    char texts[32][256];
    size_t text_lens[32];
    int64_t dequeue[32];
    int not_base64[32];
    size_t nqueues;
    char queues[16][64];
    int64_t approx;
    char meta_color[32];
} outcome;

static void on_done(sky_queue_op *op, const sky_queue_reply *rep, const sky_error *err, void *ud)
{
    outcome *o = ud;
    (void)op;
    memset(o, 0, sizeof(*o));
    o->done = 1;
    if (err) {
        o->err_code = err->code;
        o->http_status = err->http_status;
        snprintf(o->service_code, sizeof(o->service_code), "%s", err->service_code);
        snprintf(o->message, sizeof(o->message), "%s", err->message);
    }
    for (size_t i = 0; i < rep->count && i < 32; i++, o->count++) {
        const sky_queue_message *m = &rep->messages[i];
        snprintf(o->ids[i], sizeof(o->ids[i]), "%s", m->id ? m->id : "");
        snprintf(o->receipts[i], sizeof(o->receipts[i]), "%s",
                 m->pop_receipt ? m->pop_receipt : "");
        size_t n = m->text.len < 255 ? m->text.len : 255;
        if (n)
            memcpy(o->texts[i], m->text.ptr, n);
        o->text_lens[i] = m->text.len;
        o->dequeue[i] = m->dequeue_count;
        o->not_base64[i] = m->not_base64;
    }
    for (size_t i = 0; i < rep->nqueues && i < 16; i++, o->nqueues++)
        snprintf(o->queues[i], sizeof(o->queues[i]), "%s", rep->queues[i]);
    o->approx = rep->approximate_count;
    const char *c = rep->metadata ? sky_headers_get(rep->metadata, "color") : NULL;
    snprintf(o->meta_color, sizeof(o->meta_color), "%s", c ? c : "");
}

static void client_new(fixture *f, int raw)
{
    sky_queue_client_options o;
    sky_error err;
    sky_error_clear(&err);
    sky_queue_client_options_init(&o);
    o.endpoint = g_az.endpoint;
    o.account_name = "devstoreaccount1";
    o.account_key = SKY_TEST_AZURITE_KEY;
    o.raw = raw;
    o.retry.max_retries = 2;
    assert_int_equal(sky_queue_client_new(f->loop, f->http, &o, &f->q, &err), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(f->loop, NULL, &f->http), 0);
    client_new(f, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sky_queue_client_free(f->q);
    sky_http_client_free(f->http);
    sky_test_loop_free(f->loop);
    free(f);
    return 0;
}

#define START(call) SKY_TEST_START(f->loop, o, call)

static void test_messages_lifecycle(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_span text = SKY_SPAN_LIT("hello, queue <&> \xc3\xa9t\xc3\xa9");
    START(sky_queue_create(f->q, "lifecycle", NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_queue_put(f->q, "lifecycle", text, NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.count, 1);
    assert_true(o.ids[0][0] && o.receipts[0][0]);
    START(sky_queue_peek(f->q, "lifecycle", 32, on_done, &o, NULL, err));
    assert_int_equal(o.count, 1);
    assert_string_equal(o.receipts[0], ""); /* a peek has none */
    assert_memory_equal(o.texts[0], text.ptr, text.len);
    START(sky_queue_get(f->q, "lifecycle", 5, 60, on_done, &o, NULL, err));
    assert_int_equal(o.count, 1);
    assert_int_equal(o.dequeue[0], 1);
    assert_int_equal(o.text_lens[0], text.len);
    char id[64], old_receipt[128];
    snprintf(id, sizeof(id), "%s", o.ids[0]);
    snprintf(old_receipt, sizeof(old_receipt), "%s", o.receipts[0]);
    /* hidden now: another get sees nothing */
    START(sky_queue_get(f->q, "lifecycle", 1, 0, on_done, &o, NULL, err));
    assert_int_equal(o.count, 0);
    sky_span changed = SKY_SPAN_LIT("changed");
    START(
        sky_queue_update(f->q, "lifecycle", id, old_receipt, 0, &changed, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    char new_receipt[128];
    snprintf(new_receipt, sizeof(new_receipt), "%s", o.receipts[0]);
    assert_true(new_receipt[0] && strcmp(new_receipt, old_receipt) != 0);
    /* visible again at once, with the new content */
    START(sky_queue_peek(f->q, "lifecycle", 1, on_done, &o, NULL, err));
    assert_int_equal(o.count, 1);
    assert_string_equal(o.texts[0], "changed");
    /* the old receipt is stale: the service's code, and what to do */
    START(sky_queue_delete_message(f->q, "lifecycle", id, old_receipt, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_true(strcmp(o.service_code, "PopReceiptMismatch") == 0 ||
                strcmp(o.service_code, "MessageNotFound") == 0);
    assert_non_null(strstr(o.message, "new receipt"));
    START(sky_queue_delete_message(f->q, "lifecycle", id, new_receipt, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_queue_peek(f->q, "lifecycle", 1, on_done, &o, NULL, err));
    assert_int_equal(o.count, 0);
    START(sky_queue_delete(f->q, "lifecycle", on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
}

static void test_properties_list_clear(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_headers *meta = sky_headers_new();
    assert_int_equal(sky_headers_add(meta, SKY_SPAN_LIT("color"), SKY_SPAN_LIT("blue")), 0);
    START(sky_queue_create(f->q, "props-a", meta, on_done, &o, NULL, err));
    START(sky_queue_create(f->q, "props-b", NULL, on_done, &o, NULL, err));
    START(sky_queue_create(f->q, "other-c", NULL, on_done, &o, NULL, err));
    for (int i = 0; i < 3; i++)
        START(sky_queue_put(f->q, "props-a", SKY_SPAN_LIT("x"), NULL, on_done, &o, NULL, err));
    START(sky_queue_properties(f->q, "props-a", on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.approx, 3);
    assert_string_equal(o.meta_color, "blue");
    sky_headers_clear(meta);
    assert_int_equal(sky_headers_add(meta, SKY_SPAN_LIT("color"), SKY_SPAN_LIT("red")), 0);
    START(sky_queue_metadata_set(f->q, "props-a", meta, on_done, &o, NULL, err));
    START(sky_queue_properties(f->q, "props-a", on_done, &o, NULL, err));
    assert_string_equal(o.meta_color, "red");
    sky_headers_free(meta);
    START(sky_queue_list(f->q, "props-", NULL, 0, on_done, &o, NULL, err));
    assert_int_equal(o.nqueues, 2);
    assert_string_equal(o.queues[0], "props-a");
    assert_string_equal(o.queues[1], "props-b");
    /* paging: one per page, the marker leads on */
    START(sky_queue_list(f->q, "props-", NULL, 1, on_done, &o, NULL, err));
    assert_int_equal(o.nqueues, 1);
    START(sky_queue_clear(f->q, "props-a", on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_queue_properties(f->q, "props-a", on_done, &o, NULL, err));
    assert_int_equal(o.approx, 0);
    START(sky_queue_properties(f->q, "no-such-queue", on_done, &o, NULL, err));
    assert_int_equal(o.http_status, 404);
    assert_string_equal(o.service_code, "QueueNotFound");
}

static void test_delay_and_ttl(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_queue_put_options po;
    sky_queue_put_options_init(&po);
    START(sky_queue_create(f->q, "delayed", NULL, on_done, &o, NULL, err));
    po.visibility_delay = 60;
    START(sky_queue_put(f->q, "delayed", SKY_SPAN_LIT("later"), &po, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_queue_get(f->q, "delayed", 1, 0, on_done, &o, NULL, err));
    assert_int_equal(o.count, 0); /* not visible for a minute */
    po.visibility_delay = 0;
    po.ttl = -1;
    START(sky_queue_put(f->q, "delayed", SKY_SPAN_LIT("forever"), &po, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_queue_peek(f->q, "delayed", 1, on_done, &o, NULL, err));
    assert_int_equal(o.count, 1);
    assert_string_equal(o.texts[0], "forever");
}

static void test_raw_text(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_queue_client_free(f->q);
    client_new(f, 1);
    sky_span text = SKY_SPAN_LIT("<raw attr=\"1\"> & 'text'\n");
    START(sky_queue_create(f->q, "rawq", NULL, on_done, &o, NULL, err));
    START(sky_queue_put(f->q, "rawq", text, NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_queue_peek(f->q, "rawq", 1, on_done, &o, NULL, err));
    assert_int_equal(o.text_lens[0], text.len);
    assert_memory_equal(o.texts[0], text.ptr, text.len);
    /* a decoding client sees text that is not base64 as it is, marked */
    sky_queue_client_free(f->q);
    client_new(f, 0);
    START(sky_queue_peek(f->q, "rawq", 1, on_done, &o, NULL, err));
    assert_int_equal(o.not_base64[0], 1);
    assert_memory_equal(o.texts[0], text.ptr, text.len);
}

static void test_refused_before_any_request(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_error e;
    const char *bad[] = {"ab",
                         "Upper",
                         "two--hyphens",
                         "-lead",
                         "trail-",
                         "under_score",
                         "a234567890123456789012345678901234567890123456789012345678901234"};
    memset(&o, 0, sizeof(o));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sky_error_clear(&e);
        assert_int_equal(sky_queue_create(f->q, bad[i], NULL, on_done, &o, NULL, &e), SKY_EINVAL);
        assert_non_null(strstr(e.message, "lower-case letters, digits and single hyphens"));
    }
    assert_int_equal(sky_queue_name_check("ok-name-1", &e), 0);
    /* 64 KiB as sent: 49152 bytes of text make 65536 of base64, one more is too many */
    char *big = calloc(1, 49153);
    memset(big, 'a', 49153);
    sky_span s = {big, 49153};
    sky_error_clear(&e);
    assert_int_equal(sky_queue_put(f->q, "fine", s, NULL, on_done, &o, NULL, &e), SKY_ETOOBIG);
    assert_non_null(strstr(e.message, "65540 bytes"));
    s.len = 49152;
    START(sky_queue_create(f->q, "fine", NULL, on_done, &o, NULL, err));
    START(sky_queue_put(f->q, "fine", s, NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    free(big);
    sky_error_clear(&e);
    memset(&o, 0, sizeof(o));
    assert_int_equal(sky_queue_get(f->q, "fine", 33, 0, on_done, &o, NULL, &e), SKY_EINVAL);
    assert_int_equal(o.done, 0); /* no callback for a refusal */
}

/* An account SAS for the Queue service instead of the key. */
static void test_sas(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_storage_sas_options so;
    sky_buf sas;
    sky_error e;
    sky_error_clear(&e);
    sky_storage_sas_options_init(&so);
    so.permissions = "racwdlup";
    so.expiry = (int64_t)time(NULL) + 3600;
    so.services = "q";
    so.resource_types = "sco";
    sky_buf_init(&sas, 4096);
    assert_int_equal(
        sky_storage_sas_account("devstoreaccount1", SKY_TEST_AZURITE_KEY, &so, &sas, &e), 0);
    sky_queue_client_free(f->q);
    sky_queue_client_options qo;
    sky_queue_client_options_init(&qo);
    qo.endpoint = g_az.endpoint;
    qo.sas = sas.data;
    assert_int_equal(sky_queue_client_new(f->loop, f->http, &qo, &f->q, &e), 0);
    sky_buf_free(&sas);
    START(sky_queue_create(f->q, "with-sas", NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_queue_put(f->q, "with-sas", SKY_SPAN_LIT("signed"), NULL, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, 0);
    START(sky_queue_get(f->q, "with-sas", 1, 0, on_done, &o, NULL, err));
    assert_string_equal(o.texts[0], "signed");
    /* without any auth the service refuses */
    sky_queue_client_free(f->q);
    qo.sas = NULL;
    assert_int_equal(sky_queue_client_new(f->loop, f->http, &qo, &f->q, &e), 0);
    START(sky_queue_peek(f->q, "with-sas", 1, on_done, &o, NULL, err));
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_true(o.http_status == 401 || o.http_status == 403);
}

static void test_free_client_cancels(void **state)
{
    fixture *f = *state;
    outcome a, b;
    sky_error err;
    sky_error_clear(&err);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(sky_queue_peek(f->q, "anything", 1, on_done, &a, NULL, &err), 0);
    assert_int_equal(sky_queue_list(f->q, NULL, NULL, 0, on_done, &b, NULL, &err), 0);
    sky_queue_client_free(f->q);
    f->q = NULL;
    assert_int_equal(a.done, 1);
    assert_int_equal(a.err_code, SKY_ECANCELED);
    assert_int_equal(b.err_code, SKY_ECANCELED);
    client_new(f, 0);
}

/* ---- Storage's busy replies and bearer auth, from a scripted server ---- */

typedef struct busy_script {
    int requests;
    int busy_left;
    char auth[256];
} busy_script;

static void busy_handler(sky_server_req *req, void *ud)
{
    busy_script *sc = ud;
    sky_span auth = {0};
    sc->requests++;
    if (sky_server_req_header(req, "Authorization", &auth))
        snprintf(sc->auth, sizeof(sc->auth), "%.*s", (int)auth.len, auth.ptr);
    if (sc->busy_left > 0) {
        sc->busy_left--;
        sky_server_add_header(req, "x-ms-error-code", SKY_SPAN_LIT("ServerBusy"));
        sky_server_respond(req, 503, "application/xml",
                           SKY_SPAN_LIT("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error>"
                                        "<Code>ServerBusy</Code><Message>busy</Message></Error>"));
        return;
    }
    /* "aGk=" is "hi" in base64 */
    sky_server_respond(req, 200, "application/xml",
                       SKY_SPAN_LIT("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                                    "<QueueMessagesList><QueueMessage><MessageId>m1</MessageId>"
                                    "<PopReceipt>r1</PopReceipt><DequeueCount>1</DequeueCount>"
                                    "<MessageText>aGk=</MessageText></QueueMessage>"
                                    "</QueueMessagesList>"));
}

static void on_server_down(sky_server *s, void *ud)
{
    (void)s;
    *(int *)ud = 1;
}

static void test_server_busy_retried_with_bearer(void **state)
{
    fixture *f = *state;
    busy_script sc = {0, 2, ""};
    sky_server *srv = NULL;
    sky_server_options so;
    sky_credential *cred = NULL;
    sky_queue_client *q = NULL;
    sky_queue_client_options qo;
    sky_error e;
    outcome o;
    char endpoint[128];
    sky_error_clear(&e);
    sky_server_options_init(&so);
    assert_int_equal(sky_server_new(f->loop, &so, &srv, &e), 0);
    assert_int_equal(sky_server_route(srv, NULL, "/", 1, busy_handler, &sc), 0);
    assert_int_equal(sky_server_listen(srv, &e), 0);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/acct", sky_server_port(srv));
    assert_int_equal(sky_credential_static_new(f->loop, "entra-token", 0, &cred, &e), 0);
    sky_queue_client_options_init(&qo);
    qo.endpoint = endpoint;
    qo.credential = cred;
    qo.retry.base_ms = 10;
    assert_int_equal(sky_queue_client_new(f->loop, f->http, &qo, &q, &e), 0);
    memset(&o, 0, sizeof(o));
    assert_int_equal(sky_queue_get(q, "busy", 1, 30, on_done, &o, NULL, &e), 0);
    assert_true(sky_test_run_until(f->loop, &o.done, 30000));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(sc.requests, 3); /* two ServerBusy, then the answer */
    assert_string_equal(o.texts[0], "hi");
    assert_string_equal(o.receipts[0], "r1");
    assert_string_equal(sc.auth, "Bearer entra-token");
    sky_queue_client_free(q);
    sky_credential_free(cred);
    int down = 0;
    sky_server_shutdown(srv, 0, on_server_down, &down);
    sky_test_run_until(f->loop, &down, 5000);
    sky_server_free(srv);
}

/* Freeing the client from an operation's callback: the others report ECANCELED at once. */
typedef struct free_in_cb {
    sky_queue_client *q;
    outcome *other;
    int calls;
    int other_done_then;
} free_in_cb;

static void on_done_free(sky_queue_op *op, const sky_queue_reply *rep, const sky_error *err,
                         void *ud)
{
    free_in_cb *x = ud;
    (void)op, (void)rep, (void)err;
    x->calls++;
    sky_queue_client_free(x->q);
    x->other_done_then = x->other->done;
}

/* Answers a listing at once and never answers anything about queue "slow". */
static void slow_handler(sky_server_req *req, void *ud)
{
    sky_span path = sky_server_req_path(req);
    (void)ud;
    if (path.len >= 5 && memcmp(path.ptr + path.len - 5, "/slow", 5) == 0)
        return; /* left hanging until the server goes */
    sky_server_respond(req, 200, "application/xml",
                       SKY_SPAN_LIT("<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                                    "<EnumerationResults><Queues/></EnumerationResults>"));
}

static void test_free_client_in_callback(void **state)
{
    fixture *f = *state;
    sky_server *srv = NULL;
    sky_server_options so;
    sky_queue_client_options qo;
    outcome other;
    free_in_cb x;
    sky_error e;
    char endpoint[128];
    sky_error_clear(&e);
    memset(&other, 0, sizeof(other));
    memset(&x, 0, sizeof(x));
    x.other = &other;
    sky_server_options_init(&so);
    assert_int_equal(sky_server_new(f->loop, &so, &srv, &e), 0);
    assert_int_equal(sky_server_route(srv, NULL, "/", 1, slow_handler, NULL), 0);
    assert_int_equal(sky_server_listen(srv, &e), 0);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/acct", sky_server_port(srv));
    sky_queue_client_options_init(&qo);
    qo.endpoint = endpoint;
    assert_int_equal(sky_queue_client_new(f->loop, f->http, &qo, &x.q, &e), 0);
    assert_int_equal(sky_queue_properties(x.q, "slow", on_done, &other, NULL, &e), 0);
    assert_int_equal(sky_queue_list(x.q, NULL, NULL, 0, on_done_free, &x, NULL, &e), 0);
    assert_true(sky_test_run_until(f->loop, &x.calls, 30000));
    assert_int_equal(x.other_done_then, 1); /* reported from inside the free */
    assert_int_equal(other.err_code, SKY_ECANCELED);
    uv_run(f->loop, UV_RUN_NOWAIT);
    assert_int_equal(x.calls, 1);
    assert_int_equal(other.done, 1);
    int down = 0;
    sky_server_shutdown(srv, 0, on_server_down, &down);
    sky_test_run_until(f->loop, &down, 5000);
    sky_server_free(srv);
}

/* The Queue endpoint from a connection string's QueueEndpoint, or the Blob endpoint's twin. */
static void test_endpoint_of(void **state)
{
    sky_storage_account *a = NULL;
    sky_error e;
    char *ep = NULL;
    (void)state;
    sky_error_clear(&e);
    assert_int_equal(
        sky_storage_account_new("acct", NULL, "https://acct.blob.core.windows.net", NULL, &a, &e),
        0);
    assert_int_equal(sky_queue_endpoint_of(a, NULL, &ep, &e), 0);
    assert_string_equal(ep, "https://acct.queue.core.windows.net");
    free(ep);
    assert_int_equal(
        sky_queue_endpoint_of(a, "AccountName=acct;QueueEndpoint=http://q:1/acct;", &ep, &e), 0);
    assert_string_equal(ep, "http://q:1/acct");
    free(ep);
    sky_storage_account_free(a);
    assert_int_equal(sky_storage_account_new("devstoreaccount1", NULL,
                                             "http://127.0.0.1:10000/devstoreaccount1", NULL, &a,
                                             &e),
                     0);
    assert_int_equal(sky_queue_endpoint_of(a, NULL, &ep, &e), 0);
    assert_string_equal(ep, "http://127.0.0.1:10001/devstoreaccount1");
    free(ep);
    sky_storage_account_free(a);
    assert_int_equal(
        sky_storage_account_new("acct", NULL, "https://cdn.example/acct", NULL, &a, &e), 0);
    assert_int_equal(sky_queue_endpoint_of(a, NULL, &ep, &e), SKY_EINVAL);
    sky_storage_account_free(a);
}

/* ---- the command ---- */

/* The environment of every command: the Azurite account. */
static void child_env(void)
{
    setenv("AZURE_STORAGE_CONNECTION_STRING", g_az.connstr, 1);
}

/* Run @p argv (NULL-terminated; argv[0] the program) with @p input on stdin. */
static void run(const char *const *argv, const char *input, sky_test_cli_out *r)
{
    sky_test_run_cli(argv, input, child_env, 120, r);
}

#define SKYIO(...)                                                                                 \
    do {                                                                                           \
        const char *const argv_[] = {SKY_TEST_BIN, "queue", __VA_ARGS__, NULL};                    \
        run(argv_, NULL, &r);                                                                      \
    } while (0)

static void test_cli(void **state)
{
    sky_test_cli_out r;
    (void)state;
    SKYIO("mk", "cli-q");
    assert_int_equal(r.code, 0);
    SKYIO("put", "cli-q", "first message");
    assert_int_equal(r.code, 0);
    assert_int_equal(strlen(r.out), 37); /* a GUID and its newline */
    const char *const from_stdin[] = {SKY_TEST_BIN, "queue", "put", "cli-q", NULL};
    run(from_stdin, "second\n", &r);
    assert_int_equal(r.code, 0);
    SKYIO("info", "cli-q", "--json");
    assert_non_null(strstr(r.out, "\"approximate_messages\":2"));
    SKYIO("peek", "cli-q", "-n", "5");
    assert_string_equal(r.out, "first message\nsecond\n\n");
    SKYIO("get", "cli-q", "--json", "--visibility", "60");
    json_t *m = json_loads(r.out, 0, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "text")), "first message");
    assert_int_equal(json_integer_value(json_object_get(m, "dequeue_count")), 1);
    SKYIO("delete", "cli-q", json_string_value(json_object_get(m, "id")),
          json_string_value(json_object_get(m, "pop_receipt")));
    assert_int_equal(r.code, 0);
    json_decref(m);
    SKYIO("clear", "cli-q");
    assert_int_equal(r.code, 0);
    SKYIO("ls", "cli-");
    assert_string_equal(r.out, "cli-q\n");
    SKYIO("mk", "Bad_Name");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "single hyphens"));
    SKYIO("get", "no-such-q");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "QueueNotFound"));
    SKYIO("rm", "cli-q");
    assert_int_equal(r.code, 0);
}

/* get --process: each message to the command; deleted only on exit 0; extended meanwhile. */
static void test_cli_process(void **state)
{
    sky_test_cli_out r;
    (void)state;
    SKYIO("mk", "work");
    SKYIO("put", "work", "ok one");
    SKYIO("put", "work", "fail two");
    SKYIO("put", "work", "ok three");
    /* the first command outlives the 2 s visibility timeout: kept hidden by updates */
    SKYIO("get", "work", "--visibility", "2", "--json", "--process",
          "read t; echo \"[$t] $SKYIO_QUEUE_DEQUEUE_COUNT\" >&2; "
          "case \"$t\" in fail*) exit 5;; \"ok one\") sleep 3;; esac");
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "[ok one] 1"));
    assert_non_null(strstr(r.err, "[fail two] 1"));
    assert_non_null(strstr(r.err, "[ok three] 1"));
    assert_null(strstr(r.err, "[ok one] 2")); /* never seen twice */
    assert_non_null(strstr(r.err, "2 messages processed, 1 failed"));
    assert_non_null(strstr(r.out, "\"exit\":5,\"deleted\":false"));
    /* the failed one is still there, hidden, and comes back */
    SKYIO("info", "work", "--json");
    assert_non_null(strstr(r.out, "\"approximate_messages\":1"));
    sleep(3);
    SKYIO("get", "work", "--process", "cat >/dev/null", "--max", "1");
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.err, "1 message processed, 0 failed"));
    SKYIO("peek", "work");
    assert_string_equal(r.out, "");
}

/* While the command runs past the visibility timeout, the message stays hidden: a peek from
 * inside the command sees nothing. */
static void test_cli_process_keeps_hidden(void **state)
{
    sky_test_cli_out r;
    char cmd[1024];
    (void)state;
    SKYIO("mk", "slow");
    SKYIO("put", "slow", "long job");
    snprintf(cmd, sizeof(cmd),
             "cat >/dev/null; sleep 6; test -z \"$('%s' queue peek slow)\" || exit 9",
             SKY_TEST_BIN);
    SKYIO("get", "slow", "--visibility", "4", "--process", cmd);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.err, "1 message processed, 0 failed"));
    SKYIO("info", "slow", "--json");
    assert_non_null(strstr(r.out, "\"approximate_messages\":0"));
}

/* ---- the official SDK ---- */

/* Run tests/compat/queue.mjs with @p mode from a folder beside the installed SDKs. */
static int sdk(const char *mode, const char *queue, const char *text, sky_test_cli_out *r)
{
    char modules[512], rundir[600], script[700], cmd[1600];
    snprintf(modules, sizeof(modules), "%s/.deps/compat-node/node_modules/@azure/storage-queue",
             SKY_TEST_SRCDIR);
    if (access(modules, R_OK) != 0 || system("command -v node >/dev/null 2>&1") != 0)
        return -1;
    snprintf(rundir, sizeof(rundir), "%s/.deps/compat-node/run.queue.%d", SKY_TEST_SRCDIR,
             (int)getpid());
    snprintf(script, sizeof(script), "%s/queue.mjs", rundir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/tests/compat/queue.mjs' '%s'", rundir,
             SKY_TEST_SRCDIR, script);
    assert_int_equal(system(cmd), 0);
    const char *const argv[] = {"node", script, mode, queue, text, NULL};
    run(argv, NULL, r);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rundir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void test_sdk_cross_check(void **state)
{
    sky_test_cli_out r, s;
    (void)state;
    const char *text = "from skyio: \xc3\xa9t\xc3\xa9 <b>&amp;</b>";
    SKYIO("mk", "cross");
    SKYIO("put", "cross", text);
    assert_int_equal(r.code, 0);
    if (sdk("receive", "cross", text, &s) != 0) {
        print_message("the SDKs are not installed (scripts/install-deps): skipped\n");
        skip();
    }
    assert_int_equal(s.code, 0);
    assert_non_null(strstr(s.out, "ok"));
    assert_int_equal(sdk("send", "cross", "from the SDK: \xe2\x9c\x93 <xml>", &s), 0);
    assert_int_equal(s.code, 0);
    SKYIO("get", "cross", "--json");
    json_t *m = json_loads(r.out, 0, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "text")),
                        "from the SDK: \xe2\x9c\x93 <xml>");
    json_decref(m);
    /* raw text both ways */
    SKYIO("put", "cross", "--raw", "raw from skyio");
    assert_int_equal(sdk("receive-raw", "cross", "raw from skyio", &s), 0);
    assert_int_equal(s.code, 0);
    assert_int_equal(sdk("send-raw", "cross", "raw <from> the SDK", &s), 0);
    SKYIO("get", "cross", "--raw");
    assert_string_equal(r.out, "raw <from> the SDK\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_messages_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_properties_list_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay_and_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_before_any_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_client_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_client_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_busy_retried_with_bearer, setup, teardown),
        cmocka_unit_test(test_endpoint_of),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_cli_process),
        cmocka_unit_test(test_cli_process_keeps_hidden),
        cmocka_unit_test(test_sdk_cross_check),
    };
    return sky_test_run_group(tests, group_setup, group_teardown);
}
