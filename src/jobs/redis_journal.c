/*
 * A worker's local journal of the results it could not hand back (Redis away): the
 * journal module's append-only file (skyio/journal.h), one JSON line per result:
 *   {"custom_id": ..., "job": the job's token, "entry": stream entry id, "failed": 0|1,
 *    "record": "the Batch line"}
 * written and synced before the worker counts on it, read back at the next start (this
 * worker's or another's with the same file) and handed over then. The default file is the
 * first one free (not locked by a live worker) of STATE/skyio/redis/JOB-K.jsonl, STATE being
 * $XDG_STATE_HOME or ~/.local/state, K = 0..15: a worker restarted on the same machine
 * finds the file of the one that died.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "redis_internal.h"

#define DEFAULT_FILES 16

static sky_journal *open_one(uv_loop_t *loop, const char *path, sky_error *err)
{
    sky_journal_options o;
    sky_journal *jr = NULL;
    sky_journal_options_init(&o);
    o.any_lines = 1;
    o.flush_interval_ms = 0;      /* synced after every write: it is what a crash leaves */
    o.max_pending_records = 1024; /* a lost batch of 256 is journaled at once */
    return sky_journal_open(loop, path, &o, &jr, err) == 0 ? jr : NULL;
}

/* mkdir -p of the folders in @p path up to its last '/'. */
static int make_dirs(char *path)
{
    uv_fs_t req;
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = uv_fs_mkdir(NULL, &req, path, 0700, NULL);
        uv_fs_req_cleanup(&req);
        *p = '/';
        if (rc < 0 && rc != UV_EEXIST)
            return SKY_EIO;
    }
    return 0;
}

static int state_dir(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n = xdg && xdg[0] == '/' ? snprintf(out, cap, "%s/skyio/redis/", xdg)
            : home && home[0]    ? snprintf(out, cap, "%s/.local/state/skyio/redis/", home)
                                 : -1;
    return n > 0 && (size_t)n < cap ? 0 : SKY_EINVAL;
}

static sky_journal *open_default(uv_loop_t *loop, const char *job, char **out_path, sky_error *err)
{
    char path[1024];
    if (state_dir(path, sizeof(path)) < 0 || make_dirs(path) < 0) {
        sky_error_set(err, SKY_EIO,
                      "no folder for the worker's journal (set HOME or "
                      "XDG_STATE_HOME, or give --journal PATH)");
        return NULL;
    }
    size_t dir_len = strlen(path);
    for (int k = 0; k < DEFAULT_FILES; k++) {
        snprintf(path + dir_len, sizeof(path) - dir_len, "%s-%d.jsonl", job, k);
        sky_error_clear(err);
        sky_journal *jr = open_one(loop, path, err);
        if (jr) {
            *out_path = strdup(path);
            if (*out_path == NULL)
                sky_journal_close(jr, NULL, NULL);
            return *out_path ? jr : NULL;
        }
        if (err->code != SKY_EBUSY)
            return NULL;
    }
    return NULL; /* every one in use: err says so */
}

sky_journal *sky__redis_journal_open(uv_loop_t *loop, const char *path, const char *job,
                                     char **out_path, sky_error *err)
{
    *out_path = NULL;
    if (path == NULL)
        return open_default(loop, job, out_path, err);
    sky_journal *jr = open_one(loop, path, err);
    if (jr && (*out_path = strdup(path)) == NULL) {
        sky_journal_close(jr, NULL, NULL);
        sky_error_set(err, SKY_ENOMEM, "out of memory");
        return NULL;
    }
    return jr;
}

int sky__redis_journal_put(sky_journal *jr, const char *job, const char *cid, const char *entry,
                           int failed, const char *line, size_t len)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s%}", "custom_id", cid, "job", job, "entry",
                          entry, "failed", failed, "record", line, len);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    int rc = text ? sky_journal_append_id(jr, cid, text, strlen(text)) : SKY_ENOMEM;
    free(text);
    json_decref(o);
    return rc == SKY_JOURNAL_DUP ? 0 : rc;
}

/* One line of the file back into @p each; lines that are not ours are left alone. */
static int read_line(const char *text, size_t len, sky__redis_journal_each_cb each, void *ud)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    const char *cid = NULL, *job = NULL, *entry = NULL, *line = NULL;
    size_t line_len = 0;
    int failed = 0, rc = 0;
    if (o && json_unpack(o, "{s:s, s:s, s:s, s:i, s:s%}", "custom_id", &cid, "job", &job, "entry",
                         &entry, "failed", &failed, "record", &line, &line_len) == 0)
        rc = each(ud, job, cid, entry, failed, line, line_len);
    json_decref(o);
    return rc;
}

int sky__redis_journal_read(const char *path, sky__redis_journal_each_cb each, void *ud,
                            sky_error *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    if (f == NULL)
        return sky_error_set(err, SKY_EIO, "cannot read %s: %s", path, strerror(errno));
    while (rc == 0 && (n = getline(&buf, &cap, f)) > 0)
        rc = read_line(buf, (size_t)n, each, ud);
    if (rc == 0 && ferror(f))
        rc = sky_error_set(err, SKY_EIO, "cannot read %s: %s", path, strerror(errno));
    else if (rc < 0)
        sky_error_set(err, rc, "out of memory reading %s", path);
    free(buf);
    fclose(f);
    return rc;
}
