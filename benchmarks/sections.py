"""What the benchmark measures: the kernel sections (softmax family, cross-entropy),
softmax regression against scikit-learn, and fused linear + cross-entropy.

Each ``run_*`` returns one dict per table row; ``benchmarks/run.py`` chooses the
sections and writes the report (see ``benchmarks/README.md``).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from benchmarks.harness import Threads, best_time, format_row, peak_memory

__all__ = ["FULL_SHAPES", "QUICK_SHAPES", "FULL_LINEAR_CE", "QUICK_LINEAR_CE", "SECTIONS",
           "DEFAULT_SECTIONS", "run_kernels", "run_regression", "run_linear_ce"]

FULL_SHAPES = [(8192, 1000), (2048, 32000), (256, 256000)]
QUICK_SHAPES = [(64, 100), (8, 3000)]
FULL_LINEAR_CE = (8192, 1024, 65536)
QUICK_LINEAR_CE = (96, 32, 500)
SECTIONS = ("softmax", "ce", "regression", "linear-ce")
#: What a run measures without --sections (linear-ce is heavy: opt in).
DEFAULT_SECTIONS = ("softmax", "ce", "regression")


# ----------------------------------------------------------------- kernel sections


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


def run_kernels(sections, shapes, threads, repeat, budget, torch, log) -> list[dict[str, Any]]:
    """Time the softmax-family and cross-entropy kernels; one result dict per row."""
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(12345)
    work = []
    if "softmax" in sections:
        work += [("softmax", shape, dt) for dt in ("float32", "float64") for shape in shapes]
    if "ce" in sections:
        work += [("ce", shape, "float32") for shape in shapes]
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
            with Threads(n, torch):
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
                    log(format_row(row))
    return rows





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
        with Threads(n, None), threadpool_limits(limits=n, user_api="blas"):
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
        with Threads(nt, torch):
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

