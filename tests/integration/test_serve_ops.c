/*
 * `skyio serve`'s operations, a real process in front of real `skyio mock` processes on
 * loopback: x-request-id both ways, the access log, /metrics, /readyz, and SIGHUP reloads
 * under load that lose no request. No key reaches a log, a metric or a reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
#include "harness_serve.h"
#include "skyio/buf.h"
#include "skyio/gateway.h"
#include "skyio/json.h"
#include "harness_group.h"

#define UPSTREAM_KEY "sk-upstream-canary-ops-5d2e"
#define CLIENT_KEY "sk-client-ops-0001"

typedef struct ops_env {
    sky_test_mock fast, broken, slow, entra;
    sky_test_serve serve;
    char dir[256];
    char config[512];
    uv_loop_t *loop;
    sky_http_client *client;
} ops_env;

static ops_env env;

/* ---- the gateway's config and process ---- */

static void dep_json(char *out, size_t len, const char *base_url)
{
    snprintf(out, len, "{\"kind\": \"compatible\", \"base_url\": \"%s\", \"key_env\": \"UPK\"}",
             base_url);
}

static void write_config(int with_added)
{
    unsigned char h[SKY_GATEWAY_SHA256_LEN];
    char hx[2 * SKY_GATEWAY_SHA256_LEN + 1];
    assert_int_equal(sky_gateway_key_hash(sky_span_cstr(CLIENT_KEY), h), 0);
    for (size_t i = 0; i < sizeof(h); i++)
        sprintf(hx + 2 * i, "%02x", h[i]);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", env.config);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    char gpt[300], down[300], slow[300], added[340] = "";
    dep_json(gpt, sizeof(gpt), env.fast.base_url);
    dep_json(down, sizeof(down), env.broken.base_url);
    dep_json(slow, sizeof(slow), env.slow.base_url);
    if (with_added) {
        char d[300];
        dep_json(d, sizeof(d), env.fast.base_url);
        snprintf(added, sizeof(added), ", \"added\": [%s]", d);
    }
    /* Azure without a key_env: Entra ID tokens, here from the mock's IMDS */
    fprintf(f,
            "{\"models\": {\"gpt-4o\": [%s], \"down\": [%s], \"slow\": [%s]%s,"
            " \"az-entra\": [{\"kind\": \"azure\", \"base_url\": \"%s\", \"deployment\": "
            "\"gpt-4o\"}]},"
            " \"keys\": [{\"name\": \"ops\", \"key_sha256\": \"%s\"}]}\n",
            gpt, down, slow, added, env.entra.base_url, hx);
    fclose(f);
    assert_int_equal(rename(tmp, env.config), 0);
}

static void redirect(const char *name, int fd)
{
    sky_test_redirect(env.dir, name, fd);
}

/* The credential chain of the serve process: only managed identity, at the mock's IMDS */
static void entra_env(void)
{
    static const char *const unset[] = {"AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
                                        "AZURE_CLIENT_ID",     "AZURE_FEDERATED_TOKEN_FILE",
                                        "IDENTITY_ENDPOINT",   "IDENTITY_HEADER"};
    for (size_t i = 0; i < sizeof(unset) / sizeof(unset[0]); i++)
        unsetenv(unset[i]);
    setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", env.entra.base_url, 1);
    setenv("SKYIO_AZ_PATH", "/nonexistent/az", 1);
}

static void serve_env(void)
{
    setenv("UPK", UPSTREAM_KEY, 1);
    setenv("SKYIO_LOG", "debug", 1);
    entra_env();
}

static void start_serve(void)
{
    char access[512];
    snprintf(env.config, sizeof(env.config), "%s/gateway.json", env.dir);
    snprintf(access, sizeof(access), "%s/access.log", env.dir);
    write_config(0);
    const char *const args[] = {"--config", env.config, "--access-log", access, "--grace-ms",
                                "2000",     NULL};
    sky_test_serve_start(&env.serve, env.dir, args, serve_env);
}

static int setup(void **state)
{
    (void)state;
    static const char *const healthy[] = {"--key", UPSTREAM_KEY, NULL};
    static const char *const broken[] = {"--key", UPSTREAM_KEY, "--fault-503", "1.0", NULL};
    static const char *const slow[] = {"--key", UPSTREAM_KEY, "--per-token-ms", "20", NULL};
    /* its chat accepts only the first token its IMDS issues */
    static const char *const entra[] = {"--key", "mock-token-1", NULL};
    memset(&env, 0, sizeof(env));
    sky_test_mock_start(&env.fast, healthy);
    sky_test_mock_start(&env.broken, broken);
    sky_test_mock_start(&env.slow, slow);
    sky_test_mock_start(&env.entra, entra);
    sky_test_tmpdir(env.dir, sizeof(env.dir));
    start_serve();
    env.loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(env.loop, NULL, &env.client), 0);
    return 0;
}

/* The file @p name of the serve folder, whole (malloc'd, NUL-terminated). */
static char *slurp(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", env.dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return calloc(1, 1);
    char *text = calloc(1, 1 << 22);
    size_t n = text ? fread(text, 1, (1 << 22) - 1, f) : 0;
    fclose(f);
    if (text)
        text[n] = '\0';
    return text;
}

static int file_holds(const char *name, const char *needle)
{
    char *text = slurp(name);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

static int teardown(void **state)
{
    (void)state;
    sky_http_client_free(env.client);
    sky_test_loop_free(env.loop);
    int status = sky_test_stop_child(env.serve.pid);
    /* the secrets canary over everything serve wrote, its shutdown included */
    int leaked = file_holds("stderr.log", UPSTREAM_KEY) || file_holds("stderr.log", "mock-token") ||
                 file_holds("access.log", "mock-token") || file_holds("stdout.log", UPSTREAM_KEY) ||
                 file_holds("access.log", UPSTREAM_KEY) || file_holds("access.log", CLIENT_KEY) ||
                 file_holds("stderr.log", CLIENT_KEY);
    int logged = file_holds("access.log", "\"request_id\"");
    sky_test_mock_stop(&env.fast);
    sky_test_mock_stop(&env.broken);
    sky_test_mock_stop(&env.slow);
    sky_test_mock_stop(&env.entra);
    sky_test_rmdir(env.dir);
    assert_false(leaked);
    assert_true(logged);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}

/* ---- requests ---- */

static void call_with(const char *method, const char *path, const char *body, const char *extra,
                      sky_test_result *out)
{
    char url[256];
    const char *headers[] = {"Authorization: Bearer " CLIENT_KEY, extra, NULL};
    snprintf(url, sizeof(url), "%s%s", env.serve.base, path);
    sky_test_request(env.loop, env.client, method, url, body, headers, 20000, out);
    assert_int_equal(out->err_code, 0);
    assert_null(strstr(out->body, UPSTREAM_KEY));
    assert_null(strstr(out->body, CLIENT_KEY));
}

static const char chat_body[] =
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* The access log's line of request @p rid, parsed; waits for the log to be written. */
static json_t *log_line(const char *rid)
{
    char needle[200];
    snprintf(needle, sizeof(needle), "\"request_id\":\"%s\"", rid);
    for (int i = 0; i < 200; i++) {
        char *text = slurp("access.log");
        char *at = text ? strstr(text, needle) : NULL;
        if (at) {
            while (at > text && at[-1] != '\n')
                at--;
            char *end = strchr(at, '\n');
            json_t *j = NULL;
            assert_non_null(end);
            assert_int_equal(sky_json_parse(sky_span_make(at, (size_t)(end - at)), &j, NULL), 0);
            free(text);
            return j;
        }
        free(text);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fail_msg("no access log line for %s", rid);
    return NULL;
}

static void test_readyz_at_start(void **state)
{
    (void)state;
    sky_test_result r;
    call_with("GET", "/readyz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"ready\""));
    sky_test_result_free(&r);
}

static void test_request_id_and_access_log(void **state)
{
    (void)state;
    sky_test_result r;
    call_with("POST", "/v1/chat/completions", chat_body, "x-request-id: rid-ops-1", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.headers, "x-request-id")), "rid-ops-1");
    sky_test_result_free(&r);
    /* none, or one a log should not take as it is: a new one */
    call_with("POST", "/v1/chat/completions", chat_body, "x-request-id: has spaces \"q\"", &r);
    assert_int_equal(r.status, 200);
    const char *fresh = json_string_value(json_object_get(r.headers, "x-request-id"));
    assert_non_null(fresh);
    assert_int_equal(strlen(fresh), 36);
    sky_test_result_free(&r);
    /* a refusal has its id and its line too */
    call_with("POST", "/v1/chat/completions", "{\"model\":\"no-such\",\"messages\":[]}",
              "x-request-id: rid-ops-404", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(json_string_value(json_object_get(r.headers, "x-request-id")),
                        "rid-ops-404");
    sky_test_result_free(&r);

    json_t *j = log_line("rid-ops-1");
    assert_string_equal(sky_json_str(j, "key", ""), "ops");
    assert_string_equal(sky_json_str(j, "route", ""), "/v1/chat/completions");
    assert_string_equal(sky_json_str(j, "model", ""), "gpt-4o");
    assert_string_equal(sky_json_str(j, "deployment", ""), "gpt-4o#0");
    assert_int_equal(sky_json_int(j, "status", 0), 200);
    assert_true(sky_json_num(j, "latency_ms", 0) > 0);
    assert_true(sky_json_num(j, "added_ms", -1) >= 0);
    assert_true(sky_json_int(sky_json_path(j, "tokens"), "total", 0) > 0);
    json_decref(j);
    j = log_line("rid-ops-404");
    assert_int_equal(sky_json_int(j, "status", 0), 404);
    assert_string_equal(sky_json_str(j, "model", ""), "no-such");
    json_t *dep = json_object_get(j, "deployment");
    assert_true(dep == NULL || json_is_null(dep));
    json_decref(j);
}

static void test_metrics(void **state)
{
    (void)state;
    sky_test_result r;
    call_with("GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(json_string_value(json_object_get(r.headers, "content-type")),
                           "text/plain; version=0.0.4"));
    const char *t = r.body;
    assert_non_null(strstr(t, "# TYPE skyio_gateway_requests_total counter\n"));
    assert_true(sky_test_sample(t,
                                "skyio_gateway_requests_total{route=\"/v1/chat/completions\","
                                "model=\"gpt-4o\",deployment=\"gpt-4o#0\",status=\"200\"}") >= 2);
    /* an unknown model is counted, but its name is not a label */
    assert_true(sky_test_sample(t, "skyio_gateway_requests_total{route=\"/v1/chat/completions\","
                                   "model=\"\",deployment=\"\",status=\"404\"}") == 1);
    assert_null(strstr(t, "no-such"));
    assert_non_null(strstr(t, "# TYPE skyio_gateway_request_duration_seconds histogram\n"));
    assert_true(sky_test_sample(t, "skyio_gateway_request_duration_seconds_count{route=\"/v1/chat/"
                                   "completions\"}") >= 3);
    assert_true(sky_test_sample(t, "skyio_gateway_added_duration_seconds_bucket{route=\"/v1/chat/"
                                   "completions\",le=\"+Inf\"}") >= 3);
    assert_true(sky_test_sample(t, "skyio_gateway_tokens_total{model=\"gpt-4o\",kind=\"prompt\"}") >
                0);
    assert_true(sky_test_sample(t, "skyio_gateway_deployment_breaker_state{model=\"down\","
                                   "deployment=\"down#1\"}") == 0);
    assert_true(sky_test_sample(t, "skyio_gateway_deployment_in_flight{model=\"slow\","
                                   "deployment=\"slow#2\"}") == 0);
    /* no concurrency limit unless the config sets one: the gauge says 0 */
    assert_true(sky_test_sample(t, "skyio_gateway_deployment_concurrency_limit{model=\"gpt-4o\","
                                   "deployment=\"gpt-4o#0\"}") == 0);
    assert_true(sky_test_sample(t, "skyio_gateway_loop_lag_seconds_count{}") >= 0);
    assert_true(sky_test_sample(t, "skyio_gateway_config_reloads_total") == 0);
    sky_test_result_free(&r);
}

/* A model whose one deployment fails: its breaker opens, /readyz says so, metrics too. */
static void test_readyz_when_a_model_is_down(void **state)
{
    (void)state;
    sky_test_result r;
    int status = 200;
    for (int i = 0; i < 40 && status == 200; i++) {
        call_with("POST", "/v1/chat/completions",
                  "{\"model\":\"down\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL,
                  &r);
        assert_true(r.status == 502 || r.status == 503);
        sky_test_result_free(&r);
        call_with("GET", "/readyz", NULL, NULL, &r);
        status = r.status;
        if (status == 503) {
            json_t *j = NULL;
            assert_int_equal(sky_json_parse(sky_span_make(r.body, r.body_len), &j, NULL), 0);
            json_t *down = json_object_get(j, "unavailable");
            assert_int_equal(json_array_size(down), 1);
            assert_string_equal(json_string_value(json_array_get(down, 0)), "down");
            json_decref(j);
        }
        sky_test_result_free(&r);
        if (status == 200)
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    assert_int_equal(status, 503);
    call_with("GET", "/metrics", NULL, NULL, &r);
    assert_true(sky_test_sample(r.body, "skyio_gateway_deployment_breaker_state{model=\"down\","
                                        "deployment=\"down#1\"}") == 1);
    sky_test_result_free(&r);
}

/* ---- Entra ID ---- */

/* An Azure deployment without a key: one token from the credential chain serves its calls */
static void test_azure_deployment_with_entra_id(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        sky_test_result r;
        call_with("POST", "/v1/chat/completions",
                  i == 1 ? "{\"model\":\"az-entra\",\"stream\":true,\"messages\":[{\"role\":"
                           "\"user\",\"content\":\"x\"}]}"
                         : "{\"model\":\"az-entra\",\"messages\":[{\"role\":\"user\","
                           "\"content\":\"x\"}]}",
                  NULL, &r);
        assert_int_equal(r.status, 200);
        assert_null(strstr(r.body, "mock-token"));
        sky_test_result_free(&r);
    }
    json_t *st = sky_test_mock_stats(&env.entra);
    assert_int_equal(json_integer_value(sky_json_path(st, "identity.imds")), 1);
    assert_int_equal(json_integer_value(sky_json_path(st, "auth_failures")), 0);
    json_decref(st);
}

/* ---- TLS and HTTP/2 ---- */

static pid_t spawn_tls_serve(const char *certs, const char *port_file)
{
    char cert[512], key[512];
    snprintf(cert, sizeof(cert), "%s/server.pem", certs);
    snprintf(key, sizeof(key), "%s/server.key", certs);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sky_test_die_with_parent(parent);
        redirect("tls-stderr.log", 2);
        redirect("tls-stdout.log", 1);
        setenv("UPK", UPSTREAM_KEY, 1);
        execl(SKY_TEST_BIN, SKY_TEST_BIN, "serve", "--config", env.config, "--port", "0",
              "--port-file", port_file, "--tls-cert", cert, "--tls-key", key, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* HTTPS with HTTP/2 by ALPN: a plain and a streamed call, each on h2 */
static void test_tls_and_http2(void **state)
{
    (void)state;
    char certs[256], port_file[512], ca[512], url[256];
    sky_test_tmpdir(certs, sizeof(certs));
    assert_int_equal(sky_test_make_certs(certs), 0);
    snprintf(port_file, sizeof(port_file), "%s/port", certs);
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    pid_t pid = spawn_tls_serve(certs, port_file);
    int port = sky_test_wait_port_file(&pid, port_file, 10000, "skyio serve", certs);
    assert_true(port > 0);
    sky_http_client_options co;
    sky_http_client *client;
    sky_http_client_options_init(&co);
    co.ca_file = ca;
    assert_int_equal(sky_http_client_new(env.loop, &co, &client), 0);
    const char *headers[] = {"Authorization: Bearer " CLIENT_KEY, NULL};
    sky_test_result r;
    snprintf(url, sizeof(url), "https://localhost:%d/v1/chat/completions", port);
    sky_test_request(env.loop, client, "POST", url, chat_body, headers, 20000, &r);
    assert_int_equal(r.err_code, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.http_version, 2);
    assert_non_null(strstr(r.body, "chat.completion"));
    sky_test_result_free(&r);
    sky_test_request(env.loop, client, "POST", url,
                     "{\"model\":\"slow\",\"stream\":true,\"max_tokens\":5,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                     headers, 20000, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.http_version, 2);
    assert_non_null(strstr(r.body, "data: [DONE]"));
    sky_test_result_free(&r);
    sky_http_client_free(client);
    int status = sky_test_stop_child(pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(file_holds("tls-stderr.log", UPSTREAM_KEY));
    assert_true(file_holds("tls-stdout.log", "listening https://"));
    sky_test_rmdir(certs);
}

/* ---- reloads under load ---- */

typedef struct load {
    int done, ok, complete, started;
    sky_buf bodies[128];
    int status[128];
    sky_http_request *req[128];
} load;

typedef struct load_slot {
    load *l;
    int i;
} load_slot;

static load_slot slots[128];

static int on_load_body(sky_http_request *req, const char *data, size_t len, void *ud)
{
    load_slot *s = ud;
    (void)req;
    return sky_buf_append(&s->l->bodies[s->i], data, len) < 0;
}

static void on_load_done(sky_http_request *req, const sky_http_response *res, const sky_error *err,
                         void *ud)
{
    load_slot *s = ud;
    (void)req;
    load *l = s->l;
    l->status[s->i] = err ? -err->code : res->status;
    const sky_buf *b = &l->bodies[s->i];
    const char *end = "data: [DONE]\n\n";
    if (err == NULL && res->status == 200)
        l->ok++;
    if (b->len > strlen(end) && memcmp(b->data + b->len - strlen(end), end, strlen(end)) == 0)
        l->complete++;
    l->done++;
}

static void load_start(load *l, int from, int n, sky_headers *h)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/chat/completions", env.serve.base);
    for (int i = from; i < from + n; i++) {
        sky_http_request_options o;
        sky_http_request_options_init(&o);
        sky_buf_init(&l->bodies[i], 1 << 20);
        slots[i] = (load_slot){l, i};
        o.method = "POST";
        o.url = url;
        o.headers = h;
        o.body = SKY_SPAN_LIT("{\"model\":\"slow\",\"stream\":true,\"max_tokens\":10,"
                              "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
        o.timeout_ms = 20000;
        o.on_body = on_load_body;
        o.on_done = on_load_done;
        o.user_data = &slots[i];
        assert_int_equal(sky_http_request_send(env.client, &o, &l->req[i], NULL), 0);
        l->started++;
    }
}

/* Run the loop for @p ms. */
static void spin(int ms)
{
    int never = 0;
    (void)sky_test_run_until(env.loop, &never, (uint64_t)ms);
}

/* Run the loop until /metrics counts @p n reloads and @p failed refused ones: a reload
 * reads the file off the loop, a little after the signal. */
static void wait_reloads(double n, double failed)
{
    for (int i = 0; i < 500; i++) {
        sky_test_result r;
        call_with("GET", "/metrics", NULL, NULL, &r);
        int there = sky_test_sample(r.body, "skyio_gateway_config_reloads_total") >= n &&
                    sky_test_sample(r.body, "skyio_gateway_config_reload_failures_total") >= failed;
        sky_test_result_free(&r);
        if (there)
            return;
        spin(10);
    }
    fail_msg("no %g reloads (%g refused) after 5 s", n, failed);
}

static void test_reload_under_load_loses_nothing(void **state)
{
    (void)state;
    static load l;
    memset(&l, 0, sizeof(l));
    sky_headers *h = sky_test_bearer_json_headers(CLIENT_KEY);
    /* 40 streams of 10 tokens 20 ms apart are under way when the config changes, three
     * times, the last one to a file that does not parse; 40 more start between */
    load_start(&l, 0, 40, h);
    spin(60);
    write_config(1);
    assert_int_equal(kill(env.serve.pid, SIGHUP), 0);
    wait_reloads(1, 0);
    load_start(&l, 40, 40, h);
    spin(40);
    assert_int_equal(kill(env.serve.pid, SIGHUP), 0);
    wait_reloads(2, 0);
    FILE *f = fopen(env.config, "w");
    assert_non_null(f);
    fputs("{\"models\": {", f); /* cut short */
    fclose(f);
    assert_int_equal(kill(env.serve.pid, SIGHUP), 0);
    wait_reloads(2, 1);
    for (int i = 0; i < 400 && l.done < l.started; i++)
        spin(50);
    sky_headers_free(h);
    assert_int_equal(l.done, 80);
    for (int i = 0; i < 80; i++) {
        if (l.status[i] != 200)
            fprintf(stderr, "request %d: %d\n", i, l.status[i]);
        sky_buf_free(&l.bodies[i]);
    }
    assert_int_equal(l.ok, 80);
    assert_int_equal(l.complete, 80);
    /* the second config is the one running: the model it added answers, the bad one was
     * refused */
    sky_test_result r;
    call_with("POST", "/v1/chat/completions",
              "{\"model\":\"added\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL,
              &r);
    assert_int_equal(r.status, 200);
    sky_test_result_free(&r);
    call_with("GET", "/metrics", NULL, NULL, &r);
    assert_true(sky_test_sample(r.body, "skyio_gateway_config_reloads_total") == 2);
    assert_true(sky_test_sample(r.body, "skyio_gateway_config_reload_failures_total") == 1);
    sky_test_result_free(&r);
    for (int i = 0; i < 100 && !file_holds("stderr.log", "reload refused"); i++)
        spin(50);
    assert_true(file_holds("stderr.log", "reload refused"));
    write_config(1); /* a sane file again, for whoever reads the folder */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readyz_at_start),
        cmocka_unit_test(test_request_id_and_access_log),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_readyz_when_a_model_is_down),
        cmocka_unit_test(test_azure_deployment_with_entra_id),
        cmocka_unit_test(test_tls_and_http2),
        cmocka_unit_test(test_reload_under_load_loses_nothing),
    };
    return sky_test_run_group(tests, setup, teardown);
}
