"""The pure NumPy twin of the entmax kernels (src/softmaxkit/_kernels/entmax.c).

Sort-based, as the entmax package's exact sparsemax / entmax15 and Martins and
Astudillo (2016) write them, and plain bisection for other alphas; one row at a
time, float64.
"""
from __future__ import annotations

import numpy as np


def sparsemax(z):
    z = np.asarray(z, dtype=np.float64)
    s = np.sort(z)[::-1]
    k = np.arange(1, z.size + 1)
    cs = np.cumsum(s)
    support = 1 + k * s > cs
    kz = k[support][-1]
    tau = (cs[kz - 1] - 1) / kz
    return np.maximum(z - tau, 0.0)


def entmax15(z):
    """Peters et al. 2019, Algorithm 2 (sort, cumulative mean and mean of squares)."""
    u = np.asarray(z, dtype=np.float64) / 2
    u = u - u.max()
    s = np.sort(u)[::-1]
    k = np.arange(1, u.size + 1)
    mean = np.cumsum(s) / k
    mean_sq = np.cumsum(s**2) / k
    ss = k * (mean_sq - mean**2)
    delta = np.clip((1 - ss) / k, 0, None)
    tau = mean - np.sqrt(delta)
    support = (tau <= s).sum()
    return np.maximum(u - tau[support - 1], 0.0) ** 2


def entmax_bisect(z, alpha, n_iter=200):
    z = np.asarray(z, dtype=np.float64)
    if alpha == 1.0:
        e = np.exp(z - z.max())
        return e / e.sum()
    u = (alpha - 1) * (z - z.max())
    lo, hi = -1.0, -(1.0 / z.size) ** (alpha - 1)
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        if np.sum(np.maximum(u - mid, 0) ** (1 / (alpha - 1))) >= 1:
            lo = mid
        else:
            hi = mid
    p = np.maximum(u - lo, 0) ** (1 / (alpha - 1))
    return p / p.sum()


def entmax_backward(y, g, alpha):
    s = np.power(y, 2 - alpha, out=np.zeros_like(y), where=y > 0)
    return s * g - s * (s @ g) / s.sum()
