r"""Losses users reach for beside cross-entropy: focal loss (multi-class and
torchvision's sigmoid form), PolyLoss (poly-1) and the multi-class hinge
(``multi_margin_loss``). Each forward beside its backward, per-row float64, the
reduction from the shared layer (softmaxkit._reduction), checks from
softmaxkit._validation.

Multi-class losses take logits ``(..., C)`` (class axis ``axis``) and integer targets
of the logits' shape without the class axis; "mean" divides by the number of rows
not ignored. ``sigmoid_focal_loss`` is elementwise; "mean" divides by the element
count (torchvision's).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _kernels, _reduction
from .._typing import ArrayLike, FloatArray, Loss
from .._validation import (
    as_float_array,
    check_at_least,
    check_ignore_index,
    check_real,
    check_reduction,
    check_weights,
    class_rows,
    hard_target,
    real_array,
)

__all__ = [
    "focal_loss",
    "focal_loss_grad",
    "focal_loss_and_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "sigmoid_focal_loss_and_grad",
    "poly1_cross_entropy",
    "poly1_cross_entropy_grad",
    "poly1_cross_entropy_and_grad",
    "multi_margin_loss",
    "multi_margin_loss_grad",
    "multi_margin_loss_and_grad",
]


class _Rows:
    """What every multi-class loss here needs: the (rows, C) float64 logits, the
    targets, the live rows, log_softmax and softmax of each row."""

    def __init__(self, logits: Any, target: Any, axis: Any, ignore_index: Any, reduction: Any):
        self.reduction = check_reduction(reduction)
        ignore = check_ignore_index(ignore_index)
        self.rows, self.result_dtype, _ = class_rows(logits, axis, "logits")
        t = hard_target(np.asarray(target), self.rows.cols, self.rows.batch_shape, ignore)
        self.live = np.ones(self.rows.rows, bool) if ignore is None else t != ignore
        self.t = np.where(self.live, t, 0)
        self.z = np.ascontiguousarray(self.rows.block, dtype=np.float64)
        self.r = np.arange(self.rows.rows)
        self.denom = float(self.live.sum())

    def log_softmax(self) -> np.ndarray:
        lp = np.empty_like(self.z)
        if lp.size:
            _kernels.log_softmax_rows(self.z, lp)
        return lp

    def finish(self, per_row: np.ndarray | None, grad: np.ndarray | None) -> tuple[Any, Any]:
        """Reduce the per-row losses; scale, mask and reshape the gradient (rows, C)."""
        loss = None
        if per_row is not None:
            per_row = np.where(self.live, per_row, 0.0)
            loss = _reduction.reduce(per_row, self.reduction, self.denom, self.result_dtype,
                                     self.rows.batch_shape)
        if grad is not None:
            grad[~self.live] = 0.0
            grad *= _reduction.mean_scale(self.reduction, self.denom)
            grad = self.rows.restore(grad).astype(self.result_dtype, copy=False)
        return loss, grad


# ------------------------------------------------------------------ focal loss

def _focal(logits, target, gamma, axis, ignore_index, reduction, want_loss, want_grad):
    """FL = -(1 - p_y)^gamma log p_y (Lin et al. 2017), p = softmax(z).

    With lp = log p_y and m = 1 - p_y = -expm1(lp) (no cancellation near p_y = 1):
    dFL/dz = c (softmax(z) - onehot(y)) with c = m^gamma (1 - gamma p_y r), where
    r = lp / m -> -1 as p_y -> 1, so c stays finite for every gamma >= 0 (written
    with (1 - p)^(gamma - 1) it is inf * 0 at p_y = 1 when gamma < 1).
    """
    gamma = check_at_least(gamma, "gamma", 0.0)
    R = _Rows(logits, target, axis, ignore_index, reduction)
    lsm = R.log_softmax()
    lp = lsm[R.r, R.t]
    with np.errstate(invalid="ignore", divide="ignore"):
        m = -np.expm1(lp)
        mg = m**gamma  # 0**0 = 1: gamma = 0 is cross-entropy
        per_row = -mg * lp if want_loss else None
        grad = None
        if want_grad:
            p_y = np.exp(lp)
            r = np.where(m > 0, lp / m, -1.0)
            c = mg * (1.0 - gamma * p_y * r)
            grad = np.exp(lsm)
            grad[R.r, R.t] -= 1.0
            grad *= c[:, None]
    return R.finish(per_row, grad)


_MC_DOC = """
    Parameters
    ----------
    logits : array_like
        Scores, ``(..., C)`` with the class axis ``axis``.
    target : array_like of int
        Class indices, ``logits``' shape without the class axis.
{extra}    axis : int, default -1
    ignore_index : int, optional
        Rows whose target equals it contribute no loss and no gradient and do not count
        in the mean.
    reduction : {{"mean", "sum", "none"}}, default "mean"
"""


def focal_loss(logits: ArrayLike, target: ArrayLike, *, gamma: float = 2.0, axis: int = -1,
               ignore_index: int | None = None, reduction: str = "mean") -> Loss:
    r"""Multi-class focal loss: :math:`-(1 - p_y)^\gamma \log p_y` with
    :math:`p = \mathrm{softmax}(z)`.

    Down-weights well-classified rows (Lin et al. 2017). ``gamma=0`` is
    :func:`cross_entropy`. ``log p_y`` comes from log_softmax and ``1 - p_y`` from
    ``-expm1(log p_y)``, so neither overflows nor cancels.
    {doc}
    References
    ----------
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar, "Focal Loss for Dense Object
    Detection", ICCV 2017.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> z = np.log([[0.5, 0.25, 0.25]])
    >>> float(smk.focal_loss(z, [0], gamma=2.0))  # (1 - 0.5)^2 * log 2
    0.17328679513998632
    """
    return _focal(logits, target, gamma, axis, ignore_index, reduction, True, False)[0]


def focal_loss_grad(logits: ArrayLike, target: ArrayLike, *, gamma: float = 2.0, axis: int = -1,
                    ignore_index: int | None = None, reduction: str = "mean") -> FloatArray:
    """Gradient of :func:`focal_loss` with respect to ``logits`` (``logits``' shape)."""
    return _focal(logits, target, gamma, axis, ignore_index, reduction, False, True)[1]


def focal_loss_and_grad(logits: ArrayLike, target: ArrayLike, *, gamma: float = 2.0, axis: int = -1,
                        ignore_index: int | None = None, reduction: str = "mean") -> tuple[Loss, FloatArray]:
    """:func:`focal_loss` and :func:`focal_loss_grad` from one pass."""
    return _focal(logits, target, gamma, axis, ignore_index, reduction, True, True)


# ------------------------------------------------------------------ PolyLoss

def _poly1(logits, target, epsilon, axis, ignore_index, reduction, want_loss, want_grad):
    """Poly-1 = CE + eps (1 - p_y); d/dz = (1 + eps p_y) (softmax(z) - onehot(y))."""
    eps = check_at_least(epsilon, "epsilon", -1.0)
    R = _Rows(logits, target, axis, ignore_index, reduction)
    lsm = R.log_softmax()
    lp = lsm[R.r, R.t]
    p_y = np.exp(lp)
    per_row = -lp - eps * np.expm1(lp) if want_loss else None
    grad = None
    if want_grad:
        grad = np.exp(lsm)
        grad[R.r, R.t] -= 1.0
        grad *= (1.0 + eps * p_y)[:, None]
    return R.finish(per_row, grad)


def poly1_cross_entropy(logits: ArrayLike, target: ArrayLike, *, epsilon: float = 1.0, axis: int = -1,
                        ignore_index: int | None = None, reduction: str = "mean") -> Loss:
    r"""PolyLoss, poly-1 form: :math:`-\log p_y + \epsilon (1 - p_y)`.

    Cross-entropy plus the first term of its Taylor expansion in :math:`1 - p_y`,
    re-weighted (Leng et al. 2022; ``epsilon=0`` is :func:`cross_entropy`, and
    ``epsilon >= -1`` keeps the loss decreasing in :math:`p_y`).
    {doc}
    References
    ----------
    Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
    Loss Functions", ICLR 2022.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> z = np.log([[0.5, 0.25, 0.25]])
    >>> float(smk.poly1_cross_entropy(z, [0], epsilon=1.0))  # log 2 + 0.5
    1.1931471805599454
    """
    return _poly1(logits, target, epsilon, axis, ignore_index, reduction, True, False)[0]


def poly1_cross_entropy_grad(logits: ArrayLike, target: ArrayLike, *, epsilon: float = 1.0, axis: int = -1,
                             ignore_index: int | None = None, reduction: str = "mean") -> FloatArray:
    """Gradient of :func:`poly1_cross_entropy`: ``(1 + epsilon p_y) (softmax(z) - onehot(y))``."""
    return _poly1(logits, target, epsilon, axis, ignore_index, reduction, False, True)[1]


def poly1_cross_entropy_and_grad(logits: ArrayLike, target: ArrayLike, *, epsilon: float = 1.0,
                                 axis: int = -1, ignore_index: int | None = None,
                                 reduction: str = "mean") -> tuple[Loss, FloatArray]:
    """:func:`poly1_cross_entropy` and its gradient from one pass."""
    return _poly1(logits, target, epsilon, axis, ignore_index, reduction, True, True)


# ------------------------------------------------------------------ multi-class hinge

def _margin(logits, target, p, margin, weight, axis, ignore_index, reduction, want_loss, want_grad):
    """loss = w_y / C * sum_{i != y} max(0, margin - z_y + z_i)^p (PyTorch's
    multi_margin_loss); d/dz_i = w_y / C * p h_i^(p-1) on active hinges, and z_y gets
    minus their sum."""
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    margin = check_real(margin, "margin")
    if not np.isfinite(margin):
        raise ValueError(f"margin must be finite, got {margin!r}")
    R = _Rows(logits, target, axis, ignore_index, reduction)
    C = R.rows.cols
    w = None
    if weight is not None:
        w = check_weights(weight, (C,), np.float64, "weight")
    wy = np.ones(R.rows.rows) if w is None else w[R.t]
    zy = R.z[R.r, R.t][:, None]
    with np.errstate(invalid="ignore"):
        h = margin - zy + R.z
    h[R.r, R.t] = 0.0
    active = h > 0
    scale = wy / C
    per_row = None
    if want_loss:
        hp = np.where(active, h, 0.0) ** p
        per_row = scale * hp.sum(axis=1)
    grad = None
    if want_grad:
        grad = np.where(active, p * h ** (p - 1) if p == 2 else 1.0, 0.0) * scale[:, None]
        grad[R.r, R.t] = 0.0
        grad[R.r, R.t] = -grad.sum(axis=1)
    return R.finish(per_row, grad)


def multi_margin_loss(logits: ArrayLike, target: ArrayLike, *, p: int = 1, margin: float = 1.0,
                      weight: ArrayLike | None = None, axis: int = -1, ignore_index: int | None = None,
                      reduction: str = "mean") -> Loss:
    r"""Multi-class hinge loss, as ``torch.nn.functional.multi_margin_loss``:
    :math:`\frac{w_y}{C} \sum_{i \ne y} \max(0, \mathrm{margin} - z_y + z_i)^p`.

    Weston and Watkins' multi-class SVM loss (Crammer and Singer's takes the max
    instead of the sum). ``p`` is 1 or 2; ``weight`` (C,) multiplies each row by its
    target class's weight; "mean" divides by the number of rows (PyTorch's, which
    does not divide by the weights).
    {doc}
    Examples
    --------
    >>> import softmaxkit as smk
    >>> round(float(smk.multi_margin_loss([[0.1, 0.2, 0.4, 0.8]], [3])), 12)  # (0.3 + 0.4 + 0.6) / 4
    0.325
    """
    return _margin(logits, target, p, margin, weight, axis, ignore_index, reduction, True, False)[0]


def multi_margin_loss_grad(logits: ArrayLike, target: ArrayLike, *, p: int = 1, margin: float = 1.0,
                           weight: ArrayLike | None = None, axis: int = -1, ignore_index: int | None = None,
                           reduction: str = "mean") -> FloatArray:
    """(Sub)gradient of :func:`multi_margin_loss` (0 at the kink ``h = 0``, as PyTorch)."""
    return _margin(logits, target, p, margin, weight, axis, ignore_index, reduction, False, True)[1]


def multi_margin_loss_and_grad(logits: ArrayLike, target: ArrayLike, *, p: int = 1, margin: float = 1.0,
                               weight: ArrayLike | None = None, axis: int = -1,
                               ignore_index: int | None = None, reduction: str = "mean"
                               ) -> tuple[Loss, FloatArray]:
    """:func:`multi_margin_loss` and its gradient from one pass."""
    return _margin(logits, target, p, margin, weight, axis, ignore_index, reduction, True, True)


# ------------------------------------------------------------------ sigmoid focal loss

def _sigmoid_focal(logits, targets, alpha, gamma, reduction, want_loss, want_grad):
    """torchvision.ops.sigmoid_focal_loss, per element:
        ce = softplus(x) - t x,  m = 1 - p_t = t (1 - s) + (1 - t) s,  s = sigmoid(x)
        loss = a_t ce m^gamma,   a_t = alpha t + (1 - alpha)(1 - t)  (alpha < 0: a_t = 1)
    d loss / dx = a_t [ (s - t) m^gamma - gamma ce m^(gamma-1) (2t - 1) s (1 - s) ],
    the second term taken as 0 where m = 0 (there ce = 0 too)."""
    reduction = check_reduction(reduction)
    gamma = check_at_least(gamma, "gamma", 0.0)
    alpha = check_real(alpha, "alpha")
    if not (np.isfinite(alpha) and alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1], or negative to turn it off, got {alpha!r}")
    x_arr, result_dtype = as_float_array(logits, "logits")
    t_arr = real_array(targets, "targets")
    if t_arr.shape != x_arr.shape:
        raise ValueError(f"targets has shape {t_arr.shape}, but logits has shape {x_arr.shape}")
    # one pass of the elementwise C kernels (forward, and backward with the
    # reduction's scale as the upstream gradient), in the compute dtype
    shape = x_arr.shape
    x = np.ascontiguousarray(x_arr).reshape(-1)
    t = np.ascontiguousarray(t_arr, dtype=x.dtype).reshape(-1)
    n = float(x.size)
    value = grad = None
    if want_loss:
        loss = np.empty_like(x)
        _kernels.sigmoid_focal_flat(x, t, loss, alpha=alpha, gamma=gamma)
        value = _reduction.reduce(loss, reduction, n, result_dtype, shape)
    if want_grad:
        g = np.full_like(x, _reduction.mean_scale(reduction, n))
        out = np.empty_like(x)
        _kernels.sigmoid_focal_backward_flat(x, t, g, out, alpha=alpha, gamma=gamma)
        grad = out.reshape(shape).astype(result_dtype, copy=False)
    return value, grad


_SF_DOC = """
    Parameters
    ----------
    logits : array_like
        Scores, any shape.
    targets : array_like
        The same shape: 0/1 labels, or probabilities in [0, 1] (soft labels).
    alpha : float, default 0.25
        Weight of the positives (``1 - alpha`` for the negatives); negative: no
        weighting (torchvision's ``alpha=-1``).
    gamma : float, default 2.0
        Focusing exponent, ``>= 0``; 0 with ``alpha < 0`` is binary cross-entropy.
    reduction : {"none", "mean", "sum"}, default "none"
        torchvision's default; "mean" divides by the element count.
"""


def sigmoid_focal_loss(logits: ArrayLike, targets: ArrayLike, *, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> Loss:
    r"""Binary focal loss from logits, torchvision's formula
    (``torchvision.ops.sigmoid_focal_loss``):

    .. math:: \alpha_t (1 - p_t)^\gamma \, \mathrm{BCE}(x, t),\quad p_t = s t + (1 - s)(1 - t),
              \ s = \sigma(x),\ \alpha_t = \alpha t + (1 - \alpha)(1 - t).

    ``BCE`` is ``softplus(x) - t x`` and :math:`1 - p_t` is formed from
    :math:`\sigma(\pm x)` directly, so large logits neither overflow nor cancel.
    {doc}
    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.sigmoid_focal_loss(0.0, 1.0))  # 0.25 * 0.5^2 * log 2
    0.04332169878499658
    """
    return _sigmoid_focal(logits, targets, alpha, gamma, reduction, True, False)[0]


def sigmoid_focal_loss_grad(logits: ArrayLike, targets: ArrayLike, *, alpha: float = 0.25,
                            gamma: float = 2.0, reduction: str = "none") -> FloatArray:
    """Gradient of :func:`sigmoid_focal_loss` with respect to ``logits`` (for
    ``reduction="none"``: of the sum of the elementwise losses)."""
    return _sigmoid_focal(logits, targets, alpha, gamma, reduction, False, True)[1]


def sigmoid_focal_loss_and_grad(logits: ArrayLike, targets: ArrayLike, *, alpha: float = 0.25,
                                gamma: float = 2.0, reduction: str = "none") -> tuple[Loss, FloatArray]:
    """:func:`sigmoid_focal_loss` and its gradient from one pass."""
    return _sigmoid_focal(logits, targets, alpha, gamma, reduction, True, True)


focal_loss.__doc__ = (focal_loss.__doc__ or "").replace(
    "{doc}", _MC_DOC.format(extra="    gamma : float, default 2.0\n        Focusing exponent, ``>= 0``.\n"))
poly1_cross_entropy.__doc__ = (poly1_cross_entropy.__doc__ or "").replace(
    "{doc}", _MC_DOC.format(extra="    epsilon : float, default 1.0\n        Weight of ``1 - p_y``, ``>= -1``.\n"))
multi_margin_loss.__doc__ = (multi_margin_loss.__doc__ or "").replace(
    "{doc}", _MC_DOC.format(extra="    p : {1, 2}, default 1\n    margin : float, default 1.0\n"
                            "    weight : array_like (C,), optional\n"))
sigmoid_focal_loss.__doc__ = (sigmoid_focal_loss.__doc__ or "").replace("{doc}", _SF_DOC)
