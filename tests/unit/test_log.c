/* Tests for leveled logging and secret redaction. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "skyio/error.h"
#include "skyio/log.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static char redacted[8192];

/* Redact a NUL-terminated string; the result lives in a static buffer. */
static const char *redact(const char *in)
{
    sky_buf out;
    sky_buf_init(&out, sizeof(redacted) - 1);
    assert_int_equal(sky_redact(sky_span_cstr(in), &out), 0);
    assert_true(out.len < sizeof(redacted));
    memcpy(redacted, out.data ? out.data : "", out.len);
    redacted[out.len] = '\0';
    sky_buf_free(&out);
    return redacted;
}

static void assert_redacts(const char *in, const char *want)
{
    assert_string_equal(redact(in), want);
}

static void assert_unchanged(const char *in)
{
    assert_string_equal(redact(in), in);
}

typedef struct capture {
    int lines;
    sky_log_level level;
    char last[128 * 1024];
    size_t last_len;
} capture;

static capture cap;

static void capture_sink(void *user_data, sky_log_level level, const char *line, size_t len)
{
    capture *c = user_data;
    c->lines++;
    c->level = level;
    assert_true(len < sizeof(c->last));
    memcpy(c->last, line, len);
    c->last[len] = '\0';
    c->last_len = len;
}

static int setup_sink(void **state)
{
    (void)state;
    memset(&cap, 0, sizeof(cap));
    sky_log_set_level(SKY_LOG_TRACE);
    sky_log_set_json(0);
    sky_log_set_sink(capture_sink, &cap);
    return 0;
}

static int teardown_sink(void **state)
{
    (void)state;
    sky_log_set_sink(NULL, NULL);
    sky_log_set_level(SKY_LOG_WARN);
    sky_log_set_json(0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Redaction: headers                                                  */
/* ------------------------------------------------------------------ */

static void test_redact_authorization_header(void **state)
{
    (void)state;
    assert_redacts("Authorization: Bearer abc.def", "Authorization: [REDACTED]");
    assert_redacts("> Authorization: SharedKey acct:c2lnbmF0dXJl\r\nHost: a\r\n",
                   "> Authorization: [REDACTED]\r\nHost: a\r\n");
    assert_redacts("AUTHORIZATION:Basic dXNlcjpwYXNz\nnext line",
                   "AUTHORIZATION:[REDACTED]\nnext line");
    assert_redacts("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: [REDACTED]");
}

static void test_redact_key_headers(void **state)
{
    (void)state;
    assert_redacts("api-key: 0123456789abcdef", "api-key: [REDACTED]");
    assert_redacts("API-KEY:   spaced", "API-KEY:   [REDACTED]");
    assert_redacts("Ocp-Apim-Subscription-Key: k1\r\n",
                   "Ocp-Apim-Subscription-Key: [REDACTED]\r\n");
    assert_redacts("X-IDENTITY-HEADER: idh", "X-IDENTITY-HEADER: [REDACTED]");
    assert_redacts("x-ms-encryption-key: a2V5", "x-ms-encryption-key: [REDACTED]");
    assert_redacts("X-MS-FOO-KEY: v", "X-MS-FOO-KEY: [REDACTED]");
}

static void test_redact_header_lookalikes_stay(void **state)
{
    (void)state;
    assert_unchanged("Authorization failed for this request");
    assert_unchanged("x-ms-encryption-key-sha256: aGFzaA==");
    assert_unchanged("x-ms-version: 2023-11-03");
    assert_unchanged("my-api-key: not-a-listed-header");
    assert_unchanged("Authorization:");
    assert_unchanged("Content-Type: application/json\r\n");
}

static void test_is_secret_header(void **state)
{
    (void)state;
    const char *secret[] = {"Authorization",     "authorization", "Proxy-Authorization",
                            "api-key",           "API-Key",       "Ocp-Apim-Subscription-Key",
                            "x-identity-header", "x-ms-foo-key",  "X-MS-Encryption-Key"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(secret); i++)
        assert_true(sky_redact_is_secret_header(sky_span_cstr(secret[i])));
    const char *plain[] = {"Content-Type",   "x-ms-version",
                           "x-ms-key",       "x-ms-encryption-key-sha256",
                           "Authorizationx", "",
                           "api-keys",       "x-ms--key-x"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(plain); i++)
        assert_false(sky_redact_is_secret_header(sky_span_cstr(plain[i])));
}

/* ------------------------------------------------------------------ */
/* Redaction: bearer tokens and name=value                             */
/* ------------------------------------------------------------------ */

static void test_redact_bearer_anywhere(void **state)
{
    (void)state;
    assert_redacts("token was Bearer eyJ0eXAi.abc-_~+/= and more",
                   "token was Bearer [REDACTED] and more");
    assert_redacts("BEARER xyz", "BEARER [REDACTED]");
    assert_redacts("(bearer  tok)", "(bearer  [REDACTED])");
    assert_unchanged("Bearer");
    assert_unchanged("Bearer ");
    assert_unchanged("Bearers are here");
    assert_unchanged("{\"token_type\":\"Bearer\",\"expires_in\":3599}");
    assert_unchanged("xbearer abc");
    /* a token that names another secret covers that secret's value too */
    assert_redacts("Bearer api-key: k y\nz", "Bearer [REDACTED]: [REDACTED]\nz");
    assert_redacts("Bearer bearer k", "Bearer [REDACTED] [REDACTED]");
    assert_redacts("{\"password\": Bearer k}", "{\"password\": [REDACTED] [REDACTED]}");
}

static void test_redact_sas_sig(void **state)
{
    (void)state;
    assert_redacts("https://a.blob.core.windows.net/c/b?sv=2022-11-02&sig=abc%2Bdef%3D&se=2025",
                   "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sig=[REDACTED]&se=2025");
    assert_redacts("url=\"https://x/?sig=abc\" next", "url=\"https://x/?sig=[REDACTED]\" next");
    assert_redacts("?SIG=abc", "?SIG=[REDACTED]");
    assert_redacts("sig=tail", "sig=[REDACTED]");
    assert_unchanged("signature=abc&xsig=abc&config=abc&sig=");
}

static void test_redact_form_and_query(void **state)
{
    (void)state;
    assert_redacts("grant_type=client_credentials&client_id=abc&client_secret=s3cr3t&scope=x",
                   "grant_type=client_credentials&client_id=abc&client_secret=[REDACTED]&scope=x");
    assert_redacts("client_assertion_type=jwt&client_assertion=eyJ.a.b",
                   "client_assertion_type=jwt&client_assertion=[REDACTED]");
    assert_redacts("?access_token=at1&refresh_token=rt1",
                   "?access_token=[REDACTED]&refresh_token=[REDACTED]");
    assert_redacts("password=hunter2 user=bob", "password=[REDACTED] user=bob");
    assert_redacts("PASSWORD='pw x' ok", "PASSWORD='[REDACTED]' ok");
    assert_redacts("password=\"p w", "password=\"[REDACTED]");
}

static void test_redact_connection_string(void **state)
{
    (void)state;
    assert_redacts("DefaultEndpointsProtocol=https;AccountName=dev;AccountKey=Eby8vd==;"
                   "EndpointSuffix=core.windows.net",
                   "DefaultEndpointsProtocol=https;AccountName=dev;AccountKey=[REDACTED];"
                   "EndpointSuffix=core.windows.net");
    assert_redacts("accountkey=k", "accountkey=[REDACTED]");
    assert_redacts("BlobEndpoint=https://a/;SharedAccessSignature=sv=2020&ss=b&sig=abc;x=1",
                   "BlobEndpoint=https://a/;SharedAccessSignature=[REDACTED];x=1");
}

static void test_redact_param_lookalikes_stay(void **state)
{
    (void)state;
    assert_unchanged("password_hint=blue&passwords=3&mypassword=x&client_secret_id=1");
    assert_unchanged("AccountName=dev;AccountKeyName=primary");
    assert_unchanged("access_token is missing");
}

/* ------------------------------------------------------------------ */
/* Redaction: JSON keys                                                */
/* ------------------------------------------------------------------ */

static void test_redact_json_keys(void **state)
{
    (void)state;
    assert_redacts("{\"client_secret\": \"abc\", \"client_id\": \"id\"}",
                   "{\"client_secret\": \"[REDACTED]\", \"client_id\": \"id\"}");
    assert_redacts(
        "{\"token_type\":\"Bearer\",\"access_token\":\"eyJ.x.y\",\"refresh_token\":\"r\"}",
        "{\"token_type\":\"Bearer\",\"access_token\":\"[REDACTED]\","
        "\"refresh_token\":\"[REDACTED]\"}");
    assert_redacts("{\"api_key\" : \"k\"}", "{\"api_key\" : \"[REDACTED]\"}");
    assert_redacts("{\"Password\":\"p\"}", "{\"Password\":\"[REDACTED]\"}");
    assert_redacts("{\"accessToken\":\n  \"t\"}", "{\"accessToken\":\n  \"[REDACTED]\"}");
}

static void test_redact_json_edge_cases(void **state)
{
    (void)state;
    /* escaped quote inside the secret, then more JSON */
    assert_redacts("{\"password\":\"a\\\"b\\\\\",\"x\":1}",
                   "{\"password\":\"[REDACTED]\",\"x\":1}");
    /* cut short: everything to the end goes */
    assert_redacts("{\"access_token\":\"eyJabc", "{\"access_token\":\"[REDACTED]");
    /* a secret that is not a string */
    assert_redacts("{\"password\": 12345}", "{\"password\": [REDACTED]}");
    assert_unchanged("{\"password\": null}");
    assert_unchanged("{\"password\": \"\"}");
    /* JSON quoted inside a JSON string */
    assert_redacts("body={\\\"client_secret\\\":\\\"a\\\\\\\"b\\\",\\\"n\\\":1}",
                   "body={\\\"client_secret\\\":\\\"[REDACTED]\\\",\\\"n\\\":1}");
    /* a Python dict */
    assert_redacts("{'password': 'pw', 'user': 'u'}", "{'password': '[REDACTED]', 'user': 'u'}");
}

static void test_redact_json_lookalikes_stay(void **state)
{
    (void)state;
    assert_unchanged("{\"password_policy\": \"strict\", \"passwords\": 3}");
    assert_unchanged("{\"note\": \"password\", \"x\": \"access_token\"}");
    assert_unchanged("{\"token_type\": \"Bearer\"}");
}

/* ------------------------------------------------------------------ */
/* Redaction: arbitrary input                                          */
/* ------------------------------------------------------------------ */

static void test_redact_empty_and_null(void **state)
{
    (void)state;
    sky_buf out;
    sky_buf_init(&out, 64);
    assert_int_equal(sky_redact(sky_span_make(NULL, 0), &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(sky_redact(sky_span_cstr(""), &out), 0);
    assert_int_equal(out.len, 0);
    sky_buf_free(&out);
}

static void test_redact_binary_bytes(void **state)
{
    (void)state;
    static const char in[] = "a\0b\xff\x80 Authorization: x\0y\nsig=\xfe\xfd&z";
    static const char want[] = "a\0b\xff\x80 Authorization: [REDACTED]\nsig=[REDACTED]&z";
    sky_buf out;
    sky_buf_init(&out, 1024);
    assert_int_equal(sky_redact(sky_span_make(in, sizeof(in) - 1), &out), 0);
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, sizeof(want) - 1);
    sky_buf_free(&out);
}

static void test_redact_idempotent(void **state)
{
    (void)state;
    const char *in = "Authorization: Bearer a\nx?sig=b&password=c {\"api_key\":\"d\"} bearer e";
    char once[512];
    snprintf(once, sizeof(once), "%s", redact(in));
    assert_string_equal(redact(once), once);
    assert_non_null(strstr(once, "bearer [REDACTED]"));
    assert_null(strstr(once, "sig=b"));
}

/*
 * Secrets nested in secrets are rescanned; a quadratic scan would take
 * minutes on these and trip the test timeout.
 */
static void test_redact_hostile_input_is_linear(void **state)
{
    (void)state;
    static const char *const units[] = {"api-key:", "password=", "bearer ",
                                        "\"password\":", "Bearer api-key: "};
    size_t n = 4u << 20;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t u = 0; u < SKY_ARRAY_LEN(units); u++) {
        size_t len = strlen(units[u]);
        for (size_t i = 0; i + len <= n; i += len)
            memcpy(in + i, units[u], len);
        sky_buf out;
        sky_buf_init(&out, 8 * n);
        assert_int_equal(sky_redact(sky_span_make(in, n - n % len), &out), 0);
        assert_non_null(strstr(out.data, "[REDACTED]"));
        sky_buf_free(&out);
    }
    free(in);
}

static void test_redact_cap_reported(void **state)
{
    (void)state;
    sky_buf out;
    sky_buf_init(&out, 12);
    assert_int_equal(sky_redact(sky_span_cstr("password=abcdef"), &out), SKY_ETOOBIG);
    sky_buf_free(&out);
}

/*
 * Whole secret-bearing fragments joined in random order and with random
 * separators: the secret value must never come through.
 */
static void test_redact_random_mix(void **state)
{
    (void)state;
    static const char *const frags[] = {
        "Authorization: Bearer S3CRET\n",
        "bearer S3CRET",
        "sig=S3CRET",
        "?a=1&sig=S3CRET&b=2",
        "client_secret=S3CRET",
        "AccountKey=S3CRET;",
        "{\"password\":\"S3CRET\"}",
        "{\"access_token\": \"S3CRET\"}",
        "api-key: S3CRET\r\n",
        "hello",
        "\"quoted\"",
        "{\"a\":[1,2]}",
        "\xff\xfe",
        "x=y",
        "Bearer",
        ";",
        "'",
        "\\\"",
    };
    static const char *const seps[] = {" ", "\n", "&", "\r\n", ", "};
    srand(12345);
    for (int round = 0; round < 20000; round++) {
        char in[1024] = "";
        int n = 1 + rand() % 8;
        for (int i = 0; i < n; i++) {
            strcat(in, frags[rand() % (int)SKY_ARRAY_LEN(frags)]);
            strcat(in, seps[rand() % (int)SKY_ARRAY_LEN(seps)]);
        }
        const char *out = redact(in);
        if (strstr(out, "S3CRET") != NULL)
            fail_msg("secret leaked: in=[%s] out=[%s]", in, out);
    }
}

/* ------------------------------------------------------------------ */
/* Levels and configuration                                            */
/* ------------------------------------------------------------------ */

static void test_parse_level(void **state)
{
    (void)state;
    const char *names[] = {"trace", "DEBUG", "Info", "warn", "error", "OFF"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(names); i++) {
        sky_log_level lv = SKY_LOG_OFF;
        assert_int_equal(sky_log_parse_level(names[i], &lv), 0);
        assert_int_equal(lv, (sky_log_level)i);
    }
    sky_log_level lv = SKY_LOG_INFO;
    assert_int_equal(sky_log_parse_level("verbose", &lv), SKY_EINVAL);
    assert_int_equal(sky_log_parse_level("", &lv), SKY_EINVAL);
    assert_int_equal(sky_log_parse_level(NULL, &lv), SKY_EINVAL);
    assert_int_equal(lv, SKY_LOG_INFO);
}

static void test_level_filtering(void **state)
{
    (void)state;
    sky_log_set_level(SKY_LOG_WARN);
    assert_int_equal(sky_log_get_level(), SKY_LOG_WARN);
    assert_false(sky_log_enabled(SKY_LOG_INFO));
    assert_true(sky_log_enabled(SKY_LOG_WARN));
    assert_true(sky_log_enabled(SKY_LOG_ERROR));
    sky_log(SKY_LOG_INFO, "t", "dropped");
    sky_log(SKY_LOG_DEBUG, "t", "dropped");
    assert_int_equal(cap.lines, 0);
    sky_log(SKY_LOG_WARN, "t", "kept");
    sky_log(SKY_LOG_ERROR, "t", "kept");
    assert_int_equal(cap.lines, 2);
    assert_int_equal(cap.level, SKY_LOG_ERROR);
}

static void test_level_off(void **state)
{
    (void)state;
    sky_log_set_level(SKY_LOG_OFF);
    assert_false(sky_log_enabled(SKY_LOG_ERROR));
    sky_log(SKY_LOG_ERROR, "t", "nothing");
    assert_int_equal(cap.lines, 0);
    /* OFF is not a level a message can be written at. */
    sky_log_set_level(SKY_LOG_TRACE);
    assert_false(sky_log_enabled(SKY_LOG_OFF));
}

static int side_effects;

static int count_call(void)
{
    return ++side_effects;
}

static void test_macros_skip_formatting(void **state)
{
    (void)state;
    side_effects = 0;
    sky_log_set_level(SKY_LOG_ERROR);
    SKY_INFO("t", "value %d", count_call());
    assert_int_equal(side_effects, 0);
    assert_int_equal(cap.lines, 0);
    SKY_ERROR("t", "value %d", count_call());
    assert_int_equal(side_effects, 1);
    assert_int_equal(cap.lines, 1);
}

static void test_set_level_beats_environment(void **state)
{
    (void)state;
    sky_log_set_level(SKY_LOG_INFO);
    setenv("SKYIO_LOG", "trace", 1);
    assert_int_equal(sky_log_get_level(), SKY_LOG_INFO);
    unsetenv("SKYIO_LOG");
}

/* Run this program again with SKYIO_LOG set (or unset) and read back its first level. */
static int level_in_child(const char *env)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (env)
            setenv("SKYIO_LOG", env, 1);
        else
            unsetenv("SKYIO_LOG");
        execl("/proc/self/exe", "test_log", "--print-env-level", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_level_from_environment(void **state)
{
    (void)state;
    assert_int_equal(level_in_child("debug"), SKY_LOG_DEBUG);
    assert_int_equal(level_in_child("ERROR"), SKY_LOG_ERROR);
    assert_int_equal(level_in_child("nonsense"), SKY_LOG_WARN);
    assert_int_equal(level_in_child(NULL), SKY_LOG_WARN);
}

/* ------------------------------------------------------------------ */
/* Line formats and sinks                                              */
/* ------------------------------------------------------------------ */

static void assert_timestamp(const char *ts)
{
    /* 2026-11-21T23:17:06.123Z */
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'd')
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        else
            assert_int_equal(ts[i], shape[i]);
    }
}

static void test_text_format(void **state)
{
    (void)state;
    sky_log(SKY_LOG_WARN, "http", "retry %d of %s", 2, "3");
    assert_int_equal(cap.lines, 1);
    assert_int_equal(cap.level, SKY_LOG_WARN);
    assert_timestamp(cap.last);
    assert_string_equal(cap.last + 24, " WARN  http: retry 2 of 3");
    assert_int_equal(cap.last_len, strlen(cap.last));
    sky_log(SKY_LOG_ERROR, NULL, "x");
    assert_string_equal(cap.last + 24, " ERROR skyio: x");
    sky_log(SKY_LOG_INFO, "m", "y");
    assert_string_equal(cap.last + 24, " INFO  m: y");
}

static void test_text_line_is_redacted(void **state)
{
    (void)state;
    sky_log(SKY_LOG_ERROR, "http", "sent %s to %s", "Authorization: Bearer tok123",
            "https://a/?sig=zzz&sv=1");
    assert_null(strstr(cap.last, "tok123"));
    assert_null(strstr(cap.last, "zzz"));
    assert_non_null(strstr(cap.last, "Authorization: [REDACTED]"));
}

static json_t *parse_last_line(void)
{
    json_error_t jerr;
    json_t *obj = json_loadb(cap.last, cap.last_len, 0, &jerr);
    if (obj == NULL)
        fail_msg("not JSON: %s (%s)", cap.last, jerr.text);
    return obj;
}

static void test_json_format(void **state)
{
    (void)state;
    sky_log_set_json(1);
    sky_log(SKY_LOG_WARN, "auth", "token %s \"quoted\"\n\ttab", "{\"access_token\":\"eyJsecret\"}");
    assert_int_equal(cap.lines, 1);
    assert_null(strchr(cap.last, '\n'));
    assert_memory_equal(cap.last, "{\"ts\":\"", 7);
    json_t *obj = parse_last_line();
    assert_int_equal(json_object_size(obj), 4);
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(obj, "component")), "auth");
    assert_timestamp(json_string_value(json_object_get(obj, "ts")));
    assert_string_equal(json_string_value(json_object_get(obj, "msg")),
                        "token {\"access_token\":\"[REDACTED]\"} \"quoted\"\n\ttab");
    json_decref(obj);
}

static void test_json_format_odd_bytes(void **state)
{
    (void)state;
    sky_log_set_json(1);
    sky_log(SKY_LOG_ERROR, "x", "bad utf8 \xff\xfe ctrl \x01 end");
    json_t *obj = parse_last_line();
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")),
                        "bad utf8 ?? ctrl \x01 end");
    json_decref(obj);
}

static void test_long_message_is_cut(void **state)
{
    (void)state;
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = '\0';
    sky_log(SKY_LOG_WARN, "t", "%s", big);
    free(big);
    assert_int_equal(cap.lines, 1);
    assert_true(cap.last_len < 70 * 1024);
    assert_non_null(strstr(cap.last, " [truncated]"));
}

static void test_sink_user_data_and_reset(void **state)
{
    (void)state;
    capture *other = calloc(1, sizeof(*other));
    assert_non_null(other);
    sky_log_set_sink(capture_sink, other);
    sky_log(SKY_LOG_ERROR, "t", "to other");
    assert_int_equal(other->lines, 1);
    assert_int_equal(cap.lines, 0);
    free(other);
}

static void test_default_sink_is_stderr(void **state)
{
    (void)state;
    sky_log_set_sink(NULL, NULL);
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    sky_log(SKY_LOG_ERROR, "cli", "to stderr password=pw1");
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    char got[256] = "";
    rewind(tmp);
    size_t n = fread(got, 1, sizeof(got) - 1, tmp);
    fclose(tmp);
    got[n] = '\0';
    assert_string_equal(got + 24, " ERROR cli: to stderr password=[REDACTED]\n");
    assert_int_equal(cap.lines, 0);
}

int main(int argc, char **argv)
{
    /* The environment is read once per process, so that test runs in a child. */
    if (argc > 1 && strcmp(argv[1], "--print-env-level") == 0)
        return (int)sky_log_get_level();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redact_authorization_header),
        cmocka_unit_test(test_redact_key_headers),
        cmocka_unit_test(test_redact_header_lookalikes_stay),
        cmocka_unit_test(test_is_secret_header),
        cmocka_unit_test(test_redact_bearer_anywhere),
        cmocka_unit_test(test_redact_sas_sig),
        cmocka_unit_test(test_redact_form_and_query),
        cmocka_unit_test(test_redact_connection_string),
        cmocka_unit_test(test_redact_param_lookalikes_stay),
        cmocka_unit_test(test_redact_json_keys),
        cmocka_unit_test(test_redact_json_edge_cases),
        cmocka_unit_test(test_redact_json_lookalikes_stay),
        cmocka_unit_test(test_redact_empty_and_null),
        cmocka_unit_test(test_redact_binary_bytes),
        cmocka_unit_test(test_redact_idempotent),
        cmocka_unit_test(test_redact_hostile_input_is_linear),
        cmocka_unit_test(test_redact_cap_reported),
        cmocka_unit_test(test_redact_random_mix),
        cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_level_from_environment),
        cmocka_unit_test_setup_teardown(test_level_filtering, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_level_off, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_macros_skip_formatting, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_set_level_beats_environment, setup_sink,
                                        teardown_sink),
        cmocka_unit_test_setup_teardown(test_text_format, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_text_line_is_redacted, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_json_format, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_json_format_odd_bytes, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_long_message_is_cut, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_sink_user_data_and_reset, setup_sink, teardown_sink),
        cmocka_unit_test_setup_teardown(test_default_sink_is_stderr, setup_sink, teardown_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
