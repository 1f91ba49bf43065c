/*
 * half_body.h: softmax, log_softmax and integer-label cross-entropy for 16-bit
 * logits, bfloat16 and float16, written once and included per format after
 * `#define SK_HALF 1` (bfloat16, names _bf16) or `#define SK_HALF 2` (float16,
 * names _f16). Values travel as their bits (uint16_t); every element is widened to
 * float32 on load (exactly), all arithmetic is float32 with sums in float32 blocks
 * added in float64 (as the float32 kernels do), and results are rounded once to
 * 16 bits on store (nearest even, sk_half.h). So each result is the 16-bit rounding
 * of a float32 result, within 1 ulp of the 16-bit rounding of the exact value.
 *
 * Unlike the float32 kernels, these never store an intermediate in the 16-bit
 * output (the exps of softmax, the exps of the gradient): a second rounding to 16
 * bits would cost up to a whole ulp. The final pass recomputes the exp instead, which
 * costs compute, not memory traffic, on 2-byte data.
 *
 * Needs softmax.h's conventions (NaN rows, +inf entries share the mass) and, for the
 * loss, losses.h's and nonfinite_p (losses.c). Requires SK_HALF_LOSS to define the
 * loss (losses.c) and SK_HALF_SOFTMAX for the softmax family (softmax.c).
 */
#if SK_HALF == 1
#define SK_HFN(name) SK_CAT(name, bf16)
#define SK_LD(v) sk_bf16_to_f32(v)
#define SK_ST(f) sk_f32_to_bf16(f)
#elif SK_HALF == 2
#define SK_HFN(name) SK_CAT(name, f16)
#define SK_LD(v) sk_f16_to_f32(v)
#define SK_ST(f) sk_f32_to_f16(f)
#else
#error "define SK_HALF as 1 (bfloat16) or 2 (float16)"
#endif

/* The row kernels' scratch: `work` is NULL, or float32 space of `cols` values for
 * each thread of the call (the Python seam allocates it), where the exps of a row
 * are kept from the sum's pass to the final one instead of being computed again:
 * the final pass then reads float32 values from cache, one exp per element fewer
 * (softmax: 5.3 -> 3.4 ms on a (256, 32000) bfloat16 block, one thread). The
 * values are the same floats either way, so the results are the same bits. */
#ifndef SK_HALF_THREAD_ID
#ifdef _OPENMP
#include <omp.h>
#define SK_HALF_THREAD_ID() omp_get_thread_num()
#else
#define SK_HALF_THREAD_ID() 0
#endif
#endif

/* The max of a row as a float, and its min in *lo, ignoring NaN.  IN x (n), OUT lo */
static inline float SK_HFN(h_row_range)(const uint16_t *x, size_t n, float *lo)
{
    float m = -INFINITY, l = INFINITY;
    SK_SIMD_MAXMIN(m, l)
    for (size_t j = 0; j < n; j++) {
        float v = SK_LD(x[j]);
        m = v > m ? v : m;
        l = v < l ? v : l;
    }
    *lo = l;
    return m;
}

/* sum_j exp((x_j - m) inv_t) less the max's own 1 (see softmax_body.h's exp_sum_m1),
 * float32 over blocks of SK_F32_BLOCK, the blocks in float64.  IN x (n) */
SK_INLINE double SK_HFN(h_exp_sum_m1)(const uint16_t *x, size_t n, float m, float inv_t, int exact)
{
    double s = 0.0, count = 0.0;
    for (size_t b = 0, len; b < n; b += len) {
        len = n - b < SK_F32_BLOCK ? n - b : SK_F32_BLOCK;
        float sb = 0.0f, cb = 0.0f;
        SK_SIMD_REDUCE(+, sb, cb)
        for (size_t j = b; j < b + len; j++) {
            float v = SK_LD(x[j]);
            float a = (v - m) * inv_t;
            float e = exact ? sk_exp_f32(a) : sk_exp_nonpos_f32(a);
            sb += v == m ? 0.0f : e;
            cb += v == m ? 1.0f : 0.0f;
        }
        s += (double)sb;
        count += (double)cb;
    }
    return s + (count - 1.0);
}

/* h_exp_sum_m1 that also stores each exp in st.  IN x (n), OUT st (n) float32 */
SK_INLINE double SK_HFN(h_exp_store_sum_m1)(const uint16_t *x, float *st, size_t n, float m, float inv_t,
                                            int exact)
{
    double s = 0.0, count = 0.0;
    for (size_t b = 0, len; b < n; b += len) {
        len = n - b < SK_F32_BLOCK ? n - b : SK_F32_BLOCK;
        float sb = 0.0f, cb = 0.0f;
        SK_SIMD_REDUCE(+, sb, cb)
        for (size_t j = b; j < b + len; j++) {
            float v = SK_LD(x[j]);
            float a = (v - m) * inv_t;
            float e = exact ? sk_exp_f32(a) : sk_exp_nonpos_f32(a);
            st[j] = e;
            sb += v == m ? 0.0f : e;
            cb += v == m ? 1.0f : 0.0f;
        }
        s += (double)sb;
        count += (double)cb;
    }
    return s + (count - 1.0);
}

#ifdef SK_HALF_SOFTMAX

/* Rows whose max is not finite (softmax.h).  IN x (n), OUT y (n) */
static void SK_HFN(h_nonfinite_row)(const uint16_t *x, uint16_t *y, size_t n, int log_out)
{
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        float v = SK_LD(x[j]);
        if (v != v) {
            for (size_t i = 0; i < n; i++)
                y[i] = SK_ST(NAN);
            return;
        }
        k += v == INFINITY;
    }
    uint16_t hit = SK_ST(k ? (float)(log_out ? -log((double)k) : 1.0 / (double)k) : 0.0f);
    uint16_t miss = SK_ST(log_out ? -INFINITY : 0.0f);
    for (size_t j = 0; j < n; j++)
        y[j] = SK_LD(x[j]) == INFINITY ? hit : miss;
}

/* IN x (n), OUT y (n), work (n) float32 scratch or NULL */
static void SK_HFN(h_softmax_row)(const uint16_t *x, uint16_t *y, size_t n, float inv_t, float *work)
{
    float lo, m = SK_HFN(h_row_range)(x, n, &lo);
    if (!isfinite(m)) {
        SK_HFN(h_nonfinite_row)(x, y, n, 0);
        return;
    }
    int exact = !((lo - m) * inv_t >= SK_EXP_NORMAL_F32);
    if (work) {
        float rw = (float)(1.0 / (1.0 + (exact ? SK_HFN(h_exp_store_sum_m1)(x, work, n, m, inv_t, 1)
                                               : SK_HFN(h_exp_store_sum_m1)(x, work, n, m, inv_t, 0))));
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            y[j] = SK_ST(work[j] * rw);
        return;
    }
    /* times 1/s, not / s: a division per element was a third of this pass; the
     * float32 product is within 1.5 float32 ulps of the quotient, far inside the
     * 16-bit rounding (it flips a 16-bit result only next to a tie). */
    float r = (float)(1.0 / (1.0 + (exact ? SK_HFN(h_exp_sum_m1)(x, n, m, inv_t, 1)
                                          : SK_HFN(h_exp_sum_m1)(x, n, m, inv_t, 0))));
    if (exact) {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            y[j] = SK_ST(sk_exp_f32((SK_LD(x[j]) - m) * inv_t) * r);
    } else {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            y[j] = SK_ST(sk_exp_nonpos_f32((SK_LD(x[j]) - m) * inv_t) * r);
    }
}

/* y = softmax(x * inv_t) per row.  IN x (rows, cols), OUT y (rows, cols), 16-bit;
 * work: NULL or cols float32 per thread (min(nthreads, rows) threads at most) */
static void SK_HFN(softmax)(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, float inv_t, int nthreads,
                            float *work)
{
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_HFN(h_softmax_row)(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t,
                                      work ? work + (size_t)SK_HALF_THREAD_ID() * cols : NULL));
}

/* IN x (n), OUT y (n) */
static void SK_HFN(h_log_softmax_row)(const uint16_t *x, uint16_t *y, size_t n, float inv_t)
{
    float lo, m = SK_HFN(h_row_range)(x, n, &lo);
    if (!isfinite(m)) {
        SK_HFN(h_nonfinite_row)(x, y, n, 1);
        return;
    }
    float ls = (float)log1p((lo - m) * inv_t >= SK_EXP_NORMAL_F32 ? SK_HFN(h_exp_sum_m1)(x, n, m, inv_t, 0)
                                                                  : SK_HFN(h_exp_sum_m1)(x, n, m, inv_t, 1));
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = SK_ST((SK_LD(x[j]) - m) * inv_t - ls);
}

/* y = log_softmax(x * inv_t) per row.  IN x (rows, cols), OUT y (rows, cols), 16-bit */
static void SK_HFN(log_softmax)(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, float inv_t, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, SK_HFN(h_log_softmax_row)(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t));
}

#endif /* SK_HALF_SOFTMAX */

#ifdef SK_HALF_LOSS

/* A row whose max is not finite: losses_body.h's ce_hard_nonfinite_row on widened
 * values, in float64.  IN x (n), IN w (n) float32 or NULL, OUT grad (n) or NULL */
static double SK_HFN(h_ce_hard_nonfinite_row)(const uint16_t *x, int64_t t, const float *w, size_t n,
                                              double eps, double wsum, double gs, uint16_t *grad)
{
    size_t k = 0;
    int nan = 0;
    for (size_t j = 0; j < n; j++) {
        float v = SK_LD(x[j]);
        nan |= v != v;
        k += v == INFINITY;
    }
    if (nan) {
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = SK_ST(NAN);
        return NAN;
    }
    double wt = w ? (double)w[t] : 1.0, cs = eps / (double)n, hard = (1.0 - eps) * wt;
    double a = hard + cs * wsum, pt, nlpt, smooth = 0.0;
    nonfinite_p(SK_LD(x[t]) == INFINITY, k, &pt, &nlpt);
    for (size_t j = 0; j < n; j++) {
        double p, nlp, wj = w ? (double)w[j] : 1.0;
        nonfinite_p(SK_LD(x[j]) == INFINITY, k, &p, &nlp);
        smooth += wj != 0.0 ? wj * nlp : 0.0;
        if (grad)
            grad[j] = SK_ST((float)(gs * (a * p - cs * wj - (j == (size_t)t ? hard : 0.0))));
    }
    return (hard != 0.0 ? hard * nlpt : 0.0) + (eps > 0.0 ? cs * smooth : 0.0);
}

/* One row, as losses_body.h's ce_hard_row, the gradient written in one pass from
 * recomputed exps: grad_j = exp(x_j - m) c - b w_j, rounded once, and the target
 * entry (less the hard part) again in float64.
 * IN x (n), IN w (n) float32 or NULL, OUT roww (1), OUT grad (n) or NULL,
 * work (n) float32 scratch or NULL, OUT lse (1) or NULL: the row's logsumexp (NaN
 * with a NaN in the row), +inf where the row took another path (ignored, a bad
 * label, a non-finite max) */
static double SK_HFN(h_ce_hard_row)(const uint16_t *x, int64_t t, const float *w, size_t n,
                                    int64_t ignore_index, int has_ignore, double eps,
                                    double wsum, double *roww, double gs, uint16_t *grad, float *work,
                                    double *lse)
{
    *roww = 0.0;
    if (lse)
        *lse = INFINITY;
    if (has_ignore && t == ignore_index) {
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = 0;
        return 0.0;
    }
    if (t < 0 || (uint64_t)t >= (uint64_t)n) { /* never read x[t] out of bounds */
        for (size_t j = 0; grad && j < n; j++)
            grad[j] = SK_ST(NAN);
        return NAN;
    }
    *roww = w ? (double)w[t] : 1.0;
    float lo, m = SK_HFN(h_row_range)(x, n, &lo);
    if (!isfinite(m))
        return SK_HFN(h_ce_hard_nonfinite_row)(x, t, w, n, eps, wsum, gs, grad);
    float xt = SK_LD(x[t]); /* read before the gradient pass: grad may be x itself */
    double zt = (double)xt - (double)m, cs = eps / (double)n, hard = (1.0 - eps) * *roww;
    double d = 0.0;
    if (eps > 0.0) {
        SK_SIMD_REDUCE(+, d)
        for (size_t j = 0; j < n; j++) {
            double wj = w ? (double)w[j] : 1.0;
            d += wj != 0.0 ? wj * (double)(SK_LD(x[j]) - m) : 0.0;
        }
    }
    work = grad ? work : NULL;
    double sm1 = work ? SK_HFN(h_exp_store_sum_m1)(x, work, n, m, 1.0f, 0) : SK_HFN(h_exp_sum_m1)(x, n, m, 1.0f, 0);
    double ls = log1p(sm1);
    if (lse)
        *lse = (double)m + ls;
    double loss = hard != 0.0 ? hard * (ls - zt) : 0.0;
    if (eps > 0.0)
        loss += cs * (wsum * ls - d);
    if (grad) {
        float c = (float)(gs * (hard + cs * wsum) / (1.0 + sm1)), b = (float)(gs * cs);
        if (work && w && b != 0.0f) {
            SK_SIMD
            for (size_t j = 0; j < n; j++)
                grad[j] = SK_ST(work[j] * c - b * w[j]);
        } else if (work) {
            SK_SIMD
            for (size_t j = 0; j < n; j++)
                grad[j] = SK_ST(work[j] * c - b);
        } else if (w && b != 0.0f) { /* two loops: GCC 12 ran the one with `w ? w[j] : 1` scalar */
            SK_SIMD
            for (size_t j = 0; j < n; j++)
                grad[j] = SK_ST(sk_exp_nonpos_f32(SK_LD(x[j]) - m) * c - b * w[j]);
        } else {
            SK_SIMD
            for (size_t j = 0; j < n; j++)
                grad[j] = SK_ST(sk_exp_nonpos_f32(SK_LD(x[j]) - m) * c - b);
        }
        /* The target entry in float64, in one rounding (see losses_body.h's ce_hard_row). */
        double et = (double)sk_exp_nonpos_f32(xt - m);
        grad[t] = SK_ST((float)(et * (gs * (hard + cs * wsum) / (1.0 + sm1)) - gs * cs * (w ? (double)w[t] : 1.0)
                                - gs * hard));
    }
    return isnan(sm1) ? NAN : loss;
}

/* Integer-label cross-entropy of 16-bit logits: losses.h's ce_hard with T = 16-bit
 * for x and grad, float32 class weights.
 * IN x (rows, cols), IN target (rows), IN w (cols) float32 or NULL, OUT loss (rows),
 * OUT roww (rows), IN gscale (rows) or NULL, OUT grad (rows, cols) or NULL,
 * work NULL or cols float32 per thread (used with grad only), OUT lse (rows) or NULL
 * (for ce_hard_grad_lse) */
static void SK_HFN(ce_hard)(const uint16_t *x, const int64_t *target, const float *w,
                            int64_t ignore_index, int has_ignore, double eps,
                            double *loss, double *roww, const double *gscale, double gscale_c,
                            uint16_t *grad, size_t rows, size_t cols, int nthreads, float *work,
                            double *lse)
{
    double wsum = 0.0;
    for (size_t j = 0; j < cols; j++)
        wsum += w ? (double)w[j] : 1.0;
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = SK_HFN(h_ce_hard_row)(x + (size_t)i * cols, target[i], w, cols, ignore_index,
                                                has_ignore, eps, wsum, roww + i,
                                                gscale ? gscale[i] : gscale_c,
                                                grad ? grad + (size_t)i * cols : NULL,
                                                work ? work + (size_t)SK_HALF_THREAD_ID() * cols : NULL,
                                                lse ? lse + i : NULL));
}

/* The gradient of one row from its logsumexp (ce_hard's lse): one pass,
 * grad_j = exp(x_j - lse) c - b w_j rounded once, the target entry in float64 (so
 * within 1 ulp of the 16-bit rounding of the float32 gradient, and nearer the exact
 * value than ce_hard's below float32's normal range, which that flushes); rows
 * whose lse is not finite (and bad labels) take h_ce_hard_row's full path.
 * IN x (n), IN w (n) float32 or NULL, OUT grad (n) */
static void SK_HFN(h_ce_hard_grad_lse_row)(const uint16_t *x, int64_t t, const float *w, size_t n,
                                           int64_t ignore_index, int has_ignore, double eps, double wsum,
                                           double gs, double lse, uint16_t *grad)
{
    if (has_ignore && t == ignore_index) {
        for (size_t j = 0; j < n; j++)
            grad[j] = 0;
        return;
    }
    if (!isfinite(lse) || t < 0 || (uint64_t)t >= (uint64_t)n) {
        double roww;
        SK_HFN(h_ce_hard_row)(x, t, w, n, ignore_index, has_ignore, eps, wsum, &roww, gs, grad, NULL, NULL);
        return;
    }
    double wt = w ? (double)w[t] : 1.0, cs = eps / (double)n, hard = (1.0 - eps) * wt;
    float xt = SK_LD(x[t]); /* read before the gradient pass: grad may be x itself */
    float l = (float)lse, c = (float)(gs * (hard + cs * wsum)), b = (float)(gs * cs);
    /* sk_exp_f32, not sk_exp_nonpos_f32: x_j - lse may lie below -87 where x_j - max
     * does not, and c may lift the product back into the normal range */
    if (w && b != 0.0f) {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            grad[j] = SK_ST(sk_exp_f32(SK_LD(x[j]) - l) * c - b * w[j]);
    } else {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            grad[j] = SK_ST(sk_exp_f32(SK_LD(x[j]) - l) * c - b);
    }
    grad[t] = SK_ST((float)(exp((double)xt - lse) * (gs * (hard + cs * wsum)) - gs * cs * wt - gs * hard));
}

/* The cross-entropy gradient of 16-bit logits from the forward's per-row logsumexp,
 * the backward of an autograd graph: one pass over each row instead of three.
 * IN x (rows, cols), IN target (rows), IN w (cols) float32 or NULL, IN lse (rows),
 * IN gscale (rows) or NULL, OUT grad (rows, cols) */
static void SK_HFN(ce_hard_grad_lse)(const uint16_t *x, const int64_t *target, const float *w,
                                     int64_t ignore_index, int has_ignore, double eps, const double *lse,
                                     const double *gscale, double gscale_c, uint16_t *grad,
                                     size_t rows, size_t cols, int nthreads)
{
    double wsum = 0.0;
    for (size_t j = 0; j < cols; j++)
        wsum += w ? (double)w[j] : 1.0;
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_HFN(h_ce_hard_grad_lse_row)(x + (size_t)i * cols, target[i], w, cols, ignore_index, has_ignore,
                                               eps, wsum, gscale ? gscale[i] : gscale_c, lse[i],
                                               grad + (size_t)i * cols));
}

#endif /* SK_HALF_LOSS */

#undef SK_HFN
#undef SK_LD
#undef SK_ST
#undef SK_HALF
