/* The torture allocator: see alloc.h. */
#define _GNU_SOURCE /* dladdr */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void __real_free(void *p);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void __wrap_free(void *p);

/* ---- the counter ---- */

static struct {
    int armed;
    pthread_t thread; /* only this thread's allocations count */
    unsigned long count;
    unsigned long fail_at;
    torture_mode mode;
    int injected;
    int paused;
} g;

void torture_arm(unsigned long fail_at, torture_mode mode);

/* Count this allocation when it is the armed thread's; nonzero when it is to fail. */
static int should_fail(void)
{
    if (!g.armed || g.paused > 0 || !pthread_equal(pthread_self(), g.thread))
        return 0;
    g.count++;
    if (g.fail_at == 0)
        return 0;
    int fail = g.mode == TORTURE_ONCE ? g.count == g.fail_at : g.count >= g.fail_at;
    if (fail) {
        /* TORTURE_TRACE=1: where the first failed allocation was made, for addr2line */
        if (!g.injected && getenv("TORTURE_TRACE")) {
            void *frames[16];
            int n = backtrace(frames, 16);
            fprintf(stderr, "torture: allocation %lu fails here:\n", g.count);
            backtrace_symbols_fd(frames, n, 2);
        }
        g.injected = 1;
        errno = ENOMEM;
    }
    return fail;
}

unsigned long torture_disarm(void)
{
    g.armed = 0;
    g.fail_at = 0;
    return g.count;
}

unsigned long torture_count(void)
{
    return g.count;
}

int torture_injected(void)
{
    return g.injected;
}

void torture_pause(void)
{
    g.paused++;
}

void torture_resume(void)
{
    g.paused--;
}

/* ---- live blocks: open addressing on the address, with backward-shift deletion ---- */

typedef struct block {
    uintptr_t ptr; /* 0: empty slot */
    size_t size;
    void *caller;
    unsigned gen;
} block;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static block *table;
static size_t table_cap; /* a power of two */
static size_t table_used;
static unsigned generation;

static size_t slot_of(uintptr_t p, size_t cap)
{
    uint64_t h = (uint64_t)p * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 20) & (cap - 1);
}

static void table_put(block *t, size_t cap, block b)
{
    size_t i = slot_of(b.ptr, cap);
    while (t[i].ptr != 0)
        i = (i + 1) & (cap - 1);
    t[i] = b;
}

/* Grow at 1/2 load. Returns 0, or -1 when the table itself cannot grow (then nothing is
 * tracked for that block, and a leak of it goes unseen: LeakSanitizer still sees it). */
static int table_reserve(void)
{
    if ((table_used + 1) * 2 <= table_cap)
        return 0;
    size_t cap = table_cap ? table_cap * 2 : 4096;
    block *t = __real_calloc(cap, sizeof(*t));
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < table_cap; i++)
        if (table[i].ptr != 0)
            table_put(t, cap, table[i]);
    __real_free(table);
    table = t;
    table_cap = cap;
    return 0;
}

static void track(void *p, size_t size, void *caller, unsigned gen)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&table_lock);
    if (table_reserve() == 0) {
        block b = {(uintptr_t)p, size, caller, gen};
        table_put(table, table_cap, b);
        table_used++;
    }
    pthread_mutex_unlock(&table_lock);
}

/* Forget @p p; returns its generation through @p out_gen when it was tracked. */
static int untrack(void *p, unsigned *out_gen)
{
    if (p == NULL || table_cap == 0)
        return 0;
    pthread_mutex_lock(&table_lock);
    size_t i = slot_of((uintptr_t)p, table_cap);
    while (table[i].ptr != 0 && table[i].ptr != (uintptr_t)p)
        i = (i + 1) & (table_cap - 1);
    int found = table[i].ptr != 0;
    if (found) {
        if (out_gen)
            *out_gen = table[i].gen;
        table[i].ptr = 0;
        table_used--;
        /* Move later members of the cluster back over the hole, so lookups still find them. */
        for (size_t j = (i + 1) & (table_cap - 1); table[j].ptr != 0;
             j = (j + 1) & (table_cap - 1)) {
            size_t home = slot_of(table[j].ptr, table_cap);
            int movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
            if (movable) {
                table[i] = table[j];
                table[j].ptr = 0;
                i = j;
            }
        }
    }
    pthread_mutex_unlock(&table_lock);
    return found;
}

void torture_arm(unsigned long fail_at, torture_mode mode)
{
    g.armed = 1;
    g.thread = pthread_self();
    g.count = 0;
    g.fail_at = fail_at;
    g.mode = mode;
    g.injected = 0;
    generation++;
}

size_t torture_leaks(int report)
{
    size_t n = 0;
    pthread_mutex_lock(&table_lock);
    for (size_t i = 0; i < table_cap; i++) {
        const block *b = &table[i];
        if (b->ptr == 0 || b->gen != generation)
            continue;
        n++;
        if (!report)
            continue;
        Dl_info info;
        if (dladdr(b->caller, &info) && info.dli_fname)
            fprintf(stderr, "torture: leaked %zu bytes allocated at %s+%#lx (%s)\n", b->size,
                    info.dli_fname,
                    (unsigned long)((uintptr_t)b->caller - (uintptr_t)info.dli_fbase),
                    info.dli_sname ? info.dli_sname : "?");
        else
            fprintf(stderr, "torture: leaked %zu bytes allocated at %p\n", b->size, b->caller);
    }
    pthread_mutex_unlock(&table_lock);
    return n;
}

/* ---- the wrappers ---- */

void *__wrap_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = __real_malloc(n);
    track(p, n, __builtin_return_address(0), generation);
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = __real_calloc(n, size);
    track(p, n * size, __builtin_return_address(0), generation);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = __real_realloc(p, n);
    if (q == NULL)
        return NULL;
    /* A grown block stays with the run that made it. */
    unsigned gen = generation;
    untrack(p, &gen);
    track(q, n, __builtin_return_address(0), gen);
    return q;
}

char *__wrap_strdup(const char *s)
{
    if (should_fail())
        return NULL;
    char *p = __real_strdup(s);
    track(p, strlen(s) + 1, __builtin_return_address(0), generation);
    return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
    if (should_fail())
        return NULL;
    char *p = __real_strndup(s, n);
    track(p, p ? strlen(p) + 1 : 0, __builtin_return_address(0), generation);
    return p;
}

void __wrap_free(void *p)
{
    untrack(p, NULL);
    __real_free(p);
}

/*
 * jansson's parser does not survive every failed allocation: lex_save ignores
 * strbuffer_append_byte's failure, so a token silently loses a byte, and a failed
 * copy of a string token is reported as "invalid token" (json_error_invalid_syntax).
 * No caller can tell either from a real result: those are jansson's bugs (2.14 and
 * its master alike), not skyio's. So json_loadb counts as one allocation here, and
 * fails the way jansson's sound paths fail (NULL, the error text left empty, the
 * code not set); the real parser then runs with failures held off.
 */
json_t *__real_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error);
json_t *__wrap_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error);

json_t *__wrap_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error)
{
    if (should_fail()) {
        if (error) {
            memset(error, 0, sizeof(*error));
            error->line = error->column = -1;
            snprintf(error->source, sizeof(error->source), "<buffer>");
        }
        return NULL;
    }
    torture_pause();
    json_t *v = __real_json_loadb(buffer, buflen, flags, error);
    torture_resume();
    return v;
}

/* jansson's hooks: the same counter, the same table. */
static void *json_alloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = __real_malloc(n);
    track(p, n, __builtin_return_address(0), generation);
    return p;
}

static void json_release(void *p)
{
    __wrap_free(p);
}

void torture_alloc_init(void)
{
    json_set_alloc_funcs(json_alloc, json_release);
}

/* ---- libcurl's own allocations, counted only while torture_count_curl(1) ---- */

static int curl_counted;

static void *curl_alloc(size_t n)
{
    return curl_counted && should_fail() ? NULL : __real_malloc(n);
}

static void *curl_zalloc(size_t n, size_t size)
{
    return curl_counted && should_fail() ? NULL : __real_calloc(n, size);
}

static void *curl_resize(void *p, size_t n)
{
    return curl_counted && should_fail() ? NULL : __real_realloc(p, n);
}

static char *curl_dup(const char *s)
{
    return curl_counted && should_fail() ? NULL : __real_strdup(s);
}

static void curl_release(void *p)
{
    __wrap_free(p);
}

int torture_alloc_init_curl(void)
{
    return curl_global_init_mem(CURL_GLOBAL_DEFAULT, curl_alloc, curl_release, curl_resize,
                                curl_dup, curl_zalloc) == CURLE_OK
               ? 0
               : -1;
}

void torture_count_curl(int on)
{
    curl_counted = on;
}
