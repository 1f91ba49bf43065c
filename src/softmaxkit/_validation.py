"""Input checking, dtype rules and the reshape to (rows, cols) blocks.

Shared by every public function of softmaxkit, so the rules are written once:

* Floating inputs keep their dtype: float32 and float64 are computed as they are,
  float16 and bfloat16 (``ml_dtypes.bfloat16``, when installed) are computed in
  float32 and returned in their own dtype (a 16-bit kernel reads and writes them
  directly where one exists: ``keep_half``), and wider floats
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
    "real_array",
    "compute_dtype",
    "is_bfloat16",
    "is_half",
    "normalize_axes",
    "class_rows",
    "Rows",
    "check_out",
    "check_real",
    "check_bool",
    "check_temperature",
    "check_softcap",
    "check_z_loss",
    "check_reduction",
    "check_smoothing",
    "check_ignore_index",
    "check_weights",
    "check_broadcasts",
    "check_class_weight",
    "check_prob_rows",
    "hard_target",
    "soft_target",
    "broadcast_where",
    "where_first",
    "fmt_pos",
    "check_single_axis",
    "check_fraction",
    "check_top_k",
    "check_sampling_temperature",
    "check_seed",
    "check_alpha",
]

# The reductions every loss accepts; kl_div adds "batchmean".
REDUCTIONS = ("none", "sum", "mean")


# long double where it is wider than float64 (x86: 80-bit extended in 16 bytes).
WIDE = np.dtype(np.longdouble) if np.finfo(np.longdouble).nmant > 52 else None


def is_bfloat16(dtype: Any) -> bool:
    """Whether ``dtype`` is ml_dtypes' bfloat16 (recognised without importing
    ml_dtypes, an optional dependency: NumPy knows it as a 2-byte void-kind dtype
    named "bfloat16")."""
    dtype = np.dtype(dtype)
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"


def is_half(dtype: Any) -> bool:
    """Whether ``dtype`` is a 16-bit float the 16-bit kernels take: float16 or bfloat16."""
    dtype = np.dtype(dtype)
    return dtype == np.float16 or is_bfloat16(dtype)


def compute_dtype(dtype: Any, name: str, keep_wide: bool = False,
                  keep_half: bool = False) -> tuple[np.dtype, np.dtype]:
    """(dtype the kernels compute in, dtype returned to the caller) for an input dtype.

    ``keep_wide``: a long double input is computed (in NumPy, by the caller) and
    returned as long double, as SciPy does, instead of as float64.
    ``keep_half``: float16 and bfloat16 are handed to the kernels as they are (the
    caller runs a 16-bit kernel, see _kernels/half_body.h), instead of in float32.
    """
    dtype = np.dtype(dtype)
    if is_bfloat16(dtype):
        return (dtype if keep_half else np.dtype(np.float32)), dtype
    if dtype.kind == "f" and not dtype.isnative:  # big-endian float32 is float32
        dtype = dtype.newbyteorder("=")
    if dtype.kind == "f":
        if dtype == np.float32:
            return np.dtype(np.float32), np.dtype(np.float32)
        if dtype == np.float64:
            return np.dtype(np.float64), np.dtype(np.float64)
        if dtype == np.float16:
            return np.dtype(np.float16 if keep_half else np.float32), np.dtype(np.float16)
        if keep_wide and WIDE is not None and dtype == WIDE:
            return WIDE, WIDE
        return np.dtype(np.float64), np.dtype(np.float64)
    if dtype.kind in "iub":
        return np.dtype(np.float64), np.dtype(np.float64)
    raise TypeError(
        f"{name} must be an array of real numbers (float, int or bool), got dtype {dtype}"
    )


def as_float_array(x: Any, name: str = "x", keep_wide: bool = False, keep_half: bool = False
                   ) -> tuple[np.ndarray, np.dtype]:
    """``x`` as an ndarray in the dtype the kernels compute in, and the result dtype
    (``keep_wide``, ``keep_half`` as in :func:`compute_dtype`).

    The returned array may be the caller's own (never written to) or a converted copy.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None
    work, result = compute_dtype(arr.dtype, name, keep_wide, keep_half)
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
    if ndim == 0 and isinstance(axis, numbers.Integral) and not isinstance(axis, bool) \
            and int(axis) in (0, -1):
        return ()  # a 0-d input's one value is its own class axis, as torch's dim=0
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
        self.identity = self.kept + axes == tuple(range(x.ndim))
        # the common case, class axes last: no transpose (hot in small-batch loops)
        moved = x if self.identity else np.transpose(x, self.kept + axes)
        self.moved_shape = moved.shape
        self.batch_shape = x.shape[:len(self.kept)] if self.identity else tuple(
            x.shape[a] for a in self.kept)
        self.rows = math.prod(self.batch_shape)
        self.cols = math.prod(x.shape[a] for a in axes)
        block = moved if moved.flags.c_contiguous else np.ascontiguousarray(moved)
        self.block = block.reshape(self.rows, self.cols)

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
    if type(value) is float:  # the common case, without the ABC checks below
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def check_softcap(softcap: Any, name: str = "softcap") -> float | None:
    """None, or a logit soft-cap (Gemma's ``c * tanh(z / c)``): finite and > 0."""
    if softcap is None:
        return None
    c = check_real(softcap, name)
    if not math.isfinite(c) or c <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0 or None, got {softcap!r}")
    return c


def check_at_least(value: Any, name: str, lo: float) -> float:
    """A finite real number >= ``lo`` (focal ``gamma >= 0``, poly-1 ``epsilon >= -1``)."""
    c = check_real(value, name)
    if not math.isfinite(c) or c < lo:
        raise ValueError(f"{name} must be a finite number >= {lo:g}, got {value!r}")
    return c


def check_z_loss(z_loss: Any, name: str = "z_loss") -> float:
    """The PaLM z-loss coefficient: a finite number >= 0."""
    return check_at_least(z_loss, name, 0.0)


def check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """One of the strings ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_names(value: Any, name: str, allowed: tuple[str, ...]) -> frozenset[str]:
    """A name from ``allowed``, or an iterable of them, as a frozenset (the fused
    head's ``outputs=``)."""
    if isinstance(value, str):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of names from {allowed}, got {value!r}") from None
    for o in items:
        if o not in allowed:
            raise ValueError(f"{name} must be names from {allowed}, got {o!r}")
    return frozenset(items)


def check_beta_threshold(beta: Any, threshold: Any) -> tuple[float, float]:
    """PyTorch's softplus options as floats: ``beta`` finite and > 0, ``threshold`` a
    number (not NaN), None meaning +inf (never)."""
    b = check_real(beta, "beta")
    if not (math.isfinite(b) and b > 0):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    if threshold is None:
        return b, math.inf
    th = check_real(threshold, "threshold")
    if math.isnan(th):
        raise ValueError(f"threshold must be a number or None, got {threshold!r}")
    return b, th


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


# ------------------------------------------------------------ options of the losses


def check_bool(value: Any, name: str) -> bool:
    """A Python or NumPy bool (TypeError naming ``name`` otherwise)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_reduction(reduction: Any, allowed: tuple[str, ...] = REDUCTIONS) -> str:
    """One of ``allowed``: TypeError for a non-string, ValueError for another string."""
    if not isinstance(reduction, str):
        raise TypeError(f"reduction must be a string, one of {allowed}, got {reduction!r}")
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def check_smoothing(label_smoothing: Any, name: str = "label_smoothing") -> float:
    """A label-smoothing factor in [0, 1] as a float."""
    eps = check_real(label_smoothing, name)
    if not 0.0 <= eps <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {label_smoothing!r}")
    return eps


def check_ignore_index(ignore_index: Any) -> int | None:
    """None, or an int that fits in int64 (the kernels' label type)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    value = int(ignore_index)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"ignore_index must fit in int64, got {value}")
    return value


# ------------------------------------------------------------ arrays


def where_first(mask: np.ndarray) -> tuple[int, ...]:
    """The index (a tuple) of the first True of ``mask``, in C order."""
    flat = int(np.flatnonzero(mask.reshape(-1))[0])
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def fmt_pos(pos: tuple[int, ...]) -> str:
    """An index tuple as ``[i, j]`` for messages."""
    return "[" + ", ".join(str(i) for i in pos) + "]"


def real_array(value: Any, name: str) -> np.ndarray:
    """``value`` as an ndarray of real numbers (TypeError otherwise), dtype kept
    (bfloat16 widened to float32, exactly)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be array-like of real numbers: {exc}") from None
    if is_bfloat16(arr.dtype):
        return arr.astype(np.float32)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr


def check_broadcasts(arr: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``arr`` itself when it broadcasts to ``shape`` exactly (ValueError otherwise)."""
    try:
        fits = np.broadcast_shapes(arr.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{name} with shape {arr.shape} does not broadcast to {tuple(shape)}")
    return arr


def check_weights(value: Any, shape: tuple[int, ...], dtype: Any, name: str,
                  broadcast: bool = False) -> np.ndarray:
    """Weights: real, finite, >= 0, of ``shape`` (or broadcastable to it), as a
    C-contiguous array of ``dtype``."""
    arr = real_array(value, name)
    if broadcast:
        check_broadcasts(arr, shape, name)
    elif arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}, expected {tuple(shape)}")
    bad = ~np.isfinite(arr) | (arr < 0) if arr.dtype.kind == "f" else arr < 0
    if bad.any():
        pos = where_first(bad)
        raise ValueError(
            f"{name} must be finite and >= 0, got {arr[pos].item()!r} at {name}{fmt_pos(pos)}"
        )
    return np.asarray(arr, dtype=dtype, order="C")  # keeps a 0-d array 0-d


def check_class_weight(value: Any, name: str = "weight") -> np.ndarray:
    """Per-class weights given before the number of classes is known: a 1-D array of
    finite numbers >= 0, as float64 (its length is checked against C per call)."""
    arr = real_array(value, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} has shape {arr.shape}, expected one weight per class (1-D)")
    return check_weights(arr, arr.shape, np.float64, name)


def class_rows(input: Any, axis: Any, name: str = "input", keep_half: bool = False
               ) -> tuple[Rows, np.dtype, int]:
    """``input`` as a (rows, C) block with the one class axis last:
    (the Rows view, the result dtype, the class axis as a non-negative int);
    ``keep_half`` as in :func:`compute_dtype`."""
    arr, result_dtype = as_float_array(input, name, keep_half=keep_half)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class axis)")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an int, got {axis!r}")
    (ax,) = normalize_axes(int(axis), arr.ndim)
    return Rows(arr, (ax,)), result_dtype, ax


def hard_target(target: np.ndarray, n_classes: int, batch_shape: tuple[int, ...],
                ignore_index: int | None, what: str = "the input's shape without the class axis"
                ) -> np.ndarray:
    """Integer class indices as a flat C-contiguous int64 array, each in
    ``[0, n_classes)`` or equal to ``ignore_index``.

    The one label check of every loss: a uint64 label beyond int64 is refused, never
    wrapped (2**64 - 1 does not become -1 and match ``ignore_index=-1``).
    """
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.shape != tuple(batch_shape):
        raise ValueError(f"target has shape {target.shape}, expected {tuple(batch_shape)} ({what})")
    if target.dtype == np.uint64:
        big = target > np.iinfo(np.int64).max
    else:
        big = np.zeros(target.shape, bool)
    t = target.astype(np.int64)  # wraps only where `big`, which is refused below
    bad = big | (t < 0) | (t >= n_classes)
    if ignore_index is not None:
        bad &= ~((t == ignore_index) & ~big)
    if bad.any():
        pos = where_first(bad)
        also = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(
            f"target{fmt_pos(pos)} = {target[pos].item()} is not a class index in "
            f"[0, {n_classes}){also}"
        )
    return np.ascontiguousarray(t.reshape(-1))


def soft_target(target: np.ndarray, rows: Rows, ax: int, dtype: np.dtype) -> np.ndarray:
    """Class probabilities (soft labels) of the input's shape as a finite (rows, C)
    block in the class-last layout."""
    if target.shape != rows.shape:
        raise ValueError(
            f"target of class probabilities has shape {target.shape}, expected the "
            f"input's shape {rows.shape}"
        )
    bad = ~np.isfinite(target)
    if bad.any():
        pos = where_first(bad)
        raise ValueError(f"target must be finite, got {target[pos].item()!r} at target{fmt_pos(pos)}")
    return Rows(target.astype(dtype, copy=False), (ax,)).block


def prob_tolerance(dtype: Any) -> float:
    """How far a row of probabilities may sum from 1: sqrt(machine epsilon) of its
    dtype (3.5e-4 float32, 1.5e-8 float64, 0.031 float16, 0.088 bfloat16)."""
    if is_bfloat16(dtype):
        return float(np.sqrt(2.0**-7))  # bfloat16 keeps 8 significant bits
    return float(np.sqrt(np.finfo(np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.float64).eps))


def check_prob_rows(p: np.ndarray, name: str, hint: str = "pass logits with from_logits=True",
                    dtype: Any = None) -> None:
    """The one check of rows of probabilities, a (rows, C) block: finite, in [0, 1],
    each row summing to 1 within :func:`prob_tolerance` of its dtype (or of ``dtype``,
    the caller's own, when the block was widened from 16 bits)."""
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        i, j = where_first(bad)
        raise ValueError(
            f"{name} holds probabilities, but row {i}, class {j} is "
            f"{p[i, j].item()!r}: expected probabilities in [0, 1]"
        )
    if p.shape[1] == 0:
        return
    tol = prob_tolerance(p.dtype if dtype is None else dtype)
    sums = p.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1.0) > tol
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{name} holds probabilities, but row {i} sums to "
            f"{float(sums[i])!r}, not 1 (tolerance {tol:.1e}); {hint}"
        )

# ------------------------------------------------------------ sampling options


def check_single_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    """One class axis (an int, not a tuple or None) as a non-negative int."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be a single int (one class axis), got {axis!r}")
    (ax,) = normalize_axes(int(axis), ndim, name)
    return ax


def check_fraction(value: Any, name: str, *, zero_ok: bool) -> float:
    """A real number in [0, 1] (``zero_ok``) or (0, 1]."""
    v = check_real(value, name)
    if not (0.0 <= v <= 1.0) or (v == 0.0 and not zero_ok):
        interval = "[0, 1]" if zero_ok else "(0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def check_count(value: Any, name: str, *, none_ok: bool = False) -> int:
    """A positive integer (a count: of classes, of bins); the message says whether
    None is also accepted (the caller handles None)."""
    what = f"{name} must be a positive integer{' or None' if none_ok else ''}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(what)
    if int(value) < 1:
        raise ValueError(what)
    return int(value)


def check_top_k(value: Any, name: str = "top_k") -> int:
    """A positive integer (a count of classes; None is handled by the caller)."""
    return check_count(value, name, none_ok=True)


def check_sampling_temperature(temperature: Any, name: str = "temperature") -> float:
    """A sampling temperature: 0 (greedy) or a temperature as check_temperature."""
    t = check_real(temperature, name)
    if t == 0.0:
        return 0.0
    return check_temperature(temperature, name)


def check_seed(seed: Any, batch_shape: tuple[int, ...], name: str = "seed") -> np.ndarray | int:
    """A seed: an int in [0, 2**64), or an integer array of them of shape
    ``batch_shape`` (one seed per row), returned as uint64."""
    if isinstance(seed, bool):
        raise TypeError(f"{name} must be an int in [0, 2**64), an array of them or None, got {seed!r}")
    if isinstance(seed, numbers.Integral):
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"{name} must be in [0, 2**64), got {seed!r}")
        return int(seed)
    arr = np.asarray(seed)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an int in [0, 2**64), an array of them or None, got dtype {arr.dtype}")
    if arr.shape != tuple(batch_shape):
        raise ValueError(
            f"{name} has shape {arr.shape}, expected one seed per row: {tuple(batch_shape)}"
        )
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise ValueError(f"{name} must be in [0, 2**64), got {int(arr.min())}")
    return arr.astype(np.uint64)


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """The alpha of alpha-entmax: a finite number >= 1 (1 is softmax)."""
    a = check_real(alpha, name)
    if not (math.isfinite(a) and a >= 1.0):
        raise ValueError(f"{name} must be a finite number >= 1, got {alpha!r}")
    return a
