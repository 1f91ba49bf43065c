r"""Backward passes of logsumexp, log_sigmoid and softplus (the latter with PyTorch's
``beta`` and ``threshold``), as functions of the forward's input.

Their forwards live in softmaxkit._softmax; these sit here until the softmax module
takes them in beside their forwards (the sampling branch did not edit it).

* ``logsumexp_backward(x, g)``: :math:`\partial/\partial x_j \log\sum_k e^{x_k} =
  \mathrm{softmax}(x)_j`, so ``dx = g * softmax(x)`` along the reduced axis.
* ``log_sigmoid_backward(x, g)``: :math:`\frac{d}{dx}\log\sigma(x) = \sigma(-x)`.
* ``softplus_backward(x, g, beta, threshold)``: PyTorch's softplus is
  :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`, and ``x`` itself where
  :math:`\beta x > \mathrm{threshold}`; its derivative is :math:`\sigma(\beta x)`, and
  1 past the threshold.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels
from ._typing import ArrayLike, Axis, FloatArray
from ._validation import Rows, as_float_array, check_beta_threshold, normalize_axes

__all__ = ["logsumexp_backward", "log_sigmoid_backward", "softplus_backward", "softplus_scaled"]
# softplus_scaled is the beta/threshold path of smk.softplus (not exported on its own).


def _same_shape(x: Any, g: Any) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """x and grad_output as flat C-contiguous arrays of one kernel dtype (float32 when
    both compute in float32, else float64), and the result dtype."""
    x_arr, x_res = as_float_array(x, "x")
    g_arr, g_res = as_float_array(g, "grad_output")
    if x_arr.shape != g_arr.shape:
        raise ValueError(f"grad_output has shape {g_arr.shape}, but x has shape {x_arr.shape}")
    work = np.result_type(x_arr.dtype, g_arr.dtype)
    return x_arr.astype(work, copy=False), g_arr.astype(work, copy=False), np.result_type(x_res, g_res)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def _unwrap(y: np.ndarray, dtype: np.dtype) -> Any:
    y = y.astype(dtype, copy=False)
    return y[()] if y.ndim == 0 else y


def _input_backward(kernel: Any, x: Any, grad_output: Any, **kw: float) -> Any:
    x_arr, g_arr, dtype = _same_shape(x, grad_output)
    dx = np.empty(x_arr.size, dtype=x_arr.dtype)
    kernel(_flat(x_arr), _flat(g_arr), dx, **kw)
    return _unwrap(dx.reshape(x_arr.shape), dtype)


def log_sigmoid_backward(x: ArrayLike, grad_output: ArrayLike) -> FloatArray:
    r"""Gradient of :func:`log_sigmoid` at ``x``: ``grad_output * sigmoid(-x)``,
    on the C kernel (float32 stays float32).

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.log_sigmoid_backward(0.0, 1.0))
    0.5
    >>> float(smk.log_sigmoid_backward(-1000.0, 1.0))  # log_sigmoid(x) ~ x there
    1.0
    """
    return _input_backward(_kernels.log_sigmoid_backward_flat, x, grad_output)


def softplus_scaled(x: ArrayLike, *, beta: float = 1.0, threshold: float | None = None) -> FloatArray:
    r"""PyTorch's softplus: :math:`\log(1 + e^{\beta x}) / \beta`, and ``x`` where
    :math:`\beta x > \mathrm{threshold}` (``threshold=None``: never; the exact value is
    computed everywhere, PyTorch's default is 20).

    ``smk.softplus(x, beta=..., threshold=...)`` calls it. One pass of the C kernel
    in the input's dtype (float32 stays float32; ``beta x`` is rounded to it, as
    PyTorch does).

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.softplus(1.0, beta=2.0))  # log(1 + e^2) / 2
    1.0634640055214863
    """
    b, th = check_beta_threshold(beta, threshold)
    arr, dtype = as_float_array(x, "x")
    flat = _flat(arr)
    y = np.empty_like(flat)
    _kernels.softplus_scaled_flat(flat, y, beta=b, threshold=th)
    return _unwrap(y.reshape(arr.shape), dtype)


def softplus_backward(x: ArrayLike, grad_output: ArrayLike, *, beta: float = 1.0,
                      threshold: float | None = None) -> FloatArray:
    r"""Gradient of softplus at ``x``: ``grad_output * sigmoid(beta x)``, and
    ``grad_output`` where :math:`\beta x > \mathrm{threshold}` (PyTorch's
    ``softplus_backward``), on the C kernel.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> float(smk.softplus_backward(0.0, 2.0))
    1.0
    """
    b, th = check_beta_threshold(beta, threshold)
    return _input_backward(_kernels.softplus_backward_flat, x, grad_output, beta=b, threshold=th)


def logsumexp_backward(x: ArrayLike, grad_output: ArrayLike, axis: Axis = -1, *,
                       keepdims: bool = False) -> FloatArray:
    r"""Gradient of :func:`logsumexp` over ``axis`` at ``x``: ``grad_output`` broadcast
    back over the reduced axes, times ``softmax(x, axis)``.

    ``grad_output`` has the shape of ``logsumexp(x, axis, keepdims=keepdims)``.
    A row of ``-inf`` gets 0 (softmax's convention), ``k`` entries ``+inf`` get
    ``grad / k`` each.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.logsumexp_backward([0.0, 0.0], 2.0)
    array([1., 1.])
    """
    arr, x_res = as_float_array(x, "x")
    g_arr, g_res = as_float_array(grad_output, "grad_output")
    axes = normalize_axes(axis, arr.ndim)
    kept_shape = tuple(1 if a in axes else n for a, n in enumerate(arr.shape))
    red_shape = tuple(n for a, n in enumerate(arr.shape) if a not in axes)
    expected = kept_shape if keepdims else red_shape
    if g_arr.shape != expected:
        raise ValueError(
            f"grad_output has shape {g_arr.shape}, expected {expected} (logsumexp's output "
            f"over axis={axis!r}{', keepdims=True' if keepdims else ''})")
    rows = Rows(np.asarray(arr, dtype=np.float64), axes)
    p = np.empty_like(rows.block)
    if p.size:
        _kernels.softmax_rows(rows.block, p)
    g = np.asarray(g_arr, dtype=np.float64).reshape(kept_shape)
    return _unwrap(rows.restore(p) * g, np.result_type(x_res, g_res))
