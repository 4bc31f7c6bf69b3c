/* What the fuzz targets share: the entry point, their check, and a field splitter. */
#ifndef SKY_FUZZ_COMMON_H
#define SKY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a crash, which the fuzzer reports with its input. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* The input cut at '\n' into @p count NUL-terminated fields (in @p copy); absent ones NULL. */
static inline void fz_split_fields(char *copy, size_t n, const char **out, int count)
{
    char *p = copy;
    char *end = copy + n;
    for (int i = 0; i < count; i++) {
        if (p > end) {
            out[i] = NULL;
            continue;
        }
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        *stop = '\0';
        out[i] = p;
        p = stop + 1;
    }
}

#endif
