/*
 * The server layer's watch of held HTTP/1.1 requests (src/server/held_watch.c), on its own
 * loop with raw socket clients: a client that closes (or half-closes) while its request is
 * held ends the request at once (on_gone runs, the handler's answer never comes); a client
 * that waits with a second request pipelined gets both answers; a shutdown that answers a
 * watched request leaves no handle open (the loop's teardown counts them).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "skyio/server.h"

typedef struct fixture {
    uv_loop_t *loop;
    sky_server *srv;
    int gone, answered, shut;
} fixture;

static fixture fx;

static void on_gone(void *data)
{
    (void)data;
    fx.gone++;
}

static void answer(sky_server_req *r, void *data)
{
    (void)data;
    fx.answered++;
    sky_server_respond(r, 200, "text/plain", SKY_SPAN_LIT("ok"));
}

/* /hold answers after 5 s, /slow after 200 ms: both long enough to be watched */
static void on_hold(sky_server_req *r, void *ud)
{
    sky_server_req_set_data(r, ud, on_gone);
    assert_int_equal(sky_server_req_after(r, 5000, answer), 0);
}

static void on_slow(sky_server_req *r, void *ud)
{
    sky_server_req_set_data(r, ud, on_gone);
    assert_int_equal(sky_server_req_after(r, 200, answer), 0);
}

static int setup(void **state)
{
    (void)state;
    sky_server_options o;
    sky_error err;
    memset(&fx, 0, sizeof(fx));
    fx.loop = sky_test_loop_new();
    sky_server_options_init(&o);
    sky_error_clear(&err);
    assert_int_equal(sky_server_new(fx.loop, &o, &fx.srv, &err), 0);
    assert_int_equal(sky_server_route(fx.srv, "GET", "/hold", 0, on_hold, &fx), 0);
    assert_int_equal(sky_server_route(fx.srv, "GET", "/slow", 0, on_slow, &fx), 0);
    assert_int_equal(sky_server_listen(fx.srv, &err), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sky_server_free(fx.srv);
    sky_test_loop_free(fx.loop); /* fails on a handle left open: the sweep's or a watch's */
    return 0;
}

static void run_ms(uint64_t ms)
{
    int never = 0;
    sky_test_run_until(fx.loop, &never, ms);
}

/* A connection with @p request sent (the kernel takes both before the loop accepts). */
static int client(const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)sky_server_port(fx.srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
    return fd;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

static void test_close_while_held_ends_request(void **state)
{
    (void)state;
    int fd = client(GET("/hold"));
    run_ms(300); /* held past two sweeps: watched */
    assert_int_equal(fx.gone, 0);
    close(fd);
    sky_test_run_until(fx.loop, &fx.gone, 3000);
    assert_int_equal(fx.gone, 1);
    assert_int_equal(fx.answered, 0); /* ended by the close, not by its 5 s answer */
    assert_int_equal(sky_server_requests_in_flight(fx.srv), 0);
}

/* A client that shuts its sending side after the request is gone too, as nginx has it. */
static void test_half_close_counts_as_gone(void **state)
{
    (void)state;
    int fd = client(GET("/hold"));
    run_ms(300);
    shutdown(fd, SHUT_WR);
    sky_test_run_until(fx.loop, &fx.gone, 3000);
    assert_int_equal(fx.gone, 1);
    assert_int_equal(fx.answered, 0);
    close(fd);
}

static void test_pipelined_waiting_client_answered(void **state)
{
    (void)state;
    int fd = client(GET("/slow") GET("/slow"));
    int two = 0;
    for (int i = 0; i < 300 && !two; i++) {
        run_ms(10);
        two = fx.answered == 2 && fx.gone == 2;
    }
    assert_true(two);
    run_ms(50); /* the second answer's write */
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_true(n > 0);
    buf[n] = '\0';
    char *second = strstr(buf, "HTTP/1.1 200");
    assert_non_null(second);
    assert_non_null(strstr(second + 1, "HTTP/1.1 200"));
    close(fd);
}

static void on_shut(sky_server *s, void *ud)
{
    (void)s;
    (void)ud;
    fx.shut = 1;
}

/* A watched request answered by the shutdown (503), its connection closed by the server. */
static void test_shutdown_with_watched_request(void **state)
{
    (void)state;
    int fd = client(GET("/hold"));
    run_ms(300);
    sky_server_shutdown(fx.srv, 0, on_shut, NULL);
    sky_test_run_until(fx.loop, &fx.shut, 3000);
    assert_int_equal(fx.shut, 1);
    assert_int_equal(fx.gone, 1);
    assert_int_equal(fx.answered, 0);
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, " 503 "));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_close_while_held_ends_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_counts_as_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_waiting_client_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_with_watched_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
