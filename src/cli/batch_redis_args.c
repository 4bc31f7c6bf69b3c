/*
 * `skyio batch --redis` and `skyio worker`: the flags they share with plain `skyio batch`
 * beyond the job's own (the --text mode's), argv's scrubbing of the Redis password, and the
 * progress line with the shared pace.
 */
#include <stdio.h>
#include <string.h>

#include "skyio/batch_redis.h"
#include "skyio/buf.h"
#include "cli.h"

/* The pace shown is the shared bucket's: this worker's own limiter does not learn. */
void sky_cli_redis_progress(const sky_redis_job *j, const sky_batch_progress *p, int tty, int final)
{
    sky_buf line;
    sky_batch_progress shown = *p;
    double shared = j ? sky_redis_job_rate_now(j) : 0;
    if (shared > 0 && (shown.rpm <= 0 || shared < shown.rpm))
        shown.rpm = shared;
    sky_buf_init(&line, 4096);
    if (sky_batch_progress_text(&shown, !final, &line) == 0)
        fprintf(stderr, "%s%s%s", tty && !final ? "\r" : "", line.data,
                tty && !final ? "   " : "\n");
    sky_buf_free(&line);
}

/* --text's flags into @p o, as plain `skyio batch` reads them: 0, -1 (said why), 1 not one. */
int sky_cli_redis_text_opt(sky_batch_options *o, const char *a, const char *v)
{
    double d;
    long long n;
    if (!strcmp(a, "--model")) {
        o->line.model = v;
    } else if (!strcmp(a, "--system")) {
        o->line.system = v;
    } else if (!strcmp(a, "--temperature")) {
        if (sky_cli_parse_double(v, &d) < 0 || d < 0 || d > 2)
            return fprintf(stderr, "skyio batch: --temperature is a number from 0 to 2\n"), -1;
        o->line.temperature = d;
        o->line.has_temperature = 1;
    } else if (!strcmp(a, "--max-tokens") || !strcmp(a, "--max-completion-tokens")) {
        if (sky_cli_number_opt("batch", a, v, 1, &n) < 0)
            return -1;
        o->line.max_tokens = n;
        o->line.max_completion_tokens = !strcmp(a, "--max-completion-tokens");
    } else {
        return 1;
    }
    return 0;
}

/* The password must not stay readable in `ps`: overwrite the URL's userinfo in argv. */
void sky_cli_redis_scrub_argv(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--redis") != 0)
            continue;
        char *v = argv[i + 1], *at = strrchr(v, '@'), *start = strstr(v, "://");
        if (at == NULL || start == NULL || at < start)
            continue;
        for (char *p = start + 3; p < at; p++)
            *p = '*';
    }
}
