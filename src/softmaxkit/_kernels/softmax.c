/*
 * softmax.c: softmax, log_softmax, logsumexp and their backward passes, plus the
 * elementwise sigmoid family. See softmax.h for the contract and row conventions.
 *
 * Each forward is three short passes over a row: max (and min), exp-and-sum,
 * finish. A row of up to a few hundred thousand elements stays in L2 between
 * passes, so memory sees one read of x and one write of y, the same traffic as a
 * copy. (An online, one-pass softmax needs two exps per element; with exp as the
 * bottleneck here the three-pass form is faster.) The row's range picks the exp:
 * the cheap one when no term can be subnormal, the exact one otherwise.
 *
 * Design: every kernel is written once, in softmax_body.h, and included below for
 * float64 and float32. The one hand-written float32 piece is exp_store_sum_f32, the
 * compensated sum behind float32 softmax (why: at its comment). This file is
 * compiled once per SIMD variant (meson.build, sk_isa.h) and exports its kernels as
 * one table, named after the variant.
 */
#include "softmax.h"
#include "sk_common.h"
#include "sk_isa.h"

/* Elementwise kernels split n into blocks of this many values, one block a task. */
#define SK_ELEM_BLOCK 16384

/* Runs BLOCK_FN(x + o, y + o, len) over n values in blocks, threads over blocks. */
#define SK_ELEMENTWISE(BLOCK_FN, x, y, n, nthreads)                                      \
    do {                                                                                 \
        size_t nblocks_ = ((n) + SK_ELEM_BLOCK - 1) / SK_ELEM_BLOCK;                     \
        int nt_ = sk_threads_for(nblocks_, SK_ELEM_BLOCK, (nthreads));                   \
        (void)nt_;                                                                       \
        _Pragma("omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)")       \
        for (ptrdiff_t b_ = 0; b_ < (ptrdiff_t)nblocks_; b_++) {                         \
            size_t o_ = (size_t)b_ * SK_ELEM_BLOCK;                                      \
            size_t len_ = (n) - o_ < SK_ELEM_BLOCK ? (n) - o_ : SK_ELEM_BLOCK;           \
            BLOCK_FN((x) + o_, (y) + o_, len_);                                          \
        }                                                                                \
    } while (0)

/* The same with two inputs a, b and one output y. */
#define SK_ELEMENTWISE2(BLOCK_FN, a, b, y, n, nthreads)                                  \
    do {                                                                                 \
        size_t nblocks_ = ((n) + SK_ELEM_BLOCK - 1) / SK_ELEM_BLOCK;                     \
        int nt_ = sk_threads_for(nblocks_, SK_ELEM_BLOCK, (nthreads));                   \
        (void)nt_;                                                                       \
        _Pragma("omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)")       \
        for (ptrdiff_t b_ = 0; b_ < (ptrdiff_t)nblocks_; b_++) {                         \
            size_t o_ = (size_t)b_ * SK_ELEM_BLOCK;                                      \
            size_t len_ = (n) - o_ < SK_ELEM_BLOCK ? (n) - o_ : SK_ELEM_BLOCK;           \
            BLOCK_FN((a) + o_, (b) + o_, (y) + o_, len_);                                \
        }                                                                                \
    } while (0)

/* Written by hand, on purpose: the sum behind float32 softmax, where its error
 * lands on every probability. The exps are stored in y and summed in SK_F32_LANES
 * compensated (Kahan) float32 lanes, as good as a float64 sum at full float32
 * width. Plain float32 partial sums (the body's exp_sum, which log_softmax and
 * logsumexp keep: there the sum's last-bit error only moves log(s) by an ulp of 1)
 * left the float32 softmax up to 1.9 ulps off, less accurate than SciPy and
 * PyTorch; compensated, the worst case is 0.7 ulps. The lanes are explicit arrays
 * because a compensated sum is no reduction the vectoriser knows.
 * IN x (n), OUT y (n); returns the sum of the exps */
#define SK_F32_LANES 16

SK_INLINE double exp_store_sum_f32(const float *x, float *y, size_t n, float m, float inv_t,
                                   int exact)
{
    float acc[SK_F32_LANES] = {0}, comp[SK_F32_LANES] = {0};
    size_t j = 0;
    for (; j + SK_F32_LANES <= n; j += SK_F32_LANES) {
        SK_SIMD
        for (size_t l = 0; l < SK_F32_LANES; l++) {
            float a = (x[j + l] - m) * inv_t;
            float e = exact ? sk_exp_f32(a) : sk_exp_nonpos_f32(a);
            y[j + l] = e;
            float v = e - comp[l];
            float t = acc[l] + v;
            comp[l] = (t - acc[l]) - v;
            acc[l] = t;
        }
    }
    double s = 0.0;
    for (size_t l = 0; l < SK_F32_LANES; l++)
        s += (double)acc[l] - (double)comp[l];
    for (; j < n; j++) {
        float a = (x[j] - m) * inv_t;
        y[j] = exact ? sk_exp_f32(a) : sk_exp_nonpos_f32(a);
        s += (double)y[j];
    }
    return s;
}

#define SK_DTYPE 64
#include "softmax_body.h"
#define SK_DTYPE 32
#include "softmax_body.h"

/* This variant's table (sk_softmax_kernels_avx512, ..., see sk_isa.h). */
const sk_softmax_kernels SK_ISA_TABLE(sk_softmax_kernels) = {
    .softmax_f64 = softmax_f64,
    .softmax_f32 = softmax_f32,
    .log_softmax_f64 = log_softmax_f64,
    .log_softmax_f32 = log_softmax_f32,
    .logsumexp_f64 = logsumexp_f64,
    .logsumexp_f32 = logsumexp_f32,
    .softmax_backward_f64 = softmax_backward_f64,
    .softmax_backward_f32 = softmax_backward_f32,
    .log_softmax_backward_f64 = log_softmax_backward_f64,
    .log_softmax_backward_f32 = log_softmax_backward_f32,
    .sigmoid_f64 = sigmoid_f64,
    .sigmoid_f32 = sigmoid_f32,
    .log_sigmoid_f64 = log_sigmoid_f64,
    .log_sigmoid_f32 = log_sigmoid_f32,
    .softplus_f64 = softplus_f64,
    .softplus_f32 = softplus_f32,
    .sigmoid_backward_f64 = sigmoid_backward_f64,
    .sigmoid_backward_f32 = sigmoid_backward_f32,
};
