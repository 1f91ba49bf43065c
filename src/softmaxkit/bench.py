"""The softmaxkit benchmark suite: ``python -m softmaxkit.bench`` (or ``softmaxkit bench``,
or ``benchmarks/run.py``).

One run measures every kernel three ways, under the same conditions:

* as a ratio to a **memory pass over the same bytes** measured in the same run:
  ``np.copyto`` for functions that write an array as large as their input, and a
  read pass (``x.sum(axis=-1)``) for reductions and forward-only losses. A kernel
  cannot beat its own memory traffic, so the ratio says how close to the floor it is;
* against **SciPy** (``scipy.special.softmax`` / ``log_softmax`` / ``logsumexp`` /
  ``expit``; SciPy is single-threaded, so it is timed once, at 1 thread);
* against **PyTorch on the CPU** (``torch.softmax``, ``torch.log_softmax``, ...,
  ``F.cross_entropy`` forward and forward + ``backward()``), with
  ``torch.set_num_threads`` equal to softmaxkit's thread count.

Each time is the best of at least ``--repeat`` calls, and of at least 0.25 s of calls,
after one warm-up call (fewer calls when one is slow: a measurement stops after about
a second), and the best over ``--rounds`` rounds of the whole kernel table (default 2),
since a disturbance on a small shared machine can outlast one measurement. Functions that have an
``out=`` (softmaxkit, including the gradient of ``cross_entropy_and_grad``, NumPy,
SciPy's ``expit``, PyTorch's ``softmax`` / ``log_softmax`` / ``sigmoid``) write into a
preallocated array, as the copy does;
the others allocate their result, in every library alike.

Sections (``--sections``, comma separated):

``softmax``
    softmax, log_softmax, logsumexp, sigmoid, softmax_backward, log_softmax_backward on
    float32 and float64 arrays of shape (8192, 1000), (2048, 32000), (256, 256000).
``ce``
    cross-entropy with integer labels, forward and forward + backward, float32, same
    shapes (skipped, with a note, when the losses module is not available).
``linear-ce``
    fused :func:`softmaxkit.linear_cross_entropy_and_grad` against the unfused path
    (full logits, then :func:`softmaxkit.cross_entropy_and_grad`, then the two
    matrix products) at N=8192, H=1024, V=65536 float32: time and peak extra memory
    (``tracemalloc``, which sees NumPy's array allocations). Heavy: about 4 GiB of
    memory and a few minutes on two cores, so it is not in the default sections.

``regression``
    fit time and test accuracy of :class:`softmaxkit.SoftmaxRegression` (lbfgs, the
    default) and scikit-learn's ``LogisticRegression()`` on the digits data
    (standardised, stratified 75/25 split, seed 0), same thread count. Cheap: in the
    default sections.

``--quick`` uses tiny shapes and one timed call: it checks the plumbing (the test
suite runs it), its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
import tracemalloc
from typing import Any, Callable

import numpy as np

from . import _config

__all__ = ["main"]

FULL_SHAPES = [(8192, 1000), (2048, 32000), (256, 256000)]
QUICK_SHAPES = [(64, 100), (8, 3000)]
FULL_LINEAR_CE = (8192, 1024, 65536)
QUICK_LINEAR_CE = (96, 32, 500)
SECTIONS = ("softmax", "ce", "regression", "linear-ce")


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
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count() or 1
    import scipy

    from . import __version__

    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "simd": " ".join(flags) or "unknown",
        "cores": affinity,
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


# ------------------------------------------------------------------ the two sections


class _Threads:
    """Set softmaxkit's and torch's thread counts for a block, restoring them after."""

    def __init__(self, n: int, torch: Any):
        self.n, self.torch = n, torch

    def __enter__(self):
        self.old = _config.get_num_threads()
        _config.set_num_threads(self.n)
        if self.torch is not None:
            self.old_torch = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        _config.set_num_threads(self.old)
        if self.torch is not None:
            self.torch.set_num_threads(self.old_torch)


def _softmax_cases(x: np.ndarray, torch: Any):
    """(op, baseline kind, softmaxkit fn, SciPy fn or None, torch fn or None) per op."""
    import scipy.special as sps

    import softmaxkit as smk

    out = np.empty_like(x)
    rng = np.random.default_rng(0)
    p = smk.softmax(x)
    lp = smk.log_softmax(x)
    g = rng.standard_normal(x.shape).astype(x.dtype)
    cases = [
        ("softmax", "copy", lambda: smk.softmax(x, out=out), lambda: sps.softmax(x, axis=-1)),
        ("log_softmax", "copy", lambda: smk.log_softmax(x, out=out), lambda: sps.log_softmax(x, axis=-1)),
        ("logsumexp", "read", lambda: smk.logsumexp(x), lambda: sps.logsumexp(x, axis=-1)),
        ("sigmoid", "copy", lambda: smk.sigmoid(x, out=out), lambda: sps.expit(x, out=out)),
        ("softmax_backward", "copy", lambda: smk.softmax_backward(p, g), None),
        ("log_softmax_backward", "copy", lambda: smk.log_softmax_backward(lp, g), None),
    ]
    tfns: dict[str, Callable[[], Any]] = {}
    if torch is not None:
        xt, ot = torch.from_numpy(x), torch.from_numpy(out)
        pt, lpt, gt = torch.from_numpy(p), torch.from_numpy(lp), torch.from_numpy(g)
        aten = torch.ops.aten
        tfns = {
            "softmax": lambda: torch.softmax(xt, -1, out=ot),
            "log_softmax": lambda: torch.log_softmax(xt, -1, out=ot),
            "logsumexp": lambda: torch.logsumexp(xt, -1),
            "sigmoid": lambda: torch.sigmoid(xt, out=ot),
            "softmax_backward": lambda: aten._softmax_backward_data(gt, pt, -1, xt.dtype),
            "log_softmax_backward": lambda: aten._log_softmax_backward_data(gt, lpt, -1, xt.dtype),
        }
    return [(op, base, f, s, tfns.get(op)) for op, base, f, s in cases]


def _ce_cases(x: np.ndarray, target: np.ndarray, torch: Any):
    import softmaxkit as smk

    grad = np.empty_like(x)  # the gradient goes to out=, as the copy's to dst
    cases = [
        ("cross_entropy", "read", lambda: smk.cross_entropy(x, target)),
        ("cross_entropy_and_grad", "copy", lambda: smk.cross_entropy_and_grad(x, target, out=grad)),
    ]
    tfns: dict[str, Callable[[], Any]] = {}
    if torch is not None:
        F = torch.nn.functional
        xt, tt = torch.from_numpy(x), torch.from_numpy(target)
        xg = xt.clone().requires_grad_(True)

        def torch_fwd_bwd():
            # A fresh gradient each call: what autograd gives logits, which are not
            # leaves in training (F.cross_entropy has no out=).
            xg.grad = None
            F.cross_entropy(xg, tt).backward()

        def torch_fwd():
            with torch.no_grad():
                return F.cross_entropy(xt, tt)

        tfns = {"cross_entropy": torch_fwd, "cross_entropy_and_grad": torch_fwd_bwd}
    return [(op, base, f, None, tfns.get(op)) for op, base, f in cases]


def _has_losses() -> bool:
    import softmaxkit as smk

    return hasattr(smk, "cross_entropy") and hasattr(smk, "cross_entropy_and_grad")


def run_kernels(sections, shapes, threads, repeat, budget, torch, log) -> list[dict[str, Any]]:
    """Time the softmax-family and cross-entropy kernels; one result dict per row."""
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(12345)
    work = []
    if "softmax" in sections:
        work += [("softmax", shape, dt) for dt in ("float32", "float64") for shape in shapes]
    if "ce" in sections:
        if _has_losses():
            work += [("ce", shape, "float32") for shape in shapes]
        else:
            log("ce: softmaxkit.cross_entropy_and_grad is not available; section skipped")
    for section, shape, dtype in work:
        x = (3.0 * rng.standard_normal(shape)).astype(dtype)
        if section == "softmax":
            cases = _softmax_cases(x, torch)
        else:
            target = rng.integers(0, shape[1], size=shape[0], dtype=np.int64)
            cases = _ce_cases(x, target, torch)
        dst = np.empty_like(x)
        scipy_time: dict[str, float] = {}
        for n in threads:
            with _Threads(n, torch):
                base = {
                    "copy": best_time(lambda: np.copyto(dst, x), repeat, budget),
                    "read": best_time(lambda: x.sum(axis=-1), repeat, budget),
                }
                for op, kind, fn, scipy_fn, torch_fn in cases:
                    t = best_time(fn, repeat, budget)
                    if scipy_fn is not None and op not in scipy_time:
                        scipy_time[op] = best_time(scipy_fn, repeat, budget)
                    t_torch = best_time(torch_fn, repeat, budget) if torch_fn is not None else None
                    row = {
                        "section": section,
                        "op": op,
                        "shape": list(shape),
                        "dtype": dtype,
                        "threads": n,
                        "time_s": t,
                        "baseline": kind,
                        "baseline_s": base[kind],
                        "ratio_to_baseline": t / base[kind],
                        "scipy_s": scipy_time.get(op),
                        "torch_s": t_torch,
                        "speedup_vs_scipy": scipy_time[op] / t if op in scipy_time else None,
                        "speedup_vs_torch": t_torch / t if t_torch is not None else None,
                    }
                    rows.append(row)
                    log(_format_row(row))
    return rows


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


# ------------------------------------------------------------------- regression


def run_regression(threads, repeat, budget, log) -> list[dict[str, Any]]:
    """Fit time and test accuracy of SoftmaxRegression and LogisticRegression on
    digits (standardised, stratified 75/25 split, seed 0), per thread count."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    import softmaxkit as smk

    X, y = smk.datasets.load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    models = {
        "SoftmaxRegression()": lambda: smk.SoftmaxRegression(),
        "LogisticRegression()": lambda: LogisticRegression(),
    }
    rows: list[dict[str, Any]] = []
    for n in threads:
        # BLAS gets the same thread count, for both models alike.
        with _Threads(n, None), threadpool_limits(limits=n, user_api="blas"):
            for name, make in models.items():
                fitted = []
                t = best_time(lambda: fitted.append(make().fit(X_train, y_train)), repeat, budget)
                model = fitted[-1]
                row = {
                    "section": "regression",
                    "op": name,
                    "threads": n,
                    "time_s": t,
                    "n_iter": int(np.max(model.n_iter_)),
                    "test_accuracy": float(model.score(X_test, y_test)),
                }
                rows.append(row)
                log(f"{name:<22} t={n} fit {t * 1e3:8.1f} ms  {row['n_iter']:4d} iterations  "
                    f"test accuracy {row['test_accuracy']:.4f}")
    return rows


# ------------------------------------------------------------------ linear + CE


def _unfused_linear_ce(hidden, weight, target, bias):
    """The reference path: the full (N, V) logits, the fused CE kernel, two products."""
    import softmaxkit as smk

    logits = hidden @ weight.T
    logits += bias
    loss, g = smk.cross_entropy_and_grad(logits, target)
    del logits
    grad_hidden = g @ weight
    grad_weight = g.T @ hidden
    grad_bias = g.sum(axis=0)
    return loss, (grad_hidden, grad_weight, grad_bias)


def _grad_bytes(result) -> int:
    return sum(a.nbytes for a in result[1] if a is not None)


def run_linear_ce(shape, threads, repeat, torch, log) -> list[dict[str, Any]]:
    """Fused vs unfused linear + cross-entropy (loss and all three gradients)."""
    import softmaxkit as smk

    if not (_has_losses() and hasattr(smk, "linear_cross_entropy_and_grad")):
        log("linear-ce: softmaxkit.linear_cross_entropy_and_grad is not available; skipped")
        return []
    n, h, v = shape
    rng = np.random.default_rng(7)
    hidden = rng.standard_normal((n, h), dtype=np.float32)
    weight = (rng.standard_normal((v, h), dtype=np.float32) / np.float32(math.sqrt(h)))
    bias = (0.1 * rng.standard_normal(v)).astype(np.float32)
    target = rng.integers(0, v, size=n, dtype=np.int64)
    paths = {
        "unfused": lambda: _unfused_linear_ce(hidden, weight, target, bias),
        "fused": lambda: smk.linear_cross_entropy_and_grad(hidden, weight, target, bias=bias),
    }
    if torch is not None and hasattr(torch.nn.functional, "linear_cross_entropy"):
        F = torch.nn.functional
        ht = torch.from_numpy(hidden).requires_grad_(True)
        wt = torch.from_numpy(weight).requires_grad_(True)
        bt = torch.from_numpy(bias).requires_grad_(True)
        tt = torch.from_numpy(target)

        def torch_path(options):
            def run():
                for p in (ht, wt, bt):
                    p.grad = None
                loss = F.linear_cross_entropy(ht, wt, tt, linear_bias=bt, options=options)
                loss.backward()
                return loss, (ht.grad, wt.grad, bt.grad)

            return run

        paths["torch reference"] = torch_path(None)
        if hasattr(torch.nn, "LinearCrossEntropyOptions"):
            paths["torch chunked"] = torch_path(torch.nn.LinearCrossEntropyOptions())
    rows: list[dict[str, Any]] = []
    for nt in threads:
        with _Threads(nt, torch):
            for name, fn in paths.items():
                if name.startswith("torch"):
                    # torch allocates through its own allocator, which tracemalloc does not see.
                    peak, extra = None, None
                    t = best_time(fn, repeat, budget=0.0, warmup=True)
                else:
                    # The traced call doubles as the warm-up call.
                    peak, result = peak_memory(fn)
                    extra = peak - _grad_bytes(result)
                    del result
                    t = best_time(fn, repeat, budget=0.0, warmup=False)
                row = {
                    "section": "linear-ce",
                    "op": name,
                    "shape": [n, h, v],
                    "dtype": "float32",
                    "threads": nt,
                    "time_s": t,
                    "peak_bytes": peak,
                    "extra_bytes": extra,
                }
                rows.append(row)
                log(f"linear-ce N={n} H={h} V={v} threads={nt} {name}: {t:.3f} s"
                    + (f", peak extra {extra / 2**20:.1f} MiB" if extra is not None else ""))
            ref = next(r for r in rows if r["threads"] == nt and r["op"] == "unfused")
            for r in rows:
                if r["threads"] == nt:
                    r["time_vs_unfused"] = r["time_s"] / ref["time_s"]
                    r["memory_vs_unfused"] = (
                        r["extra_bytes"] / ref["extra_bytes"] if r["extra_bytes"] is not None else None
                    )
    return rows


# ------------------------------------------------------------------------- output


def _ms(t):
    return "—" if t is None else f"{t * 1e3:.2f}"


def _x(r):
    return "—" if r is None else f"{r:.2f}x"


def _format_row(r) -> str:
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


def text_table(header, body) -> str:
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    return "\n".join(lines)


def markdown_table(header, body) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


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


# --------------------------------------------------------------------------- main


def _parse_ints(text: str, name: str, count: int | None = None) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values) or (count is not None and len(values) != count):
        want = f"{count} " if count else ""
        raise argparse.ArgumentTypeError(f"{name} must be {want}positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="softmaxkit bench",
        description="Time softmaxkit's kernels against a copy/read pass, SciPy and PyTorch.",
    )
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes and one timed call (checks the plumbing; numbers mean nothing)")
    p.add_argument("--sections", default="softmax,ce,regression",
                   help=f"comma-separated subset of {','.join(SECTIONS)} (default: softmax,ce,regression)")
    p.add_argument("--linear-ce", action="store_true",
                   help="add the linear-ce section (heavy: ~4 GiB and minutes at full size)")
    p.add_argument("--linear-ce-shape", type=lambda s: _parse_ints(s, "--linear-ce-shape", 3),
                   default=None, metavar="N,H,V", help="shape of the linear-ce section")
    p.add_argument("--threads", type=lambda s: _parse_ints(s, "--threads"), default=[1, 2],
                   help="comma-separated thread counts (default: 1,2)")
    p.add_argument("--linear-ce-threads", type=lambda s: _parse_ints(s, "--linear-ce-threads"),
                   default=None, metavar="THREADS",
                   help="thread counts for the linear-ce section (default: those of --threads)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed calls per measurement (default 5; 1 with --quick and for linear-ce)")
    p.add_argument("--rounds", type=int, default=None,
                   help="repeat the kernel sections this many times and keep each "
                        "measurement's best (default 2; 1 with --quick)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparisons")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the process exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"--sections: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.linear_ce and "linear-ce" not in sections:
        sections.append("linear-ce")
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be a positive integer, got {args.repeat}")
    repeat = args.repeat or (1 if args.quick else 5)
    budget = 0.0 if args.quick else 1.0

    torch = None
    notes: list[str] = []
    if not args.no_torch:
        try:
            import torch  # noqa: F811  (optional dependency, imported only here)
        except ImportError:
            notes.append("PyTorch is not installed; its columns are empty.")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be a positive integer, got {args.rounds}")
    rounds = args.rounds or (1 if args.quick else 2)
    kernels = merge_rounds([run_kernels(sections, shapes, args.threads, repeat, budget, torch, log)
                            for _ in range(rounds)])
    if ("ce" in sections) and not _has_losses():
        notes.append("cross-entropy rows skipped: softmaxkit.cross_entropy_and_grad is not available.")
    regression = run_regression(args.threads, repeat, budget, log) if "regression" in sections else []
    linear = []
    linear_repeat = args.repeat or 1  # each call is long: one timed call by default
    if "linear-ce" in sections:
        lshape = args.linear_ce_shape or (QUICK_LINEAR_CE if args.quick else FULL_LINEAR_CE)
        linear = run_linear_ce(tuple(lshape), args.linear_ce_threads or args.threads,
                               linear_repeat, torch, log)

    report = {
        "machine": machine_info(torch),
        "command": "python -m softmaxkit.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {"sections": sections, "threads": args.threads, "repeat": repeat, "rounds": rounds,
                   "linear_ce_repeat": linear_repeat, "quick": args.quick},
        "kernels": kernels,
        "regression": regression,
        "linear_ce": linear,
        "notes": notes,
    }
    if kernels:
        print(text_table(KERNEL_HEADER, kernel_table(kernels)))
    if regression:
        print()
        print(text_table(REGRESSION_HEADER, regression_table(regression)))
    if linear:
        print()
        print(text_table(LINEAR_HEADER, linear_table(linear)))
    for note in notes:
        print(f"note: {note}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown_report(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":  # python -m softmaxkit.bench
    sys.exit(main())
