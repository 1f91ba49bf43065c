"""Binary cross-entropy, of probabilities and fused with the sigmoid: the loss
objects, each forward beside its backward, and the public functions over them.

Elementwise losses: "mean" divides by the element count (PyTorch's), through the
shared reduction layer.
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np

from .. import _kernels, _reduction
from .._typing import ArrayLike, FloatArray, Loss
from .._validation import (
    as_float_array,
    check_reduction,
    check_smoothing,
    check_weights,
    fmt_pos,
    real_array,
    where_first,
)

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "binary_cross_entropy_and_grad",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_grad",
    "binary_cross_entropy_with_logits_and_grad",
]

# PyTorch's binary_cross_entropy clamps each log at -100 and divides its gradient
# by max(p (1 - p), 1e-12); we keep both so the values and gradients equal torch's.
# (Its 1e-12 is a float32 constant, 9.99999996e-13: p = 0, y = 1 gives a gradient
# of -1.000000004e12 in float64.)
BCE_LOG_FLOOR = -100.0
BCE_GRAD_EPS = float(np.float32(1e-12))


def _pair_same_shape(a: Any, b: Any, names: tuple[str, str]
                     ) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """Two real arrays of the same shape, in a's compute dtype (b converted to it)."""
    a_arr, result_dtype = as_float_array(a, names[0])
    b_arr = real_array(b, names[1])
    if b_arr.shape != a_arr.shape:
        raise ValueError(
            f"{names[1]} has shape {b_arr.shape}, but {names[0]} has shape {a_arr.shape}"
        )
    return a_arr, b_arr.astype(a_arr.dtype, copy=False), result_dtype


def _elementwise_weight(value: Any, name: str) -> np.ndarray | None:
    """Finite weights >= 0 of any shape (broadcast to the input's per call)."""
    if value is None:
        return None
    arr = real_array(value, name)
    return check_weights(arr, arr.shape, np.float64, name)


def _broadcast(w: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if w is None:
        return None
    try:
        fits = np.broadcast_shapes(w.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{name} with shape {w.shape} does not broadcast to {tuple(shape)}")
    return w


def _softplus64(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) in float64 on the package's own C kernel."""
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    _kernels.softplus_flat(flat, out)
    return out.reshape(np.shape(x))


def _smooth(y: np.ndarray, eps: float) -> np.ndarray:
    """Keras' binary label smoothing: targets pulled towards 1/2, ``y (1 - eps) + eps / 2``."""
    return y * (1.0 - eps) + 0.5 * eps if eps else y


class _Elementwise:
    """Shared by the binary losses: options checked once, "mean" over elements."""

    def __init__(self, reduction: str) -> None:
        self.reduction = check_reduction(reduction)

    def _finish(self, loss: np.ndarray, grad: np.ndarray | None, w: np.ndarray | None,
                result_dtype: np.dtype) -> tuple[Any, np.ndarray | None]:
        if w is not None:
            loss = loss * w
        value = _reduction.reduce(loss, self.reduction, float(loss.size), result_dtype)
        if grad is None:
            return value, None
        grad = grad * _reduction.mean_scale(self.reduction, float(loss.size))
        if w is not None:
            grad = grad * w
        return value, np.asarray(grad.astype(result_dtype))


class BCELoss(_Elementwise):
    """Binary cross-entropy of probabilities, options checked once (see
    :func:`binary_cross_entropy`).

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.BCELoss(reduction="sum")([0.5], [1.0]))
    0.6931471805599453
    """

    def __init__(self, *, weight: ArrayLike | None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.weight = _elementwise_weight(weight, "weight")
        self.label_smoothing = check_smoothing(label_smoothing)

    def _forward(self, probs: Any, target: Any, want_grad: bool) -> tuple[Any, np.ndarray | None]:
        p, y, result_dtype = _pair_same_shape(probs, target, ("probs", "target"))
        w = _broadcast(self.weight, p.shape, "weight")
        bad = ~((p >= 0) & (p <= 1))  # also NaN
        if bad.any():
            pos = where_first(bad)
            raise ValueError(f"probs must be in [0, 1], got {p[pos].item()!r} at probs{fmt_pos(pos)}")
        pd, yd = p.astype(np.float64), _smooth(y.astype(np.float64), self.label_smoothing)
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(pd), BCE_LOG_FLOOR)
            log_1mp = np.maximum(np.log1p(-pd), BCE_LOG_FLOOR)
        loss = -(yd * log_p + (1.0 - yd) * log_1mp)
        # backward, PyTorch's: (p - y) / max(p (1 - p), 1e-12)
        grad = (pd - yd) / np.maximum(pd * (1.0 - pd), BCE_GRAD_EPS) if want_grad else None
        return self._finish(loss, grad, w, result_dtype)

    def loss(self, probs: ArrayLike, target: ArrayLike) -> Loss:
        """The reduced loss."""
        return self._forward(probs, target, False)[0]

    __call__ = loss

    def grad(self, probs: ArrayLike, target: ArrayLike) -> FloatArray:
        """The gradient of :meth:`loss` with respect to ``probs``."""
        return self.loss_and_grad(probs, target)[1]

    def loss_and_grad(self, probs: ArrayLike, target: ArrayLike
                      ) -> tuple[Loss, FloatArray]:
        """``(loss, grad)`` in one call."""
        loss, grad = self._forward(probs, target, True)
        return loss, cast(np.ndarray, grad)


class BCEWithLogitsLoss(_Elementwise):
    """Binary cross-entropy of ``sigmoid(logits)``, fused, options checked once (see
    :func:`binary_cross_entropy_with_logits`).

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.BCEWithLogitsLoss(reduction="sum")([0.0], [1.0]))
    0.6931471805599453
    """

    def __init__(self, *, weight: ArrayLike | None = None, pos_weight: ArrayLike | None = None,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.weight = _elementwise_weight(weight, "weight")
        self.pos_weight = _elementwise_weight(pos_weight, "pos_weight")
        self.label_smoothing = check_smoothing(label_smoothing)

    def _forward(self, logits: Any, target: Any, want_grad: bool) -> tuple[Any, np.ndarray | None]:
        z, y, result_dtype = _pair_same_shape(logits, target, ("logits", "target"))
        w = _broadcast(self.weight, z.shape, "weight")
        pw = _broadcast(self.pos_weight, z.shape, "pos_weight")
        zd, yd = z.astype(np.float64), _smooth(y.astype(np.float64), self.label_smoothing)
        # -[pw y log sigma(z) + (1 - y) log(1 - sigma(z))] = pw y softplus(-z) + (1 - y) softplus(z);
        # log sigma(z) = -softplus(-z) in log space, finite for every finite z (optax's
        # sigmoid_binary_cross_entropy). Terms with a zero coefficient are left out, so
        # z = +-inf with the matching label gives 0, not 0 * inf.
        a = yd if pw is None else pw * yd
        b = 1.0 - yd
        with np.errstate(invalid="ignore"):
            loss = (np.where(a != 0, a * _softplus64(-zd), 0.0)
                    + np.where(b != 0, b * _softplus64(zd), 0.0))
        # A NaN logit is NaN whatever the weights (torch's result; docs/losses.md).
        loss = np.where(np.isnan(zd), np.nan, loss)
        grad = None
        if want_grad:
            with np.errstate(over="ignore"):
                s = 1.0 / (1.0 + np.exp(-zd))
            grad = s * (a + b) - a  # d/dz = -a (1 - sigma) + b sigma
        return self._finish(loss, grad, w, result_dtype)

    def loss(self, logits: ArrayLike, target: ArrayLike) -> Loss:
        """The reduced loss."""
        return self._forward(logits, target, False)[0]

    __call__ = loss

    def grad(self, logits: ArrayLike, target: ArrayLike) -> FloatArray:
        """The gradient of :meth:`loss` with respect to ``logits``."""
        return self.loss_and_grad(logits, target)[1]

    def loss_and_grad(self, logits: ArrayLike, target: ArrayLike
                      ) -> tuple[Loss, FloatArray]:
        """``(loss, grad)`` in one call."""
        loss, grad = self._forward(logits, target, True)
        return loss, cast(np.ndarray, grad)


def binary_cross_entropy(probs: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                         reduction: str = "mean", label_smoothing: float = 0.0) -> Loss:
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
    label_smoothing : float in [0, 1], default 0
        Keras' binary label smoothing: the target ``y`` becomes
        ``y (1 - label_smoothing) + label_smoothing / 2``.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> print(smk.binary_cross_entropy([0.0, 0.5], [1.0, 1.0], reduction="none"))
    [100.           0.69314718]
    """
    return BCELoss(weight=weight, reduction=reduction, label_smoothing=label_smoothing).loss(probs, target)


def binary_cross_entropy_grad(probs: ArrayLike, target: ArrayLike, *,
                              weight: ArrayLike | None = None, reduction: str = "mean",
                              label_smoothing: float = 0.0) -> FloatArray:
    r"""Gradient of :func:`binary_cross_entropy` with respect to ``probs``, as PyTorch
    computes it: ``weight * (p - y) / max(p (1 - p), 1e-12)`` (times 1/N for "mean").

    Examples
    --------
    >>> import softmaxkit as smk
    >>> print(smk.binary_cross_entropy_grad([0.5], [1.0]))
    [-2.]
    """
    return BCELoss(weight=weight, reduction=reduction, label_smoothing=label_smoothing).grad(probs, target)


def binary_cross_entropy_and_grad(probs: ArrayLike, target: ArrayLike, *,
                                  weight: ArrayLike | None = None, reduction: str = "mean",
                                  label_smoothing: float = 0.0) -> tuple[Loss, FloatArray]:
    r"""``(binary_cross_entropy(...), binary_cross_entropy_grad(...))`` in one call.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> loss, grad = smk.binary_cross_entropy_and_grad([0.5], [1.0])
    >>> round(float(loss), 6), grad
    (0.693147, array([-2.]))
    """
    return BCELoss(weight=weight, reduction=reduction, label_smoothing=label_smoothing).loss_and_grad(probs, target)


def binary_cross_entropy_with_logits(logits: ArrayLike, target: ArrayLike, *,
                                     weight: ArrayLike | None = None,
                                     pos_weight: ArrayLike | None = None,
                                     reduction: str = "mean", label_smoothing: float = 0.0) -> Loss:
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
    label_smoothing : float in [0, 1], default 0
        Keras' binary label smoothing: the target ``y`` becomes
        ``y (1 - label_smoothing) + label_smoothing / 2`` (before ``pos_weight``).

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.binary_cross_entropy_with_logits([-800.0, 0.0], [1.0, 1.0], reduction="none").tolist()
    [800.0, 0.6931471805599453]
    """
    return BCEWithLogitsLoss(weight=weight, pos_weight=pos_weight, reduction=reduction,
                             label_smoothing=label_smoothing).loss(logits, target)


def binary_cross_entropy_with_logits_grad(logits: ArrayLike, target: ArrayLike, *,
                                          weight: ArrayLike | None = None,
                                          pos_weight: ArrayLike | None = None,
                                          reduction: str = "mean",
                                          label_smoothing: float = 0.0) -> FloatArray:
    r"""Gradient of :func:`binary_cross_entropy_with_logits` with respect to ``logits``:
    ``weight * (sigmoid(z) * (1 - y + pos_weight * y) - pos_weight * y)``, which is
    ``sigmoid(z) - y`` without weights (times 1/N for "mean").

    Examples
    --------
    >>> import softmaxkit as smk
    >>> print(smk.binary_cross_entropy_with_logits_grad([0.0, 0.0], [1.0, 0.0], reduction="sum"))
    [-0.5  0.5]
    """
    return BCEWithLogitsLoss(weight=weight, pos_weight=pos_weight, reduction=reduction,
                             label_smoothing=label_smoothing).grad(logits, target)


def binary_cross_entropy_with_logits_and_grad(logits: ArrayLike, target: ArrayLike, *,
                                              weight: ArrayLike | None = None,
                                              pos_weight: ArrayLike | None = None,
                                              reduction: str = "mean", label_smoothing: float = 0.0
                                              ) -> tuple[Loss, FloatArray]:
    r"""``(binary_cross_entropy_with_logits(...), binary_cross_entropy_with_logits_grad(...))``.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> loss, grad = smk.binary_cross_entropy_with_logits_and_grad([0.0], [1.0])
    >>> round(float(loss), 6), grad
    (0.693147, array([-0.5]))
    """
    return BCEWithLogitsLoss(weight=weight, pos_weight=pos_weight, reduction=reduction,
                             label_smoothing=label_smoothing).loss_and_grad(logits, target)
