/*
 * sk_half.h: bfloat16 and IEEE float16 <-> float32, portable and branch-light so that
 * a loop of conversions vectorises with integer SIMD. 16-bit values travel as their
 * bits (uint16_t). Widening is exact; narrowing rounds to nearest, ties to even (as
 * NumPy's astype(np.float16) and torch's bfloat16 casts do), overflow gives inf and
 * NaN stays NaN (quiet).
 */
#ifndef SK_HALF_H
#define SK_HALF_H

#include <float.h>
#include <stdint.h>

#include "sk_common.h"

#if defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

/* A call whose 16-bit output is at least this many bytes writes its last pass
 * around the caches (non-temporal stores, AVX-512 variants): an output that cannot
 * stay in the last-level cache would be read into it first only to be evicted.
 * 32 MiB: this machine's L3 (docs/torch.md has the measurements); the module exports it as
 * _softmax.HALF_STREAM_BYTES for the tests. */
#ifndef SK_HALF_STREAM_BYTES
#define SK_HALF_STREAM_BYTES ((size_t)32 << 20)
#endif

/* A bfloat16 is the top half of a float32. */
static inline float sk_bf16_to_f32(uint16_t h) { return sk_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t sk_f32_to_bf16(float f)
{
    uint32_t u = sk_f32_to_bits(f);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16; /* carries into the exponent: inf */
    uint32_t quiet = (u >> 16) | 0x0040u;
    return (uint16_t)(f != f ? quiet : rounded);
}

/* float16: sign, 5 exponent bits (bias 15), 10 mantissa bits. Its 15 magnitude bits
 * shifted left by 13 are a float32 of the same value times 2^-112 (normal halves
 * land on normal floats, subnormal halves on subnormal floats with the right
 * mantissa), so one exact multiply by 2^112 finishes the job; inf and NaN (exponent
 * 31) take float32's all-ones exponent instead. */
static inline float sk_f16_to_f32(uint16_t h)
{
    uint32_t em = h & 0x7fffu, sign = (uint32_t)(h & 0x8000u) << 16;
    float mag = sk_bits_to_f32(em << 13) * 0x1p112f;
    uint32_t bits = em >= 0x7c00u ? (em << 13) | 0x7f800000u : sk_f32_to_bits(mag);
    return sk_bits_to_f32(bits | sign);
}

/* Round to nearest even (F. Giesen's float_to_half_fast3_rtne): values at or above
 * 2^16 (and inf) give inf, NaN a quiet NaN; below 2^-14 a float addition of a magic
 * number rounds the mantissa into place; otherwise the exponent is rebiased and the
 * mantissa rounded by adding 0xfff plus its lowest kept bit. */
static inline uint16_t sk_f32_to_f16(float f)
{
    const uint32_t f16_limit = (127u + 16u) << 23;                          /* 2^16 */
    const uint32_t magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;          /* 0.5 */
    uint32_t u = sk_f32_to_bits(f);
    uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint32_t big = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
    uint32_t small = sk_f32_to_bits(sk_bits_to_f32(u) + sk_bits_to_f32(magic)) - magic;
    uint32_t normal = (u + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((u >> 13) & 1u)) >> 13;
    uint32_t o = u >= f16_limit ? big : u < (113u << 23) ? small : normal;
    return (uint16_t)(o | (sign >> 16));
}

/*
 * Whole arrays, for the portable passes of half_body.h (the variants without
 * AVX-512; the AVX-512 ones convert in registers there): F16C's vcvtph2ps /
 * vcvtps2ph for float16 where the variant has it (avx2), elsewhere the portable
 * functions above, which round the same way (the products s_j may be contracted
 * into FMAs differently, a float32 ulp that the 16-bit rounding sees only next to a
 * tie). Widening bfloat16 is a shift, which the compiler vectorises as well as any
 * instruction.
 */

/* The portable part of sk_bf16_narrow / sk_f16_narrow: values j..n-1 (two loops:
 * GCC 12 ran the one with `w ? w[i] : 1` scalar). */
#define SK_NARROW_REST(round16)                                                          \
    do {                                                                                 \
        if (w) {                                                                         \
            SK_SIMD                                                                      \
            for (size_t i = j; i < n; i++)                                               \
                y[i] = round16(src[i] * c - b * w[i]);                                   \
        } else {                                                                         \
            SK_SIMD                                                                      \
            for (size_t i = j; i < n; i++)                                               \
                y[i] = round16(src[i] * c - b);                                          \
        }                                                                                \
    } while (0)

/* IN x (n) bfloat16 bits, OUT y (n) */
static inline void sk_bf16_widen(const uint16_t *x, float *y, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        y[j] = sk_bf16_to_f32(x[j]);
}

/* IN x (n) float16 bits, OUT y (n) */
static inline void sk_f16_widen(const uint16_t *x, float *y, size_t n)
{
    size_t j = 0;
#if defined(__F16C__)
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + j))));
#endif
    SK_SIMD
    for (size_t i = j; i < n; i++)
        y[i] = sk_f16_to_f32(x[i]);
}

/* y_j = the 16-bit rounding of s_j = src_j * c - b * w_j (w NULL: src_j * c - b),
 * s_j computed in float32. IN src (n), IN w (n) or NULL, OUT y (n) bfloat16 bits */
static inline void sk_bf16_narrow(const float *src, float c, float b, const float *w, uint16_t *y, size_t n)
{
    size_t j = 0;
    SK_NARROW_REST(sk_f32_to_bf16);
}

/* As sk_bf16_narrow, to float16 bits (vcvtps2ph handles subnormals, inf and NaN). */
static inline void sk_f16_narrow(const float *src, float c, float b, const float *w, uint16_t *y, size_t n)
{
    size_t j = 0;
#if defined(__F16C__)
    const __m256 vc = _mm256_set1_ps(c), vb = _mm256_set1_ps(b);
    for (; j + 8 <= n; j += 8) {
        __m256 s = _mm256_mul_ps(_mm256_loadu_ps(src + j), vc);
        s = _mm256_sub_ps(s, w ? _mm256_mul_ps(vb, _mm256_loadu_ps(w + j)) : vb);
        _mm_storeu_si128((__m128i *)(y + j), _mm256_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
#endif
    SK_NARROW_REST(sk_f32_to_f16);
}

#endif
