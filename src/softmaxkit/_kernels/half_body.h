/*
 * half_body.h: softmax, log_softmax and integer-label cross-entropy for 16-bit
 * logits, bfloat16 and float16, written once and included per format after
 * `#define SK_HALF 1` (bfloat16, names _bf16) or `#define SK_HALF 2` (float16,
 * names _f16). Values travel as their bits (uint16_t).
 *
 * Every kernel is a few passes over a row (the max; the exps and their sum; the pass
 * that writes the result) of float32 arithmetic on values widened exactly, sums in
 * float32 blocks added in float64 (as the float32 kernels do), and each result
 * narrowed once to 16 bits (nearest even). The passes are written twice, below:
 * with AVX-512 intrinsics that read the 16-bit values into registers and round the
 * results there (no float32 copy of the row), and portably, widening a block (the
 * whole row into `work` when the seam gives it, else SK_F32_BLOCK values on the
 * stack) and narrowing it with sk_half.h.
 *
 * So each result is the 16-bit rounding of a float32 result, within 1 ulp of the
 * 16-bit rounding of the exact value. The exps are the float32 kernels' (about 1
 * float32 ulp; under AVX-512 the same polynomial with the scale by vscalefps, which
 * keeps results below float32's normal range exact where sk_exp_nonpos_f32 flushes
 * them to 0) where they feed a cancellation: a gradient with label smoothing,
 * p_j c - b, and the logsumexp it is computed from. Elsewhere under AVX-512
 * (softmax; the cross-entropy without smoothing, whose loss and gradient end in 16
 * bits) a cheaper one, h_exp2_fast, far below the 16-bit formats' half ulps.
 *
 * Unlike the float32 kernels, these never store an intermediate in the 16-bit
 * output (the exps of softmax, the exps of the gradient): a second rounding to 16
 * bits would cost up to a whole ulp. They keep the exps in `work` instead, or
 * recompute them. Outputs of SK_HALF_STREAM_BYTES or more are written around the
 * caches (H_VOUT).
 *
 * Needs softmax.h's conventions (NaN rows, +inf entries share the mass) and, for the
 * loss, losses.h's and nonfinite_p (losses.c). Requires SK_HALF_LOSS to define the
 * loss (losses.c) and SK_HALF_SOFTMAX for the softmax family (softmax.c).
 */
#if SK_HALF == 1
#define SK_HFN(name) SK_CAT(name, bf16)
#define SK_LD(v) sk_bf16_to_f32(v)
#define SK_ST(f) sk_f32_to_bf16(f)
#define SK_WIDEN sk_bf16_widen
#define SK_NARROW sk_bf16_narrow
#elif SK_HALF == 2
#define SK_HFN(name) SK_CAT(name, f16)
#define SK_LD(v) sk_f16_to_f32(v)
#define SK_ST(f) sk_f32_to_f16(f)
#define SK_WIDEN sk_f16_widen
#define SK_NARROW sk_f16_narrow
#else
#error "define SK_HALF as 1 (bfloat16) or 2 (float16)"
#endif

/* The row kernels' scratch: `work` is NULL, or float32 space of `cols` values for
 * each thread of the call (the Python seam allocates it), where a row is widened
 * once and its exps are kept from the sum's pass to the final one instead of being
 * computed again. The values are the same floats either way, so the results are
 * the same bits. */
#ifndef SK_HALF_THREAD_ID
#ifdef _OPENMP
#include <omp.h>
#define SK_HALF_THREAD_ID() omp_get_thread_num()
#else
#define SK_HALF_THREAD_ID() 0
#endif
#endif


#ifndef SK_HALF_BODY_COMMON
#define SK_HALF_BODY_COMMON

#define SK_HB SK_F32_BLOCK

#if defined(__AVX512F__)
/*
 * exp(a) with AVX-512 intrinsics: 2^n e^r by the same Cody-Waite reduction and
 * degree-7 polynomial as sk_exp_f32 (about 1 float32 ulp), with the scale 2^n
 * applied by vscalefps, which rounds once and is exact down to the subnormals: no
 * clamps, flush or second scale (-inf is clamped to -200, whose exp rounds to 0; NaN
 * goes through).
 */
static inline __m512 h_exp_avx512(__m512 a)
{
    a = _mm512_max_ps(_mm512_set1_ps(-200.0f), a); /* the NaN operand second: NaN stays */
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(a, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), a);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/*
 * 2^t, for results that only go into 16-bit outputs (without the cancellation of a
 * smoothed gradient, p c - b): t = n + f, |f| <= 1/2, 2^f by a degree-5 polynomial
 * (relative error 2^-22, fitted to 2^f in relative error; tests/test_kernel_half.py
 * has the fit), scaled by vscalefps. With t = (x - m) log2(e) rounded to float32,
 * its rounding (|t| 2^-24) adds at most 2^-17 more at |t| = 128: far below the
 * 16-bit formats' half ulps (2^-9, 2^-12), so the 16-bit result is within 1 ulp of
 * the 16-bit rounding of the float32 one (almost always the same). Four operations
 * fewer than h_exp_avx512: no second reduction constant, two FMAs fewer.
 * -inf (and anything below -200) gives 0, NaN stays NaN.
 */
static inline __m512 h_exp2_fast(__m512 t)
{
    t = _mm512_max_ps(_mm512_set1_ps(-200.0f), t); /* the NaN operand second: NaN stays */
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(0x1.5c08e8p-10f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.3d0c52p-7f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.c6b6e4p-5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.ebf918p-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.62e428p-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0x1.000002p+0f));
    return _mm512_scalef_ps(p, n);
}

/* exp((x - m) inv_t) of 16 values: with `fast` h_exp2_fast's (vk = inv_t log2(e)),
 * else h_exp_avx512's (vt = inv_t). Callers pass `fast` as a constant. */
SK_INLINE __m512 h_vexp(__m512 x, __m512 vm, __m512 vt, __m512 vk, int fast)
{
    __m512 d = _mm512_sub_ps(x, vm);
    return fast ? h_exp2_fast(_mm512_mul_ps(d, vk)) : h_exp_avx512(_mm512_mul_ps(d, vt));
}

/* Lanes [0, len) of a vector, len < 16 or more. */
static inline __mmask16 h_lanes(size_t len)
{
    return len >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << len) - 1u);
}

/*
 * y[J] = the 16-bit rounding of EXPR, a __m512 of the 16 values at J under the
 * lane mask K, for J over [0, n): the output pass of every row kernel
 * (SK_HFN(h_vround) is the including format's). With `stream`, whole 64-byte lines
 * of y go around the caches (vmovntdq; the row's unaligned head and its tail as
 * plain stores), fenced at the end of the row. With `next` (a pass that reads the
 * 16-bit row, where no earlier pass of the row hinted y), cache hints for y H_AHEAD
 * values ahead (write) and for the same columns of the next row (read).
 */
#ifndef H_AHEAD
#define H_AHEAD 256
#endif
#define H_VOUT(y, n, stream, next, J, K, EXPR)                                                    \
    do {                                                                                    \
        size_t J = 0;                                                                       \
        __mmask16 K = (__mmask16)0xffff;                                                    \
        if ((stream) && ((uintptr_t)(y) & 1u) == 0) {                                       \
            size_t head_ = ((64u - ((uintptr_t)(y) & 63u)) & 63u) / 2u;                     \
            head_ = head_ < (n) ? head_ : (n);                                              \
            for (; J < head_; J += 16) {                                                    \
                K = h_lanes(head_ - J);                                                     \
                _mm256_mask_storeu_epi16((y) + J, K, SK_HFN(h_vround)(EXPR));               \
            }                                                                               \
            J = head_;                                                                      \
            K = (__mmask16)0xffff;                                                          \
            for (; J + 32 <= (n); J += 32) {                                                \
                __m256i lo_ = SK_HFN(h_vround)(EXPR);                                       \
                J += 16;                                                                    \
                __m256i hi_ = SK_HFN(h_vround)(EXPR);                                       \
                J -= 16;                                                                    \
                _mm512_stream_si512((__m512i *)(void *)((y) + J),                           \
                                    _mm512_inserti64x4(_mm512_castsi256_si512(lo_), hi_, 1)); \
            }                                                                               \
        }                                                                                   \
        for (; J < (n); J += 16) {                                                          \
            K = h_lanes((n) - J);                                                           \
            if (next) { /* a pass that reads x (else the exps' pass hinted y already) */    \
                __builtin_prefetch((y) + J + H_AHEAD, 1, 3);                                \
                __builtin_prefetch((next) + J, 0, 3);                                       \
            }                                                                               \
            _mm256_mask_storeu_epi16((y) + J, K, SK_HFN(h_vround)(EXPR));                   \
        }                                                                                   \
        if (stream)                                                                         \
            _mm_sfence();                                                                   \
    } while (0)

#else /* portable */

/* e_j = exp((v_j - m) inv_t) (e may be v), and their sum less the max's own 1 (see
 * softmax_body.h's exp_sum_m1): float32 over blocks of SK_F32_BLOCK, the blocks in
 * float64; `count` accumulates how many v_j equal m.  IN v (n), OUT e (n) */
SK_INLINE double h_exp_sum_m1_f32(const float *v, float *e, size_t n, float m, float inv_t, int exact,
                                  double *count)
{
    double s = 0.0, c = 0.0;
    for (size_t b = 0, len; b < n; b += len) {
        len = n - b < SK_F32_BLOCK ? n - b : SK_F32_BLOCK;
        float sb = 0.0f, cb = 0.0f;
        SK_SIMD_REDUCE(+, sb, cb)
        for (size_t j = b; j < b + len; j++) { /* -O3 unswitches the loop on `exact` */
            float x = v[j], a = exact ? sk_exp_f32((x - m) * inv_t) : sk_exp_nonpos_f32((x - m) * inv_t);
            e[j] = a;
            sb += x == m ? 0.0f : a;
            cb += x == m ? 1.0f : 0.0f;
        }
        s += (double)sb;
        c += (double)cb;
    }
    *count += c;
    return s;
}

/* e_j = exp(v_j - l) for a row's logsumexp l (v_j - l <= 0 up to l's rounding): one
 * scale, and where some v_j - l is below -87 (whose exp the one scale flushes to 0)
 * the block again with both scales, so results below float32's normal range stay
 * exact.  IN v (n), OUT e (n), not v */
static inline void h_exp_shifted_f32(const float *restrict v, float *restrict e, size_t n, float l)
{
    float lo = INFINITY;
    SK_SIMD_REDUCE(min, lo)
    for (size_t j = 0; j < n; j++) {
        float a = v[j] - l;
        lo = a < lo ? a : lo;
        e[j] = sk_exp_nonpos_f32(a);
    }
    if (lo < -87.0f) {
        SK_SIMD
        for (size_t j = 0; j < n; j++)
            e[j] = sk_exp_f32(v[j] - l);
    }
}

#endif /* __AVX512F__ */

/* Whether a call streams its output pass (SK_HALF_STREAM_BYTES, sk_half.h). */
static inline int h_stream(size_t rows, size_t cols)
{
    return (double)rows * (double)cols * 2.0 >= (double)SK_HALF_STREAM_BYTES;
}

/* Cache hints for the 16-bit values [j, j + len) of a row, a line at a time: read
 * (the next row's input) or write (this row's output). */
static inline void h_prefetch16(const uint16_t *p, size_t j, size_t len, int write)
{
    if (!p)
        return;
    const char *c = (const char *)(p + j), *end = (const char *)(p + j + len);
    for (; c < end; c += 64) {
        if (write)
            __builtin_prefetch(c, 1, 3);
        else
            __builtin_prefetch(c, 0, 3);
    }
}

#endif /* SK_HALF_BODY_COMMON */

/*
 * The passes over one row, as the row kernels below use them:
 *   h_row_range      the max and min (with `dst`, the portable one widens the row
 *                    into it on the way);
 *   h_exp_sum_m1     the exps and their sum (kept in `wide` when given);
 *   h_exp_out        y = 16-bit rounding of exp((x - m) inv_t) c - b w, from `wide`
 *                    or recomputed;
 *   h_exp_shift_out  the same with m = a logsumexp (the gradient from lse);
 *   h_log_out        y = 16-bit rounding of (x - m) inv_t - ls.
 * Written twice: with AVX-512 intrinsics, which read the 16-bit values straight
 * into registers (one pass of each kind, no float32 copy of the row), and portably,
 * widening blocks into float32 and narrowing them with sk_half.h. Both round each
 * result once from the same float32 arithmetic, up to FMA contraction.
 */
#if defined(__AVX512F__)

/* The lanes k of p widened to float32 (the others 0).  IN p (16, lanes k) */
static inline __m512 SK_HFN(h_vld)(const uint16_t *p, __mmask16 k)
{
#if SK_HALF == 1
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
#else
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
#endif
}

/* The 16-bit roundings (nearest even, NaN quiet) of s, as sk_f32_to_bf16 /
 * sk_f32_to_f16 give them. */
static inline __m256i SK_HFN(h_vround)(__m512 s)
{
#if SK_HALF == 2
    return _mm512_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
#if defined(__AVX512BF16__)
    /* vcvtneps2bf16 reads float32 subnormals as zero: a vector holding one
     * (vfpclassps class 0x20) takes the integer rounding below. */
    if (!_mm512_fpclass_ps_mask(s, 0x20))
        return (__m256i)_mm512_cvtneps_pbh(s);
#endif
    __m512i u = _mm512_castps_si512(s), hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                                 _mm512_and_si512(hi, _mm512_set1_epi32(1)));
    r = _mm512_srli_epi32(r, 16); /* carries into the exponent: inf */
    __mmask16 nan = _mm512_cmp_ps_mask(s, s, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
#endif
}

/* The max of a row as a float, ignoring NaN (vmaxps returns its second operand, the
 * running max, where the first is NaN). *lo is -inf: the portable kernels pick
 * their exp by the row's range, but vscalefps is exact at any exponent, so these
 * need no min. dst is not used.  IN x (n), OUT lo */
static inline float SK_HFN(h_row_range)(const uint16_t *x, size_t n, float *dst, float *lo)
{
    (void)dst;
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        m0 = _mm512_max_ps(SK_HFN(h_vld)(x + j, 0xffff), m0);
        m1 = _mm512_max_ps(SK_HFN(h_vld)(x + j + 16, 0xffff), m1);
    }
    for (; j < n; j += 16) {
        __mmask16 k = h_lanes(n - j);
        m0 = _mm512_mask_max_ps(m0, k, SK_HFN(h_vld)(x + j, k), m0);
    }
    *lo = -INFINITY;
    return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

/* The exps' pass: sum_j exp((x_j - m) inv_t) over a row, in float32 blocks added in
 * float64; with `wide`, the exps kept there for h_exp_out; `fast`: h_vexp's cheaper
 * exps. With `m1`, blocks of SK_HB values and the entries equal to m counted instead
 * of added, the sum less the max's 1 returned (so that log1p keeps a loss near 0
 * exact); without, blocks of 16 SK_HB values (128 terms per lane, a relative error
 * below 2^-17) and the whole sum, for a softmax, whose 16-bit outputs alone see it.
 * Each 32 values also hint the same columns of the next row (`next`, read) and of
 * the output (`out`, write) into the cache.
 * IN x (n), OUT wide (n) or NULL, next (n) and out (n): NULL or hints only */
SK_INLINE double SK_HFN(h_exp_sum)(const uint16_t *x, float *wide, size_t n, float m, float inv_t, int fast,
                                   int m1, const uint16_t *next, const uint16_t *out)
{
    const __m512 vm = _mm512_set1_ps(m), vt = _mm512_set1_ps(inv_t);
    const __m512 vk = _mm512_set1_ps((float)((double)inv_t * 1.4426950408889634));
    double s = 0.0;
    size_t count = 0, block = m1 ? SK_HB : 16 * SK_HB;
    for (size_t b = 0, len; b < n; b += len) {
        len = n - b < block ? n - b : block;
        __m512 s0 = _mm512_setzero_ps(), s1 = s0;
        size_t j = b, end = b + len;
        for (; j + 32 <= end; j += 32) {
            if (next)
                __builtin_prefetch(next + j, 0, 3);
            if (out)
                __builtin_prefetch(out + j, 1, 3);
            __m512 xa = SK_HFN(h_vld)(x + j, 0xffff), xb = SK_HFN(h_vld)(x + j + 16, 0xffff);
            __m512 ea = h_vexp(xa, vm, vt, vk, fast), eb = h_vexp(xb, vm, vt, vk, fast);
            if (wide) {
                _mm512_storeu_ps(wide + j, ea);
                _mm512_storeu_ps(wide + j + 16, eb);
            }
            if (m1) {
                __mmask16 ta = _mm512_cmp_ps_mask(xa, vm, _CMP_EQ_OQ), tb = _mm512_cmp_ps_mask(xb, vm, _CMP_EQ_OQ);
                s0 = _mm512_mask_add_ps(s0, (__mmask16)~ta, s0, ea);
                s1 = _mm512_mask_add_ps(s1, (__mmask16)~tb, s1, eb);
                count += (size_t)__builtin_popcount((unsigned)ta) + (size_t)__builtin_popcount((unsigned)tb);
            } else {
                s0 = _mm512_add_ps(s0, ea);
                s1 = _mm512_add_ps(s1, eb);
            }
        }
        for (; j < end; j += 16) {
            __mmask16 k = h_lanes(end - j);
            __m512 xa = SK_HFN(h_vld)(x + j, k);
            __m512 ea = h_vexp(xa, vm, vt, vk, fast);
            if (wide)
                _mm512_mask_storeu_ps(wide + j, k, ea);
            __mmask16 ta = m1 ? _mm512_mask_cmp_ps_mask(k, xa, vm, _CMP_EQ_OQ) : (__mmask16)0;
            s0 = _mm512_mask_add_ps(s0, k & (__mmask16)~ta, s0, ea);
            count += (size_t)__builtin_popcount((unsigned)ta);
        }
        s += (double)_mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    }
    return m1 ? s + ((double)count - 1.0) : s;
}

/* sum_j exp((x_j - m) inv_t) less the max's 1 over a row (h_exp_sum with m1).
 * IN x (n), OUT wide (n) or NULL, next (n) and out (n): NULL or hints only */
SK_INLINE double SK_HFN(h_exp_sum_m1)(const uint16_t *x, float *wide, size_t n, float m, float inv_t,
                                      int exact, int fast, const uint16_t *next, const uint16_t *out)
{
    (void)exact; /* vscalefps is exact in both cases */
    return SK_HFN(h_exp_sum)(x, wide, n, m, inv_t, fast, 1, next, out);
}

/* sum_j exp((x_j - m) inv_t) over a row, for a softmax (h_exp_sum with the cheaper
 * exps, without m1).  IN x (n), OUT wide (n) or NULL, next (n) and out (n): hints */
SK_INLINE double SK_HFN(h_exp_sum_fast)(const uint16_t *x, float *wide, size_t n, float m, float inv_t,
                                        int exact, const uint16_t *next, const uint16_t *out)
{
    (void)exact;
    return SK_HFN(h_exp_sum)(x, wide, n, m, inv_t, 1, 0, next, out);
}

/* y_j = 16-bit rounding of exp((x_j - m) inv_t) c - b w_j (w NULL: - b), from the
 * exps in `wide` (h_exp_sum_m1's), or recomputed (`fast`: as h_exp_sum_m1's).
 * IN x (n), IN wide (n) or NULL, IN w (n) or NULL, OUT y (n) (may be x) */
SK_INLINE void SK_HFN(h_exp_out)(const uint16_t *x, const float *wide, size_t n, float m, float inv_t,
                                 int exact, int fast, float c, float b, const float *w, uint16_t *y, int stream,
                                 const uint16_t *next)
{
    (void)exact;
    const __m512 vm = _mm512_set1_ps(m), vt = _mm512_set1_ps(inv_t), vc = _mm512_set1_ps(c);
    const __m512 vb = _mm512_set1_ps(b), vk = _mm512_set1_ps((float)((double)inv_t * 1.4426950408889634));
#define H_EXP_(J, K) h_vexp(SK_HFN(h_vld)(x + (J), K), vm, vt, vk, fast)
    if (wide && w)
        H_VOUT(y, n, stream, next, j, k,
               _mm512_fnmadd_ps(vb, _mm512_maskz_loadu_ps(k, w + j), _mm512_mul_ps(_mm512_maskz_loadu_ps(k, wide + j), vc)));
    else if (wide)
        H_VOUT(y, n, stream, next, j, k, _mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, wide + j), vc, vb));
    else if (w)
        H_VOUT(y, n, stream, next, j, k, _mm512_fnmadd_ps(vb, _mm512_maskz_loadu_ps(k, w + j), _mm512_mul_ps(H_EXP_(j, k), vc)));
    else
        H_VOUT(y, n, stream, next, j, k, _mm512_fmsub_ps(H_EXP_(j, k), vc, vb));
#undef H_EXP_
}

/* y_j = 16-bit rounding of exp(x_j - l) c - b w_j for a row's logsumexp l (w NULL:
 * - b); vscalefps keeps the exps below float32's normal range exact; without b,
 * h_exp2_fast's exps (no cancellation).
 * IN x (n), IN w (n) or NULL, OUT y (n) (may be x) */
static inline void SK_HFN(h_exp_shift_out)(const uint16_t *x, size_t n, float l, float c, float b, const float *w,
                                           uint16_t *y, int stream, const uint16_t *next)
{
    if (b == 0.0f) /* each call with constant `fast`, so that the loop has one exp */
        SK_HFN(h_exp_out)(x, NULL, n, l, 1.0f, 1, 1, c, b, w, y, stream, next);
    else
        SK_HFN(h_exp_out)(x, NULL, n, l, 1.0f, 1, 0, c, b, w, y, stream, next);
}

/* y_j = 16-bit rounding of (x_j - m) inv_t - ls.  IN x (n), OUT y (n) (may be x) */
static inline void SK_HFN(h_log_out)(const uint16_t *x, size_t n, float m, float inv_t, float ls, uint16_t *y,
                                     int stream)
{
    const uint16_t *next = NULL; /* the exps' pass has hinted it */
    const __m512 vm = _mm512_set1_ps(m), vt = _mm512_set1_ps(inv_t), vl = _mm512_set1_ps(ls);
    H_VOUT(y, n, stream, next, j, k, _mm512_sub_ps(_mm512_mul_ps(_mm512_sub_ps(SK_HFN(h_vld)(x + j, k), vm), vt), vl));
}

#else /* portable */

/* The max of a row as a float, and its min in *lo, ignoring NaN; with `dst`, the
 * row widened into it.  IN x (n), OUT dst (n) or NULL, OUT lo */
static inline float SK_HFN(h_row_range)(const uint16_t *x, size_t n, float *dst, float *lo)
{
    if (dst) {
        SK_WIDEN(x, dst, n);
        return sk_row_range_f32(dst, n, lo);
    }
    float m = -INFINITY, l = INFINITY, buf[SK_HB];
    for (size_t b = 0, len; b < n; b += len) {
        len = n - b < SK_HB ? n - b : SK_HB;
        SK_WIDEN(x + b, buf, len);
        float lb, mb = sk_row_range_f32(buf, len, &lb);
        m = mb > m ? mb : m;
        l = lb < l ? lb : l;
    }
    *lo = l;
    return m;
}

/* sum_j exp((x_j - m) inv_t) less the max's 1 over a row; with `wide`, the row
 * widened already (h_row_range's dst), whose values become the exps.
 *
 * This is the pass that computes, between one that reads the row from memory and
 * one that writes the result: each block also hints the same columns of the next
 * row (`next`, read) and of the output (`out`, write) into the cache, so that those
 * passes find their lines in L2 rather than waiting for memory (docs/torch.md has
 * the measurements).
 * IN x (n), IN/OUT wide (n) or NULL, next (n) and out (n): NULL or hints only */
static inline double SK_HFN(h_exp_sum_m1)(const uint16_t *x, float *wide, size_t n, float m, float inv_t,
                                          int exact, int fast, const uint16_t *next, const uint16_t *out)
{
    (void)fast; /* the AVX-512 variants' cheaper exp; here the float32 one */
    double count = 0.0, s = 0.0;
    float buf[SK_HB];
    for (size_t b = 0, len; b < n; b += len) {
        len = n - b < SK_HB ? n - b : SK_HB;
        h_prefetch16(next, b, len, 0);
        h_prefetch16(out, b, len, 1);
        if (wide) {
            s += h_exp_sum_m1_f32(wide + b, wide + b, len, m, inv_t, exact, &count);
        } else {
            SK_WIDEN(x + b, buf, len);
            s += h_exp_sum_m1_f32(buf, buf, len, m, inv_t, exact, &count);
        }
    }
    return s + (count - 1.0);
}

/* sum_j exp((x_j - m) inv_t) over a row, for a softmax (the AVX-512 variants' is
 * cheaper than h_exp_sum_m1; here it is h_exp_sum_m1 plus the max's 1).
 * IN x (n), IN/OUT wide (n) or NULL, next (n) and out (n): NULL or hints only */
static inline double SK_HFN(h_exp_sum_fast)(const uint16_t *x, float *wide, size_t n, float m, float inv_t,
                                            int exact, const uint16_t *next, const uint16_t *out)
{
    return 1.0 + SK_HFN(h_exp_sum_m1)(x, wide, n, m, inv_t, exact, 1, next, out);
}

/* y_j = 16-bit rounding of exp((x_j - m) inv_t) c - b w_j (w NULL: - b), from the
 * exps in `wide` (h_exp_sum_m1's), or recomputed block by block.
 * IN x (n), IN wide (n) or NULL, IN w (n) or NULL, OUT y (n) (may be x) */
static inline void SK_HFN(h_exp_out)(const uint16_t *x, const float *wide, size_t n, float m, float inv_t,
                                     int exact, int fast, float c, float b, const float *w, uint16_t *y,
                                     int stream, const uint16_t *next)
{
    (void)stream;
    (void)next;
    (void)fast;
    if (wide) {
        SK_NARROW(wide, c, b, w, y, n);
        return;
    }
    float buf[SK_HB];
    double unused = 0.0;
    for (size_t i = 0, len; i < n; i += len) {
        len = n - i < SK_HB ? n - i : SK_HB;
        SK_WIDEN(x + i, buf, len);
        h_exp_sum_m1_f32(buf, buf, len, m, inv_t, exact, &unused);
        SK_NARROW(buf, c, b, w ? w + i : NULL, y + i, len);
    }
}

/* y_j = 16-bit rounding of exp(x_j - l) c - b w_j for a row's logsumexp l (w NULL:
 * - b): x_j - l may lie below -87 where x_j - max does not, and c may lift the
 * product back into the normal range: h_exp_shifted_f32 keeps those exact.
 * IN x (n), IN w (n) or NULL, OUT y (n) (may be x) */
static inline void SK_HFN(h_exp_shift_out)(const uint16_t *x, size_t n, float l, float c, float b, const float *w,
                                           uint16_t *y, int stream, const uint16_t *next)
{
    (void)stream;
    (void)next;
    float buf[SK_HB], e[SK_HB];
    for (size_t i = 0, len; i < n; i += len) {
        len = n - i < SK_HB ? n - i : SK_HB;
        SK_WIDEN(x + i, buf, len);
        h_exp_shifted_f32(buf, e, len, l);
        SK_NARROW(e, c, b, w ? w + i : NULL, y + i, len);
    }
}

/* y_j = 16-bit rounding of (x_j - m) inv_t - ls.  IN x (n), OUT y (n) (may be x) */
static inline void SK_HFN(h_log_out)(const uint16_t *x, size_t n, float m, float inv_t, float ls, uint16_t *y,
                                     int stream)
{
    (void)stream;
    float buf[SK_HB];
    for (size_t b = 0, len; b < n; b += len) {
        len = n - b < SK_HB ? n - b : SK_HB;
        SK_WIDEN(x + b, buf, len);
        SK_SIMD
        for (size_t j = 0; j < len; j++)
            buf[j] = (buf[j] - m) * inv_t - ls;
        SK_NARROW(buf, 1.0f, 0.0f, NULL, y + b, len);
    }
}

#endif /* __AVX512F__ */

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

/* IN x (n), OUT y (n), work (n) float32 scratch or NULL, next: the next row or NULL
 * (a cache hint), stream: h_stream's */
static void SK_HFN(h_softmax_row)(const uint16_t *x, uint16_t *y, size_t n, float inv_t, float *work,
                                  const uint16_t *next, int stream)
{
    float lo, m = SK_HFN(h_row_range)(x, n, work, &lo);
    if (!isfinite(m)) {
        SK_HFN(h_nonfinite_row)(x, y, n, 0);
        return;
    }
    int exact = !((lo - m) * inv_t >= SK_EXP_NORMAL_F32);
    /* times 1/s, not / s: a division per element was a third of this pass; the
     * float32 product is within 1.5 float32 ulps of the quotient, far inside the
     * 16-bit rounding (it flips a 16-bit result only next to a tie). */
    float r = (float)(1.0 / SK_HFN(h_exp_sum_fast)(x, work, n, m, inv_t, exact, next, stream ? NULL : y));
    SK_HFN(h_exp_out)(x, work, n, m, inv_t, exact, 1, r, 0.0f, NULL, y, stream, work ? NULL : next);
}

/* y = softmax(x * inv_t) per row.  IN x (rows, cols), OUT y (rows, cols), 16-bit;
 * work: NULL or cols float32 per thread (min(nthreads, rows) threads at most) */
static void SK_HFN(softmax)(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, float inv_t, int nthreads,
                            float *work)
{
    int stream = h_stream(rows, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_HFN(h_softmax_row)(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t,
                                      work ? work + (size_t)SK_HALF_THREAD_ID() * cols : NULL,
                                      (size_t)i + 1 < rows ? x + ((size_t)i + 1) * cols : NULL, stream));
}

/* IN x (n), OUT y (n), next: the next row or NULL (a cache hint), stream: h_stream's */
static void SK_HFN(h_log_softmax_row)(const uint16_t *x, uint16_t *y, size_t n, float inv_t,
                                      const uint16_t *next, int stream)
{
    float lo, m = SK_HFN(h_row_range)(x, n, NULL, &lo);
    if (!isfinite(m)) {
        SK_HFN(h_nonfinite_row)(x, y, n, 1);
        return;
    }
    int exact = !((lo - m) * inv_t >= SK_EXP_NORMAL_F32);
    float ls = (float)log1p(SK_HFN(h_exp_sum_m1)(x, NULL, n, m, inv_t, exact, 0, next, stream ? NULL : y));
    SK_HFN(h_log_out)(x, n, m, inv_t, ls, y, stream);
}

/* y = log_softmax(x * inv_t) per row.  IN x (rows, cols), OUT y (rows, cols), 16-bit */
static void SK_HFN(log_softmax)(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, float inv_t, int nthreads)
{
    int stream = h_stream(rows, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_HFN(h_log_softmax_row)(x + (size_t)i * cols, y + (size_t)i * cols, cols, inv_t,
                                          (size_t)i + 1 < rows ? x + ((size_t)i + 1) * cols : NULL, stream));
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
 * the exps kept in `work` (or recomputed): grad_j = exp(x_j - m) c - b w_j, rounded
 * once, and the target entry (less the hard part) again in float64.
 * IN x (n), IN w (n) float32 or NULL, OUT roww (1), OUT grad (n) or NULL,
 * work (n) float32 scratch or NULL, OUT lse (1) or NULL: the row's logsumexp (NaN
 * with a NaN in the row), +inf where the row took another path (ignored, a bad
 * label, a non-finite max); next: the next row or NULL (a cache hint); stream:
 * h_stream's */
static double SK_HFN(h_ce_hard_row)(const uint16_t *x, int64_t t, const float *w, size_t n,
                                    int64_t ignore_index, int has_ignore, double eps,
                                    double wsum, double *roww, double gs, uint16_t *grad, float *work,
                                    double *lse, const uint16_t *next, int stream)
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
    work = grad ? work : NULL;
    float lo, m = SK_HFN(h_row_range)(x, n, work, &lo);
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
    /* Without label smoothing the loss (16-bit once reduced: softmaxkit and torch
     * return it in the logits' format) and the gradient e_j c take h_exp2_fast's
     * exps; with it, the gradient p_j c - b cancels, and the float32 exps are kept
     * (here and in the forward's lse, which h_exp_shift_out reads). */
    int fast = !(eps > 0.0);
    const uint16_t *hint = stream ? NULL : grad;
    double sm1 = fast ? SK_HFN(h_exp_sum_m1)(x, work, n, m, 1.0f, 0, 1, next, hint)
                      : SK_HFN(h_exp_sum_m1)(x, work, n, m, 1.0f, 0, 0, next, hint);
    double ls = log1p(sm1);
    if (lse)
        *lse = (double)m + ls;
    double loss = hard != 0.0 ? hard * (ls - zt) : 0.0;
    if (eps > 0.0)
        loss += cs * (wsum * ls - d);
    if (grad) {
        float c = (float)(gs * (hard + cs * wsum) / (1.0 + sm1)), b = (float)(gs * cs);
        if (fast)
            SK_HFN(h_exp_out)(x, work, n, m, 1.0f, 0, 1, c, b, NULL, grad, stream, work ? NULL : next);
        else
            SK_HFN(h_exp_out)(x, work, n, m, 1.0f, 0, 0, c, b, b != 0.0f ? w : NULL, grad, stream,
                              work ? NULL : next);
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
    int stream = grad && h_stream(rows, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                loss[i] = SK_HFN(h_ce_hard_row)(x + (size_t)i * cols, target[i], w, cols, ignore_index,
                                                has_ignore, eps, wsum, roww + i,
                                                gscale ? gscale[i] : gscale_c,
                                                grad ? grad + (size_t)i * cols : NULL,
                                                work ? work + (size_t)SK_HALF_THREAD_ID() * cols : NULL,
                                                lse ? lse + i : NULL,
                                                (size_t)i + 1 < rows ? x + ((size_t)i + 1) * cols : NULL, stream));
}

/* The gradient of one row from its logsumexp (ce_hard's lse): one pass,
 * grad_j = exp(x_j - lse) c - b w_j rounded once, the target entry in float64 (so
 * within 1 ulp of the 16-bit rounding of the float32 gradient, and nearer the exact
 * value than ce_hard's below float32's normal range, which that flushes); rows
 * whose lse is not finite (and bad labels) take h_ce_hard_row's full path.
 * IN x (n), IN w (n) float32 or NULL, OUT grad (n); stream: h_stream's; next: the next
 * row or NULL (a cache hint) */
static void SK_HFN(h_ce_hard_grad_lse_row)(const uint16_t *x, int64_t t, const float *w, size_t n,
                                           int64_t ignore_index, int has_ignore, double eps, double wsum,
                                           double gs, double lse, uint16_t *grad, int stream,
                                           const uint16_t *next)
{
    if (has_ignore && t == ignore_index) {
        for (size_t j = 0; j < n; j++)
            grad[j] = 0;
        return;
    }
    if (!isfinite(lse) || t < 0 || (uint64_t)t >= (uint64_t)n) {
        double roww;
        SK_HFN(h_ce_hard_row)(x, t, w, n, ignore_index, has_ignore, eps, wsum, &roww, gs, grad, NULL, NULL, NULL,
                              0);
        return;
    }
    double wt = w ? (double)w[t] : 1.0, cs = eps / (double)n, hard = (1.0 - eps) * wt;
    float xt = SK_LD(x[t]); /* read before the gradient pass: grad may be x itself */
    float l = (float)lse, c = (float)(gs * (hard + cs * wsum)), b = (float)(gs * cs);
    SK_HFN(h_exp_shift_out)(x, n, l, c, b, b != 0.0f ? w : NULL, grad, stream, next);
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
    int stream = h_stream(rows, cols);
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_HFN(h_ce_hard_grad_lse_row)(x + (size_t)i * cols, target[i], w, cols, ignore_index, has_ignore,
                                               eps, wsum, gscale ? gscale[i] : gscale_c, lse[i],
                                               grad + (size_t)i * cols, stream,
                                               (size_t)i + 1 < rows ? x + ((size_t)i + 1) * cols : NULL));
}

#endif /* SK_HALF_LOSS */

#undef SK_HFN
#undef SK_LD
#undef SK_ST
#undef SK_WIDEN
#undef SK_NARROW
#undef SK_HALF
