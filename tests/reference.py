"""Pure NumPy twins of the C kernels, on (rows, cols) blocks, same conventions.

They exist to check the kernels (tests compare the two on random and edge-case
inputs) and to document the algorithms in the plainest form. They are not fast.
Each follows its kernel's arithmetic: shift by the row max, sums in float64.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "softmax_ref",
    "log_softmax_ref",
    "logsumexp_ref",
    "softmax_backward_ref",
    "log_softmax_backward_ref",
    "sigmoid_ref",
    "log_sigmoid_ref",
    "softplus_ref",
    "sigmoid_backward_ref",
]


def _nonfinite_rows(x: np.ndarray, log_out: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows the fast formula cannot do (NaN, all -inf, some +inf) and their values."""
    with np.errstate(invalid="ignore"):
        m = np.max(x, axis=1, initial=-np.inf) if x.size else np.full(x.shape[0], -np.inf)
    has_nan = np.isnan(x).any(axis=1)
    special = has_nan | ~np.isfinite(m)
    vals = np.zeros_like(x[special])
    xs = x[special]
    k = (xs == np.inf).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        hit = -np.log(k) if log_out else 1.0 / np.maximum(k, 1)
    miss = -np.inf if log_out else 0.0
    vals[...] = np.where(xs == np.inf, hit, miss)
    vals[has_nan[special]] = np.nan
    return special, vals


def softmax_ref(x: np.ndarray, inv_t: float = 1.0) -> np.ndarray:
    x = np.asarray(x)
    special, vals = _nonfinite_rows(x, log_out=False)
    y = np.empty_like(x)
    ok = ~special
    xo = x[ok]
    if xo.size:
        e = np.exp((xo - xo.max(axis=1, keepdims=True)) * x.dtype.type(inv_t))
        s = e.astype(np.float64).sum(axis=1, keepdims=True).astype(x.dtype)
        y[ok] = e / s
    y[special] = vals
    return y


def log_softmax_ref(x: np.ndarray, inv_t: float = 1.0) -> np.ndarray:
    x = np.asarray(x)
    special, vals = _nonfinite_rows(x, log_out=True)
    y = np.empty_like(x)
    ok = ~special
    xo = x[ok]
    if xo.size:
        z = (xo - xo.max(axis=1, keepdims=True)) * x.dtype.type(inv_t)
        s = np.exp(z).astype(np.float64).sum(axis=1, keepdims=True)
        y[ok] = z - np.log(s).astype(x.dtype)
    y[special] = vals
    return y


def logsumexp_ref(x: np.ndarray) -> np.ndarray:
    """m + log1p(sum of exp(x - m) over all entries but the first max)."""
    x = np.asarray(x)
    rows, cols = x.shape
    out = np.full(rows, -np.inf, dtype=x.dtype)
    if cols == 0:
        return out
    with np.errstate(invalid="ignore"):
        m = x.max(axis=1)
    for i in range(rows):
        row = x[i]
        if np.isnan(row).any():
            out[i] = np.nan
        elif not np.isfinite(m[i]):
            out[i] = m[i]
        else:
            k = int(np.argmax(row))
            e = np.exp(row - m[i]).astype(np.float64)
            e[k] = 0.0
            out[i] = float(m[i]) + np.log1p(e.sum())
    return out


def softmax_backward_ref(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    live = p != 0
    pg = np.where(live, p * np.where(live, g, 0), 0)
    dot = pg.astype(np.float64).sum(axis=1, keepdims=True).astype(p.dtype)
    return np.where(live, p * (np.where(live, g, 0) - dot), 0).astype(p.dtype)


def log_softmax_backward_ref(lp: np.ndarray, g: np.ndarray) -> np.ndarray:
    live = lp != -np.inf
    sg = np.where(live, g, 0).astype(np.float64).sum(axis=1, keepdims=True).astype(lp.dtype)
    return np.where(live, g - np.exp(lp) * sg, 0).astype(lp.dtype)


def sigmoid_ref(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)


def softplus_ref(x: np.ndarray) -> np.ndarray:
    """log1p(exp(x)), piecewise with scikit-learn's cut-offs, computed in float64."""
    xd = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.where(
            xd <= -37, np.exp(xd),
            np.where(xd <= -2, np.log1p(np.exp(xd)),
                     np.where(xd <= 18, np.log(1.0 + np.exp(xd)),
                              np.where(xd <= 33.3, xd + np.exp(-xd), xd))))
    return y.astype(np.asarray(x).dtype)


def log_sigmoid_ref(x: np.ndarray) -> np.ndarray:
    return -softplus_ref(-np.asarray(x))


def sigmoid_backward_ref(s: np.ndarray, g: np.ndarray) -> np.ndarray:
    return g * (s * (1 - s))
