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

/* "00" to "ff": two digits a byte, one lookup (a request id is made for every call). */
#define HEX_ROW(h)                                                                                 \
    h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" h "8" h "9" h "a" h "b" h "c" h "d" h "e" h "f"
static const char hex_pairs[513] = HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3") HEX_ROW("4")
    HEX_ROW("5") HEX_ROW("6") HEX_ROW("7") HEX_ROW("8") HEX_ROW("9") HEX_ROW("a") HEX_ROW("b")
        HEX_ROW("c") HEX_ROW("d") HEX_ROW("e") HEX_ROW("f");
#undef HEX_ROW

void sky_rand_uuid(char out[SKY_UUID_LEN + 1])
{
    unsigned char b[16];
    uint64_t hi = sky_rand_u64(), lo = sky_rand_u64();
    memcpy(b, &hi, 8);
    memcpy(b + 8, &lo, 8);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    /* 8-4-4-4-12 hex digits: bytes 0-3, 4-5, 6-7, 8-9, 10-15, each pair where it goes. */
    static const unsigned char at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    for (size_t i = 0; i < sizeof(b); i++)
        memcpy(out + at[i], hex_pairs + 2 * b[i], 2);
    out[8] = out[13] = out[18] = out[23] = '-';
    out[SKY_UUID_LEN] = '\0';
}
