"""The penalised multinomial objective, shared by every solver.

In the spirit of scikit-learn's ``LinearModelLoss`` (``sklearn/linear_model/
_linear_loss.py``): the objective owns the parameter layout and the penalty, and calls
a loss *object* (options checked once, no validation per call) for the cross-entropy
of the logits and its gradient. The solvers only ever call :meth:`loss_gradient`.

Parameters are one flat float64 vector ``theta = [W.ravel(), b]`` with ``W`` of shape
(K, d) (one row per class) and ``b`` of shape (K,) (absent without an intercept)::

    Z = X W^T + b                                      (n, K) logits
    J = data_scale * sum_i s_i CE(Z_i, y_i) + penalty_scale * lam/2 * ||W||^2
    dJ/dW = data_scale * G^T X + penalty_scale * lam * W,  G_i = s_i (softmax(Z_i) - y_i)
    dJ/db = data_scale * sum_i G_i

For the full-batch objective ``data_scale = penalty_scale = 1/S``, ``S = sum_i s_i``;
a minibatch step uses ``data_scale = 1/S_batch`` and keeps the penalty at its
full-data scale ``1/S``. ``lam`` is ``alpha`` for three or more classes and
``2 * alpha`` for two: see :func:`penalty_strength`.

``X`` may be a dense array (float64 or float32), a SciPy sparse matrix, an
:class:`NpyRows` (a file read block by block) or a :class:`DaskRows` (chunks on a
dask cluster, summed by the workers). Large C-contiguous dense ``X`` is visited in
row blocks, each block's logits, loss, gradient and ``G_b^T X_b`` computed while
the block is in cache, so ``X`` is read from memory once per evaluation instead of
twice; the blocks are shared among threads (each BLAS call single-threaded), see
:meth:`SoftmaxObjective._blocked`. Large CSR ``X`` is cut into row shards of equal
non-zero counts, each shard's two sparse products run on its own thread (SciPy's
sparse kernels release the GIL, but run on one thread), see
:meth:`SoftmaxObjective._sparse_sharded`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp

from .. import _config
from .._losses import CrossEntropyLoss
from ._chunks import NpyRows
from ._dask import DaskRows
from ._threads import one_blas_thread

try:  # SciPy's CSR kernels on a range of rows without a copy (a stable internal API)
    from scipy.sparse import _sparsetools
except ImportError:  # pragma: no cover - then sparse X takes the one-thread path
    _sparsetools = None

__all__ = ["SoftmaxObjective", "penalty_strength"]

# Rows per block of the one-pass evaluation: a block of X (rows x d) and its logits
# should stay in the per-core L2 cache between the two products: 1 MiB of X per
# block (half the 2 MiB L2 of the development machine; 256 KiB to 4 MiB measured
# within noise of each other on MNIST-sized data), at least 64 rows (BLAS needs some
# height to run at speed).
_BLOCK_BYTES = 1 << 20
_MIN_BLOCK_ROWS = 64
# Below this many multiply-adds per product the plain two-product evaluation is used
# (one pass or two makes no difference when X fits in cache).
_BLOCKED_FROM = 1 << 24


def penalty_strength(alpha: float, n_classes: int) -> float:
    """The L2 factor ``lam`` such that the fit matches ``LogisticRegression(C=1/alpha)``.

    For K >= 3 classes scikit-learn penalises all K rows of the multinomial
    coefficients with ``1/(2C) ||W||^2``: ``lam = alpha``. For two classes it fits one
    vector ``v`` (the binomial model) with ``1/(2C) ||v||^2``. Our two-class model keeps
    two rows whose difference is ``v``; at the optimum ``w_0 = -w_1 = -v/2`` (the loss
    depends on ``w_1 - w_0`` only and the penalty is smallest there), so
    ``lam/2 (||w_0||^2 + ||w_1||^2) = lam/4 ||v||^2``, which equals ``alpha/2 ||v||^2``
    for ``lam = 2 alpha``.
    """
    return 2.0 * alpha if n_classes == 2 else float(alpha)


class SoftmaxObjective:
    """``J(theta)`` and its gradient for softmax regression (see the module docstring).

    Parameters
    ----------
    n_classes, n_features : int
        K and d.
    alpha : float
        L2 strength as documented by the estimator (``C = 1/alpha``).
    fit_intercept : bool
    label_smoothing : float
        Passed to the loss object.
    n_threads : int, optional
        Threads for the blocked evaluation (default: softmaxkit's thread count).
    """

    def __init__(self, n_classes: int, n_features: int, *, alpha: float, fit_intercept: bool,
                 label_smoothing: float = 0.0, n_threads: int | None = None) -> None:
        self.k, self.d = int(n_classes), int(n_features)
        self.fit_intercept = bool(fit_intercept)
        self.lam = penalty_strength(alpha, self.k)
        self.label_smoothing = float(label_smoothing)
        self.loss = CrossEntropyLoss(label_smoothing=label_smoothing, reduction="sum")
        self.n_threads = _config.get_num_threads() if n_threads is None else int(n_threads)
        self.size = self.k * self.d + (self.k if self.fit_intercept else 0)
        self._pool: ThreadPoolExecutor | None = None
        self._ones_buf = np.ones(0)

    # ------------------------------------------------------------------ layout

    def zeros(self) -> np.ndarray:
        """A parameter vector of zeros (the start point)."""
        return np.zeros(self.size)

    def pack(self, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        theta = np.empty(self.size)
        theta[: self.k * self.d] = np.ravel(W)
        if self.fit_intercept:
            theta[self.k * self.d:] = b
        return theta

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Views ``(W (K, d), b (K,) or None)`` of ``theta`` (no copy)."""
        kd = self.k * self.d
        W = theta[:kd].reshape(self.k, self.d)
        return W, (theta[kd:] if self.fit_intercept else None)

    # ------------------------------------------------------------------ evaluation

    def logits(self, theta: np.ndarray, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """``Z = X W^T + b`` as a C-contiguous (n, K) array of X's float dtype."""
        W, b = self.unpack(theta)
        if sp.issparse(X):
            Z = np.ascontiguousarray(X @ W.T.astype(X.dtype, copy=False))
        else:
            Wt = W.T if X.dtype == np.float64 else W.T.astype(X.dtype)
            Z = np.matmul(X, Wt, out=out)
        if b is not None:
            Z += b.astype(Z.dtype, copy=False)
        return Z

    def penalty(self, theta: np.ndarray) -> float:
        W, _ = self.unpack(theta)
        w = W.ravel()
        return 0.5 * self.lam * float(np.dot(w, w))

    def loss_gradient(self, theta: np.ndarray, X: Any, target: np.ndarray, sw: np.ndarray,
                      *, data_scale: float, penalty_scale: float,
                      truth: np.ndarray | None = None, grad_out: np.ndarray | None = None,
                      logits_out: np.ndarray | None = None) -> tuple[float, np.ndarray, float, int]:
        """``(J, dJ/dtheta, data_loss, n_correct)`` at ``theta``.

        ``target``: int64 (n,) class indices, or float (n, K) class probabilities in
        X's dtype; ``sw``: float64 (n,) weights (sample times class weight).
        ``data_loss`` is ``sum_i s_i CE_i`` (unscaled). ``n_correct`` counts the rows
        whose largest logit is at ``truth`` (int (n,)), -1 without ``truth``: the
        training accuracy comes free with the pass over X. ``grad_out`` (float64,
        theta's size) receives the gradient; ``logits_out`` is a scratch (n, K) buffer.
        """
        n = X.shape[0]
        g = np.empty(self.size) if grad_out is None else grad_out
        W, _ = self.unpack(theta)
        gW, gb = self.unpack(g)
        dense = not sp.issparse(X)
        if isinstance(X, NpyRows):
            data_loss, n_correct = self._out_of_core(theta, X, target, sw, truth, g)
        elif isinstance(X, DaskRows):  # the chunks' sums come from the cluster's workers
            gsum, data_loss, n_correct = X.partial_sums(self, theta, target, sw, truth)
            g[...] = gsum
        elif dense and n * self.d * self.k >= _BLOCKED_FROM and X.flags.c_contiguous:
            data_loss, n_correct = self._blocked(theta, X, target, sw, truth, gW, gb)
        elif (not dense and self.n_threads > 1 and _sparsetools is not None and X.format == "csr"
              and X.nnz * self.k >= _BLOCKED_FROM and n >= 2 * _MIN_BLOCK_ROWS):
            data_loss, n_correct = self._sparse_sharded(theta, X, target, sw, truth, gW, gb)
        else:
            Z = self.logits(theta, X, out=logits_out)
            n_correct = -1 if truth is None else int(np.count_nonzero(Z.argmax(axis=1) == truth))
            # the gradient overwrites the logits in place (the loss contract allows it)
            data_loss, G = self.loss.loss_gradient(Z, target, sample_weight=sw, grad_out=Z)
            if not dense:
                np.copyto(gW, (X.T @ G).T)
            elif G.dtype == np.float64:
                np.matmul(G.T, X, out=gW)
            else:
                np.copyto(gW, G.T @ X)
            if gb is not None:
                if G.dtype == np.float64:  # a BLAS dot: several times cheaper than G.sum(0)
                    np.dot(self._ones(n), G, out=gb)
                else:
                    np.copyto(gb, G.sum(axis=0, dtype=np.float64))
        # scale the data term, then add the penalty (W read before g is touched: they
        # are different buffers)
        g *= data_scale
        gW += (penalty_scale * self.lam) * W
        J = data_scale * float(data_loss) + penalty_scale * self.penalty(theta)
        return J, g, float(data_loss), n_correct

    # ------------------------------------------------------------------ one pass over X

    def _out_of_core(self, theta, source, target, sw, truth, g) -> tuple[float, int]:
        """The unscaled data term summed over the blocks of a file (read one at a time)."""
        g[...] = 0.0
        part = np.empty(self.size)
        total, correct = 0.0, 0
        for s, e, Xb in source.blocks():
            _, part, loss, ok = self.loss_gradient(
                theta, Xb, target[s:e], sw[s:e], data_scale=1.0, penalty_scale=0.0,
                truth=None if truth is None else truth[s:e], grad_out=part)
            g += part
            total += loss
            correct += ok
        return total, (correct if truth is not None else -1)

    def _blocked(self, theta, X, target, sw, truth, gW, gb) -> tuple[float, int]:
        """Data loss, ``G^T X`` into gW and ``sum G`` into gb, one pass over row blocks.

        Rows are cut into ``n_threads`` contiguous shards, each walked block by block
        on its own thread (NumPy's matmul and our kernel release the GIL); BLAS is
        limited to one thread meanwhile, so the shards do not oversubscribe. Each shard accumulates in float64.
        """
        n, d = X.shape
        rows = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // max(1, d * X.itemsize))
        W, b = self.unpack(theta)
        Wt = np.ascontiguousarray(W.T, dtype=X.dtype)
        bb = None if b is None else b.astype(X.dtype)
        shards = max(1, min(self.n_threads, n // rows))
        bounds = np.linspace(0, n, shards + 1).astype(int)

        def work(lo: int, hi: int):
            acc = np.zeros((self.k, d))
            accb = np.zeros(self.k)
            Zbuf = np.empty((rows, self.k), dtype=X.dtype)
            Gbuf = np.empty_like(Zbuf)
            total, correct = 0.0, 0
            for s in range(lo, hi, rows):
                e = min(s + rows, hi)
                Xb = X[s:e]
                Z = np.matmul(Xb, Wt, out=Zbuf[: e - s])
                if bb is not None:
                    Z += bb
                if truth is not None:
                    correct += int(np.count_nonzero(Z.argmax(axis=1) == truth[s:e]))
                loss, G = self.loss.loss_gradient(Z, target[s:e], sample_weight=sw[s:e],
                                                  grad_out=Gbuf[: e - s])
                total += loss
                acc += G.T @ Xb
                accb += G.sum(axis=0)
            return total, acc, accb, correct

        if shards == 1:
            parts = [work(0, n)]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.n_threads)
            with one_blas_thread():
                parts = list(self._pool.map(work, bounds[:-1], bounds[1:]))
        gW[...] = parts[0][1]
        for p in parts[1:]:
            gW += p[1]
        if gb is not None:
            gb[...] = sum(p[2] for p in parts)
        n_correct = -1 if truth is None else sum(p[3] for p in parts)
        return float(sum(p[0] for p in parts)), n_correct

    def _sparse_sharded(self, theta, X, target, sw, truth, gW, gb) -> tuple[float, int]:
        """As :meth:`_blocked` for a CSR ``X``: ``n_threads`` row shards of about equal
        non-zero counts, each computing its logits ``X_s W^T`` (SciPy's ``csr_matvecs``
        on the shard's slice of ``indptr``: no copy of X), loss and gradient ``G_s``,
        and ``X_s^T G_s`` (``csc_matvecs`` on the same arrays read as the CSC matrix
        ``X_s^T``) into a per-shard (d, K) float64 sum; the shards' sums are added."""
        n, d = X.shape
        k = self.k
        W, b = self.unpack(theta)
        dt = X.dtype
        Wt = np.ascontiguousarray(W.T, dtype=dt)
        bb = None if b is None else b.astype(dt)
        indptr, indices, data = X.indptr, X.indices, X.data
        shards = max(1, min(self.n_threads, n // _MIN_BLOCK_ROWS))
        # shard bounds at equal shares of the non-zeros (rows differ in length)
        cuts = np.searchsorted(indptr, np.linspace(0, X.nnz, shards + 1)[1:-1])
        bounds = np.unique(np.concatenate([[0], np.clip(cuts, 0, n), [n]]))

        def work(lo: int, hi: int):
            rows = hi - lo
            Z = np.zeros((rows, k), dtype=dt)
            _sparsetools.csr_matvecs(rows, d, k, indptr[lo:hi + 1], indices, data, Wt.ravel(), Z.ravel())
            if bb is not None:
                Z += bb
            correct = 0 if truth is None else int(np.count_nonzero(Z.argmax(axis=1) == truth[lo:hi]))
            loss, G = self.loss.loss_gradient(Z, target[lo:hi], sample_weight=sw[lo:hi], grad_out=Z)
            acc = np.zeros((d, k), dtype=dt)
            _sparsetools.csc_matvecs(d, rows, k, indptr[lo:hi + 1], indices, data,
                                     np.ascontiguousarray(G).ravel(), acc.ravel())
            return loss, acc, G.sum(axis=0, dtype=np.float64), correct

        if len(bounds) == 2:
            parts = [work(0, n)]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.n_threads)
            parts = list(self._pool.map(work, bounds[:-1], bounds[1:]))
        total = parts[0][1].astype(np.float64, copy=False)
        for p in parts[1:]:
            total += p[1]
        gW[...] = total.T
        if gb is not None:
            gb[...] = sum(p[2] for p in parts)
        n_correct = -1 if truth is None else sum(p[3] for p in parts)
        return float(sum(p[0] for p in parts)), n_correct

    def _ones(self, n: int) -> np.ndarray:
        if self._ones_buf.shape[0] < n:
            self._ones_buf = np.ones(n)
        return self._ones_buf[:n]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
