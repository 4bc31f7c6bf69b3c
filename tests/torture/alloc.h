/*
 * A test-only allocator in the manner of curl's torture mode. The torture
 * programs are linked with -Wl,--wrap=malloc,calloc,realloc,strdup,strndup,free,
 * so every allocation skyio makes (and the test's own) goes through here;
 * jansson's are routed here by torture_alloc_init. Armed, the allocator counts
 * the allocations of the arming thread and fails the Nth. It also remembers
 * every live block, so a run that leaks is named at once, in any build.
 */
#ifndef SKY_TORTURE_ALLOC_H
#define SKY_TORTURE_ALLOC_H

#include <stddef.h>

typedef enum torture_mode {
    TORTURE_ONCE,     /* only the Nth allocation fails; the later ones succeed */
    TORTURE_FROM_NTH, /* the Nth and every later one fail, as curl's torture mode does */
} torture_mode;

/* Route jansson's allocations through the counter. Call once, before any JSON is made. */
void torture_alloc_init(void);

/*
 * Route libcurl's allocations here too (curl_global_init_mem): call before any
 * other curl call. They are counted and failed only while torture_count_curl(1):
 * curl's own handling of a failed allocation is then tested along with ours.
 * Not tracked for leaks (LeakSanitizer sees them). Returns 0 or -1.
 */
int torture_alloc_init_curl(void);
void torture_count_curl(int on);

/*
 * Start counting allocations made by this thread from now on. With @p fail_at
 * > 0, the fail_at-th fails (and, with TORTURE_FROM_NTH, every later one).
 * Opens a new generation: blocks allocated from now on belong to this run.
 */
void torture_arm(unsigned long fail_at, torture_mode mode);

/* Stop counting and failing. Returns the allocations counted since torture_arm. */
unsigned long torture_disarm(void);

/* Allocations counted since torture_arm (armed or not). */
unsigned long torture_count(void);

/* Nonzero when a failure was injected since torture_arm. */
int torture_injected(void);

/* The test's own allocations while armed: neither counted nor failed. Nests. */
void torture_pause(void);
void torture_resume(void);

/*
 * Blocks of the current generation still allocated: the leaks of the run, once
 * everything it made is freed. With @p report nonzero each one is printed
 * (size and the caller's address, for addr2line) to stderr.
 */
size_t torture_leaks(int report);

#endif
