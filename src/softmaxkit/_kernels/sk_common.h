/*
 * sk_common.h: what every softmaxkit kernel file shares.
 *
 *   - SIMD variants: each kernel file is compiled once per instruction set (on
 *     x86-64: AVX-512, AVX2+FMA, AVX+FMA, AVX, SSE2; elsewhere once, for the
 *     baseline) and exports one table of its kernels per variant; sk_isa.h picks
 *     the table at import (the best the CPU runs, or SOFTMAXKIT_SIMD).
 *   - SK_DTYPE bodies: code written once for float64 and float32 lives in a body
 *     header included once per dtype (see sk_dtype.h).
 *   - sk_exp_f64 / sk_exp_f32: branch-free exp written so that the vectoriser turns
 *     a loop of calls into SIMD code (libm's exp is a call it cannot vectorise).
 *   - sk_threads_for: how many threads a call of a given size deserves.
 *
 * Kernels take plain pointers and sizes, allocate nothing, and never touch Python.
 */
#ifndef SK_COMMON_H
#define SK_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(_OPENMP)
#define SK_PRAGMA(x) _Pragma(#x)
#define SK_SIMD_REDUCE(op, ...) SK_PRAGMA(omp simd reduction(op : __VA_ARGS__))
#define SK_SIMD_MAXMIN(hi, lo) SK_PRAGMA(omp simd reduction(max : hi) reduction(min : lo))
#define SK_SIMD SK_PRAGMA(omp simd)
#else
#define SK_SIMD_REDUCE(op, ...)
#define SK_SIMD_MAXMIN(hi, lo)
#define SK_SIMD
#endif

/* name_f64 / name_f32 from SK_FN(name) in the dtype bodies (sk_dtype.h). */
#define SK_CAT_(a, b) a##_##b
#define SK_CAT(a, b) SK_CAT_(a, b)

/* A helper whose flag arguments are constants at each call: inlined for sure, so
 * the compiler makes one specialised loop per value. */
#if defined(__GNUC__)
#define SK_INLINE static inline __attribute__((always_inline))
#else
#define SK_INLINE static inline
#endif

/* float32 sums are taken in float over blocks of this many elements (8 or 16 SIMD
 * lanes, 16 to 32 additions each), and the block sums are added in float64. One
 * float64 accumulator for the whole row would be more accurate still, but mixing
 * widths halves the vector length and made the exp pass 2.3x slower. The loss
 * kernels also visit rows in blocks of this size, whatever the dtype, to pace
 * their prefetches of the next row. */
#define SK_F32_BLOCK 256

/* Work (elements) below which a call stays on the calling thread: starting or
 * waking a team costs a few microseconds, more than a small softmax takes. */
#define SK_PARALLEL_MIN_ELEMENTS 32768

static inline int sk_threads_for(size_t rows, size_t cols, int requested)
{
    if (requested <= 1 || rows < 2 || rows * cols < SK_PARALLEL_MIN_ELEMENTS)
        return 1;
    return (size_t)requested > rows ? (int)rows : requested;
}

/* The row driver of every rows kernel: runs STMT (which may use the row index
 * `i`, a ptrdiff_t) for each of `rows` rows, over sk_threads_for(...) threads. */
#define SK_FOR_ROWS(rows, cols, nthreads, STMT)                                          \
    do {                                                                                 \
        int nt_ = sk_threads_for((rows), (cols), (nthreads));                            \
        (void)nt_;                                                                       \
        _Pragma("omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)")       \
        for (ptrdiff_t i = 0; i < (ptrdiff_t)(rows); i++) {                              \
            STMT;                                                                        \
        }                                                                                \
    } while (0)

static inline double sk_bits_to_f64(uint64_t u) { double d; memcpy(&d, &u, sizeof d); return d; }
static inline uint64_t sk_f64_to_bits(double d) { uint64_t u; memcpy(&u, &d, sizeof u); return u; }
static inline float sk_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static inline uint32_t sk_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }

/* Cody-Waite reduction shared by the exps below: x = n ln2 + r, |r| <= ln2/2.
 * ln2 is split in a high part with trailing zeros (so n * LN2_HI is exact) and a
 * low part. `n` is a whole number held in a double, rounded by the SHIFT trick. */
/* The exponent below which exp(x) is no normal number: where sk_exp_nonpos stops
 * being exact (see below). */
#define SK_EXP_NORMAL_F64 (-708.0)
#define SK_EXP_NORMAL_F32 (-87.0f)

#define SK_SHIFT_F64 0x1.8p52
#define SK_SHIFT_F32 0x1.8p23f

static inline double sk_exp_reduce_f64(double x, double *n)
{
    const double LOG2E = 1.4426950408889634;
    const double LN2_HI = 6.93147180369123816490e-01; /* 0x1.62e42fee00000p-1 */
    const double LN2_LO = 1.90821492927058770002e-10; /* 0x1.a39ef35793c76p-33 */
    *n = (x * LOG2E + SK_SHIFT_F64) - SK_SHIFT_F64;
    return (x - *n * LN2_HI) - *n * LN2_LO;
}

/* exp(r) for |r| <= ln2/2 by its Taylor polynomial to degree 13: truncation below
 * 5e-18, under half an ulp. */
static inline double sk_exp_poly_f64(double r)
{
    double p = 1.0 / 6227020800.0;            /* 1/13! */
    p = p * r + 1.0 / 479001600.0;            /* 1/12! */
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    return p * r + 1.0;
}

/* 2^n for a whole n in [-1022, 1023] held in a double: (n + 1023) lands in the low
 * bits of (n + SHIFT + 1023); shifting left by 52 moves it into the exponent field
 * and drops SHIFT's own mantissa bit. */
static inline double sk_pow2_f64(double n)
{
    return sk_bits_to_f64(sk_f64_to_bits(n + (SK_SHIFT_F64 + 1023.0)) << 52);
}

static inline float sk_exp_reduce_f32(float x, float *n)
{
    const float LOG2E = 1.44269504088896341f;
    const float LN2_HI = 0.693359375f;     /* 355/512, exact products */
    const float LN2_LO = -2.12194440e-4f;
    *n = (x * LOG2E + SK_SHIFT_F32) - SK_SHIFT_F32;
    return (x - *n * LN2_HI) - *n * LN2_LO;
}

/* exp(r) for |r| <= ln2/2 to degree 7: truncation below 6e-9, under half an ulp. */
static inline float sk_exp_poly_f32(float r)
{
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    return p * r + 1.0f;
}

/* 2^n for a whole n in [-126, 127] held in a float (see sk_pow2_f64). */
static inline float sk_pow2_f32(float n)
{
    return sk_bits_to_f32(sk_f32_to_bits(n + (SK_SHIFT_F32 + 127.0f)) << 23);
}

/*
 * exp(x) in float64, about 1 ulp, vectorisable, exact down to the subnormals.
 *
 * The scale 2^n is applied as 2^n1 * 2^n2 with n1 = round(n/2) so that both factors
 * are normal numbers even when the result is subnormal or overflows: one rounding
 * at the end, and no special cases. Inputs are clamped to [-746, 710]: below, the
 * result rounds to 0 (so -inf gives 0); above, it overflows to +inf. NaN compares
 * false to both bounds and stays NaN through the polynomial.
 */
static inline double sk_exp_f64(double x)
{
    x = x < -746.0 ? -746.0 : x;
    x = x > 710.0 ? 710.0 : x;
    double n;
    double p = sk_exp_poly_f64(sk_exp_reduce_f64(x, &n));
    double n1 = (n * 0.5 + SK_SHIFT_F64) - SK_SHIFT_F64;
    return (p * sk_pow2_f64(n1)) * sk_pow2_f64(n - n1);
}

/* exp(x) in float32, about 1 ulp, the same scheme with clamps [-104, 89]. */
static inline float sk_exp_f32(float x)
{
    x = x < -104.0f ? -104.0f : x;
    x = x > 89.0f ? 89.0f : x;
    float n;
    float p = sk_exp_poly_f32(sk_exp_reduce_f32(x, &n));
    float n1 = (n * 0.5f + SK_SHIFT_F32) - SK_SHIFT_F32;
    return (p * sk_pow2_f32(n1)) * sk_pow2_f32(n - n1);
}

/* exp(x) for x <= 0 with one scale 2^n, since the result cannot overflow: results
 * below the smallest normal number (exp(-708) = 3.3e-308, exp(-87) = 1.6e-38 in
 * float32) are flushed to 0. For the cross-entropy kernels, where such a term is
 * an absolute error no loss (sum s >= 1) and no gradient entry can see, and the
 * single scale takes a third of the operations out of the hottest loop. The softmax
 * kernels keep sk_exp_*, which returns those subnormal probabilities exactly.
 * -inf gives 0; NaN stays NaN (it compares false and goes through the polynomial). */
static inline double sk_exp_nonpos_f64(double x)
{
    double n;
    double xc = x < -708.0 ? -708.0 : x; /* keeps 2^n normal: n >= -1022 */
    double p = sk_exp_poly_f64(sk_exp_reduce_f64(xc, &n));
    return x < -708.0 ? 0.0 : p * sk_pow2_f64(n);
}

static inline float sk_exp_nonpos_f32(float x)
{
    float n;
    float xc = x < -87.0f ? -87.0f : x; /* keeps 2^n normal: n >= -126 */
    float p = sk_exp_poly_f32(sk_exp_reduce_f32(xc, &n));
    return x < -87.0f ? 0.0f : p * sk_pow2_f32(n);
}

/*
 * log(1 + u) for u in [0, 1], vectorisable (no libm call), under an ulp: the
 * argument of softplus and log_sigmoid, u = exp(-|x|). fdlibm's log1p scheme without
 * its branches: above sqrt(2) - 1, 1 + u = 2 (1 + f) with f = (u - 1) / 2 (exact,
 * Sterbenz), so |f| <= 0.293 either way; then with s = f / (2 + f),
 * log(1 + f) = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R), R = sum_k 2 s^(2k) / (2k + 1),
 * |s| <= 0.1716. R's Taylor series is cut where the next term is below 1e-18 (float64,
 * ten terms) or 1e-10 (float32, five) of the result. Tiny u (subnormals included)
 * return u itself: f^2/2 and s R vanish. NaN stays NaN.
 */
static inline double sk_log1p_unit_f64(double u)
{
    const double LN2_HI = 6.93147180369123816490e-01; /* as sk_exp_reduce_f64 */
    const double LN2_LO = 1.90821492927058770002e-10;
    double k = u > 0.41421356237309503 ? 1.0 : 0.0;
    double f = k != 0.0 ? (u - 1.0) * 0.5 : u;
    double s = f / (2.0 + f);
    double z = s * s;
    double r = 2.0 / 21.0;
    r = r * z + 2.0 / 19.0;
    r = r * z + 2.0 / 17.0;
    r = r * z + 2.0 / 15.0;
    r = r * z + 2.0 / 13.0;
    r = r * z + 2.0 / 11.0;
    r = r * z + 2.0 / 9.0;
    r = r * z + 2.0 / 7.0;
    r = r * z + 2.0 / 5.0;
    r = r * z + 2.0 / 3.0;
    r = r * z;
    double hfsq = 0.5 * f * f;
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f);
}

static inline float sk_log1p_unit_f32(float u)
{
    const float LN2_HI = 0.693359375f; /* as sk_exp_reduce_f32 */
    const float LN2_LO = -2.12194440e-4f;
    float k = u > 0.414213562f ? 1.0f : 0.0f;
    float f = k != 0.0f ? (u - 1.0f) * 0.5f : u;
    float s = f / (2.0f + f);
    float z = s * s;
    float r = 2.0f / 11.0f;
    r = r * z + 2.0f / 9.0f;
    r = r * z + 2.0f / 7.0f;
    r = r * z + 2.0f / 5.0f;
    r = r * z + 2.0f / 3.0f;
    r = r * z;
    float hfsq = 0.5f * f * f;
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f);
}

/* The row scans shared by the kernel files, written once per dtype:
 * sk_row_max_f64/_f32 and sk_row_range_f64/_f32. */
#define SK_DTYPE 64
#include "sk_rows_body.h"
#define SK_DTYPE 32
#include "sk_rows_body.h"

#endif /* SK_COMMON_H */
