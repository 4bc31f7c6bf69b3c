/* `skyio report`: a batch run's report as one HTML file (the library's sky_report). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skyio/skyio.h"
#include "cli.h"

static const char usage[] =
    "usage: skyio report OUTPUT [-o REPORT.html] [options]\n"
    "\n"
    "Write the report of a `skyio batch` run as one HTML file that opens in any browser with\n"
    "no network: the summary, charts over the run's time (throughput against the rate limit,\n"
    "in flight against the concurrency limit, 429s and failures, latency p50 / p90 / p99),\n"
    "the failures grouped by code with examples, and the slowest requests. OUTPUT is the\n"
    "batch's output file; the charts come from the timeline `skyio batch` keeps beside it\n"
    "(OUTPUT.timeline.jsonl, one line a second, resumed with the run).\n"
    "`skyio batch --report FILE` writes the same at the end of a run.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE   where the report goes (default OUTPUT.report.html; - for stdout)\n"
    "  --errors FILE       the run's errors file, when it kept failures apart (--errors)\n"
    "  --timeline FILE     the timeline (default OUTPUT.timeline.jsonl)\n"
    "  --title TEXT        the page's title (default \"skyio batch: OUTPUT\")\n"
    "  --slowest N         slowest requests listed (default 10)\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit: 0 written; 2 usage; 3 a file could not be read or written.\n";

static char *default_report_path(const char *output)
{
    static const char ext[] = ".report.html";
    size_t n = strlen(output);
    char *p = malloc(n + sizeof(ext));
    if (p) {
        memcpy(p, output, n);
        memcpy(p + n, ext, sizeof(ext));
    }
    return p;
}

int sky_cli_report_write(const char *cmd, const sky_report_options *o, const char *path)
{
    sky_error err;
    sky_error_clear(&err);
    int to_stdout = strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "skyio %s: %s: cannot write the report\n", cmd, path);
        return SKY_EXIT_START;
    }
    int rc = sky_report_write_html(o, f, &err);
    if (!to_stdout && fclose(f) != 0 && rc == 0)
        rc = sky_error_set(&err, SKY_EIO, "%s: cannot write the report", path);
    if (rc < 0) {
        fprintf(stderr, "skyio %s: %s\n", cmd, err.message);
        return SKY_EXIT_START;
    }
    if (!to_stdout)
        fprintf(stderr, "skyio %s: report written to %s\n", cmd, path);
    return SKY_EXIT_OK;
}

int sky_cli_report(int argc, char **argv)
{
    static const struct option longs[] = {{"output", required_argument, 0, 'o'},
                                          {"errors", required_argument, 0, 'e'},
                                          {"timeline", required_argument, 0, 't'},
                                          {"title", required_argument, 0, 'T'},
                                          {"slowest", required_argument, 0, 's'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    sky_report_options o;
    const char *path = NULL;
    long long n;
    int c;
    sky_report_options_init(&o);
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longs, NULL)) != -1) {
        switch (c) {
        case 'o':
            path = optarg;
            break;
        case 'e':
            o.errors = optarg;
            break;
        case 't':
            o.timeline = optarg;
            break;
        case 'T':
            o.title = optarg;
            break;
        case 's':
            if (sky_cli_number_opt("report", "--slowest", optarg, 0, &n) < 0)
                return SKY_EXIT_USAGE;
            o.slowest = (size_t)n;
            break;
        case 'h':
            fputs(usage, stdout);
            return SKY_EXIT_OK;
        default:
            fputs(usage, stderr);
            return SKY_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "skyio report: expected one OUTPUT file (the batch's results)\n\n%s",
                usage);
        return SKY_EXIT_USAGE;
    }
    o.output = argv[optind];
    char *fallback = path ? NULL : default_report_path(o.output);
    if (path == NULL && fallback == NULL)
        return SKY_EXIT_START;
    int rc = sky_cli_report_write("report", &o, path ? path : fallback);
    free(fallback);
    return rc;
}
