/* Tests for the batch output journal: real files, a real loop, a real kill -9. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "skyio/idset.h"
#include "skyio/journal.h"
#include "skyio/json.h"

/* ---- the system call itself --------------------------------------------- */

/*
 * libuv's fdatasync reaches this definition, not libc's: the dynamic linker binds
 * the library's reference to the program's own symbol. So the tests see the system
 * call being made, not only the journal's count of it, and can make a sync slow.
 * It runs on libuv's thread pool: the counters are atomic.
 */
static _Atomic unsigned g_fdatasyncs;
static _Atomic unsigned g_sync_delay_ms;
static _Atomic int g_sync_running;

int fdatasync(int fd)
{
    g_sync_running = 1;
    unsigned ms = g_sync_delay_ms;
    if (ms) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    g_fdatasyncs++;
    int rc = (int)syscall(SYS_fdatasync, fd);
    g_sync_running = 0;
    return rc;
}

/* ---- fixture: a fresh directory and loop per test ---------------------- */

typedef struct fx {
    char dir[64];
    char path[128];
    uv_loop_t loop;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/skyio-journal-XXXXXX");
    if (mkdtemp(f->dir) == NULL || uv_loop_init(&f->loop) != 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/out.jsonl", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    int rc = uv_loop_close(&f->loop);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* ---- helpers ----------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

static char *read_file(const char *path, size_t *out_len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    *out_len = (size_t)n;
    return buf;
}

/* The file @p path holds exactly @p want. */
static void expect_file(const char *path, const char *want)
{
    size_t len;
    char *got = read_file(path, &len);
    assert_string_equal(got, want);
    free(got);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static sky_journal *open_j(fx *f, const sky_journal_options *o)
{
    sky_journal *j = NULL;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky_journal_open(&f->loop, f->path, o, &j, &err);
    if (rc != 0)
        print_error("open: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_non_null(j);
    return j;
}

/* A journal on f->path with retry_failed set. */
static sky_journal *open_retry_failed(fx *f)
{
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.retry_failed = 1;
    return open_j(f, &o);
}

typedef struct closed {
    int calls;
    sky_error err;
    sky_journal_stats stats;
} closed;

static void on_closed(sky_journal *j, const sky_error *err, void *ud)
{
    closed *c = ud;
    c->calls++;
    c->err = *err;
    sky_journal_get_stats(j, &c->stats);
}

static closed close_j(fx *f, sky_journal *j)
{
    closed c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(sky_journal_close(j, on_closed, &c), 0);
    assert_int_equal(c.calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.calls, 1);
    return c;
}

static sky_journal_stats stats_of(const sky_journal *j)
{
    sky_journal_stats st;
    sky_journal_get_stats(j, &st);
    return st;
}

/* An output record for @p id with @p pad bytes of padding in its body (cut to fit @p size). */
static int make_line(char *buf, size_t size, const char *id, int status, size_t pad)
{
    static const char tail[] = "\"}},\"error\":null}";
    int n = snprintf(buf, size,
                     "{\"id\":\"batch_req_%s\",\"custom_id\":\"%s\",\"response\":{\"status_code\":"
                     "%d,\"request_id\":\"r\",\"body\":{\"pad\":\"",
                     id, id, status);
    assert_true(n > 0 && (size_t)n + sizeof(tail) < size);
    if ((size_t)n + pad + sizeof(tail) > size)
        pad = size - (size_t)n - sizeof(tail);
    memset(buf + n, 'p', pad);
    memcpy(buf + (size_t)n + pad, tail, sizeof(tail));
    return n + (int)pad + (int)sizeof(tail) - 1;
}

/* A journal on f->path with default options but for its flush interval. */
static sky_journal *open_interval(fx *f, uint64_t flush_interval_ms)
{
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.flush_interval_ms = flush_interval_ms;
    return open_j(f, &o);
}

/* Start @p t calling @p cb with @p data after @p first_ms, then every @p repeat_ms, and
 * run the loop until nothing is left to do; the caller closes @p t. */
static void run_timer(fx *f, uv_timer_t *t, uv_timer_cb cb, void *data, uint64_t first_ms,
                      uint64_t repeat_ms)
{
    uv_timer_init(&f->loop, t);
    t->data = data;
    uv_timer_start(t, cb, first_ms, repeat_ms);
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* make_line() for @p id (never cut) and sky_journal_append() it: the append's result. */
static int append_rec(sky_journal *j, const char *id, int status, size_t pad)
{
    char line[4096];
    int len = make_line(line, sizeof(line), id, status, pad);
    return sky_journal_append(j, line, (size_t)len);
}

/* Append, running the loop while the journal pushes back. */
static void append_wait(fx *f, sky_journal *j, const char *line, size_t len)
{
    int rc;
    while ((rc = sky_journal_append(j, line, len)) == SKY_EBUSY)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(rc, 0);
}

/*
 * Check that every line of @p path is a complete JSON object with a unique
 * custom_id; add the ids to @p ids (may be NULL). Returns the line count.
 */
static size_t check_lines(const char *path, sky_idset *ids)
{
    size_t len;
    char *text = read_file(path, &len);
    assert_true(len == 0 || text[len - 1] == '\n');
    sky_idset *seen = sky_idset_new(0);
    size_t lines = 0;
    for (char *p = text, *nl; (nl = memchr(p, '\n', len - (size_t)(p - text))); p = nl + 1) {
        json_t *root;
        assert_int_equal(sky_json_parse(sky_span_make(p, (size_t)(nl - p)), &root, NULL), 0);
        const char *id = sky_json_str(root, "custom_id", NULL);
        assert_non_null(id);
        assert_int_equal(sky_idset_add(seen, sky_span_cstr(id)), 1);
        if (ids != NULL)
            assert_true(sky_idset_add(ids, sky_span_cstr(id)) >= 0);
        json_decref(root);
        lines++;
    }
    sky_idset_free(seen);
    free(text);
    return lines;
}

/* ---- scanning ---------------------------------------------------------- */

static void test_open_creates_file(void **state)
{
    fx *f = *state;
    sky_journal *j = open_j(f, NULL);
    assert_true(file_exists(f->path));
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.done_ok + st.done_failed + st.bad_lines + st.torn_bytes, 0);
    assert_false(sky_journal_is_done(j, "a"));
    closed c = close_j(f, j);
    assert_int_equal(c.err.code, 0);
}

static void test_scan_good_file(void **state)
{
    fx *f = *state;
    const char *text =
        "{\"custom_id\":\"ok-1\",\"response\":{\"status_code\":200,\"body\":{}},\"error\":null}\n"
        "{\"custom_id\":\"ok-2\",\"response\":{\"status_code\":201,\"body\":{}}}\n"
        "{\"custom_id\":\"bad-1\",\"response\":null,\"error\":{\"code\":\"x\",\"message\":\"y\"}}\n"
        "{\"custom_id\":\"bad-2\",\"response\":{\"status_code\":500,\"body\":{}},\"error\":null}\n";
    write_file(f->path, text);
    sky_journal *j = open_j(f, NULL);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.done_ok, 2);
    assert_int_equal(st.done_failed, 2);
    assert_int_equal(st.bad_lines, 0);
    assert_int_equal(st.torn_bytes, 0);
    assert_int_equal(st.removed_failed, 0);
    assert_true(sky_journal_is_done(j, "ok-1"));
    assert_true(sky_journal_is_done(j, "ok-2"));
    assert_true(sky_journal_is_done(j, "bad-1"));
    assert_true(sky_journal_is_done(j, "bad-2"));
    assert_false(sky_journal_is_done(j, "ok-3"));
    close_j(f, j);
    expect_file(f->path, text);
}

static void test_torn_tail_cut(void **state)
{
    fx *f = *state;
    const char *good = "{\"custom_id\":\"a\",\"response\":{\"status_code\":200},\"error\":null}\n"
                       "{\"custom_id\":\"b\",\"response\":{\"status_code\":200},\"error\":null}\n";
    const char *torn = "{\"custom_id\":\"c\",\"response\":{\"sta";
    char text[512];
    snprintf(text, sizeof(text), "%s%s", good, torn);
    write_file(f->path, text);
    sky_journal *j = open_j(f, NULL);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.torn_bytes, strlen(torn));
    assert_int_equal(st.done_ok, 2);
    assert_false(sky_journal_is_done(j, "c"));
    close_j(f, j);
    expect_file(f->path, good);
    assert_int_equal(check_lines(f->path, NULL), 2);
}

/* Only the newline was lost: the record is whole, so it is kept (cutting it would send its
 * request, paid for, again) and gets its newline back. */
static void test_whole_record_without_newline_kept(void **state)
{
    fx *f = *state;
    write_file(f->path, "{\"custom_id\":\"a\",\"response\":{\"status_code\":200}}\n"
                        "{\"custom_id\":\"b\",\"response\":{\"status_code\":200}}");
    sky_journal *j = open_j(f, NULL);
    assert_true(sky_journal_is_done(j, "b"));
    assert_true(sky_journal_is_done(j, "a"));
    assert_int_equal(stats_of(j).torn_bytes, 0);
    static const char rec[] = "{\"custom_id\":\"c\",\"error\":null}";
    assert_int_equal(sky_journal_append_id(j, "c", rec, sizeof(rec) - 1), 0);
    close_j(f, j);
    assert_int_equal(check_lines(f->path, NULL), 3);
}

/* A file with lines and no result among them is not Batch output: refused, untouched. */
static void test_foreign_file_refused(void **state)
{
    fx *f = *state;
    static const char *const foreign[] = {
        /* the input given as the output */
        "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n"
        "{\"custom_id\":\"b\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n",
        /* something else, whose last line a repair would have cut */
        "name,age\nalice,30\nbob,40",
        /* one line, without its newline: an input line, and a CSV header */
        "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}",
        "name,age",
    };
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        sky_journal *j = NULL;
        sky_error err;
        sky_error_clear(&err);
        write_file(f->path, foreign[i]);
        sky_journal_options o;
        sky_journal_options_init(&o);
        o.retry_failed = 1;
        assert_int_equal(sky_journal_open(&f->loop, f->path, &o, &j, &err), SKY_EINVAL);
        assert_null(j);
        assert_non_null(strstr(err.message, "does not look like Batch output"));
        expect_file(f->path, foreign[i]);
    }
}

/* A byte order mark before the first record does not hide it. */
static void test_bom_first_record(void **state)
{
    fx *f = *state;
    write_file(f->path, "\xEF\xBB\xBF{\"custom_id\":\"a\",\"response\":{\"status_code\":200}}\n");
    sky_journal *j = open_j(f, NULL);
    assert_true(sky_journal_is_done(j, "a"));
    assert_int_equal(stats_of(j).bad_lines, 0);
    close_j(f, j);
    /* and the only record, without its newline */
    write_file(f->path, "\xEF\xBB\xBF{\"custom_id\":\"b\",\"response\":{\"status_code\":200}}");
    j = open_j(f, NULL);
    assert_true(sky_journal_is_done(j, "b"));
    assert_int_equal(stats_of(j).torn_bytes, 0);
    close_j(f, j);
}

static void test_bad_json_last_line_cut(void **state)
{
    fx *f = *state;
    const char *good = "{\"custom_id\":\"a\",\"response\":{\"status_code\":200}}\n";
    char text[256];
    snprintf(text, sizeof(text), "%s%s", good, "{\"custom_id\":\"b\",\"resp\0\0\0\n");
    write_file(f->path, text);
    sky_journal *j = open_j(f, NULL);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.torn_bytes, strlen(text) - strlen(good));
    assert_int_equal(st.bad_lines, 0);
    close_j(f, j);
    assert_int_equal(check_lines(f->path, NULL), 1);
}

static void test_only_torn_bytes(void **state)
{
    fx *f = *state;
    write_file(f->path, "{\"custom_id\":\"a\",");
    sky_journal *j = open_j(f, NULL);
    assert_int_equal(stats_of(j).torn_bytes, 17);
    close_j(f, j);
    size_t len;
    free(read_file(f->path, &len));
    assert_int_equal(len, 0);
}

static void test_garbage_in_middle_kept(void **state)
{
    fx *f = *state;
    const char *text = "{\"custom_id\":\"a\",\"response\":{\"status_code\":200}}\n"
                       "this is not json\n"
                       "\n"
                       "{\"no_id\":true}\n"
                       "[1,2,3]\n"
                       "{\"custom_id\":\"b\",\"response\":{\"status_code\":200}}\n"
                       "{\"custom_id\":\"a\",\"response\":{\"status_code\":200}}\n";
    write_file(f->path, text);
    sky_journal *j = open_j(f, NULL);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.bad_lines, 3);
    assert_int_equal(st.done_ok, 2);
    assert_int_equal(st.duplicate_lines, 1);
    assert_int_equal(st.torn_bytes, 0);
    assert_true(sky_journal_is_done(j, "a"));
    assert_true(sky_journal_is_done(j, "b"));
    close_j(f, j);
    expect_file(f->path, text);
}

static void test_overlong_line_kept_as_bad(void **state)
{
    fx *f = *state;
    char big[3000];
    make_line(big, sizeof(big), "big", 200, 2000);
    char text[4000];
    snprintf(text, sizeof(text),
             "%s\n{\"custom_id\":\"small\",\"response\":{\"status_code\":200}}\n", big);
    write_file(f->path, text);
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.max_line_bytes = 1000;
    sky_journal *j = open_j(f, &o);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.bad_lines, 1);
    assert_int_equal(st.done_ok, 1);
    assert_true(sky_journal_is_done(j, "small"));
    close_j(f, j);
}

static void test_retry_failed_compacts(void **state)
{
    fx *f = *state;
    const char *ok1 =
        "{\"custom_id\":\"ok-1\",\"response\":{\"status_code\":200},\"error\":null}\n";
    const char *ok2 =
        "{\"custom_id\":\"ok-2\",\"response\":{\"status_code\":200},\"error\":null}\n";
    const char *bad = "garbage line\n";
    char text[1024];
    snprintf(text, sizeof(text), "%s%s%s%s%s%s%s", ok1,
             "{\"custom_id\":\"f-1\",\"response\":null,\"error\":{\"code\":\"x\"}}\n", bad,
             "{\"custom_id\":\"f-2\",\"response\":{\"status_code\":429},\"error\":null}\n", ok2,
             "{\"custom_id\":\"ok-1\",\"response\":{\"status_code\":500},\"error\":null}\n",
             "{\"custom_id\":\"torn");
    write_file(f->path, text);
    chmod(f->path, 0640);
    sky_journal *j = open_retry_failed(f);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.removed_failed, 3);
    assert_int_equal(st.done_ok, 2);
    assert_int_equal(st.done_failed, 0);
    assert_int_equal(st.bad_lines, 1);
    assert_int_equal(st.torn_bytes, strlen("{\"custom_id\":\"torn"));
    assert_true(sky_journal_is_done(j, "ok-1"));
    assert_true(sky_journal_is_done(j, "ok-2"));
    assert_false(sky_journal_is_done(j, "f-1"));
    assert_false(sky_journal_is_done(j, "f-2"));
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    assert_false(file_exists(tmp));
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    /* The redone record is appended to the compacted file. */
    const char *redo = "{\"custom_id\":\"f-1\",\"response\":{\"status_code\":200},\"error\":null}";
    assert_int_equal(sky_journal_append(j, redo, strlen(redo)), 0);
    close_j(f, j);
    char want[1024];
    snprintf(want, sizeof(want), "%s%s%s%s\n", ok1, bad, ok2, redo);
    expect_file(f->path, want);
}

/*
 * The rewrite of --retry-failed goes to the file a link names, keeping the link, and never
 * through a link planted at its temporary name. A device is no journal at all.
 */
static void test_retry_failed_links_and_devices(void **state)
{
    fx *f = *state;
    const char *ok = "{\"custom_id\":\"ok\",\"response\":{\"status_code\":200},\"error\":null}\n";
    const char *failed = "{\"custom_id\":\"f\",\"response\":null,\"error\":{\"code\":\"x\"}}\n";
    char real[160], link_path[160], tmp[170], victim[160], text[512];
    snprintf(real, sizeof(real), "%s/real.jsonl", f->dir);
    snprintf(link_path, sizeof(link_path), "%s/link.jsonl", f->dir);
    snprintf(victim, sizeof(victim), "%s/victim.txt", f->dir);
    snprintf(text, sizeof(text), "%s%s", ok, failed);
    write_file(real, text);
    write_file(victim, "precious\n");
    assert_int_equal(symlink("real.jsonl", link_path), 0);
    snprintf(tmp, sizeof(tmp), "%s.tmp", real);
    assert_int_equal(symlink(victim, tmp), 0);
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.retry_failed = 1;
    sky_journal *j = NULL;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_journal_open(&f->loop, link_path, &o, &j, &err), 0);
    assert_int_equal(stats_of(j).removed_failed, 1);
    close_j(f, j);
    struct stat sb;
    assert_int_equal(lstat(link_path, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    expect_file(real, ok);
    expect_file(victim, "precious\n");
    assert_false(file_exists(tmp));
    /* not a regular file: refused before anything is read or written */
    sky_error_clear(&err);
    assert_int_equal(sky_journal_open(&f->loop, "/dev/null", NULL, &j, &err), SKY_EINVAL);
    assert_non_null(strstr(err.message, "not a regular file"));
}

static void test_retry_failed_nothing_failed_keeps_file(void **state)
{
    fx *f = *state;
    const char *text = "{\"custom_id\":\"a\",\"response\":{\"status_code\":200}}\n";
    write_file(f->path, text);
    struct stat before, after;
    assert_int_equal(stat(f->path, &before), 0);
    sky_journal *j = open_retry_failed(f);
    assert_int_equal(stats_of(j).removed_failed, 0);
    close_j(f, j);
    assert_int_equal(stat(f->path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
}

/* ---- appending --------------------------------------------------------- */

static void test_append_many(void **state)
{
    fx *f = *state;
    const unsigned n = 100000;
    sky_journal *j = open_j(f, NULL);
    char line[256], id[32];
    for (unsigned i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "req-%u", i);
        int len = make_line(line, sizeof(line), id, i % 10 ? 200 : 500, i % 17);
        append_wait(f, j, line, (size_t)len);
        if (i % 1000 == 0)
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_true(sky_journal_is_done(j, "req-99999"));
    closed c = close_j(f, j);
    assert_int_equal(c.err.code, 0);
    assert_int_equal(c.stats.appended, n);
    assert_int_equal(c.stats.written, n);
    assert_int_equal(c.stats.unwritten, 0);
    assert_true(c.stats.syncs >= 1);
    sky_idset *ids = sky_idset_new(n);
    assert_int_equal(check_lines(f->path, ids), n);
    for (unsigned i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "req-%u", i);
        assert_true(sky_idset_contains(ids, sky_span_cstr(id)));
    }
    sky_idset_free(ids);
}

static void test_reopen_appends(void **state)
{
    fx *f = *state;
    char line[256];
    sky_journal *j = open_j(f, NULL);
    assert_int_equal(append_rec(j, "one", 200, 0), 0);
    assert_int_equal(append_rec(j, "one", 200, 0), SKY_JOURNAL_DUP);
    int len = make_line(line, sizeof(line), "two", 500, 0);
    assert_int_equal(sky_journal_append_id(j, "two", line, (size_t)len), 0);
    close_j(f, j);

    j = open_j(f, NULL);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.done_ok, 1);
    assert_int_equal(st.done_failed, 1);
    assert_int_equal(append_rec(j, "two", 200, 0), SKY_JOURNAL_DUP);
    assert_int_equal(append_rec(j, "three", 200, 0), 0);
    close_j(f, j);
    assert_int_equal(check_lines(f->path, NULL), 3);
}

static void test_append_rejects_bad_input(void **state)
{
    fx *f = *state;
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.max_line_bytes = 200;
    sky_journal *j = open_j(f, &o);
    const char *nl = "{\"custom_id\":\"a\",\n\"x\":1}";
    assert_int_equal(sky_journal_append(j, nl, strlen(nl)), SKY_EINVAL);
    assert_int_equal(sky_journal_append(j, "not json", 8), SKY_EINVAL);
    assert_int_equal(sky_journal_append(j, "{\"x\":1}", 7), SKY_EINVAL);
    assert_int_equal(sky_journal_append(j, "{\"custom_id\":5}", 15), SKY_EINVAL);
    assert_int_equal(sky_journal_append(j, "[\"custom_id\"]", 13), SKY_EINVAL);
    assert_int_equal(sky_journal_append(j, "", 0), SKY_EINVAL);
    assert_int_equal(append_rec(j, "big", 200, 250), SKY_ETOOBIG);
    assert_false(sky_journal_is_done(j, "a"));
    assert_false(sky_journal_is_done(j, "big"));
    closed c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(sky_journal_close(j, on_closed, &c), 0);
    assert_int_equal(sky_journal_close(j, on_closed, &c), SKY_ESTATE);
    assert_int_equal(sky_journal_append(j, "{\"custom_id\":\"z\"}", 17), SKY_ESTATE);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.stats.appended, 0);
    size_t flen;
    free(read_file(f->path, &flen));
    assert_int_equal(flen, 0);
}

static void test_open_bad_args_and_busy(void **state)
{
    fx *f = *state;
    sky_journal *j = NULL, *j2 = (sky_journal *)&j;
    sky_error err;
    sky_error_clear(&err);
    assert_int_equal(sky_journal_open(&f->loop, NULL, NULL, &j2, &err), SKY_EINVAL);
    assert_null(j2);
    j = open_j(f, NULL);
    sky_error_clear(&err);
    assert_int_equal(sky_journal_open(&f->loop, f->path, NULL, &j2, &err), SKY_EBUSY);
    assert_null(j2);
    sky_error_clear(&err);
    char missing[200];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/out.jsonl", f->dir);
    assert_int_equal(sky_journal_open(&f->loop, missing, NULL, &j2, &err), SKY_EIO);
    assert_non_null(strstr(err.message, "open"));
    close_j(f, j);
}

static void test_output_and_errors_files(void **state)
{
    fx *f = *state;
    char errpath[160];
    snprintf(errpath, sizeof(errpath), "%s/errors.jsonl", f->dir);
    sky_journal *out = open_j(f, NULL);
    sky_journal *errs = NULL;
    assert_int_equal(sky_journal_open(&f->loop, errpath, NULL, &errs, NULL), 0);
    assert_int_equal(append_rec(out, "good", 200, 0), 0);
    assert_int_equal(append_rec(errs, "bad", 400, 0), 0);
    closed c1, c2;
    memset(&c1, 0, sizeof(c1));
    memset(&c2, 0, sizeof(c2));
    assert_int_equal(sky_journal_close(out, on_closed, &c1), 0);
    assert_int_equal(sky_journal_close(errs, on_closed, &c2), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(c1.calls + c2.calls, 2);
    assert_int_equal(check_lines(f->path, NULL), 1);
    assert_int_equal(check_lines(errpath, NULL), 1);
    assert_int_equal(sky_journal_open(&f->loop, errpath, NULL, &errs, NULL), 0);
    assert_true(sky_journal_is_done(errs, "bad"));
    assert_int_equal(stats_of(errs).done_failed, 1);
    close_j(f, errs);
}

typedef struct drain_state {
    int drains;
} drain_state;

static void on_drain(sky_journal *j, void *ud)
{
    (void)j;
    ((drain_state *)ud)->drains++;
}

static void test_backpressure_cap(void **state)
{
    fx *f = *state;
    drain_state ds = {0};
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.max_pending_bytes = 1024;
    o.on_drain = on_drain;
    o.user_data = &ds;
    sky_journal *j = open_j(f, &o);
    char id[32];
    unsigned accepted = 0;
    int rc = 0;
    for (unsigned i = 0; i < 100 && rc == 0; i++) {
        snprintf(id, sizeof(id), "id-%u", i);
        rc = append_rec(j, id, 200, 40);
        if (rc == 0)
            accepted++;
    }
    assert_int_equal(rc, SKY_EBUSY);
    assert_true(accepted >= 5 && accepted < 20);
    assert_true(sky_journal_pending_bytes(j) <= 1024);
    assert_false(sky_journal_is_done(j, id)); /* the refused one is not done */
    while (ds.drains == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(sky_journal_pending_bytes(j) <= 512);
    assert_int_equal(append_rec(j, id, 200, 40), 0);
    /* A line bigger than the cap still goes through when nothing is pending. */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(sky_journal_pending_bytes(j), 0);
    assert_int_equal(append_rec(j, "big", 200, 2000), 0);
    closed c = close_j(f, j);
    assert_int_equal(c.stats.written, accepted + 2);
    assert_int_equal(check_lines(f->path, NULL), accepted + 2);
}

/* ---- durability -------------------------------------------------------- */

typedef struct ticker {
    sky_journal *j;
    int n;
    int limit;
    uint64_t syncs_seen;
    uint64_t start_ms, end_ms; /* loop time of the first and the last tick */
} ticker;

static void on_test_tick(uv_timer_t *t)
{
    ticker *tk = t->data;
    char id[32];
    if (tk->n == 0)
        tk->start_ms = uv_now(t->loop);
    if (tk->n >= tk->limit) {
        tk->end_ms = uv_now(t->loop);
        tk->syncs_seen = stats_of(tk->j).syncs;
        uv_timer_stop(t);
        return;
    }
    snprintf(id, sizeof(id), "t-%d", tk->n++);
    assert_int_equal(append_rec(tk->j, id, 200, 0), 0);
}

static void test_flush_interval(void **state)
{
    fx *f = *state;
    sky_journal *j = open_interval(f, 20);
    ticker tk = {j, 0, 120, 0, 0, 0};
    /* records for ~600 ms: long enough for two syncs even when a busy disk makes each
     * take a few hundred milliseconds */
    uv_timer_t t;
    run_timer(f, &t, on_test_tick, &tk, 5, 5);
    /* Some syncs while writing, at most one per interval however slow the ticks were
     * (about 30 for 120 writes at 20 ms when they keep time). */
    assert_true(tk.syncs_seen >= 2);
    assert_true(tk.syncs_seen <= (tk.end_ms - tk.start_ms) / 20 + 2);
    uv_close((uv_handle_t *)&t, NULL);
    closed c = close_j(f, j);
    /* the writes after the last tick are synced by the timer or by close */
    assert_true(c.stats.syncs >= tk.syncs_seen);
    assert_int_equal(c.stats.written, 120);
    assert_int_equal(check_lines(f->path, NULL), 120);
}

/* With an interval too long to come, close is what makes the records durable. */
static void test_close_syncs(void **state)
{
    fx *f = *state;
    sky_journal *j = open_interval(f, 3600 * 1000);
    assert_int_equal(append_rec(j, "x", 200, 0), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(stats_of(j).written, 1);
    assert_int_equal(stats_of(j).syncs, 0);
    unsigned before = g_fdatasyncs;
    closed c = close_j(f, j);
    assert_int_equal(c.stats.syncs, 1);
    assert_int_equal(g_fdatasyncs - before, 1); /* the system call, not only the count */
}

static void test_no_sync_when_idle(void **state)
{
    fx *f = *state;
    sky_journal *j = open_interval(f, 5);
    ticker tk = {j, 0, 0, 0, 0, 0};
    uv_timer_t t;
    run_timer(f, &t, on_test_tick, &tk, 50, 0);
    assert_int_equal(stats_of(j).syncs, 0);
    uv_close((uv_handle_t *)&t, NULL);
    closed c = close_j(f, j);
    assert_int_equal(c.stats.syncs, 0);
}

static void test_interval_zero_syncs_every_write(void **state)
{
    fx *f = *state;
    sky_journal *j = open_interval(f, 0);
    char line[128];
    int len = make_line(line, sizeof(line), "x", 200, 0);
    unsigned before = g_fdatasyncs;
    assert_int_equal(sky_journal_append(j, line, (size_t)len), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(stats_of(j).syncs, 1);
    assert_int_equal(g_fdatasyncs - before, 1);
    assert_int_equal(stats_of(j).written, 1);
    closed c = close_j(f, j);
    assert_int_equal(c.stats.syncs, 1);
}

typedef struct during_sync {
    sky_journal *j;
    int n;
    uint64_t written_while_syncing;
} during_sync;

static void append_during_sync(uv_timer_t *t)
{
    during_sync *d = t->data;
    char id[32];
    if (g_sync_running && d->n > 0)
        d->written_while_syncing = stats_of(d->j).written;
    if (d->n >= 40) {
        uv_timer_stop(t);
        return;
    }
    snprintf(id, sizeof(id), "d-%d", d->n++);
    assert_int_equal(append_rec(d->j, id, 200, 0), 0);
}

/*
 * A slow sync does not hold the queue: records appended while it runs reach the file
 * (and survive a kill -9) before it ends. Each sync here takes 400 ms.
 */
static void test_writes_go_on_during_sync(void **state)
{
    fx *f = *state;
    sky_journal *j = open_interval(f, 0); /* a sync after the first write, then after each write */
    during_sync d = {j, 0, 0};
    g_sync_delay_ms = 400;
    uv_timer_t t;
    run_timer(f, &t, append_during_sync, &d, 5, 5);
    g_sync_delay_ms = 0;
    uv_close((uv_handle_t *)&t, NULL);
    /* 40 appends 5 ms apart all fall within a couple of syncs: most were written while
     * one ran (serialized behind syncs, at most one a sync would be) */
    assert_true(d.written_while_syncing >= 10);
    closed c = close_j(f, j);
    assert_int_equal(c.stats.written, 40);
    assert_int_equal(check_lines(f->path, NULL), 40);
}

/* At most max_pending_records wait in memory, however small they are. */
static void test_record_cap(void **state)
{
    fx *f = *state;
    drain_state ds = {0};
    sky_journal_options o;
    sky_journal_options_init(&o);
    assert_int_equal(o.max_pending_records, 256);
    o.max_pending_records = 8;
    o.on_drain = on_drain;
    o.user_data = &ds;
    sky_journal *j = open_j(f, &o);
    char id[32];
    int rc = 0, accepted = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        snprintf(id, sizeof(id), "r-%d", i);
        rc = append_rec(j, id, 200, 0);
        accepted += rc == 0;
    }
    assert_int_equal(rc, SKY_EBUSY);
    assert_int_equal(accepted, 8);
    assert_int_equal(sky_journal_pending_records(j), 8);
    while (ds.drains == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(sky_journal_pending_records(j) <= 4);
    assert_int_equal(append_rec(j, id, 200, 0), 0);
    closed c = close_j(f, j);
    assert_int_equal(c.stats.written, 9);
}

/* ---- a full disk, simulated by the file size limit, in a child ------------ */

typedef struct err_seen {
    int calls;
    int code;
} err_seen;

static void on_journal_error(sky_journal *j, const sky_error *err, void *ud)
{
    (void)j;
    err_seen *e = ud;
    e->calls++;
    e->code = err->code;
}

/* Exit codes say which check failed; 0 when all held. */
static int child_disk_full(const char *path)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {4000, 4000};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 10;
    uv_loop_t loop;
    uv_loop_init(&loop);
    err_seen es = {0, 0};
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.on_error = on_journal_error;
    o.user_data = &es;
    sky_journal *j = NULL;
    if (sky_journal_open(&loop, path, &o, &j, NULL) != 0)
        return 11;
    char line[256], id[32];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "d-%d", i);
        int len = make_line(line, sizeof(line), id, 200, 60);
        if (sky_journal_append(j, line, (size_t)len) != 0)
            return 12;
    }
    closed c;
    memset(&c, 0, sizeof(c));
    sky_journal_close(j, on_closed, &c);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (c.calls != 1 || c.err.code != SKY_EIO)
        return 13;
    if (es.calls != 1 || es.code != SKY_EIO)
        return 14;
    if (c.stats.unwritten == 0 || c.stats.written + c.stats.unwritten != 100)
        return 15;
    return uv_loop_close(&loop) == 0 ? 0 : 16;
}

static void test_write_error_reported(void **state)
{
    fx *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_disk_full(f->path));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The torn write was cut at once: the rerun finds only whole lines. */
    sky_journal *j = open_j(f, NULL);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.torn_bytes, 0);
    assert_true(st.done_ok > 0 && st.done_ok < 100);
    close_j(f, j);
    assert_int_equal(check_lines(f->path, NULL), st.done_ok);
}

/* ---- kill -9 at a random moment, then resume ---------------------------- */

#define CRASH_IDS 10000000u

/* Append ids in order, skipping what the journal already holds, until killed. */
static void child_writer(const char *path)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sky_journal_options o;
    sky_journal_options_init(&o);
    o.flush_interval_ms = 5;
    o.max_pending_bytes = 256 * 1024;
    sky_journal *j = NULL;
    if (sky_journal_open(&loop, path, &o, &j, NULL) != 0)
        _exit(2);
    char line[4400], id[32];
    for (unsigned i = 0; i < CRASH_IDS; i++) {
        snprintf(id, sizeof(id), "c-%u", i);
        if (sky_journal_is_done(j, id))
            continue;
        int len = make_line(line, sizeof(line), id, i % 7 ? 200 : 503, (i * 131u) % 3000);
        int rc;
        while ((rc = sky_journal_append(j, line, (size_t)len)) == SKY_EBUSY)
            uv_run(&loop, UV_RUN_ONCE);
        if (rc != 0)
            _exit(3);
        if (i % 64 == 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    _exit(4); /* never reached in time: the parent kills first */
}

/*
 * Wait until the writer has added @p bytes to @p path beyond @p start: a fixed sleep
 * before the kill left an ASan build on a busy machine with no records at all.
 */
static int wait_for_growth(const char *path, off_t start, off_t bytes)
{
    struct stat sb;
    for (int i = 0; i < 3000; i++) { /* up to about 15 s */
        if (stat(path, &sb) == 0 && sb.st_size >= start + bytes)
            return 1;
        usleep(5000);
    }
    return 0;
}

static void test_kill9_and_resume(void **state)
{
    fx *f = *state;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    uint64_t torn_total = 0;
    for (int round = 0; round < 4; round++) {
        struct stat sb;
        off_t start = stat(f->path, &sb) == 0 ? sb.st_size : 0;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            child_writer(f->path);
        int grew = wait_for_growth(f->path, start, 16 * 1024);
        if (grew)
            usleep((useconds_t)(rand() % 120000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        if (!grew)
            fail_msg("the writer added fewer than 16 KiB to %s in 15 s", f->path);
        /* Look at the file as the crash left it: whole lines but perhaps the last. */
        size_t len;
        char *raw = read_file(f->path, &len);
        size_t whole = len;
        while (whole > 0 && raw[whole - 1] != '\n')
            whole--;
        torn_total += len - whole;
        free(raw);
        /* Every other round, also lose a random tail as a power cut might (at most half
         * the file, so records are left to check however slow the writer was). */
        if (round % 2 == 1 && len > 0)
            assert_int_equal(
                truncate(f->path,
                         (off_t)(len - (size_t)rand() % (len / 2 < 8192 ? len / 2 + 1 : 8192))),
                0);
    }
    sky_journal *j = open_j(f, NULL);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(st.bad_lines, 0);
    assert_int_equal(st.duplicate_lines, 0);
    print_message("kill -9 x4: %llu records; torn bytes: %llu cut on the final open, %llu left by "
                  "the kills\n",
                  (unsigned long long)(st.done_ok + st.done_failed),
                  (unsigned long long)st.torn_bytes, (unsigned long long)torn_total);
    closed c = close_j(f, j);
    assert_int_equal(c.err.code, 0);
    sky_idset *ids = sky_idset_new(0);
    size_t lines = check_lines(f->path, ids);
    assert_true(lines > 0);
    assert_int_equal(lines, st.done_ok + st.done_failed);
    /* The ids in the file are exactly a prefix c-0 .. c-(n-1): nothing lost between runs. */
    char id[32];
    for (unsigned i = 0; i < lines; i++) {
        snprintf(id, sizeof(id), "c-%u", i);
        assert_true(sky_idset_contains(ids, sky_span_cstr(id)));
    }
    sky_idset_free(ids);
}

static void test_done_set_matches_file_after_kill(void **state)
{
    fx *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_writer(f->path);
    usleep((useconds_t)(20000 + rand() % 60000));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    sky_journal *j = open_j(f, NULL);
    /* Compare against a copy taken after the repair. */
    sky_idset *ids = sky_idset_new(0);
    size_t lines = check_lines(f->path, ids);
    sky_journal_stats st = stats_of(j);
    assert_int_equal(lines, st.done_ok + st.done_failed);
    char id[32];
    for (unsigned i = 0; i < lines + 1000; i++) {
        snprintf(id, sizeof(id), "c-%u", i);
        assert_int_equal(sky_journal_is_done(j, id), sky_idset_contains(ids, sky_span_cstr(id)));
    }
    sky_idset_free(ids);
    close_j(f, j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_good_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_record_without_newline_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bom_first_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json_last_line_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_torn_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_in_middle_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_line_kept_as_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_failed_compacts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_failed_links_and_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_failed_nothing_failed_keeps_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_append_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_rejects_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_bad_args_and_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_and_errors_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_syncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_sync_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_zero_syncs_every_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_go_on_during_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_set_matches_file_after_kill, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
