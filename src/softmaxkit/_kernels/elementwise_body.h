/*
 * elementwise_body.h: softplus, log_sigmoid, torchvision's sigmoid focal loss, the
 * multi-class hinge (a rows kernel, torch's multi_margin_loss) and their backward
 * passes, written
 * once, included by softmax.c per dtype (SK_DTYPE 64 and 32: see sk_dtype.h) and so
 * compiled per SIMD variant. T below is SK_T.
 *
 * All of them are one vector loop over a block: sk_exp and sk_log1p_unit
 * (sk_common.h) are branch-free inline code the vectoriser turns into SIMD, where
 * libm's exp and log1p were a scalar call per element (8+ ns). Both functions are
 * written around u = exp(-|z|), which is in (0, 1] and never overflows:
 *
 *     softplus(z)    = max(z, 0) + log1p(u)
 *     log_sigmoid(z) = min(z, 0) - log1p(u)
 *
 * so log1p only ever sees [0, 1]. Where z < 0 the result is log1p(u) itself, with
 * u's relative accuracy (down to the subnormals: sk_exp is exact there and
 * log1p(u) returns u); where z > 0 it is z plus a positive term below ln 2.
 * Ends: softplus(-inf) = 0, softplus(+inf) = +inf, log_sigmoid(-inf) = -inf,
 * log_sigmoid(+inf) = 0 (u = 0); NaN stays NaN (every select passes it on).
 */
#include "sk_dtype.h"

/* Runs STMT (which sees the block's offset o_ and length len_) over n values in
 * blocks of SK_ELEM_BLOCK (softmax.c), threads over blocks. */
#ifndef SK_EW_BLOCKS
#define SK_EW_BLOCKS(n, nthreads, STMT)                                                  \
    do {                                                                                 \
        size_t nblocks_ = ((n) + SK_ELEM_BLOCK - 1) / SK_ELEM_BLOCK;                     \
        int nt_ = sk_threads_for(nblocks_, SK_ELEM_BLOCK, (nthreads));                   \
        (void)nt_;                                                                       \
        _Pragma("omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)")       \
        for (ptrdiff_t b_ = 0; b_ < (ptrdiff_t)nblocks_; b_++) {                         \
            size_t o_ = (size_t)b_ * SK_ELEM_BLOCK;                                      \
            size_t len_ = (n) - o_ < SK_ELEM_BLOCK ? (n) - o_ : SK_ELEM_BLOCK;           \
            STMT;                                                                        \
        }                                                                                \
    } while (0)
#endif

/* log(1 + exp(-|z|)), the shared tail. */
SK_INLINE SK_T SK_FN(log1p_exp_neg_abs)(SK_T z)
{
    SK_T a = z < 0 ? -z : z; /* NaN: stays NaN */
    return SK_FN(sk_log1p_unit)(SK_FN(sk_exp)(-a));
}

/* PyTorch's softplus: log(1 + exp(beta x)) / beta, and x where beta x > threshold
 * (threshold = +inf: never). `scaled` is a constant at each call: 0 for beta == 1
 * (no multiply, no divide), so each is its own vector loop. The product beta x is
 * rounded to T, as PyTorch does.  IN x (n), OUT y (n); y may alias x */
SK_INLINE void SK_FN(softplus_block_)(const SK_T *x, SK_T *y, size_t n, SK_T beta, SK_T threshold,
                                      int scaled)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++) {
        SK_T xj = x[j];
        SK_T bx = scaled ? xj * beta : xj;
        SK_T sp = (bx > 0 ? bx : 0) + SK_FN(log1p_exp_neg_abs)(bx);
        sp = scaled ? sp / beta : sp;
        y[j] = bx > threshold ? xj : sp;
    }
}

static void SK_FN(softplus_block)(const SK_T *x, SK_T *y, size_t n, SK_T beta, SK_T threshold)
{
    if (beta == 1)
        SK_FN(softplus_block_)(x, y, n, 1, threshold, 0);
    else
        SK_FN(softplus_block_)(x, y, n, beta, threshold, 1);
}

/* log sigmoid(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)).
 * IN x (n), OUT y (n); y may alias x */
static void SK_FN(log_sigmoid_block)(const SK_T *x, SK_T *y, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++) {
        SK_T xj = x[j];
        y[j] = (xj < 0 ? xj : 0) - SK_FN(log1p_exp_neg_abs)(xj);
    }
}

/* sigmoid(z) from u = exp(-|z|): 1 / (1 + u) for z >= 0, u / (1 + u) below, so the
 * subnormal values far left are kept (1 / (1 + exp(-z)) gives 0 there once exp
 * overflows). NaN stays NaN. */
SK_INLINE SK_T SK_FN(sigmoid_of)(SK_T z)
{
    SK_T a = z < 0 ? -z : z;
    SK_T u = SK_FN(sk_exp)(-a);
    return (z >= 0 ? 1 : u) / (1 + u);
}

/* d/dx softplus = sigmoid(beta x), and 1 where beta x > threshold (PyTorch's
 * softplus_backward): dx = g * that.  IN x (n), IN g (n), OUT dx (n); dx may alias g */
static void SK_FN(softplus_backward_block)(const SK_T *x, const SK_T *g, SK_T *dx, size_t n, SK_T beta,
                                           SK_T threshold)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++) {
        SK_T bx = x[j] * beta;
        dx[j] = bx > threshold ? g[j] : g[j] * SK_FN(sigmoid_of)(bx);
    }
}

/* d/dx log_sigmoid = sigmoid(-x): dx = g * sigmoid(-x).
 * IN x (n), IN g (n), OUT dx (n); dx may alias g */
static void SK_FN(log_sigmoid_backward_block)(const SK_T *x, const SK_T *g, SK_T *dx, size_t n)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++)
        dx[j] = g[j] * SK_FN(sigmoid_of)(-x[j]);
}

/* --------------------------------------------------------- sigmoid focal loss */

/* torchvision's sigmoid_focal_loss per element, from one u = exp(-|x|):
 *     ce = -t log s(x) - (1 - t) log s(-x)     (s the sigmoid; both logs as above)
 *     m  = 1 - p_t = t s(-x) + (1 - t) s(x)
 *     loss = a_t ce m^gamma,  a_t = alpha t + (1 - alpha)(1 - t)  (alpha < 0: 1)
 *     d loss / dx = a_t [(s - t) m^gamma - gamma ce m^(gamma - 1) (2t - 1) s(x) s(-x)]
 * (the second term 0 where m = 0, and for gamma = 0). s(+-x) are formed from u, so
 * neither 1 - p_t nor ce cancels at large |x|. `mode` is a constant at each call:
 * 0, 1, 2 for gamma 0, 1, 2 (vector loops, m^gamma by multiplication), 3 for any
 * other gamma (libm's pow per element: a scalar loop). */
SK_INLINE void SK_FN(focal_terms)(SK_T xj, SK_T tj, SK_T *ce, SK_T *m, SK_T *s, SK_T *sn)
{
    SK_T a = xj < 0 ? -xj : xj;
    SK_T u = SK_FN(sk_exp)(-a);
    SK_T l = SK_FN(sk_log1p_unit)(u);
    SK_T ls_pos = (xj < 0 ? xj : 0) - l;  /* log s(x) */
    SK_T ls_neg = (xj > 0 ? -xj : 0) - l; /* log s(-x) */
    SK_T inv = 1 / (1 + u);
    *s = (xj >= 0 ? 1 : u) * inv;
    *sn = (xj >= 0 ? u : 1) * inv;
    *ce = -tj * ls_pos - (1 - tj) * ls_neg;
    *m = tj * *sn + (1 - tj) * *s;
}

SK_INLINE SK_T SK_FN(focal_pow)(SK_T m, SK_T gamma, int mode)
{
    return mode == 0 ? 1 : mode == 1 ? m : mode == 2 ? m * m : (SK_T)pow((double)m, (double)gamma);
}

/* IN x (n), IN t (n), OUT loss (n) */
SK_INLINE void SK_FN(sigmoid_focal_block_)(const SK_T *x, const SK_T *t, SK_T *loss, size_t n, SK_T alpha,
                                           SK_T gamma, int mode)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++) {
        SK_T ce, m, s, sn, tj = t[j];
        SK_FN(focal_terms)(x[j], tj, &ce, &m, &s, &sn);
        SK_T at = alpha >= 0 ? alpha * tj + (1 - alpha) * (1 - tj) : 1;
        loss[j] = at * ce * SK_FN(focal_pow)(m, gamma, mode);
    }
}

/* IN x (n), IN t (n), IN g (n), OUT dx (n); dx may alias g */
SK_INLINE void SK_FN(sigmoid_focal_backward_block_)(const SK_T *x, const SK_T *t, const SK_T *g, SK_T *dx,
                                                    size_t n, SK_T alpha, SK_T gamma, int mode)
{
    SK_SIMD
    for (size_t j = 0; j < n; j++) {
        SK_T ce, m, s, sn, tj = t[j];
        SK_FN(focal_terms)(x[j], tj, &ce, &m, &s, &sn);
        SK_T at = alpha >= 0 ? alpha * tj + (1 - alpha) * (1 - tj) : 1;
        SK_T mg = SK_FN(focal_pow)(m, gamma, mode);
        /* m^(gamma - 1) where m > 0: 1 (gamma 1), m (gamma 2), pow otherwise */
        SK_T mg1 = mode == 1 ? 1 : mode == 2 ? m : mode == 3 ? (SK_T)pow((double)m, (double)gamma - 1.0) : 0;
        SK_T dm = mode != 0 && m > 0 ? gamma * ce * mg1 * (2 * tj - 1) * s * sn : 0;
        /* s - t as (1 - t) s - t s(-x): no cancellation for hard labels (t = 1: -s(-x)) */
        dx[j] = g[j] * (at * (((1 - tj) * s - tj * sn) * mg - dm));
    }
}

static int SK_FN(focal_mode)(SK_T gamma) { return gamma == 0 ? 0 : gamma == 1 ? 1 : gamma == 2 ? 2 : 3; }

static void SK_FN(sigmoid_focal_block)(const SK_T *x, const SK_T *t, SK_T *loss, size_t n, SK_T alpha, SK_T gamma)
{
    switch (SK_FN(focal_mode)(gamma)) {
    case 0: SK_FN(sigmoid_focal_block_)(x, t, loss, n, alpha, gamma, 0); break;
    case 1: SK_FN(sigmoid_focal_block_)(x, t, loss, n, alpha, gamma, 1); break;
    case 2: SK_FN(sigmoid_focal_block_)(x, t, loss, n, alpha, gamma, 2); break;
    default: SK_FN(sigmoid_focal_block_)(x, t, loss, n, alpha, gamma, 3); break;
    }
}

static void SK_FN(sigmoid_focal_backward_block)(const SK_T *x, const SK_T *t, const SK_T *g, SK_T *dx, size_t n,
                                                SK_T alpha, SK_T gamma)
{
    switch (SK_FN(focal_mode)(gamma)) {
    case 0: SK_FN(sigmoid_focal_backward_block_)(x, t, g, dx, n, alpha, gamma, 0); break;
    case 1: SK_FN(sigmoid_focal_backward_block_)(x, t, g, dx, n, alpha, gamma, 1); break;
    case 2: SK_FN(sigmoid_focal_backward_block_)(x, t, g, dx, n, alpha, gamma, 2); break;
    default: SK_FN(sigmoid_focal_backward_block_)(x, t, g, dx, n, alpha, gamma, 3); break;
    }
}

/* IN x (n), IN t (n), OUT loss (n), IN alpha (<= 1; < 0: off), gamma (>= 0, finite) */
static void SK_FN(sigmoid_focal)(const SK_T *x, const SK_T *t, SK_T *loss, size_t n, SK_T alpha, SK_T gamma,
                                 int nthreads)
{
    SK_EW_BLOCKS(n, nthreads, SK_FN(sigmoid_focal_block)(x + o_, t + o_, loss + o_, len_, alpha, gamma));
}

/* IN x (n), IN t (n), IN g (n), OUT dx (n); dx may alias g */
static void SK_FN(sigmoid_focal_backward)(const SK_T *x, const SK_T *t, const SK_T *g, SK_T *dx, size_t n,
                                          SK_T alpha, SK_T gamma, int nthreads)
{
    SK_EW_BLOCKS(n, nthreads,
                 SK_FN(sigmoid_focal_backward_block)(x + o_, t + o_, g + o_, dx + o_, len_, alpha, gamma));
}

/* ------------------------------------------------------- multi-class hinge */

/* torch's multi_margin_loss per row, unweighted: with h_j = margin - x_y + x_j,
 *     loss = sum_{j != y} max(0, h_j)^p / C,       p in {1, 2}
 *     d loss / dx_j = p max(0, h_j)^(p-1) / C on active hinges (h_j > 0, j != y),
 *     d loss / dx_y = minus their sum
 * (0 at the kink h = 0, as torch). A NaN h makes the loss NaN (torch drops it); a
 * label outside [0, C) gives a NaN row (Python checked them: the kernel never reads
 * out of bounds). The sums are taken in T over blocks of SK_SUM_BLOCK, the block
 * sums in float64. `p2` is a constant at each call. */
SK_INLINE double SK_FN(multi_margin_row_)(const SK_T *x, int64_t y, size_t n, SK_T margin, int p2)
{
    double sum = 0.0;
    SK_T xy = x[y];
    for (size_t b = 0, end; b < n; b = end) {
        end = n - b < SK_SUM_BLOCK ? n : b + SK_SUM_BLOCK;
        SK_T acc = 0;
        SK_SIMD_REDUCE(+, acc)
        for (size_t j = b; j < end; j++) {
            SK_T h = margin - xy + x[j];
            h = h < 0 || j == (size_t)y ? 0 : h; /* NaN stays */
            acc += p2 ? h * h : h;
        }
        sum += (double)acc;
    }
    return sum / (double)n;
}

/* IN x (rows, cols), IN target (rows), OUT loss (rows), IN margin, p (1 or 2) */
static void SK_FN(multi_margin)(const SK_T *x, const int64_t *target, double *loss, size_t rows, size_t cols,
                                SK_T margin, int p, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, {
        int64_t y = target[i];
        const SK_T *xi = x + (size_t)i * cols;
        loss[i] = y < 0 || (size_t)y >= cols ? NAN
                  : p == 2 ? SK_FN(multi_margin_row_)(xi, y, cols, margin, 1)
                           : SK_FN(multi_margin_row_)(xi, y, cols, margin, 0);
    });
}

/* IN x (n), OUT dx (n): dx = g * d loss / dx for one row. */
SK_INLINE void SK_FN(multi_margin_backward_row_)(const SK_T *x, int64_t y, SK_T *dx, size_t n, SK_T margin,
                                                 double g, int p2)
{
    SK_T xy = x[y];
    SK_T scale = (SK_T)(g / (double)n) * (p2 ? 2 : 1);
    double total = 0.0;
    for (size_t b = 0, end; b < n; b = end) {
        end = n - b < SK_SUM_BLOCK ? n : b + SK_SUM_BLOCK;
        SK_T acc = 0;
        SK_SIMD_REDUCE(+, acc)
        for (size_t j = b; j < end; j++) {
            SK_T h = margin - xy + x[j];
            SK_T d = h > 0 && j != (size_t)y ? (p2 ? h * scale : scale) : 0;
            dx[j] = d;
            acc += d;
        }
        total += (double)acc;
    }
    dx[y] = (SK_T)-total;
}

/* IN x (rows, cols), IN target (rows), IN g (rows) float64, OUT dx (rows, cols) */
static void SK_FN(multi_margin_backward)(const SK_T *x, const int64_t *target, const double *g, SK_T *dx,
                                         size_t rows, size_t cols, SK_T margin, int p, int nthreads)
{
    SK_FOR_ROWS(rows, cols, nthreads, {
        int64_t y = target[i];
        const SK_T *xi = x + (size_t)i * cols;
        SK_T *di = dx + (size_t)i * cols;
        if (y < 0 || (size_t)y >= cols) {
            for (size_t j = 0; j < cols; j++)
                di[j] = NAN;
        } else if (p == 2) {
            SK_FN(multi_margin_backward_row_)(xi, y, di, cols, margin, g[i], 1);
        } else {
            SK_FN(multi_margin_backward_row_)(xi, y, di, cols, margin, g[i], 0);
        }
    });
}

/* IN x (n), OUT y (n); y may alias x */
static void SK_FN(log_sigmoid)(const SK_T *x, SK_T *y, size_t n, int nthreads)
{
    SK_EW_BLOCKS(n, nthreads, SK_FN(log_sigmoid_block)(x + o_, y + o_, len_));
}

/* softplus at beta 1 with no threshold (softmaxkit's own).  IN x (n), OUT y (n) */
static void SK_FN(softplus)(const SK_T *x, SK_T *y, size_t n, int nthreads)
{
    SK_EW_BLOCKS(n, nthreads, SK_FN(softplus_block)(x + o_, y + o_, len_, 1, INFINITY));
}

/* IN x (n), OUT y (n), IN beta (> 0, finite), threshold (+inf: none); y may alias x */
static void SK_FN(softplus_scaled)(const SK_T *x, SK_T *y, size_t n, SK_T beta, SK_T threshold, int nthreads)
{
    SK_EW_BLOCKS(n, nthreads, SK_FN(softplus_block)(x + o_, y + o_, len_, beta, threshold));
}

/* IN x (n), IN g (n), OUT dx (n), IN beta, threshold as softplus_scaled; dx may alias g */
static void SK_FN(softplus_backward)(const SK_T *x, const SK_T *g, SK_T *dx, size_t n, SK_T beta,
                                     SK_T threshold, int nthreads)
{
    SK_EW_BLOCKS(n, nthreads, SK_FN(softplus_backward_block)(x + o_, g + o_, dx + o_, len_, beta, threshold));
}

/* IN x (n), IN g (n), OUT dx (n); dx may alias g */
static void SK_FN(log_sigmoid_backward)(const SK_T *x, const SK_T *g, SK_T *dx, size_t n, int nthreads)
{
    SK_EW_BLOCKS(n, nthreads, SK_FN(log_sigmoid_backward_block)(x + o_, g + o_, dx + o_, len_));
}

#include "sk_dtype.h"
