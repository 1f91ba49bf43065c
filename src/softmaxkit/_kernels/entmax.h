/*
 * entmax.h: alpha-entmax (Peters, Niculae and Martins 2019) on C-contiguous
 * (rows, cols) blocks, one row at a time, threads over rows. alpha > 1 here
 * (alpha = 1 is softmax, which Python hands to the softmax kernels).
 *
 *   y_j = [(alpha - 1) x_j - tau]_+ ^ (1 / (alpha - 1)),  tau such that sum y = 1.
 *
 * alpha = 2 is sparsemax, y = [x - tau]_+; alpha = 1.5 is entmax15, y = [x/2 - tau]_+^2.
 * All arithmetic in float64 (float32 rows are widened on load). Row conventions as
 * softmax's: NaN in a row makes it NaN; a row of -inf gives 0; k entries +inf share
 * the mass (1/k each). Nothing is allocated.
 */
#ifndef SK_ENTMAX_H
#define SK_ENTMAX_H

#include <stddef.h>

/* The kernels, reached through a table of which entmax.c exports one per SIMD
 * variant (sk_entmax_kernels_avx512, ..., see sk_isa.h); the module picks one at
 * import. */
typedef struct sk_entmax_kernels {
    /* IN x, OUT y (rows*cols), IN alpha > 1 */
    void (*entmax_f64)(const double *x, double *y, size_t rows, size_t cols, double alpha, int nthreads);
    void (*entmax_f32)(const float *x, float *y, size_t rows, size_t cols, double alpha, int nthreads);
    /* The backward pass from the output y alone (the entmax package's formula):
     *   s_j = y_j^(2 - alpha) where y_j > 0, else 0;  dx = s * g - s * sum(s * g) / sum(s).
     * IN y, g; OUT dx (may alias g). */
    void (*entmax_backward_f64)(const double *y, const double *g, double *dx, size_t rows, size_t cols,
                                double alpha, int nthreads);
    void (*entmax_backward_f32)(const float *y, const float *g, float *dx, size_t rows, size_t cols,
                                double alpha, int nthreads);
} sk_entmax_kernels;

#endif
