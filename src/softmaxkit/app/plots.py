"""Pictures: logits beside probabilities, training curves, confusion matrices.

Imported lazily (``import softmaxkit`` never imports matplotlib). Figures are built
with the object-oriented API on an Agg canvas, so no display is needed and the
global pyplot state and backend are left alone. Files are written atomically
(:func:`softmaxkit._io.atomic_path`) in the format their suffix names
(:data:`IMAGE_FORMATS`); any other suffix is refused before anything is drawn.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .._io import atomic_path

__all__ = ["IMAGE_FORMATS", "image_format", "plot_bars", "plot_training_curves",
           "plot_confusion_matrix"]

#: File suffix -> matplotlib format name, for every picture softmaxkit writes.
IMAGE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg"}

# Bar charts: one tick per bar up to this many bars, value labels up to this many.
_MAX_TICKS = 20
_MAX_VALUE_LABELS = 12


def image_format(path: str | os.PathLike[str]) -> str:
    """The matplotlib format for ``path``'s suffix, or ValueError naming the choices.

    Examples
    --------
    >>> from softmaxkit.app.plots import image_format
    >>> image_format("bars.JPG"), image_format("report/curves.svg")
    ('jpeg', 'svg')
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    try:
        return IMAGE_FORMATS[suffix]
    except KeyError:
        got = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ValueError(
            f"{os.fspath(path)}: cannot tell the image format from {got}; "
            "use .png, .svg, .pdf or .jpg"
        ) from None


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is None:
        return
    fmt = image_format(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, facecolor="white")


def _bar_ticks(ax: Any, n: int) -> None:
    """One tick per bar when they fit, else a few integer ticks."""
    if n <= _MAX_TICKS:
        ax.set_xticks(np.arange(n))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        ax.set_xlim(-0.75, n - 0.25)


def plot_bars(values: Any, probabilities: Any, path: str | os.PathLike[str] | None = None, *,
              left_title: str = "logits z", right_title: str = "softmax probabilities p",
              title: str | None = None, xlabel: str = "class",
              highlight: int | None = None) -> Figure:
    """Two bar charts side by side: raw values (left), probabilities (right).

    Parameters
    ----------
    values, probabilities : array_like of shape (n,)
        One bar per entry.
    path : str or path-like, optional
        Where to write the picture (format from the suffix, see :func:`image_format`).
    left_title, right_title, title : str
        Panel titles and the figure title.
    xlabel : str, default "class"
        What the bars are indexed by.
    highlight : int, optional
        An index to draw in another colour and name in the legend (the true class).

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Up to 20 bars every bar gets its tick, beyond that about ten integer ticks; up to
    12 bars each probability is written above its bar.
    """
    if path is not None:
        image_format(path)  # refuse the suffix before drawing
    v = np.asarray(values, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    n = v.size
    fig = _figure(9 if n <= 20 else 12, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    idx = np.arange(n)
    colors = ["tab:gray"] * n, ["tab:blue"] * n
    if highlight is not None:
        colors[0][highlight] = colors[1][highlight] = "tab:orange"
    # -inf logits (probability 0) have no bar; the probability panel shows their 0.
    ax1.bar(idx, np.where(np.isfinite(v), v, 0.0), color=colors[0])
    ax1.axhline(0, color="black", linewidth=0.8)
    ax1.set_title(left_title)
    ax2.bar(idx, p, color=colors[1])
    ax2.set_ylim(0, 1.1)
    ax2.set_title(right_title)
    if n <= _MAX_VALUE_LABELS:
        for i, pi in enumerate(p):
            ax2.annotate(f"{pi:.3g}", (i, pi), ha="center", va="bottom", fontsize=8)
    for ax in (ax1, ax2):
        _bar_ticks(ax, n)
        ax.set_xlabel(xlabel)
    if highlight is not None:
        from matplotlib.patches import Patch

        ax2.legend(handles=[Patch(color="tab:orange", label=f"label: {xlabel} {highlight}")],
                   loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_training_curves(history: Mapping[str, Sequence[float]],
                         path: str | os.PathLike[str] | None = None, *,
                         title: str = "training", xlabel: str = "iteration / epoch",
                         test: Mapping[str, float] | None = None) -> Figure:
    """Objective and accuracy per iteration or epoch: training, validation and test.

    Parameters
    ----------
    history : mapping
        Lists under "loss" and "accuracy", optionally "val_loss" / "val_accuracy"
        (early stopping's validation share) and "test_loss" / "test_accuracy" (one
        value per step on a held-out test set); ``SoftmaxRegression.history_``.
    path : str or path-like, optional
        Where to write the picture (format from the suffix).
    title : str
        The figure title.
    xlabel : str
        The step's name ("L-BFGS iteration", "epoch").
    test : mapping, optional
        The final model's held-out "loss" (log-loss) and "accuracy": drawn as one
        marked point at the last step when the history has no test curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if path is not None:
        image_format(path)
    fig = _figure(10, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    series = (("loss", ax1, "training objective"), ("val_loss", ax1, "validation objective"),
              ("test_loss", ax1, "test log-loss"), ("accuracy", ax2, "training"),
              ("val_accuracy", ax2, "validation"), ("test_accuracy", ax2, "test"))
    last = 1
    for key, ax, label in series:
        vals = history.get(key)
        if vals:
            ax.plot(np.arange(1, len(vals) + 1), vals, label=label)
            last = max(last, len(vals))
    if test is not None:
        for ax, key, what in ((ax1, "loss", "test log-loss"), (ax2, "accuracy", "test accuracy")):
            if f"test_{key}" not in history and test.get(key) is not None:
                ax.plot([last], [test[key]], "o", color="tab:red",
                        label=f"{what}, final model: {test[key]:.4f}")
    ax1.set_title("loss (log scale)")
    ax1.set_yscale("log")
    # Labels on the 1-2-5 steps of every decade, not only on the powers of ten (a
    # curve spanning less than a decade would otherwise show no label at all).
    # Plain numbers (0.05, 0.1, 0.2), not 5e-02.
    ax1.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax1.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax1.yaxis.set_minor_formatter(NullFormatter())
    ax2.set_title("accuracy")
    for ax in (ax1, ax2):
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_confusion_matrix(cm: Any, labels: Sequence[Any], path: str | os.PathLike[str] | None = None,
                          *, title: str = "confusion matrix") -> Figure:
    """A confusion matrix as an annotated heat map (rows: true, columns: predicted).

    Parameters
    ----------
    cm : array_like of shape (k, k)
        Counts.
    labels : sequence
        Class names, in the matrix order.
    path : str or path-like, optional
        Where to write the picture (format from the suffix).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if path is not None:
        image_format(path)
    cm = np.asarray(cm)
    k = cm.shape[0]
    size = min(3 + 0.5 * k, 14)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax)
    ticks = np.arange(k)
    names = [str(c) for c in labels]
    ax.set_xticks(ticks, names, rotation=45 if max(map(len, names), default=0) > 3 else 0)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        thresh = cm.max() / 2 if cm.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > thresh else "black")
    ax.set_title(title)
    _save(fig, path)
    return fig
