/*
 * `skyio http --rate` (open-loop load) as a user runs it, against `skyio mock` on
 * loopback: the schedule sends exactly the requests it promises, the summary's figures
 * hold together, and a slow server's hold on the sender shows in the latency instead of
 * vanishing (coordinated omission). No assert depends on how fast the machine is: only
 * lower bounds the mock's own delays impose, and bounds that follow from the schedule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "harness_cli.h"
#include "skyio/json.h"

static const char chat_body[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
    "\"max_tokens\":5}";

/* What one run of the binary left: its exit code, stdout and stderr. */
typedef sky_test_cli_out run;

/* Run `skyio http ARGS` (split as a shell would) and wait; a crash fails the test. */
#define http_cli(r, ...) sky_test_run_skyio((r), "http", __VA_ARGS__)

static double num_at(const json_t *j, const char *path)
{
    json_t *v = sky_json_path(j, path);
    if (!json_is_number(v))
        fail_msg("no number at %s", path);
    return json_number_value(v);
}

/* Percentiles in order, service never above latency (each request's service time is
 * part of its latency), for the histogram pair of a --rate summary. */
static void check_percentiles(const json_t *j)
{
    static const char *const ps[] = {"p50", "p90", "p99", "p99_9", "max"};
    char a[64], b[64];
    for (size_t i = 0; i < SKY_ARRAY_LEN(ps); i++) {
        snprintf(a, sizeof(a), "latency_us.%s", ps[i]);
        snprintf(b, sizeof(b), "service_us.%s", ps[i]);
        assert_true(num_at(j, b) <= num_at(j, a));
        if (i > 0) {
            snprintf(b, sizeof(b), "latency_us.%s", ps[i - 1]);
            assert_true(num_at(j, b) <= num_at(j, a));
        }
    }
}

/* 1 s at 200 requests/s: 200 requests, each answered, the rate reached no higher than
 * the schedule allows (the last is due 199/200 s after the first). */
static void test_rate_for_a_duration(void **state)
{
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    http_cli(&r, "--rate 200 --duration 1 --json --json-body -d '%s' %s/v1/chat/completions",
             chat_body, m.base_url);
    if (r.code != 0)
        fail_msg("exit %d:\n%s\n%s", r.code, r.out, r.err);
    json_t *j = sky_test_cli_json(&r);
    assert_true(num_at(j, "requests") == 200);
    assert_true(num_at(j, "ok") == 200);
    assert_true(num_at(j, "failed") == 0);
    assert_true(num_at(j, "status.200") == 200);
    assert_true(num_at(j, "rate") == 200);
    double achieved = num_at(j, "achieved_rate");
    assert_true(achieved > 0 && achieved <= 200.0 * 200 / 199 + 0.1);
    assert_true(num_at(j, "seconds") >= 0.995);
    assert_true(num_at(j, "max_in_flight") >= 1);
    check_percentiles(j);
    json_decref(j);
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.chat"), 200);
    /* the text summary names what it measured */
    http_cli(&r, "--rate 100 -n 5 %s/v1/models", m.base_url);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "requests: 5  ok: 5  failed: 0"));
    assert_non_null(strstr(r.out, "100.0 requests/s asked"));
    assert_non_null(strstr(r.out, "from each request's due time"));
    assert_non_null(strstr(r.out, "p99.9"));
    assert_int_equal(sky_test_mock_stat(&m, "endpoints.models"), 5);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/*
 * The mock takes at least 100 ms a request and the sender may keep one in flight, while
 * the schedule asks for one every 20 ms: the sender is held back. A closed-loop count would
 * report ~100 ms for all; here request k, due at 20k ms, cannot go before 100k ms, so its
 * latency is at least 80k ms, the last one's (k = 19) at least 1.52 s.
 */
static void test_held_back_sender_counts_the_wait(void **state)
{
    static const char *const args[] = {"--ttft-ms", "100", "--jitter", "0", NULL};
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    http_cli(&r, "--rate 50 -n 20 -c 1 --json --json-body -d '%s' %s/v1/chat/completions",
             chat_body, m.base_url);
    if (r.code != 0)
        fail_msg("exit %d:\n%s\n%s", r.code, r.out, r.err);
    json_t *j = sky_test_cli_json(&r);
    assert_true(num_at(j, "requests") == 20);
    assert_true(num_at(j, "ok") == 20);
    assert_true(num_at(j, "max_in_flight") == 1);
    assert_true(num_at(j, "service_us.p50") >= 100000);
    assert_true(num_at(j, "latency_us.max") >= 1520000);
    assert_true(num_at(j, "latency_us.p50") >= 800000); /* k = 10 of 0..19 */
    assert_true(num_at(j, "late") >= 18);
    assert_true(num_at(j, "achieved_rate") < 10.1); /* at most one per 100 ms */
    check_percentiles(j);
    json_decref(j);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void expect_usage(const run *r, const char *says);

/* One --latency-log row: index, due (monotonic, Unix), send lag, latency, service, status,
 * new connection. */
typedef struct log_row {
    unsigned long long index, due_mono, due_unix, lag, latency, service;
    int status, new_conn;
} log_row;

static size_t read_log(const char *path, log_row *rows, size_t max)
{
    char line[256];
    size_t n = 0;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    assert_string_equal(line, "index,due_mono_us,due_unix_us,send_lag_us,latency_us,service_us,"
                              "status,new_connection\n");
    while (n < max && fgets(line, sizeof(line), f)) {
        log_row *w = &rows[n++];
        assert_int_equal(sscanf(line, "%llu,%llu,%llu,%llu,%llu,%llu,%d,%d", &w->index,
                                &w->due_mono, &w->due_unix, &w->lag, &w->latency, &w->service,
                                &w->status, &w->new_conn),
                         8);
    }
    assert_null(fgets(line, sizeof(line), f));
    fclose(f);
    return n;
}

/* The same held-back run with --latency-log: a row for each request of the schedule, due
 * 20 ms apart, its latency its send lag plus its service, one new connection (the first
 * request's; the rest reuse it), and request k not done before ~100 (k + 1) ms. */
static void test_latency_log_rows(void **state)
{
    static const char *const args[] = {"--ttft-ms", "100", "--jitter", "0", NULL};
    sky_test_mock m;
    run r;
    char dir[256], path[300];
    log_row rows[21];
    int seen[20] = {0}, new_conns = 0;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, args);
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/latency.csv", dir);
    http_cli(&r, "--rate 50 -n 20 -c 1 --latency-log %s --json-body -d '%s' %s/v1/chat/completions",
             path, chat_body, m.base_url);
    if (r.code != 0)
        fail_msg("exit %d:\n%s\n%s", r.code, r.out, r.err);
    assert_int_equal(read_log(path, rows, SKY_ARRAY_LEN(rows)), 20);
    for (size_t i = 0; i < 20; i++) {
        const log_row *w = &rows[i];
        assert_true(w->index < 20 && !seen[w->index]);
        seen[w->index] = 1;
        assert_int_equal(w->status, 200);
        new_conns += w->new_conn;
        assert_true(w->due_mono - rows[0].due_mono == (w->index - rows[0].index) * 20000);
        assert_true(w->due_unix - rows[0].due_unix == w->due_mono - rows[0].due_mono);
        assert_true(w->latency >= w->service && w->latency - w->service - w->lag <= 1);
        /* the mock's 100 ms timer may fire up to a millisecond early (libuv's cached time) */
        assert_true(w->service >= 99000);
        assert_true(w->latency + w->index * 20000 >= (w->index + 1) * 99000);
    }
    assert_int_equal(new_conns, 1);
    assert_int_equal(sky_test_mock_stop(&m), 0);
    /* without --rate there is no schedule to log */
    http_cli(&r, "--latency-log %s http://127.0.0.1:1/", path);
    expect_usage(&r, "--latency-log goes with --rate");
    /* a file that cannot be written: said before anything is sent */
    http_cli(&r, "--rate 10 -n 1 --latency-log %s/no/such/dir.csv http://127.0.0.1:1/", dir);
    expect_usage(&r, "cannot write --latency-log");
}

static void expect_usage(const run *r, const char *says)
{
    if (r->code != 2 || strstr(r->err, says) == NULL)
        fail_msg("expected exit 2 saying \"%s\"; got exit %d:\n%s", says, r->code, r->err);
    assert_string_equal(r->out, "");
}

static void test_bad_rates_and_unreachable(void **state)
{
    run r;
    (void)state;
    http_cli(&r, "--rate 0 http://127.0.0.1:1/");
    expect_usage(&r, "--rate wants a number above 0, not '0'");
    http_cli(&r, "--rate fast http://127.0.0.1:1/");
    expect_usage(&r, "--rate wants a number above 0");
    http_cli(&r, "--rate 10 --duration -1 http://127.0.0.1:1/");
    expect_usage(&r, "--duration wants a number above 0");
    http_cli(&r, "--duration 5 http://127.0.0.1:1/");
    expect_usage(&r, "--duration goes with --rate");
    /* nobody listens on port 1: every request fails to connect, exit 3, as with -n */
    http_cli(&r, "--rate 100 -n 4 --json http://127.0.0.1:1/");
    assert_int_equal(r.code, 3);
    json_t *j = sky_test_cli_json(&r);
    assert_true(num_at(j, "requests") == 4);
    assert_true(num_at(j, "errors.ECONNECT") == 4);
    json_decref(j);
    assert_non_null(strstr(r.err, "first error: ECONNECT"));
    /* a URL curl cannot use: refused at the first send, exit 2 */
    http_cli(&r, "--rate 100 -n 3 http://");
    assert_int_equal(r.code, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_for_a_duration),
        cmocka_unit_test(test_held_back_sender_counts_the_wait),
        cmocka_unit_test(test_bad_rates_and_unreachable),
        cmocka_unit_test(test_latency_log_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
