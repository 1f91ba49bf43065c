"""The pure NumPy twin of the sampling kernels (src/softmaxkit/_kernels/sampling.c).

Sort-based, as Hugging Face's logits processors and vLLM do it: sort the weights
descending, cut top-k by rank, top-p by the cumulative sum, min-p by ratio, then
invert the CDF of the kept weights in index order with the same counter-based
uniforms. One row at a time, float64, written for clarity, not speed.
"""
from __future__ import annotations

import numpy as np

from softmaxkit._sampling import _uniforms

DBL_MIN = np.finfo(np.float64).tiny


def weights(x, temperature):
    """w = exp((x - max) / T), max weight 1; +inf entries 1 and the rest 0 when the
    row has any; below 2**-1022 flushed to 0 (as the kernel's exp)."""
    x = np.asarray(x, dtype=np.float64)
    m = x.max()
    if m == np.inf:
        return (x == np.inf).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        w = np.exp((x - m) / temperature)
    return np.where(w >= DBL_MIN, w, 0.0)


def threshold(w, top_k=None, top_p=None, min_p=None):
    """The kept set is {w >= tau}: tau from the sorted weights (ties kept)."""
    s = np.sort(w[w >= DBL_MIN])[::-1]
    tau = DBL_MIN
    if top_k is not None and top_k < s.size:
        tau = max(tau, s[top_k - 1])
    s = s[s >= tau]  # the top-k set
    if top_p is not None and top_p < 1.0:
        c = np.cumsum(s)
        i = int(np.searchsorted(c, top_p * c[-1], side="left"))
        tau = max(tau, s[min(i, s.size - 1)])
    if min_p is not None:
        tau = max(tau, min_p)
    return tau


def probs(x, temperature=1.0, top_k=None, top_p=None, min_p=None):
    """The processed distribution of one row."""
    w = weights(x, temperature)
    keep = w >= threshold(w, top_k, top_p, min_p)
    p = np.where(keep, w, 0.0)
    return p / p.sum()


def draws(x, key, ndraws, temperature=1.0, top_k=None, top_p=None, min_p=None):
    """ndraws tokens of one row keyed by `key`: inverse CDF in index order."""
    w = weights(x, temperature)
    keep = np.flatnonzero(w >= threshold(w, top_k, top_p, min_p))
    c = np.cumsum(w[keep])
    u = _uniforms(np.array([key], dtype=np.uint64), np.arange(ndraws))[0]
    j = np.searchsorted(c, u * c[-1], side="right")
    return keep[np.minimum(j, keep.size - 1)]
