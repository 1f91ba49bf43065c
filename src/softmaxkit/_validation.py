"""Input checking, dtype rules and the reshape to (rows, cols) blocks.

Shared by every public function of softmaxkit, so the rules are written once:

* Floating inputs keep their dtype: float32 and float64 are computed as they are,
  float16 is computed in float32 and returned as float16, and wider floats
  (longdouble) are computed and returned as float64. Integer and bool inputs are
  promoted to float64. Complex, object, string and other kinds are a TypeError.
* The class axis is ``axis=-1`` unless given. ``axis`` may be an int, a tuple of
  ints, or None (all axes, as in SciPy). The reduced axes are moved to the end and
  flattened, giving a C-contiguous ``(rows, cols)`` block for the C kernels.
* Inputs are never modified: every block handed to a kernel as input is either the
  caller's array (read only) or a private copy.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

try:  # NumPy >= 1.25
    from numpy.exceptions import AxisError
except ImportError:  # pragma: no cover
    from numpy import AxisError  # type: ignore[attr-defined,no-redef]

__all__ = [
    "AxisError",
    "as_float_array",
    "compute_dtype",
    "normalize_axes",
    "Rows",
    "check_out",
    "check_real",
    "check_temperature",
    "broadcast_where",
    "check_ignore_index",
    "class_labels",
]


def compute_dtype(dtype: np.dtype, name: str) -> tuple[np.dtype, np.dtype]:
    """(dtype the kernels compute in, dtype returned to the caller) for an input dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        if dtype == np.float32:
            return np.dtype(np.float32), np.dtype(np.float32)
        if dtype == np.float64:
            return np.dtype(np.float64), np.dtype(np.float64)
        if dtype == np.float16:
            return np.dtype(np.float32), np.dtype(np.float16)
        return np.dtype(np.float64), np.dtype(np.float64)
    if dtype.kind in "iub":
        return np.dtype(np.float64), np.dtype(np.float64)
    raise TypeError(
        f"{name} must be an array of real numbers (float, int or bool), got dtype {dtype}"
    )


def as_float_array(x: Any, name: str = "x") -> tuple[np.ndarray, np.dtype]:
    """``x`` as an ndarray in the dtype the kernels compute in, and the result dtype.

    The returned array may be the caller's own (never written to) or a converted copy.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None
    work, result = compute_dtype(arr.dtype, name)
    if arr.dtype != work:
        arr = arr.astype(work)
    return arr, result


def normalize_axes(axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """``axis`` (int, tuple of ints, or None for all axes) as sorted non-negative ints.

    Raises NumPy's AxisError when an axis is out of range, TypeError when ``axis`` is
    not an int, and ValueError on a repeated axis.
    """
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{name} must be an int, a tuple of ints or None, got {axis!r}")
        a = int(a)
        if not -ndim <= a < ndim:
            raise AxisError(a, ndim, msg_prefix=name)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has a repeated axis: {axis!r}")
    return tuple(sorted(out))


class Rows:
    """A view of an array as a C-contiguous (rows, cols) block over some axes.

    ``Rows(x, axes)`` moves ``axes`` to the end (in their order) and flattens them
    into ``cols``; the other axes become ``rows``. ``block`` is C-contiguous (a copy
    only when the moved layout is not contiguous already). ``restore(y2d)`` turns a
    (rows, cols) result back into ``x``'s shape and axis order, and
    ``restore_reduced(v, keepdims)`` does the same for a per-row result.
    """

    def __init__(self, x: np.ndarray, axes: tuple[int, ...]):
        self.shape = x.shape
        self.axes = axes
        self.kept = tuple(a for a in range(x.ndim) if a not in axes)
        moved = np.transpose(x, self.kept + axes) if x.ndim else x
        self.moved_shape = moved.shape
        self.batch_shape = tuple(x.shape[a] for a in self.kept)
        self.rows = math.prod(self.batch_shape)
        self.cols = math.prod(x.shape[a] for a in axes)
        self.block = np.ascontiguousarray(moved).reshape(self.rows, self.cols)
        self.identity = self.kept + axes == tuple(range(x.ndim))

    def restore(self, y2d: np.ndarray) -> np.ndarray:
        y = y2d.reshape(self.moved_shape)
        if self.identity:
            return y
        return np.transpose(y, np.argsort(self.kept + self.axes))

    def restore_reduced(self, v: np.ndarray, keepdims: bool) -> np.ndarray:
        v = v.reshape(self.batch_shape)
        if keepdims:
            shape = tuple(1 if a in self.axes else n for a, n in enumerate(self.shape))
            v = v.reshape(shape)
        return v


def check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, name: str = "out") -> np.ndarray:
    """Check a caller-supplied output array: an ndarray, writeable, right shape and dtype."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise ValueError(f"{name} has dtype {out.dtype}, expected {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def check_real(value: Any, name: str) -> float:
    """A real scalar (a Python or NumPy number, or a 0-d array) as a float; bools and
    anything else are a TypeError naming ``name``."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def check_temperature(temperature: Any, name: str = "temperature") -> float:
    """A temperature as a float: finite, > 0, and with a finite reciprocal."""
    t = check_real(temperature, name)
    if not math.isfinite(t) or t <= 0.0 or not math.isfinite(1.0 / t):
        raise ValueError(f"{name} must be a finite number > 0, got {temperature!r}")
    return t


def broadcast_where(where: Any, shape: tuple[int, ...], name: str = "where") -> np.ndarray:
    """``where`` as a bool array broadcast to ``shape`` (ValueError if it cannot be)."""
    w = np.asarray(where)
    if w.dtype != np.bool_:
        if w.dtype.kind not in "biu":
            raise TypeError(f"{name} must be an array of bools, got dtype {w.dtype}")
        w = w.astype(bool)
    try:
        return np.broadcast_to(w, shape)
    except ValueError:
        raise ValueError(
            f"{name} with shape {w.shape} does not broadcast to the input's shape {tuple(shape)}"
        ) from None


def check_ignore_index(ignore_index: Any, name: str = "ignore_index") -> int | None:
    """``ignore_index`` as an int in int64's range, or None (TypeError/ValueError)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{name} must be an int or None, got {ignore_index!r}")
    value = int(ignore_index)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{name} must fit in int64, got {value}")
    return value


def class_labels(target: Any, n_classes: int, ignore_index: int | None,
                 name: str = "target") -> np.ndarray:
    """Integer class labels as a flat C-contiguous int64 array (a copy when converted).

    Every label must be in ``[0, n_classes)`` or equal ``ignore_index``; the first that
    is neither raises ValueError naming its position and its value. uint64 labels
    above int64's range are rejected before the conversion (they would wrap to
    negative numbers, possibly to ``ignore_index``). ``ignore_index`` must already be
    checked (:func:`check_ignore_index`).
    """
    t = target if isinstance(target, np.ndarray) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an array of integer class indices, got dtype {t.dtype}")
    big = t > np.iinfo(np.int64).max if t.dtype == np.uint64 else np.zeros(t.shape, bool)
    t64 = t.astype(np.int64)  # wraps only where `big`, which is rejected below
    bad = big | (t64 < 0) | (t64 >= n_classes)
    if ignore_index is not None:
        bad &= ~((t64 == ignore_index) & ~big)
    if bad.any():
        flat = int(np.flatnonzero(bad.reshape(-1))[0])
        pos = np.unravel_index(flat, t.shape)
        where = "[" + ", ".join(str(int(i)) for i in pos) + "]"
        also = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(
            f"{name}{where} = {t[pos].item()} is not a class index in [0, {n_classes}){also}"
        )
    return np.ascontiguousarray(t64.reshape(-1))
