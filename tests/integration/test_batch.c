/* `skyio batch` against `skyio mock`: outcomes, bad input, exactly-once across kill -9. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "skyio/json.h"

static void write_input(const char *path, int n, int with_bad)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < n; i++)
        fprintf(f,
                "{\"custom_id\":\"req-%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                "\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"question %d\"}],\"max_tokens\":5}}\n",
                i, i);
    if (with_bad) {
        fputs("this is not json\n", f);
        fputs("{\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n", f);
        fputs("{\"custom_id\":\"req-3\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
              "\"body\":{}}\n",
              f);
        fputs("{\"custom_id\":\"x\",\"method\":\"GET\",\"url\":\"/v1/chat/completions\","
              "\"body\":{}}\n",
              f);
    }
    fclose(f);
}

typedef struct tally {
    int lines, ok, failed, dup_ids, bad_json;
    int odd_success; /* a success whose body is not a JSON object */
    int no_code;     /* a failure without an error code and message */
    int client_rid;  /* a success recording our request id, not the mock's req_... */
    json_t *ids;     /* custom_id -> count */
} tally;

/* The shape of one outcome: a success carries the reply's JSON; a failure says why. */
static void check_outcome(const json_t *j, tally *t)
{
    json_t *err = json_object_get(j, "error");
    if (json_is_null(err) && json_integer_value(sky_json_path(j, "response.status_code")) == 200) {
        t->ok++;
        t->odd_success += !json_is_object(sky_json_path(j, "response.body"));
        const char *rid = json_string_value(sky_json_path(j, "response.request_id"));
        t->client_rid += rid == NULL || strncmp(rid, "req_", 4) != 0;
        return;
    }
    t->failed++;
    t->no_code += !json_is_string(json_object_get(err, "code")) ||
                  !json_is_string(json_object_get(err, "message"));
}

/* Add the lines of @p path to @p t (which read_output starts afresh). */
static void add_output(const char *path, tally *t)
{
    char line[65536];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        json_t *j = NULL;
        t->lines++;
        if (sky_json_parse(sky_span_cstr(line), &j, NULL) < 0) {
            t->bad_json++;
            continue;
        }
        const char *id = sky_json_str(j, "custom_id", "");
        json_t *n = json_object_get(t->ids, id);
        if (n)
            t->dup_ids++;
        json_object_set_new(t->ids, id, json_integer(n ? json_integer_value(n) + 1 : 1));
        check_outcome(j, t);
        json_decref(j);
    }
    fclose(f);
}

static void read_output(const char *path, tally *t)
{
    memset(t, 0, sizeof(*t));
    t->ids = json_object();
    add_output(path, t);
}

/* One count from the mock's /mock/stats ("endpoints.chat", "responses.409"). */
static int64_t mock_count(const sky_test_mock *m, const char *path)
{
    json_t *stats = sky_test_mock_stats(m);
    int64_t n = (int64_t)json_integer_value(sky_json_path(stats, path));
    json_decref(stats);
    return n;
}

/* `skyio batch ARGS` against @p base_url with @p key, stderr to @p err_path (NULL: nowhere);
 * its exit code. */
static int run_batch_at(const char *base_url, const char *key, const char *args,
                        const char *err_path)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "OPENAI_BASE_URL=%s/v1 OPENAI_API_KEY=%s %s batch %s 2>%s", base_url,
             key, SKY_TEST_BIN, args, err_path ? err_path : "/dev/null");
    int status = system(cmd);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int run_batch(const sky_test_mock *m, const char *args)
{
    return run_batch_at(m->base_url, "", args, NULL);
}

/* A mock and a temp folder with the usual file names, for one test. */
typedef struct batch_env {
    sky_test_mock m;
    char dir[256], in[300], out[300], errs[300];
} batch_env;

static void env_open(batch_env *e, const char *const *margs)
{
    memset(e, 0, sizeof(*e));
    sky_test_mock_start(&e->m, margs);
    sky_test_tmpdir(e->dir, sizeof(e->dir));
    snprintf(e->in, sizeof(e->in), "%s/in.jsonl", e->dir);
    snprintf(e->out, sizeof(e->out), "%s/out.jsonl", e->dir);
    snprintf(e->errs, sizeof(e->errs), "%s/errors.jsonl", e->dir);
}

static void env_close(batch_env *e)
{
    sky_test_rmdir(e->dir);
    assert_int_equal(sky_test_mock_stop(&e->m), 0);
}

/* The start of file @p path as a string, at most @p cap - 1 bytes. */
static void read_text(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = '\0';
}

static void test_outcomes_and_bad_input(void **state)
{
    static const char *const margs[] = {"--fault-503", "0.1", "--seed", "9", NULL};
    batch_env e;
    char args[1200];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 120, 1);
    snprintf(args, sizeof(args), "%s -o %s", e.in, e.out);
    /* some lines were bad: finished, exit 1 */
    assert_int_equal(run_batch(&e.m, args), 1);
    read_output(e.out, &t);
    assert_int_equal(t.bad_json, 0);
    assert_int_equal(t.dup_ids, 0);
    assert_int_equal(t.ok, 120); /* the 503s were retried */
    assert_int_equal(t.client_rid, 0);
    assert_int_equal(t.failed, 4);
    assert_int_equal(t.lines, 124);
    for (int i = 0; i < 120; i++) {
        char id[32];
        snprintf(id, sizeof(id), "req-%d", i);
        assert_non_null(json_object_get(t.ids, id));
    }
    assert_non_null(json_object_get(t.ids, "skyio-input-line-121")); /* not JSON */
    assert_non_null(json_object_get(t.ids, "skyio-input-line-122")); /* no custom_id */
    assert_non_null(json_object_get(t.ids, "skyio-duplicate-line-123"));
    assert_non_null(json_object_get(t.ids, "x")); /* a GET: bad, but its id is its own */
    json_decref(t.ids);
    /* a rerun has nothing left to do: it sends nothing, writes nothing, and says what
     * failed before */
    char err_path[300], err_text[4096];
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", e.dir);
    int64_t sent = mock_count(&e.m, "requests");
    assert_int_equal(run_batch_at(e.m.base_url, "", args, err_path), 0);
    assert_int_equal(mock_count(&e.m, "requests"), sent);
    read_output(e.out, &t);
    assert_int_equal(t.lines, 124);
    json_decref(t.ids);
    read_text(err_path, err_text, sizeof(err_text));
    assert_non_null(strstr(err_text, "124 requests already recorded, 4 of them failed"));
    /* the input given as the output is refused, and left as it is: as the same path, or
     * as a copy (it holds no result) */
    struct stat before, after;
    assert_int_equal(stat(e.in, &before), 0);
    snprintf(args, sizeof(args), "%s -o %s", e.in, e.in);
    assert_int_equal(run_batch(&e.m, args), 2);
    char copy[800];
    snprintf(copy, sizeof(copy), "cp %s %s.copy", e.in, e.in);
    assert_int_equal(system(copy), 0);
    snprintf(args, sizeof(args), "%s -o %s.copy --retry-failed", e.in, e.in);
    assert_int_equal(run_batch(&e.m, args), 3);
    snprintf(copy, sizeof(copy), "cmp -s %s %s.copy", e.in, e.in);
    assert_int_equal(system(copy), 0);
    assert_int_equal(stat(e.in, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    env_close(&e);
}

static void test_text_mode_and_torn_line(void **state)
{
    batch_env e;
    char args[1200];
    tally t;
    (void)state;
    env_open(&e, NULL);
    snprintf(e.in, sizeof(e.in), "%s/prompts.txt", e.dir);
    FILE *f = fopen(e.in, "w");
    assert_non_null(f);
    fputs("first prompt\nsecond prompt\r\n\nfourth prompt\n", f);
    fclose(f);
    /* an earlier run died mid-line */
    f = fopen(e.out, "w");
    assert_non_null(f);
    fputs("{\"id\":\"batch_req_1\",\"custom_id\":\"line-1\",\"response\":{\"status_code\":200,"
          "\"request_id\":\"r\",\"body\":{}},\"error\":null}\n{\"id\":\"batch_req_2\",\"cust",
          f);
    fclose(f);
    /* the limit under the name reasoning models want */
    snprintf(args, sizeof(args), "--text --model gpt-4o-mini --max-completion-tokens 3 %s -o %s",
             e.in, e.out);
    assert_int_equal(run_batch(&e.m, args), 0);
    read_output(e.out, &t);
    assert_int_equal(t.bad_json, 0);
    assert_int_equal(t.dup_ids, 0);
    assert_int_equal(t.lines, 3); /* line-1 (kept), line-2, line-4; the blank line 3 is skipped */
    assert_non_null(json_object_get(t.ids, "line-2"));
    assert_non_null(json_object_get(t.ids, "line-4"));
    json_decref(t.ids);
    assert_int_equal(mock_count(&e.m, "endpoints.chat"), 2);
    assert_int_equal(mock_count(&e.m, "tokens.completion"), 6);
    env_close(&e);
}

/* Lines in batch output @p path; 0 when the file is not there. */
static int recorded_lines(const char *path)
{
    tally t;
    memset(&t, 0, sizeof(t));
    if (access(path, F_OK) == 0)
        read_output(path, &t);
    json_decref(t.ids);
    return t.lines;
}

/*
 * A refused key stops the batch at once: exit 3, nothing recorded, a few requests sent
 * rather than one per line, the key in no message. The run with the right key then
 * does every request.
 */
static void test_refused_key_stops(void **state)
{
    static const char *const margs[] = {"--key", "sk-right-1", NULL};
    batch_env e;
    char args[1200], err_path[300], err_text[4096];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 500, 0);
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", e.dir);
    snprintf(args, sizeof(args), "%s -o %s --no-rate-limit", e.in, e.out);
    assert_int_equal(run_batch_at(e.m.base_url, "sk-wrong-SECRET42", args, err_path), 3);
    assert_int_equal(recorded_lines(e.out), 0);
    json_t *stats = sky_test_mock_stats(&e.m);
    int64_t refused = (int64_t)json_integer_value(json_object_get(stats, "auth_failures"));
    assert_true(refused >= 1);
    assert_true(refused <= 100); /* the first wave at most, not 500, and none sent twice */
    assert_int_equal(json_integer_value(sky_json_path(stats, "endpoints.chat")), 0);
    json_decref(stats);
    read_text(err_path, err_text, sizeof(err_text));
    assert_non_null(strstr(err_text, "refused the credentials"));
    assert_null(strstr(err_text, "SECRET42"));
    assert_int_equal(run_batch_at(e.m.base_url, "sk-right-1", args, NULL), 0);
    read_output(e.out, &t);
    assert_int_equal(t.lines, 500);
    assert_int_equal(t.ok, 500);
    assert_int_equal(t.dup_ids, 0);
    json_decref(t.ids);
    env_close(&e);
}

/*
 * A provider that refuses the whole account (403: the identity lacks a role; 429
 * insufficient_quota: no credit left) stops the batch as a refused key does: exit 3,
 * nothing recorded, the first wave sent at most and none of it twice, the cause named.
 * A provider that serves the account then gets every request.
 */
static void refused_account_case(const char *status, const char *said, const char *flag)
{
    const char *const margs[] = {"--refuse-status", status, NULL};
    batch_env e;
    sky_test_mock good;
    char args[1200], err_path[300], err_text[4096], sum_path[300], sum[4096], key[32];
    tally t;
    env_open(&e, margs);
    write_input(e.in, 300, 0);
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", e.dir);
    snprintf(sum_path, sizeof(sum_path), "%s/summary.json", e.dir);
    snprintf(args, sizeof(args), "%s -o %s --no-rate-limit --json >%s", e.in, e.out, sum_path);
    assert_int_equal(run_batch_at(e.m.base_url, "", args, err_path), 3);
    assert_int_equal(recorded_lines(e.out), 0);
    json_t *stats = sky_test_mock_stats(&e.m);
    snprintf(key, sizeof(key), "responses.%s", status);
    int64_t refused = (int64_t)json_integer_value(sky_json_path(stats, key));
    assert_true(refused >= 1);
    assert_true(refused <= 100);
    assert_int_equal(json_integer_value(json_object_get(stats, "requests")), refused);
    json_decref(stats);
    read_text(err_path, err_text, sizeof(err_text));
    assert_non_null(strstr(err_text, said));
    read_text(sum_path, sum, sizeof(sum));
    assert_non_null(strstr(sum, flag));
    memset(&good, 0, sizeof(good));
    sky_test_mock_start(&good, NULL);
    snprintf(args, sizeof(args), "%s -o %s --no-rate-limit", e.in, e.out);
    assert_int_equal(run_batch_at(good.base_url, "", args, NULL), 0);
    assert_int_equal(sky_test_mock_stop(&good), 0);
    read_output(e.out, &t);
    assert_int_equal(t.lines, 300);
    assert_int_equal(t.ok, 300);
    assert_int_equal(t.dup_ids, 0);
    json_decref(t.ids);
    env_close(&e);
}

static void test_refused_account_stops(void **state)
{
    (void)state;
    refused_account_case("403", "denied access", "\"access_denied\":true");
    refused_account_case("429", "out of quota", "\"quota_exhausted\":true");
}

/*
 * Every url of the OpenAI Batch API runs offline against the mock, and the summary counts
 * the tokens of each reply's usage, under its chat names or the Responses API's.
 */
static void test_every_batch_url(void **state)
{
    static const char *const lines[] = {
        "{\"custom_id\":\"c\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":"
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"max_tokens\":2}}",
        "{\"custom_id\":\"e\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":"
        "{\"model\":\"text-embedding-3-small\",\"input\":\"hi\",\"dimensions\":4}}",
        "{\"custom_id\":\"r\",\"method\":\"POST\",\"url\":\"/v1/responses\",\"body\":"
        "{\"model\":\"gpt-4.1-mini\",\"input\":\"hi\",\"max_output_tokens\":3}}",
        "{\"custom_id\":\"l\",\"method\":\"POST\",\"url\":\"/v1/completions\",\"body\":"
        "{\"model\":\"gpt-3.5-turbo-instruct\",\"prompt\":\"hi\",\"max_tokens\":4}}",
        "{\"custom_id\":\"m\",\"method\":\"POST\",\"url\":\"/v1/moderations\",\"body\":"
        "{\"input\":\"hi\"}}",
    };
    batch_env e;
    char args[1200], sum_path[300], sum[4096];
    tally t;
    (void)state;
    env_open(&e, NULL);
    FILE *f = fopen(e.in, "w");
    assert_non_null(f);
    for (size_t i = 0; i < SKY_ARRAY_LEN(lines); i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
    snprintf(sum_path, sizeof(sum_path), "%s/summary.json", e.dir);
    snprintf(args, sizeof(args), "%s -o %s --no-rate-limit --json >%s", e.in, e.out, sum_path);
    assert_int_equal(run_batch(&e.m, args), 0);
    read_output(e.out, &t);
    assert_int_equal(t.ok, 5);
    assert_int_equal(t.odd_success, 0);
    json_decref(t.ids);
    json_t *stats = sky_test_mock_stats(&e.m);
    static const char *const endpoints[] = {"endpoints.chat", "endpoints.embeddings",
                                            "endpoints.responses", "endpoints.completions",
                                            "endpoints.moderations"};
    for (size_t i = 0; i < SKY_ARRAY_LEN(endpoints); i++)
        assert_int_equal(json_integer_value(sky_json_path(stats, endpoints[i])), 1);
    int64_t prompt = (int64_t)json_integer_value(sky_json_path(stats, "tokens.prompt"));
    json_decref(stats);
    read_text(sum_path, sum, sizeof(sum));
    json_t *j = NULL;
    assert_int_equal(sky_json_parse(sky_span_cstr(sum), &j, NULL), 0);
    /* out: 2 chat + 3 responses + 4 completions; in: every prompt token the mock charged
     * but the moderation's one ("hi"), as a moderation reply has no usage */
    assert_int_equal(json_integer_value(sky_json_path(j, "tokens.out")), 2 + 3 + 4);
    assert_int_equal(json_integer_value(sky_json_path(j, "tokens.in")), prompt - 1);
    json_decref(j);
    env_close(&e);
}

/* The batch retries what OpenAI's SDKs retry beyond azure-core's list: a 409 here, and
 * every 5xx (a CDN's 52x); each of 3 lines is sent 1 + --max-retries times, then recorded. */
static void test_openai_retry_statuses(void **state)
{
    static const char *const margs[] = {"--refuse-status", "409", NULL};
    batch_env e;
    char args[1200];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 3, 0);
    snprintf(args, sizeof(args), "%s -o %s --no-rate-limit --max-retries 2", e.in, e.out);
    assert_int_equal(run_batch(&e.m, args), 1);
    assert_int_equal(mock_count(&e.m, "responses.409"), 9);
    read_output(e.out, &t);
    assert_int_equal(t.failed, 3);
    assert_int_equal(t.no_code, 0);
    json_decref(t.ids);
    env_close(&e);
}

/* A request with a large inline payload (an image, say) is one long line: 2 MiB goes by
 * default; --max-line-bytes sets the limit, and a longer line is a bad line of its own. */
static void test_long_lines(void **state)
{
    batch_env e;
    char args[1200], text[4096];
    tally t;
    (void)state;
    env_open(&e, NULL);
    write_input(e.in, 2, 0);
    FILE *f = fopen(e.in, "a");
    assert_non_null(f);
    fputs("{\"custom_id\":\"big\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
          "\"body\":{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
          "\"content\":\"",
          f);
    for (int i = 0; i < 2 * 1024 * 1024; i++)
        fputc('a' + i % 26, f);
    fputs("\"}]}}\n", f);
    fclose(f);
    snprintf(args, sizeof(args), "%s -o %s --no-rate-limit --max-line-bytes 4096", e.in, e.out);
    assert_int_equal(run_batch(&e.m, args), 1);
    read_output(e.out, &t);
    assert_int_equal(t.ok, 2);
    assert_int_equal(t.failed, 1);
    json_decref(t.ids);
    read_text(e.out, text, sizeof(text));
    assert_non_null(strstr(text, "longer than 4096 bytes"));
    unlink(e.out);
    snprintf(args, sizeof(args), "%s -o %s --no-rate-limit", e.in, e.out);
    assert_int_equal(run_batch(&e.m, args), 0);
    read_output(e.out, &t);
    assert_int_equal(t.ok, 3);
    assert_non_null(json_object_get(t.ids, "big"));
    json_decref(t.ids);
    env_close(&e);
}

/*
 * Output that can no longer be written (a full disk; here a file size limit) stops the
 * batch: nothing more is sent, so what was in flight and queued is paid for and not
 * recorded, not the rest of the input. Exit 3; the file holds whole lines only.
 */
static void test_unwritable_output_stops(void **state)
{
    batch_env e;
    char cmd[2048];
    tally t;
    (void)state;
    env_open(&e, NULL);
    write_input(e.in, 2000, 0);
    /* writes past 32 KiB fail with EFBIG (SIGXFSZ ignored), as on a disk that filled up */
    snprintf(cmd, sizeof(cmd),
             "sh -c \"trap '' XFSZ; ulimit -f 32; OPENAI_BASE_URL=%s/v1 OPENAI_API_KEY= exec %s "
             "batch %s -o %s --concurrency 8 --no-rate-limit --json\" >%s.json 2>/dev/null",
             e.m.base_url, SKY_TEST_BIN, e.in, e.out, e.out);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    read_output(e.out, &t);
    assert_int_equal(t.bad_json, 0);
    assert_true(t.lines > 0);
    int64_t sent = mock_count(&e.m, "endpoints.chat");
    json_decref(t.ids);
    /* what was on the wire and queued when the first write failed, not the 2,000: about 30
     * here, more on a loaded machine, whose writes lag further behind */
    assert_true(sent < 1000);
    /* the summary counts what was lost to the failed writes, and the run as unfinished */
    char sum_path[320], sum[4096];
    snprintf(sum_path, sizeof(sum_path), "%s.json", e.out);
    read_text(sum_path, sum, sizeof(sum));
    json_t *js = NULL;
    assert_int_equal(sky_json_parse(sky_span_cstr(sum), &js, NULL), 0);
    assert_true(json_is_true(json_object_get(js, "unfinished")));
    assert_int_equal(sky_json_int(js, "ok", 0) - sky_json_int(js, "unwritten", 0), t.lines);
    json_decref(js);
    env_close(&e);
}

/* An endpoint that cannot be reached at all is a wrong URL, not an outage: exit 3 soon. */
static void test_unreachable_endpoint_stops(void **state)
{
    batch_env e;
    char args[1200], err_path[300], err_text[4096];
    (void)state;
    env_open(&e, NULL);
    write_input(e.in, 40, 0);
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", e.dir);
    snprintf(args, sizeof(args), "%s -o %s", e.in, e.out);
    /* nothing listens on port 1 */
    assert_int_equal(run_batch_at("http://127.0.0.1:1", "", args, err_path), 3);
    assert_int_equal(recorded_lines(e.out), 0); /* the next run, at the right URL, does all */
    read_text(err_path, err_text, sizeof(err_text));
    assert_non_null(strstr(err_text, "cannot reach the endpoint (ECONNECT"));
    env_close(&e);
}

/*
 * A certificate the client does not trust fails every request with ETLS: that endpoint
 * was never reached either. Nothing is recorded, so the rerun with the right CA sends
 * every line (before, each failure was recorded and then skipped for good).
 */
static void test_untrusted_certificate_records_nothing(void **state)
{
    sky_test_mock m;
    char dir[256], in[300], out[300], args[1200], err_path[300], err_text[4096];
    (void)state;
    memset(&m, 0, sizeof(m));
    m.tls = 1;
    sky_test_mock_start(&m, NULL);
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(in, sizeof(in), "%s/in.jsonl", dir);
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", dir);
    write_input(in, 10, 0);
    snprintf(args, sizeof(args), "%s -o %s", in, out);
    assert_int_equal(run_batch_at(m.base_url, "", args, err_path), 3);
    assert_int_equal(recorded_lines(out), 0);
    read_text(err_path, err_text, sizeof(err_text));
    assert_non_null(strstr(err_text, "cannot reach the endpoint (ETLS"));
    snprintf(args, sizeof(args), "%s -o %s --cacert %s/ca.pem", in, out, m.dir);
    assert_int_equal(run_batch_at(m.base_url, "", args, NULL), 0);
    assert_int_equal(recorded_lines(out), 10);
    assert_int_equal(mock_count(&m, "endpoints.chat"), 10);
    sky_test_rmdir(dir);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/*
 * A line a batch cannot record (a stream) is refused before it is paid for; a 200 whose
 * body cannot be read is asked for once more, never again.
 */
static void test_unreadable_replies_paid_at_most_twice(void **state)
{
    static const char *const margs[] = {"--fault-malformed", "1", NULL};
    batch_env e;
    char args[1200];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 5, 0);
    FILE *f = fopen(e.in, "a");
    assert_non_null(f);
    fputs("{\"custom_id\":\"streamed\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
          "\"body\":{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[]}}\n",
          f);
    fclose(f);
    snprintf(args, sizeof(args), "%s -o %s --max-retries 10", e.in, e.out);
    assert_int_equal(run_batch(&e.m, args), 1);
    read_output(e.out, &t);
    assert_int_equal(t.lines, 6);
    assert_int_equal(t.failed, 6);
    assert_int_equal(t.no_code, 0);
    json_decref(t.ids);
    /* five lines, two attempts each; the stream line never went out */
    assert_int_equal(mock_count(&e.m, "endpoints.chat"), 10);
    assert_int_equal(mock_count(&e.m, "faults.malformed"), 10);
    char text[65536];
    read_text(e.out, text, sizeof(text));
    assert_non_null(strstr(text, "\"code\":\"malformed_response\""));
    assert_non_null(strstr(text, "\"param\":\"body.stream\""));
    env_close(&e);
}

/* `skyio batch ARGS` with @p input as INPUT, given 5 s; its exit code (-1: it hung). */
static int run_batch_bounded(const sky_test_mock *m, const char *input, const char *out,
                             const char *err_path)
{
    char args[1200];
    snprintf(args, sizeof(args), "%s -o %s", input, out);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "OPENAI_BASE_URL=%s/v1 OPENAI_API_KEY= timeout 5 %s batch %s 2>%s",
             m->base_url, SKY_TEST_BIN, args, err_path);
    int status = system(cmd);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status) == 124 ? -1 : WEXITSTATUS(status);
}

/*
 * INPUT is a regular file or standard input: a device never ends, a FIFO without a writer
 * blocks the open, a directory reads as nothing. Each is refused at once, saying what it is.
 */
static void test_input_must_be_a_file(void **state)
{
    batch_env e;
    char fifo[300], err_path[300], text[4096], cmd[2048];
    tally t;
    (void)state;
    env_open(&e, NULL);
    snprintf(fifo, sizeof(fifo), "%s/fifo", e.dir);
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", e.dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    static const struct {
        const char *what;
        const char *said;
    } bad[] = {
        {"/dev/zero", "is a character device"}, {NULL, "is a FIFO"}, {"/", "is a directory"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(run_batch_bounded(&e.m, bad[i].what ? bad[i].what : fifo, e.out, err_path),
                         2);
        read_text(err_path, text, sizeof(text));
        assert_non_null(strstr(text, bad[i].said));
        assert_non_null(strstr(text, "INPUT must be a file, or - to read standard input"));
    }
    assert_int_equal(mock_count(&e.m, "requests"), 0);
    /* "-": standard input, here a pipe (which has no offsets to read at) */
    write_input(e.in, 30, 0);
    snprintf(cmd, sizeof(cmd),
             "cat %s | OPENAI_BASE_URL=%s/v1 OPENAI_API_KEY= %s batch - -o %s 2>%s", e.in,
             e.m.base_url, SKY_TEST_BIN, e.out, err_path);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    read_output(e.out, &t);
    assert_int_equal(t.ok, 30);
    json_decref(t.ids);
    env_close(&e);
}

/* Start `skyio batch IN -o OUT --concurrency C` in a child; returns its pid. */
static pid_t spawn_batch_to(const sky_test_mock *m, const char *in, const char *out,
                            const char *concurrency, const char *err_path);

static pid_t spawn_batch(const sky_test_mock *m, const char *in, const char *out,
                         const char *concurrency)
{
    return spawn_batch_to(m, in, out, concurrency, NULL);
}

/* The same, with the batch's stderr going to @p err_path (NULL: nowhere). */
static pid_t spawn_batch_to(const sky_test_mock *m, const char *in, const char *out,
                            const char *concurrency, const char *err_path)
{
    char base[300];
    /* The tests play a Ctrl-C at a foreground batch. A runner that started this process
     * with SIGINT ignored (a script's '&') would hand that on, and the batch keeps an
     * ignored SIGINT ignored; set before the fork, so even a signal sent before exec
     * acts as it would on a user's batch. */
    signal(SIGINT, SIG_DFL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        snprintf(base, sizeof(base), "%s/v1", m->base_url);
        setenv("OPENAI_BASE_URL", base, 1);
        unsetenv("OPENAI_API_KEY");
        execl(SKY_TEST_BIN, SKY_TEST_BIN, "batch", in, "-o", out, "--concurrency", concurrency,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Size of file @p path; 0 when it is not there. */
static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Wait (up to 30 s) until @p path is larger than @p size or child @p pid has exited. */
static void wait_growth(const char *path, long size, pid_t pid)
{
    for (int i = 0; i < 3000 && file_size(path) <= size; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/*
 * kill -9 at random moments, then run again until done: each custom_id once, and no
 * request paid for twice beyond what a kill makes unavoidable (what was on the wire, 40
 * here, and the 256 results the journal may hold in memory). Each kill comes once the
 * output has grown, after a random delay (the seed is printed, to replay a failure).
 */
static void test_exactly_once_across_kill(void **state)
{
    static const char *const margs[] = {"--ttft-ms", "40", "--jitter", "0.5", NULL};
    batch_env e;
    char cmd[2048];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 600, 0);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    print_message("kill -9 seed %u\n", seed);
    srand(seed);
    for (int round = 0; round < 3; round++) {
        long before = file_size(e.out);
        pid_t pid = spawn_batch(&e.m, e.in, e.out, "40");
        wait_growth(e.out, before, pid);
        struct timespec ts = {0, (long)(rand() % 300) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "%s -o %s", e.in, e.out);
    assert_int_equal(run_batch(&e.m, cmd), 0);
    read_output(e.out, &t);
    assert_int_equal(t.bad_json, 0);
    assert_int_equal(t.dup_ids, 0);
    assert_int_equal(t.lines, 600);
    assert_int_equal(t.ok, 600);
    json_decref(t.ids);
    /* no faults: every request sent was answered 200, so the extra ones are resends */
    int64_t resent = mock_count(&e.m, "endpoints.chat") - 600;
    print_message("resent after 3 kills: %lld\n", (long long)resent);
    assert_true(resent >= 0 && resent <= 3 * (40 + 256));
    env_close(&e);
}

/* SIGINT: stop reading, finish what is in flight, record it; the rest is for the next run. */
static int64_t chat_count(const sky_test_mock *m)
{
    return mock_count(m, "endpoints.chat");
}

/* Wait (up to 20 s) until the mock has received at least @p n chat requests. */
static void wait_for_chat_requests(const sky_test_mock *m, int64_t n)
{
    for (int i = 0; i < 2000 && chat_count(m) < n; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (chat_count(m) < n)
        fail_msg("the mock never saw %lld chat requests", (long long)n);
}

/* Wait up to 60 s for child @p pid; its exit code, or -1 when it did not exit normally. */
static int wait_exit(pid_t pid)
{
    int status;
    for (int i = 0; i < 6000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("the batch did not finish within 60 s");
    return -1;
}

/*
 * The provider goes away mid-run and comes back on the same port: the batch says so
 * both ways, its requests wait instead of failing, and every one ends up recorded once.
 */
static void test_outage_waits_and_resumes(void **state)
{
    static const char *const margs[] = {"--ttft-ms", "20", "--jitter", "0", NULL};
    batch_env e;
    sky_test_mock back;
    char err_path[300], err_text[8192], port[16];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 400, 0);
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", e.dir);
    pid_t pid = spawn_batch_to(&e.m, e.in, e.out, "8", err_path);
    wait_for_chat_requests(&e.m, 50);
    snprintf(port, sizeof(port), "%d", e.m.port);
    kill(e.m.pid, SIGKILL);
    waitpid(e.m.pid, NULL, 0);
    e.m.pid = 0;
    /* longer than the breaker's quiet time (2 s of nothing but failures): an outage, not a
     * blip the retries ride out */
    struct timespec outage = {3, 0};
    nanosleep(&outage, NULL);
    const char *const back_args[] = {"--port", port, "--ttft-ms", "20", "--jitter", "0", NULL};
    memset(&back, 0, sizeof(back));
    sky_test_mock_start(&back, back_args);
    assert_int_equal(wait_exit(pid), 0);
    read_output(e.out, &t);
    assert_int_equal(t.lines, 400);
    assert_int_equal(t.ok, 400);
    assert_int_equal(t.dup_ids, 0);
    json_decref(t.ids);
    read_text(err_path, err_text, sizeof(err_text));
    assert_non_null(strstr(err_text, "the endpoint is failing (ECONNECT"));
    assert_non_null(strstr(err_text, "the endpoint answers again"));
    assert_int_equal(sky_test_mock_stop(&back), 0);
    env_close(&e);
}

static void test_sigint_drains(void **state)
{
    /* Replies take 1 s, so the signal lands while the first ten are in flight even on a
     * loaded machine: a fixed sleep before it sometimes fired before the batch had started,
     * or after its first replies had already let more requests in. */
    static const char *const margs[] = {"--ttft-ms", "1000", "--jitter", "0", NULL};
    batch_env e;
    char base[1200];
    tally t;
    int status;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 30, 0);
    pid_t pid = spawn_batch(&e.m, e.in, e.out, "10");
    wait_for_chat_requests(&e.m, 1);
    kill(pid, SIGINT);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    /* not "all done": the input was read whole, but most of it was left for the next run */
    assert_int_equal(WEXITSTATUS(status), 1);
    read_output(e.out, &t);
    /* what was in flight was answered and recorded, whole */
    assert_int_equal(t.bad_json, 0);
    assert_int_equal(t.dup_ids, 0);
    assert_true(t.lines >= 1 && t.lines == t.ok);
    json_decref(t.ids);
    /* nothing was sent after the signal that is not in the output: the requests that were
     * waiting for a slot were left for the next run, not sent during the grace period */
    assert_int_equal(mock_count(&e.m, "endpoints.chat"), t.lines);
    assert_true(t.lines <= 10);
    snprintf(base, sizeof(base), "%s -o %s", e.in, e.out);
    assert_int_equal(run_batch(&e.m, base), 0);
    read_output(e.out, &t);
    assert_int_equal(t.lines, 30);
    assert_int_equal(t.dup_ids, 0);
    json_decref(t.ids);
    env_close(&e);
}

/*
 * SIGINT at the very start, whatever the batch is doing then (setting up, reading its
 * input, sending the first requests): it either dies before its handler is in place,
 * having sent nothing, or stops with every request it sent recorded and nothing sent
 * beyond the first ten in flight. A read under way when the signal came once let the
 * whole input through.
 */
static void test_sigint_at_start(void **state)
{
    static const char *const margs[] = {"--ttft-ms", "1000", "--jitter", "0", NULL};
    /* the later ones reach a batch with its handler in place even under ASan */
    static const long delays_ms[] = {0, 2, 5, 10, 20, 40, 80, 160};
    batch_env e;
    tally t;
    int status;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 30, 0);
    for (size_t i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i++) {
        unlink(e.out);
        int64_t before = chat_count(&e.m);
        pid_t pid = spawn_batch(&e.m, e.in, e.out, "10");
        struct timespec ts = {0, delays_ms[i] * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGINT);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        int64_t sent = chat_count(&e.m) - before;
        if (WIFSIGNALED(status)) {
            assert_int_equal(WTERMSIG(status), SIGINT);
            assert_int_equal(sent, 0);
            continue;
        }
        assert_true(WIFEXITED(status));
        memset(&t, 0, sizeof(t));
        if (access(e.out, F_OK) == 0)
            read_output(e.out, &t);
        assert_int_equal(t.bad_json, 0);
        assert_int_equal(t.dup_ids, 0);
        assert_int_equal(t.lines, sent);
        assert_true(t.lines <= 10);
        json_decref(t.ids);
    }
    env_close(&e);
}

static int64_t stat_of(const json_t *stats, const char *path)
{
    return (int64_t)json_integer_value(sky_json_path(stats, path));
}

/* Every fault at once, and 429s on top: each request still ends in exactly one outcome. */
static void test_fault_storm(void **state)
{
    /* The mock's replies announce its limit (x-ratelimit-*), and the batch paces itself by
     * them from its first reply on: the 429s come from the requests it sends before then.
     * Replying at once, a slow run (ASan on a loaded machine) spread those so thin that no
     * 200 ms window got more than 10 and the storm had no 429 at all. With 300 ms to the
     * first reply, the batch's first 32 (its starting concurrency) all go out unpaced. */
    static const char *const margs[] = {"--rpm",
                                        "3000",
                                        "--window-ms",
                                        "200", /* 10 requests each 200 ms */
                                        "--fault-500",
                                        "0.03",
                                        "--fault-502",
                                        "0.03",
                                        "--fault-503",
                                        "0.03",
                                        "--fault-reset",
                                        "0.03",
                                        "--fault-hang",
                                        "0.02",
                                        "--fault-cut",
                                        "0.03",
                                        "--fault-malformed",
                                        "0.03",
                                        "--seed",
                                        "11",
                                        "--ttft-ms",
                                        "300",
                                        "--jitter",
                                        "0",
                                        NULL};
    static const char *const faults[] = {"http_500", "http_502", "http_503", "reset",
                                         "hang",     "cut",      "malformed"};
    batch_env e;
    char args[1600];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 400, 0);
    /* told a limit ten times the real one, the batch meets 429s (with Retry-After) until it
     * has learned; few retries, so a request may run out of them and be recorded as failed */
    snprintf(args, sizeof(args),
             "%s -o %s --errors %s --rpm 30000 --timeout-ms 1000 --max-retries 3", e.in, e.out,
             e.errs);
    int rc = run_batch(&e.m, args);
    memset(&t, 0, sizeof(t));
    t.ids = json_object();
    add_output(e.out, &t);
    add_output(e.errs, &t);
    assert_int_equal(t.bad_json, 0);
    assert_int_equal(t.dup_ids, 0);
    assert_int_equal(t.lines, 400);
    assert_int_equal(json_object_size(t.ids), 400);
    assert_int_equal(t.odd_success, 0); /* a malformed 200 is never kept as a success */
    assert_int_equal(t.no_code, 0);
    assert_true(t.ok > 300);
    assert_int_equal(rc, t.failed ? 1 : 0);
    json_t *stats = sky_test_mock_stats(&e.m);
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
        char path[64];
        snprintf(path, sizeof(path), "faults.%s", faults[i]);
        if (stat_of(stats, path) == 0)
            fail_msg("the storm had no %s fault", faults[i]);
    }
    assert_true(stat_of(stats, "rate_limited") > 0);
    json_decref(stats);
    json_decref(t.ids);
    /* the failed ones are redone (sent again, and no other), and each id is still named
     * once across the output and the errors file */
    int failed_before = t.failed, ok_before = t.ok;
    int64_t chat_before = mock_count(&e.m, "endpoints.chat");
    snprintf(args, sizeof(args), "%s -o %s --errors %s --retry-failed --timeout-ms 1000", e.in,
             e.out, e.errs);
    rc = run_batch(&e.m, args);
    memset(&t, 0, sizeof(t));
    t.ids = json_object();
    add_output(e.out, &t);
    add_output(e.errs, &t);
    assert_int_equal(t.dup_ids, 0);
    assert_int_equal(t.bad_json, 0);
    assert_int_equal(json_object_size(t.ids), 400);
    assert_int_equal(rc, t.failed ? 1 : 0);
    if (failed_before > 0) {
        assert_true(mock_count(&e.m, "endpoints.chat") - chat_before >= failed_before);
        assert_true(t.ok > ok_before); /* at 15% faults, most of the redone ones succeed */
    }
    json_decref(t.ids);
    env_close(&e);
}

/* A summary printed with --json into @p path, parsed (new reference). */
static json_t *read_summary(const char *path)
{
    char text[8192];
    json_t *js = NULL;
    read_text(path, text, sizeof(text));
    assert_int_equal(sky_json_parse(sky_span_cstr(text), &js, NULL), 0);
    return js;
}

/* Run the batch with defaults and @p extra flags; stderr into err_text, summary parsed. */
static json_t *run_defaults(batch_env *e, const char *extra, int want_exit, char *err_text,
                            size_t cap)
{
    char cmd[2048], err_path[300], sum_path[300];
    snprintf(err_path, sizeof(err_path), "%s/stderr.txt", e->dir);
    snprintf(sum_path, sizeof(sum_path), "%s/summary.json", e->dir);
    snprintf(cmd, sizeof(cmd),
             "OPENAI_BASE_URL=%s/v1 OPENAI_API_KEY= %s batch %s -o %s --json %s >%s 2>%s",
             e->m.base_url, SKY_TEST_BIN, e->in, e->out, extra, sum_path, err_path);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), want_exit);
    read_text(err_path, err_text, cap);
    return read_summary(sum_path);
}

/*
 * A limiter in front of the server answers 503 above 40 calls a second (an HTML page, as
 * nginx's limit_req does): that is "slow down", not an outage. Every request ends well,
 * the breaker never opens, and few are refused once the pace is learned.
 */
static void test_overload_503_is_slow_down(void **state)
{
    static const char *const margs[] = {
        "--overload-rps", "40", "--overload-burst", "5", "--ttft-ms", "20", NULL};
    batch_env e;
    char err[8192];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 300, 0);
    json_t *js = run_defaults(&e, "", 0, err, sizeof(err));
    json_decref(js);
    read_output(e.out, &t);
    assert_int_equal(t.ok, 300);
    json_decref(t.ids);
    assert_null(strstr(err, "the endpoint is failing"));
    /* without slowing down, every instant refusal freed a slot for the next request:
     * hundreds of refusals in the first second */
    int64_t refused = mock_count(&e.m, "overloaded");
    print_message("refused %lld of %d\n", (long long)refused, 300);
    assert_true(refused <= 60);
    env_close(&e);
}

/*
 * A server that serves 16 at once and queues the rest: the batch's concurrency stops
 * near that, rather than filling the server's queue with what it read ahead.
 */
static void test_capacity_knee(void **state)
{
    static const char *const margs[] = {"--capacity", "16", "--ttft-ms", "50", NULL};
    batch_env e;
    char err[8192];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 600, 0);
    json_t *js = run_defaults(&e, "", 0, err, sizeof(err));
    json_decref(js);
    read_output(e.out, &t);
    assert_int_equal(t.ok, 600);
    json_decref(t.ids);
    int64_t peak = mock_count(&e.m, "capacity.peak_queued");
    int64_t wait_ms = mock_count(&e.m, "capacity.wait_ms");
    print_message("peak queue at the server %lld, mean wait in it %lld ms (capacity 16)\n",
                  (long long)peak, (long long)(wait_ms / 600));
    /* with nothing to find the knee, all 600 read ahead would wait in the server's queue,
     * about a second on average; the slow start's overshoot queues a few round trips'
     * worth once, and the limit then keeps the queue short */
    assert_true(peak < 600 - 16);
    assert_true(wait_ms / 600 < 250);
    env_close(&e);
}

/*
 * A tenth of the requests fail every time (the server cannot handle them) while the rest
 * succeed: each uses its retries and is recorded failed; the breaker never opens, so the
 * others never wait behind it.
 */
static void test_poison_does_not_hold_the_batch(void **state)
{
    static const char *const margs[] = {"--poison", "0.1", "--ttft-ms", "10", NULL};
    batch_env e;
    char err[8192];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 200, 0);
    json_t *js = run_defaults(&e, "--max-retries 2", 1, err, sizeof(err));
    read_output(e.out, &t);
    int64_t poisoned = mock_count(&e.m, "poisoned");
    assert_true(t.failed > 0);
    assert_int_equal(poisoned, 3 * t.failed); /* each failed one was tried 3 times */
    assert_int_equal(t.ok + t.failed, 200);
    assert_int_equal(sky_json_int(js, "failed", 0), t.failed);
    json_decref(js);
    json_decref(t.ids);
    assert_null(strstr(err, "the endpoint is failing"));
    env_close(&e);
}

/* @p distinct requests, then duplicates of them up to @p lines lines in all. */
static void write_repeating_input(const char *path, long lines, int distinct)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (long i = 0; i < lines; i++)
        fprintf(f,
                "{\"custom_id\":\"req-%ld\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                "\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"question %ld\"}],\"max_tokens\":2}}\n",
                i % distinct, i);
    fclose(f);
}

/* Run `skyio batch IN -o OUT --errors ERRS` to its end; returns its peak RSS in KiB. */
static long batch_peak_rss_kib(const sky_test_mock *m, const char *in, const char *out,
                               const char *errs, int *out_status)
{
    char base[300];
    struct rusage ru;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        snprintf(base, sizeof(base), "%s/v1", m->base_url);
        setenv("OPENAI_BASE_URL", base, 1);
        unsetenv("OPENAI_API_KEY");
        execl(SKY_TEST_BIN, SKY_TEST_BIN, "batch", in, "-o", out, "--errors", errs, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(wait4(pid, out_status, 0, &ru), pid);
    return ru.ru_maxrss;
}

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    long n = 0;
    int c;
    assert_non_null(f);
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/*
 * A file of a million lines is read as a stream: the batch's memory is the same as for a
 * file a hundred times smaller with the same requests. (The lines past the first thousand
 * repeat a custom_id, so each becomes an error record without a network call; memory grows
 * only with the number of distinct custom_ids, which the duplicate check must remember.)
 */
static void test_million_lines_stream(void **state)
{
    batch_env e;
    long rss[2];
#ifdef __SANITIZE_ADDRESS__
    /* ASan keeps freed memory in quarantine, so RSS says nothing here; the outputs still do */
    const long sizes[2] = {10000, 200000};
    const int check_rss = 0;
#else
    const long sizes[2] = {10000, 1000000};
    const int check_rss = 1;
#endif
    int status;
    (void)state;
    env_open(&e, NULL);
    for (int k = 0; k < 2; k++) {
        snprintf(e.in, sizeof(e.in), "%s/in-%d.jsonl", e.dir, k);
        snprintf(e.out, sizeof(e.out), "%s/out-%d.jsonl", e.dir, k);
        snprintf(e.errs, sizeof(e.errs), "%s/errors-%d.jsonl", e.dir, k);
        write_repeating_input(e.in, sizes[k], 1000);
        rss[k] = batch_peak_rss_kib(&e.m, e.in, e.out, e.errs, &status);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1); /* the duplicates are input errors */
        assert_int_equal(count_lines(e.out), 1000);
        assert_int_equal(count_lines(e.errs), sizes[k] - 1000);
        unlink(e.in); /* 170 MB: gone before the next */
    }
    if (getenv("SKY_TEST_VERBOSE"))
        printf("peak RSS: %ld KiB for %ld lines, %ld KiB for %ld lines\n", rss[0], sizes[0], rss[1],
               sizes[1]);
    /* a hundred times the lines, the same memory give or take allocator noise */
    if (check_rss)
        assert_true(rss[1] < rss[0] + 8 * 1024);
    env_close(&e);
}

/* Azure OpenAI without a key: one Entra ID token (from the mock's IMDS) serves the batch. */
static void test_azure_with_entra_id(void **state)
{
    /* the chat endpoint accepts only the first token the mock's IMDS issues */
    static const char *const margs[] = {"--key", "mock-token-1", NULL};
    batch_env e;
    char cmd[2048];
    tally t;
    (void)state;
    env_open(&e, margs);
    write_input(e.in, 40, 0);
    /* and 10 lines as Azure's own batch files have them: url without the /v1 */
    FILE *f = fopen(e.in, "a");
    assert_non_null(f);
    for (int i = 0; i < 10; i++)
        fprintf(f,
                "{\"custom_id\":\"az-%d\",\"method\":\"POST\",\"url\":\"/chat/completions\","
                "\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"hi\"}]}}\n",
                i);
    fclose(f);
    /* 0.0.0.0 reaches the loopback mock without looking like loopback, where a keyless
     * Azure endpoint is taken for a local server that needs no auth */
    const char *env = "env -i PATH=/usr/bin:/bin SKYIO_AZ_PATH=/nonexistent/az";
    snprintf(cmd, sizeof(cmd),
             "%s AZURE_OPENAI_ENDPOINT=http://0.0.0.0:%d AZURE_POD_IDENTITY_AUTHORITY_HOST=%s "
             "%s batch %s -o %s 2>/dev/null",
             env, e.m.port, e.m.base_url, SKY_TEST_BIN, e.in, e.out);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    read_output(e.out, &t);
    assert_int_equal(t.ok, 50);
    assert_non_null(json_object_get(t.ids, "az-9"));
    json_decref(t.ids);
    json_t *stats = sky_test_mock_stats(&e.m);
    assert_int_equal(json_integer_value(sky_json_path(stats, "identity.imds")), 1);
    assert_int_equal(json_integer_value(sky_json_path(stats, "auth_failures")), 0);
    json_decref(stats);
    /* no credential at all: exit 3 before anything is sent or written */
    unlink(e.out);
    snprintf(cmd, sizeof(cmd),
             "%s AZURE_OPENAI_ENDPOINT=http://0.0.0.0:%d AZURE_POD_IDENTITY_AUTHORITY_HOST="
             "http://127.0.0.1:1 %s batch %s -o %s 2>/dev/null",
             env, e.m.port, SKY_TEST_BIN, e.in, e.out);
    st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    struct stat sb;
    assert_true(stat(e.out, &sb) != 0 || sb.st_size == 0);
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcomes_and_bad_input),
        cmocka_unit_test(test_text_mode_and_torn_line),
        cmocka_unit_test(test_refused_key_stops),
        cmocka_unit_test(test_refused_account_stops),
        cmocka_unit_test(test_openai_retry_statuses),
        cmocka_unit_test(test_every_batch_url),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_unwritable_output_stops),
        cmocka_unit_test(test_unreachable_endpoint_stops),
        cmocka_unit_test(test_untrusted_certificate_records_nothing),
        cmocka_unit_test(test_unreadable_replies_paid_at_most_twice),
        cmocka_unit_test(test_input_must_be_a_file),
        cmocka_unit_test(test_outage_waits_and_resumes),
        cmocka_unit_test(test_exactly_once_across_kill),
        cmocka_unit_test(test_sigint_drains),
        cmocka_unit_test(test_sigint_at_start),
        cmocka_unit_test(test_fault_storm),
        cmocka_unit_test(test_overload_503_is_slow_down),
        cmocka_unit_test(test_capacity_knee),
        cmocka_unit_test(test_poison_does_not_hold_the_batch),
        cmocka_unit_test(test_million_lines_stream),
        cmocka_unit_test(test_azure_with_entra_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
