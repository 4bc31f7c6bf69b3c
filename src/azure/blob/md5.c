/* MD5s for Blob Storage (Content-MD5 is base64): of bytes in memory, a file's range, a file. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "internal.h"

void sky__blob_md5_mem(const void *data, size_t len, char out[SKY__BLOB_MD5_B64])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(len ? data : "", len, md, &n, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)n);
}

int sky__blob_md5_fd(int fd, int64_t off, int64_t len, char *buf, size_t cap,
                     char out[SKY__BLOB_MD5_B64])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && buf && cap > 0 && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1;
    for (int64_t done = 0; ok && done < len;) {
        size_t want = (uint64_t)(len - done) < cap ? (size_t)(len - done) : cap;
        ssize_t got = pread(fd, buf, want, (off_t)(off + done));
        ok = got > 0 && EVP_DigestUpdate(ctx, buf, (size_t)got) == 1;
        done += got > 0 ? got : 0;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md, &n) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, (int)n);
    return 0;
}

int sky__blob_md5_file(int fd, int64_t size, char out[SKY__BLOB_MD5_B64])
{
    size_t cap = 512u * 1024;
    char *buf = malloc(cap);
    int rc = sky__blob_md5_fd(fd, 0, size, buf, cap, out);
    free(buf);
    return rc;
}

int sky__blob_md5_path(const char *path, char out[SKY__BLOB_MD5_B64])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? sky__blob_md5_file(fd, (int64_t)st.st_size, out) : -1;
    close(fd);
    return rc;
}
