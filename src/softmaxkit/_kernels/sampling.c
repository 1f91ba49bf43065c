/*
 * sampling.c: top-k / top-p / min-p sampling without sorting the row. See
 * sampling.h for the contract.
 *
 * Design (one row, n entries, in the thread's 2n-double workspace):
 *   1. One vectorised pass: the max, then w_j = exp((x_j - max) * inv_t) and their
 *      sum. Subtracting the max before scaling keeps (x - max) * inv_t in [-inf, 0]
 *      for any temperature: logits / T overflowed at T = 1e-300 in the old sampler.
 *   2. Truncation finds thresholds on w, not an order: the kept set of top-k,
 *      top-p and min-p is always {w >= some value} (ties kept), so the kernel needs
 *      the threshold only, found by quickselect (Hoare 1961) on a compacted copy of
 *      the candidates: expected linear time, where a sort is n log n. For top-k
 *      the candidates are first cut to w >= L, L the smallest of the maxima of k
 *      disjoint blocks: k distinct entries are >= L, so the k-th largest is too,
 *      and for peaked rows (language models) few entries pass.
 *   3. Inverse CDF over the kept entries in index order, one uniform per draw, with
 *      per-block sums so that a draw reads one block, not the row.
 * The uniforms come from a counter-based generator keyed per row (SplitMix64's
 * mixer), so a draw depends on the row's key and logits only: not on the thread
 * count, the batch, or the other rows.
 */
#include <float.h>

#include "sampling.h"
#include "sk_common.h"
#include "sk_isa.h"

#ifdef _OPENMP
#define SK_THREAD_ID() omp_get_thread_num()
#else
#define SK_THREAD_ID() 0
#endif

/* ------------------------------------------------------------ the generator */

/* The generator is in sampling.h (sk_uniform, sk_row_key): the module uses it too. */

/* ------------------------------------------------------------ the weights */

/* A long row is split in chunks of this many entries (sampling_body.h). */
#define SK_WEIGHT_CHUNK 8192


/* ------------------------------------------------------------ truncation */

/* sum of the w_j >= tau */
SK_INLINE double kept_sum(const double *w, size_t n, double tau)
{
    double s = 0.0;
    SK_SIMD_REDUCE(+, s)
    for (size_t j = 0; j < n; j++)
        s += w[j] >= tau ? w[j] : 0.0;
    return s;
}

/* Copies the w_j >= lo to out (in order; out may be w); returns how many. Blocks
 * whose max is below lo are skipped after one vectorised pass over them: the
 * candidates are usually few, and the branch-free copy of every entry took a fifth
 * of a top-k draw at V = 128k. */
#define SK_COMPACT_BLOCK 64

SK_INLINE size_t compact(const double *w, size_t n, double lo, double *out)
{
    size_t c = 0;
    for (size_t b = 0; b < n; b += SK_COMPACT_BLOCK) {
        size_t end = n - b < SK_COMPACT_BLOCK ? n : b + SK_COMPACT_BLOCK;
        double m = -INFINITY;
        SK_SIMD_REDUCE(max, m)
        for (size_t j = b; j < end; j++)
            m = w[j] > m ? w[j] : m;
        if (!(m >= lo))
            continue;
        for (size_t j = b; j < end; j++) {
            out[c] = w[j];
            c += w[j] >= lo;
        }
    }
    return c;
}

/* A lower bound on the k-th largest of w (1 <= k <= n): the least of the maxima of
 * k disjoint blocks of n / k entries. */
SK_INLINE double kth_lower_bound(const double *w, size_t n, size_t k)
{
    size_t bs = n / k;
    double lo = INFINITY;
    for (size_t b = 0; b < k; b++) {
        const double *p = w + b * bs;
        double m = -INFINITY;
        SK_SIMD_REDUCE(max, m)
        for (size_t j = 0; j < bs; j++)
            m = p[j] > m ? p[j] : m;
        lo = m < lo ? m : lo;
    }
    return lo;
}

static inline double med3(double a, double b, double c)
{
    if (a > b) { double t = a; a = b; b = t; }
    if (b > c) b = c;
    return a > b ? a : b;
}

/*
 * The largest value v of a[0..c) such that the measure of {a >= v} reaches target,
 * where the measure is the count (by_count) or the sum of the values. With counts
 * and target k this is the k-th largest value; with sums, the top-p threshold.
 * Quickselect (Hoare 1961) around the median of three, with a branch-free Lomuto
 * partition (> pivot to the front): a branchy one mispredicts on every other
 * element and was 4x slower. Ties cost one more pass, only when the pivot is the
 * range's max. a is permuted. If rounding leaves the target above the total, the
 * smallest value is returned (everything kept).
 */
SK_INLINE size_t partition_gt(double *a, size_t lo, size_t hi, double p, int by_count, double *sum)
{
    size_t g = lo;
    double s = 0.0;
    for (size_t i = lo; i < hi; i++) {
        double v = a[i], t = a[g];
        int c = v > p;
        a[g] = c ? v : t;
        a[i] = c ? t : v;
        g += (size_t)c;
        s += c ? (by_count ? 1.0 : v) : 0.0;
    }
    *sum = s;
    return g;
}

SK_INLINE size_t partition_eq(double *a, size_t lo, size_t hi, double p, int by_count, double *sum)
{
    size_t g = lo;
    double s = 0.0;
    for (size_t i = lo; i < hi; i++) {
        double v = a[i], t = a[g];
        int c = v == p;
        a[g] = c ? v : t;
        a[i] = c ? t : v;
        g += (size_t)c;
        s += c ? (by_count ? 1.0 : v) : 0.0;
    }
    *sum = s;
    return g;
}

static double select_desc(double *a, size_t c, double target, int by_count)
{
    size_t lo = 0, hi = c;
    while (hi - lo > 16) {
        double p = med3(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);
        double sg, se;
        size_t g = partition_gt(a, lo, hi, p, by_count, &sg);
        if (sg >= target) {
            hi = g;
            continue;
        }
        target -= sg;
        size_t e = partition_eq(a, g, hi, p, by_count, &se); /* p is in [g, hi) */
        if (se >= target || e == hi)
            return p;
        target -= se;
        lo = e;
    }
    for (size_t i = lo + 1; i < hi; i++) { /* insertion sort, descending */
        double v = a[i];
        size_t j = i;
        while (j > lo && a[j - 1] < v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
    double acc = 0.0;
    for (size_t i = lo; i < hi; i++) {
        acc += by_count ? 1.0 : a[i];
        if (acc >= target)
            return a[i];
    }
    return a[hi - 1];
}

/* A lower bound on the top-p threshold, to cut the candidates before the
 * quickselect: the largest of 2^-1, 2^-3, 2^-6, ..., 2^-36 (the weights are relative
 * to the max, 1) above which the mass reaches target, or 0. One vectorised pass per
 * threshold, largest first: for peaked rows the nucleus lies above 2^-6, the search
 * stops after a pass or three, and few entries remain. (One pass with eight
 * accumulators spilled them to the stack and was 10x slower.) */
SK_INLINE double mass_lower_bound(const double *a, size_t c, double target)
{
    static const double ts[] = {0x1p-1, 0x1p-3, 0x1p-6, 0x1p-10, 0x1p-15, 0x1p-21, 0x1p-28, 0x1p-36};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (kept_sum(a, c, ts[i]) >= target)
            return ts[i];
    return 0.0;
}

/* The smallest positive w (DBL_MIN if none). */
static double min_positive(const double *w, size_t n)
{
    double m = INFINITY;
    SK_SIMD_REDUCE(min, m)
    for (size_t j = 0; j < n; j++)
        m = w[j] > 0.0 && w[j] < m ? w[j] : m;
    return m == INFINITY ? DBL_MIN : m;
}

/* The threshold tau of the kept set {w >= tau} (tau >= DBL_MIN, so w > 0) and its
 * mass, which the function returns. z is the sum of all of w; cand is scratch. With
 * tau_k (may be NULL) and top-k on, also the top-k threshold alone: the least weight
 * of the top-k set. */
SK_INLINE double truncate_row(const double *w, double *cand, size_t n, double z, const sk_sample_opts *o,
                           double *tau_out, double *tau_k)
{
    double tau = DBL_MIN; /* the weights are 0 or normal numbers */
    int use_k = o->top_k > 0 && (size_t)o->top_k < n;
    int use_p = o->top_p < 1.0;
    if (tau_k && o->top_k > 0 && !use_k)
        *tau_k = min_positive(w, n); /* every entry is in the top-k set */
    if (!use_k && !use_p) {
        if (o->min_p > 0.0) {
            tau = o->min_p > tau ? o->min_p : tau;
            z = kept_sum(w, n, tau);
        }
        *tau_out = tau;
        return z;
    }
    double lo = tau;
    if (use_k && n >= 4 * (size_t)o->top_k) { /* (few entries a block: not worth a pass) */
        double b = kth_lower_bound(w, n, (size_t)o->top_k);
        lo = b > lo ? b : lo;
    }
    size_t c = compact(w, n, lo, cand);
    if (use_k) {
        tau = lo;
        if (c > (size_t)o->top_k) {
            double vk = select_desc(cand, c, (double)o->top_k, 1);
            tau = vk > tau ? vk : tau;
            c = compact(cand, c, vk, cand); /* the top-k set, ties included */
        }
        if (tau_k)
            *tau_k = tau;
    }
    if (use_p) {
        double target = o->top_p * kept_sum(cand, c, 0.0);
        if (c > 256)
            c = compact(cand, c, mass_lower_bound(cand, c, target), cand);
        double vp = select_desc(cand, c, target, 0);
        tau = vp > tau ? vp : tau;
    }
    tau = o->min_p > tau ? o->min_p : tau;
    *tau_out = tau;
    return kept_sum(cand, c, tau);
}

/* ------------------------------------------------------------ drawing */

#define SK_DRAW_BLOCK 512

/* Per-block sums of the kept weights into bs, over nt threads; returns the number of
 * blocks. Each block's sum is its own, whatever the thread count. */
static double block_sum(const double *w, size_t len, double tau)
{
    return kept_sum(w, len, tau);
}

static size_t block_sums(const double *w, size_t n, double tau, double *bs, int nt)
{
    ptrdiff_t nb = (ptrdiff_t)((n + SK_DRAW_BLOCK - 1) / SK_DRAW_BLOCK);
    (void)nt;
    _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")
    for (ptrdiff_t b = 0; b < nb; b++) {
        size_t start = (size_t)b * SK_DRAW_BLOCK;
        bs[b] = block_sum(w + start, n - start < SK_DRAW_BLOCK ? n - start : SK_DRAW_BLOCK, tau);
    }
    return (size_t)nb;
}

/* The first kept j whose running sum of kept weights exceeds t. If rounding leaves
 * t at or above the total, the last kept entry. */
static size_t draw_one(const double *w, size_t n, double tau, const double *bs, size_t nb, double t)
{
    double acc = 0.0;
    for (size_t b = 0; b < nb; b++) {
        if (acc + bs[b] > t) {
            size_t end = (b + 1) * SK_DRAW_BLOCK < n ? (b + 1) * SK_DRAW_BLOCK : n;
            double a = acc;
            for (size_t j = b * SK_DRAW_BLOCK; j < end; j++) {
                if (w[j] >= tau) {
                    a += w[j];
                    if (a > t)
                        return j;
                }
            }
        }
        acc += bs[b];
    }
    for (size_t j = n; j-- > 0;)
        if (w[j] >= tau)
            return j;
    return 0; /* not reached: the max is always kept */
}

/* ------------------------------------------------------------ rows */

/* The sparse path (sampling_body.h), for rows of at least SK_SPARSE_MIN entries
 * (shorter ones take the full path, which is as fast there). A row is read as a
 * matrix of sk_columns(n) columns: about sqrt(64 n), a power of two in [64, 4096],
 * which balances the work on the column maxima (W) against the visits of the
 * candidate columns (n / W entries each). At most SK_BANDS_MAX threads share the
 * column maxima. */
#define SK_SPARSE_MIN 1024
#define SK_BANDS_MAX 8

/* The dense path (sampling_body.h): the levels of the weights (relative to the max,
 * 1) whose masses bound the top-p threshold, largest first; and the most draws per
 * row for which plain sampling recomputes a chunk's exps per draw rather than
 * storing the weights (the full path). */
#define SK_LEVEL_0 0x1p-4
#define SK_LEVEL_1 0x1p-14
#define SK_DENSE_DRAWS 4

static inline size_t sk_columns(size_t n)
{
    size_t w = 64;
    while (w < 4096 && (2 * w) * (2 * w) <= 64 * n)
        w *= 2;
    return w;
}


/* Fewer rows than threads, and long ones: each row's passes over its entries are
 * split over the threads instead (the threshold search and the draws stay on one
 * thread: they touch the few candidates, or one block per draw). */
#define SK_SPLIT_ROW_MIN 65536

static inline int sk_split_rows(size_t rows, size_t cols, int nthreads)
{
    return nthreads > 1 && rows < (size_t)nthreads && cols >= SK_SPLIT_ROW_MIN;
}

#define SK_DTYPE 64
#include "sampling_body.h"
#define SK_DTYPE 32
#include "sampling_body.h"

/* This variant's table (sk_sampling_kernels_avx512, ..., see sk_isa.h). */
const sk_sampling_kernels SK_ISA_TABLE(sk_sampling_kernels) = {
    .sample_f64 = sample_f64,
    .sample_f32 = sample_f32,
    .sample_probs_f64 = sample_probs_f64,
    .sample_probs_f32 = sample_probs_f32,
};
