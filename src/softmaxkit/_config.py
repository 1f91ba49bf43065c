"""Thread count for softmaxkit's C kernels.

The kernels split work over rows (or blocks of elements) with OpenMP. The thread
count starts from the environment variable ``SOFTMAXKIT_NUM_THREADS`` when it is
set, else the number of CPUs this process may run on, and can be changed at run
time with :func:`set_num_threads`. Inputs too small to repay starting threads
(under 32768 elements, or a single row) always run on the calling thread.
"""
from __future__ import annotations

import operator
import os

__all__ = ["get_num_threads", "set_num_threads"]

_ENV = "SOFTMAXKIT_NUM_THREADS"


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _from_env() -> int:
    raw = os.environ.get(_ENV)
    if raw is None or raw.strip() == "":
        return _available_cpus()
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{_ENV} must be a positive integer, got {raw!r}") from None
    if n < 1:
        raise ValueError(f"{_ENV} must be a positive integer, got {raw!r}")
    return n


_num_threads = _from_env()


def set_num_threads(n: int) -> None:
    """Set how many threads the C kernels may use (a positive integer).

    Examples
    --------
    >>> import softmaxkit as smk
    >>> old = smk.get_num_threads()
    >>> smk.set_num_threads(1)
    >>> smk.get_num_threads()
    1
    >>> smk.set_num_threads(old)
    """
    global _num_threads
    if isinstance(n, bool):
        raise TypeError(f"n must be a positive integer, got {n!r}")
    try:
        value = operator.index(n)
    except TypeError:
        raise TypeError(f"n must be a positive integer, got {n!r}") from None
    if value < 1:
        raise ValueError(f"n must be a positive integer, got {value}")
    _num_threads = value


def get_num_threads() -> int:
    """The number of threads the C kernels may use."""
    return _num_threads
