/* Tests for the framing of HTTP/1.1 replies (src/http/h1_reply.c): heads parsed by
 * picohttpparser, then where the body ends: Content-Length, chunked, until close, none. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http/h1_reply.h"

/* Parse the head of @p text; returns its length, the body's first byte at text + length. */
static int head(sky__h1_reply *p, const char *text, int is_head)
{
    sky__phr_header hdrs[SKY__H1_MAX_HEADERS];
    size_t n = SKY__H1_MAX_HEADERS;
    sky__h1_reply_init(p, is_head);
    return sky__h1_reply_head(p, text, strlen(text), hdrs, &n);
}

static void test_content_length(void **state)
{
    static const char text[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    sky__h1_reply p;
    char buf[64];
    size_t body, used;
    (void)state;
    int len = head(&p, text, 0);
    assert_int_equal(len, (int)strlen(text) - 10);
    assert_int_equal(p.status, 200);
    assert_int_equal(p.state, SKY__H1_LENGTH);
    assert_true(p.keep_alive);
    memcpy(buf, text + len, 3);
    assert_int_equal(sky__h1_reply_body(&p, buf, 3, &body, &used), 0);
    assert_int_equal(body, 3);
    memcpy(buf, text + len + 3, 7);
    assert_int_equal(sky__h1_reply_body(&p, buf, 7, &body, &used), 1);
    assert_int_equal(body, 2);
    assert_int_equal(used, 2); /* the rest is not this reply's */
    assert_memory_equal(buf, "lo", 2);
}

static void test_chunked_in_pieces(void **state)
{
    static const char text[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    sky__h1_reply p;
    char out[64] = "", buf[64];
    size_t body, used;
    int rc = 0;
    (void)state;
    int len = head(&p, text, 0);
    assert_int_equal(p.state, SKY__H1_CHUNKED);
    /* three bytes a read: every split point, chunk sizes and CRLFs included */
    for (size_t at = (size_t)len; at < strlen(text); at += 3) {
        size_t n = strlen(text) - at < 3 ? strlen(text) - at : 3;
        assert_int_equal(rc, 0);
        memcpy(buf, text + at, n);
        rc = sky__h1_reply_body(&p, buf, n, &body, &used);
        assert_true(rc >= 0);
        strncat(out, buf, body);
    }
    assert_int_equal(rc, 1);
    assert_string_equal(out, "hello world");
    assert_int_equal(used, (strlen(text) - (size_t)len) % 3 ? (strlen(text) - (size_t)len) % 3 : 3);
    assert_true(p.keep_alive);
}

static void test_chunked_malformed(void **state)
{
    sky__h1_reply p;
    char buf[] = "zz\r\nhello\r\n";
    size_t body, used;
    (void)state;
    head(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0);
    assert_int_equal(sky__h1_reply_body(&p, buf, strlen(buf), &body, &used), -1);
}

static void test_until_close(void **state)
{
    sky__h1_reply p;
    char buf[] = "all of it";
    size_t body, used;
    (void)state;
    head(&p, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", 0);
    assert_int_equal(p.state, SKY__H1_CLOSE);
    assert_false(p.keep_alive);
    assert_int_equal(sky__h1_reply_body(&p, buf, 9, &body, &used), 0);
    assert_int_equal(body, 9);
    assert_true(sky__h1_reply_eof(&p));
    /* a transfer coding other than chunked last: until close too */
    head(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 0);
    assert_int_equal(p.state, SKY__H1_CLOSE);
}

static void test_no_body(void **state)
{
    sky__h1_reply p;
    (void)state;
    head(&p, "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", 1); /* the reply to a HEAD */
    assert_int_equal(p.state, SKY__H1_DONE);
    head(&p, "HTTP/1.1 204 No Content\r\n\r\n", 0);
    assert_int_equal(p.state, SKY__H1_DONE);
    head(&p, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0);
    assert_int_equal(p.state, SKY__H1_DONE);
    head(&p, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
    assert_int_equal(p.state, SKY__H1_DONE);
    assert_false(sky__h1_reply_eof(&p)); /* its end is known: not a body read until close */
}

static void test_interim_then_final(void **state)
{
    static const char text[] =
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    sky__h1_reply p;
    sky__phr_header hdrs[SKY__H1_MAX_HEADERS];
    size_t n = SKY__H1_MAX_HEADERS;
    (void)state;
    int first = head(&p, text, 0);
    assert_int_equal(first, 25);
    assert_true(p.interim);
    assert_int_equal(p.state, SKY__H1_HEAD);
    int second = sky__h1_reply_head(&p, text + first, strlen(text) - (size_t)first, hdrs, &n);
    assert_true(second > 0);
    assert_false(p.interim);
    assert_int_equal(p.status, 200);
    assert_int_equal(p.state, SKY__H1_LENGTH);
    assert_false(p.keep_alive);
    assert_int_equal(n, 2);
}

static void test_partial_and_bad_heads(void **state)
{
    sky__h1_reply p;
    (void)state;
    assert_int_equal(head(&p, "HTTP/1.1 200 OK\r\nContent-Le", 0), 0);
    assert_int_equal(head(&p, "SSH-2.0-OpenSSH\r\n\r\n", 0), -1);
    assert_int_equal(head(&p, "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 0), -1);
    assert_int_equal(
        head(&p, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0), -1);
    assert_int_equal(head(&p, "HTTP/1.1 101 Switching Protocols\r\n\r\n", 0), -1);
    /* one header more than the array holds */
    char big[8192] = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i <= SKY__H1_MAX_HEADERS; i++)
        snprintf(big + strlen(big), sizeof(big) - strlen(big), "X-%d: v\r\n", i);
    strcat(big, "\r\n");
    assert_int_equal(head(&p, big, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked_in_pieces),
        cmocka_unit_test(test_chunked_malformed),
        cmocka_unit_test(test_until_close),
        cmocka_unit_test(test_no_body),
        cmocka_unit_test(test_interim_then_final),
        cmocka_unit_test(test_partial_and_bad_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
