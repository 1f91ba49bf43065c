/*
 * elementwise_body.h: softplus, log_sigmoid, torchvision's sigmoid focal loss and
 * their backward passes, written
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
        dx[j] = g[j] * (at * ((s - tj) * mg - dm));
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
