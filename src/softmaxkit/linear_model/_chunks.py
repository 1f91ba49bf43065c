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


class NpyRows:
    """The rows of a C-ordered 2-D array stored in a file at ``offset`` (an .npy file).

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (its header is read for the shape and dtype).
    """

    def __init__(self, path: Any, *, offset: int | None = None, shape: tuple | None = None,
                 dtype: Any = None) -> None:
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
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        if len(self.shape) != 2:
            raise ValueError(f"{self.path}: expected a 2-D array, got shape {self.shape}")
        if self.dtype.kind not in "fiu" or self.dtype.hasobject:
            raise TypeError(f"{self.path}: expected real numbers, got dtype {self.dtype}")
        need = self.offset + self.shape[0] * self.shape[1] * self.dtype.itemsize
        if os.path.getsize(self.path) < need:
            raise ValueError(f"{self.path}: truncated ({os.path.getsize(self.path)} of {need} bytes)")
        self.compute_dtype = np.dtype(np.float64)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    ndim = 2

    def prepared(self, dtype: Any, mean: np.ndarray | None = None,
                 scale: np.ndarray | None = None) -> "NpyRows":
        """The same rows, each block converted to ``dtype`` and, with ``mean``, transformed
        to ``(x - mean) / scale`` as it is read."""
        other = NpyRows(self.path, offset=self.offset, shape=self.shape, dtype=self.dtype)
        other.compute_dtype = np.dtype(dtype)
        other.mean, other.scale = mean, scale
        return other

    def blocks(self, rows: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, block)`` over all rows in the compute dtype; ``block`` is a
        reused buffer. Raises ValueError naming the file, row and column of a NaN/inf.
        """
        n, d = self.shape
        dtype = self.compute_dtype
        if rows is None:
            rows = max(1, _BLOCK_BYTES // max(1, d * max(dtype.itemsize, self.dtype.itemsize)))
        raw = np.empty((min(rows, n), d), dtype=self.dtype)
        out = raw if dtype == self.dtype and self.mean is None else np.empty(raw.shape, dtype)
        row_bytes = d * self.dtype.itemsize
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for start in range(0, n, rows):
                stop = min(start + rows, n)
                view = raw[: stop - start]
                buf = memoryview(view.reshape(-1).view(np.uint8))
                pos, want = 0, (stop - start) * row_bytes
                while pos < want:
                    got = os.preadv(fd, [buf[pos:]], self.offset + start * row_bytes + pos)
                    if got <= 0:
                        raise ValueError(f"{self.path}: file ended while reading row {start}")
                    pos += got
                if not self.dtype.isnative:
                    view = view.byteswap().view(view.dtype.newbyteorder())
                block = out[: stop - start]
                if self.mean is not None:
                    np.subtract(view, self.mean, out=block, casting="unsafe")
                    block /= self.scale.astype(dtype)
                elif block is not view:
                    np.copyto(block, view, casting="unsafe")
                if not np.isfinite(block.sum()):
                    bad = np.argwhere(~np.isfinite(block))[0]
                    raise ValueError(
                        f"{self.path}: row {start + int(bad[0])}, column {int(bad[1])} is not finite")
                yield start, stop, block
        finally:
            os.close(fd)


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
