/*
 * sk_half.h: bfloat16 and IEEE float16 <-> float32, portable and branch-light so that
 * a loop of conversions vectorises with integer SIMD. 16-bit values travel as their
 * bits (uint16_t). Widening is exact; narrowing rounds to nearest, ties to even (as
 * NumPy's astype(np.float16) and torch's bfloat16 casts do), overflow gives inf and
 * NaN stays NaN (quiet).
 */
#ifndef SK_HALF_H
#define SK_HALF_H

#include <stdint.h>

#include "sk_common.h"

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

#endif
