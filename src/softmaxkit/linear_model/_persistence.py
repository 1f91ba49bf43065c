"""Saving and loading SoftmaxRegression as an ``.npz`` archive, without pickle.

Loading treats the file as untrusted. The archive is read by the package's one
bounded reader, :func:`softmaxkit._io.read_npz`: the format tag first, then only
the fields we know (unknown members are never inflated), each member's ``.npy``
header and declared sizes checked before its data is read, object arrays refused.
Every field is then validated (kind, shape against the others, finite values,
parameters through the estimator's own constraints), and every failure is one
:class:`ModelFileError` naming the file and the field (or, for an archive that
cannot be read at all, zlib/CRC errors included, the member).
"""
from __future__ import annotations

import json
import zipfile
import zlib
import os
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, read_npz

__all__ = ["ModelFileError", "save_model", "load_model", "FORMAT", "FORMAT_VERSION"]

FORMAT = "softmaxkit.SoftmaxRegression"
FORMAT_VERSION = 1

# Bounds on what a model file may make us read: all its fields together (coef at
# 1000 classes x 2^18 features float64 is 2 GiB), and one JSON or string field.
_MAX_ARRAY_BYTES = 4 << 30
_MAX_TEXT_BYTES = 64 << 20
_WHAT = "a softmaxkit model file"
_FIELDS = ("format", "format_version", "classes", "classes_kind", "coef", "intercept", "n_iter",
           "params_json", "metadata_json", "history_json", "mean", "scale", "feature_names_in")


class ModelFileError(ValueError):
    """A model file that cannot be read; the message names the file (and the field)."""


# ---------------------------------------------------------------------------- save


def save_model(est: Any, path: Any, metadata: dict | None = None) -> None:
    """Write a fitted estimator to ``path`` atomically (temporary file + rename)."""
    classes = np.asarray(est.classes_)
    if classes.dtype.kind in "biufU":
        kind, stored = "array", classes
    elif classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
        kind, stored = "object-str", classes.astype(str)
    else:
        raise ValueError(
            f"cannot save classes of dtype {classes.dtype} without pickle; use numbers or strings"
        )
    params = est.get_params()
    if isinstance(params["class_weight"], dict):
        params["class_weight"] = {
            "__pairs__": [[_plain(k), float(v)] for k, v in params["class_weight"].items()]
        }
    if not (params["random_state"] is None or isinstance(params["random_state"], Integral)):
        params["random_state"] = None
    if "dtype" in params:
        params["dtype"] = np.dtype(params["dtype"]).name
    try:
        meta_json = json.dumps(metadata or {})
        params_json = json.dumps(params, default=_py)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata and parameters must be JSON-serialisable: {exc}") from None
    history = {k: [float(v) for v in vals] for k, vals in getattr(est, "history_", {}).items()}
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "classes": stored,
        "classes_kind": np.array(kind),
        "coef": est.coef_,
        "intercept": est.intercept_,
        "n_iter": np.array(est.n_iter_),
        "params_json": np.array(params_json),
        "metadata_json": np.array(meta_json),
        "history_json": np.array(json.dumps(history)),
    }
    if getattr(est, "mean_", None) is not None:
        arrays["mean"], arrays["scale"] = est.mean_, est.scale_
    if hasattr(est, "feature_names_in_"):
        arrays["feature_names_in"] = np.asarray(est.feature_names_in_, dtype=str)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # an old file survives a failure
        np.savez_compressed(fh, **arrays)


# ---------------------------------------------------------------------------- load


class _Reader:
    """Validated fields of one archive, read by :func:`softmaxkit._io.read_npz`."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray]):
        self.path, self.arrays = path, arrays
        self.names = set(arrays)

    def fail(self, field: str | None, what: str) -> ModelFileError:
        where = f"field {field!r}: " if field else ""
        return ModelFileError(f"{self.path}: corrupt model file: {where}{what}")

    def array(self, field: str, kinds: str, ndim: int, shape: tuple | None = None,
              max_bytes: int = _MAX_ARRAY_BYTES) -> np.ndarray:
        if field not in self.arrays:
            raise self.fail(None, f"missing {field!r}")
        arr = self.arrays[field]
        if arr.dtype.kind not in kinds:
            raise self.fail(field, f"dtype {arr.dtype} (expected kind {'/'.join(kinds)})")
        if arr.ndim != ndim or (shape is not None and arr.shape != tuple(shape)):
            want = shape if shape is not None else f"{ndim} dimension(s)"
            raise self.fail(field, f"inconsistent shapes: {arr.shape}, expected {want}")
        if arr.nbytes > max_bytes:
            raise self.fail(field, f"holds {arr.nbytes} bytes (limit {max_bytes})")
        return arr.astype(arr.dtype.newbyteorder("="), copy=False) if not arr.dtype.isnative else arr

    def text(self, field: str, default: str | None = None) -> str:
        if default is not None and field not in self.names:
            return default
        return str(self.array(field, "U", 0, max_bytes=_MAX_TEXT_BYTES)[()])

    def json(self, field: str, default: str, kind: type) -> Any:
        try:
            value = json.loads(self.text(field, default))
        except json.JSONDecodeError as exc:
            raise self.fail(field, f"bad JSON ({exc})") from None
        if not isinstance(value, kind):
            raise self.fail(field, f"JSON {type(value).__name__}, expected {kind.__name__}")
        return value

    def floats(self, field: str, shape: tuple, what: str, *, positive: bool = False) -> np.ndarray:
        arr = self.array(field, "fi", len(shape), shape).astype(np.float64)
        if not np.isfinite(arr).all():
            raise self.fail(field, f"non-finite {what}")
        if positive and not (arr > 0).all():
            raise self.fail(field, f"{what}: values must be > 0")
        return arr


def load_model(cls: type, path: Any) -> Any:
    """Read and validate a model written by :func:`save_model`; see the module docstring."""
    p = Path(os.fspath(path))
    try:  # the tag first: a foreign archive's other members are never read
        tag = read_npz(p, ["format"], max_bytes=_MAX_TEXT_BYTES, what=_WHAT)
        arrays = read_npz(p, _FIELDS, max_bytes=_MAX_ARRAY_BYTES, what=_WHAT) if tag else {}
    except FileNotFoundError:
        raise
    # read_npz reports what it finds as ValueError; a flipped compression-method byte
    # can still surface from zipfile's other decompressors (OSError "Invalid data
    # stream" from lzma/bz2, EOFError, NotImplementedError), so those are caught too
    except (ValueError, OSError, EOFError, NotImplementedError, RuntimeError, zlib.error,
            zipfile.BadZipFile) as exc:
        msg = str(exc)
        msg = msg[len(f"{p}: "):] if msg.startswith(f"{p}: ") else msg
        raise ModelFileError(f"{p}: not a readable softmaxkit model file ({msg})") from None
    r = _Reader(p, arrays)
    if "format" not in r.names:
        raise ModelFileError(f"{p}: not a softmaxkit model file (no '{FORMAT}' format tag)")
    if r.text("format") != FORMAT:
        raise ModelFileError(f"{p}: not a softmaxkit model file (format tag is not '{FORMAT}')")
    version = int(r.array("format_version", "iu", 0)[()])
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{p}: model format version {version} is newer than this softmaxkit reads "
            f"({FORMAT_VERSION}); upgrade softmaxkit"
        )
    if version < 1:
        raise r.fail("format_version", f"{version} (expected 1)")
    for key in ("classes", "classes_kind", "coef", "intercept", "params_json", "n_iter"):
        if key not in r.names:
            raise r.fail(None, f"missing {key!r}")
    kind = r.text("classes_kind")
    if kind not in ("array", "object-str"):
        raise r.fail("classes_kind", f"{kind!r} (expected 'array' or 'object-str')")
    classes = r.array("classes", "U" if kind == "object-str" else "biufU", 1)
    k = classes.shape[0]
    if k < 2 or np.unique(classes).size != k:
        raise r.fail("classes", f"needs at least 2 distinct classes, got {classes.tolist()[:10]}")
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        raise r.fail("classes", "non-finite class labels")
    if kind == "object-str":
        classes = classes.astype(object)
    coef = r.array("coef", "fi", 2)
    if coef.shape[0] != k:
        raise ModelFileError(
            f"{p}: corrupt model file: inconsistent shapes (classes {classes.shape}, "
            f"coef {coef.shape})"
        )
    d = coef.shape[1]
    coef = r.floats("coef", (k, d), "coefficients")
    intercept = r.floats("intercept", (k,), "coefficients")
    n_iter = int(r.array("n_iter", "iu", 0)[()])
    if n_iter < 0:
        raise r.fail("n_iter", f"{n_iter} < 0")
    params = r.json("params_json", "{}", dict)
    metadata = r.json("metadata_json", "{}", dict)
    history = r.json("history_json", "{}", dict)
    if not all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
               for v in history.values()):
        raise r.fail("history_json", "expected lists of numbers")
    valid = cls().get_params()
    kwargs = {key: val for key, val in params.items() if key in valid}
    if kwargs.get("dtype") in ("float64", "float32"):
        kwargs["dtype"] = np.dtype(kwargs["dtype"]).type
    cw = kwargs.get("class_weight")
    if isinstance(cw, dict) and "__pairs__" in cw:
        try:
            kwargs["class_weight"] = {key: val for key, val in cw["__pairs__"]}
        except (TypeError, ValueError):
            raise r.fail("params_json", "bad class_weight pairs") from None
    try:
        model = cls(**kwargs)
        model._validate_params()
    except (TypeError, ValueError) as exc:
        raise r.fail("params_json", str(exc)) from None
    has_std = "mean" in r.names or "scale" in r.names
    if has_std != bool(model.standardize):
        raise r.fail("mean" if model.standardize else "params_json",
                     f"standardize={model.standardize} but mean/scale "
                     f"{'missing' if model.standardize else 'present'}")
    if has_std:
        model.mean_ = r.floats("mean", (d,), "bad standardisation arrays")
        model.scale_ = r.floats("scale", (d,), "bad standardisation arrays", positive=True)
    if "feature_names_in" in r.names:
        model.feature_names_in_ = r.array("feature_names_in", "U", 1, (d,)).astype(object)
    model.classes_ = classes
    model.coef_ = coef
    model.intercept_ = intercept
    model.n_features_in_ = d
    model.n_iter_ = n_iter
    model.history_ = {key: [float(x) for x in vals] for key, vals in history.items()}
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

