"""The train workflow of ``softmaxkit train``, as a plain function.

:func:`train` loads a data set, holds out a stratified test share, fits
:class:`~softmaxkit.SoftmaxRegression` (measuring the test share after every
iteration or epoch: ``eval_set``), saves the model and, optionally, a report
folder (training curves, confusion matrix, metrics.json). A ``.npy`` feature file
never enters memory: its training and test rows are
:class:`~softmaxkit.linear_model.NpyRows` selections read block by block. Every
file is written atomically and never over an input file. Errors are ValueError / FileNotFoundError
whose messages speak the command line's options (``--epochs``, not ``max_iter``).
"""
from __future__ import annotations

import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._io import atomic_open, atomic_path, refuse_overwrite

__all__ = ["train", "TrainResult", "REPORT_FILES", "check_labels", "file_split"]

#: The files a report folder gets (the confusion matrix and the reliability diagram
#: only with a test split).
REPORT_FILES = ("training_curves.png", "confusion_matrix.png", "test_reliability.png",
                "metrics.json")

# SoftmaxRegression's parameter -> the option that sets it.
_OPTIONS = {
    "alpha": "--alpha", "max_iter": "--epochs", "batch_size": "--batch-size",
    "learning_rate": "--learning-rate", "label_smoothing": "--label-smoothing",
}
_INT_MAX = 2**31 - 1


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    model : SoftmaxRegression
        The fitted model (also saved to ``out``).
    metrics : dict
        What metrics.json holds: sizes, solver, iterations, fit time, accuracies,
        test log-loss, confusion matrix, history.
    notes : list of str
        Warnings raised while training (no convergence, ...), one line each, in the
        command line's terms.
    written : list of str
        The files written.
    """

    model: Any
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


def train(
    data: str | os.PathLike[str] = "digits",
    *,
    out: str | os.PathLike[str],
    report: str | os.PathLike[str] | None = None,
    label_column: str | None = None,
    labels: str | os.PathLike[str] | None = None,
    solver: str = "lbfgs",
    epochs: int | None = None,
    alpha: float = 1.0,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    label_smoothing: float = 0.0,
    early_stopping: bool = False,
    test_size: float = 0.25,
    seed: int = 0,
    standardize: bool = True,
    verbose: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train softmax regression on ``data`` and save it to ``out``.

    Parameters
    ----------
    data : "digits" or path
        What :func:`softmaxkit.datasets.load` reads. A ``.npy`` file (with
        ``labels``, a 1-D ``.npy``) is trained on out of core: never loaded whole,
        read in blocks of ``batch_size`` rows (docs/regression.md).
    out : path
        The model file (``.npz``). Its folder must exist; it must not be an input.
    report : path, optional
        A folder (created if needed) for :data:`REPORT_FILES`.
    label_column, labels
        CSV label column; IDX or ``.npy`` labels file.
    solver, epochs, alpha, batch_size, learning_rate, label_smoothing, early_stopping
        SoftmaxRegression's ``solver``, ``max_iter`` (default 100), ``alpha``,
        ``batch_size`` (None: 64), ``learning_rate`` (None: "auto"),
        ``label_smoothing``, ``early_stopping``. For a ``.npy`` file with "lbfgs",
        ``batch_size`` is the rows per block read from the file (None: about 16 MiB).
    test_size : float in [0, 1)
        Held-out share, stratified when every class has two samples; for a ``.npy``
        file, evenly spaced rows (:func:`file_split`). The test set's log-loss and
        accuracy are recorded after every iteration/epoch (``eval_set``).
    seed : int
        Seed of the split and the solver.
    standardize : bool
        Standardise the features (the statistics are stored in the model).
    verbose : bool
        Show the solver's progress bar on stderr.
    log : callable
        Where the summary lines go (default ``print``).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        A bad option (named as on the command line), unreadable or unsuitable data
        (continuous labels, one class), or an output that names an input.
    FileNotFoundError
        The data file does not exist.
    """
    from sklearn.utils._param_validation import InvalidParameterError

    from .. import datasets
    from ..linear_model import SoftmaxRegression

    if not 0.0 <= test_size < 1.0:
        raise ValueError(f"--test-size must be in [0, 1), got {test_size}")
    for option, value in (("--epochs", epochs), ("--batch-size", batch_size)):
        if value is not None and value > _INT_MAX:
            raise ValueError(f"{option} must be an int in the range [1, {_INT_MAX}], got {value}")
    model = SoftmaxRegression(
        alpha=alpha, solver=solver, max_iter=100 if epochs is None else epochs,
        batch_size=64 if batch_size is None else batch_size,
        learning_rate="auto" if learning_rate is None else learning_rate,
        label_smoothing=label_smoothing, early_stopping=early_stopping, standardize=standardize,
        random_state=seed, verbose=1 if verbose else 0,
    )
    try:  # before loading anything, in the options' own names
        model._validate_params()
    except InvalidParameterError as exc:
        raise ValueError(_option_message(str(exc))) from None
    report_dir = None if report is None else Path(os.fspath(report))
    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
        raise ValueError(f"--report {report_dir}: exists and is not a folder")
    outputs: dict[str, Any] = {"--out": out}
    if report_dir is not None:
        outputs.update({f"--report {name}": report_dir / name for name in REPORT_FILES})

    named = {"--data": None if os.fspath(data) == "digits" else data, "--labels": labels}
    refuse_overwrite(outputs, named)  # before reading; again below with every file read

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if label_column is not None and os.fspath(data).lower().endswith(".npy"):
            raise ValueError("--label-column is for CSV data; the labels of a .npy file come "
                             "from --labels y.npy")
        ds = datasets.load(data, label_column=label_column, labels=labels)
        refuse_overwrite(outputs, _input_files(ds))
        X, y = ds.X, ds.y
        check_labels(ds)
        classes, counts = np.unique(y, return_counts=True)
        if isinstance(X, np.memmap):  # out of core: rows stay in the file
            # rows per block read (training, test measurements, metrics): --batch-size
            # for lbfgs, else about 16 MiB (at least one minibatch)
            block = max(batch_size or 1, (16 << 20) // (8 * X.shape[1]))
            X_tr, X_te, y_tr, y_te, how = _file_split(
                X, y, classes, test_size, batch_size if solver == "lbfgs" and batch_size else block)
        else:
            X_tr, X_te, y_tr, y_te, stratified = _split(X, y, classes, counts, test_size, seed)
            how = " (stratified)" if stratified else ""
        log(f"data: {ds.name}: {X.shape[0]} samples, {X.shape[1]} features, {classes.size} classes; "
            f"train {len(y_tr)}, test {len(y_te)}" + how)
        t0 = time.perf_counter()
        try:
            # the test split measured after every step (only when the model knows its classes)
            measured = len(y_te) and np.isin(y_te, y_tr).all()
            model.fit(X_tr, y_tr, eval_set=(X_te, y_te) if measured else None)
        except (ValueError, FloatingPointError, OverflowError) as exc:  # divergence: in option names
            raise ValueError(_cli_terms(str(exc), standardize)) from None
        fit_s = time.perf_counter() - t0
        if not np.isfinite(model.coef_).all() or not np.isfinite(model.intercept_).all():
            raise ValueError(
                f"training diverged (non-finite coefficients) with {solver}"
                + ("" if solver == "lbfgs" else "; lower --learning-rate")
            )
        unit = "iterations" if solver == "lbfgs" else "epochs"
        log(f"fit: {solver}, {model.n_iter_} {unit}, {fit_s:.2f} s")
        metrics = _metrics(model, ds, X, X_tr, y_tr, X_te, y_te, classes, solver, fit_s)
    seen = set()
    for w in caught:  # one line each, once, in the options' names
        text = _cli_terms(str(w.message), standardize)
        if text not in seen:
            seen.add(text)
            notes.append(text)

    line = f"train accuracy {metrics['train_accuracy']:.4f}"
    if "test_accuracy" in metrics:
        line += (f", test accuracy {metrics['test_accuracy']:.4f}, "
                 f"test log-loss {metrics['test_log_loss']:.4f}")
    log(line)
    with atomic_path(out) as tmp:
        model.save(tmp, metadata={
            "data": ds.name, "feature_names": ds.feature_names, "label_column": ds.target_name,
            "test_accuracy": metrics.get("test_accuracy"), "n_train": metrics["n_train"],
        })
    written = [os.fspath(out)]
    log(f"model written to {os.fspath(out)}")
    if report_dir is not None:
        written += _write_report(report_dir, model, metrics, solver, ds.name)
        log(f"report written to {report_dir}/: {', '.join(Path(w).name for w in written[1:])}")
    return TrainResult(model=model, metrics=metrics, notes=notes, written=written)


def _input_files(ds: Any) -> dict[str, str]:
    """The data set's files, labelled by the option that named them."""
    files = list(getattr(ds, "files", ()))
    return {("--data" if i == 0 else "--labels"): f for i, f in enumerate(files)}


def check_labels(ds: Any) -> None:
    """Refuse labels that are not classes (continuous values, a single class).

    A CSV label column of numbers that are not all integers is refused early with
    "label column 'x' looks continuous: 200 distinct float values".
    """
    from sklearn.utils.multiclass import type_of_target

    y = np.asarray(ds.y)
    if y.dtype.kind in "US":  # CSV labels that are numbers but not integers stay text
        try:
            as_float = y.astype(np.float64)
        except ValueError:
            as_float = None
        if as_float is not None and not np.array_equal(as_float, np.round(as_float)):
            column = f"label column {ds.target_name!r}" if ds.target_name else "the label column"
            raise ValueError(
                f"{ds.name}: {column} looks continuous: {np.unique(as_float).size} distinct "
                "float values (the labels must be classes)"
            )
    kind = type_of_target(y)
    if kind == "continuous":
        raise ValueError(
            f"{ds.name}: the labels must be classes, got continuous values "
            f"({np.unique(y).size} distinct float values, e.g. {y[:3].tolist()})"
        )
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"{ds.name}: the labels must be classes, got {kind} values "
                         f"(e.g. {y[:3].tolist()})")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError(f"{ds.name}: needs at least two classes, found {classes.tolist()}")


def _split(X, y, classes, counts, test_size, seed):
    from sklearn.model_selection import train_test_split

    n_test = int(np.ceil(test_size * len(y))) if test_size > 0 else 0
    if not n_test:
        return X, X[:0], y, y[:0], False
    if len(y) - n_test < classes.size:
        raise ValueError(f"--test-size {test_size} leaves {len(y) - n_test} training row(s) of "
                         f"{len(y)}, fewer than the {classes.size} classes")
    stratify = y if counts.min() >= 2 and n_test >= classes.size else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=seed,
                                              stratify=stratify)
    return X_tr, X_te, y_tr, y_te, stratify is not None


def file_split(n: int, test_size: float) -> np.ndarray:
    """Which rows of an ``n``-row file are test rows: row ``i`` is when
    ``floor((i + 1) f) > floor(i f)``, ``f = test_size``.

    Evenly spaced (every 4th row for 0.25, rows 3, 7, 11, ...), ``floor(n f)`` of
    them, the same on every run and read without shuffling the file. A file sorted
    by class still gives each class its share (to within one row), so the split is
    stratified in effect unless the file's order has a period near ``1/f``.

    Examples
    --------
    >>> from softmaxkit.app.train import file_split
    >>> file_split(10, 0.25).nonzero()[0].tolist()
    [3, 7]
    """
    i = np.arange(n, dtype=np.float64)
    return np.floor((i + 1) * test_size) > np.floor(i * test_size)


def _file_split(X, y, classes, test_size, block_rows):
    """Train and test rows of a memory-mapped .npy as NpyRows (nothing read yet)."""
    from ..linear_model import NpyRows

    test = file_split(X.shape[0], test_size)
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    if tr.size < classes.size:
        raise ValueError(f"--test-size {test_size} leaves {tr.size} training row(s) of "
                         f"{X.shape[0]}, fewer than the {classes.size} classes")
    if np.unique(y[tr]).size < 2:
        raise ValueError(f"--test-size {test_size}: the training rows hold only one class")
    src = dict(path=X.filename, offset=X.offset, shape=X.shape, dtype=X.dtype, block_rows=block_rows)
    how = " (read from the file in blocks)"
    if te.size:
        k = round(1 / test_size)
        step = f"every {_ordinal(k)} row" if abs(1 / test_size - k) < 1e-9 else "evenly spaced rows"
        how = f" (test: {step}; read from the file in blocks)"
    return NpyRows(**src, rows=tr), NpyRows(**src, rows=te), y[tr], y[te], how


def _ordinal(k: int) -> str:
    """2nd, 3rd, 4th, 11th, 21st."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _row_blocks(X):
    """``(start, stop, rows)`` of X: an NpyRows' blocks, or X itself."""
    if hasattr(X, "blocks"):
        return X.blocks()
    return [(0, X.shape[0], X)]


def _predict_proba(model, X) -> np.ndarray:
    return np.concatenate([model.predict_proba(b) for _, _, b in _row_blocks(X)]) \
        if hasattr(X, "blocks") else model.predict_proba(X)


def _accuracy(model, X, y) -> float:
    correct = sum(int(np.count_nonzero(model.predict(b) == y[s:e])) for s, e, b in _row_blocks(X))
    return correct / len(y)


def _metrics(model, ds, X, X_tr, y_tr, X_te, y_te, classes, solver, fit_s) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "data": ds.name, "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
        "n_classes": int(classes.size), "n_train": int(len(y_tr)), "n_test": int(len(y_te)),
        "solver": solver, "n_iter": int(model.n_iter_), "fit_seconds": round(fit_s, 4),
        "params": {k: v for k, v in model.get_params().items() if _jsonable(v)},
        "train_accuracy": float(_accuracy(model, X_tr, y_tr)),
        "final_loss": float(model.history_["loss"][-1]) if model.history_["loss"] else None,
    }
    if len(y_te):
        from sklearn.metrics import confusion_matrix, log_loss

        proba = _predict_proba(model, X_te)
        pred = model.classes_[np.argmax(proba, axis=1)]
        metrics["test_accuracy"] = float(np.mean(pred == y_te))
        metrics["test_log_loss"] = float(log_loss(y_te, proba, labels=model.classes_))
        metrics["confusion_matrix"] = confusion_matrix(y_te, pred, labels=model.classes_).tolist()
        metrics["classes"] = [_py(c) for c in model.classes_]
        metrics["_test_proba"], metrics["_test_y"] = proba, y_te  # for the report only
    return metrics


def _write_report(folder: Path, model, metrics, solver, data_name) -> list[str]:
    from .plots import plot_confusion_matrix, plot_training_curves

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--report {folder}: cannot create the folder ({exc.strerror})") from None
    written = []
    test = None
    if "test_accuracy" in metrics:
        test = {"loss": metrics["test_log_loss"], "accuracy": metrics["test_accuracy"]}
    step = "L-BFGS iteration" if solver == "lbfgs" else f"epoch ({solver})"
    history = _history(model)
    plot_training_curves(history, folder / "training_curves.png",
                         title=f"SoftmaxRegression ({solver}) on {Path(data_name).name}",
                         xlabel=step, test=test)
    written.append(str(folder / "training_curves.png"))
    if "confusion_matrix" in metrics:
        plot_confusion_matrix(metrics["confusion_matrix"], model.classes_,
                              folder / "confusion_matrix.png",
                              title=f"test confusion matrix (accuracy {metrics['test_accuracy']:.4f})")
        written.append(str(folder / "confusion_matrix.png"))
    if "_test_proba" in metrics:
        # Is the softmax telling the truth? ECE and the reliability diagram of the
        # test split (docs/calibration.md).
        from .._calibration import calibration_report

        cal = calibration_report(metrics.pop("_test_proba"), metrics.pop("_test_y"),
                                 folder / "test", classes=model.classes_,
                                 title="reliability of the test split")
        metrics["test_ece"] = cal["ece"]
        metrics["calibration"] = cal
        written.append(str(cal["reliability_png"]))
    metrics["history"] = {k: [float(v) for v in vals] for k, vals in history.items()}
    with atomic_open(folder / "metrics.json", "w", encoding="utf-8") as fh:
        fh.write(json.dumps(metrics, indent=2) + "\n")
    written.append(str(folder / "metrics.json"))
    return written


def _history(model) -> dict[str, list[float]]:
    """The model's history with the eval_set's curves named as the test split's
    ("test_loss": log-loss, "test_accuracy"), one value per iteration/epoch."""
    names = {"eval_loss": "test_loss", "eval_accuracy": "test_accuracy"}
    return {names.get(k, k): list(v) for k, v in model.history_.items()}


def _option_message(msg: str) -> str:
    """scikit-learn's "The 'max_iter' parameter of ... must be X. Got Y instead." as
    "--epochs must be X, got Y"."""
    for param, option in _OPTIONS.items():
        if f"'{param}' parameter" in msg:
            value = msg.rsplit("Got ", 1)[-1].removesuffix(" instead.")
            expected = msg.split(" must be ", 1)[-1].split(". Got ")[0]
            return f"{option} must be {expected}, got {value}"
    return msg


def _cli_terms(text: str, standardize: bool) -> str:
    """A solver message in the command line's terms: "max_iter=100 iterations" as
    "100 iterations (--epochs)", "learning_rate" as "--learning-rate"."""
    text = re.sub(r"\bmax_iter=(\d+) (iterations|epochs)", r"\1 \2 (--epochs)", text)
    text = re.sub(r"\bmax_iter=(\d+)", r"--epochs \1", text)
    for param, option in _OPTIONS.items():
        text = re.sub(rf"\b{param}\b", option, text)
    text = text.replace("or standardise the features", "" if standardize else "or drop --no-standardize")
    text = re.sub(r"\s+([;,)])", r"\1", " ".join(text.split()))
    return text


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
