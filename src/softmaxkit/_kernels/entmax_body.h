/*
 * entmax_body.h: alpha-entmax forward and backward, written once for float64 and
 * float32 (included by entmax.c with SK_DTYPE 64 and 32; see sk_dtype.h). The
 * arithmetic is float64 for both: SK_T is only the type of the rows in memory.
 * The method is described in entmax.c.
 */
#include "sk_dtype.h"

/* sum_j [u_j - tau]_+^e and the support size in *cnt */
SK_INLINE double SK_FN(tsum)(const SK_T *x, size_t n, double m, double a, double tau, int kind,
                             double e, size_t *cnt)
{
    double s = 0.0, c = 0.0;
    SK_SIMD_REDUCE(+, s, c)
    for (size_t j = 0; j < n; j++) {
        double t = ((double)x[j] - m) * a - tau;
        s += entmax_pow(t, kind, e);
        c += t > 0.0 ? 1.0 : 0.0;
    }
    *cnt = (size_t)c;
    return s;
}

static double SK_FN(tsum_any)(const SK_T *x, size_t n, double m, double a, double tau, int kind,
                              double e, size_t *cnt)
{
    if (kind == KIND_2)
        return SK_FN(tsum)(x, n, m, a, tau, KIND_2, e, cnt);
    if (kind == KIND_15)
        return SK_FN(tsum)(x, n, m, a, tau, KIND_15, e, cnt);
    return SK_FN(tsum)(x, n, m, a, tau, KIND_GENERAL, e, cnt);
}

/* Rows whose max is not finite, or holding NaN (see entmax.h). */
static void SK_FN(nonfinite_row)(const SK_T *x, SK_T *y, size_t n)
{
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        if (isnan(x[j])) {
            for (size_t i = 0; i < n; i++)
                y[i] = NAN;
            return;
        }
        k += x[j] == INFINITY;
    }
    for (size_t j = 0; j < n; j++)
        y[j] = x[j] == INFINITY ? (SK_T)(1.0 / (double)k) : (SK_T)0;
}

static void SK_FN(entmax_row)(const SK_T *x, SK_T *y, size_t n, double alpha)
{
    double m = -INFINITY, nans = 0.0;
    SK_SIMD_REDUCE(max, m)
    for (size_t j = 0; j < n; j++) {
        double v = (double)x[j];
        m = v > m ? v : m;
    }
    SK_SIMD_REDUCE(+, nans)
    for (size_t j = 0; j < n; j++)
        nans += x[j] != x[j] ? 1.0 : 0.0;
    if (!isfinite(m) || nans > 0.0) {
        SK_FN(nonfinite_row)(x, y, n);
        return;
    }
    const double a = alpha - 1.0, e = 1.0 / a;
    const int kind = kind_of(alpha);
    double lo = -1.0, hi = -pow(1.0 / (double)n, a);
    size_t c_lo, c_hi, c;
    SK_FN(tsum_any)(x, n, m, a, lo, kind, e, &c_lo);
    SK_FN(tsum_any)(x, n, m, a, hi, kind, e, &c_hi);
    for (int it = 0; it < 2100; it++) {
        if (kind != KIND_GENERAL && c_lo == c_hi)
            break; /* no u in (lo, hi]: the support is known */
        double mid = 0.5 * (lo + hi);
        if (!(mid > lo && mid < hi))
            break; /* lo and hi are neighbouring doubles */
        if (SK_FN(tsum_any)(x, n, m, a, mid, kind, e, &c) >= 1.0) {
            lo = mid;
            c_lo = c;
        } else {
            hi = mid;
            c_hi = c;
        }
    }
    double tau = lo;
    if (kind != KIND_GENERAL) { /* closed form on S = {u > lo} */
        double s1 = 0.0, k = 0.0;
        SK_SIMD_REDUCE(+, s1, k)
        for (size_t j = 0; j < n; j++) {
            double u = ((double)x[j] - m) * a;
            s1 += u > lo ? u : 0.0;
            k += u > lo ? 1.0 : 0.0;
        }
        double mu = s1 / k;
        if (kind == KIND_2) {
            tau = mu - 1.0 / k;
        } else {
            double v = 0.0;
            SK_SIMD_REDUCE(+, v)
            for (size_t j = 0; j < n; j++) {
                double u = ((double)x[j] - m) * a;
                v += u > lo ? (u - mu) * (u - mu) : 0.0;
            }
            double d = (1.0 - v) / k; /* v is k times the variance */
            tau = mu - sqrt(d > 0.0 ? d : 0.0);
        }
    }
    size_t unused;
    double s = SK_FN(tsum_any)(x, n, m, a, tau, kind, e, &unused);
    for (size_t j = 0; j < n; j++)
        y[j] = (SK_T)(entmax_pow(((double)x[j] - m) * a - tau, kind, e) / s);
}

static void SK_FN(entmax)(const SK_T *x, SK_T *y, size_t rows, size_t cols, double alpha, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_FN(entmax_row)(x + (size_t)i * cols, y + (size_t)i * cols, cols, alpha));
}

/* s_j = y_j^(2 - alpha) on the support; dx = s * (g - sum(s g) / sum(s)) */
static void SK_FN(entmax_backward_row)(const SK_T *y, const SK_T *g, SK_T *dx, size_t n,
                                       double alpha)
{
    const int kind = kind_of(alpha);
    const double b = 2.0 - alpha;
    double sg = 0.0, ss = 0.0;
    for (size_t j = 0; j < n; j++) {
        double v = (double)y[j];
        double s = v > 0.0 ? (kind == KIND_2 ? 1.0 : kind == KIND_15 ? sqrt(v) : pow(v, b))
                           : (v == v ? 0.0 : NAN);
        sg += s * (double)g[j];
        ss += s;
    }
    double q = ss > 0.0 ? sg / ss : (ss == ss ? 0.0 : NAN);
    for (size_t j = 0; j < n; j++) {
        double v = (double)y[j];
        double s = v > 0.0 ? (kind == KIND_2 ? 1.0 : kind == KIND_15 ? sqrt(v) : pow(v, b))
                           : (v == v ? 0.0 : NAN);
        dx[j] = (SK_T)(s * ((double)g[j] - q));
    }
}

static void SK_FN(entmax_backward)(const SK_T *y, const SK_T *g, SK_T *dx, size_t rows, size_t cols,
                                   double alpha, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_FN(entmax_backward_row)(y + (size_t)i * cols, g + (size_t)i * cols,
                                          dx + (size_t)i * cols, cols, alpha));
}

#include "sk_dtype.h"
