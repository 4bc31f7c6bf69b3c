/* Tests for the text/event-stream parser (WHATWG HTML, "server-sent events"). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "skyio/sse.h"
#include "skyio/error.h"

#define MAX_EVENTS 32
#define FIELD_MAX 256

/* A copy of one dispatched event, since the callback's spans are borrowed. */
typedef struct rec_event {
    char event[FIELD_MAX];
    char data[FIELD_MAX];
    char id[FIELD_MAX];
    size_t data_len;
    int64_t retry_ms;
    int is_done;
} rec_event;

typedef struct recorder {
    rec_event ev[MAX_EVENTS];
    size_t n;
    size_t stop_after; /* return nonzero from the callback after this many; 0 never */
} recorder;

static void copy_span(char *dst, sky_span s)
{
    assert_true(s.len < FIELD_MAX);
    if (s.len)
        memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
}

static int record(void *user_data, const sky_sse_event *ev)
{
    recorder *r = user_data;
    assert_true(r->n < MAX_EVENTS);
    rec_event *e = &r->ev[r->n++];
    copy_span(e->event, ev->event);
    copy_span(e->data, ev->data);
    copy_span(e->id, ev->id);
    e->data_len = ev->data.len;
    e->retry_ms = ev->retry_ms;
    e->is_done = ev->is_done;
    return r->stop_after && r->n >= r->stop_after;
}

/* Parse @p text in one chunk, then finish; returns the first error or 0. */
static int parse_all(recorder *r, const char *text, size_t len, size_t max_event)
{
    sky_sse_parser p;
    sky_sse_parser_init(&p, max_event, record, r);
    int rc = sky_sse_parser_feed(&p, text, len);
    if (rc == 0)
        rc = sky_sse_parser_finish(&p);
    sky_sse_parser_free(&p);
    return rc;
}

static int parse_str(recorder *r, const char *text)
{
    return parse_all(r, text, strlen(text), 0);
}

static void assert_same_events(const recorder *a, const recorder *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->ev[i].event, b->ev[i].event);
        assert_int_equal(a->ev[i].data_len, b->ev[i].data_len);
        assert_memory_equal(a->ev[i].data, b->ev[i].data, a->ev[i].data_len);
        assert_string_equal(a->ev[i].id, b->ev[i].id);
        assert_int_equal(a->ev[i].retry_ms, b->ev[i].retry_ms);
        assert_int_equal(a->ev[i].is_done, b->ev[i].is_done);
    }
}

/* A stream with every feature: BOM, CRLF/CR/LF, comments, fields, [DONE]. */
static const char representative[] = "\xEF\xBB\xBF: keep-alive comment\r\n"
                                     "retry: 2500\r\n"
                                     "id: 7\r\n"
                                     "event: delta\r\n"
                                     "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n"
                                     "\r\n"
                                     "data:lo\rdata:  two spaces\r\r"
                                     "data\n"
                                     "\n"
                                     "id\n"
                                     "data: after empty id\n\n"
                                     "data: [DONE]\n\n";

static void test_representative_stream(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_all(&r, representative, sizeof representative - 1, 0), 0);
    assert_int_equal(r.n, 5);
    assert_string_equal(r.ev[0].event, "delta");
    assert_string_equal(r.ev[0].id, "7");
    assert_int_equal(r.ev[0].retry_ms, 2500);
    assert_string_equal(r.ev[0].data, "{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}");
    assert_string_equal(r.ev[1].event, "");
    assert_string_equal(r.ev[1].data, "lo\n two spaces");
    assert_int_equal(r.ev[1].retry_ms, -1);
    assert_string_equal(r.ev[1].id, "7");
    assert_int_equal(r.ev[2].data_len, 0);
    assert_string_equal(r.ev[3].id, "");
    assert_string_equal(r.ev[3].data, "after empty id");
    assert_true(r.ev[4].is_done);
    assert_false(r.ev[3].is_done);
}

/* Every split into two chunks, and byte-by-byte, gives the one-chunk events. */
static void test_split_at_every_position(void **state)
{
    (void)state;
    const size_t len = sizeof representative - 1;
    recorder whole = {0};
    assert_int_equal(parse_all(&whole, representative, len, 0), 0);
    for (size_t cut = 0; cut <= len; cut++) {
        recorder r = {0};
        sky_sse_parser p;
        sky_sse_parser_init(&p, 0, record, &r);
        assert_int_equal(sky_sse_parser_feed(&p, representative, cut), 0);
        assert_int_equal(sky_sse_parser_feed(&p, representative + cut, len - cut), 0);
        assert_int_equal(sky_sse_parser_finish(&p), 0);
        sky_sse_parser_free(&p);
        assert_same_events(&whole, &r);
    }
    recorder bytes = {0};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, record, &bytes);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(sky_sse_parser_feed(&p, representative + i, 1), 0);
    assert_int_equal(sky_sse_parser_finish(&p), 0);
    sky_sse_parser_free(&p);
    assert_same_events(&whole, &bytes);
}

static void test_line_ends(void **state)
{
    (void)state;
    const char *streams[] = {"data: a\n\n", "data: a\r\n\r\n", "data: a\r\r", "data: a\r\n\n",
                             "data: a\n\r"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(streams); i++) {
        recorder r = {0};
        assert_int_equal(parse_str(&r, streams[i]), 0);
        assert_int_equal(r.n, 1);
        assert_string_equal(r.ev[0].data, "a");
    }
}

/* CR at the end of one chunk and LF at the start of the next: one line end, not two. */
static void test_crlf_split_across_chunks(void **state)
{
    (void)state;
    recorder r = {0};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, record, &r);
    assert_int_equal(sky_sse_parser_feed(&p, "data: a\r", 8), 0);
    assert_int_equal(sky_sse_parser_feed(&p, "\ndata: b\r", 9), 0);
    assert_int_equal(r.n, 0); /* had the LF counted as a blank line, "a" would be out */
    assert_int_equal(sky_sse_parser_feed(&p, "", 0), 0);
    assert_int_equal(sky_sse_parser_feed(&p, "\n\r", 2), 0);
    assert_int_equal(sky_sse_parser_feed(&p, "\n", 1), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].data, "a\nb");
    sky_sse_parser_free(&p);
}

/* A CR alone at a chunk end followed by another line: CR still ends the line. */
static void test_lone_cr_then_text(void **state)
{
    (void)state;
    recorder r = {0};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, record, &r);
    assert_int_equal(sky_sse_parser_feed(&p, "data: a\r", 8), 0);
    assert_int_equal(sky_sse_parser_feed(&p, "\r", 1), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].data, "a");
    sky_sse_parser_free(&p);
}

static void test_bom_skipped_only_at_start(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, "\xEF\xBB\xBF"
                                   "data: x\n\n\xEF\xBB\xBF"
                                   "data: y\n\n"),
                     0);
    /* The second BOM is part of a field name, so that line is ignored. */
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].data, "x");
}

static void test_bom_split_across_chunks(void **state)
{
    (void)state;
    recorder r = {0};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, record, &r);
    assert_int_equal(sky_sse_parser_feed(&p, "\xEF", 1), 0);
    assert_int_equal(sky_sse_parser_feed(&p, "\xBB", 1), 0);
    assert_int_equal(sky_sse_parser_feed(&p,
                                         "\xBF"
                                         "da",
                                         3),
                     0);
    assert_int_equal(sky_sse_parser_feed(&p, "ta: z\n\n", 7), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].data, "z");
    sky_sse_parser_free(&p);
}

/* A prefix of a BOM that turns out not to be one stays in the first line. */
static void test_partial_bom_is_text(void **state)
{
    (void)state;
    recorder r = {0};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, record, &r);
    assert_int_equal(sky_sse_parser_feed(&p, "\xEF\xBB", 2), 0);
    assert_int_equal(sky_sse_parser_feed(&p, "data: q\n\ndata: ok\n\n", 19), 0);
    assert_int_equal(r.n, 1); /* "\xEF\xBBdata" is an unknown field */
    assert_string_equal(r.ev[0].data, "ok");
    sky_sse_parser_free(&p);
}

static void test_comments_ignored(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, ":\n: ping\ndata: a\n:data: b\n\n: only a comment\n\n"), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].data, "a");
}

static void test_field_value_split(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, "data:no space\ndata:  two\ndata: a:b: c\ndata\ndata:\n\n"), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].data, "no space\n two\na:b: c\n\n"); /* two empty lines */
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, "foo: bar\nDATA: upper\ndata : spaced\ndata: kept\n\n"), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].data, "kept");
}

static void test_id_persists(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, "id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\n"), 0);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.ev[0].id, "1");
    assert_string_equal(r.ev[1].id, "1");
    /* An id in a block without data still sets the last event id. */
    assert_string_equal(r.ev[2].id, "2");
}

static void test_id_with_nul_ignored(void **state)
{
    (void)state;
    static const char text[] = "id: 5\ndata: a\n\nid: 6\0x\ndata: b\n\n";
    recorder r = {0};
    assert_int_equal(parse_all(&r, text, sizeof text - 1, 0), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ev[1].id, "5");
}

static void test_retry(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, "retry: 1000\ndata: a\n\n"
                                   "data: b\n\n"
                                   "retry: 12a\ndata: c\n\n"
                                   "retry: -5\ndata: d\n\n"
                                   "retry:\ndata: e\n\n"
                                   "retry: 1.5\ndata: f\n\n"
                                   "retry: 99999999999999999999999\ndata: g\n\n"
                                   "retry:0\ndata: h\n\n"),
                     0);
    assert_int_equal(r.n, 8);
    assert_int_equal(r.ev[0].retry_ms, 1000);
    for (size_t i = 1; i < 7; i++)
        assert_int_equal(r.ev[i].retry_ms, -1); /* not set in this block, or not digits */
    assert_int_equal(r.ev[7].retry_ms, 0);
}

static void test_event_type_reset_after_dispatch(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, "event: a\nevent: b\ndata: 1\n\ndata: 2\n\n"), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ev[0].event, "b");
    assert_string_equal(r.ev[1].event, "");
}

/* A blank line with no data resets the block: its event type must not leak. */
static void test_no_dispatch_without_data(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, "\n\n\nevent: lost\nretry: 5\n\ndata: x\n\n"), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].event, "");
    assert_int_equal(r.ev[0].retry_ms, -1);
}

static void test_done_marker(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(
        parse_str(&r, "data: [DONE]\n\ndata: [DONE] \n\ndata:[DONE]\n\ndata: [DONE]\ndata:\n\n"),
        0);
    assert_int_equal(r.n, 4);
    assert_true(r.ev[0].is_done);
    assert_false(r.ev[1].is_done);
    assert_true(r.ev[2].is_done);
    assert_false(r.ev[3].is_done); /* "[DONE]\n" is not exactly "[DONE]" */
}

static void test_finish_discards_unfinished_event(void **state)
{
    (void)state;
    recorder r = {0};
    assert_int_equal(parse_str(&r, "data: a\n\ndata: b\n"), 0);
    assert_int_equal(r.n, 1);
    recorder r2 = {0};
    assert_int_equal(parse_str(&r2, "data: a\n\ndata: unterminated"), 0);
    assert_int_equal(r2.n, 1);
    assert_string_equal(r2.ev[0].data, "a");
}

/* finish() processes the last line: past the cap it reports SKY_ETOOBIG. */
static void test_finish_processes_pending_line(void **state)
{
    (void)state;
    recorder r = {0};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 10, record, &r);
    assert_int_equal(sky_sse_parser_feed(&p, "data:12345\n", 11), 0);
    assert_int_equal(sky_sse_parser_feed(&p, "data:12345", 10), 0);
    /* Only the last line makes the data ("12345\n12345", 11 bytes) pass the cap. */
    assert_int_equal(sky_sse_parser_finish(&p), SKY_ETOOBIG);
    assert_int_equal(r.n, 0);
    sky_sse_parser_free(&p);
}

static void test_line_cap(void **state)
{
    (void)state;
    char line[64];
    memset(line, 'x', sizeof line);
    memcpy(line, "data:", 5);
    recorder r = {0};
    /* A line of exactly the cap is fine, one byte more is not, in one chunk or split. */
    assert_int_equal(parse_all(&r, line, 16, 16), 0);
    memcpy(line + 16, "\n\n", 2);
    assert_int_equal(parse_all(&r, line, 18, 16), 0);
    assert_int_equal(r.n, 1);
    memcpy(line + 16, "x\n\n", 3);
    assert_int_equal(parse_all(&r, line, 19, 16), SKY_ETOOBIG);
    sky_sse_parser p;
    sky_sse_parser_init(&p, 16, record, &r);
    assert_int_equal(sky_sse_parser_feed(&p, line, 10), 0);
    assert_int_equal(sky_sse_parser_feed(&p, line + 10, 9), SKY_ETOOBIG);
    /* The stream lost bytes, so the parser stays failed. */
    assert_int_equal(sky_sse_parser_feed(&p, "data: a\n\n", 9), SKY_ETOOBIG);
    assert_int_equal(sky_sse_parser_finish(&p), SKY_ETOOBIG);
    sky_sse_parser_free(&p);
    assert_int_equal(r.n, 1);
}

static void test_data_cap(void **state)
{
    (void)state;
    recorder r = {0};
    /* Each line fits a cap of 10, the joined data "12345\n12345" (11) does not. */
    assert_int_equal(parse_all(&r, "data:12345\ndata:12345\n\n", 24, 10), SKY_ETOOBIG);
    assert_int_equal(r.n, 0);
    /* Joined data of exactly the cap is dispatched. */
    assert_int_equal(parse_all(&r, "data:1234\ndata:12345\n\n", 23, 10), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.ev[0].data, "1234\n12345");
}

static void test_callback_stop(void **state)
{
    (void)state;
    recorder r = {.stop_after = 1};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, record, &r);
    assert_int_equal(sky_sse_parser_feed(&p, "data: a\n\ndata: b\n\n", 18), SKY_ECANCELED);
    assert_int_equal(r.n, 1);
    assert_int_equal(sky_sse_parser_feed(&p, "data: c\n\n", 9), SKY_ECANCELED);
    assert_int_equal(sky_sse_parser_finish(&p), SKY_ECANCELED);
    assert_int_equal(r.n, 1);
    assert_int_equal(p.events, 1);
    sky_sse_parser_free(&p);
}

static void test_events_counted(void **state)
{
    (void)state;
    recorder r = {0};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, record, &r);
    assert_int_equal(sky_sse_parser_feed(&p, "data: a\n\n\n\ndata: b\n\n", 20), 0);
    assert_int_equal(p.events, 2);
    sky_sse_parser_free(&p);
}

/* A long stream of chat chunks through small chunks: nothing leaks or drifts. */
static void test_many_events_small_chunks(void **state)
{
    (void)state;
    char text[4096];
    size_t len = 0;
    for (int i = 0; i < 20; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "id: %d\r\ndata: {\"n\":%d}\r\n\r\n",
                                i, i);
    recorder r = {0};
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, record, &r);
    for (size_t off = 0; off < len; off += 7) {
        size_t n = len - off < 7 ? len - off : 7;
        assert_int_equal(sky_sse_parser_feed(&p, text + off, n), 0);
    }
    assert_int_equal(sky_sse_parser_finish(&p), 0);
    sky_sse_parser_free(&p);
    assert_int_equal(r.n, 20);
    assert_string_equal(r.ev[19].data, "{\"n\":19}");
    assert_string_equal(r.ev[19].id, "19");
}

/* The parser works without a callback (the count still moves). */
static void test_null_callback(void **state)
{
    (void)state;
    sky_sse_parser p;
    sky_sse_parser_init(&p, 0, NULL, NULL);
    assert_int_equal(sky_sse_parser_feed(&p, "data: a\n\n", 9), 0);
    assert_int_equal(sky_sse_parser_finish(&p), 0);
    assert_int_equal(p.events, 1);
    sky_sse_parser_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_representative_stream),
        cmocka_unit_test(test_split_at_every_position),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_crlf_split_across_chunks),
        cmocka_unit_test(test_lone_cr_then_text),
        cmocka_unit_test(test_bom_skipped_only_at_start),
        cmocka_unit_test(test_bom_split_across_chunks),
        cmocka_unit_test(test_partial_bom_is_text),
        cmocka_unit_test(test_comments_ignored),
        cmocka_unit_test(test_field_value_split),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_id_persists),
        cmocka_unit_test(test_id_with_nul_ignored),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_event_type_reset_after_dispatch),
        cmocka_unit_test(test_no_dispatch_without_data),
        cmocka_unit_test(test_done_marker),
        cmocka_unit_test(test_finish_discards_unfinished_event),
        cmocka_unit_test(test_finish_processes_pending_line),
        cmocka_unit_test(test_line_cap),
        cmocka_unit_test(test_data_cap),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_events_counted),
        cmocka_unit_test(test_many_events_small_chunks),
        cmocka_unit_test(test_null_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
