/*
 * Allocation-failure tests of the journal: open an existing file (scan, cut a
 * torn line, --retry-failed's rewrite, a last record that lost its newline),
 * append, close, on a real loop. Whatever allocation fails, the file keeps
 * every record it had (or gets the repair the reference run made), an append
 * either queues its record or fails with nothing queued, and the close
 * callback runs exactly once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "skyio/journal.h"

#include "torture.h"
#include "harness_group.h"

#define REC_OK(id, n)                                                                              \
    "{\"id\":\"batch_req_" n "\",\"custom_id\":\"" id "\",\"response\":{\"status_code\":200,"      \
    "\"request_id\":\"req_" n "\",\"body\":{\"choices\":[{\"text\":\"answer " n "\"}]}},"          \
    "\"error\":null}"
#define REC_FAILED(id, n)                                                                          \
    "{\"id\":\"batch_req_" n "\",\"custom_id\":\"" id "\",\"response\":{\"status_code\":500,"      \
    "\"request_id\":\"req_" n "\",\"body\":{}},\"error\":{\"code\":\"server_error\","              \
    "\"message\":\"boom\"}}"

/* A run's file: a failed record, a line that is no JSON, a duplicate, a torn last line. */
static const char torn_fixture[] = REC_OK("a", "1") "\n" REC_FAILED(
    "b", "2") "\n"
              "this line is not JSON\n" REC_OK(
                  "c", "3") "\n"
                            "\n" REC_OK("a", "4") "\n"
                                                  "{\"id\":\"batch_req_5\",\"custom_id\":\"d\","
                                                  "\"resp";

/* A byte order mark, and a last record whole but for its newline. */
static const char tail_fixture[] =
    "\xEF\xBB\xBF" REC_OK("a", "1") "\n" REC_FAILED("b", "2") "\n" REC_OK("c", "3");

/* What the test appends, in order. */
typedef struct append_op {
    const char *given_id;  /* for sky_journal_append_id; NULL: sky_journal_append reads it */
    const char *custom_id; /* the record's, NULL when it has none */
    const char *line;
} append_op;

#define LONG_ID "g-0123456789abcdef0123456789abcdef"

static const append_op appends[] = {
    {NULL, "e", REC_OK("e", "6")},
    {"f", "f", REC_FAILED("f", "7")},
    {NULL, "a", REC_OK("a", "8")},          /* already done */
    {NULL, NULL, "{\"no\":\"custom_id\"}"}, /* not a record */
    {NULL, "d", REC_OK("d", "9")},          /* its torn line was cut: not done */
    {LONG_ID, LONG_ID, REC_OK(LONG_ID, "10")},
};

#define N_APPENDS (sizeof(appends) / sizeof(appends[0]))
static const char *const ids[] = {"a", "b", "c", "d", "e", "f", LONG_ID};
#define N_IDS (sizeof(ids) / sizeof(ids[0]))
#define FILE_MAX 65536

/* What the reference run saw, for the runs that failed to compare with. */
typedef struct journal_ref {
    int have;
    char after_open[FILE_MAX];
    sky_journal_stats open_stats;
    int done_after_open[N_IDS];
    int append_rc[N_APPENDS];
} journal_ref;

typedef struct journal_ctx {
    const char *fixture;
    int retry_failed;
    char dir[256];
    char path[512];
    uv_loop_t loop;
    sky_journal *j;
    sky_error err;
    int open_rc;
    char after_open[FILE_MAX];
    sky_journal_stats open_stats, final_stats;
    int done_after_open[N_IDS], done_final[N_IDS];
    int append_rc[N_APPENDS];
    int close_rc;
    int closed; /* close callbacks run */
    sky_error close_err;
    journal_ref ref;
} journal_ctx;

static void read_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    torture_assert(f != NULL);
    size_t n = fread(out, 1, cap - 1, f);
    torture_assert(!ferror(f) && n < cap - 1);
    out[n] = '\0';
    fclose(f);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    torture_assert(f != NULL);
    torture_assert(fwrite(text, 1, strlen(text), f) == strlen(text));
    torture_assert(fclose(f) == 0);
}

/* Nothing but the journal's file in the folder: a failed rewrite leaves no copy behind. */
static void check_dir_clean(const journal_ctx *c)
{
    DIR *d = opendir(c->dir);
    torture_assert(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "out.jsonl"))
            torture_fail(__FILE__, __LINE__, "%s left in the folder", e->d_name);
    closedir(d);
}

static void journal_setup(void *p)
{
    journal_ctx *c = p;
    write_file(c->path, c->fixture);
    torture_assert(uv_loop_init(&c->loop) == 0);
    c->j = NULL;
    c->closed = 0;
    sky_error_clear(&c->close_err);
    c->after_open[0] = '\0';
    memset(c->append_rc, 0, sizeof(c->append_rc));
}

static void on_closed(sky_journal *j, const sky_error *err, void *user_data)
{
    journal_ctx *c = user_data;
    sky_journal_get_stats(j, &c->final_stats);
    for (size_t i = 0; i < N_IDS; i++)
        c->done_final[i] = sky_journal_is_done(j, ids[i]);
    c->closed++;
    c->close_err = *err;
}

/* The state right after the open, seen as a caller sees it (the test's reads are not counted). */
static void note_open(journal_ctx *c)
{
    torture_pause();
    read_file(c->path, c->after_open, sizeof(c->after_open));
    torture_resume();
    sky_journal_get_stats(c->j, &c->open_stats);
    for (size_t i = 0; i < N_IDS; i++)
        c->done_after_open[i] = sky_journal_is_done(c->j, ids[i]);
}

static int journal_run(void *p)
{
    journal_ctx *c = p;
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.retry_failed = c->retry_failed;
    sky_error_clear(&c->err);
    c->open_rc = sky_journal_open(&c->loop, c->path, &o, &c->j, &c->err);
    if (c->open_rc != 0)
        return c->open_rc;
    note_open(c);
    int rc = 0;
    for (size_t i = 0; i < N_APPENDS; i++) {
        const append_op *a = &appends[i];
        c->append_rc[i] = a->given_id
                              ? sky_journal_append_id(c->j, a->given_id, a->line, strlen(a->line))
                              : sky_journal_append(c->j, a->line, strlen(a->line));
        if (c->append_rc[i] == SKY_ENOMEM && rc == 0)
            rc = SKY_ENOMEM;
    }
    c->close_rc = sky_journal_close(c->j, on_closed, c);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    return rc;
}

/* The file after the run: what the open left, then each record whose append succeeded. */
static void check_final_file(const journal_ctx *c, const char *final)
{
    size_t n = strlen(c->after_open);
    torture_assert(strncmp(final, c->after_open, n) == 0);
    const char *p = final + n;
    for (size_t i = 0; i < N_APPENDS; i++) {
        if (c->append_rc[i] != 0)
            continue;
        size_t len = strlen(appends[i].line);
        torture_assert(strncmp(p, appends[i].line, len) == 0 && p[len] == '\n');
        p += len + 1;
    }
    torture_assert(*p == '\0');
}

/* An id is done when the file had it or an append of it was queued; a failed append
 * leaves it as it was. */
static void check_done(const journal_ctx *c)
{
    for (size_t k = 0; k < N_IDS; k++) {
        int want = c->done_after_open[k];
        for (size_t i = 0; i < N_APPENDS; i++)
            if (appends[i].custom_id && strcmp(appends[i].custom_id, ids[k]) == 0 &&
                c->append_rc[i] == 0)
                want = 1;
        if (c->done_final[k] != want)
            torture_fail(__FILE__, __LINE__, "%s done: %d, should be %d", ids[k], c->done_final[k],
                         want);
    }
}

static void digest_stats(sky_buf *d, const sky_journal_stats *s)
{
    torture_digest(d,
                   " {ok=%" PRIu64 " failed=%" PRIu64 " removed=%" PRIu64 " bad=%" PRIu64
                   " dup=%" PRIu64 " torn=%" PRIu64 " appended=%" PRIu64 " written=%" PRIu64
                   " unwritten=%" PRIu64 " bytes=%" PRIu64 "}",
                   s->done_ok, s->done_failed, s->removed_failed, s->bad_lines, s->duplicate_lines,
                   s->torn_bytes, s->appended, s->written, s->unwritten, s->bytes_written);
}

/* The open failed: nothing to close, and the file is as it was or as the repair left it. */
static void check_failed_open(journal_ctx *c, int rc, const char *final)
{
    torture_assert(c->j == NULL);
    torture_assert_int(c->err.code, rc);
    torture_assert_int(c->closed, 0);
    if (strcmp(final, c->fixture) != 0 && strcmp(final, c->ref.after_open) != 0)
        torture_fail(__FILE__, __LINE__, "the failed open left the file as:\n%s", final);
}

/* The open worked though an allocation failed later: it must have seen what the reference saw. */
static void check_against_ref(journal_ctx *c)
{
    journal_ref *r = &c->ref;
    if (memcmp(&c->open_stats, &r->open_stats, sizeof(r->open_stats)) != 0) {
        sky_buf a, b;
        sky_buf_init(&a, 4096);
        sky_buf_init(&b, 4096);
        digest_stats(&a, &c->open_stats);
        digest_stats(&b, &r->open_stats);
        torture_fail(__FILE__, __LINE__, "the open saw other records: %s, the reference %s", a.data,
                     b.data);
    }
    if (strcmp(c->after_open, r->after_open) != 0)
        torture_fail(__FILE__, __LINE__, "the open left the file as:\n%s\nthe reference:\n%s",
                     c->after_open, r->after_open);
    torture_assert(memcmp(c->done_after_open, r->done_after_open, sizeof(r->done_after_open)) == 0);
    for (size_t i = 0; i < N_APPENDS; i++)
        if (c->append_rc[i] != r->append_rc[i] && c->append_rc[i] != SKY_ENOMEM)
            torture_fail(__FILE__, __LINE__, "append %zu: %s where the reference got %s", i,
                         sky_err_name(c->append_rc[i]), sky_err_name(r->append_rc[i]));
}

static void keep_ref(journal_ctx *c)
{
    journal_ref *r = &c->ref;
    r->have = 1;
    memcpy(r->after_open, c->after_open, sizeof(r->after_open));
    r->open_stats = c->open_stats;
    memcpy(r->done_after_open, c->done_after_open, sizeof(r->done_after_open));
    memcpy(r->append_rc, c->append_rc, sizeof(r->append_rc));
}

static void journal_report(void *p, int rc, sky_buf *d)
{
    journal_ctx *c = p;
    static char final[FILE_MAX];
    read_file(c->path, final, sizeof(final));
    check_dir_clean(c);
    /* the journal's handles are all closed: the loop closes */
    torture_assert_int(uv_loop_close(&c->loop), 0);
    if (!c->ref.have && rc == 0 && !torture_injected())
        keep_ref(c);
    torture_assert(c->ref.have);
    torture_digest(d, "rc=%s open=%s", sky_err_name(rc), sky_err_name(c->open_rc));
    if (c->open_rc != 0) {
        check_failed_open(c, rc, final);
        return;
    }
    check_against_ref(c);
    torture_assert_int(c->close_rc, 0);
    torture_assert_int(c->closed, 1);
    torture_assert_int(c->close_err.code, 0);
    check_final_file(c, final);
    size_t appended = 0;
    for (size_t i = 0; i < N_APPENDS; i++)
        appended += c->append_rc[i] == 0;
    torture_assert_int(c->final_stats.appended, appended);
    torture_assert_int(c->final_stats.written, appended);
    check_done(c);
    torture_digest(d, " after_open=%s", c->after_open);
    digest_stats(d, &c->open_stats);
    digest_stats(d, &c->final_stats);
    for (size_t i = 0; i < N_IDS; i++)
        torture_digest(d, " %s:%d/%d", ids[i], c->done_after_open[i], c->done_final[i]);
    for (size_t i = 0; i < N_APPENDS; i++)
        torture_digest(d, " append%zu=%s", i, sky_err_name(c->append_rc[i]));
    torture_digest(d, " final=%s", final);
}

static void run_journal_case(const char *name, const char *fixture, int retry_failed)
{
    journal_ctx *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->fixture = fixture;
    c->retry_failed = retry_failed;
    const char *tmp = getenv("TMPDIR");
    snprintf(c->dir, sizeof(c->dir), "%s/skyio-torture-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    assert_non_null(mkdtemp(c->dir));
    snprintf(c->path, sizeof(c->path), "%s/out.jsonl", c->dir);
    const torture_case tc = {.name = name,
                             .setup = journal_setup,
                             .run = journal_run,
                             .report = journal_report,
                             .ctx = c};
    torture_run_case(&tc);
    unlink(c->path);
    rmdir(c->dir);
    free(c);
}

static void test_scan_and_cut(void **state)
{
    (void)state;
    run_journal_case("journal: scan, cut a torn line, append", torn_fixture, 0);
}

static void test_retry_failed(void **state)
{
    (void)state;
    run_journal_case("journal: --retry-failed rewrite, append", torn_fixture, 1);
}

/* Many records, every other one failed: the done set and the list of lines to drop grow. */
#define BIG_RECORDS 140
static char big_fixture[BIG_RECORDS * 200];

static void make_big_fixture(void)
{
    size_t off = 0;
    for (int i = 0; i < BIG_RECORDS; i++) {
        int n = snprintf(big_fixture + off, sizeof(big_fixture) - off,
                         i % 2 ? "{\"id\":\"batch_req_%d\",\"custom_id\":\"request-%d\","
                                 "\"response\":{\"status_code\":429,\"body\":{}},\"error\":{"
                                 "\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\"}}\n"
                               : "{\"id\":\"batch_req_%d\",\"custom_id\":\"request-%d\","
                                 "\"response\":{\"status_code\":200,\"body\":{\"n\":1}},"
                                 "\"error\":null}\n",
                         i, i);
        assert_true(n > 0 && (size_t)n < sizeof(big_fixture) - off);
        off += (size_t)n;
    }
}

static void test_many_records(void **state)
{
    (void)state;
    make_big_fixture();
    run_journal_case("journal: --retry-failed over 140 records", big_fixture, 1);
}

static void test_whole_tail(void **state)
{
    (void)state;
    run_journal_case("journal: BOM, a last record without newline", tail_fixture, 0);
}

int main(void)
{
    torture_alloc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_and_cut),
        cmocka_unit_test(test_retry_failed),
        cmocka_unit_test(test_whole_tail),
        cmocka_unit_test(test_many_records),
    };
    return sky_test_run_group(tests, NULL, torture_summary_teardown);
}
