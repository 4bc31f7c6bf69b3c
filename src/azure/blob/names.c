/*
 * Blob names: Azure's length rule, and a name as a file under a local folder (folder
 * downloads): which names may become a path, and making its folders without following links.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Azure: "A blob name must be at least one character long and cannot be more than 1,024
 * characters long". Characters, not bytes: UTF-8 continuation bytes do not count. */
#define BLOB_NAME_MAX_CHARS 1024

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* @p s for a message: whole when short, else its start and end around "..." (a path's end
 * names the file), and its length: a message has room for the reason too. */
const char *sky__blob_short(const char *s, size_t len, char *out, size_t out_len)
{
    if (len <= 64)
        snprintf(out, out_len, "%.*s", (int)len, s);
    else
        snprintf(out, out_len, "%.24s...%.24s (%zu bytes)", s, s + len - 24, len);
    return out;
}

int sky_blob_name_check(const char *blob, sky_error *err)
{
    if (blob == NULL || blob[0] == '\0')
        return sky_error_set(err, SKY_EINVAL, "blob: a blob name is required");
    size_t chars = utf8_chars(blob);
    if (chars > BLOB_NAME_MAX_CHARS) {
        char shown[96];
        return sky_error_set(err, SKY_EINVAL,
                             "blob name '%s' is %zu characters long: Azure allows at most 1,024",
                             sky__blob_short(blob, strlen(blob), shown, sizeof(shown)), chars);
    }
    return 0;
}

/* Why one component of a relative path cannot be a file or folder name; NULL when it can. */
static const char *component_problem(const char *p, size_t n)
{
    if (n == 0)
        return "has an empty part (two '/' in a row)";
    if (n == 2 && p[0] == '.' && p[1] == '.')
        return "has a '..' part, which climbs out of the folder";
    if (n == 1 && p[0] == '.')
        return "has a '.' part";
    return NULL;
}

int sky_blob_relpath_check(const char *rel, sky_error *err)
{
    char shown[96], part[96];
    if (rel == NULL || rel[0] == '\0')
        return sky_error_set(err, SKY_EINVAL, "an empty name is not a file name");
    sky__blob_short(rel, strlen(rel), shown, sizeof(shown));
    if (rel[0] == '/')
        return sky_error_set(err, SKY_EINVAL, "'%s' begins with '/' (an absolute path)", shown);
    if (strlen(rel) >= PATH_MAX)
        return sky_error_set(err, SKY_EINVAL,
                             "'%s' is %zu bytes: a local path holds at most %d (PATH_MAX)", shown,
                             strlen(rel), PATH_MAX - 1);
    for (const char *p = rel;;) {
        size_t n = strcspn(p, "/");
        const char *why = component_problem(p, n);
        if (why)
            return sky_error_set(err, SKY_EINVAL, "'%s' %s", shown, why);
        if (n > NAME_MAX)
            return sky_error_set(err, SKY_EINVAL,
                                 "'%s' has a part of %zu bytes ('%s'): the local file system "
                                 "allows at most %d bytes per name (NAME_MAX)",
                                 shown, n, sky__blob_short(p, n, part, sizeof(part)), NAME_MAX);
        if (p[n] == '\0')
            return 0;
        p += n + 1;
        if (*p == '\0')
            return sky_error_set(err, SKY_EINVAL,
                                 "'%s' ends with '/': it names a folder, not a file", shown);
    }
}

/* One folder of the walk: make it unless it is there, then step into it, never through a link. */
static int step_into(int dfd, const char *name, const char *rel, size_t upto, sky_error *err)
{
    char shown[96];
    if (mkdirat(dfd, name, 0755) != 0 && errno != EEXIST)
        return sky_error_set(err, SKY_EIO, "cannot make the folder '%s': %s",
                             sky__blob_short(rel, upto, shown, sizeof(shown)), strerror(errno));
    /* mkdirat never follows a link at its last component; O_NOFOLLOW keeps openat from it. */
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    int e = errno;
    struct stat st;
    sky__blob_short(rel, upto, shown, sizeof(shown));
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        return sky_error_set(err, SKY_EINVAL,
                             "'%s' in the destination is a symbolic link: links are not followed",
                             shown);
    if (e == ENOTDIR)
        return sky_error_set(err, SKY_EINVAL, "'%s' in the destination is a file, not a folder",
                             shown);
    return sky_error_set(err, SKY_EIO, "cannot open the folder '%s': %s", shown, strerror(e));
}

/* The file's own name may be absent or a file; a link there could lead anywhere. */
static int check_leaf(int dfd, const char *name, const char *rel, sky_error *err)
{
    char shown[96];
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    sky__blob_short(rel, strlen(rel), shown, sizeof(shown));
    if (S_ISLNK(st.st_mode))
        return sky_error_set(err, SKY_EINVAL,
                             "'%s' in the destination is a symbolic link: links are not followed",
                             shown);
    if (S_ISDIR(st.st_mode))
        return sky_error_set(err, SKY_EINVAL, "'%s' in the destination is a folder", shown);
    return 0;
}

int sky_blob_make_parent_dirs(const char *root, const char *rel, sky_error *err)
{
    int rc = sky_blob_relpath_check(rel, err);
    if (rc != 0)
        return rc;
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return sky_error_set(err, SKY_EIO, "cannot open the destination folder: %s",
                             strerror(errno));
    char name[NAME_MAX + 1];
    const char *p = rel;
    for (size_t n = strcspn(p, "/"); rc == 0 && p[n] == '/'; n = strcspn(p, "/")) {
        memcpy(name, p, n);
        name[n] = '\0';
        int fd = step_into(dfd, name, rel, (size_t)(p - rel) + n, err);
        close(dfd);
        dfd = fd;
        rc = fd < 0 ? fd : 0;
        p += n + 1;
    }
    if (rc == 0)
        rc = check_leaf(dfd, p, rel, err);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

int sky__blob_local_path_check(const char *path, size_t suffix, sky_error *err)
{
    char shown[96], part[96];
    size_t len = strlen(path);
    if (len + suffix >= PATH_MAX)
        return sky_error_set(
            err, SKY_EINVAL, "the path '%s' is %zu bytes: a local path holds at most %d (PATH_MAX)",
            sky__blob_short(path, len, shown, sizeof(shown)), len + suffix, PATH_MAX - 1);
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, "/");
        if (n > NAME_MAX)
            return sky_error_set(err, SKY_EINVAL,
                                 "the file name '%s' is %zu bytes: the local file system allows "
                                 "at most %d bytes per name (NAME_MAX)",
                                 sky__blob_short(p, n, part, sizeof(part)), n, NAME_MAX);
        p += n + (p[n] == '/');
    }
    return 0;
}
