"""Data sets and file readers for softmax regression.

Every loader returns a :class:`Dataset`: the feature matrix ``X`` (float64, shape
``(n_samples, n_features)``), the labels ``y`` (shape ``(n_samples,)``, or None when
the file holds no labels), and the feature names when the file has them. A Dataset
unpacks like a pair, so ``X, y = load_csv("iris.csv")`` works.

Formats
-------
* ``load_digits()``: scikit-learn's bundled copy of the UCI handwritten digits
  (1797 images of 8 x 8 pixels, values 0..16, classes 0..9). No download.
* ``.npz``: NumPy archive with an array ``X`` (2-D, numeric) and, optionally, ``y``.
  Only those two members are read, never pickles, and only after their headers and
  sizes were checked (:func:`softmaxkit._io.read_npz`).
* ``.npy``: a 2-D feature array, memory-mapped (:func:`load_npy`; never read whole),
  with a 1-D ``.npy`` label file: data larger than memory, for
  ``softmaxkit train --data X.npy --labels y.npy``.
* ``.csv``: a header row of column names, then one row per sample; the label column
  is chosen by name (default: the last column). Feature cells must be finite numbers.
* IDX (MNIST, Fashion-MNIST): ``*-images-idx3-ubyte`` with its
  ``*-labels-idx1-ubyte``, raw or gzip-compressed (``.gz``, detected from the
  content). :func:`load_idx` reads any single IDX file into an array; the header is
  checked before the data is read, and the data is streamed into an array of the
  declared size.

Malformed files raise ``ValueError`` with the file name and what is wrong (a ragged
row, a non-numeric or non-finite cell with its line and column, a missing label
column, a bad IDX magic number, a size the data cannot have, ...). Features must be
finite: NaN and infinity are refused (naming the row and column), since a model fed
NaN predicts NaN. A missing file raises ``FileNotFoundError``.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

import numpy as np

from ._io import DEFLATE_MAX_RATIO, default_max_bytes, open_bounded, read_npz

__all__ = [
    "Dataset",
    "load",
    "load_digits",
    "load_npz",
    "load_npy",
    "load_csv",
    "load_idx",
    "load_mnist",
    "csv_header",
]


@dataclass(frozen=True)
class Dataset:
    """Features, labels and names read from one source.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        The features.
    y : ndarray of shape (n_samples,) or None
        The labels (ints, or strings for text labels); None when the source has none.
    feature_names : list of str or None
        Column names, when the source has them (CSV).
    target_name : str or None
        Name of the label column (CSV), when there is one.
    name : str
        Where the data came from ("digits" or the file path).
    files : tuple of str
        Every file read (an IDX image file and its labels file, say): the command
        line never writes over them.

    Notes
    -----
    Iterating gives ``X`` and ``y``, so a Dataset unpacks as ``X, y = dataset``.
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: list[str] | None = None
    target_name: str | None = None
    name: str = ""
    files: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[np.ndarray | None]:
        return iter((self.X, self.y))

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]


def _existing(path: PathLike) -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, expected a data file")
    return p


# ---------------------------------------------------------------------------- digits


def load_digits() -> Dataset:
    """The handwritten digits bundled with scikit-learn (no download).

    Returns
    -------
    Dataset
        ``X`` of shape (1797, 64), float64 pixel intensities 0..16; ``y`` int64
        digits 0..9; ``feature_names`` ``pixel_0_0`` ... ``pixel_7_7``.

    Examples
    --------
    >>> from softmaxkit import datasets
    >>> X, y = datasets.load_digits()
    >>> X.shape, sorted(set(y.tolist())) == list(range(10))
    ((1797, 64), True)
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    return Dataset(
        X=np.asarray(bunch.data, dtype=np.float64),
        y=np.asarray(bunch.target, dtype=np.int64),
        feature_names=list(bunch.feature_names),
        target_name="digit",
        name="digits",
    )


# ---------------------------------------------------------------------------- npz


def load_npz(path: PathLike, *, require_labels: bool = True) -> Dataset:
    """Read a NumPy ``.npz`` archive holding ``X`` and ``y``.

    Parameters
    ----------
    path : str or path-like
        The archive. Read with ``allow_pickle=False``: object arrays are refused.
    require_labels : bool, default True
        When False, an archive without ``y`` is accepted and ``y`` is None.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Not an ``.npz`` archive, no ``X`` (or no ``y`` when required), ``X`` not a
        numeric 2-D array, ``y`` not 1-D, or their lengths differ.
    """
    p = _existing(path)
    arrays = read_npz(p, ["X", "y"], required=["X"])
    X = arrays["X"]
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{p}: X must be numeric, got dtype {X.dtype}")
    if X.ndim == 0:
        raise ValueError(f"{p}: X must be an array of samples, got a scalar")
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim > 2:  # images: flatten each sample
        X = X.reshape(X.shape[0], -1)
    X = _as_float64(X, p)
    _check_finite(X, p)
    y = arrays.get("y")
    if y is None:
        if require_labels:
            raise ValueError(f"{p}: no array named 'y' (found {sorted(arrays)}); labels are needed")
    else:
        if y.ndim != 1:
            raise ValueError(f"{p}: y must be 1-D (one label per row of X), got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"{p}: X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    return Dataset(X=X, y=y, name=str(p), files=(str(p),))


def load_npy(path: PathLike, labels: PathLike | None = None, *,
             require_labels: bool = True, check_finite: bool = True) -> Dataset:
    """A 2-D ``.npy`` feature file, memory-mapped and never read here, with its labels
    from a 1-D ``.npy`` file.

    Parameters
    ----------
    path : str or path-like
        The features: a 2-D C-ordered array of real numbers (any int/float dtype).
    labels : str or path-like, optional
        A 1-D ``.npy`` array with one label per row (ints or strings; no pickles).
    require_labels : bool, default True
        When False and ``labels`` is None, ``y`` is None.
    check_finite : bool, default True
        Read a float file once, 16 MiB at a time with ``os.preadv`` (never through
        the map), and refuse a NaN or infinity naming its row and column. Integer
        files need no pass.

    Returns
    -------
    Dataset
        ``X`` is a read-only ``np.memmap`` in the file's dtype, untouched. Do not
        touch the map whole: every page read through a map stays resident in the
        process; :class:`~softmaxkit.linear_model.NpyRows` reads blocks with
        ``os.preadv`` instead (``SoftmaxRegression.fit`` does).

    Raises
    ------
    ValueError
        Not a ``.npy`` array, not 2-D, not real numbers, Fortran order, no rows or
        columns, a non-finite value; labels not 1-D, of another length, or too large.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from softmaxkit import datasets
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "X.npy"), np.eye(3)); np.save(os.path.join(d, "y.npy"), [0, 1, 1])
    >>> ds = datasets.load_npy(os.path.join(d, "X.npy"), os.path.join(d, "y.npy"))
    >>> ds.X.shape, type(ds.X).__name__, ds.y.tolist()
    ((3, 3), 'memmap', [0, 1, 1])
    """
    p = _existing(path)
    shape, fortran, dtype = _npy_header(p)
    if len(shape) != 2:
        raise ValueError(f"{p}: expected a 2-D array (rows x features), got shape {shape}")
    if dtype.kind not in "fiu":
        raise ValueError(f"{p}: expected real numbers, got dtype {dtype}")
    if fortran:
        raise ValueError(f"{p}: a Fortran-ordered array; save it in C order (np.ascontiguousarray)")
    if 0 in shape:
        raise ValueError(f"{p}: no data (shape {shape})")
    try:
        X = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{p}: not a readable .npy array ({' '.join(str(exc).split())})") from None
    if check_finite and dtype.kind == "f":
        _check_finite_file(p, X)
    y = None
    if labels is not None:
        pl = _existing(labels)
        lshape, _, ldtype = _npy_header(pl)
        if len(lshape) != 1:
            raise ValueError(f"{pl}: labels must be a 1-D array (one per row of {p.name}), "
                             f"got shape {lshape}")
        if lshape[0] != shape[0]:
            raise ValueError(f"{pl}: has {lshape[0]} labels but {p} has {shape[0]} rows")
        if lshape[0] * ldtype.itemsize > default_max_bytes():
            raise ValueError(f"{pl}: {lshape[0] * ldtype.itemsize} bytes of labels, more than the "
                             f"{default_max_bytes()}-byte limit")
        if ldtype.kind not in "biufUS":
            raise ValueError(f"{pl}: labels must be numbers or strings, got dtype {ldtype}")
        y = np.load(pl, allow_pickle=False)
    elif require_labels:
        raise ValueError(f"{p}: a .npy file holds only the features; pass the labels as a 1-D "
                         ".npy file (--labels y.npy)")
    files = (str(p),) + (() if labels is None else (str(_existing(labels)),))
    return Dataset(X=X, y=y, name=str(p), files=files)


def _check_finite_file(p: Path, X: np.memmap, block_bytes: int = 16 << 20) -> None:
    """:func:`_check_finite` over a mapped file, read block by block with ``os.preadv``
    into one buffer (the map itself is never touched)."""
    n, d = X.shape
    rows = max(1, block_bytes // (d * X.dtype.itemsize))
    buf = np.empty((min(rows, n), d), dtype=X.dtype)
    fd = os.open(p, os.O_RDONLY)
    try:
        for start in range(0, n, rows):
            view = buf[: min(rows, n - start)]
            raw = memoryview(view.reshape(-1).view(np.uint8))
            pos = 0
            while pos < len(raw):
                got = os.preadv(fd, [raw[pos:]], X.offset + start * d * X.dtype.itemsize + pos)
                if got <= 0:
                    raise ValueError(f"{p}: file ended while reading row {start}")
                pos += got
            if not np.isfinite(view).all():
                bad = ~np.isfinite(view)
                i, j = (int(v) for v in np.argwhere(bad)[0])
                raise ValueError(f"{p}: row {start + i}, column {j}: non-finite value "
                                 f"{float(view[i, j])} (features must be finite numbers)")
    finally:
        os.close(fd)


def _npy_header(p: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) from a ``.npy`` header, nothing else read."""
    import numpy.lib.format as npy_format

    with open(p, "rb") as fh:
        try:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = npy_format.read_array_header_2_0(fh)
        except ValueError as exc:
            raise ValueError(f"{p}: not a .npy array ({' '.join(str(exc).split())})") from None
    if dtype.hasobject:
        raise ValueError(f"{p}: holds Python objects (pickle), which are never read")
    return tuple(int(v) for v in shape), bool(fortran), dtype


def _as_float64(X: np.ndarray, p: Path) -> np.ndarray:
    """``X`` as C-contiguous float64, refused when that would exceed the memory bound
    (uint8 pixels take eight times their stored size)."""
    limit = default_max_bytes()
    if X.size * 8 > limit and X.dtype != np.float64:
        raise ValueError(f"{p}: X of shape {X.shape} needs {X.size * 8} bytes as float64, more "
                         f"than the {limit}-byte limit (half this machine's memory)")
    return np.ascontiguousarray(X, dtype=np.float64)


def _check_finite(X: np.ndarray, p: Path, *, lines: Sequence[int] | None = None,
                  columns: Sequence[str] | None = None) -> None:
    """Refuse NaN and infinite features, naming the first one's row (or file line)
    and column."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    i, j = (int(v) for v in np.argwhere(bad)[0])
    where = f"line {lines[i]}" if lines is not None else f"row {i}"
    col = f"column {columns[j]!r}" if columns is not None else f"column {j}"
    raise ValueError(
        f"{p}: {where}, {col}: non-finite value {float(X[i, j])} ({int(bad.sum())} in all; "
        "features must be finite numbers)"
    )


# ---------------------------------------------------------------------------- csv


def csv_max_bytes() -> int:
    """The most bytes of CSV text (inflated, for ``.csv.gz``) one read may take:
    1/64 of :func:`softmaxkit._io.default_max_bytes` (half the machine's memory),
    since parsed cells cost up to about 40 times their text (rows of one-digit cells
    as Python strings); larger data belongs in a ``.npy`` file."""
    return default_max_bytes() // 64


def _read_csv_rows(p: Path, max_bytes: int | None = None, *, header_only: bool = False
                   ) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and each data row's line number, checked for a header and
    equal lengths (blank lines are skipped). The header is checked as soon as it is
    read; the text (inflated) is bounded by ``max_bytes`` (default
    :func:`csv_max_bytes`)."""
    rows: list[list[str]] = []
    lines: list[int] = []
    limit = csv_max_bytes() if max_bytes is None else int(max_bytes)
    try:
        with io.TextIOWrapper(open_bounded(p, limit), newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            start = 1
            for row in reader:
                if row and any(c.strip() for c in row):
                    if not rows:
                        _check_csv_header(p, row)
                    rows.append(row)
                    lines.append(start)
                    if header_only:
                        break
                start = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p}: not a text CSV file ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError, zlib.error, csv.Error) as exc:
        raise ValueError(f"{p}: cannot read as CSV ({exc})") from None
    if not rows:
        raise ValueError(f"{p}: empty file, expected a header row and data rows")
    header = [c.strip() for c in rows[0]]
    if header_only:
        return header, [], []
    data, lines = rows[1:], lines[1:]
    if not data:
        raise ValueError(f"{p}: no data rows after the header")
    for row, line in zip(data, lines):
        if len(row) != len(header):
            raise ValueError(
                f"{p}: ragged rows: line {line} has {len(row)} fields, the header has {len(header)}"
            )
    return header, data, lines


def _check_csv_header(p: Path, first_row: list[str]) -> None:
    header = [c.strip() for c in first_row]
    for name in header:
        if not name:
            raise ValueError(f"{p}: bad header: empty column name in {first_row!r}")
        if _is_number(name):
            raise ValueError(
                f"{p}: bad header: the first row must hold column names, got the number {name!r}"
            )
    dup = sorted({n for n in header if header.count(n) > 1})
    if dup:
        raise ValueError(f"{p}: bad header: repeated column name(s) {dup}")


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def csv_header(path: PathLike) -> list[str]:
    """The column names of a CSV file (its first row), checked as :func:`load_csv` does."""
    return _read_csv_rows(_existing(path))[0]


def _labels_from_strings(values: list[str]) -> np.ndarray:
    """Labels as int64 when every one is an integer, else as strings."""
    stripped = [v.strip() for v in values]
    try:
        as_float = [float(v) for v in stripped]
    except ValueError:
        return np.array(stripped, dtype=str)
    if all(math.isfinite(f) and f == int(f) for f in as_float):
        return np.array([int(f) for f in as_float], dtype=np.int64)
    return np.array(stripped, dtype=str)


def load_csv(
    path: PathLike,
    label_column: str | None = None,
    *,
    feature_columns: Sequence[str] | None = None,
    require_labels: bool = True,
    max_bytes: int | None = None,
) -> Dataset:
    """Read a CSV file with a header row: numeric features and one label column.

    Parameters
    ----------
    path : str or path-like
        The file (may be gzip-compressed).
    label_column : str, optional
        Name of the label column. Default: the last column. Labels that are all
        integers become int64, anything else stays text.
    feature_columns : sequence of str, optional
        The feature columns, in this order. Default: every column but the label.
    require_labels : bool, default True
        When False, the file need not have a label column: if ``label_column`` is
        given and present it is read as labels, otherwise ``y`` is None and every
        column is a feature (or only ``feature_columns`` when given).
    max_bytes : int, optional
        The most bytes of text read (inflated, for a gzip-compressed file); default
        :func:`csv_max_bytes`, 1/64 of half the machine's memory. The header is
        checked first; a larger file, or a gzip stream inflating past the limit (a
        "gzip bomb"), is refused with one ValueError naming the file, having read at
        most the limit.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Empty file, bad header (empty, numeric or repeated names), ragged rows,
        a missing label or feature column, or a non-numeric feature cell (the line
        and column are named).

    Examples
    --------
    >>> import tempfile, os
    >>> from softmaxkit import datasets
    >>> d = tempfile.mkdtemp(); f = os.path.join(d, "toy.csv")
    >>> _ = open(f, "w").write("a,b,label\\n1,2,cat\\n3,4,dog\\n")
    >>> X, y = datasets.load_csv(f)
    >>> X.tolist(), y.tolist()
    ([[1.0, 2.0], [3.0, 4.0]], ['cat', 'dog'])
    """
    p = _existing(path)
    header, data, lines = _read_csv_rows(p, max_bytes)
    if label_column is not None and not isinstance(label_column, str):
        raise TypeError(f"label_column must be a column name (str), got {label_column!r}")
    if label_column is None:
        label = header[-1] if require_labels else None
    elif label_column in header:
        label = label_column
    elif require_labels:
        raise ValueError(
            f"{p}: missing label column {label_column!r} (columns: {', '.join(header)})"
        )
    else:
        label = None
    if feature_columns is None:
        features = [h for h in header if h != label]
    else:
        features = list(feature_columns)
        missing = [f for f in features if f not in header]
        if missing:
            raise ValueError(f"{p}: missing feature column(s) {missing} (columns: {', '.join(header)})")
    if not features:
        raise ValueError(f"{p}: no feature columns besides the label column {label!r}")
    idx = [header.index(f) for f in features]
    X = np.empty((len(data), len(idx)), dtype=np.float64)
    for i, row in enumerate(data):
        for j, k in enumerate(idx):
            cell = row[k].strip()
            try:
                X[i, j] = float(cell)
            except ValueError:
                what = "empty cell" if not cell else f"non-numeric value {cell!r}"
                raise ValueError(
                    f"{p}: line {lines[i]}, column {header[k]!r}: {what} (features must be numbers)"
                ) from None
    _check_finite(X, p, lines=lines, columns=features)
    y = None
    if label is not None:
        k = header.index(label)
        values = [row[k] for row in data]
        empty = [i for i, v in enumerate(values) if not v.strip()]
        if empty:
            raise ValueError(f"{p}: line {lines[empty[0]]}, label column {label!r}: empty label")
        y = _labels_from_strings(values)
    return Dataset(X=X, y=y, feature_names=features, target_name=label, name=str(p),
                   files=(str(p),))


# ---------------------------------------------------------------------------- idx

# IDX (LeCun's MNIST format): magic = two zero bytes, a type code, the number of
# dimensions; then one big-endian uint32 per dimension; then the data, big-endian.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _is_gzip(p: Path) -> bool:
    with open(p, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    parts, got = [], 0
    while got < n:
        chunk = fh.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _idx_header(fh: BinaryIO, p: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Read and check an IDX header: (dtype, dimensions, header length)."""
    head = _read_exact(fh, 4)
    if len(head) < 4:
        raise ValueError(f"{p}: too short for an IDX header ({len(head)} bytes)")
    zero1, zero2, code, ndim = head
    if zero1 != 0 or zero2 != 0 or code not in _IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{p}: IDX magic number mismatch: got bytes {head.hex(' ')}, expected "
            "00 00 <type 08/09/0b/0c/0d/0e> <number of dimensions >= 1>"
        )
    header_len = 4 + 4 * ndim
    raw_dims = _read_exact(fh, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(f"{p}: IDX header truncated: {ndim} dimensions need {header_len} bytes, "
                         f"file has {4 + len(raw_dims)}")
    return _IDX_TYPES[code], struct.unpack(f">{ndim}I", raw_dims), header_len


def load_idx(path: PathLike, *, max_bytes: int | None = None) -> np.ndarray:
    """Read one IDX file (the MNIST format), raw or gzip-compressed.

    Parameters
    ----------
    path : str or path-like
        E.g. ``train-images-idx3-ubyte.gz``. Compression is detected from the bytes.
    max_bytes : int, optional
        The most data bytes to read (default: half the machine's memory).

    Returns
    -------
    ndarray
        The stored array, in its stored shape and (native-endian) dtype: uint8
        images of shape (n, rows, cols) for MNIST images, uint8 labels of shape
        (n,) for MNIST labels.

    Raises
    ------
    ValueError
        File too short for its header, magic number mismatch (not IDX), unknown type
        code, corrupt gzip data, or the data size does not match the dimensions in
        the header. The header is checked first: a file whose dimensions declare more
        data than the file holds (raw), than its compressed bytes can inflate to
        (gzip), or than ``max_bytes``, is refused without reading the data; a gzip
        stream holding more data than declared is refused after reading one byte
        past the declared size.
    """
    p = _existing(path)
    limit = default_max_bytes() if max_bytes is None else int(max_bytes)
    compressed = _is_gzip(p)
    size = p.stat().st_size
    try:
        with (gzip.open(p, "rb") if compressed else open(p, "rb")) as fh:
            dtype, dims, header_len = _idx_header(fh, p)
            count = math.prod(dims)
            expected = count * dtype.itemsize

            def mismatch(actual: str) -> ValueError:
                return ValueError(f"{p}: IDX size mismatch: dimensions {dims} of {dtype.name} need "
                                  f"{expected} data bytes, file has {actual}")

            if not compressed and size - header_len != expected:
                raise mismatch(str(size - header_len))
            if compressed and expected > DEFLATE_MAX_RATIO * size + 1024:
                raise mismatch(f"{size} compressed bytes, which cannot inflate to that much")
            if expected > limit:
                raise ValueError(f"{p}: IDX dimensions {dims} declare {expected} bytes, more than "
                                 f"the {limit}-byte limit")
            arr = np.empty(count, dtype=dtype)
            view = memoryview(arr.view(np.uint8))
            got = 0
            while got < expected:
                n = fh.readinto(view[got:])
                if not n:
                    raise mismatch(str(got))
                got += n
            if fh.read(1):  # also reaches the gzip trailer, whose CRC is checked
                raise mismatch(f"more than {expected}")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{p}: corrupt gzip data ({exc})") from None
    return arr.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _idx_labels_path(images: Path) -> Path | None:
    name = images.name
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1"), ("images", "labels")):
        if a in name:
            cand = images.with_name(name.replace(a, b))
            if cand.exists():
                return cand
            # the pair may differ in compression
            alt = cand.with_name(cand.name[:-3]) if cand.name.endswith(".gz") else cand.with_name(cand.name + ".gz")
            if alt.exists():
                return alt
    return None


def load_mnist(images: PathLike, labels: PathLike | None = None, *,
               require_labels: bool = True) -> Dataset:
    """Read an MNIST / Fashion-MNIST image file and its label file (IDX, raw or .gz).

    Parameters
    ----------
    images : str or path-like
        The ``*-images-idx3-ubyte[.gz]`` file.
    labels : str or path-like, optional
        The ``*-labels-idx1-ubyte[.gz]`` file. Default: found beside ``images`` by
        replacing ``images-idx3`` with ``labels-idx1`` in the name.
    require_labels : bool, default True
        When False and no label file is found, ``y`` is None.

    Returns
    -------
    Dataset
        ``X`` of shape (n, rows * cols), float64 pixel values 0..255; ``y`` int64.
    """
    pi = _existing(images)
    imgs = load_idx(pi)
    if imgs.ndim < 2:
        raise ValueError(f"{pi}: expected an IDX image file (3 dimensions), got {imgs.ndim} dimension(s)")
    X = _as_float64(imgs.reshape(imgs.shape[0], -1), pi)
    pl = _existing(labels) if labels is not None else _idx_labels_path(pi)
    y = None
    if pl is None:
        if require_labels:
            raise ValueError(
                f"{pi}: no label file found beside it (expected a name with 'labels-idx1'); pass labels="
            )
    else:
        y = load_idx(pl)
        if y.ndim != 1:
            raise ValueError(f"{pl}: expected an IDX label file (1 dimension), got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"{pl}: has {y.shape[0]} labels but {pi} has {X.shape[0]} images")
        y = y.astype(np.int64)
    _check_finite(X, pi)  # float IDX types can hold NaN
    return Dataset(X=X, y=y, name=str(pi), files=(str(pi),) + ((str(pl),) if pl is not None else ()))


# ---------------------------------------------------------------------------- dispatch


def _looks_like_idx(p: Path) -> bool:
    name = p.name.lower()
    if "idx" in name or "ubyte" in name:
        return True
    try:  # only the first four bytes are read (inflated)
        with (gzip.open(p, "rb") if _is_gzip(p) else open(p, "rb")) as fh:
            head = _read_exact(fh, 4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and head[0] == 0 and head[1] == 0 and head[2] in _IDX_TYPES


def load(
    source: PathLike,
    *,
    label_column: str | None = None,
    labels: PathLike | None = None,
    require_labels: bool = True,
) -> Dataset:
    """Load ``"digits"`` or a file, choosing the reader from the name and content.

    Parameters
    ----------
    source : str or path-like
        ``"digits"`` for :func:`load_digits`, or a path: ``*.npz`` goes to
        :func:`load_npz`, ``*.npy`` to :func:`load_npy` (memory-mapped, labels from
        ``labels``), ``*.csv`` / ``*.csv.gz`` to :func:`load_csv`, IDX files
        (``*idx3-ubyte*`` or IDX content) to :func:`load_mnist`.
    label_column : str, optional
        CSV only: the label column's name (default: the last column).
    labels : str or path-like, optional
        IDX: the label file (default: found beside the image file); ``.npy``: the
        1-D ``.npy`` label file.
    require_labels : bool, default True
        When False, a file without labels loads with ``y`` None.

    Returns
    -------
    Dataset
    """
    if isinstance(source, str) and source == "digits":
        return load_digits()
    p = _existing(source)
    name = p.name.lower()
    if name.endswith(".npz"):
        return load_npz(p, require_labels=require_labels)
    if name.endswith(".npy"):
        return load_npy(p, labels, require_labels=require_labels)
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return load_csv(p, label_column, require_labels=require_labels)
    if _looks_like_idx(p):
        return load_mnist(p, labels, require_labels=require_labels)
    raise ValueError(
        f"{p}: unknown data format (expected 'digits', .npz, .npy, .csv or an MNIST IDX file)"
    )
