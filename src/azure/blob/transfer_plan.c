/*
 * Folder transfers, the plan: walk the local folder (thread pool), list the prefix page by
 * page, make a download's destination (thread pool), and turn what was found into jobs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "transfer.h"

static void plan_report(sky_blob_folder *f, int step, const sky_error *err)
{
    f->phase = err ? SKY__FOLDER_PLAN_FAILED : SKY__FOLDER_PLANNED;
    if (f->plan_cb)
        f->plan_cb(f, err ? step : SKY_BLOB_FOLDER_STEP_NONE, err, f->user_data);
    sky__folder_unref(f); /* the plan's report */
}

static void plan_canceled(sky_blob_folder *f, int step)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ECANCELED, "folder transfer canceled");
    plan_report(f, step, &e);
}

static void plan_oom(sky_blob_folder *f, int step)
{
    sky_error e;
    sky_error_clear(&e);
    sky_error_set(&e, SKY_ENOMEM, "out of memory");
    plan_report(f, step, &e);
}

/* The blob name of a file at @p rel under the local folder: the prefix as a folder. */
static char *name_under_prefix(const char *prefix, const char *rel)
{
    size_t pl = strlen(prefix), rl = strlen(rel);
    int sep = pl && prefix[pl - 1] != '/';
    char *name = malloc(pl + (size_t)sep + rl + 1);
    if (name)
        snprintf(name, pl + (size_t)sep + rl + 1, "%s%s%s", prefix, sep ? "/" : "", rel);
    return name;
}

/* @p rel under the folder @p root ("/" included: "//rel", so rel starts one byte after root). */
static char *path_under(const char *root, const char *rel)
{
    size_t len = strlen(root) + 1 + strlen(rel) + 1;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "%s/%s", root, rel);
    return path;
}

/* ---- walk: in the thread pool, the regular files under the folder, never through a link ---- */

typedef struct walk_file {
    char *local, *name;
    int64_t size;
} walk_file;

typedef struct walk {
    uv_work_t work;
    sky_blob_folder *f; /* only its immutable strings are read off the loop */
    walk_file *files;
    size_t n, cap;
    size_t root_len; /* the folder's path, without trailing '/' */
    char path[PATH_MAX];
    sky_error err;
} walk;

static int walk_add(walk *w, size_t len, const struct stat *st)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        walk_file *n = realloc(w->files, cap * sizeof(*n));
        if (n == NULL)
            return sky_error_set(&w->err, SKY_ENOMEM, "out of memory");
        w->files = n;
        w->cap = cap;
    }
    walk_file *wf = &w->files[w->n];
    wf->local = strndup(w->path, len);
    wf->name = name_under_prefix(w->f->prefix, w->path + w->root_len + 1);
    wf->size = (int64_t)st->st_size;
    if (wf->local == NULL || wf->name == NULL) {
        free(wf->local);
        free(wf->name);
        return sky_error_set(&w->err, SKY_ENOMEM, "out of memory");
    }
    w->n++;
    return 0;
}

static int walk_dir(walk *w, size_t len);

/* One entry of a folder: a folder is walked, a regular file added, anything else left. */
static int walk_entry(walk *w, int dfd, const char *name, size_t len)
{
    size_t n = strlen(name);
    struct stat st;
    if (len + 1 + n >= sizeof(w->path))
        return sky_error_set(&w->err, SKY_EIO, "cannot walk '%.*s/%s': %s", (int)len, w->path, name,
                             strerror(ENAMETOOLONG));
    w->path[len] = '/';
    memcpy(w->path + len + 1, name, n + 1);
    int rc = 0;
    /* AT_SYMLINK_NOFOLLOW: a link is neither a file nor a folder here (nftw's FTW_PHYS). */
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = 0; /* gone since it was listed: nothing to send */
    else if (S_ISDIR(st.st_mode))
        rc = walk_dir(w, len + 1 + n);
    else if (S_ISREG(st.st_mode))
        rc = walk_add(w, len + 1 + n, &st);
    w->path[len] = '\0';
    return rc;
}

static int walk_dir(walk *w, size_t len)
{
    DIR *d = opendir(len ? w->path : "/");
    if (d == NULL)
        return sky_error_set(&w->err, SKY_EIO, "cannot walk '%s': %s", len ? w->path : "/",
                             strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            rc = walk_entry(w, dirfd(d), e->d_name, len);
    if (rc == 0 && errno != 0)
        rc = sky_error_set(&w->err, SKY_EIO, "cannot walk '%s': %s", len ? w->path : "/",
                           strerror(errno));
    closedir(d);
    return rc;
}

static void walk_work(uv_work_t *req)
{
    walk *w = req->data;
    struct stat st;
    if (stat(w->path, &st) != 0)
        sky_error_set(&w->err, SKY_EIO, "cannot walk '%s': %s", w->path, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        sky_error_set(&w->err, SKY_EINVAL, "'%s' is not a folder", w->path);
    else
        (void)walk_dir(w, w->root_len);
}

static void walk_free(walk *w, size_t from)
{
    for (size_t i = from; i < w->n; i++) {
        free(w->files[i].local);
        free(w->files[i].name);
    }
    free(w->files);
    free(w);
}

static void list_start(sky_blob_folder *f);

/* The walk's files become jobs; their strings move, not copy. */
static int walk_take(sky_blob_folder *f, walk *w)
{
    size_t i = 0;
    while (i < w->n &&
           sky__folder_take_job(f, w->files[i].local, w->files[i].name, w->files[i].size) != NULL)
        i++;
    int rc = i < w->n ? -1 : 0;
    walk_free(w, i < w->n ? i + 1 : i); /* a job not made freed its strings */
    return rc;
}

static void walk_after(uv_work_t *req, int status)
{
    walk *w = req->data;
    sky_blob_folder *f = w->f;
    if (status != 0 || f->stop) {
        walk_free(w, 0);
        plan_canceled(f, SKY_BLOB_FOLDER_STEP_WALK);
    } else if (w->err.code != 0) {
        sky_error e = w->err;
        walk_free(w, 0);
        plan_report(f, SKY_BLOB_FOLDER_STEP_WALK, &e);
    } else if (walk_take(f, w) != 0) {
        plan_oom(f, SKY_BLOB_FOLDER_STEP_WALK);
    } else if (f->o.sync) {
        list_start(f);
    } else {
        plan_report(f, 0, NULL);
    }
    sky__folder_unref(f);
}

static void walk_start(sky_blob_folder *f)
{
    walk *w = calloc(1, sizeof(*w));
    size_t len = strlen(f->local);
    while (len > 1 && f->local[len - 1] == '/')
        len--;
    if (w == NULL || len >= sizeof(w->path)) {
        free(w);
        plan_oom(f, SKY_BLOB_FOLDER_STEP_WALK);
        return;
    }
    w->f = f;
    memcpy(w->path, f->local, len);
    w->root_len = len == 1 && f->local[0] == '/' ? 0 : len;
    w->work.data = w;
    sky__folder_ref(f);
    if (uv_queue_work(f->loop, &w->work, walk_work, walk_after) != 0) {
        walk_free(w, 0);
        plan_oom(f, SKY_BLOB_FOLDER_STEP_WALK);
        sky__folder_unref(f);
    }
}

/* ---- listing ---- */

/*
 * The listing matches the prefix as a string; a prefix names a folder, so "dir" must not
 * take "dirfoo/x". Names that do not start with the prefix at all (a misbehaving server)
 * stay in the list and are refused one by one.
 */
static int in_folder(const sky_blob_folder *f, const char *name)
{
    size_t pl = strlen(f->prefix);
    if (pl == 0 || f->prefix[pl - 1] == '/' || strncmp(name, f->prefix, pl) != 0)
        return 1;
    return name[pl] == '/' || name[pl] == '\0';
}

static int add_remote(sky_blob_folder *f, const sky_blob_item *it)
{
    if (f->nremotes == f->rcap) {
        size_t cap = f->rcap ? f->rcap * 2 : 256;
        sky__folder_remote *n = realloc(f->remotes, cap * sizeof(*n));
        if (n == NULL)
            return -1;
        f->remotes = n;
        f->rcap = cap;
    }
    sky__folder_remote *r = &f->remotes[f->nremotes];
    r->name = strdup(it->name);
    r->size = it->size;
    r->md5 = it->content_md5 ? strdup(it->content_md5) : NULL;
    if (r->name == NULL || (it->content_md5 && r->md5 == NULL)) {
        free(r->name);
        free(r->md5);
        return -1;
    }
    f->nremotes++;
    return 0;
}

static int add_page(sky_blob_folder *f, const sky_blob_list_page *page)
{
    for (size_t i = 0; i < page->count; i++)
        if (!page->items[i].is_prefix && in_folder(f, page->items[i].name) &&
            add_remote(f, &page->items[i]) != 0)
            return -1;
    return 0;
}

/* Keep the next page's marker whole: a cut one would list the wrong page. */
static int set_marker(sky_blob_folder *f, const char *marker)
{
    char *m = strdup(marker);
    if (m == NULL)
        return -1;
    free(f->marker);
    f->marker = m;
    return 0;
}

static void listed(sky_blob_folder *f);

static void on_list(sky_blob_op *op, const sky_blob_reply *rep, const sky_error *err, void *ud)
{
    sky_blob_folder *f = ud;
    (void)op;
    f->list_op = NULL;
    if (err)
        plan_report(f, SKY_BLOB_FOLDER_STEP_LIST, err);
    else if (f->stop)
        plan_canceled(f, SKY_BLOB_FOLDER_STEP_LIST);
    else if (add_page(f, rep->list) != 0 ||
             (rep->list->next_marker && set_marker(f, rep->list->next_marker) != 0))
        plan_oom(f, SKY_BLOB_FOLDER_STEP_LIST);
    else if (rep->list->next_marker)
        list_start(f);
    else
        listed(f);
    sky__folder_unref(f);
}

static void list_start(sky_blob_folder *f)
{
    sky_blob_list_options lo = {f->prefix, NULL, f->marker, 0};
    sky_error err;
    sky_error_clear(&err);
    sky__folder_ref(f);
    if (sky_blob_list(f->c, f->container, &lo, on_list, f, &f->list_op, &err) != 0) {
        plan_report(f, SKY_BLOB_FOLDER_STEP_LIST, &err);
        sky__folder_unref(f);
    }
}

/* ---- what the listing becomes ---- */

/* A listed blob as a job of a download: its file under the destination, or refused and why. */
static int plan_one_get(sky_blob_folder *f, const sky__folder_remote *r)
{
    size_t pl = strlen(f->prefix);
    sky_error e;
    sky_error_clear(&e);
    if (strncmp(r->name, f->prefix, pl) != 0) {
        sky__folder_job *j = sky__folder_add_job(f, NULL, r->name, r->size);
        if (j)
            sky__folder_job_fail(j, SKY_EINVAL,
                                 "refused: '%s' is not under the prefix that was listed", r->name);
        return j ? 0 : -1;
    }
    const char *rel = r->name + pl;
    if (pl && f->prefix[pl - 1] != '/' && *rel == '/')
        rel++;
    int bad = sky_blob_relpath_check(rel, &e) != 0;
    char *path = bad ? NULL : path_under(f->root_real, rel);
    sky__folder_job *j = bad || path ? sky__folder_add_job(f, path, r->name, r->size) : NULL;
    if (j && bad)
        sky__folder_job_fail(j, SKY_EINVAL, "refused: %s", e.message);
    else if (j)
        j->rel_off = strlen(f->root_real) + 1;
    free(path);
    return j ? 0 : -1;
}

static int plan_one_delete(sky_blob_folder *f, const sky__folder_remote *r)
{
    sky__folder_job *j = sky__folder_add_job(f, NULL, r->name, 0);
    if (j && strncmp(r->name, f->prefix, strlen(f->prefix)) != 0)
        sky__folder_job_fail(j, SKY_EINVAL, "refused: '%s' is not under the prefix that was listed",
                             r->name);
    return j ? 0 : -1;
}

static void plan_remotes(sky_blob_folder *f, int step)
{
    for (size_t i = 0; i < f->nremotes; i++) {
        int rc = f->o.kind == SKY_BLOB_FOLDER_DOWNLOAD ? plan_one_get(f, &f->remotes[i])
                                                       : plan_one_delete(f, &f->remotes[i]);
        if (rc != 0) {
            plan_oom(f, step);
            return;
        }
    }
    plan_report(f, 0, NULL);
}

/* ---- a download's destination: made only now that the listing worked ---- */

typedef struct dest {
    uv_work_t work;
    sky_blob_folder *f;
    sky_error err;
} dest;

/* In the thread pool: make the folder and find where it really is; every file's path is
 * made under that. */
static void dest_work(uv_work_t *req)
{
    dest *d = req->data;
    sky_blob_folder *f = d->f;
    if (mkdir(f->local, 0755) != 0 && errno != EEXIST)
        sky_error_set(&d->err, SKY_EIO, "%s: %s", f->local, strerror(errno));
    else if (realpath(f->local, f->root_real) == NULL)
        sky_error_set(&d->err, SKY_EIO, "%s: %s", f->local, strerror(errno));
}

static void dest_after(uv_work_t *req, int status)
{
    dest *d = req->data;
    sky_blob_folder *f = d->f;
    if (status != 0 || f->stop)
        plan_canceled(f, SKY_BLOB_FOLDER_STEP_DEST);
    else if (d->err.code != 0)
        plan_report(f, SKY_BLOB_FOLDER_STEP_DEST, &d->err);
    else
        plan_remotes(f, SKY_BLOB_FOLDER_STEP_DEST);
    free(d);
    sky__folder_unref(f);
}

static void dest_start(sky_blob_folder *f)
{
    dest *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        plan_oom(f, SKY_BLOB_FOLDER_STEP_DEST);
        return;
    }
    d->f = f;
    d->work.data = d;
    sky__folder_ref(f);
    if (uv_queue_work(f->loop, &d->work, dest_work, dest_after) != 0) {
        free(d);
        plan_oom(f, SKY_BLOB_FOLDER_STEP_DEST);
        sky__folder_unref(f);
    }
}

static void listed(sky_blob_folder *f)
{
    sky__folder_sort_remotes(f);
    if (f->o.kind == SKY_BLOB_FOLDER_UPLOAD)
        plan_report(f, 0, NULL);
    else if (f->o.kind == SKY_BLOB_FOLDER_DOWNLOAD)
        dest_start(f);
    else
        plan_remotes(f, SKY_BLOB_FOLDER_STEP_LIST);
}

void sky__folder_plan_start(sky_blob_folder *f)
{
    if (f->stop)
        plan_canceled(f, f->o.kind == SKY_BLOB_FOLDER_UPLOAD ? SKY_BLOB_FOLDER_STEP_WALK
                                                             : SKY_BLOB_FOLDER_STEP_LIST);
    else if (f->o.kind == SKY_BLOB_FOLDER_UPLOAD)
        walk_start(f);
    else
        list_start(f);
}
