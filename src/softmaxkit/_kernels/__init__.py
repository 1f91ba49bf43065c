"""The seam between Python and the C kernels: one typed function per kernel, keyword
arguments, and nothing else.

Everything above this module (validation, dtypes, axes, allocation, reductions) is
Python; everything below it is plain C over pointers and sizes. The functions here
take arrays that are already valid for the kernel: C-contiguous blocks of the
kernel's dtype (float32 or float64; softmax, log_softmax and integer-label
cross-entropy also take float16 and bfloat16, see :func:`_bits`), labels as int64,
per-row values as float64.
The extension modules re-check every buffer's type and size before a kernel runs,
so a wrong call is a Python exception, never an out-of-bounds access; but they do
not check values (labels in range, finite weights): the callers did.

``nthreads=None`` means :func:`softmaxkit.get_num_threads`.
"""
from __future__ import annotations

import numpy as np

from .. import _config
from . import _entmax as _entmax_ext
from . import _losses as _losses_ext
from . import _sampling as _sampling_ext
from . import _softmax as _softmax_ext

__all__ = [
    "softmax_rows",
    "log_softmax_rows",
    "logsumexp_rows",
    "softmax_backward_rows",
    "log_softmax_backward_rows",
    "sigmoid_backward_flat",
    "sigmoid_flat",
    "log_sigmoid_flat",
    "softplus_flat",
    "softplus_scaled_flat",
    "softplus_backward_flat",
    "log_sigmoid_backward_flat",
    "sigmoid_focal_flat",
    "sigmoid_focal_backward_flat",
    "multi_margin_rows",
    "multi_margin_backward_rows",
    "ce_hard_rows",
    "ce_hard_grad_lse_rows",
    "ce_soft_rows",
    "sample_rows",
    "sample_probs_rows",
    "sampling_uniform",
    "entmax_rows",
    "entmax_backward_rows",
]

def _bits(a: np.ndarray | None) -> np.ndarray | None:
    """What the C seam takes for an array: ml_dtypes' bfloat16 as a uint16 view of its
    bits (no copy; sk_pybuf.h reads uint16 as bfloat16), anything else as it is. A
    uint16 array given here is taken as bfloat16 bits already (softmaxkit.torch's
    tensors, which reach NumPy that way)."""
    if a is None or a.dtype.kind != "V" or a.dtype.itemsize != 2:
        return a
    return a.view(np.uint16)


def _half_work(x: np.ndarray, rows: int, cols: int, nt: int) -> np.ndarray | None:
    """The float32 scratch the 16-bit softmax and cross-entropy gradient keep each
    row's exps in (half_body.h): ``cols`` values per thread the call can use; None
    for other dtypes."""
    if x.dtype.itemsize != 2:
        return None
    return np.empty(max(1, min(nt, rows)) * cols, dtype=np.float32)


def _nt(nthreads: int | None) -> int:
    return _config.get_num_threads() if nthreads is None else int(nthreads)


# ------------------------------------------------------------------ softmax family
# x, out: (rows, cols) C-contiguous, same float dtype; out may not alias x.


def softmax_rows(x: np.ndarray, out: np.ndarray, *, inv_temperature: float = 1.0,
                 nthreads: int | None = None) -> None:
    """out = softmax(x * inv_temperature) per row. x, out may also be float16 or
    bfloat16 (or uint16 bfloat16 bits): computed in float32, rounded once."""
    rows, cols = x.shape
    nt = _nt(nthreads)
    _softmax_ext.softmax(_bits(x), _bits(out), rows, cols, inv_temperature, nt, _half_work(x, rows, cols, nt))


def log_softmax_rows(x: np.ndarray, out: np.ndarray, *, inv_temperature: float = 1.0,
                     nthreads: int | None = None) -> None:
    """out = log_softmax(x * inv_temperature) per row (16-bit as :func:`softmax_rows`)."""
    rows, cols = x.shape
    _softmax_ext.log_softmax(_bits(x), _bits(out), rows, cols, inv_temperature, _nt(nthreads))


def logsumexp_rows(x: np.ndarray, out: np.ndarray, *, nthreads: int | None = None) -> None:
    """out (rows,) = logsumexp of each row of x (rows, cols)."""
    rows, cols = x.shape
    _softmax_ext.logsumexp(x, out, rows, cols, _nt(nthreads))


def softmax_backward_rows(p: np.ndarray, g: np.ndarray, out: np.ndarray, *,
                          nthreads: int | None = None) -> None:
    """out = p * (g - sum(p * g)) per row; p, g, out (rows, cols)."""
    rows, cols = p.shape
    _softmax_ext.softmax_backward(p, g, out, rows, cols, _nt(nthreads))


def log_softmax_backward_rows(lp: np.ndarray, g: np.ndarray, out: np.ndarray, *,
                              nthreads: int | None = None) -> None:
    """out = g - exp(lp) * sum(g) per row; lp, g, out (rows, cols)."""
    rows, cols = lp.shape
    _softmax_ext.log_softmax_backward(lp, g, out, rows, cols, _nt(nthreads))


# ------------------------------------------------------------------ elementwise
# x, out: flat (n,) C-contiguous, same float dtype.


def sigmoid_flat(x: np.ndarray, out: np.ndarray, *, nthreads: int | None = None) -> None:
    """out = 1 / (1 + exp(-x))."""
    _softmax_ext.sigmoid(x, out, x.size, _nt(nthreads))


def log_sigmoid_flat(x: np.ndarray, out: np.ndarray, *, nthreads: int | None = None) -> None:
    """out = -softplus(-x)."""
    _softmax_ext.log_sigmoid(x, out, x.size, _nt(nthreads))


def softplus_flat(x: np.ndarray, out: np.ndarray, *, nthreads: int | None = None) -> None:
    """out = log(1 + exp(x)) = max(x, 0) + log1p(exp(-abs(x)))."""
    _softmax_ext.softplus(x, out, x.size, _nt(nthreads))


def softplus_scaled_flat(x: np.ndarray, out: np.ndarray, *, beta: float, threshold: float,
                         nthreads: int | None = None) -> None:
    """out = log(1 + exp(beta x)) / beta, and x where beta x > threshold (inf: never)."""
    _softmax_ext.softplus_scaled(x, out, x.size, beta, threshold, _nt(nthreads))


def softplus_backward_flat(x: np.ndarray, g: np.ndarray, out: np.ndarray, *, beta: float = 1.0,
                           threshold: float = float("inf"), nthreads: int | None = None) -> None:
    """out = g * sigmoid(beta x), and g where beta x > threshold; x, g, out flat (n,)."""
    _softmax_ext.softplus_backward(x, g, out, x.size, beta, threshold, _nt(nthreads))


def log_sigmoid_backward_flat(x: np.ndarray, g: np.ndarray, out: np.ndarray, *,
                              nthreads: int | None = None) -> None:
    """out = g * sigmoid(-x); x, g, out flat (n,)."""
    _softmax_ext.log_sigmoid_backward(x, g, out, x.size, _nt(nthreads))


def sigmoid_focal_flat(x: np.ndarray, t: np.ndarray, out: np.ndarray, *, alpha: float, gamma: float,
                       nthreads: int | None = None) -> None:
    """out = torchvision's sigmoid focal loss per element (alpha < 0: no weighting)."""
    _softmax_ext.sigmoid_focal(x, t, out, x.size, alpha, gamma, _nt(nthreads))


def sigmoid_focal_backward_flat(x: np.ndarray, t: np.ndarray, g: np.ndarray, out: np.ndarray, *,
                                alpha: float, gamma: float, nthreads: int | None = None) -> None:
    """out = g * d(sigmoid focal loss)/dx per element; x, t, g, out flat (n,)."""
    _softmax_ext.sigmoid_focal_backward(x, t, g, out, x.size, alpha, gamma, _nt(nthreads))


def multi_margin_rows(x: np.ndarray, target: np.ndarray, *, margin: float, p: int,
                      nthreads: int | None = None) -> np.ndarray:
    """Unweighted per-row multi-class hinge of x (rows, C), float64 (rows,); target
    (rows,) int64 in [0, C) (another label gives a NaN row); p 1 or 2."""
    rows, cols = x.shape
    loss = np.empty(rows, dtype=np.float64)
    _softmax_ext.multi_margin(x, target, loss, rows, cols, margin, p, _nt(nthreads))
    return loss


def multi_margin_backward_rows(x: np.ndarray, target: np.ndarray, g: np.ndarray, *, margin: float, p: int,
                               nthreads: int | None = None) -> np.ndarray:
    """g[i] * d multi_margin_rows[i] / dx, (rows, C) in x's dtype; g (rows,) float64."""
    rows, cols = x.shape
    out = np.empty_like(x)
    _softmax_ext.multi_margin_backward(x, target, g, out, rows, cols, margin, p, _nt(nthreads))
    return out


def sigmoid_backward_flat(s: np.ndarray, g: np.ndarray, out: np.ndarray, *,
                          nthreads: int | None = None) -> None:
    """out = g * s * (1 - s); s, g, out flat (n,)."""
    _softmax_ext.sigmoid_backward(s, g, out, s.size, _nt(nthreads))


# ------------------------------------------------------------------ cross-entropy


def _dloss_args(dloss: float | np.ndarray | None) -> tuple[np.ndarray | None, float]:
    """(per-row array or None, the one factor) for the C entry points."""
    if dloss is None:
        return None, 0.0
    if isinstance(dloss, np.ndarray) and dloss.ndim == 1:
        return np.ascontiguousarray(dloss, dtype=np.float64), 1.0
    return None, float(dloss)


def ce_hard_rows(logits: np.ndarray, target: np.ndarray, *, weight: np.ndarray | None = None,
                 ignore_index: int | None = None, label_smoothing: float = 0.0,
                 dloss: float | np.ndarray | None = None, grad_out: np.ndarray | None = None,
                 nthreads: int | None = None, lse_out: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Integer-label cross-entropy of a (rows, C) block on the fused C kernel.

    logits: (rows, C) float32/float64, or 16-bit (float16, bfloat16 or its uint16
    bits: computed in float32, the gradient rounded once; weight then float32);
    target: (rows,) int64, each in [0, C) or equal to ignore_index (a label that is
    neither gives a NaN row; the kernel never reads out of bounds); weight: None or
    (C,) of logits' dtype.
    dloss: None for the forward alone, else the per-row upstream gradient (a float or
    a float64 (rows,) array; see softmaxkit._reduction.upstream). grad_out: None
    (allocate) or a (rows, C) array of logits' dtype; it MAY BE `logits` itself (the
    kernel reads each row fully before overwriting it).

    Returns (loss (rows,) float64, row weight (rows,) float64, grad or None). The
    row loss is already multiplied by the row's class weight (weight[target], 0 for
    ignored rows: PyTorch's convention, label smoothing included); the row weight is
    weight[target] (0 for ignored rows), the terms of PyTorch's weighted mean.
    lse_out: None, or (16-bit logits) a float64 (rows,) array that receives each row's
    logsumexp (NaN or +inf for rows that took a non-finite path), for
    :func:`ce_hard_grad_lse_rows`.
    """
    rows, cols = logits.shape
    loss = np.empty(rows, dtype=np.float64)
    roww = np.empty(rows, dtype=np.float64)
    grad = None
    gs_arr, gs_c = _dloss_args(dloss)
    if dloss is not None:
        grad = np.empty_like(logits) if grad_out is None else grad_out
    has_ignore = ignore_index is not None
    nt = _nt(nthreads)
    work = None if grad is None else _half_work(logits, rows, cols, nt)
    _losses_ext.ce_hard(_bits(logits), target, weight, 0 if ignore_index is None else int(ignore_index),
                        has_ignore, float(label_smoothing), loss, roww, gs_arr, gs_c, _bits(grad),
                        rows, cols, nt, work, lse_out)
    return loss, roww, grad


def ce_hard_grad_lse_rows(logits: np.ndarray, target: np.ndarray, lse: np.ndarray, *,
                          weight: np.ndarray | None = None, ignore_index: int | None = None,
                          label_smoothing: float = 0.0, dloss: float | np.ndarray = 1.0,
                          grad_out: np.ndarray | None = None, nthreads: int | None = None) -> np.ndarray:
    """The gradient of :func:`ce_hard_rows` for 16-bit logits (float16, bfloat16 or its
    uint16 bits) from the forward's per-row logsumexp ``lse`` (its ``lse_out``): one
    pass per row (rows whose lse is not finite are recomputed in full). weight: None
    or float32 (C,); dloss as in :func:`ce_hard_rows`; grad_out: None (allocate) or a
    (rows, C) array of logits' dtype, not ``logits``. Returns the (rows, C) gradient
    in logits' dtype."""
    rows, cols = logits.shape
    gs_arr, gs_c = _dloss_args(dloss)
    grad = np.empty_like(logits) if grad_out is None else grad_out
    _losses_ext.ce_hard_grad_lse(_bits(logits), target, weight, 0 if ignore_index is None else int(ignore_index),
                                 ignore_index is not None, float(label_smoothing),
                                 np.ascontiguousarray(lse, dtype=np.float64), gs_arr, gs_c, _bits(grad),
                                 rows, cols, _nt(nthreads))
    return grad


def ce_soft_rows(logits: np.ndarray, q: np.ndarray, *, weight: np.ndarray | None = None,
                 label_smoothing: float = 0.0, dloss: float | np.ndarray | None = None,
                 nthreads: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Soft-label cross-entropy of a (rows, C) block: q (rows, C) class probabilities
    of logits' dtype. Returns (loss (rows,) float64, grad or None); dloss as in
    :func:`ce_hard_rows`."""
    rows, cols = logits.shape
    loss = np.empty(rows, dtype=np.float64)
    gs_arr, gs_c = _dloss_args(dloss)
    grad = None if dloss is None else np.empty_like(logits)
    _losses_ext.ce_soft(logits, q, weight, float(label_smoothing), loss, gs_arr, gs_c, grad,
                        rows, cols, _nt(nthreads))
    return loss, grad


# ------------------------------------------------------------------ sampling
# x: (rows, V) C-contiguous float32/float64; the kernel computes in float64.

# How the kernel derives row i's key from `keys` (sampling.h's SK_KEYS_*).
KEYS_GIVEN, KEYS_SEED, KEYS_ROW_SEEDS = 0, 1, 2


def _sampling_workspace(rows: int, cols: int, nthreads: int | None) -> tuple[np.ndarray, int]:
    """(2 * V doubles for each thread that can hold a row at once, the thread count).
    With fewer rows than threads a long row is split over all of them."""
    nt = _nt(nthreads)
    slots = max(1, min(nt, rows))
    return np.empty(2 * slots * cols, dtype=np.float64), nt


def sample_rows(x: np.ndarray, keys: np.ndarray, key_mode: int, ndraws: int, *, inv_temperature: float,
                top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0, nthreads: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ndraws tokens per row after temperature / top-k / top-p / min-p (sampling.h).

    keys: uint64, 1 (KEYS_SEED) or rows values; top_k 0, top_p 1 and min_p 0 are
    off. Returns (idx (rows, ndraws) int64, logp (rows, ndraws) float64, status
    (rows,) int64: 0 drawn, 1 NaN in the row, 2 nothing to draw).
    """
    rows, cols = x.shape
    idx = np.empty((rows, ndraws), dtype=np.int64)
    logp = np.empty((rows, ndraws), dtype=np.float64)
    status = np.empty(rows, dtype=np.int64)
    work, nt = _sampling_workspace(rows, cols, nthreads)
    _sampling_ext.sample(x, keys.view(np.int64), key_mode, idx, logp, status, rows, cols, ndraws,
                         inv_temperature, top_k, top_p, min_p, work, nt)
    return idx, logp, status


def sample_probs_rows(x: np.ndarray, *, inv_temperature: float, top_k: int = 0, top_p: float = 1.0,
                      min_p: float = 0.0, nthreads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The processed distribution of each row: (probs (rows, V) float64, status (rows,))."""
    rows, cols = x.shape
    probs = np.empty((rows, cols), dtype=np.float64)
    status = np.empty(rows, dtype=np.int64)
    work, nt = _sampling_workspace(rows, cols, nthreads)
    _sampling_ext.sample_probs(x, probs, status, rows, cols, inv_temperature, top_k, top_p, min_p, work, nt)
    return probs, status


def sampling_uniform(key: int, counter: int) -> float:
    """The kernels' counter-based uniform for (key, counter), for tests and twins."""
    return _sampling_ext.uniform(key, counter)


# ------------------------------------------------------------------ entmax
# x, y, g, out: (rows, cols) C-contiguous, same float dtype; alpha > 1.


def entmax_rows(x: np.ndarray, out: np.ndarray, *, alpha: float, nthreads: int | None = None) -> None:
    """out = alpha-entmax(x) per row (entmax.h)."""
    rows, cols = x.shape
    _entmax_ext.entmax(x, out, rows, cols, alpha, _nt(nthreads))


def entmax_backward_rows(y: np.ndarray, g: np.ndarray, out: np.ndarray, *, alpha: float,
                         nthreads: int | None = None) -> None:
    """out = s * (g - sum(s g) / sum(s)), s = y^(2 - alpha) on the support, per row."""
    rows, cols = y.shape
    _entmax_ext.entmax_backward(y, g, out, rows, cols, alpha, _nt(nthreads))
