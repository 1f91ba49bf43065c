"""Cross-entropy and friends, each with its analytic gradient.

Conventions shared by every function here (see docs/losses.md):

* The class axis is ``axis=-1`` unless given (an int). Integer targets hold class
  indices and have the input's shape without the class axis; float targets (soft
  labels) have the input's shape.
* ``<loss>(...)`` returns the loss, ``<loss>_grad(...)`` the gradient of that loss
  with respect to the input (for ``reduction="none"``: of the sum of the per-row
  losses), and ``<loss>_and_grad(...)`` both from one pass. Losses are NumPy
  scalars (or arrays for "none") and gradients arrays of the input's shape, both in
  the input's float dtype (float16 computed in float32, ints as float64).
* Reductions: "none", "sum", "mean" with PyTorch's meanings. An empty or
  all-ignored batch has a NaN mean and a zero gradient.
* Inputs are never modified. Bad arguments raise ValueError (TypeError for a wrong
  kind of argument) naming the argument and the offending value.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import _config
from ._kernels import _losses as _ext
from ._softmax import log_softmax, softmax
from ._validation import Rows, as_float_array, check_out, check_real, normalize_axes

__all__ = [
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_and_grad",
    "nll_loss",
    "nll_loss_grad",
    "nll_loss_and_grad",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "binary_cross_entropy_and_grad",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_grad",
    "binary_cross_entropy_with_logits_and_grad",
    "kl_div",
    "kl_div_grad",
    "kl_div_and_grad",
    "entropy",
    "perplexity",
]

# from_logits=False clips probabilities to [PROB_FLOOR, 1] before the log, as Keras
# does (its epsilon 1e-7): a true-class probability of 0 costs -log(1e-7) = 16.12,
# and the gradient -1/p is at most 1e7, finite even in float32. (PyTorch's -100
# clamp of the log would allow p down to 3.7e-44, whose 1/p overflows float32.)
PROB_FLOOR = 1e-7

# PyTorch's binary_cross_entropy clamps each log at -100 and divides its gradient
# by max(p (1 - p), 1e-12); we keep both so the values and gradients equal torch's.
# (Its 1e-12 is a float32 constant, 9.99999996e-13: p = 0, y = 1 gives a gradient
# of -1.000000004e12 in float64.)
BCE_LOG_FLOOR = -100.0
BCE_GRAD_EPS = float(np.float32(1e-12))


# ------------------------------------------------------------------ validation


def _check_reduction(reduction: Any, allowed=("none", "sum", "mean")) -> str:
    if not isinstance(reduction, str):
        raise TypeError(f"reduction must be a string, one of {allowed}, got {reduction!r}")
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def _check_smoothing(label_smoothing: Any) -> float:
    eps = check_real(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:  # also rejects NaN
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return eps


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_ignore_index(ignore_index: Any) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    value = int(ignore_index)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"ignore_index must fit in int64, got {value}")
    return value


def _where_first(mask: np.ndarray) -> tuple[int, ...]:
    """The index (a tuple) of the first True of mask, in C order."""
    flat = int(np.flatnonzero(mask.reshape(-1))[0])
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def _fmt_pos(pos: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in pos) + "]"


def _real_array(value: Any, name: str) -> np.ndarray:
    """``value`` as an ndarray of real numbers (TypeError otherwise)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr


def _check_weights(value: Any, shape: tuple[int, ...], dtype: np.dtype, name: str,
                   broadcast: bool = False) -> np.ndarray:
    """Weights: real, finite, >= 0, of ``shape`` (or broadcastable to it), in ``dtype``."""
    arr = _real_array(value, name)
    if broadcast:
        try:
            fits = np.broadcast_shapes(arr.shape, shape) == tuple(shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name} with shape {arr.shape} does not broadcast to {tuple(shape)}")
    elif arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}, expected {tuple(shape)}")
    bad = ~np.isfinite(arr) | (arr < 0) if arr.dtype.kind == "f" else arr < 0
    if bad.any():
        pos = _where_first(bad)
        raise ValueError(
            f"{name} must be finite and >= 0, got {arr[pos].item()!r} at {name}{_fmt_pos(pos)}"
        )
    return np.ascontiguousarray(arr, dtype=dtype)


def _class_rows(input: Any, axis: Any, name: str = "input") -> tuple[Rows, np.dtype, int]:
    """The input as a (rows, C) block with the class axis last; (rows, result dtype, axis)."""
    arr, result_dtype = as_float_array(input, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class axis)")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an int, got {axis!r}")
    (ax,) = normalize_axes(int(axis), arr.ndim)
    return Rows(arr, (ax,)), result_dtype, ax


def _hard_target(target: np.ndarray, rows: Rows, ignore_index: int | None) -> np.ndarray:
    """Integer class indices as a flat int64 array, every one in [0, C) or ignored."""
    if target.shape != rows.batch_shape:
        raise ValueError(
            f"target has shape {target.shape}, expected {rows.batch_shape} (the input's "
            f"shape {rows.shape} without the class axis)"
        )
    n_classes = rows.cols
    big = target > np.iinfo(np.int64).max if target.dtype == np.uint64 else np.zeros(target.shape, bool)
    t = target.astype(np.int64)  # wraps only where `big`, which is bad anyway
    bad = big | (t < 0) | (t >= n_classes)
    if ignore_index is not None:
        bad &= ~((t == ignore_index) & ~big)
    if bad.any():
        pos = _where_first(bad)
        also = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(
            f"target{_fmt_pos(pos)} = {target[pos].item()} is not a class index in "
            f"[0, {n_classes}){also}"
        )
    return np.ascontiguousarray(t.reshape(-1))


def _soft_target(target: np.ndarray, rows: Rows, ax: int, dtype: np.dtype) -> np.ndarray:
    """Soft labels as a (rows, C) block in the class-last layout, finite."""
    if target.shape != rows.shape:
        raise ValueError(
            f"target of class probabilities has shape {target.shape}, expected the "
            f"input's shape {rows.shape}"
        )
    bad = ~np.isfinite(target)
    if bad.any():
        pos = _where_first(bad)
        raise ValueError(f"target must be finite, got {target[pos].item()!r} at target{_fmt_pos(pos)}")
    return Rows(target.astype(dtype, copy=False), (ax,)).block


def _check_probs(p: np.ndarray, name: str) -> None:
    """Probability rows (rows, C): finite, in [0, 1], each summing to 1 within
    sqrt(machine epsilon) of its dtype (3.5e-4 float32, 1.5e-8 float64)."""
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        i, j = _where_first(bad)
        raise ValueError(
            f"{name} holds probabilities (from_logits=False), but row {i}, class {j} is "
            f"{p[i, j].item()!r}: probabilities must be in [0, 1]"
        )
    if p.shape[1] == 0:
        return
    tol = float(np.sqrt(np.finfo(p.dtype).eps))
    sums = p.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1.0) > tol
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{name} holds probabilities (from_logits=False), but row {i} sums to "
            f"{float(sums[i])!r}, not 1 (tolerance {tol:.1e}); pass logits with from_logits=True"
        )


def _scalar(value: float, dtype: np.dtype):
    return np.dtype(dtype).type(value)


def _reduce_rows(per_row: np.ndarray, denom: float, reduction: str, rows: Rows | None,
                 result_dtype: np.dtype):
    """The reduced loss from per-row losses (float64) and the "mean" denominator."""
    if reduction == "none":
        out = per_row.astype(result_dtype)
        if rows is not None:
            out = out.reshape(rows.batch_shape)
        return out[()] if out.ndim == 0 else out
    total = float(per_row.sum())
    if reduction == "sum":
        return _scalar(total, result_dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _scalar(total / denom if denom != 0 else np.nan, result_dtype)


def _grad_scale(reduction: str, denom: float, sample_weight: np.ndarray | None):
    """(per-row array or None, constant) multipliers of the gradient."""
    c = 1.0
    if reduction == "mean":
        c = 1.0 / denom if denom != 0 else 0.0  # an empty mean's gradient is zeros
    if sample_weight is None:
        return None, c
    return np.ascontiguousarray(sample_weight * c, dtype=np.float64), 1.0


def _finish_grad(grad2d: np.ndarray, rows: Rows, result_dtype: np.dtype) -> np.ndarray:
    g = rows.restore(grad2d)
    return g.astype(result_dtype) if g.dtype != result_dtype else g


# ------------------------------------------------------------------ the kernel seam


def _ce_rows(logits, target, *, weight=None, ignore_index=None, label_smoothing=0.0,
             grad_scale=None, grad_out=None, nthreads=None):
    """Integer-label cross-entropy of a (rows, C) block on the fused C kernel.

    logits: C-contiguous (rows, C) float32/float64; target: (rows,) int64, already
    validated to be in [0, C) or == ignore_index (labels that are neither give a NaN
    loss and a NaN gradient row; the kernel never reads out of bounds).
    weight: None or (C,) array of logits' dtype. grad_scale: None (no gradient) or a
    float or a (rows,) float64 array of per-row multipliers for the gradient.
    grad_out: None (allocate) or a C-contiguous array of logits' shape and dtype; it
    MAY BE `logits` itself (in-place: the kernel reads each row fully before
    overwriting it).
    Returns (per_row_loss float64 (rows,), per_row_weight float64 (rows,), grad or
    None). per_row_loss is already multiplied by the row's weight (weight[target], 0
    for ignored rows, PyTorch's convention incl. label smoothing); per_row_weight is
    weight[target] (0 for ignored rows) so the caller can form PyTorch's weighted mean.
    """
    rows, cols = logits.shape
    loss = np.empty(rows, dtype=np.float64)
    roww = np.empty(rows, dtype=np.float64)
    gscale_arr, gscale_c = None, 0.0
    grad = None
    if grad_scale is not None:
        if np.ndim(grad_scale) == 0:
            gscale_c = float(grad_scale)
        else:
            gscale_arr = np.ascontiguousarray(grad_scale, dtype=np.float64)
        grad = np.empty_like(logits) if grad_out is None else grad_out
    nt = _config.get_num_threads() if nthreads is None else int(nthreads)
    has_ignore = ignore_index is not None
    _ext.ce_hard(logits, target, weight, int(ignore_index) if has_ignore else 0, has_ignore,
                 float(label_smoothing), loss, roww, gscale_arr, gscale_c, grad, rows, cols, nt)
    return loss, roww, grad


def _ce_soft_rows(logits, q, *, weight=None, label_smoothing=0.0, grad_scale=None, nthreads=None):
    """Soft-label cross-entropy of a (rows, C) block: (per_row_loss float64, grad or None)."""
    rows, cols = logits.shape
    loss = np.empty(rows, dtype=np.float64)
    gscale_arr, gscale_c, grad = None, 0.0, None
    if grad_scale is not None:
        if np.ndim(grad_scale) == 0:
            gscale_c = float(grad_scale)
        else:
            gscale_arr = np.ascontiguousarray(grad_scale, dtype=np.float64)
        grad = np.empty_like(logits)
    nt = _config.get_num_threads() if nthreads is None else int(nthreads)
    _ext.ce_soft(logits, q, weight, float(label_smoothing), loss, gscale_arr, gscale_c, grad,
                 rows, cols, nt)
    return loss, grad


def _ce_probs_rows(p, t_hard, q, weight, ignore_index, eps, want_grad):
    """Cross-entropy from probabilities (from_logits=False), NumPy, float64.

    -log p is taken as -log(max(p, PROB_FLOOR)); its derivative is -1/p above the
    floor and 0 below it (the clip is flat there, as in Keras)."""
    pd = p.astype(np.float64)
    rows, cols = pd.shape
    w = np.ones(cols) if weight is None else weight.astype(np.float64)
    cs = eps / cols if cols else 0.0
    clipped = np.maximum(pd, PROB_FLOOR)
    nlp = -np.log(clipped)
    if q is not None:  # soft labels: v = w q'
        v = (q.astype(np.float64) * (1.0 - eps) + cs) * w
        roww = np.ones(rows)
    else:
        live = np.ones(rows, bool) if ignore_index is None else t_hard != ignore_index
        tt = np.where(live, t_hard, 0)
        roww = np.where(live, w[tt] if cols else 0.0, 0.0)
        v = np.zeros((rows, cols))
        if cols:
            v[live] = cs * w
            v[np.flatnonzero(live), tt[live]] += (1.0 - eps) * roww[live]
    loss = (v * nlp).sum(axis=1)
    dldp = np.where(pd >= PROB_FLOOR, -v / clipped, 0.0) if want_grad else None
    return loss, roww, dldp


def _cross_entropy(input, target, axis, from_logits, weight, sample_weight, ignore_index,
                   label_smoothing, reduction, want_grad, out=None):
    rows, result_dtype, ax = _class_rows(input, axis)
    dtype = rows.block.dtype
    if out is not None:
        check_out(out, rows.shape, result_dtype)
    from_logits = _check_bool(from_logits, "from_logits")
    reduction = _check_reduction(reduction)
    eps = _check_smoothing(label_smoothing)
    ignore_index = _check_ignore_index(ignore_index)
    tgt = _real_array(target, "target")
    if tgt.dtype.kind == "b":
        raise TypeError("target must hold integer class indices or float class probabilities, got dtype bool")
    soft = tgt.dtype.kind == "f"
    if soft and ignore_index is not None:
        raise ValueError("ignore_index applies to integer class indices, not to a target of class probabilities")
    w = None if weight is None else _check_weights(weight, (rows.cols,), dtype, "weight")
    sw = None
    if sample_weight is not None:
        sw = _check_weights(sample_weight, rows.batch_shape, np.float64, "sample_weight", broadcast=True)
        sw = np.ascontiguousarray(np.broadcast_to(sw, rows.batch_shape)).reshape(-1)
    t = q = None
    if soft:
        q = _soft_target(tgt, rows, ax, dtype)
        roww_pre = np.ones(rows.rows)
    else:
        t = _hard_target(tgt, rows, ignore_index)
        live = np.ones(rows.rows, bool) if ignore_index is None else t != ignore_index
        roww_pre = np.zeros(rows.rows)
        if w is None:
            roww_pre[live] = 1.0
        else:
            roww_pre[live] = w[t[live]]
    if not from_logits:
        _check_probs(rows.block, "input")
    denom = float((roww_pre if sw is None else roww_pre * sw).sum())
    gscale_arr, gscale_c = _grad_scale(reduction, denom, sw) if want_grad else (None, None)
    gscale = gscale_arr if gscale_arr is not None else gscale_c

    if not from_logits:
        per_row, _, dldp = _ce_probs_rows(rows.block, t, q, w, ignore_index, eps, want_grad)
        grad2d = None
        if want_grad:
            g = gscale_arr if gscale_arr is not None else np.full(rows.rows, gscale_c)
            grad2d = (dldp * g[:, None]).astype(dtype)
    elif soft:
        per_row, grad2d = _ce_soft_rows(rows.block, q, weight=w, label_smoothing=eps,
                                        grad_scale=gscale if want_grad else None)
    else:
        # out= in the kernel's layout takes the gradient directly (no allocation, no
        # copy); the kernel reads each row before writing it, so out may be the input.
        direct = (want_grad and out is not None and rows.identity and out.dtype == dtype
                  and out.flags.c_contiguous)
        per_row, _, grad2d = _ce_rows(rows.block, t, weight=w, ignore_index=ignore_index,
                                      label_smoothing=eps, grad_scale=gscale if want_grad else None,
                                      grad_out=out.reshape(rows.rows, rows.cols) if direct else None)
        if direct:
            grad2d = None
    if sw is not None:
        per_row = per_row * sw
    loss = _reduce_rows(per_row, denom, reduction, rows, result_dtype)
    if not want_grad:
        return loss, None
    if out is not None:
        if grad2d is not None:
            np.copyto(out, _finish_grad(grad2d, rows, result_dtype), casting="unsafe")
        return loss, out
    return loss, _finish_grad(grad2d, rows, result_dtype)


_CE_DOC_PARAMS = """
    Parameters
    ----------
    input : array_like
        Logits (``from_logits=True``) or probabilities, with the class axis ``axis``.
    target : array_like
        Integer class indices with ``input``'s shape without the class axis, or float
        class probabilities (soft or one-hot labels) with ``input``'s shape.
    axis : int, default -1
        The class axis.
    from_logits : bool, default True
        False: ``input`` holds probabilities (Keras' meaning). Each must be in [0, 1]
        and each row must sum to 1 within ``sqrt(eps)`` of the dtype (else
        ValueError: nothing is renormalised). ``log p`` is taken as
        ``log(max(p, 1e-7))`` as in Keras, so ``p = 0`` costs 16.12, not inf.
    weight : array_like, optional
        Per-class weights, length C, finite and >= 0.
    sample_weight : array_like, optional
        Per-row weights (broadcast to the batch shape), finite and >= 0; each row's
        loss is multiplied by its sample weight.
    ignore_index : int, optional
        Rows whose label equals it count for nothing (integer targets only).
    label_smoothing : float in [0, 1], default 0
        PyTorch's: the target becomes ``(1 - eps) onehot + eps / C``.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": per-row losses (the batch shape). "mean" with integer targets
        divides by the summed weights ``sum_i sample_weight_i * weight[y_i]`` of the
        rows counted (PyTorch's weighted mean); with soft targets by
        ``sum_i sample_weight_i`` (the number of rows without sample weights).
"""


def _with_params(func):
    """Put the shared parameter list into a docstring's ``{params}`` slot."""
    func.__doc__ = func.__doc__.replace("    {params}\n", "\n" + _CE_DOC_PARAMS.lstrip("\n") + "\n")
    return func


@_with_params
def cross_entropy(input, target, *, axis=-1, from_logits=True, weight=None, sample_weight=None,
                  ignore_index=None, label_smoothing=0.0, reduction="mean"):
    r"""Cross-entropy between the softmax of logits and labels.

    For a row with logits ``z``, class weights ``w``, smoothing ``eps`` and label y:
    ``loss = (1 - eps) w[y] (lse(z) - z[y]) + eps / C sum_c w[c] (lse(z) - z[c])``,
    computed as ``logsumexp(z) - z[y]`` (never ``-log(softmax(z)[y])``, which
    overflows to inf). For class probabilities q: ``-sum_c w[c] q'[c] log_softmax(z)[c]``
    with ``q' = (1 - eps) q + eps / C``. With ``weight``, ``ignore_index``,
    ``label_smoothing`` and ``reduction`` as in ``torch.nn.functional.cross_entropy``
    (class axis last instead of dim 1), the result equals PyTorch's.
    {params}
    Returns
    -------
    loss : scalar, or ndarray of the batch shape for ``reduction="none"``

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> float(smk.cross_entropy(np.log([0.34, 0.46, 0.20]), 0))  # -log 0.34
    1.0788096613719298

    Stable where the naive form is not: in float32, ``softmax([0, 120])[0]`` is 0,
    so ``-log`` of it is inf, but the loss is 120:

    >>> z = np.array([0.0, 120.0], dtype=np.float32)
    >>> with np.errstate(divide="ignore"):
    ...     print(-np.log(smk.softmax(z)[0]))
    inf
    >>> print(smk.cross_entropy(z, 0))
    120.0
    """
    return _cross_entropy(input, target, axis, from_logits, weight, sample_weight, ignore_index,
                          label_smoothing, reduction, False)[0]


@_with_params
def cross_entropy_grad(input, target, *, axis=-1, from_logits=True, weight=None,
                       sample_weight=None, ignore_index=None, label_smoothing=0.0, reduction="mean",
                       out=None):
    r"""Gradient of :func:`cross_entropy` with respect to ``input``.

    From logits, per row: ``scale * (a p - eps / C w - (1 - eps) w[y] onehot(y))`` with
    ``p = softmax(z)``, ``a = (1 - eps) w[y] + eps / C sum(w)``; without weights or
    smoothing that is the familiar ``p - onehot(y)``. ``scale`` is the row's sample
    weight, divided by the "mean" denominator. For ``reduction="none"`` it is the
    gradient of the sum of the per-row losses. From probabilities: ``-v / p`` where
    ``p >= 1e-7`` and 0 below (``v`` the row's effective target weights).
    {params}
    out : ndarray, optional
        Where to write the gradient (``input``'s shape, the result dtype). It may be
        ``input`` itself. With integer labels in the kernel's layout (class axis last,
        C-contiguous) the kernel writes into it directly: no allocation.

    Returns
    -------
    grad : ndarray of ``input``'s shape and dtype (``out`` when given)

    Examples
    --------
    The articles' example: softmax output (0.34, 0.46, 0.20), true class 0:

    >>> import numpy as np, softmaxkit as smk
    >>> smk.cross_entropy_grad(np.log([0.34, 0.46, 0.20]), 0)
    array([-0.66,  0.46,  0.2 ])
    """
    return _cross_entropy(input, target, axis, from_logits, weight, sample_weight, ignore_index,
                          label_smoothing, reduction, True, out)[1]


@_with_params
def cross_entropy_and_grad(input, target, *, axis=-1, from_logits=True, weight=None,
                           sample_weight=None, ignore_index=None, label_smoothing=0.0,
                           reduction="mean", out=None):
    r"""``(cross_entropy(...), cross_entropy_grad(...))`` from one fused pass.

    On integer labels from logits, one C kernel visits each row once: a max pass, an
    exp-and-sum pass and a pass writing ``p - onehot`` (scaled), while the row is
    in cache.
    {params}
    out : ndarray, optional
        Where to write the gradient, as in :func:`cross_entropy_grad`.

    Returns
    -------
    loss : scalar, or ndarray of the batch shape for ``reduction="none"``
    grad : ndarray of ``input``'s shape and dtype (``out`` when given)

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> loss, grad = smk.cross_entropy_and_grad([[2.0, 1.0, 0.1]], [0], reduction="sum")
    >>> round(float(loss), 6), np.round(grad, 4)
    (0.41703, array([[-0.341 ,  0.2424,  0.0986]]))
    """
    return _cross_entropy(input, target, axis, from_logits, weight, sample_weight, ignore_index,
                          label_smoothing, reduction, True, out)


# ------------------------------------------------------------------------ nll_loss


def _nll(log_probs, target, axis, weight, ignore_index, reduction, want_grad):
    rows, result_dtype, _ = _class_rows(log_probs, axis, "log_probs")
    dtype = rows.block.dtype
    reduction = _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    tgt = _real_array(target, "target")
    if tgt.dtype.kind not in "iu":
        raise ValueError(
            f"target must hold integer class indices, got dtype {tgt.dtype} (for class "
            "probabilities use cross_entropy)"
        )
    w = None if weight is None else _check_weights(weight, (rows.cols,), dtype, "weight")
    t = _hard_target(tgt, rows, ignore_index)
    live = np.ones(rows.rows, bool) if ignore_index is None else t != ignore_index
    idx = np.flatnonzero(live)
    roww = np.zeros(rows.rows)
    roww[idx] = 1.0 if w is None else w[t[idx]]
    per_row = np.zeros(rows.rows)
    lp_t = rows.block[idx, t[idx]].astype(np.float64)
    with np.errstate(invalid="ignore"):
        # a zero weight leaves the row out even where its log-probability is -inf
        per_row[idx] = np.where(roww[idx] != 0, -roww[idx] * lp_t, 0.0)
    denom = float(roww.sum())
    loss = _reduce_rows(per_row, denom, reduction, rows, result_dtype)
    if not want_grad:
        return loss, None
    _, c = _grad_scale(reduction, denom, None)
    grad2d = np.zeros((rows.rows, rows.cols), dtype=dtype)
    grad2d[idx, t[idx]] = -c * roww[idx]
    return loss, _finish_grad(grad2d, rows, result_dtype)


def nll_loss(log_probs, target, *, axis=-1, weight=None, ignore_index=None, reduction="mean"):
    r"""Negative log-likelihood of integer labels, given log-probabilities.

    ``loss_i = -weight[y_i] * log_probs[i, y_i]``; "mean" divides by
    ``sum_i weight[y_i]`` over the rows not ignored (PyTorch's ``nll_loss``).
    ``cross_entropy(z, y)`` equals ``nll_loss(log_softmax(z), y)``.

    Parameters
    ----------
    log_probs : array_like
        Log-probabilities, class axis ``axis``.
    target : array_like of int
        Class indices, ``log_probs``' shape without the class axis (float targets
        are a ValueError: use :func:`cross_entropy` for class probabilities).
    axis : int, default -1
    weight : array_like, optional
        Per-class weights, length C, finite and >= 0.
    ignore_index : int, optional
        Rows whose label equals it count for nothing.
    reduction : {"mean", "sum", "none"}, default "mean"

    Returns
    -------
    loss : scalar, or ndarray of the batch shape for ``reduction="none"``

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> float(smk.nll_loss(np.log([[0.25, 0.75], [0.5, 0.5]]), [1, 0], reduction="sum"))
    0.9808292530117262
    """
    return _nll(log_probs, target, axis, weight, ignore_index, reduction, False)[0]


def nll_loss_grad(log_probs, target, *, axis=-1, weight=None, ignore_index=None, reduction="mean"):
    r"""Gradient of :func:`nll_loss` with respect to ``log_probs``: ``-weight[y_i]``
    (times the reduction's scale) at each row's label, 0 elsewhere.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> smk.nll_loss_grad(np.log([[0.25, 0.75], [0.5, 0.5]]), [1, 0])
    array([[ 0. , -0.5],
           [-0.5,  0. ]])
    """
    return _nll(log_probs, target, axis, weight, ignore_index, reduction, True)[1]


def nll_loss_and_grad(log_probs, target, *, axis=-1, weight=None, ignore_index=None,
                      reduction="mean"):
    r"""``(nll_loss(...), nll_loss_grad(...))`` in one call.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> loss, grad = smk.nll_loss_and_grad(np.log([[0.5, 0.5]]), [0])
    >>> round(float(loss), 6), grad
    (0.693147, array([[-1.,  0.]]))
    """
    return _nll(log_probs, target, axis, weight, ignore_index, reduction, True)


# ------------------------------------------------------------ binary cross-entropy


def _pair_same_shape(a, b, names):
    """Two real arrays of the same shape, in a's compute dtype (b converted to it)."""
    a_arr, result_dtype = as_float_array(a, names[0])
    b_arr = _real_array(b, names[1])
    if b_arr.shape != a_arr.shape:
        raise ValueError(
            f"{names[1]} has shape {b_arr.shape}, but {names[0]} has shape {a_arr.shape}"
        )
    return a_arr, b_arr.astype(a_arr.dtype, copy=False), result_dtype


def _elementwise_reduce(loss: np.ndarray, reduction: str, result_dtype: np.dtype):
    """Reductions over all elements (PyTorch's for BCE): "mean" divides by the count."""
    if reduction == "none":
        out = loss.astype(result_dtype)
        return out[()] if out.ndim == 0 else out
    total = float(loss.sum())
    if reduction == "sum":
        return _scalar(total, result_dtype)
    return _scalar(total / loss.size if loss.size else np.nan, result_dtype)


def _elementwise_scale(reduction: str, n: int) -> float:
    if reduction == "mean":
        return 1.0 / n if n else 0.0
    return 1.0


def _bce(probs, target, weight, reduction, want_grad):
    p, y, result_dtype = _pair_same_shape(probs, target, ("probs", "target"))
    reduction = _check_reduction(reduction)
    w = None if weight is None else _check_weights(weight, p.shape, np.float64, "weight", broadcast=True)
    bad = ~((p >= 0) & (p <= 1))  # also NaN
    if bad.any():
        pos = _where_first(bad)
        raise ValueError(f"probs must be in [0, 1], got {p[pos].item()!r} at probs{_fmt_pos(pos)}")
    pd, yd = p.astype(np.float64), y.astype(np.float64)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(pd), BCE_LOG_FLOOR)
        log_1mp = np.maximum(np.log1p(-pd), BCE_LOG_FLOOR)
    loss = -(yd * log_p + (1.0 - yd) * log_1mp)
    if w is not None:
        loss = loss * w
    value = _elementwise_reduce(loss, reduction, result_dtype)
    if not want_grad:
        return value, None
    # PyTorch's backward: (p - y) / max(p (1 - p), 1e-12)
    grad = (pd - yd) / np.maximum(pd * (1.0 - pd), BCE_GRAD_EPS) * _elementwise_scale(reduction, p.size)
    if w is not None:
        grad = grad * w
    return value, np.asarray(grad.astype(result_dtype))


def binary_cross_entropy(probs, target, *, weight=None, reduction="mean"):
    r"""Binary cross-entropy of probabilities, elementwise (PyTorch's ``binary_cross_entropy``).

    ``loss = -weight * (y * log(p) + (1 - y) * log(1 - p))``, each log clamped at
    -100 as PyTorch does, so ``p = 0`` with ``y = 1`` costs 100, not inf.
    Multi-label use (a sigmoid per class) works by shape.

    Parameters
    ----------
    probs : array_like
        Probabilities in [0, 1] (anything else, NaN included, is a ValueError).
    target : array_like
        Targets of ``probs``' shape, usually in [0, 1].
    weight : array_like, optional
        Finite weights >= 0, broadcast to ``probs``' shape.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" averages over all elements.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> print(smk.binary_cross_entropy([0.0, 0.5], [1.0, 1.0], reduction="none"))
    [100.           0.69314718]
    """
    return _bce(probs, target, weight, reduction, False)[0]


def binary_cross_entropy_grad(probs, target, *, weight=None, reduction="mean"):
    r"""Gradient of :func:`binary_cross_entropy` with respect to ``probs``, as PyTorch
    computes it: ``weight * (p - y) / max(p (1 - p), 1e-12)`` (times 1/N for "mean").

    Examples
    --------
    >>> import softmaxkit as smk
    >>> print(smk.binary_cross_entropy_grad([0.5], [1.0]))
    [-2.]
    """
    return _bce(probs, target, weight, reduction, True)[1]


def binary_cross_entropy_and_grad(probs, target, *, weight=None, reduction="mean"):
    r"""``(binary_cross_entropy(...), binary_cross_entropy_grad(...))`` in one call.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> loss, grad = smk.binary_cross_entropy_and_grad([0.5], [1.0])
    >>> round(float(loss), 6), grad
    (0.693147, array([-2.]))
    """
    return _bce(probs, target, weight, reduction, True)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, no cancellation."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _bce_logits(logits, target, weight, pos_weight, reduction, want_grad):
    z, y, result_dtype = _pair_same_shape(logits, target, ("logits", "target"))
    reduction = _check_reduction(reduction)
    w = None if weight is None else _check_weights(weight, z.shape, np.float64, "weight", broadcast=True)
    pw = None
    if pos_weight is not None:
        pw = _check_weights(pos_weight, z.shape, np.float64, "pos_weight", broadcast=True)
    zd, yd = z.astype(np.float64), y.astype(np.float64)
    # -[pw y log sigma(z) + (1 - y) log(1 - sigma(z))] = pw y softplus(-z) + (1 - y) softplus(z);
    # log sigma(z) = -softplus(-z) in log space, finite for every finite z (optax's
    # sigmoid_binary_cross_entropy). Terms with a zero coefficient are left out, so
    # z = +-inf with the matching label gives 0, not 0 * inf.
    a = yd if pw is None else pw * yd
    b = 1.0 - yd
    with np.errstate(invalid="ignore"):
        loss = np.where(a != 0, a * _softplus(-zd), 0.0) + np.where(b != 0, b * _softplus(zd), 0.0)
    if w is not None:
        loss = loss * w
    value = _elementwise_reduce(loss, reduction, result_dtype)
    if not want_grad:
        return value, None
    with np.errstate(over="ignore"):
        s = 1.0 / (1.0 + np.exp(-zd))
    # d/dz = -a (1 - sigma) + b sigma
    grad = (s * (a + b) - a) * _elementwise_scale(reduction, z.size)
    if w is not None:
        grad = grad * w
    return value, np.asarray(grad.astype(result_dtype))


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean"):
    r"""Binary cross-entropy of ``sigmoid(logits)``, fused and stable in log space.

    ``loss = weight * (pos_weight * y * softplus(-z) + (1 - y) * softplus(z))``,
    which is ``-weight * (pos_weight * y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z)))``
    computed without ever forming ``sigmoid(z)``: finite and accurate for every
    finite logit (PyTorch's ``binary_cross_entropy_with_logits``).

    Parameters
    ----------
    logits : array_like
    target : array_like
        Targets of ``logits``' shape, usually in [0, 1].
    weight : array_like, optional
        Finite weights >= 0, broadcast to ``logits``' shape.
    pos_weight : array_like, optional
        Finite weights >= 0 of the positive term, broadcast to ``logits``' shape
        (a length-C vector weighs each class of a multi-label problem).
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" averages over all elements.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.binary_cross_entropy_with_logits([-800.0, 0.0], [1.0, 1.0], reduction="none").tolist()
    [800.0, 0.6931471805599453]
    """
    return _bce_logits(logits, target, weight, pos_weight, reduction, False)[0]


def binary_cross_entropy_with_logits_grad(logits, target, *, weight=None, pos_weight=None,
                                          reduction="mean"):
    r"""Gradient of :func:`binary_cross_entropy_with_logits` with respect to ``logits``:
    ``weight * (sigmoid(z) * (1 - y + pos_weight * y) - pos_weight * y)``, which is
    ``sigmoid(z) - y`` without weights (times 1/N for "mean").

    Examples
    --------
    >>> import softmaxkit as smk
    >>> print(smk.binary_cross_entropy_with_logits_grad([0.0, 0.0], [1.0, 0.0], reduction="sum"))
    [-0.5  0.5]
    """
    return _bce_logits(logits, target, weight, pos_weight, reduction, True)[1]


def binary_cross_entropy_with_logits_and_grad(logits, target, *, weight=None, pos_weight=None,
                                              reduction="mean"):
    r"""``(binary_cross_entropy_with_logits(...), binary_cross_entropy_with_logits_grad(...))``.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> loss, grad = smk.binary_cross_entropy_with_logits_and_grad([0.0], [1.0])
    >>> round(float(loss), 6), grad
    (0.693147, array([-0.5]))
    """
    return _bce_logits(logits, target, weight, pos_weight, reduction, True)


# ------------------------------------------------------------------ kl_div, entropy


def _kl(log_q, p, log_target, reduction, want_grad):
    lq, t, result_dtype = _pair_same_shape(log_q, p, ("log_q", "p"))
    log_target = _check_bool(log_target, "log_target")
    reduction = _check_reduction(reduction, ("none", "sum", "mean", "batchmean"))
    lqd, td = lq.astype(np.float64), t.astype(np.float64)
    if log_target:
        pt = np.exp(td)
        with np.errstate(invalid="ignore"):
            point = np.where(pt != 0, pt * (td - lqd), 0.0)
    else:
        bad = ~(td >= 0)
        if bad.any():
            pos = _where_first(bad)
            raise ValueError(f"p must hold probabilities >= 0, got {t[pos].item()!r} at p{_fmt_pos(pos)}")
        pt = td
        with np.errstate(divide="ignore", invalid="ignore"):
            # p log p - p log q, with 0 log 0 = 0 and p = 0 terms left out
            point = np.where(pt != 0, pt * (np.log(np.where(pt != 0, pt, 1.0)) - lqd), 0.0)
    n = lq.size
    if reduction == "batchmean":
        batch = lq.shape[0] if lq.ndim else 1
        total = float(point.sum())
        value = _scalar(total / batch if batch else np.nan, result_dtype)
        scale = 1.0 / batch if batch else 0.0
    else:
        value = _elementwise_reduce(point, reduction, result_dtype)
        scale = _elementwise_scale(reduction, n)
    if not want_grad:
        return value, None
    return value, np.asarray((-pt * scale).astype(result_dtype))


def kl_div(log_q, p, *, log_target=False, reduction="mean"):
    r"""Kullback-Leibler divergence ``KL(p || q) = sum p (log p - log q)``, pointwise
    terms as PyTorch's ``kl_div(input=log_q, target=p)``.

    Parameters
    ----------
    log_q : array_like
        Log-probabilities of the model (the ``input`` of PyTorch).
    p : array_like
        Target probabilities (>= 0), or their logs with ``log_target=True``; same shape.
    log_target : bool, default False
    reduction : {"mean", "batchmean", "sum", "none"}, default "mean"
        PyTorch's: "mean" averages over all elements (not the mathematical KL);
        "batchmean" divides the sum by ``log_q.shape[0]``, the true mean KL per row.

    Notes
    -----
    Terms with ``p = 0`` are 0 (``0 log 0 = 0``), even where ``log_q`` is ``-inf``.
    ``KL(p || q) = H(p, q) - H(p)``: cross-entropy minus entropy.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> p = np.array([[0.5, 0.5]])
    >>> float(smk.kl_div(np.log([[0.25, 0.75]]), p, reduction="batchmean"))
    0.14384103622589045
    """
    return _kl(log_q, p, log_target, reduction, False)[0]


def kl_div_grad(log_q, p, *, log_target=False, reduction="mean"):
    r"""Gradient of :func:`kl_div` with respect to ``log_q``: ``-p`` (``-exp(p)`` with
    ``log_target``), times the reduction's scale.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> smk.kl_div_grad(np.log([[0.25, 0.75]]), np.array([[0.5, 0.5]]), reduction="sum")
    array([[-0.5, -0.5]])
    """
    return _kl(log_q, p, log_target, reduction, True)[1]


def kl_div_and_grad(log_q, p, *, log_target=False, reduction="mean"):
    r"""``(kl_div(...), kl_div_grad(...))`` in one call.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> loss, grad = smk.kl_div_and_grad(np.log([[0.5, 0.5]]), np.array([[0.5, 0.5]]), reduction="sum")
    >>> float(loss), grad
    (0.0, array([[-0.5, -0.5]]))
    """
    return _kl(log_q, p, log_target, reduction, True)


def entropy(p, axis=-1, *, from_logits=False):
    r"""Shannon entropy ``H(p) = -sum p log p`` (nats) along ``axis``.

    Parameters
    ----------
    p : array_like
        Probabilities (each in [0, 1], rows summing to 1 within ``sqrt(eps)``; else
        ValueError), or logits with ``from_logits=True``: then ``p = softmax(logits)``
        and ``H = logsumexp(z) - sum p z``, computed from ``log_softmax`` so that
        large logits do not overflow.
    axis : int, default -1
    from_logits : bool, default False

    Returns
    -------
    ndarray of the batch shape (a scalar for one distribution)

    Notes
    -----
    ``0 log 0 = 0``. Cross-entropy with soft labels is ``H(p, q) = H(p) + KL(p || q)``.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> float(smk.entropy([0.5, 0.5]))  # log 2
    0.6931471805599453
    >>> float(smk.entropy([1000.0, 1000.0], from_logits=True))
    0.6931471805599453
    """
    from_logits = _check_bool(from_logits, "from_logits")
    rows, result_dtype, ax = _class_rows(p, axis, "p")
    block = rows.block
    if from_logits:
        probs = softmax(block, axis=-1).astype(np.float64)
        lp = log_softmax(block, axis=-1).astype(np.float64)
    else:
        _check_probs(block, "p")
        probs = block.astype(np.float64)
        with np.errstate(divide="ignore"):
            lp = np.log(probs)
    with np.errstate(invalid="ignore"):
        h = -np.where(probs != 0, probs * lp, 0.0).sum(axis=1)
    h[np.isnan(block).any(axis=1)] = np.nan
    out = h.astype(result_dtype).reshape(rows.batch_shape)
    return out[()] if out.ndim == 0 else out


def perplexity(input, target, *, axis=-1, from_logits=True, weight=None, ignore_index=None):
    r"""``exp`` of the mean cross-entropy: the effective number of classes the model
    hesitates between (a language model's per-token perplexity).

    Parameters are those of :func:`cross_entropy` (reduction is "mean").

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> float(smk.perplexity(np.zeros((2, 4)), [0, 3]))  # uniform over 4 classes
    4.0
    """
    loss = cross_entropy(input, target, axis=axis, from_logits=from_logits, weight=weight,
                         ignore_index=ignore_index)
    return np.exp(loss)
