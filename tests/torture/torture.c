/* The torture loop: see torture.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "skyio/error.h"

#include "torture.h"

/* The run in progress, for failure messages. */
static struct {
    const char *name;
    const char *mode;
    unsigned long n;
} cur;

/* What the summary prints. */
#define MAX_SUMMARY 64
typedef struct case_summary {
    const char *name;
    unsigned long k;
    unsigned long runs;
    double seconds;
} case_summary;
static case_summary done_cases[MAX_SUMMARY];
static size_t n_done;

void torture_fail(const char *file, int line, const char *fmt, ...)
{
    static char what[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    torture_disarm();
    fail_msg("torture %s, %s, N=%lu: %s (%s:%d)", cur.name ? cur.name : "?",
             cur.mode ? cur.mode : "-", cur.n, what, file, line);
}

void torture_digest(sky_buf *digest, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    torture_assert(n >= 0);
    char *text = malloc((size_t)n + 1);
    torture_assert(text != NULL);
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = sky_buf_append(digest, text, (size_t)n);
    free(text);
    torture_assert(rc == 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int accepted(const torture_case *tc, int rc)
{
    if (rc == SKY_ENOMEM)
        return 1;
    for (const int *p = tc->also; p && *p; p++)
        if (*p == rc)
            return 1;
    return 0;
}

/* One run with the Nth allocation failing (0: none); returns its code, digest in @p out. */
static int run_once(const torture_case *tc, unsigned long n, torture_mode mode, sky_buf *out)
{
    if (getenv("TORTURE_VERBOSE"))
        fprintf(stderr, "torture: %s %s N=%lu\n", tc->name, cur.mode, n);
    if (tc->setup)
        tc->setup(tc->ctx);
    torture_arm(n, mode);
    int rc = tc->run(tc->ctx);
    torture_disarm();
    sky_buf_reset(out);
    tc->report(tc->ctx, rc, out);
    size_t leaks = torture_leaks(1);
    if (leaks)
        torture_fail(__FILE__, __LINE__, "%zu blocks leaked", leaks);
    return rc;
}

/* Length of the part of @p d before TORTURE_DETAIL. */
static size_t strict_len(const sky_buf *d)
{
    const char *mark = memchr(d->data, TORTURE_DETAIL[0], d->len);
    return mark ? (size_t)(mark - d->data) : d->len;
}

/* Returns 1 for a run that lost detail only (see TORTURE_DETAIL), else 0. */
static int check_run(const torture_case *tc, int rc, const sky_buf *digest, int ref_rc,
                     const sky_buf *ref)
{
    if (rc == ref_rc) {
        if (digest->len == ref->len && memcmp(digest->data, ref->data, ref->len) == 0)
            return 0;
        size_t n = strict_len(ref);
        if (torture_injected() && strict_len(digest) == n &&
            memcmp(digest->data, ref->data, n) == 0)
            return 1;
        torture_fail(__FILE__, __LINE__,
                     "same code (%s) as the reference, other results:\n"
                     "  reference: %s\n  this run:  %s",
                     sky_err_name(rc), ref->data, digest->data);
    }
    if (!accepted(tc, rc))
        torture_fail(__FILE__, __LINE__, "code %d (%s) where the reference gave %d (%s)", rc,
                     sky_err_name(rc), ref_rc, sky_err_name(ref_rc));
    if (!torture_injected())
        torture_fail(__FILE__, __LINE__, "failed with %s though no allocation failed",
                     sky_err_name(rc));
    return 0;
}

static unsigned long only_n(void)
{
    const char *s = getenv("TORTURE_N");
    return s ? strtoul(s, NULL, 10) : 0;
}

unsigned long torture_run_case(const torture_case *tc)
{
    static const struct {
        torture_mode mode;
        const char *name;
    } modes[] = {{TORTURE_ONCE, "the Nth fails"}, {TORTURE_FROM_NTH, "all from the Nth fail"}};
    sky_buf ref, digest;
    sky_buf_init(&ref, 1 << 20);
    sky_buf_init(&digest, 1 << 20);
    /* Allocated before the first run, so no run counts them as its own leaks. */
    torture_assert(sky_buf_append(&ref, "", 0) == 0 && sky_buf_append(&digest, "", 0) == 0);
    double t0 = now_s();
    memset(&cur, 0, sizeof(cur));
    cur.name = tc->name;
    cur.mode = "warm-up";
    /* The first run may fill lazy caches; the reference run must then leak nothing. */
    (void)run_once(tc, 0, TORTURE_ONCE, &ref);
    cur.mode = "reference";
    int ref_rc = run_once(tc, 0, TORTURE_ONCE, &ref);
    unsigned long k = torture_count();
    if (getenv("TORTURE_VERBOSE"))
        fprintf(stderr, "torture: %s: the reference: %s\n", tc->name, ref.data);
    if (k == 0)
        torture_fail(__FILE__, __LINE__, "no allocation seen: the wrap does not reach the code");
    unsigned long stride = tc->stride > 1 ? tc->stride : 1, runs = 2, only = only_n();
    unsigned long degraded = 0;
    for (size_t m = 0; m < SKY_ARRAY_LEN(modes); m++) {
        cur.mode = modes[m].name;
        for (unsigned long n = 1; n <= k; n += stride) {
            if (only && n != only)
                continue;
            cur.n = n;
            int rc = run_once(tc, n, modes[m].mode, &digest);
            degraded += (unsigned long)check_run(tc, rc, &digest, ref_rc, &ref);
            runs++;
        }
    }
    double secs = now_s() - t0;
    printf("torture: %-44s K=%-5lu runs=%-5lu %6.2f s", tc->name, k, runs, secs);
    if (degraded)
        printf("  (%lu differed in detail only)", degraded);
    printf("\n");
    fflush(stdout);
    if (n_done < MAX_SUMMARY)
        done_cases[n_done++] = (case_summary){tc->name, k, runs, secs};
    memset(&cur, 0, sizeof(cur));
    sky_buf_free(&ref);
    sky_buf_free(&digest);
    return k;
}

void torture_summary(void)
{
    double total = 0;
    for (size_t i = 0; i < n_done; i++)
        total += done_cases[i].seconds;
    printf("torture: %zu cases, %.2f s\n", n_done, total);
}

int torture_summary_teardown(void **state)
{
    (void)state;
    torture_summary();
    return 0;
}
