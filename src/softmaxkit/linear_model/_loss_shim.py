"""TEMPORARY stand-in for ``softmaxkit._losses.CrossEntropyLoss`` until it lands on main.

Same contract: options checked once in the constructor; ``loss_gradient(raw, target,
*, sample_weight=None, grad_out=None) -> (float, ndarray)`` validates nothing. Only
what the objective uses is implemented (``reduction="sum"``, logits). Delete this
file once ``from softmaxkit._losses import CrossEntropyLoss`` works.
"""
from __future__ import annotations

import numpy as np

from .._losses import _ce_rows, cross_entropy_and_grad


class CrossEntropyLoss:
    def __init__(self, *, weight=None, ignore_index=None, label_smoothing=0.0,
                 reduction="mean", from_logits=True):
        if weight is not None or ignore_index is not None or reduction != "sum" or not from_logits:
            raise NotImplementedError("the shim only covers what SoftmaxObjective uses")
        self.label_smoothing = float(label_smoothing)

    def loss_gradient(self, raw, target, *, sample_weight=None, grad_out=None):
        if target.ndim == 1:  # the hot path: the kernel seam directly
            gs = 1.0 if sample_weight is None else sample_weight
            per_row, _, grad = _ce_rows(raw, target, label_smoothing=self.label_smoothing,
                                        grad_scale=gs, grad_out=grad_out)
            if sample_weight is not None:
                per_row = per_row * sample_weight
            return float(per_row.sum()), grad
        loss, grad = cross_entropy_and_grad(raw, target, sample_weight=sample_weight,
                                            label_smoothing=self.label_smoothing, reduction="sum")
        if grad_out is not None:
            grad_out[...] = grad
            grad = grad_out
        return float(loss), grad
