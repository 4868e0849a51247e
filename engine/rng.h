/* rng.h — explicit, seedable random streams (xoshiro256**) and a counter-based hash.
 * Every source of randomness in a run is an ns_rng passed by pointer; nothing calls rand().
 * The state is 32 bytes so a checkpoint stores it verbatim, and ns_hash64 gives
 * per-element random bits (dropout masks) that a GPU kernel can reproduce without state. */
#ifndef NS_RNG_H
#define NS_RNG_H

#include <stdint.h>

#include "engine/hostdev.h"

typedef struct ns_rng {
    uint64_t s[4];
} ns_rng;

void ns_rng_seed(ns_rng *r, uint64_t seed);      /* splitmix64 expansion of seed */
uint64_t ns_rng_next(ns_rng *r);                  /* 64 uniform bits */
double ns_rng_uniform(ns_rng *r);                 /* [0, 1), 53 bits */
double ns_rng_normal(ns_rng *r);                  /* N(0, 1), Box-Muller, no cached spare */
uint64_t ns_rng_below(ns_rng *r, uint64_t n);     /* uniform in [0, n), unbiased; n > 0 */
void ns_rng_shuffle_i32(ns_rng *r, int32_t *a, long n); /* Fisher-Yates */
uint64_t ns_hash64(uint64_t x);                   /* splitmix64 finaliser: bijective mix */
/* ns_hash64 inline, for loops and CUDA kernels */
static inline NS_HOST_DEVICE uint64_t ns_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
/* Derives an independent stream seed from (seed, a, b), e.g. (study seed, trial, purpose). */
uint64_t ns_seed_derive(uint64_t seed, uint64_t a, uint64_t b);

#endif
