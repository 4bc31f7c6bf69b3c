/* `skyio http`: the summaries of many requests (-n, and --rate's in http_rate.c). */
#include <stdio.h>

#include <sys/resource.h>
#include <unistd.h>

#include "cmd_http.h"

long sky_cli_rss_now_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long sky_cli_peak_rss_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

static void print_counts_json(const http_run *run)
{
    const char *sep = "";
    printf("\"status\":{");
    for (int i = 0; i < 600; i++)
        if (run->by_status[i]) {
            printf("%s\"%d\":%llu", sep, i, (unsigned long long)run->by_status[i]);
            sep = ",";
        }
    printf("},\"errors\":{");
    sep = "";
    for (int i = 0; i < HTTP_N_ERR_CODES; i++)
        if (run->by_error[i]) {
            printf("%s\"%s\":%llu", sep, sky_err_name(SKY__ERR_FIRST + i),
                   (unsigned long long)run->by_error[i]);
            sep = ",";
        }
    printf("}");
}

void sky_cli_http_print_counts(const http_run *run)
{
    if (run->json_out) {
        print_counts_json(run);
        return;
    }
    for (int i = 0; i < 600; i++)
        if (run->by_status[i])
            printf("  HTTP %d: %llu\n", i, (unsigned long long)run->by_status[i]);
    for (int i = 0; i < HTTP_N_ERR_CODES; i++)
        if (run->by_error[i])
            printf("  %s: %llu\n", sky_err_name(SKY__ERR_FIRST + i),
                   (unsigned long long)run->by_error[i]);
}

void sky_cli_http_print_summary(const http_run *run, double secs)
{
    const sky_histogram *h = &run->latency_us;
    double p50 = (double)sky_histogram_percentile(h, 50) / 1000.0;
    double p90 = (double)sky_histogram_percentile(h, 90) / 1000.0;
    double p99 = (double)sky_histogram_percentile(h, 99) / 1000.0;
    double rps = secs > 0 ? (double)run->done / secs : 0;
    if (run->json_out) {
        printf("{\"requests\":%lld,\"ok\":%lld,\"failed\":%lld,\"seconds\":%.3f,"
               "\"requests_per_second\":%.1f,\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,"
               "\"p99\":%.3f},\"max_in_flight\":%lld,\"rss_start_kb\":%ld,"
               "\"peak_rss_kb\":%ld,",
               run->done, run->ok, run->done - run->ok, secs, rps, p50, p90, p99,
               run->max_in_flight, run->rss_start_kb, sky_cli_peak_rss_kb());
        sky_cli_http_print_counts(run);
        printf("}\n");
        return;
    }
    printf("requests: %lld  ok: %lld  failed: %lld\n", run->done, run->ok, run->done - run->ok);
    printf("time: %.3f s  rate: %.1f requests/s\n", secs, rps);
    printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f\n", p50, p90, p99);
    printf("in flight at most: %lld  memory: %ld KiB at start, %ld KiB at peak\n",
           run->max_in_flight, run->rss_start_kb, sky_cli_peak_rss_kb());
    sky_cli_http_print_counts(run);
}

void sky_cli_http_print_first_error(const http_run *run)
{
    char line[512];
    if (run->first_err.code)
        fprintf(stderr, "skyio http: first error: %s\n",
                sky_error_format(&run->first_err, line, sizeof(line)));
}
