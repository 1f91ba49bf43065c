"""PRIVATE COPY of the training progress bar, kept here until ``softmaxkit/app/progress.py``
(moved there by the CLI restructuring) lands on main; then import it from there and
delete this file."""
from __future__ import annotations

import sys
import time


class _Progress:
    """A small progress bar on stderr: redrawn in place on a terminal, else a line
    every tenth of the run (so logs stay short)."""

    def __init__(self, total: int, what: str, stream=None):
        self.total = max(int(total), 1)
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.next_line = 0
        self.last_line = None
        self.width = len(str(self.total))

    def update(self, i: int, loss: float, acc: float, extra: str = "", final: bool = False):
        frac = min(i / self.total, 1.0)
        bar = "#" * int(round(20 * frac)) + "." * (20 - int(round(20 * frac)))
        msg = (f"{self.what} {i:>{self.width}}/{self.total} [{bar}] loss {loss:.4f} "
               f"acc {acc:.4f}{extra} {time.perf_counter() - self.t0:.1f}s"
               + (" done" if final else ""))
        if self.tty:
            self.stream.write("\r" + msg + ("\n" if final else ""))
            self.stream.flush()
        elif (final and i != self.last_line) or (not final and i >= self.next_line):
            self.stream.write(msg + "\n")
            self.stream.flush()
            self.next_line = i + max(self.total // 10, 1)
            self.last_line = i
