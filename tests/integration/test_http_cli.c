/*
 * `skyio http` as a user runs it, against `skyio mock` on loopback: what its --help
 * promises (modes, options, output, exit codes) and how it meets bad input. Outcomes are
 * read from what the binary printed and from what the mock counted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "harness.h"
#include "harness_cli.h"
#include "skyio/json.h"

static const char chat_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5}";
static const char stream_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":8,\"stream\":true}";

/* What one run of the binary left: its exit code, stdout and stderr. */
typedef sky_test_cli_out run;

/* Run `skyio http ARGS` (split as a shell would) and wait; a crash fails the test. */
#define http_cli(r, ...) sky_test_run_skyio((r), "http", __VA_ARGS__)

static int64_t json_int_at(const json_t *j, const char *path)
{
    json_t *v = sky_json_path(j, path);
    if (!json_is_integer(v))
        fail_msg("no integer at %s", path);
    return (int64_t)json_integer_value(v);
}

/* Does @p hay hold @p needle, ignoring ASCII case? (Header names' case is the server's.) */
static int has_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* A file holding @p text in @p dir; its path is written to @p out. */
static void write_file(const char *dir, const char *name, const char *text, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- --help and the options it names ---- */

/* The "-X, --method M" part of a help line that names options, or NULL. */
static const char *synopsis(const char *line, char *out, size_t cap)
{
    while (*line == ' ')
        line++;
    if (line[0] != '-')
        return NULL;
    const char *end = strstr(line, "  ");
    size_t n = end ? (size_t)(end - line) : strlen(line);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, line, n);
    out[n] = '\0';
    return out;
}

/*
 * Every option --help lists is one the parser takes: `skyio http OPTION [VALUE] --help`
 * stops at --help with exit 0, where an option it does not know is a usage error first.
 * Returns how many options were tried.
 */
static int try_each_documented_option(const char *help)
{
    char syn[128], *save = NULL;
    char *copy = strdup(help);
    int tried = 0;
    assert_non_null(copy);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (synopsis(line, syn, sizeof(syn)) == NULL)
            continue;
        /* "-X, --method M": options, then perhaps the value's name ('N: V': a header) */
        const char *value = strchr(syn, ':') ? "'A: b'" : "1";
        char *names[4], *s2 = NULL;
        int n = 0, has_value = 0;
        for (char *tok = strtok_r(syn, ", ", &s2); tok; tok = strtok_r(NULL, ", ", &s2)) {
            if (tok[0] == '-' && n < 4)
                names[n++] = tok;
            else
                has_value = 1;
        }
        for (int i = 0; i < n; i++) {
            run r;
            http_cli(&r, "%s %s --help", names[i], has_value ? value : "");
            if (r.code != 0)
                fail_msg("--help lists %s but the parser refuses it (exit %d): %s", names[i],
                         r.code, r.err);
            assert_non_null(strstr(r.out, "usage: skyio http"));
            tried++;
        }
    }
    free(copy);
    return tried;
}

static void test_help(void **state)
{
    static const char *const options[] = {
        "-X, --method",  "-d, --data",        "-H, --header",   "--json-body",       "--sse",
        "-i, --include", "--timeout-ms",      "--cacert",       "-k, --insecure",    "--http1.1",
        "--h2c",         "--max-connections", "-n, --requests", "-c, --concurrency", "--json",
        "--rate",        "--duration",        "--latency-log"};
    run r, h;
    (void)state;
    http_cli(&r, "--help");
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    assert_true(strncmp(r.out, "usage: skyio http [options] URL\n", 32) == 0);
    for (size_t i = 0; i < SKY_ARRAY_LEN(options); i++)
        if (strstr(r.out, options[i]) == NULL)
            fail_msg("--help does not name %s", options[i]);
    assert_non_null(strstr(r.out, "exit: 0"));
    http_cli(&h, "-h");
    assert_int_equal(h.code, 0);
    assert_string_equal(h.out, r.out);
    /* 25 spellings in 18 lines: the help and the parser agree on every one */
    assert_int_equal(try_each_documented_option(r.out), 25);
}

/* ---- one request ---- */

static void test_get_prints_the_body(void **state)
{
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    http_cli(&r, "%s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    /* stdout is the body and nothing else */
    json_t *j = sky_test_cli_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "list");
    assert_string_equal(json_string_value(sky_json_path(j, "data.0.id")), "gpt-4o-mini");
    json_decref(j);
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.models"), 1);
    /* an error status: exit 1, the status on stderr, the error body still on stdout */
    http_cli(&r, "%s/v1/no-such-thing", m.base_url);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "HTTP 404"));
    j = sky_test_cli_json(&r);
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")), "not_found");
    json_decref(j);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_post_data(void **state)
{
    sky_test_mock m;
    run r;
    char dir[256], file[512];
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    sky_test_tmpdir(dir, sizeof(dir));
    /* -d makes it a POST (chat takes nothing else); --json-body labels it */
    http_cli(&r, "-d '%s' --json-body %s/v1/chat/completions", chat_body, m.base_url);
    assert_int_equal(r.code, 0);
    json_t *j = sky_test_cli_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "chat.completion");
    assert_int_equal(json_int_at(j, "usage.completion_tokens"), 5);
    int64_t prompt = json_int_at(j, "usage.prompt_tokens");
    json_decref(j);
    /* @FILE: the file's bytes are the body (the mock counts the same prompt) */
    write_file(dir, "body.json", chat_body, file, sizeof(file));
    http_cli(&r, "-d @%s -H 'Content-Type: application/json' %s/v1/chat/completions", file,
             m.base_url);
    assert_int_equal(r.code, 0);
    j = sky_test_cli_json(&r);
    assert_int_equal(json_int_at(j, "usage.prompt_tokens"), prompt);
    json_decref(j);
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.chat"), 2);
    /* no Content-Type unless asked for: the mock refuses it, and says why on stdout */
    http_cli(&r, "-d '%s' %s/v1/chat/completions", chat_body, m.base_url);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "HTTP 400"));
    j = sky_test_cli_json(&r);
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")),
                        "unsupported_content_type");
    json_decref(j);
    /* a file that is not there: a usage error, and nothing sent */
    int64_t before = sky_test_mock_stat(&m, "requests");
    http_cli(&r, "-d @%s/missing.json --json-body %s/v1/chat/completions", dir, m.base_url);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "cannot read"));
    assert_non_null(strstr(r.err, "missing.json"));
    assert_int_equal(sky_test_mock_stat(&m, "requests"), before);
    sky_test_rmdir(dir);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_method_headers_and_include(void **state)
{
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    /* -i: status and headers on stderr, the body alone on stdout; -H goes out (the mock
     * echoes the request id) */
    http_cli(&r, "-i -H 'X-Ms-Client-Request-Id: abc-123' %s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_true(strncmp(r.err, "HTTP 200\n", 9) == 0);
    assert_true(has_nocase(r.err, "\nx-ms-client-request-id: abc-123\n"));
    assert_true(has_nocase(r.err, "\ncontent-type: application/json"));
    json_t *j = sky_test_cli_json(&r);
    assert_string_equal(sky_json_str(j, "object", ""), "list");
    json_decref(j);
    /* without -i, stderr stays empty */
    http_cli(&r, "-H 'X-Ms-Client-Request-Id: abc-123' %s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.err, "");
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.models"), 2);
    /* -X: the mock's counters are zeroed only by a POST to /mock/reset */
    http_cli(&r, "--method POST %s/mock/reset", m.base_url);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"reset\":true"));
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.models"), 0);
    /* and a header that is not 'Name: value' is a usage error */
    http_cli(&r, "-H NoColon %s/v1/models", m.base_url);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "'NoColon' is not 'Name: value'"));
    assert_string_equal(r.out, "");
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.models"), 0);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_sse(void **state)
{
    static const char *const args[] = {"--per-token-ms", "2", NULL};
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    http_cli(&r, "--sse --json-body -d '%s' %s/v1/chat/completions", stream_body, m.base_url);
    assert_int_equal(r.code, 0);
    /* each event's data on its own line: a role chunk, 8 tokens, a finish chunk; the
     * [DONE] ends it and is not printed */
    assert_int_equal(count_lines(r.out), 10);
    assert_null(strstr(r.out, "[DONE]"));
    assert_null(strstr(r.out, "data:"));
    char *save = NULL;
    int chunks = 0;
    for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = NULL;
        assert_int_equal(sky_json_parse(sky_span_cstr(line), &j, NULL), 0);
        assert_string_equal(sky_json_str(j, "object", ""), "chat.completion.chunk");
        json_decref(j);
        chunks++;
    }
    assert_int_equal(chunks, 10);
    assert_int_equal(sky_test_mock_stat(&m, "streams"), 1);
    /* a reply that is no event stream (the mock's JSON error) is shown as it came */
    http_cli(&r, "--sse --json-body -d '{\"model\":' %s/v1/chat/completions", m.base_url);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "HTTP 400"));
    json_t *j = sky_test_cli_json(&r);
    assert_string_equal(json_string_value(sky_json_path(j, "error.code")), "invalid_json");
    json_decref(j);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_timeout(void **state)
{
    /* a slow reply, not a hung one: the mock would hold a hung request through its 5 s
     * grace at stop, long after the client left */
    static const char *const args[] = {"--ttft-ms", "2000", "--jitter", "0", NULL};
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    uint64_t t0 = uv_hrtime();
    http_cli(&r, "--timeout-ms 700 --json-body -d '%s' %s/v1/chat/completions", chat_body,
             m.base_url);
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "ETIMEDOUT"));
    assert_string_equal(r.out, "");
    assert_true(ms >= 700);
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.chat"),
                     1); /* the request did reach the mock */
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* ---- many requests ---- */

static void test_many_json_summary(void **state)
{
    static const char *const args[] = {"--ttft-ms", "20", "--jitter", "0", NULL};
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    http_cli(&r, "-n 40 -c 8 --json --json-body -d '%s' %s/v1/chat/completions", chat_body,
             m.base_url);
    assert_int_equal(r.code, 0);
    json_t *j = sky_test_cli_json(&r);
    assert_int_equal(json_int_at(j, "requests"), 40);
    assert_int_equal(json_int_at(j, "ok"), 40);
    assert_int_equal(json_int_at(j, "failed"), 0);
    assert_int_equal(json_int_at(j, "status.200"), 40);
    assert_int_equal(json_object_size(json_object_get(j, "status")), 1);
    assert_int_equal(json_object_size(json_object_get(j, "errors")), 0);
    /* -c is what stays in flight: never more, and the 20 ms replies let it fill */
    assert_int_equal(json_int_at(j, "max_in_flight"), 8);
    /* 40 replies of 20 ms, 8 at a time: at least 5 rounds */
    assert_true(json_real_value(json_object_get(j, "seconds")) >= 0.1);
    json_decref(j);
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.chat"), 40);
    assert_int_equal(sky_test_mock_stat(&m, "responses.200"), 40);
    /* the text summary says the same */
    http_cli(&r, "--requests 5 --concurrency 2 %s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "requests: 5  ok: 5  failed: 0\n"));
    assert_non_null(strstr(r.out, "in flight at most: 2 "));
    assert_non_null(strstr(r.out, "  HTTP 200: 5\n"));
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.models"), 5);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* Some replies are errors: exit 1, and the summary's counts are the mock's. */
static void test_many_with_failures(void **state)
{
    static const char *const args[] = {"--fault-500", "0.4", "--seed", "7", NULL};
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    http_cli(&r, "-n 30 -c 4 --json --json-body -d '%s' %s/v1/chat/completions", chat_body,
             m.base_url);
    assert_int_equal(r.code, 1);
    json_t *j = sky_test_cli_json(&r);
    int64_t faults = sky_test_mock_stat(&m, "faults.http_500");
    assert_true(faults > 0 && faults < 30);
    assert_int_equal(json_int_at(j, "requests"), 30);
    assert_int_equal(json_int_at(j, "status.500"), faults);
    assert_int_equal(json_int_at(j, "status.200"), sky_test_mock_stat(&m, "responses.200"));
    assert_int_equal(json_int_at(j, "ok"), 30 - faults);
    assert_int_equal(json_int_at(j, "failed"), faults);
    json_decref(j);
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.chat"), 30);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* ---- TLS, HTTP/2 and connections ---- */

/* Connections the mock accepted for one run of the binary (the stats reads' own left out). */
static int64_t conns_for(const sky_test_mock *m, run *r, const char *args)
{
    int64_t before = sky_test_mock_stat(m, "connections");
    http_cli(r, "%s", args);
    return sky_test_mock_stat(m, "connections") - before - 1;
}

/* h2o sends HTTP/1.1's "Connection: keep-alive"; HTTP/2 forbids such a header. */
static int spoke_http1(const run *r)
{
    return has_nocase(r->err, "\nconnection: keep-alive\n");
}

static void test_tls_and_connections(void **state)
{
    static const char *const args[] = {"--ttft-ms", "100", "--jitter", "0", NULL};
    sky_test_mock m;
    run r;
    char ca[512], common[1024], cmd[2048];
    (void)state;
    memset(&m, 0, sizeof(m));
    m.tls = 1;
    sky_test_mock_start(&m, args);
    snprintf(ca, sizeof(ca), "%s/ca.pem", m.dir);
    /* an unknown CA: could not connect, exit 3 */
    http_cli(&r, "%s/v1/models", m.base_url);
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "ETLS"));
    assert_string_equal(r.out, "");
    /* --cacert trusts it, -k skips the check; both speak HTTP/2 */
    http_cli(&r, "-i --cacert %s %s/v1/models", ca, m.base_url);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "gpt-4o-mini"));
    assert_false(spoke_http1(&r));
    http_cli(&r, "-k -i %s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "gpt-4o-mini"));
    assert_false(spoke_http1(&r));
    http_cli(&r, "--insecure --http1.1 -i %s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_true(spoke_http1(&r));
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.models"), 3);
    /* 20 at once: one HTTP/2 connection; over HTTP/1.1 one each, or --max-connections */
    snprintf(common, sizeof(common), "-n 20 -c 20 --json --cacert %s --json-body -d '%s' %s", ca,
             chat_body, m.base_url);
    snprintf(cmd, sizeof(cmd), "%s/v1/chat/completions", common);
    assert_int_equal(conns_for(&m, &r, cmd), 1);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"ok\":20,"));
    snprintf(cmd, sizeof(cmd), "--http1.1 %s/v1/chat/completions", common);
    assert_int_equal(conns_for(&m, &r, cmd), 20);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"ok\":20,"));
    snprintf(cmd, sizeof(cmd), "--http1.1 --max-connections 2 %s/v1/chat/completions", common);
    assert_int_equal(conns_for(&m, &r, cmd), 2);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "\"ok\":20,"));
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.chat"), 60);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_h2c(void **state)
{
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    http_cli(&r, "-i %s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_true(spoke_http1(&r));
    http_cli(&r, "--h2c -i %s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_false(spoke_http1(&r));
    assert_non_null(strstr(r.out, "gpt-4o-mini"));
    http_cli(&r, "--h2c -n 10 -c 10 --json --json-body -d '%s' %s/v1/chat/completions", chat_body,
             m.base_url);
    assert_int_equal(r.code, 0);
    json_t *j = sky_test_cli_json(&r);
    assert_int_equal(json_int_at(j, "ok"), 10);
    json_decref(j);
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.chat"), 10);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* ---- bad input ---- */

/* A usage error: exit 2, @p says on stderr, nothing on stdout. */
static void expect_usage(const run *r, const char *says)
{
    if (r->code != 2 || strstr(r->err, says) == NULL)
        fail_msg("expected exit 2 saying \"%s\"; got exit %d:\n%s", says, r->code, r->err);
    assert_string_equal(r->out, "");
}

static void test_usage_errors(void **state)
{
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    http_cli(&r, "%s", "");
    expect_usage(&r, "a URL is required");
    http_cli(&r, "%s/v1/models %s/v1/models", m.base_url, m.base_url);
    expect_usage(&r, "more than one URL");
    /* an unknown option is called so, wherever it stands */
    http_cli(&r, "--bogus %s/v1/models", m.base_url);
    expect_usage(&r, "unknown option '--bogus'");
    http_cli(&r, "%s/v1/models --bogus", m.base_url);
    expect_usage(&r, "unknown option '--bogus'");
    assert_null(strstr(r.err, "needs a value"));
    http_cli(&r, "%s/v1/models -n", m.base_url);
    expect_usage(&r, "-n needs a value");
    http_cli(&r, "-n 0 %s/v1/models", m.base_url);
    expect_usage(&r, "'0' is not a whole number >= 1");
    http_cli(&r, "-c many %s/v1/models", m.base_url);
    expect_usage(&r, "'many' is not a whole number >= 1");
    http_cli(&r, "--timeout-ms -5 %s/v1/models", m.base_url);
    expect_usage(&r, "'-5' is not a whole number >= 0");
    /* none of them sent anything */
    assert_int_equal(sky_test_mock_stat(&m, "requests"), 0);
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.models"), 0);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_bad_url_and_unreachable(void **state)
{
    run r;
    (void)state;
    /* URLs curl cannot use: usage errors that say so */
    http_cli(&r, "http://");
    expect_usage(&r, "URL");
    http_cli(&r, "http://127.0.0.1:99999/");
    expect_usage(&r, "URL");
    http_cli(&r, "-n 3 http://");
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "first error: EINVAL"));
    /* nobody listens on port 1: could not connect, exit 3, and the reason */
    http_cli(&r, "http://127.0.0.1:1/");
    assert_int_equal(r.code, 3);
    assert_non_null(strstr(r.err, "ECONNECT"));
    assert_non_null(strstr(r.err, "127.0.0.1 port 1"));
    assert_string_equal(r.out, "");
    /* the same for every one of -n */
    http_cli(&r, "-n 3 --json http://127.0.0.1:1/");
    assert_int_equal(r.code, 3);
    json_t *j = sky_test_cli_json(&r);
    assert_int_equal(json_int_at(j, "failed"), 3);
    assert_int_equal(json_int_at(j, "errors.ECONNECT"), 3);
    json_decref(j);
    assert_non_null(strstr(r.err, "first error: ECONNECT"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_get_prints_the_body),
        cmocka_unit_test(test_post_data),
        cmocka_unit_test(test_method_headers_and_include),
        cmocka_unit_test(test_sse),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_many_json_summary),
        cmocka_unit_test(test_many_with_failures),
        cmocka_unit_test(test_tls_and_connections),
        cmocka_unit_test(test_h2c),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_url_and_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
