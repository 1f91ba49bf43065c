"""Softmax regression (multinomial logistic regression) as a scikit-learn estimator.

The model is ``o = x W^T + b``, ``p = softmax(o)``, prediction ``argmax p``. It is
trained on the weighted cross-entropy plus an L2 penalty on ``W``:

    J(W, b) = ( sum_i s_i CE(x_i W^T + b, y_i) + alpha/2 ||W||^2 ) / S,

where ``s_i`` is the sample weight times the class weight and ``S = sum_i s_i``.
Without the constant ``1/S`` this is exactly scikit-learn's ``LogisticRegression``
objective with ``C = 1/alpha`` (the intercept is not penalised), so ``alpha=1`` (the
default) fits the same model as ``LogisticRegression()``. Dividing by ``S`` changes
nothing about the minimiser; it makes ``tol`` and learning rates independent of the
data size, as scikit-learn does.

Every loss and gradient evaluation goes through softmaxkit's fused cross-entropy
kernel (``cross_entropy_and_grad``, ``reduction="sum"``); this module only adds the
matrix products, the penalty and the optimisers.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
import zipfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._losses import cross_entropy_and_grad
from ._softmax import log_softmax, softmax

__all__ = ["SoftmaxRegression"]

_FORMAT = "softmaxkit.SoftmaxRegression"
_FORMAT_VERSION = 1

# Default step sizes for learning_rate="auto", chosen on standardised digits/MNIST
# (see docs/regression.md): SGD with momentum 0.9 and Adam, batch size 64.
_AUTO_LR = {"sgd": 0.05, "adam": 0.005}


def _ce_sum_and_grad(logits, target, sample_weight, label_smoothing):
    """Weighted sum of cross-entropies and its gradient w.r.t. the logits.

    ``target`` holds class indices (1-D int) or class probabilities (2-D float).
    Returns ``(sum_i s_i CE_i, s_i * (p_i - y_i))`` with PyTorch's label smoothing
    ``y <- (1 - eps) y + eps / K``; all of it from softmaxkit's fused kernel.
    """
    return cross_entropy_and_grad(
        logits, target, sample_weight=sample_weight, label_smoothing=label_smoothing,
        reduction="sum",
    )


# Products smaller than this (multiply-adds) run BLAS on one thread while fitting.
_SMALL_PRODUCT = 1 << 23


def _blas_threads_for(n_rows: int, n_features: int, n_classes: int):
    """One BLAS thread while fitting when the per-step products are small.

    Every solver step is a couple of (rows x features) @ (features x classes)
    products. When they are small, OpenBLAS's threads cost more than they bring, and
    on a busy machine far more: on the 2-core development machine under load, the
    digits fit (1347 x 64 x 10) took 1.1 s with OpenBLAS's default threads and 27 ms
    with one (LogisticRegression: 330 ms and 13 ms). scikit-learn's KMeans also
    limits BLAS to one thread around its small per-chunk products. Large products
    (full-batch MNIST: 60000 x 784 x 10) keep BLAS's default. threadpoolctl comes
    with scikit-learn.
    """
    if n_rows * n_features * n_classes >= _SMALL_PRODUCT:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class _Progress:
    """A small progress bar on stderr: redrawn in place on a terminal, else a line
    every tenth of the run (so logs stay short)."""

    def __init__(self, total: int, what: str, stream=None):
        self.total = max(int(total), 1)
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.next_line = 0
        self.last_line = None
        self.width = len(str(self.total))

    def update(self, i: int, loss: float, acc: float, extra: str = "", final: bool = False):
        frac = min(i / self.total, 1.0)
        bar = "#" * int(round(20 * frac)) + "." * (20 - int(round(20 * frac)))
        msg = (f"{self.what} {i:>{self.width}}/{self.total} [{bar}] loss {loss:.4f} "
               f"acc {acc:.4f}{extra} {time.perf_counter() - self.t0:.1f}s"
               + (" done" if final else ""))
        if self.tty:
            self.stream.write("\r" + msg + ("\n" if final else ""))
            self.stream.flush()
        elif (final and i != self.last_line) or (not final and i >= self.next_line):
            self.stream.write(msg + "\n")
            self.stream.flush()
            self.next_line = i + max(self.total // 10, 1)
            self.last_line = i


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Softmax regression (multinomial logistic regression) on softmaxkit's kernels.

    ``p(y | x) = softmax(x W^T + b)``, fitted by minimising the weighted mean
    cross-entropy plus an L2 penalty (see Notes), with L-BFGS (full batch), or
    minibatch SGD with momentum, or Adam.

    Parameters
    ----------
    alpha : float, default 1.0
        L2 penalty strength on the coefficients (not the intercept), scaled like
        scikit-learn's ``C = 1 / alpha``: the objective is
        ``sum_i s_i CE_i + alpha / 2 * ||W||^2`` (divided by ``sum_i s_i``), so the
        default matches ``LogisticRegression()``. 0 means no penalty.
    fit_intercept : bool, default True
        Fit the bias ``b``.
    standardize : bool, default False
        Centre and scale each feature to unit variance before the linear layer
        (statistics from the training data, weighted by ``sample_weight``; stored as
        ``mean_`` and ``scale_`` and applied by every prediction method, so raw
        features can be passed later). ``coef_`` then acts on standardised features.
        With ``partial_fit``, the statistics come from the first call.
    solver : {"lbfgs", "sgd", "adam"}, default "lbfgs"
        "lbfgs": full-batch L-BFGS-B from ``scipy.optimize`` on the exact objective
        and gradient. "sgd": minibatch SGD with (heavy-ball) momentum. "adam":
        minibatch Adam. Only "sgd" and "adam" offer ``partial_fit``.
    class_weight : dict, "balanced" or None, default None
        Weights per class, multiplied into the sample weights. "balanced" uses
        ``n_samples / (n_classes * count(class))``. With probability targets a
        sample's weight is multiplied by ``sum_c y_c * weight_c`` (its expected
        class weight); dict keys are then column indices.
    label_smoothing : float in [0, 1), default 0.0
        Targets become ``(1 - eps) * y + eps / n_classes`` (PyTorch's convention).
    batch_size : int, default 64
        Minibatch size for "sgd" and "adam" (clipped to the number of samples).
    learning_rate : float or "auto", default "auto"
        Step size for "sgd" and "adam"; "auto" is 0.05 for "sgd" and 0.005 for
        "adam".
    momentum : float in [0, 1), default 0.9
        Momentum of "sgd" (the first-moment decay of "adam" is fixed at 0.9).
    max_iter : int, default 100
        Maximum L-BFGS iterations, or epochs (passes over the data) for "sgd" and
        "adam".
    tol : float, default 1e-4
        "lbfgs": stop when the largest gradient component is below ``tol``.
        "sgd"/"adam": stop when the epoch loss (or the validation loss with
        ``early_stopping``) has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive epochs.
    early_stopping : bool, default False
        "sgd"/"adam" only: hold out ``validation_fraction`` of the training data
        (stratified), stop on its loss, and keep the best coefficients seen.
    validation_fraction : float in (0, 1), default 0.1
        Share held out for ``early_stopping``.
    n_iter_no_change : int, default 5
        Patience of the stopping rule of "sgd" and "adam".
    warm_start : bool, default False
        Start ``fit`` from the current coefficients (same classes and features).
    random_state : int, RandomState instance or None, default None
        Shuffling of minibatches and the validation split.
    verbose : int, default 0
        > 0 draws a progress bar on stderr with the loss and accuracy.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (any type). For probability targets: ``0 .. n_classes - 1``.
    coef_ : ndarray of shape (n_classes, n_features)
        W, one row per class (also for two classes).
    intercept_ : ndarray of shape (n_classes,)
        b (zeros when ``fit_intercept=False``).
    mean_, scale_ : ndarray of shape (n_features,)
        The standardisation (only when ``standardize=True``).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features,)
        Feature names, when X had string column names.
    n_iter_ : int
        L-BFGS iterations or epochs run.
    history_ : dict of lists
        Per iteration/epoch: "loss" (the objective J) and "accuracy" on the
        training data; "val_loss" and "val_accuracy" with ``early_stopping``.
    loss_curve_ : list of float
        ``history_["loss"]`` (the name scikit-learn's MLP uses).

    See Also
    --------
    sklearn.linear_model.LogisticRegression : The same model with ``C = 1/alpha``.

    Notes
    -----
    The gradient of the cross-entropy with respect to the logits is ``p - y``
    (softmaxkit's fused kernel returns it with the loss); the chain rule gives
    ``dJ/dW = ((P - Y)^T diag(s) X + alpha W) / S`` and ``dJ/db = (P - Y)^T s / S``.

    For two classes, :meth:`decision_function` returns the logit difference
    ``o_1 - o_0``, because softmax over two classes is the sigmoid of that
    difference: ``P(class 1) = sigmoid(o_1 - o_0)``.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = smk.SoftmaxRegression(standardize=True).fit(X, y)
    >>> clf.predict(X[:3]).tolist()
    [0, 0, 0]
    >>> round(clf.score(X, y), 2)
    0.97
    """

    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "standardize": ["boolean"],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        alpha=1.0,
        *,
        fit_intercept=True,
        standardize=False,
        solver="lbfgs",
        class_weight=None,
        label_smoothing=0.0,
        batch_size=64,
        learning_rate="auto",
        momentum=0.9,
        max_iter=100,
        tol=1e-4,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.solver = solver
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ validation

    def _validate_xy(self, X, y, sample_weight, *, reset, classes=None):
        """Check X, y, sample_weight; return X, target, weights, and set classes_.

        ``target`` is an int array of class indices, or a float (n, K) matrix of
        class probabilities. ``weights`` already include ``class_weight``.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        y_arr = y if hasattr(y, "shape") and hasattr(y, "ndim") else np.asarray(y, dtype=object)
        soft = getattr(y_arr, "ndim", 1) == 2 and y_arr.shape[1] > 1
        X, y = validate_data(self, X, y, dtype=np.float64, reset=reset,
                             multi_output=soft, y_numeric=soft)
        if soft:
            Y = np.asarray(y, dtype=np.float64)
            k = Y.shape[1]
            if not np.isfinite(Y).all() or (Y < 0).any() or (Y > 1).any():
                raise ValueError(
                    "y as a 2-D array must hold class probabilities in [0, 1] (one column "
                    "per class); got values outside [0, 1] or not finite"
                )
            sums = Y.sum(axis=1)
            if not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
                bad = int(np.argmax(np.abs(sums - 1.0)))
                raise ValueError(
                    f"y as a 2-D array must hold class probabilities summing to 1 per row; "
                    f"row {bad} sums to {sums[bad]:.6g}"
                )
            new_classes = np.arange(k) if classes is None else np.asarray(classes)
            if new_classes.shape != (k,):
                raise ValueError(
                    f"classes has {new_classes.size} entries but y has {k} probability columns"
                )
            self._set_classes(new_classes, reset)
            target = Y
        else:
            check_classification_targets(y)
            if classes is not None:
                new_classes = np.unique(np.asarray(classes))
            elif not reset and hasattr(self, "classes_"):
                new_classes = self.classes_
            else:
                new_classes = np.unique(y)
            unknown = np.setdiff1d(np.unique(y), new_classes)
            if unknown.size:
                raise ValueError(
                    f"y contains labels not in classes {new_classes.tolist()}: {unknown.tolist()[:10]}"
                )
            if new_classes.size < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contain only one class: {new_classes.tolist()}"
                )
            self._set_classes(new_classes, reset)
            target = np.searchsorted(self.classes_, y).astype(np.intp)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        sw = sw * self._class_weights(target, soft, y)
        if not sw.sum() > 0:
            raise ValueError("sample_weight times class_weight sums to 0: nothing to fit")
        return X, target, sw

    def _set_classes(self, new_classes, reset):
        if not reset and hasattr(self, "classes_"):
            if len(new_classes) != len(self.classes_) or not np.array_equal(
                np.asarray(new_classes, dtype=self.classes_.dtype), self.classes_
            ):
                raise ValueError(
                    f"classes {list(new_classes)} differ from those of the earlier fit "
                    f"{self.classes_.tolist()}"
                )
            return
        self.classes_ = np.asarray(new_classes)

    def _class_weights(self, target, soft, y):
        """Per-sample multipliers from class_weight."""
        if self.class_weight is None:
            return 1.0
        k = self.classes_.size
        if soft:
            if self.class_weight == "balanced":
                mass = target.sum(axis=0)
                cw = np.where(mass > 0, target.shape[0] / (k * np.maximum(mass, 1e-300)), 1.0)
            else:
                cw = np.ones(k)
                for key, w in self.class_weight.items():
                    if not isinstance(key, Integral) or not 0 <= key < k:
                        raise ValueError(
                            f"class_weight keys must be column indices 0..{k - 1} for "
                            f"probability targets, got {key!r}"
                        )
                    cw[key] = w
            return target @ cw
        cw = compute_class_weight(self.class_weight, classes=self.classes_, y=self.classes_[target])
        return cw[target]

    # ------------------------------------------------------------------ objective

    def _unpack(self, theta, k, d):
        W = theta[: k * d].reshape(k, d)
        b = theta[k * d:] if self.fit_intercept else np.zeros(k)
        return W, b

    def _objective(self, theta, X, target, sw, S, k, d):
        """(J, dJ/dtheta, logits) for the flattened parameters ``theta = [W.ravel(), b]``."""
        W, b = self._unpack(theta, k, d)
        Z = X @ W.T
        Z += b
        loss, G = _ce_sum_and_grad(Z, target, sw, self.label_smoothing)
        J = (float(loss) + 0.5 * self.alpha * float(np.dot(W.ravel(), W.ravel()))) / S
        gW = (G.T @ X + self.alpha * W) / S
        if self.fit_intercept:
            grad = np.concatenate([gW.ravel(), G.sum(axis=0) / S])
        else:
            grad = gW.ravel()
        return J, grad, Z

    @staticmethod
    def _accuracy(Z, target):
        pred = np.argmax(Z, axis=1)
        truth = target if target.ndim == 1 else np.argmax(target, axis=1)
        return float(np.mean(pred == truth))

    # ------------------------------------------------------------------ fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (converted to float64).
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Class labels of any type, or class probabilities (soft labels, rows
            summing to 1; ``classes_`` is then ``0 .. n_classes - 1``).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; integer weights act like repeated rows.

        Returns
        -------
        self : SoftmaxRegression
        """
        warm = self.warm_start and hasattr(self, "coef_")
        old = (self.classes_, self.coef_, self.intercept_) if warm else None
        X, target, sw = self._validate_xy(X, y, sample_weight, reset=True)
        k, d = self.classes_.size, X.shape[1]
        if old is not None and (old[1].shape != (k, d) or not np.array_equal(old[0], self.classes_)):
            old = None
        self._fit_standardization(X, sw, reset=True)
        Xs = self._transform(X)
        theta = np.zeros(k * d + (k if self.fit_intercept else 0))
        if old is not None:
            theta[: k * d] = old[1].ravel()
            if self.fit_intercept:
                theta[k * d:] = old[2]
        self.history_ = {"loss": [], "accuracy": []}
        self._opt_state = None
        rows = X.shape[0] if self.solver == "lbfgs" else min(self.batch_size, X.shape[0])
        with _blas_threads_for(rows, d, k):
            if self.solver == "lbfgs":
                theta = self._fit_lbfgs(theta, Xs, target, sw, k, d)
            else:
                theta = self._fit_minibatch(theta, Xs, target, sw, k, d, epochs=self.max_iter,
                                            stopping=True)
        self._store(theta, k, d)
        return self

    def _fit_lbfgs(self, theta, X, target, sw, k, d):
        S = float(sw.sum())
        cache = {}

        def fun(t):
            J, g, Z = self._objective(t, X, target, sw, S, k, d)
            cache["x"], cache["J"], cache["Z"] = t.copy(), J, Z
            return J, g

        progress = _Progress(self.max_iter, "iter") if self.verbose else None

        def callback(xk):
            if "x" not in cache or not np.array_equal(cache["x"], xk):
                fun(xk)
            acc = self._accuracy(cache["Z"], target)
            self.history_["loss"].append(cache["J"])
            self.history_["accuracy"].append(acc)
            if progress:
                progress.update(len(self.history_["loss"]), cache["J"], acc)

        # The options follow scikit-learn's LogisticRegression(solver="lbfgs").
        res = optimize.minimize(
            fun, theta, jac=True, method="L-BFGS-B", callback=callback,
            options={"maxiter": self.max_iter, "maxls": 50, "gtol": self.tol,
                     "ftol": 64 * np.finfo(float).eps},
        )
        self.n_iter_ = int(res.nit)
        if not self.history_["loss"]:  # converged at the start point
            callback(res.x)
        if progress:
            progress.update(self.n_iter_, self.history_["loss"][-1],
                            self.history_["accuracy"][-1], final=True)
        if res.status == 1:
            warnings.warn(
                f"lbfgs did not converge in max_iter={self.max_iter} iterations "
                f"(largest gradient entry {np.max(np.abs(res.jac)):.2e} > tol={self.tol}); "
                "increase max_iter or standardise the features",
                ConvergenceWarning, stacklevel=4,  # _fit_* < fit < _fit_context < caller
            )
        return res.x

    def _fit_minibatch(self, theta, X, target, sw, k, d, *, epochs, stopping):
        rng = np.random.RandomState(self.random_state) if not isinstance(
            self.random_state, np.random.RandomState) else self.random_state
        n = X.shape[0]
        val = None
        if stopping and self.early_stopping:
            from sklearn.model_selection import train_test_split

            idx = np.arange(n)
            strat = None
            if target.ndim == 1:
                counts = np.bincount(target, minlength=k)
                n_val = math.ceil(self.validation_fraction * n)
                if counts[counts > 0].min() >= 2 and n_val >= np.count_nonzero(counts):
                    strat = target
            tr, va = train_test_split(idx, test_size=self.validation_fraction,
                                      random_state=rng, stratify=strat)
            if tr.size == 0 or va.size == 0:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no training or no "
                    f"validation samples out of {n}"
                )
            val = (X[va], target[va], sw[va])
            X, target, sw = X[tr], target[tr], sw[tr]
            n = X.shape[0]
            self.history_["val_loss"] = []
            self.history_["val_accuracy"] = []
        S = float(sw.sum())
        bs = min(self.batch_size, n)
        lr = _AUTO_LR[self.solver] if self.learning_rate == "auto" else float(self.learning_rate)
        state = self._opt_state
        if state is None:
            state = {"t": 0, "m": np.zeros_like(theta), "v": np.zeros_like(theta)}
        progress = _Progress(epochs, "epoch") if self.verbose else None
        best_loss, best_theta, no_improve = np.inf, theta.copy(), 0
        epoch = 0
        extra = ""
        converged = False
        for epoch in range(1, epochs + 1):
            order = rng.permutation(n)
            total, correct = 0.0, 0
            for start in range(0, n, bs):
                batch = order[start:start + bs]
                wb = sw[batch]
                Sb = float(wb.sum())
                if Sb <= 0:
                    continue
                W, b = self._unpack(theta, k, d)
                Xb = X[batch]
                Z = Xb @ W.T
                Z += b
                loss, G = _ce_sum_and_grad(Z, target[batch], wb, self.label_smoothing)
                total += float(loss)
                tb = target[batch]
                correct += int(np.sum(np.argmax(Z, axis=1) == (tb if tb.ndim == 1 else np.argmax(tb, axis=1))))
                # minibatch estimate of dJ/dtheta: data term averaged over the batch,
                # penalty at its full-data scale
                gW = G.T @ Xb / Sb + (self.alpha / S) * W
                g = np.concatenate([gW.ravel(), G.sum(axis=0) / Sb]) if self.fit_intercept else gW.ravel()
                state["t"] += 1
                if self.solver == "sgd":
                    # heavy-ball momentum, PyTorch's form: v <- mu v + g; theta <- theta - lr v
                    state["m"] = self.momentum * state["m"] + g
                    theta = theta - lr * state["m"]
                else:
                    b1, b2, eps = 0.9, 0.999, 1e-8
                    state["m"] = b1 * state["m"] + (1 - b1) * g
                    state["v"] = b2 * state["v"] + (1 - b2) * g * g
                    mhat = state["m"] / (1 - b1 ** state["t"])
                    vhat = state["v"] / (1 - b2 ** state["t"])
                    theta = theta - lr * mhat / (np.sqrt(vhat) + eps)
            W, _ = self._unpack(theta, k, d)
            epoch_loss = (total + 0.5 * self.alpha * float(np.sum(W * W))) / S
            if not math.isfinite(epoch_loss):
                raise FloatingPointError(
                    f"{self.solver} diverged (loss {epoch_loss}) at epoch {epoch}; "
                    f"lower learning_rate (now {lr}) or standardise the features"
                )
            self.history_["loss"].append(epoch_loss)
            self.history_["accuracy"].append(correct / n)
            extra = ""
            monitored = epoch_loss
            if val is not None:
                Jv, _, Zv = self._objective(theta, val[0], val[1], val[2], float(val[2].sum()), k, d)
                acc_v = self._accuracy(Zv, val[1])
                self.history_["val_loss"].append(Jv)
                self.history_["val_accuracy"].append(acc_v)
                extra = f" val_loss {Jv:.4f} val_acc {acc_v:.4f}"
                monitored = Jv
            if progress:
                progress.update(epoch, epoch_loss, correct / n, extra)
            if stopping:
                if monitored < best_loss - self.tol:
                    no_improve = 0
                else:
                    no_improve += 1
                if monitored < best_loss:
                    best_loss, best_theta = monitored, theta.copy()
                if no_improve >= self.n_iter_no_change:
                    converged = True
                    break
        self._opt_state = state
        self.n_iter_ = epoch
        if progress:
            progress.update(epoch, self.history_["loss"][-1], self.history_["accuracy"][-1],
                            extra, final=True)
        if val is not None:
            theta = best_theta
        if stopping and not converged and epochs > 0 and epoch == epochs:
            warnings.warn(
                f"{self.solver} stopped at max_iter={self.max_iter} epochs before the loss "
                f"stopped improving (tol={self.tol}); increase max_iter",
                ConvergenceWarning, stacklevel=4,  # _fit_* < fit < _fit_context < caller
            )
        return theta

    def _check_stochastic_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for solver='sgd' or 'adam', not {self.solver!r} "
                "(a full-batch method)"
            )
        return True

    @available_if(_check_stochastic_solver)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of minibatch "sgd" or "adam" over ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Labels, or class probabilities.
        classes : array-like of shape (n_classes,), optional
            All the classes; required on the first call with label targets (a later
            batch may miss some classes). Not needed for probability targets.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self : SoftmaxRegression

        Raises
        ------
        AttributeError
            With ``solver="lbfgs"`` (a full-batch method): the method is then not
            available at all, as in scikit-learn's MLP.
        ValueError
            Without ``classes`` on the first call with label targets.
        """
        first = not hasattr(self, "coef_")
        self._validate_params()
        y_is_soft = getattr(y, "ndim", np.ndim(y) if not isinstance(y, list) else 1) == 2
        if first and classes is None and not (y_is_soft and np.shape(y)[1] > 1):
            raise ValueError("classes must be passed on the first call to partial_fit")
        X, target, sw = self._validate_xy(X, y, sample_weight, reset=first,
                                          classes=classes if first else None)
        k, d = self.classes_.size, X.shape[1]
        if first:
            self._fit_standardization(X, sw, reset=True)
            theta = np.zeros(k * d + (k if self.fit_intercept else 0))
            self.history_ = {"loss": [], "accuracy": []}
            self._opt_state = None
            self._n_partial = 0
        else:
            theta = self.coef_.ravel()
            if self.fit_intercept:
                theta = np.concatenate([theta, self.intercept_])
        with _blas_threads_for(min(self.batch_size, X.shape[0]), d, k):
            theta = self._fit_minibatch(theta, self._transform(X), target, sw, k, d, epochs=1,
                                        stopping=False)
        self._n_partial = getattr(self, "_n_partial", 0) + 1
        self._store(theta, k, d)
        self.n_iter_ = self._n_partial
        return self

    def _store(self, theta, k, d):
        W, b = self._unpack(theta, k, d)
        self.coef_ = np.array(W)
        self.intercept_ = np.array(b, dtype=np.float64)
        self.loss_curve_ = self.history_["loss"]

    def _fit_standardization(self, X, sw, reset):
        if not self.standardize:
            for name in ("mean_", "scale_"):
                if hasattr(self, name):
                    delattr(self, name)
            return
        mean = np.average(X, axis=0, weights=sw)
        var = np.average((X - mean) ** 2, axis=0, weights=sw)
        scale = np.sqrt(var)
        # constant features: scale 1, as scikit-learn's StandardScaler does
        tiny = scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))
        scale[tiny] = 1.0
        self.mean_, self.scale_ = mean, scale

    def _transform(self, X):
        if getattr(self, "mean_", None) is not None and self.standardize:
            return (X - self.mean_) / self.scale_
        return X

    # ------------------------------------------------------------------ prediction

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Z = self._transform(X) @ self.coef_.T
        Z += self.intercept_
        return Z

    def decision_function(self, X):
        """Logits ``o = x W^T + b`` (after the standardisation, if any).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
            For two classes, the difference ``o_1 - o_0`` (positive means class
            ``classes_[1]``; ``sigmoid`` of it is ``P(classes_[1])``).
        """
        Z = self._logits(X)
        if self.classes_.size == 2:
            return Z[:, 1] - Z[:, 0]
        return Z

    def predict_proba(self, X):
        """Class probabilities ``softmax(x W^T + b)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        return softmax(self._logits(X), axis=-1)

    def predict_log_proba(self, X):
        """Log class probabilities ``log_softmax(x W^T + b)`` (never log 0).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return log_softmax(self._logits(X), axis=-1)

    def predict(self, X):
        """The most probable class, ``classes_[argmax(x W^T + b)]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        Z = self._logits(X)
        return self.classes_[np.argmax(Z, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Labels, or class probabilities (then the most probable class of each
            row is the truth).
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        from sklearn.metrics import accuracy_score

        y_arr = np.asarray(y) if not hasattr(y, "ndim") else y
        if y_arr.ndim == 2 and y_arr.shape[1] > 1:
            y = self.classes_[np.argmax(y_arr, axis=1)]
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    # ------------------------------------------------------------------ persistence

    def save(self, path, *, metadata=None):
        """Write the fitted model to ``path`` as an ``.npz`` archive (no pickle).

        The archive holds a format tag and version, the classes, ``coef_``,
        ``intercept_``, the standardisation (``mean_``, ``scale_``) when used, the
        hyperparameters (JSON), the training history and ``metadata``.

        Parameters
        ----------
        path : str or path-like
            The file to write (exactly this name; no suffix is added).
        metadata : dict, optional
            JSON-serialisable extra information (e.g. the data set name, feature
            names); returned by :meth:`load` as ``metadata_``.

        Raises
        ------
        ValueError
            When the classes cannot be stored without pickle (mixed Python objects),
            or ``metadata`` is not JSON-serialisable.
        """
        check_is_fitted(self)
        classes = np.asarray(self.classes_)
        if classes.dtype.kind in "biufU":
            kind, stored = "array", classes
        elif classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
            kind, stored = "object-str", classes.astype(str)
        else:
            raise ValueError(
                f"cannot save classes of dtype {classes.dtype} without pickle; use numbers or strings"
            )
        params = self.get_params()
        if isinstance(params["class_weight"], dict):
            params["class_weight"] = {
                "__pairs__": [[_plain(k), float(v)] for k, v in params["class_weight"].items()]
            }
        if not (params["random_state"] is None or isinstance(params["random_state"], Integral)):
            params["random_state"] = None
        try:
            meta_json = json.dumps(metadata or {})
            params_json = json.dumps(params, default=_py)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata and parameters must be JSON-serialisable: {exc}") from None
        arrays = {
            "format": np.array(_FORMAT),
            "format_version": np.array(_FORMAT_VERSION),
            "classes": stored,
            "classes_kind": np.array(kind),
            "coef": self.coef_,
            "intercept": self.intercept_,
            "n_iter": np.array(self.n_iter_),
            "params_json": np.array(params_json),
            "metadata_json": np.array(meta_json),
            "history_json": np.array(json.dumps({k: [float(v) for v in vals]
                                                 for k, vals in getattr(self, "history_", {}).items()})),
        }
        if getattr(self, "mean_", None) is not None:
            arrays["mean"], arrays["scale"] = self.mean_, self.scale_
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names_in"] = np.asarray(self.feature_names_in_, dtype=str)
        with open(os.fspath(path), "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        SoftmaxRegression
            Fitted, with the saved hyperparameters, and ``metadata_`` (a dict).

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            The file is truncated or corrupt, is not a softmaxkit model, or was
            written by a newer format version; the message names the file.
        """
        p = Path(os.fspath(path))
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
        try:
            archive = np.load(p, allow_pickle=False)
            if not hasattr(archive, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            with archive:
                data = {key: archive[key] for key in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
            raise ValueError(f"{p}: not a readable softmaxkit model file ({exc})") from None
        if "format" not in data or str(data["format"]) != _FORMAT:
            raise ValueError(
                f"{p}: not a softmaxkit model file (no '{_FORMAT}' format tag; "
                f"found arrays {sorted(data)[:8]})"
            )
        try:
            version = int(data["format_version"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{p}: corrupt model file: bad or missing format_version") from None
        if version > _FORMAT_VERSION:
            raise ValueError(
                f"{p}: model format version {version} is newer than this softmaxkit reads "
                f"({_FORMAT_VERSION}); upgrade softmaxkit"
            )
        for key in ("classes", "classes_kind", "coef", "intercept", "params_json", "n_iter"):
            if key not in data:
                raise ValueError(f"{p}: corrupt model file: missing {key!r}")
        try:
            params = json.loads(str(data["params_json"]))
            metadata = json.loads(str(data.get("metadata_json", "{}")))
            history = json.loads(str(data.get("history_json", "{}")))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: corrupt model file: bad JSON ({exc})") from None
        coef = np.asarray(data["coef"], dtype=np.float64)
        intercept = np.asarray(data["intercept"], dtype=np.float64)
        classes = data["classes"]
        if str(data["classes_kind"]) == "object-str":
            classes = classes.astype(object)
        k = classes.shape[0] if classes.ndim == 1 else -1
        if coef.ndim != 2 or k < 2 or coef.shape[0] != k or intercept.shape != (k,):
            raise ValueError(
                f"{p}: corrupt model file: inconsistent shapes (classes {classes.shape}, "
                f"coef {coef.shape}, intercept {intercept.shape})"
            )
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise ValueError(f"{p}: corrupt model file: non-finite coefficients")
        valid = cls().get_params()
        kwargs = {key: val for key, val in params.items() if key in valid}
        cw = kwargs.get("class_weight")
        if isinstance(cw, dict) and "__pairs__" in cw:
            kwargs["class_weight"] = {key: val for key, val in cw["__pairs__"]}
        model = cls(**kwargs)
        d = coef.shape[1]
        if "mean" in data:
            mean, scale = np.asarray(data["mean"], float), np.asarray(data.get("scale"), float)
            if mean.shape != (d,) or scale.shape != (d,) or not (scale > 0).all():
                raise ValueError(f"{p}: corrupt model file: bad standardisation arrays")
            model.mean_, model.scale_ = mean, scale
        elif model.standardize:
            raise ValueError(f"{p}: corrupt model file: standardize=True but no mean/scale")
        model.classes_ = classes
        model.coef_ = coef
        model.intercept_ = intercept
        model.n_features_in_ = d
        if "feature_names_in" in data:
            model.feature_names_in_ = data["feature_names_in"].astype(object)
        model.n_iter_ = int(data["n_iter"])
        model.history_ = {key: list(vals) for key, vals in history.items()}
        model.loss_curve_ = model.history_.get("loss", [])
        model.metadata_ = metadata
        return model


def _plain(v):
    """A NumPy scalar as a Python scalar; anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v


def _py(v):
    """NumPy scalars as Python scalars (the ``default`` hook of json.dumps)."""
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON-serialisable: {v!r}")
