"""Files in and out: atomic writes, never over an input, bounded ``.npz`` reading.

Three rules every file the package writes or reads from a user follows:

* **Atomic writes.** :func:`atomic_path` hands out a temporary file in the target's
  folder; only when the writer finished without an exception is it renamed over the
  target (``os.replace``, atomic on POSIX and Windows). An interrupted run leaves the
  old file, or none, never half a file.
* **Never over an input.** :func:`refuse_overwrite` compares every output path with
  every input path (resolved, and ``os.path.samefile`` when both exist, so hard links
  and symbolic links count) and refuses before anything is written.
* **Bounded reading.** :func:`open_bounded` opens a raw or gzip-compressed file
  and refuses (one ValueError naming the file) as soon as more than a limit has been
  read or inflated, so a small gzip bomb costs the limit, not its inflated size.
  :func:`read_npz` checks each archive member's ``.npy`` header
  and the sizes the zip directory declares before reading a byte of data, reads only
  the members asked for, and streams each into an array of exactly the declared size.
  A small archive that declares a huge array, or a compressed member whose declared
  size is beyond what deflate can produce from its compressed bytes, is refused at
  the cost of reading its headers.

This module imports nothing from softmaxkit, so any layer may use it.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import io
import lzma
import math
import os
import secrets
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import numpy.lib.format as npy_format

__all__ = [
    "atomic_path",
    "atomic_open",
    "refuse_overwrite",
    "same_file",
    "read_npz",
    "check_npz",
    "default_max_bytes",
    "open_bounded",
    "DEFLATE_MAX_RATIO",
]

# zlib's technical notes: deflate's best case is about 1032:1 (258-byte matches coded
# in about 2 bits each). A member declaring more than this many bytes per compressed
# byte cannot be honest, so it is refused before it is inflated.
DEFLATE_MAX_RATIO = 1032

_NPY_MAGIC = b"\x93NUMPY"


def default_max_bytes() -> int:
    """The most bytes one read may hold: half the machine's memory (4 GiB if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):  # not POSIX
        return 4 << 30


class _BoundedReader(io.RawIOBase):
    """A binary stream that raises ValueError once more than ``limit`` bytes came out."""

    def __init__(self, fh: IO[bytes], limit: int, name: str, what: str,
                 underlying: IO[bytes] | None = None) -> None:
        self._fh, self._limit, self._name, self._what = fh, limit, name, what
        self._underlying = underlying
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._fh.readinto(b)
        self.count += n or 0
        if self.count > self._limit:
            raise ValueError(f"{self._name}: {self._what} more than the {self._limit}-byte limit; "
                             "refusing to read on")
        return n

    def close(self) -> None:
        for fh in (self._fh, self._underlying):
            if fh is not None:
                with contextlib.suppress(Exception):
                    fh.close()
        super().close()


def open_bounded(path: str | os.PathLike[str], max_bytes: int | None = None) -> IO[bytes]:
    """Open ``path`` for binary reading, inflating gzip (detected from the bytes), with
    at most ``max_bytes`` bytes (inflated) read from it.

    Parameters
    ----------
    path : str or path-like
        A raw or gzip-compressed file.
    max_bytes : int, optional
        The most bytes the reader may deliver (default :func:`default_max_bytes`). A
        raw file larger than that is refused at once; a gzip stream when its
        inflated data passes the limit (a gzip file does not reliably declare its
        inflated size), at the cost of the limit.

    Returns
    -------
    binary file object
        Buffered; close it (or use ``with``). Reading past the limit raises
        ValueError naming the file.

    Examples
    --------
    >>> import gzip, os, tempfile
    >>> from softmaxkit._io import open_bounded
    >>> f = os.path.join(tempfile.mkdtemp(), "bomb.csv.gz")
    >>> _ = open(f, "wb").write(gzip.compress(b"0," * 10**6))
    >>> with open_bounded(f, max_bytes=1000) as fh:
    ...     fh.read()
    Traceback (most recent call last):
    ...
    ValueError: ...bomb.csv.gz: inflates to more than the 1000-byte limit; refusing to read on
    """
    p = os.fspath(path)
    limit = default_max_bytes() if max_bytes is None else int(max_bytes)
    raw = open(p, "rb")
    try:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if compressed:
            inner: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb")
            what = "inflates to"
        else:
            size = os.fstat(raw.fileno()).st_size
            if size > limit:
                raise ValueError(f"{p}: {size} bytes, more than the {limit}-byte limit")
            inner, what = raw, "holds"
    except BaseException:
        raw.close()
        raise
    # closing the reader closes the gzip stream, then the file
    return io.BufferedReader(_BoundedReader(inner, limit, p, what, raw if compressed else None))


# ---------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    Parameters
    ----------
    target : str or path-like
        The file to write. Its folder must exist.

    Yields
    ------
    pathlib.Path
        An empty file in the same folder (so the final rename stays on one file
        system). Write it completely; when the ``with`` block ends without an
        exception it is flushed to disk, given the permissions a new file would get
        (or those of the file it replaces), and renamed to ``target``. On an
        exception it is removed and ``target`` is untouched.

    Examples
    --------
    >>> import os, tempfile
    >>> from softmaxkit._io import atomic_path
    >>> d = tempfile.mkdtemp(); f = os.path.join(d, "out.txt")
    >>> with atomic_path(f) as tmp:
    ...     _ = tmp.write_text("done")
    >>> open(f).read(), os.listdir(d)
    ('done', ['out.txt'])
    """
    target = Path(os.fspath(target))
    tmp = _create_beside(target)
    try:
        yield tmp
        _fsync(tmp)
        with contextlib.suppress(OSError):  # a replaced file keeps its permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(target, mode)`` written atomically (see :func:`atomic_path`).

    ``mode`` is ``"w"`` or ``"wb"`` (plus ``open``'s keyword arguments, e.g.
    ``newline=""``, ``encoding="utf-8"``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_beside(target: Path) -> Path:
    """A new empty file in ``target``'s folder, created as ``open`` would create
    ``target`` (mode 0o666 less the umask), under a name no one else uses."""
    for _ in range(100):
        # A short prefix: the temporary name must fit the same name-length limit.
        tmp = target.with_name(f".{target.name[:64]}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:  # name the file asked for, not the temporary one
            raise OSError(exc.errno, exc.strerror, os.fspath(target)) from None
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name beside it", os.fspath(target))


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when paths ``a`` and ``b`` name the same file (links resolved)."""
    pa, pb = Path(os.fspath(a)), Path(os.fspath(b))
    with contextlib.suppress(OSError):
        if os.path.samefile(pa, pb):  # hard links, case-insensitive file systems
            return True
    try:
        return pa.resolve() == pb.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as given
        return os.path.abspath(pa) == os.path.abspath(pb)


def refuse_overwrite(
    outputs: Mapping[str, str | os.PathLike[str] | None],
    inputs: Mapping[str, str | os.PathLike[str] | None],
) -> None:
    """Raise ValueError when an output names an input file, or two outputs one file.

    Parameters
    ----------
    outputs, inputs : mapping of label -> path
        Labels name the paths in the message (for the command line, the option:
        ``{"--out": "model.npz"}``). ``None`` paths are skipped.

    Raises
    ------
    ValueError
        "--out wine.npz is the --data file: refusing to overwrite an input".
    """
    outs = [(k, v) for k, v in outputs.items() if v is not None]
    ins = [(k, v) for k, v in inputs.items() if v is not None]
    for label, out in outs:
        for in_label, src in ins:
            if same_file(out, src):
                raise ValueError(
                    f"{label} {os.fspath(out)} is the {in_label} file: refusing to overwrite an input"
                )
    for i, (label, out) in enumerate(outs):
        for other, out2 in outs[:i]:
            if same_file(out, out2):
                raise ValueError(f"{label} {os.fspath(out)} is also the {other} output: pick another name")


# ---------------------------------------------------------------------------- .npz


def read_npz(
    path: str | os.PathLike[str],
    names: Iterable[str] | None = None,
    *,
    required: Sequence[str] = (),
    max_bytes: int | None = None,
    what: str = "an .npz archive",
) -> dict[str, np.ndarray]:
    """Read some arrays of an ``.npz`` archive, checking every size before reading.

    Parameters
    ----------
    path : str or path-like
        The archive (``np.savez`` / ``np.savez_compressed``).
    names : iterable of str, optional
        The arrays to read (default: all). Other members are never decompressed.
    required : sequence of str
        Names that must be present.
    max_bytes : int, optional
        The most array bytes to read, all members together (default:
        :func:`default_max_bytes`).
    what : str
        What the file should be, for messages ("a softmaxkit model file").

    Returns
    -------
    dict of str -> ndarray
        The requested arrays that are present, in their stored dtype and shape.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Naming the file (and the member): not a zip archive (a single ``.npy`` array
        or another format), a required array missing, a member that is not a
        ``.npy`` array, object (pickled) arrays, a header whose shape and dtype
        disagree with the member's size, sizes beyond ``max_bytes`` or beyond what
        deflate can produce from the compressed bytes, or corrupt data (bad CRC,
        truncated).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from softmaxkit._io import read_npz
    >>> f = os.path.join(tempfile.mkdtemp(), "a.npz")
    >>> np.savez_compressed(f, X=np.eye(2), junk=np.zeros(10**6))
    >>> read_npz(f, ["X"])["X"].tolist()  # "junk" is never inflated
    [[1.0, 0.0], [0.0, 1.0]]
    """
    p = Path(os.fspath(path))
    limit = default_max_bytes() if max_bytes is None else int(max_bytes)
    wanted = None if names is None else set(names)
    out: dict[str, np.ndarray] = {}
    with _open_zip(p, what) as zf:
        infos = {}
        for info in zf.infolist():
            infos.setdefault(_key(info.filename), info)
        missing = [k for k in required if k not in infos]
        if missing:
            raise ValueError(
                f"{p}: no array named {missing[0]!r} (found {sorted(infos) or 'nothing'})"
            )
        todo = [(k, info) for k, info in infos.items() if wanted is None or k in wanted]
        total = 0
        for key, info in todo:  # every size is checked before any data is read
            _check_member_sizes(p, key, info, limit)
            total += info.file_size
        if total > limit:
            raise ValueError(f"{p}: the arrays declare {total} bytes together, more than the "
                             f"{limit}-byte limit")
        for key, info in todo:
            with _member_errors(p, key):
                out[key] = _read_member(zf, info, p, key)
    return out


@contextlib.contextmanager
def _member_errors(p: Path, key: str) -> Iterator[None]:
    """A broken archive member (bad deflate data, a flipped compression method, a
    truncated stream) as one ValueError naming the file and the member."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, struct.error,
            NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"{p}: corrupt archive member {key!r} ({exc})") from None
    except OSError as exc:
        if exc.errno is not None:  # a real I/O error, not bad data
            raise
        # bz2 says "Invalid data stream" as an OSError without an errno
        raise ValueError(f"{p}: corrupt archive member {key!r} ({exc})") from None


@contextlib.contextmanager
def _open_zip(p: Path, what: str = "an .npz archive") -> Iterator[zipfile.ZipFile]:
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, expected {what}")
    with open(p, "rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
    if head == _NPY_MAGIC:
        raise ValueError(f"{p}: is a single .npy array, not {what} (an .npz archive)")
    if not zipfile.is_zipfile(p):
        if head.startswith(b"PK"):  # a zip's first bytes, but no readable directory
            raise ValueError(f"{p}: corrupt or truncated .npz archive (no zip directory)")
        raise ValueError(f"{p}: not {what} (not a zip/.npz archive)")
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ValueError(f"{p}: corrupt .npz archive ({exc})") from None
    with zf:
        yield zf


def _key(filename: str) -> str:
    return filename[:-4] if filename.endswith(".npy") else filename


def _check_member_sizes(p: Path, key: str, info: zipfile.ZipInfo, limit: int) -> None:
    if info.file_size > limit:
        raise ValueError(f"{p}: array {key!r} declares {info.file_size} bytes, more than the "
                         f"{limit}-byte limit")
    if info.compress_type != zipfile.ZIP_STORED:
        if info.file_size > DEFLATE_MAX_RATIO * max(info.compress_size, 1) + 1024:
            raise ValueError(
                f"{p}: array {key!r} declares {info.file_size} bytes from {info.compress_size} "
                "compressed bytes, more than deflate can produce: corrupt or hostile archive"
            )


def _member_header(fh: IO[bytes], info: zipfile.ZipInfo, p: Path, key: str
                   ) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, data bytes) from a member's ``.npy`` header,
    checked against the size the zip directory declares."""
    try:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as exc:
        raise ValueError(f"{p}: array {key!r} is not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise ValueError(f"{p}: array {key!r} holds Python objects (pickle), which are never "
                         "read; store numbers or strings")
    nbytes = math.prod(shape) * dtype.itemsize
    held = info.file_size - fh.tell()
    if nbytes != held:
        raise ValueError(
            f"{p}: array {key!r} declares shape {shape} of {dtype} ({nbytes} bytes) but "
            f"holds {held} bytes: corrupt archive"
        )
    return shape, fortran, dtype, nbytes


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, p: Path, key: str) -> np.ndarray:
    with zf.open(info) as fh:
        shape, fortran, dtype, nbytes = _member_header(fh, info, p, key)
        flat = np.empty(math.prod(shape), dtype=dtype)
        if nbytes:
            view = memoryview(flat.view(np.uint8))
            pos = 0
            while pos < nbytes:
                got = fh.readinto(view[pos:])
                if not got:
                    raise ValueError(f"{p}: array {key!r} is truncated ({pos} of {nbytes} bytes)")
                pos += got
        fh.read(1)  # reach the end, where zipfile checks the CRC
    return flat.reshape(shape, order="F" if fortran else "C")


def check_npz(path: str | os.PathLike[str], *, max_bytes: int | None = None,
              what: str = "an .npz archive") -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Check every member's header and sizes without reading its data.

    Returns ``{name: (shape, dtype)}``; raises ValueError (naming the file and the
    member) for what :func:`read_npz` would refuse, at the cost of the headers only.
    Use it before handing a file to a reader that reads every member in full.
    """
    p = Path(os.fspath(path))
    limit = default_max_bytes() if max_bytes is None else int(max_bytes)
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with _open_zip(p, what) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member_sizes(p, _key(info.filename), info, limit)
        total = sum(info.file_size for info in infos)
        if total > limit:
            raise ValueError(f"{p}: the arrays declare {total} bytes together, more than the "
                             f"{limit}-byte limit")
        for info in infos:
            key = _key(info.filename)
            with _member_errors(p, key), zf.open(info) as fh:
                shape, _, dtype, _ = _member_header(fh, info, p, key)
            out[key] = (shape, dtype)
    return out
