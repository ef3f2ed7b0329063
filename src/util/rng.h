/* rng.h - a small seedable PRNG (xoshiro256**), for jitter and fault
 * injection where runs must repeat exactly for a given seed.  Not for keys
 * or nonces: those come from OpenSSL's RAND_bytes. */
#ifndef BUOY_RNG_H
#define BUOY_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t rng_below(struct rng *r, uint64_t n);
/* Uniform in [0, 1). */
double rng_unit(struct rng *r);

#endif
