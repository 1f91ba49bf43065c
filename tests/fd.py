"""The tests' one finite-difference gradient: the 4th-order central stencil
(-f(x+2h) + 8f(x+h) - 8f(x-h) + f(x-2h)) / 12h (scikit-learn's loss tests)."""
from __future__ import annotations

from typing import Callable

import numpy as np


def fd_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Gradient of the scalar ``f`` at ``x``, one coordinate at a time."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (-f(x + 2 * e) + 8 * f(x + e) - 8 * f(x - e) + f(x - 2 * e)) / (12 * h)
    return g
