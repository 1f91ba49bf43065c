"""Cross-entropy (logits or probabilities, hard or soft labels) and NLL: the loss
objects, each forward beside its backward, and the public functions over them.

A loss object checks its options once (scikit-learn's ``BaseLoss``); each call checks
only the arrays. ``loss_gradient`` is the unchecked fast path for callers that hold
valid (rows, C) blocks already (the estimator's solvers, the fused linear path,
``softmaxkit.torch``).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, TypeVar, cast

import numpy as np

from .. import _kernels, _reduction
from .._typing import ArrayLike, FloatArray, Loss
from .._validation import (
    Rows,
    check_bool,
    check_class_weight,
    check_ignore_index,
    check_out,
    check_prob_rows,
    check_reduction,
    check_smoothing,
    check_softcap,
    check_temperature,
    check_weights,
    check_z_loss,
    class_rows,
    hard_target,
    is_half,
    real_array,
    soft_target,
)

__all__ = [
    "CrossEntropyLoss",
    "NLLLoss",
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_and_grad",
    "nll_loss",
    "nll_loss_grad",
    "nll_loss_and_grad",
    "PROB_FLOOR",
]

# from_logits=False clips probabilities to [PROB_FLOOR, 1] before the log, as Keras
# does (its epsilon 1e-7): a true-class probability of 0 costs -log(1e-7) = 16.12,
# and the gradient -1/p is at most 1e7, finite even in float32. (PyTorch's -100
# clamp of the log would allow p down to 3.7e-44, whose 1/p overflows float32.)
PROB_FLOOR = 1e-7


# Weights whose product exceeds this are rescaled for a "mean" (see _batch).
_HUGE = 2.0**500


def _same_or_disjoint(out: np.ndarray, block: np.ndarray) -> bool:
    """Whether a kernel may write ``out`` while reading ``block``: the same memory
    (each row is read fully before it is written) or none in common. A partial
    overlap (a shifted view of one buffer) is neither."""
    if not np.shares_memory(out, block):
        return True
    return (out.__array_interface__["data"][0] == block.__array_interface__["data"][0]
            and out.strides == block.strides)


def _transform_logits(z: np.ndarray, softcap: float | None, temperature: float,
                      want_grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``z' = softcap * tanh(z / softcap) / T`` (Gemma's soft-capping first, as part
    of the model; an RL sampler's temperature last), and ``dz'/dz`` when a gradient
    is wanted: ``(1 - tanh**2) / T``. The definition the fused linear path uses too."""
    if softcap is None:
        return z / z.dtype.type(temperature), (np.full(1, 1.0 / temperature, z.dtype)
                                               if want_grad else None)
    th = np.tanh(z / z.dtype.type(softcap))
    zt = th * z.dtype.type(softcap / temperature)
    chain = None
    if want_grad:
        chain = 1 - th * th
        chain *= z.dtype.type(1.0 / temperature)
    return zt, chain


class _Batch(NamedTuple):
    """One call's arrays, checked and in the kernels' layout."""

    rows: Rows  # the input as a (rows, C) block, class axis last
    result_dtype: np.dtype
    weight: np.ndarray | None  # (C,) in the block's dtype
    target: np.ndarray | None  # (rows,) int64 (hard labels)
    q: np.ndarray | None  # (rows, C) class probabilities (soft labels)
    sample_weight: np.ndarray | None  # (rows,) float64
    row_weight: np.ndarray  # (rows,) float64: w[y] (hard labels; 0 if ignored) or 1
    denom: float  # the "mean" denominator


def _ce_probs_rows(p: np.ndarray, t_hard: np.ndarray | None, q: np.ndarray | None,
                   weight: np.ndarray | None, ignore_index: int | None, eps: float,
                   want_grad: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Cross-entropy from probabilities (from_logits=False), NumPy, float64:
    (per-row loss, dL/dp or None).

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
    else:  # hard labels: t_hard is the (rows,) int64 target
        t_hard = cast(np.ndarray, t_hard)
        live = np.ones(rows, bool) if ignore_index is None else t_hard != ignore_index
        tt = np.where(live, t_hard, 0)
        roww = np.where(live, w[tt] if cols else 0.0, 0.0)
        v = np.zeros((rows, cols))
        if cols:
            v[live] = cs * w
            v[np.flatnonzero(live), tt[live]] += (1.0 - eps) * roww[live]
    loss = (v * nlp).sum(axis=1)
    dldp = np.where(pd >= PROB_FLOOR, -v / clipped, 0.0) if want_grad else None
    return loss, dldp


class CrossEntropyLoss:
    """Cross-entropy between softmax(logits) (or probabilities) and labels, with its
    options checked once.

    Parameters are those of :func:`cross_entropy` that do not depend on the batch:
    ``weight`` (per class), ``ignore_index``, ``label_smoothing``, ``reduction`` and
    ``from_logits``. Calls take the batch: ``input``, ``target``, ``axis`` and
    ``sample_weight``.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> ce = smk.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")
    >>> loss, grad = ce.loss_and_grad(np.zeros((2, 4)), [0, 3])
    >>> round(float(loss), 6)  # uniform prediction: log 4 per row
    2.772589
    """

    def __init__(self, *, weight: ArrayLike | None = None, ignore_index: int | None = None,
                 label_smoothing: float = 0.0, reduction: str = "mean",
                 from_logits: bool = True, z_loss: float = 0.0,
                 softcap: float | None = None, temperature: float = 1.0) -> None:
        self.from_logits = check_bool(from_logits, "from_logits")
        self.reduction = check_reduction(reduction)
        self.label_smoothing = check_smoothing(label_smoothing)
        self.ignore_index = check_ignore_index(ignore_index)
        self.weight = None if weight is None else check_class_weight(weight)
        self.z_loss = check_z_loss(z_loss)
        self.softcap = check_softcap(softcap)
        self.temperature = check_temperature(temperature)
        self._transformed = self.softcap is not None or self.temperature != 1.0
        if not self.from_logits and (self._transformed or self.z_loss):
            raise ValueError("z_loss, softcap and temperature apply to logits "
                             "(from_logits=True), not to probabilities")
        self._weight_as: dict[np.dtype, np.ndarray] = {}

    def __repr__(self) -> str:
        opts = []
        if self.weight is not None:
            opts.append(f"weight={self.weight.tolist()!r}")
        if self.ignore_index is not None:
            opts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            opts.append(f"label_smoothing={self.label_smoothing}")
        if self.reduction != "mean":
            opts.append(f"reduction={self.reduction!r}")
        if not self.from_logits:
            opts.append("from_logits=False")
        for name, default in (("z_loss", 0.0), ("softcap", None), ("temperature", 1.0)):
            if getattr(self, name) != default:
                opts.append(f"{name}={getattr(self, name)!r}")
        return f"CrossEntropyLoss({', '.join(opts)})"

    def _class_weight(self, n_classes: int, dtype: np.dtype) -> np.ndarray | None:
        """The class weights in ``dtype`` (converted once per dtype)."""
        if self.weight is None:
            return None
        w = self._weight_as.get(dtype)
        if w is None or w.shape[0] != n_classes:
            if self.weight.shape != (n_classes,):
                raise ValueError(f"weight has shape {self.weight.shape}, expected ({n_classes},)")
            top = np.finfo(dtype).max
            if (self.weight > top).any():
                if self.reduction != "mean":  # a mean is rescaled in _batch instead
                    i = int(np.argmax(self.weight > top))
                    raise ValueError(
                        f"weight[{i}] = {float(self.weight[i])!r} is beyond the range of {np.dtype(dtype)} "
                        f"(the input's dtype), so the weighted loss cannot be represented")
                w = np.ascontiguousarray(self.weight / self.weight.max(), dtype=dtype)
            else:
                w = np.ascontiguousarray(self.weight, dtype=dtype)
            self._weight_as[dtype] = w
        return w

    # ------------------------------------------------------------- checked calls

    def _batch(self, input: Any, target: Any, axis: Any, sample_weight: Any) -> _Batch:
        # float16 / bfloat16 logits with integer labels run the 16-bit kernel (float32
        # inside, the gradient rounded once); other options compute in float32.
        half_ok = self.from_logits and not self._transformed and not self.z_loss
        rows, result_dtype, ax = class_rows(input, axis, keep_half=half_ok)
        dtype = rows.block.dtype
        tgt = real_array(target, "target")
        if tgt.dtype.kind == "b":
            raise TypeError("target must hold integer class indices or float class "
                            "probabilities, got dtype bool")
        soft = tgt.dtype.kind == "f"
        if soft and is_half(dtype):
            rows, result_dtype, ax = class_rows(input, axis)
            dtype = rows.block.dtype
        if soft and self.ignore_index is not None:
            raise ValueError("ignore_index applies to integer class indices, not to a "
                             "target of class probabilities")
        w = self._class_weight(rows.cols, np.dtype(np.float32) if is_half(dtype) else dtype)
        sw = None
        if sample_weight is not None:
            sw = check_weights(sample_weight, rows.batch_shape, np.float64, "sample_weight",
                               broadcast=True)
            sw = np.ascontiguousarray(np.broadcast_to(sw, rows.batch_shape)).reshape(-1)
        t = q = None
        if soft:
            q = soft_target(tgt, rows, ax, dtype)
            roww = np.ones(rows.rows)
        else:
            t = hard_target(tgt, rows.cols, rows.batch_shape, self.ignore_index,
                            f"the input's shape {rows.shape} without the class axis")
            if self.ignore_index is None:  # every row counts
                roww = np.ones(rows.rows) if w is None else w[t].astype(np.float64)
            else:
                live = t != self.ignore_index
                roww = np.zeros(rows.rows)
                roww[live] = 1.0 if w is None else w[t[live]]
        if not self.from_logits:
            check_prob_rows(rows.block, "input", dtype=result_dtype)
        if self.reduction == "mean" and _HUGE < (1.0 if w is None else float(w.max(initial=0))) \
                * (1.0 if sw is None else float(sw.max(initial=0))):
            # The weighted mean does not depend on the weights' scale; weights this
            # large would overflow the per-row losses or the denominator to inf, so
            # the mean is taken over the weights divided by their maximum.
            if w is not None:
                wmax = w.max()
                w, roww = w / wmax, roww / wmax
            if sw is not None:
                sw = sw / sw.max()
        denom = float((roww if sw is None else roww * sw).sum())
        return _Batch(rows, result_dtype, w, t, q, sw, roww, denom)

    def _compute(self, b: _Batch, want_grad: bool, out: np.ndarray | None = None
                 ) -> tuple[Any, np.ndarray | None]:
        rows, dtype = b.rows, b.rows.block.dtype
        dloss = _reduction.upstream(self.reduction, b.denom, b.sample_weight) if want_grad else None
        eps = self.label_smoothing
        grad2d = None
        direct = False
        z, chain = rows.block, None
        if self._transformed:
            z, chain = _transform_logits(z, self.softcap, self.temperature, want_grad)
        if not self.from_logits:
            per_row, dldp = _ce_probs_rows(rows.block, b.target, b.q, b.weight,
                                           self.ignore_index, eps, want_grad)
            if dldp is not None:
                g = np.broadcast_to(np.asarray(dloss, dtype=np.float64), (rows.rows,))
                grad2d = (dldp * g[:, None]).astype(dtype)
        elif b.q is not None:
            per_row, grad2d = _kernels.ce_soft_rows(z, b.q, weight=b.weight,
                                                    label_smoothing=eps, dloss=dloss)
        else:
            # out= in the kernel's layout takes the gradient directly (no allocation, no
            # copy); the kernel reads each row before writing it, so out may be the input.
            direct = (want_grad and out is not None and rows.identity and chain is None
                      and not self.z_loss and out.dtype == dtype and out.flags.c_contiguous
                      and _same_or_disjoint(out, rows.block))
            per_row, _, grad2d = _kernels.ce_hard_rows(
                z, b.target, weight=b.weight, ignore_index=self.ignore_index,
                label_smoothing=eps, dloss=dloss,
                grad_out=out.reshape(rows.rows, rows.cols) if direct and out is not None else None)
        if dtype == np.float32 and (eps or b.q is not None) and self.from_logits \
                and not self._transformed:
            per_row, grad2d = self._refine_f32(b, per_row, grad2d, dloss)
        if self.z_loss:
            per_row, grad2d = self._add_z_loss(b, z, per_row, grad2d, dloss)
        if chain is not None and grad2d is not None:
            grad2d *= chain  # back through z' = softcap tanh(z / softcap) / T
        if b.sample_weight is not None:
            # a zero sample weight excludes its row, even one whose loss is inf
            per_row = np.where(b.sample_weight != 0, per_row * b.sample_weight, 0.0)
        loss = _reduction.reduce(per_row, self.reduction, b.denom, b.result_dtype,
                                 rows.batch_shape)
        if not want_grad:
            return loss, None
        if direct:
            return loss, out
        g = rows.restore(cast(np.ndarray, grad2d))
        if out is not None:
            np.copyto(out, g, casting="unsafe")
            return loss, out
        with np.errstate(over="ignore"):  # float16 rounds large gradients to inf
            return loss, g.astype(b.result_dtype) if g.dtype != b.result_dtype else g

    def _add_z_loss(self, b: _Batch, z: np.ndarray, per_row: np.ndarray,
                    grad2d: np.ndarray | None, dloss: float | np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """PaLM's auxiliary ``z_loss * w[y] * lse(z)**2`` per counted row (the row's
        class weight, so a "mean" divides both terms by the same total weight; the
        same definition as the fused linear path), and its gradient
        ``2 z_loss w[y] lse softmax(z)``."""
        lse = np.empty(z.shape[0], dtype=z.dtype)
        _kernels.logsumexp_rows(z, lse)
        lse64 = lse.astype(np.float64)
        zw = self.z_loss * b.row_weight
        with np.errstate(invalid="ignore", over="ignore"):
            per_row = per_row + np.where(zw != 0, zw * lse64 * lse64, 0.0)
            if grad2d is not None and dloss is not None:
                coef = np.where(zw != 0, 2.0 * zw * lse64, 0.0) * dloss
                live = np.flatnonzero(coef)
                p = np.exp(z[live] - lse[live, None])
                grad2d[live] += (coef[live, None] * p).astype(grad2d.dtype)
        return per_row, grad2d

    def _refine_f32(self, b: _Batch, per_row: np.ndarray, grad2d: np.ndarray | None,
                    dloss: float | np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows of a float32 block whose smoothing or soft-label term overflowed.

        Those terms sum ``x - max`` over the row, which overflows float32 when the row
        spans more than float32's range (``[-3e38, 3e38]``); the exact loss is finite.
        Such rows (an inf loss from finite logits) are recomputed in float64; a cheap
        check over the per-row losses, so normal rows pay nothing.
        """
        bad = ~np.isfinite(per_row)
        if not bad.any():
            return per_row, grad2d
        bad &= np.isfinite(b.rows.block).all(axis=1)
        if not bad.any():
            return per_row, grad2d
        idx = np.flatnonzero(bad)
        x64 = b.rows.block[idx].astype(np.float64)
        w64 = None if b.weight is None else b.weight.astype(np.float64)
        d64 = dloss if dloss is None or np.ndim(dloss) == 0 else np.asarray(dloss)[idx]
        if b.q is not None:
            l64, g64 = _kernels.ce_soft_rows(x64, b.q[idx].astype(np.float64), weight=w64,
                                             label_smoothing=self.label_smoothing, dloss=d64)
        else:
            l64, _, g64 = _kernels.ce_hard_rows(
                x64, cast(np.ndarray, b.target)[idx], weight=w64, ignore_index=self.ignore_index,
                label_smoothing=self.label_smoothing, dloss=d64)
        per_row = per_row.copy()
        per_row[idx] = l64
        if grad2d is not None and g64 is not None:
            grad2d[idx] = g64
        return per_row, grad2d

    def loss(self, input: ArrayLike, target: ArrayLike, *, axis: int = -1,
             sample_weight: ArrayLike | None = None) -> Loss:
        """The reduced loss (a NumPy scalar, or per-row losses for "none")."""
        return self._compute(self._batch(input, target, axis, sample_weight), False)[0]

    __call__ = loss

    def grad(self, input: ArrayLike, target: ArrayLike, *, axis: int = -1,
             sample_weight: ArrayLike | None = None, out: np.ndarray | None = None
             ) -> FloatArray:
        """The gradient of :meth:`loss` with respect to ``input``."""
        return self.loss_and_grad(input, target, axis=axis, sample_weight=sample_weight,
                                  out=out)[1]

    def loss_and_grad(self, input: ArrayLike, target: ArrayLike, *, axis: int = -1,
                      sample_weight: ArrayLike | None = None, out: np.ndarray | None = None
                      ) -> tuple[Loss, FloatArray]:
        """``(loss, grad)`` from one pass."""
        b = self._batch(input, target, axis, sample_weight)
        if out is not None:
            check_out(out, b.rows.shape, b.result_dtype)
        loss, grad = self._compute(b, True, out)
        return loss, cast(np.ndarray, grad)

    # ------------------------------------------------------------- unchecked path

    def loss_gradient(self, raw: np.ndarray, target: np.ndarray, *,
                      sample_weight: np.ndarray | None = None,
                      grad_out: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """(reduced loss as a float, its gradient w.r.t. ``raw``) with NO checks.

        For callers that hold valid blocks (the estimator's solvers step by step):
        ``raw`` C-contiguous (n, C) float32/float64 logits (``from_logits`` must be
        True); ``target`` (n,) int64 class indices in [0, C) (or ``ignore_index``) or
        (n, C) class probabilities in raw's dtype; ``sample_weight`` None or float64
        (n,); ``grad_out`` None or a C-contiguous (n, C) array of raw's dtype (it may
        be ``raw``). "none" returns the sum. Costs little more than the kernel call.
        """
        if self._transformed or self.z_loss:  # the options' own passes: the full path
            b = self._batch(raw, target, -1, sample_weight)
            value, grad = self._compute(b, True, grad_out)
            return float(np.sum(value)), cast(np.ndarray, grad)
        n, n_classes = raw.shape
        w = None if self.weight is None else self._class_weight(n_classes, raw.dtype)
        soft = target.ndim == 2
        mean = self.reduction == "mean"
        denom = 1.0
        if mean:
            if soft or (w is None and self.ignore_index is None):
                denom = float(n) if sample_weight is None else float(sample_weight.sum())
            else:
                live = target != self.ignore_index
                roww = np.where(live, 1.0 if w is None else w[np.where(live, target, 0)], 0.0)
                denom = float(roww.sum() if sample_weight is None else roww @ sample_weight)
        dloss = _reduction.upstream("mean" if mean else "sum", denom, sample_weight)
        if soft:
            per_row, grad = _kernels.ce_soft_rows(raw, target, weight=w,
                                                  label_smoothing=self.label_smoothing,
                                                  dloss=dloss)
            if grad_out is not None:
                np.copyto(grad_out, cast(np.ndarray, grad))
                grad = grad_out
        else:
            per_row, _, grad = _kernels.ce_hard_rows(
                raw, target, weight=w, ignore_index=self.ignore_index,
                label_smoothing=self.label_smoothing, dloss=dloss, grad_out=grad_out)
        total = float(per_row.sum() if sample_weight is None else per_row @ sample_weight)
        if mean:
            total = total / denom if denom != 0 else float("nan")
        return total, cast(np.ndarray, grad)


class NLLLoss:
    """Negative log-likelihood of integer labels given log-probabilities, options
    checked once (see :func:`nll_loss`).

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> float(smk.NLLLoss(reduction="sum")(np.log([[0.5, 0.5]]), [1]))
    0.6931471805599453
    """

    def __init__(self, *, weight: ArrayLike | None = None, ignore_index: int | None = None,
                 reduction: str = "mean") -> None:
        self.reduction = check_reduction(reduction)
        self.ignore_index = check_ignore_index(ignore_index)
        self.weight = None if weight is None else check_class_weight(weight)

    def _forward(self, log_probs: Any, target: Any, axis: Any, want_grad: bool
                 ) -> tuple[Any, np.ndarray | None]:
        rows, result_dtype, _ = class_rows(log_probs, axis, "log_probs")
        dtype = rows.block.dtype
        tgt = real_array(target, "target")
        if tgt.dtype.kind not in "iu":
            raise ValueError(
                f"target must hold integer class indices, got dtype {tgt.dtype} (for class "
                "probabilities use cross_entropy)"
            )
        if self.weight is not None and self.weight.shape != (rows.cols,):
            raise ValueError(f"weight has shape {self.weight.shape}, expected ({rows.cols},)")
        t = hard_target(tgt, rows.cols, rows.batch_shape, self.ignore_index,
                        f"the input's shape {rows.shape} without the class axis")
        live = np.ones(rows.rows, bool) if self.ignore_index is None else t != self.ignore_index
        idx = np.flatnonzero(live)
        roww = np.zeros(rows.rows)
        roww[idx] = 1.0 if self.weight is None else self.weight.astype(dtype)[t[idx]]
        per_row = np.zeros(rows.rows)
        lp_t = rows.block[idx, t[idx]].astype(np.float64)
        with np.errstate(invalid="ignore"):
            # a zero weight leaves the row out even where its log-probability is -inf
            per_row[idx] = np.where(roww[idx] != 0, -roww[idx] * lp_t, 0.0)
        denom = float(roww.sum())
        loss = _reduction.reduce(per_row, self.reduction, denom, result_dtype, rows.batch_shape)
        if not want_grad:
            return loss, None
        # backward: d loss / d lp[i, y_i] = -weight[y_i] * dloss
        c = _reduction.mean_scale(self.reduction, denom)
        grad2d = np.zeros((rows.rows, rows.cols), dtype=dtype)
        grad2d[idx, t[idx]] = -c * roww[idx]
        g = rows.restore(grad2d)
        return loss, g.astype(result_dtype) if g.dtype != result_dtype else g

    def loss(self, log_probs: ArrayLike, target: ArrayLike, *, axis: int = -1) -> Loss:
        """The reduced loss."""
        return self._forward(log_probs, target, axis, False)[0]

    __call__ = loss

    def grad(self, log_probs: ArrayLike, target: ArrayLike, *, axis: int = -1
             ) -> FloatArray:
        """The gradient of :meth:`loss` with respect to ``log_probs``."""
        return self.loss_and_grad(log_probs, target, axis=axis)[1]

    def loss_and_grad(self, log_probs: ArrayLike, target: ArrayLike, *, axis: int = -1
                      ) -> tuple[Loss, FloatArray]:
        """``(loss, grad)`` in one call."""
        loss, grad = self._forward(log_probs, target, axis, True)
        return loss, cast(np.ndarray, grad)


# ------------------------------------------------------------------ public functions

_CE_DOC_PARAMS = """
    Parameters
    ----------
    input : array_like
        Logits (``from_logits=True``) or probabilities, with the class axis ``axis``.
        float16 and ``ml_dtypes.bfloat16`` logits with integer labels run a 16-bit
        kernel (float32 inside, the gradient rounded once to the input's dtype); other
        cases compute 16-bit inputs in float32 and round the result.
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
    z_loss : float >= 0, default 0
        PaLM's auxiliary loss: ``z_loss * w[y] * logsumexp(z')**2`` is added to each
        counted row's loss (``w[y]`` its class weight, 1 for soft labels), which
        keeps the softmax normaliser near 1. The returned loss includes it.
    softcap : float > 0, optional
        Gemma's logit soft-capping: the logits become ``softcap * tanh(z / softcap)``
        (so ``+-inf`` become ``+-softcap``), gradient included.
    temperature : float > 0, default 1
        The logits are divided by it after soft-capping: ``z' = cap(z) / T``.
        These three options mean the same in :func:`linear_cross_entropy`.
"""


_F = TypeVar("_F", bound=Callable[..., Any])


def _with_params(func: _F) -> _F:
    """Put the shared parameter list into a docstring's ``{params}`` slot."""
    func.__doc__ = (func.__doc__ or "").replace("    {params}\n", "\n" + _CE_DOC_PARAMS.lstrip("\n") + "\n")
    return func


@_with_params
def cross_entropy(input: ArrayLike, target: ArrayLike, *, axis: int = -1,
                  from_logits: bool = True, weight: ArrayLike | None = None,
                  sample_weight: ArrayLike | None = None, ignore_index: int | None = None,
                  label_smoothing: float = 0.0, reduction: str = "mean",
                  z_loss: float = 0.0, softcap: float | None = None,
                  temperature: float = 1.0) -> Loss:
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
    return CrossEntropyLoss(weight=weight, ignore_index=ignore_index,
                            label_smoothing=label_smoothing, reduction=reduction,
                            from_logits=from_logits, z_loss=z_loss, softcap=softcap,
                            temperature=temperature).loss(input, target, axis=axis,
                                                          sample_weight=sample_weight)


@_with_params
def cross_entropy_grad(input: ArrayLike, target: ArrayLike, *, axis: int = -1,
                       from_logits: bool = True, weight: ArrayLike | None = None,
                       sample_weight: ArrayLike | None = None, ignore_index: int | None = None,
                       label_smoothing: float = 0.0, reduction: str = "mean",
                       out: np.ndarray | None = None, z_loss: float = 0.0,
                       softcap: float | None = None, temperature: float = 1.0
                       ) -> FloatArray:
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
    return cross_entropy_and_grad(input, target, axis=axis, from_logits=from_logits,
                                  weight=weight, sample_weight=sample_weight,
                                  ignore_index=ignore_index, label_smoothing=label_smoothing,
                                  reduction=reduction, out=out, z_loss=z_loss, softcap=softcap,
                                  temperature=temperature)[1]


@_with_params
def cross_entropy_and_grad(input: ArrayLike, target: ArrayLike, *, axis: int = -1,
                           from_logits: bool = True, weight: ArrayLike | None = None,
                           sample_weight: ArrayLike | None = None,
                           ignore_index: int | None = None, label_smoothing: float = 0.0,
                           reduction: str = "mean", out: np.ndarray | None = None,
                           z_loss: float = 0.0, softcap: float | None = None,
                           temperature: float = 1.0) -> tuple[Loss, FloatArray]:
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
    return CrossEntropyLoss(weight=weight, ignore_index=ignore_index,
                            label_smoothing=label_smoothing, reduction=reduction,
                            from_logits=from_logits, z_loss=z_loss, softcap=softcap,
                            temperature=temperature).loss_and_grad(
        input, target, axis=axis, sample_weight=sample_weight, out=out)


def nll_loss(log_probs: ArrayLike, target: ArrayLike, *, axis: int = -1,
             weight: ArrayLike | None = None, ignore_index: int | None = None,
             reduction: str = "mean") -> Loss:
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
    return NLLLoss(weight=weight, ignore_index=ignore_index, reduction=reduction).loss(
        log_probs, target, axis=axis)


def nll_loss_grad(log_probs: ArrayLike, target: ArrayLike, *, axis: int = -1,
                  weight: ArrayLike | None = None, ignore_index: int | None = None,
                  reduction: str = "mean") -> FloatArray:
    r"""Gradient of :func:`nll_loss` with respect to ``log_probs``: ``-weight[y_i]``
    (times the reduction's scale) at each row's label, 0 elsewhere.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> smk.nll_loss_grad(np.log([[0.25, 0.75], [0.5, 0.5]]), [1, 0])
    array([[ 0. , -0.5],
           [-0.5,  0. ]])
    """
    return NLLLoss(weight=weight, ignore_index=ignore_index, reduction=reduction).grad(
        log_probs, target, axis=axis)


def nll_loss_and_grad(log_probs: ArrayLike, target: ArrayLike, *, axis: int = -1,
                      weight: ArrayLike | None = None, ignore_index: int | None = None,
                      reduction: str = "mean") -> tuple[Loss, FloatArray]:
    r"""``(nll_loss(...), nll_loss_grad(...))`` in one call.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> loss, grad = smk.nll_loss_and_grad(np.log([[0.5, 0.5]]), [0])
    >>> round(float(loss), 6), grad
    (0.693147, array([[-1.,  0.]]))
    """
    return NLLLoss(weight=weight, ignore_index=ignore_index, reduction=reduction).loss_and_grad(
        log_probs, target, axis=axis)
