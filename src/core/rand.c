/*
 * Fast random numbers. Asking OpenSSL for every retry seed and request id cost
 * two DRBG calls (locks, a getpid, a cipher) per request, a tenth of the batch
 * job's CPU; one OpenSSL seed per thread and splitmix64 after it is enough
 * for values that only need to differ, not to be secret.
 */
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "skyio/clock.h"
#include "skyio/rand.h"

typedef struct thread_rng {
    uint64_t state;
    unsigned generation; /* fork_generation when seeded */
    int seeded;
} thread_rng;

static _Thread_local thread_rng tls_rng;
static atomic_uint fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* A child after fork() would repeat its parent's sequence: make every thread reseed. */
static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

static void register_atfork(void)
{
    /* Without the handler a forked child repeats ids; rare, and nothing else to do. */
    (void)pthread_atfork(NULL, NULL, on_fork_child);
}

static void seed_thread(thread_rng *r, unsigned generation)
{
    unsigned char b[sizeof(r->state)];
    pthread_once(&atfork_once, register_atfork);
    if (RAND_bytes(b, (int)sizeof(b)) == 1)
        memcpy(&r->state, b, sizeof(b));
    else
        r->state = sky_clock_real_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
    r->generation = generation;
    r->seeded = 1;
}

uint64_t sky_rand_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t sky_rand_u64(void)
{
    thread_rng *r = &tls_rng;
    unsigned generation = atomic_load_explicit(&fork_generation, memory_order_relaxed);
    if (!r->seeded || r->generation != generation)
        seed_thread(r, generation);
    return sky_rand_splitmix64(&r->state);
}

static char *put_hex(char *out, const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        *out++ = digits[b[i] >> 4];
        *out++ = digits[b[i] & 0x0f];
    }
    return out;
}

void sky_rand_uuid(char out[SKY_UUID_LEN + 1])
{
    unsigned char b[16];
    uint64_t hi = sky_rand_u64(), lo = sky_rand_u64();
    memcpy(b, &hi, 8);
    memcpy(b + 8, &lo, 8);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    /* 8-4-4-4-12 hex digits: bytes 0-3, 4-5, 6-7, 8-9, 10-15. */
    static const unsigned char groups[] = {4, 2, 2, 2, 6};
    char *p = out;
    const unsigned char *src = b;
    for (size_t g = 0; g < sizeof(groups); g++) {
        if (g > 0)
            *p++ = '-';
        p = put_hex(p, src, groups[g]);
        src += groups[g];
    }
    *p = '\0';
}
