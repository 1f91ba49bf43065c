/*
 * softmax.h: the softmax family on C-contiguous (rows, cols) blocks, one row at a
 * time, threads over rows, and the elementwise sigmoid family on n values.
 * Shapes are given at each kernel; outputs never alias inputs unless said so.
 * Nothing is allocated; every kernel is safe for rows == 0, cols == 0, n == 0.
 *
 * Row conventions (documented in softmaxkit's docs/semantics.md):
 *   - max finite:           the usual stable formulas (shift by the row max).
 *   - NaN anywhere in row:  the whole row is NaN; other rows are untouched.
 *   - every entry -inf:     softmax 0, log_softmax -inf, logsumexp -inf.
 *   - k entries +inf:       the limit in which they grow together: each gets 1/k,
 *                           the rest 0 (log: -log k and -inf); logsumexp +inf.
 *   - cols == 0:            nothing written; logsumexp writes -inf.
 *
 * The kernels are reached through a table, sk_softmax_kernels, of which softmax.c
 * exports one per SIMD variant it is compiled for (sk_softmax_kernels_avx512,
 * ..._sse2, or ..._baseline: see sk_isa.h); the extension picks one at import.
 * Each entry exists for float64 (_f64, T = double) and float32 (_f32, T = float).
 */
#ifndef SK_SOFTMAX_H
#define SK_SOFTMAX_H

#include <stddef.h>
#include <stdint.h>

typedef struct sk_softmax_kernels {
    /* y = softmax(x * inv_t) per row.
     * IN x (rows, cols), OUT y (rows, cols), IN inv_t (> 0, finite) */
    void (*softmax_f64)(const double *x, double *y, size_t rows, size_t cols, double inv_t, int nthreads);
    void (*softmax_f32)(const float *x, float *y, size_t rows, size_t cols, float inv_t, int nthreads);
    /* y = log_softmax(x * inv_t) per row.
     * IN x (rows, cols), OUT y (rows, cols), IN inv_t (> 0, finite) */
    void (*log_softmax_f64)(const double *x, double *y, size_t rows, size_t cols, double inv_t, int nthreads);
    void (*log_softmax_f32)(const float *x, float *y, size_t rows, size_t cols, float inv_t, int nthreads);
    /* The same two for 16-bit logits, computed in float32 (half_body.h): bfloat16
     * and float16, passed as their bits.
     * IN x (rows, cols), OUT y (rows, cols), IN inv_t (> 0, finite) */
    /* work: NULL or float32 scratch, cols per thread (half_body.h) */
    void (*softmax_bf16)(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, float inv_t, int nthreads,
                         float *work);
    void (*softmax_f16)(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, float inv_t, int nthreads,
                        float *work);
    void (*log_softmax_bf16)(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, float inv_t, int nthreads);
    void (*log_softmax_f16)(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, float inv_t, int nthreads);
    /* out[i] = log(sum_j exp(x[i, j])).  IN x (rows, cols), OUT out (rows) */
    void (*logsumexp_f64)(const double *x, double *out, size_t rows, size_t cols, int nthreads);
    void (*logsumexp_f32)(const float *x, float *out, size_t rows, size_t cols, int nthreads);
    /* Backward of softmax (at inv_t = 1) from its output p: dx = p * (g - sum(p * g))
     * per row, entries with p == 0 get 0.
     * IN p (rows, cols), IN g (rows, cols), OUT dx (rows, cols); dx may alias g */
    void (*softmax_backward_f64)(const double *p, const double *g, double *dx, size_t rows, size_t cols, int nthreads);
    void (*softmax_backward_f32)(const float *p, const float *g, float *dx, size_t rows, size_t cols, int nthreads);
    /* Backward of log_softmax (at inv_t = 1) from its output lp: dx = g - exp(lp) * sum(g)
     * per row, entries with lp == -inf excluded (their g is ignored, their dx is 0).
     * IN lp (rows, cols), IN g (rows, cols), OUT dx (rows, cols); dx may alias g */
    void (*log_softmax_backward_f64)(const double *lp, const double *g, double *dx, size_t rows, size_t cols, int nthreads);
    void (*log_softmax_backward_f32)(const float *lp, const float *g, float *dx, size_t rows, size_t cols, int nthreads);
    /* Elementwise sigmoid, log_sigmoid, softplus.  IN x (n), OUT y (n); y may alias x */
    void (*sigmoid_f64)(const double *x, double *y, size_t n, int nthreads);
    void (*sigmoid_f32)(const float *x, float *y, size_t n, int nthreads);
    void (*log_sigmoid_f64)(const double *x, double *y, size_t n, int nthreads);
    void (*log_sigmoid_f32)(const float *x, float *y, size_t n, int nthreads);
    void (*softplus_f64)(const double *x, double *y, size_t n, int nthreads);
    void (*softplus_f32)(const float *x, float *y, size_t n, int nthreads);
    /* Backward of sigmoid from its output s: dx = g * s * (1 - s).
     * IN s (n), IN g (n), OUT dx (n); dx may alias g */
    void (*sigmoid_backward_f64)(const double *s, const double *g, double *dx, size_t n, int nthreads);
    void (*sigmoid_backward_f32)(const float *s, const float *g, float *dx, size_t n, int nthreads);
    /* PyTorch's softplus: log(1 + exp(beta x)) / beta, and x where beta x > threshold.
     * IN x (n), OUT y (n), IN beta (> 0, finite), threshold (+inf: none); y may alias x */
    void (*softplus_scaled_f64)(const double *x, double *y, size_t n, double beta, double threshold, int nthreads);
    void (*softplus_scaled_f32)(const float *x, float *y, size_t n, float beta, float threshold, int nthreads);
    /* Backward of softplus_scaled from its input: dx = g * sigmoid(beta x), and g where
     * beta x > threshold.  IN x (n), IN g (n), OUT dx (n); dx may alias g */
    void (*softplus_backward_f64)(const double *x, const double *g, double *dx, size_t n, double beta,
                                  double threshold, int nthreads);
    void (*softplus_backward_f32)(const float *x, const float *g, float *dx, size_t n, float beta,
                                  float threshold, int nthreads);
    /* Backward of log_sigmoid from its input: dx = g * sigmoid(-x).
     * IN x (n), IN g (n), OUT dx (n); dx may alias g */
    void (*log_sigmoid_backward_f64)(const double *x, const double *g, double *dx, size_t n, int nthreads);
    void (*log_sigmoid_backward_f32)(const float *x, const float *g, float *dx, size_t n, int nthreads);
    /* torchvision's sigmoid focal loss per element (elementwise_body.h):
     * loss = a_t ce (1 - p_t)^gamma, and its backward dx = g * d loss / dx.
     * IN x (n), IN t (n), [IN g (n)], OUT loss / dx (n), IN alpha (<= 1; < 0: no
     * weighting), gamma (>= 0, finite); dx may alias g */
    void (*sigmoid_focal_f64)(const double *x, const double *t, double *loss, size_t n, double alpha,
                              double gamma, int nthreads);
    void (*sigmoid_focal_f32)(const float *x, const float *t, float *loss, size_t n, float alpha,
                              float gamma, int nthreads);
    void (*sigmoid_focal_backward_f64)(const double *x, const double *t, const double *g, double *dx, size_t n,
                                       double alpha, double gamma, int nthreads);
    void (*sigmoid_focal_backward_f32)(const float *x, const float *t, const float *g, float *dx, size_t n,
                                       float alpha, float gamma, int nthreads);
    /* torch's multi_margin_loss per row, unweighted (elementwise_body.h):
     * loss[i] = sum_{j != y} max(0, margin - x_y + x_j)^p / cols, p 1 or 2, and its
     * backward dx = g[i] * d loss[i] / dx; a label outside [0, cols) gives NaN.
     * IN x (rows, cols), IN target (rows), OUT loss (rows) / IN g (rows), OUT dx (rows, cols) */
    void (*multi_margin_f64)(const double *x, const int64_t *target, double *loss, size_t rows, size_t cols,
                             double margin, int p, int nthreads);
    void (*multi_margin_f32)(const float *x, const int64_t *target, double *loss, size_t rows, size_t cols,
                             float margin, int p, int nthreads);
    void (*multi_margin_backward_f64)(const double *x, const int64_t *target, const double *g, double *dx,
                                      size_t rows, size_t cols, double margin, int p, int nthreads);
    void (*multi_margin_backward_f32)(const float *x, const int64_t *target, const double *g, float *dx,
                                      size_t rows, size_t cols, float margin, int p, int nthreads);
} sk_softmax_kernels;

#endif
