/*
 * softmax_body.h: the softmax family written once, included by softmax.c per dtype
 * (SK_DTYPE 64 and 32: see sk_dtype.h). T below is SK_T. The one deliberate
 * difference between the dtypes is the sum behind softmax, which softmax.c writes
 * by hand per dtype (exp_store_sum_f64 / _f32) before including this body.
 */
#include "sk_dtype.h"

/* ---------------------------------------------------------------- row helpers */

/* Rows whose max is not finite: NaN, all -inf, or some +inf (see softmax.h).
 * Scalar code; such rows are rare. log_out selects log_softmax's values.
 * IN x (n), OUT y (n) */
static void SK_FN(nonfinite_row)(const SK_T *x, SK_T *y, size_t n, int log_out)
{
    size_t n_pos_inf = 0;
    for (size_t j = 0; j < n; j++) {
        if (isnan(x[j])) {
            for (size_t k = 0; k < n; k++)
                y[k] = NAN;
            return;
        }
        n_pos_inf += x[j] == INFINITY;
    }
    SK_T hit = n_pos_inf ? (SK_T)(log_out ? -log((double)n_pos_inf) : 1.0 / (double)n_pos_inf) : 0;
    SK_T miss = log_out ? -INFINITY : 0;
    for (size_t j = 0; j < n; j++)
        y[j] = x[j] == INFINITY ? hit : miss;
}

/* sum_j exp((x_j - m) * inv_t) less the max's own term, which is exactly 1, for
 * log_softmax and logsumexp (softmax stores its exps and sums them in softmax.c's
 * exp_store_sum). `exact` selects sk_exp, exact down to the subnormals, over
 * sk_exp_nonpos, a third cheaper and just as exact when no term is below the
 * smallest normal number; the callers pick it per row from the row's range
 * (sk_row_range), and each call passes a constant, so each is its own vector loop.
 * The sum is taken in T over blocks of SK_SUM_BLOCK, the block sums in float64
 * (sk_dtype.h).
 *
 * Why leave the 1 out: finishing with log1p keeps the small terms that
 * log(1 + small) would round away: logsumexp([0, -40]) is 4.248e-18, not 0, and
 * log_softmax of a dominant entry keeps its digits. Entries equal to m are counted
 * instead of summed (a blend the vectoriser handles, where searching for the first
 * max is a scalar loop), and all but one of them added back as 1s.
 * IN x (n) */
SK_INLINE void SK_FN(exp_sum_m1_block)(const SK_T *x, size_t n, SK_T m, SK_T inv_t, int exact,
                                       double *s, double *count)
{
    SK_T sb = 0, cb = 0;
    SK_SIMD_REDUCE(+, sb, cb)
    for (size_t j = 0; j < n; j++) {
        SK_T a = (x[j] - m) * inv_t;
        SK_T e = exact ? SK_FN(sk_exp)(a) : SK_FN(sk_exp_nonpos)(a);
        sb += x[j] == m ? 0 : e;
        cb += x[j] == m ? 1 : 0;
    }
    *s += (double)sb;
    *count += (double)cb;
}

SK_INLINE double SK_FN(exp_sum_m1)(const SK_T *x, size_t n, SK_T m, SK_T inv_t, int exact)
{
    double s = 0.0, count = 0.0;
    for (size_t b = 0, len; b < n; b += len) {
        len = n - b < SK_SUM_BLOCK ? n - b : SK_SUM_BLOCK;
        SK_FN(exp_sum_m1_block)(x + b, len, m, inv_t, exact, &s, &count);
    }
    return s + (count - 1.0);
}

/* ------------------------------------------------------------------ softmax */

/* IN x (n), OUT y (n) */
static void SK_FN(softmax_row)(const SK_T *x, SK_T *y, size_t n, SK_T inv_t)
{
    SK_T lo;
    SK_T m = SK_FN(sk_row_range)(x, n, &lo);
    if (!isfinite(m)) {
        SK_FN(nonfinite_row)(x, y, n, 0);
        return;
    }
    SK_T s = (SK_T)((lo - m) * inv_t >= SK_EXP_NORMAL ? SK_FN(exp_store_sum)(x, y, n, m, inv_t, 0)
                                                      : SK_FN(exp_store_sum)(x, y, n, m, inv_t, 1));
    /* s >= 1 (the max contributes exp(0) = 1), so the division is safe. A true
     * division, not a multiply by 1/s: half an ulp better. A NaN in the row made s
     * NaN, and so the whole row. */
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = y[j] / s;
}

/* IN x (rows, cols), OUT y (rows, cols), IN inv_t (> 0, finite) */
static void SK_FN(softmax)(const SK_T *x, SK_T *y, size_t rows, size_t cols, SK_T inv_t, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, SK_FN(softmax_row)(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t));
}

/* -------------------------------------------------------------- log_softmax */

/* log_softmax(x)_j = (x_j - m) - log(sum_k exp(x_k - m)), the sum being >= 1 so
 * the log is never log(0) (JAX / SciPy's form), with the log taken as log1p of the
 * sum without the max's own 1 (see exp_sum_m1). IN x (n), OUT y (n) */
static void SK_FN(log_softmax_row)(const SK_T *x, SK_T *y, size_t n, SK_T inv_t)
{
    SK_T lo;
    SK_T m = SK_FN(sk_row_range)(x, n, &lo);
    if (!isfinite(m)) {
        SK_FN(nonfinite_row)(x, y, n, 1);
        return;
    }
    SK_T ls = (SK_T)log1p((lo - m) * inv_t >= SK_EXP_NORMAL ? SK_FN(exp_sum_m1)(x, n, m, inv_t, 0)
                                                            : SK_FN(exp_sum_m1)(x, n, m, inv_t, 1));
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = (x[j] - m) * inv_t - ls;
}

/* IN x (rows, cols), OUT y (rows, cols), IN inv_t (> 0, finite) */
static void SK_FN(log_softmax)(const SK_T *x, SK_T *y, size_t rows, size_t cols, SK_T inv_t, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, SK_FN(log_softmax_row)(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t));
}

/* ---------------------------------------------------------------- logsumexp */

/* logsumexp = m + log1p(sum over all but the first max of exp(x - m)), in float64.
 * IN x (n) */
static double SK_FN(logsumexp_row)(const SK_T *x, size_t n)
{
    if (n == 0)
        return -INFINITY;
    SK_T lo;
    SK_T m = SK_FN(sk_row_range)(x, n, &lo);
    if (!isfinite(m)) {
        for (size_t j = 0; j < n; j++)
            if (isnan(x[j]))
                return NAN;
        return m; /* -inf (all -inf) or +inf */
    }
    return (double)m + log1p(lo - m >= SK_EXP_NORMAL ? SK_FN(exp_sum_m1)(x, n, m, 1, 0)
                                                     : SK_FN(exp_sum_m1)(x, n, m, 1, 1));
}

/* IN x (rows, cols), OUT out (rows) */
static void SK_FN(logsumexp)(const SK_T *x, SK_T *out, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, out[i] = (SK_T)SK_FN(logsumexp_row)(x + (size_t)i * cols, cols));
}

/* ---------------------------------------------------------- backward passes */

/* y = softmax(x): dy_i/dx_j = y_i (delta_ij - y_j), so for an upstream gradient g,
 * dx_j = sum_i g_i y_i (delta_ij - y_j) = y_j (g_j - sum_i g_i y_i).
 * It needs the output alone (JAX's _softmax jvp, Liger's backward). Entries with
 * y == 0 (excluded or underflowed) get exactly 0, even when their g is inf.
 * IN p (n), IN g (n), OUT dx (n) */
static void SK_FN(softmax_backward_row)(const SK_T *p, const SK_T *g, SK_T *dx, size_t n)
{
    double dot = 0.0;
    for (size_t b = 0, end; b < n; b = end) {
        end = n - b < SK_SUM_BLOCK ? n : b + SK_SUM_BLOCK;
        SK_T db = 0;
        SK_SIMD_REDUCE(+, db)
        for (size_t j = b; j < end; j++)
            db += p[j] != 0 ? p[j] * g[j] : 0;
        dot += (double)db;
    }
    SK_T dt = (SK_T)dot;
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = p[j] != 0 ? p[j] * (g[j] - dt) : 0;
}

/* IN p (rows, cols), IN g (rows, cols), OUT dx (rows, cols); dx may alias g */
static void SK_FN(softmax_backward)(const SK_T *p, const SK_T *g, SK_T *dx, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_FN(softmax_backward_row)(p + (size_t)i * cols, g + (size_t)i * cols, dx + (size_t)i * cols, cols));
}

/* y = log_softmax(x): dy_i/dx_j = delta_ij - softmax(x)_j, so
 * dx_j = g_j - exp(y_j) * sum_i g_i. Entries with y == -inf were excluded (masked
 * or -inf input): no finite change of x moves them, so they get 0 and their g is
 * left out of the sum.  IN lp (n), IN g (n), OUT dx (n) */
static void SK_FN(log_softmax_backward_row)(const SK_T *lp, const SK_T *g, SK_T *dx, size_t n)
{
    double sg = 0.0;
    for (size_t b = 0, end; b < n; b = end) {
        end = n - b < SK_SUM_BLOCK ? n : b + SK_SUM_BLOCK;
        SK_T gb = 0;
        SK_SIMD_REDUCE(+, gb)
        for (size_t j = b; j < end; j++)
            gb += lp[j] != -INFINITY ? g[j] : 0;
        sg += (double)gb;
    }
    SK_T st = (SK_T)sg;
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = lp[j] != -INFINITY ? g[j] - SK_FN(sk_exp)(lp[j]) * st : 0;
}

/* IN lp (rows, cols), IN g (rows, cols), OUT dx (rows, cols); dx may alias g */
static void SK_FN(log_softmax_backward)(const SK_T *lp, const SK_T *g, SK_T *dx, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_FN(log_softmax_backward_row)(lp + (size_t)i * cols, g + (size_t)i * cols, dx + (size_t)i * cols, cols));
}

/* ------------------------------------------------------- sigmoid (softplus and
 * log_sigmoid: elementwise_body.h) */

/* sigma(x) = 1 / (1 + exp(-x)). For x -> -inf, exp(-x) overflows to inf and the
 * quotient is the correct 0; for large negative finite x the result keeps its
 * relative accuracy (1 / (1 + e^40) is e^-40 to within an ulp or two).
 * IN x (n), OUT y (n) */
static void SK_FN(sigmoid_block)(const SK_T *x, SK_T *y, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = 1 / (1 + SK_FN(sk_exp)(-x[j]));
}

/* IN s (n), IN g (n), OUT dx (n) */
static void SK_FN(sigmoid_backward_block)(const SK_T *s, const SK_T *g, SK_T *dx, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = g[j] * (s[j] * (1 - s[j]));
}

/* IN x (n), OUT y (n); y may alias x */
static void SK_FN(sigmoid)(const SK_T *x, SK_T *y, size_t n, int nthreads)
{
    SK_ELEMENTWISE(SK_FN(sigmoid_block), x, y, n, nthreads);
}

/* IN s (n), IN g (n), OUT dx (n); dx may alias g */
static void SK_FN(sigmoid_backward)(const SK_T *s, const SK_T *g, SK_T *dx, size_t n, int nthreads)
{
    SK_ELEMENTWISE2(SK_FN(sigmoid_backward_block), s, g, dx, n, nthreads);
}

#include "sk_dtype.h"
