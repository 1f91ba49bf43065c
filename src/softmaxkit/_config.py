"""Thread count for softmaxkit's C kernels, and its place among the ecosystem's
thread controls.

The kernels split work over rows (or blocks of elements) with OpenMP. The thread
count starts from ``SOFTMAXKIT_NUM_THREADS`` when it is set, else from
``OMP_NUM_THREADS`` (its first entry; joblib's loky workers and job schedulers set
it), else the number of CPUs this process may run on. :func:`set_num_threads`
changes it at run time, and softmaxkit registers with threadpoolctl, so
``threadpoolctl.threadpool_limits(1)`` (also with ``user_api="openmp"``) limits it
too. Inputs too small to repay starting threads (under 32768 elements, or a single
row) always run on the calling thread.
"""
from __future__ import annotations

import operator
import os
import warnings
from typing import Any

__all__ = ["get_num_threads", "set_num_threads"]

_ENV = "SOFTMAXKIT_NUM_THREADS"
# More threads than this is a mistake (and overflows the kernels' C int long before).
MAX_THREADS = 4096


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check(n: Any, what: str) -> int:
    """A thread count: an int in [1, MAX_THREADS] (TypeError / ValueError naming ``what``)."""
    if isinstance(n, bool):
        raise TypeError(f"{what} must be a positive integer, got {n!r}")
    try:
        value = operator.index(n)
    except TypeError:
        raise TypeError(f"{what} must be a positive integer, got {n!r}") from None
    if not 1 <= value <= MAX_THREADS:
        raise ValueError(f"{what} must be a positive integer up to {MAX_THREADS}, got {value}")
    return value


def _from_env() -> int:
    """The start-up thread count. A bad SOFTMAXKIT_NUM_THREADS is an error (it is
    ours); a bad OMP_NUM_THREADS (everyone's) warns and is not used."""
    for name in (_ENV, "OMP_NUM_THREADS"):
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        first = raw.split(",")[0].strip()  # OMP_NUM_THREADS may list nested levels
        try:
            return _check(int(first), name)
        except ValueError:
            msg = f"{name} must be a positive integer, got {raw!r} (at most {MAX_THREADS})"
            if name == _ENV:
                raise ValueError(msg) from None
            warnings.warn(msg + "; ignored", RuntimeWarning, stacklevel=2)
    return _available_cpus()


_num_threads = _from_env()


def set_num_threads(n: int) -> None:
    """Set how many threads the C kernels may use (an integer from 1 to 4096).

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
    _num_threads = _check(n, "n")


def get_num_threads() -> int:
    """The number of threads the C kernels may use."""
    return _num_threads


# ------------------------------------------------------------------ threadpoolctl

def _register_threadpoolctl() -> None:
    """Make softmaxkit's pool visible to threadpoolctl (and so to joblib and
    scikit-learn's thread limits): a controller whose "library" is our extension
    module, reporting and setting :func:`get_num_threads`.

    threadpoolctl finds controllers' libraries among the loaded shared objects by
    file-name prefix; ours is the ``_softmax`` extension of this package.
    """
    try:
        import threadpoolctl
    except ImportError:  # pragma: no cover - it comes with scikit-learn
        return
    if not hasattr(threadpoolctl, "register"):  # threadpoolctl < 3.5
        return

    class _SoftmaxkitController(threadpoolctl.LibController):  # type: ignore[misc]
        user_api = "openmp"
        internal_api = "softmaxkit"
        filename_prefixes = ("_softmax.",)

        def get_num_threads(self) -> int:
            return get_num_threads()

        def set_num_threads(self, num_threads: int) -> None:
            set_num_threads(max(1, min(int(num_threads), MAX_THREADS)))

        def get_version(self) -> str | None:
            from . import __version__

            return __version__

        def set_additional_attributes(self) -> None:
            pass

    threadpoolctl.register(_SoftmaxkitController)


_register_threadpoolctl()
