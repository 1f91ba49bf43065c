"""Step-by-step explanations of softmax and sigmoid, as in the articles.

``explain(logits)`` computes every intermediate of the stable softmax (the max, the
shifted logits, their exponentials, the sum, probabilities, log-probabilities) next
to what the naive formula ``exp(z) / sum(exp(z))`` gives, and, with a label, the
cross-entropy ``logsumexp(z) - z[label]`` and its gradient ``p - y``. The result is a
structured object whose ``str`` is the table printed by ``softmaxkit explain``.

Only the values shown come from plain NumPy (naive column, entropy); every stable
quantity comes from softmaxkit's own kernels.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

if TYPE_CHECKING:  # matplotlib is imported only when a picture is drawn
    from matplotlib.figure import Figure

from .._softmax import hardmax, log_sigmoid, log_softmax, logsumexp, sigmoid, softmax
from .._validation import check_temperature
from .tables import text_table

__all__ = ["explain", "explain_sigmoid", "SoftmaxExplanation", "SigmoidExplanation"]


def _fmt(v: float, digits: int = 6) -> str:
    """A number for the table: ``digits`` significant digits, 'inf'/'nan' spelled out."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0 or abs(v) < 1e-15 and digits <= 3:  # a sum that is 0 up to rounding
        return "0"
    return f"{v:.{digits}g}"


def _as_logits(logits: Any, name: str = "logits") -> np.ndarray:
    try:
        z = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of real numbers, got {logits!r}") from None
    if z.ndim == 0:
        z = z.reshape(1)
    if z.ndim != 1 or z.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {z.shape}")
    if np.isnan(z).any():
        raise ValueError(f"{name} must not contain NaN, got {z.tolist()}")
    return z


@dataclass(frozen=True)
class SoftmaxExplanation:
    """Every step of ``softmax(logits / temperature)``, stable and naive.

    Attributes
    ----------
    logits : ndarray
        The input z.
    temperature : float
        T; the table works on ``z / T``.
    scaled : ndarray
        ``z / T``.
    max : float
        ``max(z / T)``, the shift.
    shifted : ndarray
        ``z / T - max``: every entry <= 0, so every exponential is <= 1.
    exp_shifted : ndarray
        ``exp(shifted)``.
    sum_exp_shifted : float
        Their sum, at least 1 (the max contributes exp(0) = 1).
    probabilities : ndarray
        ``exp_shifted / sum_exp_shifted``, the softmax.
    log_probabilities : ndarray
        ``shifted - log(sum_exp_shifted)``, the log-softmax (never log 0).
    logsumexp : float
        ``max + log(sum_exp_shifted)``.
    naive_exp, naive_sum, naive_probabilities :
        What ``exp(z/T)``, their sum and ``exp(z/T) / sum`` give without the shift
        (overflow to inf, underflow to 0, NaN from inf/inf or 0/0).
    naive_problem : str or None
        A sentence naming what went wrong in the naive formula, None when nothing did.
    plain_normalisation : ndarray or None
        ``z / sum(z)`` when every logit is positive (the articles' contrast: the
        exponential widens gaps), else None.
    hardmax : ndarray
        The one-hot argmax, the limit of softmax as T goes to 0.
    entropy : float
        ``H(p) = -sum p log p`` in nats.
    dtype : str
        "float64" or "float32": the precision of every step.
    label : int or None
        The true class, when given.
    loss : float or None
        Cross-entropy with a one-hot label: ``-log p[label] = logsumexp - z[label]/T``.
    gradient : ndarray or None
        ``d loss / d (z/T) = p - y``.
    squared_loss : float or None
        ``sum (p - y)^2``, for contrast: unlike the cross-entropy it depends on how
        the wrong classes share their probability.
    """

    logits: np.ndarray
    temperature: float
    scaled: np.ndarray
    max: float
    shifted: np.ndarray
    exp_shifted: np.ndarray
    sum_exp_shifted: float
    probabilities: np.ndarray
    log_probabilities: np.ndarray
    logsumexp: float
    naive_exp: np.ndarray
    naive_sum: float
    naive_probabilities: np.ndarray
    naive_problem: str | None
    plain_normalisation: np.ndarray | None
    hardmax: np.ndarray
    entropy: float
    dtype: str = "float64"
    label: int | None = None
    loss: float | None = None
    gradient: np.ndarray | None = None
    squared_loss: float | None = None

    def __str__(self) -> str:
        n = self.logits.size
        t = self.temperature
        zt = "z" if t == 1 else "z/T"
        title = f"softmax of {n} logit{'s' if n != 1 else ''}"
        if t != 1:
            title += f" at temperature T = {_fmt(t)}"
        if self.dtype != "float64":
            title += f", computed in {self.dtype}"
        header = ["class", "logit z"]
        if t != 1:
            header.append("z/T")
        header += [f"{zt} - max", f"exp({zt} - max)", "probability p", "log p",
                   f"naive exp({zt})", "naive p"]
        if self.gradient is not None:
            header.append("grad p - y")
        rows = []
        for i in range(n):
            r = [str(i), _fmt(self.logits[i])]
            if t != 1:
                r.append(_fmt(self.scaled[i]))
            r += [
                _fmt(self.shifted[i]),
                _fmt(self.exp_shifted[i]),
                _fmt(self.probabilities[i], 10),
                _fmt(self.log_probabilities[i], 10),
                _fmt(self.naive_exp[i]),
                _fmt(self.naive_probabilities[i], 10),
            ]
            if self.gradient is not None:
                r.append(_fmt(self.gradient[i], 10))
            rows.append(r)
        total = ["sum", ""] + ([""] if t != 1 else []) + [
            "", _fmt(self.sum_exp_shifted), _fmt(float(self.probabilities.sum()), 10), "",
            _fmt(self.naive_sum), _fmt(float(np.sum(self.naive_probabilities)), 10),
        ]
        if self.gradient is not None:
            total.append(_fmt(float(self.gradient.sum()), 3))
        rows.append(total)
        out = [title, "", text_table(header, rows), ""]
        out.append(f"max = {_fmt(self.max, 10)}; logsumexp = max + log(sum) = {_fmt(self.logsumexp, 10)}")
        out.append(f"prediction (argmax) = class {int(np.argmax(self.hardmax))}; "
                   f"hardmax = {[int(v) for v in self.hardmax]}")
        out.append(f"entropy H(p) = -sum p log p = {_fmt(self.entropy, 10)} nats")
        if self.naive_problem:
            out.append(f"naive formula: {self.naive_problem}")
        else:
            out.append("naive formula exp(z)/sum(exp(z)) agrees here; the shift matters for large |z|")
        if self.plain_normalisation is not None:
            vals = ", ".join(_fmt(v, 6) for v in self.plain_normalisation)
            out.append(f"plain normalisation z/sum(z) = [{vals}] (the exponential widens the gaps)")
        if n == 2:
            d = self.scaled[0] - self.scaled[1]
            out.append(
                f"two classes: p0 = sigmoid({zt}0 - {zt}1) = sigmoid({_fmt(d)}) = "
                f"{_fmt(float(sigmoid(d)), 10)}"
            )
        if self.label is not None:
            out.append(
                f"label = {self.label}: cross-entropy = -log p[{self.label}] = logsumexp - "
                f"{zt}[{self.label}] = {_fmt(self.loss, 10)}"
            )
            out.append("gradient of the cross-entropy w.r.t. the logits = p - onehot(label)")
            sq = self.squared_loss
            out.append(
                f"(self-information of the true class = -log p[{self.label}], the same number; "
                f"squared loss sum (p - y)^2 = {_fmt(sq, 10)} depends on the wrong classes too)"
            )
        return "\n".join(out)

    def plot(self, path: str | os.PathLike[str] | None = None) -> Figure:
        """Bar chart of the logits beside their probabilities (matplotlib, Agg).

        Parameters
        ----------
        path : str or path-like, optional
            Where to write the picture; the format follows the suffix (``.png``,
            ``.svg``, ``.pdf``, ``.jpg``). When None the figure is only returned.

        Returns
        -------
        matplotlib.figure.Figure
            The label's class (when given) is drawn in another colour and named in
            the legend.
        """
        from .plots import plot_bars

        zt = "z" if self.temperature == 1 else "z/T"
        return plot_bars(self.logits, self.probabilities, path,
                         left_title="logits z", right_title=f"softmax({zt}) probabilities p",
                         title=f"softmax (T = {_fmt(self.temperature)})", xlabel="class",
                         highlight=self.label)


def explain(logits: ArrayLike, label: int | None = None, *, temperature: float = 1.0,
            dtype: DTypeLike = np.float64) -> SoftmaxExplanation:
    """Explain ``softmax(logits)`` step by step, stable next to naive.

    Parameters
    ----------
    logits : sequence of float
        One row of logits z (1-D). ``-inf`` entries are allowed (probability 0),
        ``+inf`` and NaN are not.
    label : int, optional
        The true class index (0-based); adds the cross-entropy and its gradient.
    temperature : float, default 1.0
        T > 0: the logits are divided by T before the softmax.
    dtype : {float64, float32}, default float64
        Precision of every step, naive and stable: in float32 ``exp(89)`` already
        overflows, while ``exp(50)`` (about 5.18e21) fits.

    Returns
    -------
    SoftmaxExplanation
        All intermediate values; ``str()`` of it is the printed table.

    Examples
    --------
    >>> import softmaxkit as smk
    >>> e = smk.explain([1.5, 0.8, -0.2], label=0)
    >>> e.probabilities.round(10).tolist()
    [0.5954972685, 0.295715192, 0.1087875396]
    >>> round(e.naive_sum, 4), round(e.loss, 6)
    (7.526, 0.518358)

    The naive formula fails where the stable one does not:

    >>> e = smk.explain([123, 456, 789])
    >>> e.naive_probabilities.tolist(), float(e.probabilities[2])
    ([0.0, 0.0, nan], 1.0)
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    z = _as_logits(logits)
    t = check_temperature(temperature)
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, numbers.Integral):
            raise TypeError(f"label must be an int class index, got {label!r}")
        label = int(label)
        if not 0 <= label < z.size:
            raise ValueError(f"label must be a class index in 0..{z.size - 1}, got {label}")
    with np.errstate(over="ignore"):
        zd = z.astype(dt)
        scaled = (zd / dt.type(t)).astype(dt)
    if np.isposinf(scaled).any() or np.isneginf(scaled).all():
        raise ValueError(
            f"logits / temperature must be finite or -inf, with at least one finite, "
            f"got {scaled.tolist()}"
        )
    if label is not None and np.isneginf(scaled[label]):
        raise ValueError(f"the label's logit is -inf (probability 0): the cross-entropy is inf")
    m = scaled.max()
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        shifted = scaled - m
        exp_shifted = np.exp(shifted)
        s = exp_shifted.sum(dtype=dt)
        naive_exp = np.exp(scaled)
        naive_sum = naive_exp.sum(dtype=dt)
        naive_p = naive_exp / naive_sum
    probs = softmax(zd, temperature=t)
    logp = log_softmax(zd, temperature=t)
    lse = float(logsumexp(scaled))
    problem = _naive_problem(scaled, naive_exp, float(naive_sum), naive_p, probs, dt)
    plain = None
    if (z > 0).all():
        plain = z / z.sum()
    hard = hardmax(z)
    # p log p with 0 log 0 = 0
    pos = probs > 0
    entropy = float(-np.sum(probs[pos].astype(float) * logp[pos]))
    loss = grad = sq = None
    if label is not None:
        # -log p[label] from the kernel's log_softmax: the same as logsumexp - z[label],
        # without the cancellation of two large numbers (e.g. -998.9 + 1000)
        loss = -float(logp[label])
        grad = probs.copy()
        grad[label] -= 1
        sq = float(np.sum(grad.astype(float) ** 2))
    return SoftmaxExplanation(
        logits=z, temperature=t, scaled=scaled, max=float(m), shifted=shifted,
        exp_shifted=exp_shifted, sum_exp_shifted=float(s), probabilities=probs,
        log_probabilities=logp, logsumexp=lse, naive_exp=naive_exp, naive_sum=float(naive_sum),
        naive_probabilities=naive_p, naive_problem=problem, plain_normalisation=plain,
        hardmax=hard, entropy=entropy, dtype=dt.name, label=label, loss=loss, gradient=grad,
        squared_loss=sq,
    )


def _naive_problem(scaled: np.ndarray, naive_exp: np.ndarray, naive_sum: float, naive_p: np.ndarray,
                   stable: np.ndarray, dt: np.dtype) -> str | None:
    """One sentence on what went wrong in exp(z)/sum(exp(z)), or None."""
    vals = "[" + ", ".join(_fmt(v, 6) for v in naive_p) + "]"
    if np.isinf(naive_exp).any():
        big = _fmt(float(scaled[np.isinf(naive_exp)][0]))
        return (f"exp({big}) overflows {dt.name} to inf, the sum is inf, and "
                f"exp(z)/sum gives {vals} (inf/inf = nan); subtracting the max first keeps "
                f"every exponent <= 0")
    if naive_sum == 0.0:
        return (f"every exp(z) underflows to 0, the sum is 0, and exp(z)/sum divides 0 by 0: "
                f"{vals}; subtracting the max first makes the largest term exp(0) = 1")
    underflow = (naive_exp == 0.0) & (stable > 0) & np.isfinite(scaled)
    if underflow.any():
        return (f"exp(z) underflows to 0 for {int(underflow.sum())} class(es), giving {vals} "
                f"where the stable form keeps tiny nonzero probabilities")
    if not np.allclose(naive_p, stable, rtol=1e-5 if dt == np.float32 else 1e-12, atol=0.0):
        return f"rounding: naive {vals} differs from the stable result"
    return None


@dataclass(frozen=True)
class SigmoidExplanation:
    """Every step of ``sigmoid(x) = 1 / (1 + exp(-x))``, elementwise.

    Attributes
    ----------
    x : ndarray
        The inputs.
    exp_neg : ndarray
        ``exp(-x)`` (may overflow to inf for very negative x; the kernel does not
        compute it that way).
    probabilities : ndarray
        ``sigmoid(x)``, each in (0, 1) on its own: they need not sum to 1.
    log_probabilities : ndarray
        ``log_sigmoid(x) = -softplus(-x)``, stable for large |x|.
    one_minus : ndarray
        ``1 - sigmoid(x) = sigmoid(-x)``.
    """

    x: np.ndarray
    exp_neg: np.ndarray
    probabilities: np.ndarray
    log_probabilities: np.ndarray
    one_minus: np.ndarray

    def __str__(self) -> str:
        header = ["i", "x", "exp(-x)", "sigmoid(x)", "log sigmoid(x)", "1 - sigmoid(x)"]
        rows = [
            [str(i), _fmt(self.x[i]), _fmt(self.exp_neg[i]), _fmt(self.probabilities[i], 16),
             _fmt(self.log_probabilities[i], 10), _fmt(self.one_minus[i], 10)]
            for i in range(self.x.size)
        ]
        total = float(self.probabilities.sum())
        out = [f"sigmoid of {self.x.size} value{'s' if self.x.size != 1 else ''}: "
               "sigmoid(x) = 1 / (1 + exp(-x))", "", text_table(header, rows), ""]
        out.append(f"sum of sigmoids = {_fmt(total, 10)}: independent yes/no probabilities "
                   "(multi-label), they need not sum to 1; softmax is for mutually exclusive classes")
        if self.x.size >= 1:
            x0 = float(self.x[0])
            two = softmax(np.array([x0, 0.0]))
            out.append(f"softmax([x0, 0]) = [{_fmt(two[0], 10)}, {_fmt(two[1], 10)}]: softmax over "
                       "two classes is the sigmoid of the logit difference")
        return "\n".join(out)

    def plot(self, path: str | os.PathLike[str] | None = None) -> Figure:
        """Bar chart of x beside sigmoid(x) (matplotlib, Agg); writes ``path`` when given
        (format from the suffix: ``.png``, ``.svg``, ``.pdf``, ``.jpg``)."""
        from .plots import plot_bars

        return plot_bars(self.x, self.probabilities, path, left_title="inputs x",
                         right_title="sigmoid(x), each in (0, 1) on its own",
                         title="sigmoid", xlabel="input index i")


def explain_sigmoid(x: ArrayLike) -> SigmoidExplanation:
    """Explain ``sigmoid(x)`` elementwise.

    Parameters
    ----------
    x : sequence of float
        Values (1-D).

    Returns
    -------
    SigmoidExplanation

    Examples
    --------
    >>> import softmaxkit as smk
    >>> smk.explain_sigmoid([2, 3, 5, 6]).probabilities.tolist()
    [0.8807970779778823, 0.9525741268224334, 0.9933071490757153, 0.9975273768433653]
    """
    v = _as_logits(x, "x")
    with np.errstate(over="ignore"):
        exp_neg = np.exp(-v)
    return SigmoidExplanation(
        x=v, exp_neg=exp_neg, probabilities=sigmoid(v), log_probabilities=log_sigmoid(v),
        one_minus=sigmoid(-v),
    )
