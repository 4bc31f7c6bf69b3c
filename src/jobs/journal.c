/* The output journal of a batch job: scan and repair on open, ordered appends, bounded syncs. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "skyio/idset.h"
#include "skyio/journal.h"
#include "skyio/buf.h"
#include "skyio/json.h"

#define SCAN_CHUNK (1u << 20)
#define MAX_WRITE (1u << 30)

typedef struct drop_range {
    uint64_t off;
    uint64_t len;
} drop_range;

struct sky_journal {
    uv_loop_t *loop;
    char *path;
    uv_file fd;
    sky_journal_options opts;
    sky_idset *done;
    sky_journal_stats stats;
    sky_buf queue;       /* whole lines waiting for the next write */
    sky_buf inflight;    /* whole lines being written */
    size_t inflight_off; /* bytes of inflight already written */
    uint64_t queue_records;
    uint64_t inflight_records;
    uint64_t good_size; /* file size after the last complete write */
    uv_fs_t req;        /* the write or truncate in flight: these are serialized */
    uv_fs_t sync_req;   /* the fdatasync in flight: it runs beside the writes */
    uv_timer_t timer;
    int busy;          /* req is in flight */
    int syncing;       /* sync_req is in flight */
    int dirty;         /* written since the last fdatasync began */
    int sync_due;      /* the flush interval passed while dirty */
    int need_truncate; /* a failed write left a torn line to cut */
    int failed;        /* a write or sync failed: no more appends */
    int refused;       /* an append got SKY_EBUSY since the last on_drain */
    int closing;
    sky_error err; /* the first failure */
    sky_journal_close_cb close_cb;
    void *close_ud;
};

/* What the scan of an existing file has seen so far. */
typedef struct scan {
    sky_journal *j;
    sky_buf line;        /* the current line, up to max_line_bytes */
    uint64_t line_start; /* its file offset */
    uint64_t line_len;   /* its length so far, kept or not */
    int line_over;       /* it outgrew max_line_bytes: its bytes are not kept */
    uint64_t good_end;   /* end of the last complete line */
    uint64_t last_start; /* start of the last complete line */
    int last_bad_json;   /* the last complete line is not JSON */
    drop_range *drops;   /* failed records to remove (retry_failed) */
    size_t ndrops;
    size_t drops_alloc;
    uint64_t records;  /* lines that are results (a custom_id, and a response or an error) */
    uint64_t nonblank; /* complete lines that are not blank */
    int tail_newline;  /* the last line is a whole record without its newline: add one */
} scan;

void sky_journal_options_init(sky_journal_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->flush_interval_ms = 1000;
    opts->max_pending_bytes = (size_t)16 << 20;
    opts->max_pending_records = 256;
    opts->max_line_bytes = (size_t)64 << 20;
}

static int io_error(sky_error *err, int uvrc, const char *what, const char *path)
{
    return sky_error_set(err, SKY_EIO, "%s %s: %s", what, path, uv_strerror(uvrc));
}

/*
 * Start-up I/O. sky_journal_open runs before the loop has work, so the scan
 * and repair call libuv's fs functions synchronously (NULL callback); rule 1
 * allows it only here. Everything after open goes through callbacks.
 */
static int64_t sync_done(uv_fs_t *req)
{
    int64_t result = req->result;
    uv_fs_req_cleanup(req);
    return result;
}

static int64_t sync_read(uv_loop_t *loop, uv_file fd, char *buf, size_t len, uint64_t off)
{
    uv_fs_t req;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    uv_fs_read(loop, &req, fd, &b, 1, (int64_t)off, NULL);
    return sync_done(&req);
}

static int sync_write_all(uv_loop_t *loop, uv_file fd, const char *buf, size_t len)
{
    while (len > 0) {
        uv_fs_t req;
        uv_buf_t b =
            uv_buf_init((char *)(uintptr_t)buf, (unsigned)(len < MAX_WRITE ? len : MAX_WRITE));
        uv_fs_write(loop, &req, fd, &b, 1, -1, NULL);
        int64_t n = sync_done(&req);
        if (n <= 0)
            return n < 0 ? (int)n : UV_EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int sync_fsync(uv_loop_t *loop, uv_file fd)
{
    uv_fs_t req;
    uv_fs_fsync(loop, &req, fd, NULL);
    return (int)sync_done(&req);
}

static void sync_close(uv_loop_t *loop, uv_file fd)
{
    uv_fs_t req;
    uv_fs_close(loop, &req, fd, NULL);
    sync_done(&req);
}

static int sync_open(uv_loop_t *loop, const char *path, int flags, int mode)
{
    uv_fs_t req;
    uv_fs_open(loop, &req, path, flags, mode, NULL);
    return (int)sync_done(&req);
}

/* Make a rename or a creation in the file's directory durable. */
static int sync_dir(uv_loop_t *loop, const char *path, sky_error *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (dir == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int fd = sync_open(loop, dir, UV_FS_O_RDONLY, 0);
    int rc = fd < 0 ? fd : sync_fsync(loop, fd);
    if (fd >= 0)
        sync_close(loop, fd);
    if (rc < 0)
        io_error(err, rc, "fsync directory", dir);
    free(dir);
    return rc < 0 ? SKY_EIO : 0;
}

/* 1 when @p fd is still the file at @p path (no rename replaced it), 0 when not. */
static int fd_is_path(uv_loop_t *loop, uv_file fd, const char *path)
{
    uv_fs_t a, b;
    int same = uv_fs_fstat(loop, &a, fd, NULL) == 0 && uv_fs_stat(loop, &b, path, NULL) == 0 &&
               a.statbuf.st_dev == b.statbuf.st_dev && a.statbuf.st_ino == b.statbuf.st_ino;
    uv_fs_req_cleanup(&a);
    uv_fs_req_cleanup(&b);
    return same;
}

static int is_regular(uv_loop_t *loop, uv_file fd)
{
    uv_fs_t req;
    int yes = uv_fs_fstat(loop, &req, fd, NULL) == 0 && S_ISREG(req.statbuf.st_mode);
    uv_fs_req_cleanup(&req);
    return yes;
}

/*
 * Open for appending and take the file: two journals on one file would write ids twice.
 * A regular file only (a device or a FIFO would spin or swallow the results). The lock is
 * checked against the path once taken: another run's --retry-failed may have renamed a new
 * file over the one opened, and a lock on the old one guards nothing.
 */
static int open_locked(sky_journal *j, const char *path, sky_error *err)
{
    int flags = UV_FS_O_RDWR | UV_FS_O_CREAT | UV_FS_O_APPEND;
    for (int tries = 0; tries < 5; tries++) {
        int fd = sync_open(j->loop, path, flags, 0666);
        if (fd < 0)
            return io_error(err, fd, "open", path);
        int rc = 0;
        if (!is_regular(j->loop, fd))
            rc = sky_error_set(err, SKY_EINVAL, "%s is not a regular file", path);
        else if (flock(fd, LOCK_EX | LOCK_NB) != 0)
            rc = errno == EWOULDBLOCK
                     ? sky_error_set(err, SKY_EBUSY, "%s is in use by another journal", path)
                     : sky_error_set(err, SKY_EIO, "cannot lock %s: %s", path, strerror(errno));
        else if (fd_is_path(j->loop, fd, path)) {
            j->fd = fd;
            return 0;
        }
        sync_close(j->loop, fd);
        if (rc < 0)
            return rc;
    }
    return sky_error_set(err, SKY_EBUSY, "%s keeps being replaced by another process", path);
}

/* ---- scanning ---------------------------------------------------------- */

/* A record failed when "error" is set, or when its response is missing or not 2xx. */
static int record_failed(const json_t *root)
{
    json_t *e = json_object_get(root, "error");
    if (e != NULL && !json_is_null(e))
        return 1;
    json_t *resp = json_object_get(root, "response");
    json_t *sc = json_object_get(resp, "status_code");
    if (!json_is_integer(sc))
        return 1;
    json_int_t code = json_integer_value(sc);
    return code < 200 || code > 299;
}

static int add_drop(scan *s, uint64_t off, uint64_t len)
{
    if (s->ndrops == s->drops_alloc) {
        size_t n = s->drops_alloc ? s->drops_alloc * 2 : 64;
        drop_range *p = realloc(s->drops, n * sizeof(*p));
        if (p == NULL)
            return SKY_ENOMEM;
        s->drops = p;
        s->drops_alloc = n;
    }
    s->drops[s->ndrops].off = off;
    s->drops[s->ndrops].len = len;
    s->ndrops++;
    return 0;
}

/* A result line: its custom_id, and a response or an error (an input line has neither). */
static const char *record_id(const json_t *root)
{
    const char *id = sky_json_str(root, "custom_id", NULL);
    if (id == NULL ||
        (json_object_get(root, "response") == NULL && json_object_get(root, "error") == NULL))
        return NULL;
    return id;
}

static int scan_record(scan *s, const json_t *root, uint64_t start, uint64_t total)
{
    sky_journal_stats *st = &s->j->stats;
    const char *id = record_id(root);
    if (id == NULL) {
        st->bad_lines++;
        return 0;
    }
    s->records++;
    int failed = record_failed(root);
    if (failed && s->j->opts.retry_failed) {
        st->removed_failed++;
        return add_drop(s, start, total);
    }
    int rc = sky_idset_add(s->j->done, sky_span_cstr(id));
    if (rc < 0)
        return rc;
    if (rc == 0)
        st->duplicate_lines++;
    else if (failed)
        st->done_failed++;
    else
        st->done_ok++;
    return 0;
}

static int is_blank(sky_span sp)
{
    for (size_t i = 0; i < sp.len; i++)
        if (sp.ptr[i] != ' ' && sp.ptr[i] != '\t' && sp.ptr[i] != '\r')
            return 0;
    return 1;
}

/* One complete line: [start, start + total) including its newline. */
static int scan_line(scan *s, uint64_t start, uint64_t total)
{
    sky_span text = sky_buf_span(&s->line);
    s->good_end = start + total;
    s->last_start = start;
    s->last_bad_json = 0;
    if (s->line_over) {
        s->j->stats.bad_lines++;
        return 0;
    }
    if (is_blank(text))
        return 0;
    s->nonblank++;
    /* a byte order mark, as some editors write one */
    if (start == 0 && text.len >= 3 && memcmp(text.ptr, "\xEF\xBB\xBF", 3) == 0) {
        text.ptr += 3;
        text.len -= 3;
    }
    json_t *root;
    int rc = sky_json_parse(text, &root, NULL);
    if (rc == SKY_ENOMEM) /* unread is not bad: a bad last line is cut, a bad one not done */
        return rc;
    if (rc < 0) {
        s->j->stats.bad_lines++;
        s->last_bad_json = 1;
        return 0;
    }
    rc = scan_record(s, root, start, total);
    json_decref(root);
    return rc;
}

/* Add bytes to the current line; a line over max_line_bytes is measured, not kept. */
static int line_add(scan *s, const char *p, size_t n, uint64_t at)
{
    if (s->line_len == 0)
        s->line_start = at;
    s->line_len += n;
    if (s->line_over)
        return 0;
    int rc = sky_buf_append(&s->line, p, n);
    if (rc == SKY_ETOOBIG) {
        s->line_over = 1;
        sky_buf_free(&s->line);
        return 0;
    }
    return rc;
}

static int line_end(scan *s)
{
    int rc = scan_line(s, s->line_start, s->line_len + 1);
    sky_buf_reset(&s->line);
    s->line_len = 0;
    s->line_over = 0;
    return rc;
}

static int scan_chunk(scan *s, const char *buf, size_t n, uint64_t off)
{
    const char *p = buf, *end = buf + n, *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        int rc = line_add(s, p, (size_t)(nl - p), off + (uint64_t)(p - buf));
        if (rc == 0)
            rc = line_end(s);
        if (rc < 0)
            return rc;
        p = nl + 1;
    }
    return line_add(s, p, (size_t)(end - p), off + (uint64_t)(p - buf));
}

/* Read the whole file through the scanner. *out_size is the file's size. */
static int scan_file(scan *s, uint64_t *out_size, sky_error *err)
{
    sky_journal *j = s->j;
    char *buf = malloc(SCAN_CHUNK);
    if (buf == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    uint64_t off = 0;
    int rc = 0;
    for (;;) {
        int64_t n = sync_read(j->loop, j->fd, buf, SCAN_CHUNK, off);
        if (n < 0)
            rc = io_error(err, (int)n, "read", j->path);
        if (n <= 0)
            break;
        rc = scan_chunk(s, buf, (size_t)n, off);
        if (rc < 0) {
            sky_error_set(err, rc, "scanning %s: %s", j->path, sky_strerror(rc));
            break;
        }
        off += (uint64_t)n;
    }
    free(buf);
    *out_size = off;
    return rc;
}

/*
 * A last line without its newline that is a whole record (the newline alone was lost) is
 * kept, and gets its newline: cutting it would send its request, paid for, again.
 */
static int keep_whole_tail(scan *s, uint64_t size)
{
    json_t *root = NULL;
    sky_span text = sky_buf_span(&s->line);
    if (s->line_len == 0 || s->line_over || is_blank(text))
        return 0;
    if (s->line_start == 0 && text.len >= 3 && memcmp(text.ptr, "\xEF\xBB\xBF", 3) == 0) {
        text.ptr += 3;
        text.len -= 3;
    }
    /* a torn record begins with '{' and does not parse; anything else is foreign */
    if (text.len == 0 || text.ptr[0] != '{') {
        s->nonblank++;
        return 0;
    }
    int rc = sky_json_parse(text, &root, NULL);
    if (rc < 0) /* torn, so it is cut; unless it could not be read for want of memory */
        return rc == SKY_ENOMEM ? rc : 0;
    if (record_id(root) == NULL)
        s->nonblank++;
    rc = record_id(root) ? scan_record(s, root, s->line_start, s->line_len) : 1;
    json_decref(root);
    if (rc == 0) {
        s->good_end = size;
        /* unless retry_failed is removing it */
        s->tail_newline = !(s->ndrops > 0 && s->drops[s->ndrops - 1].off == s->line_start);
    }
    return rc < 0 ? rc : 0;
}

/* The tail to cut: a line without its newline, else a last line that is not JSON. */
static int scan_tail(scan *s, uint64_t size)
{
    if (s->line_len == 0 && s->last_bad_json) {
        s->good_end = s->last_start;
        s->j->stats.bad_lines--;
    }
    int rc = keep_whole_tail(s, size);
    s->j->stats.torn_bytes = size - s->good_end;
    return rc;
}

/* ---- repair ------------------------------------------------------------ */

static int copy_range(sky_journal *j, uv_file dst, uint64_t from, uint64_t to, char *buf)
{
    while (from < to) {
        uint64_t want = to - from < SCAN_CHUNK ? to - from : SCAN_CHUNK;
        int64_t n = sync_read(j->loop, j->fd, buf, (size_t)want, from);
        if (n <= 0)
            return n < 0 ? (int)n : UV_EIO;
        int rc = sync_write_all(j->loop, dst, buf, (size_t)n);
        if (rc < 0)
            return rc;
        from += (uint64_t)n;
    }
    return 0;
}

/* Copy the kept lines, everything before good_end but the dropped ranges. */
static int copy_kept(const scan *s, uv_file dst)
{
    char *buf = malloc(SCAN_CHUNK);
    if (buf == NULL)
        return UV_ENOMEM;
    uint64_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i <= s->ndrops && rc == 0; i++) {
        uint64_t stop = i < s->ndrops ? s->drops[i].off : s->good_end;
        rc = copy_range(s->j, dst, pos, stop, buf);
        if (i < s->ndrops)
            pos = s->drops[i].off + s->drops[i].len;
    }
    free(buf);
    return rc;
}

static void sync_unlink(uv_loop_t *loop, const char *path)
{
    uv_fs_t req;
    uv_fs_unlink(loop, &req, path, NULL);
    sync_done(&req);
}

/*
 * Write the kept lines to @p tmp with the original's mode, on disk before we return. The
 * name is created afresh (a stale one, or a link planted there, is removed first, never
 * followed).
 */
static int write_tmp(const scan *s, const char *tmp, sky_error *err)
{
    uv_loop_t *loop = s->j->loop;
    sync_unlink(loop, tmp);
    int fd = sync_open(loop, tmp, UV_FS_O_WRONLY | UV_FS_O_CREAT | UV_FS_O_EXCL, 0600);
    if (fd < 0)
        return io_error(err, fd, "open", tmp);
    uv_fs_t req;
    if (uv_fs_fstat(loop, &req, s->j->fd, NULL) == 0) {
        int mode = (int)(req.statbuf.st_mode & 07777);
        uv_fs_req_cleanup(&req);
        uv_fs_fchmod(loop, &req, fd, mode, NULL);
    }
    uv_fs_req_cleanup(&req);
    int rc = copy_kept(s, fd);
    if (rc == 0)
        rc = sync_fsync(loop, fd);
    sync_close(loop, fd);
    if (rc == UV_ENOMEM) /* copy_kept's buffer: no I/O failed */
        return sky_error_set(err, SKY_ENOMEM, "out of memory rewriting %s", s->j->path);
    return rc < 0 ? io_error(err, rc, "write", tmp) : 0;
}

/* retry_failed: rewrite without the failed records, then rename over the original. */
static int compact(scan *s, sky_error *err)
{
    sky_journal *j = s->j;
    size_t n = strlen(j->path);
    char *tmp = malloc(n + 5);
    if (tmp == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    memcpy(tmp, j->path, n);
    memcpy(tmp + n, ".tmp", 5);
    int rc = write_tmp(s, tmp, err);
    if (rc == 0) {
        uv_fs_t req;
        uv_fs_rename(j->loop, &req, tmp, j->path, NULL);
        int uvrc = (int)sync_done(&req);
        rc = uvrc < 0 ? io_error(err, uvrc, "rename", tmp) : 0;
    }
    if (rc < 0) /* a half-written copy must not be left filling the disk */
        sync_unlink(j->loop, tmp);
    free(tmp);
    if (rc < 0)
        return rc;
    sync_close(j->loop, j->fd);
    j->fd = -1;
    return open_locked(j, j->path, err);
}

static int truncate_tail(sky_journal *j, uint64_t size, sky_error *err)
{
    uv_fs_t req;
    uv_fs_ftruncate(j->loop, &req, j->fd, (int64_t)size, NULL);
    int rc = (int)sync_done(&req);
    if (rc == 0)
        rc = sync_fsync(j->loop, j->fd);
    return rc < 0 ? io_error(err, rc, "truncate", j->path) : 0;
}

static uint64_t kept_size(const scan *s)
{
    uint64_t size = s->good_end;
    for (size_t i = 0; i < s->ndrops; i++)
        size -= s->drops[i].len;
    return size;
}

/* The newline a whole last record lost, added at the end of the (repaired) file. */
static int add_newline(sky_journal *j, sky_error *err)
{
    int rc = sync_write_all(j->loop, j->fd, "\n", 1);
    if (rc == 0)
        rc = sync_fsync(j->loop, j->fd);
    return rc < 0 ? io_error(err, rc, "write", j->path) : 0;
}

/*
 * Lines there are, and none is a result: this is not Batch output (the input file given
 * as the output, say). Resuming would skip its ids, --retry-failed would delete them, and
 * a repair would cut its last line; refuse instead.
 */
static int check_batch_output(const scan *s, sky_error *err)
{
    if (s->records > 0 || s->nonblank == 0 || s->j->opts.any_lines)
        return 0;
    return sky_error_set(err, SKY_EINVAL,
                         "%s does not look like Batch output: none of its %llu lines is a "
                         "result (custom_id with response or error). Is it the input? Give "
                         "another file",
                         s->j->path, (unsigned long long)s->nonblank);
}

static int scan_and_repair(sky_journal *j, sky_error *err)
{
    scan s;
    memset(&s, 0, sizeof(s));
    s.j = j;
    sky_buf_init(&s.line, j->opts.max_line_bytes);
    uint64_t size = 0;
    int rc = scan_file(&s, &size, err);
    if (rc == 0 && (rc = scan_tail(&s, size)) < 0)
        sky_error_set(err, rc, "scanning %s: %s", j->path, sky_strerror(rc));
    if (rc == 0)
        rc = check_batch_output(&s, err);
    if (rc == 0) {
        if (s.ndrops > 0)
            rc = compact(&s, err);
        else if (s.good_end < size)
            rc = truncate_tail(j, s.good_end, err);
    }
    if (rc == 0 && s.tail_newline)
        rc = add_newline(j, err);
    if (rc == 0)
        rc = sync_dir(j->loop, j->path, err);
    j->good_size = kept_size(&s) + (uint64_t)s.tail_newline;
    sky_buf_free(&s.line);
    free(s.drops);
    return rc;
}

/* ---- the journal ------------------------------------------------------- */

static void journal_free(sky_journal *j)
{
    sky_idset_free(j->done);
    sky_buf_free(&j->queue);
    sky_buf_free(&j->inflight);
    free(j->path);
    free(j);
}

/*
 * The file a link names, when it exists: --retry-failed renames its rewrite over the path,
 * which must be the file itself, not a link that the rename would replace.
 */
static char *real_path(uv_loop_t *loop, const char *path)
{
    uv_fs_t req;
    char *out = uv_fs_realpath(loop, &req, path, NULL) == 0 ? strdup(req.ptr) : strdup(path);
    uv_fs_req_cleanup(&req);
    return out;
}

static sky_journal *journal_new(uv_loop_t *loop, const char *path, const sky_journal_options *opts)
{
    sky_journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->loop = loop;
    j->fd = -1;
    if (opts != NULL)
        j->opts = *opts;
    else
        sky_journal_options_init(&j->opts);
    /* The pending cap is enforced by append; the buffers only stop runaway growth. */
    sky_buf_init(&j->queue, SIZE_MAX / 2);
    sky_buf_init(&j->inflight, SIZE_MAX / 2);
    j->path = real_path(loop, path);
    j->done = sky_idset_new(j->opts.expected_records);
    if (j->path == NULL || j->done == NULL) {
        journal_free(j);
        return NULL;
    }
    return j;
}

static void pump(sky_journal *j);

static void on_tick(uv_timer_t *t)
{
    sky_journal *j = t->data;
    if (j->dirty) {
        j->sync_due = 1;
        pump(j);
    }
}

/* The timer does not keep the loop alive: pending writes do, and close syncs. */
static void start_timer(sky_journal *j)
{
    uv_timer_init(j->loop, &j->timer);
    j->timer.data = j;
    uint64_t ms = j->opts.flush_interval_ms;
    if (ms > 0)
        uv_timer_start(&j->timer, on_tick, ms, ms);
    uv_unref((uv_handle_t *)&j->timer);
}

int sky_journal_open(uv_loop_t *loop, const char *path, const sky_journal_options *opts,
                     sky_journal **out, sky_error *err)
{
    if (out != NULL)
        *out = NULL;
    if (loop == NULL || path == NULL || *path == '\0' || out == NULL)
        return sky_error_set(err, SKY_EINVAL, "journal needs a loop, a path and an out pointer");
    sky_journal *j = journal_new(loop, path, opts);
    if (j == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    int rc = open_locked(j, path, err);
    if (rc == 0)
        rc = scan_and_repair(j, err);
    if (rc < 0) {
        if (j->fd >= 0)
            sync_close(loop, j->fd);
        journal_free(j);
        return rc;
    }
    start_timer(j);
    *out = j;
    return 0;
}

int sky_journal_is_done(const sky_journal *j, const char *custom_id)
{
    return j != NULL && custom_id != NULL && sky_idset_contains(j->done, sky_span_cstr(custom_id));
}

size_t sky_journal_pending_bytes(const sky_journal *j)
{
    return j->queue.len + (j->inflight.len - j->inflight_off);
}

static uint64_t pending_records(const sky_journal *j);

uint64_t sky_journal_pending_records(const sky_journal *j)
{
    return pending_records(j);
}

void sky_journal_get_stats(const sky_journal *j, sky_journal_stats *out)
{
    *out = j->stats;
}

/* ---- writing ----------------------------------------------------------- */

static void fail(sky_journal *j, int uvrc, const char *what)
{
    int first = !j->failed;
    j->failed = 1;
    io_error(&j->err, uvrc, what, j->path);
    if (first && j->opts.on_error != NULL)
        j->opts.on_error(j, &j->err, j->opts.user_data);
}

/*
 * Keep the whole lines a failed write got onto disk; the rest of the batch and
 * the queue are lost (counted in unwritten), and a torn line is cut next.
 */
static void write_failed(sky_journal *j, int uvrc)
{
    uint64_t lines = 0;
    size_t keep = 0;
    for (size_t i = 0; i < j->inflight_off; i++) {
        if (j->inflight.data[i] == '\n') {
            lines++;
            keep = i + 1;
        }
    }
    j->stats.written += lines;
    j->stats.unwritten += j->inflight_records - lines + j->queue_records;
    j->good_size += keep;
    j->need_truncate = keep < j->inflight_off;
    j->inflight_records = j->queue_records = 0;
    sky_buf_reset(&j->inflight);
    sky_buf_reset(&j->queue);
    j->inflight_off = 0;
    fail(j, uvrc, "write");
}

static void on_write(uv_fs_t *req);

static void write_rest(sky_journal *j)
{
    size_t left = j->inflight.len - j->inflight_off;
    uv_buf_t b = uv_buf_init(j->inflight.data + j->inflight_off,
                             (unsigned)(left < MAX_WRITE ? left : MAX_WRITE));
    j->req.data = j;
    int rc = uv_fs_write(j->loop, &j->req, j->fd, &b, 1, -1, on_write);
    if (rc < 0)
        write_failed(j, rc);
    else
        j->busy = 1;
}

static void wrote(sky_journal *j, size_t n)
{
    j->stats.bytes_written += n;
    j->dirty = 1;
    j->inflight_off += n;
    if (j->inflight_off < j->inflight.len) {
        write_rest(j);
        return;
    }
    j->stats.written += j->inflight_records;
    j->inflight_records = 0;
    j->good_size += j->inflight.len;
    sky_buf_reset(&j->inflight);
    j->inflight_off = 0;
    if (j->opts.flush_interval_ms == 0)
        j->sync_due = 1;
}

static void notify_drain(sky_journal *j)
{
    if (!j->refused || j->closing || j->failed || j->opts.on_drain == NULL)
        return;
    if (sky_journal_pending_bytes(j) > j->opts.max_pending_bytes / 2 ||
        pending_records(j) > j->opts.max_pending_records / 2)
        return;
    j->refused = 0;
    j->opts.on_drain(j, j->opts.user_data);
}

static void on_write(uv_fs_t *req)
{
    sky_journal *j = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    j->busy = 0;
    if (n < 0)
        write_failed(j, (int)n);
    else if (n == 0)
        write_failed(j, UV_EIO);
    else
        wrote(j, (size_t)n);
    pump(j);
    notify_drain(j);
}

/* Swap the queue into flight: one write for every whole line queued so far. */
static void start_write(sky_journal *j)
{
    sky_buf t = j->inflight;
    j->inflight = j->queue;
    j->queue = t;
    sky_buf_reset(&j->queue);
    j->inflight_off = 0;
    j->inflight_records = j->queue_records;
    j->queue_records = 0;
    write_rest(j);
}

static void on_sync(uv_fs_t *req)
{
    sky_journal *j = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    j->syncing = 0;
    if (rc < 0)
        fail(j, (int)rc, "fdatasync");
    else
        j->stats.syncs++;
    pump(j);
}

/*
 * The sync covers every write that finished before it began; a write finishing
 * meanwhile makes the file dirty again, for the next one. Writes go on during
 * a sync: a slow disk delays durability, not the queue (which a kill loses).
 */
static void start_sync(sky_journal *j)
{
    j->sync_req.data = j;
    j->dirty = 0;
    j->sync_due = 0;
    int rc = uv_fs_fdatasync(j->loop, &j->sync_req, j->fd, on_sync);
    if (rc == 0) {
        j->syncing = 1;
        return;
    }
    fail(j, rc, "fdatasync");
    pump(j);
}

static void on_truncate(uv_fs_t *req)
{
    sky_journal *j = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    j->busy = 0;
    if (rc < 0)
        io_error(&j->err, (int)rc, "truncate", j->path);
    pump(j);
}

/* After a failed write, cut the torn line so a rerun finds a clean file. */
static void start_truncate(sky_journal *j)
{
    j->need_truncate = 0;
    j->dirty = 1;
    j->req.data = j;
    int rc = uv_fs_ftruncate(j->loop, &j->req, j->fd, (int64_t)j->good_size, on_truncate);
    if (rc == 0) {
        j->busy = 1;
        return;
    }
    io_error(&j->err, rc, "truncate", j->path);
    pump(j);
}

static void on_timer_closed(uv_handle_t *h)
{
    sky_journal *j = h->data;
    if (j->close_cb != NULL)
        j->close_cb(j, &j->err, j->close_ud);
    journal_free(j);
}

static void on_file_closed(uv_fs_t *req)
{
    sky_journal *j = req->data;
    ssize_t rc = req->result;
    uv_fs_req_cleanup(req);
    /* Some file systems (NFS) report delayed write errors only here. */
    if (rc < 0)
        io_error(&j->err, (int)rc, "close", j->path);
    j->fd = -1;
    uv_close((uv_handle_t *)&j->timer, on_timer_closed);
}

static void start_close(sky_journal *j)
{
    j->busy = 1; /* for good: nothing starts after this */
    j->req.data = j;
    if (uv_fs_close(j->loop, &j->req, j->fd, on_file_closed) < 0) {
        j->fd = -1;
        uv_close((uv_handle_t *)&j->timer, on_timer_closed);
    }
}

/*
 * Start what is due: a sync as soon as the flush interval passed while dirty,
 * beside the writes; one write at a time for the queued lines; a torn line cut
 * only while nothing else runs; on close, the last sync and the close itself.
 */
static void pump(sky_journal *j)
{
    if (j->dirty && j->sync_due && !j->syncing && !j->need_truncate)
        start_sync(j);
    if (j->busy)
        return;
    if (j->need_truncate) {
        if (!j->syncing)
            start_truncate(j);
    } else if (j->queue.len > 0) {
        start_write(j);
    } else if (j->closing && !j->syncing) {
        if (j->dirty)
            start_sync(j);
        else
            start_close(j);
    }
}

/* ---- appending --------------------------------------------------------- */

static int check_line(const sky_journal *j, const char *line, size_t len)
{
    if (j->closing)
        return SKY_ESTATE;
    if (j->failed)
        return SKY_EIO;
    if (line == NULL || len == 0)
        return SKY_EINVAL;
    if (len > j->opts.max_line_bytes)
        return SKY_ETOOBIG;
    if (memchr(line, '\n', len) != NULL)
        return SKY_EINVAL;
    return 0;
}

static uint64_t pending_records(const sky_journal *j)
{
    return j->queue_records + j->inflight_records;
}

/*
 * Room for one more line? An empty queue takes any line, so a big one cannot
 * stall. The record cap bounds what a kill can lose, whatever the lines' size.
 */
static int check_room(sky_journal *j, size_t len)
{
    size_t pending = sky_journal_pending_bytes(j);
    if (pending == 0 || (pending + len + 1 <= j->opts.max_pending_bytes &&
                         pending_records(j) < j->opts.max_pending_records))
        return 0;
    j->refused = 1;
    return SKY_EBUSY;
}

static int queue_line(sky_journal *j, const char *custom_id, const char *line, size_t len)
{
    size_t mark = j->queue.len;
    int rc = sky_buf_append(&j->queue, line, len);
    if (rc == 0)
        rc = sky_buf_append(&j->queue, "\n", 1);
    if (rc == 0)
        rc = sky_idset_add(j->done, sky_span_cstr(custom_id));
    if (rc < 0) {
        j->queue.len = mark;
        if (j->queue.data != NULL)
            j->queue.data[mark] = '\0';
        return rc == SKY_ETOOBIG ? SKY_ENOMEM : rc;
    }
    j->queue_records++;
    j->stats.appended++;
    return 0;
}

int sky_journal_append_id(sky_journal *j, const char *custom_id, const char *line, size_t len)
{
    if (j == NULL || custom_id == NULL)
        return SKY_EINVAL;
    int rc = check_line(j, line, len);
    if (rc < 0)
        return rc;
    if (sky_idset_contains(j->done, sky_span_cstr(custom_id)))
        return SKY_JOURNAL_DUP;
    rc = check_room(j, len);
    if (rc == 0)
        rc = queue_line(j, custom_id, line, len);
    if (rc == 0)
        pump(j);
    return rc;
}

int sky_journal_append(sky_journal *j, const char *line, size_t len)
{
    if (j == NULL)
        return SKY_EINVAL;
    int rc = check_line(j, line, len);
    if (rc < 0)
        return rc;
    json_t *root;
    rc = sky_json_parse(sky_span_make(line, len), &root, NULL);
    if (rc < 0)
        return rc == SKY_ENOMEM ? rc : SKY_EINVAL;
    const char *id = json_is_object(root) ? sky_json_str(root, "custom_id", NULL) : NULL;
    rc = id != NULL ? sky_journal_append_id(j, id, line, len) : SKY_EINVAL;
    json_decref(root);
    return rc;
}

void sky_journal_set_handlers(sky_journal *j, sky_journal_error_cb on_error,
                              sky_journal_drain_cb on_drain, void *user_data)
{
    j->opts.on_error = on_error;
    j->opts.on_drain = on_drain;
    j->opts.user_data = user_data;
}

int sky_journal_close(sky_journal *j, sky_journal_close_cb cb, void *user_data)
{
    if (j == NULL)
        return SKY_EINVAL;
    if (j->closing)
        return SKY_ESTATE;
    j->closing = 1;
    j->close_cb = cb;
    j->close_ud = user_data;
    uv_timer_stop(&j->timer);
    pump(j);
    return 0;
}
