/*
 * Runs a fuzz target over every regular file of a corpus directory (or over
 * the files named), for builds without libFuzzer: ctest replays each seed
 * corpus this way. A crash ends the run, as it would under the fuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole file into a new buffer; NULL on error. */
static uint8_t *read_file(const char *path, size_t *out_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    size_t alloc = 0;
    int bad = 0;
    for (;;) {
        if (len == alloc) {
            uint8_t *p = realloc(buf, alloc ? alloc * 2 : 4096);
            if (p == NULL) {
                bad = 1;
                break;
            }
            buf = p;
            alloc = alloc ? alloc * 2 : 4096;
        }
        size_t got = fread(buf + len, 1, alloc - len, f);
        if (got == 0)
            break;
        len += got;
    }
    bad |= ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *out_size = len;
    return buf;
}

static int run_file(const char *path)
{
    size_t size = 0;
    uint8_t *data = read_file(path, &size);
    if (data == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    /* A copy of exactly the input's size, so ASan catches any overread. */
    uint8_t *exact = malloc(size ? size : 1);
    if (exact == NULL) {
        free(data);
        return -1;
    }
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    return 0;
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void run_dir(const char *dir, unsigned *passed, unsigned *failed)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "cannot open %s\n", dir);
        (*failed)++;
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path || !is_regular(path))
            continue;
        if (run_file(path) == 0)
            (*passed)++;
        else
            (*failed)++;
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    unsigned passed = 0;
    unsigned failed = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s corpus-dir-or-file...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (is_regular(argv[i])) {
            if (run_file(argv[i]) == 0)
                passed++;
            else
                failed++;
        } else {
            run_dir(argv[i], &passed, &failed);
        }
    }
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
