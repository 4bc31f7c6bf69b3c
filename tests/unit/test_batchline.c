/* Tests for batch lines: input lines into requests, results into output records. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/batchline.h"
#include "skyio/json.h"
#include "jobs/batchline_internal.h"

#define CHAT_BODY                                                                                  \
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define CHAT_LINE                                                                                  \
    "{\"custom_id\":\"req-1\",\"method\":\"POST\",\"url\":\"/v1/chat/"                             \
    "completions\",\"body\":" CHAT_BODY "}"

/* ---- helpers ---- */

static void parse_ok(const char *line, uint64_t line_no, sky_batchline_request *req)
{
    sky_batchline_error e;
    int rc = sky_batchline_parse(sky_span_cstr(line), line_no, NULL, req, &e);
    if (rc != 0)
        fail_msg("line refused: %s", e.err.message);
    assert_int_equal(e.err.code, 0);
}

/* Parse a bad line; check the code, the record code and the exact message. */
static void expect_error(const char *line, uint64_t line_no, int code, const char *record_code,
                         const char *message, sky_batchline_error *out)
{
    sky_batchline_request req;
    sky_batchline_error e;
    int rc = sky_batchline_parse(sky_span_cstr(line), line_no, NULL, &req, &e);
    assert_int_equal(rc, code);
    assert_int_equal(e.err.code, code);
    assert_string_equal(e.err.service_code, record_code);
    /* A message ending in '*' is a prefix: jansson's own texts vary by version. */
    size_t n = strlen(message);
    if (n && message[n - 1] == '*')
        assert_memory_equal(e.err.message, message, n - 1);
    else
        assert_string_equal(e.err.message, message);
    assert_int_equal(e.line, line_no);
    assert_null(req.custom_id);
    assert_null(req.body);
    if (out)
        *out = e;
}

static json_t *load(const sky_buf *b)
{
    json_error_t jerr;
    json_t *j = json_loadb(b->data, b->len, 0, &jerr);
    if (j == NULL)
        fail_msg("record is not JSON: %s", jerr.text);
    return j;
}

static void assert_keys(const json_t *obj, const char *const *keys, size_t n)
{
    assert_true(json_is_object(obj));
    assert_int_equal(json_object_size(obj), n);
    for (size_t i = 0; i < n; i++)
        assert_non_null(json_object_get(obj, keys[i]));
}

static const char *const k_record_keys[] = {"id", "custom_id", "response", "error"};
static const char *const k_response_keys[] = {"status_code", "request_id", "body"};

/* ---- input lines: good ---- */

static void test_parse_chat_line(void **state)
{
    (void)state;
    sky_batchline_request req;
    parse_ok(CHAT_LINE "\r\n", 4, &req);
    assert_string_equal(req.custom_id, "req-1");
    assert_string_equal(req.url, "/v1/chat/completions");
    assert_string_equal(req.body, CHAT_BODY);
    assert_int_equal(req.body_len, strlen(CHAT_BODY));
    assert_string_equal(req.model, "gpt-4o-mini");
    assert_int_equal(req.line, 4);
    assert_int_equal(req.prompt_chars, 2);
    assert_int_equal(req.max_tokens, 0);
    assert_int_equal(req.token_estimate, 1);
    sky_batchline_request_free(&req);
    assert_null(req.custom_id);
    sky_batchline_request_free(&req); /* twice is harmless */
}

static void test_parse_sends_the_body_as_written(void **state)
{
    (void)state;
    sky_batchline_request req;
    parse_ok("{ \"body\" : { \"z\" : 1 , \"a\" : [ 1 , 2 ] , \"input\" : \"x\" } , \"url\" : "
             "\"/v1/embeddings\" , \"method\" : \"POST\" , \"custom_id\" : \"e\" , \"extra\": 1 }",
             1, &req);
    /* the line's own bytes, not a tree printed again: nothing re-encoded, nothing lost */
    assert_string_equal(req.body, "{ \"z\" : 1 , \"a\" : [ 1 , 2 ] , \"input\" : \"x\" }");
    assert_int_equal(req.body_len, strlen(req.body));
    assert_string_equal(req.url, "/v1/embeddings");
    assert_null(req.model);
    sky_batchline_request_free(&req);
}

/* Both readers on @p line: the same verdict and request; bodies the same JSON value. */
static void expect_same_as_tree(const char *line)
{
    sky_batchline_request fast, tree;
    sky_batchline_error fe, te;
    int frc = sky_batchline_parse(sky_span_cstr(line), 2, NULL, &fast, &fe);
    int trc = sky__batchline_parse_tree(sky_span_cstr(line), 2, NULL, &tree, &te);
    if (frc != trc)
        fail_msg("%s: fast %d, tree %d", line, frc, trc);
    if (frc != 0) {
        assert_string_equal(fe.err.message, te.err.message);
        return;
    }
    assert_string_equal(fast.custom_id, tree.custom_id);
    assert_ptr_equal(fast.url, tree.url);
    if (fast.model || tree.model)
        assert_string_equal(fast.model ? fast.model : "(null)", tree.model ? tree.model : "(null)");
    if (fast.prompt_chars != tree.prompt_chars || fast.max_tokens != tree.max_tokens)
        fail_msg("%s: chars %llu/%llu, max_tokens %llu/%llu", line,
                 (unsigned long long)fast.prompt_chars, (unsigned long long)tree.prompt_chars,
                 (unsigned long long)fast.max_tokens, (unsigned long long)tree.max_tokens);
    assert_int_equal(fast.token_estimate, tree.token_estimate);
    json_t *a = json_loads(fast.body, JSON_ALLOW_NUL, NULL);
    json_t *b = json_loads(tree.body, JSON_ALLOW_NUL, NULL);
    assert_true(a && b && json_equal(a, b));
    json_decref(a);
    json_decref(b);
    sky_batchline_request_free(&fast);
    sky_batchline_request_free(&tree);
}

#define LINE(body)                                                                                 \
    "{\"custom_id\":\"c\",\"method\":\"POST\",\"url\":\"/v1/responses\",\"body\":" body "}"

static void test_fast_reader_agrees_with_jansson(void **state)
{
    (void)state;
    static const char *const lines[] = {
        CHAT_LINE,
        /* the estimate: parts, items, depth limits, integers as tokens, reals not */
        LINE("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
             "\"text\":\"h\u00e9llo\"},{\"text\":[\"not\",\"counted\"]}]}]}"),
        LINE("{\"input\":[[[[[\"five deep\"]]]],[[[\"four\"]]],1,2.5,true,null]}"),
        LINE("{\"messages\":[{\"content\":{\"content\":{\"content\":{\"content\":{\"text\":\"x\"}}}"
             "}}]}"),
        LINE("{\"prompt\":\"abc\",\"instructions\":\"be brief\",\"max_output_tokens\":7}"),
        LINE("{\"instructions\":[\"not a string\"],\"prompt\":[1,2,3]}"),
        LINE("{\"max_completion_tokens\":9,\"max_tokens\":-1,\"max_output_tokens\":3}"),
        LINE("{\"max_tokens\":2.0,\"max_completion_tokens\":12}"),
        LINE("{\"model\":\"m\\\"q\\u00e9\",\"stream\":false,\"temperature\":0.1,\"n\":1e300}"),
        /* escapes: a surrogate pair is one character to both; the rest go to jansson */
        LINE("{\"input\":\"\\ud83d\\ude00 smile\"}"),
        LINE("{\"input\":\"\\ud83d alone\"}"),
        LINE("{\"input\":\"\\ude00 alone\"}"),
        LINE("{\"input\":\"nul \\u0000 inside\"}"),
        LINE("{\"input\":\"\\\\u0000 is text\"}"),
        /* what the full reader decides: duplicates (the last wins), errors */
        LINE("{\"model\":\"a\",\"model\":\"b\"}"),
        LINE("{\"messages\":[{\"content\":\"aa\",\"content\":\"bbbb\"}]}"),
        "{\"custom_id\":\"a\",\"custom_id\":\"b\",\"method\":\"POST\",\"url\":\"/v1/"
        "embeddings\",\"body\":{}}",
        LINE("{\"stream\":true}"),
        LINE("[]"),
        LINE("{\"n\":99999999999999999999}"),
        LINE("{\"n\":1e999}"),
        LINE("{\"a\":1}\v"),
        LINE("{\"s\":\"\xC0\x80 overlong\"}"),
        LINE("{\"s\":\"\xED\xA0\x80 surrogate\"}"),
        LINE("{\"a\":1} trailing"),
        "{\"custom_id\":\"\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{}}",
        "{\"custom_id\":\"x\",\"method\":\"GET\",\"url\":\"/v1/embeddings\",\"body\":{}}",
        "{\"custom_id\":\"x\",\"method\":\"POST\",\"url\":\"/v2/x\",\"body\":{}}",
        "{\"custom_id\":7,\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{}}",
        "{\"custom_id\":\"x\",\"method\":\"POST\",\"url\":\"embeddings\"}",
        "{\"custom_id\":\"x\",\"method\":\"POST\",\"url\":\"/embeddings\",\"body\":{}}",
        "\"just a string\"",
        CHAT_LINE " \"an unterminated tail",
        CHAT_LINE " tru",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        expect_same_as_tree(lines[i]);
}

/* sky__batchline_scan's verdict on @p line: 0 read it, 1 left it to the full reader. */
static int scan_verdict(const char *line)
{
    sky_batchline_request req;
    int rc = sky__batchline_scan(sky_span_cstr(line), &req);
    if (rc == 0)
        sky_batchline_request_free(&req);
    else
        assert_null(req.custom_id);
    return rc;
}

static void test_fast_reader_takes_and_leaves(void **state)
{
    (void)state;
    assert_int_equal(scan_verdict(CHAT_LINE), 0);
    assert_int_equal(scan_verdict(LINE("{\"input\":\"\\ud83d\\ude00 \\n\\\"\",\"t\":0.7}")), 0);
    assert_int_equal(scan_verdict(LINE("{\"input\":\"\\ud83d alone\"}")), 1);
    assert_int_equal(scan_verdict(LINE("{\"input\":\"\\u0000\"}")), 1);
    assert_int_equal(scan_verdict(LINE("{\"model\":\"a\",\"model\":\"b\"}")), 1);
    assert_int_equal(scan_verdict(LINE("{\"stream\":true}")), 1);
    assert_int_equal(scan_verdict(LINE("{\"n\":1e999}")), 1);
    assert_int_equal(scan_verdict(LINE("{\"a\":1} x")), 1);
}

static void test_fast_reader_counts_what_jansson_counts(void **state)
{
    (void)state;
    sky_batchline_request req;
    /* "héllo" is 5 characters; [[[[["five deep"]]]]] is past the estimate's depth */
    parse_ok(LINE("{\"input\":[\"h\u00e9llo\",[[[[\"five deep\"]]]],1],\"max_tokens\":10}"), 2,
             &req);
    assert_int_equal(req.prompt_chars, 5 + 4);
    assert_int_equal(req.max_tokens, 10);
    assert_int_equal(req.token_estimate, 3 + 10);
    sky_batchline_request_free(&req);
}

static void test_parse_every_url(void **state)
{
    (void)state;
    const char *urls[] = {"/v1/chat/completions", "/v1/embeddings", "/v1/completions",
                          "/v1/responses", "/v1/moderations"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(urls); i++) {
        char line[256];
        snprintf(line, sizeof line,
                 "{\"custom_id\":\"c\",\"method\":\"POST\",\"url\":\"%s\",\"body\":{}}", urls[i]);
        sky_batchline_request req;
        parse_ok(line, 1, &req);
        assert_string_equal(req.url, urls[i]);
        assert_string_equal(req.body, "{}");
        sky_batchline_request_free(&req);
        /* Azure OpenAI's batch files leave out the /v1: the same request */
        snprintf(line, sizeof line,
                 "{\"custom_id\":\"c\",\"method\":\"POST\",\"url\":\"%s\",\"body\":{}}",
                 urls[i] + 3);
        parse_ok(line, 2, &req);
        assert_string_equal(req.url, urls[i]);
        sky_batchline_request_free(&req);
    }
}

static void test_parse_custom_id_at_limit(void **state)
{
    (void)state;
    char line[SKY_BATCHLINE_CUSTOM_ID_MAX + 128];
    char id[SKY_BATCHLINE_CUSTOM_ID_MAX + 1];
    memset(id, 'x', SKY_BATCHLINE_CUSTOM_ID_MAX);
    id[SKY_BATCHLINE_CUSTOM_ID_MAX] = '\0';
    snprintf(line, sizeof line,
             "{\"custom_id\":\"%s\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{}}",
             id);
    sky_batchline_request req;
    parse_ok(line, 1, &req);
    assert_int_equal(strlen(req.custom_id), SKY_BATCHLINE_CUSTOM_ID_MAX);
    sky_batchline_request_free(&req);
}

static void test_parse_bom_only_on_line_one(void **state)
{
    (void)state;
    sky_batchline_request req;
    parse_ok("\xEF\xBB\xBF" CHAT_LINE, 1, &req);
    assert_string_equal(req.custom_id, "req-1");
    sky_batchline_request_free(&req);
    sky_batchline_error e;
    assert_int_equal(
        sky_batchline_parse(sky_span_cstr("\xEF\xBB\xBF" CHAT_LINE), 2, NULL, &req, &e), SKY_EJSON);
    assert_string_equal(e.err.service_code, "invalid_json");
}

static void test_parse_span_not_terminated(void **state)
{
    (void)state;
    const char text[] = CHAT_LINE "garbage";
    sky_batchline_request req;
    sky_batchline_error e;
    assert_int_equal(sky_batchline_parse(sky_span_make(text, strlen(CHAT_LINE)), 1, NULL, &req, &e),
                     0);
    assert_string_equal(req.custom_id, "req-1");
    sky_batchline_request_free(&req);
}

/* ---- input lines: blank and too long ---- */

static void test_blank_lines_are_skipped(void **state)
{
    (void)state;
    const char *blanks[] = {"", " ", "\t  \t", "\r", "\r\n", " \n", "\v\f"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(blanks); i++) {
        sky_batchline_request req;
        sky_batchline_error e;
        assert_int_equal(sky_batchline_parse(sky_span_cstr(blanks[i]), 3, NULL, &req, &e),
                         SKY_BATCHLINE_BLANK);
        assert_int_equal(e.err.code, 0);
        assert_null(req.custom_id);
        assert_int_equal(sky_batchline_text_parse(sky_span_cstr(blanks[i]), 3, NULL, &req, &e),
                         SKY_BATCHLINE_BLANK);
        assert_int_equal(e.err.code, 0);
        assert_null(req.custom_id);
    }
    sky_batchline_request req;
    sky_batchline_error e;
    assert_int_equal(sky_batchline_parse(sky_span_make(NULL, 0), 1, NULL, &req, &e),
                     SKY_BATCHLINE_BLANK);
}

static void test_line_too_long_default(void **state)
{
    (void)state;
    size_t n = SKY_BATCHLINE_MAX_DEFAULT + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n); /* blank, but the size is checked first */
    sky_batchline_request req;
    sky_batchline_error e;
    assert_int_equal(sky_batchline_parse(sky_span_make(big, n), 12, NULL, &req, &e), SKY_ETOOBIG);
    assert_string_equal(e.err.service_code, "line_too_long");
    assert_string_equal(e.err.message, "line 12: line is longer than 16777216 bytes");
    assert_int_equal(sky_batchline_parse(sky_span_make(big, n - 1), 12, NULL, &req, &e),
                     SKY_BATCHLINE_BLANK);
    free(big);
}

static void test_line_too_long_option(void **state)
{
    (void)state;
    sky_batchline_options opts;
    sky_batchline_options_init(&opts);
    assert_int_equal(opts.max_line_bytes, SKY_BATCHLINE_MAX_DEFAULT);
    opts.max_line_bytes = strlen(CHAT_LINE);
    sky_batchline_request req;
    sky_batchline_error e;
    assert_int_equal(sky_batchline_parse(sky_span_cstr(CHAT_LINE), 5, &opts, &req, &e), 0);
    sky_batchline_request_free(&req);
    assert_int_equal(sky_batchline_parse(sky_span_cstr(CHAT_LINE " "), 5, &opts, &req, &e),
                     SKY_ETOOBIG);
    assert_null(req.custom_id);
    assert_int_equal(e.has_custom_id, 0); /* nothing was parsed */
    opts.max_line_bytes = 4;
    assert_int_equal(sky_batchline_text_parse(sky_span_cstr("hello"), 6, &opts, &req, &e),
                     SKY_ETOOBIG);
    assert_string_equal(e.err.message, "line 6: line is longer than 4 bytes");
    assert_int_equal(sky_batchline_text_parse(sky_span_cstr("hell\r\n"), 6, &opts, &req, &e), 0);
    sky_batchline_request_free(&req);
}

/* ---- input lines: every error reason ---- */

static void test_error_not_json(void **state)
{
    (void)state;
    sky_batchline_error e;
    expect_error("{\"custom_id\": sk-live-SECRET}", 17, SKY_EJSON, "invalid_json",
                 "line 17: not valid JSON (column 16: *", &e);
    assert_null(strstr(e.err.message, "SECRET"));
    assert_null(strstr(e.err.message, "sk-"));
    assert_null(strstr(e.err.message, " near "));
    assert_int_equal(e.has_custom_id, 0);
    expect_error("{\"custom_id\":\"a\"", 2, SKY_EJSON, "invalid_json",
                 "line 2: not valid JSON (column 16: *", NULL);
    expect_error("{} {}", 3, SKY_EJSON, "invalid_json", "line 3: not valid JSON (column 4: *",
                 NULL);
}

static void test_error_not_object(void **state)
{
    (void)state;
    expect_error("[1,2]", 8, SKY_EINVAL, "invalid_input", "line 8: not a JSON object", NULL);
    expect_error("\"sk-SECRET\"", 9, SKY_EINVAL, "invalid_input", "line 9: not a JSON object",
                 NULL);
    expect_error("42", 10, SKY_EINVAL, "invalid_input", "line 10: not a JSON object", NULL);
}

static void test_error_custom_id(void **state)
{
    (void)state;
    sky_batchline_error e;
    expect_error("{\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{}}", 17, SKY_EINVAL,
                 "invalid_input", "line 17: lacks custom_id", &e);
    assert_string_equal(e.param, "custom_id");
    assert_int_equal(e.has_custom_id, 0);
    expect_error("{\"custom_id\":7,\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{}}", 3,
                 SKY_EINVAL, "invalid_input", "line 3: custom_id is not a string", NULL);
    expect_error("{\"custom_id\":\"\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{}}",
                 4, SKY_EINVAL, "invalid_input", "line 4: custom_id is empty", NULL);
    expect_error("{\"custom_id\":\"a\\u0000b\",\"method\":\"POST\",\"url\":\"/v1/embeddings\","
                 "\"body\":{}}",
                 5, SKY_EINVAL, "invalid_input", "line 5: custom_id holds a NUL character", NULL);
}

static void test_error_custom_id_too_long(void **state)
{
    (void)state;
    char line[SKY_BATCHLINE_CUSTOM_ID_MAX + 128];
    char id[SKY_BATCHLINE_CUSTOM_ID_MAX + 2];
    memset(id, 'x', SKY_BATCHLINE_CUSTOM_ID_MAX + 1);
    id[SKY_BATCHLINE_CUSTOM_ID_MAX + 1] = '\0';
    snprintf(line, sizeof line, "{\"custom_id\":\"%s\",\"method\":\"POST\"}", id);
    sky_batchline_error e;
    expect_error(line, 6, SKY_EINVAL, "invalid_input", "line 6: custom_id is longer than 512 bytes",
                 &e);
    assert_int_equal(e.has_custom_id, 0);
}

static void test_error_method(void **state)
{
    (void)state;
    sky_batchline_error e;
    expect_error("{\"custom_id\":\"m1\",\"url\":\"/v1/embeddings\",\"body\":{}}", 21, SKY_EINVAL,
                 "invalid_input", "line 21: lacks method", &e);
    /* the custom_id is known once read, so the error record can carry it */
    assert_int_equal(e.has_custom_id, 1);
    assert_string_equal(e.custom_id, "m1");
    assert_string_equal(e.param, "method");
    expect_error("{\"custom_id\":\"m1\",\"method\":[],\"url\":\"/v1/embeddings\",\"body\":{}}", 22,
                 SKY_EINVAL, "invalid_input", "line 22: method is not a string", NULL);
    expect_error("{\"custom_id\":\"m1\",\"method\":\"GET\",\"url\":\"/v1/embeddings\",\"body\":{}}",
                 23, SKY_EINVAL, "invalid_input", "line 23: unsupported method (only POST)", NULL);
    expect_error(
        "{\"custom_id\":\"m1\",\"method\":\"post\",\"url\":\"/v1/embeddings\",\"body\":{}}", 24,
        SKY_EINVAL, "invalid_input", "line 24: unsupported method (only POST)", NULL);
}

static void test_error_url(void **state)
{
    (void)state;
    sky_batchline_error e;
    expect_error("{\"custom_id\":\"u\",\"method\":\"POST\",\"body\":{}}", 30, SKY_EINVAL,
                 "invalid_input", "line 30: lacks url", &e);
    assert_string_equal(e.param, "url");
    expect_error("{\"custom_id\":\"u\",\"method\":\"POST\",\"url\":null,\"body\":{}}", 31,
                 SKY_EINVAL, "invalid_input", "line 31: url is not a string", NULL);
    expect_error("{\"custom_id\":\"u\",\"method\":\"POST\",\"url\":\"/v1/images/sk-SECRET\","
                 "\"body\":{}}",
                 32, SKY_EINVAL, "invalid_input", "line 32: unsupported url", NULL);
    expect_error(
        "{\"custom_id\":\"u\",\"method\":\"POST\",\"url\":\"/v2/chat/completions\",\"body\":{}}",
        33, SKY_EINVAL, "invalid_input", "line 33: unsupported url", NULL);
    expect_error(
        "{\"custom_id\":\"u\",\"method\":\"POST\",\"url\":\"/v1/embeddings/\",\"body\":{}}", 34,
        SKY_EINVAL, "invalid_input", "line 34: unsupported url", NULL);
}

static void test_error_body(void **state)
{
    (void)state;
    sky_batchline_error e;
    expect_error("{\"custom_id\":\"b\",\"method\":\"POST\",\"url\":\"/v1/embeddings\"}", 40,
                 SKY_EINVAL, "invalid_input", "line 40: lacks body", &e);
    assert_string_equal(e.param, "body");
    assert_string_equal(e.custom_id, "b");
    expect_error("{\"custom_id\":\"b\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":[]}",
                 41, SKY_EINVAL, "invalid_input", "line 41: body is not a JSON object", NULL);
    expect_error("{\"custom_id\":\"b\",\"method\":\"POST\",\"url\":\"/v1/embeddings\","
                 "\"body\":\"{}\"}",
                 42, SKY_EINVAL, "invalid_input", "line 42: body is not a JSON object", NULL);
    expect_error(
        "{\"custom_id\":\"b\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":null}", 43,
        SKY_EINVAL, "invalid_input", "line 43: body is not a JSON object", NULL);
    /* a streamed reply cannot be recorded whole: refused before it is paid for */
    expect_error("{\"custom_id\":\"s\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                 "\"body\":{\"model\":\"m\",\"stream\":true}}",
                 44, SKY_EINVAL, "invalid_input",
                 "line 44: \"stream\": true is not supported in a batch (each result is "
                 "recorded whole): remove it or set it to false",
                 &e);
    assert_string_equal(e.param, "body.stream");
    assert_string_equal(e.custom_id, "s");
}

static void test_stream_false_is_fine(void **state)
{
    (void)state;
    sky_batchline_request req;
    sky_batchline_error e;
    const char *line = "{\"custom_id\":\"s\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                       "\"body\":{\"model\":\"m\",\"stream\":false}}";
    assert_int_equal(sky_batchline_parse(sky_span_cstr(line), 1, NULL, &req, &e), 0);
    sky_batchline_request_free(&req);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    sky_batchline_request req;
    sky_batchline_error e;
    assert_int_equal(sky_batchline_parse(sky_span_cstr(CHAT_LINE), 1, NULL, NULL, &e), SKY_EINVAL);
    assert_int_equal(sky_batchline_parse(sky_span_cstr(CHAT_LINE), 1, NULL, &req, NULL),
                     SKY_EINVAL);
    assert_int_equal(sky_batchline_text_parse(sky_span_make(NULL, 3), 1, NULL, &req, &e),
                     SKY_EINVAL);
}

/* ---- the --text mode ---- */

static void text_ok(const char *line, uint64_t n, const sky_batchline_options *opts,
                    sky_batchline_request *req)
{
    sky_batchline_error e;
    int rc = sky_batchline_text_parse(sky_span_cstr(line), n, opts, req, &e);
    if (rc != 0)
        fail_msg("text line refused: %s", e.err.message);
}

static void test_text_plain(void **state)
{
    (void)state;
    sky_batchline_request req;
    text_ok("Say \"hi\" {not json}", 7, NULL, &req);
    assert_string_equal(req.custom_id, "line-7");
    assert_string_equal(req.url, "/v1/chat/completions");
    assert_string_equal(
        req.body, "{\"messages\":[{\"role\":\"user\",\"content\":\"Say \\\"hi\\\" {not json}\"}]}");
    assert_null(req.model);
    assert_int_equal(req.line, 7);
    assert_int_equal(req.prompt_chars, 19);
    assert_int_equal(req.token_estimate, 5);
    sky_batchline_request_free(&req);
}

static void test_text_all_options(void **state)
{
    (void)state;
    sky_batchline_options opts;
    sky_batchline_options_init(&opts);
    opts.model = "gpt-4o-mini";
    opts.system = "be brief";
    opts.has_temperature = 1;
    opts.temperature = 0.5;
    opts.max_tokens = 100;
    sky_batchline_request req;
    text_ok("hi there", 12, &opts, &req);
    assert_string_equal(req.custom_id, "line-12");
    assert_string_equal(req.body, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\","
                                  "\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi "
                                  "there\"}],\"temperature\":0.5,\"max_tokens\":100}");
    assert_string_equal(req.model, "gpt-4o-mini");
    assert_int_equal(req.prompt_chars, 16); /* system and user text */
    assert_int_equal(req.max_tokens, 100);
    assert_int_equal(req.token_estimate, 104);
    sky_batchline_request_free(&req);
}

static void test_text_some_options(void **state)
{
    (void)state;
    sky_batchline_options opts;
    sky_batchline_options_init(&opts);
    opts.model = "m";
    opts.has_temperature = 1;
    opts.temperature = 0.0;
    sky_batchline_request req;
    text_ok("q", 1, &opts, &req);
    assert_string_equal(req.body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                                  "\"q\"}],\"temperature\":0.0}");
    sky_batchline_request_free(&req);
    opts.has_temperature = 0;
    opts.system = "";
    opts.max_tokens = 5;
    text_ok("q", 2, &opts, &req);
    assert_string_equal(req.body, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":"
                                  "\"\"},{\"role\":\"user\",\"content\":\"q\"}],\"max_tokens\":5}");
    assert_int_equal(req.token_estimate, 6);
    sky_batchline_request_free(&req);
}

static void test_text_crlf(void **state)
{
    (void)state;
    sky_batchline_request req;
    text_ok("hello\r", 1, NULL, &req);
    assert_string_equal(req.body, "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}");
    sky_batchline_request_free(&req);
    text_ok("hello\r\n", 2, NULL, &req);
    assert_string_equal(req.body, "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}");
    sky_batchline_request_free(&req);
    /* only the line end goes; inner CR and trailing spaces stay */
    text_ok("a\rb  \r\n", 3, NULL, &req);
    assert_string_equal(req.body, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\rb  \"}]}");
    sky_batchline_request_free(&req);
}

static void test_text_utf8(void **state)
{
    (void)state;
    sky_batchline_request req;
    text_ok("h\xC3\xA9llo \xF0\x9F\x98\x80", 1, NULL, &req);
    assert_int_equal(req.prompt_chars, 7);
    sky_batchline_request_free(&req);

    const char *bad[] = {"a\xFF", "a\xC0\xAF", "a\xED\xA0\x80", "a\xF4\x90\x80\x80", "a\xE2\x82"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(bad); i++) {
        sky_batchline_error e;
        assert_int_equal(sky_batchline_text_parse(sky_span_cstr(bad[i]), 3, NULL, &req, &e),
                         SKY_EINVAL);
        assert_string_equal(e.err.message, "line 3: not valid UTF-8 text (byte 2)");
        assert_string_equal(e.err.service_code, "invalid_input");
        assert_int_equal(e.has_custom_id, 1);
        assert_string_equal(e.custom_id, "line-3");
        assert_null(req.custom_id);
    }
}

static void test_text_bad_options(void **state)
{
    (void)state;
    sky_batchline_options opts;
    sky_batchline_options_init(&opts);
    opts.model = "bad\xFF";
    sky_batchline_request req;
    sky_batchline_error e;
    assert_int_equal(sky_batchline_text_parse(sky_span_cstr("q"), 1, &opts, &req, &e), SKY_EINVAL);
    assert_string_equal(e.err.message, "line 1: the model option is not valid UTF-8");
    opts.model = NULL;
    opts.has_temperature = 1;
    opts.temperature = HUGE_VAL;
    assert_int_equal(sky_batchline_text_parse(sky_span_cstr("q"), 1, &opts, &req, &e), SKY_EINVAL);
    assert_string_equal(e.err.message, "line 1: the temperature option is not a finite number");
}

/* ---- token estimate ---- */

static void estimate(const char *body, uint64_t *chars, uint64_t *max_tokens, uint64_t *total)
{
    char line[2048];
    snprintf(
        line, sizeof line,
        "{\"custom_id\":\"t\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":%s}",
        body);
    sky_batchline_request req;
    parse_ok(line, 1, &req);
    *chars = req.prompt_chars;
    *max_tokens = req.max_tokens;
    *total = req.token_estimate;
    sky_batchline_request_free(&req);
}

static void test_estimate_chat_strings(void **state)
{
    (void)state;
    uint64_t c, m, t;
    estimate("{\"messages\":[{\"role\":\"system\",\"content\":\"abcd\"},{\"role\":\"user\","
             "\"content\":\"hello\"}],\"max_tokens\":10}",
             &c, &m, &t);
    assert_int_equal(c, 9);
    assert_int_equal(m, 10);
    assert_int_equal(t, 3 + 10); /* ceil(9 / 4) */
    estimate("{\"messages\":[{\"role\":\"user\",\"content\":\"abcdefgh\"}]}", &c, &m, &t);
    assert_int_equal(c, 8);
    assert_int_equal(t, 2); /* exact division: no rounding up */
    estimate("{\"messages\":[{\"role\":\"user\",\"content\":\"\xC3\xA9\xC3\xA9\"}]}", &c, &m, &t);
    assert_int_equal(c, 2); /* characters, not bytes */
}

static void test_estimate_content_parts(void **state)
{
    (void)state;
    uint64_t c, m, t;
    estimate(
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"abcdef\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}},"
        "{\"type\":\"text\",\"text\":\"gh\"}]},{\"role\":\"assistant\",\"content\":null}],"
        "\"max_completion_tokens\":7}",
        &c, &m, &t);
    assert_int_equal(c, 8);
    assert_int_equal(m, 7);
    assert_int_equal(t, 9);
}

static void test_estimate_embeddings(void **state)
{
    (void)state;
    uint64_t c, m, t;
    estimate("{\"model\":\"text-embedding-3-small\",\"input\":\"hello world\"}", &c, &m, &t);
    assert_int_equal(c, 11);
    assert_int_equal(m, 0);
    assert_int_equal(t, 3);
    estimate("{\"input\":[\"abc\",\"defgh\",\"\"]}", &c, &m, &t);
    assert_int_equal(c, 8);
    assert_int_equal(t, 2);
    estimate("{\"input\":[[1,2,3],[4]]}", &c, &m, &t); /* token ids: one token each */
    assert_int_equal(t, 4);
}

static void test_estimate_max_tokens_forms(void **state)
{
    (void)state;
    uint64_t c, m, t;
    estimate("{\"prompt\":\"abcd\",\"max_tokens\":3,\"max_completion_tokens\":50}", &c, &m, &t);
    assert_int_equal(m, 3); /* max_tokens first */
    assert_int_equal(t, 4);
    estimate("{\"max_tokens\":-5,\"max_completion_tokens\":50}", &c, &m, &t);
    assert_int_equal(m, 50);
    estimate("{\"max_tokens\":\"9\"}", &c, &m, &t);
    assert_int_equal(m, 0);
    estimate("{\"instructions\":\"abcd\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
             "\"input_text\",\"text\":\"efgh\"}]}],\"max_output_tokens\":20}",
             &c, &m, &t);
    assert_int_equal(c, 8);
    assert_int_equal(m, 20);
    assert_int_equal(t, 22);
}

static void test_estimate_direct(void **state)
{
    (void)state;
    uint64_t c = 99, m = 99;
    sky_batchline_body_estimate(NULL, &c, &m);
    assert_int_equal(c, 0);
    assert_int_equal(m, 0);
    json_t *body = json_pack("{s:s, s:I}", "prompt", "hello", "max_tokens", (json_int_t)1);
    sky_batchline_body_estimate(body, &c, NULL);
    assert_int_equal(c, 5);
    sky_batchline_body_estimate(body, NULL, &m);
    assert_int_equal(m, 1);
    json_decref(body);
}

/* ---- output records ---- */

static void test_record_success(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 1 << 20);
    sky_batchline_response r = {
        200, "req_abc", SKY_SPAN_LIT("{\n  \"id\": \"chatcmpl-1\",\n  \"choices\": []\n}\n")};
    assert_int_equal(sky_batchline_record_success(&b, "0123abcdef", SKY_SPAN_LIT("req-1"), &r), 0);
    assert_null(memchr(b.data, '\n', b.len));
    assert_string_equal(b.data, "{\"id\":\"batch_req_0123abcdef\",\"custom_id\":\"req-1\","
                                "\"response\":{\"status_code\":200,\"request_id\":\"req_abc\","
                                "\"body\":{\"id\":\"chatcmpl-1\",\"choices\":[]}},\"error\":null}");
    json_t *j = load(&b);
    assert_keys(j, k_record_keys, 4);
    assert_string_equal(sky_json_str(j, "id", ""), "batch_req_0123abcdef");
    assert_string_equal(sky_json_str(j, "custom_id", ""), "req-1");
    json_t *resp = json_object_get(j, "response");
    assert_keys(resp, k_response_keys, 3);
    assert_int_equal(sky_json_int(resp, "status_code", 0), 200);
    assert_true(json_is_object(json_object_get(resp, "body")));
    assert_true(json_is_null(json_object_get(j, "error")));
    json_decref(j);
    sky_buf_free(&b);
}

/* The raw form keeps the provider's bytes (numbers as sent) on one line. */
static void test_record_success_raw(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 1 << 20);
    sky_span body =
        SKY_SPAN_LIT("{\r\n  \"id\": \"chatcmpl-1\",\n  \"p\": 0.1,\n  \"s\": \"a\\nb\"\n}\n");
    assert_int_equal(sky_batchline_record_success_raw(&b, "0123abcdef", SKY_SPAN_LIT("r\"1"), 200,
                                                      "req_abc", body),
                     0);
    assert_null(memchr(b.data, '\n', b.len));
    assert_null(memchr(b.data, '\r', b.len));
    assert_non_null(strstr(b.data, "\"p\": 0.1,")); /* not 0.10000000000000001 */
    json_t *j = load(&b);
    assert_keys(j, k_record_keys, 4);
    assert_string_equal(sky_json_str(j, "custom_id", ""), "r\"1");
    json_t *resp = json_object_get(j, "response");
    assert_keys(resp, k_response_keys, 3);
    assert_int_equal(sky_json_int(resp, "status_code", 0), 200);
    assert_string_equal(sky_json_str(resp, "request_id", ""), "req_abc");
    assert_string_equal(sky_json_str(json_object_get(resp, "body"), "s", ""), "a\nb");
    assert_true(json_is_null(json_object_get(j, "error")));
    json_decref(j);
    /* an argument error leaves the buffer as it was */
    size_t len = b.len;
    assert_int_equal(
        sky_batchline_record_success_raw(&b, "bad id!", SKY_SPAN_LIT("x"), 200, NULL, body),
        SKY_EINVAL);
    assert_int_equal(b.len, len);
    sky_buf_free(&b);
}

static void test_record_body_not_json(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 1 << 20);
    sky_batchline_response r = {200, NULL, SKY_SPAN_LIT("<html>Bad \"gateway\"</html>")};
    assert_int_equal(sky_batchline_record_success(&b, "1", SKY_SPAN_LIT("x"), &r), 0);
    json_t *j = load(&b);
    json_t *resp = json_object_get(j, "response");
    assert_string_equal(sky_json_str(resp, "body", ""), "<html>Bad \"gateway\"</html>");
    assert_true(json_is_null(json_object_get(resp, "request_id")));
    json_decref(j);

    sky_buf_reset(&b);
    sky_batchline_response bad = {200, "r",
                                  SKY_SPAN_LIT("a\xFF"
                                               "b")};
    assert_int_equal(sky_batchline_record_success(&b, "2", SKY_SPAN_LIT("x"), &bad), 0);
    j = load(&b);
    assert_string_equal(sky_json_str(json_object_get(j, "response"), "body", ""), "a\xEF\xBF\xBD"
                                                                                  "b");
    json_decref(j);

    sky_buf_reset(&b);
    sky_batchline_response empty = {204, "r", sky_span_make(NULL, 0)};
    assert_int_equal(sky_batchline_record_success(&b, "3", SKY_SPAN_LIT("x"), &empty), 0);
    j = load(&b);
    assert_string_equal(sky_json_str(json_object_get(j, "response"), "body", "?"), "");
    json_decref(j);
    sky_buf_free(&b);
}

static void test_record_failure_without_response(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 4096);
    assert_int_equal(sky_batchline_record_failure(&b, "ff", SKY_SPAN_LIT("req-9"), NULL,
                                                  "ETIMEDOUT", "operation timed out"),
                     0);
    assert_string_equal(b.data,
                        "{\"id\":\"batch_req_ff\",\"custom_id\":\"req-9\",\"response\":null,"
                        "\"error\":{\"code\":\"ETIMEDOUT\",\"message\":\"operation timed "
                        "out\"}}");
    json_t *j = load(&b);
    assert_keys(j, k_record_keys, 4);
    json_decref(j);
    sky_buf_free(&b);
}

static void test_record_failure_with_last_response(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 4096);
    sky_batchline_response r = {
        429, "req_x",
        SKY_SPAN_LIT("{\"error\":{\"message\":\"Rate limit\",\"code\":\"rate_limit_exceeded\"}}")};
    assert_int_equal(sky_batchline_record_failure(&b, "ab", SKY_SPAN_LIT("req-2"), &r,
                                                  "rate_limit_exceeded", "Rate limit"),
                     0);
    json_t *j = load(&b);
    json_t *resp = json_object_get(j, "response");
    assert_keys(resp, k_response_keys, 3);
    assert_int_equal(sky_json_int(resp, "status_code", 0), 429);
    assert_string_equal(sky_json_str(resp, "request_id", ""), "req_x");
    assert_string_equal(sky_json_str(sky_json_path(resp, "body.error"), "code", ""),
                        "rate_limit_exceeded");
    json_t *err = json_object_get(j, "error");
    assert_int_equal(json_object_size(err), 2);
    assert_string_equal(sky_json_str(err, "code", ""), "rate_limit_exceeded");
    assert_string_equal(sky_json_str(err, "message", ""), "Rate limit");
    json_decref(j);
    sky_buf_free(&b);
}

/* An error reply nested too deep for its record to be read back is kept as a string. */
static void test_record_failure_deep_body(void **state)
{
    (void)state;
    enum { DEPTH = SKY_JSON_MAX_DEPTH - 3 };
    char *deep = malloc(2 * DEPTH + 1);
    assert_non_null(deep);
    memset(deep, '[', DEPTH);
    memset(deep + DEPTH, ']', DEPTH);
    deep[2 * DEPTH] = '\0';
    sky_buf b;
    sky_buf_init(&b, 1 << 20);
    sky_batchline_response r = {400, "req_d", sky_span_make(deep, 2 * DEPTH)};
    assert_int_equal(sky_batchline_record_failure(&b, "dd", SKY_SPAN_LIT("d"), &r, "x", "deep"), 0);
    json_t *j = load(&b); /* the record reads back */
    assert_string_equal(sky_json_str(json_object_get(j, "response"), "body", ""), deep);
    json_decref(j);
    sky_buf_free(&b);
    free(deep);
}

static void test_record_input_error(void **state)
{
    (void)state;
    sky_batchline_error e;
    expect_error("{\"method\":\"POST\"}", 17, SKY_EINVAL, "invalid_input",
                 "line 17: lacks custom_id", &e);
    sky_buf b;
    sky_buf_init(&b, 4096);
    assert_int_equal(sky_batchline_record_input_error(&b, "0a", &e), 0);
    assert_string_equal(b.data, "{\"id\":\"batch_req_0a\",\"custom_id\":null,\"response\":null,"
                                "\"error\":{\"code\":\"invalid_input\",\"message\":\"line 17: "
                                "lacks custom_id\",\"line\":17,\"param\":\"custom_id\"}}");
    sky_buf_reset(&b);
    expect_error("{\"custom_id\":\"k\",\"method\":\"PUT\"}", 5, SKY_EINVAL, "invalid_input",
                 "line 5: unsupported method (only POST)", &e);
    assert_int_equal(sky_batchline_record_input_error(&b, "0b", &e), 0);
    json_t *j = load(&b);
    assert_keys(j, k_record_keys, 4);
    assert_string_equal(sky_json_str(j, "custom_id", ""), "k");
    assert_true(json_is_null(json_object_get(j, "response")));
    json_t *err = json_object_get(j, "error");
    assert_string_equal(sky_json_str(err, "message", ""), "line 5: unsupported method (only POST)");
    assert_int_equal(sky_json_int(err, "line", 0), 5);
    assert_string_equal(sky_json_str(err, "param", ""), "method");
    json_decref(j);
    sky_buf_reset(&b);
    expect_error("nope", 2, SKY_EJSON, "invalid_json", "line 2: not valid JSON (column 4: *", &e);
    assert_int_equal(sky_batchline_record_input_error(&b, "0c", &e), 0);
    j = load(&b);
    err = json_object_get(j, "error");
    assert_string_equal(sky_json_str(err, "code", ""), "invalid_json");
    assert_null(json_object_get(err, "param"));
    json_decref(j);
    sky_buf_free(&b);
}

static void test_record_duplicate(void **state)
{
    (void)state;
    sky_batchline_error e;
    sky_batchline_error_duplicate(&e, 9, 2, SKY_SPAN_LIT("req-1"));
    assert_int_equal(e.err.code, SKY_EINVAL);
    assert_string_equal(e.err.message, "line 9: duplicate custom_id (first on line 2)");
    sky_buf b;
    sky_buf_init(&b, 4096);
    assert_int_equal(sky_batchline_record_input_error(&b, "dd", &e), 0);
    assert_string_equal(b.data,
                        "{\"id\":\"batch_req_dd\",\"custom_id\":\"req-1\",\"response\":null,"
                        "\"error\":{\"code\":\"duplicate_custom_id\",\"message\":\"line 9: "
                        "duplicate custom_id (first on line 2)\",\"line\":9,\"param\":"
                        "\"custom_id\"}}");
    sky_batchline_error_duplicate(&e, 10, 0, SKY_SPAN_LIT("bad\xFF"));
    assert_string_equal(e.err.message, "line 10: duplicate custom_id");
    assert_int_equal(e.has_custom_id, 0);
    sky_buf_free(&b);
}

static void test_record_appends_and_restores(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 95);
    assert_int_equal(sky_buf_append_str(&b, "prev\n"), 0);
    sky_batchline_response r = {200, "r", SKY_SPAN_LIT("{}")};
    /* the record does not fit: the buffer keeps what it had */
    assert_int_equal(sky_batchline_record_success(&b, "1", SKY_SPAN_LIT("abc"), &r), SKY_ETOOBIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "prev\n");
    assert_int_equal(sky_batchline_record_failure(&b, "1", SKY_SPAN_LIT("a"), NULL, "x", NULL), 0);
    assert_string_equal(b.data, "prev\n{\"id\":\"batch_req_1\",\"custom_id\":\"a\",\"response\":"
                                "null,\"error\":{\"code\":\"x\",\"message\":\"\"}}");
    sky_buf_free(&b);
}

static void test_record_detach(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 4096);
    sky_batchline_response r = {200, "r", SKY_SPAN_LIT("[1]")};
    assert_int_equal(sky_batchline_record_success(&b, "9", SKY_SPAN_LIT("c"), &r), 0);
    size_t len = 0;
    char *s = sky_buf_detach(&b, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    assert_string_equal(s,
                        "{\"id\":\"batch_req_9\",\"custom_id\":\"c\",\"response\":{\"status_code\":"
                        "200,\"request_id\":\"r\",\"body\":[1]},\"error\":null}");
    free(s);
    sky_buf_free(&b);
}

static void test_record_bad_arguments(void **state)
{
    (void)state;
    sky_buf b;
    sky_buf_init(&b, 4096);
    sky_batchline_response r = {200, "r", SKY_SPAN_LIT("{}")};
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    assert_int_equal(sky_batchline_record_success(&b, "", SKY_SPAN_LIT("c"), &r), SKY_EINVAL);
    assert_int_equal(sky_batchline_record_success(&b, NULL, SKY_SPAN_LIT("c"), &r), SKY_EINVAL);
    assert_int_equal(sky_batchline_record_success(&b, "a-b", SKY_SPAN_LIT("c"), &r), SKY_EINVAL);
    assert_int_equal(sky_batchline_record_success(&b, long_id, SKY_SPAN_LIT("c"), &r), SKY_EINVAL);
    assert_int_equal(sky_batchline_record_success(&b, "1", SKY_SPAN_LIT("c\xFF"), &r), SKY_EINVAL);
    assert_int_equal(sky_batchline_record_success(&b, "1", SKY_SPAN_LIT("c\0d"), &r), SKY_EINVAL);
    assert_int_equal(sky_batchline_record_success(&b, "1", SKY_SPAN_LIT("c"), NULL), SKY_EINVAL);
    assert_int_equal(sky_batchline_record_failure(&b, "1", SKY_SPAN_LIT("c"), NULL, NULL, "m"),
                     SKY_EINVAL);
    assert_int_equal(b.len, 0);
    sky_buf_free(&b);
}

/* ---- reading records back ---- */

static void test_output_parse_kinds(void **state)
{
    (void)state;
    char *id = NULL;
    int ok = -1;
    assert_int_equal(
        sky_batchline_output_parse(SKY_SPAN_LIT("{\"id\":\"batch_req_1\",\"custom_id\":\"a\","
                                                "\"response\":{\"status_code\":201,\"request_id\":"
                                                "\"r\",\"body\":{}},\"error\":null}"),
                                   &id, &ok),
        0);
    assert_string_equal(id, "a");
    assert_int_equal(ok, 1);
    free(id);
    /* a 2xx with an error is not a success, nor is a 500 without one */
    assert_int_equal(sky_batchline_output_parse(SKY_SPAN_LIT("{\"custom_id\":\"b\",\"response\":{"
                                                             "\"status_code\":200},\"error\":{}}"),
                                                &id, &ok),
                     0);
    assert_int_equal(ok, 0);
    free(id);
    assert_int_equal(
        sky_batchline_output_parse(SKY_SPAN_LIT("{\"custom_id\":\"c\",\"response\":{"
                                                "\"status_code\":500},\"error\":null}"),
                                   &id, &ok),
        0);
    assert_int_equal(ok, 0);
    free(id);
    assert_int_equal(
        sky_batchline_output_parse(SKY_SPAN_LIT("{\"custom_id\":null,\"response\":null,"
                                                "\"error\":{\"code\":\"x\"}}"),
                                   &id, &ok),
        0);
    assert_null(id);
    assert_int_equal(ok, 0);
}

static void test_output_parse_bad(void **state)
{
    (void)state;
    char *id = (char *)(uintptr_t)1;
    int ok = -1;
    assert_int_equal(
        sky_batchline_output_parse(SKY_SPAN_LIT("{\"id\":\"batch_req_1\",\"custom_"), &id, &ok),
        SKY_EJSON);
    assert_null(id);
    assert_int_equal(ok, 0);
    assert_int_equal(sky_batchline_output_parse(SKY_SPAN_LIT("[]"), &id, &ok), SKY_EINVAL);
    assert_int_equal(sky_batchline_output_parse(SKY_SPAN_LIT("{\"error\":null}"), &id, &ok),
                     SKY_EINVAL);
    assert_int_equal(sky_batchline_output_parse(SKY_SPAN_LIT("{\"custom_id\":5}"), &id, &ok),
                     SKY_EINVAL);
    assert_int_equal(
        sky_batchline_output_parse(SKY_SPAN_LIT("{\"custom_id\":\"a\\u0000b\"}"), &id, &ok),
        SKY_EINVAL);
    assert_null(id);
    assert_int_equal(sky_batchline_output_parse(SKY_SPAN_LIT(""), &id, &ok), SKY_EJSON);
    assert_int_equal(sky_batchline_output_parse(SKY_SPAN_LIT("{}"), NULL, &ok), SKY_EINVAL);
}

static void test_round_trip(void **state)
{
    (void)state;
    sky_batchline_request req;
    parse_ok(
        "{\"custom_id\":\"r\\u00e9q \\\"7\\\"\",\"method\":\"POST\",\"url\":\"/v1/embeddings\","
        "\"body\":{\"input\":\"x\"}}",
        3, &req);
    assert_string_equal(req.custom_id, "r\xC3\xA9q \"7\"");
    sky_buf b;
    sky_buf_init(&b, 4096);
    sky_batchline_response r = {200, "rid", SKY_SPAN_LIT("{\"data\":[]}")};
    assert_int_equal(sky_batchline_record_success(&b, "77", sky_span_cstr(req.custom_id), &r), 0);
    char *id = NULL;
    int ok = 0;
    assert_int_equal(sky_batchline_output_parse(sky_buf_span(&b), &id, &ok), 0);
    assert_string_equal(id, req.custom_id);
    assert_int_equal(ok, 1);
    free(id);

    sky_buf_reset(&b);
    assert_int_equal(sky_batchline_record_failure(&b, "78", sky_span_cstr(req.custom_id), &r,
                                                  "EHTTP", "HTTP error status"),
                     0);
    assert_int_equal(sky_batchline_output_parse(sky_buf_span(&b), &id, &ok), 0);
    assert_string_equal(id, req.custom_id);
    assert_int_equal(ok, 0);
    free(id);
    sky_batchline_request_free(&req);

    /* a text-mode request and an input error come back too */
    text_ok("prompt", 44, NULL, &req);
    sky_buf_reset(&b);
    assert_int_equal(sky_batchline_record_success(&b, "79", sky_span_cstr(req.custom_id), &r), 0);
    assert_int_equal(sky_batchline_output_parse(sky_buf_span(&b), &id, &ok), 0);
    assert_string_equal(id, "line-44");
    assert_int_equal(ok, 1);
    free(id);
    sky_batchline_request_free(&req);

    sky_batchline_error e;
    expect_error("{\"custom_id\":\"q\"}", 8, SKY_EINVAL, "invalid_input", "line 8: lacks method",
                 &e);
    sky_buf_reset(&b);
    assert_int_equal(sky_batchline_record_input_error(&b, "80", &e), 0);
    assert_int_equal(sky_batchline_output_parse(sky_buf_span(&b), &id, &ok), 0);
    assert_string_equal(id, "q");
    assert_int_equal(ok, 0);
    free(id);
    sky_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_chat_line),
        cmocka_unit_test(test_parse_sends_the_body_as_written),
        cmocka_unit_test(test_fast_reader_agrees_with_jansson),
        cmocka_unit_test(test_fast_reader_counts_what_jansson_counts),
        cmocka_unit_test(test_fast_reader_takes_and_leaves),
        cmocka_unit_test(test_parse_every_url),
        cmocka_unit_test(test_parse_custom_id_at_limit),
        cmocka_unit_test(test_parse_bom_only_on_line_one),
        cmocka_unit_test(test_parse_span_not_terminated),
        cmocka_unit_test(test_blank_lines_are_skipped),
        cmocka_unit_test(test_line_too_long_default),
        cmocka_unit_test(test_line_too_long_option),
        cmocka_unit_test(test_error_not_json),
        cmocka_unit_test(test_error_not_object),
        cmocka_unit_test(test_error_custom_id),
        cmocka_unit_test(test_error_custom_id_too_long),
        cmocka_unit_test(test_error_method),
        cmocka_unit_test(test_error_url),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_stream_false_is_fine),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_text_plain),
        cmocka_unit_test(test_text_all_options),
        cmocka_unit_test(test_text_some_options),
        cmocka_unit_test(test_text_crlf),
        cmocka_unit_test(test_text_utf8),
        cmocka_unit_test(test_text_bad_options),
        cmocka_unit_test(test_estimate_chat_strings),
        cmocka_unit_test(test_estimate_content_parts),
        cmocka_unit_test(test_estimate_embeddings),
        cmocka_unit_test(test_estimate_max_tokens_forms),
        cmocka_unit_test(test_estimate_direct),
        cmocka_unit_test(test_record_success),
        cmocka_unit_test(test_record_success_raw),
        cmocka_unit_test(test_record_body_not_json),
        cmocka_unit_test(test_record_failure_without_response),
        cmocka_unit_test(test_record_failure_with_last_response),
        cmocka_unit_test(test_record_failure_deep_body),
        cmocka_unit_test(test_record_input_error),
        cmocka_unit_test(test_record_duplicate),
        cmocka_unit_test(test_record_appends_and_restores),
        cmocka_unit_test(test_record_detach),
        cmocka_unit_test(test_record_bad_arguments),
        cmocka_unit_test(test_output_parse_kinds),
        cmocka_unit_test(test_output_parse_bad),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
