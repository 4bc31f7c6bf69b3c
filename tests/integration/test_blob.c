/* Blob client against a real Azurite: auth (Shared Key, SAS), every operation, transfers, errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "harness.h"
#include "harness_azurite.h"
#include "skyio/blob.h"
#include "skyio/credential.h"
#include "skyio/log.h"
#include "skyio/server.h"
#include "harness_group.h"

/* One Azurite for the whole file: starting node takes seconds. */
static sky_test_azurite g_az;

typedef struct fixture {
    uv_loop_t *loop;
    sky_http_client *http;
    sky_blob_client *blob;
    char dir[256];
} fixture;

/* What a callback saw, copied. */
typedef struct outcome {
    int done;
    int status;
    int err_code;
    int http_status;
    char service_code[SKY_ERROR_SERVICE_CODE_MAX];
    char message[SKY_ERROR_MESSAGE_MAX];
    int exists;
    char *body;
    size_t body_len;
    char names[64][128];
    int prefixes[64];
    int64_t sizes[64];
    size_t count;
    char next_marker[256];
    int64_t size;
    char md5[64];
    char meta_color[64];
    sky_blob_transfer_stats stats;
} outcome;

static void on_done(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    outcome *o = ud;
    (void)op;
    o->done++;
    o->status = rep->status;
    if (err) {
        o->err_code = err->code;
        o->http_status = err->http_status;
        snprintf(o->service_code, sizeof(o->service_code), "%s", err->service_code);
        snprintf(o->message, sizeof(o->message), "%s", err->message);
    }
    o->exists = rep->exists;
    if (rep->body.len) {
        o->body = malloc(rep->body.len);
        memcpy(o->body, rep->body.ptr, rep->body.len);
        o->body_len = rep->body.len;
    }
    if (rep->list) {
        for (size_t i = 0; i < rep->list->count && o->count < 64; i++, o->count++) {
            snprintf(o->names[o->count], sizeof(o->names[0]), "%s", rep->list->items[i].name);
            o->prefixes[o->count] = rep->list->items[i].is_prefix;
            o->sizes[o->count] = rep->list->items[i].size;
        }
        snprintf(o->next_marker, sizeof(o->next_marker), "%s",
                 rep->list->next_marker ? rep->list->next_marker : "");
    }
    if (rep->props) {
        o->size = rep->props->size;
        snprintf(o->md5, sizeof(o->md5), "%s",
                 rep->props->content_md5 ? rep->props->content_md5 : "");
        const char *c = sky_headers_get(rep->props->metadata, "color");
        snprintf(o->meta_color, sizeof(o->meta_color), "%s", c ? c : "");
    }
    if (rep->transfer)
        o->stats = *rep->transfer;
}

static void outcome_wait(fixture *f, outcome *o)
{
    assert_true(sky_test_run_until(f->loop, &o->done, 60000));
    /* Exactly once: let the loop run a little more and look again. */
    uv_run(f->loop, UV_RUN_NOWAIT);
    assert_int_equal(o->done, 1);
}

static void outcome_free(outcome *o)
{
    free(o->body);
    memset(o, 0, sizeof(*o));
}

static sky_blob_client *client_with(fixture *f, const char *key, const char *sas)
{
    sky_blob_client_options o;
    sky_blob_client_options_init(&o);
    o.endpoint = g_az.endpoint;
    o.account_name = "devstoreaccount1";
    o.account_key = key;
    o.sas = sas;
    o.retry.base_ms = 10;
    o.retry.max_retries = 2;
    sky_blob_client *c = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_blob_client_new(f->loop, f->http, &o, &c, &err), 0);
    return c;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    f->loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(f->loop, NULL, &f->http), 0);
    f->blob = client_with(f, SKY_TEST_AZURITE_KEY, NULL);
    sky_test_tmpdir(f->dir, sizeof(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sky_blob_client_free(f->blob);
    sky_http_client_free(f->http);
    sky_test_loop_free(f->loop);
    sky_test_rmdir(f->dir);
    free(f);
    return 0;
}

SKY_TEST_AZURITE_GROUP(g_az, sky_test_azurite_start)

/* ---- small helpers: run one op and wait ---- */

#define RUN(f, o, call)                                                                            \
    do {                                                                                           \
        sky_error e_;                                                                              \
        sky_error_clear(&e_);                                                                      \
        memset((o), 0, sizeof(*(o)));                                                              \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: %s", #call, e_.message);                                                 \
        outcome_wait((f), (o));                                                                    \
    } while (0)

static void make_container(fixture *f, sky_blob_client *c, const char *name)
{
    outcome o;
    RUN(f, &o, sky_blob_container_create(c, name, on_done, &o, NULL, &e_));
    if (o.err_code != 0)
        fail_msg("create %s: %s", name, o.message);
    outcome_free(&o);
}

static void put_text(fixture *f, sky_blob_client *c, const char *cont, const char *blob,
                     const char *text)
{
    outcome o;
    RUN(f, &o,
        sky_blob_put(c, cont, blob, sky_span_cstr(text), "text/plain", NULL, on_done, &o, NULL,
                     &e_));
    if (o.err_code != 0)
        fail_msg("put %s/%s: %s", cont, blob, o.message);
    outcome_free(&o);
}

/* ---- tests ---- */

static void test_container_lifecycle(void **state)
{
    fixture *f = *state;
    outcome o;
    RUN(f, &o, sky_blob_container_exists(f->blob, "life", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.exists, 0);
    make_container(f, f->blob, "life");
    RUN(f, &o, sky_blob_container_exists(f->blob, "life", on_done, &o, NULL, &e_));
    assert_int_equal(o.exists, 1);
    RUN(f, &o, sky_blob_container_create(f->blob, "life", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_int_equal(o.http_status, 409);
    assert_string_equal(o.service_code, "ContainerAlreadyExists");
    make_container(f, f->blob, "life2");
    sky_blob_list_options lo = {"life", NULL, NULL, 1};
    RUN(f, &o, sky_blob_container_list(f->blob, &lo, on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.count, 1);
    assert_string_equal(o.names[0], "life");
    assert_true(o.next_marker[0] != '\0');
    lo.marker = o.next_marker;
    outcome o2;
    RUN(f, &o2, sky_blob_container_list(f->blob, &lo, on_done, &o2, NULL, &e_));
    assert_int_equal(o2.count, 1);
    assert_string_equal(o2.names[0], "life2");
    assert_string_equal(o2.next_marker, "");
    RUN(f, &o, sky_blob_container_delete(f->blob, "life", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    RUN(f, &o, sky_blob_container_delete(f->blob, "life", on_done, &o, NULL, &e_));
    assert_int_equal(o.http_status, 404);
    assert_string_equal(o.service_code, "ContainerNotFound");
}

static void test_blob_operations(void **state)
{
    fixture *f = *state;
    outcome o;
    make_container(f, f->blob, "ops");
    put_text(f, f->blob, "ops", "dir/a b.txt", "hello blob");
    put_text(f, f->blob, "ops", "dir/sub/ü.txt", "unicode");
    put_text(f, f->blob, "ops", "top.txt", "top");
    RUN(f, &o, sky_blob_get(f->blob, "ops", "dir/a b.txt", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.body_len, 10);
    assert_memory_equal(o.body, "hello blob", 10);
    outcome_free(&o);
    /* Properties: size and the MD5 the single PUT sent. */
    RUN(f, &o, sky_blob_properties_get(f->blob, "ops", "dir/a b.txt", on_done, &o, NULL, &e_));
    assert_int_equal(o.size, 10);
    assert_string_equal(o.md5, "d7BI/EKi9fb2czjYPjWmqw=="); /* base64(md5("hello blob")) */
    sky_headers *meta = sky_headers_new();
    assert_int_equal(sky_headers_add(meta, SKY_SPAN_LIT("color"), SKY_SPAN_LIT("blue")), 0);
    RUN(f, &o, sky_blob_metadata_set(f->blob, "ops", "dir/a b.txt", meta, on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    sky_headers_free(meta);
    RUN(f, &o, sky_blob_properties_get(f->blob, "ops", "dir/a b.txt", on_done, &o, NULL, &e_));
    assert_string_equal(o.meta_color, "blue");
    /* Listing with a delimiter: one prefix and one blob at the top. */
    sky_blob_list_options lo = {NULL, "/", NULL, 0};
    RUN(f, &o, sky_blob_list(f->blob, "ops", &lo, on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.count, 2);
    assert_string_equal(o.names[0], "dir/");
    assert_int_equal(o.prefixes[0], 1);
    assert_string_equal(o.names[1], "top.txt");
    assert_int_equal(o.sizes[1], 3);
    /* With a prefix, paged one at a time. */
    sky_blob_list_options lp = {"dir/", NULL, NULL, 1};
    RUN(f, &o, sky_blob_list(f->blob, "ops", &lp, on_done, &o, NULL, &e_));
    assert_int_equal(o.count, 1);
    assert_string_equal(o.names[0], "dir/a b.txt");
    char marker[256];
    snprintf(marker, sizeof(marker), "%s", o.next_marker);
    lp.marker = marker;
    RUN(f, &o, sky_blob_list(f->blob, "ops", &lp, on_done, &o, NULL, &e_));
    assert_int_equal(o.count, 1);
    assert_string_equal(o.names[0], "dir/sub/ü.txt");
    /* Delete, then every read says BlobNotFound. */
    RUN(f, &o, sky_blob_delete(f->blob, "ops", "dir/a b.txt", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    RUN(f, &o, sky_blob_get(f->blob, "ops", "dir/a b.txt", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_int_equal(o.http_status, 404);
    assert_string_equal(o.service_code, "BlobNotFound");
    assert_non_null(strstr(o.message, "GET /devstoreaccount1/ops/dir/a%20b.txt: "));
    outcome_free(&o);
    RUN(f, &o, sky_blob_properties_get(f->blob, "ops", "dir/a b.txt", on_done, &o, NULL, &e_));
    assert_int_equal(o.http_status, 404);
    assert_string_equal(o.service_code, "BlobNotFound");
    RUN(f, &o, sky_blob_get(f->blob, "nosuchcontainer", "x", on_done, &o, NULL, &e_));
    assert_string_equal(o.service_code, "ContainerNotFound");
}

static void test_wrong_key_is_refused(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_blob_client *bad = client_with(f, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL);
    RUN(f, &o, sky_blob_container_create(bad, "neverthere", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_int_equal(o.http_status, 403);
    assert_string_equal(o.service_code, "AuthorizationFailure");
    assert_null(strstr(o.message, "AAAAAAAAAAAA"));
    sky_blob_client_free(bad);
}

static void make_sas(int account, const char *cont, const char *blob, const char *perm,
                     sky_buf *out)
{
    sky_storage_sas_options so;
    sky_storage_sas_options_init(&so);
    so.permissions = perm;
    so.expiry = (int64_t)time(NULL) + 3600;
    so.container = cont;
    so.blob = blob;
    sky_error err;
    sky_error_clear(&err);
    int rc =
        account ? sky_storage_sas_account("devstoreaccount1", SKY_TEST_AZURITE_KEY, &so, out, &err)
                : sky_storage_sas_service("devstoreaccount1", SKY_TEST_AZURITE_KEY, &so, out, &err);
    assert_int_equal(rc, 0);
}

static void test_sas_account_and_service(void **state)
{
    fixture *f = *state;
    outcome o;
    sky_buf sas;
    sky_buf_init(&sas, 4096);
    make_sas(1, NULL, NULL, "rwdlac", &sas);
    sky_blob_client *ac = client_with(f, NULL, sas.data);
    make_container(f, ac, "sasacct");
    put_text(f, ac, "sasacct", "x/y.txt", "via account sas");
    RUN(f, &o, sky_blob_get(ac, "sasacct", "x/y.txt", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.body_len, 15);
    outcome_free(&o);
    sky_blob_client_free(ac);
    /* A blob service SAS, read only: reading works, writing is refused. */
    sky_buf_reset(&sas);
    make_sas(0, "sasacct", "x/y.txt", "r", &sas);
    sky_blob_client *sc = client_with(f, NULL, sas.data);
    RUN(f, &o, sky_blob_get(sc, "sasacct", "x/y.txt", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    assert_memory_equal(o.body, "via account sas", 15);
    outcome_free(&o);
    RUN(f, &o,
        sky_blob_put(sc, "sasacct", "x/y.txt", SKY_SPAN_LIT("no"), NULL, NULL, on_done, &o, NULL,
                     &e_));
    assert_int_equal(o.http_status, 403);
    assert_string_equal(o.service_code, "AuthorizationPermissionMismatch");
    sky_blob_client_free(sc);
    /* A container SAS with list permission. */
    sky_buf_reset(&sas);
    make_sas(0, "sasacct", NULL, "rl", &sas);
    sky_blob_client *cc = client_with(f, NULL, sas.data);
    RUN(f, &o, sky_blob_list(cc, "sasacct", NULL, on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.count, 1);
    sky_blob_client_free(cc);
    /* A tampered signature is refused with its code. */
    char *sig = strstr(sas.data, "sig=");
    assert_non_null(sig);
    sig[4] = sig[4] == 'A' ? 'B' : 'A';
    sky_blob_client *tc = client_with(f, NULL, sas.data);
    RUN(f, &o, sky_blob_list(tc, "sasacct", NULL, on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_int_equal(o.http_status, 403);
    assert_string_equal(o.service_code, "AuthorizationFailure");
    assert_null(strstr(o.message, "sig="));
    sky_blob_client_free(tc);
    sky_buf_free(&sas);
}

/* ---- transfers ---- */

/* A file of @p size pseudo-random bytes; its MD5 (hex) into @p md5 when not NULL. */
static void make_file(const char *path, size_t size, uint32_t seed)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    uint32_t x = seed;
    char buf[65536];
    for (size_t done = 0; done < size;) {
        size_t n = size - done < sizeof(buf) ? size - done : sizeof(buf);
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            buf[i] = (char)(x >> 24);
        }
        assert_int_equal(fwrite(buf, 1, n, fp), n);
        done += n;
    }
    assert_int_equal(fclose(fp), 0);
}

static void file_md5(const char *path, char *hex)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
        EVP_DigestUpdate(ctx, buf, n);
    unsigned char md[16];
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    fclose(fp);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void upload(fixture *f, const char *cont, const char *blob, const char *path,
                   const sky_blob_transfer_options *to, outcome *o)
{
    RUN(f, o, sky_blob_upload_file(f->blob, cont, blob, path, to, on_done, o, NULL, &e_));
}

static void download(fixture *f, const char *cont, const char *blob, const char *path,
                     const sky_blob_transfer_options *to, outcome *o)
{
    RUN(f, o, sky_blob_download_file(f->blob, cont, blob, path, to, on_done, o, NULL, &e_));
}

static void test_multi_block_upload_and_ranged_download(void **state)
{
    fixture *f = *state;
    char src[512], dst[512], a[33], b[33];
    outcome o;
    snprintf(src, sizeof(src), "%s/big.bin", f->dir);
    snprintf(dst, sizeof(dst), "%s/big.out", f->dir);
    make_file(src, 20u * 1024 * 1024 + 12345, 7);
    make_container(f, f->blob, "big");
    sky_blob_transfer_options to;
    sky_blob_transfer_options_init(&to);
    to.block_size = 4u * 1024 * 1024;
    to.concurrency = 3;
    upload(f, "big", "data/big.bin", src, &to, &o);
    if (o.err_code)
        fail_msg("upload: %s", o.message);
    assert_int_equal(o.stats.blocks_total, 6);
    assert_int_equal(o.stats.blocks_sent, 6);
    assert_int_equal(o.stats.blocks_skipped, 0);
    assert_int_equal(o.stats.requests, 8); /* block list + 6 blocks + commit */
    assert_int_equal(o.stats.bytes_done, 20 * 1024 * 1024 + 12345);
    RUN(f, &o, sky_blob_properties_get(f->blob, "big", "data/big.bin", on_done, &o, NULL, &e_));
    assert_int_equal(o.size, 20 * 1024 * 1024 + 12345);
    to.block_size = 3u * 1024 * 1024; /* ranges need not match the blocks */
    to.concurrency = 4;
    download(f, "big", "data/big.bin", dst, &to, &o);
    if (o.err_code)
        fail_msg("download: %s", o.message);
    assert_int_equal(o.stats.blocks_total, 7);
    assert_int_equal(o.stats.blocks_sent, 7);
    assert_int_equal(o.stats.requests, 8); /* HEAD + 7 ranges */
    file_md5(src, a);
    file_md5(dst, b);
    assert_string_equal(a, b);
}

static void test_small_file_single_put(void **state)
{
    fixture *f = *state;
    char src[512], dst[512], a[33], b[33];
    outcome o;
    snprintf(src, sizeof(src), "%s/small.bin", f->dir);
    snprintf(dst, sizeof(dst), "%s/small.out", f->dir);
    make_file(src, 1000, 3);
    make_container(f, f->blob, "small");
    upload(f, "small", "s.bin", src, NULL, &o);
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.stats.requests, 1);
    assert_int_equal(o.stats.blocks_total, 1);
    RUN(f, &o, sky_blob_properties_get(f->blob, "small", "s.bin", on_done, &o, NULL, &e_));
    assert_int_equal(o.size, 1000);
    assert_true(o.md5[0] != '\0'); /* the single PUT sent Content-MD5 */
    download(f, "small", "s.bin", dst, NULL, &o);
    assert_int_equal(o.err_code, 0);
    file_md5(src, a);
    file_md5(dst, b);
    assert_string_equal(a, b);
    /* An empty file both ways. */
    make_file(src, 0, 1);
    upload(f, "small", "empty", src, NULL, &o);
    assert_int_equal(o.err_code, 0);
    download(f, "small", "empty", dst, NULL, &o);
    assert_int_equal(o.err_code, 0);
    struct stat st;
    assert_int_equal(stat(dst, &st), 0);
    assert_int_equal(st.st_size, 0);
}

static void cancel_after_two(sky_blob_op *op, const sky_blob_transfer_stats *st, void *ud)
{
    int *n = ud;
    if (st->blocks_sent >= 2 && (*n)++ == 0)
        sky_blob_op_cancel(op);
}

static void test_resume_sends_only_missing_blocks(void **state)
{
    fixture *f = *state;
    char src[512], dst[512], a[33], b[33];
    outcome o;
    int canceled = 0;
    snprintf(src, sizeof(src), "%s/resume.bin", f->dir);
    snprintf(dst, sizeof(dst), "%s/resume.out", f->dir);
    make_file(src, 8u * 1024 * 1024, 11);
    make_container(f, f->blob, "resume");
    sky_blob_transfer_options to;
    sky_blob_transfer_options_init(&to);
    to.block_size = 1024 * 1024;
    to.concurrency = 2;
    to.on_progress = cancel_after_two;
    to.progress_user_data = &canceled;
    upload(f, "resume", "r.bin", src, &to, &o);
    assert_int_equal(o.err_code, SKY_ECANCELED);
    uint32_t first = o.stats.blocks_sent;
    assert_true(first >= 2 && first < 8);
    /* Nothing committed yet. */
    RUN(f, &o, sky_blob_properties_get(f->blob, "resume", "r.bin", on_done, &o, NULL, &e_));
    assert_string_equal(o.service_code, "BlobNotFound");
    to.on_progress = NULL;
    upload(f, "resume", "r.bin", src, &to, &o);
    if (o.err_code)
        fail_msg("resume: %s", o.message);
    assert_true(o.stats.blocks_skipped >= first);
    assert_int_equal(o.stats.blocks_sent + o.stats.blocks_skipped, 8);
    assert_int_equal(o.stats.requests, o.stats.blocks_sent + 2);
    assert_int_equal(o.stats.bytes_done, 8 * 1024 * 1024);
    download(f, "resume", "r.bin", dst, NULL, &o);
    assert_int_equal(o.err_code, 0);
    file_md5(src, a);
    file_md5(dst, b);
    assert_string_equal(a, b);
    /* A third run finds every block committed and only commits again. */
    upload(f, "resume", "r.bin", src, &to, &o);
    assert_int_equal(o.err_code, 0);
    assert_int_equal(o.stats.blocks_skipped, 8);
    assert_int_equal(o.stats.requests, 2);
}

/* Appends to the file being uploaded, once, after its first block. */
static void grow_file(sky_blob_op *op, const sky_blob_transfer_stats *st, void *ud)
{
    const char *path = ud;
    (void)op;
    if (st->blocks_sent == 1) {
        FILE *fp = fopen(path, "ab");
        assert_non_null(fp);
        fputc('!', fp);
        fclose(fp);
    }
}

static void test_file_changed_during_upload(void **state)
{
    fixture *f = *state;
    char src[512];
    outcome o;
    snprintf(src, sizeof(src), "%s/grow.bin", f->dir);
    make_file(src, 3u * 1024 * 1024, 4);
    make_container(f, f->blob, "grow");
    sky_blob_transfer_options to;
    sky_blob_transfer_options_init(&to);
    to.block_size = 1024 * 1024;
    to.concurrency = 1;
    to.on_progress = grow_file;
    to.progress_user_data = src;
    upload(f, "grow", "g.bin", src, &to, &o);
    assert_int_equal(o.err_code, SKY_EIO);
    assert_non_null(strstr(o.message, "changed"));
    RUN(f, &o, sky_blob_properties_get(f->blob, "grow", "g.bin", on_done, &o, NULL, &e_));
    assert_string_equal(o.service_code, "BlobNotFound");
    /* A small single put is read at once, between two stats that must agree: what it
     * sends is the file as it was then, and a change after that (here, once the PUT is
     * done) is a later version, not a torn one. */
    make_file(src, 100 * 1024, 4);
    sky_blob_transfer_options_init(&to);
    to.on_progress = grow_file;
    to.progress_user_data = src;
    upload(f, "grow", "s.bin", src, &to, &o);
    assert_int_equal(o.stats.blocks_total, 1);
    assert_int_equal(o.err_code, 0);
    RUN(f, &o, sky_blob_properties_get(f->blob, "grow", "s.bin", on_done, &o, NULL, &e_));
    assert_int_equal(o.size, 100 * 1024);
    /* A bigger single put streams from the file over time, and is checked after. */
    make_file(src, 700 * 1024, 4);
    sky_blob_transfer_options_init(&to);
    to.block_size = 1024 * 1024;
    to.on_progress = grow_file;
    to.progress_user_data = src;
    upload(f, "grow", "m.bin", src, &to, &o);
    assert_int_equal(o.stats.blocks_total, 1);
    assert_int_equal(o.err_code, SKY_EIO);
    assert_non_null(strstr(o.message, "changed"));
}

static void test_transfer_errors(void **state)
{
    fixture *f = *state;
    char src[512], dst[512];
    outcome o;
    snprintf(src, sizeof(src), "%s/none", f->dir);
    snprintf(dst, sizeof(dst), "%s/out", f->dir);
    upload(f, "errs", "x", src, NULL, &o);
    assert_int_equal(o.err_code, SKY_EIO);
    make_file(src, 100, 1);
    upload(f, "nosuchcontainer", "x", src, NULL, &o);
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_string_equal(o.service_code, "ContainerNotFound");
    make_container(f, f->blob, "errs");
    download(f, "errs", "missing", dst, NULL, &o);
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_int_equal(o.http_status, 404);
    struct stat st;
    assert_int_not_equal(stat(dst, &st), 0);
    /* A bad name is refused at once, and the callback never runs. */
    sky_error err;
    sky_error_clear(&err);
    memset(&o, 0, sizeof(o));
    assert_int_equal(sky_blob_upload_file(f->blob, "errs", "", src, NULL, on_done, &o, NULL, &err),
                     SKY_EINVAL);
    uv_run(f->loop, UV_RUN_NOWAIT);
    assert_int_equal(o.done, 0);
}

static void test_free_client_cancels(void **state)
{
    fixture *f = *state;
    char src[512];
    outcome o;
    snprintf(src, sizeof(src), "%s/c.bin", f->dir);
    make_file(src, 4u * 1024 * 1024, 5);
    make_container(f, f->blob, "cancel");
    sky_blob_transfer_options to;
    sky_blob_transfer_options_init(&to);
    to.block_size = 512 * 1024;
    memset(&o, 0, sizeof(o));
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(
        sky_blob_upload_file(f->blob, "cancel", "c", src, &to, on_done, &o, NULL, &err), 0);
    sky_blob_client_free(f->blob);
    f->blob = NULL;
    outcome_wait(f, &o); /* asserts the callback ran exactly once */
    assert_int_equal(o.err_code, SKY_ECANCELED);
    /* Nothing was committed: the blob does not exist. */
    f->blob = client_with(f, SKY_TEST_AZURITE_KEY, NULL);
    RUN(f, &o, sky_blob_properties_get(f->blob, "cancel", "c", on_done, &o, NULL, &e_));
    assert_int_equal(o.http_status, 404);
}

/* A put of a few MiB hashes in the thread pool and still sends the right Content-MD5. */
static void test_large_put_md5(void **state)
{
    fixture *f = *state;
    size_t len = 3u * 1024 * 1024 + 7;
    char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 31u + (i >> 11));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char want[32];
    EVP_Digest(data, len, md, &n, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)want, md, (int)n);
    make_container(f, f->blob, "bigput");
    outcome o;
    RUN(f, &o,
        sky_blob_put(f->blob, "bigput", "p", sky_span_make(data, len), NULL, NULL, on_done, &o,
                     NULL, &e_));
    if (o.err_code)
        fail_msg("put: %s", o.message);
    RUN(f, &o, sky_blob_properties_get(f->blob, "bigput", "p", on_done, &o, NULL, &e_));
    assert_int_equal(o.size, (int64_t)len);
    assert_string_equal(o.md5, want);
    /* Cancelled while hashing: the callback runs once, canceled, and nothing is written. */
    sky_blob_op *op = NULL;
    sky_error err;
    sky_error_clear(&err);
    memset(&o, 0, sizeof(o));
    assert_int_equal(sky_blob_put(f->blob, "bigput", "q", sky_span_make(data, len), NULL, NULL,
                                  on_done, &o, &op, &err),
                     0);
    free(data); /* the put holds its own copy */
    sky_blob_op_cancel(op);
    outcome_wait(f, &o);
    assert_int_equal(o.err_code, SKY_ECANCELED);
    RUN(f, &o, sky_blob_properties_get(f->blob, "bigput", "q", on_done, &o, NULL, &e_));
    assert_int_equal(o.http_status, 404);
}

static char *read_all(const char *path, size_t *len);

/* base64 MD5 of the file at @p path */
static void file_md5_b64(const char *path, char *out)
{
    size_t len;
    char *data = read_all(path, &len);
    unsigned char md[16];
    EVP_Digest(data, len, md, NULL, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 16);
    free(data);
}

/*
 * store_md5: the blob ends up with the file's MD5 without the caller hashing anything,
 * for a block upload (hashed alongside the blocks, stored at the commit) and for a
 * single put streamed from the file, with or without per-block MD5s.
 */
static void test_upload_stores_file_md5(void **state)
{
    fixture *f = *state;
    char src[512], want[32];
    outcome o;
    snprintf(src, sizeof(src), "%s/store.bin", f->dir);
    make_container(f, f->blob, "store");
    const size_t sizes[] = {5u * 1024 * 1024 + 3, 900 * 1024};
    for (int i = 0; i < 4; i++) {
        make_file(src, sizes[i / 2], 30 + (uint32_t)i);
        file_md5_b64(src, want);
        sky_blob_transfer_options to;
        sky_blob_transfer_options_init(&to);
        to.block_size = 2u * 1024 * 1024;
        to.store_md5 = 1;
        to.no_block_md5 = i % 2;
        upload(f, "store", "s.bin", src, &to, &o);
        if (o.err_code)
            fail_msg("case %d: %s", i, o.message);
        assert_int_equal(o.stats.blocks_total, i < 2 ? 3 : 1);
        RUN(f, &o, sky_blob_properties_get(f->blob, "store", "s.bin", on_done, &o, NULL, &e_));
        assert_string_equal(o.md5, want);
    }
}

static void read_text(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* A failed download leaves the file that was there; a symlink at the path is not followed. */
static void test_failed_download_keeps_file(void **state)
{
    fixture *f = *state;
    char src[512], dst[512], part[600], link[512], outside[512], buf[64], a[33], b[33];
    outcome o;
    snprintf(src, sizeof(src), "%s/k.bin", f->dir);
    snprintf(dst, sizeof(dst), "%s/k.out", f->dir);
    snprintf(part, sizeof(part), "%s.skyio-partial", dst);
    make_file(src, 2u * 1024 * 1024, 9);
    make_container(f, f->blob, "keep");
    upload(f, "keep", "k", src, NULL, &o);
    assert_int_equal(o.err_code, 0);
    write_text(dst, "keep me");
    download(f, "keep", "missing", dst, NULL, &o);
    assert_int_equal(o.http_status, 404);
    read_text(dst, buf, sizeof(buf));
    assert_string_equal(buf, "keep me");
    /* Cancelled after two ranges were written. */
    sky_blob_transfer_options to;
    sky_blob_transfer_options_init(&to);
    to.block_size = 128 * 1024;
    to.concurrency = 1;
    int canceled = 0;
    to.on_progress = cancel_after_two;
    to.progress_user_data = &canceled;
    write_text(part, "stale"); /* a crashed run's leftover does not block the next one */
    download(f, "keep", "k", dst, &to, &o);
    assert_int_equal(o.err_code, SKY_ECANCELED);
    read_text(dst, buf, sizeof(buf));
    assert_string_equal(buf, "keep me");
    struct stat st;
    assert_int_not_equal(lstat(part, &st), 0);
    /* A symlink at the path is replaced, never written through. */
    snprintf(link, sizeof(link), "%s/link.out", f->dir);
    snprintf(outside, sizeof(outside), "%s/outside.txt", f->dir);
    write_text(outside, "outside");
    assert_int_equal(symlink(outside, link), 0);
    download(f, "keep", "k", link, NULL, &o);
    assert_int_equal(o.err_code, 0);
    read_text(outside, buf, sizeof(buf));
    assert_string_equal(buf, "outside");
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    file_md5(src, a);
    file_md5(link, b);
    assert_string_equal(a, b);
    /* Success replaces the old file whole. */
    download(f, "keep", "k", dst, NULL, &o);
    assert_int_equal(o.err_code, 0);
    file_md5(dst, b);
    assert_string_equal(a, b);
}

/*
 * The account a command line names: a connection string alone decides; else its parts
 * (the endpoint defaulting to the public cloud's for the name); else the environment's
 * connection string; nothing: SKY_ENOTFOUND. A SAS with neither name nor endpoint, or a
 * bad key, is refused with the reason and never the secret.
 */
static void test_account_resolve(void **state)
{
    sky_storage_account_options ao;
    sky_storage_account *a = NULL;
    sky_error e;
    (void)state;
    sky_error_clear(&e);
    sky_storage_account_options_init(&ao);
    ao.connection_string = "UseDevelopmentStorage=true";
    ao.account_name = "ignored";
    assert_int_equal(sky_storage_account_resolve(&ao, &a, &e), 0);
    assert_string_equal(a->account_name, SKY_STORAGE_DEV_ACCOUNT);
    assert_string_equal(a->blob_endpoint, SKY_STORAGE_DEV_BLOB_ENDPOINT);
    sky_storage_account_free(a);
    sky_storage_account_options_init(&ao);
    ao.account_name = "acct1";
    ao.sas = "?sv=1&sig=secret";
    assert_int_equal(sky_storage_account_resolve(&ao, &a, &e), 0);
    assert_string_equal(a->blob_endpoint, "https://acct1.blob.core.windows.net");
    assert_string_equal(a->sas, "sv=1&sig=secret");
    sky_storage_account_free(a);
    ao.account_name = NULL;
    assert_int_equal(sky_storage_account_resolve(&ao, &a, &e), SKY_EINVAL);
    assert_null(a);
    assert_null(strstr(e.message, "secret"));
    sky_error_clear(&e);
    ao.sas = NULL;
    ao.blob_endpoint = "http://127.0.0.1:10000/devstoreaccount1/";
    ao.account_name = SKY_STORAGE_DEV_ACCOUNT;
    ao.account_key = "not base64!";
    assert_int_equal(sky_storage_account_resolve(&ao, &a, &e), SKY_EINVAL);
    assert_null(strstr(e.message, "not base64!"));
    sky_error_clear(&e);
    ao.account_key = SKY_TEST_AZURITE_KEY;
    assert_int_equal(sky_storage_account_resolve(&ao, &a, &e), 0);
    assert_string_equal(a->blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
    sky_storage_account_free(a);
    sky_storage_account_options_init(&ao);
    ao.account_key = SKY_TEST_AZURITE_KEY; /* a key alone names no account */
    setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true", 1);
    assert_int_equal(sky_storage_account_resolve(&ao, &a, &e), 0);
    assert_string_equal(a->account_name, SKY_STORAGE_DEV_ACCOUNT);
    sky_storage_account_free(a);
    unsetenv("AZURE_STORAGE_CONNECTION_STRING");
    assert_int_equal(sky_storage_account_resolve(&ao, &a, &e), SKY_ENOTFOUND);
    assert_null(a);
}

/* ---- faults from an in-process server: retries, error codes, bearer auth ---- */

typedef struct script {
    int fail_left;   /* answer this many requests with fail_status */
    int fail_status; /* e.g. 503 */
    const char *fail_code;
    int ok_status;
    int count;
    char auth[4][256]; /* Authorization of the first requests */
    /* uploads: Put Block bodies checked against their Content-MD5 and kept as MD5s */
    int block_fail_left; /* answer 503 after a whole block body, this many times */
    int blocks_ok, md5_sent, md5_bad;
    char block_md5[8][33]; /* hex MD5 of each accepted block */
    /* downloads: a blob served from memory (HEAD its size, GET its ranges) */
    const char *data;
    size_t data_len;
    const char *data_md5; /* HEAD's Content-MD5, when set */
    int cut_left;         /* cut this many range bodies off halfway */
    int gets;
} script;

static void md5_hex(const void *p, size_t n, char *hex, char *b64)
{
    unsigned char md[16];
    EVP_Digest(p, n, md, NULL, EVP_md5(), NULL);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (b64)
        EVP_EncodeBlock((unsigned char *)b64, md, 16);
}

static void put_block(script *sc, sky_server_req *req)
{
    sky_span body = sky_server_req_body(req), sent = {0};
    char hex[33], b64[32];
    md5_hex(body.ptr, body.len, hex, b64);
    if (sky_server_req_header(req, "Content-MD5", &sent)) {
        sc->md5_sent++;
        sc->md5_bad += sent.len != strlen(b64) || memcmp(sent.ptr, b64, sent.len) != 0;
    }
    if (sc->block_fail_left > 0) {
        sc->block_fail_left--;
        sky_server_respond(req, 503, "application/xml",
                           SKY_SPAN_LIT("<Error><Code>ServerBusy</Code></Error>"));
        return;
    }
    if (sc->blocks_ok < 8)
        memcpy(sc->block_md5[sc->blocks_ok], hex, sizeof(hex));
    sc->blocks_ok++;
    sky_server_respond(req, 201, "text/plain", SKY_SPAN_LIT(""));
}

/* A ranged GET of sc->data; the first cut_left answers stop halfway through. */
static void get_range(script *sc, sky_server_req *req)
{
    sky_span range = {0};
    long long a = 0, b = (long long)sc->data_len - 1;
    char spec[64] = "";
    if (sky_server_req_header(req, "x-ms-range", &range))
        snprintf(spec, sizeof(spec), "%.*s", (int)range.len, range.ptr);
    if (spec[0] && sscanf(spec, "bytes=%lld-%lld", &a, &b) != 2)
        fail_msg("bad range %s", spec);
    sc->gets++;
    sky_span part = sky_span_make(sc->data + a, (size_t)(b - a + 1));
    if (sc->cut_left > 0) {
        sc->cut_left--;
        sky_server_stream_start(req, 206, "application/octet-stream", (int64_t)part.len);
        (void)sky_server_stream_write(req, sky_span_make(part.ptr, part.len / 2), 0);
        sky_server_abort(req);
        return;
    }
    sky_server_respond(req, 206, "application/octet-stream", part);
}

static void fault_handler(sky_server_req *req, void *ud)
{
    script *sc = ud;
    sky_span auth = {0};
    if (sky_server_req_header(req, "Authorization", &auth) && sc->count < 4)
        snprintf(sc->auth[sc->count], sizeof(sc->auth[0]), "%.*s", (int)auth.len, auth.ptr);
    sc->count++;
    sky_span method = sky_server_req_method(req), query = sky_server_req_query(req);
    int is_put = method.len == 3 && memcmp(method.ptr, "PUT", 3) == 0;
    if (is_put && query.len >= 11 && memcmp(query.ptr, "comp=block&", 11) == 0) {
        put_block(sc, req);
        return;
    }
    if (sc->data && method.len == 4 && memcmp(method.ptr, "HEAD", 4) == 0) {
        sky_server_add_header(req, "ETag", SKY_SPAN_LIT("\"e1\""));
        if (sc->data_md5)
            sky_server_add_header(req, "Content-MD5", sky_span_cstr(sc->data_md5));
        sky_server_respond(req, 200, "application/octet-stream",
                           sky_span_make(sc->data, sc->data_len));
        return;
    }
    if (sc->data && method.len == 3 && memcmp(method.ptr, "GET", 3) == 0) {
        get_range(sc, req);
        return;
    }
    if (sc->fail_left > 0) {
        sc->fail_left--;
        char xml[256];
        snprintf(xml, sizeof(xml),
                 "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code>"
                 "<Message>simulated\nRequestId:1</Message></Error>",
                 sc->fail_code);
        sky_server_add_header(req, "x-ms-error-code", sky_span_cstr(sc->fail_code));
        sky_server_respond(req, sc->fail_status, "application/xml", sky_span_cstr(xml));
        return;
    }
    sky_server_respond(req, sc->ok_status, "text/plain", SKY_SPAN_LIT(""));
}

typedef struct fault_fixture {
    uv_loop_t *loop;
    sky_http_client *http;
    sky_server *server;
    script sc;
    char endpoint[128];
} fault_fixture;

static int fault_setup(void **state)
{
    fault_fixture *ff = calloc(1, sizeof(*ff));
    ff->loop = sky_test_loop_new();
    assert_int_equal(sky_http_client_new(ff->loop, NULL, &ff->http), 0);
    sky_server_options so;
    sky_server_options_init(&so);
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_server_new(ff->loop, &so, &ff->server, &err), 0);
    assert_int_equal(sky_server_route(ff->server, NULL, "/", 1, fault_handler, &ff->sc), 0);
    assert_int_equal(sky_server_listen(ff->server, &err), 0);
    snprintf(ff->endpoint, sizeof(ff->endpoint), "http://127.0.0.1:%d/acct",
             sky_server_port(ff->server));
    ff->sc.ok_status = 201;
    *state = ff;
    return 0;
}

static void on_shutdown(sky_server *s, void *ud)
{
    (void)s;
    *(int *)ud = 1;
}

static int fault_teardown(void **state)
{
    fault_fixture *ff = *state;
    int down = 0;
    sky_http_client_free(ff->http);
    sky_server_shutdown(ff->server, 0, on_shutdown, &down);
    sky_test_run_until(ff->loop, &down, 5000);
    sky_server_free(ff->server);
    sky_test_loop_free(ff->loop);
    free(ff);
    return 0;
}

static sky_blob_client *fault_client(fault_fixture *ff, const char *key, sky_credential *cred)
{
    sky_blob_client_options o;
    sky_blob_client_options_init(&o);
    o.endpoint = ff->endpoint;
    o.account_name = "acct";
    o.account_key = key;
    o.credential = cred;
    o.retry.base_ms = 5;
    o.retry.cap_ms = 20;
    o.retry.max_retries = 3;
    sky_blob_client *c = NULL;
    assert_int_equal(sky_blob_client_new(ff->loop, ff->http, &o, &c, NULL), 0);
    return c;
}

/* Upload @p path to c/b (@p up), or download c/b to @p path, with @p to: start it and run
 * until its callback (20 s at most). */
static void fault_transfer(fault_fixture *ff, sky_blob_client *c, int up, const char *path,
                           const sky_blob_transfer_options *to, outcome *o)
{
    sky_error e;
    sky_error_clear(&e);
    memset(o, 0, sizeof(*o));
    int rc = up ? sky_blob_upload_file(c, "c", "b", path, to, on_done, o, NULL, &e)
                : sky_blob_download_file(c, "c", "b", path, to, on_done, o, NULL, &e);
    assert_int_equal(rc, 0);
    assert_true(sky_test_run_until(ff->loop, &o->done, 20000));
}

static void fault_run(fault_fixture *ff, sky_blob_client *c, outcome *o)
{
    memset(o, 0, sizeof(*o));
    sky_error e;
    sky_error_clear(&e);
    assert_int_equal(sky_blob_container_create(c, "c", on_done, o, NULL, &e), 0);
    assert_true(sky_test_run_until(ff->loop, &o->done, 20000));
    assert_int_equal(o->done, 1);
}

static void test_server_busy_is_retried(void **state)
{
    fault_fixture *ff = *state;
    outcome o;
    sky_blob_client *c = fault_client(ff, SKY_TEST_AZURITE_KEY, NULL);
    ff->sc.fail_left = 2;
    ff->sc.fail_status = 503;
    ff->sc.fail_code = "ServerBusy";
    fault_run(ff, c, &o);
    assert_int_equal(o.err_code, 0);
    assert_int_equal(ff->sc.count, 3);
    assert_int_equal(strncmp(ff->sc.auth[0], "SharedKey acct:", 15), 0);
    /* OperationTimedOut forever: 1 + 3 retries, then its code and message. */
    ff->sc.count = 0;
    ff->sc.fail_left = 100;
    ff->sc.fail_status = 500;
    ff->sc.fail_code = "OperationTimedOut";
    fault_run(ff, c, &o);
    assert_int_equal(o.err_code, SKY_EHTTP);
    assert_int_equal(o.http_status, 500);
    assert_string_equal(o.service_code, "OperationTimedOut");
    assert_non_null(strstr(o.message, "simulated"));
    assert_null(strstr(o.message, "RequestId"));
    assert_int_equal(ff->sc.count, 4);
    /* A 409 is final at once. */
    ff->sc.count = 0;
    ff->sc.fail_left = 100;
    ff->sc.fail_status = 409;
    ff->sc.fail_code = "ContainerAlreadyExists";
    fault_run(ff, c, &o);
    assert_string_equal(o.service_code, "ContainerAlreadyExists");
    assert_int_equal(ff->sc.count, 1);
    sky_blob_client_free(c);
}

/* The MD5s (hex) of the pieces of @p data cut at @p block. */
static size_t slice_md5s(const char *data, size_t len, size_t block, char out[][33])
{
    size_t n = 0;
    for (size_t off = 0; off < len; off += block, n++)
        md5_hex(data + off, len - off < block ? len - off : block, out[n], NULL);
    return n;
}

static int has_md5(const script *sc, const char *hex)
{
    for (int i = 0; i < sc->blocks_ok && i < 8; i++)
        if (strcmp(sc->block_md5[i], hex) == 0)
            return 1;
    return 0;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    rewind(fp);
    char *p = malloc(*len ? *len : 1);
    assert_int_equal(fread(p, 1, *len, fp), *len);
    fclose(fp);
    return p;
}

/*
 * Blocks bigger than the upload's buffer stream from the file; a block refused after its
 * whole body (503) is sent again from its first byte. Each accepted body is exactly its
 * slice of the file, with a matching Content-MD5, or with none under no_block_md5.
 */
static void test_streamed_blocks_retried_whole(void **state)
{
    fault_fixture *ff = *state;
    char dir[] = "/tmp/skyio-stream-XXXXXX", src[256], want[4][33];
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof(src), "%s/f.bin", dir);
    const size_t block = 1536u * 1024, size = 2 * block + 100;
    make_file(src, size, 21);
    size_t len;
    char *data = read_all(src, &len);
    assert_int_equal(slice_md5s(data, len, block, want), 3);
    sky_blob_client *c = fault_client(ff, SKY_TEST_AZURITE_KEY, NULL);
    for (int pass = 0; pass < 2; pass++) {
        sky_blob_transfer_options to;
        sky_blob_transfer_options_init(&to);
        to.block_size = block;
        to.concurrency = 2;
        to.no_block_md5 = pass == 1;
        memset(&ff->sc, 0, sizeof(ff->sc));
        ff->sc.ok_status = 201;
        ff->sc.block_fail_left = 2;
        outcome o;
        fault_transfer(ff, c, 1, src, &to, &o);
        if (o.err_code)
            fail_msg("pass %d: %s", pass, o.message);
        assert_int_equal(o.stats.blocks_sent, 3);
        assert_int_equal(o.stats.retries, 2);
        assert_int_equal(ff->sc.blocks_ok, 3);
        for (int i = 0; i < 3; i++)
            assert_true(has_md5(&ff->sc, want[i]));
        assert_int_equal(ff->sc.md5_sent, pass == 0 ? 5 : 0); /* 3 blocks + 2 resent */
        assert_int_equal(ff->sc.md5_bad, 0);
    }
    sky_blob_client_free(c);
    free(data);
    unlink(src);
    rmdir(dir);
}

/*
 * Every Blob request goes through the client's pipeline: blocks refused busy (503
 * ServerBusy) are sent again by its retry policy, and every attempt, retries included, is
 * admitted by its rate limiter, which holds them to the rate given (10 a second).
 */
static void test_blocks_retried_and_paced_by_pipeline(void **state)
{
    fault_fixture *ff = *state;
    char dir[] = "/tmp/skyio-paced-XXXXXX", src[256];
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof(src), "%s/f.bin", dir);
    const size_t block = 64u * 1024;
    make_file(src, 6 * block, 5);
    sky_blob_client_options co;
    sky_blob_client_options_init(&co);
    co.endpoint = ff->endpoint;
    co.account_name = "acct";
    co.account_key = SKY_TEST_AZURITE_KEY;
    co.retry.base_ms = 5;
    co.retry.cap_ms = 20;
    co.retry.max_retries = 3;
    co.pipeline.rate.rpm = 600;
    co.pipeline.rate.burst_seconds = 0.1;
    sky_blob_client *c = NULL;
    assert_int_equal(sky_blob_client_new(ff->loop, ff->http, &co, &c, NULL), 0);
    memset(&ff->sc, 0, sizeof(ff->sc));
    ff->sc.ok_status = 201;
    ff->sc.block_fail_left = 2;
    sky_blob_transfer_options to;
    sky_blob_transfer_options_init(&to);
    to.block_size = block;
    to.concurrency = 3;
    outcome o;
    memset(&o, 0, sizeof(o));
    sky_error e;
    sky_error_clear(&e);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(sky_blob_upload_file(c, "c", "b", src, &to, on_done, &o, NULL, &e), 0);
    assert_true(sky_test_run_until(ff->loop, &o.done, 20000));
    uint64_t took_ms = (uv_hrtime() - t0) / 1000000u;
    if (o.err_code)
        fail_msg("upload: %s", o.message);
    assert_int_equal(o.stats.blocks_sent, 6);
    assert_int_equal(o.stats.retries, 2);
    assert_int_equal(ff->sc.blocks_ok, 6);
    /* block list + 6 blocks + 2 sent again + commit, each let through by the limiter */
    sky_ratelimit_stats rs;
    sky_ratelimit_get_stats(sky_pipeline_rate_limiter(sky_blob_client_pipeline(c)), &rs);
    assert_int_equal(ff->sc.count, 10);
    assert_int_equal(o.stats.requests, 10);
    assert_int_equal(rs.granted, 10);
    assert_true(rs.wait_ms > 0);
    assert_true(took_ms >= 700); /* 10 a second, and a burst of one */
    sky_blob_client_free(c);
    unlink(src);
    rmdir(dir);
}

/*
 * Ranges stream into the file as they arrive; a range cut off halfway is fetched again
 * from its start, and the file still ends up byte for byte the blob.
 */
static void test_download_range_cut_and_retried(void **state)
{
    fault_fixture *ff = *state;
    char dir[] = "/tmp/skyio-dl-XXXXXX", src[256], dst[256], a[33], b[33];
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof(src), "%s/src.bin", dir);
    snprintf(dst, sizeof(dst), "%s/dst.bin", dir);
    make_file(src, 3u * 1024 * 1024 + 333, 17);
    size_t len;
    char *data = read_all(src, &len);
    memset(&ff->sc, 0, sizeof(ff->sc));
    ff->sc.data = data;
    ff->sc.data_len = len;
    ff->sc.cut_left = 2;
    sky_blob_client *c = fault_client(ff, SKY_TEST_AZURITE_KEY, NULL);
    sky_blob_transfer_options to;
    sky_blob_transfer_options_init(&to);
    to.block_size = 1024u * 1024;
    to.concurrency = 2;
    outcome o;
    fault_transfer(ff, c, 0, dst, &to, &o);
    if (o.err_code)
        fail_msg("download: %s", o.message);
    assert_int_equal(o.stats.blocks_sent, 4);
    assert_int_equal(o.stats.retries, 2);
    assert_int_equal(ff->sc.gets, 6); /* 4 ranges + 2 cut off */
    file_md5(src, a);
    file_md5(dst, b);
    assert_string_equal(a, b);
    sky_blob_client_free(c);
    free(data);
    unlink(src);
    unlink(dst);
    rmdir(dir);
}

/*
 * verify_md5: the file is kept only when it matches the blob's Content-MD5; a mismatch
 * (here a blob whose stored MD5 is wrong) leaves no file and says why. Without the
 * option, or with no MD5 on the blob, nothing is checked.
 */
static void test_download_verifies_md5(void **state)
{
    fault_fixture *ff = *state;
    char dir[] = "/tmp/skyio-md5-XXXXXX", dst[256], hex[33], good[32];
    assert_non_null(mkdtemp(dir));
    snprintf(dst, sizeof(dst), "%s/dst.bin", dir);
    static char data[300000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7 + 3);
    md5_hex(data, sizeof(data), hex, good);
    sky_blob_client *c = fault_client(ff, SKY_TEST_AZURITE_KEY, NULL);
    const char *md5s[] = {good, "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAA==", NULL};
    const int verify[] = {1, 1, 0, 1}, fails[] = {0, 1, 0, 0};
    for (int i = 0; i < 4; i++) {
        memset(&ff->sc, 0, sizeof(ff->sc));
        ff->sc.data = data;
        ff->sc.data_len = sizeof(data);
        ff->sc.data_md5 = md5s[i];
        sky_blob_transfer_options to;
        sky_blob_transfer_options_init(&to);
        to.block_size = 100000;
        to.verify_md5 = verify[i];
        unlink(dst);
        outcome o;
        fault_transfer(ff, c, 0, dst, &to, &o);
        if (fails[i]) {
            assert_int_equal(o.err_code, SKY_EIO);
            assert_non_null(strstr(o.message, "do not match the blob's Content-MD5"));
            assert_int_not_equal(access(dst, F_OK), 0);
        } else {
            if (o.err_code)
                fail_msg("case %d: %s", i, o.message);
            assert_int_equal(access(dst, F_OK), 0);
        }
    }
    sky_blob_client_free(c);
    unlink(dst);
    rmdir(dir);
}

static void test_bearer_credential_and_refresh(void **state)
{
    fault_fixture *ff = *state;
    outcome o;
    sky_credential *cred = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_credential_static_new(ff->loop, "tok-123", 0, &cred, &err), 0);
    sky_blob_client *c = fault_client(ff, NULL, cred);
    ff->sc.fail_left = 1;
    ff->sc.fail_status = 401;
    ff->sc.fail_code = "InvalidAuthenticationInfo";
    fault_run(ff, c, &o);
    assert_int_equal(o.err_code, 0);
    assert_int_equal(ff->sc.count, 2);
    assert_string_equal(ff->sc.auth[0], "Bearer tok-123");
    assert_string_equal(ff->sc.auth[1], "Bearer tok-123");
    sky_blob_client_free(c);
    sky_credential_free(cred);
}

/* A client of @p f's loop on @p endpoint, retrying quickly. */
static sky_blob_client *client_on(fixture *f, const char *endpoint, int retry_unreached)
{
    sky_blob_client_options o;
    sky_blob_client_options_init(&o);
    o.endpoint = endpoint;
    o.account_name = "devstoreaccount1";
    o.account_key = SKY_TEST_AZURITE_KEY;
    o.retry.base_ms = 5;
    o.retry.cap_ms = 20;
    o.retry.max_retries = 2;
    o.retry_unreached = retry_unreached;
    sky_blob_client *c = NULL;
    assert_int_equal(sky_blob_client_new(f->loop, f->http, &o, &c, NULL), 0);
    return c;
}

static void download_with(fixture *f, sky_blob_client *c, const char *dst, outcome *o)
{
    sky_error e;
    sky_error_clear(&e);
    memset(o, 0, sizeof(*o));
    assert_int_equal(sky_blob_download_file(c, "cont", "x.bin", dst, NULL, on_done, o, NULL, &e),
                     0);
    outcome_wait(f, o);
}

/*
 * A connection refused by an endpoint that has never answered is final at once (a wrong URL
 * is not an outage); with retry_unreached, or once the endpoint has answered, it is retried.
 */
static void test_never_reached_is_not_retried(void **state)
{
    fixture *f = *state;
    char dst[512];
    outcome o;
    snprintf(dst, sizeof(dst), "%s/x.bin", f->dir);
    sky_blob_client *c = client_on(f, "http://127.0.0.1:1/devstoreaccount1", 0);
    download_with(f, c, dst, &o);
    assert_int_equal(o.err_code, SKY_ECONNECT);
    assert_int_equal(o.stats.requests, 1);
    assert_int_equal(o.stats.retries, 0);
    assert_int_equal(sky_blob_client_answered(c), 0);
    sky_blob_client_free(c);
    c = client_on(f, "http://127.0.0.1:1/devstoreaccount1", 1);
    download_with(f, c, dst, &o);
    assert_int_equal(o.err_code, SKY_ECONNECT);
    assert_int_equal(o.stats.retries, 2);
    sky_blob_client_free(c);
    /* An endpoint that answered once, then went away: an outage, retried. */
    script sc;
    memset(&sc, 0, sizeof(sc));
    sc.ok_status = 201;
    sky_server_options so;
    sky_server_options_init(&so);
    sky_server *server = NULL;
    char ep[128];
    assert_int_equal(sky_server_new(f->loop, &so, &server, NULL), 0);
    assert_int_equal(sky_server_route(server, NULL, "/", 1, fault_handler, &sc), 0);
    assert_int_equal(sky_server_listen(server, NULL), 0);
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d/devstoreaccount1", sky_server_port(server));
    c = client_on(f, ep, 0);
    memset(&o, 0, sizeof(o));
    RUN(f, &o, sky_blob_container_create(c, "cont", on_done, &o, NULL, &e_));
    assert_int_equal(o.err_code, 0);
    assert_int_equal(sky_blob_client_answered(c), 1);
    int down = 0;
    sky_server_shutdown(server, 0, on_shutdown, &down);
    assert_true(sky_test_run_until(f->loop, &down, 5000));
    sky_server_free(server);
    download_with(f, c, dst, &o);
    assert_int_not_equal(o.err_code, 0);
    assert_int_equal(o.stats.retries, 2);
    sky_blob_client_free(c);
    struct stat st;
    assert_int_not_equal(stat(dst, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_resolve),
        cmocka_unit_test_setup_teardown(test_container_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sas_account_and_service, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_block_upload_and_ranged_download, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_small_file_single_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_sends_only_missing_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_changed_during_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_client_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_put_md5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_stores_file_md5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_download_keeps_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_reached_is_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_busy_is_retried, fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_streamed_blocks_retried_whole, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_blocks_retried_and_paced_by_pipeline, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_download_range_cut_and_retried, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_download_verifies_md5, fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_bearer_credential_and_refresh, fault_setup,
                                        fault_teardown),
    };
    return sky_test_run_group(tests, group_setup, group_teardown);
}
