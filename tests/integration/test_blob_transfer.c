/* Folder transfers (skyio/blob_transfer.h) driven through the library against a real Azurite. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "harness_azurite.h"
#include "skyio/blob.h"
#include "skyio/blob_transfer.h"
#include "harness_group.h"

/* One Azurite for the whole file: starting node takes seconds. */
static sky_test_azurite g_az;

typedef struct fixture {
    uv_loop_t *loop;
    sky_http_client *http;
    sky_blob_client *blob;
    sky_fake_clock clock;
    char dir[256], src[300], dst[300];
} fixture;

/* What the callbacks saw. */
typedef struct seen {
    int planned, ran, progress;
    int step, err_code, http_status;
    char service_code[SKY_ERROR_SERVICE_CODE_MAX];
    char message[SKY_ERROR_MESSAGE_MAX];
    sky_blob_folder_stats st;
    sky_fake_clock *clock; /* moved on at each progress report */
    int free_in_callback;
    int cancel_on_progress;
} seen;

static void keep_error(seen *s, const sky_error *err)
{
    if (err == NULL)
        return;
    s->err_code = err->code;
    s->http_status = err->http_status;
    snprintf(s->service_code, sizeof(s->service_code), "%s", err->service_code);
    snprintf(s->message, sizeof(s->message), "%s", err->message);
}

static void on_planned(sky_blob_folder *f, int step, const sky_error *err, void *ud)
{
    seen *s = ud;
    (void)f;
    s->planned++;
    s->step = step;
    keep_error(s, err);
}

static void on_ran(sky_blob_folder *f, const sky_blob_folder_stats *st, const sky_error *err,
                   void *ud)
{
    seen *s = ud;
    s->ran++;
    s->st = *st;
    keep_error(s, err);
    if (s->free_in_callback)
        sky_blob_folder_free(f); /* deferred until this returns */
}

static void on_progress(sky_blob_folder *f, const sky_blob_folder_stats *st, void *ud)
{
    seen *s = ud;
    (void)st;
    s->progress++;
    if (s->cancel_on_progress)
        sky_blob_folder_cancel(f);
    if (s->clock)
        sky_fake_clock_advance(s->clock, 1000);
}

static void write_file(const char *path, size_t size, unsigned seed)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < size; i++)
        fputc((int)((i * 31 + seed) & 0xff), fp);
    fclose(fp);
}

static void path_in(char *out, size_t len, const char *dir, const char *rel)
{
    snprintf(out, len, "%s/%s", dir, rel);
}

/* src: four files at three depths (one of three blocks), an empty folder and a link. */
static void make_tree(fixture *fx)
{
    char p[600];
    mkdir(fx->src, 0755);
    path_in(p, sizeof(p), fx->src, "a");
    mkdir(p, 0755);
    path_in(p, sizeof(p), fx->src, "a/b");
    mkdir(p, 0755);
    path_in(p, sizeof(p), fx->src, "empty-folder");
    mkdir(p, 0755);
    path_in(p, sizeof(p), fx->src, "top.txt");
    write_file(p, 10, 1);
    path_in(p, sizeof(p), fx->src, "a/mid.txt");
    write_file(p, 3000, 2);
    path_in(p, sizeof(p), fx->src, "a/b/deep.bin");
    write_file(p, 2 * 1024 * 1024 + 17, 3);
    path_in(p, sizeof(p), fx->src, "a/b/zero");
    write_file(p, 0, 0);
    /* A link is not a file of the folder: never followed, never sent. */
    path_in(p, sizeof(p), fx->src, "link-to-top");
    assert_int_equal(symlink("top.txt", p), 0);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    fx->loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(fx->loop, NULL, &fx->http), 0);
    sky_blob_client_options o;
    sky_blob_client_options_init(&o);
    o.endpoint = g_az.endpoint;
    o.account_name = "devstoreaccount1";
    o.account_key = SKY_TEST_AZURITE_KEY;
    o.retry.base_ms = 10;
    o.retry.max_retries = 2;
    o.block_size = 1024 * 1024;
    assert_int_equal(sky_blob_client_new(fx->loop, fx->http, &o, &fx->blob, NULL), 0);
    sky_fake_clock_init(&fx->clock, 5000, 0);
    sky_test_tmpdir(fx->dir, sizeof(fx->dir));
    snprintf(fx->src, sizeof(fx->src), "%s/src", fx->dir);
    snprintf(fx->dst, sizeof(fx->dst), "%s/dst", fx->dir);
    make_tree(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    sky_blob_client_free(fx->blob);
    sky_http_client_free(fx->http);
    sky_test_loop_free(fx->loop);
    sky_test_rmdir(fx->dir);
    free(fx);
    return 0;
}

SKY_TEST_AZURITE_GROUP(g_az, sky_test_azurite_start)

/* ---- helpers ---- */

static void on_op(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    (void)op, (void)rep;
    if (err)
        fail_msg("blob op: %s", err->message);
    ++*(int *)ud;
}

static void make_container(fixture *fx, const char *name)
{
    int done = 0;
    assert_int_equal(sky_blob_container_create(fx->blob, name, on_op, &done, NULL, NULL), 0);
    assert_true(sky_test_run_until(fx->loop, &done, 30000));
}

static sky_blob_folder *folder(fixture *fx, int kind, const char *container, const char *prefix,
                               const char *local, seen *s)
{
    sky_blob_folder_options o;
    sky_blob_folder_options_init(&o);
    o.kind = kind;
    o.container = container;
    o.prefix = prefix;
    o.local = local;
    o.parallel = 2;
    o.clock = &fx->clock.clock;
    o.on_progress = on_progress;
    o.progress_user_data = s;
    o.progress_interval_ms = 5;
    sky_blob_folder *f = NULL;
    sky_error err;
    sky_error_clear(&err);
    if (sky_blob_folder_new(fx->blob, &o, &f, &err) != 0)
        fail_msg("new: %s", err.message);
    return f;
}

/* Plan and wait; the callback must come exactly once and not from inside the call. */
static void plan(fixture *fx, sky_blob_folder *f, seen *s)
{
    assert_int_equal(sky_blob_folder_plan(f, on_planned, s, NULL), 0);
    assert_int_equal(s->planned, 0);
    assert_true(sky_test_run_until(fx->loop, &s->planned, 60000));
    uv_run(fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(s->planned, 1);
}

static void run(fixture *fx, sky_blob_folder *f, seen *s)
{
    assert_int_equal(sky_blob_folder_run(f, on_ran, s, NULL), 0);
    assert_int_equal(s->ran, 0);
    assert_true(sky_test_run_until(fx->loop, &s->ran, 120000));
    uv_run(fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(s->ran, 1);
}

static const sky_blob_folder_item *item_named(const sky_blob_folder *f, const char *name)
{
    for (size_t i = 0; i < sky_blob_folder_count(f); i++)
        if (strcmp(sky_blob_folder_item_at(f, i)->name, name) == 0)
            return sky_blob_folder_item_at(f, i);
    return NULL;
}

/* Upload src to container/pre and expect these counts. */
static void upload(fixture *fx, const char *container, size_t done, size_t skipped)
{
    seen s;
    memset(&s, 0, sizeof(s));
    sky_blob_folder *f = folder(fx, SKY_BLOB_FOLDER_UPLOAD, container, "pre", fx->src, &s);
    plan(fx, f, &s);
    assert_int_equal(s.err_code, 0);
    run(fx, f, &s);
    if (s.err_code != 0 || s.st.done != done || s.st.skipped != skipped || s.st.failed != 0)
        fail_msg("upload: err %d, done %zu (want %zu), skipped %zu (want %zu), failed %zu",
                 s.err_code, s.st.done, done, s.st.skipped, skipped, s.st.failed);
    sky_blob_folder_free(f);
}

static int same_files(const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "diff -r -x link-to-top -x empty-folder '%s' '%s' >/dev/null 2>&1",
             a, b);
    return system(cmd) == 0;
}

/* ---- tests ---- */

/* The plan walks the folder (files only, no link), the run sends them, progress on the way. */
static void test_upload_a_folder(void **state)
{
    fixture *fx = *state;
    seen s;
    memset(&s, 0, sizeof(s));
    s.clock = &fx->clock;
    make_container(fx, "upload");
    sky_blob_folder *f = folder(fx, SKY_BLOB_FOLDER_UPLOAD, "upload", "pre", fx->src, &s);
    plan(fx, f, &s);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.step, SKY_BLOB_FOLDER_STEP_NONE);
    assert_int_equal(sky_blob_folder_count(f), 4);
    const sky_blob_folder_item *it = item_named(f, "pre/a/b/deep.bin");
    assert_non_null(it);
    assert_int_equal(it->size, 2 * 1024 * 1024 + 17);
    assert_int_equal(it->state, SKY_BLOB_ITEM_WAITING);
    assert_non_null(item_named(f, "pre/a/b/zero"));
    assert_null(item_named(f, "pre/link-to-top"));
    run(fx, f, &s);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.st.done, 4);
    assert_int_equal(s.st.failed, 0);
    assert_int_equal(s.st.files_finished, 4);
    assert_int_equal(s.st.bytes_done, s.st.bytes_total);
    assert_int_equal(s.st.bytes_total, 10 + 3000 + 2 * 1024 * 1024 + 17);
    assert_int_equal(item_named(f, "pre/top.txt")->state, SKY_BLOB_ITEM_DONE);
    /* The run's time is the injected clock's: one second per progress report. */
    assert_int_equal(s.st.elapsed_ms, 1000 * (uint64_t)s.progress);
    /* Once, both: a second plan or run is refused. */
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_blob_folder_run(f, on_ran, &s, &err), SKY_ESTATE);
    assert_int_equal(sky_blob_folder_plan(f, on_planned, &s, NULL), SKY_ESTATE);
    sky_blob_folder_free(f);
}

/* A second upload sends nothing: every blob has the file's size and MD5; a changed file goes. */
static void test_reupload_skips_unchanged(void **state)
{
    fixture *fx = *state;
    char p[600];
    make_container(fx, "sync");
    upload(fx, "sync", 4, 0);
    upload(fx, "sync", 0, 4);
    path_in(p, sizeof(p), fx->src, "a/mid.txt");
    write_file(p, 3000, 9); /* same size, other bytes */
    upload(fx, "sync", 1, 3);
}

/* Download into a folder that does not exist yet: made, and every file as it was sent. */
static void test_download_into_an_empty_folder(void **state)
{
    fixture *fx = *state;
    seen s;
    memset(&s, 0, sizeof(s));
    make_container(fx, "down");
    upload(fx, "down", 4, 0);
    sky_blob_folder *f = folder(fx, SKY_BLOB_FOLDER_DOWNLOAD, "down", "pre", fx->dst, &s);
    plan(fx, f, &s);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(sky_blob_folder_count(f), 4);
    struct stat st;
    assert_int_equal(stat(fx->dst, &st), 0); /* made by the plan, once the listing worked */
    run(fx, f, &s);
    assert_int_equal(s.err_code, 0);
    assert_int_equal(s.st.done, 4);
    assert_true(same_files(fx->src, fx->dst));
    sky_blob_folder_free(f);
    /* And delete the prefix: every blob under it. */
    memset(&s, 0, sizeof(s));
    f = folder(fx, SKY_BLOB_FOLDER_DELETE, "down", "pre", NULL, &s);
    plan(fx, f, &s);
    assert_int_equal(sky_blob_folder_count(f), 4);
    run(fx, f, &s);
    assert_int_equal(s.st.done, 4);
    sky_blob_folder_free(f);
    memset(&s, 0, sizeof(s));
    f = folder(fx, SKY_BLOB_FOLDER_DELETE, "down", "pre", NULL, &s);
    plan(fx, f, &s);
    assert_int_equal(sky_blob_folder_count(f), 0);
    sky_blob_folder_free(f);
}

/* A missing container: the plan says which step failed and the service's code; no folder made. */
static void test_missing_container(void **state)
{
    fixture *fx = *state;
    seen s;
    memset(&s, 0, sizeof(s));
    sky_blob_folder *f = folder(fx, SKY_BLOB_FOLDER_UPLOAD, "nosuch", "pre", fx->src, &s);
    plan(fx, f, &s);
    assert_int_equal(s.step, SKY_BLOB_FOLDER_STEP_LIST);
    assert_int_equal(s.err_code, SKY_EHTTP);
    assert_int_equal(s.http_status, 404);
    assert_string_equal(s.service_code, "ContainerNotFound");
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_blob_folder_run(f, on_ran, &s, &err), SKY_ESTATE);
    sky_blob_folder_free(f);
    memset(&s, 0, sizeof(s));
    f = folder(fx, SKY_BLOB_FOLDER_DOWNLOAD, "nosuch", "", fx->dst, &s);
    plan(fx, f, &s);
    assert_int_equal(s.step, SKY_BLOB_FOLDER_STEP_LIST);
    assert_string_equal(s.service_code, "ContainerNotFound");
    struct stat st;
    assert_int_equal(stat(fx->dst, &st), -1);
    sky_blob_folder_free(f);
    /* A folder that is not there: the walk says so. */
    memset(&s, 0, sizeof(s));
    f = folder(fx, SKY_BLOB_FOLDER_UPLOAD, "nosuch", "pre", fx->dst, &s);
    plan(fx, f, &s);
    assert_int_equal(s.step, SKY_BLOB_FOLDER_STEP_WALK);
    assert_int_equal(s.err_code, SKY_EIO);
    assert_non_null(strstr(s.message, "No such file or directory"));
    sky_blob_folder_free(f);
}

/*
 * A file removed between the plan and the run fails alone, saying why; with
 * rollback_on_failure the files this run sent are deleted again.
 */
static void test_file_removed_after_plan_and_rollback(void **state)
{
    fixture *fx = *state;
    char p[600];
    seen s;
    memset(&s, 0, sizeof(s));
    make_container(fx, "gone");
    sky_blob_folder_options o;
    sky_blob_folder_options_init(&o);
    o.container = "gone";
    o.prefix = "pre";
    o.local = fx->src;
    o.rollback_on_failure = 1;
    sky_blob_folder *f = NULL;
    assert_int_equal(sky_blob_folder_new(fx->blob, &o, &f, NULL), 0);
    plan(fx, f, &s);
    assert_int_equal(s.err_code, 0);
    path_in(p, sizeof(p), fx->src, "a/mid.txt");
    assert_int_equal(unlink(p), 0);
    run(fx, f, &s);
    assert_int_equal(s.err_code, 0); /* the run went through; one file failed */
    assert_int_equal(s.st.failed, 1);
    assert_int_equal(s.st.done, 3);
    assert_true(s.st.rollback);
    assert_int_equal(s.st.rolled_back, 3);
    const sky_blob_folder_item *it = item_named(f, "pre/a/mid.txt");
    assert_int_equal(it->state, SKY_BLOB_ITEM_FAILED);
    assert_non_null(it->error);
    if (strstr(it->error, "mid.txt") == NULL && strstr(it->error, "No such file") == NULL)
        fail_msg("the reason does not say which file or why: %s", it->error);
    sky_blob_folder_free(f);
    /* Nothing of this run is left under the prefix. */
    memset(&s, 0, sizeof(s));
    f = folder(fx, SKY_BLOB_FOLDER_DELETE, "gone", "pre", NULL, &s);
    plan(fx, f, &s);
    assert_int_equal(sky_blob_folder_count(f), 0);
    sky_blob_folder_free(f);
}

/* Cancel: the run reports ECANCELED once, every file says why; free from the callback works. */
static void test_cancel_and_free_in_callback(void **state)
{
    fixture *fx = *state;
    seen s;
    memset(&s, 0, sizeof(s));
    make_container(fx, "cancel");
    sky_blob_folder *f = folder(fx, SKY_BLOB_FOLDER_UPLOAD, "cancel", "pre", fx->src, &s);
    plan(fx, f, &s);
    assert_int_equal(sky_blob_folder_run(f, on_ran, &s, NULL), 0);
    sky_blob_folder_cancel(f);
    sky_blob_folder_cancel(f);
    assert_true(sky_test_run_until(fx->loop, &s.ran, 60000));
    assert_int_equal(s.err_code, SKY_ECANCELED);
    assert_int_equal(s.st.failed, 4);
    for (size_t i = 0; i < sky_blob_folder_count(f); i++)
        assert_int_equal(sky_blob_folder_item_at(f, i)->error_code, SKY_ECANCELED);
    sky_blob_folder_free(f);
    /* Freed in the middle of its run, from its own callback. */
    memset(&s, 0, sizeof(s));
    s.free_in_callback = 1;
    s.cancel_on_progress = 1;
    f = folder(fx, SKY_BLOB_FOLDER_UPLOAD, "cancel", "pre", fx->src, &s);
    plan(fx, f, &s);
    assert_int_equal(sky_blob_folder_run(f, on_ran, &s, NULL), 0);
    assert_true(sky_test_run_until(fx->loop, &s.ran, 60000));
    uv_run(fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(s.ran, 1);
}

/* One file added by hand goes to the name and path given; no plan needed. */
static void test_added_files(void **state)
{
    fixture *fx = *state;
    char from[600], to[600];
    seen s;
    memset(&s, 0, sizeof(s));
    make_container(fx, "one");
    path_in(from, sizeof(from), fx->src, "a/mid.txt");
    sky_blob_folder *f = folder(fx, SKY_BLOB_FOLDER_UPLOAD, "one", "", NULL, &s);
    assert_int_equal(sky_blob_folder_add(f, from, "x/y.txt", 3000, NULL), 0);
    run(fx, f, &s);
    assert_int_equal(s.st.done, 1);
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_blob_folder_add(f, from, "z.txt", 1, &err), SKY_ESTATE);
    sky_blob_folder_free(f);
    memset(&s, 0, sizeof(s));
    path_in(to, sizeof(to), fx->dir, "back.txt");
    f = folder(fx, SKY_BLOB_FOLDER_DOWNLOAD, "one", "", NULL, &s);
    assert_int_equal(sky_blob_folder_add(f, to, "x/y.txt", 0, NULL), 0);
    run(fx, f, &s);
    assert_int_equal(s.st.done, 1);
    assert_int_equal(sky_blob_folder_item_at(f, 0)->size, 3000); /* learnt from the blob */
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
    sky_blob_folder_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload_a_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reupload_skips_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_download_into_an_empty_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_removed_after_plan_and_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_free_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_added_files, setup, teardown),
    };
    return sky_test_run_group(tests, group_setup, group_teardown);
}
