/* Tests for sky_arm_bulk: arguments, callbacks exactly once, the tally, free in flight; the
 * JSON Lines input file (checked, and read into operations). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/arm.h"

#define API "2021-04-01"
#define REFUSED "http://127.0.0.1:9" /* discard: nothing listens */

typedef struct fixture {
    uv_loop_t loop;
    sky_http_client *http;
    sky_arm_client *arm;
    int ops[8];      /* on_op calls per index */
    int not_started; /* on_op calls with no result */
    int last_code;   /* of the last on_op error */
    int done;        /* on_done calls */
    sky_arm_bulk_counts counts;
    int free_in_done;  /* free the batch from on_done */
    char paths[8][64]; /* each operation's resource id, as on_op saw it */
} fixture;

static void open_client(fixture *f, int fail_unreached)
{
    sky_arm_options o;
    sky_error err;
    sky_error_clear(&err);
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(sky_http_client_new(&f->loop, NULL, &f->http), 0);
    sky_arm_options_init(&o);
    o.endpoint = REFUSED;
    o.pipeline.fail_unreached = fail_unreached;
    assert_int_equal(sky_arm_client_new(&f->loop, f->http, &o, &f->arm, &err), 0);
}

static void close_client(fixture *f)
{
    sky_arm_client_free(f->arm);
    sky_http_client_free(f->http);
    while (uv_run(&f->loop, UV_RUN_NOWAIT))
        ;
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void on_op(sky_arm_bulk *b, size_t index, const char *path, const sky_arm_lro_result *res,
                  const sky_error *err, void *ud)
{
    fixture *f = ud;
    (void)b;
    assert_non_null(path);
    assert_true(index < 8);
    f->ops[index]++;
    snprintf(f->paths[index], sizeof(f->paths[index]), "%s", path);
    f->not_started += res == NULL;
    f->last_code = err ? err->code : 0;
}

static void on_done(sky_arm_bulk *b, const sky_arm_bulk_counts *counts, void *ud)
{
    fixture *f = ud;
    f->done++;
    f->counts = *counts;
    if (f->free_in_done)
        sky_arm_bulk_free(b);
}

static sky_arm_bulk *make(fixture *f, const char *method, size_t n, size_t concurrency)
{
    sky_arm_bulk_options o;
    sky_arm_bulk *b = NULL;
    sky_arm_bulk_options_init(&o);
    assert_int_equal(o.concurrency, 8);
    o.concurrency = concurrency;
    o.on_op = on_op;
    o.on_done = on_done;
    o.user_data = f;
    assert_int_equal(sky_arm_bulk_new(f->arm, &o, &b), 0);
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/subscriptions/s/resourceGroups/rg%zu", i);
        assert_int_equal(sky_arm_bulk_add(b, method, path, API, SKY_SPAN_LIT("{}")), 0);
    }
    return b;
}

static void test_arguments(void **state)
{
    fixture f;
    sky_arm_bulk_options o;
    sky_arm_bulk *b = NULL;
    (void)state;
    open_client(&f, 1);
    sky_arm_bulk_options_init(&o);
    o.concurrency = 0;
    assert_int_equal(sky_arm_bulk_new(f.arm, &o, &b), SKY_EINVAL);
    assert_null(b);
    b = make(&f, "PUT", 0, 2);
    assert_int_equal(sky_arm_bulk_add(b, "PUT", NULL, API, SKY_SPAN_LIT("")), SKY_EINVAL);
    assert_int_equal(sky_arm_bulk_run(b), SKY_EINVAL); /* nothing to run */
    sky_arm_bulk_free(b);
    assert_int_equal(f.done, 0); /* never run: no on_done */
    sky_arm_bulk_free(NULL);
    close_client(&f);
}

/* Operations that cannot start end inside run, each once, and on_done follows. */
static void test_none_can_start(void **state)
{
    fixture f;
    sky_arm_bulk_counts n;
    (void)state;
    open_client(&f, 1);
    sky_arm_bulk *b = make(&f, "GET", 3, 2); /* GET starts no operation */
    assert_int_equal(sky_arm_bulk_run(b), 0);
    assert_int_equal(sky_arm_bulk_run(b), SKY_ESTATE);
    assert_int_equal(sky_arm_bulk_add(b, "PUT", "/x", API, SKY_SPAN_LIT("")), SKY_ESTATE);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f.ops[i], 1);
    assert_int_equal(f.not_started, 3);
    assert_int_equal(f.last_code, SKY_EINVAL);
    assert_int_equal(f.done, 1);
    assert_int_equal(f.counts.total, 3);
    assert_int_equal(f.counts.failed, 3);
    sky_arm_bulk_get_counts(b, &n);
    assert_int_equal(n.unfinished, 0);
    sky_arm_bulk_free(b);
    close_client(&f);
}

/* Every operation ends (here refused), under the limit, each once; free from on_done. */
static void test_all_end_once(void **state)
{
    fixture f;
    (void)state;
    open_client(&f, 1);
    f.free_in_done = 1;
    sky_arm_bulk *b = make(&f, "PUT", 5, 2);
    assert_int_equal(sky_arm_bulk_run(b), 0);
    while (f.done == 0 && uv_run(&f.loop, UV_RUN_ONCE))
        ;
    assert_int_equal(f.done, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(f.ops[i], 1);
    assert_int_equal(f.not_started, 0);
    assert_int_equal(f.last_code, SKY_ECONNECT);
    assert_int_equal(f.counts.total, 5);
    assert_int_equal(f.counts.succeeded, 0);
    assert_int_equal(f.counts.failed, 5);
    assert_int_equal(f.counts.unfinished, 0);
    close_client(&f);
}

/* Stop: what is in flight ends, nothing more starts. Free in flight: canceled, then done. */
static void test_stop_and_free_in_flight(void **state)
{
    fixture f;
    (void)state;
    open_client(&f, 0); /* refused is retried: the operations stay in flight */
    sky_arm_bulk *b = make(&f, "PUT", 5, 2);
    assert_int_equal(sky_arm_bulk_run(b), 0);
    sky_arm_bulk_stop(b);
    sky_arm_bulk_free(b);
    while (f.done == 0 && uv_run(&f.loop, UV_RUN_ONCE))
        ;
    assert_int_equal(f.done, 1);
    assert_int_equal(f.ops[0] + f.ops[1], 2);
    assert_int_equal(f.ops[2] + f.ops[3] + f.ops[4], 0);
    assert_int_equal(f.last_code, SKY_ECANCELED);
    assert_int_equal(f.counts.failed, 2);
    assert_int_equal(f.counts.unfinished, 3);
    close_client(&f);
}

/* An input file's lines: checked (each error names its line), then added as operations. */
static void test_jsonl_input(void **state)
{
    fixture f;
    sky_error err;
    (void)state;
    const char *good = "{\"id\":\"/subscriptions/s/resourceGroups/a\",\"body\":{\"x\":1}}\n"
                       " \t\r\n\n"
                       "{\"id\":\"/subscriptions/s/resourceGroups/b\",\"body\":{}}";
    sky_error_clear(&err);
    assert_int_equal(sky_arm_bulk_check_jsonl(sky_span_cstr(good), &err), 2);
    assert_int_equal(sky_arm_bulk_check_jsonl(SKY_SPAN_LIT("\n  \n"), &err), 0);
    assert_int_equal(
        sky_arm_bulk_check_jsonl(SKY_SPAN_LIT("{\"id\":\"/a\",\"body\":{}}\nnot json\n"), &err),
        SKY_EJSON);
    assert_non_null(strstr(err.message, "line 2: "));
    const char *bad[] = {"{\"body\":{}}", "{\"id\":\"rg\",\"body\":{}}",
                         "{\"id\":\"/a\",\"body\":[]}", "{\"id\":\"/a\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sky_error_clear(&err);
        assert_int_equal(sky_arm_bulk_check_jsonl(sky_span_cstr(bad[i]), &err), SKY_EINVAL);
        assert_string_equal(err.message,
                            "line 1: needs \"id\" (a resource id) and \"body\" (an object)");
    }
    /* read into a batch: one operation a line, in order, each ending once */
    open_client(&f, 1);
    sky_arm_bulk *b = make(&f, "PUT", 0, 2);
    sky_error_clear(&err);
    assert_int_equal(sky_arm_bulk_add_jsonl(NULL, sky_span_cstr(good), NULL, API, &err),
                     SKY_EINVAL);
    assert_int_equal(sky_arm_bulk_add_jsonl(b, sky_span_cstr(good), NULL, API, &err), 2);
    assert_int_equal(sky_arm_bulk_run(b), 0);
    assert_int_equal(sky_arm_bulk_add_jsonl(b, sky_span_cstr(good), NULL, API, &err),
                     SKY_ESTATE); /* running: no more */
    while (f.done == 0)
        uv_run(&f.loop, UV_RUN_ONCE);
    assert_int_equal(f.counts.total, 2);
    assert_int_equal(f.ops[0] + f.ops[1], 2);
    assert_string_equal(f.paths[0], "/subscriptions/s/resourceGroups/a");
    assert_string_equal(f.paths[1], "/subscriptions/s/resourceGroups/b");
    sky_arm_bulk_free(b);
    close_client(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arguments),    cmocka_unit_test(test_none_can_start),
        cmocka_unit_test(test_all_end_once), cmocka_unit_test(test_stop_and_free_in_flight),
        cmocka_unit_test(test_jsonl_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
