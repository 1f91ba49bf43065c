"""Pure NumPy twins of the cross-entropy kernels (losses.c), on (rows, cols) blocks.

They follow losses.h's contract line by line, in float64, so the tests can compare
the kernels with them on random and edge-case inputs (non-finite rows, ignored
rows, out-of-range labels, C = 1, rows = 0). They are plain, not fast.
"""
from __future__ import annotations

import numpy as np

__all__ = ["row_p_nlp", "ce_hard_ref", "ce_soft_ref", "torchvision_sigmoid_focal_loss"]


def row_p_nlp(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """softmax p and -log p of each row, in float64, with softmax.h's conventions.

    NaN rows are NaN; a row of all -inf has p = 0 and -log p = inf; k entries at
    +inf share p = 1/k (-log p = log k), the others have p = 0 (-log p = inf).
    """
    xd = np.asarray(x, dtype=np.float64)
    rows, cols = xd.shape
    p = np.zeros((rows, cols))
    nlp = np.full((rows, cols), np.inf)
    for i in range(rows):
        row = xd[i]
        if cols == 0:
            continue
        if np.isnan(row).any():
            p[i] = nlp[i] = np.nan
            continue
        m = row.max()
        if np.isfinite(m):
            z = row - m
            top = row == m
            # s - 1 with the max's exact 1s counted apart (losses.c's expsum_m1)
            sm1 = (top.sum() - 1.0) + np.exp(z[~top]).sum()
            ls = np.log1p(sm1)
            p[i] = np.exp(z) / (1.0 + sm1)
            nlp[i] = ls - z
        else:
            hit = row == np.inf
            k = hit.sum()
            if k:
                p[i] = np.where(hit, 1.0 / k, 0.0)
                nlp[i] = np.where(hit, np.log(k), np.inf)
    return p, nlp


def _scales(gscale, rows):
    if gscale is None:
        return None
    g = np.asarray(gscale, dtype=np.float64)
    return np.broadcast_to(g, (rows,))


def ce_hard_ref(x, target, weight=None, ignore_index=None, eps=0.0, gscale=None):
    """(loss, roww, grad or None) of integer-label cross-entropy; see losses.h."""
    x = np.asarray(x)
    rows, cols = x.shape
    w = np.ones(cols) if weight is None else np.asarray(weight, dtype=np.float64)
    wsum = w.sum()
    cs = eps / cols if cols else 0.0
    p, nlp = row_p_nlp(x)
    g = _scales(gscale, rows)
    loss = np.zeros(rows)
    roww = np.zeros(rows)
    grad = None if g is None else np.zeros((rows, cols))
    for i in range(rows):
        t = int(target[i])
        if ignore_index is not None and t == ignore_index:
            continue
        if not 0 <= t < cols:
            loss[i] = np.nan
            if grad is not None:
                grad[i] = np.nan
            continue
        roww[i] = w[t]
        hard = (1.0 - eps) * w[t]
        # terms with weight 0 are left out: 0 * inf would be NaN
        with np.errstate(invalid="ignore"):
            smooth = np.where(w != 0, w * nlp[i], 0.0).sum()
            loss[i] = (hard * nlp[i, t] if hard != 0 else 0.0) + (cs * smooth if eps > 0 else 0.0)
        if np.isnan(nlp[i]).any():
            loss[i] = np.nan
        if grad is not None:
            a = hard + cs * wsum
            grad[i] = g[i] * (a * p[i] - cs * w)
            grad[i, t] -= g[i] * hard
    return loss, roww, (None if grad is None else grad.astype(x.dtype))


def ce_soft_ref(x, q, weight=None, eps=0.0, gscale=None):
    """(loss, grad or None) of soft-label cross-entropy; see losses.h."""
    x = np.asarray(x)
    rows, cols = x.shape
    w = np.ones(cols) if weight is None else np.asarray(weight, dtype=np.float64)
    cs = eps / cols if cols else 0.0
    v = (np.asarray(q, dtype=np.float64) * (1.0 - eps) + cs) * w
    p, nlp = row_p_nlp(x)
    g = _scales(gscale, rows)
    with np.errstate(invalid="ignore"):
        loss = np.where(v != 0, v * nlp, 0.0).sum(axis=1)
    loss[np.isnan(nlp).any(axis=1)] = np.nan
    if g is None:
        return loss, None
    grad = g[:, None] * (v.sum(axis=1, keepdims=True) * p - v)
    return loss, grad.astype(x.dtype)


def torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """torchvision/ops/focal_loss.py (0.28.0), line for line (the logging call left out):
    the oracle of the sigmoid focal loss tests (torchvision's PyPI wheel links CUDA torch
    and does not import with the CPU build, so it is not a test dependency)."""
    import torch
    import torch.nn.functional as F

    if not (0 <= alpha <= 1) and alpha != -1:
        raise ValueError(f"Invalid alpha value: {alpha}. alpha must be in the range [0,1] or -1 for ignore.")
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "none":
        pass
    elif reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    else:
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported reduction modes: 'none', 'mean', 'sum'")
    return loss
