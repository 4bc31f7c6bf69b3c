/* Deterministic reply text, the generator behind faults and jitter, token estimates. */
#include <stdio.h>

#include "internal.h"
#include "skyio/rand.h"

/* Rows of a fixed width, so the compiler refuses a word too long for the
 * bound sky__mock_words_max() gives. */
static const char vocabulary[][8] = {
    "the",    "quick", "brown",  "fox",   "jumps",  "over",    "lazy",  "dog",
    "cloud",  "token", "stream", "limit", "quota",  "retry",   "batch", "model",
    "answer", "is",    "a",      "and",   "of",     "to",      "in",    "that",
    "river",  "stone", "light",  "north", "signal", "harbour", "paper", "engine",
};

uint64_t sky__mock_rand(uint64_t *state)
{
    return sky_rand_splitmix64(state);
}

double sky__mock_rand01(uint64_t *state)
{
    return (double)(sky__mock_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t sky__mock_hash(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    if (h == 0)
        h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

const char *sky__mock_word(uint64_t seed, int i)
{
    uint64_t s = seed + (uint64_t)i * 0x9e3779b97f4a7c15ull;
    return vocabulary[sky__mock_rand(&s) % SKY_ARRAY_LEN(vocabulary)];
}

int sky__mock_words(sky_buf *out, uint64_t seed, int n_tokens)
{
    for (int i = 0; i < n_tokens; i++) {
        int rc = sky_buf_append_str(out, sky__mock_word(seed, i));
        if (rc == 0 && i + 1 < n_tokens)
            rc = sky_buf_append(out, " ", 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

size_t sky__mock_words_max(int n_tokens)
{
    return n_tokens > 0 ? (size_t)n_tokens * sizeof(vocabulary[0]) : 0;
}

size_t sky__mock_words_write(char *out, uint64_t seed, int n_tokens)
{
    char *p = out;
    for (int i = 0; i < n_tokens; i++) {
        const char *w = sky__mock_word(seed, i);
        size_t len = strlen(w);
        if (i > 0)
            *p++ = ' ';
        memcpy(p, w, len);
        p += len;
    }
    return (size_t)(p - out);
}

int64_t sky__mock_estimate_tokens(size_t chars)
{
    int64_t t = (int64_t)((chars + 3) / 4);
    return t > 0 ? t : 1;
}

void sky__mock_format_duration(int64_t ms, char *out, size_t len)
{
    if (ms < 1000)
        snprintf(out, len, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(out, len, "%lld.%03llds", (long long)(ms / 1000), (long long)(ms % 1000));
    else
        snprintf(out, len, "%lldm%llds", (long long)(ms / 60000), (long long)(ms % 60000 / 1000));
}
