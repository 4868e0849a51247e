/* rng.c — xoshiro256** streams and splitmix64 hashing (public-domain algorithms by
 * Blackman and Vigna, written from their description). */
#include "engine/rng.h"

#include <math.h>

uint64_t ns_hash64(uint64_t x) { return ns_mix64(x); }

uint64_t ns_seed_derive(uint64_t seed, uint64_t a, uint64_t b)
{
    return ns_hash64(ns_hash64(ns_hash64(seed) ^ a) ^ b);
}

void ns_rng_seed(ns_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ULL;
        r->s[i] = ns_hash64(x);
    }
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the all-zero state is a fixed point */
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ns_rng_next(ns_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double ns_rng_uniform(ns_rng *r) { return (double)(ns_rng_next(r) >> 11) * 0x1.0p-53; }

double ns_rng_normal(ns_rng *r)
{
    /* 1 - u keeps the log argument in (0, 1]. */
    double u1 = 1.0 - ns_rng_uniform(r);
    double u2 = ns_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t ns_rng_below(ns_rng *r, uint64_t n)
{
    /* Rejection on the top of the range removes modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = ns_rng_next(r);
    while (x >= limit);
    return x % n;
}

void ns_rng_shuffle_i32(ns_rng *r, int32_t *a, long n)
{
    for (long i = n - 1; i > 0; i--) {
        long j = (long)ns_rng_below(r, (uint64_t)i + 1);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
