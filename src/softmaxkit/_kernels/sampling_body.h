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

static void SK_FN(sample_row)(const SK_T *x, uint64_t key, int64_t *idx, double *logp,
                                       int64_t *status, size_t n, size_t nd,
                                       const sk_sample_opts *o, double *work, int nt)
{
    double *w = work, *cand = work + n;
    int st = 0;
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
    double zk = truncate_row(w, cand, n, z, o, &tau);
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
    double zk = truncate_row(w, cand, n, z, o, &tau);
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
