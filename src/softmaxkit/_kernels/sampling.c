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

#ifdef _OPENMP
#define SK_THREAD_ID() omp_get_thread_num()
#else
#define SK_THREAD_ID() 0
#endif

/* ------------------------------------------------------------ the generator */

#define SK_GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL

static inline uint64_t sk_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t sk_row_key(const uint64_t *keys, size_t i, int key_mode)
{
    if (key_mode == SK_KEYS_SEED)
        return sk_mix64(keys[0] + ((uint64_t)i + 1) * SK_GOLDEN_GAMMA);
    if (key_mode == SK_KEYS_ROW_SEEDS)
        return sk_mix64(keys[i] + SK_GOLDEN_GAMMA);
    return keys[i];
}

double sk_uniform(uint64_t key, uint64_t counter)
{
    return (double)(sk_mix64(key + (counter + 1) * SK_GOLDEN_GAMMA) >> 11) * 0x1p-53;
}

/* ------------------------------------------------------------ the weights */

/* w_j = exp((x_j - max) * inv_t), returning their sum; *status 1 for a NaN in the
 * row, 2 when nothing can be drawn (all -inf, or n == 0). A row with +inf entries
 * gets w = 1 on them and 0 elsewhere. The exp flushes weights below 2^-1022 to 0:
 * relative to the max weight 1, such an entry has probability below 1e-307 and is
 * never drawn either way.
 *
 * A long row may be split over nt threads (a batch of one row at V = 128k). The sum
 * is taken per chunk of SK_WEIGHT_CHUNK entries and the chunk sums added in order,
 * so it is the same number at any thread count, and so are the draws. The chunk
 * workers are SK_CLONES functions of their own: code inside an OpenMP region is
 * outlined by the compiler and would miss the SIMD clones. sums: scratch of
 * ceil(n / SK_WEIGHT_CHUNK) doubles. One body per input type. */
#define SK_WEIGHT_CHUNK 8192

#define SK_DEFINE_WEIGHTS(SUF, T)                                                        \
    SK_CLONES static double chunk_max_##SUF(const T *x, size_t n)                        \
    {                                                                                    \
        double m = -INFINITY;                                                            \
        SK_SIMD_REDUCE(max, m)                                                           \
        for (size_t j = 0; j < n; j++) {                                                 \
            double v = (double)x[j];                                                     \
            m = v > m ? v : m;                                                           \
        }                                                                                \
        return m;                                                                        \
    }                                                                                    \
                                                                                         \
    SK_CLONES static double chunk_exp_##SUF(const T *x, double *w, size_t n, double m, double inv_t) \
    {                                                                                    \
        double z = 0.0;                                                                  \
        SK_SIMD_REDUCE(+, z)                                                             \
        for (size_t j = 0; j < n; j++) {                                                 \
            double e = sk_exp_nonpos_f64(((double)x[j] - m) * inv_t);                    \
            w[j] = e;                                                                    \
            z += e;                                                                      \
        }                                                                                \
        return z;                                                                        \
    }                                                                                    \
                                                                                         \
    static double weights_##SUF(const T *x, double *w, size_t n, double inv_t, int *status, \
                                double *sums, int nt)                                    \
    {                                                                                    \
        ptrdiff_t nc = (ptrdiff_t)((n + SK_WEIGHT_CHUNK - 1) / SK_WEIGHT_CHUNK);          \
        (void)nt;                                                                        \
        _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")         \
        for (ptrdiff_t c = 0; c < nc; c++) {                                             \
            size_t b = (size_t)c * SK_WEIGHT_CHUNK;                                      \
            sums[c] = chunk_max_##SUF(x + b, n - b < SK_WEIGHT_CHUNK ? n - b : SK_WEIGHT_CHUNK); \
        }                                                                                \
        double m = -INFINITY;                                                            \
        for (ptrdiff_t c = 0; c < nc; c++)                                               \
            m = sums[c] > m ? sums[c] : m;                                               \
        if (!isfinite(m)) { /* rare rows: scalar */                                      \
            double z = 0.0;                                                              \
            for (size_t j = 0; j < n; j++) {                                             \
                if (isnan(x[j])) {                                                       \
                    *status = 1;                                                         \
                    return NAN;                                                          \
                }                                                                        \
                w[j] = x[j] == INFINITY ? 1.0 : 0.0;                                     \
                z += w[j];                                                               \
            }                                                                            \
            *status = z > 0.0 ? 0 : 2;                                                   \
            return z;                                                                    \
        }                                                                                \
        _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")         \
        for (ptrdiff_t c = 0; c < nc; c++) {                                             \
            size_t b = (size_t)c * SK_WEIGHT_CHUNK;                                      \
            size_t len = n - b < SK_WEIGHT_CHUNK ? n - b : SK_WEIGHT_CHUNK;              \
            sums[c] = chunk_exp_##SUF(x + b, w + b, len, m, inv_t);                      \
        }                                                                                \
        double z = 0.0;                                                                  \
        for (ptrdiff_t c = 0; c < nc; c++)                                               \
            z += sums[c];                                                                \
        *status = isnan(z) ? 1 : 0;                                                      \
        return z;                                                                        \
    }

SK_DEFINE_WEIGHTS(f64, double)
SK_DEFINE_WEIGHTS(f32, float)

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

/* The threshold tau of the kept set {w >= tau} (tau >= DBL_MIN, so w > 0) and its
 * mass, which the function returns. z is the sum of all of w; cand is scratch. */
SK_INLINE double truncate_row(const double *w, double *cand, size_t n, double z, const sk_sample_opts *o,
                           double *tau_out)
{
    double tau = DBL_MIN; /* the weights are 0 or normal numbers */
    int use_k = o->top_k > 0 && (size_t)o->top_k < n;
    int use_p = o->top_p < 1.0;
    if (!use_k && !use_p) {
        if (o->min_p > 0.0) {
            tau = o->min_p > tau ? o->min_p : tau;
            z = kept_sum(w, n, tau);
        }
        *tau_out = tau;
        return z;
    }
    double lo = tau;
    if (use_k) {
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
SK_CLONES static double block_sum(const double *w, size_t len, double tau)
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

/* Fewer rows than threads, and long ones: each row's passes over its entries are
 * split over the threads instead (the threshold search and the draws stay on one
 * thread: they touch the few candidates, or one block per draw). */
#define SK_SPLIT_ROW_MIN 65536

static inline int sk_split_rows(size_t rows, size_t cols, int nthreads)
{
    return nthreads > 1 && rows < (size_t)nthreads && cols >= SK_SPLIT_ROW_MIN;
}

#define SK_DEFINE_SAMPLE(SUF, T)                                                          \
    SK_CLONES static void sample_row_##SUF(const T *x, uint64_t key, int64_t *idx, double *logp, \
                                           int64_t *status, size_t n, size_t nd,          \
                                           const sk_sample_opts *o, double *work, int nt) \
    {                                                                                     \
        double *w = work, *cand = work + n;                                               \
        int st = 0;                                                                       \
        double z = weights_##SUF(x, w, n, o->inv_t, &st, cand, nt);                       \
        *status = st;                                                                     \
        if (st) {                                                                         \
            for (size_t d = 0; d < nd; d++) {                                             \
                idx[d] = -1;                                                              \
                logp[d] = NAN;                                                            \
            }                                                                             \
            return;                                                                       \
        }                                                                                 \
        double tau;                                                                       \
        double zk = truncate_row(w, cand, n, z, o, &tau);                                 \
        size_t nb = block_sums(w, n, tau, cand, nt);                                      \
        double lz = log(zk);                                                              \
        for (size_t d = 0; d < nd; d++) {                                                 \
            size_t j = draw_one(w, n, tau, cand, nb, sk_uniform(key, d) * zk);            \
            idx[d] = (int64_t)j;                                                          \
            logp[d] = log(w[j]) - lz;                                                     \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    void sk_sample_##SUF(const T *x, const uint64_t *keys, int key_mode, int64_t *idx,    \
                         double *logp, int64_t *status, size_t rows, size_t cols, size_t ndraws, \
                         const sk_sample_opts *opts, double *work, int nthreads)          \
    {                                                                                     \
        if (sk_split_rows(rows, cols, nthreads)) {                                        \
            for (size_t i = 0; i < rows; i++)                                             \
                sample_row_##SUF(x + i * cols, sk_row_key(keys, i, key_mode), idx + i * ndraws, \
                                 logp + i * ndraws, status + i, cols, ndraws, opts, work, nthreads); \
            return;                                                                       \
        }                                                                                 \
        SK_FOR_ROWS(rows, cols, nthreads,                                                 \
                    sample_row_##SUF(x + (size_t)i * cols, sk_row_key(keys, (size_t)i, key_mode), idx + (size_t)i * ndraws, \
                                     logp + (size_t)i * ndraws, status + i, cols, ndraws, opts, \
                                     work + (size_t)SK_THREAD_ID() * 2 * cols, 1));       \
    }                                                                                     \
                                                                                          \
    SK_CLONES static void probs_row_##SUF(const T *x, double *probs, int64_t *status, size_t n, \
                                          const sk_sample_opts *o, double *work, int nt)  \
    {                                                                                     \
        double *w = work, *cand = work + n;                                               \
        int st = 0;                                                                       \
        double z = weights_##SUF(x, w, n, o->inv_t, &st, cand, nt);                       \
        *status = st;                                                                     \
        if (st) {                                                                         \
            for (size_t j = 0; j < n; j++)                                                \
                probs[j] = st == 1 ? NAN : 0.0;                                           \
            return;                                                                       \
        }                                                                                 \
        double tau;                                                                       \
        double zk = truncate_row(w, cand, n, z, o, &tau);                                 \
        for (size_t j = 0; j < n; j++)                                                    \
            probs[j] = w[j] >= tau ? w[j] / zk : 0.0;                                     \
    }                                                                                     \
                                                                                          \
    void sk_sample_probs_##SUF(const T *x, double *probs, int64_t *status, size_t rows,   \
                               size_t cols, const sk_sample_opts *opts, double *work,     \
                               int nthreads)                                              \
    {                                                                                     \
        if (sk_split_rows(rows, cols, nthreads)) {                                        \
            for (size_t i = 0; i < rows; i++)                                             \
                probs_row_##SUF(x + i * cols, probs + i * cols, status + i, cols, opts, work, nthreads); \
            return;                                                                       \
        }                                                                                 \
        SK_FOR_ROWS(rows, cols, nthreads,                                                 \
                    probs_row_##SUF(x + (size_t)i * cols, probs + (size_t)i * cols, status + i, \
                                    cols, opts, work + (size_t)SK_THREAD_ID() * 2 * cols, 1)); \
    }

SK_DEFINE_SAMPLE(f64, double)
SK_DEFINE_SAMPLE(f32, float)
