/* The HTTP client's h2o transport (SKY_HTTP_TRANSPORT_H2O) against real `skyio mock`
 * processes on loopback: replies whole and streamed, keep-alive, cancel, timeout, a refused
 * connection, the body cap, the connect timeout, a client freed with requests in flight. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "http/h1.h"
#include "skyio/json.h"
#include "skyio/sse.h"

static const char chat_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5}";
static const char stream_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":8,\"stream\":true}";

typedef struct fixture {
    sky_test_mock mock;
    uv_loop_t *loop;
    sky_http_client *client;
    char url[256];
} fixture;

static void fixture_open(fixture *f, const char *const *args, size_t max_response)
{
    sky_http_client_options co;
    memset(f, 0, sizeof(*f));
    sky_test_mock_start(&f->mock, args);
    f->loop = sky_test_loop_new();
    sky_http_client_options_init(&co);
    co.transport = SKY_HTTP_TRANSPORT_H2O;
    if (max_response)
        co.max_response_bytes = max_response;
    assert_int_equal(sky_http_client_new(f->loop, &co, &f->client), 0);
    snprintf(f->url, sizeof(f->url), "%s/v1/chat/completions", f->mock.base_url);
}

static void fixture_close(fixture *f)
{
    sky_http_client_free(f->client);
    sky_test_loop_free(f->loop);
    assert_int_equal(sky_test_mock_stop(&f->mock), 0);
}

static void test_post_keep_alive(void **state)
{
    fixture f;
    static const char *const hdrs[] = {"Content-Type: application/json",
                                       "X-Ms-Client-Request-Id: abc-123", NULL};
    (void)state;
    fixture_open(&f, NULL, 0);
    int64_t conns0 = sky_test_mock_stat(&f.mock, "connections");
    for (int i = 0; i < 20; i++) {
        sky_test_result r;
        json_t *body = NULL;
        sky_test_request(f.loop, f.client, "POST", f.url, chat_body, hdrs, 10000, &r);
        assert_int_equal(r.done, 1);
        assert_int_equal(r.err_code, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.http_version, 1);
        assert_int_equal(r.reused, i > 0);
        assert_int_equal(sky_json_parse(sky_span_make(r.body, r.body_len), &body, NULL), 0);
        assert_string_equal(sky_json_str(body, "object", ""), "chat.completion");
        assert_string_equal(json_string_value(json_object_get(r.headers, "x-ms-client-request-id")),
                            "abc-123");
        json_decref(body);
        sky_test_result_free(&r);
    }
    assert_int_equal(sky_test_mock_stat(&f.mock, "endpoints.chat"), 20);
    /* kept alive: one connection for the 20, besides the two stats reads' own above */
    int64_t conns = sky_test_mock_stat(&f.mock, "connections") - conns0 - 2;
    assert_int_equal(conns, 1);
    fixture_close(&f);
}

typedef struct stream_state {
    sky_sse_parser parser;
    int chunks, events, saw_done, done, err_code, status, cancel_after_events;
    sky_http_request *req;
} stream_state;

static int on_event(void *ud, const sky_sse_event *ev)
{
    stream_state *s = ud;
    if (ev->is_done) {
        s->saw_done = 1;
        return 0;
    }
    s->events++;
    if (s->cancel_after_events && s->events == s->cancel_after_events)
        sky_http_request_cancel(s->req);
    return 0;
}

static int on_stream_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    stream_state *s = ud;
    (void)req;
    s->chunks++;
    return sky_sse_parser_feed(&s->parser, data, len) < 0;
}

static void on_stream_done(sky_http_request *req, const sky_http_response *res,
                           const sky_error *err, void *ud)
{
    stream_state *s = ud;
    (void)req;
    s->done++;
    s->status = res->status;
    s->err_code = err ? err->code : 0;
}

static void start_stream(fixture *f, stream_state *s, long timeout_ms)
{
    sky_http_request_options o;
    sky_sse_parser_init(&s->parser, 0, on_event, s);
    sky_test_post_options(&o, f->url, stream_body, on_stream_done, s);
    o.on_body = on_stream_body;
    o.timeout_ms = timeout_ms;
    assert_int_equal(sky_http_request_send(f->client, &o, &s->req, NULL), 0);
}

static void test_stream_in_pieces(void **state)
{
    static const char *const args[] = {"--ttft-ms", "20", "--per-token-ms", "40", NULL};
    fixture f;
    stream_state s;
    (void)state;
    memset(&s, 0, sizeof(s));
    fixture_open(&f, args, 0);
    start_stream(&f, &s, 20000);
    assert_int_equal(s.done, 0); /* never from inside the send */
    assert_true(sky_test_run_until(f.loop, &s.done, 20000));
    assert_int_equal(s.done, 1);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.status, 200);
    assert_int_equal(s.events, 10); /* role chunk + 8 tokens + finish chunk, then [DONE] */
    assert_true(s.saw_done);
    assert_true(s.chunks >= 4);
    sky_sse_parser_free(&s.parser);
    fixture_close(&f);
}

static void test_cancel_from_body_callback(void **state)
{
    static const char *const args[] = {"--per-token-ms", "50", NULL};
    fixture f;
    stream_state s;
    (void)state;
    memset(&s, 0, sizeof(s));
    s.cancel_after_events = 3;
    fixture_open(&f, args, 0);
    start_stream(&f, &s, 20000);
    assert_true(sky_test_run_until(f.loop, &s.done, 20000));
    sky_test_run_until(f.loop, &(int){0}, 100); /* a second done callback would show */
    assert_int_equal(s.done, 1);
    assert_int_equal(s.err_code, SKY_ECANCELED);
    assert_int_equal(s.events, 3);
    assert_false(s.saw_done);
    sky_sse_parser_free(&s.parser);
    fixture_close(&f);
}

static void test_cancel_waiting_and_timeout(void **state)
{
    static const char *const args[] = {"--ttft-ms", "2000", "--jitter", "0", NULL};
    fixture f;
    stream_state a, b;
    (void)state;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    fixture_open(&f, args, 0);
    start_stream(&f, &a, 20000);
    start_stream(&f, &b, 200);
    sky_test_run_until(f.loop, &(int){0}, 50);
    sky_http_request_cancel(a.req);
    assert_int_equal(a.done, 0); /* from the loop, not from inside the cancel */
    assert_true(sky_test_run_until(f.loop, &a.done, 5000));
    assert_int_equal(a.err_code, SKY_ECANCELED);
    assert_true(sky_test_run_until(f.loop, &b.done, 5000));
    assert_int_equal(b.err_code, SKY_ETIMEDOUT);
    assert_int_equal(a.done + b.done, 2);
    sky_sse_parser_free(&a.parser);
    sky_sse_parser_free(&b.parser);
    fixture_close(&f);
}

/* The transport's one deadline timer: set for the first deadline, set earlier for a shorter
 * timeout that comes after, and set again for those left when the request it was set for has
 * ended (here canceled) before its time. Each request ends once, by its own timeout, in the
 * order of the deadlines; the long one is not cut short. */
static void test_deadlines_on_one_timer(void **state)
{
    static const char *const args[] = {"--ttft-ms", "3000", "--jitter", "0", NULL};
    fixture f;
    stream_state longest, early, shortest, later;
    (void)state;
    memset(&longest, 0, sizeof(longest));
    memset(&early, 0, sizeof(early));
    memset(&shortest, 0, sizeof(shortest));
    memset(&later, 0, sizeof(later));
    fixture_open(&f, args, 0);
    start_stream(&f, &longest, 20000);
    start_stream(&f, &shortest, 100);
    start_stream(&f, &early, 300);
    start_stream(&f, &later, 600);
    sky_http_request_cancel(shortest.req); /* the timer is set for its deadline */
    assert_true(sky_test_run_until(f.loop, &early.done, 5000));
    assert_int_equal(early.err_code, SKY_ETIMEDOUT);
    assert_int_equal(later.done, 0);
    assert_true(sky_test_run_until(f.loop, &later.done, 5000));
    assert_int_equal(later.err_code, SKY_ETIMEDOUT);
    assert_int_equal(shortest.done, 1);
    assert_int_equal(shortest.err_code, SKY_ECANCELED);
    assert_int_equal(longest.done, 0);
    sky_http_request_cancel(longest.req);
    assert_true(sky_test_run_until(f.loop, &longest.done, 5000));
    assert_int_equal(longest.err_code, SKY_ECANCELED);
    assert_int_equal(early.done + later.done, 2);
    sky_sse_parser_free(&longest.parser);
    sky_sse_parser_free(&early.parser);
    sky_sse_parser_free(&shortest.parser);
    sky_sse_parser_free(&later.parser);
    fixture_close(&f);
}

static void on_refused_done(sky_http_request *req, const sky_http_response *res,
                            const sky_error *err, void *ud)
{
    sky_test_result *r = ud;
    (void)req;
    r->done++;
    r->status = res->status;
    r->err_code = err ? err->code : 0;
    r->reused = err ? err->retryable : -1; /* the retryable bit, in a spare field */
}

static void test_refused_and_body_cap(void **state)
{
    fixture f;
    sky_test_result r;
    sky_http_request_options o;
    char url[256];
    (void)state;
    fixture_open(&f, NULL, 100);
    /* the body cap: the 600-byte reply does not fit 100 */
    sky_test_request(f.loop, f.client, "POST", f.url, chat_body, NULL, 10000, &r);
    assert_int_equal(r.err_code, SKY_ETOOBIG);
    sky_test_result_free(&r);
    /* a port nobody listens on: the mock's, once it is stopped */
    snprintf(url, sizeof(url), "%s", f.url);
    assert_int_equal(sky_test_mock_stop(&f.mock), 0);
    memset(&r, 0, sizeof(r));
    sky_test_post_options(&o, url, chat_body, on_refused_done, &r);
    assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &r.done, 5000));
    assert_int_equal(r.err_code, SKY_ECONNECT);
    assert_int_equal(r.reused, 1);
    sky_http_client_free(f.client);
    sky_test_loop_free(f.loop);
}

typedef struct timed_out {
    int done, err_code;
    char message[256];
} timed_out;

static void on_timed_out_done(sky_http_request *req, const sky_http_response *res,
                              const sky_error *err, void *ud)
{
    timed_out *t = ud;
    (void)req, (void)res;
    t->done++;
    t->err_code = err ? err->code : 0;
    snprintf(t->message, sizeof(t->message), "%s", err ? err->message : "");
}

/* A loopback listener whose accept queue is full and never drained: a further connect's
 * SYN is dropped, so that connect waits (no traffic leaves the machine). The fillers'
 * descriptors go to @p fill. Returns the listener's descriptor and sets @p port. */
static int full_listener(int *port, int fill[2])
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 0), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    for (int i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(fill[i] >= 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(100000); /* the fillers' handshakes end in the queue */
    *port = ntohs(a.sin_port);
    return fd;
}

/* The client's connect timeout applies to this transport as to curl: a connect that gets no
 * answer ends with SKY_ETIMEDOUT, "connect timed out", long before the request's timeout;
 * once connected, the request's own timeout still rules ("request timed out"). */
static void test_connect_timeout(void **state)
{
    static const char *const args[] = {"--ttft-ms", "3000", "--jitter", "0", NULL};
    int port, fill[2];
    char url[256];
    timed_out t;
    sky_http_request_options o;
    sky_http_client_options co;
    sky_http_client *client;
    sky_test_mock mock;
    (void)state;
    memset(&mock, 0, sizeof(mock)); /* plain HTTP: the harness reads mock.tls */
    int lfd = full_listener(&port, fill);
    uv_loop_t *loop = sky_test_loop_new();
    sky_http_client_options_init(&co);
    co.transport = SKY_HTTP_TRANSPORT_H2O;
    co.connect_timeout_ms = 300;
    assert_int_equal(sky_http_client_new(loop, &co, &client), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
    memset(&t, 0, sizeof(t));
    sky_test_post_options(&o, url, chat_body, on_timed_out_done, &t);
    o.timeout_ms = 60000;
    assert_int_equal(sky_http_request_send(client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(loop, &t.done, 20000));
    assert_int_equal(t.done, 1);
    assert_int_equal(t.err_code, SKY_ETIMEDOUT);
    assert_non_null(strstr(t.message, "connect timed out"));
    /* connected at once, answered late: the request's timeout, not the connect's */
    sky_test_mock_start(&mock, args);
    snprintf(url, sizeof(url), "%s/v1/chat/completions", mock.base_url);
    memset(&t, 0, sizeof(t));
    sky_test_post_options(&o, url, chat_body, on_timed_out_done, &t);
    o.timeout_ms = 1000;
    assert_int_equal(sky_http_request_send(client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(loop, &t.done, 20000));
    assert_int_equal(t.done, 1);
    assert_int_equal(t.err_code, SKY_ETIMEDOUT);
    assert_non_null(strstr(t.message, "request timed out"));
    sky_http_client_free(client);
    sky_test_loop_free(loop);
    assert_int_equal(sky_test_mock_stop(&mock), 0);
    close(fill[0]);
    close(fill[1]);
    close(lfd);
}

static void on_kind_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                         void *ud)
{
    sky_test_result *r = ud;
    r->done++;
    r->status = res->status;
    r->err_code = err ? err->code : 0;
    r->reused = *(const int *)req; /* the transport: the first member of either request */
}

/* With a proxy variable set, the client sends everything through curl, which honours it
 * (here no_proxy sends loopback straight). */
static void test_proxy_variable_keeps_curl(void **state)
{
    fixture f;
    sky_test_result r;
    sky_http_request_options o;
    (void)state;
    setenv("http_proxy", "http://127.0.0.1:1", 1);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    fixture_open(&f, NULL, 0);
    unsetenv("http_proxy");
    unsetenv("no_proxy");
    memset(&r, 0, sizeof(r));
    sky_test_post_options(&o, f.url, chat_body, on_kind_done, &r);
    assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &r.done, 10000));
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.reused, SKY__HTTP_KIND_CURL);
    fixture_close(&f);
}

static void test_free_with_requests_in_flight(void **state)
{
    static const char *const args[] = {"--ttft-ms", "2000", NULL};
    fixture f;
    stream_state s[3];
    (void)state;
    memset(s, 0, sizeof(s));
    fixture_open(&f, args, 0);
    for (int i = 0; i < 3; i++)
        start_stream(&f, &s[i], 20000);
    sky_test_run_until(f.loop, &(int){0}, 50);
    assert_int_equal(sky_http_client_active(f.client), 3);
    sky_http_client_free(f.client);
    f.client = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s[i].done, 1);
        assert_int_equal(s[i].err_code, SKY_ECANCELED);
        sky_sse_parser_free(&s[i].parser);
    }
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_keep_alive),
        cmocka_unit_test(test_stream_in_pieces),
        cmocka_unit_test(test_cancel_from_body_callback),
        cmocka_unit_test(test_cancel_waiting_and_timeout),
        cmocka_unit_test(test_deadlines_on_one_timer),
        cmocka_unit_test(test_refused_and_body_cap),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_proxy_variable_keeps_curl),
        cmocka_unit_test(test_free_with_requests_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
