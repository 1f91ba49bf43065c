"""Drawing from softmax distributions: token sampling with temperature, top-k, top-p
and min-p (as language-model decoders do), and the Gumbel-softmax relaxation.

Randomness is counter-based: every row has a 64-bit key and its j-th uniform is
``splitmix64(key + (j + 1) * 0x9E3779B97F4A7C15) / 2**64`` (top 53 bits), so a
row's draws depend on its key and its logits only, never on the thread count, the
batch or the other rows. Keys come from ``seed`` (an int: row ``i`` gets the key
``splitmix64(seed + (i + 1) * gamma)``; an array: row ``i`` gets
``splitmix64(seed[i] + gamma)``, the same key wherever the row sits in the batch)
or from a ``numpy.random.Generator``. See docs/sampling.md.
"""
from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, overload

import numpy as np

from . import _kernels
from ._typing import ArrayLike, FloatArray, IntArray
from ._validation import (
    Rows,
    as_float_array,
    broadcast_where,
    check_fraction,
    check_sampling_temperature,
    check_seed,
    check_single_axis,
    check_temperature,
    check_top_k,
)

__all__ = [
    "Sample",
    "sample",
    "sampling_probs",
    "gumbel_softmax",
    "gumbel_softmax_backward",
]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _uniforms(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """The generator's uniforms in [0, 1): keys (rows,) by counters (m,) -> (rows, m).
    The same numbers as the C kernels' sk_uniform."""
    k = keys.astype(np.uint64).reshape(-1, 1)
    c = counters.astype(np.uint64).reshape(1, -1)
    with np.errstate(over="ignore"):
        bits = _mix64(k + (c + np.uint64(1)) * _GAMMA)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


_KEYS_GIVEN, _KEYS_SEED, _KEYS_ROW_SEEDS = _kernels.KEYS_GIVEN, _kernels.KEYS_SEED, _kernels.KEYS_ROW_SEEDS


def _key_source(seed: Any, generator: Any, batch_shape: tuple[int, ...], rows: int) -> tuple[np.ndarray, int]:
    """What the kernel derives row keys from: (uint64 array, key mode); see sampling.h."""
    if seed is not None and generator is not None:
        raise ValueError("give seed= or generator=, not both")
    if seed is None:
        if generator is None:
            gen = np.random.default_rng()
        elif isinstance(generator, np.random.Generator):
            gen = generator
        elif isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
            gen = np.random.default_rng(generator)
        else:
            raise TypeError(
                f"generator must be a numpy.random.Generator, an int or None, got {type(generator).__name__}"
            )
        return gen.integers(0, 2**64, size=rows, dtype=np.uint64, endpoint=False), _KEYS_GIVEN
    s = check_seed(seed, batch_shape)
    if isinstance(s, int):
        return np.array([s], dtype=np.uint64), _KEYS_SEED
    return np.ascontiguousarray(s.reshape(rows)), _KEYS_ROW_SEEDS


def _row_keys(seed: Any, generator: Any, batch_shape: tuple[int, ...], rows: int) -> np.ndarray:
    """One uint64 key per row, as the kernel derives them (sk_row_key)."""
    src, mode = _key_source(seed, generator, batch_shape, rows)
    with np.errstate(over="ignore"):
        if mode == _KEYS_SEED:
            return _mix64(src[0] + np.arange(1, rows + 1, dtype=np.uint64) * _GAMMA)
        if mode == _KEYS_ROW_SEEDS:
            return _mix64(src + _GAMMA)
    return src


def _draw_shape(size: Any) -> tuple[int, ...]:
    if size is None:
        return ()
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        shape: tuple[int, ...] = (int(size),)
    else:
        try:
            shape = tuple(int(s) for s in size)
        except TypeError:
            raise TypeError(f"size must be an int, a tuple of ints or None, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"size must not be negative, got {size!r}")
    return shape


class _Prepared(NamedTuple):
    rows: Rows
    block: np.ndarray  # (rows, cols), float32/float64, masked entries -inf
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    result_dtype: np.dtype


def _prepare(logits, temperature, top_k, top_p, min_p, where, axis) -> _Prepared:
    arr, result_dtype = as_float_array(logits, "logits")
    if arr.ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis)")
    ax = check_single_axis(axis, arr.ndim)
    if arr.shape[ax] == 0:
        raise ValueError("logits has no class to draw from (the class axis has length 0)")
    t = check_sampling_temperature(temperature)
    k = 0 if top_k is None else check_top_k(top_k)
    p = 1.0 if top_p is None else check_fraction(top_p, "top_p", zero_ok=False)
    mp = 0.0 if min_p is None else check_fraction(min_p, "min_p", zero_ok=True)
    if where is not None:
        w = broadcast_where(where, arr.shape)
        arr = np.where(w, arr, np.array(-np.inf, dtype=arr.dtype))
    rows = Rows(arr, (ax,))
    return _Prepared(rows, rows.block, t, k, p, mp, result_dtype)


def _raise_for_status(status: np.ndarray, where_given: bool) -> None:
    if not status.any():
        return
    bad = np.flatnonzero(status)
    i = int(bad[0])
    if status[i] == 1:
        raise ValueError(f"logits has NaN in distribution {i}: nothing can be drawn")
    masked = " (or entries excluded by where)" if where_given else ""
    raise ValueError(f"logits has only -inf entries{masked} in distribution {i}: nothing can be drawn")


def _greedy(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmax per row (lowest index on ties) and a status per row."""
    status = np.zeros(block.shape[0], dtype=np.int64)
    if block.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), status
    nan_rows = np.isnan(block).any(axis=1)
    idx = np.argmax(np.where(np.isnan(block), -np.inf, block), axis=1).astype(np.int64)
    dead = block[np.arange(block.shape[0]), idx] == -np.inf
    status[dead] = 2
    status[nan_rows] = 1
    return idx, status


class Sample(NamedTuple):
    """What :func:`sample` returns with ``return_logprobs=True``."""

    tokens: IntArray
    """The drawn class indices (int64)."""
    logprobs: FloatArray
    """log-probability of each draw under the processed distribution (float64)."""
    raw_logprobs: FloatArray
    """log-probability of each draw under ``softmax(logits)``, before temperature and
    truncation (``where=`` still applies) (float64)."""


@overload
def sample(
    logits: ArrayLike,
    *,
    temperature: float = ...,
    top_k: int | None = ...,
    top_p: float | None = ...,
    min_p: float | None = ...,
    where: ArrayLike | None = ...,
    seed: int | ArrayLike | None = ...,
    generator: np.random.Generator | int | None = ...,
    size: int | tuple[int, ...] | None = ...,
    return_logprobs: Literal[False] = ...,
    axis: int = ...,
    rng: np.random.Generator | int | None = ...,
) -> int | IntArray: ...


@overload
def sample(
    logits: ArrayLike,
    *,
    temperature: float = ...,
    top_k: int | None = ...,
    top_p: float | None = ...,
    min_p: float | None = ...,
    where: ArrayLike | None = ...,
    seed: int | ArrayLike | None = ...,
    generator: np.random.Generator | int | None = ...,
    size: int | tuple[int, ...] | None = ...,
    return_logprobs: Literal[True],
    axis: int = ...,
    rng: np.random.Generator | int | None = ...,
) -> Sample: ...


@overload
def sample(
    logits: ArrayLike,
    *,
    temperature: float = ...,
    top_k: int | None = ...,
    top_p: float | None = ...,
    min_p: float | None = ...,
    where: ArrayLike | None = ...,
    seed: int | ArrayLike | None = ...,
    generator: np.random.Generator | int | None = ...,
    size: int | tuple[int, ...] | None = ...,
    return_logprobs: bool,
    axis: int = ...,
    rng: np.random.Generator | int | None = ...,
) -> int | IntArray | Sample: ...


def sample(
    logits: ArrayLike,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    where: ArrayLike | None = None,
    seed: int | ArrayLike | None = None,
    generator: np.random.Generator | int | None = None,
    size: int | tuple[int, ...] | None = None,
    return_logprobs: bool = False,
    axis: int = -1,
    rng: np.random.Generator | int | None = None,
) -> int | IntArray | Sample:
    r"""Draw class indices from the softmax of ``logits``, processed as decoders do.

    Each row (the class axis is ``axis``) is processed in Hugging Face's and vLLM's
    order, then drawn from:

    1. temperature: :math:`w_j = \exp((x_j - \max x) / T)`; ``T = 0`` is greedy
       decoding (the argmax, the lowest index on ties; no randomness);
    2. top-k: keep the ``top_k`` largest weights (every entry tied with the k-th is
       kept);
    3. top-p (nucleus, Holtzman et al. 2020): of what is left, keep the smallest set of
       largest weights whose probability reaches ``top_p`` (ties at the edge kept);
    4. min-p (Nguyen et al. 2024): keep the weights at least ``min_p`` times the
       largest (a ratio, so the renormalisation of steps 2-3 does not change it);

    and draw from the kept weights renormalised. ``where=False`` entries and ``-inf``
    logits are never drawn. The C kernel sorts nothing: top-k and min-p take exps of
    the entries near the max only, other thresholds are found by quickselect; it
    threads over rows, or over the entries of a long row when there are fewer rows
    than threads (docs/sampling.md).

    Parameters
    ----------
    logits : array_like
        Scores, any shape; float32 logits are widened to float64 inside the kernel.
        A row with ``+inf`` entries draws uniformly among them.
    temperature : float, default 1.0
        ``T >= 0``; 0 is greedy.
    top_k : int, optional
        Keep the ``top_k`` most likely classes (``None``: all).
    top_p : float in (0, 1], optional
        Keep the nucleus of probability ``top_p`` (``None`` or 1: all).
    min_p : float in [0, 1], optional
        Keep classes at least ``min_p`` times as likely as the most likely one.
    where : array_like of bool, optional
        Entries that may be drawn (broadcast to ``logits``' shape).
    seed : int or array of ints, optional
        An int in ``[0, 2**64)``: row ``i`` is keyed by ``(seed, i)``. An integer
        array of the batch shape (``logits.shape`` without ``axis``): row ``i`` is
        keyed by ``seed[i]`` alone, so its draws do not depend on where it sits in
        the batch. Draws are the same at any thread count.
    generator : numpy.random.Generator or int, optional
        Draws one key per row from this generator instead (an int seeds
        ``numpy.random.default_rng``). With neither ``seed`` nor ``generator``, fresh
        OS entropy.
    size : int or tuple of ints, optional
        Independent draws per row; the result has shape ``size + batch shape``.
    return_logprobs : bool, default False
        Also return the log-probabilities of the draws (see :class:`Sample`).
    axis : int, default -1
        The class axis (one axis).
    rng : numpy.random.Generator or int, optional
        The older name of ``generator``.

    Returns
    -------
    ndarray of int64, or int
        The drawn indices along ``axis`` (a Python int for one draw from a 1-D
        ``logits``). With ``return_logprobs=True``, a :class:`Sample`
        ``(tokens, logprobs, raw_logprobs)``, the log-probabilities float64 arrays
        of the tokens' shape.

    Raises
    ------
    ValueError
        A row holding NaN, or with nothing to draw (all ``-inf`` or excluded).

    References
    ----------
    A. Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020.
    M. Nguyen et al., "Turning Up the Heat: Min-p Sampling for Creative and Coherent
    LLM Outputs", 2024. G. Steele, D. Lea, C. Flood, "Fast Splittable Pseudorandom
    Number Generators", OOPSLA 2014 (SplitMix64).

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> draws = smk.sample([0.0, np.log(3.0)], size=100000, seed=1)
    >>> round(float(draws.mean()), 2)  # P(class 1) = 3/4
    0.75
    >>> smk.sample([2.0, 1.0, 0.5], top_k=1, seed=0)  # only the top class survives
    0
    >>> smk.sample([2.0, 5.0, 5.0], temperature=0)  # greedy: first of the tied maxima
    1

    Scaling the logits first (``logits / T``) would overflow at tiny temperatures; the
    shift by the max does not:

    >>> smk.sample([1e10, 2e10], temperature=1e-300, size=3, seed=1)
    array([1, 1, 1])
    """
    if (type(logits) is np.ndarray and logits.ndim == 1 and where is None and size is None
            and generator is None and rng is None and return_logprobs is False and seed is not None):
        token = _sample_one_row(logits, temperature, top_k, top_p, min_p, seed, axis)
        if token is not None:
            return token
    if rng is not None:
        if generator is not None:
            raise ValueError("give generator= or rng= (its older name), not both")
        if not isinstance(rng, (np.random.Generator, int, np.integer)) or isinstance(rng, bool):
            raise TypeError(f"rng must be a numpy.random.Generator, an int or None, got {type(rng).__name__}")
        generator = rng
    if not isinstance(return_logprobs, (bool, np.bool_)):
        raise TypeError(f"return_logprobs must be a bool, got {return_logprobs!r}")
    prep = _prepare(logits, temperature, top_k, top_p, min_p, where, axis)
    draw_shape = _draw_shape(size)
    nd = math.prod(draw_shape)
    rows, block = prep.rows, prep.block
    n, cols = rows.rows, rows.cols
    if prep.temperature == 0.0:
        if seed is not None:
            check_seed(seed, rows.batch_shape)  # still validated
        idx1, status = _greedy(block)
        _raise_for_status(status, where is not None)
        idx = np.repeat(idx1[:, None], nd, axis=1)
        logp = np.zeros((n, nd))
    else:
        keys, key_mode = _key_source(seed, generator, rows.batch_shape, n)
        idx, logp, status = _kernels.sample_rows(
            block, keys, key_mode, nd, inv_temperature=1.0 / prep.temperature, top_k=prep.top_k,
            top_p=prep.top_p, min_p=prep.min_p)
        _raise_for_status(status, where is not None)

    def shaped(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.T).reshape(draw_shape + rows.batch_shape)

    tokens = shaped(idx)
    if not return_logprobs:
        return int(tokens) if tokens.ndim == 0 else tokens
    # The raw distribution: log_softmax(x) at temperature 1 over the included entries.
    x64 = np.ascontiguousarray(block, dtype=np.float64)
    lse = np.empty(n, dtype=np.float64)
    _kernels.logsumexp_rows(x64, lse)
    picked = np.take_along_axis(x64, idx, axis=1) if nd else np.zeros((n, 0))
    with np.errstate(invalid="ignore"):
        raw = picked - lse[:, None]
    # +inf rows: the limit convention gives the k +inf entries -log k each.
    inf_rows = lse == np.inf
    if inf_rows.any():
        k = (x64[inf_rows] == np.inf).sum(axis=1)
        raw[inf_rows] = -np.log(k)[:, None]
    return Sample(tokens, shaped(logp), shaped(raw))


_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _sample_one_row(x: np.ndarray, temperature: Any, top_k: Any, top_p: Any, min_p: Any, seed: Any,
                    axis: Any) -> int | None:
    """The decoding step's call, one draw from one row (a 1-D float32/float64 array,
    an int seed), without the general path's reshaping and copies: the same checks
    and the same token. None when the call is not that case (the general path
    takes it)."""
    if x.dtype not in _FAST_DTYPES or not x.flags.c_contiguous or x.shape[0] == 0:
        return None
    # the validators run unless the value is of the plain kind they would pass as is
    if not (type(axis) is int and (axis == -1 or axis == 0)):
        check_single_axis(axis, 1)
    t = check_sampling_temperature(temperature)
    k = 0 if top_k is None else top_k if type(top_k) is int and top_k > 0 else check_top_k(top_k)
    p = 1.0 if top_p is None else check_fraction(top_p, "top_p", zero_ok=False)
    mp = 0.0 if min_p is None else check_fraction(min_p, "min_p", zero_ok=True)
    s = seed if type(seed) is int and 0 <= seed < 2**64 else check_seed(seed, ())
    if t == 0.0 or not isinstance(s, int):
        return None
    idx, _, status = _kernels.sample_rows(x.reshape(1, -1), np.array([s], dtype=np.uint64), _KEYS_SEED, 1,
                                          inv_temperature=1.0 / t, top_k=k, top_p=p, min_p=mp)
    if status[0]:
        _raise_for_status(status, False)
    return int(idx[0, 0])


def sampling_probs(
    logits: ArrayLike,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    where: ArrayLike | None = None,
    axis: int = -1,
) -> FloatArray:
    """The distribution :func:`sample` draws from: temperature, then top-k, top-p and
    min-p truncation, renormalised (see :func:`sample` for each step).

    Parameters are those of :func:`sample`. ``temperature=0`` gives the one-hot of
    the argmax (the lowest index on ties).

    Returns
    -------
    ndarray
        The processed probabilities, ``logits``' shape; float32 and float16 logits
        give float32 and float16 results (computed in float64), others float64.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.sampling_probs([2.0, 1.0, 0.5], top_p=0.8)  # softmax: 0.629, 0.231, 0.140
    array([0.73105858, 0.26894142, 0.        ])
    >>> smk.sampling_probs([2.0, 1.0, 0.5], min_p=0.3)  # 0.231 / 0.629 >= 0.3 > 0.223
    array([0.73105858, 0.26894142, 0.        ])
    """
    prep = _prepare(logits, temperature, top_k, top_p, min_p, where, axis)
    rows, block = prep.rows, prep.block
    n, cols = rows.rows, rows.cols
    if prep.temperature == 0.0:
        idx, status = _greedy(block)
        _raise_for_status(status, where is not None)
        probs = np.zeros((n, cols))
        probs[np.arange(n), idx] = 1.0
    else:
        probs, status = _kernels.sample_probs_rows(
            block, inv_temperature=1.0 / prep.temperature, top_k=prep.top_k, top_p=prep.top_p,
            min_p=prep.min_p)
        _raise_for_status(status, where is not None)
    return rows.restore(probs).astype(prep.result_dtype, copy=False)


# ------------------------------------------------------------------ Gumbel-softmax

def _gumbel_soft(logits, temperature, seed, axis, name="logits"):
    arr, result_dtype = as_float_array(logits, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (the class axis)")
    ax = check_single_axis(axis, arr.ndim)
    t = check_temperature(temperature)
    rows = Rows(arr, (ax,))
    keys = _row_keys(seed, None, rows.batch_shape, rows.rows)
    # Gumbel noise g = -log(-log u), with u shifted by half a step into (0, 1).
    u = _uniforms(keys, np.arange(rows.cols)) + 2.0**-54
    g = -np.log(-np.log(u))
    z = rows.block.astype(np.float64) + g
    y = np.empty_like(z)
    _kernels.softmax_rows(z, y, inv_temperature=1.0 / t)
    return rows, y, result_dtype, t


def gumbel_softmax(
    logits: ArrayLike,
    temperature: float = 1.0,
    *,
    hard: bool = False,
    seed: int | ArrayLike | None = None,
    axis: int = -1,
) -> FloatArray:
    r"""Gumbel-softmax (concrete) relaxation of a categorical draw.

    :math:`y = \mathrm{softmax}((x + g) / \tau)` with :math:`g_j = -\log(-\log u_j)`
    standard Gumbel noise. As :math:`\tau \to 0` it tends to the one-hot of a draw
    from ``softmax(x)`` (the Gumbel-max trick). With ``hard=True`` the result is that
    one-hot, ``argmax(y)``, and :func:`gumbel_softmax_backward` gives the
    straight-through gradient (the soft sample's).

    Parameters
    ----------
    logits : array_like
        Unnormalised log-probabilities; the class axis is ``axis``.
    temperature : float, default 1.0
        :math:`\tau > 0`.
    hard : bool, default False
        Return the one-hot of the argmax instead of the soft sample.
    seed : int or array of ints, optional
        Keys the noise as in :func:`sample` (uniform ``j`` of row ``i`` is counter
        ``j`` of the row's key). Pass the same seed to :func:`gumbel_softmax_backward`.
    axis : int, default -1

    Returns
    -------
    ndarray
        ``logits``' shape and float dtype; rows sum to 1.

    References
    ----------
    E. Jang, S. Gu, B. Poole, "Categorical Reparameterization with Gumbel-Softmax",
    ICLR 2017. C. Maddison, A. Mnih, Y. W. Teh, "The Concrete Distribution", ICLR 2017.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> y = smk.gumbel_softmax([1.0, 2.0, 3.0], 0.5, seed=0)
    >>> bool(np.isclose(y.sum(), 1.0))
    True
    >>> smk.gumbel_softmax([1.0, 2.0, 3.0], 0.5, hard=True, seed=0)
    array([0., 0., 1.])
    """
    if not isinstance(hard, (bool, np.bool_)):
        raise TypeError(f"hard must be a bool, got {hard!r}")
    rows, y, result_dtype, _ = _gumbel_soft(logits, temperature, seed, axis)
    if hard:
        one_hot = np.zeros_like(y)
        if y.size:
            one_hot[np.arange(rows.rows), np.argmax(y, axis=1)] = 1.0
        y = one_hot
    return rows.restore(y).astype(result_dtype, copy=False)


def gumbel_softmax_backward(
    grad_output: ArrayLike,
    logits: ArrayLike,
    temperature: float = 1.0,
    *,
    seed: int | ArrayLike,
    axis: int = -1,
) -> FloatArray:
    r"""Gradient of :func:`gumbel_softmax` with respect to ``logits``.

    The noise is regenerated from ``seed`` (so it must be the forward's seed, not
    None), then :math:`\partial L / \partial x = y \odot (g_y - \sum_j y_j g_{y,j}) /
    \tau` with ``y`` the soft sample and :math:`g_y` = ``grad_output``. For
    ``hard=True`` this is the straight-through estimator (Bengio et al. 2013; Jang et
    al. 2017): the forward returns the one-hot, the backward the soft sample's
    gradient, so the same function serves both.

    Examples
    --------
    >>> import numpy as np, softmaxkit as smk
    >>> g = smk.gumbel_softmax_backward([1.0, 0.0, 0.0], [1.0, 2.0, 3.0], 0.5, seed=0)
    >>> bool(abs(g.sum()) < 1e-12)  # softmax gradients sum to 0 over the classes
    True
    """
    if seed is None:
        raise ValueError("seed must be the forward pass's seed (not None): the noise is regenerated from it")
    rows, y, result_dtype, t = _gumbel_soft(logits, temperature, seed, axis)
    g_arr, _ = as_float_array(grad_output, "grad_output")
    if g_arr.shape != rows.shape:
        raise ValueError(f"grad_output has shape {g_arr.shape}, but logits has shape {rows.shape}")
    g = np.ascontiguousarray(Rows(g_arr.astype(np.float64), rows.axes).block)
    dx = np.empty_like(y)
    _kernels.softmax_backward_rows(y, g, dx)
    dx /= t
    return rows.restore(dx).astype(result_dtype, copy=False)
