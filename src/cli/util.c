/* Small helpers shared by the subcommands: parsing, input files, signals. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

int sky_cli_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0)
        return -1;
    *out = d;
    return 0;
}

int sky_cli_parse_long(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

int sky_cli_number_opt(const char *cmd, const char *opt, const char *v, long long lo,
                       long long *out)
{
    if (sky_cli_parse_long(v, out) < 0 || *out < lo) {
        fprintf(stderr, "skyio %s: %s: '%s' is not a whole number >= %lld\n", cmd, opt, v, lo);
        return -1;
    }
    return 0;
}

int sky_cli_check_input_file(const char *cmd, const char *opt, const char *path)
{
    struct stat st;
    const char *why = NULL;
    if (stat(path, &st) != 0)
        why = strerror(errno);
    else if (S_ISDIR(st.st_mode))
        why = "it is a folder, not a file";
    else if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
        why = "it is not a regular file (a device or a socket)"; /* empty, or endless */
    if (why == NULL)
        return 0;
    fprintf(stderr, "skyio %s: %s %s: %s\n", cmd, opt, path, why);
    return -1;
}

/* Start-up reads only (config files, request bodies), before the loop runs. */
char *sky_cli_read_file(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap)
            break;
        char *bigger = cap < (64u << 20) ? realloc(buf, cap * 2 + 1) : NULL;
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (buf == NULL || bad) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    if (out_len)
        *out_len = len;
    return buf;
}

int sky_cli_shards_for(long long concurrency)
{
    if (concurrency <= 2048)
        return 1;
    long long n = (concurrency + 511) / 512;
    return n > 64 ? 64 : (int)n;
}

void sky_cli_signal_graceful(const char *cmd, int *count, int signum)
{
    if ((*count)++ > 0) {
        fprintf(stderr, "skyio %s: second signal, stopping now\n", cmd);
        exit(SKY_EXIT_OK);
    }
    fprintf(stderr, "skyio %s: signal %d, finishing requests in flight\n", cmd, signum);
}
