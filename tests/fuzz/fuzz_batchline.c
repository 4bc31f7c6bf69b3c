/*
 * libFuzzer target for batch lines. The first input byte picks the mode
 * (JSONL or --text), the line cap, the line number and the HTTP status; the
 * rest is the line. Invariants: a request has sane fields and a body that is
 * a compact JSON object; an error names its line and never quotes it; every
 * record built from either is one line of valid JSON that reads back with
 * the same custom_id and the right success flag.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "skyio/batchline.h"
#include "skyio/json.h"
#include "jobs/batchline_internal.h"

static const char *const fz_urls[] = {"/v1/chat/completions", "/v1/embeddings", "/v1/completions",
                                      "/v1/responses", "/v1/moderations"};

/* The record in @p b is one valid JSON line; read it back and check it. */
static json_t *fz_check_record(const sky_buf *b, const char *custom_id, int want_ok)
{
    FZ_CHECK(b->len > 0 && b->data != NULL);
    FZ_CHECK(memchr(b->data, '\n', b->len) == NULL);
    json_error_t jerr;
    json_t *rec = json_loadb(b->data, b->len, JSON_ALLOW_NUL, &jerr);
    FZ_CHECK(json_is_object(rec));
    FZ_CHECK(json_object_size(rec) == 4);
    FZ_CHECK(strncmp(sky_json_str(rec, "id", ""), "batch_req_", 10) == 0);
    FZ_CHECK(json_object_get(rec, "response") && json_object_get(rec, "error"));
    char *id = NULL;
    int ok = -1;
    FZ_CHECK(sky_batchline_output_parse(sky_buf_span(b), &id, &ok) == 0);
    FZ_CHECK(ok == want_ok);
    FZ_CHECK((id == NULL) == (custom_id == NULL));
    FZ_CHECK(id == NULL || strcmp(id, custom_id) == 0);
    free(id);
    return rec;
}

/* An error message is "line N: ..." in printable ASCII, and quotes nothing. */
static void fz_check_error(const sky_batchline_error *e, int rc, uint64_t line_no)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "line %llu: ", (unsigned long long)line_no);
    FZ_CHECK(e->err.code == rc && e->line == line_no);
    FZ_CHECK(strncmp(e->err.message, prefix, strlen(prefix)) == 0);
    FZ_CHECK(e->err.service_code[0] != '\0');
    FZ_CHECK(strstr(e->err.message, " near ") == NULL);
    for (const char *p = e->err.message; *p; p++)
        FZ_CHECK(*p >= 0x20 && *p < 0x7F);
    FZ_CHECK(!e->has_custom_id || strlen(e->custom_id) == e->custom_id_len);

    sky_buf b;
    sky_buf_init(&b, 1 << 16);
    FZ_CHECK(sky_batchline_record_input_error(&b, "ff00", e) == 0);
    json_t *rec = fz_check_record(&b, e->has_custom_id ? e->custom_id : NULL, 0);
    json_t *err = json_object_get(rec, "error");
    FZ_CHECK(strcmp(sky_json_str(err, "message", ""), e->err.message) == 0);
    FZ_CHECK(sky_json_int(err, "line", 0) == (int64_t)line_no);
    json_decref(rec);
    sky_buf_free(&b);
}

static int fz_url_known(const char *url)
{
    for (size_t i = 0; i < SKY_ARRAY_LEN(fz_urls); i++)
        if (url == fz_urls[i] || strcmp(url, fz_urls[i]) == 0)
            return 1;
    return 0;
}

static void fz_check_request(const sky_batchline_request *req, uint64_t line_no, int text_mode)
{
    FZ_CHECK(req->custom_id && req->body && req->url && req->line == line_no);
    size_t id_len = strlen(req->custom_id);
    FZ_CHECK(id_len > 0 && id_len <= SKY_BATCHLINE_CUSTOM_ID_MAX);
    FZ_CHECK(fz_url_known(req->url));
    FZ_CHECK(strlen(req->body) == req->body_len);
    FZ_CHECK(req->token_estimate >= req->max_tokens);
    FZ_CHECK(req->token_estimate - req->max_tokens >= req->prompt_chars / 4);
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, JSON_ALLOW_NUL, &jerr);
    FZ_CHECK(json_is_object(body));
    const char *model = sky_json_str(body, "model", NULL);
    FZ_CHECK((req->model == NULL) || (model && strcmp(model, req->model) == 0));
    if (text_mode) {
        char want[32];
        snprintf(want, sizeof want, "line-%llu", (unsigned long long)line_no);
        FZ_CHECK(strcmp(req->custom_id, want) == 0);
        FZ_CHECK(json_is_array(json_object_get(body, "messages")));
    }
    json_decref(body);
}

/*
 * The fast reader and the full one agree: the same verdict, the same request, and bodies
 * that are the same JSON value (the fast one sends the line's bytes, the full one prints
 * its tree). The fast reader only ever accepts; every error comes from the full one.
 */
static void fz_check_same_as_tree(const char *s, size_t n, uint64_t line_no,
                                  const sky_batchline_options *opts, int rc,
                                  const sky_batchline_request *req)
{
    sky_batchline_request tree;
    sky_batchline_error te;
    int trc = sky__batchline_parse_tree(sky_span_make(s, n), line_no, opts, &tree, &te);
    if (trc == SKY_ENOMEM || rc == SKY_ENOMEM)
        return;
    FZ_CHECK(trc == rc);
    if (rc != 0) {
        sky_batchline_request_free(&tree);
        return;
    }
    FZ_CHECK(strcmp(tree.custom_id, req->custom_id) == 0 && tree.url == req->url);
    FZ_CHECK((tree.model == NULL) == (req->model == NULL));
    FZ_CHECK(tree.model == NULL || strcmp(tree.model, req->model) == 0);
    FZ_CHECK(tree.prompt_chars == req->prompt_chars && tree.max_tokens == req->max_tokens);
    FZ_CHECK(tree.token_estimate == req->token_estimate);
    json_error_t jerr;
    json_t *a = json_loadb(tree.body, tree.body_len, JSON_ALLOW_NUL, &jerr);
    json_t *b = json_loadb(req->body, req->body_len, JSON_ALLOW_NUL, &jerr);
    FZ_CHECK(a && b && json_equal(a, b));
    json_decref(a);
    json_decref(b);
    sky_batchline_request_free(&tree);
}

/* Records for an accepted request: success with the input as the reply, and failure. */
static void fz_check_records(const sky_batchline_request *req, const char *s, size_t n, int status)
{
    sky_buf b;
    sky_buf_init(&b, (size_t)1 << 24);
    sky_batchline_response resp = {status, n ? "req_fuzz" : NULL, sky_span_make(s, n)};
    FZ_CHECK(sky_batchline_record_success(&b, "abc123", sky_span_cstr(req->custom_id), &resp) == 0);
    json_t *rec = fz_check_record(&b, req->custom_id, status >= 200 && status <= 299);
    json_t *body = sky_json_path(rec, "response.body");
    json_error_t jerr;
    json_t *direct = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    FZ_CHECK(body != NULL && (direct ? json_equal(direct, body) : json_is_string(body)));
    json_decref(direct);
    json_decref(rec);

    /* the failure's code and message come from the input: any bytes, no NUL */
    sky_buf_reset(&b);
    char text[64];
    size_t k = n < sizeof text - 1 ? n : sizeof text - 1;
    memcpy(text, s, k);
    text[k] = '\0';
    FZ_CHECK(sky_batchline_record_failure(&b, "abc124", sky_span_cstr(req->custom_id),
                                          (status & 1) ? &resp : NULL, text, text) == 0);
    json_decref(fz_check_record(&b, req->custom_id, 0));
    sky_buf_free(&b);
}

/* The caller's duplicate check, with the line's first bytes as the custom_id. */
static void fz_check_duplicate(const char *s, size_t n, uint64_t line_no)
{
    sky_batchline_error e;
    size_t k = n < 600 ? n : 600;
    sky_batchline_error_duplicate(&e, line_no, line_no > 1 ? line_no - 1 : 0, sky_span_make(s, k));
    FZ_CHECK(strcmp(e.err.service_code, "duplicate_custom_id") == 0);
    fz_check_error(&e, SKY_EINVAL, line_no);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned cfg = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    int text_mode = cfg & 1;
    uint64_t line_no = 1 + ((cfg >> 1) & 3); /* line 1 takes a BOM */
    static const int statuses[] = {200, 201, 429, 500};
    int status = statuses[(cfg >> 3) & 3];

    sky_batchline_options opts;
    sky_batchline_options_init(&opts);
    if (cfg & 0x20)
        opts.max_line_bytes = 64;
    if (cfg & 0x40) {
        opts.model = "gpt-4o-mini";
        opts.system = "be brief";
        opts.has_temperature = 1;
        opts.temperature = 0.25;
        opts.max_tokens = 32;
    }
    sky_batchline_request req;
    sky_batchline_error e;
    int rc = text_mode ? sky_batchline_text_parse(sky_span_make(s, n), line_no, &opts, &req, &e)
                       : sky_batchline_parse(sky_span_make(s, n), line_no, &opts, &req, &e);
    if (!text_mode)
        fz_check_same_as_tree(s, n, line_no, &opts, rc, &req);
    if (rc == 0) {
        fz_check_request(&req, line_no, text_mode);
        fz_check_records(&req, s, n, status);
        sky_batchline_request_free(&req);
    } else if (rc == SKY_BATCHLINE_BLANK) {
        FZ_CHECK(req.custom_id == NULL && e.err.code == 0);
    } else {
        FZ_CHECK(rc == SKY_EJSON || rc == SKY_EINVAL || rc == SKY_ETOOBIG || rc == SKY_ENOMEM);
        FZ_CHECK(req.custom_id == NULL && req.body == NULL);
        fz_check_error(&e, rc, line_no);
    }
    if (cfg & 0x80)
        fz_check_duplicate(s, n, line_no);
    return 0;
}
