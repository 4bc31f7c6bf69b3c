/* The server layer on its own loop, read by the HTTP client on the same loop: the SSE writer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "skyio/server.h"
#include "skyio/sse.h"

typedef struct fixture {
    uv_loop_t *loop;
    sky_server *srv;
    sky_http_client *client;
    char url[128];
    int send_rc[5];
} fixture;

/* Events: named with two data lines, unnamed, named with empty data, with CR line ends. */
static void on_events(sky_server_req *r, void *ud)
{
    fixture *f = ud;
    sky_server_stream_start(r, 200, "text/event-stream", -1);
    f->send_rc[0] = sky_server_sse_send_event(r, "first.kind", SKY_SPAN_LIT("line one\nline two"));
    f->send_rc[1] = sky_server_sse_send(r, SKY_SPAN_LIT("{\"plain\":true}"));
    f->send_rc[2] = sky_server_sse_send_event(r, "empty", sky_span_make("", 0));
    /* CR and CR LF end lines too: each becomes a data: line of its own */
    f->send_rc[4] = sky_server_sse_send_event(r, "breaks", SKY_SPAN_LIT("a\rb\r\nc\n"));
    /* a type holding a line break would forge events: refused, and nothing is sent */
    f->send_rc[3] = sky_server_sse_send_event(r, "bad\nevent: forged", SKY_SPAN_LIT("x"));
    (void)sky_server_stream_write(r, sky_span_make("", 0), 1);
}

static void fixture_open(fixture *f)
{
    sky_server_options o;
    sky_error err;
    memset(f, 0, sizeof(*f));
    f->loop = sky_test_loop_new();
    sky_server_options_init(&o);
    sky_error_clear(&err);
    assert_int_equal(sky_server_new(f->loop, &o, &f->srv, &err), 0);
    assert_int_equal(sky_server_route(f->srv, "GET", "/events", 0, on_events, f), 0);
    assert_int_equal(sky_server_listen(f->srv, &err), 0);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/events", sky_server_port(f->srv));
    assert_int_equal(sky_http_client_new(f->loop, NULL, &f->client), 0);
}

static void fixture_close(fixture *f)
{
    sky_http_client_free(f->client);
    sky_server_free(f->srv);
    sky_test_loop_free(f->loop);
}

typedef struct seen {
    int n;
    char event[5][32];
    char data[5][64];
} seen;

static int on_sse(void *ud, const sky_sse_event *ev)
{
    seen *s = ud;
    if (s->n < 5) {
        snprintf(s->event[s->n], sizeof(s->event[0]), "%.*s", (int)ev->event.len, ev->event.ptr);
        snprintf(s->data[s->n], sizeof(s->data[0]), "%.*s", (int)ev->data.len, ev->data.ptr);
    }
    s->n++;
    return 0;
}

static void test_sse_events_with_types_and_lines(void **state)
{
    fixture f;
    sky_test_result r;
    sky_sse_parser p;
    seen s;
    (void)state;
    fixture_open(&f);
    sky_test_request(f.loop, f.client, "GET", f.url, NULL, NULL, 10000, &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    memset(&s, 0, sizeof(s));
    sky_sse_parser_init(&p, 0, on_sse, &s);
    assert_int_equal(sky_sse_parser_feed(&p, r.body, r.body_len), 0);
    assert_int_equal(sky_sse_parser_finish(&p), 0);
    sky_sse_parser_free(&p);
    assert_int_equal(f.send_rc[0], 0);
    assert_int_equal(f.send_rc[1], 0);
    assert_int_equal(f.send_rc[2], 0);
    assert_int_equal(f.send_rc[3], SKY_EINVAL);
    assert_int_equal(f.send_rc[4], 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.event[0], "first.kind");
    assert_string_equal(s.data[0], "line one\nline two"); /* two data: lines, joined back */
    assert_string_equal(s.event[1], "");
    assert_string_equal(s.data[1], "{\"plain\":true}");
    assert_string_equal(s.event[2], "empty");
    assert_string_equal(s.data[2], "");
    /* the reader joins data lines with LF, and the trailing break is kept */
    assert_string_equal(s.event[3], "breaks");
    assert_string_equal(s.data[3], "a\nb\nc\n");
    assert_null(strstr(r.body, "forged"));
    sky_test_result_free(&r);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_events_with_types_and_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
