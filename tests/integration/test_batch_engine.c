/*
 * The batch engine through its C API (skyio/batch.h), with the memory source and store,
 * against `skyio mock` on loopback: every line done once, a rerun skipping what the store
 * holds, a refused key, a graceful stop, an endpoint never reached. Each test counts what
 * the mock received and what the store kept.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_batch.h"
#include "skyio/batch.h"

/* One engine run: its parts, and what it reported. */
typedef struct run {
    uv_loop_t *loop;
    sky_http_client *client;
    sky_ai_endpoint ep;
    sky_batch_source *src;
    sky_batch_store *store;
    sky_batch *batch;
    sky_credential *cred; /* when the run's pipeline has one */
    int started;
    int finished;     /* FINISHED events: must end at exactly 1 */
    int refused;      /* REFUSED events */
    int refusal;      /* ... and the last one's kind */
    int unreachable;  /* UNREACHABLE events */
    int faults;       /* FAULT events */
    int fault;        /* ... and the last one's kind */
    int events_after; /* any event after FINISHED: must stay 0 */
    sky_batch_summary summary;
} run;

static void on_event(sky_batch *b, const sky_batch_event *ev, void *ud)
{
    run *r = ud;
    (void)b;
    r->events_after += r->finished > 0;
    if (ev->kind == SKY_BATCH_EVENT_REFUSED) {
        r->refused++;
        r->refusal = ev->refusal;
    } else if (ev->kind == SKY_BATCH_EVENT_UNREACHABLE) {
        r->unreachable++;
    } else if (ev->kind == SKY_BATCH_EVENT_FAULT) {
        r->faults++;
        r->fault = ev->fault;
    } else if (ev->kind == SKY_BATCH_EVENT_FINISHED) {
        r->finished++;
        r->summary = *ev->summary;
    }
}

/* A run of @p n lines against @p base_url with @p key; @p concurrency 0 is adaptive; with
 * @p co, a managed identity credential of those options on the pipeline. */
/* A retry's backoff ceiling for the next run_open (0: the default), and its retries. */
static uint64_t g_backoff_ms;
static int g_max_retries;

static void run_open_with(run *r, const char *base_url, const char *key, int n, int concurrency,
                          const sky_credential_options *co)
{
    sky_batch_options o;
    sky_error err;
    char url[200];
    memset(r, 0, sizeof(*r));
    sky_error_clear(&err);
    sky_test_client_open(&r->loop, &r->client);
    if (co)
        assert_int_equal(
            sky_credential_managed_identity_new(r->loop, r->client, co, &r->cred, &err), 0);
    snprintf(url, sizeof(url), "%s/v1", base_url);
    assert_int_equal(sky_ai_endpoint_set(&r->ep, SKY_AI_OPENAI, url, key, NULL), 0);
    r->src = sky_batch_memory_source_new();
    r->store = sky_batch_memory_store_new();
    assert_non_null(r->src);
    assert_non_null(r->store);
    sky_test_batch_add_lines(r->src, n, "gpt-4o-mini", NULL);
    sky_batch_options_init(&o);
    o.endpoint = &r->ep;
    o.concurrency = concurrency;
    o.pipeline.use_rate_limit = 0;
    o.pipeline.credential = r->cred;
    if (g_backoff_ms) {
        o.pipeline.retry.base_ms = o.pipeline.retry.cap_ms = g_backoff_ms;
        o.pipeline.retry.max_retries = g_max_retries;
    }
    o.on_event = on_event;
    o.user_data = r;
    assert_int_equal(sky_batch_new(r->loop, r->client, &o, r->src, r->store, &r->batch, &err), 0);
}

static void run_open(run *r, const char *base_url, const char *key, int n, int concurrency)
{
    run_open_with(r, base_url, key, n, concurrency, NULL);
}

/* Start, and run the loop until FINISHED (at most @p timeout_ms). */
/* Start the batch unless it has been; once only. */
static void run_start(run *r)
{
    if (!r->started)
        assert_int_equal(sky_batch_start(r->batch), 0);
    r->started = 1;
}

static void run_to_end(run *r, uint64_t timeout_ms)
{
    run_start(r);
    assert_true(sky_test_run_until(r->loop, &r->finished, timeout_ms));
}

static void run_close(run *r)
{
    sky_batch_free(r->batch);
    sky_credential_free(r->cred); /* after the batch's pipeline, before the client */
    sky_http_client_free(r->client);
    sky_test_loop_free(r->loop); /* runs the loop until every handle is closed */
    assert_int_equal(r->finished, 1);
    assert_int_equal(r->events_after, 0);
    sky_batch_memory_source_free(r->src);
    sky_batch_memory_store_free(r->store);
    sky_ai_endpoint_free(&r->ep);
}

static int64_t stat_int(const sky_test_mock *m, const char *path)
{
    return sky_test_mock_stat_or(m, path, 0);
}

static void test_every_line_once(void **state)
{
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    run_open(&r, m.base_url, NULL, 50, 0);
    run_to_end(&r, 60000);
    assert_int_equal(sky_batch_memory_store_count(r.store), 50);
    assert_int_equal(sky_test_batch_count_ok(r.store), 50);
    assert_int_equal(stat_int(&m, "endpoints.chat"), 50);
    assert_int_equal(r.summary.progress.ok, 50);
    assert_int_equal(r.summary.progress.failed, 0);
    assert_int_equal(r.summary.unfinished, 0);
    assert_int_equal(r.summary.fatal, 0);
    assert_true(r.summary.progress.tokens_in > 0);
    run_close(&r);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_rerun_skips_what_the_store_holds(void **state)
{
    sky_test_mock m;
    char id[32];
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, NULL);
    run_open(&r, m.base_url, NULL, 30, 0);
    for (int i = 0; i < 30; i += 3) {
        snprintf(id, sizeof(id), "req-%d", i);
        assert_int_equal(sky_batch_memory_store_mark_done(r.store, id), 0);
    }
    run_to_end(&r, 60000);
    assert_int_equal(r.summary.progress.skipped, 10);
    assert_int_equal(r.summary.progress.ok, 20);
    assert_int_equal(sky_batch_memory_store_count(r.store), 20);
    assert_int_equal(stat_int(&m, "endpoints.chat"), 20);
    for (size_t i = 0; i < sky_batch_memory_store_count(r.store); i++) {
        sky_batch_record rec;
        assert_int_equal(sky_batch_memory_store_get(r.store, i, &rec), 0);
        assert_int_not_equal(atoi(rec.custom_id + 4) % 3, 0); /* none of the done ones */
    }
    run_close(&r);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_refused_key_stops_and_records_nothing(void **state)
{
    static const char *const margs[] = {"--key", "sk-right-1", NULL};
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, margs);
    run_open(&r, m.base_url, "sk-wrong-2", 300, 0);
    run_to_end(&r, 60000);
    assert_int_equal(r.refused, 1);
    assert_int_equal(r.refusal, SKY_BATCH_REFUSED_CREDENTIALS);
    assert_int_equal(r.summary.refusal, SKY_BATCH_REFUSED_CREDENTIALS);
    assert_true(r.summary.unfinished);
    assert_int_equal(sky_batch_memory_store_count(r.store), 0);
    int64_t refused = stat_int(&m, "auth_failures");
    assert_true(refused >= 1 && refused <= 100); /* the first wave at most, not 300 */
    assert_int_equal(stat_int(&m, "endpoints.chat"), 0);
    run_close(&r);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/*
 * A graceful stop while the first requests are on the wire (replies take a second): nothing
 * is sent after it, and every request the mock received ends recorded.
 */
static void test_graceful_stop_records_what_was_sent(void **state)
{
    static const char *const margs[] = {"--ttft-ms", "1000", "--jitter", "0", NULL};
    sky_test_mock m;
    sky_batch_stop_info info;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, margs);
    run_open(&r, m.base_url, NULL, 40, 4);
    run_start(&r);
    assert_true(sky_test_wait_stat(r.loop, &m, "endpoints.chat", 1, 20000) >= 1);
    assert_int_equal(sky_batch_stop(r.batch, SKY_BATCH_STOP_GRACEFUL, &info), 0);
    assert_true(info.on_wire >= 1 && info.on_wire <= 4);
    run_to_end(&r, 60000);
    int64_t sent = stat_int(&m, "endpoints.chat");
    assert_true(sent >= 1 && sent <= 4);
    assert_int_equal((int64_t)sky_batch_memory_store_count(r.store), sent);
    assert_int_equal((int64_t)sky_test_batch_count_ok(r.store), sent);
    assert_true(r.summary.stopped);
    assert_true(r.summary.unfinished);
    assert_int_equal(r.summary.fatal, 0);
    assert_int_equal(sky_batch_stop(r.batch, SKY_BATCH_STOP_GRACEFUL, NULL), SKY_ESTATE);
    run_close(&r);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/*
 * Lines are read only as the concurrency limit can take them soon (twice it, 16 more): a
 * line read is a call held in memory until a slot takes it, and 4,096 of them read ahead
 * of 4 slots went cold before they were sent.
 */
static void test_reads_follow_the_concurrency_limit(void **state)
{
    static const char *const margs[] = {"--ttft-ms", "300", "--jitter", "0", NULL};
    sky_test_mock m;
    sky_batch_progress p;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, margs);
    run_open(&r, m.base_url, NULL, 200, 4);
    run_start(&r);
    assert_true(sky_test_wait_stat(r.loop, &m, "endpoints.chat", 4, 20000) >= 4);
    sky_batch_get_progress(r.batch, &p);
    print_message("sending %llu, waiting %llu of 200 lines, 4 slots\n",
                  (unsigned long long)p.sending, (unsigned long long)p.waiting);
    assert_int_equal(p.sending, 4);
    assert_true(p.sending + p.waiting <= 2 * 4 + 16);
    run_to_end(&r, 60000);
    assert_int_equal(sky_batch_memory_store_count(r.store), 200);
    assert_int_equal(sky_test_batch_count_ok(r.store), 200);
    run_close(&r);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

/*
 * A call waiting out a retry's backoff holds no slot, and for seconds will not: it does not
 * count against the read-ahead. Half the lines fail every time and wait a backoff of up to a
 * minute before their one retry; the other half are all sent meanwhile (counted against the
 * read-ahead, the waiting half stopped the reading at 2 x 4 + 16 lines in flight).
 */
static void test_backoffs_do_not_hold_the_reading(void **state)
{
    static const char *const margs[] = {"--poison", "0.5", NULL};
    sky_test_mock m;
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, margs);
    g_backoff_ms = 60000;
    g_max_retries = 1;
    run_open(&r, m.base_url, NULL, 200, 4);
    g_backoff_ms = 0;
    run_start(&r);
    assert_true(sky_test_wait_stat(r.loop, &m, "endpoints.chat", 200, 30000) >= 200);
    assert_int_equal(sky_batch_stop(r.batch, SKY_BATCH_STOP_GRACEFUL, NULL), 0);
    run_to_end(&r, 60000);
    int64_t sent = stat_int(&m, "endpoints.chat"), poisoned = stat_int(&m, "poisoned");
    int64_t ok = (int64_t)sky_test_batch_count_ok(r.store);
    int64_t failed = (int64_t)sky_batch_memory_store_count(r.store) - ok;
    print_message("sent %lld, poisoned %lld, ok %lld, failed after their retry %lld\n",
                  (long long)sent, (long long)poisoned, (long long)ok, (long long)failed);
    assert_true(poisoned > 0 && ok > 0);
    assert_int_equal(ok, sent - poisoned);         /* each good line sent once, and kept */
    assert_int_equal(ok + poisoned - failed, 200); /* and every poisoned one sent */
    run_close(&r);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

static void test_unreachable_endpoint_records_nothing(void **state)
{
    char base[64];
    run r;
    (void)state;
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", sky_test_closed_port());
    run_open(&r, base, NULL, 40, 0);
    run_to_end(&r, 60000);
    assert_int_equal(r.unreachable, 1);
    assert_true(r.summary.unreachable);
    assert_true(r.summary.unfinished);
    assert_int_equal(r.summary.progress.ok + r.summary.progress.failed, 0);
    assert_int_equal(sky_batch_memory_store_count(r.store), 0);
    run_close(&r);
}

/*
 * With a credential, the engine gets a token before it reads a line: the mock's IMDS token
 * serves every request; a credential that gives none stops the run with a FAULT before
 * anything is sent or recorded.
 */
static void test_credential_token_before_the_first_line(void **state)
{
    static const char *const margs[] = {"--key", "mock-token-1", NULL};
    sky_credential_options co;
    sky_test_mock m;
    char closed[64];
    run r;
    (void)state;
    memset(&m, 0, sizeof(m));
    sky_test_mock_start(&m, margs);
    sky_credential_options_init(&co);
    co.imds_endpoint = m.base_url;
    co.imds_max_retries = 0;
    run_open_with(&r, m.base_url, NULL, 20, 0, &co);
    run_to_end(&r, 60000);
    assert_int_equal(r.faults, 0);
    assert_int_equal(r.summary.progress.ok, 20);
    assert_int_equal(stat_int(&m, "identity.imds"), 1);
    run_close(&r);
    snprintf(closed, sizeof(closed), "http://127.0.0.1:%d", sky_test_closed_port());
    co.imds_endpoint = closed;
    run_open_with(&r, m.base_url, NULL, 20, 0, &co);
    run_to_end(&r, 60000);
    assert_int_equal(r.faults, 1);
    assert_int_equal(r.fault, SKY_BATCH_FAULT_CREDENTIAL);
    assert_true(r.summary.fatal);
    assert_true(r.summary.unfinished);
    assert_int_equal(sky_batch_memory_store_count(r.store), 0);
    assert_int_equal(stat_int(&m, "endpoints.chat"), 20);
    run_close(&r);
    assert_int_equal(sky_test_mock_stop(&m), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_line_once),
        cmocka_unit_test(test_rerun_skips_what_the_store_holds),
        cmocka_unit_test(test_refused_key_stops_and_records_nothing),
        cmocka_unit_test(test_graceful_stop_records_what_was_sent),
        cmocka_unit_test(test_reads_follow_the_concurrency_limit),
        cmocka_unit_test(test_backoffs_do_not_hold_the_reading),
        cmocka_unit_test(test_unreachable_endpoint_records_nothing),
        cmocka_unit_test(test_credential_token_before_the_first_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
