"""Input preparation for SoftmaxRegression: X (dense or sparse) in the compute dtype,
targets as class indices or probability rows, weights, and the standardisation."""
from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_array, validate_data

from .._validation import check_prob_rows
from ._chunks import NpyRows, as_row_source
from ._dask import DaskRows, is_dask, prepare_dask

__all__ = ["prepare", "prepare_eval", "standardization", "transform", "take_rows"]


def prepare(est: Any, X: Any, y: Any, sample_weight: Any, *, reset: bool, classes: Any = None,
            dtype: Any = np.float64, out_of_core: bool = False
            ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Check X, y, sample_weight; set ``est.classes_``; return ``(X, target, sw, truth)``.

    X: C-contiguous array or CSR matrix of ``dtype``, or with ``out_of_core`` and a
    memory-mapped .npy (or NpyRows) an :class:`NpyRows` read block by block (never
    loaded whole; its values are checked as the blocks are read). target: int64 (n,) class
    indices, or (n, K) class probabilities in ``dtype``. sw: float64 (n,) sample
    weights times class weights. truth: int (n,) the class each row counts as for
    the accuracy (the most probable one for probability rows).
    """
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is None")
    y_arr = y if hasattr(y, "shape") and hasattr(y, "ndim") else np.asarray(y, dtype=object)
    soft = getattr(y_arr, "ndim", 1) == 2 and y_arr.shape[1] > 1
    # NpyRows stays in its file for every solver; a memory map only for "lbfgs"
    src = as_row_source(X) if out_of_core or isinstance(X, NpyRows) else None
    if is_dask(X) or is_dask(y):
        if not out_of_core:
            raise ValueError(f"a dask array is fitted with solver='lbfgs' (full batch on the "
                             f"cluster), not solver={est.solver!r}")
        X, y = prepare_dask(est, X, y, reset, dtype)
    elif src is not None:
        X, y = _prepare_rows(est, src, y, soft, reset, dtype)
    else:
        X, y = validate_data(est, X, y, dtype=dtype, reset=reset, order="C",
                             accept_sparse="csr", multi_output=soft, y_numeric=soft)
    if sp.issparse(X):
        X.sort_indices()
    if soft:
        # the one check of probability rows (tolerance sqrt(eps) of y's own dtype)
        check_prob_rows(np.asarray(y), "y (a 2-D array: one column of class probabilities "
                        "per class)", "pass class labels as a 1-D array")
        Y = np.asarray(y, dtype=np.float64)
        k = Y.shape[1]
        new_classes = np.arange(k) if classes is None else np.asarray(classes)
        if new_classes.shape != (k,):
            raise ValueError(f"classes has {new_classes.size} entries but y has {k} probability columns")
        _set_classes(est, new_classes, reset)
        target, truth = np.ascontiguousarray(Y, dtype=dtype), np.argmax(Y, axis=1)
    else:
        check_classification_targets(y)
        if classes is not None:
            new_classes = np.unique(np.asarray(classes))
        elif not reset and hasattr(est, "classes_"):
            new_classes = est.classes_
        else:
            new_classes = np.unique(y)
        unknown = np.setdiff1d(np.unique(y), new_classes)
        if unknown.size:
            raise ValueError(
                f"y contains labels not in classes {new_classes.tolist()}: {unknown.tolist()[:10]}"
            )
        if new_classes.size < 2:
            raise ValueError(
                f"{type(est).__name__} needs samples of at least 2 classes in the data, "
                f"but the data contain only one class: {new_classes.tolist()}"
            )
        _set_classes(est, new_classes, reset)
        target = np.searchsorted(est.classes_, y).astype(np.int64)
        truth = target
        Y = None
    sw = _check_sample_weight(sample_weight, np.empty((X.shape[0], 0)), dtype=np.float64,
                              ensure_non_negative=True)
    sw = sw * _class_weights(est, target if Y is None else Y)
    if not sw.sum() > 0:
        raise ValueError("sample_weight times class_weight sums to 0: nothing to fit")
    return X, target, np.ascontiguousarray(sw), truth


def prepare_eval(est: Any, eval_set: Any, dtype: Any) -> tuple[Any, np.ndarray] | None:
    """``fit``'s ``eval_set=(X_val, y_val)`` as ``(X, class indices)``, X checked like
    the training X (same features; an :class:`NpyRows` or a memory-mapped ``.npy``
    stays in its file) and the labels among ``est.classes_``; None for None."""
    if eval_set is None:
        return None
    if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
        raise ValueError(f"eval_set must be a pair (X_val, y_val), got {type(eval_set).__name__}")
    Xv, yv = eval_set
    src = as_row_source(Xv)
    if src is not None:
        check_n_features(est, src.shape[1], reset=False)
        Xv = src.prepared(dtype)
    else:
        Xv = validate_data(est, Xv, dtype=dtype, reset=False, order="C", accept_sparse="csr")
    yv = np.asarray(yv)
    if yv.ndim != 1:
        raise ValueError(f"eval_set: y_val must be 1-D class labels, got shape {yv.shape}")
    if yv.shape[0] != Xv.shape[0] or yv.shape[0] == 0:
        raise ValueError(f"eval_set: X_val has {Xv.shape[0]} rows but y_val has {yv.shape[0]} labels"
                         if yv.shape[0] != Xv.shape[0] else "eval_set: no rows")
    unknown = np.setdiff1d(np.unique(yv), est.classes_)
    if unknown.size:
        raise ValueError(f"eval_set: y_val contains labels not in classes {est.classes_.tolist()}: "
                         f"{unknown.tolist()[:10]}")
    return Xv, np.searchsorted(est.classes_, yv).astype(np.int64)


def take_rows(X: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of X (in memory, or an :class:`NpyRows` subset: ``index`` must
    then be increasing)."""
    return X.subset(index) if isinstance(X, NpyRows) else X[index]


def check_n_features(est: Any, d: int, reset: bool) -> None:
    """validate_data's feature-count bookkeeping, for X that validate_data cannot see
    (rows in a file, a dask array): record ``d`` on reset, else check it."""
    if reset:
        est.n_features_in_ = d
        if hasattr(est, "feature_names_in_"):
            del est.feature_names_in_
    elif d != est.n_features_in_:
        raise ValueError(f"X has {d} features, but {type(est).__name__} is expecting "
                         f"{est.n_features_in_} features as input")


def _prepare_rows(est, src: NpyRows, y, soft, reset, dtype):
    """The checks validate_data makes, for rows that stay in their file."""
    n, d = src.shape
    check_n_features(est, d, reset)
    y = check_array(y, ensure_2d=False, dtype=np.float64 if soft else None, ensure_all_finite=soft)
    if y.ndim == 2 and not soft:
        y = y.ravel()
    if y.shape[0] != n:
        raise ValueError(f"X ({src.path}) has {n} rows but y has {y.shape[0]}")
    if n < 1 or d < 1:
        raise ValueError(f"{src.path}: no data (shape {src.shape})")
    return src.prepared(dtype), y


def _set_classes(est, new_classes, reset):
    if not reset and hasattr(est, "classes_"):
        if len(new_classes) != len(est.classes_) or not np.array_equal(
            np.asarray(new_classes, dtype=est.classes_.dtype), est.classes_
        ):
            raise ValueError(
                f"classes {list(new_classes)} differ from those of the earlier fit "
                f"{est.classes_.tolist()}"
            )
        return
    est.classes_ = np.asarray(new_classes)


def _class_weights(est, target):
    """Per-sample multipliers from class_weight (target: indices or probability rows)."""
    if est.class_weight is None:
        return 1.0
    k = est.classes_.size
    if target.ndim == 2:
        if est.class_weight == "balanced":
            mass = target.sum(axis=0)
            cw = np.where(mass > 0, target.shape[0] / (k * np.maximum(mass, 1e-300)), 1.0)
        else:
            cw = np.ones(k)
            for key, w in est.class_weight.items():
                if not isinstance(key, Integral) or not 0 <= key < k:
                    raise ValueError(
                        f"class_weight keys must be column indices 0..{k - 1} for "
                        f"probability targets, got {key!r}"
                    )
                cw[key] = w
        return target @ cw
    cw = compute_class_weight(est.class_weight, classes=est.classes_, y=est.classes_[target])
    return cw[target]


def standardization(X: Any, sw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted per-feature ``(mean, scale)``; for sparse X the mean is 0 (scaling
    only, as scikit-learn's ``StandardScaler(with_mean=False)``: centring would make
    the matrix dense) and the scale is still the standard deviation."""
    if isinstance(X, DaskRows):
        mean, var = X.standardization(sw)
        mean_for_var = mean
    elif isinstance(X, NpyRows):  # two passes over the file: the mean, then the variance
        # (as the in-memory np.average does: the same sums, so the same statistics)
        w = sw / sw.sum()
        mean = sum(w[s:e] @ Xb for s, e, Xb in X.prepared(np.float64).blocks())
        var = sum(w[s:e] @ (Xb - mean) ** 2 for s, e, Xb in X.prepared(np.float64).blocks())
        mean_for_var = mean
    elif sp.issparse(X):
        w = sw / sw.sum()
        m1 = np.asarray(X.T @ w, dtype=np.float64)
        m2 = np.asarray(X.multiply(X).T @ w, dtype=np.float64)
        mean_for_var = m1
        var = np.maximum(m2 - m1 * m1, 0.0)
        mean = np.zeros(X.shape[1])
    else:
        mean = np.average(X, axis=0, weights=sw).astype(np.float64)
        var = np.average((X - mean) ** 2, axis=0, weights=sw)
        mean_for_var = mean
    scale = np.sqrt(var)
    # constant features: scale 1, as scikit-learn's StandardScaler does
    tiny = scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean_for_var))
    scale[tiny] = 1.0
    return mean, scale


def transform(X: Any, mean: np.ndarray, scale: np.ndarray) -> Any:
    """``(X - mean) / scale`` in X's dtype (sparse: ``X / scale``, mean must be 0)."""
    if isinstance(X, NpyRows):
        return X.prepared(X.compute_dtype, mean, scale)
    if isinstance(X, DaskRows):
        return X.prepared(mean, scale)
    if sp.issparse(X):
        return sp.csr_matrix(X.multiply((1.0 / scale).astype(X.dtype)))
    return ((X - mean) / scale).astype(X.dtype, copy=False)


def validation_split(truth: np.ndarray, labels: bool, k: int, fraction: float,
                     rng: np.random.RandomState, *, ordered: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` for early stopping, stratified when every class
    has two rows and the validation share can hold one of each (``ordered``: each
    sorted, for rows read from a file)."""
    import math

    from sklearn.model_selection import train_test_split

    n = truth.shape[0]
    strat = None
    if labels:
        counts = np.bincount(truth, minlength=k)
        if counts[counts > 0].min() >= 2 and math.ceil(fraction * n) >= np.count_nonzero(counts):
            strat = truth
    tr, va = train_test_split(np.arange(n), test_size=fraction, random_state=rng, stratify=strat)
    if ordered:  # rows read from a file: in file order
        tr, va = np.sort(tr), np.sort(va)
    if tr.size == 0 or va.size == 0:
        raise ValueError(
            f"validation_fraction={fraction} leaves no training or no validation samples out of {n}"
        )
    return tr, va
