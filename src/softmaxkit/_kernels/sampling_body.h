/*
 * sampling_body.h: the per-row work of the sampler that reads the logits, written
 * once for float64 and float32 logits (included by sampling.c with SK_DTYPE 64 and
 * 32; see sk_dtype.h). The arithmetic is float64 for both: SK_T is only the type of
 * the logits in memory.
 */
#include "sk_dtype.h"

/* w_j = exp((x_j - max) * inv_t), returning their sum; *status 1 for a NaN in the
 * row, 2 when nothing can be drawn (all -inf, or n == 0). A row with +inf entries
 * gets w = 1 on them and 0 elsewhere. The exp flushes weights below 2^-1022 to 0:
 * relative to the max weight 1, such an entry has probability below 1e-307 and is
 * never drawn either way.
 *
 * A long row may be split over nt threads (a batch of one row at V = 128k). The sum
 * is taken per chunk of SK_WEIGHT_CHUNK entries and the chunk sums added in order,
 * so it is the same number at any thread count, and so are the draws. sums: scratch of
 * ceil(n / SK_WEIGHT_CHUNK) doubles. One body per input type. */

static double SK_FN(chunk_max)(const SK_T *x, size_t n)
{
    double m = -INFINITY;
    SK_SIMD_REDUCE(max, m)
    for (size_t j = 0; j < n; j++) {
        double v = (double)x[j];
        m = v > m ? v : m;
    }
    return m;
}

static double SK_FN(chunk_exp)(const SK_T *x, double *w, size_t n, double m, double inv_t)
{
    double z = 0.0;
    SK_SIMD_REDUCE(+, z)
    for (size_t j = 0; j < n; j++) {
        double e = sk_exp_nonpos_f64(((double)x[j] - m) * inv_t);
        w[j] = e;
        z += e;
    }
    return z;
}

static double SK_FN(weights)(const SK_T *x, double *w, size_t n, double inv_t, int *status,
                             double *sums, int nt)
{
    ptrdiff_t nc = (ptrdiff_t)((n + SK_WEIGHT_CHUNK - 1) / SK_WEIGHT_CHUNK);
    (void)nt;
    _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")
    for (ptrdiff_t c = 0; c < nc; c++) {
        size_t b = (size_t)c * SK_WEIGHT_CHUNK;
        sums[c] = SK_FN(chunk_max)(x + b, n - b < SK_WEIGHT_CHUNK ? n - b : SK_WEIGHT_CHUNK);
    }
    double m = -INFINITY;
    for (ptrdiff_t c = 0; c < nc; c++)
        m = sums[c] > m ? sums[c] : m;
    if (!isfinite(m)) { /* rare rows: scalar */
        double z = 0.0;
        for (size_t j = 0; j < n; j++) {
            if (isnan(x[j])) {
                *status = 1;
                return NAN;
            }
            w[j] = x[j] == INFINITY ? 1.0 : 0.0;
            z += w[j];
        }
        *status = z > 0.0 ? 0 : 2;
        return z;
    }
    _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")
    for (ptrdiff_t c = 0; c < nc; c++) {
        size_t b = (size_t)c * SK_WEIGHT_CHUNK;
        size_t len = n - b < SK_WEIGHT_CHUNK ? n - b : SK_WEIGHT_CHUNK;
        sums[c] = SK_FN(chunk_exp)(x + b, w + b, len, m, inv_t);
    }
    double z = 0.0;
    for (ptrdiff_t c = 0; c < nc; c++)
        z += sums[c];
    *status = isnan(z) ? 1 : 0;
    return z;
}

/* ---------------------------------------------------------------- the sparse path
 *
 * Top-k (with or without top-p and min-p after it) and min-p alone keep entries
 * near the max only, and their weights are relative to the max weight or to the
 * kept set: the sum over the whole row is never needed. So the sparse path reads the
 * row once, as a matrix of W columns (sk_columns), for the max of every column:
 * vertical maxima, which vectorise with no reduction across lanes and run at the
 * speed of a copy (threads over bands of the matrix; NaN propagates, so the NaN check
 * rides along). It takes exps only of the candidates:
 *   top-k: x >= L, L the k-th largest column max (k distinct entries are >= L,
 *          so the k-th largest logit is >= L too), less 2^-20 T; found among the
 *          columns that reach the least of the maxima of k disjoint groups of
 *          columns (every k-th column), a bound of the same kind that vertical
 *          maxima give again;
 *   min-p: x >= L = max + (log(min_p) - 2^-20) * T;
 * visiting only the columns whose max reaches L, row by row (so the candidates are
 * in index order). The truncation then runs on the candidates' weights
 * (truncate_row), and the draws invert the CDF of the kept candidates in index
 * order, like the full path.
 *
 * It is exact: a logit below L is at most Lm, the largest SK_T below L, so its weight
 * is at most wLm = exp((Lm - max) * inv_t). The path stands only if the top-k
 * threshold (min-p alone: the final one) is above wLm by more than exp's rounding
 * (a relative 2^-48): then no entry outside the candidates can be kept, or belong
 * to the top-k set that top-p renormalises. Otherwise (ties at L, a flat row, a huge
 * temperature, too many candidates) the row takes the full path. Which path a row
 * takes, and its draws, depend on its logits, options and key only, never on the
 * thread count. */

/* The max of each of the W columns of x seen as a (n / W, W) matrix plus a tail
 * row, into cm (W); NaN propagates into its column's max. Bands of at least 16 rows
 * (at most SK_BANDS_MAX, one a thread) take partial maxima into part (a band's W
 * each, so at most n / 16 items), combined after. */
static void SK_FN(column_maxima)(const SK_T *x, size_t n, size_t W, SK_T *cm, SK_T *part, int nt)
{
    size_t R = n / W;
    ptrdiff_t nb = (ptrdiff_t)(R / 16 < (size_t)nt ? R / 16 : (size_t)nt);
    nb = nb < 1 ? 1 : nb > SK_BANDS_MAX ? SK_BANDS_MAX : nb;
    (void)nt;
    _Pragma("omp parallel for num_threads(nb) schedule(static) if (nb > 1)")
    for (ptrdiff_t t = 0; t < nb; t++) {
        SK_T *c = part + (size_t)t * W;
        for (size_t s = 0; s < W; s++)
            c[s] = -INFINITY;
        size_t r0 = R * (size_t)t / (size_t)nb, r1 = R * ((size_t)t + 1) / (size_t)nb;
        for (size_t r = r0; r < r1; r++) {
            const SK_T *p = x + r * W;
            SK_SIMD
            for (size_t s = 0; s < W; s++) {
                SK_T q = p[s];
                c[s] = q > c[s] || q != q ? q : c[s];
            }
        }
    }
    for (size_t s = 0; s < W; s++)
        cm[s] = part[s];
    for (ptrdiff_t t = 1; t < nb; t++) {
        const SK_T *c = part + (size_t)t * W;
        SK_SIMD
        for (size_t s = 0; s < W; s++)
            cm[s] = c[s] > cm[s] || c[s] != c[s] ? c[s] : cm[s];
    }
    const SK_T *p = x + R * W; /* the tail row */
    for (size_t s = 0; s < n - R * W; s++)
        cm[s] = p[s] > cm[s] || p[s] != p[s] ? p[s] : cm[s];
}

/* The largest SK_T below the double L. */
static inline double SK_FN(below)(double L)
{
    SK_T f = (SK_T)L;
    if ((double)f >= L)
#if SK_DTYPE == 32
        f = nextafterf(f, -INFINITY);
#else
        f = nextafter(f, -INFINITY);
#endif
    return (double)f;
}

/* The scratch, in doubles, that the column maxima (W SK_T) and the visited columns
 * (W uint32) keep at the start of the work array. */
static inline size_t SK_FN(columns_scratch)(size_t W)
{
    return (W * sizeof(SK_T) + W * sizeof(uint32_t) + 7) / 8;
}

/* How many candidates the rest of the 2n-double work array holds: their weights,
 * indices and a scratch copy, and the draws' block sums; at most n / 2 (more
 * candidates than that: the full path is as fast). */
static inline size_t SK_FN(candidate_cap)(size_t n, size_t tw, size_t extra)
{
    size_t room = 2 * n - tw - extra - 1;
    size_t cap = room / (3 + 1.0 / SK_DRAW_BLOCK);
    return cap < n / 2 ? cap : n / 2;
}

/* The column maxima cm (W) of a row, at the start of work, and its max in *m;
 * returns whether the row holds a NaN. work: 2n doubles (the bands' partial maxima
 * use the space after columns_scratch(W) for the time of the pass). */
static int SK_FN(row_columns)(const SK_T *x, size_t n, size_t W, double *work, double *m, int nt)
{
    SK_T *cm = (SK_T *)work, *part = (SK_T *)(work + SK_FN(columns_scratch)(W));
    SK_FN(column_maxima)(x, n, W, cm, part, nt);
    SK_T mt = -INFINITY, nans = 0;
    SK_SIMD_REDUCE(max, mt)
    for (size_t s = 0; s < W; s++)
        mt = cm[s] > mt ? cm[s] : mt;
    SK_SIMD_REDUCE(+, nans)
    for (size_t s = 0; s < W; s++)
        nans += cm[s] != cm[s] ? (SK_T)1 : (SK_T)0;
    *m = (double)mt;
    return nans > 0;
}

/* The columns whose max reaches L, ascending, into vis; returns how many. */
static size_t SK_FN(visit)(const SK_T *cm, size_t W, double L, uint32_t *vis)
{
    size_t nv = 0;
    for (size_t s = 0; s < W; s++) { /* branch-free: most columns fall short */
        vis[nv] = (uint32_t)s;
        nv += (double)cm[s] >= L;
    }
    return nv;
}

/* The candidates x_j >= L of a row, in index order: their weights exp((x_j - m) *
 * inv_t) into cw and their indices into ci, visiting the nv columns of vis (those
 * whose max reaches L, ascending) row by row. Returns their count, or SIZE_MAX
 * when there could be more than cap. */
static size_t SK_FN(candidates)(const SK_T *x, size_t n, size_t W, const uint32_t *vis, size_t nv, double L,
                                double m, double inv_t, double *cw, double *ci, size_t cap)
{
    size_t R = n / W, c = 0;
    if (nv * (R + 1) > cap)
        return SIZE_MAX;
    for (size_t r = 0; r <= R; r++) {
        const SK_T *p = x + r * W;
        size_t len = r < R ? W : n - R * W;
        for (size_t v = 0; v < nv && vis[v] < len; v++) {
            if ((double)p[vis[v]] >= L) {
                cw[c] = sk_exp_nonpos_f64(((double)p[vis[v]] - m) * inv_t);
                ci[c] = (double)(r * W + vis[v]);
                c++;
            }
        }
    }
    return c;
}

/* Inverse CDF over the kept candidates (w >= tau, mass zk), in index order. */
static void SK_FN(draw_candidates)(const double *cw, const double *ci, size_t c, double tau, double zk,
                                   uint64_t key, int64_t *idx, double *logp, size_t nd, double *scratch)
{
    size_t nb = block_sums(cw, c, tau, scratch, 1);
    double lz = log(zk);
    for (size_t d = 0; d < nd; d++) {
        size_t q = draw_one(cw, c, tau, scratch, nb, sk_uniform(key, d) * zk);
        idx[d] = (int64_t)ci[q];
        logp[d] = log(cw[q]) - lz;
    }
}

/* Draws nd tokens of a row (max m finite, no NaN, column maxima at the start of
 * work) by the sparse path if it stands, and returns 1; 0 when the row must take
 * another path. work: 2n doubles. */
static int SK_FN(sample_sparse)(const SK_T *x, size_t n, double m, size_t W, uint64_t key, int64_t *idx,
                                double *logp, size_t nd, const sk_sample_opts *o, double *work)
{
    int use_k = o->top_k > 0 && (size_t)o->top_k < n;
    if (!(use_k || (o->top_p >= 1.0 && o->min_p > 0.0)))
        return 0;
    if (use_k && (size_t)o->top_k > W)
        return 0;
    size_t tw = SK_FN(columns_scratch)(W), cap = SK_FN(candidate_cap)(n, tw, 0);
    SK_T *cm = (SK_T *)work;
    uint32_t *vis = (uint32_t *)(cm + W);
    double *cw = work + tw, *ci = cw + cap, *scratch = ci + cap;
    double L;
    if (use_k) {
        /* group i: the columns i, i + k, i + 2k, ... (below W / k * k) */
        size_t k = (size_t)o->top_k, g = W / k;
        SK_T *gm = (SK_T *)cw, lo = INFINITY; /* cw is free until the candidates */
        for (size_t i = 0; i < k; i++)
            gm[i] = cm[i];
        for (size_t r = 1; r < g; r++) {
            const SK_T *c = cm + r * k;
            SK_SIMD
            for (size_t i = 0; i < k; i++)
                gm[i] = c[i] > gm[i] ? c[i] : gm[i];
        }
        SK_SIMD_REDUCE(min, lo)
        for (size_t i = 0; i < k; i++)
            lo = gm[i] < lo ? gm[i] : lo;
        L = (double)lo - 0x1p-20 / o->inv_t; /* the k-th largest column max, less the margin, is above */
    } else {
        L = m + (log(o->min_p) - 0x1p-20) / o->inv_t;
    }
    if (!(L > -INFINITY))
        return 0;
    size_t nv = SK_FN(visit)(cm, W, L, vis);
    if (use_k && nv > (size_t)o->top_k) {
        /* L from the k-th largest column max itself (>= the group bound, so among
         * the columns kept), less 2^-20 T: an entry at L then has a weight clearly
         * above those below L, and the path stands when it is the k-th largest */
        for (size_t v = 0; v < nv; v++)
            scratch[v] = (double)cm[vis[v]];
        L = select_desc(scratch, nv, (double)o->top_k, 1) - 0x1p-20 / o->inv_t;
        size_t kept = 0;
        for (size_t v = 0; v < nv; v++)
            if ((double)cm[vis[v]] >= L)
                vis[kept++] = vis[v];
        nv = kept;
    }
    size_t c = SK_FN(candidates)(x, n, W, vis, nv, L, m, o->inv_t, cw, ci, cap);
    if (c == SIZE_MAX)
        return 0;
    double wlm = sk_exp_nonpos_f64((SK_FN(below)(L) - m) * o->inv_t);
    double tau, tau_k = DBL_MIN;
    double zk = truncate_row(cw, scratch, c, kept_sum(cw, c, 0.0), o, &tau, &tau_k);
    double edge = use_k ? tau_k : tau;
    if (!(edge > wlm * (1.0 + 0x1p-48)))
        return 0;
    SK_FN(draw_candidates)(cw, ci, c, tau, zk, key, idx, logp, nd, scratch);
    return 1;
}

/* ---------------------------------------------------------------- the dense path
 *
 * Without top-k, plain sampling and top-p need the sum of every weight. The dense
 * path takes it in one pass over the row after the column maxima (threads over
 * chunks of SK_WEIGHT_CHUNK entries, the chunk sums added in order), without storing
 * the weights: plain sampling then finds a draw's chunk from the chunk sums and
 * recomputes the exps of that chunk only. For top-p the same pass also sums the
 * weights above two fixed levels; the largest level whose mass reaches
 * top_p of the total bounds the top-p threshold from below, so the candidates are
 * x >= max + (log(level) - 2^-20) T, found and checked as in the sparse path. */

/* sums[0] = the chunk's sum of w = exp((x - m) * inv_t); with levels, sums[1] and
 * sums[2] = the sums of the w >= SK_LEVEL_0 and >= SK_LEVEL_1. (Two levels: each
 * costs a compare, a blend and an add an entry, next to the exp's two dozen
 * operations; four made the pass 1.7x slower than the sum alone.) */
SK_INLINE void SK_FN(chunk_mass)(const SK_T *x, size_t len, double m, double inv_t, int levels, double *sums)
{
    double s = 0.0, s1 = 0.0, s2 = 0.0;
    SK_SIMD_REDUCE(+, s, s1, s2)
    for (size_t j = 0; j < len; j++) {
        double e = sk_exp_nonpos_f64(((double)x[j] - m) * inv_t);
        s += e;
        if (levels) {
            s1 += e >= SK_LEVEL_0 ? e : 0.0;
            s2 += e >= SK_LEVEL_1 ? e : 0.0;
        }
    }
    sums[0] = s;
    sums[1] = s1;
    sums[2] = s2;
}

/* chunk_mass of every chunk into sums (3 per chunk), over nt threads. */
static void SK_FN(chunk_masses)(const SK_T *x, size_t n, double m, double inv_t, int levels, double *sums, int nt)
{
    ptrdiff_t nc = (ptrdiff_t)((n + SK_WEIGHT_CHUNK - 1) / SK_WEIGHT_CHUNK);
    (void)nt;
    _Pragma("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")
    for (ptrdiff_t c = 0; c < nc; c++) {
        size_t b = (size_t)c * SK_WEIGHT_CHUNK, len = n - b < SK_WEIGHT_CHUNK ? n - b : SK_WEIGHT_CHUNK;
        if (levels)
            SK_FN(chunk_mass)(x + b, len, m, inv_t, 1, sums + 3 * c);
        else
            SK_FN(chunk_mass)(x + b, len, m, inv_t, 0, sums + 3 * c);
    }
}

/* The first j whose running sum of weights exceeds t, from the chunk sums (3 per
 * chunk), recomputing the exps of one chunk (in sub-blocks of SK_DRAW_BLOCK). If
 * rounding leaves t at or above the total, the last entry with a weight. */
static size_t SK_FN(draw_dense)(const SK_T *x, size_t n, double m, double inv_t, const double *sums, double t)
{
    size_t nc = (n + SK_WEIGHT_CHUNK - 1) / SK_WEIGHT_CHUNK;
    double acc = 0.0;
    for (size_t c = 0; c < nc; c++) {
        if (!(acc + sums[3 * c] > t)) {
            acc += sums[3 * c];
            continue;
        }
        size_t end = (c + 1) * SK_WEIGHT_CHUNK < n ? (c + 1) * SK_WEIGHT_CHUNK : n;
        for (size_t b = c * SK_WEIGHT_CHUNK; b < end; b += SK_DRAW_BLOCK) {
            size_t be = end - b < SK_DRAW_BLOCK ? end : b + SK_DRAW_BLOCK;
            double bs = 0.0;
            SK_SIMD_REDUCE(+, bs)
            for (size_t j = b; j < be; j++)
                bs += sk_exp_nonpos_f64(((double)x[j] - m) * inv_t);
            if (!(acc + bs > t)) {
                acc += bs;
                continue;
            }
            for (size_t j = b; j < be; j++) {
                acc += sk_exp_nonpos_f64(((double)x[j] - m) * inv_t);
                if (acc > t)
                    return j;
            }
        }
    }
    for (size_t j = n; j-- > 0;)
        if (sk_exp_nonpos_f64(((double)x[j] - m) * inv_t) > 0.0)
            return j;
    return 0; /* not reached: the max has weight 1 */
}

/* Draws nd tokens of a row (max m finite, no NaN, column maxima at the start of
 * work) by the dense path if it stands, and returns 1; 0 when the row must take the
 * full path. work: 2n doubles. */
static int SK_FN(sample_dense)(const SK_T *x, size_t n, double m, size_t W, uint64_t key, int64_t *idx,
                               double *logp, size_t nd, const sk_sample_opts *o, double *work, int nt)
{
    int use_p = o->top_p < 1.0;
    size_t nc = (n + SK_WEIGHT_CHUNK - 1) / SK_WEIGHT_CHUNK;
    size_t tw = SK_FN(columns_scratch)(W), cap = SK_FN(candidate_cap)(n, tw, 3 * nc);
    SK_T *cm = (SK_T *)work;
    uint32_t *vis = (uint32_t *)(cm + W);
    double *sums = work + tw, *cw = sums + 3 * nc, *ci = cw + cap, *scratch = ci + cap;
    SK_FN(chunk_masses)(x, n, m, o->inv_t, use_p, sums, nt);
    double z = 0.0, lv[2] = {0.0, 0.0};
    for (size_t c = 0; c < nc; c++) {
        z += sums[3 * c];
        lv[0] += sums[3 * c + 1];
        lv[1] += sums[3 * c + 2];
    }
    if (!use_p) { /* plain sampling: every weight kept */
        double lz = log(z);
        for (size_t d = 0; d < nd; d++) {
            size_t j = SK_FN(draw_dense)(x, n, m, o->inv_t, sums, sk_uniform(key, d) * z);
            idx[d] = (int64_t)j;
            logp[d] = log(sk_exp_nonpos_f64(((double)x[j] - m) * o->inv_t)) - lz;
        }
        return 1;
    }
    double target = o->top_p * z;
    double level = lv[0] >= target ? SK_LEVEL_0 : lv[1] >= target ? SK_LEVEL_1 : 0.0; /* the largest that reaches it */
    if (!(level > 0.0))
        return 0;
    double L = m + (log(level) - 0x1p-20) / o->inv_t;
    size_t nv = SK_FN(visit)(cm, W, L, vis);
    size_t c = SK_FN(candidates)(x, n, W, vis, nv, L, m, o->inv_t, cw, ci, cap);
    if (c == SIZE_MAX)
        return 0;
    memcpy(scratch, cw, c * sizeof *scratch);
    double vp = select_desc(scratch, c, target, 0);
    double wlm = sk_exp_nonpos_f64((SK_FN(below)(L) - m) * o->inv_t);
    if (!(vp > wlm * (1.0 + 0x1p-48)))
        return 0;
    double tau = vp > DBL_MIN ? vp : DBL_MIN;
    tau = o->min_p > tau ? o->min_p : tau;
    SK_FN(draw_candidates)(cw, ci, c, tau, kept_sum(cw, c, tau), key, idx, logp, nd, scratch);
    return 1;
}

static void SK_FN(sample_row)(const SK_T *x, uint64_t key, int64_t *idx, double *logp,
                              int64_t *status, size_t n, size_t nd,
                              const sk_sample_opts *o, double *work, int nt)
{
    double *w = work, *cand = work + n;
    int st = 0;
    int use_k = o->top_k > 0 && (size_t)o->top_k < n;
    int sparse = use_k || (o->top_p >= 1.0 && o->min_p > 0.0);
    int dense = !use_k && (o->top_p < 1.0 || (o->min_p == 0.0 && nd <= SK_DENSE_DRAWS));
    if (n >= SK_SPARSE_MIN && (sparse || dense)) {
        size_t W = sk_columns(n);
        double m;
        if (SK_FN(row_columns)(x, n, W, work, &m, nt)) {
            *status = 1;
            for (size_t d = 0; d < nd; d++) {
                idx[d] = -1;
                logp[d] = NAN;
            }
            return;
        }
        if (isfinite(m) && (sparse ? SK_FN(sample_sparse)(x, n, m, W, key, idx, logp, nd, o, work)
                                   : SK_FN(sample_dense)(x, n, m, W, key, idx, logp, nd, o, work, nt))) {
            *status = 0;
            return;
        }
    }
    double z = SK_FN(weights)(x, w, n, o->inv_t, &st, cand, nt);
    *status = st;
    if (st) {
        for (size_t d = 0; d < nd; d++) {
            idx[d] = -1;
            logp[d] = NAN;
        }
        return;
    }
    double tau;
    double zk = truncate_row(w, cand, n, z, o, &tau, NULL);
    size_t nb = block_sums(w, n, tau, cand, nt);
    double lz = log(zk);
    for (size_t d = 0; d < nd; d++) {
        size_t j = draw_one(w, n, tau, cand, nb, sk_uniform(key, d) * zk);
        idx[d] = (int64_t)j;
        logp[d] = log(w[j]) - lz;
    }
}

static void SK_FN(sample)(const SK_T *x, const uint64_t *keys, int key_mode, int64_t *idx,
                          double *logp, int64_t *status, size_t rows, size_t cols, size_t ndraws,
                          const sk_sample_opts *opts, double *work, int nthreads)
{
    if (sk_split_rows(rows, cols, nthreads)) {
        for (size_t i = 0; i < rows; i++)
            SK_FN(sample_row)(x + i * cols, sk_row_key(keys, i, key_mode), idx + i * ndraws,
                             logp + i * ndraws, status + i, cols, ndraws, opts, work, nthreads);
        return;
    }
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_FN(sample_row)(x + (size_t)i * cols, sk_row_key(keys, (size_t)i, key_mode), idx + (size_t)i * ndraws,
                                 logp + (size_t)i * ndraws, status + i, cols, ndraws, opts,
                                 work + (size_t)SK_THREAD_ID() * 2 * cols, 1));
}

static void SK_FN(probs_row)(const SK_T *x, double *probs, int64_t *status, size_t n,
                             const sk_sample_opts *o, double *work, int nt)
{
    double *w = work, *cand = work + n;
    int st = 0;
    double z = SK_FN(weights)(x, w, n, o->inv_t, &st, cand, nt);
    *status = st;
    if (st) {
        for (size_t j = 0; j < n; j++)
            probs[j] = st == 1 ? NAN : 0.0;
        return;
    }
    double tau;
    double zk = truncate_row(w, cand, n, z, o, &tau, NULL);
    for (size_t j = 0; j < n; j++)
        probs[j] = w[j] >= tau ? w[j] / zk : 0.0;
}

static void SK_FN(sample_probs)(const SK_T *x, double *probs, int64_t *status, size_t rows,
                                size_t cols, const sk_sample_opts *opts, double *work,
                                int nthreads)
{
    if (sk_split_rows(rows, cols, nthreads)) {
        for (size_t i = 0; i < rows; i++)
            SK_FN(probs_row)(x + i * cols, probs + i * cols, status + i, cols, opts, work, nthreads);
        return;
    }
    SK_FOR_ROWS(rows, cols, nthreads,
                SK_FN(probs_row)(x + (size_t)i * cols, probs + (size_t)i * cols, status + i,
                                cols, opts, work + (size_t)SK_THREAD_ID() * 2 * cols, 1));
}

#include "sk_dtype.h"
