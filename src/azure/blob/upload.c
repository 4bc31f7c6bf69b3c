/* File upload: one PUT, or blocks staged in parallel with resume, then Put Block List. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "internal.h"

#define MAX_BLOCKS 50000u
#define ID_RAW_LEN 29 /* "skyio-" + 16 hex + "-" + 6 digits */

/*
 * A block is not held whole in memory: it streams from the file through a ring of
 * RING_BYTES per slot, read ahead with uv_fs_read while curl sends what is there.
 * With a transactional MD5 the block is read once more before, in the thread pool,
 * to hash it (the header must precede the body). Blocks that fit the ring, and single
 * puts up to it, are read once into memory and sent from there.
 */
#define RING_BYTES (512u * 1024)
/* No read smaller than this while more of the block is to come (too many syscalls). */
#define READ_MIN (64u * 1024)

typedef struct up_state up_state;

typedef struct up_slot {
    up_state *u;
    sky__blob_req *req; /* the PUT in flight, NULL between attempts' ends */
    char *buf;
    size_t cap;
    size_t len;         /* this block's (or the single put's) length */
    int streamed;       /* len > cap: the ring is in use */
    size_t head, count; /* ring: data at buf[head..], count bytes of it */
    size_t read_pos;    /* offset in the block of the next file read */
    size_t got;         /* whole-block mode: bytes read */
    int reading;        /* a uv_fs_read is in flight on fs */
    int stale;          /* ... for an attempt that is over: drop what it brings */
    int starving;       /* curl is paused until a read brings data */
    int sent;           /* the PUT has ended; move on once no read is in flight */
    uint32_t index;
    int single; /* the whole file in one PUT */
    uv_fs_t fs;
    uv_work_t work;
    int hash_failed;
    char md5[32];
} up_slot;

struct up_state {
    sky_blob_op *op;
    char *container, *blob, *path, *ctype, *md5;
    size_t block_size, single_max;
    int concurrency;
    int block_md5; /* a transactional Content-MD5 on every PUT */
    int store_md5; /* the file's MD5 on the blob, hashed while the blocks go */
    sky_blob_progress_cb on_progress;
    void *progress_ud;
    uv_file fd;
    uv_fs_t ctl;
    int64_t size;
    long mtime_s, mtime_ns; /* at the start: the file must not change before the commit */
    /* the first step, in the thread pool (see prep_work) */
    uv_work_t prep;
    int prep_errno;        /* errno of the step that failed, 0 when none */
    const char *prep_what; /* "open", "read" ...: what failed; with errno -1, the whole
                              message */
    char *whole;           /* a small file's bytes, read at once */
    char whole_md5[32];    /* ... and their MD5, when blocks carry one */
    int rechecked;
    uint64_t id_hash;
    uint32_t nblocks, cursor, staged;
    uint8_t *present;
    up_slot *slots;
    int nslots, active;
    int ctl_busy; /* a control step (open, stat, block list, commit, close) is in flight */
    int hashing;  /* the whole file's MD5 is being computed (store_md5) */
    uv_work_t file_hash;
    char file_md5[32];
    int committed;
    int closing;
    char *commit_body;
};

static void up_free(void *p)
{
    up_state *u = p;
    if (u == NULL)
        return;
    for (int i = 0; i < u->nslots; i++)
        free(u->slots[i].buf);
    free(u->slots);
    free(u->present);
    free(u->commit_body);
    free(u->whole);
    free(u->container);
    free(u->blob);
    free(u->path);
    free(u->ctype);
    free(u->md5);
    free(u);
}

static void up_check_end(up_state *u);

static void up_fail(up_state *u, int code, const char *what)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, code, "upload %s: %s", u->path, what);
    sky__blob_op_fail(u->op, &e);
}

static void up_fail_uv(up_state *u, const char *what, ssize_t uverr)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_EIO, "upload %s: %s: %s", u->path, what, uv_strerror((int)uverr));
    sky__blob_op_fail(u->op, &e);
}

static void up_progress(up_state *u)
{
    if (u->on_progress && u->op->err.code == 0)
        u->on_progress(u->op, &u->op->stats, u->progress_ud);
}

/* ---- block ids ---- */

static void block_id(const up_state *u, uint32_t index, char *out)
{
    char raw[64];
    snprintf(raw, sizeof(raw), "skyio-%016" PRIx64 "-%06" PRIu32, u->id_hash, index);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, ID_RAW_LEN);
}

/* Our index for a block name from the service, or -1 when it is not one of ours. */
static long block_index(const up_state *u, const char *name)
{
    unsigned char raw[64];
    size_t n = strlen(name);
    if (n != 40 || EVP_DecodeBlock(raw, (const unsigned char *)name, (int)n) < ID_RAW_LEN)
        return -1;
    char want[24];
    snprintf(want, sizeof(want), "skyio-%016" PRIx64 "-", u->id_hash);
    if (memcmp(raw, want, 23) != 0)
        return -1;
    long idx = 0;
    for (int i = 23; i < ID_RAW_LEN; i++) {
        if (raw[i] < '0' || raw[i] > '9')
            return -1;
        idx = idx * 10 + (raw[i] - '0');
    }
    return idx < (long)u->nblocks ? idx : -1;
}

static size_t block_len(const up_state *u, uint32_t index)
{
    int64_t off = (int64_t)index * (int64_t)u->block_size;
    int64_t left = u->size - off;
    return left < (int64_t)u->block_size ? (size_t)left : u->block_size;
}

/* The hash in every block id: the same file, unchanged, gives the same ids. */
static void id_hash(up_state *u)
{
    char text[512];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int len = snprintf(text, sizeof(text), "size=%" PRId64 ";mtime=%ld.%09ld;block=%zu", u->size,
                       u->mtime_s, u->mtime_ns, u->block_size);
    EVP_Digest(text, (size_t)len, md, &n, EVP_sha256(), NULL);
    u->id_hash = 0;
    for (int i = 0; i < 8; i++)
        u->id_hash = (u->id_hash << 8) | md[i];
}

/* ---- the slots: read, hash, send ---- */

static void slot_next(up_slot *s);
static void ring_fill(up_slot *s);

static void slot_sent(sky__blob_req *r, int status, const sky_headers *h, sky_span body,
                      const sky_error *err, void *ud)
{
    up_slot *s = ud;
    up_state *u = s->u;
    (void)r, (void)status, (void)h, (void)body;
    s->req = NULL;
    if (err) {
        sky__blob_op_fail(u->op, err);
    } else {
        u->op->stats.blocks_sent++;
        u->op->stats.bytes_done += (int64_t)s->len;
        u->staged++;
        if (s->single)
            u->committed = 1;
        up_progress(u);
    }
    /* A read ahead may still be out with our buffer: the slot moves on when it is back. */
    if (s->reading) {
        s->stale = 1;
        s->sent = 1;
        return;
    }
    slot_next(s);
}

static int slot_headers(up_slot *s, sky_headers *h)
{
    up_state *u = s->u;
    int rc = 0;
    if (s->md5[0])
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-MD5"), sky_span_cstr(s->md5));
    if (rc == 0)
        rc = sky_headers_add(
            h, SKY_SPAN_LIT("Content-Type"),
            sky_span_cstr(s->single && u->ctype ? u->ctype : "application/octet-stream"));
    if (rc == 0 && s->single)
        rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-blob-type"), SKY_SPAN_LIT("BlockBlob"));
    return rc;
}

/* The ring's data handed to curl; SKY_HTTP_PAUSE when a read has not brought it yet. */
static long ring_take(char *out, size_t cap, void *ud)
{
    up_slot *s = ud;
    if (s->count == 0) {
        if (s->read_pos >= s->len)
            return 0;
        s->starving = 1;
        ring_fill(s);
        return SKY_HTTP_PAUSE;
    }
    size_t n = s->cap - s->head < s->count ? s->cap - s->head : s->count;
    if (n > cap)
        n = cap;
    memcpy(out, s->buf + s->head, n);
    s->head = (s->head + n) % s->cap;
    s->count -= n;
    if (s->count == 0 && !s->reading)
        s->head = 0; /* empty: the next read gets the whole ring in one piece */
    ring_fill(s);
    return (long)n;
}

/* A new attempt sends the block from its first byte: forget what was read for the last. */
static void ring_restart(void *ud)
{
    up_slot *s = ud;
    s->head = s->count = 0;
    s->read_pos = 0;
    s->starving = 0;
    if (s->reading)
        s->stale = 1;
    ring_fill(s);
}

static void ring_on_read(uv_fs_t *req)
{
    up_slot *s = req->data;
    sky_blob_op *op = s->u->op;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    s->reading = 0;
    if (s->stale) {
        s->stale = 0;
        if (s->sent)
            slot_next(s);
        else
            ring_fill(s);
    } else if (n <= 0) {
        if (n < 0)
            up_fail_uv(s->u, "read", n);
        else
            up_fail(s->u, SKY_EIO, "the file got shorter while uploading");
    } else {
        s->count += (size_t)n;
        s->read_pos += (size_t)n;
        ring_fill(s);
        if (s->starving) {
            s->starving = 0;
            sky__blob_req_resume(s->req);
        }
    }
    sky__blob_op_unref(op);
}

/* Read ahead into the ring's free space, one read at a time. */
static void ring_fill(up_slot *s)
{
    up_state *u = s->u;
    size_t left = s->len - s->read_pos;
    if (s->reading || left == 0 || s->count == s->cap || u->op->err.code != 0)
        return;
    size_t tail = (s->head + s->count) % s->cap;
    size_t space = tail >= s->head ? s->cap - tail : s->head - tail;
    size_t want = space < left ? space : left;
    /* Free space before the data (tail < head) grows as curl takes more: wait for a
     * worthwhile piece. The piece up to the ring's end is read whatever its size. */
    if (tail < s->head && want < READ_MIN && want < left && !s->starving)
        return;
    uv_buf_t b = uv_buf_init(s->buf + tail, (unsigned)want);
    int64_t off = (int64_t)s->index * (int64_t)u->block_size + (int64_t)s->read_pos;
    s->fs.data = s;
    u->op->refs++;
    int rc = uv_fs_read(u->op->c->loop, &s->fs, u->fd, &b, 1, off, ring_on_read);
    if (rc != 0) {
        u->op->refs--;
        up_fail_uv(u, "read", rc);
        return;
    }
    s->reading = 1;
}

static void slot_send(up_slot *s)
{
    up_state *u = s->u;
    sky_buf url, q;
    char id[48];
    sky_buf_init(&url, 64 * 1024);
    sky_buf_init(&q, 1024);
    block_id(u, s->index, id);
    int rc = s->single ? 0 : sky_buf_append_str(&q, "comp=block&blockid=");
    if (rc == 0 && !s->single)
        rc = sky_storage_url_encode(sky_span_cstr(id), 0, &q);
    if (rc == 0)
        rc = sky__blob_url(u->op->c, u->container, u->blob, q.data, &url);
    sky_headers *h = sky_headers_new();
    if (rc == 0 && h != NULL && slot_headers(s, h) == 0) {
        sky__blob_req_options o;
        memset(&o, 0, sizeof(o));
        o.method = "PUT";
        o.url = url.data;
        o.headers = h;
        o.body = s->buf;
        o.body_len = s->len;
        if (s->streamed) {
            o.reader = ring_take;
            o.on_attempt = ring_restart;
            o.large = 1;
        }
        o.cb = slot_sent;
        o.user_data = s;
        sky_error e;
        sky_error_clear(&e);
        if (sky__blob_req_start(u->op, &o, &s->req, &e) != 0) {
            sky__blob_op_fail(u->op, &e);
            slot_next(s);
        }
    } else {
        up_fail(u, SKY_ENOMEM, "out of memory");
        slot_next(s);
    }
    sky_headers_free(h);
    sky_buf_free(&url);
    sky_buf_free(&q);
}

/* In the thread pool: the MD5 of what is in memory, or of the block read from the file. */
static void md5_work(uv_work_t *w)
{
    up_slot *s = w->data;
    up_state *u = s->u;
    s->hash_failed = 0;
    if (!s->streamed)
        sky__blob_md5_mem(s->buf, s->len, s->md5);
    else
        s->hash_failed = sky__blob_md5_fd(u->fd, (int64_t)s->index * (int64_t)u->block_size,
                                          (int64_t)s->len, s->buf, s->cap, s->md5) != 0;
}

static void md5_after(uv_work_t *w, int status)
{
    up_slot *s = w->data;
    sky_blob_op *op = s->u->op;
    if (status == 0 && s->hash_failed)
        up_fail(s->u, SKY_EIO, "cannot read the file to hash a block");
    if (status != 0 || op->err.code != 0)
        slot_next(s);
    else
        slot_send(s);
    sky__blob_op_unref(op);
}

/* The block's bytes are known (or will stream): hash them when asked, then send. */
static void slot_ready(up_slot *s)
{
    up_state *u = s->u;
    sky_blob_op *op = u->op;
    s->md5[0] = '\0';
    /* A single put of a file whose MD5 the caller gave needs no second hash: the
     * service refuses the PUT if the bytes do not match it. */
    if (s->single && u->md5) {
        snprintf(s->md5, sizeof(s->md5), "%s", u->md5);
    } else if (u->block_md5 || (s->single && u->store_md5)) {
        op->refs++;
        s->work.data = s;
        if (uv_queue_work(op->c->loop, &s->work, md5_work, md5_after) != 0) {
            op->refs--;
            up_fail(u, SKY_EINTERNAL, "cannot queue the hash");
            slot_next(s);
        }
        return;
    }
    slot_send(s);
}

static void slot_read_more(up_slot *s);

static void slot_on_read(uv_fs_t *req)
{
    up_slot *s = req->data;
    sky_blob_op *op = s->u->op;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n < 0)
        up_fail_uv(s->u, "read", n);
    else if (n == 0 && s->got < s->len)
        up_fail(s->u, SKY_EIO, "the file got shorter while uploading");
    else
        s->got += (size_t)n;
    if (op->err.code != 0)
        slot_next(s);
    else if (s->got < s->len)
        slot_read_more(s);
    else
        slot_ready(s);
    sky__blob_op_unref(op);
}

/* Whole-block mode: read it all into the buffer. */
static void slot_read_more(up_slot *s)
{
    up_state *u = s->u;
    uv_buf_t b = uv_buf_init(s->buf + s->got, (unsigned)(s->len - s->got));
    int64_t off = (int64_t)s->index * (int64_t)u->block_size + (int64_t)s->got;
    s->fs.data = s;
    u->op->refs++;
    int rc = uv_fs_read(u->op->c->loop, &s->fs, u->fd, &b, 1, off, slot_on_read);
    if (rc != 0) {
        u->op->refs--;
        up_fail_uv(u, "read", rc);
        slot_next(s);
    }
}

/* Take the next missing block, or go idle. */
static void slot_next(up_slot *s)
{
    up_state *u = s->u;
    while (u->cursor < u->nblocks && u->present[u->cursor])
        u->cursor++;
    if (u->op->err.code != 0 || u->cursor >= u->nblocks) {
        u->active--;
        up_check_end(u);
        return;
    }
    s->index = u->cursor++;
    s->len = s->single ? (size_t)u->size : block_len(u, s->index);
    s->streamed = s->len > s->cap;
    s->got = 0;
    s->sent = 0;
    s->stale = 0;
    s->head = s->count = s->read_pos = 0;
    if (s->streamed || s->len == 0)
        slot_ready(s);
    else
        slot_read_more(s);
}

static int start_slots(up_state *u, int single)
{
    uint32_t missing = u->nblocks - u->op->stats.blocks_skipped;
    size_t want = (size_t)u->concurrency < missing ? (size_t)u->concurrency : missing;
    size_t need = single ? (size_t)u->size : u->block_size;
    size_t cap = need < RING_BYTES ? need : RING_BYTES;
    u->slots = calloc(want ? want : 1, sizeof(*u->slots));
    if (u->slots == NULL)
        return SKY_ENOMEM;
    for (size_t i = 0; i < want; i++) {
        u->slots[i].cap = cap ? cap : 1;
        u->slots[i].buf = malloc(u->slots[i].cap);
        if (u->slots[i].buf == NULL)
            return SKY_ENOMEM;
        u->slots[i].u = u;
        u->slots[i].single = single;
        u->nslots++;
    }
    u->active = u->nslots;
    for (int i = 0; i < u->nslots; i++)
        slot_next(&u->slots[i]);
    return 0;
}

/* ---- control steps: open, stat, block list, commit, close ---- */

static void up_on_close(uv_fs_t *req)
{
    up_state *u = req->data;
    sky_blob_op *op = u->op;
    uv_fs_req_cleanup(req);
    u->ctl_busy = 0;
    sky_blob_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.transfer = &op->stats;
    sky__blob_op_report(op, &rep, NULL);
    sky__blob_op_unref(op);
}

static void up_close(up_state *u)
{
    if (u->closing)
        return;
    u->closing = 1;
    u->ctl_busy = 1;
    u->ctl.data = u;
    u->op->refs++;
    if (u->fd < 0 || uv_fs_close(u->op->c->loop, &u->ctl, u->fd, up_on_close) != 0) {
        u->ctl.fs_type = UV_FS_CLOSE;
        up_on_close(&u->ctl);
    }
}

static void committed(sky__blob_req *r, int status, const sky_headers *h, sky_span body,
                      const sky_error *err, void *ud)
{
    up_state *u = ud;
    (void)r, (void)status, (void)h, (void)body;
    u->ctl_busy = 0;
    if (err)
        sky__blob_op_fail(u->op, err);
    else
        u->committed = 1;
    up_check_end(u);
}

static int commit_body(up_state *u, sky_buf *b)
{
    char id[48];
    int rc = sky_buf_append_str(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for (uint32_t i = 0; i < u->nblocks && rc == 0; i++) {
        block_id(u, i, id);
        rc = sky_buf_printf(b, "<Latest>%s</Latest>", id);
    }
    return rc ? rc : sky_buf_append_str(b, "</BlockList>");
}

static void up_commit(up_state *u)
{
    sky_buf url, body;
    sky_buf_init(&url, 64 * 1024);
    sky_buf_init(&body, 64u * MAX_BLOCKS + 256);
    sky_headers *h = sky_headers_new();
    int rc =
        h ? sky__blob_url(u->op->c, u->container, u->blob, "comp=blocklist", &url) : SKY_ENOMEM;
    if (rc == 0)
        rc = commit_body(u, &body);
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("Content-Type"), SKY_SPAN_LIT("application/xml"));
    if (rc == 0)
        rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-blob-content-type"),
                             sky_span_cstr(u->ctype ? u->ctype : "application/octet-stream"));
    if (rc == 0 && u->md5)
        rc = sky_headers_add(h, SKY_SPAN_LIT("x-ms-blob-content-md5"), sky_span_cstr(u->md5));
    if (rc == 0) {
        u->commit_body = sky_buf_detach(&body, NULL);
        sky__blob_req_options o;
        memset(&o, 0, sizeof(o));
        o.method = "PUT";
        o.url = url.data;
        o.headers = h;
        o.body = u->commit_body;
        o.body_len = u->commit_body ? strlen(u->commit_body) : 0;
        o.cb = committed;
        o.user_data = u;
        sky_error e;
        sky_error_clear(&e);
        u->ctl_busy = 1;
        if (u->commit_body == NULL || sky__blob_req_start(u->op, &o, NULL, &e) != 0) {
            u->ctl_busy = 0;
            sky_error_set(&e, SKY_ENOMEM, "out of memory");
            sky__blob_op_fail(u->op, &e);
        }
    } else {
        up_fail(u, SKY_ENOMEM, "cannot build the block list");
    }
    sky_headers_free(h);
    sky_buf_free(&url);
    sky_buf_free(&body);
    up_check_end(u);
}

static void up_on_recheck(uv_fs_t *req)
{
    up_state *u = req->data;
    sky_blob_op *op = u->op;
    u->ctl_busy = 0;
    if (req->result < 0)
        up_fail_uv(u, "stat", req->result);
    else if ((int64_t)req->statbuf.st_size != u->size ||
             (long)req->statbuf.st_mtim.tv_sec != u->mtime_s ||
             (long)req->statbuf.st_mtim.tv_nsec != u->mtime_ns)
        up_fail(u, SKY_EIO,
                u->slots && u->slots[0].single
                    ? "the file changed while uploading; the blob may not match it"
                    : "the file changed while uploading; nothing was committed");
    uv_fs_req_cleanup(req);
    up_check_end(u);
    sky__blob_op_unref(op);
}

/* Before the commit, make sure the blocks still describe the file as it is. */
static void up_recheck(up_state *u)
{
    u->rechecked = 1;
    u->ctl_busy = 1;
    u->ctl.data = u;
    u->op->refs++;
    if (uv_fs_fstat(u->op->c->loop, &u->ctl, u->fd, up_on_recheck) != 0) {
        u->op->refs--;
        u->ctl_busy = 0;
        up_fail(u, SKY_EIO, "cannot stat");
        up_check_end(u);
    }
}

/* Everything idle: commit when all blocks are there, else close and report. */
static void up_check_end(up_state *u)
{
    if (u->active > 0 || u->ctl_busy || u->closing || u->hashing)
        return;
    if (u->op->err.code == 0 && !u->committed && u->nblocks > 0 &&
        u->staged + u->op->stats.blocks_skipped == u->nblocks && u->slots && !u->slots[0].single) {
        if (u->rechecked)
            up_commit(u);
        else
            up_recheck(u);
        return;
    }
    /* A single put is sent whole, but its bytes were read over time: check them too. */
    if (u->op->err.code == 0 && !u->rechecked && u->staged == u->nblocks && u->slots &&
        u->slots[0].single) {
        up_recheck(u);
        return;
    }
    up_close(u);
}

static void got_block_list(sky__blob_req *r, int status, const sky_headers *h, sky_span body,
                           const sky_error *err, void *ud)
{
    up_state *u = ud;
    (void)r, (void)h;
    u->ctl_busy = 0;
    if (err) {
        sky__blob_op_fail(u->op, err);
        up_check_end(u);
        return;
    }
    sky__blob_blocks b;
    if (status == 200 && sky__blob_parse_blocks(body, &b) == 0) {
        for (size_t i = 0; i < b.count; i++) {
            long idx = block_index(u, b.names[i]);
            if (idx >= 0 && !u->present[idx] &&
                (b.sizes[i] < 0 || b.sizes[i] == (int64_t)block_len(u, (uint32_t)idx))) {
                u->present[idx] = 1;
                u->op->stats.blocks_skipped++;
                u->op->stats.bytes_done += (int64_t)block_len(u, (uint32_t)idx);
            }
        }
        sky__blob_blocks_free(&b);
    }
    if (start_slots(u, 0) != 0)
        up_fail(u, SKY_ENOMEM, "out of memory");
    up_check_end(u);
}

static void get_block_list(up_state *u)
{
    sky_buf url;
    sky_buf_init(&url, 64 * 1024);
    int rc =
        sky__blob_url(u->op->c, u->container, u->blob, "comp=blocklist&blocklisttype=all", &url);
    sky__blob_req_options o;
    memset(&o, 0, sizeof(o));
    o.method = "GET";
    o.url = url.data;
    o.not_found_ok = 1;
    o.max_body = 64u * 1024 * 1024;
    o.cb = got_block_list;
    o.user_data = u;
    sky_error e;
    sky_error_clear(&e);
    u->ctl_busy = 1;
    if (rc != 0 || sky__blob_req_start(u->op, &o, NULL, &e) != 0) {
        u->ctl_busy = 0;
        sky_error_set(&e, SKY_ENOMEM, "out of memory");
        sky__blob_op_fail(u->op, &e);
    }
    sky_buf_free(&url);
}

static int plan_blocks(up_state *u)
{
    int single = u->size <= (int64_t)u->single_max;
    if (single) {
        u->nblocks = 1;
        u->block_size = u->size > 0 ? (size_t)u->size : 1;
    } else {
        uint64_t n = ((uint64_t)u->size + u->block_size - 1) / u->block_size;
        if (n > MAX_BLOCKS)
            return sky_error_set(&u->op->err, SKY_EINVAL,
                                 "upload %s: %" PRIu64 " blocks is over the limit of 50000: "
                                 "use a larger block size",
                                 u->path, n);
        u->nblocks = (uint32_t)n;
    }
    u->present = calloc(u->nblocks, 1);
    if (u->present == NULL)
        return sky_error_set(&u->op->err, SKY_ENOMEM, "out of memory");
    u->op->stats.blocks_total = u->nblocks;
    u->op->stats.bytes_total = u->size;
    return 0;
}

/* In the thread pool: the whole file's MD5, read in order while the blocks go out of it. */
static void file_hash_work(uv_work_t *w)
{
    up_state *u = w->data;
    if (sky__blob_md5_file(u->fd, u->size, u->file_md5) != 0)
        u->file_md5[0] = '\0';
}

static void file_hash_after(uv_work_t *w, int status)
{
    up_state *u = w->data;
    sky_blob_op *op = u->op;
    u->hashing = 0;
    if (status != 0 || u->file_md5[0] == '\0')
        up_fail(u, SKY_EIO, "cannot read the file to hash it");
    else if ((u->md5 = strdup(u->file_md5)) == NULL)
        up_fail(u, SKY_ENOMEM, "out of memory");
    up_check_end(u);
    sky__blob_op_unref(op);
}

/* A block upload whose file MD5 is to be stored: hash it alongside, for the commit. */
static void start_file_hash(up_state *u)
{
    if (!u->store_md5 || u->md5)
        return;
    u->file_hash.data = u;
    u->op->refs++;
    if (uv_queue_work(u->op->c->loop, &u->file_hash, file_hash_work, file_hash_after) != 0) {
        u->op->refs--;
        up_fail(u, SKY_EINTERNAL, "cannot queue the hash");
        return;
    }
    u->hashing = 1;
}

/* A block upload: which blocks the service has, and the file's MD5 alongside when wanted. */
static void start_blocks(up_state *u)
{
    get_block_list(u);
    start_file_hash(u);
}

/* A small single put whose bytes were read (and hashed) with the file's stat: send them. */
static int start_whole(up_state *u)
{
    u->slots = calloc(1, sizeof(*u->slots));
    if (u->slots == NULL)
        return SKY_ENOMEM;
    up_slot *s = &u->slots[0];
    s->u = u;
    s->single = 1;
    s->buf = u->whole;
    s->cap = s->len = (size_t)u->size;
    u->whole = NULL;
    u->nslots = u->active = 1;
    u->cursor = 1;
    u->rechecked = 1; /* read between two stats that agree, and closed */
    snprintf(s->md5, sizeof(s->md5), "%s", u->md5 ? u->md5 : u->whole_md5);
    slot_send(s);
    return 0;
}

static int prep_failed(up_state *u, const char *what, int fd)
{
    u->prep_errno = errno ? errno : EIO;
    u->prep_what = what;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* A failure that errno does not describe: @p msg is the whole of it. */
static int prep_refused(up_state *u, const char *msg, int fd)
{
    prep_failed(u, msg, fd);
    u->prep_errno = -1;
    return -1;
}

/* A small file read whole, hashed when the put carries an MD5, and the file checked not
 * to have changed meanwhile: what the loop would do in five steps through the pool. */
static int prep_small(up_state *u, int fd)
{
    struct stat st;
    size_t n = (size_t)u->size, got = 0;
    if ((u->whole = malloc(n ? n : 1)) == NULL)
        return prep_refused(u, "out of memory", fd);
    while (got < n) {
        ssize_t r = pread(fd, u->whole + got, n - got, (off_t)got);
        if (r < 0)
            return prep_failed(u, "read", fd);
        if (r == 0)
            return prep_refused(u, "the file got shorter while uploading", fd);
        got += (size_t)r;
    }
    if (fstat(fd, &st) != 0)
        return prep_failed(u, "stat", fd);
    if ((int64_t)st.st_size != u->size || (long)st.st_mtim.tv_sec != u->mtime_s ||
        (long)st.st_mtim.tv_nsec != u->mtime_ns)
        return prep_refused(u, "the file changed while it was read; nothing was sent", fd);
    close(fd);
    if ((u->block_md5 || u->store_md5) && u->md5 == NULL)
        sky__blob_md5_mem(u->whole, n, u->whole_md5);
    return 0;
}

/* In the thread pool: open and stat; a small single put is also read and closed here. */
static void prep_work(uv_work_t *w)
{
    up_state *u = w->data;
    struct stat st;
    errno = 0;
    int fd = open(u->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        prep_failed(u, "open", -1);
        return;
    }
    if (fstat(fd, &st) != 0) {
        prep_failed(u, "stat", fd);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        prep_failed(u, "open", fd);
        return;
    }
    u->size = (int64_t)st.st_size;
    u->mtime_s = (long)st.st_mtim.tv_sec;
    u->mtime_ns = (long)st.st_mtim.tv_nsec;
    if (u->size <= (int64_t)u->single_max && u->size <= (int64_t)RING_BYTES) {
        if (prep_small(u, fd) != 0) {
            free(u->whole);
            u->whole = NULL;
        }
        return;
    }
    u->fd = fd;
}

static void prep_after(uv_work_t *w, int status)
{
    up_state *u = w->data;
    sky_blob_op *op = u->op;
    u->ctl_busy = 0;
    if (status != 0) {
        up_fail(u, SKY_ECANCELED, "canceled");
    } else if (u->prep_errno == -1) {
        up_fail(u, SKY_EIO, u->prep_what);
    } else if (u->prep_errno) {
        up_fail_uv(u, u->prep_what, uv_translate_sys_error(u->prep_errno));
    } else if (op->err.code == 0) {
        id_hash(u);
        if (plan_blocks(u) == 0) {
            int rc = 0;
            if (u->whole)
                rc = start_whole(u);
            else if (u->size <= (int64_t)u->single_max)
                rc = start_slots(u, 1);
            else
                start_blocks(u);
            if (rc != 0)
                up_fail(u, SKY_ENOMEM, "out of memory");
        }
    }
    up_check_end(u);
    sky__blob_op_unref(op);
}

static up_state *up_new(sky_blob_client *c, const char *container, const char *blob,
                        const char *path, const sky_blob_transfer_options *to)
{
    up_state *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    u->fd = -1;
    u->container = strdup(container);
    u->blob = strdup(blob);
    u->path = strdup(path);
    u->ctype = to && to->content_type ? strdup(to->content_type) : NULL;
    u->md5 = to && to->content_md5 ? strdup(to->content_md5) : NULL;
    u->block_size = to && to->block_size ? to->block_size : c->o.block_size;
    u->single_max = to && to->single_put_max ? to->single_put_max
                    : to && to->block_size   ? to->block_size
                                             : c->o.single_put_max;
    u->concurrency = to && to->concurrency > 0 ? to->concurrency : c->o.concurrency;
    u->block_md5 = to ? !to->no_block_md5 : 1;
    u->store_md5 = to ? to->store_md5 : 0;
    u->on_progress = to ? to->on_progress : NULL;
    u->progress_ud = to ? to->progress_user_data : NULL;
    if (!u->container || !u->blob || !u->path || (to && to->content_type && !u->ctype) ||
        (to && to->content_md5 && !u->md5)) {
        up_free(u);
        return NULL;
    }
    return u;
}

int sky_blob_upload_file(sky_blob_client *c, const char *container, const char *blob,
                         const char *path, const sky_blob_transfer_options *to, sky_blob_done_cb cb,
                         void *ud, sky_blob_op **out_op, sky_error *err)
{
    if (c == NULL || cb == NULL || c->freeing || !container || !container[0] || !blob || !blob[0] ||
        !path || !path[0])
        return sky_error_set(err, SKY_EINVAL,
                             "blob upload: client, container, blob, path and callback required");
    if (sky_blob_name_check(blob, err) != 0)
        return SKY_EINVAL;
    up_state *u = up_new(c, container, blob, path, to);
    sky_blob_op *op = u ? sky__blob_op_new(c, cb, ud) : NULL;
    if (op == NULL) {
        up_free(u);
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    }
    u->op = op;
    op->state = u;
    op->state_free = up_free;
    u->prep.data = u;
    u->ctl_busy = 1;
    op->refs++;
    int rc = uv_queue_work(c->loop, &u->prep, prep_work, prep_after);
    if (rc != 0) {
        op->reported = 1;
        op->refs = 1;
        sky__blob_op_unref(op);
        return sky_error_set(err, SKY_EINTERNAL, "upload %s: cannot queue the first step: %s", path,
                             uv_strerror(rc));
    }
    if (out_op)
        *out_op = op;
    return 0;
}
