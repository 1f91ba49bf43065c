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
 */
#include "entmax.h"
#include "sk_common.h"

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

#define SK_DEFINE_ENTMAX(SUF, T)                                                          \
    /* sum_j [u_j - tau]_+^e and the support size in *cnt */                              \
    SK_INLINE double tsum_##SUF(const T *x, size_t n, double m, double a, double tau, int kind, \
                                double e, size_t *cnt)                                    \
    {                                                                                     \
        double s = 0.0, c = 0.0;                                                          \
        SK_SIMD_REDUCE(+, s, c)                                                           \
        for (size_t j = 0; j < n; j++) {                                                  \
            double t = ((double)x[j] - m) * a - tau;                                      \
            s += entmax_pow(t, kind, e);                                                  \
            c += t > 0.0 ? 1.0 : 0.0;                                                     \
        }                                                                                 \
        *cnt = (size_t)c;                                                                 \
        return s;                                                                         \
    }                                                                                     \
                                                                                          \
    static double tsum_any_##SUF(const T *x, size_t n, double m, double a, double tau, int kind, \
                                 double e, size_t *cnt)                                   \
    {                                                                                     \
        if (kind == KIND_2)                                                               \
            return tsum_##SUF(x, n, m, a, tau, KIND_2, e, cnt);                           \
        if (kind == KIND_15)                                                              \
            return tsum_##SUF(x, n, m, a, tau, KIND_15, e, cnt);                          \
        return tsum_##SUF(x, n, m, a, tau, KIND_GENERAL, e, cnt);                         \
    }                                                                                     \
                                                                                          \
    /* Rows whose max is not finite, or holding NaN (see entmax.h). */                    \
    static void nonfinite_row_##SUF(const T *x, T *y, size_t n)                           \
    {                                                                                     \
        size_t k = 0;                                                                     \
        for (size_t j = 0; j < n; j++) {                                                  \
            if (isnan(x[j])) {                                                            \
                for (size_t i = 0; i < n; i++)                                            \
                    y[i] = NAN;                                                           \
                return;                                                                   \
            }                                                                             \
            k += x[j] == INFINITY;                                                        \
        }                                                                                 \
        for (size_t j = 0; j < n; j++)                                                    \
            y[j] = x[j] == INFINITY ? (T)(1.0 / (double)k) : (T)0;                        \
    }                                                                                     \
                                                                                          \
    SK_CLONES static void entmax_row_##SUF(const T *x, T *y, size_t n, double alpha)       \
    {                                                                                     \
        double m = -INFINITY, nans = 0.0;                                                 \
        SK_SIMD_REDUCE(max, m)                                                            \
        for (size_t j = 0; j < n; j++) {                                                  \
            double v = (double)x[j];                                                      \
            m = v > m ? v : m;                                                            \
        }                                                                                 \
        SK_SIMD_REDUCE(+, nans)                                                           \
        for (size_t j = 0; j < n; j++)                                                    \
            nans += x[j] != x[j] ? 1.0 : 0.0;                                             \
        if (!isfinite(m) || nans > 0.0) {                                                 \
            nonfinite_row_##SUF(x, y, n);                                                 \
            return;                                                                       \
        }                                                                                 \
        const double a = alpha - 1.0, e = 1.0 / a;                                        \
        const int kind = kind_of(alpha);                                                  \
        double lo = -1.0, hi = -pow(1.0 / (double)n, a);                                  \
        size_t c_lo, c_hi, c;                                                             \
        tsum_any_##SUF(x, n, m, a, lo, kind, e, &c_lo);                                   \
        tsum_any_##SUF(x, n, m, a, hi, kind, e, &c_hi);                                   \
        for (int it = 0; it < 2100; it++) {                                               \
            if (kind != KIND_GENERAL && c_lo == c_hi)                                     \
                break; /* no u in (lo, hi]: the support is known */                       \
            double mid = 0.5 * (lo + hi);                                                 \
            if (!(mid > lo && mid < hi))                                                  \
                break; /* lo and hi are neighbouring doubles */                           \
            if (tsum_any_##SUF(x, n, m, a, mid, kind, e, &c) >= 1.0) {                    \
                lo = mid;                                                                 \
                c_lo = c;                                                                 \
            } else {                                                                      \
                hi = mid;                                                                 \
                c_hi = c;                                                                 \
            }                                                                             \
        }                                                                                 \
        double tau = lo;                                                                  \
        if (kind != KIND_GENERAL) { /* closed form on S = {u > lo} */                     \
            double s1 = 0.0, k = 0.0;                                                     \
            SK_SIMD_REDUCE(+, s1, k)                                                      \
            for (size_t j = 0; j < n; j++) {                                              \
                double u = ((double)x[j] - m) * a;                                        \
                s1 += u > lo ? u : 0.0;                                                   \
                k += u > lo ? 1.0 : 0.0;                                                  \
            }                                                                             \
            double mu = s1 / k;                                                           \
            if (kind == KIND_2) {                                                         \
                tau = mu - 1.0 / k;                                                       \
            } else {                                                                      \
                double v = 0.0;                                                           \
                SK_SIMD_REDUCE(+, v)                                                      \
                for (size_t j = 0; j < n; j++) {                                          \
                    double u = ((double)x[j] - m) * a;                                    \
                    v += u > lo ? (u - mu) * (u - mu) : 0.0;                              \
                }                                                                         \
                double d = (1.0 - v) / k; /* v is k times the variance */                 \
                tau = mu - sqrt(d > 0.0 ? d : 0.0);                                       \
            }                                                                             \
        }                                                                                 \
        size_t unused;                                                                    \
        double s = tsum_any_##SUF(x, n, m, a, tau, kind, e, &unused);                     \
        for (size_t j = 0; j < n; j++)                                                    \
            y[j] = (T)(entmax_pow(((double)x[j] - m) * a - tau, kind, e) / s);            \
    }                                                                                     \
                                                                                          \
    void sk_entmax_##SUF(const T *x, T *y, size_t rows, size_t cols, double alpha, int nthreads) \
    {                                                                                     \
        SK_FOR_ROWS(rows, cols, nthreads,                                                 \
                    entmax_row_##SUF(x + (size_t)i * cols, y + (size_t)i * cols, cols, alpha)); \
    }                                                                                     \
                                                                                          \
    /* s_j = y_j^(2 - alpha) on the support; dx = s * (g - sum(s g) / sum(s)) */          \
    SK_CLONES static void entmax_backward_row_##SUF(const T *y, const T *g, T *dx, size_t n, \
                                                    double alpha)                         \
    {                                                                                     \
        const int kind = kind_of(alpha);                                                  \
        const double b = 2.0 - alpha;                                                     \
        double sg = 0.0, ss = 0.0;                                                        \
        for (size_t j = 0; j < n; j++) {                                                  \
            double v = (double)y[j];                                                      \
            double s = v > 0.0 ? (kind == KIND_2 ? 1.0 : kind == KIND_15 ? sqrt(v) : pow(v, b)) \
                               : (v == v ? 0.0 : NAN);                                    \
            sg += s * (double)g[j];                                                       \
            ss += s;                                                                      \
        }                                                                                 \
        double q = ss > 0.0 ? sg / ss : (ss == ss ? 0.0 : NAN);                           \
        for (size_t j = 0; j < n; j++) {                                                  \
            double v = (double)y[j];                                              \
            double s = v > 0.0 ? (kind == KIND_2 ? 1.0 : kind == KIND_15 ? sqrt(v) : pow(v, b)) \
                               : (v == v ? 0.0 : NAN);                                    \
            dx[j] = (T)(s * ((double)g[j] - q));                                          \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    void sk_entmax_backward_##SUF(const T *y, const T *g, T *dx, size_t rows, size_t cols, \
                                  double alpha, int nthreads)                             \
    {                                                                                     \
        SK_FOR_ROWS(rows, cols, nthreads,                                                 \
                    entmax_backward_row_##SUF(y + (size_t)i * cols, g + (size_t)i * cols,  \
                                              dx + (size_t)i * cols, cols, alpha));       \
    }

SK_DEFINE_ENTMAX(f64, double)
SK_DEFINE_ENTMAX(f32, float)
