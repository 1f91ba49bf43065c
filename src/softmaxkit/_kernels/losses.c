/*
 * losses.c: cross-entropy from logits, integer and soft labels, each forward beside
 * its fused forward-backward. See losses.h for the contract and the conventions.
 *
 * Cross-entropy is computed as lse - x[t] = log(s) - (x[t] - m), never as
 * -log(softmax(x)[t]): float32 logits [0, 120] with label 0 give 120, where the
 * naive form gives -log(0) = inf (optax, Liger). The gradient p - onehot(t) comes
 * from the same exps (llm.c's crossentropy_softmax_backward), written over the row
 * in a third pass while it is still in L2.
 */
#include "losses.h"
#include "sk_common.h"

/* ---------------------------------------------------------------- row helpers */

/* Rows are visited in chunks of SK_F32_BLOCK entries (sk_common.h): float32 exps are
 * summed in float within a chunk and the chunk sums in float64, and each chunk also
 * prefetches the same stretch of the next row. */

/* s - 1, where s = sum_j exp(x[j] - m) and m is the row's (finite) max. Entries equal
 * to m contribute exactly 1 each and are counted apart from the rest, so that
 * log1p(s - 1) keeps small terms a plain log(s) would round away: the loss of a
 * confident, correct prediction such as logits [0, -40], label 0, is 4.2e-18 and
 * not 0 (the same split as logsumexp in softmax.c). The _store variants also write
 * exp(x[j] - m) to e, which may be x itself. */
SK_CLONES static double expsum_m1_f64(const double *x, size_t n, double m, const double *next)
{
    double rest = 0.0, ties = 0.0;
    for (size_t j0 = 0; j0 < n; j0 += SK_F32_BLOCK) {
        size_t j1 = n - j0 < SK_F32_BLOCK ? n : j0 + SK_F32_BLOCK;
        for (size_t k = j0; next && k < j1; k += 64 / sizeof(double))
            __builtin_prefetch(next + k);
        SK_SIMD_REDUCE(+, rest, ties)
        for (size_t j = j0; j < j1; j++) {
            int top = x[j] == m;
            rest += top ? 0.0 : sk_exp_nonpos_f64(x[j] - m);
            ties += top ? 1.0 : 0.0;
        }
    }
    return (ties - 1.0) + rest;
}

SK_CLONES static double expsum_m1_store_f64(const double *x, double *e, size_t n, double m,
                                            const double *next)
{
    double rest = 0.0, ties = 0.0;
    for (size_t j0 = 0; j0 < n; j0 += SK_F32_BLOCK) {
        size_t j1 = n - j0 < SK_F32_BLOCK ? n : j0 + SK_F32_BLOCK;
        for (size_t k = j0; next && k < j1; k += 64 / sizeof(double))
            __builtin_prefetch(next + k);
        SK_SIMD_REDUCE(+, rest, ties)
        for (size_t j = j0; j < j1; j++) {
            double v = sk_exp_nonpos_f64(x[j] - m);
            int top = x[j] == m;
            e[j] = v;
            rest += top ? 0.0 : v;
            ties += top ? 1.0 : 0.0;
        }
    }
    return (ties - 1.0) + rest;
}

SK_CLONES static double expsum_m1_f32(const float *x, size_t n, float m, const float *next)
{
    double rest = 0.0, ties = 0.0;
    for (size_t j0 = 0; j0 < n; j0 += SK_F32_BLOCK) {
        size_t j1 = n - j0 < SK_F32_BLOCK ? n : j0 + SK_F32_BLOCK;
        float rf = 0.0f, tf = 0.0f;
        for (size_t k = j0; next && k < j1; k += 64 / sizeof(float))
            __builtin_prefetch(next + k);
        SK_SIMD_REDUCE(+, rf, tf)
        for (size_t j = j0; j < j1; j++) {
            float v = sk_exp_nonpos_f32(x[j] - m);
            int top = x[j] == m;
            rf += top ? 0.0f : v;
            tf += top ? 1.0f : 0.0f;
        }
        rest += (double)rf;
        ties += (double)tf;
    }
    return (ties - 1.0) + rest;
}

SK_CLONES static double expsum_m1_store_f32(const float *x, float *e, size_t n, float m, const float *next)
{
    double rest = 0.0, ties = 0.0;
    for (size_t j0 = 0; j0 < n; j0 += SK_F32_BLOCK) {
        size_t j1 = n - j0 < SK_F32_BLOCK ? n : j0 + SK_F32_BLOCK;
        float rf = 0.0f, tf = 0.0f;
        for (size_t k = j0; next && k < j1; k += 64 / sizeof(float))
            __builtin_prefetch(next + k);
        SK_SIMD_REDUCE(+, rf, tf)
        for (size_t j = j0; j < j1; j++) {
            float v = sk_exp_nonpos_f32(x[j] - m);
            int top = x[j] == m;
            e[j] = v;
            rf += top ? 0.0f : v;
            tf += top ? 1.0f : 0.0f;
        }
        rest += (double)rf;
        ties += (double)tf;
    }
    return (ties - 1.0) + rest;
}

/* sum_c w[c] (x[c] - m), terms with w[c] == 0 left out (w NULL: all ones). This is
 * the label-smoothing part: sum_c w[c] (lse - x[c]) = W log s - this. */
SK_CLONES static double smooth_dot_f64(const double *x, const double *w, size_t n, double m)
{
    double d = 0.0;
    if (w) {
        SK_SIMD_REDUCE(+, d)
        for (size_t j = 0; j < n; j++)
            d += w[j] != 0.0 ? w[j] * (x[j] - m) : 0.0;
    } else {
        SK_SIMD_REDUCE(+, d)
        for (size_t j = 0; j < n; j++)
            d += x[j] - m;
    }
    return d;
}

SK_CLONES static double smooth_dot_f32(const float *x, const float *w, size_t n, float m)
{
    double d = 0.0;
    if (w) {
        SK_SIMD_REDUCE(+, d)
        for (size_t j = 0; j < n; j++)
            d += w[j] != 0.0f ? (double)w[j] * (double)(x[j] - m) : 0.0;
    } else {
        SK_SIMD_REDUCE(+, d)
        for (size_t j = 0; j < n; j++)
            d += (double)(x[j] - m);
    }
    return d;
}

/* g[j] = e[j] * c - b * w[j] (w NULL: all ones), in place over e. */
SK_CLONES static void write_grad_f64(double *g, const double *w, size_t n, double c, double b)
{
    if (w && b != 0.0) {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            g[j] = g[j] * c - b * w[j];
    } else {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            g[j] = g[j] * c - b;
    }
}

SK_CLONES static void write_grad_f32(float *g, const float *w, size_t n, float c, float b)
{
    if (w && b != 0.0f) {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            g[j] = g[j] * c - b * w[j];
    } else {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            g[j] = g[j] * c - b;
    }
}

/* p and -log p of entry j of a row whose max is not finite and that holds no NaN
 * (softmax.h's conventions): k entries at +inf share p = 1/k, -log p = log k; every
 * other entry (and every entry of an all -inf row, k = 0) has p = 0, -log p = inf. */
static void nonfinite_p(int hit, size_t k, double *p, double *nlp)
{
    *p = hit ? 1.0 / (double)k : 0.0;
    *nlp = hit ? log((double)k) : INFINITY;
}

/* ------------------------------------------------- cross-entropy, integer labels */

/* The loss of one row whose label t is in [0, n) (n >= 1), and its gradient when
 * grad != NULL. wsum = W, gs = the row's gradient multiplier. */
static double ce_hard_nonfinite_row_f64(const double *x, int64_t t, const double *w, size_t n,
                                        double eps, double wsum, double gs, double *grad)
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
    double wt = w ? w[t] : 1.0, cs = eps / (double)n, hard = (1.0 - eps) * wt;
    double a = hard + cs * wsum, pt, nlpt, smooth = 0.0;
    nonfinite_p(x[t] == INFINITY, k, &pt, &nlpt);
    for (size_t j = 0; j < n; j++) {
        double p, nlp, wj = w ? w[j] : 1.0;
        nonfinite_p(x[j] == INFINITY, k, &p, &nlp);
        smooth += wj != 0.0 ? wj * nlp : 0.0;
        if (grad)
            grad[j] = gs * (a * p - cs * wj - (j == (size_t)t ? hard : 0.0));
    }
    return (hard != 0.0 ? hard * nlpt : 0.0) + (eps > 0.0 ? cs * smooth : 0.0);
}

static double ce_hard_nonfinite_row_f32(const float *x, int64_t t, const float *w, size_t n,
                                        double eps, double wsum, double gs, float *grad)
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
            grad[j] = (float)(gs * (a * p - cs * wj - (j == (size_t)t ? hard : 0.0)));
    }
    return (hard != 0.0 ? hard * nlpt : 0.0) + (eps > 0.0 ? cs * smooth : 0.0);
}

/* One row: the label checks, then max, (smoothing dot,) exp-and-sum, write.
 * In place (grad == x) is safe: x[t] and the smoothing dot are read before the
 * exp pass overwrites the row with its exps, and the write pass reads only those. */
SK_CLONES static double ce_hard_row_f64(const double *x, int64_t t, const double *w, size_t n,
                                        int64_t ignore_index, int has_ignore, double eps,
                                        double wsum, double *roww, double gs, double *grad,
                                        const double *next)
{
    *roww = 0.0;
    if (has_ignore && t == ignore_index) {
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = 0.0;
        return 0.0;
    }
    if (t < 0 || (uint64_t)t >= (uint64_t)n) { /* never read x[t] out of bounds */
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = NAN;
        return NAN;
    }
    *roww = w ? w[t] : 1.0;
    double m = sk_row_max_f64(x, n);
    if (!isfinite(m))
        return ce_hard_nonfinite_row_f64(x, t, w, n, eps, wsum, gs, grad);
    double zt = x[t] - m, cs = eps / (double)n, hard = (1.0 - eps) * *roww;
    double d = eps > 0.0 ? smooth_dot_f64(x, w, n, m) : 0.0;
    double sm1 = grad ? expsum_m1_store_f64(x, grad, n, m, next) : expsum_m1_f64(x, n, m, next);
    double ls = log1p(sm1);
    /* -log p[t] = log s - (x[t] - m); a zero weight leaves the term out (x[t] may be -inf). */
    double loss = hard != 0.0 ? hard * (ls - zt) : 0.0;
    if (eps > 0.0)
        loss += cs * (wsum * ls - d);
    if (grad) {
        write_grad_f64(grad, w, n, gs * (hard + cs * wsum) / (1.0 + sm1), gs * cs);
        grad[t] -= gs * hard;
    }
    return isnan(sm1) ? NAN : loss; /* a NaN logit shows even where its terms weigh 0 */
}

SK_CLONES static double ce_hard_row_f32(const float *x, int64_t t, const float *w, size_t n,
                                        int64_t ignore_index, int has_ignore, double eps,
                                        double wsum, double *roww, double gs, float *grad,
                                        const float *next)
{
    *roww = 0.0;
    if (has_ignore && t == ignore_index) {
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = 0.0f;
        return 0.0;
    }
    if (t < 0 || (uint64_t)t >= (uint64_t)n) {
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = NAN;
        return NAN;
    }
    *roww = w ? (double)w[t] : 1.0;
    float m = sk_row_max_f32(x, n);
    if (!isfinite(m))
        return ce_hard_nonfinite_row_f32(x, t, w, n, eps, wsum, gs, grad);
    double zt = (double)x[t] - (double)m, cs = eps / (double)n, hard = (1.0 - eps) * *roww;
    double d = eps > 0.0 ? smooth_dot_f32(x, w, n, m) : 0.0;
    double sm1 = grad ? expsum_m1_store_f32(x, grad, n, m, next) : expsum_m1_f32(x, n, m, next);
    double ls = log1p(sm1);
    double loss = hard != 0.0 ? hard * (ls - zt) : 0.0;
    if (eps > 0.0)
        loss += cs * (wsum * ls - d);
    if (grad) {
        write_grad_f32(grad, w, n, (float)(gs * (hard + cs * wsum) / (1.0 + sm1)), (float)(gs * cs));
        grad[t] = (float)((double)grad[t] - gs * hard);
    }
    return isnan(sm1) ? NAN : loss;
}

/* The row after row i (NULL after the last): the exp pass of one row prefetches the
 * next, so that the next max pass, which would otherwise wait on memory with the
 * vector units idle, finds it in cache while this row's exps keep the units busy. */
static inline const float *next_row_f32(const float *x, ptrdiff_t i, size_t rows, size_t cols)
{
    return (size_t)i + 1 < rows ? x + ((size_t)i + 1) * cols : NULL;
}

static inline const double *next_row_f64(const double *x, ptrdiff_t i, size_t rows, size_t cols)
{
    return (size_t)i + 1 < rows ? x + ((size_t)i + 1) * cols : NULL;
}

/* W = sum_c w[c] (C when w is NULL). */
static double weight_sum_f64(const double *w, size_t n)
{
    double s = 0.0;
    for (size_t j = 0; j < n; j++)
        s += w ? w[j] : 1.0;
    return s;
}

static double weight_sum_f32(const float *w, size_t n)
{
    double s = 0.0;
    for (size_t j = 0; j < n; j++)
        s += w ? (double)w[j] : 1.0;
    return s;
}

void sk_ce_hard_forward_f64(const double *x, const int64_t *target, const double *w,
                            int64_t ignore_index, int has_ignore, double eps,
                            double *loss, double *roww, size_t rows, size_t cols, int nthreads)
{
    double wsum = weight_sum_f64(w, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = ce_hard_row_f64(x + (size_t)i * cols, target[i], w, cols, ignore_index,
                                          has_ignore, eps, wsum, roww + i, 0.0, NULL,
                                          next_row_f64(x, i, rows, cols)));
}

void sk_ce_hard_forward_backward_f64(const double *x, const int64_t *target, const double *w,
                                     int64_t ignore_index, int has_ignore, double eps,
                                     double *loss, double *roww,
                                     const double *gscale, double gscale_c, double *grad,
                                     size_t rows, size_t cols, int nthreads)
{
    double wsum = weight_sum_f64(w, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = ce_hard_row_f64(x + (size_t)i * cols, target[i], w, cols, ignore_index,
                                          has_ignore, eps, wsum, roww + i,
                                          gscale ? gscale[i] : gscale_c, grad + (size_t)i * cols,
                                          next_row_f64(x, i, rows, cols)));
}

void sk_ce_hard_forward_f32(const float *x, const int64_t *target, const float *w,
                            int64_t ignore_index, int has_ignore, double eps,
                            double *loss, double *roww, size_t rows, size_t cols, int nthreads)
{
    double wsum = weight_sum_f32(w, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = ce_hard_row_f32(x + (size_t)i * cols, target[i], w, cols, ignore_index,
                                          has_ignore, eps, wsum, roww + i, 0.0, NULL,
                                          next_row_f32(x, i, rows, cols)));
}

void sk_ce_hard_forward_backward_f32(const float *x, const int64_t *target, const float *w,
                                     int64_t ignore_index, int has_ignore, double eps,
                                     double *loss, double *roww,
                                     const double *gscale, double gscale_c, float *grad,
                                     size_t rows, size_t cols, int nthreads)
{
    double wsum = weight_sum_f32(w, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = ce_hard_row_f32(x + (size_t)i * cols, target[i], w, cols, ignore_index,
                                          has_ignore, eps, wsum, roww + i,
                                          gscale ? gscale[i] : gscale_c, grad + (size_t)i * cols,
                                          next_row_f32(x, i, rows, cols)));
}

/* ---------------------------------------------------- cross-entropy, soft labels */

/* v[c] = w[c] q'[c] = w[c] ((1 - eps) q[c] + eps / C): each class's weight in the loss. */
static inline double soft_v_f64(const double *q, const double *w, size_t j, double keep, double cs)
{
    return (q[j] * keep + cs) * (w ? w[j] : 1.0);
}

static inline double soft_v_f32(const float *q, const float *w, size_t j, double keep, double cs)
{
    return ((double)q[j] * keep + cs) * (w ? (double)w[j] : 1.0);
}

static double ce_soft_nonfinite_row_f64(const double *x, const double *q, const double *w, size_t n,
                                        double eps, double gs, double *grad)
{
    size_t k = 0;
    int nan = 0;
    for (size_t j = 0; j < n; j++) {
        nan |= isnan(x[j]);
        k += x[j] == INFINITY;
    }
    double keep = 1.0 - eps, cs = eps / (double)n, vsum = 0.0, loss = 0.0;
    for (size_t j = 0; j < n; j++)
        vsum += soft_v_f64(q, w, j, keep, cs);
    for (size_t j = 0; j < n; j++) {
        double p, nlp, v = soft_v_f64(q, w, j, keep, cs);
        nonfinite_p(x[j] == INFINITY, k, &p, &nlp);
        loss += v != 0.0 ? v * nlp : 0.0;
        if (grad)
            grad[j] = nan ? NAN : gs * (vsum * p - v);
    }
    return nan ? NAN : loss;
}

static double ce_soft_nonfinite_row_f32(const float *x, const float *q, const float *w, size_t n,
                                        double eps, double gs, float *grad)
{
    size_t k = 0;
    int nan = 0;
    for (size_t j = 0; j < n; j++) {
        nan |= isnan(x[j]);
        k += x[j] == INFINITY;
    }
    double keep = 1.0 - eps, cs = eps / (double)n, vsum = 0.0, loss = 0.0;
    for (size_t j = 0; j < n; j++)
        vsum += soft_v_f32(q, w, j, keep, cs);
    for (size_t j = 0; j < n; j++) {
        double p, nlp, v = soft_v_f32(q, w, j, keep, cs);
        nonfinite_p(x[j] == INFINITY, k, &p, &nlp);
        loss += v != 0.0 ? v * nlp : 0.0;
        if (grad)
            grad[j] = nan ? NAN : (float)(gs * (vsum * p - v));
    }
    return nan ? NAN : loss;
}

/* loss = sum_c v[c] (log s - (x[c] - m)) = V log s - sum_c v[c] (x[c] - m), V = sum v.
 * Terms with v == 0 are left out (x[c] may be -inf there). */
SK_CLONES static double ce_soft_row_f64(const double *x, const double *q, const double *w, size_t n,
                                        double eps, double gs, double *grad)
{
    if (n == 0)
        return 0.0;
    double m = sk_row_max_f64(x, n);
    if (!isfinite(m))
        return ce_soft_nonfinite_row_f64(x, q, w, n, eps, gs, grad);
    double keep = 1.0 - eps, cs = eps / (double)n, vsum = 0.0, d = 0.0;
    SK_SIMD_REDUCE(+, vsum, d)
    for (size_t j = 0; j < n; j++) {
        double v = soft_v_f64(q, w, j, keep, cs);
        vsum += v;
        d += v != 0.0 ? v * (x[j] - m) : 0.0;
    }
    double sm1 = grad ? expsum_m1_store_f64(x, grad, n, m, NULL) : expsum_m1_f64(x, n, m, NULL);
    if (grad) {
        double c = gs * vsum / (1.0 + sm1);
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            grad[j] = grad[j] * c - gs * soft_v_f64(q, w, j, keep, cs);
    }
    return vsum * log1p(sm1) - d;
}

SK_CLONES static double ce_soft_row_f32(const float *x, const float *q, const float *w, size_t n,
                                        double eps, double gs, float *grad)
{
    if (n == 0)
        return 0.0;
    float m = sk_row_max_f32(x, n);
    if (!isfinite(m))
        return ce_soft_nonfinite_row_f32(x, q, w, n, eps, gs, grad);
    double keep = 1.0 - eps, cs = eps / (double)n, vsum = 0.0, d = 0.0;
    SK_SIMD_REDUCE(+, vsum, d)
    for (size_t j = 0; j < n; j++) {
        double v = soft_v_f32(q, w, j, keep, cs);
        vsum += v;
        d += v != 0.0 ? v * (double)(x[j] - m) : 0.0;
    }
    double sm1 = grad ? expsum_m1_store_f32(x, grad, n, m, NULL) : expsum_m1_f32(x, n, m, NULL);
    if (grad) {
        double c = gs * vsum / (1.0 + sm1);
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            grad[j] = (float)((double)grad[j] * c - gs * soft_v_f32(q, w, j, keep, cs));
    }
    return vsum * log1p(sm1) - d;
}

void sk_ce_soft_forward_f64(const double *x, const double *q, const double *w, double eps,
                            double *loss, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = ce_soft_row_f64(x + (size_t)i * cols, q + (size_t)i * cols, w, cols, eps, 0.0, NULL));
}

void sk_ce_soft_forward_backward_f64(const double *x, const double *q, const double *w, double eps,
                                     double *loss, const double *gscale, double gscale_c,
                                     double *grad, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = ce_soft_row_f64(x + (size_t)i * cols, q + (size_t)i * cols, w, cols, eps,
                                          gscale ? gscale[i] : gscale_c, grad + (size_t)i * cols));
}

void sk_ce_soft_forward_f32(const float *x, const float *q, const float *w, double eps,
                            double *loss, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = ce_soft_row_f32(x + (size_t)i * cols, q + (size_t)i * cols, w, cols, eps, 0.0, NULL));
}

void sk_ce_soft_forward_backward_f32(const float *x, const float *q, const float *w, double eps,
                                     double *loss, const double *gscale, double gscale_c,
                                     float *grad, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = ce_soft_row_f32(x + (size_t)i * cols, q + (size_t)i * cols, w, cols, eps,
                                          gscale ? gscale[i] : gscale_c, grad + (size_t)i * cols));
}
