"""SoftmaxRegression: parameters, validation in fit, fitted attributes; the objective,
solvers, input preparation and persistence live in this package's other modules."""
from __future__ import annotations

import os
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from .._softmax import log_softmax, softmax
from .._typing import FloatArray
from . import _data, _persistence, _solvers
from ._dask import is_dask, map_method
from ._objective import SoftmaxObjective
from ._threads import blas_threads_for

__all__ = ["SoftmaxRegression"]

_DTYPES = {"float64": np.float64, "float32": np.float32}


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Softmax regression (multinomial logistic regression) on softmaxkit's kernels.

    ``p(y | x) = softmax(x W^T + b)``, fitted by minimising the weighted mean
    cross-entropy plus an L2 penalty (docs/regression.md has the objective), with
    L-BFGS (full batch), or minibatch SGD with momentum, or Adam.

    Parameters
    ----------
    alpha : float, default 1.0
        L2 penalty on the coefficients (not the intercept), scaled like
        scikit-learn's ``C = 1 / alpha`` for any number of classes: the default
        fits the same model as ``LogisticRegression()``. 0 means no penalty.
    fit_intercept : bool, default True
    standardize : bool, default False
        Centre and scale each feature (weighted statistics of the training data,
        stored as ``mean_``, ``scale_`` and applied by every prediction method).
        Sparse input is scaled only (``mean_`` is 0). With ``partial_fit``, the
        statistics come from the first call.
    solver : {"lbfgs", "sgd", "adam"}, default "lbfgs"
        Full-batch L-BFGS-B (SciPy), minibatch SGD with heavy-ball momentum, or
        minibatch Adam. Only "sgd" and "adam" offer ``partial_fit``.
    class_weight : dict, "balanced" or None, default None
        Weights per class, multiplied into the sample weights (with probability
        targets: the expected class weight ``sum_c y_c w_c``; dict keys are columns).
    label_smoothing : float in [0, 1), default 0.0
        Targets become ``(1 - eps) * y + eps / n_classes`` (PyTorch's convention).
    batch_size : int, default 64
        Minibatch size of "sgd" and "adam".
    learning_rate : float or "auto", default "auto"
        "auto" is 0.05 for "sgd" and 0.005 for "adam".
    momentum : float in [0, 1), default 0.9
        Momentum of "sgd".
    max_iter : int, default 100
        L-BFGS iterations, or epochs of "sgd" and "adam".
    tol : float, default 1e-4
        "lbfgs": largest gradient entry. "sgd"/"adam": the epoch (or validation)
        loss must improve by ``tol`` within ``n_iter_no_change`` epochs.
    early_stopping : bool, default False
        "sgd"/"adam": hold out ``validation_fraction`` (stratified), stop on its loss,
        keep the best coefficients seen.
    validation_fraction : float in (0, 1), default 0.1
    n_iter_no_change : int, default 5
    warm_start : bool, default False
        Start ``fit`` from the current coefficients (same classes and features).
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        The dtype X is fitted in. float32 halves the memory traffic of each pass
        over X; the parameters, the optimiser and the sums over blocks stay in
        float64 (accuracy in docs/regression.md).
    random_state : int, RandomState instance or None, default None
    verbose : int, default 0
        > 0 draws a progress bar on stderr with the loss and accuracy.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_classes, n_features)
        W, one row per class (also for two classes).
    intercept_ : ndarray of shape (n_classes,)
    mean_, scale_ : ndarray of shape (n_features,)
        The standardisation (only with ``standardize=True``).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
    n_iter_ : int
    history_ : dict of lists
        Per iteration/epoch: "loss" (the objective) and training "accuracy";
        "val_loss", "val_accuracy" with ``early_stopping``; "eval_loss",
        "eval_accuracy" with ``fit(..., eval_set=(X_val, y_val))``.
    loss_curve_ : list of float

    See Also
    --------
    sklearn.linear_model.LogisticRegression : The same model with ``C = 1/alpha``.

    Notes
    -----
    For two classes, :meth:`decision_function` returns ``o_1 - o_0`` and
    ``P(class 1) = sigmoid(o_1 - o_0)``. ``X`` in ``fit`` may be dense, sparse, a
    memory-mapped ``.npy`` (read block by block) or a dask array (fitted on the
    cluster; the prediction methods then return dask arrays): docs/regression.md.

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
        "dtype": [Options(type, {np.float64, np.float32}), StrOptions(set(_DTYPES))],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, alpha: float = 1.0, *, fit_intercept: bool = True, standardize: bool = False,
                 solver: str = "lbfgs", class_weight: dict[Any, float] | str | None = None,
                 label_smoothing: float = 0.0, batch_size: int = 64,
                 learning_rate: float | str = "auto", momentum: float = 0.9, max_iter: int = 100,
                 tol: float = 1e-4, early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 5, warm_start: bool = False, dtype: Any = np.float64,
                 random_state: int | np.random.RandomState | None = None, verbose: int = 0) -> None:
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
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------ fitting

    def _prepare(self, X, y, sample_weight, *, reset, classes=None, out_of_core=False):
        dtype = _DTYPES.get(self.dtype, self.dtype)
        X, target, sw, truth = _data.prepare(self, X, y, sample_weight, reset=reset, classes=classes,
                                             dtype=dtype, out_of_core=out_of_core)
        return X, target, sw, truth, SoftmaxObjective(
            self.classes_.size, X.shape[1], alpha=self.alpha, fit_intercept=self.fit_intercept,
            label_smoothing=self.label_smoothing)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: ArrayLike, sample_weight: ArrayLike | None = None,
            eval_set: tuple[Any, ArrayLike] | None = None) -> SoftmaxRegression:
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Class labels of any type, or class probabilities (rows summing to 1;
            ``classes_`` is then ``0 .. n_classes - 1``).
        sample_weight : array-like of shape (n_samples,), optional
        eval_set : (X_val, y_val), optional
            A held-out set (labels among ``classes_``) measured after every iteration
            or epoch: ``history_["eval_loss"]`` (mean log-loss, as
            ``sklearn.metrics.log_loss``) and ``history_["eval_accuracy"]``. It is
            only measured, never fitted: the coefficients are those without it.

        Returns
        -------
        self : SoftmaxRegression
        """
        warm = self.warm_start and hasattr(self, "coef_")
        old = (self.classes_, self.coef_, self.intercept_) if warm else None
        X, target, sw, truth, obj = self._prepare(X, y, sample_weight, reset=True,
                                                  out_of_core=self.solver == "lbfgs")
        k, d = obj.k, obj.d
        theta = obj.zeros()
        if old is not None and old[1].shape == (k, d) and np.array_equal(old[0], self.classes_):
            theta = obj.pack(old[1], old[2])
        self._set_standardization(X, sw)
        Xs = self._transform(X)
        ev = self._eval_rows(eval_set)
        self.history_ = {"loss": [], "accuracy": []}
        self._opt_state = None
        rows = X.shape[0] if self.solver == "lbfgs" else min(self.batch_size, X.shape[0])
        if hasattr(X, "default_block_rows"):  # rows in a file: the products are block-sized
            rows = min(rows, X.default_block_rows())
        try:
            with blas_threads_for(rows, d, k):
                if self.solver == "lbfgs":
                    theta = self._run_lbfgs(obj, theta, Xs, target, sw, truth, ev)
                else:
                    theta = self._run_minibatch(obj, theta, Xs, target, sw, truth, self.max_iter, True, ev)
        finally:
            obj.close()  # the blocked evaluation's thread pool
        self._store(obj, theta)
        return self

    def _eval_rows(self, eval_set):
        """``eval_set`` checked and transformed as prediction transforms X (sparse rows
        of a fit with a non-zero ``mean_`` are made dense to be centred)."""
        ev = _data.prepare_eval(self, eval_set, _DTYPES.get(self.dtype, self.dtype))
        if ev is None:
            return None
        Xv = ev[0].toarray() if sp.issparse(ev[0]) and np.any(getattr(self, "mean_", 0.0)) else ev[0]
        return self._transform(Xv), ev[1]

    def _run_lbfgs(self, obj, theta, X, target, sw, truth, ev=None):
        mon = _solvers.Monitor(self.history_, self.max_iter, "iter", self.verbose, obj=obj,
                               eval_set=ev)
        theta, self.n_iter_, unconverged = _solvers.lbfgs(
            obj, theta, X, target, sw, truth, max_iter=self.max_iter, tol=self.tol, on_step=mon.step)
        mon.finish(self.n_iter_)
        if unconverged is not None:
            warnings.warn(
                f"lbfgs did not converge in max_iter={self.max_iter} iterations (largest gradient "
                f"entry {unconverged:.2e} > tol={self.tol}); increase max_iter or standardise the features",
                ConvergenceWarning, stacklevel=4)  # _run_lbfgs < fit < _fit_context < caller
        return theta

    def _run_minibatch(self, obj, theta, X, target, sw, truth, epochs, stopping, ev=None):
        rs = self.random_state
        rng = rs if isinstance(rs, np.random.RandomState) else np.random.RandomState(rs)
        val = None
        if stopping and self.early_stopping:
            tr, va = _data.validation_split(truth, target.ndim == 1, obj.k, self.validation_fraction,
                                            rng, ordered=hasattr(X, "subset"))
            val = (_data.take_rows(X, va), target[va], sw[va], truth[va])
            X, target, sw, truth = _data.take_rows(X, tr), target[tr], sw[tr], truth[tr]
        mon = _solvers.Monitor(self.history_, epochs, "epoch", self.verbose, stopping=stopping,
                               tol=self.tol, patience=self.n_iter_no_change, obj=obj, val=val,
                               eval_set=ev)
        lr = _solvers.AUTO_LR[self.solver] if self.learning_rate == "auto" else float(self.learning_rate)
        theta, self._opt_state, epoch = _solvers.minibatch(
            obj, theta, X, target, sw, truth, solver=self.solver, lr=lr, momentum=self.momentum,
            batch_size=self.batch_size, epochs=epochs, rng=rng, state=self._opt_state,
            on_epoch=lambda e, loss, acc, th: mon.step(loss, acc, th, i=e))
        self.n_iter_ = epoch
        mon.finish(epoch)
        if stopping and not mon.done and epoch == epochs:
            warnings.warn(
                f"{self.solver} stopped at max_iter={self.max_iter} epochs before the loss "
                f"stopped improving (tol={self.tol}); increase max_iter",
                ConvergenceWarning, stacklevel=4)  # _run_minibatch < fit < _fit_context < caller
        return mon.best_theta if val is not None else theta

    def _check_stochastic_solver(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(
                f"partial_fit is only available for solver='sgd' or 'adam', not {self.solver!r} "
                "(a full-batch method)")
        return True

    @available_if(_check_stochastic_solver)
    def partial_fit(self, X: Any, y: ArrayLike, classes: ArrayLike | None = None,
                    sample_weight: ArrayLike | None = None,
                    eval_set: tuple[Any, ArrayLike] | None = None) -> SoftmaxRegression:
        """One epoch of minibatch "sgd" or "adam" over ``(X, y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        classes : array-like of shape (n_classes,), optional
            All the classes; required on the first call with label targets.
        sample_weight : array-like of shape (n_samples,), optional
        eval_set : (X_val, y_val), optional
            As in :meth:`fit`: measured after this epoch, one entry appended to
            ``history_["eval_loss"]`` / ``["eval_accuracy"]`` (pass it on every call
            to keep them aligned with ``history_["loss"]``).

        Returns
        -------
        self : SoftmaxRegression
        """
        first = not hasattr(self, "coef_")
        self._validate_params()
        y_is_soft = getattr(y, "ndim", np.ndim(y) if not isinstance(y, list) else 1) == 2
        if first and classes is None and not (y_is_soft and np.shape(y)[1] > 1):
            raise ValueError("classes must be passed on the first call to partial_fit")
        X, target, sw, truth, obj = self._prepare(X, y, sample_weight, reset=first,
                                                  classes=classes if first else None)
        if first:
            self._set_standardization(X, sw)
            theta = obj.zeros()
            self.history_ = {"loss": [], "accuracy": []}
            self._opt_state, self._n_partial = None, 0
        else:
            theta = obj.pack(self.coef_, self.intercept_)
        ev = self._eval_rows(eval_set)
        with blas_threads_for(min(self.batch_size, X.shape[0]), obj.d, obj.k):
            theta = self._run_minibatch(obj, theta, self._transform(X), target, sw, truth, 1, False, ev)
        self._n_partial = getattr(self, "_n_partial", 0) + 1
        self._store(obj, theta)
        self.n_iter_ = self._n_partial
        return self

    def _store(self, obj, theta):
        W, b = obj.unpack(theta)
        self.coef_ = np.array(W)
        self.intercept_ = np.zeros(obj.k) if b is None else np.array(b)
        self.loss_curve_ = self.history_["loss"]

    def _set_standardization(self, X, sw):
        for name in ("mean_", "scale_"):
            if hasattr(self, name):
                delattr(self, name)
        if self.standardize:
            self.mean_, self.scale_ = _data.standardization(X, sw)

    def _transform(self, X):
        if getattr(self, "mean_", None) is not None and self.standardize:
            return _data.transform(X, self.mean_, self.scale_)
        return X

    # ------------------------------------------------------------------ prediction

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False, accept_sparse=("csr", "csc"))
        W, b = self.coef_, self.intercept_
        if sp.issparse(X) and getattr(self, "mean_", None) is not None and self.standardize:
            # (X - m) / s @ W^T + b = X @ (W / s)^T + (b - (W / s) m): X stays sparse
            W = W / self.scale_
            b = b - W @ self.mean_
        elif not sp.issparse(X):
            X = self._transform(X)
        return np.ascontiguousarray(X @ W.T) + b

    def decision_function(self, X: Any) -> FloatArray:
        """Logits ``x W^T + b``; for two classes the difference ``o_1 - o_0`` (n_samples,)."""
        if is_dask(X):
            return map_method(self, X, "decision_function")
        Z = self._logits(X)
        return Z[:, 1] - Z[:, 0] if self.classes_.size == 2 else Z

    def predict_proba(self, X: Any) -> FloatArray:
        """Class probabilities ``softmax(x W^T + b)``, (n_samples, n_classes)."""
        if is_dask(X):
            return map_method(self, X, "predict_proba")
        return softmax(self._logits(X), axis=-1)

    def predict_log_proba(self, X: Any) -> FloatArray:
        """Log class probabilities ``log_softmax(x W^T + b)`` (never log 0)."""
        if is_dask(X):
            return map_method(self, X, "predict_log_proba")
        return log_softmax(self._logits(X), axis=-1)

    def predict(self, X: Any) -> NDArray[Any]:
        """The most probable class, ``classes_[argmax(x W^T + b)]``."""
        if is_dask(X):
            return map_method(self, X, "predict")
        Z = self._logits(X)
        return self.classes_[np.argmax(Z, axis=1)]

    def score(self, X: Any, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Mean accuracy; probability rows count as their most probable class."""
        from sklearn.metrics import accuracy_score

        y_arr = np.asarray(y) if not hasattr(y, "ndim") else y
        if y_arr.ndim == 2 and y_arr.shape[1] > 1:
            y = self.classes_[np.argmax(y_arr, axis=1)]
        return float(accuracy_score(y, self.predict(X), sample_weight=sample_weight))

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str], *, metadata: dict[str, Any] | None = None) -> None:
        """Write the fitted model to ``path`` (exactly; atomically) as ``.npz``, no pickle.

        Raises ValueError for classes that would need pickle or metadata that is not
        JSON-serialisable. See docs/regression.md for the fields.
        """
        check_is_fitted(self)
        _persistence.save_model(self, path, metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SoftmaxRegression:
        """Read a model written by :meth:`save` (``metadata_`` holds its metadata).

        Raises FileNotFoundError for a missing file and
        ``softmaxkit.linear_model.ModelFileError`` (a ValueError) naming the file and
        the field for anything else wrong with it.
        """
        return _persistence.load_model(cls, path)
