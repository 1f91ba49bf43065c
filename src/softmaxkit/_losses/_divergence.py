"""Divergences and information: KL divergence (with its gradient), entropy and
perplexity.
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np

from .. import _reduction
from .._typing import ArrayLike, FloatArray, Loss
from .._softmax import log_softmax, softmax
from .._validation import (
    check_bool,
    check_prob_rows,
    check_reduction,
    class_rows,
    fmt_pos,
    where_first,
)
from ._binary import _pair_same_shape
from ._cross_entropy import cross_entropy

__all__ = ["KLDivLoss", "kl_div", "kl_div_grad", "kl_div_and_grad", "entropy", "perplexity"]


class KLDivLoss:
    """Kullback-Leibler divergence with its options checked once (see :func:`kl_div`).

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> kl = smk.KLDivLoss(reduction="batchmean")
    >>> float(kl(np.log([[0.25, 0.75]]), np.array([[0.5, 0.5]])))
    0.14384103622589045
    """

    def __init__(self, *, log_target: bool = False, reduction: str = "mean") -> None:
        self.log_target = check_bool(log_target, "log_target")
        self.reduction = check_reduction(reduction, ("none", "sum", "mean", "batchmean"))

    def _forward(self, log_q: Any, p: Any, want_grad: bool) -> tuple[Any, np.ndarray | None]:
        lq, t, result_dtype = _pair_same_shape(log_q, p, ("log_q", "p"))
        lqd, td = lq.astype(np.float64), t.astype(np.float64)
        if self.log_target:
            pt = np.exp(td)
            with np.errstate(invalid="ignore"):
                point = np.where(pt != 0, pt * (td - lqd), 0.0)
        else:
            bad = ~(td >= 0)
            if bad.any():
                pos = where_first(bad)
                raise ValueError(f"p must hold probabilities >= 0, got {t[pos].item()!r} at "
                                 f"p{fmt_pos(pos)} (NaN is rejected)")
            pt = td
            with np.errstate(divide="ignore", invalid="ignore"):
                # p log p - p log q, with 0 log 0 = 0 and p = 0 terms left out
                point = np.where(pt != 0, pt * (np.log(np.where(pt != 0, pt, 1.0)) - lqd), 0.0)
        # "batchmean" divides the sum by the batch size (the first axis), "mean" by the
        # element count: PyTorch's meanings.
        if self.reduction == "batchmean":
            denom = float(lq.shape[0] if lq.ndim else 1)
            value = _reduction.reduce(point, "mean", denom, result_dtype)
        else:
            denom = float(lq.size)
            value = _reduction.reduce(point, self.reduction, denom, result_dtype)
        if not want_grad:
            return value, None
        # backward: d/d log_q of p (log p - log q) is -p
        scale = _reduction.mean_scale(self.reduction, denom)
        return value, np.asarray((-pt * scale).astype(result_dtype))

    def loss(self, log_q: ArrayLike, p: ArrayLike) -> Loss:
        """The reduced divergence."""
        return self._forward(log_q, p, False)[0]

    __call__ = loss

    def grad(self, log_q: ArrayLike, p: ArrayLike) -> FloatArray:
        """The gradient of :meth:`loss` with respect to ``log_q``."""
        return self.loss_and_grad(log_q, p)[1]

    def loss_and_grad(self, log_q: ArrayLike, p: ArrayLike) -> tuple[Loss, FloatArray]:
        """``(loss, grad)`` in one call."""
        loss, grad = self._forward(log_q, p, True)
        return loss, cast(np.ndarray, grad)


def kl_div(log_q: ArrayLike, p: ArrayLike, *, log_target: bool = False,
           reduction: str = "mean") -> Loss:
    r"""Kullback-Leibler divergence ``KL(p || q) = sum p (log p - log q)``, pointwise
    terms as PyTorch's ``kl_div(input=log_q, target=p)``.

    Parameters
    ----------
    log_q : array_like
        Log-probabilities of the model (the ``input`` of PyTorch).
    p : array_like
        Target probabilities (>= 0; NaN is a ValueError), or their logs with
        ``log_target=True`` (any value; a NaN gives NaN, as in PyTorch); same shape.
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
    return KLDivLoss(log_target=log_target, reduction=reduction).loss(log_q, p)


def kl_div_grad(log_q: ArrayLike, p: ArrayLike, *, log_target: bool = False,
                reduction: str = "mean") -> FloatArray:
    r"""Gradient of :func:`kl_div` with respect to ``log_q``: ``-p`` (``-exp(p)`` with
    ``log_target``), times the reduction's scale.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> smk.kl_div_grad(np.log([[0.25, 0.75]]), np.array([[0.5, 0.5]]), reduction="sum")
    array([[-0.5, -0.5]])
    """
    return KLDivLoss(log_target=log_target, reduction=reduction).grad(log_q, p)


def kl_div_and_grad(log_q: ArrayLike, p: ArrayLike, *, log_target: bool = False,
                    reduction: str = "mean") -> tuple[Loss, FloatArray]:
    r"""``(kl_div(...), kl_div_grad(...))`` in one call.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> loss, grad = smk.kl_div_and_grad(np.log([[0.5, 0.5]]), np.array([[0.5, 0.5]]), reduction="sum")
    >>> float(loss), grad
    (0.0, array([[-0.5, -0.5]]))
    """
    return KLDivLoss(log_target=log_target, reduction=reduction).loss_and_grad(log_q, p)


def entropy(p: ArrayLike, axis: int = -1, *, from_logits: bool = False) -> Loss:
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
    from_logits = check_bool(from_logits, "from_logits")
    rows, result_dtype, _ = class_rows(p, axis, "p")
    block = rows.block
    if from_logits:
        probs = softmax(block, axis=-1).astype(np.float64)
        lp = log_softmax(block, axis=-1).astype(np.float64)
    else:
        check_prob_rows(block, "p", "pass logits with from_logits=True")
        probs = block.astype(np.float64)
        with np.errstate(divide="ignore"):
            lp = np.log(probs)
    with np.errstate(invalid="ignore"):
        h = -np.where(probs != 0, probs * lp, 0.0).sum(axis=1)
    h[np.isnan(block).any(axis=1)] = np.nan
    out = h.astype(result_dtype).reshape(rows.batch_shape)
    return out[()] if out.ndim == 0 else out


def perplexity(input: ArrayLike, target: ArrayLike, *, axis: int = -1, from_logits: bool = True,
               weight: ArrayLike | None = None, ignore_index: int | None = None) -> Loss:
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
