"""The softmax family: softmax, log_softmax, logsumexp, sigmoid, their backward
passes and hardmax (sampling is in _sampling.py).

Conventions shared by every function here (see docs/semantics.md):

* The class axis is ``axis=-1``; ``axis`` may also be a tuple of ints or None (all
  axes). Results keep the input's float dtype (float16 and ml_dtypes' bfloat16
  computed in float32; softmax and log_softmax run 16-bit kernels on them that round
  once, see docs/torch.md); ints and bools are promoted to float64. Inputs are never
  modified.
* ``where=False`` entries are excluded, as if they were ``-inf``: they get
  probability 0 and log-probability ``-inf``, and take no part in the sum.
* A row whose entries are all excluded or ``-inf``: softmax 0, log_softmax and
  logsumexp ``-inf``, backward 0. Never NaN.
* ``+inf`` entries: the limit where they grow together, so the k ``+inf`` entries of a
  row share the mass (1/k each, log-probability ``-log k``), the rest get 0.
* NaN anywhere in a row makes that row NaN, and nothing else.
"""
from __future__ import annotations

from typing import Any, Callable, Literal, overload

import numpy as np

from . import _kernels
from ._typing import ArrayLike, Axis, FloatArray, IntArray
from ._validation import (
    WIDE,
    Rows,
    as_float_array,
    broadcast_where,
    check_out,
    check_temperature,
    is_half,
    normalize_axes,
)

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "sigmoid",
    "log_sigmoid",
    "softplus",
    "hardmax",
    "softmax_backward",
    "log_softmax_backward",
    "sigmoid_backward",
]


def _finish(y: np.ndarray, result_dtype: np.dtype, out: np.ndarray | None, scalar: bool) -> Any:
    """Cast to the result dtype, copy into ``out`` when given, unwrap 0-d results."""
    with np.errstate(over="ignore"):  # beyond the result dtype's range rounds to +-inf
        if out is not None:
            np.copyto(out, y, casting="unsafe")
            return out
        if y.dtype != result_dtype:
            y = y.astype(result_dtype)
    return y[()] if scalar else y


def _masked(x: np.ndarray, where: Any) -> np.ndarray:
    """A copy of x with the where=False entries set to -inf (x itself is untouched)."""
    if where is None:
        return x
    w = broadcast_where(where, x.shape)
    return np.where(w, x, np.array(-np.inf, dtype=x.dtype))


# float32 kernels take 1/T as a float32: outside [FLT_MIN, FLT_MAX] it would round to
# inf or 0 (or lose digits as a subnormal) and turn the row's max entry into 0 * inf =
# NaN. Such extreme temperatures are computed in float64 and rounded to the result.
_F32_TINY, _F32_MAX = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)


def _wide_softmax(x: np.ndarray, axes: tuple[int, ...], inv_t: float, log: bool) -> np.ndarray:
    """softmax / log_softmax in NumPy at x's own (long double) precision, with the
    kernels' conventions: +inf entries share the mass, an all -inf row gives 0 / -inf,
    NaN poisons its row."""
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
        top = m == np.inf
        x = np.where(top, np.where(x == np.inf, 0.0, -np.inf), x)
        m = np.where(np.isfinite(m), m, 0.0)
        s = (x - m) * x.dtype.type(inv_t)
        lse = np.log(np.sum(np.exp(s), axis=axes, keepdims=True))
        empty = lse == -np.inf
        lse = np.where(empty, 0.0, lse)
        y = np.where(empty, -np.inf, s - lse)
    return y if log else np.exp(y)


def _rowwise_forward(kernel: Callable[..., None], x: Any, axis: Any, temperature: Any,
                     where: Any, out: np.ndarray | None) -> Any:
    arr, result_dtype = as_float_array(x, "x", keep_wide=True, keep_half=True)
    inv_t = 1.0 / check_temperature(temperature)
    if is_half(arr.dtype) and not _F32_TINY <= inv_t <= _F32_MAX:
        arr = arr.astype(np.float32)  # the 16-bit kernels take 1/T as a float32 too
    axes = normalize_axes(axis, arr.ndim)
    if out is not None:
        check_out(out, arr.shape, result_dtype)
    masked = _masked(arr, where)
    if arr.dtype == WIDE:
        y = _wide_softmax(masked, axes, inv_t, kernel is _kernels.log_softmax_rows)
        return _finish(y, result_dtype, out, arr.ndim == 0 and out is None)
    if arr.dtype == np.float32 and not _F32_TINY <= inv_t <= _F32_MAX:
        masked = masked.astype(np.float64)
    rows = Rows(masked, axes)
    # Write straight into out= when it is already the kernel's layout.
    direct = (
        out is not None
        and rows.identity
        and out.dtype == arr.dtype
        and out.flags.c_contiguous
        and out.dtype == rows.block.dtype
        and not np.shares_memory(out, arr)
    )
    y2d = out.reshape(rows.rows, rows.cols) if direct else np.empty_like(rows.block)
    kernel(rows.block, y2d, inv_temperature=inv_t)
    if where is not None:
        # Excluded entries are exactly 0 / -inf even in a row an included NaN poisons
        # (docs/semantics.md; JAX's choice).
        fill = -np.inf if kernel is _kernels.log_softmax_rows else 0.0
        excluded = Rows(np.ascontiguousarray(~broadcast_where(where, arr.shape)), axes).block
        np.copyto(y2d, fill, where=excluded)
    if direct:
        return out
    return _finish(rows.restore(y2d), result_dtype, out, arr.ndim == 0 and out is None)


def softmax(x: ArrayLike, axis: Axis = -1, *, temperature: float = 1.0,
            where: ArrayLike | None = None, out: np.ndarray | None = None) -> FloatArray:
    r"""Softmax along ``axis``: ``exp(x_i / T) / sum_j exp(x_j / T)``.

    Computed stably as ``exp((x - max) / T) / sum(exp((x - max) / T))``: the
    shift does not change the result (softmax is shift invariant) and keeps every
    exponent <= 0, so nothing overflows and the sum is at least 1.

    Parameters
    ----------
    x : array_like
        Logits. Real numbers; float16/32/64 and ``ml_dtypes.bfloat16`` keep their
        dtype (16-bit computed in float32, rounded once), ints become float64.
    axis : int, tuple of ints or None, default -1
        The class axis (or axes, flattened together; None means all axes).
    temperature : float, default 1.0
        ``T > 0``: logits are divided by it. Large T flattens the distribution,
        small T sharpens it towards :func:`hardmax`.
    where : array_like of bool, optional
        Entries to include; excluded entries get probability 0. A row with no
        entry included gives zeros.
    out : ndarray, optional
        Where to write the result (same shape as ``x``, the result dtype).

    Returns
    -------
    ndarray
        Probabilities in [0, 1], summing to 1 along ``axis``.

    Notes
    -----
    Rows with ``+inf`` entries share the mass among those entries; a NaN makes its
    row NaN. See the module notes for the full conventions.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.softmax([2.0, 3.0, 5.0])
    array([0.04201007, 0.1141952 , 0.84379473])

    The naive formula overflows (``exp(789)`` is inf, and inf/inf is NaN); the
    shifted one does not:

    >>> smk.softmax([123.0, 456.0, 789.0])
    array([5.75274406e-290, 2.39848787e-145, 1.00000000e+000])
    """
    return _rowwise_forward(_kernels.softmax_rows, x, axis, temperature, where, out)


def log_softmax(x: ArrayLike, axis: Axis = -1, *, temperature: float = 1.0,
                where: ArrayLike | None = None, out: np.ndarray | None = None) -> FloatArray:
    r"""Logarithm of softmax along ``axis``: ``x_i/T - logsumexp(x/T)``.

    Computed as ``(x - max)/T - log(sum(exp((x - max)/T)))``. The sum is at least 1,
    so this never takes ``log(0)``, unlike ``log(softmax(x))``.

    Parameters are those of :func:`softmax`; excluded (``where=False``) entries get
    ``-inf``.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> smk.log_softmax([1000.0, 1.0])
    array([   0., -999.])
    >>> with np.errstate(divide="ignore"):
    ...     print(np.log(smk.softmax([1000.0, 1.0])))
    [  0. -inf]
    """
    return _rowwise_forward(_kernels.log_softmax_rows, x, axis, temperature, where, out)


@overload
def logsumexp(x: ArrayLike, axis: Axis = ..., *, b: ArrayLike | None = ...,
              keepdims: bool = ..., return_sign: Literal[False] = ...,
              where: ArrayLike | None = ...) -> FloatArray: ...
@overload
def logsumexp(x: ArrayLike, axis: Axis = ..., *, b: ArrayLike | None = ...,
              keepdims: bool = ..., return_sign: Literal[True],
              where: ArrayLike | None = ...) -> tuple[FloatArray, FloatArray]: ...
def logsumexp(x: ArrayLike, axis: Axis = -1, *, b: ArrayLike | None = None,
              keepdims: bool = False, return_sign: bool = False,
              where: ArrayLike | None = None) -> Any:
    r"""``log(sum(b * exp(x)))`` along ``axis``, without overflow.

    Parameters
    ----------
    x : array_like
    axis : int, tuple of ints or None, default -1
    b : array_like, optional
        Scale factors for ``exp(x)``, broadcast against ``x`` (SciPy's meaning).
        Entries with ``b == 0`` are left out entirely.
    keepdims : bool, default False
        Keep the reduced axes with length 1.
    return_sign : bool, default False
        Return ``(log|s|, sign(s))`` for the sum ``s``, which may be negative when
        ``b`` has negative entries. Without it, a negative sum gives NaN.
    where : array_like of bool, optional
        Entries to include. A reduction over no entry gives ``-inf``.

    Notes
    -----
    Without ``b``, the sum is split as ``m + log1p(sum of the others' exp(x - m))``
    with ``m`` the row's first maximum, so a dominant term does not hide the
    others: ``logsumexp([0, -40])`` is ``4.248354255291589e-18``, not 0.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.logsumexp([0.0, -40.0]))
    4.248354255291589e-18
    >>> float(smk.logsumexp([1000.0, 1000.0]))  # 1000 + log 2
    1000.6931471805599
    """
    arr, result_dtype = as_float_array(x, "x", keep_wide=True)
    if b is not None or return_sign or arr.dtype == WIDE:
        return _logsumexp_scaled(arr, result_dtype, axis, b, keepdims, return_sign, where)
    axes = normalize_axes(axis, arr.ndim)
    arr = _masked(arr, where)
    rows = Rows(arr, axes)
    res = np.empty(rows.rows, dtype=arr.dtype)
    _kernels.logsumexp_rows(rows.block, res)
    res = rows.restore_reduced(res, keepdims).astype(result_dtype, copy=False)
    return res[()] if res.ndim == 0 else res


def _logsumexp_scaled(arr: np.ndarray, result_dtype: np.dtype, axis: Any, b: Any,
                      keepdims: bool, return_sign: bool, where: Any) -> Any:
    """logsumexp with weights b and/or a sign, or in long double: NumPy, SciPy's
    algorithm. ``x`` and ``b`` broadcast first, then ``axis`` applies to the
    broadcast shape, and the result dtype is that of ``x`` and ``b`` together
    (``np.result_type``, floats kept), as in SciPy."""
    if b is None:
        bb = np.ones_like(arr)
    else:
        bb, b_result = as_float_array(b, "b", keep_wide=True)
        try:
            shape = np.broadcast_shapes(bb.shape, arr.shape)
        except ValueError:
            raise ValueError(
                f"b with shape {bb.shape} does not broadcast to x's shape {arr.shape}"
            ) from None
        result_dtype = np.result_type(result_dtype, b_result)
        work = np.result_type(arr.dtype, bb.dtype)
        arr = np.broadcast_to(arr.astype(work, copy=False), shape)
        bb = np.broadcast_to(bb.astype(work, copy=False), shape)
    axes = normalize_axes(axis, arr.ndim)
    if where is not None:
        bb = np.where(broadcast_where(where, arr.shape), bb, 0)
    live = bb != 0
    a = np.where(live, arr, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = np.max(a, axis=axes, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, 0)
        s = np.sum(np.where(live, bb * np.exp(a - m), 0), axis=axes, keepdims=True)
        sign = np.sign(s)
        if not return_sign:
            s = np.where(s < 0, np.nan, s)
        res = np.log(np.abs(s)) + m
    if not keepdims:
        res = np.squeeze(res, axis=axes)
        sign = np.squeeze(sign, axis=axes)
    res = res.astype(result_dtype, copy=False)
    sign = sign.astype(result_dtype, copy=False)
    if res.ndim == 0:
        res, sign = res[()], sign[()]
    return (res, sign) if return_sign else res


def _wide_elementwise(kernel: Callable[..., None], x: np.ndarray) -> np.ndarray:
    """sigmoid, log_sigmoid or softplus in NumPy at long double precision."""
    with np.errstate(over="ignore", under="ignore"):
        if kernel is _kernels.sigmoid_flat:
            e = np.exp(-np.abs(x))  # never overflows
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        sign = -1 if kernel is _kernels.log_sigmoid_flat else 1  # log_sigmoid(x) = -softplus(-x)
        z = sign * x
        return sign * (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))))


def _elementwise(kernel: Callable[..., None], x: Any, out: np.ndarray | None) -> Any:
    arr, result_dtype = as_float_array(x, "x", keep_wide=True)
    if out is not None:
        check_out(out, arr.shape, result_dtype)
    if arr.dtype == WIDE:
        return _finish(_wide_elementwise(kernel, arr), result_dtype, out, arr.ndim == 0 and out is None)
    flat = np.ascontiguousarray(arr).reshape(-1)
    direct = (
        out is not None
        and out.dtype == arr.dtype
        and out.flags.c_contiguous
        and not np.shares_memory(out, arr)
    )
    y = out.reshape(-1) if direct else np.empty_like(flat)
    kernel(flat, y)
    if direct:
        return out
    return _finish(y.reshape(arr.shape), result_dtype, out, arr.ndim == 0 and out is None)


def sigmoid(x: ArrayLike, *, out: np.ndarray | None = None) -> FloatArray:
    r"""The logistic sigmoid ``1 / (1 + exp(-x))``, elementwise.

    Exact limits at the ends: 0 for ``-inf``, 1 for ``+inf``; NaN stays NaN.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.sigmoid([2.0, 3.0, 5.0, 6.0])
    array([0.88079708, 0.95257413, 0.99330715, 0.99752738])
    """
    return _elementwise(_kernels.sigmoid_flat, x, out)


def log_sigmoid(x: ArrayLike, *, out: np.ndarray | None = None) -> FloatArray:
    r"""``log(sigmoid(x)) = -softplus(-x)``, elementwise, finite for every finite x.

    Computed as ``min(x, 0) - log1p(exp(-|x|))`` in one vectorised C pass in the
    input's dtype.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.log_sigmoid(-800.0))  # log(sigmoid) would be log(0) = -inf
    -800.0
    """
    return _elementwise(_kernels.log_sigmoid_flat, x, out)


def softplus(x: ArrayLike, *, beta: float = 1.0, threshold: float | None = None,
             out: np.ndarray | None = None) -> FloatArray:
    r"""``log(1 + exp(x))``, elementwise, without overflow or cancellation.

    Computed as ``max(x, 0) + log1p(exp(-|x|))`` in one vectorised C pass in the
    input's dtype (float32 stays float32): ``exp(x)`` to within an ulp or two for
    very negative x (subnormal results included), ``x`` for large x.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.softplus(1000.0))
    1000.0

    PyTorch's ``beta`` and ``threshold``: ``log(1 + exp(beta x)) / beta``, and ``x``
    where ``beta x > threshold`` (None, the default here: never; PyTorch's is 20):

    >>> float(smk.softplus(1.0, beta=2.0))
    1.0634640055214863
    """
    if beta != 1.0 or threshold is not None:  # PyTorch's scaled form
        from ._activation_grads import softplus_scaled

        y = softplus_scaled(x, beta=beta, threshold=threshold)
        if out is None:
            return y
        check_out(out, np.shape(y), np.asarray(y).dtype)
        np.copyto(out, y)
        return out
    return _elementwise(_kernels.softplus_flat, x, out)


def hardmax(x: ArrayLike, axis: Axis = -1) -> FloatArray:
    """One-hot of the argmax along ``axis`` (the first index on ties).

    The limit of ``softmax(x, temperature=T)`` as T goes to 0 when the maximum is
    unique. A row of NaN-containing values gives NaN; a row that is all ``-inf`` (or
    empty) gives zeros, as softmax does.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.hardmax([2.0, 5.0, 3.0, 5.0])
    array([0., 1., 0., 0.])
    """
    arr, result_dtype = as_float_array(x, "x")
    axes = normalize_axes(axis, arr.ndim)
    rows = Rows(arr, axes)
    y = np.zeros((rows.rows, rows.cols), dtype=arr.dtype)
    if rows.cols and rows.rows:
        block = rows.block
        idx = np.argmax(block, axis=1)
        r = np.arange(rows.rows)
        live = block[r, idx] > -np.inf
        y[r[live], idx[live]] = 1.0
        y[np.isnan(block).any(axis=1)] = np.nan
    return _finish(rows.restore(y), result_dtype, None, arr.ndim == 0)


def _pair(a: Any, g: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """Two same-shape float arrays in a common compute dtype."""
    a_arr, a_res = as_float_array(a, names[0])
    g_arr, g_res = as_float_array(g, names[1])
    if a_arr.shape != g_arr.shape:
        raise ValueError(
            f"{names[1]} has shape {g_arr.shape}, but {names[0]} has shape {a_arr.shape}"
        )
    work = np.result_type(a_arr.dtype, g_arr.dtype)
    result = np.result_type(a_res, g_res)
    return a_arr.astype(work, copy=False), g_arr.astype(work, copy=False), result


def _rowwise_backward(kernel: Callable[..., None], a: Any, g: Any, axis: Any,
                      names: tuple[str, str]) -> Any:
    a_arr, g_arr, result_dtype = _pair(a, g, names)
    axes = normalize_axes(axis, a_arr.ndim)
    ra, rg = Rows(a_arr, axes), Rows(g_arr, axes)
    dx = np.empty_like(ra.block)
    kernel(ra.block, rg.block, dx)
    return _finish(ra.restore(dx), result_dtype, None, a_arr.ndim == 0)


def softmax_backward(probs: ArrayLike, grad_output: ArrayLike, axis: Axis = -1) -> FloatArray:
    r"""Gradient of ``softmax`` with respect to its input, from its output.

    ``dx = p * (g - sum(p * g))`` along ``axis``, where ``p = softmax(x)`` and ``g``
    is the gradient of some scalar with respect to ``p``. Entries with ``p == 0``
    (excluded) get exactly 0.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> p = smk.softmax([1.0, 2.0, 3.0])
    >>> g = smk.softmax_backward(p, np.ones(3))  # softmax sums to 1 whatever x is
    >>> bool(np.abs(g).max() < 1e-15)
    True
    >>> smk.softmax_backward(p, np.array([1.0, 0.0, 0.0]))  # d p[0] / dx
    array([ 0.08192507, -0.02203304, -0.05989202])
    """
    return _rowwise_backward(_kernels.softmax_backward_rows, probs, grad_output, axis, ("probs", "grad_output"))


def log_softmax_backward(log_probs: ArrayLike, grad_output: ArrayLike, axis: Axis = -1) -> FloatArray:
    r"""Gradient of ``log_softmax`` with respect to its input, from its output.

    ``dx = g - exp(lp) * sum(g)`` along ``axis``. Entries with ``lp == -inf``
    (excluded) get 0 and their ``g`` is left out of the sum.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> lp = smk.log_softmax([0.0, 0.0])
    >>> smk.log_softmax_backward(lp, np.array([-1.0, 0.0]))  # d(-lp[0])/dx
    array([-0.5,  0.5])
    """
    return _rowwise_backward(
        _kernels.log_softmax_backward_rows, log_probs, grad_output, axis, ("log_probs", "grad_output")
    )


def sigmoid_backward(s: ArrayLike, grad_output: ArrayLike) -> FloatArray:
    r"""Gradient of ``sigmoid`` with respect to its input, from its output:
    ``dx = g * s * (1 - s)``.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.sigmoid_backward(0.5, 1.0))
    0.25
    """
    s_arr, g_arr, result_dtype = _pair(s, grad_output, ("s", "grad_output"))
    s_c = np.ascontiguousarray(s_arr).reshape(-1)
    g_c = np.ascontiguousarray(g_arr).reshape(-1)
    dx = np.empty_like(s_c)
    _kernels.sigmoid_backward_flat(s_c, g_c, dx)
    return _finish(dx.reshape(s_arr.shape), result_dtype, None, s_arr.ndim == 0)
