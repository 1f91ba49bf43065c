"""Is softmax telling the truth? Calibration metrics and temperature scaling.

A classifier is *calibrated* when, among the samples it gives confidence ``c``,
a share ``c`` is classified correctly. This module measures that (expected
calibration error, classwise ECE, the reliability curve) and fixes it after the
fact (:class:`TemperatureScaling`: one temperature, or vector scaling, fitted on
held-out logits by minimising the negative log-likelihood). See docs/calibration.md.

Binning (written once here, used by every function):

* ``strategy="uniform"``: edges ``e_i = i / n_bins`` for ``i = 0..n_bins``.
* ``strategy="quantile"``: edges are the quantiles ``np.quantile(conf, i / n_bins)``
  (NumPy's default linear interpolation), ``e_0`` set to 0 and ``e_n`` to 1, and
  repeated edges dropped (so there can be fewer than ``n_bins`` bins; each bin
  then holds about the same number of samples).
* A confidence ``c`` falls in bin ``i`` when ``e_i <= c < e_{i+1}``; the last bin
  is closed, ``e_{n-1} <= c <= e_n``, so ``c = 1`` is in the last bin. (This is
  scikit-learn's ``calibration_curve`` rule. torchmetrics' ``CalibrationError``
  uses the same half-open bins but puts ``c = 1.0`` exactly in an extra bin of its
  own; the two agree whenever no confidence is exactly 1.)
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._losses import cross_entropy, cross_entropy_and_grad
from ._softmax import log_softmax, softmax
from ._validation import (
    as_float_array,
    check_bool,
    check_choice,
    check_count,
    check_prob_rows,
    check_real,
    hard_target,
)

__all__ = [
    "expected_calibration_error",
    "classwise_calibration_error",
    "reliability_curve",
    "ReliabilityCurve",
    "TemperatureScaling",
    "calibration_report",
    "plot_reliability_diagram",
]

_NORMS = ("l1", "l2", "max")
_STRATEGIES = ("uniform", "quantile")


# ------------------------------------------------------------------ validation


def _probs_and_labels(probs_or_logits: Any, y: Any, from_logits: Any,
                      name: str = "probs_or_logits") -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (n, K) float64, labels (n,) int64), checked."""
    from_logits = check_bool(from_logits, "from_logits")
    arr, _ = as_float_array(probs_or_logits, name)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape (n_samples, n_classes) with n_classes >= 2, got shape "
            f"{arr.shape}; for one probability of the positive class per sample pass "
            "np.column_stack([1 - p, p])"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (no samples)")
    if from_logits:
        bad = np.isnan(arr) | (arr == np.inf)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(f"{name}[{i}, {j}] = {arr[i, j]!r}: logits must not be NaN or +inf")
        empty = np.all(arr == -np.inf, axis=1)
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise ValueError(f"{name} row {i} is all -inf: no class has any probability")
        probs = softmax(np.asarray(arr, dtype=np.float64), axis=-1)
    else:
        check_prob_rows(arr, name)  # in the caller's precision: float32 rows sum to 1 +- 3.5e-4
        probs = np.asarray(arr, dtype=np.float64)
    labels = np.asarray(y)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class indices, got dtype {labels.dtype}")
    labels = hard_target(labels, probs.shape[1], probs.shape[:1], None,
                         f"one label per row of {name}")
    return probs, labels


def _plain(v: Any) -> Any:
    """A NumPy scalar as the Python scalar (for messages)."""
    return v.item() if isinstance(v, np.generic) else v


# ------------------------------------------------------------------ binning


def _bin_edges(conf: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return np.unique(edges)


def _bin_stats(conf: np.ndarray, correct: np.ndarray, edges: np.ndarray):
    """Per-bin (count, sum of confidences, sum of correct) for the documented bins."""
    n = edges.size - 1
    # searchsorted on the interior edges, side="right": e_i <= c < e_{i+1}, and
    # c >= e_{n-1} (c = 1 included) lands in the last bin, n - 1.
    idx = np.searchsorted(edges[1:-1], conf, side="right")
    count = np.bincount(idx, minlength=n).astype(np.float64)
    conf_sum = np.bincount(idx, weights=conf, minlength=n)
    acc_sum = np.bincount(idx, weights=correct.astype(np.float64), minlength=n)
    return count, conf_sum, acc_sum


def _ece_from_bins(count, conf_sum, acc_sum, norm: str) -> float:
    filled = count > 0
    gap = np.abs(acc_sum[filled] / count[filled] - conf_sum[filled] / count[filled])
    weight = count[filled] / count.sum()
    if norm == "l1":
        return float(np.sum(weight * gap))
    if norm == "l2":
        return float(np.sqrt(np.sum(weight * gap * gap)))
    return float(np.max(gap))


def _top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.argmax(probs, axis=1)
    return probs[np.arange(probs.shape[0]), pred], pred == labels


# ------------------------------------------------------------------ public metrics


def expected_calibration_error(
    probs_or_logits: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    n_bins: int = 15,
    norm: str = "l1",
    strategy: str = "uniform",
    from_logits: bool = False,
) -> float:
    r"""Expected calibration error of the top-label confidence.

    Each sample's confidence is its largest probability,
    :math:`c_j = \max_k p_{jk}`, and it is correct when that class is the label.
    The confidences are grouped into bins :math:`B_i` (see the module docstring
    for the exact edges); with the mean confidence :math:`\mathrm{conf}(B_i)`
    and accuracy :math:`\mathrm{acc}(B_i)` of each non-empty bin and
    :math:`w_i = |B_i| / n`:

    .. math::

        \mathrm{ECE}_{l1} = \sum_i w_i\,|\mathrm{acc}(B_i) - \mathrm{conf}(B_i)|,\quad
        \mathrm{ECE}_{l2} = \Big(\sum_i w_i\,(\mathrm{acc}(B_i) - \mathrm{conf}(B_i))^2\Big)^{1/2},

    and ``norm="max"`` is the maximum calibration error
    :math:`\max_i |\mathrm{acc}(B_i) - \mathrm{conf}(B_i)|` over non-empty bins.
    These are torchmetrics' ``CalibrationError(task="multiclass", norm=...)``.

    Parameters
    ----------
    probs_or_logits : array_like of shape (n_samples, n_classes)
        Class probabilities (rows in [0, 1] summing to 1), or logits with
        ``from_logits=True`` (then softmax is applied first).
    y : array_like of int, shape (n_samples,)
        True class indices in ``[0, n_classes)``.
    n_bins : int, default 15
    norm : {"l1", "l2", "max"}, default "l1"
    strategy : {"uniform", "quantile"}, default "uniform"
        Equal-width bins on [0, 1], or bins holding about equally many samples.
    from_logits : bool, default False

    Returns
    -------
    float
        In [0, 1]; 0 for a perfectly calibrated model (on these bins).

    References
    ----------
    Naeini, Cooper, Hauskrecht (2015), "Obtaining well calibrated probabilities
    using Bayesian binning", AAAI. Guo, Pleiss, Sun, Weinberger (2017), "On
    calibration of modern neural networks", ICML.

    Examples
    --------
    Four samples, all predicted with confidence 0.9, three of them right: one bin,
    accuracy 0.75 against confidence 0.9.

    >>> import softmaxkit as smk
    >>> p = [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]]
    >>> round(smk.expected_calibration_error(p, [0, 0, 1, 1]), 12)
    0.15
    """
    n_bins = check_count(n_bins, "n_bins")
    norm = check_choice(norm, "norm", _NORMS)
    strategy = check_choice(strategy, "strategy", _STRATEGIES)
    probs, labels = _probs_and_labels(probs_or_logits, y, from_logits)
    conf, correct = _top_label(probs, labels)
    edges = _bin_edges(conf, n_bins, strategy)
    count, conf_sum, acc_sum = _bin_stats(conf, correct, edges)
    return _ece_from_bins(count, conf_sum, acc_sum, norm)


def classwise_calibration_error(
    probs_or_logits: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    n_bins: int = 15,
    norm: str = "l1",
    strategy: str = "uniform",
    from_logits: bool = False,
) -> float:
    r"""Classwise ECE: the calibration error of every class's probability, averaged.

    For each class :math:`k`, the probabilities :math:`p_{jk}` are binned (as in
    :func:`expected_calibration_error`) and compared with the frequency of
    :math:`y_j = k` in each bin; the result is the mean over classes:

    .. math::

        \text{classwise-ECE} = \frac{1}{K} \sum_k \sum_i \frac{|B_{ik}|}{n}
            \left| \frac{1}{|B_{ik}|}\sum_{j \in B_{ik}} [y_j = k]
                 - \frac{1}{|B_{ik}|}\sum_{j \in B_{ik}} p_{jk} \right|

    (for ``norm="l1"``; "l2" and "max" per class as there, then averaged). Each
    term is torchmetrics' ``BinaryCalibrationError`` of ``(p[:, k], y == k)``.

    Parameters
    ----------
    probs_or_logits, y, n_bins, norm, strategy, from_logits
        As in :func:`expected_calibration_error`.

    Returns
    -------
    float

    References
    ----------
    Kull, Perello-Nieto, Kängsepp, Silva Filho, Song, Flach (2019), "Beyond
    temperature scaling: obtaining well-calibrated multiclass probabilities with
    Dirichlet calibration", NeurIPS.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> p = [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.1]]
    >>> round(smk.classwise_calibration_error(p, [0, 0, 1, 1]), 12)
    0.2
    """
    n_bins = check_count(n_bins, "n_bins")
    norm = check_choice(norm, "norm", _NORMS)
    strategy = check_choice(strategy, "strategy", _STRATEGIES)
    probs, labels = _probs_and_labels(probs_or_logits, y, from_logits)
    total = 0.0
    for k in range(probs.shape[1]):
        conf = probs[:, k]
        edges = _bin_edges(conf, n_bins, strategy)
        count, conf_sum, acc_sum = _bin_stats(conf, labels == k, edges)
        total += _ece_from_bins(count, conf_sum, acc_sum, norm)
    return total / probs.shape[1]


@dataclass(frozen=True)
class ReliabilityCurve:
    """Reliability-diagram data, one entry per bin (see :func:`reliability_curve`).

    Attributes
    ----------
    bin_edges : ndarray of shape (n_bins + 1,)
    count : ndarray of int64, shape (n_bins,)
        Samples in each bin.
    confidence : ndarray of shape (n_bins,)
        Mean confidence of each bin (NaN where the bin is empty).
    accuracy : ndarray of shape (n_bins,)
        Share of correct predictions in each bin (NaN where empty).
    ece : float
        The l1 expected calibration error of these bins.
    """

    bin_edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float


def reliability_curve(
    probs_or_logits: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    n_bins: int = 15,
    strategy: str = "uniform",
    from_logits: bool = False,
) -> ReliabilityCurve:
    """The data of a reliability diagram: per-bin confidence against accuracy.

    Bins the top-label confidences exactly as :func:`expected_calibration_error`
    does. Plot ``accuracy`` against ``confidence`` (or bars over ``bin_edges``):
    a calibrated model lies on the diagonal; bars below it mean over-confidence.

    Parameters
    ----------
    probs_or_logits, y, n_bins, strategy, from_logits
        As in :func:`expected_calibration_error`.

    Returns
    -------
    ReliabilityCurve
        ``bin_edges``, ``count``, ``confidence``, ``accuracy`` and the l1 ``ece``.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> p = [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.7, 0.3]]
    >>> curve = smk.reliability_curve(p, [0, 0, 1, 1], n_bins=5)
    >>> curve.count.tolist(), curve.accuracy[3:].tolist(), round(curve.ece, 12)
    ([0, 0, 0, 1, 3], [0.0, 1.0], 0.25)
    """
    n_bins = check_count(n_bins, "n_bins")
    strategy = check_choice(strategy, "strategy", _STRATEGIES)
    probs, labels = _probs_and_labels(probs_or_logits, y, from_logits)
    conf, correct = _top_label(probs, labels)
    edges = _bin_edges(conf, n_bins, strategy)
    count, conf_sum, acc_sum = _bin_stats(conf, correct, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        acc = np.where(count > 0, acc_sum / count, np.nan)
    return ReliabilityCurve(edges, count.astype(np.int64), mean_conf, acc,
                            _ece_from_bins(count, conf_sum, acc_sum, "l1"))


# ------------------------------------------------------------------ temperature scaling


def _nll_and_derivatives(b: float, z: np.ndarray, y: np.ndarray, sw: np.ndarray | None,
                          bufs: tuple[np.ndarray, np.ndarray] | None = None):
    """Mean NLL of softmax(b z) and its first two derivatives in the scale b = 1/T.

    f(b) = mean_j [logsumexp(b z_j) - b z_{j,y_j}] is convex in b:
    f'(b) = mean_j <p_j - onehot_j, z_j>  (the fused gradient, dotted with z),
    f''(b) = mean_j Var_{p_j}(z_j) = mean_j (sum_k p_jk z_jk^2 - (sum_k p_jk z_jk)^2) >= 0.

    ``bufs``: two arrays like z for b z and the gradient, reused across the Newton
    steps (fresh arrays of a few MB each step cost their page faults: at 2,000 x 100
    a step took 1.9 ms with them, 0.55 ms without).
    """
    bz, gbuf = bufs if bufs is not None else (np.empty_like(z), np.empty_like(z))
    np.multiply(z, b, out=bz)
    loss, grad = cross_entropy_and_grad(bz, y, sample_weight=sw, out=gbuf)
    d1 = float(np.einsum("ij,ij->", grad, z))
    # The curvature needs p itself. Without weights grad = (p - onehot) / n, so p is
    # n grad + onehot (the rounding there only slows Newton down, it cannot move the
    # root f'(b) = 0); with weights a row of weight 0 has no p left in it.
    if sw is None:
        p = np.multiply(grad, z.shape[0], out=grad)
        p[np.arange(z.shape[0]), y] += 1.0
    else:
        p = softmax(bz, axis=-1, out=grad)
    pz = np.einsum("ij,ij->i", p, z)  # einsum: no (n, K) temporaries, 5x faster here
    var = np.einsum("ij,ij,ij->i", p, z, z) - pz * pz
    d2 = float(np.average(np.maximum(var, 0.0), weights=sw))
    return float(loss), d1, d2


def _fit_scale(z: np.ndarray, y: np.ndarray, sw: np.ndarray | None, tol: float, max_iter: int,
               b0: float = 1.0):
    """argmin_{b > 0} f(b) by Newton's method safeguarded by a bracket [lo, hi] with
    f'(lo) < 0 < f'(hi): a Newton step that leaves the bracket is replaced by
    bisection (or doubling, while no f'(hi) > 0 is known). Returns (b, n_iter, status),
    status "converged", "separable" (the NLL falls all the way to T -> 0) or "max_iter"."""
    bufs = (np.empty_like(z), np.empty_like(z))
    _, d1_0, _ = _nll_and_derivatives(0.0, z, y, sw, bufs)
    if not d1_0 < 0:
        raise ValueError(
            "the logits carry no information about the labels (the NLL does not decrease "
            "from T = infinity, where every class has probability 1/K): no finite "
            "temperature is optimal"
        )
    lo, hi = 0.0, math.inf
    b, n_iter = b0, 0
    B_MAX = 1e8  # T >= 1e-8 max|z|: the NLL still falling there means the logits separate the labels
    while n_iter < max_iter:
        n_iter += 1
        _, d1, d2 = _nll_and_derivatives(b, z, y, sw, bufs)
        if d1 < 0:
            lo = b
        else:
            hi = b
        if d1 <= 0 and d2 == 0:
            # every row puts all its probability (to rounding) on its label and the NLL
            # still falls: the logits separate the labels, and the optimum is T -> 0
            return b, n_iter, "separable"
        # Converged when the Newton step (or the bracket) is below tol relative to b.
        step = d1 / d2 if d2 > 0 else math.inf
        if abs(step) <= tol * b or (hi - lo) <= tol * b or d1 == 0:
            return b, n_iter, "converged"
        new = b - step
        if not (lo < new < hi):
            if math.isinf(hi):
                new = min(2.0 * b if d1 < 0 else b, B_MAX)
                if b >= B_MAX:
                    return B_MAX, n_iter, "separable"
            else:
                new = 0.5 * (lo + hi)
        b = new
    return b, n_iter, "max_iter"


def _fit_vector(z: np.ndarray, y: np.ndarray, sw: np.ndarray | None, tol: float, max_iter: int):
    """argmin over (w, c) of mean CE(softmax(w * z + c)), by damped Newton.

    The objective is convex in (w, c) (logits are linear in them). With P the
    probabilities and the row weights folded in, the Hessian blocks are
    H_ww = diag(sum P z^2) - (P z)^T (P z), H_wc = diag(sum P z) - (P z)^T P,
    H_cc = diag(sum P) - P^T P. It is singular along c + const (softmax's shift
    invariance), so the step is a least-squares solve.
    """
    n, k = z.shape
    wts = np.full(n, 1.0 / n) if sw is None else sw / sw.sum()
    w, c = np.ones(k), np.zeros(k)

    def f_grad(w, c):
        loss, g = cross_entropy_and_grad(z * w + c, y, sample_weight=sw)
        return float(loss), np.concatenate([np.sum(g * z, axis=0), np.sum(g, axis=0)])

    loss, grad = f_grad(w, c)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        Pu = softmax(z * w + c, axis=-1)
        P, Pz = Pu * wts[:, None], Pu * z * wts[:, None]
        sq = np.sqrt(wts)[:, None]
        A, Pn = Pu * z * sq, Pu * sq  # so that A^T A = sum_j wts_j (p z)(p z)^T, etc.
        H = np.empty((2 * k, 2 * k))
        H[:k, :k] = np.diag(np.sum(Pz * z, axis=0)) - A.T @ A
        H[:k, k:] = np.diag(np.sum(Pz, axis=0)) - A.T @ Pn
        H[k:, :k] = H[:k, k:].T
        H[k:, k:] = np.diag(np.sum(P, axis=0)) - Pn.T @ Pn
        step = np.linalg.lstsq(H, -grad, rcond=None)[0]
        decrease = -float(grad @ step)  # Newton decrement squared
        if decrease <= tol * tol:
            return w, c, n_iter, True
        t = 1.0
        while True:  # backtracking (Armijo) line search
            w_new, c_new = w + t * step[:k], c + t * step[k:]
            loss_new, grad_new = f_grad(w_new, c_new)
            if loss_new <= loss - 0.25 * t * decrease or t < 1e-10:
                break
            t *= 0.5
        if t < 1e-10:
            return w, c, n_iter, True  # no further decrease possible in floating point
        w, c, loss, grad = w_new, c_new, loss_new, grad_new
    return w, c, n_iter, False


class TemperatureScaling:
    r"""Temperature scaling (or vector scaling) of logits, fitted by exact NLL minimisation.

    ``method="temperature"`` learns one :math:`T > 0` and calibrates logits as
    :math:`z / T` (Guo et al. 2017): the predicted class never changes, only the
    confidence. ``method="vector"`` learns a scale and a bias per class,
    :math:`w \odot z + c` (which can change predictions).

    The temperature minimises the mean negative log-likelihood
    :math:`f(b) = \frac{1}{n}\sum_j [\operatorname{logsumexp}(b z_j) - b z_{j,y_j}]`
    over :math:`b = 1/T > 0`. :math:`f` is convex in :math:`b` (its second
    derivative is the mean variance of :math:`z_j` under :math:`p_j`), so it is
    solved to ``tol`` by Newton's method safeguarded by a bracket, with the loss
    and gradient from the fused :func:`softmaxkit.cross_entropy_and_grad` kernel
    (``f'(b) = <grad, z>``); vector scaling by damped Newton on its 2K
    parameters.

    Parameters
    ----------
    method : {"temperature", "vector"}, default "temperature"
    estimator : fitted classifier, optional
        When given, ``fit``/``transform``/``predict_proba`` take the estimator's
        features ``X`` and use its ``decision_function`` (or, when it has none,
        ``predict_log_proba``) as the logits; ``classes_`` are the estimator's
        and ``y`` holds class labels. When None, ``X`` are the logits
        themselves, shape (n_samples, n_classes), and ``y`` class indices.
        The estimator is used as fitted (never refitted): fit it on other data.
    tol : float, default 1e-12
        Relative tolerance on the scale ``1/T`` (temperature) or on the Newton
        decrement (vector).
    max_iter : int, default 100

    Attributes
    ----------
    temperature_ : float
        The fitted temperature (``method="temperature"`` only).
    coef_ : ndarray of shape (n_classes,)
        Per-class scale: ``1/T`` repeated for "temperature".
    intercept_ : ndarray of shape (n_classes,)
        Per-class bias (zeros for "temperature").
    classes_ : ndarray of shape (n_classes,)
    n_iter_ : int
    nll_ : float
        The mean NLL on the fitting data after calibration.

    References
    ----------
    Guo, Pleiss, Sun, Weinberger (2017), "On calibration of modern neural
    networks", ICML.

    Examples
    --------
    Over-confident logits (the truth is 3 times less sure) give back T = 3:

    >>> import numpy as np, softmaxkit as smk
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(100000, 4))
    >>> u = rng.random((100000, 1))
    >>> y = (np.cumsum(smk.softmax(z), axis=1) < u).sum(axis=1)  # y ~ softmax(z)
    >>> ts = smk.TemperatureScaling().fit(3 * z, y)
    >>> round(ts.temperature_, 1)
    3.0
    """

    temperature_: float
    coef_: np.ndarray
    intercept_: np.ndarray
    classes_: np.ndarray
    n_iter_: int
    nll_: float
    n_features_in_: int | None

    def __init__(self, method: str = "temperature", *, estimator: Any = None,
                 tol: float = 1e-12, max_iter: int = 100):
        self.method = method
        self.estimator = estimator
        self.tol = tol
        self.max_iter = max_iter

    # scikit-learn protocol (get_params/set_params, so clone() and pipelines work)
    def get_params(self, deep: bool = True) -> dict:
        return {"method": self.method, "estimator": self.estimator, "tol": self.tol,
                "max_iter": self.max_iter}

    def set_params(self, **params) -> "TemperatureScaling":
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"invalid parameter {key!r} for TemperatureScaling; "
                                 f"valid: {sorted(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.get_params().items()
                if v != {"method": "temperature", "estimator": None, "tol": 1e-12,
                         "max_iter": 100}[k]]
        return f"TemperatureScaling({', '.join(args)})"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    # ------------------------------------------------------------------ logits

    def _logits(self, X: Any, *, fitting: bool) -> np.ndarray:
        est = self.estimator
        if est is None:
            z, _ = as_float_array(X, "X")
            z = np.asarray(z, dtype=np.float64)
            if z.ndim != 2 or z.shape[1] < 2:
                raise ValueError(f"X must be logits of shape (n_samples, n_classes >= 2), got "
                                 f"shape {z.shape}")
            if not fitting and z.shape[1] != self.classes_.size:
                raise ValueError(f"X has {z.shape[1]} classes, the calibration was fitted on "
                                 f"{self.classes_.size}")
        elif hasattr(est, "decision_function"):
            z = np.asarray(est.decision_function(X), dtype=np.float64)
            if z.ndim == 1:  # binary: d = z_1 - z_0, so (0, d) has the same softmax
                z = np.column_stack([np.zeros_like(z), z])
        elif hasattr(est, "predict_log_proba"):
            z = np.asarray(est.predict_log_proba(X), dtype=np.float64)
        else:
            raise TypeError(f"estimator {type(est).__name__} has neither decision_function "
                            "nor predict_log_proba")
        if z.shape[0] == 0:
            raise ValueError("X is empty (no samples)")
        bad = ~np.isfinite(z)
        if est is None and bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(f"X[{i}, {j}] = {z[i, j]!r}: logits must be finite")
        if bad.any():  # predict_log_proba may give -inf for a probability of 0
            z = np.where(np.isnan(z) | (z == np.inf), np.nan, z)
            if np.isnan(z).any():
                raise ValueError("the estimator's scores hold NaN or +inf")
            z = np.maximum(z, np.log(np.finfo(np.float64).tiny))
        return z

    def _targets(self, y: Any, n: int, k: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y has shape {y.shape}, expected ({n},)")
        if self.estimator is None:
            if y.dtype.kind not in "iu":
                raise TypeError(f"y must hold integer class indices, got dtype {y.dtype}")
            return hard_target(y, k, (n,), None, "one label per row of X")
        classes = np.asarray(self.estimator.classes_)
        idx = np.searchsorted(classes, y)
        idx = np.clip(idx, 0, classes.size - 1)
        unknown = classes[idx] != y
        if unknown.any():
            raise ValueError(f"y holds {_plain(y[unknown][0])!r}, which is not one of the "
                             f"estimator's classes {classes.tolist()}")
        return idx.astype(np.int64)

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "TemperatureScaling":
        """Fit on held-out data: logits (or the estimator's features) and labels.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_classes), or the estimator's features
        y : array_like of shape (n_samples,)
            Class indices (no estimator) or the estimator's class labels.
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        method = check_choice(self.method, "method", ("temperature", "vector"))
        tol = check_real(self.tol, "tol")
        if not (0 < tol < 1):
            raise ValueError(f"tol must be in (0, 1), got {self.tol!r}")
        max_iter = check_count(self.max_iter, "max_iter")
        z = self._logits(X, fitting=True)
        n, k = z.shape
        target = self._targets(y, n, k)
        sw = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            if sw.shape != (n,) or not np.isfinite(sw).all() or (sw < 0).any() or sw.sum() <= 0:
                raise ValueError("sample_weight must be finite, >= 0, not all 0, of shape "
                                 f"({n},)")
        self.classes_ = (np.arange(k) if self.estimator is None
                         else np.asarray(self.estimator.classes_))
        # The NLL depends on the logits only through b z (or w z + c): solving on
        # z / s with s = max |z| and dividing the scale by s afterwards is the same
        # problem, and keeps b z and the curvature's z^2 finite for logits near 1e308.
        s_ = float(np.max(np.abs(z)))
        s_ = s_ if s_ > 0 else 1.0
        zs = z / s_
        if method == "temperature":
            # start from T = 1 in the caller's units: b = s on z / s
            b, self.n_iter_, status = _fit_scale(zs, target, sw, tol, max_iter,
                                                 b0=min(s_, 1e8))
            self.temperature_ = s_ / b
            self.coef_, self.intercept_ = np.full(k, b / s_), np.zeros(k)
        else:
            w, self.intercept_, self.n_iter_, ok = _fit_vector(
                zs, target, sw, tol, max_iter)
            self.coef_ = w / s_
            status = "converged" if ok else "max_iter"
            if hasattr(self, "temperature_"):
                del self.temperature_
        if status != "converged":
            from sklearn.exceptions import ConvergenceWarning

            msg = (f"the logits separate the labels: the NLL keeps falling as T -> 0; stopped "
                   f"at T = {self.temperature_:.3g}" if status == "separable" else
                   f"TemperatureScaling did not converge in {self.n_iter_} iterations")
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        self.nll_ = float(cross_entropy(self._scaled(z), target, sample_weight=sw))
        self.n_features_in_ = z.shape[1] if self.estimator is None else getattr(
            self.estimator, "n_features_in_", None)
        return self

    # ------------------------------------------------------------------ predict

    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This TemperatureScaling instance is not fitted yet; call fit first")

    def _scaled(self, z: np.ndarray) -> np.ndarray:
        return z * self.coef_ + self.intercept_

    def transform(self, X: Any) -> np.ndarray:
        """Calibrated logits ``z / T`` (or ``coef_ * z + intercept_``), shape (n, K)."""
        self._check_fitted()
        return self._scaled(self._logits(X, fitting=False))

    def decision_function(self, X: Any) -> np.ndarray:
        """The calibrated logits, as :meth:`transform`."""
        return self.transform(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities ``softmax(z / T)``, shape (n, K)."""
        return softmax(self.transform(X), axis=-1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log_softmax(z / T)``, shape (n, K)."""
        return log_softmax(self.transform(X), axis=-1)

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[argmax]`` of the calibrated logits."""
        return self.classes_[np.argmax(self.transform(X), axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy (as every scikit-learn classifier)."""
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(y, self.predict(X), sample_weight=sample_weight))


# ------------------------------------------------------------------ report and plot


def _atomic_write_png(fig: Any, path: Path) -> None:
    """Write the figure as PNG through _io's atomic_path (a temporary file in the
    same folder, renamed over ``path`` only when complete)."""
    from ._io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_reliability_diagram(curve: ReliabilityCurve, path: Any = None, *,
                             title: str = "reliability diagram"):
    """A reliability diagram of ``curve``: accuracy bars per bin over the diagonal,
    with the share of samples per bin below. Written atomically as PNG to ``path``
    when given; returns the matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 6.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax, hx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    e = curve.bin_edges
    width = np.diff(e)
    filled = curve.count > 0
    ax.bar(e[:-1][filled], curve.accuracy[filled], width=width[filled], align="edge",
           color="#4c72b0", edgecolor="white", label="accuracy")
    ax.bar(e[:-1][filled], (curve.confidence - curve.accuracy)[filled], width=width[filled],
           bottom=curve.accuracy[filled], align="edge", color="#dd8452", alpha=0.45,
           edgecolor="#dd8452", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE = {curve.ece:.4f}")
    ax.legend(loc="upper left", fontsize=8)
    hx.bar(e[:-1], curve.count / max(curve.count.sum(), 1), width=width, align="edge",
           color="#8c8c8c", edgecolor="white")
    hx.set_xlabel("confidence (top-label probability)")
    hx.set_ylabel("share")
    if path is not None:
        _atomic_write_png(fig, Path(os.fspath(path)))
    return fig


def calibration_report(probs: npt.ArrayLike, y: npt.ArrayLike, path_prefix: Any, *,
                       classes: npt.ArrayLike | None = None, n_bins: int = 15,
                       title: str = "reliability diagram") -> dict:
    """Calibration metrics of predicted probabilities, and a reliability diagram PNG.

    Parameters
    ----------
    probs : array_like of shape (n_samples, n_classes)
        Predicted probabilities (e.g. ``model.predict_proba(X_test)``).
    y : array_like of shape (n_samples,)
        True labels: class indices, or labels from ``classes`` when given.
    path_prefix : str or path-like
        The diagram is written (atomically) to ``<path_prefix>_reliability.png``;
        its folder must exist.
    classes : array_like, optional
        The class labels of the columns (``model.classes_``), to map ``y``.
    n_bins : int, default 15

    Returns
    -------
    dict
        ``ece``, ``ece_l2``, ``mce`` (max norm), ``classwise_ece``, ``nll``,
        ``accuracy``, ``mean_confidence``, ``n_bins``, ``strategy``,
        ``reliability`` (``bin_edges``, ``count``, ``confidence``, ``accuracy``
        lists, None for empty bins) and ``reliability_png`` (the file written).

    Examples
    --------
    >>> import os, tempfile, softmaxkit as smk
    >>> p = [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.7, 0.3]]
    >>> folder = tempfile.mkdtemp()
    >>> rep = smk.calibration_report(p, [0, 0, 1, 1], os.path.join(folder, "test"), n_bins=5)
    >>> round(rep["ece"], 12), rep["accuracy"], os.path.basename(rep["reliability_png"])
    (0.25, 0.75, 'test_reliability.png')
    >>> import shutil; shutil.rmtree(folder)
    """
    y = np.asarray(y)
    if classes is not None:
        classes = np.asarray(classes)
        order = np.argsort(classes, kind="stable")
        pos = np.clip(np.searchsorted(classes, y, sorter=order), 0, classes.size - 1)
        idx = order[pos]
        if (classes[idx] != y).any():
            bad = _plain(y[classes[idx] != y][0])
            raise ValueError(f"y holds {bad!r}, which is not one of classes {classes.tolist()}")
        y = idx
    probs, labels = _probs_and_labels(probs, y, False, "probs")
    curve = reliability_curve(probs, labels, n_bins=n_bins)
    conf, correct = _top_label(probs, labels)
    out = Path(os.fspath(path_prefix) + "_reliability.png")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: no such folder for the reliability diagram")
    plot_reliability_diagram(curve, out, title=title)

    def lst(a):
        return [None if not np.isfinite(v) else float(v) for v in a]

    return {
        "ece": curve.ece,
        "ece_l2": expected_calibration_error(probs, labels, n_bins=n_bins, norm="l2"),
        "mce": expected_calibration_error(probs, labels, n_bins=n_bins, norm="max"),
        "classwise_ece": classwise_calibration_error(probs, labels, n_bins=n_bins),
        "nll": float(cross_entropy(probs, labels, from_logits=False)),
        "accuracy": float(np.mean(correct)),
        "mean_confidence": float(np.mean(conf)),
        "n_bins": n_bins,
        "strategy": "uniform",
        "reliability": {"bin_edges": lst(curve.bin_edges), "count": curve.count.tolist(),
                        "confidence": lst(curve.confidence), "accuracy": lst(curve.accuracy)},
        "reliability_png": str(out),
    }
