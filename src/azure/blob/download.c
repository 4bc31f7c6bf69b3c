/*
 * File download: HEAD, then ranged GETs in parallel, each written at its offset with uv_fs_write
 * into "<path>.skyio-partial", renamed over the path only when every byte is in: a failed
 * download never destroys the file that was there.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "internal.h"

/*
 * A range is not held whole in memory: its bytes pass through a ring of RING_BYTES per
 * range in flight and go to the file (uv_fs_write) in pieces of at least WRITE_MIN while
 * more arrive. When the ring is full the transfer pauses until a write has made room.
 */
#define RING_BYTES (512u * 1024)
#define WRITE_MIN (128u * 1024)

/* The file being written until every byte is in: "<path>" PARTIAL_SUFFIX (see partial_name). */
#define PARTIAL_SUFFIX ".skyio-partial"

typedef struct dl_state dl_state;

typedef struct dl_slot {
    dl_state *d;
    sky__blob_req *req; /* the GET in flight */
    uint32_t index;
    int64_t off;    /* the range's first byte in the file */
    size_t len;     /* the range's length */
    size_t rx;      /* bytes of this attempt taken from curl */
    size_t flushed; /* bytes of the range written to the file */
    char *buf;
    size_t cap, head, count; /* ring: count bytes at buf[head..] wait for the file */
    size_t wlen;             /* bytes of the write in flight */
    int writing;             /* a uv_fs_write is out on fs */
    int stale;               /* ... of an attempt that is over */
    int held;                /* curl is paused until a write makes room */
    int ended;               /* the GET is over (err says how); finish once writes are done */
    sky_error err;
    uv_fs_t fs;
} dl_slot;

struct dl_state {
    sky_blob_op *op;
    char *container, *blob, *path, *etag;
    char *tmp; /* path + ".skyio-partial" */
    size_t block_size;
    int concurrency;
    sky_blob_progress_cb on_progress;
    void *progress_ud;
    uv_file fd;
    uv_fs_t ctl;
    int64_t size;
    uint32_t nranges, cursor, done;
    dl_slot *slots;
    int nslots, active;
    int ctl_busy, closing, started;
    int verify;        /* check the file against the blob's Content-MD5 before it is kept */
    int verified;      /* ... done (or not needed) */
    char want_md5[32]; /* the blob's Content-MD5 (base64), empty when it has none */
    char got_md5[32];
    uv_work_t work;
};

static void dl_free(void *p)
{
    dl_state *d = p;
    if (d == NULL)
        return;
    for (int i = 0; i < d->nslots; i++)
        free(d->slots[i].buf);
    free(d->slots);
    free(d->container);
    free(d->blob);
    free(d->path);
    free(d->tmp);
    free(d->etag);
    free(d);
}

static void dl_check_end(dl_state *d);

static void dl_fail(dl_state *d, int code, const char *what, int uverr)
{
    sky_error e;
    char path[96];
    sky_error_clear(&e);
    /* A long path is cut, so the message keeps room for why. */
    sky__blob_short(d->path, strlen(d->path), path, sizeof(path));
    if (uverr)
        sky_error_set(&e, code, "download %s: %s: %s", path, what, uv_strerror(uverr));
    else
        sky_error_set(&e, code, "download %s: %s", path, what);
    sky__blob_op_fail(d->op, &e);
}

/* ---- slots: GET a range, write it as it arrives ---- */

static void dl_next(dl_slot *s);
static void ring_write(dl_slot *s, int force);

/* The GET is over and nothing is left to write: count the range and take the next. */
static void range_finish(dl_slot *s)
{
    dl_state *d = s->d;
    sky_blob_op *op = d->op;
    if (s->err.code != 0) {
        sky__blob_op_fail(op, &s->err);
    } else if (s->flushed != s->len) {
        dl_fail(d, SKY_EPARTIAL, "a range came back with the wrong length", 0);
    } else {
        op->stats.blocks_sent++;
        op->stats.bytes_done += (int64_t)s->len;
        d->done++;
        if (d->on_progress && op->err.code == 0)
            d->on_progress(op, &op->stats, d->progress_ud);
    }
    dl_next(s);
}

static void ring_on_write(uv_fs_t *req)
{
    dl_slot *s = req->data;
    dl_state *d = s->d;
    sky_blob_op *op = d->op;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    s->writing = 0;
    if (s->stale) {
        s->stale = 0; /* the bytes were right, but the new attempt writes them again */
    } else if (n < 0) {
        dl_fail(d, SKY_EIO, "write", (int)n);
    } else {
        /* uv_fs_write writes all or fails, short of a full disk, which fails next time. */
        s->head = (s->head + (size_t)n) % s->cap;
        s->count -= (size_t)n;
        s->flushed += (size_t)n;
        if (s->count == 0)
            s->head = 0;
    }
    if (s->ended && (s->count == 0 || s->err.code != 0 || op->err.code != 0)) {
        range_finish(s);
    } else {
        ring_write(s, 0);
        if (s->held && op->err.code == 0) {
            s->held = 0;
            sky__blob_req_resume(s->req); /* the held chunk may come in from inside */
        }
    }
    sky__blob_op_unref(op);
}

/* Write what waits, once there is a worthwhile piece, the range is all in, or (@p force)
 * curl waits for room. */
static void ring_write(dl_slot *s, int force)
{
    dl_state *d = s->d;
    if (s->writing || s->count == 0 || d->op->err.code != 0)
        return;
    size_t n = s->cap - s->head < s->count ? s->cap - s->head : s->count;
    if (!force && n < WRITE_MIN && s->rx < s->len && s->count < s->cap / 2)
        return;
    uv_buf_t b = uv_buf_init(s->buf + s->head, (unsigned)n);
    s->fs.data = s;
    d->op->refs++;
    int rc = uv_fs_write(d->op->c->loop, &s->fs, d->fd, &b, 1, s->off + (int64_t)s->flushed,
                         ring_on_write);
    if (rc != 0) {
        d->op->refs--;
        dl_fail(d, SKY_EIO, "write", rc);
        return;
    }
    s->writing = 1;
    s->wlen = n;
}

/* A chunk of the range from curl: into the ring, or held (SKY_HTTP_PAUSE) while it is full. */
static int ring_put(void *ud, const char *data, size_t len)
{
    dl_slot *s = ud;
    if (len > s->len - s->rx) {
        sky_error_set(&s->err, SKY_EPROTO, "download %s: a range came back longer than asked",
                      s->d->path);
        return 1; /* the request fails */
    }
    if (s->stale || s->cap - s->count < len) {
        s->held = 1;
        ring_write(s, 1); /* its end resumes curl */
        return SKY_HTTP_PAUSE;
    }
    size_t tail = (s->head + s->count) % s->cap;
    size_t first = s->cap - tail < len ? s->cap - tail : len;
    memcpy(s->buf + tail, data, first);
    memcpy(s->buf, data + first, len - first);
    s->count += len;
    s->rx += len;
    ring_write(s, 0);
    return 0;
}

/* A new attempt brings the range from its first byte: drop what the last one left. */
static void ring_restart(void *ud)
{
    dl_slot *s = ud;
    s->rx = 0;
    s->flushed = 0;
    s->head = s->count = 0;
    s->held = 0;
    sky_error_clear(&s->err);
    if (s->writing)
        s->stale = 1;
}

static void dl_got(sky__blob_req *r, int status, const sky_headers *h, sky_span body,
                   const sky_error *err, void *ud)
{
    dl_slot *s = ud;
    (void)r, (void)status, (void)h, (void)body;
    s->req = NULL;
    s->ended = 1;
    if (err && s->err.code == 0)
        s->err = *err;
    else if (err == NULL && s->rx != s->len)
        sky_error_set(&s->err, SKY_EPARTIAL, "download %s: a range came back with the wrong length",
                      s->d->path);
    if (s->err.code == 0)
        ring_write(s, 0); /* the last piece, whatever its size */
    if (!s->writing)
        range_finish(s);
}

static int dl_range_headers(dl_slot *s, sky_headers *h)
{
    char range[80];
    snprintf(range, sizeof(range), "bytes=%" PRId64 "-%" PRId64, s->off,
             s->off + (int64_t)s->len - 1);
    int rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-range"), sky_span_cstr(range));
    if (rc == 0 && s->d->etag)
        rc = sky_headers_add(h, SKY_SPAN_LIT("If-Match"), sky_span_cstr(s->d->etag));
    return rc;
}

static void dl_get(dl_slot *s)
{
    dl_state *d = s->d;
    sky_buf url;
    sky_buf_init(&url, 64 * 1024);
    sky_headers *h = sky_headers_new();
    int rc = h ? sky__blob_url(d->op->c, d->container, d->blob, NULL, &url) : SKY_ENOMEM;
    if (rc == 0)
        rc = dl_range_headers(s, h);
    sky_error e;
    sky_error_clear(&e);
    if (rc == 0) {
        sky__blob_req_options o;
        memset(&o, 0, sizeof(o));
        o.method = "GET";
        o.url = url.data;
        o.headers = h;
        o.max_body = 64 * 1024; /* an error's XML; the bytes themselves go to the sink */
        o.sink = ring_put;
        o.on_attempt = ring_restart;
        o.large = s->len >= RING_BYTES / 2;
        o.cb = dl_got;
        o.user_data = s;
        rc = sky__blob_req_start(d->op, &o, &s->req, &e);
    } else {
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
    }
    sky_headers_free(h);
    sky_buf_free(&url);
    if (rc != 0) {
        sky__blob_op_fail(d->op, &e);
        dl_next(s);
    }
}

static void dl_next(dl_slot *s)
{
    dl_state *d = s->d;
    if (d->op->err.code != 0 || d->cursor >= d->nranges) {
        d->active--;
        dl_check_end(d);
        return;
    }
    s->index = d->cursor++;
    s->off = (int64_t)s->index * (int64_t)d->block_size;
    int64_t left = d->size - s->off;
    s->len = left < (int64_t)d->block_size ? (size_t)left : d->block_size;
    s->rx = s->flushed = s->head = s->count = 0;
    s->held = s->ended = s->stale = 0;
    sky_error_clear(&s->err);
    dl_get(s);
}

static int dl_start_slots(dl_state *d)
{
    uint64_t n = ((uint64_t)d->size + d->block_size - 1) / d->block_size;
    if (n > UINT32_MAX)
        return SKY_EINVAL; /* the range index is 32 bits: a bigger block size is needed */
    d->nranges = (uint32_t)n;
    d->op->stats.blocks_total = d->nranges;
    size_t want = (size_t)d->concurrency < n ? (size_t)d->concurrency : (size_t)n;
    d->slots = calloc(want ? want : 1, sizeof(*d->slots));
    if (d->slots == NULL)
        return SKY_ENOMEM;
    d->nslots = (int)want;
    d->active = d->nslots;
    d->started = 1;
    /* Whatever the range size: a chunk from curl (its receive buffer, at most 512 KiB)
     * must always fit an empty ring. */
    for (int i = 0; i < d->nslots; i++) {
        d->slots[i].d = d;
        d->slots[i].cap = RING_BYTES;
        if ((d->slots[i].buf = malloc(RING_BYTES)) == NULL)
            return SKY_ENOMEM;
    }
    for (int i = 0; i < d->nslots; i++)
        dl_next(&d->slots[i]);
    return 0;
}

/* ---- control: HEAD, open, close, then rename into place (or unlink the partial) ---- */

static void dl_report(dl_state *d)
{
    sky_blob_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.transfer = &d->op->stats;
    sky__blob_op_report(d->op, &rep, NULL);
}

static void dl_on_unlink(uv_fs_t *req)
{
    dl_state *d = req->data;
    sky_blob_op *op = d->op;
    uv_fs_req_cleanup(req);
    d->ctl_busy = 0;
    dl_report(d);
    sky__blob_op_unref(op);
}

/* Drop the partial file; the caller's reference passes to the unlink. */
static void dl_discard(dl_state *d)
{
    if (uv_fs_unlink(d->op->c->loop, &d->ctl, d->tmp, dl_on_unlink) == 0)
        return;
    d->ctl_busy = 0;
    dl_report(d);
    sky__blob_op_unref(d->op);
}

static void dl_on_rename(uv_fs_t *req)
{
    dl_state *d = req->data;
    sky_blob_op *op = d->op;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r < 0) {
        dl_fail(d, SKY_EIO, "rename into place", (int)r);
        dl_discard(d);
        return;
    }
    d->ctl_busy = 0;
    dl_report(d);
    sky__blob_op_unref(op);
}

static void dl_on_close(uv_fs_t *req)
{
    dl_state *d = req->data;
    sky_blob_op *op = d->op;
    uv_fs_req_cleanup(req);
    d->fd = -1;
    if (op->err.code != 0) {
        dl_discard(d);
        return;
    }
    /* rename() replaces a symlink at the path itself; it never writes through it. */
    int rc = uv_fs_rename(op->c->loop, &d->ctl, d->tmp, d->path, dl_on_rename);
    if (rc != 0) {
        dl_fail(d, SKY_EIO, "rename into place", rc);
        dl_discard(d);
    }
}

static void dl_close(dl_state *d)
{
    if (d->closing)
        return;
    d->closing = 1;
    if (d->fd < 0) {
        dl_report(d);
        return;
    }
    d->ctl_busy = 1;
    d->ctl.data = d;
    d->op->refs++;
    if (uv_fs_close(d->op->c->loop, &d->ctl, d->fd, dl_on_close) != 0) {
        d->fd = -1;
        d->ctl_busy = 0;
        dl_report(d);
        sky__blob_op_unref(d->op);
    }
}

/* In the thread pool: the MD5 of the file as written (from the page cache, mostly). */
static void verify_work(uv_work_t *w)
{
    dl_state *d = w->data;
    if (sky__blob_md5_file(d->fd, d->size, d->got_md5) != 0)
        d->got_md5[0] = '\0';
}

static void verify_after(uv_work_t *w, int status)
{
    dl_state *d = w->data;
    sky_blob_op *op = d->op;
    d->ctl_busy = 0;
    if (status != 0 || d->got_md5[0] == '\0')
        dl_fail(d, SKY_EIO, "cannot read the file back to check its MD5", 0);
    else if (strcmp(d->got_md5, d->want_md5) != 0)
        dl_fail(d, SKY_EIO, "the bytes do not match the blob's Content-MD5: not kept", 0);
    dl_check_end(d);
    sky__blob_op_unref(op);
}

/* Every byte is in: check it against the blob's MD5 when asked and the blob has one. */
static int dl_verify(dl_state *d)
{
    d->verified = 1;
    if (!d->verify || d->want_md5[0] == '\0' || d->fd < 0 || d->op->err.code != 0)
        return 0;
    d->work.data = d;
    d->ctl_busy = 1;
    d->op->refs++;
    if (uv_queue_work(d->op->c->loop, &d->work, verify_work, verify_after) != 0) {
        d->op->refs--;
        d->ctl_busy = 0;
        dl_fail(d, SKY_EINTERNAL, "cannot queue the MD5 check", 0);
        return 0;
    }
    return 1;
}

static void dl_check_end(dl_state *d)
{
    if (d->active > 0 || d->ctl_busy || d->closing)
        return;
    if (!d->verified && dl_verify(d))
        return;
    dl_close(d);
}

static void dl_on_open(uv_fs_t *req)
{
    dl_state *d = req->data;
    sky_blob_op *op = d->op;
    ssize_t fd = req->result;
    uv_fs_req_cleanup(req);
    d->ctl_busy = 0;
    if (fd < 0) {
        dl_fail(d, SKY_EIO, "open", (int)fd);
    } else {
        d->fd = (uv_file)fd;
        int rc = op->err.code == 0 && d->size > 0 ? dl_start_slots(d) : 0;
        if (rc == SKY_EINVAL)
            dl_fail(d, rc, "more than 2^32 ranges: use a larger block size", 0);
        else if (rc != 0)
            dl_fail(d, SKY_ENOMEM, "out of memory", 0);
    }
    dl_check_end(d);
    sky__blob_op_unref(op);
}

/* Open the partial file; holds the reference the caller took for ctl. */
static void dl_open(dl_state *d)
{
    /* O_EXCL and O_NOFOLLOW: never write through a file or symlink someone left there.
     * Read too: the MD5 check reads the file back. */
    int rc = uv_fs_open(d->op->c->loop, &d->ctl, d->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW,
                        0644, dl_on_open);
    if (rc != 0) {
        d->ctl_busy = 0;
        dl_fail(d, SKY_EIO, "open", rc);
        dl_check_end(d);
        sky__blob_op_unref(d->op);
    }
}

static void dl_on_stale_unlink(uv_fs_t *req)
{
    dl_state *d = req->data;
    uv_fs_req_cleanup(req);
    if (d->op->err.code != 0) {
        d->ctl_busy = 0;
        dl_check_end(d);
        sky__blob_op_unref(d->op);
        return;
    }
    dl_open(d);
}

static void dl_got_head(sky__blob_req *r, int status, const sky_headers *h, sky_span body,
                        const sky_error *err, void *ud)
{
    dl_state *d = ud;
    (void)r, (void)status, (void)body;
    d->ctl_busy = 0;
    if (err) {
        sky__blob_op_fail(d->op, err);
        dl_check_end(d);
        return;
    }
    const char *etag = sky_headers_get(h, "ETag");
    const char *md5 = sky_headers_get(h, "Content-MD5");
    if (md5 && strlen(md5) < sizeof(d->want_md5))
        snprintf(d->want_md5, sizeof(d->want_md5), "%s", md5);
    if (sky_headers_get_int64(h, "Content-Length", &d->size) != 0 || d->size < 0 ||
        (etag && (d->etag = strdup(etag)) == NULL)) {
        dl_fail(d, SKY_EPROTO, "no usable Content-Length in the properties", 0);
        dl_check_end(d);
        return;
    }
    d->op->stats.bytes_total = d->size;
    d->ctl.data = d;
    d->ctl_busy = 1;
    d->op->refs++;
    /* A partial file a crashed run left behind would make the O_EXCL open fail forever. */
    if (uv_fs_unlink(d->op->c->loop, &d->ctl, d->tmp, dl_on_stale_unlink) != 0)
        dl_open(d);
}

/*
 * "<path>.skyio-partial", or, when that name would pass NAME_MAX (a file name of 242 bytes
 * or more is fine itself), ".skyio-partial-<hash of the name>" in the same folder.
 */
static char *partial_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0, pl = strlen(path);
    char *tmp = malloc(pl + sizeof(PARTIAL_SUFFIX));
    if (tmp == NULL)
        return NULL;
    if (pl - dir + strlen(PARTIAL_SUFFIX) <= NAME_MAX) {
        memcpy(tmp, path, pl);
        memcpy(tmp + pl, PARTIAL_SUFFIX, sizeof(PARTIAL_SUFFIX));
        return tmp;
    }
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (const char *p = path + dir; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    memcpy(tmp, path, dir);
    snprintf(tmp + dir, pl - dir + sizeof(PARTIAL_SUFFIX), "%s-%016" PRIx64, PARTIAL_SUFFIX, h);
    return tmp;
}

static dl_state *dl_new(sky_blob_client *c, const char *container, const char *blob,
                        const char *path, const sky_blob_transfer_options *to)
{
    dl_state *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->fd = -1;
    d->container = strdup(container);
    d->blob = strdup(blob);
    d->path = strdup(path);
    d->tmp = partial_name(path);
    d->block_size = to && to->block_size ? to->block_size : c->o.block_size;
    d->concurrency = to && to->concurrency > 0 ? to->concurrency : c->o.concurrency;
    d->verify = to && to->verify_md5;
    d->on_progress = to ? to->on_progress : NULL;
    d->progress_ud = to ? to->progress_user_data : NULL;
    if (!d->container || !d->blob || !d->path || !d->tmp) {
        dl_free(d);
        return NULL;
    }
    return d;
}

int sky_blob_download_file(sky_blob_client *c, const char *container, const char *blob,
                           const char *path, const sky_blob_transfer_options *to,
                           sky_blob_done_cb cb, void *ud, sky_blob_op **out_op, sky_error *err)
{
    if (c == NULL || cb == NULL || c->freeing || !container || !container[0] || !blob || !blob[0] ||
        !path || !path[0])
        return sky_error_set(err, SKY_EINVAL,
                             "blob download: client, container, blob, path and callback required");
    if (sky_blob_name_check(blob, err) != 0 ||
        sky__blob_local_path_check(path, strlen(PARTIAL_SUFFIX), err) != 0)
        return SKY_EINVAL;
    dl_state *d = dl_new(c, container, blob, path, to);
    sky_blob_op *op = d ? sky__blob_op_new(c, cb, ud) : NULL;
    sky_buf url;
    sky_buf_init(&url, 64 * 1024);
    if (op == NULL || sky__blob_url(c, container, blob, NULL, &url) != 0) {
        if (op) {
            op->reported = 1;
            op->state = d;
            op->state_free = dl_free;
            sky__blob_op_unref(op);
        } else {
            dl_free(d);
        }
        sky_buf_free(&url);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    d->op = op;
    op->state = d;
    op->state_free = dl_free;
    sky__blob_req_options o;
    memset(&o, 0, sizeof(o));
    o.method = "HEAD";
    o.url = url.data;
    o.cb = dl_got_head;
    o.user_data = d;
    d->ctl_busy = 1;
    int rc = sky__blob_req_start(op, &o, NULL, err);
    sky_buf_free(&url);
    if (rc != 0) {
        op->reported = 1;
        sky__blob_op_unref(op);
        return rc;
    }
    if (out_op)
        *out_op = op;
    return 0;
}
