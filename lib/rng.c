/*
 * rng.c -- the counter-based random generator: Philox4x64-10 (Salmon et
 * al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
 *
 * A draw is a pure function of (seed, step, stream, counter): the key is
 * (seed, stream), the counter block is (step, counter, 0, 0). Every rank and
 * every replay therefore gets the same numbers without any stored generator
 * state, and a job restored from an export needs no RNG state at all.
 * Randomised methods use stream = a small per-purpose number (rlw: 0;
 * PCGrad: 1 + the task whose projection order is drawn).
 */
#include "lw_internal.h"

#define PHILOX_M0 0xD2E7470EE14C6C93ULL
#define PHILOX_M1 0xCA5A826395121157ULL
#define PHILOX_W0 0x9E3779B97F4A7C15ULL
#define PHILOX_W1 0xBB67AE8584CAA73BULL

static inline void mulhilo(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    unsigned __int128 p = (unsigned __int128)a * b;
    *hi = (uint64_t)(p >> 64);
    *lo = (uint64_t)p;
}

/* Philox4x64 with 10 rounds on counter c and key k. Exposed for the
 * known-answer test. */
void lw_philox4x64_10(uint64_t c[4], const uint64_t key[2]);
void lw_philox4x64_10(uint64_t c[4], const uint64_t key[2])
{
    uint64_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c[0], &hi0, &lo0);
        mulhilo(PHILOX_M1, c[2], &hi1, &lo1);
        uint64_t n0 = hi1 ^ c[1] ^ k0;
        uint64_t n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

uint64_t lw_rand_u64(uint64_t seed, uint64_t step, uint64_t stream, uint64_t counter)
{
    uint64_t c[4] = {step, counter, 0, 0};
    uint64_t k[2] = {seed, stream};
    lw_philox4x64_10(c, k);
    return c[0];
}

double lw_rand_uniform(uint64_t seed, uint64_t step, uint64_t stream, uint64_t counter)
{
    return (double)(lw_rand_u64(seed, step, stream, counter) >> 11) * 0x1.0p-53;
}

double lw_rand_normal(uint64_t seed, uint64_t step, uint64_t stream, uint64_t k)
{
    /* One Philox block per draw: its first two words are the two uniforms
     * of Box-Muller. The block's counter is (step, 2^63 + k), a range that
     * lw_rand_u64's small counters never reach. 1 - u is in (0, 1], so the
     * log is finite. */
    uint64_t c[4] = {step, (UINT64_C(1) << 63) | k, 0, 0};
    uint64_t key[2] = {seed, stream};
    lw_philox4x64_10(c, key);
    double u1 = 1.0 - (double)(c[0] >> 11) * 0x1.0p-53;
    double u2 = (double)(c[1] >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
