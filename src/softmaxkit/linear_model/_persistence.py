"""Saving and loading SoftmaxRegression as an ``.npz`` archive, without pickle.

Loading treats the file as untrusted: every member is read through its ``.npy``
header first (dtype and declared shape checked, object arrays refused) and only then
exactly the declared bytes are read, so a small file declaring 10^13 elements or a
member we do not know costs nothing; unknown members are never read. Every field
is validated (type, shape against the others, finite values, parameters through the
estimator's own constraints) and every failure is one :class:`ModelFileError`
naming the file and the field, including zlib/CRC errors of a damaged archive.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
import zlib
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ModelFileError", "save_model", "load_model", "FORMAT", "FORMAT_VERSION"]

FORMAT = "softmaxkit.SoftmaxRegression"
FORMAT_VERSION = 1

# Bounds on what a model file may make us read: one numeric array (coef at 1000
# classes x 2^18 features float64 is 2 GiB), and one JSON or string field.
_MAX_ARRAY_BYTES = 4 << 30
_MAX_TEXT_BYTES = 64 << 20


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
    target = Path(os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------- load


class _Reader:
    """Bounded, validated reads of the ``.npy`` members of one archive."""

    def __init__(self, path: Path, zf: zipfile.ZipFile):
        self.path, self.zf = path, zf
        self.names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}

    def fail(self, field: str | None, what: str) -> ModelFileError:
        where = f"field {field!r}: " if field else ""
        return ModelFileError(f"{self.path}: corrupt model file: {where}{what}")

    def array(self, field: str, kinds: str, ndim: int, shape: tuple | None = None,
              max_bytes: int = _MAX_ARRAY_BYTES) -> np.ndarray:
        if field not in self.names:
            raise self.fail(None, f"missing {field!r}")
        try:
            with self.zf.open(field + ".npy") as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    hshape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
                elif version in ((2, 0), (3, 0)):
                    hshape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise ValueError(f"unknown .npy version {version}")
                if dtype.hasobject:
                    raise self.fail(field, "an object array (would need pickle; refused)")
                if dtype.kind not in kinds:
                    raise self.fail(field, f"dtype {dtype} (expected kind {'/'.join(kinds)})")
                if len(hshape) != ndim or (shape is not None and tuple(hshape) != tuple(shape)):
                    want = shape if shape is not None else f"{ndim} dimension(s)"
                    raise self.fail(field, f"inconsistent shapes: {tuple(hshape)}, expected {want}")
                count = int(np.prod(hshape, dtype=np.int64)) if hshape else 1
                nbytes = count * dtype.itemsize
                if count < 0 or nbytes > max_bytes:
                    raise self.fail(field, f"declares {nbytes} bytes (limit {max_bytes})")
                data = fp.read(nbytes)
        except ModelFileError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError) as exc:
            raise self.fail(field, f"unreadable ({exc})") from None
        if len(data) != nbytes:
            raise self.fail(field, f"truncated ({len(data)} of {nbytes} bytes)")
        arr = np.frombuffer(data, dtype=dtype).reshape(hshape, order="F" if fortran else "C")
        return arr.astype(dtype.newbyteorder("="), copy=True) if dtype.byteorder not in "=|" else arr.copy()

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
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(f"{p}: not a readable softmaxkit model file ({exc})") from None
    with zf:
        r = _Reader(p, zf)
        if "format" not in r.names:
            raise ModelFileError(
                f"{p}: not a softmaxkit model file (no '{FORMAT}' format tag; "
                f"found arrays {sorted(r.names)[:8]})"
            )
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

