/*
 * losses_body.h: the cross-entropy kernels written once, included by losses.c per
 * dtype (SK_DTYPE 64 and 32: see sk_dtype.h). T below is SK_T. Sums of exps over a
 * row are taken in T within blocks of SK_F32_BLOCK (which also pace the prefetches
 * of the next row) and in float64 across them; losses, row weights and the
 * gradient's scalar factors are float64 for both dtypes.
 */
#include "sk_dtype.h"

/* ---------------------------------------------------------------- row helpers */

/* s - 1, where s = sum_j exp(x[j] - m) and m is the row's (finite) max. Entries equal
 * to m contribute exactly 1 each and are counted apart from the rest, so that
 * log1p(s - 1) keeps small terms a plain log(s) would round away: the loss of a
 * confident, correct prediction such as logits [0, -40], label 0, is 4.2e-18 and
 * not 0 (the same split as logsumexp in softmax_body.h). When e is not NULL, also
 * writes exp(x[j] - m) to e, which may be x itself. Each block also prefetches the
 * same stretch of the next row (`next`, or NULL).
 * IN x (n), OUT e (n) or NULL, IN next (n) or NULL */
SK_INLINE double SK_FN(expsum_m1)(const SK_T *x, SK_T *e, size_t n, SK_T m, const SK_T *next)
{
    double rest = 0.0, ties = 0.0;
    for (size_t j0 = 0, j1; j0 < n; j0 = j1) {
        j1 = n - j0 < SK_F32_BLOCK ? n : j0 + SK_F32_BLOCK;
        SK_T rb = 0, tb = 0;
        for (size_t k = j0; next && k < j1; k += 64 / sizeof(SK_T))
            __builtin_prefetch(next + k);
        SK_SIMD_REDUCE(+, rb, tb)
        for (size_t j = j0; j < j1; j++) {
            SK_T v = SK_FN(sk_exp_nonpos)(x[j] - m);
            int top = x[j] == m;
            if (e)
                e[j] = v;
            rb += top ? 0 : v;
            tb += top ? 1 : 0;
        }
        rest += (double)rb;
        ties += (double)tb;
    }
    return (ties - 1.0) + rest;
}

/* sum_c w[c] (x[c] - m) in float64, terms with w[c] == 0 left out (w NULL: all ones).
 * This is the label-smoothing part: sum_c w[c] (lse - x[c]) = W log s - this.
 * IN x (n), IN w (n) or NULL */
static double SK_FN(smooth_dot)(const SK_T *x, const SK_T *w, size_t n, SK_T m)
{
    double d = 0.0;
    if (w) {
        SK_SIMD_REDUCE(+, d)
        for (size_t j = 0; j < n; j++)
            d += w[j] != 0 ? (double)w[j] * (double)(x[j] - m) : 0.0;
    } else {
        SK_SIMD_REDUCE(+, d)
        for (size_t j = 0; j < n; j++)
            d += (double)(x[j] - m);
    }
    return d;
}

/* g[j] = g[j] * c - b * w[j] (w NULL: all ones), in place over the exps in g.
 * INOUT g (n), IN w (n) or NULL */
static void SK_FN(write_grad)(SK_T *g, const SK_T *w, size_t n, SK_T c, SK_T b)
{
    if (w && b != 0) {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            g[j] = g[j] * c - b * w[j];
    } else {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            g[j] = g[j] * c - b;
    }
}

/* The row after row i (NULL after the last): the exp pass of one row prefetches the
 * next, so that the next max pass, which would otherwise wait on memory with the
 * vector units idle, finds it in cache while this row's exps keep the units busy.
 * IN x (rows, cols) */
static inline const SK_T *SK_FN(next_row)(const SK_T *x, ptrdiff_t i, size_t rows, size_t cols)
{
    return (size_t)i + 1 < rows ? x + ((size_t)i + 1) * cols : NULL;
}

/* W = sum_c w[c] (C when w is NULL), in float64.  IN w (n) or NULL */
static double SK_FN(weight_sum)(const SK_T *w, size_t n)
{
    double s = 0.0;
    for (size_t j = 0; j < n; j++)
        s += w ? (double)w[j] : 1.0;
    return s;
}

/* ------------------------------------------------- cross-entropy, integer labels */

/* The loss of one row whose max is not finite and whose label t is in [0, n)
 * (n >= 1), and its gradient when grad != NULL. wsum = W, gs = the row's gradient
 * multiplier. Scalar code in float64; such rows are rare.
 * IN x (n), IN w (n) or NULL, OUT grad (n) or NULL */
static double SK_FN(ce_hard_nonfinite_row)(const SK_T *x, int64_t t, const SK_T *w, size_t n,
                                           double eps, double wsum, double gs, SK_T *grad)
{
    size_t k = 0;
    int nan = 0;
    for (size_t j = 0; j < n; j++) {
        nan |= isnan(x[j]);
        k += x[j] == INFINITY;
    }
    if (nan) {
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = NAN;
        return NAN;
    }
    double wt = w ? (double)w[t] : 1.0, cs = eps / (double)n, hard = (1.0 - eps) * wt;
    double a = hard + cs * wsum, pt, nlpt, smooth = 0.0;
    nonfinite_p(x[t] == INFINITY, k, &pt, &nlpt);
    for (size_t j = 0; j < n; j++) {
        double p, nlp, wj = w ? (double)w[j] : 1.0;
        nonfinite_p(x[j] == INFINITY, k, &p, &nlp);
        smooth += wj != 0.0 ? wj * nlp : 0.0;
        if (grad)
            grad[j] = (SK_T)(gs * (a * p - cs * wj - (j == (size_t)t ? hard : 0.0)));
    }
    return (hard != 0.0 ? hard * nlpt : 0.0) + (eps > 0.0 ? cs * smooth : 0.0);
}

/* One row: the label checks, then max, (smoothing dot,) exp-and-sum, write.
 * In place (grad == x) is safe: x[t] and the smoothing dot are read before the
 * exp pass overwrites the row with its exps, and the write pass reads only those.
 * IN x (n), IN w (n) or NULL, OUT roww (1), OUT grad (n) or NULL, IN next (n) or
 * NULL; returns the row's loss */
static double SK_FN(ce_hard_row)(const SK_T *x, int64_t t, const SK_T *w, size_t n,
                                 int64_t ignore_index, int has_ignore, double eps,
                                 double wsum, double *roww, double gs, SK_T *grad,
                                 const SK_T *next)
{
    *roww = 0.0;
    if (has_ignore && t == ignore_index) {
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = 0;
        return 0.0;
    }
    if (t < 0 || (uint64_t)t >= (uint64_t)n) { /* never read x[t] out of bounds */
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = NAN;
        return NAN;
    }
    *roww = w ? (double)w[t] : 1.0;
    SK_T m = SK_FN(sk_row_max)(x, n);
    if (!isfinite(m))
        return SK_FN(ce_hard_nonfinite_row)(x, t, w, n, eps, wsum, gs, grad);
    double zt = (double)x[t] - (double)m, cs = eps / (double)n, hard = (1.0 - eps) * *roww;
    double d = eps > 0.0 ? SK_FN(smooth_dot)(x, w, n, m) : 0.0;
    double sm1 = grad ? SK_FN(expsum_m1)(x, grad, n, m, next) : SK_FN(expsum_m1)(x, NULL, n, m, next);
    double ls = log1p(sm1);
    /* -log p[t] = log s - (x[t] - m); a zero weight leaves the term out (x[t] may be -inf). */
    double loss = hard != 0.0 ? hard * (ls - zt) : 0.0;
    if (eps > 0.0)
        loss += cs * (wsum * ls - d);
    if (grad) {
        double c = gs * (hard + cs * wsum) / (1.0 + sm1), et = (double)grad[t]; /* grad holds the exps */
        SK_FN(write_grad)(grad, w, n, (SK_T)c, (SK_T)(gs * cs));
        /* The target entry in float64, in one rounding: its terms nearly cancel when
         * p[t] is near 1, and rounding e c - b w to T before subtracting the hard part
         * left up to an ulp of the weight: 0.0125 instead of 0 in float32 for one
         * class of weight 3.7e5 with label smoothing (tests/test_fuzz.py). */
        grad[t] = (SK_T)(et * c - gs * cs * (w ? (double)w[t] : 1.0) - gs * hard);
    }
    return isnan(sm1) ? NAN : loss; /* a NaN logit shows even where its terms weigh 0 */
}

/* IN x (rows, cols), IN target (rows), IN w (cols) or NULL, OUT loss (rows),
 * OUT roww (rows), IN gscale (rows) or NULL, OUT grad (rows, cols) or NULL */
static void SK_FN(ce_hard)(const SK_T *x, const int64_t *target, const SK_T *w,
                           int64_t ignore_index, int has_ignore, double eps,
                           double *loss, double *roww, const double *gscale, double gscale_c,
                           SK_T *grad, size_t rows, size_t cols, int nthreads)
{
    double wsum = SK_FN(weight_sum)(w, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = SK_FN(ce_hard_row)(x + (size_t)i * cols, target[i], w, cols, ignore_index,
                                             has_ignore, eps, wsum, roww + i,
                                             gscale ? gscale[i] : gscale_c,
                                             grad ? grad + (size_t)i * cols : NULL,
                                             SK_FN(next_row)(x, i, rows, cols)));
}

/* ---------------------------------------------------- cross-entropy, soft labels */

/* v[c] = w[c] q'[c] = w[c] ((1 - eps) q[c] + eps / C): each class's weight in the
 * loss, in float64.  IN q (n), IN w (n) or NULL */
static inline double SK_FN(soft_v)(const SK_T *q, const SK_T *w, size_t j, double keep, double cs)
{
    return ((double)q[j] * keep + cs) * (w ? (double)w[j] : 1.0);
}

/* The soft-label row whose max is not finite (scalar, float64).
 * IN x (n), IN q (n), IN w (n) or NULL, OUT grad (n) or NULL */
static double SK_FN(ce_soft_nonfinite_row)(const SK_T *x, const SK_T *q, const SK_T *w, size_t n,
                                           double eps, double gs, SK_T *grad)
{
    size_t k = 0;
    int nan = 0;
    for (size_t j = 0; j < n; j++) {
        nan |= isnan(x[j]);
        k += x[j] == INFINITY;
    }
    double keep = 1.0 - eps, cs = eps / (double)n, vsum = 0.0, loss = 0.0;
    for (size_t j = 0; j < n; j++)
        vsum += SK_FN(soft_v)(q, w, j, keep, cs);
    for (size_t j = 0; j < n; j++) {
        double p, nlp, v = SK_FN(soft_v)(q, w, j, keep, cs);
        nonfinite_p(x[j] == INFINITY, k, &p, &nlp);
        loss += v != 0.0 ? v * nlp : 0.0;
        if (grad)
            grad[j] = nan ? NAN : (SK_T)(gs * (vsum * p - v));
    }
    return nan ? NAN : loss;
}

/* loss = sum_c v[c] (log s - (x[c] - m)) = V log s - sum_c v[c] (x[c] - m), V = sum v.
 * Terms with v == 0 are left out (x[c] may be -inf there).
 * IN x (n), IN q (n), IN w (n) or NULL, OUT grad (n) or NULL (may be x) */
static double SK_FN(ce_soft_row)(const SK_T *x, const SK_T *q, const SK_T *w, size_t n,
                                 double eps, double gs, SK_T *grad)
{
    if (n == 0)
        return 0.0;
    SK_T m = SK_FN(sk_row_max)(x, n);
    if (!isfinite(m))
        return SK_FN(ce_soft_nonfinite_row)(x, q, w, n, eps, gs, grad);
    double keep = 1.0 - eps, cs = eps / (double)n, vsum = 0.0, d = 0.0;
    SK_SIMD_REDUCE(+, vsum, d)
    for (size_t j = 0; j < n; j++) {
        double v = SK_FN(soft_v)(q, w, j, keep, cs);
        vsum += v;
        d += v != 0.0 ? v * (double)(x[j] - m) : 0.0;
    }
    double sm1 = grad ? SK_FN(expsum_m1)(x, grad, n, m, NULL) : SK_FN(expsum_m1)(x, NULL, n, m, NULL);
    if (grad) {
        double c = gs * vsum / (1.0 + sm1);
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            grad[j] = (SK_T)((double)grad[j] * c - gs * SK_FN(soft_v)(q, w, j, keep, cs));
    }
    return vsum * log1p(sm1) - d;
}

/* IN x (rows, cols), IN q (rows, cols), IN w (cols) or NULL, OUT loss (rows),
 * IN gscale (rows) or NULL, OUT grad (rows, cols) or NULL */
static void SK_FN(ce_soft)(const SK_T *x, const SK_T *q, const SK_T *w, double eps,
                           double *loss, const double *gscale, double gscale_c,
                           SK_T *grad, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = SK_FN(ce_soft_row)(x + (size_t)i * cols, q + (size_t)i * cols, w, cols, eps,
                                             gscale ? gscale[i] : gscale_c,
                                             grad ? grad + (size_t)i * cols : NULL));
}

#include "sk_dtype.h"
