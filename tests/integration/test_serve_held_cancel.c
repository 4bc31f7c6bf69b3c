/*
 * A client that leaves while its non-streamed answer is held, over plain HTTP/1.1 and over
 * TLS (issue 17, "a client that disconnects cancels its upstream request at once"): h2o does
 * not read an HTTP/1 connection while its request is answered, so src/server/held_watch.c
 * watches the connections of requests held a while for the client's close. The upstream call
 * ends at once, the gateway counts the request once as 499 and serves the next; a client
 * that waits (keep-alive, pipelined) gets its answers, and one that closes a connection whose
 * requests were answered causes no abort.
 * Real processes on loopback: two `skyio mock` (one slow to answer, one fast), a plain and a
 * TLS `skyio serve`, and clients on raw sockets (OpenSSL for TLS).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

static struct {
    sky_test_mock slow, fast;
    sky_test_serve plain, tls;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

static int setup(void **state)
{
    (void)state;
    memset(&env, 0, sizeof(env));
    const char *const slow_args[] = {"--ttft-ms", "5000", "--jitter", "0", NULL};
    sky_test_mock_start(&env.slow, slow_args); /* answers after 5 s */
    sky_test_mock_start(&env.fast, NULL);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    char config[1024], access[512], certs[512], cert[600], key[600];
    sky_test_gateway_config(config, sizeof(config), env.dir,
                            "{\"models\": {\"slow\": [{\"kind\": \"compatible\", \"base_url\": "
                            "\"%s/v1\"}], \"fast\": [{\"kind\": \"compatible\", \"base_url\": "
                            "\"%s/v1\"}]}}\n",
                            env.slow.base_url, env.fast.base_url);
    snprintf(access, sizeof(access), "%s/access.log", env.dir);
    const char *const args[] = {"--config", config, "--access-log", access, "--grace-ms",
                                "200",      NULL};
    sky_test_serve_start_named(&env.plain, env.dir, "plain", args, NULL);
    snprintf(certs, sizeof(certs), "%s/certs", env.dir);
    assert_int_equal(mkdir(certs, 0700), 0);
    assert_int_equal(sky_test_make_certs(certs), 0);
    snprintf(cert, sizeof(cert), "%s/server.pem", certs);
    snprintf(key, sizeof(key), "%s/server.key", certs);
    const char *const tls_args[] = {"--config", config,       "--tls-cert", cert, "--tls-key",
                                    key,        "--grace-ms", "200",        NULL};
    sky_test_serve_start_named(&env.tls, env.dir, "tls", tls_args, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.slow, &env.fast, NULL};
    int tls = sky_test_stop_child(env.tls.pid);
    sky_test_serve_teardown(&env.plain, env.loop, env.client, mocks, env.dir);
    assert_true(sky_test_exited_ok(tls));
    return 0;
}

/* ---- a raw HTTP/1.1 client ---- */

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* A non-streamed chat of @p model with the request id @p rid, appended to @p out; with
 * "Connection: close" when @p last. */
static void chat_request(char *out, size_t len, const char *model, const char *rid, int last)
{
    char body[160];
    int n =
        snprintf(body, sizeof(body),
                 "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", model);
    size_t at = strlen(out);
    snprintf(out + at, len - at,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nx-request-id: %s\r\n%sContent-Length: %d\r\n\r\n%s",
             rid, last ? "Connection: close\r\n" : "", n, body);
}

static void send_all(int fd, const char *data)
{
    size_t len = strlen(data);
    assert_int_equal(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* What came in on a connection and is not read as an answer yet. */
typedef struct inbox {
    char data[65536];
    size_t len;
} inbox;

/* The Content-Length of the head in @p head (up to @p end); -1 when it has none. */
static long content_length(const char *head, const char *end)
{
    for (const char *line = strstr(head, "\r\n"); line && line < end;
         line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "content-length:", 15) == 0)
            return strtol(line + 17, NULL, 10);
    return -1;
}

/* One answer from @p fd (its head and Content-Length body): its status, 0 on a close. */
static int read_answer(int fd, inbox *in)
{
    for (;;) {
        in->data[in->len] = '\0';
        char *end = strstr(in->data, "\r\n\r\n");
        long cl = end ? content_length(in->data, end) : -1;
        assert_true(end == NULL || cl >= 0);
        size_t whole = end ? (size_t)(end + 4 - in->data) + (size_t)cl : SIZE_MAX;
        if (in->len >= whole) {
            int status = atoi(in->data + 9);
            memmove(in->data, in->data + whole, in->len - whole);
            in->len -= whole;
            return status;
        }
        assert_true(in->len < sizeof(in->data) - 1);
        ssize_t n = recv(fd, in->data + in->len, sizeof(in->data) - 1 - in->len, 0);
        if (n <= 0)
            return 0;
        in->len += (size_t)n;
    }
}

/* ---- what the gateway and the mock saw ---- */

static double sample(const sky_test_serve *s, const char *series)
{
    double v = sky_test_serve_sample(s, env.loop, env.client, series);
    return v < 0 ? 0 : v;
}

#define SLOW_499                                                                                   \
    "skyio_gateway_requests_total{route=\"/v1/chat/completions\",model=\"slow\","                  \
    "deployment=\"slow#0\",status=\"499\"}"
#define SLOW_IN_FLIGHT "skyio_gateway_deployment_in_flight{model=\"slow\",deployment=\"slow#0\"}"

/* The slow mock's calls in flight, once it is @p want or @p ms passed. */
static int64_t wait_in_flight(int64_t want, long ms)
{
    int64_t got = -1;
    for (long waited = 0; waited <= ms; waited += 20) {
        got = sky_test_mock_stat(&env.slow, "in_flight");
        if (got == want)
            break;
        sleep_ms(20);
    }
    return got;
}

/* How many access log lines request @p rid has, and the status of the last. */
static int log_lines(const char *rid, int *status)
{
    char path[512], line[4096];
    int n = 0;
    snprintf(path, sizeof(path), "%s/access.log", env.dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        if (j && strcmp(sky_json_str(j, "request_id", ""), rid) == 0) {
            n++;
            *status = (int)json_integer_value(json_object_get(j, "status"));
        }
        json_decref(j);
    }
    fclose(f);
    return n;
}

static int wait_log_lines(const char *rid, int *status)
{
    int n = 0;
    for (int i = 0; i < 200 && (n = log_lines(rid, status)) == 0; i++)
        sleep_ms(10);
    return n;
}

/* A fast chat on a new connection of @p s is answered. */
static void next_request_served(const sky_test_serve *s)
{
    sky_test_result r;
    sky_test_serve_call(
        s, env.loop, env.client, "POST", "/v1/chat/completions",
        "{\"model\":\"fast\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, NULL,
        &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
}

/* Send @p req to the plain serve, close the connection 300 ms after the call is in flight
 * (2 s to get there), and see the call end within a second. */
static void close_while_held(const char *req)
{
    int fd = connect_to(env.plain.port);
    send_all(fd, req);
    assert_int_equal(wait_in_flight(1, 2000), 1);
    sleep_ms(300);
    close(fd);
    assert_int_equal(wait_in_flight(0, 1000), 0);
}

/* ---- tests ---- */

static void test_plain_close_cancels_upstream(void **state)
{
    (void)state;
    int64_t completion0 = sky_test_mock_stat(&env.slow, "tokens.completion");
    double aborted0 = sample(&env.plain, SLOW_499);
    char req[1024] = "";
    chat_request(req, sizeof(req), "slow", "held-plain-1", 0);
    /* the upstream call ends within a second, not when the mock answers (5 s) */
    close_while_held(req);
    assert_int_equal(sky_test_mock_stat(&env.slow, "tokens.completion"), completion0);
    assert_true(sample(&env.plain, SLOW_IN_FLIGHT) == 0);
    assert_true(sample(&env.plain, SLOW_499) == aborted0 + 1);
    int status = 0;
    assert_int_equal(wait_log_lines("held-plain-1", &status), 1);
    assert_int_equal(status, 499);
    next_request_served(&env.plain);
}

/* A streamed call waits for its first token as long (the client has had no byte yet):
 * the same. */
static void test_stream_before_first_token_close_cancels_upstream(void **state)
{
    (void)state;
    double aborted0 = sample(&env.plain, SLOW_499);
    static const char body[] = "{\"model\":\"slow\",\"stream\":true,"
                               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char req[1024];
    snprintf(req, sizeof(req),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             sizeof(body) - 1, body);
    close_while_held(req);
    assert_true(sample(&env.plain, SLOW_499) == aborted0 + 1);
}

/* ---- over TLS (OpenSSL, HTTP/1.1: no ALPN) ---- */

typedef struct tls_conn {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
} tls_conn;

static void tls_open(tls_conn *c)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->ctx);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL); /* the test's throwaway certificate */
    c->ssl = SSL_new(c->ctx);
    assert_non_null(c->ssl);
    c->fd = connect_to(env.tls.port);
    SSL_set_fd(c->ssl, c->fd);
    assert_int_equal(SSL_connect(c->ssl), 1);
}

static void tls_close(tls_conn *c)
{
    SSL_shutdown(c->ssl); /* close_notify, then the FIN */
    close(c->fd);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

static void tls_send(tls_conn *c, const char *data)
{
    assert_int_equal(SSL_write(c->ssl, data, (int)strlen(data)), (int)strlen(data));
}

/* @p request (with "Connection: close") on a new TLS connection; all of the answer in
 * @p in. */
static void tls_exchange(const char *request, inbox *in)
{
    tls_conn c;
    tls_open(&c);
    tls_send(&c, request);
    in->len = 0;
    int n;
    while (in->len < sizeof(in->data) - 1 &&
           (n = SSL_read(c.ssl, in->data + in->len, (int)(sizeof(in->data) - 1 - in->len))) > 0)
        in->len += (size_t)n;
    in->data[in->len] = '\0';
    tls_close(&c);
}

static double tls_sample(const char *series)
{
    static inbox in;
    tls_exchange("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", &in);
    assert_int_equal(strncmp(in.data, "HTTP/1.1 200", 12), 0);
    double v = sky_test_sample(in.data, series);
    return v < 0 ? 0 : v;
}

/* Over TLS the client's close is the same FIN, behind its close_notify. */
static void test_tls_close_cancels_upstream(void **state)
{
    (void)state;
    double aborted0 = tls_sample(SLOW_499);
    tls_conn c;
    tls_open(&c);
    char req[1024] = "";
    chat_request(req, sizeof(req), "slow", "held-tls-1", 0);
    tls_send(&c, req);
    assert_int_equal(wait_in_flight(1, 2000), 1);
    sleep_ms(300);
    tls_close(&c);
    assert_int_equal(wait_in_flight(0, 1000), 0);
    assert_true(tls_sample(SLOW_IN_FLIGHT) == 0);
    assert_true(tls_sample(SLOW_499) == aborted0 + 1);
    /* the next request, on a new connection, is served */
    static inbox in;
    char next[1024] = "";
    chat_request(next, sizeof(next), "fast", "tls-next", 1);
    tls_exchange(next, &in);
    assert_int_equal(strncmp(in.data, "HTTP/1.1 200", 12), 0);
}

/* A client that keeps its connection open and waits, with a second request pipelined behind
 * the first (readable data, not a close), gets both answers: no abort. */
static void test_waiting_pipelined_client_answered(void **state)
{
    (void)state;
    double aborted0 = sample(&env.plain, SLOW_499);
    char req[2048] = "";
    chat_request(req, sizeof(req), "slow", "held-wait-1", 0);
    chat_request(req, sizeof(req), "slow", "held-wait-2", 0);
    int fd = connect_to(env.plain.port);
    send_all(fd, req);
    static inbox in;
    in.len = 0;
    assert_int_equal(read_answer(fd, &in), 200);
    assert_int_equal(read_answer(fd, &in), 200);
    close(fd);
    int status = 0;
    assert_int_equal(wait_log_lines("held-wait-2", &status), 1);
    assert_int_equal(status, 200);
    assert_true(sample(&env.plain, SLOW_499) == aborted0);
}

/* Requests answered at once on a keep-alive connection, an idle moment (sweeps run), then a
 * normal close: nothing is aborted and nothing is logged as an error. */
static void test_answered_then_closed_is_no_abort(void **state)
{
    (void)state;
    double aborted0 = sample(&env.plain, SLOW_499);
    int fd = connect_to(env.plain.port);
    static inbox in;
    in.len = 0;
    for (int i = 0; i < 3; i++) {
        char req[1024] = "", rid[32];
        snprintf(rid, sizeof(rid), "fast-ka-%d", i);
        chat_request(req, sizeof(req), "fast", rid, 0);
        send_all(fd, req);
        assert_int_equal(read_answer(fd, &in), 200);
    }
    sleep_ms(100);
    close(fd);
    sleep_ms(100);
    int status = 0;
    assert_int_equal(wait_log_lines("fast-ka-2", &status), 1);
    assert_int_equal(status, 200);
    assert_true(sample(&env.plain, SLOW_499) == aborted0);
    next_request_served(&env.plain);
    assert_false(sky_test_file_holds(env.dir, "plain.log", "error"));
    assert_false(sky_test_file_holds(env.dir, "plain.log", "warn"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_close_cancels_upstream),
        cmocka_unit_test(test_stream_before_first_token_close_cancels_upstream),
        cmocka_unit_test(test_tls_close_cancels_upstream),
        cmocka_unit_test(test_waiting_pipelined_client_answered),
        cmocka_unit_test(test_answered_then_closed_is_no_abort),
    };
    return sky_test_run_group(tests, setup, teardown);
}
