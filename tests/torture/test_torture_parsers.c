/*
 * Allocation-failure tests of the parsers and builders: batch lines and
 * records, SSE, headers, Storage connection strings, SAS and Shared Key,
 * Blob XML, ARM's long-running-operation decisions and resume token, the id
 * set and the JSON helpers. Under every failed allocation each must give its
 * usual result or an error (SKY_ENOMEM), never a different "success".
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azure/arm/internal.h"
#include "azure/blob/internal.h"
#include "skyio/batchline.h"
#include "skyio/headers.h"
#include "skyio/idset.h"
#include "skyio/json.h"
#include "skyio/sse.h"
#include "skyio/storage.h"

#include "torture.h"
#include "harness_group.h"

#define CASE(n, r, p, c)                                                                           \
    {                                                                                              \
        .name = (n), .run = (r), .report = (p), .ctx = (c)                                         \
    }

static const char *str_or(const char *s)
{
    return s ? s : "(null)";
}

static void digest_error(sky_buf *d, const sky_error *e)
{
    torture_digest(d, " err={%s http=%d svc=%s msg=%s}", sky_err_name(e->code), e->http_status,
                   e->service_code, e->message);
}

/* ---- batch lines ---------------------------------------------------------- */

typedef struct line_ctx {
    const char *line;
    int text_mode;
    const sky_batchline_options *opts;
    sky_batchline_request req;
    sky_batchline_error err;
} line_ctx;

static int line_run(void *p)
{
    line_ctx *c = p;
    sky_span s = sky_span_cstr(c->line);
    return c->text_mode ? sky_batchline_text_parse(s, 1, c->opts, &c->req, &c->err)
                        : sky_batchline_parse(s, 1, c->opts, &c->req, &c->err);
}

static void line_report(void *p, int rc, sky_buf *d)
{
    line_ctx *c = p;
    const sky_batchline_request *r = &c->req;
    torture_digest(d, "rc=%s", sky_err_name(rc));
    if (rc == 0) {
        torture_digest(d,
                       " id=%s url=%s body=%s model=%s line=%" PRIu64 " chars=%" PRIu64
                       " max=%" PRIu64 " est=%" PRIu64,
                       r->custom_id, r->url, r->body, str_or(r->model), r->line, r->prompt_chars,
                       r->max_tokens, r->token_estimate);
        torture_assert_int(strlen(r->body), r->body_len);
    } else {
        /* a refused line leaves the request zeroed, and says why */
        torture_assert(r->custom_id == NULL && r->body == NULL && r->model == NULL);
        torture_assert_int(c->err.err.code, rc);
        if (rc == SKY_ENOMEM)
            torture_assert(strcmp(c->err.err.service_code, "internal_error") == 0);
        digest_error(d, &c->err.err);
        torture_digest(d, " line=%" PRIu64 " param=%s id=%d:%s", c->err.line, str_or(c->err.param),
                       c->err.has_custom_id, c->err.custom_id);
    }
    sky_batchline_request_free(&c->req);
}

static void test_batch_lines(void **state)
{
    (void)state;
    sky_batchline_options text_opts;
    sky_batchline_options_init(&text_opts);
    text_opts.model = "gpt-4o-mini";
    text_opts.system = "Be brief.";
    text_opts.has_temperature = 1;
    text_opts.temperature = 0.2;
    text_opts.max_tokens = 64;
    line_ctx chat = {
        .line =
            "\xEF\xBB\xBF{\"custom_id\":\"req-1\",\"method\":\"POST\",\"url\":\"/v1/chat/"
            "completions\","
            "\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":"
            "\"You are terse.\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
            "\"H\xC3\xA9llo\"}]}],\"temperature\":0.7,\"max_tokens\":64}}\r\n"};
    line_ctx embed = {
        .line = "{\"custom_id\":\"e-1\",\"method\":\"POST\",\"url\":\"/embeddings\",\"body\":"
                "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"bc\",[1,2,3]]}}"};
    line_ctx bad_json = {
        .line = "{\"custom_id\":\"req-2\",\"method\":\"POST\",\"body\":{\"a\":[1,2,}}"};
    line_ctx no_body = {
        .line = "{\"custom_id\":\"req-3\",\"method\":\"POST\",\"url\":\"/v1/responses\"}"};
    line_ctx text = {
        .line = "Tell me a joke about \xE2\x82\xAC.\r\n", .text_mode = 1, .opts = &text_opts};
    const torture_case cases[] = {
        CASE("batchline: chat line", line_run, line_report, &chat),
        CASE("batchline: embeddings line", line_run, line_report, &embed),
        CASE("batchline: bad JSON", line_run, line_report, &bad_json),
        CASE("batchline: no body", line_run, line_report, &no_body),
        CASE("batchline: --text line", line_run, line_report, &text),
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++)
        torture_run_case(&cases[i]);
}

/* ---- output records ------------------------------------------------------- */

typedef struct record_ctx {
    int kind;
    sky_batchline_response resp;
    sky_batchline_error line_err;
    sky_buf out;
} record_ctx;

#define RECORD_PREFIX "earlier-record\n"

static void record_setup(void *p)
{
    record_ctx *c = p;
    sky_buf_init(&c->out, 1 << 20);
    torture_assert(sky_buf_append_str(&c->out, RECORD_PREFIX) == 0);
}

static int record_run(void *p)
{
    record_ctx *c = p;
    sky_span id = SKY_SPAN_LIT("req-\xC3\xA9-1");
    switch (c->kind) {
    case 0:
        return sky_batchline_record_success(&c->out, "0af3", id, &c->resp);
    case 1:
        return sky_batchline_record_success_raw(&c->out, "0af3", id, 200, "req_xyz\xFF",
                                                c->resp.body);
    case 2:
        return sky_batchline_record_failure(&c->out, "0af3", id, &c->resp, "rate_limit",
                                            "too many requests \xC3(");
    default:
        return sky_batchline_record_input_error(&c->out, "0af3", &c->line_err);
    }
}

static void record_report(void *p, int rc, sky_buf *d)
{
    record_ctx *c = p;
    torture_digest(d, "rc=%s out=%s", sky_err_name(rc), c->out.data);
    if (rc != 0) /* a builder that fails leaves the buffer as it was */
        torture_assert(strcmp(c->out.data, RECORD_PREFIX) == 0);
    sky_buf_free(&c->out);
}

static void test_batch_records(void **state)
{
    (void)state;
    const char *body = "{\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                       "\"assistant\",\"content\":\"Hi\\nthere\"}}],\r\n\"usage\":{\"total_tokens\""
                       ":12.50}}";
    sky_batchline_response ok = {200, "req_abc", sky_span_cstr(body)};
    sky_batchline_response busy = {429, NULL, SKY_SPAN_LIT("<html>busy \xFE</html>")};
    record_ctx success = {.kind = 0, .resp = ok};
    record_ctx raw = {.kind = 1, .resp = ok};
    record_ctx failure = {.kind = 2, .resp = busy};
    record_ctx input = {.kind = 3};
    sky_batchline_error_duplicate(&input.line_err, 7, 3, SKY_SPAN_LIT("dup-id"));
    const torture_case cases[] = {
        {.name = "batchline: success record",
         .setup = record_setup,
         .run = record_run,
         .report = record_report,
         .ctx = &success},
        {.name = "batchline: raw success record",
         .setup = record_setup,
         .run = record_run,
         .report = record_report,
         .ctx = &raw},
        {.name = "batchline: failure record",
         .setup = record_setup,
         .run = record_run,
         .report = record_report,
         .ctx = &failure},
        {.name = "batchline: input error record",
         .setup = record_setup,
         .run = record_run,
         .report = record_report,
         .ctx = &input},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++)
        torture_run_case(&cases[i]);
}

typedef struct output_ctx {
    const char *line;
    char *id;
    int ok;
} output_ctx;

static int output_run(void *p)
{
    output_ctx *c = p;
    return sky_batchline_output_parse(sky_span_cstr(c->line), &c->id, &c->ok);
}

static void output_report(void *p, int rc, sky_buf *d)
{
    output_ctx *c = p;
    torture_digest(d, "rc=%s id=%s ok=%d", sky_err_name(rc), str_or(c->id), c->ok);
    if (rc != 0)
        torture_assert(c->id == NULL);
    free(c->id);
    c->id = NULL;
}

static void test_batch_output_parse(void **state)
{
    (void)state;
    output_ctx ok = {
        .line = "{\"id\":\"batch_req_1\",\"custom_id\":\"req-1\",\"response\":{\"status_code\":"
                "200,\"request_id\":\"r\",\"body\":{\"x\":[1,2,3]}},\"error\":null}"};
    output_ctx failed = {
        .line = "{\"id\":\"batch_req_2\",\"custom_id\":null,\"response\":null,\"error\":"
                "{\"code\":\"invalid_json\",\"message\":\"line 3: bad\"}}"};
    output_ctx torn = {.line = "{\"id\":\"batch_req_3\",\"custom_id\":\"req-3\",\"resp"};
    const torture_case cases[] = {
        CASE("batchline: read back a success", output_run, output_report, &ok),
        CASE("batchline: read back a failure", output_run, output_report, &failed),
        CASE("batchline: read back a torn line", output_run, output_report, &torn),
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++)
        torture_run_case(&cases[i]);
}

/* ---- SSE ------------------------------------------------------------------ */

typedef struct sse_ctx {
    sky_sse_parser parser;
    sky_buf events; /* what the callback saw, as text */
    char ref[4096]; /* the events of a run that failed nothing */
    int have_ref;
} sse_ctx;

static int sse_on_event(void *user_data, const sky_sse_event *ev)
{
    sse_ctx *c = user_data;
    torture_pause(); /* the test's own record of the event */
    torture_assert(sky_buf_printf(&c->events, "[%.*s|%.*s|%.*s|%" PRId64 "|%d]", (int)ev->event.len,
                                  ev->event.ptr, (int)ev->data.len, ev->data.ptr, (int)ev->id.len,
                                  ev->id.ptr, ev->retry_ms, ev->is_done) == 0);
    torture_resume();
    return 0;
}

static void sse_setup(void *p)
{
    sse_ctx *c = p;
    sky_buf_init(&c->events, 1 << 16);
}

static int sse_run(void *p)
{
    /* chunks split a BOM, a CR LF, a field name and a UTF-8 sequence */
    static const char *const chunks[] = {
        "\xEF\xBB",
        "\xBF"
        "event: message\r",
        "\ndata: {\"choices\":[{\"delta\":{\"content\":\"Az\xC3",
        "\xA9\"}}]}\r\n\r\n: keep-alive\n",
        "id: 7\nretry: 1500\ndata: line one\nda",
        "ta: line two\n\nevent: ping\ndata:\n\n",
        "data: [DONE]\n\n",
        "data: never dispatched",
    };
    sse_ctx *c = p;
    sky_sse_parser_init(&c->parser, 0, sse_on_event, c);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < SKY_ARRAY_LEN(chunks); i++)
        rc = sky_sse_parser_feed(&c->parser, chunks[i], strlen(chunks[i]));
    return rc ? rc : sky_sse_parser_finish(&c->parser);
}

static void sse_report(void *p, int rc, sky_buf *d)
{
    sse_ctx *c = p;
    torture_digest(d, "rc=%s events=%" PRIu64 " %s", sky_err_name(rc), c->parser.events,
                   c->events.data ? c->events.data : "");
    if (rc == 0 && !c->have_ref) {
        snprintf(c->ref, sizeof(c->ref), "%s", c->events.data);
        c->have_ref = 1;
    }
    if (rc != 0) {
        /* what was dispatched before the failure is the start of the whole, and the
         * parser stays failed */
        torture_assert(strncmp(c->ref, c->events.data ? c->events.data : "", c->events.len) == 0);
        torture_assert_int(sky_sse_parser_feed(&c->parser, "data: x\n\n", 9), rc);
    }
    sky_sse_parser_free(&c->parser);
    sky_buf_free(&c->events);
}

static void test_sse(void **state)
{
    (void)state;
    sse_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    const torture_case tc = {.name = "sse: chunked stream",
                             .setup = sse_setup,
                             .run = sse_run,
                             .report = sse_report,
                             .ctx = &ctx};
    torture_run_case(&tc);
}

/* ---- headers -------------------------------------------------------------- */

typedef struct headers_ctx {
    sky_headers *h;
    sky_headers *copy;
    int64_t remaining;
    int64_t retry_ms;
} headers_ctx;

static int headers_parse(sky_headers *h)
{
    static const char *const lines[] = {
        "HTTP/1.1 100 Continue\r\n",
        "\r\n",
        "HTTP/1.1 429 Too Many Requests\r\n",
        "Content-Type: application/json\r\n",
        "x-ratelimit-remaining-requests: 59\r\n",
        "X-Folded: first\r\n",
        "\t second part \r\n",
        "retry-after-ms: 1500.5\r\n",
        "Set-Cookie: a=1\r\n",
        "Set-Cookie: b=2\r\n",
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < SKY_ARRAY_LEN(lines); i++)
        rc = sky_headers_parse_line(h, lines[i], strlen(lines[i]));
    /* past the first 16 entries, so the array grows */
    for (int i = 0; rc == 0 && i < 20; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "x-extra-%d:  value %d\t\r\n", i, i);
        rc = sky_headers_parse_line(h, line, (size_t)n);
    }
    return rc == 0 ? sky_headers_parse_line(h, "\r\n", 2) : rc;
}

static int headers_run(void *p)
{
    headers_ctx *c = p;
    c->h = sky_headers_new();
    if (c->h == NULL)
        return SKY_ENOMEM;
    int rc = headers_parse(c->h);
    if (rc != 0)
        return rc;
    c->copy = sky_headers_new();
    if (c->copy == NULL)
        return SKY_ENOMEM;
    rc = sky_headers_add(c->copy, SKY_SPAN_LIT("Authorization"), SKY_SPAN_LIT(" Bearer t "));
    if (rc == 0)
        rc = sky_headers_add_all(c->copy, c->h);
    if (rc == 0)
        rc = sky_headers_get_int64(c->h, "X-RateLimit-Remaining-Requests", &c->remaining);
    if (rc == 0)
        rc = sky_parse_retry_after_ms(c->copy, NULL, &c->retry_ms);
    return rc;
}

/* Every entry of @p h is whole (a token name, a trimmed value), found by its name. */
static void digest_headers(sky_buf *d, const sky_headers *h)
{
    for (size_t i = 0; h && i < sky_headers_count(h); i++) {
        const char *name, *value;
        torture_assert(sky_headers_at(h, i, &name, &value) == 0);
        torture_assert(name[0] != '\0' && strpbrk(name, " \t:\r\n") == NULL);
        torture_assert(sky_headers_get(h, name) != NULL);
        torture_digest(d, " %s=[%s]", name, value);
    }
}

static void headers_report(void *p, int rc, sky_buf *d)
{
    headers_ctx *c = p;
    torture_digest(d, "rc=%s", sky_err_name(rc));
    if (rc == 0)
        torture_digest(d, " remaining=%" PRId64 " retry=%" PRId64, c->remaining, c->retry_ms);
    digest_headers(d, c->h);
    torture_digest(d, " |");
    digest_headers(d, c->copy);
    sky_headers_free(c->h);
    sky_headers_free(c->copy);
    memset(c, 0, sizeof(*c));
}

static void test_headers(void **state)
{
    (void)state;
    headers_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    const torture_case tc = CASE("headers: parse, copy, read", headers_run, headers_report, &ctx);
    torture_run_case(&tc);
}

/* ---- Storage connection strings, SAS, Shared Key -------------------------- */

#define DEV_KEY                                                                                    \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

typedef struct connstr_ctx {
    const char *text;
    sky_storage_account *a;
    sky_error err;
} connstr_ctx;

static int connstr_run(void *p)
{
    connstr_ctx *c = p;
    sky_error_clear(&c->err);
    return sky_storage_connstr_parse(sky_span_cstr(c->text), &c->a, &c->err);
}

static void connstr_report(void *p, int rc, sky_buf *d)
{
    connstr_ctx *c = p;
    torture_digest(d, "rc=%s", sky_err_name(rc));
    if (rc == 0) {
        torture_assert(c->a != NULL);
        torture_digest(d, " name=%s key=%s endpoint=%s sas=%s", str_or(c->a->account_name),
                       str_or(c->a->account_key), str_or(c->a->blob_endpoint), str_or(c->a->sas));
    } else {
        torture_assert(c->a == NULL);
        torture_assert_int(c->err.code, rc);
        digest_error(d, &c->err);
    }
    sky_storage_account_free(c->a);
    c->a = NULL;
}

static void test_connstr(void **state)
{
    (void)state;
    connstr_ctx full = {.text =
                            "DefaultEndpointsProtocol=https; AccountName=acct;AccountKey=" DEV_KEY
                            ";EndpointSuffix=core.chinacloudapi.cn;QueueEndpoint=https://q;"
                            "SharedAccessSignature=?sv=2021-12-02&sig=abc"};
    connstr_ctx endpoint = {.text = "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"
                                    "SharedAccessSignature=sv=2021-12-02&sp=r&sig=x%2By"};
    connstr_ctx dev = {.text = "UseDevelopmentStorage=true"};
    connstr_ctx bad_key = {.text = "AccountName=acct;AccountKey=not*base64"};
    const torture_case cases[] = {
        CASE("storage: full connection string", connstr_run, connstr_report, &full),
        CASE("storage: BlobEndpoint and SAS", connstr_run, connstr_report, &endpoint),
        CASE("storage: development storage", connstr_run, connstr_report, &dev),
        CASE("storage: key not base64", connstr_run, connstr_report, &bad_key),
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++)
        torture_run_case(&cases[i]);
}

typedef struct sign_ctx {
    sky_buf account_sas, service_sas, sts;
    sky_headers *h;
    sky_error err;
} sign_ctx;

static void sign_setup(void *p)
{
    sign_ctx *c = p;
    sky_buf_init(&c->account_sas, 4096);
    sky_buf_init(&c->service_sas, 4096);
    sky_buf_init(&c->sts, 1 << 16);
    c->h = sky_headers_new();
    torture_assert(c->h != NULL);
    torture_assert(sky_headers_add(c->h, SKY_SPAN_LIT("x-ms-version"),
                                   SKY_SPAN_LIT(SKY_STORAGE_VERSION)) == 0);
    torture_assert(sky_headers_add(c->h, SKY_SPAN_LIT("X-MS-Date"),
                                   SKY_SPAN_LIT("Sun, 06 Nov 1994 08:49:37 GMT")) == 0);
    torture_assert(
        sky_headers_add(c->h, SKY_SPAN_LIT("x-ms-blob-type"), SKY_SPAN_LIT("BlockBlob")) == 0);
    torture_assert(sky_headers_add(c->h, SKY_SPAN_LIT("Content-Length"), SKY_SPAN_LIT("11")) == 0);
}

static int sign_run(void *p)
{
    static const char url[] = "https://acct.blob.core.windows.net/c%20one/dir/b.txt?comp=block&"
                              "blockid=YQ%3D%3D&timeout=30&comp=x";
    sign_ctx *c = p;
    sky_storage_sas_options o;
    sky_storage_sas_options_init(&o);
    o.permissions = "racwdl";
    o.start = 1700000000;
    o.expiry = 1700003600;
    o.ip = "10.0.0.1-10.0.0.9";
    o.protocol = "https";
    sky_error_clear(&c->err);
    int rc = sky_storage_sas_account("acct", DEV_KEY, &o, &c->account_sas, &c->err);
    if (rc != 0)
        return rc;
    o.container = "c one";
    o.blob = "dir/b.txt";
    o.identifier = "policy 1";
    rc = sky_storage_sas_service("acct", DEV_KEY, &o, &c->service_sas, &c->err);
    if (rc != 0)
        return rc;
    rc = sky_storage_string_to_sign("acct", "PUT", url, c->h, &c->sts);
    if (rc != 0)
        return rc;
    return sky_storage_authorize("acct", DEV_KEY, "PUT", url, c->h, &c->err);
}

static void sign_report(void *p, int rc, sky_buf *d)
{
    sign_ctx *c = p;
    torture_digest(d, "rc=%s account=%s service=%s sts=%s auth=%s", sky_err_name(rc),
                   c->account_sas.data, c->service_sas.data, c->sts.data,
                   str_or(sky_headers_get(c->h, "Authorization")));
    if (rc != 0 && c->err.code != 0)
        torture_assert_int(c->err.code, rc);
    sky_buf_free(&c->account_sas);
    sky_buf_free(&c->service_sas);
    sky_buf_free(&c->sts);
    sky_headers_free(c->h);
}

static void test_sas_and_shared_key(void **state)
{
    (void)state;
    sign_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    const torture_case tc = {.name = "storage: SAS tokens and Shared Key",
                             .setup = sign_setup,
                             .run = sign_run,
                             .report = sign_report,
                             .ctx = &ctx};
    torture_run_case(&tc);
}

/* ---- Blob XML ------------------------------------------------------------- */

typedef struct xml_ctx {
    sky_buf list_xml, blocks_xml;
    sky__blob_list list;
    sky__blob_blocks blocks;
    char code[SKY_ERROR_SERVICE_CODE_MAX], msg[128];
} xml_ctx;

static void xml_make(xml_ctx *c)
{
    sky_buf *l = &c->list_xml, *b = &c->blocks_xml;
    sky_buf_init(l, 1 << 20);
    sky_buf_init(b, 1 << 20);
    int rc = sky_buf_append_str(l, "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                                   "<EnumerationResults ServiceEndpoint=\"http://a/\"><Blobs>");
    /* past the first 16 items, so the array grows */
    for (int i = 0; rc == 0 && i < 20; i++)
        rc = sky_buf_printf(l,
                            "<Blob><Name>dir/blob-%d &amp; more</Name><Properties>"
                            "<Last-Modified>Sun, 06 Nov 1994 08:49:37 GMT</Last-Modified>"
                            "<Etag>0x8D%d</Etag><Content-Length>%d</Content-Length>"
                            "<Content-MD5>%s</Content-MD5></Properties></Blob>",
                            i, i, i * 100, i % 2 ? "1B2M2Y8AsgTpgAmY7PhCfg==" : "");
    if (rc == 0)
        rc = sky_buf_append_str(l, "<BlobPrefix><Name>dir/sub/</Name></BlobPrefix></Blobs>"
                                   "<NextMarker>2!72!MDAwMDE3</NextMarker></EnumerationResults>");
    if (rc == 0)
        rc = sky_buf_append_str(b, "<?xml version=\"1.0\"?><BlockList><CommittedBlocks>");
    /* past the first 64 names */
    for (int i = 0; rc == 0 && i < 70; i++)
        rc = sky_buf_printf(b, "<Block><Name>QkxPQ0stMDAw%04d</Name><Size>%d</Size></Block>", i,
                            4096 + i);
    if (rc == 0)
        rc = sky_buf_append_str(b, "</CommittedBlocks><UncommittedBlocks/></BlockList>");
    torture_assert(rc == 0);
}

static void xml_setup(void *p)
{
    xml_ctx *c = p;
    if (c->list_xml.data == NULL)
        xml_make(c);
}

static int xml_run(void *p)
{
    xml_ctx *c = p;
    int rc = sky__blob_parse_list(sky_buf_span(&c->list_xml), &c->list);
    if (rc == 0)
        rc = sky__blob_parse_blocks(sky_buf_span(&c->blocks_xml), &c->blocks);
    return rc;
}

static void xml_report(void *p, int rc, sky_buf *d)
{
    xml_ctx *c = p;
    torture_digest(d, "rc=%s next=%s", sky_err_name(rc), str_or(c->list.next_marker));
    for (size_t i = 0; i < c->list.count; i++) {
        const sky_blob_item *it = &c->list.items[i];
        torture_assert(it->name != NULL);
        torture_digest(d, " {%s %" PRId64 " %s %s %s %d}", it->name, it->size, str_or(it->etag),
                       str_or(it->content_md5), str_or(it->last_modified), it->is_prefix);
    }
    for (size_t i = 0; i < c->blocks.count; i++) {
        torture_assert(c->blocks.names[i] != NULL);
        torture_digest(d, " %s:%" PRId64, c->blocks.names[i], c->blocks.sizes[i]);
    }
    if (rc != 0) /* a failed parse frees what it built */
        torture_assert(c->blocks.count == 0 && c->blocks.names == NULL);
    sky__blob_list_free(&c->list);
    sky__blob_blocks_free(&c->blocks);
}

static int xml_error_run(void *p)
{
    xml_ctx *c = p;
    static const char body[] = "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><Error>"
                               "<Code>ServerBusy</Code><Message>The server is busy.\n"
                               "RequestId:0f1e\nTime:2024-01-01T00:00:00Z</Message></Error>";
    /* The reader has no error to return: out of memory leaves the code empty, as for
     * a body that names none, and the caller goes by the HTTP status. */
    sky__blob_parse_error(sky_span_make(body, sizeof(body) - 1), c->code, sizeof(c->code), c->msg,
                          sizeof(c->msg));
    return 0;
}

static void xml_error_report(void *p, int rc, sky_buf *d)
{
    xml_ctx *c = p;
    torture_digest(d, "rc=%s" TORTURE_DETAIL "code=%s msg=%s", sky_err_name(rc), c->code, c->msg);
}

static void test_blob_xml(void **state)
{
    (void)state;
    xml_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    const torture_case cases[] = {
        {.name = "blob xml: listing and block list",
         .setup = xml_setup,
         .run = xml_run,
         .report = xml_report,
         .ctx = &ctx},
        CASE("blob xml: error body", xml_error_run, xml_error_report, &ctx),
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++)
        torture_run_case(&cases[i]);
    sky_buf_free(&ctx.list_xml);
    sky_buf_free(&ctx.blocks_xml);
}

/* ---- ARM long-running operations ------------------------------------------ */

/* One reply of a scripted operation. */
typedef struct arm_reply {
    int status;
    const char *async_url; /* Azure-AsyncOperation */
    const char *location;
    const char *retry_after;
    const char *body;
} arm_reply;

#define ARM_MAX_REPLIES 4

typedef struct arm_ctx {
    const char *method;
    arm_reply replies[ARM_MAX_REPLIES];
    sky_headers *h[ARM_MAX_REPLIES];
    sky__arm_lro_state st;
    sky__arm_decision d[ARM_MAX_REPLIES];
    sky_error err;
    int steps;
    char *token;
    sky__arm_lro_state again; /* the token read back */
} arm_ctx;

static void arm_setup(void *p)
{
    arm_ctx *c = p;
    for (int i = 0; i < ARM_MAX_REPLIES; i++) {
        const arm_reply *r = &c->replies[i];
        c->h[i] = sky_headers_new();
        torture_assert(c->h[i] != NULL);
        if (r->async_url)
            torture_assert(sky_headers_add(c->h[i], SKY_SPAN_LIT("Azure-AsyncOperation"),
                                           sky_span_cstr(r->async_url)) == 0);
        if (r->location)
            torture_assert(sky_headers_add(c->h[i], SKY_SPAN_LIT("Location"),
                                           sky_span_cstr(r->location)) == 0);
        if (r->retry_after)
            torture_assert(sky_headers_add(c->h[i], SKY_SPAN_LIT("Retry-After"),
                                           sky_span_cstr(r->retry_after)) == 0);
    }
}

static int arm_step(arm_ctx *c, int i)
{
    const arm_reply *r = &c->replies[i];
    sky_span body = sky_span_cstr(r->body ? r->body : "");
    if (i == 0)
        return sky__arm_lro_first(&c->st, c->method,
                                  "https://management.azure.com/subscriptions/s/resourceGroups/g/"
                                  "providers/Microsoft.Storage/storageAccounts/a?api-version=1",
                                  r->status, c->h[i], body, 1000, NULL, &c->d[i], &c->err);
    return sky__arm_lro_next(&c->st, r->status, c->h[i], body, 1000, NULL, &c->d[i], &c->err);
}

static int arm_run(void *p)
{
    arm_ctx *c = p;
    sky_error_clear(&c->err);
    c->steps = 0;
    for (int i = 0; i < ARM_MAX_REPLIES && c->replies[i].status; i++) {
        int rc = arm_step(c, i);
        if (rc != 0)
            return rc;
        c->steps++;
        if (i == 0 && c->d[0].step == SKY__ARM_POLL) {
            /* the resume token of the running operation, and back */
            c->token = sky__arm_token_encode(&c->st);
            if (c->token == NULL)
                return SKY_ENOMEM;
            sky_error e;
            sky_error_clear(&e);
            rc = sky__arm_token_decode(c->token, &c->again, &e);
            if (rc != 0)
                return rc;
        }
        if (c->d[i].step != SKY__ARM_POLL)
            break;
    }
    return 0;
}

static void arm_report(void *p, int rc, sky_buf *d)
{
    arm_ctx *c = p;
    torture_digest(d, "rc=%s style=%d method=%s r=%s p=%s f=%s token=%s", sky_err_name(rc),
                   (int)c->st.style, c->st.method, str_or(c->st.resource_url),
                   str_or(c->st.poll_url), str_or(c->st.final_url), str_or(c->token));
    for (int i = 0; i < c->steps; i++)
        torture_digest(d, " {step=%d delay=%" PRIu64 " url=%s status=%s}", (int)c->d[i].step,
                       c->d[i].delay_ms, str_or(c->d[i].url), c->d[i].status);
    if (c->again.resource_url)
        torture_digest(d, " again={%d %s %s %s %s}", (int)c->again.style, c->again.method,
                       c->again.resource_url, c->again.poll_url, str_or(c->again.final_url));
    /* what the service said of its failure is told as memory allows */
    torture_digest(d, " err={%s http=%d}" TORTURE_DETAIL "{svc=%s msg=%s}",
                   sky_err_name(c->err.code), c->err.http_status, c->err.service_code,
                   c->err.message);
    sky__arm_lro_state_free(&c->st);
    sky__arm_lro_state_free(&c->again);
    free(c->token);
    c->token = NULL;
    for (int i = 0; i < ARM_MAX_REPLIES; i++) {
        sky_headers_free(c->h[i]);
        c->h[i] = NULL;
    }
}

static void test_arm_lro(void **state)
{
    (void)state;
    /* PUT answered 201 while provisioning: poll the resource for its state */
    arm_ctx put_state = {
        .method = "PUT",
        .replies = {
            {201, NULL, NULL, NULL,
             "{\"id\":\"x\",\"properties\":{\"provisioningState\":\"Creating\"}}"},
            {200, NULL, NULL, "2", "{\"properties\":{\"provisioningState\":\"Updating\"}}"},
            {200, NULL, NULL, NULL, "{\"properties\":{\"provisioningState\":\"Succeeded\"}}"}}};
    /* Azure-AsyncOperation, ending in a failure with details */
    arm_ctx put_async = {
        .method = "PUT",
        .replies = {{201, "https://management.azure.com/op/1?api-version=1",
                     "https://management.azure.com/l", NULL, "{}"},
                    {200, NULL, NULL, "3", "{\"status\":\"InProgress\"}"},
                    {200, NULL, NULL, NULL,
                     "{\"status\":\"Failed\",\"error\":{\"code\":\"Conflict\",\"message\":\"no\","
                     "\"details\":[{\"code\":\"A\",\"message\":\"first\"},{\"code\":\"B\"}]}}"}}};
    /* DELETE followed through Location: 202 until done */
    arm_ctx delete_location = {
        .method = "DELETE",
        .replies = {{202, NULL, "https://management.azure.com/loc/1", NULL, NULL},
                    {202, NULL, "https://management.azure.com/loc/2", NULL, NULL},
                    {200, NULL, NULL, NULL, NULL}}};
    /* POST with an async status then a final result at the Location */
    arm_ctx post_final = {.method = "POST",
                          .replies = {{202, "https://management.azure.com/op/2",
                                       "https://management.azure.com/result/2", NULL, NULL},
                                      {200, NULL, NULL, NULL, "{\"status\":\"Succeeded\"}"}}};
    /* a refusal with an ARM error body */
    arm_ctx refused = {
        .method = "PUT",
        .replies = {{409, NULL, NULL, NULL,
                     "{\"error\":{\"code\":\"StorageAccountAlreadyTaken\",\"message\":\"taken\","
                     "\"details\":[{\"code\":\"X\",\"message\":\"y\"}]}}"}}};
    const torture_case cases[] = {
        {.name = "arm: PUT polled by provisioningState",
         .setup = arm_setup,
         .run = arm_run,
         .report = arm_report,
         .ctx = &put_state},
        {.name = "arm: PUT polled by Azure-AsyncOperation",
         .setup = arm_setup,
         .run = arm_run,
         .report = arm_report,
         .ctx = &put_async},
        {.name = "arm: DELETE polled by Location",
         .setup = arm_setup,
         .run = arm_run,
         .report = arm_report,
         .ctx = &delete_location},
        {.name = "arm: POST with a final Location",
         .setup = arm_setup,
         .run = arm_run,
         .report = arm_report,
         .ctx = &post_final},
        {.name = "arm: refused with an error body",
         .setup = arm_setup,
         .run = arm_run,
         .report = arm_report,
         .ctx = &refused},
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++)
        torture_run_case(&cases[i]);
}

/* ---- the id set ----------------------------------------------------------- */

#define IDSET_IDS 200
#define IDSET_LINE_IDS 40

typedef struct idset_ctx {
    sky_idset *set;
    int added[IDSET_IDS + IDSET_LINE_IDS];
    int again[IDSET_IDS]; /* the second add of each id */
} idset_ctx;

static sky_span idset_id(char *buf, size_t len, int i)
{
    int n;
    if (i < IDSET_IDS)
        n = snprintf(buf, len, "custom-id-%d", i);
    else /* line ids are kept as bits: far apart, so the bit words grow */
        n = snprintf(buf, len, "skyio-input-line-%d", 1 + (i - IDSET_IDS) * 997);
    return sky_span_make(buf, (size_t)n);
}

static int idset_run(void *p)
{
    idset_ctx *c = p;
    char buf[64];
    int first = 0;
    c->set = sky_idset_new(0);
    if (c->set == NULL)
        return SKY_ENOMEM;
    /* every add, even after a failure: the set must be unchanged by one that fails */
    for (int i = 0; i < IDSET_IDS + IDSET_LINE_IDS; i++) {
        c->added[i] = sky_idset_add(c->set, idset_id(buf, sizeof(buf), i));
        if (c->added[i] < 0 && first == 0)
            first = c->added[i];
    }
    for (int i = 0; i < IDSET_IDS; i++)
        c->again[i] = sky_idset_add(c->set, idset_id(buf, sizeof(buf), i));
    return first;
}

static void idset_report(void *p, int rc, sky_buf *d)
{
    idset_ctx *c = p;
    char buf[64];
    size_t count = 0;
    torture_digest(d, "rc=%s", sky_err_name(rc));
    if (c->set == NULL) {
        torture_assert_int(rc, SKY_ENOMEM);
        return;
    }
    for (int i = 0; i < IDSET_IDS + IDSET_LINE_IDS; i++) {
        int in = sky_idset_contains(c->set, idset_id(buf, sizeof(buf), i));
        int added = c->added[i] == 1 || (i < IDSET_IDS && c->again[i] == 1);
        torture_assert(c->added[i] == 1 || c->added[i] == SKY_ENOMEM);
        torture_assert(i >= IDSET_IDS || c->again[i] == !added || c->again[i] == SKY_ENOMEM ||
                       (c->added[i] < 0 && c->again[i] == 1));
        torture_assert_int(in, added);
        count += (size_t)added;
    }
    torture_assert_int(sky_idset_count(c->set), count);
    torture_digest(d, " count=%zu", count);
    sky_idset_free(c->set);
    c->set = NULL;
}

static void test_idset(void **state)
{
    (void)state;
    idset_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    const torture_case tc =
        CASE("idset: grow slots, arena and bits", idset_run, idset_report, &ctx);
    torture_run_case(&tc);
}

/* ---- JSON helpers --------------------------------------------------------- */

typedef struct json_ctx {
    const char *text;
    json_t *value;
    char *dumped;
    size_t dumped_len;
    sky_error err;
} json_ctx;

static int json_run(void *p)
{
    json_ctx *c = p;
    sky_error_clear(&c->err);
    int rc = sky_json_parse(sky_span_cstr(c->text), &c->value, &c->err);
    if (rc != 0)
        return rc;
    c->dumped = sky_json_dump(c->value, &c->dumped_len);
    return c->dumped ? 0 : SKY_ENOMEM;
}

static void json_report(void *p, int rc, sky_buf *d)
{
    json_ctx *c = p;
    torture_digest(d, "rc=%s dump=%s", sky_err_name(rc), str_or(c->dumped));
    if (c->dumped)
        torture_assert_int(strlen(c->dumped), c->dumped_len);
    if (c->err.code != 0) {
        torture_assert_int(c->err.code, rc);
        torture_assert(c->value == NULL);
        digest_error(d, &c->err);
    }
    json_decref(c->value);
    free(c->dumped);
    c->value = NULL;
    c->dumped = NULL;
}

static void test_json(void **state)
{
    (void)state;
    json_ctx body = {
        .text = "{\"model\":\"m\",\"temperature\":0.2,\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi \\u00e9\"}],\"n\":[1,2.5,1e300,null,true],\"o\":{\"a\":{}}}"};
    json_ctx scalar = {.text = "\"just a string\""};
    json_ctx bad = {.text = "{\"a\": [1, 2,, 3]}"};
    const torture_case cases[] = {
        CASE("json: parse and dump an object", json_run, json_report, &body),
        CASE("json: parse a scalar", json_run, json_report, &scalar),
        CASE("json: parse bad JSON", json_run, json_report, &bad),
    };
    for (size_t i = 0; i < SKY_ARRAY_LEN(cases); i++)
        torture_run_case(&cases[i]);
}

int main(void)
{
    torture_alloc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_lines),
        cmocka_unit_test(test_batch_records),
        cmocka_unit_test(test_batch_output_parse),
        cmocka_unit_test(test_sse),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_connstr),
        cmocka_unit_test(test_sas_and_shared_key),
        cmocka_unit_test(test_blob_xml),
        cmocka_unit_test(test_arm_lro),
        cmocka_unit_test(test_idset),
        cmocka_unit_test(test_json),
    };
    return sky_test_run_group(tests, NULL, torture_summary_teardown);
}
