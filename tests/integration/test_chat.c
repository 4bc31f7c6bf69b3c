/* `skyio chat` as a user runs it, against `skyio mock`. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_cli.h"
#include "skyio/ai.h"
#include "skyio/json.h"

static int count_words(const char *s)
{
    int n = 0, in = 0;
    for (; *s && *s != '\n'; s++) {
        if (*s != ' ' && !in)
            n++;
        in = *s != ' ';
    }
    return n;
}

static void test_streams_one_answer(void **state)
{
    static const char *const args[] = {"--key", "k", "--per-token-ms", "5", NULL};
    sky_test_mock m;
    char cmd[1024], out[8192];
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    snprintf(cmd, sizeof(cmd),
             "OPENAI_API_KEY=k OPENAI_BASE_URL=%s/v1 %s chat -n 12 --usage 'say hi' 2>&1",
             m.base_url, SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 0);
    assert_int_equal(count_words(out), 12);
    assert_non_null(strstr(out, "completion 12 tokens"));
    /* the prompt from standard input, and the Azure form */
    snprintf(cmd, sizeof(cmd),
             "echo 'say hi' | AZURE_OPENAI_ENDPOINT=%s AZURE_OPENAI_API_KEY=k "
             "OPENAI_API_KEY= %s chat -m deployment-1 -n 3",
             m.base_url, SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 0);
    assert_int_equal(count_words(out), 3);
    /* the limit under the name reasoning models want */
    snprintf(cmd, sizeof(cmd),
             "OPENAI_API_KEY=k OPENAI_BASE_URL=%s/v1 %s chat --max-completion-tokens 5 hi",
             m.base_url, SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 0);
    assert_int_equal(count_words(out), 5);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_ensemble_one_failing(void **state)
{
    static const char *const args[] = {"--model", "good-a", "--model", "good-b", NULL};
    sky_test_mock m;
    char cmd[1024], out[8192];
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    snprintf(cmd, sizeof(cmd), "OPENAI_BASE_URL=%s/v1 %s chat -m good-a,missing,good-b -n 4 hi",
             m.base_url, SKY_TEST_BIN);
    /* one failed: exit 1, yet both others answered in full */
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 1);
    char *a = strstr(out, "== good-a ==\n");
    char *b = strstr(out, "== good-b ==\n");
    char *x = strstr(out, "== missing (failed) ==\nHTTP 404");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(x);
    assert_int_equal(count_words(a + strlen("== good-a ==\n")), 4);
    assert_int_equal(count_words(b + strlen("== good-b ==\n")), 4);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* A stream that fails before its first token is asked again; with no retries left it fails. */
static void test_retries_before_first_token(void **state)
{
    static const char *const args[] = {"--fault-503", "0.5", "--seed", "3", NULL};
    static const char *const down[] = {"--fault-503", "1", NULL};
    sky_test_mock m;
    char cmd[1024], out[8192];
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    snprintf(cmd, sizeof(cmd), "OPENAI_BASE_URL=%s/v1 %s chat -n 3 --max-retries 10 hi 2>&1",
             m.base_url, SKY_TEST_BIN);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 0);
        assert_int_equal(count_words(out), 3);
    }
    json_t *stats = sky_test_mock_stats(&m);
    assert_true(json_integer_value(json_object_get(stats, "requests")) > 4); /* some retried */
    json_decref(stats);
    assert_int_equal(sky_test_mock_stop(&m), 0);
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, down);
    snprintf(cmd, sizeof(cmd), "OPENAI_BASE_URL=%s/v1 %s chat -n 3 --max-retries 0 hi 2>&1",
             m.base_url, SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "HTTP 503"));
    stats = sky_test_mock_stats(&m);
    assert_int_equal(json_integer_value(json_object_get(stats, "requests")), 1);
    json_decref(stats);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* `skyio chat ARGS` against a mock started with @p margs: its exit code must be
 * @p want_exit and its output hold @p want_text. Returns the mock, still running. */
static void chat_expect(sky_test_mock *m, const char *const *margs, const char *args, int want_exit,
                        const char *want_text)
{
    char cmd[1024], out[8192];
    memset(m, 0, sizeof(*m));
    sky_test_mock_start(m, margs);
    snprintf(cmd, sizeof(cmd), "OPENAI_BASE_URL=%s/v1 %s chat %s 2>&1", m->base_url, SKY_TEST_BIN,
             args);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), want_exit);
    assert_non_null(strstr(out, want_text));
}

/* What a stream says besides its words reaches the user: an error chunk half-way and a
 * content filter are failures (exit 1) with the provider's reason; a reply cut at the
 * token limit is a note. Usage is asked for only with --usage: stream_options is a 400
 * on older Azure api-versions. */
static void test_stream_trouble_is_reported(void **state)
{
    static const char *const err_args[] = {"--fault-stream-error", "1", NULL};
    static const char *const filter_args[] = {"--fault-content-filter", "1", NULL};
    sky_test_mock m;
    (void)state;
    chat_expect(&m, err_args, "-n 6 hi", 1,
                "stopped the stream with an error: The server had an error");
    assert_int_equal(sky_test_mock_stop(&m), 0);
    chat_expect(&m, filter_args, "-n 6 hi", 1, "content filter stopped the answer");
    assert_int_equal(sky_test_mock_stop(&m), 0);
    /* an account out of credit is not asked again, however many retries are allowed */
    static const char *const quota_args[] = {"--refuse-status", "429", NULL};
    chat_expect(&m, quota_args, "--max-retries 3 hi", 1, "exceeded your current quota");
    assert_int_equal(sky_test_mock_stat(&m, "requests"), 1);
    assert_int_equal(sky_test_mock_stop(&m), 0);
    chat_expect(&m, NULL, "-n 3 hi", 0, "reached the token limit");
    json_t *stats = sky_test_mock_stats(&m);
    assert_int_equal(json_integer_value(json_object_get(stats, "streams")), 1);
    assert_int_equal(json_integer_value(json_object_get(stats, "streams_with_usage")), 0);
    json_decref(stats);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_errors_are_clear(void **state)
{
    static const char *const args[] = {"--key", "k", NULL};
    sky_test_mock m;
    char cmd[1024], out[8192];
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    /* a wrong key: the provider's message, and never the key itself */
    snprintf(cmd, sizeof(cmd),
             "OPENAI_API_KEY=sk-wrong-secret OPENAI_BASE_URL=%s/v1 %s chat hi 2>&1", m.base_url,
             SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "HTTP 401"));
    assert_null(strstr(out, "sk-wrong-secret"));
    /* no key for a non-local endpoint: a configuration error */
    snprintf(cmd, sizeof(cmd),
             "env -u OPENAI_API_KEY -u AZURE_OPENAI_ENDPOINT "
             "OPENAI_BASE_URL=https://api.example.invalid/v1 "
             "%s chat hi 2>&1",
             SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 3);
    assert_non_null(strstr(out, "OPENAI_API_KEY"));
    snprintf(cmd, sizeof(cmd), "%s chat --temperature 9 hi 2>&1", SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 2);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* `skyio chat` against @p base_url (plus @p extra flags): exit 3 within seconds, saying why. */
static void expect_unreachable(const char *base_url, const char *extra, const char *why)
{
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof(cmd),
             "OPENAI_API_KEY=sk-secret-123 timeout 120 %s chat --base-url %s/v1 -m a,b %s hi 2>&1",
             SKY_TEST_BIN, base_url, extra);
    sky_test_shell_unreachable(cmd, why, out, sizeof(out));
    assert_null(strstr(out, "sk-secret-123"));
}

/*
 * An endpoint that never answered and cannot be reached is not retried (--max-retries is for
 * an endpoint that answers): connection refused, an unknown host, a certificate that --cacert
 * does not vouch for.
 */
static void test_unreachable_endpoint_stops_at_once(void **state)
{
    static const char *const args[] = {"--key", "sk-secret-123", NULL};
    sky_test_mock m;
    char dir[256], ca[512];
    (void)state;
    expect_unreachable("http://127.0.0.1:1", "", "ECONNECT");
    /* (an unknown host is the same rule; no test looks one up: a lookup is DNS traffic
     * off this machine) */
    memset(&m, 0, sizeof(m));
    m.tls = 1;
    sky_test_mock_start(&m, args);
    sky_test_tmpdir(dir, sizeof(dir));
    assert_int_equal(sky_test_make_certs(dir), 0); /* another CA than the server's */
    snprintf(ca, sizeof(ca), "--cacert %s/ca.pem", dir);
    expect_unreachable(m.base_url, ca, "ETLS");
    /* with the server's own CA it answers */
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof(cmd),
             "OPENAI_API_KEY=sk-secret-123 %s chat --base-url %s/v1 --cacert %s/ca.pem -n 3 hi "
             "2>&1",
             SKY_TEST_BIN, m.base_url, m.dir);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 0);
    sky_test_rmdir(dir);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/*
 * Azure OpenAI without a key: the Entra ID token (from the mock's IMDS) is asked for first and
 * serves the chat; with no credential at all, one message and exit 3, and nothing is sent.
 */
static void test_azure_with_entra_id(void **state)
{
    /* the chat endpoint accepts only the first token the mock's IMDS issues */
    static const char *const args[] = {"--key", "mock-token-1", NULL};
    sky_test_mock m;
    char cmd[2048], out[8192];
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    /* 0.0.0.0 reaches the loopback mock without looking like loopback, where a keyless
     * Azure endpoint is taken for a local server that needs no auth */
    const char *env = "env -i PATH=/usr/bin:/bin SKYIO_AZ_PATH=/nonexistent/az";
    snprintf(cmd, sizeof(cmd),
             "%s AZURE_OPENAI_ENDPOINT=http://0.0.0.0:%d AZURE_POD_IDENTITY_AUTHORITY_HOST=%s "
             "%s chat -m deployment-1 -n 4 hi 2>&1",
             env, m.port, m.base_url, SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 0);
    assert_int_equal(count_words(out), 4);
    json_t *stats = sky_test_mock_stats(&m);
    assert_int_equal(json_integer_value(sky_json_path(stats, "identity.imds")), 1);
    assert_int_equal(json_integer_value(sky_json_path(stats, "auth_failures")), 0);
    long long sent = json_integer_value(json_object_get(stats, "requests"));
    json_decref(stats);
    snprintf(cmd, sizeof(cmd),
             "%s AZURE_OPENAI_ENDPOINT=http://0.0.0.0:%d AZURE_POD_IDENTITY_AUTHORITY_HOST="
             "http://127.0.0.1:1 %s chat -m a,b hi 2>&1",
             env, m.port, SKY_TEST_BIN);
    int rc = sky_test_shell(cmd, out, sizeof(out));
    const char *said = strstr(out, "skyio chat: no Entra ID token for Azure OpenAI");
    if (rc != 3 || said == NULL || strstr(said + 20, "no Entra ID token") != NULL)
        fail_msg("%s: exit %d, said once? \n%s", cmd, rc, out); /* once, for both models */
    stats = sky_test_mock_stats(&m);
    assert_int_equal(json_integer_value(json_object_get(stats, "requests")), sent);
    json_decref(stats);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* The example program, built beside the skyio binary. */
static void example_path(char *out, size_t len)
{
    snprintf(out, len, "%s", SKY_TEST_BIN);
    char *slash = strrchr(out, '/');
    snprintf(slash ? slash + 1 : out, len - (size_t)(slash ? slash + 1 - out : 0), "%s",
             "example_chat_stream");
}

/* examples/chat_stream.c streams an answer through libskyio; a 503 before the first byte is
 * retried by the client's pipeline. */
static void test_example_streams_with_retries(void **state)
{
    static const char *const args[] = {"--fault-503", "0.5", "--seed", "3", NULL};
    sky_test_mock m;
    char cmd[1024], out[8192], bin[512];
    int retried = 0;
    (void)state;
    example_path(bin, sizeof(bin));
    if (access(bin, X_OK) != 0)
        fail_msg("%s is not built (the examples are part of the default build)", bin);
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    snprintf(cmd, sizeof(cmd),
             "env -u AZURE_OPENAI_ENDPOINT OPENAI_API_KEY=k OPENAI_BASE_URL=%s/v1 %s 'say hi' 2>&1",
             m.base_url, bin);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 0);
        assert_int_equal(count_words(out), 16); /* the mock's answer when no limit is set */
        retried += strstr(out, "(1 attempt)") == NULL;
    }
    assert_true(retried > 0);
    json_t *stats = sky_test_mock_stats(&m);
    assert_true(json_integer_value(sky_json_path(stats, "faults.http_503")) > 0);
    json_decref(stats);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* ---- the AI client in the library ---- */

typedef struct ai_run {
    int answers, failed, retried, all;
    uint64_t waited_ms;
    size_t want;
} ai_run;

static void on_answer(sky_ai_request *req, const sky_ai_chat_result *res, const sky_error *err,
                      void *ud)
{
    ai_run *a = ud;
    (void)req;
    a->answers++;
    a->failed += err != NULL;
    a->retried += res->call->attempts > 1;
    a->waited_ms += res->call->waited_ms;
    assert_int_equal(count_words(res->content), 4);
    a->all = (size_t)a->answers == a->want;
}

/*
 * A chat stream goes through the pipeline: a fan-out of 20 streamed answers is paced by the
 * rate limiter (few meet the mock's 429s) and each 503 before the first byte is retried.
 */
static void test_client_streams_retried_and_paced(void **state)
{
    static const char *const args[] = {"--rpm", "600", "--fault-503", "0.3", "--seed", "9", NULL};
    static const char *models[20];
    sky_test_mock m;
    sky_http_client *http = NULL;
    sky_ai_client *ai = NULL;
    sky_ai_client_options co;
    sky_ai_chat_options o;
    sky_ai_endpoint ep;
    char base[256];
    ai_run a = {0};
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    uv_loop_t *loop = sky_test_loop_new();
    snprintf(base, sizeof(base), "%s/v1", m.base_url);
    assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_OPENAI, base, "k", NULL), 0);
    assert_int_equal(sky_http_client_new(loop, NULL, &http), 0);
    sky_ai_client_options_init(&co);
    co.endpoint = &ep;
    co.pipeline.rate.rpm = 600;
    co.pipeline.rate.burst_seconds = 0.2;
    co.pipeline.retry.base_ms = 20;
    co.pipeline.use_breaker = 0;
    assert_int_equal(sky_ai_client_new(loop, http, &co, &ai, NULL), 0);
    sky_ai_endpoint_free(&ep); /* the client keeps its own copy */
    for (int i = 0; i < 20; i++)
        models[i] = "gpt-4o-mini";
    json_t *params = json_pack("{s:i}", "max_tokens", 4);
    sky_ai_chat_options_init(&o);
    o.models = models;
    o.n_models = 20;
    o.prompt = "hello";
    o.params = params;
    o.stream = 1;
    o.on_done = on_answer;
    o.user_data = &a;
    a.want = 20;
    assert_int_equal(sky_ai_chat_start(ai, &o, NULL, NULL), 0);
    json_decref(params);
    assert_true(sky_test_run_until(loop, &a.all, 60000));
    assert_int_equal(a.failed, 0);
    assert_true(a.retried > 0);   /* 503s before the first byte, sent again */
    assert_true(a.waited_ms > 0); /* held back by the limiter */
    json_t *stats = sky_test_mock_stats(&m);
    assert_true(json_integer_value(json_object_get(stats, "rate_limited")) <= 5);
    json_decref(stats);
    sky_ai_client_free(ai);
    sky_http_client_free(http);
    sky_test_loop_free(loop);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

typedef struct other_run {
    int done, both;
    size_t count, dim;
    char id[128], text[256];
} other_run;

static void on_embed(sky_ai_request *req, const sky_ai_embed_result *res, const sky_error *err,
                     void *ud)
{
    other_run *o = ud;
    (void)req;
    if (err)
        fail_msg("embeddings: %s", err->message);
    o->count = res->count;
    o->dim = res->dim;
    o->both = ++o->done == 2;
}

static void on_respond(sky_ai_request *req, const sky_ai_respond_result *res, const sky_error *err,
                       void *ud)
{
    other_run *o = ud;
    (void)req;
    assert_null(err);
    snprintf(o->id, sizeof(o->id), "%s", res->id ? res->id : "");
    snprintf(o->text, sizeof(o->text), "%s", res->output_text);
    o->both = ++o->done == 2;
}

/* Embeddings and the Responses API, read into typed results. */
static void test_client_embeddings_and_responses(void **state)
{
    static const char *const inputs[] = {"one", "two", "three"};
    sky_test_mock m;
    sky_http_client *http = NULL;
    sky_ai_client *ai = NULL;
    sky_ai_client_options co;
    sky_ai_embed_options eo;
    sky_ai_respond_options ro;
    sky_ai_endpoint ep;
    char base[256];
    other_run o;
    (void)state;
    memset(&o, 0, sizeof(o));
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    uv_loop_t *loop = sky_test_loop_new();
    snprintf(base, sizeof(base), "%s/v1", m.base_url);
    assert_int_equal(sky_ai_endpoint_set(&ep, SKY_AI_OPENAI, base, NULL, NULL), 0);
    assert_int_equal(sky_http_client_new(loop, NULL, &http), 0);
    sky_ai_client_options_init(&co);
    co.endpoint = &ep;
    assert_int_equal(sky_ai_client_new(loop, http, &co, &ai, NULL), 0);
    sky_ai_embed_options_init(&eo);
    eo.model = "text-embedding-3-small";
    eo.inputs = inputs;
    eo.n_inputs = 3;
    eo.dimensions = 8;
    eo.on_done = on_embed;
    eo.user_data = &o;
    assert_int_equal(sky_ai_embed_start(ai, &eo, NULL, NULL), 0);
    sky_ai_respond_options_init(&ro);
    ro.model = "gpt-4o-mini";
    ro.input = "hello";
    ro.on_done = on_respond;
    ro.user_data = &o;
    assert_int_equal(sky_ai_respond_start(ai, &ro, NULL, NULL), 0);
    assert_true(sky_test_run_until(loop, &o.both, 10000));
    assert_int_equal(o.count, 3);
    assert_int_equal(o.dim, 8);
    assert_true(strlen(o.id) > 0);
    assert_true(strlen(o.text) > 0);
    sky_ai_client_free(ai);
    sky_http_client_free(http);
    sky_test_loop_free(loop);
    assert_int_equal(sky_test_mock_stop(&m), 0);
    sky_ai_endpoint_free(&ep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams_one_answer),
        cmocka_unit_test(test_ensemble_one_failing),
        cmocka_unit_test(test_retries_before_first_token),
        cmocka_unit_test(test_stream_trouble_is_reported),
        cmocka_unit_test(test_errors_are_clear),
        cmocka_unit_test(test_unreachable_endpoint_stops_at_once),
        cmocka_unit_test(test_azure_with_entra_id),
        cmocka_unit_test(test_example_streams_with_retries),
        cmocka_unit_test(test_client_streams_retried_and_paced),
        cmocka_unit_test(test_client_embeddings_and_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
