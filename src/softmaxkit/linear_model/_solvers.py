"""The solvers: full-batch L-BFGS (SciPy) and minibatch SGD / Adam.

Both call :meth:`SoftmaxObjective.loss_gradient` and nothing else for the loss, so
the objective is written once. They report each iteration / epoch to ``on_step``
(the estimator's history and progress bar) and return the parameters.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
from scipy import optimize

from .._progress import Progress
from .._softmax import log_softmax
from ._chunks import NpyRows
from ._objective import SoftmaxObjective

__all__ = ["lbfgs", "minibatch", "Monitor", "evaluate", "AUTO_LR"]

# Default step sizes for learning_rate="auto", chosen on standardised digits/MNIST
# (see docs/regression.md): SGD with momentum 0.9 and Adam, batch size 64.
AUTO_LR = {"sgd": 0.05, "adam": 0.005}

# Rows per chunk of an out-of-core epoch (NpyRows without block_rows): about 16 MiB
# of X. An epoch holds a few chunk-sized buffers (the read, the shuffled copy).
_CHUNK_BYTES = 16 << 20


def _chunk_rows(X: NpyRows) -> int:
    return max(1, _CHUNK_BYTES // max(1, X.shape[1] * max(X.compute_dtype.itemsize, X.dtype.itemsize)))


def lbfgs(obj: SoftmaxObjective, theta: np.ndarray, X: Any, target: np.ndarray,
          sw: np.ndarray, truth: np.ndarray | None, *, max_iter: int, tol: float,
          on_step: Callable[[float, float, np.ndarray], Any]) -> tuple[np.ndarray, int, float | None]:
    """Minimise the full-batch objective from ``theta``.

    Returns ``(theta, iterations, largest gradient entry if max_iter was hit else
    None)``. The options follow scikit-learn's ``LogisticRegression(solver="lbfgs")``:
    ``gtol=tol``, ``maxls=50``, ``ftol=64 eps``.
    """
    S = float(sw.sum())
    n = X.shape[0]
    last: dict[str, Any] = {}
    grad = np.empty(obj.size)

    def fun(t):
        J, g, _, correct = obj.loss_gradient(t, X, target, sw, data_scale=1 / S, penalty_scale=1 / S,
                                             truth=truth, grad_out=grad)
        last["x"], last["J"], last["acc"] = t.copy(), J, correct / n
        return J, g.copy()  # SciPy keeps the gradient it is given

    def callback(xk):
        if "x" not in last or not np.array_equal(last["x"], xk):
            fun(xk)
        on_step(last["J"], last["acc"], xk)

    res = optimize.minimize(
        fun, theta, jac=True, method="L-BFGS-B", callback=callback,
        options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps},
    )
    if res.nit == 0:  # converged at the start point: one history entry all the same
        callback(res.x)
    unconverged = float(np.max(np.abs(res.jac))) if res.status == 1 else None
    return res.x, int(res.nit), unconverged


def minibatch(obj: SoftmaxObjective, theta: np.ndarray, X: Any, target: np.ndarray,
              sw: np.ndarray, truth: np.ndarray, *, solver: str, lr: float, momentum: float,
              batch_size: int, epochs: int, rng: np.random.RandomState, state: dict | None,
              on_epoch: Callable[[int, float, float, np.ndarray], bool]) -> tuple[np.ndarray, dict, int]:
    """Epochs of minibatch SGD (heavy-ball momentum) or Adam.

    Each step's gradient is the objective with the data term averaged over the batch
    and the penalty at its full-data scale. ``on_epoch(epoch, loss, accuracy, theta)``
    returns True to stop. Returns ``(theta, optimiser state, epochs run)``. X is
    shuffled once per epoch into a buffer, so each batch is a contiguous view and a
    step allocates nothing but what BLAS and the loss return.

    An :class:`NpyRows` X stays in its file: each epoch visits its chunks (the
    source's ``block_rows``, else about 16 MiB, at least one batch) in a random
    order, reads one chunk at a time and shuffles the rows within it (the usual
    out-of-core shuffle: a batch mixes rows of one chunk).
    """
    n = X.shape[0]
    S = float(sw.sum())
    bs = min(batch_size, n)
    theta = np.array(theta, dtype=np.float64)
    if state is None:
        state = {"t": 0, "m": np.zeros_like(theta), "v": np.zeros_like(theta)}
    g = np.empty_like(theta)
    tmp = np.empty_like(theta)
    out_of_core = isinstance(X, NpyRows)
    Z = np.empty((bs, obj.k), dtype=X.compute_dtype if out_of_core else X.dtype)
    dense = not sp.issparse(X)
    chunk = max(bs, X.block_rows or _chunk_rows(X)) if out_of_core else n
    Xp = np.empty((min(chunk, n), X.shape[1]), dtype=Z.dtype) if dense else None
    reader = X.reader(min(chunk, n)) if out_of_core else None
    b1, b2, eps = 0.9, 0.999, 1e-8
    epoch = 0

    def pieces():
        """(rows in batch order, their indices): the whole shuffled X, or the chunks."""
        if not out_of_core:
            order = rng.permutation(n)
            if dense:
                np.take(X, order, axis=0, out=Xp)
                yield Xp, order
            else:
                yield X[order], order
            return
        for c in rng.permutation(-(-n // chunk)).tolist():
            s, e = c * chunk, min(c * chunk + chunk, n)
            local = rng.permutation(e - s)
            np.take(reader.read(s, e), local, axis=0, out=Xp[: e - s])
            yield Xp[: e - s], s + local

    try:
        for epoch in range(1, epochs + 1):
            total, correct = 0.0, 0
            for Xq, order in pieces():
                theta, loss, ok = _steps(obj, theta, Xq, order, target, sw, truth, S, bs, g, tmp,
                                         Z if dense else None, state, solver, lr, momentum,
                                         (b1, b2, eps))
                total += loss
                correct += ok
            epoch_loss = (total + obj.penalty(theta)) / S
            if not math.isfinite(epoch_loss):
                raise FloatingPointError(
                    f"{solver} diverged (loss {epoch_loss}) at epoch {epoch}; "
                    f"lower learning_rate (now {lr}) or standardise the features"
                )
            if on_epoch(epoch, epoch_loss, correct / n, theta):
                break
    finally:
        if reader is not None:
            reader.close()
    return theta, state, epoch


def _steps(obj, theta, Xp, order, target, sw, truth, S, bs, g, tmp, Z, state, solver, lr,
           momentum, adam):
    """The steps over the batches of ``Xp`` (rows ``order`` of the data, in order);
    returns ``(theta, sum of the batches' data losses, correct predictions)``."""
    b1, b2, eps = adam
    m, v = state["m"], state["v"]
    n = Xp.shape[0]
    starts = np.arange(0, n, bs)
    tp, swp, yp = target[order], sw[order], truth[order]
    batch_sums = np.add.reduceat(swp, starts)
    total, correct = 0.0, 0
    for start, Sb in zip(starts.tolist(), batch_sums.tolist()):
        if Sb <= 0:
            continue
        stop = start + bs
        _, _, loss, ok = obj.loss_gradient(
            theta, Xp[start:stop], tp[start:stop], swp[start:stop], data_scale=1 / Sb,
            penalty_scale=1 / S, truth=yp[start:stop], grad_out=g,
            logits_out=Z[: min(bs, n - start)] if Z is not None else None)
        total += loss
        correct += ok
        state["t"] += 1
        if solver == "sgd":
            # heavy-ball momentum, PyTorch's form: v <- mu v + g; theta <- theta - lr v
            m *= momentum
            m += g
            np.multiply(m, lr, out=tmp)
        else:
            t = state["t"]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            # theta -= lr * mhat / (sqrt(vhat) + eps), mhat = m / (1 - b1^t), ...
            np.divide(v, 1 - b2 ** t, out=tmp)
            np.sqrt(tmp, out=tmp)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= lr / (1 - b1 ** t)
        theta -= tmp
    return theta, total, correct


def evaluate(obj: SoftmaxObjective, theta: np.ndarray, X: Any, target: np.ndarray
             ) -> tuple[float, float]:
    """``(mean log-loss, accuracy)`` of the model ``theta`` on rows ``X`` with class
    indices ``target``: ``sklearn.metrics.log_loss`` and ``accuracy_score`` of its
    predictions (no penalty, no label smoothing, unweighted). X may be an
    :class:`NpyRows` (read block by block)."""
    n = X.shape[0]
    blocks = X.blocks() if isinstance(X, NpyRows) else [(0, n, X)]
    total, correct = 0.0, 0
    for s, e, Xb in blocks:
        Z = obj.logits(theta, Xb)
        t = target[s:e]
        correct += int(np.count_nonzero(Z.argmax(axis=1) == t))
        lp = log_softmax(Z, axis=-1)
        total -= float(np.sum(lp[np.arange(e - s), t], dtype=np.float64))
    return total / n, correct / n


class Monitor:
    """The record of a fit, one call per iteration or epoch: the history lists, the
    progress bar, and for the minibatch solvers the stopping rule (no improvement
    by ``tol`` of the epoch loss, or of the validation loss ``val = (X, target, sw,
    truth)``, for ``patience`` epochs; the best parameters are kept). With
    ``eval_set = (X, target)`` (class indices) each step also records that set's
    mean log-loss and accuracy (:func:`evaluate`) as "eval_loss" / "eval_accuracy";
    it only reads the parameters."""

    def __init__(self, history: dict, total: int, what: str, verbose: int, *,
                 stopping: bool = False, tol: float = 0.0, patience: int = 1,
                 obj: SoftmaxObjective | None = None, val: tuple | None = None,
                 eval_set: tuple | None = None) -> None:
        self.history = history
        self.progress = Progress(total, what) if verbose else None
        self.stopping, self.tol, self.patience = stopping, tol, patience
        self.obj, self.val, self.eval_set = obj, val, eval_set
        self.best_loss, self.best_theta, self.stale, self.done = np.inf, None, 0, False
        self.extra = ""
        if val is not None:
            history["val_loss"], history["val_accuracy"] = [], []
        if eval_set is not None:  # (partial_fit appends to the lists of earlier calls)
            history.setdefault("eval_loss", [])
            history.setdefault("eval_accuracy", [])

    def step(self, loss: float, acc: float, theta: np.ndarray | None = None,
             i: int | None = None) -> bool:
        """Record one iteration/epoch; True when the stopping rule says stop."""
        h = self.history
        self.extra = ""
        h["loss"].append(loss)
        h["accuracy"].append(acc)
        monitored = loss
        if self.val is not None and self.obj is not None:
            Xv, tv, swv, yv = self.val
            Sv = float(swv.sum())
            monitored, _, _, ok = self.obj.loss_gradient(theta, Xv, tv, swv, data_scale=1 / Sv,
                                                         penalty_scale=1 / Sv, truth=yv)
            h["val_loss"].append(monitored)
            h["val_accuracy"].append(ok / Xv.shape[0])
            self.extra = f" val_loss {monitored:.4f} val_acc {ok / Xv.shape[0]:.4f}"
        if self.eval_set is not None and self.obj is not None:
            e_loss, e_acc = evaluate(self.obj, theta, *self.eval_set)
            h["eval_loss"].append(e_loss)
            h["eval_accuracy"].append(e_acc)
            self.extra += f" eval_loss {e_loss:.4f} eval_acc {e_acc:.4f}"
        if self.progress:
            self.progress.update(len(h["loss"]) if i is None else i, loss, acc, self.extra)
        if not self.stopping:
            return False
        self.stale = 0 if monitored < self.best_loss - self.tol else self.stale + 1
        if monitored < self.best_loss:
            self.best_loss, self.best_theta = monitored, theta.copy()
        self.done = self.stale >= self.patience
        return self.done

    def finish(self, i: int) -> None:
        if self.progress:
            h = self.history
            self.progress.update(i, h["loss"][-1], h["accuracy"][-1], self.extra, final=True)
