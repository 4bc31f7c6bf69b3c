/* skyio — fast random numbers for jitter and request ids. Not for secrets. */
#ifndef SKYIO_RAND_H
#define SKYIO_RAND_H

#include "common.h"

/** Length of a UUID in text form, without the terminating NUL. */
#define SKY_UUID_LEN 36

/**
 * One step of splitmix64 over @p state: a small, fast generator whose
 * sequence is fixed by its seed, so tests can replay it.
 */
SKY_EXTERN uint64_t sky_rand_splitmix64(uint64_t *state);

/**
 * A random 64-bit number from this thread's generator. The generator is
 * seeded from OpenSSL's random source on first use in each thread and again
 * in a child after fork(), so processes and threads draw different
 * sequences. It is predictable to anyone who sees enough output: use it for
 * retry jitter and correlation ids, never for keys, tokens or nonces.
 */
SKY_EXTERN uint64_t sky_rand_u64(void);

/**
 * Write a random (version 4) UUID in lower-case text form into @p out, which
 * must hold SKY_UUID_LEN + 1 bytes, NUL included. Draws from sky_rand_u64().
 */
SKY_EXTERN void sky_rand_uuid(char out[SKY_UUID_LEN + 1]);

#endif
