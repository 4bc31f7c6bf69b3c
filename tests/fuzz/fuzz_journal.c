/*
 * libFuzzer target for the journal's scan and repair: whatever a crash, an
 * editor or another program left in an output file, opening it must leave a
 * file that resumes cleanly.
 *
 *   byte 0     options: bit 0 retry_failed; bit 1 a 64-byte line cap (lines over it
 *              are measured, not kept); bit 2 append one record after opening
 *   the rest   the file's bytes before open
 *
 * The bytes go to a file in a per-process temporary directory (on /dev/shm when
 * there is one, so fsync costs nothing), the journal opens it with a uv loop,
 * then closes, and the loop runs until the close callback. Invariants:
 * - a refused file (not Batch output) is left as it was;
 * - after open the file is empty or ends with a newline, and it is the input cut
 *   at a line end (plus a lost newline), or with retry_failed the input's lines
 *   less some (a subsequence);
 * - every record line left in the file answers sky_journal_is_done, no failed
 *   record is left with retry_failed, and the counters match what is left;
 * - an appended record is done at once and is the file's last line after close.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "skyio/json.h"
#include "skyio/journal.h"

#define FZ_RETRY 1u
#define FZ_SMALL_LINES 2u
#define FZ_APPEND 4u
#define FZ_APPEND_ID "fz-new"

static char fz_dir[256];
static char fz_path[300];

static void fz_remove_dir(void)
{
    char tmp[320];
    unlink(fz_path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", fz_path);
    unlink(tmp);
    rmdir(fz_dir);
}

/* One directory per process, made once and removed at exit. */
static int fz_setup(void)
{
    if (fz_dir[0])
        return 0;
    struct stat st;
    const char *base = getenv("TMPDIR");
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
        base = "/dev/shm";
    snprintf(fz_dir, sizeof(fz_dir), "%s/skyio-fuzz-journal-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(fz_dir) == NULL) {
        fz_dir[0] = '\0';
        return -1;
    }
    snprintf(fz_path, sizeof(fz_path), "%s/out.jsonl", fz_dir);
    atexit(fz_remove_dir);
    return 0;
}

static int fz_write_file(const uint8_t *data, size_t size)
{
    FILE *f = fopen(fz_path, "wb");
    if (f == NULL)
        return -1;
    size_t n = size ? fwrite(data, 1, size, f) : 0;
    return fclose(f) == 0 && n == size ? 0 : -1;
}

/* The whole file in a new buffer (NUL after it); NULL when it cannot be read. */
static char *fz_read_file(size_t *out_len)
{
    FILE *f = fopen(fz_path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    for (;;) {
        char *p = realloc(buf, len + 4096 + 1);
        if (p == NULL) {
            free(buf);
            fclose(f);
            return NULL;
        }
        buf = p;
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    *out_len = len;
    return buf;
}

/* Whether line @p line (no newline) is one of the lines of @p in at or after *pos; the
 * search moves *pos past it, so the lines of the result must come in the input's order. */
static int fz_find_line(const char *in, size_t in_len, size_t *pos, sky_span line)
{
    while (*pos < in_len) {
        const char *s = in + *pos;
        const char *nl = memchr(s, '\n', in_len - *pos);
        size_t n = nl ? (size_t)(nl - s) : in_len - *pos;
        *pos += n + 1;
        if (n == line.len && memcmp(s, line.ptr, n) == 0)
            return 1;
    }
    return 0;
}

/* A record as the journal's header defines it: a custom_id and a response or an error. */
static const char *fz_record_id(const json_t *root)
{
    const char *id = sky_json_str(root, "custom_id", NULL);
    if (id == NULL ||
        (json_object_get(root, "response") == NULL && json_object_get(root, "error") == NULL))
        return NULL;
    return id;
}

/* Failed: "error" not null, or response.status_code missing or outside 200..299. */
static int fz_record_failed(const json_t *root)
{
    json_t *e = json_object_get(root, "error");
    if (e != NULL && !json_is_null(e))
        return 1;
    json_t *sc = json_object_get(json_object_get(root, "response"), "status_code");
    return !json_is_integer(sc) || json_integer_value(sc) < 200 || json_integer_value(sc) > 299;
}

typedef struct fz_seen {
    uint64_t records, failed, distinct;
    char **ids;
    size_t n_ids, alloc;
} fz_seen;

static int fz_seen_add(fz_seen *s, const char *id)
{
    for (size_t i = 0; i < s->n_ids; i++)
        if (strcmp(s->ids[i], id) == 0)
            return 0;
    if (s->n_ids == s->alloc) {
        size_t n = s->alloc ? s->alloc * 2 : 16;
        char **p = realloc(s->ids, n * sizeof(*p));
        if (p == NULL)
            return -1;
        s->ids = p;
        s->alloc = n;
    }
    if ((s->ids[s->n_ids] = strdup(id)) == NULL)
        return -1;
    s->n_ids++;
    s->distinct++;
    return 0;
}

static void fz_seen_free(fz_seen *s)
{
    for (size_t i = 0; i < s->n_ids; i++)
        free(s->ids[i]);
    free(s->ids);
}

/* One line of the repaired file: a record must be done (and not failed, with retry). */
static void fz_check_line(const sky_journal *j, sky_span line, int first, unsigned flags,
                          fz_seen *seen)
{
    if ((flags & FZ_SMALL_LINES) && line.len > 64)
        return; /* over the cap: not read, so not a record */
    if (first && line.len >= 3 && memcmp(line.ptr, "\xEF\xBB\xBF", 3) == 0) {
        line.ptr += 3;
        line.len -= 3;
    }
    json_t *root = NULL;
    if (sky_json_parse(line, &root, NULL) < 0)
        return;
    const char *id = fz_record_id(root);
    if (id != NULL) {
        FZ_CHECK(sky_journal_is_done(j, id));
        int failed = fz_record_failed(root);
        FZ_CHECK(!(failed && (flags & FZ_RETRY)));
        seen->records++;
        seen->failed += (uint64_t)failed;
        FZ_CHECK(fz_seen_add(seen, id) == 0);
    }
    json_decref(root);
}

/* The file after open, against the input and the journal's answers. */
static void fz_check_opened(const sky_journal *j, const char *in, size_t in_len, unsigned flags)
{
    size_t len = 0;
    char *out = fz_read_file(&len);
    FZ_CHECK(out != NULL);
    FZ_CHECK(len == 0 || out[len - 1] == '\n');
    if (!(flags & FZ_RETRY)) {
        /* cut at a line end, and a newline added only where the input had none */
        FZ_CHECK(len <= in_len + 1);
        FZ_CHECK(len == 0 || memcmp(out, in, len - 1) == 0);
        FZ_CHECK(len == 0 || len - 1 >= in_len || in[len - 1] == '\n');
    }
    sky_journal_stats st;
    sky_journal_get_stats(j, &st);
    fz_seen seen;
    memset(&seen, 0, sizeof(seen));
    size_t pos = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(out + at, '\n', len - at);
        sky_span line = sky_span_make(out + at, (size_t)(nl - (out + at)));
        FZ_CHECK(!(flags & FZ_RETRY) || fz_find_line(in, in_len, &pos, line));
        fz_check_line(j, line, at == 0, flags, &seen);
        at += line.len + 1;
    }
    FZ_CHECK(st.done_ok + st.done_failed + st.duplicate_lines == seen.records);
    FZ_CHECK(st.done_ok + st.done_failed == seen.distinct);
    FZ_CHECK(!(flags & FZ_RETRY) || st.done_failed == 0);
    FZ_CHECK(st.torn_bytes <= in_len);
    fz_seen_free(&seen);
    free(out);
}

static void fz_on_close(sky_journal *j, const sky_error *err, void *ud)
{
    (void)j;
    *(int *)ud = err->code == 0 ? 1 : -1;
}

/* Append one record, close, and find it as the file's last line. */
static void fz_append_and_close(uv_loop_t *loop, sky_journal *j, unsigned flags)
{
    /* short enough for the small line cap too */
    static const char rec[] =
        "{\"custom_id\":\"" FZ_APPEND_ID "\",\"response\":{\"status_code\":200}}";
    _Static_assert(sizeof(rec) - 1 <= 64, "the record fits the small line cap");
    int appended = 0;
    if (flags & FZ_APPEND) {
        int was_done = sky_journal_is_done(j, FZ_APPEND_ID);
        int rc = sky_journal_append(j, rec, sizeof(rec) - 1);
        FZ_CHECK(rc == (was_done ? SKY_JOURNAL_DUP : 0) || rc == SKY_ENOMEM);
        FZ_CHECK(rc == SKY_ENOMEM || sky_journal_is_done(j, FZ_APPEND_ID));
        appended = rc == 0;
    }
    int closed = 0;
    FZ_CHECK(sky_journal_close(j, fz_on_close, &closed) == 0);
    uv_run(loop, UV_RUN_DEFAULT);
    FZ_CHECK(closed == 1);
    if (!appended)
        return;
    size_t len = 0;
    char *out = fz_read_file(&len);
    FZ_CHECK(out != NULL);
    size_t rl = sizeof(rec) - 1;
    FZ_CHECK(len >= rl + 1 && out[len - 1] == '\n' && memcmp(out + len - 1 - rl, rec, rl) == 0);
    FZ_CHECK(len == rl + 1 || out[len - rl - 2] == '\n');
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || fz_setup() < 0)
        return 0;
    unsigned flags = data[0];
    const char *in = (const char *)data + 1;
    size_t in_len = size - 1;
    if (fz_write_file(data + 1, in_len) < 0)
        return 0;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 0;
    sky_journal_options opts;
    sky_journal_options_init(&opts);
    opts.retry_failed = (flags & FZ_RETRY) != 0;
    opts.flush_interval_ms = 0;
    if (flags & FZ_SMALL_LINES)
        opts.max_line_bytes = 64;
    sky_journal *j = NULL;
    sky_error err;
    sky_error_clear(&err);
    int rc = sky_journal_open(&loop, fz_path, &opts, &j, &err);
    if (rc == 0) {
        fz_check_opened(j, in, in_len, flags);
        fz_append_and_close(&loop, j, flags);
    } else {
        FZ_CHECK(j == NULL && err.code == rc && err.message[0] != '\0');
        FZ_CHECK(rc == SKY_EINVAL || rc == SKY_ENOMEM);
        /* refused before any repair: the file is as it was */
        size_t len = 0;
        char *out = fz_read_file(&len);
        FZ_CHECK(out != NULL && len == in_len && (len == 0 || memcmp(out, in, len) == 0));
        free(out);
    }
    FZ_CHECK(uv_loop_close(&loop) == 0);
    unlink(fz_path);
    return 0;
}
