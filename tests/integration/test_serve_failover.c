/*
 * `skyio serve`'s routing through the fleet of harness_serve_fleet.h: failover before the
 * first byte, the fallback model, and headroom winning over weight when a deployment is at
 * its request or token limit.
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness_serve_fleet.h"
#include "skyio/headers.h"
#include "skyio/json.h"
#include "harness_group.h"

/* ---- failover ---- */

static void test_failover_before_first_byte(void **state)
{
    (void)state;
    json_t *before = sky_test_mock_stats(&sky_fleet.fast2);
    int64_t ok0 = json_integer_value(sky_json_path(before, "responses.200"));
    json_decref(before);
    const int n = 12;
    for (int i = 0; i < n; i++) {
        sky_test_result r;
        sky_fleet_call(
            "POST", "/v1/chat/completions",
            i % 2 ? "{\"model\":\"flaky\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
                  : "{\"model\":\"flaky\",\"stream\":true,"
                    "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
            SKY_FLEET_CLIENT_KEY, &r);
        assert_int_equal(r.status, 200);
        /* the standby's upstream name went in the body: the mock echoes it */
        assert_non_null(strstr(r.body, "gpt-4o-mini"));
        sky_test_result_free(&r);
    }
    /* every request was answered by the healthy deployment... */
    json_t *ok = sky_test_mock_stats(&sky_fleet.fast2);
    assert_int_equal(json_integer_value(sky_json_path(ok, "responses.200")), ok0 + n);
    json_decref(ok);
    /* ...after the broken one refused some, until its breaker opened */
    json_t *bad = sky_test_mock_stats(&sky_fleet.broken);
    int64_t refused = json_integer_value(sky_json_path(bad, "responses.503"));
    json_decref(bad);
    assert_true(refused >= 1 && refused < n);
}

/* Every deployment of "fallen" refuses (503): its requests go to gpt-4o's */
static void test_fallback_model(void **state)
{
    (void)state;
    json_t *st = sky_test_mock_stats(&sky_fleet.fast);
    json_t *st2 = sky_test_mock_stats(&sky_fleet.fast2);
    int64_t ok0 = json_integer_value(sky_json_path(st, "responses.200")) +
                  json_integer_value(sky_json_path(st2, "responses.200"));
    json_decref(st);
    json_decref(st2);
    for (int i = 0; i < 4; i++) {
        sky_test_result r;
        sky_fleet_call(
            "POST", "/v1/chat/completions",
            i % 2 ? "{\"model\":\"fallen\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
                  : "{\"model\":\"fallen\",\"stream\":true,"
                    "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
            SKY_FLEET_CLIENT_KEY, &r);
        assert_int_equal(r.status, 200);
        /* the fallback's name went upstream in the body: the mock echoes it */
        assert_non_null(strstr(r.body, "\"model\":\"gpt-4o\""));
        sky_test_result_free(&r);
    }
    st = sky_test_mock_stats(&sky_fleet.fast);
    st2 = sky_test_mock_stats(&sky_fleet.fast2);
    assert_int_equal(json_integer_value(sky_json_path(st, "responses.200")) +
                         json_integer_value(sky_json_path(st2, "responses.200")),
                     ok0 + 4);
    json_decref(st);
    json_decref(st2);
}

/* A deployment at its limit holds calls in its pipeline: the gateway sends them where
 * there is room now, though the one at its limit (@p bound) has ten times the weight */
static void headroom_run(const char *body, const sky_test_mock *bound)
{
    enum { N = 40, AT_ONCE = 8 };
    static sky_test_result r[N];
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/chat/completions", sky_fleet.serve.base);
    sky_headers *h = sky_test_bearer_json_headers(SKY_FLEET_CLIENT_KEY);
    json_t *st = sky_test_mock_stats(&sky_fleet.fast);
    int64_t fast0 = json_integer_value(sky_json_path(st, "responses.200"));
    json_decref(st);
    int sent = 0, done = 0;
    memset(r, 0, sizeof(r));
    while (done < N) {
        while (sent < N && sent - done < AT_ONCE) {
            sky_http_request_options o;
            sky_http_request_options_init(&o);
            o.method = "POST";
            o.url = url;
            o.headers = h;
            o.body = sky_span_cstr(body);
            o.timeout_ms = 20000;
            o.on_done = sky_test_on_done;
            o.user_data = &r[sent++];
            assert_int_equal(sky_http_request_send(sky_fleet.client, &o, NULL, NULL), 0);
        }
        int one = 0;
        (void)sky_test_run_until(sky_fleet.loop, &one, 5);
        done = 0;
        for (int i = 0; i < sent; i++)
            done += r[i].done;
    }
    sky_headers_free(h);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].status, 200);
        sky_test_result_free(&r[i]);
    }
    st = sky_test_mock_stats(&sky_fleet.fast);
    int64_t fast = json_integer_value(sky_json_path(st, "responses.200")) - fast0;
    json_decref(st);
    st = sky_test_mock_stats(bound);
    int64_t slowed = json_integer_value(sky_json_path(st, "responses.200"));
    json_decref(st);
    assert_int_equal(fast + slowed, N);
    assert_true(fast >= N / 2);
}

/* one request a second */
static void test_headroom_beats_weight(void **state)
{
    (void)state;
    headroom_run("{\"model\":\"busy\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                 &sky_fleet.throttled);
}

/* 100 tokens a second, each call 50 and more */
static void test_token_headroom_beats_weight(void **state)
{
    (void)state;
    headroom_run("{\"model\":\"wordy\",\"max_tokens\":50,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                 &sky_fleet.wordy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_before_first_byte),
        cmocka_unit_test(test_fallback_model),
        cmocka_unit_test(test_headroom_beats_weight),
        cmocka_unit_test(test_token_headroom_beats_weight),
    };
    return sky_test_run_group(tests, sky_fleet_setup, sky_fleet_teardown);
}
