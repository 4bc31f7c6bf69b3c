/*
 * `skyio serve`'s request id upstream and its SIGTERM (issue 17, "Operations"), where the
 * other tests stop short:
 * - x-request-id both ways: the client's id reaches the upstream as x-request-id and comes
 *   back to the client; without one, the id the gateway made is the same upstream and back.
 *   The upstream here is a server in this process (skyio's server layer on the test's loop)
 *   that keeps the header it got;
 * - SIGTERM stops accepting: a stream under way ends whole while a new connection is
 *   refused, then the process exits 0;
 * - a stream longer than --grace-ms is cut at the end of it, its upstream call cancelled
 *   (the mock's stats), and the process still exits 0.
 * Real processes on loopback: one `skyio mock` (20 ms a token, every reply max_tokens long),
 * one `skyio serve` a test.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "skyio/server.h"
#include "harness_group.h"

static struct {
    sky_test_mock slow;
    sky_server *upstream;
    char upstream_id[160]; /* the x-request-id the last upstream call carried */
    int upstream_calls;
    sky_test_serve serve;
    char dir[256], config[512];
    uv_loop_t *loop;
    sky_http_client *client;
} env;

/* The in-process upstream: a chat completion, keeping the request id it was sent. */
static void on_upstream_chat(sky_server_req *r, void *ud)
{
    sky_span id = {0};
    (void)ud;
    env.upstream_calls++;
    env.upstream_id[0] = '\0';
    if (sky_server_req_header(r, "x-request-id", &id))
        snprintf(env.upstream_id, sizeof(env.upstream_id), "%.*s", (int)id.len, id.ptr);
    sky_server_add_header(r, "x-request-id", SKY_SPAN_LIT("upstream-own-id"));
    sky_server_respond(r, 200, "application/json",
                       SKY_SPAN_LIT("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
                                    "\"created\":1,\"model\":\"echo\",\"choices\":[{\"index\":0,"
                                    "\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},"
                                    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":"
                                    "2,\"completion_tokens\":1,\"total_tokens\":3}}"));
}

static void upstream_open(void)
{
    sky_server_options o;
    sky_error err;
    sky_server_options_init(&o);
    sky_error_clear(&err);
    assert_int_equal(sky_server_new(env.loop, &o, &env.upstream, &err), 0);
    assert_int_equal(
        sky_server_route(env.upstream, "POST", "/v1/chat/completions", 0, on_upstream_chat, NULL),
        0);
    assert_int_equal(sky_server_listen(env.upstream, &err), 0);
}

static int setup(void **state)
{
    (void)state;
    static const char *const slow[] = {"--per-token-ms", "20", "--reply-median-tokens", "0", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.slow, slow);
    sky_test_client_open(&env.loop, &env.client);
    upstream_open();
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_gateway_config(env.config, sizeof(env.config), env.dir,
                            "{\"models\": {"
                            " \"slow\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}],"
                            " \"echo\": [{\"kind\": \"compatible\", \"base_url\": "
                            "\"http://127.0.0.1:%d/v1\"}]}}\n",
                            env.slow.base_url, sky_server_port(env.upstream));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = sky_test_stop_child(env.serve.pid);
    sky_server_free(env.upstream);
    sky_test_mock *const mocks[] = {&env.slow, NULL};
    sky_test_serve_teardown(NULL, env.loop, env.client, mocks, env.dir);
    assert_true(sky_test_exited_ok(status));
    return 0;
}

/* A serve of its own for each test (@p name: its port and log files) */
static void start_serve(const char *name, const char *grace_ms)
{
    const char *const args[] = {"--config", env.config, "--grace-ms", grace_ms, NULL};
    sky_test_serve_start_named(&env.serve, env.dir, name, args, NULL);
}

/* Wait (running the loop) for the serve child to exit, 10 s at most; its status. */
static int wait_exit(void)
{
    int status = -1, never = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(env.serve.pid, &status, WNOHANG) == env.serve.pid) {
            env.serve.pid = 0;
            return status;
        }
        (void)sky_test_run_until(env.loop, &never, 20);
    }
    fail_msg("skyio serve did not exit within 10 s of SIGTERM");
    return -1;
}

static void test_request_id_goes_upstream_and_back(void **state)
{
    (void)state;
    static const char body[] =
        "{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    sky_test_result r;
    start_serve("ids", "1000");
    sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/chat/completions", body,
                        NULL, "x-request-id: rid-client-42", &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(env.upstream_calls, 1);
    assert_string_equal(env.upstream_id, "rid-client-42");
    assert_string_equal(json_string_value(json_object_get(r.headers, "x-request-id")),
                        "rid-client-42");
    sky_test_result_free(&r);
    /* none from the client: the one the gateway made, upstream and back alike */
    sky_test_serve_call(&env.serve, env.loop, env.client, "POST", "/v1/chat/completions", body,
                        NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(env.upstream_calls, 2);
    const char *back = json_string_value(json_object_get(r.headers, "x-request-id"));
    assert_non_null(back);
    assert_true(strlen(back) > 0);
    assert_string_equal(env.upstream_id, back);
    sky_test_result_free(&r);
    sky_test_serve_stop_ok(&env.serve);
}

/* Whether a new TCP connection to @p port is refused. */
static int connect_refused(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    int refused = rc != 0 && errno == ECONNREFUSED;
    close(fd);
    return refused;
}

/* Start a streamed chat of @p tokens tokens of "slow" into @p r (sky_test_on_done fills it),
 * and wait until the mock has it under way. */
static void stream_start(int tokens, sky_test_result *r)
{
    static char url[256], body[256]; /* the request borrows them */
    int never = 0;
    sky_http_request_options o;
    snprintf(url, sizeof(url), "%s/v1/chat/completions", env.serve.base);
    snprintf(body, sizeof(body),
             "{\"model\":\"slow\",\"stream\":true,\"max_tokens\":%d,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
             tokens);
    memset(r, 0, sizeof(*r));
    sky_http_request_options_init(&o);
    o.method = "POST";
    o.url = url;
    o.headers = sky_test_json_headers();
    o.body = sky_span_cstr(body);
    o.timeout_ms = 30000;
    o.on_done = sky_test_on_done;
    o.user_data = r;
    assert_int_equal(sky_http_request_send(env.client, &o, NULL, NULL), 0);
    for (int i = 0; i < 500 && sky_test_mock_stat(&env.slow, "in_flight") < 1; i++)
        (void)sky_test_run_until(env.loop, &never, 10);
}

static void test_sigterm_stops_accepting_and_lets_a_stream_end(void **state)
{
    (void)state;
    static sky_test_result r; /* the request may outlive a failed assertion */
    int never = 0;
    start_serve("term", "10000");
    /* 100 tokens 20 ms apart: two seconds of stream */
    stream_start(100, &r);
    assert_int_equal(kill(env.serve.pid, SIGTERM), 0);
    int refused = 0;
    for (int i = 0; i < 100 && !refused && !r.done; i++) {
        (void)sky_test_run_until(env.loop, &never, 10);
        refused = connect_refused(env.serve.port);
    }
    /* no new connection while the stream was still going */
    assert_true(refused);
    assert_int_equal(r.done, 0);
    (void)sky_test_run_until(env.loop, &r.done, 20000);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "data: [DONE]"));
    sky_test_result_free(&r);
    assert_true(sky_test_exited_ok(wait_exit()));
}

static void test_stream_past_the_grace_is_cut(void **state)
{
    (void)state;
    static sky_test_result r;
    int never = 0;
    start_serve("grace", "300");
    int64_t streams0 = sky_test_mock_stat(&env.slow, "streams");
    /* 1,000 tokens 20 ms apart: twenty seconds of stream, far past the grace */
    stream_start(1000, &r);
    assert_int_equal(kill(env.serve.pid, SIGTERM), 0);
    int status = wait_exit();
    assert_true(sky_test_exited_ok(status));
    (void)sky_test_run_until(env.loop, &r.done, 5000);
    assert_int_equal(r.done, 1);
    /* cut: the client never saw its end */
    assert_true(r.err_code != 0 || strstr(r.body ? r.body : "", "[DONE]") == NULL);
    sky_test_result_free(&r);
    /* the upstream call went with it, long before its twenty seconds */
    int64_t in_flight = 1;
    for (int i = 0; i < 150 && in_flight > 0; i++) {
        in_flight = sky_test_mock_stat(&env.slow, "in_flight");
        if (in_flight > 0)
            (void)sky_test_run_until(env.loop, &never, 20);
    }
    assert_int_equal(in_flight, 0);
    assert_int_equal(sky_test_mock_stat(&env.slow, "streams"), streams0 + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id_goes_upstream_and_back),
        cmocka_unit_test(test_sigterm_stops_accepting_and_lets_a_stream_end),
        cmocka_unit_test(test_stream_past_the_grace_is_cut),
    };
    return sky_test_run_group(tests, setup, teardown);
}
