"""Type aliases of the public API (numpy.typing), so a user's mypy sees real types.

Functions that map an array to an array of the same shape return ``FloatArray``; a 0-d
input gives a NumPy float scalar, which has the same interface. Losses return
``Loss``: a NumPy float scalar when reduced, an array for ``reduction="none"``.
"""
from __future__ import annotations

from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "Axis", "FloatArray", "Loss", "IntArray"]

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
# A reduced loss (a NumPy float scalar) or per-row losses (reduction="none").
Loss = Union[np.floating[Any], NDArray[np.floating[Any]]]
# An axis argument: an int, a tuple of ints, or None for all axes.
Axis = Union[int, tuple[int, ...], None]
