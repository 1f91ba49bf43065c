/*
 * sk_dtype.h: the dtype of a body header. Code that is the same for float64 and
 * float32 is written once, in a body header (sk_rows_body.h, softmax_body.h,
 * losses_body.h) that a .c file includes once per dtype:
 *
 *     #define SK_DTYPE 64
 *     #include "softmax_body.h"      (defines softmax_row_f64, sk_softmax_f64, ...)
 *     #define SK_DTYPE 32
 *     #include "softmax_body.h"      (the same for float32)
 *
 * A body includes this file at its top, which defines from SK_DTYPE:
 *   SK_T            the element type (double, float)
 *   SK_FN(name)     name_f64 / name_f32: every function a body defines, or calls
 *                   per dtype (sk_exp, sk_row_max, ...), is named through it
 *   SK_EXP_NORMAL   the exponent below which exp(x) is no normal number of SK_T:
 *                   where sk_exp_nonpos stops being exact (sk_common.h)
 *   SK_SUM_BLOCK    row sums of SK_T values are taken in SK_T within blocks of this
 *                   many elements, and the block sums added in float64: float32
 *                   uses SK_F32_BLOCK (sk_common.h); float64 needs no blocks and
 *                   has one block per row (blocking the float64 softmax sums made
 *                   it up to 1.3x slower: the vector loop restarts every block)
 * and again at its end, which undefines all of them and SK_DTYPE.
 */
#ifndef SK_T

#if SK_DTYPE == 64
#define SK_T double
#define SK_FN(name) SK_CAT(name, f64)
#define SK_EXP_NORMAL SK_EXP_NORMAL_F64
#define SK_SUM_BLOCK SIZE_MAX
#elif SK_DTYPE == 32
#define SK_T float
#define SK_FN(name) SK_CAT(name, f32)
#define SK_EXP_NORMAL SK_EXP_NORMAL_F32
#define SK_SUM_BLOCK SK_F32_BLOCK
#else
#error "define SK_DTYPE as 64 or 32 before including a body header"
#endif

#else /* the second inclusion, at the end of a body */

#undef SK_T
#undef SK_FN
#undef SK_EXP_NORMAL
#undef SK_SUM_BLOCK
#undef SK_DTYPE

#endif
