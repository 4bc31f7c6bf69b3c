/* The h2o transport's own connection pool and reply framing (src/http/h1.c) against a
 * scripted upstream on loopback that answers each request with the next reply of a script:
 * keep-alive reuse over one connection, chunked replies arriving in pieces, interim and
 * body-less replies, a body read until close, a pooled connection the upstream closed (the
 * request sent again on a new one), a reply cut short, a reply over the size limit, and
 * idle connections closed after their time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* One reply of the script: its bytes, written in pieces where a '|' stands (with a pause
 * between, so the client reads them apart), then the connection closed when @c close. */
typedef struct step {
    const char *bytes;
    int close;
} step;

#define MAX_CONNS 16

typedef struct upstream {
    int fd, port;
    const step *steps;
    size_t n_steps;
    pthread_mutex_t mu;
    size_t next_step;
    int accepted, closed_by_client;
    pthread_t acceptor, handlers[MAX_CONNS];
    int conns[MAX_CONNS];
} upstream;

typedef struct conn_arg {
    upstream *u;
    int fd;
} conn_arg;

/* Read one request head (the tests send GETs and HEADs without a body); 0 at EOF. */
static int read_request(int fd)
{
    char buf[4096];
    size_t len = 0;
    while (len < sizeof(buf) - 1) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return 1;
    }
    return 0;
}

static void write_step(int fd, const step *s)
{
    const char *p = s->bytes;
    while (*p) {
        size_t n = strcspn(p, "|");
        if (n && send(fd, p, n, MSG_NOSIGNAL) != (ssize_t)n)
            return;
        p += n;
        if (*p == '|') {
            p++;
            usleep(30000);
        }
    }
}

static void *serve_conn(void *arg)
{
    conn_arg *a = arg;
    upstream *u = a->u;
    int fd = a->fd;
    free(a);
    for (;;) {
        if (!read_request(fd)) {
            pthread_mutex_lock(&u->mu);
            u->closed_by_client++;
            pthread_mutex_unlock(&u->mu);
            break;
        }
        pthread_mutex_lock(&u->mu);
        size_t i = u->next_step++;
        pthread_mutex_unlock(&u->mu);
        if (i >= u->n_steps)
            break;
        write_step(fd, &u->steps[i]);
        if (u->steps[i].close)
            break;
    }
    shutdown(fd, SHUT_RDWR);
    return NULL;
}

static void *accept_loop(void *arg)
{
    upstream *u = arg;
    for (;;) {
        int fd = accept(u->fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was shut down */
        pthread_mutex_lock(&u->mu);
        int k = u->accepted++;
        pthread_mutex_unlock(&u->mu);
        conn_arg *a = malloc(sizeof(*a));
        assert_non_null(a);
        a->u = u;
        a->fd = fd;
        u->conns[k] = fd;
        assert_true(k < MAX_CONNS);
        assert_int_equal(pthread_create(&u->handlers[k], NULL, serve_conn, a), 0);
    }
}

static void upstream_start(upstream *u, const step *steps, size_t n)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    memset(u, 0, sizeof(*u));
    u->steps = steps;
    u->n_steps = n;
    pthread_mutex_init(&u->mu, NULL);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    u->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(u->fd >= 0);
    assert_int_equal(bind(u->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(u->fd, 16), 0);
    assert_int_equal(getsockname(u->fd, (struct sockaddr *)&a, &len), 0);
    u->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&u->acceptor, NULL, accept_loop, u), 0);
}

static int upstream_count(upstream *u, const int *what)
{
    pthread_mutex_lock(&u->mu);
    int n = *what;
    pthread_mutex_unlock(&u->mu);
    return n;
}

/* After the client is freed: every connection ends, the threads are joined. */
static void upstream_stop(upstream *u)
{
    shutdown(u->fd, SHUT_RDWR);
    pthread_join(u->acceptor, NULL);
    for (int i = 0; i < u->accepted; i++) {
        pthread_join(u->handlers[i], NULL);
        close(u->conns[i]);
    }
    close(u->fd);
    pthread_mutex_destroy(&u->mu);
}

typedef struct fixture {
    upstream up;
    uv_loop_t *loop;
    sky_http_client *client;
    char url[128];
} fixture;

static void fixture_open(fixture *f, const step *steps, size_t n, size_t max_response)
{
    sky_http_client_options co;
    upstream_start(&f->up, steps, n);
    f->loop = sky_test_loop_new();
    sky_http_client_options_init(&co);
    co.transport = SKY_HTTP_TRANSPORT_H2O;
    if (max_response)
        co.max_response_bytes = max_response;
    assert_int_equal(sky_http_client_new(f->loop, &co, &f->client), 0);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/x", f->up.port);
}

static void fixture_close(fixture *f)
{
    sky_http_client_free(f->client);
    sky_test_loop_free(f->loop);
    upstream_stop(&f->up);
}

static void get(fixture *f, const char *method, sky_test_result *r)
{
    sky_test_request(f->loop, f->client, method, f->url, NULL, NULL, 10000, r);
}

#define CHUNKED_REPLY                                                                              \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n|Transfer-Encoding: chunked\r\n\r\n"           \
    "5\r\nhel|lo\r\n6\r\n world\r\n|0\r\n\r\n"

static void test_reuse_over_one_connection(void **state)
{
    static const step steps[] = {{CHUNKED_REPLY, 0}, {CHUNKED_REPLY, 0}, {CHUNKED_REPLY, 0}};
    fixture f;
    (void)state;
    fixture_open(&f, steps, 3, 0);
    for (int i = 0; i < 3; i++) {
        sky_test_result r;
        get(&f, "GET", &r);
        assert_int_equal(r.err_code, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello world");
        assert_string_equal(json_string_value(json_object_get(r.headers, "content-type")),
                            "text/plain");
        assert_int_equal(r.reused, i > 0);
        sky_test_result_free(&r);
    }
    assert_int_equal(upstream_count(&f.up, &f.up.accepted), 1);
    fixture_close(&f);
}

typedef struct streamed {
    int calls, done, err_code;
    char body[64];
} streamed;

static int on_piece(sky_http_request *req, const char *data, size_t len, void *ud)
{
    streamed *s = ud;
    (void)req;
    s->calls++;
    strncat(s->body, data, len);
    return 0;
}

static void on_streamed_done(sky_http_request *req, const sky_http_response *res,
                             const sky_error *err, void *ud)
{
    streamed *s = ud;
    (void)req, (void)res;
    s->done++;
    s->err_code = err ? err->code : 0;
}

/* A chunked body reaches on_body as its pieces arrive, not whole at the end. */
static void test_chunked_streams_in_pieces(void **state)
{
    static const step steps[] = {{CHUNKED_REPLY, 0}};
    fixture f;
    streamed s;
    sky_http_request_options o;
    (void)state;
    memset(&s, 0, sizeof(s));
    fixture_open(&f, steps, 1, 0);
    sky_http_request_options_init(&o);
    o.url = f.url;
    o.on_body = on_piece;
    o.on_done = on_streamed_done;
    o.user_data = &s;
    assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &s.done, 10000));
    assert_int_equal(s.err_code, 0);
    assert_string_equal(s.body, "hello world");
    assert_true(s.calls >= 2);
    fixture_close(&f);
}

/* 1xx heads skipped; HEAD, 204 and 304 replies without a body, on the same connection;
 * then a body read until the upstream closes. */
static void test_interim_bodiless_and_until_close(void **state)
{
    static const step steps[] = {
        {"HTTP/1.1 100 Continue\r\n\r\n|HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", 0},
        {"HTTP/1.1 204 No Content\r\n\r\n", 0},
        {"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil| close", 1},
    };
    static const char *const methods[] = {"GET", "HEAD", "GET", "GET"};
    static const int statuses[] = {200, 200, 204, 200};
    static const char *const bodies[] = {"ok", "", "", "until close"};
    fixture f;
    (void)state;
    fixture_open(&f, steps, 4, 0);
    for (int i = 0; i < 4; i++) {
        sky_test_result r;
        get(&f, methods[i], &r);
        assert_int_equal(r.err_code, 0);
        assert_int_equal(r.status, statuses[i]);
        assert_string_equal(r.body, bodies[i]);
        sky_test_result_free(&r);
    }
    assert_int_equal(upstream_count(&f.up, &f.up.accepted), 1);
    fixture_close(&f);
}

typedef struct chain {
    fixture *f;
    sky_test_result first, second;
} chain;

/* The next request from the first one's done callback: on the pooled connection, before
 * the loop has seen that the upstream closed it. */
static void on_first_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                          void *ud)
{
    chain *c = ud;
    sky_http_request_options o;
    sky_test_on_done(req, res, err, &c->first);
    sky_http_request_options_init(&o);
    o.url = c->f->url;
    o.on_done = sky_test_on_done;
    o.user_data = &c->second;
    assert_int_equal(sky_http_request_send(c->f->client, &o, NULL, NULL), 0);
}

static void test_upstream_closed_pooled_connection(void **state)
{
    static const step steps[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", 1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", 1},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree", 0},
    };
    fixture f;
    chain c;
    sky_http_request_options o;
    sky_test_result r;
    (void)state;
    memset(&c, 0, sizeof(c));
    c.f = &f;
    fixture_open(&f, steps, 3, 0);
    sky_http_request_options_init(&o);
    o.url = f.url;
    o.on_done = on_first_done;
    o.user_data = &c;
    assert_int_equal(sky_http_request_send(f.client, &o, NULL, NULL), 0);
    assert_true(sky_test_run_until(f.loop, &c.second.done, 10000));
    assert_int_equal(c.first.err_code, 0);
    assert_string_equal(c.first.body, "one");
    /* sent on the closed connection, then once more on a new one */
    assert_int_equal(c.second.err_code, 0);
    assert_string_equal(c.second.body, "two");
    assert_int_equal(c.second.reused, 0);
    assert_int_equal(upstream_count(&f.up, &f.up.accepted), 2);
    /* closed while idle in the pool: dropped when the loop sees it, the next one new */
    sky_test_run_until(f.loop, &(int){0}, 100);
    get(&f, "GET", &r);
    assert_int_equal(r.err_code, 0);
    assert_string_equal(r.body, "three");
    assert_int_equal(r.reused, 0);
    assert_int_equal(upstream_count(&f.up, &f.up.accepted), 3);
    sky_test_result_free(&r);
    sky_test_result_free(&c.first);
    sky_test_result_free(&c.second);
    fixture_close(&f);
}

/* A reply cut short is an error, not sent again; a reply over the size limit fails cleanly
 * and its connection is not pooled: the next request gets a new one. */
static void test_cut_short_and_over_limit(void **state)
{
    static const step steps[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", 1},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n|"
         "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n",
         0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0},
    };
    fixture f;
    sky_test_result r;
    (void)state;
    fixture_open(&f, steps, 3, 100);
    get(&f, "GET", &r);
    assert_int_equal(r.err_code, SKY_EPARTIAL);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    get(&f, "GET", &r);
    assert_int_equal(r.err_code, SKY_ETOOBIG);
    sky_test_result_free(&r);
    get(&f, "GET", &r);
    assert_int_equal(r.err_code, 0);
    assert_string_equal(r.body, "ok");
    assert_int_equal(r.reused, 0);
    sky_test_result_free(&r);
    assert_int_equal(upstream_count(&f.up, &f.up.accepted), 3);
    fixture_close(&f);
}

/* An idle pooled connection is closed by the client after its idle time (4 s). */
static void test_idle_connection_closed(void **state)
{
    static const step steps[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0}};
    fixture f;
    sky_test_result r;
    (void)state;
    fixture_open(&f, steps, 1, 0);
    get(&f, "GET", &r);
    assert_int_equal(r.err_code, 0);
    sky_test_result_free(&r);
    sky_test_run_until(f.loop, &(int){0}, 3000);
    assert_int_equal(upstream_count(&f.up, &f.up.closed_by_client), 0);
    for (int i = 0; i < 40 && upstream_count(&f.up, &f.up.closed_by_client) == 0; i++)
        sky_test_run_until(f.loop, &(int){0}, 100);
    assert_int_equal(upstream_count(&f.up, &f.up.closed_by_client), 1);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_over_one_connection),
        cmocka_unit_test(test_chunked_streams_in_pieces),
        cmocka_unit_test(test_interim_bodiless_and_until_close),
        cmocka_unit_test(test_upstream_closed_pooled_connection),
        cmocka_unit_test(test_cut_short_and_over_limit),
        cmocka_unit_test(test_idle_connection_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
