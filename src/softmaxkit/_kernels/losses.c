/*
 * losses.c: cross-entropy from logits, integer and soft labels, each kernel doing the
 * forward alone or the fused forward-backward. See losses.h for the contract and the
 * conventions.
 *
 * Cross-entropy is computed as lse - x[t] = log(s) - (x[t] - m), never as
 * -log(softmax(x)[t]): float32 logits [0, 120] with label 0 give 120, where the
 * naive form gives -log(0) = inf (optax, Liger). The gradient p - onehot(t) comes
 * from the same exps (llm.c's crossentropy_softmax_backward), written over the row
 * in a third pass while it is still in L2.
 *
 * Design: every kernel is written once, in losses_body.h, and included below for
 * float64 and float32; there is no hand-written dtype variant. This file is compiled
 * once per SIMD variant (meson.build, sk_isa.h) and exports its kernels as one
 * table, named after the variant.
 */
#include "losses.h"
#include "sk_common.h"
#include "sk_isa.h"
#include "sk_half.h"

/* p and -log p of entry j of a row whose max is not finite and that holds no NaN
 * (softmax.h's conventions): k entries at +inf share p = 1/k, -log p = log k; every
 * other entry (and every entry of an all -inf row, k = 0) has p = 0, -log p = inf.
 * OUT p (1), OUT nlp (1) */
static void nonfinite_p(int hit, size_t k, double *p, double *nlp)
{
    *p = hit ? 1.0 / (double)k : 0.0;
    *nlp = hit ? log((double)k) : INFINITY;
}

#define SK_DTYPE 64
#include "losses_body.h"
#define SK_DTYPE 32
#include "losses_body.h"

/* bfloat16 and float16 logits: integer-label cross-entropy, computed in float32. */
#define SK_HALF_LOSS
#define SK_HALF 1
#include "half_body.h"
#define SK_HALF 2
#include "half_body.h"

/* This variant's table (sk_losses_kernels_avx512, ..., see sk_isa.h). */
const sk_losses_kernels SK_ISA_TABLE(sk_losses_kernels) = {
    .ce_hard_f64 = ce_hard_f64,
    .ce_hard_f32 = ce_hard_f32,
    .ce_hard_bf16 = ce_hard_bf16,
    .ce_hard_f16 = ce_hard_f16,
    .ce_hard_grad_lse_bf16 = ce_hard_grad_lse_bf16,
    .ce_hard_grad_lse_f16 = ce_hard_grad_lse_f16,
    .ce_soft_f64 = ce_soft_f64,
    .ce_soft_f32 = ce_soft_f32,
};
