/*
 * The access log: a JSON line per model call (request id, key name, route, model,
 * deployment, status, latency, tokens), written through libuv's file calls so the loop
 * never waits on a disk. Lines gather in one buffer while the previous batch is being
 * written; a log that cannot keep up drops lines past its cap and counts them, rather than
 * grow without bound. Nothing secret goes in: a key's name, never the key. With --threads
 * each line says which loop served it ("loop": 0..N-1).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "skyio/json.h"
#include "skyio/log.h"
#include "internal.h"

#define LOG_PENDING_MAX (4u << 20)

struct gw_access_log {
    uv_loop_t *loop;
    uv_file fd;
    int own_fd;
    sky_buf pending; /* lines not yet handed to a write */
    sky_buf writing; /* the batch being written */
    uv_fs_t req;
    int busy;
    int orphan; /* its gateway is gone: free it after the write in flight */
    uint64_t dropped;
    int loop_index; /* in each line with several loops; -1: not said */
};

int sky__gw_access_log_open(uv_loop_t *loop, const char *path, gw_access_log **out, sky_error *err)
{
    gw_access_log *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return sky_error_set(err, SKY_ENOMEM, "out of memory");
    l->loop = loop;
    l->loop_index = -1;
    sky_buf_init(&l->pending, LOG_PENDING_MAX);
    sky_buf_init(&l->writing, LOG_PENDING_MAX);
    if (path == NULL || strcmp(path, "-") == 0) {
        l->fd = STDERR_FILENO;
    } else {
        uv_fs_t req;
        /* once, at start: the only blocking open, before the loop serves anyone */
        l->fd = uv_fs_open(NULL, &req, path, O_WRONLY | O_CREAT | O_APPEND, 0640, NULL);
        uv_fs_req_cleanup(&req);
        l->own_fd = 1;
        if (l->fd < 0) {
            int code = l->fd;
            free(l);
            return sky_error_set(err, SKY_EIO, "cannot open the access log %s: %s", path,
                                 uv_strerror(code));
        }
    }
    *out = l;
    return 0;
}

static void release(gw_access_log *l)
{
    if (l->own_fd) {
        uv_fs_t req;
        uv_fs_close(NULL, &req, l->fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    sky_buf_free(&l->pending);
    sky_buf_free(&l->writing);
    free(l);
}

static void flush(gw_access_log *l);

static void on_written(uv_fs_t *req)
{
    gw_access_log *l = req->data;
    if (req->result < 0)
        l->dropped++; /* a line count is not known here: at least one batch was lost */
    uv_fs_req_cleanup(req);
    l->busy = 0;
    sky_buf_reset(&l->writing);
    flush(l); /* what gathered meanwhile; an orphan writes its last lines too */
    if (l->orphan && !l->busy)
        release(l);
}

static void flush(gw_access_log *l)
{
    if (l->busy || l->pending.len == 0)
        return;
    sky_buf t = l->writing; /* swap: the pending lines become the batch */
    l->writing = l->pending;
    l->pending = t;
    uv_buf_t buf = uv_buf_init(l->writing.data, (unsigned int)l->writing.len);
    l->req.data = l;
    if (uv_fs_write(l->loop, &l->req, l->fd, &buf, 1, -1, on_written) == 0)
        l->busy = 1;
    else
        sky_buf_reset(&l->writing);
}

void sky__gw_access_log_set_loop(gw_access_log *l, int index)
{
    l->loop_index = index;
}

static json_t *line_json(const gw_access_log *l, const gw_record *r)
{
    json_t *o = json_pack(
        "{s:s,s:s?,s:s,s:s?,s:s?,s:i,s:f,s:f,s:b}", "request_id", r->request_id, "key", r->key,
        "route", sky__gw_op_path(r->op), "model", r->model ? r->model : r->asked, "deployment",
        r->deployment, "status", r->status, "latency_ms", (double)r->total_ns / 1e6, "added_ms",
        (double)(r->total_ns > r->upstream_ns ? r->total_ns - r->upstream_ns : 0) / 1e6, "stream",
        r->stream);
    if (o && r->used.total >= 0)
        json_object_set_new(o, "tokens",
                            json_pack("{s:I,s:I,s:I}", "prompt", (json_int_t)r->used.prompt,
                                      "completion", (json_int_t)r->used.completion, "total",
                                      (json_int_t)r->used.total));
    if (o && l->loop_index >= 0)
        json_object_set_new(o, "loop", json_integer(l->loop_index));
    return o;
}

void sky__gw_access_log_write(gw_access_log *l, const gw_record *r)
{
    char line[2048];
    json_t *o = line_json(l, r);
    size_t n = o ? json_dumpb(o, line, sizeof(line) - 1, JSON_COMPACT) : 0;
    json_decref(o);
    if (n == 0 || n >= sizeof(line) - 1) {
        l->dropped++;
        return;
    }
    line[n++] = '\n';
    if (sky_buf_append(&l->pending, line, n) < 0) {
        l->dropped++;
        return;
    }
    flush(l);
}

void sky__gw_access_log_close(gw_access_log *l)
{
    if (l == NULL)
        return;
    if (l->dropped)
        SKY_WARN("gateway", "access log: %llu lines dropped", (unsigned long long)l->dropped);
    flush(l);
    if (l->busy)
        l->orphan = 1; /* the loop finishes the write, then frees it */
    else
        release(l);
}
