"""A small progress bar on stderr for long fits.

Redrawn in place on a terminal; elsewhere (a log file, a pipe, a test) one line every
tenth of the run and a final line, so logs stay short. This module imports nothing
from softmaxkit, so the estimator (a lower layer) may use it for ``verbose=1``.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Progress of ``total`` steps named ``what`` ("iter", "epoch").

    Parameters
    ----------
    total : int
        Number of steps planned (at least 1 is shown).
    what : str
        The step's name, printed first on each line.
    stream : text stream, optional
        Where to write (default ``sys.stderr``).

    Examples
    --------
    >>> import io
    >>> from softmaxkit._progress import Progress
    >>> out = io.StringIO()
    >>> bar = Progress(4, "epoch", stream=out)
    >>> bar.update(1, loss=0.5, acc=0.75)
    >>> bar.update(4, loss=0.25, acc=1.0, final=True)
    >>> [line.split(" [")[0] for line in out.getvalue().splitlines()]
    ['epoch 1/4', 'epoch 4/4']
    """

    def __init__(self, total: int, what: str, stream: TextIO | None = None):
        self.total = max(int(total), 1)
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.next_line = 0
        self.last_line: int | None = None
        self.width = len(str(self.total))

    def update(self, i: int, loss: float, acc: float, extra: str = "", final: bool = False) -> None:
        """Show step ``i`` with its loss and accuracy (``final``: the last line, "done")."""
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
