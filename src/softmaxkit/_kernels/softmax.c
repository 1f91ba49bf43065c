/*
 * softmax.c: softmax, log_softmax, logsumexp and their backward passes, plus the
 * elementwise sigmoid family. See softmax.h for the contract and row conventions.
 *
 * Each forward is three short passes over a row: max (and min), exp-and-sum,
 * finish. A row of up to a few hundred thousand elements stays in L2 between
 * passes, so memory sees one read of x and one write of y, the same traffic as a
 * copy. (An online, one-pass softmax needs two exps per element; with exp as the
 * bottleneck here the three-pass form is faster.) The row's range picks the exp:
 * the cheap one when no term can be subnormal, the exact one otherwise. float32
 * softmax sums in compensated lanes; the other float32 sums in float blocks.
 */
#include "softmax.h"
#include "sk_common.h"

/* ---------------------------------------------------------------- row helpers */

/* Rows whose max is not finite: NaN, all -inf, or some +inf (see softmax.h).
 * Scalar code; such rows are rare. log_out selects log_softmax's values. */
static void nonfinite_row_f64(const double *x, double *y, size_t n, int log_out)
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
    double hit = n_pos_inf ? (log_out ? -log((double)n_pos_inf) : 1.0 / (double)n_pos_inf) : 0.0;
    double miss = log_out ? -INFINITY : 0.0;
    for (size_t j = 0; j < n; j++)
        y[j] = x[j] == INFINITY ? hit : miss;
}

static void nonfinite_row_f32(const float *x, float *y, size_t n, int log_out)
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
    float hit = n_pos_inf ? (float)(log_out ? -log((double)n_pos_inf) : 1.0 / (double)n_pos_inf) : 0.0f;
    float miss = log_out ? -INFINITY : 0.0f;
    for (size_t j = 0; j < n; j++)
        y[j] = x[j] == INFINITY ? hit : miss;
}

/* exp((x_j - m) * inv_t) for every entry of a row, stored in y when y is not NULL,
 * and their sum less the max's own term, which is exactly 1 (`but_max`), or their
 * full sum. `exact` selects sk_exp, exact down to the subnormals, over sk_exp_nonpos,
 * a third cheaper and just as exact when no term is below the smallest normal
 * number; the callers pick it per row from the row's range (sk_row_range), and each
 * call passes constants, so every combination is its own vector loop.
 *
 * Why `but_max`: leaving the 1 out and finishing with log1p keeps the small terms
 * that log(1 + small) would round away: logsumexp([0, -40]) is 4.248e-18, not 0, and
 * log_softmax of a dominant entry keeps its digits. Entries equal to m are counted
 * instead of summed (a blend the vectoriser handles, where searching for the first
 * max is a scalar loop), and all but one of them added back as 1s. */
SK_INLINE double exp_sum_f64(const double *x, double *y, size_t n, double m, double inv_t,
                             int exact, int but_max)
{
    double s = 0.0, count = 0.0;
    SK_SIMD_REDUCE(+, s, count)
    for (size_t j = 0; j < n; j++) {
        double a = (x[j] - m) * inv_t;
        double e = exact ? sk_exp_f64(a) : sk_exp_nonpos_f64(a);
        if (y)
            y[j] = e;
        s += but_max && x[j] == m ? 0.0 : e;
        count += but_max && x[j] == m ? 1.0 : 0.0;
    }
    return but_max ? s + (count - 1.0) : s;
}

/* The same in float32, for log_softmax and logsumexp (no store): float32 sums over
 * blocks of SK_F32_BLOCK (full SIMD width), the block sums added in float64. A
 * float64 accumulator in the loop would halve the width (2.3x slower); the sum's
 * last-bit error only moves log(s) by an ulp of 1, below the rounding of x - m, and
 * these results are as accurate as SciPy's and PyTorch's (tests). */
SK_INLINE double exp_sum_but_max_f32(const float *x, size_t n, float m, float inv_t, int exact)
{
    double s = 0.0, count = 0.0;
    for (size_t b = 0; b < n; b += SK_F32_BLOCK) {
        size_t end = n - b < SK_F32_BLOCK ? n : b + SK_F32_BLOCK;
        float sb = 0.0f, cb = 0.0f;
        SK_SIMD_REDUCE(+, sb, cb)
        for (size_t j = b; j < end; j++) {
            float e = exact ? sk_exp_f32((x[j] - m) * inv_t) : sk_exp_nonpos_f32((x[j] - m) * inv_t);
            sb += x[j] == m ? 0.0f : e;
            cb += x[j] == m ? 1.0f : 0.0f;
        }
        s += (double)sb;
        count += (double)cb;
    }
    return s + (count - 1.0);
}

/* For softmax in float32, where the sum's error lands on every probability: the
 * exps are stored in y and summed in SK_F32_LANES compensated (Kahan) float32 lanes,
 * as good as a float64 sum at full float32 width. Plain float32 partial sums left
 * the float32 softmax up to 1.9 ulps off, less accurate than SciPy and PyTorch;
 * compensated, the worst case is 0.7 ulps. The lanes are explicit arrays because a
 * compensated sum is no reduction the vectoriser knows. */
#define SK_F32_LANES 16

SK_INLINE double exp_store_sum_f32(const float *x, float *y, size_t n, float m, float inv_t,
                                   int exact)
{
    float acc[SK_F32_LANES] = {0}, comp[SK_F32_LANES] = {0};
    size_t j = 0;
    for (; j + SK_F32_LANES <= n; j += SK_F32_LANES) {
        SK_SIMD
        for (size_t l = 0; l < SK_F32_LANES; l++) {
            float a = (x[j + l] - m) * inv_t;
            float e = exact ? sk_exp_f32(a) : sk_exp_nonpos_f32(a);
            y[j + l] = e;
            float v = e - comp[l];
            float t = acc[l] + v;
            comp[l] = (t - acc[l]) - v;
            acc[l] = t;
        }
    }
    double s = 0.0;
    for (size_t l = 0; l < SK_F32_LANES; l++)
        s += (double)acc[l] - (double)comp[l];
    for (; j < n; j++) {
        float a = (x[j] - m) * inv_t;
        y[j] = exact ? sk_exp_f32(a) : sk_exp_nonpos_f32(a);
        s += (double)y[j];
    }
    return s;
}

/* ------------------------------------------------------------------ softmax */

SK_CLONES static void softmax_row_f64(const double *x, double *y, size_t n, double inv_t)
{
    double lo;
    double m = sk_row_range_f64(x, n, &lo);
    if (!isfinite(m)) {
        nonfinite_row_f64(x, y, n, 0);
        return;
    }
    double s = (lo - m) * inv_t >= SK_EXP_NORMAL_F64 ? exp_sum_f64(x, y, n, m, inv_t, 0, 0)
                                                     : exp_sum_f64(x, y, n, m, inv_t, 1, 0);
    /* s >= 1 (the max contributes exp(0) = 1), so the division is safe. A true
     * division, not a multiply by 1/s: half an ulp better. A NaN in the row made s
     * NaN, and so the whole row. */
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = y[j] / s;
}

SK_CLONES static void softmax_row_f32(const float *x, float *y, size_t n, float inv_t)
{
    float lo;
    float m = sk_row_range_f32(x, n, &lo);
    if (!isfinite(m)) {
        nonfinite_row_f32(x, y, n, 0);
        return;
    }
    float s = (float)((lo - m) * inv_t >= SK_EXP_NORMAL_F32 ? exp_store_sum_f32(x, y, n, m, inv_t, 0)
                                                             : exp_store_sum_f32(x, y, n, m, inv_t, 1));
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = y[j] / s;
}

void sk_softmax_f64(const double *x, double *y, size_t rows, size_t cols, double inv_t, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, softmax_row_f64(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t));
}

void sk_softmax_f32(const float *x, float *y, size_t rows, size_t cols, float inv_t, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, softmax_row_f32(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t));
}

/* -------------------------------------------------------------- log_softmax */

/* log_softmax(x)_j = (x_j - m) - log(sum_k exp(x_k - m)), the sum being >= 1 so
 * the log is never log(0) (JAX / SciPy's form), with the log taken as log1p of the
 * sum without the max's own 1 (see exp_sum_f64). */
SK_CLONES static void log_softmax_row_f64(const double *x, double *y, size_t n, double inv_t)
{
    double lo;
    double m = sk_row_range_f64(x, n, &lo);
    if (!isfinite(m)) {
        nonfinite_row_f64(x, y, n, 1);
        return;
    }
    double ls = log1p((lo - m) * inv_t >= SK_EXP_NORMAL_F64 ? exp_sum_f64(x, NULL, n, m, inv_t, 0, 1)
                                                            : exp_sum_f64(x, NULL, n, m, inv_t, 1, 1));
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = (x[j] - m) * inv_t - ls;
}

SK_CLONES static void log_softmax_row_f32(const float *x, float *y, size_t n, float inv_t)
{
    float lo;
    float m = sk_row_range_f32(x, n, &lo);
    if (!isfinite(m)) {
        nonfinite_row_f32(x, y, n, 1);
        return;
    }
    float ls = (float)log1p((lo - m) * inv_t >= SK_EXP_NORMAL_F32 ? exp_sum_but_max_f32(x, n, m, inv_t, 0)
                                                                  : exp_sum_but_max_f32(x, n, m, inv_t, 1));
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = (x[j] - m) * inv_t - ls;
}

void sk_log_softmax_f64(const double *x, double *y, size_t rows, size_t cols, double inv_t, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, log_softmax_row_f64(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t));
}

void sk_log_softmax_f32(const float *x, float *y, size_t rows, size_t cols, float inv_t, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, log_softmax_row_f32(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t));
}

/* ---------------------------------------------------------------- logsumexp */

/* logsumexp = m + log1p(sum over all but the first max of exp(x - m)). */
SK_CLONES static double logsumexp_row_f64(const double *x, size_t n)
{
    if (n == 0)
        return -INFINITY;
    double lo;
    double m = sk_row_range_f64(x, n, &lo);
    if (!isfinite(m)) {
        for (size_t j = 0; j < n; j++)
            if (isnan(x[j]))
                return NAN;
        return m; /* -inf (all -inf) or +inf */
    }
    return m + log1p(lo - m >= SK_EXP_NORMAL_F64 ? exp_sum_f64(x, NULL, n, m, 1.0, 0, 1)
                                                 : exp_sum_f64(x, NULL, n, m, 1.0, 1, 1));
}

SK_CLONES static double logsumexp_row_f32(const float *x, size_t n)
{
    if (n == 0)
        return -INFINITY;
    float lo;
    float m = sk_row_range_f32(x, n, &lo);
    if (!isfinite(m)) {
        for (size_t j = 0; j < n; j++)
            if (isnan(x[j]))
                return NAN;
        return m;
    }
    return (double)m + log1p(lo - m >= SK_EXP_NORMAL_F32 ? exp_sum_but_max_f32(x, n, m, 1.0f, 0)
                                                         : exp_sum_but_max_f32(x, n, m, 1.0f, 1));
}

void sk_logsumexp_f64(const double *x, double *out, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, out[i] = logsumexp_row_f64(x + (size_t)i * cols, cols));
}

void sk_logsumexp_f32(const float *x, float *out, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, out[i] = (float)logsumexp_row_f32(x + (size_t)i * cols, cols));
}

/* ---------------------------------------------------------- backward passes */

/* y = softmax(x): dy_i/dx_j = y_i (delta_ij - y_j), so for an upstream gradient g,
 * dx_j = sum_i g_i y_i (delta_ij - y_j) = y_j (g_j - sum_i g_i y_i).
 * It needs the output alone (JAX's _softmax jvp, Liger's backward). Entries with
 * y == 0 (excluded or underflowed) get exactly 0, even when their g is inf. */
SK_CLONES static void softmax_backward_row_f64(const double *p, const double *g, double *dx, size_t n)
{
    double dot = 0.0;
    SK_SIMD_REDUCE(+, dot)
    for (size_t j = 0; j < n; j++)
        dot += p[j] != 0.0 ? p[j] * g[j] : 0.0;
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = p[j] != 0.0 ? p[j] * (g[j] - dot) : 0.0;
}

SK_CLONES static void softmax_backward_row_f32(const float *p, const float *g, float *dx, size_t n)
{
    double dot = 0.0;
    for (size_t b = 0; b < n; b += SK_F32_BLOCK) {
        size_t end = n - b < SK_F32_BLOCK ? n : b + SK_F32_BLOCK;
        float db = 0.0f;
        SK_SIMD_REDUCE(+, db)
        for (size_t j = b; j < end; j++)
            db += p[j] != 0.0f ? p[j] * g[j] : 0.0f;
        dot += (double)db;
    }
    float dotf = (float)dot;
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = p[j] != 0.0f ? p[j] * (g[j] - dotf) : 0.0f;
}

/* y = log_softmax(x): dy_i/dx_j = delta_ij - softmax(x)_j, so
 * dx_j = g_j - exp(y_j) * sum_i g_i. Entries with y == -inf were excluded (masked
 * or -inf input): no finite change of x moves them, so they get 0 and their g is
 * left out of the sum. */
SK_CLONES static void log_softmax_backward_row_f64(const double *lp, const double *g, double *dx, size_t n)
{
    double sg = 0.0;
    SK_SIMD_REDUCE(+, sg)
    for (size_t j = 0; j < n; j++)
        sg += lp[j] != -INFINITY ? g[j] : 0.0;
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = lp[j] != -INFINITY ? g[j] - sk_exp_f64(lp[j]) * sg : 0.0;
}

SK_CLONES static void log_softmax_backward_row_f32(const float *lp, const float *g, float *dx, size_t n)
{
    double sg = 0.0;
    for (size_t b = 0; b < n; b += SK_F32_BLOCK) {
        size_t end = n - b < SK_F32_BLOCK ? n : b + SK_F32_BLOCK;
        float gb = 0.0f;
        SK_SIMD_REDUCE(+, gb)
        for (size_t j = b; j < end; j++)
            gb += lp[j] != -INFINITY ? g[j] : 0.0f;
        sg += (double)gb;
    }
    float sgf = (float)sg;
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = lp[j] != -INFINITY ? g[j] - sk_exp_f32(lp[j]) * sgf : 0.0f;
}

void sk_softmax_backward_f64(const double *p, const double *g, double *dx, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, softmax_backward_row_f64(p + (size_t)i * cols, g + (size_t)i * cols, dx + (size_t)i * cols, cols));
}

void sk_softmax_backward_f32(const float *p, const float *g, float *dx, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, softmax_backward_row_f32(p + (size_t)i * cols, g + (size_t)i * cols, dx + (size_t)i * cols, cols));
}

void sk_log_softmax_backward_f64(const double *lp, const double *g, double *dx, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, log_softmax_backward_row_f64(lp + (size_t)i * cols, g + (size_t)i * cols, dx + (size_t)i * cols, cols));
}

void sk_log_softmax_backward_f32(const float *lp, const float *g, float *dx, size_t rows, size_t cols, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, log_softmax_backward_row_f32(lp + (size_t)i * cols, g + (size_t)i * cols, dx + (size_t)i * cols, cols));
}

/* ------------------------------------------------------- sigmoid and friends */

/* Elementwise kernels split n into blocks of this many values, one block a task. */
#define SK_ELEM_BLOCK 16384

/* sigma(x) = 1 / (1 + exp(-x)). For x -> -inf, exp(-x) overflows to inf and the
 * quotient is the correct 0; for large negative finite x the result keeps its
 * relative accuracy (1 / (1 + e^40) is e^-40 to within an ulp or two). */
SK_CLONES static void sigmoid_block_f64(const double *x, double *y, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = 1.0 / (1.0 + sk_exp_f64(-x[j]));
}

SK_CLONES static void sigmoid_block_f32(const float *x, float *y, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = 1.0f / (1.0f + sk_exp_f32(-x[j]));
}

/* log sigma(x) = -softplus(-x); float32 goes through float64 (scalar libm). */
static void log_sigmoid_block_f64(const double *x, double *y, size_t n)
{
    for (size_t j = 0; j < n; j++)
        y[j] = -sk_log1pexp(-x[j]);
}

static void log_sigmoid_block_f32(const float *x, float *y, size_t n)
{
    for (size_t j = 0; j < n; j++)
        y[j] = (float)-sk_log1pexp(-(double)x[j]);
}

static void softplus_block_f64(const double *x, double *y, size_t n)
{
    for (size_t j = 0; j < n; j++)
        y[j] = sk_log1pexp(x[j]);
}

static void softplus_block_f32(const float *x, float *y, size_t n)
{
    for (size_t j = 0; j < n; j++)
        y[j] = (float)sk_log1pexp((double)x[j]);
}

SK_CLONES static void sigmoid_backward_block_f64(const double *s, const double *g, double *dx, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = g[j] * (s[j] * (1.0 - s[j]));
}

SK_CLONES static void sigmoid_backward_block_f32(const float *s, const float *g, float *dx, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = g[j] * (s[j] * (1.0f - s[j]));
}

/* Runs BLOCK_FN(x + o, y + o, len) over n values in blocks, threads over blocks. */
#define SK_ELEMENTWISE(BLOCK_FN, x, y, n, nthreads)                                      \
    do {                                                                                 \
        size_t nblocks_ = ((n) + SK_ELEM_BLOCK - 1) / SK_ELEM_BLOCK;                     \
        int nt_ = sk_threads_for(nblocks_, SK_ELEM_BLOCK, (nthreads));                   \
        (void)nt_;                                                                       \
        _Pragma("omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)")       \
        for (ptrdiff_t b_ = 0; b_ < (ptrdiff_t)nblocks_; b_++) {                         \
            size_t o_ = (size_t)b_ * SK_ELEM_BLOCK;                                      \
            size_t len_ = (n) - o_ < SK_ELEM_BLOCK ? (n) - o_ : SK_ELEM_BLOCK;           \
            BLOCK_FN((x) + o_, (y) + o_, len_);                                          \
        }                                                                                \
    } while (0)

#define SK_ELEMENTWISE2(BLOCK_FN, a, b, y, n, nthreads)                                  \
    do {                                                                                 \
        size_t nblocks_ = ((n) + SK_ELEM_BLOCK - 1) / SK_ELEM_BLOCK;                     \
        int nt_ = sk_threads_for(nblocks_, SK_ELEM_BLOCK, (nthreads));                   \
        (void)nt_;                                                                       \
        _Pragma("omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)")       \
        for (ptrdiff_t b_ = 0; b_ < (ptrdiff_t)nblocks_; b_++) {                         \
            size_t o_ = (size_t)b_ * SK_ELEM_BLOCK;                                      \
            size_t len_ = (n) - o_ < SK_ELEM_BLOCK ? (n) - o_ : SK_ELEM_BLOCK;           \
            BLOCK_FN((a) + o_, (b) + o_, (y) + o_, len_);                                \
        }                                                                                \
    } while (0)

void sk_sigmoid_f64(const double *x, double *y, size_t n, int nthreads) { SK_ELEMENTWISE(sigmoid_block_f64, x, y, n, nthreads); }
void sk_sigmoid_f32(const float *x, float *y, size_t n, int nthreads) { SK_ELEMENTWISE(sigmoid_block_f32, x, y, n, nthreads); }
void sk_log_sigmoid_f64(const double *x, double *y, size_t n, int nthreads) { SK_ELEMENTWISE(log_sigmoid_block_f64, x, y, n, nthreads); }
void sk_log_sigmoid_f32(const float *x, float *y, size_t n, int nthreads) { SK_ELEMENTWISE(log_sigmoid_block_f32, x, y, n, nthreads); }
void sk_softplus_f64(const double *x, double *y, size_t n, int nthreads) { SK_ELEMENTWISE(softplus_block_f64, x, y, n, nthreads); }
void sk_softplus_f32(const float *x, float *y, size_t n, int nthreads) { SK_ELEMENTWISE(softplus_block_f32, x, y, n, nthreads); }
void sk_sigmoid_backward_f64(const double *s, const double *g, double *dx, size_t n, int nthreads) { SK_ELEMENTWISE2(sigmoid_backward_block_f64, s, g, dx, n, nthreads); }
void sk_sigmoid_backward_f32(const float *s, const float *g, float *dx, size_t n, int nthreads) { SK_ELEMENTWISE2(sigmoid_backward_block_f32, s, g, dx, n, nthreads); }
