"""Out-of-core rows: a 2-D ``.npy`` file (or a ``np.memmap`` of one) read block by block.

A memory map would do the reading for us, but every page it touches stays mapped
and counts in the process's resident memory until the kernel needs it back, so a
pass over a 2 GB map shows as 2 GB. Here each block is read with ``os.pread`` into
one reused buffer: the process holds one block (plus the page cache, which is the
operating system's and not counted), whatever the file's size.
"""
from __future__ import annotations

import mmap
import os
from typing import Any, Iterator

import numpy as np

__all__ = ["NpyRows", "as_row_source"]

# Rows per block: about 64 MiB of X in the compute dtype.
_BLOCK_BYTES = 64 << 20
# A row selection whose rows span at most this many times their number is read in
# whole pieces (then picked), not run by run.
_DENSE_SPAN = 8


class NpyRows:
    """The rows of a C-ordered 2-D array stored in a file at ``offset`` (an .npy file).

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (its header is read for the shape and dtype).
    rows : array_like of int, optional
        Only these rows of the file, in increasing order (default: all). ``shape[0]``
        is then ``len(rows)`` and block ``[s, e)`` holds the file's rows
        ``rows[s:e]``; error messages name the file's row numbers.
    block_rows : int, optional
        Rows per block of :meth:`blocks` (default: about 64 MiB of X).
    """

    def __init__(self, path: Any, *, offset: int | None = None, shape: tuple | None = None,
                 dtype: Any = None, rows: Any = None, block_rows: int | None = None) -> None:
        self.path = os.fspath(path)
        if offset is None:
            with open(self.path, "rb") as fh:
                try:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                except ValueError as exc:
                    raise ValueError(f"{self.path}: not a .npy file ({exc})") from None
                offset = fh.tell()
            if fortran:
                raise ValueError(f"{self.path}: a Fortran-ordered array; rows must be contiguous (C order)")
        self.offset = int(offset)
        self.file_shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        if len(self.file_shape) != 2:
            raise ValueError(f"{self.path}: expected a 2-D array, got shape {self.file_shape}")
        if self.dtype.kind not in "fiu" or self.dtype.hasobject:
            raise TypeError(f"{self.path}: expected real numbers, got dtype {self.dtype}")
        need = self.offset + self.file_shape[0] * self.file_shape[1] * self.dtype.itemsize
        if os.path.getsize(self.path) < need:
            raise ValueError(f"{self.path}: truncated ({os.path.getsize(self.path)} of {need} bytes)")
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64).reshape(-1)
            if rows.size and (rows[0] < 0 or rows[-1] >= self.file_shape[0]
                              or (rows.size > 1 and np.any(np.diff(rows) <= 0))):
                raise ValueError(f"{self.path}: rows must be increasing row numbers in "
                                 f"[0, {self.file_shape[0]})")
        self.rows = rows
        self.shape = self.file_shape if rows is None else (int(rows.size), self.file_shape[1])
        if block_rows is not None and int(block_rows) < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        self.block_rows = None if block_rows is None else int(block_rows)
        self.compute_dtype = np.dtype(np.float64)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    ndim = 2

    def _copy(self, rows: Any) -> "NpyRows":
        other = NpyRows(self.path, offset=self.offset, shape=self.file_shape, dtype=self.dtype,
                        rows=rows, block_rows=self.block_rows)
        other.compute_dtype, other.mean, other.scale = self.compute_dtype, self.mean, self.scale
        return other

    def prepared(self, dtype: Any, mean: np.ndarray | None = None,
                 scale: np.ndarray | None = None) -> "NpyRows":
        """The same rows, each block converted to ``dtype`` and, with ``mean``, transformed
        to ``(x - mean) / scale`` as it is read."""
        other = self._copy(self.rows)
        other.compute_dtype = np.dtype(dtype)
        other.mean, other.scale = mean, scale
        return other

    def subset(self, index: Any) -> "NpyRows":
        """The rows ``index`` (positions among this object's rows, increasing)."""
        index = np.asarray(index, dtype=np.int64)
        return self._copy(index if self.rows is None else self.rows[index])

    def default_block_rows(self) -> int:
        """Rows per block when none is asked for: ``block_rows``, else about 64 MiB."""
        if self.block_rows is not None:
            return self.block_rows
        d = self.shape[1]
        return max(1, _BLOCK_BYTES // max(1, d * max(self.compute_dtype.itemsize, self.dtype.itemsize)))

    def blocks(self, rows: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, block)`` over all rows in the compute dtype; ``block`` is a
        reused buffer. Raises ValueError naming the file, row and column of a NaN/inf.
        """
        n = self.shape[0]
        if rows is None:
            rows = self.default_block_rows()
        reader = self.reader(min(rows, max(n, 1)))
        try:
            for start in range(0, n, rows):
                stop = min(start + rows, n)
                yield start, stop, reader.read(start, stop)
        finally:
            reader.close()

    def reader(self, max_rows: int) -> "_Reader":
        """A reader of up to ``max_rows`` rows at a time (its buffers are reused)."""
        return _Reader(self, max_rows)


class _Reader:
    """Reads rows ``[start, stop)`` of an :class:`NpyRows` into reused buffers."""

    def __init__(self, src: NpyRows, max_rows: int) -> None:
        self.src = src
        d = src.shape[1]
        self.raw = np.empty((max_rows, d), dtype=src.dtype)
        dtype = src.compute_dtype
        self.out = self.raw if dtype == src.dtype and src.mean is None else np.empty(self.raw.shape, dtype)
        self.scale = None if src.scale is None else src.scale.astype(dtype)
        self.scratch: np.ndarray | None = None  # for spans read whole
        self.fd = os.open(src.path, os.O_RDONLY)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _pread(self, buf: memoryview, pos: int, first_row: int) -> None:
        got_all = 0
        while got_all < len(buf):
            got = os.preadv(self.fd, [buf[got_all:]], pos + got_all)
            if got <= 0:
                raise ValueError(f"{self.src.path}: file ended while reading row {first_row}")
            got_all += got

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` (``stop - start <= max_rows``) in the compute dtype,
        standardised when the source is; checked finite."""
        src = self.src
        row_bytes = src.shape[1] * src.dtype.itemsize
        view = self.raw[: stop - start]
        buf = memoryview(view.reshape(-1).view(np.uint8))
        if src.rows is None:
            self._pread(buf, src.offset + start * row_bytes, start)
        else:
            sel = src.rows[start:stop]
            breaks = np.flatnonzero(np.diff(sel) != 1) + 1
            span = int(sel[-1] - sel[0]) + 1
            if breaks.size > 16 and span <= _DENSE_SPAN * sel.size:
                # many short runs close together (every 4th row left out, say): read
                # the span in pieces of max_rows file rows and keep the selected ones
                # (one read per piece instead of one per run)
                if self.scratch is None:
                    self.scratch = np.empty_like(self.raw)
                m = self.raw.shape[0]
                lo = 0
                for a in range(int(sel[0]), int(sel[-1]) + 1, m):
                    b = min(a + m, int(sel[-1]) + 1)
                    hi = lo + int(np.searchsorted(sel[lo:], b))
                    piece = self.scratch[: b - a]
                    self._pread(memoryview(piece.reshape(-1).view(np.uint8)),
                                src.offset + a * row_bytes, a)
                    np.take(piece, sel[lo:hi] - a, axis=0, out=view[lo:hi])
                    lo = hi
            else:  # one read per run of consecutive file rows
                lo = 0
                for hi in [*breaks.tolist(), len(sel)]:
                    self._pread(buf[lo * row_bytes: hi * row_bytes],
                                src.offset + int(sel[lo]) * row_bytes, int(sel[lo]))
                    lo = hi
        if not src.dtype.isnative:
            view = view.byteswap().view(view.dtype.newbyteorder())
        block = self.out[: stop - start]
        if src.mean is not None:
            np.subtract(view, src.mean, out=block, casting="unsafe")
            block /= self.scale
        elif block is not view:
            np.copyto(block, view, casting="unsafe")
        if not np.isfinite(block.sum()):
            bad = np.argwhere(~np.isfinite(block))
            if bad.size:  # (else only the sum overflowed)
                i = start + int(bad[0, 0])
                row = i if src.rows is None else int(src.rows[i])
                raise ValueError(f"{src.path}: row {row}, column {int(bad[0, 1])} is not finite")
        return block


def as_row_source(X: Any) -> NpyRows | None:
    """An :class:`NpyRows` for a ``np.memmap`` of a 2-D C-ordered file (or NpyRows
    itself), else None (the data is in memory)."""
    if isinstance(X, NpyRows):
        return X
    # only a whole map (its base is the mmap itself): a slice keeps its parent's offset;
    # and not a copy-on-write map (mode "c"), whose changes the file does not hold
    if isinstance(X, np.memmap) and isinstance(X.base, mmap.mmap) and X.filename \
            and X.ndim == 2 and X.flags.c_contiguous and getattr(X, "mode", "r") != "c":
        return NpyRows(X.filename, offset=X.offset, shape=X.shape, dtype=X.dtype)
    return None
