"""The predict workflow of ``softmaxkit predict``, as a plain function.

:func:`predict` loads a model saved by ``softmaxkit train``, reads the data (a CSV is
matched to the model's feature columns by name), writes one CSV row per sample
(prediction, then ``p_<class>`` per class) to stdout or atomically to a file, and
reports the accuracy on stderr when the data has labels, saying which rows were
measured.
"""
from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import numpy as np

from .. import _softmax as smk
from .._io import atomic_open, check_npz, refuse_overwrite, same_file

__all__ = ["predict", "load_model", "PredictResult"]

_MODEL_FORMAT_MEMBER = "format"  # every softmaxkit model file holds it


@dataclass
class PredictResult:
    """What :func:`predict` computed: ``pred`` (n,), ``proba`` (n, K), ``accuracy``
    (None without labels) and the model."""

    pred: np.ndarray
    proba: np.ndarray
    accuracy: float | None
    model: Any


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model file, refusing anything else in one clear error.

    The archive's headers and sizes are checked first (:func:`~softmaxkit._io.check_npz`),
    so a hostile or corrupt file costs no more than its headers; then
    ``SoftmaxRegression.load`` reads it.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        "--model PATH: not a softmaxkit model file (...)", or a corrupt model.
    """
    from ..linear_model import SoftmaxRegression

    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"--model {p}: no such file")
    try:
        members = check_npz(p, what="a softmaxkit model file")
    except ValueError as exc:
        msg = str(exc)
        if "not a softmaxkit model file" in msg:
            raise ValueError(f"--model {msg}") from None
        raise ValueError(f"--model {p}: not a readable softmaxkit model file ({_after(msg, p)})") from None
    if _MODEL_FORMAT_MEMBER not in members:
        raise ValueError(f"--model {p}: not a softmaxkit model file (an .npz archive holding "
                         f"{', '.join(sorted(members)[:6]) or 'nothing'})")
    try:
        return SoftmaxRegression.load(p)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        # SoftmaxRegression.load names the file in its own ValueErrors; anything else
        # is a field of the wrong type
        msg = _after(" ".join(str(exc).split()), p)
        raise ValueError(f"--model {p}: not a readable softmaxkit model file ({msg})") from None


def _after(msg: str, p: Path) -> str:
    """``msg`` without a leading "<path>: "."""
    prefix = f"{p}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def predict(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    label_column: str | None = None,
    labels: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    stdout: TextIO | None = None,
    log: Callable[[str], None] | None = None,
) -> PredictResult:
    """Predict with a saved model; write the CSV; report accuracy when labelled.

    Parameters
    ----------
    model : path
        A model file from ``softmaxkit train`` (``SoftmaxRegression.save``).
    data : "digits" or path
        The rows to predict. A CSV is matched to the model's feature columns by name
        when the model has them (any order; extra columns are ignored; a missing one
        is an error naming it), else by position.
    label_column, labels
        CSV label column (default: the training one); IDX labels file.
    output : path, optional
        Write the CSV here (atomically; never over an input) instead of ``stdout``.
    stdout : text stream, optional
        Where the CSV goes without ``output`` (default ``sys.stdout``).
    log : callable, optional
        Where the summary lines go (default: stderr).

    Returns
    -------
    PredictResult
    """
    stdout = sys.stdout if stdout is None else stdout
    if log is None:
        def log(msg: str) -> None:
            print(msg, file=sys.stderr)

    named = {"--model": model, "--data": None if os.fspath(data) == "digits" else data,
             "--labels": labels}
    refuse_overwrite({"--output": output}, named)  # before reading anything
    m = load_model(model)
    meta = getattr(m, "metadata_", {}) or {}
    ds = _load_rows(m, meta, data, label_column, labels)
    inputs = {"--model": model}
    inputs.update({("--data" if i == 0 else "--labels"): f for i, f in enumerate(ds.files)})
    refuse_overwrite({"--output": output}, inputs)
    if ds.X.shape[1] != m.n_features_in_:
        raise ValueError(f"{ds.name}: has {ds.X.shape[1]} features, the model expects {m.n_features_in_}")
    proba = np.concatenate([_calibrated_proba(m, meta, block, model) for block in _row_blocks(ds.X)])
    if not np.isfinite(proba).all():  # finite rows in, so the model's numbers are bad
        raise ValueError(f"--model {os.fspath(model)}: the model gives non-finite probabilities "
                         "(corrupt coefficients or standardisation)")
    pred = m.classes_[np.argmax(proba, axis=1)]
    if output is not None:
        with atomic_open(output, "w", newline="") as fh:
            _write_csv(fh, m.classes_, pred, proba)
        log(f"{len(pred)} predictions written to {os.fspath(output)}")
    else:
        _write_csv(stdout, m.classes_, pred, proba)
    accuracy = None
    if ds.y is not None:
        y = np.asarray(ds.y)
        if y.dtype.kind != m.classes_.dtype.kind and m.classes_.dtype.kind in "USO":
            y = y.astype(str)
        accuracy = float(np.mean(pred == y))
        log(f"accuracy {accuracy:.4f} on {_which_rows(meta, ds, len(y))}")
    return PredictResult(pred=pred, proba=proba, accuracy=accuracy, model=m)


def _which_rows(meta: dict, ds: Any, n: int) -> str:
    """Which rows the accuracy was measured on, said plainly."""
    trained_on = meta.get("data")
    same = trained_on is not None and (
        trained_on == ds.name or (ds.files and Path(trained_on).exists()
                                  and same_file(trained_on, ds.files[0])))
    if not same:
        return f"{n} labelled rows"
    n_train = meta.get("n_train")
    seen = f"the {n_train} it was trained on" if n_train else "those it was trained on"
    text = f"all {n} labelled rows of {Path(ds.name).name}, including {seen}"
    if meta.get("test_accuracy") is not None:
        text += f" (its held-out test accuracy at training: {meta['test_accuracy']:.4f})"
    return text


def _calibrated_proba(m: Any, meta: dict, X: np.ndarray, model: Any) -> np.ndarray:
    """predict_proba, or with a calibration that ``softmaxkit calibrate`` stored in the
    model's metadata: ``softmax(log_proba * scale + bias)`` (one scale, 1/T, for
    temperature scaling; per class for vector scaling)."""
    cal = meta.get("calibration")
    if not cal:
        return m.predict_proba(X)
    k = m.classes_.size
    try:
        scale = np.asarray(cal["scale"], dtype=np.float64).reshape(-1)
        bias = np.asarray(cal["bias"], dtype=np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"--model {os.fspath(model)}: its calibration metadata is not "
                         "valid (scale and bias)") from None
    if scale.size not in (1, k) or bias.size not in (1, k) \
            or not (np.isfinite(scale).all() and np.isfinite(bias).all()):
        raise ValueError(f"--model {os.fspath(model)}: its calibration metadata is not valid "
                         f"(scale and bias must be {k} or 1 finite numbers)")
    return np.asarray(smk.softmax(m.predict_log_proba(X) * scale + bias))


def _row_blocks(X: Any, block_bytes: int = 8 << 20) -> Iterator[np.ndarray]:
    """X in blocks of rows (about ``block_bytes`` of float64 features each): a
    memory-mapped .npy file is read block by block into one buffer (NpyRows: the map
    is never touched, so its pages do not pile up in resident memory), an array in
    memory is sliced. The model's checks and standardisation then copy one block, not
    all of X."""
    from ..linear_model._chunks import as_row_source

    n, d = X.shape
    rows = max(1, block_bytes // (8 * d))
    src = as_row_source(X)
    if src is not None:
        for _, _, block in src.blocks(rows):
            yield block
        return
    for s in range(0, n, rows):
        yield X[s:s + rows]


def _write_csv(fh: TextIO, classes: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> None:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(["prediction"] + [f"p_{c}" for c in classes])
    for c, row in zip(pred, proba):
        w.writerow([c] + [f"{v:.6g}" for v in row])


def _load_rows(m: Any, meta: dict, src: str | os.PathLike[str], label_column: str | None,
               labels: str | os.PathLike[str] | None) -> Any:
    from .. import datasets

    n_features = m.n_features_in_
    name = os.fspath(src)
    is_csv = name != "digits" and Path(name).name.lower().endswith((".csv", ".csv.gz"))
    if not is_csv or not Path(name).exists():
        return datasets.load(src, label_column=label_column, labels=labels, require_labels=False)
    header = datasets.csv_header(src)
    names = meta.get("feature_names") or None
    label = label_column or meta.get("label_column")
    if label_column is not None and label_column not in header:
        raise ValueError(f"{name}: missing label column {label_column!r} (columns: {', '.join(header)})")
    if names and any(n in header for n in names):
        missing = [n for n in names if n not in header]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ValueError(f"{name}: missing feature column {missing[0]}{more} "
                             f"(the model needs {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
        return datasets.load_csv(src, label if label in header else None, feature_columns=names,
                                 require_labels=False)
    # no names in common: by position
    if len(header) == n_features:
        return datasets.load_csv(src, None, feature_columns=header, require_labels=False)
    if len(header) == n_features + 1:
        return datasets.load_csv(src, label if label in header else header[-1], require_labels=True)
    raise ValueError(
        f"{name}: has {len(header)} columns, the model expects {n_features} feature columns"
        + (f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else "")
    )
