/* ARM against `skyio mock`: each polling style, failures, cancel, timeout, resume, paging, CLI. */
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

#include <openssl/evp.h>

#include "harness.h"
#include "harness_cli.h"
#include "skyio/arm.h"
#include "skyio/credential.h"
#include "skyio/json.h"

#define SUB "/subscriptions/sub-1"
#define RG SUB "/resourceGroups/rg1"
#define ST RG "/providers/Microsoft.Storage/storageAccounts/"
#define API "2023-01-01"

/* ---- the library, in this process ---- */

typedef struct env {
    sky_test_mock mock;
    uv_loop_t *loop;
    sky_http_client *http;
    sky_credential *cred;
    sky_arm_client *arm;
} env;

/* What an operation reported (copied). */
typedef struct outcome {
    int done;
    int err_code, http_status;
    char service_code[64];
    char message[256];
    char status[32];
    int polls, progress_calls;
    uint64_t last_next_poll_ms;
    int style;
    json_t *body;
    char *token;
    int cancel_at_progress; /* cancel from the Nth progress call */
} outcome;

static void env_start(env *e, const char *const *mock_args, uint64_t poll_ms)
{
    sky_arm_options o;
    sky_error err;
    memset(e, 0, sizeof(*e));
    sky_error_clear(&err);
    sky_test_mock_start(&e->mock, mock_args);
    e->loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(e->loop, NULL, &e->http), 0);
    assert_int_equal(sky_credential_static_new(e->loop, "test-token", 0, &e->cred, &err), 0);
    sky_arm_options_init(&o);
    o.endpoint = e->mock.base_url;
    o.poll_interval_ms = poll_ms;
    o.pipeline.credential = e->cred;
    o.pipeline.retry.max_retries = 10;
    assert_int_equal(sky_arm_client_new(e->loop, e->http, &o, &e->arm, &err), 0);
}

static void env_stop(env *e)
{
    sky_arm_client_free(e->arm);
    sky_credential_free(e->cred);
    sky_http_client_free(e->http);
    sky_test_loop_free(e->loop);
    assert_int_equal(sky_test_mock_stop(&e->mock), 0);
}

static void outcome_free(outcome *o)
{
    json_decref(o->body);
    free(o->token);
    memset(o, 0, sizeof(*o));
}

static void on_progress(sky_arm_lro *op, const sky_arm_lro_progress *p, void *ud)
{
    outcome *o = ud;
    o->progress_calls++;
    o->last_next_poll_ms = p->next_poll_ms;
    assert_non_null(p->resume_token);
    if (o->cancel_at_progress && o->progress_calls == o->cancel_at_progress)
        sky_arm_lro_cancel(op);
}

static void on_done(sky_arm_lro *op, const sky_arm_lro_result *res, const sky_error *err, void *ud)
{
    outcome *o = ud;
    (void)op;
    o->done++;
    if (err) {
        o->err_code = err->code;
        o->http_status = err->http_status;
        snprintf(o->service_code, sizeof(o->service_code), "%s", err->service_code);
        snprintf(o->message, sizeof(o->message), "%s", err->message);
    }
    snprintf(o->status, sizeof(o->status), "%s", res->status);
    o->polls = res->polls;
    o->style = res->style;
    if (res->body.len)
        assert_int_equal(sky_json_parse(res->body, &o->body, NULL), 0);
    o->token = res->resume_token ? strdup(res->resume_token) : NULL;
}

/* Start an operation (@p timeout_ms: 0 for none); it reports to @p o from the loop. */
static void begin_op(env *e, const char *method, const char *path, const char *body,
                     uint64_t timeout_ms, outcome *o)
{
    sky_arm_lro_options lo;
    sky_error err;
    sky_error_clear(&err);
    sky_arm_lro_options_init(&lo);
    lo.method = method;
    lo.path = path;
    lo.api_version = API;
    lo.body = sky_span_cstr(body);
    lo.timeout_ms = timeout_ms;
    lo.on_progress = on_progress;
    lo.on_done = on_done;
    lo.user_data = o;
    assert_int_equal(sky_arm_lro_begin(e->arm, &lo, NULL, &err), 0);
}

/* Start an operation and run the loop until it reports. */
static void run_op(env *e, const char *method, const char *path, const char *body,
                   uint64_t timeout_ms, outcome *o)
{
    begin_op(e, method, path, body, timeout_ms, o);
    assert_int_equal(sky_test_run_until(e->loop, &o->done, 30000), 1);
    assert_int_equal(o->done, 1);
}

static void make_group(env *e)
{
    outcome o;
    memset(&o, 0, sizeof(o));
    run_op(e, "PUT", RG, "{\"location\":\"westeurope\"}", 0, &o);
    assert_int_equal(o.err_code, 0);
    assert_string_equal(o.status, "Succeeded");
    assert_int_equal(o.style, SKY_ARM_POLL_NONE); /* groups are made at once */
    outcome_free(&o);
}

static const char *state_of(const outcome *o)
{
    return json_string_value(sky_json_path(o->body, "properties.provisioningState"));
}

/* Create then delete one resource, expecting @p style and @p polls. */
static void create_delete(env *e, const char *name, const char *tags, int style, int polls)
{
    char path[256], body[512];
    outcome o;
    memset(&o, 0, sizeof(o));
    snprintf(path, sizeof(path), ST "%s", name);
    snprintf(body, sizeof(body), "{\"location\":\"westeurope\",\"tags\":%s}", tags);
    run_op(e, "PUT", path, body, 0, &o);
    assert_int_equal(o.err_code, 0);
    assert_string_equal(o.status, "Succeeded");
    assert_int_equal(o.style, style);
    assert_int_equal(o.polls, polls);
    assert_string_equal(state_of(&o), "Succeeded"); /* the resource itself, read at the end */
    assert_string_equal(sky_json_str(o.body, "name", ""), name);
    assert_true(o.progress_calls >= polls);
    outcome_free(&o);
    run_op(e, "DELETE", path, NULL, 0, &o);
    assert_int_equal(o.err_code, 0);
    assert_string_equal(o.status, "Succeeded");
    outcome_free(&o);
    /* gone */
    run_op(e, "DELETE", path, NULL, 0, &o);
    assert_int_equal(o.style, SKY_ARM_POLL_NONE);
    outcome_free(&o);
}

/* A PUT of a storage account @p path with the body every test uses. */
static void put_options(sky_arm_lro_options *lo, const char *path)
{
    sky_arm_lro_options_init(lo);
    lo->path = path;
    lo->api_version = API;
    lo->body = SKY_SPAN_LIT("{\"location\":\"w\"}");
}

static void test_poller_styles(void **state)
{
    static const char *const args[] = {"--arm-polls", "2", NULL};
    env e;
    (void)state;
    env_start(&e, args, 10);
    make_group(&e);
    /* async: 2 InProgress polls, a third says Succeeded, then the resource is read */
    create_delete(&e, "sta", "{}", SKY_ARM_POLL_ASYNC, 3);
    create_delete(&e, "stl", "{\"skyio-mock-style\":\"location\"}", SKY_ARM_POLL_LOCATION, 3);
    create_delete(&e, "sts", "{\"skyio-mock-style\":\"state\"}", SKY_ARM_POLL_STATE, 3);
    /* POST: the mock names both headers; the status URL is followed, and the final
     * Location reply is the result */
    outcome o;
    memset(&o, 0, sizeof(o));
    run_op(&e, "PUT", ST "act", "{\"location\":\"w\"}", 0, &o);
    outcome_free(&o);
    run_op(&e, "POST", ST "act/regenerateKey", "{}", 0, &o);
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.style, SKY_ARM_POLL_ASYNC);
    assert_string_equal(sky_json_str(o.body, "action", ""), "regenerateKey");
    outcome_free(&o);
    env_stop(&e);
}

/* What GET /mock/arm says of the operation on resource @p path (borrowed from @p arm). */
static json_t *mock_op_for(json_t *arm, const char *path)
{
    char rid[256];
    const char *id;
    json_t *op, *found = NULL;
    size_t i = 0;
    for (; path[i] && i < sizeof(rid) - 1; i++)
        rid[i] = (char)(path[i] >= 'A' && path[i] <= 'Z' ? path[i] + 32 : path[i]);
    rid[i] = '\0';
    json_object_foreach(json_object_get(arm, "operations"), id, op)
    {
        if (strcmp(sky_json_str(op, "rid", ""), rid) == 0) {
            assert_null(found); /* one operation each */
            found = op;
        }
    }
    assert_non_null(found);
    return found;
}

/*
 * The server's Retry-After (1 s) wins over our own 5 ms interval, in each polling style:
 * not only in what the progress callback says, but in when the polls reach the mock,
 * which notes the time of each (a client that reported 1 s and polled at its own pace
 * would pass the first check and fail the second).
 */
static void test_retry_after_is_honoured(void **state)
{
    static const char *const args[] = {"--arm-polls", "1", "--arm-retry-after", "1", NULL};
    static const char *const styles[] = {"async", "location", "state"};
    static const int kinds[] = {SKY_ARM_POLL_ASYNC, SKY_ARM_POLL_LOCATION, SKY_ARM_POLL_STATE};
    /* a poll may leave up to a millisecond early (libuv's clock); a client that ignores
     * Retry-After comes back within 5-100 ms */
    const int64_t min_gap_ms = 950;
    env e;
    outcome o[3];
    char path[3][128], body[256];
    (void)state;
    memset(o, 0, sizeof(o));
    env_start(&e, args, 5);
    make_group(&e);
    /* the three at once: the test waits the two seconds once */
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof(path[i]), ST "ra%s", styles[i]);
        snprintf(body, sizeof(body), "{\"location\":\"w\",\"tags\":{\"skyio-mock-style\":\"%s\"}}",
                 styles[i]);
        begin_op(&e, "PUT", path[i], body, 0, &o[i]);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sky_test_run_until(e.loop, &o[i].done, 30000), 1);
        assert_int_equal(o[i].err_code, 0);
        assert_string_equal(o[i].status, "Succeeded");
        assert_int_equal(o[i].style, kinds[i]);
        assert_int_equal(o[i].polls, 2);
        assert_true(o[i].progress_calls >= 1);
        assert_int_equal(o[i].last_next_poll_ms, 1000);
    }
    json_t *arm = sky_test_mock_get_json(&e.mock, "/mock/arm");
    for (int i = 0; i < 3; i++) {
        json_t *op = mock_op_for(arm, path[i]);
        json_t *times = json_object_get(op, "poll_ms");
        assert_string_equal(sky_json_str(op, "status", ""), "Succeeded");
        assert_int_equal(sky_json_int(op, "polls", 0), 2);
        assert_int_equal(json_array_size(times), 2);
        int64_t prev = sky_json_int(op, "started_ms", 0); /* the PUT */
        for (size_t k = 0; k < 2; k++) {
            int64_t t = (int64_t)json_integer_value(json_array_get(times, k));
            if (t - prev < min_gap_ms)
                fail_msg("%s: poll %zu came %lld ms after the previous request; Retry-After "
                         "said 1000",
                         styles[i], k + 1, (long long)(t - prev));
            prev = t;
        }
    }
    json_decref(arm);
    for (int i = 0; i < 3; i++)
        outcome_free(&o[i]);
    env_stop(&e);
}

static void expect_failure(env *e, const char *name, const char *style)
{
    char path[256], body[512];
    outcome o;
    memset(&o, 0, sizeof(o));
    snprintf(path, sizeof(path), ST "%s", name);
    snprintf(body, sizeof(body),
             "{\"location\":\"westeurope\",\"tags\":{\"skyio-mock-fail\":\"QuotaExceeded\","
             "\"skyio-mock-style\":\"%s\"}}",
             style);
    run_op(e, "PUT", path, body, 0, &o);
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_string_equal(o.service_code, "QuotaExceeded");
    assert_non_null(strstr(o.message, "failed"));
    outcome_free(&o);
}

static void test_failed_operation(void **state)
{
    static const char *const args[] = {"--arm-polls", "1", NULL};
    env e;
    (void)state;
    env_start(&e, args, 10);
    make_group(&e);
    expect_failure(&e, "fa", "async");
    expect_failure(&e, "fl", "location");
    /* an error at the first reply: a VM without its required fields */
    outcome o;
    memset(&o, 0, sizeof(o));
    run_op(&e, "PUT", RG "/providers/Microsoft.Compute/virtualMachines/vm0",
           "{\"location\":\"westeurope\"}", 0, &o);
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_int_equal(o.http_status, 400);
    assert_string_equal(o.service_code, "InvalidParameter");
    assert_non_null(strstr(o.message, "vmSize"));
    outcome_free(&o);
    /* and a resource in a group that does not exist */
    run_op(&e, "PUT", SUB "/resourceGroups/nope/providers/Microsoft.Storage/storageAccounts/x",
           "{\"location\":\"westeurope\"}", 0, &o);
    assert_int_equal(o.http_status, 404);
    assert_string_equal(o.service_code, "ResourceGroupNotFound");
    outcome_free(&o);
    env_stop(&e);
}

static void test_canceled_operation(void **state)
{
    static const char *const args[] = {"--arm-polls", "2", NULL};
    env e;
    outcome o;
    (void)state;
    memset(&o, 0, sizeof(o));
    env_start(&e, args, 10);
    make_group(&e);
    /* the service cancels it */
    run_op(&e, "PUT", ST "cx", "{\"location\":\"w\",\"tags\":{\"skyio-mock-cancel\":\"1\"}}", 0,
           &o);
    assert_int_equal(o.err_code, SKY_ECANCELED);
    assert_string_equal(o.status, "Canceled");
    assert_string_equal(o.service_code, "OperationCanceled");
    outcome_free(&o);
    /* we stop waiting: the callback says so, with a token to pick it up again */
    memset(&o, 0, sizeof(o));
    o.cancel_at_progress = 2;
    run_op(&e, "PUT", ST "cy", "{\"location\":\"w\",\"tags\":{\"skyio-mock-polls\":\"50\"}}", 0,
           &o);
    assert_int_equal(o.err_code, SKY_ECANCELED);
    assert_string_equal(o.status, "");
    assert_int_equal(o.progress_calls, 2);
    assert_non_null(o.token);
    outcome_free(&o);
    env_stop(&e);
}

/* Freeing the client ends what waits between polls: once, with ECANCELED. */
static void test_client_free_cancels(void **state)
{
    static const char *const args[] = {"--arm-retry-after", "60", NULL};
    env e;
    outcome o;
    sky_arm_lro_options lo;
    sky_error err;
    (void)state;
    env_start(&e, args, 10);
    make_group(&e);
    sky_error_clear(&err);
    memset(&o, 0, sizeof(o));
    put_options(&lo, ST "cz");
    lo.on_progress = on_progress;
    lo.on_done = on_done;
    lo.user_data = &o;
    assert_int_equal(sky_arm_lro_begin(e.arm, &lo, NULL, &err), 0);
    assert_int_equal(sky_test_run_until(e.loop, &o.progress_calls, 10000), 1);
    assert_int_equal(o.last_next_poll_ms, 60000); /* waiting on the server's Retry-After */
    assert_int_equal(o.done, 0);
    sky_arm_client_free(e.arm);
    e.arm = NULL;
    assert_int_equal(o.done, 1);
    assert_int_equal(o.err_code, SKY_ECANCELED);
    outcome_free(&o);
    env_stop(&e);
}

static void test_timeout(void **state)
{
    static const char *const args[] = {"--arm-polls", "100000", NULL};
    env e;
    outcome o;
    (void)state;
    memset(&o, 0, sizeof(o));
    env_start(&e, args, 20);
    make_group(&e);
    /* 1.5 s: room for the first reply on a loaded machine, then the polls run out of time */
    run_op(&e, "PUT", ST "slow", "{\"location\":\"w\"}", 1500, &o);
    assert_int_equal(o.err_code, SKY_ETIMEDOUT);
    assert_non_null(o.token);
    assert_true(o.progress_calls >= 1);
    outcome_free(&o);
    env_stop(&e);
}

/* ---- paging ---- */

typedef struct tally {
    int done, err_code;
    size_t pages, items, seen;
    json_t *names;
} tally;

static int on_page(sky_arm_list *l, const json_t *items, void *ud)
{
    tally *t = ud;
    size_t i;
    json_t *it;
    (void)l;
    assert_true(json_array_size(items) <= 4);
    json_array_foreach(items, i, it)
    {
        json_object_set_new(t->names, sky_json_str(it, "name", ""), json_true());
        t->seen++;
    }
    return 0;
}

static void on_list_done(sky_arm_list *l, size_t pages, size_t items, const sky_error *err,
                         void *ud)
{
    tally *t = ud;
    (void)l;
    t->done++;
    t->pages = pages;
    t->items = items;
    t->err_code = err ? err->code : 0;
}

static void test_paging_many_pages(void **state)
{
    char config[512], dir[256];
    const char *margs[] = {"--config", config, NULL};
    env e;
    outcome o;
    tally t;
    sky_arm_list_options lo;
    sky_error err;
    char path[256], cmd[1024];
    (void)state;
    /* the settings come from the config file's "arm" object */
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(config, sizeof(config), "%s/mock.json", dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fputs("{\"arm\": {\"polls\": 0, \"page_size\": 4}}\n", f);
    fclose(f);
    env_start(&e, margs, 10);
    make_group(&e);
    for (int i = 0; i < 25; i++) {
        memset(&o, 0, sizeof(o));
        snprintf(path, sizeof(path), ST "p%02d", i);
        run_op(&e, "PUT", path, "{\"location\":\"w\"}", 0, &o);
        assert_int_equal(o.err_code, 0);
        outcome_free(&o);
    }
    memset(&t, 0, sizeof(t));
    t.names = json_object();
    sky_error_clear(&err);
    sky_arm_list_options_init(&lo);
    lo.path = RG "/providers/Microsoft.Storage/storageAccounts";
    /* the options are copied: the caller's strings may go at once (ASan would see a use) */
    char *api = strdup(API);
    lo.api_version = api;
    lo.on_page = on_page;
    lo.on_done = on_list_done;
    lo.user_data = &t;
    assert_int_equal(sky_arm_list_start(e.arm, &lo, NULL, &err), 0);
    memset(api, 'x', strlen(api));
    free(api);
    assert_int_equal(sky_test_run_until(e.loop, &t.done, 30000), 1);
    assert_int_equal(t.err_code, 0);
    assert_int_equal(t.pages, 7);
    assert_int_equal(t.items, 25);
    assert_int_equal(t.seen, 25);
    assert_int_equal(json_object_size(t.names), 25); /* no item twice */
    json_decref(t.names);
    /* a nextLink that repeats the last one is a server bug: stop, do not page forever */
    memset(&t, 0, sizeof(t));
    t.names = json_object();
    lo.path = RG "/providers/Microsoft.Storage/storageAccounts?skyio-mock-stuck=1";
    lo.api_version = API;
    assert_int_equal(sky_arm_list_start(e.arm, &lo, NULL, &err), 0);
    assert_int_equal(sky_test_run_until(e.loop, &t.done, 30000), 1);
    assert_int_equal(t.err_code, SKY_EPROTO);
    assert_int_equal(t.pages, 2);
    json_decref(t.names);
    /* the command streams the same as JSON lines */
    snprintf(cmd, sizeof(cmd),
             "SKYIO_ARM_TOKEN=t %s arm list %s/providers/Microsoft.Storage/storageAccounts "
             "--api-version " API " --endpoint %s | wc -l",
             SKY_TEST_BIN, RG, e.mock.base_url);
    FILE *p = popen(cmd, "r");
    int lines = 0;
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%d", &lines), 1);
    assert_int_equal(pclose(p), 0);
    assert_int_equal(lines, 25);
    env_stop(&e);
    sky_test_rmdir(dir);
}

/* Every 3rd request is refused with 429 + Retry-After: 0; the pipeline retries and the
 * operation still ends well. */
static void test_throttling_while_polling(void **state)
{
    static const char *const args[] = {
        "--arm-polls", "5", "--arm-throttle-every", "3", "--arm-throttle-retry-after", "0", NULL};
    static const char *const auth[] = {"Authorization: Bearer x", NULL};
    env e;
    outcome o;
    sky_test_result r;
    char url[256];
    (void)state;
    memset(&o, 0, sizeof(o));
    env_start(&e, args, 5);
    snprintf(url, sizeof(url), "%s" SUB "/resourcegroups?api-version=" API, e.mock.base_url);
    for (int i = 1; i <= 3; i++) {
        memset(&r, 0, sizeof(r));
        sky_test_request(e.loop, e.http, "GET", url, NULL, auth, 5000, &r);
        assert_int_equal(r.status, i == 3 ? 429 : 200);
        if (i == 3)
            assert_string_equal(json_string_value(json_object_get(r.headers, "retry-after")), "0");
        sky_test_result_free(&r);
    }
    make_group(&e);
    run_op(&e, "PUT", ST "th", "{\"location\":\"w\"}", 0, &o);
    assert_int_equal(o.err_code, 0);
    assert_string_equal(o.status, "Succeeded");
    assert_int_equal(o.polls, 6);
    outcome_free(&o);
    env_stop(&e);
}

/* ---- the commands, as a user runs them ---- */

/* `skyio ARGS` (from @p fmt) against @p m with a token; stdout into @p out. Returns the exit
 * status. */
static int cli(const sky_test_mock *m, char *out, size_t cap, const char *fmt, ...)
    SKY_PRINTF(4, 5);

static int cli(const sky_test_mock *m, char *out, size_t cap, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd),
             "SKYIO_ARM_TOKEN=secret-token-123 SKYIO_ARM_ENDPOINT=%s AZURE_SUBSCRIPTION_ID=sub-1 "
             "%s %s",
             m->base_url, SKY_TEST_BIN, args);
    return sky_test_shell(cmd, out, cap);
}

static void test_resume_in_new_process(void **state)
{
    static const char *const args[] = {"--arm-polls", "3", NULL};
    sky_test_mock m;
    char out[65536], token[4096], dir[256], path[512];
    (void)state;
    sky_test_mock_start(&m, args);
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/body.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"location\":\"westeurope\"}\n", f);
    fclose(f);
    assert_int_equal(cli(&m, out, sizeof(out), "group create rg1 -l westeurope 2>/dev/null"), 0);
    /* started, not waited for: the token is the only line on stdout */
    assert_int_equal(cli(&m, out, sizeof(out),
                         "arm put " ST "rs --api-version " API " --body %s 2>/dev/null", path),
                     0);
    assert_int_equal(sscanf(out, "%4095s", token), 1);
    assert_null(strchr(out, '{'));
    /* another process waits for it */
    assert_int_equal(cli(&m, out, sizeof(out), "arm wait %s --poll-interval 0.01 2>&1", token), 0);
    assert_non_null(strstr(out, "\"provisioningState\":\"Succeeded\""));
    assert_non_null(strstr(out, "\"name\":\"rs\""));
    assert_null(strstr(out, "secret-token-123"));
    /* a token that is not one */
    assert_int_equal(cli(&m, out, sizeof(out), "arm wait not-a-token 2>&1"), 2);
    assert_non_null(strstr(out, "resume token"));
    /* a doctored token whose poll URL is another host never gets the token sent there */
    const char *doctored = "{\"v\":1,\"m\":\"PUT\",\"s\":\"async\",\"r\":"
                           "\"http://127.0.0.1:1/x\",\"p\":\"http://127.0.0.1:1/op\"}";
    unsigned char b64[512];
    int n = EVP_EncodeBlock(b64, (const unsigned char *)doctored, (int)strlen(doctored));
    for (int i = 0; i < n; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    while (n > 0 && b64[n - 1] == '=')
        b64[--n] = '\0';
    assert_true(cli(&m, out, sizeof(out), "arm wait %s --poll-interval 0.01 2>&1", b64) != 0);
    assert_non_null(strstr(out, "refusing to send the ARM token"));
    /* PATCH of tags answers at once */
    FILE *pf = fopen(path, "w");
    assert_non_null(pf);
    fputs("{\"tags\":{\"owner\":\"ops\"}}\n", pf);
    fclose(pf);
    assert_int_equal(cli(&m, out, sizeof(out),
                         "arm patch " ST "rs --api-version " API " --body %s 2>/dev/null", path),
                     0);
    assert_non_null(strstr(out, "\"owner\":\"ops\""));
    /* --timeout gives up waiting, says how to go on, and fails */
    pf = fopen(path, "w");
    assert_non_null(pf);
    fputs("{\"location\":\"w\",\"tags\":{\"skyio-mock-polls\":\"1000000\"}}\n", pf);
    fclose(pf);
    /* (many progress lines: keep the last ones) */
    assert_int_equal(cli(&m, out, sizeof(out),
                         "arm put " ST "slow --api-version " API
                         " --body %s --wait --timeout 0.3 --poll-interval 0.01 2>%s/err.txt; "
                         "echo \"exit=$?\"; tail -2 %s/err.txt",
                         path, dir, dir),
                     0);
    assert_non_null(strstr(out, "exit=1"));
    assert_non_null(strstr(out, "ETIMEDOUT"));
    assert_non_null(strstr(out, "skyio arm wait "));
    /* --wait in one go */
    assert_int_equal(cli(&m, out, sizeof(out),
                         "arm delete " ST "rs --api-version " API
                         " --wait --poll-interval 0.01 2>&1"),
                     0);
    assert_non_null(strstr(out, "Succeeded"));
    assert_int_equal(cli(&m, out, sizeof(out), "arm get " ST "rs --api-version " API " 2>&1"), 1);
    assert_non_null(strstr(out, "ResourceNotFound"));
    sky_test_rmdir(dir);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_group_and_vm_commands(void **state)
{
    /* two threads: the ARM state is shared between them under a lock */
    static const char *const args[] = {"--arm-polls", "2", "--threads", "2", NULL};
    sky_test_mock m;
    char out[65536], dir[256], key[512];
    (void)state;
    /* h2o's per-thread caches outlive the worker threads: see the suppressions file */
    char *lsan_old = sky_test_lsan_threads_begin();
    sky_test_mock_start(&m, args);
    sky_test_lsan_threads_end(lsan_old);
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(key, sizeof(key), "%s/id.pub", dir);
    FILE *f = fopen(key, "w");
    assert_non_null(f);
    fputs("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKey user@host\n", f);
    fclose(f);
    assert_int_equal(cli(&m, out, sizeof(out),
                         "group create demo -l westeurope --tag env=test "
                         "2>&1"),
                     0);
    assert_non_null(strstr(out, "\"env\":\"test\""));
    assert_int_equal(cli(&m, out, sizeof(out),
                         "vm create vm1 -g demo -l westeurope --size Standard_B2s --nic " SUB
                         "/resourceGroups/demo/providers/Microsoft.Network/networkInterfaces/nic1"
                         " --ssh-key-file %s --poll-interval 0.01 2>&1",
                         key),
                     0);
    assert_non_null(strstr(out, "create vm vm1: InProgress")); /* the progress line */
    assert_non_null(strstr(out, "\"vmSize\":\"Standard_B2s\""));
    assert_non_null(strstr(out, "\"provisioningState\":\"Succeeded\""));
    assert_non_null(strstr(out, "AAAAITestKey"));
    assert_null(strstr(out, "secret-token-123"));
    assert_int_equal(cli(&m, out, sizeof(out), "vm show vm1 -g demo 2>&1"), 0);
    assert_non_null(strstr(out, "\"adminUsername\":\"azureuser\""));
    /* the token never shows, not even in a trace log */
    setenv("SKYIO_LOG", "trace", 1);
    assert_int_equal(cli(&m, out, sizeof(out), "group show demo 2>&1"), 0);
    unsetenv("SKYIO_LOG");
    assert_non_null(strstr(out, "GET http"));
    assert_non_null(strstr(out, "\"name\":\"demo\""));
    assert_null(strstr(out, "secret-token-123"));
    assert_int_equal(cli(&m, out, sizeof(out), "vm list -g demo 2>&1"), 0);
    assert_non_null(strstr(out, "\"name\":\"vm1\""));
    assert_int_equal(cli(&m, out, sizeof(out), "vm list 2>&1"), 0);
    assert_non_null(strstr(out, "\"name\":\"vm1\""));
    assert_int_equal(cli(&m, out, sizeof(out), "group list 2>&1"), 0);
    assert_non_null(strstr(out, "\"name\":\"demo\""));
    assert_int_equal(cli(&m, out, sizeof(out), "vm delete vm1 -g demo --poll-interval 0.01 2>&1"),
                     0);
    assert_int_equal(cli(&m, out, sizeof(out), "vm show vm1 -g demo 2>&1"), 1);
    assert_non_null(strstr(out, "ResourceNotFound"));
    assert_int_equal(cli(&m, out, sizeof(out), "group delete demo --poll-interval 0.01 2>&1"), 0);
    assert_int_equal(cli(&m, out, sizeof(out), "group show demo 2>&1"), 1);
    assert_non_null(strstr(out, "ResourceGroupNotFound"));
    /* usage errors say what is missing */
    assert_int_equal(cli(&m, out, sizeof(out), "vm create vm2 -g demo 2>&1"), 2);
    assert_non_null(strstr(out, "--nic"));
    assert_int_equal(cli(&m, out, sizeof(out), "group create g 2>&1"), 2);
    assert_non_null(strstr(out, "--location"));
    assert_int_equal(cli(&m, out, sizeof(out), "vm --help"), 0);
    assert_non_null(strstr(out, "--ssh-key-file"));
    sky_test_rmdir(dir);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_put_many_from_file(void **state)
{
    static const char *const args[] = {"--arm-polls", "2", NULL};
    sky_test_mock m;
    char out[65536], dir[256], input[512];
    (void)state;
    sky_test_mock_start(&m, args);
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(input, sizeof(input), "%s/ops.jsonl", dir);
    FILE *f = fopen(input, "w");
    assert_non_null(f);
    for (int i = 0; i < 6; i++)
        fprintf(f, "{\"id\":\"" ST "b%d\",\"body\":{\"location\":\"w\",\"tags\":{%s}}}\n", i,
                i == 4 ? "\"skyio-mock-fail\":\"SkuNotAvailable\"" : "");
    fclose(f);
    assert_int_equal(cli(&m, out, sizeof(out), "group create rg1 -l w 2>/dev/null"), 0);
    assert_int_equal(cli(&m, out, sizeof(out),
                         "arm put --input %s --api-version " API
                         " --concurrency 3 --poll-interval 0.01 2>&1",
                         input),
                     1);
    assert_non_null(strstr(out, "6 operations: 5 succeeded, 1 failed"));
    assert_non_null(strstr(out, "SkuNotAvailable"));
    assert_non_null(strstr(out, "\"id\":\"" ST "b4\",\"status\":\"Failed\""));
    /* all good the second time (the failed one is left out) */
    f = fopen(input, "w");
    fprintf(f, "{\"id\":\"" ST "b0\",\"body\":{\"location\":\"w\"}}\n");
    fclose(f);
    assert_int_equal(cli(&m, out, sizeof(out),
                         "arm put --input %s --api-version " API " --poll-interval 0.01 2>&1",
                         input),
                     0);
    /* bad input is a usage error naming the line */
    f = fopen(input, "w");
    fprintf(f, "{\"id\":\"" ST "b0\",\"body\":{}}\nnot json\n");
    fclose(f);
    assert_int_equal(
        cli(&m, out, sizeof(out), "arm put --input %s --api-version " API " 2>&1", input), 2);
    assert_non_null(strstr(out, "line 2"));
    sky_test_rmdir(dir);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_no_token_is_refused(void **state)
{
    sky_test_mock m;
    char cmd[1024], out[4096];
    (void)state;
    sky_test_mock_start(&m, NULL);
    /* no credential at all in the environment: the chain fails, exit 3 */
    snprintf(cmd, sizeof(cmd),
             "env -i PATH=/nonexistent HOME=/nonexistent SKYIO_ARM_ENDPOINT=%s "
             "AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:9 %s group show g "
             "--subscription s 2>&1",
             m.base_url, SKY_TEST_BIN);
    assert_int_equal(sky_test_shell(cmd, out, sizeof(out)), 3);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/* Two operations in flight, the client freed from the first one's progress callback:
 * the second's call is cancelled later (the pipeline's free is deferred), after the
 * client's memory is gone. Each callback runs once; ASan sees no use after free. */
typedef struct two_ops {
    env *e;
    outcome a, b;
} two_ops;

static void begin_b(two_ops *t)
{
    sky_arm_lro_options lo;
    sky_error err;
    sky_error_clear(&err);
    put_options(&lo, ST "fb");
    lo.on_done = on_done;
    lo.user_data = &t->b;
    assert_int_equal(sky_arm_lro_begin(t->e->arm, &lo, NULL, &err), 0);
}

static void on_progress_free(sky_arm_lro *op, const sky_arm_lro_progress *p, void *ud)
{
    two_ops *t = ud;
    (void)op;
    (void)p;
    t->a.progress_calls++;
    begin_b(t); /* its call is surely still out when the client goes */
    sky_arm_client_free(t->e->arm);
    t->e->arm = NULL;
}

static void on_done_a(sky_arm_lro *op, const sky_arm_lro_result *res, const sky_error *err,
                      void *ud)
{
    two_ops *t = ud;
    on_done(op, res, err, &t->a);
}

static void test_client_free_from_callback(void **state)
{
    static const char *const args[] = {"--arm-retry-after", "60", NULL};
    env e;
    two_ops t;
    sky_arm_lro_options lo;
    sky_error err;
    (void)state;
    env_start(&e, args, 10);
    make_group(&e);
    memset(&t, 0, sizeof(t));
    t.e = &e;
    sky_error_clear(&err);
    put_options(&lo, ST "fa");
    lo.on_progress = on_progress_free;
    lo.on_done = on_done_a;
    lo.user_data = &t;
    assert_int_equal(sky_arm_lro_begin(e.arm, &lo, NULL, &err), 0);
    assert_int_equal(sky_test_run_until(e.loop, &t.b.done, 10000), 1);
    sky_test_run_until(e.loop, &t.b.progress_calls, 200); /* let anything late show up */
    assert_int_equal(t.a.progress_calls, 1);
    assert_int_equal(t.a.done, 1);
    assert_int_equal(t.a.err_code, SKY_ECANCELED);
    assert_int_equal(t.b.done, 1);
    assert_int_equal(t.b.err_code, SKY_ECANCELED);
    outcome_free(&t.a);
    outcome_free(&t.b);
    env_stop(&e);
}

/* base64url of @p json, as a resume token is written. */
static void make_token(const char *json, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)json, (int)strlen(json));
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
}

static int resume(env *e, const char *token, outcome *o, sky_error *err)
{
    sky_arm_lro_options lo;
    sky_arm_lro_options_init(&lo);
    lo.on_progress = on_progress;
    lo.on_done = on_done;
    lo.user_data = o;
    return sky_arm_lro_resume(e->arm, token, &lo, NULL, err);
}

/* A resume token naming another host is refused before anything is sent; a good one
 * never calls back from inside sky_arm_lro_resume, and exactly once from the loop. */
static void test_resume_rules(void **state)
{
    static const char *const args[] = {"--arm-polls", "2", NULL};
    env e;
    outcome o;
    sky_arm_lro_options lo;
    sky_error err;
    char json[1024], token[2048];
    (void)state;
    env_start(&e, args, 10);
    make_group(&e);
    memset(&o, 0, sizeof(o));
    sky_error_clear(&err);
    /* elsewhere: SKY_EINVAL at once, no callback ever */
    snprintf(json, sizeof(json),
             "{\"v\":1,\"m\":\"PUT\",\"s\":\"async\",\"r\":\"%s" ST "x\","
             "\"p\":\"http://127.0.0.1:1/op\"}",
             e.mock.base_url);
    make_token(json, token);
    assert_int_equal(resume(&e, token, &o, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "resume token"));
    assert_int_equal(sky_test_run_until(e.loop, &o.done, 200), 0);
    /* a real token: started, not waited for */
    put_options(&lo, ST "rr");
    lo.no_wait = 1;
    lo.on_done = on_done;
    lo.user_data = &o;
    assert_int_equal(sky_arm_lro_begin(e.arm, &lo, NULL, &err), 0);
    assert_int_equal(sky_test_run_until(e.loop, &o.done, 10000), 1);
    assert_non_null(o.token);
    snprintf(token, sizeof(token), "%s", o.token);
    outcome_free(&o);
    assert_int_equal(resume(&e, token, &o, &err), 0);
    assert_int_equal(o.done, 0); /* not from inside the call */
    assert_int_equal(sky_test_run_until(e.loop, &o.done, 10000), 1);
    assert_int_equal(o.err_code, 0);
    assert_string_equal(o.status, "Succeeded");
    outcome_free(&o);
    /* resumed, then the client freed before the loop runs: cancelled, once */
    assert_int_equal(resume(&e, token, &o, &err), 0);
    assert_int_equal(o.done, 0);
    sky_arm_client_free(e.arm);
    e.arm = NULL;
    assert_int_equal(o.done, 1);
    assert_int_equal(o.err_code, SKY_ECANCELED);
    sky_test_run_until(e.loop, &o.progress_calls, 200);
    assert_int_equal(o.done, 1);
    outcome_free(&o);
    env_stop(&e);
}

/* An operation URL on another host is refused (SKY_EPROTO, not the connection error a
 * request to port 1 would give): the token never goes there. */
static void test_foreign_poll_url_refused(void **state)
{
    env e;
    outcome o;
    (void)state;
    env_start(&e, NULL, 10);
    make_group(&e);
    memset(&o, 0, sizeof(o));
    run_op(&e, "PUT", ST "fx",
           "{\"location\":\"w\",\"tags\":{\"skyio-mock-link-base\":\"http://127.0.0.1:1\"}}", 0,
           &o);
    assert_int_equal(o.err_code, SKY_EPROTO);
    assert_non_null(strstr(o.message, "refusing to send the ARM token"));
    outcome_free(&o);
    env_stop(&e);
}

/*
 * An endpoint that never answered and cannot be reached (connection refused, unknown host,
 * TLS failure) stops the command at once with exit 3 and says why, instead of retrying for a
 * minute and ending on "circuit open" (exit 1). `timeout` bounds a regression.
 */
static void expect_unreachable(const char *endpoint, const char *args, const char *why)
{
    char out[65536], cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "SKYIO_ARM_TOKEN=secret-token-123 SKYIO_ARM_ENDPOINT=%s AZURE_SUBSCRIPTION_ID=sub-1 "
             "timeout 120 %s %s 2>&1",
             endpoint, SKY_TEST_BIN, args);
    sky_test_shell_unreachable(cmd, why, out, sizeof(out));
    assert_null(strstr(out, "secret-token-123"));
    assert_null(strstr(out, "\"status\"")); /* no result line: nothing was done */
}

static void test_unreachable_endpoint_stops_at_once(void **state)
{
    static const char off[] = "http://127.0.0.1:1";
    sky_test_mock tls;
    char dir[256], input[512], args[1024];
    (void)state;
    sky_test_tmpdir(dir, sizeof(dir));
    snprintf(input, sizeof(input), "%s/ops.jsonl", dir);
    FILE *f = fopen(input, "w");
    assert_non_null(f);
    for (int i = 0; i < 20; i++)
        fprintf(f, "{\"id\":\"" ST "u%d\",\"body\":{\"location\":\"w\"}}\n", i);
    fclose(f);
    expect_unreachable(off, "arm get " RG " --api-version " API, "ECONNECT");
    expect_unreachable(off, "group create rg1 -l w", "ECONNECT");
    expect_unreachable(off, "vm list", "ECONNECT");
    snprintf(args, sizeof(args), "arm put --input %s --api-version " API " --concurrency 4", input);
    expect_unreachable(off, args, "ECONNECT");
    /* (an unknown host is the same rule; no test looks one up: a lookup is DNS traffic
     * off this machine) */
    /* a TLS server whose certificate no trusted CA signed */
    memset(&tls, 0, sizeof(tls));
    tls.tls = 1;
    sky_test_mock_start(&tls, NULL);
    expect_unreachable(tls.base_url, "arm list " SUB "/resourcegroups --api-version " API, "ETLS");
    sky_test_rmdir(dir);
    assert_int_equal(sky_test_mock_stop(&tls), 0);
}

/* A folder (or a device) given where a file is read says so, instead of "cannot read it". */
static void test_folder_given_as_a_file(void **state)
{
    sky_test_mock m;
    char out[8192], dir[256];
    (void)state;
    memset(&m, 0, sizeof(m));
    snprintf(m.base_url, sizeof(m.base_url), "http://127.0.0.1:1");
    sky_test_tmpdir(dir, sizeof(dir));
    assert_int_equal(
        cli(&m, out, sizeof(out), "arm put " RG " --api-version " API " --body %s 2>&1", dir), 2);
    assert_non_null(strstr(out, "--body"));
    assert_non_null(strstr(out, "it is a folder, not a file"));
    assert_int_equal(
        cli(&m, out, sizeof(out), "arm put --input %s --api-version " API " 2>&1", dir), 2);
    assert_non_null(strstr(out, "--input"));
    assert_non_null(strstr(out, "it is a folder, not a file"));
    assert_int_equal(
        cli(&m, out, sizeof(out), "arm put --input /dev/null --api-version " API " 2>&1"), 2);
    assert_non_null(strstr(out, "not a regular file"));
    assert_int_equal(
        cli(&m, out, sizeof(out), "vm create v -g rg -l w --nic /x --ssh-key-file %s 2>&1", dir),
        2);
    assert_non_null(strstr(out, "--ssh-key-file"));
    assert_non_null(strstr(out, "it is a folder, not a file"));
    sky_test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poller_styles),
        cmocka_unit_test(test_retry_after_is_honoured),
        cmocka_unit_test(test_failed_operation),
        cmocka_unit_test(test_canceled_operation),
        cmocka_unit_test(test_client_free_cancels),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_paging_many_pages),
        cmocka_unit_test(test_throttling_while_polling),
        cmocka_unit_test(test_resume_in_new_process),
        cmocka_unit_test(test_group_and_vm_commands),
        cmocka_unit_test(test_put_many_from_file),
        cmocka_unit_test(test_no_token_is_refused),
        cmocka_unit_test(test_client_free_from_callback),
        cmocka_unit_test(test_resume_rules),
        cmocka_unit_test(test_foreign_poll_url_refused),
        cmocka_unit_test(test_unreachable_endpoint_stops_at_once),
        cmocka_unit_test(test_folder_given_as_a_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
