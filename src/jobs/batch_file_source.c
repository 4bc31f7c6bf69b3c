/*
 * The batch's file source: the lines of a file (or standard input) read in chunks with
 * libuv's fs calls, one chunk ahead at most, so memory does not grow with the file. The next
 * chunk is read while the current one's lines are handed over: the engine reads only a few
 * lines ahead of its slots, and a read that began only once a chunk ran out left them idle
 * for the thread pool's round trip. A line that lies within a chunk is handed over where it
 * lies; one that spans chunks is gathered in a buffer capped at the line limit plus a chunk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "skyio/batch.h"
#include "skyio/buf.h"

#define CHUNK (64 * 1024)

typedef struct file_source {
    sky_batch_source base;
    uv_loop_t *loop;
    char *path;
    uv_file fd;
    int stream;      /* standard input: read as a stream, no offsets */
    uv_stat_t stat;  /* of the open file */
    int64_t offset;  /* where the next read starts */
    uint64_t handed; /* bytes handed over as lines (or skipped as too long) */
    uv_fs_t req;
    char chunks[2][CHUNK];
    char *chunk; /* the one handed over: chunks[0] or chunks[1] */
    size_t chunk_len, chunk_pos;
    size_t next_len;  /* the other one, read ahead: its length once read_ahead */
    int read_ahead;   /* the other chunk holds the next read's result */
    sky_buf partial;  /* a line that spans chunks */
    int partial_out;  /* the last line handed over is partial's: empty it first */
    int skipping;     /* the current line outgrew partial: skip to its end */
    uint64_t line_no; /* the last line handed over */
    int reading, eof, closing;
    sky_error failure; /* a read that failed */
} file_source;

static void fs_free(file_source *s)
{
    uv_fs_t req;
    if (s->fd >= 0) {
        uv_fs_close(NULL, &req, s->fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    sky_buf_free(&s->partial);
    free(s->path);
    free(s);
}

static void on_read(uv_fs_t *req)
{
    file_source *s = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    s->reading = 0;
    if (s->closing) {
        fs_free(s);
        return;
    }
    if (n < 0)
        sky_error_set(&s->failure, SKY_EIO, "reading %s: %s", s->path, uv_strerror((int)n));
    else if (n == 0)
        s->eof = 1;
    s->next_len = n > 0 ? (size_t)n : 0;
    s->read_ahead = n > 0;
    s->offset += n > 0 ? n : 0;
    sky_batch_source_ready(&s->base);
}

static char *other_chunk(file_source *s)
{
    return s->chunk == s->chunks[0] ? s->chunks[1] : s->chunks[0];
}

/* Into the chunk not handed over: the lines handed over from it are done with, since a
 * line lives only until the next call to next. */
static int start_read(file_source *s)
{
    uv_buf_t buf = uv_buf_init(other_chunk(s), CHUNK);
    s->req.data = s;
    int64_t at = s->stream ? -1 : s->offset; /* a pipe has no offsets */
    int rc = uv_fs_read(s->loop, &s->req, s->fd, &buf, 1, at, on_read);
    if (rc < 0)
        return sky_error_set(&s->failure, SKY_EIO, "reading %s: %s", s->path, uv_strerror(rc));
    s->reading = 1;
    return 0;
}

static void hand_over(file_source *s, sky_batch_source_line *out, sky_span text, int too_long)
{
    out->text = too_long ? sky_span_make(NULL, 0) : text;
    out->number = ++s->line_no;
    out->too_long = too_long;
}

/* From the chunk: 1 with a line in @p out, 0 when the chunk ended inside a line. */
static int take_line(file_source *s, sky_batch_source_line *out)
{
    const char *p = s->chunk + s->chunk_pos;
    size_t n = s->chunk_len - s->chunk_pos;
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) + 1 : n;
    s->chunk_pos += take;
    s->handed += take;
    if (nl && s->partial.len == 0 && !s->skipping) {
        hand_over(s, out, sky_span_make(p, take), 0); /* where it lies: no copy */
        return 1;
    }
    if (!s->skipping && sky_buf_append(&s->partial, p, take) < 0)
        s->skipping = 1; /* a line over every limit: report it and skip to its end */
    if (!nl)
        return 0;
    hand_over(s, out, sky_buf_span(&s->partial), s->skipping);
    s->partial_out = 1;
    s->skipping = 0;
    return 1;
}

/* At the end of the input: a last line without its newline, then the end. */
static int last_line(file_source *s, sky_batch_source_line *out)
{
    if (s->partial.len == 0 && !s->skipping)
        return SKY_BATCH_SOURCE_END;
    hand_over(s, out, sky_buf_span(&s->partial), s->skipping);
    s->partial_out = 1;
    s->skipping = 0;
    return 0;
}

/* The chunk read ahead becomes the one handed over. */
static void next_chunk(file_source *s)
{
    s->chunk = other_chunk(s);
    s->chunk_len = s->next_len;
    s->chunk_pos = 0;
    s->read_ahead = 0;
}

/* Read the next chunk while this one's lines go out, when the other chunk is free. */
static void read_on(file_source *s)
{
    if (!s->reading && !s->read_ahead && !s->eof && s->failure.code == 0)
        (void)start_read(s);
}

static int fs_next(sky_batch_source *src, sky_batch_source_line *out, sky_error *err)
{
    file_source *s = (file_source *)src;
    if (s->partial_out) {
        sky_buf_reset(&s->partial);
        s->partial_out = 0;
    }
    for (;;) {
        while (s->chunk_pos < s->chunk_len)
            if (take_line(s, out)) {
                read_on(s);
                return 0;
            }
        if (!s->read_ahead)
            break;
        next_chunk(s);
    }
    if (s->failure.code == 0 && s->eof)
        return last_line(s, out);
    if (s->failure.code == 0 && !s->reading)
        (void)start_read(s);
    if (s->failure.code) {
        *err = s->failure;
        return s->failure.code;
    }
    return SKY_BATCH_SOURCE_WAIT;
}

static void fs_position(const sky_batch_source *src, uint64_t *out_done, uint64_t *out_total)
{
    const file_source *s = (const file_source *)src;
    *out_done = s->handed;
    *out_total = S_ISREG(s->stat.st_mode) ? s->stat.st_size : 0;
}

static void fs_close(sky_batch_source *src)
{
    file_source *s = (file_source *)src;
    if (s->reading)
        s->closing = 1; /* on_read frees it */
    else
        fs_free(s);
}

static const char *file_kind(uint64_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

/*
 * A regular file, read by offset, or "-", standard input read as a stream. Anything else
 * would never end (/dev/zero), block at open (a FIFO without a writer) or fail at the first
 * read: refuse it before anything runs. O_NONBLOCK only keeps the open of a FIFO from
 * blocking; regular files ignore it.
 */
static int open_fd(file_source *s, sky_error *err)
{
    uv_fs_t req;
    s->stream = strcmp(s->path, "-") == 0;
    if (s->stream) {
        s->fd = dup(0);
        if (s->fd < 0)
            return sky_error_set(err, SKY_EIO, "cannot read standard input: %s", strerror(errno));
    } else {
        s->fd = uv_fs_open(NULL, &req, s->path, O_RDONLY | O_NONBLOCK, 0, NULL);
        uv_fs_req_cleanup(&req);
        if (s->fd < 0)
            return sky_error_set(err, SKY_EIO, "cannot open %s: %s", s->path, uv_strerror(s->fd));
    }
    int rc = uv_fs_fstat(NULL, &req, s->fd, NULL);
    s->stat = req.statbuf;
    uv_fs_req_cleanup(&req);
    if (rc < 0)
        return sky_error_set(err, SKY_EIO, "cannot read %s", s->path);
    if (!s->stream && !S_ISREG(s->stat.st_mode))
        return sky_error_set(err, SKY_EINVAL, "%s is %s, not a regular file", s->path,
                             file_kind(s->stat.st_mode));
    return 0;
}

int sky_batch_file_source_open(uv_loop_t *loop, const char *path, size_t max_line_bytes,
                               sky_batch_source **out, sky_error *err)
{
    *out = NULL;
    file_source *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    s->fd = -1;
    s->loop = loop;
    s->chunk = s->chunks[0];
    /* a line is gathered whole, up to the limit plus one read */
    sky_buf_init(&s->partial,
                 (max_line_bytes ? max_line_bytes : SKY_BATCHLINE_MAX_DEFAULT) + CHUNK);
    int rc = open_fd(s, err);
    if (rc < 0) {
        fs_free(s);
        return rc;
    }
    s->base.next = fs_next;
    s->base.position = fs_position;
    s->base.close = fs_close;
    *out = &s->base;
    return 0;
}

int sky_batch_file_source_reads(const sky_batch_source *src, const char *path)
{
    const file_source *s = (const file_source *)src;
    uv_fs_t req;
    if (src == NULL || src->next != fs_next || path == NULL)
        return 0;
    int same = uv_fs_stat(NULL, &req, path, NULL) == 0 && req.statbuf.st_dev == s->stat.st_dev &&
               req.statbuf.st_ino == s->stat.st_ino;
    uv_fs_req_cleanup(&req);
    return same;
}
