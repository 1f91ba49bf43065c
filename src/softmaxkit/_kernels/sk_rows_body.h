/*
 * sk_rows_body.h: row scans every kernel file shares, written once per dtype
 * (included by sk_common.h with SK_DTYPE 64 and 32; see sk_dtype.h). Inline, so
 * that each SIMD variant of its caller gets its own vector code.
 */
#include "sk_dtype.h"

/* The max of a row, ignoring NaN (a NaN is caught later: it poisons the sum of
 * exps).  IN x (n); returns -inf for n == 0. */
static inline SK_T SK_FN(sk_row_max)(const SK_T *x, size_t n)
{
    SK_T m = -INFINITY;
    SK_SIMD_REDUCE(max, m)
    for (size_t j = 0; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

/* The max of a row, and its min in *lo, both ignoring NaN. The min rides along in a
 * pass that waits on memory anyway, and tells whether the cheaper sk_exp_nonpos is
 * exact for the whole row: (lo - max) * inv_t >= SK_EXP_NORMAL means no term of
 * the row can be below the smallest normal number.  IN x (n), OUT lo (1). */
static inline SK_T SK_FN(sk_row_range)(const SK_T *x, size_t n, SK_T *lo)
{
    SK_T m = -INFINITY, l = INFINITY;
    SK_SIMD_MAXMIN(m, l)
    for (size_t j = 0; j < n; j++) {
        m = x[j] > m ? x[j] : m;
        l = x[j] < l ? x[j] : l;
    }
    *lo = l;
    return m;
}

#include "sk_dtype.h"
