/*
 * The torture loop: run an operation once to count its allocations (K), then
 * K times more, failing the 1st, the 2nd, ... the Kth; then again with every
 * allocation from the Nth on failing. Each run must end in the reference
 * run's result or in an error the case accepts, and free everything it made.
 */
#ifndef SKY_TORTURE_H
#define SKY_TORTURE_H

#include "skyio/buf.h"
#include "skyio/error.h"

#include "alloc.h"

typedef struct torture_case {
    const char *name;
    /* Optional, not armed: what each run starts from (a file, a loop). */
    void (*setup)(void *ctx);
    /* Armed: the code under test, start to end. Keep its results in @p ctx. */
    int (*run)(void *ctx);
    /*
     * Not armed: check what the API promises for @p rc (assert), describe the
     * results in @p digest (everything a caller could see), free them. Two runs
     * that return the same code must write the same digest.
     */
    void (*report)(void *ctx, int rc, sky_buf *digest);
    void *ctx;
    /* Codes accepted in place of the reference's besides SKY_ENOMEM; 0-terminated, or NULL. */
    const int *also;
    /* Try every stride-th N only (0 or 1: every N); for operations too slow for each. */
    unsigned long stride;
} torture_case;

/*
 * In a digest, what follows this mark is detail that a failed allocation may cost
 * without being an error: the message and service code of an error that a
 * function reports as it can (sky_arm_error_from_reply has no error of its own to
 * return), or a known flaw outside our files that the case names. A run whose
 * digest differs only there is counted, and printed with the case's K.
 */
#define TORTURE_DETAIL "\x1F"

/* Run the whole loop over @p tc (cmocka assertions); returns K. */
unsigned long torture_run_case(const torture_case *tc);

/* sky_buf_printf into a digest, asserting it worked (call only when not armed). */
void torture_digest(sky_buf *digest, const char *fmt, ...) SKY_PRINTF(2, 3);

/* Fail the test, naming the case, the mode and N of the run it happened in. */
void torture_fail(const char *file, int line, const char *fmt, ...) SKY_PRINTF(3, 4);

#define torture_assert(cond)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            torture_fail(__FILE__, __LINE__, "%s", #cond);                                         \
    } while (0)

#define torture_assert_int(a, b)                                                                   \
    do {                                                                                           \
        long long torture_a_ = (long long)(a), torture_b_ = (long long)(b);                        \
        if (torture_a_ != torture_b_)                                                              \
            torture_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, torture_a_,         \
                         torture_b_);                                                              \
    } while (0)

/* Print the K and the time of every case run so far (at the end of a program). */
void torture_summary(void);
/* torture_summary as a cmocka group teardown. */
int torture_summary_teardown(void **state);

#endif
