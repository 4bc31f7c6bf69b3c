/*
 * `skyio serve` and clients that send what no server should take: a header flood, a request
 * line too long, a malformed head, a body over the limit, half a request and then nothing.
 * Each gets OpenAI's error JSON with its status (431, 414, 400, 413, 408), and none of them
 * stalls the others. Real processes on loopback: one `skyio mock`, one `skyio serve`, and
 * raw sockets as the bad clients.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "harness.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define CLIENT_TIMEOUT_MS "1500"
#define MAX_BODY "1000"

typedef struct bad_env {
    sky_test_mock mock;
    sky_test_serve serve;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
} bad_env;

static bad_env env;

static int setup(void **state)
{
    (void)state;
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.mock, NULL);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    char config[512];
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]}}\n",
        env.mock.base_url);
    const char *const args[] = {"--config",        config,       "--client-timeout-ms",
                                CLIENT_TIMEOUT_MS, "--max-body", MAX_BODY,
                                "--grace-ms",      "1000",       NULL};
    sky_test_serve_start(&env.serve, env.dir, args, NULL);
    sky_test_client_open(&env.loop, &env.client);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_test_mock *const mocks[] = {&env.mock, NULL};
    sky_test_serve_teardown(&env.serve, env.loop, env.client, mocks, env.dir);
    return 0;
}

/* ---- a well-behaved client ---- */

static void chat_ok(void)
{
    sky_test_result r;
    sky_test_serve_call(
        &env.serve, env.loop, env.client, "POST", "/v1/chat/completions",
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, NULL,
        &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
}

/* ---- raw clients ---- */

static int raw_connect(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)env.serve.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Send @p len bytes of @p data; the server may stop reading before the end. */
static void raw_send(int fd, const char *data, size_t len)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
}

/* Everything the server says until it closes (or @p wait_ms passes), NUL-terminated. */
static void raw_answer(int fd, char *out, size_t len, int wait_ms)
{
    size_t at = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (at + 1 < len && poll(&p, 1, wait_ms) == 1) {
        ssize_t n = read(fd, out + at, len - 1 - at);
        if (n <= 0)
            break;
        at += (size_t)n;
    }
    out[at] = '\0';
}

/* The answer is @p status with OpenAI's error JSON, of type invalid_request_error and code
 * @p code, and says the connection closes. */
static void assert_error_answer(const char *answer, int status, const char *code)
{
    char line[32];
    snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    assert_memory_equal(answer, line, strlen(line));
    assert_non_null(strstr(answer, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(answer, "\r\nConnection: close\r\n"));
    const char *body = strstr(answer, "\r\n\r\n");
    assert_non_null(body);
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_cstr(body + 4), &j, NULL), 0);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_non_null(json_string_value(json_object_get(e, "message")));
    assert_true(json_is_null(json_object_get(e, "param")));
    json_decref(j);
}

/* One raw request and its answer. */
static void raw_exchange(const char *req, size_t len, char *answer, size_t cap)
{
    int fd = raw_connect();
    raw_send(fd, req, len);
    raw_answer(fd, answer, cap, 5000);
    close(fd);
}

/* ---- the tests ---- */

/* 256 KiB of headers while another client sends half a request and waits: the flood gets
 * 431 in JSON (the client reads it after sending everything, not a reset), and the
 * well-behaved clients are served meanwhile. */
static void test_header_flood_gets_431_json(void **state)
{
    (void)state;
    int slow = raw_connect();
    const char half[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    raw_send(slow, half, sizeof(half) - 1);
    size_t cap = 256 * 1024, at = 0;
    char *req = malloc(cap);
    assert_non_null(req);
    at += (size_t)snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (int i = 0; at + 200 < cap; i++)
        at += (size_t)snprintf(req + at, cap - at, "X-Flood-%d: %0120d\r\n", i, i);
    at += (size_t)snprintf(req + at, cap - at, "\r\n");
    int flood = raw_connect();
    raw_send(flood, req, at);
    free(req);
    for (int i = 0; i < 5; i++)
        chat_ok();
    char answer[1024];
    raw_answer(flood, answer, sizeof(answer), 5000);
    assert_error_answer(answer, 431, "headers_too_large");
    close(flood);
    close(slow);
}

/* Fewer headers than the count limit but one of 70 KiB: 431 too. */
static void test_one_huge_header_gets_431_json(void **state)
{
    (void)state;
    size_t cap = 72 * 1024;
    char *req = malloc(cap);
    assert_non_null(req);
    int n = snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ");
    memset(req + n, 'a', 70 * 1024);
    n += 70 * 1024;
    memcpy(req + n, "\r\n\r\n", 4);
    char answer[1024];
    raw_exchange(req, (size_t)n + 4, answer, sizeof(answer));
    free(req);
    assert_error_answer(answer, 431, "headers_too_large");
}

static void test_long_request_line_gets_414_json(void **state)
{
    (void)state;
    size_t cap = 24 * 1024;
    char *req = malloc(cap);
    assert_non_null(req);
    int n = snprintf(req, cap, "GET /v1/models?x=");
    memset(req + n, 'q', 20 * 1024);
    n += 20 * 1024;
    n += snprintf(req + n, cap - (size_t)n, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    char answer[1024];
    raw_exchange(req, (size_t)n, answer, sizeof(answer));
    free(req);
    assert_error_answer(answer, 414, "uri_too_long");
}

static void test_malformed_head_gets_400_json(void **state)
{
    (void)state;
    char answer[1024];
    static const char junk[] = "NOT HTTP AT ALL\x01\x02\r\n\r\n";
    raw_exchange(junk, sizeof(junk) - 1, answer, sizeof(answer));
    assert_error_answer(answer, 400, "invalid_request");
    static const char length[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "Content-Length: twelve\r\n\r\n";
    raw_exchange(length, sizeof(length) - 1, answer, sizeof(answer));
    assert_error_answer(answer, 400, "invalid_request");
}

/* A body announced far over --max-body is refused before it is read: 413 in JSON. */
static void test_announced_huge_body_gets_413_json(void **state)
{
    (void)state;
    char answer[1024];
    static const char req[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
                              "{\"model\":";
    raw_exchange(req, sizeof(req) - 1, answer, sizeof(answer));
    assert_error_answer(answer, 413, "request_too_large");
}

/* Half a request, then nothing: after --client-timeout-ms the client gets 408 in JSON (its
 * connection can still carry it); one that sent nothing at all is closed without a word. */
static void test_slow_client_gets_408_json(void **state)
{
    (void)state;
    int half = raw_connect();
    int idle = raw_connect();
    static const char req[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Content-Length: 400\r\n\r\n{\"model\":\"gp";
    raw_send(half, req, sizeof(req) - 1);
    chat_ok(); /* meanwhile, others are served */
    char answer[1024];
    raw_answer(half, answer, sizeof(answer), 10000);
    assert_error_answer(answer, 408, "request_timeout");
    raw_answer(idle, answer, sizeof(answer), 10000);
    assert_string_equal(answer, "");
    close(half);
    close(idle);
    chat_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_flood_gets_431_json),
        cmocka_unit_test(test_one_huge_header_gets_431_json),
        cmocka_unit_test(test_long_request_line_gets_414_json),
        cmocka_unit_test(test_malformed_head_gets_400_json),
        cmocka_unit_test(test_announced_huge_body_gets_413_json),
        cmocka_unit_test(test_slow_client_gets_408_json),
    };
    signal(SIGPIPE, SIG_IGN);
    return sky_test_run_group(tests, setup, teardown);
}
