/*
 * softmax.h: the softmax family on C-contiguous (rows, cols) blocks, one row at a
 * time, threads over rows. Every pointer covers rows*cols elements unless said
 * otherwise; outputs never alias inputs unless said so. Nothing is allocated.
 *
 * Row conventions (documented in softmaxkit's docs/semantics.md):
 *   - max finite:           the usual stable formulas (shift by the row max).
 *   - NaN anywhere in row:  the whole row is NaN; other rows are untouched.
 *   - every entry -inf:     softmax 0, log_softmax -inf, logsumexp -inf.
 *   - k entries +inf:       the limit in which they grow together: each gets 1/k,
 *                           the rest 0 (log: -log k and -inf); logsumexp +inf.
 *   - cols == 0:            nothing written; logsumexp writes -inf.
 */
#ifndef SK_SOFTMAX_H
#define SK_SOFTMAX_H

#include <stddef.h>

/* y = softmax(x * inv_t) per row.  IN x, OUT y, IN rows, cols, inv_t (> 0, finite), nthreads */
void sk_softmax_f64(const double *x, double *y, size_t rows, size_t cols, double inv_t, int nthreads);
void sk_softmax_f32(const float *x, float *y, size_t rows, size_t cols, float inv_t, int nthreads);

/* y = log_softmax(x * inv_t) per row.  IN x, OUT y */
void sk_log_softmax_f64(const double *x, double *y, size_t rows, size_t cols, double inv_t, int nthreads);
void sk_log_softmax_f32(const float *x, float *y, size_t rows, size_t cols, float inv_t, int nthreads);

/* out[i] = log(sum_j exp(x[i, j])).  IN x (rows*cols), OUT out (rows) */
void sk_logsumexp_f64(const double *x, double *out, size_t rows, size_t cols, int nthreads);
void sk_logsumexp_f32(const float *x, float *out, size_t rows, size_t cols, int nthreads);

/* Backward passes: the gradient with respect to the input x of the forward above
 * (at inv_t = 1), given its output and the gradient g of the output.
 * softmax:     dx = p * (g - sum(p * g)), entries with p == 0 get 0.
 * log_softmax: dx = g - exp(lp) * sum(g), entries with lp == -inf are excluded (their
 *              g is ignored and they get 0).
 * IN p / lp, IN g, OUT dx; dx may alias g. */
void sk_softmax_backward_f64(const double *p, const double *g, double *dx, size_t rows, size_t cols, int nthreads);
void sk_softmax_backward_f32(const float *p, const float *g, float *dx, size_t rows, size_t cols, int nthreads);
void sk_log_softmax_backward_f64(const double *lp, const double *g, double *dx, size_t rows, size_t cols, int nthreads);
void sk_log_softmax_backward_f32(const float *lp, const float *g, float *dx, size_t rows, size_t cols, int nthreads);

/* Elementwise on n values.  IN x, OUT y (y may alias x). */
void sk_sigmoid_f64(const double *x, double *y, size_t n, int nthreads);
void sk_sigmoid_f32(const float *x, float *y, size_t n, int nthreads);
void sk_log_sigmoid_f64(const double *x, double *y, size_t n, int nthreads);
void sk_log_sigmoid_f32(const float *x, float *y, size_t n, int nthreads);
void sk_softplus_f64(const double *x, double *y, size_t n, int nthreads);
void sk_softplus_f32(const float *x, float *y, size_t n, int nthreads);
/* dx = g * s * (1 - s).  IN s, IN g, OUT dx */
void sk_sigmoid_backward_f64(const double *s, const double *g, double *dx, size_t n, int nthreads);
void sk_sigmoid_backward_f32(const float *s, const float *g, float *dx, size_t n, int nthreads);

#endif
