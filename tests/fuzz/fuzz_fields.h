/* Shared by the fuzz targets whose input is a list of fields, one a line. */
#ifndef SKY_FUZZ_FIELDS_H
#define SKY_FUZZ_FIELDS_H

#include <stddef.h>
#include <string.h>

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
