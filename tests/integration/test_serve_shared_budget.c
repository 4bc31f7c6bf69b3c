/*
 * A key's minute budgets shared by two `skyio serve` side by side on one Redis, in front of
 * one `skyio mock`: calls alternating between the gateways are let through up to the key's
 * RPM (or TPM) once, not once a gateway; the rest get 429 with retry-after and the
 * x-ratelimit-* headers. Each gateway leases chunks of the shared bucket ahead of time and
 * may let a call through ahead of its lease while the bucket had room at its last answer
 * (at most one chunk a gateway: 1 request for 20 RPM), so the bound asserted is the budget,
 * plus what refills during the run, plus that debt a gateway. A call refused only because
 * its gateway's lease is on its way waits for it: with Redis paused while calls go (slow
 * leases), every call within the budget is answered 200, the waits counted in /metrics, and
 * a client leaving while its call waits is forgotten once. Redis killed mid-run: calls
 * go on under each gateway's local bucket, counted in /metrics; the shared bucket is used
 * again once Redis is back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "harness_redis.h"
#include "harness_serve.h"
#include "skyio/json.h"
#include "harness_group.h"

#define RPM_KEY "sk-rpm-4be1"
#define TPM_KEY "sk-tpm-90ac"
#define ROOMY_KEY "sk-roomy-2d77"
#define SLOW_KEY "sk-slow-61f3"
#define GONE_KEY "sk-gone-0c5e"
#define RPM 20
#define TPM 1000
#define GATEWAYS 2

typedef sky_test_serve serve;

static struct {
    sky_test_mock mock;
    sky_test_redis redis;
    char dir[256];
    uv_loop_t *loop;
    sky_http_client *client;
    serve gw[GATEWAYS];
} env;

static void keys_in_env(void)
{
    setenv("SKY_TEST_RPM_KEY", RPM_KEY, 1);
    setenv("SKY_TEST_TPM_KEY", TPM_KEY, 1);
    setenv("SKY_TEST_ROOMY_KEY", ROOMY_KEY, 1);
    setenv("SKY_TEST_SLOW_KEY", SLOW_KEY, 1);
    setenv("SKY_TEST_GONE_KEY", GONE_KEY, 1);
}

static int setup(void **state)
{
    (void)state;
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    sky_test_mock_start(&env.mock, NULL);
    sky_test_redis_start(&env.redis, NULL);
    char config[768];
    sky_test_gateway_config(
        config, sizeof(config), env.dir,
        "{\"models\": {\"gpt-4o\": [{\"kind\": \"compatible\", \"base_url\": \"%s/v1\"}]},"
        " \"keys\": [{\"name\": \"rpm\", \"key_env\": \"SKY_TEST_RPM_KEY\", \"rpm\": %d},"
        "            {\"name\": \"tpm\", \"key_env\": \"SKY_TEST_TPM_KEY\", \"tpm\": %d},"
        "            {\"name\": \"roomy\", \"key_env\": \"SKY_TEST_ROOMY_KEY\","
        "             \"rpm\": 600},"
        "            {\"name\": \"slow\", \"key_env\": \"SKY_TEST_SLOW_KEY\", \"rpm\": %d},"
        "            {\"name\": \"gone\", \"key_env\": \"SKY_TEST_GONE_KEY\", \"rpm\": %d}]}\n",
        env.mock.base_url, RPM, TPM, RPM, RPM);
    sky_test_client_open(&env.loop, &env.client);
    static const char *const names[GATEWAYS] = {"side-a", "side-b"};
    for (int i = 0; i < GATEWAYS; i++) {
        const char *args[] = {"--config", config, "--redis", env.redis.url, NULL};
        sky_test_serve_start_in(&env.gw[i], env.dir, names[i], args, keys_in_env);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < GATEWAYS; i++)
        if (env.gw[i].pid)
            sky_test_serve_stop_ok(&env.gw[i]);
    if (env.redis.pid)
        sky_test_redis_free(&env.redis);
    sky_test_client_close(env.loop, env.client);
    sky_test_mock_stop(&env.mock);
    sky_test_rmdir(env.dir);
    return 0;
}

/* A chat with @p key asking up to @p max_tokens (0: none); the answer in @p out. */
static void chat(const serve *s, const char *key, int max_tokens, sky_test_result *out)
{
    char body[200], extra[48] = "";
    if (max_tokens > 0)
        snprintf(extra, sizeof(extra), ",\"max_tokens\":%d", max_tokens);
    snprintf(body, sizeof(body),
             "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]%s}",
             extra);
    sky_test_serve_call(s, env.loop, env.client, "POST", "/v1/chat/completions", body, key, NULL,
                        out);
    assert_int_equal(out->err_code, 0);
}

static const char *header(const sky_test_result *r, const char *name)
{
    return json_string_value(json_object_get(r->headers, name));
}

/* A refusal as OpenAI shapes it: retry-after, and the x-ratelimit-* of @p what. */
static void assert_refusal(const sky_test_result *r, const char *what)
{
    char name[64];
    assert_int_equal(r->status, 429);
    assert_non_null(header(r, "retry-after"));
    assert_true(atoi(header(r, "retry-after")) >= 1);
    assert_non_null(header(r, "retry-after-ms"));
    snprintf(name, sizeof(name), "x-ratelimit-limit-%s", what);
    assert_non_null(header(r, name));
    snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", what);
    assert_non_null(header(r, name));
    snprintf(name, sizeof(name), "x-ratelimit-reset-%s", what);
    assert_non_null(header(r, name));
    assert_non_null(strstr(r->body, "rate_limit_exceeded"));
}

static double metric(const serve *s, const char *series)
{
    sky_test_result r;
    sky_test_serve_metrics(s, env.loop, env.client, &r);
    double v = sky_test_sample(r.body, series);
    sky_test_result_free(&r);
    return v;
}

static void rpm_shared_by_two_gateways(void **state)
{
    (void)state;
    int ok = 0, refused = 0;
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < 30; i++) {
        sky_test_result r;
        chat(&env.gw[i % GATEWAYS], RPM_KEY, 0, &r);
        if (r.status == 200) {
            ok++;
            assert_non_null(header(&r, "x-ratelimit-remaining-requests"));
        } else {
            refused++;
            assert_refusal(&r, "requests");
        }
        sky_test_result_free(&r);
    }
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    /* the budget, what refilled meanwhile (one every 3 s), and one owed a gateway */
    int bound = RPM + (int)(secs * RPM / 60) + 1 + GATEWAYS;
    print_message("rpm %d: %d answered, %d refused in %.2f s (bound %d)\n", RPM, ok, refused, secs,
                  bound);
    assert_true(ok >= RPM);
    assert_true(ok <= bound);
    assert_int_equal(ok + refused, 30);
    /* alone, each gateway would have let 20 through: 30 */
    assert_true(refused >= 30 - bound);
    assert_true(sky_test_redis_int(&env.redis, "EXISTS skyio:bucket:rpm") == 1);
    assert_int_equal(metric(&env.gw[0], "skyio_gateway_key_budget_local_total"), 0);
}

static void tpm_shared_by_two_gateways(void **state)
{
    (void)state;
    const int max_tokens = 100;
    long long used = 0;
    int ok = 0, refused = 0;
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < 200 && refused < 6; i++) {
        sky_test_result r;
        chat(&env.gw[i % GATEWAYS], TPM_KEY, max_tokens, &r);
        if (r.status == 200) {
            json_t *doc = json_loads(r.body, 0, NULL);
            assert_non_null(doc);
            json_t *u = json_object_get(json_object_get(doc, "usage"), "total_tokens");
            assert_true(json_is_integer(u));
            used += json_integer_value(u);
            json_decref(doc);
            ok++;
        } else {
            refused++;
            assert_refusal(&r, "tokens");
        }
        sky_test_result_free(&r);
    }
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    /* a call is charged about 130 tokens up front (its body and max_tokens), settled to what
     * it used; the settlements go back to the shared bucket with the next lease */
    long long charge = 130, bound = TPM + (long long)(secs * TPM / 60) + 1 + GATEWAYS * charge;
    print_message("tpm %d: %d answered using %lld tokens, %d refused in %.2f s (bound %lld)\n", TPM,
                  ok, used, refused, secs, bound);
    assert_int_equal(refused, 6);
    assert_true(used <= bound);
    assert_true(used >= TPM - GATEWAYS * 2 * charge);
}

/* Redis ends a pause on its clock's tick (10 a second by default): 100 a second, so a pause
 * lasts about what it asks. */
static void fine_redis_clock(void)
{
    redisReply *rep = sky_test_redis_command(&env.redis, "CONFIG SET hz 100");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    usleep(200000); /* the old tick's last */
}

/* Redis holds every command for @p ms: the gateways' leases on their way take that long. */
static void pause_redis(int ms)
{
    redisReply *rep = sky_test_redis_command(&env.redis, "CLIENT PAUSE %d ALL", ms);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
}

/* A chat with @p key sent to @p s by hand, its client gone @p ms later without an answer. */
static void chat_and_leave(const serve *s, const char *key, int ms)
{
    static const char body[] =
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     key, sizeof(body) - 1, body);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, req, (size_t)n, 0), n);
    usleep((useconds_t)ms * 1000);
    close(fd);
}

static void slow_leases_no_false_refusal(void **state)
{
    (void)state;
    /* each round: Redis paused, then two calls on each gateway. The first goes ahead of its
     * lease (held by Redis), the second would be refused for that debt: it waits instead */
    int ok = 0;
    fine_redis_clock();
    for (int round = 0; round < RPM / 4; round++) {
        pause_redis(40);
        for (int i = 0; i < 4; i++) {
            sky_test_result r;
            chat(&env.gw[i / 2], SLOW_KEY, 0, &r);
            if (r.status != 200)
                print_message("round %d call %d: %d %s\n", round, i, r.status, r.body);
            ok += r.status == 200;
            sky_test_result_free(&r);
        }
    }
    double waited = 0;
    for (int i = 0; i < GATEWAYS; i++)
        waited += metric(&env.gw[i], "skyio_gateway_key_budget_waited_total");
    print_message("slow leases: %d of %d answered, %.0f waited for their lease\n", ok, RPM, waited);
    assert_int_equal(ok, RPM);
    assert_true(waited >= 1);
}

static void client_leaves_while_waiting(void **state)
{
    (void)state;
    /* the second call waits for the lease Redis holds (200 ms, more than the wait's bound);
     * its client leaves meanwhile, seen by the server within 100 ms: the waiting call is
     * forgotten once (a sanitized gateway exits clean) and the gateway goes on */
    pause_redis(200);
    chat_and_leave(&env.gw[0], GONE_KEY, 20);
    chat_and_leave(&env.gw[0], GONE_KEY, 20);
    usleep(200000);
    for (int i = 0; i < 4; i++) {
        sky_test_result r;
        chat(&env.gw[0], GONE_KEY, 0, &r);
        assert_int_equal(r.status, 200);
        sky_test_result_free(&r);
    }
}

static void redis_away_then_back(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++) {
        sky_test_result r;
        chat(&env.gw[i % GATEWAYS], ROOMY_KEY, 0, &r);
        assert_int_equal(r.status, 200);
        sky_test_result_free(&r);
    }
    assert_int_equal(sky_test_redis_int(&env.redis, "EXISTS skyio:bucket:roomy"), 1);
    sky_test_redis_kill(&env.redis);
    /* each gateway spends what it leased (a chunk: 12), then goes on alone */
    for (int i = 0; i < 60; i++) {
        sky_test_result r;
        chat(&env.gw[i % GATEWAYS], ROOMY_KEY, 0, &r);
        assert_int_equal(r.status, 200);
        assert_non_null(header(&r, "x-ratelimit-remaining-requests"));
        sky_test_result_free(&r);
    }
    double local = 0;
    for (int i = 0; i < GATEWAYS; i++)
        local += metric(&env.gw[i], "skyio_gateway_key_budget_local_total");
    assert_true(local >= 1);
    assert_true(sky_test_file_holds(env.dir, "side-a/stderr.log", "keys' minute budgets") ||
                sky_test_file_holds(env.dir, "side-b/stderr.log", "keys' minute budgets"));
    /* back, empty: the shared bucket is asked again within a second or two */
    sky_test_redis_restart(&env.redis, 1);
    int back = 0;
    for (int i = 0; i < 60 && !back; i++) {
        sky_test_result r;
        chat(&env.gw[i % GATEWAYS], ROOMY_KEY, 0, &r);
        assert_int_equal(r.status, 200);
        sky_test_result_free(&r);
        back = sky_test_redis_int(&env.redis, "EXISTS skyio:bucket:roomy") == 1;
        if (!back)
            usleep(100000);
    }
    assert_true(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rpm_shared_by_two_gateways),
        cmocka_unit_test(tpm_shared_by_two_gateways),
        cmocka_unit_test(slow_leases_no_false_refusal),
        cmocka_unit_test(client_leaves_while_waiting),
        cmocka_unit_test(redis_away_then_back),
    };
    return sky_test_run_group(tests, setup, teardown);
}
