/*
 * losses.h: cross-entropy on C-contiguous (rows, cols) blocks of logits, one row at
 * a time, threads over rows. cols is the number of classes C. Nothing is allocated;
 * every call is safe for rows == 0 and cols == 0.
 *
 * Each loss is one kernel: the forward (per-row loss only) when grad is NULL, else
 * the fused forward-backward (per-row loss and the gradient with respect to the
 * logits, in one visit of each row: a max pass, an exp-and-sum pass, a write pass;
 * a row stays in L2 between them, so memory sees one read of x and one write of
 * grad). As in softmax.h, the kernels are reached through a table,
 * sk_losses_kernels, one per SIMD variant (sk_isa.h); T is double (_f64) or
 * float (_f32).
 *
 * Notation for row i: m = max_c x[c], s = sum_c exp(x[c] - m), lse = m + log s,
 * p = softmax(x), -log p[c] = lse - x[c]; eps = label smoothing, w = class weights
 * (NULL means all ones), W = sum_c w[c]. Sums of float32 rows are accumulated in
 * float64, and losses are returned in float64 whatever the logits' precision.
 *
 * Non-finite rows follow softmax.h's conventions: NaN in a row makes its loss and
 * gradient NaN; a row of all -inf has p = 0 and -log p = +inf everywhere; k entries
 * at +inf share p = 1/k (-log p = log k), the others get p = 0 (-log p = +inf).
 * A term whose weight (w[c], or w[c] q[c] for soft labels) is exactly 0 is left
 * out of the loss, so a zero weight never meets an infinite -log p as 0 * inf = NaN.
 */
#ifndef SK_LOSSES_H
#define SK_LOSSES_H

#include <stddef.h>
#include <stdint.h>

typedef struct sk_losses_kernels {
    /*
     * Integer labels (PyTorch's cross_entropy with label_smoothing). Row i, t = target[i]:
     *   ignored (has_ignore and t == ignore_index): loss 0, roww 0, gradient row 0.
     *   t outside [0, cols), not ignored: loss NaN, roww 0, gradient row NaN. Nothing
     *       is read at x[t] (the Python layer rejects such labels before the call).
     *   otherwise:
     *       loss[i] = (1 - eps) w[t] (lse - x[t]) + (eps / C) sum_c w[c] (lse - x[c])
     *       roww[i] = w[t]
     *       grad    = g_i * (a p - (eps / C) w - (1 - eps) w[t] onehot(t)),
     *                 a = (1 - eps) w[t] + (eps / C) W,
     *       g_i = gscale[i], or gscale_c when gscale is NULL.
     *
     * IN  x        (rows, cols) logits, T
     * IN  target   (rows) class indices
     * IN  w        (cols) class weights, T, or NULL
     * IN  ignore_index, has_ignore, eps (in [0, 1])
     * OUT loss     (rows) float64
     * OUT roww     (rows) float64
     * IN  gscale   (rows) float64 gradient multipliers, or NULL (then gscale_c for
     *              every row)
     * OUT grad     (rows, cols) T, or NULL for the forward alone; may be x itself
     *              (each row is read in full before it is overwritten)
     */
    void (*ce_hard_f64)(const double *x, const int64_t *target, const double *w,
                        int64_t ignore_index, int has_ignore, double eps,
                        double *loss, double *roww, const double *gscale, double gscale_c,
                        double *grad, size_t rows, size_t cols, int nthreads);
    void (*ce_hard_f32)(const float *x, const int64_t *target, const float *w,
                        int64_t ignore_index, int has_ignore, double eps,
                        double *loss, double *roww, const double *gscale, double gscale_c,
                        float *grad, size_t rows, size_t cols, int nthreads);
    /* The same for 16-bit logits and gradient, bfloat16 or float16 passed as their
     * bits, computed in float32 (half_body.h), with float32 class weights w; work:
     * NULL or float32 scratch, cols per thread, used with grad. */
    void (*ce_hard_bf16)(const uint16_t *x, const int64_t *target, const float *w,
                         int64_t ignore_index, int has_ignore, double eps,
                         double *loss, double *roww, const double *gscale, double gscale_c,
                         uint16_t *grad, size_t rows, size_t cols, int nthreads, float *work, double *lse);
    void (*ce_hard_f16)(const uint16_t *x, const int64_t *target, const float *w,
                        int64_t ignore_index, int has_ignore, double eps,
                        double *loss, double *roww, const double *gscale, double gscale_c,
                        uint16_t *grad, size_t rows, size_t cols, int nthreads, float *work, double *lse);
    /* ... and lse (rows): NULL, or OUT each row's logsumexp (NaN or +inf where the row
     * took a non-finite path), from which ce_hard_grad_lse writes the gradient in one pass
     * (rows whose lse is not finite recomputed in full). */
    void (*ce_hard_grad_lse_bf16)(const uint16_t *x, const int64_t *target, const float *w,
                                  int64_t ignore_index, int has_ignore, double eps, const double *lse,
                                  const double *gscale, double gscale_c, uint16_t *grad,
                                  size_t rows, size_t cols, int nthreads);
    void (*ce_hard_grad_lse_f16)(const uint16_t *x, const int64_t *target, const float *w,
                                 int64_t ignore_index, int has_ignore, double eps, const double *lse,
                                 const double *gscale, double gscale_c, uint16_t *grad,
                                 size_t rows, size_t cols, int nthreads);
    /*
     * Soft labels (class probabilities q, PyTorch's cross_entropy with a float target):
     *   q'  = (1 - eps) q + eps / C
     *   loss[i] = sum_c w[c] q'[c] (lse - x[c])
     *   grad    = g_i * (Q p - w q'),  Q = sum_c w[c] q'[c]
     * (the gradient holds whether or not q sums to 1).
     *
     * IN  x, q     (rows, cols) logits and target probabilities, T
     * IN  w        (cols) class weights, T, or NULL
     * IN  eps
     * OUT loss     (rows) float64
     * IN  gscale, gscale_c, OUT grad: as for integer labels (grad NULL for the
     *              forward alone; grad may be x itself)
     */
    void (*ce_soft_f64)(const double *x, const double *q, const double *w, double eps,
                        double *loss, const double *gscale, double gscale_c,
                        double *grad, size_t rows, size_t cols, int nthreads);
    void (*ce_soft_f32)(const float *x, const float *q, const float *w, double eps,
                        double *loss, const double *gscale, double gscale_c,
                        float *grad, size_t rows, size_t cols, int nthreads);
} sk_losses_kernels;

#endif
