"""The benchmark harness: timing, thread control, machine description, merging
rounds, and the report (text table, Markdown, JSON rows).

Used by ``benchmarks/sections.py`` (what is measured) and ``benchmarks/run.py`` (the
command line). Not installed with softmaxkit: the benchmarks live in the repository.
"""
from __future__ import annotations

import datetime as _dt
import math
import platform
import time
import tracemalloc
from typing import Any, Callable

import numpy as np

from softmaxkit import get_num_threads, set_num_threads
from softmaxkit._config import _available_cpus
from softmaxkit.app.tables import markdown_table, text_table

__all__ = ["MIN_SPENT", "best_time", "peak_memory", "machine_info", "Threads", "merge_rounds",
           "format_row", "KERNEL_HEADER", "REGRESSION_HEADER", "LINEAR_HEADER", "kernel_table",
           "regression_table", "linear_table", "text_table", "markdown_table", "markdown_report"]

# --------------------------------------------------------------------------- timing


# Short calls are repeated for at least this long: on a 2-core machine, five calls of
# a few milliseconds can all land on a moment when the OpenMP pools of softmaxkit
# and PyTorch (two runtimes, each spinning for a while after its parallel regions)
# or other processes hold a core, which made single rows 40% off.
MIN_SPENT = 0.25


def best_time(fn: Callable[[], Any], repeat: int, budget: float = 1.0, warmup: bool = True) -> float:
    """Best wall time of ``fn()`` after one warm-up call.

    Makes at least ``repeat`` timed calls and keeps calling until they took
    ``MIN_SPENT`` seconds together (capped by ``budget``), but stops as soon as the
    calls took ``budget`` seconds, so a slow baseline does not stretch the run. At
    least one timed call is always made; ``budget=0`` makes exactly ``repeat``.
    """
    if warmup:
        fn()
    best = math.inf
    spent = 0.0
    calls = 0
    min_spent = min(MIN_SPENT, max(budget, 0.0))
    while True:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        calls += 1
        if (budget > 0 and spent >= budget) or (calls >= repeat and spent >= min_spent):
            return best


def peak_memory(fn: Callable[[], Any]) -> tuple[int, Any]:
    """(peak traced bytes allocated during ``fn()`` above what was live before, result).

    NumPy reports its array buffers to ``tracemalloc``, so this counts the arrays a
    call allocates (BLAS's internal work space is not traced).
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return peak - before, result


# ------------------------------------------------------------------------- machine


def machine_info(torch: Any = None) -> dict[str, Any]:
    """CPU model, core counts, library versions and the date, for the report."""
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    have = set(line.split(":", 1)[1].split())
                    flags = [f for f in ("avx", "fma", "avx2", "avx512f") if f in have]
    except OSError:
        pass
    import scipy

    from softmaxkit import __version__

    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "simd": " ".join(flags) or "unknown",
        "cores": _available_cpus(),  # the count the kernels start from
        "python": platform.python_version(),
        "softmaxkit": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": getattr(torch, "__version__", None),
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy has no mode="dicts"; the BLAS name is a nicety
        info["numpy_blas"] = None
    return info


# ------------------------------------------------------------------------- threads


class Threads:
    """Set softmaxkit's and torch's thread counts for a block, restoring them after."""

    def __init__(self, n: int, torch: Any):
        self.n, self.torch = n, torch

    def __enter__(self):
        self.old = get_num_threads()
        set_num_threads(self.n)
        if self.torch is not None:
            self.old_torch = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        set_num_threads(self.old)
        if self.torch is not None:
            self.torch.set_num_threads(self.old_torch)



def merge_rounds(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per measurement from several rounds of run_kernels: each time (ours,
    the copy/read baseline, SciPy, PyTorch) is its best over the rounds, and the
    ratios are recomputed from those. On a small shared machine a disturbance can
    outlast one measurement's window; it rarely hits the same row in every round."""
    merged: dict[tuple, dict[str, Any]] = {}
    for rows in rounds:
        for r in rows:
            key = (r["section"], r["op"], tuple(r["shape"]), r["dtype"], r["threads"])
            m = merged.setdefault(key, dict(r))
            for field in ("time_s", "baseline_s", "scipy_s", "torch_s"):
                if r[field] is not None:
                    m[field] = min(m[field], r[field])
    for m in merged.values():
        m["ratio_to_baseline"] = m["time_s"] / m["baseline_s"]
        m["speedup_vs_scipy"] = m["scipy_s"] / m["time_s"] if m["scipy_s"] is not None else None
        m["speedup_vs_torch"] = m["torch_s"] / m["time_s"] if m["torch_s"] is not None else None
    return list(merged.values())

# ------------------------------------------------------------------------- output


def _ms(t):
    return "—" if t is None else f"{t * 1e3:.2f}"


def _x(r):
    return "—" if r is None else f"{r:.2f}x"


def format_row(r) -> str:
    shape = "x".join(map(str, r["shape"]))
    return (f"{r['op']:<22} {shape:>12} {r['dtype']:<8} t={r['threads']} "
            f"{_ms(r['time_s']):>9} ms  {_x(r['ratio_to_baseline']):>7} {r['baseline']}  "
            f"scipy {_x(r['speedup_vs_scipy']):>7}  torch {_x(r['speedup_vs_torch']):>7}")


KERNEL_HEADER = ["function", "shape", "dtype", "threads", "softmaxkit ms", "vs copy/read",
                 "SciPy ms", "SciPy / smk", "PyTorch ms", "PyTorch / smk"]
REGRESSION_HEADER = ["model (digits, 75/25)", "threads", "fit ms", "iterations", "test accuracy"]
LINEAR_HEADER = ["path", "N x H x V", "threads", "time s", "time vs unfused",
                 "peak extra MiB", "memory vs unfused"]


def kernel_table(rows) -> list[list[str]]:
    return [[r["op"], "x".join(map(str, r["shape"])), r["dtype"], str(r["threads"]),
             _ms(r["time_s"]), f"{r['ratio_to_baseline']:.2f}x {r['baseline']}",
             _ms(r["scipy_s"]), _x(r["speedup_vs_scipy"]),
             _ms(r["torch_s"]), _x(r["speedup_vs_torch"])] for r in rows]


def regression_table(rows) -> list[list[str]]:
    return [[r["op"], str(r["threads"]), f"{r['time_s'] * 1e3:.1f}", str(r["n_iter"]),
             f"{r['test_accuracy']:.4f}"] for r in rows]


def linear_table(rows) -> list[list[str]]:
    out = []
    for r in rows:
        extra = "—" if r["extra_bytes"] is None else f"{r['extra_bytes'] / 2**20:.1f}"
        mem = "—" if r["memory_vs_unfused"] is None else f"{100 * r['memory_vs_unfused']:.1f}%"
        out.append([r["op"], "x".join(map(str, r["shape"])), str(r["threads"]),
                    f"{r['time_s']:.4g}", f"{r['time_vs_unfused']:.2f}x", extra, mem])
    return out



def markdown_report(report: dict[str, Any]) -> str:
    m = report["machine"]
    parts = [
        "# softmaxkit benchmark",
        "",
        f"{m['date']}; {m['cpu']} ({m['simd']}), {m['cores']} cores; Python {m['python']}, "
        f"softmaxkit {m['softmaxkit']}, NumPy {m['numpy']} ({m['numpy_blas']}), "
        f"SciPy {m['scipy']}, PyTorch {m['torch'] or 'not installed'}.",
        "",
        f"Command: `{report['command']}`. Each time is the best of at least "
        f"{report['config']['repeat']} calls and at least {MIN_SPENT} s of calls (at most "
        "about 1 s) after a warm-up call, and the best over "
        f"{report['config'].get('rounds', 1)} round(s) of the whole kernel table. `vs copy/read`: time over `np.copyto` of the same array (`copy`) or over "
        "`x.sum(axis=-1)` (`read`), measured in the same run. `SciPy / smk` and "
        "`PyTorch / smk` are speed-ups (above 1: softmaxkit is faster); SciPy is "
        "single-threaded and timed at 1 thread.",
    ]
    if report["kernels"]:
        parts += ["", markdown_table(KERNEL_HEADER, kernel_table(report["kernels"]))]
    if report.get("regression"):
        parts += [
            "",
            "## Softmax regression on digits",
            "",
            "Standardised, stratified 75/25 split (seed 0); fit time: best of "
            f"{report['config']['repeat']} fits after a warm-up fit.",
            "",
            markdown_table(REGRESSION_HEADER, regression_table(report["regression"])),
        ]
    if report["linear_ce"]:
        parts += [
            "",
            "## Fused linear + cross-entropy",
            "",
            "Loss and the gradients of hidden, weight and bias, float32. `unfused`: the "
            "full logits, `cross_entropy_and_grad`, then the two products. `peak extra`: "
            "peak `tracemalloc` bytes during the call minus the gradients it returns "
            "(torch's allocator is not traced). Time: best of "
            f"{report['config']['linear_ce_repeat']} timed call(s) after the traced call.",
            "",
            markdown_table(LINEAR_HEADER, linear_table(report["linear_ce"])),
        ]
    for note in report["notes"]:
        parts += ["", f"Note: {note}"]
    return "\n".join(parts) + "\n"

