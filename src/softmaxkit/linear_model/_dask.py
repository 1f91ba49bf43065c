"""Dask: fit on a ``dask.array`` spread over a ``dask.distributed`` cluster.

The scheme of dask-ml's GLMs: X's row chunks are computed once and stay on the
workers; each evaluation of the objective sends the parameters to every chunk,
the workers compute the chunk's loss, gradient and correct count with
:class:`SoftmaxObjective` (our kernels, one thread each), and the client adds
the partial sums and runs L-BFGS. Only ``theta`` and the gradients (K x d numbers
per chunk) cross the network per evaluation. Prediction methods map the fitted
model over X's chunks and return dask arrays.

dask is optional: ``pip install softmaxkit[dask]``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DaskRows", "is_dask", "prepare_dask", "map_method"]

# Seconds to wait for the scheduler to answer before a fit gives up on it.
_PING_TIMEOUT = 10.0


def is_dask(X: Any) -> bool:
    """True for a dask collection (without importing dask when it is not loaded)."""
    import sys

    if "dask" not in sys.modules:
        return False
    from dask.base import is_dask_collection

    return is_dask_collection(X)


def _client():
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - dask without distributed
        raise ImportError("fitting a dask array needs dask.distributed: "
                          "pip install 'softmaxkit[dask]'") from None
    try:
        client = default_client()
    except ValueError:
        raise ConnectionError(
            "fitting a dask array needs a running dask.distributed Client, and there is none "
            "(never created, or closed when its scheduler went away): create one first, "
            "e.g. Client('tcp://scheduler-host:8786') or Client(LocalCluster())"
        ) from None
    address = getattr(client.scheduler, "address", None) if client.scheduler else None
    if client.status != "running":
        raise ConnectionError(
            f"the dask scheduler at {address} cannot be reached (client status {client.status!r})")
    from distributed import wait

    try:
        wait(client.submit(int, 1, pure=False), timeout=_PING_TIMEOUT)
    except Exception as exc:  # TimeoutError, CommClosedError, ...
        raise ConnectionError(
            f"the dask scheduler at {address} did not run a task within {_PING_TIMEOUT:.0f} s "
            f"({type(exc).__name__}: {exc})") from None
    return client


def _check_block(Xb: np.ndarray, start: int) -> tuple[int, int] | None:
    bad = np.argwhere(~np.isfinite(Xb))
    return None if bad.size == 0 else (start + int(bad[0, 0]), int(bad[0, 1]))


def _moments(Xb, w, mean):
    return w @ Xb if mean is None else w @ (Xb - mean) ** 2


def _eval_block(Xb, aux, theta, spec, mean, scale):
    """One chunk's unscaled data term: (gradient, loss, correct count)."""
    from ._objective import SoftmaxObjective

    target, sw, truth = aux
    k, d, alpha, fit_intercept, label_smoothing = spec
    if mean is not None:
        Xb = ((Xb - mean) / scale).astype(Xb.dtype, copy=False)
    obj = SoftmaxObjective(k, d, alpha=alpha, fit_intercept=fit_intercept,
                           label_smoothing=label_smoothing, n_threads=1)
    _, g, loss, ok = obj.loss_gradient(theta, np.ascontiguousarray(Xb), target, sw,
                                       data_scale=1.0, penalty_scale=0.0, truth=truth)
    return g, loss, ok


class DaskRows:
    """X's row chunks held on the workers of a distributed cluster (futures)."""

    ndim = 2

    def __init__(self, client, parts, starts, shape, dtype):
        self.client, self.parts, self.starts = client, parts, starts
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self._aux: tuple[Any, list] | None = None

    def prepared(self, mean, scale) -> "DaskRows":
        other = DaskRows(self.client, self.parts, self.starts, self.shape, self.dtype)
        other.mean, other.scale = mean, scale
        other._aux = self._aux
        return other

    def _slices(self):
        stops = self.starts[1:] + [self.shape[0]]
        return list(zip(self.starts, stops))

    def standardization(self, sw: np.ndarray):
        w = sw / sw.sum()
        ws = self.client.scatter([w[s:e] for s, e in self._slices()])
        mean = sum(self.client.gather(self.client.map(_moments, self.parts, ws, mean=None, pure=False)))
        var = sum(self.client.gather(self.client.map(_moments, self.parts, ws, mean=mean, pure=False)))
        return np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)

    def partial_sums(self, obj, theta, target, sw, truth):
        """Sum over the chunks of the unscaled data gradient, loss and correct count."""
        key = (id(target), id(sw), id(truth))
        if self._aux is None or self._aux[0] != key:
            futs = self.client.scatter([(target[s:e], sw[s:e], None if truth is None else truth[s:e])
                                        for s, e in self._slices()])
            self._aux = (key, futs)
        spec = (obj.k, obj.d, 0.0, obj.fit_intercept, obj.label_smoothing)  # no penalty there
        futs = self.client.map(_eval_block, self.parts, self._aux[1], theta=theta, spec=spec,
                               mean=self.mean, scale=self.scale, pure=False)
        parts = self.client.gather(futs)
        g = parts[0][0].copy()
        for p in parts[1:]:
            g += p[0]
        correct = -1 if truth is None else int(sum(p[2] for p in parts))
        return g, float(sum(p[1] for p in parts)), correct


def prepare_dask(est: Any, X: Any, y: Any, reset: bool, dtype: Any) -> tuple[DaskRows, np.ndarray]:
    """Check a dask X (and y), put X's row chunks on the workers; y comes to the client."""
    import dask.array as da

    if not isinstance(X, da.Array):
        raise TypeError(f"X as a dask collection must be a dask.array, got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got a dask array of shape {X.shape}")
    if np.dtype(X.dtype).kind not in "fiub":
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
    if isinstance(y, da.Array):
        if y.chunks[0] != X.chunks[0]:
            raise ValueError(f"y's row chunks {y.chunks[0][:5]}... do not match X's {X.chunks[0][:5]}...; "
                             "rechunk y like X (y.rechunk({0: X.chunks[0]}))")
    elif is_dask(y):
        raise TypeError(f"y as a dask collection must be a dask.array, got {type(y).__name__}")
    client = _client()
    y = client.compute(y).result() if isinstance(y, da.Array) else np.asarray(y)
    n, d = X.shape
    if y.shape[0] != n:
        raise ValueError(f"X has {n} rows but y has {y.shape[0]}")
    if reset:
        est.n_features_in_ = d
        if hasattr(est, "feature_names_in_"):
            del est.feature_names_in_
    elif d != est.n_features_in_:
        raise ValueError(f"X has {d} features, but {type(est).__name__} is expecting "
                         f"{est.n_features_in_} features as input")
    X = X.rechunk({1: -1}).astype(dtype)
    parts = client.compute(list(X.to_delayed().ravel()))
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(int).tolist()
    bad = [b for b in client.gather(client.map(_check_block, parts, starts, pure=False)) if b]
    if bad:
        raise ValueError(f"X (dask array): row {bad[0][0]}, column {bad[0][1]} is not finite")
    return DaskRows(client, parts, starts, (n, d), dtype), y


def map_method(est: Any, X: Any, method: str):
    """``est.<method>`` over X's row chunks, as a dask array."""
    import dask.array as da

    if not isinstance(X, da.Array) or X.ndim != 2:
        raise TypeError(f"X as a dask collection must be a 2-D dask.array, got {type(X).__name__}")
    X = X.rechunk({1: -1})
    k = est.classes_.size
    fn = getattr(est, method)
    if method == "predict" or (method == "decision_function" and k == 2):
        dtype = est.classes_.dtype if method == "predict" else np.float64
        return X.map_blocks(fn, dtype=dtype, drop_axis=1, meta=np.empty((0,), dtype=dtype))
    return X.map_blocks(fn, dtype=np.float64, chunks=(X.chunks[0], (k,)),
                        meta=np.empty((0, 0), dtype=np.float64))
