"""The one reduction layer: per-row (or per-element) losses -> the reduced loss, and
the per-row upstream gradient that carries the reduction back into every gradient.

Every loss of softmaxkit computes float64 losses per row (or per element) and, for
its gradient, needs ``dloss``: d(reduced loss) / d(row's loss). Both come from here,
so "none", "sum", "mean", "batchmean", class-weighted and sample-weighted means mean
the same thing everywhere (llm.c starts its backward from ``dlosses = 1 / (B T)``:
the reduction *is* the first upstream gradient).

* ``denominator``: what "mean" divides by. PyTorch's weighted mean divides by the
  summed weights of the rows counted (``sum_i sample_weight_i * weight[y_i]``, ignored
  rows 0); plain elementwise means by the element count; "batchmean" by the batch
  size. An empty denominator gives a NaN mean and a zero gradient.
* ``reduce``: the reduced value in the result dtype (a NumPy scalar), or the
  per-row array for "none" (batch shape, 0-d unwrapped).
* ``upstream``: ``dloss`` as a float (one factor for every row) or a float64 array
  (rows differ: sample weights, or a caller's upstream gradient for "none").
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["reduce", "upstream", "mean_scale"]


def mean_scale(reduction: str, denom: float) -> float:
    """The factor of the gradient that the reduction contributes: 1/denom for "mean"
    and "batchmean" (0 for an empty denominator: the gradient of an empty mean is
    zero), 1 for "sum" and "none"."""
    if reduction in ("mean", "batchmean"):
        return 1.0 / denom if denom != 0 else 0.0
    return 1.0


def reduce(per_row: np.ndarray, reduction: str, denom: float, result_dtype: Any,
           batch_shape: tuple[int, ...] | None = None) -> Any:
    """The reduced loss from per-row (or per-element) float64 losses.

    ``denom`` is the "mean"/"batchmean" denominator (ignored otherwise). For "none"
    the losses come back in ``result_dtype``, reshaped to ``batch_shape`` when given,
    a 0-d result unwrapped to a NumPy scalar.
    """
    dtype = np.dtype(result_dtype)
    if reduction == "sum" and dtype == np.float64:  # the hot path: nothing to round
        return dtype.type(per_row.sum())
    # Rounding a loss beyond the result dtype's range (float16's 65504) to inf is the
    # right rounding, not an overflow to warn about.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if reduction == "none":
            out = per_row.astype(dtype)
            if batch_shape is not None:
                out = out.reshape(batch_shape)
            return out[()] if out.ndim == 0 else out
        total = float(per_row.sum())
        if reduction == "sum":
            return dtype.type(total)
        return dtype.type(total / denom if denom != 0 else np.nan)


def upstream(reduction: str, denom: float, sample_weight: np.ndarray | None = None
             ) -> float | np.ndarray:
    """``dloss``: d(reduced loss) / d(each row's unweighted loss).

    A float when every row shares it, else a C-contiguous float64 array: the row's
    sample weight times the reduction's factor.
    """
    c = mean_scale(reduction, denom)
    if sample_weight is None:
        return c
    return np.ascontiguousarray(sample_weight * c, dtype=np.float64)
