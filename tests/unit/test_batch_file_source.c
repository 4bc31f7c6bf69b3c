/*
 * The batch's file source read on its own: every line handed over once, whole and in
 * order, while the next chunk is read ahead (a read is in flight as soon as the first line
 * is out): lines within a chunk, across a chunk's end, across several chunks, too long, and
 * a last line without its newline.
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

#include "skyio/batch.h"

#define LINES 3000
#define MAX_LINE 200000

typedef struct reader {
    int ready; /* sky_batch_source_ready came */
} reader;

static void on_ready(void *engine)
{
    ((reader *)engine)->ready = 1;
}

/* Line @p i's length: mostly short, some past a chunk (64 KiB), one past what the source
 * gathers (the limit plus a chunk). */
static size_t line_len(int i)
{
    if (i == 1234)
        return MAX_LINE + 140000;
    return i % 97 == 0 ? (size_t)(i * 331) % 150000 : 20 + (size_t)(i * 7) % 300;
}

static void fill(char *p, int i, size_t n)
{
    for (size_t k = 0; k < n; k++)
        p[k] = (char)('a' + (i + (int)k) % 26);
}

static void write_file(const char *path)
{
    FILE *f = fopen(path, "wb");
    char *buf = malloc(MAX_LINE + 140016);
    assert_non_null(f);
    assert_non_null(buf);
    for (int i = 0; i < LINES; i++) {
        size_t n = line_len(i);
        fill(buf, i, n);
        assert_int_equal(fwrite(buf, 1, n, f), n);
        if (i + 1 < LINES)
            fputc('\n', f);
    }
    free(buf);
    fclose(f);
}

/* The next line, running the loop while the source waits for a read. */
static int next_line(uv_loop_t *loop, sky_batch_source *src, reader *r, sky_batch_source_line *out)
{
    sky_error err;
    for (;;) {
        sky_error_clear(&err);
        int rc = src->next(src, out, &err);
        if (rc != SKY_BATCH_SOURCE_WAIT)
            return rc;
        r->ready = 0;
        while (!r->ready)
            assert_true(uv_run(loop, UV_RUN_ONCE) >= 0);
    }
}

static void check_line(const sky_batch_source_line *l, int i, char *want)
{
    size_t n = line_len(i);
    assert_int_equal(l->number, (uint64_t)i + 1);
    if (n > MAX_LINE) {
        assert_true(l->too_long);
        return;
    }
    assert_false(l->too_long);
    size_t has_nl = i + 1 < LINES;
    assert_int_equal(l->text.len, n + has_nl);
    fill(want, i, n);
    assert_memory_equal(l->text.ptr, want, n);
}

static void test_every_line_whole_and_in_order(void **state)
{
    char path[] = "/tmp/skyio-test-source-XXXXXX";
    uv_loop_t loop;
    sky_batch_source *src = NULL;
    sky_batch_source_line line;
    sky_error err;
    reader r = {0};
    char *want = malloc(MAX_LINE + 140016);
    (void)state;
    assert_non_null(want);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path);
    assert_int_equal(uv_loop_init(&loop), 0);
    sky_error_clear(&err);
    assert_int_equal(sky_batch_file_source_open(&loop, path, MAX_LINE, &src, &err), 0);
    src->on_ready = on_ready;
    src->engine = &r;
    for (int i = 0; i < LINES; i++) {
        assert_int_equal(next_line(&loop, src, &r, &line), 0);
        check_line(&line, i, want);
        /* the first chunk's first line out, the second chunk is being read already */
        if (i == 0)
            assert_true(uv_loop_alive(&loop));
    }
    assert_int_equal(next_line(&loop, src, &r, &line), SKY_BATCH_SOURCE_END);
    src->close(src);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
        ;
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(path);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_line_whole_and_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
