"""Pictures: logits beside probabilities, training curves, confusion matrices.

Imported lazily (``import softmaxkit`` never imports matplotlib). Figures are built
with the object-oriented API on an Agg canvas, so no display is needed and the
global pyplot state and backend are left alone.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_bars", "plot_training_curves", "plot_confusion_matrix"]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> None:
    if path is not None:
        fig.savefig(os.fspath(path), format="png")


def plot_bars(values, probabilities, path=None, *, left_title="logits z",
              right_title="softmax probabilities p", title=None) -> Figure:
    """Two bar charts side by side: raw values (left), probabilities (right).

    Parameters
    ----------
    values, probabilities : array_like of shape (n,)
        One bar per class.
    path : str or path-like, optional
        Where to write a PNG.
    left_title, right_title, title : str
        Panel titles and the figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    v = np.asarray(values, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    fig = _figure(9, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    idx = np.arange(v.size)
    ax1.bar(idx, v, color="tab:gray")
    ax1.axhline(0, color="black", linewidth=0.8)
    ax1.set_title(left_title)
    ax2.bar(idx, p, color="tab:blue")
    ax2.set_ylim(0, 1.05)
    ax2.set_title(right_title)
    for i, pi in enumerate(p):
        ax2.annotate(f"{pi:.3g}", (i, pi), ha="center", va="bottom", fontsize=8)
    for ax in (ax1, ax2):
        ax.set_xticks(idx)
        ax.set_xlabel("class")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_training_curves(history: dict, path=None, *, title="training") -> Figure:
    """Loss and accuracy per iteration/epoch, training and (when present) validation.

    Parameters
    ----------
    history : dict
        Lists under "loss", "accuracy" and optionally "val_loss", "val_accuracy"
        (``SoftmaxRegression.history_``).
    path : str or path-like, optional
        Where to write a PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _figure(10, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    for key, ax, label in (("loss", ax1, "training"), ("val_loss", ax1, "validation"),
                           ("accuracy", ax2, "training"), ("val_accuracy", ax2, "validation")):
        vals = history.get(key)
        if vals:
            ax.plot(np.arange(1, len(vals) + 1), vals, label=label)
    ax1.set_title("objective (mean cross-entropy + L2)")
    ax1.set_yscale("log")
    ax2.set_title("accuracy")
    for ax in (ax1, ax2):
        ax.set_xlabel("iteration / epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_confusion_matrix(cm, labels: Sequence, path=None, *, title="confusion matrix") -> Figure:
    """A confusion matrix as an annotated heat map (rows: true, columns: predicted).

    Parameters
    ----------
    cm : array_like of shape (k, k)
        Counts.
    labels : sequence
        Class names, in the matrix order.
    path : str or path-like, optional
        Where to write a PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
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
