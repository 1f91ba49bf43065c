/*
 * entmax.c: alpha-entmax forward and backward without sorting the row. See
 * entmax.h for the contract.
 *
 * The threshold tau solves f(tau) = sum_j [u_j - tau]_+^(1/(alpha-1)) - 1 = 0 with
 * u = (alpha - 1) (x - max x), so max u = 0 and tau lies in [-1, -(1/n)^(alpha-1)]
 * (f >= 0 at the left end, where the max alone gives 1; f <= 0 at the right end,
 * where every term is at most 1/n). f is decreasing, and bisection brackets tau
 * with one vectorised pass per step, as the entmax package's entmax_bisect does
 * (Blondel et al. 2019), but run to convergence rather than a fixed 50 steps.
 *
 * For sparsemax (alpha = 2) and entmax15 (alpha = 1.5) the bisection stops as soon
 * as no u lies between the two ends: the support S is then known, and tau follows
 * in closed form (sparsemax: mean(u_S) - 1/|S|; entmax15: mean(u_S) -
 * sqrt((1 - |S| var(u_S)) / |S|), with the variance taken about the mean, not as
 * E[u^2] - E[u]^2, which cancels). These are the sort-based formulas of Martins and
 * Astudillo 2016 and Peters et al. 2019 restricted to S, without the sort. Other
 * alphas take tau from the bisection (to the last bit) and renormalise, as the
 * entmax package does with ensure_sum_one.
 *
 * Design: the kernels are written once, in entmax_body.h, included below for float64
 * and float32. This file is compiled once per SIMD variant (meson.build, sk_isa.h)
 * and exports its kernels as one table, named after the variant.
 */
#include "entmax.h"
#include "sk_common.h"
#include "sk_isa.h"

enum { KIND_GENERAL = 0, KIND_15 = 1, KIND_2 = 2 };

static inline int kind_of(double alpha)
{
    return alpha == 2.0 ? KIND_2 : alpha == 1.5 ? KIND_15 : KIND_GENERAL;
}

/* [t]_+ ^ (1/(alpha-1)) */
SK_INLINE double entmax_pow(double t, int kind, double e)
{
    if (!(t > 0.0))
        return 0.0;
    return kind == KIND_2 ? t : kind == KIND_15 ? t * t : pow(t, e);
}

#define SK_DTYPE 64
#include "entmax_body.h"
#define SK_DTYPE 32
#include "entmax_body.h"

/* This variant's table (sk_entmax_kernels_avx512, ..., see sk_isa.h). */
const sk_entmax_kernels SK_ISA_TABLE(sk_entmax_kernels) = {
    .entmax_f64 = entmax_f64,
    .entmax_f32 = entmax_f32,
    .entmax_backward_f64 = entmax_backward_f64,
    .entmax_backward_f32 = entmax_backward_f32,
};
