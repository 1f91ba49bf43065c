/*
 * sampling.h: drawing tokens from rows of logits with temperature, top-k, top-p
 * (nucleus) and min-p truncation, without sorting the row.
 *
 * Shapes: x is a C-contiguous (rows, cols) block; keys has one 64-bit key per row;
 * idx and logp are (rows, ndraws); status is (rows,); probs is (rows, cols);
 * work holds 2 * cols doubles per thread (nthreads * 2 * cols in all).
 *
 * Per row, all arithmetic is float64 (float32 logits are widened on load):
 *   w_j   = exp((x_j - max) * inv_t)                      (max weight is 1)
 *   tau_k = the top_k-th largest w (ties kept)            (top_k = 0: off)
 *   tau_p = the largest t with sum(w_j >= t, among w_j >= tau_k) >= top_p * that
 *           set's mass                                    (top_p >= 1: off)
 *   keep  = { j : w_j >= max(tau_k, tau_p, min_p), w_j > 0 }   (min_p = 0: off)
 * which is Hugging Face's and vLLM's order (temperature, top-k, top-p on the
 * renormalised top-k distribution, min-p), with ties at each threshold kept.
 * Each draw d uses the uniform u = sk_uniform(key of row i, d) and is the first kept j
 * (in index order) with cumsum(kept w)_j > u * sum(kept w): inverse-CDF sampling.
 * logp[i, d] = log(w_j / sum(kept w)).
 *
 * Rows whose max is +inf: w_j = 1 on the +inf entries, 0 elsewhere (the limit
 * convention of softmax). status[i]: 0 drawn, 1 NaN in the row, 2 nothing to draw
 * (every entry -inf, or cols == 0); such rows get idx -1 and logp NaN.
 */
#ifndef SK_SAMPLING_H
#define SK_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double inv_t;  /* 1 / temperature: > 0 and finite */
    int64_t top_k; /* 0: off */
    double top_p;  /* in (0, 1]; 1: off */
    double min_p;  /* in [0, 1]; 0: off */
} sk_sample_opts;

/* The generator: SplitMix64's output function (Steele, Lea and Flood 2014). */
#define SK_GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL

static inline uint64_t sk_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The counter-based uniform in [0, 1) used by every draw: sk_mix64 of
 * key + (counter + 1) * golden gamma, top 53 bits. IN key, counter. */
static inline double sk_uniform(uint64_t key, uint64_t counter)
{
    return (double)(sk_mix64(key + (counter + 1) * SK_GOLDEN_GAMMA) >> 11) * 0x1p-53;
}

/* Row i's key from `keys` by key_mode:
 *   SK_KEYS_GIVEN      keys[i] itself (rows keys, e.g. from a NumPy generator);
 *   SK_KEYS_SEED       splitmix64(keys[0] + (i + 1) * gamma): one seed for the batch;
 *   SK_KEYS_ROW_SEEDS  splitmix64(keys[i] + gamma): a seed per row, so the key
 *                      depends on the row's seed only, not on i. */
enum { SK_KEYS_GIVEN = 0, SK_KEYS_SEED = 1, SK_KEYS_ROW_SEEDS = 2 };

static inline uint64_t sk_row_key(const uint64_t *keys, size_t i, int key_mode)
{
    if (key_mode == SK_KEYS_SEED)
        return sk_mix64(keys[0] + ((uint64_t)i + 1) * SK_GOLDEN_GAMMA);
    if (key_mode == SK_KEYS_ROW_SEEDS)
        return sk_mix64(keys[i] + SK_GOLDEN_GAMMA);
    return keys[i];
}

/* The kernels, reached through a table of which sampling.c exports one per SIMD
 * variant (sk_sampling_kernels_avx512, ..., see sk_isa.h); the module picks one at
 * import. _f64 takes float64 logits, _f32 float32 ones. */
typedef struct sk_sampling_kernels {
    /* IN x, keys (1 for SK_KEYS_SEED, else rows), opts; OUT idx, logp (rows * ndraws),
     * status (rows); work: scratch. */
    void (*sample_f64)(const double *x, const uint64_t *keys, int key_mode, int64_t *idx, double *logp,
                       int64_t *status, size_t rows, size_t cols, size_t ndraws, const sk_sample_opts *opts,
                       double *work, int nthreads);
    void (*sample_f32)(const float *x, const uint64_t *keys, int key_mode, int64_t *idx, double *logp,
                       int64_t *status, size_t rows, size_t cols, size_t ndraws, const sk_sample_opts *opts,
                       double *work, int nthreads);
    /* The processed distribution itself: probs[i, j] = w_j / sum(kept w) on the kept
     * entries, 0 elsewhere. IN x, opts; OUT probs, status; work: scratch. */
    void (*sample_probs_f64)(const double *x, double *probs, int64_t *status, size_t rows, size_t cols,
                             const sk_sample_opts *opts, double *work, int nthreads);
    void (*sample_probs_f32)(const float *x, double *probs, int64_t *status, size_t rows, size_t cols,
                             const sk_sample_opts *opts, double *work, int nthreads);
} sk_sampling_kernels;

#endif
