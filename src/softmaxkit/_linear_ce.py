"""Fused linear + cross-entropy: the loss of ``hidden @ weight.T + bias`` and its
gradients, without ever holding the (N, V) logits.

A language-model head computes ``logits = hidden @ weight.T`` with hidden (N, H) and
weight (V, H), then the cross-entropy of those logits. With a large vocabulary the
logits dwarf everything else (N=8192, V=65536 float32 is 2 GiB, and its gradient
another 2 GiB), yet each row is only needed long enough to turn it into a loss and a
gradient row. So we go over the rows in chunks (Liger-Kernel's scheme, reference
below), with one reused (chunk, V) buffer:

1. ``z = hidden[c] @ weight.T + bias`` into the buffer (NumPy's BLAS);
2. the fused cross-entropy kernel turns each row of ``z`` into its loss and, in place,
   into its gradient ``dL/dz = scale * (softmax(z) - target distribution)``, where
   ``scale`` is the reduction's factor (``1 / total weight`` for "mean"), known up
   front from the targets and class weights alone;
3. ``grad_hidden[c] = dz @ weight``, ``grad_weight += dz.T @ hidden[c]`` (GEMM with
   beta=1, accumulating in place), ``grad_bias += dz.sum(0)`` (BLAS again).

Extra memory is the (chunk, V) buffer and O(N + V) numbers: O(N + chunk * V), never O(N * V). The chunk is chosen so
the buffer is about 128 MiB (``chunk_size=`` overrides it).

References
----------
Hsu et al., "Liger Kernel: Efficient Triton Kernels for LLM Training" (2024),
section on FusedLinearCrossEntropy.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from . import _config, _kernels, _reduction
from ._validation import compute_dtype

__all__ = ["linear_cross_entropy", "linear_cross_entropy_and_grad"]

# Size of the reused logits buffer when chunk_size is not given. Bigger chunks give
# BLAS more rows per product (the grad_weight GEMM's inner dimension is the chunk's
# row count) and mean fewer passes over grad_weight. Measured on the 2-core
# reference machine, N=4096, H=1024, V=65536 float32, loss and all gradients:
# 128 rows (32 MiB) 14.2 s, 256 rows (64 MiB) 11.2 s, 512 rows (128 MiB) 10.0 s.
# 128 MiB is 3.4% of the 3.8 GiB the unfused path allocates at N=8192 (the
# issue's bound is 5%); benchmarks/RESULTS.md has the full-size numbers.
_CHUNK_BYTES = 128 * 2**20

_REDUCTIONS = ("none", "sum", "mean")


class _Problem(NamedTuple):
    hidden: np.ndarray  # (N, H), compute dtype
    weight: np.ndarray  # (V, H), compute dtype
    target: np.ndarray  # (N,) int64, each in [0, V) or == ignore_index
    bias: np.ndarray | None  # (V,)
    class_weight: np.ndarray | None  # (V,) compute dtype
    ignore_index: int | None
    label_smoothing: float
    chunk: int
    result_dtype: np.dtype
    total_weight: float  # the "mean" divisor: summed class weights of counted rows


def _float_matrix(x: Any, name: str, ndim: int) -> np.ndarray:
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        want = "(N, H)" if name == "hidden" else "(V, H)" if name == "weight" else "(V,)"
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    return arr


def _prepare(hidden, weight, target, bias, class_weight, ignore_index, label_smoothing,
             reduction, chunk_size) -> _Problem:
    """Validate every argument and bring the arrays to one compute dtype."""
    h = _float_matrix(hidden, "hidden", 2)
    w = _float_matrix(weight, "weight", 2)
    b = None if bias is None else _float_matrix(bias, "bias", 1)
    n, hdim = h.shape
    v = w.shape[0]
    if w.shape[1] != hdim:
        raise ValueError(
            f"weight must have shape (V, H) with H = hidden.shape[1] = {hdim}, got shape {w.shape}"
        )
    if v == 0:
        raise ValueError("weight must have at least one row (class), got shape (0, H)")
    if b is not None and b.shape != (v,):
        raise ValueError(f"bias must have shape (V,) = ({v},), got shape {b.shape}")
    common = np.result_type(h.dtype, w.dtype, *(() if b is None else (b.dtype,)))
    work, result = compute_dtype(common, "hidden")
    # A copy only when the dtypes differ or the layout is one BLAS cannot read
    # (matmul would otherwise fall back to NumPy's slow loops).
    h = np.asarray(h, dtype=work)
    w = np.asarray(w, dtype=work)
    if not (h.flags.c_contiguous or h.flags.f_contiguous):
        h = np.ascontiguousarray(h)
    if not (w.flags.c_contiguous or w.flags.f_contiguous):
        w = np.ascontiguousarray(w)
    if b is not None:
        b = np.asarray(b, dtype=work)

    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(f"label_smoothing must be a float in [0, 1], got {label_smoothing!r}")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)
    ):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    if chunk_size is None:
        chunk = max(1, _CHUNK_BYTES // (v * work.itemsize))
    else:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
            raise TypeError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        chunk = int(chunk_size)
        if chunk < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    chunk = max(1, min(chunk, n))

    t = target if isinstance(target, np.ndarray) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"target must be an array of integer class indices, got dtype {t.dtype}"
        )
    if t.shape != (n,):
        raise ValueError(f"target must have shape (N,) = ({n},), got shape {t.shape}")
    t = t.astype(np.int64, copy=False)
    counted = np.ones(n, dtype=bool) if ignore_index is None else t != int(ignore_index)
    bad = counted & ((t < 0) | (t >= v))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"target[{i}] = {int(t[i])} is not a class index in [0, {v})"
            + ("" if ignore_index is None else f" nor ignore_index ({int(ignore_index)})")
        )

    cw = None
    if class_weight is not None:
        cw = np.asarray(class_weight)
        if cw.dtype.kind not in "fiub":
            raise TypeError(f"class_weight must be an array of real numbers, got dtype {cw.dtype}")
        if cw.shape != (v,):
            raise ValueError(f"class_weight must have shape (V,) = ({v},), got shape {cw.shape}")
        ok = np.isfinite(cw) & (cw >= 0)
        if not ok.all():
            i = int(np.argmax(~ok))
            raise ValueError(f"class_weight must be finite and >= 0, got class_weight[{i}] = {cw[i]}")
        cw = np.ascontiguousarray(cw, dtype=work)  # the kernel reads it in the logits' dtype
        total = float(cw[t[counted]].sum(dtype=np.float64))
    else:
        total = float(np.count_nonzero(counted))
    return _Problem(h, w, t, b, cw, None if ignore_index is None else int(ignore_index),
                    eps, chunk, result, total)


def _run(p: _Problem, grad_scale: Any = None, need: tuple[bool, bool, bool] = (False, False, False)):
    """The chunked loop. Returns (per-row loss float64 (N,), (grad_h, grad_w, grad_b)).

    ``grad_scale`` is None (loss only) or the gradient factor per row: a float, or a
    float64 (N,) array (torch's backward for reduction="none"). ``need`` says which
    of the three gradients to form (torch skips those nobody asked for); the others
    come back as None. With ``grad_scale=None`` no gradient is formed.
    """
    # Imported on first use: importing scipy.linalg added ~0.15 s to `import softmaxkit`.
    from scipy.linalg.blas import get_blas_funcs

    h, w, t, b = p.hidden, p.weight, p.target, p.bias
    n, hdim = h.shape
    v = w.shape[0]
    dtype = h.dtype
    if grad_scale is None:
        need = (False, False, False)
    want_grad = any(need)
    nthreads = _config.get_num_threads()

    loss_rows = np.zeros(n, dtype=np.float64)
    grad_h = np.empty((n, hdim), dtype=dtype) if need[0] else None
    grad_w = np.zeros((v, hdim), dtype=dtype) if need[1] else None
    grad_b = np.zeros(v, dtype=dtype) if (need[2] and b is not None) else None
    if n == 0:
        return loss_rows, (grad_h, grad_w, grad_b)

    buf = np.empty((p.chunk, v), dtype=dtype)
    # grad_weight accumulates over the chunks. NumPy's matmul cannot add into its
    # output, and a (V, H) temporary would be as large as grad_weight, so this one
    # product goes through SciPy's BLAS GEMM with beta=1 (C = A B + C, in place).
    # Measured at V=65536, H=1024, 256 rows: 147 GFLOP/s, against 30-80 GFLOP/s for
    # matmul into a 2-32 MiB block added to grad_weight.
    gemm = get_blas_funcs("gemm", dtype=dtype) if need[1] else None
    colsum = np.empty(v, dtype=dtype) if grad_b is not None and n > p.chunk else None
    scale_rows = isinstance(grad_scale, np.ndarray)

    for start in range(0, n, p.chunk):
        stop = min(n, start + p.chunk)
        hc = h[start:stop]
        z = buf[: stop - start]
        np.matmul(hc, w.T, out=z)
        if b is not None:
            z += b
        scale = grad_scale[start:stop] if scale_rows else grad_scale
        rows_loss, _, _ = _kernels.ce_hard_rows(
            z, t[start:stop],
            weight=p.class_weight, ignore_index=p.ignore_index,
            label_smoothing=p.label_smoothing,
            dloss=scale if want_grad else None,
            grad_out=z if want_grad else None,  # dL/dz overwrites z, row by row
            nthreads=nthreads,
        )
        loss_rows[start:stop] = rows_loss
        if not want_grad:
            continue
        # z now holds dz = dL/dz for these rows.
        if need[0]:
            np.matmul(z, w, out=grad_h[start:stop])
        if need[1]:
            # grad_w.T (H, V), F-ordered, += hc.T (H, rows) @ dz (rows, V); dz enters as
            # its F-ordered transpose z.T with trans_b. overwrite_c makes GEMM write
            # into grad_w itself (it is F-contiguous and of GEMM's dtype).
            res = gemm(1.0, hc.T, z.T, beta=1.0, c=grad_w.T, trans_b=1, overwrite_c=1)
            if res.ctypes.data != grad_w.ctypes.data:  # a BLAS wrapper that copied c
                grad_w.T[...] = res
        if grad_b is not None:
            if start == 0:
                np.sum(z, axis=0, out=grad_b)
            else:
                np.sum(z, axis=0, out=colsum)
                grad_b += colsum
    return loss_rows, (grad_h, grad_w, grad_b)


def _reduce(p: _Problem, loss_rows: np.ndarray, reduction: str):
    # An empty or all-ignored batch is 0/0 = NaN, as in PyTorch.
    return _reduction.reduce(loss_rows, reduction, p.total_weight, p.result_dtype)


def _grad_scale(p: _Problem, reduction: str) -> float:
    # mean: d(sum / total_weight) = d(sum) / total_weight; nothing counted: zeros;
    # sum, and for "none" the gradient of the sum of the per-row losses: 1.
    return _reduction.mean_scale(reduction, p.total_weight)


def linear_cross_entropy(hidden, weight, target, *, bias=None, class_weight=None,
                         ignore_index=None, label_smoothing=0.0, reduction="mean",
                         chunk_size=None):
    r"""Cross-entropy of the logits ``hidden @ weight.T + bias``, without forming them.

    Equal to ``cross_entropy(hidden @ weight.T + bias, target, ...)`` (PyTorch's
    semantics for ``class_weight`` (its ``weight``), ``ignore_index``,
    ``label_smoothing`` and ``reduction``) but the (N, V) logits are computed and
    consumed ``chunk_size`` rows at a time:

    .. math:: \ell_i = \operatorname{logsumexp}(z_i) - z_{i, y_i},\qquad
              z_i = W h_i + b

    (with label smoothing, PyTorch's mix of that and the mean of ``-log p`` over
    the classes).

    Parameters
    ----------
    hidden : array_like, shape (N, H)
        Inputs of the last linear layer (float32 or float64; mixed dtypes are
        computed in the wider one, ints in float64).
    weight : array_like, shape (V, H)
        The layer's weight, one row per class (as in ``torch.nn.Linear``).
    target : array_like of int, shape (N,)
        Class indices in ``[0, V)``, or ``ignore_index``.
    bias : array_like, shape (V,), optional
    class_weight : array_like, shape (V,), optional
        Per-class weights (finite, >= 0): PyTorch's ``weight`` argument.
    ignore_index : int, optional
        Rows with this label count for nothing (not in the loss, not in the mean's
        divisor, zero gradient).
    label_smoothing : float in [0, 1], default 0.0
        PyTorch's convention: the target puts ``1 - eps`` on the label and ``eps / V``
        on every class.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" divides by the summed class weights of the counted rows (their number
        without ``class_weight``); an empty or all-ignored batch gives NaN.
    chunk_size : int, optional
        Rows per chunk. Default: as many as fit a 128 MiB (chunk, V) buffer.

    Returns
    -------
    loss : scalar, or ndarray of shape (N,) for ``reduction="none"``
        In the compute dtype (float32 or float64).

    Notes
    -----
    Extra memory is one (chunk, V) buffer plus O(N): for N=8192, V=65536 float32 that
    is 128 MiB where the unfused path holds 2 GiB of logits. See
    docs/linear_cross_entropy.md for the accuracy in float32.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> hidden = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> weight = np.array([[1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])  # 3 classes
    >>> round(float(smk.linear_cross_entropy(hidden, weight, [0, 2])), 6)
    1.323575
    >>> logits = hidden @ weight.T
    >>> round(float(smk.cross_entropy(logits, np.array([0, 2]))), 6)
    1.323575
    """
    p = _prepare(hidden, weight, target, bias, class_weight, ignore_index,
                 label_smoothing, reduction, chunk_size)
    loss_rows, _ = _run(p)
    return _reduce(p, loss_rows, reduction)


def linear_cross_entropy_and_grad(hidden, weight, target, *, bias=None, class_weight=None,
                                  ignore_index=None, label_smoothing=0.0, reduction="mean",
                                  chunk_size=None):
    r"""Loss of :func:`linear_cross_entropy` and its gradients, in one chunked pass.

    With ``dz = dL/dz`` for the logits ``z = hidden @ weight.T + bias`` (the fused
    cross-entropy gradient ``scale * (softmax(z) - q)``, ``q`` the smoothed target):

    .. math:: \frac{\partial L}{\partial \text{hidden}} = dz\, W,\quad
              \frac{\partial L}{\partial W} = dz^\top \text{hidden},\quad
              \frac{\partial L}{\partial b} = \textstyle\sum_i dz_i

    Parameters are those of :func:`linear_cross_entropy`.

    Returns
    -------
    loss : scalar, or ndarray (N,) for ``reduction="none"``
    (grad_hidden, grad_weight, grad_bias) : ndarrays of shapes (N, H), (V, H), (V,)
        Gradients of the reduced loss (for ``reduction="none"``: of the sum of the
        per-row losses). ``grad_bias`` is None when ``bias`` is None.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> hidden = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> weight = np.array([[1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]])
    >>> loss, (gh, gw, gb) = smk.linear_cross_entropy_and_grad(hidden, weight, [0, 2])
    >>> gh.shape, gw.shape, gb is None
    ((2, 2), (3, 2), True)
    >>> _, g = smk.cross_entropy_and_grad(hidden @ weight.T, np.array([0, 2]))
    >>> bool(np.allclose(gw, g.T @ hidden))
    True
    """
    p = _prepare(hidden, weight, target, bias, class_weight, ignore_index,
                 label_smoothing, reduction, chunk_size)
    loss_rows, grads = _run(p, _grad_scale(p, reduction), (True, True, True))
    if p.hidden.dtype != p.result_dtype:  # float16 inputs, computed in float32
        grads = tuple(None if g is None else g.astype(p.result_dtype) for g in grads)
    return _reduce(p, loss_rows, reduction), grads
