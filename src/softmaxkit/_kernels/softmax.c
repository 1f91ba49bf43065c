/*
 * softmax.c: softmax, log_softmax, logsumexp and their backward passes, plus the
 * elementwise sigmoid family (softplus, log_sigmoid, the sigmoid focal loss and the
 * multi-class hinge: elementwise_body.h). See softmax.h for the contract and row
 * conventions.
 *
 * Each forward is three short passes over a row: max (and min), exp-and-sum,
 * finish. A row of up to a few hundred thousand elements stays in L2 between
 * passes, so memory sees one read of x and one write of y, the same traffic as a
 * copy. (An online, one-pass softmax needs two exps per element; with exp as the
 * bottleneck here the three-pass form is faster.) The row's range picks the exp:
 * the cheap one when no term can be subnormal, the exact one otherwise.
 *
 * Design: every kernel is written once, in softmax_body.h, and included below for
 * float64 and float32. The one piece written per dtype by hand is the sum behind
 * softmax, exp_store_sum_f64 / _f32 (why: at their comment). This file is
 * compiled once per SIMD variant (meson.build, sk_isa.h) and exports its kernels as
 * one table, named after the variant.
 */
#include "softmax.h"
#include "sk_common.h"
#include "sk_isa.h"
#include "sk_half.h"

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

/* Written by hand per dtype, on purpose: the sum behind softmax, where its error
 * lands on every probability. Both store the exps in y and return their sum,
 * taken in explicit lanes: SK_LANES partial sums whatever the SIMD variant's
 * vector width, so that every variant adds in the same order and is as accurate as
 * the widest. Left to the vectoriser, the order followed the width: with the 2 or 4
 * lanes of the SSE2 and AVX variants the float64 softmax was up to 3.05 and 1.87
 * scaled ulps off (against 1.56 with AVX-512), less accurate than SciPy (1.66) and
 * PyTorch (1.60); tests/test_kernel_variants.py runs the accuracy tests under every
 * variant. The lanes are arrays because the vectoriser maps such a fixed-size array
 * onto its registers, whatever their width.
 *
 * float64: plain lanes, combined as a tree; 1.52 scaled ulps in every variant.
 * (Keeping the max's exact 1 out of the lanes, as exp_sum_m1 does for log_softmax,
 * gave 1.19 but made the exp pass 6-10% slower.)
 *
 * float32: compensated (Kahan) lanes, as good as a float64 sum at full float32
 * width. Plain float32 partial sums (the body's exp_sum_m1, which log_softmax and
 * logsumexp keep: there the sum's last-bit error only moves log(s) by an ulp of 1)
 * left the float32 softmax up to 1.9 ulps off; compensated, the worst case is
 * 0.66 ulps in every variant. A float64 accumulator would halve the vector width.
 * IN x (n), OUT y (n); returns sum_j exp((x_j - m) inv_t) */
#define SK_LANES 16

SK_INLINE double exp_store_sum_f64(const double *x, double *y, size_t n, double m, double inv_t,
                                      int exact)
{
    double s = 0.0;
    size_t j = 0;
    if (n >= SK_LANES) {
        double acc[SK_LANES] = {0};
        for (; j + SK_LANES <= n; j += SK_LANES) {
            SK_SIMD
            for (size_t l = 0; l < SK_LANES; l++) {
                double a = (x[j + l] - m) * inv_t;
                double e = exact ? sk_exp_f64(a) : sk_exp_nonpos_f64(a);
                y[j + l] = e;
                acc[l] += e;
            }
        }
        for (size_t w = SK_LANES / 2; w > 0; w /= 2) /* a tree: 4 dependent adds, not 16 */
            for (size_t l = 0; l < w; l++)
                acc[l] += acc[l + w];
        s = acc[0];
    }
    double tail = 0.0;
    SK_SIMD_REDUCE(+, tail)
    for (size_t k = j; k < n; k++) {
        double a = (x[k] - m) * inv_t;
        y[k] = exact ? sk_exp_f64(a) : sk_exp_nonpos_f64(a);
        tail += y[k];
    }
    return s + tail;
}

SK_INLINE double exp_store_sum_f32(const float *x, float *y, size_t n, float m, float inv_t,
                                      int exact)
{
    float acc[SK_LANES] = {0}, comp[SK_LANES] = {0};
    size_t j = 0;
    for (; j + SK_LANES <= n; j += SK_LANES) {
        SK_SIMD
        for (size_t l = 0; l < SK_LANES; l++) {
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
    for (size_t l = 0; l < SK_LANES; l++)
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
#define SK_DTYPE 64
#include "elementwise_body.h"
#define SK_DTYPE 32
#include "elementwise_body.h"

/* bfloat16 and float16: softmax and log_softmax, computed in float32. */
#define SK_HALF_SOFTMAX
#define SK_HALF 1
#include "half_body.h"
#define SK_HALF 2
#include "half_body.h"

/* This variant's table (sk_softmax_kernels_avx512, ..., see sk_isa.h). */
const sk_softmax_kernels SK_ISA_TABLE(sk_softmax_kernels) = {
    .softmax_f64 = softmax_f64,
    .softmax_f32 = softmax_f32,
    .log_softmax_f64 = log_softmax_f64,
    .log_softmax_f32 = log_softmax_f32,
    .softmax_bf16 = softmax_bf16,
    .softmax_f16 = softmax_f16,
    .log_softmax_bf16 = log_softmax_bf16,
    .log_softmax_f16 = log_softmax_f16,
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
    .softplus_scaled_f64 = softplus_scaled_f64,
    .softplus_scaled_f32 = softplus_scaled_f32,
    .softplus_backward_f64 = softplus_backward_f64,
    .softplus_backward_f32 = softplus_backward_f32,
    .log_sigmoid_backward_f64 = log_sigmoid_backward_f64,
    .log_sigmoid_backward_f32 = log_sigmoid_backward_f32,
    .sigmoid_focal_f64 = sigmoid_focal_f64,
    .sigmoid_focal_f32 = sigmoid_focal_f32,
    .sigmoid_focal_backward_f64 = sigmoid_focal_backward_f64,
    .sigmoid_focal_backward_f32 = sigmoid_focal_backward_f32,
    .multi_margin_f64 = multi_margin_f64,
    .multi_margin_f32 = multi_margin_f32,
    .multi_margin_backward_f64 = multi_margin_backward_f64,
    .multi_margin_backward_f32 = multi_margin_backward_f32,
};
