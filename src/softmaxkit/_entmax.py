r"""Sparse alternatives to softmax: sparsemax, entmax15 and alpha-entmax, their
backward passes, and the matching Fenchel-Young losses.

alpha-entmax (Peters, Niculae and Martins 2019) maps logits ``z`` to

.. math:: p_j = [(\alpha - 1) z_j - \tau]_+^{1/(\alpha - 1)},\qquad \sum_j p_j = 1,

the maximiser of :math:`p \cdot z + H^T_\alpha(p)` over the simplex, with the Tsallis
entropy :math:`H^T_\alpha(p) = (1 - \sum_j p_j^\alpha) / (\alpha(\alpha - 1))`
(Shannon's at :math:`\alpha = 1`). :math:`\alpha = 1` is softmax, :math:`\alpha = 2`
sparsemax (Martins and Astudillo 2016), and for :math:`\alpha > 1` small logits get
probability exactly 0. The class axis is ``axis=-1``; float32 and float64 keep their
dtype (computed in float64), ints become float64. Row conventions as softmax's: NaN
makes its row NaN, a row of ``-inf`` gives zeros, ``+inf`` entries share the mass.
The C kernels find tau by bisection with a closed-form finish (no sort); see
docs/entmax.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels, _reduction
from ._typing import ArrayLike, FloatArray, Loss
from ._validation import (
    Rows,
    as_float_array,
    check_alpha,
    check_ignore_index,
    check_reduction,
    check_single_axis,
    class_rows,
    hard_target,
)

__all__ = [
    "sparsemax",
    "entmax15",
    "entmax_bisect",
    "sparsemax_backward",
    "entmax15_backward",
    "entmax_bisect_backward",
    "sparsemax_loss",
    "sparsemax_loss_grad",
    "sparsemax_loss_and_grad",
    "entmax_loss",
    "entmax_loss_grad",
    "entmax_loss_and_grad",
]


def _forward(x: Any, alpha: float, axis: Any) -> FloatArray:
    arr, result_dtype = as_float_array(x, "x")
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension (the class axis)")
    rows = Rows(arr, (check_single_axis(axis, arr.ndim),))
    y = np.empty_like(rows.block)
    if alpha == 1.0:
        _kernels.softmax_rows(rows.block, y)
    else:
        _kernels.entmax_rows(rows.block, y, alpha=alpha)
    return rows.restore(y).astype(result_dtype, copy=False)


def _backward(y: Any, grad_output: Any, alpha: float, axis: Any) -> FloatArray:
    y_arr, y_res = as_float_array(y, "y")
    g_arr, g_res = as_float_array(grad_output, "grad_output")
    if y_arr.shape != g_arr.shape:
        raise ValueError(f"grad_output has shape {g_arr.shape}, but y has shape {y_arr.shape}")
    if y_arr.ndim == 0:
        raise ValueError("y must have at least one dimension (the class axis)")
    work = np.result_type(y_arr.dtype, g_arr.dtype)
    ax = (check_single_axis(axis, y_arr.ndim),)
    ry = Rows(y_arr.astype(work, copy=False), ax)
    g = Rows(g_arr.astype(work, copy=False), ax).block
    dx = np.empty_like(ry.block)
    if alpha == 1.0:
        _kernels.softmax_backward_rows(ry.block, g, dx)
    else:
        _kernels.entmax_backward_rows(ry.block, g, dx, alpha=alpha)
    return ry.restore(dx).astype(np.result_type(y_res, g_res), copy=False)


def entmax_bisect(x: ArrayLike, alpha: float = 1.5, axis: int = -1) -> FloatArray:
    r"""alpha-entmax along ``axis``: :math:`p = [(\alpha-1) x - \tau]_+^{1/(\alpha-1)}`.

    ``tau`` is found by bisection to full float64 precision (the ``entmax`` package
    stops after 50 steps), with an exact closed-form finish at ``alpha`` 1.5 and 2.
    ``alpha=1`` is :func:`softmax` exactly (the ``entmax`` package returns a uniform
    distribution there: its issues #23 and #24), ``alpha=2`` is :func:`sparsemax`.

    Parameters
    ----------
    x : array_like
        Logits.
    alpha : float, default 1.5
        ``alpha >= 1``; larger is sparser.
    axis : int, default -1
        The class axis.

    Returns
    -------
    ndarray
        Probabilities, ``x``'s shape and float dtype; rows sum to 1, and entries can be
        exactly 0 when ``alpha > 1``.

    References
    ----------
    B. Peters, V. Niculae, A. F. T. Martins, "Sparse Sequence-to-Sequence Models",
    ACL 2019. M. Blondel, A. F. T. Martins, V. Niculae, "Learning Classifiers with
    Fenchel-Young Losses: Generalization, Consistency, and a Duality Between Sparsity
    and Separation Margins", AISTATS 2019 / JMLR 2020.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.entmax_bisect([1.0, 0.5, -2.0], alpha=1.5)
    array([0.67399264, 0.32600736, 0.        ])
    >>> smk.entmax_bisect([1.0, 0.5, -2.0], alpha=1.0)  # softmax
    array([0.6037489 , 0.36619222, 0.03005889])
    """
    return _forward(x, check_alpha(alpha), axis)


def sparsemax(x: ArrayLike, axis: int = -1) -> FloatArray:
    r"""Sparsemax along ``axis``: the Euclidean projection of ``x`` onto the simplex,
    :math:`p = [x - \tau]_+` with :math:`\sum p = 1` (alpha-entmax at alpha = 2).

    References
    ----------
    A. F. T. Martins, R. F. Astudillo, "From Softmax to Sparsemax: A Sparse Model of
    Attention and Multi-Label Classification", ICML 2016.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.sparsemax([1.0, 0.5, -2.0])  # tau = 0.25
    array([0.75, 0.25, 0.  ])
    """
    return _forward(x, 2.0, axis)


def entmax15(x: ArrayLike, axis: int = -1) -> FloatArray:
    r"""1.5-entmax along ``axis``: :math:`p = [x/2 - \tau]_+^2` with :math:`\sum p = 1`.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.entmax15([1.0, 0.5, -2.0])
    array([0.67399264, 0.32600736, 0.        ])
    """
    return _forward(x, 1.5, axis)


def entmax_bisect_backward(y: ArrayLike, grad_output: ArrayLike, alpha: float = 1.5,
                           axis: int = -1) -> FloatArray:
    r"""Gradient of :func:`entmax_bisect` with respect to ``x``, from its output ``y``.

    With :math:`s_j = y_j^{2-\alpha}` on the support (0 elsewhere), the Jacobian is
    :math:`\mathrm{diag}(s) - s s^T / \sum_j s_j` (the :math:`1/(\alpha-1)` of the power
    and the :math:`\alpha - 1` scaling the input cancel), so

    .. math:: \partial L / \partial x = s \odot g - s \, (s \cdot g) / \textstyle\sum_j s_j.

    At alpha = 2 this is the sparsemax Jacobian (on the support, g minus its mean);
    at alpha = 1, softmax's ``y * (g - y . g)``.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> y = smk.sparsemax([1.0, 0.5, -2.0])
    >>> smk.entmax_bisect_backward(y, [1.0, 0.0, 5.0], alpha=2)
    array([ 0.5, -0.5,  0. ])
    """
    return _backward(y, grad_output, check_alpha(alpha), axis)


def sparsemax_backward(y: ArrayLike, grad_output: ArrayLike, axis: int = -1) -> FloatArray:
    """Gradient of :func:`sparsemax` from its output (see :func:`entmax_bisect_backward`)."""
    return _backward(y, grad_output, 2.0, axis)


def entmax15_backward(y: ArrayLike, grad_output: ArrayLike, axis: int = -1) -> FloatArray:
    """Gradient of :func:`entmax15` from its output (see :func:`entmax_bisect_backward`)."""
    return _backward(y, grad_output, 1.5, axis)


# ------------------------------------------------------------------ Fenchel-Young losses

def _fy_loss(logits, target, alpha, axis, ignore_index, reduction, want_loss, want_grad):
    """Per-row L = Omega(p) + p . z - z_y and its gradient p - e_y (Blondel et al.)."""
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    rows, result_dtype, _ = class_rows(logits, axis, "logits")
    t = hard_target(np.asarray(target), rows.cols, rows.batch_shape, ignore_index)
    live = np.ones(rows.rows, bool) if ignore_index is None else t != ignore_index
    z = np.ascontiguousarray(rows.block, dtype=np.float64)
    p = np.empty_like(z)
    if alpha == 1.0:
        _kernels.softmax_rows(z, p)
    else:
        _kernels.entmax_rows(z, p, alpha=alpha)
    r = np.arange(rows.rows)
    ty = np.where(live, t, 0)
    denom = float(live.sum())
    loss = grad = None
    if want_loss:
        zy = z[r, ty][:, None]
        with np.errstate(invalid="ignore"):
            # p . (z - z_y): p sums to 1, so this is p . z - z_y without the cancellation
            # of two large numbers; 0 * -inf (an excluded class) counts as 0.
            lin = np.where(p > 0, p * (z - zy), 0.0).sum(axis=1)
            if alpha == 1.0:
                # Shannon: -sum p log p + p . z - z_y = logsumexp(z) - z_y
                lse = np.empty(rows.rows)
                _kernels.logsumexp_rows(z, lse)
                per_row = lse - zy[:, 0]
            else:
                omega = (1.0 - (p**alpha).sum(axis=1)) / (alpha * (alpha - 1.0))
                per_row = omega + lin
        per_row = np.where(live, per_row, 0.0)
        loss = _reduction.reduce(per_row, reduction, denom, result_dtype, rows.batch_shape)
    if want_grad:
        grad = p
        grad[r[live], t[live]] -= 1.0
        grad[~live] = 0.0
        grad *= _reduction.mean_scale(reduction, denom)
        grad = rows.restore(grad).astype(result_dtype, copy=False)
    return loss, grad


_LOSS_DOC = """
    Parameters
    ----------
    logits : array_like
        Scores, shape ``(..., C)`` with the class axis ``axis``.
    target : array_like of int
        Class indices, ``logits``' shape without the class axis.
    {alpha}axis : int, default -1
    ignore_index : int, optional
        Rows whose target equals it contribute no loss and no gradient, and do not
        count in the mean.
    reduction : {{"mean", "sum", "none"}}, default "mean"
"""


def entmax_loss(logits: ArrayLike, target: ArrayLike, *, alpha: float = 1.5, axis: int = -1,
                ignore_index: int | None = None, reduction: str = "mean") -> Loss:
    r"""The entmax (Tsallis) Fenchel-Young loss: :math:`L(z, y) = H^T_\alpha(p) + p
    \cdot z - z_y` with :math:`p = \alpha\text{-entmax}(z)`.

    Non-negative, 0 exactly when :math:`p` is the one-hot of ``y``; its gradient is
    :math:`p - e_y` (:func:`entmax_loss_grad`). At alpha = 1 it is the cross-entropy
    ``logsumexp(z) - z_y``; at alpha = 2, :func:`sparsemax_loss`. As the ``entmax``
    package's ``entmax_bisect_loss`` (and ``entmax15_loss`` at alpha = 1.5).
    {doc}
    References
    ----------
    M. Blondel, A. F. T. Martins, V. Niculae, "Learning with Fenchel-Young Losses",
    JMLR 21, 2020.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.entmax_loss([[3.0, 0.0, -1.0]], [0]))  # entmax15 puts all mass on 0
    0.0
    >>> round(float(smk.entmax_loss([[1.0, 0.5, -2.0]], [1], alpha=1.5)), 6)
    0.684371
    """
    return _fy_loss(logits, target, check_alpha(alpha), axis, ignore_index, reduction, True, False)[0]


def entmax_loss_grad(logits: ArrayLike, target: ArrayLike, *, alpha: float = 1.5, axis: int = -1,
                     ignore_index: int | None = None, reduction: str = "mean") -> FloatArray:
    """Gradient of :func:`entmax_loss` with respect to ``logits``: ``p - onehot(y)``
    per row (times 1/N for the mean), ``logits``' shape."""
    return _fy_loss(logits, target, check_alpha(alpha), axis, ignore_index, reduction, False, True)[1]


def entmax_loss_and_grad(logits: ArrayLike, target: ArrayLike, *, alpha: float = 1.5,
                         axis: int = -1, ignore_index: int | None = None,
                         reduction: str = "mean") -> tuple[Loss, FloatArray]:
    """:func:`entmax_loss` and :func:`entmax_loss_grad` from one forward pass."""
    return _fy_loss(logits, target, check_alpha(alpha), axis, ignore_index, reduction, True, True)


def sparsemax_loss(logits: ArrayLike, target: ArrayLike, *, axis: int = -1,
                   ignore_index: int | None = None, reduction: str = "mean") -> Loss:
    r"""The sparsemax loss (Martins and Astudillo 2016): :math:`L(z, y) = (1 - \|p\|^2)/2
    + p \cdot z - z_y` with :math:`p = \mathrm{sparsemax}(z)`; :func:`entmax_loss` at
    alpha = 2, as the ``entmax`` package's ``sparsemax_loss``.
    {doc}
    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.sparsemax_loss([[1.0, 0.5, -2.0]], [1]))  # p = (0.75, 0.25, 0)
    0.5625
    """
    return _fy_loss(logits, target, 2.0, axis, ignore_index, reduction, True, False)[0]


def sparsemax_loss_grad(logits: ArrayLike, target: ArrayLike, *, axis: int = -1,
                        ignore_index: int | None = None, reduction: str = "mean") -> FloatArray:
    """Gradient of :func:`sparsemax_loss`: ``sparsemax(z) - onehot(y)`` per row."""
    return _fy_loss(logits, target, 2.0, axis, ignore_index, reduction, False, True)[1]


def sparsemax_loss_and_grad(logits: ArrayLike, target: ArrayLike, *, axis: int = -1,
                            ignore_index: int | None = None, reduction: str = "mean") -> tuple[Loss, FloatArray]:
    """:func:`sparsemax_loss` and :func:`sparsemax_loss_grad` from one forward pass."""
    return _fy_loss(logits, target, 2.0, axis, ignore_index, reduction, True, True)


entmax_loss.__doc__ = (entmax_loss.__doc__ or "").replace(
    "{doc}", _LOSS_DOC.format(alpha="alpha : float, default 1.5\n        ``alpha >= 1``.\n    "))
sparsemax_loss.__doc__ = (sparsemax_loss.__doc__ or "").replace("{doc}", _LOSS_DOC.format(alpha=""))
